/* fs/daemon.c: storkfs, the FUSE daemon: start-up, the FUSE loop and shutdown. The options
 * are fs/options.c, the refresh thread fs/refresh.c, the prefetch thread fs/prefetcher.c, the
 * log and the start-up verdict fs/log.c.
 *
 * Startup does everything that can fail before it lets the caller go: it reads the pinned
 * root, opens the store, refreshes the metadata and mounts, then (without -f) detaches. The
 * fork happens first (fsd_detach, fs/log.c).
 *
 * `mount -t fuse.storkfs URL MOUNTPOINT -o root=...,store=...` and fstab lines work through
 * mount.fuse3 once /sbin/mount.fuse.storkfs -> mount.fuse3 and storkfs is installed in a
 * directory of /bin/sh's default PATH (mount(8) drops the caller's): meson install does both.
 * SIGTERM / SIGINT / `fusermount3 -u` unmount cleanly; SIGHUP refreshes the metadata now.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/daemon.h"

void fsd_fetched(void *ctx, const uint8_t id[VERIFY_HASH_LEN], uint64_t size, const char *mirror)
{
	struct fsd *d = ctx;
	char hex[VERIFY_HASH_HEX];

	uint64_t k = 0;

	FSD_COUNT(d, fetched, 1);
	FSD_COUNT(d, fetched_bytes, size);
	verify_hex(id, VERIFY_HASH_LEN, hex);
	for (size_t i = 0; !k && i < d->nmirrors; i++)
		if (strcmp(d->mirrors[i], mirror) == 0)
			k = i + 1;
	for (size_t i = 0; !k && i < d->conf.npeers; i++)
		if (strcmp(d->conf.peers[i], mirror) == 0)
			k = d->nmirrors + i + 1;
	if (!k)
		return;
	pthread_mutex_lock(&d->status_lock);
	if (!fsd_strmap_get(&d->sources, hex))
		fsd_strmap_put(&d->sources, hex, k); /* -ENOMEM: source stays "store" */
	pthread_mutex_unlock(&d->status_lock);
}

static int read_file(const char *path, size_t max, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(max + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			ret = STORK_ETOOBIG;
			goto out;
		}
	}
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

/* Whether path (a realpath) is already a storkfs mount point: /proc/self/mountinfo's fifth
 * field (spaces and the like as \ooo) and the type after " - ". */
static bool storkfs_mounted(const char *path)
{
	char line[4096], *tok, *save, mnt[PATH_MAX];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		const char *type = strstr(line, " - ");
		size_t k = 0;

		tok = strtok_r(line, " ", &save);
		for (int i = 1; tok && i < 5; i++)
			tok = strtok_r(NULL, " ", &save);
		if (!tok || !type || strncmp(type + 3, "fuse.storkfs ", 13) != 0)
			continue;
		for (const char *c = tok; *c && k + 1 < sizeof(mnt); k++) {
			if (c[0] == '\\' && c[1] && c[2] && c[3]) {
				mnt[k] =
				    (char)((c[1] - '0') * 64 + (c[2] - '0') * 8 + (c[3] - '0'));
				c += 4;
			} else {
				mnt[k] = *c++;
			}
		}
		mnt[k] = '\0';
		found = strcmp(mnt, path) == 0;
	}
	fclose(f);
	return found;
}

