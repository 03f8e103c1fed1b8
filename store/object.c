/* store/object.c: repository objects, written atomically and read back under their signed
 * description.
 *
 * An object is objects/<2 hex>/<64 hex>: the zstd compression of a file's bytes, named by the
 * SHA-256 of the uncompressed bytes (store/README.md). The writer hashes and compresses into
 * objects/.tmp-XXXXXX, fsyncs, and moves the file to its name without ever replacing an object
 * that is already there: two publishers writing the same content race harmlessly. The unpacker
 * never trusts the bytes it is given: it stops at the signed compressed and uncompressed sizes
 * and only its finish step says the content matches the hash.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "store/store.h"

#define OBJDIR	   "objects"
#define TMP_PREFIX ".tmp-"
#define TMP_TRIES  100
/* Largest zstd window an object may use (128 MiB); level 3 uses far less. */
#define WINDOW_LOG_MAX 27

void store_object_path(const uint8_t hash[VERIFY_HASH_LEN], char out[STORE_OBJPATH_LEN])
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(hash, VERIFY_HASH_LEN, hex);
	/* "objects/" + 2 + "/" + 64 + NUL: always fits STORE_OBJPATH_LEN. */
	snprintf(out, STORE_OBJPATH_LEN, OBJDIR "/%.2s/%s", hex, hex);
}

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

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

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
	w->cctx = ZSTD_createCCtx();
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
			r = write_all(w->fd, w->zbuf, out.pos);
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
	ZSTD_freeCCtx(w->cctx);
	free(w->zbuf);
	free(w);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading. */

struct store_unpack {
	uint8_t hash[VERIFY_HASH_LEN];
	uint64_t size, zsize;
	int (*out)(void *ctx, const void *buf, size_t len);
	void *ctx;
	ZSTD_DCtx *dctx;
	struct verify_hash *h;
	uint64_t zin;  /* compressed bytes accepted */
	uint64_t uout; /* uncompressed bytes produced */
	size_t last;   /* the decoder's last hint: 0 once a frame is complete */
	bool raw;      /* uncompressed input: no decoder, zsize == size */
	int err;       /* sticky: once failed, always failed */
	void *buf;
	size_t cap;
};

/* Decoders and their output buffers kept for the next object: a prefetch unpacks thousands
 * of small objects, and a fresh decoder (its workspace plus a 128 KiB buffer, mmap()ed and
 * faulted in anew each time) costs more than unpacking a small one. */
#define POOL_MAX 64

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	ZSTD_DCtx *dctx;
	void *buf;
} pool[POOL_MAX]; /* under pool_lock */
static size_t pool_n;

static void pool_get(struct store_unpack *u)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_n > 0) {
		pool_n--;
		u->dctx = pool[pool_n].dctx;
		u->buf = pool[pool_n].buf;
	}
	pthread_mutex_unlock(&pool_lock);
	u->cap = ZSTD_DStreamOutSize();
	if (u->dctx) {
		/* A decoder from the pool starts from scratch, parameters included. */
		ZSTD_DCtx_reset(u->dctx, ZSTD_reset_session_and_parameters);
		return;
	}
	u->dctx = ZSTD_createDCtx();
	u->buf = malloc(u->cap);
}

/* Keep u's decoder for the next object, or free it. */
static void pool_put(struct store_unpack *u)
{
	if (u->dctx && u->buf) {
		pthread_mutex_lock(&pool_lock);
		if (pool_n < POOL_MAX) {
			pool[pool_n].dctx = u->dctx;
			pool[pool_n].buf = u->buf;
			pool_n++;
			u->dctx = NULL;
			u->buf = NULL;
		}
		pthread_mutex_unlock(&pool_lock);
	}
	ZSTD_freeDCtx(u->dctx);
	free(u->buf);
	u->dctx = NULL;
	u->buf = NULL;
}

int store_unpack_new(const uint8_t hash[VERIFY_HASH_LEN], uint64_t size, uint64_t zsize,
		     int (*out)(void *ctx, const void *buf, size_t len), void *ctx,
		     struct store_unpack **ret_u)
{
	struct store_unpack *u;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	memcpy(u->hash, hash, VERIFY_HASH_LEN);
	u->size = size;
	u->zsize = zsize;
	u->out = out;
	u->ctx = ctx;
	u->last = 1; /* no frame seen yet */
	pool_get(u);
	if (!u->dctx || !u->buf || verify_hash_new(&u->h) < 0)
		goto nomem;
	if (ZSTD_isError(ZSTD_DCtx_setParameter(u->dctx, ZSTD_d_windowLogMax, WINDOW_LOG_MAX)))
		goto nomem;
	*ret_u = u;
	return 0;
nomem:
	store_unpack_free(u);
	return -ENOMEM;
}

