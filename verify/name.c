/* verify/name.c: package names, versions, role names and name patterns.
 *
 * Names become directory and file names on the mount and in the repository, so each kind has
 * a small documented charset (verify/verify.h, verify/README.md) checked byte by byte.
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/error.h"
#include "verify/internal.h"
#include "verify/name.h"
#include "verify/text.h"

struct name_kind {
	const char *what;    /* "package name" */
	size_t max;	     /* bytes */
	const char *first;   /* extra characters allowed first, besides alnum */
	const char *rest;    /* extra characters allowed after the first, besides alnum */
	bool lower;	     /* only lower-case letters */
	const char *allowed; /* for the message */
};

static const struct name_kind package_kind = {
    "package name", 128,   "",
    "+._-",	    false, "letters, digits and + . _ -; first must be a letter or digit",
};
static const struct name_kind version_kind = {
    "version", 128,   "",
    "+._~:-",  false, "letters, digits and + . _ ~ : -; first must be a letter or digit",
};
static const struct name_kind role_kind = {
    "role name", 64,   "",
    "_-",	 true, "lower-case letters, digits and _ -; first must be a letter or digit",
};
static const struct name_kind pattern_kind = {
    "name pattern",
    128,
    "*?[",
    "+._-*?[]!",
    false,
    "letters, digits, + . _ - and the wildcards * ? [...]; first must be a letter, digit, "
    "* ? or [",
};

static bool is_alnum(char c, bool lower)
{
	if (c >= '0' && c <= '9')
		return true;
	if (c >= 'a' && c <= 'z')
		return true;
	return !lower && c >= 'A' && c <= 'Z';
}

static int check(const struct name_kind *k, const char *name)
{
	char q[200], ch[8];
	size_t i, at, len = strlen(name);
	const char *bidi;

	text_quote(name, q, sizeof(q));
	if (len == 0) {
		stork_errorf("%s \"\": empty", k->what);
		return STORK_ENAME;
	}
	if (len > k->max) {
		stork_errorf("%s \"%s\": %zu bytes is too long (at most %zu)", k->what, q, len,
			     k->max);
		return STORK_ENAME;
	}
	for (i = 0; i < len; i++) {
		char c = name[i];
		const char *extra = i == 0 ? k->first : k->rest;

		if (is_alnum(c, k->lower) || strchr(extra, c))
			continue;
		bidi = verify_bidi_control(name + i, &at);
		if (bidi && at == 0) {
			stork_errorf("%s \"%s\": character %s at position %zu is not allowed "
				     "(a bidirectional control: it makes names display as others; "
				     "allowed: %s)",
				     k->what, q, bidi, i, k->allowed);
			return STORK_ENAME;
		}
		if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
			snprintf(ch, sizeof(ch), "\\x%02x", (unsigned char)c);
		else if (c == '\'' || c == '\\')
			snprintf(ch, sizeof(ch), "\\%c", c);
		else
			snprintf(ch, sizeof(ch), "%c", c);
		stork_errorf("%s \"%s\": character '%s' at position %zu is not allowed "
			     "(allowed: %s)",
			     k->what, q, ch, i, k->allowed);
		return STORK_ENAME;
	}
	return 0;
}

int verify_check_package_name(const char *name)
{
	return check(&package_kind, name);
}

int verify_check_version(const char *version)
{
	int r = check(&version_kind, version);

	if (r == 0 && strcmp(version, "latest") == 0) {
		stork_errorf("version \"latest\": reserved (the mount shows the newest version "
			     "under that name)");
		return STORK_ENAME;
	}
	return r;
}

