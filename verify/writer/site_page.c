/* verify/writer/site_page.c: the browse site's HTML (verify/writer/site.h). Plain HTML and CSS,
 * no script: the pages read the same from file:// as behind any web server. Every untrusted
 * string goes through html_text() or url_part(); nothing from a package is ever written raw.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verify/hash.h"
#include "verify/text.h"
#include "verify/trusted.h"
#include "verify/writer/site.h"

/* How many names a list of changed files shows before "and N more". */
#define CHANGES_SHOWN 100

static void put(struct site_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		char *p;

		while (b->n + n + 1 > ncap)
			ncap *= 2;
		p = realloc(b->p, ncap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = ncap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void puts_(struct site_buf *b, const char *s)
{
	put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct site_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		put(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);

	if (!big) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	put(b, big, (size_t)n);
	free(big);
}

/* Untrusted text as HTML text or attribute value: markup characters as entities, control
 * characters (C0, DEL, C1), bidirectional controls and bytes that are not UTF-8 as visible
 * \xNN or \u{NNNN}, so that what a name holds is seen and nothing in it is markup. */
static void html_text(struct site_buf *b, const char *s)
{
	size_t len = strlen(s), i = 0, n;
	uint32_t cp;

	while (i < len) {
		n = verify_utf8_char(s + i, len - i, &cp);
		if (!n) {
			putf(b, "\\x%02x", (unsigned char)s[i]);
			i++;
			continue;
		}
		if (cp < 0x20 || cp == 0x7f)
			putf(b, "\\x%02x", (unsigned)cp);
		else if ((cp >= 0x80 && cp < 0xa0) || (cp >= 0x202a && cp <= 0x202e) ||
			 (cp >= 0x2066 && cp <= 0x2069))
			putf(b, "\\u{%04x}", (unsigned)cp);
		else if (cp == '<')
			puts_(b, "&lt;");
		else if (cp == '>')
			puts_(b, "&gt;");
		else if (cp == '&')
			puts_(b, "&amp;");
		else if (cp == '"')
			puts_(b, "&quot;");
		else if (cp == '\'')
			puts_(b, "&#39;");
		else
			put(b, s + i, n);
		i += n;
	}
}

/* Untrusted text s as HTML text, between the markup open and close. */
static void html_in(struct site_buf *b, const char *open, const char *s, const char *close)
{
	puts_(b, open);
	html_text(b, s);
	puts_(b, close);
}

/* A string as one path segment or fragment of a relative URL: everything but unreserved
 * characters percent-encoded (the result needs no HTML escaping). */
static void url_part(struct site_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			put(b, (const char *)&c, 1);
		else
			putf(b, "%%%02X", c);
	}
}

static void fmt_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%d %H:%M UTC", &tm))
		snprintf(out, len, "%lld", (long long)t);
}

static void head(struct site_buf *b, const char *title, const char *subtitle)
{
	puts_(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		 "style-src 'unsafe-inline'\">\n"
		 "<meta name=\"viewport\" content=\"width=device-width\">\n<title>");
	html_text(b, title);
	if (subtitle) {
		puts_(b, " ");
		html_text(b, subtitle);
	}
	puts_(b,
	      "</title>\n<style>\n"
	      "body { font-family: sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; "
	      "color: #222; }\n"
	      "table { border-collapse: collapse; margin: 1em 0; }\n"
	      "th, td { text-align: left; padding: .3em .8em; border-bottom: 1px solid #ddd; "
	      "vertical-align: top; }\n"
	      "code, pre { font-family: monospace; }\n"
	      "pre { background: #f4f4f4; padding: 1em; overflow-x: auto; }\n"
	      ".unsigned { background: #fff8dc; border: 1px solid #e0c060; padding: .5em 1em; }\n"
	      ".warn { color: #a00; font-weight: bold; }\n"
	      "section.version { border-top: 2px solid #888; margin-top: 2em; }\n"
	      "ul.changes { columns: 2; }\n"
	      "</style>\n</head>\n<body>\n");
	puts_(b,
	      "<p class=\"unsigned\">These pages are an unsigned convenience, generated from the "
	      "repository's signed metadata by <code>stork</code>. Clients never read them and "
	      "they prove nothing: what a node mounts is checked against the signed metadata "
	      "from its pinned root (<code>stork verify</code>, <code>stork ls</code>).</p>\n");
}

