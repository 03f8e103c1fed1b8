/* fs/log.c: what the daemon tells the world: its log lines (stderr in the foreground, syslog once
 * detached, both while a detached daemon starts), the fetcher's lines, its verdict on start-up to
 * the parent that waits for it (fsd_detach, fsd_report_ready), and its state to systemd.
 *
 * The fork happens first, because the fetcher's I/O thread and the store's LMDB environment do
 * not survive a fork; the parent waits on a pipe for the child's verdict and exits with it,
 * so `storkfs ... && ls MOUNTPOINT` works and errors reach the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/daemon.h"

void fsd_log(struct fsd *d, const char *fmt, ...)
{
	char line[2048], shown[sizeof(line)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Every source is named without its password already (fetch_url_shown): this is the
	 * net under it, for a URL quoted in some other detail. */
	fetch_url_shown(line, shown, sizeof(shown));
	if (d->foreground || (d->starting && pthread_equal(pthread_self(), d->main_thread)))
		fprintf(stderr, "storkfs: %s\n", shown);
	if (!d->foreground)
		syslog(LOG_ERR, "%s", shown);
}

void fsd_fetch_log(void *ctx, const char *line)
{
	struct fsd *d = ctx;
	char shown[2048];

	/* While a detached daemon starts, the terminal gets its verdict, which names each
	 * mirror's failure ("every mirror failed: ..."): a source's own line would say it
	 * twice there. It goes to syslog as ever. */
	if (d->starting && !d->foreground) {
		fetch_url_shown(line, shown, sizeof(shown));
		syslog(LOG_ERR, "%s", shown);
		return;
	}
	fsd_log(d, "%s", line);
}

/* Tell systemd (Type=notify) that the mount is ready, or that it stops: one datagram to
 * $NOTIFY_SOCKET, as sd_notify(3) documents. Nothing when not run by systemd. */
void fsd_notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t salen;
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* the abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) {
		/* systemd is gone or not listening: nothing to tell */
	}
	close(fd);
}

/* Detach: the parent waits for the child's verdict on *ret_fd and exits with it. */
int fsd_detach(int *ret_fd)
{
	int p[2];
	pid_t pid;
	char c = 1;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = 1; /* the child died before mounting */
		_exit(c);
	}
	close(p[0]);
	setsid();
	*ret_fd = p[1];
	return 0;
}

void fsd_report_ready(int fd, int code)
{
	char c = (char)code;
	int null;

	if (fd < 0)
		return;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (write(fd, &c, 1) < 0) {
		/* the parent is gone: nothing to tell */
	}
	close(fd);
}
