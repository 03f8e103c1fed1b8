/* verify/client.c: the TUF 1.0 client workflow ("Detailed client workflow", 5.3 to 5.7) over a
 * verify_source, keeping the trusted state the way python-tuf's TrustedMetadataSet does: each
 * new file is checked against what is already trusted before it replaces it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/meta.h"

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

static void roles_clear(struct verify_client *c)
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
	roles_clear(c);
	meta_free(c->root);
	meta_free(c->timestamp);
	meta_free(c->snapshot);
	meta_free(c->targets);
	free(c->targets_keyid);
	free(c);
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

/* 5.3: every root version after the trusted one, each signed by a threshold of the old root
 * keys and of its own, each exactly one version later. */
static int update_root(struct verify_client *c, const struct verify_source *src)
{
	struct meta *m = NULL;
	char file[64], oldrole[96];
	int i, r = 0;

	for (i = 0; i < VERIFY_MAX_ROOT_ROTATIONS; i++) {
		uint64_t next = c->root->version + 1;

		snprintf(file, sizeof(file), "metadata/%" PRIu64 ".root.json", next);
		r = meta_load(src, file, VERIFY_MAX_ROOT_LEN, NULL, META_ROOT, &m);
		if (r == -ENOENT) {
			r = 0;
			break;
		}
		if (r < 0)
			goto out;
		snprintf(oldrole, sizeof(oldrole), "root of %s", c->root->file);
		r = meta_check_sigs(m, oldrole, &c->root->keys, &c->root->roles[META_ROLE_ROOT],
				    NULL);
		if (r < 0)
			goto out;
		r = meta_check_sigs(m, "root", &m->keys, &m->roles[META_ROLE_ROOT], NULL);
		if (r < 0)
			goto out;
		r = meta_check_version(m, next, "its file name");
		if (r < 0)
			goto out;
		/* Fast-forward attack recovery: new timestamp or snapshot keys mean the trusted
		 * versions may have been pushed up by a compromised key; forget them. */
		if (!same_keys(&c->root->roles[META_ROLE_TIMESTAMP],
			       &m->roles[META_ROLE_TIMESTAMP]) ||
		    !same_keys(&c->root->roles[META_ROLE_SNAPSHOT],
			       &m->roles[META_ROLE_SNAPSHOT])) {
			meta_free(c->timestamp);
			c->timestamp = NULL;
			meta_free(c->snapshot);
			c->snapshot = NULL;
		}
		meta_free(c->root);
		c->root = m;
		m = NULL;
	}
	if (c->check_expiry)
		r = meta_check_expiry(c->root, "root", c->now);
out:
	meta_free(m);
	return r;
}

/* 5.4 */
static int update_timestamp(struct verify_client *c, const struct verify_source *src)
{
	const char *file = "metadata/timestamp.json";
	struct meta *m = NULL;
	int r;

	r = meta_load(src, file, VERIFY_MAX_TIMESTAMP_LEN, NULL, META_TIMESTAMP, &m);
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
	meta_free(c->timestamp);
	c->timestamp = m;
	m = NULL;
expiry:
	r = c->check_expiry ? meta_check_expiry(c->timestamp, "timestamp", c->now) : 0;
out:
	meta_free(m);
	return r;
}

/* 5.5 */
static int update_snapshot(struct verify_client *c, const struct verify_source *src)
{
	const struct meta_file *sf = meta_find_file(c->timestamp, "snapshot.json");
	struct meta *m = NULL;
	char file[64];
	size_t i;
	int r;

	if (c->root->consistent_snapshot)
		snprintf(file, sizeof(file), "metadata/%" PRIu64 ".snapshot.json", sf->version);
	else
		snprintf(file, sizeof(file), "metadata/snapshot.json");
	/* length and hash against the timestamp before anything else looks at the bytes */
	r = meta_load(src, file, VERIFY_MAX_SNAPSHOT_LEN, sf, META_SNAPSHOT, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "snapshot", &c->root->keys, &c->root->roles[META_ROLE_SNAPSHOT],
			    NULL);
	if (r < 0)
		goto out;
	r = meta_check_version(m, sf->version, "metadata/timestamp.json");
	if (r < 0)
		goto out;
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
	meta_free(c->snapshot);
	c->snapshot = m;
	m = NULL;
	r = c->check_expiry ? meta_check_expiry(c->snapshot, "snapshot", c->now) : 0;
out:
	meta_free(m);
	return r;
}

