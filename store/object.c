/* store/object.c: repository objects read back under their signed description.
 *
 * An object is objects/<2 hex>/<64 hex>: the zstd compression of a file's bytes, named by the
 * SHA-256 of the uncompressed bytes (store/README.md); the publisher writes them
 * (store/import/objwriter.c). The unpacker never trusts the bytes it is given: it stops at the
 * signed compressed and uncompressed sizes and only its finish step says the content matches
 * the hash.
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

#define OBJDIR "objects"
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
	size_t fill; /* unpacked bytes in buf not yet handed to out */
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

/* What both kinds of unpacker start with. @return NULL: no memory. */
static struct store_unpack *unpack_alloc(const uint8_t hash[VERIFY_HASH_LEN], uint64_t size,
					 uint64_t zsize,
					 int (*out)(void *ctx, const void *buf, size_t len),
					 void *ctx)
{
	struct store_unpack *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	memcpy(u->hash, hash, VERIFY_HASH_LEN);
	u->size = size;
	u->zsize = zsize;
	u->out = out;
	u->ctx = ctx;
	return u;
}

int store_unpack_new(const uint8_t hash[VERIFY_HASH_LEN], uint64_t size, uint64_t zsize,
		     int (*out)(void *ctx, const void *buf, size_t len), void *ctx,
		     struct store_unpack **ret_u)
{
	struct store_unpack *u = unpack_alloc(hash, size, zsize, out, ctx);

	if (!u)
		return -ENOMEM;
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
	struct store_unpack *u = unpack_alloc(hash, size, size, out, ctx);

	if (!u)
		return -ENOMEM;
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

/* Hand what buf gathered to out. */
static int unpack_flush(struct store_unpack *u)
{
	int r;

	if (u->out && u->fill) {
		r = u->out(u->ctx, u->buf, u->fill);
		if (r < 0)
			return unpack_fail(u, r);
	}
	u->fill = 0;
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

	/* Keep going while input remains or the decoder may still hold output. The output
	 * gathers in buf across calls and goes to out when buf is full (and at the end): a
	 * network chunk unpacks to a few KiB, and a file written in such pieces is cached in
	 * pages of that size, where whole-buffer writes get the large folios a sequential read
	 * of the store object then copies from fastest (FUSE passthrough reads it directly). */
	while (in.pos < in.size || full) {
		ZSTD_outBuffer out = {u->buf, u->cap, u->fill};
		size_t inpos = in.pos, got;
		size_t rem = ZSTD_decompressStream(u->dctx, &out, &in);

		if (ZSTD_isError(rem)) {
			stork_errorf("object: corrupt zstd data: %s", ZSTD_getErrorName(rem));
			return unpack_fail(u, STORK_EFORMAT);
		}
		/* A call that moved nothing (flushing after a frame ended) only hints at a
		 * next frame: it does not reopen the finished one. */
		got = out.pos - u->fill;
		if (in.pos != inpos || got > 0)
			u->last = rem;
		full = out.pos == out.size;
		if (got > u->size - u->uout) {
			stork_errorf("object: unpacks to more than the %llu bytes its manifest "
				     "states",
				     (unsigned long long)u->size);
			return unpack_fail(u, STORK_EBADLEN);
		}
		u->uout += got;
		r = verify_hash_update(u->h, (const uint8_t *)u->buf + u->fill, got);
		if (r < 0)
			return unpack_fail(u, r);
		u->fill = out.pos;
		if (full) {
			r = unpack_flush(u);
			if (r < 0)
				return r;
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
	r = unpack_flush(u);
	if (r < 0)
		return r;
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
