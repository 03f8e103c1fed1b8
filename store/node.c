/* store/node.c: the node store: opening it, its temporary files, and indexed objects (info,
 * open, remove, pin; links and mode variants are variant.c's).
 *
 * Objects are immutable files objects/ab/<hex> (0444), indexed in LMDB (index.c) only once
 * they are whole and verified (insert.c). Readers trust the index for existence and check the
 * file's size; a file that went away or changed size loses its entry so that it is fetched
 * again. Every temporary file in tmp/ is flock()ed by its writer for its whole life,
 * which is how any process tells a crash's leftovers from a live writer's file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

#define TMP_TRIES  100
#define COPY_CHUNK (1 << 20)

/* ------------------------------------------------------------------------------------------ */
/* Helpers. */

void node_relpath(const uint8_t id[VERIFY_HASH_LEN], char out[NODE_RELPATH_LEN])
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(out, NODE_RELPATH_LEN, "%.2s/%s", hex, hex);
}

void node_variant_relpath(const uint8_t id[VERIFY_HASH_LEN], uint32_t mode,
			  char out[NODE_RELPATH_LEN])
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(out, NODE_RELPATH_LEN, "%.2s/%s.%o", hex, hex, (unsigned)(mode & 07777));
}

bool node_variant_parse(const char *suffix, uint32_t *ret_mode)
{
	uint32_t mode = 0;
	size_t i;

	for (i = 0; suffix[i]; i++) {
		if (i == sizeof(NODE_VARIANT_MAX) - 2 || suffix[i] < '0' || suffix[i] > '7')
			return false;
		mode = mode * 8 + (uint32_t)(suffix[i] - '0');
	}
	/* One spelling per mode: "644", never "0644" or "". */
	if (i == 0 || (suffix[0] == '0' && i > 1))
		return false;
	*ret_mode = mode;
	return true;
}

int node_sync_dir(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

int node_mkdir_mode(int dirfd, const char *name, mode_t mode)
{
	if (mkdirat(dirfd, name, mode) < 0)
		return errno == EEXIST ? 0 : -errno;
	if (fchmodat(dirfd, name, mode, 0) < 0)
		return -errno;
	return 1;
}

int node_read_fd(int fd, size_t max, uint8_t **ret_buf, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max)
		return -EINVAL;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;

			free(buf);
			return r;
		}
		got += (size_t)n;
	}
	*ret_buf = buf;
	*ret_len = got;
	return 0;
}

int node_hash_fd(int fd, uint8_t ret_hash[VERIFY_HASH_LEN], uint64_t *ret_size)
{
	struct verify_hash *h = NULL;
	uint64_t total = 0;
	uint8_t *buf;
	ssize_t n;
	int r;

	buf = malloc(COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	r = verify_hash_new(&h);
	if (r < 0)
		goto out;
	for (;;) {
		n = pread(fd, buf, COPY_CHUNK, (off_t)total);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		r = verify_hash_update(h, buf, (size_t)n);
		if (r < 0)
			goto out;
		total += (uint64_t)n;
	}
	r = verify_hash_final(h, ret_hash);
	if (r == 0)
		*ret_size = total;
out:
	verify_hash_free(h);
	free(buf);
	return r;
}

int node_subdir_clear(struct store *s, const char *sub)
{
	struct stat st;

	if (fstatat(s->objfd, sub, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode))
		return 0;
	/* unlinkat without AT_REMOVEDIR never removes a directory: one that a concurrent
	 * clearer has just made gives EISDIR and stays. */
	if (unlinkat(s->objfd, sub, 0) < 0 && errno != ENOENT && errno != EISDIR)
		return -errno;
	return 0;
}

int node_subdir_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd)
{
	char hex[VERIFY_HASH_HEX], sub[3];
	bool created = false;
	int fd, r, tries;

	verify_hex(id, VERIFY_HASH_LEN, hex);
	memcpy(sub, hex, 2);
	sub[2] = '\0';
	for (tries = 0;; tries++) {
		r = node_mkdir_mode(s->objfd, sub, 0755);
		if (r < 0)
			goto fail;
		created = r > 0;
		fd = openat(s->objfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0)
			break;
		r = -errno;
		/* A file or a symlink where the directory belongs (store/README.md, "Layout"):
		 * cleared, then the directory made again. */
		if ((r != -ENOTDIR && r != -ELOOP) || tries == 2)
			goto fail;
		r = node_subdir_clear(s, sub);
		if (r < 0)
			goto fail;
	}
	/* A new directory is durable only once its parent is synced. */
	if (created && fsync(s->objfd) < 0) {
		r = -errno;
		close(fd);
		stork_errorf("%s/" NODE_OBJDIR ": cannot sync: %s", s->dir, strerror(-r));
		return r;
	}
	*ret_fd = fd;
	return 0;
fail:
	stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, sub, strerror(-r));
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Temporary files. */

