/* tests/unit/test_verify_policy.c: the trust policy file (verify/policy.c): every rule kind,
 * which rule decides for a package, pins in dpkg order (fs_version_cmp), key files, and the
 * error for each mistake with its file, line and expectation. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <check.h>

#include "fs/fs.h"
#include "tests/unit/unit.h"
#include "verify/verify.h"

/* RFC 8032 test vectors 1, 2 and 3: real ed25519 public keys. */
#define HEX_A "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define HEX_B "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
#define HEX_C "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025"
#define KEY_A "key alice ed25519 " HEX_A "\n"
#define KEY_B "key bob ed25519 " HEX_B "\n"

static char *tmpdir;

static void policy_setup(void)
{
	tmpdir = strdup("/tmp/stork-test-policy-XXXXXX");
	ck_assert_ptr_nonnull(tmpdir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void policy_teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(tmpdir);
	tmpdir = NULL;
	stork_error_clear();
}

static struct verify_policy *parse_ok(const char *text)
{
	struct verify_policy *p = NULL;
	int r = verify_policy_parse("web.policy", text, strlen(text), tmpdir, &p);

	ck_assert_msg(r == 0, "parse: %d (%s)", r, stork_error_detail());
	ck_assert_ptr_nonnull(p);
	return p;
}

static void parse_fails(const char *text, size_t len, int err, const char *detail)
{
	struct verify_policy *p = NULL;
	int r = verify_policy_parse("web.policy", text, len, tmpdir, &p);

	ck_assert_msg(r == err, "parse returned %d, expected %d (detail: %s)", r, err,
		      stork_error_detail());
	ck_assert_ptr_null(p);
	ck_assert_msg(strcmp(stork_error_detail(), detail) == 0, "detail\n  got: %s\n want: %s",
		      stork_error_detail(), detail);
}

/* The key id of a raw public key given in hex. */
static char *id_of_hex(const char *hex)
{
	struct verify_key *k = NULL;
	uint8_t raw[32];
	char *id;

	ck_assert_int_eq(verify_unhex(hex, raw, sizeof(raw)), 0);
	ck_assert_int_eq(verify_key_from_raw(raw, NULL, &k), 0);
	id = strdup(verify_key_id(k));
	ck_assert_ptr_nonnull(id);
	verify_key_free(k);
	return id;
}

/* Make a key pair, save it as DIR/NAME (and DIR/NAME.pub); return its key id. */
static char *save_key(const char *rel)
{
	struct verify_key *k = NULL;
	char *path = NULL, *id;

	ck_assert_int_ge(asprintf(&path, "%s/%s", tmpdir, rel), 0);
	ck_assert_int_eq(verify_key_generate(&k), 0);
	ck_assert_int_eq(verify_key_save(k, path), 0);
	id = strdup(verify_key_id(k));
	ck_assert_ptr_nonnull(id);
	verify_key_free(k);
	free(path);
	return id;
}

static void write_file(const char *rel, const char *buf, size_t len)
{
	char *path = NULL;
	FILE *f;

	ck_assert_int_ge(asprintf(&path, "%s/%s", tmpdir, rel), 0);
	f = fopen(path, "wb");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(path);
}

static int test_cmp(const char *a, const char *b)
{
	return fs_version_cmp(a, b);
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(policy_parses_every_rule_kind)
{
	struct verify_policy *p;
	const struct verify_policy_rule *r;
	char *ida = id_of_hex(HEX_A), *idc, text[1024];

	idc = save_key("carol.key");
	snprintf(text, sizeof(text),
		 "# a slice's policy\n"
		 "key alice ed25519 " HEX_A "\n"
		 "key bob ed25519 " HEX_B "\n"
		 "key carol file carol.key.pub\n"
		 "trust web-* role alice keys alice\n"
		 "trust db-* role db keys bob,carol threshold 2\n"
		 "refuse evil-*\n"
		 "refuse key carol\n"
		 "pin openssl >= 3.0 < 4\n"
		 "trust * delegated\n");
	p = parse_ok(text);

	r = verify_policy_rule_for(p, "web-server");
	ck_assert_int_eq(r->kind, VERIFY_POLICY_PINNED);
	ck_assert_str_eq(r->file, "web.policy");
	ck_assert_uint_eq(r->line, 5);
	ck_assert_str_eq(r->text, "trust web-* role alice keys alice");
	ck_assert_str_eq(r->pattern, "web-*");
	ck_assert_str_eq(r->role, "alice");
	ck_assert_uint_eq(r->nkeys, 1);
	ck_assert_str_eq(r->key_names[0], "alice");
	ck_assert_str_eq(verify_key_id(r->keys[0]), ida);
	ck_assert_uint_eq(r->threshold, 1);

	r = verify_policy_rule_for(p, "db-main");
	ck_assert_int_eq(r->kind, VERIFY_POLICY_PINNED);
	ck_assert_uint_eq(r->line, 6);
	ck_assert_str_eq(r->role, "db");
	ck_assert_uint_eq(r->nkeys, 2);
	ck_assert_str_eq(r->key_names[0], "bob");
	ck_assert_str_eq(r->key_names[1], "carol");
	ck_assert_str_eq(verify_key_id(r->keys[1]), idc);
	ck_assert_uint_eq(r->threshold, 2);

	r = verify_policy_rule_for(p, "evil-tool");
	ck_assert_int_eq(r->kind, VERIFY_POLICY_REFUSE);
	ck_assert_uint_eq(r->line, 7);
	ck_assert_str_eq(r->pattern, "evil-*");

	r = verify_policy_refused_key(p, idc);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->kind, VERIFY_POLICY_REFUSE_KEY);
	ck_assert_uint_eq(r->line, 8);
	ck_assert_uint_eq(r->nkeys, 1);
	ck_assert_str_eq(r->key_names[0], "carol");
	ck_assert_ptr_null(verify_policy_refused_key(p, ida));

	r = verify_policy_pin_excludes(p, "openssl", "2.9", test_cmp);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->kind, VERIFY_POLICY_PIN);
	ck_assert_uint_eq(r->line, 9);
	ck_assert_str_eq(r->pattern, "openssl");
	ck_assert_uint_eq(r->ncmps, 2);
	ck_assert_int_eq(r->cmps[0].op, VERIFY_CMP_GE);
	ck_assert_str_eq(r->cmps[0].version, "3.0");
	ck_assert_int_eq(r->cmps[1].op, VERIFY_CMP_LT);
	ck_assert_str_eq(r->cmps[1].version, "4");

	r = verify_policy_rule_for(p, "openssl");
	ck_assert_int_eq(r->kind, VERIFY_POLICY_DELEGATED);
	ck_assert_uint_eq(r->line, 10);
	ck_assert_str_eq(r->pattern, "*");

	/* every rule in file order; key lines and comments are not rules */
	ck_assert_uint_eq(verify_policy_nrules(p), 6);
	ck_assert_int_eq(verify_policy_rule_at(p, 0)->kind, VERIFY_POLICY_PINNED);
	ck_assert_int_eq(verify_policy_rule_at(p, 1)->kind, VERIFY_POLICY_PINNED);
	ck_assert_int_eq(verify_policy_rule_at(p, 2)->kind, VERIFY_POLICY_REFUSE);
	ck_assert_int_eq(verify_policy_rule_at(p, 3)->kind, VERIFY_POLICY_REFUSE_KEY);
	ck_assert_int_eq(verify_policy_rule_at(p, 4)->kind, VERIFY_POLICY_PIN);
	ck_assert_int_eq(verify_policy_rule_at(p, 5)->kind, VERIFY_POLICY_DELEGATED);
	ck_assert_uint_eq(verify_policy_rule_at(p, 5)->line, 10);
	ck_assert_ptr_null(verify_policy_rule_at(p, 6));
	verify_policy_free(p);
	free(ida);
	free(idc);
}
END_TEST

