/* fs/status.c: what a running mount tells about itself. The counters and the state of the
 * metadata are served as JSON in the root's user.storkfs.status attribute, which `stork
 * status MOUNTPOINT` reads: no socket to secure or find, and it works through bind mounts
 * into containers. The format is documented in fs/README.md.
 */
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/daemon.h"
#include "verify/hash.h"
#include "verify/json.h"

const char *const fsd_roles[FSD_NROLES] = {"root", "timestamp", "snapshot", "targets"};

const char *fsd_source(struct fsd *d, const uint8_t id[VERIFY_HASH_LEN], char *buf, size_t len)
{
	struct store_objinfo info;
	char hex[VERIFY_HASH_HEX];
	const char *who;
	uint64_t k;

	verify_hex(id, VERIFY_HASH_LEN, hex);
	pthread_mutex_lock(&d->status_lock);
	k = fsd_strmap_get(&d->sources, hex);
	pthread_mutex_unlock(&d->status_lock);
	if (k && k <= d->nmirrors)
		who = d->mirrors[k - 1];
	else if (k > d->nmirrors && k - d->nmirrors <= d->conf.npeers)
		who = d->conf.peers[k - d->nmirrors - 1];
	else
		who = store_object_info(d->store, id, &info) == 0 ? "store" : "none";
	return fetch_url_shown(who, buf, len); /* every local user may read it */
}

int fsd_serving(struct fsd *d)
{
	if ((int64_t)time(NULL) < __atomic_load_n(&d->stop_at, __ATOMIC_ACQUIRE))
		return 0;
	FSD_COUNT(d, refused, 1);
	return -EKEYEXPIRED;
}

static char *iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "never");
	return buf;
}

