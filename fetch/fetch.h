/* fetch/fetch.h: the whole contract of the fetch module.
 *
 * Getting bytes from untrusted places, bounded and verified in stream. Three layers:
 *
 *  - a transport moves the bytes of one URL (libcurl for file://, http://, https:// through a
 *    single multi handle on one I/O thread, optionally via a proxy; exec: an external
 *    command). A new transport is the few functions of struct fetch_transport and nothing
 *    else changes;
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
	/* A netrc file (curl's format: "machine HOST login USER password PW") with the
	 * credentials of http(s) mirrors and peers whose URL has none (a proxy takes its own
	 * in its URL: libcurl reads no netrc for proxies); NULL = none.
	 * fetch_new refuses a file that other users can read (fetch_netrc_check). */
	const char *netrc;
	/* Where failures of single sources are told (they are not errors while another source
	 * can still succeed). NULL = stderr, "storkfs: " prefixed. */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
	/* The transport chain (fetch/README.md, "Sources and their order"). Strings are read by
	 * fetch_new only (the fetcher keeps copies). */
	/* Caching proxies for http:// and https:// mirrors, CernVM-FS's CVMFS_HTTP_PROXY syntax:
	 * groups separated by ';' tried in order; inside a group proxies separated by '|',
	 * load-balanced (a random usable one first, then the others); the word DIRECT = no proxy.
	 * "http://p1:3128|http://p2:3128;DIRECT". NULL or "" = DIRECT only. Never used for
	 * file://, peers or exec URLs. */
	const char *proxies;
	long proxy_retry; /* seconds a failed proxy is skipped; 0 = 300 (CVMFS_PROXY_RESET_AFTER) */
	/* Other nodes' stores: npeers http(s) base URLs, one an element (no list syntax: a comma
	 * is part of the URL), in the order they are tried; STOREDIR exposed read-only, so a
	 * peer serves objects/ab/<hex> UNCOMPRESSED (checked by the SHA-256 of the raw bytes).
	 * Tried before the mirrors, for objects only, directly (no proxy), with a short connect
	 * timeout. Blanks around a URL are ignored; fetch_new refuses (-EINVAL) an element that
	 * is not a URL. NULL / 0 = none. */
	const char *const *peers;
	size_t npeers;
	long peer_retry; /* seconds a failed peer is skipped; 0 = 300 */
	/* Exec transports: NULL-terminated list of "SCHEME=COMMAND" (fetch_exec_transport_new for
	 * each, registered by fetch_new). NULL = none. */
	const char *const *exec;
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
	/** Optional: get() through the caching proxy `proxy` ("http://host:port"). NULL = this
	 * transport cannot use proxies: its URLs are fetched DIRECT only. Never called for
	 * file:// URLs. Returns what get() returns, and tells the origin's answers from the
	 * proxy's own failures: -ENOENT (HTTP 404/410) and -EHOSTDOWN (HTTP 5xx through the
	 * proxy: 502/503/504 are a proxy saying the origin is down or broken, other 5xx are the
	 * origin's, relayed) are the host's; every other failure (cannot connect to the proxy,
	 * timeouts, truncation, other HTTP statuses) is the proxy's. */
	int (*get_via)(void *tctx, const char *url, const char *proxy, uint64_t maxlen,
		       fetch_write_fn fn, void *fnctx);
	/** Optional: bytes [offset, offset + len) of url (an HTTP range request; len > 0),
	 * through proxy unless NULL, streamed through fn as get() does with maxlen = len. A
	 * server that answers with anything but that range (HTTP 200: the whole file) is
	 * -EOPNOTSUPP before fn sees a byte. Returns what get_via() returns. NULL = this
	 * transport cannot ask for ranges. */
	int (*get_range)(void *tctx, const char *url, const char *proxy, uint64_t offset,
			 uint64_t len, fetch_write_fn fn, void *fnctx);
};

/** Whether url names a repository file that changes in place or whose absence may change
 * (metadata/<name>.json without a version prefix, e.g. metadata/timestamp.json, and every
 * metadata/N.root.json: the probes for the next root). An HTTP transport asks caches on the
 * way to revalidate these (Cache-Control: no-cache); objects and versioned metadata never
 * change and may be cached forever. */
bool fetch_url_is_volatile(const char *url);

