/* verify/writer/init.c: `stork repo init`: a key directory with four new keys and version 1 of
 * every top-level role. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "verify/atomic.h"
#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/writer/internal.h"

/* The canonical absolute path of p, which may not exist yet (its parent must). */
static char *canonical(const char *p)
{
	char *real, *copy1 = NULL, *copy2 = NULL, *parent = NULL, *out = NULL;

	real = realpath(p, NULL);
	if (real)
		return real;
	copy1 = strdup(p);
	copy2 = strdup(p);
	if (!copy1 || !copy2)
		goto out;
	parent = realpath(dirname(copy1), NULL);
	if (!parent)
		goto out;
	out = meta_asprintf("%s/%s", strcmp(parent, "/") == 0 ? "" : parent, basename(copy2));
out:
	free(copy1);
	free(copy2);
	free(parent);
	return out;
}

static int check_keydir_outside(const char *repodir, const char *keydir)
{
	char *rr = canonical(repodir), *kr = canonical(keydir);
	int ret = 0;
	size_t n;

	if (!rr || !kr) {
		ret = -errno ? -errno : -ENOMEM;
		stork_errorf("%s: %s", rr ? keydir : repodir, storkfs_strerror(ret));
		goto out;
	}
	n = strlen(rr);
	if (strcmp(rr, "/") == 0 || strcmp(rr, kr) == 0 ||
	    (strncmp(rr, kr, n) == 0 && kr[n] == '/')) {
		stork_errorf("%s: the key directory is inside the repository %s, which is served "
			     "publicly; keep the keys outside it",
			     keydir, repodir);
		ret = -EINVAL;
	}
out:
	free(rr);
	free(kr);
	return ret;
}

int repo_mkdir_ok(int dirfd, const char *path, mode_t mode, const char *what)
{
	int e;

	if (mkdirat(dirfd, path, mode) == 0 || errno == EEXIST)
		return 0;
	e = -errno;
	stork_errorf("%s: cannot create: %s", what, storkfs_strerror(e));
	return e;
}

/* A repository exists if metadata/ holds any file readers would look at. */
static int check_no_metadata(struct repo *r)
{
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	fd = openat(r->mdfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		stork_errorf("%s/metadata: %s", r->dir, storkfs_strerror(ret));
		return ret;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		stork_errorf("%s: already a repository (metadata/%s exists)", r->dir, de->d_name);
		ret = -EEXIST;
		break;
	}
	closedir(d);
	return ret;
}

json_t *repo_role_keys(const char *keyid)
{
	return json_pack("{s:[s], s:i}", "keyids", keyid, "threshold", 1);
}

/* doc as version 1 of the top-level role, signed with key and written as metadata/<file>;
 * ret_buf (optional) receives the bytes. */
static int sign_first(const struct repo *r, json_t *doc, enum meta_toprole role, const char *file,
		      struct verify_key *key, char **ret_buf, size_t *ret_len)
{
	int ret = repo_set_common(doc, meta_role_names[role], 1, r->now + r->expiry[role]);

	if (ret < 0)
		return ret;
	return repo_write_signed(r->mdfd, file, doc, key, ret_buf, ret_len);
}

