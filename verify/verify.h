/* verify/verify.h: the whole contract of the verify module.
 *
 * Hashes, ed25519 keys and signatures (OpenSSL EVP), canonical JSON as TUF defines it, package
 * names, package manifests, TUF metadata (parsing, checking, the client's trusted state). The
 * repository writer, the publisher's side, is a library of its own: verify/writer/writer.h. The
 * formats are documented in verify/README.md.
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code; outputs are named ret_* and written only on success; _new/_free own heap objects and
 * every _free accepts NULL. When a function fails it leaves a one-line explanation naming the
 * thing and the problem in the calling thread's error detail (stork_error_detail()).
 */
#ifndef STORKFS_VERIFY_H
#define STORKFS_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include <jansson.h>

/* ------------------------------------------------------------------------------------------ */
/* Errors: one reserved range, one decoder. */

enum {
	STORK_EBADSIG = -20001,	     /* signatures do not meet the threshold */
	STORK_EEXPIRED = -20002,     /* metadata past its expiry */
	STORK_EROLLBACK = -20003,    /* a version older than one already trusted */
	STORK_EBADHASH = -20004,     /* content does not match its signed hash */
	STORK_EBADLEN = -20005,	     /* content longer or shorter than its signed length */
	STORK_EFORMAT = -20006,	     /* malformed metadata, manifest or key */
	STORK_EPATTERN = -20007,     /* a target outside the delegated patterns */
	STORK_EHOSTILE = -20008,     /* a hostile archive entry or path */
	STORK_ENAME = -20009,	     /* a package name, version or role name outside the charset */
	STORK_ETOOBIG = -20010,	     /* input exceeds a configured or signed limit */
	STORK_EMISSING = -20011,     /* a file the metadata names is absent */
	STORK_EVERSION = -20012,     /* a version number that is not the one expected */
	STORK_EUNSUPPORTED = -20013, /* a source format or feature we do not handle */
};

/** Describe an error code: a -errno or a STORK_E* code. Never NULL; thread-safe. */
const char *storkfs_strerror(int err);

/** Set the calling thread's error detail (printf-style); replaces any previous detail.
 * Returns nothing; never fails (truncates at 1 KiB). */
void stork_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Prefix the calling thread's error detail with more context, e.g. the file name.
 * The result is "PREFIX: DETAIL" (": " is not doubled if PREFIX ends with it; just PREFIX
 * when there was no detail). */
void stork_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The calling thread's error detail, "" when none was set. Valid until the next
 * stork_errorf / stork_error_prefix / stork_error_clear in this thread. */
const char *stork_error_detail(void);

/** Forget the calling thread's error detail. */
void stork_error_clear(void);

/** An error for a message, said once: detail (NULL = the calling thread's detail) followed by
 * " (<storkfs_strerror(err)>)", unless the detail already says that text (most details end
 * with it: "store/objects/ab: No space left on device"); the decoded error alone when the
 * detail is empty. Never "No space left on device (No space left on device)". Writes into buf
 * (len bytes, cut if needed). @return buf. Thread-safe. */