static uint64_t counter(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

char *fsd_status_json(struct fsd *d)
{
	const struct fsd_counters *c = &d->counters;
	struct fetch_mirror_stats *ms = NULL;
	struct fsd_refresh rf;
	struct fs_staleness st;
	struct verify_json *o = verify_json_object(), *meta = verify_json_object();
	struct verify_json *mirrors = verify_json_array(), *cnt = NULL;
	char when[32];
	size_t nms = 0;
	bool bad = !o || !meta || !mirrors;
	char *out = NULL;
	int r = 0;

	pthread_mutex_lock(&d->status_lock);
	rf = d->refresh;
	pthread_mutex_unlock(&d->status_lock);
	if (bad)
		goto out;
	/* Each call ORs its failure into r: one check at the end instead of one per line. */
	r |= verify_json_set_str(o, "mountpoint", d->mountpoint ? d->mountpoint : "");
	r |= verify_json_set_str(o, "repository", d->repo_id);
	r |= verify_json_set_int(o, "pid", (int64_t)getpid());
	/* FUSE passthrough (fs/passthrough.c): the kernel reads stored files itself */
	r |= verify_json_set_bool(o, "passthrough", fsd_pt_on(d));
	r |= verify_json_set_str(o, "started", iso_time(d->started, when, sizeof(when)));
	r |= verify_json_set_str(o, "state",
				 rf.result == 0	  ? "fresh"
				 : rf.result == 1 ? "offline"
						  : "refresh failed");
	r |= verify_json_set_str(o, "detail", rf.detail);
	r |= verify_json_set_str(o, "last_refresh", iso_time(rf.last_ok, when, sizeof(when)));
	r |= verify_json_set_str(o, "last_refresh_try", iso_time(rf.last_try, when, sizeof(when)));
	/* Stale metadata (fs/README.md): null where a time does not apply. */
	fs_staleness(rf.expires, d->conf.max_stale, time(NULL), &st);
	r |= st.forever ? verify_json_set_null(o, "max_stale")
			: verify_json_set_int(o, "max_stale", (int64_t)d->conf.max_stale);
	r |= st.expires
		 ? verify_json_set_str(o, "expires", iso_time(st.expires, when, sizeof(when)))
		 : verify_json_set_null(o, "expires");
	r |= verify_json_set_bool(o, "stale", st.stale);
	r |= st.stale
		 ? verify_json_set_str(o, "stale_since", iso_time(st.expires, when, sizeof(when)))
		 : verify_json_set_null(o, "stale_since");
	r |= verify_json_set_int(o, "stale_for", (int64_t)st.stale_for);
	r |= verify_json_set_bool(o, "serving", st.serving);
	r |= st.forever || !st.expires
		 ? verify_json_set_null(o, "serving_until")
		 : verify_json_set_str(o, "serving_until",
				       iso_time(st.serving_until, when, sizeof(when)));
	for (size_t i = 0; i < FSD_NROLES; i++) {
		struct verify_json *role;

		if (!rf.roles[i].known)
			continue;
		role = verify_json_object();
		if (!role) {
			bad = true;
			break;
		}
		r |= verify_json_set_int(role, "version", (int64_t)rf.roles[i].version);
		r |= verify_json_set_str(role, "expires",
					 iso_time(rf.roles[i].expires, when, sizeof(when)));
		r |= verify_json_set(meta, fsd_roles[i], role);
	}
	r |= verify_json_set(o, "metadata", meta);
	meta = NULL;
	cnt = verify_json_object();
	r |= verify_json_set_int(cnt, "opens", (int64_t)counter(&c->opens));
	r |= verify_json_set_int(cnt, "hits", (int64_t)counter(&c->hits));
	r |= verify_json_set_int(cnt, "misses", (int64_t)counter(&c->misses));
	r |= verify_json_set_int(cnt, "objects_fetched", (int64_t)counter(&c->fetched));
	r |= verify_json_set_int(cnt, "bytes_fetched", (int64_t)counter(&c->fetched_bytes));
	r |= verify_json_set_int(cnt, "errors", (int64_t)counter(&c->errors));
	r |= verify_json_set_int(cnt, "timeouts", (int64_t)counter(&c->timeouts));
	r |= verify_json_set_int(cnt, "trees_loaded", (int64_t)counter(&c->trees_loaded));
	r |= verify_json_set_int(cnt, "trees_evicted", (int64_t)counter(&c->trees_evicted));
	r |= verify_json_set_int(cnt, "trees_indexed", (int64_t)counter(&c->trees_indexed));
	r |= verify_json_set_int(cnt, "trees_reindexed", (int64_t)counter(&c->trees_reindexed));
	r |= verify_json_set_int(cnt, "catalogs_indexed", (int64_t)counter(&c->catalogs_indexed));
	r |= verify_json_set_int(cnt, "catalogs_reindexed",
				 (int64_t)counter(&c->catalogs_reindexed));
	r |= verify_json_set_int(cnt, "refused", (int64_t)counter(&c->refused));
	r |= verify_json_set_int(cnt, "rotten", (int64_t)counter(&c->rotten));
	r |= verify_json_set_int(cnt, "passthrough_opens", (int64_t)counter(&c->pt_opens));
	r |= verify_json_set_int(cnt, "assembled", (int64_t)counter(&c->assembled));
	r |= verify_json_set(o, "counters", cnt);
	if (d->conf.slices) {
		struct verify_json *sl = verify_json_array();
		char **names = NULL;
		size_t n = 0;

		if (!sl || fsd_slice_names(d, &names, &n) < 0) {
			verify_json_free(sl);
			bad = true;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			struct verify_json *one = fsd_slice_json(d, names[i]);

			if (one) /* NULL: removed since */
				r |= verify_json_append(sl, one);
			free(names[i]);
		}
		free(names);
		r |= verify_json_set(o, "slices", sl);
	}
	if (fetch_stats(fs_repo_fetcher(d->repo), &ms, &nms) < 0) {
		bad = true;
		goto out;
	}
	for (size_t i = 0; i < nms; i++) {
		struct verify_json *m = verify_json_object();

		r |= verify_json_set_text(m, "url", ms[i].url);
		r |= verify_json_set_int(m, "requests", (int64_t)ms[i].requests);
		r |= verify_json_set_int(m, "bytes", (int64_t)ms[i].bytes);
		r |= verify_json_set_int(m, "failures", (int64_t)ms[i].failures);
		r |= verify_json_set_bool(m, "skipped", ms[i].skipped);
		r |= verify_json_set_str(m, "kind", ms[i].kind ? ms[i].kind : "mirror");
		r |= verify_json_set_int(m, "latency_ms", (int64_t)ms[i].latency_ms);
		r |= verify_json_set_text(m, "last_error", ms[i].last_error);
		r |= verify_json_append(mirrors, m);
	}
	r |= verify_json_set(o, "mirrors", mirrors);
	mirrors = NULL;
	if (!bad && r == 0 && verify_json_dump(o, &out) < 0)
		out = NULL;
out:
	free(ms);
	verify_json_free(meta);
	verify_json_free(mirrors);
	verify_json_free(o);
	return out;
}
