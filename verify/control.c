/* verify/control.c: the control list format (verify/README.md "Control lists"): names, the
 * canonical JSON a publisher signs, its strict parse, and fetching a list a target names.
 * Which list a slice follows, and whose signature counts, is verify/decide.c
 * (verify_client_control).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/control.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/internal.h"
#include "verify/meta.h"
#include "verify/name.h"

#define CONTROL_TYPE "storkfs-control"
#define CONTROL_DIR  "control/"
#define CONTROL_FILE "/list.json"

int verify_check_group_name(const char *group)
{
	int r = verify_check_package_name(group);

	if (r < 0)
		stork_error_prefix("control group: ");
	return r;
}

char *verify_control_target_path(const char *group)
{
	return meta_asprintf(CONTROL_DIR "%s" CONTROL_FILE, group);
}

bool verify_control_path(const char *path)
{
	size_t len = strlen(path), dl = strlen(CONTROL_DIR), fl = strlen(CONTROL_FILE);

	return len > dl + fl && strncmp(path, CONTROL_DIR, dl) == 0 &&
	       strcmp(path + len - fl, CONTROL_FILE) == 0 && !memchr(path + dl, '/', len - dl - fl);
}

void verify_control_list_free(struct verify_control_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->pkgs[i].name);
		free(l->pkgs[i].version);
	}
	free(l->pkgs);
	free(l->group);
	free(l);
}

int verify_control_new(const char *group, uint64_t version, struct verify_control_list **ret_l)
{
	struct verify_control_list *l;
	int r;

	r = verify_check_group_name(group);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l || !(l->group = strdup(group))) {
		free(l);
		return -ENOMEM;
	}
	l->version = version;
	*ret_l = l;
	return 0;
}

/* Add name (and version, NULL for none) in sorted place. */
static int add_pkg(struct verify_control_list *l, const char *name, const char *version)
{
	struct verify_control_pkg *grown, p = {0};
	size_t at;

	for (at = 0; at < l->n; at++) {
		int c = strcmp(l->pkgs[at].name, name);

		if (c == 0) {
			stork_errorf("control list %s: package %s is listed twice", l->group, name);
			return -EEXIST;
		}
		if (c > 0)
			break;
	}
	if (l->n >= VERIFY_CONTROL_MAX_PKGS) {
		stork_errorf("control list %s: more than %d packages", l->group,
			     VERIFY_CONTROL_MAX_PKGS);
		return -E2BIG;
	}
	grown = realloc(l->pkgs, (l->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	l->pkgs = grown;
	p.name = strdup(name);
	p.version = version ? strdup(version) : NULL;
	if (!p.name || (version && !p.version)) {
		free(p.name);
		free(p.version);
		return -ENOMEM;
	}
	memmove(&l->pkgs[at + 1], &l->pkgs[at], (l->n - at) * sizeof(*l->pkgs));
	l->pkgs[at] = p;
	l->n++;
	return 0;
}

int verify_control_add(struct verify_control_list *l, const char *spec)
{
	const char *eq = strchr(spec, '=');
	char *name;
	int r;

	name = eq ? strndup(spec, (size_t)(eq - spec)) : strdup(spec);
	if (!name)
		return -ENOMEM;
	r = verify_check_package_name(name);
	if (r == 0 && eq)
		r = verify_check_version(eq + 1);
	if (r == STORK_ENAME)
		stork_error_prefix("%s: ", spec);
	if (r == 0)
		r = add_pkg(l, name, eq ? eq + 1 : NULL);
	free(name);
	return r;
}

int verify_control_dump(const struct verify_control_list *l, char **ret_buf, size_t *ret_len)
{
	json_t *j, *pkgs;
	int r = -ENOMEM;

	j = json_pack("{s:s, s:s, s:[], s:i, s:I}", "_type", CONTROL_TYPE, "group", l->group,
		      "packages", "spec_version", 1, "version", (json_int_t)l->version);
	if (!j)
		return -ENOMEM;
	pkgs = json_object_get(j, "packages");
	for (size_t i = 0; i < l->n; i++) {
		json_t *p = json_pack("{s:s}", "name", l->pkgs[i].name);

		if (!p ||
		    (l->pkgs[i].version &&
		     json_object_set_new(p, "version", json_string(l->pkgs[i].version)) < 0) ||
		    json_array_append_new(pkgs, p) < 0)
			goto out;
	}
	r = verify_cjson_dump(j, ret_buf, ret_len);
out:
	json_decref(j);
	return r;
}

/* Refuse keys of obj not in allowed (NULL-terminated): the first one, or NULL. */
static const char *unknown_key(const json_t *obj, const char *const *allowed)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v)
	{
		size_t i;

		for (i = 0; allowed[i] && strcmp(k, allowed[i]) != 0; i++)
			;
		if (!allowed[i])
			return k;
	}
	return NULL;
}

