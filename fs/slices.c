/* fs/slices.c: slices, named views of the mount's one verified state, each with its own trust
 * policy (fs/README.md "Slices"). With -o slices=DIR, each file DIR/NAME.policy (NAME matching
 * [a-z0-9][a-z0-9_.-]{0,63}) is a slice: /.slices/NAME/ shows the packages and versions that
 * policy accepts, the way / shows what the node's policy accepts. Every slice shares the
 * node's metadata, store, transfers and version trees; each has its own catalog and counters.
 *
 * The refresh thread loads the slices at start-up, on SIGHUP and after each refresh
 * (fsd_slices_reload, fs/slices_load.c): it alone reads the files and the policies. Everything else
 * reaches a slice by name under slice_lock, which guards the table and each slice's catalog
 * pointer; a slice removed from the table is freed at once (nobody keeps a pointer outside the
 * lock).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"
#include "verify/json.h"

void fsd_slice_free(struct fsd_slice *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->file);
	verify_policy_free(s->pol);
	fsd_catalog_unref(s->cat);
	fsd_control_free(s->control);
	free(s);
}

/* The slice named name in the table, or NULL. Under slice_lock. */
static struct fsd_slice *find_locked(struct fsd *d, const char *name)
{
	for (size_t i = 0; i < d->nslices; i++)
		if (strcmp(d->slices[i]->name, name) == 0)
			return d->slices[i];
	return NULL;
}

void fsd_slices_fini(struct fsd *d)
{
	for (size_t i = 0; i < d->nslices; i++)
		fsd_slice_free(d->slices[i]);
	free(d->slices);
	d->slices = NULL;
	d->nslices = 0;
}

bool fsd_slice_exists(struct fsd *d, const char *name)
{
	bool ret;

	pthread_mutex_lock(&d->slice_lock);
	ret = find_locked(d, name) != NULL;
	pthread_mutex_unlock(&d->slice_lock);
	return ret;
}

int fsd_slice_names(struct fsd *d, char ***ret_names, size_t *ret_n)
{
	char **names;
	size_t n;
	int ret = 0;

	pthread_mutex_lock(&d->slice_lock);
	n = d->nslices;
	names = calloc(n ? n : 1, sizeof(*names));
	for (size_t i = 0; names && i < n; i++)
		if (!(names[i] = strdup(d->slices[i]->name)))
			ret = -ENOMEM;
	pthread_mutex_unlock(&d->slice_lock);
	if (!names || ret < 0) {
		for (size_t i = 0; names && i < n; i++)
			free(names[i]);
		free(names);
		return -ENOMEM;
	}
	*ret_names = names;
	*ret_n = n;
	return 0;
}

void fsd_slice_count(struct fsd *d, const char *name, enum fsd_slice_counter which, uint64_t n)
{
	struct fsd_slice *s;

	pthread_mutex_lock(&d->slice_lock);
	s = find_locked(d, name);
	if (s) {
		uint64_t *c = which == FSD_SC_OPENS	? &s->opens
			      : which == FSD_SC_BYTES	? &s->bytes_read
			      : which == FSD_SC_FETCHED ? &s->fetched
							: &s->refused;

		__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&d->slice_lock);
}

struct verify_json *fsd_slice_json(struct fsd *d, const char *name)
{
	struct verify_json *o = verify_json_object(), *control = NULL;
	uint64_t opens = 0, bytes = 0, fetched = 0, refused = 0;
	size_t npkgs = 0, nvers = 0;
	struct fsd_slice *s;
	int r = 0;

	if (!o)
		return NULL;
	pthread_mutex_lock(&d->slice_lock);
	s = find_locked(d, name);
	if (s) {
		npkgs = s->cat->n;
		for (size_t i = 0; i < s->cat->n; i++)
			nvers += s->cat->pkgs[i].n;
		opens = __atomic_load_n(&s->opens, __ATOMIC_RELAXED);
		bytes = __atomic_load_n(&s->bytes_read, __ATOMIC_RELAXED);
		fetched = __atomic_load_n(&s->fetched, __ATOMIC_RELAXED);
		refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
		control = fsd_control_json(s->control);
	}
	pthread_mutex_unlock(&d->slice_lock);
	if (!s) {
		verify_json_free(o);
		return NULL;
	}
	r |= verify_json_set_str(o, "slice", name);
	r |= verify_json_set_int(o, "packages", (int64_t)npkgs);
	r |= verify_json_set_int(o, "versions", (int64_t)nvers);
	r |= verify_json_set_int(o, "opens", (int64_t)opens);
	r |= verify_json_set_int(o, "bytes_read", (int64_t)bytes);
	r |= verify_json_set_int(o, "objects_fetched", (int64_t)fetched);
	r |= verify_json_set_int(o, "refused", (int64_t)refused);
	if (control)
		r |= verify_json_set(o, "control", control);
	if (r) {
		verify_json_free(o);
		return NULL;
	}
	return o;
}
