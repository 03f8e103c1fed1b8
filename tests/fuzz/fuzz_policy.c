/* tests/fuzz/fuzz_policy.c: the trust policy parser (verify_policy_parse) and its lookups.
 *
 * Input: one policy file. Seeds: contrib/policy.example, the examples of verify/README.md
 * "Trust policy", and broken policies (typos, missing keys, bad thresholds, NUL bytes, invalid
 * UTF-8, CRLF). `key NAME file PATH` lines resolve in a private directory holding the files the
 * examples name: keys/alice.key.pub and alice.pub (PEM, fixed key 1), bob.json (a TUF key
 * object, fixed key 2), keys/db-release-1.pub and keys/db-release-2.pub (fixed keys 3 and 4).
 *
 * Besides surviving the input, the parser must keep the promises of verify/verify.h: a refusal
 * is STORK_EFORMAT, -ENOMEM or a -errno from a key file, with a detail "fuzz.policy:LINE: ..."
 * whose LINE is a line of the input; an accepted policy's rules are what the header says
 * (patterns, roles and versions in their charsets, thresholds within their keys, distinct keys,
 * lines in order), each lookup returns a rule that matches the name, and the first DELEGATED,
 * PINNED or REFUSE rule in file order is the one that decides; a control line is the policy's
 * only one, its group in a package name's charset. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

#define FILE_NAME "fuzz.policy"

static char dir[4096];

static const char *tmp_base(void)
{
	const char *base = getenv("STORK_FUZZ_TMPDIR");

	if (base && base[0])
		return base;
	if (access("/dev/shm", W_OK | X_OK) == 0)
		return "/dev/shm";
	base = getenv("TMPDIR");
	return base && base[0] ? base : "/tmp";
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void remove_dir(void)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_text(const char *rel, const char *text)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		fuzz_bug("cannot write %s", path);
}

/* Save key as DIR/REL (private) and DIR/REL.pub. */
static void save_key(const struct verify_key *key, const char *rel)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if (verify_key_save(key, path) < 0)
		fuzz_bug("cannot save %s", path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct verify_key *alice = NULL, *bob = NULL, *db1 = NULL, *db2 = NULL;
	char path[4200], *json = NULL;
	json_t *j;

	fuzz_setup();
	if ((size_t)snprintf(dir, sizeof(dir), "%s/stork-fuzz-policy.XXXXXX", tmp_base()) >=
	    sizeof(dir))
		fuzz_bug("temporary directory name too long");
	if (!mkdtemp(dir))
		fuzz_bug("mkdtemp %s: %s", dir, strerror(errno));
	atexit(remove_dir);
	snprintf(path, sizeof(path), "%s/keys", dir);
	if (mkdir(path, 0700) < 0)
		fuzz_bug("mkdir %s: %s", path, strerror(errno));

	alice = fuzz_key(1);
	bob = fuzz_key(2);
	save_key(alice, "keys/alice.key"); /* and keys/alice.key.pub */
	save_key(alice, "alice");
	db1 = fuzz_key(3);
	save_key(db1, "keys/db-release-1");
	db2 = fuzz_key(4);
	save_key(db2, "keys/db-release-2");
	j = verify_key_to_json(bob);
	json = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!json)
		fuzz_bug("cannot dump bob's key");
	write_text("bob.json", json);
	free(json);
	json_decref(j);
	verify_key_free(alice);
	verify_key_free(bob);
	verify_key_free(db1);
	verify_key_free(db2);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */

static size_t count_lines(const uint8_t *data, size_t size)
{
	size_t n = 1, i;

	for (i = 0; i < size; i++)
		n += data[i] == '\n';
	return n;
}

static void check_refusal(int r, const uint8_t *data, size_t size)
{
	const char *d = stork_error_detail();
	size_t plen = strlen(FILE_NAME ":");
	unsigned long line;
	char *end = NULL;

	if (r != STORK_EFORMAT && r != -ENOMEM && !(r < 0 && r > -4096))
		fuzz_bug("verify_policy_parse returned %d (%s), not a documented code", r,
			 storkfs_strerror(r));
	if (r == -ENOMEM)
		return;
	if (strncmp(d, FILE_NAME ":", plen) != 0 || d[plen] < '1' || d[plen] > '9')
		fuzz_bug("refusal %d without \"" FILE_NAME ":LINE: \"", r);
	line = strtoul(d + plen, &end, 10);
	if (!end || strncmp(end, ": ", 2) != 0)
		fuzz_bug("refusal %d: the line number is not followed by \": \"", r);
	if (line > count_lines(data, size))
		fuzz_bug("refusal names line %lu of an input of %zu lines", line,
			 count_lines(data, size));
}

