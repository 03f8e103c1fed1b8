/* store/gc.c: what the trusted metadata still references (store/README.md, "Garbage
 * collection" and "Bounded metadata").
 *
 * After each refresh that verified, the node side tells the store the manifests of every
 * version the repository signs now (store_repo_current): the list is kept as
 * STOREDIR/repos/<repo> (a set of ids, pins.c) unless a walk of a newer verified state wrote
 * it (repos/.<repo>.state), manifests no repository lists any more are dropped from the index,
 * and so are the cached files of delegated roles that no longer sign anything. store_gc
 * removes every object that no listed manifest references (read from the index, else from its
 * object, else from the version's tree index), that nothing pins and that nobody used or
 * inserted since the collection started.
 *
 * Locking: one collection at a time (flock on STOREDIR/gc.lock). Mounts, extracts and
 * prefetches run on: an object is removed in a write transaction that first checks its
 * record is still the one judged (no pins, last use before the collection started), so an
 * object a reader opened or an insert stored meanwhile stays; a reader holding a descriptor of
 * a removed object keeps reading (the file is unlinked). Versions a refresh adds while the
 * collection runs are not in the lists it read, but their objects are inserted or used after
 * it started, so they stay.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/node.h"
#include "verify/manifest.h"

#define REPODIR	     "repos"
#define GCLOCK	     "gc.lock"
#define BATCH	     256
#define STATE_SUFFIX ".state"

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int by_id(const void *a, const void *b)
{
	return memcmp(a, b, VERIFY_HASH_LEN);
}

/* ------------------------------------------------------------------------------------------ */
/* Dropping manifests no repository lists, and roles that sign nothing. */

struct repos_ctx {
	struct store *s;
	bool all_listed; /* every repository with a record has a list */
	char missing[VERIFY_HASH_HEX + 64];
};