START_TEST(policy_first_matching_trust_or_refuse_line_decides)
{
	struct verify_policy *p = parse_ok(KEY_A "refuse web-old*\n"
						 "trust web-* role alice keys alice\n"
						 "refuse web-server\n"
						 "trust * delegated\n"
						 "refuse *\n");

	/* an earlier refuse beats a later trust, an earlier trust beats a later refuse */
	ck_assert_int_eq(verify_policy_rule_for(p, "web-oldstuff")->kind, VERIFY_POLICY_REFUSE);
	ck_assert_uint_eq(verify_policy_rule_for(p, "web-oldstuff")->line, 2);
	ck_assert_int_eq(verify_policy_rule_for(p, "web-server")->kind, VERIFY_POLICY_PINNED);
	ck_assert_uint_eq(verify_policy_rule_for(p, "web-server")->line, 3);
	ck_assert_int_eq(verify_policy_rule_for(p, "zlib")->kind, VERIFY_POLICY_DELEGATED);
	ck_assert_uint_eq(verify_policy_rule_for(p, "zlib")->line, 5);
	verify_policy_free(p);
}
END_TEST

START_TEST(policy_refuse_key_and_pin_lines_never_decide_a_name)
{
	struct verify_policy *p = parse_ok(KEY_A "refuse key alice\n"
						 "pin * >= 1\n"
						 "trust * delegated\n");

	ck_assert_int_eq(verify_policy_rule_for(p, "anything")->kind, VERIFY_POLICY_DELEGATED);
	ck_assert_uint_eq(verify_policy_rule_for(p, "anything")->line, 4);
	verify_policy_free(p);
}
END_TEST

START_TEST(policy_without_matching_line_returns_nomatch)
{
	struct verify_policy *p = parse_ok("trust web-* delegated\n");
	const struct verify_policy_rule *r = verify_policy_rule_for(p, "db");

	ck_assert_int_eq(r->kind, VERIFY_POLICY_NOMATCH);
	ck_assert_uint_eq(r->line, 0);
	ck_assert_int_eq(verify_policy_rule_for(p, "web")->kind, VERIFY_POLICY_NOMATCH);
	ck_assert_int_eq(verify_policy_rule_for(p, "web-")->kind, VERIFY_POLICY_DELEGATED);
	verify_policy_free(p);

	/* an empty policy (or one of comments) refuses everything */
	p = parse_ok("# nothing yet\n\n");
	ck_assert_int_eq(verify_policy_rule_for(p, "hello")->kind, VERIFY_POLICY_NOMATCH);
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "hello", "1", test_cmp));
	verify_policy_free(p);
}
END_TEST

START_TEST(policy_patterns_are_fnmatch_globs_without_flags)
{
	struct verify_policy *p = parse_ok("trust lib[!x]?-* delegated\n"
					   "trust *.d delegated\n");

	ck_assert_int_eq(verify_policy_rule_for(p, "libab-1")->kind, VERIFY_POLICY_DELEGATED);
	ck_assert_int_eq(verify_policy_rule_for(p, "libxb-1")->kind, VERIFY_POLICY_NOMATCH);
	ck_assert_int_eq(verify_policy_rule_for(p, "liba-1")->kind, VERIFY_POLICY_NOMATCH);
	/* '*' spans dots and pluses: names are not paths */
	ck_assert_int_eq(verify_policy_rule_for(p, "libstdc++.d")->kind, VERIFY_POLICY_DELEGATED);
	ck_assert_uint_eq(verify_policy_rule_for(p, "libstdc++.d")->line, 2);
	ck_assert_int_eq(verify_policy_rule_for(p, "x.dd")->kind, VERIFY_POLICY_NOMATCH);
	verify_policy_free(p);
}
END_TEST

