/* store/import/chunker.c: content-defined chunking of big files (store/README.md, "Chunks").
 *
 * FastCDC (Xia et al., USENIX ATC 2016) with normalized chunking: a gear hash
 * fp = (fp << 1) + gear[byte] rolls over the bytes after the minimum size; a chunk ends after
 * the first byte where the top bits of fp selected by the mask are all zero, with a stricter
 * mask (22 bits) before the average size and a looser one (18 bits) after it, and at the
 * maximum size at the latest. Only the last 64 bytes decide fp's top bits, so a boundary
 * depends on the bytes around it and not on where the file starts: an edit moves or adds the
 * boundaries near it, and the chunking falls back in step with the old one after it.
 *
 * The gear table is fixed (splitmix64 from a constant seed): the same bytes are cut the same
 * way by every publisher, which is what makes chunks shared across versions and packages.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/import/import.h"

#define GEAR_SEED 0x73746f726b636463ULL /* "storkcdc" */
#define MASK_S	  (~0ULL << (64 - 22))	/* before the average: fewer cuts */
#define MASK_L	  (~0ULL << (64 - 18))	/* after it: more */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

size_t store_chunk_cut(const uint8_t *buf, size_t len, bool eof)
{
	uint64_t gear[256], seed = GEAR_SEED, fp = 0;
	size_t end = len < STORE_CHUNK_MAX ? len : STORE_CHUNK_MAX;
	size_t i, avg = end < STORE_CHUNK_AVG ? end : STORE_CHUNK_AVG;

	if (len < STORE_CHUNK_MAX && !eof)
		return 0; /* a cut must see up to the maximum, or the end */
	if (len <= STORE_CHUNK_MIN)
		return len;
	for (i = 0; i < 256; i++)
		gear[i] = splitmix64(&seed);
	for (i = STORE_CHUNK_MIN; i < avg; i++) {
		fp = (fp << 1) + gear[buf[i]];
		if (!(fp & MASK_S))
			return i + 1;
	}
	for (; i < end; i++) {
		fp = (fp << 1) + gear[buf[i]];
		if (!(fp & MASK_L))
			return i + 1;
	}
	return end;
}
