/* verify/target.c: a target's manifest, TUF 5.7 ("the target file itself"): fetched from a
 * source or taken from elsewhere (a node store, a peer), checked against the length and the
 * SHA-256 its target signs, parsed, and matched to the target's name and version.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/client.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/manifest.h"
#include "verify/tuf.h"

int verify_client_fetch_manifest(struct verify_client *c, const struct verify_source *src,
				 const struct verify_target *t, struct verify_manifest **ret_m)
{
	(void)c;
	return verify_fetch_manifest(src, t, ret_m);
}

/* The repository file of t's manifest (malloc'd; NULL on -ENOMEM): its consistent-snapshot
 * name, or its plain target path when the repository has no consistent snapshots. */
static char *target_file(const struct verify_target *t)
{
	char hex[VERIFY_HASH_HEX];

	if (t->plain)
		return meta_asprintf("targets/%s/%s.json", t->name, t->version);
	verify_hex(t->hash, VERIFY_HASH_LEN, hex);
	/* name and version passed the charset check, so this is a plain relative path */
	return meta_asprintf("targets/%s/%s.%s.json", t->name, hex, t->version);
}

/* Parse bytes that match t's signed length and hash, and check that they describe t. */
static int parse_target(const struct verify_target *t, const char *file, const void *buf,
			size_t len, struct verify_manifest **ret_m)
{
	struct verify_manifest *m = NULL;
	int r;

	r = verify_manifest_parse(buf, len, file, &m);
	if (r < 0)
		return r;
	if (strcmp(m->name, t->name) != 0 || strcmp(m->version, t->version) != 0) {
		stork_errorf("%s: the manifest describes %s %s, but it is signed as %s %s", file,
			     m->name, m->version, t->name, t->version);
		verify_manifest_free(m);
		return STORK_EFORMAT;
	}
	*ret_m = m;
	return 0;
}

int verify_fetch_manifest(const struct verify_source *src, const struct verify_target *t,
			  struct verify_manifest **ret_m)
{
	return verify_fetch_manifest_raw(src, t, ret_m, NULL, NULL);
}

int verify_fetch_manifest_raw(const struct verify_source *src, const struct verify_target *t,
			      struct verify_manifest **ret_m, uint8_t **ret_buf, size_t *ret_len)
{
	char *file = target_file(t);
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if (!file)
		return -ENOMEM;
	r = meta_fetch_target(src, file, t, VERIFY_MAX_MANIFEST_LEN, "manifest", &buf, &len);
	if (r == 0)
		r = parse_target(t, file, buf, len, ret_m);
	free(file);
	if (r == 0 && ret_buf) {
		*ret_buf = buf;
		*ret_len = len;
		return 0;
	}
	free(buf);
	return r;
}

int verify_check_manifest(const struct verify_target *t, const void *buf, size_t len,
			  struct verify_manifest **ret_m)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char got[VERIFY_HASH_HEX], want[VERIFY_HASH_HEX];
	char *file = target_file(t);
	int r;

	if (!file)
		return -ENOMEM;
	if (len != t->length) {
		stork_errorf("%s: %zu bytes, but its signed length is %" PRIu64, file, len,
			     t->length);
		r = STORK_EBADLEN;
		goto out;
	}
	r = verify_sha256(buf, len, digest);
	if (r < 0)
		goto out;
	if (memcmp(digest, t->hash, VERIFY_HASH_LEN) != 0) {
		verify_hex(digest, VERIFY_HASH_LEN, got);
		verify_hex(t->hash, VERIFY_HASH_LEN, want);
		stork_errorf("%s: SHA-256 %s does not match the signed hash %s", file, got, want);
		r = STORK_EBADHASH;
		goto out;
	}
	r = parse_target(t, file, buf, len, ret_m);
out:
	free(file);
	return r;
}
