/* fs/cli/cmd_repo.c: `stork repo init|delegate|refresh|rotate|revoke`. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/cli/cli.h"
#include "verify/verify.h"

static const char help[] =
    "usage: stork repo init REPODIR --keys KEYDIR [--expires ROLE=DURATION]...\n"
    "       stork repo delegate REPODIR --keys KEYDIR [--name ROLE] PUBKEYFILE PATTERN...\n"
    "       stork repo refresh REPODIR --keys KEYDIR [--expires ROLE=DURATION]...\n"
    "       stork repo rotate REPODIR --keys KEYDIR TOPROLE...\n"
    "       stork repo rotate REPODIR --keys KEYDIR --key NEWKEYFILE ROLE\n"
    "       stork repo revoke REPODIR --keys KEYDIR ROLE\n"
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
    "\n"
    "--expires ROLE=DURATION  expiry of root, targets (and delegated roles), snapshot or\n"
    "          timestamp, e.g. timestamp=6h, snapshot=7d (units s, m, h, d).\n";

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

int cmd_repo(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},	    {"keys", required_argument, NULL, 'k'},
	    {"name", required_argument, NULL, 'n'}, {"expires", required_argument, NULL, 'e'},
	    {"key", required_argument, NULL, 'K'},  {0},
	};
	struct verify_repo_opts o = {0};
	const char *keydir = NULL, *role = NULL, *keyfile = NULL, *sub, *repodir;
	char *root_path = NULL;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hk:n:e:K:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		case 'k':
			keydir = optarg;
			break;
		case 'n':
			role = optarg;
			break;
		case 'K':
			keyfile = optarg;
			break;
		case 'e':
			if (parse_expires(optarg, &o) < 0)
				return cli_usage_error(
				    "repo",
				    "--expires %s: expected ROLE=DURATION with ROLE "
				    "one of root, targets, snapshot, timestamp",
				    optarg);
			break;
		default:
			return cli_usage_error("repo", "unknown option");
		}
	}
	if (argc - optind < 2)
		return cli_usage_error("repo", "expected a subcommand (init, delegate, refresh, "
					       "rotate, revoke) and REPODIR");
	sub = argv[optind];
	repodir = argv[optind + 1];
	if (!keydir)
		return cli_usage_error("repo", "%s needs --keys KEYDIR", sub);
	if (role && strcmp(sub, "delegate"))
		return cli_usage_error("repo", "--name only applies to delegate");
	if (keyfile && strcmp(sub, "rotate"))
		return cli_usage_error("repo",
				       "--key only applies to rotate (of a delegated role)");

	if (!strcmp(sub, "init")) {
		if (argc - optind != 2)
			return cli_usage_error("repo", "init takes only REPODIR");
		r = verify_repo_init(repodir, keydir, &o, &root_path);
		if (r < 0) {
			cli_fail("repo", r, "init %s", repodir);
			return cli_exit_input(r);
		}
		printf("%s\n", root_path);
		free(root_path);
		return CLI_OK;
	}
	if (!strcmp(sub, "delegate"))
		return do_delegate(repodir, keydir, role, argv + optind + 2, argc - optind - 2, &o);
	if (!strcmp(sub, "refresh")) {
		if (argc - optind != 2)
			return cli_usage_error("repo", "refresh takes only REPODIR");
		r = verify_repo_refresh(repodir, keydir, &o);
		if (r < 0) {
			cli_fail("repo", r, "refresh %s", repodir);
			return cli_exit_input(r);
		}
		return CLI_OK;
	}
	if (!strcmp(sub, "rotate"))
		return do_rotate(repodir, keydir, keyfile, argv + optind + 2, argc - optind - 2,
				 &o);
	if (!strcmp(sub, "revoke")) {
		if (argc - optind != 3)
			return cli_usage_error("repo", "revoke takes REPODIR and one ROLE");
		r = verify_repo_revoke(repodir, keydir, argv[optind + 2], &o);
		if (r < 0) {
			cli_fail("repo", r, "revoke %s", argv[optind + 2]);
			return cli_exit_input(r);
		}
		printf("revoked %s: its packages disappear for clients at their next refresh\n",
		       argv[optind + 2]);
		return CLI_OK;
	}
	return cli_usage_error("repo", "unknown subcommand \"%s\"", sub);
}
