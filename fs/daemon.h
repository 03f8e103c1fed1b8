/* fs/daemon.h: the storkfs daemon's internals, shared by fs/daemon.c (start-up, main),
 * fs/options.c (the command line), fs/refresh.c (the refresh thread), fs/prefetcher.c (the
 * prefetch thread), fs/log.c (the log, the start-up verdict), fs/inode.c (inode numbers and lookup
 * counts), fs/tree.c (what the tree holds: catalog of packages and versions, version trees,
 * attributes) and fs/ops.c (the FUSE low-level callbacks). Not part of the fs module's contract
 * (fs/fs.h): only the daemon includes it.
 *
 * The tree:
 *   /                        packages (verified metadata only)                    ino 1
 *   /<pkg>/                  versions as directories, `latest` -> highest version
 *   /<pkg>/<ver>/...         the version's signed manifest (fetched on first lookup or readdir
 *                            inside the version directory; objects only on open)
 *   /.slices/                with -o slices=DIR: one directory per slice (fs/slices.c)
 *   /.slices/<slice>/...     the same tree as /, as the slice's own policy accepts it
 *
 * Locks (never two at once, never held across network or a FUSE reply):
 *   inodes.lock   the inode table: numbers, their keys and the kernel's lookups
 *   fsd.cat_lock  fsd.cat (the pointer; a catalog is immutable once built)
 *   fsd.vt_lock   fsd.vtrees (the map; a vtree is immutable once built)
 *   fsd.slice_lock  fsd.slices (the table, each slice's catalog pointer)
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
/* A string -> uint64 map (open addressing, fs/strmap.c). Not locked: its owner locks. */

struct fsd_strmap {
	struct fsd_strmap_slot {
		char *key; /* owned; NULL = empty */
		uint64_t val;
	} * slots;
	size_t cap, n;
};

/** @return the value, or 0 when absent (0 is never stored). */
uint64_t fsd_strmap_get(const struct fsd_strmap *m, const char *key);
/** Insert key (copied) -> val (nonzero); the key must be absent. @return 0; -ENOMEM. */
int fsd_strmap_put(struct fsd_strmap *m, const char *key, uint64_t val);
/** Give a present key the value val (nonzero). @return the old value; 0 when absent. */
uint64_t fsd_strmap_replace(struct fsd_strmap *m, const char *key, uint64_t val);
/** Remove key when it maps to val (nothing otherwise). */
void fsd_strmap_remove(struct fsd_strmap *m, const char *key, uint64_t val);
/** Free the keys and slots. Values are the caller's. */
void fsd_strmap_fini(struct fsd_strmap *m);

/* ------------------------------------------------------------------------------------------ */
/* The catalog: which packages and versions the verified metadata signs, rebuilt after each
 * refresh. */

struct fsd_cat_ver {
	char *version;
	char *role; /* the delegated role that signed it */
	char *keyid;
	uint8_t hash[VERIFY_HASH_LEN]; /* manifest */
	uint64_t length;	       /* manifest bytes */
	bool plain; /* at its plain target path (no consistent snapshots: verify_target.plain) */
};

struct fsd_cat_pkg {
	char *name;
	struct fsd_cat_ver *vers; /* ascending by fs_version_cmp: the last is `latest` */
	size_t n;
};

struct fsd_catalog {
	int refs;
	time_t built;
	bool partial; /* some role failed to verify: what verified is shown, nothing is indexed */
	struct fsd_cat_pkg *pkgs; /* by name (strcmp) */
	size_t n;
};

/** Build a catalog of what r's current verified metadata signs. @return 0; -errno;
 * STORK_E* from fs_repo_list (then nothing is built). */
int fsd_catalog_build(struct fs_repo *r, struct fsd_catalog **ret_c);
/** The same with policy pol instead of r's own (a slice's; NULL: r's own). */
int fsd_catalog_build_for(struct fs_repo *r, const struct verify_policy *pol,
			  struct fsd_catalog **ret_c);
struct fsd;
/** The catalog of what r's state in use signs under the mount's own policy: from the node
 * store's catalog index when it holds one for this state (fs/catalog.c), else built
 * (fsd_catalog_build) and indexed. A damaged index is logged, refused and made again.
 * @return as fsd_catalog_build. */
int fsd_catalog_get(struct fsd *d, struct fsd_catalog **ret_c);
/** The same for policy pol (a slice's: as fsd_catalog_build_for), indexed under its digest. */
int fsd_catalog_get_for(struct fsd *d, const struct verify_policy *pol, struct fsd_catalog **ret_c);
struct fsd_catalog *fsd_catalog_ref(struct fsd_catalog *c);
void fsd_catalog_unref(struct fsd_catalog *c);
const struct fsd_cat_pkg *fsd_catalog_pkg(const struct fsd_catalog *c, const char *name);
const struct fsd_cat_ver *fsd_catalog_ver(const struct fsd_cat_pkg *p, const char *version);
/** Whether c signs pkg ver with this manifest hash (false: gone, or replaced by another). */
bool fsd_catalog_signs(const struct fsd_catalog *c, const char *pkg, const char *ver,
		       const uint8_t hash[VERIFY_HASH_LEN]);

