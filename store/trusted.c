/* store/trusted.c: the copy of each repository's trusted metadata outside the index.
 *
 * store_meta_put writes every file it puts into the index also as STOREDIR/trusted/<repo>/<name>
 * (temporary file, fsync, rename, fsync of the directory), first the index, then the copy,
 * both under an flock() of trusted/<repo>/: the copy never holds what the index did not (a
 * crash between them leaves the copy one file behind, which the next start brings up to the
 * index). When the
 * index is lost (deleted, truncated, moved aside after corruption), the copy keeps the
 * client's rollback floor: store_meta_recover (before a client starts) and fsck --repair put
 * it back into the index, where the client verifies it from its pinned root as it verifies
 * everything it loads (store/README.md, "Trusted metadata"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"
#include "verify/atomic.h"

#define TMP_PREFIX ".tmp-"
#define FILE_MAX   (64 * 1024 * 1024) /* larger than any metadata file the client accepts */

/* ------------------------------------------------------------------------------------------ */
/* Names: a repository or a file name as one path component. Bytes other than [A-Za-z0-9_+-.]
 * (and a leading '.') become %XX, so that no name can leave trusted/<repo>/ or look like a
 * temporary file. */

static bool plain(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '+' || (c == '.' && !first);
}

static int encode(const char *in, char out[NAME_MAX + 1])
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const char *p = in; *p; p++) {
		if (n + 4 > NAME_MAX + 1)
			return -ENAMETOOLONG;
		if (plain(*p, p == in)) {
			out[n++] = *p;
			continue;
		}
		out[n++] = '%';
		out[n++] = hex[(unsigned char)*p >> 4];
		out[n++] = hex[(unsigned char)*p & 15];
	}
	out[n] = '\0';
	return n ? 0 : -EINVAL;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* @return 0; -EINVAL for a name encode() does not make (then it is not ours). */
static int decode(const char *in, char out[NAME_MAX + 1])
{
	size_t n = 0;
	int hi, lo;

	for (const char *p = in; *p; p++) {
		if (*p != '%') {
			if (!plain(*p, p == in))
				return -EINVAL;
			out[n++] = *p;
			continue;
		}
		hi = unhex(p[1]);
		lo = hi < 0 ? -1 : unhex(p[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return -EINVAL;
		out[n++] = (char)(hi << 4 | lo);
		p += 2;
	}
	out[n] = '\0';
	return n ? 0 : -EINVAL;
}

/* ------------------------------------------------------------------------------------------ */
/* The directory trusted/<repo>/ and its lock. */

/* mkdir dirfd/name (0755) when missing, syncing dirfd when it was made. @return 0; -errno. */
static int make_dir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0755) < 0)
		return errno == EEXIST ? 0 : -errno;
	if (fchmodat(dirfd, name, 0755, 0) < 0 || fsync(dirfd) < 0)
		return -errno;
	return 0;
}

/* Remove the temporary files of dead writers: the caller holds the lock that every writer
 * holds while its temporary file exists. */
