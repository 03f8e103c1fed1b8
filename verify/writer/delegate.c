/* verify/writer/delegate.c: `stork repo delegate`: name patterns for a publisher key, as a
 * delegated role of the top-level targets; `stork control delegate`: groups' control lists
 * (control/<group>/STAR) the same way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/writer/internal.h"

json_t *repo_find_role_json(json_t *roles, const char *name)
{
	json_t *e;
	size_t i;

	json_array_foreach(roles, i, e)
	{
		if (json_is_string(json_object_get(e, "name")) &&
		    strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
			return e;
	}
	return NULL;
}

bool repo_strv_json_has(const json_t *arr, const char *s)
{
	const json_t *e;
	size_t i;

	json_array_foreach(arr, i, e)
	{
		if (json_is_string(e) && strcmp(json_string_value(e), s) == 0)
			return true;
	}
	return false;
}

/* Each pattern as the TUF path pattern "<prefix><pattern>/STAR", in a new array (each and it
 * malloc'd; NULL on -ENOMEM). */
static char **format_paths(const char *prefix, const char *const *patterns, size_t n)
{
	char **paths = calloc(n ? n : 1, sizeof(*paths));

	for (size_t i = 0; paths && i < n; i++) {
		if (asprintf(&paths[i], "%s%s/*", prefix, patterns[i]) < 0) {
			paths[i] = NULL;
			for (size_t j = 0; j < i; j++)
				free(paths[j]);
			free(paths);
			return NULL;
		}
	}
	return paths;
}

static void free_paths(char **paths, size_t n)
{
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Delegate the TUF path patterns paths to pub as role. */
static int delegate_paths(const char *repodir, const char *keydir, const struct verify_key *pub,
			  const char *role, char *const *paths_in, size_t npatterns,
			  const struct verify_repo_opts *o);

/* Check role and the n patterns (what: "package name" or "group"; a bad one's error detail
 * gets the prefix errprefix, NULL: none), then delegate them as "<prefix><pattern>/STAR". */
static int delegate_patterns(const char *repodir, const char *keydir, const struct verify_key *pub,
			     const char *role, const char *what, const char *errprefix,
			     const char *prefix, const char *const *patterns, size_t n,
			     const struct verify_repo_opts *o)
{
	char **paths;
	int ret;

	ret = verify_check_role_name(role);
	if (ret < 0)
		return ret;
	if (n == 0) {
		stork_errorf("role %s: no %s patterns to delegate", role, what);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		ret = verify_check_name_pattern(patterns[i]);
		if (ret < 0) {
			if (errprefix)
				stork_error_prefix("%s", errprefix);
			return ret;
		}
	}
	paths = format_paths(prefix, patterns, n);
	if (!paths)
		return -ENOMEM;
	ret = delegate_paths(repodir, keydir, pub, role, paths, n, o);
	free_paths(paths, n);
	return ret;
}

int verify_repo_delegate(const char *repodir, const char *keydir, const struct verify_key *pub,
			 const char *role, const char *const *patterns, size_t npatterns,
			 const struct verify_repo_opts *o)
{
	return delegate_patterns(repodir, keydir, pub, role, "package name", NULL, "", patterns,
				 npatterns, o);
}

int verify_repo_delegate_control(const char *repodir, const char *keydir,
				 const struct verify_key *pub, const char *role,
				 const char *const *groups, size_t ngroups,
				 const struct verify_repo_opts *o)
{
	return delegate_patterns(repodir, keydir, pub, role, "group",
				 "control group pattern: ", "control/", groups, ngroups, o);
}

static int delegate_paths(const char *repodir, const char *keydir, const struct verify_key *pub,
			  const char *role, char *const *paths_in, size_t npatterns,
			  const struct verify_repo_opts *o)
{
	struct online_keys k = {0};
	const struct meta *t;
	json_t *s = NULL, *dels, *roles, *keys, *rj, *paths;
	const char *id = verify_key_id(pub);
	bool changed = false;
	size_t i;
	struct repo r = {.dirfd = -1, .mdfd = -1};
	int ret;

	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		return ret;
	ret = repo_load_online(&r, keydir, true, &k);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	t = trusted_meta(r.c, META_TARGETS);
	s = json_deep_copy(t->signed_json);
	if (!s)
		goto out;
	dels = json_object_get(s, "delegations");
	if (!dels) {
		if (json_object_set_new(s, "delegations",
					json_pack("{s:{}, s:[]}", "keys", "roles")) < 0)
			goto out;
		dels = json_object_get(s, "delegations");
	}
	roles = json_object_get(dels, "roles");
	keys = json_object_get(dels, "keys");
	rj = repo_find_role_json(roles, role);
	if (rj) {
		if (!repo_strv_json_has(json_object_get(rj, "keyids"), id)) {
			stork_errorf(
			    "role %s: already delegated to another key (%.16s); choose "
			    "another role name for key %.16s",
			    role,
			    json_string_value(json_array_get(json_object_get(rj, "keyids"), 0)),
			    id);
			ret = -EEXIST;
			goto out;
		}
		paths = json_object_get(rj, "paths");
		if (!json_is_array(paths)) {
			stork_errorf(
			    "%s: role %s delegates by path hash prefixes; storkfs cannot add "
			    "patterns to it",
			    t->file, role);
			ret = STORK_EUNSUPPORTED;
			goto out;
		}
	} else {
		rj = json_pack("{s:s, s:[s], s:i, s:b, s:[]}", "name", role, "keyids", id,
			       "threshold", 1, "terminating", 0, "paths");
		if (!rj || json_array_append_new(roles, rj) < 0)
			goto out;
		paths = json_object_get(rj, "paths");
		changed = true;
	}
	if (!json_object_get(keys, id)) {
		if (json_object_set_new(keys, id, verify_key_to_json(pub)) < 0)
			goto out;
		changed = true;
	}
	for (i = 0; i < npatterns; i++) {
		if (!repo_strv_json_has(paths, paths_in[i])) {
			if (json_array_append_new(paths, json_string(paths_in[i])) < 0)
				goto out;
			changed = true;
		}
	}
	ret = 0;
	if (!changed)
		goto out; /* already delegated exactly so */
	ret = repo_commit_targets(&r, s, &k, NULL, 0);
out:
	json_decref(s);
	repo_online_free(&k);
	repo_close(&r);
	return ret;
}
