/* fs/cli/cmd_status.c: `stork status`: a running mount's counters (read from its root's
 * user.storkfs.status attribute, see fs/README.md) or what a node store holds. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs/cli/cli.h"
#include "fs/fs.h"
#include "verify/error.h"
#include "verify/json.h"

static const char status_help[] =
    "usage: stork status [--json] [MOUNTPOINT|STOREDIR]...\n"
    "\n"
    "For a storkfs mount: the state of its metadata (fresh, offline, refresh failed; role\n"
    "versions and expiry; a STALE or NOT SERVING line when it expired, see max_stale in\n"
    "fs/README.md) and its counters: opens, hits (served from the node store), misses\n"
    "(fetched), objects and bytes fetched, errors and timeouts, and per source (peer,\n"
    "mirror, proxy) its requests, bytes, failures, latency and last error. For a node store\n"
    "directory: its objects, bytes and repositories.\n"
    "Without an argument: every storkfs mount of this machine (one that cannot tell its\n"
    "status, e.g. an older storkfs, gets a line saying so; exit 3 only when a mount is broken,\n"
    "e.g. its daemon is gone).\n"
    "\n"
    "  --json   print a mount's status as JSON (the format is in fs/README.md)\n";

#define STATUS_XATTR "user.storkfs.status"
#define STATUS_MAX   (64 * 1024)

/* The status JSON of a mount. @return 0; -ENODATA (not a storkfs mount); -errno. */
static int read_status(const char *mnt, char **ret_json)
{
	char *buf = malloc(STATUS_MAX + 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = getxattr(mnt, STATUS_XATTR, buf, STATUS_MAX);
	if (n < 0) {
		int err = errno == ENOTSUP ? ENODATA : errno;

		free(buf);
		return -err;
	}
	buf[n] = '\0';
	*ret_json = buf;
	return 0;
}

static const char *str(struct verify_json *o, const char *key)
{
	const char *s = verify_json_str(verify_json_get(o, key));

	return s ? s : "?";
}

static uint64_t num(struct verify_json *o, const char *key)
{
	int64_t v = 0;

	verify_json_int(verify_json_get(o, key), &v);
	return v > 0 ? (uint64_t)v : 0;
}

/* The line that stands out when the metadata in use has expired: still served within
 * max_stale, or no longer. */
static void print_stale(struct verify_json *st)
{
	struct verify_json *max = verify_json_get(st, "max_stale");
	char ago[32], grace[32];

	if (!verify_json_is_true(verify_json_get(st, "stale")))
		return;
	fs_format_duration((int64_t)num(st, "stale_for"), ago);
	if (verify_json_is_null(max) || !max) {
		printf("  STALE       metadata expired at %s (stale for %s); max_stale=inf: served "
		       "for ever, no bound on a freeze attack\n",
		       str(st, "stale_since"), ago);
		return;
	}
	fs_format_duration((int64_t)num(st, "max_stale"), grace);
	if (verify_json_is_true(verify_json_get(st, "serving"))) {
		printf("  STALE       metadata expired at %s (stale for %s); still served until %s "
		       "(max_stale=%s) unless a refresh succeeds\n",
		       str(st, "stale_since"), ago, str(st, "serving_until"), grace);
		return;
	}
	printf("  NOT SERVING metadata expired at %s (stale for %s), beyond max_stale=%s since "
	       "%s:\n"
	       "              lookups, opens and listings fail with \"Key has expired\" until a "
	       "refresh succeeds.\n"
	       "              Check that the mirrors are reachable and serve a current timestamp "
	       "(the publisher runs\n"
	       "              `stork repo refresh`), then `kill -HUP %" PRIu64 "`; or remount with "
	       "a larger -o max_stale.\n",
	       str(st, "stale_since"), ago, grace, str(st, "serving_until"), num(st, "pid"));
}

/* The group a slice follows and its wanted list (fs/README.md "Control lists"). */
static void print_control(struct verify_json *c)
{
	struct verify_json *w = verify_json_get(c, "wanted"), *p;

	if (!c)
		return;
	if (verify_json_is_null(verify_json_get(c, "list_version")))
		printf("    follows group %s: no list verified yet", str(c, "group"));
	else
		printf("    follows group %s: list version %" PRIu64 " (role %s, key %.16s), wants",
		       str(c, "group"), num(c, "list_version"), str(c, "role"), str(c, "key"));
	for (size_t i = 0; (p = verify_json_at(w, i)) != NULL; i++)
		printf("%s %s%s%s", i ? "," : "", str(p, "name"),
		       verify_json_get(p, "version") ? "=" : "",
		       verify_json_get(p, "version") ? str(p, "version") : "");
	if (!verify_json_is_null(verify_json_get(c, "list_version")) && !verify_json_size(w))
		printf(" nothing");
	printf("\n");
	if (verify_json_get(c, "error"))
		printf("    last check failed: %s\n", str(c, "error"));
}

/* One slice's line (fs/README.md "Slices"): its own status or an element of the node's. */
static void print_slice(struct verify_json *s)
{
	char b[32];

	printf("  slice %s: %" PRIu64 " packages (%" PRIu64 " versions), %" PRIu64
	       " opens, %s read, %" PRIu64 " objects fetched, %" PRIu64 " refused by its policy\n",
	       str(s, "slice"), num(s, "packages"), num(s, "versions"), num(s, "opens"),
	       cli_bytes(num(s, "bytes_read"), b), num(s, "objects_fetched"), num(s, "refused"));
	print_control(verify_json_get(s, "control"));
}

static void print_mount(const char *mnt, struct verify_json *st)
{
	static const char *const roles[] = {"root", "timestamp", "snapshot", "targets"};
	struct verify_json *c = verify_json_get(st, "counters"),
			   *meta = verify_json_get(st, "metadata");
	struct verify_json *mirrors = verify_json_get(st, "mirrors"), *m;
	const char *detail = str(st, "detail");
	size_t i;
	char b[32];

	printf("mount %s (storkfs, pid %" PRIu64 ", since %s)\n", mnt, num(st, "pid"),
	       str(st, "started"));
	printf("  repository  %s\n", str(st, "repository"));
	printf("  metadata    %s, last refreshed %s%s%s\n", str(st, "state"),
	       str(st, "last_refresh"), detail[0] ? ": " : "", detail);
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		struct verify_json *r = verify_json_get(meta, roles[i]);

		if (r)
			printf("    %-10s version %" PRIu64 ", expires %s\n", roles[i],
			       num(r, "version"), str(r, "expires"));
	}
	print_stale(st);
	printf("  opens       %" PRIu64 " (%" PRIu64 " hits from the store, %" PRIu64 " misses)\n",
	       num(c, "opens"), num(c, "hits"), num(c, "misses"));
	printf("  reads       %s", verify_json_is_true(verify_json_get(st, "passthrough"))
				       ? "by the kernel from the store objects (FUSE passthrough)"
				       : "through the daemon (no FUSE passthrough)");
	if (num(c, "passthrough_opens") || num(c, "assembled"))
		printf(": %" PRIu64 " opens passed through, %" PRIu64
		       " chunked files assembled whole",
		       num(c, "passthrough_opens"), num(c, "assembled"));
	putchar('\n');
	printf("  fetched     %" PRIu64 " objects, %s\n", num(c, "objects_fetched"),
	       cli_bytes(num(c, "bytes_fetched"), b));
	printf("  errors      %" PRIu64 " (%" PRIu64 " timeouts)", num(c, "errors"),
	       num(c, "timeouts"));
	if (num(c, "refused"))
		printf("; %" PRIu64 " refused: stale beyond max_stale", num(c, "refused"));
	if (num(c, "rotten"))
		printf("; %" PRIu64 " objects rotten in the store (fetched again)",
		       num(c, "rotten"));
	putchar('\n');
	printf("  trees       %" PRIu64 " loaded, %" PRIu64 " evicted\n", num(c, "trees_loaded"),
	       num(c, "trees_evicted"));
	for (i = 0; (m = verify_json_at(verify_json_get(st, "slices"), i)) != NULL; i++)
		print_slice(m);
	for (i = 0; (m = verify_json_at(mirrors, i)) != NULL; i++) {
		const char *kind = verify_json_str(verify_json_get(m, "kind"));
		const char *err = verify_json_str(verify_json_get(m, "last_error"));

		/* an older daemon says nothing of kinds: it had mirrors only */
		printf("  %-11s %s: %" PRIu64 " requests, %s, %" PRIu64 " failures",
		       kind ? kind : "mirror", str(m, "url"), num(m, "requests"),
		       cli_bytes(num(m, "bytes"), b), num(m, "failures"));
		if (num(m, "latency_ms"))
			printf(", %" PRIu64 " ms", num(m, "latency_ms"));
		if (verify_json_is_true(verify_json_get(m, "skipped")))
			printf(" (skipped for now)");
		if (err && err[0])
			printf("; last error: %s", err);
		putchar('\n');
	}
}

