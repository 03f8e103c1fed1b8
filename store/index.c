/* store/index.c: the node store's LMDB index: objects, metadata, manifests, repositories.
 *
 * One environment in STOREDIR/index/ with five named databases (store/README.md has the byte
 * layouts): "storkfs" (the format marker), "objects", "meta", "manifests", "repos". Several
 * processes share it through LMDB's lock file; within a process every struct store on the
 * same index shares one environment (node.h says why). MDB_NOTLS lets FUSE and fetch threads
 * start read transactions on any thread. The map starts at 1 GiB and doubles on MDB_MAP_FULL up
 * to 64 GiB; LMDB's codes are turned into -errno / STORK_E* here and nowhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

#define MAP_INITIAL ((size_t)1 << 30)
#define MAP_MAX	    ((size_t)64 << 30)
#define MAP_MIN	    ((size_t)64 << 10)
#define MAXREADERS  1022
#define RETRIES	    16

#define FORMAT_KEY   "format"
#define FORMAT_VALUE "1"

#define OBJREC_VERSION	NODE_OBJREC_VERSION
#define OBJREC_LEN	NODE_OBJREC_LEN
#define REPOREC_VERSION NODE_REPOREC_VERSION
#define REPOREC_HEAD	NODE_REPOREC_HEAD

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node_env *registry; /* under registry_lock */

/* ------------------------------------------------------------------------------------------ */
/* Errors. */

static bool is_mdb_code(int rc)
{
	return rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE;
}

/* Convert what a transaction body or an mdb_* call returned. Our own negative codes pass
 * through with their detail; LMDB's get one naming the index file. */
