/* fs/extract.c: materialise a package version as a directory tree.
 *
 * The tree is built in a hidden sibling directory and renamed into place, so the destination
 * appears whole or not at all. Files are hard links to the node store's immutable mode variants
 * when the destination is on the store's file system (as Stork shared packages between
 * slices), copies otherwise and where the variant cannot be made immutable or the file is
 * writable by everyone. Where the tree links is recorded in the store for fsck.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/fs.h"

#define TMP_PREFIX ".stork-extract-"

static int extract_copy(int objfd, int dirfd, const struct verify_entry *e)
{
	struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};
	int fd, r;

	fd = openat(dirfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	r = store_copy_file(objfd, fd, e->size);
	if (r == 0 && fchmod(fd, e->mode) < 0)
		r = -errno;
	if (r == 0 && futimens(fd, ts) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* A file stored by the piece (store/README.md "Chunks"): its chunks, each checked against its
 * own hash as it enters the store, copied one after the other (blocks of zeros left as holes)
 * and the whole checked against the file's hash. No object holds the whole file, so it is a
 * copy, never a link. */
static int extract_chunked(struct fs_repo *repo, int dirfd, const struct verify_entry *e,
			   const char *what, bool *ret_fetched)
{
	struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};
	struct verify_hash *h = NULL;
	uint8_t got[VERIFY_HASH_LEN], buf[64 * 1024];
	bool any = false;
	int fd, r;

	fd = openat(dirfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	r = verify_hash_new(&h);
	for (size_t i = 0; r == 0 && i < e->nchunks; i++) {
		const struct verify_entry *c = &e->chunks[i];
		uint64_t left = c->size;
		bool fetched = false;
		int objfd = -1;

		r = fs_repo_object(repo, c, what, &objfd, &fetched);
		if (r < 0)
			break;
		any |= fetched;
		while (r == 0 && left) {
			ssize_t n = read(objfd, buf, left < sizeof(buf) ? left : sizeof(buf));

			if (n <= 0) {
				r = n < 0 ? -errno : STORK_EBADLEN;
				if (n == 0)
					stork_errorf("chunk %zu at byte %llu: shorter than signed",
						     i, (unsigned long long)c->offset);
				break;
			}
			r = verify_hash_update(h, buf, (size_t)n);
			if (r == 0 && buf[0] == 0 && memcmp(buf, buf + 1, (size_t)n - 1) == 0) {
				/* zeros: a hole (the file's length is set at the end) */
				if (lseek(fd, n, SEEK_CUR) < 0)
					r = -errno;
			} else if (r == 0) {
				ssize_t w = write(fd, buf, (size_t)n);

				if (w != n)
					r = w < 0 ? -errno : -EIO;
			}
			left -= (uint64_t)n;
		}
		close(objfd);
	}
	if (r == 0)
		r = verify_hash_final(h, got);
	if (r == 0 && memcmp(got, e->hash, VERIFY_HASH_LEN) != 0) {
		stork_errorf("its chunks put together do not hash to the file's signed SHA-256");
		r = STORK_EBADHASH;
	}
	if (r == 0 && ftruncate(fd, (off_t)e->size) < 0)
		r = -errno;
	if (r == 0 && fchmod(fd, e->mode) < 0)
		r = -errno;
	if (r == 0 && futimens(fd, ts) < 0)
		r = -errno;
	verify_hash_free(h);
	close(fd);
	*ret_fetched = any;
	return r;
}

/* Remove a tree we built (a failed extract's, or one fs_extract_remove is asked to remove),
 * without following symlinks. */
static void remove_tree(int parentfd, const char *name)
{
	int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0) {
		store_unlink(parentfd, name);
		return;
	}
	fchmod(fd, 0700);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR)
			remove_tree(dirfd(d), de->d_name);
		else
			store_unlink(dirfd(d), de->d_name);
	}
	closedir(d);
	unlinkat(parentfd, name, AT_REMOVEDIR);
}

/* Leftovers of killed extracts into the same destination: their builder held an flock on the
 * directory, so one we can lock is dead. */
