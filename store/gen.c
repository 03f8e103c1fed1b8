/* store/gen.c: generations of a slice's installed set (store/README.md "Generations").
 *
 * The LMDB database "generations" holds, for each repository REPO (hex) and slice SLICE:
 *   "REPO/SLICE current"       the current generation's number (text, decimal)
 *   "REPO/SLICE last"          the highest number ever given (text, decimal)
 *   "REPO/SLICE gen NNNN..."   generation NNNN (20 digits, so keys sort by number): its record
 * A record is text, one item a line:
 *   storkfs-generation 1
 *   made UNIXSECONDS
 *   prev N                     the generation that was current when it was made (rollback)
 *   want NAME[=VERSION]        one per request, in order
 *   pkg NAME VERSION MANIFESTHEX WHY...
 * store_gen_commit writes the record, "current" and "last" in one write transaction: another
 * process sees the old generation or the new one, never a part of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/node.h"
#include "verify/array.h"

#define GEN_MAGIC "storkfs-generation 1\n"

void store_gen_free(struct store_gen *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nwanted; i++)
		free(g->wanted[i]);
	free(g->wanted);
	for (size_t i = 0; i < g->npkgs; i++) {
		free(g->pkgs[i].name);
		free(g->pkgs[i].version);
		free(g->pkgs[i].why);
	}
	free(g->pkgs);
	free(g);
}

/* ------------------------------------------------------------------------------------------ */
/* Keys and records. */

struct gen_ctx {
	const char *repo, *slice;
	uint64_t expect, number;
	const struct store_gen *in;
	uint8_t *buf; /* a record read */
	size_t len;
	bool found;
};

static void key_of(const struct gen_ctx *c, const char *what, char *buf, size_t cap, MDB_val *k)
{
	int n = snprintf(buf, cap, "%s/%s %s", c->repo, c->slice, what);

	k->mv_size = n > 0 && (size_t)n < cap ? (size_t)n : cap - 1;
	k->mv_data = buf;
}

static void gen_key(const struct gen_ctx *c, uint64_t number, char *buf, size_t cap, MDB_val *k)
{
	char what[32];

	snprintf(what, sizeof(what), "gen %020" PRIu64, number);
	key_of(c, what, buf, cap, k);
}

/* A decimal value of the database; 0 when absent. */
static int get_number(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, uint64_t *ret)
{
	MDB_val v;
	char tmp[24];
	int rc = mdb_get(txn, dbi, k, &v);

	*ret = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size == 0 || v.mv_size >= sizeof(tmp))
		return STORK_EFORMAT;
	memcpy(tmp, v.mv_data, v.mv_size);
	tmp[v.mv_size] = '\0';
	*ret = strtoull(tmp, NULL, 10);
	return 0;
}

static int put_number(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, uint64_t n)
{
	char tmp[24];
	MDB_val v = {(size_t)snprintf(tmp, sizeof(tmp), "%" PRIu64, n), tmp};

	return mdb_put(txn, dbi, k, &v, 0);
}

static bool bad_word(const char *s)
{
	return !s || !*s || strpbrk(s, " \n\r\t");
}

