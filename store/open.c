/* store/open.c: opening the node store: who may own it, read-only stores, and the LMDB
 * environment (one per index per process).
 *
 * The store is a trust boundary: a mount serves and runs what objects/ holds and what the
 * index says, so whoever may write there decides what root's mount serves. store_open refuses
 * a store whose directory, objects/, tmp/, index/ or index files are not owned by the caller
 * (its effective uid) or may be written by group or others, and a STOREDIR that group or
 * others may list (store/README.md, "Who may own a store"). The checks are made on the
 * descriptors kept afterwards, and LMDB opens its files through /proc/self/fd/<index/>, so a
 * rename in a directory above cannot swap a checked directory for another meanwhile.
 *
 * LMDB maps its files, and a page it cannot back faults (SIGBUS) instead of failing: so the
 * lock file is allocated before LMDB maps it (a sparse one on a full file system faults on
 * the first write), and a data.mdb shorter than its newest meta page says (cut short) is
 * refused before any page past the meta pages is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/node.h"

#define MAP_INITIAL ((size_t)1 << 30)
#define MAP_MAX	    ((size_t)64 << 30)
#define MAP_MIN	    ((size_t)64 << 10)
/* What LMDB makes its lock file with NODE_MAXREADERS slots: (readers - 1) * 64 + 192 bytes on
 * 64-bit Linux. Were it larger, LMDB would extend the file itself (still working, only the
 * extension sparse); were it smaller, LMDB takes the size it finds and has more slots. */
#define LOCK_BYTES ((off_t)(NODE_MAXREADERS - 1) * 64 + 192)

#define FORMAT_KEY   "format"
#define FORMAT_VALUE "1"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node_env *registry; /* under registry_lock */

/* ------------------------------------------------------------------------------------------ */
/* Who may own a store. */

/* Refuse what fd is (dir/rel, rel NULL for STOREDIR itself) unless the caller owns it and no
 * one else may write to it; STOREDIR must also not be listable by others. @return 0; -EPERM
 * (detail names the file and the fix); -errno. */
