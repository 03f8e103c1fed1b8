/* verify/client.c: the TUF 1.0 client workflow ("Detailed client workflow", 5.3 to 5.7) over a
 * verify_source, keeping the trusted state the way python-tuf's TrustedMetadataSet does: each
 * new file is checked against what is already trusted before it replaces it. A refresh stages
 * the new timestamp, snapshot and targets and swaps them in together, so that a failed refresh
 * leaves the previous state usable (offline); verify/cache.c keeps that state across restarts. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/client.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/manifest.h"
#include "verify/tuf.h"

void verify_target_fini(struct verify_target *t)
{
	if (!t)
		return;
	free(t->path);
	free(t->name);
	free(t->version);
	free(t->role);
	free(t->keyid);
	memset(t, 0, sizeof(*t));
}

void client_roles_clear(struct verify_client *c)
{
	size_t i;

	for (i = 0; i < c->nroles; i++) {
		free(c->roles[i].name);
		meta_free(c->roles[i].m);
		free(c->roles[i].detail);
		free(c->roles[i].file);
		free(c->roles[i].keyid);
	}
	free(c->roles);
	c->roles = NULL;
	c->nroles = 0;
}

/* Forget the roles whose loading failed, so that they are tried again (the transport may be
 * back). No loaded role's delegation points into a failed one: it has no metadata. */
static void roles_drop_failed(struct verify_client *c)
{
	size_t i, n = 0;

	for (i = 0; i < c->nroles; i++) {
		struct client_role *cr = &c->roles[i];

		if (cr->err == 0) {
			c->roles[n++] = *cr;
			continue;
		}
		free(cr->name);
		meta_free(cr->m);
		free(cr->detail);
		free(cr->file);
		free(cr->keyid);
	}
	c->nroles = n;
}

char *client_file_name(const struct meta *root, uint64_t version, const char *role)
{
	if (root->consistent_snapshot)
		return meta_asprintf("metadata/%" PRIu64 ".%s.json", version, role);
	return meta_asprintf("metadata/%s.json", role);
}

int client_meta_check(const struct meta *m, const struct meta_file *mf, const char *by)
{
	uint8_t digest[VERIFY_HASH_LEN];
	int r;

	r = meta_check_version(m, mf->version, by);
	if (r < 0)
		return r;
	if (mf->has_length && m->rawlen != mf->length) {
		stork_errorf("%s: %zu bytes, but %s gives its length as %" PRIu64, m->file,
			     m->rawlen, by, mf->length);
		return STORK_EBADLEN;
	}
	if (mf->has_hash) {
		r = verify_sha256(m->raw, m->rawlen, digest);
		if (r < 0)
			return r;
		if (memcmp(digest, mf->hash, VERIFY_HASH_LEN) != 0) {
			stork_errorf("%s: SHA-256 does not match the hash %s gives", m->file, by);
			return STORK_EBADHASH;
		}
	}
	return 0;
}

int client_root_step(const struct meta *prev, const struct meta *m, uint64_t want)
{
	char oldrole[96];
	int r;

	snprintf(oldrole, sizeof(oldrole), "root of %s", prev->file);
	r = meta_check_sigs(m, oldrole, &prev->keys, &prev->roles[META_ROLE_ROOT], NULL);
	if (r < 0)
		return r;
	r = meta_check_sigs(m, "root", &m->keys, &m->roles[META_ROLE_ROOT], NULL);
	if (r < 0)
		return r;
	return meta_check_version(m, want, "its file name");
}

int verify_client_new(const uint8_t *root, size_t len, time_t now, struct verify_client **ret_c)
{
	struct verify_client *c;
	struct meta *m = NULL;
	char *file = NULL;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->now = now;
	c->check_expiry = true;
	r = meta_parse(root, len, "pinned root", META_ROOT, &m);
	if (r < 0)
		goto out;
	/* From here on the pinned root is named as the repository names it. */
	file = meta_asprintf("metadata/%" PRIu64 ".root.json", m->version);
	if (!file) {
		r = -ENOMEM;
		goto out;
	}
	free(m->file);
	m->file = file;
	r = meta_check_sigs(m, "root", &m->keys, &m->roles[META_ROLE_ROOT], NULL);
	if (r < 0)
		goto out;
	c->pinned_raw = malloc(len);
	if (!c->pinned_raw) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(c->pinned_raw, root, len);
	c->pinned_len = len;
	c->root = m;
	m = NULL;
out:
	meta_free(m);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret_c = c;
	return 0;
}

