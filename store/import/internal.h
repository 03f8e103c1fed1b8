/* store/import/internal.h: private to store/import/: the package import (store_import), split
 * by concern.
 *
 * store/import/import.c holds what every source shares: the set of paths seen, path checks,
 * error details, writing objects and adding manifest entries, and store_import itself;
 * store/import/archive.c reads tar archives, .deb and .rpm packages through libarchive;
 * store/import/dir.c walks a directory. Every function that fails leaves a detail starting
 * with the source ("pkg.tar: entry "a/b": ...") and returns 0 or a negative code.
 */
#ifndef STORKFS_STORE_IMPORT_INTERNAL_H
#define STORKFS_STORE_IMPORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/import/import.h"

/* The longest path or symlink target a package may hold: PATH_MAX (4096) counts the
 * terminating NUL, so a system call takes at most 4095 bytes (symlink, openat, readlink). */
#define PATH_MAX_LEN 4095
#define NAME_MAX_LEN 255
#define IOBUF_LEN    (256 * 1024)

struct archive;

/* ------------------------------------------------------------------------------------------ */
/* The paths seen so far: duplicates, members below a symlink or a file, hard link targets. */

enum seen_kind {
	SEEN_PARENT, /* only named as a parent of other members (so far) */
	SEEN_DIR,
	SEEN_FILE,
	SEEN_SYMLINK,
};

struct seen {
	char *path; /* NULL: free slot */
	enum seen_kind kind;
	size_t idx; /* the manifest entry (not for SEEN_PARENT) */
};

struct pathset {
	struct seen *v;
	size_t cap, n; /* cap: 0 or a power of two */
};

