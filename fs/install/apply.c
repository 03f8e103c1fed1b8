/* fs/install/apply.c: moving a slice to a wanted list (fs/install/install.h, fs/README.md
 * "Installing").
 *
 * The wanted list lives with the slice's declaration, DIR/NAME.install next to DIR/NAME.policy,
 * written atomically; the resolved state, a numbered generation of exact versions, lives in the
 * node store (store_gen_commit). The list is written first: after a crash between the two the
 * declaration is ahead of the state, and the next `stork upgrade` (or convergence) catches up;
 * the generation itself is always whole. Processes changing one slice take turns on a flock of
 * DIR/NAME.policy (fs_install_lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fs/install/install.h"
#include "verify/array.h"
#include "verify/atomic.h"
#include "verify/error.h"
#include "verify/name.h"
#include "verify/policy.h"
#include "verify/tuf.h"

/* What one apply holds. */
struct apply {
	const struct fs_install_slice *sl;
	struct verify_target *ts; /* what the policy accepts (deduplicated) */
	size_t nts, capts;
	struct verify_manifest **m; /* their manifests, as ts */
	struct fs_install_request *want, *keep;
	size_t nwant, nkeep;
	struct store_gen *cur; /* the current generation, NULL: none */
};

static int take_target(void *ctx, const struct verify_target *t)
{
	struct apply *a = ctx;
	struct verify_target *d;
	int r;

	for (size_t i = 0; i < a->nts; i++) /* signed by a delegation and a pinned role alike */
		if (!strcmp(a->ts[i].name, t->name) && !strcmp(a->ts[i].version, t->version))
			return 0;
	r = verify_grow((void **)&a->ts, &a->capts, a->nts, sizeof(*a->ts));
	if (r < 0)
		return r;
	d = &a->ts[a->nts];
	*d = (struct verify_target){.length = t->length};
	memcpy(d->hash, t->hash, VERIFY_HASH_LEN);
	a->nts++;
	d->path = t->path ? strdup(t->path) : NULL;
	d->name = strdup(t->name);
	d->version = strdup(t->version);
	d->role = strdup(t->role);
	d->keyid = strdup(t->keyid);
	return d->name && d->version && d->role && d->keyid && (d->path || !t->path) ? 0 : -ENOMEM;
}

static void apply_fini(struct apply *a)
{
	for (size_t i = 0; i < a->nts; i++) {
		verify_target_fini(&a->ts[i]);
		if (a->m)
			verify_manifest_free(a->m[i]);
	}
	free(a->ts);
	free(a->m);
	free(a->want);
	free(a->keep);
	store_gen_free(a->cur);
}

/* NAME or NAME=VERSION into r (pointing into s, which is modified). */
static int parse_request(char *s, struct fs_install_request *r)
{
	char *eq = strchr(s, '=');

	r->name = s;
	r->version = NULL;
	if (eq) {
		*eq = '\0';
		r->version = eq + 1;
	}
	if (verify_check_package_name(r->name) < 0 ||
	    (r->version && verify_check_version(r->version) < 0)) {
		if (eq)
			*eq = '=';
		return STORK_EFORMAT;
	}
	return 0;
}

/* The policy's accepted versions and their manifests (from the store, else fetched: metadata
 * only). */
static int load_accepted(struct apply *a)
{
	const struct fs_install_slice *sl = a->sl;
	struct verify_policy *pol = NULL;
	size_t len = strlen(sl->dir) + strlen(sl->name) + 16;
	char *file = malloc(len);
	int r;

	if (!file)
		return -ENOMEM;
	snprintf(file, len, "%s/%s.policy", sl->dir, sl->name);
	r = verify_policy_load(file, &pol);
	if (r == -ENOENT)
		stork_errorf("%s: no such slice (its policy file is missing)", file);
	free(file);
	if (r < 0)
		return r;
	r = fs_repo_list_policy(sl->repo, pol, take_target, a);
	verify_policy_free(pol);
	if (r < 0)
		return r;
	a->m = calloc(a->nts ? a->nts : 1, sizeof(*a->m));
	if (!a->m)
		return -ENOMEM;
	for (size_t i = 0; i < a->nts; i++) {
		r = fs_repo_target_manifest(sl->repo, &a->ts[i], &a->m[i]);
		if (r < 0) {
			stork_error_prefix("%s %s: ", a->ts[i].name, a->ts[i].version);
			return r;
		}
	}
	return 0;
}

