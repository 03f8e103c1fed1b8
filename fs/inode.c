/* fs/inode.c: inode numbers and the kernel's lookup counts.
 *
 * A key gets a number on its first lookup: a directory's or symlink's key is its path, a
 * regular file's its content and attributes (object hash, mode, mtime), so identical files of
 * any path, package or version are one inode (fs/README.md "Memory"). A number stands for its
 * key while the kernel holds it, and after the kernel forgot it as long as it is among the
 * last idle_max forgotten numbers (tools such as find and tar compare them); beyond that one
 * is dropped and given again. What a number stands for (struct fsd_inode) lives while the
 * kernel holds lookups on it or a callback uses it; then it is freed, dropping its reference
 * to its version's tree. A file's node follows the tree of its last lookup (one the catalog
 * signs now); a callback holding the previous node keeps it.
 *
 * A path inside a version (FSD_N_VER, FSD_N_ENTRY but regular files) is numbered within that
 * version's manifest: when a refresh replaces the manifest signed for the version, the path
 * gets a new number at its next lookup (a file's key holds its hash: new content, new
 * number). The old number keeps standing for the old content (a file a reader holds open, a
 * directory someone sits in) until the kernel forgets it; a number given again was forgotten
 * by the kernel, pages and all. The kernel never sees one number change content, so it never
 * mixes pages of the old file with the new.
 *
 * Locking: inodes.lock protects the map, the slots, and every node's nlookup and refs. The
 * rest of a node is immutable after creation and read without the lock by whoever holds a
 * ref.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

#define FSD_CONTENT_KEY 112 /* "\001" HEX " " MODE " " MTIME */

/* FNV-1a: short keys, no adversary who can pick many paths of one package version. */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

uint64_t fsd_strmap_get(const struct fsd_strmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return 0;
	for (i = hash_str(key) & (m->cap - 1); m->slots[i].key; i = (i + 1) & (m->cap - 1))
		if (strcmp(m->slots[i].key, key) == 0)
			return m->slots[i].val;
	return 0;
}

static void slot_insert(struct fsd_strmap_slot *slots, size_t cap, char *key, uint64_t val)
{
	size_t i;

	for (i = hash_str(key) & (cap - 1); slots[i].key; i = (i + 1) & (cap - 1))
		;
	slots[i].key = key;
	slots[i].val = val;
}

int fsd_strmap_put(struct fsd_strmap *m, const char *key, uint64_t val)
{
	char *k;

	if (2 * (m->n + 1) > m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 64;
		struct fsd_strmap_slot *s = calloc(cap, sizeof(*s));

		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key)
				slot_insert(s, cap, m->slots[i].key, m->slots[i].val);
		free(m->slots);
		m->slots = s;
		m->cap = cap;
	}
	k = strdup(key);
	if (!k)
		return -ENOMEM;
	slot_insert(m->slots, m->cap, k, val);
	m->n++;
	return 0;
}

uint64_t fsd_strmap_replace(struct fsd_strmap *m, const char *key, uint64_t val)
{
	uint64_t old;
	size_t i;

	if (!m->cap)
		return 0;
	for (i = hash_str(key) & (m->cap - 1); m->slots[i].key; i = (i + 1) & (m->cap - 1)) {
		if (strcmp(m->slots[i].key, key) == 0) {
			old = m->slots[i].val;
			m->slots[i].val = val;
			return old;
		}
	}
	return 0;
}

/* Remove key when it maps to val (linear probing: the entries after it that would no
 * longer be found move back). */
static void strmap_remove(struct fsd_strmap *m, const char *key, uint64_t val)
{
	size_t mask = m->cap - 1, i, j, h;

	if (!m->cap)
		return;
	for (i = hash_str(key) & mask; m->slots[i].key; i = (i + 1) & mask)
		if (strcmp(m->slots[i].key, key) == 0)
			break;
	if (!m->slots[i].key || m->slots[i].val != val)
		return;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->n--;
	for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		h = hash_str(m->slots[j].key) & mask;
		/* j's entry may fill the hole at i when i lies cyclically in [h, j) */
		if (j > i ? (h <= i || h > j) : (h <= i && h > j)) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
}

