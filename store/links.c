/* store/links.c: where extracted trees link to mode variants, and fsck's check of them.
 *
 * Each extract that hard-links files records them in links/<sha256 of the tree's absolute
 * path> (store/README.md, "Extracted trees"). fsck reads the records back and re-hashes each
 * recorded file that is still the inode the extract linked: one whose content no longer
 * hashes to its object means the variant it shares with other trees was changed, so every
 * such tree is listed. Records of trees that are gone (or whose files were all replaced) are
 * stale; repair removes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"
#include "verify/atomic.h"

#define LINKS_DIR   "links"
#define LINKS_MAGIC "stork-links 1"

struct store_links {
	struct store *s;
	char *buf;
	size_t len;
	FILE *f;
};

int store_links_new(struct store *s, struct store_links **ret_l)
{
	struct store_links *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->s = s;
	l->f = open_memstream(&l->buf, &l->len);
	if (!l->f) {
		free(l);
		return -ENOMEM;
	}
	*ret_l = l;
	return 0;
}

void store_links_free(struct store_links *l)
{
	if (!l)
		return;
	if (l->f)
		fclose(l->f);
	free(l->buf);
	free(l);
}

int store_links_add(struct store_links *l, const uint8_t id[VERIFY_HASH_LEN], uint32_t mode,
		    uint64_t ino, const char *path)
{
	char hex[VERIFY_HASH_HEX];

	if (strchr(path, '\n'))
		return -EINVAL;
	verify_hex(id, VERIFY_HASH_LEN, hex);
	return fprintf(l->f, "%s %o %" PRIu64 " %s\n", hex, (unsigned)(mode & 07777), ino, path) < 0
		   ? -ENOMEM
		   : 0;
}

/* links/<sha256 of dest>. */
static void record_name(const char *dest, char out[VERIFY_HASH_HEX])
{
	uint8_t h[VERIFY_HASH_LEN];

	verify_sha256(dest, strlen(dest), h);
	verify_hex(h, VERIFY_HASH_LEN, out);
}

