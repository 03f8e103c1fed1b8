/* tests/unit/test_fetch.c: the fetcher over a fake transport (mirror order, health, lying and
 * hostile sources, collapsing, the verify_source), and the libcurl transport over file:// and
 * loopback sockets. No network: HTTP against a real nginx is the integration tests' job. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <check.h>
#include <zstd.h>

#include "fetch/fetch.h"
#include "store/store.h"

/* ------------------------------------------------------------------------------------------ */
/* A fake transport: in-memory files behind mirrors "fake://m1" ... "fake://m4", each of which
 * can misbehave in one way. */

enum fake_mode {
	SERVE,
	REFUSE,		 /* connection refused */
	CORRUPT,	 /* one byte flipped near the end */
	TRUNCATE,	 /* half the body, then a clean end */
	EXTRA,		 /* 100 bytes more than the file; honours maxlen as the contract says */
	EXTRA_UNBOUNDED, /* likewise but ignores maxlen (a buggy transport) */
	NOENT,		 /* says it has no such file */
	STALL,		 /* -ETIMEDOUT */
};

#define FAKE_MIRRORS 4
#define FAKE_FILES   32
#define FAKE_CHUNK   1000

struct fake_file {
	char path[128];
	uint8_t *data;
	size_t len;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct fake_file files[FAKE_FILES];
	size_t nfiles;
	enum fake_mode mode[FAKE_MIRRORS];
	unsigned requests[FAKE_MIRRORS];
	unsigned total;
	/* Collapsing test: get() waits until `arrived` reaches `expect`. */
	unsigned expect, arrived;
	bool freed;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void fake_put(const char *path, const void *data, size_t len)
{
	struct fake_file *ff = &fake.files[fake.nfiles++];

	ck_assert_uint_le(fake.nfiles, FAKE_FILES);
	snprintf(ff->path, sizeof(ff->path), "%s", path);
	ff->data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(ff->data);
	memcpy(ff->data, data, len);
	ff->len = len;
}

static bool fake_handles(void *tctx, const char *url)
{
	return !strncmp(url, "fake://", 7);
}

static int fake_get(void *tctx, const char *url, uint64_t maxlen, fetch_write_fn fn, void *fnctx)
{
	const char *p = url + 7, *slash = strchr(p, '/');
	const struct fake_file *ff = NULL;
	uint8_t *body = NULL;
	size_t len, off;
	enum fake_mode mode;
	int mi, r = 0;

	ck_assert_ptr_nonnull(slash);
	ck_assert_int_eq(p[0], 'm');
	mi = p[1] - '1';
	ck_assert(mi >= 0 && mi < FAKE_MIRRORS);
	pthread_mutex_lock(&fake.lock);
	fake.requests[mi]++;
	fake.total++;
	mode = fake.mode[mi];
	while (fake.arrived < fake.expect)
		pthread_cond_wait(&fake.cond, &fake.lock);
	pthread_mutex_unlock(&fake.lock);
	if (fake.expect)
		usleep(300 * 1000); /* let the late arrivals reach the in-flight table */

	for (size_t i = 0; i < fake.nfiles; i++)
		if (!strcmp(fake.files[i].path, slash + 1))
			ff = &fake.files[i];
	if (mode == REFUSE) {
		stork_errorf("%s: connection refused", url);
		return -ECONNREFUSED;
	}
	if (mode == STALL) {
		stork_errorf("%s: stalled: below 1024 B/s for 10 s", url);
		return -ETIMEDOUT;
	}
	if (mode == NOENT || !ff) {
		stork_errorf("%s: not found", url);
		return -ENOENT;
	}
	len = ff->len;
	body = malloc(len + 100);
	ck_assert_ptr_nonnull(body);
	memcpy(body, ff->data, len);
	if (mode == CORRUPT)
		body[len > 10 ? len - 10 : 0] ^= 0x55;
	else if (mode == TRUNCATE)
		len /= 2;
	else if (mode == EXTRA || mode == EXTRA_UNBOUNDED) {
		memset(body + len, 'x', 100);
		len += 100;
	}
	for (off = 0; off < len; off += FAKE_CHUNK) {
		size_t n = len - off < FAKE_CHUNK ? len - off : FAKE_CHUNK;

		if (mode != EXTRA_UNBOUNDED && off + n > maxlen) {
			stork_errorf("%s: sent more than the limit of %llu bytes", url,
				     (unsigned long long)maxlen);
			r = STORK_ETOOBIG;
			break;
		}
		r = fn(fnctx, body + off, n);
		if (r < 0)
			break;
	}
	free(body);
	return r;
}

static void fake_free(void *tctx)
{
	fake.freed = true;
}

static const struct fetch_transport fake_transport = {
    .name = "fake",
    .handles = fake_handles,
    .get = fake_get,
    .free = fake_free,
};

/* Log lines told by the fetcher. */
static struct {
	pthread_mutex_t lock;
	char text[16384];
	size_t len;
	unsigned lines;
} logged = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void test_log(void *ctx, const char *line)
{
	if (getenv("FETCH_TEST_LOG"))
		fprintf(stderr, "log: %s\n", line);
	pthread_mutex_lock(&logged.lock);
	logged.len += (size_t)snprintf(logged.text + logged.len, sizeof(logged.text) - logged.len,
				       "%s\n", line);
	if (logged.len >= sizeof(logged.text))
		logged.len = sizeof(logged.text) - 1;
	logged.lines++;
	pthread_mutex_unlock(&logged.lock);
}

/* A fetcher with the fake transport and n fake mirrors m1..mn. */
static struct fetch *fake_fetcher(size_t n, long retry)
{
	struct fetch_opts o = {.log = test_log, .mirror_retry = retry};
	struct fetch *f = NULL;

