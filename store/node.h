/* store/node.h: private to the node store (store/node.c, insert.c, index.c, stats.c,
 * trusted.c, fsck.c).
 *
 * struct store is one handle on STOREDIR. Its LMDB environment lives in a struct node_env that
 * every handle of this process on the same index shares: LMDB forbids opening one environment
 * twice in a process (closing the second copy would drop the first one's fcntl locks), and a
 * mount and an extract in one process may both open the store.
 */
#ifndef STORKFS_STORE_NODE_H
#define STORKFS_STORE_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <lmdb.h>

#include "store/store.h"

#define NODE_OBJDIR	"objects"
#define NODE_TMPDIR	"tmp"
#define NODE_INDEXDIR	"index"
#define NODE_TRUSTDIR	"trusted"
#define NODE_TMP_PREFIX ".part-"
/* A mode variant is "<64 hex>.<mode in octal, no leading zero>": ".0" to ".7777". */
#define NODE_VARIANT_MAX ".7777"
/* "ab/<64 hex>.7777" plus NUL. */
#define NODE_RELPATH_LEN (3 + 2 * VERIFY_HASH_LEN + sizeof(NODE_VARIANT_MAX))
/* The mtime of every variant (seconds since the epoch, as the Nix store uses): a write
 * through a hard link sets it to the time of the write, so a variant that has been written to
 * is noticed by a stat() and made again (store/README.md, "Mode variants"). */
#define NODE_VARIANT_MTIME 1
/* ".part-XXXXXX" plus NUL. */
#define NODE_TMPNAME_LEN (sizeof(NODE_TMP_PREFIX) + 6)
/* LMDB's reader slots: with its 64-byte slots and 192-byte header the lock file is then
 * exactly 64 KiB (open.c allocates it before LMDB maps it). */
#define NODE_MAXREADERS 1022

struct node_pending;

struct node_env {
	MDB_env *env;
	/* Objects put in place without a sync, not yet indexed (pending.c); NULL read-only. */
	struct node_pending *pending;
	MDB_dbi objects, meta, manifests, repos;
	MDB_dbi info;  /* "storkfs": the format, the quota and the eviction counters (quota.c) */
	MDB_dbi gens;  /* slices' generations (store/gen.c) */
	bool has_gens; /* false: a read-only store made before generations existed */
	/* Held for reading around every transaction of this process, for writing while the map
	 * is resized: mdb_env_set_mapsize() needs no live transaction in the process. */
	pthread_rwlock_t maplock;
	size_t mapsize; /* under maplock */
	size_t mapmax;
	char *file;    /* "STOREDIR/index/data.mdb", for error details */
	char *dir;     /* "STOREDIR", for error details */
	bool readonly; /* MDB_RDONLY: a write transaction is -EROFS */
	/* The registry of open environments (index.c), under its mutex. */
	dev_t dev;
	ino_t ino;
	pid_t pid;
	unsigned refs;
	struct node_env *next;
};

struct store {
	char *dir;
	int dirfd;
	int objfd; /* objects/ */
	int tmpfd; /* tmp/ */
	struct node_env *env;
	/* How unnamed temporary files (O_TMPFILE) get their name: 0 = not at all (the file
	 * system lacks O_TMPFILE: named tmp/.part-* files instead), else NODE_LINK_*. Probed
	 * once by store_open. */
	int anon_link;
	/* Files store_object_open_checked hashed right (checked.c); made at its first call. */
	struct node_checked *checked;
	/* Opened read-only (asked for, or its file system is): nothing is created, swept or
	 * written; every write is -EROFS. */
	bool readonly;
	/* Whether linked variants can be made immutable here (variant.c): 0 not known yet, 1
	 * yes, -1 no (store_object_link says -EXDEV at once: copy). Atomic. */
	int immutable;
	/* The access clock, the usage estimate and eviction (quota.c); made by store_open. */
	struct node_quota *quota;
	/* Objects are opened without O_NOATIME: it was refused (not their owner). Atomic. */
	bool atime_denied;
};

enum { NODE_LINK_EMPTY_PATH = 1, NODE_LINK_PROC = 2 };

