/* fs/prefetch_pack.c: the version-pack phase of fs_prefetch (fs/prefetch.c): before the
 * workers fetch objects one by one, each version's pack (store/README.md, "Version packs")
 * is fetched when it is worth its transfer, cut into objects on the transport's thread, and
 * its objects are unpacked, checked and written by a few writer threads while a committer
 * thread commits them in batches. What a pack does not bring stays in pf->objs for the
 * object-by-object phase.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/prefetch_int.h"

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

	if (fs_prefetch_cancelled(p->pf)) {
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
int fs_prefetch_packs(struct pf *pf, struct verify_manifest *const *ms, size_t n)
{
	struct phase ph = {.pf = pf};
	size_t u = 0;
	int r = 0;

	pf->done = calloc(pf->nobjs ? pf->nobjs : 1, 1);
	if (!pf->done)
		return -ENOMEM;
	if (fetch_has_peers(pf->f))
		return 0;
	for (size_t i = 0; i < n && r == 0 && !fs_prefetch_cancelled(pf); i++)
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
