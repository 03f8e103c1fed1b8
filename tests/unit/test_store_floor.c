/* tests/unit/test_store_floor.c: the node store's copy of the trusted metadata (what keeps the
 * rollback floor when the index is lost) and a file where a directory objects/ab belongs. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "store/import/import.h"
#include "store/store.h"
#include "tests/unit/unit.h"

static char tmpdir[256];
static char storedir[300];

static void setup(void)
{
	unit_tmpdir("test_store_floor", tmpdir, sizeof(tmpdir), storedir, sizeof(storedir));
}

static void teardown(void)
{
	unit_tmpdir_rm(tmpdir);
}

/* STOREDIR/rel removed, whatever it is. */
static void remove_path(const char *rel)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/%s", storedir, rel);
	nftw(p, unit_rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

/* STOREDIR/rel holds exactly len bytes of buf. */
static bool holds(const char *rel, const void *buf, size_t len)
{
	char p[600];
	uint8_t *got = NULL;
	size_t n = 0;
	bool same;

	snprintf(p, sizeof(p), "%s/%s", storedir, rel);
	if (access(p, F_OK) < 0)
		return false;
	unit_read_all(p, &got, &n);
	same = n == len && memcmp(got, buf, len) == 0;
	free(got);
	return same;
}

/* Overwrite STOREDIR/rel with text. */
static void write_copy(const char *rel, const char *text)
{
	char p[600];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", storedir, rel);
	f = fopen(p, "we");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static bool meta_is(struct store *s, const char *repo, const char *name, const char *want)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	bool same;

	if (store_meta_get(s, repo, name, &buf, &len) < 0)
		return false;
	same = len == strlen(want) && memcmp(buf, want, len) == 0;
	free(buf);
	return same;
}

static const struct store_repo_status *repo_of(const struct store_stats *st, const char *repo)
{
	for (size_t i = 0; i < st->nrepos; i++)
		if (strcmp(st->repos[i].repo, repo) == 0)
			return &st->repos[i];
	return NULL;
}

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

/* ------------------------------------------------------------------------------------------ */
/* The copy of the trusted metadata. */

START_TEST(floor_meta_put_keeps_a_copy_outside_the_index)
{
	struct store *s = unit_store_open(storedir);

	ck_assert_int_eq(store_meta_put(s, "repoA", "timestamp.json", "{ts 1}", 6), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "timestamp.json", "{ts 2}", 6), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "snapshot.json", "", 0), 0);
	/* Names that are no plain file names are encoded, never a path. */
	ck_assert_int_eq(store_meta_put(s, "repoA", "a/../b", "x", 1), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", ".hidden", "h", 1), 0);
	ck_assert(holds("trusted/repoA/timestamp.json", "{ts 2}", 6));
	ck_assert(holds("trusted/repoA/snapshot.json", "", 0));
	ck_assert(holds("trusted/repoA/a%2F..%2Fb", "x", 1));
	ck_assert(holds("trusted/repoA/%2Ehidden", "h", 1));
	store_close(s);
}
END_TEST

