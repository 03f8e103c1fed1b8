/* verify/policy.h: a slice's trust policy, parsed (verify/policy_parse.c), queried
 * (verify/policy.c) and applied to the client's state (verify/decide.c).
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h); outputs are named ret_* and written only on success; _new/_free own
 * heap objects and every _free accepts NULL.
 */
#ifndef STORKFS_VERIFY_POLICY_H
#define STORKFS_VERIFY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "verify/key.h"
#include "verify/tuf.h"

/* ------------------------------------------------------------------------------------------ */
/* Trust policy: whose signatures one slice accepts for which packages. A small line-oriented
 * text file (format, semantics and examples in verify/README.md "Trust policy"; an annotated
 * example in contrib/policy.example):
 *
 *   # comments and blank lines are ignored
 *   key alice ed25519 <64 hex digits>       a named public key (or: key alice file PATH,
 *                                           a .pub/PEM file relative to the policy file)
 *   trust web-* role alice keys alice       packages matching web-* must be signed in role
 *   trust db-* role db keys k1,k2 threshold 2   alice by alice's key: role AND keys pinned
 *                                           (TAP 13); threshold defaults to 1
 *   trust * delegated                       what the repository's delegations verify
 *   refuse evil-*                           never show these packages
 *   refuse key mallory                      no version signed by this key counts, anywhere
 *   pin openssl >= 3.0 < 4                  only versions in this range (dpkg order); several
 *                                           comparisons are ANDed; operators < <= = >= >
 *   control web role ops keys ops           follow group web's control list, signed in role
 *                                           ops by key ops (or: control web delegated); at
 *                                           most one control line (verify/control.h)
 *
 * For a package, the first `trust` or `refuse PATTERN` line whose pattern matches decides;
 * `refuse key` and `pin` lines apply on top of it, wherever they are. No line matching means
 * refused. Without a policy file: `trust * delegated`. Patterns are shell globs (fnmatch(3),
 * no FNM flags) over package names. */

struct verify_policy;

enum verify_policy_kind {
	VERIFY_POLICY_DELEGATED,  /* trust PATTERN delegated */
	VERIFY_POLICY_PINNED,	  /* trust PATTERN role ROLE keys K[,K...] [threshold N] */
	VERIFY_POLICY_REFUSE,	  /* refuse PATTERN */
	VERIFY_POLICY_REFUSE_KEY, /* refuse key K */
	VERIFY_POLICY_PIN,	  /* pin PATTERN OP VERSION [OP VERSION...] */
	VERIFY_POLICY_NOMATCH,	  /* not a line: what rule_for returns when nothing matches */
	VERIFY_POLICY_CONTROL_DELEGATED, /* control GROUP delegated (pattern: the group) */
	VERIFY_POLICY_CONTROL_PINNED,	 /* control GROUP role ROLE keys K[,K...] [threshold N] */
};

struct verify_policy_cmp {
	enum { VERIFY_CMP_LT, VERIFY_CMP_LE, VERIFY_CMP_EQ, VERIFY_CMP_GE, VERIFY_CMP_GT } op;
	const char *version;
};

struct verify_policy_rule {
	enum verify_policy_kind kind;
	const char *file;    /* the policy file as named to parse, for messages */
	unsigned line;	     /* 1-based; 0 for the built-in default and for NOMATCH */
	const char *text;    /* the line as written, without comment and outer blanks */
	const char *pattern; /* DELEGATED, PINNED, REFUSE, PIN */
	/* PINNED: the role and its keys (threshold of them must sign); REFUSE_KEY: nkeys == 1 */
	const char *role;
	const struct verify_key *const *keys;
	const char *const *key_names; /* as the policy names them, parallel to keys */
	size_t nkeys;
	unsigned threshold;
	/* PIN */
	const struct verify_policy_cmp *cmps;
	size_t ncmps;
};

/** Parse a policy. file names it in messages; basedir is where `key NAME file PATH` paths are
 * relative to (NULL: the current directory).
 * @return 0; STORK_EFORMAT with a detail "FILE:LINE: <what was found>: expected <what>" (an
 * unknown word, a bad pattern or version, an undefined or duplicate key name, a pinned trust
 * without its role or keys, a threshold above the number of keys...); -errno reading a key
 * file (the detail names it and the line); -ENOMEM. */
