/* store/insert.c: writing an object into the node store (store/README.md, "Inserting").
 *
 * Bytes go to tmp/.part-XXXXXX, flock()ed for its life, and are hashed as they are written. On
 * commit the size and the SHA-256 must match the id; only then is the file fsync()ed, made
 * 0444, renamed to objects/ab/<hex> and indexed. An object already at that name stays only if
 * it re-hashes right; a rotten one is replaced by ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

struct store_insert {
	struct store *s;
	uint8_t id[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX];
	uint64_t size;	  /* expected */
	uint64_t written; /* bytes written (and hashed) so far */
	struct verify_hash *h;
	int fd;
	char name[NODE_TMPNAME_LEN]; /* in tmp/; "" once it is gone */
};

int store_insert_new(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size,
		     struct store_insert **ret_ins)
{
	struct store_insert *ins;
	int r;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	ins = calloc(1, sizeof(*ins));
	if (!ins)
		return -ENOMEM;
	ins->s = s;
	ins->fd = -1;
	memcpy(ins->id, id, VERIFY_HASH_LEN);
	verify_hex(id, VERIFY_HASH_LEN, ins->hex);
	ins->size = size;
	r = verify_hash_new(&ins->h);
	if (r < 0)
		goto fail;
	r = node_tmp_create(s, &ins->fd, ins->name);
	if (r < 0)
		goto fail;
	*ret_ins = ins;
	return 0;
fail:
	store_insert_abort(ins);
	return r;
}

int store_insert_write(struct store_insert *ins, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;
	ssize_t n;
	int r;

	if (len > ins->size - ins->written) {
		stork_errorf("object %s: more than the %llu bytes expected", ins->hex,
			     (unsigned long long)ins->size);
		return STORK_EBADLEN;
	}
	/* Write first, hash second: a failed write leaves written and the hash as they were,
	 * and the next write goes to the same offset. */
	while (done < len) {
		n = pwrite(ins->fd, p + done, len - done, (off_t)(ins->written + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			stork_errorf("%s/" NODE_TMPDIR "/%s: object %s: %s", ins->s->dir, ins->name,
				     ins->hex, strerror(-r));
			return r;
		}
		done += (size_t)n;
	}
	r = verify_hash_update(ins->h, buf, len);
	if (r < 0)
		return r;
	ins->written += len;
	return 0;
}

int store_insert_reset(struct store_insert *ins)
{
	struct verify_hash *h = NULL;
	int r;

	if (ftruncate(ins->fd, 0) < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_TMPDIR "/%s: %s", ins->s->dir, ins->name, strerror(-r));
		return r;
	}
	r = verify_hash_new(&h);
	if (r < 0)
		return r;
	verify_hash_free(ins->h);
	ins->h = h;
	ins->written = 0;
	return 0;
}

/* An object already at subfd/hex: good if it hashes to the id with the right size. */
static bool existing_is_good(struct store_insert *ins, int subfd)
{
	uint8_t got[VERIFY_HASH_LEN];
	uint64_t size;
	struct stat st;
	bool good = false;
	int fd;

	fd = openat(subfd, ins->hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == ins->size &&
	    node_hash_fd(fd, got, &size) == 0)
		good = size == ins->size && memcmp(got, ins->id, VERIFY_HASH_LEN) == 0;
	close(fd);
	return good;
}

/* Move the verified temporary file to objects/ab/<hex>. */
static int place(struct store_insert *ins, int subfd)
{
	struct store *s = ins->s;
	struct stat st;

	if (renameat2(s->tmpfd, ins->name, subfd, ins->hex, RENAME_NOREPLACE) == 0)
		goto moved;
	if (errno == EINVAL || errno == ENOSYS) {
		/* No RENAME_NOREPLACE here: look first; a race only replaces good with good. */
		if (fstatat(subfd, ins->hex, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				return -errno;
			goto replace;
		}
	} else if (errno != EEXIST) {
		return -errno;
	}
	/* Someone stored it before us (or a crash left it unindexed): keep theirs only if it
	 * is what its name says. */
	if (existing_is_good(ins, subfd))
		return 0;
replace:
	if (renameat(s->tmpfd, ins->name, subfd, ins->hex) < 0)
		return -errno;
moved:
	ins->name[0] = '\0';
	return 0;
}

int store_insert_commit(struct store_insert *ins)
{
	uint8_t got[VERIFY_HASH_LEN];
	char ghex[VERIFY_HASH_HEX];
	struct store *s = ins->s;
	struct stat st;
	int subfd = -1, r;

	if (ins->written != ins->size) {
		r = STORK_EBADLEN;
		stork_errorf("object %s: %llu bytes, but %llu expected", ins->hex,
			     (unsigned long long)ins->written, (unsigned long long)ins->size);
		goto out;
	}
	r = verify_hash_final(ins->h, got);
	verify_hash_free(ins->h);
	ins->h = NULL;
	if (r < 0)
		goto out;
	if (memcmp(got, ins->id, VERIFY_HASH_LEN) != 0) {
		verify_hex(got, VERIFY_HASH_LEN, ghex);
		r = STORK_EBADHASH;
		stork_errorf("object %s: content hashes to %s", ins->hex, ghex);
		goto out;
	}
	if (fstat(ins->fd, &st) < 0 || fsync(ins->fd) < 0 || fchmod(ins->fd, 0444) < 0) {
		r = -errno;
		stork_errorf("%s/" NODE_TMPDIR "/%s: object %s: %s", s->dir, ins->name, ins->hex,
			     strerror(-r));
		goto out;
	}
	if ((uint64_t)st.st_size != ins->size) {
		r = -EIO;
		stork_errorf("%s/" NODE_TMPDIR "/%s: object %s: %lld bytes on disk, %llu written",
			     s->dir, ins->name, ins->hex, (long long)st.st_size,
			     (unsigned long long)ins->size);
		goto out;
	}
	r = node_subdir_open(s, ins->id, &subfd);
	if (r < 0)
		goto out;
	r = place(ins, subfd);
	if (r < 0) {
		stork_errorf("%s/" NODE_OBJDIR "/%.2s/%s: cannot move the object into place: %s",
			     s->dir, ins->hex, ins->hex, strerror(-r));
		goto out;
	}
	r = node_sync_dir(subfd);
	if (r < 0) {
		stork_errorf("%s/" NODE_OBJDIR "/%.2s: cannot sync: %s", s->dir, ins->hex,
			     strerror(-r));
		goto out;
	}
	/* A crash before this leaves a good unindexed object: the next insert of it or
	 * fsck --repair indexes it. */
	r = node_index_object(s, ins->id, ins->size);
	if (r < 0)
		stork_error_prefix("object %s", ins->hex);
out:
	if (subfd >= 0)
		close(subfd);
	store_insert_abort(ins);
	return r;
}

void store_insert_abort(struct store_insert *ins)
{
	if (!ins)
		return;
	/* Unlink while still holding the lock, so no sweeper ever sees it unlocked. */
	if (ins->fd >= 0 && ins->name[0])
		unlinkat(ins->s->tmpfd, ins->name, 0);
	if (ins->fd >= 0)
		close(ins->fd);
	verify_hash_free(ins->h);
	free(ins);
}
