/* fs/ahead.c: fetch-ahead over a version's pack, for readers that read a version's files one
 * after another (fs/README.md, "Cold reads").
 *
 * The pack (store/README.md, "Version packs") holds a version's small objects back to back in
 * path order, and the signed manifest says where each one starts. A miss (an open whose object
 * the store lacks) is fetched on its own, as always, until AHEAD_STREAK misses in a row came in
 * pack order (each the object right after the one before) and that streak is at least twice
 * the reader's jumps ahead (misses past the next object) since the last window (most of what
 * was read, not a few neighbours a sparse reader happened to pick; a miss up to AHEAD_BACK
 * behind the last one, a file passed over, is fetched on its own and changes nothing): then the
 * objects from the miss on are fetched as one HTTP range request over the pack (a window),
 * AHEAD_FIRST objects first, each next window twice the last, up to AHEAD_MAX_OBJS objects or
 * AHEAD_MAX_BYTES bytes; the files among the window's that the pack does not hold (big ones)
 * start their own fetches alongside (window_big). While the reader opens most of a window's
 * objects (dense()), an open past its middle starts the next one in the background, so the next
 * objects are on their way before they are asked for. A miss anywhere else starts over (lazy
 * again), and a reader that skips through a window stops the windows: reading a few files here
 * and there costs what it did.
 *
 * Every object of a window is checked (zsize, size, SHA-256) as a single object is, before it
 * is stored; one that does not verify is not stored, and its reader fetches it on its own. A
 * mirror that has no pack or answers a range with the whole file turns fetch-ahead off for that
 * version (the transfer is all it cost).
 *
 * Locking: a->lock protects every field of struct fsd_ahead below it. A window is a job
 * (fs/job.c) keyed by the version and its first position; it clears each object's flight mark
 * as soon as that object is stored (or refused) and signals a->cond, so a reader waits for its
 * own object only (within the timeout), not for the rest of the window; its run checks the
 * store first, so running it again costs nothing. The state hangs off the version tree
 * (fsd_vtree.ahead, made at the first miss, freed with the tree); a window's job holds a reference
 * on the tree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/daemon.h"

#define AHEAD_STREAK	8	  /* misses in pack order before fetch-ahead starts */
#define AHEAD_FIRST	8	  /* objects in the first window */
#define AHEAD_MAX_OBJS	4096	  /* ... and at most in one */
#define AHEAD_MAX_BYTES (8 << 20) /* stored bytes of one window at most */
#define AHEAD_SLACK	8	  /* a miss this far past the last window still is in order */
#define AHEAD_BACK	256	  /* a miss this far behind the last one: passed over, on its own */
#define NONE		UINT32_MAX

/* What a window did with a position (fsd_ahead.flight); 0: nothing. */
enum { FLIGHT = 1, LANDED = 2, USED = 3 };

struct fsd_ahead {
	pthread_mutex_t lock;
	pthread_cond_t cond;	       /* CLOCK_MONOTONIC; a flight mark was cleared */
	bool ready;		       /* the layout below is made */
	bool off;		       /* no pack, no ranges, or not worth it: object by object */
	struct verify_entry *entries;  /* the version's entries, from its tree index */
	struct store_pack_entry *ents; /* the pack's layout (its entries point into entries) */
	size_t n;
	char *path;	  /* targets/<name>/<hex>.<version>.pack */
	uint32_t *pos_of; /* entry (tree = manifest order) -> pack position, NONE: not in it */
	uint32_t *win;	  /* pack position -> first position of the window bringing it */
	uint8_t *flight;  /* pack position: FLIGHT, LANDED, USED or 0 */
	uint32_t last;	  /* the position after the last miss */
	uint32_t end;	  /* the end of the last window started, NONE when not in order */
	uint32_t trigger; /* an open at or past this position starts the next window */
	uint32_t wstart;  /* the last window started: its first position, */
	uint32_t wcount;  /* its objects, */
	uint32_t used;	  /* and how many of them were opened since */
	uint32_t next_w;  /* objects in the next window */
	unsigned streak;  /* misses in order */
	unsigned jumps;	  /* misses ahead of the next one, since the first or the last window */
	uint64_t windows; /* counters, for the log at the end */
	uint64_t objects;
	uint64_t refused;
};

