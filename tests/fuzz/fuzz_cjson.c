/* tests/fuzz/fuzz_cjson.c: the JSON entry points of verify/cjson.c (verify_json_parse, the
 * strict parser every metadata file and manifest goes through, and verify_cjson_dump, whose
 * bytes are what signatures cover) and the UTF-8 check of verify/text.c.
 *
 * Input: any bytes, meant as a JSON document. Seeds: metadata and manifests written by stork
 * (tests/fuzz/make-corpus) and hand-written edge cases.
 *
 * Checks beyond surviving: a dump is NUL-free and as long as it says; a dump that parses again
 * dumps to the same bytes and the same value (canonical means one form); dump fails only for
 * a real number; verify_utf8_valid agrees with an independent reading of RFC 3629. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* RFC 3629 section 4, written out from the table rather than from text.c's code. */
static bool utf8_reference(const uint8_t *s, size_t len)
{
	size_t i = 0, n, k;
	uint8_t lo, hi;

	while (i < len) {
		uint8_t b = s[i];

		lo = 0x80;
		hi = 0xbf;
		if (b <= 0x7f) {
			i++;
			continue;
		} else if (b >= 0xc2 && b <= 0xdf) {
			n = 1;
		} else if (b == 0xe0) {
			n = 2;
			lo = 0xa0;
		} else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
			n = 2;
		} else if (b == 0xed) {
			n = 2;
			hi = 0x9f;
		} else if (b == 0xf0) {
			n = 3;
			lo = 0x90;
		} else if (b >= 0xf1 && b <= 0xf3) {
			n = 3;
		} else if (b == 0xf4) {
			n = 3;
			hi = 0x8f;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		/* the first continuation byte has the narrowed range, the others 80..BF */
		for (k = 1; k <= n; k++) {
			uint8_t c = s[i + k];

			if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf))
				return false;
		}
		i += n + 1;
	}
	return true;
}

static bool has_real(const json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_real(j))
		return true;
	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, key, v)
		{
			if (has_real(v))
				return true;
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
		{
			if (has_real(v))
				return true;
		}
	}
	return false;
}

static void check_dump(const json_t *j)
{
	char *dump = NULL, *dump2 = NULL;
	size_t len = 0, len2 = 0;
	json_t *again = NULL;
	int r;

	r = verify_cjson_dump(j, &dump, &len);
	if (r == -ENOMEM)
		return;
	if (r < 0) {
		if (r != -EINVAL || !has_real(j))
			fuzz_bug("verify_cjson_dump returned %d for a value without a real number",
				 r);
		return;
	}
	if (strlen(dump) != len)
		fuzz_bug("verify_cjson_dump: length %zu, but the string is %zu bytes", len,
			 strlen(dump));
	/* Canonical JSON leaves control bytes unescaped, which JSON does not allow: such a dump
	 * need not parse. One that does must be its own canonical form. */
	if (verify_json_parse(dump, len, "dump", &again) == 0) {
		if (!json_equal((json_t *)j, again))
			fuzz_bug("the dump parses to another value");
		r = verify_cjson_dump(again, &dump2, &len2);
		if (r == 0 && (len != len2 || memcmp(dump, dump2, len) != 0))
			fuzz_bug("the dump of the dump differs");
	}
	json_decref(again);
	free(dump);
	free(dump2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = NULL;
	int r;

	if (verify_utf8_valid((const char *)data, size) != utf8_reference(data, size))
		fuzz_bug("verify_utf8_valid says %d, RFC 3629 says %d",
			 verify_utf8_valid((const char *)data, size), utf8_reference(data, size));

	r = verify_json_parse(data, size, "fuzz.json", &j);
	if (r == 0) {
		check_dump(j);
		json_decref(j);
	} else if (r != STORK_EFORMAT) {
		fuzz_bug("verify_json_parse returned %d, not STORK_EFORMAT", r);
	}
	stork_error_clear();
	return 0;
}
