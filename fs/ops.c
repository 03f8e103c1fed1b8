/* fs/ops.c: the FUSE low-level callbacks. Each replies exactly once; below them functions
 * return 0 / -errno / STORK_E*, and the code becomes an errno here, once (fsd_errno).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fs/daemon.h"
#include "verify/json.h"

/* A file handle is the store object's descriptor, or (this bit set) a chunked file's struct
 * fsd_chunked (fs/chunk.c): a pointer never has the top bit, a descriptor never either. */
#define FH_CHUNKED (1ULL << 63)
/* An open the kernel serves from the store object itself (fs/passthrough.c): no descriptor. */
#define FH_PASSTHROUGH (1ULL << 62)

static struct fsd *fsd_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Verification and transport failures are EIO to readers: the details go to the log. Stale
 * metadata past max_stale is EKEYEXPIRED (fsd_serving), which passes through as itself. */
static int fsd_errno(int err)
{
	if (err >= 0)
		return 0;
	if (err <= -20000)
		return EIO;
	/* What a reader can act on passes through; every other failure (a transport's
	 * ETIMEDOUT, ECONNREFUSED, EHOSTDOWN, ...) is the object's: EIO. */
	switch (-err) {
	case ENOENT:
	case ENOTDIR:
	case EISDIR:
	case EACCES:
	case EPERM:
	case EROFS:
	case EINVAL:
	case ENOMEM:
	case ENOSPC:
	case EDQUOT:
	case EMFILE:
	case ENFILE:
	case ENAMETOOLONG:
	case ERANGE:
	case ENODATA:
	case ENOTSUP:
	case E2BIG:
	case EKEYEXPIRED:
	case EINTR:
	case ELOOP:
	case ENOSYS:
	case ESTALE: /* an open of a replaced version's file: the kernel looks the path up again */
		return -err;
	default:
		return EIO;
	}
}

/* "a/b", or b alone when a is empty. NULL on -ENOMEM. */
static char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), len = la + lb + 2;
	char *p = malloc(len);

	if (!p)
		return NULL;
	if (la)
		snprintf(p, len, "%s/%s", a, b);
	else
		snprintf(p, len, "%s", b);
	return p;
}

static void note_failure(struct fsd *d, const char *what, int err);

/* A version directory that could not be loaded (its manifest). A version that a refresh
 * replaced or dropped is no failure: it is not there. @return err (-EIO for a manifest no
 * mirror has); -ENOENT for a replaced version. */
static int note_tree_failure(struct fsd *d, const struct fsd_inode *n, int err)
{
	char what[600];

	if (err == -ESTALE)
		return -ENOENT;
	snprintf(what, sizeof(what), "%s %s", n->pkg, n->ver);
	note_failure(d, what, err);
	/* A signed manifest no mirror has is a failure of this version, not an empty directory
	 * (glibc's readdir takes ENOENT for the end of the listing): EIO. */
	return err == -ENOENT ? -EIO : err;
}

/* The tree of version directory n, as the catalog signs it now; -ENOENT when n stands for a
 * manifest a refresh has replaced (someone sits in the old directory) or the version is gone:
 * nothing new is looked up, listed or opened in a replaced version (fs/README.md). */
static int ver_tree(struct fsd *d, const struct fsd_inode *n, struct fsd_vtree **ret_t)
{
	int ret = fsd_vtree_in(d, n->slice, n->pkg, n->ver, ret_t);

	if (ret < 0)
		return note_tree_failure(d, n, ret);
	if (memcmp((*ret_t)->hash, n->vhash, VERIFY_HASH_LEN) != 0) {
		fsd_vtree_unref(*ret_t);
		*ret_t = NULL;
		return -ENOENT;
	}
	return 0;
}

/* Whether entry n's tree is the one the catalog signs now. An installed root's tree is a
 * generation, whole for whoever reached it (fs/installed.c): always current. */
static bool entry_current(struct fsd *d, const struct fsd_inode *n)
{
	if (n->vt->gen)
		return true;
	return fsd_current_in(d, n->slice, n->pkg, n->ver, n->vt->hash);
}