START_TEST(policy_default_trusts_repository_delegations)
{
	struct verify_policy *p = NULL;
	const struct verify_policy_rule *r;

	ck_assert_int_eq(verify_policy_default(&p), 0);
	r = verify_policy_rule_for(p, "anything-at-all");
	ck_assert_int_eq(r->kind, VERIFY_POLICY_DELEGATED);
	ck_assert_uint_eq(r->line, 0);
	ck_assert_str_eq(r->pattern, "*");
	ck_assert_str_eq(r->text, "trust * delegated");
	ck_assert_ptr_null(verify_policy_refused_key(p, "00"));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "x", "1", test_cmp));
	verify_policy_free(p);
	verify_policy_free(NULL);
}
END_TEST

START_TEST(policy_refuse_key_matches_by_key_id_not_by_name)
{
	char *ida = id_of_hex(HEX_A), *idb = id_of_hex(HEX_B), *idc = id_of_hex(HEX_C);
	struct verify_policy *p = parse_ok(KEY_A "key mallory ed25519 " HEX_A "\n"
						 "key carol ed25519 " HEX_C "\n"
						 "refuse key mallory\n"
						 "refuse key carol\n");
	const struct verify_policy_rule *r = verify_policy_refused_key(p, ida);

	/* alice's key is mallory's too: refused whatever the policy calls it */
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->line, 4);
	ck_assert_str_eq(r->key_names[0], "mallory");
	ck_assert_uint_eq(verify_policy_refused_key(p, idc)->line, 5);
	ck_assert_ptr_null(verify_policy_refused_key(p, idb));
	verify_policy_free(p);
	free(ida);
	free(idb);
	free(idc);
}
END_TEST

START_TEST(policy_pin_range_follows_dpkg_order_with_epochs)
{
	struct verify_policy *p = parse_ok("pin openssl >= 3.0 < 4\n"
					   "pin epochy > 2.0\n"
					   "pin exact = 1.2-3\n"
					   "pin glued >=1.0 <=1.5\n"
					   "trust * delegated\n");

	ck_assert_ptr_null(verify_policy_pin_excludes(p, "openssl", "3.0", test_cmp));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "openssl", "3.0.13-1~deb12u1", test_cmp));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "openssl", "4~beta1", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "openssl", "3.0~rc1", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "openssl", "2.9", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "openssl", "4", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "openssl", "1:3.1", test_cmp));
	/* an epoch outranks everything after it: 1:0.9 is newer than 2.0 */
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "epochy", "1:0.9", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "epochy", "2.0", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "epochy", "0:1.9", test_cmp));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "exact", "1.2-3", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "exact", "1.2-4", test_cmp));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "glued", "1.5", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "glued", "1.5.1", test_cmp));
	/* a name no pin matches is not excluded */
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "zlib", "0.1", test_cmp));
	verify_policy_free(p);
}
END_TEST

START_TEST(policy_every_pin_for_a_name_must_hold)
{
	struct verify_policy *p = parse_ok("pin lib* >= 1\n"
					   "pin libfoo < 2\n"
					   "trust * delegated\n");

	ck_assert_uint_eq(verify_policy_pin_excludes(p, "libfoo", "0.5", test_cmp)->line, 1);
	ck_assert_uint_eq(verify_policy_pin_excludes(p, "libfoo", "2.5", test_cmp)->line, 2);
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "libfoo", "1.5", test_cmp));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "libbar", "2.5", test_cmp));
	verify_policy_free(p);
}
END_TEST

START_TEST(policy_key_file_is_relative_to_basedir)
{
	struct verify_policy *p = NULL;
	char *id, *abs = NULL, *text = NULL;
	const char rel[] = "key alice file keys/alice.key.pub\nrefuse key alice\n";

	ck_assert_int_ge(asprintf(&abs, "%s/keys", tmpdir), 0);
	ck_assert_int_eq(mkdir(abs, 0700), 0);
	free(abs);
	id = save_key("keys/alice.key");

	p = parse_ok(rel);
	ck_assert_ptr_nonnull(verify_policy_refused_key(p, id));
	verify_policy_free(p);
	p = NULL;

	/* the same relative path from another directory is not found */
	ck_assert_int_eq(verify_policy_parse("web.policy", rel, strlen(rel), "/nonexistent", &p),
			 -ENOENT);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(stork_error_detail(),
			 "web.policy:1: key alice file keys/alice.key.pub: "
			 "/nonexistent/keys/alice.key.pub: cannot read: No such file or directory");

	/* an absolute path does not depend on basedir; a private key file gives its public half */
	ck_assert_int_ge(
	    asprintf(&text, "key alice file %s/keys/alice.key\nrefuse key alice\n", tmpdir), 0);
	ck_assert_int_eq(verify_policy_parse("web.policy", text, strlen(text), NULL, &p), 0);
	ck_assert_ptr_nonnull(verify_policy_refused_key(p, id));
	verify_policy_free(p);
	p = NULL;
	free(text);
	ck_assert_int_ge(
	    asprintf(&text, "key alice file %s/keys/alice.key.pub\nrefuse key alice\n", tmpdir), 0);
	ck_assert_int_eq(verify_policy_parse("web.policy", text, strlen(text), "/nonexistent", &p),
			 0);
	ck_assert_ptr_nonnull(verify_policy_refused_key(p, id));
	verify_policy_free(p);
	free(text);
	free(id);
}
END_TEST

