/* tests/unit/test_verify_meta.c: TUF metadata (parsing, signatures, expiry), the client
 * workflow and the repository writer, over temporary repositories. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <check.h>

#include "fs/fs.h"
#include "unit.h"
#include "verify/meta.h"
#include "verify/writer/writer.h"

#define T0   ((time_t)1795168800) /* 2026-11-20T10:00:00Z */
#define HOUR 3600
#define DAY  (24 * HOUR)

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static void write_all(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_msg(f, "create %s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

struct fix {
	char dir[64];
	char *repo;
	char *keys;
	char *root_path;
	struct verify_key *alice;
	struct verify_repo_opts o;
	struct verify_source src;
	bool src_ok;
	struct verify_client *c;
};

static struct fix F;

static void fix_setup(void)
{
	memset(&F, 0, sizeof(F));
	snprintf(F.dir, sizeof(F.dir), "/tmp/vtuf-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(F.dir));
	F.repo = unit_path_of(F.dir, "repo");
	F.keys = unit_path_of(F.dir, "keys");
	F.o.now = T0;
	ck_assert_int_eq(verify_key_generate(&F.alice), 0);
	stork_error_clear();
}

static void fix_teardown(void)
{
	verify_client_free(F.c);
	if (F.src_ok)
		verify_dir_source_fini(&F.src);
	verify_key_free(F.alice);
	nftw(F.dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(F.repo);
	free(F.keys);
	free(F.root_path);
}

static struct verify_manifest *make_manifest(const char *name, const char *version,
					     const char *content)
{
	struct verify_manifest *m = NULL;
	struct verify_entry d = {
	    .path = (char *)"usr", .type = VERIFY_DIR, .mode = 0755, .mtime = 1700000000};
	struct verify_entry e = {.path = (char *)"usr/hello",
				 .type = VERIFY_FILE,
				 .mode = 0644,
				 .mtime = 1700000000,
				 .size = strlen(content),
				 .zsize = 9};

	ck_assert_int_eq(verify_sha256(content, strlen(content), e.hash), 0);
	ck_assert_int_eq(verify_manifest_new(name, version, "dir", &m), 0);
	ck_assert_int_eq(verify_manifest_add(m, &d), 0);
	ck_assert_int_eq(verify_manifest_add(m, &e), 0);
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	return m;
}

static int publish(struct verify_key *k, const char *name, const char *version, const char *content)
{
	struct verify_manifest *m = make_manifest(name, version, content);
	int r = verify_repo_publish(F.repo, F.keys, k, m, &F.o);

	verify_manifest_free(m);
	return r;
}

static void delegate(struct verify_key *k, const char *role, const char *pattern)
{
	const char *pats[] = {pattern};
	int r = verify_repo_delegate(F.repo, F.keys, k, role, pats, 1, &F.o);

	ck_assert_msg(r == 0, "delegate: %d %s", r, stork_error_detail());
}

/* init, delegate hello to alice, publish hello 1.0 */
static void make_repo(void)
{
	int r;

	r = verify_repo_init(F.repo, F.keys, &F.o, &F.root_path);
	ck_assert_msg(r == 0, "init: %d %s", r, stork_error_detail());
	delegate(F.alice, "alice", "hello");
	r = publish(F.alice, "hello", "1.0", "hello world\n");
	ck_assert_msg(r == 0, "publish: %d %s", r, stork_error_detail());
}

/* A client pinned to 1.root.json at time `now`. */
static void client_at(time_t now)
{
	uint8_t *root;
	size_t len;
	char *p = unit_path_of(F.repo, "metadata/1.root.json");

	unit_read_all(p, &root, &len);
	free(p);
	verify_client_free(F.c);
	F.c = NULL;
	ck_assert_int_eq(verify_client_new(root, len, now, &F.c), 0);
	free(root);
	if (!F.src_ok) {
		ck_assert_int_eq(verify_dir_source_init(&F.src, F.repo), 0);
		F.src_ok = true;
	}
}

static int refresh_at(time_t now)
{
	client_at(now);
	return verify_client_refresh(F.c, &F.src);
}

static void assert_detail_has(const char *needle)
{
	ck_assert_msg(strstr(stork_error_detail(), needle), "detail \"%s\" lacks \"%s\"",
		      stork_error_detail(), needle);
}

static struct verify_key *keydir_key(const char *role)
{
	struct verify_key *k = NULL;
	char name[64], *p;

	snprintf(name, sizeof(name), "%s.key", role);
	p = unit_path_of(F.keys, name);
	ck_assert_int_eq(verify_key_load_private(p, &k), 0);
	free(p);
	return k;
}

/* The "signed" part of a repository file (new reference). */
static json_t *load_signed(const char *rel)
{
	char *p = unit_path_of(F.repo, rel);
	json_t *j, *s;
	uint8_t *buf;
	size_t len;

	unit_read_all(p, &buf, &len);
	free(p);
	ck_assert_int_eq(verify_json_parse(buf, len, rel, &j), 0);
	free(buf);
	s = json_deep_copy(json_object_get(j, "signed"));
	json_decref(j);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Sign s with keys and write it to the repository as rel; returns its length, hash in out. */
static size_t put_signed(const char *rel, const json_t *s, struct verify_key **keys, size_t n,
			 uint8_t digest[VERIFY_HASH_LEN])
{
	char *p = unit_path_of(F.repo, rel), *buf;
	size_t len;

	ck_assert_int_eq(meta_sign(s, keys, n, &buf, &len), 0);
	write_all(p, buf, len);
	if (digest)
		ck_assert_int_eq(verify_sha256(buf, len, digest), 0);
	free(buf);
	free(p);
	return len;
}

static uint64_t jversion(const json_t *s)
{
	return (uint64_t)json_integer_value(json_object_get(s, "version"));
}

static void set_int(json_t *o, const char *k, uint64_t v)
{
	ck_assert_int_eq(json_object_set_new(o, k, json_integer((json_int_t)v)), 0);
}

/* Point a new timestamp at snapshot file `snapfile` of version sv. */
static void put_timestamp(const char *snapfile, uint64_t sv)
{
	struct verify_key *tk = keydir_key("timestamp");
	json_t *ts = load_signed("metadata/timestamp.json"), *sm;
	uint8_t *buf, digest[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], *p = unit_path_of(F.repo, snapfile);
	size_t len;

	unit_read_all(p, &buf, &len);
	free(p);
	ck_assert_int_eq(verify_sha256(buf, len, digest), 0);
	free(buf);
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	sm = json_pack("{s:I, s:I, s:{s:s}}", "version", (json_int_t)sv, "length", (json_int_t)len,
		       "hashes", "sha256", hex);
	json_object_set_new(json_object_get(ts, "meta"), "snapshot.json", sm);
	set_int(ts, "version", jversion(ts) + 1);
	put_signed("metadata/timestamp.json", ts, &tk, 1, NULL);
	json_decref(ts);
	verify_key_free(tk);
}

/* A new snapshot listing role file `rolejson` at version v (or unchanged if NULL), and a
 * timestamp for it: what the writer does, by hand. */
static void bump_snapshot(const char *rolejson, uint64_t v)
{
	struct verify_key *sk = keydir_key("snapshot");
	json_t *ts = load_signed("metadata/timestamp.json"), *snap;
	uint64_t sv = jversion(json_object_get(json_object_get(ts, "meta"), "snapshot.json"));
	char rel[128];

	snprintf(rel, sizeof(rel), "metadata/%llu.snapshot.json", (unsigned long long)sv);
	snap = load_signed(rel);
	if (rolejson)
		json_object_set_new(json_object_get(snap, "meta"), rolejson,
				    json_pack("{s:I}", "version", (json_int_t)v));
	set_int(snap, "version", sv + 1);
	snprintf(rel, sizeof(rel), "metadata/%llu.snapshot.json", (unsigned long long)sv + 1);
	put_signed(rel, snap, &sk, 1, NULL);
	put_timestamp(rel, sv + 1);
	json_decref(snap);
	json_decref(ts);
	verify_key_free(sk);
}

static uint64_t role_version(const char *role)
{
	uint64_t v = 0;

	ck_assert_int_eq(verify_client_role_info(F.c, role, &v, NULL), 0);
	return v;
}

/* ------------------------------------------------------------------------------------------ */
/* each_target collectors */

struct seen {
	int ntargets;
	char paths[8][64];
	char roles[8][32];
	struct verify_target first;
	int nproblems;
	int perr[8];
	char pdetail[8][512];
	char pfile[8][128];
};

static int on_target(void *ctx, const struct verify_target *t)
{
	struct seen *s = ctx;

	if (s->ntargets == 0) {
		s->first = *t;
		s->first.path = strdup(t->path);
		s->first.name = strdup(t->name);
		s->first.version = strdup(t->version);
		s->first.role = strdup(t->role);
		s->first.keyid = strdup(t->keyid);
	}
	if (s->ntargets < 8) {
		snprintf(s->paths[s->ntargets], sizeof(s->paths[0]), "%s", t->path);
		snprintf(s->roles[s->ntargets], sizeof(s->roles[0]), "%s", t->role);
	}
	s->ntargets++;
	return 0;
}

static void on_problem(void *ctx, const char *file, int err, const char *detail)
{
	struct seen *s = ctx;

	if (s->nproblems < 8) {
		s->perr[s->nproblems] = err;
		snprintf(s->pdetail[s->nproblems], sizeof(s->pdetail[0]), "%s", detail);
		snprintf(s->pfile[s->nproblems], sizeof(s->pfile[0]), "%s", file);
	}
	s->nproblems++;
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata parsing (tcase_verify_meta) */

/* A valid signed timestamp document, as a JSON object to mutate. */
static json_t *timestamp_doc(struct verify_key *k)
{
	json_t *s = json_pack("{s:s, s:s, s:i, s:s, s:{s:{s:i}}}", "_type", "timestamp",
			      "spec_version", "1.0.31", "version", 1, "expires",
			      "2026-11-21T10:00:00Z", "meta", "snapshot.json", "version", 1);
	json_t *doc;
	char *buf;
	size_t len;

	ck_assert_int_eq(meta_sign(s, &k, 1, &buf, &len), 0);
	ck_assert_int_eq(verify_json_parse(buf, len, "t", &doc), 0);
	free(buf);
	json_decref(s);
	return doc;
}

/* Parse a document after removing or replacing one field of "signed". */
static int parse_mutated(json_t *doc, enum meta_type type, const char *field, json_t *value)
{
	json_t *d = json_deep_copy(doc);
	struct meta *m = NULL;
	char *buf;
	size_t len;
	int r;

	if (value)
		json_object_set_new(json_object_get(d, "signed"), field, value);
	else if (field)
		json_object_del(json_object_get(d, "signed"), field);
	ck_assert_int_eq(verify_cjson_dump(d, &buf, &len), 0);
	r = meta_parse(buf, len, "metadata/timestamp.json", type, &m);
	if (r < 0)
		ck_assert_msg(strstr(stork_error_detail(), "metadata/timestamp.json"),
			      "detail \"%s\" does not name the file", stork_error_detail());
	meta_free(m);
	free(buf);
	json_decref(d);
	return r;
}

/* custom.storkfs (size, files) is informational and optional: a foreign writer may leave it
 * out, and described says whether it was signed. */
START_TEST(meta_targets_custom_storkfs_is_optional_and_marked)
{
	static const char doc[] =
	    "{\"signatures\":[],\"signed\":{\"_type\":\"targets\",\"expires\":\"2030-01-01T00:00:"
	    "00Z\","
	    "\"spec_version\":\"1.0.31\",\"targets\":{"
	    "\"a/"
	    "1.json\":{\"custom\":{\"storkfs\":{\"files\":3,\"size\":12}},\"hashes\":{\"sha256\":"
	    "\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\"},\"length\":5},"
	    "\"b/1.json\":{\"hashes\":{\"sha256\":"
	    "\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\"},\"length\":5}},"
	    "\"version\":1}}";
	struct meta *m = NULL;

	ck_assert_int_eq(meta_parse(doc, sizeof(doc) - 1, "metadata/1.x.json", META_TARGETS, &m),
			 0);
	ck_assert_uint_eq(m->ntargets, 2);
	ck_assert_str_eq(m->targets[0].path, "a/1.json");
	ck_assert(m->targets[0].described);
	ck_assert_uint_eq(m->targets[0].files, 3);
	ck_assert_uint_eq(m->targets[0].size, 12);
	ck_assert(!m->targets[1].described);
	ck_assert_uint_eq(m->targets[1].files, 0);
	meta_free(m);
}
END_TEST

START_TEST(meta_parses_a_signed_timestamp)
{
	struct verify_key *k;
	json_t *doc;
	struct meta *m = NULL;
	char *buf;
	size_t len;
	const char *keyid = NULL;
	struct meta_keyring kr;
	char *ids[1];
	struct meta_delegation role = {.keyids = ids, .nkeyids = 1, .threshold = 1};

	ck_assert_int_eq(verify_key_generate(&k), 0);
	doc = timestamp_doc(k);
	ck_assert_int_eq(verify_cjson_dump(doc, &buf, &len), 0);
	ck_assert_int_eq(meta_parse(buf, len, "metadata/timestamp.json", META_TIMESTAMP, &m), 0);
	ck_assert_uint_eq(m->version, 1);
	ck_assert_int_eq(m->expires, T0 + DAY);
	ck_assert_uint_eq(meta_find_file(m, "snapshot.json")->version, 1);
	kr.keys = &k;
	kr.n = 1;
	ids[0] = (char *)verify_key_id(k);
	ck_assert_int_eq(meta_check_sigs(m, "timestamp", &kr, &role, &keyid), 0);
	ck_assert_str_eq(keyid, verify_key_id(k));
	ck_assert_int_eq(meta_check_expiry(m, "timestamp", T0 + DAY - 1), 0);
	ck_assert_int_eq(meta_check_expiry(m, "timestamp", T0 + DAY), STORK_EEXPIRED);
	assert_detail_has("metadata/timestamp.json: role timestamp expired at 2026-11-21T10:00:00Z "
			  "(now 2026-11-21T10:00:00Z)");
	meta_free(m);
	free(buf);
	json_decref(doc);
	verify_key_free(k);
}
END_TEST

START_TEST(meta_rejects_malformed_fields)
{
	struct verify_key *k;
	json_t *doc;
	struct meta *m = NULL;

	ck_assert_int_eq(verify_key_generate(&k), 0);
	doc = timestamp_doc(k);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, NULL, NULL), 0);

	ck_assert_int_eq(
	    meta_parse("{\"signed\":", 10, "metadata/timestamp.json", META_TIMESTAMP, &m),
	    STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_SNAPSHOT, NULL, NULL), STORK_EFORMAT);
	assert_detail_has("field signed._type");
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "_type", json_string("root")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "spec_version", json_string("2.0.0")),
			 STORK_EFORMAT);
	assert_detail_has("field signed.spec_version");
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "spec_version", json_string("1.x")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "spec_version", json_string("1.")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "spec_version", json_integer(1)),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "version", NULL), STORK_EFORMAT);
	assert_detail_has("field signed.version: missing");
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "version", json_integer(-3)),
			 STORK_EFORMAT);
	assert_detail_has("field signed.version");
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "version", json_integer(0)),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "version", json_string("1")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "expires", NULL), STORK_EFORMAT);
	assert_detail_has("field signed.expires: missing");
	ck_assert_int_eq(
	    parse_mutated(doc, META_TIMESTAMP, "expires", json_string("2026-11-21 10:00:00")),
	    STORK_EFORMAT);
	assert_detail_has("field signed.expires");
	ck_assert_int_eq(
	    parse_mutated(doc, META_TIMESTAMP, "expires", json_string("2026-02-30T10:00:00Z")),
	    STORK_EFORMAT);
	ck_assert_int_eq(
	    parse_mutated(doc, META_TIMESTAMP, "expires", json_string("2026-11-21T10:00:00+01:00")),
	    STORK_EFORMAT);
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "meta", json_object()), STORK_EFORMAT);
	assert_detail_has("snapshot.json");
	ck_assert_int_eq(parse_mutated(doc, META_TIMESTAMP, "meta",
				       json_pack("{s:{s:i, s:{s:s}}}", "snapshot.json", "version",
						 1, "hashes", "sha256", "abc")),
			 STORK_EFORMAT);
	json_decref(doc);
	verify_key_free(k);
}
END_TEST

