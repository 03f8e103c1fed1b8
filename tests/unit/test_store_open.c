/* tests/unit/test_store_open.c: opening the node store: who may own it, an index cut short,
 * the lock file allocated before LMDB maps it, and read-only stores; slices' generations
 * (store/gen.c). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>

#include "store/store.h"
#include "tests/unit/unit.h"

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_store_open.XXXXXX", t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);
	unsetenv("STORKFS_LMDB_MAPSIZE");
	stork_error_clear();
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void teardown(void)
{
	nftw(tmpdir, rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

static void spath(char *out, size_t len, const char *rel)
{
	snprintf(out, len, "%s/%s", storedir, rel);
}

static struct store *open_ok(unsigned flags)
{
	struct store *s = NULL;
	int r = store_open_flags(storedir, flags, &s);

	ck_assert_msg(r == 0, "store_open: %s: %s", storkfs_strerror(r), stork_error_detail());
	return s;
}

static int insert(struct store *s, const void *buf, size_t len, uint8_t id[VERIFY_HASH_LEN])
{
	struct store_insert *ins = NULL;
	int r;

	ck_assert_int_eq(verify_sha256(buf, len, id), 0);
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

/* store_open must fail with err and a detail holding each of the words. */
static void refused(int err, const char *w1, const char *w2)
{
	struct store *s = NULL;
	int r = store_open(storedir, &s);

	ck_assert_msg(r == err, "store_open returned %d (%s), want %d; detail: %s", r,
		      storkfs_strerror(r), err, stork_error_detail());
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(stork_error_detail(), w1), "detail lacks \"%s\": %s", w1,
		      stork_error_detail());
	ck_assert_msg(!w2 || strstr(stork_error_detail(), w2), "detail lacks \"%s\": %s", w2,
		      stork_error_detail());
}

