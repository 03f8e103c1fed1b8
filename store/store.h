/* store/store.h: the whole contract of the store module.
 *
 * Content-addressed objects: a file's content is an object named by the SHA-256 of its
 * uncompressed bytes. In a repository objects are stored zstd-compressed at
 * objects/<first 2 hex>/<64 hex> (store/README.md). This header is the node's side: checking
 * and unpacking objects, version pack layouts, the node store. The publisher's side (writing
 * objects and packs into a repository, importing package sources) is a library of its own,
 * store/import/import.h, which the node never links.
 *
 * Conventions as in verify/verify.h: 0 or negative errno / STORK_E* codes, ret_* outputs
 * written only on success, error detail through stork_errorf() (the detail is the calling
 * thread's own).
 *
 * Threads: each function says whether it is thread-safe, as LMDB's mdb_get does. In short,
 * every function on a struct store may be called from any number of threads at once, except
 * store_close; an unpacker, a pack cut and an insert belong to one thread at a time.
 */
#ifndef STORKFS_STORE_H
#define STORKFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verify/verify.h"

/* zstd level for repository objects: level 3 is zstd's default and the benchmark baseline. */
#define STORE_ZSTD_LEVEL 3

/** The relative path of an object: "objects/ab/abcdef..." (NUL-terminated, 8 + 64 + 3 bytes). */
#define STORE_OBJPATH_LEN (sizeof("objects/") - 1 + 3 + 2 * VERIFY_HASH_LEN + 1)
/** This function is thread-safe: it keeps no state. */
void store_object_path(const uint8_t hash[VERIFY_HASH_LEN], char out[STORE_OBJPATH_LEN]);

/* ------------------------------------------------------------------------------------------ */
/* Reading objects: a streaming unpacker that checks a compressed object against its signed
 * description as the bytes arrive. It never produces more than `size` bytes, never accepts
 * more than `zsize` compressed bytes, and only finish() says the content is good. */

struct store_unpack;

/** @param out called with each chunk of uncompressed bytes (may be NULL to only check);
 * returns 0 or -errno to stop. This function is thread-safe: each unpacker is its own, and
 * any number of them may run at once on different threads. @return 0; -ENOMEM. */
int store_unpack_new(const uint8_t hash[VERIFY_HASH_LEN], uint64_t size, uint64_t zsize,
		     int (*out)(void *ctx, const void *buf, size_t len), void *ctx,
		     struct store_unpack **ret_u);
/** Feed compressed bytes. @return 0; STORK_EBADLEN when more than zsize compressed or more
 * than size uncompressed bytes arrive (a bomb or a lying server); STORK_EFORMAT for a
 * corrupt zstd stream; the out callback's error. This function is thread-safe as long as no
 * other thread uses u at the same time (an unpacker may move between threads, as a transfer
 * does between its callbacks, but is used by one at a time); the same holds for
 * store_unpack_finish and store_unpack_free. */
int store_unpack_write(struct store_unpack *u, const void *buf, size_t len);
/** Check the end: exactly zsize compressed and size uncompressed bytes, a complete zstd
 * frame, and the SHA-256. @return 0; STORK_EBADLEN; STORK_EFORMAT; STORK_EBADHASH. */
int store_unpack_finish(struct store_unpack *u);
void store_unpack_free(struct store_unpack *u);
/** The same checks for an object sent UNCOMPRESSED (a peer's node store serves objects as
 * they lie on its disk): write takes raw bytes, refusing more than `size` (STORK_EBADLEN);
 * finish checks exactly `size` bytes and the SHA-256. Free with store_unpack_free.
 * Thread-safe as store_unpack_new. @return 0; -ENOMEM. */
int store_unpack_new_raw(const uint8_t hash[VERIFY_HASH_LEN], uint64_t size,
			 int (*out)(void *ctx, const void *buf, size_t len), void *ctx,
			 struct store_unpack **ret_u);

/* ------------------------------------------------------------------------------------------ */
/* Version packs (store/README.md, "Version packs"): the stored bytes of a version's small
 * objects in one file, targets/<name>/<manifest sha256>.<version>.pack, so that a client
 * fetches thousands of small files with one request. Unsigned: the manifest fixes the layout
 * and every object is checked against it as it streams. */

#define STORE_PACK_MAX_ZSIZE   (64 * 1024) /* objects of at most this many stored bytes */
#define STORE_PACK_MIN_OBJECTS 16	   /* fewer: no pack */

struct store_pack_entry {
	const struct verify_entry *e; /* borrowed from the manifest: hash, size, zsize */
	uint64_t offset;	      /* where its zsize bytes start in the pack */
};

/** The layout of m's pack: its distinct file objects of at most STORE_PACK_MAX_ZSIZE stored
 * bytes, in the order of their first entry in m, back to back. A manifest with fewer than
 * STORE_PACK_MIN_OBJECTS of them has no pack: ret_n = 0.
 * @param[out] ret_entries malloc'd, NULL when ret_n = 0; ret_len the pack's length in bytes.
 * This function is thread-safe as long as m does not change meanwhile (it only reads m).
 * @return 0; -ENOMEM. */