int store_links_commit(struct store_links *l, const char *dest)
{
	char name[VERIFY_HASH_HEX], tmp[VERIFY_HASH_HEX + 16];
	int dfd = -1, fd = -1, r;
	FILE *f = l->f;
	char *head = NULL;
	size_t n;

	l->f = NULL;
	if (fclose(f) != 0)
		return -ENOMEM;
	if (dest[0] != '/' || strchr(dest, '\n')) {
		stork_errorf("%s: not an absolute path without newlines: not recorded", dest);
		return -EINVAL;
	}
	if (mkdirat(l->s->dirfd, LINKS_DIR, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	dfd = openat(l->s->dirfd, LINKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0) {
		r = -errno;
		goto fail;
	}
	record_name(dest, name);
	snprintf(tmp, sizeof(tmp), ".%s.%d", name, (int)getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	n = (size_t)asprintf(&head, LINKS_MAGIC "\n%s\n", dest);
	if (!head) {
		r = -ENOMEM;
		goto fail;
	}
	r = verify_write_all(fd, head, n);
	if (r == 0)
		r = verify_write_all(fd, l->buf, l->len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		goto fail;
	if (renameat(dfd, tmp, dfd, name) < 0) {
		r = -errno;
		goto fail;
	}
	r = node_sync_dir(dfd);
	if (r < 0)
		goto fail;
	goto out;
fail:
	stork_errorf("%s/" LINKS_DIR "/%s: cannot record the links of %s: %s", l->s->dir, name,
		     dest, strerror(-r));
	if (fd >= 0)
		unlinkat(dfd, tmp, 0);
out:
	free(head);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

void store_links_forget(struct store *s, const char *dest)
{
	char name[VERIFY_HASH_HEX], rel[sizeof(LINKS_DIR) + VERIFY_HASH_HEX + 1];

	record_name(dest, name);
	snprintf(rel, sizeof(rel), LINKS_DIR "/%s", name);
	unlinkat(s->dirfd, rel, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* fsck */

/* An inode already hashed (trees share them): dev, ino, and whether it was right. */
struct seen {
	dev_t dev;
	ino_t ino;
	bool good;
};

static int seen_cmp(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

struct check {
	struct store *s;
	void (*problem)(void *ctx, const char *path, const char *what);
	void *ctx;
	void *seen; /* tsearch tree of struct seen */
	uint64_t changed;
};

/* One recorded entry "HEX MODE INO PATH" of the tree destfd. @return 1 when the file is still
 * the linked inode, 0 when it is not (replaced, removed), -ENOMEM. */
static int check_entry(struct check *c, const char *dest, int destfd, char *line)
{
	char *hex = line, *mode, *ino, *path, *what = NULL, *full = NULL;
	uint8_t id[VERIFY_HASH_LEN], h[VERIFY_HASH_LEN];
	struct seen key, *e, **found;
	struct stat st;
	uint64_t n;
	int fd, r;

	if (!(mode = strchr(hex, ' ')) || !(ino = strchr(mode + 1, ' ')) ||
	    !(path = strchr(ino + 1, ' ')))
		return 0;
	*mode++ = '\0';
	*ino++ = '\0';
	*path++ = '\0';
	if (strlen(hex) != 2 * VERIFY_HASH_LEN || verify_unhex(hex, id, VERIFY_HASH_LEN) < 0)
		return 0;
	if (fstatat(destfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_ino != strtoull(ino, NULL, 10))
		return 0;
	key = (struct seen){st.st_dev, st.st_ino, true};
	found = tfind(&key, &c->seen, seen_cmp);
	if (!found) {
		fd = openat(destfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return 1; /* unreadable: nothing to say */
		r = node_hash_fd(fd, h, &n);
		close(fd);
		e = malloc(sizeof(*e));
		if (!e)
			return -ENOMEM;
		*e = key;
		e->good = r < 0 || memcmp(h, id, VERIFY_HASH_LEN) == 0;
		found = tsearch(e, &c->seen, seen_cmp);
		if (!found) {
			free(e);
			return -ENOMEM;
		}
	}
	if ((*found)->good)
		return 1;
	c->changed++;
	if (c->problem && asprintf(&full, "%s/%s", dest, path) >= 0 &&
	    asprintf(&what,
		     "extracted tree %s links to the variant of %s for mode %s, whose content "
		     "changed: every tree linked to it sees the change",
		     dest, hex, mode) >= 0) {
		c->problem(c->ctx, full, what);
		free(what);
	}
	free(full);
	return 1;
}

/* One record links/name. @return 0; -ENOMEM. */
static int check_record(struct check *c, int dfd, const char *name, bool repair,
			uint64_t *ret_stale)
{
	char *line = NULL, *dest = NULL;
	size_t cap = 0, dcap = 0;
	ssize_t len;
	int fd, destfd = -1, r = 0, live = 0;
	FILE *f;

	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || !(f = fdopen(fd, "r"))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (getline(&line, &cap, f) < 0 || strcmp(line, LINKS_MAGIC "\n") != 0 ||
	    (len = getline(&dest, &dcap, f)) < 2)
		goto stale;
	dest[len - 1] = '\0';
	destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (destfd < 0)
		goto stale;
	while (r >= 0 && (len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		r = check_entry(c, dest, destfd, line);
		live += r > 0;
	}
	if (live > 0 || r < 0)
		goto out;
stale:
	(*ret_stale)++;
	if (repair)
		unlinkat(dfd, name, 0);
out:
	if (destfd >= 0)
		close(destfd);
	fclose(f);
	free(line);
	free(dest);
	return r < 0 ? r : 0;
}

int node_links_check(struct store *s, bool repair,
		     void (*problem)(void *ctx, const char *path, const char *what), void *ctx,
		     uint64_t *ret_changed, uint64_t *ret_stale)
{
	struct check c = {.s = s, .problem = problem, .ctx = ctx};
	uint64_t stale = 0;
	struct dirent *de;
	DIR *d;
	int dfd, r = 0;

	dfd = openat(s->dirfd, LINKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d)))
		if (de->d_name[0] != '.')
			r = check_record(&c, dirfd(d), de->d_name, repair, &stale);
	closedir(d);
	tdestroy(c.seen, free);
	*ret_changed = c.changed;
	*ret_stale = stale;
	return r;
}
