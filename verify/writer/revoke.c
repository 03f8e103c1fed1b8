/* verify/writer/revoke.c: a delegated role's key replaced (`stork repo rotate --key`, rekey) or
 * its delegation removed (`stork repo revoke`). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/writer/internal.h"

/* The role is not delegated: name the roles that are. @return -ENOENT. */
static int unknown_role(const struct repo *r, const char *what, const char *role)
{
	const struct meta *t = trusted_meta(r->c, META_TARGETS);
	const struct meta_delegation *d;
	char list[1024] = "";
	size_t i, len;

	for (i = 0; (d = trusted_delegation(r->c, i)); i++) {
		len = strlen(list);
		snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "", d->name);
	}
	if (list[0])
		stork_errorf("%s %s: %s delegates no role %s; the delegated roles are %s", what,
			     role, t->file, role, list);
	else
		stork_errorf("%s %s: %s delegates no roles at all; delegate one with `stork repo "
			     "delegate %s --keys KEYDIR KEYFILE.pub PATTERN`",
			     what, role, t->file, r->dir);
	return -ENOENT;
}

/* Checks shared by rekey and revoke: a delegated role name, not a top-level one. */
static int check_delegated_name(const char *what, const char *role)
{
	if (repo_top_role_index(role) >= 0) {
		stork_errorf("%s %s: a top-level role, not a delegated one; give it a new key with "
			     "`stork repo rotate REPODIR --keys KEYDIR %s`",
			     what, role, role);
		return -EINVAL;
	}
	return verify_check_role_name(role);
}

int verify_repo_rekey(const char *repodir, const char *keydir, const char *role,
		      const struct verify_key *newkey, const struct verify_repo_opts *o)
{
	struct online_keys k = {0};
	const struct meta_delegation *del;
	const struct meta *cur = NULL;
	json_t *s = NULL, *rs = NULL, *dels, *keys, *rj;
	const char *id = verify_key_id(newkey);
	char *rolejson = NULL, file[128];
	struct repo r = {.dirfd = -1, .mdfd = -1};
	uint64_t v = 0;
	int ret;

	ret = check_delegated_name("rotate", role);
	if (ret < 0)
		return ret;
	if (!verify_key_is_private(newkey)) {
		stork_errorf("rotate %s: key %.16s: the new private key is needed to re-sign the "
			     "role's targets (give the file `stork keygen` wrote, not its .pub)",
			     role, id);
		return -EINVAL;
	}
	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		return ret;
	del = trusted_find_delegation(r.c, role);
	if (!del) {
		ret = unknown_role(&r, "rotate", role);
		goto out;
	}
	if (del->nkeyids == 1 && del->threshold == 1 && strcmp(del->keyids[0], id) == 0) {
		ret = 0; /* already this key: nothing to write */
		goto out;
	}
	ret = repo_load_online(&r, keydir, true, &k);
	if (ret < 0)
		goto out;
	ret = repo_role_for_write(&r, del, &cur, &v);
	if (ret < 0) {
		stork_error_prefix("rotate %s", role);
		goto out;
	}

	/* The role's targets as they are, at the next version, signed by the new key (only
	 * when the snapshot lists the role: v is 1 when nothing was ever published in it). */
	if (v > 1) {
		ret = -ENOMEM;
		rs = cur ? json_deep_copy(cur->signed_json) : json_pack("{s:{}}", "targets");
		rolejson = meta_asprintf("%s.json", role);
		if (!rs || !rolejson)
			goto out;
		ret = repo_set_common(rs, "targets", v, r.now + r.expiry[META_ROLE_TARGETS]);
		if (ret < 0)
			goto out;
		snprintf(file, sizeof(file), "%" PRIu64 ".%s.json", v, role);
		ret = repo_write_signed(r.mdfd, file, rs, (struct verify_key *)newkey, NULL, NULL);
		if (ret < 0)
			goto out;
	}

	/* The delegation lists the new key instead of the old ones. */
	ret = -ENOMEM;
	s = json_deep_copy(trusted_meta(r.c, META_TARGETS)->signed_json);
	if (!s)
		goto out;
	dels = json_object_get(s, "delegations");
	keys = json_object_get(dels, "keys");
	rj = repo_find_role_json(json_object_get(dels, "roles"), role);
	if (!json_is_object(keys) || !rj ||
	    json_object_set_new(rj, "keyids", json_pack("[s]", id)) < 0 ||
	    json_object_set_new(rj, "threshold", json_integer(1)) < 0 ||
	    json_object_set_new(keys, id, verify_key_to_json(newkey)) < 0)
		goto out;
	repo_prune_keys(keys, json_object_get(dels, "roles"));
	ret = repo_commit_targets(&r, s, &k, v > 1 ? rolejson : NULL, v);
out:
	json_decref(s);
	json_decref(rs);
	free(rolejson);
	repo_online_free(&k);
	repo_close(&r);
	return ret;
}