int store_pack_layout(const struct verify_manifest *m, struct store_pack_entry **ret_entries,
		      size_t *ret_n, uint64_t *ret_len);
/* Cutting a pack's stream into its objects: store_pack_cut passes each byte to data() for
 * the entry it belongs to, calling begin() before an entry's first byte and end() after its
 * last (zero-length entries included). Set ents, n and the callbacks, zero the rest; to see
 * the pack again from its start, zero pos, cur and begun. */
struct store_pack_cut {
	const struct store_pack_entry *ents;
	size_t n;
	int (*begin)(void *ctx, size_t i);
	int (*data)(void *ctx, size_t i, const void *buf, size_t len);
	int (*end)(void *ctx, size_t i);
	void *ctx;
	uint64_t pos; /* bytes seen */
	size_t cur;   /* the entry pos is in; n when all are complete */
	bool begun;   /* begin() was called for cur */
};

/** Feed the next bytes of the pack. Bytes past the last entry are refused. This function is
 * thread-safe as long as no other thread feeds the same c at the same time (the callbacks run
 * on the calling thread). @return 0; STORK_EBADLEN (more bytes than the layout); a callback's
 * error. */
int store_pack_cut(struct store_pack_cut *c, const void *buf, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* The node store: one per node, shared by every mount, extract and container on it, and by
 * several processes at once (store/README.md, "Node store").
 *
 *   STOREDIR/objects/ab/<64 hex>    an object, UNCOMPRESSED (reads are plain preads), 0444
 *   STOREDIR/objects/ab/<64 hex>.<octal mode>  e.g. <hex>.755, <hex>.4755: the same bytes
 *                                   with that mode, made on demand for hard links (a hard link
 *                                   shares its inode's mode)
 *   STOREDIR/tmp/                   objects being written (.part-XXXXXX, flock()ed by writer)
 *   STOREDIR/index/                 LMDB environment: objects, metadata, manifests
 *
 * Nothing unverified is ever indexed or visible: an object is written to tmp/, hashed while
 * written, checked against its id and size, fsync()ed, renamed into objects/, and only then
 * indexed. Thread-safe: one struct store may be used by many threads (each function below
 * says so, store_close excepted); LMDB serialises the index's write transactions, read
 * transactions never block, and the handles of one process on one store share one LMDB
 * environment (store/README.md, "Concurrency"). */

struct store;

struct store_objinfo {
	uint64_t size;
	int64_t last_use; /* seconds since the epoch, updated at most hourly */
	uint32_t pins;
};

/** Open (creating when missing, mode 0700: it holds setuid variants) the node store in dir.
 * Removes tmp/ leftovers of dead writers (a live writer holds an flock on its temporary file).
 * Refuses a store the caller does not own or others may write to or list (store/README.md,
 * "Who may own a store"). A store on a read-only file system is opened read-only (see
 * store_open_flags). Not thread-safe against another store_open of the same store.
 * @return 0; -EPERM (not trusted: the detail names the file and the fix); -ENOSPC (no room
 * for the index's lock file); -errno; STORK_EFORMAT if the index is not a usable storkfs
 * index (detail says which file and why). Every error sets a detail naming the file. */
int store_open(const char *dir, struct store **ret_s);

enum { STORE_OPEN_READONLY = 1 };
/** store_open with flags. STORE_OPEN_READONLY: only read (a missing store is -ENOENT; nothing
 * is created, swept or written; LMDB opened MDB_RDONLY). On a read-only store every write
 * (an insert, a link that must make a variant, metadata) fails with -EROFS and a detail.
 * @return as store_open; -EINVAL for unknown flags. */
int store_open_flags(const char *dir, unsigned flags, struct store **ret_s);
/** Whether s was opened read-only (asked for, or its file system is mounted read-only).
 * Thread-safe: fixed by store_open. */
bool store_readonly(const struct store *s);
/** Close s. Not thread-safe: no other call on s may run at the same time or follow. Other
 * handles of the process on the same store stay open (the shared LMDB environment is
 * reference-counted under a process-wide lock). Accepts NULL. */
void store_close(struct store *s);
/** The store's directory (as given to store_open). Thread-safe: fixed by store_open; valid
 * until store_close. */
const char *store_dir(const struct store *s);

/** The index record of an object. This function is thread-safe: one read transaction, which
 * never blocks and is never blocked. @return 0; -ENOENT if the object is not indexed. */
int store_object_info(struct store *s, const uint8_t id[VERIFY_HASH_LEN],
		      struct store_objinfo *ret_info);
/** Open an indexed object read-only (O_CLOEXEC) and note its use. If the index lists it but
 * the file is gone or has the wrong size, the entry is dropped and -ENOENT returned (it will be
 * fetched again). This function is thread-safe: the lookup is a read transaction; dropping an entry
 * is a write transaction that first checks the file is still the one judged (a file a concurrent
 * insert has just put in place keeps its entry). A descriptor it returns keeps its bytes even if
 * the object is removed or replaced meanwhile (files are only unlinked or renamed over, never
 * rewritten). @param[out] ret_fd the caller closes it. @return 0; -ENOENT; -errno. */
int store_object_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd);
/** store_object_open, and the content checked against the id before the descriptor is
 * returned (what a mount serves): the file is hashed (SHA-256) unless this handle hashed
 * this very file right before (same device, inode, size and change time: a file renamed over
 * the object or written to since is hashed again). The handle remembers 8,192 files (576 KiB,
 * allocated at the first call); one it forgot is hashed again. Concurrent callers for one
 * object wait for one hash. A file whose content is not the id's, or that cannot be read
 * (EIO), loses its index entry (the next insert of the object replaces the file) and
 * STORK_EBADHASH is returned, the detail naming the file and what it hashes to.
 * Thread-safe. @param[out] ret_fd the caller closes it.
 * @return 0; -ENOENT; STORK_EBADHASH; -errno. */
int store_object_open_checked(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd);
/** store_object_open, only when this handle already hashed this very file right (as
 * store_object_open_checked would find): it never hashes. Thread-safe. @param[out] ret_fd the
 * caller closes it. @return 0; -EAGAIN (not known checked: store_object_open_checked would
 * hash it); -ENOENT; -errno. */
int store_object_open_if_checked(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd);
/** Hard-link an indexed object as dirfd/name with permission bits `mode` (& 07777): the
 * link is to the store's variant of the object for that mode, objects/ab/<hex>.<octal mode>
 * (made on demand as a reflink or copy, via tmp + rename), never to the canonical
 * objects/ab/<hex> that reads are served from, so writing through an extracted link cannot
 * change what the store serves. The variant is made immutable (FS_IMMUTABLE_FL), so that no
 * tree linked to it can change it for the others; its flag is off only for the moment of the
 * link, under its flock, and a write in that moment is caught (the link is undone and a new
 * variant made). A variant made here is not synced: sync the file system (syncfs) before
 * relying on the links. Not for modes everyone may write (S_IWOTH). This function is
 * thread-safe, also against other processes: a variant is made under a temporary name and
 * renamed without replacing (RENAME_NOREPLACE), so of two concurrent makers one wins and the
 * other links the winner's file.
 * @return 0; -ENOENT; -EXDEV: copy instead (detail says why): dirfd is on another file system,
 * the variant cannot be made immutable there (no such attribute, or no CAP_LINUX_IMMUTABLE),
 * or the mode lets everyone write; -errno. */
int store_object_link(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint32_t mode, int dirfd,
		      const char *name);
/** Unlink dirfd/name, which may be immutable (a mode variant, or a link to one that
 * store_object_link made): its flag goes off for the unlink under the inode's flock, and on
 * again when other links remain. What removes extracted trees and variants uses this.
 * @return 0; -errno as unlinkat. */
int store_unlink(int dirfd, const char *name);
/** Copy size bytes of src into the empty file dst: a reflink where the file system can, else
 * only src's data (SEEK_DATA/SEEK_HOLE): holes stay holes. @return 0; -EIO when src is
 * shorter than size; -ENOMEM; -errno. */
int store_copy_file(int src, int dst, uint64_t size);
/** Drop an object from the index and unlink its files (the object and all its mode variants).
 * This function is thread-safe; a descriptor of the object that another thread holds stays
 * readable (the file is unlinked, not truncated). @return 0; -ENOENT; -errno. */
int store_object_remove(struct store *s, const uint8_t id[VERIFY_HASH_LEN]);
/** Pin or unpin (pins count; a pinned object is never garbage-collected). This function is
 * thread-safe: the count is read and written in one write transaction, so concurrent pins
 * and unpins (of any thread or process) all count. @return 0; -ENOENT; -EINVAL when unpinning an
 * object with no pins. */
int store_object_pin(struct store *s, const uint8_t id[VERIFY_HASH_LEN], bool pin);

/* Quota and eviction (store/README.md, "Quota and eviction"). The quota is a setting of the
 * store itself (in its index), so every mount, extract and prefetch on it agrees. When an
 * insert takes the objects' bytes above it, the least recently used objects nothing pins are
 * removed until the bytes are at most STORE_QUOTA_LOW_PERCENT of it. Pinned: objects with
 * record pins (store_object_pin) and those of every owner's pin set (store_pin_set). Uses
 * are noted in memory and written in batches (no write per read). */
#define STORE_QUOTA_LOW_PERCENT 75

/** Set the store's quota in bytes of objects (0: none, the store only grows). Takes effect
 * at the next insert of every process (they read it at most a second old). Thread-safe.
 * @return 0; -EROFS; -errno. */
int store_quota_set(struct store *s, uint64_t bytes);
/** The store's quota (0: none). Thread-safe. @return 0; -errno. */
int store_quota_get(struct store *s, uint64_t *ret_bytes);

struct store_usage {
	uint64_t objects, bytes; /* indexed objects and their bytes */
	uint64_t quota;		 /* 0: none */
	uint64_t pinned_objects, pinned_bytes;
	uint64_t owners;		   /* pin sets (store_pin_set) */
	uint64_t evictions, evicted_bytes; /* since the store was made */
};
/** Count the store: one read transaction over every record, and the pin sets. Thread-safe.
 * @return 0; -errno; STORK_EFORMAT (a pin set that cannot be read: detail names it). */
int store_usage(struct store *s, struct store_usage *ret_u);
/** Evict least recently used unpinned objects until the objects' bytes are at most target
 * (pins may keep them above it). A descriptor a reader holds keeps reading (files are
 * unlinked). Thread-safe. @param[out] ret_freed (may be NULL) bytes removed.
 * @return 0; -errno. */
int store_evict(struct store *s, uint64_t target, uint64_t *ret_freed);
/** After a write into the store failed with ENOSPC: with a quota, evict least recently used
 * unpinned objects (what the write needs and a quarter of the rest, at least down to the low
 * mark); without one, nothing. @param need the bytes the write needed; what names it for the
 * detail. Thread-safe. @return 0 when something was freed (retry once); -ENOSPC with the
 * detail "STOREDIR: No space left on device (ENOSPC) storing WHAT (N bytes): the store holds
 * ..., quota ..., pinned ..."; -EROFS; -errno. */
int store_make_room(struct store *s, uint64_t need, const char *what);
/** Set the detail store_make_room sets when it cannot free anything, without evicting (a
 * retry after store_make_room failed again). Thread-safe. */
void store_say_full(struct store *s, uint64_t need, const char *what);
/** Whether need more bytes of objects fit without evicting anything: the objects' bytes plus
 * need stay within the quota (if any), and the store's file system keeps free at least
 * STORE_FREE_FLOOR_PERCENT of its size after them. For copies the store may do without (the
 * whole object of a chunked file, fs/README.md "Memory"). Thread-safe.
 * @return 0; -ENOSPC (detail says which bound); -errno. */
#define STORE_FREE_FLOOR_PERCENT 5
int store_has_room(struct store *s, uint64_t need);
/** Write the uses this handle noted (store_object_open) into the index now (store_close
 * does too). Thread-safe. @return 0; -errno. */
int store_uses_flush(struct store *s);

#define STORE_PIN_OWNER_MAX 128
/** Replace owner's pin set with the n objects ids (n = 0: no pins). owner: 1 to
 * STORE_PIN_OWNER_MAX of [A-Za-z0-9._-], not starting with '.' (e.g. "mount-<hex>",
 * "slice-web"). Ids need not be stored yet: an object pinned before it arrives is kept once
 * it does. Eviction and stork gc never remove a pinned object. Thread-safe; processes too
 * (the set is renamed into place). @return 0; -EINVAL (bad owner); -EROFS; -errno. */
int store_pin_set(struct store *s, const char *owner, const uint8_t (*ids)[VERIFY_HASH_LEN],
		  size_t n);

/* What the trusted metadata references (store/README.md, "Garbage collection" and "Bounded
 * metadata"). */
struct store_prune_report {
	uint64_t manifests; /* manifests dropped from the index: no repository lists them */
	uint64_t roles;	    /* cached files of delegated roles that sign nothing listed */
};
/* The verified state a walk listed: the versions of its trusted root and snapshot. */
struct store_state {
	uint64_t root, snapshot;
};
/** After a refresh of repo that verified: ids are the manifests (signed SHA-256) of every
 * version its metadata signs now (the state `state`), roles the delegated roles that signed
 * them. Kept as the repository's list (STOREDIR/repos/<repo>, what store_gc keeps), unless the
 * list in place was written from a newer state (a higher root version, or the same root and a
 * higher snapshot version: another process's walk of a newer state ended first); manifests no
 * repository lists any more are dropped from the index (once every repository of the store
 * has a list), and so are the repository's cached files of delegated roles not in roles (a
 * role's file comes back with the next walk that needs it). Thread-safe; processes too.
 * @param[out] ret (may be NULL) what was dropped. @return 0; 1 (a newer state's list stays,
 * nothing dropped; detail says which); -EINVAL; -errno. */
int store_repo_current(struct store *s, const char *repo, const struct store_state *state,
		       const uint8_t (*ids)[VERIFY_HASH_LEN], size_t n, const char *const *roles,
		       size_t nroles, struct store_prune_report *ret);
/** What repo's list (store_repo_current) holds now, as the SHA-256 of its ids in the order
 * given (32 bytes each): a caller that wrote a list tells whether another writer replaced it
 * since. @return 0; -ENOENT (no list); STORK_EFORMAT (detail); -ENOMEM; -errno. */
int store_repo_current_digest(struct store *s, const char *repo,
			      uint8_t ret_digest[VERIFY_HASH_LEN]);

struct store_gc_report {
	uint64_t objects;	    /* indexed objects looked at */
	uint64_t removed, bytes;    /* objects removed (with their variants), their bytes */
	uint64_t pinned;	    /* unreferenced objects kept for their pins */
	uint64_t manifests;	    /* manifests dropped from the index */
	uint64_t unknown_manifests; /* listed manifests the store does not hold */
};
/** Remove every object no manifest of the repositories' lists (store_repo_current)
 * references, that nothing pins and that nobody used or inserted since the collection
 * started; drop manifests no list names. Safe while mounts, extracts and prefetches use the
 * store (store/README.md "Garbage collection": an object used meanwhile stays; a reader's
 * descriptor keeps reading). One collection at a time (flock on STOREDIR/gc.lock).
 * @return 0; -EBUSY (another collection runs); -EAGAIN (a repository has no list yet: refresh
 * it once; detail says which); -EROFS; -errno. */
int store_gc(struct store *s, struct store_gc_report *ret);

/* Writing an object: the sink that fetch/ streams verified-in-stream bytes into. */
struct store_insert;

/** Start writing the object `id` of `size` bytes into tmp/. This function is thread-safe:
 * each insert has its own temporary file, and any number of inserts (of the same object too)
 * may be written at once by different threads and processes. An insert itself is used by one
 * thread at a time: store_insert_write, store_insert_reset, store_insert_commit and
 * store_insert_abort are thread-safe as long as no other thread uses the same ins at the
 * same time. @return 0; -errno. */
int store_insert_new(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		     struct store_insert **ret_ins);
/** Append bytes. @return 0; STORK_EBADLEN past size; -errno (e.g. -ENOSPC). */
int store_insert_write(struct store_insert *ins, const void *buf, size_t len);
/** Forget what was written so far (a retry from another source). @return 0; -errno. */
int store_insert_reset(struct store_insert *ins);
/** Check the hash and size, fsync, rename into objects/, index. Frees ins either way.
 * Another writer may have committed the same object meanwhile: that is success.
 * Thread-safe against other commits, of the same object too, in this process or another
 * (the name is given with a link that never replaces a file; see store_insert_new for ins).
 * @return 0; STORK_EBADLEN; STORK_EBADHASH (nothing is kept); -errno. */
int store_insert_commit(struct store_insert *ins);
/** store_insert_commit without any sync (the read path: store/README.md, "Unsynced inserts"):
 * the size and hash checked, the file named objects/ab/<hex>; this process finds it at once
 * (store_object_open), the index lists it (and so other processes) after the next group sync:
 * within a second, at 2048 objects waiting, at store_sync or when the last handle of the
 * process on the store closes. A crash before that leaves it named but unindexed, and
 * unindexed files are re-hashed before any use. Frees ins either way. Thread-safe.
 * @return 0; STORK_EBADLEN; STORK_EBADHASH; -errno. */
int store_insert_commit_unsynced(struct store_insert *ins);
/** Sync and index every object store_insert_commit_unsynced put in place so far (in this
 * process). Thread-safe. @return 0; -errno (the objects stay unindexed). */
int store_sync(struct store *s);
/** Take in an object that is named in objects/ but not indexed (another process's unsynced
 * insert, or one a crash left): it is hashed first, and only when it is whole and right is it
 * indexed: at once after an fsync (sync), or at this process's next group sync (not sync, as
 * store_insert_commit_unsynced). Thread-safe.
 * @return 0 (stored: store_object_open finds it); -ENOENT (no such file, or not right: it is
 * left for the insert that replaces it); -errno (detail set). */
int store_object_adopt(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		       bool sync);
/** Drop the temporary file and free. Accepts NULL. */
void store_insert_abort(struct store_insert *ins);

/* Batched durability (store/README.md, "Batches"): many inserts made durable by one sync of
 * the store's file system and indexed in one write transaction, instead of an fsync, a
 * directory fsync and an index commit each. The crash rules are those of single inserts: an
 * object is renamed into objects/ only once its bytes are durable and indexed only once its
 * name is; a crash leaves at most locked (hence swept) tmp/ files and whole, verified,
 * unindexed objects (which the next insert of them or fsck indexes). */
struct store_batch;

/* Objects queued or being committed (each an open descriptor) at which store_batch_add waits
 * for the running commit or commits itself. */
#define STORE_BATCH_MAX_QUEUED 256

/** A batch of inserts into s (borrowed; it must outlive the batch). Thread-safe; the batch
 * it makes may be shared by many threads (a mutex inside guards its queue).
 * @return 0; -ENOMEM. */
int store_batch_new(struct store *s, struct store_batch **ret_b);
/** Drop every object added and not committed (their temporary files are unlinked, nothing
 * is indexed) and free. Must not race with other calls on b. Accepts NULL. */
void store_batch_free(struct store_batch *b);
/** Check ins's size and hash as store_insert_commit does, then queue it in b WITHOUT syncing:
 * it is neither in objects/ nor indexed until store_batch_commit. Its temporary file stays
 * open meanwhile (one descriptor per queued object); when STORE_BATCH_MAX_QUEUED objects are
 * queued or being committed, this call waits for the running commit, or commits them itself
 * (as store_batch_commit; a failure there leaves those objects unindexed, which the caller
 * finds with store_object_info). Takes ins (freed on failure too). Thread-safe.
 * @return 0; STORK_EBADLEN; STORK_EBADHASH (nothing is kept); -errno. */
int store_batch_add(struct store_batch *b, struct store_insert *ins);
/** Make every object queued so far durable and visible: one syncfs() of the store's file
 * system, each renamed into objects/ (an existing good copy is kept, as in
 * store_insert_commit), one more syncfs() for the names, then one write transaction indexing
 * them all. Objects queued meanwhile wait for the next commit. Thread-safe (commits run one
 * at a time). @param[out] ret_committed (optional) how many objects this call indexed.
 * @return 0; the first failure (-errno, with a detail naming the file): when the first sync
 * fails nothing of the batch is kept; an object that cannot be renamed is dropped alone; when
 * a later step fails the renamed objects stay unindexed (fetched again or adopted by fsck). */
int store_batch_commit(struct store_batch *b, size_t *ret_committed);
/** Group commit: store_batch_add, then wait until ins is durable and indexed, leading a
 * store_batch_commit of everything queued when no commit is running (so concurrent callers
 * share one sync). The same contract as store_insert_commit: on 0 the object is stored.
 * Frees ins either way. Thread-safe.
 * @return 0; STORK_EBADLEN; STORK_EBADHASH; -errno (the commit's failure for ins). */
int store_insert_commit_batched(struct store_insert *ins, struct store_batch *b);

/* Verified metadata and manifests, so that a node can start offline. `repo` names a
 * repository (the caller's choice, e.g. the hex SHA-256 of its pinned root); `name` a file
 * ("root.json", "timestamp.json", "alice.json"...). The store does not verify them: callers
 * put only what they verified, and verify again what they get. */

/* Each of these functions is thread-safe: one LMDB transaction each (puts are write
 * transactions, serialised by LMDB; gets are read transactions, which never block). */

/** @return 0; -errno; -ENOSPC when the index is full (detail says how to grow it). */
int store_meta_put(struct store *s, const char *repo, const char *name, const void *buf,
		   size_t len);
/** @param[out] ret_buf malloc'd, caller frees. @return 0; -ENOENT; -errno. */
int store_meta_get(struct store *s, const char *repo, const char *name, uint8_t **ret_buf,
		   size_t *ret_len);
/* The copy of the trusted metadata (store/README.md, "Trusted metadata"): store_meta_put
 * writes each file into the index, then as STOREDIR/trusted/<repo>/<name> (atomically), so
 * that losing the index does not silently reset the client's rollback floor. */
enum store_trust {
	STORE_TRUST_NONE = 0,	  /* the index holds the repository's metadata, or it is new */
	STORE_TRUST_RESTORED = 1, /* the index had lost it: put back from the copy */
	STORE_TRUST_LOST = 2,	  /* the index had lost it, and no copy was left: the client
				   * restarts from the pinned root */
	STORE_TRUST_PENDING = 3,  /* (store_stats only) the index lacks it, the copy holds it:
				   * the next store_meta_recover or fsck --repair restores it */
};

/** Before a repository's client starts: when the index holds none of repo's metadata but the
 * copy does (the index was deleted, truncated or moved aside), put the copy back into the
 * index (the client verifies it from its pinned root as everything it loads); when neither
 * holds any but the store has been used (objects/ holds files while the index knows no
 * repository), say so. What is found is recorded in the repository's record
 * (store_repo_status.trust). When the index holds the metadata, the copy is brought up to it
 * (best effort): made for a store of an older version, caught up after a crash between the
 * index's commit and the copy's write. Callers say RESTORED and
 * LOST loudly. @param[out] ret_trust NONE, RESTORED or LOST; ret_files (may be NULL) the files
 * restored. @return 0; -EINVAL; -errno (detail names the file). Thread-safe; processes
 * serialise on the copy's lock. */
int store_meta_recover(struct store *s, const char *repo, enum store_trust *ret_trust,
		       size_t *ret_files);
/** Record the time of the repository's last successful refresh and the URL it came from. */
int store_repo_note_refresh(struct store *s, const char *repo, const char *url, int64_t when);
/** Manifests by their SHA-256 (checked on put: -EINVAL when buf does not hash to id). */
int store_manifest_put(struct store *s, const uint8_t id[VERIFY_HASH_LEN], const void *buf,
		       size_t len);
int store_manifest_get(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint8_t **ret_buf,
		       size_t *ret_len);

/* Generations of a slice's installed set (store/README.md "Generations"; fs/README.md
 * "Installing"): numbered records of the exact versions installed into one slice of one
 * repository, and which of them is current. One write transaction makes a new generation
 * current, so a generation appears whole or not at all, and survives restarts. Each function
 * is thread-safe and safe between processes (one LMDB transaction each). */

struct store_gen_pkg {
	char *name, *version;
	uint8_t manifest[VERIFY_HASH_LEN]; /* the SHA-256 of its signed manifest */
	char *why;			   /* "requested", or "needed by a, b" */
};

struct store_gen {
	uint64_t number; /* 1, 2, ...; set by store_gen_commit */
	uint64_t prev;	 /* the generation current when it was made (0: none); set likewise */
	int64_t made;	 /* unix seconds */
	char **wanted;	 /* the requests it was resolved from: "NAME" or "NAME=VERSION" */
	size_t nwanted;
	struct store_gen_pkg *pkgs; /* sorted by name */
	size_t npkgs;
};

void store_gen_free(struct store_gen *g);
/** The number of slice's current generation in repo (0: none), from one read transaction: cheap
 * enough for every lookup. @return 0; -errno. */
int store_gen_current(struct store *s, const char *repo, const char *slice, uint64_t *ret_number);
/** Generation number of slice (0: the current one). @param[out] ret_g caller frees.
 * @return 0; -ENOENT (no such generation; detail says so); STORK_EFORMAT (a record this
 * storkfs cannot read); -errno. */
int store_gen_get(struct store *s, const char *repo, const char *slice, uint64_t number,
		  struct store_gen **ret_g);
/** Record g (its number, prev and made are ignored: the next number after every generation the
 * slice had, now) and make it current, in one write transaction, synced, but only when the
 * current generation is still `expect` (0: none). @param[out] ret_number its number.
 * @return 0; -EAGAIN (another process changed the slice meanwhile: detail says so); -EINVAL (a
 * name, version or request with a space or newline); -ENOSPC; -EROFS; -errno. */
int store_gen_commit(struct store *s, const char *repo, const char *slice, uint64_t expect,
		     const struct store_gen *g, uint64_t *ret_number);
/** Make the existing generation `number` current, when the current one is still `expect`
 * (rollback). @return 0; -ENOENT; -EAGAIN; -errno. */
int store_gen_switch(struct store *s, const char *repo, const char *slice, uint64_t expect,
		     uint64_t number);
/** Call fn for the current generation of every slice of every repository (for pins and
 * eviction: the objects of installed versions). A negative return of fn stops the walk.
 * @return 0; fn's negative return; -errno. */
int store_gen_each(struct store *s,
		   int (*fn)(void *ctx, const char *repo, const char *slice,
			     const struct store_gen *g),
		   void *ctx);
/* Catalog indexes (store/README.md, "Catalog indexes"): bytes a caller derived from verified
 * metadata, kept as STOREDIR/catalogs/<hex key> under a key derived from that metadata, with
 * the time they stop being valid; written whole without a sync and checked whole when read
 * (header, key, SHA-256 trailer). At most 16 are kept: the least recently written go. */

/** Read catalogs/<hex key>. @param[out] ret_body (caller frees) and ret_len: the bytes saved;
 * ret_until (optional): the time given to store_catalog_save. @return 0; -ENOENT when absent;
 * STORK_EBADHASH when damaged, cut, or written under another key (detail names the file and
 * the problem: the caller builds it again); -ENOMEM; -errno. Thread-safe. */
int store_catalog_open(struct store *s, const uint8_t key[VERIFY_HASH_LEN], uint8_t **ret_body,
		       size_t *ret_len, int64_t *ret_until);
/** Write body as catalogs/<hex key>, atomically (a temporary file renamed over any old one),
 * not synced; then remove all but the 16 most recently written. @return 0; -EROFS on a
 * read-only store; -EFBIG (over 256 MiB); -ENOMEM; -errno. Thread-safe. */
int store_catalog_save(struct store *s, const uint8_t key[VERIFY_HASH_LEN], const void *body,
		       size_t len, int64_t until);
/** Remove catalogs/<hex key>. @return 0 (also when absent); -EROFS; -errno. */
int store_catalog_drop(struct store *s, const uint8_t key[VERIFY_HASH_LEN]);

/* A version's tree index (store/README.md, "Tree indexes"): a verified manifest's entries as
 * fixed-size records with a child index, STOREDIR/trees/<manifest sha256>, so that a mount
 * loads a version with one read and a hash instead of a JSON parse, and finds a path by binary
 * search. Derived data: built only from a manifest the caller verified, named by its SHA-256,
 * checked whole when read. A struct store_tree is immutable: any number of threads may read
 * it at once; the strings it gives stay valid until store_tree_free. */
struct store_tree;

/** Build the index of m, whose SHA-256 (the signed one the caller verified) is id, in memory.
 * @return 0; STORK_EHOSTILE (an entry below a non-directory: detail names it); -EFBIG;
 * -ENOMEM. */
int store_tree_build(const struct verify_manifest *m, const uint8_t id[VERIFY_HASH_LEN],
		     struct store_tree **ret_t);
/** Read trees/<hex id> and check it whole (checksum, header, every offset and child index).
 * @return 0; -ENOENT when absent; STORK_EBADHASH when damaged, cut or made from another
 * manifest (detail names the file and the problem: the caller drops it and builds it again
 * from the verified manifest); -ENOMEM; -errno. Thread-safe. */
int store_tree_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], struct store_tree **ret_t);
/** Write t as trees/<hex id>, atomically (a temporary file renamed over any old one), not
 * synced (a damaged file fails its check and is built again). @return 0; -EROFS on a
 * read-only store; -errno. Thread-safe. */
