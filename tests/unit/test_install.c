/* tests/unit/test_install.c: dependency resolution (fs/install/resolve.c) over manifests built
 * in memory: versions, alternatives in apt's order, virtual packages, conflicts, and the
 * explanation when nothing fits; keeping installed versions; merging installed trees
 * (fs/rootmerge.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fs/install/install.h"
#include "verify/error.h"
#include "verify/manifest.h"

#define MAXPKGS 16

struct world {
	struct verify_manifest *m[MAXPKGS];
	size_t n;
	char got[1024]; /* the chosen set, "name version;" each */
	struct fs_install_request keep[4];
	size_t nkeep;
};

/* Parse "a (>= 1) | b" (one group) into alts; fields are split in place. */
static size_t parse_group(char *text, struct verify_dep *alts)
{
	size_t n = 0;
	char *save = NULL;

	for (char *alt = strtok_r(text, "|", &save); alt; alt = strtok_r(NULL, "|", &save)) {
		char name[64] = "", op[3] = "", version[64] = "";

		ck_assert_int_ge(sscanf(alt, " %63s ( %2s %63[^)] )", name, op, version), 1);
		alts[n].name = strdup(name);
		alts[n].op = op[0] ? strdup(op) : NULL;
		alts[n].version = op[0] ? strdup(version) : NULL;
		n++;
	}
	return n;
}

/* add(w, name, version, "Depends: a | b, c; Provides: x; Conflicts: y") */
static void add(struct world *w, const char *name, const char *version, const char *rel)
{
	struct verify_manifest *m = NULL;
	char *text = strdup(rel), *save = NULL;

	ck_assert_int_eq(verify_manifest_new(name, version, "deb", &m), 0);
	for (char *field = strtok_r(text, ";", &save); field; field = strtok_r(NULL, ";", &save)) {
		static const struct {
			const char *key;
			enum verify_relation kind;
		} keys[] = {{"Depends:", VERIFY_DEPENDS},
			    {"Provides:", VERIFY_PROVIDES},
			    {"Conflicts:", VERIFY_CONFLICTS},
			    {"Breaks:", VERIFY_BREAKS},
			    {"Replaces:", VERIFY_REPLACES}};
		char *p = field + strspn(field, " "), *save2 = NULL;
		size_t k;

		for (k = 0; k < 5 && strncmp(p, keys[k].key, strlen(keys[k].key)); k++)
			;
		ck_assert_uint_lt(k, 5);
		p += strlen(keys[k].key);
		for (char *g = strtok_r(p, ",", &save2); g; g = strtok_r(NULL, ",", &save2)) {
			struct verify_dep alts[8];
			size_t n = parse_group(g, alts);

			ck_assert_int_eq(verify_manifest_add_relation(m, keys[k].kind, alts, n), 0);
			for (size_t i = 0; i < n; i++) {
				free(alts[i].name);
				free(alts[i].op);
				free(alts[i].version);
			}
		}
	}
	free(text);
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	w->m[w->n++] = m;
}

static void world_free(struct world *w)
{
	for (size_t i = 0; i < w->n; i++)
		verify_manifest_free(w->m[i]);
}

