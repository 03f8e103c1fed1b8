/* fs/cli/cmd_control.c: `stork control delegate|publish|show`: central package control lists
 * (verify/README.md "Control lists"). */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/cli/cli.h"
#include "verify/verify.h"
#include "verify/writer/writer.h"

static const char help[] =
    "usage: stork control delegate REPODIR --keys KEYDIR [--name ROLE] PUBKEYFILE GROUP...\n"
    "       stork control publish REPODIR --keys KEYDIR --key KEYFILE --group GROUP "
    "[NAME[=VERSION]...]\n"
    "       stork control show --root ROOTFILE [--policy FILE] [--at UNIXTIME] [--cacert "
    "FILE] REPO [GROUP]\n"
    "\n"
    "A control list says, for a group of nodes, which packages (and optionally which exact\n"
    "versions) the slices that follow the group should have. A slice follows a group through\n"
    "its policy: `control GROUP role ROLE keys KEY` (or `control GROUP delegated`), and the\n"
    "daemon fetches and verifies the group's list at every refresh.\n"
    "\n"
    "delegate  lets the publisher key PUBKEYFILE sign the control lists of the groups matching\n"
    "          GROUP (shell wildcards), as role ROLE (by default PUBKEYFILE's base name without\n"
    "          .pub/.key). Needs KEYDIR's targets key.\n"
    "publish   signs GROUP's list: exactly the packages NAME (NAME=VERSION pins a version),\n"
    "          none when no NAME is given. The list's version is one more than the one\n"
    "          clients see now; publishing the same packages again changes nothing.\n"
    "show      the list of GROUP as a client verifies it from the pinned ROOTFILE; with\n"
    "          --policy FILE and no GROUP, the list the policy's control line follows, with\n"
    "          the key the policy trusts for it. Exit 1 when no list verifies.\n";

static int do_delegate(const char *repodir, const char *keydir, const char *role_opt, char **args,
		       int nargs, const struct verify_repo_opts *o)
{
	struct verify_key *pub = NULL;
	char *role = NULL, *copy = NULL, *dot;
	int r, ret;

	if (nargs < 2)
		return cli_usage_error("control",
				       "delegate needs PUBKEYFILE and at least one GROUP");
	if (role_opt) {
		role = strdup(role_opt);
	} else if ((copy = strdup(args[0]))) {
		role = strdup(basename(copy));
		/* ops.key.pub -> ops */
		for (int i = 0; role && i < 2; i++)
			if ((dot = strrchr(role, '.')) &&
			    (!strcmp(dot, ".pub") || !strcmp(dot, ".key")))
				*dot = '\0';
	}
	if (!role) {
		ret = CLI_SYSTEM;
		goto out;
	}
	r = verify_check_role_name(role);
	if (r < 0) {
		cli_fail("control", r, "role name \"%s\"", role);
		fprintf(stderr, "stork control: choose a role name with --name ROLE\n");
		ret = CLI_USAGE;
		goto out;
	}
	r = verify_key_load_public(args[0], &pub);
	if (r < 0) {
		cli_fail("control", r, "%s", args[0]);
		ret = cli_exit_input(r);
		goto out;
	}
	r = verify_repo_delegate_control(repodir, keydir, pub, role, (const char *const *)args + 1,
					 (size_t)nargs - 1, o);
	if (r < 0) {
		cli_fail("control", r, "delegating to %s", role);
		ret = cli_exit_input(r);
		goto out;
	}
	printf("delegated the control lists of");
	for (int i = 1; i < nargs; i++)
		printf(" %s", args[i]);
	printf(" to %s (key %s)\n", role, verify_key_id(pub));
	ret = CLI_OK;
out:
	free(copy);
	free(role);
	verify_key_free(pub);
	return ret;
}

static int do_publish(const char *repodir, const char *keydir, const char *keyfile,
		      const char *group, char **args, int nargs, const struct verify_repo_opts *o)
{
	struct verify_control_list *l = NULL;
	struct verify_key *key = NULL;
	uint64_t version = 0;
	int r, ret;

	if (!keyfile || !group)
		return cli_usage_error("control", "publish needs --key KEYFILE and --group GROUP");
	r = verify_control_new(group, 0, &l);
	for (int i = 0; r == 0 && i < nargs; i++) {
		r = verify_control_add(l, args[i]);
		if (r < 0)
			cli_fail("control", r, "%s", args[i]);
	}
	if (r < 0) {
		if (!l)
			cli_fail("control", r, "--group %s", group);
		ret = r == -ENOMEM ? CLI_SYSTEM : CLI_USAGE;
		goto out;
	}
	r = verify_key_load_private(keyfile, &key);
	if (r < 0) {
		cli_fail("control", r, "%s", keyfile);
		ret = cli_exit_input(r);
		goto out;
	}
	r = verify_repo_publish_control(repodir, keydir, key, l, o, &version);
	if (r < 0) {
		cli_fail("control", r, "publishing the list of group %s", group);
		ret = cli_exit_input(r);
		goto out;
	}
	if (r == 1)
		printf("group %s: list version %llu already has these %zu %s: nothing to "
		       "publish\n",
		       group, (unsigned long long)version, l->n,
		       l->n == 1 ? "package" : "packages");
	else
		printf("group %s: published list version %llu (%zu %s)\n", group,
		       (unsigned long long)version, l->n, l->n == 1 ? "package" : "packages");
	ret = CLI_OK;
out:
	verify_control_list_free(l);
	verify_key_free(key);
	return ret;
}

