/* verify/writer/control.c: `stork control publish`: a group's control list (verify/control.h)
 * as a target of the publisher's delegated role. Unlike a package version, a group's list is
 * replaced at each publish: the same target path, new bytes, the list's version one more. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "verify/atomic.h"
#include "verify/cjson.h"
#include "verify/control.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/writer/internal.h"

/* Whether two lists want the same packages and pins. */
static bool same_packages(const struct verify_control_list *a, const struct verify_control_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const char *va = a->pkgs[i].version, *vb = b->pkgs[i].version;

		if (strcmp(a->pkgs[i].name, b->pkgs[i].name) != 0 || !va != !vb ||
		    (va && strcmp(va, vb) != 0))
			return false;
	}
	return true;
}

/* The list role (NULL: nothing published in it yet) signs for group now, or none (*ret_cur
 * NULL). @return 0; the errors reading it. */
static int current_list(struct repo *r, const struct meta *role, const char *group,
			const char *path, struct verify_control_list **ret_cur)
{
	const struct meta_target *mt = role ? meta_find_target(role, path) : NULL;
	struct verify_target t = {.length = mt ? mt->length : 0};

	*ret_cur = NULL;
	if (!mt)
		return 0;
	memcpy(t.hash, mt->hash, VERIFY_HASH_LEN);
	return verify_fetch_control(&r->src, &t, group, ret_cur);
}

/* Store the list's bytes under their hash (the name clients fetch it by), their SHA-256 as hex
 * into hex. */
static int write_list(struct repo *r, const char *group, const char *buf, size_t len,
		      char hex[VERIFY_HASH_HEX])
{
	char *dir = NULL, *file = NULL;
	int ret;

	ret = verify_sha256_hex(buf, len, NULL, hex);
	if (ret < 0)
		return ret;
	ret = -ENOMEM;
	dir = meta_asprintf("targets/control/%s", group);
	file = meta_asprintf("targets/control/%s/%s.list.json", group, hex);
	if (!dir || !file)
		goto out;
	ret = repo_mkdir_ok(r->dirfd, "targets", 0755, "targets");
	if (ret == 0)
		ret = repo_mkdir_ok(r->dirfd, "targets/control", 0755, "targets/control");
	if (ret == 0)
		ret = repo_mkdir_ok(r->dirfd, dir, 0755, dir);
	if (ret == 0)
		ret = verify_write_atomic(r->dirfd, file, buf, len, 0644);
out:
	free(dir);
	free(file);
	return ret;
}

/* Store next and sign it as path into role del (its current metadata role, NULL: none) as
 * version v. */
static int sign_list(struct repo *r, const struct meta_delegation *del, const struct meta *role,
		     uint64_t v, const struct verify_control_list *next, const char *path,
		     const char *keydir, const struct verify_key *publisher)
{
	struct verify_control_list *check = NULL;
	struct online_keys k = {0};
	char *buf = NULL, hex[VERIFY_HASH_HEX];
	size_t len = 0;
	int ret;

	ret = verify_control_dump(next, &buf, &len);
	if (ret < 0)
		return ret;
	/* Never publish what a client would refuse. */
	ret = verify_control_parse(buf, len, path, &check);
	verify_control_list_free(check);
	if (ret == 0)
		ret = repo_load_online(r, keydir, false, &k);
	if (ret == 0)
		ret = write_list(r, next->group, buf, len, hex);
	if (ret == 0)
		ret = repo_commit_target(
		    r, del, role, v, path,
		    json_pack("{s:I, s:{s:s}}", "length", (json_int_t)len, "hashes", "sha256", hex),
		    publisher, &k);
	repo_online_free(&k);
	free(buf);
	return ret;
}

int verify_repo_publish_control(const char *repodir, const char *keydir,
				const struct verify_key *publisher,
				const struct verify_control_list *l,
				const struct verify_repo_opts *o, uint64_t *ret_version)
{
	struct verify_control_list *cur = NULL, next = *l;
	const struct meta_delegation *del;
	const struct meta *role = NULL;
	struct repo r = {.dirfd = -1, .mdfd = -1};
	const char *id = verify_key_id(publisher);
	char *path;
	uint64_t v;
	int ret;

	if (!verify_key_is_private(publisher)) {
		stork_errorf("control publish: key %.16s: the private key is needed to sign", id);
		return -EINVAL;
	}
	ret = verify_check_group_name(l->group);
	if (ret < 0)
		return ret;
	path = verify_control_target_path(l->group);
	if (!path)
		return -ENOMEM;
	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		goto out;
	del = repo_signing_delegation(&r, id, path);
	if (!del) {
		stork_errorf("control list of group %s: key %.16s is not delegated the control "
			     "lists of group %s; delegate them with `stork control delegate %s "
			     "--keys KEYDIR KEYFILE.pub %s`",
			     l->group, id, l->group, repodir, l->group);
		ret = STORK_EPATTERN;
		goto out;
	}
	ret = repo_role_for_write(&r, del, &role, &v);
	if (ret == 0)
		ret = current_list(&r, role, l->group, path, &cur);
	if (ret < 0)
		goto out;
	if (cur && same_packages(cur, l)) {
		if (ret_version)
			*ret_version = cur->version;
		ret = 1;
		goto out;
	}
	next.version = cur ? cur->version + 1 : 1;
	ret = sign_list(&r, del, role, v, &next, path, keydir, publisher);
	if (ret == 0 && ret_version)
		*ret_version = next.version;
out:
	verify_control_list_free(cur);
	repo_close(&r);
	free(path);
	return ret;
}
