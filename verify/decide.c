/* verify/decide.c: a slice's trust policy applied to the verified metadata (verify/README.md
 * "Trust policy"). The policy never adds trust the metadata lacks: a `delegated` rule takes
 * what the repository's delegations verify; a pinned rule (TAP 13) takes what a named role,
 * listed in the trusted snapshot, signs with keys the slice chose; `refuse key` removes a
 * key's signatures from every threshold; pins and refusals only take away.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/client.h"
#include "verify/control.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/policy.h"
#include "verify/tuf.h"

void verify_decision_fini(struct verify_decision *d)
{
	if (!d)
		return;
	verify_target_fini(&d->t);
	memset(d, 0, sizeof(*d));
}

static const char *rule_where(const struct verify_policy_rule *r, char *buf, size_t len)
{
	if (r->line)
		snprintf(buf, len, "%s:%u (%s)", r->file, r->line, r->text);
	else
		snprintf(buf, len, "the default policy (trust * delegated)");
	return buf;
}

/* Whether the role's signatures still meet its threshold when refused keys do not count.
 * @return 0 (yes, or no key of the role is refused); 1 (no: *ret_rule is a refusing rule);
 * -ENOMEM. */
static int refused_keys_matter(const struct verify_policy *p, const struct meta *m,
			       const char *rolename, const struct meta_keyring *kr,
			       const struct meta_delegation *del,
			       const struct verify_policy_rule **ret_rule)
{
	const struct verify_policy_rule *hit = NULL;
	struct meta_keyring kept = {0};
	size_t i;
	int r;

	for (i = 0; i < kr->n; i++)
		if (!hit)
			hit = verify_policy_refused_key(p, verify_key_id(kr->keys[i]));
	if (!hit)
		return 0;
	kept.keys = calloc(kr->n, sizeof(*kept.keys));
	if (!kept.keys)
		return -ENOMEM;
	for (i = 0; i < kr->n; i++)
		if (!verify_policy_refused_key(p, verify_key_id(kr->keys[i])))
			kept.keys[kept.n++] = kr->keys[i];
	r = meta_check_sigs(m, rolename, &kept, del, NULL);
	free(kept.keys);
	stork_error_clear();
	if (r == STORK_EBADSIG) {
		*ret_rule = hit;
		return 1;
	}
	return r == -ENOMEM ? r : 0;
}

/* After a failed signature check of m: the detail also names the keys that did sign it. */
static void name_signers(const struct meta *m)
{
	char was[STORK_DETAIL_MAX], ids[200] = "";
	size_t len = 0;

	snprintf(was, sizeof(was), "%s", stork_error_detail());
	for (size_t i = 0; i < m->nsigs && len + 20 < sizeof(ids); i++)
		len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%.16s", i ? ", " : "",
					m->sigs[i].keyid);
	stork_errorf("%s; it is signed by %s %s", was, m->nsigs == 1 ? "key" : "keys",
		     m->nsigs ? ids : "no key");
}

/* The pinned role of rule: listed in the trusted snapshot, that version, signed by a
 * threshold of the pinned keys, unexpired. @param[out] ret_keyid borrowed from the rule's keys.
 * @return 0; -ENOENT (the snapshot lists no such role: detail); STORK_EBADSIG and the other
 * load errors (detail names the policy line and the file). */
