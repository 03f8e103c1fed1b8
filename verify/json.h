/* verify/json.h: JSON documents for the modules that must not see jansson: the status attribute
 * a mount serves (fs/status.c), `stork status` reading it and `stork store` reading the node's
 * cached metadata (fs/cli/). A value is a struct verify_json, opaque; verify/ holds the JSON
 * library (verify/json.c over jansson), and TUF's canonical JSON stays verify/'s own
 * (verify/cjson.h, private).
 *
 * Ownership: verify_json_object(), verify_json_array() and verify_json_load() return a value the
 * caller frees with verify_json_free(). verify_json_set() and verify_json_append() take the
 * value they are given (also when they fail). What verify_json_get() and verify_json_at() return
 * is borrowed from the document and valid as long as it. Reading functions accept NULL for any
 * value and then answer "absent", so lookups chain without checks. None of these functions
 * keeps global state: they are thread-safe on distinct documents.
 */
#ifndef STORKFS_VERIFY_JSON_H
#define STORKFS_VERIFY_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct verify_json;

/* ------------------------------------------------------------------------------------------ */
/* Building a document. The set_* functions replace a key already present, keep the order in
 * which keys were first set (verify_json_dump() writes them in that order), and return 0;
 * -EINVAL when a string is not UTF-8 (or o is not an object); -ENOMEM. */

/** A new empty object or array. NULL on -ENOMEM. */
struct verify_json *verify_json_object(void);
struct verify_json *verify_json_array(void);

int verify_json_set_str(struct verify_json *o, const char *key, const char *s);
/** As verify_json_set_str for text that may come from a server or be cut in the middle of a
 * character: when s is not UTF-8, its bytes above 0x7f become '?'. Never -EINVAL for s. */
int verify_json_set_text(struct verify_json *o, const char *key, const char *s);
int verify_json_set_int(struct verify_json *o, const char *key, int64_t v);
int verify_json_set_bool(struct verify_json *o, const char *key, bool v);
int verify_json_set_null(struct verify_json *o, const char *key);
/** Set key to v, taking v. @return as above; -EINVAL also when v is NULL. */
int verify_json_set(struct verify_json *o, const char *key, struct verify_json *v);
/** Append v to the array a, taking v. @return 0; -EINVAL (v NULL, a not an array); -ENOMEM. */
int verify_json_append(struct verify_json *a, struct verify_json *v);

/** The document as text, indented by one space per level, keys in the order they were set.
 * @param[out] ret_text malloc'd, NUL-terminated, caller frees. @return 0; -ENOMEM. */
int verify_json_dump(const struct verify_json *j, char **ret_text);

void verify_json_free(struct verify_json *j);

/* ------------------------------------------------------------------------------------------ */
/* Reading a document. */

/** Parse text (len bytes; not NUL-terminated necessarily). @param what names the input in the
 * detail. @return 0; STORK_EFORMAT with a detail "WHAT: <the parser's message>"; -ENOMEM. */
int verify_json_load(const void *buf, size_t len, const char *what, struct verify_json **ret_j);

/** The member key of object o; NULL when o is not an object or has no such key. */
struct verify_json *verify_json_get(const struct verify_json *o, const char *key);
/** Element i of array a; NULL when a is not an array or i is past its end. */
struct verify_json *verify_json_at(const struct verify_json *a, size_t i);
/** The number of elements of an array or members of an object; 0 for anything else. */
size_t verify_json_size(const struct verify_json *j);

/** j's string, valid as long as the document; NULL when j is not a string. */
const char *verify_json_str(const struct verify_json *j);
/** Whether j is an integer; its value in *ret_v when it is. */
bool verify_json_int(const struct verify_json *j, int64_t *ret_v);
bool verify_json_is_object(const struct verify_json *j);
bool verify_json_is_true(const struct verify_json *j);
bool verify_json_is_null(const struct verify_json *j);

#endif