int verify_check_version_publish(const char *version)
{
	const char *colon, *upstream, *hyphen;
	unsigned long epoch;
	char *end;
	int r = verify_check_version(version);

	if (r < 0)
		return r;
	colon = strchr(version, ':');
	upstream = colon ? colon + 1 : version;
	if (colon) {
		errno = 0;
		epoch = strtoul(version, &end, 10);
		if (colon == version) {
			stork_errorf("version \"%s\": the epoch before ':' is empty", version);
			return STORK_ENAME;
		}
		if (end != colon) {
			stork_errorf("version \"%s\": the epoch before the first ':' is not a "
				     "number (a ':' is allowed only after an epoch, as in 2:1.0-1)",
				     version);
			return STORK_ENAME;
		}
		if (errno || epoch > INT_MAX) {
			stork_errorf("version \"%s\": the epoch is above %d, which dpkg refuses",
				     version, INT_MAX);
			return STORK_ENAME;
		}
		if (!*upstream) {
			stork_errorf("version \"%s\": nothing after the epoch's ':'", version);
			return STORK_ENAME;
		}
	}
	hyphen = strrchr(upstream, '-');
	if (hyphen == upstream) {
		stork_errorf("version \"%s\": the upstream version before the revision is empty",
			     version);
		return STORK_ENAME;
	}
	if (hyphen && !hyphen[1]) {
		stork_errorf("version \"%s\": the revision after the last '-' is empty", version);
		return STORK_ENAME;
	}
	return 0;
}

int verify_check_role_name(const char *role)
{
	static const char *const reserved[] = {"root", "targets", "snapshot", "timestamp"};
	size_t i;
	int r = check(&role_kind, role);

	if (r < 0)
		return r;
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		if (strcmp(role, reserved[i]) == 0) {
			stork_errorf("role name \"%s\": reserved for a top-level TUF role", role);
			return STORK_ENAME;
		}
	}
	return 0;
}

int verify_check_name_pattern(const char *pattern)
{
	size_t i, open = 0;
	bool in_bracket = false;
	int r = check(&pattern_kind, pattern);

	if (r < 0)
		return r;
	/* Brackets must pair up and not nest; '!' only negates a bracket expression. */
	for (i = 0; pattern[i]; i++) {
		char c = pattern[i];

		if (c == '[') {
			if (in_bracket)
				goto bad;
			in_bracket = true;
			open = i;
		} else if (c == ']') {
			if (!in_bracket || i == open + 1 ||
			    (i == open + 2 && pattern[open + 1] == '!'))
				goto bad;
			in_bracket = false;
		} else if (c == '!' && !(in_bracket && i == open + 1)) {
			goto bad;
		}
	}
	if (in_bracket) {
		i = open;
		goto bad;
	}
	return 0;
bad:
	stork_errorf("name pattern \"%s\": '%c' at position %zu is misplaced (use [abc], [!abc] "
		     "or [a-z])",
		     pattern, pattern[i], i);
	return STORK_ENAME;
}

bool verify_name_matches(const char *pattern, const char *name)
{
	return fnmatch(pattern, name, 0) == 0;
}

char *verify_target_path(const char *name, const char *version)
{
	char *p;

	if (asprintf(&p, "%s/%s.json", name, version) < 0)
		return NULL;
	return p;
}

int verify_target_split(const char *path, char **ret_name, char **ret_version)
{
	const char *slash = strchr(path, '/');
	size_t len = strlen(path), nlen, vlen;
	char *name = NULL, *version = NULL, q[200];
	int r;

	text_quote(path, q, sizeof(q));
	if (!slash || len < 5 || strcmp(path + len - 5, ".json") != 0 ||
	    (size_t)(slash - path) + 1 + 5 > len || strchr(slash + 1, '/')) {
		stork_errorf("target path \"%s\": not NAME/VERSION.json", q);
		return STORK_EFORMAT;
	}
	nlen = (size_t)(slash - path);
	vlen = len - nlen - 1 - 5;
	name = strndup(path, nlen);
	version = strndup(slash + 1, vlen);
	if (!name || !version) {
		r = -ENOMEM;
		goto out;
	}
	r = verify_check_package_name(name);
	if (r == 0)
		r = verify_check_version(version);
	if (r < 0) {
		stork_error_prefix("target path \"%s\"", q);
		r = STORK_EFORMAT;
		goto out;
	}
	*ret_name = name;
	*ret_version = version;
	name = version = NULL;
out:
	free(name);
	free(version);
	return r;
}
