/* verify/error.c: error codes, the per-thread error detail, and atomic file writes.
 *
 * The error detail is a fixed 1 KiB thread-local buffer: setting it never allocates and never
 * fails, so it can be used on every error path, including -ENOMEM ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "verify/atomic.h"
#include "verify/error.h"

static __thread char detail[STORK_DETAIL_MAX];
static __thread char errbuf[128];

const char *storkfs_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case STORK_EBADSIG:
		return "signatures do not meet the threshold";
	case STORK_EEXPIRED:
		return "metadata has expired";
	case STORK_EROLLBACK:
		return "version is older than one already trusted (rollback)";
	case STORK_EBADHASH:
		return "content does not match its signed hash";
	case STORK_EBADLEN:
		return "content length does not match its signed length";
	case STORK_EFORMAT:
		return "malformed metadata, manifest or key";
	case STORK_EPATTERN:
		return "target is outside the delegated patterns";
	case STORK_EHOSTILE:
		return "hostile path or archive entry";
	case STORK_ENAME:
		return "name outside the allowed character set";
	case STORK_ETOOBIG:
		return "input exceeds its size limit";
	case STORK_EMISSING:
		return "a file named by the metadata is missing";
	case STORK_EVERSION:
		return "unexpected version number";
	case STORK_EUNSUPPORTED:
		return "unsupported format or feature";
	default:
		break;
	}
	if (err < 0 && err > -4096)
		/* GNU strerror_r: returns either errbuf or a static string. */
		return strerror_r(-err, errbuf, sizeof(errbuf));
	snprintf(errbuf, sizeof(errbuf), "unknown error %d", err);
	return errbuf;
}

/* After a truncating snprintf, drop a UTF-8 sequence cut in half at the end. */
static void trim_partial_utf8(char *s)
{
	size_t len = strlen(s), i = len, need;
	unsigned char c;

	if (len < STORK_DETAIL_MAX - 1)
		return;
	while (i > 0 && i > len - 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	c = (unsigned char)s[i - 1];
	if (c < 0xc0)
		return;
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (len - (i - 1) < need)
		s[i - 1] = '\0';
}

void stork_errorf(const char *fmt, ...)
{
	/* Format into a scratch buffer first: the arguments may point into detail. */
	char tmp[STORK_DETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(detail, tmp, sizeof(detail));
	trim_partial_utf8(detail);
}

/* Append s to out (size STORK_DETAIL_MAX) at *pos, truncating. */
static void append(char *out, size_t *pos, const char *s)
{
	size_t n = strlen(s);

	if (n > STORK_DETAIL_MAX - 1 - *pos)
		n = STORK_DETAIL_MAX - 1 - *pos;
	memcpy(out + *pos, s, n);
	*pos += n;
	out[*pos] = '\0';
}

void stork_error_prefix(const char *fmt, ...)
{
	char pre[STORK_DETAIL_MAX], tmp[STORK_DETAIL_MAX];
	size_t plen, pos = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	plen = strlen(pre);
	tmp[0] = '\0';
	append(tmp, &pos, pre);
	if (detail[0] != '\0') {
		/* "PREFIX: DETAIL"; a prefix that already ends in ": " is used as it is. */
		if (!(plen >= 2 && pre[plen - 2] == ':' && pre[plen - 1] == ' '))
			append(tmp, &pos, ": ");
		append(tmp, &pos, detail);
	}
	memcpy(detail, tmp, sizeof(detail));
	trim_partial_utf8(detail);
}

const char *stork_error_detail(void)
{
	return detail;
}

void stork_error_clear(void)
{
	detail[0] = '\0';
}

const char *stork_error_text(const char *d, int err, char *buf, size_t len)
{
	char what[128]; /* storkfs_strerror's text may be this thread's scratch buffer */

	if (!d)
		d = detail;
	snprintf(what, sizeof(what), "%s", storkfs_strerror(err));
	if (!d[0])
		snprintf(buf, len, "%s", what);
	else if (strcasestr(d, what))
		snprintf(buf, len, "%s", d);
	else
		snprintf(buf, len, "%s (%s)", d, what);
	return buf;
}

/* ------------------------------------------------------------------------------------------ */

int verify_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Create "<dir>.tmp-XXXXXX" below dirfd with O_EXCL; dir is "" or ends with '/'. */
static int open_tmp(int dirfd, const char *dir, char *ret_name, size_t size, mode_t mode)
{
	static const char alnum[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	int tries, fd, r;

	for (tries = 0; tries < 100; tries++) {
		unsigned char rnd[6];
		char suffix[7];
		size_t i;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -EIO;
		for (i = 0; i < sizeof(rnd); i++)
			suffix[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
		suffix[6] = '\0';
		r = snprintf(ret_name, size, "%s.tmp-%s", dir, suffix);
		if (r < 0 || (size_t)r >= size)
			return -ENAMETOOLONG;
		fd = openat(dirfd, ret_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

struct membytes {
	const void *buf;
	size_t len;
};

static int fill_bytes(void *ctx, int fd)
{
	const struct membytes *b = ctx;

	return verify_write_all(fd, b->buf, b->len);
}

int verify_write_atomic(int dirfd, const char *name, const void *buf, size_t len, mode_t mode)
{
	struct membytes b = {buf, len};

	return verify_write_atomic_fn(dirfd, name, mode, fill_bytes, &b);
}

int verify_write_atomic_fn(int dirfd, const char *name, mode_t mode, int (*fill)(void *ctx, int fd),
			   void *ctx)
{
	char dir[4096], tmp[4096 + 16];
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	int fd = -1, dfd = -1, r;
	bool tmp_made = false;
	size_t dlen = slash ? (size_t)(slash - name) + 1 : 0;

	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		stork_errorf("%s: not a file name", name);
		return -EINVAL;
	}
	if (dlen >= sizeof(dir)) {
		stork_errorf("%s: path too long", name);
		return -ENAMETOOLONG;
	}
	memcpy(dir, name, dlen); /* with its trailing '/' */
	dir[dlen] = '\0';

	fd = open_tmp(dirfd, dir, tmp, sizeof(tmp), mode);
	if (fd < 0) {
		r = fd;
		fd = -1;
		stork_errorf("%s: cannot create a temporary file: %s", name, storkfs_strerror(r));
		goto out;
	}
	tmp_made = true;
	/* The mode must not depend on the umask. */
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto out_write;
	}
	stork_error_clear();
	r = fill(ctx, fd);
	if (r < 0 && *stork_error_detail())
		goto out; /* fill said what went wrong */
	if (r < 0)
		goto out_write;
	if (fsync(fd) < 0) {
		r = -errno;
		goto out_write;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = -errno;
		goto out_write;
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = -errno;
		stork_errorf("%s: cannot rename into place: %s", name, storkfs_strerror(r));
		goto out;
	}
	tmp_made = false;
	dfd = openat(dirfd, dlen ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		r = -errno;
		stork_errorf("%s: cannot sync the directory: %s", name, storkfs_strerror(r));
		goto out;
	}
	r = 0;
	goto out;
out_write:
	stork_errorf("%s: cannot write: %s", name, storkfs_strerror(r));
out:
	if (fd >= 0)
		close(fd);
	if (tmp_made)
		unlinkat(dirfd, tmp, 0);
	if (dfd >= 0)
		close(dfd);
	return r;
}