/* ------------------------------------------------------------------------------------------ */
/* A version's tree: its verified manifest with an index of each directory's children. A tree
 * is one signed manifest (its hash): when a refresh replaces the manifest signed for its
 * version, or no longer signs the version, the tree is stale (fsd_current): whoever holds it
 * keeps it, but nothing new is looked up or opened through it (fs/README.md "Replaced
 * versions"). */

struct fsd_vtree {
	int refs;
	int64_t last_use; /* monotonic seconds of the last fsd_vtree that returned it (atomic) */
	char *name, *version;
	char *signer;		       /* "ROLE KEYID" */
	uint8_t hash[VERIFY_HASH_LEN]; /* the manifest's SHA-256 */
	/* The entries and their children, from the node store's tree index (store_tree_*: the
	 * version directory itself is entry store_tree_n(ix)); a slice's installed root's is
	 * built in memory from its merged manifest. */
	struct store_tree *ix;
	/* A slice's installed root (fs/installed.c): the generation it shows (0: a version's tree)
	 * and when that generation was made. Such a tree never goes stale: a new generation is a
	 * new tree under a new number of /.slices/NAME/root. */
	uint64_t gen;
	int64_t made;
	/* Fetch-ahead over the version's pack (fs/ahead.c), made at the first miss (atomic). */
	struct fsd_ahead *ahead;
};

struct fsd_vtree *fsd_vtree_ref(struct fsd_vtree *t);
void fsd_vtree_unref(struct fsd_vtree *t);
/** The entry index of path in t, -1 when absent; "" is the version directory (fsd_vtree_n). */
long fsd_vtree_find(const struct fsd_vtree *t, const char *path);
/** The number of entries (the version directory's index). */
size_t fsd_vtree_n(const struct fsd_vtree *t);
/** Entry i < fsd_vtree_n(t); its strings point into t, valid while t is held. */
void fsd_vtree_entry(const struct fsd_vtree *t, size_t i, struct verify_entry *ret_e);
struct fsd_inode;
/** n's entry, decoded into buf (returned), when n is an entry of a version; NULL otherwise. */
const struct verify_entry *fsd_node_entry(const struct fsd_inode *n, struct verify_entry *buf);

/* ------------------------------------------------------------------------------------------ */
/* Inodes. A directory or symlink is numbered by where it is (a version's entry: its view, its
 * manifest and its index in the manifest's tree; above the versions: its path), a regular file
 * by its content and attributes (object hash, mode, mtime: one inode, one page cache for every
 * path that reaches them), on the first lookup. A number keeps standing for its key while the
 * kernel holds it and, once forgotten, among the last FSD_INODES_IDLE forgotten ones (then the
 * key may get another number and the number another key: fs/README.md "Memory"); a path
 * inside a version whose manifest a refresh replaced gets a new number at its next lookup (the
 * old number stays with the old content, for whoever still holds it, so the kernel never
 * mixes the pages of the two). The table keeps no path or string for a version's entries: a
 * slot of a few bytes per number, and a table of numbers to find one by its key (fs/inode.c).
 * A callback gets its own struct fsd_inode (fsd_inodes_ref, fsd_inodes_get), freed by
 * fsd_inodes_put. */
#define FSD_INODES_IDLE 65536

enum fsd_node_kind {
	FSD_N_ROOT,
	FSD_N_PKG,
	FSD_N_VER,
	FSD_N_LATEST,
	FSD_N_ENTRY,
	FSD_N_SLICES, /* /.slices */
	FSD_N_SLICE,  /* /.slices/<slice>: the slice's root, as FSD_N_ROOT for its catalog */
	FSD_N_IROOT,  /* /.slices/<slice>/root: its installed root (vt: the generation's tree;
		       * below it FSD_N_ENTRY nodes of that tree) */
};

/* What a number stands for, as a callback sees it: immutable, the caller's own. */
struct fsd_inode {
	fuse_ino_t ino;
	enum fsd_node_kind kind;
	const char *path; /* "", "hello", "hello/2.10-3", "hello/latest"; NULL for FSD_N_ENTRY */
	const char *pkg, *ver; /* FSD_N_PKG: pkg; FSD_N_VER, FSD_N_LATEST, FSD_N_ENTRY: pkg (and
				  ver except LATEST) */
	const char
	    *slice; /* FSD_N_SLICE and everything below it: the slice's name; NULL elsewhere */
	struct fsd_vtree *vt;		/* FSD_N_ENTRY, FSD_N_IROOT: a reference */
	long idx;			/* FSD_N_ENTRY: an entry of vt (fsd_vtree_entry) */
	uint8_t vhash[VERIFY_HASH_LEN]; /* FSD_N_VER, FSD_N_ENTRY: the version's manifest hash */
};

enum fsd_slot_state {
	FSD_SLOT_FREE,	/* a number not given (or dropped, in freed) */
	FSD_SLOT_NAMED, /* above the versions' entries: p is its struct fsd_inode (bypath) */
	FSD_SLOT_DIR,	/* an entry but a regular file, keyed by (view, gen, idx): p its tree
			 * (referenced) while the kernel holds it, NULL after */
	FSD_SLOT_FILE,	/* a regular file, keyed by content: p its tree (referenced) while the
			 * kernel holds it, then a copy of its key (hash, mode, mtime) */
};

