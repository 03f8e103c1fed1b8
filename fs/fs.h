/* fs/fs.h: the whole contract of the fs module.
 *
 * A repository as the node sees it: a pinned root, an ordered list of mirrors, the node store
 * (shared by every process on the node) and the verified metadata kept in it. `stork extract`,
 * `stork prefetch` and the FUSE daemon storkfs (fs/daemon.c, fs/ops.c) are thin layers over
 * these functions.
 */
#ifndef STORKFS_FS_H
#define STORKFS_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "fetch/fetch.h"
#include "store/store.h"
#include "verify/verify.h"

/** Compare two version strings the way dpkg does (epoch, upstream version, Debian revision;
 * '~' sorts before everything, letters before non-letters). Used to pick `latest` and to list
 * versions in order. @return <0, 0, >0 like strcmp. Thread-safe; never fails: a missing or
 * non-numeric epoch counts as 0. */
int fs_version_cmp(const char *a, const char *b);

/* ------------------------------------------------------------------------------------------ */
/* A repository on this node. */

struct fs_repo;

struct fs_repo_opts {
	struct fetch_opts fetch;
	time_t now; /* 0 = time(NULL) at each refresh */
	/* Optional: told each time this repository transferred an object into the store (not
	 * when another caller's transfer delivered it); mirror is the URL as given, borrowed. */
	void (*fetched)(void *ctx, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
			const char *mirror);
	void *fetched_ctx;
	/* When a refresh fails and the trusted top-level metadata has already expired, check
	 * delegated roles as of the last second it was valid (not now), so that they get the
	 * same grace as the rest of the state (fs/README.md "Stale metadata"; the daemon's
	 * max_stale). false: delegated roles are checked against now (`stork extract`). */
	bool delegations_at_expiry;
	/* Objects fetched by fs_repo_object are stored without a sync each
	 * (store_insert_commit_unsynced: the mount's read path), made durable and indexed by
	 * the store's group syncs. false: each is synced as it is stored (store_insert_commit). */
	bool unsynced;
};

/** Open a repository: the pinned root file's bytes, its mirrors (tried in order), and the node
 * store. The repository's identity in the store is the hex SHA-256 of the pinned root. Does
 * not touch the network (call fs_repo_refresh). The store is borrowed and must outlive it.
 * Raises the process's soft limit of open files to its hard limit: a prefetch holds hundreds
 * of objects open while they wait for one sync.
 * @return 0; STORK_EFORMAT / STORK_EBADSIG for a bad pinned root; -EINVAL for a mirror no
 * transport handles; -ENOMEM. */
int fs_repo_open(struct store *s, const uint8_t *root, size_t rootlen, const char *const *mirrors,
		 size_t nmirrors, const struct fs_repo_opts *o, struct fs_repo **ret_r);
void fs_repo_close(struct fs_repo *r);
/** The repository's identity in the store: the hex SHA-256 of its pinned root (valid while r
 * is open). */
const char *fs_repo_id(const struct fs_repo *r);

/** Refresh the signed metadata from the mirrors (TUF workflow), keeping what verifies in the
 * store. When the mirrors cannot be reached, the last verified state from the store stays in
 * use: returns 1 and leaves a detail saying so and why. After a verification failure the
 * state in use is the one the store trusts (what was trusted before, plus root rotations that
 * verified), re-read when it is complete. Expired metadata is never accepted as new: the
 * stale state stays in use and the caller decides how long (fs_staleness).
 * @return 0 (fresh); 1 (offline, using the stored state); STORK_E* (a verification failure:
 * nothing new is trusted); -errno when there is no usable state at all. */
int fs_repo_refresh(struct fs_repo *r);

/** The verified manifest of one version: from the store when it holds it, else fetched,
 * checked against its signed hash and kept. @param[out] ret_m caller frees.
 * @return 0; -ENOENT (no such package or version is signed: detail says which);
 * STORK_E*; -errno. */
int fs_repo_manifest(struct fs_repo *r, const char *name, const char *version,
		     struct verify_manifest **ret_m);

