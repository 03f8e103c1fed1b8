/* verify/name.h: package names, versions, role names, name patterns and target paths
 * (verify/name.c).
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h); outputs are named ret_* and written only on success; _new/_free own
 * heap objects and every _free accepts NULL.
 */
#ifndef STORKFS_VERIFY_NAME_H
#define STORKFS_VERIFY_NAME_H

#include <stdbool.h>

/* ------------------------------------------------------------------------------------------ */
/* Names. Package names and versions become directory names, publisher role names become
 * file names. The documented charset (verify/README.md):
 *   package name: 1..128 bytes, [A-Za-z0-9][A-Za-z0-9+._-]*
 *   version:      1..128 bytes, [A-Za-z0-9][A-Za-z0-9+._~:-]*, and not "latest"
 *   role name:    1..64 bytes,  [a-z0-9][a-z0-9_-]*, not one of root/targets/snapshot/timestamp
 * A name pattern is a package name that may also contain '*', '?' and [...] (fnmatch). */

/** @return 0; STORK_ENAME with a detail naming the offending character and its position. */
int verify_check_package_name(const char *name);
int verify_check_version(const char *version);
int verify_check_role_name(const char *role);
/** A version as publishing takes it: verify_check_version, and the syntax errors dpkg refuses
 * (`dpkg --compare-versions` fails on them): an epoch (before the first ':') that is empty, not
 * a number or above INT_MAX; nothing after the epoch's ':'; an empty upstream version; an empty
 * revision (a trailing '-'). What dpkg only warns about (an upstream version that does not
 * start with a digit, '_') is accepted. @return 0; STORK_ENAME naming the rule. */
int verify_check_version_publish(const char *version);
int verify_check_name_pattern(const char *pattern);
/** Whether a package name matches a name pattern (fnmatch without FNM_PATHNAME quirks:
 * names never contain '/'). */
bool verify_name_matches(const char *pattern, const char *name);

/** The TUF target path of a package version: "<name>/<version>.json" (malloc'd). NULL on
 * -ENOMEM. */
char *verify_target_path(const char *name, const char *version);
/** Split a target path back. @return 0; STORK_EFORMAT if it is not name/version.json with
 * valid name and version. ret_* are malloc'd. */
int verify_target_split(const char *path, char **ret_name, char **ret_version);
/** Whether path, named by metadata, may be opened or requested below a repository's root
 * (verify/README.md, "Repository paths"): the rules of a manifest's paths (relative,
 * components never empty, "." or "..", no control character, at most 4096 bytes, components
 * at most 255, valid UTF-8) and no backslash. Paths are used as they are, never percent-decoded
 * ("%2e%2e" is a name). The one check of every source: verify's directory source and fetch/'s
 * fetcher.
 * @return 0; -EINVAL with a detail naming the (quoted) path and its problem. Thread-safe. */
int verify_check_relpath(const char *path);

#endif
