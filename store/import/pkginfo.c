/* store/import/pkginfo.c: dependencies declared by .deb and .rpm packages.
 *
 * Debian: the control file's Depends and Pre-Depends, and (manifest spec_version 2) Provides,
 * Conflicts and Breaks (deb-control(5), deb-src-control(5) for the restriction syntax). RPM: the
 * Requires, and (spec_version 2) Provides and Conflicts, of the main header (the lead, then the
 * signature header, then the main header; all counts and offsets are big-endian and come from the
 * file, so every one is bounded before use).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "store/import/import.h"
#include "verify/text.h"

/* ------------------------------------------------------------------------------------------ */
/* Debian control files. */

#define CONTROL_MAX_LEN (1024 * 1024)

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && is_space(*p))
		p++;
	return p;
}

/* Map a Debian relation operator to ours; "<" and ">" are the obsolete spellings of "<=" and
 * ">=" (deb-control(5)), no operator means "=". NULL if unknown. */
static const char *deb_op(const char *op, size_t len)
{
	static const struct {
		const char *in, *out;
	} ops[] = {
	    {"<<", "<<"}, {"<=", "<="}, {"=", "="}, {">=", ">="}, {">>", ">>"},
	    {"<", "<="},  {">", ">="},	{"", "="}, /* dpkg reads a bare version as "=" */
	};
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strlen(ops[i].in) == len && memcmp(ops[i].in, op, len) == 0)
			return ops[i].out;
	return NULL;
}

static void free_alts(struct verify_dep *alts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(alts[i].name);
		free(alts[i].version);
	}
	free(alts);
}

/* Parse one alternative "name[:arch] [(op version)] [[arch ...]] [<profile ...>]" in [p, end). */
static int deb_alt(const char *field, const char *p, const char *end, struct verify_dep *ret)
{
	const char *name, *opstr, *op = NULL, *ver = NULL;
	size_t namelen, oplen = 0, verlen = 0;
	struct verify_dep d = {0};

	p = skip_space(p, end);
	name = p;
	while (p < end && !is_space(*p) && *p != '(' && *p != '[' && *p != '<' && *p != ':')
		p++;
	namelen = (size_t)(p - name);
	if (namelen == 0) {
		stork_errorf("control file: %s: an empty package name", field);
		return STORK_EFORMAT;
	}
	if (p < end && *p == ':') { /* architecture qualifier: ":any", ":amd64" */
		p++;
		while (p < end && !is_space(*p) && *p != '(' && *p != '[' && *p != '<')
			p++;
	}
	p = skip_space(p, end);
	if (p < end && *p == '(') {
		p = skip_space(p + 1, end);
		opstr = p;
		while (p < end && (*p == '<' || *p == '>' || *p == '='))
			p++;
		oplen = (size_t)(p - opstr);
		p = skip_space(p, end);
		ver = p;
		while (p < end && !is_space(*p) && *p != ')')
			p++;
		verlen = (size_t)(p - ver);
		p = skip_space(p, end);
		if (p >= end || *p != ')' || verlen == 0) {
			stork_errorf("control file: %s: \"%.*s\": a version relation must be "
				     "\"(op version)\"",
				     field, (int)namelen, name);
			return STORK_EFORMAT;
		}
		p++;
		op = deb_op(opstr, oplen);
		if (!op) {
			stork_errorf(
			    "control file: %s: \"%.*s\": unknown relation operator \"%.*s\"", field,
			    (int)namelen, name, (int)oplen, opstr);
			return STORK_EFORMAT;
		}
	}
	/* Architecture restrictions and build profiles: source-package syntax, not ours to
	 * evaluate; a binary package's dependencies apply as listed. */
	for (;;) {
		char close;

		p = skip_space(p, end);
		if (p >= end)
			break;
		if (*p == '[')
			close = ']';
		else if (*p == '<')
			close = '>';
		else
			break;
		p = memchr(p, close, (size_t)(end - p));
		if (!p) {
			stork_errorf("control file: %s: \"%.*s\": unterminated restriction list",
				     field, (int)namelen, name);
			return STORK_EFORMAT;
		}
		p++;
	}
	if (p < end) {
		stork_errorf("control file: %s: \"%.*s\": unexpected text after the dependency",
			     field, (int)namelen, name);
		return STORK_EFORMAT;
	}

	d.name = strndup(name, namelen);
	if (!d.name)
		return -ENOMEM;
	if (op) {
		d.op = (char *)op;
		d.version = strndup(ver, verlen);
		if (!d.version) {
			free(d.name);
			return -ENOMEM;
		}
	}
	*ret = d;
	return 0;
}

