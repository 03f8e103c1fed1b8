/* verify/writer/site.h: private to verify/writer/site.c and verify/writer/site_page.c: the
 * browse site's versions as read from the trusted state, and the pages made of them. */
#ifndef STORKFS_VERIFY_WRITER_SITE_H
#define STORKFS_VERIFY_WRITER_SITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "verify/manifest.h"
#include "verify/tuf.h"

/* A growing page; oom is set (and stays set) when an append could not allocate. */
struct site_buf {
	char *p;
	size_t n, cap;
	bool oom;
};

/* One signed version. */
struct site_ver {
	struct verify_target t;
	struct verify_manifest *m; /* NULL: its manifest could not be read (problem says why) */
	char *problem;
	char *summary;	/* the signed one-line description; NULL: none */
	bool wanted;	/* its package's page is written (m is read only then) */
	uint64_t files; /* regular files in m */
};

/* Whether a version of the package name is among all (n versions, sorted by name). */
bool site_has_package(const struct site_ver *all, size_t n, const char *name);

/* The page of one package: its n versions v (ascending in the order the site was given),
 * dependencies linked to the packages of all (nall versions, sorted by name) that they name. */
void site_package_page(struct site_buf *b, const struct site_ver *v, size_t n,
		       const struct site_ver *all, size_t nall);

/* The index: every package of all (n versions, sorted by name then version) with its latest
 * version, the metadata of c (versions, expiry judged at now against the validity periods
 * expiry[META_NROLES]), the top-level roles' key ids and how a node pins the root (roothash:
 * the SHA-256 of metadata/1.root.json; NULL when unknown) and mounts the repository. */
void site_index_page(struct site_buf *b, struct verify_client *c, const struct verify_source *src,
		     const struct site_ver *all, size_t n, time_t now, const int64_t *expiry,
		     const uint8_t *roothash);

#endif
