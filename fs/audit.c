/* fs/audit.c: a whole repository checked as a client would check it (`stork verify`, fs_audit()
 * in fs/fs.h): every target through the TUF client, every manifest's hash, every version pack's
 * objects, every object's hash; and for a repository directory also what the TUF walk does not
 * read: older metadata versions, and manifests and objects no verified metadata refers to.
 * Problems are told to the caller one line each and counted; the walk goes on after each.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs.h"
#include "store/store.h"

struct objref {
	uint8_t hash[VERIFY_HASH_LEN];
	uint64_t size, zsize;
	const char *manifest; /* a manifest that refers to it (for messages) */
};

struct targetref {
	char *file; /* "targets/<name>/<hex>.<version>.json" */
};

struct audit {
	const struct verify_source *src;
	struct verify_client *c;
	unsigned failures;
	uint64_t versions, bytes;
	struct objref *objs;
	size_t nobjs, capobjs;
	char **manifests; /* verified manifest files, for the directory audit */
	size_t nmanifests, capmanifests;
	char **names;
	size_t nnames, capnames;
	void (*tell)(void *ctx, const char *line);
	void *tctx;
};

/* One line for the caller: a problem (counted in failures by whoever calls this) or a note. */
static void tell(struct audit *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tell(struct audit *a, const char *fmt, ...)
{
	char line[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	a->tell(a->tctx, line);
}

static void problem(void *ctx, const char *file, int err, const char *detail)
{
	struct audit *a = ctx;

	a->failures++;
	if (detail && detail[0])
		tell(a, "%s", detail);
	else
		tell(a, "%s: %s", file, storkfs_strerror(err));
}

static int push(void ***arr, size_t *n, size_t *cap, size_t elem, const void *item)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		void *p = realloc(*arr, ncap * elem);

		if (!p)
			return -ENOMEM;
		*arr = p;
		*cap = ncap;
	}
	memcpy((char *)*arr + *n * elem, item, elem);
	(*n)++;
	return 0;
}

static char *manifest_file(const struct verify_target *t)
{
	char hex[VERIFY_HASH_HEX];
	size_t len = strlen(t->name) + strlen(t->version) + sizeof(hex) + 32;
	char *s = malloc(len);

	if (!s)
		return NULL;
	verify_hex(t->hash, VERIFY_HASH_LEN, hex);
	if (t->plain) /* no consistent snapshots: its plain target path (TUF 5.7.3) */
		snprintf(s, len, "targets/%s/%s.json", t->name, t->version);
	else
		snprintf(s, len, "targets/%s/%s.%s.json", t->name, hex, t->version);
	return s;
}

/* Checking a version pack (store/README.md, "Version packs"): each object's slice through
 * the checking unpacker. */
struct packcheck {
	struct audit *a;
	struct store_pack_cut cut;
	struct store_unpack *u;
	const char *file; /* the pack */
	unsigned bad;	  /* objects that do not verify */
};

static void pack_bad(struct packcheck *pc, size_t i, int err)
{
	const struct store_pack_entry *pe = &pc->cut.ents[i];
	char text[1200];

	if (pc->bad++ < 3)
		tell(pc->a, "%s: the object of %s at offset %" PRIu64 ": %s", pc->file, pe->e->path,
		     pe->offset, stork_error_text(NULL, err, text, sizeof(text)));
	store_unpack_free(pc->u);
	pc->u = NULL;
}

static int pc_begin(void *ctx, size_t i)
{
	struct packcheck *pc = ctx;
	const struct verify_entry *e = pc->cut.ents[i].e;

	return store_unpack_new(e->hash, e->size, e->zsize, NULL, NULL, &pc->u);
}

static int pc_data(void *ctx, size_t i, const void *buf, size_t len)
{
	struct packcheck *pc = ctx;
	int r;

	if (!pc->u)
		return 0; /* already refused */
	stork_error_clear();
	r = store_unpack_write(pc->u, buf, len);
	if (r < 0)
		pack_bad(pc, i, r);
	return 0;
}

