/* fetch/health.c: the order sources are tried in and what they did: each peer's, mirror's
 * and proxy's health (skipped for a while after a failure of its making), its counters and
 * the statistics read from them (fetch_stats).
 *
 * A fallback is never left untried: skipped mirrors come after the usable ones, skipped
 * proxies after every usable way. Everything here that reads or writes a source's health
 * takes f->lock (fetch/internal.h says what it protects). fetch/README.md, "Health and
 * back-off", has the rules and their reasons.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fetch/internal.h"

int64_t fetch_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec + 1; /* never 0: 0 means "never" */
}

bool fetch_usable(const struct source *m, int64_t now)
{
	return m->skipped_until == 0 || (m->skipped_until > 0 && now >= m->skipped_until);
}

/* The order to try mirrors in: usable ones in order, then skipped ones in order. */
int fetch_try_order(struct fetch *f, size_t **ret_order)
{
	int64_t now = fetch_now_s();
	size_t *order, n = 0;

	order = malloc((f->nmirrors ? f->nmirrors : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nmirrors; i++)
		if (fetch_usable(f->mirrors[i], now))
			order[n++] = i;
	for (size_t i = 0; i < f->nmirrors; i++)
		if (!fetch_usable(f->mirrors[i], now))
			order[n++] = i;
	pthread_mutex_unlock(&f->lock);
	*ret_order = order;
	return 0;
}

/* xorshift64*, under f->lock: load balancing needs no more. */
static uint64_t rnd(struct fetch *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 2685821657736338717ULL;
}

/* The ways to reach a mirror through the proxy chain, in the order to try them: group by
 * group, the usable hops of a group in random order (DIRECT is always usable); then the
 * skipped proxies in chain order, so that a fallback is never left untried. A NULL entry is
 * DIRECT. ret_routes holds at least f->nchain + 1 entries. */
size_t fetch_routes(struct fetch *f, bool proxiable, struct source **out)
{
	int64_t now = fetch_now_s();
	size_t n = 0;

	if (!proxiable || f->nchain == 0) {
		out[0] = NULL;
		return 1;
	}
	pthread_mutex_lock(&f->lock);
	for (size_t g = 0; g < f->ngroups; g++) {
		size_t first = n;

		for (size_t i = 0; i < f->nchain; i++)
			if (f->chain[i].group == g &&
			    (!f->chain[i].proxy || fetch_usable(f->chain[i].proxy, now)))
				out[n++] = f->chain[i].proxy;
		for (size_t i = n - first; i > 1; i--) {
			size_t k = (size_t)(rnd(f) % i);
			struct source *tmp = out[first + i - 1];

			out[first + i - 1] = out[first + k];
			out[first + k] = tmp;
		}
	}
	for (size_t i = 0; i < f->nchain; i++)
		if (f->chain[i].proxy && !fetch_usable(f->chain[i].proxy, now))
			out[n++] = f->chain[i].proxy;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Count one request on m; on a failure of m's making mark it skipped. Writes what the log
 * line should add about skipping into buf ("" if nothing changed). Under the lock. */
static void note_locked(struct source *m, int64_t now, uint64_t bytes, int64_t latency_us,
			int outcome, const char *what, char *buf, size_t len)
{
	bool was_usable;

	buf[0] = '\0';
	m->requests++;
	m->bytes += bytes;
	if (outcome > 0) {
		m->skipped_until = 0;
		if (latency_us >= 0) {
			/* Weight 1/4: a few slow answers show, one does not dominate. */
			m->latency_us = m->nlatency ? (3 * m->latency_us + (uint64_t)latency_us) / 4
						    : (uint64_t)latency_us;
			m->nlatency++;
		}
	} else if (outcome < 0) {
		was_usable = fetch_usable(m, now);
		m->failures++;
		m->last_failure = now;
		snprintf(m->last_error, sizeof(m->last_error), "%s", what);
		m->skipped_until = m->retry < 0 ? -1 : now + m->retry;
		if (was_usable && m->retry < 0)
			snprintf(buf, len, "; skipping this %s from now on", m->kind);
		else if (was_usable)
			snprintf(buf, len, "; skipping this %s for %ld s", m->kind, m->retry);
	}
}

/* outcome: 1 = success, 0 = counted only (not the source's doing), -1 = the source failed. */
void fetch_note(struct fetch *f, struct source *m, uint64_t bytes, int64_t latency_us, int outcome,
		const char *what, char *buf, size_t len)
{
	pthread_mutex_lock(&f->lock);
	note_locked(m, fetch_now_s(), bytes, latency_us, outcome, what, buf, len);
	pthread_mutex_unlock(&f->lock);
}

int fetch_stats(struct fetch *f, struct fetch_mirror_stats **ret_stats, size_t *ret_n)
{
	struct fetch_mirror_stats *st;
	size_t n = f->npeers + f->nmirrors + f->nproxies, k = 0;
	struct source **lists[3] = {f->peers, f->mirrors, f->proxies};
	size_t counts[3] = {f->npeers, f->nmirrors, f->nproxies};
	int64_t now = fetch_now_s();

	st = calloc(n ? n : 1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	for (size_t l = 0; l < 3; l++) {
		for (size_t i = 0; i < counts[l]; i++) {
			const struct source *m = lists[l][i];
			struct fetch_mirror_stats *s = &st[k++];

			s->url = m->name;
			s->requests = m->requests;
			s->bytes = m->bytes;
			s->failures = m->failures;
			s->skipped = !fetch_usable(m, now);
			s->kind = m->kind;
			s->latency_ms = m->latency_us / 1000;
			snprintf(s->last_error, sizeof(s->last_error), "%s", m->last_error);
		}
	}
	pthread_mutex_unlock(&f->lock);
	*ret_stats = st;
	*ret_n = n;
	return 0;
}
