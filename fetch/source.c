/* fetch/source.c: open a repository as a verify_source: a directory, file:// or http(s)://.
 *
 * Directories are read by verify's directory source. URLs go through libcurl with every
 * transfer bounded: connect timeout, low-speed abort and the caller's maximum length, which is
 * enforced both from Content-Length (before any body byte) and while the body streams.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "fetch/fetch.h"

struct url_source {
	char *base;		/* without a trailing '/' */
	struct fetch_opts opts;
	CURL *curl;		/* one easy handle: connection reuse across requests */
	pthread_mutex_t lock;	/* protects curl: a source may be shared by threads */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_global(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Append path to base, percent-encoding bytes outside a conservative set. */
static char *url_join(const char *base, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t blen = strlen(base), plen = strlen(path), o;
	char *url = malloc(blen + 1 + 3 * plen + 1);

	if (!url)
		return NULL;
	memcpy(url, base, blen);
	o = blen;
	url[o++] = '/';
	for (size_t i = 0; i < plen; i++) {
		unsigned char c = (unsigned char)path[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("/._~+:-", c)) {
			url[o++] = (char)c;
		} else {
			url[o++] = '%';
			url[o++] = hex[c >> 4];
			url[o++] = hex[c & 15];
		}
	}
	url[o] = '\0';
	return url;
}

struct xfer {
	uint64_t maxlen;
	uint64_t got;
	int (*fn)(void *ctx, const void *buf, size_t len);
	void *ctx;
	int err;		/* why we stopped the body, 0 if we did not */
};

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = size * nmemb;
	int r;

	if (x->got + len > x->maxlen) {
		x->err = STORK_ETOOBIG;
		return 0;	/* makes curl stop with CURLE_WRITE_ERROR */
	}
	r = x->fn(x->ctx, buf, len);
	if (r < 0) {
		x->err = r;
		return 0;
	}
	x->got += len;
	return len;
}