/* Whether chosen package p is what dependency alternative d names (its name or a provide). */
static bool names(const struct verify_manifest *p, const struct verify_dep *d)
{
	if (!strcmp(p->name, d->name))
		return true;
	for (size_t i = 0; i < p->nprovides; i++)
		if (p->provides[i].n && !strcmp(p->provides[i].alts[0].name, d->name))
			return true;
	return false;
}

/* Why chosen[k] is installed: "requested", or "needed by a, b". malloc'd. */
static char *why_of(const struct apply *a, const size_t *chosen, size_t n, size_t k)
{
	const struct verify_manifest *p = a->m[chosen[k]];
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	bool any = false;

	for (size_t i = 0; i < a->nwant; i++)
		if (!strcmp(a->want[i].name, p->name))
			return strdup("requested");
	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("needed by", f);
	for (size_t i = 0; i < n; i++) {
		const struct verify_manifest *q = a->m[chosen[i]];
		bool needs = false;

		for (size_t g = 0; i != k && g < q->ndepends && !needs; g++)
			for (size_t x = 0; x < q->depends[g].n && !needs; x++)
				needs = names(p, &q->depends[g].alts[x]);
		if (needs) {
			fprintf(f, "%s %s", any ? "," : "", q->name);
			any = true;
		}
	}
	if (!any)
		fputs(" nothing", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The generation of the chosen versions. */
static int make_gen(const struct apply *a, const char *const *wanted, const size_t *chosen,
		    size_t n, struct store_gen **ret_g)
{
	struct store_gen *g = calloc(1, sizeof(*g));
	int r = 0;

	if (!g)
		return -ENOMEM;
	g->wanted = calloc(a->nwant ? a->nwant : 1, sizeof(*g->wanted));
	g->pkgs = calloc(n ? n : 1, sizeof(*g->pkgs));
	if (!g->wanted || !g->pkgs)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < a->nwant; i++, g->nwanted++)
		if (!(g->wanted[i] = strdup(wanted[i])))
			r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++, g->npkgs++) {
		const struct verify_manifest *m = a->m[chosen[i]];
		struct store_gen_pkg *p = &g->pkgs[i];

		memcpy(p->manifest, a->ts[chosen[i]].hash, VERIFY_HASH_LEN);
		p->name = strdup(m->name);
		p->version = strdup(m->version);
		p->why = why_of(a, chosen, n, i);
		if (!p->name || !p->version || !p->why)
			r = -ENOMEM;
	}
	if (r < 0) {
		store_gen_free(g);
		return r;
	}
	*ret_g = g;
	return 0;
}

/* Whether g installs exactly what the current generation does, asked the same way. */
static bool same_gen(const struct store_gen *cur, const struct store_gen *g)
{
	if (!cur || cur->npkgs != g->npkgs || cur->nwanted != g->nwanted)
		return false;
	for (size_t i = 0; i < g->nwanted; i++)
		if (strcmp(cur->wanted[i], g->wanted[i]) != 0)
			return false;
	for (size_t i = 0; i < g->npkgs; i++)
		if (strcmp(cur->pkgs[i].name, g->pkgs[i].name) != 0 ||
		    memcmp(cur->pkgs[i].manifest, g->pkgs[i].manifest, VERIFY_HASH_LEN) != 0 ||
		    strcmp(cur->pkgs[i].why, g->pkgs[i].why) != 0)
			return false;
	return true;
}

