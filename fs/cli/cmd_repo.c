/* fs/cli/cmd_repo.c: `stork repo init|delegate|refresh|rotate|revoke|remove|gc|pack`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/cli/cli.h"
#include "store/import/import.h"
#include "verify/verify.h"
#include "verify/writer/writer.h"

static const char help[] =
    "usage: stork repo init REPODIR --keys KEYDIR [--expires ROLE=DURATION]...\n"
    "       stork repo delegate REPODIR --keys KEYDIR [--name ROLE] PUBKEYFILE PATTERN...\n"
    "       stork repo refresh REPODIR --keys KEYDIR [--expires ROLE=DURATION]...\n"
    "       stork repo rotate REPODIR --keys KEYDIR TOPROLE...\n"
    "       stork repo rotate REPODIR --keys KEYDIR --key NEWKEYFILE ROLE\n"
    "       stork repo revoke REPODIR --keys KEYDIR ROLE\n"
    "       stork repo remove REPODIR --keys KEYDIR --key KEYFILE NAME VERSION\n"
    "       stork repo gc REPODIR [--keep-metadata N] [--dry-run]\n"
    "       stork repo pack REPODIR [NAME]...\n"
    "       stork repo site REPODIR [--keys KEYDIR]\n"
    "\n"
    "init      creates the keys of the four top-level roles in KEYDIR (mode 0700; it must be\n"
    "          outside REPODIR) and the signed metadata in REPODIR, and prints the path of\n"
    "          the root file that clients pin (metadata/1.root.json).\n"
    "delegate  lets the publisher key PUBKEYFILE sign packages whose names match PATTERN\n"
    "          (shell wildcards: 'hello', 'lib*', 'python3.1?'). The role is named ROLE, by\n"
    "          default PUBKEYFILE's base name without .pub/.key. Needs KEYDIR's targets key.\n"
    "refresh   re-signs snapshot and timestamp with fresh expiry; run it from a timer well\n"
    "          within the timestamp's lifetime (default 1 day). Cleans up temporary files\n"
    "          older than an hour left by killed writers.\n"
    "rotate    gives each TOPROLE (root, targets, snapshot, timestamp) a new key in KEYDIR\n"
    "          and writes a new root version signed by the old and the new root key;\n"
    "          clients follow it from the root they pinned. The old key is kept as\n"
    "          KEYDIR/TOPROLE.key.old-<key id>. Rotate a key that leaked; rotating root needs\n"
    "          the current root key (if it is lost, every client must pin a new root).\n"
    "          With --key, the delegated ROLE is signed by NEWKEYFILE (a private key from\n"
    "          `stork keygen`) from now on: its packages are re-signed with it and the old\n"
    "          key can no longer publish in ROLE.\n"
    "revoke    removes the delegation to ROLE: its packages disappear for clients at their\n"
    "          next refresh. `stork repo delegate` may later give the name to a key again;\n"
    "          the role then starts empty.\n"
    "remove    withdraws version VERSION of package NAME: the role that signs it (KEYFILE\n"
    "          must be its key) is signed again without it; mounts stop showing it at their\n"
    "          next refresh (a reader with a file open finishes it). Its files stay in\n"
    "          REPODIR until `stork repo gc`.\n"
    "gc        deletes what no client can still need: metadata versions, manifests, packs\n"
    "          and objects that nothing reachable from the N newest snapshots names\n"
    "          (--keep-metadata, default 10; root versions and timestamp.json always stay;\n"
    "          verify/README.md \"Retention\"). Keep N above the number of changes your\n"
    "          caches and mirrors can lag behind. Waits for publishes under way; needs no\n"
    "          key (it signs nothing). --dry-run only counts.\n"
    "pack      writes the version pack of every manifest in REPODIR/targets (of the NAMEs)\n"
    "          that lacks one or whose pack is damaged: versions published before packs or\n"
    "          with --no-pack (and manifests an interrupted publish left). Needs no key\n"
    "          (packs are not signed; the manifests fix their layout).\n"
    "site      writes the browse site, static HTML under REPODIR/site/ (index.html): the\n"
    "          packages, their versions, signers, dependencies and changes, the metadata's\n"
    "          expiry and how a node pins the root. Unsigned: clients never read it.\n"
    "          publish, refresh, rotate and revoke rewrite it too. With --keys, a role is\n"
    "          flagged as close to expiring against KEYDIR's saved expiry durations.\n"
    "\n"
    "--expires ROLE=DURATION  expiry of root, targets (and delegated roles), snapshot or\n"
    "          timestamp, e.g. timestamp=6h, snapshot=7d (units s, m, h, d).\n";

static void site_line(const char *repodir, const struct verify_site_stats *st)
{
	printf("site: %zu packages, %zu versions in %s/site/index.html", st->packages, st->versions,
	       repodir);
	if (st->unreadable)
		printf(" (%zu versions whose manifest could not be read)", st->unreadable);
	printf("\n");
}

int cli_site_update(const char *cmd, const char *repodir, const char *keydir, const char *only,
		    bool quiet)
{
	struct verify_repo_opts o = {.site_only = only};
	struct verify_site_stats st;
	int r = verify_repo_site(repodir, keydir, fs_version_cmp, &o, &st);

	if (r < 0) {
		stork_error_prefix("warning: the browse site was not updated (run `stork repo site "
				   "%s`): ",
				   repodir);
		cli_fail(cmd, r, "%s/site", repodir);
		return r;
	}
	if (!quiet)
		site_line(repodir, &st);
	return 0;
}

static int parse_expires(const char *arg, struct verify_repo_opts *o)
{
	const char *eq = strchr(arg, '=');
	int64_t secs;

	if (!eq || cli_parse_duration(eq + 1, &secs) < 0)
		return -1;
	if (!strncmp(arg, "root=", 5))
		o->root_expiry = secs;
	else if (!strncmp(arg, "targets=", 8))
		o->targets_expiry = secs;
	else if (!strncmp(arg, "snapshot=", 9))
		o->snapshot_expiry = secs;
	else if (!strncmp(arg, "timestamp=", 10))
		o->timestamp_expiry = secs;
	else
		return -1;
	return 0;
}

struct pack_counts {
	unsigned written, present, none, failed;
};

/* One manifest file targets/<name>/<hex>.<version>.json: checked against its name, then its
 * pack written unless there. Failures are told and counted. */
