/* tests/unit/test_fs_ops.c: the daemon's FUSE callbacks (fs/ops.c) over its real catalog and
 * version trees (fs/tree.c) and inode table (fs/inode.c), without a kernel and without
 * libfuse: tests/unit/fake_fuse.c stands in for libfuse's reply functions (the test is not
 * linked with libfuse) and records each reply, so a test calls a callback of fsd_ops as the
 * kernel would (kernel_lookup, kernel_list_dir, ...) and checks what it answered, and that it
 * answered exactly once.
 *
 * The repository is real and local: built once in a temporary directory with the writer and
 * the importer (package "hello" in five versions whose dpkg order differs from their byte
 * order, package "other"), pinned and read through a file:// mirror into a node store of each
 * test's own. No network, no mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "fake_fuse.h"
#include "fs/daemon.h"
#include "store/import/import.h"
#include "unit.h"
#include "verify/writer/writer.h"

#define MTIME 1700000000
#define NVERS 5

/* In fs_version_cmp (dpkg) order; "1:0.1" (an epoch) is the newest, so `latest`. */
static const char *const hello_vers[NVERS] = {"1.0~rc1", "1.0", "1.9", "1.10", "1:0.1"};

static const char hello_sh[] = "#!/bin/sh\necho hello\n";

/* The repository, built once before the tests (make_repo, an unchecked fixture: each test
 * runs in a child process of its own). */
static struct {
	char dir[64];
	char *repo, *keys, *root_path, *mirror;
	uint8_t *root;
	size_t rootlen;
} F;

static struct fsd D;
static char *mirrors[1]; /* D.mirrors: F.mirror */
static int nlogs, fetch_logs;
static char last_log[2048];

/* fs/daemon.c's (which holds main): the tests count and keep the last line. */
void fsd_log(struct fsd *d, const char *fmt, ...)
{
	va_list ap;

	(void)d;
	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	nlogs++;
}

/* fs/daemon.c's too: counted as the daemon counts (the tests fetch object by object). */
void fsd_fetched(void *ctx, const uint8_t id[VERIFY_HASH_LEN], uint64_t size, const char *mirror)
{
	struct fsd *d = ctx;

	(void)id, (void)mirror;
	FSD_COUNT(d, fetched, 1);
	FSD_COUNT(d, fetched_bytes, size);
}

/* The slot of a number the kernel holds; NULL when it holds none. */
static const struct fsd_inode_slot *node_of(fuse_ino_t ino)
{
	const struct fsd_inode_slot *sl = ino < D.inodes.nslots ? &D.inodes.slots[ino] : NULL;

	return sl && sl->state != FSD_SLOT_FREE && sl->nlookup ? sl : NULL;
}

/* The number of the entry at path (walked), the walk's lookups given back but this one. */
static fuse_ino_t entry_number(const char *path)
{
	char dir[256];
	const char *slash = strrchr(path, '/');
	fuse_ino_t ino;

	ck_assert_ptr_nonnull(slash);
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	ino = kernel_lookup_ok(kernel_walk(dir, NULL), slash + 1, NULL);
	kernel_unwalk(dir);
	return ino;
}

static struct fsd_vtree *cached_tree(const char *key)
{
	return (struct fsd_vtree *)(uintptr_t)fsd_strmap_get(&D.vtrees, key);
}

/* ------------------------------------------------------------------------------------------ */
/* The daemon's state over the fixture repository, as fs/daemon.c sets it up. */

static char node_dir[128];

/* The fetcher's lines (a mirror that failed): counted, not printed. */
static void fetch_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
	fetch_logs++;
}

static void setup(void)
{
	struct fs_repo_opts ro = {.fetch.log = fetch_log};
	uint8_t digest[VERIFY_HASH_LEN];
	int r;

	memset(&D, 0, sizeof(D));
	fake_fsd = &D;
	nlogs = fetch_logs = 0;
	last_log[0] = '\0';
	mirrors[0] = F.mirror;
	snprintf(node_dir, sizeof(node_dir), "%s/store-XXXXXX", F.dir);
	ck_assert_ptr_nonnull(mkdtemp(node_dir));
	D.conf.timeout = 30;
	D.conf.refresh = 60;
	D.conf.max_trees = 64;
	D.foreground = true;
	D.stop_at = INT64_MAX;
	D.mirrors = mirrors;
	D.nmirrors = 1;
	ck_assert_int_eq(store_open(node_dir, &D.store), 0);
	verify_sha256(F.root, F.rootlen, digest);
	verify_hex(digest, VERIFY_HASH_LEN, D.repo_id);
	r = fs_repo_open(D.store, F.root, F.rootlen, (const char *const *)mirrors, 1, &ro, &D.repo);
	ck_assert_msg(r == 0, "fs_repo_open: %d %s", r, stork_error_detail());
	r = fs_repo_refresh(D.repo);
	ck_assert_msg(r == 0, "fs_repo_refresh: %d %s", r, stork_error_detail());
	ck_assert_int_eq(fsd_inodes_init(&D.inodes), 0);
	pthread_mutex_init(&D.cat_lock, NULL);
	pthread_mutex_init(&D.vt_lock, NULL);
	pthread_mutex_init(&D.status_lock, NULL);
	ck_assert_int_eq(fsd_jobs_init(&D.jobs), 0);
	r = fsd_catalog_build(D.repo, &D.cat);
	ck_assert_msg(r == 0, "fsd_catalog_build: %d %s", r, stork_error_detail());
	D.started = time(NULL);
}

