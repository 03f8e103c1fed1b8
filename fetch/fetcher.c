/* fetch/fetcher.c: mirrors in order with health, collapsed object fetches, a verify_source.
 *
 * A fetcher tries its mirrors in the order they were added, usable ones first and then those
 * skipped after a failure (a fallback is never left untried). Objects stream through store/'s
 * checking unpacker into the caller's sink; only bytes that verify reach sink->commit.
 * fetch/README.md has the rules and their reasons.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "store/store.h"

#define DEFAULT_RETRY 1800 /* seconds a failed mirror is skipped (CernVM-FS's host reset) */
#define SUMMARY_LEN   1024 /* the final error detail (stork_errorf's own limit) */
#define LINE_LEN      1024

struct tnode {
	struct fetch_transport t;
	struct tnode *next;
};

struct mirror {
	char *url;  /* as given: the name in stats and messages */
	char *base; /* what paths are appended to, without a trailing '/' */
	const struct fetch_transport *t;
	/* Under f->lock. */
	uint64_t requests, bytes, failures;
	int64_t last_failure;  /* monotonic seconds, 0 = never */
	int64_t skipped_until; /* monotonic seconds; 0 = usable; -1 = for the fetcher's life */
};

/* One object being fetched; others asking for it wait on cond (under f->lock). */
struct inflight {
	uint8_t id[VERIFY_HASH_LEN];
	struct inflight *next;
	unsigned refs; /* the owner and each waiter */
	bool done;
	int result;
	char detail[SUMMARY_LEN];
	pthread_cond_t cond;
};

struct fetch {
	struct fetch_opts opts;
	long retry;		  /* resolved mirror_retry */
	struct tnode *transports; /* newest first */
	struct mirror **mirrors;
	size_t nmirrors;
	char *describe;	      /* the mirrors' URLs, ", "-separated */
	pthread_mutex_t lock; /* mirror health and counters, the in-flight table */
	struct inflight *inflight;
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers. */

static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec + 1; /* never 0: 0 means "never" */
}

static void log_line(struct fetch *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_line(struct fetch *f, const char *fmt, ...)
{
	char line[LINE_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->opts.log)
		f->opts.log(f->opts.log_ctx, line);
	else
		fprintf(stderr, "storkfs: %s\n", line);
}

/* Append to a fixed buffer, truncating (the result stays NUL-terminated). */
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= size - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*len = (size_t)n >= size - *len ? size - 1 : *len + (size_t)n;
}

