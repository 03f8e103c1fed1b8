/* fs/prefetch.c: every object of some package versions into the node store, many transfers
 * at once, ahead of use (`stork prefetch`, and the daemon's prefetch= option).
 *
 * The distinct objects of the versions are listed (sorted by id, each once), those the store
 * holds are skipped, and `jobs` worker threads each run fetch_object for the next one: the
 * curl transport multiplexes all of them on its one I/O thread (HTTP/2 streams, or up to 8
 * connections per host), so the workers only wait. Each verified object is committed with
 * store_insert_commit_batched: the workers whose transfers ended while one sync was running
 * share the next one, so a prefetch pays one sync per group instead of three per object. The
 * calling thread only reports progress. Before the workers start, the driver thread runs the
 * version-pack phase (fs/prefetch_pack.c), which stores whole versions in one transfer each.
 * This file also lists a package's versions (fs_repo_versions) and pins versions in the store
 * (fs_pin_versions).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/prefetch_int.h"

#define PROGRESS_MS 100

/* fetch_object's sink: the store's insert, counting bytes as they are written. */
struct pf_sink {
	struct pf *pf;
	struct store_insert *ins;
	uint64_t written; /* counted in bytes_done for the current attempt */
};

bool fs_prefetch_cancelled(const struct pf *pf)
{
	return pf->o && pf->o->cancel && __atomic_load_n(pf->o->cancel, __ATOMIC_RELAXED);
}

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static int sink_write(void *ctx, const void *buf, size_t len)
{
	struct pf_sink *ps = ctx;
	int r = store_insert_write(ps->ins, buf, len);

	if (r == 0) {
		ps->written += len;
		atomic_fetch_add(&ps->pf->bytes_done, len);
	}
	return r;
}

static void uncount(struct pf_sink *ps)
{
	atomic_fetch_sub(&ps->pf->bytes_done, ps->written);
	ps->written = 0;
}

static int sink_reset(void *ctx)
{
	struct pf_sink *ps = ctx;

	uncount(ps);
	return store_insert_reset(ps->ins);
}

static int sink_commit(void *ctx)
{
	struct pf_sink *ps = ctx;
	int r = store_insert_commit_batched(ps->ins, ps->pf->batch);

	ps->ins = NULL; /* freed either way */
	return r;
}

/* Content refused (a lying source) tells more than a transport failure, which tells more
 * than -ENOENT (fetch/README.md ranks a single object's failures the same way). */
static int rank(int err)
{
	if (err <= STORK_EBADSIG && err > STORK_EBADSIG - 1000)
		return 3;
	return err == -ENOENT ? 1 : 2;
}

static void report(struct pf *pf, const struct pf_obj *ob, const char *what, int err)
{
	char *copy = strdup(stork_error_detail());
	const char *detail = copy ? copy : "";

	pthread_mutex_lock(&pf->lock);
	if (!pf->err || rank(err) > rank(pf->err))
		pf->err = err;
	if (pf->o && pf->o->failed) {
		pf->o->failed(pf->o->failed_ctx, what, ob->e->hash, err, detail);
	} else {
		char hex[VERIFY_HASH_HEX];

		verify_hex(ob->e->hash, VERIFY_HASH_LEN, hex);
		fprintf(stderr, "storkfs: prefetch: %s (object %s): %s\n", what, hex,
			*detail ? detail : storkfs_strerror(err));
	}
	pthread_mutex_unlock(&pf->lock);
	free(copy);
}