int store_tree_save(struct store *s, const struct store_tree *t);
/** Remove trees/<hex id>. @return 0 (also when absent); -EROFS; -errno. */
int store_tree_drop(struct store *s, const uint8_t id[VERIFY_HASH_LEN]);
void store_tree_free(struct store_tree *t);
/** Entries, in the manifest's order (sorted by path). */
size_t store_tree_n(const struct store_tree *t);
/** Entry i < n, its path and target pointing into t. */
void store_tree_entry(const struct store_tree *t, size_t i, struct verify_entry *ret_e);
const char *store_tree_path(const struct store_tree *t, size_t i);
enum verify_ftype store_tree_type(const struct store_tree *t, size_t i);
/** The index of path, -1 when absent; "" is the version directory (n). O(log n). */
long store_tree_find(const struct store_tree *t, const char *path);
/** The children of entry i (i == n: the version directory), sorted by name: *ret_n indexes. */
void store_tree_kids(const struct store_tree *t, size_t i, const uint32_t **ret_kids,
		     size_t *ret_n);

struct store_repo_status {
	char *repo;
	char *url;	      /* last URL refreshed from, "" if never */
	int64_t last_refresh; /* 0 if never */
	size_t nmeta;	      /* metadata files held */
	/* What store_meta_recover last found (enum store_trust); PENDING: see there, with the
	 * files in the copy in ncopy. */
	int trust;
	size_t ncopy;
};

