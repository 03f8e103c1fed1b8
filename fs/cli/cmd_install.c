/* fs/cli/cmd_install.c: `stork install`, `remove`, `upgrade`, `list` and `rollback`: a slice's
 * installed set (fs/install/install.h, fs/README.md "Installing"). Parsing and printing only:
 * the work is fs_install_apply and fs_install_rollback. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/cli/cli.h"
#include "fs/fs.h"
#include "fs/install/install.h"
#include "store/store.h"
#include "verify/verify.h"

enum which { W_INSTALL, W_REMOVE, W_UPGRADE, W_LIST, W_ROLLBACK };

static const char *const cmd_names[] = {"install", "remove", "upgrade", "list", "rollback"};

static const char install_help[] =
    "usage: stork install --slices DIR --slice NAME --root ROOTFILE --store STOREDIR [OPTIONS]\n"
    "                     URL... PACKAGE[=VERSION]...\n"
    "\n"
    "Install packages and everything they depend on into slice NAME (DIR/NAME.policy decides\n"
    "which versions it accepts): adds PACKAGE to the slice's wanted list DIR/NAME.install,\n"
    "resolves the list (Depends and Pre-Depends; Recommends are not followed), refuses two\n"
    "packages that put different files at one path (unless one declares Replaces on the\n"
    "other), and makes the chosen versions the slice's next generation in the node store.\n"
    "Packages already installed keep their versions where they fit. Only verified metadata is\n"
    "read: no file of any package is fetched. A running storkfs shows the new generation at\n"
    "/.slices/NAME/root/ from the next path lookup on. Exit 0; 2 when no installable set\n"
    "exists or files clash (the message names the packages, the dependency or path and the\n"
    "rule); 1 when metadata fails verification; 3 for system errors.\n"
    "\n"
    "  --slices DIR    the slices directory (storkfs -o slices=DIR)\n"
    "  --slice NAME    the slice\n"
    "  --dry-run       print what would change, change nothing\n" CLI_NODE_HELP;

static const char remove_help[] =
    "usage: stork remove --slices DIR --slice NAME --root ROOTFILE --store STOREDIR [OPTIONS]\n"
    "                    URL... PACKAGE...\n"
    "\n"
    "Remove packages from slice NAME's wanted list and make the next generation without them\n"
    "and without what only they needed. A package that is installed only because another\n"
    "needs it cannot be removed alone (exit 2, naming who needs it). Options as stork\n"
    "install.\n"
    "\n"
    "  --slices DIR    the slices directory (storkfs -o slices=DIR)\n"
    "  --slice NAME    the slice\n"
    "  --dry-run       print what would change, change nothing\n" CLI_NODE_HELP;

static const char upgrade_help[] =
    "usage: stork upgrade --slices DIR --slice NAME --root ROOTFILE --store STOREDIR [OPTIONS]\n"
    "                     URL... [PACKAGE...]\n"
    "\n"
    "Resolve slice NAME's wanted list again with the newest versions its policy accepts (of\n"
    "PACKAGE... only, when given; a request NAME=VERSION stays at that version) and make them\n"
    "the next generation. Options as stork install.\n"
    "\n"
    "  --slices DIR    the slices directory (storkfs -o slices=DIR)\n"
    "  --slice NAME    the slice\n"
    "  --dry-run       print what would change, change nothing\n" CLI_NODE_HELP;

static const char list_help[] =
    "usage: stork list --slice NAME --root ROOTFILE --store STOREDIR [--generation N]\n"
    "\n"
    "What slice NAME has installed, from its current generation in the node store: one line\n"
    "per package, \"NAME VERSION WHY\", WHY being \"requested\" or \"needed by A, B\". Reads\n"
    "the store only. Exit 0; 2 when nothing is installed.\n"
    "\n"
    "  --slice NAME      the slice\n"
    "  --generation N    that generation instead of the current one\n";

static const char rollback_help[] =
    "usage: stork rollback --slices DIR --slice NAME --root ROOTFILE --store STOREDIR\n"
    "\n"
    "Make the generation before the current one current again, and its wanted list the\n"
    "slice's (DIR/NAME.install). Reads and writes the store only. Exit 0; 2 when there is no\n"
    "earlier generation.\n"
    "\n"
    "  --slices DIR    the slices directory (storkfs -o slices=DIR)\n"
    "  --slice NAME    the slice\n";

static const char *const helps[] = {install_help, remove_help, upgrade_help, list_help,
				    rollback_help};

struct icmd {
	enum which w;
	const char *name;
	struct cli_node n;
	const char *dir, *slice;
	bool dry_run;
	uint64_t generation;
	int first_pkg, nmirrors;
};

static int parse(struct icmd *ic, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"slices", required_argument, NULL, 'D'},
	    {"slice", required_argument, NULL, 'l'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"generation", required_argument, NULL, 'g'},
	    CLI_NODE_LONGOPTS,
	    {0},
	};
	bool node = ic->w != W_LIST && ic->w != W_ROLLBACK;
	int c, r;

	cli_node_init(&ic->n);
	optind = 1;
	while ((c = getopt_long(argc, argv, "hD:l:ng:" CLI_NODE_SHORTOPTS, opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(helps[ic->w], stdout);
			return -1;
		case 'D':
			if (ic->w == W_LIST)
				return cli_usage_error(ic->name, "unknown option --slices");
			ic->dir = optarg;
			break;
		case 'l':
			if (verify_check_package_name(optarg) < 0)
				return cli_usage_error(ic->name, "--slice %s: not a slice name",
						       optarg);
			ic->slice = optarg;
			break;
		case 'n':
			if (!node)
				return cli_usage_error(ic->name, "unknown option --dry-run");
			ic->dry_run = true;
			break;
		case 'g':
			if (ic->w != W_LIST || cli_parse_size(optarg, &ic->generation) < 0 ||
			    !ic->generation)
				return cli_usage_error(ic->name,
						       "--generation %s: expected a "
						       "generation number of stork list",
						       optarg);
			break;
		default:
			r = cli_node_option(ic->name, c, optarg, &ic->n);
			if (r < 0)
				return CLI_USAGE;
			if (r == 0 || (!node && c != 'r' && c != 's'))
				return cli_usage_error(ic->name, "unknown option");
		}
	}
	if (!ic->n.rootfile || !ic->n.storedir || !ic->slice || (ic->w != W_LIST && !ic->dir))
		return cli_usage_error(ic->name,
				       "needs %s--slice NAME, --root ROOTFILE and "
				       "--store STOREDIR",
				       ic->w != W_LIST ? "--slices DIR, " : "");
	for (ic->first_pkg = optind; ic->first_pkg < argc && strchr(argv[ic->first_pkg], '/');
	     ic->first_pkg++)
		;
	ic->nmirrors = ic->first_pkg - optind;
	if (!node && optind < argc)
		return cli_usage_error(ic->name, "%s: takes no arguments", argv[optind]);
	if (node && ic->nmirrors < 1)
		return cli_usage_error(ic->name, "expected URL... (a mirror has a '/'; write a "
						 "directory as ./DIR)");
	if ((ic->w == W_INSTALL || ic->w == W_REMOVE) && ic->first_pkg == argc)
		return cli_usage_error(ic->name, "expected the packages after the mirrors");
	for (int i = ic->first_pkg; i < argc; i++) {
		if (strchr(argv[i], '/'))
			return cli_usage_error(ic->name,
					       "%s: mirrors come before the packages (and "
					       "package names have no '/')",
					       argv[i]);
		if (ic->w != W_INSTALL && strchr(argv[i], '='))
			return cli_usage_error(ic->name, "%s: expected a package NAME", argv[i]);
	}
	return CLI_OK;
}

/* The new wanted list: install adds (a request of the same name is replaced), remove drops. */
static int new_wanted(struct icmd *ic, char **args, int nargs, char ***w, size_t *n,
		      const struct store_gen *cur)
{
	for (int i = 0; i < nargs; i++) {
		size_t len = strcspn(args[i], "=");
		bool found = false;

		for (size_t k = 0; k < *n;) {
			if (strlen((*w)[k]) >= len && !strncmp((*w)[k], args[i], len) &&
			    ((*w)[k][len] == '\0' || (*w)[k][len] == '=')) {
				found = true;
				free((*w)[k]);
				memmove(&(*w)[k], &(*w)[k + 1], (*n - k - 1) * sizeof(**w));
				(*n)--;
			} else {
				k++;
			}
		}
		if (ic->w == W_REMOVE && !found) {
			const char *why = NULL;

			for (size_t k = 0; cur && k < cur->npkgs; k++)
				if (!strcmp(cur->pkgs[k].name, args[i]))
					why = cur->pkgs[k].why;
			if (why)
				fprintf(stderr,
					"stork remove: %s was not asked for in slice %s: it is "
					"installed because it is %s; remove those instead\n",
					args[i], ic->slice, why);
			else
				fprintf(stderr, "stork remove: %s is not installed in slice %s\n",
					args[i], ic->slice);
			return CLI_USAGE;
		}
		if (ic->w == W_INSTALL) {
			char **q = realloc(*w, (*n + 1) * sizeof(**w));

			if (!q)
				return CLI_SYSTEM;
			*w = q;
			if (!((*w)[*n] = strdup(args[i])))
				return CLI_SYSTEM;
			(*n)++;
		}
	}
	return CLI_OK;
}