/* Replace signatures[0].sig and parse. */
static int parse_with_sig(json_t *doc, json_t *sigs)
{
	json_t *d = json_deep_copy(doc);
	struct meta *m = NULL;
	char *buf;
	size_t len;
	int r;

	json_object_set_new(d, "signatures", sigs);
	ck_assert_int_eq(verify_cjson_dump(d, &buf, &len), 0);
	r = meta_parse(buf, len, "metadata/timestamp.json", META_TIMESTAMP, &m);
	meta_free(m);
	free(buf);
	json_decref(d);
	return r;
}

START_TEST(meta_rejects_malformed_signatures)
{
	struct verify_key *k;
	json_t *doc;
	char longsig[2 * VERIFY_SIG_LEN + 3];

	ck_assert_int_eq(verify_key_generate(&k), 0);
	doc = timestamp_doc(k);
	ck_assert_int_eq(parse_with_sig(doc, json_pack("[{s:s, s:s}]", "keyid", "ab", "sig", "zz")),
			 STORK_EFORMAT);
	assert_detail_has("field signatures[0].sig");
	memset(longsig, 'z', sizeof(longsig) - 3);
	longsig[sizeof(longsig) - 3] = '\0';
	ck_assert_int_eq(
	    parse_with_sig(doc, json_pack("[{s:s, s:s}]", "keyid", "ab", "sig", longsig)),
	    STORK_EFORMAT);
	memset(longsig, 'a', sizeof(longsig) - 1);
	longsig[sizeof(longsig) - 1] = '\0';
	ck_assert_int_eq(
	    parse_with_sig(doc, json_pack("[{s:s, s:s}]", "keyid", "ab", "sig", longsig)),
	    STORK_EFORMAT);
	ck_assert_int_eq(parse_with_sig(doc, json_pack("[{s:s}]", "keyid", "ab")), STORK_EFORMAT);
	ck_assert_int_eq(parse_with_sig(doc, json_pack("{}")), STORK_EFORMAT);
	assert_detail_has("field signatures");
	/* an empty list parses (and then meets no threshold) */
	ck_assert_int_eq(parse_with_sig(doc, json_pack("[]")), 0);
	json_decref(doc);
	verify_key_free(k);
}
END_TEST

/* A minimal root with one key for every role, as a "signed" object. */
static json_t *root_signed(struct verify_key *k, uint64_t version)
{
	const char *id = verify_key_id(k);
	json_t *role = json_pack("{s:[s], s:i}", "keyids", id, "threshold", 1);
	json_t *s = json_pack("{s:s, s:s, s:I, s:s, s:b, s:{s:o}, s:{s:o, s:o, s:o, s:o}}", "_type",
			      "root", "spec_version", "1.0.31", "version", (json_int_t)version,
			      "expires", "2027-11-20T10:00:00Z", "consistent_snapshot", 1, "keys",
			      id, verify_key_to_json(k), "roles", "root", json_deep_copy(role),
			      "targets", json_deep_copy(role), "snapshot", json_deep_copy(role),
			      "timestamp", json_deep_copy(role));

	json_decref(role);
	ck_assert_ptr_nonnull(s);
	return s;
}

static int parse_root_signed(json_t *s, struct verify_key *k)
{
	struct meta *m = NULL;
	char *buf;
	size_t len;
	int r;

	ck_assert_int_eq(meta_sign(s, &k, 1, &buf, &len), 0);
	r = meta_parse(buf, len, "metadata/1.root.json", META_ROOT, &m);
	meta_free(m);
	free(buf);
	return r;
}

START_TEST(meta_rejects_bad_root_keys_and_thresholds)
{
	struct verify_key *k;
	json_t *s, *key;
	const char *id;

	ck_assert_int_eq(verify_key_generate(&k), 0);
	id = verify_key_id(k);
	s = root_signed(k, 1);
	ck_assert_int_eq(parse_root_signed(s, k), 0);

	key = json_object_get(json_object_get(s, "keys"), id);
	json_object_set_new(key, "keytype", json_string("rsa"));
	ck_assert_int_lt(parse_root_signed(s, k), 0);
	ck_assert(parse_root_signed(s, k) == STORK_EUNSUPPORTED ||
		  parse_root_signed(s, k) == STORK_EFORMAT);
	assert_detail_has("metadata/1.root.json: field signed.keys.");
	json_decref(s);

	/* a key listed under an id that is not its own */
	s = root_signed(k, 1);
	key = json_deep_copy(json_object_get(json_object_get(s, "keys"), id));
	json_object_clear(json_object_get(s, "keys"));
	json_object_set_new(json_object_get(s, "keys"), "00ff", key);
	ck_assert_int_eq(parse_root_signed(s, k), STORK_EFORMAT);
	assert_detail_has("key id does not match");
	json_decref(s);

	s = root_signed(k, 1);
	json_object_set_new(json_object_get(json_object_get(s, "roles"), "snapshot"), "threshold",
			    json_integer(0));
	ck_assert_int_eq(parse_root_signed(s, k), STORK_EFORMAT);
	assert_detail_has("field signed.roles.snapshot.threshold");
	json_decref(s);

	s = root_signed(k, 1);
	json_object_del(json_object_get(s, "roles"), "timestamp");
	ck_assert_int_eq(parse_root_signed(s, k), STORK_EFORMAT);
	json_decref(s);

	s = root_signed(k, 1);
	json_object_set_new(json_object_get(json_object_get(s, "roles"), "root"), "keyids",
			    json_pack("[s, s]", id, id));
	ck_assert_int_eq(parse_root_signed(s, k), STORK_EFORMAT);
	assert_detail_has("listed twice");
	json_decref(s);
	verify_key_free(k);
}
END_TEST

