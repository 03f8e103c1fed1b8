#!/usr/bin/env bash
# Several storkfs mounts share one node store, and storkfs mounts the way an admin mounts it.
# Two mounts of one repository with the same store= at once: everything read through the
# first (its objects fetched once) then reads through the second with zero object requests and
# the same bytes; after both are unmounted, a new mount of that store reads everything with
# zero object requests; a mount with another, empty store fetches every object again (the
# counting sees fetches). `mount -t fuse.storkfs "DEAD,GOOD"` (a comma-separated mirror list
# whose first mirror refuses connections) and an fstab line (mount -T) with the fstab-only
# options defaults,_netdev,nofail mount through Debian's mount.fuse3; files read correctly;
# `umount` and `fusermount3 -u` unmount and the daemon exits. `stork status MOUNTPOINT` shows
# the running mounts' counters (objects fetched, hits, per mirror), and user.storkfs.source
# says where each mount got a file from.
. "$(dirname "$0")/lib.sh"

need python3 nginx mount umount pgrep
need_fuse

# mount -t fuse.storkfs needs the mount helper; made here (and removed at exit) if missing.
HELPER=/sbin/mount.fuse.storkfs
HELPER_MADE=0
mount_shared_cleanup() {
	local rc=$?
	if [ "$HELPER_MADE" = 1 ]; then
		rm -f "$HELPER"
	fi
	(exit "$rc")
	_cleanup
}
trap mount_shared_cleanup EXIT

# mount_shared_big_tree DIR: a bigger package: 150 pseudo-random files (0..128 KiB, some of
# them repeated) in 15 directories and one 16 MiB file; the same bytes in every run.
mount_shared_big_tree() {
	python3 - "$1" <<-'EOF'
		import os, random, sys
		root = sys.argv[1]
		rnd = random.Random(7)
		os.makedirs(root)
		blobs = []
		for i in range(150):
		    d = os.path.join(root, "share/big/d%02d" % (i % 15))
		    os.makedirs(d, exist_ok=True)
		    if blobs and i % 10 == 9:
		        data = rnd.choice(blobs)
		    else:
		        data = rnd.randbytes(rnd.randrange(0, 131072))
		        blobs.append(data)
		    with open(os.path.join(d, "f%03d.bin" % i), "wb") as f:
		        f.write(data)
		os.makedirs(os.path.join(root, "lib"))
		with open(os.path.join(root, "lib/huge.bin"), "wb") as f:
		    for _ in range(16):
		        f.write(rnd.randbytes(1 << 20))
	EOF
}

PVS=(synth:1 synth:2 big:1.0)