/* In a slice: a package (ver NULL) or version that the node's catalog shows but the slice's
 * policy does not accept is a refusal of that slice's. */
static void note_refusal(struct fsd *d, const char *slice, const char *pkg, const char *ver)
{
	struct fsd_catalog *node = fsd_catalog(d);
	const struct fsd_cat_pkg *p = fsd_catalog_pkg(node, pkg);

	if (p && (!ver || fsd_catalog_ver(p, ver)))
		fsd_slice_count(d, slice, FSD_SC_REFUSED, 1);
	fsd_catalog_unref(node);
}

/* The child `name` of parent: its node (with a kernel lookup counted) and entry reply. */
static int lookup_child(struct fsd *d, const struct fsd_inode *parent, const char *name,
			struct fuse_entry_param *ret_e)
{
	struct fsd_inode proto = {.idx = -1}, *n = NULL;
	struct fsd_catalog *cat = NULL;
	const struct fsd_cat_pkg *p;
	struct fsd_vtree *vt = NULL;
	char *path = NULL, *epath = NULL;
	int ret;

	if (!*name || strchr(name, '/'))
		return -ENOENT;
	ret = fsd_serving(d);
	if (ret < 0)
		return ret;
	proto.slice = parent->slice;
	switch (parent->kind) {
	case FSD_N_ROOT:
		if (d->conf.slices && strcmp(name, ".slices") == 0) {
			proto.kind = FSD_N_SLICES;
			break;
		}
		/* fall through */
	case FSD_N_SLICE:
		if (parent->kind == FSD_N_SLICE && strcmp(name, "root") == 0) {
			ret = fsd_slice_exists(d, parent->slice)
				  ? fsd_installed(d, parent->slice, &vt)
				  : -ENOENT;
			if (ret < 0 && ret != -ENOENT)
				note_failure(d, "the installed root", ret);
			if (ret < 0)
				goto out;
			proto.kind = FSD_N_IROOT;
			proto.vt = vt;
			proto.idx = (long)fsd_vtree_n(vt);
			proto.pkg = vt->name;
			proto.ver = vt->version;
			memcpy(proto.vhash, vt->hash, VERIFY_HASH_LEN);
			break;
		}
		cat = fsd_catalog_of(d, parent->slice);
		ret = cat && fsd_catalog_pkg(cat, name) ? 0 : -ENOENT;
		if (ret < 0 && cat && parent->slice)
			note_refusal(d, parent->slice, name, NULL);
		proto.kind = FSD_N_PKG;
		proto.pkg = (char *)name;
		break;
	case FSD_N_SLICES:
		ret = fsd_slice_exists(d, name) ? 0 : -ENOENT;
		proto.kind = FSD_N_SLICE;
		proto.slice = (char *)name;
		break;
	case FSD_N_PKG:
		cat = fsd_catalog_of(d, parent->slice);
		if (!cat) {
			ret = -ENOENT;
			break;
		}
		p = fsd_catalog_pkg(cat, parent->pkg);
		proto.pkg = parent->pkg;
		if (strcmp(name, "latest") == 0) {
			ret = p && p->n ? 0 : -ENOENT;
			proto.kind = FSD_N_LATEST;
		} else {
			const struct fsd_cat_ver *cv = fsd_catalog_ver(p, name);

			ret = cv ? 0 : -ENOENT;
			if (!cv && p && parent->slice)
				note_refusal(d, parent->slice, parent->pkg, name);
			proto.kind = FSD_N_VER;
			proto.ver = (char *)name;
			if (cv)
				memcpy(proto.vhash, cv->hash, VERIFY_HASH_LEN);
		}
		break;
	case FSD_N_IROOT:
	case FSD_N_VER:
	case FSD_N_ENTRY:
		if (parent->kind == FSD_N_IROOT) {
			vt = fsd_vtree_ref(parent->vt);
			epath = strdup(name);
		} else if (parent->kind == FSD_N_VER) {
			ret = ver_tree(d, parent, &vt);
			if (ret < 0)
				goto out;
			epath = strdup(name);
		} else {
			vt = fsd_vtree_ref(parent->vt);
			if (store_tree_type(vt->ix, (size_t)parent->idx) != VERIFY_DIR) {
				ret = -ENOTDIR;
				goto out;
			}
			if (!entry_current(d, parent)) {
				ret = -ENOENT; /* a directory of a replaced version */
				goto out;
			}
			epath = path_join(store_tree_path(vt->ix, (size_t)parent->idx), name);
		}
		if (!epath) {
			ret = -ENOMEM;
			goto out;
		}
		proto.kind = FSD_N_ENTRY;
		proto.pkg = parent->pkg;
		proto.ver = parent->ver;
		proto.vt = vt;
		memcpy(proto.vhash, vt->hash, VERIFY_HASH_LEN);
		proto.idx = fsd_vtree_find(vt, epath);
		ret = proto.idx >= 0 && proto.idx < (long)fsd_vtree_n(vt) ? 0 : -ENOENT;
		break;
	default:
		ret = -ENOTDIR;
	}
	if (ret < 0)
		goto out;
	/* Above the versions' entries a node is numbered by its path; an entry by its tree. */
	if (proto.kind != FSD_N_ENTRY && !(path = path_join(parent->path, name))) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fsd_inodes_get(&d->inodes, path, &proto, true, &n);
	if (ret < 0)
		goto out;
	memset(ret_e, 0, sizeof(*ret_e));
	ret = fsd_stat(d, n, &ret_e->attr);
	if (ret < 0) {
		fsd_inodes_forget(&d->inodes, n->ino, 1);
		goto out;
	}
	ret_e->ino = n->ino;
	ret_e->attr_timeout = ret_e->entry_timeout = fsd_timeout(d, n);
out:
	fsd_inodes_put(&d->inodes, n);
	fsd_vtree_unref(vt);
	fsd_catalog_unref(cat);
	free(epath);
	free(path);
	return ret;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsd *d = fsd_of(req);
	struct fsd_inode *p = fsd_inodes_ref(&d->inodes, parent);
	struct fuse_entry_param e;
	int ret;

