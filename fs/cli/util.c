/* fs/cli/util.c: argument parsing, error printing and progress output for `stork`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "fs/fs.h"
#include "fs/cli/cli.h"
#include "verify/verify.h"

void cli_fail(const char *cmd, int err, const char *fmt, ...)
{
	const char *detail = stork_error_detail();
	char line[2048], shown[sizeof(line)];
	va_list ap;

	if (detail[0]) {
		snprintf(line, sizeof(line), "%s", detail);
	} else {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		snprintf(line + strlen(line), sizeof(line) - strlen(line), ": %s",
			 storkfs_strerror(err));
	}
	/* A mirror URL may carry a password: never on the terminal (fetch_url_shown). */
	fprintf(stderr, "stork %s: %s\n", cmd, fetch_url_shown(line, shown, sizeof(shown)));
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stork %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'stork %s --help')\n", cmd);
	return CLI_USAGE;
}

int cli_exit_input(int err)
{
	if (err <= -20000 && err > -21000)
		return CLI_USAGE;
	switch (err) {
	case -ENOENT:
	case -EACCES:
	case -EEXIST:
	case -ENOTDIR:
	case -EISDIR:
	case -EINVAL:
	case -EPERM:
	case -ENOTEMPTY:
		return CLI_USAGE;
	default:
		return CLI_SYSTEM;
	}
}

int cli_exit_verify(int err)
{
	if (err <= -20000 && err > -21000)
		return CLI_VERIFY_FAILED;
	if (err == -ENOENT)
		return CLI_VERIFY_FAILED;
	return cli_exit_system(err);
}

int cli_exit_system(int err)
{
	return err == -EACCES || err == -EPERM ? CLI_USAGE : CLI_SYSTEM;
}

static int parse_scaled(const char *s, const char *suffixes, const uint64_t *scale, uint64_t *ret)
{
	unsigned long long v;
	char *end;
	const char *p;
	uint64_t mult = 1;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		if (end[1] || !(p = strchr(suffixes, *end)))
			return -EINVAL;
		mult = scale[p - suffixes];
	}
	if (v > UINT64_MAX / mult)
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *ret)
{
	static const uint64_t scale[] = {1ULL << 10, 1ULL << 20, 1ULL << 30, 1ULL << 40};

	return parse_scaled(s, "KMGT", scale, ret);
}

int cli_parse_duration(const char *s, int64_t *ret)
{
	static const uint64_t scale[] = {1, 60, 3600, 86400};
	uint64_t v;
	int r = parse_scaled(s, "smhd", scale, &v);

	if (r < 0)
		return r;
	if (v == 0 || v > (uint64_t)100 * 365 * 86400)
		return -EINVAL;
	*ret = (int64_t)v;
	return 0;
}

int cli_read_file(const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = -1, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		stork_errorf("%s: %s", path, strerror(-r));
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len + 4096 + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			uint8_t *nbuf = realloc(buf, ncap);

			if (!nbuf) {
				r = -ENOMEM;
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			stork_errorf("%s: %s", path, strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > maxlen) {
			r = STORK_ETOOBIG;
			stork_errorf("%s: larger than %zu bytes", path, maxlen);
			goto out;
		}
	}
	if (!buf && !(buf = malloc(1))) {
		r = -ENOMEM;
		goto out;
	}
	buf[len] = 0;
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

const char *cli_bytes(uint64_t n, char buf[32])
{
	verify_size_text(n, "B", buf, 32);
	return buf;
}

/* Sources smaller than this finish before a bar would help. */
#define PROGRESS_MIN_TOTAL (8ULL << 20)

void cli_progress_update(void *ctx, uint64_t done, uint64_t total)
{
	struct cli_progress *p = ctx;
	char a[32], b[32];
	int width = 30, fill;

	if (!p->active) {
		if ((total ? total : done) < PROGRESS_MIN_TOTAL || !isatty(STDERR_FILENO))
			return;
		p->active = true;
	}
	if (!total) {
		/* A directory: its size is known only once walked. A line per 1% of what was
		 * read so far at most. */
		if (done - p->last_drawn < p->last_drawn / 100)
			return;
		p->last_drawn = done;
		fprintf(stderr, "\r%s: %s read", p->label, cli_bytes(done, a));
		fflush(stderr);
		return;
	}
	if (done > total)
		done = total;
	if (done - p->last_drawn < (total / 200 ? total / 200 : 1) && done != total)
		return;
	p->last_drawn = done;
	fill = (int)((double)done / (double)total * width);
	fprintf(stderr, "\r%s [%.*s%*s] %3d%% %s / %s", p->label, fill,
		"##############################", width - fill, "",
		(int)((double)done * 100 / (double)total), cli_bytes(done, a), cli_bytes(total, b));
	fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->active)
		fprintf(stderr, "\r\033[K");
	p->active = false;
}

