/* fetch/fetcher.c: a fetcher's set-up: the options (proxies, peers, exec transports) parsed
 * into sources, the transports, the mirrors, and shutting down.
 *
 * A fetcher tries its mirrors in the order they were added, usable ones first and then those
 * skipped after a failure (a fallback is never left untried). Objects stream through store/'s
 * checking unpacker into the caller's sink; only bytes that verify reach sink->commit.
 * fetch/internal.h says which file does what; fetch/README.md has the rules and their reasons.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fetch/internal.h"

#define DEFAULT_RETRY	    1800 /* seconds a failed mirror is skipped (CernVM-FS's host reset) */
#define DEFAULT_PROXY_RETRY 300	 /* CernVM-FS's CVMFS_PROXY_RESET_AFTER */
#define DEFAULT_PEER_RETRY  300
#define PEER_CONNECT	    2 /* seconds: a peer is near, or it is not worth waiting for */

/* ------------------------------------------------------------------------------------------ */
/* Set-up. */

static void source_free(struct source *m)
{
	if (!m)
		return;
	free(m->url);
	free(m->name);
	free(m->base);
	free(m);
}

/* A source named url (len bytes of it), its base without trailing '/'. */
static struct source *source_new(const char *kind, const char *url, size_t len, long retry)
{
	struct source *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->kind = kind;
	m->retry = retry;
	m->url = strndup(url, len);
	m->base = strndup(url, len);
	m->name = m->url ? fetch_url_shown_dup(m->url) : NULL;
	if (!m->url || !m->base || !m->name) {
		source_free(m);
		return NULL;
	}
	while (len > 3 && m->base[len - 1] == '/' && strncmp(m->base + len - 3, "://", 3))
		m->base[--len] = '\0';
	return m;
}

static int push(struct source ***arr, size_t *n, struct source *m)
{
	struct source **grown = realloc(*arr, (*n + 1) * sizeof(*grown));

	if (!grown) {
		source_free(m);
		return -ENOMEM;
	}
	*arr = grown;
	(*arr)[(*n)++] = m;
	return 0;
}