static int repos_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct repos_ctx *c = ctx;
	MDB_cursor *cur = NULL;
	char name[600];
	MDB_val k, v;
	int rc;

	c->all_listed = true;
	rc = mdb_cursor_open(txn, e->repos, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		snprintf(name, sizeof(name), REPODIR "/%.*s", (int)k.mv_size,
			 (const char *)k.mv_data);
		if (k.mv_size >= 500 || faccessat(c->s->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW)) {
			c->all_listed = false;
			snprintf(c->missing, sizeof(c->missing), "%.*s",
				 (int)(k.mv_size < 64 ? k.mv_size : 64), (const char *)k.mv_data);
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

struct drop_ctx {
	const struct node_pinset *keep;
	uint64_t dropped;
};

static int drop_manifests_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct drop_ctx *c = ctx;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	c->dropped = 0;
	rc = mdb_cursor_open(txn, e->manifests, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size == VERIFY_HASH_LEN && node_pins_has(c->keep, k.mv_data))
			continue;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			break;
		c->dropped++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Drop the manifests none of the lists names (only when every repository has a list: a
 * manifest is not told to which repository it belongs). */
static int drop_manifests(struct store *s, uint64_t *ret_dropped)
{
	struct repos_ctx rc = {.s = s};
	struct node_pinset keep = {0};
	struct drop_ctx dc = {0};
	int r;

	*ret_dropped = 0;
	r = node_txn(s->env, false, repos_fn, &rc);
	if (r < 0 || !rc.all_listed)
		return r;
	r = node_idset_load(s, REPODIR, &keep);
	if (r < 0)
		return r;
	dc.keep = &keep;
	r = node_txn(s->env, true, drop_manifests_fn, &dc);
	if (r == 0 && dc.dropped)
		r = node_sync(s->env);
	node_pins_fini(&keep);
	if (r == 0)
		*ret_dropped = dc.dropped;
	return r;
}

struct roles_ctx {
	struct store *s;
	const char *repo;
	const char *const *roles;
	size_t nroles;
	char **gone; /* names dropped, for the copy */
	size_t ngone;
};

/* Whether a cached metadata file of the repository is still needed: the top-level roles, the
 * chain of roots, and the delegated roles that signed a version the lists hold. */
static bool role_needed(const struct roles_ctx *c, const char *name, size_t len)
{
	static const char *const top[] = {"root.json", "timestamp.json", "snapshot.json",
					  "targets.json"};
	size_t i;

	for (i = 0; i < sizeof(top) / sizeof(top[0]); i++)
		if (strlen(top[i]) == len && !memcmp(top[i], name, len))
			return true;
	for (i = 0; i < len && name[i] >= '0' && name[i] <= '9'; i++)
		;
	if (i > 0 && len - i == sizeof(".root.json") - 1 &&
	    !memcmp(name + i, ".root.json", len - i))
		return true;
	if (len < 6 || memcmp(name + len - 5, ".json", 5) != 0)
		return true; /* not a role's file: not ours to judge */
	for (i = 0; i < c->nroles; i++)
		if (strlen(c->roles[i]) == len - 5 && !memcmp(c->roles[i], name, len - 5))
			return true;
	return false;
}

static int drop_roles_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct roles_ctx *c = ctx;
	size_t rlen = strlen(c->repo);
	MDB_val k = {rlen + 1, (void *)c->repo}, v;
	MDB_cursor *cur = NULL;
	const char *name;
	size_t nlen;
	char **grown;
	int rc;

	for (size_t i = 0; i < c->ngone; i++)
		free(c->gone[i]);
	c->ngone = 0;
	rc = mdb_cursor_open(txn, e->meta, &cur);
	if (rc != 0)
		return rc;
	/* Keys are "<repo>\0<name>": the first at or after "<repo>\0". */
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= rlen + 1 || memcmp(k.mv_data, c->repo, rlen) != 0 ||
		    ((const char *)k.mv_data)[rlen] != '\0')
			break;
		name = (const char *)k.mv_data + rlen + 1;
		nlen = k.mv_size - rlen - 1;
		if (role_needed(c, name, nlen))
			continue;
		grown = realloc(c->gone, (c->ngone + 1) * sizeof(*grown));
		if (!grown) {
			rc = -ENOMEM;
			break;
		}
		c->gone = grown;
		c->gone[c->ngone] = strndup(name, nlen);
		if (!c->gone[c->ngone]) {
			rc = -ENOMEM;
			break;
		}
		c->ngone++;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Drop the cached files of the repository's delegated roles that signed nothing listed, from
 * the index and from its copy in trusted/ (under the copy's lock). */
static int drop_roles(struct store *s, const char *repo, const char *const *roles, size_t nroles,
		      uint64_t *ret_dropped)
{
	struct roles_ctx c = {s, repo, roles, nroles, NULL, 0};
	char path[1024];
	int fd = -1, r;

	r = node_trusted_open(s, repo, true, &fd);
	if (r == 0)
		r = node_txn(s->env, true, drop_roles_fn, &c);
	if (r == 0 && c.ngone)
		r = node_sync(s->env);
	for (size_t i = 0; r == 0 && i < c.ngone; i++) {
		snprintf(path, sizeof(path), "%s", c.gone[i]);
		if (unlinkat(fd, path, 0) < 0 && errno != ENOENT) {
			r = -errno;
			stork_errorf("%s/" NODE_TRUSTDIR "/%s/%s: cannot remove: %s", s->dir, repo,
				     path, strerror(-r));
		}
	}
	if (r == 0 && c.ngone)
		r = node_sync_dir(fd);
	if (fd >= 0)
		close(fd);
	if (r == 0)
		*ret_dropped = c.ngone;
	for (size_t i = 0; i < c.ngone; i++)
		free(c.gone[i]);
	free(c.gone);
	return r;
}

/* A listed manifest's bytes: the index's copy, else the object the node keeps of it (for its
 * peers), checked against its name and indexed again. A manifest drops out of the index when
 * no list names it, and a list can name it again later (a walk of a newer state): its object
 * must not then be judged unreferenced. @return 0; -ENOENT (the store holds neither). */
static int manifest_bytes(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint8_t **ret_buf,
			  size_t *ret_len)
{
	uint8_t *buf = NULL, got[VERIFY_HASH_LEN];
	size_t len = 0;
	int fd = -1, r;

	r = store_manifest_get(s, id, ret_buf, ret_len);
	if (r != -ENOENT)
		return r;
	stork_error_clear();
	if (store_object_open(s, id, &fd) < 0) {
		stork_error_clear();
		return -ENOENT;
	}
	r = node_read_fd(fd, VERIFY_MAX_MANIFEST_LEN, &buf, &len);
	close(fd);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || verify_sha256(buf, len, got) < 0 || memcmp(got, id, VERIFY_HASH_LEN) != 0) {
		free(buf);
		return -ENOENT;
	}
	if (store_manifest_put(s, id, buf, len) < 0)
		stork_error_clear(); /* read from the object again next time */
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

struct unindexed_ctx {
	const uint8_t (*ids)[VERIFY_HASH_LEN];
	size_t n;
	bool *missing;
};

static int unindexed_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct unindexed_ctx *c = ctx;
	MDB_val k, v;
	int rc;

	for (size_t i = 0; i < c->n; i++) {
		k.mv_size = VERIFY_HASH_LEN;
		k.mv_data = (void *)c->ids[i];
		rc = mdb_get(txn, e->manifests, &k, &v);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		c->missing[i] = rc == MDB_NOTFOUND;
	}
	return 0;
}

/* Index again every listed manifest the store holds as an object but not in its index (an
 * older state's walk, or a drop that read the lists before this one was written, took it
 * out). Best effort: gc reads the object anyway (manifest_bytes). */
static void index_listed(struct store *s, const uint8_t (*ids)[VERIFY_HASH_LEN], size_t n)
{
	struct unindexed_ctx c = {ids, n, calloc(n ? n : 1, sizeof(bool))};
	uint8_t *buf;
	size_t len;

	if (c.missing && node_txn(s->env, false, unindexed_fn, &c) == 0)
		for (size_t i = 0; i < n; i++)
			if (c.missing[i] && manifest_bytes(s, ids[i], &buf, &len) == 0)
				free(buf);
	stork_error_clear();
	free(c.missing);
}

/* ------------------------------------------------------------------------------------------ */
/* The verified state a list was written from: repos/.<repo>.state, one line "root R snapshot
 * S\n" (the versions of the trusted root and snapshot of the walk that wrote the list). */

static bool state_older(const struct store_state *a, const struct store_state *b)
{
	return a->root < b->root || (a->root == b->root && a->snapshot < b->snapshot);
}

/* What wrote the list: 0; -ENOENT when none is recorded or the record is unreadable (then
 * the next walk writes both again). */
static int state_read(int dirfd, const char *repo, struct store_state *ret)
{
	char name[300], buf[128];
	unsigned long long root, snap;
	ssize_t len;
	int fd;

	snprintf(name, sizeof(name), ".%s" STATE_SUFFIX, repo);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -ENOENT;
	buf[len] = '\0';
	if (sscanf(buf, "root %llu snapshot %llu\n", &root, &snap) != 2)
		return -ENOENT;
	ret->root = root;
	ret->snapshot = snap;
	return 0;
}

static int state_write(struct store *s, int dirfd, const char *repo, const struct store_state *st)
{
	char name[300], tmp[320], buf[128];
	int fd = -1, r = 0, len;
	ssize_t n;

	snprintf(name, sizeof(name), ".%s" STATE_SUFFIX, repo);
	snprintf(tmp, sizeof(tmp), "%s.%ld", name, (long)getpid());
	len = snprintf(buf, sizeof(buf), "root %llu snapshot %llu\n", (unsigned long long)st->root,
		       (unsigned long long)st->snapshot);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		r = -errno;
	if (r == 0 && (n = write(fd, buf, (size_t)len)) != len)
		r = n < 0 ? -errno : -EIO;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r == 0)
		r = node_sync_dir(dirfd);
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		stork_errorf("%s/" REPODIR "/%s: cannot write: %s", s->dir, name, strerror(-r));
	}
	return r;
}

