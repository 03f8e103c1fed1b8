/* verify/hash.c: SHA-256 through OpenSSL EVP, and hex. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "verify/error.h"
#include "verify/hash.h"

struct verify_hash {
	EVP_MD_CTX *ctx;
};

int verify_hash_new(struct verify_hash **ret_h)
{
	struct verify_hash *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx) {
		free(h);
		return -ENOMEM;
	}
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		verify_hash_free(h);
		stork_errorf("sha256: OpenSSL cannot start a digest");
		return -EIO;
	}
	*ret_h = h;
	return 0;
}

int verify_hash_update(struct verify_hash *h, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (EVP_DigestUpdate(h->ctx, buf, len) != 1) {
		stork_errorf("sha256: OpenSSL digest update failed");
		return -EIO;
	}
	return 0;
}

int verify_hash_final(struct verify_hash *h, uint8_t ret_digest[VERIFY_HASH_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1 || mdlen != VERIFY_HASH_LEN) {
		stork_errorf("sha256: OpenSSL digest final failed");
		return -EIO;
	}
	memcpy(ret_digest, md, VERIFY_HASH_LEN);
	return 0;
}

void verify_hash_free(struct verify_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int verify_sha256(const void *buf, size_t len, uint8_t ret_digest[VERIFY_HASH_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(len ? buf : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != VERIFY_HASH_LEN) {
		stork_errorf("sha256: OpenSSL digest failed");
		return -EIO;
	}
	memcpy(ret_digest, md, VERIFY_HASH_LEN);
	return 0;
}

int verify_sha256_hex(const void *buf, size_t len, uint8_t ret_digest[VERIFY_HASH_LEN],
		      char ret_hex[VERIFY_HASH_HEX])
{
	uint8_t digest[VERIFY_HASH_LEN];
	int r = verify_sha256(buf, len, digest);

	if (r < 0)
		return r;
	if (ret_digest)
		memcpy(ret_digest, digest, VERIFY_HASH_LEN);
	verify_hex(digest, VERIFY_HASH_LEN, ret_hex);
	return 0;
}

void verify_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int verify_unhex(const char *hex, uint8_t *out, size_t len)
{
	size_t i;

	/* Check everything before writing anything. */
	for (i = 0; i < 2 * len; i++)
		if (hexval(hex[i]) < 0) /* also stops at the NUL of a short string */
			goto bad;
	if (hex[2 * len] != '\0')
		goto bad;
	for (i = 0; i < len; i++)
		out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	return 0;
bad:
	stork_errorf("\"%.*s\": not %zu hex digits", 140, hex, 2 * len);
	return STORK_EFORMAT;
}
