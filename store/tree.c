/* store/tree.c: a version's tree index (store/README.md, "Tree indexes"): the entries of a
 * verified manifest as fixed-size records, a child index and a string table in one flat file,
 * STOREDIR/trees/<manifest sha256>, so that a mount loads a version's tree with one read and a
 * hash instead of parsing and verifying megabytes of JSON, and finds a path by binary search.
 *
 * The file is derived data: made only from a manifest the caller verified, named by that
 * manifest's SHA-256, and checked whole when read (its own SHA-256 in its last 32 bytes, then
 * every offset, type, child index and chunk list), so a damaged file is refused (and rebuilt
 * by the caller), never followed. A big file stored by the piece keeps its chunk list in a
 * chunk table, which the struct store_tree decodes into verify_entry chunks when it is made or
 * read, so that an entry it gives back is one fs/chunk.c reads as a manifest's. A file read
 * back is mapped, not copied: its pages are the page cache's (shared, reclaimable), not the
 * daemon's own memory. Its size is checked against its header before any record is touched,
 * and the store never truncates an index in place (written once, renamed into place, in a
 * directory only the store's owner may write: store/README.md "Tree indexes"), so a mapped
 * index never faults. A struct store_tree is immutable once made: any number of threads may
 * read it at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

#define TREES_DIR  "trees"
#define TREE_MAGIC "storktr2" /* 2: the chunk table */
#define TREE_BOM   0x01020304u
#define TREE_HEAD  96
#define TREE_REC   88
#define TREE_CHUNK 56
#define TREE_NONE  UINT32_MAX

/* The header, at offset 0 (host byte order: TREE_BOM tells another order apart). */
struct tree_head {
	char magic[8];
	uint32_t bom;
	uint32_t n;			  /* entries */
	uint8_t id[VERIFY_HASH_LEN];	  /* the manifest's SHA-256 */
	uint64_t len;			  /* the whole file, trailer included */
	uint64_t stroff, strlen;	  /* the string table */
	uint64_t chunkoff, nchunks;	  /* the chunk table */
	uint8_t reserved[TREE_HEAD - 88]; /* zero */
};

/* One entry, n of them from TREE_HEAD, in the manifest's order (sorted by path). */
struct tree_rec {
	uint32_t path, pathlen;	    /* into the string table, NUL-terminated there */
	uint32_t target, targetlen; /* a symlink's target; TREE_NONE otherwise */
	uint32_t mode;
	uint8_t type; /* enum verify_ftype */
	uint8_t pad[3];
	int64_t mtime;
	uint64_t size, zsize;
	uint8_t hash[VERIFY_HASH_LEN];
	uint32_t chunk, nchunks; /* a chunked file's chunks in the chunk table; 0, 0 otherwise */
};

/* One chunk of a big file (verify/README.md "Chunks"), in the file's order. */
struct tree_chunk {
	uint64_t offset, size, zsize;
	uint8_t hash[VERIFY_HASH_LEN];
};

_Static_assert(sizeof(struct tree_head) == TREE_HEAD, "tree header layout");
_Static_assert(sizeof(struct tree_rec) == TREE_REC, "tree record layout");
_Static_assert(sizeof(struct tree_chunk) == TREE_CHUNK, "tree chunk layout");

struct store_tree {
	uint8_t *buf; /* malloc'd (built), or mapped read-only (read back) */
	size_t len;
	bool mapped;
	uint32_t n;
	const struct tree_rec *recs;
	const uint32_t *first; /* n + 2: children of i are kids[first[i] .. first[i + 1]) */
	const uint32_t *kids;  /* n */
	const struct tree_chunk *chunks;
	size_t nchunks;
	struct verify_entry *cents; /* the chunk table decoded, as manifest entries' chunks */
	const char *str;
	size_t strlen;
};

/* The byte offsets of the parts for n entries and strlen bytes of strings. */
static size_t off_first(uint32_t n)
{
	return TREE_HEAD + (size_t)n * TREE_REC;
}

static size_t off_chunks(uint32_t n)
{
	size_t end = off_first(n) + ((size_t)n + 2 + (size_t)n) * sizeof(uint32_t);

	return (end + 7) & ~(size_t)7;
}