/* Write repo's list unless the one in place was written from a newer verified state, under
 * the repository's lock (repos/.<repo>.lock): @return 0 (written); 1 (a newer state's list
 * stays, *ret_kept says which); -errno. */
static int list_write(struct store *s, const char *repo, const struct store_state *st,
		      const uint8_t (*ids)[VERIFY_HASH_LEN], size_t n, struct store_state *ret_kept)
{
	static const uint8_t none[1][VERIFY_HASH_LEN];
	char name[300];
	int dirfd = -1, lockfd = -1, r;

	if (s->readonly) {
		stork_errorf("%s: read-only store: cannot store anything in it", s->dir);
		return -EROFS;
	}
	r = node_mkdir_mode(s->dirfd, REPODIR, 0755);
	if (r < 0) {
		stork_errorf("%s/" REPODIR ": cannot create: %s", s->dir, strerror(-r));
		return r;
	}
	dirfd = openat(s->dirfd, REPODIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		stork_errorf("%s/" REPODIR ": %s", s->dir, strerror(-r));
		return r;
	}
	snprintf(name, sizeof(name), ".%s.lock", repo);
	lockfd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
		r = -errno;
		stork_errorf("%s/" REPODIR "/%s: cannot lock: %s", s->dir, name, strerror(-r));
		goto out;
	}
	if (state_read(dirfd, repo, ret_kept) == 0 && state_older(st, ret_kept)) {
		r = 1;
		goto out;
	}
	/* The state first: a crash between the two leaves a list that a walk of that state (or
	 * a newer one) writes again, never an older state's list that looks new. */
	r = state_write(s, dirfd, repo, st);
	if (r == 0)
		r = node_idset_write(s, REPODIR, repo, n ? ids : none, n);