/* Trim spaces around [*p, *e). */
static void trim(const char **p, const char **e)
{
	while (*p < *e && (**p == ' ' || **p == '\t'))
		(*p)++;
	while (*e > *p && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* stork_errorf for a message that quotes an option's URLs: their passwords are not shown. */
static void errorf_shown(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void errorf_shown(const char *fmt, ...)
{
	char line[LINE_LEN], shown[LINE_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	stork_errorf("%s", fetch_url_shown(line, shown, sizeof(shown)));
}

/* "http://p1:3128|http://p2:3128;DIRECT" into f->chain and f->proxies. */
static int parse_proxies(struct fetch *f, const char *spec, long retry)
{
	const char *p = spec;
	size_t group = 0;
	int r;

	if (!spec || !spec[0])
		return 0;
	for (;;) {
		const char *gend = strchrnul(p, ';');

		for (const char *q = p;;) {
			const char *e = q, *b = q;
			struct source *px = NULL;
			struct hop *grown;

			while (e < gend && *e != '|')
				e++;
			trim(&b, &e);
			if (b == e) {
				errorf_shown(
				    "proxies \"%s\": an empty proxy (write DIRECT for none)", spec);
				return -EINVAL;
			}
			if (!(e - b == 6 && !strncasecmp(b, "DIRECT", 6))) {
				if (!memmem(b, (size_t)(e - b), "://", 3)) {
					errorf_shown("proxies \"%s\": \"%.*s\" is not a URL (e.g. "
						     "http://proxy:3128) nor DIRECT",
						     spec, (int)(e - b), b);
					return -EINVAL;
				}
				px = source_new("proxy", b, (size_t)(e - b), retry);
				if (!px)
					return -ENOMEM;
				r = push(&f->proxies, &f->nproxies, px);
				if (r < 0)
					return r;
			}
			grown = realloc(f->chain, (f->nchain + 1) * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			f->chain = grown;
			f->chain[f->nchain++] = (struct hop){.group = group, .proxy = px};
			while (e < gend && *e != '|')
				e++;
			if (e >= gend)
				break;
			q = e + 1;
		}
		group++;
		if (!*gend)
			break;
		p = gend + 1;
	}
	f->ngroups = group;
	/* "DIRECT" alone is no chain at all. */
	if (f->nchain == 1 && !f->chain[0].proxy)
		f->nchain = f->ngroups = 0;
	return 0;
}

static int parse_peers(struct fetch *f, const char *const *peers, size_t npeers, long retry)
{
	for (size_t i = 0; i < npeers; i++) {
		const char *b = peers[i], *e = b + strlen(b);
		struct source *m;
		int r;

		trim(&b, &e);
		if (b == e || !memmem(b, (size_t)(e - b), "://", 3)) {
			errorf_shown("peer \"%s\" is not a URL (e.g. http://node2:8080/)",
				     peers[i]);
			return -EINVAL;
		}
		m = source_new("peer", b, (size_t)(e - b), retry);
		if (!m)
			return -ENOMEM;
		r = push(&f->peers, &f->npeers, m);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_exec_transports(struct fetch *f, const char *const *exec)
{
	struct fetch_transport t;
	int r;

	for (size_t i = 0; exec && exec[i]; i++) {
		const char *eq = strchr(exec[i], '=');
		char *scheme;

		if (!eq || eq == exec[i] || !eq[1]) {
			stork_errorf("exec \"%s\": expected SCHEME=COMMAND", exec[i]);
			return -EINVAL;
		}
		scheme = strndup(exec[i], (size_t)(eq - exec[i]));
		if (!scheme)
			return -ENOMEM;
		r = fetch_exec_transport_new(scheme, eq + 1, &f->opts, &t);
		free(scheme);
		if (r < 0)
			return r;
		r = fetch_add_transport(f, &t);
		if (r < 0)
			return r;
	}
	return 0;
}

int fetch_new(const struct fetch_opts *o, struct fetch **ret_f)
{
	struct fetch_transport t;
	struct fetch_opts po;
	struct fetch *f;
	int r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (o)
		f->opts = *o;
	/* Kept by the transports or parsed here: no borrowed string outlives fetch_new. */
	f->opts.cainfo = NULL;
	f->opts.proxies = NULL;
	f->opts.peers = NULL;
	f->opts.npeers = 0;
	f->opts.exec = NULL;
	f->opts.netrc = NULL;
	f->retry = f->opts.mirror_retry < 0   ? -1
		   : f->opts.mirror_retry > 0 ? f->opts.mirror_retry
					      : DEFAULT_RETRY;
	f->rng = (uint64_t)fetch_now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)f;
	if (!f->rng)
		f->rng = 1;
	pthread_mutex_init(&f->lock, NULL);
	if (o && o->netrc) {
		r = fetch_netrc_check(o->netrc);
		if (r < 0)
			goto fail;
	}
	r = fetch_curl_transport_new(o, &t);
	if (r < 0)
		goto fail;
	f->curl_tctx = t.tctx;
	r = fetch_add_transport(f, &t);
	if (r < 0)
		goto fail;
	r = fetch_curl_transport_new(o, &f->bulk_curl);
	if (r < 0)
		goto fail;
	f->has_bulk_curl = true;
	if (!o)
		goto done;
	r = add_exec_transports(f, o->exec);
	if (r < 0)
		goto fail;
	r = parse_proxies(f, o->proxies, o->proxy_retry > 0 ? o->proxy_retry : DEFAULT_PROXY_RETRY);
	if (r < 0)
		goto fail;
	r = parse_peers(f, o->peers, o->npeers,
			o->peer_retry > 0 ? o->peer_retry : DEFAULT_PEER_RETRY);
	if (r < 0)
		goto fail;
	if (f->npeers) {
		po = *o;
		if (po.connect_timeout <= 0 || po.connect_timeout > PEER_CONNECT)
			po.connect_timeout = PEER_CONNECT;
		r = fetch_curl_transport_new(&po, &f->peer_curl);
		if (r < 0)
			goto fail;
		f->has_peer_curl = true;
	}
done:
	*ret_f = f;
	return 0;
fail:
	fetch_free(f);
	return r;
}

void fetch_cancel(struct fetch *f)
{
	pthread_mutex_lock(&f->lock);
	for (struct tnode *n = f->transports; n; n = n->next)
		if (n->t.cancel)
			n->t.cancel(n->t.tctx);
	if (f->has_peer_curl && f->peer_curl.cancel)
		f->peer_curl.cancel(f->peer_curl.tctx);
	if (f->has_bulk_curl && f->bulk_curl.cancel)
		f->bulk_curl.cancel(f->bulk_curl.tctx);
	pthread_mutex_unlock(&f->lock);
}

void fetch_free(struct fetch *f)
{
	struct tnode *n;

	if (!f)
		return;
	for (size_t i = 0; i < f->nmirrors; i++)
		source_free(f->mirrors[i]);
	free(f->mirrors);
	for (size_t i = 0; i < f->npeers; i++)
		source_free(f->peers[i]);
	free(f->peers);
	for (size_t i = 0; i < f->nproxies; i++)
		source_free(f->proxies[i]);
	free(f->proxies);
	free(f->chain);
	while ((n = f->transports)) {
		f->transports = n->next;
		if (n->t.free)
			n->t.free(n->t.tctx);
		free(n);
	}
	if (f->has_peer_curl)
		f->peer_curl.free(f->peer_curl.tctx);
	if (f->has_bulk_curl)
		f->bulk_curl.free(f->bulk_curl.tctx);
	free(f->describe);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int fetch_add_transport(struct fetch *f, const struct fetch_transport *t)
{
	struct tnode *n = calloc(1, sizeof(*n));

	if (!n) {
		if (t->free)
			t->free(t->tctx);
		return -ENOMEM;
	}
	n->t = *t;
	n->next = f->transports;
	f->transports = n;
	return 0;
}

static int rebuild_describe(struct fetch *f)
{
	size_t len = 1;
	char *d;

	for (size_t i = 0; i < f->nmirrors; i++)
		len += strlen(f->mirrors[i]->name) + 2;
	d = malloc(len);
	if (!d)
		return -ENOMEM;
	d[0] = '\0';
	len = 0;
	for (size_t i = 0; i < f->nmirrors; i++) {
		size_t ul = strlen(f->mirrors[i]->name);

		if (i) {
			memcpy(d + len, ", ", 2);
			len += 2;
		}
		memcpy(d + len, f->mirrors[i]->name, ul + 1);
		len += ul;
	}
	free(f->describe);
	f->describe = d;
	return 0;
}

static const struct fetch_transport *handler(struct fetch *f, const char *url)
{
	for (struct tnode *n = f->transports; n; n = n->next)
		if (n->t.handles(n->t.tctx, url))
			return &n->t;
	return NULL;
}

int fetch_add_mirror(struct fetch *f, const char *url)
{
	struct source *m = NULL;
	char *base;
	int r;

	if (!url || !url[0]) {
		stork_errorf("mirror: an empty URL");
		return -EINVAL;
	}
	/* A URL some transport takes (an exec scheme need not have "//"), else a directory. */
	base = strstr(url, "://") || handler(f, url) ? strdup(url) : fetch_dir_url(url);
	if (!base)
		return -ENOMEM;
	m = source_new("mirror", base, strlen(base), f->retry);
	free(base);
	if (!m)
		return -ENOMEM;
	free(m->url);
	free(m->name);
	m->url = strdup(url);
	m->name = fetch_url_shown_dup(url);
	if (!m->url || !m->name) {
		r = -ENOMEM;
		goto fail;
	}
	m->t = handler(f, m->base);
	if (!m->t) {
		stork_errorf("%s: no transport handles this URL (use a directory, file://, http:// "
			     "or https://)",
			     m->name);
		r = -EINVAL;
		goto fail;
	}
	r = push(&f->mirrors, &f->nmirrors, m);
	if (r < 0)
		return r;
	r = rebuild_describe(f);
	if (r < 0) {
		f->nmirrors--;
		goto fail;
	}
	return 0;
fail:
	source_free(m);
	return r;
}

bool fetch_has_peers(struct fetch *f)
{
	return f->npeers > 0;
}
