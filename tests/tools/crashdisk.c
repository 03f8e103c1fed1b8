/* tests/tools/crashdisk.c: a disk that forgets what was not synced, for crash tests.
 *
 *   crashdisk IMAGE MOUNTPOINT [FUSE OPTIONS]
 *
 * A FUSE file system with two files: MOUNTPOINT/disk, the bytes of IMAGE (a file of a whole
 * number of 4 KiB blocks), and MOUNTPOINT/ctl. Writes to disk are kept in memory, block by
 * block, and reach IMAGE only at an fsync of disk (what a loop device does for a flush or FUA
 * request of the file system on it), so IMAGE always holds what a power cut would have left.
 * Writing "crash" to ctl is the power cut: the unsynced blocks are dropped and every later
 * write is ignored (the file system on it is then unmounted, its dirty pages going nowhere);
 * "revive" accepts writes again. disk is opened with direct_io, so the kernel keeps no copy of
 * its pages. Each crash prints "crashdisk: crash: N unsynced blocks dropped" on stderr.
 *
 * Single-threaded (run with -s): no locking.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 4096

static int image = -1;
static off_t size;
static unsigned char **dirty; /* per block: its unsynced bytes, or NULL */
static size_t nblocks;
static bool dead;

static int cd_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (strcmp(path, "/disk") == 0) {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = size;
	} else if (strcmp(path, "/ctl") == 0) {
		st->st_mode = S_IFREG | 0200;
		st->st_nlink = 1;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int cd_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "disk", NULL, 0, 0);
	fill(buf, "ctl", NULL, 0, 0);
	return 0;
}

static int cd_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/disk") == 0) {
		fi->direct_io = 1;
		return 0;
	}
	return strcmp(path, "/ctl") == 0 ? 0 : -ENOENT;
}

static int cd_truncate(const char *path, off_t len, struct fuse_file_info *fi)
{
	(void)fi;
	if (strcmp(path, "/ctl") == 0)
		return 0;
	return len == size ? 0 : -EPERM;
}

/* The block's current bytes (unsynced or from the image). */
static int block_get(size_t b, unsigned char *out)
{
	if (dirty[b]) {
		memcpy(out, dirty[b], BLOCK);
		return 0;
	}
	return pread(image, out, BLOCK, (off_t)b * BLOCK) == BLOCK ? 0 : -EIO;
}

static int cd_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
	unsigned char blk[BLOCK];
	size_t done = 0;

	(void)fi;
	if (strcmp(path, "/disk") != 0)
		return -EINVAL;
	if (off >= size)
		return 0;
	if ((off_t)len > size - off)
		len = (size_t)(size - off);
	while (done < len) {
		size_t b = (size_t)((off + (off_t)done) / BLOCK),
		       in = (size_t)((off + (off_t)done) % BLOCK);
		size_t n = BLOCK - in < len - done ? BLOCK - in : len - done;

		if (block_get(b, blk) < 0)
			return -EIO;
		memcpy(buf + done, blk + in, n);
		done += n;
	}
	return (int)done;
}

static void drop_all(void)
{
	size_t n = 0;

	for (size_t b = 0; b < nblocks; b++) {
		if (dirty[b]) {
			free(dirty[b]);
			dirty[b] = NULL;
			n++;
		}
	}
	fprintf(stderr, "crashdisk: crash: %zu unsynced blocks dropped\n", n);
}

static int cd_write(const char *path, const char *buf, size_t len, off_t off,
		    struct fuse_file_info *fi)
{
	size_t done = 0;

	(void)fi;
	if (strcmp(path, "/ctl") == 0) {
		if (len >= 5 && memcmp(buf, "crash", 5) == 0) {
			drop_all();
			dead = true;
		} else if (len >= 6 && memcmp(buf, "revive", 6) == 0) {
			dead = false;
		} else {
			return -EINVAL;
		}
		return (int)len;
	}
	if (strcmp(path, "/disk") != 0)
		return -EINVAL;
	if (off + (off_t)len > size)
		return -ENOSPC;
	if (dead)
		return (int)len; /* the power is off: nothing reaches the disk */
	while (done < len) {
		size_t b = (size_t)((off + (off_t)done) / BLOCK),
		       in = (size_t)((off + (off_t)done) % BLOCK);
		size_t n = BLOCK - in < len - done ? BLOCK - in : len - done;

		if (!dirty[b]) {
			unsigned char *p = malloc(BLOCK);

			if (!p || block_get(b, p) < 0) {
				free(p);
				return -EIO;
			}
			dirty[b] = p;
		}
		memcpy(dirty[b] + in, buf + done, n);
		done += n;
	}
	return (int)done;
}

static int cd_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)datasync, (void)fi;
	if (strcmp(path, "/disk") != 0 || dead)
		return 0;
	for (size_t b = 0; b < nblocks; b++) {
		if (!dirty[b])
			continue;
		if (pwrite(image, dirty[b], BLOCK, (off_t)b * BLOCK) != BLOCK)
			return -EIO;
		free(dirty[b]);
		dirty[b] = NULL;
	}
	return 0;
}

static const struct fuse_operations ops = {
    .getattr = cd_getattr,
    .readdir = cd_readdir,
    .open = cd_open,
    .truncate = cd_truncate,
    .read = cd_read,
    .write = cd_write,
    .fsync = cd_fsync,
};

int main(int argc, char **argv)
{
	struct stat st;

	if (argc < 3) {
		fprintf(stderr, "usage: crashdisk IMAGE MOUNTPOINT [FUSE OPTIONS]\n");
		return 2;
	}
	image = open(argv[1], O_RDWR | O_CLOEXEC);
	if (image < 0 || fstat(image, &st) < 0 || st.st_size % BLOCK != 0 || st.st_size == 0) {
		fprintf(stderr,
			"crashdisk: %s: not a usable image (a file of whole 4 KiB blocks)\n",
			argv[1]);
		return 1;
	}
	size = st.st_size;
	nblocks = (size_t)(size / BLOCK);
	dirty = calloc(nblocks, sizeof(*dirty));
	if (!dirty)
		return 1;
	argv[1] = argv[0];
	return fuse_main(argc - 1, argv + 1, &ops, NULL);
}
