/* store/import/dir.c: importing a directory tree.
 *
 * The walk never follows a symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW) and checks that what it
 * opens is what it stat'ed, so a tree changed under it fails with -EAGAIN instead of pulling in
 * something else. Its stack of open directories lives on the heap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/import/internal.h"

struct fd_reader {
	int fd;
};

static ssize_t fd_rd(struct imp *im, void *ctx, const char *path, void *buf, size_t len)
{
	struct fd_reader *fr = ctx;

	for (;;) {
		ssize_t n = read(fr->fd, buf, len);

		if (n >= 0) {
			__atomic_add_fetch(&im->dir_done, (uint64_t)n, __ATOMIC_RELAXED);
			return n;
		}
		if (errno != EINTR)
			return import_fail(im, -errno, path, "read: %s", strerror(errno));
	}
}

static int dir_file(struct imp *im, int dfd, const char *name, const char *path,
		    const struct stat *st)
{
	struct fd_reader fr;
	struct stat st2;
	struct obj o = {0};
	int r;

	r = import_check_size(im, path, (uint64_t)st->st_size);
	if (r < 0)
		return r;
	/* O_NONBLOCK: something swapped in for the file must not make us wait. */
	fr.fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fr.fd < 0)
		return import_fail(im, -errno, path, "open: %s", strerror(errno));
	if (fstat(fr.fd, &st2) < 0) {
		r = import_fail(im, -errno, path, "stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st2.st_mode) || st2.st_ino != st->st_ino || st2.st_dev != st->st_dev) {
		r = import_fail(im, -EAGAIN, path, "replaced while being read");
		goto out;
	}
	if (im->pool && (im->whole || (uint64_t)st->st_size <= STORE_CHUNK_FILE_MIN)) {
		/* A worker reads, hashes and compresses it; the entry's hash and compressed
		 * size are filled in when the workers are done (import_pool_finish). A big file
		 * is cut into chunks here, on the walk's thread, while the workers go on. */
		memset(&o, 0, sizeof(o));
		o.size = (uint64_t)st->st_size;
		r = import_add_file(im, path, st->st_mode, st->st_mtim.tv_sec, &o);
		if (r < 0)
			goto out;
		r = import_pool_file(im, fr.fd, path, o.size, im->m->n - 1);
		fr.fd = -1; /* the worker's */
		goto out;
	}
	r = import_store_data(im, path, fd_rd, &fr, &o);
	if (r < 0)
		goto out;
	if (o.size != (uint64_t)st->st_size) {
		r = import_fail(im, -EAGAIN, path,
				"changed while being read (%lld bytes, read %llu)",
				(long long)st->st_size, (unsigned long long)o.size);
		goto out;
	}
	r = import_add_file(im, path, st->st_mode, st->st_mtim.tv_sec, &o);
out:
	import_obj_fini(&o);
	if (fr.fd >= 0)
		close(fr.fd);
	return r;
}

static int dir_symlink(struct imp *im, int dfd, const char *name, const char *path,
		       const struct stat *st)
{
	char target[PATH_MAX_LEN + 2];
	ssize_t n;

	n = readlinkat(dfd, name, target, sizeof(target));
	if (n < 0)
		return import_fail(im, -errno, path, "readlink: %s", strerror(errno));
	if ((size_t)n >= sizeof(target) - 1)
		return import_fail(
		    im, STORK_EHOSTILE, path,
		    "symlink target longer than %d bytes, the most a system call takes",
		    PATH_MAX_LEN);
	target[n] = '\0';
	return import_add_symlink(im, path, st->st_mode, st->st_mtim.tv_sec, target);
}

/* One directory being read; the walk keeps a stack of them on the heap, so a deep tree costs
 * memory and descriptors (EMFILE ends it with an error), never the C stack. */
struct frame {
	DIR *d;
	size_t len; /* bytes of its path in the walk's path buffer */
};

