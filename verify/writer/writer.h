/* verify/writer/writer.h: the whole contract of the repository writer, the publisher's side of
 * verify/: a library of its own (stork_writer) that only the `stork` tool's publisher commands
 * link; the node (storkfs, fs/, the node's commands) never does.
 *
 * Conventions as in verify/verify.h: 0 or a negative errno / STORK_E* code, ret_* outputs
 * written only on success, a one-line detail through stork_errorf() on failure. The operations
 * are not thread-safe with each other in one process; between processes they serialize on the
 * repository's lock. The formats are in verify/README.md.
 */
#ifndef STORKFS_VERIFY_WRITER_H
#define STORKFS_VERIFY_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "verify/hash.h"
#include "verify/control.h"
#include "verify/key.h"
#include "verify/manifest.h"

/* The repository writer (the publisher's side). Keys of the top-level roles live in KEYDIR as
 * root.key, targets.key, snapshot.key, timestamp.key; the served tree never holds a private
 * key. All writes are temporary file + fsync + rename; timestamp.json is renamed last, so a
 * crash leaves the previous state intact. Writers serialize on flock() of the repository's
 * metadata directory. */

struct verify_repo_opts {
	int64_t root_expiry;	  /* seconds; 0 = default (365 days) */
	int64_t targets_expiry;	  /* 0 = 365 days; also the delegated roles' expiry */
	int64_t snapshot_expiry;  /* 0 = 7 days */
	int64_t timestamp_expiry; /* 0 = 1 day */
	time_t now;		  /* 0 = time(NULL); tests set it */
	/* Tests only: publish a version that clients will not see (another role signs it in
	 * search order); the CLI never sets it. */
	bool allow_shadowed;
	/* verify_repo_publish: the package's one-line description (valid UTF-8, else left out),
	 * signed with the target as custom.storkfs.summary for the browse site; NULL: none. */
	const char *summary;
	/* verify_repo_site: rewrite the page of this package only (and the index, and any page
	 * that is missing): what a publish changed, without reading every manifest. NULL: all. */
	const char *site_only;
};

/** Create KEYDIR (0700, must not be inside repodir) with four new keys, and the signed version
 * 1 of every top-level role in repodir (created if missing; must be empty of metadata).
 * @param[out] ret_root_path path of metadata/1.root.json (malloc'd) that clients pin.
 * @return 0; -EEXIST if the repository exists; -EINVAL if keydir is inside repodir; -errno. */
int verify_repo_init(const char *repodir, const char *keydir, const struct verify_repo_opts *o,
		     char **ret_root_path);

/** Delegate name patterns to a publisher key as role `role` (new, or patterns added to an
 * existing role with the same key). Re-signs targets, snapshot, timestamp.
 * @return 0; STORK_ENAME; -EEXIST if the role exists with another key; -errno. */
int verify_repo_delegate(const char *repodir, const char *keydir, const struct verify_key *pub,
			 const char *role, const char *const *patterns, size_t npatterns,
			 const struct verify_repo_opts *o);

/** Delegate the control lists of groups matching the group patterns (verify/control.h: the
 * TUF paths "control/<pattern>/STAR") to pub as role `role`, as verify_repo_delegate does for
 * package names. @return as verify_repo_delegate. */
int verify_repo_delegate_control(const char *repodir, const char *keydir,
				 const struct verify_key *pub, const char *role,
				 const char *const *groups, size_t ngroups,
				 const struct verify_repo_opts *o);

/** Publish l (its group and packages; its version is ignored) as the group's control list,
 * signed by publisher (private) in the first delegated role whose key it is and whose paths
 * match "control/<group>/list.json": the list's version is one more than the list clients see
 * now (1 when none), then role, snapshot, timestamp as for a package.
 * @param[out] ret_version (optional) the version published (or the current one).
 * @return 0 (published); 1 (the current list has exactly these packages: nothing written);
 * STORK_EPATTERN (the key may not sign the group's list: detail); -errno. */
