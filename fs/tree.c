/* fs/tree.c: what the mounted tree holds. The catalog (packages and versions the verified
 * metadata signs, each with its manifest's hash) is rebuilt after each refresh and swapped in
 * whole; a version's tree (one signed manifest plus an index of each directory's children) is
 * built on first use and cached under its version, for as long as the catalog signs that same
 * manifest. When a refresh replaces the manifest (the version re-published by another
 * publisher after a revocation) or drops the version (revoked, refused by the policy, outside
 * a pin), the tree is stale: it leaves the cache, lookups and opens through it fail, and only
 * those who hold it (a file open, a directory someone sits in) keep it (fs/README.md
 * "Replaced versions").
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

/* ------------------------------------------------------------------------------------------ */
/* Catalog */

struct listing {
	struct verify_target *t;
	size_t n, cap;
};

static int list_one(void *ctx, const struct verify_target *t)
{
	struct listing *l = ctx;
	struct verify_target *c;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;

		c = realloc(l->t, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		l->t = c;
		l->cap = cap;
	}
	c = &l->t[l->n];
	memset(c, 0, sizeof(*c));
	c->name = strdup(t->name);
	c->version = strdup(t->version);
	c->role = strdup(t->role ? t->role : "");
	c->keyid = strdup(t->keyid ? t->keyid : "");
	memcpy(c->hash, t->hash, VERIFY_HASH_LEN);
	c->length = t->length;
	c->plain = t->plain;
	l->n++;
	if (!c->name || !c->version || !c->role || !c->keyid)
		return -ENOMEM;
	return 0;
}

static int cmp_target(const void *a, const void *b)
{
	const struct verify_target *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : fs_version_cmp(x->version, y->version);
}

static void catalog_free(struct fsd_catalog *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		for (size_t j = 0; j < c->pkgs[i].n; j++) {
			free(c->pkgs[i].vers[j].version);
			free(c->pkgs[i].vers[j].role);
			free(c->pkgs[i].vers[j].keyid);
		}
		free(c->pkgs[i].vers);
		free(c->pkgs[i].name);
	}
	free(c->pkgs);
	free(c);
}

/* Whether err is a verdict of the repository's signed state (signatures, expiry, versions,
 * patterns, format of a file whose hash the snapshot pins), after which the packages concerned
 * must not be shown, rather than a mirror that failed or served something other than the
 * signed file (missing, too long, wrong hash: fetched again at the next refresh). */
static bool is_verdict(int err)
{
	switch (err) {
	case STORK_EBADSIG:
	case STORK_EEXPIRED:
	case STORK_EROLLBACK:
	case STORK_EFORMAT:
	case STORK_EPATTERN:
	case STORK_ENAME:
	case STORK_EVERSION:
	case STORK_EUNSUPPORTED:
		return true;
	default:
		return false;
	}
}

int fsd_catalog_build(struct fs_repo *r, struct fsd_catalog **ret_c)
{
	return fsd_catalog_build_for(r, NULL, ret_c);
}

int fsd_catalog_build_for(struct fs_repo *r, const struct verify_policy *pol,
			  struct fsd_catalog **ret_c)
{
	struct listing l = {0};
	struct fsd_catalog *c = NULL;
	size_t i, j;
	int ret, listed;

	listed = pol ? fs_repo_list_policy(r, pol, list_one, &l) : fs_repo_list(r, list_one, &l);
	/* A role that fails verification is skipped (and logged); what verified is shown. When
	 * nothing could be listed because a mirror failed, the caller keeps the catalog it has;
	 * when the signed state refuses everything (a pinned publisher re-signed by another key),
	 * the catalog is empty. */
	if (listed == -ENOMEM || (listed < 0 && l.n == 0 && !is_verdict(listed))) {
		ret = listed;
		goto out;
	}
	if (l.n)
		qsort(l.t, l.n, sizeof(*l.t), cmp_target);
	ret = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c || (l.n && !(c->pkgs = calloc(l.n, sizeof(*c->pkgs)))))
		goto out;
	c->refs = 1;
	c->built = time(NULL);
	c->partial = listed != 0;
	for (i = 0; i < l.n; i = j) {
		struct fsd_cat_pkg *p = &c->pkgs[c->n];

		for (j = i; j < l.n && strcmp(l.t[j].name, l.t[i].name) == 0; j++)
			;
		p->vers = calloc(j - i, sizeof(*p->vers));
		if (!p->vers)
			goto out;
		c->n++;
		p->name = l.t[i].name;
		l.t[i].name = NULL;
		for (size_t k = i; k < j; k++) {
			struct fsd_cat_ver *v = &p->vers[p->n++];

			v->version = l.t[k].version;
			v->role = l.t[k].role;
			v->keyid = l.t[k].keyid;
			l.t[k].version = l.t[k].role = l.t[k].keyid = NULL;
			memcpy(v->hash, l.t[k].hash, VERIFY_HASH_LEN);
			v->length = l.t[k].length;
			v->plain = l.t[k].plain;
		}
	}
	*ret_c = c;
	c = NULL;
	ret = 0;
