/* fs/cli/cmd_store.c: the node side: `stork extract`, `stork fsck`, `stork gc`, `stork status`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "fs/cli/cli.h"
#include "fs/fs.h"
#include "store/store.h"
#include "verify/json.h"
#include "verify/manifest.h"

static const char extract_help[] =
    "usage: stork extract --root ROOTFILE --store STOREDIR [OPTIONS] URL... NAME VERSION "
    "DESTDIR\n"
    "\n"
    "Materialise version VERSION of package NAME as the new directory DESTDIR. Metadata is\n"
    "verified from the pinned root ROOTFILE; each file's object comes from the node store\n"
    "STOREDIR or, once, from the mirrors URL... (tried in order: directories, file://,\n"
    "http://, https://), verified before it is stored. On the store's file system the files\n"
    "are hard links to immutable files in the store, which every tree of the same file shares\n"
    "(replace such a file to change it: write a new one and rename it over); elsewhere, where\n"
    "the file system has no immutable attribute, and for files everyone may write, copies.\n"
    "When no mirror answers, the metadata verified earlier is used (offline).\n"
    "\n"
    "  --remove                 with --store STOREDIR DESTDIR only: remove an extracted\n"
    "                           tree (its linked files are immutable, so rm alone cannot)\n"
    "                           and the store's record of it\n" CLI_NODE_HELP;

static const char fsck_help[] =
    "usage: stork fsck [--repair] STOREDIR\n"
    "\n"
    "Re-hash every object of the node store STOREDIR and compare the index with the disk.\n"
    "Reports bad (bit rot, truncation), missing and unindexed objects and temporary files of\n"
    "dead writers, and trusted metadata the index lost but its copy in trusted/ keeps.\n"
    "--repair drops what is wrong (it is fetched again when needed), restores that trusted\n"
    "metadata and finishes inserts a crash interrupted. It also lists the files of extracted\n"
    "trees still linked to a store file whose content changed (repair cannot mend those:\n"
    "remove the tree with stork extract --remove and extract it again). Exit 0 when the\n"
    "store is clean (after repair), 1 when problems remain.\n";

static const char gc_help[] =
    "usage: stork gc STOREDIR\n"
    "\n"
    "Remove from the node store STOREDIR every object that no version its repositories'\n"
    "trusted metadata signs any more references (versions removed, publishers revoked), that\n"
    "nothing pins (prefetch=, installed slices) and that nobody used since the collection\n"
    "started; drop the manifests of versions that are gone. Safe while mounts, extracts and\n"
    "prefetches use the store (store/README.md \"Garbage collection\"). Prints what it freed.\n"
    "Exit 0 when collected, 3 when it could not (another collection runs, a repository not\n"
    "refreshed since this storkfs, an I/O error).\n";

int cmd_gc(int argc, char **argv)
{
	struct store_gc_report rep = {0};
	struct store *s = NULL;
	char b[32];
	int r;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(gc_help, stdout);
		return CLI_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error("gc", "expected STOREDIR");
	r = store_open(argv[1], &s);
	if (r < 0) {
		cli_fail("gc", r, "%s", argv[1]);
		return cli_exit_input(r);
	}
	r = store_gc(s, &rep);
	store_close(s);
	if (r < 0) {
		cli_fail("gc", r, "%s", argv[1]);
		return cli_exit_system(r);
	}
	printf("collected %s: removed %" PRIu64 " objects (%s, %" PRIu64 " bytes) of %" PRIu64
	       "; kept %" PRIu64 " unreferenced objects for their pins; dropped %" PRIu64
	       " manifests\n",
	       argv[1], rep.removed, cli_bytes(rep.bytes, b), rep.bytes, rep.objects, rep.pinned,
	       rep.manifests);
	return CLI_OK;
}

int cmd_extract(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"remove", no_argument, NULL, 'X'},
	    CLI_NODE_LONGOPTS,
	    {0},
	};
	struct cli_node n;
	struct fs_extract_stats st = {0};
	bool remove = false;
	struct verify_manifest *m = NULL;
	struct fs_repo *repo = NULL;
	struct store *s = NULL;
	const char *rootfile, *storedir, *name, *version, *dest;
	int c, r, code, nmirrors;

	cli_node_init(&n);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h" CLI_NODE_SHORTOPTS, opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(extract_help, stdout);
			return CLI_OK;
		}
		if (c == 'X') {
			remove = true;
			continue;
		}
		r = cli_node_option("extract", c, optarg, &n);
		if (r < 0)
			return CLI_USAGE;
		if (r == 0)
			return cli_usage_error("extract", "unknown option");
	}
	rootfile = n.rootfile;
	storedir = n.storedir;
	if (remove) {
		if (!storedir || argc - optind != 1)
			return cli_usage_error("extract",
					       "--remove needs --store STOREDIR DESTDIR");
		r = store_open(storedir, &s);
		if (r == 0)
			r = fs_extract_remove(s, argv[optind]);
		store_close(s);
		if (r < 0) {
			cli_fail("extract", r, "%s", argv[optind]);
			return CLI_SYSTEM;
		}
		return CLI_OK;
	}
	if (!rootfile || !storedir)
		return cli_usage_error("extract", "needs --root ROOTFILE and --store STOREDIR");
	nmirrors = argc - optind - 3;
	if (nmirrors < 1)
		return cli_usage_error("extract", "expected URL... NAME VERSION DESTDIR");
	name = argv[argc - 3];
	version = argv[argc - 2];
	dest = argv[argc - 1];

	code = cli_node_open("extract", &n, (const char *const *)argv + optind, (size_t)nmirrors,
			     &s, &repo);
	if (code != CLI_OK)
		goto out;
	r = fs_repo_manifest(repo, name, version, &m);
	if (r < 0) {
		cli_fail("extract", r, "%s %s", name, version);
		code = cli_exit_verify(r);
		goto out;
	}
	r = fs_extract(repo, m, dest, &st);
	if (r < 0) {
		cli_fail("extract", r, "%s %s", name, version);
		code = r == -EEXIST ? CLI_USAGE : cli_exit_verify(r);
		goto out;
	}
	printf("extracted %s %s to %s: %" PRIu64 " files (%" PRIu64 " fetched, %" PRIu64
	       " linked, %" PRIu64 " copied), %" PRIu64 " dirs, %" PRIu64 " symlinks, %" PRIu64
	       " bytes\n",
	       name, version, dest, st.files, st.fetched, st.linked, st.copied, st.dirs,
	       st.symlinks, st.bytes);
	code = CLI_OK;
out:
	verify_manifest_free(m);
	cli_node_close(s, repo);
	return code;
}

static void fsck_problem(void *ctx, const char *path, const char *what)
{
	(void)ctx;
	fprintf(stderr, "stork fsck: %s: %s\n", path, what);
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"repair", no_argument, NULL, 'R'},
	    {0},
	};
	struct store_fsck_report rep = {0};
	struct store *s = NULL;
	bool repair = false;
	uint64_t problems;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hR", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(fsck_help, stdout);
			return CLI_OK;
		}
		if (c == 'R')
			repair = true;
		else
			return cli_usage_error("fsck", "unknown option");
	}
	if (argc - optind != 1)
		return cli_usage_error("fsck", "expected STOREDIR");
	r = store_open(argv[optind], &s);
	if (r < 0) {
		cli_fail("fsck", r, "%s", argv[optind]);
		return cli_exit_input(r);
	}
	r = store_fsck(s, repair, fsck_problem, NULL, &rep);
	store_close(s);
	if (r < 0) {
		cli_fail("fsck", r, "%s", argv[optind]);
		return cli_exit_system(r);
	}
	/* Trees linked to a changed variant are listed; repair cannot mend them (remove the tree
	 * with stork extract --remove and extract it again), so they count only without it. */
	problems = rep.bad + rep.missing + rep.unindexed + rep.stale_tmp + rep.lost_meta +
		   (repair ? 0 : rep.changed_links);
	printf("%s: %" PRIu64 " objects checked: %" PRIu64 " good, %" PRIu64 " bad, %" PRIu64
	       " missing, %" PRIu64 " unindexed, %" PRIu64 " stale temporary files; %" PRIu64
	       " repaired, %" PRIu64 " interrupted inserts finished\n",
	       argv[optind], rep.objects, rep.good, rep.bad, rep.missing, rep.unindexed,
	       rep.stale_tmp, rep.repaired, rep.adopted);
	if (rep.lost_meta)
		printf("%s: %" PRIu64
		       " repositories' trusted metadata lost by the index and kept in "
		       "trusted/%s\n",
		       argv[optind], rep.lost_meta, repair ? ": restored" : "");
	if (problems == 0 || (repair && rep.repaired >= problems)) {
		printf("%s: clean\n", argv[optind]);
		return CLI_OK;
	}
	return CLI_VERIFY_FAILED;
}