/* The index record of an object (index.c; store/README.md has the byte layout). */
struct node_objrec {
	uint64_t size;
	int64_t last_use;
	uint16_t last_ms; /* milliseconds within last_use's second (the LRU order) */
	uint32_t pins;
	uint8_t flags;
};

/* ---- open.c ---- */

/** Open (or share) the LMDB environment in the directory indexfd (STOREDIR/index; dir names
 * STOREDIR in details), read-only if asked. Refuses index files another user owns or may
 * write, and a data.mdb shorter than its pages (store/README.md, "Who may own a store").
 * @return 0; -errno (-EPERM: not trusted; -ENOSPC: no room for the lock file);
 * STORK_EFORMAT. */
int node_env_open(const char *dir, int indexfd, bool readonly, struct node_env **ret_env);
void node_env_close(struct node_env *e);

/* ---- index.c ---- */

/** Convert what a transaction body or an mdb_* call returned. Our own negative codes pass
 * through with their detail; LMDB's get one naming the index file (e may be NULL). */
int node_mdb_err(struct node_env *e, int rc);
/** The map size LMDB uses now. */
size_t node_current_mapsize(struct node_env *e);

/** Run fn in a transaction (read-only unless write). fn returns 0, a negative errno or
 * STORK_E* code with its detail set, or the raw return code of an mdb_* call, which is
 * converted here. A write transaction is committed when fn returns 0. A full map is grown
 * and fn run again (so fn must start from scratch each time), as is a map another process
 * resized. Never nest: a thread must not call node_txn from inside fn. */
int node_txn(struct node_env *e, bool write, int (*fn)(struct node_env *e, MDB_txn *txn, void *ctx),
	     void *ctx);

/** Make every commit so far durable (the environment runs with MDB_NOMETASYNC).
 * @return 0; -errno. */
int node_sync(struct node_env *e);
/** data.mdb is shorter than its newest meta page counts: gives the file its missing pages back (a
 * hole) when every one of them is in LMDB's free list (pages a commit counted but never wrote,
 * whose cover a kill or a power cut prevented: index.c cover_pages), and leaves it as it was
 * otherwise. Before any other page of the file is read. @return 0 covered; STORK_EFORMAT not free
 * pages; -errno. */
int node_cover_free_tail(struct node_env *e);

/** The object's record in txn: 0; MDB_NOTFOUND; STORK_EFORMAT for a malformed one. */
int node_objrec_get(struct node_env *e, MDB_txn *txn, const uint8_t id[VERIFY_HASH_LEN],
		    struct node_objrec *ret_rec);
/** Call fn(ctx, id, rec) for each object record in txn, in id order, passing over (and
 * clearing the error detail of) a key that is no id or a record that does not decode: fsck
 * reports those. Stops at fn's first non-zero return. @return 0, fn's return or an mdb code. */
int node_objects_each(struct node_env *e, MDB_txn *txn,
		      int (*fn)(void *ctx, const uint8_t *id, const struct node_objrec *rec),
		      void *ctx);
/** Write the object's record in txn. @return 0 or an mdb code. */
int node_objrec_put(struct node_env *e, MDB_txn *txn, const uint8_t id[VERIFY_HASH_LEN],
		    const struct node_objrec *rec);

/** Index a verified object (keeping pins and last use if it is indexed already). */
int node_index_object(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size);

struct node_index_item {
	uint8_t id[VERIFY_HASH_LEN];
	uint64_t size;
	int64_t ms; /* its last use (ms since the epoch) for the LRU order; 0: now */
};
/** node_index_object for n objects in one write transaction (a batch's commit). */
int node_index_objects(struct store *s, const struct node_index_item *items, size_t n);
/** The same on an environment. */
int node_env_index_objects(struct node_env *e, const struct node_index_item *items, size_t n);

/* ---- pending.c: unsynced objects (store/README.md, "Unsynced inserts") ---- */

/** The table of e (no thread until the first add). @return 0; -ENOMEM. */
int node_pending_new(struct node_env *e, struct node_pending **ret_p);
/** Sync and index what is left, stop the syncing thread, free. Accepts NULL. */
void node_pending_free(struct node_pending *p);
/** Record an object just named in objects/ without a sync; indexed at the next group sync.
 * @return 0; -errno (detail set: then the object stays unindexed). Thread-safe. */
