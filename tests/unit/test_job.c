/* tests/unit/test_job.c: the daemon's bounded waits (fs/job.c): callers of one key share one
 * run, a caller never waits past the timeout while the job finishes in the background,
 * failures reach every waiter with their detail, and results are referenced per waiter. */
#include <stdio.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "fs/daemon.h"

/* A job body the test controls: it counts runs, then blocks until released. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	int runs;
	int ret;
	int result_refs; /* references to the shared result */
};

static struct gate g;

static void gate_reset(int ret)
{
	pthread_mutex_init(&g.lock, NULL);
	pthread_cond_init(&g.cond, NULL);
	g.open = false;
	g.runs = 0;
	g.ret = ret;
	g.result_refs = 0;
}

static void gate_open(void)
{
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

static int gated_run(struct fsd *d, void *arg, void **ret_result)
{
	(void)d;
	(void)arg;
	pthread_mutex_lock(&g.lock);
	g.runs++;
	while (!g.open)
		pthread_cond_wait(&g.cond, &g.lock);
	g.result_refs++;
	pthread_mutex_unlock(&g.lock);
	*ret_result = &g;
	if (g.ret < 0)
		stork_errorf("objects/ab/cd: every mirror failed: http://m1: hash mismatch");
	return g.ret;
}

static void arg_free(void *arg)
{
	free(arg);
}

static void *res_ref(void *res)
{
	pthread_mutex_lock(&g.lock);
	g.result_refs++;
	pthread_mutex_unlock(&g.lock);
	return res;
}

static void res_unref(void *res)
{
	(void)res;
	pthread_mutex_lock(&g.lock);
	g.result_refs--;
	pthread_mutex_unlock(&g.lock);
}

static const struct fsd_job_ops ops = {
    .run = gated_run,
    .arg_free = arg_free,
    .result_ref = res_ref,
    .result_unref = res_unref,
};

static struct fsd d;

static void setup(void)
{
	memset(&d, 0, sizeof(d));
	d.conf.timeout = 10;
	ck_assert_int_eq(fsd_jobs_init(&d.jobs), 0);
}

static void teardown(void)
{
	gate_open();
	ck_assert_int_eq(fsd_jobs_drain(&d.jobs, 10), 0);
	fsd_jobs_fini(&d.jobs);
}

struct caller {
	pthread_t tid;
	int ret;
	void *res;
	char detail[256];
};

static void *call(void *arg)
{
	struct caller *c = arg;

	c->ret = fsd_job(&d, "obj:abcd", "objects/ab/cd", &ops, malloc(16), &c->res);
	snprintf(c->detail, sizeof(c->detail), "%s", stork_error_detail());
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(job_callers_of_one_key_share_one_run)
{
	struct caller c[16];

	gate_reset(0);
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(pthread_create(&c[i].tid, NULL, call, &c[i]), 0);
	/* Let them all arrive, then let the one run finish. */
	usleep(200 * 1000);
	gate_open();
	for (int i = 0; i < 16; i++) {
		pthread_join(c[i].tid, NULL);
		ck_assert_int_eq(c[i].ret, 0);
		ck_assert_ptr_eq(c[i].res, &g);
		res_unref(c[i].res);
	}
	ck_assert_int_eq(fsd_jobs_drain(&d.jobs, 10), 0);
	ck_assert_int_eq(g.runs, 1);
	ck_assert_int_eq(g.result_refs, 0); /* the job's own reference was dropped */
}
END_TEST

START_TEST(job_caller_gives_up_at_the_timeout_and_the_job_finishes)
{
	struct caller c;
	double t0;

	gate_reset(0);
	d.conf.timeout = 1;
	t0 = now_s();
	call(&c);
	ck_assert_int_eq(c.ret, -ETIMEDOUT);
	ck_assert_double_lt(now_s() - t0, 3.0);
	ck_assert_msg(strstr(c.detail, "objects/ab/cd") && strstr(c.detail, "1 s"), "detail: %s",
		      c.detail);
	ck_assert_int_eq(fsd_jobs_drain(&d.jobs, 0), -ETIMEDOUT); /* still running */
	gate_open();
	ck_assert_int_eq(fsd_jobs_drain(&d.jobs, 10), 0);
	ck_assert_int_eq(g.result_refs, 0);
	/* The job is gone: the next caller runs it again. */
	call(&c);
	ck_assert_int_eq(c.ret, 0);
	ck_assert_int_eq(g.runs, 2);
	res_unref(c.res);
}
END_TEST

START_TEST(job_failure_reaches_every_waiter_with_its_detail)
{
	struct caller c[4];

	gate_reset(STORK_EBADHASH);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&c[i].tid, NULL, call, &c[i]), 0);
	usleep(200 * 1000);
	gate_open();
	for (int i = 0; i < 4; i++) {
		pthread_join(c[i].tid, NULL);
		ck_assert_int_eq(c[i].ret, STORK_EBADHASH);
		ck_assert_ptr_null(c[i].res);
		ck_assert_msg(strstr(c[i].detail, "http://m1: hash mismatch"), "detail: %s",
			      c[i].detail);
	}
	ck_assert_int_eq(fsd_jobs_drain(&d.jobs, 10), 0);
	ck_assert_int_eq(g.result_refs, 0); /* a failed run's result is dropped */
}
END_TEST

static Suite *job_suite(void)
{
	Suite *s = suite_create("job");
	TCase *tc = tcase_create("job");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, job_callers_of_one_key_share_one_run);
	tcase_add_test(tc, job_caller_gives_up_at_the_timeout_and_the_job_finishes);
	tcase_add_test(tc, job_failure_reaches_every_waiter_with_its_detail);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(job_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
