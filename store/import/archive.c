/* store/import/archive.c: importing a tar archive, a .deb or an .rpm through libarchive.
 *
 * Only the formats we accept are enabled (tar, ar for .deb, cpio inside .rpm; never mtree,
 * which would read files named by the archive). A .deb's control.tar.* and data.tar.* are read
 * as nested archives streamed from the outer one; an .rpm's dependencies come from its header
 * (store_rpm_deps) read through a second descriptor. Member paths go through the checks in
 * store/import/import.c before any of their bytes are stored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "store/import/internal.h"

#define CONTROL_MAX	  (1024 * 1024)
#define DEBIAN_BINARY_MAX 64

static int archive_fail(struct imp *im, struct archive *a, const char *path)
{
	const char *msg = archive_error_string(a);

	if (!msg)
		msg = "unknown error";
	return import_fail(im, STORK_EFORMAT, path, "truncated or corrupt archive: %s", msg);
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

/* Store the current member's data; a header that says it is too large refuses it before any
 * byte is read. */
static int member_data(struct imp *im, struct archive *a, struct archive_entry *ae,
		       const char *path, struct obj *ret)
{
	int r;

	if (archive_entry_size_is_set(ae) && archive_entry_size(ae) > 0) {
		r = import_check_size(im, path, (uint64_t)archive_entry_size(ae));
		if (r < 0)
			return r;
	}
	return import_store_data(im, path, archive_rd, a, ret);
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
		r = import_check_size(im, ve->path, o->size);
		if (r < 0)
			return r;
		im->sum += o->size;
		memcpy(ve->hash, o->hash, VERIFY_HASH_LEN);
		ve->size = o->size;
		ve->zsize = o->zsize;
		r = verify_entry_set_chunks(ve, o->chunks, o->nchunks);
		if (r < 0)
			return import_prefixed(im, r);
	} while (i != first);
	return 0;
}