out:
	if (lockfd >= 0)
		close(lockfd); /* the flock goes with it */
	close(dirfd);
	return r;
}

int store_repo_current(struct store *s, const char *repo, const struct store_state *state,
		       const uint8_t (*ids)[VERIFY_HASH_LEN], size_t n, const char *const *roles,
		       size_t nroles, struct store_prune_report *ret)
{
	struct store_prune_report rep = {0};
	struct store_state kept = {0};
	int r;

	if (!repo || !*repo || strlen(repo) > 255 || strchr(repo, '/')) {
		stork_errorf("%s: a repository name of 1 to 255 bytes without '/' is needed",
			     s->dir);
		return -EINVAL;
	}
	r = list_write(s, repo, state, ids, n, &kept);
	if (r == 1) {
		/* An older state's walk, ended after a newer one's: it neither replaces the list
		 * nor drops what the newer state keeps (its manifests, its roles' files). */
		if (ret)
			*ret = rep;
		stork_errorf("%s/" REPODIR "/%s: kept, written from a newer verified state (root "
			     "%llu, snapshot %llu) than this walk's (root %llu, snapshot %llu)",
			     s->dir, repo, (unsigned long long)kept.root,
			     (unsigned long long)kept.snapshot, (unsigned long long)state->root,
			     (unsigned long long)state->snapshot);
		return 1;
	}
	if (r == 0)
		r = drop_manifests(s, &rep.manifests);
	if (r == 0)
		index_listed(s, ids, n);
	if (r == 0)
		r = drop_roles(s, repo, roles, nroles, &rep.roles);
	if (r < 0) {
		stork_error_prefix("%s: repository %.16s: keeping what its metadata references",
				   s->dir, repo);
		return r;
	}
	if (ret)
		*ret = rep;
	return 0;
}

int store_repo_current_digest(struct store *s, const char *repo,
			      uint8_t ret_digest[VERIFY_HASH_LEN])
{
	static const uint8_t none[1];
	struct node_pinset p = {0};
	int r;

	if (!repo || !*repo || strlen(repo) > 255 || strchr(repo, '/'))
		return -EINVAL;
	r = node_idset_get(s, REPODIR, repo, &p);
	if (r == 0)
		r = verify_sha256(p.n ? (const void *)p.ids : none, p.n * VERIFY_HASH_LEN,
				  ret_digest);
	node_pins_fini(&p);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Collecting objects. */

struct refs {
	uint8_t (*ids)[VERIFY_HASH_LEN];
	size_t n, cap;
};

static int refs_add(struct refs *r, const uint8_t id[VERIFY_HASH_LEN])
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 1024;
		void *grown = realloc(r->ids, cap * VERIFY_HASH_LEN);

		if (!grown)
			return -ENOMEM;
		r->ids = grown;
		r->cap = cap;
	}
	memcpy(r->ids[r->n++], id, VERIFY_HASH_LEN);
	return 0;
}

