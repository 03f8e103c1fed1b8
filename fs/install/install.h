/* fs/install/install.h: installing packages into a slice. For now: dependency resolution
 * (fs/install/resolve.c), a SAT solve with libsolv under Debian's version rules over the
 * versions a slice's policy accepts. The `stork` tool links this library; storkfs does not.
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h) with the calling thread's error detail set; outputs are named ret_*
 * and written only on success.
 */
#ifndef STORKFS_FS_INSTALL_H
#define STORKFS_FS_INSTALL_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
