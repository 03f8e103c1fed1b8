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
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "store/store.h"

#define DEFAULT_RETRY	    1800 /* seconds a failed mirror is skipped (CernVM-FS's host reset) */
#define DEFAULT_PROXY_RETRY 300	 /* CernVM-FS's CVMFS_PROXY_RESET_AFTER */
#define DEFAULT_PEER_RETRY  300
#define PEER_CONNECT	    2	 /* seconds: a peer is near, or it is not worth waiting for */
#define SUMMARY_LEN	    1024 /* the final error detail (stork_errorf's own limit) */
#define LINE_LEN	    1024
#define ERROR_LEN	    160 /* struct fetch_mirror_stats' last_error */

struct tnode {
	struct fetch_transport t;
	struct tnode *next;
};

/* A peer, a mirror or a proxy. */
struct source {
	const char *kind;		 /* "peer", "mirror", "proxy" */
	char *url;			 /* as given (with any password): told to the sink */
	char *name;			 /* url for people (fetch_url_shown): stats, messages */
	char *base;			 /* what paths are appended to, without a trailing '/' */
	const struct fetch_transport *t; /* mirrors: bound when added; peers: at use */
	long retry;			 /* seconds skipped after a failure; -1 = for life */
	/* Under f->lock. */
	uint64_t requests, bytes, failures;
	uint64_t latency_us, nlatency; /* moving average of the time to the first byte */
	int64_t last_failure;	       /* monotonic seconds, 0 = never */
	int64_t skipped_until; /* monotonic seconds; 0 = usable; -1 = for the fetcher's life */
	char last_error[ERROR_LEN];
};