/* A file's object; and each of its chunks when it is stored in chunks (store/README.md
 * "Chunks"), whose whole object a mount may have assembled too (fs/README.md "Memory"). */
static int entry_refs(struct refs *refs, const struct verify_entry *e)
{
	int r = e->type == VERIFY_FILE ? refs_add(refs, e->hash) : 0;

	for (size_t c = 0; e->type == VERIFY_FILE && r == 0 && c < e->nchunks; c++)
		r = refs_add(refs, e->chunks[c].hash);
	return r;
}

/* The objects of a listed manifest the store holds in neither the index nor an object, from
 * the version's tree index (built from the verified manifest: a mount serves the version from
 * it). @return 0; -ENOENT (no good tree index either); -ENOMEM. */
static int tree_refs(struct store *s, const uint8_t id[VERIFY_HASH_LEN], struct refs *refs)
{
	struct store_tree *t = NULL;
	struct verify_entry e;
	int r;

	r = store_tree_open(s, id, &t);
	if (r < 0) {
		stork_error_clear();
		return r == -ENOMEM ? r : -ENOENT;
	}
	for (size_t i = 0; i < store_tree_n(t) && r == 0; i++) {
		store_tree_entry(t, i, &e);
		r = entry_refs(refs, &e);
	}
	store_tree_free(t);
	return r;
}

/* Every object the listed manifests reference, and the manifests' own objects. */
static int referenced(struct store *s, const struct node_pinset *lists, struct refs *refs,
		      uint64_t *ret_unknown)
{
	struct verify_manifest *m = NULL;
	uint8_t *buf = NULL;
	size_t len;
	int r = 0;

	*ret_unknown = 0;
	for (size_t i = 0; i < lists->n && r == 0; i++) {
		r = refs_add(refs, lists->ids[i]);
		if (r < 0)
			break;
		r = manifest_bytes(s, lists->ids[i], &buf, &len);
		if (r < 0 && r != -ENOENT)
			break;
		if (r == 0) {
			r = verify_manifest_parse(buf, len, "manifest", &m);
			free(buf);
			buf = NULL;
			if (r == -ENOMEM)
				break;
			if (r < 0)
				stork_error_clear(); /* damaged: fetched again when needed */
		}
		if (r < 0) {
			r = tree_refs(s, lists->ids[i], refs);
			if (r == -ENOENT) {
				(*ret_unknown)++; /* never read here: none of its objects either */
				r = 0;
			}
			continue;
		}
		for (size_t j = 0; j < m->n && r == 0; j++)
			r = entry_refs(refs, &m->entries[j]);
		verify_manifest_free(m);
		m = NULL;
	}
	if (r == 0 && refs->n > 1)
		qsort(refs->ids, refs->n, VERIFY_HASH_LEN, by_id);
	return r;
}

struct gc_scan {
	const struct refs *refs;
	const struct node_pinset *pins;
	int64_t start;
	uint8_t (*cands)[VERIFY_HASH_LEN];
	size_t ncands, cap;
	uint64_t objects, pinned;
};

static bool is_ref(const struct refs *r, const uint8_t *id)
{
	return r->n && bsearch(id, r->ids, r->n, VERIFY_HASH_LEN, by_id);
}

static int gc_scan_obj(void *ctx, const uint8_t *id, const struct node_objrec *rec)
{
	struct gc_scan *c = ctx;

	c->objects++;
	if (is_ref(c->refs, id))
		return 0;
	if (rec->pins > 0 || node_pins_has(c->pins, id)) {
		c->pinned++;
		return 0;
	}
	if (node_objrec_ms(rec) >= c->start)
		return 0; /* used or inserted since the collection started */
	if (c->ncands == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		void *grown = realloc(c->cands, cap * VERIFY_HASH_LEN);

		if (!grown)
			return -ENOMEM;
		c->cands = grown;
		c->cap = cap;
	}
	memcpy(c->cands[c->ncands++], id, VERIFY_HASH_LEN);
	return 0;
}

static int gc_scan_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct gc_scan *c = ctx;

	c->ncands = 0;
	c->objects = c->pinned = 0;
	return node_objects_each(e, txn, gc_scan_obj, c);
}