struct fsd_inodes {
	pthread_mutex_t lock;
	struct fsd_inode_slot {
		void *p;	  /* as state says */
		uint64_t nlookup; /* the kernel's lookups */
		uint32_t idx;	  /* FSD_SLOT_DIR, FSD_SLOT_FILE: its entry in the tree */
		uint32_t gen;	  /* the manifest it was numbered in (gens), 0 = none */
		uint16_t view;	  /* 0: the top level; v: the slice views[v - 1] */
		uint8_t kind;	  /* enum fsd_node_kind */
		uint8_t state;	  /* enum fsd_slot_state */
	} * slots;		  /* indexed by number; 0 unused, 1 the root */
	size_t nslots, cap;
	size_t nidle, idle_max; /* numbers the kernel does not hold; at most idle_max are kept */
	size_t hand;		/* where the search for an idle number to drop goes on */
	uint32_t *freed;	/* dropped numbers, given again first */
	size_t nfreed, freedcap;
	struct fsd_strmap bypath; /* FSD_SLOT_NAMED: path -> number */
	uint32_t *keys; /* FSD_SLOT_DIR, FSD_SLOT_FILE: numbers by key (open addressing) */
	size_t keycap, nkeys;
	struct fsd_strmap gens;	   /* manifest hash (hex) -> its number, 1.. */
	struct fsd_strmap vbyname; /* slice name -> its view number, 1.. */
	char **views;		   /* the slice names, never freed before the table */
	size_t nviews;
};

int fsd_inodes_init(struct fsd_inodes *t);
void fsd_inodes_fini(struct fsd_inodes *t);
/** The node of proto (path: its path, for the kinds above a version's entries; unused for
 * FSD_N_ENTRY), numbered when it has no number; takes a kernel lookup when lookup. The node
 * returned is the caller's (fsd_inodes_put). @return 0; -ENOMEM. */
int fsd_inodes_get(struct fsd_inodes *t, const char *path, const struct fsd_inode *proto,
		   bool lookup, struct fsd_inode **ret_n);
/** The node numbered ino while the kernel holds it, the caller's; NULL when unknown or
 * forgotten (or out of memory). */
struct fsd_inode *fsd_inodes_ref(struct fsd_inodes *t, fuse_ino_t ino);
/** Free a node of fsd_inodes_get or fsd_inodes_ref (NULL too). */
void fsd_inodes_put(struct fsd_inodes *t, struct fsd_inode *n);
/** The kernel drops nlookup lookups. */
void fsd_inodes_forget(struct fsd_inodes *t, fuse_ino_t ino, uint64_t nlookup);
/** The number of a path above the versions' entries (a package, a version, a slice) that has
 * one, 0 otherwise (a version's entries keep no path). */
fuse_ino_t fsd_inodes_number(struct fsd_inodes *t, const char *path);
/** The number of n's parent directory when it has one; FUSE_ROOT_ID otherwise. */
fuse_ino_t fsd_inodes_parent(struct fsd_inodes *t, const struct fsd_inode *n);
/** The numbers the kernel holds whose node pick chooses (n: a view of the node, valid during
 * the call; pick runs under the table's lock and must not call into it), into a malloc'd
 * *ret_inos. @return how many; 0 with *ret_inos NULL on -ENOMEM. */
size_t fsd_inodes_pick(struct fsd_inodes *t, bool (*pick)(const struct fsd_inode *n, void *ctx),
		       void *ctx, fuse_ino_t **ret_inos);

/* ------------------------------------------------------------------------------------------ */
/* Jobs: work that may wait on the network (a manifest, an object) runs on a job thread, and
 * the FUSE callback that needs it waits at most conf.timeout seconds. Callers that need the
 * same thing (the same key) share one job. A job that outlives its callers finishes in the
 * background: what it fetched lands in the store and helps the next caller. */

struct fsd;

struct fsd_job_ops {
	/** The work, on the job's thread. Leaves a detail (stork_errorf) on failure. */
	int (*run)(struct fsd *d, void *arg, void **ret_result);
	void (*arg_free)(void *arg);
	/** Give a waiter its own reference to the result; drop the job's. NULL: no result. */
	void *(*result_ref)(void *res);
	void (*result_unref)(void *res);
};

struct fsd_jobs {
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* CLOCK_MONOTONIC; broadcast whenever a job ends */
	struct fsd_job *list; /* running jobs */
	unsigned running;
};

int fsd_jobs_init(struct fsd_jobs *j);
/** Wait up to `secs` for every running job to end. @return 0; -ETIMEDOUT (some still run:
 * then nothing they use may be freed). */
int fsd_jobs_drain(struct fsd_jobs *j, unsigned secs);
void fsd_jobs_fini(struct fsd_jobs *j);

/** Run (or join) the job `key`, waiting at most conf.timeout seconds. arg is consumed.
 * @param what names the work for messages ("hello 2.10-3: usr/bin/hello").
 * @param[out] ret_result (may be NULL) the result, referenced for the caller; NULL on failure.
 * @return run's result; -ETIMEDOUT when the deadline passed first (detail says so); -errno. */
int fsd_job(struct fsd *d, const char *key, const char *what, const struct fsd_job_ops *ops,
	    void *arg, void **ret_result);
