/* fs/cli/cmd_keygen.c: `stork keygen KEYFILE`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "fs/cli/cli.h"
#include "verify/verify.h"

static const char help[] =
    "usage: stork keygen KEYFILE\n"
    "\n"
    "Make a new ed25519 signing key. Writes the private key to KEYFILE (PEM, mode 0600) and\n"
    "the public key to KEYFILE.pub, and prints the key id. Keep KEYFILE off the served tree;\n"
    "give KEYFILE.pub to the repository owner for 'stork repo delegate'. Never overwrites.\n";

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	struct verify_key *key = NULL;
	int c, r, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return CLI_OK;
		}
		return cli_usage_error("keygen", "unknown option");
	}
	if (argc - optind != 1)
		return cli_usage_error("keygen", "expected exactly one argument, KEYFILE");

	r = verify_key_generate(&key);
	if (r < 0) {
		cli_fail("keygen", r, "generating a key");
		ret = CLI_SYSTEM;
		goto out;
	}
	r = verify_key_save(key, argv[optind]);
	if (r < 0) {
		cli_fail("keygen", r, "%s", argv[optind]);
		ret = cli_exit_input(r);
		goto out;
	}
	printf("%s\n", verify_key_id(key));
	ret = CLI_OK;
out:
	verify_key_free(key);
	return ret;
}