/* Open the store and the repository and get verified metadata. */
static int fsd_start(struct fsd *d)
{
	struct fs_repo_opts ro = {0};
	uint8_t *root = NULL, digest[VERIFY_HASH_LEN];
	char text[1200];
	size_t rootlen = 0;
	int ret;

	ret = read_file(d->conf.rootfile, VERIFY_MAX_ROOT_LEN, &root, &rootlen);
	if (ret < 0) {
		fsd_log(d, "%s: %s", d->conf.rootfile, storkfs_strerror(ret));
		goto out;
	}
	verify_sha256(root, rootlen, digest);
	verify_hex(digest, VERIFY_HASH_LEN, d->repo_id);
	ret = store_open(d->conf.storedir, &d->store);
	if (ret < 0) {
		if (stork_error_detail()[0]) /* it names the store */
			fsd_log(d, "%s", stork_error_text(NULL, ret, text, sizeof(text)));
		else
			fsd_log(d, "%s: %s", d->conf.storedir, storkfs_strerror(ret));
		goto out;
	}
	if (d->conf.store_max_set && !store_readonly(d->store)) {
		ret = store_quota_set(d->store, d->conf.store_max);
		if (ret < 0) {
			fsd_log(d, "store_max=%" PRIu64 ": %s", d->conf.store_max,
				stork_error_text(NULL, ret, text, sizeof(text)));
			goto out;
		}
	}
	if (store_readonly(d->store))
		fsd_log(d,
			"%s: read-only store: serving the objects it holds; it cannot store "
			"more, so files it does not hold cannot be opened (EROFS) and refreshed "
			"metadata is not kept",
			d->conf.storedir);
	/* No cap on a whole transfer: the low-speed limits end a stalled one, and a big file
	 * on a slow link may take longer than a reader waits (it then lands in the store for
	 * the next open). */
	ro.fetch.mirror_retry = d->conf.mirror_retry;
	fsd_chain_opts(&d->conf, &ro.fetch);
	ro.fetch.log = fsd_fetch_log;
	ro.fetch.log_ctx = d;
	ro.fetched = fsd_fetched;
	ro.fetched_ctx = d;
	ro.delegations_at_expiry = true; /* the grace covers delegated roles too */
	ro.unsynced = true;		 /* no sync per object read: group syncs */
	ret = fs_repo_open(d->store, root, rootlen, (const char *const *)d->mirrors, d->nmirrors,
			   &ro, &d->repo);
	if (ret == -EINVAL) { /* a mirror or a transport option: the detail names it */
		fsd_log(d, "%s", stork_error_detail());
		goto out;
	}
	if (ret < 0) {
		fsd_log(d, "%s: %s", d->conf.rootfile,
			stork_error_text(NULL, ret, text, sizeof(text)));
		goto out;
	}
	if (d->conf.policy) {
		struct verify_policy *pol = NULL;

		ret = verify_policy_load(d->conf.policy, &pol);
		if (ret < 0) {
			fsd_log(d, "-o policy=%s: %s", d->conf.policy, stork_error_detail());
			goto out;
		}
		fs_repo_set_policy(d->repo, pol);
	}
	ret = fsd_refresh_now(d, true);
	if (ret == 0)
		fsd_stale_report(d, true); /* mounting stale, or even past the grace, says so */
out:
	free(root);
	return ret;
}