int verify_policy_parse(const char *file, const char *text, size_t len, const char *basedir,
			struct verify_policy **ret_p);
/** Read and parse a policy file (at most 1 MiB). @return as verify_policy_parse; -errno. */
int verify_policy_load(const char *path, struct verify_policy **ret_p);
/** What decides p's verdicts, as one SHA-256: each rule in order (its kind, its line as written,
 * the ids of its keys, its threshold), not the file's name or line numbers. Two policies with
 * the same digest accept and refuse the same targets. @return 0; -ENOMEM; -EIO. */
int verify_policy_digest(const struct verify_policy *p, uint8_t ret_digest[VERIFY_HASH_LEN]);
/** The policy used when a slice names none: `trust * delegated` (line 0). */
int verify_policy_default(struct verify_policy **ret_p);
void verify_policy_free(struct verify_policy *p);

/** The rule that decides for a package name: the first DELEGATED, PINNED or REFUSE rule whose
 * pattern matches; a static NOMATCH rule when none does. Never NULL. */
const struct verify_policy_rule *verify_policy_rule_for(const struct verify_policy *p,
							const char *name);
/** The REFUSE_KEY rule naming keyid (verify_key_id form), or NULL. */
const struct verify_policy_rule *verify_policy_refused_key(const struct verify_policy *p,
							   const char *keyid);
/** The first PIN rule for name that version does not satisfy, or NULL when every pin allows
 * it. cmp orders versions (fs_version_cmp: dpkg order; verify/ does not own that order). */
const struct verify_policy_rule *
verify_policy_pin_excludes(const struct verify_policy *p, const char *name, const char *version,
			   int (*cmp)(const char *a, const char *b));

/** The policy's control line (CONTROL_DELEGATED or CONTROL_PINNED; its pattern is the
 * group), or NULL when the slice follows no group. */
const struct verify_policy_rule *verify_policy_control(const struct verify_policy *p);

/** The rules in file order (for walks over every pinned role). */
size_t verify_policy_nrules(const struct verify_policy *p);
const struct verify_policy_rule *verify_policy_rule_at(const struct verify_policy *p, size_t i);

/** A policy's verdict on one package version (`stork why`, the mount's tree). */
struct verify_decision {
	bool accepted;
	const struct verify_policy_rule *rule; /* what decided; borrowed from the policy */
	struct verify_target t; /* accepted: the target as accepted (role, counted key) */
	char why[1024];		/* one or two lines for people, naming the rule and signer */
};

void verify_decision_fini(struct verify_decision *d);

/** Decide whether a slice with policy p accepts name version: the deciding rule (first
 * trust/refuse match), then pins, then refused keys (a refused key's signature does not count
 * towards any threshold). A pinned rule (TAP 13) takes the target from the role it names,
 * listed in the trusted snapshot (version and hash), signed by a threshold of the pinned keys
 * (not the keys the repository delegates to it), unexpired; the role must sign the target
 * itself. cmp orders versions for pins (fs_version_cmp).
 * @return 0 (decided: see accepted and why); -ENOENT (no such package version is signed, by
 * any rule's reckoning: why says so); STORK_E* / -errno when metadata could not be loaded
 * (detail). */
int verify_client_decide(struct verify_client *c, const struct verify_source *src,
			 const struct verify_policy *p, const char *name, const char *version,
			 int (*cmp)(const char *a, const char *b), struct verify_decision *ret_d);

/** verify_client_each_target, keeping what p accepts: the repository's delegations for
 * `trust ... delegated` names, each pinned role's own targets for `trust ... role` names,
 * minus refused names, refused keys and versions outside pins. Problems go to problem (the
 * walk goes on). @return as verify_client_each_target. */
int verify_client_each_accepted(struct verify_client *c, const struct verify_source *src,
				const struct verify_policy *p,
				int (*cmp)(const char *a, const char *b),
				int (*fn)(void *ctx, const struct verify_target *t), void *ctx,
				verify_problem_fn problem, void *pctx);

#endif