static const struct store_gen_pkg *find_pkg(const struct store_gen *g, const char *name)
{
	for (size_t i = 0; g && i < g->npkgs; i++)
		if (!strcmp(g->pkgs[i].name, name))
			return &g->pkgs[i];
	return NULL;
}

/* What changes from old to g, one line each, and a summary. */
static void print_changes(const struct icmd *ic, const struct store_gen *old,
			  const struct store_gen *g)
{
	size_t added = 0, removed = 0, changed = 0;

	for (size_t i = 0; i < g->npkgs; i++) {
		const struct store_gen_pkg *p = &g->pkgs[i], *o = find_pkg(old, p->name);

		if (!o) {
			printf("install %s %s (%s)\n", p->name, p->version, p->why);
			added++;
		} else if (strcmp(o->version, p->version) != 0) {
			printf("upgrade %s %s -> %s\n", p->name, o->version, p->version);
			changed++;
		}
	}
	for (size_t i = 0; old && i < old->npkgs; i++)
		if (!find_pkg(g, old->pkgs[i].name)) {
			printf("remove %s %s\n", old->pkgs[i].name, old->pkgs[i].version);
			removed++;
		}
	if (ic->dry_run)
		printf("slice %s: would install %zu packages (%zu new, %zu removed, %zu changed)\n",
		       ic->slice, g->npkgs, added, removed, changed);
	else if (old && old->number == g->number)
		printf("slice %s: generation %" PRIu64 " unchanged (%zu packages)\n", ic->slice,
		       g->number, g->npkgs);
	else
		printf("slice %s: generation %" PRIu64 ": %zu packages (%zu new, %zu removed, %zu "
		       "changed)\n",
		       ic->slice, g->number, g->npkgs, added, removed, changed);
}

