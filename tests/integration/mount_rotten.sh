#!/usr/bin/env bash
# Objects that rot or are swapped in the node store are never served. A mount run as users run
# it (storkfs without -f: it daemonizes and logs to syslog, which this test receives on its own
# /dev/log in a private mount namespace) reads through a fault server. d/before is stored by
# a first mount, then overwritten in place in the store (same size, other bytes) before the
# second mount starts; d/swapped and d/rotted are stored and read by the second mount, then one
# has another file of its size renamed over it and the other is overwritten in place. With the
# mirror refusing those objects (503), opening each of the three fails with EIO and cat prints
# none of its bytes; one log line per object names the package, version, path, the store file
# and what it hashes to; the status counts 3 rotten objects; the other files read their
# source's bytes. Once the mirror serves them again, each reads its source's bytes (fetched
# again: the bad file is replaced), and the store is clean (fsck, every file re-hashed).
. "$(dirname "$0")/private_ns.sh"
. "$(dirname "$0")/lib.sh"

need python3 mount
need_fuse

# the daemon's syslog lines: our own /dev/log in this mount namespace (sets SYSLOG)
private_syslog

# mount_daemon MNT OPTIONS URL...: storkfs without -f; returns once mounted. Sets SFS_PID.
mount_daemon() {
	local mnt=$1 opts=$2
	shift 2
	mkdir -p "$mnt"
	_MOUNTS+=("$mnt")
	timeout 60 "$STORKFS" -o "root=$ROOT,$opts" "$@" "$mnt" 2>"$T/mount.err" || {
		cat "$T/mount.err" >&2
		fail "storkfs did not mount $mnt"
	}
	SFS_PID=$(status_of "$mnt" pid)
}

# status_of MNT KEY: a field of the mount's status (counters.KEY for a counter).
status_of() {
	xattr "$1" user.storkfs.status | python3 -c 'import json, sys
s = json.load(sys.stdin)
k = sys.argv[1]
print(s[k] if k in s else s["counters"][k])' "$2"
}

