/* verify/error.h: storkfs's error codes, their one decoder, and the calling thread's error
 * detail (verify/error.c). Every module reports failures through these.
 */
#ifndef STORKFS_VERIFY_ERROR_H
#define STORKFS_VERIFY_ERROR_H

#include <stddef.h>

/* ------------------------------------------------------------------------------------------ */
/* Errors: one reserved range, one decoder. */

enum {
	STORK_EBADSIG = -20001,	     /* signatures do not meet the threshold */
	STORK_EEXPIRED = -20002,     /* metadata past its expiry */
	STORK_EROLLBACK = -20003,    /* a version older than one already trusted */
	STORK_EBADHASH = -20004,     /* content does not match its signed hash */
	STORK_EBADLEN = -20005,	     /* content longer or shorter than its signed length */
	STORK_EFORMAT = -20006,	     /* malformed metadata, manifest or key */
	STORK_EPATTERN = -20007,     /* a target outside the delegated patterns */
	STORK_EHOSTILE = -20008,     /* a hostile archive entry or path */
	STORK_ENAME = -20009,	     /* a package name, version or role name outside the charset */
	STORK_ETOOBIG = -20010,	     /* input exceeds a configured or signed limit */
	STORK_EMISSING = -20011,     /* a file the metadata names is absent */
	STORK_EVERSION = -20012,     /* a version number that is not the one expected */
	STORK_EUNSUPPORTED = -20013, /* a source format or feature we do not handle */
};

/** Describe an error code: a -errno or a STORK_E* code. Never NULL; thread-safe. */
const char *storkfs_strerror(int err);

/* The error detail's size, its final NUL included: room for two paths of PATH_MAX (a package
 * path and where it goes) and what went wrong. A copy of a detail this long is never cut. */
#define STORK_DETAIL_MAX 16384

/** Set the calling thread's error detail (printf-style); replaces any previous detail.
 * Returns nothing; never fails (truncates at STORK_DETAIL_MAX - 1 bytes, never inside a
 * UTF-8 character). */
void stork_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Prefix the calling thread's error detail with more context, e.g. the file name.
 * The result is "PREFIX: DETAIL" (": " is not doubled if PREFIX ends with it; just PREFIX
 * when there was no detail). */
void stork_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The calling thread's error detail, "" when none was set. Valid until the next
 * stork_errorf / stork_error_prefix / stork_error_clear in this thread. */
const char *stork_error_detail(void);

/** Forget the calling thread's error detail. */
void stork_error_clear(void);

/** An error for a message, said once: detail (NULL = the calling thread's detail) followed by
 * " (<storkfs_strerror(err)>)", unless the detail already says that text (most details end
 * with it: "store/objects/ab: No space left on device"); the decoded error alone when the
 * detail is empty. Never "No space left on device (No space left on device)". Writes into buf
 * (len bytes, cut if needed). @return buf. Thread-safe. */
const char *stork_error_text(const char *detail, int err, char *buf, size_t len);

#endif
