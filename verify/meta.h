
#include "verify/cjson.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/tuf.h"
/* verify/meta.h: private to verify/ (its metadata code, the client, verify/trusted.c and the
 * repository writer in verify/writer/) and its unit tests.
 *
 * TUF metadata parsed into structs, signature and expiry checks, signing. The client's trusted
 * state is in verify/client.h (the client's files only); what the writer may read of it is
 * verify/trusted.h. Everything here names files relative to the repository root in its error
 * details ("metadata/3.snapshot.json: ..."). */
#ifndef STORKFS_VERIFY_META_H
#define STORKFS_VERIFY_META_H

#define META_SPEC_VERSION "1.0.31"

/* The top-level targets field that marks revoked delegated roles: {"ROLE": V}, V the version of
 * the placeholder file `stork repo revoke` listed for ROLE in the snapshot, signed by the
 * targets key (verify/README.md "Key rotation and revocation"). */
#define META_REVOKED_FIELD "x-storkfs-revoked"

enum meta_type {
	META_ROOT,
	META_TARGETS,
	META_SNAPSHOT,
	META_TIMESTAMP,
};

/* Index of the top-level roles in struct meta.roles (root metadata). */
enum meta_toprole {
	META_ROLE_ROOT,
	META_ROLE_TARGETS,
	META_ROLE_SNAPSHOT,
	META_ROLE_TIMESTAMP,
	META_NROLES,
};

extern const char *const meta_role_names[META_NROLES];

struct meta_keyring {
	struct verify_key **keys; /* each key's id equals the id it is listed under */
	size_t n;
};

/* Who may sign a role: a top-level role in root, or a delegation in a targets role. */
struct meta_delegation {
	char *name;
	char **keyids;
	size_t nkeyids;
	uint64_t threshold;
	bool terminating;
	char **paths; /* TUF path patterns, "<name pattern>/STAR", NULL when absent */
	size_t npaths;
	char **prefixes; /* path_hash_prefixes, NULL when absent */
	size_t nprefixes;
};

/* An entry of snapshot or timestamp "meta". */
struct meta_file {
	char *name; /* "targets.json", "alice.json", "snapshot.json" */
	uint64_t version;
	bool has_length;
	uint64_t length;
	bool has_hash;
	uint8_t hash[VERIFY_HASH_LEN];
};

struct meta_target {
	char *path;
	uint64_t length;
	uint8_t hash[VERIFY_HASH_LEN];
	uint64_t size;	/* custom.storkfs.size, 0 when absent */
	uint64_t files; /* custom.storkfs.files, 0 when absent */
	bool described; /* custom.storkfs is there (a foreign writer may leave it out) */
	bool counted;	/* custom.storkfs.entries is there: files counts regular files */
};

struct meta_sig {
	char *keyid;
	uint8_t sig[VERIFY_SIG_LEN];
};

struct meta {
	enum meta_type type;
	char *file;   /* relative to the repository root, for messages */
	uint8_t *raw; /* the bytes as read (kept so trusted state can be persisted) */
	size_t rawlen;
	json_t *json;	     /* the whole document */
	json_t *signed_json; /* borrowed from json */
	char *canon;	     /* canonical JSON of "signed": what the signatures cover */
	size_t canonlen;
	struct meta_sig *sigs;
	size_t nsigs;

	uint64_t version;
	time_t expires;

	/* root */
	bool consistent_snapshot;
	struct meta_delegation roles[META_NROLES];
	/* root: "keys"; targets: "delegations.keys" */
	struct meta_keyring keys;

	/* targets */
	struct meta_delegation *dels; /* delegations.roles, in order */
	size_t ndels;
	struct meta_target *targets; /* sorted by path (strcmp) */
	size_t ntargets;

	/* snapshot, timestamp */
	struct meta_file *files; /* sorted by name */
	size_t nfiles;
};

/** Parse a metadata file of the given type. buf is copied into m->raw. @param file the name
 * relative to the repository root. @return 0; STORK_EFORMAT ("FILE: field X: problem");
 * STORK_EUNSUPPORTED (a key type other than ed25519); STORK_ENAME (a delegated role name
 * outside the charset); -ENOMEM. */
int meta_parse(const void *buf, size_t len, const char *file, enum meta_type type,
	       struct meta **ret_m);
void meta_free(struct meta *m);

