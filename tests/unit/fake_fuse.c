/* tests/unit/fake_fuse.c: a fake libfuse (tests/unit/fake_fuse.h): replies recorded in the
 * request, and requests sent to the daemon's callbacks as the kernel sends them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "fake_fuse.h"

struct fsd *fake_fsd;
static struct fuse_req *reqs;

static void replied(fuse_req_t req, enum fake_reply kind)
{
	req->replies++;
	req->kind = kind;
}

void *fuse_req_userdata(fuse_req_t req)
{
	return req->d;
}

int fuse_reply_err(fuse_req_t req, int err)
{
	replied(req, err ? R_ERR : R_NONE);
	req->err = err;
	return 0;
}

void fuse_reply_none(fuse_req_t req)
{
	replied(req, R_NONE);
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	replied(req, R_ENTRY);
	req->e = *e;
	return 0;
}

int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double attr_timeout)
{
	replied(req, R_ATTR);
	req->attr = *attr;
	req->timeout = attr_timeout;
	return 0;
}

int fuse_reply_readlink(fuse_req_t req, const char *link)
{
	replied(req, R_READLINK);
	snprintf(req->link, sizeof(req->link), "%s", link);
	return 0;
}

/* The session: no kernel here, so no passthrough (fs/passthrough.c is never set up). */
int fuse_session_fd(struct fuse_session *se)
{
	(void)se;
	return -1;
}

int fuse_session_custom_io(struct fuse_session *se, const struct fuse_custom_io *io, int fd)
{
	(void)se;
	(void)io;
	(void)fd;
	return -ENOSYS;
}

/* fs/whole.c's jobs: no kernel to tell (passthrough is never on here, so none runs). */
int fuse_lowlevel_notify_inval_inode(struct fuse_session *se, fuse_ino_t ino, off_t off, off_t len)
{
	(void)se;
	(void)ino;
	(void)off;
	(void)len;
	return -ENOSYS;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	replied(req, R_OPEN);
	req->fi = *fi;
	return 0;
}

static void keep_buf(fuse_req_t req, const void *buf, size_t size)
{
	free(req->buf);
	req->buf = malloc(size ? size : 1);
	ck_assert_ptr_nonnull(req->buf);
	if (size)
		memcpy(req->buf, buf, size);
	req->len = size;
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	replied(req, R_BUF);
	keep_buf(req, buf, size);
	return 0;
}

/* op_read hands over the store object's descriptor: read what libfuse would splice. */
int fuse_reply_data(fuse_req_t req, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags)
{
	const struct fuse_buf *b = &bufv->buf[0];
	char tmp[65536];
	ssize_t got;

	(void)flags;
	replied(req, R_DATA);
	ck_assert(b->flags & FUSE_BUF_IS_FD);
	ck_assert_uint_le(b->size, sizeof(tmp));
	got = pread(b->fd, tmp, b->size, b->pos);
	ck_assert_int_ge(got, 0);
	keep_buf(req, tmp, (size_t)got);
	return 0;
}

int fuse_reply_xattr(fuse_req_t req, size_t count)
{
	replied(req, R_XATTR);
	req->xsize = count;
	return 0;
}

int fuse_reply_statfs(fuse_req_t req, const struct statvfs *stbuf)
{
	replied(req, R_STATFS);
	req->statfs = *stbuf;
	return 0;
}

/* The daemon parses none in these tests (struct fsd.conn_opts stays NULL). */
void fuse_apply_conn_info_opts(struct fuse_conn_info_opts *opts, struct fuse_conn_info *conn)
{
	(void)opts;
	(void)conn;
}

static size_t add_dirent(char *buf, size_t bufsize, const char *name, fuse_ino_t ino, mode_t mode,
			 off_t off, bool plus)
{
	size_t namelen = strlen(name);
	/* As libfuse: 8-byte aligned, and a readdirplus entry also carries the attributes. */
	size_t len = (sizeof(struct fake_dirent) + namelen + (plus ? 128 : 0) + 7) & ~(size_t)7;
	struct fake_dirent *de = (struct fake_dirent *)(void *)buf;

	if (len > bufsize)
		return len; /* not added */
	memset(buf, 0, len);
	de->reclen = (uint32_t)len;
	de->namelen = (uint32_t)namelen;
	de->ino = ino;
	de->mode = mode;
	de->plus = plus;
	de->off = off;
	memcpy(de->name, name, namelen);
	return len;
}

size_t fuse_add_direntry(fuse_req_t req, char *buf, size_t bufsize, const char *name,
			 const struct stat *stbuf, off_t off)
{
	(void)req;
	return add_dirent(buf, bufsize, name, stbuf->st_ino, stbuf->st_mode, off, false);
}

size_t fuse_add_direntry_plus(fuse_req_t req, char *buf, size_t bufsize, const char *name,
			      const struct fuse_entry_param *e, off_t off)
{
	(void)req;
	return add_dirent(buf, bufsize, name, e->ino ? e->ino : e->attr.st_ino, e->attr.st_mode,
			  off, true);
}

/* ------------------------------------------------------------------------------------------ */
/* The kernel's side: requests, each answered exactly once. */

struct fuse_req *fake_req_new(void)
{
	struct fuse_req *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->d = fake_fsd;
	r->next = reqs;
	reqs = r;
	return r;
}