START_TEST(floor_index_lost_restores_from_the_copy)
{
	struct store_fsck_report rep;
	struct findings fi = {{0}, 0};
	const struct store_repo_status *rs;
	enum store_trust trust = STORE_TRUST_NONE;
	struct store_stats st;
	struct store *s = unit_store_open(storedir);
	size_t files = 0;

	ck_assert_int_eq(store_meta_put(s, "repoA", "root.json", "{root}", 6), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "timestamp.json", "{ts 7}", 6), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "a/../b", "x", 1), 0);
	ck_assert_int_eq(store_repo_note_refresh(s, "repoA", "https://m.example/r", 1700000000), 0);
	ck_assert_int_eq(store_meta_recover(s, "repoA", &trust, &files), 0);
	ck_assert_int_eq(trust, STORE_TRUST_NONE);
	store_close(s);

	remove_path("index");
	s = unit_store_open(storedir);
	ck_assert(!meta_is(s, "repoA", "timestamp.json", "{ts 7}"));
	/* status sees it before anyone restores it */
	ck_assert_int_eq(store_stats(s, &st), 0);
	rs = repo_of(&st, "repoA");
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->trust, STORE_TRUST_PENDING);
	ck_assert_uint_eq(rs->ncopy, 3);
	store_stats_fini(&st);
	/* fsck reports it */
	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_uint_eq(rep.lost_meta, 1);
	ck_assert_msg(strstr(fi.text, "/trusted/repoA: the index holds none"), "%s", fi.text);
	ck_assert(!meta_is(s, "repoA", "timestamp.json", "{ts 7}"));

	ck_assert_int_eq(store_meta_recover(s, "repoA", &trust, &files), 0);
	ck_assert_int_eq(trust, STORE_TRUST_RESTORED);
	ck_assert_uint_eq(files, 3);
	ck_assert(meta_is(s, "repoA", "root.json", "{root}"));
	ck_assert(meta_is(s, "repoA", "timestamp.json", "{ts 7}"));
	ck_assert(meta_is(s, "repoA", "a/../b", "x"));
	/* what happened stays in the record, also across a refresh */
	ck_assert_int_eq(store_repo_note_refresh(s, "repoA", "https://m.example/r", 1700000100), 0);
	ck_assert_int_eq(store_stats(s, &st), 0);
	rs = repo_of(&st, "repoA");
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->trust, STORE_TRUST_RESTORED);
	ck_assert_int_eq(rs->last_refresh, 1700000100);
	store_stats_fini(&st);
	/* the next start finds the index whole */
	ck_assert_int_eq(store_meta_recover(s, "repoA", &trust, &files), 0);
	ck_assert_int_eq(trust, STORE_TRUST_NONE);
	store_close(s);

	/* fsck --repair restores it too */
	remove_path("index");
	s = unit_store_open(storedir);
	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, true, note_problem, &fi, &rep), 0);
	ck_assert_uint_eq(rep.lost_meta, 1);
	ck_assert_uint_eq(rep.repaired, 1);
	ck_assert(meta_is(s, "repoA", "timestamp.json", "{ts 7}"));
	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(rep.lost_meta == 0 && fi.n == 0, "second fsck:\n%s", fi.text);
	store_close(s);
}
END_TEST

START_TEST(floor_index_and_copy_lost_is_told)
{
	enum store_trust trust = STORE_TRUST_NONE;
	const struct store_repo_status *rs;
	uint8_t id[VERIFY_HASH_LEN];
	struct store_stats st;
	struct store *s = unit_store_open(storedir);

	/* a new store, a new repository: nothing to say */
	ck_assert_int_eq(store_meta_recover(s, "repoA", &trust, NULL), 0);
	ck_assert_int_eq(trust, STORE_TRUST_NONE);
	ck_assert_int_eq(insert(s, "an object", 9, id), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "timestamp.json", "{ts 7}", 6), 0);
	store_close(s);

	remove_path("index");
	remove_path("trusted");
	s = unit_store_open(storedir);
	ck_assert_int_eq(store_meta_recover(s, "repoA", &trust, NULL), 0);
	ck_assert_int_eq(trust, STORE_TRUST_LOST);
	ck_assert_int_eq(store_stats(s, &st), 0);
	rs = repo_of(&st, "repoA");
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->trust, STORE_TRUST_LOST);
	store_stats_fini(&st);
	store_close(s);

	/* the copy's directory left, empty: lost as well */
	remove_path("index");
	s = unit_store_open(storedir);
	ck_assert_int_eq(store_meta_put(s, "repoB", "timestamp.json", "{b}", 3), 0);
	store_close(s);
	remove_path("index");
	remove_path("trusted/repoB/timestamp.json");
	s = unit_store_open(storedir);
	ck_assert_int_eq(store_meta_recover(s, "repoB", &trust, NULL), 0);
	ck_assert_int_eq(trust, STORE_TRUST_LOST);
	store_close(s);
}
END_TEST

