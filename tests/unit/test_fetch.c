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
#include <sys/wait.h>
#include <dirent.h>
#include <signal.h>

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
	HOSTDOWN,	 /* a proxy relaying the origin's 5xx: -EHOSTDOWN */
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
	unsigned direct[FAKE_MIRRORS];	    /* requests to mirror i without a proxy */
	enum fake_mode pmode[FAKE_MIRRORS]; /* proxies http://p1:3128 ... */
	unsigned prequests[FAKE_MIRRORS];
	/* Peers fake://p1/ ...: their own files, uncompressed like a node store's. */
	struct fake_file peer_files[FAKE_FILES];
	size_t npeer_files;
	enum fake_mode peer_mode[FAKE_MIRRORS];
	unsigned peer_requests[FAKE_MIRRORS];
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

static void fake_put_peer(const char *path, const void *data, size_t len)
{
	struct fake_file *ff = &fake.peer_files[fake.npeer_files++];

	ck_assert_uint_le(fake.npeer_files, FAKE_FILES);
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

/* Serve url; pmode is a proxy's misbehaviour on the way (SERVE = none). */
static int fake_serve(const char *url, enum fake_mode pmode, bool via, uint64_t maxlen,
		      fetch_write_fn fn, void *fnctx)
{
	const char *p = url + 7, *slash = strchr(p, '/');
	const struct fake_file *ff = NULL, *files;
	uint8_t *body = NULL;
	size_t len, off, nfiles;
	enum fake_mode mode;
	bool peer;
	int mi, r = 0;

	ck_assert_ptr_nonnull(slash);
	ck_assert(p[0] == 'm' || p[0] == 'p');
	peer = p[0] == 'p';
	mi = p[1] - '1';
	ck_assert(mi >= 0 && mi < FAKE_MIRRORS);
	pthread_mutex_lock(&fake.lock);
	if (peer) {
		fake.peer_requests[mi]++;
		mode = fake.peer_mode[mi];
	} else {
		fake.requests[mi]++;
		if (!via)
			fake.direct[mi]++;
		mode = fake.mode[mi];
	}
	fake.total++;
	while (fake.arrived < fake.expect)
		pthread_cond_wait(&fake.cond, &fake.lock);
	pthread_mutex_unlock(&fake.lock);
	if (fake.expect)
		usleep(300 * 1000); /* let the late arrivals reach the in-flight table */
	if (pmode != SERVE)
		mode = pmode;

	files = peer ? fake.peer_files : fake.files;
	nfiles = peer ? fake.npeer_files : fake.nfiles;
	for (size_t i = 0; i < nfiles; i++)
		if (!strcmp(files[i].path, slash + 1))
			ff = &files[i];
	if (mode == REFUSE) {
		stork_errorf("%s: connection refused", url);
		return -ECONNREFUSED;
	}
	if (mode == STALL) {
		stork_errorf("%s: stalled: below 1024 B/s for 10 s", url);
		return -ETIMEDOUT;
	}
	if (mode == HOSTDOWN) {
		stork_errorf("%s: HTTP 502 through the proxy", url);
		return -EHOSTDOWN;
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

static int fake_get(void *tctx, const char *url, uint64_t maxlen, fetch_write_fn fn, void *fnctx)
{
	return fake_serve(url, SERVE, false, maxlen, fn, fnctx);
}

/* Proxies "http://pN:3128": counted, and REFUSE, CORRUPT, STALL or HOSTDOWN on the way. */
static int fake_get_via(void *tctx, const char *url, const char *proxy, uint64_t maxlen,
			fetch_write_fn fn, void *fnctx)
{
	int pi;

	ck_assert_msg(!strncmp(proxy, "http://p", 8), "%s", proxy);
	pi = proxy[8] - '1';
	ck_assert(pi >= 0 && pi < FAKE_MIRRORS);
	pthread_mutex_lock(&fake.lock);
	fake.prequests[pi]++;
	pthread_mutex_unlock(&fake.lock);
	if (fake.pmode[pi] == REFUSE) {
		stork_errorf("%s: connection refused", url);
		return -ECONNREFUSED;
	}
	return fake_serve(url, fake.pmode[pi], true, maxlen, fn, fnctx);
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
    .get_via = fake_get_via,
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

/* A fetcher with the fake transport and n fake mirrors m1..mn, proxies and peers. */
static struct fetch *chain_fetcher(size_t n, const struct fetch_opts *chain)
{
	struct fetch_opts o = *chain;
	struct fetch *f = NULL;

	o.log = test_log;
	ck_assert_int_eq(fetch_new(&o, &f), 0);
	ck_assert_int_eq(fetch_add_transport(f, &fake_transport), 0);
	for (size_t i = 0; i < n; i++) {
		char url[32];

		snprintf(url, sizeof(url), "fake://m%zu/", i + 1);
		ck_assert_int_eq(fetch_add_mirror(f, url), 0);
	}
	return f;
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
	int fail_write;		 /* returned by write when set */
	const char *fail_detail; /* its detail, when set */
};

static int tsink_write(void *ctx, const void *buf, size_t len)
{
	struct tsink *s = ctx;

	if (s->fail_write) {
		stork_errorf("%s", s->fail_detail ? s->fail_detail : "test sink: no space left");
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
	for (size_t i = 0; i < fake.npeer_files; i++)
		free(fake.peer_files[i].data);
	fake.npeer_files = 0;
	memset(fake.mode, 0, sizeof(fake.mode));
	memset(fake.requests, 0, sizeof(fake.requests));
	memset(fake.direct, 0, sizeof(fake.direct));
	memset(fake.pmode, 0, sizeof(fake.pmode));
	memset(fake.prequests, 0, sizeof(fake.prequests));
	memset(fake.peer_mode, 0, sizeof(fake.peer_mode));
	memset(fake.peer_requests, 0, sizeof(fake.peer_requests));
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
	const char *fail_detail; /* when set: the owner's sink fails with this detail */
	int result;
	char detail[8192];
};

static void *race(void *arg)
{
	struct racer *c = arg;
	struct fetch_sink sink;

	tsink_init(&c->s, &sink, c->o);
	if (c->fail_detail) {
		c->s.fail_write = -ENOSPC;
		c->s.fail_detail = c->fail_detail;
	}
	pthread_mutex_lock(&fake.lock);
	fake.arrived++;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
	c->result = fetch_object(c->f, c->o->id, c->o->size, c->o->zsize, "shared", &sink);
	snprintf(c->detail, sizeof(c->detail), "%s", stork_error_detail());
	return NULL;
}

static void run_racers(struct fetch *f, const struct object *o, const char *fail_detail,
		       struct racer *c)
{
	pthread_t th[NTHREADS];

	fake.expect = NTHREADS;
	for (int i = 0; i < NTHREADS; i++) {
		c[i] = (struct racer){.f = f, .o = o, .fail_detail = fail_detail};
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
	run_racers(f, &a, NULL, c);
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
	run_racers(f, &a, NULL, c);
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

/* A detail longer than 1 KiB (a long path, many mirrors' failures) reaches the waiters whole,
 * as it reaches the caller whose transfer failed. */
START_TEST(concurrent_waiters_get_the_whole_detail)
{
	struct racer c[NTHREADS];
	struct object a;
	struct fetch *f;
	char detail[4096];

	memset(detail, 'x', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	memcpy(detail + sizeof(detail) - 12, ": the end", 10);
	make_object(&a, 5000, 14);
	fake_put(a.path, a.z, a.zsize);
	f = fake_fetcher(1, 0);
	run_racers(f, &a, detail, c);
	for (int i = 0; i < NTHREADS; i++) {
		size_t len = strlen(c[i].detail);

		ck_assert_int_eq(c[i].result, -ENOSPC);
		ck_assert_msg(len > sizeof(detail) && !strcmp(c[i].detail + len - 9, ": the end"),
			      "racer %d: %zu bytes of detail, ending \"%s\"", i, len,
			      c[i].detail + (len > 20 ? len - 20 : 0));
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
	/* The same check as verify's directory source (verify_check_relpath). */
	ck_assert_int_eq(src.get(src.ctx, "metadata/./timestamp.json", 100, &buf, &len), -EINVAL);
	ck_assert_int_eq(src.get(src.ctx, "metadata\\..\\x.json", 100, &buf, &len), -EINVAL);
	ck_assert_str_eq(stork_error_detail(),
			 "\"metadata\\\\..\\\\x.json\": backslash in the path");
	ck_assert_int_eq(src.get(src.ctx, "metadata/\x1b[2Jx.json", 100, &buf, &len), -EINVAL);
	ck_assert_str_eq(stork_error_detail(), "\"metadata/\\x1b[2Jx.json\": control character");
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

START_TEST(url_shown_hides_every_userinfo)
{
	char buf[256], tiny[12];
	char *dup;

	ck_assert_str_eq(fetch_url_shown("http://alice:pw@m1:8080/repo/x", buf, sizeof(buf)),
			 "http://***@m1:8080/repo/x");
	ck_assert_str_eq(fetch_url_shown("https://token@m1", buf, sizeof(buf)), "https://***@m1");
	ck_assert_str_eq(fetch_url_shown("http://m1/a@b", buf, sizeof(buf)), "http://m1/a@b");
	ck_assert_str_eq(fetch_url_shown("/srv/repo", buf, sizeof(buf)), "/srv/repo");
	ck_assert_str_eq(fetch_url_shown("http://a:p@ss@m1/", buf, sizeof(buf)), "http://***@m1/");
	ck_assert_str_eq(fetch_url_shown("proxies \"http://u:pw@p1:3128|http://v:pw@p2;DIRECT\": "
					 "bad; peer http://w:pw@n2/",
					 buf, sizeof(buf)),
			 "proxies \"http://***@p1:3128|http://***@p2;DIRECT\": bad; peer "
			 "http://***@n2/");
	/* Cut, never past the buffer, and never a password half shown. */
	ck_assert_str_eq(fetch_url_shown("http://alice:pw@m1/", tiny, sizeof(tiny)), "http://***@");
	dup = fetch_url_shown_dup("http://@m1/");
	ck_assert_str_eq(dup, "http://***@m1/");
	free(dup);
}
END_TEST

START_TEST(passwords_in_sources_are_not_in_errors_or_stats)
{
	struct fetch_opts o = {.proxies = "http://u:pw1@p1:3128|"};
	struct fetch_mirror_stats *st = NULL;
	struct fetch *f = NULL;
	size_t n = 0;

	ck_assert_int_eq(fetch_new(&o, &f), -EINVAL);
	ck_assert_ptr_null(strstr(stork_error_detail(), "pw1"));
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "http://***@p1:3128"));
	ck_assert_int_eq(fetch_new(NULL, &f), 0);
	ck_assert_int_eq(fetch_add_mirror(f, "gopher://alice:pw2@example.org/repo"), -EINVAL);
	ck_assert_ptr_null(strstr(stork_error_detail(), "pw2"));
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "gopher://***@example.org/repo"));
	ck_assert_int_eq(fetch_add_mirror(f, "https://alice:pw3@example.org/repo/"), 0);
	ck_assert_int_eq(fetch_stats(f, &st, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(st[0].url, "https://***@example.org/repo/");
	free(st);
	fetch_free(f);
}
END_TEST

START_TEST(netrc_readable_by_others_is_refused)
{
	char path[] = "/tmp/stork-netrc-XXXXXX";
	struct fetch_opts o = {.netrc = path};
	struct fetch *f = NULL;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "machine m1 login a password b\n", 30), 30);
	close(fd);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(fetch_netrc_check(path), 0);
	ck_assert_int_eq(fetch_new(&o, &f), 0);
	fetch_free(f);
	f = NULL;
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(fetch_netrc_check(path), 0);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(fetch_new(&o, &f), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), path));
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "chmod 600"));
	ck_assert_int_eq(chmod(path, 0620), 0);
	ck_assert_int_eq(fetch_netrc_check(path), -EINVAL);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(fetch_netrc_check(path), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "No such file"));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The transport chain: proxies, peers. */

/* Fetch o through f; the result, with a fresh sink. */
static int fetch_one(struct fetch *f, const struct object *o)
{
	struct tsink s;
	struct fetch_sink sink;
	int r;

	tsink_init(&s, &sink, o);
	r = fetch_object(f, o->id, o->size, o->zsize, "pkg 1.0: file", &sink);
	if (r == 0)
		ck_assert_uint_eq(s.commits, 1);
	else
		ck_assert_uint_eq(s.commits, 0);
	tsink_fini(&s);
	return r;
}

#define NOBJ 20

START_TEST(proxy_groups_balance_inside_a_group_and_fall_back_in_order_to_direct)
{
	struct fetch_opts o = {.proxies = "http://p1:3128|http://p2:3128; http://p3:3128 ;DIRECT"};
	struct fetch_mirror_stats *st;
	struct object obj[NOBJ + 3];
	struct fetch *f;
	char want[256];

	for (int i = 0; i < NOBJ + 3; i++) {
		make_object(&obj[i], 500 + i, 100 + i);
		fake_put(obj[i].path, obj[i].z, obj[i].zsize);
	}
	f = chain_fetcher(1, &o);
	/* The first group serves everything, both of its proxies in turn. */
	for (int i = 0; i < NOBJ; i++)
		ck_assert_int_eq(fetch_one(f, &obj[i]), 0);
	ck_assert_uint_eq(fake.prequests[0] + fake.prequests[1], NOBJ);
	ck_assert_uint_gt(fake.prequests[0], 0);
	ck_assert_uint_gt(fake.prequests[1], 0);
	ck_assert_uint_eq(fake.prequests[2], 0);
	ck_assert_uint_eq(fake.direct[0], 0);

	/* Both down: the next group; each named once in the log with its back-off. */
	fake.pmode[0] = fake.pmode[1] = REFUSE;
	ck_assert_int_eq(fetch_one(f, &obj[NOBJ]), 0);
	ck_assert_uint_eq(fake.prequests[2], 1);
	ck_assert_uint_eq(logged.lines, 2);
	snprintf(want, sizeof(want),
		 "fake://m1/ via proxy http://p1:3128: %s (pkg 1.0: file): connection refused; "
		 "skipping this proxy for 300 s",
		 obj[NOBJ].path);
	ck_assert_msg(strstr(logged.text, want), "log lacks \"%s\":\n%s", want, logged.text);
	/* Skipped now: not asked again while the next group works. */
	ck_assert_int_eq(fetch_one(f, &obj[NOBJ + 1]), 0);
	ck_assert_uint_eq(fake.prequests[2], 2);
	ck_assert_uint_eq(logged.lines, 2);

	/* Every proxy down: DIRECT. */
	fake.pmode[2] = REFUSE;
	ck_assert_int_eq(fetch_one(f, &obj[NOBJ + 2]), 0);
	ck_assert_uint_eq(fake.direct[0], 1);

	/* Stats: peers, mirrors, proxies; the mirror is not blamed for its proxies. */
	st = stats_of(f, 4);
	ck_assert_str_eq(st[0].kind, "mirror");
	ck_assert_uint_eq(st[0].failures, 0);
	ck_assert(!st[0].skipped);
	ck_assert_str_eq(st[1].kind, "proxy");
	ck_assert_str_eq(st[1].url, "http://p1:3128");
	ck_assert_str_eq(st[3].url, "http://p3:3128");
	for (int i = 1; i < 4; i++) {
		ck_assert_uint_eq(st[i].failures, 1);
		ck_assert(st[i].skipped);
		ck_assert_str_eq(st[i].last_error, "connection refused");
	}
	ck_assert_uint_eq(st[3].requests, 3);
	free(st);
	fetch_free(f);
	for (int i = 0; i < NOBJ + 3; i++)
		free_object(&obj[i]);
}
END_TEST

START_TEST(proxy_is_asked_again_after_its_back_off)
{
	struct fetch_opts o = {.proxies = "http://p1:3128;DIRECT", .proxy_retry = 1};
	struct object a, b, c;
	struct fetch *f;

	make_object(&a, 100, 31);
	make_object(&b, 200, 32);
	make_object(&c, 300, 33);
	fake_put(a.path, a.z, a.zsize);
	fake_put(b.path, b.z, b.zsize);
	fake_put(c.path, c.z, c.zsize);
	fake.pmode[0] = REFUSE;
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(fetch_one(f, &a), 0);
	ck_assert_uint_eq(fake.prequests[0], 1);
	ck_assert_uint_eq(fake.direct[0], 1);
	ck_assert_msg(strstr(logged.text, "skipping this proxy for 1 s"), "%s", logged.text);
	fake.pmode[0] = SERVE;
	ck_assert_int_eq(fetch_one(f, &b), 0); /* still in its back-off */
	ck_assert_uint_eq(fake.prequests[0], 1);
	ck_assert_uint_eq(fake.direct[0], 2);
	sleep(2);
	ck_assert_int_eq(fetch_one(f, &c), 0);
	ck_assert_uint_eq(fake.prequests[0], 2);
	ck_assert_uint_eq(fake.direct[0], 2);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
	free_object(&c);
}
END_TEST

START_TEST(
    proxy_relaying_a_host_failure_tries_direct_then_blames_the_mirror_and_bad_content_the_proxy)
{
	struct fetch_opts o = {.proxies = "http://p1:3128;DIRECT"};
	struct fetch_mirror_stats *st;
	struct object a, b;
	struct fetch *f;

	make_object(&a, 3000, 34);
	make_object(&b, 3000, 35);
	fake_put(a.path, a.z, a.zsize);
	fake_put(b.path, b.z, b.zsize);
	/* The proxy says the first mirror is down (502): ambiguous, so DIRECT to the same mirror
	 * is asked (a broken proxy can answer 5xx for everything); it fails too: the mirror's
	 * failure, and the next mirror, through the proxy. */
	f = chain_fetcher(2, &o);
	fake.mode[0] = HOSTDOWN;
	ck_assert_int_eq(fetch_one(f, &a), 0);
	ck_assert_uint_eq(fake.direct[0], 1);
	ck_assert_uint_eq(fake.requests[1], 1);
	st = stats_of(f, 3);
	ck_assert_uint_eq(st[0].failures, 1);
	ck_assert(st[0].skipped);
	ck_assert_uint_eq(st[2].failures, 0);
	ck_assert(!st[2].skipped);
	free(st);

	/* A caching proxy serving corrupt bytes: the proxy is skipped, DIRECT serves. */
	fake.mode[0] = SERVE;
	fake.pmode[0] = CORRUPT;
	ck_assert_int_eq(fetch_one(f, &b), 0);
	st = stats_of(f, 3);
	ck_assert_uint_eq(st[2].failures, 1);
	ck_assert(st[2].skipped);
	ck_assert_str_eq(st[2].last_error, "hash mismatch");
	ck_assert_uint_eq(st[1].failures, 0);
	free(st);
	ck_assert_msg(strstr(logged.text, "via proxy http://p1:3128") &&
			  strstr(logged.text, "hash mismatch; skipping this proxy"),
		      "%s", logged.text);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
}
END_TEST

START_TEST(metadata_through_proxies_and_never_from_peers)
{
	static const char *const peers[] = {"fake://p1/"};
	struct fetch_opts o = {.proxies = "http://p1:3128", .peers = peers, .npeers = 1};
	struct verify_source src;
	struct fetch *f;
	uint8_t *buf;
	size_t len;

	fake_put("metadata/timestamp.json", "{}", 2);
	fake_put_peer("metadata/timestamp.json", "{}", 2);
	f = chain_fetcher(1, &o);
	fetch_as_source(f, &src);
	ck_assert_int_eq(src.get(src.ctx, "metadata/timestamp.json", 100, &buf, &len), 0);
	free(buf);
	ck_assert_uint_eq(fake.prequests[0], 1);
	ck_assert_uint_eq(fake.peer_requests[0], 0);
	/* No DIRECT in the chain and the proxy down: it is still the only way, and asked. */
	fake.pmode[0] = REFUSE;
	ck_assert_int_eq(src.get(src.ctx, "metadata/timestamp.json", 100, &buf, &len),
			 -ECONNREFUSED);
	ck_assert_msg(strstr(stork_error_detail(), "fake://m1/ via proxy http://p1:3128: "
						   "connection refused"),
		      "%s", stork_error_detail());
	ck_assert_int_eq(src.get(src.ctx, "metadata/timestamp.json", 100, &buf, &len),
			 -ECONNREFUSED);
	ck_assert_uint_eq(fake.prequests[0], 3);
	fetch_free(f);
}
END_TEST

START_TEST(peer_serves_raw_objects_first_and_a_missing_one_is_no_failure)
{
	static const char *const peers[] = {"fake://p1/", " fake://p2/"};
	struct fetch_opts o = {.peers = peers, .npeers = 2};
	struct fetch_mirror_stats *st;
	struct object a, b;
	struct fetch *f;

	make_object(&a, 7000, 36);
	make_object(&b, 8000, 37);
	fake_put(a.path, a.z, a.zsize);
	fake_put(b.path, b.z, b.zsize);
	fake_put_peer(a.path, a.data, a.size); /* a node store: uncompressed */
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(fetch_one(f, &a), 0);
	ck_assert_uint_eq(fake.peer_requests[0], 1);
	ck_assert_uint_eq(fake.peer_requests[1], 0);
	ck_assert_uint_eq(fake.requests[0], 0);
	/* b: neither peer has it, the mirror serves; no back-off, no log line. */
	ck_assert_int_eq(fetch_one(f, &b), 0);
	ck_assert_uint_eq(fake.peer_requests[0], 2);
	ck_assert_uint_eq(fake.peer_requests[1], 1);
	ck_assert_uint_eq(fake.requests[0], 1);
	ck_assert_uint_eq(logged.lines, 0);
	st = stats_of(f, 3);
	ck_assert_str_eq(st[0].kind, "peer");
	ck_assert_str_eq(st[0].url, "fake://p1/");
	ck_assert_str_eq(st[1].url, "fake://p2/");
	ck_assert_str_eq(st[2].kind, "mirror");
	ck_assert_uint_eq(st[0].requests, 2);
	ck_assert_uint_eq(st[0].bytes, a.size);
	ck_assert_uint_eq(st[0].failures, 0);
	ck_assert(!st[0].skipped && !st[1].skipped);
	free(st);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
}
END_TEST

START_TEST(lying_peer_is_skipped_named_and_the_mirror_serves)
{
	static const char *const peers[] = {"fake://p1/"};
	struct fetch_opts o = {.peers = peers, .npeers = 1};
	struct fetch_mirror_stats *st;
	struct object a, b;
	struct fetch *f;
	char want[256];

	make_object(&a, 9000, 38);
	make_object(&b, 9000, 39);
	fake_put(a.path, a.z, a.zsize);
	fake_put(b.path, b.z, b.zsize);
	fake_put_peer(a.path, a.data, a.size);
	fake_put_peer(b.path, b.z, b.zsize); /* compressed bytes are not the object */
	fake.peer_mode[0] = CORRUPT;
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(fetch_one(f, &a), 0);
	ck_assert_uint_eq(fake.requests[0], 1);
	snprintf(want, sizeof(want),
		 "peer fake://p1/: %s (pkg 1.0: file): hash mismatch; skipping this peer for 300 s",
		 a.path);
	ck_assert_msg(strstr(logged.text, want), "log lacks \"%s\":\n%s", want, logged.text);
	ck_assert_int_eq(fetch_one(f, &b), 0); /* skipped: not asked */
	ck_assert_uint_eq(fake.peer_requests[0], 1);
	st = stats_of(f, 2);
	ck_assert_uint_eq(st[0].failures, 1);
	ck_assert(st[0].skipped);
	free(st);
	fetch_free(f);

	/* A peer serving the compressed form is refused too (wrong length or hash). */
	fake.peer_mode[0] = SERVE;
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(fetch_one(f, &b), 0);
	ck_assert_uint_eq(fake.peer_requests[0], 2);
	ck_assert_uint_eq(fake.requests[0], 3);
	ck_assert_msg(strstr(logged.text, "peer fake://p1/"), "%s", logged.text);

	/* Every source failing: the error names each. */
	fake.mode[0] = REFUSE;
	fake.peer_mode[0] = CORRUPT;
	fetch_free(f);
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(fetch_one(f, &a), STORK_EBADHASH);
	ck_assert_msg(strstr(stork_error_detail(), "peer fake://p1/: hash mismatch; "
						   "fake://m1/: connection refused"),
		      "%s", stork_error_detail());
	fetch_free(f);
	free_object(&a);
	free_object(&b);
}
END_TEST

/* fetch_from_peers o through f with a fresh sink; the result. */
static int peers_one(struct fetch *f, const struct object *o, unsigned *ret_commits)
{
	struct tsink s;
	struct fetch_sink sink;
	int r;

	tsink_init(&s, &sink, o);
	r = fetch_from_peers(f, o->id, o->size, "pkg 1.0: manifest", &sink);
	*ret_commits = s.commits;
	tsink_fini(&s);
	return r;
}

START_TEST(peers_only_fetch_without_peers_is_enoent_and_asks_no_mirror)
{
	struct fetch_opts o = {0};
	struct fetch_mirror_stats *st;
	struct object a;
	struct fetch *f;
	unsigned commits;

	make_object(&a, 5000, 41);
	fake_put(a.path, a.z, a.zsize);
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(peers_one(f, &a, &commits), -ENOENT);
	ck_assert_uint_eq(commits, 0);
	ck_assert_uint_eq(fake.total, 0);
	st = stats_of(f, 1);
	ck_assert_uint_eq(st[0].requests, 0);
	ck_assert(!st[0].skipped);
	free(st);
	/* No mirror at all is no error of its own either: still "no peer". */
	fetch_free(f);
	f = chain_fetcher(0, &o);
	ck_assert_int_eq(peers_one(f, &a, &commits), -ENOENT);
	ck_assert_uint_eq(logged.lines, 0);
	fetch_free(f);
	free_object(&a);
}
END_TEST

START_TEST(peers_only_fetch_of_what_no_peer_has_is_enoent_and_blames_none)
{
	static const char *const peers[] = {"fake://p1/", " fake://p2/"};
	struct fetch_opts o = {.peers = peers, .npeers = 2};
	struct fetch_mirror_stats *st;
	struct object a, b;
	struct fetch *f;
	unsigned commits;

	make_object(&a, 6000, 42);
	make_object(&b, 6000, 43);
	fake_put(a.path, a.z, a.zsize); /* the mirror has it: it must not be asked */
	fake_put_peer(b.path, b.data, b.size);
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(peers_one(f, &a, &commits), -ENOENT);
	ck_assert_uint_eq(commits, 0);
	ck_assert_uint_eq(fake.peer_requests[0], 1);
	ck_assert_uint_eq(fake.peer_requests[1], 1);
	ck_assert_uint_eq(fake.requests[0], 0);
	ck_assert_uint_eq(logged.lines, 0);
	st = stats_of(f, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(st[i].failures, 0);
		ck_assert(!st[i].skipped);
	}
	free(st);
	/* Not marked: both are asked again, and the first that has it serves. */
	ck_assert_int_eq(peers_one(f, &b, &commits), 0);
	ck_assert_uint_eq(commits, 1);
	ck_assert_uint_eq(fake.peer_requests[0], 2);
	ck_assert_uint_eq(fake.peer_requests[1], 1);
	ck_assert_uint_eq(fake.requests[0], 0);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
}
END_TEST

START_TEST(peers_only_fetch_skips_a_lying_peer_and_the_next_serves)
{
	static const char *const peers[] = {"fake://p1/", " fake://p2/"};
	struct fetch_opts o = {.peers = peers, .npeers = 2};
	struct fetch_mirror_stats *st;
	struct object a, b;
	struct fetch *f;
	unsigned commits;
	char want[256];

	make_object(&a, 9000, 44);
	make_object(&b, 9000, 45);
	fake_put(a.path, a.z, a.zsize);
	fake_put_peer(a.path, a.data, a.size);
	fake_put_peer(b.path, b.data, b.size);
	fake.peer_mode[0] = CORRUPT;
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(peers_one(f, &a, &commits), 0);
	ck_assert_uint_eq(commits, 1);
	ck_assert_uint_eq(fake.peer_requests[0], 1);
	ck_assert_uint_eq(fake.peer_requests[1], 1);
	ck_assert_uint_eq(fake.requests[0], 0);
	snprintf(want, sizeof(want),
		 "peer fake://p1/: %s (pkg 1.0: manifest): hash mismatch; skipping this peer for "
		 "300 s",
		 a.path);
	ck_assert_msg(strstr(logged.text, want), "log lacks \"%s\":\n%s", want, logged.text);
	ck_assert_uint_eq(logged.lines, 1);
	st = stats_of(f, 3);
	ck_assert_uint_eq(st[0].failures, 1);
	ck_assert(st[0].skipped);
	ck_assert_str_eq(st[0].last_error, "hash mismatch");
	ck_assert_uint_eq(st[1].failures, 0);
	ck_assert_uint_eq(st[2].requests, 0);
	free(st);
	/* Skipped now: the liar is not asked again while in its back-off. */
	ck_assert_int_eq(peers_one(f, &b, &commits), 0);
	ck_assert_uint_eq(fake.peer_requests[0], 1);
	ck_assert_uint_eq(fake.peer_requests[1], 2);

	/* Every peer lying: the most telling failure, each named; still no mirror asked. */
	fetch_free(f);
	fake.peer_mode[1] = CORRUPT;
	f = chain_fetcher(1, &o);
	ck_assert_int_eq(peers_one(f, &a, &commits), STORK_EBADHASH);
	ck_assert_uint_eq(commits, 0);
	ck_assert_msg(strstr(stork_error_detail(), "every peer failed: peer fake://p1/: hash "
						   "mismatch; peer fake://p2/: hash mismatch"),
		      "%s", stork_error_detail());
	ck_assert_uint_eq(fake.requests[0], 0);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
}
END_TEST

START_TEST(chain_options_are_checked)
{
	static const char *const bad_peers[] = {"http://a/", ""};
	struct fetch_opts o = {.proxies = "http://p1:3128||DIRECT"};
	struct fetch *f = NULL;

	ck_assert_int_eq(fetch_new(&o, &f), -EINVAL);
	ck_assert_msg(strstr(stork_error_detail(), "empty proxy"), "%s", stork_error_detail());
	o.proxies = "p1:3128";
	ck_assert_int_eq(fetch_new(&o, &f), -EINVAL);
	o.proxies = "DIRECT";
	o.peers = bad_peers;
	o.npeers = 2;
	ck_assert_int_eq(fetch_new(&o, &f), -EINVAL);
	ck_assert_msg(strstr(stork_error_detail(), "peer \"\" is not a URL"), "%s",
		      stork_error_detail());
	o.npeers = 1;
	ck_assert_int_eq(fetch_new(&o, &f), 0);
	fetch_free(f);
}
END_TEST

START_TEST(volatile_urls_are_unversioned_metadata_and_root_probes)
{
	ck_assert(fetch_url_is_volatile("http://m/repo/metadata/timestamp.json"));
	ck_assert(fetch_url_is_volatile("http://m/metadata/snapshot.json"));
	ck_assert(fetch_url_is_volatile("http://m/metadata/3.root.json"));
	ck_assert(fetch_url_is_volatile("http://m/metadata/root.json"));
	ck_assert(!fetch_url_is_volatile("http://m/metadata/12.snapshot.json"));
	ck_assert(!fetch_url_is_volatile("http://m/metadata/4.targets.json"));
	ck_assert(!fetch_url_is_volatile("http://m/objects/ab/abcd"));
	ck_assert(!fetch_url_is_volatile("http://m/xmetadata/timestamp.json"));
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

/* A keep-alive HTTP/1.1 server on loopback, one connection at a time: /ok answers 200 "ok",
 * /big-404 a 404 with a 1 MiB page, /500 a 500, anything else a 404 with a short page. Counts
 * the connections it accepted. */
struct tiny_http {
	int fd, port;
	unsigned connections;
	pthread_t thread;
};

static void tiny_answer(int c, const char *path)
{
	static char page[1 << 20];
	const char *status = "404 Not Found", *body = "<html>not here</html>";
	size_t blen;
	char head[256];
	int hlen;

	if (!strcmp(path, "/ok")) {
		status = "200 OK";
		body = "ok";
	} else if (!strcmp(path, "/500")) {
		status = "500 Internal Server Error";
		body = "broken";
	} else if (!strcmp(path, "/big-404")) {
		memset(page, 'x', sizeof(page));
		page[sizeof(page) - 1] = '\0';
		body = page;
	}
	blen = strlen(body);
	hlen = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n", status,
			blen);
	ck_assert_int_eq(write(c, head, (size_t)hlen), hlen);
	/* The client may stop reading a long error page and close. */
	(void)!write(c, body, blen);
}

static void *tiny_main(void *arg)
{
	struct tiny_http *h = arg;
	char req[4096], path[256];
	int c;

	while ((c = accept(h->fd, NULL, NULL)) >= 0) {
		size_t have = 0;
		ssize_t n;

		__atomic_add_fetch(&h->connections, 1, __ATOMIC_SEQ_CST);
		for (;;) {
			char *end = memmem(req, have, "\r\n\r\n", 4);

			if (end) {
				size_t used = (size_t)(end + 4 - req);

				if (sscanf(req, "GET %255s ", path) != 1)
					break;
				tiny_answer(c, path);
				memmove(req, req + used, have - used);
				have -= used;
				continue;
			}
			n = read(c, req + have, sizeof(req) - have);
			if (n <= 0)
				break;
			have += (size_t)n;
		}
		close(c);
	}
	return NULL;
}

START_TEST(curl_error_answers_keep_the_connection_open)
{
	struct tiny_http h = {0};
	struct fetch_transport t;
	struct grow g = {0};
	char url[128];

	h.fd = silent_listener(&h.port);
	ck_assert_int_eq(pthread_create(&h.thread, NULL, tiny_main, &h), 0);
	ck_assert_int_eq(fetch_curl_transport_new(NULL, &t), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/objects/ab/%d", h.port, i);
		ck_assert_int_eq(t.get(t.tctx, url, 100, grow, &g), -ENOENT);
		ck_assert_msg(strstr(stork_error_detail(), "not found (HTTP 404)"), "%s",
			      stork_error_detail());
		ck_assert_uint_eq(g.len, 0); /* the error page never reaches the consumer */
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/500", h.port);
	ck_assert_int_eq(t.get(t.tctx, url, 100, grow, &g), -EIO);
	ck_assert_msg(strstr(stork_error_detail(), "HTTP 500"), "%s", stork_error_detail());
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", h.port);
	ck_assert_int_eq(t.get(t.tctx, url, 100, grow, &g), 0);
	ck_assert_uint_eq(g.len, 2);
	ck_assert_mem_eq(g.buf, "ok", 2);
	/* Five 404s, a 500 and a 200 over one connection. */
	ck_assert_uint_eq(__atomic_load_n(&h.connections, __ATOMIC_SEQ_CST), 1);

	/* A 404 page longer than the limit is still a 404, and never reaches the consumer. */
	g.len = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big-404", h.port);
	ck_assert_int_eq(t.get(t.tctx, url, 100, grow, &g), -ENOENT);
	ck_assert_int_eq(t.get(t.tctx, url, 2u << 20, grow, &g), -ENOENT);
	ck_assert_uint_eq(g.len, 0);
	t.free(t.tctx);
	shutdown(h.fd, SHUT_RDWR);
	close(h.fd);
	pthread_join(h.thread, NULL);
	free(g.buf);
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
/* The exec transport: small shell scripts as commands. */

/* Write an executable script tmpdir/name; returns its path in path. */
static void script(const char *name, const char *body, char *path, size_t len)
{
	char text[2048];

	snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", body);
	write_file(name, text, strlen(text));
	snprintf(path, len, "%s/%s", tmpdir, name);
	ck_assert_int_eq(chmod(path, 0755), 0);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static struct fetch_transport exec_transport(const char *scheme, const char *cmd,
					     const struct fetch_opts *o)
{
	struct fetch_transport t;

	ck_assert_int_eq(fetch_exec_transport_new(scheme, cmd, o, &t), 0);
	return t;
}

START_TEST(exec_runs_the_command_with_the_url_and_maxlen)
{
	struct fetch_transport t;
	struct grow g = {0};
	char path[512], cmd[600];
	int fds = count_fds();

	script("ok", "printf '%s|%s|%s' \"$1\" \"$2\" \"$STORK_MAXLEN\"", path, sizeof(path));
	snprintf(cmd, sizeof(cmd), "%s  extra-arg", path);
	t = exec_transport("tst", cmd, NULL);
	ck_assert(t.handles(t.tctx, "tst:x"));
	ck_assert(t.handles(t.tctx, "TST://x"));
	ck_assert(!t.handles(t.tctx, "tstx:x"));
	ck_assert(!t.handles(t.tctx, "http://x"));
	ck_assert_int_eq(t.get(t.tctx, "tst://h/objects/ab/cd", 1000, grow, &g), 0);
	grow(&g, "", 1);
	ck_assert_str_eq((char *)g.buf, "extra-arg|tst://h/objects/ab/cd|1000");
	/* Exactly maxlen is fine, one more is not. */
	g.len = 0;
	ck_assert_int_eq(t.get(t.tctx, "tst:y", 10, grow, &g), STORK_ETOOBIG);
	ck_assert_uint_eq(g.len, 0);
	t.free(t.tctx);
	free(g.buf);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(exec_exit_codes_say_not_found_or_why_it_failed)
{
	struct fetch_transport t;
	struct grow g = {0};
	char path[512];

	script(
	    "codes",
	    "case \"$1\" in\n"
	    "*missing) exit 2 ;;\n"
	    "*broken) echo 'no seeders for this torrent' >&2; echo 'second line' >&2; exit 1 ;;\n"
	    "*signal) kill -9 $$ ;;\n"
	    "esac",
	    path, sizeof(path));
	t = exec_transport("tst", path, NULL);
	ck_assert_int_eq(t.get(t.tctx, "tst:missing", 100, grow, &g), -ENOENT);
	ck_assert_int_eq(t.get(t.tctx, "tst:broken", 100, grow, &g), -EIO);
	ck_assert_str_eq(stork_error_detail(), "tst:broken: no seeders for this torrent (exit 1)");
	ck_assert_int_eq(t.get(t.tctx, "tst:signal", 100, grow, &g), -EIO);
	ck_assert_msg(strstr(stork_error_detail(), "killed by signal 9"), "%s",
		      stork_error_detail());
	t.free(t.tctx);
	/* A command that cannot run at all. */
	t = exec_transport("tst", "/nonexistent/fetcher --x", NULL);
	ck_assert_int_eq(t.get(t.tctx, "tst:a", 100, grow, &g), -EIO);
	ck_assert_msg(strstr(stork_error_detail(), "/nonexistent/fetcher"), "%s",
		      stork_error_detail());
	t.free(t.tctx);
	free(g.buf);
}
END_TEST

/* Whether pid is gone (or a zombie about to be reaped by init) within a second. */
static bool gone(pid_t pid)
{
	for (int i = 0; i < 100; i++) {
		char stat[64], buf[256];
		FILE *fp;
		bool z = false;

		if (kill(pid, 0) < 0)
			return true;
		snprintf(stat, sizeof(stat), "/proc/%d/stat", (int)pid);
		fp = fopen(stat, "r");
		if (fp && fgets(buf, sizeof(buf), fp))
			z = strstr(buf, ") Z ") != NULL;
		if (fp)
			fclose(fp);
		if (z)
			return true;
		usleep(10000);
	}
	return false;
}

START_TEST(exec_command_streaming_below_the_low_speed_limit_is_killed)
{
	struct fetch_opts o = {.low_speed_time = 1, .low_speed_limit = 1024};
	struct fetch_transport t;
	struct grow g = {0};
	char path[512];
	time_t t0;

	/* a byte every 0.1 s: never silent, but 10 B/s */
	script("trickle", "while :; do printf x; sleep 0.1; done", path, sizeof(path));
	t = exec_transport("tst", path, &o);
	t0 = time(NULL);
	ck_assert_int_eq(t.get(t.tctx, "tst:trickle", 1 << 20, grow, &g), -ETIMEDOUT);
	ck_assert_int_le(time(NULL) - t0, 4);
	ck_assert_msg(strstr(stork_error_detail(), "stalled: below 1024 B/s for 1 s"), "%s",
		      stork_error_detail());
	ck_assert_uint_gt(g.len, 0);
	t.free(t.tctx);
	free(g.buf);
}
END_TEST

START_TEST(exec_stalled_or_endless_commands_are_killed_with_their_children)
{
	struct fetch_opts o = {.low_speed_time = 1};
	struct fetch_transport t;
	struct grow g = {0};
	char path[512], pidfile[600], body[1024], buf[32] = "";
	time_t t0;
	int fds = count_fds(), fd;
	pid_t child;

	snprintf(pidfile, sizeof(pidfile), "%s/sleeper.pid", tmpdir);
	snprintf(body, sizeof(body),
		 "case \"$1\" in\n"
		 "*stall) printf abc; sleep 30 & echo $! > %s; wait ;;\n"
		 "*endless) exec yes ;;\n"
		 "esac",
		 pidfile);
	script("stall", body, path, sizeof(path));
	t = exec_transport("tst", path, &o);
	t0 = time(NULL);
	ck_assert_int_eq(t.get(t.tctx, "tst:stall", 1000, grow, &g), -ETIMEDOUT);
	ck_assert_int_le(time(NULL) - t0, 4);
	/* 3 bytes, then nothing: below the limit over the 1 s window (or silent for 1 s) */
	ck_assert_msg(strstr(stork_error_detail(), "stalled: "), "%s", stork_error_detail());
	ck_assert_uint_eq(g.len, 3);
	fd = open(pidfile, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_gt(read(fd, buf, sizeof(buf) - 1), 0);
	close(fd);
	child = (pid_t)strtol(buf, NULL, 10);
	ck_assert_int_gt(child, 1);
	ck_assert_msg(gone(child), "the command's child %d outlived it", (int)child);

	g.len = 0;
	t0 = time(NULL);
	ck_assert_int_eq(t.get(t.tctx, "tst:endless", 100000, grow, &g), STORK_ETOOBIG);
	ck_assert_uint_le(g.len, 100000);
	ck_assert_int_le(time(NULL) - t0, 3);
	t.free(t.tctx);
	free(g.buf);
	/* Every child reaped, no descriptor left behind. */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

struct exec_canceller {
	struct fetch_transport *t;
};

static void *exec_cancel_main(void *arg)
{
	struct exec_canceller *c = arg;

	usleep(300 * 1000);
	c->t->cancel(c->t->tctx);
	return NULL;
}

START_TEST(exec_cancel_kills_a_running_command_and_refuses_later_ones)
{
	struct fetch_opts o = {.low_speed_time = 60};
	struct fetch_transport t;
	struct exec_canceller c = {.t = &t};
	struct grow g = {0};
	pthread_t th;
	char path[512];
	time_t t0;

	script("slow", "exec sleep 60", path, sizeof(path));
	t = exec_transport("tst", path, &o);
	ck_assert_int_eq(pthread_create(&th, NULL, exec_cancel_main, &c), 0);
	t0 = time(NULL);
	ck_assert_int_eq(t.get(t.tctx, "tst:x", 100, grow, &g), -ECANCELED);
	ck_assert_int_le(time(NULL) - t0, 5);
	pthread_join(th, NULL);
	ck_assert_int_eq(t.get(t.tctx, "tst:x", 100, grow, &g), -ECANCELED);
	t.free(t.tctx);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
}
END_TEST

START_TEST(exec_mirror_falls_back_to_the_next_source)
{
	struct object a, b;
	struct tsink s;
	struct fetch_sink sink;
	struct fetch *f;
	struct fetch_opts o = {.log = test_log};
	const char *exec[2];
	char path[512], spec[600], mirror[600], rel[600];

	make_object(&a, 40000, 41);
	make_object(&b, 40000, 42);
	snprintf(rel, sizeof(rel), "exrepo/%s", a.path);
	write_file(rel, a.z, a.zsize);
	snprintf(rel, sizeof(rel), "http/%s", b.path);
	write_file(rel, b.z, b.zsize);
	snprintf(rel, sizeof(rel), "http/%s", a.path);
	write_file(rel, a.z, a.zsize);
	/* The adapter serves "tst:DIR/objects/..." from DIR; exit 2 when it has no such file. */
	script("adapter", "f=${1#tst:}; [ -f \"$f\" ] || exit 2; exec cat \"$f\"", path,
	       sizeof(path));
	snprintf(spec, sizeof(spec), "tst=%s", path);
	exec[0] = spec;
	exec[1] = NULL;
	o.exec = exec;
	ck_assert_int_eq(fetch_new(&o, &f), 0);
	snprintf(mirror, sizeof(mirror), "tst:%s/exrepo", tmpdir);
	ck_assert_int_eq(fetch_add_mirror(f, mirror), 0);
	snprintf(mirror, sizeof(mirror), "%s/http", tmpdir);
	ck_assert_int_eq(fetch_add_mirror(f, mirror), 0);
	tsink_init(&s, &sink, &a);
	ck_assert_int_eq(fetch_object(f, a.id, a.size, a.zsize, "a", &sink), 0);
	tsink_fini(&s);
	ck_assert_uint_eq(logged.lines, 0);
	/* b is not there: exit 2, a stale mirror, the next one serves. */
	tsink_init(&s, &sink, &b);
	ck_assert_int_eq(fetch_object(f, b.id, b.size, b.zsize, "b", &sink), 0);
	ck_assert_uint_eq(s.commits, 1);
	tsink_fini(&s);
	ck_assert_msg(strstr(logged.text, "tst:") && strstr(logged.text, "not found"), "%s",
		      logged.text);
	fetch_free(f);
	free_object(&a);
	free_object(&b);
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
	tcase_add_test(tc, url_shown_hides_every_userinfo);
	tcase_add_test(tc, passwords_in_sources_are_not_in_errors_or_stats);
	tcase_add_test(tc, netrc_readable_by_others_is_refused);
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
	tcase_add_test(tc, concurrent_waiters_get_the_whole_detail);
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
	tcase_add_test(tc, curl_error_answers_keep_the_connection_open);
	tcase_add_test(tc, curl_free_cancels_pending_requests);
	tcase_add_test(tc, fetch_cancel_ends_a_stalled_object_fetch_and_later_ones);
	tcase_add_test(tc, fetcher_reads_a_directory_mirror_through_curl);
	tcase_add_test(tc, source_init_opens_directories_and_urls);
	suite_add_tcase(s, tc);

	tc = tcase_create("chain");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, proxy_groups_balance_inside_a_group_and_fall_back_in_order_to_direct);
	tcase_add_test(tc, proxy_is_asked_again_after_its_back_off);
	tcase_add_test(
	    tc,
	    proxy_relaying_a_host_failure_tries_direct_then_blames_the_mirror_and_bad_content_the_proxy);
	tcase_add_test(tc, metadata_through_proxies_and_never_from_peers);
	tcase_add_test(tc, peer_serves_raw_objects_first_and_a_missing_one_is_no_failure);
	tcase_add_test(tc, lying_peer_is_skipped_named_and_the_mirror_serves);
	tcase_add_test(tc, chain_options_are_checked);
	tcase_add_test(tc, volatile_urls_are_unversioned_metadata_and_root_probes);
	tcase_add_test(tc, peers_only_fetch_without_peers_is_enoent_and_asks_no_mirror);
	tcase_add_test(tc, peers_only_fetch_of_what_no_peer_has_is_enoent_and_blames_none);
	tcase_add_test(tc, peers_only_fetch_skips_a_lying_peer_and_the_next_serves);
	suite_add_tcase(s, tc);

	tc = tcase_create("exec");
	tcase_add_checked_fixture(tc, curl_setup, curl_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, exec_runs_the_command_with_the_url_and_maxlen);
	tcase_add_test(tc, exec_exit_codes_say_not_found_or_why_it_failed);
	tcase_add_test(tc, exec_stalled_or_endless_commands_are_killed_with_their_children);
	tcase_add_test(tc, exec_command_streaming_below_the_low_speed_limit_is_killed);
	tcase_add_test(tc, exec_cancel_kills_a_running_command_and_refuses_later_ones);
	tcase_add_test(tc, exec_mirror_falls_back_to_the_next_source);
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