START_TEST(meta_counts_each_key_once_and_only_authorized_keys)
{
	struct verify_key *k1, *k2, *k3, *both[2];
	struct meta *m = NULL;
	json_t *s, *doc, *sigs;
	char *buf, *ids[2];
	size_t len;
	struct meta_keyring kr;
	struct meta_delegation role = {.keyids = ids, .nkeyids = 2, .threshold = 2};

	ck_assert_int_eq(verify_key_generate(&k1), 0);
	ck_assert_int_eq(verify_key_generate(&k2), 0);
	ck_assert_int_eq(verify_key_generate(&k3), 0);
	both[0] = k1;
	both[1] = k2;
	kr.keys = both;
	kr.n = 2;
	ids[0] = (char *)verify_key_id(k1);
	ids[1] = (char *)verify_key_id(k2);
	s = json_pack("{s:s, s:s, s:i, s:s, s:{s:{s:i}}}", "_type", "timestamp", "spec_version",
		      "1.0", "version", 1, "expires", "2026-11-21T10:00:00Z", "meta",
		      "snapshot.json", "version", 1);

	/* k1's signature twice does not make two */
	ck_assert_int_eq(meta_sign(s, &k1, 1, &buf, &len), 0);
	ck_assert_int_eq(verify_json_parse(buf, len, "t", &doc), 0);
	free(buf);
	sigs = json_object_get(doc, "signatures");
	json_array_append_new(sigs, json_deep_copy(json_array_get(sigs, 0)));
	ck_assert_int_eq(verify_cjson_dump(doc, &buf, &len), 0);
	json_decref(doc);
	ck_assert_int_eq(meta_parse(buf, len, "metadata/timestamp.json", META_TIMESTAMP, &m), 0);
	free(buf);
	ck_assert_int_eq(meta_check_sigs(m, "timestamp", &kr, &role, NULL), STORK_EBADSIG);
	assert_detail_has("metadata/timestamp.json: 1 of 2 required signatures from role "
			  "timestamp (valid keys: ");
	meta_free(m);

	/* k1 + k3 (unauthorized) does not make two either */
	both[1] = k3;
	ck_assert_int_eq(meta_sign(s, both, 2, &buf, &len), 0);
	both[1] = k2;
	ck_assert_int_eq(meta_parse(buf, len, "metadata/timestamp.json", META_TIMESTAMP, &m), 0);
	free(buf);
	ck_assert_int_eq(meta_check_sigs(m, "timestamp", &kr, &role, NULL), STORK_EBADSIG);
	meta_free(m);

	/* k1 + k2 does */
	ck_assert_int_eq(meta_sign(s, both, 2, &buf, &len), 0);
	ck_assert_int_eq(meta_parse(buf, len, "metadata/timestamp.json", META_TIMESTAMP, &m), 0);
	free(buf);
	ck_assert_int_eq(meta_check_sigs(m, "timestamp", &kr, &role, NULL), 0);
	/* a signature over other bytes does not count */
	m->canon[5] ^= 1;
	ck_assert_int_eq(meta_check_sigs(m, "timestamp", &kr, &role, NULL), STORK_EBADSIG);
	meta_free(m);
	json_decref(s);
	verify_key_free(k1);
	verify_key_free(k2);
	verify_key_free(k3);
}
END_TEST

START_TEST(meta_time_roundtrips_and_rejects_impossible_dates)
{
	char out[21];
	time_t t;

	ck_assert_int_eq(meta_format_time(T0, out), 0);
	ck_assert_str_eq(out, "2026-11-20T10:00:00Z");
	ck_assert_int_eq(meta_parse_time(out, &t), 0);
	ck_assert_int_eq(t, T0);
	ck_assert_int_eq(meta_parse_time("2028-02-29T00:00:00Z", &t), 0);
	ck_assert_int_eq(meta_parse_time("2027-02-29T00:00:00Z", &t), -EINVAL);
	ck_assert_int_eq(meta_parse_time("2026-13-01T00:00:00Z", &t), -EINVAL);
	ck_assert_int_eq(meta_parse_time("2026-11-20T24:00:00Z", &t), -EINVAL);
	ck_assert_int_eq(meta_parse_time("2026-11-20T10:00:00", &t), -EINVAL);
	ck_assert_int_eq(meta_parse_time("2026-11-20T10:00:00.5Z", &t), -EINVAL);
	ck_assert_int_eq(meta_parse_time("+026-11-20T10:00:00Z", &t), -EINVAL);
}
END_TEST

START_TEST(meta_delegated_paths_match_per_component)
{
	char *paths[] = {(char *)"hello/*", (char *)"lib*/*"};
	struct meta_delegation d = {.name = (char *)"alice", .paths = paths, .npaths = 2};
	char *pat;

	ck_assert(meta_delegation_matches(&d, "hello/1.0.json"));
	ck_assert(meta_delegation_matches(&d, "libfoo/2.json"));
	ck_assert(!meta_delegation_matches(&d, "hello/x/1.0.json"));
	ck_assert(!meta_delegation_matches(&d, "hello"));
	ck_assert(!meta_delegation_matches(&d, "hellox/1.json"));
	ck_assert(!meta_delegation_matches(&d, "evil/1.json"));
	ck_assert(!meta_delegation_matches(&d, "lib/x/y.json"));
	pat = meta_delegation_patterns(&d);
	ck_assert_str_eq(pat, "hello/*, lib*/*");
	free(pat);
}
END_TEST

START_TEST(dir_source_reads_caps_and_refuses_dotdot)
{
	struct verify_source src;
	uint8_t *buf = NULL;
	size_t len = 0;
	char *p;

	p = unit_path_of(F.dir, "f.json");
	write_all(p, "0123456789", 10);
	free(p);
	ck_assert_int_eq(verify_dir_source_init(&src, F.dir), 0);
	ck_assert_str_eq(src.describe(src.ctx), F.dir);
	ck_assert_int_eq(src.get(src.ctx, "f.json", 10, &buf, &len), 0);
	ck_assert_uint_eq(len, 10);
	ck_assert_int_eq(memcmp(buf, "0123456789", 10), 0);
	free(buf);
	ck_assert_int_eq(src.get(src.ctx, "f.json", 9, &buf, &len), STORK_ETOOBIG);
	assert_detail_has("f.json");
	ck_assert_int_eq(src.get(src.ctx, "missing.json", 9, &buf, &len), -ENOENT);
	assert_detail_has("missing.json");
	ck_assert_int_eq(src.get(src.ctx, "../f.json", 100, &buf, &len), -EINVAL);
	ck_assert_int_eq(src.get(src.ctx, "a/../../f.json", 100, &buf, &len), -EINVAL);
	ck_assert_int_eq(src.get(src.ctx, "/etc/passwd", 100, &buf, &len), -EINVAL);
	/* "." is refused by verify_check_relpath before anything is opened; a directory is
	 * not a file. */
	ck_assert_int_eq(src.get(src.ctx, ".", 100, &buf, &len), -EINVAL);
	p = unit_path_of(F.dir, "sub");
	ck_assert_int_eq(mkdir(p, 0755), 0);
	ck_assert_int_eq(src.get(src.ctx, "sub", 100, &buf, &len), -EISDIR);
	ck_assert_int_eq(rmdir(p), 0);
	free(p);
	verify_dir_source_fini(&src);
}
END_TEST

static int count_bytes(void *ctx, const void *buf, size_t len)
{
	*(size_t *)ctx += len;
	return 0;
}

START_TEST(dir_source_streams_with_cap)
{
	struct verify_source src;
	size_t n = 0;
	char *p, *big = malloc(200000);

	memset(big, 'x', 200000);
	p = unit_path_of(F.dir, "big");
	write_all(p, big, 200000);
	free(p);
	free(big);
	ck_assert_int_eq(verify_dir_source_init(&src, F.dir), 0);
	ck_assert_int_eq(src.stream(src.ctx, "big", 200000, count_bytes, &n), 0);
	ck_assert_uint_eq(n, 200000);
	n = 0;
	ck_assert_int_eq(src.stream(src.ctx, "big", 100000, count_bytes, &n), STORK_ETOOBIG);
	ck_assert_uint_le(n, 100000);
	ck_assert_int_eq(src.stream(src.ctx, "../big", 1, count_bytes, &n), -EINVAL);
	verify_dir_source_fini(&src);
}
END_TEST

TCase *tcase_verify_meta(void)
{
	TCase *tc = tcase_create("verify_meta");

	tcase_add_checked_fixture(tc, fix_setup, fix_teardown);
	tcase_add_test(tc, meta_parses_a_signed_timestamp);
	tcase_add_test(tc, meta_targets_custom_storkfs_is_optional_and_marked);
	tcase_add_test(tc, meta_rejects_malformed_fields);
	tcase_add_test(tc, meta_rejects_malformed_signatures);
	tcase_add_test(tc, meta_rejects_bad_root_keys_and_thresholds);
	tcase_add_test(tc, meta_counts_each_key_once_and_only_authorized_keys);
	tcase_add_test(tc, meta_time_roundtrips_and_rejects_impossible_dates);
	tcase_add_test(tc, meta_delegated_paths_match_per_component);
	tcase_add_test(tc, dir_source_reads_caps_and_refuses_dotdot);
	tcase_add_test(tc, dir_source_streams_with_cap);
	return tc;
}

/* ------------------------------------------------------------------------------------------ */
/* Writer and client (tcase_verify_repo) */

START_TEST(repo_publish_then_client_verifies_everything)
{
	struct verify_target t = {0};
	struct verify_manifest *m = NULL;
	struct seen s = {0};
	struct stat st;
	char *p;
	int r;

	make_repo();
	p = unit_path_of(F.keys, "root.key");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	free(p);
	ck_assert_int_eq(stat(F.keys, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	p = unit_path_of(F.repo, "metadata/1.root.json");
	ck_assert_str_eq(F.root_path, p);
	free(p);

	r = refresh_at(T0 + HOUR);
	ck_assert_msg(r == 0, "refresh: %d %s", r, stork_error_detail());
	ck_assert_uint_eq(role_version("root"), 1);
	ck_assert_uint_eq(role_version("targets"), 2);
	ck_assert_uint_eq(role_version("snapshot"), 3);
	ck_assert_uint_eq(role_version("timestamp"), 3);

	r = verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s);
	ck_assert_msg(r == 0, "each: %d %s", r, stork_error_detail());
	ck_assert_int_eq(s.nproblems, 0);
	ck_assert_int_eq(s.ntargets, 1);
	ck_assert_str_eq(s.first.path, "hello/1.0.json");
	ck_assert_str_eq(s.first.name, "hello");
	ck_assert_str_eq(s.first.version, "1.0");
	ck_assert_str_eq(s.first.role, "alice");
	ck_assert_str_eq(s.first.keyid, verify_key_id(F.alice));
	ck_assert(s.first.described);
	ck_assert(s.first.counted);
	ck_assert_uint_eq(s.first.files, 1); /* regular files; the manifest has 2 entries */
	ck_assert_uint_eq(s.first.size, strlen("hello world\n"));
	verify_target_fini(&s.first);

	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/1.0.json", &t), 0);
	ck_assert_str_eq(t.role, "alice");
	r = verify_client_fetch_manifest(F.c, &F.src, &t, &m);
	ck_assert_msg(r == 0, "fetch: %d %s", r, stork_error_detail());
	ck_assert_str_eq(m->name, "hello");
	ck_assert_str_eq(m->version, "1.0");
	ck_assert_ptr_nonnull(verify_manifest_find(m, "usr/hello"));
	verify_manifest_free(m);
	verify_target_fini(&t);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/2.0.json", &t), -ENOENT);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "other/1.0.json", &t), -ENOENT);
}
END_TEST

START_TEST(repo_second_publish_bumps_role_and_keeps_first)
{
	struct seen s = {0};

	make_repo();
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), 0);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("snapshot"), 4);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	ck_assert_int_eq(s.ntargets, 2);
	verify_target_fini(&s.first);
	ck_assert_int_eq(access("/dev/null", F_OK), 0);
	{
		char *p = unit_path_of(F.repo, "metadata/2.alice.json");

		ck_assert_int_eq(access(p, F_OK), 0);
		free(p);
	}
}
END_TEST

START_TEST(repo_publish_outside_patterns_is_refused)
{
	struct verify_key *bob;

	make_repo();
	ck_assert_int_eq(publish(F.alice, "other", "1.0", "x"), STORK_EPATTERN);
	assert_detail_has("hello");
	assert_detail_has("other");
	ck_assert_int_eq(verify_key_generate(&bob), 0);
	ck_assert_int_eq(publish(bob, "hello", "1.1", "x"), STORK_EPATTERN);
	assert_detail_has("repo delegate");
	verify_key_free(bob);
	/* nothing was written for the refused publishes */
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("snapshot"), 3);
}
END_TEST

