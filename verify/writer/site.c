/* verify/writer/site.c: the browse site, static HTML pages under REPODIR/site/ that show what
 * the signed metadata says (verify/README.md "Browse site"). `stork publish`, `stork repo
 * refresh` and `stork repo site` write it.
 *
 * The pages are read from the repository's trusted state exactly as a client reads it (the
 * client's code over the directory, signatures checked, expiry not: an expired role is shown
 * as expired), under the repository's lock, so two writers never mix two states. Every page
 * is written to a temporary file and renamed into place, the index last. Nothing here is
 * signed and clients never read it. Every string from a package (names, versions, file
 * names, descriptions, dependencies) goes through html_text(), which escapes markup and shows
 * control characters and invalid UTF-8 as \xNN; the pages carry a Content-Security-Policy that
 * allows no script at all, in case an escape is ever missed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "verify/atomic.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/manifest.h"
#include "verify/name.h"
#include "verify/text.h"
#include "verify/writer/internal.h"
#include "verify/writer/site.h"

struct site {
	struct repo r;
	const char *only; /* write only this package's page (and missing ones); NULL: all */
	int (*cmp)(const char *a, const char *b);
	struct site_ver *v; /* by name, then version in cmp's order */
	size_t n, cap;
	uint8_t roothash[VERIFY_HASH_LEN];
	bool has_roothash;
};

/* ------------------------------------------------------------------------------------------ */
/* Reading the state. */

static int collect(void *ctx, const struct verify_target *t)
{
	struct site *s = ctx;
	struct site_ver *v;

	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		void *p = realloc(s->v, ncap * sizeof(*s->v));

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = ncap;
	}
	v = &s->v[s->n++];
	memset(v, 0, sizeof(*v));
	v->t = *t;
	v->t.path = strdup(t->path);
	v->t.name = strdup(t->name);
	v->t.version = strdup(t->version);
	v->t.role = strdup(t->role ? t->role : "");
	v->t.keyid = strdup(t->keyid ? t->keyid : "");
	if (!v->t.path || !v->t.name || !v->t.version || !v->t.role || !v->t.keyid)
		return -ENOMEM;
	return 0;
}

static void skip_problem(void *ctx, const char *file, int err, const char *detail)
{
	(void)ctx;
	(void)file;
	(void)err;
	(void)detail; /* what fails to verify is not shown: clients do not see it either */
}

static int (*sort_cmp)(const char *a, const char *b);

static int by_name_version(const void *x, const void *y)
{
	const struct site_ver *a = x, *b = y;
	int r = strcmp(a->t.name, b->t.name);

	return r ? r : sort_cmp(a->t.version, b->t.version);
}

/* The signed one-line description of v (custom.storkfs.summary of its role's entry), copied;
 * NULL when there is none. */
static char *signed_summary(struct site *s, const struct site_ver *v)
{
	const struct meta *m = NULL;
	const struct meta_delegation *del;
	const json_t *j;

	if (!strcmp(v->t.role, "targets")) {
		m = trusted_meta(s->r.c, META_TARGETS);
	} else {
		del = trusted_find_delegation(s->r.c, v->t.role);
		if (!del || trusted_load_role(s->r.c, &s->r.src, del, &m) < 0)
			return NULL;
	}
	if (!m)
		return NULL;
	j = json_object_get(json_object_get(m->signed_json, "targets"), v->t.path);
	j = json_object_get(json_object_get(json_object_get(j, "custom"), "storkfs"), "summary");
	return json_is_string(j) ? strdup(json_string_value(j)) : NULL;
}

/* Whether the page of v's package is to be written: every page, or the one asked for and
 * those missing. */
static bool page_wanted(const struct site *s, const struct site_ver *v)
{
	char page[200];

	if (!s->only || !strcmp(v->t.name, s->only))
		return true;
	snprintf(page, sizeof(page), "site/p/%s.html", v->t.name);
	return faccessat(s->r.dirfd, page, F_OK, AT_SYMLINK_NOFOLLOW) != 0;
}

static int load(struct site *s)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	r = verify_client_each_target(s->r.c, &s->r.src, collect, s, skip_problem, NULL);
	if (r == -ENOMEM)
		return r;
	sort_cmp = s->cmp;
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), by_name_version);
	for (size_t i = 0; i < s->n; i++) {
		struct site_ver *v = &s->v[i];

		v->summary = signed_summary(s, v);
		v->wanted = i > 0 && !strcmp(v->t.name, s->v[i - 1].t.name) ? s->v[i - 1].wanted
									    : page_wanted(s, v);
		if (!v->wanted)
			continue;
		r = verify_fetch_manifest(&s->r.src, &v->t, &v->m);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			v->problem = strdup(stork_error_detail());
			if (!v->problem)
				return -ENOMEM;
			continue;
		}
		for (size_t k = 0; k < v->m->n; k++)
			v->files += v->m->entries[k].type == VERIFY_FILE;
	}
	r = s->r.src.get(s->r.src.ctx, "metadata/1.root.json", VERIFY_MAX_ROOT_LEN, &buf, &len);
	if (r == 0)
		s->has_roothash = verify_sha256(buf, len, s->roothash) == 0;
	free(buf);
	return r == -ENOMEM ? r : 0;
}

