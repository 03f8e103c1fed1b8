#!/usr/bin/env bash
# A policy's catalog index (fs/README.md "Catalog index") holds only until the first role it
# was built from expires, pinned roles too. Alice's role (she signs a 1.0) expires 20 s after
# she publishes (the repository's targets duration; the top-level roles live long). A mount
# without a policy walks the delegations and marks the state's versions kept; a second mount
# (the daemon without -f, as users run it) with a policy that trusts only alice's pinned role
# (`trust a* role alice keys alice`, TAP 13) lists a 1.0 and keeps that catalog. Once alice's
# role has expired, a third mount with the same policy over the same verified state must not
# list a 1.0 (a walk refuses the expired role): the kept catalog no longer holds.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

EXP=20
make_repo 'a*'
expect_rc 0 "alice's role expires ${EXP}s after it is signed" \
	"$STORK" repo refresh "$REPO" --keys "$KEYS" --expires targets=${EXP}s
mkdir -p "$T/src"
rnd 1 10000 >"$T/src/f"
publish a 1.0 "$T/src" --quiet
EXPIRES=$(($(date +%s) + EXP))
start_nginx "$REPO"
STORE=$T/store
MNT=$T/mnt
MOUNT_TIMEOUT=20
printf 'key alice file %s.pub\ntrust a* role alice keys alice\n' "$PUBKEY" >"$T/a.policy"

listed() {
	ls "$MNT" | tr '\n' ' '
}

mount_bg "$MNT"
[ "$(listed)" = "a " ] || fail "the mount without a policy lists '$(listed)', want 'a '"
unmount_storkfs "$MNT" "$MOUNT_PID"
mount_bg "$MNT" "policy=$T/a.policy"
[ "$(listed)" = "a " ] || fail "the mount with alice's pinned role lists '$(listed)', want 'a '"
cmp -s "$T/src/f" "$MNT/a/1.0/f" || fail "a/1.0/f does not read as published"
unmount_storkfs "$MNT" "$MOUNT_PID"
[ "$(date +%s)" -lt "$EXPIRES" ] || fail "setup took too long: alice's role expired already (raise EXP)"
[ -n "$(ls "$STORE/catalogs")" ] || fail "no catalog index was kept in $STORE/catalogs"
pass "before alice's role expires: a 1.0 is listed with and without the policy; catalogs kept"

while [ "$(date +%s)" -le "$EXPIRES" ]; do
	sleep 1
done
mount_bg "$MNT" "policy=$T/a.policy"
[ "$(listed)" = "" ] || fail "alice's role expired at $(date -u -d "@$EXPIRES" +%H:%M:%SZ), yet a mount with her pinned role lists '$(listed)' (from the catalog kept before), want nothing"
unmount_storkfs "$MNT" "$MOUNT_PID"
pass "after alice's role expired: the mount with her pinned role lists nothing"
done_ok
