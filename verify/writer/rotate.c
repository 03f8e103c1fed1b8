/* verify/writer/rotate.c: `stork repo rotate ROLE...`: new keys for top-level roles, with a
 * root that both the old and the new keys sign (TUF 5.3). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "verify/atomic.h"
#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/writer/internal.h"

int repo_top_role_index(const char *name)
{
	for (int i = 0; i < META_NROLES; i++)
		if (strcmp(name, meta_role_names[i]) == 0)
			return i;
	return -1;
}

/* Drop from keys (an object by key id) every key that no role in roles lists; roles is the
 * root's "roles" object or a targets' "delegations.roles" array. */
void repo_prune_keys(json_t *keys, json_t *roles)
{
	const char *id, *name;
	json_t *v, *tmp, *e;
	size_t i;

	json_object_foreach_safe(keys, tmp, id, v)
	{
		bool used = false;

		if (json_is_array(roles)) {
			json_array_foreach(roles, i, e)
			{
				used = used || repo_strv_json_has(json_object_get(e, "keyids"), id);
			}
		} else {
			json_object_foreach(roles, name, e)
			{
				used = used || repo_strv_json_has(json_object_get(e, "keyids"), id);
			}
		}
		if (!used)
			json_object_del(keys, id);
	}
}

/* A rotation's new key for a top-level role: KEYDIR/ROLE.key.new, made now, or left by a
 * rotation that crashed before its root was committed (reused, so that a retry converges). */
static int pending_key(const char *keydir, enum meta_toprole role, struct verify_key **ret_key)
{
	struct verify_key *k = NULL;
	char *path;
	int ret;

	path = meta_asprintf("%s/%s.key" PENDING_SUFFIX, keydir, meta_role_names[role]);
	if (!path)
		return -ENOMEM;
	if (access(path, F_OK) == 0) {
		ret = verify_key_load_private(path, &k);
		if (ret < 0) {
			if (!strstr(stork_error_detail(), path))
				stork_error_prefix("%s", path);
			stork_error_prefix("a previous rotation's new key");
			goto out;
		}
	} else {
		ret = verify_key_generate(&k);
		if (ret < 0)
			goto out;
		ret = verify_key_save(k, path);
		if (ret < 0) {
			if (!strstr(stork_error_detail(), path))
				stork_error_prefix("%s", path);
			goto out;
		}
	}
	*ret_key = k;
	k = NULL;
	ret = 0;
out:
	verify_key_free(k);
	free(path);
	return ret;
}