static int pc_end(void *ctx, size_t i)
{
	struct packcheck *pc = ctx;
	int r;

	if (!pc->u)
		return 0;
	stork_error_clear();
	r = store_unpack_finish(pc->u);
	if (r < 0)
		pack_bad(pc, i, r);
	store_unpack_free(pc->u);
	pc->u = NULL;
	return 0;
}

static int pc_feed(void *ctx, const void *buf, size_t len)
{
	struct packcheck *pc = ctx;

	return store_pack_cut(&pc->cut, buf, len);
}

/* A version's pack, when the repository has one: every object in it must be the manifest's. */
static void audit_pack(struct audit *a, const struct verify_manifest *m)
{
	struct packcheck pc = {0};
	struct store_pack_entry *ents = NULL;
	uint64_t len = 0;
	char *path = NULL;
	size_t n = 0;
	int r;

	r = store_pack_layout(m, &ents, &n, &len);
	if (r < 0 || n == 0)
		goto out;
	r = verify_manifest_file(m, ".pack", &path);
	if (r < 0)
		goto out;
	pc.cut = (struct store_pack_cut){
	    .ents = ents, .n = n, .begin = pc_begin, .data = pc_data, .end = pc_end, .ctx = &pc};
	pc.file = path;
	pc.a = a;
	stork_error_clear();
	r = a->src->stream(a->src->ctx, path, len, pc_feed, &pc);
	store_unpack_free(pc.u);
	if (r == -ENOENT) {
		r = 0; /* no pack: clients fetch object by object */
	} else if (r == STORK_ETOOBIG) {
		stork_errorf("%s: longer than its layout's %" PRIu64 " bytes", path, len);
	} else if (r == 0 && pc.cut.cur < n) {
		stork_errorf("%s: truncated: %" PRIu64 " of %" PRIu64 " bytes", path, pc.cut.pos,
			     len);
		r = STORK_EBADLEN;
	} else if (r == 0 && pc.bad) {
		stork_errorf("%s: %u of its %zu objects do not match the manifest", path, pc.bad,
			     n);
		r = STORK_EBADHASH;
	} else if (r < 0) {
		stork_error_prefix("%s: ", path);
	}
	if (r < 0)
		problem(a, path, r, stork_error_detail());
out:
	if (r == -ENOMEM)
		problem(a, "version pack", r, NULL);
	free(path);
	free(ents);
}

static int on_target(void *ctx, const struct verify_target *t)
{
	struct audit *a = ctx;
	struct verify_manifest *m = NULL;
	char *file = manifest_file(t), *name = NULL;
	int r;

	if (!file)
		return -ENOMEM;
	r = verify_client_fetch_manifest(a->c, a->src, t, &m);
	if (r < 0) {
		stork_error_prefix("%s: ", file);
		problem(a, file, r, stork_error_detail());
		free(file);
		return 0;
	}
	a->versions++;
	a->bytes += m->total_size;
	audit_pack(a, m);
	for (size_t i = 0; i < m->n; i++) {
		const struct verify_entry *e = &m->entries[i];

		if (e->type != VERIFY_FILE)
			continue;
		/* A chunked file's objects are its chunks (store/README.md "Chunks"). */
		for (size_t c = 0; c < (e->nchunks ? e->nchunks : 1); c++) {
			const struct verify_entry *oe = e->nchunks ? &e->chunks[c] : e;
			struct objref o = {.size = oe->size, .zsize = oe->zsize};

			memcpy(o.hash, oe->hash, sizeof(o.hash));
			o.manifest = file;
			r = push((void ***)&a->objs, &a->nobjs, &a->capobjs, sizeof(o), &o);
			if (r < 0)
				goto out;
		}
	}
	r = push((void ***)&a->manifests, &a->nmanifests, &a->capmanifests, sizeof(file), &file);
	if (r < 0)
		goto out;
	file = NULL;
	name = strdup(t->name);
	if (!name || push((void ***)&a->names, &a->nnames, &a->capnames, sizeof(name), &name) < 0) {
		free(name);
		r = -ENOMEM;
		goto out;
	}
	r = 0;
out:
	free(file);
	verify_manifest_free(m);
	return r;
}