static void teardown(void)
{
	ck_assert_int_eq(fsd_jobs_drain(&D.jobs, 30), 0);
	fsd_jobs_fini(&D.jobs);
	fsd_strmap_fini(&D.sources);
	for (size_t i = 0; i < D.vtrees.cap; i++)
		if (D.vtrees.slots[i].key)
			fsd_vtree_unref((struct fsd_vtree *)(uintptr_t)D.vtrees.slots[i].val);
	fsd_strmap_fini(&D.vtrees);
	fsd_inodes_fini(&D.inodes);
	fsd_catalog_unref(D.cat);
	fs_repo_close(D.repo);
	store_close(D.store);
	nftw(node_dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	fake_reqs_free();
}

/* ------------------------------------------------------------------------------------------ */
/* Lookups and attributes */

START_TEST(lookup_gives_packages_versions_files_and_latest)
{
	struct stat st;
	fuse_ino_t pkg, ver, bin, file, conf, latest, suid;
	struct fuse_req *r;

	pkg = kernel_lookup_ok(FUSE_ROOT_ID, "hello", &st);
	ck_assert_uint_eq(st.st_mode, S_IFDIR | 0555);
	ck_assert_int_eq(st.st_mtime, D.cat->built);
	r = kernel_lookup(FUSE_ROOT_ID, "hello");
	ck_assert(r->e.entry_timeout == D.conf.refresh); /* a refresh may change it */

	ver = kernel_lookup_ok(pkg, "1.10", &st);
	ck_assert_uint_eq(st.st_mode, S_IFDIR | 0555);
	r = kernel_lookup(pkg, "1.10");
	ck_assert(r->e.entry_timeout == FSD_IMMUTABLE_TIMEOUT);
	ck_assert(r->e.attr_timeout == FSD_IMMUTABLE_TIMEOUT);

	bin = kernel_lookup_ok(ver, "bin", &st);
	ck_assert_uint_eq(st.st_mode, S_IFDIR | 0555); /* 0755 in the source */
	ck_assert_int_eq(st.st_mtime, MTIME);

	file = kernel_lookup_ok(bin, "hello", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 0555); /* 0755: write bits dropped */
	ck_assert_int_eq(st.st_size, (off_t)strlen(hello_sh));
	ck_assert_int_eq(st.st_mtime, MTIME);
	ck_assert_int_eq(st.st_nlink, 1);
	ck_assert_int_eq(st.st_blocks, 1);
	ck_assert_int_ne(file, bin);

	conf = kernel_walk("hello/1.10/etc/hello.conf", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 0444); /* 0644 */
	ck_assert_int_eq(st.st_size, (off_t)strlen("greeting=hello 1.10\n"));

	suid = kernel_walk("hello/1.10/bin/setuid", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 0555); /* 04755, the mount not allowing setuid */
	ck_assert_int_ne(conf, suid);

	latest = kernel_lookup_ok(pkg, "latest", &st);
	ck_assert_uint_eq(st.st_mode, S_IFLNK | 0777);
	ck_assert_int_eq(st.st_size, (off_t)strlen(hello_vers[NVERS - 1]));

	kernel_walk("hello/1.10/lib/link", &st);
	ck_assert_uint_eq(st.st_mode, S_IFLNK | 0777);
	ck_assert_int_eq(st.st_size, (off_t)strlen("../bin/hello"));
	ck_assert_int_eq(st.st_mtime, MTIME);

	/* getattr agrees with the entry replies */
	r = kernel_getattr(file);
	ck_assert_int_eq(r->kind, R_ATTR);
	ck_assert_uint_eq(r->attr.st_ino, file);
	ck_assert_uint_eq(r->attr.st_mode, S_IFREG | 0555);
	ck_assert_int_eq(r->attr.st_size, (off_t)strlen(hello_sh));
	ck_assert(r->timeout == FSD_IMMUTABLE_TIMEOUT);
	r = kernel_getattr(latest);
	ck_assert_uint_eq(r->attr.st_mode, S_IFLNK | 0777);
	r = kernel_getattr(FUSE_ROOT_ID);
	ck_assert_uint_eq(r->attr.st_mode, S_IFDIR | 0555);
	ck_assert_int_eq(nlogs, 0);
}
END_TEST

START_TEST(setuid_bits_only_when_the_mount_allows_them)
{
	struct stat st;

	D.conf.allow_setuid = 1;
	kernel_walk("hello/1.0/bin/setuid", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 04555);
	kernel_walk("hello/1.0/etc/hello.conf", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 0444);
}
END_TEST

START_TEST(lookup_of_what_does_not_exist_replies_one_error)
{
	fuse_ino_t pkg = kernel_walk("hello", NULL), ver = kernel_walk("hello/1.0", NULL);
	fuse_ino_t file = kernel_walk("hello/1.0/bin/hello", NULL);
	struct fuse_req *r;

	ck_assert_int_eq(kernel_lookup_err(FUSE_ROOT_ID, "nope"), ENOENT);
	ck_assert_int_eq(kernel_lookup_err(pkg, "9.9"), ENOENT);
	/* equal to 1.0 for dpkg, but not its name */
	ck_assert_int_eq(kernel_lookup_err(pkg, "1.00"), ENOENT);
	ck_assert_int_eq(kernel_lookup_err(ver, "nope"), ENOENT);
	ck_assert_int_eq(kernel_lookup_err(kernel_walk("hello/1.0/bin", NULL), "nope"), ENOENT);
	ck_assert_int_eq(kernel_lookup_err(ver, "bin/hello"), ENOENT); /* one component at a time */
	ck_assert_int_eq(kernel_lookup_err(FUSE_ROOT_ID, ""), ENOENT);
	ck_assert_int_eq(kernel_lookup_err(file, "x"), ENOTDIR);
	ck_assert_int_eq(kernel_lookup_err(12345, "x"), ESTALE); /* a number never given */
	/* nothing numbered for the misses */
	ck_assert_uint_eq(fsd_inodes_number(&D.inodes, "nope"), 0);
	ck_assert_uint_eq(fsd_inodes_number(&D.inodes, "hello/1.0/nope"), 0);
	/* a miss is no failure: nothing logged */
	ck_assert_int_eq(nlogs, 0);

	/* metadata stale past max_stale: every lookup is refused, once */
	__atomic_store_n(&D.stop_at, 0, __ATOMIC_RELEASE);
	r = kernel_lookup(FUSE_ROOT_ID, "hello");
	ck_assert_int_eq(r->kind, R_ERR);
	ck_assert_int_eq(r->err, EKEYEXPIRED);
	ck_assert_uint_eq(D.counters.refused, 1);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Inode numbers and lookup counts (fs/inode.c) */

START_TEST(inode_numbers_are_stable_and_forget_frees_at_zero)
{
	fuse_ino_t pkg, again, file, bin;
	struct fsd_vtree *t;
	int refs;

	pkg = kernel_walk("hello", NULL);
	again = kernel_walk("hello", NULL);
	ck_assert_uint_eq(pkg, again);
	ck_assert_ptr_nonnull(node_of(pkg));
	ck_assert_uint_eq(node_of(pkg)->nlookup, 2);

	kernel_forget(pkg, 1);
	ck_assert_ptr_nonnull(node_of(pkg));
	ck_assert_uint_eq(node_of(pkg)->nlookup, 1);
	kernel_forget(pkg, 1);
	ck_assert_ptr_null(node_of(pkg)); /* freed at zero */
	ck_assert_int_eq(kernel_getattr(pkg)->err, ESTALE);
	/* the path keeps its number */
	ck_assert_uint_eq(kernel_walk("hello", NULL), pkg);
	ck_assert_uint_eq(node_of(pkg)->nlookup, 1);

	/* an entry's node holds its version's tree until it is freed */
	file = kernel_walk("hello/1.9/bin/hello", NULL);
	bin = entry_number("hello/1.9/bin");
	kernel_forget(bin, 1); /* walked twice: once here, once with bin/hello */
	t = cached_tree("hello/1.9");
	ck_assert_ptr_nonnull(t);
	refs = __atomic_load_n(&t->refs, __ATOMIC_ACQUIRE);
	ck_assert_int_eq(refs, 3); /* the cache, bin, bin/hello */
	ck_assert_uint_eq(kernel_walk("hello/1.9/bin/hello", NULL), file);
	ck_assert_uint_eq(node_of(file)->nlookup, 2);
	ck_assert_int_eq(__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE), 3);

	/* forget_multi, as the kernel batches it */
	{
		struct fuse_forget_data fd[2] = {{.ino = file, .nlookup = 2},
						 {.ino = bin, .nlookup = 2}};
		struct fuse_req *r = fake_req_new();

		fsd_ops.forget_multi(r, 2, fd);
		ONE_REPLY(r, "forget_multi");
		ck_assert_int_eq(r->kind, R_NONE);
	}
	ck_assert_ptr_null(node_of(file));
	ck_assert_ptr_null(node_of(bin));
	ck_assert_int_eq(__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE), 1); /* the cache's */
	/* forgotten, they keep their numbers without their tree (a file: a copy of its key) */
	ck_assert_uint_eq(kernel_walk("hello/1.9/bin/hello", NULL), file);
	ck_assert_uint_eq(entry_number("hello/1.9/bin"), bin);
	ck_assert_int_eq(__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE), 3);
	kernel_unwalk("hello/1.9/bin/hello");
	kernel_forget(bin, 1);
	ck_assert_ptr_null(node_of(file));
	ck_assert_int_eq(__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE), 1);

	/* more forgets than lookups: clamped, never below zero; the root is never freed */
	kernel_walk("hello/1.9", NULL);
	kernel_forget(fsd_inodes_number(&D.inodes, "hello/1.9"), 5);
	ck_assert_ptr_null(node_of(fsd_inodes_number(&D.inodes, "hello/1.9")));
	kernel_forget(FUSE_ROOT_ID, 10);
	ck_assert_ptr_nonnull(node_of(FUSE_ROOT_ID));
	ck_assert_int_eq(kernel_getattr(FUSE_ROOT_ID)->kind, R_ATTR);
	/* forgetting a number never given or already freed does nothing */
	kernel_forget(99999, 1);
	kernel_forget(file, 1);
}
END_TEST