static int do_show(int argc, char **argv)
{
	struct cli_client_args a = {0};
	struct verify_source src;
	struct verify_client *c = NULL;
	struct verify_policy *pol = NULL;
	struct verify_control_list *l = NULL;
	struct verify_target t = {0};
	uint8_t *root = NULL;
	size_t rootlen = 0;
	const char *group;
	char *text = NULL;
	bool done;
	int code = 0, r;

	cli_client_args_parse("control", help, argc, argv, 1, 2, " [GROUP]", true, &a, &done,
			      &code);
	if (done)
		return code;
	if (!a.name && !a.policy)
		return cli_usage_error("control", "show needs GROUP or --policy FILE");
	if (a.name && !a.policy) {
		if (asprintf(&text, "control %s delegated\n", a.name) < 0)
			return CLI_SYSTEM;
		r = verify_policy_parse("(control show)", text, strlen(text), NULL, &pol);
	} else {
		r = verify_policy_load(a.policy, &pol);
	}
	if (r < 0) {
		cli_fail("control", r, "%s", a.policy ? a.policy : a.name);
		code = cli_exit_input(r);
		goto out;
	}
	if (!verify_policy_control(pol)) {
		code = cli_usage_error(
		    "control", "%s: no control line: the policy follows no group", a.policy);
		goto out;
	}
	group = verify_policy_control(pol)->pattern;
	if (a.name && strcmp(a.name, group) != 0) {
		code = cli_usage_error("control", "%s follows group %s, not %s", a.policy, group,
				       a.name);
		goto out;
	}
	code = cli_client_open("control", &a, &src, &c, &root, &rootlen);
	if (code != CLI_OK)
		goto out;
	r = verify_client_control(c, &src, pol, &t);
	if (r == 0)
		r = verify_fetch_control(&src, &t, group, &l);
	if (r == -ENOENT && !a.policy)
		stork_errorf("group %s: no role of %s signs a control list for it", group, a.shown);
	if (r < 0) {
		cli_fail("control", r, "group %s", group);
		code = cli_exit_verify(r);
		goto out;
	}
	printf("group %s: list version %llu, signed in role %s by key %.16s, %zu %s\n", l->group,
	       (unsigned long long)l->version, t.role, t.keyid, l->n,
	       l->n == 1 ? "package" : "packages");
	for (size_t i = 0; i < l->n; i++)
		printf("  %s%s%s\n", l->pkgs[i].name, l->pkgs[i].version ? "=" : "",
		       l->pkgs[i].version ? l->pkgs[i].version : "");
	code = CLI_OK;
out:
	verify_control_list_free(l);
	verify_target_fini(&t);
	verify_client_free(c);
	if (root)
		fetch_source_fini(&src);
	free(root);
	verify_policy_free(pol);
	free(text);
	return code;
}

int cmd_control(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},	     {"keys", required_argument, NULL, 'k'},
	    {"key", required_argument, NULL, 'K'},   {"name", required_argument, NULL, 'n'},
	    {"group", required_argument, NULL, 'g'}, {0},
	};
	const char *keydir = NULL, *keyfile = NULL, *role = NULL, *group = NULL, *sub, *repodir;
	struct verify_repo_opts ro = {0};
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(help, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	sub = argv[1];
	if (!strcmp(sub, "show"))
		return do_show(argc - 1, argv + 1);
	if (strcmp(sub, "delegate") != 0 && strcmp(sub, "publish") != 0)
		return cli_usage_error("control",
				       "unknown subcommand \"%s\": expected delegate, publish or "
				       "show",
				       sub);
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "hk:K:n:g:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		case 'k':
			keydir = optarg;
			break;
		case 'K':
			keyfile = optarg;
			break;
		case 'n':
			role = optarg;
			break;
		case 'g':
			group = optarg;
			break;
		default:
			return cli_usage_error("control", "unknown option");
		}
	}
	if (argc - 1 - optind < 1)
		return cli_usage_error("control", "%s needs REPODIR", sub);
	if (!keydir)
		return cli_usage_error("control", "%s needs --keys KEYDIR", sub);
	repodir = argv[1 + optind];
	if (!strcmp(sub, "delegate"))
		return do_delegate(repodir, keydir, role, argv + 2 + optind, argc - 2 - optind,
				   &ro);
	return do_publish(repodir, keydir, keyfile, group, argv + 2 + optind, argc - 2 - optind,
			  &ro);
}
