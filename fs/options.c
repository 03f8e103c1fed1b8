/* fs/options.c: storkfs's command line: the -o table, each option's check, the checks of the
 * whole (the transport chain is tried on the terminal, not in the log of a daemon that failed to
 * mount), and the fetch options the mount's options make (fsd_chain_opts).
 *
 *   storkfs [-f] [-d] -o root=FILE,store=DIR[,timeout=SECS][,refresh=SECS][,allow_setuid]
 *           [,max_stale=DURATION][,proxy=SPEC][,peer=URL]...[,exec=SCHEME=COMMAND]...
 *           URL... MOUNTPOINT
 *
 * Errors go to stderr: options are parsed before the daemon detaches.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

#define DEFAULT_TIMEOUT	     60
#define DEFAULT_REFRESH	     300
#define DEFAULT_MIRROR_RETRY 1800 /* CernVM-FS's host reset */
#define DEFAULT_MAX_TREES    64
#define DEFAULT_MAX_STALE    (7 * 86400) /* see fs/README.md "Stale metadata" */

static const char usage[] =
    "usage: storkfs [-f] [-d] -o root=FILE,store=DIR[,OPTIONS] URL... MOUNTPOINT\n"
    "Mount the packages of a signed repository read-only at MOUNTPOINT: /<package>/<version>/\n"
    "with a `latest` symlink per package. Metadata is verified against the pinned root FILE;\n"
    "file contents are fetched from the mirrors URL... (tried in order) on first open,\n"
    "verified, and kept in the node store DIR, shared with other mounts and `stork extract`.\n"
    "\n"
    "storkfs options:\n"
    "    -o root=FILE         pinned root metadata (required)\n"
    "    -o store=DIR         node store directory (required; created if missing)\n"
    "    -o timeout=SECS      longest network wait of one file operation (default 60)\n"
    "    -o refresh=SECS      metadata refresh interval (default 300); SIGHUP refreshes now\n"
    "                         (every SECS takes a unit too: 30s, 5m, 1h, 7d)\n"
    "    -o mirror_retry=SECS a failed mirror goes to the back of the order for SECS\n"
    "                         (default 1800; it is still tried when the others fail)\n"
    "    -o max_trees=N       version trees kept in memory when unused (default 64)\n"
    "    -o allow_setuid      keep setuid/setgid bits (dropped by default); the kernel honours\n"
    "                         them only on a mount with -o suid too (root only)\n"
    "    -o stack             mount even on a directory that is already a storkfs mount\n"
    "                         (refused by default: the new mount hides the old one)\n"
    "    -o noallow_other     mounted by root: only root may read the mount (default: every\n"
    "                         user may, the kernel checking the published modes)\n"
    "    -o nopassthrough     read every file through the daemon (default: the kernel reads\n"
    "                         a stored file's object itself, FUSE passthrough, where it can)\n"
    "    -o policy=FILE       this slice's trust policy (verify/README.md); re-read on SIGHUP\n"
    "    -o slices=DIR        more slices: each DIR/NAME.policy shows under /.slices/NAME/\n"
    "                         (fs/README.md \"Slices\"); re-read on SIGHUP and each refresh\n"
    "    -o store_max=SIZE    the store's quota (K, M, G, T: powers of 1024; 0: none), kept\n"
    "                         in the store for every user of it: above it the least recently\n"
    "                         used objects nothing pins are evicted down to 75%\n"
    "    -o max_stale=DURATION  when refreshes fail, keep serving metadata this long after it\n"
    "                         expired (default 7d; units s, m, h, d; 0 = stop at expiry;\n"
    "                         inf = never stop: no bound on a freeze attack)\n"
    "\n"
    "The transport chain (fetch/README.md): peers first, then each mirror through its proxies:\n"
    "    -o proxy=SPEC        caching proxies for http(s) mirrors, CernVM-FS syntax:\n"
    "                         'http://p1:3128|http://p2:3128;DIRECT' ('|' = same group,\n"
    "                         load-balanced; ';' = next group; DIRECT = no proxy)\n"
    "    -o proxy_retry=SECS  skip a failed proxy this long (default 300)\n"
    "    -o peer=URL          another node's store (objects/ over http), tried before the\n"
    "                         mirrors for objects; repeat for more peers, tried in order\n"
    "    -o peer_retry=SECS   skip a failed peer this long (default 300)\n"
    "    -o netrc=FILE        user names and passwords of http(s) mirrors and peers\n"
    "                         (curl's netrc format; mode 600): keeps them out of URLs, which\n"
    "                         every user sees in ps while the mount starts\n"
    "    -o exec=SCHEME=COMMAND  fetch SCHEME: mirror URLs by running COMMAND (split on\n"
    "                         spaces; \\040 in fstab) with the URL as its last argument;\n"
    "                         repeatable, at most 8 (fetch/README.md, \"The exec transport\")\n"
    "    -o prefetch=NAME[=VERSION|=all]  fetch every object of that version (default the\n"
    "                         latest; all: every version) into the store once the mount is\n"
    "                         ready and after each refresh; repeatable, at most 16\n"
    "    -o connect_timeout=SECS  per connection attempt (default 10; peers: at most 2)\n"
    "    -o low_speed_limit=BYTES a transfer slower than this (default 1024 B/s)...\n"
    "    -o low_speed_time=SECS   ...for this long is dropped and the next source asked\n"
    "                         (default min(10, max(1, timeout/3)): a trickling mirror is\n"
    "                         given up in time for the next one within one open)\n"
    "    -f                   stay in the foreground\n"
    "    -d                   debug output (implies -f)\n"
    "\n";

