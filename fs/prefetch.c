/* fs/prefetch.c: every object of some package versions into the node store, many transfers
 * at once, ahead of use (`stork prefetch`, and the daemon's prefetch= option).
 *
 * The distinct objects of the versions are listed (sorted by id, each once), those the store
 * holds are skipped, and `jobs` worker threads each run fetch_object for the next one: the
 * curl transport multiplexes all of them on its one I/O thread (HTTP/2 streams, or up to 8
 * connections per host), so the workers only wait. Each verified object is committed with
 * store_insert_commit_batched: the workers whose transfers ended while one sync was running
 * share the next one, so a prefetch pays one sync per group instead of three per object. The
 * calling thread only reports progress.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"

#define PROGRESS_MS 100

struct pf_obj {
	const struct verify_entry *e;	 /* borrowed from m */
	const struct verify_manifest *m; /* the first version naming it */
};

struct pf {
	struct store *s;
	struct fetch *f;
	struct store_batch *batch;
	const struct fs_prefetch_opts *o;
	struct pf_obj *objs; /* the objects to fetch */
	size_t nobjs;
	atomic_size_t next; /* the next objs[] a worker takes */
	/* Counters, updated by the workers (the I/O thread for bytes_done), read for progress. */
	atomic_uint_fast64_t objects_done, bytes_done, present, fetched, fetched_bytes, failed;
	atomic_uint_fast64_t packs, packed; /* version packs fetched, objects they stored */
	uint8_t *done;			    /* per objs[]: stored by a pack (the pack phase's) */
	struct verify_manifest *const *ms;  /* the versions */
	size_t nms;
	unsigned jobs;
	char driver_detail[1024]; /* under lock: the driver's own failure */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a worker left */
	unsigned running;    /* under lock */
	int err;	     /* under lock: the most telling failure so far */
	struct timespec start;
	uint64_t objects, bytes, bytes_present; /* fixed once the workers start */
	uint64_t present0;			/* objects already stored at the start */
};

/* fetch_object's sink: the store's insert, counting bytes as they are written. */
struct pf_sink {
	struct pf *pf;
	struct store_insert *ins;
	uint64_t written; /* counted in bytes_done for the current attempt */
};

