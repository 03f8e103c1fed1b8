/* verify/writer/repo.c: what every operation of the repository writer shares. Reads the
 * repository's current state through the client code (signatures checked, expiry not:
 * refreshing expired metadata is its job) and sees it through verify/trusted.h; writes each new
 * file with verify_write_atomic in the order manifest, delegated role, targets, snapshot,
 * timestamp.json; renaming timestamp.json is the commit point. Writers serialize on flock() of
 * REPODIR/metadata. The operations are init.c, delegate.c, publish.c, refresh.c, rotate.c and
 * revoke.c (rekey and revoke). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>

#include "verify/atomic.h"
#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/tuf.h"
#include "verify/writer/internal.h"

/* The expiry durations an operator chose at `repo init` (or later with --expires) are kept in
 * KEYDIR/expiry as lines "ROLE=SECONDS", so that every later re-signing uses them. */
#define EXPIRY_FILE "expiry"

static void expiry_load(struct repo *r, const struct verify_repo_opts *o, const char *keydir)
{
	const int64_t explicit[META_NROLES] = {o->root_expiry, o->targets_expiry,
					       o->snapshot_expiry, o->timestamp_expiry};
	char *path = meta_asprintf("%s/" EXPIRY_FILE, keydir), line[128];
	FILE *f = path ? fopen(path, "re") : NULL;

	while (f && fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *end;
		long long v;

		if (!eq)
			continue;
		*eq = '\0';
		errno = 0;
		v = strtoll(eq + 1, &end, 10);
		if (errno || end == eq + 1 || v <= 0 || v > 100LL * 365 * DAY)
			continue;
		for (int i = 0; i < META_NROLES; i++)
			if (!strcmp(line, meta_role_names[i]) && !explicit[i])
				r->expiry[i] = v;
	}
	if (f)
		fclose(f);
	free(path);
}

/* KEYDIR as a directory descriptor (the caller closes it); a failure names it.
 * @return the descriptor; -errno. */
static int open_keydir(const char *keydir)
{
	int fd = open(keydir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		fd = -errno;
		stork_errorf("%s: %s", keydir, storkfs_strerror(fd));
	}
	return fd;
}

int repo_expiry_save(const struct repo *r, const char *keydir)
{
	char buf[256];
	size_t len = 0;
	int fd, ret;

	for (int i = 0; i < META_NROLES; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s=%" PRId64 "\n",
					meta_role_names[i], r->expiry[i]);
	fd = open_keydir(keydir);
	if (fd < 0)
		return fd;
	ret = verify_write_atomic(fd, EXPIRY_FILE, buf, len, 0600);
	close(fd);
	if (ret < 0)
		stork_errorf("%s/" EXPIRY_FILE ": %s", keydir, storkfs_strerror(ret));
	return ret;
}

/* Expiry durations: explicit options, else KEYDIR's saved choice, else the defaults. Explicit
 * options are saved for the next time when keydir is given. */
int repo_opts_init(struct repo *r, const struct verify_repo_opts *o, const char *keydir)
{
	static const struct verify_repo_opts none;
	int i;

	if (!o)
		o = &none;
	r->now = o->now ? o->now : time(NULL);
	r->expiry[META_ROLE_ROOT] = o->root_expiry ? o->root_expiry : 365 * DAY;
	r->expiry[META_ROLE_TARGETS] = o->targets_expiry ? o->targets_expiry : 365 * DAY;
	r->expiry[META_ROLE_SNAPSHOT] = o->snapshot_expiry ? o->snapshot_expiry : 7 * DAY;
	r->expiry[META_ROLE_TIMESTAMP] = o->timestamp_expiry ? o->timestamp_expiry : DAY;
	for (i = 0; i < META_NROLES; i++) {
		if (r->expiry[i] < 0 || r->expiry[i] > 100LL * 365 * DAY) {
			stork_errorf("expiry of role %s: %" PRId64
				     " seconds is not between 1 second and 100 years",
				     meta_role_names[i], r->expiry[i]);
			return -EINVAL;
		}
	}
	if (keydir) {
		expiry_load(r, o, keydir);
		if (o->root_expiry || o->targets_expiry || o->snapshot_expiry ||
		    o->timestamp_expiry)
			return repo_expiry_save(r, keydir);
	}
	return 0;
}

void repo_close(struct repo *r)
{
	verify_client_free(r->c);
	r->c = NULL;
	verify_dir_source_fini(&r->src);
	if (r->mdfd >= 0)
		close(r->mdfd); /* drops the lock */
	if (r->dirfd >= 0)
		close(r->dirfd);
	r->mdfd = r->dirfd = -1;
}

