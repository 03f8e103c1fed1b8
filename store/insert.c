/* store/insert.c: writing an object into the node store (store/README.md, "Inserting").
 *
 * Bytes go to an unnamed O_TMPFILE file in tmp/ (node_tmp_anon): no other process can see
 * it, no sweeper can take it, and it is gone by itself if the writer dies. Only where the
 * store's file system cannot give such a file a name later (or with STORK_STORE_NAMED_TMP=1,
 * which the tests use) do they go to tmp/.part-XXXXXX instead, flock()ed for its life
 * (node_tmp_create). They are hashed as they are written. On commit the size and the SHA-256
 * must match the id; only then is the file fsync()ed, made 0444, given its name
 * objects/ab/<hex> (an unnamed file with linkat, node_tmp_link; a named one with
 * renameat2(RENAME_NOREPLACE)) and indexed. An object already at that name stays only if it
 * re-hashes right; a rotten one is replaced by ours (an unnamed file first gets a flock()ed
 * tmp/ name, so that one rename replaces it). Batches share the syncs (below).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

/* Zero blocks of this size, aligned in the file, are left as holes. */
#define HOLE_BLOCK 4096

struct store_insert {
	struct store *s;
	uint8_t id[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX];
	uint64_t size;	  /* expected */
	uint64_t written; /* bytes written (and hashed) so far */
	struct verify_hash *h;
	int fd;
	char name[NODE_TMPNAME_LEN]; /* in tmp/; "" once it is gone, or unnamed */
	bool anon;		     /* an unnamed (O_TMPFILE) file until it is placed */
	/* Queued in a store_batch (batch.lock protects next and done). */
	struct store_insert *next;
	bool waited; /* a store_insert_commit_batched caller frees it, not the commit */
	bool done;   /* its commit has run: result holds the outcome */
	int result;
	char *detail; /* the failure's detail, for the waiting thread */
};

/* The temporary file, for messages. */
static const char *tmpname(const struct store_insert *ins)
{
	return ins->anon ? "(unnamed)" : ins->name;
}

int store_insert_new(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		     struct store_insert **ret_ins)
{
	struct store_insert *ins;
	int r;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	ins = calloc(1, sizeof(*ins));
	if (!ins)
		return -ENOMEM;
	ins->s = s;
	ins->fd = -1;
	memcpy(ins->id, id, VERIFY_HASH_LEN);
	verify_hex(id, VERIFY_HASH_LEN, ins->hex);
	ins->size = size;
	r = verify_hash_new(&ins->h);
	if (r < 0)
		goto fail;
	r = node_tmp_anon(s, &ins->fd);
	ins->anon = r == 0;
	if (r == -EOPNOTSUPP)
		r = node_tmp_create(s, &ins->fd, ins->name);
	if (r < 0)
		goto fail;
	*ret_ins = ins;
	return 0;
fail:
	store_insert_abort(ins);
	return r;
}

/* Whether p[0..n) is all zero. */
static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Write p[0..n) at off, skipping whole blocks of zeros (HOLE_BLOCK, aligned in the file):
 * they stay holes, so a sparse file stays sparse in the store (insert_check gives the file its
 * length). @return 0; -errno. */
static int write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	size_t i = 0;
	ssize_t w;

	while (i < n) {
		size_t blk = HOLE_BLOCK - (size_t)((off + i) % HOLE_BLOCK), run = 0;

		if (blk > n - i)
			blk = n - i;
		if (blk == HOLE_BLOCK && all_zero(p + i, blk)) {
			i += blk;
			continue;
		}
		/* A run of blocks up to the next whole zero block. */
		for (run = blk; i + run < n;) {
			size_t nb = n - i - run < HOLE_BLOCK ? n - i - run : HOLE_BLOCK;

			if (nb == HOLE_BLOCK && all_zero(p + i + run, nb))
				break;
			run += nb;
		}
		while (run > 0) {
			w = pwrite(fd, p + i, run, (off_t)(off + i));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
			i += (size_t)w;
			run -= (size_t)w;
		}
	}
	return 0;
}

int store_insert_write(struct store_insert *ins, const void *buf, size_t len)
{
	int r;

	if (len > ins->size - ins->written) {
		stork_errorf("object %s: more than the %llu bytes expected", ins->hex,
			     (unsigned long long)ins->size);
		return STORK_EBADLEN;
	}
	/* Write first, hash second: a failed write leaves written and the hash as they were,
	 * and the next write goes to the same offset. */
	r = write_sparse(ins->fd, buf, len, ins->written);
	if (r < 0) {
		stork_errorf("%s/" NODE_TMPDIR "/%s: object %s: %s", ins->s->dir, tmpname(ins),
			     ins->hex, strerror(-r));
		return r;
	}
	r = verify_hash_update(ins->h, buf, len);
	if (r < 0)
		return r;
	ins->written += len;
	return 0;
}

