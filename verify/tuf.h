/* verify/tuf.h: the TUF client: where it reads a repository from (struct verify_source), its
 * trusted state and its cache, the refresh workflow and the search for targets
 * (verify/client.c, verify/refresh.c, verify/delegation.c, verify/cache.c), and a source over
 * a local directory (verify/dirsource.c). The client's internals are in verify/client.h,
 * private to its files.
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h); outputs are named ret_* and written only on success; _new/_free own
 * heap objects and every _free accepts NULL.
 */
#ifndef STORKFS_VERIFY_TUF_H
#define STORKFS_VERIFY_TUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "verify/hash.h"
#include "verify/manifest.h"

/* ------------------------------------------------------------------------------------------ */
/* Reading a repository: where the client gets bytes from. Implemented by fetch/ (directory,
 * file://, http://, https://); verify only calls it. Paths are relative to the repository
 * root, e.g. "metadata/timestamp.json", "targets/hello/<hash>.2.10-3.json". */

struct verify_source {
	/** Read a whole file of at most maxlen bytes into a malloc'd buffer (caller frees).
	 * @return 0; -ENOENT if absent; STORK_ETOOBIG if longer than maxlen (nothing past
	 * maxlen is read); -EIO or -ETIMEDOUT for transport failures (detail says which). */
	int (*get)(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len);
	/** Stream a file through fn in chunks without buffering it whole; same errors as get,
	 * plus fn's error. Stops with STORK_ETOOBIG as soon as more than maxlen bytes come. */
	int (*stream)(void *ctx, const char *path, uint64_t maxlen,
		      int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx);
	/** Where the bytes come from, for messages ("/srv/repo", "http://127.0.0.1:8080/"). */
	const char *(*describe)(void *ctx);
	void *ctx;
	/** Optional (NULL: callers use get and check the one answer themselves). As get, over
	 * a source with several origins (mirrors): each copy is passed to check, which accepts
	 * it (0, and a rank: the metadata's version) or refuses it (a STORK_E* code with a
	 * detail naming the file and the problem). A refused copy counts as that origin's
	 * failure (told and marked like a corrupt object) and the next origin is asked, so one
	 * lying or stale mirror cannot block a file another mirror serves right. With every,
	 * each usable origin is asked and the accepted copy of the highest rank is returned;
	 * origins whose accepted copies rank lower are told and marked as behind (withholding
	 * or lagging updates). @return 0; the most telling failure when no copy was accepted
	 * (check's refusal, -ENOENT, a transport error). */
	int (*get_checked)(void *ctx, const char *path, size_t maxlen,
			   int (*check)(void *cctx, const uint8_t *buf, size_t len,
					uint64_t *ret_rank),
			   void *cctx, bool every, uint8_t **ret_buf, size_t *ret_len);
};

/* ------------------------------------------------------------------------------------------ */
/* TUF metadata (specification 1.0, consistent snapshots) and the client's trusted state.
 *
 * Layout of a repository (verify/README.md):
 *   metadata/1.root.json, 2.root.json, ...   every root version
 *   metadata/root.json                       copy of the newest root (convenience only)
 *   metadata/timestamp.json
 *   metadata/<N>.snapshot.json, <N>.targets.json, <N>.<role>.json
 *   targets/<name>/<sha256>.<version>.json   package manifests (consistent-snapshot names)
 *   objects/<2 hex>/<64 hex>                 zstd objects (store/README.md)
 */

/* Metadata size caps (bytes), python-tuf's defaults. */
#define VERIFY_MAX_ROOT_LEN	  (512 * 1024)
#define VERIFY_MAX_TIMESTAMP_LEN  (16 * 1024)
#define VERIFY_MAX_SNAPSHOT_LEN	  (2 * 1024 * 1024)
#define VERIFY_MAX_TARGETS_LEN	  (5 * 1024 * 1024)
#define VERIFY_MAX_MANIFEST_LEN	  (64 * 1024 * 1024)
#define VERIFY_MAX_ROOT_ROTATIONS 256
#define VERIFY_MAX_DELEGATIONS	  32

