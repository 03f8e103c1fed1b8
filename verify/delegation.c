/* verify/delegation.c: delegated targets roles (TUF 5.6.7): loading them against the snapshot
 * and the delegating role's keys, the pre-order depth-first search for one target, and the walk
 * over every target that `stork verify` and `stork ls` use. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/client.h"
#include "verify/control.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/name.h"
#include "verify/tuf.h"

/* Delegated roles */

const struct client_role *client_role_find(const struct verify_client *c, const char *name)
{
	for (size_t i = 0; i < c->nroles; i++)
		if (strcmp(c->roles[i].name, name) == 0 && c->roles[i].m)
			return &c->roles[i];
	return NULL;
}

static struct client_role *role_cached(struct verify_client *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nroles; i++)
		if (strcmp(c->roles[i].name, name) == 0)
			return &c->roles[i];
	return NULL;
}

/* The role from the client's cache when it holds exactly the version the snapshot lists.
 * @return 0 (cr->m and cr->keyid set); -ENOENT when it must be fetched (not cached, damaged,
 * unreadable, not signed by del's keys, another version); STORK_EROLLBACK when the cache holds
 * a newer version, signed by del's keys, than the snapshot lists; -ENOMEM. */
static int role_from_cache(struct verify_client *c, const struct meta *dm,
			   const struct meta_delegation *del, const struct meta_file *mf,
			   struct client_role *cr)
{
	const char *keyid = NULL;
	struct meta *m = NULL;
	char *name = NULL, *what = NULL, *file = NULL;
	int r;

	if (!c->has_cache)
		return -ENOENT;
	name = meta_asprintf("%s.json", del->name);
	what = meta_asprintf("cached %s.json", del->name);
	if (!name || !what) {
		r = -ENOMEM;
		goto out;
	}
	r = client_cache_load(c, name, what, META_TARGETS, &m);
	if (r == -ENOMEM)
		goto out;
	if (r < 0 || meta_check_sigs(m, del->name, &dm->keys, del, &keyid) < 0) {
		r = -ENOENT;
		goto out;
	}
	if (m->version > mf->version) {
		stork_errorf("%s: lists %s version %" PRIu64 ", older than the trusted (cached) "
			     "version %" PRIu64,
			     c->snapshot->file, name, mf->version, m->version);
		r = STORK_EROLLBACK;
		goto out;
	}
	if (client_meta_check(m, mf, c->snapshot->file) < 0) {
		r = -ENOENT;
		goto out;
	}
	file = strdup(cr->file);
	cr->keyid = strdup(keyid);
	if (!file || !cr->keyid) {
		r = -ENOMEM;
		goto out;
	}
	/* trusted now: named as the repository names it */
	free(m->file);
	m->file = file;
	file = NULL;
	cr->m = m;
	m = NULL;
	r = 0;
out:
	meta_free(m);
	free(file);
	free(name);
	free(what);
	return r;
}

static int role_load(struct verify_client *c, const struct verify_source *src,
		     const struct meta *dm, const struct meta_delegation *del,
		     struct client_role *cr)
{
	const struct meta_file *mf;
	const char *keyid = NULL;
	char *name = NULL;
	bool fetched = false;
	int r;