static bool cancelled(const struct pf *pf)
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

	snprintf(what, sizeof(what), "%s %s: %s", ob->m->name, ob->m->version, e->path);
	r = store_insert_new(pf->s, e->hash, e->size, &ps.ins);
	if (r == 0) {
		r = fetch_object(pf->f, e->hash, e->size, e->zsize, what, &sink);
		store_insert_abort(ps.ins);
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

	while (!cancelled(pf)) {
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

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ms[i]->n; j++)
			total += ms[i]->entries[j].type == VERIFY_FILE;
	all = calloc(total ? total : 1, sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ms[i]->n; j++)
			if (ms[i]->entries[j].type == VERIFY_FILE)
				all[k++] = (struct pf_obj){&ms[i]->entries[j], ms[i]};
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

/* ------------------------------------------------------------------------------------------ */
/* Version packs (store/README.md, "Version packs"): the pack's bytes stream through pack_feed
 * on the transport's thread; each object the store lacks is unpacked and checked against the
 * manifest into a store insert and queued in the batch, which a committer thread commits
 * while the stream goes on. An object that does not verify is left for the per-object
 * phase, which fetches (and blames) it like any other. */

/* The committer's pace: what a pack delivered meanwhile is committed together (hundreds of
 * objects per sync; store_batch_add commits by itself past STORE_BATCH_MAX_QUEUED). */
#define COMMIT_EVERY_US 100000
/* Threads that unpack, check and write a pack's objects while the transport's thread reads
 * the next ones, and how many compressed bytes may wait for them. */
#define PACK_WRITERS   2
#define PACK_QUEUE_MAX (8u << 20)

/* pf->done[] states of an object in the pack phase. */
enum { PACK_WANTED, PACK_QUEUED, PACK_STORED };

/* A whole object's stored bytes, read from the pack, waiting for a writer. */
struct packjob {
	const struct store_pack_entry *pe;
	size_t k; /* its pf->objs index */
	struct packjob *next;
	uint8_t z[]; /* pe->e->zsize bytes */
};

/* The writers, shared by every pack of one prefetch. */
struct writers {
	struct pf *pf;
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job came, or stop */
	pthread_cond_t room; /* a job left the queue, or the queue emptied */
	struct packjob *head, **tail;
	size_t bytes;  /* queued */
	unsigned busy; /* writers with a job */
	bool stop;
	int err;		  /* the store's failure: the pack stops */
	char detail[1024];	  /* its detail */
	atomic_uint_fast64_t bad; /* objects that did not verify */
	pthread_t tids[PACK_WRITERS];
	unsigned started;
};

struct packrun {
	struct pf *pf;
	struct writers *w;
	struct store_pack_entry *ents;
	size_t n;
	size_t *obj; /* per entry: its index in pf->objs, or SIZE_MAX when not wanted */
	struct store_pack_cut cut;
	struct packjob *job; /* the entry being read, NULL when skipped */
	size_t have;	     /* of its bytes */
};

static ssize_t find_obj(const struct pf *pf, const uint8_t id[VERIFY_HASH_LEN])
{
	size_t lo = 0, hi = pf->nobjs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(pf->objs[mid].e->hash, id, VERIFY_HASH_LEN);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Content refused (the pack's fault), as opposed to the store's failure. */
static bool refused(int r)
{
	return r <= STORK_EBADSIG && r > STORK_EBADSIG - 1000;
}

static int job_out(void *ctx, const void *buf, size_t len)
{
	return store_insert_write(ctx, buf, len);
}

/* One object: unpacked and checked against the manifest into a store insert, queued in the
 * batch. @return 0 (stored or refused: *ret_ok says which); the store's failure. */
static int write_job(struct pf *pf, const struct packjob *j, bool *ret_ok)
{
	const struct verify_entry *e = j->pe->e;
	struct store_insert *ins = NULL;
	struct store_unpack *u = NULL;
	int r;

	*ret_ok = false;
	r = store_insert_new(pf->s, e->hash, e->size, &ins);
	if (r < 0)
		return r;
	r = store_unpack_new(e->hash, e->size, e->zsize, job_out, ins, &u);
	if (r == 0)
		r = store_unpack_write(u, j->z, e->zsize);
	if (r == 0)
		r = store_unpack_finish(u);
	store_unpack_free(u);
	if (r < 0) {
		store_insert_abort(ins);
		return refused(r) ? 0 : r;
	}
	r = store_batch_add(pf->batch, ins);
	if (r < 0)
		return refused(r) ? 0 : r;
	*ret_ok = true;
	return 0;
}

static void *writer_main(void *arg)
{
	struct writers *w = arg;
	struct pf *pf = w->pf;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct packjob *j;
		bool ok = false, failed;
		int r;

		while (!w->head && !w->stop)
			pthread_cond_wait(&w->work, &w->lock);
		if (!w->head)
			break;
		j = w->head;
		w->head = j->next;
		if (!w->head)
			w->tail = &w->head;
		w->bytes -= j->pe->e->zsize;
		w->busy++;
		failed = w->err != 0;
		pthread_cond_broadcast(&w->room);
		pthread_mutex_unlock(&w->lock);

		/* After the store failed, the rest of the pack is left for later. */
		r = failed ? 0 : write_job(pf, j, &ok);
		if (r == 0 && ok) {
			uint64_t size = j->pe->e->size;

			__atomic_store_n(&pf->done[j->k], PACK_STORED, __ATOMIC_RELEASE);
			atomic_fetch_add(&pf->bytes_done, size);
			atomic_fetch_add(&pf->fetched, 1);
			atomic_fetch_add(&pf->fetched_bytes, size);
			atomic_fetch_add(&pf->objects_done, 1);
		} else {
			/* Another mirror's pack, or the per-object phase, may bring it. */
			__atomic_store_n(&pf->done[j->k], PACK_WANTED, __ATOMIC_RELEASE);
			if (r == 0 && !failed)
				atomic_fetch_add(&w->bad, 1);
		}
		free(j);

		pthread_mutex_lock(&w->lock);
		if (r < 0 && !w->err) {
			w->err = r;
			snprintf(w->detail, sizeof(w->detail), "%s", stork_error_detail());
		}
		w->busy--;
		pthread_cond_broadcast(&w->room);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Hand a complete object to the writers, waiting while too many bytes wait already.
 * @return 0; the writers' failure (the pack stops). */
static int enqueue(struct writers *w, struct packjob *j)
{
	int r;

	pthread_mutex_lock(&w->lock);
	while (!w->err && w->bytes && w->bytes + j->pe->e->zsize > PACK_QUEUE_MAX)
		pthread_cond_wait(&w->room, &w->lock);
	r = w->err;
	if (r == 0) {
		j->next = NULL;
		*w->tail = j;
		w->tail = &j->next;
		w->bytes += j->pe->e->zsize;
		pthread_cond_signal(&w->work);
	}
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		__atomic_store_n(&w->pf->done[j->k], PACK_WANTED, __ATOMIC_RELEASE);
		free(j);
	}
	return r;
}

/* Until every queued object is written. */
static void drain(struct writers *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->head || w->busy)
		pthread_cond_wait(&w->room, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static int writers_start(struct writers *w, struct pf *pf)
{
	w->pf = pf;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->room, NULL);
	w->tail = &w->head;
	atomic_init(&w->bad, 0);
	for (; w->started < PACK_WRITERS; w->started++)
		if (pthread_create(&w->tids[w->started], NULL, writer_main, w) != 0)
			break;
	return w->started ? 0 : -EAGAIN;
}

static void writers_stop(struct writers *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->work);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->started; i++)
		pthread_join(w->tids[i], NULL);
	for (struct packjob *j = w->head, *next; j; j = next) {
		next = j->next;
		free(j);
	}
	pthread_cond_destroy(&w->room);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->lock);
}

