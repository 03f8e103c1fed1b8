/* fetch/credentials.c: credentials in URLs and in a netrc file.
 *
 * A mirror, peer or proxy URL may carry a user name and password ("http://user:pw@host/");
 * libcurl sends them (HTTP basic authentication), but every name of a source shown to people
 * (log lines, error details, stats, the mount's attributes) goes through fetch_url_shown,
 * which replaces the userinfo by "***". A netrc file (curl's format) keeps passwords off the
 * command line; it is refused when other users could read it. fetch/README.md, "Credentials".
 */
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch/fetch.h"

#define HIDDEN "***"

/* Where the authority that starts at s (just after "://") ends: the host part ends at '/',
 * '?' or '#'; in a list of URLs (an option, a message) also at a separator or a space. */
static size_t authority_len(const char *s)
{
	return strcspn(s, "/?#,;|\" \t\n");
}

bool fetch_url_userinfo(const char *s, size_t *ret_len)
{
	size_t alen = authority_len(s), at = 0;
	bool found = false;

	for (size_t i = 0; i < alen; i++) {
		if (s[i] == '@') {
			at = i;
			found = true;
		}
	}
	if (found)
		*ret_len = at;
	return found;
}

const char *fetch_url_shown(const char *text, char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return buf;
	for (const char *p = text; *p && o + 1 < len;) {
		size_t ulen;

		if (!strncmp(p, "://", 3) && fetch_url_userinfo(p + 3, &ulen)) {
			size_t n = snprintf(buf + o, len - o, "://" HIDDEN);

			o = o + n < len ? o + n : len - 1;
			p += 3 + ulen; /* now at the '@' */
			continue;
		}
		buf[o++] = *p++;
	}
	buf[o] = '\0';
	return buf;
}

char *fetch_url_shown_dup(const char *text)
{
	/* "***" replaces at least the empty userinfo: 3 more bytes per "://" at most. */
	size_t n = 0, len;
	char *buf;

	for (const char *p = strstr(text, "://"); p; p = strstr(p + 3, "://"))
		n++;
	len = strlen(text) + 3 * n + 1;
	buf = malloc(len);
	return buf ? (char *)fetch_url_shown(text, buf, len) : NULL;
}

int fetch_netrc_check(const char *path)
{
	struct stat st;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		stork_errorf("netrc %s: %s", path, storkfs_strerror(-errno));
		r = -EINVAL;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		stork_errorf("netrc %s: not a regular file", path);
		r = -EINVAL;
	} else if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		/* As ftp(1) refuses a .netrc with a password that others can read. */
		stork_errorf("netrc %s: readable or writable by other users (mode %04o): its "
			     "passwords would be theirs; chmod 600 %s",
			     path, (unsigned)(st.st_mode & 07777), path);
		r = -EINVAL;
	} else if (st.st_uid != geteuid() && st.st_uid != 0) {
		stork_errorf("netrc %s: owned by uid %u, not by this user (%u) or root", path,
			     (unsigned)st.st_uid, (unsigned)geteuid());
		r = -EINVAL;
	}
out:
	if (fd >= 0)
		close(fd);
	return r;
}
