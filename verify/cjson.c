/* verify/cjson.c: canonical JSON as TUF (securesystemslib, OLPC) defines it, and strict parsing.
 *
 * Canonical form: objects with keys sorted by their UTF-8 bytes, no insignificant whitespace,
 * strings escaping only '"' and '\\' (every other byte, control characters included, is
 * written as it is), integers only. Signatures are computed over these bytes, so the output
 * must match securesystemslib's encode_canonical byte for byte.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/text.h"

/* Nesting deeper than this is refused rather than risking the stack. */
#define CJSON_MAX_DEPTH 512

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
	if (n > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int dump_string(struct buf *b, const char *s, size_t len)
{
	size_t i, start = 0;
	int r;

	if (!verify_utf8_valid(s, len)) {
		stork_errorf("canonical JSON: string is not valid UTF-8");
		return -EINVAL;
	}
	r = buf_add(b, "\"", 1);
	for (i = 0; r == 0 && i < len; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		r = buf_add(b, s + start, i - start);
		if (r == 0)
			r = buf_add(b, "\\", 1);
		start = i; /* the quote or backslash itself goes out with the next run */
	}
	if (r == 0)
		r = buf_add(b, s + start, len - start);
	if (r == 0)
		r = buf_add(b, "\"", 1);
	return r;
}

struct member {
	const char *key;
	size_t klen;
	json_t *value;
};

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);

	if (c)
		return c;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int dump_value(struct buf *b, const json_t *j, int depth);

static int dump_object(struct buf *b, const json_t *j, int depth)
{
	size_t n = json_object_size(j), i = 0;
	struct member *m = NULL;
	const char *key;
	size_t klen;
	json_t *v;
	int r = 0;

	if (n > 0) {
		m = calloc(n, sizeof(*m));
		if (!m)
			return -ENOMEM;
	}
	/* jansson's iterators take a non-const pointer but only read the object. */
	json_object_keylen_foreach((json_t *)j, key, klen, v)
	{
		if (i == n)
			break;
		m[i].key = key;
		m[i].klen = klen;
		m[i].value = v;
		i++;
	}
	n = i;
	if (n > 1)
		qsort(m, n, sizeof(*m), member_cmp);
	r = buf_add(b, "{", 1);
	for (i = 0; r == 0 && i < n; i++) {
		if (i > 0)
			r = buf_add(b, ",", 1);
		if (r == 0)
			r = dump_string(b, m[i].key, m[i].klen);
		if (r == 0)
			r = buf_add(b, ":", 1);
		if (r == 0)
			r = dump_value(b, m[i].value, depth + 1);
	}
	if (r == 0)
		r = buf_add(b, "}", 1);
	free(m);
	return r;
}

static int dump_value(struct buf *b, const json_t *j, int depth)
{
	char num[32];
	size_t i;
	int r = 0;

	if (depth > CJSON_MAX_DEPTH) {
		stork_errorf("canonical JSON: nested deeper than %d levels", CJSON_MAX_DEPTH);
		return -EINVAL;
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return dump_object(b, j, depth);
	case JSON_ARRAY:
		r = buf_add(b, "[", 1);
		for (i = 0; r == 0 && i < json_array_size(j); i++) {
			if (i > 0)
				r = buf_add(b, ",", 1);
			if (r == 0)
				r = dump_value(b, json_array_get(j, i), depth + 1);
		}
		if (r == 0)
			r = buf_add(b, "]", 1);
		return r;
	case JSON_STRING:
		return dump_string(b, json_string_value(j), json_string_length(j));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		return buf_add(b, num, strlen(num));
	case JSON_REAL:
		stork_errorf("canonical JSON: real numbers are not allowed (%g)",
			     json_real_value(j));
		return -EINVAL;
	case JSON_TRUE:
		return buf_add(b, "true", 4);
	case JSON_FALSE:
		return buf_add(b, "false", 5);
	case JSON_NULL:
		return buf_add(b, "null", 4);
	}
	stork_errorf("canonical JSON: unknown value type");
	return -EINVAL;
}

int verify_cjson_dump(const json_t *j, char **ret_buf, size_t *ret_len)
{
	struct buf b = {0};
	int r;

	if (!j) {
		stork_errorf("canonical JSON: no value");
		return -EINVAL;
	}
	r = dump_value(&b, j, 0);
	if (r == 0 && !b.p)
		r = buf_add(&b, "", 0);
	if (r < 0) {
		if (r == -ENOMEM)
			stork_errorf("canonical JSON: out of memory");
		free(b.p);
		return r;
	}
	*ret_buf = b.p;
	*ret_len = b.len;
	return 0;
}

int verify_json_parse(const void *buf, size_t len, const char *what, json_t **ret_json)
{
	json_error_t err;
	json_t *j;

	/* Without JSON_DECODE_ANY the top level must be an object or array; without
	 * JSON_DISABLE_EOF_CHECK anything but whitespace after the value is an error; without
	 * JSON_ALLOW_NUL "\u0000" is refused. */
	j = json_loadb(len ? buf : "", len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		stork_errorf("%s: line %d column %d: %s", what, err.line, err.column, err.text);
		return STORK_EFORMAT;
	}
	*ret_json = j;
	return 0;
}