const char *stork_error_text(const char *detail, int err, char *buf, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Hashes: SHA-256 through OpenSSL EVP. */

#define VERIFY_HASH_LEN 32
#define VERIFY_HASH_HEX (2 * VERIFY_HASH_LEN + 1)

struct verify_hash;

/** Start a streaming SHA-256. @return 0; -ENOMEM. */
int verify_hash_new(struct verify_hash **ret_h);
/** Feed bytes. @return 0; -EIO if OpenSSL fails. */
int verify_hash_update(struct verify_hash *h, const void *buf, size_t len);
/** Finish; h may not be updated afterwards (free it). @return 0; -EIO. */
int verify_hash_final(struct verify_hash *h, uint8_t ret_digest[VERIFY_HASH_LEN]);
void verify_hash_free(struct verify_hash *h);

/** One-shot SHA-256 of a buffer. @return 0; -EIO. */
int verify_sha256(const void *buf, size_t len, uint8_t ret_digest[VERIFY_HASH_LEN]);

/** Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void verify_hex(const uint8_t *in, size_t len, char *out);
/** Parse exactly 2*len lower- or upper-case hex digits. @return 0; STORK_EFORMAT. */
int verify_unhex(const char *hex, uint8_t *out, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* ed25519 keys (OpenSSL EVP_PKEY_ED25519).
 *
 * Private key files are PEM PKCS#8 (mode 0600); public key files (KEYFILE.pub) are PEM
 * SubjectPublicKeyInfo. In metadata a key is the TUF object
 *   {"keytype":"ed25519","keyval":{"public":"<64 hex>"},"scheme":"ed25519"}
 * and its key id is the hex SHA-256 of that object's canonical JSON. */

#define VERIFY_SIG_LEN	 64
#define VERIFY_KEYID_HEX VERIFY_HASH_HEX

struct verify_key;

/** Generate a new private key. @return 0; -ENOMEM; -EIO. */
int verify_key_generate(struct verify_key **ret_key);
/** Make a key from raw RFC 8032 bytes: pub (32 bytes) always, priv (32-byte seed) or NULL.
 * When priv is given pub must match it. @return 0; STORK_EFORMAT. */
int verify_key_from_raw(const uint8_t pub[32], const uint8_t *priv, struct verify_key **ret_key);
/** Load a private key (PEM PKCS#8 ed25519). Refuses files readable by group or others
 * with -EPERM and a detail saying to chmod 600. @return 0; -errno; STORK_EFORMAT. */
int verify_key_load_private(const char *path, struct verify_key **ret_key);
/** Load a public key: PEM SubjectPublicKeyInfo, a private key file, or a TUF key object in
 * JSON. @return 0; -errno; STORK_EFORMAT. */
int verify_key_load_public(const char *path, struct verify_key **ret_key);
/** Write the private key to path (O_EXCL, mode 0600, fsync) and its public half to path.pub
 * (0644). Refuses to overwrite: -EEXIST. @return 0; -errno; -EINVAL if the key is public only. */
int verify_key_save(const struct verify_key *key, const char *path);
/** The key as a TUF key object (new reference, caller must json_decref). NULL on -ENOMEM. */
json_t *verify_key_to_json(const struct verify_key *key);
/** Parse a TUF key object; only ed25519/ed25519 is accepted. @return 0; STORK_EFORMAT
 * (detail names the field); STORK_EUNSUPPORTED for other key types. */
int verify_key_from_json(const json_t *obj, struct verify_key **ret_key);
/** The key id, 64 hex digits; valid as long as the key. */
const char *verify_key_id(const struct verify_key *key);
/** Whether the key has its private half. */
bool verify_key_is_private(const struct verify_key *key);
/** Sign msg. @return 0; -EINVAL if the key is public only; -EIO. */
int verify_key_sign(const struct verify_key *key, const void *msg, size_t len,
		    uint8_t ret_sig[VERIFY_SIG_LEN]);
/** Check a signature. @return 0 if valid; STORK_EBADSIG otherwise. Thread-safe. */
int verify_key_check(const struct verify_key *key, const void *msg, size_t len,
		     const uint8_t sig[VERIFY_SIG_LEN]);
void verify_key_free(struct verify_key *key);

/* ------------------------------------------------------------------------------------------ */
/* Canonical JSON, exactly as TUF (securesystemslib / OLPC) defines it: objects with keys
 * sorted by their UTF-8 bytes, no insignificant whitespace, strings escaping only '"' and '\\'
 * (every other byte verbatim), integers only (no reals). */

/** Serialize j. @param[out] ret_buf malloc'd, NUL-terminated, caller frees; ret_len without
 * the NUL. @return 0; -EINVAL for a real number or a string that is not UTF-8; -ENOMEM. */
int verify_cjson_dump(const json_t *j, char **ret_buf, size_t *ret_len);

/** Parse JSON (jansson), rejecting duplicate keys, NUL in strings and anything after the
 * value. @param what names the input in the error detail. @return 0; STORK_EFORMAT. */
int verify_json_parse(const void *buf, size_t len, const char *what, json_t **ret_json);

/* ------------------------------------------------------------------------------------------ */
/* Text. */

/** Whether s[0..len) is well-formed UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF (a NUL byte counts as a character). For a C string pass strlen(s). Thread-safe. */
bool verify_utf8_valid(const char *s, size_t len);
/** The first bidirectional embedding, override or isolate control in the C string s (U+202A to
 * U+202E, U+2066 to U+2069: they make a name display as another, "Trojan Source"): its code
 * point and Unicode name ("U+202E RIGHT-TO-LEFT OVERRIDE", static) with its byte offset in
 * *ret_pos; NULL when there is none. Thread-safe. */
const char *verify_bidi_control(const char *s, size_t *ret_pos);

/* ------------------------------------------------------------------------------------------ */
/* Names. Package names and versions become directory names, publisher role names become
 * file names. The documented charset (verify/README.md):
 *   package name: 1..128 bytes, [A-Za-z0-9][A-Za-z0-9+._-]*
 *   version:      1..128 bytes, [A-Za-z0-9][A-Za-z0-9+._~:-]*, and not "latest"
 *   role name:    1..64 bytes,  [a-z0-9][a-z0-9_-]*, not one of root/targets/snapshot/timestamp
 * A name pattern is a package name that may also contain '*', '?' and [...] (fnmatch). */

/** @return 0; STORK_ENAME with a detail naming the offending character and its position. */
int verify_check_package_name(const char *name);
int verify_check_version(const char *version);
int verify_check_role_name(const char *role);
/** A version as publishing takes it: verify_check_version, and the syntax errors dpkg refuses
 * (`dpkg --compare-versions` fails on them): an epoch (before the first ':') that is empty, not
 * a number or above INT_MAX; nothing after the epoch's ':'; an empty upstream version; an empty
 * revision (a trailing '-'). What dpkg only warns about (an upstream version that does not
 * start with a digit, '_') is accepted. @return 0; STORK_ENAME naming the rule. */
int verify_check_version_publish(const char *version);
int verify_check_name_pattern(const char *pattern);
/** Whether a package name matches a name pattern (fnmatch without FNM_PATHNAME quirks:
 * names never contain '/'). */
bool verify_name_matches(const char *pattern, const char *name);

/** The TUF target path of a package version: "<name>/<version>.json" (malloc'd). NULL on
 * -ENOMEM. */
char *verify_target_path(const char *name, const char *version);
/** Split a target path back. @return 0; STORK_EFORMAT if it is not name/version.json with
 * valid name and version. ret_* are malloc'd. */
int verify_target_split(const char *path, char **ret_name, char **ret_version);
/** Whether path, named by metadata, may be opened or requested below a repository's root
 * (verify/README.md, "Repository paths"): the rules of a manifest's paths (relative,
 * components never empty, "." or "..", no control character, at most 4096 bytes, components
 * at most 255, valid UTF-8) and no backslash. Paths are used as they are, never percent-decoded
 * ("%2e%2e" is a name). The one check of every source: verify's directory source and fetch/'s
 * fetcher.
 * @return 0; -EINVAL with a detail naming the (quoted) path and its problem. Thread-safe. */
int verify_check_relpath(const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Manifests: the signed description of one package version (verify/README.md). */

enum verify_ftype {
	VERIFY_DIR,
	VERIFY_FILE,
	VERIFY_SYMLINK,
};

struct verify_entry {
	char *path; /* relative, no "." or ".." components, no leading/trailing '/' */
	enum verify_ftype type;
	uint32_t mode;		       /* permission bits incl. setuid/setgid/sticky (07777) */
	int64_t mtime;		       /* seconds since the epoch */
	uint64_t size;		       /* file: bytes; symlink: strlen(target); dir: 0 */
	uint64_t zsize;		       /* file: bytes of the zstd object in the repository */
	uint8_t hash[VERIFY_HASH_LEN]; /* file: SHA-256 of the uncompressed bytes */
	char *target;		       /* symlink only */
};

struct verify_dep { /* one alternative of a dependency */
	char *name;
	char *op;      /* NULL, or one of "<<" "<=" "=" ">=" ">>" */
	char *version; /* NULL when op is NULL */
};

struct verify_depgroup { /* "a | b (>= 1)": any one alternative satisfies it */
	struct verify_dep *alts;
	size_t n;
};

struct verify_manifest {
	char *name;
	char *version;
	char *format;		      /* "dir", "tar", "deb", "rpm" */
	struct verify_entry *entries; /* sorted by path (bytewise), parents before children */
	size_t n;
	struct verify_depgroup *depends; /* declared dependencies (.deb Depends+Pre-Depends,
					  * .rpm Requires without rpmlib()/file deps) */
	size_t ndepends;
	uint64_t total_size; /* sum of file sizes */
	/* The SHA-256 of the bytes verify_manifest_parse read it from (the manifest file's
	 * name in the repository); has_file_hash is false for a manifest built in memory. */
	uint8_t file_hash[VERIFY_HASH_LEN];
	bool has_file_hash;
};

/** An empty manifest. @return 0; -ENOMEM. */
int verify_manifest_new(const char *name, const char *version, const char *format,
			struct verify_manifest **ret_m);
/** Add an entry (copied). Entries may come in any order; verify_manifest_finish sorts.
 * @return 0; -ENOMEM; STORK_EHOSTILE if the path is not a clean relative path or has a
 * control character (detail names the path). */
int verify_manifest_add(struct verify_manifest *m, const struct verify_entry *e);
/** Add a dependency group (alts copied). @return 0; -ENOMEM. */
int verify_manifest_add_depgroup(struct verify_manifest *m, const struct verify_dep *alts,
				 size_t n);
/** Sort, add missing parent directories (mode 0755, mtime of the child), check for duplicate
 * paths and for paths below a symlink or a file, compute total_size.
 * @return 0; STORK_EHOSTILE (detail names the path and the problem). */
int verify_manifest_finish(struct verify_manifest *m);
/** Find an entry by path, NULL if absent (binary search; after finish). */
const struct verify_entry *verify_manifest_find(const struct verify_manifest *m, const char *path);
/** Canonical JSON of a finished manifest. ret_buf malloc'd. @return 0; -ENOMEM. */
int verify_manifest_dump(const struct verify_manifest *m, char **ret_buf, size_t *ret_len);
/** A file of a manifest in the repository, "targets/<name>/<hex>.<version><ext>" (malloc'd):
 * ext ".json" is the manifest itself, ".pack" its version pack (store/README.md, "Version
 * packs"). <hex> is file_hash when has_file_hash, else the SHA-256 of the canonical dump (what
 * the publisher writes). @return 0; -ENOMEM. */
int verify_manifest_file(const struct verify_manifest *m, const char *ext, char **ret_path);
/** Parse and fully check a manifest (every rule of verify_manifest_finish, plus: sorted, no
 * synthesized gaps, types/modes/sizes consistent). @param what names the file in the
 * detail. @return 0; STORK_EFORMAT; STORK_EHOSTILE; STORK_ENAME. */
int verify_manifest_parse(const void *buf, size_t len, const char *what,
			  struct verify_manifest **ret_m);
void verify_manifest_free(struct verify_manifest *m);

/* ------------------------------------------------------------------------------------------ */
/* Reading a repository: where the client gets bytes from. Implemented by fetch/ (directory,
 * file://, http://, https://); verify only calls it. Paths are relative to the repository
 * root, e.g. "metadata/timestamp.json", "targets/hello/<hash>.2.10-3.json". */

struct verify_source {
	/** Read a whole file of at most maxlen bytes into a malloc'd buffer (caller frees).
	 * @return 0; -ENOENT if absent; STORK_ETOOBIG if longer than maxlen (nothing past
	 * maxlen is read); -EIO or -ETIMEDOUT for transport failures (detail says which). */
	int (*get)(void *ctx, const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len);
	/** Stream a file through fn in chunks without buffering it whole; same errors as get,
	 * plus fn's error. Stops with STORK_ETOOBIG as soon as more than maxlen bytes come. */
	int (*stream)(void *ctx, const char *path, uint64_t maxlen,
		      int (*fn)(void *fnctx, const void *buf, size_t len), void *fnctx);
	/** Where the bytes come from, for messages ("/srv/repo", "http://127.0.0.1:8080/"). */
	const char *(*describe)(void *ctx);
	void *ctx;
	/** Optional (NULL: callers use get and check the one answer themselves). As get, over
	 * a source with several origins (mirrors): each copy is passed to check, which accepts
	 * it (0, and a rank: the metadata's version) or refuses it (a STORK_E* code with a
	 * detail naming the file and the problem). A refused copy counts as that origin's
	 * failure (told and marked like a corrupt object) and the next origin is asked, so one
	 * lying or stale mirror cannot block a file another mirror serves right. With every,
	 * each usable origin is asked and the accepted copy of the highest rank is returned;
	 * origins whose accepted copies rank lower are told and marked as behind (withholding
	 * or lagging updates). @return 0; the most telling failure when no copy was accepted
	 * (check's refusal, -ENOENT, a transport error). */
	int (*get_checked)(void *ctx, const char *path, size_t maxlen,
			   int (*check)(void *cctx, const uint8_t *buf, size_t len,
					uint64_t *ret_rank),
			   void *cctx, bool every, uint8_t **ret_buf, size_t *ret_len);
};

/* ------------------------------------------------------------------------------------------ */
/* TUF metadata (specification 1.0, consistent snapshots) and the client's trusted state.
 *
 * Layout of a repository (verify/README.md):
 *   metadata/1.root.json, 2.root.json, ...   every root version
 *   metadata/root.json                       copy of the newest root (convenience only)
 *   metadata/timestamp.json
 *   metadata/<N>.snapshot.json, <N>.targets.json, <N>.<role>.json
 *   targets/<name>/<sha256>.<version>.json   package manifests (consistent-snapshot names)
 *   objects/<2 hex>/<64 hex>                 zstd objects (store/README.md)
 */

/* Metadata size caps (bytes), python-tuf's defaults. */
#define VERIFY_MAX_ROOT_LEN	  (512 * 1024)
#define VERIFY_MAX_TIMESTAMP_LEN  (16 * 1024)
#define VERIFY_MAX_SNAPSHOT_LEN	  (2 * 1024 * 1024)
#define VERIFY_MAX_TARGETS_LEN	  (5 * 1024 * 1024)
#define VERIFY_MAX_MANIFEST_LEN	  (64 * 1024 * 1024)
#define VERIFY_MAX_ROOT_ROTATIONS 256
#define VERIFY_MAX_DELEGATIONS	  32

struct verify_target { /* one signed target: a package version */
	char *path;    /* "<name>/<version>.json" */
	char *name;
	char *version;
	uint64_t length;	       /* manifest bytes */
	uint8_t hash[VERIFY_HASH_LEN]; /* manifest SHA-256 */
	char *role;		       /* the delegated role that signed it */
	char *keyid;		       /* one key id whose signature counted */
	uint64_t size;		       /* custom.size: total file bytes (informational) */
	uint64_t files;		       /* custom.files: entry count (informational) */
	bool described;		       /* size and files were signed (custom.storkfs) */
};

void verify_target_fini(struct verify_target *t);

struct verify_client;

/** Start a client from a pinned root file's bytes. The pinned root's signatures must meet its
 * own root threshold; its expiry is not checked here (TUF 5.2).
 * @param now the update start time; every expiry check uses it.
 * @return 0; STORK_EFORMAT; STORK_EBADSIG; -ENOMEM. */
int verify_client_new(const uint8_t *root, size_t len, time_t now, struct verify_client **ret_c);
void verify_client_free(struct verify_client *c);

/* Where a client keeps what it has verified, so that it survives restarts and works offline
 * (the node store's LMDB). Names are file names without version: "root.json",
 * "timestamp.json", "snapshot.json", "targets.json", "<role>.json", and "<N>.root.json" for
 * each trusted root version (the links that chain root.json to the pinned root). save may be
 * given len 0: the entry is forgotten (load may then return it empty, or -ENOENT). */
struct verify_cache {
	/** @return 0 with a malloc'd buffer; -ENOENT; -errno. */
	int (*load)(void *ctx, const char *name, uint8_t **ret_buf, size_t *ret_len);
	/** @return 0; -errno. */
	int (*save)(void *ctx, const char *name, const uint8_t *buf, size_t len);
	void *ctx;
};

/** Give the client a cache, before its first refresh. The client then starts from the cached
 * trusted state instead of the pinned root when the cache holds a root that chains from it:
 * cached root (if its version is >= the pinned one's and it verifies), timestamp, snapshot,
 * targets and delegated roles are loaded as trusted after checking their signatures (not
 * their expiry: TUF 5.2 loads local metadata that way), so versions older than those are
 * refused as rollbacks even after a restart. Each file the client newly trusts is saved.
 * Cached files that do not verify (damaged, another repository's) are ignored, with what
 * depends on them: 0 is returned and the detail (stork_error_detail()) names them, "" when
 * nothing was ignored. The cache (and its ctx) must outlive the client.
 * @return 0; an error from reading the cache (the client is unchanged): the cache's -errno;
 * -EINVAL if the client already has a cache or trusted state; -ENOMEM. */
int verify_client_set_cache(struct verify_client *c, const struct verify_cache *cache);

/** Whether the client holds a complete trusted state (refreshed now, or loaded from the cache)
 * that each_target / find_target / fetch_manifest can use. After a failed refresh (offline),
 * the cached state is still usable: the caller decides, and says so loudly. */
bool verify_client_usable(const struct verify_client *c);

/** Run the TUF client workflow (5.3 root chain up to VERIFY_MAX_ROOT_ROTATIONS with both
 * thresholds and N+1 versions, final root expiry, 5.4 timestamp, 5.5 snapshot, 5.6 top-level
 * targets), each fetch capped at its maximum length.
 * @return 0; STORK_E* with a detail naming the file (e.g. "metadata/3.snapshot.json") and the
 * problem; transport errors from src. */
int verify_client_refresh(struct verify_client *c, const struct verify_source *src);

/** Called for each problem found while walking (the walk goes on). */
typedef void (*verify_problem_fn)(void *ctx, const char *file, int err, const char *detail);

/** Load every delegated role named in the top-level targets (hash and version against the
 * snapshot, threshold signatures by the delegating role's keys, expiry), then call fn for every
 * target a role signs that matches its delegation's paths, in delegation order, a target path
 * reported at most once (the first role in search order wins). Roles or targets that fail are
 * reported to problem and skipped. Needs a successful refresh.
 * @return 0 when nothing failed; the first failure's code otherwise (after walking all). */
int verify_client_each_target(struct verify_client *c, const struct verify_source *src,
			      int (*fn)(void *ctx, const struct verify_target *t), void *ctx,
			      verify_problem_fn problem, void *pctx);

/** Find one target by path through the delegation search (pre-order, terminating, cap on
 * roles visited). @return 0; -ENOENT if no role signs it; STORK_E* for metadata failures. */
int verify_client_find_target(struct verify_client *c, const struct verify_source *src,
			      const char *target_path, struct verify_target *ret_t);

/** Fetch a target's manifest (consistent-snapshot name), check its length and hash, parse it
 * and check that its name and version are the target's. ret_m owned by the caller.
 * @return 0; STORK_EBADLEN; STORK_EBADHASH; STORK_EFORMAT; transport errors. */
int verify_client_fetch_manifest(struct verify_client *c, const struct verify_source *src,
				 const struct verify_target *t, struct verify_manifest **ret_m);
/** The same without a client: a target found earlier (verify_client_find_target) is all it
 * takes, so callers need not hold their client while the manifest transfers. */
int verify_fetch_manifest(const struct verify_source *src, const struct verify_target *t,
			  struct verify_manifest **ret_m);
/** As verify_fetch_manifest, and also hands back the exact bytes fetched: those whose length
 * and SHA-256 the target signs (a repository written by another tool need not hold canonical
 * JSON, so re-dumping the manifest would not give them). Keep these to check the manifest
 * again later or to serve it to others. @param[out] ret_buf, ret_len (optional: both NULL for
 * none) malloc'd, caller frees. @return as verify_fetch_manifest. */
int verify_fetch_manifest_raw(const struct verify_source *src, const struct verify_target *t,
			      struct verify_manifest **ret_m, uint8_t **ret_buf, size_t *ret_len);
/** Check a target's manifest bytes obtained elsewhere (a node store, another node) exactly as
 * verify_fetch_manifest checks what it fetches: the signed length and SHA-256, the parse, and
 * the name and version. Details name the file ("targets/<name>/<hex>.<version>.json"). ret_m
 * owned by the caller. @return 0; STORK_EBADLEN; STORK_EBADHASH; STORK_EFORMAT;
 * STORK_EHOSTILE; STORK_ENAME; -ENOMEM. */
int verify_check_manifest(const struct verify_target *t, const void *buf, size_t len,
			  struct verify_manifest **ret_m);

/** Audit an older version of a metadata file found in a repository directory (for example
 * metadata/3.snapshot.json while snapshot 5 is trusted, or a delegated role's old version):
 * parse it and check that the keys of the role its name says meet the threshold: the keys
 * trusted now, or those an older root or an older delegating role gave it, if that older file
 * passed this audit before (so files signed before a key rotation, a publisher's rekey or a
 * revocation still pass: audit roots from the pinned one up, then targets, then the other
 * roles, in version order). Version and expiry are not checked: old versions are expected to
 * be stale.
 * @param file the path relative to the repository root ("metadata/3.alice.json").
 * @return 0; STORK_EFORMAT; STORK_EBADSIG; -ENOENT if the role is unknown. */
int verify_client_audit_file(struct verify_client *c, const char *file, const uint8_t *buf,
			     size_t len);

/** The trusted version and expiry of a top-level role ("root", "timestamp", "snapshot",
 * "targets") after refresh. @return 0; -ENOENT if not loaded. */
int verify_client_role_info(const struct verify_client *c, const char *role, uint64_t *ret_version,
			    time_t *ret_expires);

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

/** A verify_source reading a local repository directory (no transport involved); used by the
 * writer to read its own state, and by tests. Caller frees with verify_dir_source_fini. */
int verify_dir_source_init(struct verify_source *src, const char *repodir);
void verify_dir_source_fini(struct verify_source *src);

/** Write all len bytes of buf to fd, again after a short write or EINTR. @return 0; -errno
 * (write's). Thread-safe. */
int verify_write_all(int fd, const void *buf, size_t len);
/* Shared with store/ and fs/: write a whole file atomically (tmp in the same directory, fsync,
 * rename, fsync the directory). @return 0; -errno. */
int verify_write_atomic(int dirfd, const char *name, const void *buf, size_t len, mode_t mode);
/** The same with the content written by fill into fd (the temporary file, positioned at its
 * start), for files too big to hold in memory. fill returns 0 or -errno; a failure with a
 * detail (stork_errorf) keeps that detail. @return 0; -errno. */
int verify_write_atomic_fn(int dirfd, const char *name, mode_t mode, int (*fill)(void *ctx, int fd),
			   void *ctx);

#endif