static void remove_stale(int parentfd, const char *base)
{
	char prefix[NAME_MAX + 1];
	struct dirent *de;
	DIR *d;
	int fd;

	if ((size_t)snprintf(prefix, sizeof(prefix), TMP_PREFIX "%s-", base) >= sizeof(prefix))
		return; /* no leftover can have so long a name */
	fd = dup(parentfd);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		int tfd;

		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		tfd = openat(parentfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (tfd < 0)
			continue;
		if (flock(tfd, LOCK_EX | LOCK_NB) == 0)
			remove_tree(parentfd, de->d_name);
		close(tfd);
	}
	closedir(d);
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

/* The first object fs_prefetch could not fetch from any source, reported as the extract's
 * error (as fs_repo_object's failure would be) instead of being asked for again. */
struct first_failure {
	pthread_mutex_t lock;
	int err;
	char *line; /* "NAME VERSION: PATH: what each source did" */
};

static void prefetch_failed(void *ctx, const char *what, const uint8_t id[VERIFY_HASH_LEN], int err,
			    const char *detail)
{
	struct first_failure *f = ctx;

	(void)id;
	pthread_mutex_lock(&f->lock);
	if (!f->line) {
		f->err = err;
		if (asprintf(&f->line, "%s: %s", what, *detail ? detail : storkfs_strerror(err)) <
		    0)
			f->line = NULL;
	}
	pthread_mutex_unlock(&f->lock);
}

/* Every missing object of m into the store the way `stork prefetch` does it: the version
 * pack when most small objects are missing, then the rest many at a time, committed in
 * batches. One object at a time would cost a request and three syncs per file. */
static int fetch_missing(struct fs_repo *r, const struct verify_manifest *m,
			 struct fs_extract_stats *st)
{
	struct first_failure f = {PTHREAD_MUTEX_INITIALIZER, 0, NULL};
	struct fs_prefetch_opts po = {.failed = prefetch_failed, .failed_ctx = &f};
	struct verify_manifest *ms[1] = {(struct verify_manifest *)m};
	struct fs_prefetch_progress p = {0};
	int ret;

	ret = fs_prefetch(r, ms, 1, &po, &p);
	st->fetched += p.fetched;
	if (ret < 0 && f.line) {
		stork_errorf("%s", f.line);
		ret = f.err;
	}
	free(f.line);
	pthread_mutex_destroy(&f.lock);
	return ret;
}

static int extract_entries(struct fs_repo *r, struct store *s, const struct verify_manifest *m,
			   int dirfd, struct store_links *links, struct fs_extract_stats *st)
{
	char *what = NULL;
	struct stat lst;
	int ret = 0;

	for (size_t i = 0; i < m->n && ret == 0; i++) {
		const struct verify_entry *e = &m->entries[i];
		struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};
		bool fetched = false;
		int objfd = -1;

		switch (e->type) {
		case VERIFY_DIR:
			ret = mkdirat(dirfd, e->path, 0700) < 0 ? -errno : 0;
			st->dirs++;
			break;
		case VERIFY_SYMLINK:
			ret = symlinkat(e->target, dirfd, e->path) < 0 ? -errno : 0;
			if (ret == 0 && utimensat(dirfd, e->path, ts, AT_SYMLINK_NOFOLLOW) < 0)
				ret = -errno;
			st->symlinks++;
			break;
		case VERIFY_FILE:
			free(what);
			if (asprintf(&what, "%s %s: %s", m->name, m->version, e->path) < 0) {
				what = NULL;
				ret = -ENOMEM;
				break;
			}
			if (e->nchunks) {
				ret = extract_chunked(r, dirfd, e, what, &fetched);
				st->fetched += fetched;
				st->files++;
				st->bytes += e->size;
				st->copied += ret == 0;
				break;
			}
			ret = fs_repo_object(r, e, what, &objfd, &fetched);
			if (ret < 0)
				break;
			st->fetched += fetched;
			st->files++;
			st->bytes += e->size;
			ret = -EXDEV;
			if (links)
				ret = store_object_link(s, e->hash, e->mode, dirfd, e->path);
			if (ret == 0) {
				st->linked++;
				ret = fstatat(dirfd, e->path, &lst, AT_SYMLINK_NOFOLLOW) < 0
					  ? -errno
					  : 0;
				if (ret == 0)
					ret = store_links_add(links, e->hash, e->mode, lst.st_ino,
							      e->path);
			} else if (ret == -EXDEV) {
				stork_error_clear();
				ret = extract_copy(objfd, dirfd, e);
				st->copied += ret == 0;
			}
			close(objfd);
			break;
		}
		if (ret < 0)
			stork_error_prefix("%s %s: %s: ", m->name, m->version, e->path);
	}
	free(what);
	/* Directory modes and times last, children first, so that building inside them works
	 * and their mtimes stay as published. */
	for (size_t i = m->n; ret == 0 && i-- > 0;) {
		const struct verify_entry *e = &m->entries[i];
		struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};

		if (e->type != VERIFY_DIR)
			continue;
		if (fchmodat(dirfd, e->path, e->mode, 0) < 0 ||
		    utimensat(dirfd, e->path, ts, 0) < 0)
			ret = -errno;
	}
	return ret;
}

