/* verify/writer/gc.c: `stork repo gc`: delete the metadata versions, manifests and packs that no
 * client can still need, and tell the caller which objects the rest references (the object
 * sweep is store/import's, which owns the objects/ layout).
 *
 * The rule (TUF consistent snapshots, verify/README.md "Retention"): a client reads
 * timestamp.json, then the snapshot version it names, then the role versions that snapshot
 * names, then the manifests those roles sign (by hash), then the objects those manifests name.
 * Everything reachable from the `keep` newest snapshot versions stays: a client that read an
 * older timestamp.json (a cache, a mirror behind, a refresh under way) still finds every file
 * it asks for as long as that timestamp names one of them. Root versions are never deleted
 * (clients walk them one by one from the root they pinned), nor timestamp.json. Anything that
 * cannot be read or parsed stops the collection before it deletes a thing: an object is only
 * deleted when every kept manifest was read and does not name it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "verify/atomic.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/manifest.h"
#include "verify/writer/internal.h"

#define GC_MAX_META_LEN (5u << 20)   /* as the client's cap on snapshot and targets files */
#define GC_MAX_MANIFEST (256u << 20) /* as the client's cap on a manifest */

struct strset { /* sorted once filled, then searched */
	char **v;
	size_t n, cap;
};

struct gc {
	struct repo *r;
	struct strset meta;	 /* "3.snapshot.json", "2.alice.json": metadata files to keep */
	struct strset manifests; /* "hello/<hex>.1.0": manifest and pack stems to keep */
	uint8_t (*objs)[VERIFY_HASH_LEN];
	size_t nobjs, capobjs;
};

static int strset_add(struct strset *s, char *str)
{
	if (!str)
		return -ENOMEM;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		char **v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			free(str);
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = str;
	return 0;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strset_sort(struct strset *s)
{
	qsort(s->v, s->n, sizeof(*s->v), cmpstr);
}

static bool strset_has(const struct strset *s, const char *str)
{
	return s->n && bsearch(&str, s->v, s->n, sizeof(*s->v), cmpstr) != NULL;
}

static void strset_free(struct strset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

/* metadata/<file> as JSON; its "signed" object in *ret_signed (borrowed from *ret_doc). A file
 * that is gone is -ENOENT without a detail; any other failure names the file. */
static int load_json(struct gc *g, const char *file, json_t **ret_doc, json_t **ret_signed)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	json_error_t jerr;
	json_t *doc;
	char *path;
	int ret;

	path = meta_asprintf("metadata/%s", file);
	if (!path)
		return -ENOMEM;
	ret = g->r->src.get(g->r->src.ctx, path, GC_MAX_META_LEN, &buf, &len);
	if (ret < 0) {
		if (ret != -ENOENT)
			stork_errorf("%s/%s: %s", g->r->dir, path, storkfs_strerror(ret));
		goto out;
	}
	doc = json_loadb((const char *)buf, len, 0, &jerr);
	if (!doc || !json_is_object(json_object_get(doc, "signed"))) {
		stork_errorf("%s/%s: not a metadata file (%s)", g->r->dir, path,
			     doc ? "no \"signed\" object" : jerr.text);
		json_decref(doc);
		ret = STORK_EFORMAT;
		goto out;
	}
	*ret_doc = doc;
	*ret_signed = json_object_get(doc, "signed");
out:
	free(buf);
	free(path);
	return ret;
}

/* Room for one more object hash, filled from hash unless it is NULL. */
static int add_object(struct gc *g, const uint8_t *hash)
{
	if (g->nobjs == g->capobjs) {
		size_t cap = g->capobjs ? 2 * g->capobjs : 1024;
		void *v = realloc(g->objs, cap * sizeof(*g->objs));

		if (!v)
			return -ENOMEM;
		g->objs = v;
		g->capobjs = cap;
	}
	if (hash)
		memcpy(g->objs[g->nobjs], hash, VERIFY_HASH_LEN);
	g->nobjs++;
	return 0;
}

/* Keep the manifest a role signs as target (path "<name>/<version>.json", SHA-256 hex) and
 * the objects it names. A manifest already kept is not read again. */
static int keep_manifest(struct gc *g, const char *path, const char *hex)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	struct verify_manifest *m = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, n;
	char *stem, *file = NULL;
	int ret;

	if (!slash || !dot || dot < slash || strcmp(dot, ".json")) {
		stork_errorf("%s: a role signs target \"%s\", which is not NAME/VERSION.json",
			     g->r->dir, path);
		return STORK_EFORMAT;
	}
	stem = meta_asprintf("%.*s/%s.%.*s", (int)(slash - path), path, hex, (int)(dot - slash - 1),
			     slash + 1);
	if (!stem)
		return -ENOMEM;
	if (strset_has(&g->manifests, stem)) {
		free(stem);
		return 0;
	}
	file = meta_asprintf("targets/%s.json", stem);
	ret = strset_add(&g->manifests, stem);
	strset_sort(&g->manifests);
	if (ret < 0 || !file) {
		ret = -ENOMEM;
		goto out;
	}
	ret = g->r->src.get(g->r->src.ctx, file, GC_MAX_MANIFEST, &buf, &len);
	if (ret < 0) {
		stork_errorf("%s/%s: %s (a kept role signs it: nothing is deleted until it is "
			     "back or the role no longer signs it)",
			     g->r->dir, file, storkfs_strerror(ret));
		goto out;
	}
	ret = verify_manifest_parse(buf, len, file, &m);
	if (ret < 0)
		goto out;
	/* each file's object, or its chunks' */
	n = verify_manifest_objects(m, NULL);
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = add_object(g, NULL);
	if (ret == 0)
		verify_manifest_objects(m, g->objs + g->nobjs - n);
out:
	verify_manifest_free(m);
	free(buf);
	free(file);
	return ret;
}

