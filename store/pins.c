/* store/pins.c: sets of object ids in files: the pin sets by owner (store/README.md, "Pins"),
 * STOREDIR/pins/<owner>, and the repositories' current versions (gc.c), STOREDIR/repos/<repo>. Each
 * owner (a mount's prefetch= versions, a slice's installed set) replaces its whole set at once with
 * store_pin_set: one file STOREDIR/pins/<owner>, written to a temporary name, fsynced and renamed,
 * so a reader (an eviction, stork gc) sees the old set or the new one. Eviction and gc read them
 * all (node_pins_load). Thread-safe: files are only renamed into place.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/node.h"

#define PINDIR	   "pins"
#define PIN_MAGIC  "stork-ids 1\n"
#define PIN_MAXLEN ((size_t)1 << 30)

static bool owner_ok(const char *owner)
{
	size_t len = owner ? strlen(owner) : 0;

	if (len == 0 || len > STORE_PIN_OWNER_MAX || owner[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = owner[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int node_idset_write(struct store *s, const char *dname, const char *owner,
		     const uint8_t (*ids)[VERIFY_HASH_LEN], size_t n)
{
	char tmp[STORE_PIN_OWNER_MAX + 32], *text = NULL;
	int dirfd = -1, fd = -1, r;
	size_t len;

	if (!owner_ok(owner)) {
		stork_errorf("%s: set name \"%.*s\": expected 1 to %d letters, digits, '.', '_' "
			     "or '-', not starting with '.'",
			     s->dir, STORE_PIN_OWNER_MAX, owner ? owner : "", STORE_PIN_OWNER_MAX);
		return -EINVAL;
	}
	if (s->readonly) {
		stork_errorf("%s: read-only store: cannot store anything in it", s->dir);
		return -EROFS;
	}
	r = node_mkdir_mode(s->dirfd, dname, 0755);
	if (r < 0) {
		stork_errorf("%s/%s: cannot create: %s", s->dir, dname, strerror(-r));
		return r;
	}
	dirfd = openat(s->dirfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		stork_errorf("%s/%s: %s", s->dir, dname, strerror(-r));
		return r;
	}
	if (!ids) {
		r = unlinkat(dirfd, owner, 0) < 0 && errno != ENOENT ? -errno : 0;
		if (r == 0)
			r = node_sync_dir(dirfd);
		if (r < 0)
			stork_errorf("%s/%s/%s: cannot remove: %s", s->dir, dname, owner,
				     strerror(-r));
		goto out;
	}
	len = sizeof(PIN_MAGIC) - 1 + n * (2 * VERIFY_HASH_LEN + 1);
	text = malloc(len + 2 * VERIFY_HASH_LEN + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(text, PIN_MAGIC, sizeof(PIN_MAGIC) - 1);
	for (size_t i = 0; i < n; i++) {
		char *p = text + sizeof(PIN_MAGIC) - 1 + i * (2 * VERIFY_HASH_LEN + 1);

		verify_hex(ids[i], VERIFY_HASH_LEN, p);
		p[2 * VERIFY_HASH_LEN] = '\n';
	}
	snprintf(tmp, sizeof(tmp), ".%s.%ld", owner, (long)getpid());
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	r = write_all(fd, text, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, owner) < 0)
		r = -errno;
	if (r == 0)
		r = node_sync_dir(dirfd);
	if (r == 0)
		goto out;
fail:
	stork_errorf("%s/%s/%s: cannot write: %s", s->dir, dname, owner, strerror(-r));
	unlinkat(dirfd, tmp, 0);
out:
	if (fd >= 0)
		close(fd);
	close(dirfd);
	free(text);
	return r;
}

void node_pins_fini(struct node_pinset *p)
{
	if (!p)
		return;
	free(p->ids);
	memset(p, 0, sizeof(*p));
}

static int by_id(const void *a, const void *b)
{
	return memcmp(a, b, VERIFY_HASH_LEN);
}

bool node_pins_has(const struct node_pinset *p, const uint8_t id[VERIFY_HASH_LEN])
{
	return p && p->n && bsearch(id, p->ids, p->n, VERIFY_HASH_LEN, by_id);
}

/* Append the ids of one pin file (fd) to *p. */
static int load_one(struct store *s, const char *dname, int fd, const char *name,
		    struct node_pinset *p, size_t *cap)
{
	struct stat st;
	char *text = NULL, *line;
	size_t off = 0, len;
	ssize_t got;
	int r = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > PIN_MAXLEN) {
		stork_errorf("%s/%s/%s: not a set of object ids (a regular file of at most %zu "
			     "bytes)",
			     s->dir, dname, name, PIN_MAXLEN);
		return STORK_EFORMAT;
	}
	len = (size_t)st.st_size;
	text = malloc(len + 1);
	if (!text)
		return -ENOMEM;
	while (off < len) {
		got = read(fd, text + off, len - off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r = got < 0 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)got;
	}
	text[len] = '\0';
	if (len < sizeof(PIN_MAGIC) - 1 || memcmp(text, PIN_MAGIC, sizeof(PIN_MAGIC) - 1) != 0 ||
	    (len - (sizeof(PIN_MAGIC) - 1)) % (2 * VERIFY_HASH_LEN + 1) != 0) {
		stork_errorf("%s/%s/%s: not a set of object ids (\"stork-ids 1\", then one "
			     "object id a line)",
			     s->dir, dname, name);
		r = STORK_EFORMAT;
		goto out;
	}
	for (line = text + sizeof(PIN_MAGIC) - 1; line < text + len;
	     line += 2 * VERIFY_HASH_LEN + 1) {
		if (p->n == *cap) {
			size_t ncap = *cap ? 2 * *cap : 256;
			void *grown = realloc(p->ids, ncap * VERIFY_HASH_LEN);

			if (!grown) {
				r = -ENOMEM;
				goto out;
			}
			p->ids = grown;
			*cap = ncap;
		}
		line[2 * VERIFY_HASH_LEN] = '\0';
		if (verify_unhex(line, p->ids[p->n], VERIFY_HASH_LEN) < 0) {
			stork_errorf("%s/%s/%s: \"%.64s\" is not an object id", s->dir, dname, name,
				     line);
			r = STORK_EFORMAT;
			goto out;
		}
		p->n++;
	}
