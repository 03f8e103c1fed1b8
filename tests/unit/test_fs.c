/* tests/unit/test_fs.c: the fs module's tree views (version ordering) and the stale-metadata
 * rule (max_stale parsing, the serving decision). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fs/fs.h"

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

/* Each pair is expected to compare as the third value, as `dpkg --compare-versions` does. */
/* clang-format off */
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
/* clang-format on */

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

START_TEST(max_stale_parses_units_zero_and_inf)
{
	int64_t v = -1;

	ck_assert_int_eq(fs_parse_max_stale("0", &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(fs_parse_max_stale("90", &v), 0);
	ck_assert_int_eq(v, 90);
	ck_assert_int_eq(fs_parse_max_stale("90s", &v), 0);
	ck_assert_int_eq(v, 90);
	ck_assert_int_eq(fs_parse_max_stale("30m", &v), 0);
	ck_assert_int_eq(v, 1800);
	ck_assert_int_eq(fs_parse_max_stale("12h", &v), 0);
	ck_assert_int_eq(v, 12 * 3600);
	ck_assert_int_eq(fs_parse_max_stale("7d", &v), 0);
	ck_assert_int_eq(v, 7 * 86400);
	ck_assert_int_eq(fs_parse_max_stale("inf", &v), 0);
	ck_assert(v == FS_STALE_FOREVER);
	ck_assert_int_eq(fs_parse_max_stale("never", &v), 0);
	ck_assert(v == FS_STALE_FOREVER);
}
END_TEST

START_TEST(duration_takes_units_and_names_the_option)
{
	int64_t v = 42;

	ck_assert_int_eq(fs_parse_duration("refresh", "1h", 86400, &v), 0);
	ck_assert_int_eq(v, 3600);
	ck_assert_int_eq(fs_parse_duration("refresh", "300", 86400, &v), 0);
	ck_assert_int_eq(v, 300);
	ck_assert_int_eq(fs_parse_duration("timeout", "5m", 86400, &v), 0);
	ck_assert_int_eq(v, 300);
	ck_assert_int_eq(fs_parse_duration("refresh", "1x", 86400, &v), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "refresh=1x: expected a duration"));
	ck_assert_int_eq(fs_parse_duration("timeout", "2d", 86400, &v), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "timeout=2d: longer than 1d"));
	ck_assert_int_eq(fs_parse_duration("timeout", "inf", 86400, &v), -EINVAL);
	ck_assert_int_eq(v, 300); /* untouched on failure */
}
END_TEST

START_TEST(max_stale_refuses_garbage_with_a_detail)
{
	static const char *const bad[] = {"",
					  "-1",
					  "+5",
					  "7w",
					  "7dd",
					  " 7d",
					  "7 d",
					  "d",
					  "1.5h",
					  "0x10",
					  "Inf",
					  "36501d",
					  "99999999999999999999999"};
	int64_t v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(fs_parse_max_stale(bad[i], &v) == -EINVAL, "\"%s\" accepted", bad[i]);
		ck_assert_msg(strstr(stork_error_detail(), "max_stale="),
			      "no detail for \"%s\": %s", bad[i], stork_error_detail());
	}
	ck_assert_int_eq(v, 42); /* untouched on failure */
	ck_assert_int_eq(fs_parse_max_stale("36500d", &v), 0);
}
END_TEST

START_TEST(staleness_serves_until_expiry_plus_grace)
{
	struct fs_staleness st;
	const time_t e = 1000000;

	fs_staleness(e, 60, e - 1, &st); /* fresh */
	ck_assert(!st.stale && st.serving);
	ck_assert_int_eq(st.stale_for, 0);
	ck_assert_int_eq(st.serving_until, e + 60);
	fs_staleness(e, 60, e, &st); /* expired at its expiry second, as verify/ counts it */
	ck_assert(st.stale && st.serving);
	ck_assert_int_eq(st.stale_for, 0);
	fs_staleness(e, 60, e + 59, &st);
	ck_assert(st.stale && st.serving);
	ck_assert_int_eq(st.stale_for, 59);
	fs_staleness(e, 60, e + 60, &st); /* the grace is over */
	ck_assert(st.stale && !st.serving);
	ck_assert_int_eq(st.stale_for, 60);
}
END_TEST

START_TEST(staleness_zero_grace_stops_at_expiry_and_inf_never)
{
	struct fs_staleness st;
	const time_t e = 1000000;

	fs_staleness(e, 0, e - 1, &st);
	ck_assert(st.serving);
	fs_staleness(e, 0, e, &st);
	ck_assert(st.stale && !st.serving);
	fs_staleness(e, FS_STALE_FOREVER, e + 100 * 365 * 86400LL, &st);
	ck_assert(st.stale && st.serving && st.forever);
	/* Nothing known (no state yet): never stale, never refused. */
	fs_staleness(0, 0, e, &st);
	ck_assert(!st.stale && st.serving);
}
END_TEST

START_TEST(duration_formats_for_people)
{
	char b[32];

	ck_assert_str_eq(fs_format_duration(0, b), "0s");
	ck_assert_str_eq(fs_format_duration(45, b), "45s");
	ck_assert_str_eq(fs_format_duration(200, b), "3m 20s");
	ck_assert_str_eq(fs_format_duration(3600, b), "1h");
	ck_assert_str_eq(fs_format_duration(5 * 3600 + 150, b), "5h 2m");
	ck_assert_str_eq(fs_format_duration(7 * 86400 + 3 * 3600 + 59, b), "7d 3h");
	ck_assert_str_eq(fs_format_duration(-5, b), "0s");
	ck_assert_str_eq(fs_format_duration(INT64_MAX, b), "365000d");
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
	tc = tcase_create("stale");
	tcase_add_test(tc, max_stale_parses_units_zero_and_inf);
	tcase_add_test(tc, max_stale_refuses_garbage_with_a_detail);
	tcase_add_test(tc, duration_takes_units_and_names_the_option);
	tcase_add_test(tc, staleness_serves_until_expiry_plus_grace);
	tcase_add_test(tc, staleness_zero_grace_stops_at_expiry_and_inf_never);
	tcase_add_test(tc, duration_formats_for_people);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
