/* fs/inode.c: inode numbers and the kernel's lookup counts.
 *
 * A key gets a number on its first lookup: a regular file's key is its content and attributes
 * (object hash, mode, mtime), so identical files of any path, package or version are one inode
 * (fs/README.md "Memory"); another entry of a version's tree is keyed by where it is (its view:
 * the top level or a slice; its manifest; its index in the manifest's tree); what lies above
 * the versions' entries (the root, packages, versions, `latest`, slices) by its path. A number
 * stands for its key while the kernel holds it, and after the kernel forgot it as long as it is
 * among the last idle_max forgotten numbers (tools such as find and tar compare them); beyond
 * that one is dropped and given again.
 *
 * A version's entries are most of what the kernel holds (a million after a find over a big
 * tree), so they cost a slot and a place in the table of keys, about 40 bytes, and no string:
 * as squashfuse's numbers say where an inode is in its image, a slot says where its entry is
 * (its tree, held while the kernel holds the number, and the index), and the table of keys
 * holds numbers only, compared against the tree's records (store/tree.c, mapped). Once the
 * kernel forgets a number its tree is let go: a directory's key needs none, a file's keeps a
 * copy of its hash, mode and mtime. A callback gets a node of its own (struct fsd_inode, made
 * from the slot, holding the tree), so a number dropped or moved meanwhile never changes it. A
 * file's slot follows the tree and view of its last lookup (one the catalog signs now).
 *
 * A path inside a version (FSD_N_VER, FSD_N_ENTRY but regular files) is numbered within that
 * version's manifest: when a refresh replaces the manifest signed for the version, the path
 * gets a new number at its next lookup (a file's key holds its hash: new content, new
 * number). The old number keeps standing for the old content (a file a reader holds open, a
 * directory someone sits in) until the kernel forgets it; a number given again was forgotten
 * by the kernel, pages and all. The kernel never sees one number change content, so it never
 * mixes pages of the old file with the new.
 *
 * Locking: inodes.lock protects everything here. A node given to a callback is its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

/* ------------------------------------------------------------------------------------------ */
/* Nodes given to callbacks, and the nodes above the versions' entries */

/* A node with its own copies of path, pkg and ver (in the same allocation), holding vt; slice
 * is the table's (views: they live as long as the table). NULL on -ENOMEM. */
static struct fsd_inode *node_new(fuse_ino_t ino, enum fsd_node_kind kind, const char *path,
				  const char *pkg, const char *ver, const char *slice,
				  struct fsd_vtree *vt, long idx,
				  const uint8_t vhash[VERIFY_HASH_LEN])
{
	size_t lp = path ? strlen(path) + 1 : 0, lk = pkg ? strlen(pkg) + 1 : 0;
	size_t lv = ver ? strlen(ver) + 1 : 0;
	struct fsd_inode *n = calloc(1, sizeof(*n) + lp + lk + lv);
	char *s;

	if (!n)
		return NULL;
	s = (char *)(n + 1);
	if (path)
		n->path = memcpy(s, path, lp);
	if (pkg)
		n->pkg = memcpy(s + lp, pkg, lk);
	if (ver)
		n->ver = memcpy(s + lp + lk, ver, lv);
	n->ino = ino;
	n->kind = kind;
	n->slice = slice;
	n->vt = vt ? fsd_vtree_ref(vt) : NULL;
	n->idx = idx;
	memcpy(n->vhash, vhash, VERIFY_HASH_LEN);
	return n;
}

static void node_free(struct fsd_inode *n)
{
	if (!n)
		return;
	fsd_vtree_unref(n->vt);
	free(n);
}

/* The view number of slice (0: the top level; else 1.. as first met). Called with the lock
 * held. @return 0; -ENOMEM. */