/* Keep role file "<version>.<role>.json" and, for a targets role, every manifest it signs. */
static int keep_role(struct gc *g, const char *role, uint64_t version)
{
	json_t *doc = NULL, *s, *targets, *t;
	const char *path;
	char *file;
	int ret;

	file = meta_asprintf("%" PRIu64 ".%s", version, role);
	if (!file)
		return -ENOMEM;
	if (strset_has(&g->meta, file)) {
		free(file);
		return 0;
	}
	ret = strset_add(&g->meta, file);
	if (ret < 0)
		return ret;
	strset_sort(&g->meta);
	ret = load_json(g, file, &doc, &s);
	if (ret < 0) {
		if (ret == -ENOENT)
			stork_errorf("%s/metadata/%s: missing, but a kept snapshot names it",
				     g->r->dir, file);
		return ret;
	}
	targets = json_object_get(s, "targets");
	json_object_foreach(targets, path, t)
	{
		const char *hex =
		    json_string_value(json_object_get(json_object_get(t, "hashes"), "sha256"));

		if (!hex || strlen(hex) != 2 * VERIFY_HASH_LEN) {
			stork_errorf("%s/metadata/%s: target \"%s\" has no sha256", g->r->dir, file,
				     path);
			ret = STORK_EFORMAT;
			break;
		}
		ret = keep_manifest(g, path, hex);
		if (ret < 0)
			break;
	}
	json_decref(doc);
	return ret;
}

/* Everything snapshot version v names (nothing when that snapshot is already gone). */
static int keep_snapshot(struct gc *g, uint64_t v)
{
	json_t *doc = NULL, *s, *meta, *e;
	const char *role;
	char file[48];
	int ret;

	snprintf(file, sizeof(file), "%" PRIu64 ".snapshot.json", v);
	ret = load_json(g, file, &doc, &s);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	ret = strset_add(&g->meta, strdup(file));
	strset_sort(&g->meta);
	meta = json_object_get(s, "meta");
	json_object_foreach(meta, role, e)
	{
		json_t *jv = json_object_get(e, "version");

		if (ret < 0)
			break;
		if (!json_is_integer(jv) || json_integer_value(jv) < 1) {
			stork_errorf("%s/metadata/%s: \"%s\" has no version", g->r->dir, file,
				     role);
			ret = STORK_EFORMAT;
			break;
		}
		ret = keep_role(g, role, (uint64_t)json_integer_value(jv));
	}
	json_decref(doc);
	return ret;
}

/* "<digits>.<rest>" with rest not "root.json": a versioned file gc may judge. */
static bool versioned_non_root(const char *name)
{
	size_t d = strspn(name, "0123456789");

	return d > 0 && name[d] == '.' && strcmp(name + d + 1, "root.json") != 0 &&
	       strlen(name + d + 1) > 5 && !strcmp(name + strlen(name) - 5, ".json");
}

static int drop(int dfd, const char *dir, const char *name, bool dry_run, uint64_t *files,
		uint64_t *bytes)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (!dry_run && unlinkat(dfd, name, 0) < 0) {
		int e = -errno;

		stork_errorf("%s/%s: cannot delete: %s", dir, name, storkfs_strerror(e));
		return e;
	}
	(*files)++;
	*bytes += (uint64_t)st.st_size;
	return 0;
}

static int sweep_metadata(struct gc *g, bool dry_run, struct verify_repo_gc_stats *st)
{
	DIR *d;
	struct dirent *de;
	int fd, ret = 0;
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/metadata", g->r->dir);
	fd = dup(g->r->mdfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		stork_errorf("%s: %s", dir, storkfs_strerror(ret));
		return ret;
	}
	rewinddir(d);
	while (ret == 0 && (de = readdir(d)))
		if (versioned_non_root(de->d_name) && !strset_has(&g->meta, de->d_name))
			ret = drop(g->r->mdfd, dir, de->d_name, dry_run, &st->metadata_files,
				   &st->metadata_bytes);
	closedir(d);
	return ret;
}

