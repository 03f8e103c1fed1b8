/* verify/meta.c: TUF metadata files parsed into structs (verify/meta.h), strictly: every field
 * storkfs relies on is checked and named in the error. The format is in verify/README.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/meta.h"
#include "verify/name.h"

const char *const meta_role_names[META_NROLES] = {"root", "targets", "snapshot", "timestamp"};

static const char *const type_names[] = {
    [META_ROOT] = "root",
    [META_TARGETS] = "targets",
    [META_SNAPSHOT] = "snapshot",
    [META_TIMESTAMP] = "timestamp",
};

/* snprintf into a buffer meant to truncate (field names in messages). */
static void __attribute__((format(printf, 3, 4)))
fmt_into(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* A parse failure: "FILE: field F: problem". */
static int __attribute__((format(printf, 3, 4)))
bad(const char *file, const char *field, const char *fmt, ...)
{
	char problem[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	stork_errorf("%s: field %s: %s", file, field, problem);
	return STORK_EFORMAT;
}

char *meta_asprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

/* ------------------------------------------------------------------------------------------ */
/* Time */

int meta_format_time(time_t t, char out[21])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -EOVERFLOW;
	fmt_into(out, 21, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

static int digits(const char *s, size_t n, int *ret)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

int meta_parse_time(const char *s, time_t *ret_t)
{
	int year, mon, day, hour, min, sec;
	struct tm tm = {0}, back;
	time_t t;

	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z')
		return -EINVAL;
	if (digits(s, 4, &year) || digits(s + 5, 2, &mon) || digits(s + 8, 2, &day) ||
	    digits(s + 11, 2, &hour) || digits(s + 14, 2, &min) || digits(s + 17, 2, &sec))
		return -EINVAL;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 59)
		return -EINVAL;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalizes 2026-02-30 to March: refuse dates that do not exist */
	if (!gmtime_r(&t, &back) || back.tm_mday != day || back.tm_mon != mon - 1)
		return -EINVAL;
	*ret_t = t;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Field readers: each names the field in its error. */

static int get_uint(const char *file, const json_t *obj, const char *key, const char *field,
		    uint64_t min, bool required, uint64_t *ret)
{
	const json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (!v) {
		if (!required)
			return 1;
		return bad(file, field, "missing");
	}
	if (!json_is_integer(v))
		return bad(file, field, "must be an integer");
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min)
		return bad(file, field, "must be an integer of at least %" PRIu64 ", not %lld", min,
			   (long long)i);
	*ret = (uint64_t)i;
	return 0;
}

static int get_str(const char *file, const json_t *obj, const char *key, const char *field,
		   const char **ret)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return bad(file, field, "missing");
	if (!json_is_string(v))
		return bad(file, field, "must be a string");
	*ret = json_string_value(v);
	return 0;
}

static int get_obj(const char *file, const json_t *obj, const char *key, const char *field,
		   json_t **ret)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return bad(file, field, "missing");
	if (!json_is_object(v))
		return bad(file, field, "must be an object");
	*ret = v;
	return 0;
}

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* An array of unique strings. */
static int get_strv(const char *file, const json_t *obj, const char *key, const char *field,
		    char ***ret, size_t *ret_n)
{
	const json_t *v = json_object_get(obj, key), *e;
	char **out = NULL;
	size_t n, i, j;
	int r;

	if (!v)
		return bad(file, field, "missing");
	if (!json_is_array(v))
		return bad(file, field, "must be an array of strings");
	n = json_array_size(v);
	out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e)) {
			r = bad(file, field, "element %zu is not a string", i);
			goto fail;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(out[j], json_string_value(e)) == 0) {
				r = bad(file, field, "\"%s\" is listed twice", out[j]);
				goto fail;
			}
		}
		out[i] = strdup(json_string_value(e));
		if (!out[i]) {
			r = -ENOMEM;
			goto fail;
		}
	}
	*ret = out;
	*ret_n = n;
	return 0;
