/* tests/unit/test_store_quota.c: the node store's quota (least recently used objects go first,
 * down to the low mark, never the one just inserted), the LRU order kept across a reopen, pin
 * sets, a full store's message, and an eviction killed at any point (kill -9). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "store/store.h"
#include "tests/unit/unit.h"

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	unit_tmpdir("test_store_quota", tmpdir, sizeof(tmpdir), storedir, sizeof(storedir));
}

static void teardown(void)
{
	unit_tmpdir_rm(tmpdir);
}

/* Object number i: 100 bytes, its id in id. */
static void content(int i, uint8_t buf[100], uint8_t id[32])
{
	memset(buf, 'a' + i, 100);
	ck_assert_int_eq(verify_sha256(buf, 100, id), 0);
}

static void insert(struct store *s, int i)
{
	struct store_insert *ins = NULL;
	uint8_t buf[100], id[32];

	content(i, buf, id);
	ck_assert_int_eq(store_insert_new(s, id, 100, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, buf, 100), 0);
	ck_assert_int_eq(store_insert_commit(ins), 0);
	nanosleep(&(struct timespec){0, 3000000}, NULL); /* the order is in milliseconds */
}

static bool stored(struct store *s, int i)
{
	struct store_objinfo info;
	uint8_t buf[100], id[32];

	content(i, buf, id);
	return store_object_info(s, id, &info) == 0;
}

static void use(struct store *s, int i)
{
	uint8_t buf[100], id[32];
	int fd = -1;

	content(i, buf, id);
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	close(fd);
	nanosleep(&(struct timespec){0, 3000000}, NULL);
}

START_TEST(quota_evicts_least_recently_used_down_to_the_low_mark)
{
	struct store *s = unit_store_open(storedir);
	struct store_usage u = {0};

	ck_assert_int_eq(store_quota_set(s, 1000), 0);
	for (int i = 0; i < 10; i++)
		insert(s, i);
	use(s, 0); /* 0 is now the most recently used; 1 the least */
	/* the use is in the access clock, not yet in the index: a reopen writes it */
	store_close(s);
	s = unit_store_open(storedir);
	insert(s, 10); /* 1,100 bytes: down to 750 (75%), the new one kept */
	for (int i = 1; i <= 4; i++)
		ck_assert_msg(!stored(s, i), "object %d, among the least recently used, stayed", i);
	ck_assert(stored(s, 0));
	for (int i = 5; i <= 10; i++)
		ck_assert_msg(stored(s, i), "object %d was evicted", i);
	ck_assert_int_eq(store_usage(s, &u), 0);
	ck_assert_uint_eq(u.bytes, 700);
	ck_assert_uint_eq(u.quota, 1000);
	ck_assert_uint_eq(u.evictions, 4);
	ck_assert_uint_eq(u.evicted_bytes, 400);
	store_close(s);
}
END_TEST

/* store_has_room: a copy the store may do without (a chunked file's whole object) fits only
 * without evicting: within the quota, and the file system keeps its free floor. */
START_TEST(room_is_within_the_quota_and_above_the_free_floor)
{
	struct store *s = unit_store_open(storedir);

	ck_assert_int_eq(store_has_room(s, 1 << 20), 0); /* no quota: the file system's room */
	ck_assert_int_eq(store_has_room(s, UINT64_MAX / 2), -ENOSPC);
	ck_assert_msg(strstr(stork_error_detail(), "free"), "%s", stork_error_detail());
	ck_assert_int_eq(store_quota_set(s, 1000), 0);
	for (int i = 0; i < 5; i++)
		insert(s, i);
	ck_assert_int_eq(store_has_room(s, 500), 0);
	ck_assert_int_eq(store_has_room(s, 501), -ENOSPC);
	ck_assert_msg(strstr(stork_error_detail(), "past its quota (1000 bytes)"), "%s",
		      stork_error_detail());
	for (int i = 0; i < 5; i++)
		ck_assert_msg(stored(s, i), "object %d was evicted by a question", i);
	store_close(s);
}
END_TEST

