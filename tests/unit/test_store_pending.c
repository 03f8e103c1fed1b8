/* tests/unit/test_store_pending.c: inserts without a sync (store/README.md, "Unsynced
 * inserts"): found at once by the process that stored them, indexed (and so found by other
 * processes) only at a group sync; a file that a crash left named but unindexed is re-hashed
 * before it is used. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "store/store.h"
#include "tests/unit/unit.h"

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_store_pending.XXXXXX", t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);
	unsetenv("STORK_STORE_SYNC_MS");
	stork_error_clear();
}

static void teardown(void)
{
	unit_tmpdir_rm(tmpdir);
	unsetenv("STORK_STORE_SYNC_MS");
}

/* Store buf without a sync; its id in id. */
static void insert_unsynced(struct store *s, const void *buf, size_t len,
			    uint8_t id[VERIFY_HASH_LEN])
{
	struct store_insert *ins = NULL;
	int r;

	ck_assert_int_eq(verify_sha256(buf, len, id), 0);
	ck_assert_int_eq(store_insert_new(s, id, len, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, buf, len), 0);
	r = store_insert_commit_unsynced(ins);
	ck_assert_msg(r == 0, "commit: %s: %s", storkfs_strerror(r), stork_error_detail());
}

/* Whether another process (a forked child, with its own environment) finds id in the index. */
static bool other_process_finds(const uint8_t id[VERIFY_HASH_LEN])
{
	int status = 0;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *s = NULL;
		struct store_objinfo info;

		if (store_open(storedir, &s) < 0)
			_exit(2);
		_exit(store_object_info(s, id, &info) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_ne(WEXITSTATUS(status), 2);
	return WEXITSTATUS(status) == 0;
}

START_TEST(pending_found_here_at_once_indexed_at_the_group_sync)
{
	static const char data[] = "an object stored without a sync\n";
	struct store_objinfo info;
	uint8_t id[VERIFY_HASH_LEN];
	struct store *s;
	char buf[64];
	int fd = -1;

	setenv("STORK_STORE_SYNC_MS", "600000", 1); /* no timed group sync in this test */
	s = unit_store_open(storedir);
	insert_unsynced(s, data, sizeof(data) - 1, id);
	/* This process: at once, through both opens. */
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.size, sizeof(data) - 1);
	ck_assert_int_eq(store_object_open_checked(s, id, &fd), 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(data) - 1);
	ck_assert_mem_eq(buf, data, sizeof(data) - 1);
	close(fd);
	/* Another process: not before the group sync (the index does not list it yet). */
	ck_assert(!other_process_finds(id));
	ck_assert_int_eq(store_sync(s), 0);
	ck_assert(other_process_finds(id));
	store_close(s);
}
END_TEST

START_TEST(pending_the_last_close_syncs_and_indexes)
{
	uint8_t id[VERIFY_HASH_LEN];
	struct store_objinfo info;
	struct store *s;

	setenv("STORK_STORE_SYNC_MS", "600000", 1);
	s = unit_store_open(storedir);
	insert_unsynced(s, "bytes", 5, id);
	store_close(s); /* a clean unmount */
	ck_assert(other_process_finds(id));
	s = unit_store_open(storedir);
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	store_close(s);
}
END_TEST

START_TEST(pending_a_group_syncs_by_itself)
{
	uint8_t id[VERIFY_HASH_LEN];
	struct store *s;

	setenv("STORK_STORE_SYNC_MS", "100", 1);
	s = unit_store_open(storedir);
	insert_unsynced(s, "timed", 5, id);
	for (int i = 0; i < 100 && !other_process_finds(id); i++)
		usleep(50000);
	ck_assert(other_process_finds(id));
	store_close(s);
}
END_TEST

