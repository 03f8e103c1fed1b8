/* tests/fuzz/fuzz_client.c: the TUF client workflow (verify_client_refresh, the delegation
 * search, manifest fetching, auditing, the trusted-state cache) against a repository in memory
 * one of whose files is the fuzzer's input.
 *
 * The repository is built once, from fixed keys (fuzz_key), by the project's own signing code
 * (meta_sign, verify_manifest_dump): root 1 (consistent snapshots, one key per role), timestamp
 * 1, snapshot 1, targets 1 delegating hello/STAR to "alice" and STAR/STAR to "bob", alice 1
 * delegating hello/2STAR to "carol" (terminating) and signing hello 1.0, carol 1 signing hello
 * 2.0, bob 1 signing hello 3.0, tool 1.0 and (hidden by carol's terminating delegation) his own
 * hello 2.0, and their manifests. Clients pin root 1; every expiry check runs at FUZZ_NOW.
 *
 * Input: one selector byte, then the bytes of the file it replaces.
 *   selector & 0x07  which file: 0 the next root (metadata/2.root.json), 1 timestamp,
 *                    2 snapshot, 3 top-level targets, 4 alice, 5 bob, 6 carol,
 *                    7 hello 1.0's manifest
 *   selector & 0x08  re-sign: when the bytes are a JSON object with a "signed" object, replace
 *                    its signatures by the rightful key's, so that the checks behind the
 *                    signature check are reached
 *   selector & 0x10  refresh from the unchanged repository first, so that the input meets a
 *                    trusted state (rollback checks, "nothing new" paths)
 *   selector & 0x20  keep the trusted state in an in-memory cache and start a second client
 *                    from it afterwards (verify/cache.c)
 * The file is served where the client will ask for it: snapshot, targets and roles under the
 * version the input states (1 when it states none); the files that name it (timestamp,
 * snapshot, alice) are re-made as version 2 with its version, length and hash, and signed, so
 * that its bytes get past the hash checks to the parser.
 *
 * The contract checked beyond surviving (verify/verify.h, verify/client.h "Invariants"): a refresh
 * that fails without a root rotation leaves the trusted versions as they were; trusted versions
 * never go down; a restart from the cache brings back the trusted versions; and while the input
 * cannot change the delegation tree (it is not targets or alice), every target found is signed
 * by a role delegated a pattern that covers it, with that role's key, and nothing below
 * carol's terminating hello/2STAR comes from anyone but carol. */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"
#include "verify/meta.h"

#define EXPIRES "2100-01-01T00:00:00Z"

enum { K_ROOT, K_TARGETS, K_SNAPSHOT, K_TIMESTAMP, K_ALICE, K_BOB, K_CAROL, NKEYS };

enum { S_ROOT, S_TIMESTAMP, S_SNAPSHOT, S_TARGETS, S_ALICE, S_BOB, S_CAROL, S_MANIFEST, NSLOTS };

#define SEL_RESIGN  0x08
#define SEL_TRUSTED 0x10
#define SEL_CACHE   0x20

static const char *const slot_names[NSLOTS] = {
    "root", "timestamp", "snapshot", "targets", "alice", "bob", "carol", "manifest",
};

/* ------------------------------------------------------------------------------------------ */
/* An in-memory repository: a verify_source over a small table of files. */

struct file {
	char *path;
	uint8_t *buf;
	size_t len;
};

struct repo {
	struct file f[32];
	size_t n;
};

static void repo_put(struct repo *r, const char *path, const void *buf, size_t len)
{
	struct file *f = NULL;
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->f[i].path, path) == 0)
			f = &r->f[i];
	if (!f) {
		if (r->n == sizeof(r->f) / sizeof(r->f[0]))
			fuzz_bug("in-memory repository full");
		f = &r->f[r->n++];
		f->path = strdup(path);
	} else {
		free(f->buf);
	}
	f->buf = malloc(len ? len : 1);
	if (!f->path || !f->buf)
		fuzz_bug("out of memory");
	memcpy(f->buf, buf, len);
	f->len = len;
}

