/* fs/daemon.c: storkfs, the FUSE daemon: options, startup, the refresh thread, shutdown.
 *
 *   storkfs [-f] [-d] -o root=FILE,store=DIR[,timeout=SECS][,refresh=SECS][,allow_setuid]
 *           [,max_stale=DURATION][,proxy=SPEC][,peer=URL]...[,exec=SCHEME=COMMAND]...
 *           URL... MOUNTPOINT
 *
 * Startup does everything that can fail before it lets the caller go: it reads the pinned
 * root, opens the store, refreshes the metadata and mounts, then (without -f) detaches. The
 * fork happens first, because the fetcher's I/O thread and the store's LMDB environment do
 * not survive a fork; the parent waits on a pipe for the child's verdict and exits with it,
 * so `storkfs ... && ls MOUNTPOINT` works and errors reach the terminal.
 *
 * `mount -t fuse.storkfs URL MOUNTPOINT -o root=...,store=...` and fstab lines work through
 * mount.fuse3 once /sbin/mount.fuse.storkfs -> mount.fuse3 and storkfs is installed in a
 * directory of /bin/sh's default PATH (mount(8) drops the caller's): meson install does both.
 * SIGTERM / SIGINT / `fusermount3 -u` unmount cleanly; SIGHUP refreshes the metadata now.
 *
 * Stale metadata (fs/README.md "Stale metadata"): when refreshes fail, the state verified last
 * is served until max_stale after it expired, then nothing under the root is (EKEYEXPIRED)
 * until a refresh succeeds. The refresh thread also wakes when the state expires and when the
 * grace ends, tries a refresh then, and says what it found in the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

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
    "    -o mirror_retry=SECS a failed mirror goes to the back of the order for SECS\n"
    "                         (default 1800; it is still tried when the others fail)\n"
    "    -o max_trees=N       version trees kept in memory when unused (default 64)\n"
    "    -o allow_setuid      keep setuid/setgid bits (dropped by default); the kernel honours\n"
    "                         them only on a mount with -o suid too (root only)\n"
    "    -o noallow_other     mounted by root: only root may read the mount (default: every\n"
    "                         user may, the kernel checking the published modes)\n"
    "    -o policy=FILE       this slice's trust policy (verify/README.md); re-read on SIGHUP\n"
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

/* The self-pipe that wakes the refresh thread: 'h' refresh now (SIGHUP), 'q' quit. */
static int wake_pipe[2] = {-1, -1};

static void on_sighup(int sig)
{
	int saved = errno;
	char c = 'h';

	(void)sig;
	if (write(wake_pipe[1], &c, 1) < 0) {
		/* full: a refresh is pending anyway */
	}
	errno = saved;
}

