/* fs/job.c: bounded waits. Everything a FUSE callback needs from the network (a version's
 * manifest, a file's object) runs on a job thread; the callback waits for the job on a
 * condition variable with a deadline of conf.timeout seconds and answers EIO when it passes.
 * The job goes on and, when it succeeds, leaves its result in the store or the tree cache,
 * where the next caller finds it at once.
 *
 * Jobs are keyed ("tree:hello/2.10-3", "obj:<hex>"): a second caller that needs what a running
 * job is getting waits for that job (with its own deadline) instead of starting another. A
 * job leaves the list when it ends, so a caller after a failure starts a fresh attempt.
 *
 * Locking: jobs.lock protects the list, each job's refs, done, ret, detail and result. A job
 * is freed by whoever drops its last reference (the thread or the last waiter).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/daemon.h"

/* Job threads at once; a caller beyond that waits (within its deadline) for a slot. Each
 * mostly sleeps on a transfer, so this bounds threads, not bandwidth. */
#define MAX_JOBS 256

struct fsd_job {
	struct fsd_job *next;
	char *key;
	unsigned refs; /* the thread's and each waiter's */
	bool done;
	int ret;
	void *result; /* the job's reference, when ops->result_ref */
	char detail[1024];
	const struct fsd_job_ops *ops;
	void *arg;
	struct fsd *d;
	struct fsd_jobs *jobs;
};

int64_t fsd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

int fsd_jobs_init(struct fsd_jobs *j)
{
	pthread_condattr_t attr;
	int ret;

	memset(j, 0, sizeof(*j));
	ret = pthread_condattr_init(&attr);
	if (ret)
		return -ret;
	ret = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (ret == 0)
		ret = pthread_cond_init(&j->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (ret)
		return -ret;
	pthread_mutex_init(&j->lock, NULL);
	return 0;
}

static void deadline_in(struct timespec *ts, unsigned secs)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += secs;
}

int fsd_jobs_drain(struct fsd_jobs *j, unsigned secs)
{
	struct timespec deadline;
	int ret = 0;

	deadline_in(&deadline, secs);
	pthread_mutex_lock(&j->lock);
	while (j->running && ret == 0)
		ret = pthread_cond_timedwait(&j->cond, &j->lock, &deadline);
	ret = j->running ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&j->lock);
	return ret;
}

void fsd_jobs_fini(struct fsd_jobs *j)
{
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
}

/* Drop a reference; the caller holds jobs->lock. */
static void job_put_locked(struct fsd_job *job)
{
	if (--job->refs)
		return;
	if (job->result && job->ops->result_unref)
		job->ops->result_unref(job->result);
	free(job->key);
	free(job);
}

