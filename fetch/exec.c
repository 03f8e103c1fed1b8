/* fetch/exec.c: the exec transport: an external command fetches a URL of its scheme.
 *
 * For each get() a child runs COMMAND... URL (argv split on spaces, no shell) in its own process
 * group, with stdin /dev/null, stdout and stderr on pipes, every other descriptor closed, and
 * STORK_MAXLEN in its environment. Its stdout is the body; exit 0 = done, 2 = no such file, any
 * other exit = failure, the first line of stderr saying why. The caller's thread polls the
 * pipes (and the cancel pipe) with the stall and whole-transfer bounds; on any abort the whole
 * process group gets SIGKILL, and the child is always reaped. fetch/README.md, "The exec
 * transport", is the protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "fetch/fetch.h"

#define DEFAULT_LOW_TIME  10L
#define DEFAULT_LOW_LIMIT 1024L /* bytes/s, as fetch_opts.low_speed_limit's default */
#define DETAIL_LEN	  256	/* the first stderr line kept */
#define CHUNK		  65536

extern char **environ;

struct exect {
	char *scheme; /* "bt+http" */
	size_t scheme_len;
	char **argv; /* the command's words, NULL-terminated, with one free slot for the URL */
	size_t argc;
	char *words; /* storage of argv's strings */
	long low_speed_time, low_speed_limit, timeout;
	int cancel_pipe[2]; /* written once by cancel: readable for ever after */
	pthread_mutex_t lock;
	bool cancelled; /* lock */
};

static bool exec_handles(void *tctx, const char *url)
{
	struct exect *t = tctx;

	return !strncasecmp(url, t->scheme, t->scheme_len) && url[t->scheme_len] == ':';
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The environment plus STORK_MAXLEN (an old STORK_MAXLEN dropped). */
static char **child_env(uint64_t maxlen, char *maxvar, size_t maxvar_len)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "STORK_MAXLEN=", 13))
			env[k++] = environ[i];
	snprintf(maxvar, maxvar_len, "STORK_MAXLEN=%" PRIu64, maxlen);
	env[k++] = maxvar;
	env[k] = NULL;
	return env;
}

static int spawn(struct exect *t, const char *url, uint64_t maxlen, int out, int err,
		 pid_t *ret_pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	char maxvar[64], **argv = NULL, **env = NULL;
	int r;

	argv = calloc(t->argc + 2, sizeof(*argv));
	env = child_env(maxlen, maxvar, sizeof(maxvar));
	if (!argv || !env) {
		free(argv);
		free(env);
		return -ENOMEM;
	}
	memcpy(argv, t->argv, t->argc * sizeof(*argv));
	argv[t->argc] = (char *)url;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, out, 1);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, err, 2);
	/* Nothing else of ours reaches the command (libcurl's sockets are not all CLOEXEC). */
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!r)
		r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						      POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setpgroup(&at, 0);
	if (!r)
		r = posix_spawnattr_setsigmask(&at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&at, &dfl);
	if (!r)
		r = posix_spawnp(ret_pid, argv[0], &fa, &at, argv, env);
	if (r)
		stork_errorf("%s: cannot run %s: %s", url, argv[0], storkfs_strerror(-r));
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	free(env);
	return r ? (r == ENOMEM ? -ENOMEM : -EIO) : 0;
}

struct child {
	pid_t pid;
	int out, err; /* our ends, -1 once at EOF */
	char detail[DETAIL_LEN];
	size_t dlen;
	bool dline; /* the first line is complete */
};

/* Keep the first line of stderr, drain the rest. */
static void read_err(struct child *c)
{
	char buf[4096];
	ssize_t n = read(c->err, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(c->err);
		c->err = -1;
		return;
	}
	for (ssize_t i = 0; i < n && !c->dline; i++) {
		if (buf[i] == '\n') {
			c->dline = true;
		} else if (c->dlen + 1 < sizeof(c->detail)) {
			c->detail[c->dlen++] = (unsigned char)buf[i] < 0x20 ? ' ' : buf[i];
			c->detail[c->dlen] = '\0';
		}
	}
}

