/* verify/policy_int.h: private to the trust policy's files: verify/policy.c (the policy and
 * its queries), verify/policy_parse.c (the parser) and verify/policy_msg.c (the parser's
 * messages). The contract is verify/policy.h.
 */
#ifndef STORKFS_VERIFY_POLICY_INT_H
#define STORKFS_VERIFY_POLICY_INT_H

#include <stddef.h>

#include "verify/internal.h"
#include "verify/policy.h"

#define POLICY_LINE_MAX	 4096	       /* bytes per line, without its line end */
#define POLICY_RULES_MAX 10000	       /* trust, refuse and pin lines */
#define POLICY_KEYS_MAX	 1000	       /* key lines */
#define POLICY_FILE_MAX	 (1024 * 1024) /* what verify_policy_load reads */
#define KEY_NAME_MAX	 64
#define WORDS_MAX	 (POLICY_LINE_MAX / 2 + 1)
#define SUGGEST_MAX	 32 /* longest word we look for a typo in */

#define OPS_TEXT "< <= = >= >"

struct policy_key {
	char *name;
	struct verify_key *key;
	unsigned line;
};

/* A rule, and the storage its public view points into. */
struct policy_rule {
	struct verify_policy_rule pub;
	char *text;
	char *pattern;
	char *role;
	const struct verify_key **keys;
	const char **key_names;
	struct verify_policy_cmp *cmps;
	char **versions; /* parallel to cmps, nslots of them (NULL past ncmps) */
	size_t nslots;
};

struct verify_policy {
	char *file;
	struct policy_key *keys;
	size_t nkeys, keys_cap;
	struct policy_rule *rules;
	size_t nrules, rules_cap;
	struct verify_policy_rule nomatch;
};

struct parser {
	struct verify_policy *p;
	const char *basedir;
	char fileq[TEXT_QUOTE_LEN]; /* the file name, quoted for messages */
	unsigned line;
	char text[POLICY_LINE_MAX + 1];	 /* the line without comment and outer blanks */
	char words[POLICY_LINE_MAX + 1]; /* the same, cut into NUL-terminated words */
	char *w[WORDS_MAX];
	size_t nw;
};

/* The line's words 0..n-1, joined by one space and quoted into out (verify/policy_msg.c).
 * @return out. */
const char *policy_context(const struct parser *ps, size_t n, char *out, size_t size);

/* A new empty policy read from file (named in messages). @return 0; -ENOMEM. */
int policy_new(const char *file, struct verify_policy **ret_p);

/* Leave "FILE:LINE: CONTEXT: MESSAGE" (CONTEXT: the line's words 0..nctx-1, quoted; none when
 * nctx is 0) as the error detail (verify/policy_msg.c). @return STORK_EFORMAT. */
int policy_fail(const struct parser *ps, size_t nctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* " (did you mean \"WORD\"?)" when word is a likely typo of one of cands (NULL-terminated),
 * else "" (verify/policy_msg.c). @return out. */
const char *policy_suggest(const char *word, const char *const *cands, char *out, size_t size);

#endif