static int parse_pkgs(const json_t *arr, const char *file, struct verify_control_list *l)
{
	static const char *const pkg_keys[] = {"name", "version", NULL};
	const json_t *e;
	const char *bad;
	size_t i;
	int r;

	if (!json_is_array(arr)) {
		stork_errorf("%s: \"packages\" is not an array", file);
		return STORK_EFORMAT;
	}
	json_array_foreach(arr, i, e)
	{
		const json_t *n = json_object_get(e, "name"), *v = json_object_get(e, "version");

		if (!json_is_object(e) || !json_is_string(n) || (v && !json_is_string(v))) {
			stork_errorf(
			    "%s: packages[%zu]: expected {\"name\": NAME} with an optional "
			    "\"version\" string",
			    file, i);
			return STORK_EFORMAT;
		}
		if ((bad = unknown_key(e, pkg_keys))) {
			stork_errorf("%s: packages[%zu]: unknown key \"%s\"", file, i, bad);
			return STORK_EFORMAT;
		}
		r = verify_check_package_name(json_string_value(n));
		if (r == 0 && v)
			r = verify_check_version(json_string_value(v));
		if (r == 0 && l->n && strcmp(l->pkgs[l->n - 1].name, json_string_value(n)) >= 0) {
			stork_errorf("packages not sorted by name, or %s twice",
				     json_string_value(n));
			r = STORK_EFORMAT;
		}
		if (r == 0)
			r = add_pkg(l, json_string_value(n), v ? json_string_value(v) : NULL);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			stork_error_prefix("%s: packages[%zu]: ", file, i);
			return STORK_EFORMAT;
		}
	}
	return 0;
}

int verify_control_parse(const void *buf, size_t len, const char *file,
			 struct verify_control_list **ret_l)
{
	static const char *const keys[] = {"_type",	   "group",   "packages",
					   "spec_version", "version", NULL};
	struct verify_control_list *l = NULL;
	const json_t *t, *g, *sv, *v;
	const char *bad;
	json_t *j = NULL;
	int r;

	r = verify_json_parse(buf, len, file, &j);
	if (r < 0)
		return r;
	r = STORK_EFORMAT;
	if (!json_is_object(j)) {
		stork_errorf("%s: not a JSON object", file);
		goto out;
	}
	t = json_object_get(j, "_type");
	g = json_object_get(j, "group");
	sv = json_object_get(j, "spec_version");
	v = json_object_get(j, "version");
	if (!json_is_string(t) || strcmp(json_string_value(t), CONTROL_TYPE) != 0) {
		stork_errorf("%s: \"_type\" is not \"%s\" (not a control list)", file,
			     CONTROL_TYPE);
		goto out;
	}
	if (!json_is_integer(sv) || json_integer_value(sv) != 1) {
		stork_errorf("%s: \"spec_version\" is not 1 (a newer format: upgrade storkfs)",
			     file);
		goto out;
	}
	if ((bad = unknown_key(j, keys))) {
		stork_errorf("%s: unknown key \"%s\"", file, bad);
		goto out;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		stork_errorf("%s: \"version\" is not an integer >= 1", file);
		goto out;
	}
	if (!json_is_string(g)) {
		stork_errorf("%s: \"group\" is not a string", file);
		goto out;
	}
	r = verify_control_new(json_string_value(g), (uint64_t)json_integer_value(v), &l);
	if (r < 0) {
		if (r != -ENOMEM)
			stork_error_prefix("%s: ", file);
		r = r == -ENOMEM ? r : STORK_EFORMAT;
		goto out;
	}
	r = parse_pkgs(json_object_get(j, "packages"), file, l);
	if (r < 0)
		goto out;
	*ret_l = l;
	l = NULL;
out:
	verify_control_list_free(l);
	json_decref(j);
	return r;
}

/* Parse a list fetched as group's, and check that it is group's list. */
static int parse_group_list(const uint8_t *buf, size_t len, const char *file, const char *group,
			    struct verify_control_list **ret_l)
{
	struct verify_control_list *l = NULL;
	int r;

	r = verify_control_parse(buf, len, file, &l);
	if (r < 0)
		return r;
	if (strcmp(l->group, group) != 0) {
		stork_errorf("%s: the list is group %s's, but it is signed as group %s's", file,
			     l->group, group);
		verify_control_list_free(l);
		return STORK_EFORMAT;
	}
	*ret_l = l;
	return 0;
}

int verify_fetch_control(const struct verify_source *src, const struct verify_target *t,
			 const char *group, struct verify_control_list **ret_l)
{
	char hex[VERIFY_HASH_HEX], *file;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	verify_hex(t->hash, VERIFY_HASH_LEN, hex);
	/* the consistent-snapshot name: the hash before the last component */
	file = meta_asprintf("targets/" CONTROL_DIR "%s/%s.list.json", group, hex);
	if (!file)
		return -ENOMEM;
	r = meta_fetch_target(src, file, t, VERIFY_CONTROL_MAX_LEN, "control list", &buf, &len);
	if (r == 0)
		r = parse_group_list(buf, len, file, group, ret_l);
	free(buf);
	free(file);
	return r;
}
