/* store/import/import.h: the whole contract of the import library, the publisher's side of
 * store/: writing repository objects and version packs, and turning package sources
 * (directories, tar, .deb, .rpm) into a manifest plus objects. A library of its own
 * (stork_import) that only the `stork` tool's publisher commands link; the node (storkfs, fs/,
 * the node's commands) never does.
 *
 * Conventions as in store/store.h: 0 or negative errno / STORK_E* codes, ret_* outputs written
 * only on success, error detail through stork_errorf().
 */
#ifndef STORKFS_STORE_IMPORT_H
#define STORKFS_STORE_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* ------------------------------------------------------------------------------------------ */
/* Writing repository objects. */

struct store_objwriter;

/** Start writing one object into the repository rooted at repofd (objects/ is created as
 * needed). Bytes are hashed and zstd-compressed as they arrive into a temporary file
 * objects/.tmp-XXXXXX. @return 0; -errno. */
int store_objwriter_new(int repofd, struct store_objwriter **ret_w);
/** Add uncompressed bytes. @return 0; -errno (e.g. -ENOSPC); -EIO for zstd failures. */
int store_objwriter_write(struct store_objwriter *w, const void *buf, size_t len);
/** Finish: fsync, then rename to objects/ab/<hash> unless an object with that hash is already
 * there (then the temporary file is dropped and ret_new is false). Frees w either way.
 * @param[out] ret_hash, ret_size (uncompressed), ret_zsize (compressed bytes as stored; for an
 * existing object, its size on disk), ret_new. @return 0; -errno (w is freed, nothing left). */
int store_objwriter_commit(struct store_objwriter *w, uint8_t ret_hash[VERIFY_HASH_LEN],
			   uint64_t *ret_size, uint64_t *ret_zsize, bool *ret_new);
/** Drop everything written and free w. Accepts NULL. */
void store_objwriter_abort(struct store_objwriter *w);

/* Batched commits: many objects written, then synced together and named (store/README.md,
 * "Publishing in parallel"). */
struct store_objpending {
	char tmpname[16];	       /* objects/<tmpname>, not synced; "" once named */
	uint8_t hash[VERIFY_HASH_LEN]; /* its name */
	uint64_t zsize;
};

/** Finish w without syncing or naming it: when an object with its hash is already there, the
 * temporary file is dropped (*ret_pending false, ret_zsize that object's size); otherwise
 * ret_p describes the temporary file for store_objwriter_commit_pending (*ret_pending true).
 * Frees w either way. Thread-safe for distinct w. @return 0; -errno; -EIO (zstd). */
int store_objwriter_finish(struct store_objwriter *w, uint8_t ret_hash[VERIFY_HASH_LEN],
			   uint64_t *ret_size, uint64_t *ret_zsize, struct store_objpending *ret_p,
			   bool *ret_pending);
/** Make the n pending objects durable and give them their names: one syncfs() of the file
 * system (an fsync of each file where syncfs fails), then each renamed to objects/ab/<hash>
 * without replacing anything, then one fsync of each directory that got a name. An object
 * another writer stored meanwhile stays; when its size differs from p->zsize, fix(ctx, hash,
 * size) is told. @return 0; -errno (detail names the file); what is not named yet stays for
 * store_objwriter_drop_pending. */
int store_objwriter_commit_pending(int repofd, struct store_objpending *p, size_t n,
				   void (*fix)(void *ctx, const uint8_t hash[VERIFY_HASH_LEN],
					       uint64_t zsize),
				   void *ctx);
/** Remove the temporary files of pending objects not named yet. */
void store_objwriter_drop_pending(int repofd, struct store_objpending *p, size_t n);
/** Free this thread's cached compressor (each thread that writes objects keeps one). */
void store_objwriter_thread_done(void);

/* ------------------------------------------------------------------------------------------ */
/* Chunking big files (store/import/chunker.c; store/README.md, "Chunks"): a file of more than
 * STORE_CHUNK_FILE_MIN bytes is stored as content-defined chunks (FastCDC), each an object. */

#define STORE_CHUNK_FILE_MIN (4u << 20) /* files of more bytes are chunked */
#define STORE_CHUNK_MIN	     (512u << 10)
#define STORE_CHUNK_AVG	     (1u << 20) /* where the mask loosens (normalized chunking) */
#define STORE_CHUNK_MAX	     (4u << 20)

/** The length of the chunk that starts at buf[0], of the len bytes there: between
 * STORE_CHUNK_MIN and STORE_CHUNK_MAX, less only at the end (eof: buf holds the rest of the
 * file). 0 when more bytes are needed to decide (len < STORE_CHUNK_MAX and not eof) or len is 0.
 * A pure function of the bytes: thread-safe. */
size_t store_chunk_cut(const uint8_t *buf, size_t len, bool eof);

/* ------------------------------------------------------------------------------------------ */
/* Writing version packs (their layout is store_pack_layout, store/store.h). */