int store_insert_reset(struct store_insert *ins)
{
	struct verify_hash *h = NULL;
	int r;

	if (ftruncate(ins->fd, 0) < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_TMPDIR "/%s: %s", ins->s->dir, tmpname(ins), strerror(-r));
		return r;
	}
	r = verify_hash_new(&h);
	if (r < 0)
		return r;
	verify_hash_free(ins->h);
	ins->h = h;
	ins->written = 0;
	return 0;
}

/* An object already at dirfd/rel: 1 if it is the id's content (size and SHA-256), 0 if it is
 * not (conclusively: another size, another hash, not a regular file), -errno when it could
 * not be told (it is then left alone). */
static int existing_check(struct store_insert *ins, int dirfd, const char *rel)
{
	uint8_t got[VERIFY_HASH_LEN];
	uint64_t size;
	struct stat st;
	int fd, r;

	fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ELOOP ? 0 : -errno; /* ELOOP: a symlink, never an object */
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != ins->size) {
		r = 0;
	} else {
		r = node_hash_fd(fd, got, &size);
		if (r == 0)
			r = size == ins->size && memcmp(got, ins->id, VERIFY_HASH_LEN) == 0;
		/* Kept: it may be an unsynced insert's (another process's, or one a crash left
		 * unindexed), so it is made durable before the index lists it. */
		if (r == 1 && fsync(fd) < 0)
			r = -errno;
	}
	close(fd);
	return r;
}

/* Name the verified unnamed file dirfd/rel (objects/ab/<hex>), never replacing a good object;
 * a rotten one is replaced atomically (ours gets a tmp/ name, flock()ed so that no sweeper
 * takes it, and is renamed over it), so readers never find the name missing. */
