/* tests/unit/test_store_node.c: the node store: inserts and their failure modes, the index,
 * tmp/ leftovers, hard links, metadata and manifests, pins, fsck, concurrency between threads
 * and processes, and growth of the LMDB map. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>

#include "store/store.h"
#include "tests/unit/unit.h"

/* ------------------------------------------------------------------------------------------ */
/* Fixtures and helpers. */

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_store_node.XXXXXX", t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);
	unsetenv("STORKFS_LMDB_MAPSIZE");
	stork_error_clear();
}

static void teardown(void)
{
	unit_tmpdir_rm(tmpdir);
}

/* Deterministic content number i: 1..3000 bytes. */
static size_t content(unsigned i, uint8_t *buf, size_t cap)
{
	size_t len = 1 + (i * 37u) % 3000, j;

	ck_assert_uint_le(len, cap);
	for (j = 0; j < len; j++)
		buf[j] = (uint8_t)(i * 131u + j * 7u + (j >> 8));
	memcpy(buf, &i, len < sizeof(i) ? len : sizeof(i));
	return len;
}

static int insert(struct store *s, const void *buf, size_t len, uint8_t id[VERIFY_HASH_LEN])
{
	struct store_insert *ins = NULL;
	int r;

	if (verify_sha256(buf, len, id) < 0)
		return -EIO;
	r = store_insert_new(s, id, len, &ins);
	if (r < 0)
		return r;
	r = store_insert_write(ins, buf, len);
	if (r < 0) {
		store_insert_abort(ins);
		return r;
	}
	return store_insert_commit(ins);
}

static void insert_ok(struct store *s, const void *buf, size_t len, uint8_t id[VERIFY_HASH_LEN])
{
	int r = insert(s, buf, len, id);

	ck_assert_msg(r == 0, "insert: %s: %s", storkfs_strerror(r), stork_error_detail());
}

/* STOREDIR/objects/ab/<hex>, the object. */
static void objpath(const uint8_t id[VERIFY_HASH_LEN], char *out, size_t len)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(out, len, "%s/objects/%.2s/%s", storedir, hex, hex);
}

/* STOREDIR/objects/ab/<hex>.<octal mode>, its variant for mode. */
static void varpath(const uint8_t id[VERIFY_HASH_LEN], unsigned mode, char *out, size_t len)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(out, len, "%s/objects/%.2s/%s.%o", storedir, hex, hex, mode);
}

/* STOREDIR/objects/ab/, the directory of the object. */
static void subpath(const uint8_t id[VERIFY_HASH_LEN], char *out, size_t len)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(out, len, "%s/objects/%.2s", storedir, hex);
}

static void spath(char *out, size_t len, const char *rel)
{
	snprintf(out, len, "%s/%s", storedir, rel);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Entries of a directory other than . and .. */
static size_t count_dir(const char *path)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(path);

	ck_assert_msg(d, "opendir %s: %s", path, strerror(errno));
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static size_t count_tmp(void)
{
	char p[400];

	spath(p, sizeof(p), "tmp");
	return count_dir(p);
}

/* Read all of fd from offset 0 and compare with buf. */
static bool fd_holds(int fd, const void *buf, size_t len)
{
	uint8_t *got = malloc(len + 1);
	ssize_t n;
	bool same;

	ck_assert_ptr_nonnull(got);
	n = pread(fd, got, len + 1, 0);
	same = n == (ssize_t)len && memcmp(got, buf, len) == 0;
	free(got);
	return same;
}

static bool file_holds(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool same;

	if (fd < 0)
		return false;
	same = fd_holds(fd, buf, len);
	close(fd);
	return same;
}

static void write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* mkdir the directory holding path (objects/ab/), if missing. */
static void make_parent(const char *path)
{
	char *dir = strdup(path);

	ck_assert_ptr_nonnull(dir);
	*strrchr(dir, '/') = '\0';
	ck_assert(mkdir(dir, 0755) == 0 || errno == EEXIST);
	free(dir);
}

/* Clear FS_IMMUTABLE_FL (a linked variant has it), as root tampering with the store would. */
static void make_mutable(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), fl;

	ck_assert_int_ge(fd, 0);
	if (ioctl(fd, FS_IOC_GETFLAGS, &fl) == 0 && (fl & FS_IMMUTABLE_FL)) {
		fl &= ~FS_IMMUTABLE_FL;
		ck_assert_int_eq(ioctl(fd, FS_IOC_SETFLAGS, &fl), 0);
	}
	close(fd);
}

/* Whether FS_IMMUTABLE_FL is set on path. */
static bool is_immutable(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), fl = 0;

	ck_assert_int_ge(fd, 0);
	if (ioctl(fd, FS_IOC_GETFLAGS, &fl) < 0)
		fl = 0;
	close(fd);
	return fl & FS_IMMUTABLE_FL;
}

/* Flip one byte of a (read-only) object file in place. */
static void flip_byte(const char *path, off_t off)
{
	struct stat st;
	uint8_t b;
	int fd;

	make_mutable(path);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(chmod(path, 0644), 0);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
	ck_assert_int_eq(chmod(path, st.st_mode & 07777), 0);
}

static void truncate_file(const char *path, off_t len)
{
	make_mutable(path);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(truncate(path, len), 0);
	ck_assert_int_eq(chmod(path, 0444), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Insert, look up, open, remove. */

START_TEST(node_insert_lookup_open_remove_round_trip)
{
	static const char hello[] = "hello\n";
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN], eid[VERIFY_HASH_LEN];
	struct store_objinfo info;
	struct store_stats st;
	char path[400];
	struct stat sb;
	time_t before = time(NULL);
	int fd = -1;

	ck_assert_str_eq(store_dir(s), storedir);
	/* A new store is its owner's alone: it holds setuid variants. */
	ck_assert_int_eq(stat(storedir, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0700);
	insert_ok(s, hello, 6, id);
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.size, 6);
	ck_assert_uint_eq(info.pins, 0);
	ck_assert_int_ge(info.last_use, before);
	ck_assert_int_le(info.last_use, time(NULL));

	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	ck_assert(fd_holds(fd, hello, 6));
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0444);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
	objpath(id, path, sizeof(path));
	ck_assert(file_holds(path, hello, 6));
	ck_assert_uint_eq(count_tmp(), 0);

	/* The empty object is an object too. */
	insert_ok(s, "", 0, eid);
	ck_assert_int_eq(store_object_open(s, eid, &fd), 0);
	ck_assert(fd_holds(fd, "", 0));
	close(fd);

	ck_assert_int_eq(store_stats(s, &st), 0);
	ck_assert_uint_eq(st.objects, 2);
	ck_assert_uint_eq(st.bytes, 6);
	ck_assert_uint_eq(st.pinned, 0);
	store_stats_fini(&st);

	ck_assert_int_eq(store_object_remove(s, id), 0);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	ck_assert_int_eq(store_object_open(s, id, &fd), -ENOENT);
	ck_assert(!exists(path));
	ck_assert_int_eq(store_object_remove(s, id), -ENOENT);
	ck_assert_int_eq(store_object_info(s, eid, &info), 0);
	store_close(s);

	/* Reopening finds what was left. */
	s = unit_store_open(storedir);
	ck_assert_int_eq(store_object_info(s, eid, &info), 0);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	store_close(s);
}
END_TEST

START_TEST(node_commit_refuses_wrong_hash_and_wrong_size_leaving_nothing)
{
	struct store *s;
	struct store_insert *ins = NULL;
	uint8_t id[VERIFY_HASH_LEN];
	struct store_objinfo info;
	char path[400], hex[VERIFY_HASH_HEX];

	/* Named temporary files, so that what is left in tmp/ can be counted. */
	setenv("STORK_STORE_NAMED_TMP", "1", 1);
	s = unit_store_open(storedir);

	ck_assert_int_eq(verify_sha256("hello", 5, id), 0);
	verify_hex(id, VERIFY_HASH_LEN, hex);
	objpath(id, path, sizeof(path));

	/* Right size, wrong bytes. */
	ck_assert_int_eq(store_insert_new(s, id, 5, &ins), 0);
	ck_assert_uint_eq(count_tmp(), 1);
	ck_assert_int_eq(store_insert_write(ins, "hellp", 5), 0);
	ck_assert_int_eq(store_insert_commit(ins), STORK_EBADHASH);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), hex));
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	ck_assert(!exists(path));
	ck_assert_uint_eq(count_tmp(), 0);

	/* Too short. */
	ck_assert_int_eq(store_insert_new(s, id, 5, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "hell", 4), 0);
	ck_assert_int_eq(store_insert_commit(ins), STORK_EBADLEN);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	ck_assert(!exists(path));
	ck_assert_uint_eq(count_tmp(), 0);

	/* Too long: refused at the write that goes past the size. */
	ck_assert_int_eq(store_insert_new(s, id, 5, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "hel", 3), 0);
	ck_assert_int_eq(store_insert_write(ins, "lo!", 3), STORK_EBADLEN);
	store_insert_abort(ins);
	ck_assert(!exists(path));
	ck_assert_uint_eq(count_tmp(), 0);

	/* A size the id does not have, with the id's bytes. */
	ck_assert_int_eq(store_insert_new(s, id, 6, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "hello", 5), 0);
	ck_assert_int_eq(store_insert_commit(ins), STORK_EBADLEN);
	ck_assert_uint_eq(count_tmp(), 0);

	/* Abort alone, and abort of NULL. */
	ck_assert_int_eq(store_insert_new(s, id, 5, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "hello", 5), 0);
	store_insert_abort(ins);
	store_insert_abort(NULL);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	ck_assert(!exists(path));
	ck_assert_uint_eq(count_tmp(), 0);
	store_close(s);
}
END_TEST