static int view_of(struct fsd_inodes *t, const char *slice, uint16_t *ret_view)
{
	uint64_t v;
	char **views, *name;

	*ret_view = 0;
	if (!slice)
		return 0;
	v = fsd_strmap_get(&t->vbyname, slice);
	if (v) {
		*ret_view = (uint16_t)v;
		return 0;
	}
	if (t->nviews >= UINT16_MAX - 1)
		return -ENOMEM;
	views = realloc(t->views, (t->nviews + 1) * sizeof(*views));
	if (!views)
		return -ENOMEM;
	t->views = views;
	name = strdup(slice);
	if (!name || fsd_strmap_put(&t->vbyname, slice, t->nviews + 1) < 0) {
		free(name);
		return -ENOMEM;
	}
	t->views[t->nviews++] = name;
	*ret_view = (uint16_t)t->nviews;
	return 0;
}

static const char *view_name(const struct fsd_inodes *t, uint16_t view)
{
	return view ? t->views[view - 1] : NULL;
}

/* The number of the manifest vhash (gens; made when make), 0 when it has none. Called with the
 * lock held. @return 0; -ENOMEM. */
static int gen_of(struct fsd_inodes *t, const uint8_t vhash[VERIFY_HASH_LEN], bool make,
		  uint32_t *ret_gen)
{
	char hex[VERIFY_HASH_HEX];
	uint64_t gen;
	int ret;

	verify_hex(vhash, VERIFY_HASH_LEN, hex);
	gen = fsd_strmap_get(&t->gens, hex);
	if (!gen && make) {
		gen = t->gens.n + 1;
		if (gen > UINT32_MAX)
			return -ENOMEM;
		ret = fsd_strmap_put(&t->gens, hex, gen);
		if (ret < 0)
			return ret;
	}
	*ret_gen = (uint32_t)gen;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The keys of a version's entries: a table of numbers (linear probing, 0 empty, at most 70 %
 * full), each compared through its slot against the tree's record or the key kept for it. */

/* A regular file's key, kept for a number the kernel forgot (its tree let go). */
struct ckey {
	uint8_t hash[VERIFY_HASH_LEN];
	uint32_t mode;
	int64_t mtime;
};

