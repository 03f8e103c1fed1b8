#!/usr/bin/env bash
# A power cut under a mount that stores objects without a sync each (store/README.md,
# "Unsynced inserts"). The node store is on ext4 on a loop device over a crashdisk
# (tests/tools/crashdisk.c): a FUSE file that keeps every write in memory until the file
# system on it flushes (an fsync of the loop device's file), so its image holds exactly what a
# power cut would leave. Packages "one" and "two" hold 200 files of 1000..3000 random bytes
# each. The method:
#   1. a fresh mount reads every file of "one" and is unmounted: its last group sync (syncfs,
#      then the index) has run;
#   2. a second mount, whose group sync waits 60 s (STORK_STORE_SYNC_MS, for tests), reads
#      every file of "two" in order (fetch-ahead: a few range requests, no sync), the objects'
#      writeback is started without a flush (as the kernel's flusher does) and at once the
#      disk "loses power" (crashdisk drops its unsynced blocks and ignores later
#      writes), the daemon gets SIGKILL, the ext4 file system is unmounted (its dirty pages go
#      nowhere) and its loop device detached;
#   3. the disk is attached and mounted again (ext4 replays its journal from the image).
# Then: the crash dropped unsynced blocks and the index lists exactly the objects of step 1
# (those of step 2 were lost with the cut), `stork fsck` finds every object the index lists whole and
# right (0 bad, 0 missing: nothing that fails its hash is listed), `stork fsck --repair`
# removes what the crash left half-written and the store is clean after it, and a new mount
# on that store reads every file of both with the right bytes.
. "$(dirname "$0")/lib.sh"

need python3 nginx mkfs.ext4 losetup
need_fuse
need_root "mounts ext4 on a loop device"
[ -n "${CRASHDISK:-}" ] && [ -x "$CRASHDISK" ] || fail "CRASHDISK is not set to the crashdisk tool (run through meson test)"