static void fetch_one(struct pf *pf, const struct pf_obj *ob)
{
	const struct verify_entry *e = ob->e;
	struct pf_sink ps = {pf, NULL, 0};
	struct fetch_sink sink = {sink_write, sink_reset, sink_commit, &ps, NULL};
	char what[8192]; /* a name, a version and a path of at most 4096 bytes: never cut */
	int r;

	if (e->path)
		snprintf(what, sizeof(what), "%s %s: %s", ob->m->name, ob->m->version, e->path);
	else /* a chunk of a big file */
		snprintf(what, sizeof(what), "%s %s: the chunk at byte %llu of a big file",
			 ob->m->name, ob->m->version, (unsigned long long)e->offset);
	if (atomic_load(&pf->full)) {
		atomic_fetch_add(&pf->failed, 1); /* said once, by the first that met it */
		atomic_fetch_add(&pf->objects_done, 1);
		return;
	}
	for (int tries = 0;; tries++) {
		ps.ins = NULL;
		r = store_insert_new(pf->s, e->hash, e->size, &ps.ins);
		if (r == 0) {
			r = fetch_object(pf->f, e->hash, e->size, e->zsize, what, &sink);
			store_insert_abort(ps.ins);
		}
		if (r != -ENOSPC && r != -EDQUOT)
			break;
		if (atomic_load(&pf->full)) {
			uncount(&ps); /* another worker said it */
			atomic_fetch_add(&pf->failed, 1);
			atomic_fetch_add(&pf->objects_done, 1);
			return;
		}
		/* A full store: evict (with a quota) and try once more, else stop here with
		 * one line naming the store, its size, quota and pins. */
		uncount(&ps);
		if (tries == 0 && store_make_room(pf->s, e->size, what) == 0)
			continue;
		if (tries > 0)
			store_say_full(pf->s, e->size, what);
		if (atomic_exchange(&pf->full, 1)) {
			atomic_fetch_add(&pf->failed, 1);
			atomic_fetch_add(&pf->objects_done, 1);
			return;
		}
		break;
	}
	if (r < 0) {
		uncount(&ps);
		atomic_fetch_add(&pf->failed, 1);
		report(pf, ob, what, r);
	} else {
		/* 1: another caller's transfer (a reader of a mount) stored it meanwhile. */
		atomic_fetch_add(&pf->bytes_done, e->size - ps.written);
		if (r == 0) {
			atomic_fetch_add(&pf->fetched, 1);
			atomic_fetch_add(&pf->fetched_bytes, e->size);
		} else {
			atomic_fetch_add(&pf->present, 1);
		}
	}
	atomic_fetch_add(&pf->objects_done, 1);
}

static void *worker(void *arg)
{
	struct pf *pf = arg;

	while (!fs_prefetch_cancelled(pf)) {
		size_t i = atomic_fetch_add(&pf->next, 1);

		if (i >= pf->nobjs)
			break;
		fetch_one(pf, &pf->objs[i]);
	}
	pthread_mutex_lock(&pf->lock);
	pf->running--;
	pthread_cond_signal(&pf->cond);
	pthread_mutex_unlock(&pf->lock);
	return NULL;
}

static void snapshot(struct pf *pf, struct fs_prefetch_progress *p)
{
	*p = (struct fs_prefetch_progress){
	    .objects = pf->objects,
	    .objects_done = pf->present0 + atomic_load(&pf->objects_done),
	    .bytes = pf->bytes,
	    .bytes_done = atomic_load(&pf->bytes_done),
	    .bytes_present = pf->bytes_present,
	    .present = pf->present0 + atomic_load(&pf->present),
	    .fetched = atomic_load(&pf->fetched),
	    .fetched_bytes = atomic_load(&pf->fetched_bytes),
	    .failed = atomic_load(&pf->failed),
	    .packs = atomic_load(&pf->packs),
	    .packed = atomic_load(&pf->packed),
	    .seconds = since(&pf->start),
	};
}

static int by_id(const void *a, const void *b)
{
	const struct pf_obj *x = a, *y = b;

	return memcmp(x->e->hash, y->e->hash, VERIFY_HASH_LEN);
}

/* The distinct file objects of the manifests the store does not hold yet, into pf->objs;
 * counts and bytes of all of them into pf. @return 0; -ENOMEM. */
