/* fs/repo.c: a repository as the node sees it. Metadata is verified by verify/'s client and
 * kept in the node store (so a node restarts offline), objects come from the store or, once,
 * from the mirrors through fetch/. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"

struct fs_repo {
	struct store *store; /* borrowed */
	struct fetch *fetch;
	struct verify_source src; /* over fetch's mirrors */
	struct verify_client *client;
	struct verify_cache cache;
	char id[VERIFY_HASH_HEX]; /* hex SHA-256 of the pinned root */
	char *first_mirror;	  /* for the store's refresh note */
	struct fs_repo_opts opts;
	uint8_t *root;
	size_t rootlen;
	pthread_mutex_t lock; /* protects client and policy: refresh replaces what readers use */
	struct verify_policy *policy; /* NULL: the repository's delegations decide */
};

static int cache_load(void *ctx, const char *name, uint8_t **ret_buf, size_t *ret_len)
{
	struct fs_repo *r = ctx;

	return store_meta_get(r->store, r->id, name, ret_buf, ret_len);
}

static int cache_save(void *ctx, const char *name, const uint8_t *buf, size_t len)
{
	struct fs_repo *r = ctx;

	return store_meta_put(r->store, r->id, name, buf, len);
}

static time_t now_of(const struct fs_repo *r)
{
	return r->opts.now ? r->opts.now : time(NULL);
}

/* A fresh client from the pinned root, with the store as its cache; `now` is the time its
 * expiry checks use. */
static int client_make(struct fs_repo *r, time_t now, struct verify_client **ret_c)
{
	struct verify_client *c = NULL;
	int ret;

	ret = verify_client_new(r->root, r->rootlen, now, &c);
	if (ret < 0)
		return ret;
	ret = verify_client_set_cache(c, &r->cache);
	if (ret < 0) {
		verify_client_free(c);
		return ret;
	}
	*ret_c = c;
	return 0;
}

/* The soft limit of open files up to the hard one (Debian's soft default is 1024); failing
 * costs nothing but that headroom. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void log_line(struct fs_repo *r, const char *line)
{
	if (r->opts.fetch.log)
		r->opts.fetch.log(r->opts.fetch.log_ctx, line);
	else
		fprintf(stderr, "storkfs: %s\n", line);
}

/* The index had lost the trusted metadata (store_meta_recover): loudly, with the floor the
 * client now holds. */
static void say_trust(struct fs_repo *r, enum store_trust trust, size_t nrestored)
{
	static const char *const roles[] = {"root", "timestamp", "snapshot", "targets"};
	const char *dir = store_dir(r->store);
	char line[2048], floor[256] = "";
	size_t len = 0;

	if (trust == STORE_TRUST_LOST) {
		snprintf(
		    line, sizeof(line),
		    "WARNING: %s/index holds none of the trusted metadata of repository %.16s, "
		    "and %s/trusted/%s holds no copy of it: the index was lost, and the "
		    "rollback floor with it; trusted metadata restarts from the pinned root, so "
		    "versions older than those trusted before are not refused this time",
		    dir, r->id, dir, r->id);
		log_line(r, line);
		return;
	}
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]) && len < sizeof(floor); i++) {
		uint64_t version;
		time_t expires;

		if (verify_client_role_info(r->client, roles[i], &version, &expires) == 0)
			len += (size_t)snprintf(floor + len, sizeof(floor) - len, "%s%s %" PRIu64,
						len ? ", " : "", roles[i], version);
	}
	snprintf(line, sizeof(line),
		 "WARNING: %s/index had lost the trusted metadata of repository %.16s: the "
		 "rollback floor is restored from its copy in %s/trusted/%s (%zu files), verified "
		 "again from the pinned root: %s",
		 dir, r->id, dir, r->id, nrestored,
		 floor[0] ? floor
			  : "none of it verified, so trusted metadata restarts from the "
			    "pinned root");
	log_line(r, line);
}

