/* fs/cli/cmd_resolve.c: `stork resolve`, the versions an install would choose
 * (fs/install/install.h). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/fetch.h"
#include "fs/cli/cli.h"
#include "fs/fs.h"
#include "fs/install/install.h"
#include "verify/array.h"
#include "verify/error.h"
#include "verify/manifest.h"
#include "verify/policy.h"
#include "verify/tuf.h"

static const char resolve_help[] =
    "usage: stork resolve --root ROOTFILE [--policy FILE] [--at UNIXTIME] [--cacert FILE] "
    "REPO NAME[=VERSION]...\n"
    "\n"
    "The package versions that installing NAME (or NAME=VERSION) into a slice with the trust\n"
    "policy FILE needs: every dependency of every chosen version met by a version the policy\n"
    "accepts, versions compared as dpkg does. Prints \"NAME VERSION\" lines sorted by name.\n"
    "Recommends are not followed. Only verified metadata and manifests are read. Exit 0 with\n"
    "a solution, 2 when there is none: the message names the package, the dependency or\n"
    "conflict, and the policy rule and signer that refused the only candidate.\n"
    "\n"
    "--policy FILE  the slice's trust policy (default: trust * delegated)\n"
    "--at UNIXTIME  check expiry as of that time instead of now\n"
    "--cacert FILE  trust this PEM CA bundle for https\n"
    "--netrc FILE   user names and passwords for an http(s) REPO (curl's netrc format)\n";

/* What the command holds while it runs. */
struct resolve_cmd {
	struct cli_client_args a; /* the options, REPO */
	struct verify_source src;
	bool src_live;
	struct verify_client *c;
	struct verify_policy *policy;
	struct verify_manifest **m; /* the accepted versions' manifests */
	size_t nm, capm;
	struct verify_target *all; /* every signed version (name, version only) */
	size_t nall, capall;
	struct fs_install_refusal *refused;
	char **why; /* the refusals' texts */
	size_t nrefused;
	int err; /* first fetch failure in a walk */
};

static int take_accepted(void *ctx, const struct verify_target *t)
{
	struct resolve_cmd *rc = ctx;
	struct verify_manifest *m = NULL;
	int r;

	for (size_t i = 0; i < rc->nm; i++) /* signed by a delegation and a pinned role alike */
		if (!strcmp(rc->m[i]->name, t->name) && !strcmp(rc->m[i]->version, t->version))
			return 0;
	r = verify_grow((void **)&rc->m, &rc->capm, rc->nm, sizeof(*rc->m));
	if (r < 0)
		return r;
	r = verify_fetch_manifest(&rc->src, t, &m);
	if (r < 0) {
		stork_error_prefix("%s %s: ", t->name, t->version);
		rc->err = r;
		return r;
	}
	rc->m[rc->nm++] = m;
	return 0;
}

static int take_signed(void *ctx, const struct verify_target *t)
{
	struct resolve_cmd *rc = ctx;
	struct verify_target *d;
	int r = verify_grow((void **)&rc->all, &rc->capall, rc->nall, sizeof(*rc->all));

	if (r < 0)
		return r;
	d = &rc->all[rc->nall];
	memset(d, 0, sizeof(*d));
	d->name = strdup(t->name);
	d->version = strdup(t->version);
	rc->nall++;
	return d->name && d->version ? 0 : -ENOMEM;
}

static void problem(void *ctx, const char *file, int err, const char *detail)
{
	(void)ctx;
	(void)err;
	fprintf(stderr, "stork resolve: warning: %s (skipped)\n",
		detail && detail[0] ? detail : file);
}

static bool is_accepted(const struct resolve_cmd *rc, const struct verify_target *t)
{
	for (size_t i = 0; i < rc->nm; i++)
		if (!strcmp(rc->m[i]->name, t->name) && !strcmp(rc->m[i]->version, t->version))
			return true;
	return false;
}

/* The verdict on each signed version the policy refused. */
static int collect_refusals(struct resolve_cmd *rc)
{
	rc->refused = calloc(rc->nall ? rc->nall : 1, sizeof(*rc->refused));
	rc->why = calloc(rc->nall ? rc->nall : 1, sizeof(*rc->why));
	if (!rc->refused || !rc->why)
		return -ENOMEM;
	for (size_t i = 0; i < rc->nall; i++) {
		struct verify_decision d = {0};
		const struct verify_target *t = &rc->all[i];
		bool seen = false;
		int r;

		for (size_t k = 0; k < rc->nrefused && !seen; k++)
			seen = !strcmp(rc->refused[k].name, t->name) &&
			       !strcmp(rc->refused[k].version, t->version);
		if (seen || is_accepted(rc, t))
			continue;
		r = verify_client_decide(rc->c, &rc->src, rc->policy, t->name, t->version,
					 fs_version_cmp, &d);
		if (r == -ENOMEM)
			return r;
		rc->why[rc->nrefused] = strdup(r == 0 ? d.why : stork_error_detail());
		verify_decision_fini(&d);
		if (!rc->why[rc->nrefused])
			return -ENOMEM;
		rc->refused[rc->nrefused] = (struct fs_install_refusal){
		    .name = t->name, .version = t->version, .why = rc->why[rc->nrefused]};
		rc->nrefused++;
	}
	return 0;
}

