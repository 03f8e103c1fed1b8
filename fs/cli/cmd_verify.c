/* fs/cli/cmd_verify.c: `stork verify` and `stork ls`, the client's view of a repository. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "fs/cli/cli.h"
#include "fs/fs.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/manifest.h"
#include "verify/policy.h"
#include "verify/tuf.h"

static const char verify_help[] =
    "usage: stork verify --root ROOTFILE [--at UNIXTIME] [--cacert FILE] REPO\n"
    "\n"
    "Check a whole repository from the pinned root file ROOTFILE: the root chain, every\n"
    "signature and threshold, every expiry, every delegation's patterns, every manifest's\n"
    "hash and every object's hash. REPO is a directory, a file:// URL or an http(s) URL.\n"
    "For a directory, older metadata versions, unreferenced manifests and unreferenced\n"
    "objects are checked too. Each file that fails is named with the reason. Exit 0 when\n"
    "everything verifies, 1 when anything fails.\n"
    "\n"
    "--at UNIXTIME  check expiry as of that time instead of now\n"
    "--cacert FILE  trust this PEM CA bundle for https (e.g. a self-signed test CA)\n"
    "--netrc FILE   user names and passwords for an http(s) REPO (curl's netrc format)\n";

static const char ls_help[] =
    "usage: stork ls --root ROOTFILE [--policy FILE] [--at UNIXTIME] [--cacert FILE] REPO "
    "[NAME]\n"
    "\n"
    "Without NAME: the packages the repository signs, one per line. With NAME: its versions\n"
    "in dpkg order, one per line: VERSION, signing role, key id (16 hex), total bytes, regular\n"
    "files, as `stork publish` counts them (tab-separated; \"-\" when the repository does not\n"
    "sign them). The first line is a header. Only verified metadata is read; no package\n"
    "content is downloaded.\n"
    "--policy FILE  only what this trust policy accepts (verify/README.md \"Trust policy\")\n";

static const char why_help[] =
    "usage: stork why --root ROOTFILE [--policy FILE] [--at UNIXTIME] [--cacert FILE] REPO "
    "NAME [VERSION]\n"
    "\n"
    "Explain, for each signed version of package NAME (or just VERSION), whether a slice with\n"
    "the trust policy FILE accepts it: which rule of the policy decided (file:line and the\n"
    "rule) and which role and key signed it, or why nothing matched. Without --policy: the\n"
    "default policy (trust * delegated). Exit 0 when a version is accepted, 1 when none is.\n";

/* Open the repository, start a client from the pinned root and run the TUF workflow. */
static int open_client(const char *cmd, const struct cli_client_args *a, struct verify_source *src,
		       struct verify_client **ret_c, uint8_t **ret_root, size_t *ret_rootlen)
{
	struct verify_client *c = NULL;
	uint8_t *root = NULL;
	size_t rootlen = 0;
	int r;

	r = cli_read_file(a->root, VERIFY_MAX_ROOT_LEN, &root, &rootlen);
	if (r < 0) {
		cli_fail(cmd, r, "%s", a->root);
		return cli_exit_input(r);
	}
	r = fetch_source_init(src, a->repo, &a->fo);
	if (r < 0) {
		cli_fail(cmd, r, "%s", a->shown);
		free(root);
		return cli_exit_input(r);
	}
	r = verify_client_new(root, rootlen, a->at ? a->at : time(NULL), &c);
	if (r < 0) {
		stork_error_prefix("pinned root %s: ", a->root);
		cli_fail(cmd, r, "%s", a->root);
		goto fail;
	}
	r = verify_client_refresh(c, src);
	if (r < 0) {
		cli_fail(cmd, r, "%s", a->shown);
		/* A mirror that answers 404 (-ENOENT: 1) and one that does not answer at all
		 * failed alike: the repository could not be verified. */
		if (r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EHOSTUNREACH ||
		    r == -ENETUNREACH || r == -ECONNRESET)
			r = -ENOENT;
		goto fail;
	}
	*ret_c = c;
	*ret_root = root;
	*ret_rootlen = rootlen;
	return CLI_OK;
fail:
	verify_client_free(c);
	fetch_source_fini(src);
	free(root);
	return cli_exit_verify(r);
}

int cli_client_open(const char *cmd, const struct cli_client_args *a, struct verify_source *src,
		    struct verify_client **ret_c, uint8_t **ret_root, size_t *ret_rootlen)
{
	return open_client(cmd, a, src, ret_c, ret_root, ret_rootlen);
}

/* ------------------------------------------------------------------------------------------ */
/* verify: the audit is fs_audit() (fs/audit.c); here it is printed. */