/** The libcurl transport: file://, http://, https:// on one multi handle driven by one I/O
 * thread (connection reuse, HTTP/2 multiplexing where the server offers it).
 * @return 0; -ENOMEM; -EIO if libcurl cannot start. */
int fetch_curl_transport_new(const struct fetch_opts *o, struct fetch_transport *ret_t);

/** The exec transport: for URLs "SCHEME:..." runs COMMAND (split on spaces into argv, no
 * shell; argv[0] searched in PATH) with the URL as its last argument, stdin /dev/null and
 * STORK_MAXLEN=<maxlen> in its environment, in its own process group. It writes the body to
 * stdout and exits 0; exit 2 = no such file (-ENOENT); any other exit is -EIO with the first
 * line of its stderr as the detail. Killed (SIGKILL to its process group) when stdout is
 * silent for low_speed_time seconds (-ETIMEDOUT), after `timeout` seconds (-ETIMEDOUT), past
 * maxlen bytes (STORK_ETOOBIG), on a write function error and on cancel (-ECANCELED); always
 * reaped. fetch/README.md, "The exec transport", has the protocol and an adapter.
 * @return 0; -EINVAL (empty scheme or command; detail says so); -ENOMEM. */
int fetch_exec_transport_new(const char *scheme, const char *command, const struct fetch_opts *o,
			     struct fetch_transport *ret_t);

/* ------------------------------------------------------------------------------------------ */
/* The fetcher */

struct fetch;

/** A fetcher with the curl transport registered, then the exec transports of o->exec, with
 * o->peers and o->proxies parsed. @return 0; -ENOMEM; -EIO; -EINVAL (a malformed proxies,
 * peers or exec option; the detail names it). */
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
	/* Optional (may be NULL): told, just before commit, which source delivered the bytes
	 * (a mirror's URL as added, or a peer's as given; borrowed for the call). */
	void (*source)(void *ctx, const char *mirror);
};

/** Fetch one object (compressed at objects/ab/<hex> on the mirrors, `zsize` bytes as signed,
 * `size` bytes uncompressed; uncompressed on peers) into sink, trying the peers, then each
 * mirror through its proxy chain (fetch/README.md, "Sources and their order"), until one
 * delivers bytes that verify. Nothing reaches sink->commit unverified; a source that sends more
 * than zsize bytes is cut off at zsize. If another thread of this fetcher is already fetching the
 * same object, waits for that transfer instead and returns its result without touching sink.
 * @param what names the object for people ("hello 2.10-3: usr/bin/hello").
 * @return 0 (committed through sink); 1 (another caller's transfer committed it); STORK_E* or
 * -errno when every mirror failed (detail names each mirror and what it did). */
int fetch_object(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size, uint64_t zsize,
		 const char *what, const struct fetch_sink *sink);

/** Ask only the peers for the object `id` of `size` bytes as a node store holds it (raw: only
 * bytes of that length and SHA-256 reach sink->commit): for a file that the mirrors keep in
 * another form but a node store holds under its hash, such as a package manifest (its signed
 * SHA-256 and length). The usable peers are tried in order exactly as fetch_object tries them
 * (a peer that lies, refuses or stalls is logged and skipped for peer_retry; one without it is
 * neither); no mirror is asked or marked. Not collapsed with concurrent calls. Thread-safe.
 * @param what names the object for people ("hello 2.10-3: manifest").
 * @return 0 (committed through sink); -ENOENT when there is no usable peer or none has it
 * (nobody is blamed: ask the mirrors); STORK_E* or -errno when every peer asked failed and at
 * least one did not merely lack it (detail names each peer and what it did); the sink's error,
 * -ENOMEM or -ECANCELED at once. */
int fetch_from_peers(struct fetch *f, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		     const char *what, const struct fetch_sink *sink);

/** Fetch a file of `len` bytes that is not signed as a whole but whose parts the caller
 * checks as they stream (a version pack, store/README.md): from each mirror in turn through
 * its proxy chain (never from peers) until one delivers exactly len bytes. fn gets the bytes
 * (on the transport's thread); before each attempt after the first, reset (may be NULL) is
 * called and fn sees the file again from its start. -ENOENT from a mirror is an answer, not
 * a failure (a repository need not have the file); truncation, transport failures and more
 * than len bytes are told and the next mirror asked, but no source is marked failed for them
 * (the file is optional: the objects in it are fetched on their own). fn's error stops at
 * once. Runs on a transport of its own, so that fn may block (on a disk) without stalling
 * other transfers. @param what names the file for people ("hello 2.10-3: version pack").
 * @return 0; -ENOENT (no mirror has it); fn's or reset's error; the most telling failure. */