void fsd_log(struct fsd *d, const char *fmt, ...)
{
	char line[2048], shown[sizeof(line)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Every source is named without its password already (fetch_url_shown): this is the
	 * net under it, for a URL quoted in some other detail. */
	fetch_url_shown(line, shown, sizeof(shown));
	if (d->foreground || d->starting)
		fprintf(stderr, "storkfs: %s\n", shown);
	if (!d->foreground)
		syslog(LOG_ERR, "%s", shown);
}

static void fetch_log(void *ctx, const char *line)
{
	fsd_log(ctx, "%s", line);
}

/* The repository transferred an object: count it and remember who delivered it. */
static void on_fetched(void *ctx, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		       const char *mirror)
{
	struct fsd *d = ctx;
	char hex[VERIFY_HASH_HEX];

	uint64_t k = 0;

	FSD_COUNT(d, fetched, 1);
	FSD_COUNT(d, fetched_bytes, size);
	verify_hex(id, VERIFY_HASH_LEN, hex);
	for (size_t i = 0; !k && i < d->nmirrors; i++)
		if (strcmp(d->mirrors[i], mirror) == 0)
			k = i + 1;
	for (size_t i = 0; !k && i < d->conf.npeers; i++)
		if (strcmp(d->conf.peers[i], mirror) == 0)
			k = d->nmirrors + i + 1;
	if (!k)
		return;
	pthread_mutex_lock(&d->status_lock);
	if (!strmap_get(&d->sources, hex))
		strmap_put(&d->sources, hex, k); /* -ENOMEM: source stays "store" */
	pthread_mutex_unlock(&d->status_lock);
}

unsigned fsd_low_speed_time(unsigned timeout)
{
	unsigned t = timeout / 3;

	return t < 1 ? 1 : t > 10 ? 10 : t;
}

static void note_refresh(struct fsd *d, int result, const char *detail)
{
	struct fsd_role roles[FSD_NROLES] = {0};
	struct fs_staleness st;
	time_t expires = 0;

	for (size_t i = 0; i < FSD_NROLES; i++)
		roles[i].known = fs_repo_role_info(d->repo, fsd_roles[i], &roles[i].version,
						   &roles[i].expires) == 0;
	if (fs_repo_expires(d->repo, &expires) < 0)
		expires = 0;
	fs_staleness(expires, d->conf.max_stale, time(NULL), &st);
	__atomic_store_n(&d->stop_at,
			 st.forever || !expires ? INT64_MAX : (int64_t)st.serving_until,
			 __ATOMIC_RELEASE);
	pthread_mutex_lock(&d->status_lock);
	d->refresh.expires = expires;
	memcpy(d->refresh.roles, roles, sizeof(roles));
	d->refresh.last_try = time(NULL);
	d->refresh.result = result;
	if (result == 0)
		d->refresh.last_ok = d->refresh.last_try;
	snprintf(d->refresh.detail, sizeof(d->refresh.detail), "%s", result ? detail : "");
	pthread_mutex_unlock(&d->status_lock);
}

/* ------------------------------------------------------------------------------------------ */
/* Options */

struct parse {
	struct fsd_conf conf;
	char **nonopts;
	size_t n;
	int bad;
	int allow_other; /* -o allow_other given */
};

/* Options fuse_opt cannot check as they need (repeatable ones, numbers with a range and a
 * helpful error): opt_proc parses them. */
enum {
	KEY_PROXY = 1,
	KEY_PROXY_RETRY,
	KEY_PEER,
	KEY_PEER_RETRY,
	KEY_EXEC,
	KEY_PREFETCH,
	KEY_CONNECT_TIMEOUT,
	KEY_LOW_SPEED_LIMIT,
	KEY_LOW_SPEED_TIME,
};

#define OPT(t, p)                                                                                  \
	{                                                                                          \
		t, offsetof(struct parse, conf.p), 1                                               \
	}
/* One option a line. */
/* clang-format off */
static const struct fuse_opt opt_spec[] = {
    OPT("root=%s", rootfile),
    OPT("store=%s", storedir),
    OPT("policy=%s", policy),
    OPT("timeout=%u", timeout),
    OPT("refresh=%u", refresh),
    OPT("mirror_retry=%u", mirror_retry),
    OPT("max_trees=%u", max_trees),
    OPT("max_stale=%s", max_stale_arg),
    OPT("allow_setuid", allow_setuid),
    OPT("noallow_other", no_allow_other),
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

static int add_nonopt(struct parse *p, const char *arg, size_t len)
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

/* -o peer=URL and -o exec=SCHEME=COMMAND: one more, copied. @return 0; -1 (said so). */
static int add_peer(struct parse *p, const char *arg, const char *url)
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

static int add_exec(struct parse *p, const char *arg, const char *spec)
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
static int add_prefetch(struct parse *p, const char *arg, const char *spec)
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
static int keyed_opt(struct parse *p, const char *arg, int key)
{
	const char *value = strchr(arg, '=') + 1; /* the templates end in '=' */
	struct fsd_conf *c = &p->conf;

	switch (key) {
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
		return parse_count(arg, value, 86400 * 365, "seconds", &c->proxy_retry);
	case KEY_PEER:
		return add_peer(p, arg, value);
	case KEY_PEER_RETRY:
		return parse_count(arg, value, 86400 * 365, "seconds", &c->peer_retry);
	case KEY_EXEC:
		return add_exec(p, arg, value);
	case KEY_PREFETCH:
		return add_prefetch(p, arg, value);
	case KEY_CONNECT_TIMEOUT:
		return parse_count(arg, value, 3600, "seconds", &c->connect_timeout);
	case KEY_LOW_SPEED_LIMIT:
		return parse_count(arg, value, 1UL << 30, "bytes per second", &c->low_speed_limit);
	case KEY_LOW_SPEED_TIME:
		return parse_count(arg, value, 3600, "seconds", &c->low_speed_time);
	}
	return -1;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse *p = data;

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
static int split_mirrors(struct parse *p)
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

/* Tell systemd (Type=notify) that the mount is ready, or that it stops: one datagram to
 * $NOTIFY_SOCKET, as sd_notify(3) documents. Nothing when not run by systemd. */
static void notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t salen;
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* the abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) {
		/* systemd is gone or not listening: nothing to tell */
	}
	close(fd);
}

/* ------------------------------------------------------------------------------------------ */
/* Refresh */

/* Refresh the metadata and, when it verifies, swap in the new catalog and tell the kernel to
 * forget what it cached of the root and the package directories. */

/* After a refresh: names the kernel may still hold in its dentry cache but the new catalog no
 * longer has (a revoked publisher's packages, versions a policy edit or a re-signed role took
 * away), or has with another manifest (a version re-published by another publisher), are
 * dropped from it (with everything cached below them), so that a lookup asks again and finds
 * nothing, or the new version under new numbers. @return whether a version went or changed. */
static bool forget_gone(struct fsd *d, const struct catalog *old, const struct catalog *cat)
{
	bool changed = false;

	for (size_t i = 0; old && i < old->n; i++) {
		const struct cat_pkg *op = &old->pkgs[i], *np = catalog_pkg(cat, op->name);
		fuse_ino_t ino;

		if (!np) {
			fuse_lowlevel_notify_inval_entry(d->se, FUSE_ROOT_ID, op->name,
							 strlen(op->name));
			changed = true;
			continue;
		}
		ino = inodes_number(&d->inodes, op->name);
		for (size_t j = 0; j < op->n; j++) {
			const struct cat_ver *ov = &op->vers[j];

			if (catalog_signs(cat, op->name, ov->version, ov->hash))
				continue;
			changed = true;
			if (ino)
				fuse_lowlevel_notify_inval_entry(d->se, ino, ov->version,
								 strlen(ov->version));
		}
	}
	return changed;
}

/* After a refresh that replaced or dropped versions: the kernel forgets the attributes, pages
 * and listings it cached of every node of them it still holds (a file a reader has open keeps
 * reading through its own descriptor: fs/README.md "Replaced versions"). */
static void invalidate_replaced(struct fsd *d, const struct catalog *cat)
{
	fuse_ino_t *inos;
	size_t n = 0;

	pthread_mutex_lock(&d->inodes.lock);
	inos = calloc(d->inodes.nslots ? d->inodes.nslots : 1, sizeof(*inos));
	for (size_t i = 1; inos && i < d->inodes.nslots; i++) {
		const struct inode *node = d->inodes.slots[i].node;

		if (node && (node->kind == N_VER || node->kind == N_ENTRY) &&
		    !catalog_signs(cat, node->pkg, node->ver, node->vhash))
			inos[n++] = (fuse_ino_t)i;
	}
	pthread_mutex_unlock(&d->inodes.lock);
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(d->se, inos[i], 0, 0);
	free(inos); /* -ENOMEM: the entries are forgotten all the same (forget_gone) */
}

static int refresh_now(struct fsd *d, bool startup)
{
	struct catalog *cat = NULL, *old;
	char text[1200];
	int ret, failed;

	if (!startup && d->conf.policy) {
		/* SIGHUP and each refresh re-read the policy; a broken edit keeps the old one. */
		struct verify_policy *pol = NULL;

		if (verify_policy_load(d->conf.policy, &pol) == 0)
			fs_repo_set_policy(d->repo, pol);
		else
			fsd_log(d, "-o policy=%s: %s: keeping the policy loaded before",
				d->conf.policy, stork_error_detail());
	}
	ret = fs_repo_refresh(d->repo);
	if (__atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE))
		return ret; /* cancelled by the unmount */
	note_refresh(d, ret, stork_error_detail());
	if (ret == 1) {
		fsd_log(d, "warning: %s", stork_error_detail());
	} else if (ret < 0) {
		fsd_log(d, "refresh failed, the metadata verified earlier stays in use: %s",
			stork_error_text(NULL, ret, text, sizeof(text)));
		/* At startup: an unusable state (-errno) is fatal; the cached state may still
		 * list packages. Later: the state in use may have been re-read with its clock
		 * held at its expiry (fs_repo_opts.delegations_at_expiry), so list it again. */
	}
	failed = startup || ret >= 0 ? 0 : ret;
	ret = catalog_build(d->repo, &cat);
	if (ret < 0) {
		fsd_log(d, "listing packages: %s", stork_error_text(NULL, ret, text, sizeof(text)));
		return failed ? failed : ret;
	}
	old = startup ? NULL : fsd_catalog(d);
	fsd_set_catalog(d, cat);
	if (!startup) {
		cat = fsd_catalog(d);
		fuse_lowlevel_notify_inval_inode(d->se, FUSE_ROOT_ID, 0, 0);
		for (size_t i = 0; i < cat->n; i++) {
			fuse_ino_t ino = inodes_number(&d->inodes, cat->pkgs[i].name);

			if (ino)
				fuse_lowlevel_notify_inval_inode(d->se, ino, 0, 0);
		}
		if (forget_gone(d, old, cat)) {
			fsd_retire_trees(d, cat);
			invalidate_replaced(d, cat);
		}
		catalog_unref(cat);
		catalog_unref(old);
	}
	return failed;
}