START_TEST(pinned_objects_are_never_evicted)
{
	struct store *s = unit_store_open(storedir);
	struct store_usage u = {0};
	uint8_t pins[2][32], buf[100];
	uint64_t freed = 0;

	for (int i = 0; i < 6; i++)
		insert(s, i);
	content(0, buf, pins[0]);
	content(3, buf, pins[1]);
	ck_assert_int_eq(store_pin_set(s, "slice-a", (const uint8_t(*)[32])pins, 2), 0);
	ck_assert_int_eq(store_evict(s, 0, &freed), 0);
	ck_assert_uint_eq(freed, 400);
	ck_assert(stored(s, 0) && stored(s, 3));
	ck_assert(!stored(s, 1) && !stored(s, 2) && !stored(s, 4) && !stored(s, 5));
	ck_assert_int_eq(store_usage(s, &u), 0);
	ck_assert_uint_eq(u.pinned_objects, 2);
	ck_assert_uint_eq(u.owners, 1);
	/* unpinned: they may go */
	ck_assert_int_eq(store_pin_set(s, "slice-a", NULL, 0), 0);
	ck_assert_int_eq(store_evict(s, 0, &freed), 0);
	ck_assert_uint_eq(freed, 200);
	ck_assert_int_eq(store_pin_set(s, "../x", NULL, 0), -EINVAL);
	ck_assert_msg(strstr(stork_error_detail(), "\"../x\""), "%s", stork_error_detail());
	store_close(s);
}
END_TEST

START_TEST(a_full_store_names_itself_its_size_quota_and_pins)
{
	struct store *s = unit_store_open(storedir);

	insert(s, 0);
	ck_assert_int_eq(store_make_room(s, 4096, "p 1.0: f"), -ENOSPC);
	ck_assert_msg(strstr(stork_error_detail(), storedir) &&
			  strstr(stork_error_detail(), "No space left on device (ENOSPC) storing "
						       "p 1.0: f (4096 bytes): the store holds 100 "
						       "bytes in 1 objects, quota none"),
		      "%s", stork_error_detail());
	/* with a quota, room is made (the least recently used goes) */
	insert(s, 1);
	ck_assert_int_eq(store_quota_set(s, 1 << 20), 0);
	ck_assert_int_eq(store_make_room(s, 100, "p 1.0: g"), 0);
	ck_assert(!stored(s, 0));
	store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* An eviction killed (SIGKILL) at any point leaves the index true: every object it lists is in
 * objects/ and hashes right. */

#define KILL_OBJECTS 600
#define KILL_ROUNDS  6

/* Object number i of the kill test: 64 bytes naming it. */
static void kcontent(int i, uint8_t buf[64], uint8_t id[32])
{
	memset(buf, 0, 64);
	snprintf((char *)buf, 64, "evicted object %d", i);
	ck_assert_int_eq(verify_sha256(buf, 64, id), 0);
}

/* Store every object of the kill test that the store lacks (one batch: two syncs). */
static void kfill(void)
{
	struct store *s = unit_store_open(storedir);
	struct store_batch *b = NULL;
	struct store_insert *ins;
	struct store_objinfo info;
	uint8_t buf[64], id[32];

	ck_assert_int_eq(store_batch_new(s, &b), 0);
	for (int i = 0; i < KILL_OBJECTS; i++) {
		kcontent(i, buf, id);
		if (store_object_info(s, id, &info) == 0)
			continue;
		ins = NULL;
		ck_assert_int_eq(store_insert_new(s, id, 64, &ins), 0);
		ck_assert_int_eq(store_insert_write(ins, buf, 64), 0);
		ck_assert_int_eq(store_batch_add(b, ins), 0);
	}
	ck_assert_int_eq(store_batch_commit(b, NULL), 0);
	store_batch_free(b);
	store_close(s);
}

static void say(void *ctx, const char *path, const char *what)
{
	(void)ctx;
	fprintf(stderr, "fsck: %s: %s\n", path, what);
}

/* A child evicts everything (gc: collects it with stork gc's store_gc, nothing being listed or
 * pinned); it is killed delay_us after it starts (never, with -1).
 * @return whether the kill interrupted it. */
static bool remove_killed(bool gc, long delay_us, long *ret_took_us)
{
	struct timespec t0, t1;
	int p[2], status;
	char c = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *s = NULL;
		uint64_t freed = 0;

		close(p[0]);
		if (store_open(storedir, &s) < 0)
			_exit(2);
		if (write(p[1], "x", 1) != 1)
			_exit(2);
		if (gc) {
			struct store_gc_report rep = {0};

			_exit(store_gc(s, &rep) == 0 && rep.removed > 0 ? 0 : 3);
		}
		_exit(store_evict(s, 0, &freed) == 0 && freed > 0 ? 0 : 3);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (delay_us >= 0) {
		nanosleep(&(struct timespec){delay_us / 1000000, delay_us % 1000000 * 1000}, NULL);
		kill(pid, SIGKILL);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret_took_us)
		*ret_took_us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
	if (WIFSIGNALED(status))
		return true;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the %s child failed",
		      gc ? "collecting" : "evicting");
	return false;
}

