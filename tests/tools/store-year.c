/* tests/tools/store-year.c: a year of a busy repository as one node store sees it, for
 * tests/bench/metadata (store/README.md "Bounded metadata").
 *
 *   store-year STOREDIR ITERATIONS KEEP [--no-prune]
 *
 * Each iteration is a publish followed by a refresh: the node stores what a refresh that
 * verified stores (timestamp, snapshot, targets and the publisher's role file, each sized for
 * the KEEP versions the repository keeps, as a repository with retention does), the new
 * version's manifest (4 KiB, as a reader of it would), notes the refresh, and tells the store
 * the manifests of the KEEP versions signed now (store_repo_current), unless --no-prune (what
 * storkfs did before). Every 1,000 iterations the publisher changes (a new role, the old one
 * revoked). At 1, 10, 100, 1,000 and every 1,000 iterations after, one line:
 *
 *   year ITER manifests N metadata M index_bytes B trusted_bytes T
 *
 * (index_bytes: the blocks index/data.mdb takes; trusted_bytes: the blocks of trusted/).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "verify/verify.h"

#define REPO	 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MANIFEST 4096

static uint64_t blocks(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

static uint64_t dir_blocks(const char *path)
{
	char sub[4096];
	struct dirent *de;
	uint64_t sum = 0;
	DIR *d = opendir(path);

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		sum += de->d_type == DT_DIR ? dir_blocks(sub) : blocks(sub);
	}
	closedir(d);
	return sum;
}

/* A metadata file of about len bytes, different for each iteration. */
static void meta(char *buf, size_t len, const char *role, unsigned long i)
{
	int n =
	    snprintf(buf, len, "{\"signed\":{\"_type\":\"%s\",\"version\":%lu,\"pad\":\"", role, i);

	for (size_t k = (size_t)n; k + 4 < len; k++)
		buf[k] = (char)('a' + (k + i) % 26);
	memcpy(buf + len - 4, "\"}}", 4);
}

int main(int argc, char **argv)
{
	struct store *s = NULL;
	unsigned long iters, keep, i;
	uint8_t(*ring)[VERIFY_HASH_LEN];
	bool prune = true;
	char *buf, role[64], path[4096];
	uint8_t man[MANIFEST];
	int r;

	if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "--no-prune"))) {
		fprintf(stderr, "usage: store-year STOREDIR ITERATIONS KEEP [--no-prune]\n");
		return 2;
	}
	iters = strtoul(argv[2], NULL, 10);
	keep = strtoul(argv[3], NULL, 10);
	prune = argc == 4;
	if (iters == 0 || keep == 0 || keep > 100000)
		return 2;
	ring = calloc(keep, VERIFY_HASH_LEN);
	buf = malloc(512 + keep * 300);
	if (!ring || !buf)
		return 3;
	r = store_open(argv[1], &s);
	if (r < 0) {
		fprintf(stderr, "store-year: %s: %s\n", argv[1], stork_error_detail());
		return 3;
	}
	for (i = 1; i <= iters; i++) {
		const char *roles[1] = {role};
		uint8_t id[VERIFY_HASH_LEN];
		struct store_stats st = {0};

		snprintf(role, sizeof(role), "publisher%lu", (i - 1) / 1000);
		/* the refresh: the top-level roles and the publisher's role */
		meta(buf, 500, "timestamp", i);
		r = store_meta_put(s, REPO, "timestamp.json", buf, 500);
		meta(buf, 600, "snapshot", i);
		if (r == 0)
			r = store_meta_put(s, REPO, "snapshot.json", buf, 600);
		meta(buf, 1000, "targets", i);
		if (r == 0)
			r = store_meta_put(s, REPO, "targets.json", buf, 1000);
		meta(buf, 512 + keep * 300, role, i);
		snprintf(path, sizeof(path), "%s.json", role);
		if (r == 0)
			r = store_meta_put(s, REPO, path, buf, 512 + keep * 300);
		/* the new version's manifest, read by the node */
		meta((char *)man, sizeof(man), "manifest", i);
		verify_sha256(man, sizeof(man), id);
		if (r == 0)
			r = store_manifest_put(s, id, man, sizeof(man));
		memcpy(ring[(i - 1) % keep], id, VERIFY_HASH_LEN);
		if (r == 0)
			r = store_repo_note_refresh(s, REPO, "http://origin/repo", (int64_t)i);
		if (r == 0 && prune)
			r = store_repo_current(s, REPO, &(struct store_state){1, i},
					       (const uint8_t(*)[VERIFY_HASH_LEN])ring,
					       i < keep ? i : keep, roles, 1, NULL);
		if (r < 0) {
			fprintf(stderr, "store-year: iteration %lu: %s\n", i, stork_error_detail());
			store_close(s);
			return 3;
		}
		if (i == 1 || i == 10 || i == 100 || i % 1000 == 0 || i == iters) {
			r = store_stats(s, &st);
			if (r < 0)
				return 3;
			snprintf(path, sizeof(path), "%s/index/data.mdb", argv[1]);
			printf("year %lu manifests %llu metadata %zu index_bytes %llu", i,
			       (unsigned long long)st.manifests, st.nrepos ? st.repos[0].nmeta : 0,
			       (unsigned long long)blocks(path));
			snprintf(path, sizeof(path), "%s/trusted", argv[1]);
			printf(" trusted_bytes %llu\n", (unsigned long long)dir_blocks(path));
			fflush(stdout);
			store_stats_fini(&st);
		}
	}
	store_close(s);
	free(ring);
	free(buf);
	return 0;
}