void fsd_strmap_fini(struct fsd_strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------------------------ */

static void node_free(struct fsd_inode *n)
{
	if (!n)
		return;
	fsd_vtree_unref(n->vt);
	free((char *)n->path);
	free(n->pkg);
	free(n->ver);
	free(n->slice);
	free(n);
}

int fsd_inodes_init(struct fsd_inodes *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->idle_max = FSD_INODES_IDLE;
	/* Number 0 is never used, 1 is the root (FUSE_ROOT_ID), whose node lives forever. */
	t->cap = 1024;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->slots[FUSE_ROOT_ID].path = strdup("");
	t->slots[FUSE_ROOT_ID].node = calloc(1, sizeof(struct fsd_inode));
	if (t->slots[FUSE_ROOT_ID].node)
		t->slots[FUSE_ROOT_ID].node->path = strdup("");
	if (!t->slots[FUSE_ROOT_ID].path || !t->slots[FUSE_ROOT_ID].node ||
	    !t->slots[FUSE_ROOT_ID].node->path ||
	    fsd_strmap_put(&t->bypath, "", FUSE_ROOT_ID) < 0) {
		fsd_inodes_fini(t);
		return -ENOMEM;
	}
	t->slots[FUSE_ROOT_ID].node->ino = FUSE_ROOT_ID;
	t->slots[FUSE_ROOT_ID].node->kind = FSD_N_ROOT;
	t->slots[FUSE_ROOT_ID].node->nlookup = 1;
	t->nslots = FUSE_ROOT_ID + 1;
	return 0;
}

void fsd_inodes_fini(struct fsd_inodes *t)
{
	for (size_t i = 0; i < t->nslots; i++) {
		node_free(t->slots[i].node);
		free(t->slots[i].path);
		free(t->slots[i].key);
	}
	free(t->slots);
	free(t->freed);
	fsd_strmap_fini(&t->bypath);
	fsd_strmap_fini(&t->gens);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

/* The number of the manifest a node like proto belongs to (gens), 0 for nodes outside
 * versions. Called with the lock held. @return 0; -ENOMEM. */
static int gen_of(struct fsd_inodes *t, const struct fsd_inode *proto, uint32_t *ret_gen)
{
	char hex[VERIFY_HASH_HEX];
	uint64_t gen;
	int ret;

	*ret_gen = 0;
	if (proto->kind != FSD_N_VER && proto->kind != FSD_N_ENTRY && proto->kind != FSD_N_IROOT)
		return 0;
	verify_hex(proto->vhash, VERIFY_HASH_LEN, hex);
	gen = fsd_strmap_get(&t->gens, hex);
	if (!gen) {
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

/* Drop idle numbers (a path, no node: the kernel forgot them) beyond idle_max: their keys
 * leave the map (unless a newer number has the key) and the numbers are given again. Called
 * with the lock held. */
static void drop_idle(struct fsd_inodes *t)
{
	struct fsd_inode_slot *sl;
	size_t n;

	while (t->nidle > t->idle_max) {
		if (t->nfreed == t->freedcap) {
			size_t cap = t->freedcap ? 2 * t->freedcap : 64;
			fuse_ino_t *f = realloc(t->freed, cap * sizeof(*f));

			if (!f)
				return; /* out of memory: keep them for now */
			t->freed = f;
			t->freedcap = cap;
		}
		for (n = 0; n < t->nslots; n++) {
			t->hand = t->hand + 1 < t->nslots ? t->hand + 1 : FUSE_ROOT_ID + 1;
			if (t->slots[t->hand].path && !t->slots[t->hand].node)
				break;
		}
		if (n == t->nslots) { /* none: the count is wrong (a bug), never loop on it */
			t->nidle = 0;
			return;
		}
		sl = &t->slots[t->hand];
		strmap_remove(&t->bypath, sl->key ? sl->key : sl->path, t->hand);
		free(sl->path);
		free(sl->key);
		memset(sl, 0, sizeof(*sl));
		t->freed[t->nfreed++] = t->hand;
		t->nidle--;
	}
}

/* A number for key in manifest gen: the one it has, or a new one (also when its number
 * belongs to another manifest of its version: then key moves to the new number), first
 * noted for path. Called with the lock held. */
static int number_of(struct fsd_inodes *t, const char *key, const char *path, uint32_t gen,
		     fuse_ino_t *ret_ino)
{
	fuse_ino_t ino = fsd_strmap_get(&t->bypath, key), fresh;
	char *p, *k = NULL;
	int ret;

	if (ino && t->slots[ino].gen == gen) {
		*ret_ino = ino;
		return 0;
	}
	if (!t->nfreed && t->nslots == t->cap) {
		size_t cap = 2 * t->cap;
		struct fsd_inode_slot *s = realloc(t->slots, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		memset(s + t->cap, 0, (cap - t->cap) * sizeof(*s));
		t->slots = s;
		t->cap = cap;
	}
	fresh = t->nfreed ? t->freed[t->nfreed - 1] : t->nslots;
	p = strdup(path);
	if (p && strcmp(key, path) != 0)
		k = strdup(key);
	if (!p || (!k && strcmp(key, path) != 0)) {
		free(p);
		return -ENOMEM;
	}
	if (ino) {
		fsd_strmap_replace(&t->bypath, key, fresh);
	} else {
		ret = fsd_strmap_put(&t->bypath, key, fresh);
		if (ret < 0) {
			free(p);
			free(k);
			return ret;
		}
	}
	if (t->nfreed)
		t->nfreed--;
	else
		t->nslots++;
	t->slots[fresh].path = p;
	t->slots[fresh].key = k;
	t->slots[fresh].gen = gen;
	t->nidle++; /* until its node is made */
	*ret_ino = fresh;
	return 0;
}

/* Free a node nobody holds (its slot may hold a newer node of the same number by now).
 * Called with the lock held; the root is never freed. */
static void maybe_free(struct fsd_inodes *t, struct fsd_inode *n)
{
	if (n->nlookup || n->refs || n->ino == FUSE_ROOT_ID)
		return;
	if (t->slots[n->ino].node == n) {
		t->slots[n->ino].node = NULL;
		t->nidle++;
		drop_idle(t);
	}
	node_free(n);
}

static struct fsd_inode *node_make(const struct fsd_inode *proto, fuse_ino_t ino, const char *path)
{
	struct fsd_inode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->ino = ino;
	n->kind = proto->kind;
	n->path = strdup(path); /* its own: the slot's may be dropped while n is held */
	n->idx = proto->idx;
	memcpy(n->vhash, proto->vhash, VERIFY_HASH_LEN);
	n->pkg = proto->pkg ? strdup(proto->pkg) : NULL;
	n->ver = proto->ver ? strdup(proto->ver) : NULL;
	n->slice = proto->slice ? strdup(proto->slice) : NULL;
	if (!n->path || (proto->pkg && !n->pkg) || (proto->ver && !n->ver) ||
	    (proto->slice && !n->slice)) {
		node_free(n);
		return NULL;
	}
	n->vt = proto->vt ? fsd_vtree_ref(proto->vt) : NULL;
	return n;
}

/* The key of a regular file entry: its content and attributes (the owner is always root),
 * whatever path, package or version reaches it. \001 keeps it apart from every path. */
static bool content_key(const struct fsd_inode *proto, char key[FSD_CONTENT_KEY])
{
	struct verify_entry ebuf;
	const struct verify_entry *e = fsd_node_entry(proto, &ebuf);
	char hex[VERIFY_HASH_HEX];

	if (!e || e->type != VERIFY_FILE)
		return false;
	verify_hex(e->hash, VERIFY_HASH_LEN, hex);
	snprintf(key, FSD_CONTENT_KEY, "\001%s %o %" PRId64, hex, (unsigned)e->mode, e->mtime);
	return true;
}

/* Whether two nodes belong to one view: both the top level (NULL), or one slice. */
static bool same_view(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int fsd_inodes_get(struct fsd_inodes *t, const char *path, const struct fsd_inode *proto,
		   bool lookup, struct fsd_inode **ret_n)
{
	char ckey[FSD_CONTENT_KEY];
	struct fsd_inode *n;
	fuse_ino_t ino;
	uint32_t gen = 0;
	int ret;

	const char *key = content_key(proto, ckey) ? ckey : path;

	pthread_mutex_lock(&t->lock);
	ret = key == ckey ? 0 : gen_of(t, proto, &gen);
	if (ret == 0)
		ret = number_of(t, key, path, key == ckey ? 0 : gen, &ino);
	if (ret < 0)
		goto out;
	n = t->slots[ino].node;
	if (!n || (key == ckey && (n->vt != proto->vt || !same_view(n->slice, proto->slice)))) {
		/* A file reached through another tree than its node's, or through another view (the
		 * top level, a slice): the node moves to the tree and view of this lookup (one
		 * whose catalog signs it now); holders of the old keep it. */
		struct fsd_inode *old = n;

		n = node_make(proto, ino, t->slots[ino].path);
		if (!n) {
			ret = -ENOMEM;
			goto out;
		}
		t->slots[ino].node = n;
		if (!old)
			t->nidle--;
		if (old) {
			n->nlookup = old->nlookup;
			old->nlookup = 0;
			maybe_free(t, old);
		}
	}
	n->refs++;
	if (lookup)
		n->nlookup++;
	*ret_n = n;
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

struct fsd_inode *fsd_inodes_ref(struct fsd_inodes *t, fuse_ino_t ino)
{
	struct fsd_inode *n = NULL;

	pthread_mutex_lock(&t->lock);
	if (ino < t->nslots && t->slots[ino].node) {
		n = t->slots[ino].node;
		n->refs++;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

void fsd_inodes_put(struct fsd_inodes *t, struct fsd_inode *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&t->lock);
	n->refs--;
	maybe_free(t, n);
	pthread_mutex_unlock(&t->lock);
}

void fsd_inodes_forget(struct fsd_inodes *t, fuse_ino_t ino, uint64_t nlookup)
{
	struct fsd_inode *n;

	pthread_mutex_lock(&t->lock);
	if (ino < t->nslots && (n = t->slots[ino].node)) {
		/* The kernel never forgets more than it looked up; if it did, clamp. */
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
		maybe_free(t, n);
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