struct gc_remove {
	struct store *s;
	const uint8_t (*ids)[VERIFY_HASH_LEN];
	size_t n;
	int64_t start;
	bool *gone; /* per id: its record was deleted */
	uint64_t removed, bytes;
};

/* The records only (a crash or a failed commit leaves every record with its file); the files go
 * after the commit (node_unlink_unindexed), as eviction's do. */
static int gc_remove_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct gc_remove *c = ctx;
	struct node_objrec rec;
	int rc;

	c->removed = c->bytes = 0;
	memset(c->gone, 0, c->n * sizeof(*c->gone));
	for (size_t i = 0; i < c->n; i++) {
		MDB_val k = {VERIFY_HASH_LEN, (void *)c->ids[i]};

		rc = node_objrec_get(e, txn, c->ids[i], &rec);
		if (rc == MDB_NOTFOUND || rc == STORK_EFORMAT) {
			stork_error_clear();
			continue;
		}
		if (rc != 0)
			return rc;
		if (rec.pins > 0 || node_objrec_ms(&rec) >= c->start)
			continue;
		rc = mdb_del(txn, e->objects, &k, NULL);
		if (rc != 0)
			return rc;
		c->gone[i] = true;
		c->removed++;
		c->bytes += rec.size;
	}
	return 0;
}

int store_gc(struct store *s, struct store_gc_report *ret)
{
	struct store_gc_report rep = {0};
	struct repos_ctx rc = {.s = s};
	struct node_pinset lists = {0}, pins = {0};
	struct refs refs = {0};
	struct gc_scan sc = {0};
	bool *gone = NULL;
	int lockfd = -1, r;

	if (s->readonly) {
		stork_errorf("%s: read-only store: it cannot be collected", s->dir);
		return -EROFS;
	}
	lockfd = openat(s->dirfd, GCLOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0) {
		r = -errno;
		stork_errorf("%s/" GCLOCK ": %s", s->dir, strerror(-r));
		goto out;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		stork_errorf("%s: another stork gc is collecting this store", s->dir);
		goto out;
	}
	sc.start = now_ms();
	r = node_txn(s->env, false, repos_fn, &rc);
	if (r < 0)
		goto out;
	if (!rc.all_listed) {
		stork_errorf("%s: repository %.16s has no list of the versions it signs yet (its "
			     "last refresh was made by an older storkfs): refresh it once (a "
			     "mount, stork extract or stork prefetch), then collect",
			     s->dir, rc.missing);
		r = -EAGAIN;
		goto out;
	}
	r = node_idset_load(s, REPODIR, &lists);
	if (r == 0)
		r = drop_manifests(s, &rep.manifests);
	if (r == 0)
		r = referenced(s, &lists, &refs, &rep.unknown_manifests);
	if (r == 0)
		r = node_pins_load(s, &pins);
	if (r < 0)
		goto out;
	sc.refs = &refs;
	sc.pins = &pins;
	r = node_txn(s->env, false, gc_scan_fn, &sc);
	if (r < 0)
		goto out;
	rep.objects = sc.objects;
	rep.pinned = sc.pinned;
	gone = calloc(BATCH, sizeof(*gone));
	if (!gone) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < sc.ncands; i += BATCH) {
		struct gc_remove gr = {s,
				       (const uint8_t(*)[VERIFY_HASH_LEN])sc.cands + i,
				       sc.ncands - i < BATCH ? sc.ncands - i : BATCH,
				       sc.start,
				       gone,
				       0,
				       0};

		r = node_txn(s->env, true, gc_remove_fn, &gr);
		if (r == 0 && gr.removed)
			r = node_unlink_unindexed(s, gr.ids[0], sizeof(gr.ids[0]), gone, gr.n);
		if (r < 0)
			goto out;
		rep.removed += gr.removed;
		rep.bytes += gr.bytes;
	}
	if (ret)
		*ret = rep;
out:
	if (lockfd >= 0)
		close(lockfd); /* the flock goes with it */
	free(gone);
	free(sc.cands);
	free(refs.ids);
	node_pins_fini(&lists);
	node_pins_fini(&pins);
	return r;
}
