/* tests/unit/unit_store.c: the store test files' helper (tests/unit/unit.h), apart from
 * unit_files.c: the verify executables that share that one do not link the store. */
#include "store/store.h"
#include "unit.h"
#include "verify/error.h"

struct store *unit_store_open(const char *dir)
{
	struct store *s = NULL;
	int r = store_open(dir, &s);

	ck_assert_msg(r == 0, "store_open %s: %s: %s", dir, storkfs_strerror(r),
		      stork_error_detail());
	return s;
}