static int exit_for(int r)
{
	if (r == STORK_EMISSING || r == -EEXIST || r == STORK_EHOSTILE || r == -ENOENT ||
	    r == STORK_EFORMAT)
		return CLI_USAGE;
	if (r == -ENOMEM || r == -EAGAIN)
		return CLI_SYSTEM;
	return cli_exit_verify(r);
}

static int run(enum which w, int argc, char **argv)
{
	struct icmd ic = {.w = w, .name = cmd_names[w]};
	struct fs_install_slice sl = {0};
	struct store_gen *old = NULL, *g = NULL;
	struct fs_repo *repo = NULL;
	struct store *s = NULL;
	uint8_t *root = NULL;
	size_t rootlen = 0, nwanted = 0;
	char **wanted = NULL, repo_id[VERIFY_HASH_HEX];
	unsigned flags;
	int code, r, lockfd = -1;

	code = parse(&ic, argc, argv);
	if (code != CLI_OK)
		return code < 0 ? CLI_OK : code;
	if (w == W_LIST || w == W_ROLLBACK) { /* the store alone: no network */
		uint8_t digest[VERIFY_HASH_LEN];

		r = cli_read_file(ic.n.rootfile, VERIFY_MAX_ROOT_LEN, &root, &rootlen);
		if (r < 0) {
			cli_fail(ic.name, r, "%s", ic.n.rootfile);
			code = cli_exit_input(r);
			goto out;
		}
		verify_sha256(root, rootlen, digest);
		verify_hex(digest, VERIFY_HASH_LEN, repo_id);
		r = store_open(ic.n.storedir, &s);
		if (r < 0) {
			cli_fail(ic.name, r, "%s", ic.n.storedir);
			code = cli_exit_input(r);
			goto out;
		}
	} else {
		code = cli_node_open(ic.name, &ic.n, (const char *const *)argv + optind,
				     (size_t)ic.nmirrors, &s, &repo);
		if (code != CLI_OK)
			goto out;
		snprintf(repo_id, sizeof(repo_id), "%s", fs_repo_id(repo));
	}
	sl = (struct fs_install_slice){s, repo, repo_id, ic.dir, ic.slice};
	if (w != W_LIST && !ic.dry_run) {
		r = fs_install_lock(&sl, &lockfd);
		if (r < 0) {
			cli_fail(ic.name, r, "slice %s", ic.slice);
			code = exit_for(r);
			goto out;
		}
	}
	r = store_gen_get(s, repo_id, ic.slice, w == W_LIST ? ic.generation : 0, &old);
	if (r < 0 && r != -ENOENT) {
		cli_fail(ic.name, r, "slice %s", ic.slice);
		code = cli_exit_system(r);
		goto out;
	}
	if (w == W_LIST) {
		if (!old) {
			cli_fail(ic.name, r, "slice %s", ic.slice);
			code = CLI_USAGE;
			goto out;
		}
		printf("# slice %s generation %" PRIu64 ": %zu packages\n", ic.slice, old->number,
		       old->npkgs);
		for (size_t i = 0; i < old->npkgs; i++)
			printf("%s %s %s\n", old->pkgs[i].name, old->pkgs[i].version,
			       old->pkgs[i].why);
		goto out;
	}
	if (w == W_ROLLBACK) {
		r = fs_install_rollback(&sl, &g);
		if (r < 0) {
			cli_fail(ic.name, r, "slice %s", ic.slice);
			code = exit_for(r);
			goto out;
		}
		print_changes(&ic, old, g);
		goto out;
	}
	r = fs_install_wanted(ic.dir, ic.slice, &wanted, &nwanted);
	if (r < 0) {
		cli_fail(ic.name, r, "slice %s", ic.slice);
		code = exit_for(r);
		goto out;
	}
	if (w != W_UPGRADE)
		code = new_wanted(&ic, argv + ic.first_pkg, argc - ic.first_pkg, &wanted, &nwanted,
				  old);
	if (code != CLI_OK)
		goto out;
	flags = (ic.dry_run ? FS_INSTALL_DRY_RUN : 0) | (w == W_UPGRADE ? FS_INSTALL_UPGRADE : 0);
	r = fs_install_apply_some(&sl, (const char *const *)wanted, nwanted,
				  (const char *const *)argv + ic.first_pkg,
				  w == W_UPGRADE ? (size_t)(argc - ic.first_pkg) : 0, flags, &g);
	if (r < 0) {
		cli_fail(ic.name, r, "slice %s", ic.slice);
		code = exit_for(r);
		goto out;
	}
	print_changes(&ic, old, g);
out:
	fs_install_unlock(lockfd);
	fs_install_wanted_free(wanted, nwanted);
	store_gen_free(old);
	store_gen_free(g);
	cli_node_close(s, repo);
	free(root);
	return code;
}

int cmd_install(int argc, char **argv)
{
	return run(W_INSTALL, argc, argv);
}

int cmd_remove(int argc, char **argv)
{
	return run(W_REMOVE, argc, argv);
}

int cmd_upgrade(int argc, char **argv)
{
	return run(W_UPGRADE, argc, argv);
}

int cmd_list(int argc, char **argv)
{
	return run(W_LIST, argc, argv);
}

int cmd_rollback(int argc, char **argv)
{
	return run(W_ROLLBACK, argc, argv);
}
