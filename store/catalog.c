/* store/catalog.c: catalog indexes (store/README.md "Catalog indexes"): what a mount lists at
 * its top level, kept as STOREDIR/catalogs/<key> so that a remount over unchanged metadata
 * reads one file instead of walking every delegated role. The store keeps the bytes whole
 * (a header naming the key, a SHA-256 trailer); what they say is the caller's format
 * (fs/catalog.c). Derived data: written without a sync, checked whole when read, made again
 * when damaged; at most CATALOGS_MAX files are kept, the least recently written go first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/node.h"

#define CATALOGS_DIR	"catalogs"
#define CATALOG_MAGIC	"storkca1"
#define CATALOG_HEAD	64
#define CATALOG_MAX_MB	256
#define CATALOGS_MAX	16
#define CATALOG_TMP_AGE 3600 /* seconds: a temporary file this old is a killed writer's */

struct catalog_head {
	char magic[8];
	uint64_t len;		      /* the whole file, trailer included */
	uint8_t key[VERIFY_HASH_LEN]; /* the name it was written under */
	int64_t until;		      /* the caller's: when it stops being valid */
	uint64_t reserved;	      /* 0 */
};

_Static_assert(sizeof(struct catalog_head) == CATALOG_HEAD, "catalog header layout");

/* "catalogs/<64 hex>" */
static void catalog_name(const uint8_t key[VERIFY_HASH_LEN], char *buf, size_t cap)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(key, VERIFY_HASH_LEN, hex);
	snprintf(buf, cap, "%s/%s", CATALOGS_DIR, hex);
}

static int read_all(int fd, uint8_t *buf, size_t len, size_t *ret_got)
{
	size_t got = 0;

	while (got < len) {
		ssize_t k = pread(fd, buf + got, len - got, (off_t)got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	*ret_got = got;
	return 0;
}

/* The header and the checksum. @return 0; STORK_EBADHASH (detail names file and problem). */
static int catalog_check(const uint8_t *buf, size_t len, const uint8_t key[VERIFY_HASH_LEN],
			 const char *file)
{
	const struct catalog_head *h = (const struct catalog_head *)buf;
	uint8_t sum[VERIFY_HASH_LEN];
	const char *what = NULL;

	if (len < CATALOG_HEAD + VERIFY_HASH_LEN)
		what = "cut (shorter than its header)";
	else if (memcmp(h->magic, CATALOG_MAGIC, 8) != 0 || h->reserved != 0)
		what = "not a catalog index of this format";
	else if (h->len != len)
		what = "cut or grown (its length is not the one its header gives)";
	else if (verify_sha256(buf, len - VERIFY_HASH_LEN, sum) < 0 ||
		 memcmp(sum, buf + len - VERIFY_HASH_LEN, VERIFY_HASH_LEN) != 0)
		what = "damaged (its bytes do not hash to its checksum)";
	else if (memcmp(h->key, key, VERIFY_HASH_LEN) != 0)
		what = "made for another state than its name says";
	if (!what)
		return 0;
	stork_errorf("%s: %s", file, what);
	return STORK_EBADHASH;
}

int store_catalog_open(struct store *s, const uint8_t key[VERIFY_HASH_LEN], uint8_t **ret_body,
		       size_t *ret_len, int64_t *ret_until)
{
	char name[sizeof(CATALOGS_DIR) + VERIFY_HASH_HEX + 2], file[PATH_MAX];
	uint8_t *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd = -1, ret;

	catalog_name(key, name, sizeof(name));
	snprintf(file, sizeof(file), "%s/%s", s->dir, name);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (S_ISREG(st.st_mode) && st.st_size >= CATALOG_HEAD + VERIFY_HASH_LEN &&
	    st.st_size <= (off_t)CATALOG_MAX_MB << 20) {
		buf = malloc((size_t)st.st_size);
		if (!buf) {
			ret = -ENOMEM;
			goto out;
		}
		ret = read_all(fd, buf, (size_t)st.st_size, &len);
		if (ret < 0) {
			stork_errorf("%s: %s", file, strerror(-ret));
			goto out;
		}
	}
	ret = catalog_check(buf, len, key, file);
	if (ret < 0)
		goto out;
	if (ret_until)
		*ret_until = ((const struct catalog_head *)(void *)buf)->until;
	len -= CATALOG_HEAD + VERIFY_HASH_LEN;
	memmove(buf, buf + CATALOG_HEAD, len);
	*ret_body = buf;
	*ret_len = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

/* Keep the CATALOGS_MAX most recently written catalogs (one a repository state and view: a
 * node rarely needs more than its mounts' current ones), and remove the temporary files of
 * writers killed before their rename ("<64 hex>.<pid>.<n>") once they are an hour old (a
 * younger one may be another writer's in flight). */
static void catalogs_prune(struct store *s)
{
	struct old {
		char name[VERIFY_HASH_HEX + 1];
		int64_t mtime;
	} keep[CATALOGS_MAX + 1];
	size_t n = 0;
	struct dirent *de;
	time_t now = time(NULL);
	DIR *dir;
	int fd;

	fd = openat(s->dirfd, CATALOGS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		struct stat st;
		size_t i, nlen = strlen(de->d_name);

		if (nlen < VERIFY_HASH_HEX - 1 ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (nlen > VERIFY_HASH_HEX - 1) {
			if (de->d_name[VERIFY_HASH_HEX - 1] == '.' && S_ISREG(st.st_mode) &&
			    st.st_mtime < now - CATALOG_TMP_AGE)
				unlinkat(fd, de->d_name, 0);
			continue;
		}
		/* Insert by age, newest first; what falls off the end is removed. */
		for (i = n; i > 0 && keep[i - 1].mtime < (int64_t)st.st_mtime; i--)
			keep[i] = keep[i - 1];
		snprintf(keep[i].name, sizeof(keep[i].name), "%s", de->d_name);
		keep[i].mtime = (int64_t)st.st_mtime;
		if (n < CATALOGS_MAX)
			n++;
		else
			unlinkat(fd, keep[CATALOGS_MAX].name, 0);
	}
	closedir(dir);
}

int store_catalog_save(struct store *s, const uint8_t key[VERIFY_HASH_LEN], const void *body,
		       size_t len, int64_t until)
{
	char name[sizeof(CATALOGS_DIR) + VERIFY_HASH_HEX + 2];
	struct catalog_head h;
	uint8_t *buf = NULL;
	size_t total;
	int ret;

	if (s->readonly)
		return -EROFS;
	if (len > ((size_t)CATALOG_MAX_MB << 20) - CATALOG_HEAD - VERIFY_HASH_LEN)
		return -EFBIG;
	total = CATALOG_HEAD + len + VERIFY_HASH_LEN;
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, CATALOG_MAGIC, 8);
	h.len = total;
	memcpy(h.key, key, VERIFY_HASH_LEN);
	h.until = until;
	memcpy(buf, &h, CATALOG_HEAD);
	if (len)
		memcpy(buf + CATALOG_HEAD, body, len);
	ret = verify_sha256(buf, CATALOG_HEAD + len, buf + CATALOG_HEAD + len);
	catalog_name(key, name, sizeof(name));
	if (ret == 0)
		ret = node_flat_save(s, CATALOGS_DIR, name, buf, total);
	if (ret == 0)
		catalogs_prune(s);
	free(buf);
	return ret;
}

int store_catalog_drop(struct store *s, const uint8_t key[VERIFY_HASH_LEN])
{
	char name[sizeof(CATALOGS_DIR) + VERIFY_HASH_HEX + 2];

	catalog_name(key, name, sizeof(name));
	return node_flat_drop(s, name);
}
