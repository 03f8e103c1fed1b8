/* fetch/try.c: one request tried over the sources in turn: the peers for an object, then
 * each mirror through each way the proxy chain gives, until one delivers what the request's
 * attempt function accepts.
 *
 * Each failure is put on the right source (a 404 through a proxy is the host's answer, a
 * timeout the proxy's), noted in its health (fetch/health.c), logged, and summed up in the
 * final detail; bytes that already reached a consumer that cannot take them again end the
 * run. The callers (fetch/object.c, fetch/metasource.c) say what an attempt does with the
 * bytes. fetch/README.md, "Sources and their order", has the rules.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fetch/internal.h"

void fetch_log(struct fetch *f, const char *fmt, ...)
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

int64_t fetch_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Enforce maxlen ourselves too: a transport that does not is cut off here. */
int fetch_try_count(struct fetch_try *j, size_t len)
{
	if (!j->first_us)
		j->first_us = fetch_now_us();
	if (len > j->maxlen - j->got) {
		j->toobig = true;
		stork_errorf("sent more than the limit of %" PRIu64 " bytes", j->maxlen);
		return STORK_ETOOBIG;
	}
	j->got += len;
	return 0;
}

/* What a single source did, for people: short, without the URL the detail may start with. */
static void describe_failure(const struct fetch_try *j, int r, const char *url, char *out,
			     size_t len)
{
	const char *d = stork_error_detail();
	char shown[LINE_LEN];
	size_t ul = strlen(url);

	if (!strncmp(d, url, ul) && d[ul] == ':' && d[ul + 1] == ' ')
		d += ul + 2;
	fetch_url_shown(url, shown, sizeof(shown)); /* transports name it so (fetch/curl.c) */
	ul = strlen(shown);
	if (!strncmp(d, shown, ul) && d[ul] == ':' && d[ul + 1] == ' ')
		d += ul + 2;
	ul = strlen(j->path);
	if (!strncmp(d, j->path, ul) && d[ul] == ':' && d[ul + 1] == ' ')
		d += ul + 2; /* a check's detail names the file: the log line already does */
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

/* The code to return when every source failed, from the most telling answer. Metadata:
 * -ENOENT as soon as one mirror said so (a source that answered outweighs ones that could not
 * be reached: a missing N+1.root.json ends the root chain), then refused content, then
 * transport failures. Objects: refused content (a lying source), then transport failures,
 * then -ENOENT. Within a class, the first in the order tried. */
static int rank(const struct fetch_try *j, int r)
{
	if (r == -ENOENT)
		return j->object ? 0 : 3;
	return r <= STORK_EBADSIG && r > STORK_EBADSIG - 1000 ? 2 : 1;
}

static int pick(const struct fetch_try *j, int best, int r)
{
	return !best || rank(j, r) > rank(j, best) ? r : best;
}

/* The state of one run over the sources. */
struct runstate {
	const char *name; /* the file for people */
	char summary[SUMMARY_LEN];
	size_t slen;
	int best;
	bool all_enoent;
};

enum step {
	STEP_DONE,	  /* succeeded: return 0 */
	STEP_STOP,	  /* the consumer's failure or a cancel: return r at once */
	STEP_NEXT_ROUTE,  /* the proxy failed: the next way to this mirror */
	STEP_NEXT_SOURCE, /* this peer or mirror failed or lacks it: the next one */
	STEP_END,	  /* bytes reached a consumer: no other source may follow */
};

/* One attempt at source m (a peer or a mirror), via proxy when not NULL. */
static enum step try_one(struct fetch *f, struct fetch_try *j, struct runstate *st,
			 struct source *m, const struct fetch_transport *t, struct source *proxy,
			 bool last_route, int *ret_r)
{
	char line[LINE_LEN / 2], skip[64], pskip[64], label[LINE_LEN / 2];
	bool peer = m->kind[0] == 'p', host_answer, mark;
	int64_t lat = -1;
	char *url = fetch_url_join(m->base, j->path);
	int r;

	if (!url) {
		*ret_r = -ENOMEM;
		return STEP_STOP;
	}
	if (j->attempts++ && j->reset) {
		r = j->reset(j);
		if (r < 0) {
			free(url);
			*ret_r = r;
			return STEP_STOP;
		}
	}
	j->got = 0;
	j->first_us = 0;
	j->toobig = j->ours = j->stuck = j->short_body = false;
	j->t0_us = fetch_now_us();
	j->cur = m;
	stork_error_clear();
	r = j->attempt(j, t, url, proxy ? proxy->base : NULL, peer);
	*ret_r = r;
	if (r == 0) {
		lat = (j->first_us ? j->first_us : fetch_now_us()) - j->t0_us;
		fetch_note(f, m, j->got, lat, 1, NULL, skip, sizeof(skip));
		if (proxy)
			fetch_note(f, proxy, j->got, lat, 1, NULL, skip, sizeof(skip));
		j->winner = m->url;
		free(url);
		return j->every ? STEP_NEXT_SOURCE : STEP_DONE;
	}
	if (j->ours || r == -ENOMEM || r == -ECANCELED) {
		/* Not the source's doing, and no other source would fare better. */
		fetch_note(f, m, j->got, -1, 0, NULL, skip, sizeof(skip));
		if (proxy)
			fetch_note(f, proxy, j->got, -1, 0, NULL, skip, sizeof(skip));
		free(url);
		if (j->object)
			stork_error_prefix("%s", st->name);
		return STEP_STOP;
	}
	describe_failure(j, r, url, line, sizeof(line));
	free(url);
	if (proxy)
		snprintf(label, sizeof(label), "%s via proxy %s", m->name, proxy->name);
	else if (peer)
		snprintf(label, sizeof(label), "peer %s", m->name);
	else
		snprintf(label, sizeof(label), "%s", m->name);
	append(st->summary, sizeof(st->summary), &st->slen, "%s%s: %s", st->slen ? "; " : "", label,
	       line);
	if (r != -ENOENT)
		st->all_enoent = false;
	st->best = pick(j, st->best, r);

	/* Through a proxy: a 5xx may be the proxy's own trouble or the host's relayed; while
	 * another way to this mirror is left (the next proxy, DIRECT), that is tried and
	 * neither is blamed; from the last way it is the host's answer. */
	if (proxy && r == -EHOSTDOWN && !last_route) {
		fetch_note(f, m, j->got, -1, 0, NULL, skip, sizeof(skip));
		fetch_note(f, proxy, j->got, -1, 0, NULL, pskip, sizeof(pskip));
		fetch_log(f, "%s: %s: %s; trying the next way to this mirror", label, st->name,
			  line);
		return j->stuck ? STEP_END : STEP_NEXT_ROUTE;
	}
	/* A 404 through a proxy is the host's answer relayed; anything else (cannot connect,
	 * stalled, truncated, content that does not verify: a cache can hold bad bytes) is the
	 * proxy's. */
	host_answer = !proxy || r == -ENOENT || r == -EHOSTDOWN;
	if (!host_answer) {
		fetch_note(f, m, j->got, -1, 0, NULL, skip, sizeof(skip));
		fetch_note(f, proxy, j->got, -1, j->optional ? 0 : -1, line, pskip, sizeof(pskip));
		fetch_log(f, "%s: %s: %s%s", label, st->name, line, pskip);
		return j->stuck ? STEP_END : STEP_NEXT_ROUTE;
	}
	if (proxy)
		fetch_note(f, proxy, j->got, -1, 0, NULL, pskip, sizeof(pskip));
	/* A missing metadata file is an answer, not a failure; so is a peer without the
	 * object (peers hold what their node used). */
	mark = r != -ENOENT || (j->object && !peer);
	fetch_note(f, m, j->got, -1, mark && !j->optional ? -1 : 0, line, skip, sizeof(skip));
	if (mark)
		fetch_log(f, "%s: %s: %s%s", label, st->name, line, skip);
	return j->stuck ? STEP_END : STEP_NEXT_SOURCE;
}

static bool proxiable(const struct source *m)
{
	return m->t->get_via && strncasecmp(m->base, "file://", 7) != 0;
}

/* The transport for a peer: the newest that handles its URL, with the built-in curl one
 * replaced by its short-connect twin. */
static const struct fetch_transport *peer_transport(struct fetch *f, const char *url)
{
	for (struct tnode *n = f->transports; n; n = n->next) {
		if (!n->t.handles(n->t.tctx, url))
			continue;
		if (n->t.tctx == f->curl_tctx && f->has_peer_curl)
			return &f->peer_curl;
		return &n->t;
	}
	return NULL;
}

int fetch_try_sources(struct fetch *f, struct fetch_try *j)
{
	struct runstate st = {.all_enoent = true};
	char name[LINE_LEN / 2];
	struct source **via = NULL;
	size_t *order = NULL;
	enum step s;
	int r;

	/* libcurl would fold "..", and file:// would then read outside the mirror's directory. */
	r = verify_check_relpath(j->path);
	if (r < 0)
		return r;
	/* The file for people: "objects/ab/<hex> (hello 2.10-3: usr/bin/hello)". */
	if (j->what)
		snprintf(name, sizeof(name), "%s (%s)", j->path, j->what);
	else
		snprintf(name, sizeof(name), "%s", j->path);
	st.name = name;
	if (f->nmirrors == 0 && !j->peers_only) {
		stork_errorf("%s: no mirror to fetch it from", name);
		return -ENOENT;
	}
	r = fetch_try_order(f, &order);
	if (r < 0)
		return r;
	via = malloc((f->nchain + 1) * sizeof(*via));
	if (!via) {
		r = -ENOMEM;
		goto out;
	}
	/* Peers first, for objects: the usable ones, in order, directly. */
	for (size_t k = 0; j->object && k < f->npeers; k++) {
		struct source *p = f->peers[k];
		const struct fetch_transport *t = peer_transport(f, p->base);
		bool ok;

		pthread_mutex_lock(&f->lock);
		ok = fetch_usable(p, fetch_now_s());
		pthread_mutex_unlock(&f->lock);
		if (!ok || !t)
			continue;
		s = try_one(f, j, &st, p, t, NULL, true, &r);
		if (s == STEP_DONE || s == STEP_STOP)
			goto out;
		if (s == STEP_END)
			goto failed;
	}
	for (size_t k = 0; !j->peers_only && k < f->nmirrors; k++) {
		struct source *m = f->mirrors[order[k]];
		size_t n = fetch_routes(f, proxiable(m), via);
		bool ok;

		if (j->every && j->naccepted) {
			/* Asking every mirror: the skipped ones only while none has answered. */
			pthread_mutex_lock(&f->lock);
			ok = fetch_usable(m, fetch_now_s());
			pthread_mutex_unlock(&f->lock);
			if (!ok)
				continue;
		}

		for (size_t i = 0; i < n; i++) {
			s = try_one(f, j, &st, m, m->t, via[i], i + 1 == n, &r);
			if (s == STEP_DONE || s == STEP_STOP)
				goto out;
			if (s == STEP_END)
				goto failed;
			if (s == STEP_NEXT_SOURCE)
				break;
		}
	}
failed:
	if (j->every && j->naccepted) {
		r = 0; /* what each of the others did is told already */
		goto out;
	}
	if (j->peers_only && st.all_enoent) {
		/* No peer asked, or none has it: normal, the mirrors' turn. Nobody is blamed. */
		stork_errorf("%s: %s", name, st.slen ? "no peer has it" : "no usable peer");
		r = -ENOENT;
		goto out;
	}
	r = st.best;
	if (j->peers_only)
		stork_errorf("%s: every peer failed: %s", name, st.summary);
	else if (st.all_enoent && st.slen)
		stork_errorf("%s: not found on any mirror (%s)", name, f->describe);
	else
		stork_errorf("%s: every mirror failed: %s", name, st.summary);
out:
	free(via);
	free(order);
	return r;
}

/* Through t to url, via proxy unless NULL. */
int fetch_get(const struct fetch_transport *t, const char *url, const char *proxy, uint64_t maxlen,
	      fetch_write_fn fn, void *fnctx)
{
	if (proxy)
		return t->get_via(t->tctx, url, proxy, maxlen, fn, fnctx);
	return t->get(t->tctx, url, maxlen, fn, fnctx);
}
