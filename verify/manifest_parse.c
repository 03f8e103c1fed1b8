/* verify/manifest_parse.c: parsing a manifest, strictly.
 *
 * The format is in verify/README.md. Parsing refuses anything verify_manifest_finish would have
 * had to fix (unsorted files, missing parents), so one package version has exactly one
 * manifest; every refusal names the file and, for a bad entry, its index and path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/internal.h"
#include "verify/manifest.h"
#include "verify/name.h"

static const char *const manifest_formats[] = {"dir", "tar", "deb", "rpm"};

/* Refuse keys of obj not in allowed (NULL-terminated); return the first one or NULL. */
static const char *unknown_key(const json_t *obj, const char *const *allowed)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v)
	{
		size_t i;

		for (i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (!allowed[i])
			return k;
	}
	return NULL;
}

/* An integer member in [min, max]; problem set to a static string when it is not. */
static const char *get_int(const json_t *obj, const char *key, json_int_t min, json_int_t max,
			   json_int_t *ret)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return "missing";
	if (!json_is_integer(v))
		return "not an integer";
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return "out of range";
	*ret = json_integer_value(v);
	return NULL;
}

struct parse {
	const char *what;
	struct verify_manifest *m;
	int64_t spec;
};

/* A relation: "depends" (groups of alternatives) or, with single, "provides", "conflicts" or
 * "breaks" or "replaces" (one alternative a group). */
static int parse_depends(struct parse *p, const char *key, const json_t *deps, bool single,
			 struct verify_depgroup **ret_groups, size_t *ret_n)
{
	static const char *const dep_keys[] = {"name", "op", "version", NULL};
	size_t i, k;

	if (!json_is_array(deps)) {
		stork_errorf("%s: \"%s\" is not an array", p->what, key);
		return STORK_EFORMAT;
	}
	*ret_groups =
	    calloc(json_array_size(deps) ? json_array_size(deps) : 1, sizeof(**ret_groups));
	if (!*ret_groups)
		return -ENOMEM;
	for (i = 0; i < json_array_size(deps); i++) {
		const json_t *g = json_array_get(deps, i);
		struct verify_depgroup *group = &(*ret_groups)[i];

		if (!json_is_array(g) || json_array_size(g) == 0 ||
		    (single && json_array_size(g) != 1)) {
			stork_errorf("%s: %s[%zu]: not %s", p->what, key, i,
				     single ? "an array of one relation"
					    : "a non-empty array of alternatives");
			return STORK_EFORMAT;
		}
		group->alts = calloc(json_array_size(g), sizeof(*group->alts));
		if (!group->alts)
			return -ENOMEM;
		(*ret_n)++;
		for (k = 0; k < json_array_size(g); k++) {
			const json_t *d = json_array_get(g, k);
			const json_t *name, *op, *version;
			struct verify_dep *dep = &group->alts[k];
			const char *bad, *problem = NULL;

			if (!json_is_object(d)) {
				stork_errorf("%s: %s[%zu][%zu]: not an object", p->what, key, i, k);
				return STORK_EFORMAT;
			}
			bad = unknown_key(d, dep_keys);
			if (bad) {
				stork_errorf("%s: %s[%zu][%zu]: unknown key \"%.64s\"", p->what,
					     key, i, k, bad);
				return STORK_EFORMAT;
			}
			name = json_object_get(d, "name");
			op = json_object_get(d, "op");
			version = json_object_get(d, "version");
			if (!name)
				problem = "missing \"name\"";
			else if (!json_is_string(name) ||
				 manifest_dep_field_problem(json_string_value(name)))
				problem = "\"name\" is not a dependency name";
			else if (!op != !version)
				problem = "\"op\" and \"version\" go together";
			else if (op && (!json_is_string(op) ||
					!manifest_dep_op_valid(json_string_value(op))))
				problem = "\"op\" is not one of << <= = >= >>";
			else if (version &&
				 (!json_is_string(version) ||
				  manifest_dep_field_problem(json_string_value(version))))
				problem = "\"version\" is not a dependency version";
			if (problem) {
				stork_errorf("%s: %s[%zu][%zu]: %s", p->what, key, i, k, problem);
				return STORK_EFORMAT;
			}
			group->n++;
			dep->name = strdup(json_string_value(name));
			if (!dep->name)
				return -ENOMEM;
			if (op) {
				dep->op = strdup(json_string_value(op));
				dep->version = strdup(json_string_value(version));
				if (!dep->op || !dep->version)
					return -ENOMEM;
			}
		}
	}
	return 0;
}