START_TEST(node_reset_then_rewrite_commits)
{
	struct store *s = unit_store_open(storedir);
	struct store_insert *ins = NULL;
	uint8_t id[VERIFY_HASH_LEN];
	char path[400];
	int fd;

	ck_assert_int_eq(verify_sha256("0123456789", 10, id), 0);
	ck_assert_int_eq(store_insert_new(s, id, 10, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "abcdefgh", 8), 0); /* a lying mirror */
	ck_assert_int_eq(store_insert_reset(ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "01234", 5), 0);
	ck_assert_int_eq(store_insert_write(ins, "56789", 5), 0);
	ck_assert_int_eq(store_insert_commit(ins), 0);
	objpath(id, path, sizeof(path));
	ck_assert(file_holds(path, "0123456789", 10));
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	close(fd);
	ck_assert_uint_eq(count_tmp(), 0);
	store_close(s);
}
END_TEST

struct same_ctx {
	struct store *s;
	const uint8_t *buf;
	size_t len;
	int r;
};

static void *insert_same(void *arg)
{
	struct same_ctx *c = arg;
	uint8_t id[VERIFY_HASH_LEN];

	c->r = insert(c->s, c->buf, c->len, id);
	return NULL;
}

START_TEST(node_same_object_inserted_twice_keeps_one_file)
{
	struct store *s = unit_store_open(storedir);
	struct store_insert *a = NULL, *b = NULL;
	uint8_t id[VERIFY_HASH_LEN], *big;
	struct same_ctx c[8];
	pthread_t th[8];
	char path[400], dir[410];
	size_t big_len = 1 << 20, i;
	int fd;

	/* Two writers of one object, interleaved in one thread. */
	ck_assert_int_eq(verify_sha256("twice", 5, id), 0);
	ck_assert_int_eq(store_insert_new(s, id, 5, &a), 0);
	ck_assert_int_eq(store_insert_new(s, id, 5, &b), 0);
	ck_assert_int_eq(store_insert_write(a, "twice", 5), 0);
	ck_assert_int_eq(store_insert_write(b, "twice", 5), 0);
	ck_assert_int_eq(store_insert_commit(a), 0);
	ck_assert_int_eq(store_insert_commit(b), 0);
	objpath(id, path, sizeof(path));
	ck_assert(file_holds(path, "twice", 5));
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	ck_assert_uint_eq(count_dir(dir), 1);
	ck_assert_uint_eq(count_tmp(), 0);

	/* Eight threads at once. */
	big = malloc(big_len);
	ck_assert_ptr_nonnull(big);
	for (i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i * 2654435761u >> 13);
	for (i = 0; i < 8; i++) {
		c[i] = (struct same_ctx){s, big, big_len, -1};
		ck_assert_int_eq(pthread_create(&th[i], NULL, insert_same, &c[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(c[i].r == 0, "thread %zu: %s", i, storkfs_strerror(c[i].r));
	}
	ck_assert_int_eq(verify_sha256(big, big_len, id), 0);
	objpath(id, path, sizeof(path));
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	ck_assert_uint_eq(count_dir(dir), 1);
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	ck_assert(fd_holds(fd, big, big_len));
	close(fd);
	ck_assert_uint_eq(count_tmp(), 0);
	free(big);
	store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Leftovers, unindexed and missing files. */

START_TEST(node_open_removes_dead_writers_leftovers_keeps_live_ones)
{
	char dead[400], live_child[400], live_here[400];
	struct store *s, *s2;
	struct store_insert *ins = NULL;
	uint8_t id[VERIFY_HASH_LEN];

	/* Named temporary files (the fallback without O_TMPFILE), which a sweeper can see. */
	setenv("STORK_STORE_NAMED_TMP", "1", 1);
	struct store_objinfo info;
	int ready[2], go[2], fd_here, status;
	pid_t pid;
	char c;

	s = unit_store_open(storedir); /* creates the layout */
	store_close(s);
	spath(dead, sizeof(dead), "tmp/.part-dead01");
	spath(live_child, sizeof(live_child), "tmp/.part-live01");
	spath(live_here, sizeof(live_here), "tmp/.part-live02");
	write_file(dead, "half", 4, 0600);

	/* A writer in another process. */
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(live_child, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		if (fd < 0 || flock(fd, LOCK_EX) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		if (read(go[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	/* A writer in this process, through its own open file description. */
	fd_here = open(live_here, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd_here, 0);
	ck_assert_int_eq(flock(fd_here, LOCK_EX), 0);

	s = unit_store_open(storedir);
	ck_assert(!exists(dead));
	ck_assert(exists(live_child));
	ck_assert(exists(live_here));

	/* An insert in flight survives another handle's open of the same store. */
	ck_assert_int_eq(verify_sha256("inflight", 8, id), 0);
	ck_assert_int_eq(store_insert_new(s, id, 8, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "inflight", 8), 0);
	ck_assert_int_eq(store_open(storedir, &s2), 0);
	ck_assert_uint_eq(count_tmp(), 3);
	ck_assert_int_eq(store_insert_commit(ins), 0);
	ck_assert_int_eq(store_object_info(s2, id, &info), 0);
	store_close(s2);
	store_close(s);

	/* Once the writers are gone, their files are leftovers. */
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd_here);
	s = unit_store_open(storedir);
	ck_assert(!exists(live_child));
	ck_assert(!exists(live_here));
	ck_assert_uint_eq(count_tmp(), 0);
	store_close(s);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}
END_TEST

START_TEST(node_unindexed_object_file_is_indexed_by_a_later_insert)
{
	static const char good[] = "a good object left by a crash";
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN], id2[VERIFY_HASH_LEN];
	struct store_objinfo info;
	char path[400];
	struct stat st1, st2;

	/* Renamed into place, then a crash before the index was written. */
	ck_assert_int_eq(verify_sha256(good, sizeof(good), id), 0);
	objpath(id, path, sizeof(path));
	make_parent(path);
	write_file(path, good, sizeof(good), 0444);
	ck_assert_int_eq(stat(path, &st1), 0);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	insert_ok(s, good, sizeof(good), id);
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.size, sizeof(good));
	ck_assert_int_eq(stat(path, &st2), 0);
	ck_assert_uint_eq(st1.st_ino, st2.st_ino); /* the good file was kept */

	/* A rotten file under the name is replaced by the verified one. */
	ck_assert_int_eq(verify_sha256("fresh bytes", 11, id2), 0);
	objpath(id2, path, sizeof(path));
	make_parent(path);
	write_file(path, "rotten byte", 11, 0444);
	insert_ok(s, "fresh bytes", 11, id2);
	ck_assert(file_holds(path, "fresh bytes", 11));
	ck_assert_uint_eq(count_tmp(), 0);
	store_close(s);
}
END_TEST

START_TEST(node_missing_or_resized_object_file_drops_the_entry)
{
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN], id2[VERIFY_HASH_LEN];
	struct store_objinfo info;
	char path[400];
	int fd = -1, dirfd;

	insert_ok(s, "soon gone", 9, id);
	objpath(id, path, sizeof(path));
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(store_object_info(s, id, &info), 0); /* the index does not know yet */
	ck_assert_int_eq(store_object_open(s, id, &fd), -ENOENT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "missing"));
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	/* And it can be fetched again. */
	insert_ok(s, "soon gone", 9, id);
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	close(fd);

	insert_ok(s, "soon shorter", 12, id2);
	objpath(id2, path, sizeof(path));
	truncate_file(path, 4);
	ck_assert_int_eq(store_object_open(s, id2, &fd), -ENOENT);
	ck_assert_int_eq(store_object_info(s, id2, &info), -ENOENT);

	/* Linking notices it too. */
	insert_ok(s, "soon shorter", 12, id2);
	ck_assert(file_holds(path, "soon shorter", 12));
	ck_assert_int_eq(unlink(path), 0);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_eq(store_object_link(s, id2, 0644, dirfd, "x"), -ENOENT);
	ck_assert_int_eq(store_object_info(s, id2, &info), -ENOENT);
	close(dirfd);
	store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Hard links. */

START_TEST(node_link_gives_each_mode_its_own_variant)
{
	static const char prog[] = "#!/bin/sh\necho hi\n";
	const size_t len = sizeof(prog) - 1;
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN], other[VERIFY_HASH_LEN];
	char obj[400], v644[400], v755[400], v4755[400], sub[400], p[400];
	struct stat so, sa, sb, sc, sd, se, sf, sv;
	int dirfd;

	insert_ok(s, prog, len, id);
	objpath(id, obj, sizeof(obj));
	varpath(id, 0644, v644, sizeof(v644));
	varpath(id, 0755, v755, sizeof(v755));
	varpath(id, 04755, v4755, sizeof(v4755));
	subpath(id, sub, sizeof(sub));
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);

	/* Two links of one mode share the variant's inode, which is not the object's. */
	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "a"), 0);
	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "b"), 0);
	ck_assert_int_eq(fstatat(dirfd, "a", &sa, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_eq(fstatat(dirfd, "b", &sb, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_eq(stat(v644, &sv), 0);
	ck_assert_uint_eq(sa.st_mode & 07777, 0644);
	ck_assert_uint_eq(sa.st_ino, sb.st_ino);
	ck_assert_uint_eq(sa.st_ino, sv.st_ino);
	ck_assert_uint_eq(sa.st_nlink, 3);
	ck_assert_int_eq(sa.st_mtim.tv_sec, 1); /* the variants' mtime */
	ck_assert_int_eq(stat(obj, &so), 0);
	ck_assert_uint_ne(sa.st_ino, so.st_ino);
	snprintf(p, sizeof(p), "%s/a", tmpdir);
	ck_assert(file_holds(p, prog, len));

	/* Another mode, another inode. */
	ck_assert_int_eq(store_object_link(s, id, 0755, dirfd, "c"), 0);
	ck_assert_int_eq(fstatat(dirfd, "c", &sc, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_uint_eq(sc.st_mode & 07777, 0755);
	ck_assert_uint_ne(sc.st_ino, sa.st_ino);
	ck_assert_uint_ne(sc.st_ino, so.st_ino);
	ck_assert_int_eq(stat(v755, &sv), 0);
	ck_assert_uint_eq(sc.st_ino, sv.st_ino);
	snprintf(p, sizeof(p), "%s/c", tmpdir);
	ck_assert(file_holds(p, prog, len));

	/* setuid keeps its bit; only the permission bits of mode count; 0600 too. */
	ck_assert_int_eq(store_object_link(s, id, 04755, dirfd, "d"), 0);
	ck_assert_int_eq(fstatat(dirfd, "d", &sd, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_uint_eq(sd.st_mode & 07777, 04755);
	ck_assert_int_eq(stat(v4755, &sv), 0);
	ck_assert_uint_eq(sd.st_ino, sv.st_ino);
	snprintf(p, sizeof(p), "%s/d", tmpdir);
	ck_assert(file_holds(p, prog, len));
	ck_assert_int_eq(store_object_link(s, id, S_IFREG | 0644, dirfd, "e"), 0);
	ck_assert_int_eq(fstatat(dirfd, "e", &se, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_uint_eq(se.st_ino, sa.st_ino);
	ck_assert_int_eq(store_object_link(s, id, 0600, dirfd, "f"), 0);
	ck_assert_int_eq(fstatat(dirfd, "f", &sf, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_uint_eq(sf.st_mode & 07777, 0600);
	ck_assert_uint_ne(sf.st_ino, sa.st_ino);
	ck_assert_uint_eq(count_dir(sub), 5); /* the object, .644, .755, .4755, .600 */
	ck_assert_uint_eq(count_tmp(), 0);

	/* The object reads are served from is untouched: 0444, linked nowhere. */
	ck_assert_int_eq(stat(obj, &so), 0);
	ck_assert_uint_eq(so.st_mode & 07777, 0444);
	ck_assert_uint_eq(so.st_nlink, 1);
	ck_assert(file_holds(obj, prog, len));

	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "a"), -EEXIST);
	ck_assert_int_eq(verify_sha256("never stored", 12, other), 0);
	ck_assert_int_eq(store_object_link(s, other, 0644, dirfd, "none"), -ENOENT);

	/* Removing the object removes every variant; the links stay, they are copies now. */
	ck_assert_int_eq(store_object_remove(s, id), 0);
	ck_assert(!exists(obj));
	ck_assert(!exists(v644));
	ck_assert(!exists(v755));
	ck_assert(!exists(v4755));
	ck_assert_uint_eq(count_dir(sub), 0);
	snprintf(p, sizeof(p), "%s/d", tmpdir);
	ck_assert(file_holds(p, prog, len));
	close(dirfd);
	store_close(s);
}
END_TEST

/* Flip byte off of dirfd/name through the link (it must be writable by us). */
static void write_through(int dirfd, const char *name, off_t off)
{
	uint8_t b;
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "%s: %s", name, strerror(errno));
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

START_TEST(node_link_remakes_a_variant_cut_short_chmoded_or_written_to)
{
	static const char prog[] = "#!/bin/sh\necho remade\n";
	const size_t len = sizeof(prog) - 1;
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN];
	char v755[400], p[400];
	struct stat s1, s2, s3, s4;
	int dirfd, fd;

	insert_ok(s, prog, len, id);
	varpath(id, 0755, v755, sizeof(v755));
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(store_object_link(s, id, 0755, dirfd, "t1"), 0);
	ck_assert_int_eq(fstatat(dirfd, "t1", &s1, 0), 0);

	/* Cut short (mode restored): made again from the object. */
	truncate_file(v755, 3);
	ck_assert_int_eq(chmod(v755, 0755), 0);
	ck_assert_int_eq(store_object_link(s, id, 0755, dirfd, "t2"), 0);
	ck_assert_int_eq(fstatat(dirfd, "t2", &s2, 0), 0);
	ck_assert_uint_ne(s2.st_ino, s1.st_ino);
	ck_assert_uint_eq(s2.st_mode & 07777, 0755);
	snprintf(p, sizeof(p), "%s/t2", tmpdir);
	ck_assert(file_holds(p, prog, len));

	/* chmod()ed: made again with its name's mode. */
	make_mutable(v755);
	ck_assert_int_eq(chmod(v755, 0700), 0);
	ck_assert_int_eq(store_object_link(s, id, 0755, dirfd, "t3"), 0);
	ck_assert_int_eq(fstatat(dirfd, "t3", &s3, 0), 0);
	ck_assert_uint_ne(s3.st_ino, s2.st_ino);
	ck_assert_uint_eq(s3.st_mode & 07777, 0755);

	/* Written through a link, same size: the object is untouched, the next link gets a new
	 * variant, the written one stays with the links it has. */
	snprintf(p, sizeof(p), "%s/t3", tmpdir);
	make_mutable(p);
	write_through(dirfd, "t3", 5);
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	ck_assert(fd_holds(fd, prog, len));
	close(fd);
	ck_assert_int_eq(store_object_link(s, id, 0755, dirfd, "t4"), 0);
	ck_assert_int_eq(fstatat(dirfd, "t4", &s4, 0), 0);
	ck_assert_uint_ne(s4.st_ino, s3.st_ino);
	snprintf(p, sizeof(p), "%s/t4", tmpdir);
	ck_assert(file_holds(p, prog, len));
	snprintf(p, sizeof(p), "%s/t3", tmpdir);
	ck_assert(!file_holds(p, prog, len));
	ck_assert(file_holds(v755, prog, len));
	ck_assert_uint_eq(count_tmp(), 0);
	close(dirfd);
	store_close(s);
}
END_TEST

/* Issue 11, item 4: a linked variant is immutable, so a write through one tree's link (root's
 * included) fails instead of reaching every tree; a mode everyone may write is not linked
 * (-EXDEV: copy); removing the object unlinks its immutable variants; store_unlink removes a
 * link and leaves the variant immutable for the links that remain. Where the file system has
 * no immutable attribute, store_object_link says -EXDEV. */
START_TEST(node_link_variant_is_immutable)
{
	static const char body[] = "shared between slices\n";
	const size_t len = sizeof(body) - 1;
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN];
	char v644[400], p[400];
	int dirfd, fd, r;

	insert_ok(s, body, len, id);
	varpath(id, 0644, v644, sizeof(v644));
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(store_object_link(s, id, 0666, dirfd, "ww"), -EXDEV);
	ck_assert_int_eq(faccessat(dirfd, "ww", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	r = store_object_link(s, id, 0644, dirfd, "slice1");
	if (r == -EXDEV) {
		/* tmpfs before 6.0, or no CAP_LINUX_IMMUTABLE: nothing linked, copy instead. */
		ck_assert_int_eq(faccessat(dirfd, "slice1", F_OK, AT_SYMLINK_NOFOLLOW), -1);
		close(dirfd);
		store_close(s);
		return;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "slice2"), 0);
	ck_assert(is_immutable(v644));
	fd = openat(dirfd, "slice1", O_WRONLY | O_APPEND | O_CLOEXEC);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, EPERM);
	snprintf(p, sizeof(p), "%s/slice2", tmpdir);
	ck_assert(file_holds(p, body, len));
	/* One slice's link goes; the variant and the other link stay immutable. */
	ck_assert_int_eq(store_unlink(dirfd, "slice1"), 0);
	ck_assert(is_immutable(v644));
	ck_assert(is_immutable(p));
	/* Removing the object removes its immutable variant; the last link keeps the inode. */
	ck_assert_int_eq(store_object_remove(s, id), 0);
	ck_assert(!exists(v644));
	ck_assert(file_holds(p, body, len));
	ck_assert_int_eq(store_unlink(dirfd, "slice2"), 0);
	close(dirfd);
	store_close(s);
}
END_TEST

START_TEST(node_link_refuses_a_rotten_object_and_drops_it)
{
	static const char body[] = "rots in place";
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN];
	struct store_objinfo info;
	char obj[400], v644[400];
	int dirfd;

	insert_ok(s, body, sizeof(body) - 1, id);
	objpath(id, obj, sizeof(obj));
	varpath(id, 0644, v644, sizeof(v644));
	flip_byte(obj, 2); /* same size: reads do not notice, the variant's hash does */
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "r"), -ENOENT);
	ck_assert_msg(strstr(stork_error_detail(), "content hashes to"), "%s",
		      stork_error_detail());
	ck_assert(!exists(v644));
	ck_assert_int_eq(faccessat(dirfd, "r", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	ck_assert_uint_eq(count_tmp(), 0);
	/* Fetched again, it links. */
	insert_ok(s, body, sizeof(body) - 1, id);
	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "r"), 0);
	ck_assert(file_holds(v644, body, sizeof(body) - 1));
	close(dirfd);
	store_close(s);
}
END_TEST

struct checked_arg {
	struct store *s;
	const uint8_t *id;
	int ret;
};

static void *open_checked_one(void *arg)
{
	struct checked_arg *a = arg;
	int fd = -1;

	a->ret = store_object_open_checked(a->s, a->id, &fd);
	if (fd >= 0)
		close(fd);
	return NULL;
}

START_TEST(node_open_checked_hashes_each_file_once)
{
	enum { SIZE = 1 << 20 };
	struct store *s = unit_store_open(storedir);
	uint8_t ida[VERIFY_HASH_LEN], idb[VERIFY_HASH_LEN];
	uint8_t *buf = malloc(SIZE);
	char obj[400];
	uint64_t before;
	size_t i;
	int fd = -1;

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < SIZE; i++)
		buf[i] = (uint8_t)(i * 7 + i / 251);
	insert_ok(s, buf, SIZE, ida);
	/* The first open through this handle hashes it: its bytes are read. */
	before = unit_bytes_read();
	ck_assert_int_eq(store_object_open_checked(s, ida, &fd), 0);
	close(fd);
	ck_assert_uint_ge(unit_bytes_read() - before, SIZE);
	/* The same file again: remembered, not read. */
	before = unit_bytes_read();
	ck_assert_int_eq(store_object_open_checked(s, ida, &fd), 0);
	close(fd);
	ck_assert_uint_lt(unit_bytes_read() - before, SIZE / 2);
	/* An object this handle inserted was hashed as it was written: not read again. */
	buf[0] ^= 1;
	insert_ok(s, buf, SIZE, idb);
	before = unit_bytes_read();
	ck_assert_int_eq(store_object_open_checked(s, idb, &fd), 0);
	ck_assert(fd_holds(fd, buf, SIZE));
	close(fd);
	ck_assert_uint_lt(unit_bytes_read() - before, SIZE + SIZE / 2); /* fd_holds read it once */
	/* A chmod moves the change time: read again (and still right). */
	objpath(ida, obj, sizeof(obj));
	ck_assert_int_eq(chmod(obj, 0444), 0);
	before = unit_bytes_read();
	ck_assert_int_eq(store_object_open_checked(s, ida, &fd), 0);
	close(fd);
	ck_assert_uint_ge(unit_bytes_read() - before, SIZE);
	free(buf);
	store_close(s);
}
END_TEST

START_TEST(node_open_checked_refuses_a_rotten_or_swapped_object_and_drops_it)
{
	static const char body[] = "served through a mount";
	struct store *s = unit_store_open(storedir);
	struct checked_arg args[8];
	pthread_t th[8];
	uint8_t id[VERIFY_HASH_LEN];
	struct store_objinfo info;
	char obj[400], other[400];
	char junk[sizeof(body) - 1];
	size_t i;
	int fd = -1;

	insert_ok(s, body, sizeof(body) - 1, id);
	objpath(id, obj, sizeof(obj));
	/* Many openers at once: each gets the object (one of them hashes it). */
	for (i = 0; i < 8; i++) {
		args[i] = (struct checked_arg){.s = s, .id = id, .ret = 1};
		ck_assert_int_eq(pthread_create(&th[i], NULL, open_checked_one, &args[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(args[i].ret, 0);
	}
	ck_assert_int_eq(store_object_open_checked(s, id, &fd), 0);
	ck_assert(fd_holds(fd, body, sizeof(body) - 1));
	close(fd);

	/* Rotten in place after it was checked: its change time moved, so it is hashed again. */
	flip_byte(obj, 3);
	ck_assert_int_eq(store_object_open(s, id, &fd), 0); /* the size alone looks right */
	close(fd);
	ck_assert_int_eq(store_object_open_checked(s, id, &fd), STORK_EBADHASH);
	ck_assert_msg(strstr(stork_error_detail(), "content hashes to"), "%s",
		      stork_error_detail());
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), obj));
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	/* Fetched again: the insert replaces the bad file. */
	insert_ok(s, body, sizeof(body) - 1, id);
	ck_assert(file_holds(obj, body, sizeof(body) - 1));
	ck_assert_int_eq(store_object_open_checked(s, id, &fd), 0);
	close(fd);

	/* Swapped: another file of its size renamed over it. */
	memset(junk, 'x', sizeof(junk));
	snprintf(other, sizeof(other), "%s/swap", tmpdir);
	write_file(other, junk, sizeof(junk), 0444);
	ck_assert_int_eq(rename(other, obj), 0);
	ck_assert_int_eq(store_object_open_checked(s, id, &fd), STORK_EBADHASH);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	insert_ok(s, body, sizeof(body) - 1, id);
	ck_assert_int_eq(store_object_open_checked(s, id, &fd), 0);
	ck_assert(fd_holds(fd, body, sizeof(body) - 1));
	close(fd);
	store_close(s);
}
END_TEST

START_TEST(node_link_to_another_file_system_is_exdev)
{
	char shm[] = "/dev/shm/test_store_node.XXXXXX", p[400];
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN];
	struct stat a, b;
	int dirfd;

	insert_ok(s, "far away", 8, id);
	if (!mkdtemp(shm)) {
		store_close(s);
		return; /* no /dev/shm here */
	}
	ck_assert_int_eq(stat(shm, &a), 0);
	ck_assert_int_eq(stat(storedir, &b), 0);
	dirfd = open(shm, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);
	if (a.st_dev != b.st_dev) {
		ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "f"), -EXDEV);
		ck_assert_int_eq(store_object_link(s, id, 0755, dirfd, "x"), -EXDEV);
		snprintf(p, sizeof(p), "%s/f", shm);
		ck_assert(!exists(p));
	}
	close(dirfd);
	snprintf(p, sizeof(p), "%s/f", shm);
	unlink(p);
	snprintf(p, sizeof(p), "%s/x", shm);
	unlink(p);
	rmdir(shm);
	store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Metadata, manifests, repositories, pins. */

START_TEST(node_meta_and_manifests_round_trip)
{
	static const char manifest[] = "{\"name\":\"hello\"}";
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN], *buf = NULL;
	struct store_stats st;
	char longname[600];
	size_t len = 0;

	ck_assert_int_eq(store_meta_put(s, "repoA", "root.json", "{1}", 3), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "timestamp.json", "{ts}", 4), 0);
	ck_assert_int_eq(store_meta_put(s, "repoB", "root.json", "{B}", 3), 0);
	/* "ab" + "c" and "a" + "bc" are different keys. */
	ck_assert_int_eq(store_meta_put(s, "ab", "c", "x", 1), 0);
	ck_assert_int_eq(store_meta_put(s, "a", "bc", "yy", 2), 0);
	ck_assert_int_eq(store_meta_get(s, "repoA", "root.json", &buf, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(buf, "{1}", 3);
	free(buf);
	ck_assert_int_eq(store_meta_put(s, "repoA", "root.json", "{2!}", 4), 0);
	ck_assert_int_eq(store_meta_get(s, "repoA", "root.json", &buf, &len), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(buf, "{2!}", 4);
	free(buf);
	ck_assert_int_eq(store_meta_get(s, "ab", "c", &buf, &len), 0);
	ck_assert_uint_eq(len, 1);
	free(buf);
	ck_assert_int_eq(store_meta_get(s, "a", "bc", &buf, &len), 0);
	ck_assert_uint_eq(len, 2);
	free(buf);
	ck_assert_int_eq(store_meta_get(s, "repoA", "snapshot.json", &buf, &len), -ENOENT);
	ck_assert_int_eq(store_meta_get(s, "repoC", "root.json", &buf, &len), -ENOENT);
	ck_assert_int_eq(store_meta_put(s, "", "root.json", "x", 1), -EINVAL);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(store_meta_put(s, "repoA", longname, "x", 1), -ENAMETOOLONG);
	/* An empty value is a value. */
	ck_assert_int_eq(store_meta_put(s, "repoB", "empty.json", "", 0), 0);
	ck_assert_int_eq(store_meta_get(s, "repoB", "empty.json", &buf, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_nonnull(buf);
	free(buf);

	/* Manifests are checked against their id. */
	ck_assert_int_eq(verify_sha256(manifest, sizeof(manifest) - 1, id), 0);
	ck_assert_int_eq(store_manifest_put(s, id, "{\"name\":\"evil\"}", 15), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "hashes to"));
	ck_assert_int_eq(store_manifest_get(s, id, &buf, &len), -ENOENT);
	ck_assert_int_eq(store_manifest_put(s, id, manifest, sizeof(manifest) - 1), 0);
	ck_assert_int_eq(store_manifest_get(s, id, &buf, &len), 0);
	ck_assert_uint_eq(len, sizeof(manifest) - 1);
	ck_assert_mem_eq(buf, manifest, len);
	free(buf);

	/* Status per repository. */
	ck_assert_int_eq(store_repo_note_refresh(s, "repoA", "https://m1.example/r", 1700000000),
			 0);
	ck_assert_int_eq(store_repo_note_refresh(s, "repoA", "https://m2.example/r", 1700000100),
			 0);
	ck_assert_int_eq(store_repo_note_refresh(s, "repoZ", "file:///srv/z", 1600000000), 0);
	ck_assert_int_eq(store_stats(s, &st), 0);
	ck_assert_uint_eq(st.manifests, 1);
	ck_assert_uint_eq(st.objects, 0);
	ck_assert_uint_eq(st.nrepos, 5); /* a, ab, repoA, repoB, repoZ */
	ck_assert_str_eq(st.repos[0].repo, "a");
	ck_assert_str_eq(st.repos[1].repo, "ab");
	ck_assert_str_eq(st.repos[2].repo, "repoA");
	ck_assert_str_eq(st.repos[2].url, "https://m2.example/r");
	ck_assert_int_eq(st.repos[2].last_refresh, 1700000100);
	ck_assert_uint_eq(st.repos[2].nmeta, 2);
	ck_assert_str_eq(st.repos[3].repo, "repoB");
	ck_assert_str_eq(st.repos[3].url, "");
	ck_assert_int_eq(st.repos[3].last_refresh, 0);
	ck_assert_uint_eq(st.repos[3].nmeta, 2);
	ck_assert_str_eq(st.repos[4].repo, "repoZ");
	ck_assert_uint_eq(st.repos[4].nmeta, 0);
	ck_assert_int_eq(st.repos[4].last_refresh, 1600000000);
	store_stats_fini(&st);
	store_stats_fini(NULL);
	store_close(s);

	/* All of it survives a reopen: a node can start offline. */
	s = unit_store_open(storedir);
	ck_assert_int_eq(store_manifest_get(s, id, &buf, &len), 0);
	free(buf);
	ck_assert_int_eq(store_meta_get(s, "repoB", "root.json", &buf, &len), 0);
	ck_assert_mem_eq(buf, "{B}", 3);
	free(buf);
	store_close(s);
}
END_TEST

START_TEST(node_pins_count_and_refuse_unpin_below_zero)
{
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN], other[VERIFY_HASH_LEN];
	struct store_objinfo info;
	struct store_stats st;

	insert_ok(s, "pinned", 6, id);
	insert_ok(s, "loose", 5, other);
	ck_assert_int_eq(store_object_pin(s, id, true), 0);
	ck_assert_int_eq(store_object_pin(s, id, true), 0);
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.pins, 2);
	ck_assert_int_eq(store_stats(s, &st), 0);
	ck_assert_uint_eq(st.pinned, 1);
	ck_assert_uint_eq(st.objects, 2);
	ck_assert_uint_eq(st.bytes, 11);
	store_stats_fini(&st);

	/* A second insert of the object keeps its pins. */
	insert_ok(s, "pinned", 6, id);
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.pins, 2);

	ck_assert_int_eq(store_object_pin(s, id, false), 0);
	ck_assert_int_eq(store_object_pin(s, id, false), 0);
	ck_assert_int_eq(store_object_pin(s, id, false), -EINVAL);
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.pins, 0);
	ck_assert_int_eq(verify_sha256("absent", 6, other), 0);
	ck_assert_int_eq(store_object_pin(s, other, true), -ENOENT);
	store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* fsck. */