/** Start the job `key` (or leave the one running) without waiting for it. arg is consumed.
 * @return 0; -EBUSY (every job slot is taken: nothing started); -errno. */
int fsd_job_start(struct fsd *d, const char *key, const struct fsd_job_ops *ops, void *arg);

/* ------------------------------------------------------------------------------------------ */
/* Fetch-ahead over version packs (fs/ahead.c; fs/README.md "Cold reads"). */

struct fsd_ahead;
void fsd_ahead_free(struct fsd_ahead *a);
/** An open of entry idx of vt missed the store: when the version's misses come in pack order,
 * fetch the object with the ones after it (a window of the pack) and wait for it (only it),
 * within the timeout. @return 0 (done: the object is stored unless the pack lied about it or
 * the window failed: then fetch it on its own); -ENOENT (not for fetch-ahead: fetch it on its
 * own); -ETIMEDOUT (detail set). */
int fsd_ahead_miss(struct fsd *d, struct fsd_vtree *vt, long idx, const char *what);
/** An open of entry idx of vt found it stored: past the middle of the last window, the next
 * one starts in the background. */
void fsd_ahead_hit(struct fsd *d, struct fsd_vtree *vt, long idx);

/* ------------------------------------------------------------------------------------------ */
/* The daemon. */

/* Counters for `stork status` (updated with __atomic builtins). */
struct fsd_counters {
	uint64_t opens;		/* successful opens of files */
	uint64_t hits;		/* ... whose object was in the store */
	uint64_t misses;	/* ... that had to wait for a transfer */
	uint64_t fetched;	/* objects this mount transferred */
	uint64_t fetched_bytes; /* their bytes on the wire */
	uint64_t errors;	/* opens and directory loads that failed */
	uint64_t timeouts;	/* ... of which by the timeout */
	uint64_t trees_loaded;	/* version trees built */
	uint64_t trees_evicted;
	uint64_t trees_indexed;	     /* ... of which read from the store's tree index */
	uint64_t trees_reindexed;    /* damaged tree indexes built again */
	uint64_t catalogs_indexed;   /* catalogs read from the store's catalog index */
	uint64_t catalogs_reindexed; /* damaged catalog indexes built again */
	uint64_t refused;	     /* lookups, opens and listings refused: stale past max_stale */
	uint64_t rotten;    /* opens that found the store's object not hashing to its name */
	uint64_t pt_opens;  /* opens the kernel serves from the store object (passthrough) */
	uint64_t assembled; /* whole objects of chunked files made from their chunks (whole.c) */
};

/* The top-level roles, in the order xattrs and status list them. */
#define FSD_NROLES 4
extern const char *const fsd_roles[FSD_NROLES];

/* The state of the metadata, for xattrs and `stork status`, noted after each refresh (so
 * that reading it never waits for the repository's lock). Under fsd.status_lock. */
struct fsd_refresh {
	time_t last_try, last_ok; /* 0 = never */
	int result;		  /* of the last try: 0 fresh, 1 offline, <0 failed */
	char detail[512];	  /* why it was not fresh */
	time_t expires;		  /* the earliest expiry of the state in use; 0 = none */
	struct fsd_role {
		bool known;
		uint64_t version;
		time_t expires;
	} roles[FSD_NROLES]; /* as fsd_roles */
};

/* At most this many -o exec= options. */
#define FSD_MAX_EXEC	 8
#define FSD_MAX_PREFETCH 16

struct fsd_conf {
	char *rootfile;
	char *storedir;
	char *policy;	       /* -o policy=FILE; re-read on SIGHUP and each refresh */
	char *slices;	       /* -o slices=DIR: one NAME.policy per slice (fs/slices.c) */
	unsigned timeout;      /* seconds a callback may wait on the network */
	unsigned refresh;      /* seconds between metadata refreshes */
	unsigned mirror_retry; /* seconds a failed mirror goes to the back of the order */
	unsigned max_trees;    /* version trees kept cached */
	char *max_stale_arg;   /* -o max_stale= as given */
	int64_t max_stale;     /* seconds stale metadata is still served (FS_STALE_FOREVER) */
	int allow_setuid;
	int suid;	    /* -o suid (for libfuse): the kernel honours setuid bits */
	int no_allow_other; /* -o noallow_other: a root mount for root only */
	int stack;	    /* -o stack: mount on a storkfs mount too */
	int no_passthrough; /* -o nopassthrough: every read through the daemon (fs/passthrough.c) */
	int show_help, show_version;
	char *netrc; /* -o netrc=FILE: credentials of http(s) sources (fetch_opts.netrc) */
	/* The transport chain (fetch/fetch.h struct fetch_opts; fs/README.md). 0 or NULL = the
	 * fetcher's default. */
	char *proxies;		      /* -o proxy=SPEC, CernVM-FS syntax */
	unsigned proxy_retry;	      /* seconds a failed proxy is skipped */
	char **peers;		      /* -o peer=URL, each one, in order (fetch_opts.peers) */
	size_t npeers;		      /* their number */
	unsigned peer_retry;	      /* seconds a failed peer is skipped */
	char *exec[FSD_MAX_EXEC + 1]; /* -o exec=SCHEME=COMMAND, NULL-terminated */
	size_t nexec;
	char *prefetch[FSD_MAX_PREFETCH]; /* -o prefetch=NAME[=VERSION|=all] */
	size_t nprefetch;
	unsigned connect_timeout; /* seconds per connection attempt */
	unsigned low_speed_limit; /* bytes/s below which a transfer counts as stalled */
	unsigned low_speed_time;  /* seconds below low_speed_limit before it is dropped;
				   * 0 = min(10, max(1, timeout / 3)) (fsd_low_speed_time) */
	uint64_t store_max;	  /* -o store_max=SIZE: the store's quota, set at start */
	int store_max_set;
};

