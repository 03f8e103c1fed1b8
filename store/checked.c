/* store/checked.c: opening an object with its content checked against its name, once per
 * file and store handle (store/README.md "Reading, links, removal").
 *
 * store_object_open trusts the file system for the bytes: it checks the size only. What a
 * mount serves must be the signed bytes, so its opens go through here: the file is hashed
 * before the descriptor is handed out, unless this handle has hashed this very file before.
 * "This very file" is the same device, inode, size and change time: a file renamed over the
 * object is another inode, and a write into it (or a chmod, a link) moves its change time,
 * so both are hashed again (a write within the same clock tick as the change time noted is
 * the exception where the file system keeps coarse timestamps). Rot below the file system (a
 * disk returning other bytes for the same file) after the hash is not caught here; fsck and
 * the variants' re-hash catch it.
 *
 * The memory is a direct-mapped table of CHECKED_SLOTS entries, indexed by the id's first
 * bytes (uniform: they are a SHA-256), allocated at the first call: bounded whatever the
 * number of objects, and an entry pushed out only costs one more hash. Slots are guarded by
 * CHECKED_LOCKS striped mutexes; a slot being hashed is marked busy, and other callers for
 * the same object wait for that one hash instead of reading the file again. An insert through
 * the handle notes the file it put in place (it was hashed as it was written), so the open
 * that follows a fetch does not read it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/node.h"

#define CHECKED_SLOTS 8192 /* 8192 x 72 bytes: 576 KiB */
#define CHECKED_LOCKS 64

struct checked_slot {
	uint8_t id[VERIFY_HASH_LEN];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec ctime;
	bool valid; /* the fields above describe a file that hashed right */
	bool busy;  /* id is being hashed by some thread */
};

struct node_checked {
	pthread_mutex_t locks[CHECKED_LOCKS]; /* slot i is guarded by locks[i % CHECKED_LOCKS] */
	pthread_cond_t done[CHECKED_LOCKS];   /* a busy slot of that stripe finished */
	struct checked_slot slots[CHECKED_SLOTS];
};

static struct node_checked *checked_new(void)
{
	struct node_checked *c = calloc(1, sizeof(*c));
	size_t i;

	if (!c)
		return NULL;
	for (i = 0; i < CHECKED_LOCKS; i++) {
		pthread_mutex_init(&c->locks[i], NULL);
		pthread_cond_init(&c->done[i], NULL);
	}
	return c;
}

void node_checked_free(struct node_checked *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < CHECKED_LOCKS; i++) {
		pthread_mutex_destroy(&c->locks[i]);
		pthread_cond_destroy(&c->done[i]);
	}
	free(c);
}

/* The handle's table, made at the first call (a racing maker's copy is dropped). */
static struct node_checked *checked_of(struct store *s)
{
	struct node_checked *c = __atomic_load_n(&s->checked, __ATOMIC_ACQUIRE), *mine;

	if (c)
		return c;
	mine = checked_new();
	if (!mine)
		return NULL;
	c = NULL;
	if (__atomic_compare_exchange_n(&s->checked, &c, mine, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return mine;
	node_checked_free(mine);
	return c;
}

static bool same_file(const struct checked_slot *e, const uint8_t id[VERIFY_HASH_LEN],
		      const struct stat *st)
{
	return e->valid && memcmp(e->id, id, VERIFY_HASH_LEN) == 0 && e->dev == st->st_dev &&
	       e->ino == st->st_ino && e->size == st->st_size &&
	       e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Hash fd against id. @return 0; STORK_EBADHASH (entry dropped, detail set); -errno. */
static int check_content(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int fd,
			 const struct stat *st)
{
	uint8_t got[VERIFY_HASH_LEN];
	char rel[NODE_RELPATH_LEN], hex[VERIFY_HASH_HEX];
	uint64_t n;
	int r;

	node_relpath(id, rel);
	r = node_hash_fd(fd, got, &n);
	if (r == -EIO) {
		node_drop_entry(s, id, st);
		stork_errorf("%s/" NODE_OBJDIR "/%s: cannot be read: %s (dropped from the index; "
			     "fetch it again)",
			     s->dir, rel, strerror(EIO));
		return STORK_EBADHASH;
	}
	if (r < 0) {
		stork_errorf("%s/" NODE_OBJDIR "/%s: %s", s->dir, rel, strerror(-r));
		return r;
	}
	if (n != (uint64_t)st->st_size || memcmp(got, id, VERIFY_HASH_LEN) != 0) {
		node_drop_entry(s, id, st);
		verify_hex(got, VERIFY_HASH_LEN, hex);
		stork_errorf("%s/" NODE_OBJDIR "/%s: content hashes to %s (dropped from the index; "
			     "fetch it again)",
			     s->dir, rel, hex);
		return STORK_EBADHASH;
	}
	return 0;
}

/* The slot's object is the file st describes, which hashed right. Under the slot's lock. */
static void slot_remember(struct checked_slot *e, const struct stat *st)
{
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->ctime = st->st_ctim;
	e->valid = true;
}

/* Hash fd unless the table says this file hashed right before; remember a good result. */
static int check_once(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int fd)
{
	struct node_checked *c = checked_of(s);
	struct checked_slot *e;
	pthread_mutex_t *lock;
	pthread_cond_t *done;
	struct stat st;
	size_t i;
	bool mine = false;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!c)
		return check_content(s, id, fd, &st); /* no memory for the table: hash each time */
	memcpy(&i, id, sizeof(i));
	i %= CHECKED_SLOTS;
	e = &c->slots[i];
	lock = &c->locks[i % CHECKED_LOCKS];
	done = &c->done[i % CHECKED_LOCKS];
	pthread_mutex_lock(lock);
	while (e->busy && memcmp(e->id, id, VERIFY_HASH_LEN) == 0)
		pthread_cond_wait(done, lock); /* the same object: wait for that hash */
	if (same_file(e, id, &st)) {
		pthread_mutex_unlock(lock);
		return 0;
	}
	if (!e->busy) { /* take the slot; a slot busy with another object is left to it */
		memcpy(e->id, id, VERIFY_HASH_LEN);
		e->valid = false;
		e->busy = true;
		mine = true;
	}
	pthread_mutex_unlock(lock);

	r = check_content(s, id, fd, &st);

	if (mine) {
		pthread_mutex_lock(lock);
		e->busy = false;
		if (r == 0)
			slot_remember(e, &st);
		pthread_cond_broadcast(done);
		pthread_mutex_unlock(lock);
	}
	return r;
}

void node_checked_note(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int fd)
{
	struct node_checked *c = __atomic_load_n(&s->checked, __ATOMIC_ACQUIRE);
	struct checked_slot *e;
	pthread_mutex_t *lock;
	struct stat st;
	size_t i;

	if (!c || fstat(fd, &st) < 0)
		return; /* nobody checks through this handle yet, or no stat: hashed at open */
	memcpy(&i, id, sizeof(i));
	i %= CHECKED_SLOTS;
	e = &c->slots[i];
	lock = &c->locks[i % CHECKED_LOCKS];
	pthread_mutex_lock(lock);
	if (!e->busy) {
		memcpy(e->id, id, VERIFY_HASH_LEN);
		slot_remember(e, &st);
	}
	pthread_mutex_unlock(lock);
}

int store_object_open_checked(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd)
{
	int fd = -1, r;

	r = store_object_open(s, id, &fd);
	if (r < 0)
		return r;
	r = check_once(s, id, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}