static int exec_get(void *tctx, const char *url, uint64_t maxlen, fetch_write_fn fn, void *fnctx)
{
	struct exect *t = tctx;
	struct child c = {.pid = -1, .out = -1, .err = -1};
	int op[2] = {-1, -1}, ep[2] = {-1, -1}, status = 0, r = 0;
	int64_t start = mono_ms(), last = start, win_start = start;
	uint64_t win_bytes = 0;
	uint64_t got = 0;
	uint8_t *buf = NULL;
	bool killed = false;

	pthread_mutex_lock(&t->lock);
	r = t->cancelled ? -ECANCELED : 0;
	pthread_mutex_unlock(&t->lock);
	if (r < 0) {
		stork_errorf("%s: cancelled: the transport is shutting down", url);
		return r;
	}
	buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		r = -errno;
		stork_errorf("%s: cannot make a pipe: %s", url, storkfs_strerror(r));
		goto out;
	}
	r = spawn(t, url, maxlen, op[1], ep[1], &c.pid);
	close(op[1]);
	close(ep[1]);
	op[1] = ep[1] = -1;
	c.out = op[0];
	c.err = ep[0];
	op[0] = ep[0] = -1;
	if (r < 0) {
		c.pid = -1;
		goto out;
	}
	while (c.out >= 0 || c.err >= 0) {
		struct pollfd p[3] = {
		    {.fd = c.out, .events = POLLIN},
		    {.fd = c.err, .events = POLLIN},
		    {.fd = t->cancel_pipe[0], .events = POLLIN},
		};
		int64_t now = mono_ms(), wait = last + t->low_speed_time * 1000 - now;

		/* As libcurl's low-speed abort: below low_speed_limit on average over a window of
		 * low_speed_time (nothing at all is the same, sooner: `last` above). */
		if (now - win_start >= t->low_speed_time * 1000) {
			if (win_bytes == 0) {
				stork_errorf("%s: stalled: nothing for %ld s", url,
					     t->low_speed_time);
				r = -ETIMEDOUT;
				break;
			}
			if (win_bytes <
			    (uint64_t)t->low_speed_limit * (uint64_t)t->low_speed_time) {
				stork_errorf("%s: stalled: below %ld B/s for %ld s", url,
					     t->low_speed_limit, t->low_speed_time);
				r = -ETIMEDOUT;
				break;
			}
			win_start = now;
			win_bytes = 0;
		}
		/* (after the check above the window ends in the future) */
		if (win_start + t->low_speed_time * 1000 - now < wait)
			wait = win_start + t->low_speed_time * 1000 - now;
		if (t->timeout && start + t->timeout * 1000 - now < wait)
			wait = start + t->timeout * 1000 - now;
		if (wait <= 0) {
			if (t->timeout && now >= start + t->timeout * 1000)
				stork_errorf("%s: took longer than the %ld s limit", url,
					     t->timeout);
			else
				stork_errorf("%s: stalled: nothing for %ld s", url,
					     t->low_speed_time);
			r = -ETIMEDOUT;
			break;
		}
		if (poll(p, 3, (int)(wait > 1000 ? 1000 : wait)) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			stork_errorf("%s: poll: %s", url, storkfs_strerror(r));
			break;
		}
		if (p[2].revents) {
			stork_errorf("%s: cancelled: the transport is shutting down", url);
			r = -ECANCELED;
			break;
		}
		if (c.err >= 0 && p[1].revents)
			read_err(&c);
		if (c.out >= 0 && p[0].revents) {
			ssize_t n = read(c.out, buf, CHUNK);

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				close(c.out);
				c.out = -1;
				continue;
			}
			last = mono_ms();
			win_bytes += (uint64_t)n;
			/* The limit comes before fn. */
			if ((uint64_t)n > maxlen - got) {
				stork_errorf("%s: sent more than the limit of %" PRIu64 " bytes",
					     url, maxlen);
				r = STORK_ETOOBIG;
				break;
			}
			got += (uint64_t)n;
			stork_error_clear();
			r = fn(fnctx, buf, (size_t)n);
			if (r < 0)
				break;
		}
	}
	killed = r < 0; /* killed below, with its whole group */
