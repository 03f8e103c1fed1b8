#!/usr/bin/env bash
# kill -9 of the storkfs daemon while it evicts. Package "many" 1.0 holds 1,200 files of 2 KiB
# (data/) and one trigger file per round (t/). Each round: a mount with no quota reads every
# data/ file (all stored); a mount with store_max=64K then reads the round's trigger, whose
# insert evicts about 1,200 objects at once, and the daemon gets SIGKILL at a moment from the
# seed (spread over the eviction). Then: `stork fsck` finds the store clean (nothing indexed is
# missing or bad; objects whose files the kill left are indexed again, which is no problem),
# every stored object holds what its name hashes, and a remount reads every data/ file right.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

ROUNDS=${STORK_EVICT_KILL_ROUNDS:-4}
NFILES=1200

make_repo
mkdir -p "$T/src/data" "$T/src/t"
python3 -c 'import random, sys
r = random.Random(77)
for i in range(int(sys.argv[2])):
    with open("%s/data/f%04d" % (sys.argv[1], i), "wb") as f:
        f.write(r.randbytes(2048))
for i in range(1, int(sys.argv[3]) + 1):
    with open("%s/t/t%d" % (sys.argv[1], i), "wb") as f:
        f.write(r.randbytes(100000))' "$T/src" "$NFILES" "$ROUNDS"
publish many 1.0 "$T/src" --quiet
(cd "$T/src" && sha256sum data/*) | sed 's/  / /' | sort -k2 >"$T/want.sums"
start_nginx "$REPO"
MNT=$T/mnt
STORE=$T/store

# read_all DESC: every data/ file reads its right bytes through $MNT.
read_all() {
	(cd "$MNT/many/1.0" && find data -type f -print0 | timeout -k 5 120 xargs -0 -P 4 -n 100 sha256sum) \
		>"$T/got.raw" || fail "$1: reading the files failed or took over 120 s"
	sed 's/  / /' "$T/got.raw" | sort -k2 >"$T/got.sums"
	if ! diff -u "$T/want.sums" "$T/got.sums" >"$T/sums.diff"; then
		head -20 "$T/sums.diff" >&2
		fail "$1: files read with the wrong bytes"
	fi
}

mount_storkfs "$MNT" "store=$STORE,store_max=0,timeout=60" "$NGINX_URL"
read_all "warm-up"
unmount_storkfs "$MNT"
killed=0
midway=0

for round in $(seq "$ROUNDS"); do
	n=$(count_objects "$STORE")
	[ "$n" -ge "$NFILES" ] || fail "round $round: the store holds $n objects, not every data/ file"
	rand 100
	delay=$(((round - 1) * 50 + R))
	what="round $round (kill $delay ms after the trigger's read starts)"
	echo "# $what"
	mount_storkfs "$MNT" "store=$STORE,store_max=64K,timeout=60" "$NGINX_URL"
	cat "$MNT/many/1.0/t/t$round" >/dev/null 2>&1 &
	reader=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -KILL "$SFS_PID"
	set +e
	{ wait "$SFS_PID"; } 2>/dev/null
	rc=$?
	wait "$reader"
	set -e
	[ "$rc" -eq 137 ] || fail "$what: the daemon exited $rc before the kill"
	killed=$((killed + 1))
	timeout 30 fusermount3 -u -z "$MNT" 2>/dev/null || true
	left=$(count_objects "$STORE")
	echo "#   $left of $n files left in objects/"
	# some gone, some still there: the kill came in the middle of the eviction
	[ "$left" -le 2 ] || [ "$left" -ge "$NFILES" ] || midway=$((midway + 1))

	run "$STORK" fsck "$STORE"
	if [ "$RC" -ne 0 ] || ! grep -qxF "$STORE: clean" "$T/out" || [ -s "$T/err" ]; then
		_show_run
		fail "$what: stork fsck does not find the store clean"
	fi
	store_hashes_ok "$STORE" || fail "$what: a stored object does not hold what its name hashes"
	# the quota is kept in the store: store_max=0 takes it away, so every file is stored
	mount_storkfs "$MNT" "store=$STORE,store_max=0,timeout=60" "$NGINX_URL"
	read_all "$what: after a remount"
	unmount_storkfs "$MNT"
	pass "$what: fsck clean, every object right, every file reads right after a remount"
done
pass "$killed daemons killed, $midway of them in the middle of an eviction (not every kill lands there on a loaded machine); the store stayed whole"
fsck_clean "stork fsck finds the store clean at the end" "$STORE"
done_ok
