/* tests/unit/test_store_quota.c: the node store's quota (least recently used objects go first,
 * down to the low mark, never the one just inserted), the LRU order kept across a reopen, pin
 * sets, and a full store's message. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "store/store.h"
#include "tests/unit/unit.h"

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_store_quota.XXXXXX", t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);
	stork_error_clear();
}

static void teardown(void)
{
	nftw(tmpdir, unit_rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

static struct store *open_store(void)
{
	struct store *s = NULL;
	int r = store_open(storedir, &s);

	ck_assert_msg(r == 0, "store_open: %s: %s", storkfs_strerror(r), stork_error_detail());
	return s;
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
	struct store *s = open_store();
	struct store_usage u = {0};

	ck_assert_int_eq(store_quota_set(s, 1000), 0);
	for (int i = 0; i < 10; i++)
		insert(s, i);
	use(s, 0); /* 0 is now the most recently used; 1 the least */
	/* the use is in the access clock, not yet in the index: a reopen writes it */
	store_close(s);
	s = open_store();
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

START_TEST(pinned_objects_are_never_evicted)
{
	struct store *s = open_store();
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
	struct store *s = open_store();

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

TCase *tcase_store_quota(void)
{
	TCase *tc = tcase_create("store_quota");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, quota_evicts_least_recently_used_down_to_the_low_mark);
	tcase_add_test(tc, pinned_objects_are_never_evicted);
	tcase_add_test(tc, a_full_store_names_itself_its_size_quota_and_pins);
	return tc;
}