static void repo_copy(struct repo *to, const struct repo *from)
{
	size_t i;

	for (i = 0; i < from->n; i++)
		repo_put(to, from->f[i].path, from->f[i].buf, from->f[i].len);
}

static void repo_fini(struct repo *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->f[i].path);
		free(r->f[i].buf);
	}
	r->n = 0;
}

static const struct file *repo_find(const struct repo *r, const char *path)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->f[i].path, path) == 0)
			return &r->f[i];
	return NULL;
}

static int src_get(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len)
{
	const struct file *f = repo_find(ctx, path);
	uint8_t *buf;

	if (!f) {
		stork_errorf("%s: not in the repository", path);
		return -ENOENT;
	}
	if (f->len > maxlen) {
		stork_errorf("%s: longer than %zu bytes", path, maxlen);
		return STORK_ETOOBIG;
	}
	buf = malloc(f->len ? f->len : 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, f->buf, f->len);
	*ret_buf = buf;
	*ret_len = f->len;
	return 0;
}

static int src_stream(void *ctx, const char *path, uint64_t maxlen,
		      int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx)
{
	const struct file *f = repo_find(ctx, path);
	size_t off, n;
	int r;

	if (!f) {
		stork_errorf("%s: not in the repository", path);
		return -ENOENT;
	}
	for (off = 0; off < f->len; off += n) {
		n = f->len - off < 4096 ? f->len - off : 4096;
		if (off + n > maxlen) {
			stork_errorf("%s: longer than %" PRIu64 " bytes", path, maxlen);
			return STORK_ETOOBIG;
		}
		r = fn(fnctx, f->buf + off, n);
		if (r < 0)
			return r;
	}
	return 0;
}

static const char *src_describe(void *ctx)
{
	return "fuzz repository";
}

static struct verify_source source_of(struct repo *r)
{
	struct verify_source s = {
	    .get = src_get, .stream = src_stream, .describe = src_describe, .ctx = r};

	return s;
}

/* An in-memory verify_cache: the same table. */
static int cache_load(void *ctx, const char *name, uint8_t **ret_buf, size_t *ret_len)
{
	return src_get(ctx, name, SIZE_MAX, ret_buf, ret_len);
}

static int cache_save(void *ctx, const char *name, const uint8_t *buf, size_t len)
{
	repo_put(ctx, name, buf, len);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The fixed repository */

/* The delegation tree: targets -> alice (hello/STAR), bob (STAR/STAR); alice -> carol (hello/2STAR,
 * terminating). bob also signs hello/2.0.json, which carol's terminating delegation hides. */
enum { R_ALICE, R_BOB, R_CAROL, NROLES };

static const struct {
	const char *name;
	int key;
	int slot;
	const char *pattern; /* its delegation's only path pattern */
	bool terminating;
} roles[NROLES] = {
    [R_ALICE] = {"alice", K_ALICE, S_ALICE, "hello/*", false},
    [R_BOB] = {"bob", K_BOB, S_BOB, "*/*", false},
    [R_CAROL] = {"carol", K_CAROL, S_CAROL, "hello/2*", true},
};

static const struct {
	const char *name, *version;
	int role;
} packages[] = {
    {"hello", "1.0", R_ALICE}, /* the manifest slot replaces this one */
    {"hello", "2.0", R_CAROL}, {"hello", "3.0", R_BOB},
    {"tool", "1.0", R_BOB},    {"hello", "2.0", R_BOB},
};

static struct verify_key *keys[NKEYS];
static bool verbose; /* STORK_FUZZ_VERBOSE=1: say what each refresh returned */
static struct repo base;
static json_t *role_targets[NROLES]; /* each role's "targets", to re-make a role */
static char *base_root2;	     /* a valid root version 2: a seed, not in the repository */
static size_t base_root2_len;

static json_t *key_ring(const int *which, size_t n)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o && i < n; i++)
		json_object_set_new(o, verify_key_id(keys[which[i]]),
				    verify_key_to_json(keys[which[i]]));
	return o;
}

static json_t *role_keys(int which)
{
	return json_pack("{s:[s], s:i}", "keyids", verify_key_id(keys[which]), "threshold", 1);
}

