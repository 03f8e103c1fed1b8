/* tests/fuzz/fuzz_manifest.c: the package manifest parser (verify_manifest_parse).
 *
 * Input: one manifest file (targets/<name>/<hash>.<version>.json). Seeds: manifests written by
 * `stork publish` from a directory, a tar and a .deb (tests/fuzz/make-corpus).
 *
 * Besides surviving the input, an accepted manifest must keep the promises of verify/verify.h:
 * entries sorted and each found by its path, total_size the sum of the file sizes, and its
 * canonical dump must parse again to the same dump (what the writer signs, readers accept). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static void check_accepted(const struct verify_manifest *m)
{
	struct verify_manifest *again = NULL;
	char *dump = NULL, *dump2 = NULL;
	size_t len = 0, len2 = 0, i;
	uint64_t total = 0;
	int r;

	for (i = 0; i < m->n; i++) {
		const struct verify_entry *e = &m->entries[i];

		if (i > 0 && strcmp(m->entries[i - 1].path, e->path) >= 0)
			fuzz_bug("entries not sorted: \"%s\" before \"%s\"", m->entries[i - 1].path,
				 e->path);
		if (verify_manifest_find(m, e->path) != e)
			fuzz_bug("entry \"%s\" not found by its path", e->path);
		if (e->mode & ~07777u)
			fuzz_bug("entry \"%s\": mode %o has more than permission bits", e->path,
				 e->mode);
		if (e->type == VERIFY_FILE)
			total += e->size;
		if (e->type == VERIFY_SYMLINK && (!e->target || e->size != strlen(e->target)))
			fuzz_bug("symlink \"%s\": size is not the target's length", e->path);
	}
	if (total != m->total_size)
		fuzz_bug("total_size %llu, but the files add up to %llu",
			 (unsigned long long)m->total_size, (unsigned long long)total);

	r = verify_manifest_dump(m, &dump, &len);
	if (r == -ENOMEM)
		goto out;
	if (r < 0)
		fuzz_bug("verify_manifest_dump of an accepted manifest: %d", r);
	r = verify_manifest_parse(dump, len, "dump", &again);
	if (r == -ENOMEM)
		goto out;
	if (r < 0)
		fuzz_bug("the dump of an accepted manifest does not parse: %d", r);
	r = verify_manifest_dump(again, &dump2, &len2);
	if (r == -ENOMEM)
		goto out;
	if (r < 0 || len != len2 || memcmp(dump, dump2, len) != 0)
		fuzz_bug("dump, parse, dump changes the manifest");
out:
	verify_manifest_free(again);
	free(dump);
	free(dump2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verify_manifest *m = NULL;
	int r;

	r = verify_manifest_parse(data, size, "targets/fuzz/manifest.json", &m);
	if (r == 0) {
		check_accepted(m);
		verify_manifest_free(m);
	} else if (r != STORK_EFORMAT && r != STORK_EHOSTILE && r != STORK_ENAME && r != -ENOMEM) {
		fuzz_bug("verify_manifest_parse returned %d (%s), not a documented code", r,
			 storkfs_strerror(r));
	}
	stork_error_clear();
	return 0;
}