/* Tell the kernel to forget what it cached of every node it knows (attributes, listings), so
 * that the next access asks the daemon: when the mount stops serving. */
static void invalidate_all(struct fsd *d)
{
	fuse_ino_t *inos = NULL;
	size_t n = 0;

	pthread_mutex_lock(&d->inodes.lock);
	inos = calloc(d->inodes.nslots ? d->inodes.nslots : 1, sizeof(*inos));
	for (size_t i = 1; inos && i < d->inodes.nslots; i++)
		if (d->inodes.slots[i].node)
			inos[n++] = (fuse_ino_t)i;
	pthread_mutex_unlock(&d->inodes.lock);
	if (!inos) { /* -ENOMEM: the root at least */
		fuse_lowlevel_notify_inval_inode(d->se, FUSE_ROOT_ID, 0, 0);
		return;
	}
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(d->se, inos[i], 0, 0);
	free(inos);
}

static const char *max_stale_text(const struct fsd *d, char buf[32])
{
	if (d->conf.max_stale == FS_STALE_FOREVER)
		return "inf";
	return fs_format_duration(d->conf.max_stale, buf);
}

static void iso_time(time_t t, char buf[32])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "?");
}

/* After each refresh attempt (and at startup): say loudly when the metadata in use is stale
 * and whether it is still served, and when the mount stops or starts serving again. */
