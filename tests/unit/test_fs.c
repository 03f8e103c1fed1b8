/* tests/unit/test_fs.c: the fs module's tree views (version ordering). */
#include <stdlib.h>

#include <check.h>

#include "fs/fs.h"

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

/* Each pair is expected to compare as the third value, as `dpkg --compare-versions` does. */
static const struct {
	const char *a, *b;
	int want;
} cases[] = {
	{"1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.10", "1.9", 1},
	{"1.0~rc1", "1.0", -1},
	{"1.0~rc1", "1.0~rc2", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0", "1.0+b1", -1},
	{"1.0a", "1.0", 1},
	{"1.0a", "1.0+", -1},
	{"1:0.9", "2.0", 1},
	{"0:2.0", "2.0", -1},	/* equal for dpkg; ties broken by bytes for a total order */
	{"2.10-3", "2.10-10", -1},
	{"2.10-3", "2.10", 1},
	{"9.4.0-1+deb12u1", "9.4.0-1", 1},
	{"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
	{"1.2.3", "1.2.3.0", -1},
	{"007", "7", -1},	/* likewise */
	{"1.0-1", "1.0-2~bpo1", -1},
};

START_TEST(version_cmp_follows_dpkg_ordering)
{
	ck_assert_msg(sign(fs_version_cmp(cases[_i].a, cases[_i].b)) == cases[_i].want,
		      "%s vs %s: got %d want %d", cases[_i].a, cases[_i].b,
		      fs_version_cmp(cases[_i].a, cases[_i].b), cases[_i].want);
	ck_assert_int_eq(sign(fs_version_cmp(cases[_i].b, cases[_i].a)), -cases[_i].want);
}
END_TEST

START_TEST(version_cmp_survives_odd_epochs)
{
	/* Non-numeric or huge epochs count as 0 rather than failing. */
	ck_assert_int_lt(fs_version_cmp("x:1.0", "1:1.0"), 0);
	ck_assert_int_gt(fs_version_cmp("99999999999999999999999:1", "1"), 0);
	ck_assert_int_eq(fs_version_cmp("", ""), 0);
	ck_assert_int_lt(fs_version_cmp("", "0"), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fs");
	TCase *tc = tcase_create("version");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, version_cmp_follows_dpkg_ordering, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, version_cmp_survives_odd_epochs);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
