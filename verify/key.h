/* verify/key.h: ed25519 keys and signatures (verify/key.c). Keys as TUF JSON objects are in
 * verify/cjson.h, verify/'s private JSON header.
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h); outputs are named ret_* and written only on success; _new/_free own
 * heap objects and every _free accepts NULL.
 */
#ifndef STORKFS_VERIFY_KEY_H
#define STORKFS_VERIFY_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verify/hash.h"

/* ------------------------------------------------------------------------------------------ */
/* ed25519 keys (OpenSSL EVP_PKEY_ED25519).
 *
 * Private key files are PEM PKCS#8 (mode 0600); public key files (KEYFILE.pub) are PEM
 * SubjectPublicKeyInfo. In metadata a key is the TUF object
 *   {"keytype":"ed25519","keyval":{"public":"<64 hex>"},"scheme":"ed25519"}
 * and its key id is the hex SHA-256 of that object's canonical JSON. */

#define VERIFY_SIG_LEN	 64
#define VERIFY_KEYID_HEX VERIFY_HASH_HEX

struct verify_key;

/** Generate a new private key. @return 0; -ENOMEM; -EIO. */
int verify_key_generate(struct verify_key **ret_key);
/** Make a key from raw RFC 8032 bytes: pub (32 bytes) always, priv (32-byte seed) or NULL.
 * When priv is given pub must match it. @return 0; STORK_EFORMAT. */
int verify_key_from_raw(const uint8_t pub[32], const uint8_t *priv, struct verify_key **ret_key);
/** Load a private key (PEM PKCS#8 ed25519). Refuses files readable by group or others
 * with -EPERM and a detail saying to chmod 600. @return 0; -errno; STORK_EFORMAT. */
int verify_key_load_private(const char *path, struct verify_key **ret_key);
/** Load a public key: PEM SubjectPublicKeyInfo, a private key file, or a TUF key object in
 * JSON. @return 0; -errno; STORK_EFORMAT. */
int verify_key_load_public(const char *path, struct verify_key **ret_key);
/** Write the private key to path (O_EXCL, mode 0600, fsync) and its public half to path.pub
 * (0644). Refuses to overwrite: -EEXIST. @return 0; -errno; -EINVAL if the key is public only. */
int verify_key_save(const struct verify_key *key, const char *path);
/** The key id, 64 hex digits; valid as long as the key. */
const char *verify_key_id(const struct verify_key *key);
/** Whether the key has its private half. */
bool verify_key_is_private(const struct verify_key *key);
/** Sign msg. @return 0; -EINVAL if the key is public only; -EIO. */
int verify_key_sign(const struct verify_key *key, const void *msg, size_t len,
		    uint8_t ret_sig[VERIFY_SIG_LEN]);
/** Check a signature. @return 0 if valid; STORK_EBADSIG otherwise. Thread-safe. */
int verify_key_check(const struct verify_key *key, const void *msg, size_t len,
		     const uint8_t sig[VERIFY_SIG_LEN]);
void verify_key_free(struct verify_key *key);

#endif