static void stale_report(struct fsd *d, bool startup)
{
	struct fs_staleness st;
	char exp[32], until[32], for_[32], ms[32], last[600];
	time_t expires;
	bool stopped;
	int result;

	pthread_mutex_lock(&d->status_lock);
	expires = d->refresh.expires;
	result = d->refresh.result;
	if (result == 0)
		snprintf(last, sizeof(last), "succeeded");
	else
		snprintf(last, sizeof(last), "failed: %s", d->refresh.detail);
	pthread_mutex_unlock(&d->status_lock);
	fs_staleness(expires, d->conf.max_stale, time(NULL), &st);
	stopped = !st.serving;
	if (d->stopped && !stopped) {
		iso_time(st.expires, exp);
		fsd_log(d, "serving again: the metadata in use expires at %s%s", exp,
			st.stale ? " (stale, within max_stale)" : "");
	}
	if (stopped && !d->stopped && !startup)
		invalidate_all(d);
	d->stopped = stopped;
	if (!st.stale)
		return;
	iso_time(st.expires, exp);
	fs_format_duration(st.stale_for, for_);
	max_stale_text(d, ms);
	if (st.forever) {
		fsd_log(d,
			"warning: metadata expired at %s (stale for %s; max_stale=inf: served for "
			"ever, no bound on a freeze attack; last refresh %s)",
			exp, for_, last);
		return;
	}
	iso_time(st.serving_until, until);
	if (st.serving)
		fsd_log(d,
			"warning: metadata expired at %s (stale for %s; stops serving at %s, "
			"max_stale=%s; last refresh %s)",
			exp, for_, until, ms, last);
	else
		fsd_log(
		    d,
		    "NOT SERVING since %s: metadata expired at %s (stale for %s, beyond "
		    "max_stale=%s; last refresh %s). Lookups, opens and listings fail with "
		    "EKEYEXPIRED until a refresh succeeds: check that the mirrors are reachable "
		    "and serve a current timestamp (the publisher runs `stork repo refresh`), "
		    "then SIGHUP; or raise -o max_stale",
		    until, exp, for_, ms, last);
}

/* Milliseconds until the refresh thread must wake: the next refresh (next_refresh, monotonic
 * seconds), or earlier the moment the state in use expires or its grace ends (then it tries a
 * refresh and reports), a little after the wall-clock second turns. */
static int wait_ms(struct fsd *d, int64_t next_refresh)
{
	struct fs_staleness st;
	struct timespec now;
	int64_t ms, at = 0;
	time_t expires;

	ms = (next_refresh - fsd_now()) * 1000;
	pthread_mutex_lock(&d->status_lock);
	expires = d->refresh.expires;
	pthread_mutex_unlock(&d->status_lock);
	clock_gettime(CLOCK_REALTIME, &now);
	fs_staleness(expires, d->conf.max_stale, now.tv_sec, &st);
	if (expires && !st.stale)
		at = expires;
	else if (expires && st.serving && !st.forever)
		at = st.serving_until;
	if (at) {
		int64_t until = ((int64_t)at - now.tv_sec) * 1000 - now.tv_nsec / 1000000 + 20;

		if (until < ms)
			ms = until;
	}
	if (ms < 0)
		ms = 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ------------------------------------------------------------------------------------------ */
/* -o prefetch= */

static void prefetch_failed(void *ctx, const char *what, const uint8_t id[VERIFY_HASH_LEN], int err,
			    const char *detail)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	fsd_log(ctx, "prefetch: %s: object %s: %s", what, hex,
		detail && *detail ? detail : storkfs_strerror(err));
}

static void prefetch_note(void *ctx, const char *line)
{
	fsd_log(ctx, "prefetch: %s", line);
}

/* The manifest of one version the mount shows, appended to *ms. */
static int prefetch_add(struct fsd *d, const char *name, const char *version,
			struct verify_manifest ***ms, size_t *n)
{
	struct verify_manifest **v = realloc(*ms, (*n + 1) * sizeof(*v));
	char text[1200];
	int r;