	ret = p ? lookup_child(d, p, name, &e) : -ESTALE;
	if (ret == -ENOENT && (p->kind == FSD_N_IROOT || (p->kind == FSD_N_ENTRY && p->vt->gen))) {
		/* A generation's tree never changes under its numbers: the kernel may remember
		 * what is not there (a program's search paths miss a lot). */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FSD_IMMUTABLE_TIMEOUT;
		ret = 0;
	}
	fsd_inodes_put(&d->inodes, p);
	if (ret < 0)
		fuse_reply_err(req, fsd_errno(ret));
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fsd_inodes_forget(&fsd_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fsd *d = fsd_of(req);

	for (size_t i = 0; i < count; i++)
		fsd_inodes_forget(&d->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);
	struct stat st;
	int ret;

	ret = n ? fsd_stat(d, n, &st) : -ESTALE;
	if (ret < 0)
		fuse_reply_err(req, fsd_errno(ret));
	else
		fuse_reply_attr(req, &st, fsd_timeout(d, n));
	fsd_inodes_put(&d->inodes, n);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fsd *d = fsd_of(req);
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);
	struct fsd_catalog *cat = NULL;
	const struct fsd_cat_pkg *p;
	const struct verify_entry *e;
	struct verify_entry ebuf;

	if (!n) {
		fuse_reply_err(req, ESTALE);
	} else if (n->kind == FSD_N_LATEST) {
		cat = fsd_catalog_of(d, n->slice);
		p = cat ? fsd_catalog_pkg(cat, n->pkg) : NULL;
		if (p && p->n)
			fuse_reply_readlink(req, p->vers[p->n - 1].version);
		else
			fuse_reply_err(req, ENOENT);
	} else if ((e = fsd_node_entry(n, &ebuf)) && e->type == VERIFY_SYMLINK) {
		fuse_reply_readlink(req, e->target);
	} else {
		fuse_reply_err(req, EINVAL);
	}
	fsd_catalog_unref(cat);
	fsd_inodes_put(&d->inodes, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Files */

static void note_failure(struct fsd *d, const char *what, int err)
{
	FSD_COUNT(d, errors, 1);
	if (err == -ETIMEDOUT)
		FSD_COUNT(d, timeouts, 1);
	char text[1200];

	fsd_log(d, "%s: %s", what, stork_error_text(NULL, err, text, sizeof(text)));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);
	const struct verify_entry *e;
	struct fsd_chunked *ch = NULL;
	struct verify_entry ebuf;
	bool fetched = false;
	int32_t backing = 0;
	char what[1024];
	int fd = -1, ret;

	if (!n) {
		ret = -ESTALE;
		goto out;
	}
	if (n->kind != FSD_N_ENTRY) {
		ret = -EISDIR;
		goto out;
	}
	e = fsd_node_entry(n, &ebuf);
	if (!e || e->type == VERIFY_DIR) {
		ret = -EISDIR;
		goto out;
	}
	if (e->type != VERIFY_FILE) {
		ret = -ELOOP;
		goto out;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		ret = -EROFS;
		goto out;
	}
	/* Stale past max_stale: no new open (one already open keeps reading: its bytes were
	 * verified when it opened). Logged by the refresh thread, not per open. */
	ret = fsd_serving(d);
	if (ret < 0)
		goto out;
	/* A file of a version a refresh replaced or dropped: what the kernel cached of the old
	 * tree is not opened again (one already open keeps reading: fs/README.md). ESTALE makes
	 * the kernel look the path up once more: the new version's file, or nothing. */
	if (!entry_current(d, n)) {
		ret = -ESTALE;
		goto out;
	}
	snprintf(what, sizeof(what), "%s %s: %s", n->pkg, n->ver, e->path);
	/* Stored in chunks, and whole too since a whole read (fs/whole.c): open it as any. */
	if (e->nchunks && fsd_whole_open(d, e, what, &fd) == 0) {
		FSD_COUNT(d, hits, 1);
		goto stored;
	}
	if (e->nchunks) {
		/* The same bytes stored whole elsewhere share the inode; while the kernel reads
		 * that object for it, this open must too (fs/passthrough.c). */
		backing = fsd_pt_open(d, ino, -1);
		if (backing < 0) {
			ret = backing;
			backing = 0;
			goto out;
		}
		if (backing > 0) {
			FSD_COUNT(d, opens, 1);
			FSD_COUNT(d, pt_opens, 1);
			if (n->slice) {
				fsd_slice_count(d, n->slice, FSD_SC_OPENS, 1);
				fsd_slice_count(d, n->slice, FSD_SC_BYTES, e->size);
			}
			fi->fh = FH_PASSTHROUGH;
			fi->noflush = 1;
			goto out;
		}
		/* Stored by the piece: each read fetches the chunks it touches (fs/chunk.c). */
		ret = fsd_chunked_open(e, what, n->slice, &ch);
		if (ret < 0) {
			fsd_pt_close(d, ino, false);
			goto out;
		}
		FSD_COUNT(d, opens, 1);
		FSD_COUNT(d, hits, 1); /* nothing to fetch to open it */
		if (n->slice)
			fsd_slice_count(d, n->slice, FSD_SC_OPENS, 1);
		fi->fh = (uint64_t)(uintptr_t)ch | FH_CHUNKED;
		fi->keep_cache = 1;
		fi->noflush = 1;
		goto out;
	}
	ret = fsd_object_open(d, n->vt->gen ? NULL : n->vt, n->idx, e, what, &fd, &fetched, true);
	if (ret < 0) {
		char line[1100];

		snprintf(line, sizeof(line), "open %s", what);
		note_failure(d, line, ret);
		/* No mirror delivered it: not "no such file" to the reader; nor is a full
		 * store "no space" to a read-only open (the log says ENOSPC and the store). */
		if (ret == -ENOENT || ret == -ENOSPC || ret == -EDQUOT)
			ret = -EIO;
		goto out;
	}
stored:
	FSD_COUNT(d, opens, 1);
	if (n->slice) {
		fsd_slice_count(d, n->slice, FSD_SC_OPENS, 1);
		if (fetched)
			fsd_slice_count(d, n->slice, FSD_SC_FETCHED, 1);
	}
	fi->noflush = 1;
	backing = fsd_pt_open(d, ino, fd);
	if (backing < 0) {
		ret = backing;
		backing = 0;
		close(fd);
		goto out;
	}
	if (backing > 0) {
		/* The kernel reads the object itself: its pages are the file's only cache (the
		 * kernel takes no page cache flag with passthrough), and the daemon sees no read
		 * (a slice's bytes_read counts the file at its open). */
		close(fd);
		fd = -1;
		fi->fh = FH_PASSTHROUGH;
		FSD_COUNT(d, pt_opens, 1);
		if (n->slice)
			fsd_slice_count(d, n->slice, FSD_SC_BYTES, e->size);
		goto out;
	}
	/* The kernel caches what it reads through this inode: the store object's own pages
	 * (from the hash at its first open, or a fetch) would be a second copy (fs/README.md
	 * "Memory"). */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	fi->fh = (uint64_t)fd;
	fi->keep_cache = 1; /* the content behind this inode never changes */
out:
	fsd_inodes_put(&d->inodes, n);
	if (ret < 0) {
		fuse_reply_err(req, fsd_errno(ret));
	} else if (fsd_pt_reply_open(req, fi, backing) != 0) {
		/* The open was interrupted: nobody will release it. */
		if (ch)
			fsd_chunked_free(ch);
		else if (fd >= 0)
			close(fd);
		fsd_pt_close(d, ino, backing > 0);
	}
}

/* -o slices=: the bytes a read of a slice's file returns, on the slice's counter. */
static void count_read(struct fsd *d, fuse_ino_t ino, size_t size, off_t off)
{
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);

