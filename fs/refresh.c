/* fs/refresh.c: the daemon's refresh thread. Every refresh= seconds, on SIGHUP, and when the
 * metadata in use expires or its grace ends, it refreshes the metadata (re-reading the policy),
 * swaps in the new catalog, makes the kernel forget what it cached of versions that went or
 * were replaced (forget_gone, invalidate_replaced), and says in the log when the metadata is
 * stale and whether it is still served.
 *
 * Stale metadata (fs/README.md "Stale metadata"): when refreshes fail, the state verified last
 * is served until max_stale after it expired, then nothing under the root is (EKEYEXPIRED)
 * until a refresh succeeds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/daemon.h"

/* The self-pipe that wakes the refresh thread: 'h' refresh now (SIGHUP), 'q' quit. */
static int wake_pipe[2] = {-1, -1};

void fsd_on_sighup(int sig)
{
	int saved = errno;
	char c = 'h';

	(void)sig;
	if (write(wake_pipe[1], &c, 1) < 0) {
		/* full: a refresh is pending anyway */
	}
	errno = saved;
}

static void note_refresh(struct fsd *d, int result, const char *detail)
{
	struct fsd_role roles[FSD_NROLES] = {0};
	struct fs_staleness st;
	time_t expires = 0;

	for (size_t i = 0; i < FSD_NROLES; i++)
		roles[i].known = fs_repo_role_info(d->repo, fsd_roles[i], &roles[i].version,
						   &roles[i].expires) == 0;
	if (fs_repo_expires(d->repo, &expires) < 0)
		expires = 0;
	fs_staleness(expires, d->conf.max_stale, time(NULL), &st);
	__atomic_store_n(&d->stop_at,
			 st.forever || !expires ? INT64_MAX : (int64_t)st.serving_until,
			 __ATOMIC_RELEASE);
	pthread_mutex_lock(&d->status_lock);
	d->refresh.expires = expires;
	memcpy(d->refresh.roles, roles, sizeof(roles));
	d->refresh.last_try = time(NULL);
	d->refresh.result = result;
	if (result == 0)
		d->refresh.last_ok = d->refresh.last_try;
	snprintf(d->refresh.detail, sizeof(d->refresh.detail), "%s", result ? detail : "");
	pthread_mutex_unlock(&d->status_lock);
}

/* Refresh the metadata and, when it verifies, swap in the new catalog and tell the kernel to
 * forget what it cached of the root and the package directories. */

/* After a refresh: names the kernel may still hold in its dentry cache but the new catalog no
 * longer has (a revoked publisher's packages, versions a policy edit or a re-signed role took
 * away), or has with another manifest (a version re-published by another publisher), are
 * dropped from it (with everything cached below them), so that a lookup asks again and finds
 * nothing, or the new version under new numbers. @return whether a version went or changed. */
static bool forget_gone(struct fsd *d, const struct fsd_catalog *old, const struct fsd_catalog *cat)
{
	bool changed = false;

	for (size_t i = 0; old && i < old->n; i++) {
		const struct fsd_cat_pkg *op = &old->pkgs[i], *np = fsd_catalog_pkg(cat, op->name);
		fuse_ino_t ino;

		if (!np) {
			fuse_lowlevel_notify_inval_entry(d->se, FUSE_ROOT_ID, op->name,
							 strlen(op->name));
			changed = true;
			continue;
		}
		ino = fsd_inodes_number(&d->inodes, op->name);
		for (size_t j = 0; j < op->n; j++) {
			const struct fsd_cat_ver *ov = &op->vers[j];

			if (fsd_catalog_signs(cat, op->name, ov->version, ov->hash))
				continue;
			changed = true;
			if (ino)
				fuse_lowlevel_notify_inval_entry(d->se, ino, ov->version,
								 strlen(ov->version));
		}
	}
	return changed;
}

/* After a refresh that replaced or dropped versions: the kernel forgets the attributes, pages
 * and listings it cached of every node of them it still holds (a file a reader has open keeps
 * reading through its own descriptor: fs/README.md "Replaced versions"). */
/* A node of the top level (a slice's follow its own catalog: fs/slices_load.c) in a version
 * the catalog ctx no longer signs. */
