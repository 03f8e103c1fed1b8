#!/usr/bin/env bash
# All mirrors down. A mount (-o timeout=3) has read one file of package "off" 1.0 (so its
# object is in the store); then its mirrors go away, four ways:
#   1. nginx is stopped (connections refused);
#   2. the only mirror is a fault server that accepts every request and then stalls forever
#      (headers, no body), for metadata and objects alike;
#   3. four such stalling mirrors: timeout= bounds the whole callback, not each mirror's try;
#   4. a fresh mount of the same store whose only mirror is a closed port (starting offline).
# Each time: the file already read reads its source's bytes; an uncached file fails with EIO
# within the timeout (measured: under timeout + 5 s of slack; the reader is bounded by
# `timeout 30`, so a hang fails the test rather than hanging it), and so does listing a
# version whose manifest was never fetched; listing and stat of what was seen still work;
# a SIGHUP refresh that cannot reach a mirror leaves everything working; fusermount3 -u
# unmounts and the daemon exits. Timings are bounds that mean "did not hang", never speed.
# The mounts of cases 1 and 4 also serve a slice (-o slices=, fs/README.md "Slices") whose
# policy accepts everything: every check runs again through /.slices/s/.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

TIMEOUT=3
SLACK=5
mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"


make_repo
mkdir -p "$T/src/d/sub" "$T/other" "$T/late/x"
rnd 31 200000 >"$T/src/d/cached"
rnd 32 200000 >"$T/src/d/cold"
rnd 33 5000 >"$T/src/d/sub/cold2"
echo tiny >"$T/src/d/tiny"
ln -s cached "$T/src/d/link"
rnd 34 3000 >"$T/other/file"
publish off 1.0 "$T/src"
publish other 1.0 "$T/other"
echo never >"$T/late/x/never"
publish late 1.0 "$T/late"
STORE=$T/store

# timed_read FILE: open and read FILE to the end, bounded by `timeout 30`. Prints
# "ok SHA256 SECONDS" or "errno N SECONDS"; "hung" when the bound hit. timed_list DIR: the
# same for listing DIR ("ok NAMES SECONDS").
timed_read() {
	timed_op read "$1"
}
timed_list() {
	timed_op list "$1"
}
timed_op() {
	timeout -k 5 30 python3 -c 'import hashlib, os, sys, time
t0 = time.monotonic()
try:
    if sys.argv[1] == "list":
        what = "ok " + ",".join(sorted(os.listdir(sys.argv[2])))
    else:
        with open(sys.argv[2], "rb") as f:
            what = "ok " + hashlib.sha256(f.read()).hexdigest()
except OSError as e:
    what = "errno %d" % e.errno
print(what, "%.1f" % (time.monotonic() - t0))' "$1" "$2" || echo hung
}

# within_bound WHAT SECONDS: fail unless SECONDS < TIMEOUT + SLACK.
within_bound() {
	python3 -c 'import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))' \
		"$2" "$((TIMEOUT + SLACK))" ||
		fail "$1 only after $2 s (timeout=$TIMEOUT, bound $((TIMEOUT + SLACK)) s)"
}