/** The manifest of a target fs_repo_list gave (a version as the metadata signed it when it
 * was listed, even if a refresh has since replaced it): from the store, else fetched, checked
 * against t's signed length and hash and kept. @param[out] ret_m caller frees.
 * @return 0; STORK_E*; -errno. */
int fs_repo_target_manifest(struct fs_repo *r, const struct verify_target *t,
			    struct verify_manifest **ret_m);

/** Make sure a file entry's object is in the store, fetching and verifying it if needed; then
 * open it. @param what names the file for messages ("hello 2.10-3: usr/bin/hello").
 * @param[out] ret_fd read-only, caller closes (may be NULL: just make sure it is stored).
 * @param[out] ret_fetched (optional) whether this call transferred it.
 * @return 0; STORK_E* / -errno when no mirror could deliver it (detail names each). */
int fs_repo_object(struct fs_repo *r, const struct verify_entry *e, const char *what, int *ret_fd,
		   bool *ret_fetched);

/** Call fn for every package version the current verified metadata signs (delegated roles
 * loaded as verify_client_each_target does; roles or targets that fail verification are
 * skipped and reported through the fetch options' log, or stderr). Holds the repository's
 * lock for the whole walk: fn must not call back into r (a refresh swaps its new state in
 * after the walk).
 * @return 0; -ENOENT when there is no verified metadata yet; the first failure's code (after
 * walking everything that verified); a negative return of fn stops the walk and is
 * returned. */
int fs_repo_list(struct fs_repo *r, int (*fn)(void *ctx, const struct verify_target *t), void *ctx);

/** A key for what is derived from the state in use (store_catalog_*): the SHA-256 of the
 * repository, view (a name of the caller's: what is derived, under which policy; under 64
 * bytes) and verify_client_state_id of the state. @param[out] ret_now (optional) the clock the
 * state's expiry checks use; ret_expire (optional) the earliest expiry of the delegated roles
 * loaded (after a complete fs_repo_list: all of them; VERIFY_NO_EXPIRY when none): what was
 * derived holds while ret_now is before it. @return 0; -ENOENT (no state yet); -EINVAL (view
 * of 128 bytes or more); -ENOMEM. */
int fs_repo_state_key(struct fs_repo *r, const char *view, uint8_t ret_key[VERIFY_HASH_LEN],
		      time_t *ret_now, time_t *ret_expire);
/** verify_policy_digest of the repository's own policy (fs_repo_set_policy). @return 0;
 * -ENOENT (none: the repository's delegations); -ENOMEM; -EIO. */
int fs_repo_policy_digest(struct fs_repo *r, uint8_t ret_digest[VERIFY_HASH_LEN]);

/** fs_repo_list with another policy than the repository's own (a slice's: fs/README.md
 * "Slices"): what p accepts of the same verified state (NULL: the repository's delegations).
 * p is the caller's and must outlive the call. @return as fs_repo_list. */
int fs_repo_list_policy(struct fs_repo *r, const struct verify_policy *p,
			int (*fn)(void *ctx, const struct verify_target *t), void *ctx);

/** The control list a slice with policy p follows (its `control` line; verify/control.h) as
 * the state in use signs it: found under the repository's lock, then fetched from the mirrors
 * and checked against its signed length and hash without it.
 * @param known (optional) the SHA-256 of the list the caller holds: when the state in use signs
 * that same list, nothing is fetched and 1 is returned (ret_l untouched).
 * @param[out] ret_l caller frees; ret_t (optional) the target: role and keyid of the signer.
 * @return 0; 1 (known is the list signed now); -ENODATA (p follows no group); -ENOENT (no verified
 * metadata yet, or no list is signed for the group: detail); STORK_EBADSIG (signed by keys p does
 * not trust for the group: the detail names the policy line, the file, the role and the key);
 * STORK_E* / -errno (fetching or checking the list: detail). */
int fs_repo_control(struct fs_repo *r, const struct verify_policy *p,
		    const uint8_t known[VERIFY_HASH_LEN], struct verify_control_list **ret_l,
		    struct verify_target *ret_t);

