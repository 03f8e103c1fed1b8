/* tests/unit/test_verify_control.c: control lists (verify/control.h): the format and its strict
 * parse (every refusal names the file and the problem), the policy's control line, and the
 * writer's delegation and publish read back by a client that follows a group with pinned keys,
 * with the repository's delegations, and with a key it does not trust. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "tests/unit/unit.h"
#include "verify/verify.h"
#include "verify/writer/writer.h"

#define NOW 1795000000 /* 2026-11-18 */

static char *tmpdir;

static void control_setup(void)
{
	tmpdir = strdup("/tmp/stork-test-control-XXXXXX");
	ck_assert_ptr_nonnull(tmpdir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void control_teardown(void)
{
	nftw(tmpdir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(tmpdir);
	tmpdir = NULL;
	stork_error_clear();
}

/* ------------------------------------------------------------------------------------------ */
/* The format */

START_TEST(control_list_dumps_canonically_and_parses_back)
{
	struct verify_control_list *l = NULL, *back = NULL;
	char *buf = NULL;
	size_t len = 0;

	ck_assert_int_eq(verify_control_new("web", 3, &l), 0);
	ck_assert_int_eq(verify_control_add(l, "zlib"), 0);
	ck_assert_int_eq(verify_control_add(l, "hello=2.10-3"), 0);
	ck_assert_int_eq(verify_control_add(l, "hello"), -EEXIST);
	ck_assert_str_eq(stork_error_detail(), "control list web: package hello is listed twice");
	ck_assert_int_eq(verify_control_add(l, "bad name"), STORK_ENAME);
	ck_assert_int_eq(verify_control_add(l, "x=latest"), STORK_ENAME);
	ck_assert_int_eq(verify_control_dump(l, &buf, &len), 0);
	ck_assert_str_eq(buf, "{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":"
			      "[{\"name\":\"hello\",\"version\":\"2.10-3\"},{\"name\":\"zlib\"}],"
			      "\"spec_version\":1,\"version\":3}");
	ck_assert_int_eq(verify_control_parse(buf, len, "web.json", &back), 0);
	ck_assert_str_eq(back->group, "web");
	ck_assert_uint_eq(back->version, 3);
	ck_assert_uint_eq(back->n, 2);
	ck_assert_str_eq(back->pkgs[0].name, "hello");
	ck_assert_str_eq(back->pkgs[0].version, "2.10-3");
	ck_assert_str_eq(back->pkgs[1].name, "zlib");
	ck_assert_ptr_null(back->pkgs[1].version);
	verify_control_list_free(l);
	verify_control_list_free(back);
	free(buf);
}
END_TEST

START_TEST(control_paths_and_group_names)
{
	char *p = verify_control_target_path("web");

	ck_assert_str_eq(p, "control/web/list.json");
	ck_assert(verify_control_path(p));
	ck_assert(!verify_control_path("control/1.0.json"));
	ck_assert(!verify_control_path("control/web/x/list.json"));
	ck_assert(!verify_control_path("control//list.json"));
	ck_assert(!verify_control_path("hello/2.10-3.json"));
	ck_assert_int_eq(verify_check_group_name("web-1"), 0);
	ck_assert_int_eq(verify_check_group_name("../x"), STORK_ENAME);
	ck_assert_msg(strncmp(stork_error_detail(), "control group: ", 15) == 0, "%s",
		      stork_error_detail());
	free(p);
}
END_TEST

/* Each malformed list: its text and the exact detail. */
static const struct {
	const char *text;
	const char *detail;
} bad_lists[] = {
    {"[]", "l.json: not a JSON object"},
    {"{\"_type\":\"storkfs-manifest\"}", "l.json: \"_type\" is not \"storkfs-control\" (not a "
					 "control list)"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[],\"spec_version\":2,"
     "\"version\":1}",
     "l.json: \"spec_version\" is not 1 (a newer format: upgrade storkfs)"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[],\"spec_version\":1,"
     "\"version\":1,\"extra\":1}",
     "l.json: unknown key \"extra\""},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[],\"spec_version\":1,"
     "\"version\":0}",
     "l.json: \"version\" is not an integer >= 1"},
    {"{\"_type\":\"storkfs-control\",\"group\":1,\"packages\":[],\"spec_version\":1,"
     "\"version\":1}",
     "l.json: \"group\" is not a string"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"we/b\",\"packages\":[],\"spec_version\":1,"
     "\"version\":1}",
     "l.json: control group: package name \"we/b\": character '/' at position 2 is not allowed "
     "(allowed: letters, digits and + . _ -; first must be a letter or digit)"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":{},\"spec_version\":1,"
     "\"version\":1}",
     "l.json: \"packages\" is not an array"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[\"hello\"],"
     "\"spec_version\":1,\"version\":1}",
     "l.json: packages[0]: expected {\"name\": NAME} with an optional \"version\" string"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[{\"name\":\"a\","
     "\"op\":\">=\"}],\"spec_version\":1,\"version\":1}",
     "l.json: packages[0]: unknown key \"op\""},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[{\"name\":\"b\"},"
     "{\"name\":\"a\"}],\"spec_version\":1,\"version\":1}",
     "l.json: packages[1]: packages not sorted by name, or a twice"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[{\"name\":\"a\"},"
     "{\"name\":\"a\"}],\"spec_version\":1,\"version\":1}",
     "l.json: packages[1]: packages not sorted by name, or a twice"},
    {"{\"_type\":\"storkfs-control\",\"group\":\"web\",\"packages\":[{\"name\":\"a\","
     "\"version\":\"latest\"}],\"spec_version\":1,\"version\":1}",
     "l.json: packages[0]: version \"latest\": reserved (the mount shows the newest version "
     "under that name)"},
};

START_TEST(control_list_refusals_name_the_file_and_the_problem)
{
	struct verify_control_list *l = NULL;
	const char *t = bad_lists[_i].text;
	int r = verify_control_parse(t, strlen(t), "l.json", &l);

	ck_assert_int_eq(r, STORK_EFORMAT);
	ck_assert_ptr_null(l);
	ck_assert_str_eq(stork_error_detail(), bad_lists[_i].detail);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The policy's control line */

#define HEX_A "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define KEY_A "key ops ed25519 " HEX_A "\n"

START_TEST(control_policy_line_kinds)
{
	struct verify_policy *p = NULL;
	const struct verify_policy_rule *r;
	static const char pinned[] = KEY_A "trust * delegated\ncontrol web role ops keys ops\n";
	static const char delegated[] = "control db delegated\n";

	ck_assert_int_eq(verify_policy_parse("w.policy", pinned, strlen(pinned), NULL, &p), 0);
	r = verify_policy_control(p);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->kind, VERIFY_POLICY_CONTROL_PINNED);
	ck_assert_str_eq(r->pattern, "web");
	ck_assert_str_eq(r->role, "ops");
	ck_assert_uint_eq(r->nkeys, 1);
	ck_assert_uint_eq(r->threshold, 1);
	ck_assert_uint_eq(r->line, 3);
	/* a control line decides nothing about packages */
	ck_assert_int_eq(verify_policy_rule_for(p, "web")->kind, VERIFY_POLICY_DELEGATED);
	verify_policy_free(p);
	ck_assert_int_eq(verify_policy_parse("d.policy", delegated, strlen(delegated), NULL, &p),
			 0);
	ck_assert_int_eq(verify_policy_control(p)->kind, VERIFY_POLICY_CONTROL_DELEGATED);
	ck_assert_int_eq(verify_policy_rule_for(p, "db")->kind, VERIFY_POLICY_NOMATCH);
	verify_policy_free(p);
	ck_assert_int_eq(verify_policy_parse("n.policy", "", 0, NULL, &p), 0);
	ck_assert_ptr_null(verify_policy_control(p));
	verify_policy_free(p);
}
END_TEST

static const struct {
	const char *text;
	const char *detail;
} bad_lines[] = {
    {"control\n", "web.policy:1: control: expected a group name after \"control\""},
    {"control we/b delegated\n",
     "web.policy:1: control we/b: expected a group name (control group: package name \"we/b\": "
     "character '/' at position 2 is not allowed (allowed: letters, digits and + . _ -; first "
     "must be a letter or digit))"},
    {"control web\n", "web.policy:1: control web: expected \"delegated\" or \"role ROLE keys "
		      "NAME[,NAME...]\" after the group"},
    {"control web delegatd\n",
     "web.policy:1: control web delegatd: expected \"delegated\" or \"role ROLE keys "
     "NAME[,NAME...]\" after the group (did you mean \"delegated\"?)"},
    {"control web delegated now\n",
     "web.policy:1: control web delegated now: expected the end of the line"},
    {KEY_A "control web role ops\n",
     "web.policy:2: control web role ops: expected \"keys NAME[,NAME...]\" after the role "
     "(TAP 13: a pinned role needs its keys)"},
    {"control web role ops keys ops\n",
     "web.policy:1: key ops: not defined above (define it with \"key ops ed25519 HEX\" or \"key "
     "ops file PATH\")"},
    {"control web delegated\ncontrol db delegated\n",
     "web.policy:2: control db: expected one control line (line 1 follows group web already: a "
     "slice follows one group)"},
    {"contrl web delegated\n", "web.policy:1: \"contrl\": expected a rule: key, trust, refuse, "
			       "pin or control (did you mean \"control\"?)"},
};

START_TEST(control_policy_line_errors)
{
	struct verify_policy *p = NULL;
	const char *t = bad_lines[_i].text;

	ck_assert_int_eq(verify_policy_parse("web.policy", t, strlen(t), NULL, &p), STORK_EFORMAT);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(stork_error_detail(), bad_lines[_i].detail);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Published by the writer, read by a client */

struct fixture {
	char *repo, *keys, *ops, *bob, *alice;
	struct verify_key *opskey, *bobkey, *alicekey;
	struct verify_repo_opts o;
};

static void fixture_init(struct fixture *f)
{
	char *root = NULL;

	memset(f, 0, sizeof(*f));
	f->o.now = NOW;
	f->repo = unit_path_of(tmpdir, "repo");
	f->keys = unit_path_of(tmpdir, "keys");
	f->ops = unit_path_of(tmpdir, "ops.key");
	f->bob = unit_path_of(tmpdir, "bob.key");
	f->alice = unit_path_of(tmpdir, "alice.key");
	ck_assert_int_eq(verify_repo_init(f->repo, f->keys, &f->o, &root), 0);
	free(root);
	ck_assert_int_eq(verify_key_generate(&f->opskey), 0);
	ck_assert_int_eq(verify_key_generate(&f->bobkey), 0);
	ck_assert_int_eq(verify_key_generate(&f->alicekey), 0);
	ck_assert_int_eq(verify_key_save(f->opskey, f->ops), 0);
	ck_assert_int_eq(verify_key_save(f->bobkey, f->bob), 0);
}

static void fixture_fini(struct fixture *f)
{
	verify_key_free(f->opskey);
	verify_key_free(f->bobkey);
	verify_key_free(f->alicekey);
	free(f->repo);
	free(f->keys);
	free(f->ops);
	free(f->bob);
	free(f->alice);
}

static uint64_t publish(struct fixture *f, const struct verify_key *k, const char *group,
			const char *const *pkgs, size_t n, int want)
{
	struct verify_control_list *l = NULL;
	uint64_t v = 0;

	ck_assert_int_eq(verify_control_new(group, 0, &l), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(verify_control_add(l, pkgs[i]), 0);
	ck_assert_int_eq(verify_repo_publish_control(f->repo, f->keys, k, l, &f->o, &v), want);
	verify_control_list_free(l);
	return v;
}

/* The list a client with policy text follows: 0 and *ret_l, or the error. */
static int follow(struct fixture *f, const char *policy, struct verify_control_list **ret_l,
		  struct verify_target *ret_t)
{
	struct verify_source src;
	struct verify_client *c = NULL;
	struct verify_policy *p = NULL;
	struct verify_target t = {0};
	uint8_t *root = NULL;
	size_t rootlen = 0;
	char *rootpath = unit_path_of(f->repo, "metadata/1.root.json");
	int r;

	ck_assert_msg(verify_policy_parse("s.policy", policy, strlen(policy), tmpdir, &p) == 0,
		      "%s", stork_error_detail());
	unit_read_all(rootpath, &root, &rootlen);
	ck_assert_int_eq(verify_dir_source_init(&src, f->repo), 0);
	ck_assert_int_eq(verify_client_new(root, rootlen, NOW + 60, &c), 0);
	ck_assert_int_eq(verify_client_refresh(c, &src), 0);
	r = verify_client_control(c, &src, p, &t);
	if (r == 0)
		r = verify_fetch_control(&src, &t, verify_policy_control(p)->pattern, ret_l);
	if (r == 0 && ret_t)
		*ret_t = t;
	else
		verify_target_fini(&t);
	verify_client_free(c);
	verify_dir_source_fini(&src);
	verify_policy_free(p);
	free(root);
	free(rootpath);
	return r;
}

START_TEST(control_lists_publish_follow_and_refuse)
{
	static const char *const v1[] = {"hello", "libfoo=1.2-1"}, *const v2[] = {"newpkg"};
	struct verify_control_list *l = NULL;
	struct verify_target t = {0};
	const char *groups[] = {"web"};
	char pinned[600], untrusted[600], opsid[17], detail[1024];
	struct fixture f;

	fixture_init(&f);
	snprintf(opsid, sizeof(opsid), "%.16s", verify_key_id(f.opskey));
	snprintf(pinned, sizeof(pinned), "key ops file %s\ncontrol web role ops keys ops\n", f.ops);
	snprintf(untrusted, sizeof(untrusted), "key bob file %s\ncontrol web role ops keys bob\n",
		 f.bob);
	/* nothing delegated: refused, and the detail says how to delegate */
	publish(&f, f.opskey, "web", v1, 2, STORK_EPATTERN);
	ck_assert_msg(strstr(stork_error_detail(), "stork control delegate") != NULL, "%s",
		      stork_error_detail());
	ck_assert_int_eq(
	    verify_repo_delegate_control(f.repo, f.keys, f.opskey, "ops", groups, 1, &f.o), 0);
	/* the role is delegated but has signed nothing: no list */
	ck_assert_int_eq(follow(&f, pinned, &l, NULL), -ENOENT);
	ck_assert_uint_eq(publish(&f, f.opskey, "web", v1, 2, 0), 1);
	ck_assert_uint_eq(publish(&f, f.opskey, "web", v1, 2, 1), 1); /* the same: nothing */
	publish(&f, f.bobkey, "web", v1, 2, STORK_EPATTERN);
	publish(&f, f.opskey, "db", v1, 2, STORK_EPATTERN); /* ops has web only */

	ck_assert_msg(follow(&f, pinned, &l, &t) == 0, "%s", stork_error_detail());
	ck_assert_uint_eq(l->version, 1);
	ck_assert_uint_eq(l->n, 2);
	ck_assert_str_eq(l->pkgs[1].version, "1.2-1");
	ck_assert_str_eq(t.role, "ops");
	ck_assert_str_eq(t.keyid, verify_key_id(f.opskey));
	ck_assert_ptr_null(t.name);
	verify_control_list_free(l);
	verify_target_fini(&t);
	l = NULL;

	ck_assert_uint_eq(publish(&f, f.opskey, "web", v2, 1, 0), 2);
	ck_assert_int_eq(follow(&f, "control web delegated\n", &l, NULL), 0);
	ck_assert_uint_eq(l->version, 2);
	ck_assert_str_eq(l->pkgs[0].name, "newpkg");
	verify_control_list_free(l);
	l = NULL;

	/* a slice that trusts bob's key for web refuses the list ops signed, naming it all */
	ck_assert_int_eq(follow(&f, untrusted, &l, NULL), STORK_EBADSIG);
	ck_assert_ptr_null(l);
	snprintf(detail, sizeof(detail), "%s", stork_error_detail());
	ck_assert_msg(strstr(detail, "control list of group web: refused: ") == detail, "%s",
		      detail);
	ck_assert_msg(strstr(detail, "s.policy:2: pinned role ops: metadata/2.ops.json: 0 of 1 "
				     "required signatures from role ops") != NULL,
		      "%s", detail);
	ck_assert_msg(strstr(detail, opsid) != NULL, "%s", detail);

	/* a refused key breaks the delegated list's threshold as it does a package's */
	snprintf(untrusted, sizeof(untrusted),
		 "key ops file %s\nrefuse key ops\ncontrol web delegated\n", f.ops);
	ck_assert_int_eq(follow(&f, untrusted, &l, NULL), STORK_EBADSIG);
	ck_assert_msg(strstr(stork_error_detail(), "without the key that s.policy:2") != NULL, "%s",
		      stork_error_detail());
	fixture_fini(&f);
}
END_TEST

TCase *tcase_verify_control(void)
{
	TCase *tc = tcase_create("verify_control");

	tcase_add_checked_fixture(tc, control_setup, control_teardown);
	tcase_add_test(tc, control_list_dumps_canonically_and_parses_back);
	tcase_add_test(tc, control_paths_and_group_names);
	tcase_add_loop_test(tc, control_list_refusals_name_the_file_and_the_problem, 0,
			    (int)(sizeof(bad_lists) / sizeof(bad_lists[0])));
	tcase_add_test(tc, control_policy_line_kinds);
	tcase_add_loop_test(tc, control_policy_line_errors, 0,
			    (int)(sizeof(bad_lines) / sizeof(bad_lines[0])));
	tcase_add_test(tc, control_lists_publish_follow_and_refuse);
	return tc;
}