static int mdb_err(struct node_env *e, int rc)
{
	const char *file = e ? e->file : "index";

	if (rc == 0)
		return 0;
	if (rc > 0) {
		stork_errorf("%s: %s", file, strerror(rc));
		return -rc;
	}
	if (!is_mdb_code(rc))
		return rc;
	switch (rc) {
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		stork_errorf("%s: the index is full at %zu bytes; set STORKFS_LMDB_MAPSIZE to a "
			     "larger size in bytes to let it grow further",
			     file, e ? e->mapsize : (size_t)0);
		return -ENOSPC;
	case MDB_READERS_FULL:
		stork_errorf("%s: too many readers at once (%d slots)", file, MAXREADERS);
		return -EAGAIN;
	case MDB_BAD_VALSIZE:
		stork_errorf("%s: key too long", file);
		return -ENAMETOOLONG;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
		stork_errorf("%s: transaction too large: %s", file, mdb_strerror(rc));
		return -E2BIG;
	case MDB_MAP_RESIZED:
		stork_errorf("%s: the map keeps being resized by another process", file);
		return -EAGAIN;
	case MDB_PANIC:
		stork_errorf("%s: %s", file, mdb_strerror(rc));
		return -EIO;
	default:
		/* MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH,
		 * MDB_INCOMPATIBLE, MDB_BAD_*, MDB_DBS_FULL... */
		stork_errorf("%s: not a usable storkfs index (%s); move the index/ directory "
			     "aside and run `stork fsck --repair` to rebuild the object index",
			     file, mdb_strerror(rc));
		return STORK_EFORMAT;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Transactions and the map size. */

static size_t current_mapsize(struct node_env *e)
{
	MDB_envinfo info;

	if (mdb_env_info(e->env, &info) != 0)
		return e->mapsize;
	return info.me_mapsize;
}

/* Double the map, unless another thread did since `seen` was read. */
static int grow_map(struct node_env *e, size_t seen)
{
	size_t size;
	int rc, r = 0;

	pthread_rwlock_wrlock(&e->maplock);
	if (e->mapsize != seen)
		goto out;
	if (e->mapsize >= e->mapmax) {
		r = mdb_err(e, MDB_MAP_FULL);
		goto out;
	}
	size = e->mapsize > e->mapmax / 2 ? e->mapmax : 2 * e->mapsize;
	rc = mdb_env_set_mapsize(e->env, size);
	if (rc != 0) {
		r = mdb_err(e, rc);
		goto out;
	}
	e->mapsize = current_mapsize(e);
out:
	pthread_rwlock_unlock(&e->maplock);
	return r;
}

/* Another process grew the map past ours: take its size. */
static int adopt_map(struct node_env *e)
{
	int rc;

	pthread_rwlock_wrlock(&e->maplock);
	rc = mdb_env_set_mapsize(e->env, 0);
	if (rc == 0)
		e->mapsize = current_mapsize(e);
	pthread_rwlock_unlock(&e->maplock);
	return rc ? mdb_err(e, rc) : 0;
}

int node_txn(struct node_env *e, bool write, int (*fn)(struct node_env *e, MDB_txn *txn, void *ctx),
	     void *ctx)
{
	MDB_txn *txn;
	size_t seen;
	int rc, r, tries = 0;
	int dead;

	for (;;) {
		pthread_rwlock_rdlock(&e->maplock);
		seen = e->mapsize;
		rc = mdb_txn_begin(e->env, NULL, write ? 0 : MDB_RDONLY, &txn);
		if (rc == 0) {
			rc = fn(e, txn, ctx);
			if (rc == 0 && write)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
		}
		pthread_rwlock_unlock(&e->maplock);

		if (rc == MDB_MAP_FULL && write) {
			r = grow_map(e, seen);
			if (r < 0)
				return r;
			continue;
		}
		if (rc == MDB_MAP_RESIZED && tries++ < RETRIES) {
			r = adopt_map(e);
			if (r < 0)
				return r;
			continue;
		}
		if (rc == MDB_READERS_FULL && tries++ < RETRIES) {
			/* Slots of dead processes are freed here; otherwise wait a little. */
			if (mdb_reader_check(e->env, &dead) != 0 || dead == 0)
				nanosleep(&(struct timespec){0, 1000000}, NULL);
			continue;
		}
		return mdb_err(e, rc);
	}
}

int node_sync(struct node_env *e)
{
	int rc;

	pthread_rwlock_rdlock(&e->maplock);
	rc = mdb_env_sync(e->env, 1);
	pthread_rwlock_unlock(&e->maplock);
	return mdb_err(e, rc);
}

/* ------------------------------------------------------------------------------------------ */
/* Opening: one environment per index per process. */

static int open_dbis(struct node_env *e, MDB_txn *txn, void *ctx)
{
	MDB_val k = {sizeof(FORMAT_KEY) - 1, (void *)FORMAT_KEY}, v;
	MDB_dbi info, main_dbi;
	MDB_stat st;
	int rc;

	rc = mdb_dbi_open(txn, "storkfs", 0, &info);
	if (rc == MDB_NOTFOUND) {
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
		if (rc == 0)
			rc = mdb_stat(txn, main_dbi, &st);
		if (rc != 0)
			return rc;
		if (st.ms_entries > 0) {
			stork_errorf("%s: not a storkfs index (an LMDB environment of something "
				     "else)",
				     e->file);
			return STORK_EFORMAT;
		}
		rc = mdb_dbi_open(txn, "storkfs", MDB_CREATE, &info);
		if (rc != 0)
			return rc;
		v.mv_size = sizeof(FORMAT_VALUE) - 1;
		v.mv_data = (void *)FORMAT_VALUE;
		rc = mdb_put(txn, info, &k, &v, 0);
		if (rc != 0)
			return rc;
	} else if (rc != 0) {
		return rc;
	} else {
		rc = mdb_get(txn, info, &k, &v);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if (rc == MDB_NOTFOUND || v.mv_size != sizeof(FORMAT_VALUE) - 1 ||
		    memcmp(v.mv_data, FORMAT_VALUE, v.mv_size) != 0) {
			stork_errorf("%s: index format %.*s, but this storkfs reads format "
				     "%s only",
				     e->file, rc == 0 && v.mv_size < 16 ? (int)v.mv_size : 1,
				     rc == 0 && v.mv_size < 16 ? (const char *)v.mv_data : "?",
				     FORMAT_VALUE);
			return STORK_EFORMAT;
		}
	}
	rc = mdb_dbi_open(txn, "objects", MDB_CREATE, &e->objects);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &e->meta);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "manifests", MDB_CREATE, &e->manifests);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "repos", MDB_CREATE, &e->repos);
	return rc;
}

/* STORKFS_LMDB_MAPSIZE: the initial map size in bytes (tests use a tiny one to exercise
 * growth; a node whose index outgrows 64 GiB sets a larger one, which also raises the cap). */
static int initial_mapsize(size_t *ret_size)
{
	const char *s = getenv("STORKFS_LMDB_MAPSIZE");
	unsigned long long v;
	char *end;

	if (!s || !*s) {
		*ret_size = MAP_INITIAL;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < MAP_MIN || v > SIZE_MAX / 2) {
		stork_errorf("STORKFS_LMDB_MAPSIZE=%s: not a size in bytes between %zu and %zu", s,
			     MAP_MIN, SIZE_MAX / 2);
		return -EINVAL;
	}
	*ret_size = (size_t)v;
	return 0;
}