/* One cached metadata file's signed version and expiry, as the cache holds it (the client
 * verifies it again whenever it starts). @return the parsed file (caller decrefs); NULL when
 * the cache has no such entry, an empty one (forgotten), or one that does not parse. */
static struct verify_json *cached_signed(struct store *s, const char *repo, const char *file)
{
	uint8_t *buf = NULL;
	struct verify_json *doc = NULL;
	size_t len = 0;
	int64_t v;

	if (store_meta_get(s, repo, file, &buf, &len) < 0 || len == 0)
		goto out;
	if (verify_json_load(buf, len, file, &doc) < 0) {
		doc = NULL;
		goto out;
	}
	if (!verify_json_int(verify_json_get(verify_json_get(doc, "signed"), "version"), &v)) {
		verify_json_free(doc);
		doc = NULL;
	}
out:
	free(buf);
	return doc;
}

static void print_trusted(const char *what, const struct verify_json *doc)
{
	const struct verify_json *sig = verify_json_get(doc, "signed");
	const char *exp = verify_json_str(verify_json_get(sig, "expires"));
	int64_t version = 0;

	verify_json_int(verify_json_get(sig, "version"), &version);
	printf("  trusted %-10s version %" PRId64 ", expires %s\n", what, version, exp ? exp : "?");
}