int node_pending_add(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size);
/** Whether the object waits for its group sync, and its size. @return 0; -ENOENT. */
int node_pending_get(struct node_env *e, const uint8_t id[VERIFY_HASH_LEN], uint64_t *ret_size);
/** Drop the object from the table (its file was found wrong or missing). */
void node_pending_forget(struct node_env *e, const uint8_t id[VERIFY_HASH_LEN]);
/** Sync and index everything recorded so far, now. @return 0; -errno. Thread-safe. */
int node_pending_flush(struct node_env *e);
/** The objects waiting for their group sync and their bytes (the quota counts them with the
 * indexed ones: quota.c). Thread-safe. */
void node_pending_usage(struct node_env *e, uint64_t *ret_bytes, uint64_t *ret_objects);
/** A use of the object at ms (since the epoch) when it waits for its group sync: its record
 * gets the latest use when indexed (the LRU order of quota.c). Thread-safe. */
void node_pending_touch(struct node_env *e, const uint8_t id[VERIFY_HASH_LEN], int64_t ms);

/* ---- checked.c ---- */

struct node_checked;
void node_checked_free(struct node_checked *c);
/** Remember fd, just put in place as objects/<id> by an insert that hashed it, as checked
 * (when the handle has a table: it has once store_object_open_checked was called). */
void node_checked_note(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int fd);

/* An `objects` record (store/README.md): version, flags, reserved, pins, size, last use. */
#define NODE_OBJREC_VERSION 1
#define NODE_OBJREC_LEN	    24

/* Little-endian fields of the records. */
static inline void node_put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t node_get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* A `repos` record (store/README.md): version, the trust byte (enum store_trust: what
 * store_meta_recover last found), reserved bytes, the last refresh (i64), then the URL. */
#define NODE_REPOREC_VERSION 1
#define NODE_REPOREC_TRUST   1 /* offset of the trust byte */
#define NODE_REPOREC_HEAD    16

/* ---- trusted.c: the copy of the trusted metadata, STOREDIR/trusted/<repo>/<name> ---- */

/** Open trusted/<repo>/ (made, 0755, when create) and take its flock() (held until the
 * descriptor is closed): writers of the copy and of the index's metadata hold it.
 * @return 0; -ENOENT (not there, and not create); -errno (detail set). */
int node_trusted_open(struct store *s, const char *repo, bool create, int *ret_fd);
/** Write the copy of one file atomically (temporary file, fsync, rename, fsync of the
 * directory) into the locked trusted/<repo>/ fd. @return 0; -errno (detail names the file). */
int node_trusted_write(struct store *s, int fd, const char *repo, const char *name, const void *buf,
		       size_t len);
/** store_meta_recover, or with apply false only what it would find: STORE_TRUST_PENDING
 * instead of RESTORED, and nothing written. */
int node_trusted_recover(struct store *s, const char *repo, bool apply, enum store_trust *ret_trust,
			 size_t *ret_files);
/** Call fn for each repository that has a directory in trusted/. @return 0; fn's error;
 * -errno. */
int node_trusted_each(struct store *s, int (*fn)(void *ctx, const char *repo), void *ctx);

/* ---- node.c ---- */

/** mkdir with this mode whatever the umask; an existing directory is fine and keeps its mode.
 * @return 1 (made); 0 (was there); -errno. */
int node_mkdir_mode(int dirfd, const char *name, mode_t mode);

/** "ab/<hex>", the object itself, relative to objects/. */
void node_relpath(const uint8_t id[VERIFY_HASH_LEN], char out[NODE_RELPATH_LEN]);
/** "ab/<hex>.<octal mode>", its variant for mode & 07777, relative to objects/. */
void node_variant_relpath(const uint8_t id[VERIFY_HASH_LEN], uint32_t mode,
			  char out[NODE_RELPATH_LEN]);
/** Parse a variant's suffix (what follows "<hex>."): 1 to 4 octal digits, no leading zero
 * unless it is "0". @return true and *ret_mode; false for anything else. */