/** Write m's pack as `path` (verify_manifest_file(m, ".pack")) below the repository root
 * repofd, from the repository's objects, atomically (temporary file, fsync, rename, fsync of
 * the directory; parent directories made as needed). Nothing is written when m has no pack
 * or the file there already holds exactly these bytes (a damaged one is replaced).
 * @param[out] ret_written (may be NULL) whether a file was written.
 * @return 0; STORK_EBADLEN (an object's file is not its signed zsize; detail names it);
 * -errno. */
int store_pack_write(int repofd, const struct verify_manifest *m, const char *path,
		     bool *ret_written);

/* ------------------------------------------------------------------------------------------ */
/* Collecting objects (`stork repo gc`, after verify_repo_gc). */

/** Delete every object file objects/ab/<64 hex> below the repository root repofd whose hash is
 * not in keep (sorted, distinct: verify_repo_gc's list); with dry_run only count them.
 * Temporary files and anything not named like an object are left alone (refresh removes stale
 * temporary files). The caller holds the repository's tree lock exclusively.
 * @param[out] ret_files, ret_bytes what was (or would be) deleted. @return 0; -errno (the
 * detail names the file; what was deleted before stays deleted). */
int store_import_sweep(int repofd, const uint8_t (*keep)[VERIFY_HASH_LEN], size_t nkeep,
		       bool dry_run, uint64_t *ret_files, uint64_t *ret_bytes);

/* ------------------------------------------------------------------------------------------ */
/* Importing package sources. */

/* The longest one-line description kept from a package's metadata, with its NUL. */
#define STORE_SUMMARY_MAX 256

struct store_import_stats {
	uint64_t files;	  /* regular files in the manifest */
	uint64_t entries; /* all entries */
	uint64_t bytes;	  /* uncompressed bytes of regular files */
	uint64_t new_objects;
	uint64_t new_bytes;    /* uncompressed bytes of objects that were not in the repo */
	uint64_t reused_bytes; /* uncompressed bytes of files whose object was already there */
	/* The package's one-line description: a .deb's Description (its first line), an .rpm's
	 * Summary; valid UTF-8, control characters and invalid bytes replaced by '?', cut at
	 * STORE_SUMMARY_MAX - 1 bytes; "" for other sources or none. */
	char summary[STORE_SUMMARY_MAX];
};

struct store_import_opts {
	int repofd;	   /* the repository root; objects go to objects/ below it */
	uint64_t max_size; /* refuse sources that unpack to more bytes (0 = 64 GiB) */
	/* Called now and then with bytes of the source consumed so far and its total size (0
	 * when unknown); may be NULL. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	bool whole; /* store every file as one object, never chunks (for older clients) */
};

/** Import a package source: a directory, a .tar (optionally .gz, .xz, .bz2, .zst), a Debian
 * .deb (its data archive; its control Depends and Pre-Depends become manifest dependencies) or
 * an .rpm (its payload; its Requires become dependencies). Writes every file's object and
 * returns the finished manifest.
 *
 * Hostile or broken sources are refused with STORK_EHOSTILE / STORK_EFORMAT / STORK_ETOOBIG
 * and a detail naming the source and the entry: "../" components, absolute member paths, a
 * member below a symlink or a regular file, device nodes, fifos and sockets, duplicate paths,
 * hard links to unknown members, truncated or corrupt archives, more than max_size bytes, names
 * with control characters. Objects already written by a refused import are complete and
 * correct content-addressed objects, but no metadata refers to them.
 * @return 0; the codes above; -errno. */
int store_import(const char *source, const char *name, const char *version,
		 const struct store_import_opts *o, struct verify_manifest **ret_m,
		 struct store_import_stats *ret_stats);

/* ------------------------------------------------------------------------------------------ */
/* Package metadata (used by store_import, exposed for tests). */

/** Parse a Debian control file's Depends and Pre-Depends into m's dependency groups, and its
 * Provides, Conflicts and Breaks into m's other relations.
 * @return 0; STORK_EFORMAT. */
int store_deb_control_deps(const char *control, size_t len, struct verify_manifest *m);
/** Parse an RPM file's header (lead, signature header, main header) from fd, positioned at
 * the start, and add its Requires (skipping rpmlib(...) and file paths) to m, and its Provides
 * and Conflicts to m's other relations. Leaves the fd
 * position unspecified. @return 0; STORK_EFORMAT; -errno. */
int store_rpm_deps(int fd, struct verify_manifest *m);
/** store_rpm_deps, and the header's Summary into summary (as store_import_stats.summary; ""
 * when there is none). @return as store_rpm_deps. */
int store_rpm_info(int fd, struct verify_manifest *m, char *summary, size_t len);
/** A Debian control file's Description, its first line, into summary (as
 * store_import_stats.summary; "" when there is none). Never fails. */
void store_deb_control_summary(const char *control, size_t len, char *summary, size_t slen);

#endif