static int objref_cmp(const void *x, const void *y)
{
	const struct objref *a = x, *b = y;

	return memcmp(a->hash, b->hash, VERIFY_HASH_LEN);
}

static int strp_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

struct unpack_ctx {
	struct store_unpack *u;
};

static int feed_unpack(void *ctx, const void *buf, size_t len)
{
	struct unpack_ctx *uc = ctx;

	return store_unpack_write(uc->u, buf, len);
}

/* Stream one object through the checking unpacker. */
static int check_object(const struct verify_source *src, const uint8_t hash[VERIFY_HASH_LEN],
			uint64_t size, uint64_t zsize)
{
	char path[STORE_OBJPATH_LEN];
	struct unpack_ctx uc = {NULL};
	int r;

	store_object_path(hash, path);
	r = store_unpack_new(hash, size, zsize, NULL, NULL, &uc.u);
	if (r < 0)
		return r;
	stork_error_clear();
	r = src->stream(src->ctx, path, zsize, feed_unpack, &uc);
	if (r == STORK_ETOOBIG)
		r = STORK_EBADLEN;
	if (r >= 0)
		r = store_unpack_finish(uc.u);
	store_unpack_free(uc.u);
	return r;
}

/* One problem of the repository: "FILE: DETAIL (ERROR)" with the file named once (most details
 * start with it) and the error said once (stork_error_text), and the manifest that lists it. */
static void tell_problem(struct audit *a, const char *file, int err, const char *listed_in)
{
	const char *d = stork_error_detail();
	bool named = d[0] && strstr(d, file);
	char text[1200];

	stork_error_text(d, err, text, sizeof(text));
	if (listed_in)
		tell(a, "%s%s%s (listed in %s)", named ? "" : file, named ? "" : ": ", text,
		     listed_in);
	else
		tell(a, "%s%s%s", named ? "" : file, named ? "" : ": ", text);
}

static size_t check_objects(struct audit *a)
{
	size_t unique = 0;

	if (a->nobjs > 1)
		qsort(a->objs, a->nobjs, sizeof(*a->objs), objref_cmp);
	for (size_t i = 0; i < a->nobjs; i++) {
		struct objref *o = &a->objs[i];
		char path[STORE_OBJPATH_LEN];
		int r;

		store_object_path(o->hash, path);
		if (i > 0 && !objref_cmp(o, &a->objs[i - 1])) {
			if (o->size != a->objs[i - 1].size || o->zsize != a->objs[i - 1].zsize) {
				a->failures++;
				tell(a,
				     "%s: %s and %s disagree on its size "
				     "(%" PRIu64 "/%" PRIu64 " vs %" PRIu64 "/%" PRIu64 ")",
				     path, o->manifest, a->objs[i - 1].manifest, o->size, o->zsize,
				     a->objs[i - 1].size, a->objs[i - 1].zsize);
			}
			continue;
		}
		unique++;
		r = check_object(a->src, o->hash, o->size, o->zsize);
		if (r < 0) {
			a->failures++;
			tell_problem(a, path, r, o->manifest);
		}
	}
	return unique;
}

/* Whether a metadata file name is "<digits>.<rest>.json"; sets *ret_version. */
static bool versioned_name(const char *name, uint64_t *ret_version, const char **ret_role)
{
	char *end;
	unsigned long long v;
	size_t len = strlen(name);

	if (len < 7 || name[0] < '0' || name[0] > '9' || strcmp(name + len - 5, ".json"))
		return false;
	errno = 0;
	v = strtoull(name, &end, 10);
	if (errno || *end != '.' || end + 1 >= name + len - 5)
		return false;
	*ret_version = v;
	*ret_role = end + 1;
	return true;
}