/* Options fuse_opt cannot check as they need (repeatable ones, numbers with a range and a
 * helpful error): opt_proc parses them. */
enum {
	KEY_TIMEOUT = 1,
	KEY_REFRESH,
	KEY_MIRROR_RETRY,
	KEY_PROXY,
	KEY_PROXY_RETRY,
	KEY_PEER,
	KEY_PEER_RETRY,
	KEY_EXEC,
	KEY_PREFETCH,
	KEY_CONNECT_TIMEOUT,
	KEY_LOW_SPEED_LIMIT,
	KEY_LOW_SPEED_TIME,
	KEY_STORE_MAX,
};

#define OPT(t, p)                                                                                  \
	{                                                                                          \
		t, offsetof(struct fsd_args, conf.p), 1                                            \
	}
/* One option a line. */
/* clang-format off */
static const struct fuse_opt opt_spec[] = {
    OPT("root=%s", rootfile),
    OPT("store=%s", storedir),
    OPT("policy=%s", policy),
    OPT("slices=%s", slices),
    FUSE_OPT_KEY("timeout=", KEY_TIMEOUT),
    FUSE_OPT_KEY("refresh=", KEY_REFRESH),
    FUSE_OPT_KEY("mirror_retry=", KEY_MIRROR_RETRY),
    OPT("max_trees=%u", max_trees),
    OPT("max_stale=%s", max_stale_arg),
    OPT("allow_setuid", allow_setuid),
    OPT("noallow_other", no_allow_other),
    OPT("stack", stack),
    OPT("nopassthrough", no_passthrough),
    OPT("netrc=%s", netrc),
    FUSE_OPT_KEY("proxy=", KEY_PROXY),
    FUSE_OPT_KEY("proxy_retry=", KEY_PROXY_RETRY),
    FUSE_OPT_KEY("peer=", KEY_PEER),
    FUSE_OPT_KEY("peer_retry=", KEY_PEER_RETRY),
    FUSE_OPT_KEY("exec=", KEY_EXEC),
    FUSE_OPT_KEY("prefetch=", KEY_PREFETCH),
    FUSE_OPT_KEY("connect_timeout=", KEY_CONNECT_TIMEOUT),
    FUSE_OPT_KEY("low_speed_limit=", KEY_LOW_SPEED_LIMIT),
    FUSE_OPT_KEY("low_speed_time=", KEY_LOW_SPEED_TIME),
    FUSE_OPT_KEY("store_max=", KEY_STORE_MAX),
    OPT("-h", show_help),
    OPT("--help", show_help),
    OPT("-V", show_version),
    OPT("--version", show_version),
    FUSE_OPT_END,
};
/* clang-format on */

/* Options that only mean something to mount(8) and fstab: mount.fuse3 passes some of them
 * on, and the mount is read-only whatever they say. */
static bool fstab_only(const char *opt)
{
	static const char *const names[] = {"defaults", "_netdev", "auto",  "noauto", "nofail",
					    "user",	"nouser",  "users", "owner",  "rw"};

	if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0)
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(opt, names[i]) == 0)
			return true;
	return false;
}

/* Options of libfuse and mount(8) that libfuse takes: an unknown key near one of ours is a typo
 * of ours only when it is none of these ("ro" is not a misspelt "root"). */