void verify_client_free(struct verify_client *c)
{
	if (!c)
		return;
	client_roles_clear(c);
	meta_free(c->root);
	meta_free(c->timestamp);
	meta_free(c->snapshot);
	meta_free(c->targets);
	free(c->targets_keyid);
	free(c->cache_note);
	free(c->pinned_raw);
	for (size_t i = 0; i < c->nhist; i++)
		meta_free(c->hist[i]);
	free(c->hist);
	free(c);
}

bool verify_client_usable(const struct verify_client *c)
{
	return c->root && c->timestamp && c->snapshot && c->targets;
}

static bool same_keys(const struct meta_delegation *a, const struct meta_delegation *b)
{
	size_t i;

	if (a->nkeyids != b->nkeyids || a->threshold != b->threshold)
		return false;
	for (i = 0; i < a->nkeyids; i++)
		if (!meta_delegation_has_key(b, a->keyids[i]))
			return false;
	return true;
}

/* Before trusting newroot: forget what it no longer vouches for, in the cache first (so that a
 * crash in between never leaves the cache holding more than memory). Timestamp and snapshot go
 * whenever their keys changed (5.3.11: a compromised key may have pushed their versions up,
 * fast-forward attack recovery); targets goes when its signatures no longer meet newroot's
 * targets threshold. */
static int drop_after_rotation(struct verify_client *c, const struct meta *newroot)
{
	const char *keyid = NULL;
	char *kid = NULL;
	int r;

	if (!same_keys(&c->root->roles[META_ROLE_TIMESTAMP],
		       &newroot->roles[META_ROLE_TIMESTAMP]) ||
	    !same_keys(&c->root->roles[META_ROLE_SNAPSHOT], &newroot->roles[META_ROLE_SNAPSHOT])) {
		r = client_cache_forget(c, "timestamp.json");
		if (r < 0)
			return r;
		r = client_cache_forget(c, "snapshot.json");
		if (r < 0)
			return r;
		meta_free(c->timestamp);
		c->timestamp = NULL;
		meta_free(c->snapshot);
		c->snapshot = NULL;
		client_roles_clear(c);
	}
	if (!c->targets)
		return 0;
	if (meta_check_sigs(c->targets, "targets", &newroot->keys,
			    &newroot->roles[META_ROLE_TARGETS], &keyid) == 0) {
		kid = strdup(keyid);
		if (!kid)
			return -ENOMEM;
		free(c->targets_keyid);
		c->targets_keyid = kid;
		return 0;
	}
	r = client_cache_forget(c, "targets.json");
	if (r < 0)
		return r;
	meta_free(c->targets);
	c->targets = NULL;
	free(c->targets_keyid);
	c->targets_keyid = NULL;
	client_roles_clear(c);
	return 0;
}

/* Persist a trusted root: "<v>.root.json" (a link of the chain a later start walks from its
 * pinned root), then "root.json" (the newest). */
static int save_root(struct verify_client *c, const struct meta *m)
{
	char name[64];
	int r;

	if (!c->has_cache)
		return 0;
	snprintf(name, sizeof(name), "%" PRIu64 ".root.json", m->version);
	r = client_cache_save(c, name, m);
	if (r < 0)
		return r;
	r = client_cache_save(c, "root.json", m);
	if (r < 0)
		return r;
	c->cache_root_current = true;
	return 0;
}

/* meta_want.check for root probes: the next root in the chain from c's. */
static int root_step_check(void *ctx, const struct meta *m)
{
	const struct verify_client *c = ctx;

	return client_root_step(c->root, m, c->root->version + 1);
}

/* meta_want.check for timestamp.json: not older than the trusted one, nor naming an older
 * snapshot (5.4.3, 5.4.4), so that a mirror serving an old timestamp is passed over. */
static int timestamp_check(void *ctx, const struct meta *m)
{
	const struct verify_client *c = ctx;
	const struct meta_file *now, *old;

	if (!c->timestamp)
		return 0;
	if (m->version < c->timestamp->version) {
		stork_errorf("%s: version %" PRIu64 " is older than the trusted version %" PRIu64,
			     m->file, m->version, c->timestamp->version);
		return STORK_EROLLBACK;
	}
	now = meta_find_file(m, "snapshot.json");
	old = meta_find_file(c->timestamp, "snapshot.json");
	if (now && old && now->version < old->version) {
		stork_errorf("%s: snapshot version %" PRIu64
			     " is older than the trusted snapshot version %" PRIu64,
			     m->file, now->version, old->version);
		return STORK_EROLLBACK;
	}
	return 0;
}