static void audit_fail(struct audit *a, const char *file, int err)
{
	a->failures++;
	tell_problem(a, file, err, NULL);
}

/* The directory audit: what the TUF walk does not read must still be intact. */
/* A metadata file to audit, in the order audit_metadata checks them. */
struct mdfile {
	char *name;	  /* d_name */
	const char *role; /* within name: "root.json", "alice.json" */
	uint64_t version;
	int rank; /* 0 root, 1 targets, 2 the other roles */
};

static int mdfile_cmp(const void *x, const void *y)
{
	const struct mdfile *a = x, *b = y;

	if (a->rank != b->rank)
		return a->rank - b->rank;
	if (a->version != b->version)
		return a->version < b->version ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Audit one file; rank-2 failures are left for the next pass (a role delegated by an older
 * version of another role that is audited later). @return 0 done (passed or reported); 1 retry. */
static int audit_one(struct audit *a, const struct mdfile *e, const uint8_t *pinned,
		     size_t pinnedlen, uint64_t pinned_version, uint64_t root_version, bool last)
{
	char file[4600];
	uint8_t *buf = NULL;
	size_t len = 0;
	int r, ret = 0;

	snprintf(file, sizeof(file), "metadata/%s", e->name);
	r = a->src->get(a->src->ctx, file, VERIFY_MAX_TARGETS_LEN, &buf, &len);
	if (r < 0) {
		audit_fail(a, file, r);
		return 0;
	}
	stork_error_clear();
	if (!strcmp(e->name, "root.json")) {
		/* A copy of the newest root, for people and tools that want one. */
		char newest[64];
		uint8_t *nb = NULL;
		size_t nl = 0;

		snprintf(newest, sizeof(newest), "metadata/%" PRIu64 ".root.json", root_version);
		r = a->src->get(a->src->ctx, newest, VERIFY_MAX_ROOT_LEN, &nb, &nl);
		if (r < 0 || nl != len || memcmp(nb, buf, len)) {
			stork_errorf("%s: differs from %s, the newest root", file, newest);
			audit_fail(a, file, STORK_EBADHASH);
		}
		free(nb);
	} else if (e->rank == 0 && e->version < pinned_version) {
		struct verify_client *old = NULL;

		/* Before the pin: only its own signatures can be checked. */
		r = verify_client_new(buf, len, 0, &old);
		if (r < 0)
			audit_fail(a, file, r);
		verify_client_free(old);
	} else if (e->rank == 0 && e->version == pinned_version &&
		   (len != pinnedlen || memcmp(buf, pinned, len))) {
		stork_errorf("%s: differs from the pinned root of the same version", file);
		audit_fail(a, file, STORK_EBADHASH);
	} else {
		/* From the pinned root up: each root, then each targets version, is remembered
		 * by the client and vouches for the older files its keys signed. */
		r = verify_client_audit_file(a->c, file, buf, len);
		if (r < 0 && e->rank == 2 && !last)
			ret = 1;
		else if (r < 0)
			audit_fail(a, file, r);
	}
	free(buf);
	return ret;
}

static void audit_metadata(struct audit *a, const char *repo, const uint8_t *pinned,
			   size_t pinnedlen, uint64_t pinned_version)
{
	struct mdfile *files = NULL, *left;
	size_t n = 0, cap = 0, nleft;
	uint64_t root_version = 0;
	char dir[4096];
	struct dirent *de;
	DIR *d;

	verify_client_role_info(a->c, "root", &root_version, NULL);
	snprintf(dir, sizeof(dir), "%s/metadata", repo);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct mdfile e = {0};

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "timestamp.json"))
			continue;
		if (strcmp(de->d_name, "root.json") &&
		    !versioned_name(de->d_name, &e.version, &e.role)) {
			tell(a, "metadata/%s: not a metadata file name (ignored)", de->d_name);
			continue;
		}
		if (n == cap) {
			void *p = realloc(files, (cap = cap ? cap * 2 : 64) * sizeof(*files));

			if (!p)
				break;
			files = p;
		}
		e.name = strdup(de->d_name);
		if (!e.name)
			break;
		if (!strcmp(e.name, "root.json")) {
			e.version = UINT64_MAX; /* after every versioned root */
			e.rank = 0;
		} else {
			e.role = e.name + (e.role - de->d_name);
			e.rank = !strcmp(e.role, "root.json")	   ? 0
				 : !strcmp(e.role, "targets.json") ? 1
								   : 2;
		}
		files[n++] = e;
	}
	closedir(d);
	if (n > 1)
		qsort(files, n, sizeof(*files), mdfile_cmp);
	/* Roles delegated by other delegated roles may need the delegator's older versions
	 * first: passes until one makes no progress; then the rest are reported. */
	left = calloc(n ? n : 1, sizeof(*left));
	nleft = 0;
	for (size_t i = 0; i < n; i++)
		if (audit_one(a, &files[i], pinned, pinnedlen, pinned_version, root_version, false))
			left[nleft++] = files[i];
	while (left && nleft) {
		size_t before = nleft;

		nleft = 0;
		for (size_t i = 0; i < before; i++)
			if (audit_one(a, &left[i], pinned, pinnedlen, pinned_version, root_version,
				      false))
				left[nleft++] = left[i];
		if (nleft == before) {
			for (size_t i = 0; i < nleft; i++)
				audit_one(a, &left[i], pinned, pinnedlen, pinned_version,
					  root_version, true);
			break;
		}
	}
	free(left);
	for (size_t i = 0; i < n; i++)
		free(files[i].name);
	free(files);
}