int verify_repo_publish_control(const char *repodir, const char *keydir,
				const struct verify_key *publisher,
				const struct verify_control_list *l,
				const struct verify_repo_opts *o, uint64_t *ret_version);

/** Publish a manifest signed by publisher (private). Finds the delegated role whose key it
 * is and whose patterns match the name, writes the manifest as a target, signs a new version
 * of that role with the publisher key, then new snapshot and timestamp with KEYDIR's keys.
 * Replacing an existing version with different content is refused (-EEXIST); the same
 * content again is a no-op that returns 1.
 * @return 0 (published); 1 (already there, identical); STORK_EPATTERN (no role of this key
 * may sign this name: detail lists the key's patterns); -errno. */
int verify_repo_publish(const char *repodir, const char *keydir, const struct verify_key *publisher,
			const struct verify_manifest *m, const struct verify_repo_opts *o);

/** Check, without changing anything, that publisher may publish name: some delegated role
 * lists its key and has a pattern matching the name. Lets publish refuse before importing.
 * @param[out] ret_role the role's name (malloc'd). @return 0; STORK_EPATTERN (detail lists the
 * key's patterns, or says the key is not delegated and how to delegate it); -errno. */
int verify_repo_may_publish(const char *repodir, const struct verify_key *publisher,
			    const char *name, char **ret_role);

/** Re-sign snapshot and timestamp with fresh expiry (the operator's timer). Also removes
 * temporary files older than an hour left by killed writers. @return 0; -errno. */
int verify_repo_refresh(const char *repodir, const char *keydir, const struct verify_repo_opts *o);

/** Give each top-level role in roles ("root", "targets", "snapshot", "timestamp"; repeats are
 * ignored) a new key: the new key is saved as KEYDIR/ROLE.key.new before any metadata names
 * it; root N+1 lists it (unused keys dropped, threshold 1) and is signed by the old and the new
 * root key (TUF 5.3); a rotated targets is re-signed at version+1; snapshot and timestamp are
 * re-signed; every file written before N+1.root.json (the commit point) is signed by the old
 * and the new key of its role, so it verifies under either root. Then KEYDIR/ROLE.key becomes
 * the new key and the old one stays as KEYDIR/ROLE.key.old-<first 16 hex of its key id>. A
 * writer that finds a ROLE.key.new that the committed root lists finishes that switch; one the
 * root does not list (a rotation that crashed before its commit) is reused by the next rotate.
 * Needs the current key of root, snapshot, timestamp and of each rotated role.
 * @return 0; -EINVAL (no role, or a name that is not a top-level role: the detail says how to
 * rotate a delegated one); repo_load_key's errors (a key missing or not the one the root lists:
 * nothing is written then); -errno. */
int verify_repo_rotate(const char *repodir, const char *keydir, const char *const *roles,
		       size_t nroles, const struct verify_repo_opts *o);

/** Give the delegated role `role` the key newkey (private) instead of its current key(s): a
 * new version of the role's file with the same targets signed by newkey (when the snapshot
 * lists the role), the top-level delegation listing only newkey (threshold 1), then snapshot
 * and timestamp. The old key can no longer publish in the role. Nothing is written when the
 * role already has exactly this key.
 * @return 0; -ENOENT if targets delegates no such role (the detail lists the roles it does);
 * -EINVAL for a top-level role name or a public-only key; STORK_ENAME; -errno. */
int verify_repo_rekey(const char *repodir, const char *keydir, const char *role,
		      const struct verify_key *newkey, const struct verify_repo_opts *o);

/** Remove the delegation of `role` from the top-level targets: clients no longer find its
 * packages. The role stays listed in the snapshot (TUF forbids dropping a listed role): at
 * version+1, a file with no targets signed by the targets key, which the top-level targets
 * marks revoked ("x-storkfs-revoked"). Delegating the name again (verify_repo_delegate) starts
 * the role empty, at the next version above that one, at its first publish.
 * @return 0; -ENOENT if targets delegates no such role (the detail lists the roles it does);
 * -EINVAL for a top-level role name; STORK_ENAME; -errno. */
