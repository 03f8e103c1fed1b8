/* fs/chunk.c: reading a big file stored by the piece (store/README.md "Chunks").
 *
 * A chunked file has no object of its own: its manifest entry lists its chunks, each an object
 * with its own hash. An open file keeps a copy of that list (so it outlives the version tree),
 * and a read maps [off, off + size) to the chunks it touches, opens each through the store
 * (fetched within the timeout when missing, checked against its hash like any object:
 * fsd_object_open) and splices the bytes it wants from them into the reply. A chunk nobody
 * can deliver fails the reads that touch it (EIO, logged once per read); other ranges still
 * read.
 *
 * Threads: FUSE may call reads of one open file at once. The few chunk descriptors an open
 * file keeps (a small cache, the chunks read last) are under its lock; a read holds the lock
 * only to look a descriptor up or to put one in, never across a fetch.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/daemon.h"

#define SLOTS 4 /* chunk descriptors an open file keeps */

struct fsd_chunked {
	struct verify_entry *chunks; /* copy of the entry's list */
	size_t nchunks;
	uint64_t size;
	uint8_t hash[VERIFY_HASH_LEN]; /* the whole file's (fs/whole.c) */
	char *what;		       /* "pkg ver: path", for the log */
	char *slice;	  /* the slice it was opened through (its fetch counter), or NULL */
	uint8_t *counted; /* a bit per chunk: counted as fetched for the slice (under lock) */
	pthread_mutex_t lock;
	struct slot {
		size_t idx;
		int fd; /* -1: empty */
		uint64_t used;
	} slots[SLOTS]; /* under lock */
	uint64_t tick;	/* under lock */
};

int fsd_chunked_open(const struct verify_entry *e, const char *what, const char *slice,
		     struct fsd_chunked **ret_h)
{
	struct fsd_chunked *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->chunks = malloc(e->nchunks * sizeof(*h->chunks));
	h->what = strdup(what);
	h->slice = slice ? strdup(slice) : NULL;
	h->counted = slice ? calloc(e->nchunks / 8 + 1, 1) : NULL;
	if (!h->chunks || !h->what || (slice && (!h->slice || !h->counted))) {
		free(h->chunks);
		free(h->what);
		free(h->slice);
		free(h->counted);
		free(h);
		return -ENOMEM;
	}
	memcpy(h->chunks, e->chunks, e->nchunks * sizeof(*h->chunks));
	for (size_t i = 0; i < e->nchunks; i++) {
		h->chunks[i].path = NULL;
		h->chunks[i].chunks = NULL;
		h->chunks[i].nchunks = 0;
	}
	h->nchunks = e->nchunks;
	h->size = e->size;
	memcpy(h->hash, e->hash, VERIFY_HASH_LEN);
	pthread_mutex_init(&h->lock, NULL);
	for (size_t i = 0; i < SLOTS; i++)
		h->slots[i].fd = -1;
	*ret_h = h;
	return 0;
}

void fsd_chunked_free(struct fsd_chunked *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < SLOTS; i++) {
		if (h->slots[i].fd >= 0) {
			posix_fadvise(h->slots[i].fd, 0, 0, POSIX_FADV_DONTNEED);
			close(h->slots[i].fd);
		}
	}
	pthread_mutex_destroy(&h->lock);
	free(h->chunks);
	free(h->what);
	free(h->slice);
	free(h->counted);
	free(h);
}

void fsd_chunked_entry(const struct fsd_chunked *h, struct verify_entry *ret_e,
		       const char **ret_what)
{
	memset(ret_e, 0, sizeof(*ret_e));
	ret_e->type = VERIFY_FILE;
	ret_e->size = h->size;
	memcpy(ret_e->hash, h->hash, VERIFY_HASH_LEN);
	ret_e->chunks = h->chunks;
	ret_e->nchunks = h->nchunks;
	*ret_what = h->what;
}

