/* verify/manifest.c: package manifests, built by the publisher; the checks parsing shares,
 * and verify_check_relpath, the same path rules for the paths every source is asked for.
 *
 * The manifest format is in verify/README.md: canonical JSON, files sorted by path bytewise,
 * every parent directory present, nothing below a symlink or a file. Building is lenient about
 * order and missing parents (finish fixes both); parsing (verify/manifest_parse.c) is strict
 * and refuses anything finish would have had to fix, so one package version has exactly one
 * manifest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/internal.h"
#include "verify/manifest.h"
#include "verify/name.h"
#include "verify/text.h"

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

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The ".." problem, told apart by its address by verify_check_relpath. */
static const char leaves_root[] = "path leaves the package root";

/* Whether path is a clean relative path; else its problem as a static string. */
const char *manifest_path_problem(const char *path)
{
	const char *p = path, *slash;
	size_t len;

	if (*path == '\0')
		return "empty path";
	if (has_control(path))
		return "control character";
	if (path[0] == '/')
		return "absolute path";
	if (strlen(path) > MANIFEST_PATH_MAX)
		return "path longer than 4096 bytes";
	for (;;) {
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return leaves_root;
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
	if (!verify_utf8_valid(path, strlen(path)))
		return "path is not valid UTF-8";
	return NULL;
}

int verify_check_relpath(const char *path)
{
	char q[TEXT_QUOTE_LEN];
	const char *problem = manifest_path_problem(path);

	/* Not a separator here, but one to some servers a mirror may run on (after they decode
	 * %5C); no repository path has one. */
	if (!problem && strchr(path, '\\'))
		problem = "backslash in the path";
	if (!problem)
		return 0;
	if (problem == leaves_root)
		problem = "path leaves the repository";
	stork_errorf("\"%s\": %s", text_quote(path, q, sizeof(q)), problem);
	return -EINVAL;
}

const char *manifest_target_problem(const char *target)
{
	if (!target)
		return "symlink without a target";
	if (*target == '\0')
		return "empty symlink target";
	if (has_control(target))
		return "control character in the symlink target";
	if (strlen(target) > MANIFEST_PATH_MAX)
		return "symlink target longer than 4096 bytes";
	if (!verify_utf8_valid(target, strlen(target)))
		return "symlink target is not valid UTF-8";
	return NULL;
}

const char *manifest_type_name(enum verify_ftype t)
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

bool manifest_dep_op_valid(const char *op)
{
	size_t i;

	for (i = 0; i < sizeof(dep_ops) / sizeof(dep_ops[0]); i++)
		if (strcmp(op, dep_ops[i]) == 0)
			return true;
	return false;
}

/* Dependency names and versions come from package metadata (rpm's "perl(Carp)" too), so
 * they are not held to the package name charset: printable, no spaces, bounded. */
const char *manifest_dep_field_problem(const char *s)
{
	const char *p;

	if (*s == '\0')
		return "empty";
	if (strlen(s) > DEP_FIELD_MAX_LEN)
		return "longer than 256 bytes";
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return "space or control character";
	if (!verify_utf8_valid(s, strlen(s)))
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

int manifest_grow(struct verify_manifest *m, size_t more)
{
	struct manifest *pm = priv(m);
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
	struct verify_entry *n;
	char q[TEXT_QUOTE_LEN];
	const char *problem;
	size_t at;
	int r;

	if (!e->path) {
		stork_errorf("manifest entry without a path");
		return -EINVAL;
	}
	problem = manifest_path_problem(e->path);
	if (problem) {
		stork_errorf("\"%s\": %s", text_quote(e->path, q, sizeof(q)), problem);
		return STORK_EHOSTILE;
	}
	/* Only when adding (publishing): a repository that already signs such a path stays
	 * readable. */
	problem = verify_bidi_control(e->path, &at);
	if (problem) {
		stork_errorf("\"%s\": character %s at byte %zu: a bidirectional control makes the "
			     "path display as another one; refused",
			     text_quote(e->path, q, sizeof(q)), problem, at);
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
		problem = manifest_target_problem(e->target);
		if (problem) {
			stork_errorf("\"%s\": %s", e->path, problem);
			return STORK_EHOSTILE;
		}
	}
	if (e->type == VERIFY_FILE && (e->size > INT64_MAX || e->zsize > INT64_MAX)) {
		stork_errorf("\"%s\": size %" PRIu64 " is too large", e->path, e->size);
		return STORK_ETOOBIG;
	}
	r = manifest_grow(m, 1);
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
		r = verify_entry_set_chunks(n, e->chunks, e->nchunks);
		if (r < 0) {
			free(n->path);
			return r;
		}
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

/* The array and count of a relation. */
static struct verify_depgroup **relation(struct verify_manifest *m, enum verify_relation kind,
					 size_t **ret_n)
{
	switch (kind) {
	case VERIFY_PROVIDES:
		*ret_n = &m->nprovides;
		return &m->provides;
	case VERIFY_CONFLICTS:
		*ret_n = &m->nconflicts;
		return &m->conflicts;
	case VERIFY_BREAKS:
		*ret_n = &m->nbreaks;
		return &m->breaks;
	case VERIFY_REPLACES:
		*ret_n = &m->nreplaces;
		return &m->replaces;
	default:
		*ret_n = &m->ndepends;
		return &m->depends;
	}
}

int verify_manifest_add_depgroup(struct verify_manifest *m, const struct verify_dep *alts, size_t n)
{
	return verify_manifest_add_relation(m, VERIFY_DEPENDS, alts, n);
}

int verify_manifest_add_relation(struct verify_manifest *m, enum verify_relation kind,
				 const struct verify_dep *alts, size_t n)
{
	struct verify_depgroup g = {0}, *groups, **arr;
	size_t i, *count;
	int r;

	if (n == 0) {
		stork_errorf("dependency: empty group of alternatives");
		return -EINVAL;
	}
	if (kind != VERIFY_DEPENDS && n != 1) {
		stork_errorf("relation \"%s\": alternatives (\"|\") are only for dependencies",
			     alts[0].name ? alts[0].name : "");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (!alts[i].name || manifest_dep_field_problem(alts[i].name) ||
		    (alts[i].op && !manifest_dep_op_valid(alts[i].op)) ||
		    !alts[i].op != !alts[i].version ||
		    (alts[i].version && manifest_dep_field_problem(alts[i].version))) {
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
	arr = relation(m, kind, &count);
	groups = realloc(*arr, (*count + 1) * sizeof(*groups));
	if (!groups) {
		r = -ENOMEM;
		goto fail;
	}
	*arr = groups;
	groups[(*count)++] = g;
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

const struct verify_entry *manifest_find(const struct verify_entry *entries, size_t n,
					 const char *path)
{
	struct verify_entry key = {.path = (char *)path};

	if (n == 0)
		return NULL;
	return bsearch(&key, entries, n, sizeof(*entries), entry_cmp);
}

const struct verify_entry *verify_manifest_find(const struct verify_manifest *m, const char *path)
{
	return manifest_find(m->entries, m->n, path);
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
	char q[TEXT_QUOTE_LEN], q2[TEXT_QUOTE_LEN];
	uint64_t total = 0;
	int r = 0;

	if (n > 1)
		qsort(m->entries, n, sizeof(*m->entries), entry_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(m->entries[i - 1].path, m->entries[i].path) == 0) {
			stork_errorf("duplicate path \"%s\"",
				     text_quote(m->entries[i].path, q, sizeof(q)));
			return STORK_EHOSTILE;
		}
	}
	/* Each ancestor of each entry must be a directory; collect the absent ones. */
	for (i = 0; i < n; i++) {
		const struct verify_entry *e = &m->entries[i];
		char prefix[MANIFEST_PATH_MAX + 1];
		const char *slash;

		for (slash = strchr(e->path, '/'); slash; slash = strchr(slash + 1, '/')) {
			const struct verify_entry *p;
			size_t plen = (size_t)(slash - e->path);

			memcpy(prefix, e->path,
			       plen); /* add() bounded paths to MANIFEST_PATH_MAX */
			prefix[plen] = '\0';
			p = manifest_find(m->entries, n, prefix);
			if (p && p->type != VERIFY_DIR) {
				stork_errorf("\"%s\": parent \"%s\" is a %s",
					     text_quote(e->path, q, sizeof(q)),
					     text_quote(p->path, q2, sizeof(q2)),
					     manifest_type_name(p->type));
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
		r = manifest_grow(m, nmiss);
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
		r = set(o, "type", json_string(manifest_type_name(e->type)));
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
		if (r == 0 && e->nchunks)
			r = set(o, "chunks", manifest_chunks_json(e));
	}
	if (r == 0 && e->type == VERIFY_SYMLINK)
		r = set(o, "target", str(e->target ? e->target : ""));
	if (r < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *depends_json(const struct verify_depgroup *g, size_t n)
{
	json_t *groups = json_array(), *alts = NULL, *d = NULL;
	size_t i, k;

	if (!groups)
		return NULL;
	for (i = 0; i < n; i++) {
		alts = json_array();
		if (!alts)
			goto fail;
		for (k = 0; k < g[i].n; k++) {
			const struct verify_dep *dep = &g[i].alts[k];

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
	int r, spec;

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
	/* 2 or 3 only when it says what 1 cannot, so older manifests stay as they were */
	spec = m->nprovides || m->nconflicts || m->nbreaks || m->nreplaces ? 2 : 1;
	for (i = 0; i < m->n; i++)
		if (m->entries[i].nchunks)
			spec = 3;
	if (r == 0)
		r = set(root, "spec_version", json_integer(spec));
	if (r == 0)
		r = set(root, "name", str(m->name));
	if (r == 0)
		r = set(root, "version", str(m->version));
	if (r == 0)
		r = set(root, "format", str(m->format));
	if (r == 0)
		r = set(root, "depends", depends_json(m->depends, m->ndepends));
	if (r == 0 && m->nprovides)
		r = set(root, "provides", depends_json(m->provides, m->nprovides));
	if (r == 0 && m->nconflicts)
		r = set(root, "conflicts", depends_json(m->conflicts, m->nconflicts));
	if (r == 0 && m->nbreaks)
		r = set(root, "breaks", depends_json(m->breaks, m->nbreaks));
	if (r == 0 && m->nreplaces)
		r = set(root, "replaces", depends_json(m->replaces, m->nreplaces));
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

int verify_manifest_file(const struct verify_manifest *m, const char *ext, char **ret_path)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], *buf = NULL, *path;
	size_t len = 0;
	int r;

	if (m->has_file_hash) {
		memcpy(digest, m->file_hash, VERIFY_HASH_LEN);
	} else {
		r = verify_manifest_dump(m, &buf, &len);
		if (r == 0)
			r = verify_sha256(buf, len, digest);
		free(buf);
		if (r < 0)
			return r;
	}
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	if (asprintf(&path, "targets/%s/%s.%s%s", m->name, hex, m->version, ext) < 0) {
		stork_errorf("manifest %s %s: out of memory", m->name, m->version);
		return -ENOMEM;
	}
	*ret_path = path;
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
		free(m->entries[i].chunks);
	}
	free(m->entries);
	for (i = 0; i < m->ndepends; i++)
		depgroup_fini(&m->depends[i]);
	free(m->depends);
	for (i = 0; i < m->nprovides; i++)
		depgroup_fini(&m->provides[i]);
	free(m->provides);
	for (i = 0; i < m->nconflicts; i++)
		depgroup_fini(&m->conflicts[i]);
	free(m->conflicts);
	for (i = 0; i < m->nbreaks; i++)
		depgroup_fini(&m->breaks[i]);
	free(m->breaks);
	for (i = 0; i < m->nreplaces; i++)
		depgroup_fini(&m->replaces[i]);
	free(m->replaces);
	free(m->name);
	free(m->version);
	free(m->format);
	free(priv(m));
}