static void env_free(struct node_env *e)
{
	if (!e)
		return;
	if (e->env)
		mdb_env_close(e->env);
	pthread_rwlock_destroy(&e->maplock);
	free(e->file);
	free(e);
}

static int env_new(const char *dir, struct node_env **ret_env)
{
	pthread_rwlockattr_t attr;
	struct node_env *e;
	size_t len = strlen(dir) + sizeof("/" NODE_INDEXDIR "/data.mdb"), mapsize;
	char *path = NULL;
	int rc, r, dead;

	r = initial_mapsize(&mapsize);
	if (r < 0)
		return r;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pthread_rwlockattr_init(&attr);
	/* Readers never starve a resize: each thread holds at most one read lock at a time. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->maplock, &attr);
	pthread_rwlockattr_destroy(&attr);
	e->file = malloc(len);
	path = malloc(len);
	if (!e->file || !path) {
		r = -ENOMEM;
		goto fail;
	}
	snprintf(e->file, len, "%s/" NODE_INDEXDIR "/data.mdb", dir);
	snprintf(path, len, "%s/" NODE_INDEXDIR, dir);
	e->mapmax = mapsize > MAP_MAX ? mapsize : MAP_MAX;

	rc = mdb_env_create(&e->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(e->env, 8);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(e->env, MAXREADERS);
	if (rc == 0)
		rc = mdb_env_set_mapsize(e->env, mapsize);
	if (rc == 0)
		/* MDB_NOMETASYNC: a power failure may undo the last commit. For object records that
		 * is the state a crash between rename and index leaves anyway (self-healing);
		 * metadata and pins are made durable with node_sync(). */
		rc = mdb_env_open(e->env, path, MDB_NOTLS | MDB_NOMETASYNC, 0644);
	if (rc != 0) {
		r = mdb_err(e, rc);
		goto fail;
	}
	/* Free the reader slots of processes that died inside a read transaction. */
	mdb_reader_check(e->env, &dead);
	e->mapsize = current_mapsize(e);
	r = node_txn(e, true, open_dbis, NULL);
	if (r < 0)
		goto fail;
	free(path);
	*ret_env = e;
	return 0;
fail:
	free(path);
	env_free(e);
	return r;
}