static void *job_thread(void *arg)
{
	struct fsd_job *job = arg;
	struct fsd_jobs *jobs = job->jobs;
	const struct fsd_job_ops *ops = job->ops; /* job may be freed before the end */
	void *result = NULL;
	int ret;

	stork_error_clear();
	ret = ops->run(job->d, job->arg, &result);
	ops->arg_free(job->arg);
	job->arg = NULL;
	/* Everything the job touches is released before it counts as ended: once fsd_jobs_drain
	 * returns, the daemon frees what results point into. */
	if (ret < 0 && result && ops->result_unref)
		ops->result_unref(result);
	if (ret < 0)
		result = NULL;

	pthread_mutex_lock(&jobs->lock);
	for (struct fsd_job **p = &jobs->list; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	job->done = true;
	job->ret = ret;
	job->result = result;
	if (ret < 0)
		snprintf(job->detail, sizeof(job->detail), "%s", stork_error_detail());
	jobs->running--;
	pthread_cond_broadcast(&jobs->cond);
	job_put_locked(job);
	pthread_mutex_unlock(&jobs->lock);
	return NULL;
}

/* A new job on its own thread, listed; the caller holds jobs->lock and gets a reference. */
static int job_start(struct fsd *d, const char *key, const struct fsd_job_ops *ops, void *arg,
		     struct fsd_job **ret_job)
{
	struct fsd_jobs *jobs = &d->jobs;
	pthread_attr_t attr;
	pthread_t tid;
	struct fsd_job *job;
	int ret;

	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->key = strdup(key);
	if (!job->key) {
		free(job);
		return -ENOMEM;
	}
	job->refs = 2;
	job->ops = ops;
	job->arg = arg;
	job->d = d;
	job->jobs = jobs;
	ret = pthread_attr_init(&attr);
	if (ret == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ret = pthread_create(&tid, &attr, job_thread, job);
		pthread_attr_destroy(&attr);
	}
	if (ret) {
		free(job->key);
		free(job);
		stork_errorf("cannot start a thread for %s: %s", key, strerror(ret));
		return -ret;
	}
	job->next = jobs->list;
	jobs->list = job;
	jobs->running++;
	*ret_job = job;
	return 0;
}

int fsd_job(struct fsd *d, const char *key, const char *what, const struct fsd_job_ops *ops,
	    void *arg, void **ret_result)
{
	struct fsd_jobs *jobs = &d->jobs;
	struct timespec deadline;
	struct fsd_job *job;
	int ret = 0, w = 0;

	if (ret_result)
		*ret_result = NULL;
	deadline_in(&deadline, d->conf.timeout);
	pthread_mutex_lock(&jobs->lock);
	for (;;) {
		for (job = jobs->list; job; job = job->next)
			if (strcmp(job->key, key) == 0)
				break;
		if (job) {
			job->refs++;
			ops->arg_free(arg);
			break;
		}
		if (jobs->running < MAX_JOBS) {
			ret = job_start(d, key, ops, arg, &job);
			if (ret < 0) {
				pthread_mutex_unlock(&jobs->lock);
				ops->arg_free(arg);
				return ret;
			}
			break;
		}
		/* Every slot is taken: wait for one, within the same deadline. */
		w = pthread_cond_timedwait(&jobs->cond, &jobs->lock, &deadline);
		if (w == ETIMEDOUT) {
			pthread_mutex_unlock(&jobs->lock);
			ops->arg_free(arg);
			stork_errorf("%s: %d transfers are already waiting and none ended within "
				     "%u s (the timeout= option)",
				     what, MAX_JOBS, d->conf.timeout);
			return -ETIMEDOUT;
		}
	}
	while (!job->done && w != ETIMEDOUT)
		w = pthread_cond_timedwait(&jobs->cond, &jobs->lock, &deadline);
	if (!job->done) {
		ret = -ETIMEDOUT;
		stork_errorf("%s: no answer within %u s (the timeout= option); the transfer goes "
			     "on in the background",
			     what, d->conf.timeout);
	} else {
		ret = job->ret;
		if (ret < 0)
			stork_errorf("%s", job->detail);
		else if (ret_result && job->result && ops->result_ref)
			*ret_result = ops->result_ref(job->result);
	}
	job_put_locked(job);
	pthread_mutex_unlock(&jobs->lock);
	return ret;
}

int fsd_job_start(struct fsd *d, const char *key, const struct fsd_job_ops *ops, void *arg)
{
	struct fsd_jobs *jobs = &d->jobs;
	struct fsd_job *job;
	int ret = 0;

	pthread_mutex_lock(&jobs->lock);
	for (job = jobs->list; job; job = job->next)
		if (strcmp(job->key, key) == 0)
			break;
	if (job) {
		ops->arg_free(arg);
	} else if (jobs->running >= MAX_JOBS) {
		ops->arg_free(arg);
		ret = -EBUSY;
	} else {
		ret = job_start(d, key, ops, arg, &job);
		if (ret < 0)
			ops->arg_free(arg);
		else
			job_put_locked(job); /* nobody waits: the thread's reference is enough */
	}
	pthread_mutex_unlock(&jobs->lock);
	return ret;
}