int store_unpack_new_raw(const uint8_t hash[VERIFY_HASH_LEN], uint64_t size,
			 int (*out)(void *ctx, const void *buf, size_t len), void *ctx,
			 struct store_unpack **ret_u)
{
	struct store_unpack *u;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	memcpy(u->hash, hash, VERIFY_HASH_LEN);
	u->size = u->zsize = size;
	u->out = out;
	u->ctx = ctx;
	u->raw = true;
	if (verify_hash_new(&u->h) < 0) {
		store_unpack_free(u);
		return -ENOMEM;
	}
	*ret_u = u;
	return 0;
}

static int unpack_fail(struct store_unpack *u, int err)
{
	u->err = err;
	return err;
}

static int unpack_raw(struct store_unpack *u, const void *buf, size_t len)
{
	int r;

	if (len > u->size - u->uout) {
		stork_errorf("object: more than the %llu bytes its manifest states",
			     (unsigned long long)u->size);
		return unpack_fail(u, STORK_EBADLEN);
	}
	u->zin += len;
	u->uout += len;
	r = verify_hash_update(u->h, buf, len);
	if (r < 0)
		return unpack_fail(u, r);
	if (u->out && len) {
		r = u->out(u->ctx, buf, len);
		if (r < 0)
			return unpack_fail(u, r);
	}
	return 0;
}

int store_unpack_write(struct store_unpack *u, const void *buf, size_t len)
{
	ZSTD_inBuffer in = {buf, len, 0};
	bool full = false;
	int r;

	if (u->err)
		return u->err;
	if (u->raw)
		return unpack_raw(u, buf, len);
	if (len > u->zsize - u->zin) {
		stork_errorf("object: more than the %llu compressed bytes its manifest states",
			     (unsigned long long)u->zsize);
		return unpack_fail(u, STORK_EBADLEN);
	}
	u->zin += len;

	/* Keep going while input remains or the decoder may still hold output. */
	while (in.pos < in.size || full) {
		ZSTD_outBuffer out = {u->buf, u->cap, 0};
		size_t inpos = in.pos;
		size_t rem = ZSTD_decompressStream(u->dctx, &out, &in);

		if (ZSTD_isError(rem)) {
			stork_errorf("object: corrupt zstd data: %s", ZSTD_getErrorName(rem));
			return unpack_fail(u, STORK_EFORMAT);
		}
		/* A call that moved nothing (flushing after a frame ended) only hints at a
		 * next frame: it does not reopen the finished one. */
		if (in.pos != inpos || out.pos > 0)
			u->last = rem;
		full = out.pos == out.size;
		if (out.pos == 0)
			continue;
		if (out.pos > u->size - u->uout) {
			stork_errorf("object: unpacks to more than the %llu bytes its manifest "
				     "states",
				     (unsigned long long)u->size);
			return unpack_fail(u, STORK_EBADLEN);
		}
		u->uout += out.pos;
		r = verify_hash_update(u->h, u->buf, out.pos);
		if (r < 0)
			return unpack_fail(u, r);
		if (u->out) {
			r = u->out(u->ctx, u->buf, out.pos);
			if (r < 0)
				return unpack_fail(u, r);
		}
	}
	return 0;
}

int store_unpack_finish(struct store_unpack *u)
{
	uint8_t got[VERIFY_HASH_LEN];
	int r;

	if (u->err)
		return u->err;
	if (u->raw && u->uout != u->size) {
		stork_errorf("object: %llu bytes where its manifest states %llu",
			     (unsigned long long)u->uout, (unsigned long long)u->size);
		return unpack_fail(u, STORK_EBADLEN);
	}
	if (u->raw)
		goto hash;
	if (u->zin != u->zsize) {
		stork_errorf("object: %llu compressed bytes where its manifest states %llu",
			     (unsigned long long)u->zin, (unsigned long long)u->zsize);
		return unpack_fail(u, STORK_EBADLEN);
	}
	if (u->last != 0) {
		stork_errorf("object: the zstd stream ends in the middle of a frame");
		return unpack_fail(u, STORK_EFORMAT);
	}
	if (u->uout != u->size) {
		stork_errorf("object: unpacks to %llu bytes where its manifest states %llu",
			     (unsigned long long)u->uout, (unsigned long long)u->size);
		return unpack_fail(u, STORK_EBADLEN);
	}
hash:
	r = verify_hash_final(u->h, got);
	verify_hash_free(u->h);
	u->h = NULL;
	if (r < 0)
		return unpack_fail(u, r);
	if (memcmp(got, u->hash, VERIFY_HASH_LEN) != 0) {
		char want[VERIFY_HASH_HEX], have[VERIFY_HASH_HEX];

		verify_hex(u->hash, VERIFY_HASH_LEN, want);
		verify_hex(got, VERIFY_HASH_LEN, have);
		stork_errorf("object: content has SHA-256 %s where its manifest states %s", have,
			     want);
		return unpack_fail(u, STORK_EBADHASH);
	}
	/* Finished: further writes are errors. */
	u->err = -EINVAL;
	return 0;
}

void store_unpack_free(struct store_unpack *u)
{
	if (!u)
		return;
	pool_put(u);
	verify_hash_free(u->h);
	free(u);
}
