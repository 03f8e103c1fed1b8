/* fetch/source.c: open one repository as a verify_source (`stork verify`, `stork ls`).
 *
 * A directory (or file://PATH) is read by verify's directory source: no thread, no libcurl.
 * An http:// or https:// URL goes through a fetcher with that one mirror, so it gets the same
 * bounds and error details as the node's fetches. With one mirror every failure is also the
 * final error, so single-source log lines are silenced unless the caller asked for them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fetch/fetch.h"

struct url_source {
	struct fetch *f;
	struct verify_source inner;
};

static void quiet(void *ctx, const char *line)
{
}

static int us_get(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len)
{
	struct url_source *u = ctx;

	return u->inner.get(u->inner.ctx, path, maxlen, ret_buf, ret_len);
}

static int us_stream(void *ctx, const char *path, uint64_t maxlen,
		     int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx)
{
	struct url_source *u = ctx;

	return u->inner.stream(u->inner.ctx, path, maxlen, fn, fnctx);
}

static const char *us_describe(void *ctx)
{
	struct url_source *u = ctx;

	return u->inner.describe(u->inner.ctx);
}

static int url_open(const char *url, const struct fetch_opts *o, struct verify_source *src)
{
	struct fetch_opts fo = {0};
	struct url_source *u;
	int r;

	if (o)
		fo = *o;
	if (!fo.log)
		fo.log = quiet;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	r = fetch_new(&fo, &u->f);
	if (r < 0)
		goto fail;
	r = fetch_add_mirror(u->f, url);
	if (r < 0)
		goto fail;
	fetch_as_source(u->f, &u->inner);
	*src = (struct verify_source){
	    .get = us_get,
	    .stream = us_stream,
	    .describe = us_describe,
	    .ctx = u,
	};
	return 0;
fail:
	fetch_free(u->f);
	free(u);
	return r;
}

int fetch_source_init(struct verify_source *src, const char *repo, const struct fetch_opts *o)
{
	struct stat st;

	memset(src, 0, sizeof(*src));
	if (!strncasecmp(repo, "http://", 7) || !strncasecmp(repo, "https://", 8))
		return url_open(repo, o, src);
	if (!strncasecmp(repo, "file://", 7))
		repo += 7;
	else if (strstr(repo, "://")) {
		stork_errorf("%s: unsupported URL scheme (use a directory, file://, http:// or "
			     "https://)",
			     repo);
		return -EINVAL;
	}
	if (stat(repo, &st) < 0) {
		int r = -errno;

		stork_errorf("%s: %s", repo, storkfs_strerror(r));
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
	if (src->get == us_get) {
		struct url_source *u = src->ctx;

		fetch_free(u->f);
		free(u);
	} else {
		verify_dir_source_fini(src);
	}
	memset(src, 0, sizeof(*src));
}