NFILES=400
HALF=$((NFILES / 2))
make_repo
python3 - "$T/src" "$NFILES" <<-'EOF'
	import os, random, sys
	top, n = sys.argv[1], int(sys.argv[2])
	r = random.Random(16)
	for i in range(n):
	    d = os.path.join(top, "d%d" % (i // 50))
	    os.makedirs(d, exist_ok=True)
	    with open(os.path.join(d, "f%04d" % i), "wb") as f:
	        f.write(r.randbytes(r.randint(1000, 3000)))
EOF
# two packages of a half each: the first mount's fetch-ahead must not bring the second's
mkdir -p "$T/one" "$T/two"
mv "$T/src"/d[0-3] "$T/one"
mv "$T/src"/d[4-7] "$T/two"
publish one 1.0 "$T/one" --quiet
publish two 1.0 "$T/two" --quiet
for p in one two; do
	(cd "$T/$p" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$T/$p.list"
done
start_nginx "$REPO"

CD=$T/cd
DISK=$T/disk
MNT=$T/mnt
LOOP=
disk_cleanup() {
	set +e
	is_mounted "$MNT" && fusermount3 -u -z "$MNT"
	grep -qF " $DISK " /proc/mounts && umount -l "$DISK"
	[ -z "$LOOP" ] || losetup -d "$LOOP" 2>/dev/null
	grep -qF " $CD fuse" /proc/mounts && fusermount3 -u -z "$CD"
}
on_exit disk_cleanup

truncate -s 96M "$T/disk.img"
mkdir -p "$CD" "$DISK"
"$CRASHDISK" "$T/disk.img" "$CD" -f -s 2>"$T/crashdisk.log" &
for _ in $(seq 100); do
	[ -e "$CD/disk" ] && break
	sleep 0.1
done
[ -e "$CD/disk" ] || fail "crashdisk did not start: $(cat "$T/crashdisk.log")"
mkfs.ext4 -q -F "$CD/disk" >/dev/null || fail "mkfs.ext4 on the crashdisk failed"
attach() {
	LOOP=$(losetup -f --show "$CD/disk") || fail "losetup of the crashdisk failed"
	# commit=600: no periodic journal commit flushes the disk behind the store's back
	mount -o commit=600 "$LOOP" "$DISK" || fail "mounting ext4 from $LOOP failed"
}
attach
STORE=$DISK/store

# read_pkg P: every file of package P 1.0 read through $MNT in path order, by one process;
# their sums compared with the source's.
read_pkg() {
	python3 - "$MNT/$1/1.0" "$T/$1.list" >"$T/got" <<-'EOF' || fail "reading $1 through the mount failed"
		import hashlib, sys
		top = sys.argv[1]
		for p in open(sys.argv[2]).read().split():
		    with open(top + "/" + p, "rb") as f:
		        print(hashlib.sha256(f.read()).hexdigest(), p)
	EOF
	(cd "$T/$1" && xargs sha256sum <"$T/$1.list") | sed 's/  / /' >"$T/want"
	diff -u "$T/want" "$T/got" >"$T/diff" || {
		head -20 "$T/diff" >&2
		fail "$1: files read through the mount differ from the source"
	}
}

# --- 1 and 2: read and unmount (the last group sync), read again, power cut
mount_storkfs "$MNT" "store=$STORE,timeout=30" "$NGINX_URL"
read_pkg one
unmount_storkfs "$MNT"
# the second mount's group sync waits 60 s: every object it stores is unsynced at the cut
STORK_STORE_SYNC_MS=60000 mount_storkfs "$MNT" "store=$STORE,timeout=30" "$NGINX_URL"
written() { awk '{ print $7 }' "/sys/block/$(basename "$LOOP")/stat"; } # sectors the disk took
w0=$(written)
read_pkg two
# An insert starts no writeback (the group sync does, 60 s away here); the kernel's flusher
# would write the dirty objects back after dirty_expire_centisecs (30 s). The test starts that
# writeback at once, without a flush (posix_fadvise DONTNEED writes a file's dirty pages back
# as the flusher does and never flushes the disk's cache), so that the cut finds some of the
# objects' blocks on the disk, unsynced (at most 10 s).
python3 - "$STORE/objects" <<-'EOF'
	import os, sys
	for d, _, fs in os.walk(sys.argv[1]):
	    for f in fs:
	        fd = os.open(os.path.join(d, f), os.O_RDONLY)
	        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
	        os.close(fd)
EOF
for _ in $(seq 100); do
	[ "$(written)" -gt "$w0" ] && break
	sleep 0.1
done
echo crash >"$CD/ctl"
kill -9 "$SFS_PID"
{ wait "$SFS_PID"; } 2>/dev/null || true
fusermount3 -u -z "$MNT"
umount "$DISK" || fail "unmounting the crashed ext4 failed"
losetup -d "$LOOP"
LOOP=
dropped=$(sed -n 's/^crashdisk: crash: \([0-9]*\) unsynced blocks dropped$/\1/p' "$T/crashdisk.log")
[ -n "$dropped" ] && [ "$dropped" -gt 0 ] || fail "the power cut dropped no unsynced block: $(cat "$T/crashdisk.log")"
echo revive >"$CD/ctl"
attach
pass "power cut with $dropped unsynced blocks of the store's disk dropped; ext4 mounted again"
# a copy of the store as the cut left it, for a mount without any repair (below)
cp -a "$STORE" "$T/store-cut"

# --- 3: what the index lists is whole and right; what the crash lost, fsck repairs
run "$STORK" fsck "$STORE"
sumline=$(grep ' objects checked: ' "$T/out" || true)
echo "# fsck after the power cut: $sumline"
[ -n "$sumline" ] || fail "stork fsck printed no summary: $OUT $ERR"
indexed=$(echo "$sumline" | sed -n 's/.*: \([0-9]*\) objects checked: \([0-9]*\) good, 0 bad, 0 missing,.*/\1 \2/p')
[ -n "$indexed" ] || fail "stork fsck found indexed objects that are bad or missing after the power cut: $sumline"
read -r checked good <<<"$indexed"
[ "$checked" -eq "$good" ] || fail "fsck: $checked checked but $good good"
# "one"'s files and manifest; "two"'s manifest too if the index commit that listed it (synced,
# but the environment runs with MDB_NOMETASYNC) survived; none of "two"'s files
[ "$good" -ge $((HALF + 1)) ] && [ "$good" -le $((HALF + 2)) ] ||
	fail "$good objects indexed after the power cut: expected the $HALF files of the first mount and its manifest (synced at its unmount), none of the second's files (unsynced at the cut)"
pass "after the power cut the index lists $good objects, all whole and right (the first mount's; the second's were never synced)"

run "$STORK" fsck --repair "$STORE"
[ "$RC" -le 1 ] || fail "stork fsck --repair failed: $OUT $ERR"
echo "# fsck --repair: $(grep ' objects checked: ' "$T/out" || true)"
fsck_clean "stork fsck --repair leaves the store clean" "$STORE"

# --- a new mount on the repaired store serves every file right
mount_storkfs "$MNT" "store=$STORE,timeout=30" "$NGINX_URL"
read_pkg one
read_pkg two
unmount_storkfs "$MNT"
pass "a mount on the store after the power cut reads all $NFILES files with the right bytes"
fsck_clean "the store is clean after that mount" "$STORE"

# --- and without any repair: a mount on the store as the cut left it serves every file right
mount_storkfs "$MNT" "store=$T/store-cut,timeout=30" "$NGINX_URL"
read_pkg one
read_pkg two
unmount_storkfs "$MNT"
pass "a mount on the unrepaired store as the power cut left it reads every file right"
done_ok