struct findings {
	char text[8192];
	size_t n;
};

static void note_problem(void *ctx, const char *path, const char *what)
{
	struct findings *f = ctx;
	size_t used = strlen(f->text);

	snprintf(f->text + used, sizeof(f->text) - used, "%s: %s\n", path, what);
	f->n++;
}

static bool found(const struct findings *f, const uint8_t id[VERIFY_HASH_LEN], const char *what)
{
	char hex[VERIFY_HASH_HEX], needle[200];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(needle, sizeof(needle), "%s: %s", hex, what);
	return strstr(f->text, needle) != NULL;
}

START_TEST(node_fsck_finds_and_repairs_each_problem)
{
	uint8_t a[32], b[32], c[32], d[32], e[32], fbad[32], g[32];
	struct store_fsck_report rep;
	struct findings fi = {{0}, 0};
	struct store_objinfo info;
	char p[600], xp[400], ghex[VERIFY_HASH_HEX];
	struct store *s = unit_store_open(storedir);
	int dirfd, fd;

	insert_ok(s, "good A", 6, a);
	insert_ok(s, "flipped B", 9, b);
	insert_ok(s, "truncated C", 11, c);
	insert_ok(s, "missing D", 9, d);
	insert_ok(s, "exec copy rots G", 16, g);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_eq(store_object_link(s, g, 0755, dirfd, "g"), 0);
	ck_assert_int_eq(store_unlink(dirfd, "g"), 0); /* a link would share the flipped byte */
	close(dirfd);

	objpath(b, p, sizeof(p));
	flip_byte(p, 3);
	objpath(c, p, sizeof(p));
	truncate_file(p, 5);
	objpath(d, p, sizeof(p));
	ck_assert_int_eq(unlink(p), 0);
	varpath(g, 0755, xp, sizeof(xp));
	flip_byte(xp, 0);
	/* Unindexed: a good object (a crash before the index), a bad one, and junk. */
	ck_assert_int_eq(verify_sha256("unindexed E", 11, e), 0);
	objpath(e, p, sizeof(p));
	make_parent(p);
	write_file(p, "unindexed E", 11, 0444);
	ck_assert_int_eq(verify_sha256("unindexed F", 11, fbad), 0);
	objpath(fbad, p, sizeof(p));
	make_parent(p);
	write_file(p, "unindexed f", 11, 0444);
	*strrchr(p, '/') = '\0';
	snprintf(p + strlen(p), sizeof(p) - strlen(p), "/junk");
	write_file(p, "junk", 4, 0644);
	/* A dead writer's leftover appearing after open. */
	spath(p, sizeof(p), "tmp/.part-stale1");
	write_file(p, "partial", 7, 0600);

	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.objects == 5 && rep.good == 1 && rep.bad == 3 && rep.missing == 1 &&
			  rep.unindexed == 2 && rep.adopted == 1 && rep.stale_tmp == 1 &&
			  rep.repaired == 0,
		      "objects %llu good %llu bad %llu missing %llu unindexed %llu tmp %llu "
		      "repaired %llu\n%s",
		      (unsigned long long)rep.objects, (unsigned long long)rep.good,
		      (unsigned long long)rep.bad, (unsigned long long)rep.missing,
		      (unsigned long long)rep.unindexed, (unsigned long long)rep.stale_tmp,
		      (unsigned long long)rep.repaired, fi.text);
	ck_assert_uint_eq(fi.n, 7);
	ck_assert_msg(found(&fi, b, "content hashes to"), "%s", fi.text);
	ck_assert_msg(found(&fi, c, "5 bytes, but indexed with 11"), "%s", fi.text);
	ck_assert_msg(found(&fi, d, "indexed but missing"), "%s", fi.text);
	verify_hex(g, VERIFY_HASH_LEN, ghex);
	ck_assert_msg(strstr(fi.text, ".755: variant: content hashes to") && strstr(fi.text, ghex),
		      "%s", fi.text);
	/* A whole, good unindexed object is an interrupted insert: finished, not reported. */
	ck_assert_msg(!strstr(fi.text, "unindexed E"), "%s", fi.text);
	ck_assert_msg(found(&fi, fbad, "not in the index, and content hashes to"), "%s", fi.text);
	ck_assert_ptr_nonnull(strstr(fi.text, "/junk: not an object name"));
	ck_assert_ptr_nonnull(strstr(fi.text, "tmp/.part-stale1: leftover"));
	/* Without repair nothing changed, but the interrupted insert was finished. */
	ck_assert(exists(p));
	ck_assert_int_eq(store_object_info(s, b, &info), 0);
	ck_assert_int_eq(store_object_info(s, e, &info), 0);

	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, true, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.bad == 3 && rep.missing == 1 && rep.unindexed == 2 &&
			  rep.stale_tmp == 1 && rep.repaired == 7,
		      "bad %llu missing %llu unindexed %llu tmp %llu repaired %llu\n%s",
		      (unsigned long long)rep.bad, (unsigned long long)rep.missing,
		      (unsigned long long)rep.unindexed, (unsigned long long)rep.stale_tmp,
		      (unsigned long long)rep.repaired, fi.text);
	ck_assert_int_eq(store_object_info(s, a, &info), 0);
	ck_assert_int_eq(store_object_info(s, b, &info), -ENOENT);
	ck_assert_int_eq(store_object_info(s, c, &info), -ENOENT);
	ck_assert_int_eq(store_object_info(s, d, &info), -ENOENT);
	ck_assert_int_eq(store_object_info(s, g, &info), 0);
	ck_assert_int_eq(store_object_info(s, e, &info), 0);
	ck_assert_uint_eq(info.size, 11);
	ck_assert_int_eq(store_object_info(s, fbad, &info), -ENOENT);
	objpath(b, p, sizeof(p));
	ck_assert(!exists(p));
	objpath(c, p, sizeof(p));
	ck_assert(!exists(p));
	objpath(fbad, p, sizeof(p));
	ck_assert(!exists(p));
	ck_assert(!exists(xp));
	ck_assert_uint_eq(count_tmp(), 0);

	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.objects == 3 && rep.good == 3 && rep.bad == 0 && rep.missing == 0 &&
			  rep.unindexed == 0 && rep.stale_tmp == 0 && rep.repaired == 0 &&
			  fi.n == 0,
		      "second fsck not clean:\n%s", fi.text);

	/* The repaired store works: the bad object can come back, the copy is made again. */
	insert_ok(s, "flipped B", 9, b);
	ck_assert_int_eq(store_object_open(s, b, &fd), 0);
	close(fd);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_eq(store_object_link(s, g, 0755, dirfd, "g2"), 0);
	close(dirfd);
	ck_assert(file_holds(xp, "exec copy rots G", 16));
	store_close(s);
}
END_TEST