static void sweep(int fd)
{
	struct dirent *de;
	DIR *d;
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((de = readdir(d)))
		if (strncmp(de->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

int node_trusted_open(struct store *s, const char *repo, bool create, int *ret_fd)
{
	char enc[NAME_MAX + 1];
	int top = -1, fd = -1, r;

	r = encode(repo, enc);
	if (r < 0) {
		stork_errorf("%s/" NODE_TRUSTDIR ": repository \"%.64s\": no file name for it",
			     s->dir, repo);
		return r;
	}
	if (create) {
		r = make_dir(s->dirfd, NODE_TRUSTDIR);
		if (r < 0)
			goto fail;
	}
	top = openat(s->dirfd, NODE_TRUSTDIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (top < 0) {
		r = -errno;
		goto fail;
	}
	if (create) {
		r = make_dir(top, enc);
		if (r < 0)
			goto fail;
	}
	fd = openat(top, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			r = -errno;
			goto fail;
		}
	}
	close(top);
	*ret_fd = fd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (top >= 0)
		close(top);
	if (r != -ENOENT || create)
		stork_errorf("%s/" NODE_TRUSTDIR "/%s: %s", s->dir, enc, strerror(-r));
	return r;
}

int node_trusted_write(struct store *s, int fd, const char *repo, const char *name, const void *buf,
		       size_t len)
{
	char enc[NAME_MAX + 1], renc[NAME_MAX + 1], tmp[sizeof(TMP_PREFIX) + 16];
	int out = -1, r;

	r = encode(name, enc);
	if (r == 0)
		r = encode(repo, renc);
	if (r < 0) {
		stork_errorf("%s/" NODE_TRUSTDIR
			     ": \"%.64s\" of repository \"%.64s\": no file name "
			     "for it",
			     s->dir, name, repo);
		return r;
	}
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%d", (int)getpid());
	/* The lock is held: a file of this name is a dead writer's. */
	unlinkat(fd, tmp, 0);
	out = openat(fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (out < 0) {
		r = -errno;
		goto out;
	}
	r = verify_write_all(out, buf, len);
	if (r < 0)
		goto out;
	if (fchmod(out, 0644) < 0 || fsync(out) < 0) {
		r = -errno;
		goto out;
	}
	close(out);
	out = -1;
	if (renameat(fd, tmp, fd, enc) < 0 || fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	return 0;
out:
	if (out >= 0)
		close(out);
	unlinkat(fd, tmp, 0);
	stork_errorf("%s/" NODE_TRUSTDIR
		     "/%s/%s: cannot write the copy of the trusted metadata: %s",
		     s->dir, renc, enc, strerror(-r));
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the copy. */

struct copy_file {
	char name[NAME_MAX + 1]; /* decoded */
	uint8_t *buf;
	size_t len;
};

struct copy {
	struct copy_file *files;
	size_t n;
};

static void copy_fini(struct copy *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->files[i].buf);
	free(c->files);
	c->files = NULL;
	c->n = 0;
}

static int read_one(int dirfd, const char *name, uint8_t **ret_buf, size_t *ret_len)
{
	int fd, r;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	r = node_read_fd(fd, FILE_MAX, ret_buf, ret_len);
	close(fd);
	return r;
}

/* Every file of the locked copy fd. Files that are not ours (a name encode() does not make,
 * not a regular file) are skipped. @return 0; -errno (detail set). */
static int copy_read(struct store *s, int fd, const char *repo, struct copy *ret)
{
	struct copy c = {NULL, 0};
	struct copy_file *grown;
	struct dirent *de;
	size_t cap = 0;
	DIR *d = NULL;
	int dfd, r = 0;

	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		char name[NAME_MAX + 1];

		if (de->d_name[0] == '.' || decode(de->d_name, name) < 0)
			continue;
		if (c.n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(c.files, cap * sizeof(*grown));
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			c.files = grown;
		}
		memcpy(c.files[c.n].name, name, sizeof(name));
		r = read_one(fd, de->d_name, &c.files[c.n].buf, &c.files[c.n].len);
		if (r == -EINVAL || r == -ENOENT || r == -ELOOP) {
			r = 0; /* not ours */
			continue;
		}
		if (r == 0)
			c.n++;
	}
	if (r == 0 && errno != 0)
		r = -errno;
out:
	if (d)
		closedir(d);
	if (r < 0) {
		copy_fini(&c);
		stork_errorf("%s/" NODE_TRUSTDIR "/%.64s: cannot read the copy of the trusted "
			     "metadata: %s",
			     s->dir, repo, strerror(-r));
		return r;
	}
	*ret = c;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The index side. */

struct look {
	const char *repo;
	bool has_meta;	  /* the index holds metadata of repo */
	bool any_repo;	  /* the index knows any repository at all */
	struct copy *put; /* write: put these files under repo and record trust */
	int trust;	  /* write: the trust byte to record, or -1 */
};

static int look_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct look *l = ctx;
	size_t rlen = strlen(l->repo);
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint8_t *rec = NULL;
	int rc;

	if (l->put) {
		for (size_t i = 0; i < l->put->n; i++) {
			struct copy_file *f = &l->put->files[i];
			size_t nlen = strlen(f->name);
			char *key = malloc(rlen + 1 + nlen);

			if (!key)
				return -ENOMEM;
			memcpy(key, l->repo, rlen + 1);
			memcpy(key + rlen + 1, f->name, nlen);
			k = (MDB_val){rlen + 1 + nlen, key};
			v = (MDB_val){f->len, f->buf};
			rc = mdb_put(txn, e->meta, &k, &v, 0);
			free(key);
			if (rc != 0)
				return rc;
		}
	}
	if (l->trust >= 0) {
		k = (MDB_val){rlen, (void *)l->repo};
		rc = mdb_get(txn, e->repos, &k, &v);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if (rc == 0 && v.mv_size >= NODE_REPOREC_HEAD &&
		    ((const uint8_t *)v.mv_data)[0] == NODE_REPOREC_VERSION) {
			rec = malloc(v.mv_size);
			if (!rec)
				return -ENOMEM;
			memcpy(rec, v.mv_data, v.mv_size);
		} else {
			rec = calloc(1, NODE_REPOREC_HEAD);
			if (!rec)
				return -ENOMEM;
			rec[0] = NODE_REPOREC_VERSION;
			v.mv_size = NODE_REPOREC_HEAD;
		}
		rec[NODE_REPOREC_TRUST] = (uint8_t)l->trust;
		v.mv_data = rec;
		rc = mdb_put(txn, e->repos, &k, &v, 0);
		free(rec);
		return rc;
	}
	if (l->put)
		return 0;
	rc = mdb_cursor_open(txn, e->meta, &cur);
	if (rc != 0)
		return rc;
	k = (MDB_val){rlen + 1, (void *)l->repo}; /* "<repo>\0" sorts before its names */
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	l->has_meta = rc == 0 && k.mv_size > rlen + 1 && memcmp(k.mv_data, l->repo, rlen + 1) == 0;
	l->any_repo = l->has_meta || rc == 0 || mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0;
	mdb_cursor_close(cur);
	if (!l->any_repo) {
		MDB_stat ms;

		rc = mdb_stat(txn, e->repos, &ms);
		if (rc != 0)
			return rc;
		l->any_repo = ms.ms_entries > 0;
	}
	return 0;
}

/* Does the copy's file `enc` (in the copy fd) hold exactly len bytes of buf? Files of up to
 * SAME_READ bytes (timestamp, root, snapshot of small repositories) are compared byte for
 * byte, larger ones by size: enough to catch a copy a crash left one step behind, without
 * reading megabytes at every start. */
#define SAME_READ (64 * 1024)

static bool copy_same(int fd, const char *enc, const void *buf, size_t len)
{
	uint8_t *got = NULL;
	struct stat st;
	size_t n = 0;
	bool same;

	if (fstatat(fd, enc, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != len)
		return false;
	if (len > SAME_READ)
		return true;
	if (read_one(fd, enc, &got, &n) < 0)
		return false;
	same = n == len && memcmp(got, buf, len) == 0;
	free(got);
	return same;
}

/* The metadata files of repo that the copy (fd) lacks or holds otherwise than the index. */
struct diff_ctx {
	const char *repo;
	int fd;
	struct copy c;
};

static int diff_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct diff_ctx *l = ctx;
	size_t rlen = strlen(l->repo), cap = 0;
	struct copy_file *grown, *f;
	MDB_cursor *cur = NULL;
	char enc[NAME_MAX + 1];
	MDB_val k, v;
	int rc;

	copy_fini(&l->c);
	rc = mdb_cursor_open(txn, e->meta, &cur);
	if (rc != 0)
		return rc;
	k = (MDB_val){rlen + 1, (void *)l->repo};
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= rlen + 1 || memcmp(k.mv_data, l->repo, rlen + 1) != 0)
			break;
		if (k.mv_size - rlen - 1 > NAME_MAX)
			continue;
		if (l->c.n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(l->c.files, cap * sizeof(*grown));
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			l->c.files = grown;
		}
		f = &l->c.files[l->c.n];
		memcpy(f->name, (const char *)k.mv_data + rlen + 1, k.mv_size - rlen - 1);
		f->name[k.mv_size - rlen - 1] = '\0';
		if (encode(f->name, enc) < 0 || copy_same(l->fd, enc, v.mv_data, v.mv_size))
			continue;
		f->buf = malloc(v.mv_size + 1);
		if (!f->buf) {
			rc = -ENOMEM;
			break;
		}
		memcpy(f->buf, v.mv_data, v.mv_size);
		f->len = v.mv_size;
		l->c.n++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The index holds repo's metadata: bring the copy up to it. A store made before the copy
 * existed gets one; a copy that a crash left behind (between the index's commit and the
 * copy's rename) catches up. Best effort (a read-only store cannot): the index holds it. */
static void sync_copy(struct store *s, const char *repo)
{
	struct diff_ctx l = {repo, -1, {NULL, 0}};

	if (node_trusted_open(s, repo, true, &l.fd) < 0)
		goto out;
	sweep(l.fd);
	/* Compared under the lock, which every writer of repo's metadata holds. */
	if (node_txn(s->env, false, diff_fn, &l) < 0)
		goto out;
	for (size_t i = 0; i < l.c.n; i++)
		if (node_trusted_write(s, l.fd, repo, l.c.files[i].name, l.c.files[i].buf,
				       l.c.files[i].len) < 0)
			break;
out:
	copy_fini(&l.c);
	if (l.fd >= 0)
		close(l.fd);
	stork_error_clear();
}

/* Whether objects/ holds anything: a store that has been used. */
static bool objects_used(struct store *s)
{
	struct dirent *de;
	bool used = false;
	DIR *d;
	int fd = openat(s->objfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (!used && (de = readdir(d)))
		used = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return used;
}

int node_trusted_recover(struct store *s, const char *repo, bool apply, enum store_trust *ret_trust,
			 size_t *ret_files)
{
	struct look l = {.repo = repo, .trust = -1};
	struct copy c = {NULL, 0};
	enum store_trust trust = STORE_TRUST_NONE;
	int fd = -1, r;

	r = node_trusted_open(s, repo, false, &fd);
	if (r < 0 && r != -ENOENT)
		return r;
	stork_error_clear();
	r = node_txn(s->env, false, look_fn, &l);
	if (r < 0)
		goto out;
	if (l.has_meta) {
		if (apply) {
			if (fd >= 0)
				close(fd);
			fd = -1;
			sync_copy(s, repo);
		}
		goto done;
	}
	if (fd >= 0) {
		if (apply)
			sweep(fd);
		r = copy_read(s, fd, repo, &c);
		if (r < 0)
			goto out;
	}
	if (c.n > 0) {
		trust = apply ? STORE_TRUST_RESTORED : STORE_TRUST_PENDING;
		if (!apply)
			goto done;
		l.put = &c;
		l.trust = STORE_TRUST_RESTORED;
	} else if (!l.any_repo && objects_used(s)) {
		/* The store has objects but its index knows no repository: it was lost, and with
		 * it the floor. (An empty copy alone says nothing: a first refresh that died
		 * before its first commit leaves one.) */
		trust = STORE_TRUST_LOST;
		if (!apply)
			goto done;
		l.trust = STORE_TRUST_LOST;
	} else {
		goto done; /* a repository this store has not trusted anything of yet */
	}
	r = node_txn(s->env, true, look_fn, &l);
	if (r == 0)
		r = node_sync(s->env);
	if (r < 0 && trust == STORE_TRUST_LOST) {
		stork_error_clear(); /* only the note for status failed (a read-only store) */
	} else if (r < 0) {
		stork_error_prefix("restoring the trusted metadata of repository %.64s", repo);
		goto out;
	}
done:
	if (ret_trust)
		*ret_trust = trust;
	if (ret_files)
		*ret_files = c.n;
	r = 0;
out:
	copy_fini(&c);
	if (fd >= 0)
		close(fd);
	return r;
}

int store_meta_recover(struct store *s, const char *repo, enum store_trust *ret_trust,
		       size_t *ret_files)
{
	if (!repo || !*repo) {
		stork_errorf("%s: metadata needs a repository", s->dir);
		return -EINVAL;
	}
	return node_trusted_recover(s, repo, true, ret_trust, ret_files);
}

int node_trusted_each(struct store *s, int (*fn)(void *ctx, const char *repo), void *ctx)
{
	struct dirent *de;
	DIR *d = NULL;
	int fd, r = 0;

	fd = openat(s->dirfd, NODE_TRUSTDIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		stork_errorf("%s/" NODE_TRUSTDIR ": %s", s->dir, strerror(-r));
		return r;
	}
	while (r == 0 && (de = readdir(d))) {
		char repo[NAME_MAX + 1];

		if (de->d_name[0] == '.' || decode(de->d_name, repo) < 0)
			continue;
		r = fn(ctx, repo);
	}
	closedir(d);
	return r;
}