/* Regular files are numbered by content, mode and mtime (hard-link semantics); the numbers
 * the kernel forgot are kept up to idle_max, then dropped and given again. */
START_TEST(identical_files_are_one_inode_and_forgotten_numbers_are_bounded)
{
	fuse_ino_t a, b, held;
	size_t nslots;
	char path[128];

	a = kernel_walk("hello/1.0/bin/hello", NULL);
	b = kernel_walk("hello/1.9/bin/hello", NULL);
	ck_assert_uint_eq(a, b);
	ck_assert_uint_eq(node_of(a)->nlookup, 2);
	ck_assert_ptr_eq(node_of(a)->p, cached_tree("hello/1.9")); /* the last lookup's tree */
	ck_assert_uint_ne(kernel_walk("hello/1.9/bin/setuid", NULL), a);
	ck_assert_uint_ne(kernel_walk("hello/1.0/etc/hello.conf", NULL),
			  kernel_walk("hello/1.9/etc/hello.conf", NULL));
	ck_assert_uint_ne(entry_number("hello/1.0/bin"),
			  entry_number("hello/1.9/bin")); /* directories by where they are */

	D.inodes.idle_max = 3;
	held = kernel_walk("hello/1.0/VERSION", NULL);
	nslots = 0;
	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < NVERS; i++) {
			snprintf(path, sizeof(path), "hello/%s/lib/link", hello_vers[i]);
			kernel_walk(path, NULL);
			kernel_unwalk(path);
			ck_assert_uint_le(D.inodes.nidle, 3);
			/* files too: their kept keys are dropped with their numbers */
			snprintf(path, sizeof(path), "hello/%s/VERSION", hello_vers[i]);
			kernel_walk(path, NULL);
			kernel_unwalk(path);
			ck_assert_uint_le(D.inodes.nidle, 3);
			ck_assert_uint_le(D.inodes.bypath.n + D.inodes.nkeys,
					  D.inodes.nslots - D.inodes.nfreed);
		}
		if (round == 1)
			nslots = D.inodes.nslots;
	}
	ck_assert_uint_eq(D.inodes.nslots, nslots); /* numbers given again, the table stays */
	/* what the kernel holds keeps its number and works */
	ck_assert_uint_eq(kernel_walk("hello/1.0/VERSION", NULL), held);
	ck_assert_int_eq(kernel_getattr(held)->kind, R_ATTR);
	ck_assert_int_eq(kernel_getattr(a)->kind, R_ATTR);
	ck_assert_int_eq(nlogs, 0);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Directories */

