/* verify/hash.h: SHA-256 and hex (verify/hash.c).
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h); outputs are named ret_* and written only on success; _new/_free own
 * heap objects and every _free accepts NULL.
 */
#ifndef STORKFS_VERIFY_HASH_H
#define STORKFS_VERIFY_HASH_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* Hashes: SHA-256 through OpenSSL EVP. */

#define VERIFY_HASH_LEN 32
#define VERIFY_HASH_HEX (2 * VERIFY_HASH_LEN + 1)

struct verify_hash;

/** Start a streaming SHA-256. @return 0; -ENOMEM. */
int verify_hash_new(struct verify_hash **ret_h);
/** Feed bytes. @return 0; -EIO if OpenSSL fails. */
int verify_hash_update(struct verify_hash *h, const void *buf, size_t len);
/** Finish; h may not be updated afterwards (free it). @return 0; -EIO. */
int verify_hash_final(struct verify_hash *h, uint8_t ret_digest[VERIFY_HASH_LEN]);
void verify_hash_free(struct verify_hash *h);

/** One-shot SHA-256 of a buffer. @return 0; -EIO. */
int verify_sha256(const void *buf, size_t len, uint8_t ret_digest[VERIFY_HASH_LEN]);
/** The same, also as lower-case hex; ret_digest may be NULL. @return 0; -EIO. */
int verify_sha256_hex(const void *buf, size_t len, uint8_t ret_digest[VERIFY_HASH_LEN],
		      char ret_hex[VERIFY_HASH_HEX]);

/** Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void verify_hex(const uint8_t *in, size_t len, char *out);
/** Parse exactly 2*len lower- or upper-case hex digits. @return 0; STORK_EFORMAT. */
int verify_unhex(const char *hex, uint8_t *out, size_t len);

#endif