/* One mount's status. @return an exit code; -ENODATA when path is not a storkfs mount. */
static int mount_status(const char *path, bool json)
{
	struct verify_json *st = NULL;
	char *text = NULL;
	int r;

	r = read_status(path, &text);
	if (r < 0)
		return r;
	if (json) {
		fputs(text, stdout);
		free(text);
		return CLI_OK;
	}
	r = verify_json_load(text, strlen(text), "malformed status", &st);
	free(text);
	if (r < 0 || !verify_json_is_object(st)) {
		fprintf(stderr, "stork status: %s: %s: %s\n", path, STATUS_XATTR,
			r < 0 ? stork_error_detail() : "malformed status (not an object)");
		verify_json_free(st);
		return CLI_SYSTEM;
	}
	if (verify_json_get(st, "slice")) { /* a slice's root: that slice alone */
		printf("slice root %s\n", path);
		print_slice(st);
	} else {
		print_mount(path, st);
	}
	verify_json_free(st);
	return CLI_OK;
}

/* Every storkfs mount of this machine, from /proc/self/mounts. */
static int all_mounts(bool json)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char line[4096];
	int n = 0, ret = CLI_OK;

	if (!f) {
		cli_fail("status", -errno, "/proc/self/mounts");
		return CLI_SYSTEM;
	}
	while (fgets(line, sizeof(line), f)) {
		char dev[1024], dir[2048], type[64], *in, *out;
		int r;

		if (sscanf(line, "%1023s %2047s %63s", dev, dir, type) != 3 ||
		    strcmp(type, "fuse.storkfs") != 0)
			continue;
		/* Octal escapes (\040 for a space) back to bytes. */
		for (in = out = dir; *in; out++) {
			if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' &&
			    in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
				*out =
				    (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
				in += 4;
			} else {
				*out = *in++;
			}
		}
		*out = '\0';
		if (n++ && !json)
			putchar('\n');
		r = mount_status(dir, json);
		if (r < 0) {
			/* Say so and go on. A storkfs too old to tell its status (ENODATA) or
			 * another user's mount (EACCES) is no failure of this command; a mount
			 * whose daemon is gone (ENOTCONN) or any other error is. */
			bool benign = r == -ENODATA || r == -ENOTSUP || r == -EACCES || r == -EPERM;

			fprintf(json ? stderr : stdout,
				"mount %s (storkfs): does not answer %s: %s\n", dir, STATUS_XATTR,
				r == -ENODATA	 ? "an older storkfs (no status attribute)"
				: r == -ENOTCONN ? "its daemon is gone (fusermount3 -u it)"
						 : strerror(-r));
			if (!benign)
				ret = CLI_SYSTEM;
		} else if (r) {
			ret = r;
		}
	}
	fclose(f);
	if (!n)
		printf("no storkfs mount on this machine (give a STOREDIR for a node store)\n");
	return ret;
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'}, {0}};
	bool json = false;
	int c, ret = CLI_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hj", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(status_help, stdout);
			return CLI_OK;
		}
		if (c != 'j')
			return cli_usage_error("status", "unknown option");
		json = true;
	}
	if (optind == argc)
		return all_mounts(json);
	for (int i = optind; i < argc; i++) {
		int r;

		if (i > optind && !json)
			putchar('\n');
		r = mount_status(argv[i], json);
		if (r == -ENODATA || r == -ENOTSUP) {
			if (json)
				return cli_usage_error("status", "%s: --json is for a mount",
						       argv[i]);
			r = cli_store_status(argv[i]);
		} else if (r < 0) {
			cli_fail("status", r, "%s", argv[i]);
			r = cli_exit_system(r);
		}
		if (r)
			ret = r;
	}
	return ret;
}
