/* fs/object.c: the object behind a file (or a chunk of one): from the node store, else
 * fetched on a job thread (one job per object, however many readers wait: fs/job.c), with the
 * objects after it when a version is being read in pack order (fs/ahead.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

/* Fetching one object into the store, on a job thread. */
struct obj_job {
	struct verify_entry e; /* type, hash, size, zsize: all fs_repo_object reads */
	char *what;
};

static void obj_job_free(void *arg)
{
	struct obj_job *j = arg;

	free(j->what);
	free(j);
}

static int obj_job_run(struct fsd *d, void *arg, void **ret_result)
{
	struct obj_job *j = arg;

	(void)ret_result;
	return fs_repo_object(d->repo, &j->e, j->what, NULL, NULL);
}

static const struct fsd_job_ops obj_job_ops = {
    .run = obj_job_run,
    .arg_free = obj_job_free,
};

/* The job fetching e's object, and its key ("obj:<hex>": an open and a background start of
 * the same object share one job). NULL: no memory. */
static struct obj_job *obj_job_new(const struct verify_entry *e, const char *what,
				   char key[4 + VERIFY_HASH_HEX])
{
	struct obj_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->e.type = e->type;
	memcpy(j->e.hash, e->hash, VERIFY_HASH_LEN);
	j->e.size = e->size;
	j->e.zsize = e->zsize;
	j->what = strdup(what);
	if (!j->what) {
		obj_job_free(j);
		return NULL;
	}
	j->e.path = j->what;
	memcpy(key, "obj:", 4);
	verify_hex(e->hash, VERIFY_HASH_LEN, key + 4);
	return j;
}

void fsd_object_fetch_start(struct fsd *d, const struct verify_entry *e, const char *what)
{
	char key[4 + VERIFY_HASH_HEX];
	struct store_objinfo info;
	struct obj_job *j;

	if (store_object_info(d->store, e->hash, &info) == 0)
		return;
	j = obj_job_new(e, what, key);
	if (j)
		fsd_job_start(d, key, &obj_job_ops, j); /* -EBUSY: its reader fetches it */
}

int fsd_stored_open(struct fsd *d, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd)
{
	if (d->unchecked)
		return store_object_open(d->store, id, ret_fd);
	return store_object_open_checked(d->store, id, ret_fd);
}

/* The store's object for e, fetched (within the timeout) when the store lacks it. With vt (e
 * being its entry idx), with the objects after it when the version is being read in order
 * (fs/ahead.c); vt is NULL for a chunk and for a slice's installed root, whose entries follow
 * no pack. count: an open (hits and misses are counted), not a chunk's read. */
int fsd_object_open(struct fsd *d, struct fsd_vtree *vt, long idx, const struct verify_entry *e,
		    const char *what, int *ret_fd, bool *ret_fetched, bool count)
{
	char key[4 + VERIFY_HASH_HEX], opath[STORE_OBJPATH_LEN];
	struct obj_job *j;
	int ret;

	ret = fsd_stored_open(d, e->hash, ret_fd);
	if (ret == STORK_EBADHASH) {
		/* Rotten or swapped on the store's disk: never served. Its entry is gone, so it
		 * is fetched again below, and the insert replaces the bad file. */
		FSD_COUNT(d, rotten, 1);
		fsd_log(d, "open %s: %s", what, stork_error_detail());
		ret = -ENOENT;
	}
	/* Named but not indexed: another process's insert that waits for its group sync (a
	 * mount sharing the store), or what a crash left. Used only if it hashes right. */
	if (ret == -ENOENT && store_object_adopt(d->store, e->hash, e->size, false) == 0)
		ret = fsd_stored_open(d, e->hash, ret_fd);
	if (ret != -ENOENT) {
		if (ret == 0 && count)
			FSD_COUNT(d, hits, 1);
		if (ret == 0 && vt)
			fsd_ahead_hit(d, vt, idx);
		return ret;
	}
	if (count)
		FSD_COUNT(d, misses, 1);
	ret = vt ? fsd_ahead_miss(d, vt, idx, what) : -EOPNOTSUPP;
	if (ret == -ETIMEDOUT)
		return ret;
	if (ret == 0 && fsd_stored_open(d, e->hash, ret_fd) == 0) {
		*ret_fetched = true;
		return 0;
	}
	/* Not for fetch-ahead, or its window did not bring this one: on its own (or joining
	 * the job a window started for it: fsd_object_fetch_start). */
	j = obj_job_new(e, what, key);
	if (!j)
		return -ENOMEM;
	store_object_path(e->hash, opath);
	ret = fsd_job(d, key, opath, &obj_job_ops, j, NULL);
	if (ret < 0)
		return ret;
	*ret_fetched = true;
	return fsd_stored_open(d, e->hash, ret_fd);
}