struct store_stats {
	uint64_t objects;
	uint64_t bytes;
	uint64_t pinned;
	uint64_t manifests;
	struct store_repo_status *repos; /* malloc'd array, free with store_stats_fini */
	size_t nrepos;
};

/** Counts and repositories, from one read transaction: a consistent view of the index even
 * while other threads write. This function is thread-safe; store_stats_fini is not, on the
 * same st. @return 0; -errno. */
int store_stats(struct store *s, struct store_stats *ret_stats);
void store_stats_fini(struct store_stats *st);

struct store_fsck_report {
	uint64_t objects; /* indexed objects checked */
	uint64_t good;
	uint64_t bad;		/* content does not match its id, or wrong size; or a mode variant
				 * of it does, or has a mode other than its name's */
	uint64_t missing;	/* indexed, file gone */
	uint64_t unindexed;	/* files in objects/ the index does not list (variants too) and
				 * that are not whole objects */
	uint64_t adopted;	/* whole, good objects an interrupted insert left unindexed: fsck
				 * indexes them (finishing the insert), repair or not */
	uint64_t stale_tmp;	/* leftovers in tmp/ */
	uint64_t repaired;	/* entries dropped / files removed with repair */
	uint64_t changed_links; /* files of extracted trees still linked to a variant whose
				 * content changed (links/ records; each listed) */
	uint64_t stale_links;	/* records of trees that are gone (removed with repair; not a
				 * problem) */
	/* Repositories whose metadata the index lost and whose copy in trusted/ holds it
	 * (repair puts it back into the index). */
	uint64_t lost_meta;
};

