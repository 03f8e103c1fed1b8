/* tests/fuzz/fuzz_import.c: the package importer `stork publish` uses (store_import) on a file:
 * a tar (plain or compressed), a .deb or an .rpm, whichever the bytes are.
 *
 * Input: the file's bytes. Seeds: small real archives (tests/fuzz/make-corpus) and broken or
 * hostile ones.
 *
 * Each input is written to SRC in a private temporary directory (under $STORK_FUZZ_TMPDIR, else
 * /dev/shm where fsync costs nothing, else $TMPDIR or /tmp) and imported into an empty
 * repository REPO next to it; both are removed before the next input and the directory at
 * exit. The importer must write nothing but objects below REPO: anything else appearing in
 * the directory stops the run. An accepted import must have written every file's object. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "store/import/import.h"
#include "tests/fuzz/fuzz.h"

/* Enough for every seed; keeps a decompression bomb to a bounded amount of work. */
#define MAX_SIZE (16ull << 20)

static char dir[PATH_MAX], src[PATH_MAX], repo[PATH_MAX];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		fuzz_bug("cannot remove %s: %s", path, strerror(errno));
	return 0;
}

static void remove_tree(const char *path)
{
	if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		fuzz_bug("cannot walk %s: %s", path, strerror(errno));
}

static void remove_dir(void)
{
	if (dir[0])
		remove_tree(dir);
}

static const char *tmp_base(void)
{
	const char *base = getenv("STORK_FUZZ_TMPDIR");

	if (base && base[0])
		return base;
	if (access("/dev/shm", W_OK | X_OK) == 0)
		return "/dev/shm";
	base = getenv("TMPDIR");
	return base && base[0] ? base : "/tmp";
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	if ((size_t)snprintf(dir, sizeof(dir), "%s/stork-fuzz-import.XXXXXX", tmp_base()) >=
	    sizeof(dir))
		fuzz_bug("temporary directory name too long");
	if (!mkdtemp(dir))
		fuzz_bug("mkdtemp %s: %s", dir, strerror(errno));
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	atexit(remove_dir);
	return 0;
}

static void write_source(const uint8_t *data, size_t size)
{
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		fuzz_bug("open %s: %s", src, strerror(errno));
	while (size > 0) {
		ssize_t w = write(fd, data, size);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fuzz_bug("write %s: %s", src, strerror(errno));
		data += w;
		size -= (size_t)w;
	}
	close(fd);
}

/* Only SRC and REPO may be in the directory, and only objects/ in REPO. */
static void check_nothing_else(void)
{
	struct dirent *e;
	DIR *d;

	d = opendir(dir);
	if (!d)
		fuzz_bug("opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "src") &&
		    strcmp(e->d_name, "repo"))
			fuzz_bug("the import wrote %s/%s", dir, e->d_name);
	closedir(d);
	d = opendir(repo);
	if (!d)
		fuzz_bug("opendir %s: %s", repo, strerror(errno));
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, "objects"))
			fuzz_bug("the import wrote %s/%s", repo, e->d_name);
	closedir(d);
}

static void check_accepted(int repofd, const struct verify_manifest *m,
			   const struct store_import_stats *st)
{
	char path[STORE_OBJPATH_LEN];
	uint64_t files = 0, bytes = 0;
	struct stat sb;
	size_t i;

	if (strcmp(m->format, "tar") && strcmp(m->format, "deb") && strcmp(m->format, "rpm"))
		fuzz_bug("an archive imported with format \"%s\"", m->format);
	for (i = 0; i < m->n; i++) {
		const struct verify_entry *e = &m->entries[i];

		if (e->type != VERIFY_FILE)
			continue;
		files++;
		bytes += e->size;
		store_object_path(e->hash, path);
		if (fstatat(repofd, path, &sb, 0) < 0)
			fuzz_bug("entry \"%s\": object %s was not written", e->path, path);
		if ((uint64_t)sb.st_size != e->zsize)
			fuzz_bug("entry \"%s\": object %s is %lld bytes, zsize says %llu", e->path,
				 path, (long long)sb.st_size, (unsigned long long)e->zsize);
	}
	if (files != st->files || bytes != st->bytes || m->n != st->entries)
		fuzz_bug("import stats do not match the manifest");
	if (bytes > MAX_SIZE)
		fuzz_bug("imported %llu bytes over max_size", (unsigned long long)bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_import_opts o = {.max_size = MAX_SIZE};
	struct store_import_stats st = {0};
	struct verify_manifest *m = NULL;
	int r;

	write_source(data, size);
	if (mkdir(repo, 0700) < 0)
		fuzz_bug("mkdir %s: %s", repo, strerror(errno));
	o.repofd = open(repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o.repofd < 0)
		fuzz_bug("open %s: %s", repo, strerror(errno));

	r = store_import(src, "fuzz", "1.0", &o, &m, &st);
	if (r == 0) {
		check_accepted(o.repofd, m, &st);
		verify_manifest_free(m);
	}
	check_nothing_else();

	close(o.repofd);
	remove_tree(repo);
	if (unlink(src) < 0)
		fuzz_bug("unlink %s: %s", src, strerror(errno));
	stork_error_clear();
	return 0;
}
