/* verify/writer/remove.c: `stork repo remove`: withdraw a published version. Only the key of
 * the delegated role that signs it can: the role's next version, without the target, signed by
 * that key, then snapshot and timestamp. The manifest, its pack and its objects stay in the
 * served tree until `stork repo gc` finds nothing references them (gc.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "verify/error.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/tuf.h"
#include "verify/writer/internal.h"

int verify_repo_remove(const char *repodir, const char *keydir, const struct verify_key *publisher,
		       const char *name, const char *version, const struct verify_repo_opts *o)
{
	const char *id = verify_key_id(publisher);
	struct repo r = {.dirfd = -1, .mdfd = -1};
	struct verify_target found = {0};
	struct online_keys k = {0};
	const struct meta_delegation *del;
	const struct meta *cur = NULL;
	json_t *s = NULL;
	char *target;
	uint64_t v;
	int ret;

	if (!verify_key_is_private(publisher)) {
		stork_errorf("remove: key %.16s: the private key is needed to sign", id);
		return -EINVAL;
	}
	if ((ret = verify_check_package_name(name)) < 0 ||
	    (ret = verify_check_version(version)) < 0)
		return ret;
	target = verify_target_path(name, version);
	if (!target)
		return -ENOMEM;
	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		goto out;
	/* The role clients find it in is the one to change: another role's copy would be hidden
	 * behind it, so it is not what clients see. */
	ret = verify_client_find_target(r.c, &r.src, target, &found);
	if (ret == -ENOENT) {
		stork_errorf("%s %s is not published in %s (nothing to remove)", name, version,
			     repodir);
		goto out;
	}
	if (ret < 0)
		goto out;
	del = trusted_find_delegation(r.c, found.role);
	if (!del || !meta_delegation_has_key(del, id)) {
		stork_errorf("%s %s is signed in role %s, whose key is not %.16s: only that role's "
			     "key can remove it",
			     name, version, found.role, id);
		ret = STORK_EPATTERN;
		goto out;
	}
	ret = repo_role_for_write(&r, del, &cur, &v);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	s = cur ? json_deep_copy(cur->signed_json) : NULL;
	if (!s)
		goto out;
	if (json_object_del(json_object_get(s, "targets"), target) < 0) {
		/* found said this role signs it: only a role changed under us gets here */
		stork_errorf("%s %s: role %s no longer lists it", name, version, del->name);
		ret = -ENOENT;
		goto out;
	}
	ret = repo_load_online(&r, keydir, false, &k);
	if (ret < 0)
		goto out;
	ret = repo_commit_delegated(&r, del, s, v, publisher, &k);
out:
	json_decref(s);
	verify_target_fini(&found);
	repo_online_free(&k);
	repo_close(&r);
	free(target);
	return ret;
}