static void tail(struct site_buf *b, time_t now)
{
	char when[40];

	fmt_time(now, when, sizeof(when));
	putf(b, "<p><small>Generated %s.</small></p>\n</body>\n</html>\n", when);
}

/* "role <code title=FULL>16 hex</code>" */
static void signer(struct site_buf *b, const struct verify_target *t)
{
	html_in(b, "<span class=\"role\">", t->role, "</span> ");
	html_in(b, "<code class=\"keyid\" title=\"", t->keyid, "\">");
	putf(b, "%.16s", t->keyid); /* a key id is hex: checked when the metadata was parsed */
	puts_(b, "</code>");
}

/* ------------------------------------------------------------------------------------------ */
/* The index. */

bool site_has_package(const struct site_ver *all, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(all[mid].t.name, name);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void role_row(struct site_buf *b, const char *name, const struct meta *m, time_t now,
		     int64_t validity)
{
	char when[40];
	int64_t left;

	html_in(b, "<tr class=\"role\"><td>", name, "</td>");
	if (!m) {
		puts_(b, "<td>-</td><td>-</td><td>nothing signed yet</td></tr>\n");
		return;
	}
	fmt_time(m->expires, when, sizeof(when));
	putf(b, "<td>%" PRIu64 "</td><td>%s</td>", m->version, when);
	left = (int64_t)(m->expires - now);
	if (left <= 0)
		puts_(b,
		      "<td class=\"warn\">expired: clients refuse it until it is re-signed</td>");
	else if (left < validity / 4)
		putf(b,
		     "<td class=\"warn\">expires in %" PRId64 " h %" PRId64 " min: re-sign it "
		     "soon</td>",
		     left / 3600, left / 60 % 60);
	else if (left < 2 * 86400)
		putf(b, "<td>%" PRId64 " hours left</td>", left / 3600);
	else
		putf(b, "<td>%" PRId64 " days left</td>", left / 86400);
	puts_(b, "</tr>\n");
}

static void keyids(struct site_buf *b, const struct meta_delegation *d)
{
	for (size_t k = 0; k < d->nkeyids; k++)
		html_in(b, k ? "<br><code>" : "<code>", d->keyids[k], "</code>");
}

void site_index_page(struct site_buf *b, struct verify_client *c, const struct verify_source *src,
		     const struct site_ver *all, size_t n, time_t now, const int64_t *expiry,
		     const uint8_t *roothash)
{
	static const enum meta_type types[META_NROLES] = {META_ROOT, META_TARGETS, META_SNAPSHOT,
							  META_TIMESTAMP};
	const struct meta *root = trusted_meta(c, META_ROOT), *m;
	const struct meta_delegation *d;
	size_t npkg = 0;
	char hex[VERIFY_HASH_HEX];

	for (size_t i = 0; i < n; i++)
		npkg += i == 0 || strcmp(all[i].t.name, all[i - 1].t.name);
	head(b, "Packages", NULL);
	putf(b, "<h1>Packages</h1>\n<p id=\"counts\">%zu packages, %zu versions.</p>\n", npkg, n);
	puts_(b, "<table id=\"packages\">\n<tr><th>Package</th><th>Latest version</th>"
		 "<th>Signed by</th><th>Description</th></tr>\n");
	for (size_t i = 0; i < n; i++) {
		const struct site_ver *v = &all[i];

		if (i + 1 < n && !strcmp(all[i + 1].t.name, v->t.name))
			continue; /* the last of a name is its latest */
		puts_(b, "<tr class=\"package\"><td class=\"name\"><a href=\"p/");
		url_part(b, v->t.name);
		html_in(b, ".html\">", v->t.name, "</a></td>");
		html_in(b, "<td class=\"latest\">", v->t.version, "</td>");
		puts_(b, "<td>");
		signer(b, &v->t);
		html_in(b, "</td><td class=\"summary\">", v->summary ? v->summary : "",
			"</td></tr>\n");
	}
	puts_(b, "</table>\n");

	puts_(b, "<h2>Signed metadata</h2>\n<table id=\"metadata\">\n<tr><th>Role</th>"
		 "<th>Version</th><th>Expires</th><th>Status</th></tr>\n");
	for (int i = 0; i < META_NROLES; i++)
		role_row(b, meta_role_names[i], trusted_meta(c, types[i]), now, expiry[i]);
	for (size_t i = 0; (d = trusted_delegation(c, i)); i++) {
		m = NULL;
		if (trusted_load_role(c, src, d, &m) < 0)
			m = NULL;
		role_row(b, d->name, m, now, expiry[META_ROLE_TARGETS]);
	}
	puts_(b, "</table>\n");

	puts_(b, "<h2>Keys</h2>\n<table id=\"keys\">\n<tr><th>Role</th><th>Threshold</th>"
		 "<th>Key ids</th></tr>\n");
	for (int i = 0; root && i < META_NROLES; i++) {
		putf(b, "<tr><td>%s</td><td>%" PRIu64 "</td><td>", meta_role_names[i],
		     root->roles[i].threshold);
		keyids(b, &root->roles[i]);
		puts_(b, "</td></tr>\n");
	}
	for (size_t i = 0; (d = trusted_delegation(c, i)); i++) {
		html_in(b, "<tr><td>", d->name, " (packages ");
		for (size_t k = 0; k < d->npaths; k++) {
			const char *p = d->paths[k];
			size_t len = strlen(p);
			char *pat =
			    strndup(p, len >= 2 && !strcmp(p + len - 2, "/*") ? len - 2 : len);

			puts_(b, k ? ", " : "");
			html_text(b, pat ? pat : p);
			free(pat);
		}
		putf(b, ")</td><td>%" PRIu64 "</td><td>", d->threshold);
		keyids(b, d);
		puts_(b, "</td></tr>\n");
	}
	puts_(b, "</table>\n");

	puts_(b, "<h2>Using this repository</h2>\n<p>A node trusts the repository through its "
		 "first root, fetched once over a channel you trust and pinned. "
		 "<a href=\"../metadata/1.root.json\">metadata/1.root.json</a>");
	if (roothash) {
		verify_hex(roothash, VERIFY_HASH_LEN, hex);
		putf(b, " has the SHA-256 <code id=\"roothash\">%s</code>", hex);
	}
	puts_(b, ". <var>MIRROR</var> is the URL this repository is served at.</p>\n<pre>"
		 "curl -fsSo /etc/stork/root.json MIRROR/metadata/1.root.json\n");
	if (roothash)
		putf(b, "echo '%s  /etc/stork/root.json' | sha256sum -c\n", hex);
	puts_(b, "stork verify --root /etc/stork/root.json MIRROR\n"
		 "mkdir -p /stork\n"
		 "storkfs -o root=/etc/stork/root.json,store=/var/cache/storkfs MIRROR /stork\n"
		 "</pre>\n");
	tail(b, now);
}

/* ------------------------------------------------------------------------------------------ */
/* A package's page. */

static void relation(struct site_buf *b, const char *title, const struct verify_depgroup *g,
		     size_t ng, const struct site_ver *all, size_t nall)
{
	if (!ng)
		return;
	puts_(b, "<dt>");
	puts_(b, title);
	puts_(b, "</dt><dd class=\"deps\">");
	for (size_t i = 0; i < ng; i++) {
		puts_(b, i ? ", " : "");
		for (size_t k = 0; k < g[i].n; k++) {
			const struct verify_dep *d = &g[i].alts[k];
			bool link = site_has_package(all, nall, d->name);

			puts_(b, k ? " | " : "");
			if (link) {
				puts_(b, "<a href=\"");
				url_part(b, d->name);
				puts_(b, ".html\">");
			}
			html_text(b, d->name);
			if (link)
				puts_(b, "</a>");
			if (d->op && d->version) {
				html_in(b, " (", d->op, " ");
				html_in(b, "", d->version, ")");
			}
		}
	}
	puts_(b, "</dd>\n");
}

static bool entry_changed(const struct verify_entry *a, const struct verify_entry *b)
{
	if (a->type != b->type || a->mode != b->mode)
		return true;
	if (a->type == VERIFY_FILE)
		return a->size != b->size || memcmp(a->hash, b->hash, VERIFY_HASH_LEN) != 0;
	if (a->type == VERIFY_SYMLINK)
		return strcmp(a->target ? a->target : "", b->target ? b->target : "") != 0;
	return false;
}

enum { ADDED, REMOVED, CHANGED };

/* Walk the two sorted entry lists; with out, list the entries of kind `want`. @return how
 * many entries are of that kind. */
static size_t changes(const struct verify_manifest *old, const struct verify_manifest *new,
		      int want, struct site_buf *out)
{
	size_t i = 0, j = 0, count = 0;

	while (i < old->n || j < new->n) {
		int c = i == old->n   ? 1
			: j == new->n ? -1
				      : strcmp(old->entries[i].path, new->entries[j].path);
		const char *path = NULL;

		if (c < 0) {
			if (want == REMOVED)
				path = old->entries[i].path;
			i++;
		} else if (c > 0) {
			if (want == ADDED)
				path = new->entries[j].path;
			j++;
		} else {
			if (want == CHANGED && entry_changed(&old->entries[i], &new->entries[j]))
				path = new->entries[j].path;
			i++;
			j++;
		}
		if (!path)
			continue;
		if (out && count < CHANGES_SHOWN) {
			html_in(out, "<li>", path, "</li>");
		}
		count++;
	}
	if (out && count > CHANGES_SHOWN)
		putf(out, "<li>and %zu more</li>", count - CHANGES_SHOWN);
	return count;
}

static void change_list(struct site_buf *b, const struct site_ver *prev, const struct site_ver *v,
			int kind)
{
	static const char *const title[] = {"added", "removed", "changed"};
	size_t n = changes(prev->m, v->m, kind, NULL);

	putf(b, "<h4>%zu %s</h4>\n", n, title[kind]);
	if (!n)
		return;
	putf(b, "<ul class=\"changes %s\">", title[kind]);
	changes(prev->m, v->m, kind, b);
	puts_(b, "</ul>\n");
}

/* The manifest's file in the repository, relative to site/p/. */
static void manifest_link(struct site_buf *b, const struct verify_target *t)
{
	char hex[VERIFY_HASH_HEX];

	puts_(b, "<a href=\"../../targets/");
	url_part(b, t->name);
	puts_(b, "/");
	if (!t->plain) {
		verify_hex(t->hash, VERIFY_HASH_LEN, hex);
		putf(b, "%s.", hex);
	}
	url_part(b, t->version);
	puts_(b, ".json\">signed manifest</a>");
}

static void version_section(struct site_buf *b, const struct site_ver *v,
			    const struct site_ver *prev, const struct site_ver *all, size_t nall)
{
	char size[32];

	/* the fragment that links here is url_part() of the version */
	html_in(b, "<section class=\"version\" id=\"v-", v->t.version, "\">\n");
	html_in(b, "<h2>", v->t.name, " ");
	html_in(b, "", v->t.version, "</h2>\n");
	puts_(b, "<dl>\n<dt>Signed by</dt><dd>");
	signer(b, &v->t);
	puts_(b, "</dd>\n");
	if (!v->m) {
		html_in(b, "<dt>Manifest</dt><dd class=\"warn\">could not be read: ",
			v->problem ? v->problem : "unknown error", "</dd>\n</dl>\n</section>\n");
		return;
	}
	verify_size_text(v->m->total_size, "bytes", size, sizeof(size));
	putf(b,
	     "<dt>Size</dt><dd>%s (%" PRIu64 " bytes)</dd>\n<dt>Files</dt><dd>%" PRIu64
	     " files, %zu entries</dd>\n<dt>Format</dt><dd>",
	     size, v->m->total_size, v->files, v->m->n);
	html_text(b, v->m->format);
	puts_(b, "</dd>\n<dt>Manifest</dt><dd>");
	manifest_link(b, &v->t);
	puts_(b, "</dd>\n");
	if (v->summary) {
		html_in(b, "<dt>Description</dt><dd class=\"summary\">", v->summary, "</dd>\n");
	}
	relation(b, "Depends", v->m->depends, v->m->ndepends, all, nall);
	relation(b, "Provides", v->m->provides, v->m->nprovides, all, nall);
	relation(b, "Conflicts", v->m->conflicts, v->m->nconflicts, all, nall);
	relation(b, "Breaks", v->m->breaks, v->m->nbreaks, all, nall);
	puts_(b, "</dl>\n<h3>Changes</h3>\n");
	if (!prev) {
		puts_(b, "<p>The first version.</p>\n");
	} else if (!prev->m) {
		puts_(b, "<p>The version before could not be read.</p>\n");
	} else {
		html_in(b, "<p>Since ", prev->t.version, ":</p>\n");
		change_list(b, prev, v, ADDED);
		change_list(b, prev, v, REMOVED);
		change_list(b, prev, v, CHANGED);
	}
	puts_(b, "</section>\n");
}

void site_package_page(struct site_buf *b, const struct site_ver *v, size_t n,
		       const struct site_ver *all, size_t nall)
{
	const struct site_ver *latest = &v[n - 1];
	char size[32];

	head(b, latest->t.name, "- package");
	puts_(b, "<p><a href=\"../index.html\">All packages</a></p>\n");
	html_in(b, "<h1>", latest->t.name, "</h1>\n");
	if (latest->summary)
		html_in(b, "<p class=\"summary\">", latest->summary, "</p>\n");
	putf(b, "<p>%zu versions, oldest first (dpkg's order). The latest is ", n);
	html_text(b, latest->t.version);
	puts_(b, ".</p>\n<table id=\"versions\">\n<tr><th>Version</th><th>Size</th><th>Files</th>"
		 "<th>Signed by</th><th>Changes</th></tr>\n");
	for (size_t i = 0; i < n; i++) {
		const struct site_ver *p = i ? &v[i - 1] : NULL;

		puts_(b, "<tr class=\"version\"><td class=\"version\"><a href=\"#v-");
		url_part(b, v[i].t.version);
		html_in(b, "\">", v[i].t.version, "</a></td>");
		if (v[i].m) {
			verify_size_text(v[i].m->total_size, "bytes", size, sizeof(size));
			putf(b, "<td>%s</td><td class=\"files\">%" PRIu64 "</td><td>", size,
			     v[i].files);
		} else {
			puts_(b, "<td class=\"warn\">unreadable</td><td>-</td><td>");
		}
		signer(b, &v[i].t);
		puts_(b, "</td><td class=\"changes\">");
		if (!p)
			puts_(b, "first version");
		else if (p->m && v[i].m)
			putf(b, "%zu added, %zu removed, %zu changed",
			     changes(p->m, v[i].m, ADDED, NULL),
			     changes(p->m, v[i].m, REMOVED, NULL),
			     changes(p->m, v[i].m, CHANGED, NULL));
		else
			puts_(b, "-");
		puts_(b, "</td></tr>\n");
	}
	puts_(b, "</table>\n");
	for (size_t i = 0; i < n; i++)
		version_section(b, &v[i], i ? &v[i - 1] : NULL, all, nall);
	tail(b, time(NULL));
}
