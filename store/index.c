/* store/index.c: the node store's LMDB index: objects, metadata, manifests, repositories.
 *
 * One environment in STOREDIR/index/ with six named databases (store/README.md has the byte
 * layouts): "storkfs" (the format marker), "objects", "meta", "manifests", "repos", "generations"
 * (gen.c). Several processes share it through LMDB's lock file; within a process every struct store
 * on the same index shares one environment (node.h says why). MDB_NOTLS lets FUSE and fetch threads
 * start read transactions on any thread. The map starts at 1 GiB and doubles on MDB_MAP_FULL up
 * to 64 GiB; LMDB's codes are turned into -errno / STORK_E* here (node_mdb_err) and nowhere
 * else. Opening the environment is in open.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "store/node.h"

#define RETRIES 16

#define OBJREC_VERSION	NODE_OBJREC_VERSION
#define OBJREC_LEN	NODE_OBJREC_LEN
#define REPOREC_VERSION NODE_REPOREC_VERSION
#define REPOREC_HEAD	NODE_REPOREC_HEAD

/* ------------------------------------------------------------------------------------------ */
/* Errors. */

static bool is_mdb_code(int rc)
{
	return rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE;
}

int node_mdb_err(struct node_env *e, int rc)
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
		stork_errorf("%s: too many readers at once (%d slots)", file, NODE_MAXREADERS);
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

size_t node_current_mapsize(struct node_env *e)
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
		r = node_mdb_err(e, MDB_MAP_FULL);
		goto out;
	}
	size = e->mapsize > e->mapmax / 2 ? e->mapmax : 2 * e->mapsize;
	rc = mdb_env_set_mapsize(e->env, size);
	if (rc != 0) {
		r = node_mdb_err(e, rc);
		goto out;
	}
	e->mapsize = node_current_mapsize(e);
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
		e->mapsize = node_current_mapsize(e);
	pthread_rwlock_unlock(&e->maplock);
	return rc ? node_mdb_err(e, rc) : 0;
}

/* A commit may count a page it never wrote: a page freed in the transaction that allocated it
 * (LMDB's loose pages) is not flushed, and when it is the last one data.mdb ends short of what
 * the meta page says. store_open refuses such a file (cut short, open.c), as after a large
 * eviction. So the file is given those pages (a hole: free pages no tree refers to) under the
 * writer lock, which no other writer extends the file meanwhile; a failure leaves it to the
 * next commit. */
static void cover_pages(struct node_env *e)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	mdb_filehandle_t fd;
	MDB_txn *txn;
	off_t need;

	if (mdb_env_get_fd(e->env, &fd) != 0 || mdb_env_stat(e->env, &st) != 0 ||
	    mdb_env_info(e->env, &info) != 0 || fstat(fd, &fst) < 0)
		return;
	need = ((off_t)info.me_last_pgno + 1) * (off_t)st.ms_psize;
	if (fst.st_size >= need || mdb_txn_begin(e->env, NULL, 0, &txn) != 0)
		return;
	/* Again under the lock: another writer may have committed since. */
	if (mdb_env_info(e->env, &info) == 0 && fstat(fd, &fst) == 0) {
		need = ((off_t)info.me_last_pgno + 1) * (off_t)st.ms_psize;
		if (fst.st_size < need && ftruncate(fd, need) < 0)
			need = 0; /* left to the next commit */
	}
	mdb_txn_abort(txn);
}

/* Where this process maps the file fd: LMDB's map of data.mdb, found in /proc/self/maps
 * (MDB_envinfo has the address only with MDB_FIXEDMAP). @return NULL when not found. */
static const char *map_base(int fd)
{
	unsigned long start, end, ino;
	unsigned long long off;
	unsigned maj, mnr;
	const char *base = NULL;
	struct stat st;
	char line[512];
	FILE *f;

	if (fstat(fd, &st) < 0 || !(f = fopen("/proc/self/maps", "re")))
		return NULL;
	while (!base && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %*s %llx %x:%x %lu", &start, &end, &off, &maj, &mnr,
			   &ino) == 6 &&
		    off == 0 && ino == st.st_ino && maj == major(st.st_dev) &&
		    mnr == minor(st.st_dev))
			base = (const char *)start;
	fclose(f);
	return base;
}

