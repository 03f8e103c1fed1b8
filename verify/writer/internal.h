/* verify/writer/internal.h: private to verify/writer/: what the repository writer's files share.
 *
 * The writer is the publisher's side (verify/writer/writer.h); one file per operation (init.c,
 * delegate.c, publish.c, remove.c, gc.c, refresh.c, rotate.c, revoke.c) over the common part in
 * repo.c. It reads the repository's trusted state only through verify/trusted.h, never through the
 * client's structs. Functions return 0 or a negative code and leave a detail, as everywhere.
 */
#ifndef STORKFS_VERIFY_WRITER_INTERNAL_H
#define STORKFS_VERIFY_WRITER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "verify/cjson.h"
#include "verify/key.h"
#include "verify/trusted.h"
#include "verify/tuf.h"
#include "verify/writer/writer.h"

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

/* Key files of a rotation in KEYDIR (verify/README.md "Keys"):
 *   ROLE.key                  the key the newest committed root lists for ROLE
 *   ROLE.key.new              a rotation's new key, saved before any metadata names it
 *   ROLE.key.old-<16 hex>     a key a rotation replaced, named by its key id (never reused) */
#define PENDING_SUFFIX ".new"

#define REVOKED_FIELD META_REVOKED_FIELD

/* The online keys a change signs with: the top-level targets key (only when the change
 * rewrites the top-level targets), the snapshot and the timestamp keys. */
struct online_keys {
	struct verify_key *targets, *snapshot, *timestamp;
};

/* ------------------------------------------------------------------------------------------ */
/* repo.c: the repository as an operation opens it, keys, signing and the commit. */

/** Expiry durations into r (explicit options, else KEYDIR's saved choice, else the defaults);
 * explicit options are saved in KEYDIR when keydir is given. @return 0; -EINVAL; -errno. */
int repo_opts_init(struct repo *r, const struct verify_repo_opts *o, const char *keydir);
/** Save r's expiry durations as KEYDIR/expiry. @return 0; -errno. */
int repo_expiry_save(const struct repo *r, const char *keydir);
/** Open and flock() REPODIR/metadata as r->mdfd. @return 0; -errno (-ENOENT: not a
 * repository, the detail says how to make one). */
int repo_lock_metadata(struct repo *r);
/** Lock the repository and read its trusted state (every signature checked, expiry not) into
 * r; with keydir, finish a key switch a crashed rotation left. Close with repo_close; a failure
 * leaves nothing open (repo_close may still be called). @return 0; the client's errors;
 * -errno. */
int repo_open(struct repo *r, const char *repodir, const char *keydir,
	      const struct verify_repo_opts *o);
/** Release what repo_open took (the lock last). */
void repo_close(struct repo *r);

/** Make KEYDIR/ROLE.key.new the current ROLE.key, keeping the old one as
 * ROLE.key.old-<16 hex of its id>. @return 0; -errno. */
int repo_switch_key(const char *keydir, const char *role);
/** A top-level role's private key from KEYDIR, which must be one the trusted root lists for it.
 * @return 0; STORK_EBADSIG (not the root's key); the key loader's errors. */
int repo_load_key(const struct repo *r, const char *keydir, enum meta_toprole role,
		  struct verify_key **ret_key);
/** The online keys into k (the targets key only when targets is true). Free k with
 * repo_online_free, also after a failure. @return as repo_load_key. */
int repo_load_online(const struct repo *r, const char *keydir, bool targets, struct online_keys *k);
void repo_online_free(struct online_keys *k);

/** Set _type, spec_version, version and expires of a role's "signed" object s.
 * @return 0; -EOVERFLOW; -ENOMEM. */
int repo_set_common(json_t *s, const char *type, uint64_t version, time_t expires);
/** Sign s with every key of keys and write it as metadata/<name> (atomically); ret_buf
 * (optional, malloc'd) receives the bytes. @return 0; meta_sign's errors; -errno. */
