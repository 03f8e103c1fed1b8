/* store/quota.c: the node store's quota, its access clock and eviction (store/README.md,
 * "Quota and eviction").
 *
 * The quota lives in the index (the `storkfs` database, key "quota"), so every process on the
 * store agrees on it. An insert that takes the objects' bytes above it evicts the least
 * recently used unpinned objects down to the low mark (STORE_QUOTA_LOW_PERCENT of the quota),
 * never the objects it has just inserted. The LRU order is each record's last use, in
 * milliseconds. Reads do not write it one by one: store_object_open notes the use on this
 * handle's access clock (memory), and the clock is written in one write transaction when it
 * holds USES_MAX uses, when FLUSH_MS have passed since the last write, before an eviction
 * chooses, and at store_close.
 *
 * Locking: struct node_quota's fields are under its `lock`, which is never held across a
 * transaction; `evicting` lets one thread of the handle evict at a time (others skip: the
 * running eviction brings the store down for them too). Processes do not coordinate their
 * evictions: each removes records in a write transaction that first checks each record is
 * still the one it chose (same last use, no pins), so an object used or inserted again since
 * stays, and two evictors at once only remove a little more than one would. The files go only
 * after that commit is synced (a crash never leaves a record of a missing file).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/node.h"

/* Uses the clock holds before it is written, and the longest it waits to write them. */
#define USES_MAX 4096
#define FLUSH_MS 10000
/* How long an estimate of the objects' bytes is trusted before the index is counted again
 * (other processes insert too), and the quota read from the index reused. */
#define USAGE_MS 1000

struct use {
	uint8_t id[VERIFY_HASH_LEN];
	int64_t ms;
};

struct node_quota {
	pthread_mutex_t lock;
	struct use *uses;
	size_t nuses, cap;
	int64_t flushed_ms;
	uint64_t quota; /* as read at quota_ms */
	int64_t quota_ms;
	uint64_t used; /* the objects' bytes, counted at used_ms and added to since */
	int64_t used_ms;
	pthread_mutex_t evicting;
};

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------------ */
/* Counters in the `storkfs` database: little-endian u64 values. */

#define KEY_QUOTA	  "quota"
#define KEY_EVICTIONS	  "evictions"
#define KEY_EVICTED_BYTES "evicted_bytes"

static int info_get(struct node_env *e, MDB_txn *txn, const char *key, uint64_t *ret_v)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc;

	rc = mdb_get(txn, e->info, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*ret_v = 0;
		return 0;
	}
	if (rc != 0)
		return rc;
	*ret_v = v.mv_size == 8 ? node_get_le(v.mv_data, 8) : 0;
	return 0;
}

static int info_put(struct node_env *e, MDB_txn *txn, const char *key, uint64_t val)
{
	uint8_t buf[8];
	MDB_val k = {strlen(key), (void *)key}, v = {8, buf};

	node_put_le(buf, val, 8);
	return mdb_put(txn, e->info, &k, &v, 0);
}

static int quota_get_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	return info_get(e, txn, KEY_QUOTA, ctx);
}

static int quota_set_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	return info_put(e, txn, KEY_QUOTA, *(uint64_t *)ctx);
}

int store_quota_get(struct store *s, uint64_t *ret_bytes)
{
	uint64_t q = 0;
	int r;

	r = node_txn(s->env, false, quota_get_fn, &q);
	if (r == 0)
		*ret_bytes = q;
	return r;
}

