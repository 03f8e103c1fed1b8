#!/usr/bin/env bash
# Repository retention: `stork repo remove` and `stork repo gc` (issue 16 item 4), and a
# publisher on a full disk.
# - remove: only the key of the role that signs a version can withdraw it (another key and a
#   version that is not there are refused, exit 2, naming why); the repository verifies; a
#   mount (SIGHUP) stops showing the version while a reader that had its file open finishes
#   with the old bytes; the other versions read right.
# - gc: --dry-run deletes nothing; with --keep-metadata 2 a client that read the previous
#   timestamp.json still finds every file it names (the previous state, served on its own,
#   verifies); with --keep-metadata 1 that old state is gone, the removed version's own
#   objects are deleted, the objects it shared stay, and the repository's size is within 5%
#   of a repository where only the remaining versions were published; `stork verify`, a fresh
#   mount and tuf-js (an independent TUF client) all read it.
# - a publish into a repository on a full tmpfs fails with exit 3 naming the full disk, leaves
#   metadata and targets byte for byte as they were and no temporary file, and verifies.
. "$(dirname "$0")/lib.sh"

need python3 nginx node npm
need_root "mounts a small tmpfs for the full-disk publish"
need_fuse

# tree DIR SEED: shared.bin (6 MB, the same in every version: above 4 MiB, so stored as
# chunks) and own.bin (2 MB from SEED).
tree() {
	mkdir -p "$1/doc"
	rnd 7 6000000 >"$1/doc/shared.bin"
	rnd "$2" 2000000 >"$1/own.bin"
}

make_repo 'pkg' 'other'
keygen "$T/pub/bob.key"
expect_rc 0 "delegate tools to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" tools
tree "$T/src/1.0" 100
tree "$T/src/2.0" 200
tree "$T/src/o" 300
publish pkg 1.0 "$T/src/1.0"
publish pkg 2.0 "$T/src/2.0"
publish other 1.0 "$T/src/o"
sha1=$(sha "$T/src/1.0/own.bin")
own1=$(sha "$T/src/1.0/own.bin")
manifest_objects pkg 1.0 | grep ' doc/shared.bin$' | cut -d' ' -f1 >"$T/shared-chunks"
[ "$(wc -l <"$T/shared-chunks")" -gt 1 ] || fail "doc/shared.bin (6 MB) is not stored as chunks"
[ -f "$REPO/$(object_path "$own1")" ] || fail "pkg 1.0's own object is not in the repository"

start_nginx "$REPO"
mount_storkfs "$T/mnt" "store=$T/store,timeout=30,refresh=3600" "$NGINX_URL"
[ "$(ls "$T/mnt/pkg" | tr '\n' ' ')" = "1.0 2.0 latest " ] || fail "the mount shows pkg: $(ls "$T/mnt/pkg")"

# A reader holds pkg/1.0/own.bin open and reads slowly; it has started before the removal.
read_hash 120 "$T/mnt/pkg/1.0/own.bin" 20 "$T/reading" >"$T/reader.out" &
reader=$!
for _ in $(seq 300); do
	[ -e "$T/reading" ] && break
	sleep 0.1
done
[ -e "$T/reading" ] || fail "the reader did not open pkg/1.0/own.bin"
sleep 0.5

# --- remove ---------------------------------------------------------------------------------
expect_rc 2 "bob cannot remove alice's pkg 2.0" "$STORK" repo remove "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" pkg 2.0
err_has "...saying whose role signs it" "signed in role alice" "only that role's key can remove it"
expect_rc 2 "a version that is not there" "$STORK" repo remove "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg 9.9
err_has "...says so" "pkg 9.9 is not published"
expect_rc 2 "remove without --key" "$STORK" repo remove "$REPO" --keys "$KEYS" pkg 1.0
before=$(meta_sums)
expect_rc 0 "alice removes pkg 1.0" "$STORK" repo remove "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg 1.0
out_has "...and is told when it disappears" "mounts stop showing it at their next refresh"
[ "$(meta_sums)" != "$before" ] || fail "remove changed no metadata"
[ -f "$REPO/$(object_path "$own1")" ] || fail "remove deleted pkg 1.0's object (gc's job)"
verify_ok "the repository verifies after the removal"
run "$STORK" ls --root "$ROOT" "$REPO" pkg
out_has "stork ls lists pkg 2.0" "2.0"
if grep -q '^1\.0' "$T/out"; then
	fail "stork ls still lists pkg 1.0 after its removal: $OUT"