/* The cached delegated roles reachable from the top-level targets, depth first in search
 * order, each once and at most TRUSTED_ROLES_MAX of them. docs holds every document printed
 * so far (and keeps it alive). */
#define TRUSTED_ROLES_MAX 32

static void print_trusted_roles(struct store *s, const char *repo, struct verify_json *docs,
				const struct verify_json *from)
{
	const struct verify_json *roles = verify_json_get(
	    verify_json_get(verify_json_get(from, "signed"), "delegations"), "roles");
	const struct verify_json *d;
	size_t i;

	for (i = 0; (d = verify_json_at(roles, i)) != NULL; i++) {
		const char *name = verify_json_str(verify_json_get(d, "name"));
		char file[300];
		struct verify_json *role;

		if (!name || strlen(name) > 255 || verify_json_get(docs, name) ||
		    verify_json_size(docs) >= TRUSTED_ROLES_MAX)
			continue;
		snprintf(file, sizeof(file), "%s.json", name);
		role = cached_signed(s, repo, file);
		if (!role)
			continue;
		if (verify_json_set(docs, name, role) < 0)
			continue;
		snprintf(file, sizeof(file), "role %s", name);
		print_trusted(file, role);
		print_trusted_roles(s, repo, docs, role);
	}
}

/* What the node's cache holds for a repository: the metadata its client trusts at its next
 * start (rollback floor). One line per role; a forgotten or absent role prints none. */
static void print_trusted_state(struct store *s, const char *repo)
{
	static const char *const top[] = {"root", "timestamp", "snapshot", "targets"};
	struct verify_json *targets = NULL, *docs = verify_json_object();

	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		char file[32];
		struct verify_json *doc;

		snprintf(file, sizeof(file), "%s.json", top[i]);
		doc = cached_signed(s, repo, file);
		if (!doc)
			continue;
		print_trusted(top[i], doc);
		if (i == 3)
			targets = doc;
		else
			verify_json_free(doc);
	}
	if (targets && docs)
		print_trusted_roles(s, repo, docs, targets);
	verify_json_free(targets);
	verify_json_free(docs);
}

/* What store_meta_recover found about the repository's trusted metadata, when the index
 * had lost it (store/README.md, "Trusted metadata"). */