START_TEST(floor_the_copy_catches_up_with_the_index)
{
	enum store_trust trust = STORE_TRUST_NONE;
	struct store *s = unit_store_open(storedir);

	ck_assert_int_eq(store_meta_put(s, "repoA", "timestamp.json", "{ts 7}", 6), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "root.json", "{root}", 6), 0);
	remove_path("trusted"); /* as an older version left it */
	ck_assert_int_eq(store_meta_recover(s, "repoA", &trust, NULL), 0);
	ck_assert_int_eq(trust, STORE_TRUST_NONE);
	ck_assert(holds("trusted/repoA/timestamp.json", "{ts 7}", 6));
	ck_assert(holds("trusted/repoA/root.json", "{root}", 6));

	/* A copy a crash left behind (killed between the index's commit and the copy's
	 * rename): the next start brings it up to the index. */
	ck_assert_int_eq(store_meta_put(s, "repoA", "timestamp.json", "{ts 8}", 6), 0);
	ck_assert_int_eq(store_meta_put(s, "repoA", "snapshot.json", "{sn 8}", 6), 0);
	write_copy("trusted/repoA/timestamp.json", "{ts 7}");
	remove_path("trusted/repoA/snapshot.json");
	ck_assert_int_eq(store_meta_recover(s, "repoA", &trust, NULL), 0);
	ck_assert_int_eq(trust, STORE_TRUST_NONE);
	ck_assert(holds("trusted/repoA/timestamp.json", "{ts 8}", 6));
	ck_assert(holds("trusted/repoA/snapshot.json", "{sn 8}", 6));
	store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* A file where the directory objects/ab belongs. */

/* Replace objects/<first 2 hex of id> by a regular file. */
static void file_at_subdir(const uint8_t id[VERIFY_HASH_LEN])
{
	char hex[VERIFY_HASH_HEX], rel[32], p[600];
	int fd;

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(rel, sizeof(rel), "objects/%.2s", hex);
	remove_path(rel);
	snprintf(p, sizeof(p), "%s/%s", storedir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "junk", 4), 4);
	close(fd);
}

START_TEST(floor_fsck_repairs_a_file_where_objects_ab_belongs)
{
	struct store_fsck_report rep;
	struct findings fi = {{0}, 0};
	struct store_objinfo info;
	uint8_t a[32], b[32];
	struct store *s = unit_store_open(storedir);
	int fd;

	ck_assert_int_eq(insert(s, "object A", 8, a), 0);
	ck_assert_int_eq(insert(s, "object B", 8, b), 0);
	file_at_subdir(a);

	ck_assert_msg(store_fsck(s, false, note_problem, &fi, &rep) == 0, "fsck: %s",
		      stork_error_detail());
	ck_assert_msg(rep.missing == 1 && rep.unindexed == 1 && rep.repaired == 0,
		      "missing %llu unindexed %llu\n%s", (unsigned long long)rep.missing,
		      (unsigned long long)rep.unindexed, fi.text);
	ck_assert_msg(strstr(fi.text, ": not a directory: a file where the directory"), "%s",
		      fi.text);
	ck_assert_msg(strstr(fi.text, ": indexed but missing"), "%s", fi.text);

	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, true, note_problem, &fi, &rep), 0);
	ck_assert_uint_eq(rep.repaired, 2);
	memset(&fi, 0, sizeof(fi));
	ck_assert_int_eq(store_fsck(s, false, note_problem, &fi, &rep), 0);
	ck_assert_msg(fi.n == 0 && rep.good == 1, "second fsck:\n%s", fi.text);
	ck_assert_int_eq(store_object_info(s, a, &info), -ENOENT);
	ck_assert_int_eq(store_object_info(s, b, &info), 0);
	/* and the object comes back */
	ck_assert_int_eq(insert(s, "object A", 8, a), 0);
	ck_assert_int_eq(store_object_open(s, a, &fd), 0);
	close(fd);
	store_close(s);
}
END_TEST

