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

#include "verify/client.h"
#include "verify/error.h"
#include "verify/hash.h"
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
	c->pinned_expires = 0;
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

/* What a refresh has verified so far and not yet swapped in; NULL keeps the trusted file. A
 * step stages what it loaded before its last checks: when one fails, the refresh drops the
 * whole stage. */
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

/* The role's expiry when the client checks expiry: 0 or meta_check_expiry's error. */
static int staged_expiry(const struct verify_client *c, const struct meta *m, const char *role)
{
	return c->check_expiry ? meta_check_expiry(m, role, c->now) : 0;
}

/* The rollback checks of 5.4 of timestamp m (read from file) against the trusted one.
 * @return 0 (newer); 1 (the same version: nothing new); STORK_EROLLBACK. */
static int timestamp_newer(const struct meta *trusted, const struct meta *m, const char *file)
{
	uint64_t oldsnap = meta_find_file(trusted, "snapshot.json")->version;
	uint64_t newsnap = meta_find_file(m, "snapshot.json")->version;

	if (m->version < trusted->version) {
		stork_errorf("%s: version %" PRIu64 " is older than the trusted version %" PRIu64,
			     file, m->version, trusted->version);
		return STORK_EROLLBACK;
	}
	if (m->version == trusted->version)
		return 1;
	if (newsnap < oldsnap) {
		stork_errorf("%s: snapshot version %" PRIu64
			     " is older than the trusted snapshot version %" PRIu64,
			     file, newsnap, oldsnap);
		return STORK_EROLLBACK;
	}
	return 0;
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
	if (r == 0)
		r = meta_check_sigs(m, "timestamp", &c->root->keys,
				    &c->root->roles[META_ROLE_TIMESTAMP], NULL);
	if (r == 0 && c->timestamp)
		r = timestamp_newer(c->timestamp, m, file);
	if (r == 0) {
		st->timestamp = m;
		return 0;
	}
	meta_free(m);
	return r == 1 ? 0 : r; /* the same version: keep what is trusted */
}

/* Top-level role `role` (snapshot or targets, of `type`) in the version `by` names in
 * `expect`: its length and hash against `expect` before anything else looks at the bytes, then
 * its root-held keys, that version, and never older than the trusted one. *ret_file (the
 * file's name, for messages) is set either way; the caller frees it. @return 0 (*ret_m the
 * metadata, *ret_keyid when asked: the key that signed it, borrowed from m); -ENOMEM;
 * meta_load_want's, meta_check_sigs' and meta_check_version's; STORK_EROLLBACK. */
static int load_role(struct verify_client *c, const struct verify_source *src,
		     enum meta_toprole role, enum meta_type type, size_t maxlen,
		     const struct meta_file *expect, const char *by, const struct meta *trusted,
		     const char **ret_keyid, char **ret_file, struct meta **ret_m)
{
	const char *name = meta_role_names[role];
	struct meta_want w = {
	    .expect = expect,
	    .by = by,
	    .role = name,
	    .keys = &c->root->keys,
	    .del = &c->root->roles[role],
	};
	struct meta *m = NULL;
	char *file;
	int r;

	file = client_file_name(c->root, expect->version, name);
	*ret_file = file;
	if (!file)
		return -ENOMEM;
	r = meta_load_want(src, file, maxlen, type, &w, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, name, &c->root->keys, &c->root->roles[role], ret_keyid);
	if (r < 0)
		goto out;
	r = meta_check_version(m, expect->version, by);
	if (r < 0)
		goto out;
	if (trusted && m->version < trusted->version) {
		stork_errorf("%s: version %" PRIu64 " is older than the trusted version %" PRIu64,
			     file, m->version, trusted->version);
		r = STORK_EROLLBACK;
		goto out;
	}
	*ret_m = m;
	m = NULL;
out:
	meta_free(m);
	return r;
}

/* The rollback check of 5.5: every file the trusted snapshot lists is still listed in the new
 * one m (read from file), at no lower version. @return 0; STORK_EROLLBACK. */
