/* store/pending.c: objects put in place without a sync, indexed at the next group sync
 * (store/README.md, "Unsynced inserts").
 *
 * store_insert_commit_unsynced checks an object (size, SHA-256) and gives it its name in
 * objects/ without any fsync, then records it here, in memory: the process that wrote it finds
 * it at once (the lookups in node.c ask here when the index says -ENOENT), other processes
 * find it once it is indexed. A group sync indexes everything recorded so far: one syncfs()
 * of the store's file system (the bytes and the names durable), then one write transaction
 * for all the records, then an index sync (a group of at most PENDING_FEW objects syncs each
 * file and its directory instead of the file system). It runs on a thread of its own, PENDING_MS
 * after the first object of a group, at once when PENDING_MAX / 2 objects wait (adders wait at
 * PENDING_MAX), at store_sync, and when the environment's last handle closes. So the index
 * lists an object only when its bytes and name are durable, as before; an object that a crash
 * leaves named but unindexed (its bytes possibly lost) is re-hashed before any use, as every
 * unindexed file already was.
 *
 * Locking: p->lock protects everything below it in struct node_pending. Two generations: adds
 * go to gen[cur]; a sync takes the whole generation (flushing), so lookups search both while
 * the sync runs, and one sync runs at a time. Entries are never moved (linear probing; a
 * forgotten one is marked dead), and a generation is cleared at once when its sync ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/node.h"

#define PENDING_MAX   4096 /* objects waiting for one group sync */
#define PENDING_SLOTS 8192 /* table slots per generation (twice PENDING_MAX) */
#define PENDING_MS    1000 /* a group waits at most this long for its sync */
#define PENDING_FEW   64   /* a group this small syncs its files one by one, not syncfs */

struct pent {
	uint8_t id[VERIFY_HASH_LEN];
	uint64_t size;
	int64_t ms; /* inserted or last used, ms since the epoch (the record's LRU time) */
	bool used;
	bool dead; /* forgotten: found wrong after it was recorded */
};

struct gen {
	struct pent *slots; /* PENDING_SLOTS, allocated at the first add */
	size_t n;
	uint64_t bytes, live; /* of the entries not dead: the quota counts them (quota.c) */
};

struct node_pending {
	struct node_env *e;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* for the syncing thread: work, or stop */
	pthread_cond_t done; /* a group sync ended */
	struct gen gen[2];
	int cur;
	bool flushing; /* gen[!cur] is being synced */
	bool stop;
	bool started;
	pthread_t thread;
	int syncfd;		   /* a descriptor on the store's file system, for syncfs */
	struct timespec first;	   /* when gen[cur]'s first object came */
	uint64_t synced, failures; /* counters, for tests and status */
	long sync_ms;		   /* PENDING_MS, or STORK_STORE_SYNC_MS (tests) */
};

int node_pending_new(struct node_env *e, struct node_pending **ret_p)
{
	struct node_pending *p = calloc(1, sizeof(*p));
	pthread_condattr_t attr;
	const char *env;

	if (!p)
		return -ENOMEM;
	p->e = e;
	p->syncfd = -1;
	/* Tests hold a group longer, to cut the power while it waits (store_power_cut). */
	env = getenv("STORK_STORE_SYNC_MS");
	p->sync_ms = env ? strtol(env, NULL, 10) : 0;
	if (p->sync_ms <= 0 || p->sync_ms > 3600000)
		p->sync_ms = PENDING_MS;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&p->done, NULL);
	*ret_p = p;
	return 0;
}

static int64_t epoch_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static size_t slot_of(const uint8_t id[VERIFY_HASH_LEN])
{
	return (size_t)(node_get_le(id, 8) % PENDING_SLOTS);
}

static struct pent *find(struct gen *g, const uint8_t id[VERIFY_HASH_LEN])
{
	if (!g->slots)
		return NULL;
	for (size_t i = slot_of(id), k = 0; k < PENDING_SLOTS; i = (i + 1) % PENDING_SLOTS, k++) {
		if (!g->slots[i].used)
			return NULL;
		if (memcmp(g->slots[i].id, id, VERIFY_HASH_LEN) == 0)
			return &g->slots[i];
	}
	return NULL;
}

/* The bytes and names of a small group durable without syncfs(), which also waits for every
 * other process's dirty data on the file system (a busy disk would hold an unmount for
 * seconds): each file fdatasync()ed, then each objects/ab directory holding one. */