#define FSD_PT_BUCKETS 256 /* fs/passthrough.c: open inodes, by number */
struct pt_rec;

struct fsd {
	struct fsd_conf conf;
	bool foreground;
	/* Detached but not yet mounted: stderr is still the caller's, so a reason not to
	 * mount goes there as well as to syslog. Written by the main thread only; lines of
	 * other threads go to syslog alone while it is set (the main thread points stderr at
	 * /dev/null when it reports, and a line in flight must not reach the caller's
	 * terminal after storkfs has returned). */
	bool starting;
	pthread_t main_thread;
	/* libfuse's connection options given with -o (max_readahead=, max_write=, ...:
	 * fuse_parse_conn_info_opts), applied in the init callback; NULL: none. */
	struct fuse_conn_info_opts *conn_opts;
	struct store *store;
	struct fs_repo *repo;
	char repo_id[VERIFY_HASH_HEX];
	char **mirrors;
	size_t nmirrors;
	struct fuse_session *se;
	struct fsd_inodes inodes;
	pthread_mutex_t cat_lock;
	struct fsd_catalog *cat;
	pthread_mutex_t vt_lock;
	struct fsd_strmap vtrees; /* "pkg/ver" -> struct fsd_vtree * (one reference each) */
	struct fsd_jobs jobs;
	struct fsd_counters counters;
	time_t started;
	char *mountpoint;
	pthread_mutex_t status_lock;
	struct fsd_refresh refresh;
	struct fsd_strmap sources; /* object hex -> who delivered it: index + 1 in mirrors, or
				    * nmirrors + index + 1 in conf.peers */
	bool no_opendir;	   /* the kernel opens directories without asking (set at init) */
	bool stopping;		   /* unmounted: transfers are being cancelled (atomic) */
	/* STORKFS_BENCH_UNCHECKED set (tests/bench/mount only): objects are served without
	 * their hash checked at the first open, to measure what the check costs. */
	bool unchecked;
	/* -o prefetch=: its thread runs after the mount is ready and after each refresh. */
	pthread_mutex_t pf_lock;
	pthread_cond_t pf_cond;
	bool pf_pending, pf_quit; /* pf_lock */
	int pf_cancel;		  /* atomic: set at unmount */
	/* Wall-clock second from which nothing under the root is served (the state in use
	 * expired more than max_stale ago); INT64_MAX = no limit. Atomic: read by every
	 * lookup, open and listing (fsd_serving), written after each refresh. */
	int64_t stop_at;
	bool stopped; /* the refresh thread's view: past stop_at at its last look */
	/* -o slices=: the slices loaded from conf.slices, by name (fs/slices.c). */
	pthread_mutex_t slice_lock;
	struct fsd_slice **slices; /* slice_lock; each slice's cat too */
	size_t nslices;
	/* The slices' installed roots (fs/installed.c): slice name -> struct fsd_vtree * of its
	 * current generation (one reference each). Under root_lock. */
	pthread_mutex_t root_lock;
	struct fsd_strmap roots;
	/* FUSE passthrough (fs/passthrough.c): the INIT exchange (the first request, on one
	 * thread, before any other), then the open files by inode under lock. */
	struct {
		bool wanted;	      /* not -o nopassthrough */
		bool init_done;	      /* atomic */
		bool offered;	      /* the kernel's INIT offered it */
		uint64_t init_unique; /* the INIT request's */
		bool on;	      /* atomic: negotiated, and not turned off since */
		pthread_mutex_t lock;
		struct pt_rec *recs[FSD_PT_BUCKETS]; /* lock */
	} pt;
	/* fs/whole.c: its jobs tell the kernel to drop pages until the session ends. */
	struct {
		pthread_mutex_t lock;
		bool stopped; /* lock */
		/* CLOCK_MONOTONIC seconds: no assembly queued before (the store had no room) */
		int64_t quiet_until; /* atomic */
	} whole;
};

/* ------------------------------------------------------------------------------------------ */
/* FUSE passthrough (fs/passthrough.c; fs/README.md "Passthrough"). */

/** Before the session runs: its I/O through fs/passthrough.c, unless -o nopassthrough. */
int fsd_pt_setup(struct fsd *d);
/** An open of inode ino whose content is the store object fd (checked): the backing id the
 * reply carries (> 0), or 0: served through the daemon (passthrough off, or the inode's other
 * opens are). fd -1: an open with no one object to hand over (a file stored in chunks, whose
 * inode the same bytes stored whole share): it joins the inode's passthrough opens if there
 * are any. Each call that returns >= 0 is ended by one fsd_pt_close with passthrough =
 * (returned id > 0). -EIO: the inode's backing object changed on disk since it was registered
 * (logged); -ENOMEM. */