/* Is "<hex>.<mode>: what" among the findings? */
static bool found_variant(const struct findings *f, const uint8_t id[VERIFY_HASH_LEN],
			  unsigned mode, const char *what)
{
	char hex[VERIFY_HASH_HEX], needle[200];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(needle, sizeof(needle), "%s.%o: %s", hex, mode, what);
	return strstr(f->text, needle) != NULL;
}

START_TEST(node_fsck_removes_a_variant_written_through_a_link)
{
	static const char body[] = "config file, 0644";
	const size_t len = sizeof(body) - 1;
	struct store_fsck_report rep;
	struct findings fi = {{0}, 0};
	struct store *s = unit_store_open(storedir);
	uint8_t id[VERIFY_HASH_LEN];
	char obj[400], v644[400], p[400];
	struct stat st;
	int dirfd, fd;

	insert_ok(s, body, len, id);
	objpath(id, obj, sizeof(obj));
	varpath(id, 0644, v644, sizeof(v644));
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "etc.conf"), 0);
	snprintf(p, sizeof(p), "%s/etc.conf", tmpdir);
	make_mutable(p); /* root with CAP_LINUX_IMMUTABLE */
	write_through(dirfd, "etc.conf", 0);
	/* What the store serves did not change. */
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	ck_assert(fd_holds(fd, body, len));
	close(fd);

	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.objects == 1 && rep.good == 0 && rep.bad == 1 && rep.repaired == 0 &&
			  fi.n == 1,
		      "%s", fi.text);
	ck_assert_msg(found_variant(&fi, id, 0644, "variant: content hashes to"), "%s", fi.text);
	ck_assert(exists(v644));

	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, true, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.bad == 1 && rep.repaired == 1, "%s", fi.text);
	ck_assert(!exists(v644));
	ck_assert_int_eq(stat(obj, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0444);
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	ck_assert(fd_holds(fd, body, len));
	close(fd);

	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.objects == 1 && rep.good == 1 && fi.n == 0, "%s", fi.text);
	/* The next link gets a good variant; the written link keeps its own bytes. */
	ck_assert_int_eq(store_object_link(s, id, 0644, dirfd, "etc2.conf"), 0);
	snprintf(p, sizeof(p), "%s/etc2.conf", tmpdir);
	ck_assert(file_holds(p, body, len));
	snprintf(p, sizeof(p), "%s/etc.conf", tmpdir);
	ck_assert(!file_holds(p, body, len));
	close(dirfd);
	store_close(s);
}
END_TEST

