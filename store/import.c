/* store/import.c: turn a package source into objects plus a manifest.
 *
 * Sources are untrusted: a directory is walked without following a single symlink, archives
 * are read through libarchive with only the formats we accept enabled (tar, ar for .deb, cpio
 * inside .rpm; never mtree, which would read files named by the archive). Every member path
 * is checked before any of its bytes are stored, and a member that could make a reader of the
 * mounted tree leave it (absolute paths, "..", members below symlinks), a device, or anything
 * ambiguous (duplicates, hard links to nothing) refuses the whole source. The rules and
 * messages are in store/README.md.
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

#include <archive.h>
#include <archive_entry.h>

#include "store/store.h"

#define DEFAULT_MAX_SIZE  (64ull << 30)
#define PATH_MAX_LEN	  4096
#define NAME_MAX_LEN	  255
#define IOBUF_LEN	  (256 * 1024)
#define PROGRESS_STEP	  (1024 * 1024)
#define CONTROL_MAX	  (1024 * 1024)
#define DEBIAN_BINARY_MAX 64

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

static uint64_t hash_str(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* The slot holding path[0..len), or the free slot where it would go. */
static struct seen *pathset_slot(struct pathset *s, const char *path, size_t len)
{
	size_t i = (size_t)hash_str(path, len) & (s->cap - 1);

	for (;;) {
		struct seen *e = &s->v[i];

		if (!e->path || (strlen(e->path) == len && memcmp(e->path, path, len) == 0))
			return e;
		i = (i + 1) & (s->cap - 1);
	}
}

static struct seen *pathset_find(struct pathset *s, const char *path, size_t len)
{
	struct seen *e;

	if (s->cap == 0)
		return NULL;
	e = pathset_slot(s, path, len);
	return e->path ? e : NULL;
}

/* Insert path[0..len) (not present). @return the new slot, NULL on ENOMEM. */
static struct seen *pathset_add(struct pathset *s, const char *path, size_t len,
				enum seen_kind kind, size_t idx)
{
	struct seen *e;

	if ((s->n + 1) * 4 > s->cap * 3) {
		size_t ncap = s->cap ? s->cap * 2 : 1024, i;
		struct pathset ns = {calloc(ncap, sizeof(struct seen)), ncap, s->n};

		if (!ns.v)
			return NULL;
		for (i = 0; i < s->cap; i++)
			if (s->v[i].path)
				*pathset_slot(&ns, s->v[i].path, strlen(s->v[i].path)) = s->v[i];
		free(s->v);
		*s = ns;
	}
	e = pathset_slot(s, path, len);
	e->path = strndup(path, len);
	if (!e->path)
		return NULL;
	e->kind = kind;
	e->idx = idx;
	s->n++;
	return e;
}

static void pathset_fini(struct pathset *s)
{
	size_t i;

	for (i = 0; i < s->cap; i++)
		free(s->v[i].path);
	free(s->v);
}

/* ------------------------------------------------------------------------------------------ */
/* The import. */

struct obj {
	uint8_t hash[VERIFY_HASH_LEN];
	uint64_t size, zsize;
};

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
	/* progress */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *pctx;
	struct archive *prog_a; /* source consumed = its raw bytes; NULL: dir_done */
	uint64_t dir_done, total, next_report;
	uint8_t *buf;
};

static bool utf8_valid(const char *s);

/* Quote a member name for a message: control bytes (and every byte >= 0x80 of a name that is
 * not UTF-8), '"' and '\\' escaped, long names cut. */
static const char *quote(const char *s, char *out, size_t outlen)
{
	bool utf8 = utf8_valid(s);
	size_t o = 0;

	for (; *s && o + 8 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		else if (c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, outlen - o, "\\%c", c);
		else
			out[o++] = (char)c;
	}
	/* Cut at a character boundary (multi-byte characters were copied byte for byte). */
	while (*s && utf8 && ((unsigned char)*s & 0xc0) == 0x80 && o > 0) {
		s--;
		o--;
	}
	if (*s)
		o += (size_t)snprintf(out + o, outlen - o, "...");
	out[o] = '\0';
	return out;
}

/* "SOURCE: entry "PATH": MESSAGE" (or "SOURCE: MESSAGE" without a path); returns err. */
__attribute__((format(printf, 4, 5))) static int fail(struct imp *im, int err, const char *path,
						      const char *fmt, ...)
{
	char msg[768], q[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path)
		stork_errorf("%s: entry \"%s\": %s", im->src, quote(path, q, sizeof(q)), msg);
	else
		stork_errorf("%s: %s", im->src, msg);
	return err;
}

/* Put the source in front of a detail left by a callee. */
static int prefixed(struct imp *im, int err)
{
	char d[1024];

	snprintf(d, sizeof(d), "%s", stork_error_detail());
	if (d[0])
		stork_errorf("%s: %s", im->src, d);
	else
		stork_errorf("%s: %s", im->src, storkfs_strerror(err));
	return err;
}