static void assert_names(const struct fake_listing *l, const char *const *want, size_t n)
{
	ck_assert_uint_eq(l->n, n + 2);
	ck_assert_str_eq(l->names[0], ".");
	ck_assert_str_eq(l->names[1], "..");
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strcmp(l->names[i + 2], want[i]) == 0, "entry %zu: '%s', want '%s'",
			      i, l->names[i + 2], want[i]);
}

START_TEST(readdir_lists_versions_in_dpkg_order_then_latest)
{
	const char *want[NVERS + 1], *root[] = {"hello", "other"};
	fuse_ino_t pkg = kernel_walk("hello", NULL);
	struct fake_listing l, small;

	for (size_t i = 0; i < NVERS; i++)
		want[i] = hello_vers[i];
	want[NVERS] = "latest";
	kernel_list_dir(pkg, false, 4096, &l);
	assert_names(&l, want, NVERS + 1);
	ck_assert_uint_eq(l.inos[0], pkg);
	ck_assert_uint_eq(l.inos[1], FUSE_ROOT_ID);
	ck_assert_uint_eq(l.modes[NVERS + 2] & S_IFMT, S_IFLNK); /* latest */
	ck_assert_uint_eq(l.modes[2] & S_IFMT, S_IFDIR);
	/* the number listed is the number a lookup gives */
	ck_assert_uint_eq(l.inos[4], fsd_inodes_number(&D.inodes, "hello/1.9"));
	ck_assert_uint_eq(l.inos[4], kernel_walk("hello/1.9", NULL));

	/* a buffer that holds two entries: the same listing over several calls */
	kernel_list_dir(pkg, false, 2 * (sizeof(struct fake_dirent) + 8), &small);
	assert_names(&small, want, NVERS + 1);
	ck_assert_int_ge(small.calls, 4);

	kernel_list_dir(FUSE_ROOT_ID, false, 4096, &l);
	assert_names(&l, root, 2);

	/* without opendir (the kernel's no_opendir): the same */
	D.no_opendir = true;
	kernel_list_dir(pkg, false, 4096, &l);
	assert_names(&l, want, NVERS + 1);
}
END_TEST

