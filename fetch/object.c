/* fetch/object.c: objects into the caller's sink, and unsigned files checked in parts
 * (version packs) into the caller's function.
 *
 * An object streams through store/'s checking unpacker (store_unpack_new, or the raw one for a
 * peer, whose store holds plain bytes); only bytes with the signed length and SHA-256 reach
 * sink->commit. Concurrent fetch_object calls for one object in this process are collapsed
 * into one transfer by the in-flight list (struct fetch_flight, under f->lock): the first
 * caller transfers, the others wait for its result. fetch/README.md, "Objects", says why this
 * is not fs/job.c's keyed jobs.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/internal.h"
#include "store/store.h"

struct objjob {
	const uint8_t *id;
	uint64_t size, zsize;
	const struct fetch_sink *sink;
	struct store_unpack *u;
	struct fetch_try *j;
	int sinkerr; /* the sink's own failure: not the mirror's */
};

static int obj_sink_write(void *ctx, const void *buf, size_t len)
{
	struct objjob *o = ctx;
	int r = o->sink->write(o->sink->ctx, buf, len);

	if (r < 0)
		o->sinkerr = r;
	return r;
}

/* Runs where the transport calls it (the curl I/O thread). */
static int obj_feed(void *ctx, const void *buf, size_t len)
{
	struct objjob *o = ctx;
	int r = fetch_try_count(o->j, len);

	if (r < 0)
		return r;
	return store_unpack_write(o->u, buf, len);
}

static int obj_attempt(struct fetch_try *j, const struct fetch_transport *t, const char *url,
		       const char *proxy, bool raw)
{
	struct objjob *o = j->ctx;
	int r;

	o->sinkerr = 0;
	/* A peer's store holds the object uncompressed: size bytes, hashed as they are. */
	j->maxlen = raw ? o->size : o->zsize;
	if (raw)
		r = store_unpack_new_raw(o->id, o->size, obj_sink_write, o, &o->u);
	else
		r = store_unpack_new(o->id, o->size, o->zsize, obj_sink_write, o, &o->u);
	if (r < 0) {
		j->ours = true;
		return r;
	}
	r = fetch_get(t, url, proxy, j->maxlen, obj_feed, o);
	if (r == 0) {
		j->short_body = j->got < j->maxlen;
		r = store_unpack_finish(o->u);
	}
	store_unpack_free(o->u);
	o->u = NULL;
	if (o->sinkerr) {
		j->ours = true;
		return o->sinkerr;
	}
	return r;
}

static int obj_reset(struct fetch_try *j)
{
	struct objjob *o = j->ctx;
	int r = o->sink->reset(o->sink->ctx);

	if (r < 0)
		stork_error_prefix("%s (%s): cannot reset the store's temporary file", j->path,
				   j->what);
	return r;
}

/* peers_only: ask the usable peers and no mirror (zsize is then unused). */
static int object_now(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		      uint64_t zsize, bool peers_only, const char *what,
		      const struct fetch_sink *sink)
{
	char path[STORE_OBJPATH_LEN];
	struct objjob o = {.id = id, .size = size, .zsize = zsize, .sink = sink};
	struct fetch_try j = {
	    .path = path,
	    .what = what ? what : "object",
	    .object = true,
	    .peers_only = peers_only,
	    .maxlen = zsize,
	    .attempt = obj_attempt,
	    .reset = obj_reset,
	    .ctx = &o,
	};
	int r;

	o.j = &j;
	store_object_path(id, path);
	r = fetch_try_sources(f, &j);
	if (r < 0)
		return r;
	if (sink->source && j.winner)
		sink->source(sink->ctx, j.winner);
	r = sink->commit(sink->ctx);
	if (r < 0)
		stork_error_prefix("%s (%s)", path, j.what);
	return r;
}