START_TEST(open_refuses_a_store_others_own_or_may_write_or_list)
{
	char p[400], fix[500], want[500];
	struct stat st;

	store_close(open_ok(0));
	ck_assert_int_eq(stat(storedir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);

	/* Listable or writable by others: refused, naming the store and the fix. */
	snprintf(fix, sizeof(fix), "chmod 0700 %s", storedir);
	ck_assert_int_eq(chmod(storedir, 0755), 0);
	snprintf(want, sizeof(want), "%s: mode 0755", storedir);
	refused(-EPERM, want, fix);
	ck_assert_int_eq(chmod(storedir, 0730), 0);
	refused(-EPERM, "mode 0730 lets other users write", fix);
	ck_assert_int_eq(chmod(storedir, 0707), 0);
	refused(-EPERM, "mode 0707", fix);
	/* Search permission only: a peer's web server may need it. */
	ck_assert_int_eq(chmod(storedir, 0711), 0);
	store_close(open_ok(0));
	ck_assert_int_eq(chmod(storedir, 0700), 0);

	/* What lies below the store: writable by others. */
	spath(p, sizeof(p), "objects");
	ck_assert_int_eq(chmod(p, 0777), 0);
	snprintf(fix, sizeof(fix), "chmod go-w %s", p);
	refused(-EPERM, p, fix);
	ck_assert_int_eq(chmod(p, 0755), 0);
	spath(p, sizeof(p), "index/data.mdb");
	ck_assert_int_eq(chmod(p, 0664), 0);
	refused(-EPERM, p, "mode 0664");
	ck_assert_int_eq(chmod(p, 0644), 0);
	store_close(open_ok(0));

	/* Owned by another user (root only can give a file away). */
	if (geteuid() != 0)
		return;
	snprintf(fix, sizeof(fix), "chown -R 0 %s", storedir);
	ck_assert_int_eq(chown(storedir, 65534, 65534), 0);
	snprintf(want, sizeof(want), "%s: owned by uid 65534", storedir);
	refused(-EPERM, want, fix);
	ck_assert_int_eq(chown(storedir, 0, 0), 0);
	const char *below[] = {"index", "index/data.mdb", "index/lock.mdb", "objects", "tmp"};
	for (size_t i = 0; i < sizeof(below) / sizeof(below[0]); i++) {
		spath(p, sizeof(p), below[i]);
		ck_assert_int_eq(chown(p, 65534, 0), 0);
		snprintf(want, sizeof(want), "%s: owned by uid 65534", p);
		refused(-EPERM, want, fix);
		ck_assert_int_eq(chown(p, 0, 0), 0);
	}
	store_close(open_ok(0));
}
END_TEST

/* The pages at the end of index/data.mdb that are in LMDB's free list (read as mdb_stat -f
 * does), and its newest meta page's last page and page size. */
static size_t free_tail(size_t *ret_last, size_t *ret_psize)
{
	char dir[400];
	MDB_env *env;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_envinfo info;
	MDB_stat st;
	MDB_val key, data;
	uint8_t *free_pg;
	size_t k = 0;

	spath(dir, sizeof(dir), "index");
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
	ck_assert_int_eq(mdb_env_info(env, &info), 0);
	ck_assert_int_eq(mdb_env_stat(env, &st), 0);
	free_pg = calloc(info.me_last_pgno + 1, 1);
	ck_assert_ptr_nonnull(free_pg);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_cursor_open(txn, 0, &cur), 0);
	while (mdb_cursor_get(cur, &key, &data, MDB_NEXT) == 0) {
		const size_t *ids = data.mv_data;

		for (size_t i = 1; i <= ids[0]; i++)
			if (ids[i] <= info.me_last_pgno)
				free_pg[ids[i]] = 1;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	while (k < info.me_last_pgno && free_pg[info.me_last_pgno - k])
		k++;
	free(free_pg);
	*ret_last = info.me_last_pgno;
	*ret_psize = st.ms_psize;
	return k;
}

/* index/data.mdb replaced by its first len bytes; the whole file kept as data.mdb.whole. */
static void cut_index(off_t len)
{
	char p[400], keep[400], cmd[1000];

	spath(p, sizeof(p), "index/data.mdb");
	snprintf(keep, sizeof(keep), "%s/data.mdb.whole", tmpdir);
	ck_assert_int_eq(link(p, keep), 0);
	ck_assert_int_eq(unlink(p), 0);
	snprintf(cmd, sizeof(cmd), "head -c %lld '%s' >'%s'", (long long)len, keep, p);
	ck_assert_int_eq(system(cmd), 0);
}

/* The whole index/data.mdb back in place. */
static void uncut_index(void)
{
	char p[400], keep[400];

	spath(p, sizeof(p), "index/data.mdb");
	snprintf(keep, sizeof(keep), "%s/data.mdb.whole", tmpdir);
	ck_assert_int_eq(rename(keep, p), 0);
}

/* An index of several pages: 300 objects stored one by one, then 1 MiB of metadata replaced by
 * a few bytes (its pages freed). ids: the objects'. */
static void fill_index(uint8_t ids[300][VERIFY_HASH_LEN])
{
	struct store *s = open_ok(0);
	char data[1000];
	char *big = malloc(1 << 20);

	ck_assert_ptr_nonnull(big);
	for (unsigned i = 0; i < 300; i++) {
		memset(data, 'a' + i % 26, sizeof(data));
		memcpy(data, &i, sizeof(i));
		ck_assert_int_eq(insert(s, data, 100 + i, ids[i]), 0);
	}
	memset(big, 'm', 1 << 20);
	ck_assert_int_eq(store_meta_put(s, "r", "big", big, 1 << 20), 0);
	ck_assert_int_eq(store_meta_put(s, "r", "big", "m", 1), 0);
	free(big);
	store_close(s);
}

START_TEST(open_refuses_an_index_cut_short_without_a_fault)
{
	uint8_t ids[300][VERIFY_HASH_LEN];
	size_t last, psize, k;
	off_t used, cuts[3];
	struct store *s;

	fill_index(ids);
	k = free_tail(&last, &psize);
	ck_assert_uint_ge(last, 4);
	/* A cut that takes a page in use: the last one, or all but the meta pages. */
	used = (off_t)(last - k) * (off_t)psize; /* the last page in use starts here */
	cuts[0] = used / 2 / (off_t)psize * (off_t)psize;
	cuts[1] = used;
	cuts[2] = 2 * (off_t)psize;
	for (size_t i = 0; i < 3; i++) {
		cut_index(cuts[i]);
		refused(STORK_EFORMAT, "index/data.mdb: not a usable storkfs index (cut short",
			"stork fsck --repair");
		s = NULL;
		ck_assert_int_eq(store_open_flags(storedir, STORE_OPEN_READONLY, &s),
				 STORK_EFORMAT);
		uncut_index();
	}
	store_close(open_ok(0));
}
END_TEST

/* A kill between a commit and its cover (store/index.c cover_pages), or a power cut before the
 * cover's size was synced, leaves data.mdb short of pages LMDB counted but never wrote, all
 * free: the open gives them back, and nothing stored is lost. */
START_TEST(open_gives_back_free_pages_past_the_end)
{
	uint8_t ids[300][VERIFY_HASH_LEN], id[VERIFY_HASH_LEN];
	char p[400], data[1000];
	size_t last, psize, k;
	struct store *s;
	struct stat st;

	fill_index(ids);
	k = free_tail(&last, &psize);
	ck_assert_msg(k >= 1, "no free page at the end of the index (last page %zu)", last);
	cut_index((off_t)(last + 1 - k) * (off_t)psize);
	s = NULL; /* read-only: nothing may be written, so it stays refused */
	ck_assert_int_eq(store_open_flags(storedir, STORE_OPEN_READONLY, &s), STORK_EFORMAT);
	s = open_ok(0);
	spath(p, sizeof(p), "index/data.mdb");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_ge(st.st_size, (off_t)(last + 1) * (off_t)psize);
	for (unsigned i = 0; i < 300; i++) {
		struct store_objinfo info;

		ck_assert_int_eq(store_object_info(s, ids[i], &info), 0);
		ck_assert_uint_eq(info.size, 100 + i);
	}
	memset(data, 'z', sizeof(data));
	ck_assert_int_eq(insert(s, data, sizeof(data), id), 0);
	store_close(s);
	s = open_ok(0);
	ck_assert_int_eq(store_object_info(s, id, &(struct store_objinfo){0}), 0);
	store_close(s);
}
END_TEST

START_TEST(open_allocates_the_lock_file_before_lmdb_maps_it)
{
	char p[400];
	struct stat st;

	store_close(open_ok(0));
	spath(p, sizeof(p), "index/lock.mdb");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_ge(st.st_size, 65536);
	/* Every byte LMDB may write through its map has a block behind it. */
	ck_assert_msg((long long)st.st_blocks * 512 >= (long long)st.st_size,
		      "lock.mdb: %lld of %lld bytes allocated", (long long)st.st_blocks * 512,
		      (long long)st.st_size);
}
END_TEST

START_TEST(open_read_only_serves_and_refuses_every_write)
{
	uint8_t id[VERIFY_HASH_LEN], other[VERIFY_HASH_LEN];
	struct store_fsck_report rep;
	struct store *s = NULL;
	char p[400];
	struct stat st;
	int fd = -1;

	/* A missing store is not made. */
	ck_assert_int_eq(store_open_flags(storedir, STORE_OPEN_READONLY, &s), -ENOENT);
	ck_assert_int_ne(access(storedir, F_OK), 0);

	s = open_ok(0);
	ck_assert(!store_readonly(s));
	ck_assert_int_eq(insert(s, "held", 4, id), 0);
	ck_assert_int_eq(store_meta_put(s, "repo", "root.json", "{}", 2), 0);
	store_close(s);
	/* A leftover of a dead writer stays: a read-only open sweeps nothing. */
	spath(p, sizeof(p), "tmp/.part-dead01");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);

	s = open_ok(STORE_OPEN_READONLY);
	ck_assert(store_readonly(s));
	ck_assert_int_eq(access(p, F_OK), 0);
	fd = -1;
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	close(fd);
	{
		uint8_t *buf = NULL;
		size_t len = 0;

		ck_assert_int_eq(store_meta_get(s, "repo", "root.json", &buf, &len), 0);
		ck_assert_uint_eq(len, 2);
		free(buf);
	}
	stork_error_clear();
	ck_assert_int_eq(insert(s, "not held", 8, other), -EROFS);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "read-only store"));
	ck_assert_int_eq(store_meta_put(s, "repo", "timestamp.json", "{}", 2), -EROFS);
	ck_assert_int_eq(store_fsck(s, false, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.good, 1);
	ck_assert_uint_eq(rep.stale_tmp, 1);
	ck_assert_int_eq(store_fsck(s, true, NULL, NULL, &rep), -EROFS);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "not repaired"));
	store_close(s);
	ck_assert_int_eq(access(p, F_OK), 0);
	spath(p, sizeof(p), "index/data.mdb");
	ck_assert_int_eq(stat(p, &st), 0);
}
END_TEST