START_TEST(node_fsck_checks_variants_modes_and_orphans)
{
	uint8_t a[32], b[32], c[32];
	struct store_fsck_report rep;
	struct findings fi = {{0}, 0};
	struct store_objinfo info;
	char p[600], ahex[VERIFY_HASH_HEX];
	struct store *s = unit_store_open(storedir);
	int dirfd;

	insert_ok(s, "A with a chmod()ed variant", 26, a);
	insert_ok(s, "B rots, with a variant", 22, b);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(store_object_link(s, a, 0644, dirfd, "a1"), 0);
	ck_assert_int_eq(store_object_link(s, a, 0755, dirfd, "a2"), 0);
	ck_assert_int_eq(store_object_link(s, b, 0644, dirfd, "b1"), 0);
	close(dirfd);
	varpath(a, 0755, p, sizeof(p));
	make_mutable(p);
	ck_assert_int_eq(chmod(p, 0700), 0);
	objpath(b, p, sizeof(p));
	flip_byte(p, 0);
	/* A variant of an object that is not indexed, and a name that spells a mode wrongly. */
	ck_assert_int_eq(verify_sha256("C never indexed", 15, c), 0);
	varpath(c, 0644, p, sizeof(p));
	make_parent(p);
	write_file(p, "C never indexed", 15, 0644);
	verify_hex(a, VERIFY_HASH_LEN, ahex);
	snprintf(p, sizeof(p), "%s/objects/%.2s/%s.0644", storedir, ahex, ahex);
	write_file(p, "A with a chmod()ed variant", 26, 0644);

	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.objects == 2 && rep.good == 0 && rep.bad == 2 && rep.unindexed == 2 &&
			  rep.missing == 0 && rep.repaired == 0 && fi.n == 4,
		      "objects %llu good %llu bad %llu unindexed %llu\n%s",
		      (unsigned long long)rep.objects, (unsigned long long)rep.good,
		      (unsigned long long)rep.bad, (unsigned long long)rep.unindexed, fi.text);
	ck_assert_msg(found_variant(&fi, a, 0755, "variant: mode 700, but its name says 755"), "%s",
		      fi.text);
	ck_assert_msg(found(&fi, b, "content hashes to"), "%s", fi.text);
	ck_assert_msg(found_variant(&fi, c, 0644, "variant of an object the index does not list"),
		      "%s", fi.text);
	ck_assert_msg(strstr(fi.text, ".0644: not an object name"), "%s", fi.text);

	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, true, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.bad == 2 && rep.unindexed == 2 && rep.repaired == 4, "%s", fi.text);
	/* A stays with its good variant; B goes with its variant; the orphans go. */
	ck_assert_int_eq(store_object_info(s, a, &info), 0);
	objpath(a, p, sizeof(p));
	ck_assert(file_holds(p, "A with a chmod()ed variant", 26));
	varpath(a, 0644, p, sizeof(p));
	ck_assert(exists(p));
	varpath(a, 0755, p, sizeof(p));
	ck_assert(!exists(p));
	snprintf(p, sizeof(p), "%s/objects/%.2s/%s.0644", storedir, ahex, ahex);
	ck_assert(!exists(p));
	ck_assert_int_eq(store_object_info(s, b, &info), -ENOENT);
	objpath(b, p, sizeof(p));
	ck_assert(!exists(p));
	varpath(b, 0644, p, sizeof(p));
	ck_assert(!exists(p));
	varpath(c, 0644, p, sizeof(p));
	ck_assert(!exists(p));

	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.objects == 1 && rep.good == 1 && rep.bad == 0 && rep.unindexed == 0 &&
			  fi.n == 0,
		      "second fsck not clean:\n%s", fi.text);
	store_close(s);
}
END_TEST