/* DIR/NAME.install: the wanted list, atomically. */
static int write_wanted(const struct fs_install_slice *sl, char *const *wanted, size_t n)
{
	char name[96], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int dirfd, r;

	if (!f)
		return -ENOMEM;
	fprintf(f, "# the packages slice %s asks for (stork install, remove, rollback)\n",
		sl->name);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", wanted[i]);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	snprintf(name, sizeof(name), "%s.install", sl->name);
	dirfd = open(sl->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = dirfd < 0 ? -errno : verify_write_atomic(dirfd, name, buf, len, 0644);
	if (r < 0)
		stork_errorf("%s/%s: %s", sl->dir, name, strerror(-r));
	if (dirfd >= 0)
		close(dirfd);
	free(buf);
	return r;
}

/* Pin the installed versions' objects as the slice's pin set "slice-NAME" (store_pin_set): the
 * quota's eviction and `stork gc` keep them. A failure to pin changes nothing installed (an
 * evicted object is fetched again when opened), so it does not fail the install. */
static void pin_installed(const struct fs_install_slice *sl, struct verify_manifest *const *ms,
			  size_t n)
{
	char owner[STORE_PIN_OWNER_MAX + 1];

	if (snprintf(owner, sizeof(owner), "slice-%s", sl->name) >= (int)sizeof(owner))
		return;
	(void)fs_pin_versions(sl->store, owner, ms, n);
	stork_error_clear();
}

int fs_install_apply(const struct fs_install_slice *sl, const char *const *wanted, size_t nwanted,
		     unsigned flags, struct store_gen **ret_g)
{
	return fs_install_apply_some(sl, wanted, nwanted, NULL, 0, flags, ret_g);
}

static bool listed(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

int fs_install_apply_some(const struct fs_install_slice *sl, const char *const *wanted,
			  size_t nwanted, const char *const *upgrade, size_t nupgrade,
			  unsigned flags, struct store_gen **ret_g)
{
	struct apply a = {.sl = sl};
	struct verify_manifest *merged = NULL, **ms = NULL;
	struct store_gen *g = NULL;
	char **copies = NULL;
	size_t *chosen = NULL, n = 0;
	uint64_t expect = 0;
	int r;

	r = store_gen_current(sl->store, sl->repo_id, sl->name, &expect);
	if (r == 0 && expect)
		r = store_gen_get(sl->store, sl->repo_id, sl->name, expect, &a.cur);
	if (r < 0)
		goto out;
	a.want = calloc(nwanted ? nwanted : 1, sizeof(*a.want));
	copies = calloc(nwanted ? nwanted : 1, sizeof(*copies));
	if (!a.want || !copies) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nwanted; i++) {
		if (!(copies[i] = strdup(wanted[i]))) {
			r = -ENOMEM;
			goto out;
		}
		r = parse_request(copies[i], &a.want[a.nwant++]);
		if (r < 0) {
			stork_errorf("\"%s\": expected NAME or NAME=VERSION", wanted[i]);
			goto out;
		}
	}
	if (a.cur && (!(flags & FS_INSTALL_UPGRADE) || nupgrade)) {
		a.keep = calloc(a.cur->npkgs ? a.cur->npkgs : 1, sizeof(*a.keep));
		if (!a.keep) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < a.cur->npkgs; i++)
			if (!listed(upgrade, nupgrade, a.cur->pkgs[i].name))
				a.keep[a.nkeep++] = (struct fs_install_request){
				    a.cur->pkgs[i].name, a.cur->pkgs[i].version};
	}
	r = load_accepted(&a);
	if (r < 0)
		goto out;
	r = fs_install_resolve_keep((const struct verify_manifest *const *)a.m, a.nts, NULL, 0,
				    a.want, a.nwant, a.keep, a.nkeep, &chosen, &n);
	if (r < 0)
		goto out;
	ms = calloc(n ? n : 1, sizeof(*ms));
	if (!ms) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ms[i] = a.m[chosen[i]];
	r = fs_root_merge((const struct verify_manifest *const *)ms, n, &merged);
	if (r == 0)
		r = make_gen(&a, wanted, chosen, n, &g);
	if (r < 0 || (flags & FS_INSTALL_DRY_RUN))
		goto out;
	if (same_gen(a.cur, g)) { /* nothing changes (but the pins are made again) */
		store_gen_free(g);
		g = a.cur;
		a.cur = NULL;
		goto pin;
	}
	r = write_wanted(sl, g->wanted, g->nwanted);
	if (r == 0)
		r = store_gen_commit(sl->store, sl->repo_id, sl->name, expect, g, &g->number);
pin:
	if (r == 0)
		pin_installed(sl, ms, n);
out:
	if (r == 0 && ret_g) {
		*ret_g = g;
		g = NULL;
	}
	store_gen_free(g);
	verify_manifest_free(merged);
	free(ms);
	free(chosen);
	for (size_t i = 0; copies && i < nwanted; i++)
		free(copies[i]);
	free(copies);
	apply_fini(&a);
	return r;
}