static void resolve_cmd_fini(struct resolve_cmd *rc)
{
	for (size_t i = 0; i < rc->nm; i++)
		verify_manifest_free(rc->m[i]);
	free(rc->m);
	for (size_t i = 0; i < rc->nall; i++)
		verify_target_fini(&rc->all[i]);
	free(rc->all);
	for (size_t i = 0; i < rc->nrefused; i++)
		free(rc->why[i]);
	free(rc->why);
	free(rc->refused);
	verify_policy_free(rc->policy);
	verify_client_free(rc->c);
	if (rc->src_live)
		fetch_source_fini(&rc->src);
}

/* The pinned root, the repository, a refreshed client, the policy. @return an exit code. */
static int open_repo(struct resolve_cmd *rc)
{
	uint8_t *root = NULL;
	size_t rootlen = 0;
	int r;

	r = cli_read_file(rc->a.root, VERIFY_MAX_ROOT_LEN, &root, &rootlen);
	if (r < 0) {
		cli_fail("resolve", r, "%s", rc->a.root);
		return cli_exit_input(r);
	}
	r = rc->a.policy ? verify_policy_load(rc->a.policy, &rc->policy)
			 : verify_policy_default(&rc->policy);
	if (r < 0) {
		cli_fail("resolve", r, "%s", rc->a.policy ? rc->a.policy : "default policy");
		free(root);
		return cli_exit_input(r);
	}
	r = fetch_source_init(&rc->src, rc->a.repo, &rc->a.fo);
	if (r < 0) {
		cli_fail("resolve", r, "%s", rc->a.shown);
		free(root);
		return cli_exit_input(r);
	}
	rc->src_live = true;
	r = verify_client_new(root, rootlen, rc->a.at ? rc->a.at : time(NULL), &rc->c);
	free(root);
	if (r < 0) {
		stork_error_prefix("pinned root %s: ", rc->a.root);
		cli_fail("resolve", r, "%s", rc->a.root);
		return cli_exit_verify(r);
	}
	r = verify_client_refresh(rc->c, &rc->src);
	if (r < 0) {
		cli_fail("resolve", r, "%s", rc->a.shown);
		return cli_exit_verify(r);
	}
	return CLI_OK;
}

/* NAME or NAME=VERSION. */
static int parse_requests(int n, char **argv, struct fs_install_request *want)
{
	for (int i = 0; i < n; i++) {
		char *eq = strchr(argv[i], '=');

		want[i].name = argv[i];
		want[i].version = NULL;
		if (eq) {
			*eq = '\0';
			want[i].version = eq + 1;
		}
		if (!want[i].name[0] || (eq && !want[i].version[0]))
			return cli_usage_error("resolve", "\"%s\": expected NAME or NAME=VERSION",
					       argv[i]);
	}
	return CLI_OK;
}

int cmd_resolve(int argc, char **argv)
{
	struct resolve_cmd rc = {0};
	struct fs_install_request *want = NULL;
	size_t *chosen = NULL, nchosen = 0;
	int code = CLI_OK, nwant, r;
	bool done;

	cli_client_args_parse("resolve", resolve_help, argc, argv, 2, INT_MAX, " NAME[=VERSION]...",
			      true, &rc.a, &done, &code);
	if (done)
		return code;
	nwant = argc - optind - 1;
	want = calloc((size_t)nwant, sizeof(*want));
	if (!want)
		return CLI_SYSTEM;
	code = parse_requests(nwant, argv + optind + 1, want);
	if (code != CLI_OK)
		goto out;
	code = open_repo(&rc);
	if (code != CLI_OK)
		goto out;
	r = verify_client_each_accepted(rc.c, &rc.src, rc.policy, fs_version_cmp, take_accepted,
					&rc, problem, NULL);
	if (r == 0)
		r = verify_client_each_target(rc.c, &rc.src, take_signed, &rc, problem, NULL);
	if (r == 0)
		r = collect_refusals(&rc);
	if (r < 0) {
		cli_fail("resolve", r, "%s", rc.a.shown);
		code = r == -ENOMEM ? CLI_SYSTEM : cli_exit_verify(r);
		goto out;
	}
	r = fs_install_resolve((const struct verify_manifest *const *)rc.m, rc.nm, rc.refused,
			       rc.nrefused, want, (size_t)nwant, &chosen, &nchosen);
	if (r < 0) {
		cli_fail("resolve", r, "no installable set");
		code = r == -ENOMEM ? CLI_SYSTEM : CLI_USAGE;
		goto out;
	}
	for (size_t i = 0; i < nchosen; i++)
		printf("%s %s\n", rc.m[chosen[i]]->name, rc.m[chosen[i]]->version);
	code = CLI_OK;
out:
	free(chosen);
	free(want);
	resolve_cmd_fini(&rc);
	return code;
}
