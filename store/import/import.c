/* store/import/import.c: turn a package source into objects plus a manifest.
 *
 * Sources are untrusted: a directory is walked without following a single symlink, archives
 * are read through libarchive with only the formats we accept enabled (tar, ar for .deb, cpio
 * inside .rpm; never mtree, which would read files named by the archive). Every member path
 * is checked before any of its bytes are stored, and a member that could make a reader of the
 * mounted tree leave it (absolute paths, "..", members below symlinks), a device, or anything
 * ambiguous (duplicates, hard links to nothing) refuses the whole source. The rules and
 * messages are in store/README.md.
 *
 * This file holds what every source shares and store_import itself; archives are read in
 * store/import/archive.c, directories walked in store/import/dir.c (store/import/internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>

#include "store/import/internal.h"

#define DEFAULT_MAX_SIZE (64ull << 30)
#define PROGRESS_STEP	 (1024 * 1024)

/* ------------------------------------------------------------------------------------------ */
/* The paths seen so far. */

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

struct seen *import_pathset_find(struct pathset *s, const char *path, size_t len)
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

/* Quote a member name for a message: control bytes (and every byte >= 0x80 of a name that is
 * not UTF-8), '"' and '\\' escaped, long names cut. */
const char *import_quote(const char *s, char *out, size_t outlen)
{
	bool utf8 = verify_utf8_valid(s, strlen(s));
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
int import_fail(struct imp *im, int err, const char *path, const char *fmt, ...)
{
	char msg[768], q[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path)
		stork_errorf("%s: entry \"%s\": %s", im->src, import_quote(path, q, sizeof(q)),
			     msg);
	else
		stork_errorf("%s: %s", im->src, msg);
	return err;
}

/* Put the source in front of a detail left by a callee. */
int import_prefixed(struct imp *im, int err)
{
	char d[1024];

	snprintf(d, sizeof(d), "%s", stork_error_detail());
	if (d[0])
		stork_errorf("%s: %s", im->src, d);
	else
		stork_errorf("%s: %s", im->src, storkfs_strerror(err));
	return err;
}

void import_report(struct imp *im, bool last)
{
	uint64_t done;

	if (!im->progress)
		return;
	done = im->prog_a ? (uint64_t)archive_filter_bytes(im->prog_a, -1)
			  : __atomic_load_n(&im->dir_done, __ATOMIC_RELAXED);
	if (last)
		done = im->total ? im->total : done;
	else if (done < im->next_report)
		return;
	im->next_report = done + PROGRESS_STEP;
	im->progress(im->pctx, done, im->total);
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The characters of a name s: none a control character, valid UTF-8. path is for the
 * message. */
static int check_chars(struct imp *im, const char *path, const char *s)
{
	if (has_control(s))
		return import_fail(im, STORK_EHOSTILE, path, "name contains a control character");
	if (!verify_utf8_valid(s, strlen(s)))
		return import_fail(im, STORK_EHOSTILE, path, "name is not valid UTF-8");
	return 0;
}

/* Turn a member name into a clean relative path in out (PATH_MAX_LEN + 1 bytes): a leading
 * "./" and a trailing '/' go, everything else that is not plain is refused. *ret_root is set
 * for the archive root ("." or "./"), which is not an entry. */
int import_clean_path(struct imp *im, const char *raw, char *out, bool *ret_root)
{
	const char *p = raw, *c;
	size_t len;
	int r;

	*ret_root = false;
	r = check_chars(im, raw, raw);
	if (r < 0)
		return r;
	if (raw[0] == '/')
		return import_fail(im, STORK_EHOSTILE, raw, "absolute path");
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
		return import_fail(im, STORK_EHOSTILE, raw,
				   "path longer than %d bytes, the most a system call takes",
				   PATH_MAX_LEN);
	memcpy(out, p, len);
	out[len] = '\0';
	for (c = out;;) {
		const char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);

		if (clen == 2 && c[0] == '.' && c[1] == '.')
			return import_fail(im, STORK_EHOSTILE, raw, "path leaves the package root");
		if (clen == 0 || (clen == 1 && c[0] == '.'))
			return import_fail(im, STORK_EHOSTILE, raw,
					   "path has an empty or \".\" component");
		if (clen > NAME_MAX_LEN)
			return import_fail(im, STORK_EHOSTILE, raw,
					   "a path component longer than %d bytes", NAME_MAX_LEN);
		if (!slash)
			break;
		c = slash + 1;
	}
	return 0;
}

/* A directory entry's name (no '/', never "." or ".."): the rest of import_clean_path's rules.
 * Keeps the walk's stack frames small (no path buffer per level). */
int import_check_name(struct imp *im, const char *path, const char *name)
{
	int r = check_chars(im, path, name);

	if (r < 0)
		return r;
	if (strlen(name) > NAME_MAX_LEN)
		return import_fail(im, STORK_EHOSTILE, path,
				   "a path component longer than %d bytes", NAME_MAX_LEN);
	return 0;
}

static const char *kind_name(enum seen_kind k)
{
	return k == SEEN_FILE ? "file" : k == SEEN_SYMLINK ? "symlink" : "directory";
}

/* Check that path may be added as kind: not seen before, no parent that is not a directory,
 * not a non-directory where earlier members put children. Records the parents. */
int import_claim_path(struct imp *im, const char *path, enum seen_kind kind)
{
	struct seen *e;
	const char *slash;

	e = import_pathset_find(&im->seen, path, strlen(path));
	if (e && e->kind != SEEN_PARENT)
		return import_fail(im, STORK_EHOSTILE, path, "duplicate path");
	if (e && kind != SEEN_DIR)
		return import_fail(im, STORK_EHOSTILE, path,
				   "a %s, but earlier members of the archive are below it",
				   kind_name(kind));
	for (slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
		size_t plen = (size_t)(slash - path);

		e = import_pathset_find(&im->seen, path, plen);
		if (e && (e->kind == SEEN_FILE || e->kind == SEEN_SYMLINK))
			return import_fail(im, STORK_EHOSTILE, path, "below the %s \"%.*s\"",
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
		return import_prefixed(im, r);
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
	e = import_pathset_find(&im->seen, ve->path, strlen(ve->path));
	if (e) { /* a parent that is now listed itself */
		e->kind = kind;
		e->idx = idx;
		return 0;
	}
	if (!pathset_add(&im->seen, ve->path, strlen(ve->path), kind, idx))
		return -ENOMEM;
	return 0;
}

int import_check_size(struct imp *im, const char *path, uint64_t more)
{
	if (more > im->max_size || im->sum > im->max_size - more)
		return import_fail(im, STORK_ETOOBIG, path,
				   "unpacks to more than %llu bytes (--max-size)",
				   (unsigned long long)im->max_size);
	return 0;
}

void import_obj_fini(struct obj *o)
{
	free(o->chunks);
	o->chunks = NULL;
	o->nchunks = 0;
}

/* Read up to len bytes of the member into buf, fewer only at its end; ret_eof when it ended. */
static ssize_t read_full(struct imp *im, const char *path, read_fn rd, void *ctx, uint8_t *buf,
			 size_t len, uint64_t *got, bool *ret_eof)
{
	size_t have = 0;

	while (have < len) {
		ssize_t n = rd(im, ctx, path, buf + have, len - have);
		int r;

		if (n < 0)
			return n;
		if (n == 0) {
			*ret_eof = true;
			break;
		}
		have += (size_t)n;
		*got += (uint64_t)n;
		r = import_check_size(im, path, *got);
		if (r < 0)
			return r;
		import_report(im, false);
	}
	return (ssize_t)have;
}

/* Finish w (freed either way) as ret's object; a new one waits, unsynced, in the source's
 * batch (import_commit_pending syncs and names them all). */
static int finish_object(struct imp *im, struct store_objwriter *w, const char *path,
			 struct obj *ret)
{
	struct store_objpending p;
	bool is_new;
	int r;

	r = store_objwriter_finish(w, ret->hash, &ret->size, &ret->zsize, &p, &is_new);
	if (r < 0)
		return import_prefixed(im, r);
	if (is_new) {
		r = import_pending_add(im, &p, ret->size, &ret->zsize);
		if (r < 0) {
			store_objwriter_drop_pending(im->repofd, &p, 1);
			return import_fail(im, r, path, "out of memory");
		}
	}
	return 0;
}

/* Write buf[0..len) as one object, synced and named with the source's other objects by
 * import_commit_pending. */
static int write_object(struct imp *im, const char *path, const uint8_t *buf, size_t len,
			struct obj *ret)
{
	struct store_objwriter *w = NULL;
	int r;

	r = store_objwriter_new(im->repofd, &w);
	if (r == 0)
		r = store_objwriter_write(w, buf, len);
	if (r < 0) {
		store_objwriter_abort(w);
		return import_prefixed(im, r);
	}
	return finish_object(im, w, path, ret);
}

/* The rest of a big member, whose first len bytes are in im->cbuf: cut into chunks, each
 * written as an object; ret gets the whole content's hash and size, the chunks' zsizes summed,
 * and the chunk list. */
static int store_chunked(struct imp *im, const char *path, read_fn rd, void *ctx, size_t len,
			 uint64_t got, struct obj *ret)
{
	struct verify_hash *h = NULL;
	struct verify_entry *c = NULL;
	size_t n = 0, cap = 0;
	uint64_t off = 0, zsize = 0;
	bool eof = false;
	int r;

	r = verify_hash_new(&h);
	if (r < 0)
		return r;
	for (;;) {
		struct obj o = {0};
		size_t cut;

		if (!eof && len < STORE_CHUNK_MAX) {
			ssize_t k = read_full(im, path, rd, ctx, im->cbuf + len,
					      STORE_CHUNK_MAX - len, &got, &eof);

			if (k < 0) {
				r = (int)k;
				goto out;
			}
			len += (size_t)k;
		}
		cut = store_chunk_cut(im->cbuf, len, eof);
		if (cut == 0)
			break;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct verify_entry *nc = realloc(c, ncap * sizeof(*nc));

			if (!nc) {
				r = -ENOMEM;
				goto out;
			}
			c = nc;
			cap = ncap;
		}
		r = write_object(im, path, im->cbuf, cut, &o);
		if (r == 0)
			r = verify_hash_update(h, im->cbuf, cut);
		if (r < 0)
			goto out;
		c[n] = (struct verify_entry){
		    .type = VERIFY_FILE, .offset = off, .size = o.size, .zsize = o.zsize};
		memcpy(c[n].hash, o.hash, VERIFY_HASH_LEN);
		n++;
		off += o.size;
		zsize += o.zsize;
		memmove(im->cbuf, im->cbuf + cut, len - cut);
		len -= cut;
	}
	r = verify_hash_final(h, ret->hash);
	if (r < 0)
		goto out;
	ret->size = off;
	ret->zsize = zsize;
	ret->chunks = c;
	ret->nchunks = n;
	c = NULL;
out:
	verify_hash_free(h);
	free(c);
	return r;
}

/* Stream one member into an object, or into chunks when it is big. */
int import_store_data(struct imp *im, const char *path, read_fn rd, void *ctx, struct obj *ret)
{
	struct store_objwriter *w = NULL;
	uint64_t got = 0;
	bool eof = false;
	ssize_t k;
	int r;

	ret->chunks = NULL;
	ret->nchunks = 0;
	if (!im->whole) {
		/* The first STORE_CHUNK_FILE_MIN + 1 bytes say whether it is big. */
		if (!im->cbuf) {
			im->cbuf = malloc(STORE_CHUNK_MAX + IOBUF_LEN);
			if (!im->cbuf)
				return -ENOMEM;
		}
		k = read_full(im, path, rd, ctx, im->cbuf, STORE_CHUNK_FILE_MIN + 1, &got, &eof);
		if (k < 0)
			return (int)k;
		if (!eof)
			return store_chunked(im, path, rd, ctx, (size_t)k, got, ret);
		return write_object(im, path, im->cbuf, (size_t)k, ret);
	}
	r = store_objwriter_new(im->repofd, &w);
	if (r < 0)
		return import_prefixed(im, r);
	for (;;) {
		ssize_t n = rd(im, ctx, path, im->buf, IOBUF_LEN);

		if (n < 0) {
			r = (int)n;
			goto fail;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
		r = import_check_size(im, path, got);
		if (r < 0)
			goto fail;
		r = store_objwriter_write(w, im->buf, (size_t)n);
		if (r < 0) {
			r = import_prefixed(im, r);
			goto fail;
		}
		import_report(im, false);
	}
	/* Synced and named with the source's other objects, by import_commit_pending. */
	return finish_object(im, w, path, ret);
fail:
	store_objwriter_abort(w);
	return r;
}

int import_add_file(struct imp *im, const char *path, uint32_t mode, int64_t mtime,
		    const struct obj *o)
{
	struct verify_entry ve = {0};
	int r;

	r = import_check_size(im, path, o->size);
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
	ve.chunks = o->chunks;
	ve.nchunks = o->nchunks;
	return add_entry(im, &ve, SEEN_FILE);
}

int import_add_dir(struct imp *im, const char *path, uint32_t mode, int64_t mtime)
{
	struct verify_entry ve = {0};

	ve.path = (char *)path;
	ve.type = VERIFY_DIR;
	ve.mode = mode & 07777;
	ve.mtime = mtime;
	return add_entry(im, &ve, SEEN_DIR);
}

int import_add_symlink(struct imp *im, const char *path, uint32_t mode, int64_t mtime,
		       const char *target)
{
	struct verify_entry ve = {0};

	if (!target || !target[0])
		return import_fail(im, STORK_EFORMAT, path, "symlink without a target");
	if (has_control(target))
		return import_fail(im, STORK_EHOSTILE, path,
				   "symlink target contains a control character");
	if (!verify_utf8_valid(target, strlen(target)))
		return import_fail(im, STORK_EHOSTILE, path, "symlink target is not valid UTF-8");
	if (strlen(target) > PATH_MAX_LEN)
		return import_fail(
		    im, STORK_EHOSTILE, path,
		    "symlink target longer than %d bytes, the most a system call takes",
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
	im.whole = o->whole;
	stork_error_clear();

	im.buf = malloc(IOBUF_LEN);
	if (!im.buf)
		return -ENOMEM;
	fd = open(source, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = import_fail(&im, -errno, NULL, "cannot open: %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &sst) < 0) {
		r = import_fail(&im, -errno, NULL, "stat: %s", strerror(errno));
		close(fd);
		goto out;
	}
	if (S_ISDIR(sst.st_mode)) {
		r = import_dir(&im, fd, name, version);
		close(fd);
	} else if (S_ISREG(sst.st_mode)) {
		im.total = (uint64_t)sst.st_size;
		r = import_archive(&im, fd, name, version);
		close(fd);
	} else {
		r = import_fail(
		    &im, STORK_EUNSUPPORTED, NULL,
		    "not a directory or a regular file (a package source is a directory, a "
		    "tar archive, a .deb or an .rpm)");
		close(fd);
	}
	if (r < 0)
		goto out;
	r = import_commit_pending(&im);
	if (r < 0)
		goto out;

	r = verify_manifest_finish(im.m);
	if (r < 0) {
		r = import_prefixed(&im, r);
		goto out;
	}
	import_report(&im, true);

	for (i = 0; i < im.m->n; i++) {
		if (im.m->entries[i].type != VERIFY_FILE)
			continue;
		st.files++;
		st.bytes += im.m->entries[i].size;
	}
	st.entries = im.m->n;
	memcpy(st.summary, im.summary, sizeof(st.summary));
	st.new_objects = im.new_objects;
	st.new_bytes = im.new_bytes;
	st.reused_bytes = st.bytes > im.new_bytes ? st.bytes - im.new_bytes : 0;
	*ret_m = im.m;
	im.m = NULL;
	if (ret_stats)
		*ret_stats = st;
out:
	import_drop_pending(&im); /* what a failure left unnamed */
	store_objwriter_thread_done();
	verify_manifest_free(im.m);
	pathset_fini(&im.seen);
	free(im.link_next);
	free(im.buf);
	free(im.cbuf);
	return r;
}
