/* fs/passthrough.c: FUSE passthrough (fs/README.md "Passthrough"): an open file whose content is
 * one store object is handed to the kernel as that object, and the kernel reads, maps and
 * caches the object itself. A warm read is then a read of the store's file (its page cache,
 * shared with every other name, version and slice of the object) with no FUSE page cache beside
 * it and no request to the daemon.
 *
 * Linux has it since 6.9 (CONFIG_FUSE_PASSTHROUGH); libfuse's API for it came with 3.16, and
 * Debian 12 ships 3.14. Everything it needs is the kernel's stable protocol, so it is done here
 * through the one hook libfuse 3.14 offers, its custom I/O (fuse_session_custom_io): the reads
 * of /dev/fuse go through io_read, which notes the kernel's INIT; the replies through io_writev,
 * which adds to libfuse's INIT reply the passthrough flag and a stack depth, and to an open's
 * reply the backing id the open handler asked for (fsd_pt_reply_open, on the same thread).
 *
 * The kernel's rules, kept here: a backing file is registered with an ioctl on /dev/fuse
 * (root only), given by its id in the open reply, and unregistered when no open uses it; all
 * opens of one inode at a time must use the same backing file, and an inode is never open in
 * passthrough and cached modes at once (the kernel fails such an open with EIO). So each inode
 * with an open file has a record: its backing id and its passthrough opens, or its cached
 * opens; an open goes the way the inode's other opens went. A backing file the kernel refuses
 * for a reason that holds for every file (no privilege, a store on a stacked file system) turns
 * passthrough off for the mount, logged once; a transient failure serves that open cached. */
#include <errno.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fs/daemon.h"

/* The kernel's protocol from 7.40 on (include/uapi/linux/fuse.h); Debian 12's headers are 7.38. */
#define PT_INIT_PASSTHROUGH  (1ULL << 37) /* FUSE_PASSTHROUGH, in init flags2 */
#define PT_FOPEN_PASSTHROUGH (1U << 7)	  /* FOPEN_PASSTHROUGH */
struct pt_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define PT_IOC_BACKING_OPEN  _IOW(229, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
/* struct fuse_init_out of 7.40: max_stack_depth follows flags2 */
struct pt_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
	uint32_t unused[6];
};
_Static_assert(sizeof(struct pt_init_out) == sizeof(struct fuse_init_out), "fuse_init_out");
/* struct fuse_open_out of 7.40: backing_id where 7.38 has padding */
struct pt_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};
_Static_assert(sizeof(struct pt_open_out) == sizeof(struct fuse_open_out), "fuse_open_out");

/* The backing id the open being replied to on this thread carries (0: none). */
static __thread int32_t reply_backing_id;

/* ------------------------------------------------------------------------------------------ */
/* The session's I/O */

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fsd *d = userdata;
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *h = buf;

	/* The kernel sends nothing before the reply to its INIT, and INIT once. */
	if (n >= (ssize_t)(sizeof(*h) + sizeof(struct fuse_init_in)) &&
	    !__atomic_load_n(&d->pt.init_done, __ATOMIC_RELAXED) && h->opcode == FUSE_INIT) {
		const struct fuse_init_in *in = (const void *)(h + 1);
		uint64_t flags = in->flags;

		if (flags & FUSE_INIT_EXT)
			flags |= (uint64_t)in->flags2 << 32;
		__atomic_store_n(&d->pt.offered, (flags & PT_INIT_PASSTHROUGH) != 0,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&d->pt.init_unique, h->unique, __ATOMIC_RELEASE);
	}
	return n;
}

/* Whether the kernel will take the store's files as backing files: the daemon has
 * CAP_SYS_ADMIN, and the store's file system is not a stacked one (overlayfs: its files would
 * make the stack too deep). Asked before INIT's reply, since passthrough costs the mount a
 * level of stacking (an overlay on storkfs works, an overlay on that one no more). */
static bool pt_possible(struct fsd *d)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[2];
	struct statfs fs;

	if (syscall(SYS_capget, &h, c) < 0 || !(c[0].effective & (1U << CAP_SYS_ADMIN))) {
		fsd_log(d, "passthrough: off: the daemon lacks CAP_SYS_ADMIN (run it as root); "
			   "files are read through the daemon");
		return false;
	}
	if (statfs(store_dir(d->store), &fs) == 0 && fs.f_type == 0x794c7630 /* overlayfs */) {
		fsd_log(d,
			"passthrough: off: the store %s is on overlayfs, which the kernel "
			"refuses under FUSE passthrough; files are read through the daemon",
			store_dir(d->store));
		return false;
	}
	return true;
}

/* libfuse's INIT reply with passthrough asked for (when the kernel offered it and the mount
 * wants it): depth 1, so that storkfs can itself be a layer of an overlay. */
