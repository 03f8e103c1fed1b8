/* tests/fuzz/fuzz_meta.c: the TUF metadata parser (meta_parse) and the checks that run on a
 * parsed file, for each of the four metadata types, and a client started from the input as
 * its pinned root (verify_client_new: parse plus the root's own threshold of signatures).
 *
 * Input: one metadata file as a repository serves it. Seeds: real files written by
 * `stork repo init/delegate/publish` (tests/fuzz/make-corpus). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "verify/meta.h"

static const enum meta_type types[] = {META_ROOT, META_TARGETS, META_SNAPSHOT, META_TIMESTAMP};

/* Target paths to match delegations against besides the file's own. */
static const char *const probes[] = {
    "hello/1.0.json", "lib-x/2.json", "a/b/c.json", "", "hello", "/", "hello/", "*/*",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static void check_delegation(const struct meta *m, const struct meta_delegation *d)
{
	const char *keyid = NULL;
	size_t i;
	char *s;

	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		meta_delegation_matches(d, probes[i]);
	for (i = 0; i < m->ntargets; i++)
		meta_delegation_matches(d, m->targets[i].path);
	s = meta_delegation_patterns(d);
	free(s);
	if (meta_check_sigs(m, d->name, &m->keys, d, &keyid) == 0 &&
	    !meta_delegation_has_key(d, keyid))
		fuzz_bug("%s: a signature counted with key %s the role does not list", m->file,
			 keyid);
}

static void check_parsed(const struct meta *m)
{
	size_t i;
	int r;

	r = meta_check_version(m, m->version, "itself");
	if (r != 0)
		fuzz_bug("%s: meta_check_version against its own version: %d", m->file, r);
	meta_check_expiry(m, "fuzz", FUZZ_NOW);
	switch (m->type) {
	case META_ROOT:
		for (i = 0; i < META_NROLES; i++)
			check_delegation(m, &m->roles[i]);
		break;
	case META_TARGETS:
		for (i = 0; i < m->ndels; i++) {
			check_delegation(m, &m->dels[i]);
			if (meta_find_delegation(m, m->dels[i].name) != &m->dels[i])
				fuzz_bug("%s: delegation %s not found by name", m->file,
					 m->dels[i].name);
		}
		for (i = 0; i < m->ntargets; i++) {
			char *name = NULL, *version = NULL;

			if (meta_find_target(m, m->targets[i].path) != &m->targets[i])
				fuzz_bug("%s: target %s not found by path", m->file,
					 m->targets[i].path);
			if (verify_target_split(m->targets[i].path, &name, &version) == 0) {
				if (verify_check_package_name(name) < 0 ||
				    verify_check_version(version) < 0)
					fuzz_bug("%s: target %s splits into a bad name or version",
						 m->file, m->targets[i].path);
				free(name);
				free(version);
			}
		}
		break;
	case META_SNAPSHOT:
	case META_TIMESTAMP:
		for (i = 0; i < m->nfiles; i++)
			if (meta_find_file(m, m->files[i].name) != &m->files[i])
				fuzz_bug("%s: file %s not found by name", m->file,
					 m->files[i].name);
		break;
	}
	for (i = 0; i < m->keys.n; i++)
		if (meta_keyring_find(&m->keys, verify_key_id(m->keys.keys[i])) == NULL)
			fuzz_bug("%s: key %zu not found by its id", m->file, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verify_client *c = NULL;
	struct meta *m = NULL;
	size_t i;
	int r;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		r = meta_parse(data, size, "metadata/1.fuzz.json", types[i], &m);
		if (r == 0) {
			if (m->rawlen != size || (size && memcmp(m->raw, data, size) != 0))
				fuzz_bug("meta_parse: raw bytes not kept");
			check_parsed(m);
			meta_free(m);
			m = NULL;
		} else if (r != STORK_EFORMAT && r != STORK_EUNSUPPORTED && r != STORK_ENAME &&
			   r != -ENOMEM) {
			fuzz_bug("meta_parse returned %d (%s), not a documented code", r,
				 storkfs_strerror(r));
		}
	}
	r = verify_client_new(data, size, FUZZ_NOW, &c);
	if (r == 0)
		verify_client_free(c);
	else if (r != STORK_EFORMAT && r != STORK_EBADSIG && r != STORK_EUNSUPPORTED &&
		 r != STORK_ENAME && r != -ENOMEM)
		fuzz_bug("verify_client_new returned %d (%s), not a documented code", r,
			 storkfs_strerror(r));
	stork_error_clear();
	return 0;
}