static int sync_each(struct node_pending *p, const struct node_index_item *items, size_t n)
{
	bool dirs[256] = {false};
	char rel[NODE_RELPATH_LEN];
	int fd, r = 0;

	for (size_t i = 0; i < n; i++) {
		node_relpath(items[i].id, rel);
		fd = openat(p->syncfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fdatasync(fd) < 0)
			r = -errno;
		if (fd >= 0)
			close(fd);
		if (r < 0)
			goto fail;
		dirs[items[i].id[0]] = true;
	}
	for (unsigned d = 0; d < 256; d++) {
		if (!dirs[d])
			continue;
		snprintf(rel, sizeof(rel), "%02x", d & 0xffu);
		fd = openat(p->syncfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fsync(fd) < 0)
			r = -errno;
		if (fd >= 0)
			close(fd);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	stork_errorf("%s/" NODE_OBJDIR "/%s: cannot sync: %s", p->e->dir, rel, strerror(-r));
	return r;
}

/* Sync everything recorded so far: syncfs (or each file of a small group), then one
 * transaction. Called without the lock. */
static int flush(struct node_pending *p)
{
	struct node_index_item *items = NULL;
	struct gen *g;
	size_t n = 0;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	while (p->flushing)
		pthread_cond_wait(&p->done, &p->lock);
	g = &p->gen[p->cur];
	if (g->n == 0) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	p->flushing = true;
	p->cur = !p->cur;
	pthread_mutex_unlock(&p->lock);

	/* g is ours until flushing is cleared: nobody adds to it, lookups only read. */
	items = calloc(g->n, sizeof(*items));
	if (!items) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < PENDING_SLOTS; i++) {
		if (!g->slots[i].used || g->slots[i].dead)
			continue;
		memcpy(items[n].id, g->slots[i].id, VERIFY_HASH_LEN);
		items[n].size = g->slots[i].size;
		items[n].ms = g->slots[i].ms;
		n++;
	}
	/* 1. The bytes and the names of every object durable; 2. only then the records. */
	if (n <= PENDING_FEW) {
		r = sync_each(p, items, n);
		if (r < 0)
			goto out;
	} else if (syncfs(p->syncfd) < 0) {
		r = -errno;
		stork_errorf("%s: cannot sync the file system: %s", p->e->dir, strerror(-r));
		goto out;
	}
	/* The records durable too (the environment runs with MDB_NOMETASYNC): a group that was
	 * synced stays indexed through a power cut. */
	if (n)
		r = node_env_index_objects(p->e, items, n);
	if (n && r == 0)
		r = node_sync(p->e);
out:
	free(items);
	pthread_mutex_lock(&p->lock);
	/* On failure the objects stay named and unindexed: re-hashed before any use. */
	if (r < 0)
		p->failures += g->n;
	else
		p->synced += n;
	memset(g->slots, 0, PENDING_SLOTS * sizeof(*g->slots));
	g->n = 0;
	g->bytes = g->live = 0;
	p->flushing = false;
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->lock);
	return r;
}

static void *sync_main(void *arg)
{
	struct node_pending *p = arg;
	struct timespec due;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->gen[p->cur].n == 0)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stop)
			break;
		due = p->first;
		due.tv_sec += p->sync_ms / 1000;
		due.tv_nsec += (p->sync_ms % 1000) * 1000000L;
		if (due.tv_nsec >= 1000000000L) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000L;
		}
		while (!p->stop && p->gen[p->cur].n < PENDING_MAX / 2 &&
		       pthread_cond_timedwait(&p->wake, &p->lock, &due) == 0)
			;
		pthread_mutex_unlock(&p->lock);
		flush(p);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	flush(p); /* the last group: a clean shutdown leaves nothing unindexed */
	return NULL;
}

