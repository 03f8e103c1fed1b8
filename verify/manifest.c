/* verify/manifest.c: package manifests, built by the publisher and parsed by clients.
 *
 * The manifest format is in verify/README.md: canonical JSON, files sorted by path bytewise,
 * every parent directory present, nothing below a symlink or a file. Building is lenient about
 * order and missing parents (finish fixes both); parsing is strict and refuses anything finish
 * would have had to fix, so one package version has exactly one manifest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/verify.h"

#define PATH_MAX_LEN	  4096
#define COMPONENT_MAX_LEN 255
#define DEP_FIELD_MAX_LEN 256

struct manifest {
	struct verify_manifest m; /* first: the public part is what callers hold */
	size_t cap;		  /* allocated entries */
};

static struct manifest *priv(struct verify_manifest *m)
{
	return (struct manifest *)m;
}

/* ------------------------------------------------------------------------------------------ */
/* Checks shared by add and parse. */

/* Quote s for a message: printable bytes as they are, others as \xNN, long ones cut. */
static const char *quote(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f) {
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

#define QUOTE_LEN 256

static bool utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned char c = *s;
		size_t n, k;
		uint32_t cp;

		if (c < 0x80) {
			s++;
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
		for (k = 1; k <= n; k++) {
			if ((s[k] & 0xc0) != 0x80) /* also stops at the NUL */
				return false;
			cp = cp << 6 | (s[k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Whether path is a clean relative path; else its problem as a static string. */
static const char *path_problem(const char *path)
{
	const char *p = path, *slash;
	size_t len;

	if (*path == '\0')
		return "empty path";
	if (has_control(path))
		return "control character";
	if (path[0] == '/')
		return "absolute path";
	if (strlen(path) > PATH_MAX_LEN)
		return "path longer than 4096 bytes";
	for (;;) {
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return "path leaves the package root";
		if (len == 0)
			return "empty path component";
		if (len == 1 && p[0] == '.')
			return "\".\" path component";
		if (len > COMPONENT_MAX_LEN)
			return "path component longer than 255 bytes";
		if (!slash)
			break;
		p = slash + 1;
	}
	if (!utf8_valid(path))
		return "path is not valid UTF-8";
	return NULL;
}

static const char *target_problem(const char *target)
{
	if (!target)
		return "symlink without a target";
	if (*target == '\0')
		return "empty symlink target";
	if (has_control(target))
		return "control character in the symlink target";
	if (strlen(target) > PATH_MAX_LEN)
		return "symlink target longer than 4096 bytes";
	if (!utf8_valid(target))
		return "symlink target is not valid UTF-8";
	return NULL;
}

static const char *type_name(enum verify_ftype t)
{
	switch (t) {
	case VERIFY_DIR:
		return "dir";
	case VERIFY_FILE:
		return "file";
	case VERIFY_SYMLINK:
		return "symlink";
	}
	return "?";
}

static const char *const dep_ops[] = {"<<", "<=", "=", ">=", ">>"};

static bool dep_op_valid(const char *op)
{
	size_t i;

	for (i = 0; i < sizeof(dep_ops) / sizeof(dep_ops[0]); i++)
		if (strcmp(op, dep_ops[i]) == 0)
			return true;
	return false;
}

/* Dependency names and versions come from package metadata (rpm's "perl(Carp)" too), so
 * they are not held to the package name charset: printable, no spaces, bounded. */
static const char *dep_field_problem(const char *s)
{
	const char *p;

	if (*s == '\0')
		return "empty";
	if (strlen(s) > DEP_FIELD_MAX_LEN)
		return "longer than 256 bytes";
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return "space or control character";
	if (!utf8_valid(s))
		return "not valid UTF-8";
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Building. */

int verify_manifest_new(const char *name, const char *version, const char *format,
			struct verify_manifest **ret_m)
{
	struct manifest *pm = calloc(1, sizeof(*pm));

	if (!pm)
		return -ENOMEM;
	pm->m.name = strdup(name);
	pm->m.version = strdup(version);
	pm->m.format = strdup(format);
	if (!pm->m.name || !pm->m.version || !pm->m.format) {
		verify_manifest_free(&pm->m);
		return -ENOMEM;
	}
	*ret_m = &pm->m;
	return 0;
}

static int grow(struct manifest *pm, size_t more)
{
	struct verify_entry *e;
	size_t cap = pm->cap ? pm->cap : 64;

	if (pm->m.n + more <= pm->cap)
		return 0;
	if (more > SIZE_MAX / sizeof(*e) / 2 - pm->m.n)
		return -ENOMEM;
	while (cap < pm->m.n + more)
		cap *= 2;
	e = realloc(pm->m.entries, cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	pm->m.entries = e;
	pm->cap = cap;
	return 0;
}

int verify_manifest_add(struct verify_manifest *m, const struct verify_entry *e)
{
	struct manifest *pm = priv(m);
	struct verify_entry *n;
	char q[QUOTE_LEN];
	const char *problem;
	int r;

	if (!e->path) {
		stork_errorf("manifest entry without a path");
		return -EINVAL;
	}
	problem = path_problem(e->path);
	if (problem) {
		stork_errorf("\"%s\": %s", quote(e->path, q, sizeof(q)), problem);
		return STORK_EHOSTILE;
	}
	if (e->type != VERIFY_DIR && e->type != VERIFY_FILE && e->type != VERIFY_SYMLINK) {
		stork_errorf("\"%s\": unknown entry type %d", e->path, (int)e->type);
		return -EINVAL;
	}
	if (e->mode > 07777) {
		stork_errorf("\"%s\": mode %o has more than permission bits", e->path, e->mode);
		return -EINVAL;
	}
	if (e->type == VERIFY_SYMLINK) {
		problem = target_problem(e->target);
		if (problem) {
			stork_errorf("\"%s\": %s", e->path, problem);
			return STORK_EHOSTILE;
		}
	}
	if (e->type == VERIFY_FILE && (e->size > INT64_MAX || e->zsize > INT64_MAX)) {
		stork_errorf("\"%s\": size %" PRIu64 " is too large", e->path, e->size);
		return STORK_ETOOBIG;
	}
	r = grow(pm, 1);
	if (r < 0)
		return r;
	n = &m->entries[m->n];
	memset(n, 0, sizeof(*n));
	n->path = strdup(e->path);
	if (!n->path)
		return -ENOMEM;
	n->type = e->type;
	n->mode = e->mode;
	n->mtime = e->mtime;
	if (e->type == VERIFY_FILE) {
		n->size = e->size;
		n->zsize = e->zsize;
		memcpy(n->hash, e->hash, sizeof(n->hash));
	} else if (e->type == VERIFY_SYMLINK) {
		n->target = strdup(e->target);
		if (!n->target) {
			free(n->path);
			return -ENOMEM;
		}
		n->size = strlen(e->target);
	}
	m->n++;
	return 0;
}

static void dep_fini(struct verify_dep *d)
{
	free(d->name);
	free(d->op);
	free(d->version);
}

static void depgroup_fini(struct verify_depgroup *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		dep_fini(&g->alts[i]);
	free(g->alts);
}

int verify_manifest_add_depgroup(struct verify_manifest *m, const struct verify_dep *alts, size_t n)
{
	struct verify_depgroup g = {0}, *groups;
	size_t i;
	int r;

	if (n == 0) {
		stork_errorf("dependency: empty group of alternatives");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (!alts[i].name || dep_field_problem(alts[i].name) ||
		    (alts[i].op && !dep_op_valid(alts[i].op)) || !alts[i].op != !alts[i].version ||
		    (alts[i].version && dep_field_problem(alts[i].version))) {
			stork_errorf("dependency \"%s\": needs a name, and an op (<< <= = >= >>) "
				     "exactly when it has a version",
				     alts[i].name ? alts[i].name : "");
			return -EINVAL;
		}
	}
	g.alts = calloc(n, sizeof(*g.alts));
	if (!g.alts)
		return -ENOMEM;
	for (g.n = 0; g.n < n; g.n++) {
		struct verify_dep *d = &g.alts[g.n];

		d->name = strdup(alts[g.n].name);
		d->op = alts[g.n].op ? strdup(alts[g.n].op) : NULL;
		d->version = alts[g.n].version ? strdup(alts[g.n].version) : NULL;
		if (!d->name || (alts[g.n].op && !d->op) || (alts[g.n].version && !d->version)) {
			g.n++;
			r = -ENOMEM;
			goto fail;
		}
	}
	groups = realloc(m->depends, (m->ndepends + 1) * sizeof(*groups));
	if (!groups) {
		r = -ENOMEM;
		goto fail;
	}
	m->depends = groups;
	m->depends[m->ndepends++] = g;
	return 0;
fail:
	depgroup_fini(&g);
	return r;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct verify_entry *x = a, *y = b;

	return strcmp(x->path, y->path);
}

static const struct verify_entry *find_in(const struct verify_entry *entries, size_t n,
					  const char *path)
{
	struct verify_entry key = {.path = (char *)path};

	if (n == 0)
		return NULL;
	return bsearch(&key, entries, n, sizeof(*entries), entry_cmp);
}

const struct verify_entry *verify_manifest_find(const struct verify_manifest *m, const char *path)
{
	return find_in(m->entries, m->n, path);
}

struct missing {
	char *path;
	int64_t mtime;
	size_t seq; /* order of discovery, so the first child in path order gives the mtime */
};

static int missing_cmp(const void *a, const void *b)
{
	const struct missing *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int verify_manifest_finish(struct verify_manifest *m)
{
	struct missing *miss = NULL;
	size_t nmiss = 0, capmiss = 0, i, j, n = m->n;
	char q[QUOTE_LEN], q2[QUOTE_LEN];
	uint64_t total = 0;
	int r = 0;

	if (n > 1)
		qsort(m->entries, n, sizeof(*m->entries), entry_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(m->entries[i - 1].path, m->entries[i].path) == 0) {
			stork_errorf("duplicate path \"%s\"",
				     quote(m->entries[i].path, q, sizeof(q)));
			return STORK_EHOSTILE;
		}
	}
	/* Each ancestor of each entry must be a directory; collect the absent ones. */
	for (i = 0; i < n; i++) {
		const struct verify_entry *e = &m->entries[i];
		char prefix[PATH_MAX_LEN + 1];
		const char *slash;

		for (slash = strchr(e->path, '/'); slash; slash = strchr(slash + 1, '/')) {
			const struct verify_entry *p;
			size_t plen = (size_t)(slash - e->path);

			memcpy(prefix, e->path, plen); /* add() bounded paths to PATH_MAX_LEN */
			prefix[plen] = '\0';
			p = find_in(m->entries, n, prefix);
			if (p && p->type != VERIFY_DIR) {
				stork_errorf("\"%s\": parent \"%s\" is a %s",
					     quote(e->path, q, sizeof(q)),
					     quote(p->path, q2, sizeof(q2)), type_name(p->type));
				r = STORK_EHOSTILE;
				goto out;
			}
			if (p)
				continue;
			if (nmiss == capmiss) {
				size_t c = capmiss ? capmiss * 2 : 16;
				struct missing *nm = realloc(miss, c * sizeof(*nm));

				if (!nm) {
					r = -ENOMEM;
					goto out;
				}
				miss = nm;
				capmiss = c;
			}
			miss[nmiss].path = strdup(prefix);
			miss[nmiss].mtime = e->mtime;
			miss[nmiss].seq = nmiss;
			if (!miss[nmiss].path) {
				r = -ENOMEM;
				goto out;
			}
			nmiss++;
		}
	}
	if (nmiss > 0) {
		qsort(miss, nmiss, sizeof(*miss), missing_cmp);
		for (i = 0, j = 0; i < nmiss; i++) {
			if (j > 0 && strcmp(miss[j - 1].path, miss[i].path) == 0) {
				free(miss[i].path);
				continue;
			}
			miss[j++] = miss[i];
		}
		nmiss = j;
		r = grow(priv(m), nmiss);
		if (r < 0)
			goto out;
		for (i = 0; i < nmiss; i++) {
			struct verify_entry *d = &m->entries[m->n++];

			memset(d, 0, sizeof(*d));
			d->path = miss[i].path;
			d->type = VERIFY_DIR;
			d->mode = 0755;
			d->mtime = miss[i].mtime;
			miss[i].path = NULL;
		}
		nmiss = 0;
		qsort(m->entries, m->n, sizeof(*m->entries), entry_cmp);
	}
	for (i = 0; i < m->n; i++) {
		if (m->entries[i].type != VERIFY_FILE)
			continue;
		if (m->entries[i].size > UINT64_MAX - total) {
			stork_errorf("total size overflows");
			r = STORK_ETOOBIG;
			goto out;
		}
		total += m->entries[i].size;
	}
	m->total_size = total;
	r = 0;
out:
	for (i = 0; i < nmiss; i++)
		free(miss[i].path);
	free(miss);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Dumping. */

static int set(json_t *obj, const char *key, json_t *v)
{
	if (!v || json_object_set_new(obj, key, v) < 0)
		return -ENOMEM;
	return 0;
}

/* Strings go in unchecked: verify_cjson_dump refuses invalid UTF-8 with a clear error. */
static json_t *str(const char *s)
{
	return json_stringn_nocheck(s, strlen(s));
}

static json_t *entry_json(const struct verify_entry *e)
{
	json_t *o = json_object();
	char hex[VERIFY_HASH_HEX];
	int r;

	if (!o)
		return NULL;
	r = set(o, "path", str(e->path));
	if (r == 0)
		r = set(o, "type", json_string(type_name(e->type)));
	if (r == 0)
		r = set(o, "mode", json_integer(e->mode));
	if (r == 0)
		r = set(o, "mtime", json_integer(e->mtime));
	if (r == 0 && e->type == VERIFY_FILE) {
		verify_hex(e->hash, sizeof(e->hash), hex);
		r = set(o, "size", json_integer((json_int_t)e->size));
		if (r == 0)
			r = set(o, "zsize", json_integer((json_int_t)e->zsize));
		if (r == 0)
			r = set(o, "sha256", json_string(hex));
	}
	if (r == 0 && e->type == VERIFY_SYMLINK)
		r = set(o, "target", str(e->target ? e->target : ""));
	if (r < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *depends_json(const struct verify_manifest *m)
{
	json_t *groups = json_array(), *alts = NULL, *d = NULL;
	size_t i, k;

	if (!groups)
		return NULL;
	for (i = 0; i < m->ndepends; i++) {
		alts = json_array();
		if (!alts)
			goto fail;
		for (k = 0; k < m->depends[i].n; k++) {
			const struct verify_dep *dep = &m->depends[i].alts[k];

			d = json_object();
			if (!d || set(d, "name", str(dep->name)) < 0)
				goto fail;
			if (dep->op && set(d, "op", str(dep->op)) < 0)
				goto fail;
			if (dep->version && set(d, "version", str(dep->version)) < 0)
				goto fail;
			if (json_array_append_new(alts, d) < 0) {
				d = NULL;
				goto fail;
			}
			d = NULL;
		}
		if (json_array_append_new(groups, alts) < 0) {
			alts = NULL;
			goto fail;
		}
		alts = NULL;
	}
	return groups;
fail:
	json_decref(d);
	json_decref(alts);
	json_decref(groups);
	return NULL;
}

int verify_manifest_dump(const struct verify_manifest *m, char **ret_buf, size_t *ret_len)
{
	json_t *root = json_object(), *files = json_array(), *e;
	size_t i;
	int r;

	if (!root || !files) {
		json_decref(files);
		r = -ENOMEM;
		goto out;
	}
	r = set(root, "files", files);
	if (r < 0)
		goto out;
	for (i = 0; i < m->n; i++) {
		e = entry_json(&m->entries[i]);
		if (!e || json_array_append_new(files, e) < 0) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = set(root, "_type", json_string("storkfs-manifest"));
	if (r == 0)
		r = set(root, "spec_version", json_integer(1));
	if (r == 0)
		r = set(root, "name", str(m->name));
	if (r == 0)
		r = set(root, "version", str(m->version));
	if (r == 0)
		r = set(root, "format", str(m->format));
	if (r == 0)
		r = set(root, "depends", depends_json(m));
	if (r < 0)
		goto out;
	r = verify_cjson_dump(root, ret_buf, ret_len);
	if (r < 0)
		stork_error_prefix("manifest %s %s", m->name, m->version);
out:
	if (r == -ENOMEM)
		stork_errorf("manifest %s %s: out of memory", m->name, m->version);
	json_decref(root);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing. */

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
};

static int parse_depends(struct parse *p, const json_t *deps)
{
	static const char *const dep_keys[] = {"name", "op", "version", NULL};
	size_t i, k;

	if (!json_is_array(deps)) {
		stork_errorf("%s: \"depends\" is not an array", p->what);
		return STORK_EFORMAT;
	}
	p->m->depends =
	    calloc(json_array_size(deps) ? json_array_size(deps) : 1, sizeof(*p->m->depends));
	if (!p->m->depends)
		return -ENOMEM;
	for (i = 0; i < json_array_size(deps); i++) {
		const json_t *g = json_array_get(deps, i);
		struct verify_depgroup *group = &p->m->depends[i];

		if (!json_is_array(g) || json_array_size(g) == 0) {
			stork_errorf("%s: depends[%zu]: not a non-empty array of alternatives",
				     p->what, i);
			return STORK_EFORMAT;
		}
		group->alts = calloc(json_array_size(g), sizeof(*group->alts));
		if (!group->alts)
			return -ENOMEM;
		p->m->ndepends++;
		for (k = 0; k < json_array_size(g); k++) {
			const json_t *d = json_array_get(g, k);
			const json_t *name, *op, *version;
			struct verify_dep *dep = &group->alts[k];
			const char *bad, *problem = NULL;

			if (!json_is_object(d)) {
				stork_errorf("%s: depends[%zu][%zu]: not an object", p->what, i, k);
				return STORK_EFORMAT;
			}
			bad = unknown_key(d, dep_keys);
			if (bad) {
				stork_errorf("%s: depends[%zu][%zu]: unknown key \"%.64s\"",
					     p->what, i, k, bad);
				return STORK_EFORMAT;
			}
			name = json_object_get(d, "name");
			op = json_object_get(d, "op");
			version = json_object_get(d, "version");
			if (!name)
				problem = "missing \"name\"";
			else if (!json_is_string(name) ||
				 dep_field_problem(json_string_value(name)))
				problem = "\"name\" is not a dependency name";
			else if (!op != !version)
				problem = "\"op\" and \"version\" go together";
			else if (op &&
				 (!json_is_string(op) || !dep_op_valid(json_string_value(op))))
				problem = "\"op\" is not one of << <= = >= >>";
			else if (version && (!json_is_string(version) ||
					     dep_field_problem(json_string_value(version))))
				problem = "\"version\" is not a dependency version";
			if (problem) {
				stork_errorf("%s: depends[%zu][%zu]: %s", p->what, i, k, problem);
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
	char q[QUOTE_LEN], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path)
		stork_errorf("%s: files[%zu] \"%s\": %s", p->what, i, quote(path, q, sizeof(q)),
			     msg);
	else
		stork_errorf("%s: files[%zu]: %s", p->what, i, msg);
	return code;
}

static int parse_entry(struct parse *p, size_t i, const json_t *f, struct verify_entry *e)
{
	static const char *const entry_keys[] = {"path",  "type",   "mode",   "mtime", "size",
						 "zsize", "sha256", "target", NULL};
	static const char *const file_only[] = {"size", "zsize", "sha256"};
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
	problem = path_problem(path);
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
	}
	if (e->type == VERIFY_SYMLINK) {
		jtarget = json_object_get(f, "target");
		if (!jtarget)
			return entry_error(p, i, path, STORK_EFORMAT, "symlink without \"target\"");
		if (!json_is_string(jtarget))
			return entry_error(p, i, path, STORK_EFORMAT, "\"target\" is not a string");
		problem = target_problem(json_string_value(jtarget));
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
	struct manifest *pm = priv(m);
	size_t i, n;
	int r;

	if (!json_is_array(files)) {
		stork_errorf("%s: \"files\" is not an array", p->what);
		return STORK_EFORMAT;
	}
	n = json_array_size(files);
	r = grow(pm, n);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		struct verify_entry *e = &m->entries[m->n];

		memset(e, 0, sizeof(*e));
		r = parse_entry(p, i, json_array_get(files, i), e);
		if (r < 0) {
			free(e->path);
			free(e->target);
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
		char prefix[PATH_MAX_LEN + 1], q[QUOTE_LEN];

		if (!slash)
			continue;
		memcpy(prefix, path, (size_t)(slash - path));
		prefix[slash - path] = '\0';
		parent = find_in(m->entries, m->n, prefix);
		if (!parent)
			return entry_error(p, i, path, STORK_EFORMAT, "parent \"%s\" is missing",
					   quote(prefix, q, sizeof(q)));
		if (parent->type != VERIFY_DIR)
			return entry_error(p, i, path, STORK_EHOSTILE, "parent \"%s\" is a %s",
					   quote(prefix, q, sizeof(q)), type_name(parent->type));
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
	const json_t *v;
	const char *s, *bad;
	size_t i;
	int r;

	if (!json_is_object(j)) {
		stork_errorf("%s: not a JSON object", p->what);
		return STORK_EFORMAT;
	}
	bad = unknown_key(j, top_keys);
	if (bad) {
		char q[QUOTE_LEN];

		stork_errorf("%s: unknown key \"%s\"", p->what, quote(bad, q, 80));
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
	if (json_integer_value(v) != 1) {
		stork_errorf("%s: spec_version %" JSON_INTEGER_FORMAT
			     " is not supported (this storkfs reads 1)",
			     p->what, json_integer_value(v));
		return STORK_EFORMAT;
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
		char q[QUOTE_LEN];

		stork_errorf("%s: format \"%s\" is not dir, tar, deb or rpm", p->what,
			     quote(s, q, 80));
		return STORK_EFORMAT;
	}
	r = verify_manifest_new(json_string_value(json_object_get(j, "name")),
				json_string_value(json_object_get(j, "version")), s, &p->m);
	if (r < 0)
		return r;
	r = parse_depends(p, json_object_get(j, "depends"));
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
	if (r < 0) {
		if (r == -ENOMEM)
			stork_errorf("%s: out of memory", what);
		verify_manifest_free(p.m);
		return r;
	}
	*ret_m = p.m;
	return 0;
}

void verify_manifest_free(struct verify_manifest *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n; i++) {
		free(m->entries[i].path);
		free(m->entries[i].target);
	}
	free(m->entries);
	for (i = 0; i < m->ndepends; i++)
		depgroup_fini(&m->depends[i]);
	free(m->depends);
	free(m->name);
	free(m->version);
	free(m->format);
	free(priv(m));
}
