/* fs/install/resolve.c: dependency resolution with libsolv (fs/install/install.h).
 *
 * Each accepted version becomes a solvable of one repository in a pool that compares versions
 * by Debian's rules (DISTTYPE_DEB); each dependency group becomes one requirement, its
 * alternatives joined with REL_OR. A request is a job; the solver's decisions are the answer.
 * When there is none, the rule the solver blames is told in the manifests' terms, and a
 * dependency that only a version the policy refused would meet carries the policy's verdict.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <solv/bitmap.h>
#include <solv/policy.h>
#include <solv/pool.h>
#include <solv/poolarch.h>
#include <solv/problems.h>
#include <solv/repo.h>
#include <solv/rules.h>
#include <solv/solver.h>

#include "fs/install/install.h"
#include "verify/error.h"

struct resolve {
	Pool *pool;
	Repo *repo;
	Id first; /* the solvable id of pkgs[0]; pkgs[i] is first + i */
	size_t npkgs;
	const struct fs_install_refusal *refused;
	size_t nrefused;
	char msg[4096]; /* the explanation being built */
	size_t len;
};

static void say(struct resolve *rs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct resolve *rs, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (rs->len >= sizeof(rs->msg) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(rs->msg + rs->len, sizeof(rs->msg) - rs->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		rs->len += (size_t)n < sizeof(rs->msg) - rs->len ? (size_t)n
								 : sizeof(rs->msg) - 1 - rs->len;
}

/* The policy's verdict, on one line. */
static void say_verdict(struct resolve *rs, const char *why)
{
	say(rs, " (");
	for (const char *p = why; *p; p++)
		say(rs, "%c", *p == '\n' || *p == '\t' ? ' ' : *p);
	say(rs, ")");
}

static Id dep_op(const char *op)
{
	if (!strcmp(op, "<<"))
		return REL_LT;
	if (!strcmp(op, "<="))
		return REL_LT | REL_EQ;
	if (!strcmp(op, "="))
		return REL_EQ;
	if (!strcmp(op, ">="))
		return REL_GT | REL_EQ;
	return REL_GT; /* ">>": the manifest parser admits nothing else */
}

/* One group of alternatives as a dependency id: a | b | c. */
static Id group_id(Pool *pool, const struct verify_depgroup *g)
{
	Id dep = 0;

	for (size_t k = 0; k < g->n; k++) {
		const struct verify_dep *d = &g->alts[k];
		Id id = pool_str2id(pool, d->name, 1);

		if (d->op)
			id = pool_rel2id(pool, id, pool_str2id(pool, d->version, 1), dep_op(d->op),
					 1);
		dep = dep ? pool_rel2id(pool, dep, id, REL_OR, 1) : id;
	}
	return dep;
}

static void add_solvable(struct resolve *rs, const struct verify_manifest *m)
{
	Pool *pool = rs->pool;
	Solvable *s = pool_id2solvable(pool, repo_add_solvable(rs->repo));

	s->name = pool_str2id(pool, m->name, 1);
	s->evr = pool_str2id(pool, m->version, 1);
	s->arch = ARCH_ALL; /* manifests record no architecture: the repository's is the node's */
	s->provides =
	    repo_addid_dep(rs->repo, s->provides, pool_rel2id(pool, s->name, s->evr, REL_EQ, 1), 0);
	for (size_t i = 0; i < m->nprovides; i++)
		s->provides =
		    repo_addid_dep(rs->repo, s->provides, group_id(pool, &m->provides[i]), 0);
	for (size_t i = 0; i < m->nconflicts; i++)
		s->conflicts =
		    repo_addid_dep(rs->repo, s->conflicts, group_id(pool, &m->conflicts[i]), 0);
	for (size_t i = 0; i < m->nbreaks; i++) /* nothing is installed: breaks is conflicts */
		s->conflicts =
		    repo_addid_dep(rs->repo, s->conflicts, group_id(pool, &m->breaks[i]), 0);
	for (size_t i = 0; i < m->ndepends; i++)
	s->requires = repo_addid_dep(rs->repo, s->requires, group_id(pool, &m->depends[i]), 0);
}

/* A dependency as a control file writes it: "a (>= 1) | b". */
static void say_dep(struct resolve *rs, Id dep)
{
	static const struct {
		int flags;
		const char *op;
	} ops[] = {{REL_LT, "<<"},
		   {REL_LT | REL_EQ, "<="},
		   {REL_EQ, "="},
		   {REL_GT | REL_EQ, ">="},
		   {REL_GT, ">>"}};
	Reldep *rd;

	if (!ISRELDEP(dep)) {
		say(rs, "%s", pool_id2str(rs->pool, dep));
		return;
	}
	rd = GETRELDEP(rs->pool, dep);
	if (rd->flags == REL_OR) {
		say_dep(rs, rd->name);
		say(rs, " | ");
		say_dep(rs, rd->evr);
		return;
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (ops[i].flags == rd->flags) {
			say(rs, "%s (%s %s)", pool_id2str(rs->pool, rd->name), ops[i].op,
			    pool_id2str(rs->pool, rd->evr));
			return;
		}
	}
	say(rs, "%s", pool_dep2str(rs->pool, dep));
}

static void say_solvable(struct resolve *rs, Id p)
{
	Solvable *s = pool_id2solvable(rs->pool, p);

	say(rs, "%s %s", pool_id2str(rs->pool, s->name), pool_id2str(rs->pool, s->evr));
}

/* For each package a dependency names that the policy refused a version of: the verdict. */
static void say_refusals(struct resolve *rs, Id dep)
{
	const char *name;

	if (ISRELDEP(dep)) {
		Reldep *rd = GETRELDEP(rs->pool, dep);

		if (rd->flags == REL_OR) {
			say_refusals(rs, rd->name);
			say_refusals(rs, rd->evr);
			return;
		}
		dep = rd->name;
	}
	name = pool_id2str(rs->pool, dep);
	for (size_t i = 0; i < rs->nrefused; i++) {
		if (strcmp(rs->refused[i].name, name))
			continue;
		say(rs, "; the policy refuses %s %s", name, rs->refused[i].version);
		say_verdict(rs, rs->refused[i].why);
	}
}

/* One rule the solver blames, in the manifests' terms. */
static void say_rule(struct resolve *rs, Solver *solv, Id rid)
{
	Id source = 0, target = 0, dep = 0;
	SolverRuleinfo type = solver_ruleinfo(solv, rid, &source, &target, &dep);

	switch (type) {
	case SOLVER_RULE_PKG_NOTHING_PROVIDES_DEP:
		say_solvable(rs, source);
		say(rs, " depends on ");
		say_dep(rs, dep);
		say(rs, ", which no accepted version satisfies");
		say_refusals(rs, dep);
		break;
	case SOLVER_RULE_PKG_REQUIRES:
		say_solvable(rs, source);
		say(rs, " depends on ");
		say_dep(rs, dep);
		say(rs, ", and every version that satisfies it is ruled out");
		break;
	case SOLVER_RULE_PKG_CONFLICTS:
		say_solvable(rs, source);
		say(rs, " conflicts with ");
		say_dep(rs, dep);
		say(rs, " (");
		say_solvable(rs, target);
		say(rs, ")");
		break;
	case SOLVER_RULE_PKG_SAME_NAME:
		say(rs, "two versions of one package are needed: ");
		say_solvable(rs, source);
		say(rs, " and ");
		say_solvable(rs, target);
		break;
	default:
		say(rs, "%s", solver_problemruleinfo2str(solv, type, source, target, dep));
		break;
	}
}

/* A request with no accepted version: say whether the policy refused it or nobody signs it. */
static void say_unknown(struct resolve *rs, const struct fs_install_request *w)
{
	bool refused = false;

	say(rs, "%s%s%s: ", w->name, w->version ? "=" : "", w->version ? w->version : "");
	for (size_t i = 0; i < rs->nrefused; i++) {
		if (strcmp(rs->refused[i].name, w->name) ||
		    (w->version && strcmp(rs->refused[i].version, w->version)))
			continue;
		say(rs, "%sthe policy refuses %s %s", refused ? "; " : "", w->name,
		    rs->refused[i].version);
		say_verdict(rs, rs->refused[i].why);
		refused = true;
	}
	if (!refused)
		say(rs, "no such package version is signed in this repository");
}

/* apt takes the first alternative of "a | b" that can be installed; libsolv, left alone,
 * takes the one first in its own order. A favor job for each group's first alternative makes
 * it choose as apt does. Only the groups of versions the requests can reach count, so that
 * packages the request cannot need do not favor another order; where two reachable groups
 * order the same alternatives differently, libsolv's order decides between them. */
static void favor_first_alternatives(struct resolve *rs, const struct verify_manifest *const *pkgs,
				     Queue *job)
{
	int nrequests = job->count; /* the requests' jobs, pairs of (how, what) */
	Pool *pool = rs->pool;
	Queue pending;
	Map seen;

	queue_init(&pending);
	map_init(&seen, pool->nsolvables);
	for (int i = 0; i < nrequests; i += 2) {
		Id how = job->elements[i] & SOLVER_SELECTMASK, what = job->elements[i + 1];
		Id p, pp;

		if (how == SOLVER_SOLVABLE) {
			MAPSET(&seen, what);
			queue_push(&pending, what);
			continue;
		}
		FOR_PROVIDES(p, pp, what)
		{
			if (pool->solvables[p].name == what && !MAPTST(&seen, p)) {
				MAPSET(&seen, p);
				queue_push(&pending, p);
			}
		}
	}
	while (pending.count) {
		Solvable *s = pool_id2solvable(pool, queue_pop(&pending));
		Id *reqp, req, p, pp;

		if (!s->requires)
			continue;
		for (reqp = s->repo->idarraydata + s->requires; (req = *reqp) != 0; reqp++) {
			FOR_PROVIDES(p, pp, req)
			{
				if (!MAPTST(&seen, p)) {
					MAPSET(&seen, p);
					queue_push(&pending, p);
				}
			}
		}
	}
	for (size_t i = 0; i < rs->npkgs; i++) {
		if (!MAPTST(&seen, rs->first + (Id)i))
			continue;
		for (size_t k = 0; k < pkgs[i]->ndepends; k++) {
			const struct verify_depgroup *g = &pkgs[i]->depends[k];
			struct verify_depgroup first = {.alts = g->alts, .n = 1};

			if (g->n > 1)
				queue_push2(job, SOLVER_FAVOR | SOLVER_SOLVABLE_PROVIDES,
					    group_id(pool, &first));
		}
	}
	map_free(&seen);
	queue_free(&pending);
}

/* The job for one request, or 0 when no accepted version matches it. */
static Id request_job(struct resolve *rs, const struct fs_install_request *w, Id *ret_what)
{
	Pool *pool = rs->pool;
	Id name = pool_str2id(pool, w->name, 0);

	if (!name)
		return 0;
	for (size_t i = 0; i < rs->npkgs; i++) {
		Solvable *s = pool_id2solvable(pool, rs->first + (Id)i);

		if (s->name != name)
			continue;
		if (!w->version) {
			*ret_what = name;
			return SOLVER_INSTALL | SOLVER_SOLVABLE_NAME;
		}
		if (!strcmp(pool_id2str(pool, s->evr), w->version)) {
			*ret_what = rs->first + (Id)i;
			return SOLVER_INSTALL | SOLVER_SOLVABLE;
		}
	}
	return 0;
}

struct chosen {
	const char *name;
	size_t i;
};

static int by_name(const void *x, const void *y)
{
	const struct chosen *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/* The solution: the accepted versions the solver decided to install, sorted by name. */
static int solution(struct resolve *rs, Solver *solv, const struct verify_manifest *const *pkgs,
		    size_t **ret_chosen, size_t *ret_n)
{
	struct chosen *c = calloc(rs->npkgs ? rs->npkgs : 1, sizeof(*c));
	size_t n = 0, *idx;

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < rs->npkgs; i++)
		if (solver_get_decisionlevel(solv, rs->first + (Id)i) > 0)
			c[n++] = (struct chosen){pkgs[i]->name, i};
	qsort(c, n, sizeof(*c), by_name);
	idx = calloc(n ? n : 1, sizeof(*idx));
	if (!idx) {
		free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		idx[i] = c[i].i;
	free(c);
	*ret_chosen = idx;
	*ret_n = n;
	return 0;
}

int fs_install_resolve(const struct verify_manifest *const *pkgs, size_t npkgs,
		       const struct fs_install_refusal *refused, size_t nrefused,
		       const struct fs_install_request *want, size_t nwant, size_t **ret_chosen,
		       size_t *ret_n)
{
	return fs_install_resolve_keep(pkgs, npkgs, refused, nrefused, want, nwant, NULL, 0,
				       ret_chosen, ret_n);
}

int fs_install_resolve_keep(const struct verify_manifest *const *pkgs, size_t npkgs,
			    const struct fs_install_refusal *refused, size_t nrefused,
			    const struct fs_install_request *want, size_t nwant,
			    const struct fs_install_request *keep, size_t nkeep,
			    size_t **ret_chosen, size_t *ret_n)
{
	struct resolve rs = {.npkgs = npkgs, .refused = refused, .nrefused = nrefused};
	Solver *solv = NULL;
	Queue job;
	int nproblems, r;

	queue_init(&job);
	rs.pool = pool_create();
	if (!rs.pool) {
		r = -ENOMEM;
		goto out;
	}
	if (pool_setdisttype(rs.pool, DISTTYPE_DEB) < 0) {
		stork_errorf("dependency resolution: this libsolv was built without Debian "
			     "version rules");
		r = STORK_EUNSUPPORTED;
		goto out;
	}
	rs.repo = repo_create(rs.pool, "accepted");
	rs.first = rs.repo->end; /* the next solvable id */
	for (size_t i = 0; i < npkgs; i++)
		add_solvable(&rs, pkgs[i]);
	repo_internalize(rs.repo);
	pool_createwhatprovides(rs.pool);

	for (size_t i = 0; i < nwant; i++) {
		Id what = 0, how = request_job(&rs, &want[i], &what);

		if (!how) {
			if (rs.len)
				say(&rs, "; ");
			say_unknown(&rs, &want[i]);
			continue;
		}
		queue_push2(&job, how, what);
	}
	if (rs.len) {
		stork_errorf("%s", rs.msg);
		r = STORK_EMISSING;
		goto out;
	}
	favor_first_alternatives(&rs, pkgs, &job);
	for (size_t i = 0; i < nkeep; i++) { /* the installed versions, where they still fit */
		Id what = 0, how = request_job(&rs, &keep[i], &what);

		if (how)
			queue_push2(&job, SOLVER_FAVOR | (how & SOLVER_SELECTMASK), what);
	}

	solv = solver_create(rs.pool);
	solver_set_flag(solv, SOLVER_FLAG_IGNORE_RECOMMENDED, 1);
	nproblems = solver_solve(solv, &job);
	if (nproblems == 0) {
		r = solution(&rs, solv, pkgs, ret_chosen, ret_n);
		goto out;
	}
	for (Id problem = 1; problem <= nproblems; problem++) {
		Id rid = solver_findproblemrule(solv, problem);

		if (problem > 1)
			say(&rs, "; ");
		say_rule(&rs, solv, rid);
	}
	stork_errorf("%s", rs.msg);
	r = STORK_EMISSING;
out:
	if (solv)
		solver_free(solv);
	queue_free(&job);
	if (rs.pool)
		pool_free(rs.pool);
	return r;
}
