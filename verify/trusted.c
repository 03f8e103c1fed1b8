/* verify/trusted.c: the trusted state read through verify/trusted.h, for the repository writer.
 * Each function is a look at struct verify_client (verify/client.h) and nothing more: the
 * checks were made when the client loaded what it trusts. */
#include <errno.h>
#include <stdlib.h>

#include "verify/client.h"
#include "verify/trusted.h"
#include "verify/tuf.h"

void trusted_ignore_expiry(struct verify_client *c)
{
	c->check_expiry = false;
}

const struct meta *trusted_meta(const struct verify_client *c, enum meta_type type)
{
	switch (type) {
	case META_ROOT:
		return c->root;
	case META_TARGETS:
		return c->targets;
	case META_SNAPSHOT:
		return c->snapshot;
	case META_TIMESTAMP:
		return c->timestamp;
	}
	return NULL;
}

const struct meta_delegation *trusted_toprole(const struct verify_client *c, enum meta_toprole role)
{
	return &c->root->roles[role];
}

const struct meta_file *trusted_snapshot_entry(const struct verify_client *c, const char *name)
{
	return c->snapshot ? meta_find_file(c->snapshot, name) : NULL;
}

const struct meta_delegation *trusted_delegation(const struct verify_client *c, size_t i)
{
	return c->targets && i < c->targets->ndels ? &c->targets->dels[i] : NULL;
}

const struct meta_delegation *trusted_find_delegation(const struct verify_client *c,
						      const char *name)
{
	return c->targets ? meta_find_delegation(c->targets, name) : NULL;
}

int trusted_load_role(struct verify_client *c, const struct verify_source *src,
		      const struct meta_delegation *del, const struct meta **ret_m)
{
	const struct client_role *cr = NULL;
	int ret;

	if (!c->targets)
		return -ENOENT;
	ret = client_load_role(c, src, c->targets, del, &cr);
	if (ret < 0)
		return ret;
	*ret_m = cr->m;
	return 0;
}