/* The record of g. @return 0; -EINVAL; -ENOMEM. */
static int encode(const struct store_gen *g, uint64_t prev, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL, hex[VERIFY_HASH_HEX];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fprintf(f, GEN_MAGIC "made %" PRId64 "\nprev %" PRIu64 "\n", (int64_t)time(NULL), prev);
	for (size_t i = 0; i < g->nwanted; i++) {
		if (bad_word(g->wanted[i]))
			goto bad;
		fprintf(f, "want %s\n", g->wanted[i]);
	}
	for (size_t i = 0; i < g->npkgs; i++) {
		const struct store_gen_pkg *p = &g->pkgs[i];

		if (bad_word(p->name) || bad_word(p->version) || !p->why || strchr(p->why, '\n'))
			goto bad;
		verify_hex(p->manifest, VERIFY_HASH_LEN, hex);
		fprintf(f, "pkg %s %s %s %s\n", p->name, p->version, hex, p->why);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
bad:
	fclose(f);
	free(buf);
	stork_errorf("a generation can hold no name, version or request that is empty or has a "
		     "space or line break");
	return -EINVAL;
}

static int decode_line(struct store_gen *g, char *line, size_t *capw, size_t *capp)
{
	struct store_gen_pkg *p;
	char *sp, *name, *ver, *hex, *why;
	int r;

	if (strncmp(line, "made ", 5) == 0) {
		g->made = strtoll(line + 5, NULL, 10);
		return 0;
	}
	if (strncmp(line, "prev ", 5) == 0) {
		g->prev = strtoull(line + 5, NULL, 10);
		return 0;
	}
	if (strncmp(line, "want ", 5) == 0) {
		r = verify_grow((void **)&g->wanted, capw, g->nwanted, sizeof(*g->wanted));
		if (r < 0)
			return r;
		if (!(g->wanted[g->nwanted] = strdup(line + 5)))
			return -ENOMEM;
		g->nwanted++;
		return 0;
	}
	if (strncmp(line, "pkg ", 4) != 0)
		return 0; /* a later storkfs's item: ignored */
	name = line + 4;
	if (!(sp = strchr(name, ' ')))
		return STORK_EFORMAT;
	*sp = '\0';
	ver = sp + 1;
	if (!(sp = strchr(ver, ' ')))
		return STORK_EFORMAT;
	*sp = '\0';
	hex = sp + 1;
	if (!(sp = strchr(hex, ' ')))
		return STORK_EFORMAT;
	*sp = '\0';
	why = sp + 1;
	r = verify_grow((void **)&g->pkgs, capp, g->npkgs, sizeof(*g->pkgs));
	if (r < 0)
		return r;
	p = &g->pkgs[g->npkgs];
	memset(p, 0, sizeof(*p));
	g->npkgs++;
	if (verify_unhex(hex, p->manifest, VERIFY_HASH_LEN) < 0)
		return STORK_EFORMAT;
	p->name = strdup(name);
	p->version = strdup(ver);
	p->why = strdup(why);
	return p->name && p->version && p->why ? 0 : -ENOMEM;
}

static int decode(const uint8_t *buf, size_t len, uint64_t number, struct store_gen **ret_g)
{
	struct store_gen *g = calloc(1, sizeof(*g));
	char *text = malloc(len + 1), *line, *save = NULL;
	size_t capw = 0, capp = 0;
	int r = 0;

	if (!g || !text) {
		free(text);
		store_gen_free(g);
		return -ENOMEM;
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	g->number = number;
	if (strncmp(text, GEN_MAGIC, sizeof(GEN_MAGIC) - 1) != 0)
		r = STORK_EFORMAT;
	for (line = strtok_r(text + sizeof(GEN_MAGIC) - 1, "\n", &save); r == 0 && line;
	     line = strtok_r(NULL, "\n", &save))
		r = decode_line(g, line, &capw, &capp);
	free(text);
	if (r < 0) {
		store_gen_free(g);
		if (r == STORK_EFORMAT)
			stork_errorf("generation %" PRIu64 ": not a record this storkfs reads",
				     number);
		return r;
	}
	*ret_g = g;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Transactions. */

static int no_gens(struct store *s)
{
	if (s->env->has_gens)
		return 0;
	stork_errorf("%s: a read-only store made before generations existed holds none",
		     s->env->dir);
	return -ENOENT;
}

static int current_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct gen_ctx *c = ctx;
	char kb[512];
	MDB_val k;

	key_of(c, "current", kb, sizeof(kb), &k);
	return get_number(txn, e->gens, &k, &c->number);
}

int store_gen_current(struct store *s, const char *repo, const char *slice, uint64_t *ret_number)
{
	struct gen_ctx c = {.repo = repo, .slice = slice};
	int r;

	if (!s->env->has_gens) {
		*ret_number = 0;
		return 0;
	}
	r = node_txn(s->env, false, current_fn, &c);
	if (r < 0)
		return r;
	*ret_number = c.number;
	return 0;
}

static int get_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct gen_ctx *c = ctx;
	char kb[512];
	MDB_val k, v;
	int rc;

	if (c->number == 0) {
		rc = current_fn(e, txn, ctx);
		if (rc != 0)
			return rc;
		if (c->number == 0)
			return MDB_NOTFOUND;
	}
	gen_key(c, c->number, kb, sizeof(kb), &k);
	rc = mdb_get(txn, e->gens, &k, &v);
	if (rc != 0)
		return rc;
	free(c->buf);
	c->buf = malloc(v.mv_size + 1);
	if (!c->buf)
		return -ENOMEM;
	memcpy(c->buf, v.mv_data, v.mv_size);
	c->len = v.mv_size;
	return 0;
}

int store_gen_get(struct store *s, const char *repo, const char *slice, uint64_t number,
		  struct store_gen **ret_g)
{
	struct gen_ctx c = {.repo = repo, .slice = slice, .number = number};
	int r = no_gens(s);

	if (r == 0)
		r = node_txn(s->env, false, get_fn, &c);
	if (r == -ENOENT) {
		if (number)
			stork_errorf("slice %s has no generation %" PRIu64, slice, number);
		else
			stork_errorf("slice %s has nothing installed", slice);
	}
	if (r == 0)
		r = decode(c.buf, c.len, c.number, ret_g);
	free(c.buf);
	return r;
}

static int check_expect(struct node_env *e, MDB_txn *txn, struct gen_ctx *c)
{
	char kb[512];
	MDB_val k;
	uint64_t cur;
	int rc;

	key_of(c, "current", kb, sizeof(kb), &k);
	rc = get_number(txn, e->gens, &k, &cur);
	if (rc != 0)
		return rc;
	if (cur != c->expect) {
		stork_errorf("slice %s changed meanwhile (now generation %" PRIu64 ", not %" PRIu64
			     "): try again",
			     c->slice, cur, c->expect);
		return -EAGAIN;
	}
	return 0;
}

static int commit_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct gen_ctx *c = ctx;
	char kb[512];
	MDB_val k, v = {c->len, c->buf};
	uint64_t last;
	int rc = check_expect(e, txn, c);

	if (rc != 0)
		return rc;
	key_of(c, "last", kb, sizeof(kb), &k);
	rc = get_number(txn, e->gens, &k, &last);
	if (rc != 0)
		return rc;
	c->number = last + 1;
	rc = put_number(txn, e->gens, &k, c->number);
	if (rc == 0) {
		gen_key(c, c->number, kb, sizeof(kb), &k);
		rc = mdb_put(txn, e->gens, &k, &v, 0);
	}
	if (rc == 0) {
		key_of(c, "current", kb, sizeof(kb), &k);
		rc = put_number(txn, e->gens, &k, c->number);
	}
	return rc;
}