/* Sign `signed_json` (reference taken) with key `k`; the file bytes in ret_buf. */
static void sign(json_t *signed_json, int k, char **ret_buf, size_t *ret_len)
{
	if (!signed_json)
		fuzz_bug("out of memory building metadata");
	if (meta_sign(signed_json, &keys[k], 1, ret_buf, ret_len) < 0)
		fuzz_bug("meta_sign failed");
	json_decref(signed_json);
}

static void put_signed(struct repo *r, const char *path, json_t *signed_json, int k)
{
	char *buf = NULL;
	size_t len = 0;

	sign(signed_json, k, &buf, &len);
	repo_put(r, path, buf, len);
	free(buf);
}

/* {"hashes", "length"} of buf, plus "version" when version > 0 */
static json_t *file_meta(uint64_t version, const uint8_t *buf, size_t len)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX];
	json_t *o;

	if (!buf)
		return json_pack("{s:I}", "version", (json_int_t)version);
	if (verify_sha256(buf, len, digest) < 0)
		fuzz_bug("sha256 failed");
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	o = json_pack("{s:{s:s}, s:I}", "hashes", "sha256", hex, "length", (json_int_t)len);
	if (o && version)
		json_object_set_new(o, "version", json_integer((json_int_t)version));
	return o;
}

static json_t *root_signed(uint64_t version)
{
	static const int all[] = {K_ROOT, K_TARGETS, K_SNAPSHOT, K_TIMESTAMP};

	return json_pack("{s:s, s:b, s:s, s:o, s:{s:o, s:o, s:o, s:o}, s:s, s:I}", "_type", "root",
			 "consistent_snapshot", 1, "expires", EXPIRES, "keys", key_ring(all, 4),
			 "roles", "root", role_keys(K_ROOT), "snapshot", role_keys(K_SNAPSHOT),
			 "targets", role_keys(K_TARGETS), "timestamp", role_keys(K_TIMESTAMP),
			 "spec_version", META_SPEC_VERSION, "version", (json_int_t)version);
}

/* The delegations a role makes to `to` (n roles). */
static json_t *delegations(const int *to, size_t n)
{
	json_t *list = json_array(), *ring = json_object();
	size_t i;

	for (i = 0; list && ring && i < n; i++) {
		const int k = roles[to[i]].key;

		json_object_set_new(ring, verify_key_id(keys[k]), verify_key_to_json(keys[k]));
		json_array_append_new(list,
				      json_pack("{s:[s], s:s, s:[s], s:b, s:i}", "keyids",
						verify_key_id(keys[k]), "name", roles[to[i]].name,
						"paths", roles[to[i]].pattern, "terminating",
						roles[to[i]].terminating, "threshold", 1));
	}
	return json_pack("{s:o, s:o}", "keys", ring, "roles", list);
}

/* A targets role's "signed": targets borrowed, dels (or NULL) taken. */
static json_t *targets_signed(uint64_t version, json_t *targets, json_t *dels)
{
	json_t *s = json_pack("{s:s, s:s, s:s, s:O, s:I}", "_type", "targets", "expires", EXPIRES,
			      "spec_version", META_SPEC_VERSION, "targets", targets, "version",
			      (json_int_t)version);

	if (s && dels)
		json_object_set_new(s, "delegations", dels);
	else
		json_decref(dels);
	return s;
}

static json_t *top_targets_signed(void)
{
	static const int to[] = {R_ALICE, R_BOB};
	json_t *none = json_object(), *s;

	s = targets_signed(1, none, delegations(to, 2));
	json_decref(none);
	return s;
}

static json_t *role_signed(int role, uint64_t version, json_t *targets)
{
	static const int carol[] = {R_CAROL};

	return targets_signed(version, targets, role == R_ALICE ? delegations(carol, 1) : NULL);
}

/* A snapshot: targets.json as `targets_meta`, each role at version 1 except `role` (-1 for
 * none) as `role_meta` (references taken). */
