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
#include <sys/ioctl.h>
#include <sys/uio.h>
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
		d->pt.init_unique = h->unique;
		d->pt.offered = (flags & PT_INIT_PASSTHROUGH) != 0;
	}
	return n;
}

/* libfuse's INIT reply with passthrough asked for (when the kernel offered it and the mount
 * wants it): depth 1, the store's file system being no stacked one, so that storkfs can
 * itself be a layer of an overlay. */
static ssize_t init_reply(struct fsd *d, int fd, struct iovec *iov, int count)
{
	struct pt_init_out out;
	struct iovec v[2];
	ssize_t n;

	if (count != 2 || iov[1].iov_len != sizeof(out))
		return writev(fd, iov, count);
	memcpy(&out, iov[1].iov_base, sizeof(out));
	if (!(out.flags & FUSE_INIT_EXT) || (out.flags & FUSE_WRITEBACK_CACHE))
		return writev(fd, iov, count);
	out.flags2 |= (uint32_t)(PT_INIT_PASSTHROUGH >> 32);
	out.max_stack_depth = 1;
	v[0] = iov[0];
	v[1].iov_base = &out;
	v[1].iov_len = sizeof(out);
	n = writev(fd, v, 2);
	if (n >= 0)
		__atomic_store_n(&d->pt.on, true, __ATOMIC_RELEASE);
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
	if (!__atomic_load_n(&d->pt.init_done, __ATOMIC_RELAXED) &&
	    h->unique == d->pt.init_unique) {
		__atomic_store_n(&d->pt.init_done, true, __ATOMIC_RELAXED);
		if (d->pt.offered && d->pt.wanted && h->error == 0)
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
	int32_t id;	 /* the backing id of its passthrough opens */
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

/* Inode ino's record, made when it has none; NULL: no memory (the open is served through
 * the daemon, unrecorded). Under pt.lock. */
static struct pt_rec *rec(struct fsd *d, fuse_ino_t ino)
{
	struct pt_rec **p = slot(d, ino);

	if (!*p) {
		*p = calloc(1, sizeof(**p));
		if (*p)
			(*p)->ino = ino;
	}
	return *p;
}

/* A failure of the backing ioctl that every other file would meet as well. */
static bool fails_all(int err)
{
	return err == EPERM || err == EACCES || err == ELOOP || err == ENOTTY || err == EINVAL ||
	       err == EOPNOTSUPP;
}

int32_t fsd_pt_open(struct fsd *d, fuse_ino_t ino, int fd)
{
	struct pt_backing_map map = {.fd = fd};
	struct pt_rec *r;
	int32_t id = 0;
	int err;

	if (!__atomic_load_n(&d->pt.on, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&d->pt.lock);
	r = rec(d, ino);
	if (!r)
		goto out;
	if (r->pt) {
		id = r->id;
		r->pt++;
	} else if (!r->cached && fd >= 0) {
		id = ioctl(fuse_session_fd(d->se), PT_IOC_BACKING_OPEN, &map);
		if (id > 0) {
			r->id = id;
			r->pt = 1;
		} else {
			err = errno;
			id = 0;
			if (fails_all(err)) {
				__atomic_store_n(&d->pt.on, false, __ATOMIC_RELEASE);
				fsd_log(
				    d,
				    "passthrough: off for this mount: the kernel refuses the "
				    "store's files as backing files (%s); files are read through "
				    "the daemon",
				    strerror(err));
			}
		}
	}
	if (!id)
		r->cached++;
out:
	pthread_mutex_unlock(&d->pt.lock);
	return id;
}

void fsd_pt_close(struct fsd *d, fuse_ino_t ino, bool passthrough)
{
	struct pt_rec **p, *r;
	uint32_t id = 0;

	if (!d->pt.wanted) /* -o nopassthrough: no record was made */
		return;
	pthread_mutex_lock(&d->pt.lock);
	p = slot(d, ino);
	r = *p;
	if (r && passthrough && r->pt && --r->pt == 0)
		id = (uint32_t)r->id;
	else if (r && !passthrough && r->cached)
		r->cached--;
	if (r && !r->pt && !r->cached) {
		*p = r->next;
		free(r);
	}
	/* Under the lock: an open of the inode that comes next registers the file anew. */
	if (id && ioctl(fuse_session_fd(d->se), PT_IOC_BACKING_CLOSE, &id) < 0)
		fsd_log(d, "passthrough: backing file %u of inode %lu not released: %s", id,
			(unsigned long)ino, strerror(errno));
	pthread_mutex_unlock(&d->pt.lock);
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
			free(r);
		}
	}
}