/* 5.3: every root version after the trusted one, each signed by a threshold of the old root
 * keys and of its own, each exactly one version later. Each is trusted (and persisted) as soon
 * as it verifies (5.3.8), whatever happens to the rest of the refresh. */
static int update_root(struct verify_client *c, const struct verify_source *src)
{
	struct meta *m = NULL;
	char file[64];
	int i, r = 0;

	for (i = 0; i < VERIFY_MAX_ROOT_ROTATIONS; i++) {
		uint64_t next = c->root->version + 1;
		/* Every mirror is asked: one that withholds a rotation (answers "not found")
		 * must not keep the client on keys the repository has replaced. */
		struct meta_want w = {.check = root_step_check, .ctx = c, .every = true};

		snprintf(file, sizeof(file), "metadata/%" PRIu64 ".root.json", next);
		r = meta_load_want(src, file, VERIFY_MAX_ROOT_LEN, META_ROOT, &w, &m);
		if (r == -ENOENT) {
			r = 0;
			break;
		}
		if (r < 0)
			goto out;
		r = client_root_step(c->root, m, next);
		if (r < 0)
			goto out;
		r = drop_after_rotation(c, m);
		if (r < 0)
			goto out;
		r = save_root(c, m);
		if (r < 0)
			goto out;
		meta_free(c->root);
		c->root = m;
		m = NULL;
	}
	if (!c->cache_root_current) {
		r = save_root(c, c->root);
		if (r < 0)
			goto out;
	}
	if (c->check_expiry)
		r = meta_check_expiry(c->root, "root", c->now);
out:
	meta_free(m);
	return r;
}

/* What a refresh has verified so far and not yet swapped in; NULL keeps the trusted file. */
struct stage {
	struct meta *timestamp;
	struct meta *snapshot;
	struct meta *targets;
	char *targets_keyid;
};

static void stage_fini(struct stage *st)
{
	meta_free(st->timestamp);
	meta_free(st->snapshot);
	meta_free(st->targets);
	free(st->targets_keyid);
}

static const struct meta *staged_timestamp(const struct verify_client *c, const struct stage *st)
{
	return st->timestamp ? st->timestamp : c->timestamp;
}

static const struct meta *staged_snapshot(const struct verify_client *c, const struct stage *st)
{
	return st->snapshot ? st->snapshot : c->snapshot;
}

static const struct meta *staged_targets(const struct verify_client *c, const struct stage *st)
{
	return st->targets ? st->targets : c->targets;
}

/* 5.4 */
static int update_timestamp(struct verify_client *c, const struct verify_source *src,
			    struct stage *st)
{
	const char *file = "metadata/timestamp.json";
	struct meta *m = NULL;
	int r;

	struct meta_want w = {
	    .role = "timestamp",
	    .keys = &c->root->keys,
	    .del = &c->root->roles[META_ROLE_TIMESTAMP],
	    .check = timestamp_check,
	    .ctx = c,
	    .every = true, /* the newest any mirror has: a withholding mirror is told */
	};

	r = meta_load_want(src, file, VERIFY_MAX_TIMESTAMP_LEN, META_TIMESTAMP, &w, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "timestamp", &c->root->keys, &c->root->roles[META_ROLE_TIMESTAMP],
			    NULL);
	if (r < 0)
		goto out;
	if (c->timestamp) {
		uint64_t oldsnap = meta_find_file(c->timestamp, "snapshot.json")->version;
		uint64_t newsnap = meta_find_file(m, "snapshot.json")->version;

		if (m->version < c->timestamp->version) {
			stork_errorf("%s: version %" PRIu64
				     " is older than the trusted version %" PRIu64,
				     file, m->version, c->timestamp->version);
			r = STORK_EROLLBACK;
			goto out;
		}
		if (m->version == c->timestamp->version) {
			/* nothing new: keep what is trusted */
			meta_free(m);
			m = NULL;
			goto expiry;
		}
		if (newsnap < oldsnap) {
			stork_errorf("%s: snapshot version %" PRIu64
				     " is older than the trusted snapshot version %" PRIu64,
				     file, newsnap, oldsnap);
			r = STORK_EROLLBACK;
			goto out;
		}
	}
	st->timestamp = m;
	m = NULL;
expiry:
	r = c->check_expiry ? meta_check_expiry(staged_timestamp(c, st), "timestamp", c->now) : 0;
out:
	meta_free(m);
	return r;
}