/* The index is true: fsck finds nothing missing or bad (a whole object the eviction had not
 * unlinked yet is adopted back, which is no problem), and every object it lists reads right. */
static void index_true(int round, long delay_us, int *ret_stored)
{
	struct store_fsck_report rep = {0};
	struct store *s = NULL;
	uint8_t buf[64], id[32], got[65];
	int fd, n = 0, r;

	r = store_open(storedir, &s);
	ck_assert_msg(r == 0, "round %d (kill after %ld us; -1: none): store_open: %s: %s", round,
		      delay_us, storkfs_strerror(r), stork_error_detail());

	ck_assert_int_eq(store_fsck(s, false, say, NULL, &rep), 0);
	ck_assert_msg(
	    rep.missing == 0 && rep.bad == 0 && rep.unindexed == 0,
	    "round %d (kill after %ld us; -1: none): fsck: %llu missing, %llu bad, %llu unindexed",
	    round, delay_us, (unsigned long long)rep.missing, (unsigned long long)rep.bad,
	    (unsigned long long)rep.unindexed);
	for (int i = 0; i < KILL_OBJECTS; i++) {
		kcontent(i, buf, id);
		fd = -1;
		if (store_object_open(s, id, &fd) < 0)
			continue;
		ck_assert_int_eq(pread(fd, got, sizeof(got), 0), 64);
		ck_assert_msg(!memcmp(got, buf, 64), "object %d: wrong bytes", i);
		close(fd);
		n++;
	}
	*ret_stored = n;
	store_close(s);
}

/* Kill rounds of an eviction (gc: a collection) of every object of the kill test. */
static void removal_killed_rounds(bool gc)
{
	long took = 0, delay;
	int stored, killed = 0, partly = 0;

	/* Round 0 is not killed: it measures how long the removal takes. */
	kfill();
	remove_killed(gc, -1, &took);
	index_true(0, -1, &stored);
	ck_assert_int_eq(stored, 0);
	srand((unsigned)getpid());
	for (int round = 1; round <= KILL_ROUNDS; round++) {
		kfill();
		/* Spread over the first half of the removal (a later one may run faster than the
		 * first), each a little off the even step. */
		delay = took / 2 * round / (KILL_ROUNDS + 1) +
			rand() % (took / 2 / (KILL_ROUNDS + 1) + 1);
		if (remove_killed(gc, delay, NULL))
			killed++;
		index_true(round, delay, &stored);
		if (stored > 0 && stored < KILL_OBJECTS)
			partly++;
	}
	fprintf(stderr, "%s of %d objects: %ld us; %d of %d rounds killed, %d left part\n",
		gc ? "gc" : "eviction", KILL_OBJECTS, took, killed, KILL_ROUNDS, partly);
	ck_assert_msg(killed >= KILL_ROUNDS / 4, "only %d of %d removals were killed", killed,
		      KILL_ROUNDS);
}

START_TEST(an_eviction_killed_at_any_point_leaves_the_index_true)
{
	removal_killed_rounds(false);
}
END_TEST

START_TEST(a_gc_killed_at_any_point_leaves_the_index_true)
{
	removal_killed_rounds(true);
}
END_TEST

TCase *tcase_store_quota(void)
{
	TCase *tc = tcase_create("store_quota");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, quota_evicts_least_recently_used_down_to_the_low_mark);
	tcase_add_test(tc, pinned_objects_are_never_evicted);
	tcase_add_test(tc, room_is_within_the_quota_and_above_the_free_floor);
	tcase_add_test(tc, a_full_store_names_itself_its_size_quota_and_pins);
	tcase_add_test(tc, an_eviction_killed_at_any_point_leaves_the_index_true);
	tcase_add_test(tc, a_gc_killed_at_any_point_leaves_the_index_true);
	return tc;
}