/* An entry's key, as looked for. */
struct ekey {
	uint64_t h;
	bool file;
	struct ckey c;	   /* file */
	uint16_t view;	   /* not a file */
	uint32_t gen, idx; /* not a file */
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t dir_hash(uint16_t view, uint32_t gen, uint32_t idx)
{
	return mix64(mix64((uint64_t)gen << 32 | idx) ^ view);
}

static uint64_t file_hash(const struct ckey *c)
{
	uint64_t x;

	memcpy(&x, c->hash, sizeof(x)); /* a SHA-256: any eight bytes are spread */
	return mix64(x ^ mix64((uint64_t)c->mode << 40 ^ (uint64_t)c->mtime));
}

static void entry_ckey(const struct fsd_vtree *vt, uint32_t idx, struct ckey *ret_c)
{
	struct verify_entry e;

	store_tree_entry(vt->ix, idx, &e);
	memcpy(ret_c->hash, e.hash, VERIFY_HASH_LEN);
	ret_c->mode = e.mode;
	ret_c->mtime = e.mtime;
}

/* The content key of a FSD_SLOT_FILE slot. */
static void slot_ckey(const struct fsd_inode_slot *sl, struct ckey *ret_c)
{
	if (sl->nlookup)
		entry_ckey(sl->p, sl->idx, ret_c);
	else
		*ret_c = *(const struct ckey *)sl->p;
}

static uint64_t slot_hash(const struct fsd_inodes *t, uint32_t ino)
{
	const struct fsd_inode_slot *sl = &t->slots[ino];
	struct ckey c;

	if (sl->state == FSD_SLOT_DIR)
		return dir_hash(sl->view, sl->gen, sl->idx);
	slot_ckey(sl, &c);
	return file_hash(&c);
}

static bool slot_is(const struct fsd_inodes *t, uint32_t ino, const struct ekey *k)
{
	const struct fsd_inode_slot *sl = &t->slots[ino];
	struct ckey c;

	if (!k->file)
		return sl->state == FSD_SLOT_DIR && sl->view == k->view && sl->gen == k->gen &&
		       sl->idx == k->idx;
	if (sl->state != FSD_SLOT_FILE)
		return false;
	slot_ckey(sl, &c);
	return memcmp(c.hash, k->c.hash, VERIFY_HASH_LEN) == 0 && c.mode == k->c.mode &&
	       c.mtime == k->c.mtime;
}

static uint32_t keys_find(const struct fsd_inodes *t, const struct ekey *k)
{
	size_t mask = t->keycap - 1;

	if (!t->keycap)
		return 0;
	for (size_t i = k->h & mask; t->keys[i]; i = (i + 1) & mask)
		if (slot_is(t, t->keys[i], k))
			return t->keys[i];
	return 0;
}

static void keys_put(uint32_t *keys, size_t cap, uint64_t h, uint32_t ino)
{
	size_t i;

	for (i = h & (cap - 1); keys[i]; i = (i + 1) & (cap - 1))
		;
	keys[i] = ino;
}

/* Room for one more key. @return 0; -ENOMEM. */
static int keys_reserve(struct fsd_inodes *t)
{
	size_t cap = t->keycap ? 2 * t->keycap : 1024;
	uint32_t *keys;

	if (10 * (t->nkeys + 1) <= 7 * t->keycap)
		return 0;
	keys = calloc(cap, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < t->keycap; i++)
		if (t->keys[i])
			keys_put(keys, cap, slot_hash(t, t->keys[i]), t->keys[i]);
	free(t->keys);
	t->keys = keys;
	t->keycap = cap;
	return 0;
}

/* Remove number ino's key (its slot still says what the key is); the keys after it that would
 * no longer be found move back. */
static void keys_remove(struct fsd_inodes *t, uint32_t ino)
{
	size_t mask = t->keycap - 1, i, j, h;

	if (!t->keycap)
		return;
	for (i = slot_hash(t, ino) & mask; t->keys[i] && t->keys[i] != ino; i = (i + 1) & mask)
		;
	if (!t->keys[i])
		return;
	t->keys[i] = 0;
	t->nkeys--;
	for (j = (i + 1) & mask; t->keys[j]; j = (j + 1) & mask) {
		h = slot_hash(t, t->keys[j]) & mask;
		/* j's key may fill the hole at i when i lies cyclically in [h, j) */
		if (j > i ? (h <= i || h > j) : (h <= i && h > j)) {
			t->keys[i] = t->keys[j];
			t->keys[j] = 0;
			i = j;
		}
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Numbers */

int fsd_inodes_init(struct fsd_inodes *t)
{
	static const uint8_t none[VERIFY_HASH_LEN];
	struct fsd_inode_slot *root;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->idle_max = FSD_INODES_IDLE;
	/* Number 0 is never used, 1 is the root (FUSE_ROOT_ID), held for ever. */
	t->cap = 1024;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	root = &t->slots[FUSE_ROOT_ID];
	root->p = node_new(FUSE_ROOT_ID, FSD_N_ROOT, "", NULL, NULL, NULL, NULL, -1, none);
	root->state = FSD_SLOT_NAMED;
	root->kind = FSD_N_ROOT;
	root->nlookup = 1;
	t->nslots = FUSE_ROOT_ID + 1;
	if (!root->p || fsd_strmap_put(&t->bypath, "", FUSE_ROOT_ID) < 0) {
		fsd_inodes_fini(t);
		return -ENOMEM;
	}
	return 0;
}

/* Free what slot sl holds (not its key in the tables). */
static void slot_clear(struct fsd_inode_slot *sl)
{
	if (sl->state == FSD_SLOT_NAMED)
		node_free(sl->p);
	else if (sl->nlookup && sl->p)
		fsd_vtree_unref(sl->p);
	else
		free(sl->p); /* a file's kept key; NULL for a directory */
	memset(sl, 0, sizeof(*sl));
}

void fsd_inodes_fini(struct fsd_inodes *t)
{
	for (size_t i = 0; i < t->nslots; i++)
		slot_clear(&t->slots[i]);
	free(t->slots);
	free(t->freed);
	free(t->keys);
	for (size_t i = 0; i < t->nviews; i++)
		free(t->views[i]);
	free(t->views);
	fsd_strmap_fini(&t->bypath);
	fsd_strmap_fini(&t->gens);
	fsd_strmap_fini(&t->vbyname);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

/* The number the next new key gets (taken by take_number): a dropped one, else the next; the
 * slots grow (without touching what lies beyond nslots). @return 0; -ENOMEM. */
static int next_number(struct fsd_inodes *t, uint32_t *ret_ino)
{
	if (t->nfreed) {
		*ret_ino = t->freed[t->nfreed - 1];
		return 0;
	}
	if (t->nslots >= UINT32_MAX)
		return -ENOMEM;
	if (t->nslots == t->cap) {
		struct fsd_inode_slot *s = realloc(t->slots, 2 * t->cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		t->slots = s;
		t->cap *= 2;
	}
	*ret_ino = (uint32_t)t->nslots;
	return 0;
}

static void take_number(struct fsd_inodes *t)
{
	if (t->nfreed)
		t->nfreed--;
	else
		t->nslots++;
}

/* Drop idle numbers (the kernel forgot them) beyond idle_max: their keys leave the tables
 * (a path only when it still maps to that number) and the numbers are given again. Called
 * with the lock held. */
static void drop_idle(struct fsd_inodes *t)
{
	struct fsd_inode_slot *sl;
	size_t n;

	while (t->nidle > t->idle_max) {
		if (t->nfreed == t->freedcap) {
			size_t cap = t->freedcap ? 2 * t->freedcap : 64;
			uint32_t *f = realloc(t->freed, cap * sizeof(*f));

			if (!f)
				return; /* out of memory: keep them for now */
			t->freed = f;
			t->freedcap = cap;
		}
		for (n = 0; n < t->nslots; n++) {
			t->hand = t->hand + 1 < t->nslots ? t->hand + 1 : FUSE_ROOT_ID + 1;
			if (t->slots[t->hand].state != FSD_SLOT_FREE && !t->slots[t->hand].nlookup)
				break;
		}
		if (n == t->nslots) { /* none: the count is wrong (a bug), never loop on it */
			t->nidle = 0;
			return;
		}
		sl = &t->slots[t->hand];
		if (sl->state == FSD_SLOT_NAMED) {
			const struct fsd_inode *node = sl->p;

			fsd_strmap_remove(&t->bypath, node->path, t->hand);
		} else {
			keys_remove(t, (uint32_t)t->hand);
		}
		slot_clear(sl);
		t->freed[t->nfreed++] = (uint32_t)t->hand;
		t->nidle--;
	}
}

/* The kernel's last lookup of ino is gone (sl->nlookup still counts it: set to 0 here): what
 * only a held number needs is let go (an entry's tree: a file keeps a copy of its key).
 * Called with the lock held. */
static void let_go(struct fsd_inodes *t, uint32_t ino)
{
	struct fsd_inode_slot *sl = &t->slots[ino];
	struct fsd_vtree *vt = sl->p;

	if (sl->state == FSD_SLOT_NAMED) {
		struct fsd_inode *node = sl->p;

		fsd_vtree_unref(node->vt);
		node->vt = NULL;
	} else if (sl->state == FSD_SLOT_FILE) {
		struct ckey *c = malloc(sizeof(*c));

		if (!c) {
			/* Out of memory: the number is dropped at once (lost if it cannot be
			 * noted for giving again). */
			keys_remove(t, ino);
			fsd_vtree_unref(vt);
			memset(sl, 0, sizeof(*sl));
			if (t->nfreed < t->freedcap)
				t->freed[t->nfreed++] = ino;
			return;
		}
		entry_ckey(vt, sl->idx, c);
		sl->p = c;
		fsd_vtree_unref(vt);
	} else {
		sl->p = NULL;
		fsd_vtree_unref(vt);
	}
	sl->nlookup = 0;
	t->nidle++;
	drop_idle(t);
}

/* The kernel looks ino up again after forgetting it: the slot holds vt again (a file's at
 * entry idx of view). Called with the lock held. */
static void hold_again(struct fsd_inodes *t, uint32_t ino, struct fsd_vtree *vt, long idx,
		       uint16_t view)
{
	struct fsd_inode_slot *sl = &t->slots[ino];

	if (sl->state == FSD_SLOT_NAMED) {
		struct fsd_inode *node = sl->p;

		if (!node->vt && vt)
			node->vt = fsd_vtree_ref(vt);
	} else {
		if (sl->state == FSD_SLOT_FILE) {
			free(sl->p);
			sl->idx = (uint32_t)idx;
			sl->view = view;
		}
		sl->p = fsd_vtree_ref(vt);
	}
	t->nidle--;
}

/* The number of entry proto (numbered now when it has none: *ret_new, held by nobody yet).
 * A file the kernel holds through another tree or view moves to this lookup's (one whose
 * catalog signs it now). Called with the lock held. @return 0; -ENOMEM. */
static int entry_number(struct fsd_inodes *t, const struct fsd_inode *proto, uint16_t view,
			uint32_t *ret_ino, bool *ret_new)
{
	struct fsd_inode_slot *sl;
	struct verify_entry e;
	struct ekey k = {0};
	uint32_t ino, gen;
	int ret;

	*ret_new = false;
	store_tree_entry(proto->vt->ix, (size_t)proto->idx, &e);
	ret = gen_of(t, proto->vhash, true, &gen);
	if (ret < 0)
		return ret;
	k.file = e.type == VERIFY_FILE;
	if (k.file) {
		memcpy(k.c.hash, e.hash, VERIFY_HASH_LEN);
		k.c.mode = e.mode;
		k.c.mtime = e.mtime;
		k.h = file_hash(&k.c);
	} else {
		k.view = view;
		k.gen = gen;
		k.idx = (uint32_t)proto->idx;
		k.h = dir_hash(view, gen, k.idx);
	}
	ino = keys_find(t, &k);
	if (ino) {
		sl = &t->slots[ino];
		if (k.file && sl->nlookup && (sl->p != proto->vt || sl->view != view)) {
			fsd_vtree_unref(sl->p);
			sl->p = fsd_vtree_ref(proto->vt);
			sl->idx = (uint32_t)proto->idx;
			sl->view = view;
		}
		*ret_ino = ino;
		return 0;
	}
	ret = keys_reserve(t);
	if (ret == 0)
		ret = next_number(t, &ino);
	if (ret < 0)
		return ret;
	take_number(t);
	sl = &t->slots[ino];
	memset(sl, 0, sizeof(*sl));
	sl->p = fsd_vtree_ref(proto->vt);
	sl->idx = (uint32_t)proto->idx;
	sl->gen = gen;
	sl->view = view;
	sl->kind = FSD_N_ENTRY;
	sl->state = k.file ? FSD_SLOT_FILE : FSD_SLOT_DIR;
	keys_put(t->keys, t->keycap, k.h, ino);
	t->nkeys++;
	*ret_ino = ino;
	*ret_new = true;
	return 0;
}

/* The number of a node above the versions' entries, by its path (and, for a version or an
 * installed root, its manifest: another manifest gets a new number and the path moves to it).
 * Called with the lock held. @return 0; -ENOMEM. */
static int named_number(struct fsd_inodes *t, const char *path, const struct fsd_inode *proto,
			uint16_t view, uint32_t *ret_ino, bool *ret_new)
{
	uint64_t have = fsd_strmap_get(&t->bypath, path);
	struct fsd_inode_slot *sl;
	struct fsd_inode *node;
	uint32_t gen = 0, ino;
	int ret;

	*ret_new = false;
	if (proto->kind == FSD_N_VER || proto->kind == FSD_N_IROOT) {
		ret = gen_of(t, proto->vhash, true, &gen);
		if (ret < 0)
			return ret;
	}
	if (have && t->slots[have].gen == gen) {
		*ret_ino = (uint32_t)have;
		return 0;
	}
	ret = next_number(t, &ino);
	if (ret < 0)
		return ret;
	node = node_new(ino, proto->kind, path, proto->pkg, proto->ver, view_name(t, view),
			proto->vt, proto->idx, proto->vhash);
	if (!node)
		return -ENOMEM;
	if (have) {
		fsd_strmap_replace(&t->bypath, path, ino);
	} else {
		ret = fsd_strmap_put(&t->bypath, path, ino);
		if (ret < 0) {
			node_free(node);
			return ret;
		}
	}
	take_number(t);
	sl = &t->slots[ino];
	memset(sl, 0, sizeof(*sl));
	sl->p = node;
	sl->gen = gen;
	sl->view = view;
	sl->kind = (uint8_t)proto->kind;
	sl->state = FSD_SLOT_NAMED;
	*ret_ino = ino;
	*ret_new = true;
	return 0;
}

int fsd_inodes_get(struct fsd_inodes *t, const char *path, const struct fsd_inode *proto,
		   bool lookup, struct fsd_inode **ret_n)
{
	struct fsd_inode_slot *sl;
	bool fresh = false;
	uint16_t view;
	uint32_t ino;
	int ret;

	pthread_mutex_lock(&t->lock);
	ret = view_of(t, proto->slice, &view);
	if (ret == 0)
		ret = proto->kind == FSD_N_ENTRY ? entry_number(t, proto, view, &ino, &fresh)
						 : named_number(t, path, proto, view, &ino, &fresh);
	if (ret < 0)
		goto out;
	*ret_n = node_new(ino, proto->kind, proto->kind == FSD_N_ENTRY ? NULL : path, proto->pkg,
			  proto->ver, view_name(t, view), proto->vt, proto->idx, proto->vhash);
	sl = &t->slots[ino];
	if (!*ret_n)
		ret = -ENOMEM;
	if (fresh) {
		/* Made held (a new entry's slot holds its tree): counted with the held ones. */
		sl->nlookup = 1;
		if (ret < 0 || !lookup) {
			let_go(t, ino);
			goto out;
		}
	} else if (ret == 0 && lookup && sl->nlookup++ == 0) {
		hold_again(t, ino, proto->vt, proto->idx, view);
	}
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

/* A node for a callback from held slot ino. Called with the lock held. NULL on -ENOMEM. */
static struct fsd_inode *slot_node(const struct fsd_inodes *t, uint32_t ino)
{
	const struct fsd_inode_slot *sl = &t->slots[ino];
	const struct fsd_inode *c = sl->p;
	struct fsd_vtree *vt = sl->p;

	if (sl->state == FSD_SLOT_NAMED)
		return node_new(ino, c->kind, c->path, c->pkg, c->ver, c->slice, c->vt, c->idx,
				c->vhash);
	return node_new(ino, FSD_N_ENTRY, NULL, vt->name, vt->version, view_name(t, sl->view), vt,
			sl->idx, vt->hash);
}

/* Whether the kernel holds number ino (the root: always). Called with the lock held. */
static bool held(const struct fsd_inodes *t, fuse_ino_t ino)
{
	return ino < t->nslots && t->slots[ino].state != FSD_SLOT_FREE && t->slots[ino].nlookup;
}

struct fsd_inode *fsd_inodes_ref(struct fsd_inodes *t, fuse_ino_t ino)
{
	struct fsd_inode *n = NULL;

	pthread_mutex_lock(&t->lock);
	if (held(t, ino))
		n = slot_node(t, (uint32_t)ino);
	pthread_mutex_unlock(&t->lock);
	return n;
}

void fsd_inodes_put(struct fsd_inodes *t, struct fsd_inode *n)
{
	(void)t;
	node_free(n);
}

void fsd_inodes_forget(struct fsd_inodes *t, fuse_ino_t ino, uint64_t nlookup)
{
	pthread_mutex_lock(&t->lock);
	if (ino != FUSE_ROOT_ID && held(t, ino)) {
		/* The kernel never forgets more than it looked up; if it did, clamp. */
		if (nlookup >= t->slots[ino].nlookup)
			let_go(t, (uint32_t)ino);
		else
			t->slots[ino].nlookup -= nlookup;
	}
	pthread_mutex_unlock(&t->lock);
}

fuse_ino_t fsd_inodes_number(struct fsd_inodes *t, const char *path)
{
	fuse_ino_t ino;

	pthread_mutex_lock(&t->lock);
	ino = fsd_strmap_get(&t->bypath, path);
	pthread_mutex_unlock(&t->lock);
	return ino;
}

fuse_ino_t fsd_inodes_parent(struct fsd_inodes *t, const struct fsd_inode *n)
{
	char path[1024], *dir = NULL;
	const char *p, *slash;
	fuse_ino_t ino = 0;
	long pidx = -1;

	if (n->kind != FSD_N_ENTRY) {
		slash = n->path ? strrchr(n->path, '/') : NULL;
		if (!slash || (size_t)(slash - n->path) >= sizeof(path))
			return FUSE_ROOT_ID;
		snprintf(path, sizeof(path), "%.*s", (int)(slash - n->path), n->path);
	} else {
		p = store_tree_path(n->vt->ix, (size_t)n->idx);
		slash = strrchr(p, '/');
		if (slash && (dir = strndup(p, (size_t)(slash - p))))
			pidx = fsd_vtree_find(n->vt, dir);
		free(dir);
		if (!slash) /* in the version directory, or in an installed root */
			snprintf(path, sizeof(path), "%s%s%s%s%s%s", n->slice ? ".slices/" : "",
				 n->slice ? n->slice : "", n->slice ? "/" : "",
				 n->vt->gen ? "root" : n->pkg, n->vt->gen ? "" : "/",
				 n->vt->gen ? "" : n->ver);
	}
	pthread_mutex_lock(&t->lock);
	if (pidx >= 0) {
		struct ekey k = {.idx = (uint32_t)pidx};
		uint64_t v = n->slice ? fsd_strmap_get(&t->vbyname, n->slice) : 0;

		k.view = (uint16_t)v;
		if (gen_of(t, n->vhash, false, &k.gen) == 0 && k.gen) {
			k.h = dir_hash(k.view, k.gen, k.idx);
			ino = keys_find(t, &k);
		}
	} else if (n->kind != FSD_N_ENTRY || !slash) {
		ino = fsd_strmap_get(&t->bypath, path);
	}
	pthread_mutex_unlock(&t->lock);
	return ino ? ino : FUSE_ROOT_ID;
}

size_t fsd_inodes_pick(struct fsd_inodes *t, bool (*pick)(const struct fsd_inode *n, void *ctx),
		       void *ctx, fuse_ino_t **ret_inos)
{
	fuse_ino_t *inos;
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	inos = calloc(t->nslots ? t->nslots : 1, sizeof(*inos));
	for (size_t i = 1; inos && i < t->nslots; i++) {
		const struct fsd_inode_slot *sl = &t->slots[i];
		struct fsd_inode view = {.ino = i, .kind = FSD_N_ENTRY};
		struct fsd_vtree *vt = sl->p;

		if (!held(t, i))
			continue;
		if (sl->state != FSD_SLOT_NAMED) {
			view.pkg = vt->name;
			view.ver = vt->version;
			view.slice = view_name(t, sl->view);
			view.vt = vt;
			view.idx = sl->idx;
			memcpy(view.vhash, vt->hash, VERIFY_HASH_LEN);
		}
		if (pick(sl->state == FSD_SLOT_NAMED ? (const struct fsd_inode *)sl->p : &view,
			 ctx))
			inos[n++] = i;
	}
	pthread_mutex_unlock(&t->lock);
	*ret_inos = inos;
	return n;
}