static size_t off_str(uint32_t n, size_t nchunks)
{
	return off_chunks(n) + nchunks * TREE_CHUNK;
}

static void tree_point(struct store_tree *t)
{
	t->recs = (const struct tree_rec *)(t->buf + TREE_HEAD);
	t->first = (const uint32_t *)(t->buf + off_first(t->n));
	t->kids = t->first + t->n + 2;
	t->chunks = (const struct tree_chunk *)(t->buf + off_chunks(t->n));
	t->str = (const char *)(t->buf + off_str(t->n, t->nchunks));
}

/* The chunk table as entries (type file, no path), for store_tree_entry's chunk lists. */
static int tree_cents(struct store_tree *t)
{
	if (!t->nchunks)
		return 0;
	t->cents = calloc(t->nchunks, sizeof(*t->cents));
	if (!t->cents)
		return -ENOMEM;
	for (size_t i = 0; i < t->nchunks; i++) {
		struct verify_entry *c = &t->cents[i];

		c->type = VERIFY_FILE;
		c->offset = t->chunks[i].offset;
		c->size = t->chunks[i].size;
		c->zsize = t->chunks[i].zsize;
		memcpy(c->hash, t->chunks[i].hash, VERIFY_HASH_LEN);
	}
	return 0;
}

/* The end of a load: t, checked (ret 0), gets its chunk entries and goes to *ret_t; else it
 * is freed. @return ret; -ENOMEM. */
static int tree_done(struct store_tree *t, int ret, struct store_tree **ret_t)
{
	if (ret == 0)
		ret = tree_cents(t);
	if (ret < 0) {
		store_tree_free(t);
		return ret;
	}
	*ret_t = t;
	return 0;
}

void store_tree_free(struct store_tree *t)
{
	if (!t)
		return;
	free(t->cents);
	if (t->mapped)
		munmap(t->buf, t->len);
	else
		free(t->buf);
	free(t);
}

/* Compare path with the first len bytes of key (as strcmp would compare key cut there). */
static int cmp_prefix(const char *path, const char *key, size_t len)
{
	int c = strncmp(path, key, len);

	if (c)
		return c;
	return path[len] ? 1 : 0;
}

/* The index of the entry whose path is the first len bytes of key, -1 when none. */
static long find_len(const struct store_tree *t, const char *key, size_t len)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_prefix(t->str + t->recs[mid].path, key, len);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

long store_tree_find(const struct store_tree *t, const char *path)
{
	if (!*path)
		return (long)t->n;
	return find_len(t, path, strlen(path));
}

size_t store_tree_n(const struct store_tree *t)
{
	return t->n;
}

void store_tree_entry(const struct store_tree *t, size_t i, struct verify_entry *ret_e)
{
	const struct tree_rec *r = &t->recs[i];

	memset(ret_e, 0, sizeof(*ret_e));
	ret_e->path = (char *)(uintptr_t)(t->str + r->path);
	ret_e->type = (enum verify_ftype)r->type;
	ret_e->mode = r->mode;
	ret_e->mtime = r->mtime;
	ret_e->size = r->size;
	ret_e->zsize = r->zsize;
	memcpy(ret_e->hash, r->hash, VERIFY_HASH_LEN);
	if (r->target != TREE_NONE)
		ret_e->target = (char *)(uintptr_t)(t->str + r->target);
	if (r->nchunks) {
		ret_e->chunks = t->cents + r->chunk;
		ret_e->nchunks = r->nchunks;
	}
}

const char *store_tree_path(const struct store_tree *t, size_t i)
{
	return t->str + t->recs[i].path;
}

enum verify_ftype store_tree_type(const struct store_tree *t, size_t i)
{
	return (enum verify_ftype)t->recs[i].type;
}

void store_tree_kids(const struct store_tree *t, size_t i, const uint32_t **ret_kids, size_t *ret_n)
{
	*ret_kids = t->kids + t->first[i];
	*ret_n = t->first[i + 1] - t->first[i];
}

/* ------------------------------------------------------------------------------------------ */
/* Making one from a manifest */

