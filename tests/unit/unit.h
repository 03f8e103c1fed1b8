/* tests/unit/unit.h: test cases a module's suite gathers from several files. */
#ifndef STORKFS_TESTS_UNIT_H
#define STORKFS_TESTS_UNIT_H

#include <check.h>

/* tests/unit/test_verify_meta.c: TUF metadata, client and repository writer. */
TCase *tcase_verify_meta(void);
TCase *tcase_verify_repo(void);
TCase *tcase_verify_cache(void);

/* tests/unit/test_verify_policy.c: the trust policy file. */
TCase *tcase_verify_policy(void);

/* tests/unit/test_store_node.c: the node store (index, inserts, fsck, concurrency). */
TCase *tcase_store_node(void);
TCase *tcase_store_node_concurrency(void);

#endif