int fs_repo_open(struct store *s, const uint8_t *root, size_t rootlen, const char *const *mirrors,
		 size_t nmirrors, const struct fs_repo_opts *o, struct fs_repo **ret_r)
{
	enum store_trust trust = STORE_TRUST_NONE;
	uint8_t digest[VERIFY_HASH_LEN];
	size_t nrestored = 0;
	struct fs_repo *r;
	int ret;

	raise_fd_limit();
	if (nmirrors == 0) {
		stork_errorf("no mirror given: name at least one URL or directory of the "
			     "repository");
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->store = s;
	if (o)
		r->opts = *o;
	r->cache = (struct verify_cache){.load = cache_load, .save = cache_save, .ctx = r};
	r->root = malloc(rootlen ? rootlen : 1);
	r->first_mirror = fetch_url_shown_dup(mirrors[0]); /* kept, and shown */
	if (!r->root || !r->first_mirror) {
		ret = -ENOMEM;
		goto fail;
	}
	memcpy(r->root, root, rootlen);
	r->rootlen = rootlen;
	ret = verify_sha256(root, rootlen, digest);
	if (ret < 0)
		goto fail;
	verify_hex(digest, VERIFY_HASH_LEN, r->id);
	ret = fetch_new(&r->opts.fetch, &r->fetch);
	if (ret < 0)
		goto fail;
	for (size_t i = 0; i < nmirrors; i++) {
		ret = fetch_add_mirror(r->fetch, mirrors[i]);
		if (ret < 0)
			goto fail;
	}
	fetch_as_source(r->fetch, &r->src);
	ret = store_meta_recover(s, r->id, &trust, &nrestored);
	if (ret < 0)
		goto fail;
	ret = client_make(r, now_of(r), &r->client);
	if (ret < 0)
		goto fail;
	if (trust == STORE_TRUST_RESTORED || trust == STORE_TRUST_LOST)
		say_trust(r, trust, nrestored);
	*ret_r = r;
	return 0;
fail:
	fs_repo_close(r);
	return ret;
}

const char *fs_repo_id(const struct fs_repo *r)
{
	return r->id;
}

void fs_repo_close(struct fs_repo *r)
{
	if (!r)
		return;
	verify_client_free(r->client);
	verify_policy_free(r->policy);
	fetch_free(r->fetch);
	pthread_mutex_destroy(&r->lock);
	free(r->first_mirror);
	free(r->root);
	free(r);
}

void fs_repo_set_policy(struct fs_repo *r, struct verify_policy *p)
{
	struct verify_policy *old;

	pthread_mutex_lock(&r->lock);
	old = r->policy;
	r->policy = p;
	pthread_mutex_unlock(&r->lock);
	verify_policy_free(old);
}

/* The earliest expiry of c's trusted top-level roles. @return 0; -ENOENT (no state). */
static int client_expires(const struct verify_client *c, time_t *ret_expires)
{
	static const char *const roles[] = {"root", "timestamp", "snapshot", "targets"};
	time_t first = 0;

	if (!verify_client_usable(c))
		return -ENOENT;
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		uint64_t version;
		time_t expires;

		if (verify_client_role_info(c, roles[i], &version, &expires) < 0)
			continue;
		if (!first || expires < first)
			first = expires;
	}
	if (!first)
		return -ENOENT;
	*ret_expires = first;
	return 0;
}

int fs_repo_expires(struct fs_repo *r, time_t *ret_expires)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = client_expires(r->client, ret_expires);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int fs_repo_role_info(struct fs_repo *r, const char *role, uint64_t *ret_version,
		      time_t *ret_expires)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = verify_client_usable(r->client)
		  ? verify_client_role_info(r->client, role, ret_version, ret_expires)
		  : -ENOENT;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

struct store *fs_repo_store(struct fs_repo *r)
{
	return r->store;
}

struct fetch *fs_repo_fetcher(struct fs_repo *r)
{
	return r->fetch;
}

static bool is_transport_error(int err)
{
	return err == -EIO || err == -ETIMEDOUT || err == -ECONNREFUSED || err == -ENOENT ||
	       err == -EHOSTUNREACH || err == -ENETUNREACH || err == -ECONNRESET;
}

/* After a failed refresh, the state c trusts has expired: a client over the same stored
 * state whose clock stops at the last second that state was valid, so that delegated roles
 * (checked when loaded) get the grace the top-level roles get. Keeps the refresh's detail.
 * @return whether *c was replaced (the old one freed). */