static json_t *snapshot_signed(uint64_t version, json_t *targets_meta, int role, json_t *role_meta)
{
	json_t *meta = json_object();
	int i;

	json_object_set_new(meta, "targets.json", targets_meta);
	for (i = 0; i < NROLES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "%s.json", roles[i].name);
		json_object_set_new(meta, name, i == role ? role_meta : file_meta(1, NULL, 0));
	}
	if (role < 0)
		json_decref(role_meta);
	return json_pack("{s:s, s:s, s:o, s:s, s:I}", "_type", "snapshot", "expires", EXPIRES,
			 "meta", meta, "spec_version", META_SPEC_VERSION, "version",
			 (json_int_t)version);
}

static json_t *timestamp_signed(uint64_t version, json_t *snapshot_meta)
{
	return json_pack("{s:s, s:s, s:{s:o}, s:s, s:I}", "_type", "timestamp", "expires", EXPIRES,
			 "meta", "snapshot.json", snapshot_meta, "spec_version", META_SPEC_VERSION,
			 "version", (json_int_t)version);
}

static void make_manifest(const char *name, const char *version, char **ret_buf, size_t *ret_len)
{
	struct verify_entry e = {.type = VERIFY_DIR, .mode = 0755, .mtime = 1700000000};
	struct verify_dep dep = {.name = "libc6", .op = ">=", .version = "2.36"};
	struct verify_manifest *m = NULL;
	char content[64];

	snprintf(content, sizeof(content), "%s %s\n", name, version);
	if (verify_manifest_new(name, version, "tar", &m) < 0)
		fuzz_bug("verify_manifest_new failed");
	e.path = "usr/bin";
	if (verify_manifest_add(m, &e) < 0)
		fuzz_bug("verify_manifest_add failed");
	e.path = "usr/bin/prog";
	e.type = VERIFY_FILE;
	e.size = strlen(content);
	e.zsize = e.size + 9;
	if (verify_sha256(content, e.size, e.hash) < 0 || verify_manifest_add(m, &e) < 0)
		fuzz_bug("verify_manifest_add failed");
	e.path = "usr/bin/link";
	e.type = VERIFY_SYMLINK;
	e.mode = 0777;
	e.target = "prog";
	e.size = 4;
	if (verify_manifest_add(m, &e) < 0 || verify_manifest_add_depgroup(m, &dep, 1) < 0 ||
	    verify_manifest_finish(m) < 0 || verify_manifest_dump(m, ret_buf, ret_len) < 0)
		fuzz_bug("cannot build the fixed manifest");
	verify_manifest_free(m);
}

static void put_manifest(struct repo *r, const char *name, const char *version, const uint8_t *buf,
			 size_t len)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], *path;

	if (verify_sha256(buf, len, digest) < 0)
		fuzz_bug("sha256 failed");
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	path = meta_asprintf("targets/%s/%s.%s.json", name, hex, version);
	if (!path)
		fuzz_bug("out of memory");
	repo_put(r, path, buf, len);
	free(path);
}

/* A target entry for a manifest: {custom, hashes, length}. */
static json_t *target_entry(const uint8_t *manifest, size_t len)
{
	json_t *t = file_meta(0, manifest, len);

	json_object_set_new(t, "custom",
			    json_pack("{s:{s:i, s:i}}", "storkfs", "files", 4, "size", 6));
	return t;
}