START_TEST(policy_load_reads_the_file_and_resolves_keys_next_to_it)
{
	struct verify_policy *p = NULL;
	char *path = NULL, *id;
	const char text[] = "key alice file alice.key.pub # next to the policy\n"
			    "trust web-* role alice keys alice\n";

	id = save_key("alice.key");
	write_file("slice.policy", text, strlen(text));
	ck_assert_int_ge(asprintf(&path, "%s/slice.policy", tmpdir), 0);
	ck_assert_int_eq(verify_policy_load(path, &p), 0);
	ck_assert_str_eq(verify_policy_rule_for(p, "web-x")->file, path);
	ck_assert_str_eq(verify_key_id(verify_policy_rule_for(p, "web-x")->keys[0]), id);
	verify_policy_free(p);
	p = NULL;
	free(path);
	free(id);

	ck_assert_int_eq(verify_policy_load("/nonexistent/slice.policy", &p), -ENOENT);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(stork_error_detail(), "/nonexistent/slice.policy: cannot open the policy "
					       "file: No such file or directory");
}
END_TEST

START_TEST(policy_load_refuses_a_file_over_1_mib)
{
	struct verify_policy *p = NULL;
	size_t len = 1024 * 1024 + 1, i;
	char *buf = malloc(len), *path = NULL;

	ck_assert_ptr_nonnull(buf);
	/* a valid file of 1 MiB + 1 bytes: comment lines */
	for (i = 0; i < len; i++)
		buf[i] = i % 64 == 63 ? '\n' : '#';
	write_file("big.policy", buf, len);
	ck_assert_int_ge(asprintf(&path, "%s/big.policy", tmpdir), 0);
	ck_assert_int_eq(verify_policy_load(path, &p), -EFBIG);
	ck_assert_ptr_null(p);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(),
				     "big.policy: more than 1 MiB: expected a "
				     "policy file of at most 1 MiB"));
	/* one byte less is fine */
	write_file("big.policy", buf, len - 1);
	ck_assert_int_eq(verify_policy_load(path, &p), 0);
	ck_assert_int_eq(verify_policy_rule_for(p, "x")->kind, VERIFY_POLICY_NOMATCH);
	verify_policy_free(p);
	free(path);
	free(buf);
}
END_TEST

START_TEST(policy_ignores_comments_blanks_crlf_and_a_byte_order_mark)
{
	struct verify_policy *p;
	const struct verify_policy_rule *r;
	char *id;

	id = save_key("my#1.pub");
	p = parse_ok("\xef\xbb\xbf# caf\xc3\xa9 policy \xe2\x9c\x93\r\n"
		     "\r\n"
		     "   \t\r\n"
		     "\ttrust  web-*\tdelegated   # trailing comment\r\n"
		     "key k file my#1.pub.pub  # '#' inside a word is not a comment\n"
		     "refuse key k\n"
		     "trust db-* delegated");
	r = verify_policy_rule_for(p, "web-x");
	ck_assert_uint_eq(r->line, 4);
	ck_assert_str_eq(r->text, "trust  web-*\tdelegated");
	ck_assert_ptr_nonnull(verify_policy_refused_key(p, id));
	ck_assert_uint_eq(verify_policy_rule_for(p, "db-x")->line, 7);
	verify_policy_free(p);
	free(id);
}
END_TEST

/* contrib/policy.example must parse and decide as its comments say. */
START_TEST(policy_example_file_parses_and_decides_as_annotated)
{
	const char *data = getenv("STORK_TEST_DATA");
	struct verify_policy *p = NULL;
	const struct verify_policy_rule *r;
	char *path = NULL, *id = id_of_hex(HEX_A), *mallory;

	/* STORK_TEST_DATA is SRC/tests/data (meson); without it, go from this source file */
	if (data && strlen(data) > 11 && strcmp(data + strlen(data) - 11, "/tests/data") == 0)
		ck_assert_int_ge(
		    asprintf(&path, "%.*s/contrib/policy.example", (int)(strlen(data) - 11), data),
		    0);
	else
		ck_assert_int_ge(asprintf(&path, "%.*s/../../contrib/policy.example",
					  (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__),
				 0);
	ck_assert_msg(verify_policy_load(path, &p) == 0, "%s", stork_error_detail());
	ck_assert_int_eq(verify_policy_rule_for(p, "web-legacy-cgi")->kind, VERIFY_POLICY_REFUSE);
	r = verify_policy_rule_for(p, "web-server");
	ck_assert_int_eq(r->kind, VERIFY_POLICY_PINNED);
	ck_assert_str_eq(r->role, "alice");
	ck_assert_str_eq(verify_key_id(r->keys[0]), id);
	r = verify_policy_rule_for(p, "db-main");
	ck_assert_int_eq(r->kind, VERIFY_POLICY_PINNED);
	ck_assert_uint_eq(r->threshold, 2);
	ck_assert_uint_eq(r->nkeys, 2);
	ck_assert_int_eq(verify_policy_rule_for(p, "zlib")->kind, VERIFY_POLICY_DELEGATED);
	mallory = id_of_hex("4e44343cb77ba2129a0dd78a6b972cafc4a57f54980e877f18bd5d17bc726520");
	ck_assert_ptr_nonnull(verify_policy_refused_key(p, mallory));
	ck_assert_ptr_null(verify_policy_refused_key(p, id));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "openssl", "3.0.13-1~deb12u1", test_cmp));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "openssl", "4~beta1", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "openssl", "4.0", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "openssl", "1:3.1", test_cmp));
	ck_assert_ptr_null(verify_policy_pin_excludes(p, "libc6", "2.36-9+deb12u4", test_cmp));
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "libc6", "2.36-9+deb12u3", test_cmp));
	verify_policy_free(p);
	free(path);
	free(id);
	free(mallory);
}
END_TEST

