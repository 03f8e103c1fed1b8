/* fetch/curl.c: the libcurl transport: file://, http://, https://.
 *
 * One CURLM multi handle, driven by one I/O thread. get() may be called from any thread: it
 * queues a request, wakes the I/O thread (curl_multi_wakeup) and sleeps on the request's
 * condition variable until the I/O thread has finished it. The body callback, and therefore the
 * caller's write function, runs on the I/O thread. One multi handle on one thread gives
 * connection reuse and HTTP/2 multiplexing across all callers without sharing a connection
 * cache between threads (which libcurl does not support safely). TLS sessions are shared
 * between easy handles through a share handle that only the I/O thread touches.
 *
 * Every transfer is bounded: connect timeout, low-speed abort, optional whole-transfer
 * timeout, and the caller's maximum length, enforced from Content-Length (before any body
 * byte) and again while the body streams.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "fetch/fetch.h"

#define POOL_MAX	  16	      /* idle easy handles kept for reuse */
#define HOST_CONNECTIONS  8	      /* parallel connections to one host (HTTP/1.1) */
#define POLL_MS		  1000	      /* the I/O thread wakes at least this often */
#define BUFFER_SIZE	  (64 * 1024) /* body chunk size asked of libcurl */
#define DEFAULT_CONNECT	  10L
#define DEFAULT_LOW_SPEED 1024L
#define DEFAULT_LOW_TIME  10L
#define ERROR_BODY_MAX	  (64 * 1024) /* an error page drained to keep its connection */

struct request {
	/* Set by get() before queueing; read-only afterwards. */
	const char *url;
	const char *proxy; /* NULL = libcurl's default (direct unless http_proxy is set) */
	uint64_t maxlen;
	char range[48]; /* "FIRST-LAST" (CURLOPT_RANGE), "" = the whole file */
	fetch_write_fn fn;
	void *fnctx;
	pthread_cond_t cond;
	/* Written by the I/O thread; read by get() once done is set (both under t->lock). */
	bool done;
	int err;	  /* why the body callback stopped the transfer; 0 if it did not */
	uint64_t got;	  /* body bytes passed to fn */
	uint64_t drained; /* body bytes of an error answer, thrown away */
	bool http_error;  /* the server answered HTTP >= 400: the body is not the file */
	CURLcode result;
	long status;	     /* HTTP response code, 0 for file:// */
	long connect_status; /* the proxy's answer to CONNECT (https through a proxy), 0 if none */
	bool connected;	     /* the connection (and TLS handshake) was established */
	long os_errno;	     /* the system's error for a failed connect */
	char errbuf[CURL_ERROR_SIZE];
	char fndetail[1024]; /* fn's error detail: it ran on the I/O thread */
	/* From the headers of the latest answer (a redirect's, then the next one's). */
	char encoding[64];  /* its Content-Encoding, "" = none: we ask for none */
	char location[256]; /* its Location (a redirect's target), "" = none */
	bool bad_encoding;  /* the body came with an encoding: stopped before fn saw it */
	/* The I/O thread's own. */
	CURL *easy;
	struct request *next; /* queue (under t->lock), then active list (I/O thread) */
};

struct curlt {
	long connect_timeout, low_speed_limit, low_speed_time, timeout;
	char *cainfo;
	char *netrc;		  /* fetch_opts.netrc, NULL = none */
	struct curl_slist *fresh; /* Cache-Control: no-cache, for fetch_url_is_volatile() URLs */
	CURLM *multi;
	CURLSH *share;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t idle;	     /* signalled when users drops to 0 while stopping */
	struct request *queue;	     /* lock: new requests, in order (tail insert) */
	struct request **queue_tail; /* lock */
	unsigned users;		     /* lock: get() calls in progress */
	bool stopping;		     /* lock */