static void build_base(void)
{
	char *buf = NULL, *snap = NULL, path[128];
	size_t len = 0, snaplen = 0, i;
	int k;

	for (k = 0; k < NKEYS; k++)
		keys[k] = fuzz_key((uint8_t)(0x51 + k));

	sign(root_signed(1), K_ROOT, &buf, &len);
	repo_put(&base, "metadata/1.root.json", buf, len);
	free(buf);
	sign(root_signed(2), K_ROOT, &base_root2, &base_root2_len);

	for (k = 0; k < NROLES; k++)
		role_targets[k] = json_object();
	for (i = 0; i < sizeof(packages) / sizeof(packages[0]); i++) {
		char *target = verify_target_path(packages[i].name, packages[i].version);

		make_manifest(packages[i].name, packages[i].version, &buf, &len);
		put_manifest(&base, packages[i].name, packages[i].version, (uint8_t *)buf, len);
		if (!target)
			fuzz_bug("out of memory");
		json_object_set_new(role_targets[packages[i].role], target,
				    target_entry((uint8_t *)buf, len));
		free(target);
		free(buf);
	}
	for (k = 0; k < NROLES; k++) {
		snprintf(path, sizeof(path), "metadata/1.%s.json", roles[k].name);
		put_signed(&base, path, role_signed(k, 1, role_targets[k]), roles[k].key);
	}
	put_signed(&base, "metadata/1.targets.json", top_targets_signed(), K_TARGETS);
	sign(snapshot_signed(1, file_meta(1, NULL, 0), -1, NULL), K_SNAPSHOT, &snap, &snaplen);
	repo_put(&base, "metadata/1.snapshot.json", snap, snaplen);
	put_signed(&base, "metadata/timestamp.json",
		   timestamp_signed(1, file_meta(1, (uint8_t *)snap, snaplen)), K_TIMESTAMP);
	free(snap);
}

/* The file a slot replaces, as the fixed repository has it (for seeds). */
static void base_file(int slot, const uint8_t **ret_buf, size_t *ret_len)
{
	static const char *const paths[NSLOTS] = {
	    [S_TIMESTAMP] = "metadata/timestamp.json", [S_SNAPSHOT] = "metadata/1.snapshot.json",
	    [S_TARGETS] = "metadata/1.targets.json",   [S_ALICE] = "metadata/1.alice.json",
	    [S_BOB] = "metadata/1.bob.json",	       [S_CAROL] = "metadata/1.carol.json",
	};
	const struct file *f = NULL;
	size_t i;

	if (slot == S_ROOT) {
		*ret_buf = (const uint8_t *)base_root2;
		*ret_len = base_root2_len;
		return;
	}
	if (slot == S_MANIFEST) {
		for (i = 0; i < base.n && !f; i++)
			if (strncmp(base.f[i].path, "targets/hello/", 14) == 0 &&
			    strstr(base.f[i].path, ".1.0.json"))
				f = &base.f[i];
	} else {
		f = repo_find(&base, paths[slot]);
	}
	if (!f)
		fuzz_bug("no base file for slot %d", slot);
	*ret_buf = f->buf;
	*ret_len = f->len;
}

/* tests/fuzz/make-corpus: STORK_FUZZ_WRITE_SEEDS=DIR writes seeds made from the fixed
 * repository: each file, as its slot, with a few selector bits. */