START_TEST(node_fsck_drops_a_malformed_record_and_reindexes_the_file)
{
	uint8_t id[VERIFY_HASH_LEN];
	struct store_fsck_report rep;
	struct findings fi = {{0}, 0};
	struct store_objinfo info;
	struct store *s = unit_store_open(storedir);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	char p[400];

	insert_ok(s, "record", 6, id);
	store_close(s);

	/* Spoil the record with LMDB directly (no store is open in this process now). */
	spath(p, sizeof(p), "index");
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, p, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "objects", 0, &dbi), 0);
	k.mv_size = VERIFY_HASH_LEN;
	k.mv_data = id;
	v.mv_size = 3;
	v.mv_data = "bad";
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	s = unit_store_open(storedir);
	ck_assert_int_eq(store_object_info(s, id, &info), STORK_EFORMAT);
	ck_assert_int_eq(store_fsck(s, true, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.objects == 1 && rep.bad == 1 && rep.unindexed == 0 && rep.adopted == 1 &&
			  rep.repaired == 1,
		      "%s", fi.text);
	ck_assert_ptr_nonnull(strstr(fi.text, "malformed record"));
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.size, 6);
	store_close(s);
}
END_TEST

START_TEST(node_open_refuses_an_index_that_is_not_storkfs)
{
	struct store *s = NULL;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	char p[400], other[400];

	/* Garbage in data.mdb. */
	ck_assert_int_eq(mkdir(storedir, 0700), 0);
	spath(p, sizeof(p), "index");
	ck_assert_int_eq(mkdir(p, 0755), 0);
	spath(p, sizeof(p), "index/data.mdb");
	{
		char junk[8192];

		memset(junk, 'j', sizeof(junk));
		write_file(p, junk, sizeof(junk), 0644);
	}
	ck_assert_int_eq(store_open(storedir, &s), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "index/data.mdb"));

	/* Another program's LMDB environment. */
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	ck_assert_int_eq(mkdir(other, 0755), 0);
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 4), 0);
	ck_assert_int_eq(mdb_env_open(env, other, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "somethingelse", MDB_CREATE, &dbi), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	snprintf(storedir, sizeof(storedir), "%s/other-store", tmpdir);
	ck_assert_int_eq(mkdir(storedir, 0700), 0);
	spath(p, sizeof(p), "index");
	ck_assert_int_eq(rename(other, p), 0);
	ck_assert_int_eq(store_open(storedir, &s), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "not a storkfs index"));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Concurrency. */