/* Each mistake: its input and the exact detail. */
static const struct {
	const char *text;
	const char *detail;
} errors[] = {
    /* unknown words, with a suggestion for a typo */
    {"trust * delegated\n\n# c\ntrsut web-* delegated\n",
     "web.policy:4: \"trsut\": expected a rule: key, trust, refuse, pin or control (did you mean "
     "\"trust\"?)"},
    {"Trust * delegated\n",
     "web.policy:1: \"Trust\": expected a rule: key, trust, refuse, pin or control "
     "(did you mean \"trust\"?)"},
    {"frobnicate x\n",
     "web.policy:1: \"frobnicate\": expected a rule: key, trust, refuse, pin or control"},
    {"allow \"x\"\n",
     "web.policy:1: \"allow\": expected a rule: key, trust, refuse, pin or control"},
    /* trust */
    {"trust\n", "web.policy:1: trust: expected a name pattern after \"trust\""},
    {"trust web/* delegated\n",
     "web.policy:1: trust web/*: expected a name pattern (name pattern \"web/*\": character '/' "
     "at position 3 is not allowed (allowed: letters, digits, + . _ - and the wildcards * ? [...]; "
     "first must be a letter, digit, * ? or [))"},
    {"trust web[ delegated\n",
     "web.policy:1: trust web[: expected a name pattern (name pattern \"web[\": '[' at position 3 "
     "is misplaced (use [abc], [!abc] or [a-z]))"},
    {"trust web-*\n", "web.policy:1: trust web-*: expected \"delegated\" or \"role ROLE keys "
		      "NAME[,NAME...]\" after the pattern"},
    {"trust web-* delegatd\n",
     "web.policy:1: trust web-* delegatd: expected \"delegated\" or \"role ROLE keys "
     "NAME[,NAME...]\" after the pattern (did you mean \"delegated\"?)"},
    {"trust web-* delegated now\n",
     "web.policy:1: trust web-* delegated now: expected the end of the line"},
    {KEY_A "trust web-* keys alice\n",
     "web.policy:2: trust web-* keys: expected \"role ROLE\" before \"keys\" (TAP 13: a pinned "
     "publisher names its role and its keys)"},
    {"trust web-* role\n", "web.policy:1: trust web-* role: expected a role name after \"role\""},
    {"trust web-* role Alice keys a\n",
     "web.policy:1: trust web-* role Alice: expected a role name (role name \"Alice\": character "
     "'A' at position 0 is not allowed (allowed: lower-case letters, digits and _ -; first must "
     "be a letter or digit))"},
    {"trust web-* role targets keys a\n",
     "web.policy:1: trust web-* role targets: expected a role name (role name \"targets\": "
     "reserved for a top-level TUF role)"},
    {KEY_A "trust web-* role alice\n",
     "web.policy:2: trust web-* role alice: expected \"keys NAME[,NAME...]\" after the role "
     "(TAP 13: a pinned role needs its keys)"},
    {KEY_A "trust web-* role alice key alice\n",
     "web.policy:2: trust web-* role alice key: expected \"keys NAME[,NAME...]\" after the role "
     "(TAP 13: a pinned role needs its keys) (did you mean \"keys\"?)"},
    {KEY_A "trust web-* role alice keys\n",
     "web.policy:2: trust web-* role alice keys: expected NAME[,NAME...] after \"keys\""},
    {KEY_A "trust web-* role alice keys alice,,alice\n",
     "web.policy:2: trust web-* role alice keys alice,,alice: expected NAME[,NAME...] (an empty "
     "key name)"},
    {KEY_A "trust web-* role alice keys alice,\n",
     "web.policy:2: trust web-* role alice keys alice,: expected NAME[,NAME...] (an empty key "
     "name)"},
    {KEY_A KEY_B "trust web-* role alice keys alice bob\n",
     "web.policy:3: trust web-* role alice keys alice bob: expected \"threshold N\" or the end of "
     "the line (list keys with commas: keys alice,bob)"},
    {KEY_A "trust web-* role alice keys alice,alice\n",
     "web.policy:2: trust web-* role alice keys alice,alice: expected distinct keys (alice is "
     "listed twice; a threshold counts distinct keys)"},
    {KEY_A "trust web-* role alice keys alice,bob\n",
     "web.policy:2: key bob: not defined above (define it with \"key bob ed25519 HEX\" or \"key "
     "bob file PATH\")"},
    {"trust web-* role alice keys bob\n" KEY_B,
     "web.policy:1: key bob: not defined above (define it with \"key bob ed25519 HEX\" or \"key "
     "bob file PATH\")"},
    {KEY_A "trust web-* role alice keys alice threshold 0\n",
     "web.policy:2: trust web-* role alice keys alice threshold 0: expected a threshold from 1 to "
     "1 (the number of keys listed)"},
    {KEY_A KEY_B "trust web-* role alice keys alice,bob threshold 3\n",
     "web.policy:3: trust web-* role alice keys alice,bob threshold 3: expected a threshold from "
     "1 to 2 (the number of keys listed)"},
    {KEY_A KEY_B "trust web-* role alice keys alice,bob threshold -1\n",
     "web.policy:3: trust web-* role alice keys alice,bob threshold -1: expected a threshold from "
     "1 to 2 (the number of keys listed)"},
    {KEY_A KEY_B "trust web-* role alice keys alice,bob threshold 99999999999999999999\n",
     "web.policy:3: trust web-* role alice keys alice,bob threshold 99999999999999999999: "
     "expected a threshold from 1 to 2 (the number of keys listed)"},
    {KEY_A "trust web-* role alice keys alice threshold\n",
     "web.policy:2: trust web-* role alice keys alice threshold: expected a threshold from 1 to 1 "
     "after \"threshold\""},
    {KEY_A "trust web-* role alice keys alice treshold 1\n",
     "web.policy:2: trust web-* role alice keys alice treshold: expected \"threshold N\" or the "
     "end of the line (did you mean \"threshold\"?)"},
    {KEY_A "trust web-* role alice keys alice threshold 1 extra\n",
     "web.policy:2: trust web-* role alice keys alice threshold 1 extra: expected the end of the "
     "line"},
    /* key */
    {"key\n", "web.policy:1: key: expected \"key NAME ed25519 HEX\" or \"key NAME file PATH\""},
    {"key Al!ce ed25519 " HEX_A "\n",
     "web.policy:1: key Al!ce: expected a key name (1 to 64 letters, digits, '.', '_' or '-', "
     "starting with a letter or digit)"},
    {KEY_A "# again\n" KEY_A,
     "web.policy:3: key alice: already defined on line 1: expected a name not used before (one "
     "name per key)"},
    {"key alice\n",
     "web.policy:1: key alice: expected \"ed25519 HEX\" or \"file PATH\" after the key name"},
    {"key alice rsa AAAA\n", "web.policy:1: key alice rsa: expected \"ed25519 HEX\" or \"file "
			     "PATH\" after the key name (keys are ed25519)"},
    {"key alice ed2551 " HEX_A "\n",
     "web.policy:1: key alice ed2551: expected \"ed25519 HEX\" or \"file PATH\" after the key "
     "name (keys are ed25519) (did you mean \"ed25519\"?)"},
    {"key alice ed25519\n", "web.policy:1: key alice ed25519: expected 64 hex digits (the raw "
			    "32-byte public key) after \"ed25519\""},
    {"key alice ed25519 abcd\n", "web.policy:1: key alice ed25519 abcd: expected 64 hex digits "
				 "(the raw 32-byte public key)"},
    {"key alice ed25519 " HEX_A "0\n", "web.policy:1: key alice ed25519 " HEX_A
				       "0: expected 64 hex digits (the raw 32-byte public key)"},
    {"key alice ed25519 "
     "zz5a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\n",
     "web.policy:1: key alice ed25519 "
     "zz5a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a: expected 64 hex digits "
     "(the raw 32-byte public key)"},
    {"key alice ed25519 " HEX_A " extra\n",
     "web.policy:1: key alice ed25519 " HEX_A " extra: expected the end of the line"},
    {"key alice file\n", "web.policy:1: key alice file: expected a path after \"file\""},
    /* refuse */
    {"refuse\n", "web.policy:1: refuse: expected a name pattern or \"key NAME\" after \"refuse\""},
    {"refuse key\n", "web.policy:1: refuse key: expected a key name after \"key\" (to refuse a "
		     "package named key, write \"refuse [k]ey\")"},
    {"refuse key mallory\n", "web.policy:1: key mallory: not defined above (define it with \"key "
			     "mallory ed25519 HEX\" or \"key mallory file PATH\")"},
    {KEY_A "refuse key alice now\n",
     "web.policy:2: refuse key alice now: expected the end of the line"},
    {"refuse evil-* now\n", "web.policy:1: refuse evil-* now: expected the end of the line"},
    {"refuse ev!l\n", "web.policy:1: refuse ev!l: expected a name pattern (name pattern "
		      "\"ev!l\": '!' at position 2 is misplaced (use [abc], [!abc] or [a-z]))"},
    /* pin */
    {"pin\n", "web.policy:1: pin: expected a name pattern after \"pin\""},
    {"pin openssl\n",
     "web.policy:1: pin openssl: expected OP VERSION after the pattern (OP: < <= = >= >)"},
    {"pin openssl => 3\n", "web.policy:1: pin openssl =>: expected an operator: < <= = >= >"},
    {"pin openssl >> 3\n", "web.policy:1: pin openssl >>: expected an operator: < <= = >= > "
			   "(dpkg's \">>\" and \"<<\" are written \">\" and \"<\" here)"},
    {"pin openssl 3.0\n", "web.policy:1: pin openssl 3.0: expected an operator before the "
			  "version: < <= = >= > (e.g. \"= 3.0\")"},
    {"pin openssl >= 3.0 <\n", "web.policy:1: pin openssl >= 3.0 <: expected a version after "
			       "\"<\""},
    {"pin openssl >= 3.0 4\n", "web.policy:1: pin openssl >= 3.0 4: expected an operator before "
			       "the version: < <= = >= > (e.g. \"= 4\")"},
    {"pin openssl >= latest\n",
     "web.policy:1: pin openssl >= latest: expected a version (version \"latest\": reserved (the "
     "mount shows the newest version under that name))"},
    {"pin openssl >=3.0/1\n",
     "web.policy:1: pin openssl >=3.0/1: expected a version (version \"3.0/1\": character '/' at "
     "position 3 is not allowed (allowed: letters, digits and + . _ ~ : -; first must be a letter "
     "or digit))"},
    /* bytes that are not text */
    {"trust * delegated\x1b[2J\n",
     "web.policy:1: control character \\x1b at column 18: expected printable text"},
    {"trust * delegated\rrefuse x\n",
     "web.policy:1: control character \\x0d at column 18: expected printable text"},
    {"trust * delegated # ok\n\xff\n",
     "web.policy:2: invalid UTF-8 at column 1: expected UTF-8 text"},
    {"# caf\xc3\xa9\n# \xed\xa0\x80 is a surrogate\n",
     "web.policy:2: invalid UTF-8 at column 3: expected UTF-8 text"},
    {"# \xc0\xaf overlong\n", "web.policy:1: invalid UTF-8 at column 3: expected UTF-8 text"},
};