	ck_assert_int_eq(fetch_new(&o, &f), 0);
	ck_assert_int_eq(fetch_add_transport(f, &fake_transport), 0);
	for (size_t i = 0; i < n; i++) {
		char url[32];

		snprintf(url, sizeof(url), "fake://m%zu/", i + 1);
		ck_assert_int_eq(fetch_add_mirror(f, url), 0);
	}
	return f;
}

/* ------------------------------------------------------------------------------------------ */
/* Objects and a sink that checks what it gets like the node store would. */

struct object {
	uint8_t id[VERIFY_HASH_LEN];
	uint8_t *data; /* uncompressed */
	size_t size;
	uint8_t *z;
	size_t zsize;
	char path[STORE_OBJPATH_LEN];
};

static void random_bytes(uint8_t *buf, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}

/* Random bytes do not compress: zstd stores them raw, so a flipped byte is still a valid
 * frame and shows up as a hash mismatch. */
static void make_object(struct object *o, size_t size, unsigned seed)
{
	size_t cap = ZSTD_compressBound(size);

	o->size = size;
	o->data = malloc(size ? size : 1);
	o->z = malloc(cap);
	ck_assert_ptr_nonnull(o->data);
	ck_assert_ptr_nonnull(o->z);
	random_bytes(o->data, size, seed);
	o->zsize = ZSTD_compress(o->z, cap, o->data, size, STORE_ZSTD_LEVEL);
	ck_assert(!ZSTD_isError(o->zsize));
	ck_assert_int_eq(verify_sha256(o->data, size, o->id), 0);
	store_object_path(o->id, o->path);
}

static void free_object(struct object *o)
{
	free(o->data);
	free(o->z);
}

struct tsink {
	uint8_t *buf;
	size_t cap;
	uint64_t written; /* since the last reset */
	uint64_t most;	  /* the most ever held at once */
	unsigned resets, commits;
	const struct object *o;
	int fail_write; /* returned by write when set */
};

static int tsink_write(void *ctx, const void *buf, size_t len)
{
	struct tsink *s = ctx;

	if (s->fail_write) {
		stork_errorf("test sink: no space left");
		return s->fail_write;
	}
	if (s->written + len > s->cap) {
		size_t cap = (s->written + len) * 2;

		s->buf = realloc(s->buf, cap);
		ck_assert_ptr_nonnull(s->buf);
		s->cap = cap;
	}
	memcpy(s->buf + s->written, buf, len);
	s->written += len;
	if (s->written > s->most)
		s->most = s->written;
	return 0;
}

static int tsink_reset(void *ctx)
{
	struct tsink *s = ctx;

	s->written = 0;
	s->resets++;
	return 0;
}

static int tsink_commit(void *ctx)
{
	struct tsink *s = ctx;
	uint8_t h[VERIFY_HASH_LEN];

	ck_assert_int_eq(verify_sha256(s->buf, s->written, h), 0);
	if (s->written != s->o->size || memcmp(h, s->o->id, VERIFY_HASH_LEN)) {
		stork_errorf("test sink: content does not match");
		return STORK_EBADHASH;
	}
	s->commits++;
	return 0;
}

static void tsink_init(struct tsink *s, struct fetch_sink *sink, const struct object *o)
{
	memset(s, 0, sizeof(*s));
	s->o = o;
	*sink = (struct fetch_sink){
	    .write = tsink_write,
	    .reset = tsink_reset,
	    .commit = tsink_commit,
	    .ctx = s,
	};
}

static void tsink_fini(struct tsink *s)
{
	free(s->buf);
}

static struct fetch_mirror_stats *stats_of(struct fetch *f, size_t want_n)
{
	struct fetch_mirror_stats *st = NULL;
	size_t n = 0;

	ck_assert_int_eq(fetch_stats(f, &st, &n), 0);
	ck_assert_uint_eq(n, want_n);
	return st;
}

static void setup(void)
{
	/* Tests may run in one process (CK_FORK=no): start from a clean fake. */
	for (size_t i = 0; i < fake.nfiles; i++)
		free(fake.files[i].data);
	fake.nfiles = 0;
	memset(fake.mode, 0, sizeof(fake.mode));
	memset(fake.requests, 0, sizeof(fake.requests));
	fake.total = fake.expect = fake.arrived = 0;
	fake.freed = false;
	stork_error_clear();
	logged.len = 0;
	logged.text[0] = '\0';
	logged.lines = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Mirror order and health. */

START_TEST(object_fails_over_past_a_refusing_and_a_lying_mirror)
{
	struct object a, b;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch_mirror_stats *st;
	struct fetch *f;
	char want[256];

	make_object(&a, 5000, 1);
	make_object(&b, 3000, 2);
	fake_put(a.path, a.z, a.zsize);
	fake_put(b.path, b.z, b.zsize);
	fake.mode[0] = REFUSE;
	fake.mode[1] = CORRUPT;
	fake.mode[2] = SERVE;
	f = fake_fetcher(3, 0);

	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "hello 1.0: usr/bin/hello", &sink),
			 0);
	ck_assert_uint_eq(s.commits, 1);
	ck_assert_uint_eq(s.resets, 2);
	ck_assert_mem_eq(s.buf, a.data, a.size);
	ck_assert_uint_eq(fake.requests[0], 1);
	ck_assert_uint_eq(fake.requests[1], 1);
	ck_assert_uint_eq(fake.requests[2], 1);

