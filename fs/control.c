/* fs/control.c: central package control on the node (fs/README.md "Control lists"). After each
 * refresh (fsd_slices_reload, on the refresh thread), every slice whose policy has a `control`
 * line gets its group's list as the state in use signs it: verified with the slice's own policy
 * (whose keys it trusts for the group), fetched and checked against its signed hash. The list
 * that verified last is the slice's wanted list; a refusal or a mirror that cannot deliver the
 * list is logged and keeps the previous one. converge() is the one place a slice is then moved
 * to its wanted list.
 *
 * Locking: the refresh thread alone makes and replaces a slice's struct fsd_control; the
 * pointer and what it points to are read under slice_lock (fsd_control_json); a replaced one is
 * freed after the swap, under no lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/daemon.h"
#include "fs/install/install.h"
#include "verify/json.h"

struct fsd_control {
	char *group;
	struct verify_control_list *list; /* the last list that verified; NULL: none yet */
	char *role, *keyid;		  /* who signed it */
	uint8_t hash[VERIFY_HASH_LEN];	  /* its SHA-256, as signed */
	time_t verified;		  /* when it last verified */
	time_t checked;			  /* the last attempt */
	int err;			  /* 0, or the last attempt's failure */
	char detail[1024];		  /* its detail */
};

void fsd_control_free(struct fsd_control *c)
{
	if (!c)
		return;
	verify_control_list_free(c->list);
	free(c->group);
	free(c->role);
	free(c->keyid);
	free(c);
}

/* "hello, libfoo=1.2-1" (the first packages of l; "..." past len). */
static const char *wanted_text(const struct verify_control_list *l, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n && at + 4 < len; i++) {
		int n = snprintf(buf + at, len - at, "%s%s%s%s", i ? ", " : "", l->pkgs[i].name,
				 l->pkgs[i].version ? "=" : "",
				 l->pkgs[i].version ? l->pkgs[i].version : "");

		if (n < 0 || (size_t)n >= len - at) {
			snprintf(buf + (len > 4 ? len - 4 : 0), 4, "...");
			break;
		}
		at += (size_t)n;
	}
	return l->n ? buf : "none";
}

/* The one call site that moves slice s to its group's wanted list, after each refresh that
 * verified one (changed: it differs from the list verified before). Installing a list into a
 * slice is fs/install/'s (fs/install/install.h); until the slice side can take a wanted list,
 * the verified list is what the slice's status shows and the log tells when it changes. */
/* Move s to its group's list (fs_install_apply: resolve against s's policy, the newest
 * versions it accepts unless the list pins one, check that the trees merge, commit a
 * generation; nothing is written when the result is the current generation). Runs after every
 * refresh whose list verified, so that a new version of an unpinned package is installed too,
 * and a failed attempt is tried again at the next refresh. A failure keeps the slice's current
 * generation and is logged once per distinct detail. */
static void converge(struct fsd *d, struct fsd_slice *s, const struct verify_control_list *want,
		     bool changed)
{
	struct fs_install_slice sl = {
	    .store = d->store,
	    .repo = d->repo,
	    .repo_id = fs_repo_id(d->repo),
	    .dir = d->conf.slices,
	    .name = s->name,
	};
	struct store_gen *g = NULL;
	char text[2048], **wanted;
	uint64_t before = 0;
	size_t n = 0;
	int r = -ENOMEM, lockfd = -1;

	if (changed)
		fsd_log(d, "slice %s: wants %zu %s of group %s (list version %llu): %s", s->name,
			want->n, want->n == 1 ? "package" : "packages", want->group,
			(unsigned long long)want->version, wanted_text(want, text, sizeof(text)));
	wanted = calloc(want->n ? want->n : 1, sizeof(*wanted));
	for (; wanted && n < want->n; n++) {
		const struct verify_control_pkg *p = &want->pkgs[n];

		size_t len = strlen(p->name) + (p->version ? strlen(p->version) + 1 : 0) + 1;

		if (!(wanted[n] = malloc(len)))
			goto out;
		snprintf(wanted[n], len, p->version ? "%s=%s" : "%s", p->name, p->version);
	}
	if (!wanted)
		goto out;
	(void)store_gen_current(d->store, sl.repo_id, s->name, &before);
	/* Take turns with `stork install` on this slice (fs_install_lock). */
	r = fs_install_lock(&sl, &lockfd);
	if (r == 0)
		r = fs_install_apply(&sl, (const char *const *)wanted, n, FS_INSTALL_UPGRADE, &g);
	if (lockfd >= 0)
		fs_install_unlock(lockfd);
out:
	if (r == 0) {
		s->converge_err[0] = '\0';
		if (g->number != before)
			fsd_log(d,
				"slice %s: now at generation %llu (%zu %s) following group %s list "
				"version %llu",
				s->name, (unsigned long long)g->number, g->npkgs,
				g->npkgs == 1 ? "package" : "packages", want->group,
				(unsigned long long)want->version);
	} else {
		snprintf(text, sizeof(text), "%s",
			 stork_error_detail()[0] ? stork_error_detail() : storkfs_strerror(r));
		if (strcmp(text, s->converge_err) != 0)
			fsd_log(d,
				"slice %s: cannot install group %s's list version %llu: %s; the "
				"slice stays at generation %llu",
				s->name, want->group, (unsigned long long)want->version, text,
				(unsigned long long)before);
		snprintf(s->converge_err, sizeof(s->converge_err), "%s", text);
	}
	store_gen_free(g);
	for (size_t i = 0; wanted && i < n; i++)
		free(wanted[i]);
	free(wanted);
}

