/* fs/status.c: what a running mount tells about itself. The counters and the state of the
 * metadata are served as JSON in the root's user.storkfs.status attribute, which `stork
 * status MOUNTPOINT` reads: no socket to secure or find, and it works through bind mounts
 * into containers. The format is documented in fs/README.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fs/daemon.h"

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

/* json_object_set_new that remembers a failure instead of returning it. */
static void put(json_t *o, const char *key, json_t *v, bool *bad)
{
	if (!v || json_object_set_new(o, key, v) < 0)
		*bad = true;
}

/* A JSON string of s, which may come from a server (an error page's words) or be cut in the
 * middle of a character: bytes that do not make valid UTF-8 become '?'. NULL on -ENOMEM. */
static json_t *text(const char *s)
{
	json_t *v = json_string(s);
	char *copy;

	if (v)
		return v;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

char *fsd_status_json(struct fsd *d)
{
	const struct fsd_counters *c = &d->counters;
	struct fetch_mirror_stats *ms = NULL;
	struct fsd_refresh rf;
	struct fs_staleness st;
	json_t *o = json_object(), *meta = json_object(), *mirrors = json_array(), *cnt;
	char when[32];
	size_t nms = 0;
	bool bad = !o || !meta || !mirrors;
	char *out = NULL;

	pthread_mutex_lock(&d->status_lock);
	rf = d->refresh;
	pthread_mutex_unlock(&d->status_lock);
	if (bad)
		goto out;
	put(o, "mountpoint", json_string(d->mountpoint ? d->mountpoint : ""), &bad);
	put(o, "repository", json_string(d->repo_id), &bad);
	put(o, "pid", json_integer((json_int_t)getpid()), &bad);
	put(o, "started", json_string(iso_time(d->started, when, sizeof(when))), &bad);
	put(o, "state",
	    json_string(rf.result == 0	 ? "fresh"
			: rf.result == 1 ? "offline"
					 : "refresh failed"),
	    &bad);
	put(o, "detail", json_string(rf.detail), &bad);
	put(o, "last_refresh", json_string(iso_time(rf.last_ok, when, sizeof(when))), &bad);
	put(o, "last_refresh_try", json_string(iso_time(rf.last_try, when, sizeof(when))), &bad);
	/* Stale metadata (fs/README.md): null where a time does not apply. */
	fs_staleness(rf.expires, d->conf.max_stale, time(NULL), &st);
	put(o, "max_stale", st.forever ? json_null() : json_integer((json_int_t)d->conf.max_stale),
	    &bad);
	put(o, "expires",
	    st.expires ? json_string(iso_time(st.expires, when, sizeof(when))) : json_null(), &bad);
	put(o, "stale", json_boolean(st.stale), &bad);
	put(o, "stale_since",
	    st.stale ? json_string(iso_time(st.expires, when, sizeof(when))) : json_null(), &bad);
	put(o, "stale_for", json_integer((json_int_t)st.stale_for), &bad);
	put(o, "serving", json_boolean(st.serving), &bad);
	put(o, "serving_until",
	    st.forever || !st.expires ? json_null()
				      : json_string(iso_time(st.serving_until, when, sizeof(when))),
	    &bad);
	for (size_t i = 0; i < FSD_NROLES; i++) {
		json_t *r;

		if (!rf.roles[i].known)
			continue;
		r = json_object();
		if (!r) {
			bad = true;
			break;
		}
		put(r, "version", json_integer((json_int_t)rf.roles[i].version), &bad);
		put(r, "expires", json_string(iso_time(rf.roles[i].expires, when, sizeof(when))),
		    &bad);
		put(meta, fsd_roles[i], r, &bad);
	}
	put(o, "metadata", meta, &bad);
	meta = NULL;
	cnt = json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "opens",
	    (json_int_t)counter(&c->opens), "hits", (json_int_t)counter(&c->hits), "misses",
	    (json_int_t)counter(&c->misses), "objects_fetched", (json_int_t)counter(&c->fetched),
	    "bytes_fetched", (json_int_t)counter(&c->fetched_bytes), "errors",
	    (json_int_t)counter(&c->errors), "timeouts", (json_int_t)counter(&c->timeouts),
	    "trees_loaded", (json_int_t)counter(&c->trees_loaded), "trees_evicted",
	    (json_int_t)counter(&c->trees_evicted), "refused", (json_int_t)counter(&c->refused),
	    "rotten", (json_int_t)counter(&c->rotten));
	put(o, "counters", cnt, &bad);
	if (fetch_stats(fs_repo_fetcher(d->repo), &ms, &nms) < 0) {
		bad = true;
		goto out;
	}
	for (size_t i = 0; i < nms; i++) {
		json_t *m = json_pack(
		    "{s:o, s:I, s:I, s:I, s:b, s:s, s:I, s:o}", "url", text(ms[i].url), "requests",
		    (json_int_t)ms[i].requests, "bytes", (json_int_t)ms[i].bytes, "failures",
		    (json_int_t)ms[i].failures, "skipped", ms[i].skipped, "kind",
		    ms[i].kind ? ms[i].kind : "mirror", "latency_ms", (json_int_t)ms[i].latency_ms,
		    "last_error", text(ms[i].last_error));

		if (!m || json_array_append_new(mirrors, m) < 0)
			bad = true;
	}
	put(o, "mirrors", mirrors, &bad);
	mirrors = NULL;
	if (!bad)
		out = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
out:
	free(ms);
	json_decref(meta);
	json_decref(mirrors);
	json_decref(o);
	return out;
}