int repo_lock_metadata(struct repo *r)
{
	r->mdfd = openat(r->dirfd, "metadata", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->mdfd < 0) {
		int e = -errno;

		if (e == -ENOENT)
			stork_errorf("%s: not a storkfs repository (no metadata directory); create "
				     "one with `stork repo init`",
				     r->dir);
		else
			stork_errorf("%s/metadata: %s", r->dir, storkfs_strerror(e));
		return e;
	}
	while (flock(r->mdfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = -errno;

			stork_errorf("%s/metadata: cannot lock: %s", r->dir, storkfs_strerror(e));
			return e;
		}
	}
	return 0;
}

static int settle_keys(const struct repo *r, const char *keydir);

/* Lock the repository and read its state, checking every signature on the way, so that a
 * writer never builds on metadata someone tampered with. */
int repo_open(struct repo *r, const char *repodir, const char *keydir,
	      const struct verify_repo_opts *o)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	r->dir = repodir;
	r->dirfd = r->mdfd = -1;
	ret = repo_opts_init(r, o, keydir);
	if (ret < 0)
		return ret;
	r->dirfd = open(repodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dirfd < 0) {
		ret = -errno;
		stork_errorf("%s: %s", repodir, storkfs_strerror(ret));
		goto out;
	}
	ret = repo_lock_metadata(r);
	if (ret < 0)
		goto out;
	ret = verify_dir_source_init(&r->src, repodir);
	if (ret < 0)
		goto out;
	ret = r->src.get(r->src.ctx, "metadata/1.root.json", VERIFY_MAX_ROOT_LEN, &buf, &len);
	if (ret == -ENOENT)
		stork_errorf("%s: not a storkfs repository (no metadata/1.root.json); create one "
			     "with `stork repo init`",
			     repodir);
	if (ret < 0)
		goto out;
	ret = verify_client_new(buf, len, r->now, &r->c);
	if (ret < 0)
		goto out;
	trusted_ignore_expiry(r->c);
	ret = verify_client_refresh(r->c, &r->src);
	if (ret < 0) {
		stork_error_prefix("%s: the repository's current state does not verify", repodir);
		goto out;
	}
	if (keydir)
		ret = settle_keys(r, keydir);
out:
	free(buf);
	if (ret < 0)
		repo_close(r);
	return ret;
}

/* Make ROLE.key.new the current ROLE.key, keeping the old one as ROLE.key.old-<id>. Hard links
 * first, then renames: ROLE.key names one of the two keys at every step, and a crash anywhere
 * leaves a state that settle_keys() finishes. */
int repo_switch_key(const char *keydir, const char *role)
{
	struct verify_key *old = NULL;
	char cur[80], pend[88], arch[112], curpub[84], pendpub[92], archpub[116];
	char *path = NULL;
	int dfd, ret;

	dfd = open_keydir(keydir);
	if (dfd < 0)
		return dfd;
	snprintf(cur, sizeof(cur), "%s.key", role);
	snprintf(curpub, sizeof(curpub), "%s.key.pub", role);
	snprintf(pend, sizeof(pend), "%s.key" PENDING_SUFFIX, role);
	snprintf(pendpub, sizeof(pendpub), "%s.key" PENDING_SUFFIX ".pub", role);
	path = meta_asprintf("%s/%s", keydir, cur);
	if (!path) {
		ret = -ENOMEM;
		goto out;
	}
	ret = verify_key_load_public(path, &old);
	if (ret == 0) {
		snprintf(arch, sizeof(arch), "%s.key.old-%.16s", role, verify_key_id(old));
		snprintf(archpub, sizeof(archpub), "%s.pub", arch);
		if (linkat(dfd, cur, dfd, arch, 0) < 0 && errno != EEXIST) {
			ret = -errno;
			stork_errorf("%s/%s: cannot keep the old key: %s", keydir, arch,
				     storkfs_strerror(ret));
			goto out;
		}
		if (linkat(dfd, curpub, dfd, archpub, 0) < 0 && errno != EEXIST &&
		    errno != ENOENT) {
			ret = -errno;
			stork_errorf("%s/%s: cannot keep the old key: %s", keydir, archpub,
				     storkfs_strerror(ret));
			goto out;
		}
	} else if (ret != -ENOENT) {
		goto out;
	}
	/* the public half first: while ROLE.key.new exists, settle_keys() redoes the switch */
	if (renameat(dfd, pendpub, dfd, curpub) < 0 && errno != ENOENT) {
		ret = -errno;
		stork_errorf("%s/%s: cannot rename to %s: %s", keydir, pendpub, curpub,
			     storkfs_strerror(ret));
		goto out;
	}
	if (renameat(dfd, pend, dfd, cur) < 0) {
		ret = -errno;
		stork_errorf("%s/%s: cannot rename to %s: %s", keydir, pend, cur,
			     storkfs_strerror(ret));
		goto out;
	}
	if (fsync(dfd) < 0) {
		ret = -errno;
		stork_errorf("%s: fsync: %s", keydir, storkfs_strerror(ret));
		goto out;
	}
	ret = 0;
out:
	verify_key_free(old);
	free(path);
	close(dfd);
	return ret;
}