static void pack_manifest(int repofd, const char *name, const char *file, struct pack_counts *c)
{
	char rel[1024], *target = NULL, *version = NULL, *path = NULL, hex[VERIFY_HASH_HEX];
	struct verify_manifest *m = NULL;
	uint8_t *buf = NULL, digest[VERIFY_HASH_LEN];
	size_t flen = strlen(file), len = 0;
	struct stat st;
	bool written = false;
	int fd = -1, r;

	snprintf(rel, sizeof(rel), "targets/%s/%s", name, file);
	if (flen < VERIFY_HASH_HEX + 6 || file[VERIFY_HASH_HEX - 1] != '.' ||
	    strcmp(file + flen - 5, ".json") != 0)
		return; /* not a manifest's name */
	r = -ENOMEM;
	version = strndup(file + VERIFY_HASH_HEX, flen - VERIFY_HASH_HEX - 5);
	target = version ? verify_target_path(name, version) : NULL;
	if (!target)
		goto fail;
	fd = openat(repofd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		stork_errorf("%s: %s", rel, storkfs_strerror(r));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > VERIFY_MAX_MANIFEST_LEN) {
		stork_errorf("%s: not a regular file of at most %d bytes", rel,
			     VERIFY_MAX_MANIFEST_LEN);
		r = STORK_ETOOBIG;
		goto fail;
	}
	len = (size_t)st.st_size;
	buf = malloc(len ? len : 1);
	r = -ENOMEM;
	if (!buf)
		goto fail;
	if (pread(fd, buf, len, 0) != (ssize_t)len) {
		r = -EIO;
		stork_errorf("%s: cannot read it", rel);
		goto fail;
	}
	r = verify_sha256(buf, len, digest);
	if (r < 0)
		goto fail;
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	if (memcmp(hex, file, VERIFY_HASH_HEX - 1) != 0) {
		stork_errorf("%s: its content hashes to %s, not to its name", rel, hex);
		r = STORK_EBADHASH;
		goto fail;
	}
	r = verify_manifest_parse(buf, len, rel, &m);
	if (r == 0 && (strcmp(m->name, name) != 0 || strcmp(m->version, version) != 0)) {
		stork_errorf("%s: the manifest is of %s %s", rel, m->name, m->version);
		r = STORK_EFORMAT;
	}
	if (r == 0)
		r = verify_manifest_file(m, ".pack", &path);
	if (r == 0)
		r = store_pack_write(repofd, m, path, &written);
	if (r < 0)
		goto fail;
	if (written)
		c->written++;
	else if (faccessat(repofd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		c->present++;
	else
		c->none++;
	goto out;
fail:
	cli_fail("repo", r, "pack %s", rel);
	c->failed++;
out:
	if (fd >= 0)
		close(fd);
	verify_manifest_free(m);
	free(path);
	free(buf);
	free(target);
	free(version);
}

static bool wanted(const char *name, char **names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return n == 0;
}

/* stork repo pack REPODIR [NAME]... */
static int do_pack(const char *repodir, char **names, int n)
{
	struct pack_counts c = {0};
	struct dirent *de, *fe;
	DIR *top = NULL;
	int repofd, r;

	repofd = open(repodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (repofd < 0) {
		r = -errno;
		cli_fail("repo", r, "pack %s", repodir);
		return cli_exit_input(r);
	}
	r = openat(repofd, "targets", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	top = r >= 0 ? fdopendir(r) : NULL;
	if (!top) {
		r = -errno;
		close(repofd);
		cli_fail("repo", r, "pack %s/targets", repodir);
		return cli_exit_input(r);
	}
	while ((de = readdir(top))) {
		DIR *d;
		int fd;

		if (de->d_name[0] == '.' || verify_check_package_name(de->d_name) < 0 ||
		    !wanted(de->d_name, names, n))
			continue;
		fd =
		    openat(dirfd(top), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		d = fd >= 0 ? fdopendir(fd) : NULL;
		if (!d) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while ((fe = readdir(d)))
			if (fe->d_name[0] != '.')
				pack_manifest(repofd, de->d_name, fe->d_name, &c);
		closedir(d);
	}
	closedir(top);
	close(repofd);
	for (int i = 0; i < n; i++) {
		char dir[512];
		struct stat st;

		snprintf(dir, sizeof(dir), "%s/targets/%s", repodir, names[i]);
		if (stat(dir, &st) < 0) {
			cli_fail("repo", -ENOENT, "pack %s: no package %s is published here",
				 repodir, names[i]);
			c.failed++;
		}
	}
	printf("packs: %u written, %u already there, %u versions with fewer than %d small files "
	       "(no pack)%s\n",
	       c.written, c.present, c.none, STORE_PACK_MIN_OBJECTS,
	       c.failed ? "; failures above" : "");
	return c.failed ? CLI_VERIFY_FAILED : CLI_OK;
}

/* The default role name: the key file's base name without .pub or .key. */
static char *default_role(const char *pubkey)
{
	char *copy = strdup(pubkey), *base, *role, *dot;

	if (!copy)
		return NULL;
	base = basename(copy);
	role = strdup(base);
	free(copy);
	if (!role)
		return NULL;
	/* alice.key.pub -> alice */
	for (int i = 0; i < 2; i++) {
		dot = strrchr(role, '.');
		if (dot && (!strcmp(dot, ".pub") || !strcmp(dot, ".key")))
			*dot = '\0';
	}
	return role;
}

static int do_delegate(const char *repodir, const char *keydir, const char *role_opt, char **args,
		       int nargs, const struct verify_repo_opts *o)
{
	struct verify_key *pub = NULL;
	char *role = NULL;
	int r, ret;

	if (nargs < 2)
		return cli_usage_error("repo",
				       "delegate needs PUBKEYFILE and at least one PATTERN");
	role = role_opt ? strdup(role_opt) : default_role(args[0]);
	if (!role) {
		ret = CLI_SYSTEM;
		goto out;
	}
	r = verify_check_role_name(role);
	if (r < 0) {
		cli_fail("repo", r, "role name \"%s\"", role);
		fprintf(stderr, "stork repo: choose a role name with --name ROLE\n");
		ret = CLI_USAGE;
		goto out;
	}
	for (int i = 1; i < nargs; i++) {
		r = verify_check_name_pattern(args[i]);
		if (r < 0) {
			cli_fail("repo", r, "pattern \"%s\"", args[i]);
			ret = CLI_USAGE;
			goto out;
		}
	}
	r = verify_key_load_public(args[0], &pub);
	if (r < 0) {
		cli_fail("repo", r, "%s", args[0]);
		ret = cli_exit_input(r);
		goto out;
	}
	r = verify_repo_delegate(repodir, keydir, pub, role, (const char *const *)args + 1,
				 (size_t)nargs - 1, o);
	if (r < 0) {
		cli_fail("repo", r, "delegating to %s", role);
		ret = cli_exit_input(r);
		goto out;
	}
	printf("delegated");
	for (int i = 1; i < nargs; i++)
		printf(" %s", args[i]);
	printf(" to %s (key %s)\n", role, verify_key_id(pub));
	ret = CLI_OK;
out:
	free(role);
	verify_key_free(pub);
	return ret;
}

static int do_rotate(const char *repodir, const char *keydir, const char *keyfile, char **args,
		     int nargs, const struct verify_repo_opts *o)
{
	struct verify_key *k = NULL;
	int r, ret;

	if (nargs < 1)
		return cli_usage_error("repo", "rotate needs the roles to rotate: root, targets, "
					       "snapshot, timestamp (or --key NEWKEYFILE ROLE)");
	if (!keyfile) {
		r = verify_repo_rotate(repodir, keydir, (const char *const *)args, (size_t)nargs,
				       o);
		if (r < 0) {
			cli_fail("repo", r, "rotate %s", repodir);
			return cli_exit_input(r);
		}
		printf("rotated");
		for (int i = 0; i < nargs; i++)
			printf(" %s", args[i]);
		printf(": new keys in %s, old ones kept as ROLE.key.old-<key id>; clients follow "
		       "the new root from the one they pinned\n",
		       keydir);
		return CLI_OK;
	}
	if (nargs != 1)
		return cli_usage_error("repo", "rotate --key NEWKEYFILE takes exactly one ROLE");
	r = verify_key_load_private(keyfile, &k);
	if (r < 0) {
		cli_fail("repo", r, "%s", keyfile);
		return cli_exit_input(r);
	}
	r = verify_repo_rekey(repodir, keydir, args[0], k, o);
	if (r < 0) {
		cli_fail("repo", r, "rotate %s", args[0]);
		ret = cli_exit_input(r);
		goto out;
	}
	printf("role %s is now signed by key %s (%s)\n", args[0], verify_key_id(k), keyfile);
	ret = CLI_OK;
out:
	verify_key_free(k);
	return ret;
}

static int do_remove(const char *repodir, const struct cli_signer *sig, const char *name,
		     const char *version, const struct verify_repo_opts *o)
{
	struct verify_key *k = NULL;
	int r;

	r = verify_key_load_private(sig->keyfile, &k);
	if (r < 0) {
		cli_fail("repo", r, "%s", sig->keyfile);
		return cli_exit_input(r);
	}
	r = verify_repo_remove(repodir, sig->keydir, k, name, version, o);
	verify_key_free(k);
	if (r < 0) {
		cli_fail("repo", r, "remove %s %s", name, version);
		return cli_exit_input(r);
	}
	printf("removed %s %s: mounts stop showing it at their next refresh; `stork repo gc %s` "
	       "deletes its files once no kept snapshot names them\n",
	       name, version, repodir);
	cli_site_update("repo", repodir, sig->keydir, name, true);
	return CLI_OK;
}

static int do_gc(const char *repodir, unsigned keep, bool dry_run, const struct verify_repo_opts *o)
{
	struct verify_repo_gc_stats st;
	uint8_t(*objs)[VERIFY_HASH_LEN] = NULL;
	uint64_t ofiles = 0, obytes = 0;
	char a[32], b[32], c[32], d[32];
	size_t nobjs = 0;
	int lockfd = -1, r;

	/* Exclusive from before the metadata is read to after the sweep: a publish under way
	 * (shared lock) has objects that no metadata names yet. */
	r = verify_repo_lock_tree(repodir, true, &lockfd);
	if (r == 0)
		r = verify_repo_gc(repodir, keep, dry_run, o, &st, &objs, &nobjs);
	if (r == 0)
		r = store_import_sweep(lockfd, (const uint8_t(*)[VERIFY_HASH_LEN])objs, nobjs,
				       dry_run, &ofiles, &obytes);
	free(objs);
	if (lockfd >= 0)
		close(lockfd);
	if (r < 0) {
		cli_fail("repo", r, "gc %s", repodir);
		return cli_exit_input(r);
	}
	printf("%s %s: kept %" PRIu64 " snapshot versions, %" PRIu64 " manifests, %zu objects; "
	       "%s %" PRIu64 " metadata files (%s), %" PRIu64 " manifests (%s), %" PRIu64
	       " packs (%s), %" PRIu64 " objects (%s)\n",
	       dry_run ? "gc --dry-run" : "gc", repodir, st.snapshots_kept, st.manifests_kept,
	       nobjs, dry_run ? "would delete" : "deleted", st.metadata_files,
	       cli_bytes(st.metadata_bytes, a), st.manifests, cli_bytes(st.manifest_bytes, b),
	       st.packs, cli_bytes(st.pack_bytes, c), ofiles, cli_bytes(obytes, d));
	return CLI_OK;
}

int cmd_repo(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"name", required_argument, NULL, 'n'},
	    {"expires", required_argument, NULL, 'e'},
	    {"keep-metadata", required_argument, NULL, 'M'},
	    {"dry-run", no_argument, NULL, 'D'},
	    CLI_SIGNER_LONGOPTS,
	    {0},
	};
	struct verify_repo_opts o = {0};
	const char *role = NULL, *sub, *repodir;
	struct cli_signer sig = {0};
	char *root_path = NULL;
	unsigned long keep = 10;
	bool dry_run = false;
	char *end;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hn:e:M:D" CLI_SIGNER_SHORTOPTS, opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		case 'n':
			role = optarg;
			break;
		case 'e':
			if (parse_expires(optarg, &o) < 0)
				return cli_usage_error(
				    "repo",
				    "--expires %s: expected ROLE=DURATION with ROLE "
				    "one of root, targets, snapshot, timestamp",
				    optarg);
			break;
		case 'M':
			errno = 0;
			keep = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || *optarg == '-' || keep < 1 ||
			    keep > 1000000)
				return cli_usage_error("repo",
						       "--keep-metadata %s: expected a number of "
						       "snapshot versions from 1 up",
						       optarg);
			break;
		case 'D':
			dry_run = true;
			break;
		default:
			if (!cli_signer_option(c, optarg, &sig))
				return cli_usage_error("repo", "unknown option");
		}
	}
	if (argc - optind < 2)
		return cli_usage_error("repo",
				       "expected a subcommand (init, delegate, refresh, "
				       "rotate, revoke, remove, gc, pack, site) and REPODIR");
	sub = argv[optind];
	repodir = argv[optind + 1];
	if (!strcmp(sub, "pack"))
		return do_pack(repodir, argv + optind + 2, argc - optind - 2);
	if (!strcmp(sub, "gc")) {
		if (argc - optind != 2)
			return cli_usage_error("repo", "gc takes only REPODIR");
		return do_gc(repodir, (unsigned)keep, dry_run, &o);
	}
	if ((keep != 10 || dry_run))
		return cli_usage_error("repo", "--keep-metadata and --dry-run only apply to gc");
	if (!strcmp(sub, "site")) {
		struct verify_site_stats st;

		if (argc - optind != 2)
			return cli_usage_error("repo", "site takes only REPODIR");
		r = verify_repo_site(repodir, sig.keydir, fs_version_cmp, NULL, &st);
		if (r < 0) {
			cli_fail("repo", r, "site %s", repodir);
			return cli_exit_input(r);
		}
		site_line(repodir, &st);
		return CLI_OK;
	}
	if (!sig.keydir)
		return cli_usage_error("repo", "%s needs --keys KEYDIR", sub);
	if (role && strcmp(sub, "delegate"))
		return cli_usage_error("repo", "--name only applies to delegate");
	if (sig.keyfile && strcmp(sub, "rotate") && strcmp(sub, "remove"))
		return cli_usage_error("repo", "--key only applies to rotate (of a delegated "
					       "role) and remove");
	if (!strcmp(sub, "remove")) {
		if (argc - optind != 4 || !sig.keyfile)
			return cli_usage_error("repo", "remove takes REPODIR NAME VERSION and "
						       "--key KEYFILE (the key of the role that "
						       "signs it)");
		return do_remove(repodir, &sig, argv[optind + 2], argv[optind + 3], &o);
	}

	if (!strcmp(sub, "init")) {
		if (argc - optind != 2)
			return cli_usage_error("repo", "init takes only REPODIR");
		r = verify_repo_init(repodir, sig.keydir, &o, &root_path);
		if (r < 0) {
			cli_fail("repo", r, "init %s", repodir);
			return cli_exit_input(r);
		}
		printf("%s\n", root_path);
		free(root_path);
		return CLI_OK;
	}
	if (!strcmp(sub, "delegate"))
		return do_delegate(repodir, sig.keydir, role, argv + optind + 2, argc - optind - 2,
				   &o);
	if (!strcmp(sub, "refresh")) {
		if (argc - optind != 2)
			return cli_usage_error("repo", "refresh takes only REPODIR");
		r = verify_repo_refresh(repodir, sig.keydir, &o);
		if (r < 0) {
			cli_fail("repo", r, "refresh %s", repodir);
			return cli_exit_input(r);
		}
		cli_site_update("repo", repodir, sig.keydir, NULL, true);
		return CLI_OK;
	}
	if (!strcmp(sub, "rotate")) {
		r = do_rotate(repodir, sig.keydir, sig.keyfile, argv + optind + 2,
			      argc - optind - 2, &o);
		if (r == CLI_OK)
			cli_site_update("repo", repodir, sig.keydir, NULL, true);
		return r;
	}
	if (!strcmp(sub, "revoke")) {
		if (argc - optind != 3)
			return cli_usage_error("repo", "revoke takes REPODIR and one ROLE");
		r = verify_repo_revoke(repodir, sig.keydir, argv[optind + 2], &o);
		if (r < 0) {
			cli_fail("repo", r, "revoke %s", argv[optind + 2]);
			return cli_exit_input(r);
		}
		printf("revoked %s: its packages disappear for clients at their next refresh\n",
		       argv[optind + 2]);
		cli_site_update("repo", repodir, sig.keydir, NULL, true);
		return CLI_OK;
	}
	return cli_usage_error("repo", "unknown subcommand \"%s\"", sub);
}