static void check_keys(const struct verify_policy_rule *r)
{
	size_t i, j;

	if (!r->keys || !r->key_names)
		fuzz_bug("line %u: keys missing", r->line);
	for (i = 0; i < r->nkeys; i++) {
		if (!r->keys[i] || !r->key_names[i])
			fuzz_bug("line %u: key %zu missing", r->line, i);
		for (j = 0; j < i; j++)
			if (strcmp(verify_key_id(r->keys[i]), verify_key_id(r->keys[j])) == 0)
				fuzz_bug("line %u: the same key twice", r->line);
	}
}

/* The promises of the header about one rule of an accepted policy. */
static void check_rule(const struct verify_policy_rule *r, unsigned prev_line)
{
	size_t i;

	if (strcmp(r->file, FILE_NAME) != 0 || r->line <= prev_line || !r->text || !r->text[0] ||
	    r->text[0] == ' ' || r->text[0] == '\t')
		fuzz_bug("rule with file \"%s\", line %u after %u, text \"%s\"", r->file, r->line,
			 prev_line, r->text ? r->text : "(null)");
	if (r->kind != VERIFY_POLICY_REFUSE_KEY &&
	    (!r->pattern || verify_check_name_pattern(r->pattern) < 0))
		fuzz_bug("line %u: pattern outside the charset", r->line);
	switch (r->kind) {
	case VERIFY_POLICY_DELEGATED:
	case VERIFY_POLICY_REFUSE:
		break;
	case VERIFY_POLICY_CONTROL_DELEGATED:
		if (verify_check_group_name(r->pattern) < 0)
			fuzz_bug("line %u: group outside the charset", r->line);
		break;
	case VERIFY_POLICY_CONTROL_PINNED:
		if (verify_check_group_name(r->pattern) < 0)
			fuzz_bug("line %u: group outside the charset", r->line);
		/* fall through: its role and keys as a pinned trust line's */
	case VERIFY_POLICY_PINNED:
		if (!r->role || verify_check_role_name(r->role) < 0)
			fuzz_bug("line %u: role outside the charset", r->line);
		if (r->nkeys < 1 || r->threshold < 1 || r->threshold > r->nkeys)
			fuzz_bug("line %u: threshold %u of %zu keys", r->line, r->threshold,
				 r->nkeys);
		check_keys(r);
		break;
	case VERIFY_POLICY_REFUSE_KEY:
		if (r->nkeys != 1)
			fuzz_bug("line %u: refuse key with %zu keys", r->line, r->nkeys);
		check_keys(r);
		break;
	case VERIFY_POLICY_PIN:
		if (r->ncmps < 1 || !r->cmps)
			fuzz_bug("line %u: pin without comparisons", r->line);
		for (i = 0; i < r->ncmps; i++)
			if (r->cmps[i].op > VERIFY_CMP_GT || !r->cmps[i].version ||
			    verify_check_version(r->cmps[i].version) < 0)
				fuzz_bug("line %u: comparison %zu is not OP VERSION", r->line, i);
		break;
	default:
		fuzz_bug("line %u: kind %d in a policy", r->line, (int)r->kind);
	}
}

/* Package names to look up: fixed ones, and each word of the input that is a package name. */
static size_t names_of(const uint8_t *data, size_t size, char names[][129], size_t max)
{
	static const char *const fixed[] = {"web-server", "db-main", "openssl", "zlib", "key"};
	size_t n = 0, i = 0;

	for (; n < sizeof(fixed) / sizeof(fixed[0]); n++)
		snprintf(names[n], 129, "%s", fixed[n]);
	while (i < size && n < max) {
		size_t start = i;

		while (i < size && data[i] > ' ' && data[i] < 0x7f && i - start < 128)
			i++;
		if (i > start) {
			memcpy(names[n], data + start, i - start);
			names[n][i - start] = '\0';
			if (verify_check_package_name(names[n]) == 0)
				n++;
		}
		while (i < size && (data[i] <= ' ' || data[i] >= 0x7f))
			i++;
	}
	stork_error_clear();
	return n;
}

/* Orders versions bytewise: enough to check that the pins are applied as written. */
static int byte_cmp(const char *a, const char *b)
{
	return strcmp(a, b);
}