int store_quota_set(struct store *s, uint64_t bytes)
{
	int r;

	r = node_txn(s->env, true, quota_set_fn, &bytes);
	if (r == 0)
		r = node_sync(s->env);
	if (r < 0) {
		stork_error_prefix("%s: setting the quota", s->dir);
		return r;
	}
	pthread_mutex_lock(&s->quota->lock);
	s->quota->quota = bytes;
	s->quota->quota_ms = now_ms();
	pthread_mutex_unlock(&s->quota->lock);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The access clock. */

int node_quota_new(struct store *s)
{
	struct node_quota *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_mutex_init(&q->evicting, NULL);
	q->flushed_ms = now_ms();
	s->quota = q;
	return 0;
}

struct flush_ctx {
	const struct use *uses;
	size_t n;
};

static int flush_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct flush_ctx *c = ctx;
	struct node_objrec rec;
	int rc;

	for (size_t i = 0; i < c->n; i++) {
		rc = node_objrec_get(e, txn, c->uses[i].id, &rec);
		if (rc == MDB_NOTFOUND || rc == STORK_EFORMAT)
			continue; /* removed meanwhile; fsck drops a malformed record */
		if (rc != 0)
			return rc;
		if (c->uses[i].ms <= node_objrec_ms(&rec))
			continue;
		rec.last_use = c->uses[i].ms / 1000;
		rec.last_ms = (uint16_t)(c->uses[i].ms % 1000);
		rc = node_objrec_put(e, txn, c->uses[i].id, &rec);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Write the clock's uses (taken from it under the lock, written without it). */
static int clock_flush(struct store *s)
{
	struct node_quota *q = s->quota;
	struct flush_ctx c;
	struct use *uses;
	int r;

	pthread_mutex_lock(&q->lock);
	uses = q->uses;
	c.uses = uses;
	c.n = q->nuses;
	q->uses = NULL;
	q->nuses = q->cap = 0;
	q->flushed_ms = now_ms();
	pthread_mutex_unlock(&q->lock);
	r = c.n ? node_txn(s->env, true, flush_fn, &c) : 0;
	free(uses);
	return r;
}

void node_touch(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int64_t last_use)
{
	struct node_quota *q = s->quota;
	struct use *grown;
	int64_t now = now_ms();
	bool flush;

	(void)last_use;
	if (s->readonly || !q)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->nuses == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 64;

		grown = realloc(q->uses, cap * sizeof(*grown));
		if (!grown) {
			pthread_mutex_unlock(&q->lock);
			return; /* the use is not noted: only the LRU order's accuracy suffers */
		}
		q->uses = grown;
		q->cap = cap;
	}
	memcpy(q->uses[q->nuses].id, id, VERIFY_HASH_LEN);
	q->uses[q->nuses].ms = now;
	q->nuses++;
	flush = q->nuses >= USES_MAX || now - q->flushed_ms >= FLUSH_MS;
	pthread_mutex_unlock(&q->lock);
	node_pending_touch(s->env, id, now); /* not indexed yet: its record will say so */
	if (flush) {
		clock_flush(s);
		stork_error_clear();
	}
}

int store_uses_flush(struct store *s)
{
	return s->readonly ? 0 : clock_flush(s);
}

void node_quota_free(struct store *s)
{
	struct node_quota *q = s->quota;

	if (!q)
		return;
	if (s->env && !s->readonly && q->nuses) {
		/* The caller may still print the detail of what failed before the close. */
		char saved[STORK_DETAIL_MAX];

		snprintf(saved, sizeof(saved), "%s", stork_error_detail());
		clock_flush(s);
		if (saved[0])
			stork_errorf("%s", saved);
		else
			stork_error_clear();
	}
	free(q->uses);
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->evicting);
	free(q);
	s->quota = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Counting and choosing. */

struct cand {
	uint8_t id[VERIFY_HASH_LEN];
	uint64_t size;
	int64_t ms;
};

struct scan {
	const struct node_pinset *pins;
	const struct node_index_item *keep; /* never evicted (just inserted) */
	size_t nkeep;
	bool want_cands;
	/* out */
	struct store_usage u;
	struct cand *cands;
	size_t ncands, cap;
};

static bool kept(const struct scan *sc, const uint8_t *id)
{
	for (size_t i = 0; i < sc->nkeep; i++)
		if (!memcmp(sc->keep[i].id, id, VERIFY_HASH_LEN))
			return true;
	return false;
}

static int scan_obj(void *ctx, const uint8_t *id, const struct node_objrec *rec)
{
	struct scan *sc = ctx;

	sc->u.objects++;
	sc->u.bytes += rec->size;
	if (rec->pins > 0 || node_pins_has(sc->pins, id)) {
		sc->u.pinned_objects++;
		sc->u.pinned_bytes += rec->size;
		return 0;
	}
	if (!sc->want_cands || kept(sc, id))
		return 0;
	if (sc->ncands == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 256;
		struct cand *grown = realloc(sc->cands, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		sc->cands = grown;
		sc->cap = cap;
	}
	memcpy(sc->cands[sc->ncands].id, id, VERIFY_HASH_LEN);
	sc->cands[sc->ncands].size = rec->size;
	sc->cands[sc->ncands].ms = node_objrec_ms(rec);
	sc->ncands++;
	return 0;
}

static int scan_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct scan *sc = ctx;
	int rc;

	memset(&sc->u, 0, sizeof(sc->u));
	sc->ncands = 0;
	rc = info_get(e, txn, KEY_QUOTA, &sc->u.quota);
	if (rc == 0)
		rc = info_get(e, txn, KEY_EVICTIONS, &sc->u.evictions);
	if (rc == 0)
		rc = info_get(e, txn, KEY_EVICTED_BYTES, &sc->u.evicted_bytes);
	if (rc == 0)
		rc = node_objects_each(e, txn, scan_obj, sc);
	return rc;
}

static int by_age(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->ms != y->ms)
		return x->ms < y->ms ? -1 : 1;
	return memcmp(x->id, y->id, VERIFY_HASH_LEN);
}

