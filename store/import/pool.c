/* store/import/pool.c: publishing at the speed of the machine (store/README.md, "Publishing in
 * parallel"). A directory's files are hashed, compressed and written on worker threads, one per
 * CPU (at most POOL_MAX), while the walk goes on; every object of a source, from the workers
 * or read sequentially from an archive, is written to a temporary file without a sync and
 * named only at the end, all together after one sync (import_commit_pending), so that an
 * import costs one sync of the file system and one of each object directory instead of two
 * per object, and a crash before the names leaves only temporary files.
 *
 * Locking: one mutex per pool over its queue, its results and its first error. A job belongs
 * to the queue, then to one worker, then to the results, which only the main thread reads,
 * after joining the workers. Workers read im->repofd and im->src (never changed during the
 * walk) and add to im->dir_done atomically; everything else of im is the main thread's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/import/internal.h"

#define POOL_MAX 8
#define QUEUE	 64 /* files handed out and not taken yet: bounds open descriptors */

struct job {
	int fd;
	char *path;
	uint64_t size; /* as stat'ed by the walk */
	size_t idx;    /* the manifest entry */
	struct obj o;
	bool pending;
	struct store_objpending p;
};

struct import_pool {
	struct imp *im;
	pthread_t threads[POOL_MAX];
	size_t nthreads;
	pthread_mutex_t lock;
	pthread_cond_t more, room;
	struct job *queue[QUEUE];
	size_t head, len;
	struct job **done;
	size_t ndone, capdone;
	bool closing;
	int err; /* the first failure; its detail (thread-local in the worker) copied here */
	char detail[1024];
};

static void job_free(struct job *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	free(j);
}

/* Store one file as an object (on a worker). @return 0; a negative code with the detail set. */
static int store_job(struct imp *im, struct job *j, uint8_t *buf)
{
	struct store_objwriter *w = NULL;
	uint64_t got = 0;
	int r;

	r = store_objwriter_new(im->repofd, &w);
	if (r < 0)
		return import_prefixed(im, r);
	for (;;) {
		ssize_t n = read(j->fd, buf, IOBUF_LEN);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = import_fail(im, -errno, j->path, "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
		if (got > j->size)
			break; /* grown: said below */
		r = store_objwriter_write(w, buf, (size_t)n);
		if (r < 0) {
			r = import_prefixed(im, r);
			goto fail;
		}
		__atomic_add_fetch(&im->dir_done, (uint64_t)n, __ATOMIC_RELAXED);
	}
	if (got != j->size) {
		r = import_fail(im, -EAGAIN, j->path,
				"changed while being read (%llu bytes, read %s%llu)",
				(unsigned long long)j->size, got > j->size ? "more than " : "",
				(unsigned long long)(got > j->size ? j->size : got));
		goto fail;
	}
	r = store_objwriter_finish(w, j->o.hash, &j->o.size, &j->o.zsize, &j->p, &j->pending);
	w = NULL;
	if (r < 0)
		return import_prefixed(im, r);
	return 0;
fail:
	store_objwriter_abort(w);
	return r;
}

static void *worker(void *arg)
{
	struct import_pool *p = arg;
	uint8_t *buf = malloc(IOBUF_LEN);

	for (;;) {
		struct job *j;
		bool failed;
		int r;

		pthread_mutex_lock(&p->lock);
		while (!p->len && !p->closing)
			pthread_cond_wait(&p->more, &p->lock);
		if (!p->len) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		j = p->queue[p->head];
		p->head = (p->head + 1) % QUEUE;
		p->len--;
		pthread_cond_signal(&p->room);
		failed = p->err != 0;
		pthread_mutex_unlock(&p->lock);

		r = failed ? -ECANCELED : buf ? store_job(p->im, j, buf) : -ENOMEM;
		close(j->fd);
		j->fd = -1;
		pthread_mutex_lock(&p->lock);
		if (r == 0 && p->ndone == p->capdone) {
			size_t cap = p->capdone ? 2 * p->capdone : 1024;
			struct job **d = realloc(p->done, cap * sizeof(*d));

			if (d) {
				p->done = d;
				p->capdone = cap;
			} else {
				r = -ENOMEM;
				stork_errorf("%s: out of memory", p->im->src);
			}
		}
		if (r == 0) {
			p->done[p->ndone++] = j;
		} else {
			if (!p->err && r != -ECANCELED) {
				p->err = r;
				snprintf(p->detail, sizeof(p->detail), "%s", stork_error_detail());
			}
			if (j->pending) /* written, not kept: remove it */
				store_objwriter_drop_pending(p->im->repofd, &j->p, 1);
			job_free(j);
		}
		pthread_cond_broadcast(&p->room); /* a failure wakes the walk */
		pthread_mutex_unlock(&p->lock);
	}
	free(buf);
	store_objwriter_thread_done();
	return NULL;
}

void import_pool_start(struct imp *im)
{
	struct import_pool *p;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = cpus < 1 ? 1 : cpus > POOL_MAX ? POOL_MAX : (size_t)cpus;

	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->im = im;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	pthread_cond_init(&p->room, NULL);
	while (p->nthreads < want && pthread_create(&p->threads[p->nthreads], NULL, worker, p) == 0)
		p->nthreads++;
	if (!p->nthreads) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->more);
		pthread_cond_destroy(&p->room);
		free(p);
		return; /* sequential */
	}
	im->pool = p;
}