/* Entry i starts: read it into a job when it is wanted, else skip it. */
static int pack_begin(void *ctx, size_t i)
{
	struct packrun *p = ctx;
	const struct store_pack_entry *pe = &p->ents[i];
	size_t k = p->obj[i];

	p->job = NULL;
	p->have = 0;
	if (k == SIZE_MAX || __atomic_load_n(&p->pf->done[k], __ATOMIC_ACQUIRE) != PACK_WANTED)
		return 0;
	p->job = malloc(sizeof(*p->job) + (size_t)pe->e->zsize);
	if (!p->job)
		return -ENOMEM;
	p->job->pe = pe;
	p->job->k = k;
	__atomic_store_n(&p->pf->done[k], PACK_QUEUED, __ATOMIC_RELEASE);
	return 0;
}

static int pack_data(void *ctx, size_t i, const void *buf, size_t len)
{
	struct packrun *p = ctx;

	if (p->job) {
		memcpy(p->job->z + p->have, buf, len);
		p->have += len;
	}
	return 0;
}

/* Entry i is whole: to the writers. */
static int pack_end(void *ctx, size_t i)
{
	struct packrun *p = ctx;
	struct packjob *j = p->job;

	p->job = NULL;
	return j ? enqueue(p->w, j) : 0;
}

static void pack_drop(struct packrun *p)
{
	if (p->job)
		__atomic_store_n(&p->pf->done[p->job->k], PACK_WANTED, __ATOMIC_RELEASE);
	free(p->job);
	p->job = NULL;
}