START_TEST(readdir_of_a_version_lists_its_tree_and_counts_lookups)
{
	const char *top[] = {"VERSION", "bin", "etc", "lib"}, *bin[] = {"hello", "setuid"};
	fuse_ino_t ver = kernel_walk("hello/1.0", NULL), binino, pkg;
	struct fake_listing l;

	kernel_list_dir(ver, false, 4096, &l);
	assert_names(&l, top, 4);
	ck_assert_uint_eq(l.inos[1], fsd_inodes_number(&D.inodes, "hello"));
	/* plain readdir leaves no lookup on what it listed */
	binino = entry_number("hello/1.0/bin");
	kernel_forget(binino, 1);
	ck_assert_uint_eq(l.inos[3], binino);
	ck_assert_ptr_null(node_of(binino));

	/* readdirplus: the kernel holds one lookup on each entry it was given */
	kernel_list_dir(ver, true, 4096, &l);
	assert_names(&l, top, 4);
	ck_assert_ptr_nonnull(node_of(binino));
	ck_assert_uint_eq(node_of(binino)->nlookup, 1);
	ck_assert_uint_eq(l.modes[3] & S_IFMT, S_IFDIR);
	ck_assert_uint_eq(l.modes[2] & S_IFMT, S_IFREG);

	kernel_list_dir(binino, true, 4096, &l);
	assert_names(&l, bin, 2);
	ck_assert_uint_eq(l.inos[1], ver);

	/* readdirplus into a buffer too small for the next entry: that entry gets no lookup */
	pkg = kernel_walk("hello", NULL);
	kernel_list_dir(pkg, true, sizeof(struct fake_dirent) + 128 + 16, &l);
	ck_assert_uint_eq(l.n, NVERS + 3);
	for (size_t i = 2; i < l.n; i++)
		ck_assert_uint_eq(node_of(l.inos[i])->nlookup, (l.inos[i] == ver ? 2 : 1));

	/* a file is no directory */
	{
		struct fuse_file_info fi = {0};
		struct fuse_req *r = fake_req_new();

		fsd_ops.opendir(r, kernel_walk("hello/1.0/VERSION", NULL), &fi);
		ONE_REPLY(r, "opendir of a file");
		ck_assert_int_eq(r->err, ENOTDIR);
	}
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Symlinks and extended attributes */

START_TEST(readlink_of_latest_and_of_a_symlink)
{
	struct fuse_req *r;

	r = kernel_readlink(kernel_walk("hello/latest", NULL));
	ck_assert_int_eq(r->kind, R_READLINK);
	ck_assert_str_eq(r->link, hello_vers[NVERS - 1]);
	r = kernel_readlink(kernel_walk("other/latest", NULL));
	ck_assert_str_eq(r->link, "2.0");
	r = kernel_readlink(kernel_walk("hello/1.9/lib/link", NULL));
	ck_assert_int_eq(r->kind, R_READLINK);
	ck_assert_str_eq(r->link, "../bin/hello");
	ck_assert_int_eq(kernel_readlink(kernel_walk("hello/1.9/bin/hello", NULL))->err, EINVAL);
	ck_assert_int_eq(kernel_readlink(kernel_walk("hello/1.9", NULL))->err, EINVAL);
	ck_assert_int_eq(kernel_readlink(54321)->err, ESTALE);
}
END_TEST

START_TEST(getxattr_answers_the_size_then_the_value)
{
	fuse_ino_t file = kernel_walk("hello/1.0/bin/hello", NULL),
		   dir = kernel_walk("hello/1.0/bin", NULL);
	uint8_t h[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX], want[256];
	struct fsd_catalog *cat = D.cat;
	const struct fsd_cat_ver *cv;
	struct fuse_req *r;

	verify_sha256(hello_sh, strlen(hello_sh), h);
	verify_hex(h, VERIFY_HASH_LEN, hex);
	/* size 0: the length; then a buffer of that length: the value; shorter: ERANGE */
	r = kernel_getxattr(file, "user.storkfs.hash", 0);
	ck_assert_int_eq(r->kind, R_XATTR);
	ck_assert_uint_eq(r->xsize, 64);
	r = kernel_getxattr(file, "user.storkfs.hash", 64);
	ck_assert_int_eq(r->kind, R_BUF);
	ck_assert_uint_eq(r->len, 64);
	ck_assert_mem_eq(r->buf, hex, 64);
	ck_assert_int_eq(kernel_getxattr(file, "user.storkfs.hash", 63)->err, ERANGE);

	cv = fsd_catalog_ver(fsd_catalog_pkg(cat, "hello"), "1.0");
	ck_assert_ptr_nonnull(cv);
	snprintf(want, sizeof(want), "%s %s", cv->role, cv->keyid);
	ck_assert_str_eq(cv->role, "alice");
	r = kernel_getxattr(file, "user.storkfs.signer", 0);
	ck_assert_uint_eq(r->xsize, strlen(want));
	r = kernel_getxattr(file, "user.storkfs.signer", sizeof(want));
	ck_assert_uint_eq(r->len, strlen(want));
	ck_assert_mem_eq(r->buf, want, strlen(want));
	/* a directory of a version has a signer, not a hash */
	r = kernel_getxattr(dir, "user.storkfs.signer", sizeof(want));
	ck_assert_mem_eq(r->buf, want, strlen(want));
	ck_assert_int_eq(kernel_getxattr(dir, "user.storkfs.hash", 100)->err, ENODATA);

	r = kernel_getxattr(file, "user.storkfs.cached", 10);
	ck_assert_uint_eq(r->len, 1);
	ck_assert_int_eq(r->buf[0], '0'); /* nothing opened yet */
	r = kernel_getxattr(file, "user.storkfs.source", 100);
	ck_assert_uint_eq(r->len, 4);
	ck_assert_mem_eq(r->buf, "none", 4);
	ck_assert_int_eq(kernel_getxattr(file, "user.other", 100)->err, ENODATA);
	ck_assert_int_eq(kernel_getxattr(FUSE_ROOT_ID, "user.storkfs.hash", 100)->err, ENODATA);
	ck_assert_int_eq(kernel_getxattr(777777, "user.storkfs.hash", 100)->err, ESTALE);

	r = kernel_getxattr(FUSE_ROOT_ID, "user.storkfs.repository", 0);
	ck_assert_uint_eq(r->xsize, 64);
	r = kernel_getxattr(FUSE_ROOT_ID, "user.storkfs.repository", 64);
	ck_assert_mem_eq(r->buf, D.repo_id, 64);
	r = kernel_getxattr(FUSE_ROOT_ID, "user.storkfs.mirrors", 1000);
	ck_assert_uint_eq(r->len, strlen(F.mirror));
	ck_assert_mem_eq(r->buf, F.mirror, strlen(F.mirror));

	/* the names, the same way */
	r = kernel_listxattr(file, 0);
	ck_assert_int_eq(r->kind, R_XATTR);
	{
		size_t len = r->xsize;
		const char names[] = "user.storkfs.hash\0user.storkfs.cached\0"
				     "user.storkfs.source\0user.storkfs.signer";

		ck_assert_uint_eq(len, sizeof(names));
		r = kernel_listxattr(file, len);
		ck_assert_int_eq(r->kind, R_BUF);
		ck_assert_mem_eq(r->buf, names, sizeof(names));
		ck_assert_int_eq(kernel_listxattr(file, len - 1)->err, ERANGE);
	}
	r = kernel_listxattr(dir, 100);
	ck_assert_uint_eq(r->len, sizeof("user.storkfs.signer"));
	r = kernel_listxattr(kernel_walk("hello", NULL), 100);
	ck_assert_int_eq(r->kind, R_BUF);
	ck_assert_uint_eq(r->len, 0);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Files */

START_TEST(open_fetches_the_object_and_reads_its_bytes)
{
	fuse_ino_t file = kernel_walk("hello/1.0/bin/hello", NULL);
	struct fuse_file_info fi;
	struct fuse_req *r;

	r = kernel_open(file, O_RDONLY);
	ck_assert_msg(r->kind == R_OPEN, "open: reply %d errno %d (%s)", r->kind, r->err, last_log);
	fi = r->fi;
	ck_assert(fi.keep_cache);
	ck_assert_uint_eq(D.counters.opens, 1);
	ck_assert_uint_eq(D.counters.misses, 1);

	r = fake_req_new();
	fsd_ops.read(r, file, 4096, 0, &fi);
	ONE_REPLY(r, "read");
	ck_assert_int_eq(r->kind, R_DATA);
	ck_assert_uint_eq(r->len, strlen(hello_sh));
	ck_assert_mem_eq(r->buf, hello_sh, strlen(hello_sh));
	r = fake_req_new();
	fsd_ops.read(r, file, 4, 10, &fi);
	ck_assert_mem_eq(r->buf, hello_sh + 10, 4);
	kernel_release(&fi);

	r = kernel_getxattr(file, "user.storkfs.cached", 10);
	ck_assert_int_eq(r->buf[0], '1');
	/* (the daemon's fs_repo_opts.fetched callback, which notes who delivered an object, is
	 * not wired here: the object is simply in the store now) */
	r = kernel_getxattr(file, "user.storkfs.source", 1000);
	ck_assert_uint_eq(r->len, 5);
	ck_assert_mem_eq(r->buf, "store", 5);

	/* the next open finds it in the store */
	r = kernel_open(file, O_RDONLY);
	ck_assert_int_eq(r->kind, R_OPEN);
	ck_assert_uint_eq(D.counters.hits, 1);
	fi = r->fi;
	kernel_release(&fi);
	ck_assert_int_eq(nlogs, 0);
}
END_TEST

START_TEST(open_refuses_writes_directories_and_symlinks)
{
	fuse_ino_t file = kernel_walk("hello/1.0/bin/hello", NULL);

	ck_assert_int_eq(kernel_open(file, O_WRONLY)->err, EROFS);
	ck_assert_int_eq(kernel_open(file, O_RDWR)->err, EROFS);
	ck_assert_int_eq(kernel_open(file, O_RDONLY | O_TRUNC)->err, EROFS);
	ck_assert_int_eq(kernel_open(kernel_walk("hello/1.0/bin", NULL), O_RDONLY)->err, EISDIR);
	ck_assert_int_eq(kernel_open(kernel_walk("hello/1.0", NULL), O_RDONLY)->err, EISDIR);
	ck_assert_int_eq(kernel_open(kernel_walk("hello/1.0/lib/link", NULL), O_RDONLY)->err,
			 ELOOP);
	ck_assert_int_eq(kernel_open(424242, O_RDONLY)->err, ESTALE);
	ck_assert_uint_eq(D.counters.opens, 0);
	ck_assert_uint_eq(D.counters.misses, 0); /* nothing was fetched for them */
}
END_TEST

START_TEST(open_that_no_mirror_serves_is_one_eio_and_one_log_line)
{
	fuse_ino_t file = kernel_walk("other/2.0/data", NULL);
	struct fuse_req *r;

	/* the object is gone from the (only) mirror */
	{
		struct fsd_vtree *t = cached_tree("other/2.0");
		char rel[STORE_OBJPATH_LEN], path[512];
		struct verify_entry e0;

		ck_assert_ptr_nonnull(t);
		fsd_vtree_entry(t, 0, &e0);
		store_object_path(e0.hash, rel);
		snprintf(path, sizeof(path), "%s/%s", F.repo, rel);
		ck_assert_int_eq(unlink(path), 0);
	}
	r = kernel_open(file, O_RDONLY);
	ck_assert_int_eq(r->kind, R_ERR);
	ck_assert_int_eq(r->err, EIO);
	ck_assert_int_eq(nlogs, 1);
	ck_assert_msg(strstr(last_log, "open other 2.0: data") != NULL, "log: %s", last_log);
	ck_assert_int_eq(fetch_logs, 1); /* the fetcher's: the mirror, skipped */
	ck_assert_uint_eq(D.counters.errors, 1);
	ck_assert_uint_eq(D.counters.opens, 0);
}
END_TEST

START_TEST(statfs_has_nothing_free)
{
	struct fuse_req *r = fake_req_new();

	fsd_ops.statfs(r, FUSE_ROOT_ID);
	ONE_REPLY(r, "statfs");
	ck_assert_int_eq(r->kind, R_STATFS);
	ck_assert_uint_eq(r->statfs.f_bfree, 0);
	ck_assert_uint_eq(r->statfs.f_bavail, 0);
	ck_assert_uint_eq(r->statfs.f_ffree, 0);
	ck_assert_uint_eq(r->statfs.f_namemax, 255);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The tree cache (fs/tree.c) */

START_TEST(tree_cache_evicts_the_least_recently_used_unheld_trees)
{
	char path[128];
	fuse_ino_t held;
	struct fsd_vtree *a;

	D.conf.max_trees = 4; /* above 4: evict down to 3 */
	/* A = 1.0~rc1 stays held by a file's inode; B, C, D are only cached */
	held = kernel_walk("hello/1.0~rc1/VERSION", NULL);
	for (int i = 1; i < 4; i++) {
		snprintf(path, sizeof(path), "hello/%s/VERSION", hello_vers[i]);
		kernel_walk(path, NULL);
		kernel_unwalk(path);
	}
	ck_assert_uint_eq(D.vtrees.n, 4);
	ck_assert_uint_eq(D.counters.trees_loaded, 4);
	ck_assert_uint_eq(D.counters.trees_evicted, 0);
	/* the least recently used first: A (held), then B, C, D */
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "hello/%s", hello_vers[i]);
		ck_assert_ptr_nonnull(cached_tree(path));
		cached_tree(path)->last_use = i + 1;
	}
	a = fsd_vtree_ref(cached_tree("hello/1.0~rc1"));

	/* a fifth tree: B and C go, A (held, though oldest) and D stay */
	kernel_walk("hello/1:0.1/VERSION", NULL);
	ck_assert_uint_eq(D.counters.trees_loaded, 5);
	ck_assert_uint_eq(D.counters.trees_evicted, 2);
	ck_assert_uint_eq(D.vtrees.n, 3);
	ck_assert_ptr_eq(cached_tree("hello/1.0~rc1"), a);
	ck_assert_ptr_null(cached_tree("hello/1.0"));
	ck_assert_ptr_null(cached_tree("hello/1.9"));
	ck_assert_ptr_nonnull(cached_tree("hello/1.10"));
	ck_assert_ptr_nonnull(cached_tree("hello/1:0.1"));
	fsd_vtree_unref(a);

	/* what is held still works; an evicted version loads again */
	ck_assert_int_eq(kernel_getattr(held)->kind, R_ATTR);
	kernel_walk("hello/1.9/bin/hello", NULL);
	ck_assert_uint_eq(D.counters.trees_loaded, 6);
	ck_assert_ptr_nonnull(cached_tree("hello/1.9"));
	/* a tree in the cache is not loaded again */
	kernel_walk("hello/1.10/bin/hello", NULL);
	ck_assert_uint_eq(D.counters.trees_loaded, 6);
	ck_assert_int_eq(nlogs, 0);
}
END_TEST

START_TEST(catalog_lists_what_the_metadata_signs)
{
	const struct fsd_cat_pkg *p = fsd_catalog_pkg(D.cat, "hello");

	ck_assert_uint_eq(D.cat->n, 2);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->n, NVERS);
	for (size_t i = 0; i < NVERS; i++)
		ck_assert_str_eq(p->vers[i].version, hello_vers[i]);
	ck_assert_ptr_null(fsd_catalog_pkg(D.cat, "nope"));
	ck_assert_ptr_null(fsd_catalog_ver(p, "1.00"));
	ck_assert(fsd_catalog_signs(D.cat, "hello", "1.0", fsd_catalog_ver(p, "1.0")->hash));
	ck_assert(!fsd_catalog_signs(D.cat, "hello", "1.0", fsd_catalog_ver(p, "1.9")->hash));
	ck_assert(!fsd_catalog_signs(D.cat, "other", "1.0", fsd_catalog_ver(p, "1.0")->hash));
}
END_TEST

