#!/usr/bin/env bash
# Two mounts of one repository share a store (store/README.md "Garbage collection",
# repos/<repo>). Mount B's mirror is slow to send alice's role, so B's walk of the state it
# verified (a 1.0) is still running when alice publishes a 2.0 and mount A (a fast mirror)
# verifies the new state, walks it, lists, reads a 2.0 (indexing its manifest) and marks the new
# state kept. B's walk of the older state then ends: it must neither replace the list A wrote
# nor drop a 2.0's manifest. A's remount over the same state leaves a list naming a 1.0 and a
# 2.0; stork gc then keeps every object of both, and a fresh mount with every mirror down reads
# both as published. Both daemons run without -f, as users run them.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo
mkdir -p "$T/src1" "$T/src2"
rnd 1 100000 >"$T/src1/f"
rnd 2 100000 >"$T/src2/f"
publish a 1.0 "$T/src1" --quiet
start_nginx "$REPO"
start_faultserver "$REPO"
fault_set '[{"match": "^/metadata/[0-9]+\\.alice\\.json$", "fault": "delay", "seconds": 8}]'
STORE=$T/store


# B: verifies the state of a 1.0, then waits 8 s for alice (a fetch that sends nothing for 10 s fails)'s role in its walk.
mount_bg "$T/b" "" "$FAULT_URL" &
B_JOB=$!
for _ in $(seq 100); do
	[ "$(fault_requests '^GET /metadata/[0-9]+\.targets\.json ')" -ge 1 ] && break
	sleep 0.1
done
[ "$(fault_requests '^GET /metadata/[0-9]+\.targets\.json ')" -ge 1 ] || fail "mount B did not verify the repository's targets"
sleep 1

publish a 2.0 "$T/src2" --quiet
t0=$(date +%s)
mount_bg "$T/a" "" "$NGINX_URL"
PID_A=$MOUNT_PID
[ "$(ls "$T/a/a" | tr '\n' ' ')" = "1.0 2.0 latest " ] || fail "mount A lists a: '$(ls "$T/a/a" | tr '\n' ' ')', want '1.0 2.0 latest '"
cmp -s "$T/src1/f" "$T/a/a/1.0/f" || fail "a/1.0/f does not read as published"
cmp -s "$T/src2/f" "$T/a/a/2.0/f" || fail "a/2.0/f does not read as published"
[ $(($(date +%s) - t0)) -lt 7 ] || fail "mount A took too long: B's walk may have ended first (raise the delay)"
kill -0 "$B_JOB" 2>/dev/null || fail "mount B was ready before A had read a 2.0: the test did not make its race"
wait "$B_JOB" || fail "mount B failed"
PID_B=$(status_field "$T/b" pid)
pass "B walked the state of a 1.0 while A verified, walked and read that of a 2.0"
unmount_storkfs "$T/a" "$PID_A"
unmount_storkfs "$T/b" "$PID_B"

# list_has WHAT VERSION: the store's list of the repository's current versions names a VERSION.
list_has() {
	local id
	id=$(sha256sum "$(manifest_file a "$2")" | cut -d' ' -f1)
	grep -qx "$id" "$STORE"/repos/* || fail "$1: the store's list of current versions (repos/) does not name a $2's manifest $id"
}
list_has "after B's walk ended (the race this test makes)" 1.0
list_has "after B's walk of the older state ended (it must not replace a newer state's list)" 2.0
pass "B's walk of the older state ended last and left the list A wrote: it names a 1.0 and a 2.0"

mount_bg "$T/a" "" "$NGINX_URL"
[ "$(ls "$T/a/a" | tr '\n' ' ')" = "1.0 2.0 latest " ] || fail "A's remount lists a: '$(ls "$T/a/a" | tr '\n' ' ')', want '1.0 2.0 latest '"
unmount_storkfs "$T/a" "$MOUNT_PID"
list_has "after A's remount over the state of a 2.0" 1.0
list_has "after A's remount over the state of a 2.0 (its mark of that state must not hide B's older list)" 2.0
pass "A's remount walked again: the store's list names a 1.0 and a 2.0"

# stork gc after the race keeps every object of every version the list names: B's older walk
# must not have left a 2.0's manifest out of what gc reads (store/README.md "Garbage
# collection"), or gc takes a 2.0's file for unreferenced and removes it.
run "$STORK" gc "$STORE"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork gc exited $RC"
}
for v in 1.0 2.0; do
	list_has "after stork gc" "$v"
	while read -r h size path; do
		[ -f "$STORE/$(object_path "$h")" ] ||
			fail "stork gc removed the object of a $v's $path ($h, $size bytes): $OUT"
	done < <(manifest_objects a "$v")
done
pass "stork gc kept every object of a 1.0 and a 2.0: $OUT"

# A fresh mount with every mirror down reads both versions from the store alone.
stop_nginx
stop_faultserver
mount_bg "$T/c" "" "$NGINX_URL"
[ "$(ls "$T/c/a" | tr '\n' ' ')" = "1.0 2.0 latest " ] || fail "the offline mount lists a: '$(ls "$T/c/a" | tr '\n' ' ')', want '1.0 2.0 latest '"
cmp -s "$T/src1/f" "$T/c/a/1.0/f" || fail "offline, after stork gc: a/1.0/f does not read as published"
cmp -s "$T/src2/f" "$T/c/a/2.0/f" || fail "offline, after stork gc: a/2.0/f does not read as published"
unmount_storkfs "$T/c" "$MOUNT_PID"
pass "offline, after stork gc, a fresh mount reads a 1.0 and a 2.0 as published"
done_ok