START_TEST(floor_reads_and_inserts_clear_a_file_where_objects_ab_belongs)
{
	struct store_insert *ins = NULL;
	struct store_batch *bt = NULL;
	struct store_objinfo info;
	uint8_t a[32], id[32];
	char hex[VERIFY_HASH_HEX], p[600];
	struct stat sb;
	struct store *s = unit_store_open(storedir);
	int fd = -1, dirfd;

	ck_assert_int_eq(insert(s, "object A", 8, a), 0);
	file_at_subdir(a);
	/* a read: missing, the entry dropped (fetched again by the caller) */
	ck_assert_int_eq(store_object_open(s, a, &fd), -ENOENT);
	ck_assert_int_eq(store_object_info(s, a, &info), -ENOENT);
	/* an insert: the file is cleared, the directory made */
	ck_assert_msg(insert(s, "object A", 8, a) == 0, "%s", stork_error_detail());
	ck_assert_int_eq(store_object_open(s, a, &fd), 0);
	close(fd);
	verify_hex(a, VERIFY_HASH_LEN, hex);
	snprintf(p, sizeof(p), "%s/objects/%.2s", storedir, hex);
	ck_assert_int_eq(lstat(p, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	/* a link (mode variant) */
	file_at_subdir(a);
	ck_assert_int_eq(insert(s, "object A", 8, a), 0);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_eq(store_object_link(s, a, 0755, dirfd, "x"), 0);
	close(dirfd);
	/* a batch */
	file_at_subdir(a);
	ck_assert_int_eq(store_batch_new(s, &bt), 0);
	ck_assert_int_eq(verify_sha256("object A", 8, id), 0);
	ck_assert_int_eq(store_insert_new(s, id, 8, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "object A", 8), 0);
	ck_assert_msg(store_insert_commit_batched(ins, bt) == 0, "%s", stork_error_detail());
	store_batch_free(bt);
	ck_assert_int_eq(store_object_open(s, a, &fd), 0);
	close(fd);
	store_close(s);
}
END_TEST

START_TEST(floor_publisher_names_a_file_where_objects_ab_belongs)
{
	struct store_objwriter *w = NULL;
	uint8_t id[VERIFY_HASH_LEN], got[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], p[600];
	uint64_t size, zsize;
	bool fresh;
	int repofd, fd;

	ck_assert_int_eq(verify_sha256("published", 9, id), 0);
	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(p, sizeof(p), "%s/objects", tmpdir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/objects/%.2s", tmpdir, hex);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	repofd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(repofd, 0);
	ck_assert_int_eq(store_objwriter_new(repofd, &w), 0);
	ck_assert_int_eq(store_objwriter_write(w, "published", 9), 0);
	ck_assert_int_eq(store_objwriter_commit(w, got, &size, &zsize, &fresh), -ENOTDIR);
	ck_assert_msg(strstr(stork_error_detail(), ": not a directory, where the directory"), "%s",
		      stork_error_detail());
	close(repofd);
}
END_TEST

TCase *tcase_store_floor(void)
{
	TCase *tc = tcase_create("floor");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, floor_meta_put_keeps_a_copy_outside_the_index);
	tcase_add_test(tc, floor_index_lost_restores_from_the_copy);
	tcase_add_test(tc, floor_index_and_copy_lost_is_told);
	tcase_add_test(tc, floor_the_copy_catches_up_with_the_index);
	tcase_add_test(tc, floor_fsck_repairs_a_file_where_objects_ab_belongs);
	tcase_add_test(tc, floor_reads_and_inserts_clear_a_file_where_objects_ab_belongs);
	tcase_add_test(tc, floor_publisher_names_a_file_where_objects_ab_belongs);
	return tc;
}
