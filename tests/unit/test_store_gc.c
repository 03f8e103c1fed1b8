/* tests/unit/test_store_gc.c: the repositories' lists of current versions and stork gc
 * (store/README.md "Garbage collection"): a walk of an older verified state does not replace
 * a newer state's list nor drop its manifests; gc keeps the objects of a listed manifest the
 * index dropped but the store holds as an object, or of which it holds the tree index only. */
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
#include "verify/manifest.h"

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	unit_tmpdir("test_store_gc", tmpdir, sizeof(tmpdir), storedir, sizeof(storedir));
}

static void teardown(void)
{
	unit_tmpdir_rm(tmpdir);
}

/* Store len bytes as an object; its id in ret_id. */
static void put_object(struct store *s, const void *buf, size_t len, uint8_t ret_id[32])
{
	struct store_insert *ins = NULL;

	ck_assert_int_eq(verify_sha256(buf, len, ret_id), 0);
	ck_assert_int_eq(store_insert_new(s, ret_id, len, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, buf, len), 0);
	ck_assert_int_eq(store_insert_commit(ins), 0);
}

/* A manifest of one file whose object is fid, as its bytes. */
static char *manifest_of(const char *version, const uint8_t fid[32], size_t size, size_t *ret_len)
{
	struct verify_manifest *m = NULL;
	struct verify_entry e = {.path = (char *)"f",
				 .type = VERIFY_FILE,
				 .mode = 0644,
				 .mtime = 1700000000,
				 .size = size,
				 .zsize = size};
	char *buf = NULL;

	memcpy(e.hash, fid, 32);
	ck_assert_int_eq(verify_manifest_new("a", version, "dir", &m), 0);
	ck_assert_int_eq(verify_manifest_add(m, &e), 0);
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	ck_assert_int_eq(verify_manifest_dump(m, &buf, ret_len), 0);
	verify_manifest_free(m);
	return buf;
}

static int current(struct store *s, uint64_t root, uint64_t snapshot, const uint8_t (*ids)[32],
		   size_t n)
{
	return store_repo_current(s, "r", &(struct store_state){root, snapshot}, ids, n, NULL, 0,
				  NULL);
}

START_TEST(an_older_states_walk_keeps_the_newer_list_and_its_manifests)
{
	struct store *s = unit_store_open(storedir);
	uint8_t ids[2][32], d1[32], d2[32], *buf = NULL;
	char *m1, *m2;
	size_t len1, len2, len;

	m1 = manifest_of("1.0", (const uint8_t[32]){1}, 10, &len1);
	m2 = manifest_of("2.0", (const uint8_t[32]){2}, 10, &len2);
	ck_assert_int_eq(verify_sha256(m1, len1, ids[0]), 0);
	ck_assert_int_eq(verify_sha256(m2, len2, ids[1]), 0);
	ck_assert_int_eq(store_manifest_put(s, ids[0], m1, len1), 0);
	ck_assert_int_eq(store_manifest_put(s, ids[1], m2, len2), 0);
	/* the newer state (snapshot 3) lists a 1.0 and a 2.0 */
	ck_assert_int_eq(current(s, 1, 3, (const uint8_t(*)[32])ids, 2), 0);
	ck_assert_int_eq(store_repo_current_digest(s, "r", d1), 0);
	/* a walk of snapshot 2 (a 1.0 only) ends later: kept, nothing dropped */
	ck_assert_int_eq(current(s, 1, 2, (const uint8_t(*)[32])ids, 1), 1);
	ck_assert_msg(strstr(stork_error_detail(), "/repos/r: kept, written from a newer verified "
						   "state (root 1, snapshot 3) than this walk's "
						   "(root 1, snapshot 2)"),
		      "detail: %s", stork_error_detail());
	ck_assert_int_eq(store_repo_current_digest(s, "r", d2), 0);
	ck_assert_msg(!memcmp(d1, d2, 32), "the older state's walk replaced the list");
	ck_assert_int_eq(store_manifest_get(s, ids[1], &buf, &len), 0);
	free(buf);
	/* the same state writes again; a new root (its snapshot versions start again) too */
	ck_assert_int_eq(current(s, 1, 3, (const uint8_t(*)[32])ids, 2), 0);
	ck_assert_int_eq(current(s, 2, 1, (const uint8_t(*)[32])ids, 1), 0);
	ck_assert_int_eq(store_repo_current_digest(s, "r", d2), 0);
	ck_assert_msg(memcmp(d1, d2, 32) != 0, "a newer root's walk did not replace the list");
	ck_assert_int_eq(store_manifest_get(s, ids[1], &buf, &len), -ENOENT);
	free(m1);
	free(m2);
	store_close(s);
}
END_TEST