/** Check that m's signatures meet role's threshold with keys from keys that role lists.
 * Each key id counts once; unknown key ids, keys the role does not list and repeated key ids
 * are ignored. @param rolename for the detail. @param[out] ret_keyid (optional) one key id
 * whose signature counted, borrowed from role. @return 0; STORK_EBADSIG. */
int meta_check_sigs(const struct meta *m, const char *rolename, const struct meta_keyring *keys,
		    const struct meta_delegation *role, const char **ret_keyid);

/** @return 0 if now is before m's expiry; STORK_EEXPIRED ("FILE: role R expired at ..."). */
int meta_check_expiry(const struct meta *m, const char *rolename, time_t now);

/** @return 0 if m has version want; STORK_EVERSION ("FILE: version N, but WHY says M"). */
int meta_check_version(const struct meta *m, uint64_t want, const char *why);

/** Read file from src. When expect gives a length the file must have exactly that length
 * (maxlen is then that length); when it gives a hash the content must match it.
 * @return 0; STORK_EBADLEN; STORK_EBADHASH; the source's errors (STORK_ETOOBIG over maxlen,
 * -ENOENT). Every detail names file. */
int meta_fetch(const struct verify_source *src, const char *file, uint64_t maxlen,
	       const struct meta_file *expect, uint8_t **ret_buf, size_t *ret_len);

/** Read the target file signed as t: meta_fetch with t's length and hash, after refusing a
 * signed length over maxlen (STORK_ETOOBIG, "FILE: signed length N is over the MAX-byte WHAT
 * limit"; what: "manifest", "control list"). */
int meta_fetch_target(const struct verify_source *src, const char *file,
		      const struct verify_target *t, uint64_t maxlen, const char *what,
		      uint8_t **ret_buf, size_t *ret_len);

/** meta_fetch, then meta_parse. */
int meta_load(const struct verify_source *src, const char *file, uint64_t maxlen,
	      const struct meta_file *expect, enum meta_type type, struct meta **ret_m);

/** What each mirror's copy of a metadata file must be before it is taken: checked on every
 * copy (verify_source.get_checked), so that a copy that is refused moves on to the next
 * mirror instead of ending the update. Callers still check what they check after loading. */
struct meta_want {
	const struct meta_file *expect; /* length and hash, when given */
	const char *by;			/* with expect: its version too; the file listing it */
	const char *role;		/* with keys: signed by a threshold of del's keys */
	const struct meta_keyring *keys;
	const struct meta_delegation *del;
	int (*check)(void *ctx, const struct meta *m); /* anything else; NULL: nothing */
	void *ctx;
	bool every; /* ask every mirror, keep the highest version (timestamp, root probes) */
};

/** meta_load, with w checked on each mirror's copy. @return as meta_load, and the errors of
 * w's checks when no mirror's copy passed them. */
int meta_load_want(const struct verify_source *src, const char *file, uint64_t maxlen,
		   enum meta_type type, const struct meta_want *w, struct meta **ret_m);

/** The file bytes of a signed document: canonical JSON of {"signatures":[...],"signed":s},
 * one signature per key (all private). ret_buf malloc'd. @return 0; -EINVAL; -ENOMEM; -EIO. */
int meta_sign(const json_t *signed_json, struct verify_key *const *keys, size_t nkeys,
	      char **ret_buf, size_t *ret_len);

/** asprintf that returns the string, NULL on -ENOMEM. */
char *meta_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** "YYYY-MM-DDTHH:MM:SSZ" (21 bytes with the NUL). @return 0; -EOVERFLOW. */
int meta_format_time(time_t t, char out[21]);
/** Parse exactly "YYYY-MM-DDTHH:MM:SSZ". @return 0; -EINVAL. */
int meta_parse_time(const char *s, time_t *ret_t);

/** Whether a delegation covers a target path (TUF: each '/'-separated part fnmatch()'d, same
 * number of parts; or a path_hash_prefix of the path's SHA-256 hex). */
bool meta_delegation_matches(const struct meta_delegation *d, const char *path);
/** The delegation's patterns for messages, comma-separated (malloc'd; NULL on -ENOMEM). */
char *meta_delegation_patterns(const struct meta_delegation *d);

const struct meta_target *meta_find_target(const struct meta *m, const char *path);
const struct meta_file *meta_find_file(const struct meta *m, const char *name);
const struct meta_delegation *meta_find_delegation(const struct meta *m, const char *name);
struct verify_key *meta_keyring_find(const struct meta_keyring *kr, const char *keyid);
bool meta_delegation_has_key(const struct meta_delegation *d, const char *keyid);

#endif