/* Count the store (and list what may be evicted, oldest first, when want_cands). */
static int scan_run(struct store *s, struct scan *sc)
{
	struct node_pinset pins = {0};
	int r;

	r = node_pins_load(s, &pins);
	if (r < 0)
		return r;
	sc->pins = &pins;
	r = node_txn(s->env, false, scan_fn, sc);
	sc->pins = NULL;
	sc->u.owners = pins.owners;
	node_pins_fini(&pins);
	if (r == 0) {
		/* What this process wrote without a sync is on disk too, not yet indexed: it counts
		 * (never evicted before its group sync indexes it). A record indexed while its
		 * group is still being cleared counts twice for that moment: evicting a little
		 * early. */
		uint64_t bytes, objects;

		node_pending_usage(s->env, &bytes, &objects);
		sc->u.bytes += bytes;
		sc->u.objects += objects;
	}
	if (r == 0 && sc->ncands > 1)
		qsort(sc->cands, sc->ncands, sizeof(*sc->cands), by_age);
	return r;
}

int store_usage(struct store *s, struct store_usage *ret_u)
{
	struct scan sc = {0};
	int r;

	r = scan_run(s, &sc);
	free(sc.cands);
	if (r == 0)
		*ret_u = sc.u;
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Evicting. */

struct evict_ctx {
	struct store *s;
	const struct cand *cands;
	size_t n;
	uint64_t used, target;
	bool *gone;	       /* per candidate: its record was deleted */
	uint64_t freed, count; /* out */
};

static int unlink_object(struct store *s, const uint8_t id[VERIFY_HASH_LEN])
{
	char rel[NODE_RELPATH_LEN];
	int r;

	/* Variants first: a failure leaves the object whole (as store_object_remove). A
	 * descriptor a reader holds keeps its bytes: the file is unlinked, never truncated. */
	r = node_variants_remove(s, id, NULL);
	if (r < 0)
		return r;
	node_relpath(id, rel);
	if (unlinkat(s->objfd, rel, 0) < 0 && errno != ENOENT && errno != ENOTDIR) {
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: cannot remove: %s", s->dir, rel, strerror(-r));
		return r;
	}
	return 0;
}

/* The index first: the records go in one transaction, and no file is touched in it (a crash or
 * a failed commit before its end leaves every record with its file). */
static int evict_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct evict_ctx *c = ctx;
	struct node_objrec rec;
	uint64_t total, bytes;
	int rc;

	c->freed = c->count = 0;
	memset(c->gone, 0, c->n * sizeof(*c->gone));
	for (size_t i = 0; i < c->n && c->used - c->freed > c->target; i++) {
		MDB_val k = {VERIFY_HASH_LEN, (void *)c->cands[i].id};

		rc = node_objrec_get(e, txn, c->cands[i].id, &rec);
		if (rc == MDB_NOTFOUND || rc == STORK_EFORMAT) {
			stork_error_clear();
			continue;
		}
		if (rc != 0)
			return rc;
		/* Used, inserted again or pinned since it was chosen: it stays. */
		if (rec.pins > 0 || node_objrec_ms(&rec) != c->cands[i].ms)
			continue;
		rc = mdb_del(txn, e->objects, &k, NULL);
		if (rc != 0)
			return rc;
		c->gone[i] = true;
		c->freed += rec.size;
		c->count++;
	}
	if (!c->count)
		return 0;
	rc = info_get(e, txn, KEY_EVICTIONS, &total);
	if (rc == 0)
		rc = info_get(e, txn, KEY_EVICTED_BYTES, &bytes);
	if (rc == 0)
		rc = info_put(e, txn, KEY_EVICTIONS, total + c->count);
	if (rc == 0)
		rc = info_put(e, txn, KEY_EVICTED_BYTES, bytes + c->freed);
	return rc;
}