/** Use a slice's trust policy from now on (verify/README.md "Trust policy"): fs_repo_list
 * then walks only what it accepts and fs_repo_manifest refuses what it does not (-ENOENT, the
 * detail says which rule). Takes ownership of p (freed with the repository or the next call);
 * NULL goes back to the repository's own delegations. */
void fs_repo_set_policy(struct fs_repo *r, struct verify_policy *p);

/** The trusted version and expiry of a top-level role ("root", "timestamp", "snapshot",
 * "targets") in the state currently in use. @return 0; -ENOENT (no such role or no state). */
int fs_repo_role_info(struct fs_repo *r, const char *role, uint64_t *ret_version,
		      time_t *ret_expires);

/** The earliest expiry among the trusted top-level roles (root, timestamp, snapshot, targets)
 * of the state in use: from then on that state is stale. @return 0; -ENOENT (no state). */
int fs_repo_expires(struct fs_repo *r, time_t *ret_expires);

/* ------------------------------------------------------------------------------------------ */
/* A slice's installed root (fs/README.md "Installing"): the union of its installed packages'
 * trees, as `stork install` checks it and storkfs shows it at /.slices/NAME/root/. */

/** Merge the trees of ms[0..n) (the packages of one generation) into one manifest: directories
 * merge, identical entries (same type; a file's content and mode, a symlink's target) merge,
 * and where two packages put different entries at one path, the one whose Replaces names the
 * other (and its version) wins. @param[out] ret_m a finished manifest (name "root"), caller
 * frees. @return 0; -EEXIST (two packages put different content at one path and neither
 * replaces the other: the detail names the path and both packages with their versions);
 * STORK_EHOSTILE (an entry would lie below another package's file or symlink: named);
 * -ENOMEM. Thread-safe. */
int fs_root_merge(const struct verify_manifest *const *ms, size_t n,
		  struct verify_manifest **ret_m);

/* ------------------------------------------------------------------------------------------ */
/* Stale metadata (fs/README.md "Stale metadata"): when refreshes fail, the last verified state
 * keeps being served for a grace `max_stale` after it expired, then no longer. */

/** max_stale without a limit ("inf"): stale metadata is served for ever (no freeze bound). */
#define FS_STALE_FOREVER INT64_MAX

/** Parse a duration option "name=s": a decimal count of seconds with an optional unit s, m, h
 * or d ("90", "90s", "5m", "1h", "7d"), at most `most` seconds. Every duration option of storkfs
 * and stork goes through it (max_stale adds "inf"). Thread-safe.
 * @return 0; -EINVAL, with a detail "name=s: ..." saying what was expected. */
int fs_parse_duration(const char *name, const char *s, int64_t most, int64_t *ret_secs);

/** Parse a max_stale value: "0", a decimal count with an optional unit s, m, h or d ("90",
 * "90s", "12h", "7d"; seconds without a unit; at most 100 years), or "inf" / "never" for no
 * limit (FS_STALE_FOREVER). Thread-safe.
 * @return 0; -EINVAL, with a detail quoting s and saying what was expected. */
int fs_parse_max_stale(const char *s, int64_t *ret_secs);

struct fs_staleness {
	time_t expires;	      /* the earliest expiry of the trusted state; 0 = no state known */
	bool stale;	      /* now >= expires */
	int64_t stale_for;    /* now - expires when stale, else 0 */
	bool forever;	      /* max_stale is FS_STALE_FOREVER: never stops serving */
	time_t serving_until; /* expires + max_stale (when !forever and a state is known) */
	bool serving;	      /* now < serving_until, or forever, or no state known */
};

/** Decide whether a state that expires (or expired) at `expires` may still be served at `now`
 * with a grace of max_stale seconds (0: not past its expiry; FS_STALE_FOREVER: always).
 * expires 0 (nothing known) is never stale. Pure and thread-safe. */
void fs_staleness(time_t expires, int64_t max_stale, time_t now, struct fs_staleness *ret);