int fetch_file(struct fetch *f, const char *path, uint64_t len, const char *what, fetch_write_fn fn,
	       int (*reset)(void *ctx), void *ctx);
/** fetch_file for the bytes [offset, offset + len) of the file only (HTTP range requests),
 * from each mirror in turn until one delivers exactly those bytes, on the fetcher's main
 * transport (fn must not block for long). A mirror whose transport cannot ask for ranges, or
 * that answers with the whole file, is -EOPNOTSUPP and the next is asked; as with fetch_file
 * no source is marked failed. Thread-safe.
 * @param[out] ret_mirror (may be NULL) the mirror that delivered (its URL as added; valid as
 * long as the fetcher), on success.
 * @return 0; -ENOENT (no mirror has the file); fn's or reset's error; the most telling
 * failure. */
int fetch_file_range(struct fetch *f, const char *path, uint64_t offset, uint64_t len,
		     const char *what, fetch_write_fn fn, int (*reset)(void *ctx), void *ctx,
		     const char **ret_mirror);
/** Whether the fetcher has peers (o->peers). */
bool fetch_has_peers(struct fetch *f);

struct fetch_mirror_stats {
	const char *url; /* borrowed from the fetcher */
	uint64_t requests;
	uint64_t bytes;	      /* body bytes received */
	uint64_t failures;    /* transport failures and refused content */
	bool skipped;	      /* currently skipped after a failure */
	const char *kind;     /* "peer", "mirror" or "proxy" (static strings) */
	uint64_t latency_ms;  /* moving average (weight 1/4) of the time from a request to its
			       * first body byte (the whole transfer for an empty body), over
			       * successful requests; 0 = none yet */
	char last_error[160]; /* what the last failure was ("" = none): a copy, taken under
			       * the fetcher's lock, so safe to read after the call */
};

/** Per-source counters: peers, then mirrors, then proxies, each in the order given. A request
 * through a proxy counts for both the mirror and the proxy; a failure for the one blamed.
 * @param[out] ret_stats malloc'd array (caller frees; the urls stay borrowed).
 * Thread-safe. @return 0; -ENOMEM. */
int fetch_stats(struct fetch *f, struct fetch_mirror_stats **ret_stats, size_t *ret_n);

/* ------------------------------------------------------------------------------------------ */
/* Credentials (fetch/README.md, "Credentials") */

/** text (a URL, a list of URLs, a message naming URLs) as it may be shown to people: the
 * userinfo of every URL in it ("http://user:password@host/") replaced by three asterisks
 * ("http://" "***" "@host/"), so that no password given in a URL is ever shown. Writes at most len
 * bytes into buf (terminated; cut if needed). @return buf. Thread-safe. */
const char *fetch_url_shown(const char *text, char *buf, size_t len);
/** The same, malloc'd (the caller frees). @return the copy; NULL (-ENOMEM). */
char *fetch_url_shown_dup(const char *text);
/** Whether the authority starting at s (just after a "://") has a userinfo; if so its length
 * (up to, without, the last '@') in *ret_len. */
bool fetch_url_userinfo(const char *s, size_t *ret_len);
/** Whether path may be used as a netrc file: a regular file, owned by this user or root, with
 * no permission bits for others and no group write bit (mode 600 or 640).
 * @return 0; -EINVAL (missing, not a regular file, readable by others, owned by another
 * user: the detail says which and what to do). */
int fetch_netrc_check(const char *path);

/* ------------------------------------------------------------------------------------------ */
/* One-shot sources (the `stork verify` and `stork ls` commands) */

/** Open a repository for reading: a directory path, file://PATH, http://... or https://...
 * @param[out] src filled in; release with fetch_source_fini.
 * @return 0; -ENOENT if a directory does not exist; -EINVAL for an unknown URL scheme;
 * -ENOMEM. */
int fetch_source_init(struct verify_source *src, const char *repo, const struct fetch_opts *o);
void fetch_source_fini(struct verify_source *src);

#endif
