
#include "verify/manifest.h"
/* verify/internal.h: private to verify/: helpers its files share.
 *
 * Not part of the module's contract (that is verify/verify.h); nothing outside verify/
 * includes this. verify/meta.h is the private header of the TUF metadata code.
 */
#ifndef STORKFS_VERIFY_INTERNAL_H
#define STORKFS_VERIFY_INTERNAL_H

/* ------------------------------------------------------------------------------------------ */
/* Text for messages (verify/text.c). */

/* A buffer size for text_quote that keeps a path readable in a message. */
#define TEXT_QUOTE_LEN 256

/* Quote s for a message into out (size bytes): printable bytes as they are, control bytes as
 * \xNN, '"' and '\\' with a backslash, a long string cut with "...". @return out. */
const char *text_quote(const char *s, char *out, size_t size);

/* ------------------------------------------------------------------------------------------ */
/* Manifests: the checks verify/manifest.c (building) and verify/manifest_parse.c share. */

/* Longest path or symlink target in a manifest, in bytes. */
#define MANIFEST_PATH_MAX 4096

/* Whether path is a clean relative path: NULL, else its problem as a static string. */
const char *manifest_path_problem(const char *path);
/* Whether target is an acceptable symlink target: NULL, else its problem (static string). */
const char *manifest_target_problem(const char *target);
/* "dir", "file" or "symlink". */
const char *manifest_type_name(enum verify_ftype t);
/* Whether op is one of << <= = >= >>. */
bool manifest_dep_op_valid(const char *op);
/* Whether s is an acceptable dependency name or version: NULL, else its problem. */
const char *manifest_dep_field_problem(const char *s);
/* The entry with this path among n entries sorted by path, NULL if absent. */
const struct verify_entry *manifest_find(const struct verify_entry *entries, size_t n,
					 const char *path);
/* Make room for more entries in m (one of verify_manifest_new's). @return 0; -ENOMEM. */
int manifest_grow(struct verify_manifest *m, size_t more);

struct json_t;
/* A big file's chunks (verify/chunks.c, verify/README.md "Chunks"). What is wrong with the
 * list c[0..n) for a file of size and zsize, NULL if nothing; ret_bad the chunk (n: the list). */
const char *manifest_chunks_problem(uint64_t size, uint64_t zsize, const struct verify_entry *c,
				    size_t n, size_t *ret_bad);
/* Parse an entry's "chunks" into e->chunks (e's size and zsize set). @return 0; -ENOMEM;
 * STORK_EFORMAT with problem (cap bytes) saying why. */
int manifest_chunks_parse(const struct json_t *a, struct verify_entry *e, char *problem,
			  size_t cap);
/* An entry's "chunks" as JSON (a new reference), NULL when out of memory. */
struct json_t *manifest_chunks_json(const struct verify_entry *e);

#endif