out:
	catalog_free(c);
	for (i = 0; i < l.n; i++)
		verify_target_fini(&l.t[i]);
	free(l.t);
	return ret;
}

struct fsd_catalog *fsd_catalog_ref(struct fsd_catalog *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void fsd_catalog_unref(struct fsd_catalog *c)
{
	if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		catalog_free(c);
}

const struct fsd_cat_pkg *fsd_catalog_pkg(const struct fsd_catalog *c, const char *name)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int k = strcmp(name, c->pkgs[mid].name);

		if (k == 0)
			return &c->pkgs[mid];
		if (k < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct fsd_cat_ver *fsd_catalog_ver(const struct fsd_cat_pkg *p, const char *version)
{
	/* Exact names, not the ordering: "1.0" and "1.00" compare equal but are two versions. */
	for (size_t i = 0; p && i < p->n; i++)
		if (strcmp(p->vers[i].version, version) == 0)
			return &p->vers[i];
	return NULL;
}

bool fsd_catalog_signs(const struct fsd_catalog *c, const char *pkg, const char *ver,
		       const uint8_t hash[VERIFY_HASH_LEN])
{
	const struct fsd_cat_ver *cv = fsd_catalog_ver(fsd_catalog_pkg(c, pkg), ver);

	return cv && memcmp(cv->hash, hash, VERIFY_HASH_LEN) == 0;
}

struct fsd_catalog *fsd_catalog(struct fsd *d)
{
	struct fsd_catalog *c;

	pthread_mutex_lock(&d->cat_lock);
	c = fsd_catalog_ref(d->cat);
	pthread_mutex_unlock(&d->cat_lock);
	return c;
}

struct fsd_catalog *fsd_catalog_of(struct fsd *d, const char *slice)
{
	struct fsd_catalog *c = NULL;

	if (!slice)
		return fsd_catalog(d);
	pthread_mutex_lock(&d->slice_lock);
	for (size_t i = 0; i < d->nslices && !c; i++)
		if (strcmp(d->slices[i]->name, slice) == 0)
			c = fsd_catalog_ref(d->slices[i]->cat);
	pthread_mutex_unlock(&d->slice_lock);
	return c;
}

void fsd_set_catalog(struct fsd *d, struct fsd_catalog *c)
{
	struct fsd_catalog *old;

	pthread_mutex_lock(&d->cat_lock);
	old = d->cat;
	d->cat = c;
	pthread_mutex_unlock(&d->cat_lock);
	fsd_catalog_unref(old);
}

/* ------------------------------------------------------------------------------------------ */
/* Version trees */

static void vtree_free(struct fsd_vtree *t)
{
	if (!t)
		return;
	fsd_ahead_free(t->ahead);
	store_tree_free(t->ix);
	free(t->name);
	free(t->version);
	free(t->signer);
	free(t);
}

struct fsd_vtree *fsd_vtree_ref(struct fsd_vtree *t)
{
	__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void fsd_vtree_unref(struct fsd_vtree *t)
{
	if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
		vtree_free(t);
}

long fsd_vtree_find(const struct fsd_vtree *t, const char *path)
{
	return store_tree_find(t->ix, path);
}

size_t fsd_vtree_n(const struct fsd_vtree *t)
{
	return store_tree_n(t->ix);
}

void fsd_vtree_entry(const struct fsd_vtree *t, size_t i, struct verify_entry *ret_e)
{
	store_tree_entry(t->ix, i, ret_e);
}

const struct verify_entry *fsd_node_entry(const struct fsd_inode *n, struct verify_entry *buf)
{
	if (n->kind != FSD_N_ENTRY || !n->vt || n->idx < 0)
		return NULL;
	store_tree_entry(n->vt->ix, (size_t)n->idx, buf);
	return buf;
}

/* The tree index of target t from the node store: the one kept there when it checks, else
 * built from the verified manifest (from the store, else fetched) and kept for the next load.
 * A damaged index is said in the log and replaced. */
static int vtree_index(struct fsd *d, const struct verify_target *t, struct store_tree **ret_ix)
{
	struct verify_manifest *m = NULL;
	char text[1200];
	int ret;

	ret = store_tree_open(d->store, t->hash, ret_ix);
	if (ret == 0) {
		FSD_COUNT(d, trees_indexed, 1);
		return 0;
	}
	if (ret != -ENOENT) {
		/* STORK_EBADHASH's detail says what is wrong with the file: no code text. */
		fsd_log(d, "%s %s: tree index: %s; built again from the manifest", t->name,
			t->version,
			ret == STORK_EBADHASH
			    ? stork_error_detail()
			    : stork_error_text(stork_error_detail(), ret, text, sizeof(text)));
		store_tree_drop(d->store, t->hash);
		FSD_COUNT(d, trees_reindexed, 1);
	}
	ret = fs_repo_target_manifest(d->repo, t, &m);
	if (ret < 0)
		return ret;
	ret = store_tree_build(m, t->hash, ret_ix);
	verify_manifest_free(m);
	if (ret < 0)
		return ret;
	/* Best effort: built again next time. Saved, the tree is read back mapped: its pages are
	 * then the page cache's, not the daemon's (fs/README.md "Memory"). */
	if (store_tree_save(d->store, *ret_ix) == 0) {
		struct store_tree *mapped = NULL;

		if (store_tree_open(d->store, t->hash, &mapped) == 0) {
			store_tree_free(*ret_ix);
			*ret_ix = mapped;
		}
	}
	return 0;
}

/* The tree of target t: exactly the manifest the catalog signed (its hash and length), even
 * when a refresh has replaced it since: the caller compares. */
static int vtree_build(struct fsd *d, const struct verify_target *t, struct fsd_vtree **ret_t)
{
	struct fsd_vtree *vt = NULL;
	size_t len = strlen(t->role) + strlen(t->keyid) + 2;
	int ret = -ENOMEM;

	vt = calloc(1, sizeof(*vt));
	if (!vt)
		goto out;
	vt->refs = 1;
	vt->name = strdup(t->name);
	vt->version = strdup(t->version);
	vt->signer = malloc(len);
	if (!vt->name || !vt->version || !vt->signer)
		goto out;
	snprintf(vt->signer, len, "%s %s", t->role, t->keyid);
	memcpy(vt->hash, t->hash, VERIFY_HASH_LEN);
	ret = vtree_index(d, t, &vt->ix);
	if (ret < 0)
		goto out;
	*ret_t = vt;
	vt = NULL;
out:
	vtree_free(vt);
	return ret;
}

/* Keep the cache within conf.max_trees: drop the least recently used trees that only the
 * cache holds, down to three quarters of the bound (so eviction runs once per many loads).
 * A tree that inodes or open directories still hold stays. The caller holds vt_lock. */
static void vtree_evict_locked(struct fsd *d)
{
	size_t target = d->conf.max_trees - d->conf.max_trees / 4, n = d->vtrees.n, nvict = 0;
	struct fsd_strmap keep = {0};
	struct fsd_vtree **victims;

	if (n <= d->conf.max_trees)
		return;
	victims = calloc(n, sizeof(*victims));
	if (!victims)
		return; /* try again at the next load */
	/* Choose: repeatedly the oldest unused tree not chosen yet (n is small). */
	while (n - nvict > target) {
		struct fsd_vtree *old = NULL;

		for (size_t i = 0; i < d->vtrees.cap; i++) {
			struct fsd_vtree *t = (struct fsd_vtree *)(uintptr_t)d->vtrees.slots[i].val;
			bool chosen = false;

			if (!d->vtrees.slots[i].key ||
			    __atomic_load_n(&t->refs, __ATOMIC_ACQUIRE) != 1)
				continue;
			for (size_t k = 0; k < nvict && !chosen; k++)
				chosen = victims[k] == t;
			if (!chosen && (!old || t->last_use < old->last_use))
				old = t;
		}
		if (!old)
			break; /* everything left is in use */
		victims[nvict++] = old;
	}
	/* The map cannot delete in place: rebuild it from what stays. */
	for (size_t i = 0; i < d->vtrees.cap; i++) {
		struct fsd_strmap_slot *sl = &d->vtrees.slots[i];
		bool chosen = false;

		if (!sl->key)
			continue;
		for (size_t k = 0; k < nvict && !chosen; k++)
			chosen = victims[k] == (struct fsd_vtree *)(uintptr_t)sl->val;
		if (!chosen && fsd_strmap_put(&keep, sl->key, sl->val) < 0) {
			fsd_strmap_fini(&keep); /* out of memory: evict nothing now */
			free(victims);
			return;
		}
	}
	fsd_strmap_fini(&d->vtrees);
	d->vtrees = keep;
	for (size_t k = 0; k < nvict; k++)
		fsd_vtree_unref(victims[k]);
	FSD_COUNT(d, trees_evicted, nvict);
	free(victims);
}

/* The cached tree of key when it is the manifest hash: referenced, else NULL. */
static struct fsd_vtree *vtree_cached(struct fsd *d, const char *key,
				      const uint8_t hash[VERIFY_HASH_LEN])
{
	struct fsd_vtree *t;

	pthread_mutex_lock(&d->vt_lock);
	t = (struct fsd_vtree *)(uintptr_t)fsd_strmap_get(&d->vtrees, key);
	if (t && memcmp(t->hash, hash, VERIFY_HASH_LEN) != 0)
		t = NULL; /* replaced since: fsd_retire_trees drops it */
	if (t) {
		fsd_vtree_ref(t);
		__atomic_store_n(&t->last_use, fsd_now(), __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&d->vt_lock);
	return t;
}

/* A tree of at least this many entries returns the memory its parse took at once. */
#define FSD_TRIM_ENTRIES 4096
static int building; /* trees being built now, in any mount of this process */

struct tree_job {
	struct verify_target t; /* name, version, length, hash, role, keyid */
	char *key;
};

static void tree_job_free(void *arg)
{
	struct tree_job *j = arg;

	verify_target_fini(&j->t);
	free(j->key);
	free(j);
}

/* On a job thread: build the tree (fetching its manifest when the store lacks it) and put it
 * in the cache. */
static int tree_job_run(struct fsd *d, void *arg, void **ret_result)
{
	struct tree_job *j = arg;
	struct fsd_vtree *t = NULL, *have;
	bool current;
	int ret;

	__atomic_add_fetch(&building, 1, __ATOMIC_RELAXED);
	ret = vtree_build(d, &j->t, &t);
	/* Parsing a manifest takes several times what its tree keeps (the JSON document), freed
	 * in small pieces between the tree's: the last of the builds running at once gives those
	 * pages back (fs/README.md "Memory"). */
	if (__atomic_sub_fetch(&building, 1, __ATOMIC_ACQ_REL) == 0 && ret == 0 &&
	    store_tree_n(t->ix) >= FSD_TRIM_ENTRIES)
		malloc_trim(0);
	if (ret < 0)
		return ret;
	FSD_COUNT(d, trees_loaded, 1);
	t->last_use = fsd_now();
	current = fsd_current(d, t->name, t->version, t->hash); /* not under vt_lock */
	pthread_mutex_lock(&d->vt_lock);
	have = (struct fsd_vtree *)(uintptr_t)fsd_strmap_get(&d->vtrees, j->key);
	if (have && memcmp(have->hash, t->hash, VERIFY_HASH_LEN) == 0) {
		fsd_vtree_ref(have);
		fsd_vtree_unref(t);
		t = have;
	} else if (have) {
		/* Another manifest of this version. The one the catalog signs now takes its place
		 * (the old tree stays with whoever holds it); one a refresh replaced while it
		 * loaded goes to its callers only. */
		if (current) {
			fsd_strmap_replace(&d->vtrees, j->key,
					   (uint64_t)(uintptr_t)fsd_vtree_ref(t));
			fsd_vtree_unref(have);
		}
	} else if (fsd_strmap_put(&d->vtrees, j->key, (uint64_t)(uintptr_t)t) == 0) {
		fsd_vtree_ref(t); /* the cache's */
		vtree_evict_locked(d);
	}
	pthread_mutex_unlock(&d->vt_lock);
	*ret_result = t;
	return 0;
}

static void *tree_ref_void(void *t)
{
	return fsd_vtree_ref(t);
}

static void tree_unref_void(void *t)
{
	fsd_vtree_unref(t);
}

static const struct fsd_job_ops tree_job_ops = {
    .run = tree_job_run,
    .arg_free = tree_job_free,
    .result_ref = tree_ref_void,
    .result_unref = tree_unref_void,
};

int fsd_vtree(struct fsd *d, const char *pkg, const char *ver, struct fsd_vtree **ret_t)
{
	return fsd_vtree_in(d, NULL, pkg, ver, ret_t);
}

/* A slice's trees share the cache with the node's (one tree per signed manifest): a slice
 * whose pinned role signs another manifest of a version than the node does gets its own tree,
 * cached only while the node signs nothing else for that version. */
int fsd_vtree_in(struct fsd *d, const char *slice, const char *pkg, const char *ver,
		 struct fsd_vtree **ret_t)
{
	char key[2 * 130 + 2], jkey[sizeof(key) + VERIFY_HASH_HEX + 8], hex[VERIFY_HASH_HEX];
	struct fsd_catalog *cat = NULL;
	const struct fsd_cat_ver *cv;
	struct tree_job *j = NULL;
	void *res = NULL;
	int ret;

	if ((size_t)snprintf(key, sizeof(key), "%s/%s", pkg, ver) >= sizeof(key))
		return -ENAMETOOLONG;
	cat = fsd_catalog_of(d, slice);
	cv = cat ? fsd_catalog_ver(fsd_catalog_pkg(cat, pkg), ver) : NULL;
	if (!cv) {
		stork_errorf("%s %s: no longer signed (replaced or refused by a refresh)", pkg,
			     ver);
		ret = -ESTALE;
		goto out;
	}
	*ret_t = vtree_cached(d, key, cv->hash);
	if (*ret_t) {
		ret = 0;
		goto out;
	}
	ret = -ENOMEM;
	j = calloc(1, sizeof(*j));
	if (!j)
		goto out;
	j->t.name = strdup(pkg);
	j->t.version = strdup(ver);
	j->t.role = strdup(cv->role);
	j->t.keyid = strdup(cv->keyid);
	j->key = strdup(key);
	if (!j->t.name || !j->t.version || !j->t.role || !j->t.keyid || !j->key)
		goto out;
	j->t.length = cv->length;
	j->t.plain = cv->plain;
	memcpy(j->t.hash, cv->hash, VERIFY_HASH_LEN);
	/* One job per manifest: a load of the replaced one is never joined for the new one. */
	verify_hex(cv->hash, VERIFY_HASH_LEN, hex);
	snprintf(jkey, sizeof(jkey), "tree:%s/%s", key, hex);
	fsd_catalog_unref(cat);
	cat = NULL;
	ret = fsd_job(d, jkey, "the manifest", &tree_job_ops, j, &res);
	j = NULL; /* consumed */
	if (ret < 0)
		goto out;
	if (!res) {
		ret = -EIO; /* cannot happen: a tree job that succeeds has a tree */
		goto out;
	}
	*ret_t = res;
out:
	if (j)
		tree_job_free(j);
	fsd_catalog_unref(cat);
	return ret;
}

bool fsd_current(struct fsd *d, const char *pkg, const char *ver,
		 const uint8_t hash[VERIFY_HASH_LEN])
{
	return fsd_current_in(d, NULL, pkg, ver, hash);
}

bool fsd_current_in(struct fsd *d, const char *slice, const char *pkg, const char *ver,
		    const uint8_t hash[VERIFY_HASH_LEN])
{
	struct fsd_catalog *cat = fsd_catalog_of(d, slice);
	bool ret = cat && fsd_catalog_signs(cat, pkg, ver, hash);

	fsd_catalog_unref(cat);
	return ret;
}

int fsd_signer(struct fsd *d, const struct fsd_vtree *t, char *buf, size_t cap)
{
	struct fsd_catalog *cat = fsd_catalog(d);
	const struct fsd_cat_ver *cv = fsd_catalog_ver(fsd_catalog_pkg(cat, t->name), t->version);
	int len;

	/* A publisher's key rotation re-signs the same manifests with the new key. */
	if (cv && memcmp(cv->hash, t->hash, VERIFY_HASH_LEN) == 0)
		len = snprintf(buf, cap, "%s %s", cv->role, cv->keyid);
	else
		len = snprintf(buf, cap, "%s", t->signer);
	fsd_catalog_unref(cat);
	return len;
}

void fsd_retire_trees(struct fsd *d, const struct fsd_catalog *c)
{
	struct fsd_strmap keep = {0};
	struct fsd_vtree **gone;
	size_t n = 0;

	pthread_mutex_lock(&d->vt_lock);
	gone = calloc(d->vtrees.n ? d->vtrees.n : 1, sizeof(*gone));
	if (!gone)
		goto out; /* stale trees stay cached, unused: the cache bound evicts them */
	for (size_t i = 0; i < d->vtrees.cap; i++) {
		struct fsd_strmap_slot *sl = &d->vtrees.slots[i];
		struct fsd_vtree *t = (struct fsd_vtree *)(uintptr_t)sl->val;

		if (!sl->key)
			continue;
		if (!fsd_catalog_signs(c, t->name, t->version, t->hash))
			gone[n++] = t;
		else if (fsd_strmap_put(&keep, sl->key, sl->val) < 0)
			goto out;
	}
	fsd_strmap_fini(&d->vtrees);
	d->vtrees = keep;
	memset(&keep, 0, sizeof(keep));
	for (size_t k = 0; k < n; k++)
		fsd_vtree_unref(gone[k]); /* the cache's: freed unless someone holds it */
out:
	pthread_mutex_unlock(&d->vt_lock);
	fsd_strmap_fini(&keep);
	free(gone);
}

/* ------------------------------------------------------------------------------------------ */
/* Attributes */

static void stat_dir(struct stat *st, time_t when)
{
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = when;
}

int fsd_stat(struct fsd *d, const struct fsd_inode *n, struct stat *st)
{
	struct fsd_catalog *cat = NULL;
	const struct fsd_cat_pkg *p;
	const struct verify_entry *e;
	struct verify_entry ebuf;
	uint32_t keep;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_uid = 0;
	st->st_gid = 0;
	st->st_blksize = 65536;
	switch (n->kind) {
	case FSD_N_ROOT:
	case FSD_N_PKG:
	case FSD_N_VER:
	case FSD_N_SLICES:
	case FSD_N_SLICE:
		/* /.slices itself: the node's catalog; below it, the slice's (gone: ENOENT). */
		cat = fsd_catalog_of(d, n->slice);
		if (!cat) {
			ret = -ENOENT;
			break;
		}
		stat_dir(st, cat->built);
		break;
	case FSD_N_IROOT:
		stat_dir(st, (time_t)n->vt->made);
		break;
	case FSD_N_LATEST:
		cat = fsd_catalog_of(d, n->slice);
		p = cat ? fsd_catalog_pkg(cat, n->pkg) : NULL;
		if (!p || !p->n) {
			ret = -ENOENT;
			break;
		}
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(p->vers[p->n - 1].version);
		st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = cat->built;
		break;
	case FSD_N_ENTRY:
		fsd_vtree_entry(n->vt, (size_t)n->idx, &ebuf);
		e = &ebuf;
		/* Never writable; set-id bits only when the mount allows them. */
		keep = d->conf.allow_setuid ? 07555 : 01555;
		st->st_nlink = 1;
		st->st_size = (off_t)e->size;
		st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = e->mtime;
		switch (e->type) {
		case VERIFY_DIR:
			st->st_mode = S_IFDIR | (e->mode & keep);
			st->st_nlink = 2;
			st->st_size = 0;
			break;
		case VERIFY_FILE:
			st->st_mode = S_IFREG | (e->mode & keep);
			st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
			break;
		case VERIFY_SYMLINK:
			st->st_mode = S_IFLNK | 0777;
			break;
		}
		break;
	}
	fsd_catalog_unref(cat);
	return ret;
}

double fsd_timeout(const struct fsd *d, const struct fsd_inode *n)
{
	switch (n->kind) {
	case FSD_N_VER:
	case FSD_N_ENTRY:
		return FSD_IMMUTABLE_TIMEOUT;
	case FSD_N_IROOT:
		/* Looked up at every path walk through it: the next walk after `stork install`
		 * finds the new generation (fs/installed.c). */
		return 0;
	default:
		/* What a refresh may change is revalidated at least once per interval. */
		return d->conf.refresh;
	}
}
