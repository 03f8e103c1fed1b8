/* fs/install/install.h: installing packages into a slice: dependency resolution
 * (fs/install/resolve.c), a SAT solve with libsolv under Debian's version rules over the
 * versions a slice's policy accepts, and moving a slice to a new generation of its installed
 * set (fs/install/apply.c; fs/README.md "Installing"). The `stork` tool links this library;
 * storkfs does not.
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h) with the calling thread's error detail set; outputs are named ret_*
 * and written only on success.
 */
#ifndef STORKFS_FS_INSTALL_H
#define STORKFS_FS_INSTALL_H

#include <stdbool.h>
#include <stddef.h>

#include "fs/fs.h"
#include "store/store.h"
#include "verify/manifest.h"

/* A version the slice's policy refused: named in the explanation when a dependency could only
 * have been met by it. */
struct fs_install_refusal {
	const char *name;
	const char *version;
	const char *why; /* the policy's verdict (verify_decision.why): rule and signer */
};

/* One requested package: NAME, or NAME=VERSION (version not NULL). */
struct fs_install_request {
	const char *name;
	const char *version;
};

/** Choose the versions to install so that every request and every dependency of every chosen
 * version holds, each package name at most once. Dependencies are the manifests' depends
 * (.deb Depends and Pre-Depends, .rpm Requires): alternatives "a | b", versions compared by
 * Debian's rules (dpkg --compare-versions). Of alternatives it takes the first that can be
 * installed, as apt does; of versions, the newest. A version satisfies a dependency on its own
 * name and on what it provides; Conflicts and Breaks (nothing is installed yet: the same) keep
 * two versions apart. Manifests published before spec_version 2 record no Provides,
 * Conflicts or Breaks (fs/README.md "Dependency resolution").
 * @param pkgs the versions the slice accepts (borrowed during the call)
 * @param refused the versions it refused, for the explanation (may be NULL when n is 0)
 * @param ret_chosen malloc'd indexes into pkgs, sorted by package name; the caller frees it
 * @return 0; STORK_EMISSING when no set satisfies the request: the detail names the request or
 * package, the dependency that nothing accepted meets or the conflict, and for a dependency
 * that only a refused version would meet, the policy's verdict on it; -ENOMEM. Thread-safe
 * (each call has its own solver). */
int fs_install_resolve(const struct verify_manifest *const *pkgs, size_t npkgs,
		       const struct fs_install_refusal *refused, size_t nrefused,
		       const struct fs_install_request *want, size_t nwant, size_t **ret_chosen,
		       size_t *ret_n);

/** fs_install_resolve, favoring the versions in keep (NAME=VERSION each; versions no longer
 * accepted are ignored) wherever they still meet every dependency: what `stork install` and
 * `stork remove` use so that the packages already installed keep their versions. */
int fs_install_resolve_keep(const struct verify_manifest *const *pkgs, size_t npkgs,
			    const struct fs_install_refusal *refused, size_t nrefused,
			    const struct fs_install_request *want, size_t nwant,
			    const struct fs_install_request *keep, size_t nkeep,
			    size_t **ret_chosen, size_t *ret_n);

/* ------------------------------------------------------------------------------------------ */
/* Slices' installed sets (fs/install/apply.c). */

/* The slice to change. */
struct fs_install_slice {
	struct store *store;
	struct fs_repo *repo; /* refreshed; opened on store (fs_install_rollback: unused) */
	const char *repo_id;  /* the repository's identity in the store (fs_repo_id) */
	const char *dir;      /* the slices directory (storkfs -o slices=DIR) */
	const char *name;     /* the slice: DIR/NAME.policy is its policy, DIR/NAME.install its
			       * wanted list */
};

/* fs_install_apply's flags. */
#define FS_INSTALL_UPGRADE 1u /* the newest accepted versions (else installed ones are kept) */
#define FS_INSTALL_DRY_RUN 2u /* resolve and check, change nothing */

/** Move a slice to the wanted list (each "NAME" or "NAME=VERSION"): read its policy, list the
 * versions it accepts and their manifests (verified metadata only: no object is fetched),
 * resolve (fs_install_resolve_keep, keeping the current generation's versions unless
 * FS_INSTALL_UPGRADE), check that the chosen packages' trees merge (fs_root_merge), write the
 * wanted list to DIR/NAME.install (atomically), then record the chosen versions as the
 * slice's next generation and make it current (store_gen_commit: whole or not at all). When
 * the chosen set is the current generation's, nothing is written and the current generation
 * is returned. The function the daemon's convergence calls as well as `stork install`,
 * `remove` and `upgrade`.
 * @param[out] ret_g (may be NULL) the generation now current, caller frees (store_gen_free);
 * with FS_INSTALL_DRY_RUN the one it would make (number 0).
 * @return 0; STORK_EMISSING (no installable set: the detail names the package, the dependency
 * or conflict, and the policy rule); -EEXIST / STORK_EHOSTILE (two packages' files clash:
 * named, as fs_root_merge); -EAGAIN (another process changed the slice meanwhile); -ENOENT (no
 * such slice: DIR/NAME.policy is missing); STORK_E* of the policy or the metadata; -errno.
 * Not thread-safe with itself on one slice (processes are serialised by the generation's
 * check). */
int fs_install_apply(const struct fs_install_slice *sl, const char *const *wanted, size_t nwanted,
		     unsigned flags, struct store_gen **ret_g);
/** fs_install_apply with FS_INSTALL_UPGRADE for the packages named in upgrade only (the others
 * keep their versions where they fit). */
int fs_install_apply_some(const struct fs_install_slice *sl, const char *const *wanted,
			  size_t nwanted, const char *const *upgrade, size_t nupgrade,
			  unsigned flags, struct store_gen **ret_g);

/** Serialise changes of one slice between processes: an exclusive flock(2) on DIR/NAME.policy,
 * waited for. Hold it from reading the wanted list to fs_install_apply's return, so that two
 * `stork install`s at once each add their package. @param[out] ret_fd release with
 * fs_install_unlock. @return 0; -ENOENT (no such slice: detail); -errno. */
int fs_install_lock(const struct fs_install_slice *sl, int *ret_fd);
void fs_install_unlock(int fd);

/** A slice's wanted list, DIR/NAME.install (empty when the file does not exist).
 * @param[out] ret_wanted malloc'd array of malloc'd strings (fs_install_wanted_free).
 * @return 0; STORK_EFORMAT (a line that is not NAME or NAME=VERSION: the detail names the file
 * and line); -errno. */
int fs_install_wanted(const char *dir, const char *name, char ***ret_wanted, size_t *ret_n);
void fs_install_wanted_free(char **wanted, size_t n);

/** Return the slice to the generation that was current when its current one was made (the
 * wanted list too); a second rollback goes one further back.
 * @param[out] ret_g (may be NULL) the generation now current. @return 0; -ENOENT (no earlier
 * generation: the detail says so); -EAGAIN; -errno. */
int fs_install_rollback(const struct fs_install_slice *sl, struct store_gen **ret_g);

/** The (package, version) pairs installed in a slice: its current generation (for pins and
 * eviction: each pair's manifest hash names its objects). @return as store_gen_get. */
int fs_install_installed(struct store *s, const char *repo_id, const char *slice,
			 struct store_gen **ret_g);

#endif
