#!/usr/bin/env bash
# stork gc after a publisher is revoked. Alice publishes a 1.0; mallory publishes m 1.0 and
# m 2.0, which share one file with each other and one with alice's a 1.0. A mount reads all of
# it, then the repository revokes mallory and the mount refreshes (SIGHUP): m is gone from it
# and the store drops m's two manifests and mallory's role file (index and trusted/ copy). While a reader reads a's files over and over
# through the mount, stork gc removes exactly the objects only mallory's versions used: her 3
# own files and the 2 manifests (kept as objects for peers), counted, while an extract of a 1.0
# runs too; the file shared with a
# 1.0 stays, and so does one of hers that a pin set holds. The reader read every byte right, stork fsck is clean,
# and a second gc finds nothing to remove.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo a
keygen "$T/pub/mallory.key"
expect_rc 0 "delegate m to mallory" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/mallory.key.pub" m
mkdir -p "$T/src/a" "$T/src/m1" "$T/src/m2" "$T/src/pinned"
rnd 1 1000000 >"$T/src/a/a1"
rnd 2 1000000 >"$T/src/a/common"
cp "$T/src/a/common" "$T/src/m1/common"
rnd 3 1000000 >"$T/src/m1/own1"
rnd 4 1000000 >"$T/src/m1/shared12"
cp "$T/src/m1/shared12" "$T/src/m2/shared12"
rnd 5 1000000 >"$T/src/m2/own2"
rnd 6 1000000 >"$T/src/m2/own3"
publish a 1.0 "$T/src/a" --quiet
for v in 1 2; do
	expect_rc 0 "mallory publishes m $v.0" \
		"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/mallory.key" m $v.0 "$T/src/m$v" --quiet
done
start_nginx "$REPO"
S=$T/store
M=$T/mnt

hex() { sha256sum "$1" | cut -d' ' -f1; }
stored() { [ -e "$S/objects/${1:0:2}/$1" ]; }
nobjects() { find "$S/objects" -type f ! -name '*.*' | wc -l; } # not mode variants
# the manifests of mallory's versions, as the repository's signed targets name them
mallory_manifests() {
	manifest_hashes_of() { sha256sum "$(manifest_file "$1" "$2")" | cut -d' ' -f1; }
	manifest_hashes_of m 1.0
	manifest_hashes_of m 2.0
}
MAN=$(mallory_manifests)

mount_storkfs "$M" "store=$S,timeout=30,refresh=3600" "$NGINX_URL"
for f in a/1.0/a1 a/1.0/common m/1.0/common m/1.0/own1 m/1.0/shared12 m/2.0/shared12 m/2.0/own2 m/2.0/own3; do
	cat "$M/$f" >/dev/null || fail "cannot read $f"
done
for m in $MAN; do stored "$m" || fail "mallory's manifest $m is not an object of the store"; done
before=$(nobjects)
# The mount stores what it fetches unsynced and indexes it at its group's sync, within a second
# (store/README.md "Unsynced inserts"); gc judges indexed objects only: wait for the index.
indexed() { "$STORK" status "$S" 2>/dev/null | sed -n 's/^  objects    \([0-9]*\) .*/\1/p'; }
for _ in $(seq 300); do
	[ "$(indexed)" = "$before" ] && break
	sleep 0.1
done
[ "$(indexed)" = "$before" ] || fail "the index lists $(indexed) objects 30 s after the reads, the store holds $before"
pass "the mount read a 1.0, m 1.0 and m 2.0: $before objects stored and indexed"
[ -n "$(find "$S/trusted" -name mallory.json)" ] || fail "the store holds no copy of mallory's role metadata"
run "$STORK" status "$S"
nmeta=$(sed -n 's/^  metadata *\([0-9]*\) files/\1/p' "$T/out")

expect_rc 0 "the repository revokes mallory" "$STORK" repo revoke "$REPO" --keys "$KEYS" mallory
kill -HUP "$SFS_PID"
for _ in $(seq 200); do
	[ -e "$M/m" ] || break
	sleep 0.1
done
[ ! -e "$M/m" ] || fail "20 s after SIGHUP the mount still shows m"
run "$STORK" status "$S"
out_has "the index dropped mallory's two manifests (a's is left)" "  manifests  1"
out_has "the index dropped mallory's role file" "  metadata      $((nmeta - 1)) files"
[ -z "$(find "$S/trusted" -name mallory.json)" ] || fail "trusted/ still holds mallory's role metadata"
pass "after the refresh m is gone from the mount, its manifests and mallory's role file from the store"

# a pin set holds nothing of mallory's yet; pin one of her files through a store pin set
PINNED=$(hex "$T/src/m2/own3")
python3 - "$S" "$PINNED" <<'EOF'
import os, sys
d = os.path.join(sys.argv[1], "pins")
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "test-slice"), "w") as f:
    f.write("stork-ids 1\n" + sys.argv[2] + "\n")
EOF

# a reader reads a's files through the mount over and over while gc runs
(
	for _ in $(seq 40); do
		cmp -s "$T/src/a/a1" "$M/a/1.0/a1" || { echo "a1 read wrong" >&2; exit 1; }
		cmp -s "$T/src/a/common" "$M/a/1.0/common" || { echo "common read wrong" >&2; exit 1; }
	done
) 2>"$T/reader.err" &
READER=$!
# and an extract of a 1.0 into the same store
"$STORK" extract --root "$ROOT" --store "$S" "$NGINX_URL" a 1.0 "$T/x" >"$T/x.out" 2>"$T/x.err" &
EXTRACT=$!
run "$STORK" gc "$S"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork gc exited $RC"
}
wait "$READER" || fail "the reader of a 1.0 failed during gc: $(cat "$T/reader.err")"
wait "$EXTRACT" || fail "stork extract of a 1.0 failed during gc: $(cat "$T/x.err")"
for f in a1 common; do cmp -s "$T/src/a/$f" "$T/x/$f" || fail "the extracted a 1.0 has a wrong $f"; done
pass "a reader of a 1.0 read every byte right and an extract of it made a right tree while gc ran"

want=5 # own1, shared12, own2 and the two manifests; own3 is pinned
out_has "gc says what it freed" "removed $want objects" "kept 1 unreferenced objects for their pins"
after=$(nobjects)
[ "$after" -eq $((before - want)) ] || fail "the store holds $after objects after gc, want $before - $want"
for f in m1/own1 m1/shared12 m2/own2; do
	! stored "$(hex "$T/src/$f")" || fail "$f, used only by mallory's versions, is still stored"
done
for m in $MAN; do ! stored "$m" || fail "mallory's manifest object $m is still stored"; done
stored "$PINNED" || fail "m2/own3, pinned by a pin set, was removed"
for f in a/a1 a/common; do
	stored "$(hex "$T/src/$f")" || fail "$f, used by a 1.0 (common by m 1.0 too), was removed"
done
pass "gc removed exactly the $want objects only mallory's versions used (counted), kept the shared and the pinned"

for f in a1 common; do
	cmp -s "$T/src/a/$f" "$M/a/1.0/$f" || fail "a/1.0/$f reads wrong after gc"
done
pass "a 1.0 still reads right"

run "$STORK" gc "$S"
out_has "a second gc removes nothing" "removed 0 objects"
unmount_storkfs "$M"
fsck_clean "stork fsck is clean after gc" "$S"
done_ok