/* ------------------------------------------------------------------------------------------ */
/* The node options of extract and prefetch. */

void cli_node_init(struct cli_node *n)
{
	memset(n, 0, sizeof(*n));
	n->ro.fetch.mirror_retry = -1;
}

/* --low-speed-limit BYTES: a size (cli_parse_size). @return 0; -1 (the usage error is printed). */
static int parse_rate(const char *cmd, const char *opt, const char *arg, long *ret)
{
	uint64_t v;

	if (cli_parse_size(arg, &v) < 0 || v > 86400 * 365) {
		cli_usage_error(cmd, "%s %s: expected a number", opt, arg);
		return -1;
	}
	*ret = (long)v;
	return 0;
}

/* --timeout SECS and the like: a duration as storkfs's -o options take them (fs_parse_duration:
 * 90, 30s, 5m, 1h, 7d), at most a year. @return 0; -1 (the usage error is printed). */
static int parse_secs(const char *cmd, const char *opt, const char *arg, long *ret)
{
	int64_t v;

	if (fs_parse_duration(opt, arg, 86400 * 365, &v) < 0) {
		cli_usage_error(cmd, "%s", stork_error_detail());
		return -1;
	}
	*ret = (long)v;
	return 0;
}

/* --peer URL[,URL...]: the URLs into n->peers (fetch_opts.peers, each checked by fetch_new),
 * split at the commas of n's copy of arg. A later --peer replaces an earlier one.
 * @return 0; -1 (the usage error is printed). */
static int split_peers(const char *cmd, const char *arg, struct cli_node *n)
{
	struct fetch_opts *f = &n->ro.fetch;
	size_t len = strlen(arg), k = 0;
	char *p = n->peer_text;

	if (len >= sizeof(n->peer_text)) {
		cli_usage_error(cmd, "--peer: longer than %zu characters",
				sizeof(n->peer_text) - 1);
		return -1;
	}
	memcpy(n->peer_text, arg, len + 1);
	while (len) {
		char *comma = strchr(p, ',');

		if (k == CLI_NODE_MAX_PEERS) {
			cli_usage_error(cmd, "--peer: at most %d peers", CLI_NODE_MAX_PEERS);
			return -1;
		}
		n->peers[k++] = p;
		if (!comma)
			break;
		*comma = '\0';
		p = comma + 1;
	}
	f->peers = k ? n->peers : NULL;
	f->npeers = k;
	return 0;
}

int cli_signer_option(int c, const char *arg, struct cli_signer *k)
{
	if (c == 'k')
		k->keydir = arg;
	else if (c == 'K')
		k->keyfile = arg;
	else
		return 0;
	return 1;
}

int cli_node_option(const char *cmd, int c, const char *arg, struct cli_node *n)
{
	struct fetch_opts *f = &n->ro.fetch;
	uint64_t at;

	switch (c) {
	case 'r':
		n->rootfile = arg;
		return 1;
	case 's':
		n->storedir = arg;
		return 1;
	case 'c':
		f->cainfo = arg;
		return 1;
	case 'N':
		f->netrc = arg;
		return 1;
	case 'C':
		return parse_secs(cmd, "--connect-timeout", arg, &f->connect_timeout) < 0 ? -1 : 1;
	case 'L':
		return parse_rate(cmd, "--low-speed-limit", arg, &f->low_speed_limit) < 0 ? -1 : 1;
	case 'T':
		return parse_secs(cmd, "--low-speed-time", arg, &f->low_speed_time) < 0 ? -1 : 1;
	case 't':
		return parse_secs(cmd, "--timeout", arg, &f->timeout) < 0 ? -1 : 1;
	case 'P':
		f->proxies = arg;
		return 1;
	case 'R':
		return parse_secs(cmd, "--proxy-retry", arg, &f->proxy_retry) < 0 ? -1 : 1;
	case 'p':
		return split_peers(cmd, arg, n) < 0 ? -1 : 1;
	case 'Q':
		return parse_secs(cmd, "--peer-retry", arg, &f->peer_retry) < 0 ? -1 : 1;
	case 'x':
		if (n->nexec == CLI_NODE_MAX_EXEC) {
			cli_usage_error(cmd, "--exec: at most %d of them", CLI_NODE_MAX_EXEC);
			return -1;
		}
		n->exec[n->nexec++] = arg;
		f->exec = n->exec;
		return 1;
	case 'M':
		if (cli_parse_size(arg, &n->store_max) < 0) {
			cli_usage_error(cmd,
					"--store-max %s: expected a size in bytes, with an "
					"optional K, M, G or T (0: no quota)",
					arg);
			return -1;
		}
		n->store_max_set = true;
		return 1;
	case 'a':
		if (cli_parse_size(arg, &at) < 0 || at > INT64_MAX) {
			cli_usage_error(cmd, "--at %s: expected seconds since the epoch", arg);
			return -1;
		}
		n->ro.now = (time_t)at;
		return 1;
	default:
		return 0;
	}
}