/* A descriptor of chunk i (a dup of the cached one, or a new one, then cached). */
static int chunk_fd(struct fsd *d, struct fsd_chunked *h, size_t i, int *ret_fd)
{
	const struct verify_entry *c = &h->chunks[i];
	char what[1200];
	bool fetched = false, count;
	int fd = -1, r, victim = 0;

	pthread_mutex_lock(&h->lock);
	for (int k = 0; k < SLOTS; k++) {
		if (h->slots[k].fd >= 0 && h->slots[k].idx == i) {
			h->slots[k].used = ++h->tick;
			fd = fcntl(h->slots[k].fd, F_DUPFD_CLOEXEC, 0);
			r = fd < 0 ? -errno : 0;
			pthread_mutex_unlock(&h->lock);
			if (r == 0)
				*ret_fd = fd;
			return r;
		}
	}
	pthread_mutex_unlock(&h->lock);

	snprintf(what, sizeof(what), "%s (chunk %zu of %zu, at %llu)", h->what, i, h->nchunks,
		 (unsigned long long)c->offset);
	r = fsd_object_open(d, NULL, 0, c, what, &fd, &fetched, false); /* a chunk's read */
	if (r < 0)
		return r;
	pthread_mutex_lock(&h->lock);
	/* Fetched on that slice's behalf: counted once, though the reads of one open file that
	 * touch the chunk at once all waited for its transfer. */
	count = fetched && h->slice && !(h->counted[i / 8] & (1U << (i % 8)));
	if (count)
		h->counted[i / 8] |= (uint8_t)(1U << (i % 8));
	for (int k = 0; k < SLOTS; k++) { /* an empty slot, else the least recently used */
		if (h->slots[k].fd < 0) {
			victim = k;
			break;
		}
		if (h->slots[k].used < h->slots[victim].used)
			victim = k;
	}
	int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (keep >= 0) {
		if (h->slots[victim].fd >= 0)
			close(h->slots[victim].fd);
		h->slots[victim] = (struct slot){i, keep, ++h->tick};
	}
	pthread_mutex_unlock(&h->lock);
	if (count)
		fsd_slice_count(d, h->slice, FSD_SC_FETCHED, 1);
	*ret_fd = fd;
	return 0;
}

int fsd_chunked_reply(fuse_req_t req, struct fsd *d, struct fsd_chunked *h, size_t size,
		      uint64_t off)
{
	const struct verify_entry list = {.chunks = h->chunks, .nchunks = h->nchunks};
	/* libfuse's vector holds one buffer; more follow it (as libfuse's examples do) */
	struct fuse_bufvec *bv = NULL;
	struct fuse_buf *b;
	size_t first, n, k = 0;
	uint64_t end;
	int r = 0;

	if (off >= h->size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	end = size > h->size - off ? h->size : off + size;
	/* A read touches 2 or 3 chunks (FUSE reads are at most 1 MiB by default, chunks at least
	 * 512 KiB but the last), more only with a larger max_read. */
	first = verify_entry_chunk_at(&list, off);
	n = verify_entry_chunk_at(&list, end - 1) - first + 1;
	bv = calloc(1, sizeof(*bv) + (n - 1) * sizeof(struct fuse_buf));
	if (!bv)
		return -ENOMEM;
	b = bv->buf;
	for (; k < n; k++) {
		const struct verify_entry *c = &h->chunks[first + k];
		uint64_t in = off - c->offset,
			 len = c->size - in < end - off ? c->size - in : end - off;

		r = chunk_fd(d, h, first + k, &b[k].fd);
		if (r < 0)
			break;
		b[k].size = (size_t)len;
		b[k].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		b[k].pos = (off_t)in;
		off += len;
	}
	if (r == 0) {
		bv->count = n;
		/* Spliced or copied straight from the chunks: no buffer of ours in between. */
		fuse_reply_data(req, bv, FUSE_BUF_SPLICE_MOVE);
	}
	while (k-- > 0) {
		/* The kernel caches the file's pages: the chunk's are a second copy. */
		posix_fadvise(b[k].fd, b[k].pos, (off_t)b[k].size, POSIX_FADV_DONTNEED);
		close(b[k].fd);
	}
	free(bv);
	return r;
}