void fake_reqs_free(void)
{
	while (reqs) {
		struct fuse_req *r = reqs;

		reqs = r->next;
		free(r->buf);
		free(r);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Calling the callbacks as the kernel does. */

struct fuse_req *kernel_lookup(fuse_ino_t parent, const char *name)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.lookup(r, parent, name);
	ONE_REPLY(r, name);
	return r;
}

/* The entry of name in parent, which must exist; its attributes in *ret_st (may be NULL). */
fuse_ino_t kernel_lookup_ok(fuse_ino_t parent, const char *name, struct stat *ret_st)
{
	struct fuse_req *r = kernel_lookup(parent, name);

	ck_assert_msg(r->kind == R_ENTRY, "lookup %s: reply %d, errno %d", name, r->kind, r->err);
	ck_assert_uint_ne(r->e.ino, 0);
	ck_assert_uint_eq(r->e.attr.st_ino, r->e.ino);
	if (ret_st)
		*ret_st = r->e.attr;
	return r->e.ino;
}

int kernel_lookup_err(fuse_ino_t parent, const char *name)
{
	struct fuse_req *r = kernel_lookup(parent, name);

	ck_assert_msg(r->kind == R_ERR, "lookup %s: reply %d, want an error", name, r->kind);
	return r->err;
}

/* The inode of path ("hello/1.0/bin/hello"), one lookup per component. */
fuse_ino_t kernel_walk(const char *path, struct stat *ret_st)
{
	char *p = strdup(path), *save = NULL, *c;
	fuse_ino_t ino = FUSE_ROOT_ID;

	ck_assert_ptr_nonnull(p);
	for (c = strtok_r(p, "/", &save); c; c = strtok_r(NULL, "/", &save))
		ino = kernel_lookup_ok(ino, c, ret_st);
	free(p);
	return ino;
}

void kernel_forget(fuse_ino_t ino, uint64_t n)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.forget(r, ino, n);
	ONE_REPLY(r, "forget");
	ck_assert_int_eq(r->kind, R_NONE);
}

/* Forget every lookup of each component of path (walk counted one each): the numbers from
 * one more walk, each forgotten twice, the deepest first. */
void kernel_unwalk(const char *path)
{
	char *p = strdup(path), *save = NULL, *c;
	fuse_ino_t ino = FUSE_ROOT_ID, inos[64];
	size_t n = 0;

	ck_assert_ptr_nonnull(p);
	for (c = strtok_r(p, "/", &save); c && n < 64; c = strtok_r(NULL, "/", &save))
		inos[n++] = ino = kernel_lookup_ok(ino, c, NULL);
	while (n)
		kernel_forget(inos[--n], 2);
	free(p);
}

struct fuse_req *kernel_getattr(fuse_ino_t ino)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.getattr(r, ino, NULL);
	ONE_REPLY(r, "getattr");
	return r;
}

struct fuse_req *kernel_readlink(fuse_ino_t ino)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.readlink(r, ino);
	ONE_REPLY(r, "readlink");
	return r;
}

struct fuse_req *kernel_getxattr(fuse_ino_t ino, const char *name, size_t size)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.getxattr(r, ino, name, size);
	ONE_REPLY(r, name);
	return r;
}

struct fuse_req *kernel_listxattr(fuse_ino_t ino, size_t size)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.listxattr(r, ino, size);
	ONE_REPLY(r, "listxattr");
	return r;
}

struct fuse_req *kernel_open(fuse_ino_t ino, int flags)
{
	struct fuse_req *r = fake_req_new();
	struct fuse_file_info fi = {.flags = flags};

	fsd_ops.open(r, ino, &fi);
	ONE_REPLY(r, "open");
	return r;
}

void kernel_release(struct fuse_file_info *fi)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.release(r, 0, fi);
	ONE_REPLY(r, "release");
	ck_assert_int_eq(r->kind, R_NONE);
}

void kernel_list_dir(fuse_ino_t ino, bool plus, size_t bufsize, struct fake_listing *ret_l)
{
	struct fuse_file_info fi = {0};
	struct fuse_req *r;
	off_t off = 0;

	memset(ret_l, 0, sizeof(*ret_l));
	if (!fake_fsd->no_opendir) {
		r = fake_req_new();
		fsd_ops.opendir(r, ino, &fi);
		ONE_REPLY(r, "opendir");
		ck_assert_msg(r->kind == R_OPEN, "opendir: reply %d errno %d", r->kind, r->err);
		fi = r->fi;
	}
	for (;;) {
		size_t used = 0, got = 0;

		r = fake_req_new();
		if (plus)
			fsd_ops.readdirplus(r, ino, bufsize, off, &fi);
		else
			fsd_ops.readdir(r, ino, bufsize, off, &fi);
		ONE_REPLY(r, "readdir");
		ck_assert_msg(r->kind == R_BUF, "readdir: reply %d errno %d", r->kind, r->err);
		ret_l->calls++;
		while (used < r->len) {
			struct fake_dirent *de = (struct fake_dirent *)(void *)(r->buf + used);

			ck_assert_uint_lt(ret_l->n, 64);
			ck_assert_uint_eq(de->plus, plus);
			snprintf(ret_l->names[ret_l->n], sizeof(ret_l->names[0]), "%.*s",
				 (int)de->namelen, de->name);
			ret_l->inos[ret_l->n] = de->ino;
			ret_l->modes[ret_l->n] = de->mode;
			ret_l->n++;
			off = de->off;
			used += de->reclen;
			got++;
		}
		if (!got)
			break;
		ck_assert_int_lt(ret_l->calls, 100);
	}
	if (!fake_fsd->no_opendir) {
		r = fake_req_new();
		fsd_ops.releasedir(r, ino, &fi);
		ONE_REPLY(r, "releasedir");
		ck_assert_int_eq(r->kind, R_NONE);
	}
}