	/* One line per failed source, naming the mirror, the file and what happened. */
	ck_assert_uint_eq(logged.lines, 2);
	snprintf(want, sizeof(want), "fake://m2/: %s (hello 1.0: usr/bin/hello): hash mismatch",
		 a.path);
	ck_assert_msg(strstr(logged.text, want), "log lacks \"%s\":\n%s", want, logged.text);
	snprintf(want, sizeof(want),
		 "fake://m1/: %s (hello 1.0: usr/bin/hello): connection "
		 "refused",
		 a.path);
	ck_assert_msg(strstr(logged.text, want), "log lacks \"%s\":\n%s", want, logged.text);
	tsink_fini(&s);

	/* While the retry window holds, the bad mirrors are not asked again. */
	tsink_init(&s, &sink, &b);
	ck_assert_int_eq(fetch_object(f, b.id, b.size, b.zsize, "b", &sink), 0);
	ck_assert_uint_eq(s.commits, 1);
	ck_assert_uint_eq(s.resets, 0);
	ck_assert_uint_eq(fake.requests[0], 1);
	ck_assert_uint_eq(fake.requests[1], 1);
	ck_assert_uint_eq(fake.requests[2], 2);
	tsink_fini(&s);

	st = stats_of(f, 3);
	ck_assert_str_eq(st[0].url, "fake://m1/");
	ck_assert_uint_eq(st[0].requests, 1);
	ck_assert_uint_eq(st[0].failures, 1);
	ck_assert(st[0].skipped);
	ck_assert_uint_eq(st[1].requests, 1);
	ck_assert_uint_eq(st[1].failures, 1);
	ck_assert_uint_eq(st[1].bytes, a.zsize);
	ck_assert(st[1].skipped);
	ck_assert_uint_eq(st[2].requests, 2);
	ck_assert_uint_eq(st[2].failures, 0);
	ck_assert_uint_eq(st[2].bytes, a.zsize + b.zsize);
	ck_assert(!st[2].skipped);
	free(st);

	fetch_free(f);
	ck_assert(fake.freed);
	free_object(&a);
	free_object(&b);
}
END_TEST

START_TEST(skipped_mirrors_are_still_tried_when_no_other_is_left)
{
	struct object a, b;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch_mirror_stats *st;
	struct fetch *f;

	make_object(&a, 2000, 3);
	make_object(&b, 2500, 4);
	fake_put(a.path, a.z, a.zsize);
	fake_put(b.path, b.z, b.zsize);
	fake.mode[0] = CORRUPT;
	fake.mode[1] = STALL;
	f = fake_fetcher(2, -1);

	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "a", &sink), STORK_EBADHASH);
	ck_assert_uint_eq(s.commits, 0);
	ck_assert_msg(strstr(logged.text, "stalled: below 1024 B/s for 10 s"), "%s", logged.text);
	ck_assert_msg(strstr(logged.text, "skipping this mirror from now on"), "%s", logged.text);
	tsink_fini(&s);

	/* Both are skipped "forever" (-1), yet a fallback is never left untried. */
	fake.mode[0] = SERVE;
	tsink_init(&s, &sink, &b);
	ck_assert_int_eq(fetch_object(f, b.id, b.size, b.zsize, "b", &sink), 0);
	ck_assert_uint_eq(s.commits, 1);
	ck_assert_uint_eq(fake.requests[0], 2);
	ck_assert_uint_eq(fake.requests[1], 1);
	tsink_fini(&s);

	/* Its success made m1 usable again. */
	st = stats_of(f, 2);
	ck_assert(!st[0].skipped);
	ck_assert(st[1].skipped);
	free(st);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
}
END_TEST

START_TEST(failed_mirror_is_asked_first_again_after_the_retry_window)
{
	struct object a, b;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch *f;

	make_object(&a, 100, 5);
	make_object(&b, 200, 6);
	fake_put(a.path, a.z, a.zsize);
	fake_put(b.path, b.z, b.zsize);
	fake.mode[0] = REFUSE;
	f = fake_fetcher(2, 1);

	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "a", &sink), 0);
	tsink_fini(&s);
	ck_assert_uint_eq(fake.requests[0], 1);
	ck_assert_uint_eq(fake.requests[1], 1);

	fake.mode[0] = SERVE;
	sleep(3);
	tsink_init(&s, &sink, &b);
	ck_assert_int_eq(fetch_object(f, b.id, b.size, b.zsize, "b", &sink), 0);
	tsink_fini(&s);
	ck_assert_uint_eq(fake.requests[0], 2);
	ck_assert_uint_eq(fake.requests[1], 1);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
}
END_TEST

START_TEST(object_error_names_every_mirror_when_all_fail)
{
	struct object a;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch *f;
	const char *d;
	char want[256];
	int r;

	make_object(&a, 4000, 7);
	fake_put(a.path, a.z, a.zsize);
	fake.mode[0] = REFUSE;
	fake.mode[1] = CORRUPT;
	fake.mode[2] = NOENT;
	f = fake_fetcher(3, 0);

	tsink_init(&s, &sink, &a);
	r = fetch_object(f, a.id, a.size, a.zsize, "hello 1.0: usr/bin/hello", &sink);
	ck_assert_int_eq(r, STORK_EBADHASH); /* the lying mirror is the news */
	ck_assert_uint_eq(s.commits, 0);
	d = stork_error_detail();
	if (getenv("FETCH_TEST_LOG"))
		fprintf(stderr, "detail: %s\n", d);
	snprintf(want, sizeof(want), "%s (hello 1.0: usr/bin/hello): every mirror failed", a.path);
	ck_assert_msg(strstr(d, want), "%s", d);
	ck_assert_msg(strstr(d, "fake://m1/: connection refused"), "%s", d);
	ck_assert_msg(strstr(d, "fake://m2/: hash mismatch"), "%s", d);
	ck_assert_msg(strstr(d, "fake://m3/: not found"), "%s", d);
	/* A mirror lacking a signed object is stale: that is its failure too. */
	ck_assert_uint_eq(logged.lines, 3);
	tsink_fini(&s);

	/* Every mirror lacking it: -ENOENT. */
	fake.mode[0] = fake.mode[1] = NOENT;
	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "x", &sink), -ENOENT);
	ck_assert_msg(strstr(stork_error_detail(), "not found on any mirror"), "%s",
		      stork_error_detail());
	tsink_fini(&s);
	fetch_free(f);
	free_object(&a);
}
END_TEST