static int entry_error(struct parse *p, size_t i, const char *path, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int entry_error(struct parse *p, size_t i, const char *path, int code, const char *fmt, ...)
{
	char q[TEXT_QUOTE_LEN], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path)
		stork_errorf("%s: files[%zu] \"%s\": %s", p->what, i,
			     text_quote(path, q, sizeof(q)), msg);
	else
		stork_errorf("%s: files[%zu]: %s", p->what, i, msg);
	return code;
}

static int parse_entry(struct parse *p, size_t i, const json_t *f, struct verify_entry *e)
{
	static const char *const entry_keys[] = {"path",  "type",   "mode",   "mtime",	"size",
						 "zsize", "sha256", "target", "chunks", NULL};
	static const char *const file_only[] = {"size", "zsize", "sha256", "chunks"};
	const json_t *jpath, *jtype, *jsha, *jtarget;
	const char *path, *type, *bad, *problem;
	json_int_t v;
	size_t k;

	if (!json_is_object(f))
		return entry_error(p, i, NULL, STORK_EFORMAT, "not an object");
	jpath = json_object_get(f, "path");
	if (!jpath)
		return entry_error(p, i, NULL, STORK_EFORMAT, "missing \"path\"");
	if (!json_is_string(jpath))
		return entry_error(p, i, NULL, STORK_EFORMAT, "\"path\" is not a string");
	path = json_string_value(jpath);
	problem = manifest_path_problem(path);
	if (problem)
		return entry_error(p, i, path, STORK_EHOSTILE, "%s", problem);
	bad = unknown_key(f, entry_keys);
	if (bad)
		return entry_error(p, i, path, STORK_EFORMAT, "unknown key \"%.64s\"", bad);
	jtype = json_object_get(f, "type");
	if (!jtype)
		return entry_error(p, i, path, STORK_EFORMAT, "missing \"type\"");
	type = json_string_value(jtype);
	if (!type)
		return entry_error(p, i, path, STORK_EFORMAT, "\"type\" is not a string");
	if (strcmp(type, "dir") == 0)
		e->type = VERIFY_DIR;
	else if (strcmp(type, "file") == 0)
		e->type = VERIFY_FILE;
	else if (strcmp(type, "symlink") == 0)
		e->type = VERIFY_SYMLINK;
	else
		return entry_error(p, i, path, STORK_EFORMAT,
				   "type \"%.32s\" is not dir, file or symlink", type);

	problem = get_int(f, "mode", 0, 07777, &v);
	if (problem)
		return entry_error(p, i, path, STORK_EFORMAT, "\"mode\": %s",
				   strcmp(problem, "out of range") == 0
				       ? "more than permission bits (0 to 07777)"
				       : problem);
	e->mode = (uint32_t)v;
	problem = get_int(f, "mtime", INT64_MIN, INT64_MAX, &v);
	if (problem)
		return entry_error(p, i, path, STORK_EFORMAT, "\"mtime\": %s", problem);
	e->mtime = v;

	if (e->type != VERIFY_FILE) {
		for (k = 0; k < sizeof(file_only) / sizeof(file_only[0]); k++)
			if (json_object_get(f, file_only[k]))
				return entry_error(p, i, path, STORK_EFORMAT,
						   "\"%s\" is not allowed for a %s", file_only[k],
						   type);
	}
	if (e->type != VERIFY_SYMLINK && json_object_get(f, "target"))
		return entry_error(p, i, path, STORK_EFORMAT, "\"target\" is not allowed for a %s",
				   type);
	if (e->type == VERIFY_FILE) {
		problem = get_int(f, "size", 0, INT64_MAX, &v);
		if (problem)
			return entry_error(p, i, path, STORK_EFORMAT, "\"size\": %s", problem);
		e->size = (uint64_t)v;
		problem = get_int(f, "zsize", 0, INT64_MAX, &v);
		if (problem)
			return entry_error(p, i, path, STORK_EFORMAT, "\"zsize\": %s", problem);
		e->zsize = (uint64_t)v;
		jsha = json_object_get(f, "sha256");
		if (!jsha)
			return entry_error(p, i, path, STORK_EFORMAT, "missing \"sha256\"");
		problem = json_string_value(jsha);
		for (k = 0; problem && problem[k]; k++)
			if (!((problem[k] >= '0' && problem[k] <= '9') ||
			      (problem[k] >= 'a' && problem[k] <= 'f')))
				break;
		if (!problem || k != 2 * VERIFY_HASH_LEN || problem[k] != '\0' ||
		    verify_unhex(problem, e->hash, VERIFY_HASH_LEN) < 0)
			return entry_error(p, i, path, STORK_EFORMAT,
					   "\"sha256\" is not 64 lower-case hex digits");
		if (json_object_get(f, "chunks")) {
			char why[160];
			int r;

			if (p->spec < 3)
				return entry_error(p, i, path, STORK_EFORMAT,
						   "\"chunks\" needs spec_version 3");
			r = manifest_chunks_parse(json_object_get(f, "chunks"), e, why,
						  sizeof(why));
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				return entry_error(p, i, path, r, "%s", why);
		}
	}
	if (e->type == VERIFY_SYMLINK) {
		jtarget = json_object_get(f, "target");
		if (!jtarget)
			return entry_error(p, i, path, STORK_EFORMAT, "symlink without \"target\"");
		if (!json_is_string(jtarget))
			return entry_error(p, i, path, STORK_EFORMAT, "\"target\" is not a string");
		problem = manifest_target_problem(json_string_value(jtarget));
		if (problem)
			return entry_error(p, i, path, STORK_EHOSTILE, "%s", problem);
		e->target = strdup(json_string_value(jtarget));
		if (!e->target)
			return -ENOMEM;
		e->size = strlen(e->target);
	}
	e->path = strdup(path);
	if (!e->path)
		return -ENOMEM;
	return 0;
}