int32_t fsd_pt_open(struct fsd *d, fuse_ino_t ino, int fd);
/** @return whether that was the inode's last open (false with -o nopassthrough). */
bool fsd_pt_close(struct fsd *d, fuse_ino_t ino, bool passthrough);
/** Run fn(d, ino) if inode ino has no open file (no read of it can be in flight then), holding
 * off new opens of it meanwhile. @return whether fn ran. */
bool fsd_pt_unopened(struct fsd *d, fuse_ino_t ino, void (*fn)(struct fsd *d, fuse_ino_t ino));
/** fuse_reply_open with the backing id (0: none) fsd_pt_open gave. */
int fsd_pt_reply_open(fuse_req_t req, struct fuse_file_info *fi, int32_t id);
/** Whether the kernel took passthrough at INIT and no backing file was refused for good. */
bool fsd_pt_on(struct fsd *d);
void fsd_pt_fini(struct fsd *d);

/* ------------------------------------------------------------------------------------------ */
/* Slices (fs/slices.c, fs/slices_load.c; fs/README.md "Slices"): named views of the one verified
 * state, each with its own trust policy, under /.slices/<name>/. The refresh thread alone loads
 * them and alone touches a slice's policy; the rest reaches a slice by its name under slice_lock.
 */

struct verify_json;

struct fsd_slice {
	char *name;
	char *file;		   /* DIR/NAME.policy */
	struct verify_policy *pol; /* the refresh thread's */
	struct fsd_catalog *cat;   /* slice_lock */
	/* Its counters (atomic): */
	uint64_t opens, bytes_read, fetched, refused;
	struct fsd_control *control; /* slice_lock: its group's control list (fs/control.c) */
	char converge_err[512];	     /* the refresh thread's: the last failure to install it */
};

/* Central package control (fs/control.c): the control list a slice's policy follows. */
struct fsd_control;
/** After a refresh, on the refresh thread: fetch and verify the list of the group s's policy
 * follows (nothing when it follows none), make it s's wanted list (a failure keeps the one
 * verified before, and is logged with its file, role and key), and move s to it. */
void fsd_slice_control(struct fsd *d, struct fsd_slice *s);
void fsd_control_free(struct fsd_control *c);
/** The "control" member of a slice's status: group, list_version, role, key, wanted, ...;
 * NULL when c is NULL (no group followed) or on -ENOMEM. Under slice_lock. */
struct verify_json *fsd_control_json(const struct fsd_control *c);

enum fsd_slice_counter { FSD_SC_OPENS, FSD_SC_BYTES, FSD_SC_FETCHED, FSD_SC_REFUSED };

/** Load the slices from conf.slices again (and build their catalogs from the state in use):
 * new files add slices, gone files remove them, a file that does not parse keeps its slice as
 * it was (logged with the file, line and problem). Later than start-up, the kernel forgets
 * what changed. Refresh thread (or start-up) only. */
void fsd_slices_reload(struct fsd *d, bool startup);
/** Free a slice (NULL too). */
void fsd_slice_free(struct fsd_slice *s);
/** Free every slice (at exit). */
void fsd_slices_fini(struct fsd *d);
/** Whether slice `name` exists now. */
bool fsd_slice_exists(struct fsd *d, const char *name);
/** The names of the slices now, sorted (each and the array malloc'd). @return 0; -ENOMEM. */
int fsd_slice_names(struct fsd *d, char ***ret_names, size_t *ret_n);
/** Add n to a slice's counter (nothing when the slice is gone). */
void fsd_slice_count(struct fsd *d, const char *name, enum fsd_slice_counter which, uint64_t n);
/** A slice's status (user.storkfs.status on its root; one element of "slices" in the node's
 * status) as a JSON object. @return NULL when gone or out of memory. */
struct verify_json *fsd_slice_json(struct fsd *d, const char *name);

/** The tree of slice's current generation (fs/installed.c, fs/README.md "Installing"),
 * referenced: read from the node store's generation counter at each call (one read
 * transaction), built from the generation's manifests when it changed. @return 0; -ENOENT
 * (nothing installed); -EEXIST / STORK_E* (the generation's trees do not merge, a manifest
 * missing: detail); -errno. Thread-safe. */
int fsd_installed(struct fsd *d, const char *slice, struct fsd_vtree **ret_t);
/** Drop the cached installed roots (at exit). */
void fsd_installed_fini(struct fsd *d);

/** Note an event in a counter. */
#define FSD_COUNT(d, field, n) __atomic_add_fetch(&(d)->counters.field, (n), __ATOMIC_RELAXED)

/** The status as JSON (user.storkfs.status). @return a malloc'd string; NULL on -ENOMEM. */
char *fsd_status_json(struct fsd *d);

/* ---- xattr.c: the extended attributes (fs/README.md "Extended attributes") ---- */

/** The value of attribute name of n into buf (cap bytes: 16 KiB holds every value).
 * @return its length; -ENODATA (n has no such attribute); -E2BIG; -ENOMEM. Thread-safe. */
int fsd_xattr_value(struct fsd *d, const struct fsd_inode *n, const char *name, char *buf,
		    size_t cap);
/** The names of n's attributes, each NUL-terminated, into buf (512 bytes hold them all).
 * @return their total length. Thread-safe. */