int verify_repo_rotate(const char *repodir, const char *keydir, const char *const *roles,
		       size_t nroles, const struct verify_repo_opts *o)
{
	struct verify_key *old[META_NROLES] = {NULL}, *new[META_NROLES] = {NULL};
	struct verify_key *tsigners[2], *ssigners[2], *tssigners[2], *rsigners[2];
	bool rot[META_NROLES] = {false};
	json_t *root = NULL, *targets = NULL, *jkeys, *jroles;
	const char *name = "targets.json";
	char file[64], *rootbuf = NULL;
	struct repo r = {.dirfd = -1, .mdfd = -1};
	size_t rootlen = 0, i;
	uint64_t rv, tv = 0;
	int k, ret;

	if (nroles == 0) {
		stork_errorf("rotate: name the roles to rotate (root, targets, snapshot, "
			     "timestamp)");
		return -EINVAL;
	}
	for (i = 0; i < nroles; i++) {
		k = repo_top_role_index(roles[i]);
		if (k >= 0) {
			rot[k] = true;
			continue;
		}
		if (verify_check_role_name(roles[i]) == 0)
			stork_errorf("rotate: %s is not a top-level role (root, targets, snapshot, "
				     "timestamp); a publisher's role gets a new key with `stork "
				     "repo rotate REPODIR --keys KEYDIR --key NEWKEYFILE %s`",
				     roles[i], roles[i]);
		else
			stork_errorf("rotate: \"%s\" is not a role name: expected root, targets, "
				     "snapshot or timestamp",
				     roles[i]);
		return -EINVAL;
	}
	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		return ret;
	/* Every key first: a missing one stops the rotation before anything is written. The
	 * old key of each rotated role signs the transition (see repo_commit_n). */
	for (k = 0; k < META_NROLES; k++) {
		if (k == META_ROLE_TARGETS && !rot[k])
			continue;
		ret = repo_load_key(&r, keydir, (enum meta_toprole)k, &old[k]);
		if (ret < 0)
			goto out;
	}

	/* The new root: the rotated roles list their new keys only; unused keys go. */
	ret = -ENOMEM;
	root = json_deep_copy(trusted_meta(r.c, META_ROOT)->signed_json);
	if (!root)
		goto out;
	jkeys = json_object_get(root, "keys");
	jroles = json_object_get(root, "roles");
	if (!json_is_object(jkeys) || !json_is_object(jroles))
		goto out;
	rv = trusted_meta(r.c, META_ROOT)->version + 1;
	ret = repo_set_common(root, "root", rv, r.now + r.expiry[META_ROLE_ROOT]);
	if (ret < 0)
		goto out;

	/* New keys are on disk (fsync'd) before any metadata names them. */
	for (k = 0; k < META_NROLES; k++) {
		const char *id;

		if (!rot[k])
			continue;
		ret = pending_key(keydir, (enum meta_toprole)k, &new[k]);
		if (ret < 0)
			goto out;
		ret = -ENOMEM;
		id = verify_key_id(new[k]);
		if (json_object_set_new(jkeys, id, verify_key_to_json(new[k])) < 0 ||
		    json_object_set_new(jroles, meta_role_names[k], repo_role_keys(id)) < 0)
			goto out;
	}
	repo_prune_keys(jkeys, jroles);

	/* Until the new root is written clients trust the old one, after it the new one: every
	 * file in between is signed by the old and the new key of its role, valid under both. */
	if (rot[META_ROLE_TARGETS]) {
		ret = -ENOMEM;
		targets = json_deep_copy(trusted_meta(r.c, META_TARGETS)->signed_json);
		if (!targets)
			goto out;
		tv = trusted_meta(r.c, META_TARGETS)->version + 1;
		ret = repo_set_common(targets, "targets", tv, r.now + r.expiry[META_ROLE_TARGETS]);
		if (ret < 0)
			goto out;
		tsigners[0] = old[META_ROLE_TARGETS];
		tsigners[1] = new[META_ROLE_TARGETS];
		snprintf(file, sizeof(file), "%" PRIu64 ".targets.json", tv);
		ret = repo_write_signed_n(r.mdfd, file, targets, tsigners, 2, NULL, NULL);
		if (ret < 0)
			goto out;
	}
	ssigners[0] = old[META_ROLE_SNAPSHOT];
	ssigners[1] = new[META_ROLE_SNAPSHOT];
	tssigners[0] = old[META_ROLE_TIMESTAMP];
	tssigners[1] = new[META_ROLE_TIMESTAMP];
	ret = repo_commit_n(&r, &name, &tv, rot[META_ROLE_TARGETS] ? 1 : 0, ssigners,
			    rot[META_ROLE_SNAPSHOT] ? 2 : 1, tssigners,
			    rot[META_ROLE_TIMESTAMP] ? 2 : 1);
	if (ret < 0)
		goto out;

	/* The rotation's commit point: N+1.root.json, signed by the old and the new root keys
	 * (TUF 5.3). Clients find it by its name, whatever the timestamp says. */
	rsigners[0] = old[META_ROLE_ROOT];
	rsigners[1] = new[META_ROLE_ROOT];
	snprintf(file, sizeof(file), "%" PRIu64 ".root.json", rv);
	ret = repo_write_signed_n(r.mdfd, file, root, rsigners, rot[META_ROLE_ROOT] ? 2 : 1,
				  &rootbuf, &rootlen);
	if (ret < 0)
		goto out;
	for (k = 0; k < META_NROLES; k++) {
		if (!rot[k])
			continue;
		ret = repo_switch_key(keydir, meta_role_names[k]);
		if (ret < 0)
			goto out;
	}
	ret = verify_write_atomic(r.mdfd, "root.json", rootbuf, rootlen, 0644);
	if (ret < 0)
		stork_errorf("metadata/root.json: cannot write: %s", storkfs_strerror(ret));
out:
	for (k = 0; k < META_NROLES; k++) {
		verify_key_free(old[k]);
		verify_key_free(new[k]);
	}
	json_decref(root);
	json_decref(targets);
	free(rootbuf);
	repo_close(&r);
	return ret;
}