out:
	free(text);
	return r;
}

int node_idset_load(struct store *s, const char *dname, struct node_pinset *ret)
{
	struct node_pinset p = {0};
	struct dirent *de;
	size_t cap = 0, k;
	DIR *dir = NULL;
	int dirfd, fd, r = 0;

	dirfd = openat(s->dirfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		if (errno == ENOENT) {
			*ret = p;
			return 0;
		}
		r = -errno;
		stork_errorf("%s/%s: %s", s->dir, dname, strerror(-r));
		return r;
	}
	dir = fdopendir(dirfd);
	if (!dir) {
		r = -errno;
		close(dirfd);
		return r;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue; /* ., .., temporary files */
		fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue; /* unpinned meanwhile */
			r = -errno;
			stork_errorf("%s/%s/%s: %s", s->dir, dname, de->d_name, strerror(-r));
			break;
		}
		r = load_one(s, dname, fd, de->d_name, &p, &cap);
		close(fd);
		if (r < 0)
			break;
		p.owners++;
	}
	closedir(dir);
	if (r < 0) {
		node_pins_fini(&p);
		return r;
	}
	if (p.n > 1) {
		qsort(p.ids, p.n, VERIFY_HASH_LEN, by_id);
		k = 1; /* each once */
		for (size_t i = 1; i < p.n; i++)
			if (memcmp(p.ids[i], p.ids[k - 1], VERIFY_HASH_LEN) != 0)
				memmove(p.ids[k++], p.ids[i], VERIFY_HASH_LEN);
		p.n = k;
	}
	*ret = p;
	return 0;
}

int node_idset_get(struct store *s, const char *dname, const char *name, struct node_pinset *ret)
{
	struct node_pinset p = {0};
	char path[PATH_MAX];
	size_t cap = 0;
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dname, name);
	fd = openat(s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = load_one(s, dname, fd, name, &p, &cap);
	close(fd);
	if (r < 0) {
		node_pins_fini(&p);
		return r;
	}
	p.owners = 1;
	*ret = p;
	return 0;
}

int store_pin_set(struct store *s, const char *owner, const uint8_t (*ids)[VERIFY_HASH_LEN],
		  size_t n)
{
	return node_idset_write(s, PINDIR, owner, n ? ids : NULL, n);
}

int node_pins_load(struct store *s, struct node_pinset *ret)
{
	return node_idset_load(s, PINDIR, ret);
}
