/* tests/unit/fake_fuse.h: a fake libfuse for unit tests of the daemon's FUSE callbacks
 * (fs/ops.c). fake_fuse.c defines the libfuse functions fs/ops.c calls to reply
 * (fuse_reply_*, fuse_add_direntry*, fuse_req_userdata), each recording the reply in the
 * request: a test links it instead of libfuse (it takes libfuse's headers, not the library).
 * The kernel_* functions send a request to a callback of fsd_ops as the kernel would, check
 * that it replied exactly once, and return the request with its reply.
 */
#ifndef STORKFS_TESTS_FAKE_FUSE_H
#define STORKFS_TESTS_FAKE_FUSE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <check.h>

#include "fs/daemon.h"

/* A request, as fs/ops.c sees it (fuse_req_t), and what it was answered. */
enum fake_reply {
	R_NOTHING, /* no reply yet */
	R_ERR,
	R_NONE,
	R_ENTRY,
	R_ATTR,
	R_READLINK,
	R_OPEN,
	R_BUF,
	R_DATA,
	R_XATTR,
	R_STATFS,
};

struct fuse_req {
	struct fsd *d;
	int replies; /* every callback must reply exactly once */
	enum fake_reply kind;
	int err;
	struct fuse_entry_param e;
	struct stat attr;
	double timeout;
	char link[4096];
	struct fuse_file_info fi;
	char *buf; /* R_BUF, R_DATA: a copy */
	size_t len;
	size_t xsize;	       /* R_XATTR */
	struct statvfs statfs; /* R_STATFS */
	struct fuse_req *next; /* every request of a test, freed at its end */
};

/* The record fuse_add_direntry* writes here (libfuse writes a struct fuse_dirent). */
struct fake_dirent {
	uint32_t reclen;
	uint32_t namelen;
	uint64_t ino;
	uint32_t mode;
	uint32_t plus;
	int64_t off;
	char name[];
};

/* A listing: names and numbers in the order given, "." and ".." included. */
struct fake_listing {
	char names[64][64];
	fuse_ino_t inos[64];
	mode_t modes[64];
	size_t n;
	int calls; /* readdir calls it took */
};

/** The daemon every request goes to (fuse_req_userdata). The test's. */
extern struct fsd *fake_fsd;

/** A new request to fake_fsd, freed by fake_reqs_free. */
struct fuse_req *fake_req_new(void);
/** Free every request made since the last call. */
void fake_reqs_free(void);

/* The callback answered r exactly once. */
#define ONE_REPLY(r, what)                                                                         \
	ck_assert_msg((r)->replies == 1, "%s: %d replies, want exactly one", (what), (r)->replies)

struct fuse_req *kernel_lookup(fuse_ino_t parent, const char *name);
/** The entry of name in parent, which must exist; its attributes in *ret_st (may be NULL). */
fuse_ino_t kernel_lookup_ok(fuse_ino_t parent, const char *name, struct stat *ret_st);
/** The errno of a lookup that must fail. */
int kernel_lookup_err(fuse_ino_t parent, const char *name);
/** The inode of path ("hello/1.0/bin/hello"), one lookup per component. */
fuse_ino_t kernel_walk(const char *path, struct stat *ret_st);
/** A forget of n lookups (it must reply none). */
void kernel_forget(fuse_ino_t ino, uint64_t n);
/** Forget one lookup of each component of path (what kernel_walk counted). */
void kernel_unwalk(const char *path);
struct fuse_req *kernel_getattr(fuse_ino_t ino);
struct fuse_req *kernel_readlink(fuse_ino_t ino);
struct fuse_req *kernel_getxattr(fuse_ino_t ino, const char *name, size_t size);
struct fuse_req *kernel_listxattr(fuse_ino_t ino, size_t size);
struct fuse_req *kernel_open(fuse_ino_t ino, int flags);
void kernel_release(struct fuse_file_info *fi);
/** List directory ino as `ls` does: opendir (unless fake_fsd->no_opendir), readdir or
 * readdirplus with buffers of bufsize bytes until an empty reply, releasedir. */
void kernel_list_dir(fuse_ino_t ino, bool plus, size_t bufsize, struct fake_listing *ret_l);

#endif