	struct request *active; /* I/O thread: requests added to the multi handle */
	CURL *pool[POOL_MAX];	/* I/O thread: idle easy handles */
	size_t npool;		/* I/O thread */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result;

static void global_init(void)
{
	global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------------------------------------------ */
/* The I/O thread. */

/* Copy the value of header line `line` (len bytes) into out if it is header `name`. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);

	if (len <= nlen || strncasecmp(line, name, nlen) || line[nlen] != ':')
		return;
	line += nlen + 1;
	len -= nlen + 1;
	while (len && (*line == ' ' || *line == '\t'))
		line++, len--;
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n' || line[len - 1] == ' '))
		len--;
	snprintf(out, cap, "%.*s", (int)len, line);
}

static size_t on_header(char *buf, size_t size, size_t nmemb, void *ctx)
{
	struct request *q = ctx;
	size_t len = size * nmemb;

	if (len >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a new answer: forget the last one's */
		q->encoding[0] = q->location[0] = '\0';
		return len;
	}
	header_value(buf, len, "Content-Encoding", q->encoding, sizeof(q->encoding));
	header_value(buf, len, "Location", q->location, sizeof(q->location));
	return len;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ctx)
{
	struct request *q = ctx;
	size_t len = size * nmemb;
	long status = 0;
	int r;

	/* An error answer's body (a 404 page) is read and dropped, so that the connection
	 * stays open for the next request (a peer without the object answers 404 often); a
	 * long one is cut off, which closes the connection. */
	if (!q->got && !q->http_error && q->easy &&
	    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	    status >= 400)
		q->http_error = true;
	if (q->http_error) {
		q->drained += len;
		return q->drained > ERROR_BODY_MAX ? 0 : len;
	}
	/* A range asked of an HTTP server must come back as one (206): a 200 is the whole
	 * file from its start, which is not what the caller cuts. */
	if (q->range[0] && !q->got && q->easy &&
	    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	    status != 0 && status != 206) {
		q->err = -EOPNOTSUPP;
		snprintf(q->fndetail, sizeof(q->fndetail),
			 "%s: answered a range request with HTTP %ld and the whole file", q->url,
			 status);
		return 0;
	}
	/* We send no Accept-Encoding: an encoded body is not the file's bytes (a gzip_static
	 * "always" or a misconfigured cache), and would only fail its checks later, unnamed. */
	if (q->encoding[0] && strcasecmp(q->encoding, "identity")) {
		q->bad_encoding = true;
		return 0;
	}
	/* The limit comes first: fn never sees a byte past maxlen. */
	if (len > q->maxlen - q->got) {
		q->err = STORK_ETOOBIG;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (len == 0)
		return 0;
	stork_error_clear();
	r = q->fn(q->fnctx, buf, len);
	if (r < 0) {
		q->err = r;
		snprintf(q->fndetail, sizeof(q->fndetail), "%s", stork_error_detail());
		return 0;
	}
	q->got += len;
	return len;
}

static int setup_easy(struct curlt *t, struct request *q, CURL *e)
{
	CURLcode c = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (c == CURLE_OK)                                                                 \
			c = curl_easy_setopt(e, opt, val);                                         \
	} while (0)
	SET(CURLOPT_URL, q->url);
	SET(CURLOPT_PRIVATE, (void *)q);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, (void *)q);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, (void *)q);
	SET(CURLOPT_ERRORBUFFER, q->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "file,http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, 4L);
	/* No CURLOPT_FAILONERROR: it closes the connection at every 404 (on_body drains). */
	SET(CURLOPT_FAILONERROR, 0L);
	SET(CURLOPT_CONNECTTIMEOUT, t->connect_timeout);
	SET(CURLOPT_LOW_SPEED_LIMIT, t->low_speed_limit);
	SET(CURLOPT_LOW_SPEED_TIME, t->low_speed_time);
	SET(CURLOPT_TIMEOUT, t->timeout);
	/* 0 means "no limit" to libcurl: a limit of 0 is left to on_body. */
	SET(CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)(q->maxlen > (uint64_t)INT64_MAX ? 0 : q->maxlen));
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	SET(CURLOPT_PIPEWAIT, 1L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_USERAGENT, "storkfs/" STORKFS_VERSION);
	SET(CURLOPT_SHARE, t->share);
	/* Both every time: a pooled handle keeps what the last request set. */
	SET(CURLOPT_PROXY, q->proxy);
	SET(CURLOPT_RANGE, q->range[0] ? q->range : NULL);
	SET(CURLOPT_HTTPHEADER, fetch_url_is_volatile(q->url) ? t->fresh : NULL);
	if (t->cainfo)
		SET(CURLOPT_CAINFO, t->cainfo);
	if (t->netrc) {
		/* Credentials in the URL win; the file is asked for hosts without them. */
		SET(CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		SET(CURLOPT_NETRC_FILE, t->netrc);
	}
#undef SET
	if (c != CURLE_OK) {
		snprintf(q->errbuf, sizeof(q->errbuf), "libcurl: %s", curl_easy_strerror(c));
		return c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	return 0;
}

static void complete(struct curlt *t, struct request *q)
{
	pthread_mutex_lock(&t->lock);
	q->done = true;
	pthread_cond_signal(&q->cond);
	/* q may be gone as soon as the lock is released: the caller owns it. */
	pthread_mutex_unlock(&t->lock);
}

static void release_easy(struct curlt *t, CURL *e)
{
	if (!e)
		return;
	/* Drop the pointers into the finished request before the handle idles. */
	curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	if (t->npool < POOL_MAX)
		t->pool[t->npool++] = e;
	else
		curl_easy_cleanup(e);
}

static CURL *new_easy(void)
{
	CURL *e = curl_easy_init();

	/* Only on a fresh handle: libcurl 7.88 refuses to resize the buffer of a handle that
	 * has been used. */
	if (e && curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)BUFFER_SIZE) != CURLE_OK) {
		curl_easy_cleanup(e);
		return NULL;
	}
	return e;
}