size_t fsd_xattr_names(struct fsd *d, const struct fsd_inode *n, char *buf);
/** The getxattr and listxattr callbacks of the mount (in fs/ops.c's table). */
void fsd_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fsd_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
/** An object was transferred into the store for this mount (ctx: the struct fsd): counted
 * (objects, size bytes on the wire) and who delivered it (a mirror or peer URL as given)
 * remembered for fsd_source. Thread-safe. */
void fsd_fetched(void *ctx, const uint8_t id[VERIFY_HASH_LEN], uint64_t size, const char *mirror);
/** Where an object came from: a mirror or peer URL (without its password: fetch_url_shown),
 * "store" (in the node store before this mount needed it) or "none" (not in the store),
 * written into buf (len bytes, cut if needed). @return buf. */
const char *fsd_source(struct fsd *d, const uint8_t id[VERIFY_HASH_LEN], char *buf, size_t len);
/** Whether the mount may serve anything under its root now. @return 0; -EKEYEXPIRED when
 * the metadata in use expired more than max_stale ago (fs/README.md "Stale metadata"). */
int fsd_serving(struct fsd *d);

/* The command line, parsed (fs/options.c). */
struct fsd_args {
	struct fsd_conf conf;
	char **nonopts; /* the mirrors, then the mountpoint */
	size_t n;
	int bad;
	int allow_other; /* -o allow_other given */
};

/** Parse and check the command line into p (zeroed by the caller; fsd_args_fini frees it in
 * any case) and args and cmd (libfuse's options). Says what is wrong on stderr.
 * @return 0; 1: --help or --version, printed; -1: bad options (said so). */
int fsd_args_parse(int argc, char **argv, struct fuse_args *args, struct fuse_cmdline_opts *cmd,
		   struct fsd_args *p);
void fsd_args_fini(struct fsd_args *p);
/** The fetch options of the transport chain from the mount's options (o points into c). */
void fsd_chain_opts(const struct fsd_conf *c, struct fetch_opts *o);

/** The low-speed window of a mount whose calls wait at most timeout seconds, when
 * low_speed_time= is not given: min(10, max(1, timeout / 3)), so that a mirror trickling
 * below low_speed_limit is dropped early enough for the next source to deliver within the
 * same open (fs/README.md, options). */
unsigned fsd_low_speed_time(unsigned timeout);

/** Monotonic seconds. */
int64_t fsd_now(void);

/** The current catalog, referenced (fsd_catalog_unref). Never NULL after startup. */
struct fsd_catalog *fsd_catalog(struct fsd *d);
/** The current catalog of a slice (NULL: the node's own, as fsd_catalog), referenced; NULL
 * when that slice is gone. */
struct fsd_catalog *fsd_catalog_of(struct fsd *d, const char *slice);
/** Replace the current catalog (takes c's reference). */
void fsd_set_catalog(struct fsd *d, struct fsd_catalog *c);
/** The tree of pkg ver as the current catalog signs it (referenced): from the cache, else its
 * manifest is loaded and verified (fs_repo_target_manifest: network when the store lacks it).
 * @return 0; -ESTALE (the catalog no longer signs pkg ver); STORK_E*; -errno. */
int fsd_vtree(struct fsd *d, const char *pkg, const char *ver, struct fsd_vtree **ret_t);
/** fsd_vtree as slice's catalog signs it (NULL: the node's); -ESTALE also when it is gone. */
int fsd_vtree_in(struct fsd *d, const char *slice, const char *pkg, const char *ver,
		 struct fsd_vtree **ret_t);
/** Whether the current catalog still signs pkg ver with the manifest hash. */
bool fsd_current(struct fsd *d, const char *pkg, const char *ver,
		 const uint8_t hash[VERIFY_HASH_LEN]);
/** The same for a slice's catalog (NULL: the node's); false when the slice is gone. */
bool fsd_current_in(struct fsd *d, const char *slice, const char *pkg, const char *ver,
		    const uint8_t hash[VERIFY_HASH_LEN]);
/** user.storkfs.signer of t's entries into buf: "ROLE KEYID" as the current catalog signs t's
 * manifest (after a key rotation: the new key), else as t was signed. @return snprintf's. */
int fsd_signer(struct fsd *d, const struct fsd_vtree *t, char *buf, size_t cap);
/** After a refresh: drop from the cache the trees the catalog c no longer signs (whoever holds
 * one keeps it). */
void fsd_retire_trees(struct fsd *d, const struct fsd_catalog *c);
/** Attributes of a node. @return 0; -ENOENT (a `latest` whose package is gone). */
int fsd_stat(struct fsd *d, const struct fsd_inode *n, struct stat *st);
/** The entry timeout for a node. */
double fsd_timeout(const struct fsd *d, const struct fsd_inode *n);

/* fs/object.c, fs/chunk.c: the objects behind files */

/** The store's object id (never fetched), its content checked against its hash once per file
 * in this run (the bench alone turns that off, to measure it): store_object_open_checked.
 * @param[out] ret_fd the caller closes it. @return 0; -ENOENT; STORK_EBADHASH; -errno. */
