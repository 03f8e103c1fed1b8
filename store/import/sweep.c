/* store/import/sweep.c: `stork repo gc`'s last step: delete the repository objects that no kept
 * manifest names (verify_repo_gc decides which are kept; this file knows the objects/ layout,
 * store/README.md "Repository layout"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/import/import.h"
#include "verify/error.h"
#include "verify/hash.h"

static int cmphash(const void *a, const void *b)
{
	return memcmp(a, b, VERIFY_HASH_LEN);
}

/* objects/<sub>/: delete the objects keep does not hold. */
static int sweep_dir(int objfd, const char *sub, const uint8_t (*keep)[VERIFY_HASH_LEN],
		     size_t nkeep, bool dry_run, uint64_t *files, uint64_t *bytes)
{
	uint8_t h[VERIFY_HASH_LEN];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, ret = 0;

	fd = openat(objfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0; /* not a fan-out directory */
	}
	while ((de = readdir(d))) {
		const char *n = de->d_name;

		/* an object's name: 64 hex digits beginning with its directory's two */
		if (strlen(n) != 2 * VERIFY_HASH_LEN || strncmp(n, sub, 2) ||
		    verify_unhex(n, h, sizeof(h)) < 0)
			continue;
		if (nkeep && bsearch(h, keep, nkeep, VERIFY_HASH_LEN, cmphash))
			continue;
		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (!dry_run && unlinkat(dirfd(d), n, 0) < 0) {
			ret = -errno;
			stork_errorf("objects/%s/%s: cannot delete: %s", sub, n,
				     storkfs_strerror(ret));
			break;
		}
		(*files)++;
		*bytes += (uint64_t)st.st_size;
	}
	closedir(d);
	if (!dry_run)
		(void)unlinkat(objfd, sub, AT_REMOVEDIR); /* only when it is empty */
	return ret;
}

int store_import_sweep(int repofd, const uint8_t (*keep)[VERIFY_HASH_LEN], size_t nkeep,
		       bool dry_run, uint64_t *ret_files, uint64_t *ret_bytes)
{
	uint64_t files = 0, bytes = 0;
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	fd = openat(repofd, "objects", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		*ret_files = *ret_bytes = 0;
		return 0;
	}
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		stork_errorf("objects: %s", storkfs_strerror(ret));
		return ret;
	}
	while (ret == 0 && (de = readdir(d)))
		if (strlen(de->d_name) == 2 && strspn(de->d_name, "0123456789abcdef") == 2)
			ret = sweep_dir(dirfd(d), de->d_name, keep, nkeep, dry_run, &files, &bytes);
	closedir(d);
	if (ret < 0)
		return ret;
	*ret_files = files;
	*ret_bytes = bytes;
	return 0;
}
