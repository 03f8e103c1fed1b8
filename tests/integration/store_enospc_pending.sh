#!/usr/bin/env bash
# A full disk under a quota, while what the mount stored still waits for its group sync
# (store/README.md "Unsynced inserts", "A full file system"): the store on a tmpfs of 30 MB (10
# MB of it taken by a filler), store_max=1G (more than the file system holds: the quota never
# evicts, only a full disk does), the group sync 10 minutes away (STORK_STORE_SYNC_MS, a reader
# faster than the sync). A mount reads 20 files of 2 MB: when one no longer fits, the store
# makes room by evicting the oldest objects, and those are all waiting for their sync (not yet
# indexed, so not yet evictable): it must index them then and evict. Every file reads right;
# tmp/ is empty; after the unmount stork fsck is clean and the store holds less than the file
# system.
. "$(dirname "$0")/lib.sh"

need python3 nginx mount umount
need_fuse
need_root "mounts a tmpfs"

FS=$T/small
small_tmpfs "$FS" 30m

make_repo
mkdir -p "$T/src"
python3 - "$T/src" <<'EOF'
import random, sys
for i in range(20):
    with open(f"{sys.argv[1]}/f{i:02d}", "wb") as f:
        f.write(random.Random(700 + i).randbytes(2 * 1024 * 1024))
EOF
publish big 1.0 "$T/src" --quiet
start_nginx "$REPO"
S=$FS/store
M=$T/mnt

head -c $((10 * 1024 * 1024)) /dev/zero >"$FS/filler"
STORK_STORE_SYNC_MS=600000 mount_storkfs "$M" "store=$S,store_max=1G,timeout=30,refresh=3600" "$NGINX_URL"

for i in $(seq -w 0 19); do
	read_errno "$M/big/1.0/f$i"
	[ "$GOT" = "ok $(sha256sum "$T/src/f$i" | cut -d' ' -f1)" ] || {
		grep -F "f$i" "$SFS_LOG" >&2 || true
		fail "f$i: the reader got '$GOT' with 40 MB read through a store of 20 MB free whose objects wait for their sync, want its content (the oldest evicted to make room)"
	}
done
pass "20 files of 2 MB read through 20 MB of free space while their objects waited for their sync"
[ -z "$(ls -A "$S/tmp")" ] || fail "tmp/ holds $(ls -A "$S/tmp")"
unmount_storkfs "$M"
store_hashes_ok "$S"
fsck_clean "the objects evicted to make room left no record behind: stork fsck is clean" "$S"
done_ok
