/* store/import/packwrite.c: writing version packs into a repository (the publisher's side of
 * store/README.md, "Version packs"): the layout store_pack_layout gives, filled from the
 * repository's objects, written atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/import/import.h"
#include "verify/atomic.h"

#define COPY_BUF (256 * 1024)

struct packw {
	int repofd;
	const struct store_pack_entry *ents;
	size_t n;
	const char *path;
};

/* Copy one object's file (exactly its signed zsize bytes) to fd. */
static int copy_object(const struct packw *w, const struct store_pack_entry *pe, int fd,
		       uint8_t *buf)
{
	char opath[STORE_OBJPATH_LEN];
	uint64_t left = pe->e->zsize;
	struct stat st;
	int in, r = 0;

	store_object_path(pe->e->hash, opath);
	in = openat(w->repofd, opath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0) {
		r = -errno;
		stork_errorf("%s: %s: cannot open it: %s", w->path, opath, storkfs_strerror(r));
		return r;
	}
	if (fstat(in, &st) < 0) {
		r = -errno;
		stork_errorf("%s: %s: %s", w->path, opath, storkfs_strerror(r));
		goto out;
	}
	if ((uint64_t)st.st_size != pe->e->zsize) {
		stork_errorf("%s: %s: %lld bytes, but the manifest signs zsize %llu", w->path,
			     opath, (long long)st.st_size, (unsigned long long)pe->e->zsize);
		r = STORK_EBADLEN;
		goto out;
	}
	while (left > 0) {
		size_t want = left < COPY_BUF ? (size_t)left : COPY_BUF;
		ssize_t got = read(in, buf, want);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r = got < 0 ? -errno : -EIO;
			stork_errorf("%s: %s: cannot read it: %s", w->path, opath,
				     got < 0 ? storkfs_strerror(r) : "shorter than it was");
			goto out;
		}
		r = verify_write_all(fd, buf, (size_t)got);
		if (r < 0) {
			stork_errorf("%s: cannot write: %s", w->path, storkfs_strerror(r));
			goto out;
		}
		left -= (uint64_t)got;
	}
out:
	close(in);
	return r;
}

static int fill_pack(void *ctx, int fd)
{
	const struct packw *w = ctx;
	uint8_t *buf = malloc(COPY_BUF);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < w->n && r == 0; i++)
		r = copy_object(w, &w->ents[i], fd, buf);
	free(buf);
	return r;
}

/* mkdir (0755, whatever the umask) each directory of path below repofd. */
static int make_parents(int repofd, const char *path)
{
	char dir[4096];
	size_t len = strlen(path);
	int r;

	if (len >= sizeof(dir)) {
		stork_errorf("%s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(dir, path, len + 1);
	for (char *p = strchr(dir, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdirat(repofd, dir, 0755) == 0) {
			if (fchmodat(repofd, dir, 0755, 0) < 0)
				goto fail;
		} else if (errno != EEXIST) {
			goto fail;
		}
		*p = '/';
	}
	return 0;
fail:
	r = -errno;
	stork_errorf("%s: cannot make the directory: %s", dir, storkfs_strerror(r));
	return r;
}

/* Whether the file at path already holds exactly the pack: the objects' bytes, compared. */
static bool pack_matches(int repofd, const char *path, const struct store_pack_entry *ents,
			 size_t n)
{
	char opath[STORE_OBJPATH_LEN];
	uint8_t *a = malloc(STORE_PACK_MAX_ZSIZE), *b = malloc(STORE_PACK_MAX_ZSIZE);
	bool same = a && b;
	int fd = openat(repofd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	same = same && fd >= 0;
	for (size_t i = 0; i < n && same; i++) {
		size_t z = (size_t)ents[i].e->zsize;
		int ofd;

		store_object_path(ents[i].e->hash, opath);
		ofd = openat(repofd, opath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		same = ofd >= 0 && pread(ofd, a, z, 0) == (ssize_t)z &&
		       pread(fd, b, z, (off_t)ents[i].offset) == (ssize_t)z && !memcmp(a, b, z);
		if (ofd >= 0)
			close(ofd);
	}
	if (fd >= 0)
		close(fd);
	free(a);
	free(b);
	return same;
}

int store_pack_write(int repofd, const struct verify_manifest *m, const char *path,
		     bool *ret_written)
{
	struct store_pack_entry *ents = NULL;
	struct packw w = {.repofd = repofd, .path = path};
	struct stat st;
	uint64_t len = 0;
	size_t n = 0;
	int r;

	if (ret_written)
		*ret_written = false;
	r = store_pack_layout(m, &ents, &n, &len);
	if (r < 0)
		return r;
	if (n == 0)
		goto out; /* too few small objects to be worth a pack */
	if (fstatat(repofd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size == len && pack_matches(repofd, path, ents, n))
		goto out; /* a damaged one is written again */
	r = make_parents(repofd, path);
	if (r < 0)
		goto out;
	w.ents = ents;
	w.n = n;
	r = verify_write_atomic_fn(repofd, path, 0644, fill_pack, &w);
	if (r == 0 && ret_written)
		*ret_written = true;
out:
	free(ents);
	return r;
}
