/* fetch/internal.h: private to fetch/: what the fetcher's files share.
 *
 * Not part of the module's contract (that is fetch/fetch.h); nothing outside fetch/ includes
 * this. The fetcher is cut by concern: fetch/fetcher.c sets it up (options, sources,
 * transports), fetch/url.c builds URLs, fetch/health.c orders the sources and keeps their
 * health and counters, fetch/try.c runs one request over the sources in turn, fetch/object.c
 * fetches objects (collapsing concurrent requests for one) and version packs, and
 * fetch/metasource.c is the verify_source that verify/'s client reads metadata through.
 *
 * Locking: f->lock protects every source's health and counters (the fields marked so in
 * struct source), f->rng and the in-flight list (f->inflight, and each entry's refs, done,
 * result and detail). Everything else in struct fetch is set by fetch_new,
 * fetch_add_transport and fetch_add_mirror before the fetcher is shared, and read without the
 * lock. A struct fetch_try belongs to the thread running it.
 */
#ifndef STORKFS_FETCH_INTERNAL_H
#define STORKFS_FETCH_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch/fetch.h"

#define SUMMARY_LEN STORK_DETAIL_MAX /* the sources' failures, joined: the final error detail */
#define LINE_LEN    1024
#define ERROR_LEN   160 /* struct fetch_mirror_stats' last_error */

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
struct fetch_flight {
	uint8_t id[VERIFY_HASH_LEN];
	struct fetch_flight *next;
	unsigned refs; /* the owner and each waiter */
	bool done;
	int result;
	char *detail; /* the owner's error detail when result < 0 (malloc'd; NULL: none) */
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
	struct fetch_flight *inflight;
};

/* ------------------------------------------------------------------------------------------ */
/* Running one request over the sources (fetch/try.c). */

/* One request (a metadata file, an object, a version pack) tried over the sources in turn. */
struct fetch_try {
	const char *path; /* relative to a mirror: "objects/ab/<hex>", "metadata/..." */
	const char *what; /* names an object for people; NULL for metadata */
	bool object;	  /* -ENOENT is then the mirror's failure (it is stale) */
	bool peers_only;  /* an object asked of the peers only: the mirrors are not tried */
	uint64_t maxlen;  /* set by attempt for peers (raw objects) */
	/* One try through t, via proxy (NULL = direct); raw: a peer's uncompressed object. Sets
	 * got, ours and stuck as described below. */
	int (*attempt)(struct fetch_try *j, const struct fetch_transport *t, const char *url,
		       const char *proxy, bool raw);
	/* Before the next source; may be NULL. */
	int (*reset)(struct fetch_try *j);
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

/* Try the sources for j: for an object the usable peers first, then each mirror in the order
 * of fetch_try_order through the ways fetch_routes gives, until j->attempt succeeds (or, with
 * j->every, every mirror was asked). Each source's health is noted and each failure logged;
 * the detail names what every source did. @return 0; what rank judged the most telling
 * failure; -EINVAL (a path verify_check_relpath refuses); -ENOENT (no mirror); the
 * consumer's error, -ENOMEM or -ECANCELED at once. */
int fetch_try_sources(struct fetch *f, struct fetch_try *j);
/* Count len more body bytes of the current attempt, cutting off a source past j->maxlen
 * (a transport that does not enforce it). @return 0; STORK_ETOOBIG. */
int fetch_try_count(struct fetch_try *j, size_t len);
/* Through t to url, via proxy unless NULL. @return what the transport's get returns. */
int fetch_get(const struct fetch_transport *t, const char *url, const char *proxy, uint64_t maxlen,
	      fetch_write_fn fn, void *fnctx);
/* A line for the fetcher's log (o->log, else stderr). */
void fetch_log(struct fetch *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Monotonic microseconds. */
int64_t fetch_now_us(void);

/* ------------------------------------------------------------------------------------------ */
/* Source order and health (fetch/health.c). */

/* Monotonic seconds, never 0 (0 means "never" in struct source). */
int64_t fetch_now_s(void);
/* Whether m is not skipped at now (under f->lock). */
bool fetch_usable(const struct source *m, int64_t now);
/* The order to try the mirrors in (indexes into f->mirrors, malloc'd): usable ones in order,
 * then skipped ones in order. @return 0; -ENOMEM. */
int fetch_try_order(struct fetch *f, size_t **ret_order);
/* The ways to reach a mirror through the proxy chain, in the order to try them, into out
 * (at least f->nchain + 1 entries; NULL = DIRECT). @return how many. */
size_t fetch_routes(struct fetch *f, bool proxiable, struct source **out);
/* Count one request on m; outcome 1 = success, 0 = counted only, -1 = m failed (then m is
 * skipped for m->retry seconds). What the log line should add about skipping goes to buf. */
void fetch_note(struct fetch *f, struct source *m, uint64_t bytes, int64_t latency_us, int outcome,
		const char *what, char *buf, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* URLs (fetch/url.c). */

/* base + '/' + path percent-encoded ('/' kept), malloc'd. NULL on -ENOMEM. */
char *fetch_url_join(const char *base, const char *path);
/* A local directory as a file:// URL with an absolute, percent-encoded path, malloc'd. NULL
 * on -ENOMEM or when the working directory cannot be read. */
char *fetch_dir_url(const char *path);

#endif