/* 5.5 */
static int update_snapshot(struct verify_client *c, const struct verify_source *src,
			   struct stage *st)
{
	const struct meta_file *sf = meta_find_file(staged_timestamp(c, st), "snapshot.json");
	struct meta_want w;
	struct meta *m = NULL;
	char *file = NULL;
	size_t i;
	int r;

	/* The trusted snapshot is the one the timestamp names: nothing to fetch. */
	if (c->snapshot && client_meta_check(c->snapshot, sf, "metadata/timestamp.json") == 0)
		goto expiry;
	file = client_file_name(c->root, sf->version, "snapshot");
	if (!file)
		return -ENOMEM;
	/* length and hash against the timestamp before anything else looks at the bytes */
	w = (struct meta_want){
	    .expect = sf,
	    .by = "metadata/timestamp.json",
	    .role = "snapshot",
	    .keys = &c->root->keys,
	    .del = &c->root->roles[META_ROLE_SNAPSHOT],
	};
	r = meta_load_want(src, file, VERIFY_MAX_SNAPSHOT_LEN, META_SNAPSHOT, &w, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "snapshot", &c->root->keys, &c->root->roles[META_ROLE_SNAPSHOT],
			    NULL);
	if (r < 0)
		goto out;
	r = meta_check_version(m, sf->version, "metadata/timestamp.json");
	if (r < 0)
		goto out;
	if (c->snapshot && m->version < c->snapshot->version) {
		stork_errorf("%s: version %" PRIu64 " is older than the trusted version %" PRIu64,
			     file, m->version, c->snapshot->version);
		r = STORK_EROLLBACK;
		goto out;
	}
	for (i = 0; c->snapshot && i < c->snapshot->nfiles; i++) {
		const struct meta_file *old = &c->snapshot->files[i];
		const struct meta_file *now = meta_find_file(m, old->name);

		if (!now) {
			stork_errorf("%s: %s is no longer listed (the trusted %s lists it)", file,
				     old->name, c->snapshot->file);
			r = STORK_EROLLBACK;
			goto out;
		}
		if (now->version < old->version) {
			stork_errorf("%s: %s version %" PRIu64
				     " is older than the trusted version %" PRIu64,
				     file, old->name, now->version, old->version);
			r = STORK_EROLLBACK;
			goto out;
		}
	}
	st->snapshot = m;
	m = NULL;
expiry:
	r = c->check_expiry ? meta_check_expiry(staged_snapshot(c, st), "snapshot", c->now) : 0;
out:
	meta_free(m);
	free(file);
	return r;
}

/* 5.6 */
static int update_targets(struct verify_client *c, const struct verify_source *src,
			  struct stage *st)
{
	const struct meta *snap = staged_snapshot(c, st);
	const struct meta_file *tf = meta_find_file(snap, "targets.json");
	const char *keyid = NULL;
	struct meta_want w;
	struct meta *m = NULL;
	char *file = NULL;
	int r;

	/* The trusted targets is the one the snapshot names: nothing to fetch. */
	if (c->targets && client_meta_check(c->targets, tf, snap->file) == 0)
		goto expiry;
	file = client_file_name(c->root, tf->version, "targets");
	if (!file)
		return -ENOMEM;
	w = (struct meta_want){
	    .expect = tf,
	    .by = snap->file,
	    .role = "targets",
	    .keys = &c->root->keys,
	    .del = &c->root->roles[META_ROLE_TARGETS],
	};
	r = meta_load_want(src, file, VERIFY_MAX_TARGETS_LEN, META_TARGETS, &w, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "targets", &c->root->keys, &c->root->roles[META_ROLE_TARGETS],
			    &keyid);
	if (r < 0)
		goto out;
	r = meta_check_version(m, tf->version, snap->file);
	if (r < 0)
		goto out;
	/* The snapshot's versions already never decrease; this holds when no snapshot was
	 * trusted (the cache lost it) but a targets file was. */
	if (c->targets && m->version < c->targets->version) {
		stork_errorf("%s: version %" PRIu64 " is older than the trusted version %" PRIu64,
			     file, m->version, c->targets->version);
		r = STORK_EROLLBACK;
		goto out;
	}
	st->targets_keyid = strdup(keyid);
	if (!st->targets_keyid) {
		r = -ENOMEM;
		goto out;
	}
	st->targets = m;
	m = NULL;
expiry:
	r = c->check_expiry ? meta_check_expiry(staged_targets(c, st), "targets", c->now) : 0;
out:
	meta_free(m);
	free(file);
	return r;
}

