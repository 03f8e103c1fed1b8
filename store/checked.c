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
 * The memory is a table of CHECKED_SETS sets of CHECKED_WAYS entries, the set chosen by the
 * id's first bytes (uniform: they are a SHA-256), allocated at the first call: bounded whatever
 * the number of objects, and an entry pushed out (the set's least recently noted) only costs
 * one more hash. Ways rather than one slot per set: fetch-ahead stores up to a few thousand
 * objects before their readers open them, and with one slot per set a third of them would
 * have been pushed out by then and hashed again. Sets are guarded by CHECKED_LOCKS striped
 * mutexes; an entry being hashed is marked busy, and other callers for the same object wait
 * for that one hash instead of reading the file again. An insert through the handle notes the
 * file it put in place (it was hashed as it was written), so the open that follows a fetch does
 * not read it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/node.h"

#define CHECKED_SETS  4096 /* x CHECKED_WAYS x 80 bytes: 1.25 MiB */
#define CHECKED_WAYS  4
#define CHECKED_LOCKS 64

struct checked_slot {
	uint8_t id[VERIFY_HASH_LEN];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec ctime;
	uint32_t stamp; /* when it was taken (the table's clock): the oldest goes first */
	bool valid;	/* the fields above describe a file that hashed right */
	bool busy;	/* id is being hashed by some thread */
};

struct node_checked {
	pthread_mutex_t locks[CHECKED_LOCKS]; /* set i is guarded by locks[i % CHECKED_LOCKS] */
	pthread_cond_t done[CHECKED_LOCKS];   /* a busy entry of that stripe finished */
	uint32_t clock;			      /* atomic: stamps the entries taken */
	struct checked_slot slots[CHECKED_SETS][CHECKED_WAYS];
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

/* The entry's object is the file st describes, which hashed right. Under the set's lock. */
static void slot_remember(struct checked_slot *e, const struct stat *st)
{
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->ctime = st->st_ctim;
	e->valid = true;
}

/* The set of id, and its lock and condition. */
static struct checked_slot *set_of(struct node_checked *c, const uint8_t id[VERIFY_HASH_LEN],
				   pthread_mutex_t **ret_lock, pthread_cond_t **ret_done)
{
	size_t i;

	memcpy(&i, id, sizeof(i));
	i %= CHECKED_SETS;
	*ret_lock = &c->locks[i % CHECKED_LOCKS];
	*ret_done = &c->done[i % CHECKED_LOCKS];
	return c->slots[i];
}

/* The set's entry for id (valid or busy), or NULL. Under the set's lock. */
static struct checked_slot *way_find(struct checked_slot *set, const uint8_t id[VERIFY_HASH_LEN])
{
	for (int w = 0; w < CHECKED_WAYS; w++)
		if ((set[w].valid || set[w].busy) && memcmp(set[w].id, id, VERIFY_HASH_LEN) == 0)
			return &set[w];
	return NULL;
}

/* An entry of the set for id: a free one, else the oldest that is not busy (NULL: all are),
 * taken for id (not valid yet) and stamped. Under the set's lock. */
static struct checked_slot *way_take(struct node_checked *c, struct checked_slot *set,
				     const uint8_t id[VERIFY_HASH_LEN])
{
	uint32_t now = __atomic_add_fetch(&c->clock, 1, __ATOMIC_RELAXED);
	struct checked_slot *e = NULL;

	for (int w = 0; w < CHECKED_WAYS; w++) {
		if (set[w].busy)
			continue;
		if (!set[w].valid) {
			e = &set[w];
			break;
		}
		/* the oldest: the clock wraps, so by distance from now */
		if (!e || now - set[w].stamp > now - e->stamp)
			e = &set[w];
	}
	if (e) {
		memcpy(e->id, id, VERIFY_HASH_LEN);
		e->valid = false;
		e->stamp = now;
	}
	return e;
}

/* Hash fd (whose stat is st) unless the table says this file hashed right before; remember a
 * good result. */
static int check_once(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int fd,
		      const struct stat *st)
{
	struct node_checked *c = checked_of(s);
	struct checked_slot *set, *e;
	pthread_mutex_t *lock;
	pthread_cond_t *done;
	int r;

	if (!c)
		return check_content(s, id, fd, st); /* no memory for the table: hash each time */
	set = set_of(c, id, &lock, &done);
	pthread_mutex_lock(lock);
	while ((e = way_find(set, id)) && e->busy)
		pthread_cond_wait(done, lock); /* the same object: wait for that hash */
	if (e && same_file(e, id, st)) {
		pthread_mutex_unlock(lock);
		return 0;
	}
	if (e)
		e->valid = false; /* another file under the name: hashed again */
	else
		e = way_take(c, set, id); /* NULL: every entry is busy, this one goes unnoted */
	if (e)
		e->busy = true;
	pthread_mutex_unlock(lock);

	r = check_content(s, id, fd, st);

	if (e) {
		pthread_mutex_lock(lock);
		e->busy = false;
		if (r == 0)
			slot_remember(e, st);
		pthread_cond_broadcast(done);
		pthread_mutex_unlock(lock);
	}
	return r;
}

void node_checked_note(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int fd)
{
	struct node_checked *c = __atomic_load_n(&s->checked, __ATOMIC_ACQUIRE);
	struct checked_slot *set, *e;
	pthread_mutex_t *lock;
	pthread_cond_t *done;
	struct stat st;

	if (!c || fstat(fd, &st) < 0)
		return; /* nobody checks through this handle yet, or no stat: hashed at open */
	set = set_of(c, id, &lock, &done);
	pthread_mutex_lock(lock);
	e = way_find(set, id);
	if (!e)
		e = way_take(c, set, id);
	if (e && !e->busy)
		slot_remember(e, &st);
	pthread_mutex_unlock(lock);
}

int store_object_open_checked(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd)
{
	int fd = -1, r;

	struct stat st;

	r = node_object_open(s, id, &fd, &st);
	if (r < 0)
		return r;
	r = check_once(s, id, fd, &st);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int store_object_open_if_checked(struct store *s, const uint8_t id[VERIFY_HASH_LEN], int *ret_fd)
{
	struct node_checked *c = checked_of(s);
	struct checked_slot *e;
	pthread_mutex_t *lock;
	pthread_cond_t *done;
	struct stat st;
	bool known = false;
	int fd = -1, r;

	r = node_object_open(s, id, &fd, &st);
	if (r < 0)
		return r;
	if (c) {
		struct checked_slot *set = set_of(c, id, &lock, &done);

		pthread_mutex_lock(lock);
		e = way_find(set, id);
		known = e && !e->busy && same_file(e, id, &st);
		pthread_mutex_unlock(lock);
	}
	if (!known) {
		close(fd);
		return -EAGAIN;
	}
	*ret_fd = fd;
	return 0;
}