int fs_extract(struct fs_repo *r, const struct verify_manifest *m, const char *destdir,
	       struct fs_extract_stats *ret_stats)
{
	struct fs_extract_stats st = {0};
	struct store *s = fs_repo_store(r);
	char *copy1 = NULL, *copy2 = NULL, *tmpl = NULL, *absdest = NULL, *absparent = NULL;
	struct store_links *links = NULL;
	const char *parent, *base;
	struct stat pst, sst;
	int parentfd = -1, tmpfd = -1, ret;
	bool built = false, recorded = false;

	copy1 = strdup(destdir);
	copy2 = strdup(destdir);
	if (!copy1 || !copy2) {
		ret = -ENOMEM;
		goto out;
	}
	parent = dirname(copy1);
	base = basename(copy2);
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
		stork_errorf("%s: not a usable destination directory name", destdir);
		ret = -EINVAL;
		goto out;
	}
	if (access(destdir, F_OK) == 0 && !dir_empty(destdir)) {
		stork_errorf("%s: exists and is not empty; extract into a new directory", destdir);
		ret = -EEXIST;
		goto out;
	}
	parentfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parentfd < 0) {
		ret = -errno;
		stork_errorf("%s: %s", parent, storkfs_strerror(ret));
		goto out;
	}
	remove_stale(parentfd, base);
	absparent = realpath(parent, NULL);
	if (!absparent ||
	    asprintf(&absdest, "%s/%s", strcmp(absparent, "/") ? absparent : "", base) < 0 ||
	    asprintf(&tmpl, "%s/" TMP_PREFIX "%s-XXXXXX", parent, base) < 0) {
		ret = -ENOMEM;
		absdest = tmpl = NULL;
		goto out;
	}
	if (!mkdtemp(tmpl)) {
		ret = -errno;
		stork_errorf("%s: cannot create a directory next to it: %s", destdir,
			     storkfs_strerror(ret));
		goto out;
	}
	built = true;
	tmpfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tmpfd < 0 || flock(tmpfd, LOCK_EX) < 0) {
		ret = -errno;
		goto out;
	}
	ret = fstat(tmpfd, &pst) < 0 || stat(store_dir(s), &sst) < 0 ? -errno : 0;
	if (ret < 0)
		goto out;
	ret = fetch_missing(r, m, &st);
	if (ret < 0)
		goto out;
	/* Links only on the store's file system, and only where the record of them (for fsck)
	 * can say where the tree is. */
	if (pst.st_dev == sst.st_dev && !strchr(absdest, '\n')) {
		ret = store_links_new(s, &links);
		if (ret < 0)
			goto out;
	}
	ret = extract_entries(r, s, m, tmpfd, links, &st);
	if (ret < 0)
		goto out;
	if (st.linked > 0) {
		/* The variants made for the links were not synced one by one: once for all,
		 * before the tree appears. Then the record of where it links. */
		if (syncfs(tmpfd) < 0) {
			ret = -errno;
			stork_errorf("%s: cannot sync: %s", tmpl, storkfs_strerror(ret));
			goto out;
		}
		ret = store_links_commit(links, absdest);
		if (ret < 0)
			goto out;
		recorded = true;
	}
	/* The package root gets the manifest's "" mode if it had one; 0755 otherwise. */
	if (fchmod(tmpfd, 0755) < 0) {
		ret = -errno;
		goto out;
	}
	rmdir(destdir); /* an empty destination may exist */
	if (rename(tmpl, destdir) < 0) {
		ret = -errno;
		stork_errorf("%s: %s", destdir, storkfs_strerror(ret));
		goto out;
	}
	built = false;
	recorded = false;
	if (ret_stats)
		*ret_stats = st;
	ret = 0;
out:
	if (recorded)
		store_links_forget(s, absdest);
	store_links_free(links);
	if (built)
		remove_tree(AT_FDCWD, tmpl);
	if (tmpfd >= 0)
		close(tmpfd);
	if (parentfd >= 0)
		close(parentfd);
	free(copy1);
	free(copy2);
	free(tmpl);
	free(absdest);
	free(absparent);
	return ret;
}

int fs_extract_remove(struct store *s, const char *destdir)
{
	char *abs = realpath(destdir, NULL);
	struct stat st;
	int ret;

	if (!abs) {
		ret = -errno;
		stork_errorf("%s: %s", destdir, storkfs_strerror(ret));
		return ret;
	}
	if (lstat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		stork_errorf("%s: not a directory", destdir);
		free(abs);
		return -ENOTDIR;
	}
	remove_tree(AT_FDCWD, abs);
	ret = access(abs, F_OK) == 0 ? -ENOTEMPTY : 0;
	if (ret < 0)
		stork_errorf("%s: could not remove everything in it", destdir);
	else
		store_links_forget(s, abs);
	free(abs);
	return ret;
}