int cli_node_open(const char *cmd, const struct cli_node *n, const char *const *mirrors,
		  size_t nmirrors, struct store **ret_s, struct fs_repo **ret_repo)
{
	struct fs_repo *repo = NULL;
	struct store *s = NULL;
	uint8_t *root = NULL;
	size_t rootlen = 0;
	int r, code;

	r = cli_read_file(n->rootfile, VERIFY_MAX_ROOT_LEN, &root, &rootlen);
	if (r < 0) {
		cli_fail(cmd, r, "%s", n->rootfile);
		return cli_exit_input(r);
	}
	r = store_open(n->storedir, &s);
	if (r < 0) {
		cli_fail(cmd, r, "%s", n->storedir);
		code = cli_exit_input(r);
		goto fail;
	}
	if (n->store_max_set) {
		r = store_quota_set(s, n->store_max);
		if (r < 0) {
			cli_fail(cmd, r, "%s: --store-max", n->storedir);
			code = cli_exit_system(r);
			goto fail;
		}
	}
	r = fs_repo_open(s, root, rootlen, mirrors, nmirrors, &n->ro, &repo);
	if (r < 0) {
		cli_fail(cmd, r, "%s", n->rootfile);
		code = cli_exit_input(r);
		goto fail;
	}
	r = fs_repo_refresh(repo);
	if (r == 1) {
		fprintf(stderr, "stork %s: warning: %s\n", cmd, stork_error_detail());
	} else if (r < 0) {
		cli_fail(cmd, r, "refreshing metadata");
		code = cli_exit_verify(r);
		goto fail;
	}
	free(root);
	*ret_s = s;
	*ret_repo = repo;
	return CLI_OK;
fail:
	cli_node_close(s, repo);
	free(root);
	return code;
}

void cli_node_close(struct store *s, struct fs_repo *repo)
{
	fs_repo_close(repo);
	store_close(s);
}

void cli_client_args_parse(const char *cmd, const char *help, int argc, char **argv, int min_pos,
			   int max_pos, const char *positionals, bool policy_allowed,
			   struct cli_client_args *a, bool *ret_exit, int *ret_code)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"root", required_argument, NULL, 'r'},
	    {"at", required_argument, NULL, 'a'},
	    {"cacert", required_argument, NULL, 'c'},
	    {"policy", required_argument, NULL, 'p'},
	    {"netrc", required_argument, NULL, 'n'},
	    {0},
	};
	uint64_t at;
	int c;

	*ret_exit = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hr:a:c:p:n:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			*ret_code = CLI_OK;
			return;
		case 'r':
			a->root = optarg;
			break;
		case 'a':
			if (cli_parse_size(optarg, &at) < 0 || at > INT64_MAX) {
				*ret_code = cli_usage_error(cmd,
							    "--at %s: expected seconds since "
							    "the epoch",
							    optarg);
				return;
			}
			a->at = (time_t)at;
			break;
		case 'c':
			a->fo.cainfo = optarg;
			break;
		case 'n':
			a->fo.netrc = optarg;
			break;
		case 'p':
			if (!policy_allowed) {
				*ret_code = cli_usage_error(cmd, "--policy is for ls, why and "
								 "extract");
				return;
			}
			a->policy = optarg;
			break;
		default:
			*ret_code = cli_usage_error(cmd, "unknown option");
			return;
		}
	}
	if (!a->root) {
		*ret_code =
		    cli_usage_error(cmd, "needs --root ROOTFILE (the pinned root metadata)");
		return;
	}
	if (argc - optind < min_pos || argc - optind > max_pos) {
		*ret_code = cli_usage_error(cmd, "expected REPO%s", positionals);
		return;
	}
	a->repo = argv[optind];
	fetch_url_shown(a->repo, a->shown, sizeof(a->shown));
	if (argc - optind > 1)
		a->name = argv[optind + 1];
	if (argc - optind > 2)
		a->version = argv[optind + 2];
	*ret_exit = false;
}
