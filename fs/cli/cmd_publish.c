/* fs/cli/cmd_publish.c: `stork publish REPODIR --keys KEYDIR --key KEYFILE NAME VERSION SRC`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/cli/cli.h"
#include "store/import/import.h"
#include "verify/verify.h"
#include "verify/writer/writer.h"

static const char help[] =
    "usage: stork publish REPODIR --keys KEYDIR --key KEYFILE [--max-size BYTES] [--no-pack]\n"
    "                     [--no-chunks] [--quiet] NAME VERSION SOURCE\n"
    "\n"
    "Publish SOURCE as version VERSION of package NAME, signed with the publisher key\n"
    "KEYFILE (which 'stork repo delegate' must have allowed for NAME). SOURCE is a directory,\n"
    "a .tar (plain, .gz, .xz, .bz2, .zst), a Debian .deb (its data archive; its Depends and\n"
    "Pre-Depends are recorded) or an .rpm (its payload; its Requires are recorded).\n"
    "KEYDIR holds the repository's online keys (snapshot, timestamp). The package's one-line\n"
    "description (.deb Description, .rpm Summary) is signed with the version, and the browse\n"
    "site (REPODIR/site/, see `stork repo --help`) is rewritten.\n"
    "\n"
    "NAME: letters, digits and + . _ - (first a letter or digit), at most 128 bytes.\n"
    "VERSION: the same plus ~ and :, and not \"latest\".\n"
    "--max-size BYTES  refuse sources that unpack to more (default 64G; suffixes K M G T)\n"
    "--no-pack         no version pack (by default the small files of a version are also\n"
    "                  stored together in one file, fetched with one request by\n"
    "                  `stork prefetch`: a second copy of files up to 64 KiB compressed)\n"
    "--no-chunks       store files above 4 MiB whole, as one object each (by default they\n"
    "                  are stored as content-defined chunks of about 1 MiB, which clients\n"
    "                  fetch as reads need them; clients older than manifest spec_version 3\n"
    "                  refuse such a version)\n"
    "--quiet           print nothing on success\n";

int cmd_publish(int argc, char **argv)
{
	/* clang-format off */
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    CLI_SIGNER_LONGOPTS,
	    {"max-size", required_argument, NULL, 'm'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"no-pack", no_argument, NULL, 'P'},
	    {"no-chunks", no_argument, NULL, 'C'},
	    {0},
	};
	/* clang-format on */
	const char *repodir, *name, *version, *source;
	struct cli_signer sig = {0};
	struct store_import_opts io = {.repofd = -1};
	struct store_import_stats st = {0};
	struct verify_manifest *m = NULL;
	struct verify_key *key = NULL;
	struct cli_progress prog = {0};
	struct verify_repo_opts ro = {0};
	char *role = NULL, *packpath = NULL, label[300];
	bool quiet = false, pack = true, pack_written = false;
	int c, r, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h" CLI_SIGNER_SHORTOPTS "m:qPC", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		case 'm':
			if (cli_parse_size(optarg, &io.max_size) < 0 || !io.max_size)
				return cli_usage_error("publish",
						       "--max-size %s: expected a size "
						       "such as 500M or 2G",
						       optarg);
			break;
		case 'q':
			quiet = true;
			break;
		case 'P':
			pack = false;
			break;
		case 'C':
			io.whole = true;
			break;
		default:
			if (!cli_signer_option(c, optarg, &sig))
				return cli_usage_error("publish", "unknown option");
		}
	}
	if (argc - optind != 4)
		return cli_usage_error("publish", "expected REPODIR NAME VERSION SOURCE");
	if (!sig.keydir || !sig.keyfile)
		return cli_usage_error("publish", "needs --keys KEYDIR and --key KEYFILE");
	repodir = argv[optind];
	name = argv[optind + 1];
	version = argv[optind + 2];
	source = argv[optind + 3];

	if ((r = verify_check_package_name(name)) < 0 ||
	    (r = verify_check_version_publish(version)) < 0) {
		cli_fail("publish", r, "%s %s", name, version);
		return CLI_USAGE;
	}
	r = verify_key_load_private(sig.keyfile, &key);
	if (r < 0) {
		cli_fail("publish", r, "%s", sig.keyfile);
		ret = cli_exit_input(r);
		goto out;
	}
	/* Refuse before importing anything, so a refused publish leaves the tree untouched. */
	r = verify_repo_may_publish(repodir, key, name, &role);
	if (r < 0) {
		cli_fail("publish", r, "%s", repodir);
		ret = cli_exit_input(r);
		goto out;
	}
	/* Shared with other publishes, exclusive of `stork repo gc`: this publish's objects are
	 * named by no metadata until its commit. */
	r = verify_repo_lock_tree(repodir, false, &io.repofd);
	if (r < 0) {
		cli_fail("publish", r, "%s", repodir);
		ret = cli_exit_input(r);
		goto out;
	}
	snprintf(label, sizeof(label), "publishing %s %s", name, version);
	prog.label = label;
	io.progress = quiet ? NULL : cli_progress_update;
	io.progress_ctx = &prog;
	r = store_import(source, name, version, &io, &m, &st);
	cli_progress_end(&prog);
	if (r < 0) {
		cli_fail("publish", r, "%s", source);
		ret = cli_exit_input(r);
		goto out;
	}
	/* The pack before the signed commit, so that clients who see the version find it. */
	r = pack ? verify_manifest_file(m, ".pack", &packpath) : 0;
	if (r == 0 && pack)
		r = store_pack_write(io.repofd, m, packpath, &pack_written);
	if (r < 0) {
		cli_fail("publish", r, "%s %s: the version pack", name, version);
		ret = cli_exit_input(r);
		goto out;
	}
	ro.summary = st.summary;
	r = verify_repo_publish(repodir, sig.keydir, key, m, &ro);
	if (r < 0 && pack_written)
		unlinkat(io.repofd, packpath, 0); /* of a manifest that is not published */
	if (r < 0) {
		cli_fail("publish", r, "%s %s", name, version);
		ret = cli_exit_input(r);
		goto out;
	}
	if (r == 1) {
		if (!quiet)
			printf("%s %s is already published (identical)\n", name, version);
	} else if (!quiet) {
		printf("published %s %s: %llu files, %llu bytes; %llu new bytes in %llu new "
		       "objects, %llu reused bytes (signed by %s)\n",
		       name, version, (unsigned long long)st.files, (unsigned long long)st.bytes,
		       (unsigned long long)st.new_bytes, (unsigned long long)st.new_objects,
		       (unsigned long long)st.reused_bytes, role);
	}
	if (r == 0)
		cli_site_update("publish", repodir, sig.keydir, name, true);
	ret = CLI_OK;
out:
	if (io.repofd >= 0)
		close(io.repofd);
	verify_manifest_free(m);
	verify_key_free(key);
	free(packpath);
	free(role);
	return ret;
}