START_TEST(repo_republish_identical_is_noop_and_different_is_refused)
{
	struct verify_target t;
	struct verify_manifest *m = NULL;
	char hex[VERIFY_HASH_HEX], rel[256], *p;

	make_repo();
	ck_assert_int_eq(publish(F.alice, "hello", "1.0", "hello world\n"), 1);
	/* a lost manifest file is put back by publishing the same content again */
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/1.0.json", &t), 0);
	verify_hex(t.hash, VERIFY_HASH_LEN, hex);
	snprintf(rel, sizeof(rel), "targets/hello/%s.1.0.json", hex);
	p = unit_path_of(F.repo, rel);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(publish(F.alice, "hello", "1.0", "hello world\n"), 1);
	ck_assert_int_eq(verify_client_fetch_manifest(F.c, &F.src, &t, &m), 0);
	verify_manifest_free(m);
	verify_target_fini(&t);
	free(p);
	ck_assert_int_eq(publish(F.alice, "hello", "1.0", "other content\n"), -EEXIST);
	assert_detail_has("hello 1.0 is already published with different content; publish a new "
			  "version");
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("snapshot"), 3);
	ck_assert_uint_eq(role_version("timestamp"), 3);
}
END_TEST

START_TEST(repo_init_refuses_keys_inside_and_existing_repo)
{
	char *inside = unit_path_of(F.repo, "keys"), *rp = NULL;
	struct stat st;

	ck_assert_int_eq(verify_repo_init(F.repo, inside, &F.o, &rp), -EINVAL);
	assert_detail_has("inside the repository");
	ck_assert_int_ne(stat(inside, &st), 0);
	free(inside);
	ck_assert_int_eq(verify_repo_init(F.repo, F.keys, &F.o, &F.root_path), 0);
	free(F.keys);
	F.keys = unit_path_of(F.dir, "keys2");
	ck_assert_int_eq(verify_repo_init(F.repo, F.keys, &F.o, &rp), -EEXIST);
	assert_detail_has("already a repository");
	ck_assert_int_ne(stat(F.keys, &st), 0);
}
END_TEST

START_TEST(repo_delegate_checks_names_and_keys)
{
	struct verify_key *bob;
	const char *bad[] = {"hel/lo"};
	const char *two[] = {"foo", "lib*"};

	make_repo();
	ck_assert_int_eq(verify_key_generate(&bob), 0);
	ck_assert_int_eq(verify_repo_delegate(F.repo, F.keys, bob, "alice", two, 2, &F.o), -EEXIST);
	ck_assert_int_eq(verify_repo_delegate(F.repo, F.keys, bob, "Bob!", two, 2, &F.o),
			 STORK_ENAME);
	ck_assert_int_eq(verify_repo_delegate(F.repo, F.keys, bob, "bob", bad, 1, &F.o),
			 STORK_ENAME);
	/* adding patterns to alice's role, then re-adding them is a no-op */
	ck_assert_int_eq(verify_repo_delegate(F.repo, F.keys, F.alice, "alice", two, 2, &F.o), 0);
	ck_assert_int_eq(verify_repo_delegate(F.repo, F.keys, F.alice, "alice", two, 2, &F.o), 0);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("targets"), 3);
	ck_assert_uint_eq(role_version("snapshot"), 4);
	ck_assert_int_eq(publish(F.alice, "libfoo", "1", "x"), 0);
	ck_assert_int_eq(publish(F.alice, "foo", "1", "x"), 0);
	verify_key_free(bob);
}
END_TEST

START_TEST(repo_refresh_resigns_and_cleans_old_temporary_files)
{
	char *old = NULL, *young = NULL, *objdir;
	struct timespec ts[2] = {{.tv_sec = time(NULL) - 2 * HOUR},
				 {.tv_sec = time(NULL) - 2 * HOUR}};
	time_t exp;

	make_repo();
	objdir = unit_path_of(F.repo, "objects/ab");
	ck_assert_int_eq(mkdir(objdir, 0755), 0);
	old = unit_path_of(objdir, ".tmp-old123");
	young = unit_path_of(F.repo, "metadata/.tmp-new123");
	write_all(old, "x", 1);
	write_all(young, "x", 1);
	ck_assert_int_eq(utimensat(AT_FDCWD, old, ts, 0), 0);
	F.o.now = T0 + 5 * DAY;
	ck_assert_int_eq(verify_repo_refresh(F.repo, F.keys, &F.o), 0);
	ck_assert_int_ne(access(old, F_OK), 0);
	ck_assert_int_eq(access(young, F_OK), 0);
	ck_assert_int_eq(refresh_at(T0 + 5 * DAY + HOUR), 0);
	ck_assert_uint_eq(role_version("snapshot"), 4);
	ck_assert_uint_eq(role_version("timestamp"), 4);
	ck_assert_int_eq(verify_client_role_info(F.c, "timestamp", NULL, &exp), 0);
	ck_assert_int_eq(exp, T0 + 6 * DAY);
	free(old);
	free(young);
	free(objdir);
}
END_TEST

START_TEST(client_rejects_expired_timestamp)
{
	make_repo();
	ck_assert_int_eq(refresh_at(T0 + 2 * DAY), STORK_EEXPIRED);
	assert_detail_has("metadata/timestamp.json: role timestamp expired at "
			  "2026-11-21T10:00:00Z (now 2026-11-22T10:00:00Z)");
}
END_TEST

START_TEST(client_rejects_expired_snapshot)
{
	F.o.timestamp_expiry = 30 * DAY;
	make_repo();
	ck_assert_int_eq(refresh_at(T0 + 8 * DAY), STORK_EEXPIRED);
	assert_detail_has("metadata/3.snapshot.json: role snapshot expired");
}
END_TEST

START_TEST(client_rejects_expired_targets)
{
	F.o.timestamp_expiry = 30 * DAY;
	F.o.snapshot_expiry = 30 * DAY;
	F.o.targets_expiry = 10 * DAY;
	make_repo();
	ck_assert_int_eq(refresh_at(T0 + 11 * DAY), STORK_EEXPIRED);
	assert_detail_has("metadata/2.targets.json: role targets expired");
}
END_TEST

START_TEST(client_rejects_expired_root)
{
	F.o.timestamp_expiry = 30 * DAY;
	F.o.snapshot_expiry = 30 * DAY;
	F.o.root_expiry = DAY;
	make_repo();
	ck_assert_int_eq(refresh_at(T0 + 2 * DAY), STORK_EEXPIRED);
	assert_detail_has("metadata/1.root.json: role root expired");
}
END_TEST

START_TEST(client_reports_expired_delegated_role)
{
	struct seen s = {0};
	const char *pats[] = {"other"};

	F.o.timestamp_expiry = 30 * DAY;
	F.o.snapshot_expiry = 30 * DAY;
	F.o.targets_expiry = 10 * DAY;
	make_repo();
	/* re-sign the top-level targets later; alice's role keeps its expiry */
	F.o.now = T0 + 5 * DAY;
	ck_assert_int_eq(verify_repo_delegate(F.repo, F.keys, F.alice, "alice", pats, 1, &F.o), 0);
	ck_assert_int_eq(refresh_at(T0 + 12 * DAY), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s),
			 STORK_EEXPIRED);
	ck_assert_int_eq(s.ntargets, 0);
	ck_assert_int_eq(s.nproblems, 1);
	ck_assert_str_eq(s.pfile[0], "metadata/1.alice.json");
	ck_assert_msg(strstr(s.pdetail[0], "role alice expired"), "%s", s.pdetail[0]);
	assert_detail_has("role alice expired");
}
END_TEST

START_TEST(client_rejects_timestamp_signed_by_wrong_key)
{
	struct verify_key *k;
	json_t *ts;

	make_repo();
	ck_assert_int_eq(verify_key_generate(&k), 0);
	ts = load_signed("metadata/timestamp.json");
	set_int(ts, "version", jversion(ts) + 1);
	put_signed("metadata/timestamp.json", ts, &k, 1, NULL);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EBADSIG);
	assert_detail_has("metadata/timestamp.json: 0 of 1 required signatures from role "
			  "timestamp (valid keys: ");
	json_decref(ts);
	verify_key_free(k);
}
END_TEST

START_TEST(client_rejects_snapshot_not_matching_timestamp)
{
	char *p = NULL;
	uint8_t *buf;
	size_t len;

	make_repo();
	/* same length, one byte of a signature changed: the hash catches it first */
	p = unit_path_of(F.repo, "metadata/3.snapshot.json");
	unit_read_all(p, &buf, &len);
	{
		char *sig = strstr((char *)buf, "\"sig\":\"");

		ck_assert_ptr_nonnull(sig);
		sig[7] = sig[7] == '0' ? '1' : '0';
	}
	write_all(p, buf, len);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EBADHASH);
	assert_detail_has("metadata/3.snapshot.json: SHA-256");
	/* a longer file is refused on its length */
	buf[len - 1] = ' ';
	write_all(p, buf, len);
	{
		FILE *f = fopen(p, "ab");

		fputs("}", f);
		fclose(f);
	}
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EBADLEN);
	assert_detail_has("metadata/3.snapshot.json");
	free(buf);
	free(p);
}
END_TEST

START_TEST(client_rejects_snapshot_version_other_than_timestamps)
{
	struct verify_key *sk;
	json_t *snap;

	make_repo();
	/* 4.snapshot.json that says version 3, and a timestamp pointing at it */
	sk = keydir_key("snapshot");
	snap = load_signed("metadata/3.snapshot.json");
	put_signed("metadata/4.snapshot.json", snap, &sk, 1, NULL);
	put_timestamp("metadata/4.snapshot.json", 4);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EVERSION);
	assert_detail_has("metadata/4.snapshot.json: version 3");
	json_decref(snap);
	verify_key_free(sk);
}
END_TEST

START_TEST(client_rejects_oversized_timestamp)
{
	char *p, *big;
	size_t n = VERIFY_MAX_TIMESTAMP_LEN + 1;

	make_repo();
	p = unit_path_of(F.repo, "metadata/timestamp.json");
	big = malloc(n);
	memset(big, ' ', n);
	write_all(p, big, n);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_ETOOBIG);
	assert_detail_has("metadata/timestamp.json");
	free(big);
	free(p);
}
END_TEST

START_TEST(client_rejects_rollback_of_timestamp_and_snapshot)
{
	char *p = unit_path_of(F.repo, "metadata/timestamp.json");
	uint8_t *old;
	size_t len;

	make_repo();
	unit_read_all(p, &old, &len);
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), 0);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("timestamp"), 4);
	/* a newer snapshot that lists an older alice */
	bump_snapshot("alice.json", 1);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), STORK_EROLLBACK);
	assert_detail_has("metadata/5.snapshot.json: alice.json version 1 is older than the "
			  "trusted version 2");
	/* the same client sees an older timestamp again; the failed refresh above swapped
	 * nothing in, so timestamp 4 is still the trusted one */
	write_all(p, old, len);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), STORK_EROLLBACK);
	assert_detail_has("metadata/timestamp.json: version 3 is older than the trusted version 4");
	/* a fresh client has nothing to compare with */
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	free(old);
	free(p);
}
END_TEST