static bool replaced(const struct fsd_inode *node, void *ctx)
{
	return !node->slice && (node->kind == FSD_N_VER || node->kind == FSD_N_ENTRY) &&
	       !fsd_catalog_signs(ctx, node->pkg, node->ver, node->vhash);
}

static void invalidate_replaced(struct fsd *d, const struct fsd_catalog *cat)
{
	fuse_ino_t *inos;
	size_t n = fsd_inodes_pick(&d->inodes, replaced, (void *)(uintptr_t)cat, &inos);

	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(d->se, inos[i], 0, 0);
	free(inos); /* -ENOMEM: the entries are forgotten all the same (forget_gone) */
}

int fsd_refresh_now(struct fsd *d, bool startup)
{
	struct fsd_catalog *cat = NULL, *old;
	char text[1200];
	int ret, failed;

	if (!startup && d->conf.policy) {
		/* SIGHUP and each refresh re-read the policy; a broken edit keeps the old one. */
		struct verify_policy *pol = NULL;

		if (verify_policy_load(d->conf.policy, &pol) == 0)
			fs_repo_set_policy(d->repo, pol);
		else
			fsd_log(d, "-o policy=%s: %s: keeping the policy loaded before",
				d->conf.policy, stork_error_detail());
	}
	ret = fs_repo_refresh(d->repo);
	if (__atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE))
		return ret; /* cancelled by the unmount */
	note_refresh(d, ret, stork_error_detail());
	if (ret == 1) {
		fsd_log(d, "warning: %s", stork_error_detail());
	} else if (ret < 0) {
		time_t exp;
		bool earlier = fs_repo_expires(d->repo, &exp) == 0;

		fsd_log(d, "refresh failed%s: %s",
			earlier ? ", the metadata verified earlier stays in use" : "",
			stork_error_text(NULL, ret, text, sizeof(text)));
		if (!earlier && startup)
			return ret; /* nothing to list: the failure said it all */
		/* At startup: an unusable state (-errno) is fatal; the cached state may still
		 * list packages. Later: the state in use may have been re-read with its clock
		 * held at its expiry (fs_repo_opts.delegations_at_expiry), so list it again. */
	}
	failed = startup || ret >= 0 ? 0 : ret;
	ret = fsd_catalog_get(d, &cat);
	if (ret < 0) {
		fsd_log(d, "listing packages: %s", stork_error_text(NULL, ret, text, sizeof(text)));
		return failed ? failed : ret;
	}
	old = startup ? NULL : fsd_catalog(d);
	fsd_set_catalog(d, cat);
	if (!startup) {
		cat = fsd_catalog(d);
		fuse_lowlevel_notify_inval_inode(d->se, FUSE_ROOT_ID, 0, 0);
		for (size_t i = 0; i < cat->n; i++) {
			fuse_ino_t ino = fsd_inodes_number(&d->inodes, cat->pkgs[i].name);

			if (ino)
				fuse_lowlevel_notify_inval_inode(d->se, ino, 0, 0);
		}
		if (forget_gone(d, old, cat)) {
			fsd_retire_trees(d, cat);
			invalidate_replaced(d, cat);
		}
		fsd_catalog_unref(cat);
		fsd_catalog_unref(old);
	}
	fsd_slices_reload(d, startup); /* -o slices=: each slice's file again, the new state */
	return failed;
}

/* Tell the kernel to forget what it cached of every node it knows (attributes, listings), so
 * that the next access asks the daemon: when the mount stops serving. */
static bool any_node(const struct fsd_inode *node, void *ctx)
{
	(void)node, (void)ctx;
	return true;
}

static void invalidate_all(struct fsd *d)
{
	fuse_ino_t *inos = NULL;
	size_t n = fsd_inodes_pick(&d->inodes, any_node, NULL, &inos);

	if (!inos) { /* -ENOMEM: the root at least */
		fuse_lowlevel_notify_inval_inode(d->se, FUSE_ROOT_ID, 0, 0);
		return;
	}
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(d->se, inos[i], 0, 0);
	free(inos);
}

static const char *max_stale_text(const struct fsd *d, char buf[32])
{
	if (d->conf.max_stale == FS_STALE_FOREVER)
		return "inf";
	return fs_format_duration(d->conf.max_stale, buf);
}

static void iso_time(time_t t, char buf[32])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "?");
}

/* After each refresh attempt (and at startup): say loudly when the metadata in use is stale
 * and whether it is still served, and when the mount stops or starts serving again. */
