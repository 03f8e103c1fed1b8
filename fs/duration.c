/* fs/duration.c: durations as options give them (`refresh=1h`, `max_stale=7d`: one parser,
 * one set of units) and as messages print them, and how stale a repository's metadata is
 * (fs/fs.h: fs_parse_duration, fs_staleness). Nothing here touches a repository. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fs.h"

int fs_parse_duration(const char *name, const char *s, int64_t most, int64_t *ret_secs)
{
	static const char units[] = "smhd";
	static const int64_t scale[] = {1, 60, 3600, 86400};
	int64_t v = 0, mult = 1;
	const char *p = s, *u;
	char shown[32];

	if (!s || *p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > most)
			goto big;
	}
	if (*p) {
		if (p[1] || !(u = strchr(units, *p)))
			goto bad;
		mult = scale[u - units];
	}
	if (v > most / mult)
		goto big;
	*ret_secs = v * mult;
	return 0;
big:
	stork_errorf("%s=%s: longer than %s", name, s, fs_format_duration(most, shown));
	return -EINVAL;
bad:
	stork_errorf("%s=%s: expected a duration: a number of seconds with an optional unit s, m, "
		     "h or d (90, 30s, 5m, 1h, 7d)",
		     name, s ? s : "");
	return -EINVAL;
}

int fs_parse_max_stale(const char *s, int64_t *ret_secs)
{
	const int64_t most = (int64_t)100 * 365 * 86400;

	if (s && (strcmp(s, "inf") == 0 || strcmp(s, "never") == 0)) {
		*ret_secs = FS_STALE_FOREVER;
		return 0;
	}
	if (fs_parse_duration("max_stale", s, most, ret_secs) == 0)
		return 0;
	if (strstr(stork_error_detail(), ": longer than "))
		stork_errorf("max_stale=%s: longer than 100 years: write inf to never stop serving",
			     s);
	else
		stork_errorf("max_stale=%s: expected a duration (a number with an optional unit s, "
			     "m, h or d: 0, 90s, 30m, 12h, 7d) or inf (never stop serving stale "
			     "metadata)",
			     s ? s : "");
	return -EINVAL;
}

void fs_staleness(time_t expires, int64_t max_stale, time_t now, struct fs_staleness *ret)
{
	struct fs_staleness st = {.expires = expires, .serving = true};

	st.forever = max_stale == FS_STALE_FOREVER;
	if (expires) {
		st.stale = now >= expires;
		st.stale_for = st.stale ? (int64_t)(now - expires) : 0;
		if (!st.forever) {
			st.serving_until = (time_t)((int64_t)expires + max_stale);
			st.serving = now < st.serving_until;
		}
	}
	*ret = st;
}

const char *fs_format_duration(int64_t secs, char buf[32])
{
	static const struct {
		int64_t len;
		char unit;
	} steps[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
	const size_t n = sizeof(steps) / sizeof(steps[0]);
	size_t i = 0;
	unsigned big, rest;

	if (secs < 0)
		secs = 0;
	if (secs > (int64_t)1000 * 365 * 86400)
		secs = (int64_t)1000 * 365 * 86400; /* and more: nobody counts further */
	while (i + 1 < n && secs < steps[i].len)
		i++;
	big = (unsigned)(secs / steps[i].len);
	rest = i + 1 < n ? (unsigned)(secs % steps[i].len / steps[i + 1].len) : 0;
	if (rest)
		snprintf(buf, 32, "%u%c %u%c", big, steps[i].unit, rest, steps[i + 1].unit);
	else
		snprintf(buf, 32, "%u%c", big, steps[i].unit);
	return buf;
}