START_TEST(client_rejects_bad_manifest_bytes)
{
	struct verify_target t = {0};
	struct verify_manifest *m = NULL;
	char hex[VERIFY_HASH_HEX], rel[256], *p;
	uint8_t *buf;
	size_t len;

	make_repo();
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/1.0.json", &t), 0);
	verify_hex(t.hash, VERIFY_HASH_LEN, hex);
	snprintf(rel, sizeof(rel), "targets/hello/%s.1.0.json", hex);
	p = unit_path_of(F.repo, rel);
	unit_read_all(p, &buf, &len);
	ck_assert_uint_eq(len, t.length);

	buf[len - 2] ^= 1;
	write_all(p, buf, len);
	ck_assert_int_eq(verify_client_fetch_manifest(F.c, &F.src, &t, &m), STORK_EBADHASH);
	assert_detail_has(rel);
	buf[len - 2] ^= 1;
	write_all(p, buf, len - 1);
	ck_assert_int_eq(verify_client_fetch_manifest(F.c, &F.src, &t, &m), STORK_EBADLEN);
	assert_detail_has(rel);
	{
		char *longer = malloc(len + 1);

		memcpy(longer, buf, len);
		longer[len] = ' ';
		write_all(p, longer, len + 1);
		free(longer);
	}
	ck_assert_int_eq(verify_client_fetch_manifest(F.c, &F.src, &t, &m), STORK_EBADLEN);
	unlink(p);
	ck_assert_int_eq(verify_client_fetch_manifest(F.c, &F.src, &t, &m), -ENOENT);
	write_all(p, buf, len);
	ck_assert_int_eq(verify_client_fetch_manifest(F.c, &F.src, &t, &m), 0);
	verify_manifest_free(m);
	verify_target_fini(&t);
	free(buf);
	free(p);
}
END_TEST

START_TEST(client_reports_targets_outside_delegated_patterns)
{
	struct seen s = {0};
	struct verify_target t;
	json_t *role, *entry;

	make_repo();
	/* alice signs a target outside hello/STAR, and a target that is not name/version */
	role = load_signed("metadata/1.alice.json");
	entry = json_deep_copy(json_object_get(json_object_get(role, "targets"), "hello/1.0.json"));
	json_object_set(json_object_get(role, "targets"), "evil/1.json", entry);
	json_object_set_new(json_object_get(role, "targets"), "hello/x/1.json", entry);
	set_int(role, "version", 2);
	put_signed("metadata/2.alice.json", role, &F.alice, 1, NULL);
	bump_snapshot("alice.json", 2);

	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s),
			 STORK_EPATTERN);
	ck_assert_int_eq(s.ntargets, 1);
	ck_assert_str_eq(s.paths[0], "hello/1.0.json");
	ck_assert_int_eq(s.nproblems, 2);
	ck_assert_int_eq(s.perr[0], STORK_EPATTERN);
	ck_assert_str_eq(s.pfile[0], "metadata/2.alice.json");
	ck_assert_str_eq(s.pdetail[0], "metadata/2.alice.json: target \"evil/1.json\" is outside "
				       "alice's delegated patterns hello/*");
	ck_assert_int_eq(s.perr[1], STORK_EPATTERN);
	assert_detail_has("evil/1.json");
	verify_target_fini(&s.first);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "evil/1.json", &t), -ENOENT);
	json_decref(role);
}
END_TEST

START_TEST(client_reports_target_names_outside_charset)
{
	struct seen s = {0};
	json_t *role, *entry;
	char *paths[] = {(char *)"*/*"};

	make_repo();
	/* widen alice's delegation by hand so that only the name check stops the target */
	{
		struct verify_key *tk = keydir_key("targets");
		json_t *tg = load_signed("metadata/2.targets.json");
		json_t *r0 =
		    json_array_get(json_object_get(json_object_get(tg, "delegations"), "roles"), 0);

		json_object_set_new(r0, "paths", json_pack("[s]", paths[0]));
		set_int(tg, "version", 3);
		put_signed("metadata/3.targets.json", tg, &tk, 1, NULL);
		bump_snapshot("targets.json", 3);
		json_decref(tg);
		verify_key_free(tk);
	}
	role = load_signed("metadata/1.alice.json");
	entry = json_deep_copy(json_object_get(json_object_get(role, "targets"), "hello/1.0.json"));
	json_object_set_new(json_object_get(role, "targets"), "Bad Name/1.json", entry);
	set_int(role, "version", 2);
	put_signed("metadata/2.alice.json", role, &F.alice, 1, NULL);
	bump_snapshot("alice.json", 2);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s),
			 STORK_ENAME);
	ck_assert_int_eq(s.ntargets, 1);
	ck_assert_int_eq(s.nproblems, 1);
	ck_assert_int_eq(s.perr[0], STORK_ENAME);
	ck_assert_msg(strstr(s.pdetail[0], "metadata/2.alice.json"), "%s", s.pdetail[0]);
	verify_target_fini(&s.first);
	json_decref(role);
}
END_TEST

START_TEST(client_first_role_in_search_order_wins)
{
	struct verify_key *bob;
	struct verify_target t;
	struct seen s = {0};

	make_repo();
	ck_assert_int_eq(verify_key_generate(&bob), 0);
	delegate(bob, "bob", "hello");
	/* The writer refuses a version another role signs first (clients would never see it) */
	ck_assert_int_eq(publish(bob, "hello", "1.0", "bob's\n"), STORK_EPATTERN);
	ck_assert_msg(strstr(stork_error_detail(), "already signed in role alice"), "%s",
		      stork_error_detail());
	/* ... which other writers may not do: the client still takes the first role. */
	F.o.allow_shadowed = true;
	ck_assert_int_eq(publish(bob, "hello", "1.0", "bob's\n"), 0);
	F.o.allow_shadowed = false;
	ck_assert_int_eq(publish(bob, "hello", "3.0", "bob's\n"), 0);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	ck_assert_int_eq(s.ntargets, 2);
	ck_assert_str_eq(s.paths[0], "hello/1.0.json");
	ck_assert_str_eq(s.roles[0], "alice");
	ck_assert_str_eq(s.paths[1], "hello/3.0.json");
	ck_assert_str_eq(s.roles[1], "bob");
	verify_target_fini(&s.first);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/1.0.json", &t), 0);
	ck_assert_str_eq(t.role, "alice");
	verify_target_fini(&t);
	verify_key_free(bob);
}
END_TEST

/* "key NAME ed25519 HEX" for a key. */
static void policy_key_line(char *buf, size_t len, const char *name, const struct verify_key *k)
{
	json_t *j = verify_key_to_json(k);

	snprintf(buf, len, "key %s ed25519 %s\n", name,
		 json_string_value(json_object_get(json_object_get(j, "keyval"), "public")));
	json_decref(j);
}

static struct verify_policy *policy_of(const char *text)
{
	struct verify_policy *p = NULL;
	int r = verify_policy_parse("slice.policy", text, strlen(text), NULL, &p);

	ck_assert_msg(r == 0, "policy: %d %s", r, stork_error_detail());
	return p;
}

static void decide_ok(struct verify_policy *p, const char *name, const char *version, bool accepted,
		      unsigned line, const char *why_has)
{
	struct verify_decision d;
	int r = verify_client_decide(F.c, &F.src, p, name, version, fs_version_cmp, &d);

	ck_assert_msg(r == 0, "decide %s %s: %d %s", name, version, r, stork_error_detail());
	ck_assert_msg(d.accepted == accepted, "%s %s: %s", name, version, d.why);
	ck_assert_uint_eq(d.rule->line, line);
	ck_assert_msg(strstr(d.why, why_has), "why \"%s\" lacks \"%s\"", d.why, why_has);
	verify_decision_fini(&d);
}

/* alice signs hello (role alice), bob signs tools 1.0 and 2.0 (role bob). */
static struct verify_key *two_publishers(void)
{
	struct verify_key *bob;

	make_repo();
	ck_assert_int_eq(verify_key_generate(&bob), 0);
	delegate(bob, "bob", "tools");
	ck_assert_int_eq(publish(bob, "tools", "1.0", "t1\n"), 0);
	ck_assert_int_eq(publish(bob, "tools", "2.0", "t2\n"), 0);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	return bob;
}

START_TEST(policy_decides_by_first_rule_pins_and_pinned_role)
{
	struct verify_key *bob = two_publishers();
	struct verify_policy *p;
	struct seen s = {0};
	char text[1024], ka[200];

	policy_key_line(ka, sizeof(ka), "alice", F.alice);
	snprintf(text, sizeof(text),
		 "%s"
		 "trust hello role alice keys alice\n"
		 "pin tools < 2.0\n"
		 "trust tools delegated\n",
		 ka);
	p = policy_of(text);
	decide_ok(p, "hello", "1.0", true, 2, "signed in role alice");
	decide_ok(p, "tools", "1.0", true, 4, "slice.policy:4");
	decide_ok(p, "tools", "2.0", false, 3, "outside the versions");
	decide_ok(p, "other", "1.0", false, 0, "no rule of the policy matches other");
	/* The walk shows exactly what decide accepts. */
	ck_assert_int_eq(verify_client_each_accepted(F.c, &F.src, p, fs_version_cmp, on_target, &s,
						     on_problem, &s),
			 0);
	ck_assert_int_eq(s.ntargets, 2);
	ck_assert_str_eq(s.paths[0], "tools/1.0.json");
	ck_assert_str_eq(s.roles[0], "bob");
	ck_assert_str_eq(s.paths[1], "hello/1.0.json");
	ck_assert_str_eq(s.roles[1], "alice");
	verify_target_fini(&s.first);
	verify_policy_free(p);
	verify_key_free(bob);
}
END_TEST

START_TEST(policy_refused_key_and_wrong_pinned_key_refuse)
{
	struct verify_key *bob = two_publishers();
	struct verify_policy *p;
	struct verify_decision d;
	struct seen s = {0};
	char text[1024], kb[200];

	policy_key_line(kb, sizeof(kb), "bob", bob);
	snprintf(text, sizeof(text), "%srefuse key bob\ntrust * delegated\n", kb);
	p = policy_of(text);
	decide_ok(p, "tools", "1.0", false, 2, "refuses");
	decide_ok(p, "hello", "1.0", true, 3, "role alice");
	ck_assert_int_eq(verify_client_each_accepted(F.c, &F.src, p, fs_version_cmp, on_target, &s,
						     on_problem, &s),
			 0);
	ck_assert_int_eq(s.ntargets, 1);
	ck_assert_str_eq(s.paths[0], "hello/1.0.json");
	verify_target_fini(&s.first);
	verify_policy_free(p);

	/* TAP 13: the slice pins bob's key for role alice: alice's own signature does not do. */
	snprintf(text, sizeof(text), "%strust hello role alice keys bob\n", kb);
	p = policy_of(text);
	ck_assert_int_eq(verify_client_decide(F.c, &F.src, p, "hello", "1.0", fs_version_cmp, &d),
			 STORK_EBADSIG);
	assert_detail_has("slice.policy:2: pinned role alice");
	verify_policy_free(p);
	verify_key_free(bob);
}
END_TEST

START_TEST(client_terminating_delegation_stops_the_search)
{
	struct verify_key *bob, *tk;
	struct verify_target t;
	struct seen s = {0};
	json_t *tg;

	make_repo();
	ck_assert_int_eq(verify_key_generate(&bob), 0);
	delegate(bob, "bob", "hello");
	ck_assert_int_eq(publish(bob, "hello", "3.0", "bob's\n"), 0);
	/* make alice's delegation terminating: bob can no longer provide hello/ targets */
	tk = keydir_key("targets");
	tg = load_signed("metadata/3.targets.json");
	json_object_set_new(
	    json_array_get(json_object_get(json_object_get(tg, "delegations"), "roles"), 0),
	    "terminating", json_true());
	set_int(tg, "version", 4);
	put_signed("metadata/4.targets.json", tg, &tk, 1, NULL);
	bump_snapshot("targets.json", 4);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/3.0.json", &t), -ENOENT);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	ck_assert_int_eq(s.ntargets, 1);
	ck_assert_str_eq(s.paths[0], "hello/1.0.json");
	verify_target_fini(&s.first);
	json_decref(tg);
	verify_key_free(tk);
	verify_key_free(bob);
}
END_TEST