/* A slice (fs/README.md "Slices"), put in the table as fs/slices_load.c would: its subtree
 * shows what its policy accepts, its numbers are its own, and it tells only about itself. */
START_TEST(a_slice_shows_its_policy_and_tells_only_about_itself)
{
	static const char text[] = "pin hello < 1.9\ntrust hello delegated\n";
	static char dir[] = "/etc/storkfs/slices";
	const char *pkgs[] = {"hello"}, *vers[] = {"1.0~rc1", "1.0", "latest"},
		   *top_names[] = {"hello", "other"};
	struct fsd_slice *s = calloc(1, sizeof(*s));
	fuse_ino_t top, root, file;
	struct fake_listing l;
	struct fuse_req *r;
	char *json;

	ck_assert_int_eq(kernel_lookup_err(FUSE_ROOT_ID, ".slices"), ENOENT); /* no slices= */
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(s->name = strdup("a"));
	ck_assert_int_eq(verify_policy_parse("a.policy", text, strlen(text), NULL, &s->pol), 0);
	ck_assert_int_eq(fsd_catalog_build_for(D.repo, s->pol, &s->cat), 0);
	pthread_mutex_init(&D.slice_lock, NULL);
	ck_assert_ptr_nonnull(D.slices = calloc(1, sizeof(*D.slices)));
	D.slices[0] = s;
	D.nslices = 1;
	D.conf.slices = dir;

	top = kernel_lookup_ok(FUSE_ROOT_ID, ".slices", NULL);
	root = kernel_lookup_ok(top, "a", NULL);
	ck_assert_int_eq(kernel_lookup_err(top, "b"), ENOENT);
	kernel_list_dir(FUSE_ROOT_ID, false, 4096, &l);
	assert_names(&l, top_names, 2); /* the top level is the node's, without .slices */
	kernel_list_dir(root, false, 4096, &l);
	assert_names(&l, pkgs, 1);
	kernel_list_dir(kernel_walk(".slices/a/hello", NULL), false, 4096, &l);
	assert_names(&l, vers, 3);
	ck_assert_int_eq(kernel_lookup_err(root, "other"), ENOENT);
	ck_assert_int_eq(kernel_lookup_err(kernel_walk(".slices/a/hello", NULL), "1.9"), ENOENT);
	ck_assert_uint_eq(s->refused, 2); /* the node shows both */
	r = kernel_readlink(kernel_walk(".slices/a/hello/latest", NULL));
	ck_assert_str_eq(r->link, "1.0");

	/* One inode for the file through the top level and the slice (its pages are cached
	 * once); the node belongs to the view of its latest lookup. */
	ck_assert_uint_eq(kernel_walk(".slices/a/hello/1.0/bin/hello", NULL),
			  kernel_walk("hello/1.0/bin/hello", NULL));
	file = kernel_walk(".slices/a/hello/1.0/bin/hello", NULL);
	ck_assert_uint_eq(kernel_getxattr(file, "user.storkfs.hash", 100)->len, 64);
	/* a file answers the same in every view (one inode): whether the store holds it */
	ck_assert_uint_eq(kernel_getxattr(file, "user.storkfs.cached", 100)->len, 1);
	ck_assert_int_eq(kernel_getxattr(root, "user.storkfs.mirrors", 100)->err, ENODATA);
	ck_assert_int_eq(kernel_getxattr(root, "user.storkfs.repository", 100)->err, ENODATA);
	r = kernel_listxattr(root, 512);
	ck_assert_uint_eq(r->len, sizeof("user.storkfs.status"));
	ck_assert_mem_eq(r->buf, "user.storkfs.status", sizeof("user.storkfs.status"));
	r = kernel_getxattr(root, "user.storkfs.status", 4096);
	ck_assert_int_eq(r->kind, R_BUF);
	ck_assert_ptr_nonnull(json = strndup(r->buf, r->len));
	ck_assert_ptr_nonnull(strstr(json, "\"slice\""));
	ck_assert_ptr_nonnull(strstr(json, "\"refused\""));
	ck_assert_ptr_null(strstr(json, "mirror"));
	ck_assert_ptr_null(strstr(json, "counters"));
	free(json);
	fsd_slices_fini(&D);
	D.conf.slices = NULL;
	ck_assert_int_eq(kernel_lookup_err(top, "a"), ENOENT); /* removed */
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The fixture repository */

static void put_file(const char *dir, const char *rel, const char *content, mode_t mode)
{
	char *p = unit_path_of(dir, rel);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(content, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(p, mode), 0);
	free(p);
}

static int set_mtime(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	struct timespec ts[2] = {{.tv_sec = MTIME}, {.tv_sec = MTIME}};

	(void)st;
	(void)flag;
	(void)ftw;
	return utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
}

static void publish_dir(struct verify_key *k, int repofd, const char *src, const char *name,
			const char *version)
{
	struct store_import_opts io = {.repofd = repofd};
	struct verify_manifest *m = NULL;
	int r;

	ck_assert_int_eq(nftw(src, set_mtime, 16, FTW_PHYS), 0);
	r = store_import(src, name, version, &io, &m, NULL);
	ck_assert_msg(r == 0, "import %s %s: %d %s", name, version, r, stork_error_detail());
	r = verify_repo_publish(F.repo, F.keys, k, m, NULL);
	ck_assert_msg(r == 0, "publish %s %s: %d %s", name, version, r, stork_error_detail());
	verify_manifest_free(m);
}

static void make_repo(void)
{
	const char *pats[] = {"hello", "other"};
	struct verify_key *alice = NULL;
	char src[128], line[64];
	int repofd, r;

	snprintf(F.dir, sizeof(F.dir), "/tmp/test_fs_ops-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(F.dir));
	F.repo = unit_path_of(F.dir, "repo");
	F.keys = unit_path_of(F.dir, "keys");
	r = verify_repo_init(F.repo, F.keys, NULL, &F.root_path);
	ck_assert_msg(r == 0, "init: %d %s", r, stork_error_detail());
	ck_assert_int_eq(verify_key_generate(&alice), 0);
	r = verify_repo_delegate(F.repo, F.keys, alice, "alice", pats, 2, NULL);
	ck_assert_msg(r == 0, "delegate: %d %s", r, stork_error_detail());
	repofd = open(F.repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(repofd, 0);
	for (size_t i = 0; i < NVERS; i++) {
		snprintf(src, sizeof(src), "%s/src-hello-%zu", F.dir, i);
		ck_assert_int_eq(mkdir(src, 0755), 0);
		for (const char *const *d = (const char *const[]){"bin", "etc", "lib", NULL}; *d;
		     d++) {
			char *p = unit_path_of(src, *d);

			ck_assert_int_eq(mkdir(p, 0755), 0);
			free(p);
		}
		put_file(src, "bin/hello", hello_sh, 0755);
		put_file(src, "bin/setuid", "#!/bin/sh\nid\n", 04755);
		snprintf(line, sizeof(line), "greeting=hello %s\n", hello_vers[i]);
		put_file(src, "etc/hello.conf", line, 0644);
		snprintf(line, sizeof(line), "%s\n", hello_vers[i]);
		put_file(src, "VERSION", line, 0644);
		{
			char *p = unit_path_of(src, "lib/link");

			ck_assert_int_eq(symlink("../bin/hello", p), 0);
			free(p);
		}
		publish_dir(alice, repofd, src, "hello", hello_vers[i]);
	}
	snprintf(src, sizeof(src), "%s/src-other", F.dir);
	ck_assert_int_eq(mkdir(src, 0755), 0);
	put_file(src, "data", "only in other 2.0\n", 0644);
	publish_dir(alice, repofd, src, "other", "2.0");
	close(repofd);
	verify_key_free(alice);
	unit_read_all(F.root_path, &F.root, &F.rootlen);
	F.mirror = malloc(strlen(F.repo) + 8);
	ck_assert_ptr_nonnull(F.mirror);
	snprintf(F.mirror, strlen(F.repo) + 8, "file://%s", F.repo);
}

static void remove_repo(void)
{
	nftw(F.dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(F.repo);
	free(F.keys);
	free(F.root_path);
	free(F.root);
	free(F.mirror);
}

static Suite *ops_suite(void)
{
	Suite *s = suite_create("fs_ops");
	TCase *tc = tcase_create("ops");

	tcase_add_unchecked_fixture(tc, make_repo, remove_repo);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, lookup_gives_packages_versions_files_and_latest);
	tcase_add_test(tc, setuid_bits_only_when_the_mount_allows_them);
	tcase_add_test(tc, lookup_of_what_does_not_exist_replies_one_error);
	tcase_add_test(tc, inode_numbers_are_stable_and_forget_frees_at_zero);
	tcase_add_test(tc, identical_files_are_one_inode_and_forgotten_numbers_are_bounded);
	tcase_add_test(tc, readdir_lists_versions_in_dpkg_order_then_latest);
	tcase_add_test(tc, readdir_of_a_version_lists_its_tree_and_counts_lookups);
	tcase_add_test(tc, readlink_of_latest_and_of_a_symlink);
	tcase_add_test(tc, getxattr_answers_the_size_then_the_value);
	tcase_add_test(tc, open_fetches_the_object_and_reads_its_bytes);
	tcase_add_test(tc, open_refuses_writes_directories_and_symlinks);
	tcase_add_test(tc, open_that_no_mirror_serves_is_one_eio_and_one_log_line);
	tcase_add_test(tc, statfs_has_nothing_free);
	tcase_add_test(tc, tree_cache_evicts_the_least_recently_used_unheld_trees);
	tcase_add_test(tc, catalog_lists_what_the_metadata_signs);
	tcase_add_test(tc, a_slice_shows_its_policy_and_tells_only_about_itself);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ops_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