int fsd_stored_open(struct fsd *d, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd);
/** The store's object for e (hash, size, zsize: a file or a chunk), fetched within the timeout
 * when the store lacks it (a job keyed by its hash). With vt (e being its entry idx), the
 * objects after it come along when the version is read in pack order (fs/ahead.c); vt is NULL
 * for a chunk and for a slice's installed root. count: an open (hits and misses counted), not
 * a chunk's read. ret_fetched set when it was fetched.
 * @return 0; -ENOENT / -ETIMEDOUT / STORK_E* (nobody delivered it); -errno. */
int fsd_object_open(struct fsd *d, struct fsd_vtree *vt, long idx, const struct verify_entry *e,
		    const char *what, int *ret_fd, bool *ret_fetched, bool count);
/** Start fetching e's object (a whole file's) in the background, unless it is stored or its
 * job runs: an open of it then joins that job. Nothing is reported (a job slot short, a
 * failure: its reader fetches it). Thread-safe. */
void fsd_object_fetch_start(struct fsd *d, const struct verify_entry *e, const char *what);

struct fsd_chunked; /* an open chunked file (fs/chunk.c) */

/** Open the chunked file e (e->nchunks > 0): a copy of its chunk list; nothing is fetched.
 * what ("pkg ver: path") names it in the log. @return 0; -ENOMEM. */
int fsd_chunked_open(const struct verify_entry *e, const char *what, const char *slice,
		     struct fsd_chunked **ret_h);
/** Answer a read of up to size bytes at off: the chunks the range touches are opened (fetched
 * when missing, each checked against its own hash) and spliced into the reply. Replies only on
 * success (0); on failure the caller replies. Thread-safe for one h.
 * @return 0; the error of the first chunk that could not be had (detail set); -errno. */
int fsd_chunked_reply(fuse_req_t req, struct fsd *d, struct fsd_chunked *h, size_t size,
		      uint64_t off);
/** Close the chunk descriptors and free h. Accepts NULL. */
void fsd_chunked_free(struct fsd_chunked *h);
/** The file h reads: ret_e's hash, size, chunks and nchunks (valid while h is), and its name
 * for the log. */
void fsd_chunked_entry(const struct fsd_chunked *h, struct verify_entry *ret_e,
		       const char **ret_what);

/* fs/whole.c: the whole object of a chunked file read whole (fs/README.md "Memory") */

/** At the last release of inode ino, a chunked file (e: its hash, size and chunks): when
 * passthrough is on, the whole object is not stored and every chunk is (index look-ups, no
 * fetch), start a job that assembles the whole object from the chunks. Nothing is waited for;
 * failures are logged by the job. */
void fsd_whole_queue(struct fsd *d, fuse_ino_t ino, const struct verify_entry *e, const char *what);
/** The whole object of the chunked file e, when the store has it (never fetched), checked as
 * fsd_object_open's are. @param[out] ret_fd the caller closes it. @return 0; -ENOENT (not
 * stored, or stored wrong: counted as rotten, logged, its entry dropped); -errno. */
int fsd_whole_open(struct fsd *d, const struct verify_entry *e, const char *what, int *ret_fd);
/** The session ends: no job tells the kernel anything from now on. */
void fsd_whole_stop(struct fsd *d);

/* fs/log.c */

/** Log a line (stderr in the foreground, syslog once daemonized, both while a daemon starts). */
void fsd_log(struct fsd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** fetch_opts.log: a line of the fetcher into the log (ctx: the struct fsd). */
void fsd_fetch_log(void *ctx, const char *line);
/** Tell systemd (Type=notify) state ("READY=1"); nothing when not run by systemd. */
void fsd_notify_systemd(const char *state);
/** Fork: the parent waits for the child's verdict on *ret_fd (fsd_report_ready) and exits
 * with it; the child returns. @return 0 (in the child); -errno. */
int fsd_detach(int *ret_fd);
/** Give the waiting parent the exit code (fd < 0: none waits), after pointing stdin, stdout
 * and stderr at /dev/null. Closes fd. */
void fsd_report_ready(int fd, int code);

/* fs/refresh.c */

/** Make the pipe that wakes the refresh thread (before SIGHUP's handler). @return 0; -errno. */
int fsd_refresh_pipe(void);
/** The SIGHUP handler: refresh now. */
void fsd_on_sighup(int sig);
/** The refresh thread (arg: the struct fsd). */
void *fsd_refresh_thread(void *arg);
/** Tell the refresh thread to quit. @return 0; -1 (it could not be told: do not join it). */
int fsd_refresh_quit(void);
/** Refresh the metadata and swap in the new catalog; later than start-up, the kernel forgets
 * what changed. @return 0 (at start-up, also when the refresh failed but the cached state
 * lists packages); the refresh's error (later than start-up; the state in use is listed again);
 * the listing's error (then the catalog is unchanged). */
int fsd_refresh_now(struct fsd *d, bool startup);
/** Say in the log whether the metadata in use is stale and still served. */
void fsd_stale_report(struct fsd *d, bool startup);

/* fs/prefetcher.c */

/** The prefetch thread (arg: the struct fsd). */
void *fsd_prefetch_thread(void *arg);
/** Ask the prefetch thread for a run (nothing without -o prefetch=). */
void fsd_prefetch_kick(struct fsd *d);
/** Cancel a run, end the thread and join it. */
void fsd_prefetch_stop(struct fsd *d, pthread_t thread);

extern const struct fuse_lowlevel_ops fsd_ops;

#endif
