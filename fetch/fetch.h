/* fetch/fetch.h: the whole contract of the fetch module.
 *
 * A repository is read through a struct verify_source (verify/verify.h). This module opens
 * one for a local directory, a file:// URL or an http(s):// URL (libcurl). Every transfer is
 * bounded: a connect timeout, a low-speed abort and a maximum length that comes from signed
 * metadata or from the caps in verify.h. The node-side transports, mirrors and the shared
 * download path arrive with the store (issue 3) behind the same interface.
 */
#ifndef STORKFS_FETCH_H
#define STORKFS_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "verify/verify.h"

struct fetch_opts {
	long connect_timeout;	/* seconds; 0 = 10 (CernVM-FS's direct default) */
	long low_speed_limit;	/* bytes/s; 0 = 1024 */
	long low_speed_time;	/* seconds below low_speed_limit before abort; 0 = 10 */
	const char *cainfo;	/* PEM CA bundle for https, NULL = system default */
};

/** Open a repository for reading: a directory path, file://PATH, http://... or https://...
 * @param[out] src filled in; release with fetch_source_fini.
 * @return 0; -ENOENT if a directory does not exist; -EINVAL for an unknown URL scheme;
 * -ENOMEM. */
int fetch_source_init(struct verify_source *src, const char *repo, const struct fetch_opts *o);
void fetch_source_fini(struct verify_source *src);

#endif
