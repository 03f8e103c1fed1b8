/* verify/history.c: auditing older versions of metadata files (verify_client_audit_file):
 * `stork verify` walks every file of a repository, and an old snapshot or an old version of a
 * delegated role must still carry the signatures of the keys that were trusted for it then,
 * before a key rotation, a publisher's rekey or a revocation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/client.h"
#include "verify/error.h"
#include "verify/tuf.h"

/* Who signs role `name`: a top-level role listed in root, or a delegation found in the
 * top-level targets or in a delegated role loaded since the last refresh. */
static int find_signer(const struct verify_client *c, const char *name, enum meta_type *ret_type,
		       const struct meta_keyring **ret_keys, const struct meta_delegation **ret_del)
{
	static const enum meta_type types[META_NROLES] = {META_ROOT, META_TARGETS, META_SNAPSHOT,
							  META_TIMESTAMP};
	const struct meta_delegation *d;

	for (int i = 0; i < META_NROLES; i++) {
		if (strcmp(name, meta_role_names[i]) == 0) {
			*ret_type = types[i];
			*ret_keys = &c->root->keys;
			*ret_del = &c->root->roles[i];
			return 0;
		}
	}
	if (c->targets && (d = meta_find_delegation(c->targets, name))) {
		*ret_type = META_TARGETS;
		*ret_keys = &c->targets->keys;
		*ret_del = d;
		return 0;
	}
	for (size_t i = 0; i < c->nroles; i++) {
		const struct meta *m = c->roles[i].m;

		if (m && (d = meta_find_delegation(m, name))) {
			*ret_type = META_TARGETS;
			*ret_keys = &m->keys;
			*ret_del = d;
			return 0;
		}
	}
	return -ENOENT;
}

/* Whether m (version v of role `role`) is signed by a threshold of the keys some metadata h
 * gives that role: a root for a top-level role, a delegating role for a delegated one, or, for
 * the placeholder `stork repo revoke` leaves, a top-level targets that marks version v of the
 * role revoked, together with the targets keys of a root. @return 0; STORK_EBADSIG; -ENOENT
 * when h says nothing about the role. */
static int audit_against(const struct verify_client *c, const struct meta *m, const char *role,
			 int top, const struct meta *h)
{
	const struct meta_delegation *d;
	json_t *rv;

	if (top >= 0)
		return h->type == META_ROOT
			   ? meta_check_sigs(m, role, &h->keys, &h->roles[top], NULL)
			   : -ENOENT;
	if (h->type != META_TARGETS)
		return -ENOENT;
	d = meta_find_delegation(h, role);
	if (d)
		return meta_check_sigs(m, role, &h->keys, d, NULL);
	rv = json_object_get(json_object_get(h->signed_json, META_REVOKED_FIELD), role);
	if (!json_is_integer(rv) || json_integer_value(rv) < 0 ||
	    (uint64_t)json_integer_value(rv) != m->version)
		return -ENOENT;
	/* a revocation placeholder: signed with the targets key of some trusted root */
	if (meta_check_sigs(m, role, &c->root->keys, &c->root->roles[META_ROLE_TARGETS], NULL) == 0)
		return 0;
	for (size_t i = 0; i < c->nhist; i++)
		if (c->hist[i]->type == META_ROOT &&
		    meta_check_sigs(m, role, &c->hist[i]->keys,
				    &c->hist[i]->roles[META_ROLE_TARGETS], NULL) == 0)
			return 0;
	return STORK_EBADSIG;
}

int verify_client_audit_file(struct verify_client *c, const char *file, const uint8_t *buf,
			     size_t len)
{
	const struct meta_delegation *del = NULL;
	const struct meta_keyring *keys = NULL;
	const char *base = strrchr(file, '/'), *dot;
	enum meta_type type = META_TARGETS;
	char detail[1024] = "";
	struct meta *m = NULL, **hist;
	char *role = NULL;
	int r, top = -1;

	base = base ? base + 1 : file;
	dot = strchr(base, '.');
	if (!dot || strlen(dot) <= 6 || strcmp(base + strlen(base) - 5, ".json")) {
		stork_errorf("%s: not a versioned metadata file name (N.ROLE.json)", file);
		return STORK_EFORMAT;
	}
	role = strndup(dot + 1, strlen(dot + 1) - 5);
	if (!role)
		return -ENOMEM;
	for (int i = 0; i < META_NROLES; i++)
		if (strcmp(role, meta_role_names[i]) == 0)
			top = i;
	if (top == META_ROLE_ROOT && len == c->pinned_len && !memcmp(buf, c->pinned_raw, len)) {
		r = meta_parse(buf, len, file, META_ROOT, &m); /* the pinned root itself */
		goto trusted;
	}
	if (find_signer(c, role, &type, &keys, &del) < 0) {
		keys = NULL;
		snprintf(detail, sizeof(detail),
			 "%s: no trusted metadata delegates a role named \"%s\"", file, role);
	}
	r = meta_parse(buf, len, file, type, &m);
	if (r < 0)
		goto out;
	if (keys) {
		r = meta_check_sigs(m, role, keys, del, NULL);
		if (r == 0)
			goto trusted;
		snprintf(detail, sizeof(detail), "%s", stork_error_detail());
	}
	/* Signed before a rotation, a rekey or a revocation: the keys of an older root or of an
	 * older version of a delegating role audited before may sign it. */
	for (size_t i = 0; i < c->nhist; i++) {
		if (audit_against(c, m, role, top, c->hist[i]) == 0) {
			r = 0;
			goto trusted;
		}
	}
	if (top < 0 && (audit_against(c, m, role, top, c->targets) == 0)) {
		r = 0;
		goto trusted;
	}
	stork_errorf("%s", detail);
	r = keys ? STORK_EBADSIG : -ENOENT;
	goto out;
trusted:
	if (r < 0)
		goto out;
	/* Remember what may have signed older files of other roles. */
	if (m->type == META_ROOT || (m->type == META_TARGETS && (m->ndels || top >= 0))) {
		hist = realloc(c->hist, (c->nhist + 1) * sizeof(*hist));
		if (!hist) {
			r = -ENOMEM;
			goto out;
		}
		c->hist = hist;
		c->hist[c->nhist++] = m;
		m = NULL;
	}
out:
	meta_free(m);
	free(role);
	return r;
}