static void write_seeds(const char *dirpath)
{
	static const uint8_t flags[] = {0, SEL_RESIGN, SEL_RESIGN | SEL_TRUSTED,
					SEL_RESIGN | SEL_TRUSTED | SEL_CACHE};
	char name[PATH_MAX];
	size_t i;
	int s;

	if (mkdir(dirpath, 0755) < 0 && errno != EEXIST)
		fuzz_bug("mkdir %s: %s", dirpath, strerror(errno));
	for (s = 0; s < NSLOTS; s++) {
		const uint8_t *buf = NULL;
		size_t len = 0;

		base_file(s, &buf, &len);
		for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
			uint8_t sel = (uint8_t)(s | flags[i]);
			FILE *out;

			snprintf(name, sizeof(name), "%s/%s-%02x", dirpath, slot_names[s], sel);
			out = fopen(name, "wb");
			if (!out || fwrite(&sel, 1, 1, out) != 1 ||
			    fwrite(buf, 1, len, out) != len || fclose(out) != 0)
				fuzz_bug("cannot write seed %s", name);
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("STORK_FUZZ_WRITE_SEEDS");

	fuzz_setup();
	verbose = getenv("STORK_FUZZ_VERBOSE") && strcmp(getenv("STORK_FUZZ_VERBOSE"), "1") == 0;
	build_base();
	if (seeds && seeds[0]) {
		write_seeds(seeds);
		exit(0);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* One input */

static const int slot_key[NSLOTS] = {
    [S_ROOT] = K_ROOT,	     [S_TIMESTAMP] = K_TIMESTAMP, [S_SNAPSHOT] = K_SNAPSHOT,
    [S_TARGETS] = K_TARGETS, [S_ALICE] = K_ALICE,	  [S_BOB] = K_BOB,
    [S_CAROL] = K_CAROL,     [S_MANIFEST] = -1,
};

/* The input's bytes, re-signed by key k when they are {"signed": {...}, ...}; else as they
 * are. Its "signed.version" when it is a small positive integer, else 1. */
static void prepare(const uint8_t *data, size_t size, int k, bool resign, uint8_t **ret_buf,
		    size_t *ret_len, uint64_t *ret_version)
{
	json_t *doc = NULL, *s, *v;
	char *buf = NULL;
	size_t len = 0;

	*ret_version = 1;
	s = verify_json_parse(data, size, "input", &doc) == 0 ? json_object_get(doc, "signed")
							      : NULL;
	if (json_is_object(s)) {
		v = json_object_get(s, "version");
		if (json_is_integer(v) && json_integer_value(v) >= 1 &&
		    json_integer_value(v) <= 1000)
			*ret_version = (uint64_t)json_integer_value(v);
		if (resign && k >= 0 && meta_sign(s, &keys[k], 1, &buf, &len) == 0) {
			json_decref(doc);
			*ret_buf = (uint8_t *)buf;
			*ret_len = len;
			return;
		}
	}
	json_decref(doc);
	*ret_buf = malloc(size ? size : 1);
	if (!*ret_buf)
		fuzz_bug("out of memory");
	memcpy(*ret_buf, data, size);
	*ret_len = size;
}

static int role_of_slot(int slot)
{
	int i;

	for (i = 0; i < NROLES; i++)
		if (roles[i].slot == slot)
			return i;
	return -1;
}

/* Put the input's file into r, with the files that name it re-made. */
static void install(struct repo *r, int slot, const uint8_t *doc, size_t len, uint64_t version)
{
	char path[128], *buf = NULL, *alice = NULL;
	size_t blen = 0, alicelen = 0;
	json_t *t;
	int role;

	switch (slot) {
	case S_ROOT:
		repo_put(r, "metadata/2.root.json", doc, len);
		return;
	case S_TIMESTAMP:
		repo_put(r, "metadata/timestamp.json", doc, len);
		return;
	case S_SNAPSHOT:
		snprintf(path, sizeof(path), "metadata/%" PRIu64 ".snapshot.json", version);
		repo_put(r, path, doc, len);
		put_signed(r, "metadata/timestamp.json",
			   timestamp_signed(2, file_meta(version, doc, len)), K_TIMESTAMP);
		return;
	case S_TARGETS:
		snprintf(path, sizeof(path), "metadata/%" PRIu64 ".targets.json", version);
		repo_put(r, path, doc, len);
		sign(snapshot_signed(2, file_meta(version, doc, len), -1, NULL), K_SNAPSHOT, &buf,
		     &blen);
		break;
	case S_ALICE:
	case S_BOB:
	case S_CAROL:
		role = role_of_slot(slot);
		snprintf(path, sizeof(path), "metadata/%" PRIu64 ".%s.json", version,
			 roles[role].name);
		repo_put(r, path, doc, len);
		sign(snapshot_signed(2, file_meta(1, NULL, 0), role, file_meta(version, doc, len)),
		     K_SNAPSHOT, &buf, &blen);
		break;
	case S_MANIFEST:
		/* the input is hello 1.0's manifest: alice 2 signs it */
		put_manifest(r, "hello", "1.0", doc, len);
		t = json_deep_copy(role_targets[R_ALICE]);
		if (!t)
			fuzz_bug("out of memory");
		json_object_set_new(t, "hello/1.0.json", target_entry(doc, len));
		sign(role_signed(R_ALICE, 2, t), K_ALICE, &alice, &alicelen);
		json_decref(t);
		repo_put(r, "metadata/2.alice.json", alice, alicelen);
		sign(snapshot_signed(2, file_meta(1, NULL, 0), R_ALICE,
				     file_meta(2, (uint8_t *)alice, alicelen)),
		     K_SNAPSHOT, &buf, &blen);
		free(alice);
		break;
	}
	repo_put(r, "metadata/2.snapshot.json", buf, blen);
	put_signed(r, "metadata/timestamp.json",
		   timestamp_signed(2, file_meta(2, (uint8_t *)buf, blen)), K_TIMESTAMP);
	free(buf);
}

struct versions {
	uint64_t v[META_NROLES]; /* 0: not trusted */
};

static void versions_of(const struct verify_client *c, struct versions *ret)
{
	int i;

	for (i = 0; i < META_NROLES; i++)
		if (verify_client_role_info(c, meta_role_names[i], &ret->v[i], NULL) < 0)
			ret->v[i] = 0;
}

static void check_refresh(const struct versions *before, const struct verify_client *c, int r)
{
	struct versions after;
	int i;

	versions_of(c, &after);
	if (after.v[META_ROLE_ROOT] < before->v[META_ROLE_ROOT])
		fuzz_bug("trusted root went from version %" PRIu64 " to %" PRIu64,
			 before->v[META_ROLE_ROOT], after.v[META_ROLE_ROOT]);
	/* A rotation may drop what the new root no longer vouches for: nothing more to say. */
	if (after.v[META_ROLE_ROOT] != before->v[META_ROLE_ROOT])
		return;
	for (i = 0; i < META_NROLES; i++) {
		if (r < 0 && after.v[i] != before->v[i])
			fuzz_bug(
			    "a failed refresh (%d) changed the trusted %s from version %" PRIu64
			    " to %" PRIu64,
			    r, meta_role_names[i], before->v[i], after.v[i]);
		if (after.v[i] < before->v[i])
			fuzz_bug("trusted %s went from version %" PRIu64 " to %" PRIu64,
				 meta_role_names[i], before->v[i], after.v[i]);
	}
	if (r == 0 && !verify_client_usable(c))
		fuzz_bug("a successful refresh left the client unusable");
}

struct walk {
	struct verify_client *c;
	const struct verify_source *src;
	bool fixed_tree; /* the input cannot change the delegations: who signs what is known */
};

/* With the fixed delegation tree, who may have signed a target follows from its path. */
static void check_signer(const struct walk *w, const struct verify_target *t)
{
	int i;

	if (!w->fixed_tree)
		return;
	for (i = 0; i < NROLES; i++)
		if (strcmp(t->role, roles[i].name) == 0)
			break;
	if (i == NROLES)
		fuzz_bug("target %s: signed by role %s, which nobody delegates to", t->path,
			 t->role);
	if (fnmatch(roles[i].pattern, t->path, FNM_PATHNAME) != 0)
		fuzz_bug("target %s: role %s is only delegated %s", t->path, t->role,
			 roles[i].pattern);
	if (strcmp(t->keyid, verify_key_id(keys[roles[i].key])) != 0)
		fuzz_bug("target %s: key %s counted for role %s, not its key", t->path, t->keyid,
			 t->role);
	if (i != R_CAROL && fnmatch(roles[R_CAROL].pattern, t->path, FNM_PATHNAME) == 0)
		fuzz_bug("target %s: from %s, but carol's terminating delegation covers it",
			 t->path, t->role);
}

static int on_target(void *ctx, const struct verify_target *t)
{
	struct walk *w = ctx;
	struct verify_manifest *m = NULL;
	int r;

	if (verify_check_package_name(t->name) < 0 || verify_check_version(t->version) < 0)
		fuzz_bug("each_target passed target %s with a bad name or version", t->path);
	check_signer(w, t);
	r = verify_client_fetch_manifest(w->c, w->src, t, &m);
	if (verbose)
		fprintf(stderr, "fuzz_client: target %s (%s): manifest %d %s\n", t->path, t->role,
			r, r < 0 ? stork_error_detail() : "");
	if (r == 0) {
		if (strcmp(m->name, t->name) || strcmp(m->version, t->version))
			fuzz_bug("fetch_manifest returned %s %s for target %s", m->name, m->version,
				 t->path);
		verify_manifest_free(m);
	}
	return 0;
}

static void on_problem(void *ctx, const char *file, int err, const char *detail)
{
}

static void walk_targets(struct verify_client *c, const struct verify_source *src, bool fixed_tree)
{
	static const char *const probes[] = {
	    "hello/1.0.json", "hello/2.0.json", "hello/3.0.json",
	    "tool/1.0.json",  "hello/2.5.json", "other/1.json",
	};
	struct walk w = {.c = c, .src = src, .fixed_tree = fixed_tree};
	struct verify_target t = {0};
	size_t i;

	if (!verify_client_usable(c))
		return;
	verify_client_each_target(c, src, on_target, &w, on_problem, NULL);
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (verify_client_find_target(c, src, probes[i], &t) < 0)
			continue;
		if (strcmp(t.path, probes[i]))
			fuzz_bug("find_target %s returned %s", probes[i], t.path);
		check_signer(&w, &t);
		verify_target_fini(&t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct repo fuzzed = {0}, cache = {0};
	struct verify_source bsrc = source_of(&base), fsrc = source_of(&fuzzed);
	struct verify_cache vc = {.load = cache_load, .save = cache_save, .ctx = &cache};
	struct verify_client *c = NULL, *c2 = NULL;
	const struct file *root1 = repo_find(&base, "metadata/1.root.json");
	struct versions before;
	uint8_t sel, *doc = NULL;
	size_t len = 0;
	uint64_t version;
	char audit[64];
	bool fixed_tree;
	int slot, r;

	if (size < 1)
		return 0;
	sel = data[0];
	slot = sel & 0x07;
	fixed_tree = slot != S_TARGETS && slot != S_ALICE;
	prepare(data + 1, size - 1, slot_key[slot], sel & SEL_RESIGN, &doc, &len, &version);
	repo_copy(&fuzzed, &base);
	install(&fuzzed, slot, doc, len, version);

	if (verify_client_new(root1->buf, root1->len, FUZZ_NOW, &c) < 0)
		fuzz_bug("the fixed root does not verify");
	if ((sel & SEL_CACHE) && verify_client_set_cache(c, &vc) < 0)
		fuzz_bug("set_cache on an empty cache failed");
	if ((sel & SEL_TRUSTED) && verify_client_refresh(c, &bsrc) < 0)
		fuzz_bug("refresh from the fixed repository failed");

	versions_of(c, &before);
	r = verify_client_refresh(c, &fsrc);
	if (verbose)
		fprintf(stderr, "fuzz_client: %s, selector 0x%02x: refresh %d %s\n",
			slot_names[slot], sel, r, r < 0 ? stork_error_detail() : "");
	check_refresh(&before, c, r);
	walk_targets(c, &fsrc, fixed_tree);
	if (slot != S_MANIFEST) {
		snprintf(audit, sizeof(audit), "metadata/1.%s.json", slot_names[slot]);
		verify_client_audit_file(c, audit, doc, len);
	}

	if (sel & SEL_CACHE) {
		/* A restart: the cache alone brings back the trusted state. */
		struct versions restarted;

		versions_of(c, &before);
		if (verify_client_new(root1->buf, root1->len, FUZZ_NOW, &c2) < 0)
			fuzz_bug("the fixed root does not verify");
		if (verify_client_set_cache(c2, &vc) < 0)
			fuzz_bug("set_cache on an in-memory cache failed");
		versions_of(c2, &restarted);
		for (int i = 0; i < META_NROLES; i++)
			if (restarted.v[i] != before.v[i])
				fuzz_bug("after a restart from the cache the trusted %s is version "
					 "%" PRIu64 ", before it was %" PRIu64,
					 meta_role_names[i], restarted.v[i], before.v[i]);
		before = restarted;
		walk_targets(c2, &fsrc, fixed_tree);
		r = verify_client_refresh(c2, &fsrc);
		check_refresh(&before, c2, r);
	}

	verify_client_free(c2);
	verify_client_free(c);
	repo_fini(&fuzzed);
	repo_fini(&cache);
	free(doc);
	stork_error_clear();
	return 0;
}
