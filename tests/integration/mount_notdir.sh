#!/usr/bin/env bash
# A file where a fan-out directory of the node store belongs (issue 11, item 10): after an
# extract has stored a package, STOREDIR/objects/ab (ab: the first two hex digits of one of
# its objects) is replaced by a regular file. `stork fsck` reports it (exit 1, problems found:
# the file, and the objects indexed below it as missing) instead of failing with exit 3;
# `stork fsck --repair` drops those records and removes the file (exit 0, a second fsck
# clean). With the file put back, a storkfs mount (the daemon without -f, as users run it)
# opening the package's file under objects/ab fetches the object again, clearing the file and
# making the directory, and serves the source's bytes (not ENOTDIR or EIO); fsck is clean
# afterwards.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo
mkdir -p "$T/src/d"
rnd 41 150000 >"$T/src/d/victim"
rnd 42 3000 >"$T/src/d/other"
echo small >"$T/src/d/small"
publish pkg 1.0 "$T/src"
start_nginx "$REPO"
read -r o_victim _ _ < <(manifest_hashes pkg 1.0 | grep ' d/victim$')
ab=${o_victim:0:2}
STORE=$T/store

extract_ok "stork extract stores pkg 1.0" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x1"
[ -f "$STORE/objects/$ab/$o_victim" ] || fail "the extract did not store $STORE/objects/$ab/$o_victim"

# put_file: a regular file at objects/ab instead of the directory
put_file() {
	rm_rf "$STORE/objects/$ab"
	echo "not a directory" >"$STORE/objects/$ab"
}

# --- fsck reports it, --repair fixes it -------------------------------------------------
put_file
run "$STORK" fsck "$STORE"
[ "$RC" -eq 1 ] || {
	_show_run
	fail "stork fsck with a file at objects/$ab exited $RC, want 1 (problems found)"
}
err_has "fsck names the file where the directory belongs" "$STORE/objects/$ab: not a directory"
err_has "fsck names the object below it as missing" "objects/$ab/$o_victim: indexed but missing"
pass "stork fsck reports the file at objects/$ab (exit 1)"
run "$STORK" fsck --repair "$STORE"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork fsck --repair with a file at objects/$ab exited $RC, want 0"
}
out_has "fsck --repair says the store is clean" "$STORE: clean"
[ ! -e "$STORE/objects/$ab" ] || fail "fsck --repair left $STORE/objects/$ab"
pass "stork fsck --repair removes the file (exit 0)"
fsck_clean "a second stork fsck is clean" "$STORE"

# --- the mount fetches the object again ---------------------------------------------------
extract_ok "stork extract stores pkg 1.0 again" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
put_file
MNT=$T/mnt
mkdir -p "$MNT"
_MOUNTS+=("$MNT")
expect_rc 0 "storkfs mounts (daemon without -f)" \
	timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,timeout=30" "$NGINX_URL" "$MNT"
got=$(timeout -k 5 60 python3 -c 'import hashlib, sys
try:
    with open(sys.argv[1], "rb") as f:
        print("ok", hashlib.sha256(f.read()).hexdigest())
except OSError as e:
    print("errno", e.errno)' "$MNT/pkg/1.0/d/victim") || fail "reading d/victim did not finish within 60 s"
[ "$got" = "ok $o_victim" ] ||
	fail "reading d/victim with a file at objects/$ab: '$got', want 'ok $o_victim' (20 = ENOTDIR, 5 = EIO)"
pass "the mount serves d/victim's bytes with a file at objects/$ab"
for f in d/other d/small; do
	cmp -s "$MNT/pkg/1.0/$f" "$T/src/$f" || fail "$f read through the mount differs from its source"
done
pass "the package's other files read their sources' bytes"
[ -d "$STORE/objects/$ab" ] && [ -f "$STORE/objects/$ab/$o_victim" ] ||
	fail "objects/$ab is not a directory holding the object after the read"
pass "objects/$ab is a directory again, holding the object"
[ "$(xattr "$MNT/pkg/1.0/d/victim" user.storkfs.cached)" = 1 ] || fail "d/victim is not cached after the read"
fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT failed"
for _ in $(seq 100); do
	is_mounted "$MNT" || break
	sleep 0.1
done
! is_mounted "$MNT" || fail "$MNT is still mounted"
fsck_clean "stork fsck is clean after the mount refetched" "$STORE"
check "every stored object holds the content its name hashes" store_hashes_ok "$STORE"
done_ok