static void start(struct curlt *t, struct request *q)
{
	CURL *e = t->npool ? t->pool[--t->npool] : new_easy();
	CURLMcode mc;
	int r;

	if (!e) {
		q->err = -ENOMEM;
		goto fail;
	}
	r = setup_easy(t, q, e);
	if (r < 0) {
		q->err = r;
		goto fail;
	}
	mc = curl_multi_add_handle(t->multi, e);
	if (mc != CURLM_OK) {
		snprintf(q->errbuf, sizeof(q->errbuf), "libcurl: %s", curl_multi_strerror(mc));
		q->err = mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
		goto fail;
	}
	q->easy = e;
	q->next = t->active;
	t->active = q;
	return;
fail:
	release_easy(t, e);
	q->result = CURLE_FAILED_INIT;
	complete(t, q);
}

static void unlink_active(struct curlt *t, struct request *q)
{
	struct request **p;

	for (p = &t->active; *p; p = &(*p)->next) {
		if (*p == q) {
			*p = q->next;
			return;
		}
	}
}

static void finish(struct curlt *t, struct request *q, CURLcode result)
{
	curl_off_t connect = 0, appconnect = 0;
	char *scheme = NULL;

	q->result = result;
	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->status);
	curl_easy_getinfo(q->easy, CURLINFO_HTTP_CONNECTCODE, &q->connect_status);
	curl_easy_getinfo(q->easy, CURLINFO_CONNECT_TIME_T, &connect);
	curl_easy_getinfo(q->easy, CURLINFO_APPCONNECT_TIME_T, &appconnect);
	curl_easy_getinfo(q->easy, CURLINFO_SCHEME, &scheme);
	curl_easy_getinfo(q->easy, CURLINFO_OS_ERRNO, &q->os_errno);
	/* A reused connection reports a connect time too (a few microseconds). */
	q->connected = connect > 0 && (!scheme || strcasecmp(scheme, "https") || appconnect > 0);
	curl_multi_remove_handle(t->multi, q->easy);
	release_easy(t, q->easy);
	q->easy = NULL;
	unlink_active(t, q);
	complete(t, q);
}

static void cancel(struct curlt *t, struct request *q)
{
	q->err = -ECANCELED;
	q->result = CURLE_ABORTED_BY_CALLBACK;
	if (q->easy) {
		curl_multi_remove_handle(t->multi, q->easy);
		release_easy(t, q->easy);
		q->easy = NULL;
	}
	complete(t, q);
}

