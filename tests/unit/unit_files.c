/* tests/unit/unit_files.c: helpers the verify test files share (tests/unit/unit.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "verify/error.h"

char *unit_path_of(const char *dir, const char *rel)
{
	char *p = NULL;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
	return p;
}

void unit_read_all(const char *path, uint8_t **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	ck_assert_msg(f, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*ret = buf;
	*ret_len = (size_t)n;
}

int unit_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	int fd, attr;

	if (remove(p) == 0 || errno != EPERM)
		return 0;
	/* An immutable mode variant of the node store (or a link to one): clear the flag. */
	fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0 && (attr & FS_IMMUTABLE_FL)) {
			attr &= ~FS_IMMUTABLE_FL;
			(void)ioctl(fd, FS_IOC_SETFLAGS, &attr);
		}
		close(fd);
	}
	(void)remove(p);
	return 0;
}

struct unit_mc_entry *unit_mc_find(struct unit_memcache *mc, const char *name)
{
	for (size_t i = 0; i < mc->n; i++)
		if (strcmp(mc->e[i].name, name) == 0)
			return &mc->e[i];
	return NULL;
}

int unit_mc_load(void *ctx, const char *name, uint8_t **ret_buf, size_t *ret_len)
{
	struct unit_memcache *mc = ctx;
	struct unit_mc_entry *e;
	uint8_t *buf;

	if (mc->fail_load)
		return mc->fail_load;
	e = unit_mc_find(mc, name);
	if (!e)
		return -ENOENT;
	buf = malloc(e->len ? e->len : 1);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, e->buf, e->len);
	*ret_buf = buf;
	*ret_len = e->len;
	return 0;
}

void unit_mc_put(struct unit_memcache *mc, const char *name, const void *buf, size_t len)
{
	struct unit_mc_entry *e = unit_mc_find(mc, name);

	if (!e) {
		ck_assert_uint_lt(mc->n, UNIT_MC_MAX);
		e = &mc->e[mc->n++];
		snprintf(e->name, sizeof(e->name), "%s", name);
	}
	free(e->buf);
	e->buf = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(e->buf);
	memcpy(e->buf, buf, len);
	e->len = len;
}

int unit_mc_save(void *ctx, const char *name, const uint8_t *buf, size_t len)
{
	struct unit_memcache *mc = ctx;

	unit_mc_put(mc, name, buf, len);
	mc->saves++;
	return 0;
}

void unit_mc_del(struct unit_memcache *mc, const char *name)
{
	struct unit_mc_entry *e = unit_mc_find(mc, name);

	ck_assert_ptr_nonnull(e);
	free(e->buf);
	*e = mc->e[--mc->n];
	memset(&mc->e[mc->n], 0, sizeof(mc->e[0]));
}

void unit_mc_clear(struct unit_memcache *mc)
{
	for (size_t i = 0; i < mc->n; i++)
		free(mc->e[i].buf);
	memset(mc, 0, sizeof(*mc));
}

void unit_tmpdir(const char *name, char *dir, size_t cap, char *storedir, size_t storecap)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, cap, "%s/%s.XXXXXX", t ? t : "/tmp", name);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	if (storedir)
		snprintf(storedir, storecap, "%s/store", dir);
	stork_error_clear();
}

void unit_tmpdir_rm(const char *dir)
{
	nftw(dir, unit_rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

uint64_t unit_bytes_read(void)
{
	unsigned long long n = 0;
	char line[128];
	FILE *f = fopen("/proc/self/io", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "rchar: %llu", &n) == 1)
			break;
	fclose(f);
	return n;
}