static int count_gen(void *ctx, const char *repo, const char *slice, const struct store_gen *g)
{
	int *n = ctx;

	ck_assert_str_eq(repo, "r1");
	ck_assert(strcmp(slice, "web") == 0 || strcmp(slice, "db") == 0);
	ck_assert_uint_ge(g->npkgs, 1);
	(*n)++;
	return 0;
}

START_TEST(generations_commit_whole_check_the_current_and_switch)
{
	struct store_gen_pkg pkgs[2] = {{"libc6", "2.36", {1}, "needed by python3"},
					{"python3", "3.11", {2}, "requested"}};
	char *wanted[] = {"python3"};
	struct store_gen in = {.wanted = wanted, .nwanted = 1, .pkgs = pkgs, .npkgs = 2};
	struct store_gen *g = NULL;
	struct store *s = open_ok(0);
	uint64_t num = 9;
	int n = 0;

	ck_assert_int_eq(store_gen_current(s, "r1", "web", &num), 0);
	ck_assert_uint_eq(num, 0);
	ck_assert_int_eq(store_gen_get(s, "r1", "web", 0, &g), -ENOENT);
	ck_assert_str_eq(stork_error_detail(), "slice web has nothing installed");
	ck_assert_int_eq(store_gen_commit(s, "r1", "web", 0, &in, &num), 0);
	ck_assert_uint_eq(num, 1);
	/* a writer that read an older current is refused */
	ck_assert_int_eq(store_gen_commit(s, "r1", "web", 0, &in, &num), -EAGAIN);
	in.npkgs = 1;
	ck_assert_int_eq(store_gen_commit(s, "r1", "web", 1, &in, &num), 0);
	ck_assert_uint_eq(num, 2);
	ck_assert_int_eq(store_gen_commit(s, "r1", "db", 0, &in, &num), 0);
	ck_assert_uint_eq(num, 1);
	ck_assert_int_eq(store_gen_get(s, "r1", "web", 0, &g), 0);
	ck_assert_uint_eq(g->number, 2);
	ck_assert_uint_eq(g->prev, 1);
	ck_assert_uint_eq(g->npkgs, 1);
	store_gen_free(g);
	ck_assert_int_eq(store_gen_get(s, "r1", "web", 1, &g), 0);
	ck_assert_uint_eq(g->npkgs, 2);
	ck_assert_str_eq(g->pkgs[0].why, "needed by python3");
	ck_assert_uint_eq(g->pkgs[1].manifest[0], 2);
	ck_assert_uint_eq(g->nwanted, 1);
	ck_assert_str_eq(g->wanted[0], "python3");
	store_gen_free(g);
	/* rollback: switch to 1, only from the current one */
	ck_assert_int_eq(store_gen_switch(s, "r1", "web", 1, 1), -EAGAIN);
	ck_assert_int_eq(store_gen_switch(s, "r1", "web", 2, 7), -ENOENT);
	ck_assert_int_eq(store_gen_switch(s, "r1", "web", 2, 1), 0);
	ck_assert_int_eq(store_gen_current(s, "r1", "web", &num), 0);
	ck_assert_uint_eq(num, 1);
	/* the next one is numbered after every one the slice had */
	ck_assert_int_eq(store_gen_commit(s, "r1", "web", 1, &in, &num), 0);
	ck_assert_uint_eq(num, 3);
	ck_assert_int_eq(store_gen_each(s, count_gen, &n), 0);
	ck_assert_int_eq(n, 2);
	/* nothing with a space or line break goes into a record */
	pkgs[0].version = "2 36";
	in.npkgs = 2;
	ck_assert_int_eq(store_gen_commit(s, "r1", "web", 3, &in, &num), -EINVAL);
	store_close(s);
	/* they survive a reopen, read-only too */
	s = open_ok(STORE_OPEN_READONLY);
	ck_assert_int_eq(store_gen_current(s, "r1", "web", &num), 0);
	ck_assert_uint_eq(num, 3);
	store_close(s);
}
END_TEST

TCase *tcase_store_open(void)
{
	TCase *tc = tcase_create("open");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, open_refuses_a_store_others_own_or_may_write_or_list);
	tcase_add_test(tc, open_refuses_an_index_cut_short_without_a_fault);
	tcase_add_test(tc, open_gives_back_free_pages_past_the_end);
	tcase_add_test(tc, open_allocates_the_lock_file_before_lmdb_maps_it);
	tcase_add_test(tc, open_read_only_serves_and_refuses_every_write);
	tcase_add_test(tc, generations_commit_whole_check_the_current_and_switch);
	return tc;
}