struct verify_target { /* one signed target: a package version */
	char *path;    /* "<name>/<version>.json" */
	char *name;
	char *version;
	uint64_t length;	       /* manifest bytes */
	uint8_t hash[VERIFY_HASH_LEN]; /* manifest SHA-256 */
	char *role;		       /* the delegated role that signed it */
	char *keyid;		       /* one key id whose signature counted */
	uint64_t size;		       /* custom.size: total file bytes (informational) */
	uint64_t files;		       /* custom.files: regular files (informational) */
	bool described;		       /* size and files were signed (custom.storkfs) */
	bool plain;   /* the root says consistent_snapshot false: the manifest is at its plain
		       * target path, targets/<name>/<version>.json (TUF 5.7.3) */
	bool counted; /* custom.storkfs.entries is there too: files counts regular files (older
		       * writers put the entry count in files) */
};

void verify_target_fini(struct verify_target *t);

struct verify_client;

/** Start a client from a pinned root file's bytes. The pinned root's signatures must meet its
 * own root threshold; its expiry is not checked here (TUF 5.2).
 * @param now the update start time; every expiry check uses it.
 * @return 0; STORK_EFORMAT; STORK_EBADSIG; -ENOMEM. */
int verify_client_new(const uint8_t *root, size_t len, time_t now, struct verify_client **ret_c);
void verify_client_free(struct verify_client *c);

/* Where a client keeps what it has verified, so that it survives restarts and works offline
 * (the node store's LMDB). Names are file names without version: "root.json",
 * "timestamp.json", "snapshot.json", "targets.json", "<role>.json", and "<N>.root.json" for
 * each trusted root version (the links that chain root.json to the pinned root). save may be
 * given len 0: the entry is forgotten (load may then return it empty, or -ENOENT). */
struct verify_cache {
	/** @return 0 with a malloc'd buffer; -ENOENT; -errno. */
	int (*load)(void *ctx, const char *name, uint8_t **ret_buf, size_t *ret_len);
	/** @return 0; -errno. */
	int (*save)(void *ctx, const char *name, const uint8_t *buf, size_t len);
	void *ctx;
};

/** Give the client a cache, before its first refresh. The client then starts from the cached
 * trusted state instead of the pinned root when the cache holds a root that chains from it:
 * cached root (if its version is >= the pinned one's and it verifies), timestamp, snapshot,
 * targets and delegated roles are loaded as trusted after checking their signatures (not
 * their expiry: TUF 5.2 loads local metadata that way), so versions older than those are
 * refused as rollbacks even after a restart. Each file the client newly trusts is saved.
 * Cached files that do not verify (damaged, another repository's) are ignored, with what
 * depends on them: 0 is returned and the detail (stork_error_detail()) names them, "" when
 * nothing was ignored. The cache (and its ctx) must outlive the client.
 * @return 0; an error from reading the cache (the client is unchanged): the cache's -errno;
 * -EINVAL if the client already has a cache or trusted state; -ENOMEM. */
int verify_client_set_cache(struct verify_client *c, const struct verify_cache *cache);

/** Whether the client holds a complete trusted state (refreshed now, or loaded from the cache)
 * that each_target / find_target / fetch_manifest can use. After a failed refresh (offline),
 * the cached state is still usable: the caller decides, and says so loudly. */
bool verify_client_usable(const struct verify_client *c);

/** Run the TUF client workflow (5.3 root chain up to VERIFY_MAX_ROOT_ROTATIONS with both
 * thresholds and N+1 versions, final root expiry, 5.4 timestamp, 5.5 snapshot, 5.6 top-level
 * targets), each fetch capped at its maximum length.
 * @return 0; STORK_E* with a detail naming the file (e.g. "metadata/3.snapshot.json") and the
 * problem; transport errors from src. */
int verify_client_refresh(struct verify_client *c, const struct verify_source *src);

/** Called for each problem found while walking (the walk goes on). */
typedef void (*verify_problem_fn)(void *ctx, const char *file, int err, const char *detail);

/** Load every delegated role named in the top-level targets (hash and version against the
 * snapshot, threshold signatures by the delegating role's keys, expiry), then call fn for every
 * target a role signs that matches its delegation's paths, in delegation order, a target path
 * reported at most once (the first role in search order wins). Roles or targets that fail are
 * reported to problem and skipped. Needs a successful refresh.
 * @return 0 when nothing failed; the first failure's code otherwise (after walking all). */
int verify_client_each_target(struct verify_client *c, const struct verify_source *src,
			      int (*fn)(void *ctx, const struct verify_target *t), void *ctx,
			      verify_problem_fn problem, void *pctx);

/** Find one target by path through the delegation search (pre-order, terminating, cap on
 * roles visited). @return 0; -ENOENT if no role signs it; STORK_E* for metadata failures. */