/* Open the directory `name` in parent as a new frame, checking it is the one stat'ed. */
static int push_dir(struct imp *im, struct frame **stack, size_t *n, size_t *cap, int parent,
		    const char *name, const char *path, size_t len, const struct stat *st)
{
	struct stat cst;
	DIR *d;
	int fd;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct frame *ns = realloc(*stack, ncap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		*stack = ns;
		*cap = ncap;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return import_fail(im, -errno, len ? path : NULL, "open: %s", strerror(errno));
	if (st && (fstat(fd, &cst) < 0 || cst.st_ino != st->st_ino || cst.st_dev != st->st_dev)) {
		close(fd);
		return import_fail(im, -EAGAIN, path, "replaced while being read");
	}
	d = fdopendir(fd);
	if (!d) {
		int r = import_fail(im, -errno, len ? path : NULL, "opendir: %s", strerror(errno));

		close(fd);
		return r;
	}
	(*stack)[*n].d = d;
	(*stack)[*n].len = len;
	(*n)++;
	return 0;
}

/* One directory entry (its path already in path) of the directory open as dfd. Directories
 * are pushed onto the stack. */
static int walk_entry(struct imp *im, struct frame **stack, size_t *n, size_t *cap, int dfd,
		      const char *name, const char *path, size_t len)
{
	struct stat st;
	int r;

	r = import_check_name(im, path, name);
	if (r < 0)
		return r;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return import_fail(im, -errno, path, "stat: %s", strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		r = import_claim_path(im, path, SEEN_DIR);
		if (r == 0)
			r = import_add_dir(im, path, st.st_mode, st.st_mtim.tv_sec);
		if (r == 0)
			r = push_dir(im, stack, n, cap, dfd, name, path, len, &st);
		return r;
	}
	if (S_ISREG(st.st_mode)) {
		r = import_claim_path(im, path, SEEN_FILE);
		return r < 0 ? r : dir_file(im, dfd, name, path, &st);
	}
	if (S_ISLNK(st.st_mode)) {
		r = import_claim_path(im, path, SEEN_SYMLINK);
		return r < 0 ? r : dir_symlink(im, dfd, name, path, &st);
	}
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		return import_fail(im, STORK_EHOSTILE, path,
				   "device nodes are not allowed in packages");
	if (S_ISFIFO(st.st_mode))
		return import_fail(im, STORK_EHOSTILE, path, "fifos are not allowed in packages");
	if (S_ISSOCK(st.st_mode))
		return import_fail(im, STORK_EHOSTILE, path, "sockets are not allowed in packages");
	return import_fail(im, STORK_EHOSTILE, path, "unknown file type");
}

/* Walk the tree below the directory open as rootfd (not taken over). */
static int walk(struct imp *im, int rootfd)
{
	char path[PATH_MAX_LEN + 1] = "";
	struct frame *stack = NULL;
	size_t n = 0, cap = 0;
	int r;

	r = push_dir(im, &stack, &n, &cap, rootfd, ".", path, 0, NULL);
	while (r == 0 && n > 0) {
		struct frame *f = &stack[n - 1];
		size_t len = f->len, nlen, clen;
		struct dirent *de;
		const char *name;

		path[len] = '\0';
		errno = 0;
		de = readdir(f->d);
		if (!de) {
			if (errno) {
				r = import_fail(im, -errno, len ? path : NULL, "readdir: %s",
						strerror(errno));
				break;
			}
			closedir(f->d);
			n--;
			continue;
		}
		name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		nlen = strlen(name);
		clen = len + (len > 0) + nlen;
		if (clen > PATH_MAX_LEN) {
			r = import_fail(im, STORK_EHOSTILE, len ? path : name,
					"a path below it is longer than %d bytes", PATH_MAX_LEN);
			break;
		}
		if (len > 0)
			path[len] = '/';
		memcpy(path + len + (len > 0), name, nlen + 1);
		r = walk_entry(im, &stack, &n, &cap, dirfd(f->d), name, path, clen);
		import_report(im, false);
	}
	while (n > 0)
		closedir(stack[--n].d);
	free(stack);
	return r;
}

int import_dir(struct imp *im, int fd, const char *name, const char *version)
{
	int r, k;

	r = verify_manifest_new(name, version, "dir", &im->m);
	if (r < 0)
		return import_prefixed(im, r);
	import_pool_start(im);
	r = walk(im, fd);
	k = import_pool_finish(im, r == 0);
	return r < 0 ? r : k;
}
