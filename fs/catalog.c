/* fs/catalog.c: the catalog index (fs/README.md "Catalog index"). Listing every package a
 * repository signs walks every delegated role (parse, signatures, the delegation search per
 * target): about a second for 10,000 packages. A remount, or a refresh that brings nothing new,
 * would walk the same verified state again; instead the catalog built from it is kept in the
 * node store under a key derived from that state (fs_repo_state_key: the repository, the
 * trusted root, targets and snapshot), valid until the first of its delegated roles expires,
 * and read back in one file. A policy's catalog (-o policy=, a slice's) is kept under its
 * digest too (verify_policy_digest: its rules, the keys they name). Only a walk without
 * failures is kept.
 *
 * The body (store/README.md "Catalog indexes" keeps it whole and checked), little-endian:
 *
 *   u32 packages, then per package:   u16 len, name, u32 versions, then per version:
 *     u16 len, version; u16 len, role; u16 len, keyid; 32 bytes manifest SHA-256;
 *     u64 manifest length; u8 plain
 *
 * Packages and versions come in the catalog's order (by name; versions ascending).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

/* The format's version is part of the key. 2: its time limit counts pinned roles too (the
 * catalogs of 1 could hold past a pinned role's expiry). */
#define VIEW "catalog-2"

struct out {
	uint8_t *buf;
	size_t len, cap;
	int err;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->err)
		return;
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 65536;
		uint8_t *b;

		while (cap < o->len + n)
			cap *= 2;
		b = realloc(o->buf, cap);
		if (!b) {
			o->err = -ENOMEM;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void put_u(struct out *o, uint64_t v, size_t n)
{
	uint8_t b[8];

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(o, b, n);
}

static void put_str(struct out *o, const char *s)
{
	size_t n = strlen(s);

	if (n > UINT16_MAX) {
		o->err = -ENAMETOOLONG;
		return;
	}
	put_u(o, n, 2);
	put(o, s, n);
}

static int catalog_dump(const struct fsd_catalog *c, struct out *o)
{
	put_u(o, c->n, 4);
	for (size_t i = 0; i < c->n; i++) {
		const struct fsd_cat_pkg *p = &c->pkgs[i];

		put_str(o, p->name);
		put_u(o, p->n, 4);
		for (size_t j = 0; j < p->n; j++) {
			const struct fsd_cat_ver *v = &p->vers[j];

			put_str(o, v->version);
			put_str(o, v->role);
			put_str(o, v->keyid);
			put(o, v->hash, VERIFY_HASH_LEN);
			put_u(o, v->length, 8);
			put_u(o, v->plain, 1);
		}
	}
	return o->err;
}

struct in {
	const uint8_t *buf;
	size_t len, at;
	bool bad;
};

static uint64_t get_u(struct in *in, size_t n)
{
	uint64_t v = 0;

	if (in->bad || in->len - in->at < n) {
		in->bad = true;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)in->buf[in->at + i] << (8 * i);
	in->at += n;
	return v;
}

static char *get_str(struct in *in)
{
	size_t n = (size_t)get_u(in, 2);
	char *s;

	if (in->bad || in->len - in->at < n || memchr(in->buf + in->at, 0, n)) {
		in->bad = true;
		return NULL;
	}
	s = strndup((const char *)in->buf + in->at, n);
	if (!s)
		in->bad = true;
	in->at += n;
	return s;
}

/* A catalog from its index bytes. Each count is checked against the bytes left before anything
 * is allocated for it, and the order against the one fsd_catalog_pkg's search needs.
 * @return 0; STORK_EFORMAT (detail); -ENOMEM. */
static int catalog_parse(const uint8_t *buf, size_t len, const char *file,
			 struct fsd_catalog **ret_c)
{
	struct in in = {buf, len, 0, false};
	struct fsd_catalog *c = calloc(1, sizeof(*c));
	uint64_t n;

	if (!c)
		return -ENOMEM;
	c->refs = 1;
	c->built = time(NULL);
	n = get_u(&in, 4);
	if (in.bad || n > (len - in.at) / 6 || (n && !(c->pkgs = calloc(n, sizeof(*c->pkgs)))))
		in.bad = true;
	for (uint64_t i = 0; i < n && !in.bad; i++) {
		struct fsd_cat_pkg *p = &c->pkgs[c->n++];
		uint64_t nv;

		p->name = get_str(&in);
		nv = get_u(&in, 4);
		if (in.bad || nv == 0 || nv > (len - in.at) / 47 ||
		    (i && strcmp(c->pkgs[i - 1].name, p->name) >= 0) ||
		    !(p->vers = calloc(nv, sizeof(*p->vers)))) {
			in.bad = true;
			break;
		}
		for (uint64_t j = 0; j < nv && !in.bad; j++) {
			struct fsd_cat_ver *v = &p->vers[p->n++];

			v->version = get_str(&in);
			v->role = get_str(&in);
			v->keyid = get_str(&in);
			if (!in.bad && len - in.at >= VERIFY_HASH_LEN) {
				memcpy(v->hash, buf + in.at, VERIFY_HASH_LEN);
				in.at += VERIFY_HASH_LEN;
			} else {
				in.bad = true;
			}
			v->length = get_u(&in, 8);
			v->plain = get_u(&in, 1) != 0;
		}
	}
	if (!in.bad && in.at != len)
		in.bad = true;
	if (in.bad) {
		fsd_catalog_unref(c);
		stork_errorf("%s: not a catalog this daemon can read (cut, or another format)",
			     file);
		return STORK_EFORMAT;
	}
	*ret_c = c;
	return 0;
}

int fsd_catalog_get(struct fsd *d, struct fsd_catalog **ret_c)
{
	return fsd_catalog_get_for(d, NULL, ret_c);
}

int fsd_catalog_get_for(struct fsd *d, const struct verify_policy *pol, struct fsd_catalog **ret_c)
{
	struct fsd_catalog *c = NULL;
	struct out o = {0};
	uint8_t key[VERIFY_HASH_LEN], dg[VERIFY_HASH_LEN], *body = NULL;
	char file[PATH_MAX], hex[VERIFY_HASH_HEX], view[sizeof(VIEW) + VERIFY_HASH_HEX + 1];
	time_t now = 0, expire;
	int64_t until = 0;
	size_t len = 0;
	bool keyed = true;
	int ret;

	/* The view: which policy decided (none: the repository's delegations). */
	snprintf(view, sizeof(view), "%s", VIEW);
	if (pol || d->conf.policy) {
		keyed =
		    (pol ? verify_policy_digest(pol, dg) : fs_repo_policy_digest(d->repo, dg)) == 0;
		verify_hex(dg, VERIFY_HASH_LEN, hex);
		snprintf(view, sizeof(view), "%s %s", VIEW, hex);
	}
	keyed = keyed && fs_repo_state_key(d->repo, view, key, &now, NULL) == 0;
	if (keyed) {
		verify_hex(key, VERIFY_HASH_LEN, hex);
		snprintf(file, sizeof(file), "%s/catalogs/%s", store_dir(d->store), hex);
		ret = store_catalog_open(d->store, key, &body, &len, &until);
		if (ret == 0)
			ret = catalog_parse(body, len, file, &c);
		free(body);
		if (ret == 0 && now < until) {
			FSD_COUNT(d, catalogs_indexed, 1);
			*ret_c = c;
			return 0;
		}
		fsd_catalog_unref(c);
		c = NULL;
		if (ret == STORK_EBADHASH || ret == STORK_EFORMAT) {
			FSD_COUNT(d, catalogs_reindexed, 1);
			fsd_log(d, "catalog index: %s: refused, listing the packages again",
				stork_error_detail());
		}
	}
	ret = pol ? fsd_catalog_build_for(d->repo, pol, &c) : fsd_catalog_build(d->repo, &c);
	if (ret < 0 || !keyed || c->partial || store_readonly(d->store))
		goto out;
	/* After the walk every delegated role is loaded: the first of them to expire ends it. */
	if (fs_repo_state_key(d->repo, view, key, NULL, &expire) == 0 && catalog_dump(c, &o) == 0) {
		int r = store_catalog_save(d->store, key, o.buf, o.len, (int64_t)expire);

		if (r < 0)
			fsd_log(d, "catalog index: not kept in %s/catalogs: %s",
				store_dir(d->store), storkfs_strerror(r));
	}
out:
	free(o.buf);
	if (ret == 0)
		*ret_c = c;
	return ret;
}