START_TEST(client_reports_listed_role_file_that_is_missing)
{
	struct seen s = {0};
	struct verify_target t;
	char *p, *moved;

	make_repo();
	p = unit_path_of(F.repo, "metadata/1.alice.json");
	moved = unit_path_of(F.dir, "1.alice.json");
	ck_assert_int_eq(rename(p, moved), 0);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	/* listed in the snapshot, so not "nothing published yet" */
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s),
			 STORK_EMISSING);
	ck_assert_int_eq(s.ntargets, 0);
	ck_assert_int_eq(s.nproblems, 1);
	ck_assert_str_eq(s.pfile[0], "metadata/1.alice.json");
	ck_assert_str_eq(s.pdetail[0], "metadata/1.alice.json: absent, but "
				       "metadata/3.snapshot.json lists alice.json version 1");
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/1.0.json", &t),
			 STORK_EMISSING);
	/* nor does the writer sign a version 1 over it */
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), STORK_EMISSING);
	ck_assert_int_eq(rename(moved, p), 0);
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), 0);
	free(p);
	free(moved);
}
END_TEST

START_TEST(client_skips_delegated_role_without_publications)
{
	struct verify_key *bob;
	struct seen s = {0};

	make_repo();
	ck_assert_int_eq(verify_key_generate(&bob), 0);
	delegate(bob, "bob", "lib*");
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	ck_assert_int_eq(s.ntargets, 1);
	ck_assert_int_eq(s.nproblems, 0);
	verify_target_fini(&s.first);
	verify_key_free(bob);
}
END_TEST

/* metadata/<v>.root.json rotating the root key to newkey, signed by `signers`. */
static void put_root(uint64_t v, struct verify_key *newkey, struct verify_key **signers,
		     size_t nsigners, uint64_t claimed_version)
{
	json_t *root = load_signed("metadata/1.root.json");
	json_t *keys = json_object_get(root, "keys");
	json_t *rr = json_object_get(json_object_get(root, "roles"), "root");
	char rel[64];

	json_object_set_new(keys, verify_key_id(newkey), verify_key_to_json(newkey));
	json_object_set_new(rr, "keyids", json_pack("[s]", verify_key_id(newkey)));
	set_int(root, "version", claimed_version);
	snprintf(rel, sizeof(rel), "metadata/%llu.root.json", (unsigned long long)v);
	put_signed(rel, root, signers, nsigners, NULL);
	json_decref(root);
}

START_TEST(client_follows_root_rotation_signed_by_old_and_new_keys)
{
	struct verify_key *oldk, *newk, *both[2];

	make_repo();
	oldk = keydir_key("root");
	ck_assert_int_eq(verify_key_generate(&newk), 0);
	both[0] = oldk;
	both[1] = newk;
	put_root(2, newk, both, 2, 2);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("root"), 2);
	/* the writer follows the chain too */
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), 0);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("root"), 2);
	verify_key_free(oldk);
	verify_key_free(newk);
}
END_TEST

START_TEST(client_rejects_root_signed_only_by_new_keys)
{
	struct verify_key *newk;

	make_repo();
	ck_assert_int_eq(verify_key_generate(&newk), 0);
	put_root(2, newk, &newk, 1, 2);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EBADSIG);
	assert_detail_has("metadata/2.root.json: 0 of 1 required signatures from role root of "
			  "metadata/1.root.json");
	verify_key_free(newk);
}
END_TEST

START_TEST(client_rejects_root_signed_only_by_old_keys)
{
	struct verify_key *oldk, *newk;

	make_repo();
	oldk = keydir_key("root");
	ck_assert_int_eq(verify_key_generate(&newk), 0);
	put_root(2, newk, &oldk, 1, 2);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EBADSIG);
	assert_detail_has("metadata/2.root.json: 0 of 1 required signatures from role root (");
	verify_key_free(oldk);
	verify_key_free(newk);
}
END_TEST

START_TEST(client_does_not_skip_root_versions)
{
	struct verify_key *oldk, *newk, *both[2];

	make_repo();
	oldk = keydir_key("root");
	ck_assert_int_eq(verify_key_generate(&newk), 0);
	both[0] = oldk;
	both[1] = newk;
	/* 3.root.json without a 2.root.json is never looked at */
	put_root(3, newk, both, 2, 3);
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("root"), 1);
	/* 2.root.json that claims version 3 is refused */
	put_root(2, newk, both, 2, 3);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EVERSION);
	assert_detail_has("metadata/2.root.json: version 3");
	verify_key_free(oldk);
	verify_key_free(newk);
}
END_TEST

START_TEST(client_enforces_thresholds_from_rotated_root)
{
	struct verify_key *oldk, *both[2];
	json_t *root;

	make_repo();
	oldk = keydir_key("root");
	/* root 2 requires two timestamp signatures; the repository has one */
	root = load_signed("metadata/1.root.json");
	set_int(root, "version", 2);
	set_int(json_object_get(json_object_get(root, "roles"), "timestamp"), "threshold", 2);
	both[0] = oldk;
	both[1] = oldk;
	put_signed("metadata/2.root.json", root, both, 1, NULL);
	ck_assert_int_eq(refresh_at(T0 + HOUR), STORK_EBADSIG);
	assert_detail_has("metadata/timestamp.json: 1 of 2 required signatures from role "
			  "timestamp");
	json_decref(root);
	verify_key_free(oldk);
}
END_TEST

START_TEST(client_new_requires_a_self_signed_root)
{
	struct verify_client *c = NULL;
	struct verify_key *k;
	json_t *s;
	char *buf;
	size_t len;

	ck_assert_int_eq(verify_key_generate(&k), 0);
	s = root_signed(k, 1);
	ck_assert_int_eq(meta_sign(s, NULL, 0, &buf, &len), 0);
	ck_assert_int_eq(verify_client_new((uint8_t *)buf, len, T0, &c), STORK_EBADSIG);
	free(buf);
	ck_assert_int_eq(meta_sign(s, &k, 1, &buf, &len), 0);
	/* an expired pinned root is accepted here; refresh checks the final root */
	ck_assert_int_eq(verify_client_new((uint8_t *)buf, len, T0 + 1000 * DAY, &c), 0);
	verify_client_free(c);
	free(buf);
	json_decref(s);
	verify_key_free(k);
}
END_TEST

START_TEST(repo_writer_refuses_tampered_state)
{
	struct verify_key *k;
	json_t *ts;

	make_repo();
	ck_assert_int_eq(verify_key_generate(&k), 0);
	ts = load_signed("metadata/timestamp.json");
	set_int(ts, "version", jversion(ts) + 1);
	put_signed("metadata/timestamp.json", ts, &k, 1, NULL);
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), STORK_EBADSIG);
	assert_detail_has("metadata/timestamp.json");
	ck_assert_int_eq(verify_repo_refresh(F.repo, F.keys, &F.o), STORK_EBADSIG);
	json_decref(ts);
	verify_key_free(k);
}
END_TEST

START_TEST(repo_writer_refuses_keys_the_root_does_not_list)
{
	struct verify_key *k;
	char *p = unit_path_of(F.keys, "snapshot.key"),
	     *pub = unit_path_of(F.keys, "snapshot.key.pub");

	make_repo();
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(unlink(pub), 0);
	ck_assert_int_eq(verify_key_generate(&k), 0);
	ck_assert_int_eq(verify_key_save(k, p), 0);
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), STORK_EBADSIG);
	assert_detail_has("is not a snapshot key of metadata/1.root.json");
	ck_assert_int_eq(verify_repo_refresh(F.repo, F.keys, &F.o), STORK_EBADSIG);
	/* nothing was committed */
	ck_assert_int_eq(refresh_at(T0 + HOUR), 0);
	ck_assert_uint_eq(role_version("timestamp"), 3);
	verify_key_free(k);
	free(p);
	free(pub);
}
END_TEST

TCase *tcase_verify_repo(void)
{
	TCase *tc = tcase_create("verify_repo");

	tcase_add_checked_fixture(tc, fix_setup, fix_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, repo_publish_then_client_verifies_everything);
	tcase_add_test(tc, repo_second_publish_bumps_role_and_keeps_first);
	tcase_add_test(tc, repo_publish_outside_patterns_is_refused);
	tcase_add_test(tc, repo_republish_identical_is_noop_and_different_is_refused);
	tcase_add_test(tc, repo_init_refuses_keys_inside_and_existing_repo);
	tcase_add_test(tc, repo_delegate_checks_names_and_keys);
	tcase_add_test(tc, repo_refresh_resigns_and_cleans_old_temporary_files);
	tcase_add_test(tc, repo_writer_refuses_tampered_state);
	tcase_add_test(tc, repo_writer_refuses_keys_the_root_does_not_list);
	tcase_add_test(tc, client_rejects_expired_timestamp);
	tcase_add_test(tc, client_rejects_expired_snapshot);
	tcase_add_test(tc, client_rejects_expired_targets);
	tcase_add_test(tc, client_rejects_expired_root);
	tcase_add_test(tc, client_reports_expired_delegated_role);
	tcase_add_test(tc, client_rejects_timestamp_signed_by_wrong_key);
	tcase_add_test(tc, client_rejects_snapshot_not_matching_timestamp);
	tcase_add_test(tc, client_rejects_snapshot_version_other_than_timestamps);
	tcase_add_test(tc, client_rejects_oversized_timestamp);
	tcase_add_test(tc, client_rejects_rollback_of_timestamp_and_snapshot);
	tcase_add_test(tc, client_rejects_bad_manifest_bytes);
	tcase_add_test(tc, client_reports_targets_outside_delegated_patterns);
	tcase_add_test(tc, client_reports_target_names_outside_charset);
	tcase_add_test(tc, client_first_role_in_search_order_wins);
	tcase_add_test(tc, client_terminating_delegation_stops_the_search);
	tcase_add_test(tc, policy_decides_by_first_rule_pins_and_pinned_role);
	tcase_add_test(tc, policy_refused_key_and_wrong_pinned_key_refuse);
	tcase_add_test(tc, client_skips_delegated_role_without_publications);
	tcase_add_test(tc, client_reports_listed_role_file_that_is_missing);
	tcase_add_test(tc, client_follows_root_rotation_signed_by_old_and_new_keys);
	tcase_add_test(tc, client_rejects_root_signed_only_by_new_keys);
	tcase_add_test(tc, client_rejects_root_signed_only_by_old_keys);
	tcase_add_test(tc, client_does_not_skip_root_versions);
	tcase_add_test(tc, client_enforces_thresholds_from_rotated_root);
	tcase_add_test(tc, client_new_requires_a_self_signed_root);
	return tc;
}

/* ------------------------------------------------------------------------------------------ */
/* The client's cache (tcase_verify_cache) */

/* An in-memory struct verify_cache, standing in for the node store's LMDB. */
static struct unit_memcache MC;

static const struct verify_cache mem_cache = {
    .load = unit_mc_load, .save = unit_mc_save, .ctx = &MC};

static void cache_setup(void)
{
	fix_setup();
	memset(&MC, 0, sizeof(MC));
}

static void cache_teardown(void)
{
	fix_teardown();
	unit_mc_clear(&MC);
}