static ssize_t init_reply(struct fsd *d, int fd, struct iovec *iov, int count)
{
	struct pt_init_out out;
	struct iovec v[2];
	ssize_t n;

	if (count != 2 || iov[1].iov_len != sizeof(out))
		return writev(fd, iov, count);
	memcpy(&out, iov[1].iov_base, sizeof(out));
	if (!(out.flags & FUSE_INIT_EXT) || (out.flags & FUSE_WRITEBACK_CACHE) || !pt_possible(d))
		return writev(fd, iov, count);
	out.flags2 |= (uint32_t)(PT_INIT_PASSTHROUGH >> 32);
	out.max_stack_depth = 1;
	v[0] = iov[0];
	v[1].iov_base = &out;
	v[1].iov_len = sizeof(out);
	/* On before the kernel can send an open (right after it reads this reply). */
	__atomic_store_n(&d->pt.on, true, __ATOMIC_RELEASE);
	n = writev(fd, v, 2);
	if (n < 0)
		__atomic_store_n(&d->pt.on, false, __ATOMIC_RELEASE);
	return n;
}

/* An open's reply, with the backing id its handler chose. */
static ssize_t open_reply(int fd, struct iovec *iov, int count, int32_t id)
{
	struct pt_open_out out;
	struct iovec v[2];

	if (count != 2 || iov[1].iov_len != sizeof(out))
		return writev(fd, iov, count);
	memcpy(&out, iov[1].iov_base, sizeof(out));
	out.open_flags |= PT_FOPEN_PASSTHROUGH;
	out.backing_id = id;
	v[0] = iov[0];
	v[1].iov_base = &out;
	v[1].iov_len = sizeof(out);
	return writev(fd, v, 2);
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fsd *d = userdata;
	const struct fuse_out_header *h = iov[0].iov_base;

	if (reply_backing_id > 0 && h->error == 0)
		return open_reply(fd, iov, count, reply_backing_id);
	if (!__atomic_load_n(&d->pt.init_done, __ATOMIC_RELAXED) && h->unique &&
	    h->unique == __atomic_load_n(&d->pt.init_unique, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&d->pt.init_done, true, __ATOMIC_RELAXED);
		if (__atomic_load_n(&d->pt.offered, __ATOMIC_RELAXED) && d->pt.wanted &&
		    h->error == 0)
			return init_reply(d, fd, iov, count);
	}
	return writev(fd, iov, count);
}

