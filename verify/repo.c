/* verify/repo.c: the repository writer. Reads the repository's current state through the
 * client code (signatures checked, expiry not: refreshing expired metadata is its job), writes
 * each new file with verify_write_atomic in the order manifest, delegated role, targets,
 * snapshot, timestamp.json; renaming timestamp.json is the commit point. Writers serialize on
 * flock() of REPODIR/metadata. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "verify/trusted.h"

#define DAY	    (24 * 60 * 60)
#define TMP_MAX_AGE (60 * 60)

struct repo {
	const char *dir;
	int dirfd;
	int mdfd; /* REPODIR/metadata, flock()ed */
	struct verify_source src;
	struct verify_client *c;
	time_t now;
	int64_t expiry[META_NROLES];
};

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

static int expiry_save(const struct repo *r, const char *keydir)
{
	char buf[256];
	size_t len = 0;
	int fd, ret;

	for (int i = 0; i < META_NROLES; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s=%" PRId64 "\n",
					meta_role_names[i], r->expiry[i]);
	fd = open(keydir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = verify_write_atomic(fd, EXPIRY_FILE, buf, len, 0600);
	close(fd);
	if (ret < 0)
		stork_errorf("%s/" EXPIRY_FILE ": %s", keydir, storkfs_strerror(ret));
	return ret;
}

/* Expiry durations: explicit options, else KEYDIR's saved choice, else the defaults. Explicit
 * options are saved for the next time when keydir is given. */
static int opts_init(struct repo *r, const struct verify_repo_opts *o, const char *keydir)
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
			return expiry_save(r, keydir);
	}
	return 0;
}

static void repo_close(struct repo *r)
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

static int lock_metadata(struct repo *r)
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
static int repo_open(struct repo *r, const char *repodir, const char *keydir,
		     const struct verify_repo_opts *o)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	r->dir = repodir;
	r->dirfd = r->mdfd = -1;
	ret = opts_init(r, o, keydir);
	if (ret < 0)
		return ret;
	r->dirfd = open(repodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dirfd < 0) {
		ret = -errno;
		stork_errorf("%s: %s", repodir, storkfs_strerror(ret));
		goto out;
	}
	ret = lock_metadata(r);
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

/* ------------------------------------------------------------------------------------------ */
/* Key files of a rotation in KEYDIR (verify/README.md "Keys"):
 *   ROLE.key                  the key the newest committed root lists for ROLE
 *   ROLE.key.new              a rotation's new key, saved before any metadata names it
 *   ROLE.key.old-<16 hex>     a key a rotation replaced, named by its key id (never reused) */
#define PENDING_SUFFIX ".new"

/* Make ROLE.key.new the current ROLE.key, keeping the old one as ROLE.key.old-<id>. Hard links
 * first, then renames: ROLE.key names one of the two keys at every step, and a crash anywhere
 * leaves a state that settle_keys() finishes. */