static int load_pinned(struct verify_client *c, const struct verify_source *src,
		       const struct verify_policy *p, const struct verify_policy_rule *rule,
		       struct meta **ret_m, const char **ret_keyid,
		       const struct verify_policy_rule **ret_refused)
{
	struct meta_keyring kr = {(struct verify_key **)rule->keys, rule->nkeys};
	struct meta_delegation del = {0};
	const struct meta_file *mf;
	struct meta *m = NULL;
	char *name = NULL, *file = NULL, **ids = NULL;
	const char *keyid = NULL;
	bool fetched = false;
	int r;

	name = meta_asprintf("%s.json", rule->role);
	ids = calloc(rule->nkeys ? rule->nkeys : 1, sizeof(*ids));
	if (!name || !ids) {
		r = -ENOMEM;
		goto out;
	}
	mf = meta_find_file(c->snapshot, name);
	if (!mf) {
		stork_errorf("%s:%u: role %s: %s lists no %s (the role has published nothing, or "
			     "the repository withholds it)",
			     rule->file, rule->line, rule->role, c->snapshot->file, name);
		r = -ENOENT;
		goto out;
	}
	file = client_file_name(c->root, mf->version, rule->role);
	if (!file) {
		r = -ENOMEM;
		goto out;
	}
	r = client_cache_load(c, name, file, META_TARGETS, &m);
	if (r == 0 && client_meta_check(m, mf, c->snapshot->file) < 0) {
		meta_free(m);
		m = NULL;
		r = -ENOENT;
	}
	if (r < 0) {
		meta_free(m);
		m = NULL;
		fetched = true;
		r = meta_load(src, file, VERIFY_MAX_TARGETS_LEN, mf, META_TARGETS, &m);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < rule->nkeys; i++)
		ids[i] = (char *)verify_key_id(rule->keys[i]);
	del.name = (char *)rule->role;
	del.keyids = ids;
	del.nkeyids = rule->nkeys;
	del.threshold = rule->threshold;
	r = meta_check_sigs(m, rule->role, &kr, &del, &keyid);
	if (r == STORK_EBADSIG)
		name_signers(m);
	if (r == 0)
		r = meta_check_version(m, mf->version, c->snapshot->file);
	if (r == 0 && c->check_expiry)
		r = meta_check_expiry(m, rule->role, c->now);
	if (r < 0) {
		stork_error_prefix("%s:%u: pinned role %s: ", rule->file, rule->line, rule->role);
		goto out;
	}
	if (fetched)
		client_cache_save(c, name, m);
	r = refused_keys_matter(p, m, rule->role, &kr, &del, ret_refused);
	if (r < 0)
		goto out;
	r = 0;
	/* What is derived from this walk holds until this role expires too
	 * (verify_client_state_id). */
	if (!c->pinned_expires || m->expires < c->pinned_expires)
		c->pinned_expires = m->expires;
	*ret_keyid = keyid;
	*ret_m = m;
	m = NULL;
out:
	meta_free(m);
	free(ids);
	free(file);
	free(name);
	return r;
}

static int target_of(const struct verify_client *c, const char *path, const struct meta_target *mt,
		     const char *role, const char *keyid, struct verify_target *ret_t)
{
	struct verify_target t = {0};
	int r;

	r = verify_target_split(path, &t.name, &t.version);
	if (r < 0)
		return r;
	t.path = strdup(path);
	t.role = strdup(role);
	t.keyid = strdup(keyid ? keyid : "");
	if (!t.path || !t.role || !t.keyid) {
		verify_target_fini(&t);
		return -ENOMEM;
	}
	t.length = mt->length;
	memcpy(t.hash, mt->hash, VERIFY_HASH_LEN);
	t.size = mt->size;
	t.files = mt->files;
	t.described = mt->described;
	t.counted = mt->counted;
	t.plain = !c->root->consistent_snapshot;
	*ret_t = t;
	return 0;
}

/* The signing role of a target found through the delegations: its metadata, the keys it was
 * checked against and its delegation. @return 0; -ENOENT (not loaded: cannot happen right
 * after a search). */
static int role_of(const struct verify_client *c, const char *role, const struct meta **ret_m,
		   const struct meta_keyring **ret_kr, const struct meta_delegation **ret_del)
{
	const struct client_role *cr;

	if (strcmp(role, "targets") == 0) {
		*ret_m = c->targets;
		*ret_kr = &c->root->keys;
		*ret_del = &c->root->roles[META_ROLE_TARGETS];
		return 0;
	}
	cr = client_role_find(c, role);
	if (!cr)
		return -ENOENT;
	*ret_m = cr->m;
	*ret_kr = &cr->dm->keys;
	*ret_del = cr->del;
	return 0;
}