/* Persist the staged files top-down, then swap them in. A crash part way leaves the newest
 * timestamp in the cache (the strongest rollback floor) with a snapshot or targets that no
 * longer matches it, which the next start ignores and the next refresh replaces; a failed save
 * stops the saving for the same reason. The new state is in use even when saving failed: the
 * error only says that persisting it did. */
static int commit(struct verify_client *c, struct stage *st)
{
	int r = 0;

	if (st->timestamp)
		r = client_cache_save(c, "timestamp.json", st->timestamp);
	if (r == 0 && st->snapshot)
		r = client_cache_save(c, "snapshot.json", st->snapshot);
	if (r == 0 && st->targets)
		r = client_cache_save(c, "targets.json", st->targets);
	/* Delegated roles were loaded against the snapshot's versions and the targets' keys. */
	if (st->snapshot || st->targets)
		client_roles_clear(c);
	if (st->timestamp) {
		meta_free(c->timestamp);
		c->timestamp = st->timestamp;
		st->timestamp = NULL;
	}
	if (st->snapshot) {
		meta_free(c->snapshot);
		c->snapshot = st->snapshot;
		st->snapshot = NULL;
	}
	if (st->targets) {
		meta_free(c->targets);
		c->targets = st->targets;
		st->targets = NULL;
		free(c->targets_keyid);
		c->targets_keyid = st->targets_keyid;
		st->targets_keyid = NULL;
	}
	return r;
}

int verify_client_refresh(struct verify_client *c, const struct verify_source *src)
{
	struct stage st = {0};
	int r;

	roles_drop_failed(c);
	r = update_root(c, src);
	if (r < 0)
		return r;
	r = update_timestamp(c, src, &st);
	if (r < 0)
		goto out;
	r = update_snapshot(c, src, &st);
	if (r < 0)
		goto out;
	r = update_targets(c, src, &st);
	if (r < 0)
		goto out;
	r = commit(c, &st);
out:
	stage_fini(&st);
	return r;
}

int verify_client_role_info(const struct verify_client *c, const char *role, uint64_t *ret_version,
			    time_t *ret_expires)
{
	const struct meta *m = NULL;

	if (strcmp(role, "root") == 0)
		m = c->root;
	else if (strcmp(role, "timestamp") == 0)
		m = c->timestamp;
	else if (strcmp(role, "snapshot") == 0)
		m = c->snapshot;
	else if (strcmp(role, "targets") == 0)
		m = c->targets;
	if (!m)
		return -ENOENT;
	if (ret_version)
		*ret_version = m->version;
	if (ret_expires)
		*ret_expires = m->expires;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* 5.7: the target file itself */

int verify_client_fetch_manifest(struct verify_client *c, const struct verify_source *src,
				 const struct verify_target *t, struct verify_manifest **ret_m)
{
	(void)c;
	return verify_fetch_manifest(src, t, ret_m);
}

/* The repository file of t's manifest (malloc'd; NULL on -ENOMEM). */
static char *target_file(const struct verify_target *t)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(t->hash, VERIFY_HASH_LEN, hex);
	/* name and version passed the charset check, so this is a plain relative path */
	return meta_asprintf("targets/%s/%s.%s.json", t->name, hex, t->version);
}

/* Parse bytes that match t's signed length and hash, and check that they describe t. */
static int parse_target(const struct verify_target *t, const char *file, const void *buf,
			size_t len, struct verify_manifest **ret_m)
{
	struct verify_manifest *m = NULL;
	int r;

	r = verify_manifest_parse(buf, len, file, &m);
	if (r < 0)
		return r;
	if (strcmp(m->name, t->name) != 0 || strcmp(m->version, t->version) != 0) {
		stork_errorf("%s: the manifest describes %s %s, but it is signed as %s %s", file,
			     m->name, m->version, t->name, t->version);
		verify_manifest_free(m);
		return STORK_EFORMAT;
	}
	*ret_m = m;
	return 0;
}