/* targets/<name>/<64 hex>.<version>.json and .pack whose stem no kept role signs. */
static int sweep_package(struct gc *g, const char *name, bool dry_run,
			 struct verify_repo_gc_stats *st)
{
	char dir[4096], stem[1024];
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	snprintf(dir, sizeof(dir), "%s/targets/%s", g->r->dir, name);
	fd = openat(g->r->dirfd, dir + strlen(g->r->dir) + 1,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0; /* not a package directory */
	}
	while (ret == 0 && (de = readdir(d))) {
		const char *n = de->d_name, *ext = strrchr(n, '.');
		bool pack;

		if (strspn(n, "0123456789abcdef") != 2 * VERIFY_HASH_LEN ||
		    n[2 * VERIFY_HASH_LEN] != '.' || !ext)
			continue;
		pack = !strcmp(ext, ".pack");
		if (!pack && strcmp(ext, ".json"))
			continue;
		snprintf(stem, sizeof(stem), "%s/%.*s", name, (int)(ext - n), n);
		if (strset_has(&g->manifests, stem))
			continue;
		ret = pack ? drop(dirfd(d), dir, n, dry_run, &st->packs, &st->pack_bytes)
			   : drop(dirfd(d), dir, n, dry_run, &st->manifests, &st->manifest_bytes);
	}
	closedir(d);
	if (!dry_run)
		(void)unlinkat(g->r->dirfd, dir + strlen(g->r->dir) + 1, AT_REMOVEDIR);
	return ret;
}

static int sweep_targets(struct gc *g, bool dry_run, struct verify_repo_gc_stats *st)
{
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	fd = openat(g->r->dirfd, "targets", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0; /* nothing published yet */
	}
	while (ret == 0 && (de = readdir(d)))
		if (de->d_name[0] != '.')
			ret = sweep_package(g, de->d_name, dry_run, st);
	closedir(d);
	return ret;
}

static int cmphash(const void *a, const void *b)
{
	return memcmp(a, b, VERIFY_HASH_LEN);
}

int verify_repo_gc(const char *repodir, unsigned keep, bool dry_run,
		   const struct verify_repo_opts *o, struct verify_repo_gc_stats *ret_st,
		   uint8_t (**ret_objs)[VERIFY_HASH_LEN], size_t *ret_nobjs)
{
	struct repo r = {.dirfd = -1, .mdfd = -1};
	struct verify_repo_gc_stats st = {0};
	struct gc g = {.r = &r};
	uint64_t top;
	size_t i, n;
	int ret;

	if (keep < 1) {
		stork_errorf("gc: --keep-metadata must be at least 1 (the current version)");
		return -EINVAL;
	}
	ret = repo_open(&r, repodir, NULL, o);
	if (ret < 0)
		return ret;
	top = trusted_meta(r.c, META_SNAPSHOT)->version;
	for (uint64_t v = top; v >= 1 && top - v < keep && ret == 0; v--)
		ret = keep_snapshot(&g, v);
	if (ret < 0) {
		stork_error_prefix("%s: gc deleted nothing", repodir);
		goto out;
	}
	st.snapshots_kept = 0;
	for (i = 0; i < g.meta.n; i++)
		st.snapshots_kept += strstr(g.meta.v[i], ".snapshot.json") != NULL;
	st.manifests_kept = g.manifests.n;
	/* Metadata first, then the manifests it named, then (the caller) the objects: a crash
	 * part way leaves files nothing names, which the next gc deletes. */
	ret = sweep_metadata(&g, dry_run, &st);
	if (ret == 0)
		ret = sweep_targets(&g, dry_run, &st);
	if (ret < 0)
		goto out;
	qsort(g.objs, g.nobjs, sizeof(*g.objs), cmphash);
	for (i = n = 0; i < g.nobjs; i++)
		if (n == 0 || memcmp(g.objs[n - 1], g.objs[i], VERIFY_HASH_LEN))
			memmove(g.objs[n++], g.objs[i], VERIFY_HASH_LEN);
	*ret_st = st;
	*ret_objs = g.objs;
	*ret_nobjs = n;
	g.objs = NULL;
out:
	free(g.objs);
	strset_free(&g.meta);
	strset_free(&g.manifests);
	repo_close(&r);
	return ret;
}

int verify_repo_lock_tree(const char *repodir, bool exclusive, int *ret_fd)
{
	int fd = open(repodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;

	if (fd < 0) {
		e = -errno;
		stork_errorf("%s: %s", repodir, storkfs_strerror(e));
		return e;
	}
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno != EINTR) {
			e = -errno;
			stork_errorf("%s: cannot lock: %s", repodir, storkfs_strerror(e));
			close(fd);
			return e;
		}
	}
	*ret_fd = fd;
	return 0;
}
