/* fs/prefetcher.c: -o prefetch=, the daemon's prefetch thread. Once the mount is ready and after
 * each refresh that verified (fsd_prefetch_kick), it fetches every object of the versions the
 * options name, as this mount's catalog shows them, into the store (fs_prefetch, fs/prefetch.c)
 * and writes one summary line in the log. pf_pending and pf_quit are under fsd.pf_lock; the
 * unmount cancels a run through fsd.pf_cancel (fsd_prefetch_stop).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

static void prefetch_failed(void *ctx, const char *what, const uint8_t id[VERIFY_HASH_LEN], int err,
			    const char *detail)
{
	char hex[VERIFY_HASH_HEX];

	verify_hex(id, VERIFY_HASH_LEN, hex);
	fsd_log(ctx, "prefetch: %s: object %s: %s", what, hex,
		detail && *detail ? detail : storkfs_strerror(err));
}

static void prefetch_note(void *ctx, const char *line)
{
	fsd_log(ctx, "prefetch: %s", line);
}

/* The manifest of one version the mount shows, appended to *ms. */
static int prefetch_add(struct fsd *d, const char *name, const char *version,
			struct verify_manifest ***ms, size_t *n)
{
	struct verify_manifest **v = realloc(*ms, (*n + 1) * sizeof(*v));
	char text[1200];
	int r;

	if (!v)
		return -ENOMEM;
	*ms = v;
	r = fs_repo_manifest(d->repo, name, version, &v[*n]);
	if (r < 0)
		fsd_log(d, "prefetch: %s %s: %s", name, version,
			stork_error_text(NULL, r, text, sizeof(text)));
	else
		(*n)++;
	return r;
}

/* Pin the objects of the versions prefetch= names, as this mount's pin set ("mount-" and the
 * first 16 hex digits of the SHA-256 of the mountpoint): the store's quota never evicts them
 * (store/README.md "Quota and eviction"). Replaced at each run, so a version prefetch= no
 * longer names (an older latest) is unpinned. */
static void prefetch_pin(struct fsd *d, struct verify_manifest *const *ms, size_t n)
{
	uint8_t digest[VERIFY_HASH_LEN];
	char owner[64], hex[VERIFY_HASH_HEX], text[1200];
	int r;

	verify_sha256(d->mountpoint, strlen(d->mountpoint), digest);
	verify_hex(digest, VERIFY_HASH_LEN, hex);
	snprintf(owner, sizeof(owner), "mount-%.16s", hex);
	r = fs_pin_versions(d->store, owner, ms, n);
	if (r < 0)
		fsd_log(d, "prefetch: pinning %zu versions: %s", n,
			stork_error_text(NULL, r, text, sizeof(text)));
}

/* Every object of the versions -o prefetch= names, among what this mount's tree shows (its
 * policy applies), into the store; one summary line in the log. */
static void prefetch_run(struct fsd *d)
{
	struct fs_prefetch_opts po = {.failed = prefetch_failed,
				      .failed_ctx = d,
				      .note = prefetch_note,
				      .note_ctx = d,
				      .cancel = &d->pf_cancel};
	struct fs_prefetch_progress st = {0};
	struct fsd_catalog *cat = fsd_catalog(d);
	struct verify_manifest **ms = NULL;
	size_t n = 0;
	int r;

	for (size_t i = 0; i < d->conf.nprefetch; i++) {
		char name[256];
		const char *spec = d->conf.prefetch[i], *eq = strchr(spec, '='), *want;
		const struct fsd_cat_pkg *pk;

		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - spec) : (int)strlen(spec),
			 spec);
		want = eq ? eq + 1 : "latest";
		pk = fsd_catalog_pkg(cat, name);
		if (!pk || pk->n == 0) {
			fsd_log(d, "prefetch=%s: no package %s in this mount's tree", spec, name);
			continue;
		}
		if (!strcmp(want, "all")) {
			for (size_t j = 0; j < pk->n; j++)
				prefetch_add(d, name, pk->vers[j].version, &ms, &n);
		} else if (!strcmp(want, "latest")) {
			prefetch_add(d, name, pk->vers[pk->n - 1].version, &ms, &n);
		} else if (fsd_catalog_ver(pk, want)) {
			prefetch_add(d, name, want, &ms, &n);
		} else {
			fsd_log(d, "prefetch=%s: no version %s of %s in this mount's tree", spec,
				want, name);
		}
	}
	fsd_catalog_unref(cat);
	if (ms)
		prefetch_pin(d, ms, n);
	if (n) {
		r = fs_prefetch(d->repo, ms, n, &po, &st);
		if (r != -ECANCELED)
			fsd_log(d,
				"prefetch: %zu version%s: %" PRIu64 " objects (%" PRIu64
				" fetched, %" PRIu64 " already stored, %" PRIu64
				" failed), %.1f MB fetched in %.1f s, %" PRIu64
				" objects from %" PRIu64 " version packs%s",
				n, n == 1 ? "" : "s", st.objects, st.fetched, st.present, st.failed,
				(double)st.fetched_bytes / 1e6, st.seconds, st.packed, st.packs,
				r < 0 ? ": incomplete" : "");
	}
	for (size_t i = 0; i < n; i++)
		verify_manifest_free(ms[i]);
	free(ms);
}

void *fsd_prefetch_thread(void *arg)
{
	struct fsd *d = arg;

	pthread_mutex_lock(&d->pf_lock);
	for (;;) {
		while (!d->pf_pending && !d->pf_quit)
			pthread_cond_wait(&d->pf_cond, &d->pf_lock);
		if (d->pf_quit)
			break;
		d->pf_pending = false;
		pthread_mutex_unlock(&d->pf_lock);
		prefetch_run(d);
		pthread_mutex_lock(&d->pf_lock);
	}
	pthread_mutex_unlock(&d->pf_lock);
	return NULL;
}

/* After the mount is ready and after each refresh that verified: prefetch again (objects
 * already stored cost nothing; a new latest version is fetched ahead of use). */
void fsd_prefetch_kick(struct fsd *d)
{
	if (!d->conf.nprefetch)
		return;
	pthread_mutex_lock(&d->pf_lock);
	d->pf_pending = true;
	pthread_cond_signal(&d->pf_cond);
	pthread_mutex_unlock(&d->pf_lock);
}

void fsd_prefetch_stop(struct fsd *d, pthread_t thread)
{
	__atomic_store_n(&d->pf_cancel, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&d->pf_lock);
	d->pf_quit = true;
	pthread_cond_signal(&d->pf_cond);
	pthread_mutex_unlock(&d->pf_lock);
	pthread_join(thread, NULL);
}