int fs_install_lock(const struct fs_install_slice *sl, int *ret_fd)
{
	char path[4200];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s.policy", sl->dir, sl->name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		stork_errorf("%s: %s", path,
			     r == -ENOENT ? "no such slice (its policy file is missing)"
					  : strerror(-r));
		return r;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		stork_errorf("%s: cannot lock: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

void fs_install_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* drops the flock */
}

void fs_install_wanted_free(char **wanted, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(wanted[i]);
	free(wanted);
}

int fs_install_wanted(const char *dir, const char *name, char ***ret_wanted, size_t *ret_n)
{
	char path[4200], *line = NULL, **w = NULL;
	size_t cap = 0, n = 0, lcap = 0, lineno = 0;
	ssize_t len;
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "%s/%s.install", dir, name);
	f = fopen(path, "re");
	if (!f && errno != ENOENT)
		r = -errno;
	while (f && r == 0 && (len = getline(&line, &lcap, f)) >= 0) {
		struct fs_install_request req;
		char *s = line, *copy;

		lineno++;
		while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\t'))
			s[--len] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			continue;
		copy = strdup(s);
		if (!copy || verify_grow((void **)&w, &cap, n, sizeof(*w)) < 0) {
			free(copy);
			r = -ENOMEM;
			break;
		}
		w[n++] = copy;
		if (parse_request(s, &req) < 0) {
			stork_errorf("%s:%zu: \"%s\": expected NAME or NAME=VERSION", path, lineno,
				     copy);
			r = STORK_EFORMAT;
		}
	}
	if (f)
		fclose(f);
	free(line);
	if (r < 0) {
		fs_install_wanted_free(w, n);
		return r;
	}
	*ret_wanted = w;
	*ret_n = n;
	return 0;
}

/* Pin generation g's versions (pin_installed) from their manifests in the store, which `stork
 * install` kept; one missing leaves the pins as they were (best effort, as pin_installed). */
static void pin_generation(const struct fs_install_slice *sl, const struct store_gen *g)
{
	struct verify_manifest **ms = calloc(g->npkgs ? g->npkgs : 1, sizeof(*ms));
	size_t n = 0;
	int r = ms ? 0 : -ENOMEM;

	for (; r == 0 && n < g->npkgs; n++) {
		uint8_t *buf = NULL;
		size_t len = 0;

		r = store_manifest_get(sl->store, g->pkgs[n].manifest, &buf, &len);
		if (r == 0)
			r = verify_manifest_parse(buf, len, g->pkgs[n].name, &ms[n]);
		free(buf);
		if (r < 0)
			break;
	}
	if (r == 0)
		pin_installed(sl, ms, n);
	stork_error_clear();
	for (size_t i = 0; ms && i < n; i++)
		verify_manifest_free(ms[i]);
	free(ms);
}

int fs_install_rollback(const struct fs_install_slice *sl, struct store_gen **ret_g)
{
	const char *repo = sl->repo_id;
	struct store_gen *g = NULL, *cur = NULL;
	int r;

	r = store_gen_get(sl->store, repo, sl->name, 0, &cur);
	if (r == 0 && !cur->prev) {
		stork_errorf("slice %s: generation %llu was made first: nothing to return to",
			     sl->name, (unsigned long long)cur->number);
		r = -ENOENT;
	}
	if (r == 0)
		r = store_gen_get(sl->store, repo, sl->name, cur->prev, &g);
	if (r == 0)
		r = write_wanted(sl, g->wanted, g->nwanted);
	if (r == 0)
		r = store_gen_switch(sl->store, repo, sl->name, cur->number, g->number);
	if (r == 0)
		pin_generation(sl, g);
	if (r == 0 && ret_g) {
		*ret_g = g;
		g = NULL;
	}
	store_gen_free(g);
	store_gen_free(cur);
	return r;
}

int fs_install_installed(struct store *s, const char *repo_id, const char *slice,
			 struct store_gen **ret_g)
{
	return store_gen_get(s, repo_id, slice, 0, ret_g);
}