/* Parse a relationship field's value in [p, end): groups separated by ',', alternatives by
 * '|'. Empty groups (a trailing comma) are skipped. */
static int deb_relations(const char *field, enum verify_relation kind, const char *p,
			 const char *end, struct verify_manifest *m)
{
	while (p < end) {
		const char *gend = memchr(p, ',', (size_t)(end - p));
		struct verify_dep *alts = NULL;
		size_t n = 0;
		int r = 0;

		if (!gend)
			gend = end;
		if (skip_space(p, gend) == gend) {
			p = gend + (gend < end);
			continue;
		}
		while (p <= gend) {
			const char *aend = memchr(p, '|', (size_t)(gend - p));
			struct verify_dep *nalts;

			if (!aend)
				aend = gend;
			nalts = realloc(alts, (n + 1) * sizeof(*alts));
			if (!nalts) {
				r = -ENOMEM;
				break;
			}
			alts = nalts;
			r = deb_alt(field, p, aend, &alts[n]);
			if (r < 0)
				break;
			n++;
			p = aend + 1;
		}
		if (r == 0)
			r = verify_manifest_add_relation(m, kind, alts, n);
		if (r == -EINVAL) /* a name or version the manifest cannot hold */
			r = STORK_EFORMAT;
		free_alts(alts, n);
		if (r < 0)
			return r;
		p = gend + 1;
	}
	return 0;
}

int store_deb_control_deps(const char *control, size_t len, struct verify_manifest *m)
{
	static const char *const fields[] = {"Pre-Depends", "Depends", "Provides",
					     "Conflicts",   "Breaks",  "Replaces"};
	static const enum verify_relation kinds[] = {VERIFY_DEPENDS,  VERIFY_DEPENDS,
						     VERIFY_PROVIDES, VERIFY_CONFLICTS,
						     VERIFY_BREAKS,   VERIFY_REPLACES};
	enum { NFIELDS = sizeof(fields) / sizeof(fields[0]) };
	const char *val[NFIELDS] = {NULL};
	char *text[NFIELDS] = {NULL};
	const char *p = control, *end = control + len;
	bool in_para = false, cur_wanted = false;
	size_t cur = 0, lineno = 0, i;
	int r = 0;

	if (len > CONTROL_MAX_LEN) {
		stork_errorf("control file: larger than %d bytes", CONTROL_MAX_LEN);
		return STORK_EFORMAT;
	}
	if (memchr(control, '\0', len)) {
		stork_errorf("control file: contains a NUL byte");
		return STORK_EFORMAT;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line = p, *colon;
		size_t llen;

		if (!eol)
			eol = end;
		llen = (size_t)(eol - line);
		p = eol + (eol < end);
		lineno++;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (skip_space(line, line + llen) == line + llen) {
			if (in_para)
				break; /* a binary package's control file is one paragraph */
			continue;
		}
		if (line[0] == '#')
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			if (!in_para) {
				stork_errorf("control file: line %zu: continuation line without a "
					     "field",
					     lineno);
				r = STORK_EFORMAT;
				goto out;
			}
			if (cur_wanted) {
				/* Folded value: join with a space, continuation lines add no
				 * separators of their own. */
				size_t olen = strlen(text[cur]);
				char *t = realloc(text[cur], olen + 1 + llen + 1);

				if (!t) {
					r = -ENOMEM;
					goto out;
				}
				t[olen] = ' ';
				memcpy(t + olen + 1, line, llen);
				t[olen + 1 + llen] = '\0';
				text[cur] = t;
			}
			continue;
		}
		in_para = true;
		colon = memchr(line, ':', llen);
		if (!colon || colon == line) {
			stork_errorf("control file: line %zu: not a \"Field: value\" line", lineno);
			r = STORK_EFORMAT;
			goto out;
		}
		cur_wanted = false;
		for (i = 0; i < NFIELDS; i++) {
			if (strlen(fields[i]) != (size_t)(colon - line) ||
			    strncasecmp(fields[i], line, (size_t)(colon - line)) != 0)
				continue;
			if (val[i]) {
				stork_errorf("control file: line %zu: %s appears twice", lineno,
					     fields[i]);
				r = STORK_EFORMAT;
				goto out;
			}
			val[i] = line;
			text[i] = strndup(colon + 1, (size_t)(line + llen - colon - 1));
			if (!text[i]) {
				r = -ENOMEM;
				goto out;
			}
			cur = i;
			cur_wanted = true;
		}
	}
	for (i = 0; i < NFIELDS; i++) {
		if (!text[i])
			continue;
		r = deb_relations(fields[i], kinds[i], text[i], text[i] + strlen(text[i]), m);
		if (r < 0)
			goto out;
	}
