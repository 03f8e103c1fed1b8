/* store/import/objwriter.c: repository objects, written atomically (the publisher's side).
 *
 * An object is objects/<2 hex>/<64 hex>: the zstd compression of a file's bytes, named by the
 * SHA-256 of the uncompressed bytes (store/README.md). The writer hashes and compresses into
 * objects/.tmp-XXXXXX, fsyncs, and moves the file to its name without ever replacing an object
 * that is already there: two publishers writing the same content race harmlessly. Reading them
 * back is the node's side (store/object.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "store/import/import.h"

#define OBJDIR	   "objects"
#define TMP_PREFIX ".tmp-"
#define TMP_TRIES  100

/* ------------------------------------------------------------------------------------------ */
/* Writing. */

struct store_objwriter {
	int dirfd; /* objects/ */
	int fd;	   /* the temporary file */
	char tmpname[sizeof(TMP_PREFIX) + 6];
	ZSTD_CCtx *cctx;
	struct verify_hash *h;
	uint64_t size;	/* uncompressed bytes so far */
	uint64_t zsize; /* compressed bytes written so far */
	void *zbuf;
	size_t zcap;
};

/* Objects and their directories are world-readable whatever the umask: a static web server
 * serves them. */
static int mkdir_ok(int dirfd, const char *name, bool *ret_created)
{
	if (mkdirat(dirfd, name, 0755) == 0) {
		*ret_created = true;
		if (fchmodat(dirfd, name, 0755, 0) < 0)
			return -errno;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	*ret_created = false;
	return 0;
}

/* fsync a directory given by any descriptor (O_PATH ones cannot be synced themselves). */
static int sync_dir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int open_tmp(struct store_objwriter *w)
{
	static const char chars[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t rnd[6];
	int i, j;

	for (i = 0; i < TMP_TRIES; i++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return errno ? -errno : -EIO;
		memcpy(w->tmpname, TMP_PREFIX, sizeof(TMP_PREFIX) - 1);
		for (j = 0; j < 6; j++)
			w->tmpname[sizeof(TMP_PREFIX) - 1 + j] =
			    chars[rnd[j] % (sizeof(chars) - 1)];
		w->tmpname[sizeof(TMP_PREFIX) - 1 + 6] = '\0';
		w->fd = openat(w->dirfd, w->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (w->fd >= 0)
			return fchmod(w->fd, 0644) < 0 ? -errno : 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static __thread ZSTD_CCtx *tl_cctx;

void store_objwriter_thread_done(void)
{
	ZSTD_freeCCtx(tl_cctx);
	tl_cctx = NULL;
}

int store_objwriter_new(int repofd, struct store_objwriter **ret_w)
{
	struct store_objwriter *w;
	bool created = false;
	size_t zr;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->dirfd = -1;
	w->fd = -1;

	r = mkdir_ok(repofd, OBJDIR, &created);
	if (r < 0) {
		stork_errorf(OBJDIR ": cannot create the object directory: %s", strerror(-r));
		goto fail;
	}
	w->dirfd = openat(repofd, OBJDIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		r = -errno;
		stork_errorf(OBJDIR ": cannot open the object directory: %s", strerror(-r));
		goto fail;
	}
	if (created) {
		r = sync_dir(repofd);
		if (r < 0) {
			stork_errorf(OBJDIR ": cannot sync the repository directory: %s",
				     strerror(-r));
			goto fail;
		}
	}
	r = open_tmp(w);
	if (r < 0) {
		stork_errorf(OBJDIR ": cannot create a temporary file: %s", strerror(-r));
		goto fail;
	}
	r = verify_hash_new(&w->h);
	if (r < 0)
		goto fail;
	/* A compressor per thread, reused: making one costs more than compressing a small
	 * file. */
	w->cctx = tl_cctx ? tl_cctx : ZSTD_createCCtx();
	tl_cctx = NULL;
	if (w->cctx)
		ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_and_parameters);
	w->zcap = ZSTD_CStreamOutSize();
	w->zbuf = malloc(w->zcap);
	if (!w->cctx || !w->zbuf) {
		r = -ENOMEM;
		goto fail;
	}
	zr = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, STORE_ZSTD_LEVEL);
	if (ZSTD_isError(zr)) {
		r = -EIO;
		stork_errorf("zstd: cannot set level %d: %s", STORE_ZSTD_LEVEL,
			     ZSTD_getErrorName(zr));
		goto fail;
	}
	*ret_w = w;
	return 0;
fail:
	store_objwriter_abort(w);
	return r;
}

/* Run the compressor over in (may be empty) with the given directive, writing what it
 * produces. For ZSTD_e_end, loops until the frame is complete. */
static int compress(struct store_objwriter *w, const void *buf, size_t len, ZSTD_EndDirective end)
{
	ZSTD_inBuffer in = {buf, len, 0};
	bool done = false;
	int r;

	while (!done) {
		ZSTD_outBuffer out = {w->zbuf, w->zcap, 0};
		size_t rem = ZSTD_compressStream2(w->cctx, &out, &in, end);

		if (ZSTD_isError(rem)) {
			stork_errorf(OBJDIR "/%s: zstd: %s", w->tmpname, ZSTD_getErrorName(rem));
			return -EIO;
		}
		if (out.pos > 0) {
			r = verify_write_all(w->fd, w->zbuf, out.pos);
			if (r < 0) {
				stork_errorf(OBJDIR "/%s: write: %s", w->tmpname, strerror(-r));
				return r;
			}
			w->zsize += out.pos;
		}
		if (end == ZSTD_e_end)
			done = rem == 0;
		else
			done = in.pos == in.size;
	}
	return 0;
}

int store_objwriter_write(struct store_objwriter *w, const void *buf, size_t len)
{
	int r;

	if (len == 0)
		return 0;
	r = verify_hash_update(w->h, buf, len);
	if (r < 0)
		return r;
	r = compress(w, buf, len, ZSTD_e_continue);
	if (r < 0)
		return r;
	w->size += len;
	return 0;
}

/* Move the finished temporary file to sub/name without replacing anything. @return 0;
 * -EEXIST if the name is taken; -errno. */
static int publish(struct store_objwriter *w, int subfd, const char *name)
{
	if (renameat2(w->dirfd, w->tmpname, subfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: link() never replaces either. */
	if (linkat(w->dirfd, w->tmpname, subfd, name, 0) < 0)
		return -errno;
	if (unlinkat(w->dirfd, w->tmpname, 0) < 0)
		return -errno;
	return 0;
}

int store_objwriter_commit(struct store_objwriter *w, uint8_t ret_hash[VERIFY_HASH_LEN],
			   uint64_t *ret_size, uint64_t *ret_zsize, bool *ret_new)
{
	uint8_t hash[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], sub[3], rel[3 + VERIFY_HASH_HEX];
	uint64_t zsize;
	bool created = false, is_new = true;
	struct stat st;
	int subfd = -1, r;

	r = compress(w, NULL, 0, ZSTD_e_end);
	if (r < 0)
		goto out;
	r = verify_hash_final(w->h, hash);
	verify_hash_free(w->h);
	w->h = NULL;
	if (r < 0)
		goto out;
	verify_hex(hash, VERIFY_HASH_LEN, hex);
	memcpy(sub, hex, 2);
	sub[2] = '\0';
	/* Content stored before (the common case when publishing a new version): keep that
	 * object and drop ours without paying for an fsync. A race with another writer is
	 * settled by publish() below. */
	snprintf(rel, sizeof(rel), "%s/%s", sub, hex);
	if (fstatat(w->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
		memcpy(ret_hash, hash, VERIFY_HASH_LEN);
		*ret_size = w->size;
		*ret_zsize = (uint64_t)st.st_size;
		*ret_new = false;
		r = 0;
		goto out;
	}
	if (fsync(w->fd) < 0 || close(w->fd) < 0) {
		r = -errno;
		w->fd = -1;
		stork_errorf(OBJDIR "/%s: cannot write: %s", w->tmpname, strerror(-r));
		goto out;
	}
	w->fd = -1;

	r = mkdir_ok(w->dirfd, sub, &created);
	if (r < 0) {
		stork_errorf(OBJDIR "/%s: cannot create: %s", sub, strerror(-r));
		goto out;
	}
	subfd = openat(w->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (subfd < 0) {
		r = -errno;
		if (r == -ENOTDIR)
			stork_errorf(OBJDIR
				     "/%s: not a directory, where the directory of the objects "
				     "%s... belongs: move it away and publish again",
				     sub, sub);
		else
			stork_errorf(OBJDIR "/%s: cannot open: %s", sub, strerror(-r));
		goto out;
	}
	zsize = w->zsize;
	r = publish(w, subfd, hex);
	if (r == -EEXIST) {
		/* Someone stored this content before us: theirs stays, ours goes. */
		if (fstatat(subfd, hex, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			stork_errorf(OBJDIR "/%s/%s: %s", sub, hex, strerror(-r));
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			r = -EEXIST;
			stork_errorf(OBJDIR "/%s/%s: exists and is not a regular file", sub, hex);
			goto out;
		}
		zsize = (uint64_t)st.st_size;
		is_new = false;
		r = 0;
	} else if (r < 0) {
		stork_errorf(OBJDIR "/%s/%s: cannot rename the temporary file into place: %s", sub,
			     hex, strerror(-r));
		goto out;
	} else {
		w->tmpname[0] = '\0'; /* gone: nothing to remove */
		if (fsync(subfd) < 0 || (created && fsync(w->dirfd) < 0)) {
			r = -errno;
			stork_errorf(OBJDIR "/%s: cannot sync the directory: %s", sub,
				     strerror(-r));
			goto out;
		}
	}

	memcpy(ret_hash, hash, VERIFY_HASH_LEN);
	*ret_size = w->size;
	*ret_zsize = zsize;
	*ret_new = is_new;
out:
	if (subfd >= 0)
		close(subfd);
	store_objwriter_abort(w);
	return r;
}

void store_objwriter_abort(struct store_objwriter *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->dirfd >= 0) {
		if (w->tmpname[0])
			unlinkat(w->dirfd, w->tmpname, 0);
		close(w->dirfd);
	}
	verify_hash_free(w->h);
	if (!tl_cctx)
		tl_cctx = w->cctx;
	else
		ZSTD_freeCCtx(w->cctx);
	free(w->zbuf);
	free(w);
}

int store_objwriter_finish(struct store_objwriter *w, uint8_t ret_hash[VERIFY_HASH_LEN],
			   uint64_t *ret_size, uint64_t *ret_zsize, struct store_objpending *ret_p,
			   bool *ret_pending)
{
	uint8_t hash[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], rel[3 + VERIFY_HASH_HEX];
	struct stat st;
	int r;

	r = compress(w, NULL, 0, ZSTD_e_end);
	if (r < 0)
		goto out;
	r = verify_hash_final(w->h, hash);
	if (r < 0)
		goto out;
	verify_hex(hash, VERIFY_HASH_LEN, hex);
	snprintf(rel, sizeof(rel), "%.2s/%s", hex, hex);
	memcpy(ret_hash, hash, VERIFY_HASH_LEN);
	*ret_size = w->size;
	if (fstatat(w->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
		*ret_zsize = (uint64_t)st.st_size;
		*ret_pending = false;
		goto out; /* stored before: ours goes */
	}
	if (close(w->fd) < 0) {
		r = -errno;
		w->fd = -1;
		stork_errorf(OBJDIR "/%s: cannot write: %s", w->tmpname, strerror(-r));
		goto out;
	}
	w->fd = -1;
	_Static_assert(sizeof(ret_p->tmpname) >= sizeof(w->tmpname), "pending names");
	memcpy(ret_p->tmpname, w->tmpname, sizeof(w->tmpname));
	memcpy(ret_p->hash, hash, VERIFY_HASH_LEN);
	ret_p->zsize = w->zsize;
	*ret_zsize = w->zsize;
	*ret_pending = true;
	w->tmpname[0] = '\0'; /* the caller's now */
out:
	store_objwriter_abort(w);
	return r;
}

/* fsync each pending file: where syncfs() is not there or fails. */
static int sync_each(int dirfd, const struct store_objpending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int fd = openat(dirfd, p[i].tmpname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;

		if (fd < 0 || fsync(fd) < 0)
			r = -errno;
		if (fd >= 0)
			close(fd);
		if (r < 0) {
			stork_errorf(OBJDIR "/%s: cannot sync: %s", p[i].tmpname, strerror(-r));
			return r;
		}
	}
	return 0;
}

int store_objwriter_commit_pending(int repofd, struct store_objpending *p, size_t n,
				   void (*fix)(void *ctx, const uint8_t hash[VERIFY_HASH_LEN],
					       uint64_t zsize),
				   void *ctx)
{
	struct store_objwriter w = {.fd = -1};
	int subfd[256], r = 0;
	bool dirty[256] = {false}, made = false;
	char hex[VERIFY_HASH_HEX], sub[3];
	struct stat st;

	for (size_t k = 0; k < 256; k++)
		subfd[k] = -1;
	if (n == 0)
		return 0;
	w.dirfd = openat(repofd, OBJDIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w.dirfd < 0) {
		r = -errno;
		stork_errorf(OBJDIR ": cannot open the object directory: %s", strerror(-r));
		return r;
	}
	/* One sync for the batch: every byte on disk before any name points at it. */
	if (syncfs(w.dirfd) < 0) {
		r = sync_each(w.dirfd, p, n);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int k = p[i].hash[0];
		bool created = false;

		verify_hex(p[i].hash, VERIFY_HASH_LEN, hex);
		memcpy(sub, hex, 2);
		sub[2] = '\0';
		if (subfd[k] < 0) {
			r = mkdir_ok(w.dirfd, sub, &created);
			made |= created;
			subfd[k] =
			    r < 0 ? -1 : openat(w.dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (subfd[k] < 0) {
				r = r < 0 ? r : -errno;
				stork_errorf(OBJDIR "/%s: cannot open: %s%s", sub, strerror(-r),
					     r == -ENOTDIR ? " (a file where the directory of the "
							     "objects belongs: move it away and "
							     "publish again)"
							   : "");
				goto out;
			}
		}
		memcpy(w.tmpname, p[i].tmpname, sizeof(w.tmpname));
		r = publish(&w, subfd[k], hex);
		if (r == -EEXIST) {
			/* Someone stored this content meanwhile: theirs stays, ours goes. */
			if (fstatat(subfd[k], hex, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode)) {
				r = -EEXIST;
				stork_errorf(OBJDIR "/%s/%s: exists and is not a regular file", sub,
					     hex);
				goto out;
			}
			unlinkat(w.dirfd, p[i].tmpname, 0);
			if ((uint64_t)st.st_size != p[i].zsize && fix)
				fix(ctx, p[i].hash, (uint64_t)st.st_size);
			r = 0;
		} else if (r < 0) {
			stork_errorf(OBJDIR
				     "/%s/%s: cannot rename the temporary file into place: %s",
				     sub, hex, strerror(-r));
			goto out;
		}
		p[i].tmpname[0] = '\0';
		dirty[k] = true;
	}
	for (size_t k = 0; k < 256; k++) {
		if (dirty[k] && fsync(subfd[k]) < 0) {
			r = -errno;
			stork_errorf(OBJDIR "/%02zx: cannot sync the directory: %s", k,
				     strerror(-r));
			goto out;
		}
	}
	if (made && fsync(w.dirfd) < 0) {
		r = -errno;
		stork_errorf(OBJDIR ": cannot sync the directory: %s", strerror(-r));
	}
out:
	for (size_t k = 0; k < 256; k++)
		if (subfd[k] >= 0)
			close(subfd[k]);
	close(w.dirfd);
	return r;
}

void store_objwriter_drop_pending(int repofd, struct store_objpending *p, size_t n)
{
	int dirfd = openat(repofd, OBJDIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dirfd < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (p[i].tmpname[0])
			unlinkat(dirfd, p[i].tmpname, 0);
	close(dirfd);
}
