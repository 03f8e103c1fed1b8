/* tests/tools/many-pkgs.c: a repository with many packages, for tests/bench/mount's top-level
 * listing (fs/README.md "Catalog index").
 *
 *   many-pkgs REPODIR KEYDIR PUBDIR PUBLISHERS PACKAGES
 *
 * Creates the repository (KEYDIR: its keys; REPODIR/metadata/1.root.json is the root to pin),
 * PUBLISHERS publisher keys in PUBDIR (pub<I>.key), each delegated the names "p<I>-*", and
 * publishes PACKAGES versions 1.0 of packages p<I>-<J> spread over the publishers, each a
 * manifest of one 5-byte file (its object is not written: the listing never opens a file).
 * Through the writer library, as `stork publish` signs, without a process and an import per
 * package. Prints the seconds it took.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "verify/verify.h"
#include "verify/writer/writer.h"

static int fail(const char *what, int r)
{
	char text[1200];

	fprintf(stderr, "many-pkgs: %s: %s\n", what,
		stork_error_text(stork_error_detail(), r, text, sizeof(text)));
	return 1;
}

static int publish_one(const char *repo, const char *keys, const struct verify_key *k,
		       const char *name, const struct verify_repo_opts *o)
{
	struct verify_manifest *m = NULL;
	struct verify_entry e = {0};
	int r;

	r = verify_manifest_new(name, "1.0", "dir", &m);
	if (r < 0)
		return r;
	e.path = "hello";
	e.type = VERIFY_FILE;
	e.mode = 0644;
	e.mtime = 1700000000;
	e.size = 5;
	e.zsize = 14;
	verify_sha256(name, strlen(name), e.hash);
	r = verify_manifest_add(m, &e);
	if (r == 0)
		r = verify_manifest_finish(m);
	if (r == 0)
		r = verify_repo_publish(repo, keys, k, m, o);
	verify_manifest_free(m);
	return r < 0 ? r : 0;
}

int main(int argc, char **argv)
{
	struct verify_repo_opts o = {0};
	struct verify_key **pubs = NULL;
	struct timespec t0, t1;
	unsigned long np, nk;
	char *root = NULL, *end;
	int r = 1;

	if (argc != 6) {
		fprintf(stderr, "usage: many-pkgs REPODIR KEYDIR PUBDIR PUBLISHERS PACKAGES\n");
		return 2;
	}
	errno = 0;
	nk = strtoul(argv[4], &end, 10);
	if (errno || *end || nk == 0 || nk > 10000)
		return fail("PUBLISHERS", -EINVAL);
	np = strtoul(argv[5], &end, 10);
	if (errno || *end || np > 10000000)
		return fail("PACKAGES", -EINVAL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = verify_repo_init(argv[1], argv[2], &o, &root);
	if (r < 0)
		return fail("init", r);
	pubs = calloc(nk, sizeof(*pubs));
	if (!pubs || (mkdir(argv[3], 0700) < 0 && errno != EEXIST))
		return fail(argv[3], -errno);
	for (unsigned long i = 0; i < nk; i++) {
		char role[32], pattern[32], path[4096];
		const char *pats[1] = {pattern};

		snprintf(role, sizeof(role), "pub%lu", i);
		snprintf(pattern, sizeof(pattern), "p%lu-*", i);
		snprintf(path, sizeof(path), "%s/%s.key", argv[3], role);
		r = verify_key_generate(&pubs[i]);
		if (r == 0)
			r = verify_key_save(pubs[i], path);
		if (r == 0)
			r = verify_repo_delegate(argv[1], argv[2], pubs[i], role, pats, 1, &o);
		if (r < 0)
			return fail(role, r);
	}
	for (unsigned long j = 0; j < np; j++) {
		char name[64];

		snprintf(name, sizeof(name), "p%lu-%lu", j % nk, j / nk);
		r = publish_one(argv[1], argv[2], pubs[j % nk], name, &o);
		if (r < 0)
			return fail(name, r);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	for (unsigned long i = 0; i < nk; i++)
		verify_key_free(pubs[i]);
	free(pubs);
	free(root);
	return 0;
}