static void *io_main(void *arg)
{
	struct curlt *t = arg;
	struct request *q, *next;
	CURLMsg *msg;
	char *priv;
	bool stop;
	int running, left;

	for (;;) {
		pthread_mutex_lock(&t->lock);
		q = t->queue;
		t->queue = NULL;
		t->queue_tail = &t->queue;
		stop = t->stopping;
		pthread_mutex_unlock(&t->lock);
		for (; q; q = next) {
			next = q->next;
			if (stop)
				cancel(t, q);
			else
				start(t, q);
		}
		if (stop)
			break;
		curl_multi_perform(t->multi, &running);
		while ((msg = curl_multi_info_read(t->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			priv = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			if (priv)
				finish(t, (struct request *)priv, msg->data.result);
		}
		curl_multi_poll(t->multi, NULL, 0, POLL_MS, NULL);
	}
	while ((q = t->active)) {
		t->active = q->next;
		cancel(t, q);
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The caller's side. */

/* Turn a finished request into our error codes, with a detail naming the URL. */
static int result_of(const struct curlt *t, const struct request *q)
{
	const char *eb = q->errbuf[0] ? q->errbuf : curl_easy_strerror(q->result);
	char u[1024], where[CURL_ERROR_SIZE + 128];
	CURLcode result;

	fetch_url_shown(q->url, u, sizeof(u)); /* no password in a message */
	if (q->bad_encoding) {
		stork_errorf("%s: served with Content-Encoding: %s, which was not asked for (the "
			     "body is not the file as published: check the server's compression "
			     "settings)",
			     u, q->encoding);
		return -EIO;
	}
	if (q->result == CURLE_UNSUPPORTED_PROTOCOL && q->location[0]) {
		/* The redirect's target is the protocol libcurl refused (CURLOPT_REDIR_PROTOCOLS):
		 * never a file:// or ftp:// a server points to. */
		stork_errorf("%s: refused a redirect to %s (only http:// and https:// redirects "
			     "are followed)",
			     u, fetch_url_shown(q->location, where, sizeof(where)));
		return -EIO;
	}
	if (q->result == CURLE_TOO_MANY_REDIRECTS) {
		stork_errorf("%s: more than 4 redirects (the last to %s)", u,
			     fetch_url_shown(q->location, where, sizeof(where)));
		return -EIO;
	}

	if (q->err == STORK_ETOOBIG) {
		stork_errorf("%s: sent more than the limit of %" PRIu64 " bytes", u, q->maxlen);
		return STORK_ETOOBIG;
	}
	if (q->err == -ECANCELED) {
		stork_errorf("%s: cancelled: the transport is shutting down", u);
		return -ECANCELED;
	}
	if (q->err) {
		if (q->fndetail[0])
			stork_errorf("%s", q->fndetail);
		else if (q->result == CURLE_FAILED_INIT)
			stork_errorf("%s: %s", u, eb);
		return q->err;
	}
	if (q->result != CURLE_OK && q->proxy && q->connect_status >= 500 &&
	    q->connect_status <= 599) {
		/* https through a proxy: its answer to CONNECT says it cannot reach the host. */
		stork_errorf("%s: the proxy cannot reach the host (CONNECT: HTTP %ld)", u,
			     q->connect_status);
		return -EHOSTDOWN;
	}
	/* libcurl checks Content-Length against the limit before the status: a 404 page
	 * longer than a tiny object is still a 404. */
	result = q->result;
	if ((q->http_error || result == CURLE_OK || result == CURLE_FILESIZE_EXCEEDED) &&
	    q->status >= 400)
		result = CURLE_HTTP_RETURNED_ERROR;
	switch (result) {
	case CURLE_OK:
		return 0;
	case CURLE_FILESIZE_EXCEEDED:
		stork_errorf("%s: announces more than the limit of %" PRIu64 " bytes", u,
			     q->maxlen);
		return STORK_ETOOBIG;
	case CURLE_HTTP_RETURNED_ERROR:
		if (q->status == 404 || q->status == 410) {
			stork_errorf("%s: not found (HTTP %ld)", u, q->status);
			return -ENOENT;
		}
		if (q->proxy && q->status >= 500 && q->status <= 599) {
			/* The proxy reached the origin and relays its failure, or says it could
			 * not reach it (502/503/504): the host's problem either way. */
			stork_errorf("%s: HTTP %ld through the proxy", u, q->status);
			return -EHOSTDOWN;
		}
		stork_errorf("%s: HTTP %ld", u, q->status);
		return -EIO;
	case CURLE_FILE_COULDNT_READ_FILE:
	case CURLE_REMOTE_FILE_NOT_FOUND:
		stork_errorf("%s: not found", u);
		return -ENOENT;
	case CURLE_COULDNT_CONNECT:
		if (q->os_errno == ECONNREFUSED)
			stork_errorf("%s: connection refused", u);
		else if (q->os_errno)
			stork_errorf("%s: cannot connect: %s", u,
				     stork_error_text(eb, -(int)q->os_errno, where, sizeof(where)));
		else
			stork_errorf("%s: cannot connect: %s", u, eb);
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		if (strstr(eb, "too slow"))
			stork_errorf("%s: stalled: below %ld B/s for %ld s", u, t->low_speed_limit,
				     t->low_speed_time);
		else if (!q->connected)
			stork_errorf("%s: connect timed out after %ld s", u, t->connect_timeout);
		else if (t->timeout)
			stork_errorf("%s: took longer than the %ld s limit", u, t->timeout);
		else
			stork_errorf("%s: timed out: %s", u, eb);
		return -ETIMEDOUT;
	case CURLE_PARTIAL_FILE:
		stork_errorf("%s: truncated: %s", u, eb);
		return -EIO;
	case CURLE_OUT_OF_MEMORY:
		stork_errorf("%s: out of memory in libcurl", u);
		return -ENOMEM;
	default:
		stork_errorf("%s: %s", u, eb);
		return -EIO;
	}
}

/* get_via, or a range of the file when len > 0: bytes [offset, offset + len). */
static int curl_request(void *tctx, const char *url, const char *proxy, uint64_t offset,
			uint64_t len, uint64_t maxlen, fetch_write_fn fn, void *fnctx)
{
	struct curlt *t = tctx;
	struct request q = {.url = url, .proxy = proxy, .maxlen = maxlen, .fn = fn, .fnctx = fnctx};
	int r;

	if (len)
		snprintf(q.range, sizeof(q.range), "%" PRIu64 "-%" PRIu64, offset,
			 offset + len - 1);

	pthread_cond_init(&q.cond, NULL);
	pthread_mutex_lock(&t->lock);
	if (t->stopping) {
		pthread_mutex_unlock(&t->lock);
		pthread_cond_destroy(&q.cond);
		stork_errorf("%s: cancelled: the transport is shutting down",
			     fetch_url_shown(url, q.errbuf, sizeof(q.errbuf)));
		return -ECANCELED;
	}
	t->users++;
	*t->queue_tail = &q;
	t->queue_tail = &q.next;
	pthread_mutex_unlock(&t->lock);

	/* t stays alive while users > 0: free() waits for us. */
	curl_multi_wakeup(t->multi);

	pthread_mutex_lock(&t->lock);
	/* Bounded: the I/O thread finishes every transfer within the configured timeouts. */
	while (!q.done)
		pthread_cond_wait(&q.cond, &t->lock);
	if (--t->users == 0 && t->stopping)
		pthread_cond_broadcast(&t->idle);
	r = result_of(t, &q);
	pthread_mutex_unlock(&t->lock);
	pthread_cond_destroy(&q.cond);
	return r;
}

static int curl_get_via(void *tctx, const char *url, const char *proxy, uint64_t maxlen,
			fetch_write_fn fn, void *fnctx)
{
	return curl_request(tctx, url, proxy, 0, 0, maxlen, fn, fnctx);
}

static int curl_get(void *tctx, const char *url, uint64_t maxlen, fetch_write_fn fn, void *fnctx)
{
	return curl_get_via(tctx, url, NULL, maxlen, fn, fnctx);
}

static int curl_get_range(void *tctx, const char *url, const char *proxy, uint64_t offset,
			  uint64_t len, fetch_write_fn fn, void *fnctx)
{
	if (len == 0)
		return 0;
	return curl_request(tctx, url, proxy, offset, len, len, fn, fnctx);
}

static bool curl_handles(void *tctx, const char *url)
{
	return !strncasecmp(url, "file://", 7) || !strncasecmp(url, "http://", 7) ||
	       !strncasecmp(url, "https://", 8);
}

static void curl_cancel(void *tctx)
{
	struct curlt *t = tctx;

	pthread_mutex_lock(&t->lock);
	t->stopping = true; /* the I/O thread fails what runs and what is queued, then ends */
	pthread_mutex_unlock(&t->lock);
	curl_multi_wakeup(t->multi);
}

static void curl_free_transport(void *tctx)
{
	struct curlt *t = tctx;

	if (!t)
		return;
	if (t->thread_started) {
		pthread_mutex_lock(&t->lock);
		t->stopping = true;
		pthread_mutex_unlock(&t->lock);
		curl_multi_wakeup(t->multi);
		pthread_join(t->thread, NULL);
		/* Every pending get() has been failed with -ECANCELED: wait until they left. */
		pthread_mutex_lock(&t->lock);
		while (t->users > 0)
			pthread_cond_wait(&t->idle, &t->lock);
		pthread_mutex_unlock(&t->lock);
	}
	while (t->npool > 0)
		curl_easy_cleanup(t->pool[--t->npool]);
	if (t->multi)
		curl_multi_cleanup(t->multi);
	if (t->share)
		curl_share_cleanup(t->share);
	pthread_cond_destroy(&t->idle);
	pthread_mutex_destroy(&t->lock);
	curl_slist_free_all(t->fresh);
	free(t->cainfo);
	free(t->netrc);
	free(t);
}

/* The libcurl handles and the I/O thread that drives them. */
static int curl_start(struct curlt *t)
{
	int r;

	t->multi = curl_multi_init();
	t->share = curl_share_init();
	t->fresh = curl_slist_append(NULL, "Cache-Control: no-cache");
	if (!t->multi || !t->share || !t->fresh)
		return -ENOMEM;
	if (curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX) != CURLM_OK ||
	    curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)HOST_CONNECTIONS) !=
		CURLM_OK ||
	    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
		CURLSHE_OK) {
		stork_errorf("libcurl: cannot set up the multi handle");
		return -EIO;
	}
	r = -pthread_create(&t->thread, NULL, io_main, t);
	if (r < 0) {
		stork_errorf("libcurl: cannot start the I/O thread: %s", storkfs_strerror(r));
		return r == -EAGAIN ? -ENOMEM : -EIO;
	}
	t->thread_started = true;
	return 0;
}

static const struct fetch_transport curl_transport = {
    .name = "curl",
    .handles = curl_handles,
    .get = curl_get,
    .free = curl_free_transport,
    .cancel = curl_cancel,
    .get_via = curl_get_via,
    .get_range = curl_get_range,
};

int fetch_curl_transport_new(const struct fetch_opts *o, struct fetch_transport *ret_t)
{
	struct fetch_opts none = {0};
	struct curlt *t;
	int r;

	if (!o)
		o = &none;
	pthread_once(&global_once, global_init);
	if (global_result != CURLE_OK) {
		stork_errorf("libcurl: cannot initialise: %s", curl_easy_strerror(global_result));
		return -EIO;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->idle, NULL);
	t->queue_tail = &t->queue;
	t->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : DEFAULT_CONNECT;
	t->low_speed_limit = o->low_speed_limit > 0 ? o->low_speed_limit : DEFAULT_LOW_SPEED;
	t->low_speed_time = o->low_speed_time > 0 ? o->low_speed_time : DEFAULT_LOW_TIME;
	t->timeout = o->timeout > 0 ? o->timeout : 0;
	t->cainfo = o->cainfo ? strdup(o->cainfo) : NULL;
	t->netrc = o->netrc ? strdup(o->netrc) : NULL;
	if ((o->cainfo && !t->cainfo) || (o->netrc && !t->netrc))
		r = -ENOMEM;
	else
		r = curl_start(t);
	if (r < 0) {
		curl_free_transport(t);
		return r;
	}
	*ret_t = curl_transport;
	ret_t->tctx = t;
	return 0;
}