	if (n && n->slice && n->kind == FSD_N_ENTRY) {
		struct verify_entry ebuf;
		const struct verify_entry *e = fsd_node_entry(n, &ebuf);
		uint64_t len = e ? e->size : 0;

		if ((uint64_t)off < len)
			fsd_slice_count(d, n->slice, FSD_SC_BYTES,
					len - (uint64_t)off < size ? len - (uint64_t)off : size);
	}
	fsd_inodes_put(&d->inodes, n);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	struct fsd *d = fsd_of(req);

	if (fi->fh == FH_PASSTHROUGH) { /* the kernel reads these itself */
		fuse_reply_err(req, EIO);
		return;
	}
	if (d->conf.slices)
		count_read(d, ino, size, off);
	if (fi->fh & FH_CHUNKED) { /* fs/chunk.c; it replies when it succeeds */
		int ret = fsd_chunked_reply(req, d,
					    (struct fsd_chunked *)(uintptr_t)(fi->fh & ~FH_CHUNKED),
					    size, (uint64_t)off);

		if (ret < 0) {
			note_failure(d, "read", ret);
			fuse_reply_err(req, fsd_errno(ret));
		}
		return;
	}
	/* Spliced or copied straight from the store object: no buffer of ours in between. */
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	/* The reply is written (the kernel copied the spliced pages into the FUSE file's page
	 * cache, the pipe is drained): the store object's pages are a second copy, drop them.
	 * (A release racing with this may have closed fh already: then this fails, or drops the
	 * clean pages of whatever reused the number, which only costs a read from disk.) */
	posix_fadvise((int)fi->fh, off, (off_t)size, POSIX_FADV_DONTNEED);
}