	name = meta_asprintf("%s.json", del->name);
	if (!name)
		return -ENOMEM;
	mf = meta_find_file(c->snapshot, name);
	if (!mf) {
		free(name);
		/* Delegated, but its publisher has not signed anything yet. */
		cr->file = meta_asprintf("metadata/%s.json", del->name);
		if (!cr->file)
			return -ENOMEM;
		stork_errorf("%s: role %s is delegated but %s does not list it (nothing "
			     "published yet)",
			     cr->file, del->name, c->snapshot->file);
		return -ENOENT;
	}
	cr->file = client_file_name(c->root, mf->version, del->name);
	if (!cr->file) {
		r = -ENOMEM;
		goto out;
	}
	r = role_from_cache(c, dm, del, mf, cr);
	if (r == -ENOENT) {
		fetched = true;
		struct meta_want w = {
		    .expect = mf,
		    .by = c->snapshot->file,
		    .role = del->name,
		    .keys = &dm->keys,
		    .del = del,
		};

		r = meta_load_want(src, cr->file, VERIFY_MAX_TARGETS_LEN, META_TARGETS, &w, &cr->m);
		if (r == -ENOENT) {
			/* listed, so not "nothing published yet" (-ENOENT to callers) */
			stork_errorf("%s: absent, but %s lists %s version %" PRIu64, cr->file,
				     c->snapshot->file, name, mf->version);
			r = STORK_EMISSING;
		}
		if (r < 0)
			goto out;
		r = meta_check_sigs(cr->m, del->name, &dm->keys, del, &keyid);
		if (r < 0)
			goto out;
		r = meta_check_version(cr->m, mf->version, c->snapshot->file);
		if (r < 0)
			goto out;
		cr->keyid = strdup(keyid);
		if (!cr->keyid) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (r < 0)
		goto out;
	cr->del = del;
	cr->dm = dm;
	if (c->check_expiry) {
		r = meta_check_expiry(cr->m, del->name, c->now);
		if (r < 0)
			goto out;
	}
	/* Newly trusted: keep it for offline use. Failing to save only costs a fetch next time
	 * (the snapshot's versions are what protects against rollback). */
	if (fetched)
		client_cache_save(c, name, cr->m);
	r = 0;
out:
	free(name);
	return r;
}

int client_load_role(struct verify_client *c, const struct verify_source *src,
		     const struct meta *dm, const struct meta_delegation *del,
		     const struct client_role **ret_role)
{
	struct client_role *cr, *grown;
	int r;

	cr = role_cached(c, del->name);
	if (cr) {
		if (cr->err < 0) {
			if (cr->detail)
				stork_errorf("%s", cr->detail);
			return cr->err;
		}
		/* The same role reached through another delegation: its keys must sign it too. */
		if (cr->del != del) {
			r = meta_check_sigs(cr->m, del->name, &dm->keys, del, NULL);
			if (r < 0)
				return r;
		}
		*ret_role = cr;
		return 0;
	}
	grown = realloc(c->roles, (c->nroles + 1) * sizeof(*c->roles));
	if (!grown)
		return -ENOMEM;
	c->roles = grown;
	cr = &c->roles[c->nroles];
	memset(cr, 0, sizeof(*cr));
	cr->name = strdup(del->name);
	if (!cr->name)
		return -ENOMEM;
	c->nroles++;
	r = role_load(c, src, dm, del, cr);
	if (r < 0) {
		meta_free(cr->m);
		cr->m = NULL;
		cr->err = r;
		cr->detail = strdup(stork_error_detail());
		return r;
	}
	*ret_role = cr;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Target search (TUF 5.6.7): pre-order depth-first over the delegations that cover the path,
 * a terminating delegation ends the search, at most VERIFY_MAX_DELEGATIONS roles visited, each
 * role at most once. */

struct found {
	const struct meta_target *t;
	const char *role;
	const char *keyid;
	const char *file;
};

struct pending {
	const struct meta *dm;
	const struct meta_delegation *del; /* NULL: the top-level targets role */
};

static bool name_in(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static int search(struct verify_client *c, const struct verify_source *src, const char *path,
		  struct found *ret)
{
	struct pending *stack = NULL, *grown;
	const char *visited[VERIFY_MAX_DELEGATIONS];
	size_t nstack = 0, cap = 16, nvisited = 0, i, end;
	int r = -ENOENT;

	stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	stack[nstack++] = (struct pending){.dm = NULL, .del = NULL};
	while (nstack > 0 && nvisited < VERIFY_MAX_DELEGATIONS) {
		struct pending p = stack[--nstack];
		const struct client_role *cr = NULL;
		const char *name = p.del ? p.del->name : "targets";
		const struct meta *m;
		const struct meta_target *t;

		if (name_in(visited, nvisited, name))
			continue;
		visited[nvisited++] = name;
		if (p.del) {
			r = client_load_role(c, src, p.dm, p.del, &cr);
			if (r == -ENOENT) {
				/* Delegated this path first, but the snapshot lists nothing it
				 * signed. Its own delegations (a terminating one, say) are
				 * unknown, so no later role may answer instead: whoever holds the
				 * snapshot key must not pick the publisher by leaving a role out
				 * (TUF 5.6.7: a role that cannot be loaded ends the search). */
				stork_errorf("target %s: role %s is delegated it before any other, "
					     "but %s lists no %s.json (nothing published by it "
					     "yet, or withheld): no other role's signature counts "
					     "for it",
					     path, name, c->snapshot->file, name);
				r = STORK_EMISSING;
				goto out;
			}
			if (r < 0)
				goto out;
			m = cr->m;
		} else {
			m = c->targets;
		}
		t = meta_find_target(m, path);
		if (t) {
			ret->t = t;
			ret->role = name;
			ret->keyid = cr ? cr->keyid : c->targets_keyid;
			ret->file = m->file;
			r = 0;
			goto out;
		}
		/* The matching children up to the first terminating one... */
		for (end = 0; end < m->ndels; end++) {
			if (meta_delegation_matches(&m->dels[end], path) &&
			    m->dels[end].terminating) {
				nstack = 0; /* ...which also forbids backtracking */
				end++;
				break;
			}
		}
		if (nstack + end > cap) {
			cap = nstack + end + 16;
			grown = realloc(stack, cap * sizeof(*stack));
			if (!grown) {
				r = -ENOMEM;
				goto out;
			}
			stack = grown;
		}
		/* ...pushed in reverse so that the first is visited first */
		for (i = end; i-- > 0;)
			if (meta_delegation_matches(&m->dels[i], path))
				stack[nstack++] = (struct pending){.dm = m, .del = &m->dels[i]};
	}
	r = -ENOENT;
out:
	free(stack);
	return r;
}

static int fill_target(const struct verify_client *c, const struct found *f, const char *path,
		       struct verify_target *ret_t)
{
	struct verify_target t = {0};
	int r;

	/* A control list has no package name or version (verify/control.h). */
	r = verify_control_path(path) ? 0 : verify_target_split(path, &t.name, &t.version);
	if (r < 0) {
		if (r == -ENOMEM)
			return r;
		stork_error_prefix("%s", f->file);
		return STORK_ENAME;
	}
	t.path = strdup(path);
	t.role = strdup(f->role);
	t.keyid = strdup(f->keyid);
	if (!t.path || !t.role || !t.keyid) {
		verify_target_fini(&t);
		return -ENOMEM;
	}
	t.length = f->t->length;
	memcpy(t.hash, f->t->hash, VERIFY_HASH_LEN);
	t.size = f->t->size;
	t.files = f->t->files;
	t.described = f->t->described;
	t.counted = f->t->counted;
	t.plain = !c->root->consistent_snapshot;
	*ret_t = t;
	return 0;
}

static int need_refresh(const struct verify_client *c)
{
	if (verify_client_usable(c))
		return 0;
	if (c->cache_note)
		stork_errorf("the client has no complete trusted metadata (%s): refresh first",
			     c->cache_note);
	else
		stork_errorf("the client has no complete trusted metadata: refresh first");
	return -EINVAL;
}

int verify_client_find_target(struct verify_client *c, const struct verify_source *src,
			      const char *target_path, struct verify_target *ret_t)
{
	struct found f;
	int r;

	r = need_refresh(c);
	if (r < 0)
		return r;
	r = search(c, src, target_path, &f);
	if (r == -ENOENT)
		stork_errorf("target %s: no role signs it", target_path);
	if (r < 0)
		return r;
	return fill_target(c, &f, target_path, ret_t);
}

/* ------------------------------------------------------------------------------------------ */
/* Walking every target */

struct cand {
	const char *path; /* borrowed from a role's metadata */
	const char *file;
	size_t seq;
	bool first;
};

struct walk {
	struct verify_client *c;
	const struct verify_source *src;
	verify_problem_fn problem;
	void *pctx;
	int first_err;
	char *first_detail;
	const char **visited;
	size_t nvisited;
	struct cand *cands;
	size_t ncands, capcands;
	char **reported; /* details already reported: a role failing once is reported once */
	size_t nreported;
};

struct chain {
	const struct meta_delegation *del;
	const struct chain *up;
};

/* Report the current error detail (once). */
static int report(struct walk *w, const char *file, int err)
{
	char *detail, **grown;
	size_t i;

	for (i = 0; i < w->nreported; i++)
		if (strcmp(w->reported[i], stork_error_detail()) == 0)
			return 0;
	detail = strdup(stork_error_detail());
	grown = realloc(w->reported, (w->nreported + 1) * sizeof(*grown));
	if (!detail || !grown) {
		free(detail);
		if (grown)
			w->reported = grown;
		return -ENOMEM;
	}
	w->reported = grown;
	w->reported[w->nreported++] = detail;
	if (!w->first_err) {
		w->first_err = err;
		w->first_detail = strdup(detail);
		if (!w->first_detail)
			return -ENOMEM;
	}
	if (w->problem)
		w->problem(w->pctx, file, err, detail);
	return 0;
}

static int add_cand(struct walk *w, const char *path, const char *file)
{
	if (w->ncands == w->capcands) {
		size_t cap = w->capcands ? 2 * w->capcands : 64;
		struct cand *grown = realloc(w->cands, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		w->cands = grown;
		w->capcands = cap;
	}
	w->cands[w->ncands] = (struct cand){.path = path, .file = file, .seq = w->ncands};
	w->ncands++;
	return 0;
}

static int walk_role(struct walk *w, const struct meta *m, const struct chain *ch, int depth)
{
	const struct client_role *cr;
	const struct chain *up;
	size_t i;
	int r;

	for (i = 0; i < m->ntargets; i++) {
		const char *path = m->targets[i].path;
		char *name = NULL, *version = NULL;
		char *pat;

		/* A role may only sign what every delegation on the way to it covers. */
		for (up = ch; up; up = up->up)
			if (!meta_delegation_matches(up->del, path))
				break;
		if (up) {
			pat = meta_delegation_patterns(up->del);
			if (!pat)
				return -ENOMEM;
			stork_errorf("%s: target \"%s\" is outside %s's delegated patterns %s",
				     m->file, path, up->del->name, pat);
			free(pat);
			r = report(w, m->file, STORK_EPATTERN);
			if (r < 0)
				return r;
			continue;
		}
		if (verify_control_path(path))
			continue; /* a control list, not a package version */
		r = verify_target_split(path, &name, &version);
		free(name);
		free(version);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			stork_error_prefix("%s", m->file);
			r = report(w, m->file, STORK_ENAME);
			if (r < 0)
				return r;
			continue;
		}
		r = add_cand(w, path, m->file);
		if (r < 0)
			return r;
	}
	for (i = 0; i < m->ndels; i++) {
		const struct meta_delegation *d = &m->dels[i];
		const char **grown;
		struct chain link = {.del = d, .up = ch};

		if (name_in(w->visited, w->nvisited, d->name))
			continue;
		grown = realloc(w->visited, (w->nvisited + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		w->visited = grown;
		w->visited[w->nvisited++] = d->name;
		r = client_load_role(w->c, w->src, m, d, &cr);
		if (r == -ENOENT)
			continue;
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			r = report(w, role_cached(w->c, d->name)->file, r);
			if (r < 0)
				return r;
			continue;
		}
		if (depth + 1 >= VERIFY_MAX_DELEGATIONS) {
			stork_errorf("%s: delegated more than %d levels deep: its targets are "
				     "never searched",
				     cr->file, VERIFY_MAX_DELEGATIONS);
			r = report(w, cr->file, STORK_ETOOBIG);
			if (r < 0)
				return r;
			continue;
		}
		r = walk_role(w, cr->m, &link, depth + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_cand_path(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_cand_seq(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int verify_client_each_target(struct verify_client *c, const struct verify_source *src,
			      int (*fn)(void *ctx, const struct verify_target *t), void *ctx,
			      verify_problem_fn problem, void *pctx)
{
	struct walk w = {.c = c, .src = src, .problem = problem, .pctx = pctx};
	size_t i;
	int r;

	r = need_refresh(c);
	if (r < 0)
		return r;
	r = walk_role(&w, c->targets, NULL, 0);
	if (r < 0)
		goto out;
	/* A path signed by several roles counts once: the one the search finds. */
	if (w.ncands) {
		qsort(w.cands, w.ncands, sizeof(*w.cands), cmp_cand_path);
		for (i = 0; i < w.ncands; i++)
			w.cands[i].first =
			    i == 0 || strcmp(w.cands[i - 1].path, w.cands[i].path) != 0;
		qsort(w.cands, w.ncands, sizeof(*w.cands), cmp_cand_seq);
	}
	for (i = 0; i < w.ncands; i++) {
		struct verify_target t;
		struct found f;

		if (!w.cands[i].first)
			continue;
		/* The search decides which role's entry counts, exactly as find_target would
		 * (terminating delegations may hide a role's entry). */
		r = search(c, src, w.cands[i].path, &f);
		if (r == -ENOENT)
			continue;
		if (r == 0)
			r = fill_target(c, &f, w.cands[i].path, &t);
		if (r == -ENOMEM)
			goto out;
		if (r < 0) {
			r = report(&w, w.cands[i].file, r);
			if (r < 0)
				goto out;
			continue;
		}
		r = fn(ctx, &t);
		verify_target_fini(&t);
		if (r < 0)
			goto out;
	}
	r = w.first_err;
	if (r < 0 && w.first_detail)
		stork_errorf("%s", w.first_detail);
out:
	for (i = 0; i < w.nreported; i++)
		free(w.reported[i]);
	free(w.reported);
	free(w.first_detail);
	free(w.visited);
	free(w.cands);
	return r;
}