# mount_shared_read_all MNT: every file of every version reads back its source's bytes.
mount_shared_read_all() {
	local pv p v
	for pv in "${PVS[@]}"; do
		p=${pv%%:*} v=${pv#*:}
		if ! timeout 300 diff -r --no-dereference "$T/src/$p-$v" "$1/$p/$v" >"$T/diff" 2>&1; then
			head -20 "$T/diff" >&2
			fail "$1: $p $v: file contents through the mount differ from the source"
		fi
	done
}

# mount_shared_objects: object requests in the newest nginx's access log so far.
mount_shared_objects() {
	nginx_requests '"GET /objects/'
}

# mount_shared_daemon_gone MNT: no process mentions MNT any more (waits up to 10 s).
mount_shared_daemon_gone() {
	for _ in $(seq 100); do
		pgrep -f -- "$1" >/dev/null || return 0
		sleep 0.1
	done
	echo "still running for $1: $(pgrep -a -f -- "$1")" >&2
	return 1
}

make_repo
synth_tree "$T/src/synth-1" 1
synth_tree "$T/src/synth-2" 2
mount_shared_big_tree "$T/src/big-1.0"
for pv in "${PVS[@]}"; do
	publish "${pv%%:*}" "${pv#*:}" "$T/src/${pv%%:*}-${pv#*:}" --quiet
done
WANT=$(for pv in "${PVS[@]}"; do
	manifest_hashes "${pv%%:*}" "${pv#*:}"
done | cut -d' ' -f1 | sort -u | wc -l)
start_nginx "$REPO"
STORE=$T/store

# --- two mounts, one store, at once ----------------------------------------------------------
mount_storkfs "$T/mnt-a" "store=$STORE,timeout=60" "$NGINX_URL"
PID_A=$SFS_PID
mount_storkfs "$T/mnt-b" "store=$STORE,timeout=60" "$NGINX_URL"
PID_B=$SFS_PID
[ "$PID_A" != "$PID_B" ] && is_mounted "$T/mnt-a" && is_mounted "$T/mnt-b" ||
	fail "two mounts of the same store are not both up"
pass "two storkfs mounts of one repository with the same store run at once"

mount_shared_read_all "$T/mnt-a"
n=$(mount_shared_objects)
[ "$n" -eq "$WANT" ] || fail "reading everything through mount A sent $n object requests, want $WANT"
pass "mount A reads every file correctly, fetching each of the $WANT distinct objects once"
mount_shared_read_all "$T/mnt-b"
n=$(mount_shared_objects)
[ "$n" -eq "$WANT" ] ||
	fail "mount B sent $((n - WANT)) object requests for files mount A had already fetched into the shared store"
pass "mount B reads the same bytes with zero object requests (the shared store)"

# --- remount the same store ------------------------------------------------------------------
unmount_storkfs "$T/mnt-a" "$PID_A"
unmount_storkfs "$T/mnt-b" "$PID_B"
pass "both mounts unmount and their daemons exit"
mount_storkfs "$T/mnt-r" "store=$STORE,timeout=60" "$NGINX_URL"
PID_R=$SFS_PID
mount_shared_read_all "$T/mnt-r"
n=$(mount_shared_objects)
[ "$n" -eq "$WANT" ] || fail "a new mount of the same store sent $((n - WANT)) object requests"
pass "a new mount of the same store reads everything with zero object requests"

# --- another, empty store fetches ------------------------------------------------------------
mount_storkfs "$T/mnt-c" "store=$T/store-c,timeout=60" "$NGINX_URL"
PID_C=$SFS_PID
mount_shared_read_all "$T/mnt-c"
n=$(mount_shared_objects)
[ "$n" -eq $((2 * WANT)) ] ||
	fail "a mount with an empty store sent $((n - WANT)) object requests, want $WANT (one per object)"
pass "a mount with another, empty store fetches every object again ($WANT requests)"
fsck_clean "the shared store is clean" "$STORE"

# --- mount -t fuse.storkfs with two mirrors, the first one dead ---------------------------------
# (waits on the lead: comma-separated mirrors in one URL argument, fstab-only options ignored)
if [ ! -e "$HELPER" ]; then
	ln -s /sbin/mount.fuse3 "$HELPER" || fail "cannot make $HELPER"
	HELPER_MADE=1
fi
[ -x /sbin/mount.fuse3 ] || fail "/sbin/mount.fuse3 is missing (package fuse3)"
free_port
DEAD=http://127.0.0.1:$FREE_PORT
MIRRORS="$DEAD,$NGINX_URL"
SFS_BIN=$(cd "$(dirname "$STORKFS")" && pwd)
[ "$(basename "$STORKFS")" = storkfs ] || fail "STORKFS is $STORKFS, not a binary named storkfs (mount -t runs 'storkfs')"
MNT_T=$T/mnt-t
mkdir -p "$MNT_T"
_MOUNTS+=("$MNT_T")
before=$(mount_shared_objects)
expect_rc 0 "mount -t fuse.storkfs \"DEAD,GOOD\" MNT -o root=,store= mounts" \
	env PATH="$SFS_BIN:$PATH" timeout 60 mount -t fuse.storkfs "$MIRRORS" "$MNT_T" \
	-o "root=$ROOT,store=$T/store-t,timeout=30"
grep -qF " $MNT_T fuse.storkfs " /proc/mounts || fail "no fuse.storkfs mount at $MNT_T"
mount_shared_read_all "$MNT_T"
n=$(mount_shared_objects)
[ $((n - before)) -eq "$WANT" ] ||
	fail "the mount -t mount (empty store) sent $((n - before)) object requests to the live mirror, want $WANT"
pass "files read correctly through mount -t, from the second mirror when the first refuses connections"
expect_rc 0 "umount unmounts the mount -t mount" timeout 30 umount "$MNT_T"
! is_mounted "$MNT_T" || fail "$MNT_T is still mounted after umount"
check "the daemon exits after umount" mount_shared_daemon_gone "$MNT_T"

MNT_F=$T/mnt-f
mkdir -p "$MNT_F"
_MOUNTS+=("$MNT_F")
printf '%s %s fuse.storkfs defaults,_netdev,nofail,root=%s,store=%s,timeout=30 0 0\n' \
	"$MIRRORS" "$MNT_F" "$ROOT" "$T/store-f" >"$T/fstab"
before=$(mount_shared_objects)
expect_rc 0 "mount -T FSTAB MNT mounts an fstab line with defaults,_netdev,nofail" \
	env PATH="$SFS_BIN:$PATH" timeout 60 mount -T "$T/fstab" "$MNT_F"
grep -qF " $MNT_F fuse.storkfs " /proc/mounts || fail "no fuse.storkfs mount at $MNT_F"
mount_shared_read_all "$MNT_F"
n=$(mount_shared_objects)
[ $((n - before)) -eq "$WANT" ] ||
	fail "the fstab mount (empty store) sent $((n - before)) object requests, want $WANT"
pass "files read correctly through the fstab mount"
expect_rc 0 "fusermount3 -u unmounts the fstab mount" timeout 30 fusermount3 -u "$MNT_F"
! is_mounted "$MNT_F" || fail "$MNT_F is still mounted after fusermount3 -u"
check "the daemon exits after fusermount3 -u" mount_shared_daemon_gone "$MNT_F"

# --- stork status MOUNTPOINT and user.storkfs.source ----------------------------------------------
# (waits on the lead: stork status MOUNTPOINT, user.storkfs.source)
# mount_shared_count_on WORD N: a line of the last stdout that mentions WORD (any case) holds
# the number N.
mount_shared_count_on() {
	grep -iE -- "$1" "$T/out" | grep -qE "(^|[^0-9.])$2([^0-9.]|$)"
}
expect_rc 0 "stork status MOUNTPOINT works on a running mount" timeout 30 "$STORK" status "$T/mnt-c"
out_has "stork status names the counters and the mirror" "$NGINX_URL"
grep -qi fetched "$T/out" && grep -qi hit "$T/out" || {
	_show_run
	fail "stork status $T/mnt-c shows no 'fetched' and 'hits' counters"
}
mount_shared_count_on fetched "$WANT" || {
	_show_run
	fail "stork status $T/mnt-c: no 'fetched' line says $WANT (the objects this mount fetched)"
}
pass "stork status of the empty-store mount: $WANT objects fetched, per-mirror numbers"
expect_rc 0 "stork status of the remount works" timeout 30 "$STORK" status "$T/mnt-r"
mount_shared_count_on fetched 0 || {
	_show_run
	fail "stork status $T/mnt-r: no 'fetched' line says 0 (everything came from the store)"
}
pass "stork status of the remount: 0 objects fetched"

f=share/big/d03/f003.bin
[ "$(xattr "$T/mnt-c/big/1.0/$f" user.storkfs.source)" = "$NGINX_URL" ] ||
	fail "$T/mnt-c: user.storkfs.source of $f is '$(xattr "$T/mnt-c/big/1.0/$f" user.storkfs.source)', want $NGINX_URL"
[ "$(xattr "$T/mnt-r/big/1.0/$f" user.storkfs.source)" = store ] ||
	fail "$T/mnt-r: user.storkfs.source of $f is '$(xattr "$T/mnt-r/big/1.0/$f" user.storkfs.source)', want store"
pass "user.storkfs.source: the mirror URL for a fetched file, 'store' for one found in the shared store"

unmount_storkfs "$T/mnt-r" "$PID_R"
unmount_storkfs "$T/mnt-c" "$PID_C"
fsck_clean "the other store is clean" "$T/store-c"
done_ok