START_TEST(object_without_mirrors_is_enoent)
{
	struct object a;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch *f = fake_fetcher(0, 0);

	make_object(&a, 10, 8);
	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "x", &sink), -ENOENT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "no mirror"));
	tsink_fini(&s);
	fetch_free(f);
	free_object(&a);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Hostile sources. */

START_TEST(object_with_extra_bytes_is_cut_at_zsize)
{
	struct object a;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch *f;
	char want[128];

	make_object(&a, 20000, 9);
	fake_put(a.path, a.z, a.zsize);
	fake.mode[0] = EXTRA;
	fake.mode[1] = EXTRA_UNBOUNDED;
	f = fake_fetcher(2, 0);

	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "big", &sink), STORK_ETOOBIG);
	ck_assert_uint_eq(s.commits, 0);
	ck_assert_uint_le(s.most, a.size);
	snprintf(want, sizeof(want), "sent more than the signed %zu bytes", a.zsize);
	ck_assert_msg(strstr(logged.text, want), "%s", logged.text);
	ck_assert_uint_eq(logged.lines, 2);
	tsink_fini(&s);

	/* A good mirror behind them still serves it. */
	fetch_free(f);
	fake.mode[0] = EXTRA_UNBOUNDED;
	fake.mode[1] = SERVE;
	f = fake_fetcher(2, 0);
	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "big", &sink), 0);
	ck_assert_uint_eq(s.commits, 1);
	ck_assert_uint_le(s.most, a.size);
	tsink_fini(&s);
	fetch_free(f);
	free_object(&a);
}
END_TEST

START_TEST(object_zstd_bomb_is_refused_at_its_signed_size)
{
	struct object a;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch *f;
	size_t head = 20000, big = head + (8 << 20), cap = ZSTD_compressBound(big);
	uint8_t *bomb = calloc(1, big), *z = malloc(cap);
	size_t zlen;

	ck_assert_ptr_nonnull(bomb);
	ck_assert_ptr_nonnull(z);
	random_bytes(bomb, head, 18);
	zlen = ZSTD_compress(z, cap, bomb, big, STORE_ZSTD_LEVEL);
	ck_assert(!ZSTD_isError(zlen));
	ck_assert_uint_lt(zlen, head + 4096);

	/* Signed as its first 20000 bytes; served as those plus 8 MiB of zeros in a few more
	 * compressed bytes, over many chunks. */
	memset(&a, 0, sizeof(a));
	a.size = head;
	a.zsize = zlen;
	a.data = bomb;
	ck_assert_int_eq(verify_sha256(bomb, head, a.id), 0);
	store_object_path(a.id, a.path);
	fake_put(a.path, z, zlen);
	f = fake_fetcher(1, 0);

	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "bomb", &sink), STORK_EBADLEN);
	ck_assert_uint_eq(s.commits, 0);
	ck_assert_uint_le(s.most, a.size);
	ck_assert_msg(strstr(logged.text, "unpacks to more than the 20000 bytes"), "%s",
		      logged.text);
	ck_assert_msg(!strstr(logged.text, "truncated"), "%s", logged.text);
	tsink_fini(&s);
	fetch_free(f);
	free(bomb);
	free(z);
}
END_TEST

START_TEST(object_truncated_by_a_mirror_is_refused_and_named)
{
	struct object a;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch *f;

	make_object(&a, 10000, 10);
	fake_put(a.path, a.z, a.zsize);
	fake.mode[0] = TRUNCATE;
	f = fake_fetcher(2, 0);

	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "t", &sink), 0);
	ck_assert_uint_eq(s.commits, 1);
	ck_assert_msg(strstr(logged.text, "fake://m1/") && strstr(logged.text, "truncated"), "%s",
		      logged.text);
	tsink_fini(&s);
	fetch_free(f);
	free_object(&a);
}
END_TEST

START_TEST(sink_failure_stops_without_blaming_the_mirror)
{
	struct object a;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch_mirror_stats *st;
	struct fetch *f;

	make_object(&a, 3000, 11);
	fake_put(a.path, a.z, a.zsize);
	f = fake_fetcher(2, 0);

	tsink_init(&s, &sink, &a);
	s.fail_write = -ENOSPC;
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "a", &sink), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "no space left"));
	ck_assert_uint_eq(fake.requests[0], 1);
	ck_assert_uint_eq(fake.requests[1], 0);
	ck_assert_uint_eq(logged.lines, 0);
	st = stats_of(f, 2);
	ck_assert_uint_eq(st[0].failures, 0);
	ck_assert(!st[0].skipped);
	free(st);
	tsink_fini(&s);
	fetch_free(f);
	free_object(&a);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Collapsing. */

#define NTHREADS 16

struct racer {
	struct fetch *f;
	const struct object *o;
	struct tsink s;
	int result;
	char detail[256];
};