static void site_free(struct site *s)
{
	for (size_t i = 0; i < s->n; i++) {
		verify_target_fini(&s->v[i].t);
		verify_manifest_free(s->v[i].m);
		free(s->v[i].problem);
		free(s->v[i].summary);
	}
	free(s->v);
}

/* ------------------------------------------------------------------------------------------ */
/* Writing. */

/* Whether name is a page this writer makes for a package ("NAME.html", NAME a package name). */
static bool is_page_name(const char *name, char *ret_pkg, size_t len)
{
	size_t n = strlen(name);

	if (n <= 5 || n - 5 >= len || strcmp(name + n - 5, ".html") || name[0] == '.')
		return false;
	memcpy(ret_pkg, name, n - 5);
	ret_pkg[n - 5] = '\0';
	return verify_check_package_name(ret_pkg) == 0;
}

/* Remove the pages of packages that are no longer signed (a revoked publisher's). */
static int remove_stale(const struct site *s, int pfd)
{
	char pkg[160];
	struct dirent *de;
	int fd = dup(pfd);
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!is_page_name(de->d_name, pkg, sizeof(pkg)) ||
		    site_has_package(s->v, s->n, pkg))
			continue;
		if (unlinkat(pfd, de->d_name, 0) < 0 && errno != ENOENT) {
			int r = -errno;

			stork_errorf("site/p/%s: cannot remove the page of a package no longer "
				     "signed: %s",
				     de->d_name, storkfs_strerror(r));
			closedir(d);
			return r;
		}
	}
	closedir(d);
	return 0;
}

static int write_page(int dirfd, const char *dir, const char *name, struct site_buf *b)
{
	int r;

	if (b->oom)
		return -ENOMEM;
	r = verify_write_atomic(dirfd, name, b->p, b->n, 0644);
	if (r < 0)
		stork_errorf("%s/%s: %s", dir, name, storkfs_strerror(r));
	return r;
}

static int write_all(struct site *s, struct verify_site_stats *st)
{
	struct site_buf b = {0};
	char file[160];
	int sitefd = -1, pfd = -1, r;

	r = repo_mkdir_ok(s->r.dirfd, "site", 0755, "site");
	if (r == 0)
		r = repo_mkdir_ok(s->r.dirfd, "site/p", 0755, "site/p");
	if (r < 0)
		goto out;
	sitefd = openat(s->r.dirfd, "site", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	pfd =
	    sitefd < 0 ? -1 : openat(sitefd, "p", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0) {
		r = -errno;
		stork_errorf("%s/site: %s", s->r.dir, storkfs_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < s->n;) {
		size_t j = i;

		while (j < s->n && !strcmp(s->v[j].t.name, s->v[i].t.name))
			j++;
		st->packages++;
		st->versions += j - i;
		if (!s->v[i].wanted) {
			i = j;
			continue;
		}
		b.n = 0;
		site_package_page(&b, s->v + i, j - i, s->v, s->n);
		snprintf(file, sizeof(file), "%s.html", s->v[i].t.name);
		r = write_page(pfd, "site/p", file, &b);
		if (r < 0)
			goto out;
		st->pages++;
		for (size_t k = i; k < j; k++)
			st->unreadable += s->v[k].m == NULL;
		i = j;
	}
	r = remove_stale(s, pfd);
	if (r < 0)
		goto out;
	b.n = 0;
	site_index_page(&b, s->r.c, &s->r.src, s->v, s->n, s->r.now, s->r.expiry,
			s->has_roothash ? s->roothash : NULL);
	r = write_page(sitefd, "site", "index.html", &b);
out:
	free(b.p);
	if (pfd >= 0)
		close(pfd);
	if (sitefd >= 0)
		close(sitefd);
	return r;
}

int verify_repo_site(const char *repodir, const char *keydir,
		     int (*cmp)(const char *a, const char *b), const struct verify_repo_opts *o,
		     struct verify_site_stats *ret_st)
{
	struct verify_site_stats st = {0};
	struct site s = {
	    .r = {.dirfd = -1, .mdfd = -1}, .cmp = cmp, .only = o ? o->site_only : NULL};
	int r;

	r = repo_open(&s.r, repodir, NULL, o);
	if (r < 0)
		return r;
	/* the operator's expiry durations, to tell when a role is close to expiring */
	if (keydir)
		repo_opts_init(&s.r, o, keydir);
	r = load(&s);
	if (r == 0)
		r = write_all(&s, &st);
	site_free(&s);
	repo_close(&s.r);
	if (r == 0 && ret_st)
		*ret_st = st;
	return r;
}