static int place_anon(struct store_insert *ins, int dirfd, const char *rel)
{
	char tmp[NODE_TMPNAME_LEN];
	int r;

	r = node_tmp_link(ins->s, ins->fd, dirfd, rel);
	if (r != -EEXIST)
		goto out;
	/* Someone stored it before us (or a crash left it unindexed): keep theirs only if it
	 * is what its name says. */
	r = existing_check(ins, dirfd, rel);
	if (r != 0)
		return r < 0 ? r : 0;
	while (flock(ins->fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -errno;
	r = node_tmp_name(ins->s, ins->fd, tmp);
	if (r < 0)
		return r;
	if (renameat(ins->s->tmpfd, tmp, dirfd, rel) < 0) {
		r = -errno;
		unlinkat(ins->s->tmpfd, tmp, 0);
	}
out:
	if (r == 0)
		ins->anon = false;
	return r;
}

/* Move the verified temporary file to dirfd/rel (objects/ab/<hex>). */
static int place(struct store_insert *ins, int dirfd, const char *rel)
{
	struct store *s = ins->s;
	struct stat st;
	int r;

	if (ins->anon)
		return place_anon(ins, dirfd, rel);
	if (renameat2(s->tmpfd, ins->name, dirfd, rel, RENAME_NOREPLACE) == 0)
		goto moved;
	if (errno == EINVAL || errno == ENOSYS) {
		/* No RENAME_NOREPLACE here: look first; a race only replaces good with good. */
		if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				return -errno;
			goto replace;
		}
	} else if (errno != EEXIST) {
		return -errno;
	}
	/* Someone stored it before us (or a crash left it unindexed): keep theirs only if it
	 * is what its name says. */
	r = existing_check(ins, dirfd, rel);
	if (r != 0)
		return r < 0 ? r : 0;
replace:
	if (renameat(s->tmpfd, ins->name, dirfd, rel) < 0)
		return -errno;
moved:
	ins->name[0] = '\0';
	return 0;
}

/* The size and the SHA-256 must be the id's; then (when sync) fsync, and 0444. */
static int insert_check(struct store_insert *ins, bool sync)
{
	uint8_t got[VERIFY_HASH_LEN];
	char ghex[VERIFY_HASH_HEX];
	struct store *s = ins->s;
	struct stat st;
	int r;

	if (ins->written != ins->size) {
		stork_errorf("object %s: %llu bytes, but %llu expected", ins->hex,
			     (unsigned long long)ins->written, (unsigned long long)ins->size);
		return STORK_EBADLEN;
	}
	r = verify_hash_final(ins->h, got);
	verify_hash_free(ins->h);
	ins->h = NULL;
	if (r < 0)
		return r;
	if (memcmp(got, ins->id, VERIFY_HASH_LEN) != 0) {
		verify_hex(got, VERIFY_HASH_LEN, ghex);
		stork_errorf("object %s: content hashes to %s", ins->hex, ghex);
		return STORK_EBADHASH;
	}
	/* Trailing zeros were not written (holes): the length comes from here. The truncate and
	 * the chmod each dirty the inode, so each is made only when the file needs it: most files
	 * end in data, and an unnamed one is made 0444 (under the usual umask). */
	if (fstat(ins->fd, &st) < 0 ||
	    ((uint64_t)st.st_size != ins->size &&
	     (ftruncate(ins->fd, (off_t)ins->size) < 0 || fstat(ins->fd, &st) < 0)) ||
	    (sync && fsync(ins->fd) < 0) ||
	    ((st.st_mode & 07777) != 0444 && fchmod(ins->fd, 0444) < 0)) {
		r = -errno;
		stork_errorf("%s/" NODE_TMPDIR "/%s: object %s: %s", s->dir, tmpname(ins), ins->hex,
			     strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size != ins->size) {
		stork_errorf("%s/" NODE_TMPDIR "/%s: object %s: %lld bytes on disk, %llu written",
			     s->dir, tmpname(ins), ins->hex, (long long)st.st_size,
			     (unsigned long long)ins->size);
		return -EIO;
	}
	return 0;
}

/* Whether objects/<first two of hex> is a directory (not missing, not a file or a symlink
 * that node_subdir_open must clear). */
static bool subdir_is_dir(struct store *s, const char *hex)
{
	char sub[3] = {hex[0], hex[1], '\0'};
	struct stat st;

	return fstatat(s->objfd, sub, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Check the object (insert_check) and move it to its name in objects/: durably (the file and
 * its directory synced) when sync, else with nothing written back or waited for (the group sync
 * does it). */
static int insert_place(struct store_insert *ins, bool sync)
{
	struct store *s = ins->s;
	int subfd = -1, r;

	r = insert_check(ins, sync);
	if (r < 0)
		return r;
	/* Unsynced, nothing is started here: the group's sync (syncfs, at the latest at unmount)
	 * writes the group's files back together, where the block layer merges them; a
	 * writeback started per object was one small request (a device round trip) each, and a
	 * third of the daemon's time in tests/bench/cold. */
	if (!sync && subdir_is_dir(s, ins->hex)) {
		/* objects/ab is a directory but for a store's first objects: named through
		 * objects/ straight away, as a batch does (no mkdir, open and close of objects/ab
		 * for each object). Gone meanwhile: made below, and named again. */
		char rel[NODE_RELPATH_LEN];

		snprintf(rel, sizeof(rel), "%.2s/%s", ins->hex, ins->hex);
		r = place(ins, s->objfd, rel);
		if (r != -ENOENT && r != -ENOTDIR)
			goto placed;
	}
	r = node_subdir_open(s, ins->id, &subfd);
	if (r < 0)
		return r;
	r = place(ins, subfd, ins->hex);
placed:
	if (r < 0) {
		stork_errorf("%s/" NODE_OBJDIR "/%.2s/%s: cannot move the object into place: %s",
			     s->dir, ins->hex, ins->hex, strerror(-r));
		goto out;
	}
	if (sync) {
		r = node_sync_dir(subfd);
		if (r < 0)
			stork_errorf("%s/" NODE_OBJDIR "/%.2s: cannot sync: %s", s->dir, ins->hex,
				     strerror(-r));
	}
out:
	if (subfd >= 0)
		close(subfd);
	return r;
}

int store_insert_commit(struct store_insert *ins)
{
	struct store *s = ins->s;
	int r;

	r = insert_place(ins, true);
	if (r < 0)
		goto out;
	/* A crash before this leaves a good unindexed object: the next insert of it or
	 * fsck --repair indexes it. */
	r = node_index_object(s, ins->id, ins->size);
	if (r < 0) {
		stork_error_prefix("object %s", ins->hex);
	} else {
		struct node_index_item it = {.size = ins->size};

		if (!ins->anon && !ins->name[0])
			node_checked_note(s, ins->id, ins->fd); /* ours is in place */
		memcpy(it.id, ins->id, VERIFY_HASH_LEN);
		node_quota_inserted(s, &it, 1);
	}
out:
	store_insert_abort(ins);
	return r;
}

int store_insert_commit_unsynced(struct store_insert *ins)
{
	struct store *s = ins->s;
	int r;

	r = insert_place(ins, false);
	if (r < 0)
		goto out;
	/* Named, not durable: found by this process at once, indexed after the group's sync
	 * (pending.c). A crash before that leaves it unindexed, re-hashed before any use. */
	r = node_pending_add(s, ins->id, ins->size);
	if (r == 0) {
		/* The quota counts it at once (with the other unsynced ones: quota.c scan_run),
		 * though only indexed objects can be evicted. */
		struct node_index_item it = {.size = ins->size};

		if (!ins->anon && !ins->name[0])
			node_checked_note(s, ins->id, ins->fd);
		memcpy(it.id, ins->id, VERIFY_HASH_LEN);
		node_quota_inserted(s, &it, 1);
	}
out:
	store_insert_abort(ins);
	return r;
}

void store_insert_abort(struct store_insert *ins)
{
	if (!ins)
		return;
	/* Unlink while still holding the lock, so no sweeper ever sees it unlocked. */
	if (ins->fd >= 0 && ins->name[0])
		unlinkat(ins->s->tmpfd, ins->name, 0);
	if (ins->fd >= 0)
		close(ins->fd);
	verify_hash_free(ins->h);
	free(ins->detail);
	free(ins);
}

/* ------------------------------------------------------------------------------------------ */
/* Batches (store/README.md, "Batches"): the same steps as store_insert_commit, with the
 * per-object fsyncs and index commits replaced by one syncfs() for the bytes, one for the
 * names and one write transaction for the records. */

struct store_batch {
	struct store *s;
	pthread_mutex_t lock;
	pthread_cond_t cond;	   /* a commit ended */
	struct store_insert *head; /* queued, not yet taken by a commit (under lock) */
	struct store_insert **tail;
	size_t queued;	 /* under lock: on the list */
	size_t taken;	 /* under lock: in the running commit */
	bool committing; /* under lock: one commit at a time */
};

int store_batch_new(struct store *s, struct store_batch **ret_b)
{
	struct store_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->s = s;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	b->tail = &b->head;
	*ret_b = b;
	return 0;
}

void store_batch_free(struct store_batch *b)
{
	struct store_insert *ins, *next;

	if (!b)
		return;
	for (ins = b->head; ins; ins = next) {
		next = ins->next;
		store_insert_abort(ins);
	}
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int queue(struct store_batch *b, struct store_insert *ins, bool waited)
{
	int r = insert_check(ins, false);

	if (r < 0) {
		store_insert_abort(ins);
		return r;
	}
	ins->waited = waited;
	pthread_mutex_lock(&b->lock);
	/* Each object queued or being committed holds a descriptor: at the cap, an adder waits
	 * for the running commit, or leads one itself. (Group-commit callers wait for their
	 * own object anyway, so they are as many as their threads.) */
	while (!waited && b->queued + b->taken >= STORE_BATCH_MAX_QUEUED) {
		if (!b->committing) {
			pthread_mutex_unlock(&b->lock);
			store_batch_commit(b, NULL); /* its failures are the objects' */
			pthread_mutex_lock(&b->lock);
		} else {
			pthread_cond_wait(&b->cond, &b->lock);
		}
	}
	*b->tail = ins;
	b->tail = &ins->next;
	b->queued++;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int store_batch_add(struct store_batch *b, struct store_insert *ins)
{
	return queue(b, ins, false);
}

/* ins failed at some step: remember why for its waiter and drop its temporary file (still
 * holding the lock, as store_insert_abort does). */
static void fail_one(struct store_insert *ins, int err)
{
	ins->result = err;
	free(ins->detail);
	ins->detail = strdup(stork_error_detail());
	if (ins->name[0]) {
		unlinkat(ins->s->tmpfd, ins->name, 0);
		ins->name[0] = '\0';
	}
}

/* objects/ab for the id, made (0755) and opened once per commit: no fsync here, the names'
 * syncfs covers new directories too. */
static int batch_subdir(struct store *s, const uint8_t id[VERIFY_HASH_LEN], bool made[256])
{
	char sub[3];
	int r;

	if (made[id[0]])
		return 0;
	snprintf(sub, sizeof(sub), "%02x", id[0]);
	/* A file or symlink where the directory belongs is cleared first. */
	r = node_subdir_clear(s, sub);
	if (r < 0)
		goto fail;
	if (mkdirat(s->objfd, sub, 0755) == 0) {
		if (fchmodat(s->objfd, sub, 0755, 0) < 0) {
			r = -errno;
			goto fail;
		}
	} else if (errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	made[id[0]] = true;
	return 0;
fail:
	stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, sub, strerror(-r));
	return r;
}

static int sync_fs(struct store *s, int fd, const char *what)
{
	int r;

	if (syncfs(fd) == 0)
		return 0;
	r = -errno;
	stork_errorf("%s/%s: cannot sync the file system: %s", s->dir, what, strerror(-r));
	return r;
}

/* Commit the list (taken from the batch): the steps of store_insert_commit, each once for
 * all. Sets every entry's result. @return 0; the first failure. */
static int commit_list(struct store *s, struct store_insert *list, size_t *ret_indexed)
{
	struct node_index_item *items = NULL;
	struct store_insert *ins;
	bool made[256] = {false};
	int first = 0, r;
	size_t n = 0, k = 0;

	for (ins = list; ins; ins = ins->next)
		n++;
	/* 1. The bytes of every file, durable before any of them gets its name. */
	r = sync_fs(s, s->tmpfd, NODE_TMPDIR);
	if (r < 0) {
		for (ins = list; ins; ins = ins->next)
			fail_one(ins, r);
		return r;
	}
	items = calloc(n ? n : 1, sizeof(*items));
	if (!items) {
		for (ins = list; ins; ins = ins->next)
			fail_one(ins, -ENOMEM);
		return -ENOMEM;
	}
	/* 2. Names: each into objects/ab/<hex>, or an existing good copy kept. */
	for (ins = list; ins; ins = ins->next) {
		char rel[3 + VERIFY_HASH_HEX];

		snprintf(rel, sizeof(rel), "%.2s/%s", ins->hex, ins->hex);
		r = batch_subdir(s, ins->id, made);
		if (r == 0)
			r = place(ins, s->objfd, rel);
		if (r < 0) {
			if (made[ins->id[0]])
				stork_errorf("%s/" NODE_OBJDIR "/%s: cannot move the object "
					     "into place: %s",
					     s->dir, rel, strerror(-r));
			fail_one(ins, r);
			first = first ? first : r;
			continue;
		}
		memcpy(items[k].id, ins->id, VERIFY_HASH_LEN);
		items[k].size = ins->size;
		k++;
	}
	/* 3. The names (and new directories) durable before the index lists them. */
	r = k ? sync_fs(s, s->objfd, NODE_OBJDIR) : 0;
	/* 4. One transaction for every record. */
	if (r == 0 && k)
		r = node_index_objects(s, items, k);
	if (r == 0 && k)
		node_quota_inserted(s, items, k);
	if (r < 0) {
		for (ins = list; ins; ins = ins->next)
			if (ins->result == 0)
				fail_one(ins, r);
		first = first ? first : r;
		k = 0;
	}
	free(items);
	if (ret_indexed)
		*ret_indexed = k;
	return first;
}

int store_batch_commit(struct store_batch *b, size_t *ret_committed)
{
	struct store_insert *list, *ins, *next, *drop = NULL;
	size_t indexed = 0;
	int r;

	pthread_mutex_lock(&b->lock);
	while (b->committing)
		pthread_cond_wait(&b->cond, &b->lock);
	list = b->head;
	b->head = NULL;
	b->tail = &b->head;
	b->taken = b->queued;
	b->queued = 0;
	b->committing = list != NULL;
	pthread_mutex_unlock(&b->lock);
	if (!list) {
		if (ret_committed)
			*ret_committed = 0;
		return 0;
	}
	r = commit_list(b->s, list, &indexed);
	pthread_mutex_lock(&b->lock);
	for (ins = list; ins; ins = next) {
		next = ins->next;
		ins->next = NULL;
		ins->done = true;
		if (!ins->waited) {
			ins->next = drop;
			drop = ins;
		}
	}
	/* Their descriptors closed before adders waiting at the cap go on. */
	for (ins = drop; ins; ins = next) {
		next = ins->next;
		store_insert_abort(ins);
	}
	b->committing = false;
	b->taken = 0;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (ret_committed)
		*ret_committed = indexed;
	return r;
}

int store_insert_commit_batched(struct store_insert *ins, struct store_batch *b)
{
	int r = queue(b, ins, true);

	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	while (!ins->done) {
		if (!b->committing) {
			/* Lead: commit everything queued, ours and whatever came meanwhile. */
			pthread_mutex_unlock(&b->lock);
			store_batch_commit(b, NULL);
			pthread_mutex_lock(&b->lock);
			continue;
		}
		pthread_cond_wait(&b->cond, &b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	r = ins->result;
	if (r < 0)
		stork_errorf("%s", ins->detail ? ins->detail : "");
	store_insert_abort(ins);
	return r;
}
