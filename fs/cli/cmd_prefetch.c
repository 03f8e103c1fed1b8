/* fs/cli/cmd_prefetch.c: `stork prefetch`, whole versions into the node store ahead of use.
 * Parsing and printing only: the work is fs_prefetch (fs/prefetch.c). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "fs/cli/cli.h"
#include "fs/fs.h"
#include "store/store.h"
#include "verify/verify.h"

static const char prefetch_help[] =
    "usage: stork prefetch --root ROOTFILE --store STOREDIR [--slice NAME] [OPTIONS] URL...\n"
    "                      PACKAGE...\n"
    "\n"
    "Fetch every object of some package versions into the node store STOREDIR ahead of use,\n"
    "many transfers at once, each verified before it is stored (as `stork extract` does), so\n"
    "that later extracts and mounts need no network. Objects the store holds are skipped.\n"
    "Mirrors URL... are tried in order (directories, file://, http://, https://): an\n"
    "argument with a '/' is a mirror, one without is a PACKAGE:\n"
    "\n"
    "  NAME            the latest version (dpkg order)\n"
    "  NAME=VERSION    that version\n"
    "  NAME=all        every version the repository signs\n"
    "\n"
    "On a terminal a progress bar shows bytes, objects, rate and time left; otherwise one\n"
    "summary line is printed at the end. An object no mirror delivers is named on stderr and\n"
    "the others go on. Exit 0 when everything is stored, 1 when content or metadata failed\n"
    "verification or an object is on no mirror, 2 for usage errors, 3 for system errors.\n"
    "\n"
    "  --jobs N                 objects in transfer at once (default 32)\n"
    "  --slice NAME             also every version slice NAME has installed (its current\n"
    "                           generation: stork install); then PACKAGE... may be "
    "omitted\n" CLI_NODE_HELP;

#define MAX_JOBS 1024

/* What the progress bar and the failure lines share: both write stderr. */
struct bar {
	pthread_mutex_t lock;
	bool tty;
	bool drawn; /* a bar is on the current line */
	char label[64];
};

static const char *mb(uint64_t n, char buf[32])
{
	snprintf(buf, 32, "%.1f MB", (double)n / 1e6);
	return buf;
}

static void draw(void *ctx, const struct fs_prefetch_progress *p, bool done)
{
	struct bar *b = ctx;
	char d[32], t[32], eta[32], rate[32];
	double fetched_b = (double)(p->bytes_done - p->bytes_present), speed;
	int width = 20, fill, pct;

	if (!b->tty)
		return;
	speed = p->seconds > 0 ? fetched_b / p->seconds : 0;
	if (done)
		snprintf(eta, sizeof(eta), "done");
	else if (speed > 0)
		snprintf(eta, sizeof(eta), "ETA %s",
			 fs_format_duration(
			     (int64_t)((double)(p->bytes - p->bytes_done) / speed + 0.999), t));
	else
		snprintf(eta, sizeof(eta), "ETA ?");
	snprintf(rate, sizeof(rate), "%.1f MB/s", speed / 1e6);
	pct = p->bytes ? (int)((double)p->bytes_done * 100 / (double)p->bytes) : 100;
	if (pct > 100)
		pct = 100;
	fill = pct * width / 100;
	pthread_mutex_lock(&b->lock);
	fprintf(stderr,
		"\r\033[K%s [%.*s%*s] %3d%% %s / %s, %" PRIu64 "/%" PRIu64 " objects, %s, %s",
		b->label, fill, "####################", width - fill, "", pct, mb(p->bytes_done, d),
		mb(p->bytes, t), p->objects_done, p->objects, rate, eta);
	if (done)
		fputc('\n', stderr);
	b->drawn = !done;
	fflush(stderr);
	pthread_mutex_unlock(&b->lock);
}

static void failed(void *ctx, const char *what, const uint8_t id[VERIFY_HASH_LEN], int err,
		   const char *detail)
{
	struct bar *b = ctx;
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	pthread_mutex_lock(&b->lock);
	if (b->drawn)
		fputs("\r\033[K", stderr);
	b->drawn = false;
	fprintf(stderr, "stork prefetch: %s: object %s: %s\n", what, hex,
		detail && *detail ? detail : storkfs_strerror(err));
	pthread_mutex_unlock(&b->lock);
}

