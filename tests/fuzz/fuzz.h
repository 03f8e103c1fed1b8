/* tests/fuzz/fuzz.h: what the libFuzzer targets share (tests/fuzz/README.md).
 *
 * Every target is deterministic: fixed keys, a fixed clock for expiry checks, a fixed jansson
 * hash seed, no network. A target stops with fuzz_bug() when the code under test breaks its
 * contract (verify/verify.h, store/store.h), which libFuzzer reports like any crash. */
#ifndef STORKFS_FUZZ_H
#define STORKFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "verify/cjson.h"
#include "verify/verify.h"

/* libFuzzer's entry points: no header declares them for C. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The time every expiry check uses: 2030-01-01T00:00:00Z. */
#define FUZZ_NOW ((time_t)1893456000)

/* Fix jansson's hash seed (otherwise read from /dev/urandom), so that a run repeats exactly.
 * Call first in LLVMFuzzerInitialize. */
void fuzz_setup(void);

/* The code under test broke its contract: print why and abort (libFuzzer saves the input). */
void fuzz_bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A fixed ed25519 private key, the same for the same n in every run (its RFC 8032 seed is 32
 * bytes of n). Caller frees with verify_key_free. Aborts if the key cannot be made. */
struct verify_key *fuzz_key(uint8_t n);

#endif