static void tell_line(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "stork verify: %s\n", line);
}

static bool is_local(const char *repo)
{
	return strncmp(repo, "http://", 7) && strncmp(repo, "https://", 8);
}

int cmd_verify(int argc, char **argv)
{
	struct cli_client_args ca = {0};
	struct verify_source src = {0};
	struct verify_client *c = NULL;
	struct fs_audit_result res;
	const char *dir = NULL;
	uint8_t *root = NULL;
	size_t rootlen = 0;
	bool done;
	int code = 0, r;

	cli_client_args_parse("verify", verify_help, argc, argv, 1, 1, "", false, &ca, &done,
			      &code);
	if (done)
		return code;
	code = open_client("verify", &ca, &src, &c, &root, &rootlen);
	if (code != CLI_OK)
		return code;
	if (is_local(ca.repo))
		dir = strncmp(ca.repo, "file://", 7) ? ca.repo : ca.repo + 7;
	r = fs_audit(c, &src, root, rootlen, dir, tell_line, NULL, &res);
	if (r < 0) {
		cli_fail("verify", r, "walking targets");
		code = CLI_SYSTEM;
	} else if (res.failures) {
		fprintf(stderr, "stork verify: %s: %u problems found\n", ca.shown, res.failures);
		code = CLI_VERIFY_FAILED;
	} else {
		printf("verified %s: %zu packages, %" PRIu64 " versions, %zu objects, %" PRIu64
		       " bytes\n",
		       ca.shown, res.packages, res.versions, res.objects, res.bytes);
		code = CLI_OK;
	}
	verify_client_free(c);
	fetch_source_fini(&src);
	free(root);
	return code;
}

/* ------------------------------------------------------------------------------------------ */
/* ls */

struct listing {
	struct verify_target *t;
	size_t n, cap;
	const char *only; /* NULL: every package */
};

static int collect(void *ctx, const struct verify_target *t)
{
	struct listing *l = ctx;
	struct verify_target *d;

	if (l->only && strcmp(l->only, t->name))
		return 0;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		void *p = realloc(l->t, ncap * sizeof(*l->t));

		if (!p)
			return -ENOMEM;
		l->t = p;
		l->cap = ncap;
	}
	d = &l->t[l->n];
	memset(d, 0, sizeof(*d));
	d->name = strdup(t->name);
	d->version = strdup(t->version);
	d->role = strdup(t->role ? t->role : "");
	d->keyid = strdup(t->keyid ? t->keyid : "");
	d->size = t->size;
	d->files = t->files;
	d->described = t->described;
	d->counted = t->counted;
	l->n++;
	if (!d->name || !d->version || !d->role || !d->keyid)
		return -ENOMEM;
	return 0;
}

static int by_name_version(const void *x, const void *y)
{
	const struct verify_target *a = x, *b = y;
	int r = strcmp(a->name, b->name);

	return r ? r : fs_version_cmp(a->version, b->version);
}

static void ls_problem(void *ctx, const char *file, int err, const char *detail)
{
	(void)ctx;
	fprintf(stderr, "stork ls: warning: %s (skipped)\n", detail && detail[0] ? detail : file);
	(void)err;
}

/* The policy named by --policy, or the default one. @return an exit code (0: ok). */
static int load_policy(const char *cmd, const char *path, struct verify_policy **ret_p)
{
	int r = path ? verify_policy_load(path, ret_p) : verify_policy_default(ret_p);

	if (r < 0) {
		cli_fail(cmd, r, "%s", path ? path : "the default policy");
		return cli_exit_input(r);
	}
	return CLI_OK;
}

/* A header, then a package a line or (@versions) one package's versions a line. The files
 * column counts regular files as `stork publish` does; "-" where the repository does not
 * sign it (another writer, or one that signed the entry count). */
static void print_listing(const struct listing *l, bool versions)
{
	const struct verify_target *t;
	char size[24], files[24];

	if (!versions) {
		printf("PACKAGE\n");
		for (size_t i = 0; i < l->n; i++)
			if (i == 0 || strcmp(l->t[i].name, l->t[i - 1].name))
				printf("%s\n", l->t[i].name);
		return;
	}
	printf("VERSION\tROLE\tKEY ID\tBYTES\tFILES\n");
	for (size_t i = 0; i < l->n; i++) {
		t = &l->t[i];
		snprintf(size, sizeof(size), "-");
		snprintf(files, sizeof(files), "-");
		if (t->described)
			snprintf(size, sizeof(size), "%" PRIu64, t->size);
		if (t->described && t->counted)
			snprintf(files, sizeof(files), "%" PRIu64, t->files);
		printf("%s\t%s\t%.16s\t%s\t%s\n", t->version, t->role, t->keyid, size, files);
	}
}

