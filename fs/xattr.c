/* fs/xattr.c: the extended attributes of the tree (fs/README.md "Extended attributes"): where
 * an entry comes from and who signed it, the mount's status, and what a slice's subtree may
 * tell (only about the slice), and the FUSE callbacks that answer with them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/daemon.h"
#include "verify/json.h"

#define XA_HASH	      "user.storkfs.hash"
#define XA_SIGNER     "user.storkfs.signer"
#define XA_CACHED     "user.storkfs.cached"
#define XA_REPOSITORY "user.storkfs.repository"
#define XA_MIRRORS    "user.storkfs.mirrors"
#define XA_SOURCE     "user.storkfs.source"
#define XA_METADATA   "user.storkfs.metadata"
#define XA_STATUS     "user.storkfs.status"

/* ------------------------------------------------------------------------------------------ */
/* Extended attributes: where an entry comes from and who signed it. */

/* fsd_xattr_value in a slice's subtree: its root's status is the slice's own; its files' hash and
 * signer. Nothing about the node's other slices, mirrors or store. */
static int slice_xattr(struct fsd *d, const struct fsd_inode *n, const char *name, char *buf,
		       size_t cap)
{
	struct verify_entry ebuf;
	const struct verify_entry *e = fsd_node_entry(n, &ebuf);
	struct verify_json *o;
	char *json = NULL;
	int len;

	if (n->kind == FSD_N_SLICE && strcmp(name, XA_STATUS) == 0) {
		o = fsd_slice_json(d, n->slice);
		if (!o || verify_json_dump(o, &json) < 0) {
			verify_json_free(o);
			return o ? -ENOMEM : -ENOENT;
		}
		verify_json_free(o);
		len = snprintf(buf, cap, "%s\n", json);
		free(json);
		return (size_t)len >= cap ? -E2BIG : len;
	}
	if (e && e->type == VERIFY_FILE && strcmp(name, XA_HASH) == 0) {
		verify_hex(e->hash, VERIFY_HASH_LEN, buf);
		return 2 * VERIFY_HASH_LEN;
	}
	if (e && strcmp(name, XA_SIGNER) == 0)
		return fsd_signer(d, n->vt, buf, cap);
	return -ENODATA;
}