/* Runs on the transport's thread: cut the stream into objects for the writers. */
static int pack_feed(void *ctx, const void *buf, size_t len)
{
	struct packrun *p = ctx;

	if (cancelled(p->pf)) {
		stork_errorf("prefetch: cancelled");
		return -ECANCELED;
	}
	return store_pack_cut(&p->cut, buf, len);
}

static int pack_reset(void *ctx)
{
	struct packrun *p = ctx;

	pack_drop(p);
	p->cut.pos = 0;
	p->cut.cur = 0;
	p->cut.begun = false;
	return 0;
}

struct committer {
	struct pf *pf;
	pthread_t tid;
	atomic_int stop;
};

static void *committer_main(void *arg)
{
	struct committer *c = arg;

	while (!atomic_load(&c->stop)) {
		for (int i = 0; i < 10 && !atomic_load(&c->stop); i++)
			usleep(COMMIT_EVERY_US / 10);
		store_batch_commit(c->pf->batch, NULL);
	}
	return NULL;
}

/* Whether m's pack is worth its transfer, and which of its entries are wanted. */
static bool pack_wanted(struct packrun *p, uint64_t len)
{
	uint64_t want = 0, wantz = 0;

	for (size_t i = 0; i < p->n; i++) {
		ssize_t k = find_obj(p->pf, p->ents[i].e->hash);

		p->obj[i] = k < 0 || p->pf->done[k] != PACK_WANTED ? SIZE_MAX : (size_t)k;
		if (p->obj[i] != SIZE_MAX) {
			want++;
			wantz += p->ents[i].e->zsize;
		}
	}
	/* At least a pack's minimum of objects, and half its bytes: else requests per
	 * object cost less than the bytes a pack would bring for nothing. */
	return want >= STORE_PACK_MIN_OBJECTS && wantz * 2 >= len;
}

/* The pack phase's threads, started when the first pack is worth fetching. */
struct phase {
	struct pf *pf;
	struct writers w;
	struct committer c;
	bool writers, committer; /* started */
};

static int phase_start(struct phase *ph)
{
	if (ph->writers)
		return 0;
	if (writers_start(&ph->w, ph->pf) < 0) {
		writers_stop(&ph->w);
		return -EAGAIN;
	}
	ph->writers = true;
	ph->c.pf = ph->pf;
	atomic_init(&ph->c.stop, 0);
	ph->committer = pthread_create(&ph->c.tid, NULL, committer_main, &ph->c) == 0;
	return 0;
}

static void phase_stop(struct phase *ph)
{
	if (ph->writers)
		writers_stop(&ph->w);
	if (ph->committer) {
		atomic_store(&ph->c.stop, 1);
		pthread_join(ph->c.tid, NULL);
	}
}

static void note(struct pf *pf, const char *line)
{
	if (pf->o && pf->o->note)
		pf->o->note(pf->o->note_ctx, line);
	else
		fprintf(stderr, "storkfs: prefetch: %s\n", line);
}

/* m's pack, when it is worth its transfer. @return 0 (what it did not bring goes object by
 * object); 1: the store failed (told): no more packs; -ENOMEM; -ECANCELED. */
