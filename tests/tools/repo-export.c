/* tests/tools/repo-export.c: rebuild one published version's tree from a repository.
 *
 *   repo-export --root ROOTFILE REPO NAME VERSION DESTDIR
 *
 * Everything goes through the verified client path: the TUF workflow from the pinned root,
 * the delegation search, the manifest's signed hash and each object's hash. Tests compare the
 * result with `dpkg-deb -x` or the source tree. Exit 0 ok, 1 verification failure, 2 usage,
 * 3 system error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "store/store.h"
#include "verify/verify.h"

static int read_all(const char *path, uint8_t **ret_buf, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -EIO;
	}
	buf = malloc((size_t)len + 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*ret_buf = buf;
	*ret_len = (size_t)len;
	return 0;
}

struct sink {
	struct store_unpack *u;
	int fd;
};

static int write_out(void *ctx, const void *buf, size_t len)
{
	const int *fd = ctx;
	const char *p = buf;

	while (len) {
		ssize_t n = write(*fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int feed(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;

	return store_unpack_write(s->u, buf, len);
}

static int export_file(const struct verify_source *src, int dirfd, const struct verify_entry *e)
{
	char objpath[STORE_OBJPATH_LEN];
	struct sink s = {NULL, -1};
	int r;

	s.fd = openat(dirfd, e->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s.fd < 0)
		return -errno;
	/* A chunked file is its chunks, each checked, then the whole (store/README.md "Chunks"). */
	for (size_t i = 0; i < (e->nchunks ? e->nchunks : 1); i++) {
		const struct verify_entry *o = e->nchunks ? &e->chunks[i] : e;

		store_unpack_free(s.u);
		s.u = NULL;
		r = store_unpack_new(o->hash, o->size, o->zsize, write_out, &s.fd, &s.u);
		if (r < 0)
			goto out;
		store_object_path(o->hash, objpath);
		r = src->stream(src->ctx, objpath, o->zsize, feed, &s);
		if (r >= 0)
			r = store_unpack_finish(s.u);
		if (r < 0) {
			stork_error_prefix("%s (%s): ", e->path, objpath);
			goto out;
		}
	}
	if (e->nchunks) {
		struct verify_hash *h = NULL;
		uint8_t buf[65536], got[VERIFY_HASH_LEN];
		ssize_t n;
		off_t at = 0;

		r = verify_hash_new(&h);
		while (r == 0 && (n = pread(s.fd, buf, sizeof(buf), at)) > 0) {
			r = verify_hash_update(h, buf, (size_t)n);
			at += n;
		}
		if (r == 0)
			r = verify_hash_final(h, got);
		verify_hash_free(h);
		if (r == 0 && memcmp(got, e->hash, VERIFY_HASH_LEN) != 0) {
			stork_errorf("%s: its chunks do not hash to the file's SHA-256", e->path);
			r = STORK_EBADHASH;
		}
		if (r < 0)
			goto out;
	}
	if (fchmod(s.fd, e->mode) < 0) {
		r = -errno;
		goto out;
	}
	{
		struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};

		if (futimens(s.fd, ts) < 0) {
			r = -errno;
			goto out;
		}
	}
out:
	store_unpack_free(s.u);
	if (s.fd >= 0)
		close(s.fd);
	return r;
}

int main(int argc, char **argv)
{
	struct verify_source src = {0};
	struct verify_client *c = NULL;
	struct verify_target t = {0};
	struct verify_manifest *m = NULL;
	uint8_t *root = NULL;
	size_t rootlen = 0;
	char *tpath = NULL;
	int dirfd = -1, r, code = 3;

	if (argc != 7 || strcmp(argv[1], "--root")) {
		fprintf(stderr, "usage: repo-export --root ROOTFILE REPO NAME VERSION DESTDIR\n");
		return 2;
	}
	r = read_all(argv[2], &root, &rootlen);
	if (r < 0) {
		fprintf(stderr, "repo-export: %s: %s\n", argv[2], strerror(-r));
		return 2;
	}
	r = fetch_source_init(&src, argv[3], NULL);
	if (r < 0)
		goto fail;
	r = verify_client_new(root, rootlen, time(NULL), &c);
	if (r < 0)
		goto fail;
	r = verify_client_refresh(c, &src);
	if (r < 0)
		goto fail;
	tpath = verify_target_path(argv[4], argv[5]);
	if (!tpath) {
		r = -ENOMEM;
		goto fail;
	}
	r = verify_client_find_target(c, &src, tpath, &t);
	if (r < 0)
		goto fail;
	r = verify_client_fetch_manifest(c, &src, &t, &m);
	if (r < 0)
		goto fail;
	if (mkdir(argv[6], 0755) < 0 && errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	dirfd = open(argv[6], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		goto fail;
	}
	for (size_t i = 0; i < m->n; i++) {
		const struct verify_entry *e = &m->entries[i];

		switch (e->type) {
		case VERIFY_DIR:
			r = mkdirat(dirfd, e->path, 0700) < 0 ? -errno : 0;
			break;
		case VERIFY_SYMLINK:
			r = symlinkat(e->target, dirfd, e->path) < 0 ? -errno : 0;
			if (r == 0) {
				struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};

				r = utimensat(dirfd, e->path, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno
											   : 0;
			}
			break;
		case VERIFY_FILE:
			r = export_file(&src, dirfd, e);
			break;
		}
		if (r < 0) {
			stork_error_prefix("%s: ", e->path);
			goto fail;
		}
	}
	/* Directory modes and times last, children first, so that writing into them works and
	 * their mtimes stay as published. */
	for (size_t i = m->n; i-- > 0;) {
		const struct verify_entry *e = &m->entries[i];
		struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};

		if (e->type != VERIFY_DIR)
			continue;
		if (fchmodat(dirfd, e->path, e->mode, 0) < 0 ||
		    utimensat(dirfd, e->path, ts, 0) < 0) {
			r = -errno;
			goto fail;
		}
	}
	code = 0;
	goto out;
fail:
	fprintf(stderr, "repo-export: %s: %s\n", storkfs_strerror(r), stork_error_detail());
	code = r <= -20000 ? 1 : 3;
out:
	if (dirfd >= 0)
		close(dirfd);
	verify_manifest_free(m);
	verify_target_fini(&t);
	free(tpath);
	verify_client_free(c);
	fetch_source_fini(&src);
	free(root);
	return code;
}