int node_pending_add(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size)
{
	struct node_pending *p = s->env->pending;
	struct gen *g;
	struct pent *x;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (p->syncfd < 0) {
		p->syncfd = fcntl(s->objfd, F_DUPFD_CLOEXEC, 0);
		if (p->syncfd < 0) {
			r = -errno;
			goto out;
		}
	}
	if (!p->started) {
		r = -pthread_create(&p->thread, NULL, sync_main, p);
		if (r < 0)
			goto out;
		p->started = true;
	}
	for (int i = 0; i < 2; i++) {
		if (!p->gen[i].slots)
			p->gen[i].slots = calloc(PENDING_SLOTS, sizeof(struct pent));
		if (!p->gen[i].slots) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* Full: wait for the running sync, or ask for one. */
	while (p->gen[p->cur].n >= PENDING_MAX) {
		pthread_cond_signal(&p->wake);
		pthread_cond_wait(&p->done, &p->lock);
	}
	g = &p->gen[p->cur];
	x = find(g, id);
	if (x) {
		if (!x->dead) {
			g->bytes -= x->size;
			g->live--;
		}
		x->dead = false;
		x->size = size;
		x->ms = epoch_ms();
		g->bytes += size;
		g->live++;
		goto out;
	}
	for (size_t i = slot_of(id);; i = (i + 1) % PENDING_SLOTS) {
		if (g->slots[i].used)
			continue;
		x = &g->slots[i];
		break;
	}
	x->used = true;
	memcpy(x->id, id, VERIFY_HASH_LEN);
	x->size = size;
	x->ms = epoch_ms();
	g->bytes += size;
	g->live++;
	if (g->n++ == 0) {
		clock_gettime(CLOCK_MONOTONIC, &p->first);
		pthread_cond_signal(&p->wake);
	} else if (g->n == PENDING_MAX / 2) {
		pthread_cond_signal(&p->wake);
	}
out:
	pthread_mutex_unlock(&p->lock);
	if (r < 0)
		stork_errorf("%s: cannot record an unsynced object: %s", s->dir, strerror(-r));
	return r;
}

int node_pending_get(struct node_env *e, const uint8_t id[VERIFY_HASH_LEN], uint64_t *ret_size)
{
	struct node_pending *p = e->pending;
	struct pent *x = NULL;
	int r = -ENOENT;

	if (!p)
		return -ENOENT;
	pthread_mutex_lock(&p->lock);
	x = find(&p->gen[p->cur], id);
	if ((!x || x->dead) && p->flushing)
		x = find(&p->gen[!p->cur], id);
	if (x && !x->dead) {
		*ret_size = x->size;
		r = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Forget the object, or note a use of it at ms, in whichever generation holds it live. */
static void update(struct node_env *e, const uint8_t id[VERIFY_HASH_LEN], bool forget, int64_t ms)
{
	struct node_pending *p = e->pending;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < 2; i++) {
		struct pent *x = find(&p->gen[i], id);

		if (!x || x->dead)
			continue;
		if (forget) {
			x->dead = true;
			p->gen[i].bytes -= x->size;
			p->gen[i].live--;
		} else if (ms > x->ms) {
			x->ms = ms;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

void node_pending_forget(struct node_env *e, const uint8_t id[VERIFY_HASH_LEN])
{
	update(e, id, true, 0);
}

void node_pending_touch(struct node_env *e, const uint8_t id[VERIFY_HASH_LEN], int64_t ms)
{
	update(e, id, false, ms);
}

void node_pending_usage(struct node_env *e, uint64_t *ret_bytes, uint64_t *ret_objects)
{
	struct node_pending *p = e->pending;

	*ret_bytes = *ret_objects = 0;
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < 2; i++) {
		*ret_bytes += p->gen[i].bytes;
		*ret_objects += p->gen[i].live;
	}
	pthread_mutex_unlock(&p->lock);
}

int node_pending_flush(struct node_env *e)
{
	struct node_pending *p = e->pending;
	int r;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	r = p->syncfd < 0 ? 1 : 0;
	pthread_mutex_unlock(&p->lock);
	return r ? 0 : flush(p);
}

void node_pending_free(struct node_pending *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	if (p->started)
		pthread_join(p->thread, NULL);
	if (p->syncfd >= 0)
		close(p->syncfd);
	free(p->gen[0].slots);
	free(p->gen[1].slots);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int store_sync(struct store *s)
{
	if (s->readonly)
		return 0;
	return node_pending_flush(s->env);
}

int store_object_adopt(struct store *s, const uint8_t id[VERIFY_HASH_LEN], uint64_t size, bool sync)
{
	char rel[NODE_RELPATH_LEN];
	uint8_t got[VERIFY_HASH_LEN];
	uint64_t len = 0;
	struct stat st;
	int fd, r = -ENOENT;

	if (s->readonly)
		return -ENOENT;
	node_relpath(id, rel);
	fd = openat(s->objfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		goto out;
	/* Never used as it is: its bytes may be what a crash left. */
	if (node_hash_fd(fd, got, &len) < 0 || len != size || memcmp(got, id, VERIFY_HASH_LEN))
		goto out;
	if (sync) {
		r = fsync(fd) < 0 ? -errno : node_index_object(s, id, size);
		if (r < 0)
			stork_errorf("%s/" NODE_OBJDIR "/%s: cannot make it durable: %s", s->dir,
				     rel, storkfs_strerror(r));
	} else {
		r = node_pending_add(s, id, size);
	}
	if (r == 0)
		node_checked_note(s, id, fd);
out:
	close(fd);
	if (r == -ENOENT)
		stork_error_clear();
	return r;
}