static int list_objects(struct pf *pf, struct verify_manifest *const *ms, size_t n)
{
	struct pf_obj *all;
	size_t total = 0, k = 0, u = 0;

	/* A chunked file's objects are its chunks (store/README.md "Chunks"). */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ms[i]->n; j++)
			if (ms[i]->entries[j].type == VERIFY_FILE)
				total += ms[i]->entries[j].nchunks ? ms[i]->entries[j].nchunks : 1;
	all = calloc(total ? total : 1, sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < ms[i]->n; j++) {
			const struct verify_entry *e = &ms[i]->entries[j];

			if (e->type != VERIFY_FILE)
				continue;
			if (!e->nchunks)
				all[k++] = (struct pf_obj){e, ms[i]};
			for (size_t c = 0; c < e->nchunks; c++)
				all[k++] = (struct pf_obj){&e->chunks[c], ms[i]};
		}
	}
	qsort(all, k, sizeof(*all), by_id);
	for (size_t i = 0; i < k; i++) {
		struct store_objinfo info;

		if (i > 0 && by_id(&all[i - 1], &all[i]) == 0)
			continue;
		pf->objects++;
		pf->bytes += all[i].e->size;
		if (store_object_info(pf->s, all[i].e->hash, &info) == 0) {
			pf->present0++;
			pf->bytes_present += all[i].e->size;
			continue;
		}
		all[u++] = all[i];
	}
	pf->objs = all;
	pf->nobjs = u;
	atomic_store(&pf->bytes_done, pf->bytes_present);
	return 0;
}

/* The driver thread: the pack phase, then the workers for what is left. Counts as running
 * (pf->running) until it has joined them. */