static int check_trust(const char *dir, const char *rel, int fd)
{
	const char *sep = rel ? "/" : "", *name = rel ? rel : "";
	unsigned uid = (unsigned)geteuid();
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		stork_errorf("%s%s%s: %s", dir, sep, name, strerror(-r));
		return r;
	}
	if (st.st_uid != uid) {
		stork_errorf(
		    "%s%s%s: owned by uid %u, but this process runs as uid %u, and whoever "
		    "owns a node store decides what it serves: if the store is yours, "
		    "`chown -R %u %s` and `stork fsck --repair %s` (it re-hashes what the other "
		    "user could change); else use another directory",
		    dir, sep, name, (unsigned)st.st_uid, uid, uid, dir, dir);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		stork_errorf("%s%s%s: mode %04o lets other users write to it, and so swap what the "
			     "store serves: `chmod %s %s%s%s` and `stork fsck --repair %s`",
			     dir, sep, name, (unsigned)(st.st_mode & 07777), rel ? "go-w" : "0700",
			     dir, sep, name, dir);
		return -EPERM;
	}
	if (!rel && (st.st_mode & (S_IRGRP | S_IROTH))) {
		stork_errorf("%s: mode %04o lets other users list and read every stored object: "
			     "`chmod 0700 %s` (0711 is allowed too, for a peer's web server)",
			     dir, (unsigned)(st.st_mode & 07777), dir);
		return -EPERM;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The LMDB environment. */

static int open_dbis(struct node_env *e, MDB_txn *txn, void *ctx)
{
	MDB_val k = {sizeof(FORMAT_KEY) - 1, (void *)FORMAT_KEY}, v;
	unsigned create = e->readonly ? 0 : MDB_CREATE;
	MDB_dbi info, main_dbi;
	MDB_stat st;
	int rc;

	(void)ctx;
	rc = mdb_dbi_open(txn, "storkfs", 0, &info);
	if (rc == MDB_NOTFOUND && e->readonly) {
		stork_errorf("%s: not a storkfs index yet, and a read-only store cannot be made "
			     "one",
			     e->file);
		return STORK_EFORMAT;
	}
	if (rc == MDB_NOTFOUND) {
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
		if (rc == 0)
			rc = mdb_stat(txn, main_dbi, &st);
		if (rc != 0)
			return rc;
		if (st.ms_entries > 0) {
			stork_errorf("%s: not a storkfs index (an LMDB environment of something "
				     "else)",
				     e->file);
			return STORK_EFORMAT;
		}
		rc = mdb_dbi_open(txn, "storkfs", MDB_CREATE, &info);
		if (rc != 0)
			return rc;
		v.mv_size = sizeof(FORMAT_VALUE) - 1;
		v.mv_data = (void *)FORMAT_VALUE;
		rc = mdb_put(txn, info, &k, &v, 0);
		if (rc != 0)
			return rc;
	} else if (rc != 0) {
		return rc;
	} else {
		rc = mdb_get(txn, info, &k, &v);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if (rc == MDB_NOTFOUND || v.mv_size != sizeof(FORMAT_VALUE) - 1 ||
		    memcmp(v.mv_data, FORMAT_VALUE, v.mv_size) != 0) {
			stork_errorf("%s: index format %.*s, but this storkfs reads format "
				     "%s only",
				     e->file, rc == 0 && v.mv_size < 16 ? (int)v.mv_size : 1,
				     rc == 0 && v.mv_size < 16 ? (const char *)v.mv_data : "?",
				     FORMAT_VALUE);
			return STORK_EFORMAT;
		}
	}
	e->info = info;
	rc = mdb_dbi_open(txn, "objects", create, &e->objects);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", create, &e->meta);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "manifests", create, &e->manifests);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "repos", create, &e->repos);
	if (rc == 0) {
		/* Added later (store/gen.c): a read-only store made before has none. */
		rc = mdb_dbi_open(txn, "generations", create, &e->gens);
		e->has_gens = rc == 0;
		if (rc == MDB_NOTFOUND && e->readonly)
			rc = 0;
	}
	return rc;
}

/* The databases of a read-only environment: their handles live on only if the transaction
 * that opened them commits (a read-only one may). */
static int open_dbis_ro(struct node_env *e)
{
	MDB_txn *txn;
	int rc;

	rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return node_mdb_err(e, rc);
	rc = open_dbis(e, txn, NULL);
	if (rc == 0)
		return node_mdb_err(e, mdb_txn_commit(txn));
	mdb_txn_abort(txn);
	return node_mdb_err(e, rc);
}

/* STORKFS_LMDB_MAPSIZE: the initial map size in bytes (tests use a tiny one to exercise
 * growth; a node whose index outgrows 64 GiB sets a larger one, which also raises the cap). */
static int initial_mapsize(size_t *ret_size)
{
	const char *s = getenv("STORKFS_LMDB_MAPSIZE");
	unsigned long long v;
	char *end;

	if (!s || !*s) {
		*ret_size = MAP_INITIAL;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < MAP_MIN || v > SIZE_MAX / 2) {
		stork_errorf("STORKFS_LMDB_MAPSIZE=%s: not a size in bytes between %zu and %zu", s,
			     MAP_MIN, SIZE_MAX / 2);
		return -EINVAL;
	}
	*ret_size = (size_t)v;
	return 0;
}

/* lock.mdb, before LMDB maps it: checked, and (read-write) created and allocated, so that
 * LMDB's writes to its map never meet a full file system. The descriptor is closed before
 * LMDB opens the file: closing any descriptor of a file drops the process's fcntl locks on it.
 * @return 0; -EPERM; -ENOSPC; -errno. */
static int prepare_lock(const char *dir, int indexfd, bool readonly)
{
	const char *rel = NODE_INDEXDIR "/lock.mdb";
	struct stat st;
	int fd, r;

	if (readonly)
		fd = openat(indexfd, "lock.mdb", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	else
		fd = openat(indexfd, "lock.mdb", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		if (readonly && r == -ENOENT)
			return 0; /* LMDB runs without it on a read-only file system */
		stork_errorf("%s/%s: %s", dir, rel, strerror(-r));
		return r;
	}
	r = check_trust(dir, rel, fd);
	if (r < 0 || readonly)
		goto out;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		stork_errorf("%s/%s: %s", dir, rel, strerror(-r));
		goto out;
	}
	/* fallocate(2), not posix_fallocate: glibc's fallback for file systems without it
	 * writes zero bytes, which must not land in a lock table other processes use. Such
	 * file systems (rare for a store) keep LMDB's sparse file. */
	if ((off_t)st.st_blocks * 512 < LOCK_BYTES && fallocate(fd, 0, 0, LOCK_BYTES) < 0 &&
	    errno != EOPNOTSUPP) {
		r = -errno;
		stork_errorf("%s/%s: cannot allocate the index's lock file (%lld bytes): %s%s", dir,
			     rel, (long long)LOCK_BYTES, strerror(-r),
			     r == -ENOSPC ? ": make room on the store's file system" : "");
	}
out:
	close(fd);
	return r;
}

/* After mdb_env_open, before any page but the two meta pages is read: the file must hold
 * every page its newest meta page counts, or reading one faults. @return 0; STORK_EFORMAT. */
static int check_data_size(struct node_env *e)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	mdb_filehandle_t fd;
	unsigned long long need;
	int rc;

	rc = mdb_env_get_fd(e->env, &fd);
	if (rc == 0)
		rc = mdb_env_info(e->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(e->env, &st);
	if (rc != 0)
		return node_mdb_err(e, rc);
	if (fstat(fd, &fst) < 0) {
		rc = -errno;
		stork_errorf("%s: %s", e->file, strerror(-rc));
		return rc;
	}
	need = ((unsigned long long)info.me_last_pgno + 1) * st.ms_psize;
	if ((unsigned long long)fst.st_size >= need)
		return 0;
	/* Short of free pages only (an interrupted cover): given back. */
	if (!e->readonly && node_cover_free_tail(e) == 0)
		return 0;
	stork_errorf("%s: not a usable storkfs index (cut short: %lld bytes, but its pages reach "
		     "to %llu); move the index/ directory aside and run `stork fsck --repair` to "
		     "rebuild the object index",
		     e->file, (long long)fst.st_size, need);
	return STORK_EFORMAT;
}

static void env_free(struct node_env *e)
{
	if (!e)
		return;
	node_pending_free(e->pending); /* its last group sync needs the environment */
	if (e->env)
		mdb_env_close(e->env);
	pthread_rwlock_destroy(&e->maplock);
	free(e->file);
	free(e->dir);
	free(e);
}

static int env_new(const char *dir, int indexfd, bool readonly, struct node_env **ret_env)
{
	pthread_rwlockattr_t attr;
	struct node_env *e;
	size_t len = strlen(dir) + sizeof("/" NODE_INDEXDIR "/data.mdb"), mapsize;
	char *path = NULL, proc[64];
	mdb_filehandle_t fd;
	int rc, r, dead;

	r = initial_mapsize(&mapsize);
	if (r < 0)
		return r;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pthread_rwlockattr_init(&attr);
	/* Readers never starve a resize: each thread holds at most one read lock at a time. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->maplock, &attr);
	pthread_rwlockattr_destroy(&attr);
	e->readonly = readonly;
	e->file = malloc(len);
	e->dir = strdup(dir);
	path = malloc(len);
	if (!e->file || !e->dir || !path) {
		r = -ENOMEM;
		goto fail;
	}
	snprintf(e->file, len, "%s/" NODE_INDEXDIR "/data.mdb", dir);
	snprintf(path, len, "%s/" NODE_INDEXDIR, dir);
	/* The checked index/ itself, whatever happens to the path meanwhile (without /proc,
	 * the path). */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", indexfd);
	e->mapmax = mapsize > MAP_MAX ? mapsize : MAP_MAX;

	r = prepare_lock(dir, indexfd, readonly);
	if (r < 0)
		goto fail;
	rc = mdb_env_create(&e->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(e->env, 8);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(e->env, NODE_MAXREADERS);
	if (rc == 0)
		rc = mdb_env_set_mapsize(e->env, mapsize);
	if (rc == 0)
		/* MDB_NOMETASYNC: a power failure may undo the last commit. For object records that
		 * is the state a crash between rename and index leaves anyway (self-healing);
		 * metadata and pins are made durable with node_sync(). */
		rc = mdb_env_open(e->env, access(proc, F_OK) == 0 ? proc : path,
				  MDB_NOTLS | MDB_NOMETASYNC | (readonly ? MDB_RDONLY : 0), 0644);
	if (rc != 0) {
		r = node_mdb_err(e, rc);
		goto fail;
	}
	rc = mdb_env_get_fd(e->env, &fd);
	if (rc != 0) {
		r = node_mdb_err(e, rc);
		goto fail;
	}
	r = check_trust(dir, NODE_INDEXDIR "/data.mdb", fd);
	if (r == 0)
		r = check_data_size(e);
	if (r < 0)
		goto fail;
	/* Free the reader slots of processes that died inside a read transaction. */
	mdb_reader_check(e->env, &dead);
	e->mapsize = node_current_mapsize(e);
	if (readonly)
		r = open_dbis_ro(e);
	else
		r = node_txn(e, true, open_dbis, NULL);
	if (r == 0 && !readonly)
		r = node_pending_new(e, &e->pending);
	if (r < 0)
		goto fail;
	free(path);
	*ret_env = e;
	return 0;
fail:
	free(path);
	env_free(e);
	return r;
}

int node_env_open(const char *dir, int indexfd, bool readonly, struct node_env **ret_env)
{
	struct node_env *e;
	struct stat st;
	pid_t pid = getpid();
	int r = 0;

	if (fstat(indexfd, &st) < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_INDEXDIR ": %s", dir, strerror(-r));
		return r;
	}
	pthread_mutex_lock(&registry_lock);
	/* A forked child must not use its parent's environment: match the pid too. An
	 * environment opened read-only stays so for every handle of the process. */
	for (e = registry; e; e = e->next)
		if (e->dev == st.st_dev && e->ino == st.st_ino && e->pid == pid)
			break;
	if (e) {
		e->refs++;
	} else {
		r = env_new(dir, indexfd, readonly, &e);
		if (r == 0) {
			e->dev = st.st_dev;
			e->ino = st.st_ino;
			e->pid = pid;
			e->refs = 1;
			e->next = registry;
			registry = e;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (r == 0)
		*ret_env = e;
	return r;
}

void node_env_close(struct node_env *e)
{
	struct node_env **pp;

	if (!e)
		return;
	pthread_mutex_lock(&registry_lock);
	if (--e->refs > 0) {
		pthread_mutex_unlock(&registry_lock);
		return;
	}
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	env_free(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Open and close. */

/* objects/, tmp/ or index/: made if missing (read-write) and opened, never through a
 * symlink, and checked. A read-only store without tmp/ gets *ret_fd = -1. @return 0; -errno. */
static int subdir(struct store *s, const char *name, int *ret_fd)
{
	int fd, r;

	if (!s->readonly) {
		r = node_mkdir_mode(s->dirfd, name, 0755);
		if (r < 0)
			goto fail;
	}
	fd = openat(s->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT && s->readonly && strcmp(name, NODE_TMPDIR) == 0) {
			*ret_fd = -1;
			return 0;
		}
		goto fail;
	}
	r = check_trust(s->dir, name, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
fail:
	stork_errorf("%s/%s: %s", s->dir, name, strerror(-r));
	return r;
}

int store_open_flags(const char *dir, unsigned flags, struct store **ret_s)
{
	struct statvfs vfs;
	struct store *s;
	int indexfd = -1, r;

	if (!dir || !*dir || (flags & ~(unsigned)STORE_OPEN_READONLY))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->objfd = s->tmpfd = -1;
	s->readonly = flags & STORE_OPEN_READONLY;
	s->dir = strdup(dir);
	if (!s->dir) {
		r = -ENOMEM;
		goto fail;
	}
	/* 0700: objects/ holds setuid variants, which must not outlive their packages as
	 * something any user can run. */
	r = s->readonly ? 0 : node_mkdir_mode(AT_FDCWD, dir, 0700);
	if (r < 0) {
		stork_errorf("%s: cannot create the store: %s", dir, strerror(-r));
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		stork_errorf("%s: %s", dir, strerror(-r));
		goto fail;
	}
	r = check_trust(dir, NULL, s->dirfd);
	if (r < 0)
		goto fail;
	/* A read-only mount (media, a bind mount) holds what it holds: serve that. */
	if (fstatvfs(s->dirfd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
		s->readonly = true;
	r = subdir(s, NODE_OBJDIR, &s->objfd);
	if (r == 0)
		r = subdir(s, NODE_TMPDIR, &s->tmpfd);
	if (r == 0)
		r = subdir(s, NODE_INDEXDIR, &indexfd);
	if (r == 0)
		r = node_env_open(dir, indexfd, s->readonly, &s->env);
	if (indexfd >= 0)
		close(indexfd);
	if (r < 0)
		goto fail;
	s->readonly = s->readonly || s->env->readonly;
	if (!s->readonly) {
		r = node_tmp_sweep(s, true, NULL, NULL, NULL, NULL);
		if (r < 0)
			goto fail;
		/* STORK_STORE_NAMED_TMP=1: the named temporary files a file system without
		 * O_TMPFILE gets (the tests cover both ways). */
		if (!getenv("STORK_STORE_NAMED_TMP"))
			node_probe_anon(s);
	}
	r = node_quota_new(s);
	if (r < 0)
		goto fail;
	*ret_s = s;
	return 0;
fail:
	store_close(s);
	return r;
}

int store_open(const char *dir, struct store **ret_s)
{
	return store_open_flags(dir, 0, ret_s);
}

bool store_readonly(const struct store *s)
{
	return s->readonly;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	node_quota_free(s); /* writes the access clock: before the environment goes */
	node_env_close(s->env);
	if (s->tmpfd >= 0)
		close(s->tmpfd);
	if (s->objfd >= 0)
		close(s->objfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	node_checked_free(s->checked);
	free(s->dir);
	free(s);
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}
