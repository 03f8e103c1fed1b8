/* fs/whole.c: a file stored in chunks that the node reads whole gets its whole object too
 * (fs/README.md "Memory"), so that its later opens hand the kernel one object (FUSE
 * passthrough, fs/passthrough.c) as for a file stored whole.
 *
 * The manifest signs a chunked file's sha256 and size, and store objects are plain bytes named
 * by the SHA-256 of their content: the file's whole content is exactly the object a
 * `--no-chunks` publish of it would make. At the last release of a chunked file's inode, with
 * passthrough on and every chunk in the node store (index look-ups on the releasing thread:
 * nothing is fetched), a job (fs/job.c, keyed "whole:<hex>": one assembly per object at a
 * time) copies the stored chunks in order into an insert (store_insert_new), whose commit
 * checks the size and the signed SHA-256 before it names the object: a chunk gone bad on the
 * store's disk makes bytes that do not hash right, logged, and nothing is stored. It is skipped
 * when the store has no room for a second copy of the file (store_has_room): the chunks serve
 * it as before, and no assembly is queued for QUIET_SECS (that check walks the index). Once the
 * object is stored, the chunks' pages and the mount's own pages of the file are dropped (the
 * object's pages, just written, are then its one copy in memory), and the next open finds the
 * object (fsd_whole_open) and passes it through.
 *
 * Threads: the job's thread reads the chunks and writes an insert of its own. It tells the
 * kernel to drop the inode's pages (fuse_lowlevel_notify_inval_inode) under d->whole.lock, and
 * only while the session lives (fsd_whole_stop, before the session ends, turns that off) and
 * no file has the inode open (fsd_pt_unopened: the kernel's drop would wait for a read in
 * flight, which no thread answers after SIGTERM: the daemon could not exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/daemon.h"

#define BUF (1024 * 1024) /* bytes copied at a time */
/* A whole object above this is not hashed at an open when this run has not hashed it yet (a
 * 4 GB one would hold the open for seconds): a job hashes it, the chunks serve meanwhile. */
#define SYNC_CHECK_MAX ((uint64_t)64 << 20)
/* After the store had no room for a whole object, no assembly is queued for this long: each
 * check reads the store's usage, a walk of its index. */
#define QUIET_SECS 60

struct whole_chunk {
	uint8_t hash[VERIFY_HASH_LEN];
	uint64_t size;
};

struct whole_job {
	uint8_t hash[VERIFY_HASH_LEN]; /* the file's signed SHA-256: the object's name */
	uint64_t size;
	fuse_ino_t ino;
	struct whole_chunk *chunks;
	size_t n;
	char *what;
};

static void whole_job_free(void *arg)
{
	struct whole_job *j = arg;

	if (!j)
		return;
	free(j->chunks);
	free(j->what);
	free(j);
}

/* Copy chunk c into ins, then drop its pages (the whole object's are the file's copy now). The
 * chunk is checked as a read's open checks it (a chunk the mount read is remembered: no second
 * hash), so that a chunk rewritten on the store's disk since is dropped and fetched again by
 * the next read, rather than failing every assembly of the file. */
static int copy_chunk(struct fsd *d, struct store_insert *ins, const struct whole_chunk *c,
		      uint8_t *buf)
{
	uint64_t off = 0;
	int fd = -1, r;

	r = fsd_stored_open(d, c->hash, &fd);
	if (r == STORK_EBADHASH)
		FSD_COUNT(d, rotten, 1);
	if (r < 0)
		return r;
	while (off < c->size) {
		size_t want = c->size - off < BUF ? (size_t)(c->size - off) : BUF;
		ssize_t got;

		if (__atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE)) {
			r = -ECANCELED;
			break;
		}
		got = pread(fd, buf, want, (off_t)off);
		if (got <= 0) {
			r = got < 0 ? -errno : -EIO;
			stork_errorf("chunk at %llu: %s", (unsigned long long)off,
				     got < 0 ? strerror(-r) : "shorter than its index record");
			break;
		}
		r = store_insert_write(ins, buf, (size_t)got);
		if (r < 0)
			break;
		off += (uint64_t)got;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return r;
}

static int64_t now_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void drop_pages(struct fsd *d, fuse_ino_t ino)
{
	fuse_lowlevel_notify_inval_inode(d->se, ino, 0, 0);
}

static int whole_run(struct fsd *d, void *arg, void **ret_result)
{
	struct whole_job *j = arg;
	struct store_insert *ins = NULL;
	struct store_objinfo info;
	uint8_t *buf = NULL;
	char text[1200];
	int r;

	(void)ret_result;
	/* Another mount of the store may have made it meanwhile. */
	if (store_object_info(d->store, j->hash, &info) == 0)
		return 0;
	r = store_has_room(d->store, j->size);
	if (r < 0) {
		stork_error_clear(); /* the chunks serve the file: nothing to say */
		__atomic_store_n(&d->whole.quiet_until, now_secs() + QUIET_SECS, __ATOMIC_RELAXED);
		return 0;
	}
	buf = malloc(BUF);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	r = store_insert_new(d->store, j->hash, j->size, &ins);
	for (size_t i = 0; r == 0 && i < j->n; i++)
		r = copy_chunk(d, ins, &j->chunks[i], buf);
	if (r < 0)
		goto out;
	/* The size and the signed SHA-256 checked, then named: nothing wrong is ever stored. */
	r = store_insert_commit_unsynced(ins);
	ins = NULL;
	if (r < 0)
		goto out;
	FSD_COUNT(d, assembled, 1);
	/* The mount's own pages of the file (read through the daemon) are a second copy now.
	 * Only while no file has it open: the kernel's drop waits for each page a read is
	 * filling, and after SIGTERM no thread would answer that read. An inode opened again
	 * meanwhile keeps its pages until the kernel evicts them. */
	pthread_mutex_lock(&d->whole.lock);
	if (!d->whole.stopped)
		fsd_pt_unopened(d, j->ino, drop_pages);
	pthread_mutex_unlock(&d->whole.lock);
out:
	store_insert_abort(ins);
	free(buf);
	if (r < 0 && r != -ECANCELED)
		fsd_log(
		    d, "%s: its whole object was not assembled from its chunks (they serve it): %s",
		    j->what, stork_error_text(NULL, r, text, sizeof(text)));
	return r;
}

