/* fs/slices_load.c: loading the slices of -o slices=DIR (fs/slices.c, fs/README.md "Slices")
 * on the refresh thread: each DIR/NAME.policy file is a slice; a file that does not parse
 * keeps its slice's previous view; after a change the kernel forgets what it cached of the
 * slices' subtrees.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

#define SUFFIX ".policy"

/* Whether name is a slice's name: [a-z0-9][a-z0-9_.-]{0,63}. */
static bool name_ok(const char *name, size_t len)
{
	if (len < 1 || len > 64 || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!name[i] || !strchr("abcdefghijklmnopqrstuvwxyz0123456789_.-", name[i]))
			return false;
	return true;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The slice names of the files in dir, sorted. @return 0; -errno (detail says so). */
static int scan(const char *dir, char ***ret_names, size_t *ret_n)
{
	char **names = NULL, **grown;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *dh;
	int ret = 0;

	dh = opendir(dir);
	if (!dh) {
		ret = -errno;
		stork_errorf("%s: %s", dir, strerror(-ret));
		return ret;
	}
	while ((e = readdir(dh))) {
		size_t len = strlen(e->d_name), sl = strlen(SUFFIX);

		if (len <= sl || strcmp(e->d_name + len - sl, SUFFIX) != 0 ||
		    !name_ok(e->d_name, len - sl))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(names, cap * sizeof(*names));
			if (!grown) {
				ret = -ENOMEM;
				break;
			}
			names = grown;
		}
		names[n] = strndup(e->d_name, len - sl);
		if (!names[n]) {
			ret = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(dh);
	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		stork_errorf("%s: out of memory", dir);
		return ret;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_name);
	*ret_names = names;
	*ret_n = n;
	return 0;
}

struct slice_pick {
	const char *name;
	const struct fsd_catalog *cat;
};

/* A node of slice ctx->name the kernel must forget after its catalog became ctx->cat. */
static bool stale_in_slice(const struct fsd_inode *node, void *ctx)
{
	const struct slice_pick *sp = ctx;

	if (!node->slice || strcmp(node->slice, sp->name) != 0 ||
	    (node->vt && node->vt->gen)) /* its installed root: not the catalog's */
		return false;
	return (node->kind != FSD_N_VER && node->kind != FSD_N_ENTRY) ||
	       !fsd_catalog_signs(sp->cat, node->pkg, node->ver, node->vhash);
}

/* The kernel forgets what it cached of slice name whose catalog went from old to cat (NULL:
 * the slice is gone): its listings and attributes, the names no longer there, the versions
 * replaced or dropped. */
static void forget_slice(struct fsd *d, const char *name, const struct fsd_catalog *old,
			 const struct fsd_catalog *cat)
{
	fuse_ino_t top = fsd_inodes_number(&d->inodes, ".slices"), root, *inos;
	char path[600];
	size_t n = 0, plen;

	snprintf(path, sizeof(path), ".slices/%s", name);
	plen = strlen(path);
	root = fsd_inodes_number(&d->inodes, path);
	if (!cat) {
		if (top)
			fuse_lowlevel_notify_inval_entry(d->se, top, name, strlen(name));
		return;
	}
	for (size_t i = 0; root && old && i < old->n; i++) {
		const struct fsd_cat_pkg *op = &old->pkgs[i];
		fuse_ino_t pino;

		if (!fsd_catalog_pkg(cat, op->name)) {
			fuse_lowlevel_notify_inval_entry(d->se, root, op->name, strlen(op->name));
			continue;
		}
		snprintf(path + plen, sizeof(path) - plen, "/%s", op->name);
		pino = fsd_inodes_number(&d->inodes, path);
		for (size_t j = 0; pino && j < op->n; j++)
			if (!fsd_catalog_signs(cat, op->name, op->vers[j].version,
					       op->vers[j].hash))
				fuse_lowlevel_notify_inval_entry(d->se, pino, op->vers[j].version,
								 strlen(op->vers[j].version));
	}
	/* Every node of the slice the kernel holds: directories of the catalog (their
	 * listings), and the versions the new catalog no longer signs. */
	n = fsd_inodes_pick(&d->inodes, stale_in_slice, &(struct slice_pick){name, cat}, &inos);
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(d->se, inos[i], 0, 0);
	free(inos);
}

/* Load slice name from its file into a new or the existing slice *s: a policy that does not
 * parse, or a state that cannot be listed, keeps what the slice had (logged). @return 0; <0
 * when the slice could not be made (a new one: then it is not added). */
static int load_one(struct fsd *d, const char *name, struct fsd_slice **s,
		    struct fsd_catalog **ret_old)
{
	struct verify_policy *pol = NULL;
	struct fsd_catalog *cat = NULL;
	struct fsd_slice *ns = NULL;
	char text[1200];
	int ret;

	*ret_old = NULL;
	if (!*s) {
		ns = calloc(1, sizeof(*ns));
		if (!ns || !(ns->name = strdup(name)) ||
		    asprintf(&ns->file, "%s/%s%s", d->conf.slices, name, SUFFIX) < 0) {
			if (ns)
				ns->file = NULL;
			fsd_slice_free(ns);
			return -ENOMEM;
		}
	}
	ret = verify_policy_load(*s ? (*s)->file : ns->file, &pol);
	if (ret < 0) {
		fsd_log(d, "slice %s: %s: %s", name, stork_error_detail(),
			*s ? "keeping the slice's previous view" : "slice not added");
		if (!*s) {
			fsd_slice_free(ns);
			return ret;
		}
		/* The policy loaded before stays; the state may have changed: list it again. */
	}
	ret = fsd_catalog_get_for(d, pol ? pol : (*s)->pol, &cat);
	if (ret < 0) {
		fsd_log(d, "slice %s: listing packages: %s", name,
			stork_error_text(NULL, ret, text, sizeof(text)));
		verify_policy_free(pol);
		fsd_slice_free(ns);
		return *s ? 0 : ret;
	}
	if (ns) {
		ns->pol = pol;
		ns->cat = cat;
		fsd_log(d, "slice %s: added (%zu package%s)", name, cat->n, cat->n == 1 ? "" : "s");
		*s = ns;
		return 0;
	}
	if (pol) {
		verify_policy_free((*s)->pol);
		(*s)->pol = pol;
	}
	pthread_mutex_lock(&d->slice_lock);
	*ret_old = (*s)->cat;
	(*s)->cat = cat;
	pthread_mutex_unlock(&d->slice_lock);
	return 0;
}

void fsd_slices_reload(struct fsd *d, bool startup)
{
	struct fsd_slice **next = NULL, **gone = NULL, **was;
	struct fsd_catalog **olds = NULL;
	char **names = NULL;
	size_t n = 0, nnext = 0, ngone = 0, nwas;

	if (!d->conf.slices)
		return;
	if (scan(d->conf.slices, &names, &n) < 0) {
		fsd_log(d, "-o slices=%s: %s: keeping the slices as they were", d->conf.slices,
			stork_error_detail());
		return;
	}
	/* The table changes only here (this thread): read it without the lock. */
	was = d->slices;
	nwas = d->nslices;
	next = calloc(n ? n : 1, sizeof(*next));
	olds = calloc(n ? n : 1, sizeof(*olds));
	gone = calloc(nwas ? nwas : 1, sizeof(*gone));
	if (!next || !olds || !gone) {
		fsd_log(d, "-o slices=%s: out of memory: keeping the slices as they were",
			d->conf.slices);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct fsd_slice *s = NULL;

		for (size_t k = 0; k < nwas && !s; k++)
			if (strcmp(was[k]->name, names[i]) == 0)
				s = was[k];
		if (load_one(d, names[i], &s, &olds[nnext]) == 0)
			next[nnext++] = s;
	}
	for (size_t k = 0; k < nwas; k++) {
		bool kept = false;

		for (size_t i = 0; i < nnext && !kept; i++)
			kept = next[i] == was[k];
		if (!kept) {
			fsd_log(d, "slice %s: removed (%s is gone)", was[k]->name, was[k]->file);
			gone[ngone++] = was[k];
		}
	}
	pthread_mutex_lock(&d->slice_lock);
	d->slices = next;
	d->nslices = nnext;
	pthread_mutex_unlock(&d->slice_lock);
	next = NULL;
	free(was);
	for (size_t i = 0; i < nnext; i++)
		fsd_slice_control(d, d->slices[i]); /* its group's wanted list (fs/control.c) */
	if (!startup) {
		fuse_ino_t top = fsd_inodes_number(&d->inodes, ".slices");

		if (top)
			fuse_lowlevel_notify_inval_inode(d->se, top, 0, 0);
		for (size_t i = 0; i < nnext; i++)
			forget_slice(d, d->slices[i]->name, olds[i], d->slices[i]->cat);
		for (size_t k = 0; k < ngone; k++)
			forget_slice(d, gone[k]->name, NULL, NULL);
	}
	for (size_t k = 0; k < ngone; k++)
		fsd_slice_free(gone[k]);
	for (size_t i = 0; i < nnext; i++)
		fsd_catalog_unref(olds[i]);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(next);
	free(olds);
	free(gone);
}
