/* verify/atomic.h: writing a whole file, all of it (verify_write_all) or atomically
 * (verify/error.c), shared by verify/, store/ and fs/.
 */
#ifndef STORKFS_VERIFY_ATOMIC_H
#define STORKFS_VERIFY_ATOMIC_H

#include <stddef.h>
#include <sys/types.h>

/** Write all len bytes of buf to fd, again after a short write or EINTR. @return 0; -errno
 * (write's). Thread-safe. */
int verify_write_all(int fd, const void *buf, size_t len);
/* Shared with store/ and fs/: write a whole file atomically (tmp in the same directory, fsync,
 * rename, fsync the directory). @return 0; -errno. */
int verify_write_atomic(int dirfd, const char *name, const void *buf, size_t len, mode_t mode);
/** The same with the content written by fill into fd (the temporary file, positioned at its
 * start), for files too big to hold in memory. fill returns 0 or -errno; a failure with a
 * detail (stork_errorf) keeps that detail. @return 0; -errno. */
int verify_write_atomic_fn(int dirfd, const char *name, mode_t mode, int (*fill)(void *ctx, int fd),
			   void *ctx);

#endif