static bool holds(const struct verify_policy_cmp *c, const char *version)
{
	int d = strcmp(version, c->version);

	switch (c->op) {
	case VERIFY_CMP_LT:
		return d < 0;
	case VERIFY_CMP_LE:
		return d <= 0;
	case VERIFY_CMP_EQ:
		return d == 0;
	case VERIFY_CMP_GE:
		return d >= 0;
	case VERIFY_CMP_GT:
		return d > 0;
	}
	return false;
}

static void check_lookups(const struct verify_policy *p, const char *name)
{
	static const char *const versions[] = {"0", "1.0", "3.0", "4", "1:0.9", "zz"};
	const struct verify_policy_rule *r = verify_policy_rule_for(p, name), *first = NULL;
	size_t i, n = verify_policy_nrules(p), v;

	for (i = 0; i < n && !first; i++) {
		const struct verify_policy_rule *q = verify_policy_rule_at(p, i);

		if ((q->kind == VERIFY_POLICY_DELEGATED || q->kind == VERIFY_POLICY_PINNED ||
		     q->kind == VERIFY_POLICY_REFUSE) &&
		    verify_name_matches(q->pattern, name))
			first = q;
	}
	if (!r)
		fuzz_bug("rule_for(%s) returned NULL", name);
	if (first ? r != first : r->kind != VERIFY_POLICY_NOMATCH || r->line != 0)
		fuzz_bug("rule_for(%s) is not the first matching trust or refuse line", name);

	for (v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
		const struct verify_policy_rule *pin = verify_policy_pin_excludes(
						    p, name, versions[v], byte_cmp),
						*want = NULL;

		for (i = 0; i < n && !want; i++) {
			const struct verify_policy_rule *q = verify_policy_rule_at(p, i);
			size_t c;

			if (q->kind != VERIFY_POLICY_PIN || !verify_name_matches(q->pattern, name))
				continue;
			for (c = 0; c < q->ncmps; c++)
				if (!holds(&q->cmps[c], versions[v]))
					want = q;
		}
		if (pin != want)
			fuzz_bug("pin_excludes(%s, %s) is not the first pin it breaks", name,
				 versions[v]);
	}
}

static void check_accepted(const struct verify_policy *p, const uint8_t *data, size_t size)
{
	char names[32][129];
	size_t n = verify_policy_nrules(p), i, nn;
	unsigned prev = 0;

	for (i = 0; i < n; i++) {
		const struct verify_policy_rule *r = verify_policy_rule_at(p, i);

		check_rule(r, prev);
		prev = r->line;
		if ((r->kind == VERIFY_POLICY_CONTROL_DELEGATED ||
		     r->kind == VERIFY_POLICY_CONTROL_PINNED) &&
		    verify_policy_control(p) != r)
			fuzz_bug("line %u: a second control line, or one verify_policy_control "
				 "does not return",
				 r->line);
		if (r->kind == VERIFY_POLICY_REFUSE_KEY || r->kind == VERIFY_POLICY_PINNED ||
		    r->kind == VERIFY_POLICY_CONTROL_PINNED) {
			size_t k;

			for (k = 0; k < r->nkeys; k++) {
				const struct verify_policy_rule *rk =
				    verify_policy_refused_key(p, verify_key_id(r->keys[k]));

				if (rk && (rk->kind != VERIFY_POLICY_REFUSE_KEY ||
					   strcmp(verify_key_id(rk->keys[0]),
						  verify_key_id(r->keys[k])) != 0))
					fuzz_bug("refused_key returned a rule for another key");
				if (r->kind == VERIFY_POLICY_REFUSE_KEY && !rk)
					fuzz_bug("line %u: refuse key not found by its id",
						 r->line);
			}
		}
	}
	if (prev > count_lines(data, size) || verify_policy_rule_at(p, n))
		fuzz_bug("rules past the end of the input");
	nn = names_of(data, size, names, sizeof(names) / sizeof(names[0]));
	for (i = 0; i < nn; i++)
		check_lookups(p, names[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verify_policy *p = NULL;
	int r;

	stork_error_clear();
	r = verify_policy_parse(FILE_NAME, (const char *)data, size, dir, &p);
	if (r == 0) {
		if (!p)
			fuzz_bug("accepted without a policy");
		check_accepted(p, data, size);
		verify_policy_free(p);
	} else {
		if (p)
			fuzz_bug("refused (%d) but wrote the policy", r);
		check_refusal(r, data, size);
	}
	stork_error_clear();
	return 0;
}
