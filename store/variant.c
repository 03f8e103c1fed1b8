/* store/variant.c: hard links into the node store, and the mode variants they go to.
 *
 * Hard links never share the object's inode: they go to a per-mode copy,
 * objects/ab/<hex>.<octal mode>, so nothing written through a link reaches what reads are
 * served from. And since every tree linked from a variant shares its inode, a variant is
 * immutable (FS_IMMUTABLE_FL) whenever it has links outside the store: no one, root in a
 * slice included (without CAP_LINUX_IMMUTABLE), writes through one slice's file into
 * another's. Linking needs the flag off for a moment (the kernel refuses links to an
 * immutable inode): it is cleared, the link made and the flag set again under the variant's
 * flock, and a write in that moment is caught (mtime) and the link undone. Where the flag
 * cannot be set (tmpfs before 6.0, ramfs, no CAP_LINUX_IMMUTABLE), and for modes others may
 * write, store_object_link says -EXDEV: the caller copies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

#define COPY_CHUNK (1 << 20)

/* Copy [off, end) of src to the same offsets of dst. @return 0; -EIO when src is shorter;
 * -errno. */
static int copy_range(int src, int dst, uint64_t off, uint64_t end, uint8_t **buf)
{
	ssize_t n, w;

	while (off < end) {
		loff_t in = (loff_t)off, out = (loff_t)off;

		n = copy_file_range(src, &in, dst, &out, end - off, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP)
			return -errno;
		if (n == 0)
			return -EIO; /* shorter than indexed: the caller's size check says so */
		if (n > 0) {
			off += (uint64_t)n;
			continue;
		}
		if (!*buf && !(*buf = malloc(COPY_CHUNK)))
			return -ENOMEM;
		n = pread(src, *buf, COPY_CHUNK < end - off ? COPY_CHUNK : end - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (w = 0; w < n;) {
			ssize_t m = pwrite(dst, *buf + w, (size_t)(n - w), (off_t)off + w);

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return -errno;
			w += m;
		}
		off += (uint64_t)n;
	}
	return 0;
}

/* Copy size bytes of src into the empty dst: a reflink where the file system shares extents,
 * else the data ranges only (SEEK_DATA / SEEK_HOLE), so that holes stay holes. */
int store_copy_file(int src, int dst, uint64_t size)
{
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int r = 0;

	if (ioctl(dst, FICLONE, src) == 0)
		return 0;
	while (off < size && r == 0) {
		off_t data = lseek(src, (off_t)off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0) {
			/* No SEEK_DATA here: all of it is data. */
			r = copy_range(src, dst, off, size, &buf);
			off = size;
			break;
		}
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		r = copy_range(src, dst, (uint64_t)data, (uint64_t)hole, &buf);
		off = (uint64_t)hole;
	}
	if (r == 0 && ftruncate(dst, (off_t)size) < 0)
		r = -errno;
	free(buf);
	return r;
}

/* FS_IMMUTABLE_FL on (on) or off for fd; *ret_was (may be NULL) says whether it was on.
 * @return 0; -EOPNOTSUPP where the file system has no such attribute; -EPERM without
 * CAP_LINUX_IMMUTABLE; -errno. */
static int set_immutable(int fd, bool on, bool *ret_was)
{
	int fl;

	if (ioctl(fd, FS_IOC_GETFLAGS, &fl) < 0)
		return errno == ENOTTY || errno == EINVAL || errno == ENOSYS ? -EOPNOTSUPP : -errno;
	if (ret_was)
		*ret_was = fl & FS_IMMUTABLE_FL;
	if (!!(fl & FS_IMMUTABLE_FL) == on)
		return 0;
	fl = on ? fl | FS_IMMUTABLE_FL : fl & ~FS_IMMUTABLE_FL;
	if (ioctl(fd, FS_IOC_SETFLAGS, &fl) < 0)
		return errno == ENOTTY || errno == EINVAL ? -EOPNOTSUPP : -errno;
	return 0;
}

/* Lock a possibly immutable file's inode (flock: links, unlinks and replacements of variants
 * take it) and clear the flag. @param[out] ret_fd the locked descriptor, ret_was whether the
 * flag was set (put it back with set_immutable, then close). @return 0; -errno. */
static int open_unlocked(int dirfd, const char *name, int *ret_fd, bool *ret_was)
{
	int fd, r;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = set_immutable(fd, false, ret_was);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int store_unlink(int dirfd, const char *name)
{
	bool was = false;
	struct stat st;
	int fd = -1, r;

	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	if (errno != EPERM)
		return -errno;
	/* Immutable (a variant, or a link to one): off for the unlink, on again for the
	 * links that remain. */
	r = open_unlocked(dirfd, name, &fd, &was);
	if (r < 0)
		return r == -EOPNOTSUPP ? -EPERM : r;
	r = unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
	if (was && fstat(fd, &st) == 0 && st.st_nlink > 0)
		set_immutable(fd, true, NULL);
	close(fd);
	return r;
}

/* Rename tmp/name over objects/vrel (a bad variant), which may be immutable and linked from
 * trees: its flag goes off for the rename and back on for them. @return 0; -errno. */
static int rename_over(struct store *s, const char *name, const char *vrel)
{
	bool was = false;
	int fd = -1, r;

	r = open_unlocked(s->objfd, vrel, &fd, &was);
	if (r < 0 && r != -ENOENT && r != -EOPNOTSUPP && r != -ELOOP)
		return r;
	r = renameat(s->tmpfd, name, s->objfd, vrel) < 0 ? -errno : 0;
	if (fd >= 0) {
		if (was)
			set_immutable(fd, true, NULL);
		close(fd);
	}
	return r;
}

/* A variant as made: whole, with its mode, and never written since (a write sets the mtime). */
static bool variant_is_good(const struct stat *st, uint64_t size, uint32_t mode)
{
	return S_ISREG(st->st_mode) && (uint64_t)st->st_size == size &&
	       (st->st_mode & 07777) == mode && st->st_mtim.tv_sec == NODE_VARIANT_MTIME &&
	       st->st_mtim.tv_nsec == 0;
}

/* The copy of objects/rel in tmp/name hashed to `got`, not to the id: tell a rotten object
 * (its entry is dropped so that it is fetched again: -ENOENT) from a failed copy (-EIO). */
static int bad_copy(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int src,
		    const struct stat *sst, const char *rel, const char *name,
		    const uint8_t got[VERIFY_HASH_LEN])
{
	uint8_t sgot[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX];
	uint64_t n;
	int r;

	r = node_hash_fd(src, sgot, &n);
	if (r < 0 && r != -EIO) {
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, rel, strerror(-r));
		return r;
	}
	if (r == -EIO) {
		node_drop_entry(s, id, sst);
		stork_errorf("%s/" NODE_OBJDIR "/%s: cannot be read: %s (dropped from the index; "
			     "fetch it again)",
			     s->dir, rel, strerror(EIO));
		return -ENOENT;
	}
	if (memcmp(sgot, id, VERIFY_HASH_LEN) != 0) {
		node_drop_entry(s, id, sst);
		verify_hex(sgot, VERIFY_HASH_LEN, hex);
		stork_errorf("%s/" NODE_OBJDIR "/%s: content hashes to %s (dropped from the index; "
			     "fetch it again)",
			     s->dir, rel, hex);
		return -ENOENT;
	}
	verify_hex(got, VERIFY_HASH_LEN, hex);
	stork_errorf("%s/" NODE_TMPDIR "/%s: a copy of %s hashes to %s: the copy failed", s->dir,
		     name, rel, hex);
	return -EIO;
}

/* Make objects/vrel, the object's variant for mode: a copy (a reflink where the file system
 * can; holes stay holes) re-hashed against the id, with the mode and the mtime
 * NODE_VARIANT_MTIME. It takes the place of a bad variant (replace), or else of nothing: a
 * concurrent maker's wins. It is not synced: the caller of store_object_link syncs the file
 * system once for all its links (stork extract does, before its tree appears). */
static int make_variant(struct store *s, const uint8_t id[VERIFY_HASH_LEN],
			const struct node_objrec *rec, uint32_t mode, bool replace,
			const char *vrel)
{
	struct timespec ts[2] = {{0, UTIME_OMIT}, {NODE_VARIANT_MTIME, 0}};
	char rel[NODE_RELPATH_LEN], name[NODE_TMPNAME_LEN];
	int src = -1, dst = -1, subfd = -1, r;
	uint8_t got[VERIFY_HASH_LEN];
	struct stat sst, st;
	uint64_t n = 0;

	node_relpath(id, rel);
	name[0] = '\0';
	src = openat(s->objfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (src < 0 && errno != ENOENT && errno != ENOTDIR) {
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, rel, strerror(-r));
		goto out;
	}
	r = node_check_file(s, id, rec, src, rel, &sst);
	if (r < 0)
		goto out;
	r = node_tmp_create(s, &dst, name);
	if (r < 0)
		goto out;
	r = store_copy_file(src, dst, rec->size);
	if (r == 0 && fstat(dst, &st) < 0)
		r = -errno;
	if (r == 0 && (uint64_t)st.st_size != rec->size)
		r = -EIO;
	/* Reads of the object check only its size: this is where a rotten one is caught. */
	if (r == 0)
		r = node_hash_fd(dst, got, &n);
	if (r == 0 && n != rec->size)
		r = -EIO;
	if (r < 0) {
		stork_errorf("%s/" NODE_TMPDIR "/%s: cannot copy %s: %s", s->dir, name, rel,
			     strerror(-r));
		goto out;
	}
	if (memcmp(got, id, VERIFY_HASH_LEN) != 0) {
		r = bad_copy(s, id, src, &sst, rel, name, got);
		goto out;
	}
	/* The mode last: a write would clear setuid and setgid bits. */
	if (futimens(dst, ts) < 0 || fchmod(dst, mode) < 0 || fstat(dst, &st) < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_TMPDIR "/%s: cannot make the variant %s: %s", s->dir, name,
			     vrel, strerror(-r));
		goto out;
	}
	if ((st.st_mode & 07777) != mode) {
		/* Without CAP_FSETID, chmod drops setgid when the file's group is not ours. */
		r = -EPERM;
		stork_errorf("%s/" NODE_OBJDIR "/%s: cannot make the variant: mode %o asked, %o "
			     "kept (make the store as its owner, root)",
			     s->dir, vrel, (unsigned)mode, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	r = node_subdir_open(s, id, &subfd);
	if (r < 0)
		goto out;
	if (replace) {
		r = rename_over(s, name, vrel);
		if (r < 0)
			goto rename_failed;
		name[0] = '\0';
	} else if (renameat2(s->tmpfd, name, s->objfd, vrel, RENAME_NOREPLACE) == 0) {
		name[0] = '\0';
	} else if (errno == EEXIST) {
		r = 0; /* another thread or process made it first */
		goto out;
	} else if (errno == EINVAL || errno == ENOSYS) {
		if (linkat(s->tmpfd, name, s->objfd, vrel, 0) < 0 && errno != EEXIST) {
			r = -errno;
			goto rename_failed;
		}
	} else {
		r = -errno;
		goto rename_failed;
	}
	goto out;
rename_failed:
	stork_errorf("%s/" NODE_OBJDIR "/%s: cannot move the copy into place: %s", s->dir, vrel,
		     strerror(-r));
out:
	if (name[0])
		unlinkat(s->tmpfd, name, 0);
	if (subfd >= 0)
		close(subfd);
	if (dst >= 0)
		close(dst);
	if (src >= 0)
		close(src);
	return r;
}

/* Link objects/rel (a good variant, open as fd and flock()ed, its flag off) as dirfd/name
 * and make it immutable. @return 0; 1 when it was written to meanwhile (the link is undone:
 * make a new variant); -EXDEV when it cannot be made immutable (the link is undone); -EMLINK;
 * -errno. */
static int link_locked(struct store *s, int fd, const char *rel, uint64_t size, uint32_t mode,
		       int dirfd, const char *name)
{
	struct stat st;
	int r;

	if (linkat(s->objfd, rel, dirfd, name, 0) < 0) {
		r = -errno;
		if (r == -EXDEV)
			stork_errorf("%s: on another file system than the store %s: copy instead",
				     name, s->dir);
		return r;
	}
	r = set_immutable(fd, true, NULL);
	if (r == -EOPNOTSUPP || r == -EPERM) {
		__atomic_store_n(&s->immutable, -1, __ATOMIC_RELAXED);
		unlinkat(dirfd, name, 0);
		stork_errorf("%s: %s/" NODE_OBJDIR "/%s cannot be made immutable (%s): copy "
			     "instead",
			     name, s->dir, rel,
			     r == -EPERM ? "no CAP_LINUX_IMMUTABLE"
					 : "the file system has no immutable attribute");
		return -EXDEV;
	}
	if (r < 0 || fstat(fd, &st) < 0) {
		r = r < 0 ? r : -errno;
		goto undo;
	}
	__atomic_store_n(&s->immutable, 1, __ATOMIC_RELAXED);
	if (variant_is_good(&st, size, mode))
		return 0;
	r = 1; /* written (or chmod()ed) while its flag was off */
undo:
	set_immutable(fd, false, NULL);
	unlinkat(dirfd, name, 0);
	set_immutable(fd, true, NULL);
	if (r < 0)
		stork_errorf("%s: cannot link to %s/" NODE_OBJDIR "/%s: %s", name, s->dir, rel,
			     strerror(-r));
	return r;
}

int store_object_link(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint32_t mode, int dirfd,
		      const char *name)
{
	struct node_objrec rec;
	char rel[NODE_RELPATH_LEN];
	bool replace = false, fresh = false, was;
	struct stat st;
	int fd = -1, r, tries = 0;

	mode &= 07777;
	if (mode & S_IWOTH) {
		stork_errorf("%s: mode %o lets everyone write: copy instead", name, (unsigned)mode);
		return -EXDEV;
	}
	if (__atomic_load_n(&s->immutable, __ATOMIC_RELAXED) < 0) {
		stork_errorf("%s: %s cannot make its files immutable: copy instead", name, s->dir);
		return -EXDEV; /* no variant made for nothing */
	}
	r = node_object_get(s, id, &rec);
	if (r < 0)
		return r;
	node_relpath(id, rel);
	r = node_check_file(s, id, &rec, -1, rel, NULL);
	if (r < 0)
		return r;
	node_variant_relpath(id, mode, rel);
	if (fstatat(s->objfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (variant_is_good(&st, rec.size, mode))
			goto link;
		/* Cut short, chmod()ed or written through a link: it is derived, make it anew
		 * (links made to the old one keep it). */
		replace = true;
	} else if (errno != ENOENT) {
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, rel, strerror(-r));
		return r;
	}
make:
	if (++tries > 4) {
		stork_errorf("%s/" NODE_OBJDIR "/%s: changed each time it was made: not linked",
			     s->dir, rel);
		return -EAGAIN;
	}
	r = make_variant(s, id, &rec, mode, replace, rel);
	if (r < 0)
		return r;
	fresh = true;
link:
	r = open_unlocked(s->objfd, rel, &fd, &was);
	if (r == -EOPNOTSUPP || r == -EPERM || r == -EACCES) {
		__atomic_store_n(&s->immutable, -1, __ATOMIC_RELAXED);
		stork_errorf("%s: %s/" NODE_OBJDIR "/%s cannot be made immutable: copy instead",
			     name, s->dir, rel);
		return -EXDEV;
	}
	if (r == -ENOENT) {
		replace = false; /* removed meanwhile (fsck, gc) */
		goto make;
	}
	if (r < 0) {
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, rel, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !variant_is_good(&st, rec.size, mode))
		r = 1; /* replaced or written meanwhile */
	else
		r = link_locked(s, fd, rel, rec.size, mode, dirfd, name);
	if (r != 0 && was && r != -EXDEV)
		set_immutable(fd, true, NULL);
	close(fd);
	if (r == 1 || (r == -EMLINK && !fresh)) {
		/* Written to, or a common file (an empty one, a licence) in so many trees
		 * that its links are full: a new inode takes the next links. */
		replace = true;
		fresh = false;
		goto make;
	}
	if (r < 0 && r != -EXDEV)
		stork_errorf("%s: cannot link to %s/" NODE_OBJDIR "/%s: %s", name, s->dir, rel,
			     strerror(-r));
	if (r < 0)
		return r;
	node_touch(s, id, rec.last_use);
	return 0;
}

int node_variants_remove(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t *ret_removed)
{
	char hex[VERIFY_HASH_HEX], sub[3], prefix[VERIFY_HASH_HEX + 1];
	uint64_t removed = 0;
	struct dirent *de;
	DIR *d = NULL;
	int fd, r = 0;

	verify_hex(id, VERIFY_HASH_LEN, hex);
	memcpy(sub, hex, 2);
	sub[2] = '\0';
	snprintf(prefix, sizeof(prefix), "%s.", hex);
	fd = openat(s->objfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
		goto done; /* no objects/ab directory: no variants */
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, sub, strerror(-r));
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		if (strncmp(de->d_name, prefix, sizeof(prefix) - 1) != 0)
			continue;
		errno = -store_unlink(dirfd(d), de->d_name);
		if (errno == 0) {
			removed++;
			continue;
		}
		/* Gone meanwhile; or a directory, which fsck reports and leaves alone. */
		if (errno == ENOENT || errno == EISDIR)
			continue;
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s/%s: cannot remove: %s", s->dir, sub, de->d_name,
			     strerror(-r));
		break;
	}
	if (r == 0 && errno != 0) {
		r = -errno;
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, sub, strerror(-r));
	}
	closedir(d);
	if (r < 0)
		return r;
done:
	if (ret_removed)
		*ret_removed = removed;
	return 0;
}