static int url_stream(void *ctx, const char *path, uint64_t maxlen,
		      int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx)
{
	struct url_source *u = ctx;
	struct xfer x = {.maxlen = maxlen, .fn = fn, .ctx = fnctx};
	char errbuf[CURL_ERROR_SIZE] = "";
	char *url = url_join(u->base, path);
	long status = 0;
	CURLcode c;
	int r;

	if (!url)
		return -ENOMEM;
	pthread_mutex_lock(&u->lock);
	curl_easy_setopt(u->curl, CURLOPT_URL, url);
	curl_easy_setopt(u->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(u->curl, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(u->curl, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)(maxlen > INT64_MAX ? INT64_MAX : maxlen));
	c = curl_easy_perform(u->curl);
	curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, &status);
	pthread_mutex_unlock(&u->lock);

	if (x.err) {
		r = x.err;
		if (r == STORK_ETOOBIG)
			stork_errorf("%s: longer than the allowed %llu bytes", url,
				     (unsigned long long)maxlen);
	} else if (c == CURLE_FILESIZE_EXCEEDED) {
		r = STORK_ETOOBIG;
		stork_errorf("%s: server announces more than the allowed %llu bytes", url,
			     (unsigned long long)maxlen);
	} else if (c == CURLE_OPERATION_TIMEDOUT) {
		r = -ETIMEDOUT;
		stork_errorf("%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(c));
	} else if (c == CURLE_HTTP_RETURNED_ERROR && status == 404) {
		r = -ENOENT;
		stork_errorf("%s: not found (HTTP 404)", url);
	} else if (c != CURLE_OK) {
		r = -EIO;
		stork_errorf("%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(c));
	} else {
		r = 0;
	}
	free(url);
	return r;
}

struct membuf {
	uint8_t *buf;
	size_t len, cap;
};

static int membuf_append(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;

	if (m->len + len + 1 > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		uint8_t *n;

		while (cap < m->len + len + 1)
			cap *= 2;
		n = realloc(m->buf, cap);
		if (!n)
			return -ENOMEM;
		m->buf = n;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	m->buf[m->len] = 0;
	return 0;
}

static int url_get(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf,
		   size_t *ret_len)
{
	struct membuf m = {0};
	int r = url_stream(ctx, path, maxlen, membuf_append, &m);

	if (r < 0) {
		free(m.buf);
		return r;
	}
	if (!m.buf && membuf_append(&m, "", 0) < 0)
		return -ENOMEM;
	*ret_buf = m.buf;
	*ret_len = m.len;
	return 0;
}

static const char *url_describe(void *ctx)
{
	struct url_source *u = ctx;

	return u->base;
}

static void url_free(struct url_source *u)
{
	if (!u)
		return;
	if (u->curl)
		curl_easy_cleanup(u->curl);
	pthread_mutex_destroy(&u->lock);
	free(u->base);
	free(u);
}

static int url_open(const char *url, const struct fetch_opts *o, struct verify_source *src)
{
	struct url_source *u = NULL;
	size_t len;
	int r;

	pthread_once(&curl_once, curl_global);
	if (curl_init_result != CURLE_OK) {
		stork_errorf("libcurl: %s", curl_easy_strerror(curl_init_result));
		return -EIO;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	if (o)
		u->opts = *o;
	u->base = strdup(url);
	u->curl = curl_easy_init();
	if (!u->base || !u->curl) {
		r = -ENOMEM;
		goto out;
	}
	len = strlen(u->base);
	while (len > 0 && u->base[len - 1] == '/')
		u->base[--len] = '\0';

	curl_easy_setopt(u->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(u->curl, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(u->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(u->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(u->curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(u->curl, CURLOPT_MAXREDIRS, 4L);
	curl_easy_setopt(u->curl, CURLOPT_CONNECTTIMEOUT,
			 u->opts.connect_timeout > 0 ? u->opts.connect_timeout : 10L);
	curl_easy_setopt(u->curl, CURLOPT_LOW_SPEED_LIMIT,
			 u->opts.low_speed_limit > 0 ? u->opts.low_speed_limit : 1024L);
	curl_easy_setopt(u->curl, CURLOPT_LOW_SPEED_TIME,
			 u->opts.low_speed_time > 0 ? u->opts.low_speed_time : 10L);
	curl_easy_setopt(u->curl, CURLOPT_USERAGENT, "storkfs/" STORKFS_VERSION);
	curl_easy_setopt(u->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	if (u->opts.cainfo)
		curl_easy_setopt(u->curl, CURLOPT_CAINFO, u->opts.cainfo);

	src->get = url_get;
	src->stream = url_stream;
	src->describe = url_describe;
	src->ctx = u;
	u = NULL;
	r = 0;
out:
	url_free(u);
	return r;
}

int fetch_source_init(struct verify_source *src, const char *repo, const struct fetch_opts *o)
{
	struct stat st;

	memset(src, 0, sizeof(*src));
	if (!strncmp(repo, "http://", 7) || !strncmp(repo, "https://", 8))
		return url_open(repo, o, src);
	if (!strncmp(repo, "file://", 7))
		repo += 7;
	else if (strstr(repo, "://")) {
		stork_errorf("%s: unsupported URL scheme (use a directory, file://, http:// or "
			     "https://)",
			     repo);
		return -EINVAL;
	}
	if (stat(repo, &st) < 0) {
		int r = -errno;

		stork_errorf("%s: %s", repo, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		stork_errorf("%s: not a directory", repo);
		return -ENOTDIR;
	}
	return verify_dir_source_init(src, repo);
}

void fetch_source_fini(struct verify_source *src)
{
	if (!src || !src->ctx)
		return;
	if (src->get == url_get)
		url_free(src->ctx);
	else
		verify_dir_source_fini(src);
	memset(src, 0, sizeof(*src));
}