int verify_client_decide(struct verify_client *c, const struct verify_source *src,
			 const struct verify_policy *p, const char *name, const char *version,
			 int (*cmp)(const char *a, const char *b), struct verify_decision *ret_d)
{
	const struct verify_policy_rule *rule, *pin, *refused = NULL;
	const struct meta_keyring *kr;
	const struct meta_delegation *del;
	const struct meta *rm;
	struct verify_decision d = {0};
	struct meta *pm = NULL;
	char where[600], *path = NULL;
	const char *keyid = NULL;
	int r;

	if (!verify_client_usable(c)) {
		stork_errorf("the client has no complete trusted metadata: refresh first");
		return -EINVAL;
	}
	path = verify_target_path(name, version);
	if (!path)
		return -ENOMEM;
	rule = verify_policy_rule_for(p, name);
	d.rule = rule;
	switch (rule->kind) {
	case VERIFY_POLICY_NOMATCH:
		snprintf(d.why, sizeof(d.why),
			 "%s %s: refused: no rule of the policy matches %s (add a line such as "
			 "\"trust %s delegated\")",
			 name, version, name, name);
		goto decided;
	case VERIFY_POLICY_REFUSE:
		snprintf(d.why, sizeof(d.why), "%s %s: refused by %s", name, version,
			 rule_where(rule, where, sizeof(where)));
		goto decided;
	default:
		break;
	}
	pin = verify_policy_pin_excludes(p, name, version, cmp);
	if (pin) {
		d.rule = pin;
		snprintf(d.why, sizeof(d.why), "%s %s: refused: outside the versions %s allows",
			 name, version, rule_where(pin, where, sizeof(where)));
		goto decided;
	}
	if (rule->kind == VERIFY_POLICY_PINNED) {
		const struct meta_target *mt;

		r = load_pinned(c, src, p, rule, &pm, &keyid, &refused);
		if (r < 0)
			goto out;
		mt = meta_find_target(pm, path);
		if (!mt) {
			snprintf(d.why, sizeof(d.why),
				 "%s %s: not signed by role %s, which %s requires for %s", name,
				 version, rule->role, rule_where(rule, where, sizeof(where)),
				 rule->pattern);
			r = -ENOENT;
			goto out;
		}
		r = target_of(c, path, mt, rule->role, keyid, &d.t);
	} else {
		r = verify_client_find_target(c, src, path, &d.t);
		if (r == -ENOENT)
			snprintf(d.why, sizeof(d.why), "%s %s: no role of the repository signs it",
				 name, version);
		if (r < 0)
			goto out;
		r = role_of(c, d.t.role, &rm, &kr, &del);
		if (r == 0)
			r = refused_keys_matter(p, rm, d.t.role, kr, del, &refused);
	}
	if (r < 0)
		goto out;
	if (refused) {
		d.rule = refused;
		snprintf(d.why, sizeof(d.why),
			 "%s %s: refused: role %s does not reach its threshold without the key "
			 "that %s refuses",
			 name, version, d.t.role, rule_where(refused, where, sizeof(where)));
		verify_target_fini(&d.t);
		goto decided;
	}
	d.accepted = true;
	snprintf(d.why, sizeof(d.why), "%s %s: accepted by %s: signed in role %s by key %.16s",
		 name, version, rule_where(rule, where, sizeof(where)), d.t.role, d.t.keyid);
decided:
	*ret_d = d;
	memset(&d, 0, sizeof(d));
	r = 0;
out:
	if (r == -ENOENT && d.why[0]) {
		stork_errorf("%s", d.why);
	}
	verify_decision_fini(&d);
	meta_free(pm);
	free(path);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Walking what a policy accepts */

struct accept_walk {
	struct verify_client *c;
	const struct verify_policy *p;
	int (*cmp)(const char *a, const char *b);
	int (*fn)(void *ctx, const struct verify_target *t);
	void *ctx;
};

/* A target the delegations verified: kept when a `delegated` rule decides its name, pins
 * allow its version and refused keys do not break its role's threshold. */
static int accept_delegated(void *ctx, const struct verify_target *t)
{
	struct accept_walk *w = ctx;
	const struct verify_policy_rule *rule = verify_policy_rule_for(w->p, t->name),
					*refused = NULL;
	const struct meta_keyring *kr;
	const struct meta_delegation *del;
	const struct meta *rm;
	int r;

	if (rule->kind != VERIFY_POLICY_DELEGATED ||
	    verify_policy_pin_excludes(w->p, t->name, t->version, w->cmp))
		return 0;
	r = role_of(w->c, t->role, &rm, &kr, &del);
	if (r == 0)
		r = refused_keys_matter(w->p, rm, t->role, kr, del, &refused);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	return refused ? 0 : w->fn(w->ctx, t);
}

/* Every target of one pinned rule's role that this rule decides. */
static int walk_pinned(struct accept_walk *w, const struct verify_source *src,
		       const struct verify_policy_rule *rule, verify_problem_fn problem, void *pctx)
{
	const struct verify_policy_rule *refused = NULL;
	struct meta *pm = NULL;
	const char *keyid = NULL;
	int r;

	r = load_pinned(w->c, src, w->p, rule, &pm, &keyid, &refused);
	if (r < 0) {
		if (r == -ENOMEM)
			return r;
		if (problem)
			problem(pctx, rule->file, r, stork_error_detail());
		return r;
	}
	for (size_t i = 0; i < pm->ntargets && !refused; i++) {
		const struct meta_target *mt = &pm->targets[i];
		struct verify_target t;

		r = target_of(w->c, mt->path, mt, rule->role, keyid, &t);
		if (r == -ENOMEM)
			break;
		if (r < 0) {
			r = 0; /* not a package version path: not ours to show */
			continue;
		}
		if (verify_policy_rule_for(w->p, t.name) == rule &&
		    !verify_policy_pin_excludes(w->p, t.name, t.version, w->cmp))
			r = w->fn(w->ctx, &t);
		verify_target_fini(&t);
		if (r < 0)
			break;
	}
	meta_free(pm);
	return r;
}

int verify_client_each_accepted(struct verify_client *c, const struct verify_source *src,
				const struct verify_policy *p,
				int (*cmp)(const char *a, const char *b),
				int (*fn)(void *ctx, const struct verify_target *t), void *ctx,
				verify_problem_fn problem, void *pctx)
{
	struct accept_walk w = {c, p, cmp, fn, ctx};
	bool delegated = false;
	int first = 0, r;

	for (size_t i = 0; i < verify_policy_nrules(p); i++)
		delegated |= verify_policy_rule_at(p, i)->kind == VERIFY_POLICY_DELEGATED;
	if (delegated) {
		r = verify_client_each_target(c, src, accept_delegated, &w, problem, pctx);
		if (r == -ENOMEM)
			return r;
		first = r;
	}
	for (size_t i = 0; i < verify_policy_nrules(p); i++) {
		const struct verify_policy_rule *rule = verify_policy_rule_at(p, i);

		if (rule->kind != VERIFY_POLICY_PINNED)
			continue;
		r = walk_pinned(&w, src, rule, problem, pctx);
		if (r == -ENOMEM)
			return r;
		if (r < 0 && !first)
			first = r;
	}
	return first;
}

/* ------------------------------------------------------------------------------------------ */
/* Control lists (verify/control.h) */

int verify_client_control(struct verify_client *c, const struct verify_source *src,
			  const struct verify_policy *p, struct verify_target *ret_t)
{
	const struct verify_policy_rule *rule = verify_policy_control(p), *refused = NULL;
	const struct meta_keyring *kr;
	const struct meta_delegation *del;
	const struct meta_target *mt;
	const struct meta *rm;
	struct verify_target t = {0};
	struct meta *pm = NULL;
	const char *keyid = NULL;
	char *path = NULL, where[600];
	int r;

	if (!rule) {
		stork_errorf("the policy has no control line: it follows no group");
		return -ENODATA;
	}
	if (!verify_client_usable(c)) {
		stork_errorf("the client has no complete trusted metadata: refresh first");
		return -EINVAL;
	}
	path = verify_control_target_path(rule->pattern);
	if (!path)
		return -ENOMEM;
	if (rule->kind == VERIFY_POLICY_CONTROL_PINNED) {
		r = load_pinned(c, src, p, rule, &pm, &keyid, &refused);
		if (r < 0)
			goto out;
		mt = meta_find_target(pm, path);
		if (!mt) {
			stork_errorf("%s: role %s signs no control list for group %s (%s)",
				     rule_where(rule, where, sizeof(where)), rule->role,
				     rule->pattern, path);
			r = -ENOENT;
			goto out;
		}
		t.path = strdup(path);
		t.role = strdup(rule->role);
		t.keyid = strdup(keyid ? keyid : "");
		r = !t.path || !t.role || !t.keyid ? -ENOMEM : 0;
		t.length = mt->length;
		memcpy(t.hash, mt->hash, VERIFY_HASH_LEN);
	} else {
		r = verify_client_find_target(c, src, path, &t);
		if (r == -ENOENT)
			stork_errorf("%s: no role of the repository signs a control list for group "
				     "%s (%s)",
				     rule_where(rule, where, sizeof(where)), rule->pattern, path);
		if (r < 0)
			goto out;
		r = role_of(c, t.role, &rm, &kr, &del);
		if (r == 0)
			r = refused_keys_matter(p, rm, t.role, kr, del, &refused);
	}
	if (r < 0)
		goto out;
	if (refused) {
		stork_errorf("control list of group %s: role %s does not reach its threshold "
			     "without the key that %s refuses",
			     rule->pattern, t.role, rule_where(refused, where, sizeof(where)));
		r = STORK_EBADSIG;
		goto out;
	}
	*ret_t = t;
	memset(&t, 0, sizeof(t));
out:
	if (r == STORK_EBADSIG && !refused)
		stork_error_prefix("control list of group %s: refused: ", rule->pattern);
	verify_target_fini(&t);
	meta_free(pm);
	free(path);
	return r;
}
