/* fs/daemon.h: the storkfs daemon's internals, shared by fs/daemon.c (main, options,
 * refresh), fs/inode.c (inode numbers and lookup counts), fs/tree.c (what the tree holds:
 * catalog of packages and versions, version trees, attributes) and fs/ops.c (the FUSE
 * low-level callbacks). Not part of the fs module's contract (fs/fs.h): only the daemon
 * includes it.
 *
 * The tree:
 *   /                        packages (verified metadata only)                    ino 1
 *   /<pkg>/                  versions as directories, `latest` -> highest version
 *   /<pkg>/<ver>/...         the version's signed manifest (fetched on first lookup or readdir
 *                            inside the version directory; objects only on open)
 *
 * Locks (never two at once, never held across network or a FUSE reply):
 *   inodes.lock   the inode table: number <-> path, each node's nlookup and refs
 *   fsd.cat_lock  fsd.cat (the pointer; a catalog is immutable once built)
 *   fsd.vt_lock   fsd.vtrees (the map; a vtree is immutable once built)
 * Refcounts of catalogs and vtrees are atomic.
 */
#ifndef STORKFS_FS_DAEMON_H
#define STORKFS_FS_DAEMON_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs/fs.h"

/* Entry and attribute timeouts of immutable things (version directories and their content). */
#define FSD_IMMUTABLE_TIMEOUT (24.0 * 3600)

/* ------------------------------------------------------------------------------------------ */
/* A string -> uint64 map (open addressing). Not locked: its owner locks. */

struct strmap {
	struct strmap_slot {
		char *key; /* owned; NULL = empty */
		uint64_t val;
	} * slots;
	size_t cap, n;
};

/** @return the value, or 0 when absent (0 is never stored). */
uint64_t strmap_get(const struct strmap *m, const char *key);
/** Insert key (copied) -> val (nonzero); the key must be absent. @return 0; -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, uint64_t val);
/** Free the keys and slots. Values are the caller's. */
void strmap_fini(struct strmap *m);

/* ------------------------------------------------------------------------------------------ */
/* The catalog: which packages and versions the verified metadata signs, rebuilt after each
 * refresh. */

struct cat_ver {
	char *version;
	char *role; /* the delegated role that signed it */
	char *keyid;
	uint8_t hash[VERIFY_HASH_LEN]; /* manifest */
};

struct cat_pkg {
	char *name;
	struct cat_ver *vers; /* ascending by fs_version_cmp: the last is `latest` */
	size_t n;
};

struct catalog {
	int refs;
	time_t built;
	struct cat_pkg *pkgs; /* by name (strcmp) */
	size_t n;
};

/** Build a catalog of what r's current verified metadata signs. @return 0; -errno;
 * STORK_E* from fs_repo_list (then nothing is built). */
int catalog_build(struct fs_repo *r, struct catalog **ret_c);
struct catalog *catalog_ref(struct catalog *c);
void catalog_unref(struct catalog *c);
const struct cat_pkg *catalog_pkg(const struct catalog *c, const char *name);
const struct cat_ver *catalog_ver(const struct cat_pkg *p, const char *version);

/* ------------------------------------------------------------------------------------------ */
/* A version's tree: its verified manifest with an index of each directory's children. */

struct vtree {
	int refs;
	char *name, *version;
	char *signer;		     /* "ROLE KEYID" */
	char mhash[VERIFY_HASH_HEX]; /* the manifest's SHA-256 */
	struct verify_manifest *m;
	/* Children of entry i are kids[first[i] .. first[i + 1]); i == m->n is the version
	 * directory itself. */
	uint32_t *first, *kids;
};