int verify_repo_revoke(const char *repodir, const char *keydir, const char *role,
		       const struct verify_repo_opts *o);

/** Withdraw a published version: the next version of the delegated role that signs name
 * version (for clients: the role their search finds it in), without it, signed by publisher
 * (private; must be that role's key), then snapshot and timestamp. Mounts stop showing the
 * version at their next refresh. Its manifest, pack and objects stay until verify_repo_gc and
 * the object sweep find nothing references them.
 * @return 0; -ENOENT (not published); STORK_EPATTERN (another role's key signs it: the detail
 * names the role); -EINVAL (a public key); STORK_ENAME; -errno. */
int verify_repo_remove(const char *repodir, const char *keydir, const struct verify_key *publisher,
		       const char *name, const char *version, const struct verify_repo_opts *o);

struct verify_repo_gc_stats {
	uint64_t snapshots_kept, manifests_kept;
	uint64_t metadata_files, metadata_bytes; /* deleted (or, dry run, that would be) */
	uint64_t manifests, manifest_bytes;
	uint64_t packs, pack_bytes;
};

/** Delete the metadata versions, manifests and packs that nothing reachable from the `keep`
 * newest snapshot versions names (never a root version or timestamp.json; verify/README.md
 * "Retention"), under the metadata lock; with dry_run only count them. Nothing is deleted when
 * a kept file cannot be read or parsed. The caller then sweeps the objects (store/import's
 * store_import_sweep) with ret_objs, and must hold verify_repo_lock_tree exclusively from
 * before this call to the end of the sweep, so that no publish adds objects meanwhile.
 * @param[out] ret_objs sorted, distinct hashes of every object a kept manifest names
 * (malloc'd; free it). @return 0; -EINVAL (keep 0); repo_open's errors; STORK_EFORMAT;
 * -errno. */
int verify_repo_gc(const char *repodir, unsigned keep, bool dry_run,
		   const struct verify_repo_opts *o, struct verify_repo_gc_stats *ret_st,
		   uint8_t (**ret_objs)[VERIFY_HASH_LEN], size_t *ret_nobjs);

/** flock() REPODIR itself: shared by each publish from its first object to its commit,
 * exclusive by gc. *ret_fd holds the lock until closed. @return 0; -errno. */
int verify_repo_lock_tree(const char *repodir, bool exclusive, int *ret_fd);
/* What verify_repo_site wrote. */
struct verify_site_stats {
	size_t packages, versions;
	size_t pages; /* package pages written (all, or those verify_repo_opts.site_only asked) */
	size_t unreadable; /* versions whose manifest could not be read (shown as such) */
};

/** Write the browse site (verify/README.md "Browse site"): REPODIR/site/index.html (the
 * packages with their latest version, signer and signed description; the metadata's versions
 * and expiry, with a warning when a role has less than a quarter of its validity left; the
 * top-level roles' key ids; how a node pins the root and mounts) and REPODIR/site/p/NAME.html
 * per package (every version in cmp's order with size, files, signer, dependencies linked to
 * the packages they name, and the files added, removed and changed since the version before).
 * Pages of packages no longer signed are removed. Reads the trusted state as a client would
 * (expiry not enforced), under the repository's lock; each page is written atomically, the
 * index last. The pages are unsigned and say so; clients never read them. With o->site_only,
 * only that package's manifests are read and its page written, besides the index and pages
 * that are missing (another package's page may then link to fewer dependencies than a full
 * rewrite would: the next full one, `stork repo refresh` or `stork repo site`, catches up).
 * @param keydir (may be NULL) where the operator's expiry durations are saved.
 * @param cmp orders versions (dpkg's order: fs_version_cmp; verify/ has none of its own).
 * @return 0; repo_open's errors; -errno (the detail names the page). */
int verify_repo_site(const char *repodir, const char *keydir,
		     int (*cmp)(const char *a, const char *b), const struct verify_repo_opts *o,
		     struct verify_site_stats *ret_st);

#endif
