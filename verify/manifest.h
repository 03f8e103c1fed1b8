/* verify/manifest.h: package manifests, built (verify/manifest.c) and parsed strictly
 * (verify/manifest_parse.c). The format is in verify/README.md.
 *
 * Conventions (contrib/HACKING.md): fallible functions return 0 or a negative errno / STORK_E*
 * code (verify/error.h); outputs are named ret_* and written only on success; _new/_free own
 * heap objects and every _free accepts NULL.
 */
#ifndef STORKFS_VERIFY_MANIFEST_H
#define STORKFS_VERIFY_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verify/hash.h"

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
	/* A big file stored by the piece (spec_version 3, verify/README.md "Chunks"): its
	 * content-defined chunks in order, each an object of its own (type VERIFY_FILE, path
	 * NULL, hash/size/zsize of the chunk, offset where it starts in the file). The file's
	 * hash is still that of its whole content, and its zsize the sum of the chunks'; no
	 * object holds the whole file. NULL, 0 for a file stored whole. */
	struct verify_entry *chunks;
	size_t nchunks;
	uint64_t offset; /* a chunk: where it starts in its file; 0 otherwise */
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
	/* Other relations, one alternative a group (spec_version 2; empty in older manifests):
	 * .deb Provides, Conflicts, Breaks and Replaces. */
	struct verify_depgroup *provides, *conflicts, *breaks, *replaces;
	size_t nprovides, nconflicts, nbreaks, nreplaces;
	uint64_t total_size; /* sum of file sizes */
	/* The SHA-256 of the bytes verify_manifest_parse read it from (the manifest file's
	 * name in the repository); has_file_hash is false for a manifest built in memory. */
	uint8_t file_hash[VERIFY_HASH_LEN];
	bool has_file_hash;
};

/** An empty manifest. @return 0; -ENOMEM. */
int verify_manifest_new(const char *name, const char *version, const char *format,
			struct verify_manifest **ret_m);
/** Add an entry (copied, its chunks too). Entries may come in any order; verify_manifest_finish
 * sorts. A file's chunks must cover it back to back (offsets from 0, sizes above 0 summing to
 * size, zsizes to zsize); they are checked here (-EINVAL, detail names the path and the chunk).
 * @return 0; -ENOMEM; STORK_EHOSTILE if the path is not a clean relative path or has a
 * control character (detail names the path). */
int verify_manifest_add(struct verify_manifest *m, const struct verify_entry *e);
/** Add a dependency group (alts copied). @return 0; -ENOMEM. */
int verify_manifest_add_depgroup(struct verify_manifest *m, const struct verify_dep *alts,
				 size_t n);

enum verify_relation {
	VERIFY_DEPENDS,
	VERIFY_PROVIDES,
	VERIFY_CONFLICTS,
	VERIFY_BREAKS,
	VERIFY_REPLACES,
};

/** Add a group of a relation (alts copied): VERIFY_DEPENDS as verify_manifest_add_depgroup;
 * the others take exactly one alternative. @return 0; -EINVAL (detail says why); -ENOMEM. */
int verify_manifest_add_relation(struct verify_manifest *m, enum verify_relation kind,
				 const struct verify_dep *alts, size_t n);
/** Sort, add missing parent directories (mode 0755, mtime of the child), check for duplicate
 * paths and for paths below a symlink or a file, compute total_size.
 * @return 0; STORK_EHOSTILE (detail names the path and the problem). */
int verify_manifest_finish(struct verify_manifest *m);
/** Replace e's chunks by a copy of chunks[0..n) (n = 0: none), e being an entry of a manifest
 * (its own chunks are freed). Checked as in verify_manifest_add. @return 0; -EINVAL; -ENOMEM
 * (e unchanged on failure). */
int verify_entry_set_chunks(struct verify_entry *e, const struct verify_entry *chunks, size_t n);
/** The index of the chunk of the chunked file e that holds byte off (off < e->size; binary
 * search). Thread-safe (reads e). */
size_t verify_entry_chunk_at(const struct verify_entry *e, uint64_t off);
/** The repository objects m's files are stored as: each file's object, or the objects of its
 * chunks. With ids, their hashes are written there (room for the count this returns; a hash
 * may repeat). @return how many. Thread-safe (reads m). */
size_t verify_manifest_objects(const struct verify_manifest *m, uint8_t (*ids)[VERIFY_HASH_LEN]);
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

#endif
