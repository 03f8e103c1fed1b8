/* fs/strmap.c: the daemon's string -> uint64 map (struct fsd_strmap, fs/daemon.h): open
 * addressing with linear probing, keys copied. Not locked: its owner locks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/daemon.h"

/* FNV-1a: short keys, no adversary who can pick many paths of one package version. */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

uint64_t fsd_strmap_get(const struct fsd_strmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return 0;
	for (i = hash_str(key) & (m->cap - 1); m->slots[i].key; i = (i + 1) & (m->cap - 1))
		if (strcmp(m->slots[i].key, key) == 0)
			return m->slots[i].val;
	return 0;
}

static void slot_insert(struct fsd_strmap_slot *slots, size_t cap, char *key, uint64_t val)
{
	size_t i;

	for (i = hash_str(key) & (cap - 1); slots[i].key; i = (i + 1) & (cap - 1))
		;
	slots[i].key = key;
	slots[i].val = val;
}

int fsd_strmap_put(struct fsd_strmap *m, const char *key, uint64_t val)
{
	char *k;

	if (2 * (m->n + 1) > m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 64;
		struct fsd_strmap_slot *s = calloc(cap, sizeof(*s));

		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key)
				slot_insert(s, cap, m->slots[i].key, m->slots[i].val);
		free(m->slots);
		m->slots = s;
		m->cap = cap;
	}
	k = strdup(key);
	if (!k)
		return -ENOMEM;
	slot_insert(m->slots, m->cap, k, val);
	m->n++;
	return 0;
}

uint64_t fsd_strmap_replace(struct fsd_strmap *m, const char *key, uint64_t val)
{
	uint64_t old;
	size_t i;

	if (!m->cap)
		return 0;
	for (i = hash_str(key) & (m->cap - 1); m->slots[i].key; i = (i + 1) & (m->cap - 1)) {
		if (strcmp(m->slots[i].key, key) == 0) {
			old = m->slots[i].val;
			m->slots[i].val = val;
			return old;
		}
	}
	return 0;
}

/* Linear probing: the entries after the one removed that would no longer be found move
 * back. */
void fsd_strmap_remove(struct fsd_strmap *m, const char *key, uint64_t val)
{
	size_t mask = m->cap - 1, i, j, h;

	if (!m->cap)
		return;
	for (i = hash_str(key) & mask; m->slots[i].key; i = (i + 1) & mask)
		if (strcmp(m->slots[i].key, key) == 0)
			break;
	if (!m->slots[i].key || m->slots[i].val != val)
		return;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->n--;
	for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		h = hash_str(m->slots[j].key) & mask;
		/* j's entry may fill the hole at i when i lies cyclically in [h, j) */
		if (j > i ? (h <= i || h > j) : (h <= i && h > j)) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
}

void fsd_strmap_fini(struct fsd_strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}