/* The cache entry holds exactly the bytes of repository file rel. */
static void assert_cached_is(const char *name, const char *rel)
{
	struct unit_mc_entry *e = unit_mc_find(&MC, name);
	char *p = unit_path_of(F.repo, rel);
	uint8_t *buf;
	size_t len;

	ck_assert_msg(e, "cache lacks %s", name);
	unit_read_all(p, &buf, &len);
	ck_assert_msg(e->len == len && memcmp(e->buf, buf, len) == 0, "cached %s is not %s", name,
		      rel);
	free(buf);
	free(p);
}

/* A client pinned to 1.root.json that starts from the memory cache. */
static void cache_client_at(time_t now)
{
	int r;

	client_at(now);
	r = verify_client_set_cache(F.c, &mem_cache);
	ck_assert_msg(r == 0, "set_cache: %d %s", r, stork_error_detail());
}

/* A source over another source: offline (every get fails with -EIO), serving only targets/
 * (manifests), or passing everything through while recording the paths asked for. */
struct testsrc {
	const struct verify_source *inner; /* NULL: offline */
	bool targets_only;
	int ngets;
	char paths[16][128];
};

static int tsrc_get(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len)
{
	struct testsrc *t = ctx;

	if (t->ngets < 16)
		snprintf(t->paths[t->ngets], sizeof(t->paths[0]), "%s", path);
	t->ngets++;
	if (!t->inner || (t->targets_only && strncmp(path, "targets/", 8) != 0)) {
		stork_errorf("%s: network is unreachable", path);
		return -EIO;
	}
	return t->inner->get(t->inner->ctx, path, maxlen, ret_buf, ret_len);
}

static int tsrc_stream(void *ctx, const char *path, uint64_t maxlen,
		       int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx)
{
	struct testsrc *t = ctx;

	if (!t->inner || (t->targets_only && strncmp(path, "targets/", 8) != 0))
		return -EIO;
	return t->inner->stream(t->inner->ctx, path, maxlen, fn, fnctx);
}

static const char *tsrc_describe(void *ctx)
{
	return "test source";
}

static struct verify_source tsrc_init(struct testsrc *t)
{
	return (struct verify_source){
	    .get = tsrc_get, .stream = tsrc_stream, .describe = tsrc_describe, .ctx = t};
}

/* Copy the repository directory (to serve its old state later). */
static const char *copy_from, *copy_to;

static int copy_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	char *dst = unit_path_of(copy_to, p + strlen(copy_from));
	uint8_t *buf;
	size_t len;

	if (flag == FTW_D) {
		ck_assert_int_eq(mkdir(dst, 0755), 0);
	} else if (flag == FTW_F) {
		unit_read_all(p, &buf, &len);
		write_all(dst, buf, len);
		free(buf);
	}
	free(dst);
	return 0;
}

static char *copy_repo(const char *name)
{
	char *dst = unit_path_of(F.dir, name);

	copy_from = F.repo;
	copy_to = dst;
	ck_assert_int_eq(nftw(F.repo, copy_one, 16, FTW_PHYS), 0);
	return dst;
}

static void find_hello(const struct verify_source *src, const char *version, int want)
{
	struct verify_target t = {0};
	char path[64];
	int r;

	snprintf(path, sizeof(path), "hello/%s.json", version);
	r = verify_client_find_target(F.c, src, path, &t);
	ck_assert_msg(r == want, "find %s: %d, want %d (%s)", path, r, want, stork_error_detail());
	if (r == 0)
		ck_assert_str_eq(t.role, "alice");
	verify_target_fini(&t);
}

START_TEST(cache_refresh_saves_each_newly_trusted_file)
{
	struct seen s = {0};

	make_repo();
	cache_client_at(T0 + HOUR);
	ck_assert(!verify_client_usable(F.c));
	ck_assert_str_eq(stork_error_detail(), "");
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert(verify_client_usable(F.c));
	assert_cached_is("root.json", "metadata/1.root.json");
	assert_cached_is("timestamp.json", "metadata/timestamp.json");
	assert_cached_is("snapshot.json", "metadata/3.snapshot.json");
	assert_cached_is("targets.json", "metadata/2.targets.json");
	/* delegated roles are cached when first loaded */
	ck_assert_ptr_null(unit_mc_find(&MC, "alice.json"));
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	ck_assert_int_eq(s.ntargets, 1);
	verify_target_fini(&s.first);
	assert_cached_is("alice.json", "metadata/1.alice.json");
}
END_TEST

START_TEST(cache_state_is_usable_offline_after_a_failed_refresh)
{
	struct testsrc off = {0}, manifests = {.inner = &F.src, .targets_only = true};
	struct verify_source offsrc = tsrc_init(&off), msrc = tsrc_init(&manifests);
	struct verify_target t = {0};
	struct verify_manifest *m = NULL;
	struct seen s = {0};
	time_t exp;
	int r;

	make_repo();
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	verify_target_fini(&s.first);

	/* a restart: the same pinned root, the same cache, no network */
	cache_client_at(T0 + 2 * HOUR);
	ck_assert(verify_client_usable(F.c));
	ck_assert_uint_eq(role_version("root"), 1);
	ck_assert_uint_eq(role_version("timestamp"), 3);
	ck_assert_uint_eq(role_version("snapshot"), 3);
	ck_assert_uint_eq(role_version("targets"), 2);
	ck_assert_int_eq(verify_client_refresh(F.c, &offsrc), -EIO);
	assert_detail_has("metadata/2.root.json: network is unreachable");
	ck_assert(verify_client_usable(F.c));
	/* the caller decides about staleness: the trusted expiry is there to warn with */
	ck_assert_int_eq(verify_client_role_info(F.c, "timestamp", NULL, &exp), 0);
	ck_assert_int_eq(exp, T0 + DAY);

	memset(&s, 0, sizeof(s));
	r = verify_client_each_target(F.c, &offsrc, on_target, &s, on_problem, &s);
	ck_assert_msg(r == 0, "each: %d %s", r, stork_error_detail());
	ck_assert_int_eq(s.ntargets, 1);
	ck_assert_str_eq(s.paths[0], "hello/1.0.json");
	verify_target_fini(&s.first);
	ck_assert_int_eq(verify_client_find_target(F.c, &offsrc, "hello/1.0.json", &t), 0);
	ck_assert_str_eq(t.role, "alice");
	ck_assert_str_eq(t.keyid, verify_key_id(F.alice));
	/* manifests come from the source: offline they cannot be had... */
	ck_assert_int_eq(verify_client_fetch_manifest(F.c, &offsrc, &t, &m), -EIO);
	/* ...and a source with only the manifests is enough, metadata coming from the cache */
	r = verify_client_fetch_manifest(F.c, &msrc, &t, &m);
	ck_assert_msg(r == 0, "fetch: %d %s", r, stork_error_detail());
	ck_assert_str_eq(m->name, "hello");
	ck_assert_str_eq(m->version, "1.0");
	ck_assert_int_eq(manifests.ngets, 1);
	ck_assert_msg(strncmp(manifests.paths[0], "targets/hello/", 14) == 0, "%s",
		      manifests.paths[0]);
	verify_manifest_free(m);
	verify_target_fini(&t);
}
END_TEST

START_TEST(cache_equal_timestamp_fetches_nothing_else)
{
	struct testsrc count = {.inner = &F.src};
	struct verify_source csrc = tsrc_init(&count);
	struct seen s = {0};

	make_repo();
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	verify_target_fini(&s.first);

	cache_client_at(T0 + HOUR);
	MC.saves = 0;
	ck_assert_int_eq(verify_client_refresh(F.c, &csrc), 0);
	/* the timestamp did not change: snapshot and targets are the cached ones */
	ck_assert_int_eq(count.ngets, 2);
	ck_assert_str_eq(count.paths[0], "metadata/2.root.json");
	ck_assert_str_eq(count.paths[1], "metadata/timestamp.json");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(verify_client_each_target(F.c, &csrc, on_target, &s, on_problem, &s), 0);
	ck_assert_int_eq(s.ntargets, 1);
	verify_target_fini(&s.first);
	ck_assert_int_eq(count.ngets, 2); /* alice came from the cache too */
	ck_assert_int_eq(MC.saves, 0);
}
END_TEST

START_TEST(cache_refuses_rollback_to_old_repository_after_restart)
{
	struct verify_source oldsrc;
	struct seen s = {0};
	uint8_t *cached_ts;
	size_t cached_len;
	char *old;
	int r;

	make_repo();
	old = copy_repo("old");
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), 0);
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_uint_eq(role_version("timestamp"), 4);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	ck_assert_int_eq(s.ntargets, 2);
	verify_target_fini(&s.first);
	cached_len = unit_mc_find(&MC, "timestamp.json")->len;
	cached_ts = malloc(cached_len);
	memcpy(cached_ts, unit_mc_find(&MC, "timestamp.json")->buf, cached_len);

	/* a restart, and someone serves the repository as it was before hello 2.0 */
	ck_assert_int_eq(verify_dir_source_init(&oldsrc, old), 0);
	cache_client_at(T0 + 2 * HOUR);
	r = verify_client_refresh(F.c, &oldsrc);
	ck_assert_int_eq(r, STORK_EROLLBACK);
	assert_detail_has("metadata/timestamp.json: version 3 is older than the trusted version 4");
	/* the cached state stays, in memory and in the cache */
	ck_assert(verify_client_usable(F.c));
	ck_assert_uint_eq(role_version("timestamp"), 4);
	ck_assert_uint_eq(role_version("snapshot"), 4);
	find_hello(&oldsrc, "2.0", 0);
	ck_assert_uint_eq(unit_mc_find(&MC, "timestamp.json")->len, cached_len);
	ck_assert_int_eq(memcmp(unit_mc_find(&MC, "timestamp.json")->buf, cached_ts, cached_len),
			 0);
	/* the same with a fresh client without the cache: it has nothing to compare with */
	client_at(T0 + 2 * HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &oldsrc), 0);
	verify_dir_source_fini(&oldsrc);
	free(cached_ts);
	free(old);
}
END_TEST

/* Flip one hex digit of the first signature of a cache entry. */
static void mc_break_sig(const char *name)
{
	struct unit_mc_entry *e = unit_mc_find(&MC, name);
	char *text, *sig;

	ck_assert_ptr_nonnull(e);
	text = strndup((const char *)e->buf, e->len);
	sig = strstr(text, "\"sig\":\"");
	ck_assert_ptr_nonnull(sig);
	sig[7] = sig[7] == '0' ? '1' : '0';
	unit_mc_put(&MC, name, text, e->len);
	free(text);
}

START_TEST(cache_ignores_damaged_file_and_says_so)
{
	struct verify_target t;
	struct seen s = {0};

	make_repo();
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);

	mc_break_sig("snapshot.json");
	cache_client_at(T0 + HOUR);
	assert_detail_has("cached snapshot.json: 0 of 1 required signatures from role snapshot");
	assert_detail_has(": ignored");
	ck_assert(!verify_client_usable(F.c));
	ck_assert_uint_eq(role_version("timestamp"), 3);
	ck_assert_int_eq(verify_client_role_info(F.c, "snapshot", NULL, NULL), -ENOENT);
	ck_assert_int_eq(verify_client_role_info(F.c, "targets", NULL, NULL), -ENOENT);
	ck_assert_int_eq(verify_client_find_target(F.c, &F.src, "hello/1.0.json", &t), -EINVAL);
	assert_detail_has("cached snapshot.json: 0 of 1 required signatures");
	assert_detail_has("refresh first");
	/* the next refresh replaces it */
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	assert_cached_is("snapshot.json", "metadata/3.snapshot.json");
	find_hello(&F.src, "1.0", 0);

	/* a timestamp that is not even JSON any more: ignored, and what hangs on it */
	unit_mc_put(&MC, "timestamp.json", "{\"signed\":", 10);
	cache_client_at(T0 + HOUR);
	assert_detail_has("cached timestamp.json");
	ck_assert_int_eq(verify_client_role_info(F.c, "timestamp", NULL, NULL), -ENOENT);
	ck_assert_int_eq(verify_client_role_info(F.c, "snapshot", NULL, NULL), -ENOENT);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	assert_cached_is("timestamp.json", "metadata/timestamp.json");

	/* a damaged delegated role is fetched again */
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	verify_target_fini(&s.first);
	mc_break_sig("alice.json");
	cache_client_at(T0 + HOUR);
	ck_assert_str_eq(stork_error_detail(), "");
	find_hello(&F.src, "1.0", 0);
	assert_cached_is("alice.json", "metadata/1.alice.json");
}
END_TEST