static int snapshot_keeps_files(const struct meta *trusted, const struct meta *m, const char *file)
{
	for (size_t i = 0; i < trusted->nfiles; i++) {
		const struct meta_file *old = &trusted->files[i];
		const struct meta_file *now = meta_find_file(m, old->name);

		if (!now) {
			stork_errorf("%s: %s is no longer listed (the trusted %s lists it)", file,
				     old->name, trusted->file);
			return STORK_EROLLBACK;
		}
		if (now->version < old->version) {
			stork_errorf("%s: %s version %" PRIu64
				     " is older than the trusted version %" PRIu64,
				     file, old->name, now->version, old->version);
			return STORK_EROLLBACK;
		}
	}
	return 0;
}

/* 5.5 */
static int update_snapshot(struct verify_client *c, const struct verify_source *src,
			   struct stage *st)
{
	const struct meta_file *sf = meta_find_file(staged_timestamp(c, st), "snapshot.json");
	char *file = NULL;
	int r;

	/* The trusted snapshot is the one the timestamp names: nothing to fetch. */
	if (c->snapshot && client_meta_check(c->snapshot, sf, "metadata/timestamp.json") == 0)
		return 0;
	r = load_role(c, src, META_ROLE_SNAPSHOT, META_SNAPSHOT, VERIFY_MAX_SNAPSHOT_LEN, sf,
		      "metadata/timestamp.json", c->snapshot, NULL, &file, &st->snapshot);
	if (r == 0 && c->snapshot)
		r = snapshot_keeps_files(c->snapshot, st->snapshot, file);
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
	char *file = NULL;
	int r;

	/* The trusted targets is the one the snapshot names: nothing to fetch. */
	if (c->targets && client_meta_check(c->targets, tf, snap->file) == 0)
		return 0;
	/* The snapshot's versions already never decrease; the rollback check against the
	 * trusted targets holds when no snapshot was trusted (the cache lost it) but a targets
	 * file was. */
	r = load_role(c, src, META_ROLE_TARGETS, META_TARGETS, VERIFY_MAX_TARGETS_LEN, tf,
		      snap->file, c->targets, &keyid, &file, &st->targets);
	free(file);
	if (r < 0)
		return r;
	st->targets_keyid = strdup(keyid);
	return st->targets_keyid ? 0 : -ENOMEM;
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
	/* Each role's expiry is checked before the next is fetched (5.4.4, 5.5.6, 5.6.5). */
	r = update_timestamp(c, src, &st);
	if (r == 0)
		r = staged_expiry(c, staged_timestamp(c, &st), "timestamp");
	if (r == 0)
		r = update_snapshot(c, src, &st);
	if (r == 0)
		r = staged_expiry(c, staged_snapshot(c, &st), "snapshot");
	if (r == 0)
		r = update_targets(c, src, &st);
	if (r == 0)
		r = staged_expiry(c, staged_targets(c, &st), "targets");
	if (r == 0)
		r = commit(c, &st);
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

int verify_client_state_id(const struct verify_client *c, uint8_t ret_id[VERIFY_HASH_LEN],
			   time_t *ret_now, time_t *ret_roles_expire)
{
	const struct meta *parts[3] = {c->root, c->targets, c->snapshot};
	uint8_t buf[16 + 3 * VERIFY_HASH_LEN];
	time_t least = VERIFY_NO_EXPIRY;

	if (!verify_client_usable(c))
		return -ENOENT;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "stork-state-1", 13);
	buf[15] = c->check_expiry;
	/* The snapshot names each delegated role's version (and hash, when it gives one), and
	 * the cache keeps one file per role and version: these three decide every walk. */
	for (size_t i = 0; i < 3; i++)
		if (verify_sha256(parts[i]->raw, parts[i]->rawlen, buf + 16 + i * VERIFY_HASH_LEN) <
		    0)
			return -ENOMEM;
	for (size_t i = 0; i < c->nroles; i++)
		if (c->roles[i].m && c->roles[i].m->expires < least)
			least = c->roles[i].m->expires;
	/* A pinned role is not kept with the delegated ones, its expiry is. */
	if (c->pinned_expires && c->pinned_expires < least)
		least = c->pinned_expires;
	if (verify_sha256(buf, sizeof(buf), ret_id) < 0)
		return -ENOMEM;
	if (ret_now)
		*ret_now = c->now;
	if (ret_roles_expire)
		*ret_roles_expire = least;
	return 0;
}