# rot_in_place FILE: flip the bits of its middle byte (same inode, same size).
rot_in_place() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
n = os.fstat(fd).st_size
b = os.pread(fd, 1, n // 2)
os.pwrite(fd, bytes([b[0] ^ 0xff]), n // 2)
os.close(fd)' "$1"
}

# swap_file FILE: rename another file of the same size over it.
swap_file() {
	head -c "$(stat -c %s "$1")" /dev/zero >"$1.swap"
	chmod 444 "$1.swap"
	mv -f "$1.swap" "$1"
}

# log_line HEX PATH: the syslog line naming the object and the file (empty if none).
log_line() {
	awk -v h="$1" -v p="$2" 'index($0, h) && index($0, "bad 1.0: " p) && /content hashes to/ { print; exit }' "$SYSLOG"
}

make_repo
mkdir -p "$T/src/d"
rnd 31 200000 >"$T/src/d/before"
rnd 32 150000 >"$T/src/d/swapped"
rnd 33 90000 >"$T/src/d/rotted"
rnd 34 120000 >"$T/src/d/fine"
echo tiny >"$T/src/d/tiny"
publish bad 1.0 "$T/src"
declare -A OBJ
for f in before swapped rotted; do
	read -r OBJ[$f] _ _ < <(manifest_hashes bad 1.0 | grep " d/$f\$")
done

start_faultserver "$REPO"
STORE=$T/store
MNT=$T/mnt
V=$MNT/bad/1.0
OPTS="store=$STORE,timeout=20,mirror_retry=2"

# --- d/before: stored by a first mount, rotten before the second starts ------------------------
mount_daemon "$MNT" "$OPTS" "$FAULT_URL"
cmp -s "$V/d/before" "$T/src/d/before" || fail "d/before does not read its source's bytes at first"
unmount_storkfs "$MNT" "$SFS_PID"
sobj=$STORE/$(object_path "${OBJ[before]}")
[ -f "$sobj" ] || fail "the first mount did not store d/before as $sobj"
rot_in_place "$sobj"
pass "d/before stored by a first mount, then rotten in the store ($sobj)"

fault_set "[{\"match\": \"^/$(object_path "${OBJ[before]}")\$\", \"fault\": \"status\", \"status\": 503}]"
mount_daemon "$MNT" "$OPTS" "$FAULT_URL"
read_errno "$V/d/before"
[ "$GOT" = "errno 5" ] || fail "reading d/before (rotten in the store, the mirror refusing it): '$GOT', want errno 5 (EIO)"
pass "d/before, rotten before the mount started: EIO"

# --- d/swapped and d/rotted: stored and read by this mount, then bad ------------------------------
for f in swapped rotted; do
	cmp -s "$V/d/$f" "$T/src/d/$f" || fail "d/$f does not read its source's bytes at first"
done
pass "d/swapped and d/rotted fetched, stored and read by this mount"
swap_file "$STORE/$(object_path "${OBJ[swapped]}")"
rot_in_place "$STORE/$(object_path "${OBJ[rotted]}")"
rules=
for f in before swapped rotted; do
	rules+="${rules:+, }{\"match\": \"^/$(object_path "${OBJ[$f]}")\$\", \"fault\": \"status\", \"status\": 503}"
done
fault_set "[$rules]"
for f in swapped rotted; do
	read_errno "$V/d/$f"
	[ "$GOT" = "errno 5" ] || fail "reading d/$f (bad in the store after this mount read it, the mirror refusing it): '$GOT', want errno 5 (EIO)"
done
pass "d/swapped (another file renamed over it) and d/rotted (overwritten in place) after this mount read them: EIO"
for f in before swapped rotted; do
	expect_rc 1 "cat d/$f fails" timeout 60 cat "$V/d/$f"
	err_has "cat d/$f says Input/output error" "Input/output error"
	[ ! -s "$T/out" ] || fail "cat printed $(wc -c <"$T/out") bytes of d/$f"
done
pass "cat printed none of the bad objects' bytes"

for f in fine tiny; do
	want=$(sha256sum <"$T/src/d/$f" | cut -d' ' -f1)
	read_errno "$V/d/$f"
	[ "$GOT" = "ok $want" ] || fail "d/$f (not damaged): '$GOT', want 'ok $want'"
done
pass "the other files read their source's bytes"

for f in before swapped rotted; do
	for _ in $(seq 50); do
		[ -n "$(log_line "${OBJ[$f]}" "d/$f")" ] && break
		sleep 0.1
	done
	line=$(log_line "${OBJ[$f]}" "d/$f")
	[ -n "$line" ] || {
		cat "$SYSLOG" >&2
		fail "no syslog line names bad 1.0: d/$f, its object ${OBJ[$f]} and what it hashes to"
	}
	echo "# syslog: $line"
done
pass "one syslog line per bad object names the file, the store's object and what it hashes to"
[ "$(status_of "$MNT" rotten)" = 3 ] || fail "the status counts $(status_of "$MNT" rotten) rotten objects, want 3"
run "$STORK" status "$MNT"
out_has "stork status tells of them" "3 objects rotten in the store (fetched again)"
pass "the status counts 3 rotten objects"

# --- the mirror serves them again: fetched again, the bad files replaced -----------------------
fault_set '[]'
for f in before swapped rotted; do
	want=$(sha256sum <"$T/src/d/$f" | cut -d' ' -f1)
	ok=
	for i in $(seq 30); do
		read_errno "$V/d/$f"
		if [ "$GOT" = "ok $want" ]; then
			ok=$i
			break
		fi
		[ "$GOT" = "errno 5" ] || fail "reading d/$f with the mirror serving it again: '$GOT', want its source's bytes or EIO while waiting"
		sleep 1
	done
	[ -n "$ok" ] || fail "d/$f still fails 30 tries (about 30 s) after the mirror serves it again"
	cmp -s "$T/src/d/$f" "$STORE/$(object_path "${OBJ[$f]}")" ||
		fail "the store's object of d/$f is not its source's bytes after the new fetch"
done
pass "with the mirror serving them, the three read their source's bytes, fetched again into the store"
[ "$(status_of "$MNT" rotten)" = 3 ] || fail "the status counts $(status_of "$MNT" rotten) rotten objects at the end, want 3"
unmount_storkfs "$MNT" "$SFS_PID"
fsck_clean "stork fsck finds the store clean at the end" "$STORE"
check "every stored object holds the content its name hashes" store_hashes_ok "$STORE"

stop_faultserver "$FAULT_PID"
done_ok
