/* tests/unit/unit.h: test cases a module's suite gathers from several files. */
#ifndef STORKFS_TESTS_UNIT_H
#define STORKFS_TESTS_UNIT_H

#include <check.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct store;

/* tests/unit/test_verify_meta.c: TUF metadata, client and repository writer. */
TCase *tcase_verify_meta(void);
TCase *tcase_verify_repo(void);
TCase *tcase_verify_cache(void);

/* tests/unit/test_verify_policy.c: the trust policy file. */
TCase *tcase_verify_policy(void);

/* tests/unit/test_verify_control.c: control lists, the policy's control line, publish/follow. */
TCase *tcase_verify_control(void);

/* tests/unit/test_store_node.c: the node store (index, inserts, fsck, concurrency). */
TCase *tcase_store_node(void);
TCase *tcase_store_node_concurrency(void);

/* tests/unit/test_store_open.c: opening the node store (trust, damaged index, read-only). */
TCase *tcase_store_open(void);

/* tests/unit/test_store_pending.c: inserts without a sync, indexed at group syncs. */
TCase *tcase_store_pending(void);

/* tests/unit/test_store_floor.c: the copy of the trusted metadata; objects/ab not a directory. */
TCase *tcase_store_floor(void);

/* tests/unit/test_store_quota.c: the quota, LRU eviction, pin sets, a full store's message. */
TCase *tcase_store_quota(void);
TCase *tcase_store_catalog(void);
/* tests/unit/test_store_gc.c: lists of current versions from older and newer states, gc. */
TCase *tcase_store_gc(void);

/* tests/unit/unit_files.c: helpers of the verify tests. */

/** "DIR/REL", malloc'd. */
char *unit_path_of(const char *dir, const char *rel);
/** A whole file, NUL-terminated (not counted in *ret_len). */
void unit_read_all(const char *path, uint8_t **ret, size_t *ret_len);
/** nftw callback removing each entry (FTW_DEPTH | FTW_PHYS). */
int unit_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw);
/** A fresh directory $TMPDIR/NAME.XXXXXX in dir (cap bytes) and, when storedir, "DIR/store"
 * there (a node store the test opens); clears the error detail. For a Check fixture's setup. */
void unit_tmpdir(const char *name, char *dir, size_t cap, char *storedir, size_t storecap);
/** Remove dir and everything under it (unit_rm_one). For a Check fixture's teardown. */
void unit_tmpdir_rm(const char *dir);
/** Bytes this process has read with read(2)/pread(2) so far (/proc/self/io rchar). */
uint64_t unit_bytes_read(void);
/** The node store at dir, opened (created when missing); the test fails with the error
 * otherwise. In unit_store.c (linked with the store). */
struct store *unit_store_open(const char *dir);

/* An in-memory struct verify_cache, standing in for the node store's LMDB: load/save are
 * unit_mc_load/unit_mc_save with ctx a struct unit_memcache. */
#define UNIT_MC_MAX 32

struct unit_mc_entry {
	char name[64];
	uint8_t *buf;
	size_t len;
};

struct unit_memcache {
	struct unit_mc_entry e[UNIT_MC_MAX];
	size_t n;
	int fail_load; /* returned by every load when set */
	int saves;     /* unit_mc_save calls */
};

struct unit_mc_entry *unit_mc_find(struct unit_memcache *mc, const char *name);
int unit_mc_load(void *ctx, const char *name, uint8_t **ret_buf, size_t *ret_len);
int unit_mc_save(void *ctx, const char *name, const uint8_t *buf, size_t len);
void unit_mc_put(struct unit_memcache *mc, const char *name, const void *buf, size_t len);
void unit_mc_del(struct unit_memcache *mc, const char *name);
/** Free every entry and empty the cache. */
void unit_mc_clear(struct unit_memcache *mc);

#endif