static int archive_hardlink(struct imp *im, struct archive *a, struct archive_entry *ae,
			    const char *path, uint32_t mode, int64_t mtime)
{
	const char *raw = archive_entry_hardlink(ae);
	char target[PATH_MAX_LEN + 1];
	struct seen *t = NULL;
	struct obj o = {0};
	bool root;
	size_t tidx, idx;
	int r;

	/* A target that is not a clean path cannot be an earlier member. */
	if (import_clean_path(im, raw, target, &root) == 0 && !root)
		t = import_pathset_find(&im->seen, target, strlen(target));
	if (!t || t->kind == SEEN_PARENT) {
		char q[320];

		return import_fail(
		    im, STORK_EHOSTILE, path,
		    "hard link to \"%s\", which is not an earlier member of the archive",
		    import_quote(raw, q, sizeof(q)));
	}
	if (t->kind == SEEN_DIR)
		return import_fail(im, STORK_EHOSTILE, path, "hard link to the directory \"%s\"",
				   target);
	tidx = t->idx; /* t moves when the set grows */
	if (t->kind == SEEN_SYMLINK) {
		char *lt = strdup(im->m->entries[tidx].target);

		r = lt ? import_claim_path(im, path, SEEN_SYMLINK) : -ENOMEM;
		if (r == 0)
			r = import_add_symlink(im, path, im->m->entries[tidx].mode,
					       im->m->entries[tidx].mtime, lt);
		free(lt);
		return r;
	}

	r = import_claim_path(im, path, SEEN_FILE);
	if (r < 0)
		return r;
	if (archive_entry_size_is_set(ae) && archive_entry_size(ae) > 0) {
		r = member_data(im, a, ae, path, &o);
		if (r == 0)
			r = relink_group(im, tidx, &o);
		if (r < 0) {
			import_obj_fini(&o);
			return r;
		}
	} else {
		const struct verify_entry *te = &im->m->entries[tidx];

		memcpy(o.hash, te->hash, VERIFY_HASH_LEN);
		o.size = te->size;
		o.zsize = te->zsize;
		/* A copy: adding the entry may move te. */
		o.chunks = NULL;
		o.nchunks = 0;
		if (te->nchunks) {
			o.chunks = malloc(te->nchunks * sizeof(*o.chunks));
			if (!o.chunks)
				return -ENOMEM;
			memcpy(o.chunks, te->chunks, te->nchunks * sizeof(*o.chunks));
			o.nchunks = te->nchunks;
		}
	}
	/* Use the target's mode and mtime: a hard link is the same inode. */
	r = import_add_file(im, path, im->m->entries[tidx].mode, im->m->entries[tidx].mtime, &o);
	import_obj_fini(&o);
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
	struct obj o = {0};
	int r;

	if (!raw)
		raw = archive_entry_pathname_utf8(ae);
	if (!raw)
		return import_fail(im, STORK_EFORMAT, NULL, "a member whose name cannot be read");
	r = import_clean_path(im, raw, path, &root);
	if (r < 0)
		return r;
	if (root) {
		if (archive_entry_filetype(ae) != AE_IFDIR)
			return import_fail(im, STORK_EHOSTILE, raw,
					   "the package root is not a directory");
		return 0;
	}
	if (archive_entry_hardlink(ae))
		return archive_hardlink(im, a, ae, path, mode, mtime);

	switch (archive_entry_filetype(ae)) {
	case AE_IFREG:
		r = import_claim_path(im, path, SEEN_FILE);
		if (r < 0)
			return r;
		r = member_data(im, a, ae, path, &o);
		if (r < 0)
			return r;
		if (archive_entry_size_is_set(ae) && o.size != (uint64_t)archive_entry_size(ae))
			r = import_fail(im, STORK_EFORMAT, path,
					"truncated or corrupt archive: %llu bytes of data where "
					"the header says %lld",
					(unsigned long long)o.size,
					(long long)archive_entry_size(ae));
		else
			r = import_add_file(im, path, mode, mtime, &o);
		import_obj_fini(&o);
		return r;
	case AE_IFDIR:
		r = import_claim_path(im, path, SEEN_DIR);
		if (r < 0)
			return r;
		return import_add_dir(im, path, mode, mtime);
	case AE_IFLNK:
		r = import_claim_path(im, path, SEEN_SYMLINK);
		if (r < 0)
			return r;
		return import_add_symlink(im, path, mode, mtime, archive_entry_symlink(ae));
	case AE_IFCHR:
	case AE_IFBLK:
		return import_fail(im, STORK_EHOSTILE, path,
				   "device nodes are not allowed in packages");
	case AE_IFIFO:
		return import_fail(im, STORK_EHOSTILE, path, "fifos are not allowed in packages");
	case AE_IFSOCK:
		return import_fail(im, STORK_EHOSTILE, path, "sockets are not allowed in packages");
	default:
		return import_fail(im, STORK_EHOSTILE, path, "unknown file type 0%o",
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
		import_report(im, false);
		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			return 0;
		if (!header_ok(r)) {
			const char *msg = archive_error_string(a);

			return import_fail(im, STORK_EFORMAT, last,
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
		return import_fail(im, STORK_EFORMAT, NULL, "member %s is an empty archive",
				   member);
	}
	if (!header_ok(r)) {
		const char *msg = archive_error_string(a);

		r = import_fail(im, STORK_EFORMAT, NULL, "member %s: not a tar archive: %s", member,
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
				r = import_fail(im, STORK_EFORMAT, NULL, "%s: two control files",
						member);
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
					r = import_fail(im, STORK_EFORMAT, NULL,
							"%s: control file larger than %d bytes",
							member, CONTROL_MAX);
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
		r = import_fail(im, STORK_EFORMAT, NULL, "%s has no control file", member);
		goto out;
	}
	r = store_deb_control_deps(text, len, im->m);
	if (r < 0)
		r = import_prefixed(im, r);
	else
		store_deb_control_summary(text, len, im->summary, sizeof(im->summary));
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
		return import_fail(
		    im, STORK_EUNSUPPORTED, NULL,
		    "an ar archive that is not a Debian package (no debian-binary first)");
	for (;;) {
		got = archive_read_data(a, vers + len, DEBIAN_BINARY_MAX - len);
		if (got < 0)
			return archive_fail(im, a, "debian-binary");
		if (got == 0)
			break;
		len += (size_t)got;
		if (len == DEBIAN_BINARY_MAX)
			return import_fail(im, STORK_EFORMAT, NULL, "debian-binary is too long");
	}
	vers[len] = '\0';
	if (strncmp(vers, "2.", 2) != 0)
		return import_fail(im, STORK_EUNSUPPORTED, NULL,
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
			return import_fail(im, STORK_EFORMAT, NULL, "an ar member without a name");
		import_quote(name, member, sizeof(member)); /* printable */
		if (member_is(name, "control.tar")) {
			if (control || data)
				return import_fail(im, STORK_EFORMAT, NULL,
						   "member %s out of order", member);
			r = deb_control(im, a, member);
			control = true;
		} else if (member_is(name, "data.tar")) {
			if (!control || data)
				return import_fail(im, STORK_EFORMAT, NULL,
						   "member %s out of order", member);
			r = deb_data(im, a, member);
			data = true;
		} else if (name[0] == '_') {
			continue;
		} else {
			return import_fail(im, STORK_EFORMAT, NULL, "unexpected member \"%s\"",
					   member);
		}
		if (r < 0)
			return r;
	}
	if (!data)
		return import_fail(im, STORK_EFORMAT, NULL, "no %s member",
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
		return import_fail(im, -errno, NULL, "cannot open again: %s", strerror(errno));
	if (fstat(fd, &a) < 0 || fstat(fd2, &b) < 0) {
		r = import_fail(im, -errno, NULL, "stat: %s", strerror(errno));
		goto out;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		r = import_fail(im, -EAGAIN, NULL, "replaced while being read");
		goto out;
	}
	r = store_rpm_info(fd2, im->m, im->summary, sizeof(im->summary));
	if (r < 0)
		r = import_prefixed(im, r);
out:
	close(fd2);
	return r;
}

int import_archive(struct imp *im, int fd, const char *name, const char *version)
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
			r = import_fail(
			    im, STORK_EUNSUPPORTED, NULL,
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
		r = import_fail(
		    im, STORK_EUNSUPPORTED, NULL,
		    "not a package this tool reads (a directory, a tar archive, a .deb or an "
		    ".rpm): %s archive%s",
		    archive_format_name(a) ? archive_format_name(a) : "unknown",
		    archive_filter_count(a) > 1 ? " inside a compressed stream" : "");
		goto out;
	}
	r = verify_manifest_new(name, version, format, &im->m);
	if (r < 0) {
		r = import_prefixed(im, r);
		goto out;
	}

	if (strcmp(format, "deb") == 0) {
		if (empty)
			r = import_fail(im, STORK_EFORMAT, NULL, "an empty ar archive");
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