START_TEST(gc_keeps_the_objects_of_a_listed_manifest_the_index_dropped)
{
	struct store *s = unit_store_open(storedir);
	struct store_gc_report rep = {0};
	uint8_t fid[32], mid[32], gone[32], *buf = NULL;
	struct store_objinfo info;
	char data[1000], other[100];
	char *m;
	size_t len, got;

	memset(data, 'x', sizeof(data));
	memset(other, 'y', sizeof(other));
	put_object(s, data, sizeof(data), fid);
	put_object(s, other, sizeof(other), gone);
	m = manifest_of("2.0", fid, sizeof(data), &len);
	put_object(s, m, len, mid); /* the copy a mount keeps for its peers */
	/* listed while the index does not hold it (an older walk dropped it): the list's own
	 * write indexes it again from the object */
	ck_assert_int_eq(store_manifest_get(s, mid, &buf, &got), -ENOENT);
	ck_assert_int_eq(current(s, 1, 1, (const uint8_t(*)[32]) & mid, 1), 0);
	ck_assert_int_eq(store_manifest_get(s, mid, &buf, &got), 0);
	ck_assert_uint_eq(got, len);
	ck_assert_int_eq(memcmp(buf, m, len), 0);
	free(buf);
	nanosleep(&(struct timespec){0, 5000000}, NULL); /* inserted before gc starts */
	ck_assert_int_eq(store_gc(s, &rep), 0);
	ck_assert_int_eq(store_object_info(s, fid, &info), 0);
	ck_assert_int_eq(store_object_info(s, mid, &info), 0);
	ck_assert_int_eq(store_object_info(s, gone, &info), -ENOENT);
	ck_assert_uint_eq(rep.removed, 1);
	ck_assert_uint_eq(rep.unknown_manifests, 0);
	free(m);
	store_close(s);
}
END_TEST

START_TEST(gc_keeps_the_objects_a_listed_versions_tree_index_names)
{
	struct store *s = unit_store_open(storedir);
	struct store_gc_report rep = {0};
	struct verify_manifest *m = NULL;
	struct store_tree *t = NULL;
	uint8_t fid[32], mid[32], gone[32];
	struct store_objinfo info;
	char data[1000], other[100];
	char *buf;
	size_t len;

	memset(data, 'x', sizeof(data));
	memset(other, 'y', sizeof(other));
	put_object(s, data, sizeof(data), fid);
	put_object(s, other, sizeof(other), gone);
	/* the store holds the version's tree index only (its manifest neither indexed nor kept
	 * as an object): a mount serves the version from it */
	buf = manifest_of("2.0", fid, sizeof(data), &len);
	ck_assert_int_eq(verify_sha256(buf, len, mid), 0);
	ck_assert_int_eq(verify_manifest_parse(buf, len, "2.0.json", &m), 0);
	ck_assert_int_eq(store_tree_build(m, mid, &t), 0);
	ck_assert_int_eq(store_tree_save(s, t), 0);
	ck_assert_int_eq(current(s, 1, 1, (const uint8_t(*)[32]) & mid, 1), 0);
	nanosleep(&(struct timespec){0, 5000000}, NULL); /* inserted before gc starts */
	ck_assert_int_eq(store_gc(s, &rep), 0);
	ck_assert_int_eq(store_object_info(s, fid, &info), 0);
	ck_assert_int_eq(store_object_info(s, gone, &info), -ENOENT);
	ck_assert_uint_eq(rep.removed, 1);
	ck_assert_uint_eq(rep.unknown_manifests, 0);
	store_tree_free(t);
	verify_manifest_free(m);
	free(buf);
	store_close(s);
}
END_TEST

TCase *tcase_store_gc(void)
{
	TCase *tc = tcase_create("store_gc");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, an_older_states_walk_keeps_the_newer_list_and_its_manifests);
	tcase_add_test(tc, gc_keeps_the_objects_of_a_listed_manifest_the_index_dropped);
	tcase_add_test(tc, gc_keeps_the_objects_a_listed_versions_tree_index_names);
	return tc;
}