static ssize_t io_splice_receive(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
				 unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

static ssize_t io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			      unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

static const struct fuse_custom_io pt_io = {
    .writev = io_writev,
    .read = io_read,
    .splice_receive = io_splice_receive,
    .splice_send = io_splice_send,
};

int fsd_pt_setup(struct fsd *d)
{
	int ret;

	pthread_mutex_init(&d->pt.lock, NULL);
	d->pt.wanted = !d->conf.no_passthrough;
	if (!d->pt.wanted)
		return 0;
	ret = fuse_session_custom_io(d->se, &pt_io, fuse_session_fd(d->se));
	return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Open files by inode */

struct pt_rec {
	struct pt_rec *next;
	fuse_ino_t ino;
	int32_t id;	       /* the backing id of its passthrough opens */
	int fd;		       /* the object registered as their backing file (a dup) */
	struct timespec ctime; /* its ctime, mtime and size then */
	struct timespec mtime;
	off_t size;
	uint32_t pt;	 /* passthrough opens */
	uint32_t cached; /* opens served through the daemon */
};

static struct pt_rec **slot(struct fsd *d, fuse_ino_t ino)
{
	struct pt_rec **p = &d->pt.recs[ino % FSD_PT_BUCKETS];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* A failure of the backing ioctl that every other file would meet as well. */
static bool fails_all(int err)
{
	return err == EPERM || err == EACCES || err == ELOOP || err == ENOTTY || err == EINVAL ||
	       err == EOPNOTSUPP;
}

/* Inode ino's record, made when it has none and make is set; NULL: none, or no memory.
 * Under pt.lock. */
static struct pt_rec *rec(struct fsd *d, fuse_ino_t ino, bool make)
{
	struct pt_rec **p = slot(d, ino);

	if (!*p && make) {
		*p = calloc(1, sizeof(**p));
		if (*p) {
			(*p)->ino = ino;
			(*p)->fd = -1;
		}
	}
	return *p;
}

/* Drop r from the table once no open uses it. Under pt.lock. */
static void rec_drop(struct fsd *d, struct pt_rec *r)
{
	struct pt_rec **p = slot(d, r->ino);

	if (r->pt || r->cached)
		return;
	*p = r->next;
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Whether the registered object is still what was checked when it was registered: an object
 * rewritten in place since (rot, a write on the store's disk) is the backing file of every
 * open of the inode until the last closes, and the kernel cannot change it meanwhile. Its
 * ctime moves with a write, and with an unlink too: an object evicted, or replaced by a
 * rename, while open keeps its bytes, and is intact when only its links went (no link left,
 * its mtime and size unchanged); new opens of the inode then join it. */
static bool rec_intact(const struct pt_rec *r)
{
	struct stat st;

	if (fstat(r->fd, &st) < 0)
		return false;
	if (same_time(&st.st_ctim, &r->ctime))
		return true;
	return st.st_nlink == 0 && same_time(&st.st_mtim, &r->mtime) && st.st_size == r->size;
}

/* Register fd as the backing file of r's opens. @return its id; 0: not registered (a
 * failure that every file would meet turns passthrough off for the mount). */
static int32_t rec_register(struct fsd *d, struct pt_rec *r, int fd)
{
	struct pt_backing_map map = {.fd = fd};
	struct stat st;
	int32_t id;
	int err;

	if (fstat(fd, &st) < 0)
		return 0;
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (r->fd < 0)
		return 0;
	id = ioctl(fuse_session_fd(d->se), PT_IOC_BACKING_OPEN, &map);
	if (id > 0) {
		r->id = id;
		r->ctime = st.st_ctim;
		r->mtime = st.st_mtim;
		r->size = st.st_size;
		return id;
	}
	err = errno;
	close(r->fd);
	r->fd = -1;
	if (fails_all(err)) {
		__atomic_store_n(&d->pt.on, false, __ATOMIC_RELEASE);
		fsd_log(d,
			"passthrough: off for this mount: the kernel refuses the store's files "
			"as backing files (%s); files are read through the daemon",
			strerror(err));
	}
	return 0;
}

int32_t fsd_pt_open(struct fsd *d, fuse_ino_t ino, int fd)
{
	bool on = __atomic_load_n(&d->pt.on, __ATOMIC_ACQUIRE);
	struct pt_rec *r;
	int32_t id = 0;

	if (!d->pt.wanted)
		return 0;
	pthread_mutex_lock(&d->pt.lock);
	/* Every open is recorded while passthrough is on; once it is off, only those of an
	 * inode that still has a record (the kernel's mode for it must be kept). */
	r = rec(d, ino, on);
	if (!r) {
		id = on ? -ENOMEM : 0;
		goto out;
	}
	if (r->pt) {
		if (!rec_intact(r)) {
			fsd_log(d,
				"passthrough: the store object behind inode %lu changed on disk "
				"while open; new opens fail (EIO) until its open files are closed",
				(unsigned long)ino);
			id = -EIO;
			goto out;
		}
		id = r->id;
		r->pt++;
	} else if (!r->cached && fd >= 0 && on) {
		id = rec_register(d, r, fd);
		if (id > 0)
			r->pt = 1;
	}
	if (!id)
		r->cached++;
	rec_drop(d, r);
out:
	pthread_mutex_unlock(&d->pt.lock);
	return id;
}

bool fsd_pt_close(struct fsd *d, fuse_ino_t ino, bool passthrough)
{
	struct pt_rec *r;
	uint32_t id = 0;
	bool last;

	if (!d->pt.wanted) /* -o nopassthrough: no record was made */
		return false;
	pthread_mutex_lock(&d->pt.lock);
	r = rec(d, ino, false);
	if (r && passthrough && r->pt && --r->pt == 0)
		id = (uint32_t)r->id;
	else if (r && !passthrough && r->cached)
		r->cached--;
	/* Under the lock: an open of the inode that comes next registers the file anew. */
	if (id && ioctl(fuse_session_fd(d->se), PT_IOC_BACKING_CLOSE, &id) < 0)
		fsd_log(d, "passthrough: backing file %u of inode %lu not released: %s", id,
			(unsigned long)ino, strerror(errno));
	if (id) {
		close(r->fd);
		r->fd = -1;
	}
	last = r && !r->pt && !r->cached;
	if (r)
		rec_drop(d, r);
	pthread_mutex_unlock(&d->pt.lock);
	return last;
}

bool fsd_pt_unopened(struct fsd *d, fuse_ino_t ino, void (*fn)(struct fsd *d, fuse_ino_t ino))
{
	bool ran = false;

	pthread_mutex_lock(&d->pt.lock);
	if (!rec(d, ino, false)) {
		fn(d, ino);
		ran = true;
	}
	pthread_mutex_unlock(&d->pt.lock);
	return ran;
}

int fsd_pt_reply_open(fuse_req_t req, struct fuse_file_info *fi, int32_t id)
{
	int ret;

	reply_backing_id = id;
	ret = fuse_reply_open(req, fi);
	reply_backing_id = 0;
	return ret;
}

bool fsd_pt_on(struct fsd *d)
{
	return __atomic_load_n(&d->pt.on, __ATOMIC_ACQUIRE);
}

void fsd_pt_fini(struct fsd *d)
{
	for (size_t i = 0; i < FSD_PT_BUCKETS; i++) {
		while (d->pt.recs[i]) {
			struct pt_rec *r = d->pt.recs[i];

			d->pt.recs[i] = r->next;
			if (r->fd >= 0)
				close(r->fd);
			free(r);
		}
	}
}
