/* verify/text.c: UTF-8 checks and quoting untrusted strings for messages.
 *
 * Names and paths come from archives, manifests and metadata nobody vouched for yet; a message
 * that repeats one must neither carry its control characters to a terminal nor be unbounded.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "verify/internal.h"
#include "verify/text.h"

bool verify_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

size_t verify_utf8_char(const char *s, size_t len, uint32_t *ret_cp)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 1;

	if (n == 1 && p[0] >= 0x80)
		return 0;
	if (n > len || !verify_utf8_valid(s, n))
		return 0;
	*ret_cp = n == 1 ? p[0] : p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++)
		*ret_cp = *ret_cp << 6 | (p[i] & 0x3f);
	return n;
}

const char *text_quote(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		const char *bidi;
		size_t at;

		if (c == 0xe2 && (bidi = verify_bidi_control(s, &at)) && at == 0) {
			/* Shown, it would reorder the message around it: "\u202e". */
			if (o + 7 >= size)
				break;
			out[o++] = '\\';
			out[o++] = 'u';
			for (size_t i = 2; i < 6; i++)
				out[o++] = (char)(bidi[i] >= 'A' ? bidi[i] - 'A' + 'a' : bidi[i]);
			s += 2;
		} else if (c < 0x20 || c == 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		} else if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else {
			out[o++] = (char)c;
		}
	}
	if (*s && o + 4 <= size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

const char *verify_bidi_control(const char *str, size_t *ret_pos)
{
	static const char *const shown[] = {
	    "U+202A LEFT-TO-RIGHT EMBEDDING",	 "U+202B RIGHT-TO-LEFT EMBEDDING",
	    "U+202C POP DIRECTIONAL FORMATTING", "U+202D LEFT-TO-RIGHT OVERRIDE",
	    "U+202E RIGHT-TO-LEFT OVERRIDE",	 "U+2066 LEFT-TO-RIGHT ISOLATE",
	    "U+2067 RIGHT-TO-LEFT ISOLATE",	 "U+2068 FIRST STRONG ISOLATE",
	    "U+2069 POP DIRECTIONAL ISOLATE",
	};
	const unsigned char *s = (const unsigned char *)str;

	/* U+202A..U+202E are E2 80 AA..AE in UTF-8, U+2066..U+2069 are E2 81 A6..A9. */
	for (size_t i = 0; s[i]; i++) {
		if (s[i] != 0xe2 || !s[i + 1] || !s[i + 2])
			continue;
		if (s[i + 1] == 0x80 && s[i + 2] >= 0xaa && s[i + 2] <= 0xae) {
			*ret_pos = i;
			return shown[s[i + 2] - 0xaa];
		}
		if (s[i + 1] == 0x81 && s[i + 2] >= 0xa6 && s[i + 2] <= 0xa9) {
			*ret_pos = i;
			return shown[5 + s[i + 2] - 0xa6];
		}
	}
	return NULL;
}

void verify_size_text(uint64_t n, const char *unit, char *out, size_t len)
{
	static const char *const units[] = {"", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%" PRIu64 " %s", n, unit);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}