/* 5.6 */
static int update_targets(struct verify_client *c, const struct verify_source *src)
{
	const struct meta_file *tf = meta_find_file(c->snapshot, "targets.json");
	const char *keyid = NULL;
	struct meta *m = NULL;
	char file[64], *kid = NULL;
	int r;

	if (c->root->consistent_snapshot)
		snprintf(file, sizeof(file), "metadata/%" PRIu64 ".targets.json", tf->version);
	else
		snprintf(file, sizeof(file), "metadata/targets.json");
	r = meta_load(src, file, VERIFY_MAX_TARGETS_LEN, tf, META_TARGETS, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "targets", &c->root->keys, &c->root->roles[META_ROLE_TARGETS],
			    &keyid);
	if (r < 0)
		goto out;
	r = meta_check_version(m, tf->version, c->snapshot->file);
	if (r < 0)
		goto out;
	kid = strdup(keyid);
	if (!kid) {
		r = -ENOMEM;
		goto out;
	}
	meta_free(c->targets);
	c->targets = m;
	m = NULL;
	free(c->targets_keyid);
	c->targets_keyid = kid;
	r = c->check_expiry ? meta_check_expiry(c->targets, "targets", c->now) : 0;
out:
	meta_free(m);
	return r;
}

int verify_client_refresh(struct verify_client *c, const struct verify_source *src)
{
	int r;

	c->refreshed = false;
	roles_clear(c);
	r = update_root(c, src);
	if (r < 0)
		return r;
	r = update_timestamp(c, src);
	if (r < 0)
		return r;
	r = update_snapshot(c, src);
	if (r < 0)
		return r;
	r = update_targets(c, src);
	if (r < 0)
		return r;
	c->refreshed = true;
	return 0;
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
	struct meta_file expect = {.has_length = true, .length = t->length, .has_hash = true};
	struct verify_manifest *m = NULL;
	char hex[VERIFY_HASH_HEX], *file = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	memcpy(expect.hash, t->hash, VERIFY_HASH_LEN);
	verify_hex(t->hash, VERIFY_HASH_LEN, hex);
	/* name and version passed the charset check, so this is a plain relative path */
	file = meta_asprintf("targets/%s/%s.%s.json", t->name, hex, t->version);
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
	r = verify_manifest_parse(buf, len, file, &m);
	if (r < 0)
		goto out;
	if (strcmp(m->name, t->name) != 0 || strcmp(m->version, t->version) != 0) {
		stork_errorf("%s: the manifest describes %s %s, but it is signed as %s %s", file,
			     m->name, m->version, t->name, t->version);
		r = STORK_EFORMAT;
		goto out;
	}
	*ret_m = m;
	m = NULL;
out:
	verify_manifest_free(m);
	free(buf);
	free(file);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Auditing old versions */

/* Who signs role `name`: a top-level role listed in root, or a delegation found in the
 * top-level targets or in a delegated role loaded since the last refresh. */
static int find_signer(const struct verify_client *c, const char *name, enum meta_type *ret_type,
		       const struct meta_keyring **ret_keys,
		       const struct meta_delegation **ret_del)
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

int verify_client_audit_file(struct verify_client *c, const char *file, const uint8_t *buf,
			     size_t len)
{
	const struct meta_delegation *del = NULL;
	const struct meta_keyring *keys = NULL;
	const char *base = strrchr(file, '/'), *dot;
	enum meta_type type = META_TARGETS;
	struct meta *m = NULL;
	char *role = NULL;
	int r;

	base = base ? base + 1 : file;
	dot = strchr(base, '.');
	if (!dot || strlen(dot) <= 6 || strcmp(base + strlen(base) - 5, ".json")) {
		stork_errorf("%s: not a versioned metadata file name (N.ROLE.json)", file);
		return STORK_EFORMAT;
	}
	role = strndup(dot + 1, strlen(dot + 1) - 5);
	if (!role)
		return -ENOMEM;
	r = find_signer(c, role, &type, &keys, &del);
	if (r < 0) {
		stork_errorf("%s: no trusted metadata delegates a role named \"%s\"", file, role);
		goto out;
	}
	r = meta_parse(buf, len, file, type, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, role, keys, del, NULL);
out:
	meta_free(m);
	free(role);
	return r;
}