START_TEST(policy_error_names_file_line_and_expectation)
{
	parse_fails(errors[_i].text, strlen(errors[_i].text), STORK_EFORMAT, errors[_i].detail);
}
END_TEST

START_TEST(policy_refuses_the_same_key_twice_in_one_list)
{
	char *ida = id_of_hex(HEX_A), want[512];

	snprintf(want, sizeof(want),
		 "web.policy:3: trust web-* role web keys alice,alias: expected distinct keys "
		 "(alice and alias are the same key, id %.16s; a threshold counts distinct keys)",
		 ida);
	parse_fails(KEY_A "key alias ed25519 " HEX_A "\ntrust web-* role web keys alice,alias\n",
		    strlen(KEY_A) + strlen("key alias ed25519 " HEX_A
					   "\ntrust web-* role web keys alice,alias\n"),
		    STORK_EFORMAT, want);
	free(ida);
}
END_TEST

START_TEST(policy_key_file_errors_name_the_line_and_the_file)
{
	static const char dir[] = "trust * delegated\nkey alice file .\n";
	static const char junk[] = "key alice file junk.pub\n";
	static const char rsa[] = "key alice file rsa.json\n";
	static const char rsa_key[] =
	    "{\"keytype\":\"rsa\",\"keyval\":{\"public\":\"x\"},\"scheme\":\"rsa\"}";
	struct verify_policy *p = NULL;
	char want[1024];

	snprintf(want, sizeof(want),
		 "web.policy:2: key alice file .: %s/.: not a regular file: expected a public "
		 "key file (PEM or TUF key object)",
		 tmpdir);
	parse_fails(dir, strlen(dir), STORK_EFORMAT, want);

	write_file("junk.pub", "not a key\n", 10);
	snprintf(want, sizeof(want),
		 "web.policy:1: key alice file junk.pub: %s/junk.pub: not a PEM public key, PEM "
		 "private key or TUF key object",
		 tmpdir);
	parse_fails(junk, strlen(junk), STORK_EFORMAT, want);

	/* another key type is a mistake in the policy (STORK_EFORMAT), not STORK_EUNSUPPORTED */
	write_file("rsa.json", rsa_key, strlen(rsa_key));
	ck_assert_int_eq(verify_policy_parse("web.policy", rsa, strlen(rsa), tmpdir, &p),
			 STORK_EFORMAT);
	ck_assert_ptr_null(p);
	ck_assert_msg(
	    strncmp(stork_error_detail(), "web.policy:1: key alice file rsa.json: ", 39) == 0, "%s",
	    stork_error_detail());
}
END_TEST