/* Finish a rotation that committed its root but crashed before switching the key files: each
 * ROLE.key.new that the trusted root lists for ROLE becomes ROLE.key. A ROLE.key.new the root
 * does not list is left for the next `repo rotate` of ROLE, which reuses it. */
static int settle_keys(const struct repo *r, const char *keydir)
{
	for (int i = 0; i < META_NROLES; i++) {
		struct verify_key *k = NULL;
		char *path;
		bool listed;
		int ret;

		path = meta_asprintf("%s/%s.key" PENDING_SUFFIX, keydir, meta_role_names[i]);
		if (!path)
			return -ENOMEM;
		if (access(path, F_OK) < 0) {
			free(path);
			continue;
		}
		ret = verify_key_load_public(path, &k);
		free(path);
		if (ret < 0)
			continue; /* not ours to judge here; `repo rotate` reports it */
		listed = meta_delegation_has_key(trusted_toprole(r->c, (enum meta_toprole)i),
						 verify_key_id(k));
		verify_key_free(k);
		if (!listed)
			continue;
		ret = repo_switch_key(keydir, meta_role_names[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* A top-level role's private key from KEYDIR, which must be one the root lists for it. */
int repo_load_key(const struct repo *r, const char *keydir, enum meta_toprole role,
		  struct verify_key **ret_key)
{
	const struct meta_delegation *d = trusted_toprole(r->c, role);
	struct verify_key *k = NULL;
	char *path;
	int ret;

	path = meta_asprintf("%s/%s.key", keydir, meta_role_names[role]);
	if (!path)
		return -ENOMEM;
	ret = verify_key_load_private(path, &k);
	if (ret < 0) {
		if (!strstr(stork_error_detail(), path))
			stork_error_prefix("%s", path);
		goto out;
	}
	if (!meta_delegation_has_key(d, verify_key_id(k))) {
		stork_errorf("%s: key %.16s is not a %s key of %s (it lists %.16s%s)", path,
			     verify_key_id(k), meta_role_names[role],
			     trusted_meta(r->c, META_ROOT)->file,
			     d->nkeyids ? d->keyids[0] : "none", d->nkeyids > 1 ? ", ..." : "");
		ret = STORK_EBADSIG;
		goto out;
	}
	*ret_key = k;
	k = NULL;
out:
	verify_key_free(k);
	free(path);
	return ret;
}

int repo_load_online(const struct repo *r, const char *keydir, bool targets, struct online_keys *k)
{
	int ret = targets ? repo_load_key(r, keydir, META_ROLE_TARGETS, &k->targets) : 0;

	if (ret == 0)
		ret = repo_load_key(r, keydir, META_ROLE_SNAPSHOT, &k->snapshot);
	if (ret == 0)
		ret = repo_load_key(r, keydir, META_ROLE_TIMESTAMP, &k->timestamp);
	return ret;
}

void repo_online_free(struct online_keys *k)
{
	verify_key_free(k->targets);
	verify_key_free(k->snapshot);
	verify_key_free(k->timestamp);
}

/* _type, spec_version, version, expires: the fields every role has. */
int repo_set_common(json_t *s, const char *type, uint64_t version, time_t expires)
{
	char exp[21];

	if (meta_format_time(expires, exp) < 0) {
		stork_errorf("expiry time %lld is out of range", (long long)expires);
		return -EOVERFLOW;
	}
	if (json_object_set_new(s, "_type", json_string(type)) < 0 ||
	    json_object_set_new(s, "spec_version", json_string(META_SPEC_VERSION)) < 0 ||
	    json_object_set_new(s, "version", json_integer((json_int_t)version)) < 0 ||
	    json_object_set_new(s, "expires", json_string(exp)) < 0)
		return -ENOMEM;
	return 0;
}

/* Sign s with every key of keys and write it as metadata/<name>. ret_buf (optional) receives
 * the bytes. */
int repo_write_signed_n(int mdfd, const char *name, const json_t *s, struct verify_key *const *keys,
			size_t nkeys, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	r = meta_sign(s, keys, nkeys, &buf, &len);
	if (r < 0) {
		stork_errorf("metadata/%s: cannot sign: %s", name, storkfs_strerror(r));
		goto out;
	}
	r = verify_write_atomic(mdfd, name, buf, len, 0644);
	if (r < 0) {
		stork_errorf("metadata/%s: cannot write: %s", name, storkfs_strerror(r));
		goto out;
	}
	if (ret_buf) {
		*ret_buf = buf;
		*ret_len = len;
		buf = NULL;
	}
out:
	free(buf);
	return r;
}

int repo_write_signed(int mdfd, const char *name, const json_t *s, struct verify_key *key,
		      char **ret_buf, size_t *ret_len)
{
	return repo_write_signed_n(mdfd, name, s, &key, 1, ret_buf, ret_len);
}

/* New snapshot (with the given role files at new versions) and then timestamp.json, the
 * commit point, each signed by every key given (two during a key rotation: the old key for
 * clients that still trust the old root, the new one for those that trust the new root).
 * names[i] like "targets.json", "alice.json". */
int repo_commit_n(struct repo *r, const char *const *names, const uint64_t *versions, size_t n,
		  struct verify_key *const *snapkeys, size_t nsnap,
		  struct verify_key *const *tskeys, size_t nts)
{
	const struct meta *cur_snap = trusted_meta(r->c, META_SNAPSHOT);
	uint64_t sv = cur_snap->version + 1, tv = trusted_meta(r->c, META_TIMESTAMP)->version + 1;
	json_t *snap = NULL, *meta = NULL, *ts = NULL;
	char hex[VERIFY_HASH_HEX], name[64], *buf = NULL;
	size_t len = 0, i;
	int ret = -ENOMEM;

	snap = json_object();
	ts = json_object();
	meta = json_deep_copy(json_object_get(cur_snap->signed_json, "meta"));
	if (!snap || !ts || !meta)
		goto out;
	for (i = 0; i < n; i++)
		if (json_object_set_new(meta, names[i],
					json_pack("{s:I}", "version", (json_int_t)versions[i])) < 0)
			goto out;
	ret = repo_set_common(snap, "snapshot", sv, r->now + r->expiry[META_ROLE_SNAPSHOT]);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	if (json_object_set(snap, "meta", meta) < 0)
		goto out;
	snprintf(name, sizeof(name), "%" PRIu64 ".snapshot.json", sv);
	ret = repo_write_signed_n(r->mdfd, name, snap, snapkeys, nsnap, &buf, &len);
	if (ret < 0)
		goto out;
	ret = verify_sha256_hex(buf, len, NULL, hex);
	if (ret < 0)
		goto out;
	ret = repo_set_common(ts, "timestamp", tv, r->now + r->expiry[META_ROLE_TIMESTAMP]);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	if (json_object_set_new(ts, "meta",
				json_pack("{s:{s:I, s:I, s:{s:s}}}", "snapshot.json", "version",
					  (json_int_t)sv, "length", (json_int_t)len, "hashes",
					  "sha256", hex)) < 0)
		goto out;
	ret = repo_write_signed_n(r->mdfd, "timestamp.json", ts, tskeys, nts, NULL, NULL);
out:
	free(buf);
	json_decref(snap);
	json_decref(meta);
	json_decref(ts);
	return ret;
}

int repo_commit(struct repo *r, const char *const *names, const uint64_t *versions, size_t n,
		struct verify_key *snapkey, struct verify_key *tskey)
{
	return repo_commit_n(r, names, versions, n, &snapkey, 1, &tskey, 1);
}

/* Sign the top-level targets s as its next version with k's targets key, then commit it
 * together with role (NULL: none) at role_version, written before by the caller. */
int repo_commit_targets(struct repo *r, json_t *s, const struct online_keys *k, const char *role,
			uint64_t role_version)
{
	const char *names[2];
	uint64_t versions[2], tv = trusted_meta(r->c, META_TARGETS)->version + 1;
	char file[64];
	size_t n = 0;
	int ret;

	ret = repo_set_common(s, "targets", tv, r->now + r->expiry[META_ROLE_TARGETS]);
	if (ret < 0)
		return ret;
	snprintf(file, sizeof(file), "%" PRIu64 ".targets.json", tv);
	ret = repo_write_signed(r->mdfd, file, s, k->targets, NULL, NULL);
	if (ret < 0)
		return ret;
	if (role) {
		names[n] = role;
		versions[n++] = role_version;
	}
	names[n] = "targets.json";
	versions[n++] = tv;
	return repo_commit(r, names, versions, n, k->snapshot, k->timestamp);
}
