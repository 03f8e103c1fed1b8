/* verify/metacheck.c: what is done with parsed metadata: signature thresholds, expiry, reading
 * a file against its signed length and hash, signing, and TUF delegated path matching. */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/meta.h"
#include "verify/tuf.h"

/* ------------------------------------------------------------------------------------------ */
/* Checks */

/* Append to a fixed buffer, truncating. */
static void append(char *buf, size_t size, const char *s)
{
	size_t len = strlen(buf);

	if (len + 1 < size)
		snprintf(buf + len, size - len, "%s", s);
}

int meta_check_sigs(const struct meta *m, const char *rolename, const struct meta_keyring *keys,
		    const struct meta_delegation *role, const char **ret_keyid)
{
	const char *first = NULL;
	char valid[512] = "";
	uint64_t good = 0;
	size_t i, j;

	/* Walking the role's (unique) key ids counts each key at most once, whatever the
	 * signatures list holds. */
	for (i = 0; i < role->nkeyids; i++) {
		const struct verify_key *k = meta_keyring_find(keys, role->keyids[i]);

		if (!k)
			continue;
		for (j = 0; j < m->nsigs; j++) {
			if (strcmp(m->sigs[j].keyid, role->keyids[i]) != 0)
				continue;
			if (verify_key_check(k, m->canon, m->canonlen, m->sigs[j].sig) == 0) {
				good++;
				if (!first)
					first = role->keyids[i];
				break;
			}
		}
	}
	if (good >= role->threshold) {
		if (ret_keyid)
			*ret_keyid = first;
		return 0;
	}
	for (i = 0; i < role->nkeyids; i++) {
		char id[20];

		if (!meta_keyring_find(keys, role->keyids[i]))
			continue;
		snprintf(id, sizeof(id), "%s%.16s", valid[0] ? ", " : "", role->keyids[i]);
		append(valid, sizeof(valid), id);
	}
	stork_errorf("%s: %" PRIu64 " of %" PRIu64
		     " required signatures from role %s (valid keys: %s)",
		     m->file, good, role->threshold, rolename, valid[0] ? valid : "none");
	return STORK_EBADSIG;
}

int meta_check_expiry(const struct meta *m, const char *rolename, time_t now)
{
	char exp[21] = "?", nowb[21] = "?";

	if (now < m->expires)
		return 0;
	meta_format_time(m->expires, exp);
	meta_format_time(now, nowb);
	stork_errorf("%s: role %s expired at %s (now %s)", m->file, rolename, exp, nowb);
	return STORK_EEXPIRED;
}

int meta_check_version(const struct meta *m, uint64_t want, const char *why)
{
	if (m->version == want)
		return 0;
	stork_errorf("%s: version %" PRIu64 ", but %s says %" PRIu64, m->file, m->version, why,
		     want);
	return STORK_EVERSION;
}

/* A copy's length and hash against expect (either may be absent). */
static int check_bytes(const char *file, const struct meta_file *expect, const uint8_t *buf,
		       size_t len)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char want[VERIFY_HASH_HEX], got[VERIFY_HASH_HEX];
	int r;

	if (!expect)
		return 0;
	if (expect->has_length && len != expect->length) {
		stork_errorf("%s: %zu bytes, but its signed length is %" PRIu64, file, len,
			     expect->length);
		return STORK_EBADLEN;
	}
	if (expect->has_hash) {
		r = verify_sha256(buf, len, digest);
		if (r < 0)
			return r;
		if (memcmp(digest, expect->hash, VERIFY_HASH_LEN) != 0) {
			verify_hex(digest, VERIFY_HASH_LEN, got);
			verify_hex(expect->hash, VERIFY_HASH_LEN, want);
			stork_errorf("%s: SHA-256 %s does not match the signed hash %s", file, got,
				     want);
			return STORK_EBADHASH;
		}
	}
	return 0;
}

struct want_ctx {
	const char *file;
	enum meta_type type;
	bool parse; /* false: the bytes only (a manifest) */
	const struct meta_want *w;
};

