/* tests/fuzz/fuzz_common.c: helpers the libFuzzer targets share (tests/fuzz/fuzz.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tests/fuzz/fuzz.h"

void fuzz_setup(void)
{
	json_object_seed(0x5702cf5);
}

void fuzz_bug(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: contract broken: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (detail: \"%s\")\n", stork_error_detail());
	abort();
}

struct verify_key *fuzz_key(uint8_t n)
{
	struct verify_key *key = NULL;
	uint8_t seed[32], pub[32];
	size_t publen = sizeof(pub);
	EVP_PKEY *pkey;

	memset(seed, n, sizeof(seed));
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	if (!pkey || EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1 || publen != 32)
		fuzz_bug("cannot make the fixed ed25519 key %u", n);
	EVP_PKEY_free(pkey);
	if (verify_key_from_raw(pub, seed, &key) < 0)
		fuzz_bug("verify_key_from_raw refuses the fixed key %u", n);
	return key;
}