int verify_fetch_manifest(const struct verify_source *src, const struct verify_target *t,
			  struct verify_manifest **ret_m)
{
	return verify_fetch_manifest_raw(src, t, ret_m, NULL, NULL);
}

int verify_fetch_manifest_raw(const struct verify_source *src, const struct verify_target *t,
			      struct verify_manifest **ret_m, uint8_t **ret_buf, size_t *ret_len)
{
	struct meta_file expect = {.has_length = true, .length = t->length, .has_hash = true};
	struct verify_manifest *m = NULL;
	char *file = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	memcpy(expect.hash, t->hash, VERIFY_HASH_LEN);
	file = target_file(t);
	if (!file)
		return -ENOMEM;
	if (t->length > VERIFY_MAX_MANIFEST_LEN) {
		stork_errorf("%s: signed length %" PRIu64 " is over the %d-byte manifest limit",
			     file, t->length, VERIFY_MAX_MANIFEST_LEN);
		r = STORK_ETOOBIG;
		goto out;
	}
	r = meta_fetch(src, file, VERIFY_MAX_MANIFEST_LEN, &expect, &buf, &len);
	if (r < 0)
		goto out;
	r = parse_target(t, file, buf, len, &m);
	if (r < 0)
		goto out;
	*ret_m = m;
	m = NULL;
	if (ret_buf) {
		*ret_buf = buf;
		*ret_len = len;
		buf = NULL;
	}
out:
	verify_manifest_free(m);
	free(buf);
	free(file);
	return r;
}

int verify_check_manifest(const struct verify_target *t, const void *buf, size_t len,
			  struct verify_manifest **ret_m)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char got[VERIFY_HASH_HEX], want[VERIFY_HASH_HEX];
	char *file = target_file(t);
	int r;

	if (!file)
		return -ENOMEM;
	if (len != t->length) {
		stork_errorf("%s: %zu bytes, but its signed length is %" PRIu64, file, len,
			     t->length);
		r = STORK_EBADLEN;
		goto out;
	}
	r = verify_sha256(buf, len, digest);
	if (r < 0)
		goto out;
	if (memcmp(digest, t->hash, VERIFY_HASH_LEN) != 0) {
		verify_hex(digest, VERIFY_HASH_LEN, got);
		verify_hex(t->hash, VERIFY_HASH_LEN, want);
		stork_errorf("%s: SHA-256 %s does not match the signed hash %s", file, got, want);
		r = STORK_EBADHASH;
		goto out;
	}
	r = parse_target(t, file, buf, len, ret_m);
out:
	free(file);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Auditing old versions */

/* Who signs role `name`: a top-level role listed in root, or a delegation found in the
 * top-level targets or in a delegated role loaded since the last refresh. */
static int find_signer(const struct verify_client *c, const char *name, enum meta_type *ret_type,
		       const struct meta_keyring **ret_keys, const struct meta_delegation **ret_del)
{
	static const enum meta_type types[META_NROLES] = {META_ROOT, META_TARGETS, META_SNAPSHOT,
							  META_TIMESTAMP};
	const struct meta_delegation *d;

	for (int i = 0; i < META_NROLES; i++) {
		if (strcmp(name, meta_role_names[i]) == 0) {
			*ret_type = types[i];
			*ret_keys = &c->root->keys;
			*ret_del = &c->root->roles[i];
			return 0;
		}
	}
	if (c->targets && (d = meta_find_delegation(c->targets, name))) {
		*ret_type = META_TARGETS;
		*ret_keys = &c->targets->keys;
		*ret_del = d;
		return 0;
	}
	for (size_t i = 0; i < c->nroles; i++) {
		const struct meta *m = c->roles[i].m;

		if (m && (d = meta_find_delegation(m, name))) {
			*ret_type = META_TARGETS;
			*ret_keys = &m->keys;
			*ret_del = d;
			return 0;
		}
	}
	return -ENOENT;
}

/* Whether m (version v of role `role`) is signed by a threshold of the keys some metadata h
 * gives that role: a root for a top-level role, a delegating role for a delegated one, or, for
 * the placeholder `stork repo revoke` leaves, a top-level targets that marks version v of the
 * role revoked, together with the targets keys of a root. @return 0; STORK_EBADSIG; -ENOENT
 * when h says nothing about the role. */