/* Copy s (len bytes and a NUL) to the string table at *pos; its offset in *ret_off. */
static int put_str(struct store_tree *t, size_t *pos, const char *s, size_t len, uint32_t *ret_off)
{
	if (len >= UINT32_MAX || *pos + len + 1 > t->strlen)
		return -EFBIG;
	memcpy((char *)(uintptr_t)t->str + *pos, s, len + 1);
	*ret_off = (uint32_t)*pos;
	*pos += len + 1;
	return 0;
}

/* The children index: a count per parent, a prefix sum, a fill (entries are sorted by path,
 * so each directory's children come out sorted). */
static int tree_kids(struct store_tree *t, const struct verify_manifest *m)
{
	uint32_t n = t->n, *first = (uint32_t *)(uintptr_t)t->first;
	uint32_t *kids = (uint32_t *)(uintptr_t)t->kids, *parent = NULL, *fill = NULL;
	int ret = -ENOMEM;

	parent = calloc(n ? n : 1, sizeof(*parent));
	fill = calloc((size_t)n + 1, sizeof(*fill));
	if (!parent || !fill)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		const char *p = m->entries[i].path, *slash = strrchr(p, '/');
		long k = slash ? find_len(t, p, (size_t)(slash - p)) : (long)n;

		if (k < 0 || (k != (long)n && m->entries[k].type != VERIFY_DIR)) {
			/* verify_manifest_finish adds every parent: a gap is a bug, a file
			 * parent an attack */
			stork_errorf("%s %s: entry \"%s\" lies below a non-directory", m->name,
				     m->version, p);
			ret = STORK_EHOSTILE;
			goto out;
		}
		parent[i] = (uint32_t)k;
		first[k + 1]++;
	}
	for (uint32_t i = 1; i <= n + 1; i++)
		first[i] += first[i - 1];
	for (uint32_t i = 0; i < n; i++)
		kids[first[parent[i]] + fill[parent[i]]++] = i;
	ret = 0;
out:
	free(parent);
	free(fill);
	return ret;
}

int store_tree_build(const struct verify_manifest *m, const uint8_t id[VERIFY_HASH_LEN],
		     struct store_tree **ret_t)
{
	struct store_tree *t = NULL;
	struct tree_head *h;
	size_t strlen_all = 0, pos = 0, nchunks = 0, c = 0;
	int ret = -EFBIG;