int verify_repo_revoke(const char *repodir, const char *keydir, const char *role,
		       const struct verify_repo_opts *o)
{
	struct online_keys k = {0};
	const struct meta_file *mf;
	json_t *s = NULL, *tomb = NULL, *dels, *roles, *e, *marks;
	char *rolejson = NULL, file[128];
	struct repo r = {.dirfd = -1, .mdfd = -1};
	uint64_t v = 0;
	size_t i;
	int ret;

	ret = check_delegated_name("revoke", role);
	if (ret < 0)
		return ret;
	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		return ret;
	if (!trusted_find_delegation(r.c, role)) {
		ret = unknown_role(&r, "revoke", role);
		goto out;
	}
	ret = repo_load_online(&r, keydir, true, &k);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	s = json_deep_copy(trusted_meta(r.c, META_TARGETS)->signed_json);
	rolejson = meta_asprintf("%s.json", role);
	if (!s || !rolejson)
		goto out;
	dels = json_object_get(s, "delegations");
	roles = json_object_get(dels, "roles");
	for (i = json_array_size(roles); i-- > 0;) {
		e = json_array_get(roles, i);
		if (json_is_string(json_object_get(e, "name")) &&
		    strcmp(json_string_value(json_object_get(e, "name")), role) == 0)
			json_array_remove(roles, i);
	}
	repo_prune_keys(json_object_get(dels, "keys"), roles);

	/* TUF forbids a snapshot to drop a role an earlier one listed: the role stays listed,
	 * at a new version whose file has no targets, and the top-level targets marks that
	 * version revoked, so that a later delegation of the name starts again above it. */
	mf = trusted_snapshot_entry(r.c, rolejson);
	if (mf) {
		v = mf->version + 1;
		ret = -ENOMEM;
		tomb = json_pack("{s:{}}", "targets");
		marks = json_object_get(s, REVOKED_FIELD);
		if (!json_is_object(marks)) {
			if (json_object_set_new(s, REVOKED_FIELD, json_object()) < 0)
				goto out;
			marks = json_object_get(s, REVOKED_FIELD);
		}
		if (!tomb || json_object_set_new(marks, role, json_integer((json_int_t)v)) < 0)
			goto out;
		ret = repo_set_common(tomb, "targets", v, r.now + r.expiry[META_ROLE_TARGETS]);
		if (ret < 0)
			goto out;
		snprintf(file, sizeof(file), "%" PRIu64 ".%s.json", v, role);
		ret = repo_write_signed(r.mdfd, file, tomb, k.targets, NULL, NULL);
		if (ret < 0)
			goto out;
	}
	ret = repo_commit_targets(&r, s, &k, mf ? rolejson : NULL, v);
out:
	json_decref(s);
	json_decref(tomb);
	free(rolejson);
	repo_online_free(&k);
	repo_close(&r);
	return ret;
}