/* The log line of an attempt that failed, once per distinct failure. */
static void tell_failure(struct fsd *d, const struct fsd_slice *s, const struct fsd_control *c)
{
	char keep[160];

	if (c->list)
		snprintf(keep, sizeof(keep), "keeping list version %llu",
			 (unsigned long long)c->list->version);
	else
		snprintf(keep, sizeof(keep), "no wanted list yet");
	if (c->err == STORK_EBADSIG)
		fsd_log(d, "slice %s: %s; %s", s->name, c->detail, keep);
	else
		fsd_log(d, "slice %s: control list of group %s not updated: %s; %s", s->name,
			c->group, c->detail, keep);
}

void fsd_slice_control(struct fsd *d, struct fsd_slice *s)
{
	const struct verify_policy_rule *rule = s->pol ? verify_policy_control(s->pol) : NULL;
	struct fsd_control *prev = s->control, *c = NULL;
	struct verify_control_list *l = NULL;
	struct verify_target t = {0};
	bool changed, same = false;
	int r;

	if (!rule) {
		if (prev)
			fsd_log(d, "slice %s: follows no group any more (was %s)", s->name,
				prev->group);
		goto swap;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->group = strdup(rule->pattern))) {
		fsd_log(d, "slice %s: control list of group %s: out of memory", s->name,
			rule->pattern);
		fsd_control_free(c);
		return; /* the previous state stays */
	}
	c->checked = time(NULL);
	same = prev && prev->list && strcmp(prev->group, c->group) == 0;
	r = fs_repo_control(d->repo, s->pol, same ? prev->hash : NULL, &l, &t);
	if (r >= 0) {
		c->list = l; /* NULL when r == 1: the list held (below) is still the one signed */
		c->role = t.role;
		c->keyid = t.keyid;
		t.role = t.keyid = NULL;
		memcpy(c->hash, t.hash, VERIFY_HASH_LEN);
		c->verified = c->checked;
	} else {
		c->err = r;
		snprintf(c->detail, sizeof(c->detail), "%s",
			 stork_error_detail()[0] ? stork_error_detail() : storkfs_strerror(r));
	}
	verify_target_fini(&t);
swap:
	pthread_mutex_lock(&d->slice_lock);
	if (c && !c->list && same) {
		/* Still signed (r == 1): the same list. A failure keeps the one verified before. */
		c->list = prev->list;
		prev->list = NULL;
		if (c->err) {
			free(c->role);
			free(c->keyid);
			c->role = prev->role;
			c->keyid = prev->keyid;
			prev->role = prev->keyid = NULL;
			memcpy(c->hash, prev->hash, VERIFY_HASH_LEN);
			c->verified = prev->verified;
		}
	}
	s->control = c;
	pthread_mutex_unlock(&d->slice_lock);
	if (c && c->err && (!prev || prev->err != c->err || strcmp(prev->detail, c->detail) != 0))
		tell_failure(d, s, c);
	if (c && !c->err) {
		changed = !same || memcmp(prev->hash, c->hash, VERIFY_HASH_LEN) != 0;
		if (changed)
			fsd_log(d,
				"slice %s: control list of group %s: version %llu verified (role "
				"%s, key %.16s)",
				s->name, c->group, (unsigned long long)c->list->version, c->role,
				c->keyid);
		converge(d, s, c->list, changed);
	}
	fsd_control_free(prev);
}

/* {"name": NAME[, "version": VERSION]} for each wanted package. */
static struct verify_json *wanted_json(const struct verify_control_list *l)
{
	struct verify_json *a = verify_json_array();
	int r = a ? 0 : -ENOMEM;

	for (size_t i = 0; l && r == 0 && i < l->n; i++) {
		struct verify_json *p = verify_json_object();

		r = p ? verify_json_set_str(p, "name", l->pkgs[i].name) : -ENOMEM;
		if (r == 0 && l->pkgs[i].version)
			r = verify_json_set_str(p, "version", l->pkgs[i].version);
		if (r == 0)
			r = verify_json_append(a, p);
		else
			verify_json_free(p);
	}
	if (r < 0) {
		verify_json_free(a);
		return NULL;
	}
	return a;
}

struct verify_json *fsd_control_json(const struct fsd_control *c)
{
	struct verify_json *o;
	int r = 0;

	if (!c)
		return NULL;
	o = verify_json_object();
	if (!o)
		return NULL;
	r |= verify_json_set_str(o, "group", c->group);
	if (c->list) {
		r |= verify_json_set_int(o, "list_version", (int64_t)c->list->version);
		r |= verify_json_set_str(o, "role", c->role ? c->role : "");
		r |= verify_json_set_str(o, "key", c->keyid ? c->keyid : "");
		r |= verify_json_set_int(o, "verified_at", (int64_t)c->verified);
	} else {
		r |= verify_json_set_null(o, "list_version");
	}
	r |= verify_json_set(o, "wanted", wanted_json(c->list));
	r |= verify_json_set_int(o, "checked_at", (int64_t)c->checked);
	if (c->err)
		r |= verify_json_set_text(o, "error", c->detail);
	if (r) {
		verify_json_free(o);
		return NULL;
	}
	return o;
}