	if (m->n >= UINT32_MAX / 4)
		return -EFBIG;
	for (size_t i = 0; i < m->n; i++) {
		strlen_all += strlen(m->entries[i].path) + 1;
		if (m->entries[i].target)
			strlen_all += strlen(m->entries[i].target) + 1;
		nchunks += m->entries[i].nchunks;
	}
	if (strlen_all >= UINT32_MAX || nchunks >= UINT32_MAX / 2)
		return -EFBIG;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n = (uint32_t)m->n;
	t->strlen = strlen_all;
	t->nchunks = nchunks;
	t->len = off_str(t->n, nchunks) + ((strlen_all + 7) & ~(size_t)7) + VERIFY_HASH_LEN;
	ret = -ENOMEM;
	t->buf = calloc(1, t->len);
	if (!t->buf)
		goto out;
	tree_point(t);
	h = (struct tree_head *)t->buf;
	memcpy(h->magic, TREE_MAGIC, sizeof(h->magic));
	h->bom = TREE_BOM;
	h->n = t->n;
	memcpy(h->id, id, VERIFY_HASH_LEN);
	h->len = t->len;
	h->stroff = off_str(t->n, nchunks);
	h->strlen = strlen_all;
	h->chunkoff = off_chunks(t->n);
	h->nchunks = nchunks;
	for (size_t i = 0; i < m->n; i++) {
		const struct verify_entry *e = &m->entries[i];
		struct tree_rec *r = (struct tree_rec *)(uintptr_t)&t->recs[i];

		ret = put_str(t, &pos, e->path, strlen(e->path), &r->path);
		if (ret < 0)
			goto out;
		r->pathlen = (uint32_t)strlen(e->path);
		r->target = r->targetlen = TREE_NONE;
		if (e->target) {
			ret = put_str(t, &pos, e->target, strlen(e->target), &r->target);
			if (ret < 0)
				goto out;
			r->targetlen = (uint32_t)strlen(e->target);
		}
		r->mode = e->mode;
		r->type = (uint8_t)e->type;
		r->mtime = e->mtime;
		r->size = e->size;
		r->zsize = e->zsize;
		memcpy(r->hash, e->hash, VERIFY_HASH_LEN);
		r->chunk = (uint32_t)c;
		r->nchunks = (uint32_t)e->nchunks;
		for (size_t k = 0; k < e->nchunks; k++, c++) {
			struct tree_chunk *tc = (struct tree_chunk *)(uintptr_t)&t->chunks[c];

			tc->offset = e->chunks[k].offset;
			tc->size = e->chunks[k].size;
			tc->zsize = e->chunks[k].zsize;
			memcpy(tc->hash, e->chunks[k].hash, VERIFY_HASH_LEN);
		}
		if (!e->nchunks)
			r->chunk = 0;
	}
	ret = tree_kids(t, m);
	if (ret < 0)
		goto out;
	ret = verify_sha256(t->buf, t->len - VERIFY_HASH_LEN, t->buf + t->len - VERIFY_HASH_LEN);
	ret = tree_done(t, ret, ret_t);
	t = NULL;
out:
	store_tree_free(t);
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading and writing the file */

/* Whether a string of len bytes at off lies in the table and ends with its NUL. */
static bool str_ok(const struct store_tree *t, uint32_t off, uint32_t len)
{
	return (size_t)off + len < t->strlen && t->str[(size_t)off + len] == '\0' &&
	       memchr(t->str + off, '\0', len) == NULL;
}

/* Whether record r's chunk list lies in the table and covers the file, each chunk starting
 * where the one before ends. */
static bool chunks_ok(const struct store_tree *t, const struct tree_rec *r)
{
	uint64_t at = 0;

	if (!r->nchunks)
		return r->chunk == 0;
	if (r->type != VERIFY_FILE || (size_t)r->chunk + r->nchunks > t->nchunks)
		return false;
	for (uint32_t k = 0; k < r->nchunks; k++) {
		const struct tree_chunk *c = &t->chunks[r->chunk + k];

		if (c->offset != at || c->size == 0 || c->size > r->size - at)
			return false;
		at += c->size;
	}
	return at == r->size;
}

/* Everything a reader follows: the checksum first, then each offset and index. Names what is
 * wrong in the detail. @return 0; STORK_EBADHASH. */
static int tree_check(struct store_tree *t, const uint8_t id[VERIFY_HASH_LEN], const char *file)
{
	const struct tree_head *h = (const struct tree_head *)t->buf;
	uint8_t sum[VERIFY_HASH_LEN];
	const char *what = NULL;

	if (t->len < TREE_HEAD + VERIFY_HASH_LEN)
		what = "cut (shorter than its header)";
	else if (memcmp(h->magic, TREE_MAGIC, 8) != 0 || h->bom != TREE_BOM)
		what = "not a tree index of this format";
	else if (h->len != t->len)
		what = "cut or grown (its length is not the one its header gives)";
	else if (verify_sha256(t->buf, t->len - VERIFY_HASH_LEN, sum) < 0 ||
		 memcmp(sum, t->buf + t->len - VERIFY_HASH_LEN, VERIFY_HASH_LEN) != 0)
		what = "damaged (its bytes do not hash to its checksum)";
	else if (memcmp(h->id, id, VERIFY_HASH_LEN) != 0)
		what = "made from another manifest than its name says";
	else if (h->n >= UINT32_MAX / 4 || h->nchunks >= UINT32_MAX / 2 ||
		 h->chunkoff != off_chunks(h->n) || h->stroff != off_str(h->n, h->nchunks) ||
		 h->strlen > t->len || h->stroff + h->strlen + VERIFY_HASH_LEN > t->len)
		what = "its parts do not fit its length";
	if (!what) {
		t->n = h->n;
		t->strlen = h->strlen;
		t->nchunks = h->nchunks;
		tree_point(t);
		for (uint32_t i = 0; i < t->n && !what; i++) {
			const struct tree_rec *r = &t->recs[i];

			if (!str_ok(t, r->path, r->pathlen) ||
			    (r->target != TREE_NONE && !str_ok(t, r->target, r->targetlen)) ||
			    (r->type != VERIFY_FILE && r->type != VERIFY_DIR &&
			     r->type != VERIFY_SYMLINK) ||
			    (r->type == VERIFY_SYMLINK) != (r->target != TREE_NONE))
				what = "an entry points outside the file";
			else if (!chunks_ok(t, r))
				what = "a file's chunk list does not cover its size";
		}
		for (uint32_t i = 0; i <= t->n && !what; i++)
			if (t->first[i] > t->first[i + 1] || t->first[i + 1] > t->n)
				what = "its child index is out of order";
		for (uint32_t i = 0; i < t->n && !what; i++)
			if (t->kids[i] >= t->n)
				what = "its child index points outside the file";
	}
	if (!what)
		return 0;
	stork_errorf("%s: %s", file, what);
	return STORK_EBADHASH;
}

/* "trees/<64 hex>" */
static void tree_name(const uint8_t id[VERIFY_HASH_LEN], char *buf, size_t cap)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(buf, cap, "%s/%s", TREES_DIR, hex);
}