static int parse_files(struct parse *p, const json_t *files)
{
	struct verify_manifest *m = p->m;
	size_t i, n;
	int r;

	if (!json_is_array(files)) {
		stork_errorf("%s: \"files\" is not an array", p->what);
		return STORK_EFORMAT;
	}
	n = json_array_size(files);
	r = manifest_grow(m, n);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		struct verify_entry *e = &m->entries[m->n];

		memset(e, 0, sizeof(*e));
		r = parse_entry(p, i, json_array_get(files, i), e);
		if (r < 0) {
			free(e->path);
			free(e->target);
			free(e->chunks);
			return r;
		}
		m->n++;
		if (i > 0) {
			int c = strcmp(m->entries[i - 1].path, e->path);

			if (c == 0)
				return entry_error(p, i, e->path, STORK_EHOSTILE, "duplicate path");
			if (c > 0)
				return entry_error(p, i, e->path, STORK_EFORMAT,
						   "not sorted (comes after \"%.200s\")",
						   m->entries[i - 1].path);
		}
	}
	/* Sorted: every parent is found by binary search, and by induction checking the direct
	 * parent of each entry covers every ancestor. */
	for (i = 0; i < m->n; i++) {
		const char *path = m->entries[i].path, *slash = strrchr(path, '/');
		const struct verify_entry *parent;
		char prefix[MANIFEST_PATH_MAX + 1], q[TEXT_QUOTE_LEN];

		if (!slash)
			continue;
		memcpy(prefix, path, (size_t)(slash - path));
		prefix[slash - path] = '\0';
		parent = manifest_find(m->entries, m->n, prefix);
		if (!parent)
			return entry_error(p, i, path, STORK_EFORMAT, "parent \"%s\" is missing",
					   text_quote(prefix, q, sizeof(q)));
		if (parent->type != VERIFY_DIR)
			return entry_error(p, i, path, STORK_EHOSTILE, "parent \"%s\" is a %s",
					   text_quote(prefix, q, sizeof(q)),
					   manifest_type_name(parent->type));
	}
	m->total_size = 0;
	for (i = 0; i < m->n; i++) {
		if (m->entries[i].type != VERIFY_FILE)
			continue;
		if (m->entries[i].size > UINT64_MAX - m->total_size) {
			stork_errorf("%s: total size overflows", p->what);
			return STORK_EFORMAT;
		}
		m->total_size += m->entries[i].size;
	}
	return 0;
}

