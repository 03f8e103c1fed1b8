/* fetch/fetch.h: the whole contract of the fetch module.
 *
 * Getting bytes from untrusted places, bounded and verified in stream. Three layers:
 *
 *  - a transport moves the bytes of one URL (libcurl for file://, http://, https:// through a
 *    single multi handle on one I/O thread; later: peers, proxies, exec). A new transport is
 *    the few functions of struct fetch_transport and nothing else changes;
 *  - a fetcher holds an ordered list of mirrors and tries them in turn, skipping for a while a
 *    mirror that failed or lied, and collapses concurrent requests for one object into one
 *    transfer;
 *  - a verify_source over a fetcher serves verify/'s metadata client; fetch_object streams an
 *    object through store/'s checking unpacker into a sink (the node store's insert).
 *
 * fetch/README.md documents the protocol with examples.
 */
#ifndef STORKFS_FETCH_H
#define STORKFS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verify/verify.h"

struct fetch_opts {
	long connect_timeout; /* seconds; 0 = 10 (CernVM-FS's direct default) */
	long low_speed_limit; /* bytes/s; 0 = 1024 (CernVM-FS) */
	long low_speed_time;  /* seconds below low_speed_limit before abort; 0 = 10 */
	long timeout;	      /* whole-transfer cap in seconds; 0 = none (low-speed bounds it) */
	long mirror_retry;    /* seconds a failed mirror is skipped; 0 = 1800 (CernVM-FS hosts);
			       * -1 = for the fetcher's whole life (one operation) */
	const char *cainfo;   /* PEM CA bundle for https, NULL = system default */
	/* Where failures of single sources are told (they are not errors while another source
	 * can still succeed). NULL = stderr, "storkfs: " prefixed. */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/* ------------------------------------------------------------------------------------------ */
/* Transports */

/** Called with each chunk of a body; returns 0, or a negative code to stop the transfer. */
typedef int (*fetch_write_fn)(void *ctx, const void *buf, size_t len);

struct fetch_transport {
	const char *name; /* "curl" */
	/** Whether this transport handles url (by scheme). */
	bool (*handles)(void *tctx, const char *url);
	/** Stream url's body through fn. Blocking; safe to call from many threads at once.
	 * Must stop with STORK_ETOOBIG as soon as more than maxlen bytes come (before passing
	 * them to fn), and must bound every wait by the opts' timeouts.
	 * @return 0; -ENOENT (the source says it has no such file); STORK_ETOOBIG; -ETIMEDOUT
	 * (stalled or too slow); -ECONNREFUSED; -EIO (anything else; detail says what); fn's
	 * error. */
	int (*get)(void *tctx, const char *url, uint64_t maxlen, fetch_write_fn fn, void *fnctx);
	void (*free)(void *tctx);
	void *tctx;
	/** Optional: end every transfer in flight and refuse later ones, all with -ECANCELED,
	 * at once (shutting down); the transport stays valid until free. Thread-safe. */
	void (*cancel)(void *tctx);
};

/** The libcurl transport: file://, http://, https:// on one multi handle driven by one I/O
 * thread (connection reuse, HTTP/2 multiplexing where the server offers it).
 * @return 0; -ENOMEM; -EIO if libcurl cannot start. */
int fetch_curl_transport_new(const struct fetch_opts *o, struct fetch_transport *ret_t);

/* ------------------------------------------------------------------------------------------ */
/* The fetcher */

struct fetch;

/** A fetcher with the curl transport registered. @return 0; -ENOMEM; -EIO. */
int fetch_new(const struct fetch_opts *o, struct fetch **ret_f);
void fetch_free(struct fetch *f);
/** Add a transport, tried before the ones already registered for URLs it handles. The
 * fetcher owns it from now on (even on failure). @return 0; -ENOMEM. */
int fetch_add_transport(struct fetch *f, const struct fetch_transport *t);
/** Add a mirror: a repository base URL (file://, http://, https://) or a local directory
 * path. Mirrors are tried in the order added. @return 0; -EINVAL (no transport handles it,
 * detail says so); -ENOMEM. */
int fetch_add_mirror(struct fetch *f, const char *url);

/** Shutting down: every transfer in flight and every later one fails at once with
 * -ECANCELED (no mirror is blamed, none is tried after). Call before fetch_free when callers
 * may still be waiting on transfers (the daemon at unmount). Thread-safe. */
void fetch_cancel(struct fetch *f);

/** A verify_source over the mirrors: get/stream try each usable mirror in order and move
 * on when one fails (-ENOENT from every mirror is -ENOENT). The source borrows f. */
void fetch_as_source(struct fetch *f, struct verify_source *ret_src);

/* Where fetch_object puts an object's bytes: the node store's insert (store_insert_*). */
struct fetch_sink {
	int (*write)(void *ctx, const void *buf, size_t len); /* 0 or -errno */
	int (*reset)(void *ctx);  /* forget what was written: the next source retries */
	int (*commit)(void *ctx); /* verified: make it visible; 0 or -errno/STORK_E* */
	void *ctx;
	/* Optional (may be NULL): told, just before commit, which mirror delivered the bytes
	 * (its URL as added, borrowed for the call). */
	void (*source)(void *ctx, const char *mirror);
};

/** Fetch one object (compressed at objects/ab/<hex> on the mirrors, `zsize` bytes as signed,
 * `size` bytes uncompressed) into sink, trying each mirror until one delivers bytes that
 * verify. Nothing reaches sink->commit unverified; a source that sends more than zsize bytes
 * is cut off at zsize. If another thread of this fetcher is already fetching the same object,
 * waits for that transfer instead and returns its result without touching sink.
 * @param what names the object for people ("hello 2.10-3: usr/bin/hello").
 * @return 0 (committed through sink); 1 (another caller's transfer committed it); STORK_E* or
 * -errno when every mirror failed (detail names each mirror and what it did). */
int fetch_object(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size, uint64_t zsize,
		 const char *what, const struct fetch_sink *sink);

struct fetch_mirror_stats {
	const char *url; /* borrowed from the fetcher */
	uint64_t requests;
	uint64_t bytes;	   /* body bytes received */
	uint64_t failures; /* transport failures and refused content */
	bool skipped;	   /* currently skipped after a failure */
};

/** Per-mirror counters, in mirror order. @param[out] ret_stats malloc'd array (caller frees;
 * the urls stay borrowed). @return 0; -ENOMEM. */
int fetch_stats(struct fetch *f, struct fetch_mirror_stats **ret_stats, size_t *ret_n);

/* ------------------------------------------------------------------------------------------ */
/* One-shot sources (the `stork verify` and `stork ls` commands) */

/** Open a repository for reading: a directory path, file://PATH, http://... or https://...
 * @param[out] src filled in; release with fetch_source_fini.
 * @return 0; -ENOENT if a directory does not exist; -EINVAL for an unknown URL scheme;
 * -ENOMEM. */
int fetch_source_init(struct verify_source *src, const char *repo, const struct fetch_opts *o);
void fetch_source_fini(struct verify_source *src);

#endif