#define NOBJ	 2000
#define NREADERS 8

struct rw {
	struct store *s;
	uint8_t (*ids)[VERIFY_HASH_LEN];
	atomic_uint inserted;
	atomic_bool done;
	atomic_ulong hits, misses, errors, wrong;
	int writer_r;
	unsigned seed;
};

static void *writer(void *arg)
{
	struct rw *c = arg;
	uint8_t buf[3000], id[VERIFY_HASH_LEN];
	unsigned i;

	for (i = 0; i < NOBJ; i++) {
		size_t len = content(i, buf, sizeof(buf));

		c->writer_r = insert(c->s, buf, len, id);
		if (c->writer_r < 0)
			break;
		atomic_store(&c->inserted, i + 1);
	}
	atomic_store(&c->done, true);
	return NULL;
}

static void read_one(struct rw *c, unsigned i, uint8_t *buf, uint8_t *got)
{
	struct store_objinfo info;
	size_t len = content(i, buf, 3000);
	ssize_t n;
	int fd = -1, r;

	r = store_object_info(c->s, c->ids[i], &info);
	if (r == 0 && info.size != len)
		atomic_fetch_add(&c->wrong, 1);
	else if (r < 0 && r != -ENOENT)
		atomic_fetch_add(&c->errors, 1);
	r = store_object_open(c->s, c->ids[i], &fd);
	if (r == -ENOENT) {
		atomic_fetch_add(&c->misses, 1);
		return;
	}
	if (r < 0) {
		atomic_fetch_add(&c->errors, 1);
		return;
	}
	n = pread(fd, got, 3001, 0);
	if (n != (ssize_t)len || memcmp(got, buf, len) != 0)
		atomic_fetch_add(&c->wrong, 1);
	else
		atomic_fetch_add(&c->hits, 1);
	close(fd);
}

static void *reader(void *arg)
{
	struct rw *c = arg;
	uint8_t buf[3000], got[3001];
	unsigned seed = (unsigned)(uintptr_t)pthread_self(), i, upto;

	while (!atomic_load(&c->done)) {
		/* Mostly near the writer's front, where entries appear. */
		upto = atomic_load(&c->inserted) + 20;
		i = (unsigned)rand_r(&seed) % (upto < NOBJ ? upto : NOBJ);
		read_one(c, i, buf, got);
		/* Leave the writer some CPU on small machines. */
		nanosleep(&(struct timespec){0, 50000}, NULL);
	}
	for (i = 0; i < NOBJ; i++)
		read_one(c, i, buf, got);
	return NULL;
}

START_TEST(node_index_concurrent_readers_and_one_writer)
{
	static uint8_t ids[NOBJ][VERIFY_HASH_LEN];
	struct rw *c = calloc(1, sizeof(*c));
	uint8_t buf[3000];
	pthread_t w, r[NREADERS];
	unsigned i;

	ck_assert_ptr_nonnull(c);
	for (i = 0; i < NOBJ; i++)
		ck_assert_int_eq(verify_sha256(buf, content(i, buf, sizeof(buf)), ids[i]), 0);
	c->s = unit_store_open(storedir);
	c->ids = ids;
	for (i = 0; i < NREADERS; i++)
		ck_assert_int_eq(pthread_create(&r[i], NULL, reader, c), 0);
	ck_assert_int_eq(pthread_create(&w, NULL, writer, c), 0);
	pthread_join(w, NULL);
	for (i = 0; i < NREADERS; i++)
		pthread_join(r[i], NULL);
	ck_assert_msg(c->writer_r == 0, "writer: %s", storkfs_strerror(c->writer_r));
	ck_assert_uint_eq(atomic_load(&c->inserted), NOBJ);
	ck_assert_uint_eq(atomic_load(&c->errors), 0);
	ck_assert_uint_eq(atomic_load(&c->wrong), 0);
	/* The final pass of every reader sees every object. */
	ck_assert_uint_ge(atomic_load(&c->hits), (unsigned long)NREADERS * NOBJ);
	store_close(c->s);
	free(c);
}
END_TEST

