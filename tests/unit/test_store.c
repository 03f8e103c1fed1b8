/* tests/unit/test_store.c: objects, the unpacker, imports of directories, tar, .deb, and the
 * package metadata parsers. Archives, hostile ones included, are made here with libarchive's
 * writer; real .rpm files are left to the integration tests (rpmbuild). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <zstd.h>

#include "store/import/import.h"
#include "tests/unit/unit.h"

/* ------------------------------------------------------------------------------------------ */
/* Fixtures and helpers. */

static char tmpdir[256];
static char repodir[300];
static int repofd = -1;

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_store.XXXXXX", t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(repodir, sizeof(repodir), "%s/repo", tmpdir);
	ck_assert_int_eq(mkdir(repodir, 0755), 0);
	repofd = open(repodir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(repofd, 0);
	stork_error_clear();
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (remove(path) < 0)
		fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

static void teardown(void)
{
	if (repofd >= 0)
		close(repofd);
	repofd = -1;
	rm_rf(tmpdir);
}

static void tpath(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmpdir, name);
}

/* Files below objects/: regular objects and temporary files. */
static void count_objects(size_t *ret_objects, size_t *ret_tmp)
{
	char dir[400];
	DIR *d, *sub;
	struct dirent *de, *se;

	*ret_objects = 0;
	*ret_tmp = 0;
	snprintf(dir, sizeof(dir), "%s/objects", repodir);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char subdir[700];

		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			(*ret_tmp)++;
			continue;
		}
		if (de->d_name[0] == '.')
			continue;
		snprintf(subdir, sizeof(subdir), "%s/%s", dir, de->d_name);
		sub = opendir(subdir);
		ck_assert_ptr_nonnull(sub);
		while ((se = readdir(sub))) {
			if (se->d_name[0] == '.')
				continue;
			ck_assert_uint_eq(strlen(se->d_name), 64);
			(*ret_objects)++;
		}
		closedir(sub);
	}
	closedir(d);
}

static size_t count_tmp(void)
{
	size_t objs, tmp;

	count_objects(&objs, &tmp);
	return tmp;
}

static uint8_t *read_file(const char *path, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*ret_len = (size_t)st.st_size;
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len ? len : 1);
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		/* half compressible, half noise */
		p[i] = (i / 4096) % 2 ? (uint8_t)(x >> 16) : (uint8_t)(i % 251);
	}
	return p;
}

/* Write one object; returns its description. */
static void put_object(const void *buf, size_t len, uint8_t hash[32], uint64_t *size,
		       uint64_t *zsize, bool *is_new)
{
	struct store_objwriter *w;
	size_t off = 0;

	ck_assert_int_eq(store_objwriter_new(repofd, &w), 0);
	while (off < len) { /* odd chunk sizes on purpose */
		size_t n = len - off < 7777 ? len - off : 7777;

		ck_assert_int_eq(store_objwriter_write(w, (const uint8_t *)buf + off, n), 0);
		off += n;
	}
	ck_assert_int_eq(store_objwriter_commit(w, hash, size, zsize, is_new), 0);
}

struct collect {
	uint8_t *buf;
	size_t len, cap;
	size_t calls;
};

static int collect_out(void *ctx, const void *buf, size_t len)
{
	struct collect *c = ctx;

	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2;
		c->buf = realloc(c->buf, c->cap);
		ck_assert_ptr_nonnull(c->buf);
	}
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	c->calls++;
	return 0;
}

/* Feed buf to an unpacker in chunks; returns the first error or finish's result. */
static int unpack_all(const uint8_t hash[32], uint64_t size, uint64_t zsize, const void *buf,
		      size_t len, struct collect *c)
{
	struct store_unpack *u;
	size_t off = 0;
	int r = 0;

	ck_assert_int_eq(store_unpack_new(hash, size, zsize, c ? collect_out : NULL, c, &u), 0);
	while (off < len && r == 0) {
		size_t n = len - off < 1000 ? len - off : 1000;

		r = store_unpack_write(u, (const uint8_t *)buf + off, n);
		off += n;
	}
	if (r == 0)
		r = store_unpack_finish(u);
	store_unpack_free(u);
	return r;
}

static void object_file(const uint8_t hash[32], char *out, size_t len)
{
	char rel[STORE_OBJPATH_LEN];

	store_object_path(hash, rel);
	snprintf(out, len, "%s/%s", repodir, rel);
}

static int import(const char *src, uint64_t max_size, struct verify_manifest **ret_m,
		  struct store_import_stats *st)
{
	struct store_import_opts o = {0};

	o.repofd = repofd;
	o.max_size = max_size;
	stork_error_clear();
	return store_import(src, "pkg", "1.0", &o, ret_m, st);
}

/* Import must fail with code, no temporary file left, and a detail naming src and entry. */
static void import_refused(const char *src, uint64_t max_size, int code, const char *entry,
			   const char *words)
{
	struct verify_manifest *m = NULL;
	const char *d;
	int r = import(src, max_size, &m, NULL);

	d = stork_error_detail();
	ck_assert_msg(r == code, "%s: got %d (%s), want %d", src, r, d, code);
	ck_assert_ptr_null(m);
	ck_assert_msg(strncmp(d, src, strlen(src)) == 0, "detail does not start with %s: %s", src,
		      d);
	if (entry) {
		char want[300];

		snprintf(want, sizeof(want), "entry \"%s\"", entry);
		ck_assert_msg(strstr(d, want), "detail does not name %s: %s", want, d);
	}
	if (words)
		ck_assert_msg(strstr(d, words), "detail does not say \"%s\": %s", words, d);
	ck_assert_uint_eq(count_tmp(), 0);
}

/* Check a file entry against its expected content and its object. */
static void check_file(const struct verify_manifest *m, const char *path, const void *data,
		       size_t len, uint32_t mode)
{
	const struct verify_entry *e = verify_manifest_find(m, path);
	uint8_t want[32];
	char obj[600];
	uint8_t *z;
	size_t zlen;
	struct collect c = {0};

	ck_assert_msg(e != NULL, "no entry %s", path);
	ck_assert_int_eq(e->type, VERIFY_FILE);
	ck_assert_uint_eq(e->size, len);
	ck_assert_uint_eq(e->mode, mode);
	ck_assert_int_eq(verify_sha256(data, len, want), 0);
	ck_assert_mem_eq(e->hash, want, 32);
	object_file(e->hash, obj, sizeof(obj));
	z = read_file(obj, &zlen);
	ck_assert_uint_eq(zlen, e->zsize);
	ck_assert_msg(unpack_all(e->hash, e->size, e->zsize, z, zlen, &c) == 0, "%s: %s", path,
		      stork_error_detail());
	ck_assert_uint_eq(c.len, len);
	if (len)
		ck_assert_mem_eq(c.buf, data, len);
	free(c.buf);
	free(z);
}

/* ------------------------------------------------------------------------------------------ */
/* Archive writing with libarchive. */

enum { T_FILE, T_DIR, T_SYMLINK, T_HARDLINK, T_CHR, T_FIFO };

struct tent {
	const char *path;
	int type;
	const char *data; /* file: contents (NULL: `size` bytes of pattern); links: target */
	size_t size;
	unsigned mode;
};

static void fill_entry(struct archive_entry *ae, const struct tent *t, size_t *ret_len,
		       const void **ret_data, uint8_t **ret_owned)
{
	size_t len = 0;

	*ret_owned = NULL;
	*ret_data = NULL;
	archive_entry_set_pathname(ae, t->path);
	archive_entry_set_mtime(ae, 1700000000, 0);
	switch (t->type) {
	case T_FILE:
		archive_entry_set_filetype(ae, AE_IFREG);
		if (t->data) {
			len = strlen(t->data);
			*ret_data = t->data;
		} else {
			len = t->size;
			*ret_owned = pattern(len, 7);
			*ret_data = *ret_owned;
		}
		archive_entry_set_size(ae, (la_int64_t)len);
		break;
	case T_DIR:
		archive_entry_set_filetype(ae, AE_IFDIR);
		break;
	case T_SYMLINK:
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_symlink(ae, t->data);
		break;
	case T_HARDLINK:
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_hardlink(ae, t->data);
		archive_entry_set_size(ae, 0);
		break;
	case T_CHR:
		archive_entry_set_filetype(ae, AE_IFCHR);
		archive_entry_set_rdev(ae, makedev(1, 3));
		break;
	case T_FIFO:
		archive_entry_set_filetype(ae, AE_IFIFO);
		break;
	}
	archive_entry_set_perm(ae, t->mode ? t->mode : (t->type == T_DIR ? 0755 : 0644));
	*ret_len = len;
}

static void write_entries(struct archive *a, const struct tent *ents, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		const void *data;
		uint8_t *owned;
		size_t len;

		fill_entry(ae, &ents[i], &len, &data, &owned);
		ck_assert_msg(archive_write_header(a, ae) == ARCHIVE_OK, "header %s: %s",
			      ents[i].path, archive_error_string(a));
		if (len)
			ck_assert_int_eq(archive_write_data(a, data, len), (la_ssize_t)len);
		free(owned);
		archive_entry_free(ae);
	}
}

static struct archive *tar_writer_fmt(int filter, int format)
{
	struct archive *a = archive_write_new();

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(archive_write_set_format(a, format), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_add_filter(a, filter), ARCHIVE_OK);
	return a;
}