/* Whether [p, p + len) lies in the pages of a file of have bytes mapped at base, past the two
 * meta pages (no record lives in those). */
static bool in_written(const char *base, size_t psize, off_t have, const void *p, size_t len)
{
	const char *q = p;

	return q >= base + 2 * psize && (off_t)(q - base) <= have &&
	       (off_t)len <= have - (q - base);
}

/* Marks in tail the pages of one free-list record at or past first. @return 0; STORK_EFORMAT
 * when the record is not a page list. */
static int mark_free(const MDB_val *data, size_t first, size_t npages, uint8_t *tail)
{
	const size_t *ids = data->mv_data;
	size_t n;

	if (data->mv_size < sizeof(size_t) || data->mv_size % sizeof(size_t) != 0)
		return STORK_EFORMAT;
	n = ids[0]; /* LMDB's page list: its length, then the page numbers */
	if (n != data->mv_size / sizeof(size_t) - 1)
		return STORK_EFORMAT;
	for (size_t i = 1; i <= n; i++)
		if (ids[i] >= first && ids[i] - first < npages)
			tail[(ids[i] - first) / 8] |= (uint8_t)(1u << ((ids[i] - first) % 8));
	return 0;
}

int node_cover_free_tail(struct node_env *e)
{
	MDB_txn *lock = NULL, *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_envinfo info;
	MDB_val key, data;
	mdb_filehandle_t fd;
	struct stat fst;
	size_t first, npages;
	const char *base;
	uint8_t *tail = NULL;
	off_t have, need;
	MDB_stat st;
	int rc, r = STORK_EFORMAT;

	/* The writer lock: no other process extends the file meanwhile (MDB_NOTLS lets this
	 * thread read the free list beside it; LMDB opens no cursor on it in a write txn). */
	if (mdb_env_get_fd(e->env, &fd) != 0 || mdb_env_stat(e->env, &st) != 0 ||
	    mdb_txn_begin(e->env, NULL, 0, &lock) != 0)
		return STORK_EFORMAT;
	if (mdb_env_info(e->env, &info) != 0 || fstat(fd, &fst) < 0)
		goto out;
	need = ((off_t)info.me_last_pgno + 1) * (off_t)st.ms_psize;
	have = fst.st_size;
	if (have >= need) { /* another process covered it */
		r = 0;
		goto out;
	}
	first = (size_t)have / st.ms_psize;
	npages = (size_t)(need / st.ms_psize) - first;
	tail = calloc(npages / 8 + 1, 1);
	if (!tail) {
		r = -ENOMEM;
		goto out;
	}
	if (ftruncate(fd, need) < 0)
		goto out;
	base = map_base(fd);
	if (!base || mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn) != 0 ||
	    mdb_cursor_open(txn, 0 /* the free list */, &cur) != 0)
		goto cut;
	for (rc = mdb_cursor_get(cur, &key, &data, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT)) {
		if (!in_written(base, st.ms_psize, have, key.mv_data, key.mv_size) ||
		    !in_written(base, st.ms_psize, have, data.mv_data, data.mv_size) ||
		    mark_free(&data, first, npages, tail) < 0)
			goto cut;
	}
	if (rc != MDB_NOTFOUND)
		goto cut;
	for (size_t i = 0; i < npages; i++)
		if (!(tail[i / 8] & (1u << (i % 8))))
			goto cut;
	r = 0;
	goto out;
cut:
	if (ftruncate(fd, have) < 0)
		r = -errno;
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	mdb_txn_abort(lock);
	free(tail);
	return r;
}