fail:
	free_strv(out, n);
	return r;
}

static int get_hash(const char *file, const json_t *obj, const char *field, uint8_t *ret)
{
	const json_t *v = json_object_get(obj, "sha256");
	char f[256];

	fmt_into(f, sizeof(f), "%s.sha256", field);
	if (!json_is_object(obj) || json_object_size(obj) == 0)
		return bad(file, field, "must be a non-empty object");
	if (!v)
		return bad(file, f, "missing (storkfs checks SHA-256)");
	if (!json_is_string(v) || strlen(json_string_value(v)) != 2 * VERIFY_HASH_LEN ||
	    verify_unhex(json_string_value(v), ret, VERIFY_HASH_LEN) < 0)
		return bad(file, f, "must be 64 hex digits");
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing */

static void delegation_fini(struct meta_delegation *d)
{
	free(d->name);
	free_strv(d->keyids, d->nkeyids);
	free_strv(d->paths, d->npaths);
	free_strv(d->prefixes, d->nprefixes);
	memset(d, 0, sizeof(*d));
}

static void keyring_fini(struct meta_keyring *kr)
{
	size_t i;

	for (i = 0; i < kr->n; i++)
		verify_key_free(kr->keys[i]);
	free(kr->keys);
	kr->keys = NULL;
	kr->n = 0;
}

static int parse_keyring(const char *file, const json_t *obj, const char *field,
			 struct meta_keyring *kr)
{
	const char *id;
	json_t *v;
	char f[256];
	int r;

	kr->keys = calloc(json_object_size(obj) + 1, sizeof(*kr->keys));
	if (!kr->keys)
		return -ENOMEM;
	json_object_foreach((json_t *)obj, id, v)
	{
		struct verify_key *k = NULL;

		fmt_into(f, sizeof(f), "%s.%s", field, id);
		r = verify_key_from_json(v, &k);
		if (r < 0) {
			if (r == -ENOMEM)
				return r;
			stork_error_prefix("%s: field %s", file, f);
			return r;
		}
		kr->keys[kr->n++] = k;
		/* Key ids are computed, never taken on faith: otherwise one key could be listed
		 * under two ids and count twice towards a threshold. */
		if (strcmp(verify_key_id(k), id) != 0)
			return bad(file, f, "the key id does not match the key (its id is %s)",
				   verify_key_id(k));
	}
	return 0;
}

static int parse_role_keys(const char *file, const json_t *obj, const char *field,
			   struct meta_delegation *d)
{
	char f[256];
	int r;

	fmt_into(f, sizeof(f), "%s.keyids", field);
	r = get_strv(file, obj, "keyids", f, &d->keyids, &d->nkeyids);
	if (r < 0)
		return r;
	fmt_into(f, sizeof(f), "%s.threshold", field);
	return get_uint(file, obj, "threshold", f, 1, true, &d->threshold);
}

static int parse_root(const char *file, struct meta *m)
{
	const json_t *s = m->signed_json, *v;
	json_t *keys = NULL, *roles = NULL, *ro = NULL;
	char f[256];
	int i, r;

	v = json_object_get(s, "consistent_snapshot");
	if (v && !json_is_boolean(v))
		return bad(file, "signed.consistent_snapshot", "must be true or false");
	m->consistent_snapshot = v && json_is_true(v);
	r = get_obj(file, s, "keys", "signed.keys", &keys);
	if (r < 0)
		return r;
	r = parse_keyring(file, keys, "signed.keys", &m->keys);
	if (r < 0)
		return r;
	r = get_obj(file, s, "roles", "signed.roles", &roles);
	if (r < 0)
		return r;
	if (json_object_size(roles) != META_NROLES)
		return bad(file, "signed.roles",
			   "must list exactly root, targets, snapshot, timestamp");
	for (i = 0; i < META_NROLES; i++) {
		fmt_into(f, sizeof(f), "signed.roles.%s", meta_role_names[i]);
		r = get_obj(file, roles, meta_role_names[i], f, &ro);
		if (r < 0)
			return r;
		m->roles[i].name = strdup(meta_role_names[i]);
		if (!m->roles[i].name)
			return -ENOMEM;
		r = parse_role_keys(file, ro, f, &m->roles[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_delegated_role(const char *file, const json_t *obj, const char *field,
				struct meta_delegation *d)
{
	const char *name = NULL;
	const json_t *v;
	char f[256];
	int r;

	if (!json_is_object(obj))
		return bad(file, field, "must be an object");
	fmt_into(f, sizeof(f), "%s.name", field);
	r = get_str(file, obj, "name", f, &name);
	if (r < 0)
		return r;
	r = verify_check_role_name(name);
	if (r < 0) {
		stork_error_prefix("%s: field %s", file, f);
		return r;
	}
	d->name = strdup(name);
	if (!d->name)
		return -ENOMEM;
	r = parse_role_keys(file, obj, field, d);
	if (r < 0)
		return r;
	fmt_into(f, sizeof(f), "%s.terminating", field);
	v = json_object_get(obj, "terminating");
	if (!v)
		return bad(file, f, "missing");
	if (!json_is_boolean(v))
		return bad(file, f, "must be true or false");
	d->terminating = json_is_true(v);
	r = 0;
	if (json_object_get(obj, "paths") && json_object_get(obj, "path_hash_prefixes"))
		return bad(file, field, "has both paths and path_hash_prefixes");
	if (json_object_get(obj, "paths")) {
		fmt_into(f, sizeof(f), "%s.paths", field);
		r = get_strv(file, obj, "paths", f, &d->paths, &d->npaths);
	} else if (json_object_get(obj, "path_hash_prefixes")) {
		fmt_into(f, sizeof(f), "%s.path_hash_prefixes", field);
		r = get_strv(file, obj, "path_hash_prefixes", f, &d->prefixes, &d->nprefixes);
	}
	return r;
}

static int parse_delegations(const char *file, struct meta *m, const json_t *dels)
{
	json_t *keys = NULL;
	const json_t *roles, *e;
	char f[256];
	size_t i, j;
	int r;

	if (!json_is_object(dels))
		return bad(file, "signed.delegations", "must be an object");
	r = get_obj(file, dels, "keys", "signed.delegations.keys", &keys);
	if (r < 0)
		return r;
	r = parse_keyring(file, keys, "signed.delegations.keys", &m->keys);
	if (r < 0)
		return r;
	roles = json_object_get(dels, "roles");
	if (!roles)
		return bad(file, "signed.delegations.roles",
			   "missing (succinct_roles is not supported)");
	if (!json_is_array(roles))
		return bad(file, "signed.delegations.roles", "must be an array");
	m->dels = calloc(json_array_size(roles) + 1, sizeof(*m->dels));
	if (!m->dels)
		return -ENOMEM;
	json_array_foreach(roles, i, e)
	{
		fmt_into(f, sizeof(f), "signed.delegations.roles[%zu]", i);
		m->ndels++;
		r = parse_delegated_role(file, e, f, &m->dels[i]);
		if (r < 0)
			return r;
		for (j = 0; j < i; j++)
			if (strcmp(m->dels[j].name, m->dels[i].name) == 0)
				return bad(file, f, "role \"%s\" is delegated twice",
					   m->dels[i].name);
	}
	return 0;
}

static int cmp_target(const void *a, const void *b)
{
	return strcmp(((const struct meta_target *)a)->path, ((const struct meta_target *)b)->path);
}

static int parse_targets(const char *file, struct meta *m)
{
	const json_t *s = m->signed_json, *v, *custom, *sk;
	json_t *targets = NULL;
	const char *path;
	char f[512], ff[600];
	int r;

	r = get_obj(file, s, "targets", "signed.targets", &targets);
	if (r < 0)
		return r;
	m->targets = calloc(json_object_size(targets) + 1, sizeof(*m->targets));
	if (!m->targets)
		return -ENOMEM;
	json_object_foreach(targets, path, v)
	{
		struct meta_target *t = &m->targets[m->ntargets];

		fmt_into(f, sizeof(f), "signed.targets.%s", path);
		if (!json_is_object(v))
			return bad(file, f, "must be an object");
		t->path = strdup(path);
		if (!t->path)
			return -ENOMEM;
		m->ntargets++;
		fmt_into(ff, sizeof(ff), "%s.length", f);
		r = get_uint(file, v, "length", ff, 0, true, &t->length);
		if (r < 0)
			return r;
		fmt_into(ff, sizeof(ff), "%s.hashes", f);
		r = get_hash(file, json_object_get(v, "hashes"), ff, t->hash);
		if (r < 0)
			return r;
		custom = json_object_get(v, "custom");
		if (!custom)
			continue;
		fmt_into(ff, sizeof(ff), "%s.custom", f);
		if (!json_is_object(custom))
			return bad(file, ff, "must be an object");
		sk = json_object_get(custom, "storkfs");
		if (!sk)
			continue;
		fmt_into(ff, sizeof(ff), "%s.custom.storkfs", f);
		if (!json_is_object(sk))
			return bad(file, ff, "must be an object");
		t->described = true;
		fmt_into(ff, sizeof(ff), "%s.custom.storkfs.size", f);
		r = get_uint(file, sk, "size", ff, 0, false, &t->size);
		if (r < 0)
			return r;
		fmt_into(ff, sizeof(ff), "%s.custom.storkfs.files", f);
		r = get_uint(file, sk, "files", ff, 0, false, &t->files);
		if (r < 0)
			return r;
		if (json_object_get(sk, "entries")) {
			uint64_t entries;

			fmt_into(ff, sizeof(ff), "%s.custom.storkfs.entries", f);
			r = get_uint(file, sk, "entries", ff, 0, false, &entries);
			if (r < 0)
				return r;
			t->counted = true;
		}
	}
	if (m->ntargets > 1)
		qsort(m->targets, m->ntargets, sizeof(*m->targets), cmp_target);
	v = json_object_get(s, "delegations");
	if (v)
		return parse_delegations(file, m, v);
	return 0;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct meta_file *)a)->name, ((const struct meta_file *)b)->name);
}

/* snapshot and timestamp: "meta": {"<role>.json": {"version", "length"?, "hashes"?}} */
static int parse_meta_files(const char *file, struct meta *m)
{
	const char *name;
	json_t *meta = NULL, *v, *h;
	char f[512], ff[600];
	int r;

	r = get_obj(file, m->signed_json, "meta", "signed.meta", &meta);
	if (r < 0)
		return r;
	m->files = calloc(json_object_size(meta) + 1, sizeof(*m->files));
	if (!m->files)
		return -ENOMEM;
	json_object_foreach(meta, name, v)
	{
		struct meta_file *mf = &m->files[m->nfiles];

		fmt_into(f, sizeof(f), "signed.meta.%s", name);
		if (!json_is_object(v))
			return bad(file, f, "must be an object");
		mf->name = strdup(name);
		if (!mf->name)
			return -ENOMEM;
		m->nfiles++;
		fmt_into(ff, sizeof(ff), "%s.version", f);
		r = get_uint(file, v, "version", ff, 1, true, &mf->version);
		if (r < 0)
			return r;
		fmt_into(ff, sizeof(ff), "%s.length", f);
		r = get_uint(file, v, "length", ff, 0, false, &mf->length);
		if (r < 0)
			return r;
		mf->has_length = r == 0;
		h = json_object_get(v, "hashes");
		if (h) {
			fmt_into(ff, sizeof(ff), "%s.hashes", f);
			r = get_hash(file, h, ff, mf->hash);
			if (r < 0)
				return r;
			mf->has_hash = true;
		}
	}
	if (m->nfiles > 1)
		qsort(m->files, m->nfiles, sizeof(*m->files), cmp_file);
	if (m->type == META_TIMESTAMP && !meta_find_file(m, "snapshot.json"))
		return bad(file, "signed.meta.snapshot.json", "missing");
	if (m->type == META_SNAPSHOT && !meta_find_file(m, "targets.json"))
		return bad(file, "signed.meta.targets.json", "missing");
	return 0;
}

static int parse_spec_version(const char *file, const char *sv)
{
	const char *p = sv;
	int parts = 0;

	/* python-tuf's rule: two or three dot-separated numbers, the major one ours */
	while (*p) {
		const char *start = p;

		while (*p >= '0' && *p <= '9')
			p++;
		if (p == start)
			goto bad_version;
		parts++;
		if (*p == '.')
			p++;
		else if (*p != '\0')
			goto bad_version;
		if (*p == '\0' && p[-1] == '.')
			goto bad_version;
	}
	if (parts < 2 || parts > 3)
		goto bad_version;
	if (strncmp(sv, "1.", 2) != 0)
		return bad(file, "signed.spec_version",
			   "\"%s\": only TUF specification 1.x is supported", sv);
	return 0;
bad_version:
	return bad(file, "signed.spec_version", "\"%s\" is not a version like \"1.0.31\"", sv);
}

static int parse_sigs(const char *file, struct meta *m)
{
	const json_t *sigs = json_object_get(m->json, "signatures"), *e;
	const char *keyid = NULL, *sig = NULL;
	char f[64];
	size_t i;
	int r;

	if (!sigs)
		return bad(file, "signatures", "missing");
	if (!json_is_array(sigs))
		return bad(file, "signatures", "must be an array");
	m->sigs = calloc(json_array_size(sigs) + 1, sizeof(*m->sigs));
	if (!m->sigs)
		return -ENOMEM;
	json_array_foreach(sigs, i, e)
	{
		fmt_into(f, sizeof(f), "signatures[%zu]", i);
		if (!json_is_object(e))
			return bad(file, f, "must be an object");
		fmt_into(f, sizeof(f), "signatures[%zu].keyid", i);
		r = get_str(file, e, "keyid", f, &keyid);
		if (r < 0)
			return r;
		fmt_into(f, sizeof(f), "signatures[%zu].sig", i);
		r = get_str(file, e, "sig", f, &sig);
		if (r < 0)
			return r;
		/* Lower case, as TUF writers write it: an upper-case digit would be the same
		 * signature in another spelling, a change to the file that nothing would see. */
		if (strlen(sig) != 2 * VERIFY_SIG_LEN ||
		    strspn(sig, "0123456789abcdef") != 2 * VERIFY_SIG_LEN ||
		    verify_unhex(sig, m->sigs[i].sig, VERIFY_SIG_LEN) < 0)
			return bad(file, f, "must be %d lower-case hex digits", 2 * VERIFY_SIG_LEN);
		m->sigs[i].keyid = strdup(keyid);
		if (!m->sigs[i].keyid)
			return -ENOMEM;
		m->nsigs++;
	}
	return 0;
}

int meta_parse(const void *buf, size_t len, const char *file, enum meta_type type,
	       struct meta **ret_m)
{
	struct meta *m;
	const char *s = NULL;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->type = type;
	m->file = strdup(file);
	m->raw = malloc(len ? len : 1);
	if (!m->file || !m->raw) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(m->raw, buf, len);
	m->rawlen = len;
	r = verify_json_parse(buf, len, file, &m->json);
	if (r < 0)
		goto out;
	if (!json_is_object(m->json)) {
		r = bad(file, "(top level)", "must be an object");
		goto out;
	}
	r = get_obj(file, m->json, "signed", "signed", &m->signed_json);
	if (r < 0)
		goto out;
	r = parse_sigs(file, m);
	if (r < 0)
		goto out;
	r = verify_cjson_dump(m->signed_json, &m->canon, &m->canonlen);
	if (r < 0) {
		if (r != -ENOMEM)
			r = bad(file, "signed",
				"cannot be written as canonical JSON "
				"(a real number or a string that is not UTF-8)");
		goto out;
	}

	r = get_str(file, m->signed_json, "_type", "signed._type", &s);
	if (r < 0)
		goto out;
	if (strcmp(s, type_names[type]) != 0) {
		r = bad(file, "signed._type", "is \"%s\", expected \"%s\"", s, type_names[type]);
		goto out;
	}
	r = get_str(file, m->signed_json, "spec_version", "signed.spec_version", &s);
	if (r < 0)
		goto out;
	r = parse_spec_version(file, s);
	if (r < 0)
		goto out;
	r = get_uint(file, m->signed_json, "version", "signed.version", 1, true, &m->version);
	if (r < 0)
		goto out;
	if (m->version > INT64_MAX / 2) {
		r = bad(file, "signed.version", "too large");
		goto out;
	}
	r = get_str(file, m->signed_json, "expires", "signed.expires", &s);
	if (r < 0)
		goto out;
	if (meta_parse_time(s, &m->expires) < 0) {
		r = bad(file, "signed.expires",
			"\"%s\" is not a UTC time like 2026-01-31T12:00:00Z", s);
		goto out;
	}

	switch (type) {
	case META_ROOT:
		r = parse_root(file, m);
		break;
	case META_TARGETS:
		r = parse_targets(file, m);
		break;
	case META_SNAPSHOT:
	case META_TIMESTAMP:
		r = parse_meta_files(file, m);
		break;
	}
out:
	if (r < 0) {
		meta_free(m);
		return r;
	}
	*ret_m = m;
	return 0;
}

void meta_free(struct meta *m)
{
	size_t i;

	if (!m)
		return;
	free(m->file);
	free(m->raw);
	json_decref(m->json);
	free(m->canon);
	for (i = 0; i < m->nsigs; i++)
		free(m->sigs[i].keyid);
	free(m->sigs);
	for (i = 0; i < META_NROLES; i++)
		delegation_fini(&m->roles[i]);
	keyring_fini(&m->keys);
	for (i = 0; i < m->ndels; i++)
		delegation_fini(&m->dels[i]);
	free(m->dels);
	for (i = 0; i < m->ntargets; i++)
		free(m->targets[i].path);
	free(m->targets);
	for (i = 0; i < m->nfiles; i++)
		free(m->files[i].name);
	free(m->files);
	free(m);
}

/* ------------------------------------------------------------------------------------------ */
/* Lookups */

const struct meta_target *meta_find_target(const struct meta *m, const char *path)
{
	struct meta_target key = {.path = (char *)path};

	if (!m->ntargets)
		return NULL;
	return bsearch(&key, m->targets, m->ntargets, sizeof(key), cmp_target);
}

const struct meta_file *meta_find_file(const struct meta *m, const char *name)
{
	struct meta_file key = {.name = (char *)name};

	if (!m->nfiles)
		return NULL;
	return bsearch(&key, m->files, m->nfiles, sizeof(key), cmp_file);
}

const struct meta_delegation *meta_find_delegation(const struct meta *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->ndels; i++)
		if (strcmp(m->dels[i].name, name) == 0)
			return &m->dels[i];
	return NULL;
}

struct verify_key *meta_keyring_find(const struct meta_keyring *kr, const char *keyid)
{
	size_t i;

	for (i = 0; i < kr->n; i++)
		if (strcmp(verify_key_id(kr->keys[i]), keyid) == 0)
			return kr->keys[i];
	return NULL;
}

bool meta_delegation_has_key(const struct meta_delegation *d, const char *keyid)
{
	size_t i;

	for (i = 0; i < d->nkeyids; i++)
		if (strcmp(d->keyids[i], keyid) == 0)
			return true;
	return false;
}
