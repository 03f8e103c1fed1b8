/* verify/writer/publish.c: `stork publish`: a manifest as a target of the publisher's delegated
 * role, and the check that lets publish refuse before importing anything. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "verify/atomic.h"
#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/manifest.h"
#include "verify/name.h"
#include "verify/text.h"
#include "verify/tuf.h"
#include "verify/writer/internal.h"

/* The delegated role del as a writer builds on it: ret_cur its current trusted metadata, or
 * NULL when there is none to build on (the snapshot does not list the role: nothing published
 * yet, ret_next 1; or the role was revoked and delegated again since: the top-level targets
 * marks the listed version revoked, and the role starts again, empty, above it).
 * @return 0; the client's error loading the role. */
int repo_role_for_write(struct repo *r, const struct meta_delegation *del,
			const struct meta **ret_cur, uint64_t *ret_next)
{
	const struct meta *m = NULL;
	const struct meta_file *mf;
	json_t *rv;
	char *name;
	int ret;

	name = meta_asprintf("%s.json", del->name);
	if (!name)
		return -ENOMEM;
	mf = trusted_snapshot_entry(r->c, name);
	free(name);
	if (!mf) {
		*ret_cur = NULL;
		*ret_next = 1;
		return 0;
	}
	rv = json_object_get(
	    json_object_get(trusted_meta(r->c, META_TARGETS)->signed_json, REVOKED_FIELD),
	    del->name);
	if (json_is_integer(rv) && json_integer_value(rv) >= 0 &&
	    (uint64_t)json_integer_value(rv) >= mf->version) {
		*ret_cur = NULL;
		*ret_next = mf->version + 1;
		return 0;
	}
	ret = trusted_load_role(r->c, &r->src, del, &m);
	if (ret < 0)
		return ret;
	*ret_cur = m;
	*ret_next = m->version + 1;
	return 0;
}

/* Whether an earlier top-level targets version (metadata/N.targets.json, newest first, down to
 * 1000 versions back) names key id: a key rotated out or revoked, which re-delegating would
 * bring back. The key id (64 hex) appears in a targets file only as a delegated key.
 * @return the version that names it last; 0 when none does (or none can be read). */