static void *driver(void *arg)
{
	struct pf *pf = arg;
	pthread_t *tids = NULL;
	unsigned jobs = pf->jobs, started = 0;
	int r;

	r = fs_prefetch_packs(pf, pf->ms, pf->nms);
	if (r < 0)
		goto out;
	if (jobs > pf->nobjs)
		jobs = (unsigned)pf->nobjs;
	tids = calloc(jobs ? jobs : 1, sizeof(*tids));
	if (!tids) {
		r = -ENOMEM;
		goto out;
	}
	for (; started < jobs; started++) {
		pthread_mutex_lock(&pf->lock);
		pf->running++;
		pthread_mutex_unlock(&pf->lock);
		r = -pthread_create(&tids[started], NULL, worker, pf);
		if (r < 0) {
			pthread_mutex_lock(&pf->lock);
			pf->running--;
			pthread_mutex_unlock(&pf->lock);
			if (started == 0) {
				stork_errorf("prefetch: cannot start a worker thread: %s",
					     storkfs_strerror(r));
				goto out;
			}
			r = 0;
			break; /* fewer workers do the same work */
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
out:
	free(tids);
	pthread_mutex_lock(&pf->lock);
	if (r < 0) {
		pf->err = r;
		snprintf(pf->driver_detail, sizeof(pf->driver_detail), "%s", stork_error_detail());
	}
	pf->running--;
	pthread_cond_signal(&pf->cond);
	pthread_mutex_unlock(&pf->lock);
	return NULL;
}

int fs_prefetch(struct fs_repo *r, struct verify_manifest *const *ms, size_t n,
		const struct fs_prefetch_opts *o, struct fs_prefetch_progress *ret_p)
{
	struct pf pf = {.s = fs_repo_store(r), .f = fs_repo_fetcher(r), .o = o, .ms = ms, .nms = n};
	struct fs_prefetch_progress p;
	unsigned ms_tick = o && o->progress_ms ? o->progress_ms : PROGRESS_MS;
	bool started = false;
	pthread_t tid;
	int ret;

	pf.jobs = o && o->jobs ? o->jobs : FS_PREFETCH_JOBS;
	clock_gettime(CLOCK_MONOTONIC, &pf.start);
	pthread_mutex_init(&pf.lock, NULL);
	pthread_cond_init(&pf.cond, NULL);
	ret = list_objects(&pf, ms, n);
	if (ret < 0)
		goto out;
	ret = store_batch_new(pf.s, &pf.batch);
	if (ret < 0)
		goto out;
	pf.running = 1;
	ret = -pthread_create(&tid, NULL, driver, &pf);
	if (ret < 0) {
		stork_errorf("prefetch: cannot start a thread: %s", storkfs_strerror(ret));
		goto out;
	}
	started = true;
	/* Progress from this thread, about every ms_tick, until every worker has left. */
	pthread_mutex_lock(&pf.lock);
	while (pf.running > 0) {
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += (long)(ms_tick % 1000) * 1000000L;
		dl.tv_sec += ms_tick / 1000 + dl.tv_nsec / 1000000000L;
		dl.tv_nsec %= 1000000000L;
		if (pthread_cond_timedwait(&pf.cond, &pf.lock, &dl) == ETIMEDOUT && o &&
		    o->progress) {
			pthread_mutex_unlock(&pf.lock);
			snapshot(&pf, &p);
			o->progress(o->progress_ctx, &p, false);
			pthread_mutex_lock(&pf.lock);
		}
	}
	pthread_mutex_unlock(&pf.lock);
	pthread_join(tid, NULL);
	ret = pf.err;
	if (ret < 0 && pf.driver_detail[0]) {
		stork_errorf("%s", pf.driver_detail);
	} else if (fs_prefetch_cancelled(&pf) && atomic_load(&pf.next) < pf.nobjs && ret == 0) {
		stork_errorf("prefetch: cancelled with %zu objects not fetched",
			     pf.nobjs - (size_t)atomic_load(&pf.objects_done));
		ret = -ECANCELED;
	} else if (ret < 0) {
		stork_errorf("prefetch: %" PRIu64 " of %" PRIu64 " objects could not be fetched "
			     "(each is named above)",
			     (uint64_t)atomic_load(&pf.failed), pf.objects);
	}
out:
	snapshot(&pf, &p);
	if (o && o->progress && started)
		o->progress(o->progress_ctx, &p, true);
	if (ret_p)
		*ret_p = p;
	store_batch_free(pf.batch);
	free(pf.done);
	free(pf.objs);
	pthread_cond_destroy(&pf.cond);
	pthread_mutex_destroy(&pf.lock);
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* Versions of one package. */

int fs_pin_versions(struct store *s, const char *owner, struct verify_manifest *const *ms, size_t n)
{
	uint8_t(*ids)[VERIFY_HASH_LEN] = NULL;
	size_t k = 0, total = 0;
	int r;

	for (size_t i = 0; i < n; i++)
		total += verify_manifest_objects(ms[i], NULL);
	ids = malloc((total ? total : 1) * VERIFY_HASH_LEN);
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		k += verify_manifest_objects(ms[i], ids + k);
	r = store_pin_set(s, owner, (const uint8_t(*)[VERIFY_HASH_LEN])ids, k);
	free(ids);
	return r;
}

struct versions_ctx {
	const char *name;
	char **v;
	size_t n, cap;
	int err;
};

static int versions_fn(void *ctx, const struct verify_target *t)
{
	struct versions_ctx *c = ctx;
	char **nv;

	if (strcmp(t->name, c->name) != 0)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;

		nv = realloc(c->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = cap;
	}
	c->v[c->n] = strdup(t->version);
	if (!c->v[c->n])
		return -ENOMEM;
	c->n++;
	return 0;
}

static int version_order(const void *a, const void *b)
{
	return fs_version_cmp(*(char *const *)a, *(char *const *)b);
}

int fs_repo_versions(struct fs_repo *r, const char *name, char ***ret_versions, size_t *ret_n)
{
	struct versions_ctx c = {.name = name};
	int ret;

	ret = fs_repo_list(r, versions_fn, &c);
	if (ret == 0 && c.n == 0) {
		stork_errorf("%s: no version of this package is signed in this repository", name);
		ret = -ENOENT;
	}
	if (ret < 0 && c.n == 0)
		goto fail;
	/* A role that failed verification does not hide the versions that did verify. */
	qsort(c.v, c.n, sizeof(*c.v), version_order);
	*ret_versions = c.v;
	*ret_n = c.n;
	return 0;
fail:
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i]);
	free(c.v);
	return ret;
}