/* Then the files, under the writer lock (no commit of another writer comes between the check
 * and the unlink): an object indexed again since the records went keeps its file. A crash
 * before the end leaves whole, unindexed objects, which a reader's open adopts after hashing
 * them, an insert of them finds, and fsck indexes again. */
struct unlink_ctx {
	struct store *s;
	const uint8_t *ids; /* n ids, stride bytes apart */
	size_t stride, n;
	const bool *gone;
};

static int unlink_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct unlink_ctx *c = ctx;
	struct node_objrec rec;
	int rc, r = 0;

	for (size_t i = 0; i < c->n; i++) {
		const uint8_t *id = c->ids + i * c->stride;

		if (!c->gone[i])
			continue;
		rc = node_objrec_get(e, txn, id, &rec);
		if (rc != MDB_NOTFOUND) {
			stork_error_clear();
			continue; /* indexed again (or unreadable): leave the file */
		}
		rc = unlink_object(c->s, id);
		if (rc < 0 && r == 0)
			r = rc; /* the first failure's detail; that file stays unindexed */
	}
	return r;
}

int node_unlink_unindexed(struct store *s, const uint8_t *ids, size_t stride, const bool *gone,
			  size_t n)
{
	struct unlink_ctx c = {s, ids, stride, n, gone};
	int r;

	/* Durable before any file goes: a power cut must not bring back a record whose file is
	 * unlinked (MDB_NOMETASYNC may undo the last commits). */
	r = node_sync(s->env);
	return r < 0 ? r : node_txn(s->env, true, unlink_fn, &c);
}

/* Evict, oldest first, until the objects' bytes are at most target; keep: never these.
 * @param[out] ret_u the store as counted before; ret_freed bytes removed. */
static int evict(struct store *s, uint64_t target, const struct node_index_item *keep, size_t nkeep,
		 struct store_usage *ret_u, uint64_t *ret_freed)
{
	struct scan sc = {.keep = keep, .nkeep = nkeep, .want_cands = true};
	struct evict_ctx c = {.s = s};
	int r;

