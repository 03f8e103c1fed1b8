/* verify/cjson.h: private to verify/ (and its writer library): JSON through jansson, the only
 * place <jansson.h> is included. Canonical JSON (verify/cjson.c), strict parsing, and keys as
 * TUF key objects (verify/key.c). Other modules use verify/json.h, which hides jansson.
 */
#ifndef STORKFS_VERIFY_CJSON_H
#define STORKFS_VERIFY_CJSON_H

#include <stddef.h>

#include <jansson.h>

#include "verify/key.h"

/* ------------------------------------------------------------------------------------------ */
/* Canonical JSON, exactly as TUF (securesystemslib / OLPC) defines it: objects with keys
 * sorted by their UTF-8 bytes, no insignificant whitespace, strings escaping only '"' and '\\'
 * (every other byte verbatim), integers only (no reals). */

/** Serialize j. @param[out] ret_buf malloc'd, NUL-terminated, caller frees; ret_len without
 * the NUL. @return 0; -EINVAL for a real number or a string that is not UTF-8; -ENOMEM. */
int verify_cjson_dump(const json_t *j, char **ret_buf, size_t *ret_len);

/** Parse JSON (jansson), rejecting duplicate keys, NUL in strings and anything after the
 * value. @param what names the input in the error detail. @return 0; STORK_EFORMAT. */
int verify_json_parse(const void *buf, size_t len, const char *what, json_t **ret_json);

/* ------------------------------------------------------------------------------------------ */
/* Keys as TUF key objects (verify/key.c). */

/** The key as a TUF key object (new reference, caller must json_decref). NULL on -ENOMEM. */
json_t *verify_key_to_json(const struct verify_key *key);
/** Parse a TUF key object; only ed25519/ed25519 is accepted. @return 0; STORK_EFORMAT
 * (detail names the field); STORK_EUNSUPPORTED for other key types. */
int verify_key_from_json(const json_t *obj, struct verify_key **ret_key);

#endif