static bool hold_clock(struct fs_repo *r, struct verify_client **c)
{
	struct verify_client *held = NULL;
	char detail[1024];
	time_t expires;
	bool done = false;

	if (!r->opts.delegations_at_expiry || client_expires(*c, &expires) < 0 ||
	    now_of(r) < expires)
		return false;
	snprintf(detail, sizeof(detail), "%s", stork_error_detail());
	if (client_make(r, expires - 1, &held) == 0 && verify_client_usable(held)) {
		verify_client_free(*c);
		*c = held;
		done = true;
	} else {
		verify_client_free(held); /* not complete in the store: keep the one we have */
	}
	stork_errorf("%s", detail);
	return done;
}

static int list_with(struct fs_repo *r, const struct verify_policy *p, bool own,
		     int (*fn)(void *ctx, const struct verify_target *t), void *ctx);

/* The versions the metadata signs now, for the store (store_repo_current). */
struct current {
	uint8_t (*ids)[VERIFY_HASH_LEN];
	size_t n, cap;
	char **roles;
	size_t nroles;
};

static int current_fn(void *ctx, const struct verify_target *t)
{
	struct current *c = ctx;
	size_t i;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		void *grown = realloc(c->ids, cap * VERIFY_HASH_LEN);

		if (!grown)
			return -ENOMEM;
		c->ids = grown;
		c->cap = cap;
	}
	memcpy(c->ids[c->n++], t->hash, VERIFY_HASH_LEN);
	for (i = 0; t->role && i < c->nroles; i++)
		if (!strcmp(c->roles[i], t->role))
			break;
	if (t->role && i == c->nroles) {
		char **grown = realloc(c->roles, (c->nroles + 1) * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		c->roles = grown;
		c->roles[c->nroles] = strdup(t->role);
		if (!c->roles[c->nroles])
			return -ENOMEM;
		c->nroles++;
	}
	return 0;
}

/* After a refresh that verified: tell the store the manifests of every version the repository's
 * own delegations sign now (whatever a slice's policy shows), so that it drops what is gone and
 * stork gc knows what to keep; it keeps a newer state's list (store/README.md "Bounded metadata",
 * "Garbage collection"). Best effort: a failure is logged and costs only space. */
static void keep_current(struct fs_repo *r)
{
	struct current c = {0};
	struct store_state state = {0};
	struct store_prune_report rep = {0};
	char line[1400], text[1200];
	static const uint8_t empty[1];
	uint8_t key[VERIFY_HASH_LEN], list[VERIFY_HASH_LEN], *kept = NULL;
	int64_t until = 0;
	time_t now = 0, expire;
	size_t len;
	bool keyed;
	int ret;

	/* The store already holds what this same verified state signs (a remount, a refresh
	 * that brought nothing new): nothing to walk. The mark is written only after a walk
	 * without failures, holds until a delegated role of the state expires, and says what
	 * list that walk gave the store: another process of the store (a walk of another state)
	 * may have replaced the list since. */
	keyed = !store_readonly(r->store) && fs_repo_state_key(r, "kept", key, &now, NULL) == 0;
	if (keyed) {
		ret = store_catalog_open(r->store, key, &kept, &len, &until);
		if (ret == 0 && now < until && len == VERIFY_HASH_LEN &&
		    store_repo_current_digest(r->store, r->id, list) == 0 &&
		    memcmp(kept, list, VERIFY_HASH_LEN) == 0) {
			free(kept);
			return;
		}
		free(kept);
		if (ret == STORK_EBADHASH) {
			snprintf(line, sizeof(line), "%s: refused, listing the versions again",
				 stork_error_detail());
			log_line(r, line);
		}
	}
	pthread_mutex_lock(&r->lock);
	ret = verify_client_role_info(r->client, "root", &state.root, &expire);
	ret = ret ? ret : verify_client_role_info(r->client, "snapshot", &state.snapshot, &expire);
	pthread_mutex_unlock(&r->lock);
	if (ret == 0)
		ret = list_with(r, NULL, false, current_fn, &c);
	if (ret == 0 && !store_readonly(r->store))
		ret = store_repo_current(r->store, r->id, &state,
					 (const uint8_t(*)[VERIFY_HASH_LEN])c.ids, c.n,
					 (const char *const *)c.roles, c.nroles, &rep);
	if (ret == 1) { /* a walk of a newer state (another process of the store) wrote it */
		log_line(r, stork_error_detail());
		stork_error_clear();
	}
	if (ret == 0 && keyed && fs_repo_state_key(r, "kept", key, NULL, &expire) == 0 &&
	    verify_sha256(c.n ? (const void *)c.ids : empty, c.n * VERIFY_HASH_LEN, list) == 0)
		store_catalog_save(r->store, key, list, sizeof(list), (int64_t)expire);
	if (ret < 0) {
		snprintf(line, sizeof(line), "keeping the current versions' manifests: %s",
			 stork_error_text(NULL, ret, text, sizeof(text)));
		log_line(r, line);
	}
	for (size_t i = 0; i < c.nroles; i++)
		free(c.roles[i]);
	free(c.roles);
	free(c.ids);
}

