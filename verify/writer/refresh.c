/* verify/writer/refresh.c: `stork repo refresh`: snapshot and timestamp re-signed with fresh
 * expiry, and what killed writers left behind removed. */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "verify/writer/internal.h"

/* The directory path below at, not through a symlink. @return NULL: none (errno). */
static DIR *open_dir(int at, const char *path)
{
	int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

/* Remove ".tmp-*" files older than TMP_MAX_AGE in one directory (a killed writer's). */
static void clean_tmp_in(int at, const char *path, time_t now)
{
	struct dirent *de;
	struct stat st;
	DIR *d = open_dir(at, path);
	int fd;

	if (!d)
		return;
	fd = dirfd(d);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_mtime < now - TMP_MAX_AGE)
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
}

/* ...in every directory below `top` (targets/<name>/, objects/<xx>/). */
static void clean_tmp_below(int at, const char *top, time_t now)
{
	struct dirent *de;
	DIR *d;

	clean_tmp_in(at, top, now);
	d = open_dir(at, top);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			clean_tmp_in(dirfd(d), de->d_name, now);
	closedir(d);
}

int verify_repo_refresh(const char *repodir, const char *keydir, const struct verify_repo_opts *o)
{
	struct online_keys k = {0};
	struct repo r = {.dirfd = -1, .mdfd = -1};
	time_t wall = time(NULL);
	int ret;

	ret = repo_open(&r, repodir, keydir, o);
	if (ret < 0)
		return ret;
	ret = repo_load_online(&r, keydir, false, &k);
	if (ret < 0)
		goto out;
	ret = repo_commit(&r, NULL, NULL, 0, k.snapshot, k.timestamp);
	if (ret < 0)
		goto out;
	/* File ages are wall-clock ages, whatever time the metadata is signed for. */
	clean_tmp_in(r.dirfd, "metadata", wall);
	clean_tmp_below(r.dirfd, "targets", wall);
	clean_tmp_below(r.dirfd, "objects", wall);
out:
	repo_online_free(&k);
	repo_close(&r);
	return ret;
}