/* verify_source.get_checked's check: one mirror's copy. */
static int want_check(void *cctx, const uint8_t *buf, size_t len, uint64_t *ret_rank)
{
	const struct want_ctx *wc = cctx;
	const struct meta_want *w = wc->w;
	struct meta *m = NULL;
	int r;

	*ret_rank = 0;
	r = check_bytes(wc->file, w->expect, buf, len);
	if (r < 0 || !wc->parse)
		return r;
	r = meta_parse(buf, len, wc->file, wc->type, &m);
	if (r == 0 && w->expect && w->by)
		r = meta_check_version(m, w->expect->version, w->by);
	if (r == 0 && w->keys)
		r = meta_check_sigs(m, w->role, w->keys, w->del, NULL);
	if (r == 0 && w->check)
		r = w->check(w->ctx, m);
	if (r == 0)
		*ret_rank = m->version;
	meta_free(m);
	return r;
}

/* Read file, each copy checked by want_check (on every mirror's copy when the source can ask
 * them one by one, else on the one answer). */
static int fetch_want(const struct verify_source *src, const struct want_ctx *wc, uint64_t maxlen,
		      uint8_t **ret_buf, size_t *ret_len)
{
	const struct meta_file *expect = wc->w->expect;
	uint8_t *buf = NULL;
	uint64_t rank;
	size_t len = 0;
	int r;

	if (expect && expect->has_length)
		maxlen = expect->length;
	if (maxlen > SIZE_MAX - 1)
		maxlen = SIZE_MAX - 1;
	if (src->get_checked) {
		r = src->get_checked(src->ctx, wc->file, (size_t)maxlen, want_check, (void *)wc,
				     wc->w->every, &buf, &len);
	} else {
		r = src->get(src->ctx, wc->file, (size_t)maxlen, &buf, &len);
		if (r == 0)
			r = want_check((void *)wc, buf, len, &rank);
	}
	if (r == STORK_ETOOBIG && expect && expect->has_length) {
		stork_errorf("%s: longer than its signed length of %" PRIu64 " bytes", wc->file,
			     expect->length);
		r = STORK_EBADLEN;
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int meta_fetch(const struct verify_source *src, const char *file, uint64_t maxlen,
	       const struct meta_file *expect, uint8_t **ret_buf, size_t *ret_len)
{
	struct meta_want w = {.expect = expect};
	struct want_ctx wc = {.file = file, .parse = false, .w = &w};

	return fetch_want(src, &wc, maxlen, ret_buf, ret_len);
}

int meta_fetch_target(const struct verify_source *src, const char *file,
		      const struct verify_target *t, uint64_t maxlen, const char *what,
		      uint8_t **ret_buf, size_t *ret_len)
{
	struct meta_file expect = {.has_length = true, .length = t->length, .has_hash = true};

	if (t->length > maxlen) {
		stork_errorf("%s: signed length %" PRIu64 " is over the %" PRIu64 "-byte %s limit",
			     file, t->length, maxlen, what);
		return STORK_ETOOBIG;
	}
	memcpy(expect.hash, t->hash, VERIFY_HASH_LEN);
	return meta_fetch(src, file, maxlen, &expect, ret_buf, ret_len);
}

int meta_load_want(const struct verify_source *src, const char *file, uint64_t maxlen,
		   enum meta_type type, const struct meta_want *w, struct meta **ret_m)
{
	struct want_ctx wc = {.file = file, .type = type, .parse = true, .w = w};
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	r = fetch_want(src, &wc, maxlen, &buf, &len);
	if (r < 0)
		return r;
	r = meta_parse(buf, len, file, type, ret_m);
	free(buf);
	return r;
}

int meta_load(const struct verify_source *src, const char *file, uint64_t maxlen,
	      const struct meta_file *expect, enum meta_type type, struct meta **ret_m)
{
	struct meta_want w = {.expect = expect};

	return meta_load_want(src, file, maxlen, type, &w, ret_m);
}

/* ------------------------------------------------------------------------------------------ */
/* Signing */

static int cmp_sig(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

	return strcmp(json_string_value(json_object_get(x, "keyid")),
		      json_string_value(json_object_get(y, "keyid")));
}

int meta_sign(const json_t *signed_json, struct verify_key *const *keys, size_t nkeys,
	      char **ret_buf, size_t *ret_len)
{
	json_t *doc = NULL, *sigs = NULL, **sorted = NULL;
	char *canon = NULL, hex[2 * VERIFY_SIG_LEN + 1];
	uint8_t sig[VERIFY_SIG_LEN];
	size_t canonlen, i;
	int r;

	r = verify_cjson_dump(signed_json, &canon, &canonlen);
	if (r < 0)
		goto out;
	sorted = calloc(nkeys + 1, sizeof(*sorted));
	sigs = json_array();
	if (!sorted || !sigs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nkeys; i++) {
		r = verify_key_sign(keys[i], canon, canonlen, sig);
		if (r < 0)
			goto out;
		verify_hex(sig, VERIFY_SIG_LEN, hex);
		sorted[i] = json_pack("{s:s, s:s}", "keyid", verify_key_id(keys[i]), "sig", hex);
		if (!sorted[i]) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* signatures in key id order so the bytes do not depend on the caller's order */
	qsort(sorted, nkeys, sizeof(*sorted), cmp_sig);
	for (i = 0; i < nkeys; i++) {
		if (json_array_append_new(sigs, sorted[i]) < 0) {
			sorted[i] = NULL;
			r = -ENOMEM;
			goto out;
		}
		sorted[i] = NULL;
	}
	doc = json_pack("{s:o, s:O}", "signatures", sigs, "signed", (json_t *)signed_json);
	sigs = NULL;
	if (!doc) {
		r = -ENOMEM;
		goto out;
	}
	r = verify_cjson_dump(doc, ret_buf, ret_len);
out:
	for (i = 0; sorted && i < nkeys; i++)
		json_decref(sorted[i]);
	free(sorted);
	json_decref(sigs);
	json_decref(doc);
	free(canon);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Delegated paths */

/* Split pattern and path on '/', same number of parts, each part fnmatch()'d, so '*' never
 * matches across a '/'. */
static bool path_matches(const char *pattern, const char *path)
{
	const char *p = pattern, *t = path;
	char pbuf[512], tbuf[512];

	for (;;) {
		const char *pe = strchrnul(p, '/'), *te = strchrnul(t, '/');
		size_t pl = (size_t)(pe - p), tl = (size_t)(te - t);

		if (pl >= sizeof(pbuf) || tl >= sizeof(tbuf))
			return false;
		memcpy(pbuf, p, pl);
		pbuf[pl] = '\0';
		memcpy(tbuf, t, tl);
		tbuf[tl] = '\0';
		if (fnmatch(pbuf, tbuf, 0) != 0)
			return false;
		if (*pe == '\0' || *te == '\0')
			return *pe == *te;
		p = pe + 1;
		t = te + 1;
	}
}

bool meta_delegation_matches(const struct meta_delegation *d, const char *path)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX];
	size_t i;

	for (i = 0; i < d->npaths; i++)
		if (path_matches(d->paths[i], path))
			return true;
	if (!d->nprefixes || verify_sha256(path, strlen(path), digest) < 0)
		return false;
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	for (i = 0; i < d->nprefixes; i++)
		if (strncmp(hex, d->prefixes[i], strlen(d->prefixes[i])) == 0)
			return true;
	return false;
}

char *meta_delegation_patterns(const struct meta_delegation *d)
{
	size_t i, len = 1;
	char *out;

	for (i = 0; i < d->npaths; i++)
		len += strlen(d->paths[i]) + 2;
	for (i = 0; i < d->nprefixes; i++)
		len += strlen(d->prefixes[i]) + 20;
	out = calloc(1, len + 16);
	if (!out)
		return NULL;
	for (i = 0; i < d->npaths; i++) {
		if (i)
			append(out, len + 16, ", ");
		append(out, len + 16, d->paths[i]);
	}
	for (i = 0; i < d->nprefixes; i++) {
		if (i || d->npaths)
			append(out, len + 16, ", ");
		append(out, len + 16, "hash prefix ");
		append(out, len + 16, d->prefixes[i]);
	}
	if (!d->npaths && !d->nprefixes)
		append(out, len + 16, "(none)");
	return out;
}