static void report(struct imp *im, bool last)
{
	uint64_t done;

	if (!im->progress)
		return;
	done = im->prog_a ? (uint64_t)archive_filter_bytes(im->prog_a, -1) : im->dir_done;
	if (last)
		done = im->total ? im->total : done;
	else if (done < im->next_report)
		return;
	im->next_report = done + PROGRESS_STEP;
	im->progress(im->pctx, done, im->total);
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned char c = *p;
		uint32_t cp;
		int n, i;

		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Turn a member name into a clean relative path in out (PATH_MAX_LEN + 1 bytes): a leading
 * "./" and a trailing '/' go, everything else that is not plain is refused. *ret_root is set
 * for the archive root ("." or "./"), which is not an entry. */
static int clean_path(struct imp *im, const char *raw, char *out, bool *ret_root)
{
	const char *p = raw, *c;
	size_t len;

	*ret_root = false;
	if (has_control(raw))
		return fail(im, STORK_EHOSTILE, raw, "name contains a control character");
	if (!utf8_valid(raw))
		return fail(im, STORK_EHOSTILE, raw, "name is not valid UTF-8");
	if (raw[0] == '/')
		return fail(im, STORK_EHOSTILE, raw, "absolute path");
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		len--;
	if (len == 0 || (len == 1 && p[0] == '.')) {
		*ret_root = true;
		return 0;
	}
	if (len > PATH_MAX_LEN)
		return fail(im, STORK_EHOSTILE, raw, "path longer than %d bytes", PATH_MAX_LEN);
	memcpy(out, p, len);
	out[len] = '\0';
	for (c = out;;) {
		const char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);

		if (clen == 2 && c[0] == '.' && c[1] == '.')
			return fail(im, STORK_EHOSTILE, raw, "path leaves the package root");
		if (clen == 0 || (clen == 1 && c[0] == '.'))
			return fail(im, STORK_EHOSTILE, raw,
				    "path has an empty or \".\" component");
		if (clen > NAME_MAX_LEN)
			return fail(im, STORK_EHOSTILE, raw,
				    "a path component longer than %d bytes", NAME_MAX_LEN);
		if (!slash)
			break;
		c = slash + 1;
	}
	return 0;
}

/* A directory entry's name (no '/', never "." or ".."): the rest of clean_path's rules. Keeps
 * the walk's stack frames small (no path buffer per level). */
static int check_name(struct imp *im, const char *path, const char *name)
{
	if (has_control(name))
		return fail(im, STORK_EHOSTILE, path, "name contains a control character");
	if (!utf8_valid(name))
		return fail(im, STORK_EHOSTILE, path, "name is not valid UTF-8");
	if (strlen(name) > NAME_MAX_LEN)
		return fail(im, STORK_EHOSTILE, path, "a path component longer than %d bytes",
			    NAME_MAX_LEN);
	return 0;
}

static const char *kind_name(enum seen_kind k)
{
	return k == SEEN_FILE ? "file" : k == SEEN_SYMLINK ? "symlink" : "directory";
}

/* Check that path may be added as kind: not seen before, no parent that is not a directory,
 * not a non-directory where earlier members put children. Records the parents. */
static int claim_path(struct imp *im, const char *path, enum seen_kind kind)
{
	struct seen *e;
	const char *slash;

	e = pathset_find(&im->seen, path, strlen(path));
	if (e && e->kind != SEEN_PARENT)
		return fail(im, STORK_EHOSTILE, path, "duplicate path");
	if (e && kind != SEEN_DIR)
		return fail(im, STORK_EHOSTILE, path,
			    "a %s, but earlier members of the archive are below it",
			    kind_name(kind));
	for (slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
		size_t plen = (size_t)(slash - path);

		e = pathset_find(&im->seen, path, plen);
		if (e && (e->kind == SEEN_FILE || e->kind == SEEN_SYMLINK))
			return fail(im, STORK_EHOSTILE, path, "below the %s \"%.*s\"",
				    kind_name(e->kind), (int)plen, path);
		if (!e && !pathset_add(&im->seen, path, plen, SEEN_PARENT, 0))
			return -ENOMEM;
	}
	return 0;
}