int fs_repo_refresh(struct fs_repo *r)
{
	struct verify_client *c = NULL;
	bool offline;
	int ret;

	/* A new client per refresh: a refresh that fails must not disturb readers of the
	 * current state, and the store holds everything the old one trusted. */
	ret = client_make(r, now_of(r), &c);
	if (ret < 0)
		return ret;
	ret = verify_client_refresh(c, &r->src);
	offline = ret < 0 && is_transport_error(ret) && verify_client_usable(c);
	/* A verification failure keeps the client in use (nothing new is trusted), unless the
	 * state has expired and its clock must stop: then a client over the same stored state
	 * takes its place. Offline, the new client (same state) takes it anyway. */
	if (ret < 0 && !(verify_client_usable(c) && hold_clock(r, &c)) && !offline) {
		/* No state yet and not one signature of the pinned root's timestamp keys
		 * (verify/metacheck.c's words): most likely a root from another repository. */
		if (ret == STORK_EBADSIG && !verify_client_usable(c) &&
		    strstr(stork_error_detail(), ": 0 of ") &&
		    strstr(stork_error_detail(), "signatures from role timestamp ")) {
			char detail[1024];

			snprintf(detail, sizeof(detail), "%s", stork_error_detail());
			stork_errorf("the timestamp is not signed by this root's keys: is the root "
				     "file from this repository? (%s)",
				     detail);
		}
		verify_client_free(c);
		return ret;
	}
	pthread_mutex_lock(&r->lock);
	verify_client_free(r->client);
	r->client = c;
	pthread_mutex_unlock(&r->lock);
	if (ret < 0 && !offline)
		return ret;
	if (ret < 0) {
		stork_error_prefix("offline: using the metadata verified earlier, because the "
				   "refresh failed: ");
		return 1;
	}
	store_repo_note_refresh(r->store, r->id, r->first_mirror, (int64_t)time(NULL));
	keep_current(r);
	return 0;
}

/* Make the signed bytes of t's manifest an object of the node store too (id = its signed
 * SHA-256), so that a peer export serves them to other nodes at objects/ab/<hash>. Best
 * effort: a store that cannot take it costs other nodes a fetch from the mirrors, not this
 * reader its manifest. */
static void manifest_keep_object(struct fs_repo *r, const struct verify_target *t,
				 const uint8_t *buf, size_t len)
{
	struct store_insert *ins = NULL;
	int fd = -1;

	if (store_object_open(r->store, t->hash, &fd) == 0) {
		close(fd);
		return;
	}
	if (store_insert_new(r->store, t->hash, t->length, &ins) < 0)
		return;
	if (store_insert_write(ins, buf, len) < 0) {
		store_insert_abort(ins);
		return;
	}
	store_insert_commit(ins); /* one committed by another writer meanwhile is success */
}