fi
pass "stork ls no longer lists pkg 1.0"

kill -HUP "$SFS_PID"
for _ in $(seq 60); do
	[ "$(ls "$T/mnt/pkg" | tr '\n' ' ')" = "2.0 latest " ] && break
	sleep 0.5
done
[ "$(ls "$T/mnt/pkg" | tr '\n' ' ')" = "2.0 latest " ] || fail "30 s after SIGHUP the mount shows pkg: $(ls "$T/mnt/pkg")"
pass "after SIGHUP the mount no longer shows pkg 1.0"
wait "$reader" || fail "the reader of pkg/1.0/own.bin did not finish"
[ "$(cat "$T/reader.out")" = "ok $sha1" ] || fail "the open reader of the removed version got '$(cat "$T/reader.out")', want ok $sha1"
pass "the reader that had pkg 1.0's file open read it to the end, right"
read_errno "$T/mnt/pkg/2.0/own.bin"
[ "$GOT" = "ok $(sha "$T/src/2.0/own.bin")" ] || fail "pkg/2.0/own.bin after the removal: $GOT"
pass "pkg 2.0 reads right"

# --- gc -------------------------------------------------------------------------------------
# The state a client sees through the previous timestamp: one more publish, then keep 2.
cp "$REPO/metadata/timestamp.json" "$T/old-timestamp.json"
tree "$T/src/o2" 400
publish other 2.0 "$T/src/o2"
# old_state_verifies: a copy of the repository served with the previous timestamp.json.
old_state_verifies() {
	rm -rf "$T/oldview"
	cp -a "$REPO" "$T/oldview"
	cp "$T/old-timestamp.json" "$T/oldview/metadata/timestamp.json"
	"$STORK" verify --root "$ROOT" "$T/oldview" >"$T/oldview.out" 2>&1
}
old_state_verifies || {
	cat "$T/oldview.out" >&2
	fail "the previous state does not verify even before gc"
}

files_before=$(find "$REPO" -type f | wc -l)
expect_rc 0 "gc --dry-run" "$STORK" repo gc "$REPO" --keep-metadata 1 --dry-run
out_has "...counts" "would delete"
[ "$(find "$REPO" -type f | wc -l)" = "$files_before" ] || fail "gc --dry-run deleted files"
pass "gc --dry-run deleted nothing"
expect_rc 2 "--keep-metadata 0 is refused" "$STORK" repo gc "$REPO" --keep-metadata 0
err_has "...naming the option" "--keep-metadata"

expect_rc 0 "gc --keep-metadata 2" "$STORK" repo gc "$REPO" --keep-metadata 2
old_state_verifies || {
	cat "$T/oldview.out" >&2
	fail "after gc --keep-metadata 2, a client holding the previous timestamp finds files missing"
}
pass "after gc --keep-metadata 2, the previous state still verifies (a client mid-update finds every file)"
verify_ok "the repository verifies after gc --keep-metadata 2"

expect_rc 0 "gc --keep-metadata 1" "$STORK" repo gc "$REPO" --keep-metadata 1
out_has "...deletes objects" "deleted"
if old_state_verifies; then
	fail "after gc --keep-metadata 1 the previous state still verifies: nothing old was deleted"
fi
pass "gc --keep-metadata 1 deleted the previous state"
[ ! -e "$REPO/$(object_path "$own1")" ] || fail "gc kept the object only the removed pkg 1.0 used"
while read -r c; do
	[ -f "$REPO/$(object_path "$c")" ] || fail "gc deleted chunk $c of doc/shared.bin, which pkg 2.0 shares"
done <"$T/shared-chunks"
pass "gc deleted the removed version's own object and kept the chunks of the file it shared"
[ ! -e "$REPO/metadata/2.snapshot.json" ] || fail "gc kept metadata/2.snapshot.json"
for v in $(seq 1 "$(ls "$REPO"/metadata/*.root.json | wc -l)"); do
	[ -f "$REPO/metadata/$v.root.json" ] || fail "gc deleted metadata/$v.root.json"
done
pass "gc kept every root version"
verify_ok "the repository verifies after gc --keep-metadata 1"
check_objects || fail "an object is damaged after gc"