	clock_flush(s); /* this handle's uses count in the order */
	stork_error_clear();
	r = scan_run(s, &sc);
	if (r < 0)
		goto out;
	c.cands = sc.cands;
	c.n = sc.ncands;
	c.used = sc.u.bytes;
	c.target = target;
	if (c.used > target && c.n) {
		c.gone = calloc(c.n, sizeof(*c.gone));
		if (!c.gone) {
			r = -ENOMEM;
			goto out;
		}
		r = node_txn(s->env, true, evict_fn, &c);
		if (r == 0 && c.count)
			r = node_unlink_unindexed(s, c.cands[0].id, sizeof(c.cands[0]), c.gone,
						  c.n);
	}
	if (r < 0)
		goto out;
	if (ret_u)
		*ret_u = sc.u;
	if (ret_freed)
		*ret_freed = c.freed;
out:
	free(c.gone);
	free(sc.cands);
	return r;
}

int store_evict(struct store *s, uint64_t target, uint64_t *ret_freed)
{
	uint64_t freed = 0;
	int r;

	pthread_mutex_lock(&s->quota->evicting);
	r = evict(s, target, NULL, 0, NULL, &freed);
	pthread_mutex_unlock(&s->quota->evicting);
	if (r == 0 && ret_freed)
		*ret_freed = freed;
	return r;
}

/* Objects wait for their group sync (pending.c): index them now, so that they can be evicted.
 * @return whether some were waiting and are indexed now. */
static bool pending_flushed(struct store *s)
{
	uint64_t bytes, objects;

	node_pending_usage(s->env, &bytes, &objects);
	return objects && node_pending_flush(s->env) == 0;
}

static uint64_t low_mark(uint64_t quota)
{
	return quota / 100 * STORE_QUOTA_LOW_PERCENT + quota % 100 * STORE_QUOTA_LOW_PERCENT / 100;
}

void node_quota_inserted(struct store *s, const struct node_index_item *items, size_t n)
{
	struct node_quota *q = s->quota;
	struct store_usage u;
	uint64_t quota, add = 0, freed = 0;
	int64_t now = now_ms();
	bool count;
	int r;

	if (s->readonly || !q || !n)
		return;
	for (size_t i = 0; i < n; i++)
		add += items[i].size;
	pthread_mutex_lock(&q->lock);
	if (now - q->quota_ms >= USAGE_MS) {
		pthread_mutex_unlock(&q->lock);
		quota = 0;
		if (store_quota_get(s, &quota) < 0)
			return;
		pthread_mutex_lock(&q->lock);
		q->quota = quota;
		q->quota_ms = now;
	}
	quota = q->quota;
	count = now - q->used_ms >= USAGE_MS;
	q->used += add;
	if (!quota || (!count && q->used <= quota)) {
		pthread_mutex_unlock(&q->lock);
		return;
	}
	pthread_mutex_unlock(&q->lock);
	/* One evictor per handle: a thread that finds one running leaves it the work. */
	if (pthread_mutex_trylock(&q->evicting) != 0)
		return;
	if (count) {
		if (store_usage(s, &u) == 0) {
			pthread_mutex_lock(&q->lock);
			q->used = u.bytes;
			q->used_ms = now;
			pthread_mutex_unlock(&q->lock);
		}
	}
	pthread_mutex_lock(&q->lock);
	if (q->used <= quota) {
		pthread_mutex_unlock(&q->lock);
		goto out;
	}
	pthread_mutex_unlock(&q->lock);
	r = evict(s, low_mark(quota), items, n, &u, &freed);
	if (r == 0 && u.bytes - freed > quota) {
		/* Still above: what could go waits for its group sync (a reader faster than the
		 * sync): index it now and evict again. */
		if (pending_flushed(s))
			r = evict(s, low_mark(quota), items, n, &u, &freed);
	}
	if (r == 0) {
		pthread_mutex_lock(&q->lock);
		q->used = u.bytes - freed;
		q->used_ms = now_ms();
		pthread_mutex_unlock(&q->lock);
	}
out:
	stork_error_clear();
	pthread_mutex_unlock(&q->evicting);
}