/* The entry for path[0..len), NULL if it was not seen. Valid until the next path is added. */
struct seen *import_pathset_find(struct pathset *s, const char *path, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* The import. */

struct obj {
	uint8_t hash[VERIFY_HASH_LEN];
	uint64_t size, zsize;
	struct verify_entry *chunks; /* a chunked file's (malloc'd: obj_fini), else NULL */
	size_t nchunks;
};

/* Free o's chunks. */
void import_obj_fini(struct obj *o);

struct imp {
	const char *src; /* the source as given: every detail starts with it */
	int repofd;
	uint64_t max_size;
	struct verify_manifest *m;
	struct pathset seen;
	size_t *link_next; /* hard link groups as rings of manifest indexes (alone: itself) */
	size_t link_cap;
	uint64_t sum; /* file bytes so far, for max_size */
	uint64_t new_objects, new_bytes;
	char summary[STORE_SUMMARY_MAX]; /* store_import_stats.summary */
	/* progress */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *pctx;
	struct archive *prog_a;		       /* source consumed = its raw bytes; NULL: dir_done */
	uint64_t dir_done, total, next_report; /* dir_done: atomic (the pool's workers add) */
	uint8_t *buf;
	bool whole;    /* store_import_opts.whole */
	uint8_t *cbuf; /* STORE_CHUNK_MAX + IOBUF_LEN bytes, for chunking; NULL until needed */
	/* Objects written but neither synced nor named yet (store/import/pool.c): named
	 * together by import_commit_pending once the whole source is read; a set of their
	 * hashes (slots index pending + 1, 0 free) so that content met twice is written once. */
	struct store_objpending *pending;
	size_t npending, cap_pending;
	uint32_t *pset;
	size_t pset_cap;
	struct import_pool *pool; /* a directory's workers, NULL when reading sequentially */
};

/* A reader of one member's bytes: n > 0 bytes, 0 at the end, or a negative code with the
 * detail set. */
typedef ssize_t (*read_fn)(struct imp *im, void *ctx, const char *path, void *buf, size_t len);

/* Quote a member name for a message into out (outlen bytes): control bytes (and every byte
 * >= 0x80 of a name that is not UTF-8), '"' and '\\' escaped, long names cut. @return out. */
const char *import_quote(const char *s, char *out, size_t outlen);
/* Set the detail "SOURCE: entry "PATH": MESSAGE" (or "SOURCE: MESSAGE" when path is NULL).
 * @return err. */
int import_fail(struct imp *im, int err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Put the source in front of a detail left by a callee (or of err's description). @return err. */
int import_prefixed(struct imp *im, int err);
/* Tell the progress callback, at most every PROGRESS_STEP bytes unless last. */
void import_report(struct imp *im, bool last);

/* Turn a member name into a clean relative path in out (PATH_MAX_LEN + 1 bytes); *ret_root is
 * set for the archive root. @return 0; STORK_EHOSTILE. */
int import_clean_path(struct imp *im, const char *raw, char *out, bool *ret_root);
/* Check a directory entry's name (path is the whole path, for the message).
 * @return 0; STORK_EHOSTILE. */
int import_check_name(struct imp *im, const char *path, const char *name);
/* Check that path may be added as kind and record its parents.
 * @return 0; STORK_EHOSTILE; -ENOMEM. */
int import_claim_path(struct imp *im, const char *path, enum seen_kind kind);
/* Check that more bytes still fit in --max-size. @return 0; STORK_ETOOBIG. */
int import_check_size(struct imp *im, const char *path, uint64_t more);
/* Stream one member, read by rd from ctx, into an object; ret describes it.
 * @return 0; STORK_ETOOBIG; what rd or the object writer returned. */
int import_store_data(struct imp *im, const char *path, read_fn rd, void *ctx, struct obj *ret);

/* Add an entry (path claimed before) to the manifest. @return 0; a negative code. */
int import_add_file(struct imp *im, const char *path, uint32_t mode, int64_t mtime,
		    const struct obj *o);
int import_add_dir(struct imp *im, const char *path, uint32_t mode, int64_t mtime);
int import_add_symlink(struct imp *im, const char *path, uint32_t mode, int64_t mtime,
		       const char *target);

/* ------------------------------------------------------------------------------------------ */
/* Objects written in parallel, synced and named in one batch (store/import/pool.c). */

/* Note an object written by store_objwriter_finish (pending true): kept for the batch, or,
 * when the same content is already pending, its file removed and ret_zsize the first one's.
 * Main thread only. @return 0; -ENOMEM. */
int import_pending_add(struct imp *im, const struct store_objpending *p, uint64_t size,
		       uint64_t *ret_zsize);
/* Sync and name every pending object (store_objwriter_commit_pending), fixing the manifest's
 * zsize where another writer's object won. @return 0; a negative code (detail set). */
int import_commit_pending(struct imp *im);
/* Remove the temporary files of the objects not named, free the list. */
void import_drop_pending(struct imp *im);
/* Start the workers of a directory import (none when threads cannot be made: the caller
 * then stores each file itself). */
void import_pool_start(struct imp *im);
/* Hand the open regular file fd (taken over) of size bytes, manifest entry idx, to a worker.
 * @return 0; a worker's failure (the walk stops; import_pool_finish gives its detail). */
int import_pool_file(struct imp *im, int fd, const char *path, uint64_t size, size_t idx);
/* Wait for the workers, fill in the entries' hashes and compressed sizes, add their objects to
 * the pending ones, free the pool. When keep_detail is false (the walk failed on its own),
 * the walk's detail stays. @return 0; the first worker's failure (its detail set). */
int import_pool_finish(struct imp *im, bool keep_detail);

/* ------------------------------------------------------------------------------------------ */
/* Sources: each starts im->m and adds every member. @return 0; a negative code. */

/* A tar archive, .deb or .rpm open as fd (store/import/archive.c). */
int import_archive(struct imp *im, int fd, const char *name, const char *version);
/* The directory open as fd, not taken over (store/import/dir.c). */
int import_dir(struct imp *im, int fd, const char *name, const char *version);

#endif