START_TEST(policy_refuses_a_line_longer_than_4096_bytes)
{
	struct verify_policy *p;
	size_t big = 10 * 1024 * 1024, i;
	char *buf = malloc(big);

	ck_assert_ptr_nonnull(buf);
	/* exactly 4096 bytes (a comment) is a line; 4097 is not */
	memcpy(buf, "trust * delegated\n", 18);
	for (i = 18; i < 18 + 4096; i++)
		buf[i] = '#';
	buf[18 + 4096] = '\n';
	p = NULL;
	ck_assert_int_eq(verify_policy_parse("web.policy", buf, 18 + 4097, NULL, &p), 0);
	verify_policy_free(p);
	/* with "\r\n" too */
	buf[18 + 4096] = '\r';
	buf[18 + 4097] = '\n';
	p = NULL;
	ck_assert_int_eq(verify_policy_parse("web.policy", buf, 18 + 4098, NULL, &p), 0);
	verify_policy_free(p);
	/* 4097 bytes, with or without a newline after them */
	buf[18 + 4096] = '#';
	parse_fails(buf, 18 + 4097, STORK_EFORMAT,
		    "web.policy:2: a line of more than 4096 bytes: expected at most 4096 bytes per "
		    "line");
	parse_fails(buf, 18 + 4098, STORK_EFORMAT,
		    "web.policy:2: a line of more than 4096 bytes: expected at most 4096 bytes per "
		    "line");
	/* 10 MiB without a newline: refused at once */
	for (i = 18; i < big; i++)
		buf[i] = 'a';
	parse_fails(buf, big, STORK_EFORMAT,
		    "web.policy:2: a line of more than 4096 bytes: expected at most 4096 bytes per "
		    "line");
	free(buf);
}
END_TEST

START_TEST(policy_refuses_a_nul_byte)
{
	const char text[] = "trust * delegated\nrefuse ev\0il\n";

	parse_fails(
	    text, sizeof(text) - 1, STORK_EFORMAT,
	    "web.policy:2: a NUL byte at column 10: expected text (a policy is a UTF-8 text "
	    "file)");
	/* even in a comment, and at the very end */
	parse_fails("# x\0", 4, STORK_EFORMAT,
		    "web.policy:1: a NUL byte at column 4: expected text (a policy is a UTF-8 text "
		    "file)");
}
END_TEST