/* Resolve the requests (NAME or NAME=VERSION); on success w->got holds the set. */
static int resolve(struct world *w, const struct fs_install_refusal *refused, size_t nrefused,
		   const char *req)
{
	struct fs_install_request want[8];
	char *text = strdup(req), *save = NULL;
	size_t nwant = 0, *chosen = NULL, n = 0;
	int r;

	for (char *t = strtok_r(text, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(t, '=');

		if (eq)
			*eq = '\0';
		want[nwant++] = (struct fs_install_request){t, eq ? eq + 1 : NULL};
	}
	r = fs_install_resolve_keep((const struct verify_manifest *const *)w->m, w->n, refused,
				    nrefused, want, nwant, w->keep, w->nkeep, &chosen, &n);
	w->got[0] = '\0';
	for (size_t i = 0; r == 0 && i < n; i++) {
		size_t len = strlen(w->got);

		snprintf(w->got + len, sizeof(w->got) - len, "%s %s;", w->m[chosen[i]]->name,
			 w->m[chosen[i]]->version);
	}
	free(chosen);
	free(text);
	return r;
}

START_TEST(newest_version_that_meets_every_bound)
{
	struct world w = {0};

	add(&w, "app", "1.0", "Depends: lib (>= 1.5), lib (<< 3)");
	add(&w, "lib", "1.0", "");
	add(&w, "lib", "2.0", "");
	add(&w, "lib", "2.5", "");
	add(&w, "lib", "3.0", "");
	ck_assert_int_eq(resolve(&w, NULL, 0, "app"), 0);
	ck_assert_str_eq(w.got, "app 1.0;lib 2.5;");
	ck_assert_int_eq(resolve(&w, NULL, 0, "app lib=2.0"), 0);
	ck_assert_str_eq(w.got, "app 1.0;lib 2.0;");
	/* epochs and tildes compare as dpkg does */
	add(&w, "epoch", "1.0", "Depends: e (>= 1:0.1)");
	add(&w, "e", "9.9", "");
	add(&w, "e", "1:0.5~rc1", "");
	ck_assert_int_eq(resolve(&w, NULL, 0, "epoch"), 0);
	ck_assert_str_eq(w.got, "e 1:0.5~rc1;epoch 1.0;");
	world_free(&w);
}
END_TEST

START_TEST(first_alternative_in_either_order)
{
	struct world w = {0};

	add(&w, "zz", "1", "");
	add(&w, "aa", "1", "");
	add(&w, "one", "1", "Depends: zz | aa");
	add(&w, "two", "1", "Depends: aa | zz");
	add(&w, "three", "1", "Depends: missing | zz");
	ck_assert_int_eq(resolve(&w, NULL, 0, "one"), 0);
	ck_assert_str_eq(w.got, "one 1;zz 1;");
	ck_assert_int_eq(resolve(&w, NULL, 0, "two"), 0);
	ck_assert_str_eq(w.got, "aa 1;two 1;");
	ck_assert_int_eq(resolve(&w, NULL, 0, "three"), 0);
	ck_assert_str_eq(w.got, "three 1;zz 1;");
	world_free(&w);
}
END_TEST

START_TEST(virtual_packages_and_conflicts)
{
	struct world w = {0};

	add(&w, "mta-a", "1", "Provides: mail-transport-agent; Conflicts: mail-transport-agent");
	add(&w, "mta-b", "1", "Provides: mail-transport-agent; Conflicts: mail-transport-agent");
	add(&w, "mailer", "1", "Depends: mail-transport-agent");
	add(&w, "old", "1", "Breaks: mailer (<< 2)");
	ck_assert_int_eq(resolve(&w, NULL, 0, "mailer"), 0);
	ck_assert_msg(strstr(w.got, "mta-a 1;") || strstr(w.got, "mta-b 1;"), "%s", w.got);
	ck_assert_msg(!(strstr(w.got, "mta-a 1;") && strstr(w.got, "mta-b 1;")), "%s", w.got);
	ck_assert_int_eq(resolve(&w, NULL, 0, "mta-a mta-b"), STORK_EMISSING);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "conflicts with mail-transport-agent"));
	ck_assert_int_eq(resolve(&w, NULL, 0, "mailer old"), STORK_EMISSING);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "old 1 conflicts with mailer (<< 2)"));
	world_free(&w);
}
END_TEST

START_TEST(unsatisfiable_requests_say_why)
{
	static const struct fs_install_refusal refused[] = {
	    {"libffi", "3.4", "libffi 3.4: refused by slice.policy:1 (refuse libffi)"},
	};
	struct world w = {0};

	add(&w, "python", "3.11", "Depends: libffi (>= 3), libc");
	add(&w, "libc", "2.36", "");
	ck_assert_int_eq(resolve(&w, refused, 1, "python"), STORK_EMISSING);
	ck_assert_str_eq(stork_error_detail(),
			 "python 3.11 depends on libffi (>= 3), which no accepted version "
			 "satisfies; the policy refuses libffi 3.4 (libffi 3.4: refused by "
			 "slice.policy:1 (refuse libffi))");
	ck_assert_int_eq(resolve(&w, refused, 1, "libffi"), STORK_EMISSING);
	ck_assert_ptr_nonnull(
	    strstr(stork_error_detail(), "libffi: the policy refuses libffi 3.4"));
	ck_assert_int_eq(resolve(&w, NULL, 0, "nothing libc=1"), STORK_EMISSING);
	ck_assert_str_eq(stork_error_detail(),
			 "nothing: no such package version is signed in this repository; libc=1: "
			 "no such package version is signed in this repository");
	world_free(&w);
}
END_TEST