void fsd_ahead_free(struct fsd_ahead *a)
{
	if (!a)
		return;
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a->ents);
	free(a->entries);
	free(a->path);
	free(a->pos_of);
	free(a->win);
	free(a->flight);
	free(a);
}

/* The version's entries, from its tree index: what the pack's layout needs of the manifest
 * (type, hash, size, zsize, chunks), in the manifest's order (both are sorted by path), so
 * that a tree position is a manifest position. No manifest is read or parsed here: that was
 * about 140 ms for 17,664 files, at the version's first miss, which waited for it. The strings
 * and chunks point into vt's tree, which outlives this state (freed with the tree). */
static int tree_entries(const struct fsd_vtree *vt, struct verify_entry **ret_e, size_t *ret_n)
{
	size_t n = fsd_vtree_n(vt);
	struct verify_entry *e = malloc((n ? n : 1) * sizeof(*e));

	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fsd_vtree_entry(vt, i, &e[i]);
	*ret_e = e;
	*ret_n = n;
	return 0;
}

/* The layout of vt's pack; a->lock held. Failures turn fetch-ahead off for the version. */
static void prepare(struct fsd *d, struct fsd_vtree *vt, struct fsd_ahead *a)
{
	/* The manifest as far as the layout and the pack's name read it (store_pack_layout,
	 * verify_manifest_file): entries, name, version, and the manifest file's hash. */
	struct verify_manifest m = {
	    .name = vt->name, .version = vt->version, .has_file_hash = true};
	uint64_t len;

	a->ready = true;
	a->off = true;
	a->end = NONE;
	if (fetch_has_peers(fs_repo_fetcher(d->repo)))
		return; /* peers first, object by object: the pack would bring again what they hold
			 */
	if (tree_entries(vt, &a->entries, &m.n) < 0)
		return;
	m.entries = a->entries;
	memcpy(m.file_hash, vt->hash, VERIFY_HASH_LEN);
	if (store_pack_layout(&m, &a->ents, &a->n, &len) < 0 || a->n == 0)
		return;
	if (verify_manifest_file(&m, ".pack", &a->path) < 0)
		return;
	a->pos_of = malloc((m.n ? m.n : 1) * sizeof(*a->pos_of));
	a->win = calloc(a->n, sizeof(*a->win));
	a->flight = calloc(a->n, 1);
	if (!a->pos_of || !a->win || !a->flight)
		return;
	for (size_t i = 0; i < m.n; i++)
		a->pos_of[i] = NONE;
	for (size_t p = 0; p < a->n; p++)
		a->pos_of[a->ents[p].e - m.entries] = (uint32_t)p;
	a->next_w = AHEAD_FIRST;
	a->off = false;
}

static struct fsd_ahead *ahead_of(struct fsd_vtree *vt)
{
	struct fsd_ahead *a = __atomic_load_n(&vt->ahead, __ATOMIC_ACQUIRE), *none = NULL;