# offline_checks WHAT MNT: the checks every offline case makes on the mount at MNT.
offline_checks() {
	local what=$1 mnt=$2 v=$2/off/1.0 want got secs f
	drop_caches
	want=$(sha256sum <"$T/src/d/cached" | cut -d' ' -f1)
	got=$(timed_read "$v/d/cached")
	[ "${got% *}" = "ok $want" ] || {
		tail -20 "$SFS_LOG" >&2
		fail "$what: the file already in the store (d/cached): '$got', want 'ok $want SECONDS'"
	}
	got=$(timed_read "$v/d/link")
	[ "${got% *}" = "ok $want" ] || fail "$what: d/link -> cached: '$got'"
	pass "$what: the file already in the store reads its source's bytes"

	for f in d/cold d/sub/cold2; do
		got=$(timed_read "$v/$f")
		[ "$got" != hung ] || fail "$what: reading uncached $f hung (killed after 30 s)"
		secs=${got##* }
		[ "${got% *}" = "errno 5" ] || {
			tail -20 "$SFS_LOG" >&2
			fail "$what: uncached $f: '$got', want EIO (errno 5)"
		}
		within_bound "$what: uncached $f failed with EIO" "$secs"
		echo "# $what: $f: EIO after $secs s"
	done
	pass "$what: uncached files fail with EIO within timeout=$TIMEOUT (+ $SLACK s slack)"

	got=$(timed_list "$mnt/late/1.0/x")
	[ "$got" != hung ] || fail "$what: listing late/1.0/x (manifest never fetched) hung (killed after 30 s)"
	[ "${got% *}" = "errno 5" ] || {
		tail -20 "$SFS_LOG" >&2
		fail "$what: listing late/1.0/x (manifest never fetched): '$got', want EIO (errno 5)"
	}
	within_bound "$what: listing late/1.0/x (manifest never fetched) failed with EIO" "${got##* }"
	echo "# $what: late/1.0/x: EIO after ${got##* } s"
	pass "$what: listing a version whose manifest was never fetched fails with EIO within the bound"

	timeout 30 ls -lR "$v" >"$T/ls.out" 2>"$T/ls.err" || {
		cat "$T/ls.err" >&2
		fail "$what: ls -lR $v failed or hung"
	}
	for f in cached cold cold2 tiny link; do
		grep -q " $f\( \|\$\)" "$T/ls.out" || fail "$what: ls -lR $v does not list $f"
	done
	[ "$(timeout 30 stat -c %s "$v/d/cold")" = 200000 ] || fail "$what: stat of uncached d/cold does not say 200000 bytes"
	[ "$(timeout 30 ls "$mnt" | tr '\n' ' ')" = "late off other " ] ||
		fail "$what: the root lists '$(timeout 30 ls "$mnt" | tr '\n' ' ')', want late off other"
	[ "$(timeout 30 readlink "$mnt/off/latest")" = 1.0 ] || fail "$what: off/latest does not point to 1.0"
	[ "$(offline_xattr "$v/d/cold" user.storkfs.cached)" = 0 ] || fail "$what: d/cold: user.storkfs.cached is not 0"
	pass "$what: listing, stat, readlink and xattrs still work"
}

# offline_xattr FILE NAME: xattr, bounded by `timeout 30`.
offline_xattr() {
	timeout 30 python3 -c 'import os, sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$1" "$2"
}

# drop_caches: make the kernel forget cached pages, so reads reach the daemon (when allowed).
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

# sighup_checks WHAT MNT: a refresh that cannot reach any mirror breaks nothing.
sighup_checks() {
	local what=$1 mnt=$2 got want
	kill -HUP "$SFS_PID"
	sleep 1
	kill -0 "$SFS_PID" 2>/dev/null || fail "$what: the daemon died on SIGHUP"
	timeout 30 ls -lR "$mnt/off" >/dev/null || fail "$what: ls -lR $mnt/off failed or hung after SIGHUP"
	want=$(sha256sum <"$T/src/d/cached" | cut -d' ' -f1)
	drop_caches
	got=$(timed_read "$mnt/off/1.0/d/cached")
	[ "${got% *}" = "ok $want" ] || fail "$what: after SIGHUP, d/cached: '$got'"
	got=$(timed_read "$mnt/off/1.0/d/cold")
	[ "${got% *}" = "errno 5" ] || fail "$what: after SIGHUP, uncached d/cold: '$got', want EIO within 30 s"
	pass "$what: after a SIGHUP refresh that reaches no mirror, listing and reading still work"
}

# unmount_checks WHAT MNT: fusermount3 -u works and the daemon exits (within 10 s).
unmount_checks() {
	local t0
	t0=$(date +%s%N)
	unmount_storkfs "$2"
	echo "# $1: the daemon exited $((($(date +%s%N) - t0) / 1000000)) ms after fusermount3 -u"
	pass "$1: fusermount3 -u unmounts and the daemon exits (within 10 s)"
}

# --- 1. nginx stopped ---------------------------------------------------------------------
start_nginx "$REPO"
MNT=$T/mnt-refused
mount_storkfs "$MNT" "store=$STORE,timeout=$TIMEOUT,slices=$T/slices" "$NGINX_URL"
timeout 60 cat "$MNT/off/1.0/d/cached" >"$T/cached" || fail "reading d/cached with nginx up failed"
cmp -s "$T/cached" "$T/src/d/cached" || fail "d/cached read with nginx up differs from the source"
[ "$(xattr "$MNT/off/1.0/d/cached" user.storkfs.cached)" = 1 ] || fail "d/cached is not cached after reading it"
timeout 30 ls -lR "$MNT/off" "$MNT/other/1.0" >/dev/null || fail "ls -lR with nginx up failed"
pass "with nginx up, d/cached is read into the store and the tree listed"
stop_nginx
offline_checks "nginx stopped" "$MNT"
offline_checks "nginx stopped, through slice s" "$MNT/.slices/s"
sighup_checks "nginx stopped" "$MNT"
sighup_checks "nginx stopped, through slice s" "$MNT/.slices/s"
unmount_checks "nginx stopped" "$MNT"

# --- 2. a mirror that accepts and stalls forever ------------------------------------------
start_faultserver "$REPO"
MNT=$T/mnt-stall
mount_storkfs "$MNT" "store=$STORE,timeout=$TIMEOUT" "$FAULT_URL"
timeout 30 ls -lR "$MNT/off" "$MNT/other/1.0" >/dev/null || fail "ls -lR with the fault server behaving failed"
fault_set '[{"match": ".", "fault": "stall", "seconds": 3600}]'
offline_checks "stalling mirror" "$MNT"
[ "$(fault_requests '^GET /objects/.* stall$')" -ge 1 ] ||
	fail "stalling mirror: the fault server stalled no object request: $(cat "$FAULT_DIR/access.log")"
pass "stalling mirror: the uncached reads did reach the stalling mirror"
sighup_checks "stalling mirror" "$MNT"
unmount_checks "stalling mirror" "$MNT"
stop_faultserver

# --- 3. four stalling mirrors -----------------------------------------------------------
urls=() dirs=() pids=()
for _ in 1 2 3 4; do
	start_faultserver "$REPO"
	urls+=("$FAULT_URL")
	dirs+=("$FAULT_DIR")
	pids+=("$FAULT_PID")
done
MNT=$T/mnt-stall4
mount_storkfs "$MNT" "store=$STORE,timeout=$TIMEOUT" "${urls[@]}"
timeout 30 ls -lR "$MNT/off" "$MNT/other/1.0" >/dev/null || fail "ls -lR with four behaving fault servers failed"
for d in "${dirs[@]}"; do
	fault_set '[{"match": ".", "fault": "stall", "seconds": 3600}]' "$d"
done
offline_checks "four stalling mirrors" "$MNT"
sighup_checks "four stalling mirrors" "$MNT"
unmount_checks "four stalling mirrors" "$MNT"
for p in "${pids[@]}"; do
	stop_faultserver "$p"
done

# --- 4. a fresh mount with no reachable mirror ---------------------------------------------
free_port
MNT=$T/mnt-cold-start
mount_storkfs "$MNT" "store=$STORE,timeout=$TIMEOUT,slices=$T/slices" "http://127.0.0.1:$FREE_PORT"
pass "a fresh mount of the store starts with its only mirror refusing connections"
offline_checks "mounted offline" "$MNT"
offline_checks "mounted offline, through slice s" "$MNT/.slices/s"
unmount_checks "mounted offline" "$MNT"

fsck_clean "the store is clean at the end" "$STORE"
check "every stored object holds the content its name hashes" store_hashes_ok "$STORE"
done_ok