int fetch_object(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size, uint64_t zsize,
		 const char *what, const struct fetch_sink *sink)
{
	struct fetch_flight *e;
	int r;

	pthread_mutex_lock(&f->lock);
	for (e = f->inflight; e; e = e->next)
		if (!memcmp(e->id, id, VERIFY_HASH_LEN))
			break;
	if (e) {
		/* Someone is fetching it: their transfer is ours. */
		e->refs++;
		while (!e->done)
			pthread_cond_wait(&e->cond, &f->lock);
		r = e->result;
		if (r < 0)
			stork_errorf("%s", e->detail ? e->detail : storkfs_strerror(r));
		if (--e->refs == 0) {
			pthread_cond_destroy(&e->cond);
			free(e->detail);
			free(e);
		}
		pthread_mutex_unlock(&f->lock);
		return r == 0 ? 1 : r;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&f->lock);
		return -ENOMEM;
	}
	memcpy(e->id, id, VERIFY_HASH_LEN);
	e->refs = 1;
	pthread_cond_init(&e->cond, NULL);
	e->next = f->inflight;
	f->inflight = e;
	pthread_mutex_unlock(&f->lock);

	r = object_now(f, id, size, zsize, false, what, sink);

	pthread_mutex_lock(&f->lock);
	for (struct fetch_flight **p = &f->inflight; *p; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	e->done = true;
	e->result = r;
	if (r < 0)
		e->detail = strdup(stork_error_detail()); /* as long as the detail: never cut */
	pthread_cond_broadcast(&e->cond);
	if (--e->refs == 0) {
		pthread_cond_destroy(&e->cond);
		free(e->detail);
		free(e);
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

int fetch_from_peers(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		     const char *what, const struct fetch_sink *sink)
{
	/* Not collapsed with fetch_object's transfers: a waiter would get no bytes in its own
	 * sink, and what is asked here (a manifest) is small and fetched once per node. */
	return object_now(f, id, size, size, true, what, sink);
}

/* ------------------------------------------------------------------------------------------ */
/* Unsigned files whose parts the caller checks (version packs). */

struct filejob {
	struct fetch *f;
	struct fetch_try *j;
	uint64_t offset; /* a range of the file (fetch_file_range) when ranged */
	bool ranged;
	fetch_write_fn fn;
	int (*reset)(void *ctx);
	void *ctx;
};

static int file_feed(void *ctx, const void *buf, size_t len)
{
	struct filejob *fj = ctx;
	int r = fetch_try_count(fj->j, len);

	if (r < 0)
		return r;
	r = fj->fn(fj->ctx, buf, len);
	if (r < 0)
		fj->j->ours = true;
	return r;
}

static int file_attempt(struct fetch_try *j, const struct fetch_transport *t, const char *url,
			const char *proxy, bool raw)
{
	struct filejob *fj = j->ctx;
	char shown[LINE_LEN];
	int r;

	(void)raw;
	if (fj->ranged) {
		if (!t->get_range) {
			stork_errorf("%s: the %s transport cannot ask for a range",
				     fetch_url_shown(url, shown, sizeof(shown)), t->name);
			return -EOPNOTSUPP;
		}
		r = t->get_range(t->tctx, url, proxy, fj->offset, j->maxlen, file_feed, j->ctx);
		goto got;
	}
	if (t->tctx == fj->f->curl_tctx && fj->f->has_bulk_curl)
		t = &fj->f->bulk_curl;
	r = fetch_get(t, url, proxy, j->maxlen, file_feed, j->ctx);
got:

	if (r == 0 && j->got < j->maxlen) {
		j->short_body = true;

		stork_errorf("%s: truncated: %" PRIu64 " of %" PRIu64 " bytes",
			     fetch_url_shown(url, shown, sizeof(shown)), j->got, j->maxlen);
		r = STORK_EBADLEN;
	}
	return r;
}

static int file_reset(struct fetch_try *j)
{
	struct filejob *fj = j->ctx;

	return fj->reset ? fj->reset(fj->ctx) : 0;
}

/* fetch_file and fetch_file_range: ranged, the len bytes at offset; else the whole file, at
 * most len bytes. */
static int file_fetch(struct fetch *f, const char *path, bool ranged, uint64_t offset, uint64_t len,
		      const char *what, fetch_write_fn fn, int (*reset)(void *ctx), void *ctx,
		      const char **ret_mirror)
{
	struct filejob fj = {
	    .f = f, .fn = fn, .reset = reset, .ctx = ctx, .offset = offset, .ranged = ranged};
	struct fetch_try j = {
	    .path = path,
	    .what = what,
	    .maxlen = len,
	    .attempt = file_attempt,
	    .reset = file_reset,
	    .ctx = &fj,
	    .optional = true,
	};
	int r;

	fj.j = &j;
	r = fetch_try_sources(f, &j);
	if (r == 0 && ret_mirror)
		*ret_mirror = j.winner;
	return r;
}

int fetch_file(struct fetch *f, const char *path, uint64_t len, const char *what, fetch_write_fn fn,
	       int (*reset)(void *ctx), void *ctx)
{
	return file_fetch(f, path, false, 0, len, what, fn, reset, ctx, NULL);
}

int fetch_file_range(struct fetch *f, const char *path, uint64_t offset, uint64_t len,
		     const char *what, fetch_write_fn fn, int (*reset)(void *ctx), void *ctx,
		     const char **ret_mirror)
{
	if (len == 0)
		return 0;
	return file_fetch(f, path, true, offset, len, what, fn, reset, ctx, ret_mirror);
}
