/* fetch/url.c: URLs for the sources: a repository path joined to a source's base, a local
 * directory as a file:// URL, and which repository files change in place (what caches on the
 * way must revalidate).
 *
 * Paths are percent-encoded here and never decoded anywhere: a name such as "%2e%2e" reaches
 * a server as "%252e%252e". Which paths may be joined at all is verify_check_relpath's
 * decision, made before a request is tried (fetch/try.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch/internal.h"

/* Percent-encode bytes outside a conservative set; '/' is kept. */
static size_t encode(char *out, const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("/._~+:-", c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}

char *fetch_url_join(const char *base, const char *path)
{
	size_t blen = strlen(base);
	char *url = malloc(blen + 1 + 3 * strlen(path) + 1);

	if (!url)
		return NULL;
	memcpy(url, base, blen);
	url[blen] = '/';
	encode(url + blen + 1, path);
	return url;
}

/* A local directory becomes a file:// URL with an absolute, percent-encoded path. */
char *fetch_dir_url(const char *path)
{
	char *abs = NULL, *url = NULL, *cwd = NULL;
	size_t len;

	if (path[0] == '/') {
		abs = strdup(path);
	} else {
		cwd = getcwd(NULL, 0);
		if (!cwd)
			return NULL;
		len = strlen(cwd) + 1 + strlen(path) + 1;
		abs = malloc(len);
		if (abs)
			snprintf(abs, len, "%s/%s", cwd, path);
	}
	if (!abs)
		goto out;
	url = malloc(strlen("file://") + 3 * strlen(abs) + 1);
	if (!url)
		goto out;
	memcpy(url, "file://", 7);
	encode(url + 7, abs);
out:
	free(cwd);
	free(abs);
	return url;
}

bool fetch_url_is_volatile(const char *url)
{
	const char *meta = NULL, *name, *p;
	size_t len;

	for (p = strstr(url, "metadata/"); p; p = strstr(p + 1, "metadata/"))
		if (p == url || p[-1] == '/')
			meta = p;
	if (!meta)
		return false;
	name = strrchr(meta, '/') + 1;
	len = strlen(name);
	if (len < 5 || strcmp(name + len - 5, ".json"))
		return false;
	if (len >= 10 && !strcmp(name + len - 10, ".root.json"))
		return true; /* root probes: a 404 must not be cached */
	for (p = name; *p >= '0' && *p <= '9'; p++)
		;
	return !(p > name && *p == '.'); /* "7.snapshot.json" never changes */
}