static void note(void *ctx, const char *line)
{
	struct bar *b = ctx;

	pthread_mutex_lock(&b->lock);
	if (b->drawn)
		fputs("\r\033[K", stderr);
	b->drawn = false;
	fprintf(stderr, "stork prefetch: %s\n", line);
	pthread_mutex_unlock(&b->lock);
}

/* The manifests a PACKAGE argument names, appended to *ms. @return an exit code. */
static int resolve(struct fs_repo *repo, const char *arg, struct verify_manifest ***ms, size_t *n,
		   size_t *cap)
{
	char *name = strdup(arg), *eq, **versions = NULL;
	const char *want;
	size_t nv = 0, from, to;
	int r, code = CLI_OK;

	if (!name)
		return CLI_SYSTEM;
	eq = strchr(name, '=');
	want = eq ? eq + 1 : "latest";
	if (eq)
		*eq = '\0';
	r = verify_check_package_name(name);
	if (r == 0 && strcmp(want, "latest") && strcmp(want, "all"))
		r = verify_check_version(want);
	if (r < 0) {
		code = cli_usage_error("prefetch", "%s: %s", arg, stork_error_detail());
		goto out;
	}
	if (!strcmp(want, "latest") || !strcmp(want, "all")) {
		r = fs_repo_versions(repo, name, &versions, &nv);
		if (r < 0) {
			cli_fail("prefetch", r, "%s", name);
			code = cli_exit_verify(r);
			goto out;
		}
		from = !strcmp(want, "all") ? 0 : nv - 1;
		to = nv;
	} else {
		versions = calloc(1, sizeof(*versions));
		if (versions)
			versions[0] = strdup(want);
		if (!versions || !versions[0]) {
			code = CLI_SYSTEM;
			goto out;
		}
		nv = 1;
		from = 0;
		to = 1;
	}
	for (size_t i = from; i < to; i++) {
		if (*n == *cap) {
			size_t c = *cap ? 2 * *cap : 8;
			struct verify_manifest **nm = realloc(*ms, c * sizeof(*nm));

			if (!nm) {
				code = CLI_SYSTEM;
				goto out;
			}
			*ms = nm;
			*cap = c;
		}
		r = fs_repo_manifest(repo, name, versions[i], &(*ms)[*n]);
		if (r < 0) {
			cli_fail("prefetch", r, "%s %s", name, versions[i]);
			code = cli_exit_verify(r);
			goto out;
		}
		(*n)++;
	}
out:
	for (size_t i = 0; i < nv; i++)
		free(versions[i]);
	free(versions);
	free(name);
	return code;
}

/* "hello 2.10-3", "hello 2.10-3, hello 2.11-1", "hello 2.10-3 and 4 more versions". */
static void describe(struct verify_manifest *const *ms, size_t n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		int k;

		if (i == 2 && n > 3) {
			snprintf(buf + used, len - used, " and %zu more versions", n - 2);
			return;
		}
		k = snprintf(buf + used, len - used, "%s%s %s", i ? ", " : "", ms[i]->name,
			     ms[i]->version);
		if (k < 0)
			return;
		used += (size_t)k;
	}
}