out:
	for (i = 0; i < NFIELDS; i++)
		free(text[i]);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* One-line descriptions: untrusted text made into valid UTF-8 without controls. */

/* Copy s[0..n) into out (outlen bytes, NUL-terminated): invalid bytes, C0 and C1 controls and
 * bidirectional controls become '?', surrounding blanks are dropped, and a cut never splits
 * a character. */
static void summary_copy(const char *s, size_t n, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	size_t o = 0, len;
	uint32_t cp;

	if (!outlen)
		return;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (p < end) {
		len = verify_utf8_char((const char *)p, (size_t)(end - p), &cp);
		if (!len || cp < 0x20 || (cp >= 0x7f && cp < 0xa0) ||
		    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) {
			if (o + 1 >= outlen)
				break;
			out[o++] = '?';
			p += len ? len : 1;
			continue;
		}
		if (o + len >= outlen)
			break;
		memcpy(out + o, p, len);
		o += len;
		p += len;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

void store_deb_control_summary(const char *control, size_t len, char *summary, size_t slen)
{
	const char *p = control, *end = control + len, *eol;

	if (slen)
		summary[0] = '\0';
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) >= 12 && !strncasecmp(p, "Description:", 12)) {
			summary_copy(p + 12, (size_t)(eol - p - 12), summary, slen);
			return;
		}
		if (eol == p) /* the end of the first paragraph */
			return;
		p = eol + 1;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* RPM headers (the RPM file format, "Package File Format" of rpm.org's documentation). */

#define RPM_LEAD_LEN	  96
#define RPM_HDR_INTRO_LEN 16
#define RPM_INDEX_LEN	  16
#define RPM_MAX_INDEX	  65536
#define RPM_MAX_DATA	  (64u * 1024 * 1024)

#define RPM_INT32_TYPE	      4
#define RPM_STRING_TYPE	      6
#define RPM_STRING_ARRAY_TYPE 8
#define RPM_I18NSTRING_TYPE   9

#define RPMTAG_SUMMARY 1004

#define RPMTAG_REQUIREFLAGS    1048
#define RPMTAG_REQUIRENAME     1049
#define RPMTAG_REQUIREVERSION  1050
#define RPMTAG_PROVIDENAME     1047
#define RPMTAG_PROVIDEFLAGS    1112
#define RPMTAG_PROVIDEVERSION  1113
#define RPMTAG_CONFLICTFLAGS   1053
#define RPMTAG_CONFLICTNAME    1054
#define RPMTAG_CONFLICTVERSION 1055

#define RPMSENSE_LESS	 0x02
#define RPMSENSE_GREATER 0x04
#define RPMSENSE_EQUAL	 0x08
#define RPMSENSE_RPMLIB	 (1u << 24)

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read exactly len bytes. @return 0; STORK_EFORMAT at a premature end; -errno. */
static int read_exact(int fd, void *buf, size_t len, const char *what)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			stork_errorf("RPM: the file ends inside the %s", what);
			return STORK_EFORMAT;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int skip_bytes(int fd, uint64_t len, const char *what)
{
	uint8_t buf[8192];

	while (len > 0) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		int r = read_exact(fd, buf, n, what);

		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

/* Read a header structure's intro and check its bounds. */
static int rpm_intro(int fd, const char *what, uint32_t *ret_nindex, uint32_t *ret_hsize)
{
	static const uint8_t magic[4] = {0x8e, 0xad, 0xe8, 0x01};
	uint8_t intro[RPM_HDR_INTRO_LEN];
	uint32_t nindex, hsize;
	int r;

	r = read_exact(fd, intro, sizeof(intro), what);
	if (r < 0)
		return r;
	if (memcmp(intro, magic, sizeof(magic)) != 0) {
		stork_errorf("RPM: the %s does not start with the header magic", what);
		return STORK_EFORMAT;
	}
	nindex = be32(intro + 8);
	hsize = be32(intro + 12);
	if (nindex > RPM_MAX_INDEX || hsize > RPM_MAX_DATA) {
		stork_errorf("RPM: the %s claims %u entries and %u data bytes (limits %d, %u)",
			     what, nindex, hsize, RPM_MAX_INDEX, RPM_MAX_DATA);
		return STORK_EFORMAT;
	}
	*ret_nindex = nindex;
	*ret_hsize = hsize;
	return 0;
}

struct rpm_tag {
	uint32_t type, offset, count;
	bool found;
};

/* The start of each of count NUL-terminated strings at offset in data. */
static int rpm_strings(const uint8_t *data, uint32_t hsize, const struct rpm_tag *t,
		       const char *name, const char ***ret)
{
	const char **v;
	uint64_t pos = t->offset;
	uint32_t i;

	if (t->type != RPM_STRING_ARRAY_TYPE) {
		stork_errorf("RPM: main header: %s has type %u, not a string array", name, t->type);
		return STORK_EFORMAT;
	}
	/* Each string takes at least one byte: a bound on count before allocating. */
	if (t->count > hsize || pos > hsize) {
		stork_errorf("RPM: main header: %s: %u strings at offset %u do not fit in %u "
			     "bytes",
			     name, t->count, t->offset, hsize);
		return STORK_EFORMAT;
	}
	v = calloc(t->count ? t->count : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < t->count; i++) {
		const uint8_t *nul = pos < hsize ? memchr(data + pos, '\0', hsize - pos) : NULL;

		if (!nul) {
			stork_errorf("RPM: main header: %s: string %u runs past the header data",
				     name, i);
			free(v);
			return STORK_EFORMAT;
		}
		v[i] = (const char *)data + pos;
		pos = (uint64_t)(nul - data) + 1;
	}
	*ret = v;
	return 0;
}

static const char *rpm_op(uint32_t flags)
{
	switch (flags & (RPMSENSE_LESS | RPMSENSE_GREATER | RPMSENSE_EQUAL)) {
	case RPMSENSE_LESS:
		return "<<";
	case RPMSENSE_LESS | RPMSENSE_EQUAL:
		return "<=";
	case RPMSENSE_EQUAL:
		return "=";
	case RPMSENSE_GREATER | RPMSENSE_EQUAL:
		return ">=";
	case RPMSENSE_GREATER:
		return ">>";
	default:
		return NULL;
	}
}

/* The relations an RPM header records (rpm's tag numbers), and their kind in a manifest. */
struct rpm_rel {
	enum verify_relation kind;
	uint32_t name_tag, flags_tag, version_tag;
	const char *name, *flags, *version; /* the tags' names, for messages */
};

static const struct rpm_rel rpm_rels[] = {
    {VERIFY_DEPENDS, RPMTAG_REQUIRENAME, RPMTAG_REQUIREFLAGS, RPMTAG_REQUIREVERSION, "REQUIRENAME",
     "REQUIREFLAGS", "REQUIREVERSION"},
    {VERIFY_PROVIDES, RPMTAG_PROVIDENAME, RPMTAG_PROVIDEFLAGS, RPMTAG_PROVIDEVERSION, "PROVIDENAME",
     "PROVIDEFLAGS", "PROVIDEVERSION"},
    {VERIFY_CONFLICTS, RPMTAG_CONFLICTNAME, RPMTAG_CONFLICTFLAGS, RPMTAG_CONFLICTVERSION,
     "CONFLICTNAME", "CONFLICTFLAGS", "CONFLICTVERSION"},
};

/* One relation's names, flags and versions from the main header's index and data. */
static int rpm_relation(const uint8_t *index, uint32_t nindex, const uint8_t *data, uint32_t hsize,
			const struct rpm_rel *rel, struct verify_manifest *m)
{
	struct rpm_tag flags = {0}, names = {0}, versions = {0};
	const char **namev = NULL, **verv = NULL;
	uint32_t i;
	int r = 0;

	for (i = 0; i < nindex; i++) {
		const uint8_t *e = index + (size_t)i * RPM_INDEX_LEN;
		struct rpm_tag *t;

		if (be32(e) == rel->flags_tag)
			t = &flags;
		else if (be32(e) == rel->name_tag)
			t = &names;
		else if (be32(e) == rel->version_tag)
			t = &versions;
		else
			continue;
		if (t->found) {
			stork_errorf("RPM: main header: tag %u appears twice", be32(e));
			r = STORK_EFORMAT;
			goto out;
		}
		t->found = true;
		t->type = be32(e + 4);
		t->offset = be32(e + 8);
		t->count = be32(e + 12);
	}
	if (!names.found)
		goto out; /* none of this relation */

	r = rpm_strings(data, hsize, &names, rel->name, &namev);
	if (r < 0)
		goto out;
	if (versions.found) {
		r = rpm_strings(data, hsize, &versions, rel->version, &verv);
		if (r < 0)
			goto out;
	}
	if (flags.found) {
		if (flags.type != RPM_INT32_TYPE) {
			stork_errorf("RPM: main header: %s has type %u, not int32", rel->flags,
				     flags.type);
			r = STORK_EFORMAT;
			goto out;
		}
		if ((uint64_t)flags.offset + (uint64_t)flags.count * 4 > hsize) {
			stork_errorf("RPM: main header: %s: %u values at offset %u do not fit in "
				     "%u bytes",
				     rel->flags, flags.count, flags.offset, hsize);
			r = STORK_EFORMAT;
			goto out;
		}
	}
	if ((versions.found && versions.count != names.count) ||
	    (flags.found && flags.count != names.count)) {
		stork_errorf("RPM: main header: %u %s but %u %s and %u %s", names.count, rel->name,
			     versions.found ? versions.count : names.count, rel->version,
			     flags.found ? flags.count : names.count, rel->flags);
		r = STORK_EFORMAT;
		goto out;
	}

	for (i = 0; i < names.count; i++) {
		uint32_t fl = flags.found ? be32(data + flags.offset + (size_t)i * 4) : 0;
		struct verify_dep d = {(char *)namev[i], NULL, NULL};

		/* rpmlib() features, file paths and rich (boolean) dependencies name no
		 * package (a provided file path is the same for Provides). */
		if (namev[i][0] == '\0' || namev[i][0] == '/' || namev[i][0] == '(' ||
		    strncmp(namev[i], "rpmlib(", 7) == 0 || (fl & RPMSENSE_RPMLIB))
			continue;
		if (verv && verv[i][0] != '\0' && rpm_op(fl)) {
			d.op = (char *)rpm_op(fl);
			d.version = (char *)verv[i];
		}
		r = verify_manifest_add_relation(m, rel->kind, &d, 1);
		if (r == -EINVAL) /* a name or version the manifest cannot hold */
			r = STORK_EFORMAT;
		if (r < 0)
			goto out;
	}
out:
	free(namev);
	free(verv);
	return r;
}

/* The Summary tag's first string into summary; "" when absent or malformed. */
static void rpm_summary(const uint8_t *index, uint32_t nindex, const uint8_t *data, uint32_t hsize,
			char *summary, size_t len)
{
	for (uint32_t i = 0; i < nindex; i++) {
		const uint8_t *e = index + (size_t)i * RPM_INDEX_LEN;
		uint32_t type = be32(e + 4), off = be32(e + 8);
		const uint8_t *nul;

		if (be32(e) != RPMTAG_SUMMARY)
			continue;
		if ((type != RPM_STRING_TYPE && type != RPM_I18NSTRING_TYPE) || off >= hsize)
			return;
		nul = memchr(data + off, '\0', hsize - off);
		if (nul)
			summary_copy((const char *)data + off, (size_t)(nul - data - off), summary,
				     len);
		return;
	}
}

int store_rpm_deps(int fd, struct verify_manifest *m)
{
	return store_rpm_info(fd, m, NULL, 0);
}

int store_rpm_info(int fd, struct verify_manifest *m, char *summary, size_t slen)
{
	static const uint8_t lead_magic[4] = {0xed, 0xab, 0xee, 0xdb};
	uint8_t lead[RPM_LEAD_LEN];
	uint8_t *index = NULL, *data = NULL;
	uint32_t nindex, hsize;
	uint64_t sigsize;
	int r;

	r = read_exact(fd, lead, sizeof(lead), "lead");
	if (r < 0)
		goto out;
	if (memcmp(lead, lead_magic, sizeof(lead_magic)) != 0) {
		stork_errorf("RPM: not an RPM package (no lead magic)");
		r = STORK_EFORMAT;
		goto out;
	}
	/* Signature header, padded to a multiple of 8 bytes. */
	r = rpm_intro(fd, "signature header", &nindex, &hsize);
	if (r < 0)
		goto out;
	sigsize = (uint64_t)nindex * RPM_INDEX_LEN + hsize;
	sigsize += (8 - (RPM_HDR_INTRO_LEN + sigsize) % 8) % 8;
	r = skip_bytes(fd, sigsize, "signature header");
	if (r < 0)
		goto out;

	r = rpm_intro(fd, "main header", &nindex, &hsize);
	if (r < 0)
		goto out;
	index = malloc((size_t)nindex * RPM_INDEX_LEN + 1);
	data = malloc((size_t)hsize + 1);
	if (!index || !data) {
		r = -ENOMEM;
		goto out;
	}
	r = read_exact(fd, index, (size_t)nindex * RPM_INDEX_LEN, "main header");
	if (r < 0)
		goto out;
	r = read_exact(fd, data, hsize, "main header");
	if (r < 0)
		goto out;

	for (size_t k = 0; k < sizeof(rpm_rels) / sizeof(rpm_rels[0]); k++) {
		r = rpm_relation(index, nindex, data, hsize, &rpm_rels[k], m);
		if (r < 0)
			goto out;
	}
	if (slen) {
		summary[0] = '\0';
		rpm_summary(index, nindex, data, hsize, summary, slen);
	}
out:
	free(index);
	free(data);
	return r;
}