/* One step of the proxy chain: a proxy, or DIRECT (proxy == NULL), in its group. */
struct hop {
	size_t group;
	struct source *proxy;
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
	void *curl_tctx;	  /* the built-in curl transport's, to tell it from others */
	struct fetch_transport peer_curl; /* curl with a short connect timeout, for peers */
	bool has_peer_curl;
	/* curl on an I/O thread of its own for fetch_file, whose consumer may block (a disk
	 * sync) without stalling the other transfers */
	struct fetch_transport bulk_curl;
	bool has_bulk_curl;
	struct source **mirrors;
	size_t nmirrors;
	struct source **peers;
	size_t npeers;
	struct source **proxies; /* every proxy of the chain, in chain order */
	size_t nproxies;
	struct hop *chain; /* empty = DIRECT only */
	size_t nchain, ngroups;
	char *describe;	      /* the mirrors' URLs, ", "-separated */
	pthread_mutex_t lock; /* source health and counters, rng, the in-flight table */
	uint64_t rng;
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
/* Source health. */

static bool usable(const struct source *m, int64_t now)
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

/* xorshift64*, under f->lock: load balancing needs no more. */
static uint64_t rnd(struct fetch *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 2685821657736338717ULL;
}

/* The ways to reach a mirror through the proxy chain, in the order to try them: group by
 * group, the usable hops of a group in random order (DIRECT is always usable); then the
 * skipped proxies in chain order, so that a fallback is never left untried. A NULL entry is
 * DIRECT. ret_routes holds at least f->nchain + 1 entries. */
static size_t routes(struct fetch *f, bool proxiable, struct source **out)
{
	int64_t now = now_s();
	size_t n = 0;

	if (!proxiable || f->nchain == 0) {
		out[0] = NULL;
		return 1;
	}
	pthread_mutex_lock(&f->lock);
	for (size_t g = 0; g < f->ngroups; g++) {
		size_t first = n;

		for (size_t i = 0; i < f->nchain; i++)
			if (f->chain[i].group == g &&
			    (!f->chain[i].proxy || usable(f->chain[i].proxy, now)))
				out[n++] = f->chain[i].proxy;
		for (size_t i = n - first; i > 1; i--) {
			size_t k = (size_t)(rnd(f) % i);
			struct source *tmp = out[first + i - 1];

			out[first + i - 1] = out[first + k];
			out[first + k] = tmp;
		}
	}
	for (size_t i = 0; i < f->nchain; i++)
		if (f->chain[i].proxy && !usable(f->chain[i].proxy, now))
			out[n++] = f->chain[i].proxy;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Count one request on m; on a failure of m's making mark it skipped. Writes what the log
 * line should add about skipping into buf ("" if nothing changed). Under the lock. */
static void note_locked(struct source *m, int64_t now, uint64_t bytes, int64_t latency_us,
			int outcome, const char *what, char *buf, size_t len)
{
	bool was_usable;

	buf[0] = '\0';
	m->requests++;
	m->bytes += bytes;
	if (outcome > 0) {
		m->skipped_until = 0;
		if (latency_us >= 0) {
			/* Weight 1/4: a few slow answers show, one does not dominate. */
			m->latency_us = m->nlatency ? (3 * m->latency_us + (uint64_t)latency_us) / 4
						    : (uint64_t)latency_us;
			m->nlatency++;
		}
	} else if (outcome < 0) {
		was_usable = usable(m, now);
		m->failures++;
		m->last_failure = now;
		snprintf(m->last_error, sizeof(m->last_error), "%s", what);
		m->skipped_until = m->retry < 0 ? -1 : now + m->retry;
		if (was_usable && m->retry < 0)
			snprintf(buf, len, "; skipping this %s from now on", m->kind);
		else if (was_usable)
			snprintf(buf, len, "; skipping this %s for %ld s", m->kind, m->retry);
	}
}

/* outcome: 1 = success, 0 = counted only (not the source's doing), -1 = the source failed. */
static void note(struct fetch *f, struct source *m, uint64_t bytes, int64_t latency_us, int outcome,
		 const char *what, char *buf, size_t len)
{
	pthread_mutex_lock(&f->lock);
	note_locked(m, now_s(), bytes, latency_us, outcome, what, buf, len);
	pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------------------------------------ */
/* Trying the sources in turn. */

struct job {
	const char *path; /* relative to a mirror: "objects/ab/<hex>", "metadata/..." */
	const char *what; /* names an object for people; NULL for metadata */
	bool object;	  /* -ENOENT is then the mirror's failure (it is stale) */
	bool peers_only;  /* an object asked of the peers only: the mirrors are not tried */
	uint64_t maxlen;  /* set by attempt for peers (raw objects) */
	/* One try through t, via proxy (NULL = direct); raw: a peer's uncompressed object. Sets
	 * got, ours and stuck as described below. */
	int (*attempt)(struct job *j, const struct fetch_transport *t, const char *url,
		       const char *proxy, bool raw);
	/* Before the next source; may be NULL. */
	int (*reset)(struct job *j);
	void *ctx;
	const char *winner; /* the source (URL as added) whose attempt succeeded */
	unsigned attempts;  /* made so far */
	/* every: a success does not end the run; each usable mirror is asked (the attempt keeps
	 * what it accepted; naccepted counts them). cur: the source being tried. */
	bool every;
	/* optional: a file the repository need not serve well (a version pack): what goes
	 * wrong is told, but neither the source nor its proxy is marked failed for it. */
	bool optional;
	unsigned naccepted;
	struct source *cur;
	/* Per attempt. */
	int64_t t0_us, first_us; /* start, first body byte (0 = none yet) */
	uint64_t got;		 /* body bytes received */
	bool toobig;		 /* the source sent more than maxlen */
	bool ours;	 /* the failure is the consumer's (sink, memory): stop, blame none */
	bool stuck;	 /* bytes reached a consumer that cannot take them again */
	bool short_body; /* the transport ended cleanly before maxlen bytes */
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Enforce maxlen ourselves too: a transport that does not is cut off here. */
static int job_count(struct job *j, size_t len)
{
	if (!j->first_us)
		j->first_us = now_us();
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
static enum step try_one(struct fetch *f, struct job *j, struct runstate *st, struct source *m,
			 const struct fetch_transport *t, struct source *proxy, bool last_route,
			 int *ret_r)
{
	char line[LINE_LEN / 2], skip[64], pskip[64], label[LINE_LEN / 2];
	bool peer = m->kind[0] == 'p', host_answer, mark;
	int64_t lat = -1;
	char *url = url_join(m->base, j->path);
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
	j->t0_us = now_us();
	j->cur = m;
	stork_error_clear();
	r = j->attempt(j, t, url, proxy ? proxy->base : NULL, peer);
	*ret_r = r;
	if (r == 0) {
		lat = (j->first_us ? j->first_us : now_us()) - j->t0_us;
		note(f, m, j->got, lat, 1, NULL, skip, sizeof(skip));
		if (proxy)
			note(f, proxy, j->got, lat, 1, NULL, skip, sizeof(skip));
		j->winner = m->url;
		free(url);
		return j->every ? STEP_NEXT_SOURCE : STEP_DONE;
	}
	if (j->ours || r == -ENOMEM || r == -ECANCELED) {
		/* Not the source's doing, and no other source would fare better. */
		note(f, m, j->got, -1, 0, NULL, skip, sizeof(skip));
		if (proxy)
			note(f, proxy, j->got, -1, 0, NULL, skip, sizeof(skip));
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
		note(f, m, j->got, -1, 0, NULL, skip, sizeof(skip));
		note(f, proxy, j->got, -1, 0, NULL, pskip, sizeof(pskip));
		log_line(f, "%s: %s: %s; trying the next way to this mirror", label, st->name,
			 line);
		return j->stuck ? STEP_END : STEP_NEXT_ROUTE;
	}
	/* A 404 through a proxy is the host's answer relayed; anything else (cannot connect,
	 * stalled, truncated, content that does not verify: a cache can hold bad bytes) is the
	 * proxy's. */
	host_answer = !proxy || r == -ENOENT || r == -EHOSTDOWN;
	if (!host_answer) {
		note(f, m, j->got, -1, 0, NULL, skip, sizeof(skip));
		note(f, proxy, j->got, -1, j->optional ? 0 : -1, line, pskip, sizeof(pskip));
		log_line(f, "%s: %s: %s%s", label, st->name, line, pskip);
		return j->stuck ? STEP_END : STEP_NEXT_ROUTE;
	}
	if (proxy)
		note(f, proxy, j->got, -1, 0, NULL, pskip, sizeof(pskip));
	/* A missing metadata file is an answer, not a failure; so is a peer without the
	 * object (peers hold what their node used). */
	mark = r != -ENOENT || (j->object && !peer);
	note(f, m, j->got, -1, mark && !j->optional ? -1 : 0, line, skip, sizeof(skip));
	if (mark)
		log_line(f, "%s: %s: %s%s", label, st->name, line, skip);
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

static int run(struct fetch *f, struct job *j)
{
	struct runstate st = {.all_enoent = true};
	char name[LINE_LEN / 2];
	struct source **via = NULL;
	size_t *order = NULL;
	enum step s;
	int r;

	r = check_path(j->path);
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
	r = try_order(f, &order);
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
		ok = usable(p, now_s());
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
		size_t n = routes(f, proxiable(m), via);
		bool ok;

		if (j->every && j->naccepted) {
			/* Asking every mirror: the skipped ones only while none has answered. */
			pthread_mutex_lock(&f->lock);
			ok = usable(m, now_s());
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

/* Through t to url, via proxy unless NULL. */
static int get(const struct fetch_transport *t, const char *url, const char *proxy, uint64_t maxlen,
	       fetch_write_fn fn, void *fnctx)
{
	if (proxy)
		return t->get_via(t->tctx, url, proxy, maxlen, fn, fnctx);
	return t->get(t->tctx, url, maxlen, fn, fnctx);
}

static int obj_attempt(struct job *j, const struct fetch_transport *t, const char *url,
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
	r = get(t, url, proxy, j->maxlen, obj_feed, o);
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

static int obj_reset(struct job *j)
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
	struct job j = {
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

	r = object_now(f, id, size, zsize, false, what, sink);

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

int fetch_from_peers(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		     const char *what, const struct fetch_sink *sink)
{
	/* Not collapsed with fetch_object's transfers: a waiter would get no bytes in its own
	 * sink, and what is asked here (a manifest) is small and fetched once per node. */
	return object_now(f, id, size, size, true, what, sink);
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

static int get_attempt(struct job *j, const struct fetch_transport *t, const char *url,
		       const char *proxy, bool raw)
{
	struct membuf *m = j->ctx;
	int r;

	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
	r = get(t, url, proxy, j->maxlen, mem_feed, m);
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

static int checked_attempt(struct job *j, const struct fetch_transport *t, const char *url,
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
	struct job j = {
	    .path = path, .maxlen = maxlen, .attempt = checked_attempt, .ctx = &c, .every = every};
	char skip[64], line[LINE_LEN / 2];
	int r;

	c.m.j = &j;
	r = run(f, &j);
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
		note(f, c.copies[i].src, 0, -1, -1, line, skip, sizeof(skip));
		log_line(f, "%s: %s: %s%s", c.copies[i].src->name, path, line, skip);
	}
	free(c.copies);
	*ret_buf = c.best;
	*ret_len = c.bestlen;
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

static int stream_attempt(struct job *j, const struct fetch_transport *t, const char *url,
			  const char *proxy, bool raw)
{
	return get(t, url, proxy, j->maxlen, stream_feed, j->ctx);
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
	    .get_checked = src_get_checked,
	};
}

/* ------------------------------------------------------------------------------------------ */
/* Set-up. */

static void source_free(struct source *m)
{
	if (!m)
		return;
	free(m->url);
	free(m->name);
	free(m->base);
	free(m);
}

/* A source named url (len bytes of it), its base without trailing '/'. */
static struct source *source_new(const char *kind, const char *url, size_t len, long retry)
{
	struct source *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->kind = kind;
	m->retry = retry;
	m->url = strndup(url, len);
	m->base = strndup(url, len);
	m->name = m->url ? fetch_url_shown_dup(m->url) : NULL;
	if (!m->url || !m->base || !m->name) {
		source_free(m);
		return NULL;
	}
	while (len > 3 && m->base[len - 1] == '/' && strncmp(m->base + len - 3, "://", 3))
		m->base[--len] = '\0';
	return m;
}

static int push(struct source ***arr, size_t *n, struct source *m)
{
	struct source **grown = realloc(*arr, (*n + 1) * sizeof(*grown));

	if (!grown) {
		source_free(m);
		return -ENOMEM;
	}
	*arr = grown;
	(*arr)[(*n)++] = m;
	return 0;
}

/* Trim spaces around [*p, *e). */
static void trim(const char **p, const char **e)
{
	while (*p < *e && (**p == ' ' || **p == '\t'))
		(*p)++;
	while (*e > *p && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* stork_errorf for a message that quotes an option's URLs: their passwords are not shown. */
static void errorf_shown(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void errorf_shown(const char *fmt, ...)
{
	char line[LINE_LEN], shown[LINE_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	stork_errorf("%s", fetch_url_shown(line, shown, sizeof(shown)));
}

/* "http://p1:3128|http://p2:3128;DIRECT" into f->chain and f->proxies. */
static int parse_proxies(struct fetch *f, const char *spec, long retry)
{
	const char *p = spec;
	size_t group = 0;
	int r;

	if (!spec || !spec[0])
		return 0;
	for (;;) {
		const char *gend = strchrnul(p, ';');

		for (const char *q = p;;) {
			const char *e = q, *b = q;
			struct source *px = NULL;
			struct hop *grown;

			while (e < gend && *e != '|')
				e++;
			trim(&b, &e);
			if (b == e) {
				errorf_shown(
				    "proxies \"%s\": an empty proxy (write DIRECT for none)", spec);
				return -EINVAL;
			}
			if (!(e - b == 6 && !strncasecmp(b, "DIRECT", 6))) {
				if (!memmem(b, (size_t)(e - b), "://", 3)) {
					errorf_shown("proxies \"%s\": \"%.*s\" is not a URL (e.g. "
						     "http://proxy:3128) nor DIRECT",
						     spec, (int)(e - b), b);
					return -EINVAL;
				}
				px = source_new("proxy", b, (size_t)(e - b), retry);
				if (!px)
					return -ENOMEM;
				r = push(&f->proxies, &f->nproxies, px);
				if (r < 0)
					return r;
			}
			grown = realloc(f->chain, (f->nchain + 1) * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			f->chain = grown;
			f->chain[f->nchain++] = (struct hop){.group = group, .proxy = px};
			while (e < gend && *e != '|')
				e++;
			if (e >= gend)
				break;
			q = e + 1;
		}
		group++;
		if (!*gend)
			break;
		p = gend + 1;
	}
	f->ngroups = group;
	/* "DIRECT" alone is no chain at all. */
	if (f->nchain == 1 && !f->chain[0].proxy)
		f->nchain = f->ngroups = 0;
	return 0;
}

static int parse_peers(struct fetch *f, const char *const *peers, size_t npeers, long retry)
{
	for (size_t i = 0; i < npeers; i++) {
		const char *b = peers[i], *e = b + strlen(b);
		struct source *m;
		int r;

		trim(&b, &e);
		if (b == e || !memmem(b, (size_t)(e - b), "://", 3)) {
			errorf_shown("peer \"%s\" is not a URL (e.g. http://node2:8080/)",
				     peers[i]);
			return -EINVAL;
		}
		m = source_new("peer", b, (size_t)(e - b), retry);
		if (!m)
			return -ENOMEM;
		r = push(&f->peers, &f->npeers, m);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_exec_transports(struct fetch *f, const char *const *exec)
{
	struct fetch_transport t;
	int r;

	for (size_t i = 0; exec && exec[i]; i++) {
		const char *eq = strchr(exec[i], '=');
		char *scheme;

		if (!eq || eq == exec[i] || !eq[1]) {
			stork_errorf("exec \"%s\": expected SCHEME=COMMAND", exec[i]);
			return -EINVAL;
		}
		scheme = strndup(exec[i], (size_t)(eq - exec[i]));
		if (!scheme)
			return -ENOMEM;
		r = fetch_exec_transport_new(scheme, eq + 1, &f->opts, &t);
		free(scheme);
		if (r < 0)
			return r;
		r = fetch_add_transport(f, &t);
		if (r < 0)
			return r;
	}
	return 0;
}

int fetch_new(const struct fetch_opts *o, struct fetch **ret_f)
{
	struct fetch_transport t;
	struct fetch_opts po;
	struct fetch *f;
	int r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (o)
		f->opts = *o;
	/* Kept by the transports or parsed here: no borrowed string outlives fetch_new. */
	f->opts.cainfo = NULL;
	f->opts.proxies = NULL;
	f->opts.peers = NULL;
	f->opts.npeers = 0;
	f->opts.exec = NULL;
	f->opts.netrc = NULL;
	f->retry = f->opts.mirror_retry < 0   ? -1
		   : f->opts.mirror_retry > 0 ? f->opts.mirror_retry
					      : DEFAULT_RETRY;
	f->rng = (uint64_t)now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)f;
	if (!f->rng)
		f->rng = 1;
	pthread_mutex_init(&f->lock, NULL);
	if (o && o->netrc) {
		r = fetch_netrc_check(o->netrc);
		if (r < 0)
			goto fail;
	}
	r = fetch_curl_transport_new(o, &t);
	if (r < 0)
		goto fail;
	f->curl_tctx = t.tctx;
	r = fetch_add_transport(f, &t);
	if (r < 0)
		goto fail;
	r = fetch_curl_transport_new(o, &f->bulk_curl);
	if (r < 0)
		goto fail;
	f->has_bulk_curl = true;
	if (!o)
		goto done;
	r = add_exec_transports(f, o->exec);
	if (r < 0)
		goto fail;
	r = parse_proxies(f, o->proxies, o->proxy_retry > 0 ? o->proxy_retry : DEFAULT_PROXY_RETRY);
	if (r < 0)
		goto fail;
	r = parse_peers(f, o->peers, o->npeers,
			o->peer_retry > 0 ? o->peer_retry : DEFAULT_PEER_RETRY);
	if (r < 0)
		goto fail;
	if (f->npeers) {
		po = *o;
		if (po.connect_timeout <= 0 || po.connect_timeout > PEER_CONNECT)
			po.connect_timeout = PEER_CONNECT;
		r = fetch_curl_transport_new(&po, &f->peer_curl);
		if (r < 0)
			goto fail;
		f->has_peer_curl = true;
	}
done:
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
	if (f->has_peer_curl && f->peer_curl.cancel)
		f->peer_curl.cancel(f->peer_curl.tctx);
	if (f->has_bulk_curl && f->bulk_curl.cancel)
		f->bulk_curl.cancel(f->bulk_curl.tctx);
	pthread_mutex_unlock(&f->lock);
}

void fetch_free(struct fetch *f)
{
	struct tnode *n;

	if (!f)
		return;
	for (size_t i = 0; i < f->nmirrors; i++)
		source_free(f->mirrors[i]);
	free(f->mirrors);
	for (size_t i = 0; i < f->npeers; i++)
		source_free(f->peers[i]);
	free(f->peers);
	for (size_t i = 0; i < f->nproxies; i++)
		source_free(f->proxies[i]);
	free(f->proxies);
	free(f->chain);
	while ((n = f->transports)) {
		f->transports = n->next;
		if (n->t.free)
			n->t.free(n->t.tctx);
		free(n);
	}
	if (f->has_peer_curl)
		f->peer_curl.free(f->peer_curl.tctx);
	if (f->has_bulk_curl)
		f->bulk_curl.free(f->bulk_curl.tctx);
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
		len += strlen(f->mirrors[i]->name) + 2;
	d = malloc(len);
	if (!d)
		return -ENOMEM;
	d[0] = '\0';
	len = 0;
	for (size_t i = 0; i < f->nmirrors; i++) {
		size_t ul = strlen(f->mirrors[i]->name);

		if (i) {
			memcpy(d + len, ", ", 2);
			len += 2;
		}
		memcpy(d + len, f->mirrors[i]->name, ul + 1);
		len += ul;
	}
	free(f->describe);
	f->describe = d;
	return 0;
}

static const struct fetch_transport *handler(struct fetch *f, const char *url)
{
	for (struct tnode *n = f->transports; n; n = n->next)
		if (n->t.handles(n->t.tctx, url))
			return &n->t;
	return NULL;
}

int fetch_add_mirror(struct fetch *f, const char *url)
{
	struct source *m = NULL;
	char *base;
	int r;

	if (!url || !url[0]) {
		stork_errorf("mirror: an empty URL");
		return -EINVAL;
	}
	/* A URL some transport takes (an exec scheme need not have "//"), else a directory. */
	base = strstr(url, "://") || handler(f, url) ? strdup(url) : dir_url(url);
	if (!base)
		return -ENOMEM;
	m = source_new("mirror", base, strlen(base), f->retry);
	free(base);
	if (!m)
		return -ENOMEM;
	free(m->url);
	free(m->name);
	m->url = strdup(url);
	m->name = fetch_url_shown_dup(url);
	if (!m->url || !m->name) {
		r = -ENOMEM;
		goto fail;
	}
	m->t = handler(f, m->base);
	if (!m->t) {
		stork_errorf("%s: no transport handles this URL (use a directory, file://, http:// "
			     "or https://)",
			     m->name);
		r = -EINVAL;
		goto fail;
	}
	r = push(&f->mirrors, &f->nmirrors, m);
	if (r < 0)
		return r;
	r = rebuild_describe(f);
	if (r < 0) {
		f->nmirrors--;
		goto fail;
	}
	return 0;
fail:
	source_free(m);
	return r;
}

int fetch_stats(struct fetch *f, struct fetch_mirror_stats **ret_stats, size_t *ret_n)
{
	struct fetch_mirror_stats *st;
	size_t n = f->npeers + f->nmirrors + f->nproxies, k = 0;
	struct source **lists[3] = {f->peers, f->mirrors, f->proxies};
	size_t counts[3] = {f->npeers, f->nmirrors, f->nproxies};
	int64_t now = now_s();

	st = calloc(n ? n : 1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	for (size_t l = 0; l < 3; l++) {
		for (size_t i = 0; i < counts[l]; i++) {
			const struct source *m = lists[l][i];
			struct fetch_mirror_stats *s = &st[k++];

			s->url = m->name;
			s->requests = m->requests;
			s->bytes = m->bytes;
			s->failures = m->failures;
			s->skipped = !usable(m, now);
			s->kind = m->kind;
			s->latency_ms = m->latency_us / 1000;
			snprintf(s->last_error, sizeof(s->last_error), "%s", m->last_error);
		}
	}
	pthread_mutex_unlock(&f->lock);
	*ret_stats = st;
	*ret_n = n;
	return 0;
}

bool fetch_url_is_volatile(const char *url)
{
	const char *meta = NULL, *name, *p;
	size_t len;

	for (p = strstr(url, "metadata/"); p; p = strstr(p + 1, "metadata/"))
		if (p == url || p[-1] == '/')
			meta = p;
	if (!meta)
		return false;
	name = strrchr(meta, '/') + 1;
	len = strlen(name);
	if (len < 5 || strcmp(name + len - 5, ".json"))
		return false;
	if (len >= 10 && !strcmp(name + len - 10, ".root.json"))
		return true; /* root probes: a 404 must not be cached */
	for (p = name; *p >= '0' && *p <= '9'; p++)
		;
	return !(p > name && *p == '.'); /* "7.snapshot.json" never changes */
}

/* ------------------------------------------------------------------------------------------ */
/* Unsigned files whose parts the caller checks (version packs). */

struct filejob {
	struct fetch *f;
	struct job *j;
	fetch_write_fn fn;
	int (*reset)(void *ctx);
	void *ctx;
};

static int file_feed(void *ctx, const void *buf, size_t len)
{
	struct filejob *fj = ctx;
	int r = job_count(fj->j, len);

	if (r < 0)
		return r;
	r = fj->fn(fj->ctx, buf, len);
	if (r < 0)
		fj->j->ours = true;
	return r;
}

static int file_attempt(struct job *j, const struct fetch_transport *t, const char *url,
			const char *proxy, bool raw)
{
	struct filejob *fj = j->ctx;
	int r;

	if (t->tctx == fj->f->curl_tctx && fj->f->has_bulk_curl)
		t = &fj->f->bulk_curl;
	r = get(t, url, proxy, j->maxlen, file_feed, j->ctx);

	if (r == 0 && j->got < j->maxlen) {
		j->short_body = true;
		char shown[LINE_LEN];

		stork_errorf("%s: truncated: %" PRIu64 " of %" PRIu64 " bytes",
			     fetch_url_shown(url, shown, sizeof(shown)), j->got, j->maxlen);
		r = STORK_EBADLEN;
	}
	return r;
}

static int file_reset(struct job *j)
{
	struct filejob *fj = j->ctx;

	return fj->reset ? fj->reset(fj->ctx) : 0;
}

bool fetch_has_peers(struct fetch *f)
{
	return f->npeers > 0;
}

int fetch_file(struct fetch *f, const char *path, uint64_t len, const char *what, fetch_write_fn fn,
	       int (*reset)(void *ctx), void *ctx)
{
	struct filejob fj = {.f = f, .fn = fn, .reset = reset, .ctx = ctx};
	struct job j = {
	    .path = path,
	    .what = what,
	    .maxlen = len,
	    .attempt = file_attempt,
	    .reset = file_reset,
	    .ctx = &fj,
	    .optional = true,
	};

	fj.j = &j;
	return run(f, &j);
}
