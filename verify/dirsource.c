/* verify/dirsource.c: a verify_source over a local repository directory. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "verify/error.h"
#include "verify/name.h"
#include "verify/tuf.h"

#define CHUNK (64 * 1024)

struct dirsrc {
	char *dir;
	int fd;
};

static int open_file(struct dirsrc *d, const char *path, int *ret_fd)
{
	struct stat st;
	int fd, r;

	r = verify_check_relpath(path);
	if (r < 0)
		return r;
	fd = openat(d->fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT || r == -ENOTDIR) {
			stork_errorf("%s: not found in %s", path, d->dir);
			return -ENOENT;
		}
		stork_errorf("%s: cannot open in %s: %s", path, d->dir, storkfs_strerror(r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		stork_errorf("%s: not a regular file in %s", path, d->dir);
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int too_big(const char *path, uint64_t maxlen)
{
	stork_errorf("%s: longer than the limit of %" PRIu64 " bytes", path, maxlen);
	return STORK_ETOOBIG;
}

/* read(2) again after EINTR, a failure told (path in d). @return bytes read, 0 at the end;
 * -errno. */
static ssize_t read_some(const struct dirsrc *d, const char *path, int fd, void *buf, size_t len)
{
	ssize_t n;
	int r;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	r = -errno;
	stork_errorf("%s: read error in %s: %s", path, d->dir, storkfs_strerror(r));
	return r;
}

static int dir_get(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len)
{
	struct dirsrc *d = ctx;
	uint8_t *buf = NULL, *grown;
	size_t len = 0, cap;
	struct stat st;
	int fd = -1, r;

	r = open_file(d, path, &fd);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size > maxlen) {
		r = too_big(path, maxlen);
		goto out;
	}
	/* The size is a hint: the file may change under us, so read until EOF but never
	 * more than maxlen + 1 bytes. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (len > maxlen) {
				r = too_big(path, maxlen);
				goto out;
			}
			cap = cap + cap / 2 + 1;
			if (cap > maxlen + 1)
				cap = maxlen + 1;
			grown = realloc(buf, cap);
			if (!grown) {
				r = -ENOMEM;
				goto out;
			}
			buf = grown;
		}
		n = read_some(d, path, fd, buf + len, cap - len);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > maxlen) {
		r = too_big(path, maxlen);
		goto out;
	}
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static int dir_stream(void *ctx, const char *path, uint64_t maxlen,
		      int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx)
{
	struct dirsrc *d = ctx;
	uint64_t total = 0;
	uint8_t *buf;
	int fd = -1, r;

	r = open_file(d, path, &fd);
	if (r < 0)
		return r;
	buf = malloc(CHUNK);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read_some(d, path, fd, buf, CHUNK);

		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > maxlen) {
			r = too_big(path, maxlen);
			goto out;
		}
		r = fn(fnctx, buf, (size_t)n);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static const char *dir_describe(void *ctx)
{
	return ((struct dirsrc *)ctx)->dir;
}

int verify_dir_source_init(struct verify_source *src, const char *repodir)
{
	struct dirsrc *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->dir = strdup(repodir);
	if (!d->dir) {
		free(d);
		return -ENOMEM;
	}
	d->fd = open(repodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		r = -errno;
		stork_errorf("%s: cannot open the repository directory: %s", repodir,
			     storkfs_strerror(r));
		free(d->dir);
		free(d);
		return r;
	}
	*src = (struct verify_source){
	    .get = dir_get,
	    .stream = dir_stream,
	    .describe = dir_describe,
	    .ctx = d,
	};
	return 0;
}

void verify_dir_source_fini(struct verify_source *src)
{
	struct dirsrc *d;

	if (!src || !src->ctx)
		return;
	d = src->ctx;
	close(d->fd);
	free(d->dir);
	free(d);
	src->ctx = NULL;
}