/** A duration for people: "0s", "45s", "3m 20s", "5h 2m", "7d 3h". Returns buf. */
const char *fs_format_duration(int64_t secs, char buf[32]);

/** The store it was opened with. Borrowed. */
struct store *fs_repo_store(struct fs_repo *r);

/** The fetcher, for counters and transports. Borrowed. */
struct fetch *fs_repo_fetcher(struct fs_repo *r);

struct fs_extract_stats {
	uint64_t files, dirs, symlinks;
	uint64_t fetched; /* objects transferred */
	uint64_t linked;  /* files hard-linked to the store */
	uint64_t copied;  /* files copied (other file system, or modes links can't carry) */
	uint64_t bytes;
};

/** Materialise a version as destdir (created; must not exist or be empty). Files are hard
 * links to the store's per-mode variant of their object when destdir is on the store's file
 * system (store_object_link), copies with the manifest's mode and mtime otherwise. Directories
 * get their modes and mtimes last. Built in a sibling .stork-extract-<name>-XXXXXX and renamed
 * into place, so destdir appears whole or not at all; a killed extract's leftovers are removed
 * by the next extract to the same destination.
 * @return 0; -EEXIST (destdir exists and is not empty); STORK_E*; -errno. */
int fs_extract(struct fs_repo *r, const struct verify_manifest *m, const char *destdir,
	       struct fs_extract_stats *ret_stats);

/** Remove an extracted tree destdir (its linked files are immutable: store_unlink) and s's
 * record of it. @return 0; -errno (detail names the file left). */
int fs_extract_remove(struct store *s, const char *destdir);

/* ------------------------------------------------------------------------------------------ */
/* Prefetch (fs/prefetch.c): every object of some versions into the store ahead of use. */

/** Transfers at once when fs_prefetch_opts.jobs is 0. */
#define FS_PREFETCH_JOBS 32

struct fs_prefetch_progress {
	uint64_t objects;	/* distinct objects of the versions */
	uint64_t objects_done;	/* stored (fetched or already there) or failed */
	uint64_t bytes;		/* their uncompressed bytes */
	uint64_t bytes_done;	/* of those: stored, or written so far for transfers in flight */
	uint64_t bytes_present; /* of bytes_done: already stored when the call began */
	uint64_t present;	/* already in the store (or stored by another caller meanwhile) */
	uint64_t fetched;	/* transferred, verified and stored by this call */
	uint64_t fetched_bytes; /* their uncompressed bytes */
	uint64_t failed;	/* every source failed */
	uint64_t packs;		/* version packs fetched (store/README.md, "Version packs") */
	uint64_t packed;	/* of fetched: objects that came in a pack */
	double seconds;		/* since the call started */
};

struct fs_prefetch_opts {
	unsigned jobs; /* objects in transfer at once; 0 = FS_PREFETCH_JOBS */
	/* Optional: called from the calling thread about every progress_ms (0 = 100) and once
	 * at the end (done = true), never concurrently. */
	void (*progress)(void *ctx, const struct fs_prefetch_progress *p, bool done);
	void *progress_ctx;
	unsigned progress_ms;
	/* Optional: an object every source failed (what names the file, "hello 2.10-3:
	 * usr/bin/hello"; detail says what each source did). Called from worker threads,
	 * serialised. NULL = one line on stderr. */
	void (*failed)(void *ctx, const char *what, const uint8_t id[VERIFY_HASH_LEN], int err,
		       const char *detail);
	void *failed_ctx;
	/* Optional: a line for people about the transfer (a version pack that brought objects
	 * that did not verify). Called from the pack phase's thread. NULL = stderr. */
	void (*note)(void *ctx, const char *line);
	void *note_ctx;
	/* Optional: once *cancel is non-zero (read with an atomic load: set it from any thread
	 * or a signal handler), no further object is started; transfers in flight finish and
	 * the call returns -ECANCELED. */
	const int *cancel;
};

