/* fs/cli/main.c: `stork`, the publisher's and operator's command-line tool. */
#include <stdio.h>
#include <string.h>

#include "fs/cli/cli.h"

static const char usage[] =
    "usage: stork COMMAND [ARGS]\n"
    "\n"
    "Publishers:\n"
    "  keygen KEYFILE                         make a signing key (KEYFILE, KEYFILE.pub)\n"
    "  repo init REPODIR --keys KEYDIR        create a signed repository\n"
    "  repo delegate REPODIR --keys KEYDIR PUBKEYFILE PATTERN...\n"
    "                                         let a publisher key sign matching packages\n"
    "  repo refresh REPODIR --keys KEYDIR     re-sign the online roles before they expire\n"
    "  repo rotate REPODIR --keys KEYDIR [--key NEWKEYFILE] ROLE...\n"
    "                                         give roles new keys; clients follow\n"
    "  repo revoke REPODIR --keys KEYDIR ROLE remove a publisher's delegation\n"
    "  repo site REPODIR                      write the browse site (REPODIR/site/, HTML)\n"
    "  publish REPODIR --keys KEYDIR --key KEYFILE NAME VERSION SOURCE\n"
    "                                         publish a directory, tar, .deb or .rpm\n"
    "  control delegate|publish|show ...      groups' signed lists of wanted packages\n"
    "Clients:\n"
    "  verify --root ROOTFILE REPO            check a whole repository from its pinned root\n"
    "  ls --root ROOTFILE [--policy FILE] REPO [NAME]\n"
    "                                         list packages, or one package's versions\n"
    "  why --root ROOTFILE [--policy FILE] REPO NAME [VERSION]\n"
    "                                         which policy rule and signature decide\n"
    "  resolve --root ROOTFILE [--policy FILE] REPO NAME[=VERSION]...\n"
    "                                         the versions installing NAME needs\n"
    "Nodes:\n"
    "  extract --root ROOTFILE --store STOREDIR URL... NAME VERSION DESTDIR\n"
    "                                         materialise a version from the node store\n"
    "  prefetch --root ROOTFILE --store STOREDIR URL... NAME[=VERSION|=all]...\n"
    "                                         fetch whole versions into the node store\n"
    "  install --slices DIR --slice NAME --root ROOTFILE --store STOREDIR URL... "
    "NAME[=VERSION]...\n"
    "                                         install packages and their dependencies into a "
    "slice\n"
    "  remove  (the same) URL... NAME...      remove packages from a slice\n"
    "  upgrade (the same) URL... [NAME...]    newest accepted versions into a slice\n"
    "  list --slice NAME --root ROOTFILE --store STOREDIR\n"
    "                                         what a slice has installed, and why\n"
    "  rollback --slices DIR --slice NAME --root ROOTFILE --store STOREDIR\n"
    "                                         return a slice to its previous generation\n"
    "  fsck [--repair] STOREDIR               check (and repair) the node store\n"
    "  gc STOREDIR                            remove objects no trusted version references\n"
    "  status [MOUNTPOINT|STOREDIR]...        a running mount's counters; what a store holds\n"
    "\n"
    "'stork COMMAND --help' describes a command. Exit codes: 0 ok, 1 verification failed,\n"
    "2 usage or input error, 3 system error (I/O, disk full).\n";

int main(int argc, char **argv)
{
	/* One command a line: the formatter would pack the table into columns. */
	/* clang-format off */
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
	    {"keygen", cmd_keygen},
	    {"repo", cmd_repo},
	    {"publish", cmd_publish},
	    {"control", cmd_control},
	    {"verify", cmd_verify},
	    {"ls", cmd_ls},
	    {"why", cmd_why},
	    {"resolve", cmd_resolve},
	    {"install", cmd_install},
	    {"remove", cmd_remove},
	    {"upgrade", cmd_upgrade},
	    {"list", cmd_list},
	    {"rollback", cmd_rollback},
	    {"extract", cmd_extract},
	    {"fsck", cmd_fsck},
	    {"gc", cmd_gc},
	    {"status", cmd_status},
	    {"prefetch", cmd_prefetch},
	};
	/* clang-format on */

	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("stork %s\n", STORKFS_VERSION);
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "stork: unknown command \"%s\"\n\n%s", argv[1], usage);
	return CLI_USAGE;
}