START_TEST(installed_versions_are_kept_where_they_fit)
{
	struct world w = {0};

	add(&w, "lib", "1", "Depends: base");
	add(&w, "lib", "2", "Depends: base");
	add(&w, "base", "1", "Depends: base");
	add(&w, "app", "1", "Depends: lib");
	add(&w, "app2", "1", "Depends: lib (>= 2)");
	ck_assert_int_eq(resolve(&w, NULL, 0, "app"), 0);
	ck_assert_str_eq(w.got, "app 1;base 1;lib 2;");
	w.keep[w.nkeep++] = (struct fs_install_request){"lib", "1"};
	ck_assert_int_eq(resolve(&w, NULL, 0, "app"), 0);
	ck_assert_str_eq(w.got, "app 1;base 1;lib 1;");
	/* a request that needs the newer one takes it */
	ck_assert_int_eq(resolve(&w, NULL, 0, "app app2"), 0);
	ck_assert_str_eq(w.got, "app 1;app2 1;base 1;lib 2;");
	world_free(&w);
}
END_TEST

/* fs_root_merge of w's manifests, each given one file entry (path, content byte). */
static void file_entry(struct verify_manifest *m, const char *path, uint8_t byte)
{
	struct verify_entry e = {
	    .path = (char *)path, .type = VERIFY_FILE, .mode = 0644, .size = 1, .zsize = 10};

	memset(e.hash, byte, sizeof(e.hash));
	ck_assert_int_eq(verify_manifest_add(m, &e), 0);
	ck_assert_int_eq(verify_manifest_finish(m), 0);
}

START_TEST(trees_merge_unless_two_packages_clash)
{
	struct world w = {0};
	struct verify_manifest *root = NULL;
	const struct verify_entry *e;

	add(&w, "alpha", "1.0", "Depends: x");
	add(&w, "beta", "1.0", "Depends: x");
	add(&w, "same", "1.0", "Depends: x");
	add(&w, "succ", "1.0", "Replaces: alpha (<< 2)");
	file_entry(w.m[0], "etc/conf", 1);
	file_entry(w.m[1], "etc/conf", 2);
	file_entry(w.m[2], "etc/conf", 1);
	file_entry(w.m[3], "etc/conf", 3);

	/* alpha and same: identical, one entry; the directory merged */
	ck_assert_int_eq(
	    fs_root_merge((const struct verify_manifest *const[]){w.m[0], w.m[2]}, 2, &root), 0);
	ck_assert_uint_eq(root->n, 7); /* etc, etc/conf, and the mount points: */
	e = verify_manifest_find(root, "tmp");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->type, VERIFY_DIR);
	ck_assert_uint_eq(e->mode, 01777);
	for (size_t i = 0; i < 4; i++)
		ck_assert_ptr_nonnull(
		    verify_manifest_find(root, (const char *[]){"dev", "proc", "run", "sys"}[i]));
	verify_manifest_free(root);
	/* alpha and beta: refused, naming the path and both */
	stork_error_clear();
	ck_assert_int_eq(
	    fs_root_merge((const struct verify_manifest *const[]){w.m[0], w.m[1]}, 2, &root),
	    -EEXIST);
	ck_assert_str_eq(stork_error_detail(),
			 "etc/conf: alpha 1.0 and beta 1.0 both install it, with different "
			 "content, and neither declares Replaces on the other");
	/* succ replaces alpha: its entry wins, in either order */
	for (int order = 0; order < 2; order++) {
		const struct verify_manifest *ms[2] = {w.m[order ? 3 : 0], w.m[order ? 0 : 3]};

		ck_assert_int_eq(fs_root_merge(ms, 2, &root), 0);
		e = verify_manifest_find(root, "etc/conf");
		ck_assert_ptr_nonnull(e);
		ck_assert_uint_eq(e->hash[0], 3);
		verify_manifest_free(root);
	}
	world_free(&w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("install");
	TCase *tc = tcase_create("resolve");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, newest_version_that_meets_every_bound);
	tcase_add_test(tc, first_alternative_in_either_order);
	tcase_add_test(tc, virtual_packages_and_conflicts);
	tcase_add_test(tc, unsatisfiable_requests_say_why);
	tcase_add_test(tc, installed_versions_are_kept_where_they_fit);
	tcase_add_test(tc, trees_merge_unless_two_packages_clash);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