static int switch_key(const char *keydir, const char *role)
{
	struct verify_key *old = NULL;
	char cur[80], pend[88], arch[112], curpub[84], pendpub[92], archpub[116];
	char *path = NULL;
	int dfd, ret;

	dfd = open(keydir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		ret = -errno;
		stork_errorf("%s: %s", keydir, storkfs_strerror(ret));
		return ret;
	}
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
		ret = switch_key(keydir, meta_role_names[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* A top-level role's private key from KEYDIR, which must be one the root lists for it. */
static int load_key(const struct repo *r, const char *keydir, enum meta_toprole role,
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

/* The online keys a change signs with: the top-level targets key (only when the change
 * rewrites the top-level targets), the snapshot and the timestamp keys. */
struct online_keys {
	struct verify_key *targets, *snapshot, *timestamp;
};

static int load_online(const struct repo *r, const char *keydir, bool targets,
		       struct online_keys *k)
{
	int ret = targets ? load_key(r, keydir, META_ROLE_TARGETS, &k->targets) : 0;

	if (ret == 0)
		ret = load_key(r, keydir, META_ROLE_SNAPSHOT, &k->snapshot);
	if (ret == 0)
		ret = load_key(r, keydir, META_ROLE_TIMESTAMP, &k->timestamp);
	return ret;
}

static void online_free(struct online_keys *k)
{
	verify_key_free(k->targets);
	verify_key_free(k->snapshot);
	verify_key_free(k->timestamp);
}

/* _type, spec_version, version, expires: the fields every role has. */
static int set_common(json_t *s, const char *type, uint64_t version, time_t expires)
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
static int write_signed_n(int mdfd, const char *name, const json_t *s,
			  struct verify_key *const *keys, size_t nkeys, char **ret_buf,
			  size_t *ret_len)
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

static int write_signed(int mdfd, const char *name, const json_t *s, struct verify_key *key,
			char **ret_buf, size_t *ret_len)
{
	return write_signed_n(mdfd, name, s, &key, 1, ret_buf, ret_len);
}

/* New snapshot (with the given role files at new versions) and then timestamp.json, the
 * commit point, each signed by every key given (two during a key rotation: the old key for
 * clients that still trust the old root, the new one for those that trust the new root).
 * names[i] like "targets.json", "alice.json". */
static int commit_n(struct repo *r, const char *const *names, const uint64_t *versions, size_t n,
		    struct verify_key *const *snapkeys, size_t nsnap,
		    struct verify_key *const *tskeys, size_t nts)
{
	const struct meta *cur_snap = trusted_meta(r->c, META_SNAPSHOT);
	uint64_t sv = cur_snap->version + 1, tv = trusted_meta(r->c, META_TIMESTAMP)->version + 1;
	json_t *snap = NULL, *meta = NULL, *ts = NULL;
	uint8_t digest[VERIFY_HASH_LEN];
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
	ret = set_common(snap, "snapshot", sv, r->now + r->expiry[META_ROLE_SNAPSHOT]);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	if (json_object_set(snap, "meta", meta) < 0)
		goto out;
	snprintf(name, sizeof(name), "%" PRIu64 ".snapshot.json", sv);
	ret = write_signed_n(r->mdfd, name, snap, snapkeys, nsnap, &buf, &len);
	if (ret < 0)
		goto out;
	ret = verify_sha256(buf, len, digest);
	if (ret < 0)
		goto out;
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	ret = set_common(ts, "timestamp", tv, r->now + r->expiry[META_ROLE_TIMESTAMP]);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	if (json_object_set_new(ts, "meta",
				json_pack("{s:{s:I, s:I, s:{s:s}}}", "snapshot.json", "version",
					  (json_int_t)sv, "length", (json_int_t)len, "hashes",
					  "sha256", hex)) < 0)
		goto out;
	ret = write_signed_n(r->mdfd, "timestamp.json", ts, tskeys, nts, NULL, NULL);
out:
	free(buf);
	json_decref(snap);
	json_decref(meta);
	json_decref(ts);
	return ret;
}

static int commit(struct repo *r, const char *const *names, const uint64_t *versions, size_t n,
		  struct verify_key *snapkey, struct verify_key *tskey)
{
	return commit_n(r, names, versions, n, &snapkey, 1, &tskey, 1);
}

/* Sign the top-level targets s as its next version with k's targets key, then commit it
 * together with role (NULL: none) at role_version, written before by the caller. */
static int commit_targets(struct repo *r, json_t *s, const struct online_keys *k, const char *role,
			  uint64_t role_version)
{
	const char *names[2];
	uint64_t versions[2], tv = trusted_meta(r->c, META_TARGETS)->version + 1;
	char file[64];
	size_t n = 0;
	int ret;

	ret = set_common(s, "targets", tv, r->now + r->expiry[META_ROLE_TARGETS]);
	if (ret < 0)
		return ret;
	snprintf(file, sizeof(file), "%" PRIu64 ".targets.json", tv);
	ret = write_signed(r->mdfd, file, s, k->targets, NULL, NULL);
	if (ret < 0)
		return ret;
	if (role) {
		names[n] = role;
		versions[n++] = role_version;
	}
	names[n] = "targets.json";
	versions[n++] = tv;
	return commit(r, names, versions, n, k->snapshot, k->timestamp);
}

/* ------------------------------------------------------------------------------------------ */
/* init */

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

static int mkdir_ok(int dirfd, const char *path, mode_t mode, const char *what)
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

static json_t *role_keys(const char *keyid)
{
	return json_pack("{s:[s], s:i}", "keyids", keyid, "threshold", 1);
}

int verify_repo_init(const char *repodir, const char *keydir, const struct verify_repo_opts *o,
		     char **ret_root_path)
{
	struct verify_key *keys[META_NROLES] = {NULL};
	json_t *root = NULL, *targets = NULL, *snap = NULL, *ts = NULL, *jkeys, *jroles;
	char *path = NULL, *rootbuf = NULL, *snapbuf = NULL;
	uint8_t digest[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX];
	size_t rootlen = 0, snaplen = 0;
	struct repo r = {.dir = repodir, .dirfd = -1, .mdfd = -1};
	struct stat st;
	int i, ret;

	ret = opts_init(&r, o, NULL);
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
	ret = mkdir_ok(r.dirfd, "metadata", 0755, "metadata");
	if (ret < 0)
		goto out;
	ret = lock_metadata(&r);
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
	ret = expiry_save(&r, keydir);
	if (ret < 0)
		goto out;
	ret = mkdir_ok(r.dirfd, "targets", 0755, "targets");
	if (ret < 0)
		goto out;
	ret = mkdir_ok(r.dirfd, "objects", 0755, "objects");
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
		    json_object_set_new(jroles, meta_role_names[i], role_keys(id)) < 0)
			goto out;
	}
	ret = set_common(root, "root", 1, r.now + r.expiry[META_ROLE_ROOT]);
	if (ret < 0)
		goto out;
	ret = write_signed(r.mdfd, "1.root.json", root, keys[META_ROLE_ROOT], &rootbuf, &rootlen);
	if (ret < 0)
		goto out;
	ret = verify_write_atomic(r.mdfd, "root.json", rootbuf, rootlen, 0644);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	targets = json_pack("{s:{}, s:{s:{}, s:[]}}", "targets", "delegations", "keys", "roles");
	if (!targets)
		goto out;
	ret = set_common(targets, "targets", 1, r.now + r.expiry[META_ROLE_TARGETS]);
	if (ret < 0)
		goto out;
	ret = write_signed(r.mdfd, "1.targets.json", targets, keys[META_ROLE_TARGETS], NULL, NULL);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	snap = json_pack("{s:{s:{s:i}}}", "meta", "targets.json", "version", 1);
	if (!snap)
		goto out;
	ret = set_common(snap, "snapshot", 1, r.now + r.expiry[META_ROLE_SNAPSHOT]);
	if (ret < 0)
		goto out;
	ret = write_signed(r.mdfd, "1.snapshot.json", snap, keys[META_ROLE_SNAPSHOT], &snapbuf,
			   &snaplen);
	if (ret < 0)
		goto out;
	ret = verify_sha256(snapbuf, snaplen, digest);
	if (ret < 0)
		goto out;
	verify_hex(digest, VERIFY_HASH_LEN, hex);

	ret = -ENOMEM;
	ts = json_pack("{s:{s:{s:i, s:I, s:{s:s}}}}", "meta", "snapshot.json", "version", 1,
		       "length", (json_int_t)snaplen, "hashes", "sha256", hex);
	if (!ts)
		goto out;
	ret = set_common(ts, "timestamp", 1, r.now + r.expiry[META_ROLE_TIMESTAMP]);
	if (ret < 0)
		goto out;
	ret = write_signed(r.mdfd, "timestamp.json", ts, keys[META_ROLE_TIMESTAMP], NULL, NULL);
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

/* ------------------------------------------------------------------------------------------ */
/* delegate */

static json_t *find_role_json(json_t *roles, const char *name)
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

static bool strv_json_has(const json_t *arr, const char *s)
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

int verify_repo_delegate(const char *repodir, const char *keydir, const struct verify_key *pub,
			 const char *role, const char *const *patterns, size_t npatterns,
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

	ret = verify_check_role_name(role);
	if (ret < 0)
		return ret;
	if (npatterns == 0) {
		stork_errorf("role %s: no package name patterns to delegate", role);
		return -EINVAL;
	}
	for (i = 0; i < npatterns; i++) {
		ret = verify_check_name_pattern(patterns[i]);
		if (ret < 0)
			return ret;
	}
	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		return ret;
	ret = load_online(&r, keydir, true, &k);
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
	rj = find_role_json(roles, role);
	if (rj) {
		if (!strv_json_has(json_object_get(rj, "keyids"), id)) {
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
		char *p = meta_asprintf("%s/*", patterns[i]);

		if (!p)
			goto out;
		if (!strv_json_has(paths, p)) {
			if (json_array_append_new(paths, json_string(p)) < 0) {
				free(p);
				goto out;
			}
			changed = true;
		}
		free(p);
	}
	ret = 0;
	if (!changed)
		goto out; /* already delegated exactly so */
	ret = commit_targets(&r, s, &k, NULL, 0);
out:
	json_decref(s);
	online_free(&k);
	repo_close(&r);
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* publish */

#define REVOKED_FIELD META_REVOKED_FIELD

/* The delegated role del as a writer builds on it: ret_cur its current trusted metadata, or
 * NULL when there is none to build on (the snapshot does not list the role: nothing published
 * yet, ret_next 1; or the role was revoked and delegated again since: the top-level targets
 * marks the listed version revoked, and the role starts again, empty, above it).
 * @return 0; the client's error loading the role. */
static int role_for_write(struct repo *r, const struct meta_delegation *del,
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

/* Publishing outside the key's patterns: say what the key may publish, or how to delegate. */
static int pattern_error(const struct repo *r, const struct verify_key *publisher, const char *what,
			 const char *target)
{
	const struct meta *t = trusted_meta(r->c, META_TARGETS);
	const struct meta_delegation *d;
	const char *id = verify_key_id(publisher);
	char list[1024] = "";
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
	ret = mkdir_ok(r->dirfd, "targets", 0755, "targets");
	if (ret < 0)
		goto out;
	ret = mkdir_ok(r->dirfd, dir, 0755, dir);
	if (ret < 0)
		goto out;
	ret = verify_write_atomic(r->dirfd, file, buf, len, 0644);
out:
	free(dir);
	free(file);
	return ret;
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

int verify_repo_publish(const char *repodir, const char *keydir, const struct verify_key *publisher,
			const struct verify_manifest *m, const struct verify_repo_opts *o)
{
	struct online_keys k = {0};
	struct verify_manifest *check = NULL;
	const struct meta_delegation *del = NULL, *d;
	const struct meta *cur = NULL;
	const struct meta_target *old;
	json_t *s = NULL, *targets;
	char *target = NULL, *buf = NULL, *rolejson = NULL, hex[VERIFY_HASH_HEX], file[128];
	uint8_t digest[VERIFY_HASH_LEN];
	const char *id = verify_key_id(publisher);
	struct repo r = {.dirfd = -1, .mdfd = -1};
	size_t len = 0, i;
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
	ret = verify_sha256(buf, len, digest);
	if (ret < 0)
		goto out;
	verify_hex(digest, VERIFY_HASH_LEN, hex);

	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		goto out;
	for (i = 0; (d = trusted_delegation(r.c, i)) && !del; i++)
		if (meta_delegation_has_key(d, id) && meta_delegation_matches(d, target))
			del = d;
	if (!del) {
		char what[300];

		snprintf(what, sizeof(what), "%s %s", m->name, m->version);
		ret = pattern_error(&r, publisher, what, target);
		goto out;
	}
	ret = o && o->allow_shadowed ? 0 : shadowed(&r, del, m, target);
	if (ret < 0)
		goto out;
	ret = role_for_write(&r, del, &cur, &v);
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
	ret = load_online(&r, keydir, false, &k);
	if (ret < 0)
		goto out;

	ret = write_manifest(&r, m, hex, buf, len, false);
	if (ret < 0)
		goto out;

	ret = -ENOMEM;
	s = cur ? json_deep_copy(cur->signed_json) : json_pack("{s:{}}", "targets");
	if (!s)
		goto out;
	targets = json_object_get(s, "targets");
	if (json_object_set_new(targets, target,
				json_pack("{s:I, s:{s:s}, s:{s:{s:I, s:I}}}", "length",
					  (json_int_t)len, "hashes", "sha256", hex, "custom",
					  "storkfs", "size", (json_int_t)m->total_size, "files",
					  (json_int_t)m->n)) < 0)
		goto out;
	ret = set_common(s, "targets", v, r.now + r.expiry[META_ROLE_TARGETS]);
	if (ret < 0)
		goto out;
	snprintf(file, sizeof(file), "%" PRIu64 ".%s.json", v, del->name);
	ret = write_signed(r.mdfd, file, s, (struct verify_key *)publisher, NULL, NULL);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	rolejson = meta_asprintf("%s.json", del->name);
	if (!rolejson)
		goto out;
	ret = commit(&r, (const char *const *)&rolejson, &v, 1, k.snapshot, k.timestamp);
out:
	json_decref(s);
	verify_manifest_free(check);
	online_free(&k);
	repo_close(&r);
	free(rolejson);
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
	for (size_t i = 0; (d = trusted_delegation(r.c, i)); i++) {
		if (meta_delegation_has_key(d, id) && meta_delegation_matches(d, target)) {
			role = strdup(d->name);
			if (!role) {
				ret = -ENOMEM;
				goto out;
			}
			*ret_role = role;
			ret = 0;
			goto out;
		}
	}
	ret = pattern_error(&r, publisher, name, name);
out:
	repo_close(&r);
	free(target);
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* refresh */

/* Remove ".tmp-*" files older than TMP_MAX_AGE in one directory (a killed writer's). */
static void clean_tmp_in(int dirfd, const char *path, time_t now)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_mtime < now - TMP_MAX_AGE)
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
}

/* ...in every directory below `top` (targets/<name>/, objects/<xx>/). */
static void clean_tmp_below(int dirfd, const char *top, time_t now)
{
	struct dirent *de;
	DIR *d;
	int fd;

	clean_tmp_in(dirfd, top, now);
	fd = openat(dirfd, top, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			clean_tmp_in(fd, de->d_name, now);
	closedir(d);
}

int verify_repo_refresh(const char *repodir, const char *keydir, const struct verify_repo_opts *o)
{
	struct online_keys k = {0};
	struct repo r = {.dirfd = -1, .mdfd = -1};
	time_t wall = time(NULL);
	int ret;

	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		return ret;
	ret = load_online(&r, keydir, false, &k);
	if (ret < 0)
		goto out;
	ret = commit(&r, NULL, NULL, 0, k.snapshot, k.timestamp);
	if (ret < 0)
		goto out;
	/* File ages are wall-clock ages, whatever time the metadata is signed for. */
	clean_tmp_in(r.dirfd, "metadata", wall);
	clean_tmp_below(r.dirfd, "targets", wall);
	clean_tmp_below(r.dirfd, "objects", wall);
out:
	online_free(&k);
	repo_close(&r);
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* rotate, rekey, revoke */

static int top_role_index(const char *name)
{
	for (int i = 0; i < META_NROLES; i++)
		if (strcmp(name, meta_role_names[i]) == 0)
			return i;
	return -1;
}

/* Drop from keys (an object by key id) every key that no role in roles lists; roles is the
 * root's "roles" object or a targets' "delegations.roles" array. */
static void prune_keys(json_t *keys, json_t *roles)
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
				used = used || strv_json_has(json_object_get(e, "keyids"), id);
			}
		} else {
			json_object_foreach(roles, name, e)
			{
				used = used || strv_json_has(json_object_get(e, "keyids"), id);
			}
		}
		if (!used)
			json_object_del(keys, id);
	}
}

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
		k = top_role_index(roles[i]);
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
	 * old key of each rotated role signs the transition (see commit_n). */
	for (k = 0; k < META_NROLES; k++) {
		if (k == META_ROLE_TARGETS && !rot[k])
			continue;
		ret = load_key(&r, keydir, (enum meta_toprole)k, &old[k]);
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
	ret = set_common(root, "root", rv, r.now + r.expiry[META_ROLE_ROOT]);
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
		    json_object_set_new(jroles, meta_role_names[k], role_keys(id)) < 0)
			goto out;
	}
	prune_keys(jkeys, jroles);

	/* Until the new root is written clients trust the old one, after it the new one: every
	 * file in between is signed by the old and the new key of its role, valid under both. */
	if (rot[META_ROLE_TARGETS]) {
		ret = -ENOMEM;
		targets = json_deep_copy(trusted_meta(r.c, META_TARGETS)->signed_json);
		if (!targets)
			goto out;
		tv = trusted_meta(r.c, META_TARGETS)->version + 1;
		ret = set_common(targets, "targets", tv, r.now + r.expiry[META_ROLE_TARGETS]);
		if (ret < 0)
			goto out;
		tsigners[0] = old[META_ROLE_TARGETS];
		tsigners[1] = new[META_ROLE_TARGETS];
		snprintf(file, sizeof(file), "%" PRIu64 ".targets.json", tv);
		ret = write_signed_n(r.mdfd, file, targets, tsigners, 2, NULL, NULL);
		if (ret < 0)
			goto out;
	}
	ssigners[0] = old[META_ROLE_SNAPSHOT];
	ssigners[1] = new[META_ROLE_SNAPSHOT];
	tssigners[0] = old[META_ROLE_TIMESTAMP];
	tssigners[1] = new[META_ROLE_TIMESTAMP];
	ret =
	    commit_n(&r, &name, &tv, rot[META_ROLE_TARGETS] ? 1 : 0, ssigners,
		     rot[META_ROLE_SNAPSHOT] ? 2 : 1, tssigners, rot[META_ROLE_TIMESTAMP] ? 2 : 1);
	if (ret < 0)
		goto out;

	/* The rotation's commit point: N+1.root.json, signed by the old and the new root keys
	 * (TUF 5.3). Clients find it by its name, whatever the timestamp says. */
	rsigners[0] = old[META_ROLE_ROOT];
	rsigners[1] = new[META_ROLE_ROOT];
	snprintf(file, sizeof(file), "%" PRIu64 ".root.json", rv);
	ret = write_signed_n(r.mdfd, file, root, rsigners, rot[META_ROLE_ROOT] ? 2 : 1, &rootbuf,
			     &rootlen);
	if (ret < 0)
		goto out;
	for (k = 0; k < META_NROLES; k++) {
		if (!rot[k])
			continue;
		ret = switch_key(keydir, meta_role_names[k]);
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

/* Checks shared by rekey and revoke: a delegated role name, not a top-level one. */
static int check_delegated_name(const char *what, const char *role)
{
	if (top_role_index(role) >= 0) {
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
	ret = load_online(&r, keydir, true, &k);
	if (ret < 0)
		goto out;
	ret = role_for_write(&r, del, &cur, &v);
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
		ret = set_common(rs, "targets", v, r.now + r.expiry[META_ROLE_TARGETS]);
		if (ret < 0)
			goto out;
		snprintf(file, sizeof(file), "%" PRIu64 ".%s.json", v, role);
		ret = write_signed(r.mdfd, file, rs, (struct verify_key *)newkey, NULL, NULL);
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
	rj = find_role_json(json_object_get(dels, "roles"), role);
	if (!json_is_object(keys) || !rj ||
	    json_object_set_new(rj, "keyids", json_pack("[s]", id)) < 0 ||
	    json_object_set_new(rj, "threshold", json_integer(1)) < 0 ||
	    json_object_set_new(keys, id, verify_key_to_json(newkey)) < 0)
		goto out;
	prune_keys(keys, json_object_get(dels, "roles"));
	ret = commit_targets(&r, s, &k, v > 1 ? rolejson : NULL, v);
out:
	json_decref(s);
	json_decref(rs);
	free(rolejson);
	online_free(&k);
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
	ret = load_online(&r, keydir, true, &k);
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
	prune_keys(json_object_get(dels, "keys"), roles);

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
		ret = set_common(tomb, "targets", v, r.now + r.expiry[META_ROLE_TARGETS]);
		if (ret < 0)
			goto out;
		snprintf(file, sizeof(file), "%" PRIu64 ".%s.json", v, role);
		ret = write_signed(r.mdfd, file, tomb, k.targets, NULL, NULL);
		if (ret < 0)
			goto out;
	}
	ret = commit_targets(&r, s, &k, mf ? rolejson : NULL, v);
out:
	json_decref(s);
	json_decref(tomb);
	free(rolejson);
	online_free(&k);
	repo_close(&r);
	return ret;
}