int verify_repo_init(const char *repodir, const char *keydir, const struct verify_repo_opts *o,
		     char **ret_root_path)
{
	struct verify_key *keys[META_NROLES] = {NULL};
	json_t *root = NULL, *targets = NULL, *snap = NULL, *ts = NULL, *jkeys, *jroles;
	char *path = NULL, *rootbuf = NULL, *snapbuf = NULL;
	char hex[VERIFY_HASH_HEX];
	size_t rootlen = 0, snaplen = 0;
	struct repo r = {.dir = repodir, .dirfd = -1, .mdfd = -1};
	struct stat st;
	int i, ret;

	ret = repo_opts_init(&r, o, NULL);
	if (ret < 0)
		return ret;
	if (mkdir(repodir, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		stork_errorf("%s: cannot create: %s", repodir, storkfs_strerror(ret));
		return ret;
	}
	ret = check_keydir_outside(repodir, keydir);
	if (ret < 0)
		return ret;
	r.dirfd = open(repodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r.dirfd < 0) {
		ret = -errno;
		stork_errorf("%s: %s", repodir, storkfs_strerror(ret));
		goto out;
	}
	ret = repo_mkdir_ok(r.dirfd, "metadata", 0755, "metadata");
	if (ret < 0)
		goto out;
	ret = repo_lock_metadata(&r);
	if (ret < 0)
		goto out;
	ret = check_no_metadata(&r);
	if (ret < 0)
		goto out;

	/* Keys: refuse to touch a key directory that already holds any of them. */
	if (mkdir(keydir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		stork_errorf("%s: cannot create: %s", keydir, storkfs_strerror(ret));
		goto out;
	}
	for (i = 0; i < META_NROLES; i++) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/%s.key", keydir, meta_role_names[i]);
		if (lstat(p, &st) == 0) {
			stork_errorf("%s: exists; refusing to overwrite a key", p);
			ret = -EEXIST;
			goto out;
		}
	}
	for (i = 0; i < META_NROLES; i++) {
		ret = verify_key_generate(&keys[i]);
		if (ret < 0)
			goto out;
		free(path);
		path = meta_asprintf("%s/%s.key", keydir, meta_role_names[i]);
		if (!path) {
			ret = -ENOMEM;
			goto out;
		}
		ret = verify_key_save(keys[i], path);
		if (ret < 0) {
			if (!strstr(stork_error_detail(), path))
				stork_error_prefix("%s", path);
			goto out;
		}
	}
	ret = repo_expiry_save(&r, keydir);
	if (ret < 0)
		goto out;
	ret = repo_mkdir_ok(r.dirfd, "targets", 0755, "targets");
	if (ret < 0)
		goto out;
	ret = repo_mkdir_ok(r.dirfd, "objects", 0755, "objects");
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	root = json_object();
	jkeys = json_object();
	jroles = json_object();
	if (!root || !jkeys || !jroles || json_object_set_new(root, "keys", jkeys) < 0 ||
	    json_object_set_new(root, "roles", jroles) < 0 ||
	    json_object_set_new(root, "consistent_snapshot", json_true()) < 0)
		goto out;
	for (i = 0; i < META_NROLES; i++) {
		const char *id = verify_key_id(keys[i]);

		if (json_object_set_new(jkeys, id, verify_key_to_json(keys[i])) < 0 ||
		    json_object_set_new(jroles, meta_role_names[i], repo_role_keys(id)) < 0)
			goto out;
	}
	ret = sign_first(&r, root, META_ROLE_ROOT, "1.root.json", keys[META_ROLE_ROOT], &rootbuf,
			 &rootlen);
	if (ret < 0)
		goto out;
	ret = verify_write_atomic(r.mdfd, "root.json", rootbuf, rootlen, 0644);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	targets = json_pack("{s:{}, s:{s:{}, s:[]}}", "targets", "delegations", "keys", "roles");
	if (!targets)
		goto out;
	ret = sign_first(&r, targets, META_ROLE_TARGETS, "1.targets.json", keys[META_ROLE_TARGETS],
			 NULL, NULL);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	snap = json_pack("{s:{s:{s:i}}}", "meta", "targets.json", "version", 1);
	if (!snap)
		goto out;
	ret = sign_first(&r, snap, META_ROLE_SNAPSHOT, "1.snapshot.json", keys[META_ROLE_SNAPSHOT],
			 &snapbuf, &snaplen);
	if (ret < 0)
		goto out;
	ret = verify_sha256_hex(snapbuf, snaplen, NULL, hex);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	ts = json_pack("{s:{s:{s:i, s:I, s:{s:s}}}}", "meta", "snapshot.json", "version", 1,
		       "length", (json_int_t)snaplen, "hashes", "sha256", hex);
	if (!ts)
		goto out;
	ret = sign_first(&r, ts, META_ROLE_TIMESTAMP, "timestamp.json", keys[META_ROLE_TIMESTAMP],
			 NULL, NULL);
	if (ret < 0)
		goto out;

	free(path);
	path = meta_asprintf("%s/metadata/1.root.json", repodir);
	if (!path) {
		ret = -ENOMEM;
		goto out;
	}
	*ret_root_path = path;
	path = NULL;
	ret = 0;
out:
	for (i = 0; i < META_NROLES; i++)
		verify_key_free(keys[i]);
	json_decref(root);
	json_decref(targets);
	json_decref(snap);
	json_decref(ts);
	free(rootbuf);
	free(snapbuf);
	free(path);
	repo_close(&r);
	return ret;
}
