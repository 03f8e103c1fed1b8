/* verify/cache.c: the client's trusted state kept in a struct verify_cache (the node store's
 * LMDB), so that it survives restarts (rollback protection) and can be used offline.
 *
 * Loading follows TUF 5.2's rule for local metadata: a cached file is trusted once its
 * signatures meet the thresholds of the trusted root, without looking at its expiry. The root
 * itself is only trusted when it chains from the pinned root through the cached "<N>.root.json"
 * links, each signed as 5.3 requires, so that whoever can write the cache but holds no signing
 * key can do no more than delete entries: they can make the client forget, never trust. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/client.h"
#include "verify/error.h"
#include "verify/tuf.h"

/* Content problems (a damaged or foreign file) as opposed to the cache failing. */
static bool damaged(int r)
{
	return r <= STORK_EBADSIG;
}

static int cache_load(const struct verify_cache *cache, const char *name, const char *what,
		      enum meta_type type, struct meta **ret_m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	stork_error_clear();
	r = cache->load(cache->ctx, name, &buf, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0) {
		if (stork_error_detail()[0])
			stork_error_prefix("cache: %s", name);
		else
			stork_errorf("cache: %s: cannot load: %s", name, storkfs_strerror(r));
		return r;
	}
	if (len == 0) {
		free(buf);
		return -ENOENT; /* forgotten */
	}
	r = meta_parse(buf, len, what, type, ret_m);
	free(buf);
	return r;
}

int client_cache_load(const struct verify_client *c, const char *name, const char *what,
		      enum meta_type type, struct meta **ret_m)
{
	if (!c->has_cache)
		return -ENOENT;
	return cache_load(&c->cache, name, what, type, ret_m);
}

static int cache_put(struct verify_client *c, const char *name, const uint8_t *buf, size_t len)
{
	int r;

	if (!c->has_cache)
		return 0;
	stork_error_clear();
	r = c->cache.save(c->cache.ctx, name, buf, len);
	if (r < 0) {
		if (stork_error_detail()[0])
			stork_error_prefix("cache: %s", name);
		else
			stork_errorf("cache: %s: cannot save: %s", name, storkfs_strerror(r));
	}
	return r;
}

int client_cache_save(struct verify_client *c, const char *name, const struct meta *m)
{
	return cache_put(c, name, m->raw, m->rawlen);
}