	if (!v)
		return -ENOMEM;
	*ms = v;
	r = fs_repo_manifest(d->repo, name, version, &v[*n]);
	if (r < 0)
		fsd_log(d, "prefetch: %s %s: %s", name, version,
			stork_error_text(NULL, r, text, sizeof(text)));
	else
		(*n)++;
	return r;
}

/* Every object of the versions -o prefetch= names, among what this mount's tree shows (its
 * policy applies), into the store; one summary line in the log. */
static void prefetch_run(struct fsd *d)
{
	struct fs_prefetch_opts po = {.failed = prefetch_failed,
				      .failed_ctx = d,
				      .note = prefetch_note,
				      .note_ctx = d,
				      .cancel = &d->pf_cancel};
	struct fs_prefetch_progress st = {0};
	struct catalog *cat = fsd_catalog(d);
	struct verify_manifest **ms = NULL;
	size_t n = 0;
	int r;

	for (size_t i = 0; i < d->conf.nprefetch; i++) {
		char name[256];
		const char *spec = d->conf.prefetch[i], *eq = strchr(spec, '='), *want;
		const struct cat_pkg *pk;

		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - spec) : (int)strlen(spec),
			 spec);
		want = eq ? eq + 1 : "latest";
		pk = catalog_pkg(cat, name);
		if (!pk || pk->n == 0) {
			fsd_log(d, "prefetch=%s: no package %s in this mount's tree", spec, name);
			continue;
		}
		if (!strcmp(want, "all")) {
			for (size_t j = 0; j < pk->n; j++)
				prefetch_add(d, name, pk->vers[j].version, &ms, &n);
		} else if (!strcmp(want, "latest")) {
			prefetch_add(d, name, pk->vers[pk->n - 1].version, &ms, &n);
		} else if (catalog_ver(pk, want)) {
			prefetch_add(d, name, want, &ms, &n);
		} else {
			fsd_log(d, "prefetch=%s: no version %s of %s in this mount's tree", spec,
				want, name);
		}
	}
	catalog_unref(cat);
	if (n) {
		r = fs_prefetch(d->repo, ms, n, &po, &st);
		if (r != -ECANCELED)
			fsd_log(d,
				"prefetch: %zu version%s: %" PRIu64 " objects (%" PRIu64
				" fetched, %" PRIu64 " already stored, %" PRIu64
				" failed), %.1f MB fetched in %.1f s, %" PRIu64
				" objects from %" PRIu64 " version packs%s",
				n, n == 1 ? "" : "s", st.objects, st.fetched, st.present, st.failed,
				(double)st.fetched_bytes / 1e6, st.seconds, st.packed, st.packs,
				r < 0 ? ": incomplete" : "");
	}
	for (size_t i = 0; i < n; i++)
		verify_manifest_free(ms[i]);
	free(ms);
}

static void *prefetch_thread(void *arg)
{
	struct fsd *d = arg;

	pthread_mutex_lock(&d->pf_lock);
	for (;;) {
		while (!d->pf_pending && !d->pf_quit)
			pthread_cond_wait(&d->pf_cond, &d->pf_lock);
		if (d->pf_quit)
			break;
		d->pf_pending = false;
		pthread_mutex_unlock(&d->pf_lock);
		prefetch_run(d);
		pthread_mutex_lock(&d->pf_lock);
	}
	pthread_mutex_unlock(&d->pf_lock);
	return NULL;
}

/* After the mount is ready and after each refresh that verified: prefetch again (objects
 * already stored cost nothing; a new latest version is fetched ahead of use). */
static void prefetch_kick(struct fsd *d)
{
	if (!d->conf.nprefetch)
		return;
	pthread_mutex_lock(&d->pf_lock);
	d->pf_pending = true;
	pthread_cond_signal(&d->pf_cond);
	pthread_mutex_unlock(&d->pf_lock);
}