bool node_variant_parse(const char *suffix, uint32_t *ret_mode);
/** The object's index record. @return 0; -ENOENT; -errno. */
int node_object_get(struct store *s, const uint8_t id[VERIFY_HASH_LEN],
		    struct node_objrec *ret_rec);
/** Check an indexed object's file (fd, or objects/rel when fd < 0). @param[out] ret_st its
 * stat (may be NULL). @return 0; -ENOENT (entry dropped, detail set); -errno. */
int node_check_file(struct store *s, const uint8_t id[VERIFY_HASH_LEN],
		    const struct node_objrec *rec, int fd, const char *rel, struct stat *ret_st);
/** store_object_open, with the file's stat (taken once, for the size check). */
int node_object_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd,
		     struct stat *ret_st);
/** Note a use on the access clock (quota.c: kept in memory, written in batches);
 * failures only cost accuracy of the last-use time, so they are ignored. */
void node_touch(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int64_t last_use);

/* ---- quota.c ---- */

/** Make s->quota. @return 0; -ENOMEM. */
int node_quota_new(struct store *s);
/** Write the access clock's uses and free s->quota (NULL is fine). */
void node_quota_free(struct store *s);
/** Unlink the files of the objects whose records a committed transaction deleted (gone[i]
 * for the id at ids + i * stride), after syncing the index, each only while no record names it
 * again: records first, files after, so that a crash leaves whole unindexed files, never
 * records of missing ones (quota.c's eviction, gc.c). @return 0; -errno (the first failure). */
int node_unlink_unindexed(struct store *s, const uint8_t *ids, size_t stride, const bool *gone,
			  size_t n);
/** After n objects were inserted (indexed, or unsynced: pending.c): count them and, above the
 * quota, evict down to the low mark, never one of these. Failures are left in the detail and
 * ignored. */
void node_quota_inserted(struct store *s, const struct node_index_item *items, size_t n);
/* ---- tree.c: flat index files (tree indexes, catalog indexes: catalog.c) ---- */

/** Write buf as DIR/NAME (name includes dir; dir made if missing) under a temporary name
 * renamed into place, not synced (a damaged file fails its checksum and is made again).
 * @return 0; -EROFS; -errno (nothing left behind). */
int node_flat_save(struct store *s, const char *dir, const char *name, const void *buf, size_t len);
/** Remove the flat file name (absent: fine). @return 0; -EROFS; -errno. */
int node_flat_drop(struct store *s, const char *name);
/* ---- pins.c: the owners' pin sets, STOREDIR/pins/<owner> ---- */

struct node_pinset {
	uint8_t (*ids)[VERIFY_HASH_LEN]; /* sorted, each once */
	size_t n;
	uint64_t owners;
};
/** Read every owner's pin set. @return 0; -ENOMEM; STORK_EFORMAT or -errno for a pin file
 * that cannot be read (detail names it: nothing is evicted or collected then). */
int node_pins_load(struct store *s, struct node_pinset *ret);
void node_pins_fini(struct node_pinset *p);
/** Replace dname/name (a directory of STOREDIR: "pins", "repos") with the set ids (ids NULL:
 * remove it): temporary file, fsync, rename. @return 0; -EINVAL (a bad name); -errno. */
int node_idset_write(struct store *s, const char *dname, const char *name,
		     const uint8_t (*ids)[VERIFY_HASH_LEN], size_t n);
/** The union of every set in STOREDIR/dname (none: empty). @return as node_pins_load. */
int node_idset_load(struct store *s, const char *dname, struct node_pinset *ret);
/** The set dname/name alone, its ids in the file's order (not sorted, as written). @return 0;
 * -ENOENT; STORK_EFORMAT (detail); -ENOMEM; -errno. */
int node_idset_get(struct store *s, const char *dname, const char *name, struct node_pinset *ret);
/** Whether p (may be NULL) holds id. */
bool node_pins_has(const struct node_pinset *p, const uint8_t id[VERIFY_HASH_LEN]);

/** An object's place in the LRU order: milliseconds since the epoch. */
static inline int64_t node_objrec_ms(const struct node_objrec *rec)
{
	return rec->last_use * 1000 + rec->last_ms;
}

/* ---- links.c ---- */