static int parse_top(struct parse *p, const json_t *j)
{
	static const char *const top_keys[] = {"_type",	 "spec_version", "name",  "version",
					       "format", "depends",	 "files", NULL};
	/* spec_version 2: optional relations (verify/README.md) */
	static const char *const all_keys[] = {"_type",	    "spec_version", "name",	"version",
					       "format",    "depends",	    "files",	"provides",
					       "conflicts", "breaks",	    "replaces", NULL};
	static const char *const spec2_keys[] = {"provides", "conflicts", "breaks", "replaces",
						 NULL};
	int64_t spec;
	const json_t *v;
	const char *s, *bad;
	size_t i;
	int r;

	if (!json_is_object(j)) {
		stork_errorf("%s: not a JSON object", p->what);
		return STORK_EFORMAT;
	}
	bad = unknown_key(j, all_keys);
	if (bad) {
		char q[TEXT_QUOTE_LEN];

		stork_errorf("%s: unknown key \"%s\"", p->what, text_quote(bad, q, 80));
		return STORK_EFORMAT;
	}
	for (i = 0; top_keys[i]; i++) {
		if (!json_object_get(j, top_keys[i])) {
			stork_errorf("%s: missing \"%s\"", p->what, top_keys[i]);
			return STORK_EFORMAT;
		}
	}
	s = json_string_value(json_object_get(j, "_type"));
	if (!s || strcmp(s, "storkfs-manifest") != 0) {
		stork_errorf("%s: \"_type\" is not \"storkfs-manifest\"", p->what);
		return STORK_EFORMAT;
	}
	v = json_object_get(j, "spec_version");
	if (!json_is_integer(v)) {
		stork_errorf("%s: \"spec_version\" is not an integer", p->what);
		return STORK_EFORMAT;
	}
	spec = json_integer_value(v);
	if (spec < 1 || spec > 3) {
		stork_errorf("%s: spec_version %" JSON_INTEGER_FORMAT
			     " is not supported (this storkfs reads 1 to 3)",
			     p->what, json_integer_value(v));
		return STORK_EFORMAT;
	}
	p->spec = spec;
	for (i = 0; spec2_keys[i]; i++) {
		if (spec == 1 && json_object_get(j, spec2_keys[i])) {
			stork_errorf("%s: \"%s\" needs spec_version 2", p->what, spec2_keys[i]);
			return STORK_EFORMAT;
		}
	}
	for (i = 0; i < 3; i++) {
		static const char *const keys[] = {"name", "version", "format"};

		if (!json_is_string(json_object_get(j, keys[i]))) {
			stork_errorf("%s: \"%s\" is not a string", p->what, keys[i]);
			return STORK_EFORMAT;
		}
	}
	s = json_string_value(json_object_get(j, "name"));
	r = verify_check_package_name(s);
	if (r < 0)
		goto name_error;
	s = json_string_value(json_object_get(j, "version"));
	r = verify_check_version(s);
	if (r < 0)
		goto name_error;
	s = json_string_value(json_object_get(j, "format"));
	for (i = 0; i < sizeof(manifest_formats) / sizeof(manifest_formats[0]); i++)
		if (strcmp(s, manifest_formats[i]) == 0)
			break;
	if (i == sizeof(manifest_formats) / sizeof(manifest_formats[0])) {
		char q[TEXT_QUOTE_LEN];

		stork_errorf("%s: format \"%s\" is not dir, tar, deb or rpm", p->what,
			     text_quote(s, q, 80));
		return STORK_EFORMAT;
	}
	r = verify_manifest_new(json_string_value(json_object_get(j, "name")),
				json_string_value(json_object_get(j, "version")), s, &p->m);
	if (r < 0)
		return r;
	r = parse_depends(p, "depends", json_object_get(j, "depends"), false, &p->m->depends,
			  &p->m->ndepends);
	if (r == 0 && json_object_get(j, "provides"))
		r = parse_depends(p, "provides", json_object_get(j, "provides"), true,
				  &p->m->provides, &p->m->nprovides);
	if (r == 0 && json_object_get(j, "conflicts"))
		r = parse_depends(p, "conflicts", json_object_get(j, "conflicts"), true,
				  &p->m->conflicts, &p->m->nconflicts);
	if (r == 0 && json_object_get(j, "breaks"))
		r = parse_depends(p, "breaks", json_object_get(j, "breaks"), true, &p->m->breaks,
				  &p->m->nbreaks);
	if (r == 0 && json_object_get(j, "replaces"))
		r = parse_depends(p, "replaces", json_object_get(j, "replaces"), true,
				  &p->m->replaces, &p->m->nreplaces);
	if (r < 0)
		return r;
	return parse_files(p, json_object_get(j, "files"));
name_error:
	stork_error_prefix("%s", p->what);
	return r;
}

int verify_manifest_parse(const void *buf, size_t len, const char *what,
			  struct verify_manifest **ret_m)
{
	struct parse p = {.what = what, .m = NULL};
	json_t *j = NULL;
	int r;

	r = verify_json_parse(buf, len, what, &j);
	if (r < 0)
		return r;
	r = parse_top(&p, j);
	json_decref(j);
	if (r == 0) {
		r = verify_sha256(buf, len, p.m->file_hash);
		p.m->has_file_hash = r == 0;
	}
	if (r < 0) {
		if (r == -ENOMEM)
			stork_errorf("%s: out of memory", what);
		verify_manifest_free(p.m);
		return r;
	}
	*ret_m = p.m;
	return 0;
}