int cmd_prefetch(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"jobs", required_argument, NULL, 'j'},
	    {"slice", required_argument, NULL, 'l'},
	    CLI_NODE_LONGOPTS,
	    {0},
	};
	size_t nms = 0, capms = 0;
	struct cli_node n;
	struct fs_prefetch_opts po = {0};
	struct fs_prefetch_progress st = {0};
	struct verify_manifest **ms = NULL;
	struct bar bar = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct fs_repo *repo = NULL;
	struct store *s = NULL;
	const char *rootfile, *storedir, *slice = NULL;
	struct store_gen *g = NULL;
	char what[512], a[32], fails[48], packs[96];
	uint64_t v;
	int c, r, code = CLI_OK, first_pkg, nmirrors;

	cli_node_init(&n);
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:l:" CLI_NODE_SHORTOPTS, opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(prefetch_help, stdout);
			return CLI_OK;
		case 'j':
			if (cli_parse_size(optarg, &v) < 0 || v < 1 || v > MAX_JOBS)
				return cli_usage_error("prefetch",
						       "--jobs %s: expected a number from 1 to %d",
						       optarg, MAX_JOBS);
			po.jobs = (unsigned)v;
			break;
		case 'l':
			if (verify_check_package_name(optarg) < 0)
				return cli_usage_error("prefetch", "--slice %s: not a slice name",
						       optarg);
			slice = optarg;
			break;
		default:
			r = cli_node_option("prefetch", c, optarg, &n);
			if (r < 0)
				return CLI_USAGE;
			if (r == 0)
				return cli_usage_error("prefetch", "unknown option");
		}
	}
	rootfile = n.rootfile;
	storedir = n.storedir;
	if (!rootfile || !storedir)
		return cli_usage_error("prefetch", "needs --root ROOTFILE and --store STOREDIR");
	/* Mirrors first (an argument with a '/'), then packages (none has one). */
	for (first_pkg = optind; first_pkg < argc && strchr(argv[first_pkg], '/'); first_pkg++)
		;
	nmirrors = first_pkg - optind;
	if (nmirrors < 1 || (first_pkg == argc && !slice))
		return cli_usage_error("prefetch", "expected URL... NAME[=VERSION|=all]... (a "
						   "mirror has a '/'; write a directory as ./DIR)");
	for (int i = first_pkg; i < argc; i++)
		if (strchr(argv[i], '/'))
			return cli_usage_error("prefetch",
					       "%s: mirrors come before the packages (and "
					       "package names have no '/')",
					       argv[i]);

	code = cli_node_open("prefetch", &n, (const char *const *)argv + optind, (size_t)nmirrors,
			     &s, &repo);
	if (code != CLI_OK)
		goto out;
	if (slice) { /* the slice's installed versions (fs/README.md "Installing") */
		r = store_gen_get(s, fs_repo_id(repo), slice, 0, &g);
		if (r < 0) {
			cli_fail("prefetch", r, "slice %s", slice);
			code = r == -ENOENT ? CLI_USAGE : cli_exit_system(r);
			goto out;
		}
		for (size_t i = 0; i < g->npkgs && code == CLI_OK; i++) {
			char arg[600];

			snprintf(arg, sizeof(arg), "%s=%s", g->pkgs[i].name, g->pkgs[i].version);
			code = resolve(repo, arg, &ms, &nms, &capms);
		}
	}
	for (int i = first_pkg; i < argc && code == CLI_OK; i++)
		code = resolve(repo, argv[i], &ms, &nms, &capms);
	if (code != CLI_OK)
		goto out;

	describe(ms, nms, what, sizeof(what));
	bar.tty = isatty(STDERR_FILENO);
	snprintf(bar.label, sizeof(bar.label), "%s", nms == 1 ? what : "prefetch");
	po.progress = draw;
	po.progress_ctx = &bar;
	po.failed = failed;
	po.failed_ctx = &bar;
	po.note = note;
	po.note_ctx = &bar;
	r = fs_prefetch(repo, ms, nms, &po, &st);
	fails[0] = '\0';
	if (st.failed)
		snprintf(fails, sizeof(fails), ", %" PRIu64 " failed", st.failed);
	packs[0] = '\0';
	if (st.packs)
		snprintf(packs, sizeof(packs),
			 "; %" PRIu64 " of them from %" PRIu64 " version pack%s", st.packed,
			 st.packs, st.packs == 1 ? "" : "s");
	printf("prefetched %s: %" PRIu64 " objects (%" PRIu64 " fetched, %" PRIu64
	       " already stored%s), %s in %.1f s (%.1f MB/s)%s\n",
	       what, st.objects, st.fetched, st.present, fails, mb(st.bytes, a), st.seconds,
	       st.seconds > 0 ? (double)st.bytes / 1e6 / st.seconds : 0.0, packs);
	if (r < 0) {
		cli_fail("prefetch", r, "%s", what);
		code = r == -ENOMEM ? CLI_SYSTEM : cli_exit_verify(r);
	}
out:
	store_gen_free(g);
	for (size_t i = 0; i < nms; i++)
		verify_manifest_free(ms[i]);
	free(ms);
	cli_node_close(s, repo);
	return code;
}