static void print_index_lost(const char *dir, const struct store_repo_status *rs)
{
	switch (rs->trust) {
	case STORE_TRUST_RESTORED:
		printf("  INDEX LOST    trusted metadata: restored from the copy in %s/trusted/%s "
		       "after the index lost it (the rollback floor was kept)\n",
		       dir, rs->repo);
		break;
	case STORE_TRUST_LOST:
		printf("  INDEX LOST    trusted metadata: the index lost it and no copy was left: "
		       "restarted from the pinned root (versions older than those trusted before "
		       "were not refused)\n");
		break;
	case STORE_TRUST_PENDING:
		printf("  INDEX LOST    trusted metadata: the index holds none; the copy in "
		       "%s/trusted/%s (%zu files) restores the rollback floor at the next start "
		       "or with `stork fsck --repair`\n",
		       dir, rs->repo, rs->ncopy);
		break;
	}
}

int cli_store_status(const char *dir)
{
	struct store_stats st = {0};
	struct store_usage u = {0};
	struct store *s = NULL;
	char b[32], idx[4096];
	int r;

	/* Status only looks: it must not make a store where there is none. */
	snprintf(idx, sizeof(idx), "%s/index", dir);
	if (access(idx, F_OK) < 0 &&
	    (snprintf(idx, sizeof(idx), "%s/trusted", dir) < 0 || access(idx, F_OK) < 0)) {
		fprintf(stderr,
			"stork status: %s: neither a storkfs mount nor a node store (no index/)\n",
			dir);
		return CLI_USAGE;
	}
	/* Read-only, unless the index is gone while trusted/ keeps its copy: then opening makes
	 * an empty index (as the next mount or extract would), so that what the copy holds and
	 * restores can be shown (store/README.md "Trusted metadata"). */
	snprintf(idx, sizeof(idx), "%s/index", dir);
	r = store_open_flags(dir, access(idx, F_OK) < 0 ? 0 : STORE_OPEN_READONLY, &s);
	if (r < 0) {
		cli_fail("status", r, "%s", dir);
		return cli_exit_input(r);
	}
	r = store_stats(s, &st);
	if (r < 0) {
		store_close(s);
		cli_fail("status", r, "%s", dir);
		return cli_exit_system(r);
	}
	printf("store %s\n", dir);
	printf("  objects    %" PRIu64 " (%s, %" PRIu64 " bytes)\n", st.objects,
	       cli_bytes(st.bytes, b), st.bytes);
	if (store_usage(s, &u) == 0) {
		if (u.quota)
			printf("  quota      %s (%" PRIu64 " bytes; above it the least recently "
			       "used unpinned objects are evicted down to %d%%)\n",
			       cli_bytes(u.quota, b), u.quota, STORE_QUOTA_LOW_PERCENT);
		else
			printf("  quota      none\n");
		printf("  pinned     %" PRIu64 " objects (%s, %" PRIu64 " bytes; %" PRIu64
		       " pin sets)\n",
		       u.pinned_objects, cli_bytes(u.pinned_bytes, b), u.pinned_bytes, u.owners);
		printf("  evictions  %" PRIu64 " (%s, %" PRIu64 " bytes)\n", u.evictions,
		       cli_bytes(u.evicted_bytes, b), u.evicted_bytes);
	} else {
		printf("  pinned     %" PRIu64 "\n", st.pinned);
	}
	printf("  manifests  %" PRIu64 "\n", st.manifests);
	for (size_t i = 0; i < st.nrepos; i++) {
		const struct store_repo_status *rs = &st.repos[i];
		char when[64] = "never", shown[1024];

		if (rs->last_refresh > 0) {
			time_t t = (time_t)rs->last_refresh;
			struct tm tm;

			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			snprintf(when + strlen(when), sizeof(when) - strlen(when), " (%lds ago)",
				 (long)(time(NULL) - t));
		}
		printf("repository %.16s\n", rs->repo);
		/* Noted without its password since it is so; an older storkfs kept it whole. */
		printf("  url           %s\n", rs->url && rs->url[0]
						   ? fetch_url_shown(rs->url, shown, sizeof(shown))
						   : "-");
		printf("  refreshed     %s\n", when);
		printf("  metadata      %zu files\n", rs->nmeta);
		print_index_lost(dir, rs);
		print_trusted_state(s, rs->repo);
	}
	store_stats_fini(&st);
	store_close(s);
	return CLI_OK;
}
