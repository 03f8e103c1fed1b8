/* verify/control.h: central package control lists (verify/README.md "Control lists"): per
 * group of nodes, the packages (and optional version pins) the slices that follow the group
 * should have. A list is a TUF target like a manifest, at the target path
 * "control/<group>/list.json", signed by a role the repository delegates "control/<group>/STAR"
 * to; a slice follows one group through its policy (`control GROUP delegated` or `control
 * GROUP role ROLE keys K[,K...] [threshold N]`, verify/policy.h).
 *
 * Conventions as in verify/verify.h: 0 or a negative errno / STORK_E* code, ret_* outputs
 * written only on success, a one-line detail on failure; _free accepts NULL.
 */
#ifndef STORKFS_VERIFY_CONTROL_H
#define STORKFS_VERIFY_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verify/policy.h"
#include "verify/tuf.h"

#define VERIFY_CONTROL_MAX_LEN	(1024 * 1024) /* bytes of one list file */
#define VERIFY_CONTROL_MAX_PKGS 10000	      /* packages in one list */

struct verify_control_pkg {
	char *name;
	char *version; /* a pin: exactly this version; NULL: any (the newest the slice accepts) */
};

struct verify_control_list {
	char *group;
	uint64_t version; /* 1, 2, ...: one more at each publish of the group's list */
	struct verify_control_pkg *pkgs; /* sorted by name, each name once */
	size_t n;
};

/** Whether group is a group name (a package name's rules: 1..128 bytes,
 * [A-Za-z0-9][A-Za-z0-9+._-]*). @return 0; STORK_ENAME naming the problem. */
int verify_check_group_name(const char *group);
/** The target path of group's list, "control/<group>/list.json" (malloc'd; NULL: -ENOMEM). */
char *verify_control_target_path(const char *group);
/** Whether a target path is a control list's ("control/X/list.json"): listings of packages
 * pass over these paths without reporting them. */
bool verify_control_path(const char *path);

/** A new empty list of group at version. @return 0; STORK_ENAME; -ENOMEM. */
int verify_control_new(const char *group, uint64_t version, struct verify_control_list **ret_l);
/** Add NAME or NAME=VERSION ("hello", "hello=2.10-3"). @return 0; STORK_ENAME (a bad name or
 * version, named); -EEXIST (the name is in the list already); -E2BIG (past
 * VERIFY_CONTROL_MAX_PKGS); -ENOMEM. */
int verify_control_add(struct verify_control_list *l, const char *spec);
void verify_control_list_free(struct verify_control_list *l);

/** The list as canonical JSON (packages sorted by name). @param[out] ret_buf malloc'd.
 * @return 0; -ENOMEM. */
int verify_control_dump(const struct verify_control_list *l, char **ret_buf, size_t *ret_len);
/** Parse a list strictly (unknown keys, a bad name or version, a name twice, unsorted packages
 * are refused). @param file names it in the detail ("targets/control/web/<hex>.list.json:
 * packages[2]: ..."). @return 0; STORK_EFORMAT; -ENOMEM. */
int verify_control_parse(const void *buf, size_t len, const char *file,
			 struct verify_control_list **ret_l);

/** The list a slice with policy p follows, as the trusted metadata signs it (the client must be
 * usable): for `control GROUP delegated` the target the repository's delegations give (a key
 * p refuses breaks the threshold as for packages); for `control GROUP role ROLE keys K...`
 * only role ROLE, listed in the trusted snapshot, signed by a threshold of p's keys K (TAP 13,
 * as for a pinned `trust` line). ret_t is the target (name and version NULL; role and keyid
 * set); the caller fetches it with verify_fetch_control (the client need not be held then).
 * @return 0; -ENODATA (p follows no group); -ENOENT (no list is signed for the group, in the
 * role the policy names or anywhere: detail); STORK_EBADSIG (signed by keys the policy does
 * not trust for the group: the detail names the policy line, the file, the role and the
 * signing key); other load errors (detail). */
int verify_client_control(struct verify_client *c, const struct verify_source *src,
			  const struct verify_policy *p, struct verify_target *ret_t);
/** Fetch the list a target names ("targets/control/<group>/<sha256>.list.json"), check its
 * signed length and SHA-256, parse it and check it is group's. @return 0; STORK_EBADLEN;
 * STORK_EBADHASH; STORK_ETOOBIG; STORK_EFORMAT; transport errors. */
int verify_fetch_control(const struct verify_source *src, const struct verify_target *t,
			 const char *group, struct verify_control_list **ret_l);

#endif