static int audit_against(const struct verify_client *c, const struct meta *m, const char *role,
			 int top, const struct meta *h)
{
	const struct meta_delegation *d;
	json_t *rv;

	if (top >= 0)
		return h->type == META_ROOT
			   ? meta_check_sigs(m, role, &h->keys, &h->roles[top], NULL)
			   : -ENOENT;
	if (h->type != META_TARGETS)
		return -ENOENT;
	d = meta_find_delegation(h, role);
	if (d)
		return meta_check_sigs(m, role, &h->keys, d, NULL);
	rv = json_object_get(json_object_get(h->signed_json, META_REVOKED_FIELD), role);
	if (!json_is_integer(rv) || json_integer_value(rv) < 0 ||
	    (uint64_t)json_integer_value(rv) != m->version)
		return -ENOENT;
	/* a revocation placeholder: signed with the targets key of some trusted root */
	if (meta_check_sigs(m, role, &c->root->keys, &c->root->roles[META_ROLE_TARGETS], NULL) == 0)
		return 0;
	for (size_t i = 0; i < c->nhist; i++)
		if (c->hist[i]->type == META_ROOT &&
		    meta_check_sigs(m, role, &c->hist[i]->keys,
				    &c->hist[i]->roles[META_ROLE_TARGETS], NULL) == 0)
			return 0;
	return STORK_EBADSIG;
}

int verify_client_audit_file(struct verify_client *c, const char *file, const uint8_t *buf,
			     size_t len)
{
	const struct meta_delegation *del = NULL;
	const struct meta_keyring *keys = NULL;
	const char *base = strrchr(file, '/'), *dot;
	enum meta_type type = META_TARGETS;
	char detail[1024] = "";
	struct meta *m = NULL, **hist;
	char *role = NULL;
	int r, top = -1;

	base = base ? base + 1 : file;
	dot = strchr(base, '.');
	if (!dot || strlen(dot) <= 6 || strcmp(base + strlen(base) - 5, ".json")) {
		stork_errorf("%s: not a versioned metadata file name (N.ROLE.json)", file);
		return STORK_EFORMAT;
	}
	role = strndup(dot + 1, strlen(dot + 1) - 5);
	if (!role)
		return -ENOMEM;
	for (int i = 0; i < META_NROLES; i++)
		if (strcmp(role, meta_role_names[i]) == 0)
			top = i;
	if (top == META_ROLE_ROOT && len == c->pinned_len && !memcmp(buf, c->pinned_raw, len)) {
		r = meta_parse(buf, len, file, META_ROOT, &m); /* the pinned root itself */
		goto trusted;
	}
	if (find_signer(c, role, &type, &keys, &del) < 0) {
		keys = NULL;
		snprintf(detail, sizeof(detail),
			 "%s: no trusted metadata delegates a role named \"%s\"", file, role);
	}
	r = meta_parse(buf, len, file, type, &m);
	if (r < 0)
		goto out;
	if (keys) {
		r = meta_check_sigs(m, role, keys, del, NULL);
		if (r == 0)
			goto trusted;
		snprintf(detail, sizeof(detail), "%s", stork_error_detail());
	}
	/* Signed before a rotation, a rekey or a revocation: the keys of an older root or of an
	 * older version of a delegating role audited before may sign it. */
	for (size_t i = 0; i < c->nhist; i++) {
		if (audit_against(c, m, role, top, c->hist[i]) == 0) {
			r = 0;
			goto trusted;
		}
	}
	if (top < 0 && (audit_against(c, m, role, top, c->targets) == 0)) {
		r = 0;
		goto trusted;
	}
	stork_errorf("%s", detail);
	r = keys ? STORK_EBADSIG : -ENOENT;
	goto out;
trusted:
	if (r < 0)
		goto out;
	/* Remember what may have signed older files of other roles. */
	if (m->type == META_ROOT || (m->type == META_TARGETS && (m->ndels || top >= 0))) {
		hist = realloc(c->hist, (c->nhist + 1) * sizeof(*hist));
		if (!hist) {
			r = -ENOMEM;
			goto out;
		}
		c->hist = hist;
		c->hist[c->nhist++] = m;
		m = NULL;
	}
out:
	meta_free(m);
	free(role);
	return r;
}