/** Fetch every file object of the manifests ms[0..n) into the store. First, for each version
 * whose small objects are mostly missing, its version pack (one request through the mirrors
 * and proxies, every object checked against the manifest as it streams, committed in
 * batches); then every object still missing, `jobs` at a time, each verified as
 * fs_repo_object does (fetch_object through the repository's fetcher: peers, mirrors,
 * proxies, collapsing with concurrent readers). A pack that is absent, lies or breaks off
 * costs nothing but its transfer: what it did not deliver is fetched object by object. With
 * peers configured there is no pack phase (peers serve objects; a pack would come from the
 * origin).
 * Objects already stored are skipped;
 * an object in several files or versions is fetched once. Fetched objects are committed in
 * groups (store_insert_commit_batched: one sync per group, not per object); an object is
 * stored when its transfer's call returns, as with fs_repo_object. An object that every
 * source fails is reported (opts.failed) and the others go on. Safe to call from a daemon
 * thread while the repository serves readers (not while it is closed).
 * @param[out] ret_p (optional) the final counts.
 * @return 0 (every object stored); -ECANCELED; else the most telling failure: STORK_E*
 * (content refused) before -errno; -ENOMEM; -errno from the store. */
int fs_prefetch(struct fs_repo *r, struct verify_manifest *const *ms, size_t n,
		const struct fs_prefetch_opts *opts, struct fs_prefetch_progress *ret_p);

/** Pin every file object of the versions ms as owner's pin set in the store (store_pin_set:
 * the quota's eviction and stork gc never remove them), replacing what owner pinned before;
 * n = 0 unpins. Owners: "mount-<hex>" for a mount's prefetch=, a slice's installed set under a
 * name of its own (1 to 128 of [A-Za-z0-9._-]). Thread-safe. @return 0; -EINVAL (a bad
 * owner); -ENOMEM; -errno. */
int fs_pin_versions(struct store *s, const char *owner, struct verify_manifest *const *ms,
		    size_t n);

/** The versions of package `name` the current verified metadata signs, sorted by
 * fs_version_cmp (oldest first). @param[out] ret_versions malloc'd array of malloc'd strings
 * (caller frees each and the array). @return 0; -ENOENT (no version is signed: detail says
 * so); as fs_repo_list. */
int fs_repo_versions(struct fs_repo *r, const char *name, char ***ret_versions, size_t *ret_n);

/* ------------------------------------------------------------------------------------------ */
/* Auditing a whole repository (`stork verify`, fs/audit.c). */

/** What fs_audit found. */
struct fs_audit_result {
	unsigned failures; /* problems told: 0 when everything verifies */
	size_t packages;   /* distinct package names signed */
	uint64_t versions; /* package versions whose manifest verified */
	size_t objects;	   /* distinct objects those manifests list (each checked once) */
	uint64_t bytes;	   /* the versions' total file bytes */
};

/** Check a repository as a client would: every target c's delegations sign (hash and version
 * of every role against the snapshot, thresholds, expiry, patterns), each target's manifest
 * (length, hash, strict parse), its version pack when the repository has one (every object in
 * it through the checking unpacker), and every object the manifests list (its zstd frame, size
 * and SHA-256; objects listed twice must agree on their sizes). With dir (the repository is
 * the local directory dir), also what the TUF walk does not read: every older version of every
 * metadata file (verify_client_audit_file, from the pinned root up), root.json against the
 * newest root, and every manifest and object no verified metadata refers to (they must still
 * be what their names say).
 *
 * c must have refreshed (verify_client_refresh) over src; root and rootlen are the bytes of
 * the pinned root it started from. Each problem and each note (a file name that is ignored,
 * the count of unreferenced files) is given to tell, one line without a line end, as it is
 * found; the walk goes on after each. The lines are valid only during the call. Not
 * thread-safe for one client (the client's state changes as roles load).
 * @param[out] ret written on success. @return 0 (whether or not problems were found:
 * ret->failures says); -ENOMEM. */
int fs_audit(struct verify_client *c, const struct verify_source *src, const uint8_t *root,
	     size_t rootlen, const char *dir, void (*tell)(void *ctx, const char *line), void *ctx,
	     struct fs_audit_result *ret);

#endif