/* What `stork ls` and `stork why` hold while they run. */
struct session {
	struct cli_client_args a;
	struct verify_source src;
	struct verify_client *c;
	struct verify_policy *policy;
	struct listing l;
	uint8_t *root;
	size_t rootlen;
};

static void session_fini(struct session *s)
{
	for (size_t i = 0; i < s->l.n; i++)
		verify_target_fini(&s->l.t[i]);
	free(s->l.t);
	verify_policy_free(s->policy);
	verify_client_free(s->c);
	if (s->root) /* open_client succeeded: the source is live */
		fetch_source_fini(&s->src);
	free(s->root);
}

int cmd_ls(int argc, char **argv)
{
	struct session s = {0};
	struct listing *l = &s.l;
	bool done;
	int code = 0, r;

	cli_client_args_parse("ls", ls_help, argc, argv, 1, 2, " [NAME]", true, &s.a, &done, &code);
	if (done)
		return code;
	code = open_client("ls", &s.a, &s.src, &s.c, &s.root, &s.rootlen);
	if (code != CLI_OK)
		return code;
	l->only = s.a.name;
	if (s.a.policy) {
		code = load_policy("ls", s.a.policy, &s.policy);
		if (code != CLI_OK)
			goto out;
		r = verify_client_each_accepted(s.c, &s.src, s.policy, fs_version_cmp, collect, l,
						ls_problem, NULL);
	} else {
		r = verify_client_each_target(s.c, &s.src, collect, l, ls_problem, NULL);
	}
	if (r == -ENOMEM) {
		cli_fail("ls", r, "listing");
		code = CLI_SYSTEM;
		goto out;
	}
	if (l->n > 1)
		qsort(l->t, l->n, sizeof(*l->t), by_name_version);
	if (s.a.name && l->n == 0) {
		fprintf(stderr, "stork ls: %s: no package \"%s\" is signed in this repository\n",
			s.a.shown, s.a.name);
		code = CLI_USAGE;
		goto out;
	}
	print_listing(l, s.a.name != NULL);
	code = CLI_OK;
out:
	session_fini(&s);
	return code;
}

int cmd_why(int argc, char **argv)
{
	struct session s = {0};
	struct listing *l = &s.l;
	bool done, accepted = false;
	int code = 0, r;

	cli_client_args_parse("why", why_help, argc, argv, 2, 3, " NAME [VERSION]", true, &s.a,
			      &done, &code);
	if (done)
		return code;
	code = load_policy("why", s.a.policy, &s.policy);
	if (code != CLI_OK)
		goto out;
	code = open_client("why", &s.a, &s.src, &s.c, &s.root, &s.rootlen);
	if (code != CLI_OK)
		goto out;
	if (s.a.version) {
		l->t = calloc(1, sizeof(*l->t));
		if (!l->t || !(l->t[0].version = strdup(s.a.version))) {
			code = CLI_SYSTEM;
			goto out;
		}
		l->n = 1;
	} else {
		/* Every version anyone signs: through the delegations and the pinned roles. */
		l->only = s.a.name;
		r = verify_client_each_target(s.c, &s.src, collect, l, ls_problem, NULL);
		if (r != -ENOMEM)
			r = verify_client_each_accepted(s.c, &s.src, s.policy, fs_version_cmp,
							collect, l, ls_problem, NULL);
		if (r == -ENOMEM) {
			cli_fail("why", r, "listing");
			code = CLI_SYSTEM;
			goto out;
		}
		if (l->n > 1)
			qsort(l->t, l->n, sizeof(*l->t), by_name_version);
		if (l->n == 0) {
			printf("%s: no version of \"%s\" is signed in this repository\n", s.a.shown,
			       s.a.name);
			code = CLI_VERIFY_FAILED;
			goto out;
		}
	}
	for (size_t i = 0; i < l->n; i++) {
		struct verify_decision d = {0};

		if (i && strcmp(l->t[i].version, l->t[i - 1].version) == 0)
			continue; /* signed by a delegation and a pinned role alike */
		r = verify_client_decide(s.c, &s.src, s.policy, s.a.name, l->t[i].version,
					 fs_version_cmp, &d);
		if (r == 0)
			printf("%s\n", d.why);
		else
			printf("%s %s: refused: %s\n", s.a.name, l->t[i].version,
			       stork_error_detail());
		accepted |= r == 0 && d.accepted;
		verify_decision_fini(&d);
	}
	code = accepted ? CLI_OK : CLI_VERIFY_FAILED;
out:
	session_fini(&s);
	return code;
}
