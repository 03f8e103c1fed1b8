/* store/fsck.c: checking the node store against its index, and repairing it.
 *
 * Four passes: tmp/ (leftovers of dead writers), the index (every indexed object re-hashed,
 * its mode variants too), objects/ (files the index does not list), and trusted/ (metadata
 * the index lost and its copy holds). Indexed objects are
 * read in batches of short read transactions, so a long check neither holds back LMDB's page
 * reuse nor blocks writers. The index is in key order, so the objects of one objects/ab/ come
 * together and its variants are listed once for all of them. Every repair runs in a write
 * transaction that first checks the file is still the one that was judged: a concurrent
 * insert's fresh object is never removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

#define BATCH	256
#define KEY_MAX 511 /* LMDB's default maximum key size */

struct fsck {
	struct store *s;
	bool repair;
	void (*problem)(void *ctx, const char *path, const char *what);
	void *ctx;
	struct store_fsck_report rep;
	/* Pass 2: the sorted names of the variants in objects/<vsub>/ ("" for none listed). */
	char vsub[3];
	char **variants;
	size_t nvariants;
};

static void report(struct fsck *f, const char *sub, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The finding is about STOREDIR/sub/rel. */
static void report(struct fsck *f, const char *sub, const char *rel, const char *fmt, ...)
{
	char path[4096 + 128], what[512];
	va_list ap;

	if (!f->problem)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s/%s", f->s->dir, sub, rel);
	f->problem(f->ctx, path, what);
}

/* ------------------------------------------------------------------------------------------ */
/* Repairs. */

struct fix {
	struct store *s;
	const void *key; /* objects entry to drop, or NULL */
	size_t klen;
	const char *rel; /* file below objects/ to unlink, or NULL */
	bool variants;	 /* also unlink every variant of the object `key` */
	bool seen;	 /* rel was seen as (dev, ino); otherwise it was missing */
	dev_t dev;
	ino_t ino;
};

static int fix_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct fix *x = ctx;
	MDB_val k = {x->klen, (void *)x->key};
	struct stat st;
	bool exists;
	int rc;

	if (x->rel) {
		exists = fstatat(x->s->objfd, x->rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
		if (exists && (!x->seen || st.st_ino != x->ino || st.st_dev != x->dev))
			return MDB_NOTFOUND; /* replaced meanwhile: leave it */
	}
	if (x->key) {
		rc = mdb_del(txn, e->objects, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	if (x->variants) {
		rc = node_variants_remove(x->s, x->key, NULL);
		if (rc < 0)
			return rc;
	}
	if (x->rel && x->seen && (rc = store_unlink(x->s->objfd, x->rel)) < 0 && rc != -ENOENT) {
		stork_errorf("%s/" NODE_OBJDIR "/%s: cannot remove: %s", x->s->dir, x->rel,
			     strerror(-rc));
		return rc;
	}
	return 0;
}

/* Apply a fix; -ENOENT means the store changed meanwhile and nothing was done. */
static int fix(struct fsck *f, struct fix *x)
{
	int r;

	x->s = f->s;
	r = node_txn(f->s->env, true, fix_fn, x);
	if (r == 0)
		f->rep.repaired++;
	return r == -ENOENT ? 0 : r;
}

/* ------------------------------------------------------------------------------------------ */
/* Hashing a file below objects/. */

/* DENIED: the file exists but cannot be opened for reading (a variant of mode 0200 when fsck
 * does not run as root); why says so. */
enum verdict { GOOD, MISSING, BAD, DENIED };

/* Judge objects/rel against id and size (size UINT64_MAX: any). st is filled when the file
 * exists. Read errors (-EIO, a rotten sector) make it BAD; other errors are returned. */
static int judge(struct fsck *f, const char *rel, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		 struct stat *st, enum verdict *ret, char *why, size_t whylen)
{
	uint8_t got[VERIFY_HASH_LEN];
	char ghex[VERIFY_HASH_HEX];
	uint64_t n;
	int fd, r;

	fd = openat(f->s->objfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		/* ENOTDIR: objects/ab is not a directory (pass 3 reports it), so no file. */
		if (errno == ENOENT || errno == ENOTDIR) {
			*ret = MISSING;
			return 0;
		}
		if (errno == ELOOP) { /* a symlink: never an object */
			if (fstatat(f->s->objfd, rel, st, AT_SYMLINK_NOFOLLOW) < 0)
				return -errno;
			snprintf(why, whylen, "a symlink, not an object file");
			*ret = BAD;
			return 0;
		}
		if (errno == EACCES || errno == EPERM) {
			snprintf(why, whylen, "cannot be read: %s", strerror(errno));
			if (fstatat(f->s->objfd, rel, st, AT_SYMLINK_NOFOLLOW) < 0)
				return -errno;
			*ret = DENIED;
			return 0;
		}
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", f->s->dir, rel, strerror(-r));
		return r;
	}
	if (fstat(fd, st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "not a regular file");
		*ret = BAD;
		r = 0;
		goto out;
	}
	if (size != UINT64_MAX && (uint64_t)st->st_size != size) {
		snprintf(why, whylen, "%lld bytes, but indexed with %llu", (long long)st->st_size,
			 (unsigned long long)size);
		*ret = BAD;
		r = 0;
		goto out;
	}
	r = node_hash_fd(fd, got, &n);
	if (r == -EIO) {
		snprintf(why, whylen, "cannot be read: %s", strerror(EIO));
		*ret = BAD;
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	if (memcmp(got, id, VERIFY_HASH_LEN) != 0) {
		verify_hex(got, VERIFY_HASH_LEN, ghex);
		snprintf(why, whylen, "content hashes to %s", ghex);
		*ret = BAD;
	} else {
		*ret = GOOD;
	}
out:
	if (r < 0)
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", f->s->dir, rel, strerror(-r));
	close(fd);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Pass 1: tmp/. */

static void found_tmp(void *ctx, const char *name)
{
	struct fsck *f = ctx;
	report(f, NODE_TMPDIR, name, "leftover of an interrupted write");
}

static int check_tmp(struct fsck *f)
{
	uint64_t stale = 0, removed = 0;
	int r;

	r = node_tmp_sweep(f->s, f->repair, found_tmp, f, &stale, &removed);
	if (r < 0)
		return r;
	f->rep.stale_tmp += stale;
	f->rep.repaired += removed;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Pass 2: indexed objects. */

struct entry {
	uint8_t key[KEY_MAX];
	size_t klen;
	bool malformed;
	struct node_objrec rec;
};

struct batch {
	struct entry *ents;
	size_t n;
	bool started, done;
	uint8_t last[KEY_MAX];
	size_t lastlen;
};

static int batch_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct batch *b = ctx;
	MDB_cursor *cur;
	MDB_val k, v;
	struct entry *ent;
	int rc;

	b->n = 0;
	rc = mdb_cursor_open(txn, e->objects, &cur);
	if (rc != 0)
		return rc;
	if (b->started) {
		k.mv_size = b->lastlen;
		k.mv_data = b->last;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == b->lastlen &&
		    memcmp(k.mv_data, b->last, k.mv_size) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	for (; rc == 0 && b->n < BATCH; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ent = &b->ents[b->n++];
		ent->klen = k.mv_size < KEY_MAX ? k.mv_size : KEY_MAX;
		memcpy(ent->key, k.mv_data, ent->klen);
		ent->malformed = true;
		if (k.mv_size == VERIFY_HASH_LEN) {
			rc = node_objrec_get(e, txn, k.mv_data, &ent->rec);
			if (rc != 0 && rc != STORK_EFORMAT)
				break;
			ent->malformed = rc != 0;
		}
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	b->done = rc == MDB_NOTFOUND;
	if (b->n > 0) {
		b->started = true;
		b->lastlen = b->ents[b->n - 1].klen;
		memcpy(b->last, b->ents[b->n - 1].key, b->lastlen);
	}
	return 0;
}

/* The variants in objects/<sub>/, listed once for all the objects there: their names, sorted. */
static void variants_fini(struct fsck *f)
{
	size_t i;

	for (i = 0; i < f->nvariants; i++)
		free(f->variants[i]);
	free(f->variants);
	f->variants = NULL;
	f->nvariants = 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Is name "<64 hex>.<mode>"? Then *ret_mode is the mode. */
static bool variant_name(const char *name, uint32_t *ret_mode)
{
	size_t hexlen = 2 * VERIFY_HASH_LEN;

	return strnlen(name, hexlen + 1) > hexlen && name[hexlen] == '.' && is_hex(name, hexlen) &&
	       node_variant_parse(name + hexlen + 1, ret_mode);
}

static int list_variants(struct fsck *f, const char *sub)
{
	struct dirent *de;
	uint32_t mode;
	DIR *d = NULL;
	char **grown;
	size_t cap = 0;
	int fd, r = 0;

	variants_fini(f);
	memcpy(f->vsub, sub, sizeof(f->vsub));
	fd = openat(f->s->objfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
		return 0; /* no directory, no variants (pass 3 reports a file there) */
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!variant_name(de->d_name, &mode))
			continue;
		if (f->nvariants == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(f->variants, cap * sizeof(*grown));
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			f->variants = grown;
		}
		f->variants[f->nvariants] = strdup(de->d_name);
		if (!f->variants[f->nvariants]) {
			r = -ENOMEM;
			break;
		}
		f->nvariants++;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(d);
	if (r < 0)
		goto fail;
	if (f->nvariants > 1)
		qsort(f->variants, f->nvariants, sizeof(*f->variants), cmp_names);
	return 0;
fail:
	variants_fini(f);
	f->vsub[0] = '\0';
	stork_errorf("%s/" NODE_OBJDIR "/%s: %s", f->s->dir, sub, strerror(-r));
	return r;
}

/* Judge each variant of a good indexed object: its content, and its mode against its name.
 * A bad one is unlinked with repair (the object stays). */
static int check_variants(struct fsck *f, const struct entry *ent, bool *ret_bad)
{
	char hex[VERIFY_HASH_HEX], prefix[VERIFY_HASH_HEX + 1], rel[NODE_RELPATH_LEN], why[256];
	size_t lo = 0, hi, mid, plen = sizeof(prefix) - 1;
	struct fix x = {0};
	struct stat st;
	enum verdict v;
	uint32_t mode;
	int r;

	*ret_bad = false;
	verify_hex(ent->key, VERIFY_HASH_LEN, hex);
	if (f->vsub[0] == '\0' || memcmp(f->vsub, hex, 2) != 0) {
		char sub[3] = {hex[0], hex[1], '\0'};

		r = list_variants(f, sub);
		if (r < 0)
			return r;
	}
	/* "<hex>." is a prefix of each of its variants' names and sorts before them. */
	snprintf(prefix, sizeof(prefix), "%s.", hex);
	for (hi = f->nvariants; lo < hi;) {
		mid = lo + (hi - lo) / 2;
		if (strncmp(f->variants[mid], prefix, plen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < f->nvariants && strncmp(f->variants[lo], prefix, plen) == 0; lo++) {
		if (!variant_name(f->variants[lo], &mode))
			continue;
		snprintf(rel, sizeof(rel), "%.2s/%s", hex, f->variants[lo]);
		r = judge(f, rel, ent->key, ent->rec.size, &st, &v, why, sizeof(why));
		if (r < 0)
			return r;
		if (v == MISSING)
			continue; /* removed meanwhile */
		if (v == DENIED) {
			report(f, NODE_OBJDIR, rel,
			       "variant: %s (left alone; fsck as root reads it)", why);
			continue;
		}
		if (v == GOOD && (st.st_mode & 07777) != mode) {
			snprintf(why, sizeof(why), "mode %o, but its name says %o",
				 (unsigned)(st.st_mode & 07777), (unsigned)mode);
			v = BAD;
		}
		if (v == GOOD)
			continue;
		*ret_bad = true;
		report(f, NODE_OBJDIR, rel, "variant: %s", why);
		if (!f->repair)
			continue;
		x.rel = rel;
		x.seen = true;
		x.dev = st.st_dev;
		x.ino = st.st_ino;
		r = fix(f, &x);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_entry(struct fsck *f, const struct entry *ent)
{
	char rel[NODE_RELPATH_LEN], why[256], hex[2 * 16 + 1];
	struct fix x = {.key = ent->key, .klen = ent->klen};
	struct stat st;
	enum verdict v;
	bool vbad;
	int r;

	f->rep.objects++;
	if (ent->malformed) {
		f->rep.bad++;
		verify_hex(ent->key, ent->klen < 16 ? ent->klen : 16, hex);
		report(f, NODE_INDEXDIR, "data.mdb",
		       "object entry %s%s (a key of %zu bytes): malformed record", hex,
		       ent->klen > 16 ? "..." : "", ent->klen);
		/* Dropping the entry is enough: a good file is indexed again by pass 3. */
		return f->repair ? fix(f, &x) : 0;
	}
	node_relpath(ent->key, rel);
	r = judge(f, rel, ent->key, ent->rec.size, &st, &v, why, sizeof(why));
	if (r < 0)
		return r;
	x.rel = rel;
	x.variants = true;
	switch (v) {
	case MISSING:
		f->rep.missing++;
		report(f, NODE_OBJDIR, rel, "indexed but missing");
		return f->repair ? fix(f, &x) : 0;
	case BAD:
	case DENIED: /* an object is 0444: one that cannot be read was tampered with */
		f->rep.bad++;
		report(f, NODE_OBJDIR, rel, "%s", why);
		if (!f->repair)
			return 0;
		x.seen = true;
		x.dev = st.st_dev;
		x.ino = st.st_ino;
		return fix(f, &x);
	case GOOD:
		break;
	}
	r = check_variants(f, ent, &vbad);
	if (r < 0)
		return r;
	if (vbad)
		f->rep.bad++;
	else
		f->rep.good++;
	return 0;
}

static int check_index(struct fsck *f)
{
	struct batch b = {0};
	size_t i;
	int r = 0;

	b.ents = malloc(BATCH * sizeof(*b.ents));
	if (!b.ents)
		return -ENOMEM;
	while (!b.done) {
		r = node_txn(f->s->env, false, batch_fn, &b);
		if (r < 0)
			break;
		for (i = 0; i < b.n && r == 0; i++)
			r = check_entry(f, &b.ents[i]);
		if (r < 0)
			break;
	}
	free(b.ents);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Pass 3: files in objects/ that the index does not list. */

static int indexed_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct node_objrec rec;
	int rc = node_objrec_get(e, txn, ctx, &rec);

	return rc == STORK_EFORMAT ? 0 : rc; /* pass 2 dealt with it */
}

/* 0 if id is indexed, -ENOENT if not, -errno. */
static int indexed(struct fsck *f, const uint8_t id[VERIFY_HASH_LEN])
{
	return node_txn(f->s->env, false, indexed_fn, (void *)id);
}

static int remove_unlisted(struct fsck *f, const char *rel, const struct stat *st)
{
	struct fix x = {.rel = rel, .seen = true, .dev = st->st_dev, .ino = st->st_ino};

	return fix(f, &x);
}

/* fsync objects/rel. @return 0; -errno (detail names the file). */
static int sync_file(struct fsck *f, const char *rel)
{
	int fd, r = 0;

	fd = openat(f->s->objfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsync(fd) < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: cannot sync: %s", f->s->dir, rel,
			     strerror(-r));
	}
	if (fd >= 0)
		close(fd);
	return r;
}
static int check_file(struct fsck *f, const char *sub, const char *name)
{
	size_t len = strlen(name), hexlen = 2 * VERIFY_HASH_LEN;
	uint8_t id[VERIFY_HASH_LEN];
	char rel[NODE_RELPATH_LEN + 256], why[256], hex[VERIFY_HASH_HEX];
	struct stat st;
	enum verdict v;
	bool variant;
	uint32_t mode;
	int r;

	snprintf(rel, sizeof(rel), "%s/%s", sub, name);
	variant = variant_name(name, &mode);
	if (len >= hexlen) {
		memcpy(hex, name, hexlen);
		hex[hexlen] = '\0';
	}
	if (fstatat(f->s->objfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0; /* removed meanwhile */
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", f->s->dir, rel, strerror(-r));
		return r;
	}
	if ((len != hexlen && !variant) || !is_hex(name, hexlen) || memcmp(name, sub, 2) != 0 ||
	    verify_unhex(hex, id, VERIFY_HASH_LEN) != 0 || S_ISDIR(st.st_mode)) {
		f->rep.unindexed++;
		if (S_ISDIR(st.st_mode)) {
			report(f, NODE_OBJDIR, rel, "not an object (a directory; left alone)");
			return 0;
		}
		report(f, NODE_OBJDIR, rel, "not an object name");
		return f->repair ? remove_unlisted(f, rel, &st) : 0;
	}
	r = indexed(f, id);
	if (r != -ENOENT)
		return r; /* indexed: checked by pass 2 (its variants too) */
	if (variant) {
		f->rep.unindexed++;
		report(f, NODE_OBJDIR, rel, "variant of an object the index does not list");
		return f->repair ? remove_unlisted(f, rel, &st) : 0;
	}

	r = judge(f, rel, id, UINT64_MAX, &st, &v, why, sizeof(why));
	if (r < 0 || v == MISSING)
		return r;
	if (v != GOOD) {
		f->rep.unindexed++;
		report(f, NODE_OBJDIR, rel, "not in the index, and %s", why);
		return f->repair ? remove_unlisted(f, rel, &st) : 0;
	}
	/* A whole object that hashes to its name: an insert killed between its rename and its
	 * index commit. Finishing that insert is the protocol's last step, not a repair of
	 * damage, so it is done with or without --repair and is not a problem. */
	if (f->s->readonly) {
		f->rep.unindexed++;
		report(f, NODE_OBJDIR, rel,
		       "a whole object the index does not list (an interrupted "
		       "insert), which a read-only store cannot index");
		return 0;
	}
	/* It may be an unsynced insert's (store/README.md, "Unsynced inserts"): durable before
	 * the index lists it. */
	r = sync_file(f, rel);
	if (r == 0)
		r = node_index_object(f->s, id, (uint64_t)st.st_size);
	if (r == 0)
		f->rep.adopted++;
	return r;
}

/* Two sweeps: names with a dot (variants, mostly) first, then the rest. So a variant of an
 * unindexed object is reported (and removed) whatever the directory order, even when the
 * second sweep then indexes the object. */
static int check_subdir(struct fsck *f, const char *sub)
{
	struct dirent *de;
	DIR *d = NULL;
	int fd, sweep, r = 0;

	fd = openat(f->s->objfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", f->s->dir, sub, strerror(-r));
		return r;
	}
	for (sweep = 0; sweep < 2 && r == 0; sweep++) {
		rewinddir(d);
		while (r == 0 && (errno = 0, de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if ((strchr(de->d_name, '.') != NULL) != (sweep == 0))
				continue;
			r = check_file(f, sub, de->d_name);
		}
		if (r == 0 && errno != 0) {
			r = -errno;
			stork_errorf("%s/" NODE_OBJDIR "/%s: %s", f->s->dir, sub, strerror(-r));
		}
	}
	closedir(d);
	return r;
}

static int check_objects_dir(struct fsck *f)
{
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	int fd, r = 0;

	fd = openat(f->s->objfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		stork_errorf("%s/" NODE_OBJDIR ": %s", f->s->dir, strerror(-r));
		return r;
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(f->s->objfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) {
				r = -errno;
				stork_errorf("%s/" NODE_OBJDIR "/%s: %s", f->s->dir, de->d_name,
					     strerror(-r));
			}
			continue;
		}
		if (S_ISDIR(st.st_mode) && strlen(de->d_name) == 2 && is_hex(de->d_name, 2)) {
			r = check_subdir(f, de->d_name);
			continue;
		}
		f->rep.unindexed++;
		if (S_ISDIR(st.st_mode)) {
			report(f, NODE_OBJDIR, de->d_name, "not an object directory (left alone)");
			continue;
		}
		if (strlen(de->d_name) == 2 && is_hex(de->d_name, 2))
			report(f, NODE_OBJDIR, de->d_name,
			       "not a directory: a %s where the directory of the objects %s... "
			       "belongs",
			       S_ISLNK(st.st_mode) ? "symlink" : "file", de->d_name);
		else
			report(f, NODE_OBJDIR, de->d_name, "not an object name");
		if (f->repair)
			r = remove_unlisted(f, de->d_name, &st);
	}
	if (r == 0 && errno != 0) {
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR ": %s", f->s->dir, strerror(-r));
	}
	closedir(d);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Pass 4: the copy of the trusted metadata. */

static int check_trusted_repo(void *ctx, const char *repo)
{
	struct fsck *f = ctx;
	enum store_trust trust = STORE_TRUST_NONE;
	size_t files = 0;
	int r;

	r = node_trusted_recover(f->s, repo, false, &trust, &files);
	if (r < 0 || trust != STORE_TRUST_PENDING)
		return r;
	f->rep.lost_meta++;
	report(f, NODE_TRUSTDIR, repo,
	       "the index holds none of this repository's trusted metadata (the index was "
	       "lost?); this copy (%zu files) keeps its rollback floor%s",
	       files, f->repair ? ": restored into the index" : ": --repair restores it");
	if (!f->repair)
		return 0;
	r = node_trusted_recover(f->s, repo, true, &trust, &files);
	if (r == 0 && trust == STORE_TRUST_RESTORED)
		f->rep.repaired++;
	return r;
}

int store_fsck(struct store *s, bool repair,
	       void (*problem)(void *ctx, const char *path, const char *what), void *ctx,
	       struct store_fsck_report *ret_report)
{
	struct fsck f = {.s = s, .repair = repair, .problem = problem, .ctx = ctx};
	int r;

	if (repair && s->readonly) {
		stork_errorf("%s: read-only store: it can be checked, not repaired", s->dir);
		return -EROFS;
	}
	/* This process's unsynced objects indexed first, so they are not taken for leftovers. */
	r = s->readonly ? 0 : node_pending_flush(s->env);
	if (r == 0)
		r = check_tmp(&f);
	if (r == 0)
		r = check_index(&f);
	variants_fini(&f);
	if (r == 0)
		r = check_objects_dir(&f);
	if (r == 0)
		r = node_links_check(s, repair, problem, ctx, &f.rep.changed_links,
				     &f.rep.stale_links);
	if (r == 0)
		r = node_trusted_each(s, check_trusted_repo, &f);
	if (r < 0)
		return r;
	*ret_report = f.rep;
	return 0;
}