/* Whether inode ino is a file of a version the mount serves (not replaced or dropped by a
 * refresh since it was opened: nothing opens it again). */
static bool inode_current(struct fsd *d, fuse_ino_t ino)
{
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);
	bool current = n && n->kind == FSD_N_ENTRY && entry_current(d, n);

	fsd_inodes_put(&d->inodes, n);
	return current;
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->fh & FH_CHUNKED) {
		struct fsd_chunked *ch = (struct fsd_chunked *)(uintptr_t)(fi->fh & ~FH_CHUNKED);
		struct verify_entry e;
		const char *what;

		/* The inode's last close: its whole object, if every chunk is stored (whole.c)
		 * and the file is still served. */
		fsd_chunked_entry(ch, &e, &what);
		if (fsd_pt_close(fsd_of(req), ino, false) && inode_current(fsd_of(req), ino))
			fsd_whole_queue(fsd_of(req), ino, &e, what);
		fsd_chunked_free(ch);
		fuse_reply_err(req, 0);
		return;
	}
	if (fi->fh == FH_PASSTHROUGH) {
		fsd_pt_close(fsd_of(req), ino, true);
		fuse_reply_err(req, 0);
		return;
	}
	/* And what readahead brought in beyond the last read. */
	posix_fadvise((int)fi->fh, 0, 0, POSIX_FADV_DONTNEED);
	close((int)fi->fh);
	fsd_pt_close(fsd_of(req), ino, false);
	fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Directories */

