#!/usr/bin/env bash
# Peers serve package manifests too (fetch/README.md "Peers"): a node keeps each manifest it
# verified as an object of its store under its signed SHA-256, so a peer export serves it.
#
#  1. node A mounts and reads synth 1.0 from the origin (nginx); its store then holds the
#     manifest's exact signed bytes at objects/ab/<manifest hash>;
#  2. node B mounts with A as its peer and reads everything: the origin sees no request for the
#     manifest (targets/...) and none for objects; A's peer log shows objects/<manifest hash>;
#     `stork extract --peer` and `stork prefetch --peer` (nodes C, D) do the same;
#  3. a lying peer (a copy of A's store whose manifest object has one byte changed, behind a
#     second nginx) is named in the log with "hash mismatch" and skipped; the manifest comes
#     from the origin, and the files are right; with the liar first and A next, A serves it;
#  4. a repository written by another tool (@tufjs/models: indented JSON, not canonical): the
#     node keeps the manifest's exact bytes, so it extracts again with the origin down.
. "$(dirname "$0")/lib.sh"

need python3 nginx curl node npm cmp
need_fuse

# after LOGFILE N: the lines of LOGFILE after its first N
after() {
	tail -n +"$(($2 + 1))" "$1"
}
lines() {
	wc -l <"$1"
}

# mount_same SRC DIR: a mount's version directory DIR shows SRC (entries, types, read-only
# modes, symlink targets; every file's bytes, so every object is read)
mount_same() {
	mount_list "$1" >"$T/want.list"
	tree_list "$2" >"$T/got.list"
	diff -u "$T/want.list" "$T/got.list" >&2 || return 1
	diff -r --no-dereference "$1" "$2" >&2
}

make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
MF=$(manifest_file synth 1.0)
MH=$(basename "$MF")
MH=${MH:0:64}
MPATH=$(object_path "$MH")
start_nginx "$REPO"
ORIGIN=$NGINX_DIR/access.log
MREQ="\"GET /targets/synth/$MH.1.0.json "
OPTS="timeout=30,refresh=3600"

# --- 1. node A: from the origin
mount_storkfs "$T/mA" "store=$T/A,$OPTS" "$NGINX_URL"
check "node A's mount shows synth 1.0" mount_same "$T/src" "$T/mA/synth/1.0"
[ "$(grep -cF -- "$MREQ" "$ORIGIN")" -eq 1 ] || fail "node A did not fetch the manifest from the origin once"
unmount_storkfs "$T/mA"
[ -f "$T/A/$MPATH" ] || fail "node A's store lacks the manifest object $MPATH"
cmp "$T/A/$MPATH" "$MF" || fail "node A's manifest object is not the signed manifest's bytes"
pass "node A keeps the manifest's signed bytes as the object $MPATH"
fsck_clean "node A's store is clean" "$T/A"
start_peer "$T/A"
A_URL=$PEER_URL A_LOG=$PEER_DIR/access.log
[ "$(curl -s -o /dev/null -w '%{http_code}' "$A_URL$MPATH")" = 200 ] ||
	fail "node A's peer export does not serve $MPATH"
: >"$A_LOG"

# --- 2. node B: everything from A
n=$(lines "$ORIGIN")
mount_storkfs "$T/mB" "store=$T/B,$OPTS,peer=$A_URL" "$NGINX_URL"
check "node B's mount (peer A) shows synth 1.0" mount_same "$T/src" "$T/mB/synth/1.0"
unmount_storkfs "$T/mB"
after "$ORIGIN" "$n" | matches -F -- "$MREQ" && fail "node B asked the origin for the manifest"
after "$ORIGIN" "$n" | matches -F '"GET /targets/' && fail "node B asked the origin for targets/ files"
after "$ORIGIN" "$n" | matches -F '"GET /objects/' && fail "node B asked the origin for objects"
pass "the origin got no manifest and no object request from node B (metadata only)"
grep -F "\"GET /$MPATH HTTP/1.1\" 200 " "$A_LOG" | matches . ||
	fail "node A's peer log shows no GET /$MPATH: $(head -c 2000 "$A_LOG")"
pass "node A's peer served the manifest object $MPATH"
cmp "$T/B/$MPATH" "$MF" || fail "node B did not keep the manifest object for its own peers"
pass "node B keeps the manifest object in turn"
fsck_clean "node B's store is clean" "$T/B"

n=$(lines "$ORIGIN")
p=$(grep -cF "\"GET /$MPATH " "$A_LOG")
extract_ok "node C: stork extract --peer A" --store "$T/C" --peer "$A_URL" "$NGINX_URL" synth 1.0 \
	"$T/dC"
check "node C's tree is identical to its source" compare_tree "$T/src" "$T/dC"
after "$ORIGIN" "$n" | matches -E '"GET /(targets|objects)/' && fail "stork extract --peer asked the origin for targets/ or objects/"
[ "$(grep -cF "\"GET /$MPATH " "$A_LOG")" -eq $((p + 1)) ] || fail "stork extract --peer did not ask A for $MPATH"
pass "stork extract --peer: the manifest and every object from the peer"