void fsd_stale_report(struct fsd *d, bool startup)
{
	struct fs_staleness st;
	char exp[32], until[32], for_[32], ms[32], last[600];
	time_t expires;
	bool stopped;
	int result;

	pthread_mutex_lock(&d->status_lock);
	expires = d->refresh.expires;
	result = d->refresh.result;
	if (result == 0)
		snprintf(last, sizeof(last), "succeeded");
	else
		snprintf(last, sizeof(last), "failed: %s", d->refresh.detail);
	pthread_mutex_unlock(&d->status_lock);
	fs_staleness(expires, d->conf.max_stale, time(NULL), &st);
	stopped = !st.serving;
	if (d->stopped && !stopped) {
		iso_time(st.expires, exp);
		fsd_log(d, "serving again: the metadata in use expires at %s%s", exp,
			st.stale ? " (stale, within max_stale)" : "");
	}
	if (stopped && !d->stopped && !startup)
		invalidate_all(d);
	d->stopped = stopped;
	if (!st.stale)
		return;
	iso_time(st.expires, exp);
	fs_format_duration(st.stale_for, for_);
	max_stale_text(d, ms);
	if (st.forever) {
		fsd_log(d,
			"warning: metadata expired at %s (stale for %s; max_stale=inf: served for "
			"ever, no bound on a freeze attack; last refresh %s)",
			exp, for_, last);
		return;
	}
	iso_time(st.serving_until, until);
	if (st.serving)
		fsd_log(d,
			"warning: metadata expired at %s (stale for %s; stops serving at %s, "
			"max_stale=%s; last refresh %s)",
			exp, for_, until, ms, last);
	else
		fsd_log(
		    d,
		    "NOT SERVING since %s: metadata expired at %s (stale for %s, beyond "
		    "max_stale=%s; last refresh %s). Lookups, opens and listings fail with "
		    "EKEYEXPIRED until a refresh succeeds: check that the mirrors are reachable "
		    "and serve a current timestamp (the publisher runs `stork repo refresh`), "
		    "then SIGHUP; or raise -o max_stale",
		    until, exp, for_, ms, last);
}

/* Milliseconds until the refresh thread must wake: the next refresh (next_refresh, monotonic
 * seconds), or earlier the moment the state in use expires or its grace ends (then it tries a
 * refresh and reports), a little after the wall-clock second turns. */
static int wait_ms(struct fsd *d, int64_t next_refresh)
{
	struct fs_staleness st;
	struct timespec now;
	int64_t ms, at = 0;
	time_t expires;

	ms = (next_refresh - fsd_now()) * 1000;
	pthread_mutex_lock(&d->status_lock);
	expires = d->refresh.expires;
	pthread_mutex_unlock(&d->status_lock);
	clock_gettime(CLOCK_REALTIME, &now);
	fs_staleness(expires, d->conf.max_stale, now.tv_sec, &st);
	if (expires && !st.stale)
		at = expires;
	else if (expires && st.serving && !st.forever)
		at = st.serving_until;
	if (at) {
		int64_t until = ((int64_t)at - now.tv_sec) * 1000 - now.tv_nsec / 1000000 + 20;

		if (until < ms)
			ms = until;
	}
	if (ms < 0)
		ms = 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

void *fsd_refresh_thread(void *arg)
{
	struct fsd *d = arg;
	struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
	int64_t next = fsd_now() + d->conf.refresh;

	for (;;) {
		int n = poll(&pfd, 1, wait_ms(d, next));
		char c[16];
		bool quit = false;

		if (n < 0 && errno != EINTR)
			break;
		if (n > 0) {
			ssize_t k = read(wake_pipe[0], c, sizeof(c));

			for (ssize_t i = 0; i < k; i++)
				quit |= c[i] == 'q';
			if (quit)
				break;
		}
		if (fsd_refresh_now(d, false) >= 0)
			fsd_prefetch_kick(d);
		next = fsd_now() + d->conf.refresh;
		fsd_stale_report(d, false);
	}
	return NULL;
}

int fsd_refresh_pipe(void)
{
	return pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0 ? -errno : 0;
}

int fsd_refresh_quit(void)
{
	char c = 'q';

	return write(wake_pipe[1], &c, 1) == 1 ? 0 : -1;
}