int node_env_open(const char *dir, int dirfd, struct node_env **ret_env)
{
	struct node_env *e;
	struct stat st;
	pid_t pid = getpid();
	int r = 0;

	if (fstatat(dirfd, NODE_INDEXDIR, &st, 0) < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_INDEXDIR ": %s", dir, strerror(-r));
		return r;
	}
	pthread_mutex_lock(&registry_lock);
	/* A forked child must not use its parent's environment: match the pid too. */
	for (e = registry; e; e = e->next)
		if (e->dev == st.st_dev && e->ino == st.st_ino && e->pid == pid)
			break;
	if (e) {
		e->refs++;
	} else {
		r = env_new(dir, &e);
		if (r == 0) {
			e->dev = st.st_dev;
			e->ino = st.st_ino;
			e->pid = pid;
			e->refs = 1;
			e->next = registry;
			registry = e;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (r == 0)
		*ret_env = e;
	return r;
}

void node_env_close(struct node_env *e)
{
	struct node_env **pp;

	if (!e)
		return;
	pthread_mutex_lock(&registry_lock);
	if (--e->refs > 0) {
		pthread_mutex_unlock(&registry_lock);
		return;
	}
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	env_free(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Object records. */

static void objrec_encode(const struct node_objrec *rec, uint8_t out[OBJREC_LEN])
{
	out[0] = OBJREC_VERSION;
	out[1] = rec->flags;
	out[2] = 0;
	out[3] = 0;
	node_put_le(out + 4, rec->pins, 4);
	node_put_le(out + 8, rec->size, 8);
	node_put_le(out + 16, (uint64_t)rec->last_use, 8);
}

int node_objrec_get(struct node_env *e, MDB_txn *txn, const uint8_t id[VERIFY_HASH_LEN],
		    struct node_objrec *ret_rec)
{
	MDB_val k = {VERIFY_HASH_LEN, (void *)id}, v;
	const uint8_t *p;
	char hex[VERIFY_HASH_HEX];
	int rc;

	rc = mdb_get(txn, e->objects, &k, &v);
	if (rc != 0)
		return rc;
	p = v.mv_data;
	if (v.mv_size != OBJREC_LEN || p[0] != OBJREC_VERSION) {
		verify_hex(id, VERIFY_HASH_LEN, hex);
		stork_errorf("%s: object %s: record of %zu bytes, version %u: not one this "
			     "storkfs reads",
			     e->file, hex, v.mv_size, v.mv_size ? p[0] : 0);
		return STORK_EFORMAT;
	}
	ret_rec->flags = p[1];
	ret_rec->pins = (uint32_t)node_get_le(p + 4, 4);
	ret_rec->size = node_get_le(p + 8, 8);
	ret_rec->last_use = (int64_t)node_get_le(p + 16, 8);
	return 0;
}

int node_objrec_put(struct node_env *e, MDB_txn *txn, const uint8_t id[VERIFY_HASH_LEN],
		    const struct node_objrec *rec)
{
	uint8_t buf[OBJREC_LEN];
	MDB_val k = {VERIFY_HASH_LEN, (void *)id}, v = {OBJREC_LEN, buf};

	objrec_encode(rec, buf);
	return mdb_put(txn, e->objects, &k, &v, 0);
}

struct index_ctx {
	const uint8_t *id;
	uint64_t size;
};

static int index_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct index_ctx *c = ctx;
	struct node_objrec rec;
	int rc;

	rc = node_objrec_get(e, txn, c->id, &rec);
	if (rc == MDB_NOTFOUND || rc == STORK_EFORMAT) {
		/* A malformed record is replaced: the object itself was just verified. */
		memset(&rec, 0, sizeof(rec));
		rec.last_use = time(NULL);
	} else if (rc != 0) {
		return rc;
	}
	rec.size = c->size;
	return node_objrec_put(e, txn, c->id, &rec);
}

int node_index_object(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size)
{
	struct index_ctx c = {id, size};

	return node_txn(s->env, true, index_fn, &c);
}

struct index_many_ctx {
	const struct node_index_item *items;
	size_t n;
};

static int index_many_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct index_many_ctx *c = ctx;
	int rc = 0;

	for (size_t i = 0; i < c->n && rc == 0; i++) {
		struct index_ctx one = {c->items[i].id, c->items[i].size};

		rc = index_fn(e, txn, &one);
	}
	return rc;
}

int node_index_objects(struct store *s, const struct node_index_item *items, size_t n)
{
	struct index_many_ctx c = {items, n};

	return node_txn(s->env, true, index_many_fn, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata: key "<repo>\0<name>". */

static int meta_key(struct store *s, const char *repo, const char *name, char **ret_key,
		    size_t *ret_len)
{
	size_t rlen, nlen, len;
	char *key;

	if (!repo || !name || !*repo || !*name) {
		stork_errorf("%s: metadata needs a repository and a file name", s->dir);
		return -EINVAL;
	}
	rlen = strlen(repo);
	nlen = strlen(name);
	len = rlen + 1 + nlen;
	if (len > (size_t)mdb_env_get_maxkeysize(s->env->env)) {
		stork_errorf("%s: metadata \"%s\" of repository \"%.64s\": repository and name "
			     "longer than %d bytes together",
			     s->dir, name, repo, mdb_env_get_maxkeysize(s->env->env) - 1);
		return -ENAMETOOLONG;
	}
	key = malloc(len);
	if (!key)
		return -ENOMEM;
	memcpy(key, repo, rlen);
	key[rlen] = '\0';
	memcpy(key + rlen + 1, name, nlen);
	*ret_key = key;
	*ret_len = len;
	return 0;
}

struct put_ctx {
	MDB_dbi *dbi; /* a field of the env: DBIs are filled in once at open */
	MDB_val k, v;
};

static int put_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct put_ctx *c = ctx;
	MDB_val v = c->v;

	return mdb_put(txn, *c->dbi, &c->k, &v, 0);
}

struct get_ctx {
	MDB_dbi *dbi;
	MDB_val k;
	uint8_t *buf;
	size_t len;
};

static int get_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct get_ctx *c = ctx;
	MDB_val v;
	int rc;

	free(c->buf);
	c->buf = NULL;
	rc = mdb_get(txn, *c->dbi, &c->k, &v);
	if (rc != 0)
		return rc;
	/* One more byte so that a zero-length value still gets a pointer. */
	c->buf = malloc(v.mv_size + 1);
	if (!c->buf)
		return -ENOMEM;
	memcpy(c->buf, v.mv_data, v.mv_size);
	c->len = v.mv_size;
	return 0;
}

int store_meta_put(struct store *s, const char *repo, const char *name, const void *buf, size_t len)
{
	struct put_ctx c = {&s->env->meta, {0, NULL}, {len, (void *)buf}};
	char *key = NULL;
	int fd = -1, r;

	r = meta_key(s, repo, name, &key, &c.k.mv_size);
	if (r < 0)
		return r;
	c.k.mv_data = key;
	/* The index, then its copy, both under the copy's lock (store/README.md, "Trusted
	 * metadata"). */
	r = node_trusted_open(s, repo, true, &fd);
	if (r == 0)
		r = node_txn(s->env, true, put_fn, &c);
	if (r == 0)
		r = node_sync(s->env);
	if (r == 0)
		r = node_trusted_write(s, fd, repo, name, buf, len);
	if (fd >= 0)
		close(fd);
	if (r < 0)
		stork_error_prefix("metadata %s of %s", name, repo);
	free(key);
	return r;
}

int store_meta_get(struct store *s, const char *repo, const char *name, uint8_t **ret_buf,
		   size_t *ret_len)
{
	struct get_ctx c = {&s->env->meta, {0, NULL}, NULL, 0};
	char *key = NULL;
	int r;

	r = meta_key(s, repo, name, &key, &c.k.mv_size);
	if (r < 0)
		return r;
	c.k.mv_data = key;
	r = node_txn(s->env, false, get_fn, &c);
	free(key);
	if (r < 0) {
		free(c.buf);
		return r;
	}
	*ret_buf = c.buf;
	*ret_len = c.len;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Repositories: key repo, value: version u8, 7 reserved bytes, last_refresh i64, url. */

/* put_fn for a repos record, keeping the trust byte of the record it replaces. */
static int repo_put_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct put_ctx *c = ctx;
	MDB_val old;
	int rc;

	rc = mdb_get(txn, *c->dbi, &c->k, &old);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	((uint8_t *)c->v.mv_data)[NODE_REPOREC_TRUST] =
	    rc == 0 && old.mv_size >= REPOREC_HEAD &&
		    ((const uint8_t *)old.mv_data)[0] == REPOREC_VERSION
		? ((const uint8_t *)old.mv_data)[NODE_REPOREC_TRUST]
		: 0;
	return put_fn(e, txn, ctx);
}

int store_repo_note_refresh(struct store *s, const char *repo, const char *url, int64_t when)
{
	struct put_ctx c = {&s->env->repos, {0, NULL}, {0, NULL}};
	size_t ulen;
	uint8_t *rec;
	int r;

	if (!repo || !*repo || !url) {
		stork_errorf("%s: a refresh needs a repository and a URL", s->dir);
		return -EINVAL;
	}
	if (strlen(repo) > (size_t)mdb_env_get_maxkeysize(s->env->env)) {
		stork_errorf("%s: repository \"%.64s...\": name too long", s->dir, repo);
		return -ENAMETOOLONG;
	}
	ulen = strlen(url);
	rec = calloc(1, REPOREC_HEAD + ulen);
	if (!rec)
		return -ENOMEM;
	rec[0] = REPOREC_VERSION;
	node_put_le(rec + 8, (uint64_t)when, 8);
	memcpy(rec + REPOREC_HEAD, url, ulen);
	c.k.mv_size = strlen(repo);
	c.k.mv_data = (void *)repo;
	c.v.mv_size = REPOREC_HEAD + ulen;
	c.v.mv_data = rec;
	r = node_txn(s->env, true, repo_put_fn, &c);
	if (r == 0)
		r = node_sync(s->env);
	free(rec);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Manifests by SHA-256. */

int store_manifest_put(struct store *s, const uint8_t id[VERIFY_HASH_LEN], const void *buf,
		       size_t len)
{
	struct put_ctx c = {&s->env->manifests, {VERIFY_HASH_LEN, (void *)id}, {len, (void *)buf}};
	uint8_t got[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], ghex[VERIFY_HASH_HEX];
	int r;

	r = verify_sha256(buf, len, got);
	if (r < 0)
		return r;
	verify_hex(id, VERIFY_HASH_LEN, hex);
	if (memcmp(got, id, VERIFY_HASH_LEN) != 0) {
		verify_hex(got, VERIFY_HASH_LEN, ghex);
		stork_errorf("manifest %s: content hashes to %s", hex, ghex);
		return -EINVAL;
	}
	r = node_txn(s->env, true, put_fn, &c);
	if (r == 0)
		r = node_sync(s->env);
	if (r < 0)
		stork_error_prefix("manifest %s", hex);
	return r;
}

int store_manifest_get(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint8_t **ret_buf,
		       size_t *ret_len)
{
	struct get_ctx c = {&s->env->manifests, {VERIFY_HASH_LEN, (void *)id}, NULL, 0};
	int r;

	r = node_txn(s->env, false, get_fn, &c);
	if (r < 0) {
		free(c.buf);
		return r;
	}
	*ret_buf = c.buf;
	*ret_len = c.len;
	return 0;
}