/* The whole object id of len bytes (the kept copy of a manifest). @return 0; -ENOENT. */
static int object_read(struct fs_repo *r, const uint8_t id[VERIFY_HASH_LEN], uint64_t len,
		       uint8_t **ret_buf)
{
	uint8_t *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd = -1, ret = -ENOENT;

	if (len > VERIFY_MAX_MANIFEST_LEN || store_object_open(r->store, id, &fd) < 0)
		return -ENOENT;
	buf = malloc(len ? len : 1);
	if (!buf)
		goto out;
	while (got < len) {
		n = pread(fd, buf + got, len - got, (off_t)got);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	*ret_buf = buf;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

/* A stored manifest, checked again against its signed length and hash (the disk is not
 * trusted either): the index's copy, else the object kept for peers. Made an object too when
 * it is not one yet (stored by an older version, or the object was removed).
 * @return 0; -ENOENT when absent or damaged (then it is fetched again). */
static int manifest_from_store(struct fs_repo *r, const struct verify_target *t,
			       struct verify_manifest **ret_m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	bool indexed = true;
	int ret;

	ret = store_manifest_get(r->store, t->hash, &buf, &len);
	if (ret < 0) {
		indexed = false;
		ret = object_read(r, t->hash, t->length, &buf);
		len = (size_t)t->length;
	}
	if (ret == 0)
		ret = verify_check_manifest(t, buf, len, ret_m);
	if (ret == 0 && indexed)
		manifest_keep_object(r, t, buf, len);
	else if (ret == 0)
		store_manifest_put(r->store, t->hash, buf, len);
	free(buf);
	return ret < 0 ? -ENOENT : 0;
}

/* fetch's sink for a manifest asked of the peers: memory, up to the signed length. */
struct mem_sink {
	uint8_t *buf;
	size_t len, cap, most;
};

static int mem_write(void *ctx, const void *buf, size_t len)
{
	struct mem_sink *s = ctx;
	uint8_t *grown;
	size_t cap;

	if (len > s->most - s->len)
		return STORK_EBADLEN; /* the unpacker stops a source before this */
	if (len > s->cap - s->len) {
		cap = s->cap ? s->cap : 64 * 1024;
		while (cap - s->len < len)
			cap *= 2;
		if (cap > s->most)
			cap = s->most;
		grown = realloc(s->buf, cap ? cap : 1);
		if (!grown)
			return -ENOMEM;
		s->buf = grown;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	return 0;
}

static int mem_reset(void *ctx)
{
	struct mem_sink *s = ctx;

	s->len = 0;
	return 0;
}

static int mem_commit(void *ctx)
{
	(void)ctx;
	return 0; /* the unpacker checked the length and SHA-256 */
}

/* Fetch t's manifest: from the peers (their node stores hold it as an object under its
 * signed hash), else from the mirrors; then kept in the store (the index and an object).
 * @return as verify_fetch_manifest. */
static int manifest_fetch(struct fs_repo *r, const struct verify_target *t,
			  struct verify_manifest **ret_m)
{
	struct mem_sink ms = {.most = (size_t)t->length};
	struct fetch_sink sink = {mem_write, mem_reset, mem_commit, &ms, NULL};
	struct verify_manifest *m = NULL;
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	char what[512];
	int ret = -ENOENT;

	snprintf(what, sizeof(what), "%s %s: manifest", t->name, t->version);
	if (t->length > 0 && t->length <= VERIFY_MAX_MANIFEST_LEN)
		ret = fetch_from_peers(r->fetch, t->hash, t->length, what, &sink);
	if (ret == -ENOMEM || ret == -ECANCELED)
		goto out;
	if (ret == 0) {
		/* The signed bytes (length and SHA-256 checked): what a mirror would send. */
		ret = verify_check_manifest(t, ms.buf, ms.len, &m);
		if (ret < 0)
			goto out;
		raw = ms.buf;
		rawlen = ms.len;
		ms.buf = NULL;
	} else {
		/* No peer has it, or every one failed (each told in the log): the mirrors. */
		ret = verify_fetch_manifest_raw(&r->src, t, &m, &raw, &rawlen);
		if (ret < 0)
			goto out;
	}
	store_manifest_put(r->store, t->hash, raw, rawlen);
	manifest_keep_object(r, t, raw, rawlen);
	*ret_m = m;
	m = NULL;
out:
	verify_manifest_free(m);
	free(raw);
	free(ms.buf);
	return ret;
}

int fs_repo_manifest(struct fs_repo *r, const char *name, const char *version,
		     struct verify_manifest **ret_m)
{
	struct verify_target t = {0};
	char *path = NULL;
	int ret;

	ret = verify_check_package_name(name);
	if (ret == 0)
		ret = verify_check_version(version);
	if (ret < 0)
		return ret;
	path = verify_target_path(name, version);
	if (!path)
		return -ENOMEM;
	/* The lock covers the client only (finding the target may load delegated roles); the
	 * manifest itself transfers without it, so loads of different versions overlap. */
	pthread_mutex_lock(&r->lock);
	if (!verify_client_usable(r->client)) {
		pthread_mutex_unlock(&r->lock);
		stork_errorf("%s: no verified metadata yet: refresh from a mirror first",
			     r->first_mirror);
		ret = -ENOENT;
		goto out;
	}
	if (r->policy) {
		struct verify_decision d = {0};

		ret = verify_client_decide(r->client, &r->src, r->policy, name, version,
					   fs_version_cmp, &d);
		if (ret == 0 && !d.accepted) {
			stork_errorf("%s", d.why);
			ret = -ENOENT;
		} else if (ret == 0) {
			t = d.t;
			memset(&d.t, 0, sizeof(d.t));
		}
		verify_decision_fini(&d);
	} else {
		ret = verify_client_find_target(r->client, &r->src, path, &t);
	}
	pthread_mutex_unlock(&r->lock);
	if (ret == -ENOENT && r->policy)
		goto out; /* the detail says which rule */
	if (ret == -ENOENT)
		stork_errorf("%s %s: no such package version is signed in this repository", name,
			     version);
	if (ret == 0)
		ret = fs_repo_target_manifest(r, &t, ret_m);
out:
	verify_target_fini(&t);
	free(path);
	return ret;
}

int fs_repo_target_manifest(struct fs_repo *r, const struct verify_target *t,
			    struct verify_manifest **ret_m)
{
	if (manifest_from_store(r, t, ret_m) == 0)
		return 0;
	return manifest_fetch(r, t, ret_m);
}

static void list_problem(void *ctx, const char *file, int err, const char *detail)
{
	struct fs_repo *r = ctx;
	char line[1400];

	char text[1200];

	snprintf(line, sizeof(line), "%s: skipped: %s", file,
		 stork_error_text(detail ? detail : "", err, text, sizeof(text)));
	log_line(r, line);
}

/* The walk of fs_repo_list with policy p (NULL: the repository's delegations), or the
 * repository's own policy when own. */
static int list_with(struct fs_repo *r, const struct verify_policy *p, bool own,
		     int (*fn)(void *ctx, const struct verify_target *t), void *ctx)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	if (own)
		p = r->policy;
	if (!verify_client_usable(r->client)) {
		stork_errorf("%s: no verified metadata yet: refresh from a mirror first",
			     r->first_mirror);
		ret = -ENOENT;
	} else {
		ret = p ? verify_client_each_accepted(r->client, &r->src, p, fs_version_cmp, fn,
						      ctx, list_problem, r)
			: verify_client_each_target(r->client, &r->src, fn, ctx, list_problem, r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int fs_repo_state_key(struct fs_repo *r, const char *view, uint8_t ret_key[VERIFY_HASH_LEN],
		      time_t *ret_now, time_t *ret_expire)
{
	uint8_t buf[VERIFY_HASH_HEX + 128 + VERIFY_HASH_LEN];
	size_t vlen = strlen(view);
	int ret;

	if (vlen >= 128)
		return -EINVAL;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, r->id, VERIFY_HASH_HEX);
	memcpy(buf + VERIFY_HASH_HEX, view, vlen);
	pthread_mutex_lock(&r->lock);
	ret = verify_client_state_id(r->client, buf + VERIFY_HASH_HEX + 128, ret_now, ret_expire);
	pthread_mutex_unlock(&r->lock);
	if (ret == 0)
		ret = verify_sha256(buf, sizeof(buf), ret_key);
	return ret;
}

int fs_repo_policy_digest(struct fs_repo *r, uint8_t ret_digest[VERIFY_HASH_LEN])
{
	int ret = -ENOENT;

	pthread_mutex_lock(&r->lock);
	if (r->policy)
		ret = verify_policy_digest(r->policy, ret_digest);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int fs_repo_list(struct fs_repo *r, int (*fn)(void *ctx, const struct verify_target *t), void *ctx)
{
	return list_with(r, NULL, true, fn, ctx);
}

int fs_repo_list_policy(struct fs_repo *r, const struct verify_policy *p,
			int (*fn)(void *ctx, const struct verify_target *t), void *ctx)
{
	return list_with(r, p, false, fn, ctx);
}

int fs_repo_control(struct fs_repo *r, const struct verify_policy *p,
		    const uint8_t known[VERIFY_HASH_LEN], struct verify_control_list **ret_l,
		    struct verify_target *ret_t)
{
	const struct verify_policy_rule *rule = verify_policy_control(p);
	struct verify_target t = {0};
	int ret;

	if (!rule) {
		stork_errorf("the policy has no control line: it follows no group");
		return -ENODATA;
	}
	/* Found under the lock (it may load the role); the list transfers without it. */
	pthread_mutex_lock(&r->lock);
	if (!verify_client_usable(r->client)) {
		stork_errorf("%s: no verified metadata yet: refresh from a mirror first",
			     r->first_mirror);
		ret = -ENOENT;
	} else {
		ret = verify_client_control(r->client, &r->src, p, &t);
	}
	pthread_mutex_unlock(&r->lock);
	if (ret == 0 && known && memcmp(known, t.hash, VERIFY_HASH_LEN) == 0)
		ret = 1; /* the list the caller holds: nothing to fetch */
	else if (ret == 0)
		ret = verify_fetch_control(&r->src, &t, rule->pattern, ret_l);
	if (ret >= 0 && ret_t) {
		*ret_t = t;
		memset(&t, 0, sizeof(t));
	}
	verify_target_fini(&t);
	return ret;
}

/* The node store's insert as fetch's sink. */
struct insert_sink {
	struct store_insert *ins;
	const char *mirror; /* who delivered it */
	bool unsynced;	    /* store_insert_commit_unsynced */
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
	struct insert_sink *s = ctx;

	return store_insert_write(s->ins, buf, len);
}

static int sink_reset(void *ctx)
{
	struct insert_sink *s = ctx;

	return store_insert_reset(s->ins);
}

static void sink_source(void *ctx, const char *mirror)
{
	struct insert_sink *s = ctx;

	s->mirror = mirror;
}

static int sink_commit(void *ctx)
{
	struct insert_sink *s = ctx;
	int ret = s->unsynced ? store_insert_commit_unsynced(s->ins) : store_insert_commit(s->ins);

	s->ins = NULL; /* commit frees it either way */
	return ret;
}

/* Fetch e's object into the store (one try). @return as fetch_object. */
static int object_fetch(struct fs_repo *r, const struct verify_entry *e, const char *what,
			struct insert_sink *is)
{
	struct fetch_sink sink = {sink_write, sink_reset, sink_commit, is, sink_source};
	int ret;

	ret = store_insert_new(r->store, e->hash, e->size, &is->ins);
	if (ret < 0)
		return ret;
	ret = fetch_object(r->fetch, e->hash, e->size, e->zsize, what, &sink);
	store_insert_abort(is->ins);
	is->ins = NULL;
	return ret;
}

int fs_repo_object(struct fs_repo *r, const struct verify_entry *e, const char *what, int *ret_fd,
		   bool *ret_fetched)
{
	struct insert_sink is = {NULL, NULL, r->opts.unsynced};
	bool fetched = false;
	int fd = -1, ret;

	if (e->type != VERIFY_FILE)
		return -EINVAL;
	ret = store_object_open(r->store, e->hash, &fd);
	if (ret == -ENOENT) {
		ret = object_fetch(r, e, what, &is);
		/* A full file system: evict (with a quota) and try once more; else the detail
		 * says the store, its size, its quota and what is pinned (store/README.md "A
		 * full file system"). */
		if (ret == -ENOSPC || ret == -EDQUOT) {
			ret = store_make_room(r->store, e->size, what);
			if (ret == 0)
				ret = object_fetch(r, e, what, &is);
			if (ret == -ENOSPC || ret == -EDQUOT)
				store_say_full(r->store, e->size, what);
		}
		if (ret < 0)
			goto out;
		fetched = ret == 0;
		if (fetched && r->opts.fetched)
			r->opts.fetched(r->opts.fetched_ctx, e->hash, e->zsize,
					is.mirror ? is.mirror : "");
		ret = store_object_open(r->store, e->hash, &fd);
	}
	if (ret < 0)
		goto out;
	if (ret_fd) {
		*ret_fd = fd;
		fd = -1;
	}
	if (ret_fetched)
		*ret_fetched = fetched;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}