/* ------------------------------------------------------------------------------------------ */
/* A full file system. */

int store_has_room(struct store *s, uint64_t need)
{
	struct store_usage u = {0};
	struct statvfs fs;
	uint64_t avail, floor;
	int r;

	if (s->readonly)
		return -EROFS;
	r = store_usage(s, &u);
	if (r < 0)
		return r;
	if (u.quota && (u.bytes > u.quota || need > u.quota - u.bytes)) {
		stork_errorf("%s: %" PRIu64 " more bytes would take the store's %" PRIu64
			     " bytes of objects past its quota (%" PRIu64 " bytes)",
			     s->dir, need, u.bytes, u.quota);
		return -ENOSPC;
	}
	if (fstatvfs(s->dirfd, &fs) < 0) {
		r = -errno;
		stork_errorf("%s: %s", s->dir, strerror(-r));
		return r;
	}
	avail = (uint64_t)fs.f_bavail * fs.f_frsize;
	floor = (uint64_t)fs.f_blocks * fs.f_frsize / 100 * STORE_FREE_FLOOR_PERCENT;
	if (avail < need || avail - need < floor) {
		stork_errorf("%s: %" PRIu64
			     " more bytes would leave its file system less than %d%% "
			     "free (%" PRIu64 " bytes free)",
			     s->dir, need, STORE_FREE_FLOOR_PERCENT, avail);
		return -ENOSPC;
	}
	return 0;
}

static void say_full(struct store *s, const struct store_usage *u, uint64_t need, const char *what)
{
	char quota[64];

	if (u->quota)
		snprintf(quota, sizeof(quota), "%" PRIu64 " bytes", u->quota);
	else
		snprintf(quota, sizeof(quota), "none");
	stork_errorf("%s: No space left on device (ENOSPC) storing %s (%" PRIu64
		     " bytes): the store holds %" PRIu64 " bytes in %" PRIu64
		     " objects, quota %s, pinned %" PRIu64 " bytes in %" PRIu64 " objects (%" PRIu64
		     " pin sets); %s",
		     s->dir, what, need, u->bytes, u->objects, quota, u->pinned_bytes,
		     u->pinned_objects, u->owners,
		     u->quota ? "nothing more may be evicted: make room on its file system or "
				"unpin"
			      : "without a quota nothing is evicted: make room on its file "
				"system, run `stork gc`, or set a quota (store_max=)");
}

void store_say_full(struct store *s, uint64_t need, const char *what)
{
	struct store_usage u = {0};

	store_usage(s, &u);
	say_full(s, &u, need, what);
}

int store_make_room(struct store *s, uint64_t need, const char *what)
{
	struct store_usage u = {0};
	uint64_t freed = 0, target;
	int r;

	if (s->readonly)
		return -EROFS;
	pthread_mutex_lock(&s->quota->evicting);
	r = store_usage(s, &u);
	if (r == 0 && u.quota) {
		/* Free what the write needs and a quarter of the rest, at least down to the low
		 * mark. */
		target = u.bytes > need ? (u.bytes - need) / 4 * 3 : 0;
		if (target > low_mark(u.quota))
			target = low_mark(u.quota);
		r = evict(s, target, NULL, 0, &u, &freed);
		/* Not enough could go: what this process stored waits for its group sync (a
		 * reader faster than the sync): index it now and evict again. */
		if (r == 0 && u.bytes - freed > target && pending_flushed(s)) {
			uint64_t more = 0;

			r = evict(s, target, NULL, 0, &u, &more);
			freed += more;
		}
	}
	pthread_mutex_unlock(&s->quota->evicting);
	if (r < 0)
		return r;
	if (freed > 0)
		return 0;
	say_full(s, &u, need, what);
	return -ENOSPC;
}
