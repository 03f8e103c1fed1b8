/* fetch/metasource.c: the fetcher as a verify_source, the adapter verify/'s client reads
 * metadata through: get (a whole file in memory), get_checked (each copy checked by the
 * client; with `every`, every mirror asked and the ones behind the newest told), stream (fails
 * over only while no byte has reached the consumer) and describe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/internal.h"

/* ------------------------------------------------------------------------------------------ */
/* The verify_source. */

struct membuf {
	struct fetch_try *j;
	uint8_t *buf;
	size_t len, cap;
};

static int mem_feed(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;
	int r = fetch_try_count(m->j, len);

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

static int get_attempt(struct fetch_try *j, const struct fetch_transport *t, const char *url,
		       const char *proxy, bool raw)
{
	struct membuf *m = j->ctx;
	int r;

	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
	r = fetch_get(t, url, proxy, j->maxlen, mem_feed, m);
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
	struct fetch_try j = {.path = path, .maxlen = maxlen, .attempt = get_attempt, .ctx = &m};
	int r;

	m.j = &j;
	r = fetch_try_sources(f, &j);
	if (r < 0) {
		free(m.buf);
		return r;
	}
	*ret_buf = m.buf;
	*ret_len = m.len;
	return 0;
}

/* One accepted copy of a file asked of every mirror. */
struct copy {
	struct source *src;
	uint64_t rank;
};

struct checkjob {
	struct membuf m;
	int (*check)(void *cctx, const uint8_t *buf, size_t len, uint64_t *ret_rank);
	void *cctx;
	/* The best accepted copy so far (owned) and every accepted copy's source and rank. */
	uint8_t *best;
	size_t bestlen;
	uint64_t bestrank;
	struct source *bestsrc;
	struct copy *copies;
	size_t ncopies;
};

static int checked_attempt(struct fetch_try *j, const struct fetch_transport *t, const char *url,
			   const char *proxy, bool raw)
{
	struct checkjob *c = j->ctx;
	struct copy *cp;
	uint64_t rank = 0;
	int r;

	r = get_attempt(j, t, url, proxy, raw);
	if (r < 0)
		return r;
	r = c->check(c->cctx, c->m.buf, c->m.len, &rank);
	if (r < 0) {
		if (r == -ENOMEM)
			j->ours = true;
		return r; /* refused: this source's failure; the next one is asked */
	}
	cp = realloc(c->copies, (c->ncopies + 1) * sizeof(*cp));
	if (!cp) {
		j->ours = true;
		return -ENOMEM;
	}
	c->copies = cp;
	c->copies[c->ncopies++] = (struct copy){j->cur, rank};
	j->naccepted++;
	if (!c->best || rank > c->bestrank) {
		free(c->best);
		c->best = c->m.buf;
		c->bestlen = c->m.len;
		c->bestrank = rank;
		c->bestsrc = j->cur;
		c->m.buf = NULL;
		c->m.len = c->m.cap = 0;
	}
	return 0;
}

static int src_get_checked(void *ctx, const char *path, size_t maxlen,
			   int (*check)(void *cctx, const uint8_t *buf, size_t len,
					uint64_t *ret_rank),
			   void *cctx, bool every, uint8_t **ret_buf, size_t *ret_len)
{
	struct fetch *f = ctx;
	struct checkjob c = {.check = check, .cctx = cctx};
	struct fetch_try j = {
	    .path = path, .maxlen = maxlen, .attempt = checked_attempt, .ctx = &c, .every = every};
	char skip[64], line[LINE_LEN / 2];
	int r;

	c.m.j = &j;
	r = fetch_try_sources(f, &j);
	free(c.m.buf);
	if (r < 0 || !c.best) {
		free(c.best);
		free(c.copies);
		return r < 0 ? r : -EIO;
	}
	/* Asked of every mirror: one whose copy is valid but older than another's is behind,
	 * withholding updates or not yet synchronised: told, and passed over for a while. */
	for (size_t i = 0; i < c.ncopies; i++) {
		if (c.copies[i].rank >= c.bestrank)
			continue;
		snprintf(line, sizeof(line),
			 "behind: serves version %" PRIu64 " while %s serves %" PRIu64
			 " (withholding updates, or not yet updated)",
			 c.copies[i].rank, c.bestsrc->name, c.bestrank);
		fetch_note(f, c.copies[i].src, 0, -1, -1, line, skip, sizeof(skip));
		fetch_log(f, "%s: %s: %s%s", c.copies[i].src->name, path, line, skip);
	}
	free(c.copies);
	*ret_buf = c.best;
	*ret_len = c.bestlen;
	return 0;
}

struct streamjob {
	struct fetch_try *j;
	int (*fn)(void *fnctx, const void *buf, size_t len);
	void *fnctx;
};

static int stream_feed(void *ctx, const void *buf, size_t len)
{
	struct streamjob *s = ctx;
	int r = fetch_try_count(s->j, len);

	if (r < 0)
		return r;
	/* From now on a failure of this source cannot be hidden: fn has seen its bytes. */
	s->j->stuck = true;
	r = s->fn(s->fnctx, buf, len);
	if (r < 0)
		s->j->ours = true;
	return r;
}

static int stream_attempt(struct fetch_try *j, const struct fetch_transport *t, const char *url,
			  const char *proxy, bool raw)
{
	return fetch_get(t, url, proxy, j->maxlen, stream_feed, j->ctx);
}

static int src_stream(void *ctx, const char *path, uint64_t maxlen,
		      int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx)
{
	struct fetch *f = ctx;
	struct streamjob s = {.fn = fn, .fnctx = fnctx};
	struct fetch_try j = {.path = path, .maxlen = maxlen, .attempt = stream_attempt, .ctx = &s};

	s.j = &j;
	return fetch_try_sources(f, &j);
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
	    .get_checked = src_get_checked,
	};
}