static struct archive *tar_writer(int filter)
{
	return tar_writer_fmt(filter, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
}

static void make_tar(const char *file, int filter, const struct tent *ents, size_t n)
{
	struct archive *a = tar_writer(filter);

	ck_assert_int_eq(archive_write_open_filename(a, file), ARCHIVE_OK);
	write_entries(a, ents, n);
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* A tar in memory (for .deb members). */
static uint8_t *make_tar_mem(int filter, const struct tent *ents, size_t n, size_t *ret_len)
{
	size_t cap = 4 << 20, used = 0;
	uint8_t *buf = malloc(cap);
	struct archive *a = tar_writer(filter);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	write_entries(a, ents, n);
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*ret_len = used;
	return buf;
}

struct member {
	const char *name;
	const void *data;
	size_t len;
};

static void make_ar(const char *file, const struct member *mem, size_t n)
{
	struct archive *a = archive_write_new();
	size_t i;

	ck_assert_int_eq(archive_write_set_format_ar_svr4(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_add_filter(a, ARCHIVE_FILTER_NONE), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_filename(a, file), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();

		archive_entry_set_pathname(ae, mem[i].name);
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_perm(ae, 0644);
		archive_entry_set_size(ae, (la_int64_t)mem[i].len);
		archive_entry_set_mtime(ae, 1700000000, 0);
		ck_assert_int_eq(archive_write_header(a, ae), ARCHIVE_OK);
		ck_assert_int_eq(archive_write_data(a, mem[i].data, mem[i].len),
				 (la_ssize_t)mem[i].len);
		archive_entry_free(ae);
	}
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static const char hello_control[] =
    "Package: hello\n"
    "Version: 2.10-3\n"
    "Architecture: amd64\n"
    "Pre-Depends: dpkg (>= 1.19.0)\n"
    "Depends: libc6 (>= 2.34), default-mta | mail-transport-agent,\n"
    " zlib1g:amd64 (<< 1:2)\n"
    "Provides: greeter (= 2.10)\n"
    "Conflicts: hello-old\n"
    "Breaks: hello-debhelper (<< 2.9)\n"
    "Replaces: hello-debhelper (<< 2.9)\n"
    "Description: greet\n"
    " the world\n";

/* A .deb: debian-binary, control.tar.gz, data.tar.xz (or the members given). */
static void make_deb(const char *file, const char *control, bool with_control)
{
	struct tent ctl[] = {
	    {"./", T_DIR, NULL, 0, 0755},
	    {"./control", T_FILE, control, 0, 0644},
	    {"./postinst", T_FILE, "#!/bin/sh\nexit 0\n", 0, 0755},
	};
	struct tent data[] = {
	    {"./", T_DIR, NULL, 0, 0755},
	    {"./usr/", T_DIR, NULL, 0, 0755},
	    {"./usr/bin/", T_DIR, NULL, 0, 0755},
	    {"./usr/bin/hello", T_FILE, NULL, 100000, 0755},
	    {"./usr/bin/hi", T_SYMLINK, "hello", 0, 0777},
	};
	struct member mem[3];
	size_t clen, dlen, n = 0;
	uint8_t *c = make_tar_mem(ARCHIVE_FILTER_GZIP, ctl, 3, &clen);
	uint8_t *d = make_tar_mem(ARCHIVE_FILTER_XZ, data, 5, &dlen);

	mem[n++] = (struct member){"debian-binary", "2.0\n", 4};
	if (with_control)
		mem[n++] = (struct member){"control.tar.gz", c, clen};
	mem[n++] = (struct member){"data.tar.xz", d, dlen};
	make_ar(file, mem, n);
	free(c);
	free(d);
}

/* ------------------------------------------------------------------------------------------ */
/* Objects. */

START_TEST(objwriter_round_trip_names_object_by_uncompressed_sha256)
{
	size_t len = 300000, zlen;
	uint8_t *data = pattern(len, 1), hash[32], want[32], *z;
	uint64_t size, zsize;
	bool is_new;
	char rel[STORE_OBJPATH_LEN], hex[VERIFY_HASH_HEX], obj[600], expect[100];
	struct collect c = {0};
	struct stat st;

	put_object(data, len, hash, &size, &zsize, &is_new);
	ck_assert_int_eq(verify_sha256(data, len, want), 0);
	ck_assert_mem_eq(hash, want, 32);
	ck_assert(is_new);
	ck_assert_uint_eq(size, len);

	store_object_path(hash, rel);
	verify_hex(hash, 32, hex);
	snprintf(expect, sizeof(expect), "objects/%.2s/%s", hex, hex);
	ck_assert_str_eq(rel, expect);
	ck_assert_uint_eq(strlen(rel) + 1, STORE_OBJPATH_LEN);

	object_file(hash, obj, sizeof(obj));
	ck_assert_int_eq(stat(obj, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, zsize);
	ck_assert_uint_lt(zsize, len); /* it did compress */
	z = read_file(obj, &zlen);
	/* The object is a plain zstd frame: the library (and so the CLI) reads it. */
	ck_assert_uint_eq(ZSTD_findFrameCompressedSize(z, zlen), zlen);
	ck_assert_int_eq(unpack_all(hash, size, zsize, z, zlen, &c), 0);
	ck_assert_uint_eq(c.len, len);
	ck_assert_mem_eq(c.buf, data, len);
	ck_assert_uint_eq(count_tmp(), 0);
	free(c.buf);
	free(z);
	free(data);
}
END_TEST

/* A manifest of files f00..f(n-1): file i holds pattern(sizes[i], seeds[i]) (equal seeds and
 * sizes: one object for several files). Objects are written to the repository. */
static struct verify_manifest *pack_manifest(size_t n, const size_t *sizes, const unsigned *seeds)
{
	struct verify_manifest *m;

	ck_assert_int_eq(verify_manifest_new("pk", "1.0", "dir", &m), 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t *data = pattern(sizes[i], seeds[i]);
		struct verify_entry e = {.type = VERIFY_FILE, .mode = 0644};
		char path[16];
		bool is_new;

		snprintf(path, sizeof(path), "f%02zu", i);
		e.path = path;
		put_object(data, sizes[i], e.hash, &e.size, &e.zsize, &is_new);
		ck_assert_int_eq(verify_manifest_add(m, &e), 0);
		free(data);
	}
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	return m;
}

START_TEST(pack_layout_takes_each_small_object_once_in_file_order)
{
	size_t sizes[40];
	unsigned seeds[40];
	struct store_pack_entry *pe;
	struct verify_manifest *m;
	uint64_t len, off = 0;
	size_t n;

	for (size_t i = 0; i < 40; i++) {
		sizes[i] = 100 + i * 37;
		seeds[i] = (unsigned)i + 1;
	}
	sizes[5] = 300000;   /* noise past 64 KiB compressed: not in the pack */
	sizes[9] = sizes[3]; /* f09 and f03: one object, packed at f03's place */
	seeds[9] = seeds[3];
	m = pack_manifest(40, sizes, seeds);
	ck_assert_int_eq(store_pack_layout(m, &pe, &n, &len), 0);
	ck_assert_uint_eq(n, 38);
	for (size_t i = 0, k = 0; i < 40; i++) {
		const struct verify_entry *e = &m->entries[i];

		if (i == 9 || e->zsize > STORE_PACK_MAX_ZSIZE)
			continue;
		ck_assert_ptr_eq(pe[k].e, e);
		ck_assert_uint_eq(pe[k].offset, off);
		off += e->zsize;
		k++;
	}
	ck_assert_uint_eq(len, off);
	ck_assert_uint_gt(m->entries[5].zsize, STORE_PACK_MAX_ZSIZE);
	free(pe);
	verify_manifest_free(m);

	/* Fewer than STORE_PACK_MIN_OBJECTS small objects: no pack. */
	m = pack_manifest(STORE_PACK_MIN_OBJECTS - 1, sizes, seeds);
	ck_assert_int_eq(store_pack_layout(m, &pe, &n, &len), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(pe);
	verify_manifest_free(m);
}
END_TEST

/* The pack file at full: len bytes, each object's slice unpacking to its content. */
static uint8_t *pack_read_checked(const char *full, const struct store_pack_entry *pe, size_t n,
				  uint64_t len)
{
	size_t plen;
	uint8_t *pack = read_file(full, &plen);

	ck_assert_uint_eq(plen, len);
	for (size_t i = 0; i < n; i++) {
		struct collect c = {0};

		ck_assert_int_eq(unpack_all(pe[i].e->hash, pe[i].e->size, pe[i].e->zsize,
					    pack + pe[i].offset, pe[i].e->zsize, &c),
				 0);
		free(c.buf);
	}
	return pack;
}

START_TEST(pack_write_concatenates_the_objects_and_refuses_a_wrong_zsize)
{
	size_t sizes[20];
	unsigned seeds[20];
	struct store_pack_entry *pe;
	struct verify_manifest *m;
	char *path, full[600], obj[600];
	uint8_t *pack, *data;
	uint64_t len;
	size_t n;
	bool written;

	for (size_t i = 0; i < 20; i++) {
		sizes[i] = 1 + i * 501;
		seeds[i] = (unsigned)i + 100;
	}
	m = pack_manifest(20, sizes, seeds);
	ck_assert_int_eq(verify_manifest_file(m, ".pack", &path), 0);
	ck_assert_int_eq(strncmp(path, "targets/pk/", 11), 0);
	ck_assert_str_eq(path + strlen(path) - 9, ".1.0.pack");
	ck_assert_int_eq(store_pack_write(repofd, m, path, &written), 0);
	ck_assert(written);
	snprintf(full, sizeof(full), "%s/%s", repodir, path);
	ck_assert_int_eq(store_pack_layout(m, &pe, &n, &len), 0);
	pack = pack_read_checked(full, pe, n, len);
	/* There already: not written again. */
	ck_assert_int_eq(store_pack_write(repofd, m, path, &written), 0);
	ck_assert(!written);
	/* Damaged (one byte, the same length): written again. */
	pack[len / 2] ^= 0x5a;
	write_file(full, pack, len, 0644);
	ck_assert_int_eq(store_pack_write(repofd, m, path, &written), 0);
	ck_assert(written);
	free(pack);
	pack = pack_read_checked(full, pe, n, len);
	/* An object whose file is not its signed zsize: refused, naming it; nothing left. */
	ck_assert_int_eq(unlink(full), 0);
	object_file(pe[4].e->hash, obj, sizeof(obj));
	data = pattern(7, 1);
	ck_assert_int_eq(chmod(obj, 0644), 0);
	write_file(obj, data, 7, 0644);
	stork_error_clear();
	ck_assert_int_eq(store_pack_write(repofd, m, path, &written), STORK_EBADLEN);
	ck_assert_msg(strstr(stork_error_detail(), "7 bytes, but the manifest signs zsize"), "%s",
		      stork_error_detail());
	ck_assert_msg(strstr(stork_error_detail(), obj + strlen(repodir) + 1), "%s",
		      stork_error_detail());
	ck_assert_int_eq(access(full, F_OK), -1);
	{
		char dir[600];
		DIR *d;
		struct dirent *de;

		snprintf(dir, sizeof(dir), "%s/targets/pk", repodir);
		d = opendir(dir);
		ck_assert_ptr_nonnull(d);
		while ((de = readdir(d)))
			ck_assert_msg(strncmp(de->d_name, ".tmp-", 5) != 0, "left %s", de->d_name);
		closedir(d);
	}
	free(data);
	free(pack);
	free(pe);
	free(path);
	verify_manifest_free(m);
}
END_TEST

struct cutlog {
	size_t begins, ends, bytes;
	size_t last; /* the entry data last came for */
	bool open;
};

static int cut_begin(void *ctx, size_t i)
{
	struct cutlog *l = ctx;

	ck_assert(!l->open);
	ck_assert_uint_eq(i, l->begins);
	l->begins++;
	l->open = true;
	l->last = i;
	return 0;
}

static int cut_data(void *ctx, size_t i, const void *buf, size_t len)
{
	struct cutlog *l = ctx;

	ck_assert(l->open);
	ck_assert_uint_eq(i, l->last);
	ck_assert_uint_gt(len, 0);
	l->bytes += len;
	return 0;
}

static int cut_end(void *ctx, size_t i)
{
	struct cutlog *l = ctx;

	ck_assert(l->open);
	ck_assert_uint_eq(i, l->ends);
	l->ends++;
	l->open = false;
	return 0;
}

START_TEST(pack_cut_splits_any_chunking_at_the_layout_and_refuses_extra_bytes)
{
	struct verify_entry es[5] = {
	    {.zsize = 3}, {.zsize = 0}, {.zsize = 7}, {.zsize = 1}, {.zsize = 4}};
	struct store_pack_entry pe[5];
	uint8_t buf[15] = {0};
	uint64_t off = 0;

	for (int i = 0; i < 5; i++) {
		pe[i] = (struct store_pack_entry){&es[i], off};
		off += es[i].zsize;
	}
	for (size_t chunk = 1; chunk <= 16; chunk++) {
		struct cutlog l = {0};
		struct store_pack_cut c = {.ents = pe,
					   .n = 5,
					   .begin = cut_begin,
					   .data = cut_data,
					   .end = cut_end,
					   .ctx = &l};

		for (size_t at = 0; at < 15; at += chunk)
			ck_assert_int_eq(
			    store_pack_cut(&c, buf + at, at + chunk > 15 ? 15 - at : chunk), 0);
		ck_assert_uint_eq(l.begins, 5);
		ck_assert_uint_eq(l.ends, 5);
		ck_assert_uint_eq(l.bytes, 15);
		ck_assert_uint_eq(c.cur, 5);
		ck_assert_int_eq(store_pack_cut(&c, buf, 0), 0);
		ck_assert_int_eq(store_pack_cut(&c, buf, 1), STORK_EBADLEN);
	}
}
END_TEST

START_TEST(objwriter_empty_content_is_a_valid_object)
{
	uint8_t hash[32], want[32], *z;
	uint64_t size, zsize;
	bool is_new;
	char obj[600];
	size_t zlen;

	put_object("", 0, hash, &size, &zsize, &is_new);
	ck_assert_int_eq(verify_sha256("", 0, want), 0);
	ck_assert_mem_eq(hash, want, 32);
	ck_assert_uint_eq(size, 0);
	ck_assert_uint_gt(zsize, 0);
	object_file(hash, obj, sizeof(obj));
	z = read_file(obj, &zlen);
	ck_assert_int_eq(unpack_all(hash, 0, zsize, z, zlen, NULL), 0);
	free(z);
}
END_TEST

START_TEST(objwriter_same_content_twice_keeps_one_object)
{
	uint8_t *data = pattern(50000, 2), h1[32], h2[32];
	uint64_t s1, z1, s2, z2;
	bool n1, n2;
	size_t objs, tmp;

	put_object(data, 50000, h1, &s1, &z1, &n1);
	put_object(data, 50000, h2, &s2, &z2, &n2);
	ck_assert(n1);
	ck_assert(!n2);
	ck_assert_mem_eq(h1, h2, 32);
	ck_assert_uint_eq(z1, z2);
	count_objects(&objs, &tmp);
	ck_assert_uint_eq(objs, 1);
	ck_assert_uint_eq(tmp, 0);
	free(data);
}
END_TEST

START_TEST(objwriter_concurrent_writers_of_one_object_never_clobber)
{
	struct store_objwriter *a, *b;
	uint8_t ha[32], hb[32];
	uint64_t sa, za, sb, zb;
	bool na, nb;
	size_t objs, tmp;

	/* Both open before either commits: the second to commit finds the first's file. */
	ck_assert_int_eq(store_objwriter_new(repofd, &a), 0);
	ck_assert_int_eq(store_objwriter_new(repofd, &b), 0);
	ck_assert_int_eq(store_objwriter_write(a, "same bytes", 10), 0);
	ck_assert_int_eq(store_objwriter_write(b, "same bytes", 10), 0);
	count_objects(&objs, &tmp);
	ck_assert_uint_eq(tmp, 2);
	ck_assert_int_eq(store_objwriter_commit(b, hb, &sb, &zb, &nb), 0);
	ck_assert_int_eq(store_objwriter_commit(a, ha, &sa, &za, &na), 0);
	ck_assert(nb);
	ck_assert(!na);
	ck_assert_uint_eq(za, zb);
	count_objects(&objs, &tmp);
	ck_assert_uint_eq(objs, 1);
	ck_assert_uint_eq(tmp, 0);
}
END_TEST

START_TEST(objwriter_abort_leaves_no_temporary_file)
{
	struct store_objwriter *w;
	size_t objs, tmp;

	ck_assert_int_eq(store_objwriter_new(repofd, &w), 0);
	ck_assert_int_eq(store_objwriter_write(w, "partial", 7), 0);
	ck_assert_uint_eq(count_tmp(), 1);
	store_objwriter_abort(w);
	store_objwriter_abort(NULL);
	count_objects(&objs, &tmp);
	ck_assert_uint_eq(objs, 0);
	ck_assert_uint_eq(tmp, 0);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Unpacking. */

struct zobj {
	uint8_t *data, *z;
	size_t len, zlen;
	uint8_t hash[32];
};

static void zobj_make(struct zobj *o, size_t len)
{
	o->data = pattern(len, 3);
	o->len = len;
	o->z = malloc(ZSTD_compressBound(len));
	o->zlen = ZSTD_compress(o->z, ZSTD_compressBound(len), o->data, len, 3);
	ck_assert(!ZSTD_isError(o->zlen));
	ck_assert_int_eq(verify_sha256(o->data, len, o->hash), 0);
}

static void zobj_free(struct zobj *o)
{
	free(o->data);
	free(o->z);
}

START_TEST(unpack_rejects_wrong_hash)
{
	struct zobj o;
	struct collect c = {0};

	zobj_make(&o, 20000);
	ck_assert_int_eq(unpack_all(o.hash, o.len, o.zlen, o.z, o.zlen, &c), 0);
	o.hash[5] ^= 1;
	ck_assert_int_eq(unpack_all(o.hash, o.len, o.zlen, o.z, o.zlen, NULL), STORK_EBADHASH);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "SHA-256"));
	zobj_free(&o);
	free(c.buf);
}
END_TEST

START_TEST(unpack_rejects_compressed_bytes_beyond_zsize)
{
	struct zobj o;
	struct store_unpack *u;
	uint8_t *more;

	zobj_make(&o, 20000);
	/* zsize one short: the write that crosses it fails. */
	ck_assert_int_eq(unpack_all(o.hash, o.len, o.zlen - 1, o.z, o.zlen, NULL), STORK_EBADLEN);
	/* A whole object and then one byte more. */
	more = malloc(o.zlen + 1);
	memcpy(more, o.z, o.zlen);
	more[o.zlen] = 0;
	ck_assert_int_eq(store_unpack_new(o.hash, o.len, o.zlen, NULL, NULL, &u), 0);
	ck_assert_int_eq(store_unpack_write(u, more, o.zlen), 0);
	ck_assert_int_eq(store_unpack_write(u, more + o.zlen, 1), STORK_EBADLEN);
	ck_assert_int_eq(store_unpack_finish(u), STORK_EBADLEN);
	store_unpack_free(u);
	/* A stated zsize larger than what comes is caught at the end. */
	ck_assert_int_eq(unpack_all(o.hash, o.len, o.zlen + 1, o.z, o.zlen, NULL), STORK_EBADLEN);
	free(more);
	zobj_free(&o);
}
END_TEST

/* A peer serves objects uncompressed: the raw unpacker checks length and SHA-256 only. */
static int unpack_raw_all(const uint8_t hash[32], uint64_t size, const void *buf, size_t len,
			  struct collect *c)
{
	struct store_unpack *u;
	size_t off = 0;
	int r = 0;

	ck_assert_int_eq(store_unpack_new_raw(hash, size, c ? collect_out : NULL, c, &u), 0);
	while (off < len && r == 0) {
		size_t n = len - off < 1000 ? len - off : 1000;

		r = store_unpack_write(u, (const uint8_t *)buf + off, n);
		off += n;
	}
	if (r == 0)
		r = store_unpack_finish(u);
	store_unpack_free(u);
	return r;
}

START_TEST(unpack_raw_checks_length_and_hash_of_uncompressed_bytes)
{
	struct collect c = {0};
	uint8_t data[5000], hash[32];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	ck_assert_int_eq(verify_sha256(data, sizeof(data), hash), 0);
	ck_assert_int_eq(unpack_raw_all(hash, sizeof(data), data, sizeof(data), &c), 0);
	ck_assert_uint_eq(c.len, sizeof(data));
	ck_assert_mem_eq(c.buf, data, sizeof(data));
	/* Short, long, flipped: each refused, and never more than size bytes passed on. */
	c.len = 0;
	ck_assert_int_eq(unpack_raw_all(hash, sizeof(data), data, sizeof(data) - 1, &c),
			 STORK_EBADLEN);
	c.len = 0;
	ck_assert_int_eq(unpack_raw_all(hash, sizeof(data) - 1, data, sizeof(data), &c),
			 STORK_EBADLEN);
	ck_assert_uint_le(c.len, sizeof(data) - 1);
	data[100] ^= 1;
	ck_assert_int_eq(unpack_raw_all(hash, sizeof(data), data, sizeof(data), NULL),
			 STORK_EBADHASH);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "SHA-256"));
	/* Compressed bytes are not what a raw reader accepts. */
	ck_assert_int_eq(verify_sha256("", 0, hash), 0);
	ck_assert_int_eq(unpack_raw_all(hash, 0, "", 0, NULL), 0);
	ck_assert_int_eq(unpack_raw_all(hash, 0, "x", 1, NULL), STORK_EBADLEN);
	free(c.buf);
}
END_TEST

START_TEST(unpack_stops_a_zstd_bomb_before_passing_more_than_size)
{
	size_t big = 64 << 20, zcap = ZSTD_compressBound(big), zlen;
	uint8_t *zeros = calloc(1, big), *z = malloc(zcap), hash[32];
	struct collect c = {0};
	int r;

	ck_assert_ptr_nonnull(zeros);
	zlen = ZSTD_compress(z, zcap, zeros, big, 3);
	ck_assert(!ZSTD_isError(zlen));
	ck_assert_uint_lt(zlen, 1 << 20);
	ck_assert_int_eq(verify_sha256(zeros, 4096, hash), 0);
	/* Signed as 4096 bytes; the stream expands to 64 MiB. */
	r = unpack_all(hash, 4096, zlen, z, zlen, &c);
	ck_assert_int_eq(r, STORK_EBADLEN);
	ck_assert_uint_le(c.len, 4096);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "more than the 4096 bytes"));
	free(c.buf);
	free(zeros);
	free(z);
}
END_TEST

START_TEST(unpack_rejects_truncated_and_corrupt_streams)
{
	struct zobj o;
	struct collect c = {0};
	size_t half;

	zobj_make(&o, 200000);
	half = o.zlen / 2;
	/* Cut, and signed as cut: the frame never completes. */
	ck_assert_int_eq(unpack_all(o.hash, o.len, half, o.z, half, &c), STORK_EFORMAT);
	ck_assert_uint_lt(c.len, o.len);
	/* Cut, signed whole: too few compressed bytes. */
	ck_assert_int_eq(unpack_all(o.hash, o.len, o.zlen, o.z, half, NULL), STORK_EBADLEN);
	/* Uncompressed size not as signed. */
	ck_assert_int_eq(unpack_all(o.hash, o.len + 1, o.zlen, o.z, o.zlen, NULL), STORK_EBADLEN);
	/* Not zstd at all. */
	o.z[0] ^= 0xff;
	ck_assert_int_eq(unpack_all(o.hash, o.len, o.zlen, o.z, o.zlen, NULL), STORK_EFORMAT);
	free(c.buf);
	zobj_free(&o);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Importing directories. */

START_TEST(import_directory_keeps_files_symlinks_modes)
{
	char src[400], p[600];
	uint8_t *big = pattern(3 << 20, 4);
	struct verify_manifest *m = NULL;
	struct store_import_stats st;
	const struct verify_entry *e;

	tpath(src, sizeof(src), "src");
	ck_assert_int_eq(mkdir(src, 0755), 0);
	snprintf(p, sizeof(p), "%s/usr", src);
	ck_assert_int_eq(mkdir(p, 0750), 0);
	snprintf(p, sizeof(p), "%s/usr/bin", src);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/usr/bin/hello", src);
	write_file(p, big, 3 << 20, 0755);
	snprintf(p, sizeof(p), "%s/usr/bin/su", src);
	write_file(p, "setuid", 6, 04755);
	snprintf(p, sizeof(p), "%s/empty", src);
	write_file(p, "", 0, 0600);
	snprintf(p, sizeof(p), "%s/usr/bin/hi", src);
	ck_assert_int_eq(symlink("hello", p), 0);
	snprintf(p, sizeof(p), "%s/etc", src);
	ck_assert_int_eq(symlink("/etc", p), 0); /* not followed */

	ck_assert_int_eq(import(src, 0, &m, &st), 0);
	ck_assert_str_eq(m->format, "dir");
	ck_assert_str_eq(m->name, "pkg");
	ck_assert_uint_eq(m->n, 7);
	check_file(m, "usr/bin/hello", big, 3 << 20, 0755);
	check_file(m, "usr/bin/su", "setuid", 6, 04755);
	check_file(m, "empty", "", 0, 0600);
	e = verify_manifest_find(m, "usr");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->type, VERIFY_DIR);
	ck_assert_uint_eq(e->mode, 0750);
	e = verify_manifest_find(m, "usr/bin/hi");
	ck_assert_int_eq(e->type, VERIFY_SYMLINK);
	ck_assert_str_eq(e->target, "hello");
	e = verify_manifest_find(m, "etc");
	ck_assert_int_eq(e->type, VERIFY_SYMLINK);
	ck_assert_str_eq(e->target, "/etc");
	ck_assert_ptr_null(verify_manifest_find(m, "etc/passwd"));
	ck_assert_uint_eq(st.files, 3);
	ck_assert_uint_eq(st.entries, 7);
	ck_assert_uint_eq(st.bytes, (3 << 20) + 6);
	ck_assert_uint_eq(st.new_objects, 3);
	ck_assert_uint_eq(st.new_bytes, st.bytes);
	ck_assert_uint_eq(st.reused_bytes, 0);
	verify_manifest_free(m);

	/* Again: every object is already there. */
	ck_assert_int_eq(import(src, 0, &m, &st), 0);
	ck_assert_uint_eq(st.new_objects, 0);
	ck_assert_uint_eq(st.new_bytes, 0);
	ck_assert_uint_eq(st.reused_bytes, st.bytes);
	verify_manifest_free(m);
	free(big);
}
END_TEST

START_TEST(import_counts_a_repeated_object_as_new_once)
{
	char src[400], p[600];
	struct verify_manifest *m = NULL;
	struct store_import_stats st;

	tpath(src, sizeof(src), "src");
	ck_assert_int_eq(mkdir(src, 0755), 0);
	snprintf(p, sizeof(p), "%s/a", src);
	write_file(p, "twice", 5, 0644);
	snprintf(p, sizeof(p), "%s/b", src);
	write_file(p, "twice", 5, 0644);
	ck_assert_int_eq(import(src, 0, &m, &st), 0);
	ck_assert_uint_eq(st.files, 2);
	ck_assert_uint_eq(st.new_objects, 1);
	ck_assert_uint_eq(st.new_bytes, 5);
	ck_assert_uint_eq(st.reused_bytes, 5);
	verify_manifest_free(m);
}
END_TEST

START_TEST(import_directory_refuses_fifos_devices_and_too_much)
{
	char src[400], p[600];

	tpath(src, sizeof(src), "src");
	ck_assert_int_eq(mkdir(src, 0755), 0);
	snprintf(p, sizeof(p), "%s/dev", src);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/dev/fifo", src);
	ck_assert_int_eq(mkfifo(p, 0644), 0);
	import_refused(src, 0, STORK_EHOSTILE, "dev/fifo", "fifos are not allowed");
	ck_assert_int_eq(unlink(p), 0);

	if (geteuid() == 0) {
		snprintf(p, sizeof(p), "%s/dev/null", src);
		ck_assert_int_eq(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
		import_refused(src, 0, STORK_EHOSTILE, "dev/null",
			       "device nodes are not allowed in packages");
		ck_assert_int_eq(unlink(p), 0);
	}

	snprintf(p, sizeof(p), "%s/a", src);
	write_file(p, "0123456789", 10, 0644);
	snprintf(p, sizeof(p), "%s/b", src);
	write_file(p, "0123456789", 10, 0644);
	import_refused(src, 15, STORK_ETOOBIG, NULL, "unpacks to more than 15 bytes (--max-size)");
	ck_assert(strstr(stork_error_detail(), "entry \"a\"") ||
		  strstr(stork_error_detail(), "entry \"b\""));
}
END_TEST

START_TEST(import_refuses_control_characters_in_directory_names)
{
	char src[400], p[600];

	tpath(src, sizeof(src), "src");
	ck_assert_int_eq(mkdir(src, 0755), 0);
	snprintf(p, sizeof(p), "%s/bad\nname", src);
	write_file(p, "x", 1, 0644);
	import_refused(src, 0, STORK_EHOSTILE, "bad\\x0aname", "control character");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Importing tar archives. */

static const struct tent good_tar[] = {
    {"./", T_DIR, NULL, 0, 0755},
    {"./usr/", T_DIR, NULL, 0, 0755},
    {"./usr/bin/", T_DIR, NULL, 0, 0755},
    {"./usr/bin/hello", T_FILE, NULL, 2 << 20, 0755},
    {"./usr/bin/hi", T_SYMLINK, "hello", 0, 0777},
    {"./usr/bin/hello2", T_HARDLINK, "./usr/bin/hello", 0, 0755},
    {"./usr/sbin/su", T_FILE, "root!", 0, 04755},
    {"./usr/share/empty", T_FILE, "", 0, 0644},
};

struct progress {
	uint64_t calls, last_done, last_total;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;

	ck_assert_uint_ge(done, p->last_done);
	p->calls++;
	p->last_done = done;
	p->last_total = total;
}

static void check_good_tar(const char *file, int filter)
{
	struct store_import_opts o = {0};
	struct verify_manifest *m = NULL;
	struct store_import_stats st;
	struct progress pr = {0};
	const struct verify_entry *a, *b;
	uint8_t *hello = pattern(2 << 20, 7);
	struct stat fst;

	make_tar(file, filter, good_tar, sizeof(good_tar) / sizeof(good_tar[0]));
	o.repofd = repofd;
	o.progress = on_progress;
	o.progress_ctx = &pr;
	ck_assert_msg(store_import(file, "hello", "2.10-3", &o, &m, &st) == 0, "%s",
		      stork_error_detail());
	ck_assert_str_eq(m->format, "tar");
	ck_assert_str_eq(m->version, "2.10-3");
	check_file(m, "usr/bin/hello", hello, 2 << 20, 0755);
	check_file(m, "usr/bin/hello2", hello, 2 << 20, 0755);
	check_file(m, "usr/sbin/su", "root!", 5, 04755);
	check_file(m, "usr/share/empty", "", 0, 0644);
	a = verify_manifest_find(m, "usr/bin/hi");
	ck_assert_int_eq(a->type, VERIFY_SYMLINK);
	ck_assert_str_eq(a->target, "hello");
	ck_assert_int_eq(a->mtime, 1700000000);
	/* Parents the archive did not list are added. */
	b = verify_manifest_find(m, "usr/sbin");
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b->type, VERIFY_DIR);
	ck_assert_ptr_null(verify_manifest_find(m, "."));
	ck_assert_uint_eq(m->n, 9);
	ck_assert_uint_eq(st.files, 4);
	ck_assert_uint_eq(st.bytes, 2 * (2 << 20) + 5);
	ck_assert_uint_eq(m->total_size, st.bytes);
	ck_assert_int_eq(stat(file, &fst), 0);
	ck_assert_uint_ge(pr.calls, 2);
	ck_assert_uint_eq(pr.last_total, (uint64_t)fst.st_size);
	ck_assert_uint_eq(pr.last_done, (uint64_t)fst.st_size);
	verify_manifest_free(m);
	free(hello);
}

/* A chunked file's chunks: each an object of its repository, together its content. */
static void check_chunked(const struct verify_manifest *m, const char *path, const uint8_t *data,
			  size_t len)
{
	const struct verify_entry *e = verify_manifest_find(m, path);
	uint8_t want[32];
	uint64_t zsum = 0;

	ck_assert_msg(e != NULL, "no entry %s", path);
	ck_assert_uint_eq(e->size, len);
	ck_assert_int_eq(verify_sha256(data, len, want), 0);
	ck_assert_mem_eq(e->hash, want, 32);
	ck_assert_uint_ge(e->nchunks, 2);
	for (size_t i = 0; i < e->nchunks; i++) {
		const struct verify_entry *c = &e->chunks[i];
		struct collect col = {0};
		char obj[600];
		size_t zlen;
		uint8_t *z;

		object_file(c->hash, obj, sizeof(obj));
		z = read_file(obj, &zlen);
		ck_assert_uint_eq(zlen, c->zsize);
		ck_assert_msg(unpack_all(c->hash, c->size, c->zsize, z, zlen, &col) == 0,
			      "%s chunk %zu: %s", path, i, stork_error_detail());
		ck_assert_uint_eq(col.len, c->size);
		ck_assert_mem_eq(col.buf, data + c->offset, c->size);
		zsum += c->zsize;
		free(col.buf);
		free(z);
	}
	ck_assert_uint_eq(zsum, e->zsize);
}

/* A file above STORE_CHUNK_FILE_MIN is stored as chunks, and a hard link to it lists the same
 * chunks; with whole set, as one object. */
START_TEST(import_chunks_big_files_and_their_hard_links)
{
	static const struct tent ents[] = {
	    {"big", T_FILE, NULL, (9 << 20) + 7, 0644},
	    {"edge", T_FILE, NULL, 4 << 20, 0644},
	    {"hl", T_HARDLINK, "big", 0, 0644},
	};
	struct store_import_opts o = {0};
	struct verify_manifest *m = NULL;
	uint8_t *data = pattern((9 << 20) + 7, 7), *edge = pattern(4 << 20, 7);
	const struct verify_entry *a, *b;
	char f[400];

	tpath(f, sizeof(f), "big.tar");
	make_tar(f, ARCHIVE_FILTER_NONE, ents, 3);
	ck_assert_msg(import(f, 0, &m, NULL) == 0, "%s", stork_error_detail());
	check_chunked(m, "big", data, (9 << 20) + 7);
	check_chunked(m, "hl", data, (9 << 20) + 7);
	a = verify_manifest_find(m, "big");
	b = verify_manifest_find(m, "hl");
	ck_assert_uint_eq(a->nchunks, b->nchunks);
	ck_assert_mem_eq(a->chunks, b->chunks, a->nchunks * sizeof(*a->chunks));
	/* exactly the threshold: whole */
	check_file(m, "edge", edge, 4 << 20, 0644);
	ck_assert_uint_eq(verify_manifest_find(m, "edge")->nchunks, 0);
	verify_manifest_free(m);
	m = NULL;
	o.repofd = repofd;
	o.whole = true;
	ck_assert_msg(store_import(f, "pkg", "2", &o, &m, NULL) == 0, "%s", stork_error_detail());
	check_file(m, "big", data, (9 << 20) + 7, 0644);
	ck_assert_uint_eq(verify_manifest_find(m, "big")->nchunks, 0);
	verify_manifest_free(m);
	free(data);
	free(edge);
}
END_TEST

/* A directory is read on the pool's workers, but a file above STORE_CHUNK_FILE_MIN is still cut
 * into chunks (on the walk's thread); the tree index keeps each chunked file's chunk list, and a
 * tree read back from it gives the manifest's chunks; a forged chunk list is refused. */
START_TEST(import_directory_chunks_and_tree_index_keeps_them)
{
	char src[400], p[600], sdir[400], idx[700], hex[VERIFY_HASH_HEX];
	uint8_t *big = pattern((9 << 20) + 7, 9), id[VERIFY_HASH_LEN] = {7};
	struct verify_manifest *m = NULL;
	struct store_tree *t = NULL, *u = NULL;
	struct store *s = NULL;
	const struct verify_entry *want;
	struct verify_entry got;
	size_t len;
	uint8_t *b;
	long i;

	tpath(src, sizeof(src), "bigdir");
	ck_assert_int_eq(mkdir(src, 0755), 0);
	snprintf(p, sizeof(p), "%s/big", src);
	write_file(p, big, (9 << 20) + 7, 0644);
	snprintf(p, sizeof(p), "%s/small", src);
	write_file(p, "small", 5, 0644);
	ck_assert_msg(import(src, 0, &m, NULL) == 0, "%s", stork_error_detail());
	check_chunked(m, "big", big, (9 << 20) + 7);
	check_file(m, "small", "small", 5, 0644);

	ck_assert_int_eq(store_tree_build(m, id, &t), 0);
	tpath(sdir, sizeof(sdir), "treestore");
	ck_assert_int_eq(store_open(sdir, &s), 0);
	ck_assert_int_eq(store_tree_save(s, t), 0);
	ck_assert_msg(store_tree_open(s, id, &u) == 0, "%s", stork_error_detail());
	want = verify_manifest_find(m, "big");
	i = store_tree_find(u, "big");
	ck_assert_int_ge(i, 0);
	store_tree_entry(u, (size_t)i, &got);
	ck_assert_uint_eq(got.size, want->size);
	ck_assert_uint_eq(got.zsize, want->zsize);
	ck_assert_uint_eq(got.nchunks, want->nchunks);
	for (size_t k = 0; k < want->nchunks; k++) {
		ck_assert_uint_eq(got.chunks[k].type, VERIFY_FILE);
		ck_assert_uint_eq(got.chunks[k].offset, want->chunks[k].offset);
		ck_assert_uint_eq(got.chunks[k].size, want->chunks[k].size);
		ck_assert_uint_eq(got.chunks[k].zsize, want->chunks[k].zsize);
		ck_assert_mem_eq(got.chunks[k].hash, want->chunks[k].hash, VERIFY_HASH_LEN);
	}
	ck_assert_uint_eq(verify_entry_chunk_at(&got, 5 << 20),
			  verify_entry_chunk_at(want, 5 << 20));
	store_tree_entry(u, (size_t)store_tree_find(u, "small"), &got);
	ck_assert_uint_eq(got.nchunks, 0);
	ck_assert_ptr_null(got.chunks);
	store_tree_free(u);
	u = NULL;

	/* The second chunk moved by one byte, the checksum made right again: refused. */
	verify_hex(id, VERIFY_HASH_LEN, hex);
	snprintf(idx, sizeof(idx), "%s/trees/%s", sdir, hex);
	b = read_file(idx, &len);
	{
		uint64_t chunkoff, off;

		memcpy(&chunkoff, b + 72, 8);
		memcpy(&off, b + chunkoff + 56, 8);
		off++;
		memcpy(b + chunkoff + 56, &off, 8);
		ck_assert_int_eq(verify_sha256(b, len - VERIFY_HASH_LEN, b + len - VERIFY_HASH_LEN),
				 0);
	}
	write_file(idx, b, len, 0644);
	ck_assert_int_eq(store_tree_open(s, id, &u), STORK_EBADHASH);
	ck_assert_msg(strstr(stork_error_detail(), "chunk list does not cover its size"), "%s",
		      stork_error_detail());
	ck_assert_ptr_null(u);
	/* A version 1 index (no chunk lists) is not read as this format. */
	memcpy(b, "storktr1", 8);
	ck_assert_int_eq(verify_sha256(b, len - VERIFY_HASH_LEN, b + len - VERIFY_HASH_LEN), 0);
	write_file(idx, b, len, 0644);
	ck_assert_int_eq(store_tree_open(s, id, &u), STORK_EBADHASH);
	ck_assert_msg(strstr(stork_error_detail(), "not a tree index of this format"), "%s",
		      stork_error_detail());
	free(b);
	store_tree_free(t);
	store_close(s);
	verify_manifest_free(m);
	free(big);
}
END_TEST

START_TEST(import_tar_plain_gz_zst)
{
	char f[400];

	tpath(f, sizeof(f), "pkg.tar");
	check_good_tar(f, ARCHIVE_FILTER_NONE);
	tpath(f, sizeof(f), "pkg.tar.gz");
	check_good_tar(f, ARCHIVE_FILTER_GZIP);
	tpath(f, sizeof(f), "pkg.tar.zst");
	check_good_tar(f, ARCHIVE_FILTER_ZSTD);
	tpath(f, sizeof(f), "pkg.tar.xz");
	check_good_tar(f, ARCHIVE_FILTER_XZ);
}
END_TEST

START_TEST(import_detects_the_format_by_content)
{
	char f[400];
	struct verify_manifest *m = NULL;
	struct tent one[] = {{"a", T_FILE, "x", 0, 0644}};

	tpath(f, sizeof(f), "package.bin");
	make_tar(f, ARCHIVE_FILTER_GZIP, one, 1);
	ck_assert_int_eq(import(f, 0, &m, NULL), 0);
	ck_assert_str_eq(m->format, "tar");
	verify_manifest_free(m);
}
END_TEST

static void hostile(const char *name, int filter, const struct tent *ents, size_t n, int code,
		    const char *entry, const char *words)
{
	char f[400];

	tpath(f, sizeof(f), name);
	make_tar(f, filter, ents, n);
	import_refused(f, 0, code, entry, words);
}

#define HOSTILE(name, code, entry, words, ...)                                                     \
	do {                                                                                       \
		const struct tent e_[] = {__VA_ARGS__};                                            \
		hostile(name, ARCHIVE_FILTER_NONE, e_, sizeof(e_) / sizeof(e_[0]), code, entry,    \
			words);                                                                    \
	} while (0)

START_TEST(import_refuses_hostile_tar_members)
{
	HOSTILE("dotdot.tar", STORK_EHOSTILE, "../x", "leaves the package root",
		{"ok", T_FILE, "fine", 0, 0}, {"../x", T_FILE, "evil", 0, 0});
	HOSTILE("inner-dotdot.tar", STORK_EHOSTILE, "a/../../x", "leaves the package root",
		{"a/../../x", T_FILE, "evil", 0, 0});
	HOSTILE("abs.tar", STORK_EHOSTILE, "/abs", "absolute path", {"/abs", T_FILE, "x", 0, 0});
	HOSTILE("through-symlink.tar", STORK_EHOSTILE, "l/passwd", "below the symlink \"l\"",
		{"l", T_SYMLINK, "/etc", 0, 0}, {"l/passwd", T_FILE, "root::0:0", 0, 0});
	HOSTILE("symlink-after.tar", STORK_EHOSTILE, "l", "earlier members",
		{"l/passwd", T_FILE, "x", 0, 0}, {"l", T_SYMLINK, "/etc", 0, 0});
	HOSTILE("below-file.tar", STORK_EHOSTILE, "f/x", "below the file \"f\"",
		{"f", T_FILE, "x", 0, 0}, {"f/x", T_FILE, "y", 0, 0});
	HOSTILE("chr.tar", STORK_EHOSTILE, "dev/null", "device nodes are not allowed in packages",
		{"dev/", T_DIR, NULL, 0, 0}, {"dev/null", T_CHR, NULL, 0, 0666});
	HOSTILE("fifo.tar", STORK_EHOSTILE, "p", "fifos are not allowed",
		{"p", T_FIFO, NULL, 0, 0});
	HOSTILE("dup.tar", STORK_EHOSTILE, "a", "duplicate path", {"a", T_FILE, "1", 0, 0},
		{"./a", T_FILE, "2", 0, 0});
	HOSTILE("dupdir.tar", STORK_EHOSTILE, "d", "duplicate path", {"d/", T_DIR, NULL, 0, 0},
		{"d/x", T_FILE, "1", 0, 0}, {"./d", T_DIR, NULL, 0, 0});
	HOSTILE("hardlink.tar", STORK_EHOSTILE, "h", "not an earlier member",
		{"h", T_HARDLINK, "/etc/shadow", 0, 0});
	HOSTILE("hardlink-later.tar", STORK_EHOSTILE, "h", "not an earlier member",
		{"h", T_HARDLINK, "f", 0, 0}, {"f", T_FILE, "x", 0, 0});
	HOSTILE("ctrl.tar", STORK_EHOSTILE, "a\\x1b[2Jb", "control character",
		{"a\x1b[2Jb", T_FILE, "x", 0, 0});
	HOSTILE("empty-component.tar", STORK_EHOSTILE, "a//b", "empty",
		{"a//b", T_FILE, "x", 0, 0});
}
END_TEST

START_TEST(import_refuses_names_that_are_not_utf8)
{
	const struct tent ents[] = {{"bad\xe9name", T_FILE, "x", 0, 0}};
	struct archive *a = tar_writer_fmt(ARCHIVE_FILTER_NONE, ARCHIVE_FORMAT_TAR_GNUTAR);
	char f[400];

	/* GNU tar stores name bytes as they are (pax would want UTF-8). */
	tpath(f, sizeof(f), "latin1.tar");
	ck_assert_int_eq(archive_write_open_filename(a, f), ARCHIVE_OK);
	write_entries(a, ents, 1);
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	import_refused(f, 0, STORK_EHOSTILE, "bad\\xe9name", "not valid UTF-8");
}
END_TEST

START_TEST(import_refuses_a_truncated_archive)
{
	char f[400];
	struct tent ents[] = {{"first", T_FILE, "ok", 0, 0}, {"big", T_FILE, NULL, 200000, 0}};
	struct stat st;

	tpath(f, sizeof(f), "cut.tar");
	make_tar(f, ARCHIVE_FILTER_NONE, ents, 2);
	ck_assert_int_eq(stat(f, &st), 0);
	ck_assert_int_eq(truncate(f, 100000), 0);
	import_refused(f, 0, STORK_EFORMAT, "big", "truncated or corrupt archive");

	tpath(f, sizeof(f), "cut.tar.gz");
	make_tar(f, ARCHIVE_FILTER_GZIP, ents, 2);
	ck_assert_int_eq(stat(f, &st), 0);
	ck_assert_int_eq(truncate(f, st.st_size - 30), 0);
	import_refused(f, 0, STORK_EFORMAT, NULL, "truncated or corrupt archive");
}
END_TEST

START_TEST(import_refuses_a_gzip_bomb_past_max_size)
{
	char f[400];
	struct archive *a = tar_writer(ARCHIVE_FILTER_GZIP);
	struct archive_entry *ae = archive_entry_new();
	uint8_t *zeros = calloc(1, 1 << 20);
	struct stat st;
	int i;

	tpath(f, sizeof(f), "bomb.tar.gz");
	ck_assert_int_eq(archive_write_open_filename(a, f), ARCHIVE_OK);
	archive_entry_set_pathname(ae, "zeros");
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0644);
	archive_entry_set_size(ae, 64 << 20);
	ck_assert_int_eq(archive_write_header(a, ae), ARCHIVE_OK);
	for (i = 0; i < 64; i++)
		ck_assert_int_eq(archive_write_data(a, zeros, 1 << 20), 1 << 20);
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(ae);
	free(zeros);
	ck_assert_int_eq(stat(f, &st), 0);
	ck_assert_int_lt(st.st_size, 1 << 20);

	import_refused(f, 16 << 20, STORK_ETOOBIG, "zeros", "unpacks to more than 16777216 bytes");
}
END_TEST

START_TEST(import_refuses_formats_that_are_not_packages)
{
	char f[400];
	struct archive *a;
	struct archive_entry *ae;
	struct tent one[] = {{"a", T_FILE, "x", 0, 0644}};
	int fmt;

	/* zip, and cpio outside an rpm */
	for (fmt = 0; fmt < 2; fmt++) {
		a = archive_write_new();
		ae = archive_entry_new();
		tpath(f, sizeof(f), fmt ? "pkg.cpio" : "pkg.zip");
		if (fmt)
			archive_write_set_format_cpio_newc(a);
		else
			archive_write_set_format_zip(a);
		archive_write_add_filter(a, ARCHIVE_FILTER_NONE);
		ck_assert_int_eq(archive_write_open_filename(a, f), ARCHIVE_OK);
		archive_entry_set_pathname(ae, one[0].path);
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_perm(ae, 0644);
		archive_entry_set_size(ae, 1);
		ck_assert_int_eq(archive_write_header(a, ae), ARCHIVE_OK);
		ck_assert_int_eq(archive_write_data(a, "x", 1), 1);
		archive_write_close(a);
		archive_write_free(a);
		archive_entry_free(ae);
		import_refused(f, 0, STORK_EUNSUPPORTED, NULL, "not a package");
	}
	tpath(f, sizeof(f), "text");
	write_file(f, "hello\n", 6, 0644);
	import_refused(f, 0, STORK_EUNSUPPORTED, NULL, "not a package");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* .deb */

static void check_dep(const struct verify_depgroup *g, size_t alt, const char *name, const char *op,
		      const char *version)
{
	ck_assert_uint_gt(g->n, alt);
	ck_assert_str_eq(g->alts[alt].name, name);
	if (op) {
		ck_assert_str_eq(g->alts[alt].op, op);
		ck_assert_str_eq(g->alts[alt].version, version);
	} else {
		ck_assert_ptr_null(g->alts[alt].op);
		ck_assert_ptr_null(g->alts[alt].version);
	}
}

START_TEST(import_deb_reads_data_and_depends)
{
	char f[400];
	struct verify_manifest *m = NULL;
	uint8_t *hello = pattern(100000, 7);
	const struct verify_entry *e;

	tpath(f, sizeof(f), "hello_2.10-3_amd64.deb");
	make_deb(f, hello_control, true);
	ck_assert_msg(import(f, 0, &m, NULL) == 0, "%s", stork_error_detail());
	ck_assert_str_eq(m->format, "deb");
	check_file(m, "usr/bin/hello", hello, 100000, 0755);
	e = verify_manifest_find(m, "usr/bin/hi");
	ck_assert_int_eq(e->type, VERIFY_SYMLINK);
	/* control.tar's members are not package files */
	ck_assert_ptr_null(verify_manifest_find(m, "control"));
	ck_assert_ptr_null(verify_manifest_find(m, "postinst"));
	ck_assert_uint_eq(m->n, 4);

	ck_assert_uint_eq(m->ndepends, 4);
	check_dep(&m->depends[0], 0, "dpkg", ">=", "1.19.0");
	check_dep(&m->depends[1], 0, "libc6", ">=", "2.34");
	ck_assert_uint_eq(m->depends[2].n, 2);
	check_dep(&m->depends[2], 0, "default-mta", NULL, NULL);
	check_dep(&m->depends[2], 1, "mail-transport-agent", NULL, NULL);
	check_dep(&m->depends[3], 0, "zlib1g", "<<", "1:2");
	/* the other relations the resolver needs (manifest spec_version 2) */
	ck_assert_uint_eq(m->nprovides, 1);
	check_dep(&m->provides[0], 0, "greeter", "=", "2.10");
	ck_assert_uint_eq(m->nconflicts, 1);
	check_dep(&m->conflicts[0], 0, "hello-old", NULL, NULL);
	ck_assert_uint_eq(m->nbreaks, 1);
	check_dep(&m->breaks[0], 0, "hello-debhelper", "<<", "2.9");
	ck_assert_uint_eq(m->nreplaces, 1);
	check_dep(&m->replaces[0], 0, "hello-debhelper", "<<", "2.9");
	verify_manifest_free(m);
	free(hello);
}
END_TEST

START_TEST(import_deb_without_control_is_refused)
{
	char f[400];

	tpath(f, sizeof(f), "bad.deb");
	make_deb(f, hello_control, false);
	import_refused(f, 0, STORK_EFORMAT, NULL, "data.tar.xz out of order");
	make_deb(f, "Package: x\nDepends: a (>= )\n", true);
	import_refused(f, 0, STORK_EFORMAT, NULL, "Depends");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Debian control parsing. */

static struct verify_manifest *control(const char *text, int want)
{
	struct verify_manifest *m;
	int r;

	ck_assert_int_eq(verify_manifest_new("p", "1", "deb", &m), 0);
	r = store_deb_control_deps(text, strlen(text), m);
	ck_assert_msg(r == want, "\"%s\": got %d (%s), want %d", text, r, stork_error_detail(),
		      want);
	if (r < 0) {
		verify_manifest_free(m);
		return NULL;
	}
	return m;
}

START_TEST(deb_control_parses_alternatives_versions_and_qualifiers)
{
	struct verify_manifest *m;

	m = control("Package: x\n"
		    "depends: a (>= 1.0-1), b:any | c (<< 2~rc1) [amd64 arm64] <!nocheck>,\n"
		    "\td (= 1:2.3+dfsg),\n"
		    " e (<2), f(>3), g (1.0),\n"
		    "Description: y\n"
		    "\n"
		    "Package: ignored\n"
		    "Depends: z\n",
		    0);
	ck_assert_uint_eq(m->ndepends, 6);
	check_dep(&m->depends[0], 0, "a", ">=", "1.0-1");
	ck_assert_uint_eq(m->depends[1].n, 2);
	check_dep(&m->depends[1], 0, "b", NULL, NULL);
	check_dep(&m->depends[1], 1, "c", "<<", "2~rc1");
	check_dep(&m->depends[2], 0, "d", "=", "1:2.3+dfsg");
	check_dep(&m->depends[3], 0, "e", "<=", "2");
	check_dep(&m->depends[4], 0, "f", ">=", "3");
	check_dep(&m->depends[5], 0, "g", "=", "1.0");
	verify_manifest_free(m);

	m = control("Package: x\nDescription: none\n", 0);
	ck_assert_uint_eq(m->ndepends, 0);
	verify_manifest_free(m);

	m = control("Package: x\r\nPre-Depends: p\r\nDepends: q\r\n", 0);
	ck_assert_uint_eq(m->ndepends, 2);
	check_dep(&m->depends[0], 0, "p", NULL, NULL);
	check_dep(&m->depends[1], 0, "q", NULL, NULL);
	verify_manifest_free(m);
}
END_TEST

/* The summary the browse site shows: the Description's first line, made into UTF-8 text
 * without controls (invalid bytes, C0/C1 and bidirectional controls become '?'), cut at a
 * character boundary. */
START_TEST(deb_control_summary_is_clean_text)
{
	static const char ctl[] =
	    "Package: x\n"
	    "Depends: a\n"
	    "description:  <b>bold</b> & \x01\xff caf\xc3\xa9 \xe2\x80\xae rtl \n"
	    " long text\n";
	char s[STORE_SUMMARY_MAX], small[8];

	store_deb_control_summary(ctl, strlen(ctl), s, sizeof(s));
	ck_assert_str_eq(s, "<b>bold</b> & ?? caf\xc3\xa9 ? rtl");
	store_deb_control_summary("Package: x\n\nDescription: later\n", 31, s, sizeof(s));
	ck_assert_str_eq(s, "");
	store_deb_control_summary("Description: ab\xc3\xa9\xc3\xa9\n", 20, small, sizeof(small));
	ck_assert_str_eq(small, "ab\xc3\xa9\xc3\xa9"); /* 6 bytes fit in 8 */
	store_deb_control_summary("Description: abcd\xc3\xa9\xc3\xa9\n", 22, small, sizeof(small));
	ck_assert_str_eq(small, "abcd\xc3\xa9"); /* the second \xc3\xa9 would not fit whole */
}
END_TEST

START_TEST(deb_control_rejects_malformed_relations)
{
	control("Depends: a (>= )\n", STORK_EFORMAT);
	control("Depends: a (~~ 1)\n", STORK_EFORMAT);
	control("Depends: a (>= 1\n", STORK_EFORMAT);
	control("Depends: a | | b\n", STORK_EFORMAT);
	control("Depends: a |\n", STORK_EFORMAT);
	control("Depends: a b\n", STORK_EFORMAT);
	control("Depends: a [amd64\n", STORK_EFORMAT);
	control(" continuation first\n", STORK_EFORMAT);
	control("Depends: a\nDepends: b\n", STORK_EFORMAT);
	control("no colon here\n", STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "line 1"));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* RPM headers. */

struct blob {
	uint8_t b[4096];
	size_t len;
};

static void put(struct blob *b, const void *p, size_t n)
{
	ck_assert_uint_le(b->len + n, sizeof(b->b));
	memcpy(b->b + b->len, p, n);
	b->len += n;
}

static void put32(struct blob *b, uint32_t v)
{
	uint8_t x[4] = {v >> 24, v >> 16, v >> 8, v};

	put(b, x, 4);
}

static void put_intro(struct blob *b, uint32_t nindex, uint32_t hsize)
{
	static const uint8_t magic[8] = {0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0};

	put(b, magic, 8);
	put32(b, nindex);
	put32(b, hsize);
}

struct req {
	const char *name, *version;
	uint32_t flags;
};

/* Overrides to make the header hostile. */
struct rpm_bad {
	uint32_t name_count_add;
	uint32_t name_offset; /* 0: real */
	uint32_t flags_count_add;
	uint32_t nindex; /* 0: real */
	bool no_final_nul;
};

static void make_rpm(struct blob *b, const struct req *reqs, size_t n, const struct rpm_bad *bad)
{
	uint8_t lead[96] = {0xed, 0xab, 0xee, 0xdb, 3, 0};
	struct blob data = {{0}, 0};
	uint32_t names_off, vers_off, flags_off;
	size_t i;

	b->len = 0;
	lead[78] = 0;
	lead[79] = 5; /* signature type: header-style */
	put(b, lead, sizeof(lead));
	/* Signature header: one entry and 3 data bytes, so 5 bytes of padding follow. */
	put_intro(b, 1, 3);
	put32(b, 1000);
	put32(b, 7);
	put32(b, 0);
	put32(b, 3);
	put(b, "abc", 3);
	put(b, "\0\0\0\0\0", 5);

	flags_off = 0;
	for (i = 0; i < n; i++)
		put32(&data, reqs[i].flags);
	names_off = (uint32_t)data.len;
	for (i = 0; i < n; i++)
		put(&data, reqs[i].name, strlen(reqs[i].name) + 1);
	vers_off = (uint32_t)data.len;
	for (i = 0; i < n; i++)
		put(&data, reqs[i].version, strlen(reqs[i].version) + 1);
	if (bad && bad->no_final_nul)
		data.len--;

	put_intro(b, bad && bad->nindex ? bad->nindex : 4, (uint32_t)data.len);
	put32(b, 1000); /* RPMTAG_NAME, something we skip */
	put32(b, 6);
	put32(b, names_off);
	put32(b, 1);
	put32(b, 1048);
	put32(b, 4);
	put32(b, flags_off);
	put32(b, (uint32_t)n + (bad ? bad->flags_count_add : 0));
	put32(b, 1049);
	put32(b, 8);
	put32(b, bad && bad->name_offset ? bad->name_offset : names_off);
	put32(b, (uint32_t)n + (bad ? bad->name_count_add : 0));
	put32(b, 1050);
	put32(b, 8);
	put32(b, vers_off);
	put32(b, (uint32_t)n);
	put(b, data.b, data.len);
	put(b, "payload follows", 15);
}

static int rpm_deps_of(const struct blob *b, size_t len, struct verify_manifest **ret_m)
{
	char f[400];
	struct verify_manifest *m;
	int fd, r;

	tpath(f, sizeof(f), "hdr.rpm");
	write_file(f, b->b, len, 0644);
	fd = open(f, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(verify_manifest_new("p", "1", "rpm", &m), 0);
	stork_error_clear();
	r = store_rpm_deps(fd, m);
	close(fd);
	if (r < 0 || !ret_m)
		verify_manifest_free(m);
	else
		*ret_m = m;
	return r;
}

static const struct req reqs[] = {
    {"rpmlib(CompressedFileNames)", "3.0.4-1", 0x01000000 | 0x08 | 0x02},
    {"/bin/sh", "", 0},
    {"libc.so.6()(64bit)", "", 0},
    {"hello-common", "2.10-3", 0x04 | 0x08},
    {"foo", "2", 0x02},
    {"bar", "1", 0x08},
    {"baz", "5", 0x04},
    {"qux", "1.0", 0x02 | 0x08},
};

START_TEST(rpm_header_requires_become_dependencies)
{
	struct blob b;
	struct verify_manifest *m = NULL;

	make_rpm(&b, reqs, 8, NULL);
	ck_assert_msg(rpm_deps_of(&b, b.len, &m) == 0, "%s", stork_error_detail());
	ck_assert_uint_eq(m->ndepends, 6);
	check_dep(&m->depends[0], 0, "libc.so.6()(64bit)", NULL, NULL);
	check_dep(&m->depends[1], 0, "hello-common", ">=", "2.10-3");
	check_dep(&m->depends[2], 0, "foo", "<<", "2");
	check_dep(&m->depends[3], 0, "bar", "=", "1");
	check_dep(&m->depends[4], 0, "baz", ">>", "5");
	check_dep(&m->depends[5], 0, "qux", "<=", "1.0");
	verify_manifest_free(m);
}
END_TEST

/* A cpio (newc) payload in memory: an rpm's hard link group has the data on its last link. */
static uint8_t *make_cpio(size_t *ret_len)
{
	static const struct {
		const char *path;
		unsigned mode;
		const char *data;
		unsigned nlink;
		int64_t ino;
	} ents[] = {
	    {"./usr/bin/hello", AE_IFREG | 0755, "", 2, 5},
	    {"./usr/bin/hi", AE_IFLNK | 0777, "hello", 1, 6},
	    {"./usr/bin/hello-hard", AE_IFREG | 0755, "#!/bin/sh\necho hi\n", 2, 5},
	    {"./usr/share/hello", AE_IFDIR | 0755, NULL, 2, 7},
	};
	size_t cap = 1 << 20, used = 0, i;
	uint8_t *buf = malloc(cap);
	struct archive *a = archive_write_new();

	ck_assert_int_eq(archive_write_set_format_cpio_newc(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_add_filter(a, ARCHIVE_FILTER_NONE), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		struct archive_entry *ae = archive_entry_new();
		size_t len = 0;

		archive_entry_set_pathname(ae, ents[i].path);
		archive_entry_set_mode(ae, ents[i].mode);
		archive_entry_set_nlink(ae, ents[i].nlink);
		archive_entry_set_ino64(ae, ents[i].ino);
		archive_entry_set_dev(ae, 1);
		archive_entry_set_mtime(ae, 1700000000, 0);
		if ((ents[i].mode & AE_IFMT) == AE_IFLNK)
			archive_entry_set_symlink(ae, ents[i].data);
		else if (ents[i].data)
			len = strlen(ents[i].data);
		archive_entry_set_size(ae, (la_int64_t)len);
		ck_assert_int_eq(archive_write_header(a, ae), ARCHIVE_OK);
		if (len)
			ck_assert_int_eq(archive_write_data(a, ents[i].data, len), (la_ssize_t)len);
		archive_entry_free(ae);
	}
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*ret_len = used;
	return buf;
}

START_TEST(import_rpm_reads_payload_requires_and_hard_link_groups)
{
	static const char script[] = "#!/bin/sh\necho hi\n";
	struct blob b;
	char f[400];
	size_t clen;
	uint8_t *cpio = make_cpio(&clen), *all;
	struct verify_manifest *m = NULL;
	const struct verify_entry *e;

	make_rpm(&b, reqs, 8, NULL);
	b.len -= 15; /* no "payload follows": the cpio archive does */
	all = malloc(b.len + clen);
	memcpy(all, b.b, b.len);
	memcpy(all + b.len, cpio, clen);
	tpath(f, sizeof(f), "hello-2.10-3.noarch.rpm");
	write_file(f, all, b.len + clen, 0644);
	ck_assert_msg(import(f, 0, &m, NULL) == 0, "%s", stork_error_detail());
	ck_assert_str_eq(m->format, "rpm");
	ck_assert_uint_eq(m->ndepends, 6);
	check_dep(&m->depends[1], 0, "hello-common", ">=", "2.10-3");
	/* The first link, stored empty, gets the group's data. */
	check_file(m, "usr/bin/hello", script, strlen(script), 0755);
	check_file(m, "usr/bin/hello-hard", script, strlen(script), 0755);
	e = verify_manifest_find(m, "usr/bin/hi");
	ck_assert_int_eq(e->type, VERIFY_SYMLINK);
	ck_assert_str_eq(e->target, "hello");
	e = verify_manifest_find(m, "usr/share/hello");
	ck_assert_int_eq(e->type, VERIFY_DIR);
	ck_assert_uint_eq(m->total_size, 2 * strlen(script));
	verify_manifest_free(m);
	free(all);
	free(cpio);
}
END_TEST

START_TEST(rpm_header_rejects_hostile_bounds)
{
	struct blob b;
	struct rpm_bad bad;
	size_t full, cut;

	make_rpm(&b, reqs, 8, NULL);
	full = b.len;
	/* Truncated anywhere inside the headers. */
	for (cut = 0; cut < full - 15; cut += 7)
		ck_assert_msg(rpm_deps_of(&b, cut, NULL) == STORK_EFORMAT, "cut at %zu", cut);

	memset(&bad, 0, sizeof(bad));
	bad.name_count_add = 1000;
	make_rpm(&b, reqs, 8, &bad);
	ck_assert_int_eq(rpm_deps_of(&b, b.len, NULL), STORK_EFORMAT);

	memset(&bad, 0, sizeof(bad));
	bad.name_count_add = 1;
	make_rpm(&b, reqs, 8, &bad);
	ck_assert_int_eq(rpm_deps_of(&b, b.len, NULL), STORK_EFORMAT);

	memset(&bad, 0, sizeof(bad));
	bad.name_offset = 0x7ffffff0;
	make_rpm(&b, reqs, 8, &bad);
	ck_assert_int_eq(rpm_deps_of(&b, b.len, NULL), STORK_EFORMAT);

	memset(&bad, 0, sizeof(bad));
	bad.flags_count_add = 0x40000000;
	make_rpm(&b, reqs, 8, &bad);
	ck_assert_int_eq(rpm_deps_of(&b, b.len, NULL), STORK_EFORMAT);

	memset(&bad, 0, sizeof(bad));
	bad.nindex = 0x7fffffff;
	make_rpm(&b, reqs, 8, &bad);
	ck_assert_int_eq(rpm_deps_of(&b, b.len, NULL), STORK_EFORMAT);

	memset(&bad, 0, sizeof(bad));
	bad.no_final_nul = true;
	make_rpm(&b, reqs, 8, &bad);
	ck_assert_int_eq(rpm_deps_of(&b, b.len, NULL), STORK_EFORMAT);

	make_rpm(&b, reqs, 8, NULL);
	b.b[0] = 0;
	ck_assert_int_eq(rpm_deps_of(&b, b.len, NULL), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "RPM"));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* Batches of node-store inserts (store_batch_*, store_insert_commit_batched): one sync for
 * many objects, with the crash rules of single inserts. */

static char batch_dir[300];

static void batch_setup(void)
{
	setup();
	/* These tests watch the queued files in tmp/: named ones (the fallback for file systems
	 * without O_TMPFILE). batch_unnamed_* covers the unnamed ones. */
	setenv("STORK_STORE_NAMED_TMP", "1", 1);
	snprintf(batch_dir, sizeof(batch_dir), "%s/nodestore", tmpdir);
	stork_error_clear();
}

static struct store *batch_open(void)
{
	struct store *s = NULL;
	int r = store_open(batch_dir, &s);

	ck_assert_msg(r == 0, "store_open: %s: %s", storkfs_strerror(r), stork_error_detail());
	return s;
}

/* Content number i: 1..2000 distinct bytes. */
static size_t batch_content(unsigned i, uint8_t *buf)
{
	size_t len = 1 + (i * 53u) % 2000;

	for (size_t j = 0; j < len; j++)
		buf[j] = (uint8_t)(i * 29u + j * 11u + (j >> 7));
	memcpy(buf, &i, len < sizeof(i) ? len : sizeof(i));
	return len;
}

/* An insert of content i, written in full, not committed. */
static struct store_insert *batch_insert(struct store *s, unsigned i, uint8_t id[VERIFY_HASH_LEN])
{
	uint8_t buf[2000];
	size_t len = batch_content(i, buf);
	struct store_insert *ins = NULL;

	ck_assert_int_eq(verify_sha256(buf, len, id), 0);
	ck_assert_int_eq(store_insert_new(s, id, len, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, buf, len), 0);
	return ins;
}

static bool batch_object_file(const uint8_t id[VERIFY_HASH_LEN])
{
	char rel[STORE_OBJPATH_LEN], path[600];

	store_object_path(id, rel);
	snprintf(path, sizeof(path), "%s/%s", batch_dir, rel);
	return access(path, F_OK) == 0;
}

static size_t batch_tmp_files(void)
{
	char path[400];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tmp", batch_dir);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* The stored object reads back as content i. */
static void batch_check_object(struct store *s, unsigned i, const uint8_t id[VERIFY_HASH_LEN])
{
	uint8_t want[2000], got[2001];
	size_t len = batch_content(i, want);
	struct store_objinfo info;
	ssize_t n;
	int fd = -1;

	ck_assert_int_eq(store_object_info(s, id, &info), 0);
	ck_assert_uint_eq(info.size, len);
	ck_assert_int_eq(store_object_open(s, id, &fd), 0);
	n = pread(fd, got, sizeof(got), 0);
	close(fd);
	ck_assert_int_eq(n, (ssize_t)len);
	ck_assert_mem_eq(got, want, len);
}

/* Fewer than STORE_BATCH_MAX_QUEUED: no add commits by itself. */
#define BATCH_N 200

START_TEST(batch_commit_stores_and_indexes_every_object_at_once)
{
	static uint8_t ids[BATCH_N][VERIFY_HASH_LEN];
	struct store_objinfo info;
	struct store_batch *b = NULL;
	struct store *s = batch_open();
	size_t committed = 0;

	ck_assert_int_eq(store_batch_new(s, &b), 0);
	for (unsigned i = 0; i < BATCH_N; i++)
		ck_assert_int_eq(store_batch_add(b, batch_insert(s, i, ids[i])), 0);
	/* Queued: verified, but neither named nor indexed, and still in tmp/. */
	for (unsigned i = 0; i < BATCH_N; i++) {
		ck_assert_int_eq(store_object_info(s, ids[i], &info), -ENOENT);
		ck_assert(!batch_object_file(ids[i]));
	}
	ck_assert_uint_eq(batch_tmp_files(), BATCH_N);
	ck_assert_int_eq(store_batch_commit(b, &committed), 0);
	ck_assert_uint_eq(committed, BATCH_N);
	for (unsigned i = 0; i < BATCH_N; i++)
		batch_check_object(s, i, ids[i]);
	ck_assert_uint_eq(batch_tmp_files(), 0);
	/* Nothing queued: a commit is a no-op. */
	ck_assert_int_eq(store_batch_commit(b, &committed), 0);
	ck_assert_uint_eq(committed, 0);
	store_batch_free(b);
	store_close(s);
}
END_TEST

/* Each queued object holds a descriptor: at STORE_BATCH_MAX_QUEUED an add commits what is
 * queued itself, so a caller that only adds never holds more. */
START_TEST(batch_add_commits_by_itself_at_the_descriptor_cap)
{
	enum { N = 3 * STORE_BATCH_MAX_QUEUED + 10 };
	static uint8_t ids[N][VERIFY_HASH_LEN];
	struct store_batch *b = NULL;
	struct store *s = batch_open();
	size_t committed = 0, most = 0;

	ck_assert_int_eq(store_batch_new(s, &b), 0);
	for (unsigned i = 0; i < N; i++) {
		size_t t;

		ck_assert_int_eq(store_batch_add(b, batch_insert(s, i, ids[i])), 0);
		t = batch_tmp_files();
		most = t > most ? t : most;
	}
	ck_assert_uint_le(most, STORE_BATCH_MAX_QUEUED);
	ck_assert_int_eq(store_batch_commit(b, &committed), 0);
	ck_assert_uint_lt(committed, STORE_BATCH_MAX_QUEUED);
	for (unsigned i = 0; i < N; i++)
		batch_check_object(s, i, ids[i]);
	ck_assert_uint_eq(batch_tmp_files(), 0);
	store_batch_free(b);
	store_close(s);
}
END_TEST

START_TEST(batch_add_refuses_wrong_hash_and_length_keeping_nothing)
{
	uint8_t id[VERIFY_HASH_LEN], other[VERIFY_HASH_LEN];
	struct store_insert *ins = NULL;
	struct store_objinfo info;
	struct store_batch *b = NULL;
	struct store *s = batch_open();
	size_t committed = 9;

	ck_assert_int_eq(store_batch_new(s, &b), 0);
	/* Content 1 announced under content 2's id. */
	store_insert_abort(batch_insert(s, 2, other));
	ck_assert_int_eq(verify_sha256((const uint8_t *)"x", 1, id), 0);
	ck_assert_int_eq(store_insert_new(s, other, 1, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "x", 1), 0);
	ck_assert_int_eq(store_batch_add(b, ins), STORK_EBADHASH);
	/* Short of its size. */
	ck_assert_int_eq(store_insert_new(s, id, 5, &ins), 0);
	ck_assert_int_eq(store_insert_write(ins, "x", 1), 0);
	ck_assert_int_eq(store_batch_add(b, ins), STORK_EBADLEN);
	ck_assert_uint_eq(batch_tmp_files(), 0);
	ck_assert_int_eq(store_batch_commit(b, &committed), 0);
	ck_assert_uint_eq(committed, 0);
	ck_assert_int_eq(store_object_info(s, other, &info), -ENOENT);
	ck_assert_int_eq(store_object_info(s, id, &info), -ENOENT);
	store_batch_free(b);
	store_close(s);
}
END_TEST

/* A writer killed with objects queued (before the sync): nothing is named or indexed, and
 * its temporary files are swept by the next open; fsck finds the store clean. The same for a
 * batch freed without a commit. */
/* A child process adds n objects (content 0..n-1, ids into ids) to a batch, checks that tmp/
 * then holds `visible` files, and dies of SIGKILL before any commit. */
static void kill_a_batch_writer(uint8_t (*ids)[VERIFY_HASH_LEN], unsigned n, size_t visible)
{
	int status = 0;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *cs = NULL;
		struct store_batch *cb = NULL;

		if (store_open(batch_dir, &cs) < 0 || store_batch_new(cs, &cb) < 0)
			_exit(1);
		for (unsigned i = 0; i < n; i++)
			if (store_batch_add(cb, batch_insert(cs, i, ids[i])) < 0)
				_exit(1);
		if (batch_tmp_files() != visible)
			_exit(2);
		raise(SIGKILL);
		_exit(1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d",
		      status);
}

/* Where the file system has O_TMPFILE (ext4, xfs, btrfs, tmpfs do), an object being written
 * is an unnamed file: tmp/ stays empty, a killed writer leaves nothing behind, and the
 * commit names each object as a named one would be. */
START_TEST(batch_unnamed_temporary_files_are_invisible_and_vanish_with_their_writer)
{
	static uint8_t ids[BATCH_N][VERIFY_HASH_LEN];
	struct store_fsck_report rep = {0};
	struct store_objinfo info;
	struct store_batch *b = NULL;
	struct store *s;
	size_t committed = 0;
	int probe;

	unsetenv("STORK_STORE_NAMED_TMP");
	s = batch_open();
	probe = openat(AT_FDCWD, batch_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (probe < 0) {
		store_close(s);
		return; /* this file system has none: the named tests cover it */
	}
	close(probe);
	store_close(s);
	kill_a_batch_writer(ids, 64, 0);
	ck_assert_uint_eq(batch_tmp_files(), 0); /* nothing to sweep */
	s = batch_open();
	ck_assert_int_eq(store_fsck(s, false, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.objects + rep.bad + rep.unindexed + rep.stale_tmp + rep.adopted, 0);

	ck_assert_int_eq(store_batch_new(s, &b), 0);
	for (unsigned i = 0; i < BATCH_N; i++)
		ck_assert_int_eq(store_batch_add(b, batch_insert(s, i, ids[i])), 0);
	ck_assert_uint_eq(batch_tmp_files(), 0);
	for (unsigned i = 0; i < BATCH_N; i++)
		ck_assert_int_eq(store_object_info(s, ids[i], &info), -ENOENT);
	ck_assert_int_eq(store_batch_commit(b, &committed), 0);
	ck_assert_uint_eq(committed, BATCH_N);
	for (unsigned i = 0; i < BATCH_N; i++)
		batch_check_object(s, i, ids[i]);
	store_batch_free(b);
	ck_assert_int_eq(store_fsck(s, false, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.bad + rep.unindexed + rep.stale_tmp, 0);
	store_close(s);
}
END_TEST

START_TEST(batch_interrupted_before_the_sync_indexes_nothing)
{
	static uint8_t ids[64][VERIFY_HASH_LEN];
	struct store_fsck_report rep = {0};
	struct store_objinfo info;
	struct store_batch *b = NULL;
	struct store *s = batch_open();

	store_close(s);
	kill_a_batch_writer(ids, 64, 64);
	ck_assert_uint_eq(batch_tmp_files(), 64); /* left unlocked by the dead writer */
	s = batch_open();			  /* sweeps them */
	ck_assert_uint_eq(batch_tmp_files(), 0);
	for (unsigned i = 0; i < 64; i++) {
		uint8_t buf[2000];

		ck_assert_int_eq(verify_sha256(buf, batch_content(i, buf), ids[i]), 0);
		ck_assert_int_eq(store_object_info(s, ids[i], &info), -ENOENT);
		ck_assert(!batch_object_file(ids[i]));
	}
	ck_assert_int_eq(store_fsck(s, false, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.objects + rep.bad + rep.unindexed + rep.stale_tmp + rep.adopted, 0);

	/* Freed without a commit. */
	ck_assert_int_eq(store_batch_new(s, &b), 0);
	for (unsigned i = 0; i < 16; i++)
		ck_assert_int_eq(store_batch_add(b, batch_insert(s, i, ids[i])), 0);
	store_batch_free(b);
	ck_assert_uint_eq(batch_tmp_files(), 0);
	for (unsigned i = 0; i < 16; i++)
		ck_assert_int_eq(store_object_info(s, ids[i], &info), -ENOENT);
	store_close(s);
}
END_TEST

/* An object a crash left whole in objects/ but unindexed is indexed by the batch that
 * inserts it again (kept, as store_insert_commit keeps it); a rotten one is replaced. */
START_TEST(batch_commit_keeps_a_good_unindexed_copy_and_replaces_a_rotten_one)
{
	uint8_t a[VERIFY_HASH_LEN], c[VERIFY_HASH_LEN];
	char rel[STORE_OBJPATH_LEN], path[600], sub[600];
	struct store_batch *b = NULL;
	struct store *s = batch_open();
	uint8_t buf[2000];
	size_t len;
	int fd;

	ck_assert_int_eq(store_batch_new(s, &b), 0);
	len = batch_content(7, buf);
	ck_assert_int_eq(verify_sha256(buf, len, a), 0);
	store_object_path(a, rel);
	snprintf(path, sizeof(path), "%s/%s", batch_dir, rel);
	snprintf(sub, sizeof(sub), "%s/%.10s", batch_dir, rel);
	mkdir(sub, 0755);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0444);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	len = batch_content(8, buf);
	ck_assert_int_eq(verify_sha256(buf, len, c), 0);
	store_object_path(c, rel);
	snprintf(path, sizeof(path), "%s/%s", batch_dir, rel);
	snprintf(sub, sizeof(sub), "%s/%.10s", batch_dir, rel);
	mkdir(sub, 0755);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0444);
	ck_assert_int_ge(fd, 0);
	buf[0] ^= 1; /* rotten */
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	ck_assert_int_eq(store_batch_add(b, batch_insert(s, 7, a)), 0);
	ck_assert_int_eq(store_batch_add(b, batch_insert(s, 8, c)), 0);
	ck_assert_int_eq(store_batch_commit(b, NULL), 0);
	batch_check_object(s, 7, a);
	batch_check_object(s, 8, c);
	ck_assert_uint_eq(batch_tmp_files(), 0);
	store_batch_free(b);
	store_close(s);
}
END_TEST

/* Group commit from many threads while readers look: every call that returns 0 has its
 * object stored; a reader never sees an indexed object that is not whole and right. */
#define GROUP_WRITERS 8
#define GROUP_EACH    60

struct group_ctx {
	struct store *s;
	struct store_batch *b;
	unsigned first;
	int failures;
	uint8_t (*ids)[VERIFY_HASH_LEN];
	atomic_int *stop;
	unsigned long seen, bad;
};

static void *group_writer(void *arg)
{
	struct group_ctx *c = arg;

	for (unsigned i = c->first; i < c->first + GROUP_EACH; i++) {
		struct store_insert *ins = batch_insert(c->s, i, c->ids[i]);
		struct store_objinfo info;

		if (store_insert_commit_batched(ins, c->b) < 0 ||
		    store_object_info(c->s, c->ids[i], &info) < 0)
			c->failures++;
	}
	return NULL;
}

static void *group_reader(void *arg)
{
	struct group_ctx *c = arg;

	while (!atomic_load(c->stop)) {
		for (unsigned i = 0; i < GROUP_WRITERS * GROUP_EACH; i++) {
			uint8_t want[VERIFY_HASH_LEN], got[VERIFY_HASH_LEN], buf[2001];
			size_t len = batch_content(i, buf);
			ssize_t n;
			int fd;

			verify_sha256(buf, len, want);
			if (store_object_open(c->s, want, &fd) < 0)
				continue;
			n = pread(fd, buf, sizeof(buf), 0);
			close(fd);
			c->seen++;
			if (n != (ssize_t)len || verify_sha256(buf, len, got) < 0 ||
			    memcmp(got, want, VERIFY_HASH_LEN))
				c->bad++;
		}
	}
	return NULL;
}

START_TEST(batch_group_commit_from_many_threads_with_readers)
{
	static uint8_t ids[GROUP_WRITERS * GROUP_EACH][VERIFY_HASH_LEN];
	struct group_ctx w[GROUP_WRITERS], rd;
	pthread_t wt[GROUP_WRITERS], rt;
	struct store_batch *b = NULL;
	struct store *s = batch_open();
	atomic_int stop = 0;

	ck_assert_int_eq(store_batch_new(s, &b), 0);
	rd = (struct group_ctx){.s = s, .b = b, .ids = ids, .stop = &stop};
	ck_assert_int_eq(pthread_create(&rt, NULL, group_reader, &rd), 0);
	for (unsigned t = 0; t < GROUP_WRITERS; t++) {
		w[t] = (struct group_ctx){.s = s, .b = b, .first = t * GROUP_EACH, .ids = ids};
		ck_assert_int_eq(pthread_create(&wt[t], NULL, group_writer, &w[t]), 0);
	}
	for (unsigned t = 0; t < GROUP_WRITERS; t++) {
		pthread_join(wt[t], NULL);
		ck_assert_int_eq(w[t].failures, 0);
	}
	atomic_store(&stop, 1);
	pthread_join(rt, NULL);
	ck_assert_uint_eq(rd.bad, 0);
	for (unsigned i = 0; i < GROUP_WRITERS * GROUP_EACH; i++)
		batch_check_object(s, i, ids[i]);
	ck_assert_uint_eq(batch_tmp_files(), 0);
	store_batch_free(b);
	store_close(s);
}
END_TEST

static TCase *tcase_store_batch(void)
{
	TCase *tc = tcase_create("batch");

	tcase_add_checked_fixture(tc, batch_setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, batch_commit_stores_and_indexes_every_object_at_once);
	tcase_add_test(tc, batch_add_commits_by_itself_at_the_descriptor_cap);
	tcase_add_test(tc, batch_add_refuses_wrong_hash_and_length_keeping_nothing);
	tcase_add_test(tc, batch_interrupted_before_the_sync_indexes_nothing);
	tcase_add_test(tc,
		       batch_unnamed_temporary_files_are_invisible_and_vanish_with_their_writer);
	tcase_add_test(tc, batch_commit_keeps_a_good_unindexed_copy_and_replaces_a_rotten_one);
	tcase_add_test(tc, batch_group_commit_from_many_threads_with_readers);
	return tc;
}

/* ------------------------------------------------------------------------------------------ */
/* Content-defined chunking (store/import/chunker.c). */

static uint8_t *chunk_data(size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		b[i] = (uint8_t)(seed >> 56);
	}
	return b;
}

/* The end offsets of buf's chunks, into ends (at most cap). */
static size_t chunk_ends(const uint8_t *buf, size_t len, uint64_t *ends, size_t cap)
{
	size_t at = 0, n = 0;

	while (at < len) {
		size_t cut = store_chunk_cut(buf + at, len - at, true);

		ck_assert_uint_gt(cut, 0);
		ck_assert_uint_le(cut, STORE_CHUNK_MAX);
		if (at + cut < len)
			ck_assert_uint_ge(cut, STORE_CHUNK_MIN);
		at += cut;
		ck_assert_uint_lt(n, cap);
		ends[n++] = at;
	}
	return n;
}

START_TEST(chunker_cuts_within_bounds_and_waits_for_enough_bytes)
{
	size_t len = 24u << 20;
	uint8_t *b = chunk_data(len, 1);
	uint64_t ends[256];
	size_t n = chunk_ends(b, len, ends, 256);

	/* about the average (1 MiB plus the minimum's share), never one giant piece */
	ck_assert_uint_ge(n, 12);
	ck_assert_uint_le(n, 30);
	/* not at the end of the file: undecided until the maximum is there */
	ck_assert_uint_eq(store_chunk_cut(b, STORE_CHUNK_MAX - 1, false), 0);
	ck_assert_uint_eq(store_chunk_cut(b, STORE_CHUNK_MAX, false), ends[0]);
	ck_assert_uint_eq(store_chunk_cut(b, 100, true), 100);
	ck_assert_uint_eq(store_chunk_cut(b, 0, true), 0);
	/* all zeros: no content boundary, cut at the maximum */
	memset(b, 0, STORE_CHUNK_MAX + 1);
	ck_assert_uint_eq(store_chunk_cut(b, STORE_CHUNK_MAX + 1, false), STORE_CHUNK_MAX);
	free(b);
}
END_TEST

START_TEST(chunker_boundaries_survive_an_insertion)
{
	size_t len = 32u << 20, ins = 4096, mid = len / 2 + 777;
	uint8_t *a = chunk_data(len, 7), *b = malloc(len + ins), *x = chunk_data(ins, 99);
	uint64_t ea[256], eb[256];
	size_t na, nb, same = 0, i = 0, j = 0;

	ck_assert_ptr_nonnull(b);
	memcpy(b, a, mid);
	memcpy(b + mid, x, ins);
	memcpy(b + mid + ins, a + mid, len - mid);
	na = chunk_ends(a, len, ea, 256);
	nb = chunk_ends(b, len + ins, eb, 256);
	/* Chunks of b that are chunks of a (the same start and end, shifted after the insertion).
	 */
	while (i < na && j < nb) {
		uint64_t sa = i ? ea[i - 1] : 0, sb = j ? eb[j - 1] : 0;
		uint64_t ta = sa >= mid ? sa + ins : sa, tb = ea[i] > mid ? ea[i] + ins : ea[i];

		if (ta == sb && tb == eb[j]) {
			same++;
			i++;
			j++;
		} else if (tb < eb[j]) {
			i++;
		} else {
			j++;
		}
	}
	/* all but at most 3 chunks of b are chunks of a */
	ck_assert_uint_ge(same + 3, nb);
	/* and the boundaries before the insertion are untouched */
	for (i = 0; i < na && ea[i] < mid; i++)
		ck_assert_uint_eq(ea[i], eb[i]);
	free(a);
	free(b);
	free(x);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = tcase_create("object");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, objwriter_round_trip_names_object_by_uncompressed_sha256);
	tcase_add_test(tc, objwriter_empty_content_is_a_valid_object);
	tcase_add_test(tc, pack_layout_takes_each_small_object_once_in_file_order);
	tcase_add_test(tc, pack_cut_splits_any_chunking_at_the_layout_and_refuses_extra_bytes);
	tcase_add_test(tc, pack_write_concatenates_the_objects_and_refuses_a_wrong_zsize);
	tcase_add_test(tc, objwriter_same_content_twice_keeps_one_object);
	tcase_add_test(tc, objwriter_concurrent_writers_of_one_object_never_clobber);
	tcase_add_test(tc, objwriter_abort_leaves_no_temporary_file);
	tcase_add_test(tc, chunker_cuts_within_bounds_and_waits_for_enough_bytes);
	tcase_add_test(tc, chunker_boundaries_survive_an_insertion);
	suite_add_tcase(s, tc);

	tc = tcase_create("unpack");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, unpack_rejects_wrong_hash);
	tcase_add_test(tc, unpack_rejects_compressed_bytes_beyond_zsize);
	tcase_add_test(tc, unpack_stops_a_zstd_bomb_before_passing_more_than_size);
	tcase_add_test(tc, unpack_rejects_truncated_and_corrupt_streams);
	tcase_add_test(tc, unpack_raw_checks_length_and_hash_of_uncompressed_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("import");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, import_directory_keeps_files_symlinks_modes);
	tcase_add_test(tc, import_counts_a_repeated_object_as_new_once);
	tcase_add_test(tc, import_directory_refuses_fifos_devices_and_too_much);
	tcase_add_test(tc, import_refuses_control_characters_in_directory_names);
	tcase_add_test(tc, import_tar_plain_gz_zst);
	tcase_add_test(tc, import_chunks_big_files_and_their_hard_links);
	tcase_add_test(tc, import_directory_chunks_and_tree_index_keeps_them);
	tcase_add_test(tc, import_detects_the_format_by_content);
	tcase_add_test(tc, import_refuses_hostile_tar_members);
	tcase_add_test(tc, import_refuses_names_that_are_not_utf8);
	tcase_add_test(tc, import_refuses_a_truncated_archive);
	tcase_add_test(tc, import_refuses_a_gzip_bomb_past_max_size);
	tcase_add_test(tc, import_refuses_formats_that_are_not_packages);
	tcase_add_test(tc, import_deb_reads_data_and_depends);
	tcase_add_test(tc, import_deb_without_control_is_refused);
	tcase_add_test(tc, import_rpm_reads_payload_requires_and_hard_link_groups);
	suite_add_tcase(s, tc);

	tc = tcase_create("pkginfo");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, deb_control_parses_alternatives_versions_and_qualifiers);
	tcase_add_test(tc, deb_control_rejects_malformed_relations);
	tcase_add_test(tc, deb_control_summary_is_clean_text);
	tcase_add_test(tc, rpm_header_requires_become_dependencies);
	tcase_add_test(tc, rpm_header_rejects_hostile_bounds);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tcase_store_node());
	suite_add_tcase(s, tcase_store_node_concurrency());
	suite_add_tcase(s, tcase_store_open());
	suite_add_tcase(s, tcase_store_pending());
	suite_add_tcase(s, tcase_store_batch());
	suite_add_tcase(s, tcase_store_floor());
	suite_add_tcase(s, tcase_store_quota());
	suite_add_tcase(s, tcase_store_catalog());
	suite_add_tcase(s, tcase_store_gc());
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