# Its size against a repository with only what remains.
make_repo --in "$T/ref" 'pkg' 'other'
REF=$REPO
REPO=$T/repo
(
	REPO=$REF KEYS=$T/ref/keys PUBKEY=$T/ref/pub/alice.key
	publish pkg 2.0 "$T/src/2.0"
	publish other 1.0 "$T/src/o"
	publish other 2.0 "$T/src/o2"
)
have=$(du -sb --apparent-size "$REPO" | cut -f1)
need=$(du -sb --apparent-size "$REF" | cut -f1)
echo "# repository after gc: $have bytes; a repository of only the remaining versions: $need bytes"
python3 -c 'import sys; h, n = int(sys.argv[1]), int(sys.argv[2]); sys.exit(0 if abs(h - n) <= 0.05 * n else 1)' "$have" "$need" ||
	fail "after gc the repository holds $have bytes, the remaining versions need $need (more than 5% apart)"
pass "after gc the repository's size is within 5% of what the remaining versions need"
ROOT=$T/pinned-root.json

# Readers of the collected repository: the running mount, a fresh one, tuf-js.
kill -HUP "$SFS_PID"
for _ in $(seq 60); do
	[ -e "$T/mnt/other/2.0" ] && break
	sleep 0.5
done
read_errno "$T/mnt/other/2.0/own.bin"
[ "$GOT" = "ok $(sha "$T/src/o2/own.bin")" ] || fail "the running mount reads other/2.0/own.bin: $GOT"
mount_storkfs "$T/mnt2" "store=$T/store2,timeout=30" "$NGINX_URL"
for f in pkg/2.0/own.bin pkg/2.0/doc/shared.bin other/1.0/own.bin other/2.0/own.bin; do
	src=$T/src/2.0/${f#pkg/2.0/}
	case $f in other/1.0/*) src=$T/src/o/${f#other/1.0/} ;; other/2.0/*) src=$T/src/o2/${f#other/2.0/} ;; esac
	read_errno "$T/mnt2/$f"
	[ "$GOT" = "ok $(sha "$src")" ] || fail "a fresh mount after gc reads $f: $GOT"
done
pass "the running mount and a fresh one read every remaining file right after gc"
grep -E '" (404|5[0-9][0-9]) ' "$NGINX_DIR/access.log" | grep -v '\.root\.json' >"$T/bad-requests" || true
[ ! -s "$T/bad-requests" ] || {
	cat "$T/bad-requests" >&2
	fail "a mount asked for a file gc deleted"
}
pass "no mount asked for anything gc deleted (no 404 but the root probe)"

npm_install tuf-js
mkdir -p "$T/tufmd" "$T/dl"
cp "$ROOT" "$T/tufmd/root.json"
run node "$STORK_TESTS/integration/tufjs_client.mjs" "$NODE_DIR/node_modules" "$NGINX_URL/metadata" "$NGINX_URL/targets" "$T/tufmd" "$T/dl" pkg/2.0.json other/2.0.json
[ "$RC" -eq 0 ] || {
	_show_run
	fail "tuf-js cannot refresh from the collected repository"
}
cmp "$T/dl/pkg__2.0.json" "$(manifest_file pkg 2.0)" || fail "tuf-js's pkg 2.0 manifest differs"
pass "tuf-js refreshes from the collected repository and downloads its targets"

# --- a publish on a full disk ---------------------------------------------------------------
mkdir -p "$T/small"
mount -t tmpfs -o size=3m tmpfs "$T/small"
on_exit 'umount -l "$T/small" 2>/dev/null'
make_repo --in "$T/small" 'pkg'
mkdir -p "$T/src/tiny"
rnd 9 100000 >"$T/src/tiny/f"
publish pkg 1.0 "$T/src/tiny"
before=$(meta_sums)
expect_rc 3 "publishing 8 MB into a repository on a 3 MB file system" "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg 2.0 "$T/src/2.0"
err_has "...naming the full disk" "No space left on device"
[ "$(meta_sums)" = "$before" ] || fail "the failed publish changed metadata or targets"
[ -z "$(find "$REPO" -name '.tmp*' -o -name '*.tmp')" ] || fail "the failed publish left temporary files: $(find "$REPO" -name '.tmp*')"
pass "the failed publish left metadata, targets and objects as they were"
verify_ok "the repository on the full disk verifies"

done_ok
