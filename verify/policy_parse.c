/* verify/policy_parse.c: reading a trust policy file: whose signatures one slice accepts for
 * which packages.
 *
 * A policy is written by a person, often in a hurry, and read by a mount that must refuse rather
 * than guess: every line parses to exactly one rule, or the parse stops with an error naming the
 * file, the line, what was found and what was expected there. The format and its semantics are
 * in verify/README.md "Trust policy"; the contract in verify/policy.h. The
 * policy it builds and what a mount asks of it are in verify/policy.c.
 *
 * Hostile input is bounded before it is looked at: a line is searched for its end within
 * POLICY_LINE_MAX bytes only, so a huge line costs no more than a short one; rules and keys are
 * counted; every word is checked against a small charset, so nothing unprintable reaches a
 * message or a rule.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "verify/control.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/policy_int.h"
#include "verify/text.h"

/* A new zeroed rule of this kind for the current line; it belongs to the policy at once, so a
 * failure part way through filling it frees whatever was filled. */
static int add_rule(struct parser *ps, enum verify_policy_kind kind, struct policy_rule **ret_r)
{
	struct verify_policy *p = ps->p;
	struct policy_rule *r;

	if (p->nrules >= POLICY_RULES_MAX)
		return policy_fail(
		    ps, 1, "expected at most %d rules in a policy (trust, refuse and pin lines)",
		    POLICY_RULES_MAX);
	if (p->nrules == p->rules_cap) {
		size_t cap = p->rules_cap ? 2 * p->rules_cap : 16;
		struct policy_rule *n = realloc(p->rules, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->rules = n;
		p->rules_cap = cap;
	}
	r = &p->rules[p->nrules];
	memset(r, 0, sizeof(*r));
	r->text = strdup(ps->text);
	if (!r->text)
		return -ENOMEM;
	p->nrules++;
	r->pub.kind = kind;
	r->pub.file = p->file;
	r->pub.line = ps->line;
	r->pub.text = r->text;
	*ret_r = r;
	return 0;
}

static const struct policy_key *find_key(const struct verify_policy *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->nkeys; i++)
		if (strcmp(p->keys[i].name, name) == 0)
			return &p->keys[i];
	return NULL;
}

static const struct policy_key *need_key(const struct parser *ps, const char *name, int *ret)
{
	const struct policy_key *k = find_key(ps->p, name);
	char q[TEXT_QUOTE_LEN];

	if (!k) {
		text_quote(name, q, sizeof(q));
		*ret = policy_fail(
		    ps, 0,
		    "key %s: not defined above (define it with \"key %s ed25519 HEX\" or "
		    "\"key %s file PATH\")",
		    q, q, q);
	}
	return k;
}

/* ------------------------------------------------------------------------------------------ */
/* Words. */

static int end_of_line(const struct parser *ps, size_t at)
{
	if (ps->nw > at)
		return policy_fail(ps, at + 1, "expected the end of the line");
	return 0;
}

static bool key_name_valid(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > KEY_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];
		bool alnum =
		    (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

		if (!alnum && (i == 0 || !strchr("._-", c)))
			return false;
	}
	return true;
}