/* A random name tmp/.part-XXXXXX into name. @return 0; -errno. */
static int tmp_random_name(char name[NODE_TMPNAME_LEN])
{
	static const char chars[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t rnd[6];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return errno ? -errno : -EIO;
	memcpy(name, NODE_TMP_PREFIX, sizeof(NODE_TMP_PREFIX) - 1);
	for (int j = 0; j < 6; j++)
		name[sizeof(NODE_TMP_PREFIX) - 1 + j] = chars[rnd[j] % (sizeof(chars) - 1)];
	name[NODE_TMPNAME_LEN - 1] = '\0';
	return 0;
}

int node_tmp_name(struct store *s, int fd, char ret_name[NODE_TMPNAME_LEN])
{
	int r = -EEXIST;

	for (int i = 0; i < TMP_TRIES && r == -EEXIST; i++) {
		r = tmp_random_name(ret_name);
		if (r == 0)
			r = node_tmp_link(s, fd, s->tmpfd, ret_name);
	}
	if (r < 0)
		stork_errorf("%s/" NODE_TMPDIR ": cannot name a temporary file: %s", s->dir,
			     strerror(-r));
	return r;
}

int node_tmp_create(struct store *s, int *ret_fd, char ret_name[NODE_TMPNAME_LEN])
{
	char name[NODE_TMPNAME_LEN];
	struct stat st, st2;
	int fd = -1, i, r;

	if (s->readonly) {
		stork_errorf("%s: read-only store: cannot store anything in it", s->dir);
		return -EROFS;
	}
	for (i = 0; i < TMP_TRIES; i++) {
		r = tmp_random_name(name);
		if (r < 0)
			goto fail;
		fd = openat(s->tmpfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    0600);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			r = -errno;
			goto fail;
		}
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				r = -errno;
				close(fd);
				goto fail;
			}
		}
		/* Between our open and our flock, another process's sweep may have locked and
		 * unlinked the file, taking it for a leftover. Only a file still under its name
		 * once we hold the lock is ours for good (a sweeper unlinks only under the lock).
		 */
		if (fstat(fd, &st) < 0) {
			r = -errno;
			close(fd);
			goto fail;
		}
		if (fstatat(s->tmpfd, name, &st2, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st2.st_ino == st.st_ino && st2.st_dev == st.st_dev) {
			*ret_fd = fd;
			memcpy(ret_name, name, NODE_TMPNAME_LEN);
			return 0;
		}
		close(fd);
	}
	r = -EEXIST;
fail:
	stork_errorf("%s/" NODE_TMPDIR ": cannot create a temporary file: %s", s->dir,
		     strerror(-r));
	return r;
}

int node_tmp_anon(struct store *s, int *ret_fd)
{
	int fd, r;

	if (s->readonly) {
		stork_errorf("%s: read-only store: cannot store anything in it", s->dir);
		return -EROFS;
	}
	if (!s->anon_link)
		return -EOPNOTSUPP;
	fd = openat(s->tmpfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0444);
	if (fd < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_TMPDIR ": cannot create a temporary file: %s", s->dir,
			     strerror(-r));
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int node_tmp_link(struct store *s, int fd, int dirfd, const char *name)
{
	char proc[64];

	if (s->anon_link == NODE_LINK_EMPTY_PATH) {
		if (linkat(fd, "", dirfd, name, AT_EMPTY_PATH) == 0)
			return 0;
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0)
			return 0;
	}
	return -errno;
}

void node_probe_anon(struct store *s)
{
	char name[64];
	int fd;

	s->anon_link = 0;
	fd = openat(s->tmpfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0444);
	if (fd < 0)
		return;
	snprintf(name, sizeof(name), NODE_TMP_PREFIX "probe-%d", (int)getpid());
	for (int how = NODE_LINK_EMPTY_PATH; how <= NODE_LINK_PROC && !s->anon_link; how++) {
		s->anon_link = how;
		unlinkat(s->tmpfd, name, 0);
		if (node_tmp_link(s, fd, s->tmpfd, name) < 0)
			s->anon_link = 0;
		unlinkat(s->tmpfd, name, 0);
	}
	close(fd);
}