int repo_write_signed_n(int mdfd, const char *name, const json_t *s, struct verify_key *const *keys,
			size_t nkeys, char **ret_buf, size_t *ret_len);
/** repo_write_signed_n with one key. */
int repo_write_signed(int mdfd, const char *name, const json_t *s, struct verify_key *key,
		      char **ret_buf, size_t *ret_len);
/** Write a new snapshot listing the role files names[i] at versions[i] (others as they are),
 * then timestamp.json, the commit point; each signed by every key given. @return 0; -errno. */
int repo_commit_n(struct repo *r, const char *const *names, const uint64_t *versions, size_t n,
		  struct verify_key *const *snapkeys, size_t nsnap,
		  struct verify_key *const *tskeys, size_t nts);
/** repo_commit_n with one snapshot key and one timestamp key. */
int repo_commit(struct repo *r, const char *const *names, const uint64_t *versions, size_t n,
		struct verify_key *snapkey, struct verify_key *tskey);
/** Sign s as the next top-level targets with k's targets key and commit it together with role
 * (NULL: none) at role_version, which the caller wrote before. @return 0; -errno. */
int repo_commit_targets(struct repo *r, json_t *s, const struct online_keys *k, const char *role,
			uint64_t role_version);

/* ------------------------------------------------------------------------------------------ */
/* Helpers of one operation that another one uses too. */

/** mkdirat(dirfd, path, mode), an existing directory being fine; the detail names what.
 * (init.c) @return 0; -errno. */
int repo_mkdir_ok(int dirfd, const char *path, mode_t mode, const char *what);
/** {"keyids":[keyid],"threshold":1} (new reference; NULL on -ENOMEM). (init.c) */
json_t *repo_role_keys(const char *keyid);
/** The element of a "delegations.roles" array whose name is name; NULL if none. (delegate.c) */
json_t *repo_find_role_json(json_t *roles, const char *name);
/** Whether the JSON array arr holds the string s. (delegate.c) */
bool repo_strv_json_has(const json_t *arr, const char *s);
/** The delegated role del as a writer builds on it: ret_cur its current trusted metadata, or
 * NULL when there is none to build on, and ret_next the version to write. (publish.c)
 * @return 0; trusted_load_role's errors. */
int repo_role_for_write(struct repo *r, const struct meta_delegation *del,
			const struct meta **ret_cur, uint64_t *ret_next);
/** The first delegation (in the order clients search them) that lists key id and whose
 * patterns match target; NULL if none. (publish.c) */
const struct meta_delegation *repo_signing_delegation(const struct repo *r, const char *id,
						      const char *target);
/** Sign s (the "signed" object of delegated role del, its targets already changed) as version v
 * with the publisher key, then commit it with k's snapshot and timestamp keys. (publish.c)
 * @return 0; -errno. */
int repo_commit_delegated(struct repo *r, const struct meta_delegation *del, json_t *s, uint64_t v,
			  const struct verify_key *publisher, const struct online_keys *k);
/** Set target path to desc (taken, also on failure; NULL: -ENOMEM) in the delegated role del,
 * over its current metadata cur (NULL: an empty role), and commit it as version v with
 * repo_commit_delegated. (publish.c) @return 0; -ENOMEM; -errno. */
int repo_commit_target(struct repo *r, const struct meta_delegation *del, const struct meta *cur,
		       uint64_t v, const char *path, json_t *desc,
		       const struct verify_key *publisher, const struct online_keys *k);
/** The publisher key may not sign target (what names it in the message): say which names the
 * key may publish, or that it was rotated out, or how to delegate it. (publish.c)
 * @return STORK_EPATTERN. */
int repo_pattern_error(const struct repo *r, const struct verify_key *publisher, const char *what,
		       const char *target);
/** The index of a top-level role name in meta_role_names; -1 if it is not one. (rotate.c) */
int repo_top_role_index(const char *name);
/** Drop from keys every key that no role in roles lists (root's "roles" object or a targets'
 * "delegations.roles" array). (rotate.c) */
void repo_prune_keys(json_t *keys, json_t *roles);

#endif