int verify_client_find_target(struct verify_client *c, const struct verify_source *src,
			      const char *target_path, struct verify_target *ret_t);

/** Fetch a target's manifest (consistent-snapshot name), check its length and hash, parse it
 * and check that its name and version are the target's. ret_m owned by the caller.
 * @return 0; STORK_EBADLEN; STORK_EBADHASH; STORK_EFORMAT; transport errors. */
int verify_client_fetch_manifest(struct verify_client *c, const struct verify_source *src,
				 const struct verify_target *t, struct verify_manifest **ret_m);
/** The same without a client: a target found earlier (verify_client_find_target) is all it
 * takes, so callers need not hold their client while the manifest transfers. */
int verify_fetch_manifest(const struct verify_source *src, const struct verify_target *t,
			  struct verify_manifest **ret_m);
/** As verify_fetch_manifest, and also hands back the exact bytes fetched: those whose length
 * and SHA-256 the target signs (a repository written by another tool need not hold canonical
 * JSON, so re-dumping the manifest would not give them). Keep these to check the manifest
 * again later or to serve it to others. @param[out] ret_buf, ret_len (optional: both NULL for
 * none) malloc'd, caller frees. @return as verify_fetch_manifest. */
int verify_fetch_manifest_raw(const struct verify_source *src, const struct verify_target *t,
			      struct verify_manifest **ret_m, uint8_t **ret_buf, size_t *ret_len);
/** Check a target's manifest bytes obtained elsewhere (a node store, another node) exactly as
 * verify_fetch_manifest checks what it fetches: the signed length and SHA-256, the parse, and
 * the name and version. Details name the file ("targets/<name>/<hex>.<version>.json"). ret_m
 * owned by the caller. @return 0; STORK_EBADLEN; STORK_EBADHASH; STORK_EFORMAT;
 * STORK_EHOSTILE; STORK_ENAME; -ENOMEM. */
int verify_check_manifest(const struct verify_target *t, const void *buf, size_t len,
			  struct verify_manifest **ret_m);

/** Audit an older version of a metadata file found in a repository directory (for example
 * metadata/3.snapshot.json while snapshot 5 is trusted, or a delegated role's old version):
 * parse it and check that the keys of the role its name says meet the threshold: the keys
 * trusted now, or those an older root or an older delegating role gave it, if that older file
 * passed this audit before (so files signed before a key rotation, a publisher's rekey or a
 * revocation still pass: audit roots from the pinned one up, then targets, then the other
 * roles, in version order). Version and expiry are not checked: old versions are expected to
 * be stale.
 * @param file the path relative to the repository root ("metadata/3.alice.json").
 * @return 0; STORK_EFORMAT; STORK_EBADSIG; -ENOENT if the role is unknown. */
int verify_client_audit_file(struct verify_client *c, const char *file, const uint8_t *buf,
			     size_t len);

/** The trusted version and expiry of a top-level role ("root", "timestamp", "snapshot",
 * "targets") after refresh. @return 0; -ENOENT if not loaded. */
int verify_client_role_info(const struct verify_client *c, const char *role, uint64_t *ret_version,
			    time_t *ret_expires);

/** What every walk of c's trusted state depends on, as one SHA-256: the trusted root, targets
 * and snapshot (which names each delegated role's version), and whether expiry is checked.
 * Two clients of one node store with the same id walk the same roles and, at the same clock
 * and until a role expires, list the same targets: derived data (a mount's catalog) can be
 * kept under this id. @param[out] ret_now (optional) the clock every expiry check uses;
 * ret_roles_expire (optional) the earliest expiry among the delegated roles loaded so far
 * (after a complete walk: all of them), pinned roles a policy loaded too (verify_client_decide,
 * verify_client_each_accepted), VERIFY_NO_EXPIRY when none is. @return 0; -ENOENT
 * when c holds no usable state; -ENOMEM. */
#define VERIFY_NO_EXPIRY ((time_t)INT64_MAX)
int verify_client_state_id(const struct verify_client *c, uint8_t ret_id[VERIFY_HASH_LEN],
			   time_t *ret_now, time_t *ret_roles_expire);

/** A verify_source reading a local repository directory (no transport involved); used by the
 * writer to read its own state, and by tests. Caller frees with verify_dir_source_fini. */
int verify_dir_source_init(struct verify_source *src, const char *repodir);
void verify_dir_source_fini(struct verify_source *src);

#endif