START_TEST(policy_refuses_more_than_10000_rules)
{
	struct verify_policy *p = NULL;
	size_t cap = 100001 * 32, len = 0, i;
	char *buf = malloc(cap);

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < 10000; i++)
		len += (size_t)snprintf(buf + len, cap - len, "pin p%zu >= 1\n", i);
	ck_assert_int_eq(verify_policy_parse("web.policy", buf, len, NULL, &p), 0);
	ck_assert_ptr_nonnull(verify_policy_pin_excludes(p, "p9999", "0.5", test_cmp));
	verify_policy_free(p);
	p = NULL;
	len += (size_t)snprintf(buf + len, cap - len, "# comments do not count\n");
	len += (size_t)snprintf(buf + len, cap - len, "trust * delegated\n");
	parse_fails(buf, len, STORK_EFORMAT,
		    "web.policy:10002: trust: expected at most 10000 rules in a policy (trust, "
		    "refuse and pin lines)");
	/* 100k lines: still refused at the same line, and quickly */
	for (i = 10001; i < 100000; i++)
		len += (size_t)snprintf(buf + len, cap - len, "refuse r%zu\n", i);
	parse_fails(buf, len, STORK_EFORMAT,
		    "web.policy:10002: trust: expected at most 10000 rules in a policy (trust, "
		    "refuse and pin lines)");
	free(buf);
}
END_TEST

START_TEST(policy_parses_100k_comment_lines)
{
	struct verify_policy *p = NULL;
	size_t n = 100000, i, len = 0;
	char *buf = malloc(n * 4 + 32);

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < n; i++) {
		memcpy(buf + len, i % 2 ? "#x\n" : "\n", i % 2 ? 3 : 1);
		len += i % 2 ? 3 : 1;
	}
	memcpy(buf + len, "trust * delegated\n", 18);
	len += 18;
	ck_assert_int_eq(verify_policy_parse("web.policy", buf, len, NULL, &p), 0);
	ck_assert_uint_eq(verify_policy_rule_for(p, "x")->line, 100001);
	verify_policy_free(p);
	free(buf);
}
END_TEST

START_TEST(policy_survives_random_bytes)
{
	/* a fixed-seed xorshift: the same inputs every run */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	static const char *const words[] = {
	    "key ",	  "trust ", "refuse ", "pin ", "role ",	   "keys ", "delegated",
	    "threshold ", "alice",  ",",       "*",    "web-*",	   ">=",    "<",
	    "1.0",	  " ",	    "\n",      "#",    "ed25519 ", HEX_A,   "file ",
	    "\xff",	  "\0",	    "[",       "!",    "]",
	};
	char buf[512];
	int round;

	for (round = 0; round < 3000; round++) {
		struct verify_policy *p = NULL;
		size_t len = 0;
		int r;

		while (len < sizeof(buf) - 80) {
			const char *w;
			size_t wl;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (x % 7 == 0)
				break;
			w = words[(x >> 8) % (sizeof(words) / sizeof(words[0]))];
			wl = w[0] ? strlen(w) : 1;
			memcpy(buf + len, w, wl);
			len += wl;
		}
		r = verify_policy_parse("web.policy", buf, len, tmpdir, &p);
		if (r == 0) {
			(void)verify_policy_rule_for(p, "web-x");
			(void)verify_policy_pin_excludes(p, "web-x", "1.0", test_cmp);
			verify_policy_free(p);
		} else {
			ck_assert_msg(r == STORK_EFORMAT || (r < 0 && r > -4096), "r=%d", r);
			ck_assert_msg(strncmp(stork_error_detail(), "web.policy:", 11) == 0, "%s",
				      stork_error_detail());
		}
	}
}
END_TEST

/* ------------------------------------------------------------------------------------------ */

TCase *tcase_verify_policy(void)
{
	TCase *tc = tcase_create("verify_policy");

	tcase_add_checked_fixture(tc, policy_setup, policy_teardown);
	tcase_add_test(tc, policy_parses_every_rule_kind);
	tcase_add_test(tc, policy_first_matching_trust_or_refuse_line_decides);
	tcase_add_test(tc, policy_refuse_key_and_pin_lines_never_decide_a_name);
	tcase_add_test(tc, policy_without_matching_line_returns_nomatch);
	tcase_add_test(tc, policy_patterns_are_fnmatch_globs_without_flags);
	tcase_add_test(tc, policy_default_trusts_repository_delegations);
	tcase_add_test(tc, policy_refuse_key_matches_by_key_id_not_by_name);
	tcase_add_test(tc, policy_pin_range_follows_dpkg_order_with_epochs);
	tcase_add_test(tc, policy_every_pin_for_a_name_must_hold);
	tcase_add_test(tc, policy_key_file_is_relative_to_basedir);
	tcase_add_test(tc, policy_key_file_errors_name_the_line_and_the_file);
	tcase_add_test(tc, policy_load_reads_the_file_and_resolves_keys_next_to_it);
	tcase_add_test(tc, policy_load_refuses_a_file_over_1_mib);
	tcase_add_test(tc, policy_ignores_comments_blanks_crlf_and_a_byte_order_mark);
	tcase_add_test(tc, policy_example_file_parses_and_decides_as_annotated);
	tcase_add_loop_test(tc, policy_error_names_file_line_and_expectation, 0,
			    (int)(sizeof(errors) / sizeof(errors[0])));
	tcase_add_test(tc, policy_refuses_the_same_key_twice_in_one_list);
	tcase_add_test(tc, policy_refuses_a_line_longer_than_4096_bytes);
	tcase_add_test(tc, policy_refuses_a_nul_byte);
	tcase_add_test(tc, policy_refuses_more_than_10000_rules);
	tcase_add_test(tc, policy_parses_100k_comment_lines);
	tcase_add_test(tc, policy_survives_random_bytes);
	return tc;
}