static int pattern_at(struct parser *ps, size_t at, const char *after, char **ret_pattern)
{
	char *pattern;

	if (ps->nw <= at)
		return policy_fail(ps, at, "expected a name pattern after \"%s\"", after);
	if (verify_check_name_pattern(ps->w[at]) < 0)
		return policy_fail(ps, at + 1, "expected a name pattern (%s)",
				   stork_error_detail());
	pattern = strdup(ps->w[at]);
	if (!pattern)
		return -ENOMEM;
	*ret_pattern = pattern;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* key NAME ed25519 HEX | key NAME file PATH */

static int load_key_file(struct parser *ps, const char *path, struct verify_key **ret_key)
{
	char ctx[TEXT_QUOTE_LEN], q[TEXT_QUOTE_LEN];
	char *full = NULL;
	struct stat st;
	int r;

	if (path[0] != '/' && ps->basedir && ps->basedir[0]) {
		if (asprintf(&full, "%s/%s", ps->basedir, path) < 0)
			return -ENOMEM;
	} else {
		full = strdup(path);
		if (!full)
			return -ENOMEM;
	}
	text_quote(full, q, sizeof(q));
	/* A FIFO or a device would make the open below wait or read forever: only a regular
	 * file can hold a key. */
	if (stat(full, &st) < 0) {
		r = -errno;
		stork_errorf("%s:%u: %s: %s: cannot read: %s", ps->fileq, ps->line,
			     policy_context(ps, 4, ctx, sizeof(ctx)), q, storkfs_strerror(r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = policy_fail(
		    ps, 4,
		    "%s: not a regular file: expected a public key file (PEM or TUF key "
		    "object)",
		    q);
		goto out;
	}
	r = verify_key_load_public(full, ret_key);
	if (r < 0) {
		stork_error_prefix("%s:%u: %s", ps->fileq, ps->line,
				   policy_context(ps, 4, ctx, sizeof(ctx)));
		if (r <= STORK_EBADSIG && r >= STORK_EUNSUPPORTED)
			r = STORK_EFORMAT;
	}
out:
	free(full);
	return r;
}

static int parse_key(struct parser *ps)
{
	static const char *const kinds[] = {"ed25519", "file", NULL};
	struct verify_policy *p = ps->p;
	const struct policy_key *dup;
	struct verify_key *key = NULL;
	char *name = NULL, sug[64];
	uint8_t raw[32];
	int r;

	if (ps->nw < 2)
		return policy_fail(ps, 1,
				   "expected \"key NAME ed25519 HEX\" or \"key NAME file PATH\"");
	if (!key_name_valid(ps->w[1]))
		return policy_fail(ps, 2,
				   "expected a key name (1 to %d letters, digits, '.', '_' or '-', "
				   "starting with a letter or digit)",
				   KEY_NAME_MAX);
	dup = find_key(p, ps->w[1]);
	if (dup)
		return policy_fail(
		    ps, 2,
		    "already defined on line %u: expected a name not used before (one name "
		    "per key)",
		    dup->line);
	if (p->nkeys >= POLICY_KEYS_MAX)
		return policy_fail(ps, 2, "expected at most %d keys in a policy", POLICY_KEYS_MAX);
	if (ps->nw < 3)
		return policy_fail(ps, 2,
				   "expected \"ed25519 HEX\" or \"file PATH\" after the key name");
	if (strcmp(ps->w[2], "ed25519") == 0) {
		if (ps->nw < 4)
			return policy_fail(
			    ps, 3,
			    "expected 64 hex digits (the raw 32-byte public key) after "
			    "\"ed25519\"");
		if (strlen(ps->w[3]) != 64 || verify_unhex(ps->w[3], raw, sizeof(raw)) < 0)
			return policy_fail(ps, 4,
					   "expected 64 hex digits (the raw 32-byte public key)");
		r = end_of_line(ps, 4);
		if (r < 0)
			return r;
		r = verify_key_from_raw(raw, NULL, &key);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return policy_fail(ps, 4, "expected an ed25519 public key (%s)",
					   stork_error_detail());
	} else if (strcmp(ps->w[2], "file") == 0) {
		if (ps->nw < 4)
			return policy_fail(ps, 3, "expected a path after \"file\"");
		r = end_of_line(ps, 4);
		if (r < 0)
			return r;
		r = load_key_file(ps, ps->w[3], &key);
		if (r < 0)
			return r;
	} else {
		return policy_fail(
		    ps, 3,
		    "expected \"ed25519 HEX\" or \"file PATH\" after the key name (keys are "
		    "ed25519)%s",
		    policy_suggest(ps->w[2], kinds, sug, sizeof(sug)));
	}

	name = strdup(ps->w[1]);
	if (!name) {
		r = -ENOMEM;
		goto out;
	}
	if (p->nkeys == p->keys_cap) {
		size_t cap = p->keys_cap ? 2 * p->keys_cap : 8;
		struct policy_key *n = realloc(p->keys, cap * sizeof(*n));

		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		p->keys = n;
		p->keys_cap = cap;
	}
	p->keys[p->nkeys].name = name;
	p->keys[p->nkeys].key = key;
	p->keys[p->nkeys].line = ps->line;
	p->nkeys++;
	name = NULL;
	key = NULL;
	r = 0;
out:
	free(name);
	verify_key_free(key);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* trust PATTERN delegated | trust PATTERN role ROLE keys K[,K...] [threshold N] */

/* The comma-separated key names of word `at` into r->keys and r->key_names. */
static int key_list(struct parser *ps, size_t at, struct policy_rule *r)
{
	const char *list = ps->w[at];
	char name[KEY_NAME_MAX + 1];
	size_t n = 1, i, j;
	const char *s;
	int ret = 0;

	for (s = list; *s; s++)
		n += *s == ',';
	r->keys = calloc(n, sizeof(*r->keys));
	r->key_names = calloc(n, sizeof(*r->key_names));
	if (!r->keys || !r->key_names)
		return -ENOMEM;
	for (i = 0, s = list; i < n; i++) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		const struct policy_key *k;

		if (len == 0)
			return policy_fail(ps, at + 1,
					   "expected NAME[,NAME...] (an empty key name)");
		if (len > KEY_NAME_MAX)
			return policy_fail(ps, at + 1,
					   "expected NAME[,NAME...] (a key name of %zu bytes; "
					   "at most %d)",
					   len, KEY_NAME_MAX);
		memcpy(name, s, len);
		name[len] = '\0';
		k = need_key(ps, name, &ret);
		if (!k)
			return ret;
		for (j = 0; j < i; j++) {
			if (r->key_names[j] == k->name)
				return policy_fail(ps, at + 1,
						   "expected distinct keys (%s is listed twice; a "
						   "threshold counts distinct keys)",
						   k->name);
			if (strcmp(verify_key_id(r->keys[j]), verify_key_id(k->key)) == 0)
				return policy_fail(
				    ps, at + 1,
				    "expected distinct keys (%s and %s are the same key, "
				    "id %.16s; a threshold counts distinct keys)",
				    r->key_names[j], k->name, verify_key_id(k->key));
		}
		r->keys[i] = k->key;
		r->key_names[i] = k->name;
		s = comma ? comma + 1 : s + len;
	}
	r->pub.keys = r->keys;
	r->pub.key_names = r->key_names;
	r->pub.nkeys = n;
	return 0;
}

static int parse_threshold(struct parser *ps, size_t at, struct policy_rule *r)
{
	const char *s = ps->w[at];
	unsigned long v = 0;
	size_t len = strlen(s), i;

	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			break;
	if (len > 0 && i == len && len <= 9) {
		char *end = NULL;

		errno = 0;
		v = strtoul(s, &end, 10);
		if (errno != 0 || !end || *end)
			v = 0;
	}
	if (v < 1 || v > r->pub.nkeys)
		return policy_fail(ps, at + 1,
				   "expected a threshold from 1 to %zu (the number of keys listed)",
				   r->pub.nkeys);
	r->pub.threshold = (unsigned)v;
	return 0;
}

static int parse_pinned(struct parser *ps, struct policy_rule *r)
{
	static const char *const after_role[] = {"keys", NULL};
	static const char *const after_keys[] = {"threshold", NULL};
	char sug[64];
	int ret;

	/* w: trust PATTERN role ROLE keys K[,K...] [threshold N] */
	if (ps->nw < 4)
		return policy_fail(ps, 3, "expected a role name after \"role\"");
	if (verify_check_role_name(ps->w[3]) < 0)
		return policy_fail(ps, 4, "expected a role name (%s)", stork_error_detail());
	r->role = strdup(ps->w[3]);
	if (!r->role)
		return -ENOMEM;
	r->pub.role = r->role;
	if (ps->nw < 5 || strcmp(ps->w[4], "keys") != 0)
		return policy_fail(
		    ps, ps->nw < 5 ? 4 : 5,
		    "expected \"keys NAME[,NAME...]\" after the role (TAP 13: a pinned role "
		    "needs its keys)%s",
		    ps->nw < 5 ? "" : policy_suggest(ps->w[4], after_role, sug, sizeof(sug)));
	if (ps->nw < 6)
		return policy_fail(ps, 5, "expected NAME[,NAME...] after \"keys\"");
	ret = key_list(ps, 5, r);
	if (ret < 0)
		return ret;
	r->pub.threshold = 1;
	if (ps->nw == 6)
		return 0;
	if (strcmp(ps->w[6], "threshold") != 0 && find_key(ps->p, ps->w[6]))
		return policy_fail(
		    ps, 7,
		    "expected \"threshold N\" or the end of the line (list keys with "
		    "commas: keys %s,%s)",
		    ps->w[5], ps->w[6]);
	if (strcmp(ps->w[6], "threshold") != 0)
		return policy_fail(ps, 7, "expected \"threshold N\" or the end of the line%s",
				   policy_suggest(ps->w[6], after_keys, sug, sizeof(sug)));
	if (ps->nw < 8)
		return policy_fail(ps, 7, "expected a threshold from 1 to %zu after \"threshold\"",
				   r->pub.nkeys);
	ret = parse_threshold(ps, 7, r);
	if (ret < 0)
		return ret;
	return end_of_line(ps, 8);
}

static int parse_trust(struct parser *ps)
{
	static const char *const modes[] = {"delegated", "role", NULL};
	struct policy_rule *r = NULL;
	char *pattern = NULL, sug[64];
	int ret;

	ret = pattern_at(ps, 1, "trust", &pattern);
	if (ret < 0)
		return ret;
	if (ps->nw < 3) {
		ret = policy_fail(
		    ps, 2,
		    "expected \"delegated\" or \"role ROLE keys NAME[,NAME...]\" after the "
		    "pattern");
	} else if (strcmp(ps->w[2], "delegated") == 0) {
		ret = end_of_line(ps, 3);
		if (ret == 0)
			ret = add_rule(ps, VERIFY_POLICY_DELEGATED, &r);
	} else if (strcmp(ps->w[2], "role") == 0) {
		ret = add_rule(ps, VERIFY_POLICY_PINNED, &r);
		if (ret == 0)
			ret = parse_pinned(ps, r);
	} else if (strcmp(ps->w[2], "keys") == 0) {
		ret = policy_fail(
		    ps, 3,
		    "expected \"role ROLE\" before \"keys\" (TAP 13: a pinned publisher "
		    "names its role and its keys)");
	} else {
		ret = policy_fail(
		    ps, 3,
		    "expected \"delegated\" or \"role ROLE keys NAME[,NAME...]\" after the "
		    "pattern%s",
		    policy_suggest(ps->w[2], modes, sug, sizeof(sug)));
	}
	if (r) {
		r->pattern = pattern;
		r->pub.pattern = pattern;
	} else {
		free(pattern);
	}
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* refuse PATTERN | refuse key K */

static int parse_refuse(struct parser *ps)
{
	struct policy_rule *r = NULL;
	const struct policy_key *k;
	char *pattern = NULL;
	int ret = 0;

	if (ps->nw < 2)
		return policy_fail(ps, 1,
				   "expected a name pattern or \"key NAME\" after \"refuse\"");
	if (strcmp(ps->w[1], "key") != 0) {
		ret = pattern_at(ps, 1, "refuse", &pattern);
		if (ret == 0)
			ret = end_of_line(ps, 2);
		if (ret == 0)
			ret = add_rule(ps, VERIFY_POLICY_REFUSE, &r);
		if (ret < 0 || !r) {
			free(pattern);
			return ret;
		}
		r->pattern = pattern;
		r->pub.pattern = pattern;
		return 0;
	}
	if (ps->nw < 3)
		return policy_fail(
		    ps, 2,
		    "expected a key name after \"key\" (to refuse a package named key, write "
		    "\"refuse [k]ey\")");
	k = need_key(ps, ps->w[2], &ret);
	if (!k)
		return ret;
	ret = end_of_line(ps, 3);
	if (ret == 0)
		ret = add_rule(ps, VERIFY_POLICY_REFUSE_KEY, &r);
	if (ret < 0)
		return ret;
	r->keys = calloc(1, sizeof(*r->keys));
	r->key_names = calloc(1, sizeof(*r->key_names));
	if (!r->keys || !r->key_names)
		return -ENOMEM;
	r->keys[0] = k->key;
	r->key_names[0] = k->name;
	r->pub.keys = r->keys;
	r->pub.key_names = r->key_names;
	r->pub.nkeys = 1;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* control GROUP delegated | control GROUP role ROLE keys K[,K...] [threshold N] */

static int parse_control(struct parser *ps)
{
	static const char *const modes[] = {"delegated", "role", NULL};
	const struct verify_policy_rule *was = verify_policy_control(ps->p);
	struct policy_rule *r = NULL;
	char *group = NULL, sug[64];
	int ret;

	if (ps->nw < 2)
		return policy_fail(ps, 1, "expected a group name after \"control\"");
	if (verify_check_group_name(ps->w[1]) < 0)
		return policy_fail(ps, 2, "expected a group name (%s)", stork_error_detail());
	if (was)
		return policy_fail(ps, 2,
				   "expected one control line (line %u follows group %s already: "
				   "a slice follows one group)",
				   was->line, was->pattern);
	group = strdup(ps->w[1]);
	if (!group)
		return -ENOMEM;
	if (ps->nw < 3) {
		ret = policy_fail(
		    ps, 2,
		    "expected \"delegated\" or \"role ROLE keys NAME[,NAME...]\" after the group");
	} else if (strcmp(ps->w[2], "delegated") == 0) {
		ret = end_of_line(ps, 3);
		if (ret == 0)
			ret = add_rule(ps, VERIFY_POLICY_CONTROL_DELEGATED, &r);
	} else if (strcmp(ps->w[2], "role") == 0) {
		ret = add_rule(ps, VERIFY_POLICY_CONTROL_PINNED, &r);
		if (ret == 0)
			ret = parse_pinned(ps, r);
	} else {
		ret = policy_fail(
		    ps, 3,
		    "expected \"delegated\" or \"role ROLE keys NAME[,NAME...]\" after the "
		    "group%s",
		    policy_suggest(ps->w[2], modes, sug, sizeof(sug)));
	}
	if (r) {
		r->pattern = group;
		r->pub.pattern = group;
	} else {
		free(group);
	}
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* pin PATTERN OP VERSION [OP VERSION...] */

/* The operator at the start of s: its length in *ret_len, or -1 when s does not start with one
 * we know. *ret_len is the length of the operator-looking prefix either way. */
static int parse_op(const char *s, size_t *ret_len)
{
	static const struct {
		const char *text;
		int op;
	} ops[] = {
	    {"<=", VERIFY_CMP_LE}, {">=", VERIFY_CMP_GE}, {"<", VERIFY_CMP_LT},
	    {">", VERIFY_CMP_GT},  {"=", VERIFY_CMP_EQ},
	};
	size_t n = strspn(s, "<>=!"), i;

	*ret_len = n;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (n == strlen(ops[i].text) && strncmp(s, ops[i].text, n) == 0)
			return ops[i].op;
	return -1;
}

static int parse_pin(struct parser *ps)
{
	struct policy_rule *r = NULL;
	char *pattern = NULL;
	size_t at = 2;
	int ret;

	ret = pattern_at(ps, 1, "pin", &pattern);
	if (ret < 0)
		return ret;
	ret = add_rule(ps, VERIFY_POLICY_PIN, &r);
	if (ret < 0) {
		free(pattern);
		return ret;
	}
	r->pattern = pattern;
	r->pub.pattern = pattern;
	if (ps->nw < 3)
		return policy_fail(ps, 2,
				   "expected OP VERSION after the pattern (OP: " OPS_TEXT ")");
	/* at most one comparison per remaining word */
	r->nslots = ps->nw - 2;
	r->cmps = calloc(r->nslots, sizeof(*r->cmps));
	r->versions = calloc(r->nslots, sizeof(*r->versions));
	if (!r->cmps || !r->versions) {
		r->nslots = 0;
		return -ENOMEM;
	}
	r->pub.cmps = r->cmps;
	while (at < ps->nw) {
		const char *word = ps->w[at], *version;
		size_t oplen, vat;
		int op = parse_op(word, &oplen);

		if (oplen == 0)
			return policy_fail(ps, at + 1,
					   "expected an operator before the version: " OPS_TEXT
					   " (e.g. \"= %.40s\")",
					   word);
		if (op < 0)
			return policy_fail(
			    ps, at + 1, "expected an operator: " OPS_TEXT "%s",
			    strncmp(word, ">>", 2) == 0 || strncmp(word, "<<", 2) == 0
				? " (dpkg's \">>\" and \"<<\" are written \">\" and \"<\" "
				  "here)"
				: "");
		if (word[oplen]) { /* ">=3.0": operator and version in one word */
			version = word + oplen;
			vat = at;
		} else if (at + 1 < ps->nw) {
			version = ps->w[at + 1];
			vat = at + 1;
		} else {
			return policy_fail(ps, at + 1, "expected a version after \"%s\"", word);
		}
		if (verify_check_version(version) < 0)
			return policy_fail(ps, vat + 1, "expected a version (%s)",
					   stork_error_detail());
		r->versions[r->pub.ncmps] = strdup(version);
		if (!r->versions[r->pub.ncmps])
			return -ENOMEM;
		r->cmps[r->pub.ncmps].op = op;
		r->cmps[r->pub.ncmps].version = r->versions[r->pub.ncmps];
		r->pub.ncmps++;
		at = vat + 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Lines. */

/* Offset of the first byte of s[0..len) that does not start a well-formed UTF-8 character,
 * len when all are. */
static size_t utf8_bad_at(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80		    ? 1
			   : c >= 0xc2 && c <= 0xdf ? 2
			   : c >= 0xe0 && c <= 0xef ? 3
			   : c >= 0xf0 && c <= 0xf4 ? 4
						    : 0;

		if (n == 0 || n > len - i || !verify_utf8_valid(s + i, n))
			return i;
		i += n;
	}
	return len;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int parse_line(struct parser *ps, const char *s, size_t len)
{
	static const char *const rules[] = {"key", "trust", "refuse", "pin", "control", NULL};
	char q[TEXT_QUOTE_LEN], sug[64];
	size_t i, start, end, bad;
	char *w;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			return policy_fail(ps, 0,
					   "a NUL byte at column %zu: expected text (a policy is a "
					   "UTF-8 text file)",
					   i + 1);
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return policy_fail(ps, 0,
					   "control character \\x%02x at column %zu: expected "
					   "printable text",
					   c, i + 1);
	}
	bad = utf8_bad_at(s, len);
	if (bad < len)
		return policy_fail(ps, 0, "invalid UTF-8 at column %zu: expected UTF-8 text",
				   bad + 1);

	/* A comment starts with '#' at the start of the line or after a blank, so that a key
	 * file's path may contain one. */
	for (end = 0; end < len; end++)
		if (s[end] == '#' && (end == 0 || is_blank(s[end - 1])))
			break;
	for (start = 0; start < end && is_blank(s[start]); start++)
		;
	while (end > start && is_blank(s[end - 1]))
		end--;
	if (start == end)
		return 0;

	memcpy(ps->text, s + start, end - start);
	ps->text[end - start] = '\0';
	memcpy(ps->words, ps->text, end - start + 1);
	ps->nw = 0;
	for (w = ps->words; *w;) {
		while (is_blank(*w))
			*w++ = '\0';
		if (!*w)
			break;
		ps->w[ps->nw++] = w;
		while (*w && !is_blank(*w))
			w++;
	}

	if (strcmp(ps->w[0], "key") == 0)
		return parse_key(ps);
	if (strcmp(ps->w[0], "trust") == 0)
		return parse_trust(ps);
	if (strcmp(ps->w[0], "refuse") == 0)
		return parse_refuse(ps);
	if (strcmp(ps->w[0], "pin") == 0)
		return parse_pin(ps);
	if (strcmp(ps->w[0], "control") == 0)
		return parse_control(ps);
	text_quote(ps->w[0], q, sizeof(q));
	return policy_fail(ps, 0, "\"%s\": expected a rule: key, trust, refuse, pin or control%s",
			   q, policy_suggest(ps->w[0], rules, sug, sizeof(sug)));
}

int verify_policy_parse(const char *file, const char *text, size_t len, const char *basedir,
			struct verify_policy **ret_p)
{
	struct parser *ps = NULL;
	size_t pos = 0;
	int r;

	if (!file || (!text && len > 0) || !ret_p) {
		stork_errorf("policy: no file name, text or result given");
		return -EINVAL;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	r = policy_new(file, &ps->p);
	if (r < 0)
		goto out;
	ps->basedir = basedir;
	text_quote(file, ps->fileq, sizeof(ps->fileq));
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) /* a byte order mark */
		pos = 3;
	while (pos < len) {
		/* Look for the line's end no further than the longest line allowed (plus "\r\n"),
		 * so that one endless line costs no more than a long one. */
		size_t rest = len - pos,
		       window = rest < POLICY_LINE_MAX + 2 ? rest : POLICY_LINE_MAX + 2;
		const char *nl = memchr(text + pos, '\n', window);
		size_t linelen, next;

		ps->line++;
		if (nl) {
			linelen = (size_t)(nl - (text + pos));
			next = pos + linelen + 1;
		} else if (rest <= POLICY_LINE_MAX + 1) {
			linelen = rest;
			next = len;
		} else {
			linelen = POLICY_LINE_MAX + 1;
			next = len;
		}
		if (linelen > 0 && text[pos + linelen - 1] == '\r')
			linelen--;
		if (linelen > POLICY_LINE_MAX) {
			r = policy_fail(
			    ps, 0,
			    "a line of more than %d bytes: expected at most %d bytes per "
			    "line",
			    POLICY_LINE_MAX, POLICY_LINE_MAX);
			goto out;
		}
		r = parse_line(ps, text + pos, linelen);
		if (r < 0)
			goto out;
		pos = next;
	}
	*ret_p = ps->p;
	ps->p = NULL;
	r = 0;
out:
	if (ps)
		verify_policy_free(ps->p);
	free(ps);
	return r;
}

int verify_policy_load(const char *path, struct verify_policy **ret_p)
{
	char *buf = NULL, *basedir = NULL, q[TEXT_QUOTE_LEN];
	const char *slash;
	size_t len = 0;
	int fd = -1, r;

	text_quote(path, q, sizeof(q));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		stork_errorf("%s: cannot open the policy file: %s", q, storkfs_strerror(r));
		goto out;
	}
	buf = malloc(POLICY_FILE_MAX + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (len <= POLICY_FILE_MAX) {
		ssize_t n = read(fd, buf + len, POLICY_FILE_MAX + 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			stork_errorf("%s: cannot read the policy file: %s", q, storkfs_strerror(r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > POLICY_FILE_MAX) {
		r = -EFBIG;
		stork_errorf("%s: more than 1 MiB: expected a policy file of at most 1 MiB", q);
		goto out;
	}
	/* key files are relative to the policy file's directory */
	slash = strrchr(path, '/');
	if (slash) {
		basedir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
		if (!basedir) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = verify_policy_parse(path, buf, len, basedir, ret_p);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(basedir);
	return r;
}