	if (a)
		return a;
	pthread_condattr_t attr;

	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (!__atomic_compare_exchange_n(&vt->ahead, &none, a, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		fsd_ahead_free(a);
		return none;
	}
	return a;
}

/* ------------------------------------------------------------------------------------------ */
/* A window: one range request, its objects checked and stored. */

struct window {
	struct fsd_vtree *vt; /* a reference */
	uint32_t start, count;
	uint8_t *buf;
	uint64_t len, got;
};

static void window_free(void *arg)
{
	struct window *w = arg;

	fsd_vtree_unref(w->vt);
	free(w->buf);
	free(w);
}

static int buf_write(void *ctx, const void *buf, size_t len)
{
	struct window *w = ctx;

	if (len > w->len - w->got)
		return STORK_EBADLEN;
	memcpy(w->buf + w->got, buf, len);
	w->got += len;
	return 0;
}

static int buf_reset(void *ctx)
{
	((struct window *)ctx)->got = 0;
	return 0;
}

static int insert_out(void *ctx, const void *buf, size_t len)
{
	return store_insert_write(ctx, buf, len);
}

/* One object of the window into the store. @return 0 (stored); STORK_E* (it lied); -errno. */
static int store_one(struct fsd *d, const struct store_pack_entry *pe, const uint8_t *z)
{
	const struct verify_entry *e = pe->e;
	struct store_insert *ins = NULL;
	struct store_unpack *u = NULL;
	int r;

	r = store_insert_new(d->store, e->hash, e->size, &ins);
	if (r < 0)
		return r;
	r = store_unpack_new(e->hash, e->size, e->zsize, insert_out, ins, &u);
	if (r == 0)
		r = store_unpack_write(u, z, e->zsize);
	if (r == 0)
		r = store_unpack_finish(u);
	store_unpack_free(u);
	if (r < 0) {
		store_insert_abort(ins);
		return r;
	}
	return store_insert_commit_unsynced(ins);
}

static bool stored(struct fsd *d, const struct verify_entry *e)
{
	struct store_objinfo info;

	return store_object_info(d->store, e->hash, &info) == 0;
}

/* The window that starts at start is done with position p (stored it, when ok): its reader
 * may go on. */
static void landed(struct fsd_ahead *a, uint32_t start, uint32_t p, bool ok)
{
	pthread_mutex_lock(&a->lock);
	if (a->win[p] == start && a->flight[p] == FLIGHT) {
		a->flight[p] = ok ? LANDED : 0;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
}

/* Position p was opened (a->lock held): counts for the density of the last window. Its
 * window may not have marked it landed yet (a reader that found it stored between
 * store_one() and landed()): it counts all the same, else a loaded machine's reader would
 * look sparse and the windows would stop. */
static void opened(struct fsd_ahead *a, uint32_t p)
{
	if (a->flight[p] != LANDED && a->flight[p] != FLIGHT)
		return;
	a->flight[p] = USED;
	if (p >= a->wstart && p < a->wstart + a->wcount)
		a->used++;
}

/* Whether the reader opened at least 3/4 of the last window's objects up to position p. */
static bool dense(const struct fsd_ahead *a, uint32_t p)
{
	uint32_t upto = p >= a->wstart + a->wcount ? a->wcount : p - a->wstart + 1;

	return p >= a->wstart && (uint64_t)a->used * 4 >= (uint64_t)upto * 3;
}

static int window_run(struct fsd *d, void *arg, void **ret_result)
{
	struct window *w = arg;
	struct fsd_ahead *a = w->vt->ahead;
	const struct store_pack_entry *ents = a->ents; /* fixed once ready */
	uint32_t s = w->start, e = w->start + w->count, done = 0, bad = 0;
	const char *mirror = NULL;
	char what[600];
	uint64_t off;
	int r = 0;

	(void)ret_result;
	/* What is stored already (an earlier run of this window, another reader) is not
	 * asked for again. */
	while (s < e && stored(d, ents[s].e))
		s++;
	while (e > s && stored(d, ents[e - 1].e))
		e--;
	if (s == e)
		goto out;
	off = ents[s].offset;
	w->len = ents[e - 1].offset + ents[e - 1].e->zsize - off;
	w->buf = malloc(w->len ? w->len : 1);
	if (!w->buf) {
		r = -ENOMEM;
		goto out;
	}
	snprintf(what, sizeof(what), "%s %s: version pack, objects %u to %u", w->vt->name,
		 w->vt->version, s, e - 1);
	r = fetch_file_range(fs_repo_fetcher(d->repo), a->path, off, w->len, what, buf_write,
			     buf_reset, w, &mirror);
	if (r < 0) {
		/* No pack, no ranges, a proxy in the way: object by object from now on. */
		fsd_log(d, "%s: %s; reading this version object by object", what,
			stork_error_detail());
		pthread_mutex_lock(&a->lock);
		a->off = true;
		pthread_mutex_unlock(&a->lock);
		goto out;
	}
	for (uint32_t p = s; p < e; p++) {
		if (stored(d, ents[p].e)) {
			/* inside the range but stored meanwhile, or already (an object another
			 * version's pack or a reader brought): its bytes came along, nothing new */
			landed(a, w->start, p, true);
			continue;
		}
		r = store_one(d, &ents[p], w->buf + (ents[p].offset - off));
		landed(a, w->start, p, r == 0);
		if (r == 0) {
			fsd_fetched(d, ents[p].e->hash, ents[p].e->zsize, mirror ? mirror : "");
			done++;
			continue;
		}
		if (r <= STORK_EBADSIG && r > STORK_EBADSIG - 1000) {
			bad++; /* it lied: its reader fetches it on its own */
			continue;
		}
		break; /* the store's failure (a full disk): the readers fetch on their own */
	}
	r = 0;
	if (bad)
		fsd_log(d, "%s: %u objects did not verify; they are fetched on their own", what,
			bad);
out:
	pthread_mutex_lock(&a->lock);
	for (uint32_t p = w->start; p < w->start + w->count; p++)
		if (a->win[p] == w->start && a->flight[p] == FLIGHT)
			a->flight[p] = stored(d, ents[p].e) ? LANDED : 0;
	pthread_cond_broadcast(&a->cond);
	a->windows++;
	a->objects += done;
	a->refused += bad;
	pthread_mutex_unlock(&a->lock);
	return r;
}

static const struct fsd_job_ops window_ops = {
    .run = window_run,
    .arg_free = window_free,
};

/* Mark the window [p, ...) of at most a->next_w objects and AHEAD_MAX_BYTES (a->lock held):
 * stops at an object already in flight. @return its object count (0: nothing to fetch). */
static uint32_t window_mark(struct fsd_ahead *a, uint32_t p)
{
	uint64_t bytes = 0;
	uint32_t k = 0;

	while (p + k < a->n && k < a->next_w && a->flight[p + k] != FLIGHT) {
		bytes += a->ents[p + k].e->zsize;
		if (k > 0 && bytes > AHEAD_MAX_BYTES)
			break;
		a->flight[p + k] = FLIGHT;
		a->win[p + k] = p;
		k++;
	}
	if (k) {
		a->end = p + k;
		a->trigger = p + k / 2;
		a->wstart = p;
		a->wcount = k;
		a->used = 0;
		a->jumps = 0;
		a->next_w = a->next_w * 2 > AHEAD_MAX_OBJS ? AHEAD_MAX_OBJS : a->next_w * 2;
	}
	return k;
}

static struct window *window_new(struct fsd_vtree *vt, uint32_t start, uint32_t count, char *key,
				 size_t keylen)
{
	struct window *w = calloc(1, sizeof(*w));
	char hex[VERIFY_HASH_HEX];

	if (!w)
		return NULL;
	w->vt = fsd_vtree_ref(vt);
	w->start = start;
	w->count = count;
	verify_hex(vt->hash, VERIFY_HASH_LEN, hex);
	snprintf(key, keylen, "ahead:%s:%u", hex, start);
	return w;
}

/* The files among the window's that the pack does not hold (stored bytes above
 * STORE_PACK_MAX_ZSIZE, not chunked) start their own fetches alongside, in path order, as many
 * bytes as the window's at most: the reader going through the window opens them next, and
 * each would otherwise be a request it waits for. */
static void window_big(struct fsd *d, struct fsd_vtree *vt, uint32_t start, uint32_t count)
{
	const struct fsd_ahead *a = vt->ahead; /* entries and ents: fixed once ready */
	size_t first = (size_t)(a->ents[start].e - a->entries);
	size_t last = (size_t)(a->ents[start + count - 1].e - a->entries);
	uint64_t budget = 0, used = 0;
	char what[1024];

	for (uint32_t p = start; p < start + count; p++)
		budget += a->ents[p].e->zsize;
	for (size_t i = first + 1; i < last; i++) {
		const struct verify_entry *e = &a->entries[i];

		if (e->type != VERIFY_FILE || e->nchunks || e->zsize <= STORE_PACK_MAX_ZSIZE)
			continue;
		if (e->zsize > budget - used)
			break;
		used += e->zsize;
		snprintf(what, sizeof(what), "%s %s: %s", vt->name, vt->version, e->path);
		fsd_object_fetch_start(d, e, what);
	}
}

/* A window nobody waits for yet was marked: start its job (and its big files' fetches). On
 * failure its marks go. */
static void window_start(struct fsd *d, struct fsd_vtree *vt, uint32_t start, uint32_t count)
{
	struct fsd_ahead *a = vt->ahead;
	char key[128];
	struct window *w = window_new(vt, start, count, key, sizeof(key));

	if (w && fsd_job_start(d, key, &window_ops, w) == 0) {
		window_big(d, vt, start, count);
		return;
	}
	pthread_mutex_lock(&a->lock);
	for (uint32_t p = start; p < start + count; p++)
		if (a->win[p] == start && a->flight[p] == FLIGHT)
			a->flight[p] = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* Wait (a->lock held) until no window brings position p any more, within the timeout. */
static int wait_landed(struct fsd *d, struct fsd_ahead *a, uint32_t p, const char *what)
{
	struct timespec deadline;
	int w = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += d->conf.timeout;
	while (a->flight[p] == FLIGHT && w != ETIMEDOUT)
		w = pthread_cond_timedwait(&a->cond, &a->lock, &deadline);
	if (a->flight[p] != FLIGHT) {
		opened(a, p);
		return 0;
	}
	stork_errorf("%s: no answer within %u s (the timeout= option); the transfer goes on in "
		     "the background",
		     what, d->conf.timeout);
	return -ETIMEDOUT;
}

int fsd_ahead_miss(struct fsd *d, struct fsd_vtree *vt, long idx, const char *what)
{
	struct fsd_ahead *a = ahead_of(vt);
	uint32_t p, count = 0;
	int r;

	if (!a || idx < 0 || (size_t)idx >= fsd_vtree_n(vt))
		return -ENOENT;
	pthread_mutex_lock(&a->lock);
	if (!a->ready)
		prepare(d, vt, a);
	if (a->off || (p = a->pos_of[idx]) == NONE) {
		pthread_mutex_unlock(&a->lock);
		return -ENOENT;
	}
	if (a->flight[p] == FLIGHT) {
		/* A window is bringing it: wait for that. */
		r = wait_landed(d, a, p, what);
		pthread_mutex_unlock(&a->lock);
		return r;
	}
	if (a->end != NONE && p >= a->last && p < a->end) {
		/* A window brought it (or failed to), yet the store did not have it: the store's
		 * moment (a group sync between its two lookups) or its failure, not the reader's
		 * order. On its own; the windows go on. */
		pthread_mutex_unlock(&a->lock);
		return -ENOENT;
	}
	if (p < a->last && a->last - p <= AHEAD_BACK) {
		/* Just behind the last miss: a file the reader passed over and comes back to
		 * (`find` visits a directory D before its sibling D.pm, which the pack, in path
		 * order, has first). On its own; the streak goes on. */
		pthread_mutex_unlock(&a->lock);
		return -ENOENT;
	}
	if (p == a->last)
		a->streak++;
	else if (a->end != NONE && p >= a->end && p < a->end + AHEAD_SLACK && dense(a, p))
		a->streak = a->streak < AHEAD_STREAK ? AHEAD_STREAK : a->streak;
	else
		a->streak = 1, a->end = NONE, a->next_w = AHEAD_FIRST, a->jumps++;
	a->last = p + 1;
	/* A sparse reader has a streak now and then (10% of the files, read in path order, has
	 * four neighbours in a row once in 20 versions of 600 files): it must be long, and
	 * twice as long as the reader's jumps ahead so far, to look like one going through it
	 * all. */
	if (a->streak < AHEAD_STREAK || (uint64_t)a->streak < 2 * (uint64_t)a->jumps) {
		pthread_mutex_unlock(&a->lock);
		return -ENOENT; /* lazy: this object alone */
	}
	count = window_mark(a, p);
	pthread_mutex_unlock(&a->lock);
	if (!count)
		return -ENOENT;
	window_start(d, vt, p, count);
	pthread_mutex_lock(&a->lock);
	r = wait_landed(d, a, p, what);
	pthread_mutex_unlock(&a->lock);
	return r;
}

void fsd_ahead_hit(struct fsd *d, struct fsd_vtree *vt, long idx)
{
	struct fsd_ahead *a = __atomic_load_n(&vt->ahead, __ATOMIC_ACQUIRE);
	uint32_t p, start = 0, count = 0;

	if (!a || idx < 0 || (size_t)idx >= fsd_vtree_n(vt))
		return;
	pthread_mutex_lock(&a->lock);
	if (!a->ready || a->off || (p = a->pos_of[idx]) == NONE) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	opened(a, p);
	/* The reader goes through the last window (most of it, not a file here and there):
	 * the next one starts now. */
	if (a->end != NONE && a->streak >= AHEAD_STREAK && p >= a->trigger && p < a->end &&
	    a->end < a->n && dense(a, p)) {
		start = a->end;
		count = window_mark(a, start);
	}
	pthread_mutex_unlock(&a->lock);
	if (count)
		window_start(d, vt, start, count);
}