static void *race(void *arg)
{
	struct racer *c = arg;
	struct fetch_sink sink;

	tsink_init(&c->s, &sink, c->o);
	pthread_mutex_lock(&fake.lock);
	fake.arrived++;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
	c->result = fetch_object(c->f, c->o->id, c->o->size, c->o->zsize, "shared", &sink);
	snprintf(c->detail, sizeof(c->detail), "%s", stork_error_detail());
	return NULL;
}

static void run_racers(struct fetch *f, const struct object *o, struct racer *c)
{
	pthread_t th[NTHREADS];

	fake.expect = NTHREADS;
	for (int i = 0; i < NTHREADS; i++) {
		c[i] = (struct racer){.f = f, .o = o};
		ck_assert_int_eq(pthread_create(&th[i], NULL, race, &c[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
}

START_TEST(concurrent_fetches_of_one_object_share_one_transfer)
{
	struct racer c[NTHREADS];
	struct object a;
	struct fetch *f;
	unsigned zeros = 0, ones = 0, commits = 0;

	make_object(&a, 50000, 12);
	fake_put(a.path, a.z, a.zsize);
	f = fake_fetcher(1, 0);
	run_racers(f, &a, c);
	for (int i = 0; i < NTHREADS; i++) {
		zeros += c[i].result == 0;
		ones += c[i].result == 1;
		commits += c[i].s.commits;
		if (c[i].result == 1)
			ck_assert_uint_eq(c[i].s.most, 0); /* waiters' sinks are untouched */
		tsink_fini(&c[i].s);
	}
	ck_assert_uint_eq(fake.total, 1);
	ck_assert_uint_eq(zeros, 1);
	ck_assert_uint_eq(ones, NTHREADS - 1);
	ck_assert_uint_eq(commits, 1);
	fetch_free(f);
	free_object(&a);
}
END_TEST

START_TEST(concurrent_waiters_get_the_transfers_error)
{
	struct racer c[NTHREADS];
	struct object a;
	struct fetch *f;

	make_object(&a, 5000, 13);
	fake_put(a.path, a.z, a.zsize);
	fake.mode[0] = CORRUPT;
	f = fake_fetcher(1, 0);
	run_racers(f, &a, c);
	for (int i = 0; i < NTHREADS; i++) {
		ck_assert_int_eq(c[i].result, STORK_EBADHASH);
		ck_assert_msg(strstr(c[i].detail, "fake://m1/: hash mismatch"), "%s", c[i].detail);
		ck_assert_uint_eq(c[i].s.commits, 0);
		tsink_fini(&c[i].s);
	}
	ck_assert_uint_eq(fake.total, 1);
	fetch_free(f);
	free_object(&a);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The verify_source over the mirrors. */

START_TEST(source_missing_metadata_is_enoent_and_marks_no_mirror)
{
	struct verify_source src;
	struct fetch_mirror_stats *st;
	struct fetch *f = fake_fetcher(2, 0);
	uint8_t *buf = NULL;
	size_t len;

	fetch_as_source(f, &src);
	ck_assert_int_eq(src.get(src.ctx, "metadata/2.root.json", 1000, &buf, &len), -ENOENT);
	ck_assert_uint_eq(fake.requests[0], 1);
	ck_assert_uint_eq(fake.requests[1], 1);
	ck_assert_uint_eq(logged.lines, 0);
	st = stats_of(f, 2);
	ck_assert_uint_eq(st[0].failures, 0);
	ck_assert_uint_eq(st[1].failures, 0);
	ck_assert(!st[0].skipped && !st[1].skipped);
	free(st);

	/* One mirror unreachable, the other answering "no such file": the answer wins. */
	fake.mode[0] = REFUSE;
	ck_assert_int_eq(src.get(src.ctx, "metadata/2.root.json", 1000, &buf, &len), -ENOENT);
	ck_assert_uint_eq(logged.lines, 1);
	st = stats_of(f, 2);
	ck_assert(st[0].skipped && !st[1].skipped);
	free(st);
	fetch_free(f);
}
END_TEST

START_TEST(source_get_fails_over_and_enforces_maxlen)
{
	static const char ts[] = "{\"signed\":{\"_type\":\"timestamp\"},\"signatures\":[]}";
	struct verify_source src;
	struct fetch *f;
	uint8_t *buf = NULL;
	size_t len = 0;

	fake_put("metadata/timestamp.json", ts, strlen(ts));
	fake.mode[0] = REFUSE;
	f = fake_fetcher(2, 0);
	fetch_as_source(f, &src);
	ck_assert_str_eq(src.describe(src.ctx), "fake://m1/, fake://m2/");

	ck_assert_int_eq(src.get(src.ctx, "metadata/timestamp.json", strlen(ts), &buf, &len), 0);
	ck_assert_uint_eq(len, strlen(ts));
	ck_assert_str_eq((char *)buf, ts); /* NUL-terminated */
	free(buf);

	ck_assert_int_eq(src.get(src.ctx, "metadata/timestamp.json", strlen(ts) - 1, &buf, &len),
			 STORK_ETOOBIG);
	ck_assert_int_eq(src.get(src.ctx, "metadata/timestamp.json", 0, &buf, &len), STORK_ETOOBIG);

	/* Paths that would leave the repository never reach a transport. */
	fake.total = 0;
	ck_assert_int_eq(src.get(src.ctx, "metadata/../../etc/passwd", 100, &buf, &len), -EINVAL);
	ck_assert_int_eq(src.get(src.ctx, "/etc/passwd", 100, &buf, &len), -EINVAL);
	ck_assert_uint_eq(fake.total, 0);
	fetch_free(f);
}
END_TEST

struct collect {
	uint8_t buf[8192];
	size_t len;
	int fail;
};

static int collect(void *ctx, const void *buf, size_t len)
{
	struct collect *c = ctx;

	if (c->fail) {
		stork_errorf("consumer: refused");
		return c->fail;
	}
	ck_assert_uint_le(c->len + len, sizeof(c->buf));
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	return 0;
}

START_TEST(source_stream_fails_over_until_bytes_reach_the_consumer)
{
	struct verify_source src;
	struct collect *c = calloc(1, sizeof(*c));
	struct fetch_mirror_stats *st;
	struct fetch *f;
	uint8_t data[5000];

	random_bytes(data, sizeof(data), 14);
	fake_put("targets/hello/x.1.json", data, sizeof(data));
	fake.mode[0] = REFUSE;
	f = fake_fetcher(2, 0);
	fetch_as_source(f, &src);
	ck_assert_int_eq(src.stream(src.ctx, "targets/hello/x.1.json", sizeof(data), collect, c),
			 0);
	ck_assert_uint_eq(c->len, sizeof(data));
	ck_assert_mem_eq(c->buf, data, sizeof(data));

	/* A consumer's error is returned as is and blames no mirror. */
	c->len = 0;
	c->fail = -EPIPE;
	ck_assert_int_eq(src.stream(src.ctx, "targets/hello/x.1.json", sizeof(data), collect, c),
			 -EPIPE);
	ck_assert_str_eq(stork_error_detail(), "consumer: refused");
	st = stats_of(f, 2);
	ck_assert_uint_eq(st[1].failures, 0);
	free(st);

	/* Once bytes reached the consumer, a failing source cannot be replaced: its failure is
	 * returned (a consumer cannot un-see bytes). */
	c->fail = 0;
	c->len = 0;
	fetch_free(f);
	f = fake_fetcher(2, 0);
	fetch_as_source(f, &src);
	fake.mode[0] = EXTRA;
	fake.requests[1] = 0;
	ck_assert_int_eq(src.stream(src.ctx, "targets/hello/x.1.json", sizeof(data), collect, c),
			 STORK_ETOOBIG);
	ck_assert_uint_eq(fake.requests[1], 0);
	ck_assert_uint_le(c->len, sizeof(data));
	ck_assert_msg(strstr(stork_error_detail(), "fake://m1/: sent more than the allowed"), "%s",
		      stork_error_detail());
	fetch_free(f);
	free(c);
}
END_TEST

START_TEST(add_mirror_refuses_urls_no_transport_handles)
{
	struct fetch *f = NULL;

	ck_assert_int_eq(fetch_new(NULL, &f), 0);
	ck_assert_int_eq(fetch_add_mirror(f, "gopher://example.org/repo"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "gopher://example.org/repo"));
	ck_assert_int_eq(fetch_add_mirror(f, "fake://m1"), -EINVAL);
	ck_assert_int_eq(fetch_add_mirror(f, "https://example.org/repo/"), 0);
	ck_assert_int_eq(fetch_add_mirror(f, "/srv/repo"), 0);
	fetch_free(f);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The libcurl transport, without network: file:// and loopback sockets. */

static char tmpdir[256];

static void curl_setup(void)
{
	const char *t = getenv("TMPDIR");

	setup();
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_fetch.XXXXXX", t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void curl_teardown(void)
{
	nftw(tmpdir, rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *rel, const void *data, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	for (char *p = strchr(path + strlen(tmpdir) + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

struct grow {
	uint8_t *buf;
	size_t len;
	int fail;
};

static int grow(void *ctx, const void *buf, size_t len)
{
	struct grow *g = ctx;

	if (g->fail) {
		stork_errorf("consumer: cannot take it");
		return g->fail;
	}
	g->buf = realloc(g->buf, g->len + len + 1);
	ck_assert_ptr_nonnull(g->buf);
	memcpy(g->buf + g->len, buf, len);
	g->len += len;
	return 0;
}

START_TEST(curl_reads_file_urls_and_enforces_limits)
{
	struct fetch_transport t;
	struct grow g = {0};
	size_t size = 300000;
	uint8_t *data = malloc(size);
	char url[600];

	random_bytes(data, size, 15);
	write_file("repo/a file", data, size);
	write_file("repo/empty", "", 0);
	ck_assert_int_eq(fetch_curl_transport_new(NULL, &t), 0);
	ck_assert(t.handles(t.tctx, "file:///x"));
	ck_assert(t.handles(t.tctx, "HTTPS://x"));
	ck_assert(!t.handles(t.tctx, "ftp://x"));

	snprintf(url, sizeof(url), "file://%s/repo/a%%20file", tmpdir);
	ck_assert_int_eq(t.get(t.tctx, url, size, grow, &g), 0);
	ck_assert_uint_eq(g.len, size);
	ck_assert_mem_eq(g.buf, data, size);

	/* Longer than allowed: refused, and the consumer never sees more than the limit. */
	g.len = 0;
	ck_assert_int_eq(t.get(t.tctx, url, size - 1, grow, &g), STORK_ETOOBIG);
	ck_assert_uint_le(g.len, size - 1);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), url));
	g.len = 0;
	ck_assert_int_eq(t.get(t.tctx, url, 0, grow, &g), STORK_ETOOBIG);
	ck_assert_uint_eq(g.len, 0);

	/* The consumer's error, with its detail, from the I/O thread. */
	g.fail = -ENOSPC;
	ck_assert_int_eq(t.get(t.tctx, url, size, grow, &g), -ENOSPC);
	ck_assert_str_eq(stork_error_detail(), "consumer: cannot take it");
	g.fail = 0;

	snprintf(url, sizeof(url), "file://%s/repo/missing", tmpdir);
	ck_assert_int_eq(t.get(t.tctx, url, size, grow, &g), -ENOENT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "missing"));

	g.len = 0;
	snprintf(url, sizeof(url), "file://%s/repo/empty", tmpdir);
	ck_assert_int_eq(t.get(t.tctx, url, 10, grow, &g), 0);
	ck_assert_uint_eq(g.len, 0);

	t.free(t.tctx);
	free(g.buf);
	free(data);
}
END_TEST

struct getter {
	struct fetch_transport *t;
	const char *url;
	const uint8_t *want;
	size_t size;
	int result;
	struct grow g;
};

static void *getter_main(void *arg)
{
	struct getter *x = arg;

	x->result = x->t->get(x->t->tctx, x->url, x->size, grow, &x->g);
	return NULL;
}

START_TEST(curl_serves_many_threads_at_once)
{
	struct fetch_transport t;
	struct getter x[8];
	pthread_t th[8];
	size_t size = 100000;
	uint8_t *data = malloc(size);
	char url[600];

	random_bytes(data, size, 16);
	write_file("f", data, size);
	snprintf(url, sizeof(url), "file://%s/f", tmpdir);
	ck_assert_int_eq(fetch_curl_transport_new(NULL, &t), 0);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 8; i++) {
			x[i] = (struct getter){.t = &t, .url = url, .size = size};
			ck_assert_int_eq(pthread_create(&th[i], NULL, getter_main, &x[i]), 0);
		}
		for (int i = 0; i < 8; i++) {
			pthread_join(th[i], NULL);
			ck_assert_int_eq(x[i].result, 0);
			ck_assert_uint_eq(x[i].g.len, size);
			ck_assert_mem_eq(x[i].g.buf, data, size);
			free(x[i].g.buf);
		}
	}
	t.free(t.tctx);
	free(data);
}
END_TEST

/* A loopback listener that accepts connections (the kernel does, from its backlog) and never
 * answers. */
static int silent_listener(int *ret_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

START_TEST(curl_stalled_server_fails_with_etimedout_within_the_bound)
{
	struct fetch_opts o = {.low_speed_limit = 1024, .low_speed_time = 1, .connect_timeout = 2};
	struct fetch_transport t;
	struct grow g = {0};
	char url[128];
	int port, fd = silent_listener(&port);
	time_t t0;

	ck_assert_int_eq(fetch_curl_transport_new(&o, &t), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/objects/ab/cd", port);
	t0 = time(NULL);
	ck_assert_int_eq(t.get(t.tctx, url, 100, grow, &g), -ETIMEDOUT);
	ck_assert_int_le(time(NULL) - t0, 10);
	ck_assert_msg(strstr(stork_error_detail(), "stalled: below 1024 B/s for 1 s"), "%s",
		      stork_error_detail());
	t.free(t.tctx);
	close(fd);
}
END_TEST

START_TEST(curl_refused_connection_is_econnrefused)
{
	struct fetch_transport t;
	struct grow g = {0};
	char url[128];
	int port, fd = silent_listener(&port);

	close(fd); /* nothing listens there any more */
	ck_assert_int_eq(fetch_curl_transport_new(NULL, &t), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metadata/timestamp.json", port);
	ck_assert_int_eq(t.get(t.tctx, url, 100, grow, &g), -ECONNREFUSED);
	ck_assert_msg(strstr(stork_error_detail(), "connection refused"), "%s",
		      stork_error_detail());
	t.free(t.tctx);
}
END_TEST

struct canceller {
	struct fetch_transport *t;
};

static void *cancel_main(void *arg)
{
	struct canceller *c = arg;

	usleep(300 * 1000);
	c->t->free(c->t->tctx);
	return NULL;
}

START_TEST(curl_free_cancels_pending_requests)
{
	struct fetch_transport t;
	struct canceller c = {.t = &t};
	struct grow g = {0};
	pthread_t th;
	char url[128];
	int port, fd = silent_listener(&port);

	ck_assert_int_eq(fetch_curl_transport_new(NULL, &t), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/objects/ab/cd", port);
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_main, &c), 0);
	ck_assert_int_eq(t.get(t.tctx, url, 100, grow, &g), -ECANCELED);
	pthread_join(th, NULL);
	close(fd);
}
END_TEST

struct fetch_canceller {
	struct fetch *f;
};

static void *fetch_cancel_main(void *arg)
{
	struct fetch_canceller *c = arg;

	usleep(300 * 1000);
	fetch_cancel(c->f);
	return NULL;
}

START_TEST(fetch_cancel_ends_a_stalled_object_fetch_and_later_ones)
{
	struct fetch_opts o = {.low_speed_limit = 1024, .low_speed_time = 60};
	struct fetch_canceller c;
	struct fetch_mirror_stats *st;
	struct object obj;
	struct tsink ts;
	struct fetch_sink sink;
	struct fetch *f;
	pthread_t th;
	char url[128];
	int port, fd = silent_listener(&port);
	time_t t0;

	make_object(&obj, 1000, 7);
	ck_assert_int_eq(fetch_new(&o, &f), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	ck_assert_int_eq(fetch_add_mirror(f, url), 0);
	c.f = f;
	tsink_init(&ts, &sink, &obj);
	ck_assert_int_eq(pthread_create(&th, NULL, fetch_cancel_main, &c), 0);
	t0 = time(NULL);
	/* The mirror accepts and never answers: only the cancel can end this before 60 s. */
	ck_assert_int_eq(fetch_object(f, obj.id, obj.size, obj.zsize, "a file", &sink), -ECANCELED);
	ck_assert_int_le(time(NULL) - t0, 5);
	pthread_join(th, NULL);
	ck_assert_int_eq(ts.commits, 0);
	/* Later fetches fail at once, and the mirror is not blamed. */
	ck_assert_int_eq(fetch_object(f, obj.id, obj.size, obj.zsize, "a file", &sink), -ECANCELED);
	st = stats_of(f, 1);
	ck_assert_uint_eq(st[0].failures, 0);
	free(st);
	tsink_fini(&ts);
	fetch_free(f);
	free_object(&obj);
	close(fd);
}
END_TEST

START_TEST(fetcher_reads_a_directory_mirror_through_curl)
{
	struct object a;
	struct tsink s;
	struct fetch_sink sink;
	struct verify_source src;
	struct fetch_opts o = {.log = test_log};
	struct fetch *f;
	char dir[400];
	uint8_t *buf;
	size_t len;

	make_object(&a, 70000, 17);
	snprintf(dir, sizeof(dir), "repo dir/%s", a.path);
	write_file(dir, a.z, a.zsize);
	write_file("repo dir/metadata/1.root.json", "{}", 2);
	snprintf(dir, sizeof(dir), "%s/repo dir/", tmpdir);

	ck_assert_int_eq(fetch_new(&o, &f), 0);
	ck_assert_int_eq(fetch_add_mirror(f, dir), 0);
	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "a", &sink), 0);
	ck_assert_uint_eq(s.commits, 1);
	tsink_fini(&s);

	fetch_as_source(f, &src);
	ck_assert_int_eq(src.get(src.ctx, "metadata/1.root.json", 100, &buf, &len), 0);
	ck_assert_uint_eq(len, 2);
	ck_assert_mem_eq(buf, "{}", 2);
	free(buf);
	ck_assert_int_eq(src.get(src.ctx, "metadata/2.root.json", 100, &buf, &len), -ENOENT);
	ck_assert_uint_eq(logged.lines, 0);
	fetch_free(f);
	free_object(&a);
}
END_TEST

START_TEST(source_init_opens_directories_and_urls)
{
	struct verify_source src;
	uint8_t *buf;
	size_t len;
	char url[400];
	int port, fd = silent_listener(&port);

	write_file("repo/metadata/1.root.json", "{\"a\":1}", 7);
	snprintf(url, sizeof(url), "file://%s/repo", tmpdir);
	ck_assert_int_eq(fetch_source_init(&src, url, NULL), 0);
	ck_assert_int_eq(src.get(src.ctx, "metadata/1.root.json", 100, &buf, &len), 0);
	ck_assert_uint_eq(len, 7);
	free(buf);
	fetch_source_fini(&src);

	snprintf(url, sizeof(url), "%s/nowhere", tmpdir);
	ck_assert_int_eq(fetch_source_init(&src, url, NULL), -ENOENT);
	ck_assert_int_eq(fetch_source_init(&src, "ftp://x/", NULL), -EINVAL);

	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/repo", port);
	ck_assert_int_eq(fetch_source_init(&src, url, NULL), 0);
	ck_assert_int_eq(src.get(src.ctx, "metadata/1.root.json", 100, &buf, &len), -ECONNREFUSED);
	ck_assert_msg(strstr(stork_error_detail(), "connection refused"), "%s",
		      stork_error_detail());
	fetch_source_fini(&src);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */

static Suite *fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc;

	tc = tcase_create("mirrors");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, object_fails_over_past_a_refusing_and_a_lying_mirror);
	tcase_add_test(tc, skipped_mirrors_are_still_tried_when_no_other_is_left);
	tcase_add_test(tc, failed_mirror_is_asked_first_again_after_the_retry_window);
	tcase_add_test(tc, object_error_names_every_mirror_when_all_fail);
	tcase_add_test(tc, object_without_mirrors_is_enoent);
	tcase_add_test(tc, add_mirror_refuses_urls_no_transport_handles);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, object_with_extra_bytes_is_cut_at_zsize);
	tcase_add_test(tc, object_zstd_bomb_is_refused_at_its_signed_size);
	tcase_add_test(tc, object_truncated_by_a_mirror_is_refused_and_named);
	tcase_add_test(tc, sink_failure_stops_without_blaming_the_mirror);
	suite_add_tcase(s, tc);

	tc = tcase_create("collapsing");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, concurrent_fetches_of_one_object_share_one_transfer);
	tcase_add_test(tc, concurrent_waiters_get_the_transfers_error);
	suite_add_tcase(s, tc);

	tc = tcase_create("source");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, source_missing_metadata_is_enoent_and_marks_no_mirror);
	tcase_add_test(tc, source_get_fails_over_and_enforces_maxlen);
	tcase_add_test(tc, source_stream_fails_over_until_bytes_reach_the_consumer);
	suite_add_tcase(s, tc);

	tc = tcase_create("curl");
	tcase_add_checked_fixture(tc, curl_setup, curl_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, curl_reads_file_urls_and_enforces_limits);
	tcase_add_test(tc, curl_serves_many_threads_at_once);
	tcase_add_test(tc, curl_stalled_server_fails_with_etimedout_within_the_bound);
	tcase_add_test(tc, curl_refused_connection_is_econnrefused);
	tcase_add_test(tc, curl_free_cancels_pending_requests);
	tcase_add_test(tc, fetch_cancel_ends_a_stalled_object_fetch_and_later_ones);
	tcase_add_test(tc, fetcher_reads_a_directory_mirror_through_curl);
	tcase_add_test(tc, source_init_opens_directories_and_urls);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fetch_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
