/* verify/json.c: the JSON documents of verify/json.h, over jansson. A struct verify_json is a
 * json_t: the casts below are the whole translation, so that no module outside verify/ includes
 * <jansson.h>.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/json.h"

static json_t *J(const struct verify_json *j)
{
	return (json_t *)j;
}

static struct verify_json *V(const json_t *j)
{
	return (struct verify_json *)j;
}

struct verify_json *verify_json_object(void)
{
	return V(json_object());
}

struct verify_json *verify_json_array(void)
{
	return V(json_array());
}

/* Set key to v (a new reference, or NULL when making it failed: fail). */
static int set_new(struct verify_json *o, const char *key, json_t *v, int fail)
{
	if (!v)
		return fail;
	if (!json_is_object(J(o))) {
		json_decref(v);
		return -EINVAL;
	}
	return json_object_set_new(J(o), key, v) < 0 ? -ENOMEM : 0; /* it took v either way */
}

int verify_json_set_str(struct verify_json *o, const char *key, const char *s)
{
	if (!s)
		return -EINVAL;
	return set_new(o, key, json_string(s), -EINVAL);
}

int verify_json_set_text(struct verify_json *o, const char *key, const char *s)
{
	json_t *v;
	char *copy;

	if (!s)
		return -EINVAL;
	v = json_string(s);
	if (v)
		return set_new(o, key, v, -ENOMEM);
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return set_new(o, key, v, -ENOMEM);
}

int verify_json_set_int(struct verify_json *o, const char *key, int64_t v)
{
	return set_new(o, key, json_integer((json_int_t)v), -ENOMEM);
}

int verify_json_set_bool(struct verify_json *o, const char *key, bool v)
{
	return set_new(o, key, json_boolean(v), -ENOMEM);
}

int verify_json_set_null(struct verify_json *o, const char *key)
{
	return set_new(o, key, json_null(), -ENOMEM);
}

int verify_json_set(struct verify_json *o, const char *key, struct verify_json *v)
{
	return set_new(o, key, J(v), -EINVAL);
}

int verify_json_append(struct verify_json *a, struct verify_json *v)
{
	if (!v)
		return -EINVAL;
	if (!json_is_array(J(a))) {
		json_decref(J(v));
		return -EINVAL;
	}
	return json_array_append_new(J(a), J(v)) < 0 ? -ENOMEM : 0;
}

int verify_json_dump(const struct verify_json *j, char **ret_text)
{
	char *s = json_dumps(J(j), JSON_INDENT(1) | JSON_PRESERVE_ORDER);

	if (!s)
		return -ENOMEM;
	*ret_text = s;
	return 0;
}

void verify_json_free(struct verify_json *j)
{
	json_decref(J(j));
}

int verify_json_load(const void *buf, size_t len, const char *what, struct verify_json **ret_j)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf, len, 0, &jerr);

	if (!j) {
		stork_errorf("%s: %s", what, jerr.text);
		return STORK_EFORMAT;
	}
	*ret_j = V(j);
	return 0;
}

struct verify_json *verify_json_get(const struct verify_json *o, const char *key)
{
	return V(json_object_get(J(o), key));
}

struct verify_json *verify_json_at(const struct verify_json *a, size_t i)
{
	return V(json_array_get(J(a), i));
}

size_t verify_json_size(const struct verify_json *j)
{
	if (json_is_array(J(j)))
		return json_array_size(J(j));
	return json_object_size(J(j));
}

const char *verify_json_str(const struct verify_json *j)
{
	return json_string_value(J(j));
}

bool verify_json_int(const struct verify_json *j, int64_t *ret_v)
{
	if (!json_is_integer(J(j)))
		return false;
	*ret_v = (int64_t)json_integer_value(J(j));
	return true;
}

bool verify_json_is_object(const struct verify_json *j)
{
	return json_is_object(J(j));
}

bool verify_json_is_true(const struct verify_json *j)
{
	return json_is_true(J(j));
}

bool verify_json_is_null(const struct verify_json *j)
{
	return json_is_null(J(j));
}