struct vtree *vtree_ref(struct vtree *t);
void vtree_unref(struct vtree *t);
/** The entry index of path in t, -1 when absent; "" is the version directory (m->n). */
long vtree_find(const struct vtree *t, const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Inodes. The number of a path is assigned on its first lookup and never changes or gets
 * reused while mounted (the path -> number map only grows). A node holds what callbacks need
 * and lives while the kernel holds lookups on it (nlookup, from entry replies, minus forgets)
 * or a callback uses it (refs). */

enum node_kind {
	N_ROOT,
	N_PKG,
	N_VER,
	N_LATEST,
	N_ENTRY,
};

struct inode {
	/* Immutable after creation: */
	fuse_ino_t ino;
	enum node_kind kind;
	const char *path; /* "", "hello", "hello/2.10-3", "hello/latest", "hello/2.10-3/usr/bin" */
	char *pkg, *ver;  /* N_PKG: pkg; N_VER, N_LATEST, N_ENTRY: pkg (and ver except LATEST) */
	struct vtree *vt; /* N_ENTRY: a reference */
	long idx;	  /* N_ENTRY: index into vt->m->entries */
	/* Protected by inodes.lock: */
	uint64_t nlookup;
	uint64_t refs;
};

struct inodes {
	pthread_mutex_t lock;
	struct strmap bypath; /* path -> number */
	struct inode_slot {
		char *path;	    /* owned */
		struct inode *node; /* NULL while the kernel holds no lookup */
	} * slots;		    /* indexed by number; 0 unused, 1 the root */
	size_t nslots, cap;
};

int inodes_init(struct inodes *t);
void inodes_fini(struct inodes *t);
/** The node of proto->path, made from proto (its pkg/ver strings are copied and its vt
 * referenced) when it has none; takes a ref (inodes_put) and, when lookup, a kernel lookup.
 * @return 0; -ENOMEM. */
int inodes_get(struct inodes *t, const char *path, const struct inode *proto, bool lookup,
	       struct inode **ret_n);
/** The live node numbered ino, with a ref; NULL when unknown or forgotten. */
struct inode *inodes_ref(struct inodes *t, fuse_ino_t ino);
void inodes_put(struct inodes *t, struct inode *n);
/** The kernel drops nlookup lookups. */
void inodes_forget(struct inodes *t, fuse_ino_t ino, uint64_t nlookup);
/** The number of a path that has one, 0 otherwise. */
fuse_ino_t inodes_number(struct inodes *t, const char *path);

/* ------------------------------------------------------------------------------------------ */
/* The daemon. */

struct fsd_conf {
	char *rootfile;
	char *storedir;
	char *policy;	  /* reserved for the trust policy (issue: trust) */
	unsigned timeout; /* seconds a callback may wait on the network */
	unsigned refresh; /* seconds between metadata refreshes */
	int allow_setuid;
	int show_help, show_version;
};

struct fsd {
	struct fsd_conf conf;
	bool foreground;
	struct store *store;
	struct fs_repo *repo;
	char repo_id[VERIFY_HASH_HEX];
	char **mirrors;
	size_t nmirrors;
	struct fuse_session *se;
	struct inodes inodes;
	pthread_mutex_t cat_lock;
	struct catalog *cat;
	pthread_mutex_t vt_lock;
	struct strmap vtrees; /* "pkg/ver" -> struct vtree * (one reference each) */
};

/** The current catalog, referenced (catalog_unref). Never NULL after startup. */
struct catalog *fsd_catalog(struct fsd *d);
/** Replace the current catalog (takes c's reference). */
void fsd_set_catalog(struct fsd *d, struct catalog *c);
/** The tree of pkg ver (referenced): from the cache, else its manifest is loaded and
 * verified (fs_repo_manifest: network when the store lacks it). @return 0; -ENOENT; STORK_E*;
 * -errno. */
int fsd_vtree(struct fsd *d, const char *pkg, const char *ver, struct vtree **ret_t);
/** Attributes of a node. @return 0; -ENOENT (a `latest` whose package is gone). */
int fsd_stat(struct fsd *d, const struct inode *n, struct stat *st);
/** The entry timeout for a node. */
double fsd_timeout(const struct fsd *d, const struct inode *n);

/** Log a line (stderr in the foreground, syslog once daemonized). */
void fsd_log(struct fsd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern const struct fuse_lowlevel_ops fsd_ops;

#endif