static bool is_pack_name(const char *file)
{
	size_t len = strlen(file);

	return len > 5 && !strcmp(file + len - 5, ".pack");
}

/* Manifests and objects no verified metadata refers to: left by an interrupted or refused
 * publish. They must still be what their names say. */
static void audit_orphans(struct audit *a, const char *repo)
{
	char top[4096], sub[4400], file[4700];
	struct dirent *de, *fe;
	size_t orphans = 0;
	DIR *d, *fd;

	if (a->nmanifests > 1)
		qsort(a->manifests, a->nmanifests, sizeof(char *), strp_cmp);
	snprintf(top, sizeof(top), "%s/targets", repo);
	if ((d = opendir(top))) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", top, de->d_name);
			if (!(fd = opendir(sub)))
				continue;
			while ((fe = readdir(fd))) {
				char *key = file, *dot;
				uint8_t want[VERIFY_HASH_LEN], got[VERIFY_HASH_LEN];
				uint8_t *buf = NULL;
				size_t len;
				int r;

				/* targets/control/<group>/ holds control lists, not manifests */
				if (fe->d_name[0] == '.' || fe->d_type == DT_DIR)
					continue;
				snprintf(file, sizeof(file), "targets/%s/%s", de->d_name,
					 fe->d_name);
				if (is_pack_name(file)) {
					/* Audited with its manifest; else an orphan's, unchecked.
					 */
					memcpy(file + strlen(file) - 5, ".json", 6);
					if (!a->nmanifests ||
					    !bsearch(&key, a->manifests, a->nmanifests,
						     sizeof(char *), strp_cmp))
						orphans++;
					continue;
				}
				if (a->nmanifests && bsearch(&key, a->manifests, a->nmanifests,
							     sizeof(char *), strp_cmp))
					continue;
				orphans++;
				dot = strchr(fe->d_name, '.');
				if (!dot || dot - fe->d_name != 2 * VERIFY_HASH_LEN ||
				    verify_unhex(fe->d_name, want, VERIFY_HASH_LEN) < 0) {
					tell(a,
					     "%s: not a manifest name "
					     "(ignored)",
					     file);
					continue;
				}
				r = a->src->get(a->src->ctx, file, VERIFY_MAX_MANIFEST_LEN, &buf,
						&len);
				if (r >= 0)
					r = verify_sha256(buf, len, got);
				if (r >= 0 && memcmp(want, got, sizeof(got)))
					r = STORK_EBADHASH;
				if (r < 0) {
					stork_errorf("%s: unreferenced manifest whose content does "
						     "not match its name",
						     file);
					audit_fail(a, file, r);
				}
				free(buf);
			}
			closedir(fd);
		}
		closedir(d);
	}

	snprintf(top, sizeof(top), "%s/objects", repo);
	if ((d = opendir(top))) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' || strlen(de->d_name) != 2)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", top, de->d_name);
			if (!(fd = opendir(sub)))
				continue;
			while ((fe = readdir(fd))) {
				struct objref key;
				struct stat st;
				int r;

				if (fe->d_name[0] == '.')
					continue;
				snprintf(file, sizeof(file), "objects/%s/%s", de->d_name,
					 fe->d_name);
				if (strlen(fe->d_name) != 2 * VERIFY_HASH_LEN ||
				    verify_unhex(fe->d_name, key.hash, VERIFY_HASH_LEN) < 0 ||
				    strncmp(fe->d_name, de->d_name, 2)) {
					tell(a,
					     "%s: not an object name "
					     "(ignored)",
					     file);
					continue;
				}
				if (a->nobjs &&
				    bsearch(&key, a->objs, a->nobjs, sizeof(*a->objs), objref_cmp))
					continue;
				orphans++;
				if (fstatat(dirfd(fd), fe->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
				    !S_ISREG(st.st_mode)) {
					stork_errorf("%s: not a regular file", file);
					audit_fail(a, file, STORK_EFORMAT);
					continue;
				}
				/* Unreferenced: no signed size, so bound it by a generous cap. */
				r = check_object(a->src, key.hash, 1ULL << 40,
						 (uint64_t)st.st_size);
				if (r == STORK_EBADLEN)
					r = 0; /* size unknown: only the hash and the frame matter
						*/
				if (r < 0) {
					stork_error_prefix("%s: unreferenced object: ", file);
					audit_fail(a, file, r);
				}
			}
			closedir(fd);
		}
		closedir(d);
	}
	if (orphans)
		tell(a,
		     "note: %zu unreferenced files (left by interrupted "
		     "or refused publishes; harmless)",
		     orphans);
}