static bool fuse_known(const char *key)
{
	/* clang-format off */
	static const char *const names[] = {
	    "allow_other", "allow_root", "auto_unmount", "blkdev", "blksize", "fsname", "subtype",
	    "max_read", "default_permissions", "debug", "ro", "suid", "nosuid", "dev", "nodev",
	    "exec", "noexec", "async", "sync", "dirsync", "atime", "noatime", "relatime",
	    "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime", "context",
	    "fscontext", "defcontext", "rootcontext", "clone_fd", "max_idle_threads",
	    "max_threads", "uid", "gid", "umask", "max_write", "max_readahead", "max_background",
	    "congestion_threshold", "time_gran", "nonempty", "user", "owner", "setuid",
	    "drop_privileges", "fd", "rootmode", "kernel_cache", "auto_cache", "direct_io"};
	/* clang-format on */

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(key, names[i]) == 0)
			return true;
	return false;
}

/* Levenshtein distance of two short words (at most 31 characters each; longer: far). */
static unsigned distance(const char *a, size_t la, const char *b, size_t lb)
{
	unsigned row[32], prev, next;

	if (la > 31 || lb > 31)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			next = row[j];
			row[j] = prev + (a[i - 1] != b[j - 1]);
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			if (next + 1 < row[j])
				row[j] = next + 1;
			prev = next;
		}
	}
	return row[lb];
}

/* An -o option neither storkfs nor libfuse knows, within two edits of one of storkfs's
 * (stor=, roots=, refesh=): libfuse would refuse it only after the start's network work, with
 * no hint. Say which was meant. @return true when refused (said so on stderr). */
static bool misspelt(const char *opt)
{
	size_t len = strcspn(opt, "="), best_len = 0;
	const char *best = NULL;
	unsigned best_d = 3;
	char key[32];

	if (len >= sizeof(key))
		return false;
	memcpy(key, opt, len);
	key[len] = '\0';
	if (fuse_known(key))
		return false;
	for (const struct fuse_opt *o = opt_spec; o->templ; o++) {
		size_t n = strcspn(o->templ, "=%");
		unsigned d;

		if (o->templ[0] == '-')
			continue;
		d = distance(key, len, o->templ, n);
		if (d < best_d) {
			best_d = d;
			best = o->templ;
			best_len = n;
		}
	}
	if (!best)
		return false;
	fprintf(stderr, "storkfs: -o %s: unknown option; did you mean %.*s%s?\n", opt,
		(int)best_len, best, best[best_len] ? "=" : "");
	return true;
}

static int add_nonopt(struct fsd_args *p, const char *arg, size_t len)
{
	char **v = realloc(p->nonopts, (p->n + 1) * sizeof(*v));

	if (!v)
		return -1;
	p->nonopts = v;
	p->nonopts[p->n] = strndup(arg, len);
	if (!p->nonopts[p->n])
		return -1;
	p->n++;
	return 0;
}

/* "-o name=VALUE": a whole number from 1 to max into *ret. what says what it counts, for the
 * error ("seconds"). @return 0; -1 (said so on stderr). */
static int parse_count(const char *arg, const char *value, unsigned long max, const char *what,
		       unsigned *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(value, &end, 10);
	if (value[0] < '0' || value[0] > '9' || *end || errno || v < 1 || v > max) {
		fprintf(stderr, "storkfs: -o %s: expected a whole number of %s, 1 to %lu\n", arg,
			what, max);
		return -1;
	}
	*ret = (unsigned)v;
	return 0;
}

/* "-o store_max=SIZE": bytes, with an optional K, M, G or T (powers of 1024). @return 0; -1
 * (said so on stderr). */
static int parse_store_max(const char *arg, const char *value, struct fsd_conf *c)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(value, &end, 10);
	if (*end && end[1] == '\0' && (u = strchr(units, *end)))
		shift = 10 * (unsigned)(u - units + 1);
	if (value[0] < '0' || value[0] > '9' || errno || (*end && !shift) ||
	    (shift && v > (UINT64_MAX >> shift))) {
		fprintf(stderr,
			"storkfs: -o %s: expected a size in bytes, with an optional K, M, G or T "
			"(e.g. store_max=20G; 0: no quota)\n",
			arg);
		return -1;
	}
	c->store_max = (uint64_t)v << shift;
	c->store_max_set = 1;
	return 0;
}

/* "-o name=DURATION" (fs_parse_duration: 90, 30s, 5m, 1h, 7d), from least to most seconds, into
 * *ret. @return 0; -1 (said so on stderr). */