static void *refresh_thread(void *arg)
{
	struct fsd *d = arg;
	struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
	int64_t next = fsd_now() + d->conf.refresh;

	for (;;) {
		int n = poll(&pfd, 1, wait_ms(d, next));
		char c[16];
		bool quit = false;

		if (n < 0 && errno != EINTR)
			break;
		if (n > 0) {
			ssize_t k = read(wake_pipe[0], c, sizeof(c));

			for (ssize_t i = 0; i < k; i++)
				quit |= c[i] == 'q';
			if (quit)
				break;
		}
		if (refresh_now(d, false) >= 0)
			prefetch_kick(d);
		next = fsd_now() + d->conf.refresh;
		stale_report(d, false);
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Startup */

static int read_file(const char *path, size_t max, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(max + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			ret = STORK_ETOOBIG;
			goto out;
		}
	}
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

/* The fetch options of the transport chain from the mount's options. peers is the caller's
 * buffer for the joined peer list (freed by the caller). @return 0; -ENOMEM. */
static int chain_opts(const struct fsd_conf *c, struct fetch_opts *o, char **ret_peers)
{
	size_t len = 1;
	char *peers = NULL;

	o->connect_timeout = c->connect_timeout;
	o->low_speed_limit = c->low_speed_limit;
	o->low_speed_time = c->low_speed_time ? c->low_speed_time : fsd_low_speed_time(c->timeout);
	o->proxies = c->proxies;
	o->proxy_retry = c->proxy_retry;
	o->peer_retry = c->peer_retry;
	o->exec = c->nexec ? (const char *const *)c->exec : NULL;
	o->netrc = c->netrc;
	for (size_t i = 0; i < c->npeers; i++)
		len += strlen(c->peers[i]) + 1;
	if (c->npeers) {
		size_t at = 0;

		peers = malloc(len);
		if (!peers)
			return -ENOMEM;
		for (size_t i = 0; i < c->npeers; i++) {
			size_t n = strlen(c->peers[i]);

			if (i)
				peers[at++] = ',';
			memcpy(peers + at, c->peers[i], n);
			at += n;
		}
		peers[at] = '\0';
	}
	o->peers = peers;
	*ret_peers = peers;
	return 0;
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
		char *peers = NULL;
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
		ret = chain_opts(&one, &o, &peers);
		if (ret == 0)
			ret = fetch_new(&o, &f);
		fetch_free(f);
		free(peers);
		if (ret < 0) {
			fprintf(stderr, "storkfs: -o %s: %s\n", names[i],
				ret == -EINVAL ? stork_error_detail() : storkfs_strerror(ret));
			return -1;
		}
	}
	return 0;
}

/* Open the store and the repository and get verified metadata. */
static int fsd_start(struct fsd *d)
{
	struct fs_repo_opts ro = {0};
	uint8_t *root = NULL, digest[VERIFY_HASH_LEN];
	char text[1200];
	size_t rootlen = 0;
	int ret;

	ret = read_file(d->conf.rootfile, VERIFY_MAX_ROOT_LEN, &root, &rootlen);
	if (ret < 0) {
		fsd_log(d, "%s: %s", d->conf.rootfile, storkfs_strerror(ret));
		goto out;
	}
	verify_sha256(root, rootlen, digest);
	verify_hex(digest, VERIFY_HASH_LEN, d->repo_id);
	ret = store_open(d->conf.storedir, &d->store);
	if (ret < 0) {
		if (stork_error_detail()[0]) /* it names the store */
			fsd_log(d, "%s", stork_error_text(NULL, ret, text, sizeof(text)));
		else
			fsd_log(d, "%s: %s", d->conf.storedir, storkfs_strerror(ret));
		goto out;
	}
	if (store_readonly(d->store))
		fsd_log(d,
			"%s: read-only store: serving the objects it holds; it cannot store "
			"more, so files it does not hold cannot be opened (EROFS) and refreshed "
			"metadata is not kept",
			d->conf.storedir);
	/* No cap on a whole transfer: the low-speed limits end a stalled one, and a big file
	 * on a slow link may take longer than a reader waits (it then lands in the store for
	 * the next open). */
	ro.fetch.mirror_retry = d->conf.mirror_retry;
	ret = chain_opts(&d->conf, &ro.fetch, &d->peer_list);
	if (ret < 0) {
		fsd_log(d, "%s", storkfs_strerror(ret));
		goto out;
	}
	ro.fetch.log = fetch_log;
	ro.fetch.log_ctx = d;
	ro.fetched = on_fetched;
	ro.fetched_ctx = d;
	ro.delegations_at_expiry = true; /* the grace covers delegated roles too */
	ret = fs_repo_open(d->store, root, rootlen, (const char *const *)d->mirrors, d->nmirrors,
			   &ro, &d->repo);
	if (ret == -EINVAL) { /* a mirror or a transport option: the detail names it */
		fsd_log(d, "%s", stork_error_detail());
		goto out;
	}
	if (ret < 0) {
		fsd_log(d, "%s: %s", d->conf.rootfile,
			stork_error_text(NULL, ret, text, sizeof(text)));
		goto out;
	}
	if (d->conf.policy) {
		struct verify_policy *pol = NULL;

		ret = verify_policy_load(d->conf.policy, &pol);
		if (ret < 0) {
			fsd_log(d, "-o policy=%s: %s", d->conf.policy, stork_error_detail());
			goto out;
		}
		fs_repo_set_policy(d->repo, pol);
	}
	ret = refresh_now(d, true);
	if (ret == 0)
		stale_report(d, true); /* mounting stale, or even past the grace, says so */
out:
	free(root);
	return ret;
}

static void fsd_stop(struct fsd *d)
{
	/* Jobs still running use the repository and the store: wait for them (their
	 * transfers were cancelled; only a slow disk can hold them); if they do not end,
	 * leave it all to exit. */
	if (jobs_drain(&d->jobs, 30) < 0) {
		fsd_log(d, "transfers still running at exit: leaving them to the kernel");
		return;
	}
	jobs_fini(&d->jobs);
	strmap_fini(&d->sources);
	for (size_t i = 0; i < d->vtrees.cap; i++)
		if (d->vtrees.slots[i].key)
			vtree_unref((struct vtree *)(uintptr_t)d->vtrees.slots[i].val);
	strmap_fini(&d->vtrees);
	inodes_fini(&d->inodes);
	catalog_unref(d->cat);
	fs_repo_close(d->repo);
	store_close(d->store);
}

/* Detach: the parent waits for the child's verdict on *ret_fd and exits with it. */
static int detach(int *ret_fd)
{
	int p[2];
	pid_t pid;
	char c = 1;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = 1; /* the child died before mounting */
		_exit(c);
	}
	close(p[0]);
	setsid();
	*ret_fd = p[1];
	return 0;
}

