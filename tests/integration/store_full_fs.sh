#!/usr/bin/env bash
# A node store made on a full file system (a 128 KiB tmpfs, filled): stork fsck, stork extract
# and storkfs (the daemon, without -f) end without a signal (LMDB mapped its lock file sparse
# and died of SIGBUS on its first write, exit 135) and say that index/lock.mdb has no room.
# With room for the lock file but not for the index's pages, the same commands say that
# index/data.mdb has no room. Once there is room, the same store works.
. "$(dirname "$0")/lib.sh"

need python3 nginx mount umount
need_fuse
need_root "mounts a tmpfs"

FS=$T/small
small_tmpfs "$FS" 128k

make_repo
synth_tree "$T/src" 1
publish pkg 1.0 "$T/src" --quiet
start_nginx "$REPO"
S=$FS/store
MNT=$T/mnt
mkdir -p "$MNT"
_MOUNTS+=("$MNT")

# no_room DESC FILE: the last run failed without a signal and said FILE has no room.
no_room() {
	[ "$RC" -ne 0 ] && [ "$RC" -lt 124 ] || {
		_show_run
		fail "$1: exit $RC (want a failure, not a signal)"
	}
	err_has "$1: says the file system is full" "$S/index/$2" "No space left on device"
}

# all_refuse WHAT FILE
all_refuse() {
	rm_rf "$S"
	run timeout 60 "$STORK" fsck "$S"
	no_room "$1: stork fsck" "$2"
	rm_rf "$S"
	extract --store "$S" "$NGINX_URL" pkg 1.0 "$T/x"
	no_room "$1: stork extract" "$2"
	[ ! -e "$T/x" ] || fail "$1: stork extract made $T/x"
	rm_rf "$S"
	run timeout 60 "$STORKFS" -o "root=$ROOT,store=$S,timeout=5" "$NGINX_URL" "$MNT"
	if is_mounted "$MNT"; then
		fusermount3 -u "$MNT"
		fail "$1: storkfs mounted"
	fi
	no_room "$1: storkfs" "$2"
}

# Full: not a page left.
dd if=/dev/zero of="$FS/fill" bs=4k 2>/dev/null || true
[ "$(df --output=avail -k "$FS" | tail -n 1 | tr -d ' ')" -eq 0 ] || fail "test setup: $FS is not full"
all_refuse "a full file system" lock.mdb

# Room for the lock file (64 KiB) only.
rm -f "$FS/fill"
dd if=/dev/zero of="$FS/fill" bs=4k count=16 2>/dev/null
all_refuse "room for the lock file only" data.mdb

rm -f "$FS/fill"
rm_rf "$S"
fsck_clean "with room, a store is made there" "$S"

done_ok
