/* store/pack.c: version packs (store/README.md, "Version packs").
 *
 * A pack is the stored bytes of a version's small objects, concatenated in an order the
 * manifest alone determines, so a client that fetches it knows where every object starts
 * without an index and checks each one against the signed manifest as it streams. The pack
 * itself is not signed: a wrong pack costs a transfer, never a wrong byte. The layout and the
 * cutting of a pack's stream are here (both sides use them); the publisher writes packs with
 * store/import/packwrite.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

struct cand {
	const struct verify_entry *e;
	size_t pos; /* index in the manifest */
	bool first; /* the first entry with this id */
};

static int by_id_then_pos(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int c = memcmp(x->e->hash, y->e->hash, VERIFY_HASH_LEN);

	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int by_pos(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int store_pack_layout(const struct verify_manifest *m, struct store_pack_entry **ret_entries,
		      size_t *ret_n, uint64_t *ret_len)
{
	struct store_pack_entry *out = NULL;
	struct cand *c;
	size_t n = 0, k = 0;
	uint64_t off = 0;

	c = calloc(m->n ? m->n : 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		if (m->entries[i].type == VERIFY_FILE && !m->entries[i].nchunks &&
		    m->entries[i].zsize <= STORE_PACK_MAX_ZSIZE)
			c[n++] = (struct cand){&m->entries[i], i, false};
	qsort(c, n, sizeof(*c), by_id_then_pos);
	for (size_t i = 0; i < n; i++)
		c[i].first = i == 0 || memcmp(c[i - 1].e->hash, c[i].e->hash, VERIFY_HASH_LEN) != 0;
	qsort(c, n, sizeof(*c), by_pos);
	for (size_t i = 0; i < n; i++)
		k += c[i].first;
	if (k >= STORE_PACK_MIN_OBJECTS) {
		out = calloc(k, sizeof(*out));
		if (!out) {
			free(c);
			return -ENOMEM;
		}
		k = 0;
		for (size_t i = 0; i < n; i++) {
			if (!c[i].first)
				continue;
			out[k++] = (struct store_pack_entry){c[i].e, off};
			off += c[i].e->zsize;
		}
	} else {
		k = 0;
	}
	free(c);
	*ret_entries = out;
	*ret_n = k;
	*ret_len = off;
	return 0;
}

int store_pack_cut(struct store_pack_cut *c, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	int r;

	for (;;) {
		const struct store_pack_entry *pe;
		uint64_t end;
		size_t take;

		if (c->cur == c->n) {
			if (len) {
				stork_errorf("more bytes than the pack's layout holds");
				return STORK_EBADLEN;
			}
			return 0;
		}
		pe = &c->ents[c->cur];
		end = pe->offset + pe->e->zsize;
		if (!c->begun) {
			c->begun = true;
			r = c->begin(c->ctx, c->cur);
			if (r < 0)
				return r;
		}
		take = end - c->pos < len ? (size_t)(end - c->pos) : len;
		if (take && (r = c->data(c->ctx, c->cur, b, take)) < 0)
			return r;
		c->pos += take;
		b += take;
		len -= take;
		if (c->pos < end)
			return 0; /* len is 0: the rest of this entry comes later */
		r = c->end(c->ctx, c->cur);
		if (r < 0)
			return r;
		c->cur++;
		c->begun = false;
	}
}