START_TEST(pending_lost_content_is_never_used_and_fsck_removes_it)
{
	static const char data[] = "content a power cut loses";
	uint8_t id[VERIFY_HASH_LEN];
	struct store_fsck_report rep;
	struct store_objinfo info;
	char hex[VERIFY_HASH_HEX], path[512];
	struct store *s;
	pid_t pid;
	int status, fd = -1;

	/* A process stores it without a sync and dies before its group sync. */
	setenv("STORK_STORE_SYNC_MS", "600000", 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint8_t cid[VERIFY_HASH_LEN];
		struct store *cs = NULL;
		struct store_insert *ins = NULL;

		if (store_open(storedir, &cs) < 0 ||
		    verify_sha256(data, sizeof(data) - 1, cid) < 0 ||
		    store_insert_new(cs, cid, sizeof(data) - 1, &ins) < 0 ||
		    store_insert_write(ins, data, sizeof(data) - 1) < 0 ||
		    store_insert_commit_unsynced(ins) < 0)
			_exit(1);
		_exit(0); /* no store_close: a crash */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Its name is there, its bytes were lost (as a power cut may leave them). */
	ck_assert_int_eq(verify_sha256(data, sizeof(data) - 1, id), 0);
	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(path, sizeof(path), "%s/objects/%.2s/%s", storedir, hex, hex);
	ck_assert_int_eq(chmod(path, 0644), 0);
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "\0\0\0\0\0\0\0\0", 8, 0), 8);
	close(fd);
	ck_assert_int_eq(chmod(path, 0444), 0);

	s = unit_store_open(storedir);
	/* Not listed, so never opened as it is. */
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	ck_assert_int_eq(store_object_open(s, id, &fd), -ENOENT);
	/* fsck: unindexed and wrong, removed by --repair. */
	ck_assert_int_eq(store_fsck(s, true, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.unindexed, 1);
	ck_assert_uint_eq(rep.adopted, 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	/* Stored again (the fetch after the crash), it is whole. */
	insert_unsynced(s, data, sizeof(data) - 1, id);
	ck_assert_int_eq(store_object_open_checked(s, id, &fd), 0);
	close(fd);
	store_close(s);
}
END_TEST

START_TEST(pending_a_whole_leftover_is_adopted_by_fsck)
{
	uint8_t id[VERIFY_HASH_LEN];
	struct store_fsck_report rep;
	struct store_objinfo info;
	struct store *s;
	pid_t pid;
	int status;

	setenv("STORK_STORE_SYNC_MS", "600000", 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *cs = NULL;
		struct store_insert *ins = NULL;
		uint8_t cid[VERIFY_HASH_LEN];

		if (store_open(storedir, &cs) < 0 || verify_sha256("whole", 5, cid) < 0 ||
		    store_insert_new(cs, cid, 5, &ins) < 0 ||
		    store_insert_write(ins, "whole", 5) < 0 ||
		    store_insert_commit_unsynced(ins) < 0)
			_exit(1);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(verify_sha256("whole", 5, id), 0);
	s = unit_store_open(storedir);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	ck_assert_int_eq(store_fsck(s, false, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.adopted, 1);
	ck_assert_uint_eq(rep.unindexed, 0);
	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	store_close(s);
}
END_TEST

/* Fetch-ahead stores a window of a few thousand objects before its reader opens the first:
 * each was hashed as it was written, and its checked open reads none of them again (with one
 * remembered file per slot of the table, a sixth of them were pushed out and re-read). */
START_TEST(pending_a_window_of_inserts_is_not_hashed_again_at_open)
{
	enum { N = 3000, LEN = 1000 };
	uint8_t(*ids)[VERIFY_HASH_LEN] = calloc(N, VERIFY_HASH_LEN);
	uint8_t buf[LEN];
	struct store *s;
	uint64_t before;
	int fd = -1;

	setenv("STORK_STORE_SYNC_MS", "600000", 1);
	ck_assert_ptr_nonnull(ids);
	s = unit_store_open(storedir);
	/* a mount's first open makes the handle's table */
	memset(buf, 'p', sizeof(buf));
	insert_unsynced(s, buf, sizeof(buf), ids[0]);
	ck_assert_int_eq(store_object_open_checked(s, ids[0], &fd), 0);
	close(fd);
	for (unsigned i = 1; i < N; i++) {
		for (unsigned j = 0; j < LEN; j++)
			buf[j] = (uint8_t)(i * 131u + j * 7u + (j >> 8));
		memcpy(buf, &i, sizeof(i));
		insert_unsynced(s, buf, sizeof(buf), ids[i]);
	}
	before = unit_bytes_read();
	for (unsigned i = 1; i < N; i++) {
		ck_assert_int_eq(store_object_open_checked(s, ids[i], &fd), 0);
		close(fd);
	}
	ck_assert_msg(
	    unit_bytes_read() - before < (uint64_t)N * LEN / 100, "%llu of %llu bytes read again",
	    (unsigned long long)(unit_bytes_read() - before), (unsigned long long)N * LEN);
	store_close(s);
	free(ids);
}
END_TEST

TCase *tcase_store_pending(void)
{
	TCase *tc = tcase_create("pending");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, pending_found_here_at_once_indexed_at_the_group_sync);
	tcase_add_test(tc, pending_the_last_close_syncs_and_indexes);
	tcase_add_test(tc, pending_a_group_syncs_by_itself);
	tcase_add_test(tc, pending_lost_content_is_never_used_and_fsck_removes_it);
	tcase_add_test(tc, pending_a_whole_leftover_is_adopted_by_fsck);
	tcase_add_test(tc, pending_a_window_of_inserts_is_not_hashed_again_at_open);
	return tc;
}