/* Percent-encode bytes outside a conservative set; '/' is kept. */
static size_t encode(char *out, const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("/._~+:-", c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}

static char *url_join(const char *base, const char *path)
{
	size_t blen = strlen(base);
	char *url = malloc(blen + 1 + 3 * strlen(path) + 1);

	if (!url)
		return NULL;
	memcpy(url, base, blen);
	url[blen] = '/';
	encode(url + blen + 1, path);
	return url;
}

/* Paths come from metadata: refuse anything that could leave the repository (libcurl would
 * fold "..", and file:// would then read outside the mirror's directory). */
static int check_path(const char *path)
{
	const char *p = path;

	if (*p == '\0' || *p == '/') {
		stork_errorf("%s: not a path relative to the repository", path);
		return -EINVAL;
	}
	while (*p) {
		const char *e = strchrnul(p, '/');

		if ((e - p == 2 && p[0] == '.' && p[1] == '.') || (e - p == 1 && p[0] == '.') ||
		    e == p) {
			stork_errorf("%s: an empty, \".\" or \"..\" component", path);
			return -EINVAL;
		}
		p = *e ? e + 1 : e;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Mirror health. */

static bool usable(const struct mirror *m, int64_t now)
{
	return m->skipped_until == 0 || (m->skipped_until > 0 && now >= m->skipped_until);
}

/* The order to try mirrors in: usable ones in order, then skipped ones in order. */
static int try_order(struct fetch *f, size_t **ret_order)
{
	int64_t now = now_s();
	size_t *order, n = 0;

	order = malloc((f->nmirrors ? f->nmirrors : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nmirrors; i++)
		if (usable(f->mirrors[i], now))
			order[n++] = i;
	for (size_t i = 0; i < f->nmirrors; i++)
		if (!usable(f->mirrors[i], now))
			order[n++] = i;
	pthread_mutex_unlock(&f->lock);
	*ret_order = order;
	return 0;
}

/* Count one request; on failure of the mirror's making mark it skipped. Returns what the log
 * line should add about skipping, "" if nothing changed. */
static const char *note_result(struct fetch *f, struct mirror *m, uint64_t bytes, bool ok,
			       bool mark, char *buf, size_t len)
{
	int64_t now = now_s();
	bool was_usable;

	buf[0] = '\0';
	pthread_mutex_lock(&f->lock);
	m->requests++;
	m->bytes += bytes;
	if (ok) {
		m->skipped_until = 0;
	} else if (mark) {
		was_usable = usable(m, now);
		m->failures++;
		m->last_failure = now;
		m->skipped_until = f->retry < 0 ? -1 : now + f->retry;
		if (was_usable && f->retry < 0)
			snprintf(buf, len, "; skipping this mirror from now on");
		else if (was_usable)
			snprintf(buf, len, "; skipping this mirror for %ld s", f->retry);
	}
	pthread_mutex_unlock(&f->lock);
	return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Trying the mirrors in turn. */

struct job {
	const char *path; /* relative to a mirror: "objects/ab/<hex>", "metadata/..." */
	const char *what; /* names an object for people; NULL for metadata */
	bool object;	  /* -ENOENT is then the mirror's failure (it is stale) */
	uint64_t maxlen;
	/* One try. Sets got, ours and stuck as described below. */
	int (*attempt)(struct job *j, const struct fetch_transport *t, const char *url);
	/* Before the next mirror; may be NULL. */
	int (*reset)(struct job *j);
	void *ctx;
	const char *winner; /* the mirror (URL as added) whose attempt succeeded */
	/* Per attempt. */
	uint64_t got;	 /* body bytes received */
	bool toobig;	 /* the source sent more than maxlen */
	bool ours;	 /* the failure is the consumer's (sink, memory): stop, blame none */
	bool stuck;	 /* bytes reached a consumer that cannot take them again */
	bool short_body; /* the transport ended cleanly before maxlen bytes */
};

/* Enforce maxlen ourselves too: a transport that does not is cut off here. */
static int job_count(struct job *j, size_t len)
{
	if (len > j->maxlen - j->got) {
		j->toobig = true;
		stork_errorf("sent more than the limit of %" PRIu64 " bytes", j->maxlen);
		return STORK_ETOOBIG;
	}
	j->got += len;
	return 0;
}

/* What a single source did, for people: short, without the URL the detail may start with. */
static void describe_failure(const struct job *j, int r, const char *url, char *out, size_t len)
{
	const char *d = stork_error_detail();
	size_t ul = strlen(url);

	if (!strncmp(d, url, ul) && d[ul] == ':' && d[ul + 1] == ' ')
		d += ul + 2;
	if (!strncmp(d, "object: ", 8))
		d += 8;
	if (r == -ENOENT) {
		snprintf(out, len, "not found");
	} else if (r == STORK_ETOOBIG || j->toobig) {
		snprintf(out, len, "sent more than the %s %" PRIu64 " bytes",
			 j->object ? "signed" : "allowed", j->maxlen);
	} else if (r == STORK_EBADHASH) {
		snprintf(out, len, "hash mismatch");
	} else if (r == STORK_EBADLEN && j->short_body) {
		snprintf(out, len, "truncated: %" PRIu64 " of the signed %" PRIu64 " bytes", j->got,
			 j->maxlen);
	} else if (r == STORK_EFORMAT && j->object) {
		snprintf(out, len, "%s", d[0] ? d : "corrupt zstd data");
	} else if (r == -ECONNREFUSED && !d[0]) {
		snprintf(out, len, "connection refused");
	} else {
		snprintf(out, len, "%s", d[0] ? d : storkfs_strerror(r));
	}
}

/* The code to return when every mirror failed, from the most telling answer. Metadata:
 * -ENOENT as soon as one mirror said so (a source that answered outweighs ones that could not
 * be reached: a missing N+1.root.json ends the root chain), then refused content, then
 * transport failures. Objects: refused content (a lying mirror), then transport failures,
 * then -ENOENT. Within a class, the first in the order tried. */
static int rank(const struct job *j, int r)
{
	if (r == -ENOENT)
		return j->object ? 0 : 3;
	return r <= STORK_EBADSIG && r > STORK_EBADSIG - 1000 ? 2 : 1;
}

static int pick(const struct job *j, int best, int r)
{
	return !best || rank(j, r) > rank(j, best) ? r : best;
}

static int run(struct fetch *f, struct job *j)
{
	char summary[SUMMARY_LEN], line[LINE_LEN / 2], skip[64], name[LINE_LEN / 2];
	size_t *order = NULL, slen = 0;
	bool all_enoent = true;
	int best = 0, r;

	r = check_path(j->path);
	if (r < 0)
		return r;
	/* The file for people: "objects/ab/<hex> (hello 2.10-3: usr/bin/hello)". */
	if (j->what)
		snprintf(name, sizeof(name), "%s (%s)", j->path, j->what);
	else
		snprintf(name, sizeof(name), "%s", j->path);
	if (f->nmirrors == 0) {
		stork_errorf("%s: no mirror to fetch it from", name);
		return -ENOENT;
	}
	r = try_order(f, &order);
	if (r < 0)
		return r;
	summary[0] = '\0';
	for (size_t k = 0; k < f->nmirrors; k++) {
		struct mirror *m = f->mirrors[order[k]];
		char *url = url_join(m->base, j->path);
		bool mark;

		if (!url) {
			r = -ENOMEM;
			goto out;
		}
		j->got = 0;
		j->toobig = j->ours = j->stuck = j->short_body = false;
		stork_error_clear();
		r = j->attempt(j, m->t, url);
		if (r == 0) {
			note_result(f, m, j->got, true, false, skip, sizeof(skip));
			j->winner = m->url;
			free(url);
			goto out;
		}
		if (j->ours || r == -ENOMEM || r == -ECANCELED) {
			/* Not the mirror's doing, and no other mirror would fare better. */
			note_result(f, m, j->got, false, false, skip, sizeof(skip));
			free(url);
			if (j->object)
				stork_error_prefix("%s", name);
			goto out;
		}
		/* A missing metadata file is an answer, not a failure. */
		mark = j->object || r != -ENOENT;
		describe_failure(j, r, url, line, sizeof(line));
		free(url);
		note_result(f, m, j->got, false, mark, skip, sizeof(skip));
		if (mark)
			log_line(f, "%s: %s: %s%s", m->url, name, line, skip);
		append(summary, sizeof(summary), &slen, "%s%s: %s", k ? "; " : "", m->url, line);
		if (r != -ENOENT)
			all_enoent = false;
		best = pick(j, best, r);
		if (j->stuck)
			break;
		if (j->reset && k + 1 < f->nmirrors) {
			r = j->reset(j);
			if (r < 0)
				goto out;
		}
	}
	r = best;
	if (all_enoent && slen)
		stork_errorf("%s: not found on any mirror (%s)", name, f->describe);
	else
		stork_errorf("%s: every mirror failed: %s", name, summary);
out:
	free(order);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Objects. */

struct objjob {
	const uint8_t *id;
	uint64_t size, zsize;
	const struct fetch_sink *sink;
	struct store_unpack *u;
	struct job *j;
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
	int r = job_count(o->j, len);

	if (r < 0)
		return r;
	return store_unpack_write(o->u, buf, len);
}

static int obj_attempt(struct job *j, const struct fetch_transport *t, const char *url)
{
	struct objjob *o = j->ctx;
	int r;

	o->sinkerr = 0;
	r = store_unpack_new(o->id, o->size, o->zsize, obj_sink_write, o, &o->u);
	if (r < 0) {
		j->ours = true;
		return r;
	}
	r = t->get(t->tctx, url, o->zsize, obj_feed, o);
	if (r == 0) {
		j->short_body = j->got < o->zsize;
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

static int obj_reset(struct job *j)
{
	struct objjob *o = j->ctx;
	int r = o->sink->reset(o->sink->ctx);

	if (r < 0)
		stork_error_prefix("%s (%s): cannot reset the store's temporary file", j->path,
				   j->what);
	return r;
}

static int object_now(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		      uint64_t zsize, const char *what, const struct fetch_sink *sink)
{
	char path[STORE_OBJPATH_LEN];
	struct objjob o = {.id = id, .size = size, .zsize = zsize, .sink = sink};
	struct job j = {
	    .path = path,
	    .what = what ? what : "object",
	    .object = true,
	    .maxlen = zsize,
	    .attempt = obj_attempt,
	    .reset = obj_reset,
	    .ctx = &o,
	};
	int r;

	o.j = &j;
	store_object_path(id, path);
	r = run(f, &j);
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
	struct inflight *e;
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
			stork_errorf("%s", e->detail);
		if (--e->refs == 0) {
			pthread_cond_destroy(&e->cond);
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

	r = object_now(f, id, size, zsize, what, sink);

	pthread_mutex_lock(&f->lock);
	for (struct inflight **p = &f->inflight; *p; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	e->done = true;
	e->result = r;
	if (r < 0)
		snprintf(e->detail, sizeof(e->detail), "%s", stork_error_detail());
	pthread_cond_broadcast(&e->cond);
	if (--e->refs == 0) {
		pthread_cond_destroy(&e->cond);
		free(e);
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* The verify_source. */

struct membuf {
	struct job *j;
	uint8_t *buf;
	size_t len, cap;
};

static int mem_feed(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;
	int r = job_count(m->j, len);

	if (r < 0)
		return r;
	if (len + 1 > m->cap - m->len) {
		size_t cap = m->cap ? m->cap : 4096;
		uint8_t *n;

		while (cap - m->len < len + 1) {
			if (cap > SIZE_MAX / 2) {
				m->j->ours = true;
				return -ENOMEM;
			}
			cap *= 2;
		}
		n = realloc(m->buf, cap);
		if (!n) {
			m->j->ours = true;
			return -ENOMEM;
		}
		m->buf = n;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	m->buf[m->len] = 0;
	return 0;
}

static int get_attempt(struct job *j, const struct fetch_transport *t, const char *url)
{
	struct membuf *m = j->ctx;
	int r;

	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
	r = t->get(t->tctx, url, j->maxlen, mem_feed, m);
	if (r == 0 && !m->buf) {
		m->buf = malloc(1);
		if (!m->buf) {
			j->ours = true;
			return -ENOMEM;
		}
		m->buf[0] = 0;
	}
	return r;
}

static int src_get(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len)
{
	struct fetch *f = ctx;
	struct membuf m = {0};
	struct job j = {.path = path, .maxlen = maxlen, .attempt = get_attempt, .ctx = &m};
	int r;

	m.j = &j;
	r = run(f, &j);
	if (r < 0) {
		free(m.buf);
		return r;
	}
	*ret_buf = m.buf;
	*ret_len = m.len;
	return 0;
}

struct streamjob {
	struct job *j;
	int (*fn)(void *fnctx, const void *buf, size_t len);
	void *fnctx;
};

static int stream_feed(void *ctx, const void *buf, size_t len)
{
	struct streamjob *s = ctx;
	int r = job_count(s->j, len);

	if (r < 0)
		return r;
	/* From now on a failure of this source cannot be hidden: fn has seen its bytes. */
	s->j->stuck = true;
	r = s->fn(s->fnctx, buf, len);
	if (r < 0)
		s->j->ours = true;
	return r;
}

static int stream_attempt(struct job *j, const struct fetch_transport *t, const char *url)
{
	return t->get(t->tctx, url, j->maxlen, stream_feed, j->ctx);
}

static int src_stream(void *ctx, const char *path, uint64_t maxlen,
		      int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx)
{
	struct fetch *f = ctx;
	struct streamjob s = {.fn = fn, .fnctx = fnctx};
	struct job j = {.path = path, .maxlen = maxlen, .attempt = stream_attempt, .ctx = &s};

	s.j = &j;
	return run(f, &j);
}

static const char *src_describe(void *ctx)
{
	struct fetch *f = ctx;

	return f->describe ? f->describe : "(no mirror)";
}

void fetch_as_source(struct fetch *f, struct verify_source *ret_src)
{
	*ret_src = (struct verify_source){
	    .get = src_get,
	    .stream = src_stream,
	    .describe = src_describe,
	    .ctx = f,
	};
}

/* ------------------------------------------------------------------------------------------ */
/* Set-up. */

int fetch_new(const struct fetch_opts *o, struct fetch **ret_f)
{
	struct fetch_transport t;
	struct fetch *f;
	int r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (o)
		f->opts = *o;
	f->opts.cainfo = NULL; /* the curl transport keeps its own copy */
	f->retry = f->opts.mirror_retry < 0   ? -1
		   : f->opts.mirror_retry > 0 ? f->opts.mirror_retry
					      : DEFAULT_RETRY;
	pthread_mutex_init(&f->lock, NULL);
	r = fetch_curl_transport_new(o, &t);
	if (r < 0)
		goto fail;
	r = fetch_add_transport(f, &t);
	if (r < 0)
		goto fail;
	*ret_f = f;
	return 0;
fail:
	fetch_free(f);
	return r;
}

void fetch_cancel(struct fetch *f)
{
	pthread_mutex_lock(&f->lock);
	for (struct tnode *n = f->transports; n; n = n->next)
		if (n->t.cancel)
			n->t.cancel(n->t.tctx);
	pthread_mutex_unlock(&f->lock);
}

void fetch_free(struct fetch *f)
{
	struct tnode *n;

	if (!f)
		return;
	for (size_t i = 0; i < f->nmirrors; i++) {
		free(f->mirrors[i]->url);
		free(f->mirrors[i]->base);
		free(f->mirrors[i]);
	}
	free(f->mirrors);
	while ((n = f->transports)) {
		f->transports = n->next;
		if (n->t.free)
			n->t.free(n->t.tctx);
		free(n);
	}
	free(f->describe);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int fetch_add_transport(struct fetch *f, const struct fetch_transport *t)
{
	struct tnode *n = calloc(1, sizeof(*n));

	if (!n) {
		if (t->free)
			t->free(t->tctx);
		return -ENOMEM;
	}
	n->t = *t;
	n->next = f->transports;
	f->transports = n;
	return 0;
}

/* A local directory becomes a file:// URL with an absolute, percent-encoded path. */
static char *dir_url(const char *path)
{
	char *abs = NULL, *url = NULL, *cwd = NULL;
	size_t len;

	if (path[0] == '/') {
		abs = strdup(path);
	} else {
		cwd = getcwd(NULL, 0);
		if (!cwd)
			return NULL;
		len = strlen(cwd) + 1 + strlen(path) + 1;
		abs = malloc(len);
		if (abs)
			snprintf(abs, len, "%s/%s", cwd, path);
	}
	if (!abs)
		goto out;
	url = malloc(strlen("file://") + 3 * strlen(abs) + 1);
	if (!url)
		goto out;
	memcpy(url, "file://", 7);
	encode(url + 7, abs);
out:
	free(cwd);
	free(abs);
	return url;
}

static int rebuild_describe(struct fetch *f)
{
	size_t len = 1;
	char *d;

	for (size_t i = 0; i < f->nmirrors; i++)
		len += strlen(f->mirrors[i]->url) + 2;
	d = malloc(len);
	if (!d)
		return -ENOMEM;
	d[0] = '\0';
	len = 0;
	for (size_t i = 0; i < f->nmirrors; i++) {
		size_t ul = strlen(f->mirrors[i]->url);

		if (i) {
			memcpy(d + len, ", ", 2);
			len += 2;
		}
		memcpy(d + len, f->mirrors[i]->url, ul + 1);
		len += ul;
	}
	free(f->describe);
	f->describe = d;
	return 0;
}

int fetch_add_mirror(struct fetch *f, const char *url)
{
	struct mirror *m = NULL, **grown;
	struct tnode *n;
	size_t len;
	int r;

	if (!url || !url[0]) {
		stork_errorf("mirror: an empty URL");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->url = strdup(url);
	m->base = strstr(url, "://") ? strdup(url) : dir_url(url);
	if (!m->url || !m->base) {
		r = -ENOMEM;
		goto fail;
	}
	len = strlen(m->base);
	while (len > 3 && m->base[len - 1] == '/' && strncmp(m->base + len - 3, "://", 3))
		m->base[--len] = '\0';
	for (n = f->transports; n; n = n->next)
		if (n->t.handles(n->t.tctx, m->base))
			break;
	if (!n) {
		stork_errorf("%s: no transport handles this URL (use a directory, file://, http:// "
			     "or https://)",
			     url);
		r = -EINVAL;
		goto fail;
	}
	m->t = &n->t;
	grown = realloc(f->mirrors, (f->nmirrors + 1) * sizeof(*grown));
	if (!grown) {
		r = -ENOMEM;
		goto fail;
	}
	f->mirrors = grown;
	f->mirrors[f->nmirrors++] = m;
	r = rebuild_describe(f);
	if (r < 0) {
		f->nmirrors--;
		goto fail;
	}
	return 0;
fail:
	if (m) {
		free(m->url);
		free(m->base);
		free(m);
	}
	return r;
}

int fetch_stats(struct fetch *f, struct fetch_mirror_stats **ret_stats, size_t *ret_n)
{
	struct fetch_mirror_stats *st;
	int64_t now = now_s();

	st = calloc(f->nmirrors ? f->nmirrors : 1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nmirrors; i++) {
		const struct mirror *m = f->mirrors[i];

		st[i] = (struct fetch_mirror_stats){
		    .url = m->url,
		    .requests = m->requests,
		    .bytes = m->bytes,
		    .failures = m->failures,
		    .skipped = !usable(m, now),
		};
	}
	pthread_mutex_unlock(&f->lock);
	*ret_stats = st;
	*ret_n = f->nmirrors;
	return 0;
}
