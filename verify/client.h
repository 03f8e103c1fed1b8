/* verify/client.h: private to the TUF client's files (client.c, target.c, history.c,
 * delegation.c, cache.c, decide.c, trusted.c).
 *
 * The client's trusted state as a struct, and the helpers those files share. Nothing else looks
 * inside struct verify_client: other modules go through verify/tuf.h, the repository writer
 * (verify/writer/) through verify/trusted.h. */
#ifndef STORKFS_VERIFY_CLIENT_H
#define STORKFS_VERIFY_CLIENT_H

#include "verify/meta.h"
#include "verify/tuf.h"

/* The client's trusted state (client.c, delegation.c, cache.c). Everything it holds comes with
 * its raw bytes (struct meta.raw), which is what the cache stores.
 *
 * Invariants: root is always set; timestamp, snapshot and targets are either absent or checked
 * against the trusted root and consistent with each other (snapshot as the timestamp names it,
 * targets as the snapshot names it). A refresh stages new files and swaps them in only when the
 * whole top-level update verifies; root rotations are the exception (TUF 5.3.8 trusts and
 * persists each one at once), and a rotation drops what the new root no longer vouches for. */

struct client_role { /* a delegated role loaded since the trusted snapshot changed */
	char *name;
	struct meta *m;			   /* NULL when loading failed */
	int err;			   /* 0, or why loading failed */
	char *detail;			   /* the failure's detail */
	char *file;			   /* metadata/<v>.<name>.json */
	char *keyid;			   /* a key whose signature counted */
	const struct meta_delegation *del; /* the delegation it was checked against */
	const struct meta *dm;		   /* ... and the metadata that holds it (its keys) */
};

struct verify_client {
	time_t now;
	bool check_expiry; /* false for the repository writer, which re-signs expired roles */
	struct meta *root;
	struct meta *timestamp;
	struct meta *snapshot;
	struct meta *targets;
	char *targets_keyid; /* a key whose signature counted on targets */
	struct client_role *roles;
	size_t nroles;
	/* The earliest expiry of the pinned roles (a policy's keys, verify/decide.c) loaded since
	 * the roles were last cleared, 0 when none: verify_client_state_id's too. */
	time_t pinned_expires;

	/* Auditing old versions (verify_client_audit_file): the pinned root's bytes, and the
	 * older roots and delegating roles audited so far, whose keys older files may carry. */
	uint8_t *pinned_raw;
	size_t pinned_len;
	struct meta **hist;
	size_t nhist;

	struct verify_cache cache; /* valid when has_cache; ctx borrowed */
	bool has_cache;
	bool cache_root_current; /* the cache's root.json is the trusted root */
	char *cache_note;	 /* what verify_client_set_cache ignored, NULL when nothing */
};

/** Load (or return the cached) delegated role `del` delegated by `delegator` (its metadata
 * `dm`): from the client's cache when it holds the version the snapshot lists, else from src
 * (then saved to the cache). @param[out] ret_role borrowed from c. @return 0; the load error
 * (cached, with its detail restored); -ENOENT (not an error: the role is delegated but not yet
 * listed in the snapshot, i.e. nothing was published in it); STORK_EMISSING when the snapshot
 * lists it but the source does not have it; STORK_EROLLBACK when the cache holds a newer
 * version than the snapshot lists. */
int client_load_role(struct verify_client *c, const struct verify_source *src,
		     const struct meta *dm, const struct meta_delegation *del,
		     const struct client_role **ret_role);

/** The loaded delegated role `name`, or NULL (not loaded since the snapshot changed). */
const struct client_role *client_role_find(const struct verify_client *c, const char *name);

/** Forget every loaded delegated role. */
void client_roles_clear(struct verify_client *c);

/** Check that m is what mf (an entry of file `by`) describes: its version, and its length and
 * SHA-256 when mf gives them. @return 0; STORK_EVERSION; STORK_EBADLEN; STORK_EBADHASH. */
int client_meta_check(const struct meta *m, const struct meta_file *mf, const char *by);

/** The repository name of a versioned file under root ("metadata/3.snapshot.json", or
 * "metadata/snapshot.json" without consistent snapshots); malloc'd, NULL on -ENOMEM. */
char *client_file_name(const struct meta *root, uint64_t version, const char *role);

/** A root exactly one version after prev, as 5.3 requires: signed by a threshold of prev's
 * root keys and of its own, version `want`. @return 0; STORK_EBADSIG; STORK_EVERSION. */
int client_root_step(const struct meta *prev, const struct meta *m, uint64_t want);

/* cache.c: the client's side of struct verify_cache. All are no-ops without a cache. */

/** Load cache entry `name` and parse it as `type`, naming it `what` in details. An empty entry
 * is a forgotten one. @return 0; -ENOENT (no cache, absent or forgotten); STORK_EFORMAT (and
 * the other meta_parse errors); the cache's -errno. */
int client_cache_load(const struct verify_client *c, const char *name, const char *what,
		      enum meta_type type, struct meta **ret_m);
/** Save m's raw bytes as `name`. @return 0; the cache's -errno (detail names the entry). */
int client_cache_save(struct verify_client *c, const char *name, const struct meta *m);
/** Save an empty entry: what a later start must not load (fast-forward recovery, 5.3.11).
 * @return 0; the cache's -errno. */
int client_cache_forget(struct verify_client *c, const char *name);

#endif
