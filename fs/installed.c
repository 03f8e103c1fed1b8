/* fs/installed.c: a slice's installed root, /.slices/NAME/root/ (fs/README.md "Installing").
 *
 * `stork install` records a slice's installed set as numbered generations in the node store
 * (store_gen_commit). The daemon learns of a new one without a signal: /.slices/NAME/root has
 * an entry timeout of 0, so every path walk through it is a lookup, and each lookup reads the
 * store's counter of the slice's current generation (one LMDB read transaction, no lock
 * between processes). When it changed, the generation's manifests (in the store since the
 * install fetched them) are merged into one tree (fs_root_merge: the same merge the install
 * checked) with a hash of its own, so /.slices/NAME/root gets a new inode number and every path
 * below it is numbered afresh (fs/inode.c: numbers are per tree hash). Whoever holds a file or
 * a directory of the previous generation keeps it: its node holds the previous tree, and a
 * file's open descriptor is the store's object. Files are numbered by content as everywhere,
 * so a file both generations share is one inode with one page cache.
 *
 * Locking: root_lock guards the map of slices to their current trees; a tree is immutable once
 * built and referenced atomically (fs/tree.c). A build runs under root_lock: it reads only the
 * local store.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

/* The manifest of one installed version, by its hash: from the store (stork install kept it),
 * else fetched as the current metadata signs that version, if it is the same manifest. */
static int load_manifest(struct fsd *d, const struct store_gen_pkg *p,
			 struct verify_manifest **ret_m)
{
	char what[600];
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	snprintf(what, sizeof(what), "%s %s", p->name, p->version);
	r = store_manifest_get(d->store, p->manifest, &buf, &len);
	if (r == 0) {
		r = verify_manifest_parse(buf, len, what, ret_m);
		free(buf);
		return r;
	}
	if (r != -ENOENT)
		return r;
	r = fs_repo_manifest(d->repo, p->name, p->version, ret_m);
	if (r == 0 && memcmp((*ret_m)->file_hash, p->manifest, VERIFY_HASH_LEN) != 0) {
		verify_manifest_free(*ret_m);
		*ret_m = NULL;
		stork_errorf("%s: the store lacks the installed manifest and the repository now "
			     "signs another: run stork upgrade",
			     what);
		return -ENOENT;
	}
	return r;
}

/* The tree of generation g of slice: its packages' trees merged. */
static int root_build(struct fsd *d, const char *slice, const struct store_gen *g,
		      struct fsd_vtree **ret_t)
{
	struct verify_manifest **ms = calloc(g->npkgs ? g->npkgs : 1, sizeof(*ms)), *merged = NULL;
	struct fsd_vtree *vt = calloc(1, sizeof(*vt));
	uint8_t *id = NULL;
	char ver[64];
	size_t nms = 0, idlen = 0;
	int r = -ENOMEM;

	if (!ms || !vt)
		goto out;
	vt->refs = 1;
	vt->gen = g->number;
	vt->made = g->made;
	snprintf(ver, sizeof(ver), "generation %" PRIu64, g->number);
	vt->name = strdup(slice);
	vt->version = strdup(ver);
	vt->signer = strdup("installed");
	if (!vt->name || !vt->version || !vt->signer)
		goto out;
	for (; nms < g->npkgs; nms++) {
		r = load_manifest(d, &g->pkgs[nms], &ms[nms]);
		if (r < 0)
			goto out;
	}
	r = fs_root_merge((const struct verify_manifest *const *)ms, nms, &merged);
	if (r < 0)
		goto out;
	/* Its own hash: the slice, the generation and its manifests. */
	idlen = strlen(slice) + 1 + strlen(ver) + 1 + g->npkgs * VERIFY_HASH_LEN;
	id = malloc(idlen);
	if (!id) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(id, slice, strlen(slice) + 1);
	memcpy(id + strlen(slice) + 1, ver, strlen(ver) + 1);
	for (size_t i = 0; i < g->npkgs; i++)
		memcpy(id + idlen - (g->npkgs - i) * VERIFY_HASH_LEN, g->pkgs[i].manifest,
		       VERIFY_HASH_LEN);
	r = verify_sha256(id, idlen, vt->hash);
	if (r < 0)
		goto out;
	/* Its tree index is built in memory only: nothing in the store is named by this hash. */
	r = store_tree_build(merged, vt->hash, &vt->ix);
	if (r < 0)
		goto out;
	*ret_t = vt;
	vt = NULL;
out:
	if (r < 0)
		stork_error_prefix("slice %s generation %" PRIu64 ": ", slice, g->number);
	free(id);
	verify_manifest_free(merged);
	for (size_t i = 0; i < nms; i++)
		verify_manifest_free(ms[i]);
	free(ms);
	fsd_vtree_unref(vt);
	return r;
}

int fsd_installed(struct fsd *d, const char *slice, struct fsd_vtree **ret_t)
{
	struct fsd_vtree *t = NULL, *old;
	struct store_gen *g = NULL;
	uint64_t num = 0;
	int r;

	r = store_gen_current(d->store, d->repo_id, slice, &num);
	if (r < 0)
		return r;
	if (!num)
		return -ENOENT;
	pthread_mutex_lock(&d->root_lock);
	t = (struct fsd_vtree *)(uintptr_t)fsd_strmap_get(&d->roots, slice);
	if (t && t->gen == num) {
		*ret_t = fsd_vtree_ref(t);
		goto out;
	}
	r = store_gen_get(d->store, d->repo_id, slice, num, &g);
	if (r == 0)
		r = root_build(d, slice, g, &t);
	if (r < 0)
		goto out;
	old = (struct fsd_vtree *)(uintptr_t)fsd_strmap_replace(&d->roots, slice, (uintptr_t)t);
	if (old) {
		fsd_vtree_unref(old); /* the map's: whoever holds it keeps it */
	} else {
		r = fsd_strmap_put(&d->roots, slice, (uintptr_t)t);
		if (r < 0) {
			fsd_vtree_unref(t);
			goto out;
		}
	}
	fsd_log(d, "slice %s: the installed root is generation %" PRIu64 " (%zu packages)", slice,
		num, g->npkgs);
	*ret_t = fsd_vtree_ref(t);
out:
	pthread_mutex_unlock(&d->root_lock);
	store_gen_free(g);
	return r;
}

void fsd_installed_fini(struct fsd *d)
{
	for (size_t i = 0; i < d->roots.cap; i++)
		if (d->roots.slots[i].key)
			fsd_vtree_unref((struct fsd_vtree *)(uintptr_t)d->roots.slots[i].val);
	fsd_strmap_fini(&d->roots);
	pthread_mutex_destroy(&d->root_lock);
}