START_TEST(cache_root_must_chain_from_the_pinned_root)
{
	struct verify_key *k;
	json_t *s;
	char *buf;
	size_t len;

	make_repo();
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_int_eq(verify_key_generate(&k), 0);

	/* a newer root signed only by a key of its own: whoever can write the cache cannot
	 * make the client trust it */
	s = root_signed(k, 2);
	ck_assert_int_eq(meta_sign(s, &k, 1, &buf, &len), 0);
	unit_mc_put(&MC, "root.json", buf, len);
	unit_mc_put(&MC, "2.root.json", buf, len);
	free(buf);
	json_decref(s);
	cache_client_at(T0 + HOUR);
	assert_detail_has("cached root.json: 0 of 1 required signatures from role root of "
			  "metadata/1.root.json");
	ck_assert_uint_eq(role_version("root"), 1);
	/* what the real root signs is still trusted */
	ck_assert(verify_client_usable(F.c));

	/* the same version as the pinned root, but another root */
	s = root_signed(k, 1);
	ck_assert_int_eq(meta_sign(s, &k, 1, &buf, &len), 0);
	unit_mc_put(&MC, "root.json", buf, len);
	free(buf);
	json_decref(s);
	cache_client_at(T0 + HOUR);
	assert_detail_has("cached root.json: version 1 is not the pinned metadata/1.root.json");
	ck_assert_uint_eq(role_version("root"), 1);
	/* a refresh puts the trusted root back */
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	assert_cached_is("root.json", "metadata/1.root.json");
	verify_key_free(k);
}
END_TEST

START_TEST(cache_keeps_root_rotations_across_restarts)
{
	struct verify_key *oldk, *k2, *k3, *both[2];
	struct testsrc off = {0};
	struct verify_source offsrc = tsrc_init(&off);

	make_repo();
	oldk = keydir_key("root");
	ck_assert_int_eq(verify_key_generate(&k2), 0);
	ck_assert_int_eq(verify_key_generate(&k3), 0);
	both[0] = oldk;
	both[1] = k2;
	put_root(2, k2, both, 2, 2);
	both[0] = k2;
	both[1] = k3;
	put_root(3, k3, both, 2, 3);
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_uint_eq(role_version("root"), 3);
	assert_cached_is("2.root.json", "metadata/2.root.json");
	assert_cached_is("3.root.json", "metadata/3.root.json");
	assert_cached_is("root.json", "metadata/3.root.json");

	/* a restart pinned to 1.root.json starts at root 3, even offline */
	cache_client_at(T0 + HOUR);
	ck_assert_str_eq(stork_error_detail(), "");
	ck_assert_uint_eq(role_version("root"), 3);
	ck_assert(verify_client_usable(F.c));
	ck_assert_int_eq(verify_client_refresh(F.c, &offsrc), -EIO);
	assert_detail_has("metadata/4.root.json");
	ck_assert_uint_eq(role_version("root"), 3);

	/* without a link of the chain the cached root cannot be trusted... */
	unit_mc_del(&MC, "2.root.json");
	cache_client_at(T0 + HOUR);
	assert_detail_has("cached root.json: version 3, but the cache lacks 2.root.json to chain "
			  "it to the pinned metadata/1.root.json");
	ck_assert_uint_eq(role_version("root"), 1);
	/* ...until a refresh walks the chain again and saves it */
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_uint_eq(role_version("root"), 3);
	assert_cached_is("2.root.json", "metadata/2.root.json");
	cache_client_at(T0 + HOUR);
	ck_assert_uint_eq(role_version("root"), 3);
	verify_key_free(oldk);
	verify_key_free(k2);
	verify_key_free(k3);
}
END_TEST

START_TEST(cache_forgets_timestamp_and_snapshot_when_their_keys_rotate)
{
	struct verify_key *rootk, *tk2;
	json_t *root, *ts;

	make_repo();
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);

	/* root 2 gives the timestamp role a new key; the repository still signs with the old */
	rootk = keydir_key("root");
	ck_assert_int_eq(verify_key_generate(&tk2), 0);
	root = load_signed("metadata/1.root.json");
	json_object_set_new(json_object_get(root, "keys"), verify_key_id(tk2),
			    verify_key_to_json(tk2));
	json_object_set_new(json_object_get(json_object_get(root, "roles"), "timestamp"), "keyids",
			    json_pack("[s]", verify_key_id(tk2)));
	set_int(root, "version", 2);
	put_signed("metadata/2.root.json", root, &rootk, 1, NULL);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), STORK_EBADSIG);
	assert_detail_has("metadata/timestamp.json: 0 of 1 required signatures");
	/* 5.3.11: the old timestamp and snapshot are gone, here and in the cache */
	ck_assert_uint_eq(role_version("root"), 2);
	ck_assert(!verify_client_usable(F.c));
	ck_assert_int_eq(verify_client_role_info(F.c, "timestamp", NULL, NULL), -ENOENT);
	ck_assert_int_eq(verify_client_role_info(F.c, "snapshot", NULL, NULL), -ENOENT);
	ck_assert_uint_eq(unit_mc_find(&MC, "timestamp.json")->len, 0);
	ck_assert_uint_eq(unit_mc_find(&MC, "snapshot.json")->len, 0);
	assert_cached_is("root.json", "metadata/2.root.json");
	cache_client_at(T0 + HOUR);
	ck_assert_str_eq(stork_error_detail(), "");
	ck_assert_uint_eq(role_version("root"), 2);
	ck_assert_int_eq(verify_client_role_info(F.c, "timestamp", NULL, NULL), -ENOENT);

	/* once the timestamp is signed with the new key, all is well again */
	ts = load_signed("metadata/timestamp.json");
	put_signed("metadata/timestamp.json", ts, &tk2, 1, NULL);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert(verify_client_usable(F.c));
	assert_cached_is("timestamp.json", "metadata/timestamp.json");
	assert_cached_is("snapshot.json", "metadata/3.snapshot.json");
	json_decref(ts);
	json_decref(root);
	verify_key_free(tk2);
	verify_key_free(rootk);
}
END_TEST

START_TEST(cache_failed_refresh_keeps_previous_state)
{
	uint8_t *old_ts, *buf;
	size_t old_len, len;
	char *p, *tsp;

	make_repo();
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	find_hello(&F.src, "1.0", 0);
	tsp = unit_path_of(F.repo, "metadata/timestamp.json");
	unit_read_all(tsp, &old_ts, &old_len);

	/* hello 2.0 is published, but the new snapshot arrives damaged */
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), 0);
	p = unit_path_of(F.repo, "metadata/4.snapshot.json");
	unit_read_all(p, &buf, &len);
	buf[len - 2] ^= 1;
	write_all(p, buf, len);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), STORK_EBADHASH);
	assert_detail_has("metadata/4.snapshot.json: SHA-256");
	/* nothing of it was trusted: the previous state is whole and still in use */
	ck_assert(verify_client_usable(F.c));
	ck_assert_uint_eq(role_version("timestamp"), 3);
	ck_assert_uint_eq(role_version("snapshot"), 3);
	find_hello(&F.src, "1.0", 0);
	find_hello(&F.src, "2.0", -ENOENT);
	ck_assert_uint_eq(unit_mc_find(&MC, "timestamp.json")->len, old_len);
	ck_assert_int_eq(memcmp(unit_mc_find(&MC, "timestamp.json")->buf, old_ts, old_len), 0);
	cache_client_at(T0 + HOUR);
	ck_assert_uint_eq(role_version("timestamp"), 3);

	/* repaired, the same client moves on */
	buf[len - 2] ^= 1;
	write_all(p, buf, len);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_uint_eq(role_version("timestamp"), 4);
	find_hello(&F.src, "2.0", 0);
	free(buf);
	free(p);
	free(old_ts);
	free(tsp);
}
END_TEST

START_TEST(cache_role_newer_than_the_snapshot_lists_is_a_rollback)
{
	struct verify_source oldsrc;
	struct seen s = {0};
	char *old;

	make_repo();
	old = copy_repo("old");
	ck_assert_int_eq(publish(F.alice, "hello", "2.0", "v2\n"), 0);
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_int_eq(verify_client_each_target(F.c, &F.src, on_target, &s, on_problem, &s), 0);
	verify_target_fini(&s.first);

	/* the cache lost its timestamp (so the top-level floor is gone) and the old repository
	 * is served: alice's cached version 2 still refuses alice version 1 */
	unit_mc_put(&MC, "timestamp.json", "x", 1);
	ck_assert_int_eq(verify_dir_source_init(&oldsrc, old), 0);
	cache_client_at(T0 + HOUR);
	ck_assert_int_eq(verify_client_refresh(F.c, &oldsrc), 0);
	find_hello(&oldsrc, "1.0", STORK_EROLLBACK);
	assert_detail_has("metadata/3.snapshot.json: lists alice.json version 1, older than the "
			  "trusted (cached) version 2");
	verify_dir_source_fini(&oldsrc);
	free(old);
}
END_TEST

START_TEST(cache_load_failure_leaves_client_unchanged)
{
	make_repo();
	client_at(T0 + HOUR);
	MC.fail_load = -EIO;
	ck_assert_int_eq(verify_client_set_cache(F.c, &mem_cache), -EIO);
	assert_detail_has("cache: root.json: cannot load");
	MC.fail_load = 0;
	/* no cache was attached: nothing is saved */
	ck_assert_int_eq(verify_client_refresh(F.c, &F.src), 0);
	ck_assert_uint_eq(MC.n, 0);
	/* and a cache comes before the first refresh, or not at all */
	ck_assert_int_eq(verify_client_set_cache(F.c, &mem_cache), -EINVAL);
	assert_detail_has("before the first refresh");
}
END_TEST

TCase *tcase_verify_cache(void)
{
	TCase *tc = tcase_create("verify_cache");

	tcase_add_checked_fixture(tc, cache_setup, cache_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, cache_refresh_saves_each_newly_trusted_file);
	tcase_add_test(tc, cache_state_is_usable_offline_after_a_failed_refresh);
	tcase_add_test(tc, cache_equal_timestamp_fetches_nothing_else);
	tcase_add_test(tc, cache_refuses_rollback_to_old_repository_after_restart);
	tcase_add_test(tc, cache_ignores_damaged_file_and_says_so);
	tcase_add_test(tc, cache_root_must_chain_from_the_pinned_root);
	tcase_add_test(tc, cache_keeps_root_rotations_across_restarts);
	tcase_add_test(tc, cache_forgets_timestamp_and_snapshot_when_their_keys_rotate);
	tcase_add_test(tc, cache_failed_refresh_keeps_previous_state);
	tcase_add_test(tc, cache_role_newer_than_the_snapshot_lists_is_a_rollback);
	tcase_add_test(tc, cache_load_failure_leaves_client_unchanged);
	return tc;
}