/* Add an entry to the manifest and record it. */
static int add_entry(struct imp *im, const struct verify_entry *ve, enum seen_kind kind)
{
	struct seen *e;
	size_t idx;
	int r;

	r = verify_manifest_add(im->m, ve);
	if (r < 0)
		return prefixed(im, r);
	idx = im->m->n - 1;
	if (idx >= im->link_cap) {
		size_t ncap = im->link_cap ? im->link_cap * 2 : 256;
		size_t *n = realloc(im->link_next, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		im->link_next = n;
		im->link_cap = ncap;
	}
	im->link_next[idx] = idx;
	e = pathset_find(&im->seen, ve->path, strlen(ve->path));
	if (e) { /* a parent that is now listed itself */
		e->kind = kind;
		e->idx = idx;
		return 0;
	}
	if (!pathset_add(&im->seen, ve->path, strlen(ve->path), kind, idx))
		return -ENOMEM;
	return 0;
}

static int check_size(struct imp *im, const char *path, uint64_t more)
{
	if (more > im->max_size || im->sum > im->max_size - more)
		return fail(im, STORK_ETOOBIG, path, "unpacks to more than %llu bytes (--max-size)",
			    (unsigned long long)im->max_size);
	return 0;
}

/* A reader of one member's bytes: n > 0 bytes, 0 at the end, or a negative code with the
 * detail set. */
typedef ssize_t (*read_fn)(struct imp *im, void *ctx, const char *path, void *buf, size_t len);

/* Stream one member into an object. */
static int store_data(struct imp *im, const char *path, read_fn rd, void *ctx, struct obj *ret)
{
	struct store_objwriter *w = NULL;
	uint64_t got = 0;
	bool is_new;
	int r;

	r = store_objwriter_new(im->repofd, &w);
	if (r < 0)
		return prefixed(im, r);
	for (;;) {
		ssize_t n = rd(im, ctx, path, im->buf, IOBUF_LEN);

		if (n < 0) {
			r = (int)n;
			goto fail;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
		r = check_size(im, path, got);
		if (r < 0)
			goto fail;
		r = store_objwriter_write(w, im->buf, (size_t)n);
		if (r < 0) {
			r = prefixed(im, r);
			goto fail;
		}
		report(im, false);
	}
	r = store_objwriter_commit(w, ret->hash, &ret->size, &ret->zsize, &is_new);
	w = NULL;
	if (r < 0)
		return prefixed(im, r);
	if (is_new) {
		im->new_objects++;
		im->new_bytes += ret->size;
	}
	return 0;
fail:
	store_objwriter_abort(w);
	return r;
}

static int add_file(struct imp *im, const char *path, uint32_t mode, int64_t mtime,
		    const struct obj *o)
{
	struct verify_entry ve = {0};
	int r;

	r = check_size(im, path, o->size);
	if (r < 0)
		return r;
	im->sum += o->size;
	ve.path = (char *)path;
	ve.type = VERIFY_FILE;
	ve.mode = mode & 07777;
	ve.mtime = mtime;
	ve.size = o->size;
	ve.zsize = o->zsize;
	memcpy(ve.hash, o->hash, VERIFY_HASH_LEN);
	return add_entry(im, &ve, SEEN_FILE);
}

static int add_dir(struct imp *im, const char *path, uint32_t mode, int64_t mtime)
{
	struct verify_entry ve = {0};

	ve.path = (char *)path;
	ve.type = VERIFY_DIR;
	ve.mode = mode & 07777;
	ve.mtime = mtime;
	return add_entry(im, &ve, SEEN_DIR);
}

static int add_symlink(struct imp *im, const char *path, uint32_t mode, int64_t mtime,
		       const char *target)
{
	struct verify_entry ve = {0};

	if (!target || !target[0])
		return fail(im, STORK_EFORMAT, path, "symlink without a target");
	if (has_control(target))
		return fail(im, STORK_EHOSTILE, path,
			    "symlink target contains a control character");
	if (!utf8_valid(target))
		return fail(im, STORK_EHOSTILE, path, "symlink target is not valid UTF-8");
	if (strlen(target) > PATH_MAX_LEN)
		return fail(im, STORK_EHOSTILE, path, "symlink target longer than %d bytes",
			    PATH_MAX_LEN);
	ve.path = (char *)path;
	ve.type = VERIFY_SYMLINK;
	ve.mode = mode & 07777;
	ve.mtime = mtime;
	ve.size = strlen(target);
	ve.target = (char *)target;
	return add_entry(im, &ve, SEEN_SYMLINK);
}

/* ------------------------------------------------------------------------------------------ */
/* Archives. */

static int archive_fail(struct imp *im, struct archive *a, const char *path)
{
	const char *msg = archive_error_string(a);

	if (!msg)
		msg = "unknown error";
	if (path)
		return fail(im, STORK_EFORMAT, path, "truncated or corrupt archive: %s", msg);
	return fail(im, STORK_EFORMAT, NULL, "truncated or corrupt archive: %s", msg);
}

static ssize_t archive_rd(struct imp *im, void *ctx, const char *path, void *buf, size_t len)
{
	struct archive *a = ctx;
	la_ssize_t n;

	n = archive_read_data(a, buf, len);
	if (n < 0)
		return archive_fail(im, a, path);
	return n;
}

/* Point every member of target's hard link group at o (a link that carries the data, as cpio
 * archives do with the last link of a group). */
static int relink_group(struct imp *im, size_t first, const struct obj *o)
{
	size_t i = first;

	do {
		struct verify_entry *ve = &im->m->entries[i];
		int r;

		i = im->link_next[i];

		if (ve->size == o->size && memcmp(ve->hash, o->hash, VERIFY_HASH_LEN) == 0)
			continue;
		im->sum -= ve->size;
		r = check_size(im, ve->path, o->size);
		if (r < 0)
			return r;
		im->sum += o->size;
		memcpy(ve->hash, o->hash, VERIFY_HASH_LEN);
		ve->size = o->size;
		ve->zsize = o->zsize;
	} while (i != first);
	return 0;
}

static int archive_hardlink(struct imp *im, struct archive *a, struct archive_entry *ae,
			    const char *path, uint32_t mode, int64_t mtime)
{
	const char *raw = archive_entry_hardlink(ae);
	char target[PATH_MAX_LEN + 1];
	struct seen *t = NULL;
	struct obj o;
	bool root;
	size_t tidx, idx;
	int r;

	/* A target that is not a clean path cannot be an earlier member. */
	if (clean_path(im, raw, target, &root) == 0 && !root)
		t = pathset_find(&im->seen, target, strlen(target));
	if (!t || t->kind == SEEN_PARENT) {
		char q[320];

		return fail(im, STORK_EHOSTILE, path,
			    "hard link to \"%s\", which is not an earlier member of the archive",
			    quote(raw, q, sizeof(q)));
	}
	if (t->kind == SEEN_DIR)
		return fail(im, STORK_EHOSTILE, path, "hard link to the directory \"%s\"", target);
	tidx = t->idx; /* t moves when the set grows */
	if (t->kind == SEEN_SYMLINK) {
		char *lt = strdup(im->m->entries[tidx].target);

		r = lt ? claim_path(im, path, SEEN_SYMLINK) : -ENOMEM;
		if (r == 0)
			r = add_symlink(im, path, im->m->entries[tidx].mode,
					im->m->entries[tidx].mtime, lt);
		free(lt);
		return r;
	}

	r = claim_path(im, path, SEEN_FILE);
	if (r < 0)
		return r;
	if (archive_entry_size_is_set(ae) && archive_entry_size(ae) > 0) {
		r = check_size(im, path, (uint64_t)archive_entry_size(ae));
		if (r < 0)
			return r;
		r = store_data(im, path, archive_rd, a, &o);
		if (r < 0)
			return r;
		r = relink_group(im, tidx, &o);
		if (r < 0)
			return r;
	} else {
		const struct verify_entry *te = &im->m->entries[tidx];

		memcpy(o.hash, te->hash, VERIFY_HASH_LEN);
		o.size = te->size;
		o.zsize = te->zsize;
	}
	/* Use the target's mode and mtime: a hard link is the same inode. */
	r = add_file(im, path, im->m->entries[tidx].mode, im->m->entries[tidx].mtime, &o);
	if (r < 0)
		return r;
	idx = im->m->n - 1;
	im->link_next[idx] = im->link_next[tidx];
	im->link_next[tidx] = idx;
	return 0;
}

static int archive_member(struct imp *im, struct archive *a, struct archive_entry *ae)
{
	const char *raw = archive_entry_pathname(ae);
	char path[PATH_MAX_LEN + 1];
	uint32_t mode = (uint32_t)archive_entry_mode(ae) & 07777;
	int64_t mtime = archive_entry_mtime_is_set(ae) ? (int64_t)archive_entry_mtime(ae) : 0;
	bool root;
	struct obj o;
	int r;

	if (!raw)
		raw = archive_entry_pathname_utf8(ae);
	if (!raw)
		return fail(im, STORK_EFORMAT, NULL, "a member whose name cannot be read");
	r = clean_path(im, raw, path, &root);
	if (r < 0)
		return r;
	if (root) {
		if (archive_entry_filetype(ae) != AE_IFDIR)
			return fail(im, STORK_EHOSTILE, raw, "the package root is not a directory");
		return 0;
	}
	if (archive_entry_hardlink(ae))
		return archive_hardlink(im, a, ae, path, mode, mtime);

	switch (archive_entry_filetype(ae)) {
	case AE_IFREG:
		r = claim_path(im, path, SEEN_FILE);
		if (r < 0)
			return r;
		if (archive_entry_size_is_set(ae) && archive_entry_size(ae) > 0) {
			r = check_size(im, path, (uint64_t)archive_entry_size(ae));
			if (r < 0)
				return r;
		}
		r = store_data(im, path, archive_rd, a, &o);
		if (r < 0)
			return r;
		if (archive_entry_size_is_set(ae) && o.size != (uint64_t)archive_entry_size(ae))
			return fail(im, STORK_EFORMAT, path,
				    "truncated or corrupt archive: %llu bytes of data where the "
				    "header says %lld",
				    (unsigned long long)o.size, (long long)archive_entry_size(ae));
		return add_file(im, path, mode, mtime, &o);
	case AE_IFDIR:
		r = claim_path(im, path, SEEN_DIR);
		if (r < 0)
			return r;
		return add_dir(im, path, mode, mtime);
	case AE_IFLNK:
		r = claim_path(im, path, SEEN_SYMLINK);
		if (r < 0)
			return r;
		return add_symlink(im, path, mode, mtime, archive_entry_symlink(ae));
	case AE_IFCHR:
	case AE_IFBLK:
		return fail(im, STORK_EHOSTILE, path, "device nodes are not allowed in packages");
	case AE_IFIFO:
		return fail(im, STORK_EHOSTILE, path, "fifos are not allowed in packages");
	case AE_IFSOCK:
		return fail(im, STORK_EHOSTILE, path, "sockets are not allowed in packages");
	default:
		return fail(im, STORK_EHOSTILE, path, "unknown file type 0%o",
			    (unsigned)archive_entry_filetype(ae));
	}
}

/* A header read failed or succeeded with a warning we can live with. */
static bool header_ok(int r)
{
	return r == ARCHIVE_OK || r == ARCHIVE_WARN;
}

/* Import every member of an archive whose first header (ae) was already read. */
static int archive_members(struct imp *im, struct archive *a, struct archive_entry *ae)
{
	char last[PATH_MAX_LEN + 1] = "";
	int r;

	for (;;) {
		const char *name = archive_entry_pathname(ae);

		snprintf(last, sizeof(last), "%s", name ? name : "");
		r = archive_member(im, a, ae);
		if (r < 0)
			return r;
		report(im, false);
		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			return 0;
		if (!header_ok(r)) {
			const char *msg = archive_error_string(a);

			return fail(im, STORK_EFORMAT, last,
				    "truncated or corrupt archive after this member: %s",
				    msg ? msg : "unknown error");
		}
	}
}

static void support_filters(struct archive *a, bool rpm)
{
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_lz4(a);
	if (rpm)
		archive_read_support_filter_rpm(a);
}

static bool has_filter(struct archive *a, int code)
{
	int i, n = archive_filter_count(a);

	for (i = 0; i < n; i++)
		if (archive_filter_code(a, i) == code)
			return true;
	return false;
}

/* .deb members are read through a second archive whose input is the outer member's data. */
struct nested {
	struct imp *im;
	struct archive *outer;
	void *buf; /* not im->buf: the inner archive copies from here into that */
};

static la_ssize_t nested_read(struct archive *a, void *ctx, const void **ret_buf)
{
	struct nested *n = ctx;
	la_ssize_t r;

	r = archive_read_data(n->outer, n->buf, IOBUF_LEN);
	if (r < 0) {
		const char *msg = archive_error_string(n->outer);

		archive_set_error(a, EIO, "%s", msg ? msg : "read error");
		return -1;
	}
	*ret_buf = n->buf;
	return r;
}

/* Open the current member of outer as a tar archive and read its first header. r is
 * ARCHIVE_EOF for an empty archive. */
static int nested_open(struct imp *im, struct nested *n, const char *member, struct archive **ret_a,
		       struct archive_entry **ret_ae)
{
	struct archive *a;
	int r;

	n->buf = malloc(IOBUF_LEN);
	if (!n->buf)
		return -ENOMEM;
	a = archive_read_new();
	if (!a)
		return -ENOMEM;
	support_filters(a, false);
	archive_read_support_format_tar(a);
	r = archive_read_open(a, n, NULL, nested_read, NULL);
	if (r == ARCHIVE_OK)
		r = archive_read_next_header(a, ret_ae);
	if (r == ARCHIVE_EOF) {
		archive_read_free(a);
		return fail(im, STORK_EFORMAT, NULL, "member %s is an empty archive", member);
	}
	if (!header_ok(r)) {
		const char *msg = archive_error_string(a);

		r = fail(im, STORK_EFORMAT, NULL, "member %s: not a tar archive: %s", member,
			 msg ? msg : "unknown error");
		archive_read_free(a);
		return r;
	}
	*ret_a = a;
	return 0;
}

static bool member_is(const char *name, const char *base)
{
	size_t len = strlen(base);

	return strncmp(name, base, len) == 0 && (name[len] == '\0' || name[len] == '.');
}

/* Read ./control from control.tar.* and add its dependencies. */
static int deb_control(struct imp *im, struct archive *outer, const char *member)
{
	struct nested n = {im, outer, NULL};
	struct archive *a = NULL;
	struct archive_entry *ae;
	char *text = NULL;
	size_t len = 0;
	bool found = false;
	int r;

	r = nested_open(im, &n, member, &a, &ae);
	if (r < 0)
		goto out;
	for (;;) {
		const char *name = archive_entry_pathname(ae);

		while (name && name[0] == '.' && name[1] == '/')
			name += 2;
		if (name && strcmp(name, "control") == 0 &&
		    archive_entry_filetype(ae) == AE_IFREG) {
			la_ssize_t got;

			if (found) {
				r = fail(im, STORK_EFORMAT, NULL, "%s: two control files", member);
				goto out;
			}
			found = true;
			text = malloc(CONTROL_MAX + 1);
			if (!text) {
				r = -ENOMEM;
				goto out;
			}
			for (;;) {
				got = archive_read_data(a, text + len, CONTROL_MAX + 1 - len);
				if (got < 0) {
					r = archive_fail(im, a, "control");
					goto out;
				}
				if (got == 0)
					break;
				len += (size_t)got;
				if (len > CONTROL_MAX) {
					r = fail(im, STORK_EFORMAT, NULL,
						 "%s: control file larger than %d bytes", member,
						 CONTROL_MAX);
					goto out;
				}
			}
		}
		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		if (!header_ok(r)) {
			r = archive_fail(im, a, NULL);
			goto out;
		}
	}
	if (!found) {
		r = fail(im, STORK_EFORMAT, NULL, "%s has no control file", member);
		goto out;
	}
	r = store_deb_control_deps(text, len, im->m);
	if (r < 0)
		r = prefixed(im, r);
out:
	free(text);
	archive_read_free(a);
	free(n.buf);
	return r;
}

static int deb_data(struct imp *im, struct archive *outer, const char *member)
{
	struct nested n = {im, outer, NULL};
	struct archive *a = NULL;
	struct archive_entry *ae;
	int r;

	r = nested_open(im, &n, member, &a, &ae);
	if (r == 0)
		r = archive_members(im, a, ae);
	archive_read_free(a);
	free(n.buf);
	return r;
}

/* A .deb: debian-binary, control.tar.*, data.tar.*, in this order (deb(5)); members whose
 * names start with '_' (signatures) are skipped. */
static int import_deb(struct imp *im, struct archive *a, struct archive_entry *ae)
{
	char vers[DEBIAN_BINARY_MAX + 1], member[80];
	bool control = false, data = false;
	la_ssize_t got;
	size_t len = 0;
	int r;

	if (strcmp(archive_entry_pathname(ae), "debian-binary") != 0)
		return fail(im, STORK_EUNSUPPORTED, NULL,
			    "an ar archive that is not a Debian package (no debian-binary first)");
	for (;;) {
		got = archive_read_data(a, vers + len, DEBIAN_BINARY_MAX - len);
		if (got < 0)
			return archive_fail(im, a, "debian-binary");
		if (got == 0)
			break;
		len += (size_t)got;
		if (len == DEBIAN_BINARY_MAX)
			return fail(im, STORK_EFORMAT, NULL, "debian-binary is too long");
	}
	vers[len] = '\0';
	if (strncmp(vers, "2.", 2) != 0)
		return fail(im, STORK_EUNSUPPORTED, NULL,
			    "Debian package format \"%.*s\" (only 2.x is supported)",
			    (int)strcspn(vers, "\n"), vers);

	for (;;) {
		const char *name;

		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		if (!header_ok(r))
			return archive_fail(im, a, NULL);
		name = archive_entry_pathname(ae);
		if (!name)
			return fail(im, STORK_EFORMAT, NULL, "an ar member without a name");
		quote(name, member, sizeof(member)); /* printable */
		if (member_is(name, "control.tar")) {
			if (control || data)
				return fail(im, STORK_EFORMAT, NULL, "member %s out of order",
					    member);
			r = deb_control(im, a, member);
			control = true;
		} else if (member_is(name, "data.tar")) {
			if (!control || data)
				return fail(im, STORK_EFORMAT, NULL, "member %s out of order",
					    member);
			r = deb_data(im, a, member);
			data = true;
		} else if (name[0] == '_') {
			continue;
		} else {
			return fail(im, STORK_EFORMAT, NULL, "unexpected member \"%s\"", member);
		}
		if (r < 0)
			return r;
	}
	if (!data)
		return fail(im, STORK_EFORMAT, NULL, "no %s member",
			    control ? "data.tar" : "control.tar");
	return 0;
}

static int rpm_deps(struct imp *im, int fd)
{
	struct stat a, b;
	int fd2, r;

	/* A description of its own so libarchive's reading position stays untouched. */
	fd2 = open(im->src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd2 < 0)
		return fail(im, -errno, NULL, "cannot open again: %s", strerror(errno));
	if (fstat(fd, &a) < 0 || fstat(fd2, &b) < 0) {
		r = fail(im, -errno, NULL, "stat: %s", strerror(errno));
		goto out;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		r = fail(im, -EAGAIN, NULL, "replaced while being read");
		goto out;
	}
	r = store_rpm_deps(fd2, im->m);
	if (r < 0)
		r = prefixed(im, r);
out:
	close(fd2);
	return r;
}

static int import_file(struct imp *im, int fd, const char *name, const char *version)
{
	struct archive *a;
	struct archive_entry *ae = NULL;
	const char *format;
	bool empty;
	int r, fmt;

	a = archive_read_new();
	if (!a)
		return -ENOMEM;
	support_filters(a, true);
	archive_read_support_format_tar(a);
	archive_read_support_format_ar(a);
	archive_read_support_format_cpio(a);
	im->prog_a = a;
	r = archive_read_open_fd(a, fd, 64 * 1024);
	if (r == ARCHIVE_OK)
		r = archive_read_next_header(a, &ae);
	fmt = archive_format(a) & ARCHIVE_FORMAT_BASE_MASK;
	if (r != ARCHIVE_EOF && !header_ok(r)) {
		const char *msg = archive_error_string(a);

		if (fmt == 0)
			r = fail(im, STORK_EUNSUPPORTED, NULL,
				 "not a package this tool reads (a directory, a tar archive, a "
				 ".deb or an .rpm): %s",
				 msg ? msg : "unknown format");
		else
			r = archive_fail(im, a, NULL);
		goto out;
	}
	empty = r == ARCHIVE_EOF;

	if (fmt == ARCHIVE_FORMAT_TAR) {
		format = "tar";
	} else if (fmt == ARCHIVE_FORMAT_AR && archive_filter_count(a) == 1) {
		format = "deb";
	} else if (fmt == ARCHIVE_FORMAT_CPIO && has_filter(a, ARCHIVE_FILTER_RPM)) {
		format = "rpm";
	} else {
		r = fail(im, STORK_EUNSUPPORTED, NULL,
			 "not a package this tool reads (a directory, a tar archive, a .deb or an "
			 ".rpm): %s archive%s",
			 archive_format_name(a) ? archive_format_name(a) : "unknown",
			 archive_filter_count(a) > 1 ? " inside a compressed stream" : "");
		goto out;
	}
	r = verify_manifest_new(name, version, format, &im->m);
	if (r < 0) {
		r = prefixed(im, r);
		goto out;
	}

	if (strcmp(format, "deb") == 0) {
		if (empty)
			r = fail(im, STORK_EFORMAT, NULL, "an empty ar archive");
		else
			r = import_deb(im, a, ae);
		goto out;
	}
	if (strcmp(format, "rpm") == 0) {
		r = rpm_deps(im, fd);
		if (r < 0)
			goto out;
	}
	r = empty ? 0 : archive_members(im, a, ae);
out:
	im->prog_a = NULL;
	archive_read_free(a);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Directories. */

struct fd_reader {
	int fd;
};

static ssize_t fd_rd(struct imp *im, void *ctx, const char *path, void *buf, size_t len)
{
	struct fd_reader *fr = ctx;

	for (;;) {
		ssize_t n = read(fr->fd, buf, len);

		if (n >= 0) {
			im->dir_done += (uint64_t)n;
			return n;
		}
		if (errno != EINTR)
			return fail(im, -errno, path, "read: %s", strerror(errno));
	}
}

static int dir_file(struct imp *im, int dfd, const char *name, const char *path,
		    const struct stat *st)
{
	struct fd_reader fr;
	struct stat st2;
	struct obj o;
	int r;

	r = check_size(im, path, (uint64_t)st->st_size);
	if (r < 0)
		return r;
	/* O_NONBLOCK: something swapped in for the file must not make us wait. */
	fr.fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fr.fd < 0)
		return fail(im, -errno, path, "open: %s", strerror(errno));
	if (fstat(fr.fd, &st2) < 0) {
		r = fail(im, -errno, path, "stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st2.st_mode) || st2.st_ino != st->st_ino || st2.st_dev != st->st_dev) {
		r = fail(im, -EAGAIN, path, "replaced while being read");
		goto out;
	}
	r = store_data(im, path, fd_rd, &fr, &o);
	if (r < 0)
		goto out;
	if (o.size != (uint64_t)st->st_size) {
		r = fail(im, -EAGAIN, path, "changed while being read (%lld bytes, read %llu)",
			 (long long)st->st_size, (unsigned long long)o.size);
		goto out;
	}
	r = add_file(im, path, st->st_mode, st->st_mtim.tv_sec, &o);
out:
	close(fr.fd);
	return r;
}

static int dir_symlink(struct imp *im, int dfd, const char *name, const char *path,
		       const struct stat *st)
{
	char target[PATH_MAX_LEN + 2];
	ssize_t n;

	n = readlinkat(dfd, name, target, sizeof(target));
	if (n < 0)
		return fail(im, -errno, path, "readlink: %s", strerror(errno));
	if ((size_t)n >= sizeof(target) - 1)
		return fail(im, STORK_EHOSTILE, path, "symlink target longer than %d bytes",
			    PATH_MAX_LEN);
	target[n] = '\0';
	return add_symlink(im, path, st->st_mode, st->st_mtim.tv_sec, target);
}

/* One directory being read; the walk keeps a stack of them on the heap, so a deep tree costs
 * memory and descriptors (EMFILE ends it with an error), never the C stack. */
struct frame {
	DIR *d;
	size_t len; /* bytes of its path in the walk's path buffer */
};

/* Open the directory `name` in parent as a new frame, checking it is the one stat'ed. */
static int push_dir(struct imp *im, struct frame **stack, size_t *n, size_t *cap, int parent,
		    const char *name, const char *path, size_t len, const struct stat *st)
{
	struct stat cst;
	DIR *d;
	int fd;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct frame *ns = realloc(*stack, ncap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		*stack = ns;
		*cap = ncap;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(im, -errno, len ? path : NULL, "open: %s", strerror(errno));
	if (st && (fstat(fd, &cst) < 0 || cst.st_ino != st->st_ino || cst.st_dev != st->st_dev)) {
		close(fd);
		return fail(im, -EAGAIN, path, "replaced while being read");
	}
	d = fdopendir(fd);
	if (!d) {
		int r = fail(im, -errno, len ? path : NULL, "opendir: %s", strerror(errno));

		close(fd);
		return r;
	}
	(*stack)[*n].d = d;
	(*stack)[*n].len = len;
	(*n)++;
	return 0;
}

/* One directory entry (its path already in path) of the directory open as dfd. Directories
 * are pushed onto the stack. */
static int walk_entry(struct imp *im, struct frame **stack, size_t *n, size_t *cap, int dfd,
		      const char *name, const char *path, size_t len)
{
	struct stat st;
	int r;

	r = check_name(im, path, name);
	if (r < 0)
		return r;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(im, -errno, path, "stat: %s", strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		r = claim_path(im, path, SEEN_DIR);
		if (r == 0)
			r = add_dir(im, path, st.st_mode, st.st_mtim.tv_sec);
		if (r == 0)
			r = push_dir(im, stack, n, cap, dfd, name, path, len, &st);
		return r;
	}
	if (S_ISREG(st.st_mode)) {
		r = claim_path(im, path, SEEN_FILE);
		return r < 0 ? r : dir_file(im, dfd, name, path, &st);
	}
	if (S_ISLNK(st.st_mode)) {
		r = claim_path(im, path, SEEN_SYMLINK);
		return r < 0 ? r : dir_symlink(im, dfd, name, path, &st);
	}
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		return fail(im, STORK_EHOSTILE, path, "device nodes are not allowed in packages");
	if (S_ISFIFO(st.st_mode))
		return fail(im, STORK_EHOSTILE, path, "fifos are not allowed in packages");
	if (S_ISSOCK(st.st_mode))
		return fail(im, STORK_EHOSTILE, path, "sockets are not allowed in packages");
	return fail(im, STORK_EHOSTILE, path, "unknown file type");
}

/* Walk the tree below the directory open as rootfd (not taken over). */
static int walk(struct imp *im, int rootfd)
{
	char path[PATH_MAX_LEN + 1] = "";
	struct frame *stack = NULL;
	size_t n = 0, cap = 0;
	int r;

	r = push_dir(im, &stack, &n, &cap, rootfd, ".", path, 0, NULL);
	while (r == 0 && n > 0) {
		struct frame *f = &stack[n - 1];
		size_t len = f->len, nlen, clen;
		struct dirent *de;
		const char *name;

		path[len] = '\0';
		errno = 0;
		de = readdir(f->d);
		if (!de) {
			if (errno) {
				r = fail(im, -errno, len ? path : NULL, "readdir: %s",
					 strerror(errno));
				break;
			}
			closedir(f->d);
			n--;
			continue;
		}
		name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		nlen = strlen(name);
		clen = len + (len > 0) + nlen;
		if (clen > PATH_MAX_LEN) {
			r = fail(im, STORK_EHOSTILE, len ? path : name,
				 "a path below it is longer than %d bytes", PATH_MAX_LEN);
			break;
		}
		if (len > 0)
			path[len] = '/';
		memcpy(path + len + (len > 0), name, nlen + 1);
		r = walk_entry(im, &stack, &n, &cap, dirfd(f->d), name, path, clen);
		report(im, false);
	}
	while (n > 0)
		closedir(stack[--n].d);
	free(stack);
	return r;
}

static int import_dir(struct imp *im, int fd, const char *name, const char *version)
{
	int r;

	r = verify_manifest_new(name, version, "dir", &im->m);
	if (r < 0)
		return prefixed(im, r);
	return walk(im, fd);
}

/* ------------------------------------------------------------------------------------------ */

int store_import(const char *source, const char *name, const char *version,
		 const struct store_import_opts *o, struct verify_manifest **ret_m,
		 struct store_import_stats *ret_stats)
{
	struct imp im = {0};
	struct store_import_stats st = {0};
	struct stat sst;
	size_t i;
	int fd, r;

	im.src = source;
	im.repofd = o->repofd;
	im.max_size = o->max_size ? o->max_size : DEFAULT_MAX_SIZE;
	im.progress = o->progress;
	im.pctx = o->progress_ctx;
	stork_error_clear();

	im.buf = malloc(IOBUF_LEN);
	if (!im.buf)
		return -ENOMEM;
	fd = open(source, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = fail(&im, -errno, NULL, "cannot open: %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &sst) < 0) {
		r = fail(&im, -errno, NULL, "stat: %s", strerror(errno));
		close(fd);
		goto out;
	}
	if (S_ISDIR(sst.st_mode)) {
		r = import_dir(&im, fd, name, version);
		close(fd);
	} else if (S_ISREG(sst.st_mode)) {
		im.total = (uint64_t)sst.st_size;
		r = import_file(&im, fd, name, version);
		close(fd);
	} else {
		r = fail(&im, STORK_EUNSUPPORTED, NULL,
			 "not a directory or a regular file (a package source is a directory, a "
			 "tar archive, a .deb or an .rpm)");
		close(fd);
	}
	if (r < 0)
		goto out;

	r = verify_manifest_finish(im.m);
	if (r < 0) {
		r = prefixed(&im, r);
		goto out;
	}
	report(&im, true);

	for (i = 0; i < im.m->n; i++) {
		if (im.m->entries[i].type != VERIFY_FILE)
			continue;
		st.files++;
		st.bytes += im.m->entries[i].size;
	}
	st.entries = im.m->n;
	st.new_objects = im.new_objects;
	st.new_bytes = im.new_bytes;
	st.reused_bytes = st.bytes > im.new_bytes ? st.bytes - im.new_bytes : 0;
	*ret_m = im.m;
	im.m = NULL;
	if (ret_stats)
		*ret_stats = st;
out:
	verify_manifest_free(im.m);
	pathset_fini(&im.seen);
	free(im.link_next);
	free(im.buf);
	return r;
}