static int pack_one(struct phase *ph, const struct verify_manifest *m)
{
	struct pf *pf = ph->pf;
	struct writers *w = &ph->w;
	struct packrun p = {.pf = pf, .w = w};
	char what[600], line[1400], *path = NULL;
	uint64_t len = 0, bad0, bad, want = 0;
	int r, werr = 0;

	r = store_pack_layout(m, &p.ents, &p.n, &len);
	if (r < 0 || p.n == 0)
		return r;
	r = -ENOMEM;
	p.obj = calloc(p.n, sizeof(*p.obj));
	if (!p.obj)
		goto out;
	r = 0;
	if (!pack_wanted(&p, len) || phase_start(ph) < 0)
		goto out; /* object by object */
	r = verify_manifest_file(m, ".pack", &path);
	if (r < 0)
		goto out;
	p.cut = (struct store_pack_cut){.ents = p.ents,
					.n = p.n,
					.begin = pack_begin,
					.data = pack_data,
					.end = pack_end,
					.ctx = &p};
	snprintf(what, sizeof(what), "%s %s: version pack", m->name, m->version);
	bad0 = atomic_load(&w->bad);
	stork_error_clear();
	r = fetch_file(pf->f, path, len, what, pack_feed, pack_reset, &p);
	pack_drop(&p);
	drain(w);
	pthread_mutex_lock(&w->lock);
	werr = w->err;
	pthread_mutex_unlock(&w->lock);
	bad = atomic_load(&w->bad) - bad0;
	for (size_t i = 0; i < p.n; i++)
		want += p.obj[i] != SIZE_MAX;
	if (bad) {
		snprintf(line, sizeof(line),
			 "%s %s: version pack %s: %" PRIu64 " of %" PRIu64 " objects did not "
			 "verify; fetching them one by one",
			 m->name, m->version, path, bad, want);
		note(pf, line);
	}
	if (werr) {
		/* The store failed (a full disk...): no more packs; the per-object phase says
		 * what it can still do, object by object. */
		snprintf(line, sizeof(line), "%s %s: version pack %s: stopped: %s", m->name,
			 m->version, path, w->detail[0] ? w->detail : storkfs_strerror(werr));
		note(pf, line);
		r = 1;
	} else if (r == 0) {
		atomic_fetch_add(&pf->packs, 1);
	} else if (r != -ENOMEM && r != -ECANCELED) {
		r = 0; /* absent, or every mirror failed it (told): object by object */
	}
out:
	free(path);
	free(p.obj);
	free(p.ents);
	return r;
}

/* The pack phase: each version's pack when it is worth it, then the objects it stored are
 * dropped from pf->objs (the rest go object by object). Skipped when peers are configured:
 * they are asked before the mirrors, object by object, and a pack from the origin would
 * fetch what they hold. @return 0; -ENOMEM; -ECANCELED. */
static int packs(struct pf *pf, struct verify_manifest *const *ms, size_t n)
{
	struct phase ph = {.pf = pf};
	size_t u = 0;
	int r = 0;

	pf->done = calloc(pf->nobjs ? pf->nobjs : 1, 1);
	if (!pf->done)
		return -ENOMEM;
	if (fetch_has_peers(pf->f))
		return 0;
	for (size_t i = 0; i < n && r == 0 && !cancelled(pf); i++)
		r = pack_one(&ph, ms[i]);
	phase_stop(&ph);
	if (r == 1)
		r = 0;
	if (!ph.writers)
		return r;
	store_batch_commit(pf->batch, NULL);
	/* What a commit failed to index is not stored: it goes object by object. */
	for (size_t i = 0; i < pf->nobjs; i++) {
		struct store_objinfo info;
		bool stored = pf->done[i] == PACK_STORED;

		if (stored && store_object_info(pf->s, pf->objs[i].e->hash, &info) == 0) {
			atomic_fetch_add(&pf->packed, 1);
			continue;
		}
		if (stored) {
			atomic_fetch_sub(&pf->bytes_done, pf->objs[i].e->size);
			atomic_fetch_sub(&pf->fetched, 1);
			atomic_fetch_sub(&pf->fetched_bytes, pf->objs[i].e->size);
			atomic_fetch_sub(&pf->objects_done, 1);
		}
		pf->objs[u++] = pf->objs[i];
	}
	pf->nobjs = u;
	return r;
}

/* The driver thread: the pack phase, then the workers for what is left. Counts as running
 * (pf->running) until it has joined them. */
static void *driver(void *arg)
{
	struct pf *pf = arg;
	pthread_t *tids = NULL;
	unsigned jobs = pf->jobs, started = 0;
	int r;

	r = packs(pf, pf->ms, pf->nms);
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
	} else if (cancelled(&pf) && atomic_load(&pf.next) < pf.nobjs && ret == 0) {
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