/* The value of attribute `name` of n into buf (size cap). @return its length; -ENODATA. */
int fsd_xattr_value(struct fsd *d, const struct fsd_inode *n, const char *name, char *buf,
		    size_t cap)
{
	struct verify_entry ebuf;
	const struct verify_entry *e = fsd_node_entry(n, &ebuf);
	struct store_objinfo info;
	int len = -ENODATA;

	/* A slice's root and directories tell only about the slice (fs/README.md "Slices"). A
	 * file is one inode for every view that reaches it (its pages are cached once), so it
	 * answers the same in every view, whichever looked it up last. */
	if (n->slice && n->kind != FSD_N_ENTRY)
		return slice_xattr(d, n, name, buf, cap);
	if (n->kind == FSD_N_ROOT && strcmp(name, XA_STATUS) == 0) {
		char *json = fsd_status_json(d);

		if (!json)
			return -ENOMEM;
		len = snprintf(buf, cap, "%s\n", json);
		free(json);
		if ((size_t)len >= cap)
			len = -E2BIG;
	} else if (n->kind == FSD_N_ROOT && strcmp(name, XA_METADATA) == 0) {
		struct fsd_role roles[FSD_NROLES];
		size_t used = 0;

		pthread_mutex_lock(&d->status_lock);
		memcpy(roles, d->refresh.roles, sizeof(roles));
		pthread_mutex_unlock(&d->status_lock);
		buf[0] = '\0';
		for (size_t i = 0; i < FSD_NROLES; i++) {
			struct tm tm;
			char when[32] = "?";

			if (!roles[i].known)
				continue;
			if (gmtime_r(&roles[i].expires, &tm))
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			used += (size_t)snprintf(buf + used, cap - used, "%s %" PRIu64 " %s\n",
						 fsd_roles[i], roles[i].version, when);
			if (used >= cap)
				return -E2BIG;
		}
		len = (int)used;
	} else if (e && e->type == VERIFY_FILE && strcmp(name, XA_SOURCE) == 0) {
		fsd_source(d, e->hash, buf, cap);
		len = (int)strlen(buf);
	} else if (n->kind == FSD_N_ROOT && strcmp(name, XA_REPOSITORY) == 0) {
		len = snprintf(buf, cap, "%s", d->repo_id);
	} else if (n->kind == FSD_N_ROOT && strcmp(name, XA_MIRRORS) == 0) {
		size_t used = 0;

		buf[0] = '\0';
		for (size_t i = 0; i < d->nmirrors && used < cap; i++) {
			char shown[1024];

			used +=
			    (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "\n" : "",
					     fetch_url_shown(d->mirrors[i], shown, sizeof(shown)));
		}
		len = (int)(used < cap ? used : cap - 1);
	} else if (e && e->type == VERIFY_FILE && strcmp(name, XA_HASH) == 0) {
		verify_hex(e->hash, VERIFY_HASH_LEN, buf);
		len = 2 * VERIFY_HASH_LEN;
	} else if (e && e->type == VERIFY_FILE && strcmp(name, XA_CACHED) == 0) {
		int cached = 1;

		/* A chunked file: all of its chunks (store/README.md "Chunks"). */
		for (size_t c = 0; cached && c < (e->nchunks ? e->nchunks : 1); c++)
			cached =
			    store_object_info(d->store, e->nchunks ? e->chunks[c].hash : e->hash,
					      &info) == 0;
		len = snprintf(buf, cap, "%d", cached);
	} else if (e && strcmp(name, XA_SIGNER) == 0) {
		len = fsd_signer(d, n->vt, buf, cap);
	}
	return len;
}

size_t fsd_xattr_names(struct fsd *d, const struct fsd_inode *n, char *buf)
{
	struct verify_entry ebuf;
	const struct verify_entry *e = fsd_node_entry(n, &ebuf);
	size_t len = 0;

#define ADD(s)                                                                                     \
	do {                                                                                       \
		memcpy(buf + len, s, sizeof(s));                                                   \
		len += sizeof(s);                                                                  \
	} while (0)
	if (n->slice && n->kind != FSD_N_ENTRY) { /* as slice_xattr */
		if (n->kind == FSD_N_SLICE)
			ADD(XA_STATUS);
		if (e && e->type == VERIFY_FILE)
			ADD(XA_HASH);
		if (e)
			ADD(XA_SIGNER);
		return len;
	}
	if (n->kind == FSD_N_ROOT) {
		ADD(XA_REPOSITORY);
		ADD(XA_MIRRORS);
		ADD(XA_METADATA);
		ADD(XA_STATUS);
	}
	if (e && e->type == VERIFY_FILE) {
		ADD(XA_HASH);
		ADD(XA_CACHED);
		ADD(XA_SOURCE);
	}
	if (e)
		ADD(XA_SIGNER);
#undef ADD
	return len;
}

/* ---- The FUSE callbacks (in fs/ops.c's table) ---- */

void fsd_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fsd *d = fuse_req_userdata(req);
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);
	char buf[16384];
	int len;

	len = n ? fsd_xattr_value(d, n, name, buf, sizeof(buf)) : -ESTALE;
	fsd_inodes_put(&d->inodes, n);
	if (len < 0)
		fuse_reply_err(req, -len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)len);
}

void fsd_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fsd *d = fuse_req_userdata(req);
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);
	char buf[512];
	size_t len = 0;

	if (n)
		len = fsd_xattr_names(d, n, buf);
	fsd_inodes_put(&d->inodes, n);
	if (!n)
		fuse_reply_err(req, ESTALE);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}