/** fsck's pass over links/: problem for each recorded file of an extracted tree still linked
 * to a variant whose content changed. Stale records (the tree gone, or none of its recorded
 * files still the linked inode) are counted, and removed with repair. @return 0; -errno. */
int node_links_check(struct store *s, bool repair,
		     void (*problem)(void *ctx, const char *path, const char *what), void *ctx,
		     uint64_t *ret_changed, uint64_t *ret_stale);

/* ---- variant.c ---- */

/** Unlink every objects/ab/<hex>.* (all variants of the object; a missing objects/ab/ is
 * fine). @param[out] ret_removed how many were unlinked (may be NULL). @return 0; -errno (detail
 * names the file). */
int node_variants_remove(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t *ret_removed);

/* ---- node.c ---- */

/** Create tmp/.part-XXXXXX (O_EXCL, 0600) and hold an exclusive flock on it for its life.
 * Waits out a cleaner that has just locked it to delete it, then tries another name.
 * @return 0; -EROFS (a read-only store); -errno. */
int node_tmp_create(struct store *s, int *ret_fd, char ret_name[NODE_TMPNAME_LEN]);

/** Create an unnamed temporary file in tmp/ (O_TMPFILE, 0444; writable through the returned
 * descriptor): invisible, so no sweeper can take it, and gone by itself if the process dies.
 * @return 0; -EOPNOTSUPP when the store's file system cannot (use node_tmp_create); -EROFS (a
 * read-only store); -errno. */
int node_tmp_anon(struct store *s, int *ret_fd);
/** Give an unnamed temporary file the name `name` below dirfd, never replacing a file (as
 * RENAME_NOREPLACE does). @return 0; -EEXIST; -errno. */
int node_tmp_link(struct store *s, int fd, int dirfd, const char *name);

/** Give an unnamed temporary file a fresh name tmp/.part-XXXXXX (which the caller should hold
 * flock()ed, or a sweeper may take it). @return 0; -errno. */
int node_tmp_name(struct store *s, int fd, char ret_name[NODE_TMPNAME_LEN]);

/** Whether O_TMPFILE works in tmp/ and how such a file gets a name: linkat(AT_EMPTY_PATH)
 * needs CAP_DAC_READ_SEARCH, the /proc/self/fd path needs /proc. Sets s->anon_link. */
void node_probe_anon(struct store *s);

/** Remove tmp/ leftovers of dead writers (unlocked files; none on a store without tmp/). found, if
 * not NULL, is called with each one's name first. @param[out] ret_stale, ret_removed counts (may be
 * NULL).
 * @return 0; -errno. */
int node_tmp_sweep(struct store *s, bool remove, void (*found)(void *ctx, const char *name),
		   void *ctx, uint64_t *ret_stale, uint64_t *ret_removed);

/** The index lists the object but its file is gone (st NULL) or is the wrong file (st):
 * drop the entry, unless the file was replaced meanwhile (a concurrent insert). Errors are
 * ignored: the entry is dropped next time. */
void node_drop_entry(struct store *s, const uint8_t id[VERIFY_HASH_LEN], const struct stat *st);

/** Clear objects/<sub> when it is not a directory (a file or a symlink: nothing the store
 * makes), so that the directory can be made: unlinked, never replacing a directory made
 * meanwhile. @return 0 (cleared, or a directory or nothing there); -errno. */
int node_subdir_clear(struct store *s, const char *sub);

/** mkdir objects/ab (0755) and open it; a file or symlink found there instead is cleared
 * first (node_subdir_clear). @return 0; -errno. */
int node_subdir_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd);

/** The whole regular file fd (at most max bytes), read into a buffer of its size + 1 (caller
 * frees). @return 0; -EINVAL (not a regular file, or larger than max); -EIO (it shrank while
 * read); -ENOMEM; -errno. */
int node_read_fd(int fd, size_t max, uint8_t **ret_buf, size_t *ret_len);
/** Hash an open file from the start: its SHA-256 and length. @return 0; -errno. */
int node_hash_fd(int fd, uint8_t ret_hash[VERIFY_HASH_LEN], uint64_t *ret_size);

/** fsync a directory. @return 0; -errno. */
int node_sync_dir(int fd);

#endif
