/* verify/verify.h: the verify module's public headers in one, for a file that uses most of
 * them. A file that uses one concern includes that header instead:
 *
 *   verify/error.h     error codes, storkfs_strerror(), the calling thread's error detail
 *   verify/array.h     growing a heap array
 *   verify/atomic.h    writing a whole file atomically
 *   verify/hash.h      SHA-256 and hex
 *   verify/key.h       ed25519 keys and signatures
 *   verify/text.h      UTF-8 and bidirectional controls in untrusted text
 *   verify/name.h      package names, versions, role names, patterns, target paths
 *   verify/manifest.h  package manifests
 *   verify/tuf.h       the TUF client: sources, trusted state, cache, targets
 *   verify/policy.h    a slice's trust policy and its decisions
 *   verify/control.h   central package control lists (per group, the wanted packages)
 *   verify/json.h      JSON documents without jansson (status, cached metadata)
 *
 * The repository writer, the publisher's side, is a library of its own:
 * verify/writer/writer.h. verify/'s private headers (verify/cjson.h: jansson and canonical
 * JSON; verify/meta.h, verify/client.h, verify/trusted.h, verify/internal.h) are not here, and
 * <jansson.h> is included nowhere outside verify/. The formats are documented in
 * verify/README.md.
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code; outputs are named ret_* and written only on success; _new/_free own heap objects and
 * every _free accepts NULL. When a function fails it leaves a one-line explanation naming the
 * thing and the problem in the calling thread's error detail (stork_error_detail()).
 */
#ifndef STORKFS_VERIFY_H
#define STORKFS_VERIFY_H

#include "verify/array.h"
#include "verify/atomic.h"
#include "verify/control.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/json.h"
#include "verify/key.h"
#include "verify/manifest.h"
#include "verify/name.h"
#include "verify/policy.h"
#include "verify/text.h"
#include "verify/tuf.h"

#endif