static const struct fsd_job_ops whole_job_ops = {
    .run = whole_run,
    .arg_free = whole_job_free,
};

void fsd_whole_queue(struct fsd *d, fuse_ino_t ino, const struct verify_entry *e, const char *what)
{
	char key[6 + VERIFY_HASH_HEX];
	struct store_objinfo info;
	struct whole_job *j;

	if (!fsd_pt_on(d) || !e->nchunks || store_readonly(d->store) ||
	    now_secs() < __atomic_load_n(&d->whole.quiet_until, __ATOMIC_RELAXED) ||
	    store_object_info(d->store, e->hash, &info) == 0)
		return;
	/* Read whole (or as good as): every chunk is stored. */
	for (size_t i = 0; i < e->nchunks; i++) {
		if (store_object_info(d->store, e->chunks[i].hash, &info) < 0) {
			stork_error_clear();
			return;
		}
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->chunks = malloc(e->nchunks * sizeof(*j->chunks));
	j->what = strdup(what);
	if (!j->chunks || !j->what) {
		whole_job_free(j);
		return;
	}
	memcpy(j->hash, e->hash, VERIFY_HASH_LEN);
	j->size = e->size;
	j->ino = ino;
	j->n = e->nchunks;
	for (size_t i = 0; i < e->nchunks; i++) {
		memcpy(j->chunks[i].hash, e->chunks[i].hash, VERIFY_HASH_LEN);
		j->chunks[i].size = e->chunks[i].size;
	}
	memcpy(key, "whole:", 6);
	verify_hex(e->hash, VERIFY_HASH_LEN, key + 6);
	/* -EBUSY (every job slot taken): the next whole read tries again. */
	if (fsd_job_start(d, key, &whole_job_ops, j) < 0)
		stork_error_clear();
}

struct check_job {
	uint8_t hash[VERIFY_HASH_LEN];
	char *what;
};

static void check_job_free(void *arg)
{
	struct check_job *j = arg;

	if (j)
		free(j->what);
	free(j);
}

/* Hash a big whole object once in this run, off the opens' path; its pages are not kept (the
 * chunks served the open that asked; the next opens read the object from the disk). */
static int check_run(struct fsd *d, void *arg, void **ret_result)
{
	struct check_job *j = arg;
	int fd = -1, r;

	(void)ret_result;
	r = store_object_open_checked(d->store, j->hash, &fd);
	if (r == 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	} else if (r == STORK_EBADHASH) {
		FSD_COUNT(d, rotten, 1);
		fsd_log(d, "%s: %s (read from its chunks)", j->what, stork_error_detail());
	} else {
		stork_error_clear();
	}
	return r;
}

static const struct fsd_job_ops check_job_ops = {
    .run = check_run,
    .arg_free = check_job_free,
};

static void check_queue(struct fsd *d, const struct verify_entry *e, const char *what)
{
	char key[9 + VERIFY_HASH_HEX];
	struct check_job *j = calloc(1, sizeof(*j));

	if (!j || !(j->what = strdup(what))) {
		check_job_free(j);
		return;
	}
	memcpy(j->hash, e->hash, VERIFY_HASH_LEN);
	memcpy(key, "wholechk:", 9);
	verify_hex(e->hash, VERIFY_HASH_LEN, key + 9);
	/* Already queued (the same key), or no job slot: a later open asks again. */
	if (fsd_job_start(d, key, &check_job_ops, j) < 0)
		stork_error_clear();
}

int fsd_whole_open(struct fsd *d, const struct verify_entry *e, const char *what, int *ret_fd)
{
	int r;

	if (e->size > SYNC_CHECK_MAX && !d->unchecked) {
		/* Not hashed at the open: a job does it, the chunks serve this open. */
		r = store_object_open_if_checked(d->store, e->hash, ret_fd);
		if (r == -EAGAIN) {
			check_queue(d, e, what);
			return -ENOENT;
		}
	} else {
		r = fsd_stored_open(d, e->hash, ret_fd);
	}
	if (r == STORK_EBADHASH) {
		/* Rotten on the store's disk: never served. Its entry is gone; the chunks serve
		 * the file, and the next whole read assembles it again. */
		FSD_COUNT(d, rotten, 1);
		fsd_log(d, "open %s: %s (read from its chunks)", what, stork_error_detail());
		return -ENOENT;
	}
	if (r < 0)
		stork_error_clear();
	return r;
}

void fsd_whole_stop(struct fsd *d)
{
	pthread_mutex_lock(&d->whole.lock);
	d->whole.stopped = true;
	pthread_mutex_unlock(&d->whole.lock);
}