struct dirh {
	char **slices; /* FSD_N_SLICES: the slices' names at opendir */
	size_t nslices;
	struct fsd_catalog *cat; /* FSD_N_ROOT, FSD_N_PKG: what was listed at opendir */
	struct fsd_vtree *vt;	 /* FSD_N_VER, FSD_N_ENTRY */
	long dir;		 /* the directory's index in vt */
};

static void dirh_free(struct dirh *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nslices; i++)
		free(h->slices[i]);
	free(h->slices);
	fsd_catalog_unref(h->cat);
	fsd_vtree_unref(h->vt);
	free(h);
}

/* What a directory lists, taken now. @return 0; -errno; STORK_E* (a version that cannot be
 * loaded, logged). */
static int dirh_make(struct fsd *d, const struct fsd_inode *n, struct dirh **ret_h)
{
	struct dirh *h;
	int ret = fsd_serving(d);

	if (ret < 0)
		return ret;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	switch (n->kind) {
	case FSD_N_ROOT:
	case FSD_N_PKG:
	case FSD_N_SLICE:
		h->cat = fsd_catalog_of(d, n->slice);
		if (!h->cat)
			ret = -ENOENT; /* a slice removed since */
		break;
	case FSD_N_SLICES:
		ret = fsd_slice_names(d, &h->slices, &h->nslices);
		break;
	case FSD_N_VER:
		ret = ver_tree(d, n, &h->vt);
		if (ret == 0)
			h->dir = (long)fsd_vtree_n(h->vt);
		break;
	case FSD_N_IROOT:
		h->vt = fsd_vtree_ref(n->vt);
		h->dir = (long)fsd_vtree_n(n->vt);
		break;
	case FSD_N_ENTRY:
		if (store_tree_type(n->vt->ix, (size_t)n->idx) != VERIFY_DIR) {
			ret = -ENOTDIR;
			break;
		}
		if (!entry_current(d, n)) {
			ret = -ENOENT; /* a directory of a replaced version */
			break;
		}
		h->vt = fsd_vtree_ref(n->vt);
		h->dir = n->idx;
		break;
	default:
		ret = -ENOTDIR;
	}
	if (ret < 0) {
		dirh_free(h);
		return ret;
	}
	*ret_h = h;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct fsd_inode *n;
	struct dirh *h = NULL;
	int ret;

	if (d->no_opendir) {
		/* The kernel then opens directories without asking (and keeps their listings
		 * cached until a refresh invalidates them); readdir lists from the inode. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	n = fsd_inodes_ref(&d->inodes, ino);
	ret = n ? dirh_make(d, n, &h) : -ESTALE;
	fsd_inodes_put(&d->inodes, n);
	if (ret < 0) {
		fuse_reply_err(req, fsd_errno(ret));
		return;
	}
	if (h->vt) {
		/* A version's directories never change: let the kernel keep their listings. */
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		dirh_free(h);
}

/* The name of the k-th entry (after "." and ".."), NULL past the end. */
static const char *dirh_name(const struct dirh *h, const struct fsd_inode *n, size_t k)
{
	const struct fsd_cat_pkg *p;
	const char *path, *slash;

	if (h->vt) {
		const uint32_t *kids;
		size_t nkids;

		store_tree_kids(h->vt->ix, (size_t)h->dir, &kids, &nkids);
		if (k >= nkids)
			return NULL;
		path = store_tree_path(h->vt->ix, kids[k]);
		slash = strrchr(path, '/');
		return slash ? slash + 1 : path;
	}
	if (n->kind == FSD_N_SLICES)
		return k < h->nslices ? h->slices[k] : NULL;
	if (n->kind == FSD_N_ROOT || n->kind == FSD_N_SLICE)
		return k < h->cat->n ? h->cat->pkgs[k].name : NULL;
	p = fsd_catalog_pkg(h->cat, n->pkg);
	if (!p)
		return NULL;
	if (k < p->n)
		return p->vers[k].version;
	return k == p->n && p->n ? "latest" : NULL;
}

/* The number of n's parent, for "..": readdir() skips entries numbered 0. */
static fuse_ino_t parent_number(struct fsd *d, const struct fsd_inode *n)
{
	return fsd_inodes_parent(&d->inodes, n);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct fsd *d = fsd_of(req);
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh, *own = NULL;
	struct fsd_inode *n = fsd_inodes_ref(&d->inodes, ino);
	char *buf = NULL;
	size_t used = 0;
	int ret = 0;

	if (!n) {
		ret = -ESTALE;
		goto out;
	}
	ret = fsd_serving(d); /* also for directories opened before the mount stopped serving */
	if (ret < 0)
		goto out;
	if (!h) { /* opened without opendir (no_opendir) */
		ret = dirh_make(d, n, &own);
		if (ret < 0)
			goto out;
		h = own;
	}
	buf = malloc(size);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (off_t k = off;; k++) {
		struct fuse_entry_param e = {0};
		const char *name;
		size_t need;

		if (k == 0 || k == 1) {
			name = k ? ".." : ".";
			e.attr.st_ino = k ? parent_number(d, n) : n->ino;
			e.attr.st_mode = S_IFDIR;
		} else {
			name = dirh_name(h, n, (size_t)k - 2);
			if (!name)
				break;
			/* Plain readdir also needs the stable number and the type: both come
			 * through a lookup, given back at once when not readdirplus. */
			ret = lookup_child(d, n, name, &e);
			if (ret == -ENOENT) {
				ret = 0; /* gone since opendir (a refresh) */
				continue;
			}
			if (ret < 0)
				break;
		}
		if (plus)
			need =
			    fuse_add_direntry_plus(req, buf + used, size - used, name, &e, k + 1);
		else
			need =
			    fuse_add_direntry(req, buf + used, size - used, name, &e.attr, k + 1);
		if (e.ino && (!plus || need > size - used))
			fsd_inodes_forget(&d->inodes, e.ino, 1);
		if (need > size - used)
			break;
		used += need;
	}
out:
	fsd_inodes_put(&d->inodes, n);
	/* An error after some entries: return those; the next call meets the error again. */
	if (ret < 0 && used == 0)
		fuse_reply_err(req, fsd_errno(ret));
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
	dirh_free(own);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dirh_free((struct dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fsd *d = fsd_of(req);
	struct statvfs st;

	/* The store's file system, with nothing free: nothing can be written here. */
	if (statvfs(store_dir(d->store), &st) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	st.f_bfree = st.f_bavail = 0;
	st.f_ffree = st.f_favail = 0;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fsd *d = userdata;

	/* Directories without an OPENDIR/RELEASEDIR round trip each: `find` over a version
	 * then costs one READDIRPLUS per directory, and nothing once the kernel caches it. */
	d->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
	d->unchecked = getenv("STORKFS_BENCH_UNCHECKED") != NULL;
	/* The content behind a number never changes (other content gets another number, "Replaced
	 * versions"): no read needs the kernel to compare attributes and drop the pages it has. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* Reads come from store objects: let libfuse splice them. */
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	/* -o max_readahead=, max_write=, ... as the user gave them (fs/daemon.c) */
	if (d->conn_opts)
		fuse_apply_conn_info_opts(d->conn_opts, conn);
}

const struct fuse_lowlevel_ops fsd_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .getxattr = fsd_op_getxattr, /* fs/xattr.c */
    .listxattr = fsd_op_listxattr,
    .statfs = op_statfs,
};