START_TEST(node_two_processes_insert_into_one_store)
{
	uint8_t buf[3000], id[VERIFY_HASH_LEN];
	struct store_fsck_report rep;
	struct store *s;
	pid_t pid[2];
	unsigned i, k;
	int status;

	for (k = 0; k < 2; k++) {
		pid[k] = fork();
		ck_assert_int_ge(pid[k], 0);
		if (pid[k] == 0) {
			/* Objects 0..299 from the first, 200..499 from the second: 100 shared. */
			if (store_open(storedir, &s) < 0)
				_exit(2);
			for (i = 200 * k; i < 200 * k + 300; i++)
				if (insert(s, buf, content(i, buf, sizeof(buf)), id) < 0)
					_exit(3);
			store_close(s);
			_exit(0);
		}
	}
	for (k = 0; k < 2; k++) {
		ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %u: %d", k,
			      status);
	}
	s = unit_store_open(storedir);
	for (i = 0; i < 500; i++) {
		struct store_objinfo info;
		size_t len = content(i, buf, sizeof(buf));

		ck_assert_int_eq(verify_sha256(buf, len, id), 0);
		ck_assert_int_eq(store_object_info(s, id, &info), 0);
		ck_assert_uint_eq(info.size, len);
	}
	ck_assert_int_eq(store_fsck(s, false, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.objects, 500);
	ck_assert_uint_eq(rep.good, 500);
	ck_assert_uint_eq(rep.unindexed + rep.stale_tmp + rep.bad + rep.missing, 0);
	store_close(s);
}
END_TEST

START_TEST(node_same_store_opened_twice_in_a_process_shares_the_index)
{
	struct store *s1 = unit_store_open(storedir), *s2 = NULL;
	uint8_t id[VERIFY_HASH_LEN];
	struct store_objinfo info;
	char alias[400];

	snprintf(alias, sizeof(alias), "%s/.", storedir);
	ck_assert_int_eq(store_open(alias, &s2), 0);
	ck_assert_str_eq(store_dir(s2), alias);
	insert_ok(s1, "shared", 6, id);
	ck_assert_int_eq(store_object_info(s2, id, &info), 0);
	store_close(s1);
	insert_ok(s2, "still open", 10, id);
	ck_assert_int_eq(store_object_info(s2, id, &info), 0);
	store_close(s2);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Growth of the map. */

#define NMANIFESTS 600

struct grow {
	struct store *s;
	uint8_t (*ids)[VERIFY_HASH_LEN];
	atomic_uint put;
	atomic_bool done;
	atomic_ulong errors, hits;
};

static void manifest_body(unsigned i, char *buf, size_t len)
{
	size_t j;

	for (j = 0; j < len; j++)
		buf[j] = (char)('a' + (i * 7 + j * 13 + j / 97) % 26);
	snprintf(buf, len, "%u", i);
}

static void *grow_reader(void *arg)
{
	struct grow *g = arg;
	unsigned seed = 7, n, i;
	uint8_t *buf;
	size_t len;
	int r;

	while (!atomic_load(&g->done)) {
		n = atomic_load(&g->put);
		if (n == 0)
			continue;
		i = (unsigned)rand_r(&seed) % n;
		r = store_manifest_get(g->s, g->ids[i], &buf, &len);
		if (r == 0) {
			free(buf);
			atomic_fetch_add(&g->hits, 1);
		} else {
			atomic_fetch_add(&g->errors, 1);
		}
	}
	return NULL;
}

START_TEST(node_index_map_grows_when_full)
{
	static uint8_t ids[NMANIFESTS][VERIFY_HASH_LEN];
	struct grow *g = calloc(1, sizeof(*g));
	char body[4100], p[400];
	uint8_t *buf;
	size_t len;
	pthread_t th[2];
	struct stat st;
	unsigned i;
	int r;

	ck_assert_ptr_nonnull(g);
	/* 256 KiB: 64 pages, far less than the 2.4 MB put below. */
	setenv("STORKFS_LMDB_MAPSIZE", "262144", 1);
	g->s = unit_store_open(storedir);
	g->ids = ids;
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, grow_reader, g), 0);
	for (i = 0; i < NMANIFESTS; i++) {
		manifest_body(i, body, sizeof(body));
		ck_assert_int_eq(verify_sha256(body, sizeof(body), ids[i]), 0);
		r = store_manifest_put(g->s, ids[i], body, sizeof(body));
		ck_assert_msg(r == 0, "manifest %u: %s: %s", i, storkfs_strerror(r),
			      stork_error_detail());
		atomic_store(&g->put, i + 1);
	}
	atomic_store(&g->done, true);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_eq(atomic_load(&g->errors), 0);
	spath(p, sizeof(p), "index/data.mdb");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_gt(st.st_size, 262144 * 4);
	store_close(g->s);

	/* Everything reads back after a reopen, which adopts the grown map. */
	g->s = unit_store_open(storedir);
	for (i = 0; i < NMANIFESTS; i++) {
		manifest_body(i, body, sizeof(body));
		ck_assert_int_eq(store_manifest_get(g->s, ids[i], &buf, &len), 0);
		ck_assert_uint_eq(len, sizeof(body));
		ck_assert_mem_eq(buf, body, len);
		free(buf);
	}
	store_close(g->s);
	unsetenv("STORKFS_LMDB_MAPSIZE");
	free(g);
}
END_TEST

START_TEST(node_open_refuses_a_bad_mapsize_setting)
{
	struct store *s = NULL;

	setenv("STORKFS_LMDB_MAPSIZE", "12abc", 1);
	ck_assert_int_eq(store_open(storedir, &s), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "STORKFS_LMDB_MAPSIZE"));
	unsetenv("STORKFS_LMDB_MAPSIZE");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */

TCase *tcase_store_node(void)
{
	TCase *tc = tcase_create("node");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, node_insert_lookup_open_remove_round_trip);
	tcase_add_test(tc, node_commit_refuses_wrong_hash_and_wrong_size_leaving_nothing);
	tcase_add_test(tc, node_reset_then_rewrite_commits);
	tcase_add_test(tc, node_same_object_inserted_twice_keeps_one_file);
	tcase_add_test(tc, node_open_removes_dead_writers_leftovers_keeps_live_ones);
	tcase_add_test(tc, node_unindexed_object_file_is_indexed_by_a_later_insert);
	tcase_add_test(tc, node_missing_or_resized_object_file_drops_the_entry);
	tcase_add_test(tc, node_link_gives_each_mode_its_own_variant);
	tcase_add_test(tc, node_link_remakes_a_variant_cut_short_chmoded_or_written_to);
	tcase_add_test(tc, node_link_refuses_a_rotten_object_and_drops_it);
	tcase_add_test(tc, node_open_checked_refuses_a_rotten_or_swapped_object_and_drops_it);
	tcase_add_test(tc, node_open_checked_hashes_each_file_once);
	tcase_add_test(tc, node_link_variant_is_immutable);
	tcase_add_test(tc, node_link_to_another_file_system_is_exdev);
	tcase_add_test(tc, node_meta_and_manifests_round_trip);
	tcase_add_test(tc, node_pins_count_and_refuse_unpin_below_zero);
	tcase_add_test(tc, node_fsck_finds_and_repairs_each_problem);
	tcase_add_test(tc, node_fsck_removes_a_variant_written_through_a_link);
	tcase_add_test(tc, node_fsck_checks_variants_modes_and_orphans);
	tcase_add_test(tc, node_fsck_drops_a_malformed_record_and_reindexes_the_file);
	tcase_add_test(tc, node_open_refuses_an_index_that_is_not_storkfs);
	tcase_add_test(tc, node_open_refuses_a_bad_mapsize_setting);
	return tc;
}

TCase *tcase_store_node_concurrency(void)
{
	TCase *tc = tcase_create("node_concurrency");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, node_index_concurrent_readers_and_one_writer);
	tcase_add_test(tc, node_two_processes_insert_into_one_store);
	tcase_add_test(tc, node_same_store_opened_twice_in_a_process_shares_the_index);
	tcase_add_test(tc, node_index_map_grows_when_full);
	return tc;
}