/* Records of where an extract linked (links/, store/README.md "Extracted trees"): add each
 * hard link store_object_link made, then commit once for the tree's final absolute path. */
struct store_links;
/** @return 0; -ENOMEM. */
int store_links_new(struct store *s, struct store_links **ret_l);
/** Note dirfd-relative `path` (no newline) linked to the variant of id for mode, inode ino.
 * @return 0; -EINVAL (a newline in path); -ENOMEM. */
int store_links_add(struct store_links *l, const uint8_t id[VERIFY_HASH_LEN], uint32_t mode,
		    uint64_t ino, const char *path);
/** Write the record links/<sha256 of dest> (tmp + fsync + rename), replacing an older one
 * of the same dest. dest: absolute, no newline. @return 0; -EINVAL; -errno (detail set). */
int store_links_commit(struct store_links *l, const char *dest);
/** Free (NULL is fine); an uncommitted record is dropped. */
void store_links_free(struct store_links *l);
/** Remove dest's record, if any (its tree was not made after all). */
void store_links_forget(struct store *s, const char *dest);

/** Re-hash every indexed object and its mode variants and compare the index with objects/,
 * and the index's metadata with its copy in trusted/ (a repository whose metadata only the
 * copy holds is restored with repair, as store_meta_recover does).
 * With repair, drop index entries of bad or missing objects (and unlink their variants), unlink
 * bad files, bad variants (the object stays when it is good) and unindexed files (they may be
 * a crash's leftovers). Good unindexed objects are always indexed (counted as adopted). problem is
 * called for each finding with the object's path and what is wrong. On a read-only store
 * (store_readonly) nothing is written: good unindexed objects count as unindexed, and repair
 * is -EROFS. Safe while other threads and processes use the store: indexed objects are read
 * in short read transactions, and every repair runs in a write transaction that first checks
 * that the file is still the one judged, so a concurrent insert's fresh object is never
 * removed. problem is called on the calling thread. Two fscks of one store at once are not
 * meant to run (both would report and repair the same findings).
 * @return 0 (see the report); -EROFS; -errno. */
int store_fsck(struct store *s, bool repair,
	       void (*problem)(void *ctx, const char *path, const char *what), void *ctx,
	       struct store_fsck_report *ret_report);

#endif