int store_tree_open(struct store *s, const uint8_t id[VERIFY_HASH_LEN], struct store_tree **ret_t)
{
	char name[sizeof(TREES_DIR) + VERIFY_HASH_HEX + 2], file[PATH_MAX];
	struct store_tree *t = NULL;
	struct stat st;
	void *map;
	int fd = -1, ret;

	tree_name(id, name, sizeof(name));
	snprintf(file, sizeof(file), "%s/%s", s->dir, name);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	ret = -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	/* Too short or no regular file: tree_check says so without touching a byte. */
	if (S_ISREG(st.st_mode) && st.st_size >= TREE_HEAD + VERIFY_HASH_LEN &&
	    (uint64_t)st.st_size <= (uint64_t)SSIZE_MAX / 2) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			ret = -errno;
			stork_errorf("%s: %s", file, strerror(errno));
			goto out;
		}
		t->buf = map;
		t->len = (size_t)st.st_size;
		t->mapped = true;
	}
	ret = tree_done(t, tree_check(t, id, file), ret_t);
	t = NULL;
out:
	if (fd >= 0)
		close(fd);
	store_tree_free(t);
	return ret;
}

int node_flat_save(struct store *s, const char *dir, const char *name, const void *buf, size_t len)
{
	char tmp[PATH_MAX];
	static unsigned seq;
	size_t done = 0;
	int fd, ret;

	if (s->readonly)
		return -EROFS;
	ret = node_mkdir_mode(s->dirfd, dir, 0755);
	if (ret < 0)
		return ret;
	/* A name no other writer uses; it is renamed over a damaged file or removed. */
	if (snprintf(tmp, sizeof(tmp), "%s.%ld.%u", name, (long)getpid(),
		     __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED)) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t k = write(fd, (const uint8_t *)buf + done, len - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			ret = -errno;
			goto out;
		}
		done += (size_t)k;
	}
	/* Not synced: a file a crash leaves damaged fails its checksum and is made again. */
	ret = renameat(s->dirfd, tmp, s->dirfd, name) < 0 ? -errno : 0;
out:
	close(fd);
	if (ret < 0)
		unlinkat(s->dirfd, tmp, 0);
	return ret;
}

int node_flat_drop(struct store *s, const char *name)
{
	if (s->readonly)
		return -EROFS;
	return unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

int store_tree_save(struct store *s, const struct store_tree *t)
{
	const struct tree_head *h = (const struct tree_head *)t->buf;
	char name[sizeof(TREES_DIR) + VERIFY_HASH_HEX + 2];

	tree_name(h->id, name, sizeof(name));
	return node_flat_save(s, TREES_DIR, name, t->buf, t->len);
}

int store_tree_drop(struct store *s, const uint8_t id[VERIFY_HASH_LEN])
{
	char name[sizeof(TREES_DIR) + VERIFY_HASH_HEX + 2];

	tree_name(id, name, sizeof(name));
	return node_flat_drop(s, name);
}
