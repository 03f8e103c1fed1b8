/* fs/rootmerge.c: a slice's installed root, the union of its packages' trees (fs_root_merge,
 * fs/README.md "Installing"). `stork install` merges to refuse a conflict before it makes a
 * generation; storkfs merges the same generation to show /.slices/NAME/root/, so both see one
 * tree. Every entry of every package goes into one array sorted by path; each run of one path
 * gives one entry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"

struct item {
	const struct verify_entry *e;
	size_t pkg; /* index into ms */
};

static int by_path(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int c = strcmp(a->e->path, b->e->path);

	if (c)
		return c;
	return a->pkg < b->pkg ? -1 : a->pkg > b->pkg;
}

/* Whether two entries at one path are the same thing (dpkg's shared files). */
static bool identical(const struct verify_entry *a, const struct verify_entry *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case VERIFY_DIR:
		return true;
	case VERIFY_FILE:
		return a->size == b->size && a->mode == b->mode &&
		       memcmp(a->hash, b->hash, VERIFY_HASH_LEN) == 0;
	case VERIFY_SYMLINK:
		return strcmp(a->target, b->target) == 0;
	}
	return false;
}

/* Whether dependency d (name, optional op and version) is met by name at version. */
static bool dep_meets(const struct verify_dep *d, const char *name, const char *version)
{
	int c;

	if (strcmp(d->name, name) != 0)
		return false;
	if (!d->op || !d->version)
		return true;
	c = fs_version_cmp(version, d->version);
	if (!strcmp(d->op, "<<"))
		return c < 0;
	if (!strcmp(d->op, "<="))
		return c <= 0;
	if (!strcmp(d->op, "="))
		return c == 0;
	if (!strcmp(d->op, ">="))
		return c >= 0;
	if (!strcmp(d->op, ">>"))
		return c > 0;
	return false;
}

/* Whether a's Replaces names b (and its version). */
static bool replaces(const struct verify_manifest *a, const struct verify_manifest *b)
{
	for (size_t i = 0; i < a->nreplaces; i++)
		for (size_t k = 0; k < a->replaces[i].n; k++)
			if (dep_meets(&a->replaces[i].alts[k], b->name, b->version))
				return true;
	return false;
}

/* The directories a container mounts on (bwrap --proc /proc, nspawn's /dev...): the root gets
 * each one no package installs, empty, so that the root serves as a container's / as it is. */
static const struct {
	const char *path;
	uint32_t mode;
} mount_points[] = {{"dev", 0755}, {"proc", 0755}, {"run", 0755}, {"sys", 0755}, {"tmp", 01777}};

/* Add to m each mount point absent from the merged entries items[0..n) (sorted by path),
 * dated like the newest entry so that every merge of one generation gives one tree. */
static int add_mount_points(struct verify_manifest *m, const struct item *items, size_t n)
{
	int64_t mtime = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		if (items[i].e->mtime > mtime)
			mtime = items[i].e->mtime;
	for (size_t k = 0; r == 0 && k < sizeof(mount_points) / sizeof(mount_points[0]); k++) {
		struct verify_entry e = {.path = (char *)mount_points[k].path,
					 .type = VERIFY_DIR,
					 .mode = mount_points[k].mode,
					 .mtime = mtime};
		size_t lo = 0, hi = n;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (strcmp(items[mid].e->path, e.path) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == n || strcmp(items[lo].e->path, e.path) != 0)
			r = verify_manifest_add(m, &e);
	}
	return r;
}

int fs_root_merge(const struct verify_manifest *const *ms, size_t n, struct verify_manifest **ret_m)
{
	struct verify_manifest *m = NULL;
	struct item *items = NULL;
	size_t total = 0, k = 0;
	int r;

	for (size_t i = 0; i < n; i++)
		total += ms[i]->n;
	items = calloc(total ? total : 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ms[i]->n; j++)
			items[k++] = (struct item){&ms[i]->entries[j], i};
	qsort(items, total, sizeof(*items), by_path);
	r = verify_manifest_new("root", "0", "dir", &m);
	for (size_t i = 0; r == 0 && i < total;) {
		size_t win = i, j;

		for (j = i + 1; j < total && strcmp(items[j].e->path, items[i].e->path) == 0; j++) {
			const struct verify_manifest *a = ms[items[win].pkg], *b = ms[items[j].pkg];

			if (identical(items[win].e, items[j].e))
				continue;
			if (replaces(b, a)) {
				win = j;
				continue;
			}
			if (replaces(a, b))
				continue;
			stork_errorf("%s: %s %s and %s %s both install it, with different %s, and "
				     "neither declares Replaces on the other",
				     items[i].e->path, a->name, a->version, b->name, b->version,
				     items[win].e->type != items[j].e->type ? "types" : "content");
			r = -EEXIST;
			break;
		}
		if (r == 0)
			r = verify_manifest_add(m, items[win].e);
		i = j;
	}
	if (r == 0)
		r = add_mount_points(m, items, total);
	free(items);
	if (r == 0) {
		r = verify_manifest_finish(m);
		if (r < 0)
			stork_error_prefix("the installed packages' trees do not merge: ");
	}
	if (r < 0) {
		verify_manifest_free(m);
		return r;
	}
	*ret_m = m;
	return 0;
}