int node_txn(struct node_env *e, bool write, int (*fn)(struct node_env *e, MDB_txn *txn, void *ctx),
	     void *ctx)
{
	MDB_txn *txn;
	size_t seen;
	int rc, r, tries = 0;
	int dead;

	if (write && e->readonly) {
		stork_errorf("%s: read-only store: cannot store anything in it", e->dir);
		return -EROFS;
	}
	for (;;) {
		pthread_rwlock_rdlock(&e->maplock);
		seen = e->mapsize;
		rc = mdb_txn_begin(e->env, NULL, write ? 0 : MDB_RDONLY, &txn);
		if (rc == 0) {
			rc = fn(e, txn, ctx);
			if (rc == 0 && write) {
				rc = mdb_txn_commit(txn);
				if (rc == 0)
					cover_pages(e);
			} else {
				mdb_txn_abort(txn);
			}
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
		return node_mdb_err(e, rc);
	}
}

int node_sync(struct node_env *e)
{
	int rc;

	if (e->readonly)
		return 0; /* nothing was written through it */
	pthread_rwlock_rdlock(&e->maplock);
	rc = mdb_env_sync(e->env, 1);
	pthread_rwlock_unlock(&e->maplock);
	return node_mdb_err(e, rc);
}

/* ------------------------------------------------------------------------------------------ */
/* Object records. */

static void objrec_encode(const struct node_objrec *rec, uint8_t out[OBJREC_LEN])
{
	out[0] = OBJREC_VERSION;
	out[1] = rec->flags;
	node_put_le(out + 2, rec->last_ms, 2);
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
	ret_rec->last_ms = (uint16_t)node_get_le(p + 2, 2);
	if (ret_rec->last_ms > 999)
		ret_rec->last_ms = 999;
	return 0;
}

int node_objects_each(struct node_env *e, MDB_txn *txn,
		      int (*fn)(void *ctx, const uint8_t *id, const struct node_objrec *rec),
		      void *ctx)
{
	struct node_objrec rec;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, e->objects, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != VERIFY_HASH_LEN || node_objrec_get(e, txn, k.mv_data, &rec) != 0) {
			stork_error_clear();
			continue;
		}
		rc = fn(ctx, k.mv_data, &rec);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
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
	int64_t ms; /* 0: now */
};

static int index_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct index_ctx *c = ctx;
	struct node_objrec rec;
	struct timespec now;
	int rc;

	rc = node_objrec_get(e, txn, c->id, &rec);
	if (rc == MDB_NOTFOUND || rc == STORK_EFORMAT) {
		/* A malformed record is replaced: the object itself was just verified. */
		memset(&rec, 0, sizeof(rec));
	} else if (rc != 0) {
		return rc;
	}
	/* An insert is a use: the newest in the LRU order (and an eviction that chose the old
	 * record sees it changed). */
	if (c->ms > 0) { /* written unsynced: its last use while it waited (pending.c) */
		rec.last_use = c->ms / 1000;
		rec.last_ms = (uint16_t)(c->ms % 1000);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		rec.last_use = now.tv_sec;
		rec.last_ms = (uint16_t)(now.tv_nsec / 1000000);
	}
	rec.size = c->size;
	return node_objrec_put(e, txn, c->id, &rec);
}

int node_index_object(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size)
{
	struct index_ctx c = {id, size, 0};

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
		struct index_ctx one = {c->items[i].id, c->items[i].size, c->items[i].ms};

		rc = index_fn(e, txn, &one);
	}
	return rc;
}

int node_env_index_objects(struct node_env *e, const struct node_index_item *items, size_t n)
{
	struct index_many_ctx c = {items, n};

	return node_txn(e, true, index_many_fn, &c);
}

int node_index_objects(struct store *s, const struct node_index_item *items, size_t n)
{
	return node_env_index_objects(s->env, items, n);
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

/* A big value (a manifest: megabytes for a package of 50,000 files) was copied out: take
 * its pages out of this process's map of the index, which would otherwise count them in the
 * daemon's RSS for as long as it runs (a manifest a version). The map is shared and read-only
 * (no MDB_WRITEMAP), so this only unmaps them: they stay in the page cache, and a reader of
 * the same pages faults them in again. */
static void drop_mapped(const void *data, size_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)data + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)data + len) & ~(page - 1);

	if (len >= 65536 && hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

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
	drop_mapped(v.mv_data, v.mv_size);
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
