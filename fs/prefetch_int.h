/* fs/prefetch_int.h: what fs/prefetch.c (the object-by-object phase, the driver, progress)
 * and fs/prefetch_pack.c (the version-pack phase) share. Private to those two files.
 *
 * Locking: the counters are atomics; err, running and driver_detail are under lock; objs,
 * nobjs and done belong to the driver thread until it starts the workers (the pack phase runs
 * before them, on the driver thread and its own writer threads).
 */
#ifndef STORKFS_FS_PREFETCH_INT_H
#define STORKFS_FS_PREFETCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "fs/fs.h"

struct pf_obj {
	const struct verify_entry *e;	 /* borrowed from m */
	const struct verify_manifest *m; /* the first version naming it */
};

struct pf {
	struct store *s;
	struct fetch *f;
	struct store_batch *batch;
	const struct fs_prefetch_opts *o;
	struct pf_obj *objs; /* the objects to fetch */
	size_t nobjs;
	atomic_size_t next; /* the next objs[] a worker takes */
	/* Counters, updated by the workers (the I/O thread for bytes_done), read for progress. */
	atomic_uint_fast64_t objects_done, bytes_done, present, fetched, fetched_bytes, failed;
	atomic_uint_fast64_t packs, packed; /* version packs fetched, objects they stored */
	uint8_t *done;			    /* per objs[]: stored by a pack (the pack phase's) */
	struct verify_manifest *const *ms;  /* the versions */
	size_t nms;
	unsigned jobs;
	char driver_detail[STORK_DETAIL_MAX]; /* under lock: the driver's own failure */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a worker left */
	unsigned running;    /* under lock */
	int err;	     /* under lock: the most telling failure so far */
	atomic_int full;     /* the store's file system is full: the rest is not tried */
	struct timespec start;
	uint64_t objects, bytes, bytes_present; /* fixed once the workers start */
	uint64_t present0;			/* objects already stored at the start */
};

/* Whether the caller asked to stop (fs_prefetch_opts.cancel). Thread-safe. */
bool fs_prefetch_cancelled(const struct pf *pf);

/* The version-pack phase (fs/prefetch_pack.c), on the driver thread before the workers start:
 * allocates pf->done, fetches the packs worth it and drops what they stored from pf->objs.
 * @return 0; -ENOMEM; -ECANCELED. */
int fs_prefetch_packs(struct pf *pf, struct verify_manifest *const *ms, size_t n);

#endif