int client_cache_forget(struct verify_client *c, const char *name)
{
	static const uint8_t none[1];

	return cache_put(c, name, none, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Starting from the cache */

struct loaded {
	struct meta *root; /* NULL: the pinned root stays */
	bool root_current; /* the cache's root.json is the root the client will trust */
	struct meta *timestamp;
	struct meta *snapshot;
	struct meta *targets;
	char *targets_keyid;
	char note[1024]; /* what was ignored, "; "-separated */
};

static void loaded_fini(struct loaded *l)
{
	meta_free(l->root);
	meta_free(l->timestamp);
	meta_free(l->snapshot);
	meta_free(l->targets);
	free(l->targets_keyid);
}

/* Remember the current detail: a cached file that is not used. */
static void note_ignored(struct loaded *l)
{
	size_t len = strlen(l->note);

	if (len + 2 < sizeof(l->note))
		snprintf(l->note + len, sizeof(l->note) - len, "%s%s: ignored", len ? "; " : "",
			 stork_error_detail());
}

/* Name a trusted file as the repository names it. @return 0; -ENOMEM. */
static int rename_meta(struct meta *m, char *file)
{
	if (!file)
		return -ENOMEM;
	free(m->file);
	m->file = file;
	return 0;
}

/* The cached root, when it chains from the pinned one. Everything else is ignored (noted):
 * a root older than the pinned one (the pin moved on), one of the same version that is not
 * the pinned root, one whose chain has a missing or badly signed link.
 * @return 0; the cache's -errno; -ENOMEM. */
static int load_root(const struct verify_client *c, const struct verify_cache *cache,
		     struct loaded *l)
{
	const struct meta *pinned = c->root, *prev = c->root;
	struct meta *m = NULL, *link = NULL, *prevlink = NULL;
	char name[64], what[80];
	uint64_t v;
	int r;

	r = cache_load(cache, "root.json", "cached root.json", META_ROOT, &m);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		goto out;
	if (m->version < pinned->version)
		goto out; /* refreshing saves the newer one */
	if (m->version == pinned->version) {
		if (m->canonlen == pinned->canonlen &&
		    memcmp(m->canon, pinned->canon, m->canonlen) == 0) {
			l->root_current = true;
			goto out;
		}
		stork_errorf("cached root.json: version %" PRIu64
			     " is not the pinned %s (the cache "
			     "belongs to another repository, or is damaged)",
			     m->version, pinned->file);
		r = STORK_EBADSIG;
		goto out;
	}
	for (v = pinned->version + 1; v < m->version; v++) {
		snprintf(name, sizeof(name), "%" PRIu64 ".root.json", v);
		snprintf(what, sizeof(what), "cached %s", name);
		r = cache_load(cache, name, what, META_ROOT, &link);
		if (r == -ENOENT) {
			stork_errorf("cached root.json: version %" PRIu64
				     ", but the cache lacks %s "
				     "to chain it to the pinned %s",
				     m->version, name, pinned->file);
			r = STORK_EMISSING;
		}
		if (r < 0)
			goto out;
		r = client_root_step(prev, link, v);
		if (r < 0)
			goto out;
		meta_free(prevlink);
		prev = prevlink = link;
		link = NULL;
	}
	r = client_root_step(prev, m, m->version);
	if (r < 0)
		goto out;
	r = rename_meta(m, meta_asprintf("metadata/%" PRIu64 ".root.json", m->version));
	if (r < 0)
		goto out;
	l->root = m;
	l->root_current = true;
	m = NULL;
out:
	if (damaged(r)) {
		note_ignored(l);
		r = 0;
	}
	meta_free(m);
	meta_free(link);
	meta_free(prevlink);
	return r;
}

/* The cached targets.json, signed under root and, when mf is given (the trusted snapshot's
 * entry), the version and hash it names. @return 0; as cache_load and the checks. */
static int load_targets(const struct verify_cache *cache, const struct meta *root,
			const struct meta_file *mf, struct loaded *l)
{
	const char *keyid = NULL;
	struct meta *m = NULL;
	int r;

	r = cache_load(cache, "targets.json", "cached targets.json", META_TARGETS, &m);
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "targets", &root->keys, &root->roles[META_ROLE_TARGETS], &keyid);
	if (r == 0 && mf)
		r = client_meta_check(m, mf, "cached snapshot.json");
	if (r == 0)
		r = rename_meta(m, client_file_name(root, m->version, "targets"));
	if (r < 0)
		goto out;
	l->targets_keyid = strdup(keyid);
	if (!l->targets_keyid) {
		r = -ENOMEM;
		goto out;
	}
	l->targets = m;
	m = NULL;
out:
	meta_free(m);
	return r;
}

/* Timestamp, snapshot and targets as far as they are present, signed under root and
 * consistent with each other; the first that is not ends the chain (noted).
 * @return 0; the cache's -errno; -ENOMEM. */
static int load_top(const struct verify_cache *cache, const struct meta *root, struct loaded *l)
{
	const struct meta_file *mf;
	struct meta *m = NULL;
	int r;

	r = cache_load(cache, "timestamp.json", "cached timestamp.json", META_TIMESTAMP, &m);
	if (r == -ENOENT)
		goto floor;
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "timestamp", &root->keys, &root->roles[META_ROLE_TIMESTAMP], NULL);
	if (r < 0)
		goto out;
	r = rename_meta(m, meta_asprintf("metadata/timestamp.json"));
	if (r < 0)
		goto out;
	l->timestamp = m;

	mf = meta_find_file(l->timestamp, "snapshot.json");
	m = NULL;
	r = cache_load(cache, "snapshot.json", "cached snapshot.json", META_SNAPSHOT, &m);
	if (r == -ENOENT)
		goto floor;
	if (r < 0)
		goto out;
	r = meta_check_sigs(m, "snapshot", &root->keys, &root->roles[META_ROLE_SNAPSHOT], NULL);
	if (r < 0)
		goto out;
	r = client_meta_check(m, mf, "cached timestamp.json");
	if (r < 0)
		goto out;
	r = rename_meta(m, client_file_name(root, m->version, "snapshot"));
	if (r < 0)
		goto out;
	l->snapshot = m;

	m = NULL;
	r = load_targets(cache, root, meta_find_file(l->snapshot, "targets.json"), l);
	goto out;
floor:
	/* The chain is broken where a root rotation made the client forget timestamp and
	 * snapshot (TUF 5.3.11), but the targets trusted before still bound what may come
	 * next: keep it as the rollback floor, checked by its signatures under this root
	 * (nothing is served from it until a refresh completes the chain). */
	meta_free(m);
	m = NULL;
	r = load_targets(cache, root, NULL, l);
out:
	meta_free(m);
	if (r == -ENOENT)
		r = 0;
	if (damaged(r)) {
		note_ignored(l);
		r = 0;
	}
	return r;
}

int verify_client_set_cache(struct verify_client *c, const struct verify_cache *cache)
{
	struct loaded l = {0};
	int r;

	if (c->has_cache || c->timestamp || c->snapshot || c->targets) {
		stork_errorf("the client cache must be set once, before the first refresh");
		return -EINVAL;
	}
	r = load_root(c, cache, &l);
	if (r < 0)
		goto out;
	r = load_top(cache, l.root ? l.root : c->root, &l);
	if (r < 0)
		goto out;
	if (l.note[0]) {
		c->cache_note = strdup(l.note);
		if (!c->cache_note) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (l.root) {
		meta_free(c->root);
		c->root = l.root;
		l.root = NULL;
	}
	c->timestamp = l.timestamp;
	c->snapshot = l.snapshot;
	c->targets = l.targets;
	c->targets_keyid = l.targets_keyid;
	l.timestamp = l.snapshot = l.targets = NULL;
	l.targets_keyid = NULL;
	c->cache = *cache;
	c->has_cache = true;
	c->cache_root_current = l.root_current;
	/* Success, but what was ignored is worth a warning: the detail says it. */
	if (c->cache_note)
		stork_errorf("%s", c->cache_note);
	else
		stork_error_clear();
out:
	loaded_fini(&l);
	return r;
}
