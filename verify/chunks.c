/* verify/chunks.c: the chunk list of a big file in a manifest (spec_version 3, verify/README.md
 * "Chunks"): its rules, its JSON both ways, and finding the chunk that holds an offset.
 *
 * A chunked file's entry keeps the SHA-256 and size of its whole content; its "chunks" list the
 * objects that hold it, back to back from offset 0. Building (verify_manifest_add,
 * verify_entry_set_chunks) and parsing check the same rules here, so a publisher never signs a
 * list a client would refuse.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/hash.h"
#include "verify/internal.h"
#include "verify/manifest.h"

const char *manifest_chunks_problem(uint64_t size, uint64_t zsize, const struct verify_entry *c,
				    size_t n, size_t *ret_bad)
{
	uint64_t off = 0, z = 0;

	if (n == 1) {
		*ret_bad = 0;
		return "one chunk (a file of one piece is stored whole)";
	}
	for (size_t i = 0; i < n; i++) {
		*ret_bad = i;
		if (c[i].offset != off)
			return "does not start where the chunk before it ends";
		if (c[i].size == 0)
			return "is empty";
		if (c[i].size > size - off)
			return "ends past the end of the file";
		if (c[i].zsize > INT64_MAX - z)
			return "zsize out of range";
		off += c[i].size;
		z += c[i].zsize;
	}
	*ret_bad = n;
	if (off != size)
		return "do not cover the whole file";
	if (z != zsize)
		return "zsizes do not add up to the file's zsize";
	return NULL;
}

int verify_entry_set_chunks(struct verify_entry *e, const struct verify_entry *chunks, size_t n)
{
	struct verify_entry *c = NULL;
	const char *problem;
	size_t bad;

	if (n) {
		problem = manifest_chunks_problem(e->size, e->zsize, chunks, n, &bad);
		if (problem) {
			stork_errorf("\"%s\": chunk %zu %s", e->path ? e->path : "", bad, problem);
			return -EINVAL;
		}
		c = calloc(n, sizeof(*c));
		if (!c)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			c[i].type = VERIFY_FILE;
			c[i].offset = chunks[i].offset;
			c[i].size = chunks[i].size;
			c[i].zsize = chunks[i].zsize;
			memcpy(c[i].hash, chunks[i].hash, VERIFY_HASH_LEN);
		}
	}
	free(e->chunks);
	e->chunks = c;
	e->nchunks = n;
	return 0;
}

size_t verify_entry_chunk_at(const struct verify_entry *e, uint64_t off)
{
	size_t lo = 0, hi = e->nchunks;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (e->chunks[mid].offset <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static int set(json_t *obj, const char *key, json_t *v)
{
	if (!v || json_object_set_new(obj, key, v) < 0)
		return -ENOMEM;
	return 0;
}

json_t *manifest_chunks_json(const struct verify_entry *e)
{
	json_t *a = json_array();
	char hex[VERIFY_HASH_HEX];

	if (!a)
		return NULL;
	for (size_t i = 0; i < e->nchunks; i++) {
		const struct verify_entry *c = &e->chunks[i];
		json_t *o = json_object();
		int r = o ? 0 : -ENOMEM;

		verify_hex(c->hash, VERIFY_HASH_LEN, hex);
		if (r == 0)
			r = set(o, "offset", json_integer((json_int_t)c->offset));
		if (r == 0)
			r = set(o, "size", json_integer((json_int_t)c->size));
		if (r == 0)
			r = set(o, "zsize", json_integer((json_int_t)c->zsize));
		if (r == 0)
			r = set(o, "sha256", json_string(hex));
		if (r == 0 && json_array_append_new(a, o) < 0) {
			o = NULL;
			r = -ENOMEM;
		}
		if (r < 0) {
			json_decref(o);
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int chunk_field(const json_t *o, const char *key, uint64_t *ret)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

int manifest_chunks_parse(const json_t *a, struct verify_entry *e, char *problem, size_t cap)
{
	struct verify_entry *c = NULL;
	const char *why;
	size_t n, bad;

	if (!json_is_array(a) || json_array_size(a) == 0) {
		snprintf(problem, cap, "\"chunks\" is not a list of chunks");
		return STORK_EFORMAT;
	}
	n = json_array_size(a);
	c = calloc(n, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const json_t *o = json_array_get(a, i), *sha;
		const char *k;
		json_t *v;
		size_t len;

		if (!json_is_object(o)) {
			snprintf(problem, cap, "chunk %zu is not an object", i);
			goto bad;
		}
		json_object_foreach((json_t *)o, k, v)
		{
			if (strcmp(k, "offset") && strcmp(k, "size") && strcmp(k, "zsize") &&
			    strcmp(k, "sha256")) {
				snprintf(problem, cap, "chunk %zu: unknown key \"%.64s\"", i, k);
				goto bad;
			}
		}
		if (chunk_field(o, "offset", &c[i].offset) < 0 ||
		    chunk_field(o, "size", &c[i].size) < 0 ||
		    chunk_field(o, "zsize", &c[i].zsize) < 0) {
			snprintf(problem, cap,
				 "chunk %zu: \"offset\", \"size\" and \"zsize\" must be integers "
				 "of at least 0",
				 i);
			goto bad;
		}
		sha = json_object_get(o, "sha256");
		k = json_string_value(sha);
		len = k ? strlen(k) : 0;
		for (size_t j = 0; j < len; j++)
			if (!((k[j] >= '0' && k[j] <= '9') || (k[j] >= 'a' && k[j] <= 'f')))
				len = 0;
		if (len != 2 * VERIFY_HASH_LEN || verify_unhex(k, c[i].hash, VERIFY_HASH_LEN) < 0) {
			snprintf(problem, cap,
				 "chunk %zu: \"sha256\" is not 64 lower-case hex digits", i);
			goto bad;
		}
		c[i].type = VERIFY_FILE;
	}
	why = manifest_chunks_problem(e->size, e->zsize, c, n, &bad);
	if (why) {
		if (bad < n)
			snprintf(problem, cap, "chunk %zu %s", bad, why);
		else
			snprintf(problem, cap, "chunks %s", why);
		goto bad;
	}
	e->chunks = c;
	e->nchunks = n;
	return 0;
bad:
	free(c);
	return STORK_EFORMAT;
}

size_t verify_manifest_objects(const struct verify_manifest *m, uint8_t (*ids)[VERIFY_HASH_LEN])
{
	size_t k = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct verify_entry *e = &m->entries[i];

		if (e->type != VERIFY_FILE)
			continue;
		for (size_t c = 0; c < (e->nchunks ? e->nchunks : 1); c++, k++)
			if (ids)
				memcpy(ids[k], e->nchunks ? e->chunks[c].hash : e->hash,
				       VERIFY_HASH_LEN);
	}
	return k;
}