static int parse_secs(const char *arg, const char *value, int64_t least, int64_t most,
		      unsigned *ret)
{
	char name[32], shown[32];
	size_t len = (size_t)(value - 1 - arg);
	int64_t v;

	snprintf(name, sizeof(name), "%.*s", (int)len, arg);
	if (fs_parse_duration(name, value, most, &v) < 0) {
		fprintf(stderr, "storkfs: -o %s\n", stork_error_detail());
		return -1;
	}
	if (v < least) {
		fprintf(stderr,
			"storkfs: -o %s: expected a duration from %" PRId64 " to %" PRId64
			" seconds (%s; units s, m, h, d)\n",
			arg, least, most, fs_format_duration(most, shown));
		return -1;
	}
	*ret = (unsigned)v;
	return 0;
}

/* -o peer=URL and -o exec=SCHEME=COMMAND: one more, copied. @return 0; -1 (said so). */
static int add_peer(struct fsd_args *p, const char *arg, const char *url)
{
	char **v;

	if (!url[0] || !strstr(url, "://")) {
		fprintf(stderr, "storkfs: -o %s: expected a URL (e.g. peer=http://node2:8080/)\n",
			arg);
		return -1;
	}
	v = realloc(p->conf.peers, (p->conf.npeers + 1) * sizeof(*v));
	if (!v)
		return -1;
	p->conf.peers = v;
	v[p->conf.npeers] = strdup(url);
	if (!v[p->conf.npeers])
		return -1;
	p->conf.npeers++;
	return 0;
}

static int add_exec(struct fsd_args *p, const char *arg, const char *spec)
{
	const char *eq = strchr(spec, '=');

	if (!eq || eq == spec || !eq[1] || eq[1] == ' ') {
		fprintf(stderr,
			"storkfs: -o %s: expected exec=SCHEME=COMMAND (e.g. "
			"exec=bt+http=/usr/local/bin/stork-fetch-aria2c)\n",
			arg);
		return -1;
	}
	if (p->conf.nexec >= FSD_MAX_EXEC) {
		fprintf(stderr, "storkfs: -o %s: at most %d exec= options\n", arg, FSD_MAX_EXEC);
		return -1;
	}
	p->conf.exec[p->conf.nexec] = strdup(spec);
	if (!p->conf.exec[p->conf.nexec])
		return -1;
	p->conf.nexec++;
	return 0;
}

/* -o prefetch=NAME[=VERSION|=all]: one more, checked and copied. @return 0; -1 (said so). */
static int add_prefetch(struct fsd_args *p, const char *arg, const char *spec)
{
	char name[256];
	const char *eq = strchr(spec, '=');
	size_t len = eq ? (size_t)(eq - spec) : strlen(spec);
	int r = -1;

	if (len < sizeof(name)) {
		memcpy(name, spec, len);
		name[len] = '\0';
		r = verify_check_package_name(name);
		if (r == 0 && eq && strcmp(eq + 1, "all") && strcmp(eq + 1, "latest"))
			r = verify_check_version(eq + 1);
	}
	if (r < 0) {
		fprintf(stderr,
			"storkfs: -o %s: expected prefetch=NAME, NAME=VERSION or NAME=all (%s)\n",
			arg, len < sizeof(name) ? stork_error_detail() : "name too long");
		return -1;
	}
	if (p->conf.nprefetch >= FSD_MAX_PREFETCH) {
		fprintf(stderr, "storkfs: -o %s: at most %d prefetch= options\n", arg,
			FSD_MAX_PREFETCH);
		return -1;
	}
	p->conf.prefetch[p->conf.nprefetch] = strdup(spec);
	if (!p->conf.prefetch[p->conf.nprefetch])
		return -1;
	p->conf.nprefetch++;
	return 0;
}