int store_gen_commit(struct store *s, const char *repo, const char *slice, uint64_t expect,
		     const struct store_gen *g, uint64_t *ret_number)
{
	struct gen_ctx c = {.repo = repo, .slice = slice, .expect = expect};
	char *buf = NULL;
	int r = no_gens(s);

	if (r == 0)
		r = encode(g, expect, &buf, &c.len);
	c.buf = (uint8_t *)buf;
	if (r == 0)
		r = node_txn(s->env, true, commit_fn, &c);
	if (r == 0)
		r = node_sync(s->env);
	free(buf);
	if (r == 0)
		*ret_number = c.number;
	return r;
}

static int switch_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct gen_ctx *c = ctx;
	char kb[512];
	MDB_val k, v;
	int rc = check_expect(e, txn, c);

	if (rc != 0)
		return rc;
	gen_key(c, c->number, kb, sizeof(kb), &k);
	rc = mdb_get(txn, e->gens, &k, &v);
	if (rc == MDB_NOTFOUND) {
		stork_errorf("slice %s has no generation %" PRIu64, c->slice, c->number);
		return -ENOENT;
	}
	if (rc != 0)
		return rc;
	key_of(c, "current", kb, sizeof(kb), &k);
	return put_number(txn, e->gens, &k, c->number);
}

int store_gen_switch(struct store *s, const char *repo, const char *slice, uint64_t expect,
		     uint64_t number)
{
	struct gen_ctx c = {.repo = repo, .slice = slice, .expect = expect, .number = number};
	int r = no_gens(s);

	if (r == 0)
		r = node_txn(s->env, true, switch_fn, &c);
	if (r == 0)
		r = node_sync(s->env);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Every slice's current generation. */

struct each_ctx {
	int (*fn)(void *ctx, const char *repo, const char *slice, const struct store_gen *g);
	void *ctx;
	struct each_item {
		char *key; /* "REPO/SLICE" of a "current" key, collected in one read txn */
		uint64_t num;
	} * items;
	size_t n, cap;
};

static int each_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct each_ctx *c = ctx;
	static const char suffix[] = " current";
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, e->gens, &cur);

	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t sl = sizeof(suffix) - 1;
		char tmp[24];

		if (k.mv_size <= sl ||
		    memcmp((char *)k.mv_data + k.mv_size - sl, suffix, sl) != 0 || v.mv_size == 0 ||
		    v.mv_size >= sizeof(tmp))
			continue;
		rc = verify_grow((void **)&c->items, &c->cap, c->n, sizeof(*c->items));
		if (rc != 0)
			break;
		memcpy(tmp, v.mv_data, v.mv_size);
		tmp[v.mv_size] = '\0';
		c->items[c->n].num = strtoull(tmp, NULL, 10);
		c->items[c->n].key = strndup(k.mv_data, k.mv_size - sl);
		if (!c->items[c->n].key) {
			rc = -ENOMEM;
			break;
		}
		c->n++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_gen_each(struct store *s,
		   int (*fn)(void *ctx, const char *repo, const char *slice,
			     const struct store_gen *g),
		   void *ctx)
{
	struct each_ctx c = {.fn = fn, .ctx = ctx};
	int r = s->env->has_gens ? node_txn(s->env, false, each_fn, &c) : 0;

	for (size_t i = 0; r == 0 && i < c.n; i++) {
		char *slash = strchr(c.items[i].key, '/');
		struct store_gen *g = NULL;

		if (!slash || !c.items[i].num)
			continue;
		*slash = '\0';
		r = store_gen_get(s, c.items[i].key, slash + 1, c.items[i].num, &g);
		if (r == 0)
			r = fn(ctx, c.items[i].key, slash + 1, g);
		store_gen_free(g);
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.items[i].key);
	free(c.items);
	return r;
}