int node_tmp_sweep(struct store *s, bool remove, void (*found)(void *ctx, const char *name),
		   void *ctx, uint64_t *ret_stale, uint64_t *ret_removed)
{
	uint64_t stale = 0, removed = 0;
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	int dfd, fd, r = 0;

	if (s->tmpfd < 0) { /* a read-only store without tmp/ */
		if (ret_stale)
			*ret_stale = 0;
		if (ret_removed)
			*ret_removed = 0;
		return 0;
	}
	dfd = openat(s->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
		stork_errorf("%s/" NODE_TMPDIR ": %s", s->dir, strerror(-r));
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(s->tmpfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		fd = openat(s->tmpfd, de->d_name,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
		if (fd < 0)
			continue;
		/* A live writer holds LOCK_EX for the file's whole life. */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			continue;
		}
		stale++;
		if (found)
			found(ctx, de->d_name);
		if (remove && unlinkat(s->tmpfd, de->d_name, 0) == 0)
			removed++;
		close(fd);
	}
	if (errno != 0) {
		r = -errno;
		stork_errorf("%s/" NODE_TMPDIR ": %s", s->dir, strerror(-r));
	}
	closedir(d);
	if (r == 0) {
		if (ret_stale)
			*ret_stale = stale;
		if (ret_removed)
			*ret_removed = removed;
	}
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Index look-ups and small updates. */

struct obj_ctx {
	const uint8_t *id;
	struct node_objrec rec;
	bool pin;
	int64_t now;
	/* drop_fn: drop the entry only while the file is still missing or still the bad file
	 * that was seen (st_ino), so that a concurrent insert's fresh object keeps its entry. */
	struct store *s;
	bool have_ino;
	dev_t dev;
	ino_t ino;
};

static int get_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct obj_ctx *c = ctx;

	return node_objrec_get(e, txn, c->id, &c->rec);
}

/* The index's record, or one for an object that waits for its group sync (pending.c): stored
 * for this process, not yet indexed. */
static int lookup(struct store *s, struct obj_ctx *c)
{
	uint64_t size;
	int r;

	r = node_txn(s->env, false, get_fn, c);
	if (r == -ENOENT && node_pending_get(s->env, c->id, &size) == 0) {
		memset(&c->rec, 0, sizeof(c->rec));
		c->rec.size = size;
		c->rec.last_use = time(NULL);
		stork_error_clear();
		r = 0;
	}
	return r;
}

int node_object_get(struct store *s, const uint8_t id[VERIFY_HASH_LEN], struct node_objrec *ret_rec)
{
	struct obj_ctx c = {.id = id};
	int r;

	r = lookup(s, &c);
	if (r == 0)
		*ret_rec = c.rec;
	return r;
}

int store_object_info(struct store *s, const uint8_t id[VERIFY_HASH_LEN],
		      struct store_objinfo *ret_info)
{
	struct obj_ctx c = {.id = id};
	int r;

	r = lookup(s, &c);
	if (r < 0)
		return r;
	ret_info->size = c.rec.size;
	ret_info->last_use = c.rec.last_use;
	ret_info->pins = c.rec.pins;
	return 0;
}

static int drop_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	MDB_val k = {VERIFY_HASH_LEN, (void *)((struct obj_ctx *)ctx)->id};
	struct obj_ctx *c = ctx;
	char rel[NODE_RELPATH_LEN];
	struct stat st;

	node_relpath(c->id, rel);
	if (fstatat(c->s->objfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (!c->have_ino || st.st_ino != c->ino || st.st_dev != c->dev))
		return MDB_NOTFOUND; /* replaced meanwhile: keep the entry */
	return mdb_del(txn, e->objects, &k, NULL);
}

void node_drop_entry(struct store *s, const uint8_t id[VERIFY_HASH_LEN], const struct stat *st)
{
	struct obj_ctx c = {.id = id, .s = s};

	if (st) {
		c.have_ino = true;
		c.dev = st->st_dev;
		c.ino = st->st_ino;
	}
	node_pending_forget(s->env, id);
	node_txn(s->env, true, drop_fn, &c);
}

int node_check_file(struct store *s, const uint8_t id[VERIFY_HASH_LEN],
		    const struct node_objrec *rec, int fd, const char *rel, struct stat *ret_st)
{
	struct stat st;
	int r;

	if (fd >= 0 ? fstat(fd, &st) < 0 : fstatat(s->objfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		/* ENOTDIR: objects/ab is a file, so the object is missing too. */
		if (r != -ENOENT && r != -ENOTDIR) {
			stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, rel, strerror(-r));
			return r;
		}
		node_drop_entry(s, id, NULL);
		stork_errorf("%s/" NODE_OBJDIR "/%s: indexed but missing (dropped from the "
			     "index; fetch it again)",
			     s->dir, rel);
		return -ENOENT;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != rec->size) {
		node_drop_entry(s, id, &st);
		stork_errorf("%s/" NODE_OBJDIR "/%s: %lld bytes, but indexed with %llu (dropped "
			     "from the index; fetch it again)",
			     s->dir, rel, (long long)st.st_size, (unsigned long long)rec->size);
		return -ENOENT;
	}
	if (ret_st)
		*ret_st = st;
	return 0;
}

/* objects/rel for reading. Without its access time: a mount's first read of each object
 * would dirty the inode (relatime), and the store keeps its own access clock (quota.c).
 * O_NOATIME needs the file's owner (or CAP_FOWNER): refused once, it is not asked again. */
static int open_object(struct store *s, const char *rel)
{
	int fd;

	if (!__atomic_load_n(&s->atime_denied, __ATOMIC_RELAXED)) {
		fd = openat(s->objfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
		if (fd >= 0 || errno != EPERM)
			return fd;
		__atomic_store_n(&s->atime_denied, true, __ATOMIC_RELAXED);
	}
	return openat(s->objfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

int node_object_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd,
		     struct stat *ret_st)
{
	struct obj_ctx c = {.id = id};
	char rel[NODE_RELPATH_LEN];
	int fd = -1, r;

	r = lookup(s, &c);
	if (r < 0)
		return r;
	node_relpath(id, rel);
	fd = open_object(s, rel);
	if (fd < 0 && errno != ENOENT && errno != ENOTDIR) {
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, rel, strerror(-r));
		return r;
	}
	r = node_check_file(s, id, &c.rec, fd, rel, ret_st);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	node_touch(s, id, c.rec.last_use);
	*ret_fd = fd;
	return 0;
}

int store_object_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd)
{
	return node_object_open(s, id, ret_fd, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Remove and pin. */

static int remove_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct obj_ctx *c = ctx;
	MDB_val k = {VERIFY_HASH_LEN, (void *)c->id};

	return mdb_del(txn, e->objects, &k, NULL);
}

int store_object_remove(struct store *s, const uint8_t id[VERIFY_HASH_LEN])
{
	struct obj_ctx c = {.id = id, .s = s};
	const bool gone = true;
	int r;

	node_pending_flush(s->env); /* the record, if it waits for its sync, goes too */
	/* The record first, then the files (variants first: a failure leaves the object whole,
	 * unindexed): as eviction and gc (node_unlink_unindexed). */
	r = node_txn(s->env, true, remove_fn, &c);
	return r < 0 ? r : node_unlink_unindexed(s, id, VERIFY_HASH_LEN, &gone, 1);
}

static int pin_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct obj_ctx *c = ctx;
	char hex[VERIFY_HASH_HEX];
	int rc;

	rc = node_objrec_get(e, txn, c->id, &c->rec);
	if (rc != 0)
		return rc;
	verify_hex(c->id, VERIFY_HASH_LEN, hex);
	if (c->pin) {
		if (c->rec.pins == UINT32_MAX) {
			stork_errorf("object %s: too many pins", hex);
			return -EOVERFLOW;
		}
		c->rec.pins++;
	} else {
		if (c->rec.pins == 0) {
			stork_errorf("object %s: unpinned, but it has no pins", hex);
			return -EINVAL;
		}
		c->rec.pins--;
	}
	return node_objrec_put(e, txn, c->id, &c->rec);
}

int store_object_pin(struct store *s, const uint8_t id[VERIFY_HASH_LEN], bool pin)
{
	struct obj_ctx c = {.id = id, .pin = pin};
	int r;

	r = node_pending_flush(s->env); /* a pin needs the record */
	if (r == 0)
		r = node_txn(s->env, true, pin_fn, &c);
	return r < 0 ? r : node_sync(s->env);
}
