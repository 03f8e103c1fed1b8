/* verify/text.h: checks on untrusted text: UTF-8 and bidirectional controls; sizes for people to
 * read (verify/text.c). */
#ifndef STORKFS_VERIFY_TEXT_H
#define STORKFS_VERIFY_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* Text. */

/** Whether s[0..len) is well-formed UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF (a NUL byte counts as a character). For a C string pass strlen(s). Thread-safe. */
bool verify_utf8_valid(const char *s, size_t len);
/** The well-formed UTF-8 character at the start of s (len > 0 bytes left): its length in bytes,
 * and its code point in *ret_cp; 0 when the bytes there are not one (as verify_utf8_valid
 * judges). Thread-safe. */
size_t verify_utf8_char(const char *s, size_t len, uint32_t *ret_cp);
/** The first bidirectional embedding, override or isolate control in the C string s (U+202A to
 * U+202E, U+2066 to U+2069: they make a name display as another, "Trojan Source"): its code
 * point and Unicode name ("U+202E RIGHT-TO-LEFT OVERRIDE", static) with its byte offset in
 * *ret_pos; NULL when there is none. Thread-safe. */
const char *verify_bidi_control(const char *s, size_t *ret_pos);

/** n bytes for people to read, in out (len bytes, 32 are enough): "N UNIT" below 1 KiB (unit: "B",
 * "bytes"), else with one decimal in KiB, MiB, GiB or TiB ("1.5 MiB"). Thread-safe. */
void verify_size_text(uint64_t n, const char *unit, char *out, size_t len);

#endif
