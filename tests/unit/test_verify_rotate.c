/* tests/unit/test_verify_rotate.c: the writer's key rotation (top-level roles and delegated
 * roles) and revocation, seen by clients that trusted the state before each operation. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <check.h>

#include "unit.h"
#include "verify/trusted.h"
#include "verify/verify.h"
#include "verify/writer/writer.h"

#define T0   ((time_t)1795168800) /* 2026-11-20T10:00:00Z */
#define HOUR 3600

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

struct fix {
	char dir[64];
	char *repo;
	char *keys;
	struct verify_key *alice;
	struct verify_repo_opts o;
	struct verify_source src;
	struct unit_memcache mc;
	struct verify_cache cache;
	struct verify_client *old; /* a client that trusted the state before each operation */
};

static struct fix F;

static void make_repo(void);

static void setup(void)
{
	memset(&F, 0, sizeof(F));
	snprintf(F.dir, sizeof(F.dir), "/tmp/vrot-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(F.dir));
	F.repo = unit_path_of(F.dir, "repo");
	F.keys = unit_path_of(F.dir, "keys");
	F.o.now = T0;
	F.cache = (struct verify_cache){.load = unit_mc_load, .save = unit_mc_save, .ctx = &F.mc};
	ck_assert_int_eq(verify_key_generate(&F.alice), 0);
	stork_error_clear();
	make_repo();
}

static void teardown(void)
{
	verify_client_free(F.old);
	verify_dir_source_fini(&F.src);
	verify_key_free(F.alice);
	nftw(F.dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	unit_mc_clear(&F.mc);
	free(F.repo);
	free(F.keys);
}

static void assert_detail_has(const char *needle)
{
	ck_assert_msg(strstr(stork_error_detail(), needle), "detail \"%s\" lacks \"%s\"",
		      stork_error_detail(), needle);
}

static struct verify_manifest *make_manifest(const char *name, const char *version)
{
	struct verify_manifest *m = NULL;
	struct verify_entry d = {
	    .path = (char *)"usr", .type = VERIFY_DIR, .mode = 0755, .mtime = 1700000000};
	struct verify_entry e = {.path = (char *)"usr/hello",
				 .type = VERIFY_FILE,
				 .mode = 0644,
				 .mtime = 1700000000,
				 .size = strlen(version),
				 .zsize = 9};

	ck_assert_int_eq(verify_sha256(version, strlen(version), e.hash), 0);
	ck_assert_int_eq(verify_manifest_new(name, version, "dir", &m), 0);
	ck_assert_int_eq(verify_manifest_add(m, &d), 0);
	ck_assert_int_eq(verify_manifest_add(m, &e), 0);
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	return m;
}

static int publish(struct verify_key *k, const char *name, const char *version)
{
	struct verify_manifest *m = make_manifest(name, version);
	int r = verify_repo_publish(F.repo, F.keys, k, m, &F.o);

	verify_manifest_free(m);
	return r;
}

static void publish_ok(struct verify_key *k, const char *name, const char *version)
{
	int r = publish(k, name, version);

	ck_assert_msg(r == 0, "publish %s %s: %d %s", name, version, r, stork_error_detail());
}

static void delegate_ok(struct verify_key *k, const char *role, const char *pattern)
{
	const char *pats[] = {pattern};
	int r = verify_repo_delegate(F.repo, F.keys, k, role, pats, 1, &F.o);

	ck_assert_msg(r == 0, "delegate: %d %s", r, stork_error_detail());
}

static void rotate_ok(const char *a, const char *b)
{
	const char *roles[] = {a, b};
	int r = verify_repo_rotate(F.repo, F.keys, roles, b ? 2 : 1, &F.o);

	ck_assert_msg(r == 0, "rotate %s: %d %s", a, r, stork_error_detail());
}

/* A client pinned to metadata/1.root.json (new, caller frees), with the memory cache. */
static struct verify_client *client_new(void)
{
	struct verify_client *c = NULL;
	uint8_t *root;
	size_t len;
	char *p = unit_path_of(F.repo, "metadata/1.root.json");

	unit_read_all(p, &root, &len);
	free(p);
	ck_assert_int_eq(verify_client_new(root, len, T0 + HOUR, &c), 0);
	free(root);
	ck_assert_int_eq(verify_client_set_cache(c, &F.cache), 0);
	return c;
}

static void refresh_ok(struct verify_client *c)
{
	int r = verify_client_refresh(c, &F.src);

	ck_assert_msg(r == 0, "refresh: %d %s", r, stork_error_detail());
}

/* init, delegate hello to alice, publish hello 1.0, and a client that trusts it all */
static void make_repo(void)
{
	char *root = NULL;
	int r;

	r = verify_repo_init(F.repo, F.keys, &F.o, &root);
	ck_assert_msg(r == 0, "init: %d %s", r, stork_error_detail());
	free(root);
	ck_assert_int_eq(verify_dir_source_init(&F.src, F.repo), 0);
	delegate_ok(F.alice, "alice", "hello");
	publish_ok(F.alice, "hello", "1.0");
	F.old = client_new();
	refresh_ok(F.old);
}

static int find(struct verify_client *c, const char *name, const char *version, char **ret_role)
{
	struct verify_target t = {0};
	char path[128];
	int r;

	snprintf(path, sizeof(path), "%s/%s.json", name, version);
	r = verify_client_find_target(c, &F.src, path, &t);
	if (r == 0 && ret_role)
		*ret_role = strdup(t.role);
	verify_target_fini(&t);
	return r;
}

static void find_ok(struct verify_client *c, const char *name, const char *version,
		    const char *role)
{
	char *got = NULL;
	int r = find(c, name, version, &got);

	ck_assert_msg(r == 0, "find %s %s: %d %s", name, version, r, stork_error_detail());
	ck_assert_str_eq(got, role);
	free(got);
}

static uint64_t trusted_version(struct verify_client *c, const char *role)
{
	uint64_t v = 0;

	ck_assert_int_eq(verify_client_role_info(c, role, &v, NULL), 0);
	return v;
}

static struct verify_key *key_file(const char *name)
{
	struct verify_key *k = NULL;
	char *p = unit_path_of(F.keys, name);
	int r = verify_key_load_private(p, &k);

	ck_assert_msg(r == 0, "%s: %d %s", p, r, stork_error_detail());
	free(p);
	return k;
}

static bool exists_in(const char *dir, const char *name)
{
	char *p = unit_path_of(dir, name);
	bool e = access(p, F_OK) == 0;

	free(p);
	return e;
}

/* A listing of a directory's names with their sizes and mtimes, to compare before/after. */
static char *listing(const char *dir)
{
	char *out = NULL, *grown;
	size_t len = 0;
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(dir);

	ck_assert_ptr_nonnull(d);
	out = strdup("");
	while ((de = readdir(d))) {
		char line[512];
		int n;

		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		n = snprintf(line, sizeof(line), "%s %lld %lld.%09ld %llu\n", de->d_name,
			     (long long)st.st_size, (long long)st.st_mtim.tv_sec,
			     st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
		grown = realloc(out, len + (size_t)n + 1);
		ck_assert_ptr_nonnull(grown);
		out = grown;
		memcpy(out + len, line, (size_t)n + 1);
		len += (size_t)n;
	}
	closedir(d);
	return out;
}

/* The snapshot the repository's timestamp names lists role.json at this version (0: not). */
static uint64_t snapshot_lists(const char *role)
{
	struct verify_client *c = client_new();
	struct meta_file *mf;
	char name[80];
	uint64_t v;

	refresh_ok(c);
	snprintf(name, sizeof(name), "%s.json", role);
	mf = (struct meta_file *)trusted_snapshot_entry(c, name);
	v = mf ? mf->version : 0;
	verify_client_free(c);
	return v;
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(rotate_root_twice_clients_pinned_to_version_1_chain_through)
{
	struct verify_key *k1 = key_file("root.key"), *k;
	struct verify_client *fresh;
	char old_name[64];

	rotate_ok("root", NULL);
	/* the old key is kept under a name that says which key it is */
	snprintf(old_name, sizeof(old_name), "root.key.old-%.16s", verify_key_id(k1));
	ck_assert(exists_in(F.keys, old_name));
	ck_assert(!exists_in(F.keys, "root.key.new"));
	k = key_file("root.key");
	ck_assert_str_ne(verify_key_id(k), verify_key_id(k1));
	verify_key_free(k);
	refresh_ok(F.old);
	ck_assert_uint_eq(trusted_version(F.old, "root"), 2);
	find_ok(F.old, "hello", "1.0", "alice");

	rotate_ok("root", NULL);
	refresh_ok(F.old);
	ck_assert_uint_eq(trusted_version(F.old, "root"), 3);
	/* a new client pinned to 1.root.json walks 1 -> 2 -> 3 */
	fresh = client_new();
	refresh_ok(fresh);
	ck_assert_uint_eq(trusted_version(fresh, "root"), 3);
	find_ok(fresh, "hello", "1.0", "alice");
	verify_client_free(fresh);

	/* the writer works with the rotated keys */
	publish_ok(F.alice, "hello", "2.0");
	refresh_ok(F.old);
	find_ok(F.old, "hello", "2.0", "alice");
	verify_key_free(k1);
}
END_TEST

START_TEST(rotate_timestamp_and_snapshot_cached_client_recovers)
{
	struct verify_client *restarted;
	struct verify_key *ts1 = key_file("timestamp.key"), *ts2;
	uint64_t tv = trusted_version(F.old, "timestamp");

	rotate_ok("timestamp", "snapshot");
	ts2 = key_file("timestamp.key");
	ck_assert_str_ne(verify_key_id(ts1), verify_key_id(ts2));
	/* the client that trusted the old keys follows in memory... */
	refresh_ok(F.old);
	ck_assert_uint_eq(trusted_version(F.old, "root"), 2);
	ck_assert_uint_gt(trusted_version(F.old, "timestamp"), tv);
	find_ok(F.old, "hello", "1.0", "alice");
	/* ... and a restart from its cache too */
	restarted = client_new();
	refresh_ok(restarted);
	ck_assert_uint_eq(trusted_version(restarted, "timestamp"),
			  trusted_version(F.old, "timestamp"));
	find_ok(restarted, "hello", "1.0", "alice");
	verify_client_free(restarted);
	/* rotating again: the client's trusted timestamp was signed by a key root 3 drops */
	rotate_ok("timestamp", NULL);
	refresh_ok(F.old);
	ck_assert_uint_eq(trusted_version(F.old, "root"), 3);
	publish_ok(F.alice, "hello", "2.0");
	refresh_ok(F.old);
	find_ok(F.old, "hello", "2.0", "alice");
	verify_key_free(ts1);
	verify_key_free(ts2);
}
END_TEST

START_TEST(rotate_targets_resigns_delegations)
{
	uint64_t tv = trusted_version(F.old, "targets");

	rotate_ok("targets", "root");
	refresh_ok(F.old);
	ck_assert_uint_eq(trusted_version(F.old, "targets"), tv + 1);
	find_ok(F.old, "hello", "1.0", "alice");
	/* delegating needs the targets key: the new one is in place */
	delegate_ok(F.alice, "alice", "hello-*");
	publish_ok(F.alice, "hello-doc", "1.0");
	refresh_ok(F.old);
	find_ok(F.old, "hello-doc", "1.0", "alice");
}
END_TEST

START_TEST(rotate_refuses_unknown_and_delegated_roles)
{
	const char *alice[] = {"alice"}, *bad[] = {"Root"};

	ck_assert_int_eq(verify_repo_rotate(F.repo, F.keys, alice, 1, &F.o), -EINVAL);
	assert_detail_has("--key NEWKEYFILE alice");
	ck_assert_int_eq(verify_repo_rotate(F.repo, F.keys, bad, 1, &F.o), -EINVAL);
	assert_detail_has("expected root, targets, snapshot or timestamp");
	ck_assert_int_eq(verify_repo_rotate(F.repo, F.keys, bad, 0, &F.o), -EINVAL);
}
END_TEST

START_TEST(rotate_with_a_missing_key_writes_nothing)
{
	char *md = unit_path_of(F.repo, "metadata"), *before_md, *before_keys, *after_md,
	     *after_keys;
	char *p = unit_path_of(F.keys, "timestamp.key");

	ck_assert_int_eq(unlink(p), 0);
	free(p);
	before_md = listing(md);
	before_keys = listing(F.keys);
	ck_assert_int_lt(
	    verify_repo_rotate(F.repo, F.keys, (const char *[]){"root", "snapshot"}, 2, &F.o), 0);
	assert_detail_has("timestamp.key");
	after_md = listing(md);
	after_keys = listing(F.keys);
	ck_assert_str_eq(after_md, before_md);
	ck_assert_str_eq(after_keys, before_keys);
	free(before_md);
	free(before_keys);
	free(after_md);
	free(after_keys);
	free(md);
}
END_TEST

/* The rotation fails after it saved the new keys but before anything is committed: a
 * directory stands where the next snapshot must go. Clients and writers carry on with the old
 * root and keys; the retry reuses the new keys saved before the failure. */
START_TEST(rotate_interrupted_before_the_commit_keeps_everything_usable)
{
	struct verify_key *pending, *now_root, *old_root = key_file("root.key");
	char *blocker = unit_path_of(F.repo, "metadata/4.snapshot.json");

	ck_assert_uint_eq(trusted_version(F.old, "snapshot"), 3);
	ck_assert_int_eq(mkdir(blocker, 0755), 0);
	ck_assert_int_lt(
	    verify_repo_rotate(F.repo, F.keys, (const char *[]){"root", "timestamp"}, 2, &F.o), 0);
	assert_detail_has("metadata/4.snapshot.json");
	ck_assert(exists_in(F.keys, "root.key.new"));
	ck_assert(exists_in(F.keys, "timestamp.key.new"));
	ck_assert(!exists_in(F.repo, "metadata/2.root.json"));
	pending = key_file("root.key.new");
	now_root = key_file("root.key");
	ck_assert_str_eq(verify_key_id(now_root), verify_key_id(old_root));
	verify_key_free(now_root);
	ck_assert_int_eq(rmdir(blocker), 0);

	/* the committed state still verifies under root 1; writers work with the old keys */
	refresh_ok(F.old);
	ck_assert_uint_eq(trusted_version(F.old, "root"), 1);
	publish_ok(F.alice, "hello", "2.0");
	refresh_ok(F.old);
	find_ok(F.old, "hello", "2.0", "alice");

	rotate_ok("root", "timestamp");
	now_root = key_file("root.key");
	ck_assert_str_eq(verify_key_id(now_root), verify_key_id(pending));
	refresh_ok(F.old);
	ck_assert_uint_eq(trusted_version(F.old, "root"), 2);
	verify_key_free(pending);
	verify_key_free(now_root);
	verify_key_free(old_root);
	free(blocker);
}
END_TEST

/* A crash after N+1.root.json but before the key files were switched: ROLE.key is still the
 * old key and ROLE.key.new the one the root lists. The next writer finishes the switch. */
START_TEST(rotate_interrupted_after_the_root_commit_is_finished_by_the_next_writer)
{
	struct verify_key *k1 = key_file("snapshot.key"), *k2, *k;
	char *cur = unit_path_of(F.keys, "snapshot.key"),
	     *pend = unit_path_of(F.keys, "snapshot.key.new"), *old = NULL;

	rotate_ok("snapshot", NULL);
	k2 = key_file("snapshot.key");
	/* undo the switch: what a crash right after the root commit leaves */
	ck_assert_int_ge(asprintf(&old, "%s/snapshot.key.old-%.16s", F.keys, verify_key_id(k1)), 0);
	ck_assert_int_eq(rename(cur, pend), 0);
	ck_assert_int_eq(rename(old, cur), 0);
	k = key_file("snapshot.key");
	ck_assert_str_eq(verify_key_id(k), verify_key_id(k1));
	verify_key_free(k);

	publish_ok(F.alice, "hello", "2.0");
	k = key_file("snapshot.key");
	ck_assert_str_eq(verify_key_id(k), verify_key_id(k2));
	verify_key_free(k);
	ck_assert(!exists_in(F.keys, "snapshot.key.new"));
	ck_assert_int_eq(access(old, F_OK), 0);
	refresh_ok(F.old);
	find_ok(F.old, "hello", "2.0", "alice");
	verify_key_free(k1);
	verify_key_free(k2);
	free(cur);
	free(pend);
	free(old);
}
END_TEST

START_TEST(rekey_resigns_role_and_refuses_the_old_key)
{
	struct verify_key *alice2;
	uint64_t listed = snapshot_lists("alice");
	int r;

	ck_assert_int_eq(verify_key_generate(&alice2), 0);
	r = verify_repo_rekey(F.repo, F.keys, "alice", alice2, &F.o);
	ck_assert_msg(r == 0, "rekey: %d %s", r, stork_error_detail());
	ck_assert_uint_eq(snapshot_lists("alice"), listed + 1);
	refresh_ok(F.old);
	find_ok(F.old, "hello", "1.0", "alice");

	publish_ok(alice2, "hello", "2.0");
	ck_assert_int_eq(publish(F.alice, "hello", "3.0"), STORK_EPATTERN);
	assert_detail_has("not delegated");
	refresh_ok(F.old);
	find_ok(F.old, "hello", "2.0", "alice");
	ck_assert_int_eq(find(F.old, "hello", "3.0", NULL), -ENOENT);

	/* the same key again: nothing to write */
	{
		char *md = unit_path_of(F.repo, "metadata"), *before = listing(md), *after;

		ck_assert_int_eq(verify_repo_rekey(F.repo, F.keys, "alice", alice2, &F.o), 0);
		after = listing(md);
		ck_assert_str_eq(after, before);
		free(after);
		free(before);
		free(md);
	}
	verify_key_free(alice2);
}
END_TEST

START_TEST(rekey_refuses_unknown_role_and_public_key)
{
	struct verify_key *k;
	char *pub = unit_path_of(F.dir, "k.key"), *pubpub = unit_path_of(F.dir, "k.key.pub");

	ck_assert_int_eq(verify_key_generate(&k), 0);
	ck_assert_int_eq(verify_repo_rekey(F.repo, F.keys, "bob", k, &F.o), -ENOENT);
	assert_detail_has("delegated roles are alice");
	ck_assert_int_eq(verify_repo_rekey(F.repo, F.keys, "targets", k, &F.o), -EINVAL);
	ck_assert_int_eq(verify_key_save(k, pub), 0);
	verify_key_free(k);
	ck_assert_int_eq(verify_key_load_public(pubpub, &k), 0);
	ck_assert_int_eq(verify_repo_rekey(F.repo, F.keys, "alice", k, &F.o), -EINVAL);
	assert_detail_has("private key");
	verify_key_free(k);
	free(pub);
	free(pubpub);
}
END_TEST

START_TEST(revoke_removes_packages_and_keeps_role_listed)
{
	struct verify_key *bob;
	uint64_t listed = snapshot_lists("alice");
	int r;

	ck_assert_int_eq(verify_key_generate(&bob), 0);
	delegate_ok(bob, "bob", "world");
	publish_ok(bob, "world", "1.0");
	refresh_ok(F.old);
	find_ok(F.old, "hello", "1.0", "alice");

	r = verify_repo_revoke(F.repo, F.keys, "alice", &F.o);
	ck_assert_msg(r == 0, "revoke: %d %s", r, stork_error_detail());
	/* still listed (TUF forbids dropping it), at a higher version */
	ck_assert_uint_eq(snapshot_lists("alice"), listed + 1);
	refresh_ok(F.old);
	ck_assert_int_eq(find(F.old, "hello", "1.0", NULL), -ENOENT);
	find_ok(F.old, "world", "1.0", "bob");
	/* alice can publish nothing now */
	ck_assert_int_eq(publish(F.alice, "hello", "2.0"), STORK_EPATTERN);
	/* the name again, to another key: the role starts empty, above the listed version */
	delegate_ok(bob, "alice", "hello");
	publish_ok(bob, "hello", "2.0");
	ck_assert_uint_eq(snapshot_lists("alice"), listed + 2);
	refresh_ok(F.old);
	find_ok(F.old, "hello", "2.0", "alice");
	ck_assert_int_eq(find(F.old, "hello", "1.0", NULL), -ENOENT);
	/* and revoking it twice works the same way */
	ck_assert_int_eq(verify_repo_revoke(F.repo, F.keys, "alice", &F.o), 0);
	delegate_ok(F.alice, "alice", "hello");
	publish_ok(F.alice, "hello", "3.0");
	refresh_ok(F.old);
	find_ok(F.old, "hello", "3.0", "alice");
	ck_assert_int_eq(find(F.old, "hello", "2.0", NULL), -ENOENT);
	ck_assert_int_eq(find(F.old, "hello", "1.0", NULL), -ENOENT);
	verify_key_free(bob);
}
END_TEST

START_TEST(revoke_same_key_again_does_not_bring_back_old_packages)
{
	ck_assert_int_eq(verify_repo_revoke(F.repo, F.keys, "alice", &F.o), 0);
	delegate_ok(F.alice, "alice", "hello");
	/* before alice publishes again, her old targets must not reappear */
	refresh_ok(F.old);
	ck_assert_int_lt(find(F.old, "hello", "1.0", NULL), 0);
	publish_ok(F.alice, "hello", "2.0");
	refresh_ok(F.old);
	find_ok(F.old, "hello", "2.0", "alice");
	ck_assert_int_eq(find(F.old, "hello", "1.0", NULL), -ENOENT);
}
END_TEST

START_TEST(revoke_unknown_role_names_the_roles_and_writes_nothing)
{
	char *md = unit_path_of(F.repo, "metadata"), *before = listing(md), *after;

	ck_assert_int_eq(verify_repo_revoke(F.repo, F.keys, "bob", &F.o), -ENOENT);
	assert_detail_has("no role bob");
	assert_detail_has("the delegated roles are alice");
	ck_assert_int_eq(verify_repo_revoke(F.repo, F.keys, "timestamp", &F.o), -EINVAL);
	assert_detail_has("stork repo rotate");
	after = listing(md);
	ck_assert_str_eq(after, before);
	free(after);
	free(before);
	free(md);
}
END_TEST

static Suite *rotate_suite(void)
{
	Suite *s = suite_create("verify_rotate");
	TCase *tc = tcase_create("rotate");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, rotate_root_twice_clients_pinned_to_version_1_chain_through);
	tcase_add_test(tc, rotate_timestamp_and_snapshot_cached_client_recovers);
	tcase_add_test(tc, rotate_targets_resigns_delegations);
	tcase_add_test(tc, rotate_refuses_unknown_and_delegated_roles);
	tcase_add_test(tc, rotate_with_a_missing_key_writes_nothing);
	tcase_add_test(tc, rotate_interrupted_before_the_commit_keeps_everything_usable);
	tcase_add_test(tc, rotate_interrupted_after_the_root_commit_is_finished_by_the_next_writer);
	tcase_add_test(tc, rekey_resigns_role_and_refuses_the_old_key);
	tcase_add_test(tc, rekey_refuses_unknown_role_and_public_key);
	tcase_add_test(tc, revoke_removes_packages_and_keeps_role_listed);
	tcase_add_test(tc, revoke_same_key_again_does_not_bring_back_old_packages);
	tcase_add_test(tc, revoke_unknown_role_names_the_roles_and_writes_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rotate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