/* One of the KEY_* options. @return 0; -1 (said so on stderr, or -ENOMEM). */
static int keyed_opt(struct fsd_args *p, const char *arg, int key)
{
	const char *value = strchr(arg, '=') + 1; /* the templates end in '=' */
	struct fsd_conf *c = &p->conf;

	switch (key) {
	case KEY_TIMEOUT:
		return parse_secs(arg, value, 1, 86400, &c->timeout);
	case KEY_REFRESH:
		return parse_secs(arg, value, 1, 86400 * 365, &c->refresh);
	case KEY_MIRROR_RETRY:
		return parse_secs(arg, value, 0, 86400 * 365, &c->mirror_retry);
	case KEY_PROXY:
		if (c->proxies) {
			fprintf(stderr,
				"storkfs: -o %s: proxy= given twice; write the whole chain in one "
				"(e.g. proxy=http://p1:3128|http://p2:3128;DIRECT)\n",
				arg);
			return -1;
		}
		c->proxies = strdup(value);
		return c->proxies ? 0 : -1;
	case KEY_PROXY_RETRY:
		return parse_secs(arg, value, 1, 86400 * 365, &c->proxy_retry);
	case KEY_PEER:
		return add_peer(p, arg, value);
	case KEY_PEER_RETRY:
		return parse_secs(arg, value, 1, 86400 * 365, &c->peer_retry);
	case KEY_EXEC:
		return add_exec(p, arg, value);
	case KEY_PREFETCH:
		return add_prefetch(p, arg, value);
	case KEY_CONNECT_TIMEOUT:
		return parse_secs(arg, value, 1, 3600, &c->connect_timeout);
	case KEY_LOW_SPEED_LIMIT:
		return parse_count(arg, value, 1UL << 30, "bytes per second", &c->low_speed_limit);
	case KEY_LOW_SPEED_TIME:
		return parse_secs(arg, value, 1, 3600, &c->low_speed_time);
	case KEY_STORE_MAX:
		return parse_store_max(arg, value, c);
	}
	return -1;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct fsd_args *p = data;

	(void)outargs;
	if (key > 0) {
		if (keyed_opt(p, arg, key) < 0) {
			p->bad = 1;
			return -1;
		}
		return 0; /* consumed */
	}
	if (key == FUSE_OPT_KEY_OPT && fstab_only(arg))
		return 0; /* dropped */
	if (key == FUSE_OPT_KEY_OPT && misspelt(arg)) {
		p->bad = 1;
		return -1;
	}
	if (key == FUSE_OPT_KEY_OPT && (!strcmp(arg, "suid") || !strcmp(arg, "nosuid")))
		p->conf.suid = arg[0] == 's'; /* noted, and kept for libfuse */
	if (key == FUSE_OPT_KEY_OPT && !strcmp(arg, "allow_other"))
		p->allow_other = 1;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1; /* keep it: fuse_parse_cmdline and the session take the rest */
	if (add_nonopt(p, arg, strlen(arg)) < 0) {
		p->bad = 1;
		return -1;
	}
	return 0;
}

/* One URL argument may name several mirrors separated by commas (mount(8) and fstab pass a
 * single source): "http://a/repo,http://b/repo". @return 0; -1 on -ENOMEM. */
static int split_mirrors(struct fsd_args *p)
{
	char **args = p->nonopts;
	size_t n = p->n;
	int ret = 0;

	p->nonopts = NULL;
	p->n = 0;
	for (size_t i = 0; i < n; i++) {
		const char *a = args[i], *comma;

		if (i + 1 == n) { /* the mountpoint */
			ret |= add_nonopt(p, a, strlen(a));
			continue;
		}
		for (; (comma = strchr(a, ',')); a = comma + 1)
			if (comma > a)
				ret |= add_nonopt(p, a, (size_t)(comma - a));
		if (*a)
			ret |= add_nonopt(p, a, strlen(a));
	}
	for (size_t i = 0; i < n; i++)
		free(args[i]);
	free(args);
	return ret;
}

/* Passwords in URLs of the command line (mirrors, peer=, proxy=) are overwritten with '*' once
 * the options are parsed (copied): ps shows the daemon's argv to every user. The command that
 * started it (mount(8), a shell) showed them while it ran: fs/README.md advises netrc=. */
static void scrub_argv(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		for (char *s = strstr(argv[i], "://"); s; s = strstr(s + 3, "://")) {
			size_t len;

			if (fetch_url_userinfo(s + 3, &len))
				memset(s + 3, '*', len);
		}
	}
}

unsigned fsd_low_speed_time(unsigned timeout)
{
	unsigned t = timeout / 3;

	return t < 1 ? 1 : t > 10 ? 10 : t;
}

void fsd_chain_opts(const struct fsd_conf *c, struct fetch_opts *o)
{
	o->connect_timeout = c->connect_timeout;
	o->low_speed_limit = c->low_speed_limit;
	o->low_speed_time = c->low_speed_time ? c->low_speed_time : fsd_low_speed_time(c->timeout);
	o->proxies = c->proxies;
	o->proxy_retry = c->proxy_retry;
	o->peers = (const char *const *)c->peers;
	o->npeers = c->npeers;
	o->peer_retry = c->peer_retry;
	o->exec = c->nexec ? (const char *const *)c->exec : NULL;
	o->netrc = c->netrc;
}