static void fsd_stop(struct fsd *d)
{
	/* Jobs still running use the repository and the store: wait for them (their
	 * transfers were cancelled; only a slow disk can hold them); if they do not end,
	 * leave it all to exit. */
	if (fsd_jobs_drain(&d->jobs, 30) < 0) {
		fsd_log(d, "transfers still running at exit: leaving them to the kernel");
		return;
	}
	fsd_jobs_fini(&d->jobs);
	fsd_strmap_fini(&d->sources);
	for (size_t i = 0; i < d->vtrees.cap; i++)
		if (d->vtrees.slots[i].key)
			fsd_vtree_unref((struct fsd_vtree *)(uintptr_t)d->vtrees.slots[i].val);
	fsd_strmap_fini(&d->vtrees);
	fsd_installed_fini(d);
	fsd_inodes_fini(&d->inodes);
	fsd_slices_fini(d);
	fsd_catalog_unref(d->cat);
	fs_repo_close(d->repo);
	store_close(d->store);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = {0};
	struct fuse_loop_config *loop = NULL;
	struct fsd_args p = {0};
	struct fsd d = {0};
	sigset_t block, old;
	pthread_t refresher, prefetcher;
	bool refreshing = false, prefetching = false, mounted = false, handlers = false;
	char *mountpoint = NULL;
	int ready = -1, code = 1, ret;

	ret = fsd_args_parse(argc, argv, &args, &cmd, &p);
	if (ret) {
		code = ret > 0 ? 0 : 1;
		goto out;
	}
	mountpoint = realpath(p.nonopts[p.n - 1], NULL);
	if (!mountpoint) {
		fprintf(stderr, "storkfs: %s: %s\n", p.nonopts[p.n - 1], strerror(errno));
		goto out;
	}
	if (p.conf.slices) {
		/* Read again at each refresh, after the daemon left its working directory. */
		char *abs = realpath(p.conf.slices, NULL);
		struct stat st;

		if (!abs || stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "storkfs: -o slices=%s: %s\n", p.conf.slices,
				abs ? "not a directory" : strerror(errno));
			free(abs);
			goto out;
		}
		free(p.conf.slices);
		p.conf.slices = abs;
	}
	if (!p.conf.stack && storkfs_mounted(mountpoint)) {
		fprintf(stderr,
			"storkfs: %s: already a storkfs mount: a second one would hide it (unmount "
			"it with fusermount3 -u, or add -o stack to mount over it)\n",
			mountpoint);
		goto out;
	}
	d.conf = p.conf;
	pthread_mutex_init(&d.pf_lock, NULL);
	pthread_cond_init(&d.pf_cond, NULL);
	d.stop_at = INT64_MAX; /* until the first refresh says otherwise */
	d.mirrors = p.nonopts;
	d.nmirrors = p.n - 1;
	d.foreground = cmd.foreground;
	d.mountpoint = mountpoint;
	d.started = time(NULL);
	if (fuse_opt_add_arg(&args, "-oro,default_permissions,fsname=storkfs") != 0)
		goto out;
	/* A node's mount serves every user of every slice; the kernel checks the modes. (Only
	 * root may say so without user_allow_other in /etc/fuse.conf.) */
	if (geteuid() == 0 && !p.conf.no_allow_other && !p.allow_other &&
	    fuse_opt_add_arg(&args, "-oallow_other") != 0)
		goto out;

	if (!cmd.foreground) {
		ret = fsd_detach(&ready);
		if (ret < 0) {
			fprintf(stderr, "storkfs: fork: %s\n", strerror(-ret));
			goto out;
		}
		openlog("storkfs", LOG_PID, LOG_DAEMON);
		d.main_thread = pthread_self();
		d.starting = true;
	}
	ret = fsd_refresh_pipe();
	if (ret < 0) {
		fprintf(stderr, "storkfs: pipe: %s\n", strerror(-ret));
		goto out;
	}
	pthread_mutex_init(&d.cat_lock, NULL);
	pthread_mutex_init(&d.vt_lock, NULL);
	pthread_mutex_init(&d.slice_lock, NULL);
	pthread_mutex_init(&d.root_lock, NULL);
	pthread_mutex_init(&d.status_lock, NULL);
	pthread_mutex_init(&d.whole.lock, NULL);
	if (fsd_inodes_init(&d.inodes) < 0 || fsd_jobs_init(&d.jobs) < 0)
		goto out;
	/* Threads started from here on (the fetcher's, the refresher) leave the termination
	 * signals to the main thread, which runs the FUSE loop and stops it. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if (fsd_start(&d) < 0)
		goto out;

	/* The connection's options (max_readahead=...) are libfuse's, but the session does not
	 * take them: they are parsed out here and applied in the init callback. */
	d.conn_opts = fuse_parse_conn_info_opts(&args);
	if (!d.conn_opts)
		goto out;
	d.se = fuse_session_new(&args, &fsd_ops, sizeof(fsd_ops), &d);
	if (!d.se)
		goto out;
	if (fuse_set_signal_handlers(d.se) != 0)
		goto out;
	handlers = true;
	/* libfuse treats SIGHUP as "exit"; here it means "refresh now". */
	signal(SIGHUP, fsd_on_sighup);
	if (fuse_session_mount(d.se, mountpoint) != 0)
		goto out;
	mounted = true;
	ret = fsd_pt_setup(&d);
	if (ret < 0) {
		fsd_log(&d, "passthrough: %s", strerror(-ret));
		goto out;
	}
	if (pthread_create(&refresher, NULL, fsd_refresh_thread, &d) != 0)
		goto out;
	refreshing = true;
	if (d.conf.nprefetch && store_readonly(d.store)) {
		fsd_log(&d, "prefetch=: ignored: the store is read-only");
	} else if (d.conf.nprefetch) {
		if (pthread_create(&prefetcher, NULL, fsd_prefetch_thread, &d) != 0)
			goto out;
		prefetching = true;
		fsd_prefetch_kick(&d);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	d.starting = false;
	fsd_report_ready(ready, 0);
	ready = -1;
	fsd_notify_systemd("READY=1");
	if (chdir("/") < 0) {
		/* nothing depends on the working directory */
	}
	if (cmd.singlethread) {
		ret = fuse_session_loop(d.se);
	} else {
		loop = fuse_loop_cfg_create();
		if (!loop)
			goto out;
		fuse_loop_cfg_set_clone_fd(loop, (unsigned)cmd.clone_fd);
		if (cmd.max_idle_threads != UINT_MAX) /* else: unset */
			fuse_loop_cfg_set_idle_threads(loop, cmd.max_idle_threads);
		if (cmd.max_threads > 0 && cmd.max_threads <= 100000) /* else: unset */
			fuse_loop_cfg_set_max_threads(loop, cmd.max_threads);
		ret = fuse_session_loop_mt(d.se, loop);
	}
	code = ret == 0 || ret == SIGTERM || ret == SIGINT ? 0 : 1;
	fsd_notify_systemd("STOPPING=1");
out:
	/* Unmounted (or failing): transfers still running only fill the store, and each
	 * insert is atomic, so end them now rather than wait out stalled mirrors. */
	__atomic_store_n(&d.stopping, true, __ATOMIC_RELEASE);
	if (d.repo)
		fetch_cancel(fs_repo_fetcher(d.repo));
	if (refreshing && fsd_refresh_quit() == 0)
		pthread_join(refresher, NULL);
	if (prefetching)
		fsd_prefetch_stop(&d, prefetcher);
	fsd_whole_stop(&d); /* before the session goes */
	if (mounted)
		fuse_session_unmount(d.se);
	if (handlers) {
		signal(SIGHUP, SIG_DFL);
		fuse_remove_signal_handlers(d.se);
	}
	if (d.se)
		fuse_session_destroy(d.se);
	fsd_report_ready(ready, code);
	fsd_pt_fini(&d);
	fsd_stop(&d);
	fuse_loop_cfg_destroy(loop);
	free(d.conn_opts);
	free(mountpoint);
	fsd_args_fini(&p);
	fuse_opt_free_args(&args);
	free(cmd.mountpoint);
	return code;
}