out:
	if (c.out >= 0)
		close(c.out);
	if (c.err >= 0)
		close(c.err);
	for (int i = 0; i < 2; i++) {
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	if (c.pid > 0 && !killed) {
		/* Both pipes closed: it should be exiting; one that lingers is bounded too. Wait
		 * without reaping, so that its pid (its group's id) cannot be reused before the
		 * group's leftovers are killed below. */
		int64_t until = mono_ms() + t->low_speed_time * 1000;
		siginfo_t si;

		for (;;) {
			si.si_pid = 0;
			if (waitid(P_PID, (id_t)c.pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
			    errno != EINTR)
				break;
			if (si.si_pid == c.pid || mono_ms() >= until)
				break;
			usleep(5000);
		}
		if (si.si_pid != c.pid) {
			stork_errorf("%s: closed its output but did not exit within %ld s", url,
				     t->low_speed_time);
			r = -ETIMEDOUT;
		}
	}
	if (c.pid > 0) {
		kill(-c.pid, SIGKILL); /* the whole group: an adapter's children go too */
		while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	free(buf);
	if (r < 0 || c.pid <= 0)
		return r;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
		stork_errorf("%s: not found%s%s", url, c.dlen ? ": " : "", c.detail);
		return -ENOENT;
	}
	if (WIFEXITED(status))
		stork_errorf("%s: %s (exit %d)", url, c.dlen ? c.detail : "failed",
			     WEXITSTATUS(status));
	else
		stork_errorf("%s: %s (killed by signal %d)", url, c.dlen ? c.detail : "failed",
			     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -EIO;
}

static void exec_cancel(void *tctx)
{
	struct exect *t = tctx;
	bool first;

	pthread_mutex_lock(&t->lock);
	first = !t->cancelled;
	t->cancelled = true;
	pthread_mutex_unlock(&t->lock);
	if (first && write(t->cancel_pipe[1], "x", 1) < 0) {
		/* Full or broken: either way readers see it or the flag. */
	}
}

static void exec_free(void *tctx)
{
	struct exect *t = tctx;

	if (!t)
		return;
	for (int i = 0; i < 2; i++)
		if (t->cancel_pipe[i] >= 0)
			close(t->cancel_pipe[i]);
	pthread_mutex_destroy(&t->lock);
	free(t->scheme);
	free(t->argv);
	free(t->words);
	free(t);
}

static const struct fetch_transport exec_transport = {
    .name = "exec",
    .handles = exec_handles,
    .get = exec_get,
    .free = exec_free,
    .cancel = exec_cancel,
};

int fetch_exec_transport_new(const char *scheme, const char *command, const struct fetch_opts *o,
			     struct fetch_transport *ret_t)
{
	struct exect *t;
	size_t n = 0;
	char *p;
	int r;

	if (!scheme || !scheme[0] || strchr(scheme, ':') || !command) {
		stork_errorf("exec transport: \"%s\": expected a scheme name (e.g. bt+http)",
			     scheme ? scheme : "");
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cancel_pipe[0] = t->cancel_pipe[1] = -1;
	pthread_mutex_init(&t->lock, NULL);
	t->scheme = strdup(scheme);
	t->words = strdup(command);
	t->argv = calloc(strlen(command) / 2 + 2, sizeof(*t->argv));
	if (!t->scheme || !t->words || !t->argv) {
		r = -ENOMEM;
		goto fail;
	}
	t->scheme_len = strlen(scheme);
	for (p = t->words; *p;) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		t->argv[n++] = p;
		while (*p && *p != ' ')
			p++;
	}
	t->argc = n;
	if (n == 0) {
		stork_errorf("exec transport %s: an empty command", scheme);
		r = -EINVAL;
		goto fail;
	}
	if (pipe2(t->cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		stork_errorf("exec transport %s: cannot make a pipe: %s", scheme,
			     storkfs_strerror(r));
		goto fail;
	}
	t->low_speed_time = o && o->low_speed_time > 0 ? o->low_speed_time : DEFAULT_LOW_TIME;
	t->low_speed_limit = o && o->low_speed_limit > 0 ? o->low_speed_limit : DEFAULT_LOW_LIMIT;
	t->timeout = o && o->timeout > 0 ? o->timeout : 0;
	*ret_t = exec_transport;
	ret_t->tctx = t;
	return 0;
fail:
	exec_free(t);
	return r;
}
