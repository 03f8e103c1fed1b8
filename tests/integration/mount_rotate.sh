#!/usr/bin/env bash
# Key rotation and revocation reach a live mount without remounting. One storkfs mount (-o
# refresh=3600, so only SIGHUP refreshes it) over nginx; after each repository operation the
# publisher publishes a new version, the test sends SIGHUP and waits (bounded) for the mount
# to show it, then reads every version's bytes:
#   1. root rotation (root v2 signed by the old and the new root key),
#   2. rotation of the timestamp, snapshot and targets keys (the client forgets the old
#      timestamp and snapshot: fast-forward recovery),
#   3. publisher rotation: alice's role re-signed with a new key; the old key can no longer
#      publish, versions signed before still read right,
#   4. publisher revocation: bob's delegation removed; his package leaves the tree while
#      alice's stay; a file of his held open keeps reading (its bytes were verified).
# The same daemon (same pid) serves throughout and exits 0 at unmount; `stork status` shows the
# root version moving; a second mount started afresh on the same store agrees.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo 'hello'
keygen "$T/pub/bob.key"
expect_rc 0 "delegate tools to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" tools
for v in 1.0 1.1 1.2 1.3; do
	mkdir -p "$T/src/$v/bin"
	printf '#!/bin/sh\necho hello %s\n' "$v" >"$T/src/$v/bin/hello"
	chmod +x "$T/src/$v/bin/hello"
	head -c 50000 /dev/urandom >"$T/src/$v/data"
done
mkdir -p "$T/src/tools"
head -c 300000 /dev/urandom >"$T/src/tools/big"
publish hello 1.0 "$T/src/1.0"
expect_rc 0 "bob publishes tools 1" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" tools 1 "$T/src/tools" --quiet
start_nginx "$REPO"
M=$T/mnt
mount_storkfs "$M" "store=$T/store,timeout=30,refresh=3600" "$NGINX_URL"
PID=$SFS_PID

# wait_for PATH: SIGHUP, then wait (bounded) until PATH exists in the mount.
wait_for() {
	kill -HUP "$PID"
	for _ in $(seq 100); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	fail "$1 did not appear within 10 s of SIGHUP; log: $(tail -n 5 "$SFS_LOG")"
}

# all_right: every published version of hello reads its source's bytes.
all_right() {
	local v
	for v in "$@"; do
		cmp "$T/src/$v/data" "$M/hello/$v/data" || fail "hello $v/data reads wrong bytes"
		[ "$("$M/hello/$v/bin/hello")" = "hello $v" ] || fail "hello $v does not run right"
	done
}

root_version() {
	xattr "$M" user.storkfs.status |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["metadata"]["root"]["version"])'
}

all_right 1.0
cmp "$T/src/tools/big" "$M/tools/1/big" || fail "tools 1 reads wrong bytes"
[ "$(root_version)" = 1 ] || fail "the mount trusts root $(root_version), want 1"
pass "mounted: hello 1.0 and tools 1 read right, root version 1"

# 1. root rotation
expect_rc 0 "rotate the root key" "$STORK" repo rotate "$REPO" --keys "$KEYS" root
publish hello 1.1 "$T/src/1.1"
verify_ok
wait_for "$M/hello/1.1"
all_right 1.0 1.1
[ "$(root_version)" = 2 ] || fail "after the root rotation the mount trusts root $(root_version), want 2"
pass "root rotation: after SIGHUP the mount trusts root 2 and shows hello 1.1"

# 2. the online keys
expect_rc 0 "rotate the timestamp, snapshot and targets keys" \
	"$STORK" repo rotate "$REPO" --keys "$KEYS" timestamp snapshot targets
publish hello 1.2 "$T/src/1.2"
verify_ok
wait_for "$M/hello/1.2"
all_right 1.0 1.1 1.2
[ "$(root_version)" = 3 ] || fail "after rotating the online keys the mount trusts root $(root_version), want 3"
pass "timestamp, snapshot and targets keys rotated: the mount follows (root 3, hello 1.2)"

# 3. publisher rotation
keygen "$T/pub/alice2.key"
expect_rc 0 "rotate alice's key" "$STORK" repo rotate "$REPO" --keys "$KEYS" --key "$T/pub/alice2.key" alice
expect_rc 2 "the old key can no longer publish" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" hello 1.3 "$T/src/1.3"
expect_rc 0 "the new key publishes" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/alice2.key" hello 1.3 "$T/src/1.3" --quiet
verify_ok
wait_for "$M/hello/1.3"
all_right 1.0 1.1 1.2 1.3
[ "$(readlink "$M/hello/latest")" = 1.3 ] || fail "hello/latest -> $(readlink "$M/hello/latest")"
pass "publisher rotation: hello 1.3 signed by alice's new key appears, older versions still read"

# 4. revocation, with a file of bob's held open
exec {fd}<"$M/tools/1/big"
expect_rc 0 "revoke bob" "$STORK" repo revoke "$REPO" --keys "$KEYS" bob
verify_ok
kill -HUP "$PID"
for _ in $(seq 100); do
	[ -e "$M/tools" ] || break
	sleep 0.1
done
[ ! -e "$M/tools" ] || fail "tools is still in the tree 10 s after revoking bob and SIGHUP"
[ "$(ls "$M" | tr '\n' ' ')" = "hello " ] || fail "the mount shows '$(ls "$M" | tr '\n' ' ')' after revoking bob"
sync
echo 3 >/proc/sys/vm/drop_caches
# read through the descriptor itself: /dev/fd/N would open the revoked file again (ESTALE,
# fs/README.md "Replaced versions")
cmp "$T/src/tools/big" - <&"$fd" || fail "the open file of a revoked package read wrong bytes"
exec {fd}<&-
all_right 1.0 1.1 1.2 1.3
pass "revocation: bob's package leaves the tree, alice's stay; a file held open still reads right"

[ "$(cat "/proc/$PID/comm" 2>/dev/null)" = storkfs ] || fail "the daemon is gone"
unmount_storkfs "$M" "$PID"
pass "one daemon served every step and exited cleanly"

mount_storkfs "$M" "store=$T/store,timeout=30" "$NGINX_URL"
[ "$(ls "$M" | tr '\n' ' ')" = "hello " ] || fail "a new mount shows '$(ls "$M" | tr '\n' ' ')'"
all_right 1.0 1.1 1.2 1.3
[ "$(root_version)" = 3 ] || fail "a new mount trusts root $(root_version), want 3"
unmount_storkfs "$M"
pass "a new mount on the same store agrees"
fsck_clean "the store is clean" "$T/store"
done_ok