int import_pool_file(struct imp *im, int fd, const char *path, uint64_t size, size_t idx)
{
	struct import_pool *p = im->pool;
	struct job *j = calloc(1, sizeof(*j));
	int r = 0;

	if (!j || !(j->path = strdup(path))) {
		free(j);
		close(fd);
		return import_fail(im, -ENOMEM, path, "out of memory");
	}
	j->fd = fd;
	j->size = size;
	j->idx = idx;
	pthread_mutex_lock(&p->lock);
	while (p->len == QUEUE && !p->err)
		pthread_cond_wait(&p->room, &p->lock);
	if (p->err) {
		r = p->err; /* the walk stops with the worker's failure */
		stork_errorf("%s", p->detail);
	} else {
		p->queue[(p->head + p->len) % QUEUE] = j;
		p->len++;
		j = NULL;
		pthread_cond_signal(&p->more);
	}
	pthread_mutex_unlock(&p->lock);
	job_free(j);
	return r;
}

int import_pool_finish(struct imp *im, bool walk_ok)
{
	struct import_pool *p = im->pool;
	int r = 0;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	p->closing = true;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	im->pool = NULL;
	if (p->err) {
		r = p->err;
		if (walk_ok)
			stork_errorf("%s", p->detail);
	}
	for (size_t i = 0; i < p->ndone; i++) {
		struct job *j = p->done[i];
		struct verify_entry *e = &im->m->entries[j->idx];

		memcpy(e->hash, j->o.hash, VERIFY_HASH_LEN);
		e->zsize = j->o.zsize;
		if (j->pending) {
			int k = import_pending_add(im, &j->p, j->o.size, &e->zsize);

			if (k < 0 && r == 0) {
				r = import_fail(im, k, j->path, "out of memory");
				store_objwriter_drop_pending(im->repofd, &j->p, 1);
			}
		}
		job_free(j);
	}
	free(p->done);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->more);
	pthread_cond_destroy(&p->room);
	free(p);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* The pending objects. */

static size_t pset_slot(const uint8_t hash[VERIFY_HASH_LEN], size_t cap)
{
	uint64_t h;

	memcpy(&h, hash, sizeof(h));
	return (size_t)h & (cap - 1);
}

static bool pset_grow(struct imp *im)
{
	size_t cap = im->pset_cap ? 2 * im->pset_cap : 1024;
	uint32_t *s = calloc(cap, sizeof(*s));

	if (!s)
		return false;
	for (size_t i = 0; i < im->npending; i++) {
		size_t k = pset_slot(im->pending[i].hash, cap);

		while (s[k])
			k = (k + 1) & (cap - 1);
		s[k] = (uint32_t)(i + 1);
	}
	free(im->pset);
	im->pset = s;
	im->pset_cap = cap;
	return true;
}

int import_pending_add(struct imp *im, const struct store_objpending *p, uint64_t size,
		       uint64_t *ret_zsize)
{
	size_t k;

	if ((im->npending + 1) * 2 > im->pset_cap && !pset_grow(im))
		return -ENOMEM;
	for (k = pset_slot(p->hash, im->pset_cap); im->pset[k]; k = (k + 1) & (im->pset_cap - 1)) {
		const struct store_objpending *q = &im->pending[im->pset[k] - 1];

		if (memcmp(q->hash, p->hash, VERIFY_HASH_LEN) == 0) {
			/* The same content met before in this source: one object. */
			struct store_objpending dup = *p;

			store_objwriter_drop_pending(im->repofd, &dup, 1);
			*ret_zsize = q->zsize;
			return 0;
		}
	}
	if (im->npending == im->cap_pending) {
		size_t cap = im->cap_pending ? 2 * im->cap_pending : 1024;
		struct store_objpending *n = realloc(im->pending, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		im->pending = n;
		im->cap_pending = cap;
	}
	if (im->npending >= UINT32_MAX - 1)
		return -EFBIG;
	im->pending[im->npending] = *p;
	im->pset[k] = (uint32_t)++im->npending;
	im->new_objects++;
	im->new_bytes += size;
	*ret_zsize = p->zsize;
	return 0;
}

/* Another writer's object won the name: its size is what the manifest signs, for a file
 * stored whole or a chunk (whose file's zsize is the sum of its chunks'). */
static void fix_zsize(void *ctx, const uint8_t hash[VERIFY_HASH_LEN], uint64_t zsize)
{
	struct imp *im = ctx;

	for (size_t i = 0; i < im->m->n; i++) {
		struct verify_entry *e = &im->m->entries[i];

		if (e->type != VERIFY_FILE)
			continue;
		if (!e->nchunks && memcmp(e->hash, hash, VERIFY_HASH_LEN) == 0)
			e->zsize = zsize;
		for (size_t k = 0; k < e->nchunks; k++) {
			struct verify_entry *c = &e->chunks[k];

			if (memcmp(c->hash, hash, VERIFY_HASH_LEN) == 0) {
				e->zsize = e->zsize - c->zsize + zsize;
				c->zsize = zsize;
			}
		}
	}
}

int import_commit_pending(struct imp *im)
{
	int r =
	    store_objwriter_commit_pending(im->repofd, im->pending, im->npending, fix_zsize, im);

	if (r < 0)
		return import_prefixed(im, r);
	im->npending = 0;
	return 0;
}

void import_drop_pending(struct imp *im)
{
	store_objwriter_drop_pending(im->repofd, im->pending, im->npending);
	free(im->pending);
	free(im->pset);
	im->pending = NULL;
	im->pset = NULL;
	im->npending = im->cap_pending = im->pset_cap = 0;
}