n=$(lines "$ORIGIN")
run timeout -k 10 "$EXTRACT_TIMEOUT" "$STORK" prefetch --root "$ROOT" --store "$T/D" \
	--peer "$A_URL" "$NGINX_URL" synth=1.0
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork prefetch --peer exited $RC"
}
after "$ORIGIN" "$n" | matches -F -- "$MREQ" && fail "stork prefetch --peer asked the origin for the manifest"
after "$ORIGIN" "$n" | matches -F '"GET /objects/' && fail "stork prefetch --peer asked the origin for objects"
[ "$(grep -cF "\"GET /$MPATH " "$A_LOG")" -eq $((p + 2)) ] || fail "stork prefetch --peer did not ask A for $MPATH"
cmp "$T/D/$MPATH" "$MF" || fail "node D did not keep the manifest object"
pass "stork prefetch --peer: the manifest from the peer, no manifest or object from the origin"

# --- 3. a lying peer
cp -a "$T/A" "$T/L"
chmod u+w "$T/L/$MPATH"
python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    data = bytearray(f.read())
    data[len(data) // 2] ^= 0x20
    f.seek(0)
    f.write(data)' "$T/L/$MPATH"
[ "$(stat -c %s "$T/L/$MPATH")" -eq "$(stat -c %s "$MF")" ] && ! cmp -s "$T/L/$MPATH" "$MF" ||
	fail "test setup: the liar's manifest object is not a same-length corruption"
start_peer "$T/L"
L_URL=$PEER_URL L_LOG=$PEER_DIR/access.log

n=$(lines "$ORIGIN")
mount_storkfs "$T/mE" "store=$T/E,$OPTS,peer=$L_URL" "$NGINX_URL"
check "node E's mount (lying peer) shows synth 1.0" mount_same "$T/src" "$T/mE/synth/1.0"
unmount_storkfs "$T/mE"
grep -F "\"GET /$MPATH HTTP/1.1\" 200 " "$L_LOG" | matches . || fail "the liar was not asked for $MPATH"
grep -F "peer $L_URL: $MPATH (synth 1.0: manifest): hash mismatch; skipping this peer" "$SFS_LOG" |
	matches . || {
	head -c 3000 "$SFS_LOG" >&2
	fail "node E's log does not name the lying peer, the manifest object and the hash mismatch"
}
pass "the log names the lying peer, the manifest object and \"hash mismatch\""
[ "$(after "$ORIGIN" "$n" | grep -cF -- "$MREQ")" -eq 1 ] ||
	fail "node E did not fetch the manifest from the origin (once)"
pass "the manifest the peer lied about came from the origin"
cmp "$T/E/$MPATH" "$MF" || fail "node E kept other bytes than the signed manifest"
fsck_clean "node E's store is clean" "$T/E"

n=$(lines "$ORIGIN")
: >"$A_LOG"
extract_ok "node G: stork extract --peer LIAR,A" --store "$T/G" --peer "$L_URL,$A_URL" \
	"$NGINX_URL" synth 1.0 "$T/dG"
check "node G's tree is identical to its source" compare_tree "$T/src" "$T/dG"
err_has "node G's log names the liar" "peer $L_URL: $MPATH (synth 1.0: manifest): hash mismatch"
after "$ORIGIN" "$n" | matches -E '"GET /(targets|objects)/' && fail "node G asked the origin for targets/ or objects/"
grep -F "\"GET /$MPATH HTTP/1.1\" 200 " "$A_LOG" | matches . || fail "node A was not asked for $MPATH after the liar"
pass "after the lying peer the next peer served the manifest; nothing from the origin"
stop_nginx "$(dirname "$L_LOG")"

# --- 4. a repository written by another tool: indented manifests
npm_install tuf-js @tufjs/models @tufjs/canonical-json
REPO=$T/repo2
run node "$STORK_TESTS/integration/tufjs_writer.mjs" "$NODE_DIR" init "$REPO" "$T/keys2" carol synth
[ "$RC" -eq 0 ] || { _show_run; fail "tufjs_writer.mjs init"; }
run node "$STORK_TESTS/integration/tufjs_writer.mjs" "$NODE_DIR" publish "$REPO" "$T/keys2" carol \
	synth 1.0 "$T/src"
[ "$RC" -eq 0 ] || { _show_run; fail "tufjs_writer.mjs publish"; }
cp "$REPO/metadata/1.root.json" "$T/pinned-root2.json"
ROOT=$T/pinned-root2.json
MF=$(manifest_file synth 1.0)
MH=$(basename "$MF")
MPATH=$(object_path "${MH:0:64}")
python3 -c 'import json, sys
b = open(sys.argv[1], "rb").read()
sys.exit(b == json.dumps(json.loads(b), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())' "$MF" ||
	fail "test setup: the writer's manifest is canonical JSON"
start_nginx "$REPO"
extract_ok "node F extracts from the @tufjs/models repository" --store "$T/F" "$NGINX_URL" synth 1.0 \
	"$T/dF"
check "node F's tree is identical to its source" compare_tree "$T/src" "$T/dF"
cmp "$T/F/$MPATH" "$MF" || fail "node F's manifest object is not the indented manifest's exact bytes"
pass "the node keeps the exact bytes of a non-canonical manifest as its object"
stop_nginx
extract_ok "node F extracts again with the origin down (the stored manifest checks out)" \
	--store "$T/F" "$NGINX_URL" synth 1.0 "$T/dF2"
check "the offline tree is identical to its source" compare_tree "$T/src" "$T/dF2"
fsck_clean "node F's store is clean" "$T/F"
done_ok