static uint64_t named_before(const struct repo *r, const char *id, uint64_t current)
{
	for (uint64_t v = current; v-- > 1 && current - v <= 1000;) {
		char name[48], *buf;
		ssize_t n;
		size_t len = 0, cap = 1 << 20;
		int fd;
		bool hit;

		snprintf(name, sizeof(name), "%" PRIu64 ".targets.json", v);
		fd = openat(r->mdfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		buf = malloc(cap + 1);
		while (buf && len < cap && (n = read(fd, buf + len, cap - len)) > 0)
			len += (size_t)n;
		close(fd);
		if (!buf)
			return 0;
		buf[len] = '\0';
		hit = strstr(buf, id) != NULL;
		free(buf);
		if (hit)
			return v;
	}
	return 0;
}

int repo_pattern_error(const struct repo *r, const struct verify_key *publisher, const char *what,
		       const char *target)
{
	const struct meta *t = trusted_meta(r->c, META_TARGETS);
	const struct meta_delegation *d;
	const char *id = verify_key_id(publisher);
	char list[1024] = "";
	uint64_t before;
	size_t i, j, len;

	for (i = 0; (d = trusted_delegation(r->c, i)); i++) {
		if (!meta_delegation_has_key(d, id))
			continue;
		for (j = 0; j < d->npaths; j++) {
			len = strlen(list);
			/* show the package-name pattern the operator delegated, without "/STAR" */
			snprintf(list + len, sizeof(list) - len, "%s%.*s (role %s)",
				 len ? ", " : "", (int)(strlen(d->paths[j]) - 2), d->paths[j],
				 d->name);
		}
	}
	if (list[0])
		stork_errorf("%s: key %.16s may only publish packages matching %s; %s is not "
			     "among them",
			     what, id, list, target);
	else if ((before = named_before(r, id, t->version)))
		stork_errorf("%s: key %.16s is not delegated any package names in %s: it was in "
			     "version %" PRIu64 " and has since been rotated out or revoked; "
			     "publish with the role's current key",
			     what, id, t->file, before);
	else
		stork_errorf("%s: key %.16s is not delegated any package names in %s; "
			     "delegate some with `stork repo delegate %s --keys KEYDIR KEYFILE.pub "
			     "PATTERN`",
			     what, id, t->file, r->dir);
	return STORK_EPATTERN;
}

static int write_manifest(struct repo *r, const struct verify_manifest *m, const char *hex,
			  const char *buf, size_t len, bool only_if_missing)
{
	char *dir = NULL, *file = NULL;
	int ret = -ENOMEM;

	dir = meta_asprintf("targets/%s", m->name);
	file = meta_asprintf("targets/%s/%s.%s.json", m->name, hex, m->version);
	if (!dir || !file)
		goto out;
	if (only_if_missing && faccessat(r->dirfd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		ret = 0;
		goto out;
	}
	ret = repo_mkdir_ok(r->dirfd, "targets", 0755, "targets");
	if (ret < 0)
		goto out;
	ret = repo_mkdir_ok(r->dirfd, dir, 0755, dir);
	if (ret < 0)
		goto out;
	ret = verify_write_atomic(r->dirfd, file, buf, len, 0644);
out:
	free(dir);
	free(file);
	return ret;
}

/* What `stork publish` counts as files: regular files, not directories or symlinks. */
static uint64_t regular_files(const struct verify_manifest *m)
{
	uint64_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += m->entries[i].type == VERIFY_FILE;
	return n;
}

/* Whether clients would ever see target signed in role del: not when an earlier delegation
 * matching it is terminating (the search stops there), nor when a role they search first
 * already signs it (the first role that signs a path wins). @return 0; STORK_EPATTERN (the
 * detail names the role that hides it); -ENOMEM. */
static int shadowed(struct repo *r, const struct meta_delegation *del,
		    const struct verify_manifest *m, const char *target)
{
	const struct meta_delegation *d;
	struct verify_target found = {0};
	int ret;

	for (size_t i = 0; (d = trusted_delegation(r->c, i)) && d != del; i++) {
		if (d->terminating && meta_delegation_matches(d, target)) {
			stork_errorf(
			    "%s %s: role %s's delegation comes first and is terminating, so "
			    "clients would never look in role %s for this name",
			    m->name, m->version, d->name, del->name);
			return STORK_EPATTERN;
		}
	}
	ret = verify_client_find_target(r->c, &r->src, target, &found);
	if (ret == -ENOMEM)
		return ret;
	if (ret == 0 && found.role && strcmp(found.role, del->name) != 0) {
		stork_errorf("%s %s is already signed in role %s; clients see one role's %s %s "
			     "only, so the same version from role %s would hide it or be hidden: "
			     "publish another version",
			     m->name, m->version, found.role, m->name, m->version, del->name);
		ret = STORK_EPATTERN;
	} else {
		ret = 0; /* not found (or a role that fails to load): nothing hides it */
	}
	verify_target_fini(&found);
	return ret;
}

const struct meta_delegation *repo_signing_delegation(const struct repo *r, const char *id,
						      const char *target)
{
	const struct meta_delegation *d;

	for (size_t i = 0; (d = trusted_delegation(r->c, i)); i++)
		if (meta_delegation_has_key(d, id) && meta_delegation_matches(d, target))
			return d;
	return NULL;
}

int repo_commit_target(struct repo *r, const struct meta_delegation *del, const struct meta *cur,
		       uint64_t v, const char *path, json_t *desc,
		       const struct verify_key *publisher, const struct online_keys *k)
{
	json_t *s;
	int ret;

	s = cur ? json_deep_copy(cur->signed_json) : json_pack("{s:{}}", "targets");
	if (!s) {
		json_decref(desc);
		return -ENOMEM;
	}
	/* json_object_set_new takes desc, also when it fails (and fails when it is NULL) */
	ret = json_object_set_new(json_object_get(s, "targets"), path, desc) < 0 ? -ENOMEM : 0;
	if (ret == 0)
		ret = repo_commit_delegated(r, del, s, v, publisher, k);
	json_decref(s);
	return ret;
}

int repo_commit_delegated(struct repo *r, const struct meta_delegation *del, json_t *s, uint64_t v,
			  const struct verify_key *publisher, const struct online_keys *k)
{
	char file[128], *rolejson;
	int ret;

	ret = repo_set_common(s, "targets", v, r->now + r->expiry[META_ROLE_TARGETS]);
	if (ret < 0)
		return ret;
	snprintf(file, sizeof(file), "%" PRIu64 ".%s.json", v, del->name);
	ret = repo_write_signed(r->mdfd, file, s, (struct verify_key *)publisher, NULL, NULL);
	if (ret < 0)
		return ret;
	rolejson = meta_asprintf("%s.json", del->name);
	if (!rolejson)
		return -ENOMEM;
	ret = repo_commit(r, (const char *const *)&rolejson, &v, 1, k->snapshot, k->timestamp);
	free(rolejson);
	return ret;
}

int verify_repo_publish(const char *repodir, const char *keydir, const struct verify_key *publisher,
			const struct verify_manifest *m, const struct verify_repo_opts *o)
{
	struct online_keys k = {0};
	struct verify_manifest *check = NULL;
	const struct meta_delegation *del;
	const struct meta *cur = NULL;
	const struct meta_target *old;
	json_t *desc = NULL, *storkfs;
	char *target = NULL, *buf = NULL, hex[VERIFY_HASH_HEX];
	uint8_t digest[VERIFY_HASH_LEN];
	const char *id = verify_key_id(publisher);
	struct repo r = {.dirfd = -1, .mdfd = -1};
	size_t len = 0;
	uint64_t v;
	int ret;

	if (!verify_key_is_private(publisher)) {
		stork_errorf("publish: key %.16s: the private key is needed to sign", id);
		return -EINVAL;
	}
	target = verify_target_path(m->name, m->version);
	if (!target)
		return -ENOMEM;
	ret = verify_manifest_dump(m, &buf, &len);
	if (ret < 0)
		goto out;
	/* Never publish what a client would refuse. */
	ret = verify_manifest_parse(buf, len, target, &check);
	if (ret < 0)
		goto out;
	ret = verify_sha256_hex(buf, len, digest, hex);
	if (ret < 0)
		goto out;

	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		goto out;
	del = repo_signing_delegation(&r, id, target);
	if (!del) {
		char what[300];

		snprintf(what, sizeof(what), "%s %s", m->name, m->version);
		ret = repo_pattern_error(&r, publisher, what, target);
		goto out;
	}
	ret = o && o->allow_shadowed ? 0 : shadowed(&r, del, m, target);
	if (ret < 0)
		goto out;
	ret = repo_role_for_write(&r, del, &cur, &v);
	if (ret < 0)
		goto out;
	if (cur) {
		old = meta_find_target(cur, target);
		if (old && old->length == len && memcmp(old->hash, digest, VERIFY_HASH_LEN) == 0) {
			/* Same bytes: nothing to sign. Put the manifest back if someone lost it. */
			ret = write_manifest(&r, m, hex, buf, len, true);
			if (ret == 0)
				ret = 1;
			goto out;
		}
		if (old) {
			stork_errorf("%s %s is already published with different content; publish "
				     "a new version",
				     m->name, m->version);
			ret = -EEXIST;
			goto out;
		}
	}
	ret = repo_load_online(&r, keydir, false, &k);
	if (ret < 0)
		goto out;

	ret = write_manifest(&r, m, hex, buf, len, false);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	desc =
	    json_pack("{s:I, s:{s:s}, s:{s:{s:I, s:I, s:I}}}", "length", (json_int_t)len, "hashes",
		      "sha256", hex, "custom", "storkfs", "size", (json_int_t)m->total_size,
		      "files", (json_int_t)regular_files(m), "entries", (json_int_t)m->n);
	storkfs = json_object_get(json_object_get(desc, "custom"), "storkfs");
	if (!storkfs)
		goto out;
	if (o && o->summary && o->summary[0] && verify_utf8_valid(o->summary, strlen(o->summary)) &&
	    json_object_set_new(storkfs, "summary", json_string(o->summary)) < 0)
		goto out;
	ret = repo_commit_target(&r, del, cur, v, target, desc, publisher, &k);
	desc = NULL;
out:
	json_decref(desc);
	verify_manifest_free(check);
	repo_online_free(&k);
	repo_close(&r);
	free(target);
	free(buf);
	return ret;
}

int verify_repo_may_publish(const char *repodir, const struct verify_key *publisher,
			    const char *name, char **ret_role)
{
	const char *id = verify_key_id(publisher);
	const struct meta_delegation *d;
	struct repo r = {.dirfd = -1, .mdfd = -1};
	char *target = NULL, *role;
	int ret;

	ret = verify_check_package_name(name);
	if (ret < 0)
		return ret;
	/* Any version will do: delegations match "<name pattern>/STAR". */
	target = verify_target_path(name, "0");
	if (!target)
		return -ENOMEM;
	ret = repo_open(&r, repodir, NULL, NULL);
	if (ret < 0)
		goto out;
	d = repo_signing_delegation(&r, id, target);
	if (!d) {
		ret = repo_pattern_error(&r, publisher, name, name);
		goto out;
	}
	role = strdup(d->name);
	if (!role) {
		ret = -ENOMEM;
		goto out;
	}
	*ret_role = role;
out:
	repo_close(&r);
	free(target);
	return ret;
}
