/* verify/trusted.h: the trusted state of a repository, as the repository writer (verify/writer/)
 * builds on it: its root, its top-level roles, their keys and versions, and the roles the
 * top-level targets delegates. Private to verify/ and verify/writer/.
 *
 * The state is a struct verify_client (verify/verify.h) after a successful
 * verify_client_refresh: every file in it was checked from the pinned root on (signatures and
 * thresholds, versions, lengths and hashes, and expiry unless trusted_ignore_expiry was
 * called). These functions read that state without looking at the client's own structs, which
 * are the client's business (verify/client.h). What they return is the metadata layer's
 * (struct meta, struct meta_delegation, struct meta_file: verify/meta.h), borrowed from the
 * client: it stays valid until the next verify_client_refresh or verify_client_free of c.
 * Like the client, not thread-safe: one thread uses one client at a time. */
#ifndef STORKFS_VERIFY_TRUSTED_H
#define STORKFS_VERIFY_TRUSTED_H

#include "verify/meta.h"
#include "verify/tuf.h"

/** From now on, refreshes of c accept metadata past its expiry (signatures, thresholds,
 * versions, lengths and hashes are still checked): the writer re-signs expired roles, so it
 * must be able to read them. Call it before verify_client_refresh. */
void trusted_ignore_expiry(struct verify_client *c);

/** The trusted metadata of a top-level role: META_ROOT always, META_TIMESTAMP, META_SNAPSHOT
 * and META_TARGETS after a successful verify_client_refresh (NULL before). Borrowed from c. */
const struct meta *trusted_meta(const struct verify_client *c, enum meta_type type);

/** Who may sign the top-level role `role`: its key ids and threshold as the trusted root lists
 * them. Never NULL; borrowed from c. */
const struct meta_delegation *trusted_toprole(const struct verify_client *c,
					      enum meta_toprole role);

/** The trusted snapshot's entry for the role file `name` ("targets.json", "alice.json"): the
 * version it lists. NULL when the snapshot does not list it, or before a refresh. */
const struct meta_file *trusted_snapshot_entry(const struct verify_client *c, const char *name);

/** The i-th delegation of the trusted top-level targets, in the order clients search them;
 * NULL when i is past the last one (or before a refresh). Borrowed from c. */
const struct meta_delegation *trusted_delegation(const struct verify_client *c, size_t i);

/** The trusted top-level targets' delegation of the role `name`; NULL if it delegates none. */
const struct meta_delegation *trusted_find_delegation(const struct verify_client *c,
						      const char *name);

/** Load the delegated role that del (one of trusted_delegation's) names, as a client would:
 * the version the trusted snapshot lists, read from src, checked against that entry and signed
 * by a threshold of del's keys (the client keeps it until its snapshot changes). Expiry as set
 * for c.
 * @param[out] ret_m the role's metadata, borrowed from c.
 * @return 0; -ENOENT (the snapshot does not list the role: nothing was published in it);
 * STORK_EMISSING (listed, but src does not have it); STORK_EBADSIG; STORK_EVERSION;
 * STORK_EBADLEN; STORK_EBADHASH; STORK_EFORMAT; STORK_EEXPIRED; STORK_EROLLBACK; -errno. Each
 * with a detail naming the file. */
int trusted_load_role(struct verify_client *c, const struct verify_source *src,
		      const struct meta_delegation *del, const struct meta **ret_m);

#endif