int fs_audit(struct verify_client *c, const struct verify_source *src, const uint8_t *root,
	     size_t rootlen, const char *dir, void (*tell_fn)(void *ctx, const char *line),
	     void *ctx, struct fs_audit_result *ret)
{
	struct audit a = {.src = src, .c = c, .tell = tell_fn, .tctx = ctx};
	struct fs_audit_result res = {0};
	uint64_t pinned_version = 0;
	int r;

	{
		/* The pinned root's version, from a client that has not refreshed. */
		struct verify_client *pc = NULL;

		if (verify_client_new(root, rootlen, 0, &pc) == 0)
			verify_client_role_info(pc, "root", &pinned_version, NULL);
		verify_client_free(pc);
	}
	r = verify_client_each_target(c, src, on_target, &a, problem, &a);
	if (r == -ENOMEM)
		goto out;
	r = 0;
	res.objects = check_objects(&a);
	if (dir) {
		audit_metadata(&a, dir, root, rootlen, pinned_version);
		audit_orphans(&a, dir);
	}
	if (a.nnames > 1)
		qsort(a.names, a.nnames, sizeof(char *), strp_cmp);
	for (size_t i = 0; i < a.nnames; i++)
		if (i == 0 || strcmp(a.names[i], a.names[i - 1]))
			res.packages++;
	res.failures = a.failures;
	res.versions = a.versions;
	res.bytes = a.bytes;
	*ret = res;
out:
	for (size_t i = 0; i < a.nmanifests; i++)
		free(a.manifests[i]);
	for (size_t i = 0; i < a.nnames; i++)
		free(a.names[i]);
	free(a.manifests);
	free(a.names);
	free(a.objs);
	return r;
}