static void report_ready(int fd, int code)
{
	char c = (char)code;
	int null;

	if (fd < 0)
		return;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (write(fd, &c, 1) < 0) {
		/* the parent is gone: nothing to tell */
	}
	close(fd);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = {0};
	struct fuse_loop_config *loop = NULL;
	struct parse p = {.conf = {.timeout = DEFAULT_TIMEOUT,
				   .refresh = DEFAULT_REFRESH,
				   .mirror_retry = DEFAULT_MIRROR_RETRY,
				   .max_trees = DEFAULT_MAX_TREES}};
	struct fsd d = {0};
	sigset_t block, old;
	pthread_t refresher, prefetcher;
	bool refreshing = false, prefetching = false, mounted = false, handlers = false;
	char *mountpoint = NULL;
	int ready = -1, code = 1, ret;

	if (fuse_opt_parse(&args, &p, opt_spec, opt_proc) < 0 || p.bad)
		goto out;
	scrub_argv(argc, argv);
	if (p.conf.show_help) {
		fputs(usage, stdout);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		code = 0;
		goto out;
	}
	if (p.conf.show_version) {
		printf("storkfs %s\n", STORKFS_VERSION);
		fuse_lowlevel_version();
		code = 0;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out;
	if (split_mirrors(&p) < 0)
		goto out;
	if (!p.conf.rootfile || !p.conf.storedir || p.n < 2) {
		fprintf(stderr, "storkfs: %s\n%s",
			p.n < 2 ? "expected URL... MOUNTPOINT" : "needs -o root=FILE,store=DIR",
			usage);
		goto out;
	}
	if (p.conf.refresh == 0 || p.conf.timeout == 0 || p.conf.max_trees == 0) {
		fprintf(stderr, "storkfs: -o %s=0: must be at least 1\n",
			!p.conf.refresh	  ? "refresh"
			: !p.conf.timeout ? "timeout"
					  : "max_trees");
		goto out;
	}
	if (p.conf.timeout > 24 * 3600) {
		fprintf(stderr, "storkfs: -o timeout=%u: at most a day (86400 seconds)\n",
			p.conf.timeout);
		goto out;
	}
	p.conf.max_stale = DEFAULT_MAX_STALE;
	if (p.conf.max_stale_arg &&
	    fs_parse_max_stale(p.conf.max_stale_arg, &p.conf.max_stale) < 0) {
		fprintf(stderr, "storkfs: -o %s\n", stork_error_detail());
		goto out;
	}
	if (p.conf.no_allow_other && p.allow_other) {
		fprintf(stderr, "storkfs: -o allow_other and -o noallow_other: choose one\n");
		goto out;
	}
	if (p.conf.allow_setuid && !p.conf.suid)
		fprintf(stderr,
			"storkfs: warning: -o allow_setuid keeps setuid/setgid bits, but the "
			"kernel ignores them on this nosuid mount: add -o suid (root only)\n");
	if (check_chain(&p.conf) < 0)
		goto out;
	mountpoint = realpath(p.nonopts[p.n - 1], NULL);
	if (!mountpoint) {
		fprintf(stderr, "storkfs: %s: %s\n", p.nonopts[p.n - 1], strerror(errno));
		goto out;
	}
	d.conf = p.conf;
	pthread_mutex_init(&d.pf_lock, NULL);
	pthread_cond_init(&d.pf_cond, NULL);
	d.stop_at = INT64_MAX; /* until the first refresh says otherwise */
	d.mirrors = p.nonopts;
	d.nmirrors = p.n - 1;
	d.foreground = cmd.foreground;
	d.mountpoint = mountpoint;
	d.started = time(NULL);
	if (fuse_opt_add_arg(&args, "-oro,default_permissions,fsname=storkfs") != 0)
		goto out;
	/* A node's mount serves every user of every slice; the kernel checks the modes. (Only
	 * root may say so without user_allow_other in /etc/fuse.conf.) */
	if (geteuid() == 0 && !p.conf.no_allow_other && !p.allow_other &&
	    fuse_opt_add_arg(&args, "-oallow_other") != 0)
		goto out;

	if (!cmd.foreground) {
		ret = detach(&ready);
		if (ret < 0) {
			fprintf(stderr, "storkfs: fork: %s\n", strerror(-ret));
			goto out;
		}
		openlog("storkfs", LOG_PID, LOG_DAEMON);
		d.starting = true;
	}
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "storkfs: pipe: %s\n", strerror(errno));
		goto out;
	}
	pthread_mutex_init(&d.cat_lock, NULL);
	pthread_mutex_init(&d.vt_lock, NULL);
	pthread_mutex_init(&d.status_lock, NULL);
	if (inodes_init(&d.inodes) < 0 || jobs_init(&d.jobs) < 0)
		goto out;
	/* Threads started from here on (the fetcher's, the refresher) leave the termination
	 * signals to the main thread, which runs the FUSE loop and stops it. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if (fsd_start(&d) < 0)
		goto out;

	d.se = fuse_session_new(&args, &fsd_ops, sizeof(fsd_ops), &d);
	if (!d.se)
		goto out;
	if (fuse_set_signal_handlers(d.se) != 0)
		goto out;
	handlers = true;
	/* libfuse treats SIGHUP as "exit"; here it means "refresh now". */
	signal(SIGHUP, on_sighup);
	if (fuse_session_mount(d.se, mountpoint) != 0)
		goto out;
	mounted = true;
	if (pthread_create(&refresher, NULL, refresh_thread, &d) != 0)
		goto out;
	refreshing = true;
	if (d.conf.nprefetch && store_readonly(d.store)) {
		fsd_log(&d, "prefetch=: ignored: the store is read-only");
	} else if (d.conf.nprefetch) {
		if (pthread_create(&prefetcher, NULL, prefetch_thread, &d) != 0)
			goto out;
		prefetching = true;
		prefetch_kick(&d);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	d.starting = false;
	report_ready(ready, 0);
	ready = -1;
	notify_systemd("READY=1");
	if (chdir("/") < 0) {
		/* nothing depends on the working directory */
	}
	if (cmd.singlethread) {
		ret = fuse_session_loop(d.se);
	} else {
		loop = fuse_loop_cfg_create();
		if (!loop)
			goto out;
		fuse_loop_cfg_set_clone_fd(loop, (unsigned)cmd.clone_fd);
		if (cmd.max_idle_threads != UINT_MAX) /* else: unset */
			fuse_loop_cfg_set_idle_threads(loop, cmd.max_idle_threads);
		if (cmd.max_threads > 0 && cmd.max_threads <= 100000) /* else: unset */
			fuse_loop_cfg_set_max_threads(loop, cmd.max_threads);
		ret = fuse_session_loop_mt(d.se, loop);
	}
	code = ret == 0 || ret == SIGTERM || ret == SIGINT ? 0 : 1;
	notify_systemd("STOPPING=1");
out:
	/* Unmounted (or failing): transfers still running only fill the store, and each
	 * insert is atomic, so end them now rather than wait out stalled mirrors. */
	__atomic_store_n(&d.stopping, true, __ATOMIC_RELEASE);
	if (d.repo)
		fetch_cancel(fs_repo_fetcher(d.repo));
	if (refreshing) {
		char c = 'q';

		if (write(wake_pipe[1], &c, 1) == 1)
			pthread_join(refresher, NULL);
	}
	if (prefetching) {
		__atomic_store_n(&d.pf_cancel, 1, __ATOMIC_RELEASE);
		pthread_mutex_lock(&d.pf_lock);
		d.pf_quit = true;
		pthread_cond_signal(&d.pf_cond);
		pthread_mutex_unlock(&d.pf_lock);
		pthread_join(prefetcher, NULL);
	}
	if (mounted)
		fuse_session_unmount(d.se);
	if (handlers) {
		signal(SIGHUP, SIG_DFL);
		fuse_remove_signal_handlers(d.se);
	}
	if (d.se)
		fuse_session_destroy(d.se);
	report_ready(ready, code);
	fsd_stop(&d);
	fuse_loop_cfg_destroy(loop);
	free(mountpoint);
	for (size_t i = 0; i < p.n; i++)
		free(p.nonopts[i]);
	free(p.nonopts);
	free(p.conf.rootfile);
	free(p.conf.storedir);
	free(p.conf.policy);
	free(p.conf.max_stale_arg);
	free(p.conf.proxies);
	free(p.conf.netrc);
	free(d.peer_list);
	for (size_t i = 0; i < p.conf.npeers; i++)
		free(p.conf.peers[i]);
	free(p.conf.peers);
	for (size_t i = 0; i < p.conf.nexec; i++)
		free(p.conf.exec[i]);
	for (size_t i = 0; i < p.conf.nprefetch; i++)
		free(p.conf.prefetch[i]);
	fuse_opt_free_args(&args);
	free(cmd.mountpoint);
	return code;
}
