/* verify/array.h: growing a heap array, shared by verify/, store/ and fs/. */
#ifndef STORKFS_VERIFY_ARRAY_H
#define STORKFS_VERIFY_ARRAY_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

/** Make room in the array *p (*cap elements of size bytes, n of them used) for one more:
 * nothing when n < *cap, else double *cap (16 at first) and realloc *p. *p and *cap change only
 * on success. @return 0; -ENOMEM. Thread-safe (for arrays no other thread uses). */
static inline int verify_grow(void **p, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *q;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	q = realloc(*p, ncap * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = ncap;
	return 0;
}

#endif
