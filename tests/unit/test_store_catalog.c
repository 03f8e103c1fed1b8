/* tests/unit/test_store_catalog.c: catalog indexes (store/README.md "Catalog indexes"): what is
 * saved under a key reads back whole with its time; a damaged, cut or misnamed file is refused
 * naming the file; at most 16 are kept. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "store/store.h"
#include "tests/unit/unit.h"

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	unit_tmpdir("test_store_catalog", tmpdir, sizeof(tmpdir), storedir, sizeof(storedir));
}

static void teardown(void)
{
	unit_tmpdir_rm(tmpdir);
}

/* The path of key's file. */
static void file_of(const uint8_t key[VERIFY_HASH_LEN], char *buf, size_t cap)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(key, VERIFY_HASH_LEN, hex);
	snprintf(buf, cap, "%s/catalogs/%s", storedir, hex);
}

START_TEST(catalog_saved_reads_back_whole_and_damage_is_refused)
{
	struct store *s = unit_store_open(storedir);
	uint8_t key[VERIFY_HASH_LEN], other[VERIFY_HASH_LEN], *body = NULL, byte;
	const char text[] = "alpha 1.0 beta 2.0";
	char path[600], path2[600];
	int64_t until = 0;
	size_t len = 0;
	int fd;

	memset(key, 0x11, sizeof(key));
	memset(other, 0x22, sizeof(other));
	ck_assert_int_eq(store_catalog_open(s, key, &body, &len, &until), -ENOENT);
	ck_assert_int_eq(store_catalog_save(s, key, text, sizeof(text), 1234567), 0);
	ck_assert_int_eq(store_catalog_open(s, key, &body, &len, &until), 0);
	ck_assert_uint_eq(len, sizeof(text));
	ck_assert_mem_eq(body, text, sizeof(text));
	ck_assert_int_eq(until, 1234567);
	free(body);
	body = NULL;

	/* a flipped byte in the body */
	file_of(key, path, sizeof(path));
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &byte, 1, 70), 1);
	byte ^= 1;
	ck_assert_int_eq(pwrite(fd, &byte, 1, 70), 1);
	ck_assert_int_eq(store_catalog_open(s, key, &body, &len, &until), STORK_EBADHASH);
	ck_assert_msg(strstr(stork_error_detail(), path) &&
			  strstr(stork_error_detail(), "do not hash to its checksum"),
		      "%s", stork_error_detail());
	/* cut */
	ck_assert_int_eq(ftruncate(fd, 40), 0);
	close(fd);
	ck_assert_int_eq(store_catalog_open(s, key, &body, &len, &until), STORK_EBADHASH);
	ck_assert_msg(strstr(stork_error_detail(), "cut"), "%s", stork_error_detail());
	/* another key's file under this name */
	ck_assert_int_eq(store_catalog_save(s, other, text, sizeof(text), 1), 0);
	file_of(other, path2, sizeof(path2));
	ck_assert_int_eq(rename(path2, path), 0);
	ck_assert_int_eq(store_catalog_open(s, key, &body, &len, &until), STORK_EBADHASH);
	ck_assert_msg(strstr(stork_error_detail(), "made for another state"), "%s",
		      stork_error_detail());
	ck_assert_ptr_null(body);
	ck_assert_int_eq(store_catalog_drop(s, key), 0);
	ck_assert_int_eq(store_catalog_open(s, key, &body, &len, &until), -ENOENT);
	store_close(s);
}
END_TEST

START_TEST(catalogs_keep_the_16_most_recently_written)
{
	struct store *s = unit_store_open(storedir);
	uint8_t key[VERIFY_HASH_LEN], *body = NULL;
	char path[600];
	size_t len;

	for (int i = 0; i < 20; i++) {
		struct timespec ts[2] = {{1000000 + i, 0}, {1000000 + i, 0}};

		memset(key, i + 1, sizeof(key));
		ck_assert_int_eq(store_catalog_save(s, key, "x", 1, 0), 0);
		/* their ages, as written one after another */
		file_of(key, path, sizeof(path));
		ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	}
	for (int i = 0; i < 20; i++) {
		int r;

		memset(key, i + 1, sizeof(key));
		r = store_catalog_open(s, key, &body, &len, NULL);
		free(body);
		body = NULL;
		/* the 20th save removed what was oldest then: the first four */
		ck_assert_int_eq(r, i < 4 ? -ENOENT : 0);
	}
	store_close(s);
}
END_TEST

/* A writer killed between its temporary file and the rename leaves "<key>.<pid>.<n>": the next
 * save removes it once it is an hour old (a younger one may be another writer's in flight). */
START_TEST(catalogs_a_killed_writers_file_goes)
{
	struct store *s = unit_store_open(storedir);
	struct timespec old[2] = {{1000000, 0}, {1000000, 0}};
	uint8_t key[VERIFY_HASH_LEN];
	char path[600], stale[700], young[700];
	int fd;

	memset(key, 7, sizeof(key));
	ck_assert_int_eq(store_catalog_save(s, key, "x", 1, 0), 0);
	file_of(key, path, sizeof(path));
	snprintf(stale, sizeof(stale), "%s.4242.1", path);
	snprintf(young, sizeof(young), "%s.4243.1", path);
	fd = open(stale, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "cut", 3), 3);
	close(fd);
	ck_assert_int_eq(utimensat(AT_FDCWD, stale, old, 0), 0);
	fd = open(young, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	memset(key, 8, sizeof(key));
	ck_assert_int_eq(store_catalog_save(s, key, "y", 1, 0), 0);
	ck_assert_msg(access(stale, F_OK) < 0 && errno == ENOENT,
		      "%s, left by a killed writer in 1970, is still there", stale);
	ck_assert_msg(access(young, F_OK) == 0, "%s, a writer's in flight, was removed", young);
	store_close(s);
}
END_TEST

TCase *tcase_store_catalog(void)
{
	TCase *tc = tcase_create("store_catalog");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, catalog_saved_reads_back_whole_and_damage_is_refused);
	tcase_add_test(tc, catalogs_keep_the_16_most_recently_written);
	tcase_add_test(tc, catalogs_a_killed_writers_file_goes);
	return tc;
}
