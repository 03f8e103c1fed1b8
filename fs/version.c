/* fs/version.c: version ordering as dpkg defines it (deb-version(7)).
 *
 * A version is [epoch:]upstream[-revision]. Parts are compared left to right: epoch
 * numerically, then upstream, then revision, each with the alternating non-digit / digit
 * comparison below. Users expect `latest` to agree with apt, so we follow dpkg exactly.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fs/fs.h"

/* Weight of one character in a non-digit run: '~' before the end of the part, the end before
 * letters, letters before everything else. */
static int order(int c)
{
	if (isdigit(c))
		return 0;
	if (isalpha(c))
		return c;
	if (c == '~')
		return -1;
	if (c)
		return c + 256;
	return 0;
}

/* Compare two parts given as [a, a_end) and [b, b_end). */
static int part_cmp(const char *a, const char *a_end, const char *b, const char *b_end)
{
	while (a < a_end || b < b_end) {
		int diff = 0;

		while ((a < a_end && !isdigit((unsigned char)*a)) ||
		       (b < b_end && !isdigit((unsigned char)*b))) {
			int ac = a < a_end ? order((unsigned char)*a) : 0;
			int bc = b < b_end ? order((unsigned char)*b) : 0;

			if (ac != bc)
				return ac - bc;
			a++;
			b++;
		}
		while (a < a_end && *a == '0')
			a++;
		while (b < b_end && *b == '0')
			b++;
		while (a < a_end && isdigit((unsigned char)*a) && b < b_end &&
		       isdigit((unsigned char)*b)) {
			if (!diff)
				diff = *a - *b;
			a++;
			b++;
		}
		if (a < a_end && isdigit((unsigned char)*a))
			return 1;
		if (b < b_end && isdigit((unsigned char)*b))
			return -1;
		if (diff)
			return diff;
	}
	return 0;
}

struct parsed {
	uint64_t epoch;
	const char *up, *up_end;
	const char *rev, *rev_end;
};

static void parse(const char *v, struct parsed *p)
{
	const char *colon = strchr(v, ':');
	const char *end = v + strlen(v);
	const char *dash;

	p->epoch = 0;
	if (colon) {
		bool numeric = colon > v;
		uint64_t e = 0;

		for (const char *s = v; s < colon; s++) {
			if (!isdigit((unsigned char)*s) || e > UINT64_MAX / 10 - 10) {
				numeric = false;
				break;
			}
			e = e * 10 + (uint64_t)(*s - '0');
		}
		if (numeric)
			p->epoch = e;
		v = colon + 1;
	}
	dash = strrchr(v, '-');
	p->up = v;
	if (dash) {
		p->up_end = dash;
		p->rev = dash + 1;
		p->rev_end = end;
	} else {
		p->up_end = end;
		p->rev = end;
		p->rev_end = end;
	}
}

int fs_version_cmp(const char *a, const char *b)
{
	struct parsed pa, pb;
	int r;

	parse(a, &pa);
	parse(b, &pb);
	if (pa.epoch != pb.epoch)
		return pa.epoch < pb.epoch ? -1 : 1;
	r = part_cmp(pa.up, pa.up_end, pb.up, pb.up_end);
	if (r)
		return r < 0 ? -1 : 1;
	r = part_cmp(pa.rev, pa.rev_end, pb.rev, pb.rev_end);
	if (r)
		return r < 0 ? -1 : 1;
	/* Equal by dpkg's rules ("1.0" and "1.00"): keep a total order for listings. */
	r = strcmp(a, b);
	return r < 0 ? -1 : r > 0;
}
