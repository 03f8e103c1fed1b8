/* store/stats.c: what a node store holds (store_stats): objects, bytes, pins, manifests and,
 * per repository, its last refresh, its metadata and what store_meta_recover found. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/node.h"

void store_stats_fini(struct store_stats *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < st->nrepos; i++) {
		free(st->repos[i].repo);
		free(st->repos[i].url);
	}
	free(st->repos);
	memset(st, 0, sizeof(*st));
}

/* The repository named by len bytes at name, added (never refreshed) when new. */
static struct store_repo_status *repo_find(struct store_stats *st, const char *name, size_t len,
					   size_t *cap)
{
	struct store_repo_status *rs, *grown;
	size_t i;

	for (i = st->nrepos; i > 0; i--) {
		rs = &st->repos[i - 1];
		if (strlen(rs->repo) == len && memcmp(rs->repo, name, len) == 0)
			return rs;
	}
	if (st->nrepos == *cap) {
		*cap = *cap ? 2 * *cap : 8;
		grown = realloc(st->repos, *cap * sizeof(*grown));
		if (!grown)
			return NULL;
		st->repos = grown;
	}
	rs = &st->repos[st->nrepos];
	memset(rs, 0, sizeof(*rs));
	rs->repo = strndup(name, len);
	rs->url = strdup("");
	if (!rs->repo || !rs->url) {
		free(rs->repo);
		free(rs->url);
		return NULL;
	}
	st->nrepos++;
	return rs;
}

static int stats_fn(struct node_env *e, MDB_txn *txn, void *ctx)
{
	struct store_stats *st = ctx;
	struct store_repo_status *rs;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_stat ms;
	const uint8_t *p;
	const char *nul;
	size_t cap = 0;
	int rc;

	store_stats_fini(st);

	rc = mdb_cursor_open(txn, e->objects, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		p = v.mv_data;
		if (v.mv_size != NODE_OBJREC_LEN || p[0] != NODE_OBJREC_VERSION)
			continue; /* fsck reports it */
		st->objects++;
		st->bytes += node_get_le(p + 8, 8);
		if (node_get_le(p + 4, 4) > 0)
			st->pinned++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;

	rc = mdb_stat(txn, e->manifests, &ms);
	if (rc != 0)
		return rc;
	st->manifests = ms.ms_entries;

	rc = mdb_cursor_open(txn, e->repos, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		p = v.mv_data;
		if (v.mv_size < NODE_REPOREC_HEAD || p[0] != NODE_REPOREC_VERSION)
			continue;
		rs = repo_find(st, k.mv_data, k.mv_size, &cap);
		if (!rs) {
			rc = -ENOMEM;
			break;
		}
		free(rs->url);
		rs->url =
		    strndup((const char *)p + NODE_REPOREC_HEAD, v.mv_size - NODE_REPOREC_HEAD);
		if (!rs->url) {
			rc = -ENOMEM;
			break;
		}
		rs->last_refresh = (int64_t)node_get_le(p + 8, 8);
		rs->trust = p[NODE_REPOREC_TRUST] <= STORE_TRUST_LOST ? p[NODE_REPOREC_TRUST] : 0;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;

	rc = mdb_cursor_open(txn, e->meta, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		nul = memchr(k.mv_data, '\0', k.mv_size);
		if (!nul)
			continue;
		rs = repo_find(st, k.mv_data, (size_t)(nul - (const char *)k.mv_data), &cap);
		if (!rs) {
			rc = -ENOMEM;
			break;
		}
		rs->nmeta++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	return 0;
}

static int repo_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_repo_status *)a)->repo,
		      ((const struct store_repo_status *)b)->repo);
}

/* A repository with a copy in trusted/: PENDING when the index lacks its metadata. */
static int pending_fn(void *ctx, const char *repo)
{
	struct store_stats *st = ((void **)ctx)[0];
	struct store *s = ((void **)ctx)[1];
	struct store_repo_status *rs;
	enum store_trust trust = STORE_TRUST_NONE;
	size_t cap = st->nrepos, files = 0;
	int r;

	r = node_trusted_recover(s, repo, false, &trust, &files);
	if (r < 0 || trust != STORE_TRUST_PENDING)
		return r;
	rs = repo_find(st, repo, strlen(repo), &cap);
	if (!rs)
		return -ENOMEM;
	rs->trust = STORE_TRUST_PENDING;
	rs->ncopy = files;
	return 0;
}

int store_stats(struct store *s, struct store_stats *ret_stats)
{
	struct store_stats st = {0};
	void *pctx[2] = {&st, s};
	int r;

	r = node_txn(s->env, false, stats_fn, &st);
	if (r == 0)
		r = node_trusted_each(s, pending_fn, pctx);
	if (r < 0) {
		store_stats_fini(&st);
		return r;
	}
	if (st.nrepos > 1)
		qsort(st.repos, st.nrepos, sizeof(*st.repos), repo_cmp);
	*ret_stats = st;
	return 0;
}
