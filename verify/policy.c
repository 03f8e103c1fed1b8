/* verify/policy.c: a trust policy as a mount uses it: the rules it holds, the built-in default,
 * and the questions verify/decide.c and fs/ ask (which rule decides for a name, which keys are
 * refused, which versions pins exclude). Parsing is verify/policy_parse.c; the format and its
 * semantics are in verify/README.md "Trust policy".
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "verify/hash.h"
#include "verify/key.h"
#include "verify/name.h"
#include "verify/policy_int.h"

/* ------------------------------------------------------------------------------------------ */
/* The policy being built. */

static void rule_fini(struct policy_rule *r)
{
	size_t i;

	free(r->text);
	free(r->pattern);
	free(r->role);
	free(r->keys);
	free(r->key_names);
	for (i = 0; i < r->nslots; i++)
		free(r->versions[i]);
	free(r->versions);
	free(r->cmps);
}

void verify_policy_free(struct verify_policy *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nrules; i++)
		rule_fini(&p->rules[i]);
	free(p->rules);
	for (i = 0; i < p->nkeys; i++) {
		free(p->keys[i].name);
		verify_key_free(p->keys[i].key);
	}
	free(p->keys);
	free(p->file);
	free(p);
}

int policy_new(const char *file, struct verify_policy **ret_p)
{
	struct verify_policy *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->file = strdup(file);
	if (!p->file) {
		free(p);
		return -ENOMEM;
	}
	p->nomatch.kind = VERIFY_POLICY_NOMATCH;
	p->nomatch.file = p->file;
	p->nomatch.text = "";
	*ret_p = p;
	return 0;
}

int verify_policy_default(struct verify_policy **ret_p)
{
	static const char text[] = "trust * delegated";
	struct verify_policy *p = NULL;
	int r;

	r = verify_policy_parse("(default policy)", text, sizeof(text) - 1, NULL, &p);
	if (r < 0)
		return r;
	p->rules[0].pub.line = 0;
	*ret_p = p;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Deciding. */

size_t verify_policy_nrules(const struct verify_policy *p)
{
	return p->nrules;
}

/* NULL past the last rule. */
const struct verify_policy_rule *verify_policy_rule_at(const struct verify_policy *p, size_t i)
{
	return i < p->nrules ? &p->rules[i].pub : NULL;
}

const struct verify_policy_rule *verify_policy_rule_for(const struct verify_policy *p,
							const char *name)
{
	size_t i;

	for (i = 0; i < p->nrules; i++) {
		const struct verify_policy_rule *r = &p->rules[i].pub;

		if (r->kind != VERIFY_POLICY_DELEGATED && r->kind != VERIFY_POLICY_PINNED &&
		    r->kind != VERIFY_POLICY_REFUSE)
			continue;
		if (verify_name_matches(r->pattern, name))
			return r;
	}
	return &p->nomatch;
}

const struct verify_policy_rule *verify_policy_refused_key(const struct verify_policy *p,
							   const char *keyid)
{
	size_t i;

	for (i = 0; i < p->nrules; i++) {
		const struct verify_policy_rule *r = &p->rules[i].pub;

		if (r->kind == VERIFY_POLICY_REFUSE_KEY &&
		    strcmp(verify_key_id(r->keys[0]), keyid) == 0)
			return r;
	}
	return NULL;
}

const struct verify_policy_rule *verify_policy_control(const struct verify_policy *p)
{
	for (size_t i = 0; i < p->nrules; i++)
		if (p->rules[i].pub.kind == VERIFY_POLICY_CONTROL_DELEGATED ||
		    p->rules[i].pub.kind == VERIFY_POLICY_CONTROL_PINNED)
			return &p->rules[i].pub;
	return NULL;
}

static bool cmp_holds(const struct verify_policy_cmp *c, int d)
{
	switch (c->op) {
	case VERIFY_CMP_LT:
		return d < 0;
	case VERIFY_CMP_LE:
		return d <= 0;
	case VERIFY_CMP_EQ:
		return d == 0;
	case VERIFY_CMP_GE:
		return d >= 0;
	case VERIFY_CMP_GT:
		return d > 0;
	}
	return false;
}

const struct verify_policy_rule *
verify_policy_pin_excludes(const struct verify_policy *p, const char *name, const char *version,
			   int (*cmp)(const char *a, const char *b))
{
	size_t i, j;

	for (i = 0; i < p->nrules; i++) {
		const struct verify_policy_rule *r = &p->rules[i].pub;

		if (r->kind != VERIFY_POLICY_PIN || !verify_name_matches(r->pattern, name))
			continue;
		for (j = 0; j < r->ncmps; j++)
			if (!cmp_holds(&r->cmps[j], cmp(version, r->cmps[j].version)))
				return r;
	}
	return NULL;
}

/* One field into the digest, its length first so that fields cannot run into each other. */
static int digest_str(struct verify_hash *h, const char *s)
{
	uint64_t n = s ? strlen(s) + 1 : 0;
	int r = verify_hash_update(h, &n, sizeof(n));

	return r < 0 || !n ? r : verify_hash_update(h, s, n);
}

int verify_policy_digest(const struct verify_policy *p, uint8_t ret_digest[VERIFY_HASH_LEN])
{
	struct verify_hash *h = NULL;
	int r = verify_hash_new(&h);

	if (r < 0)
		return r;
	r = digest_str(h, "stork-policy-1");
	for (size_t i = 0; i < p->nrules && r == 0; i++) {
		const struct verify_policy_rule *u = &p->rules[i].pub;
		uint64_t head[3] = {u->kind, u->nkeys, u->threshold};

		/* The line's words say the pattern, the role, the versions and the key names;
		 * the key ids, what the named key files held. */
		r = verify_hash_update(h, head, sizeof(head));
		if (r == 0)
			r = digest_str(h, u->text);
		for (size_t k = 0; k < u->nkeys && r == 0; k++)
			r = digest_str(h, verify_key_id(u->keys[k]));
	}
	if (r == 0)
		r = verify_hash_final(h, ret_digest);
	verify_hash_free(h);
	return r;
}