/* Before anything starts: whether the fetcher takes the proxy=, peer= and exec= options
 * (their syntax; nothing is contacted), each kind on its own so that the error names it, and
 * on the terminal rather than in the log of a daemon that failed to mount.
 * @return 0; -1 (said so on stderr). */
static int check_chain(const struct fsd_conf *c)
{
	static const char *const names[] = {"proxy", "peer", "exec", "netrc"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct fsd_conf one = {.timeout = c->timeout};
		struct fetch_opts o = {0};
		struct fetch *f = NULL;
		int ret;

		if (i == 0 && c->proxies) {
			one.proxies = c->proxies;
		} else if (i == 1 && c->npeers) {
			one.peers = c->peers;
			one.npeers = c->npeers;
		} else if (i == 2 && c->nexec) {
			memcpy(one.exec, c->exec, sizeof(one.exec));
			one.nexec = c->nexec;
		} else if (i == 3 && c->netrc) {
			one.netrc = c->netrc;
		} else {
			continue;
		}
		fsd_chain_opts(&one, &o);
		ret = fetch_new(&o, &f);
		fetch_free(f);
		if (ret < 0) {
			fprintf(stderr, "storkfs: -o %s: %s\n", names[i],
				ret == -EINVAL ? stork_error_detail() : storkfs_strerror(ret));
			return -1;
		}
	}
	return 0;
}

int fsd_args_parse(int argc, char **argv, struct fuse_args *args, struct fuse_cmdline_opts *cmd,
		   struct fsd_args *p)
{
	p->conf.timeout = DEFAULT_TIMEOUT;
	p->conf.refresh = DEFAULT_REFRESH;
	p->conf.mirror_retry = DEFAULT_MIRROR_RETRY;
	p->conf.max_trees = DEFAULT_MAX_TREES;
	if (fuse_opt_parse(args, p, opt_spec, opt_proc) < 0 || p->bad)
		return -1;
	scrub_argv(argc, argv);
	if (p->conf.show_help) {
		fputs(usage, stdout);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return 1;
	}
	if (p->conf.show_version) {
		printf("storkfs %s\n", STORKFS_VERSION);
		fuse_lowlevel_version();
		return 1;
	}
	if (fuse_parse_cmdline(args, cmd) != 0)
		return -1;
	if (split_mirrors(p) < 0)
		return -1;
	if (!p->conf.rootfile || !p->conf.storedir || p->n < 2) {
		fprintf(stderr, "storkfs: %s\n%s",
			p->n < 2 ? "expected URL... MOUNTPOINT" : "needs -o root=FILE,store=DIR",
			usage);
		return -1;
	}
	if (p->conf.max_trees == 0) {
		fprintf(stderr, "storkfs: -o max_trees=0: must be at least 1\n");
		return -1;
	}
	p->conf.max_stale = DEFAULT_MAX_STALE;
	if (p->conf.max_stale_arg &&
	    fs_parse_max_stale(p->conf.max_stale_arg, &p->conf.max_stale) < 0) {
		fprintf(stderr, "storkfs: -o %s\n", stork_error_detail());
		return -1;
	}
	if (p->conf.no_allow_other && p->allow_other) {
		fprintf(stderr, "storkfs: -o allow_other and -o noallow_other: choose one\n");
		return -1;
	}
	if (p->conf.allow_setuid && !p->conf.suid)
		fprintf(stderr,
			"storkfs: warning: -o allow_setuid keeps setuid/setgid bits, but the "
			"kernel ignores them on this nosuid mount: add -o suid (root only)\n");
	if (check_chain(&p->conf) < 0)
		return -1;
	return 0;
}

void fsd_args_fini(struct fsd_args *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->nonopts[i]);
	free(p->nonopts);
	free(p->conf.rootfile);
	free(p->conf.storedir);
	free(p->conf.policy);
	free(p->conf.slices);
	free(p->conf.max_stale_arg);
	free(p->conf.proxies);
	free(p->conf.netrc);
	for (size_t i = 0; i < p->conf.npeers; i++)
		free(p->conf.peers[i]);
	free(p->conf.peers);
	for (size_t i = 0; i < p->conf.nexec; i++)
		free(p->conf.exec[i]);
	for (size_t i = 0; i < p->conf.nprefetch; i++)
		free(p->conf.prefetch[i]);
}
