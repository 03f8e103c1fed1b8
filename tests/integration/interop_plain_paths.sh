#!/usr/bin/env bash
# A repository without consistent snapshots (TUF 5.7.3), written by another TUF implementation:
# tufjs_writer.mjs --no-consistent-snapshot makes a root with "consistent_snapshot": false and
# writes every file but the root under its plain name (metadata/targets.json, snapshot.json,
# carol.json; the manifest as targets/synth/1.0.json, with no hash-prefixed copy). Served by
# nginx: `stork verify` passes, `stork extract` and a storkfs mount (the daemon as users start
# it, without -f) give the source tree byte for byte, and the manifest was asked for by its
# plain path only. Before storkfs read consistent_snapshot for targets, every manifest request
# went to targets/synth/<sha256>.1.0.json and got 404.
. "$(dirname "$0")/lib.sh"

need node npm nginx zstd python3
need_fuse

npm_install tuf-js @tufjs/models @tufjs/canonical-json

WRITER=$STORK_TESTS/integration/tufjs_writer.mjs
REPO=$T/repo
KEYS=$T/keys

writer() {
	run node "$WRITER" "$NODE_DIR" "$1" "$REPO" "$KEYS" "${@:2}"
	[ "$RC" -eq 0 ] || { _show_run; fail "tufjs_writer.mjs $*"; }
}

synth_tree "$T/src" 1
writer init carol synth --no-consistent-snapshot
writer publish carol synth 1.0 "$T/src"
ROOT=$T/pinned-root.json
cp "$REPO/metadata/1.root.json" "$ROOT"
node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1]));
process.exit(m.signed.consistent_snapshot === false ? 0 : 1)' "$ROOT" ||
	fail "the writer's root does not say consistent_snapshot false"
for f in metadata/targets.json metadata/snapshot.json metadata/carol.json metadata/timestamp.json \
	targets/synth/1.0.json; do
	[ -f "$REPO/$f" ] || fail "the writer did not write $f"
done
[ -z "$(find "$REPO/targets" "$REPO/metadata" -regextype posix-extended \
	-regex '.*/([0-9a-f]{64}\.1\.0|[0-9]+\.(targets|snapshot|carol))\.json' -print -quit)" ] ||
	fail "the writer left consistent-snapshot names: $(find "$REPO/targets" "$REPO/metadata" -type f)"
pass "the writer made a repository with consistent_snapshot false and plain file names only"

start_nginx "$REPO"
expect_rc 0 "stork verify passes over http" "$STORK" verify --root "$ROOT" "$NGINX_URL/"
out_has "stork verify counts the version" "1 packages, 1 versions"
expect_rc 0 "stork verify passes on the directory" "$STORK" verify --root "$ROOT" "$REPO"

extract_ok "stork extract synth 1.0" --store "$T/store" "$NGINX_URL" synth 1.0 "$T/dest"
check "the extracted synth 1.0 equals its source" compare_tree "$T/src" "$T/dest"

MNT=$T/mnt
mkdir -p "$MNT"
_MOUNTS+=("$MNT") # unmounted at exit
expect_rc 0 "storkfs mounts the repository (without -f)" \
	timeout 60 "$STORKFS" -o "root=$ROOT,store=$T/mstore,timeout=30" "$NGINX_URL" "$MNT"
[ "$(ls "$MNT/synth" | tr '\n' ' ')" = "1.0 latest " ] ||
	fail "synth/ lists '$(ls "$MNT/synth" | tr '\n' ' ')', want 1.0 latest"
mount_list "$T/src" >"$T/want.list"
tree_list "$MNT/synth/1.0" >"$T/got.list"
diff -u "$T/want.list" "$T/got.list" >&2 || fail "the mount's synth/1.0 lists other entries than the source"
check "every file of the mount's synth/1.0 reads as its source" \
	diff -r --no-dereference "$T/src" "$MNT/synth/1.0"
expect_rc 0 "fusermount3 -u unmounts" fusermount3 -u "$MNT"

[ "$(nginx_requests '"GET /targets/synth/1\.0\.json ')" -ge 1 ] ||
	fail "nobody asked for targets/synth/1.0.json: $(grep targets/ "$NGINX_DIR/access.log" | head -3)"
[ "$(nginx_requests '"GET /targets/synth/[0-9a-f]{64}\.')" -eq 0 ] ||
	fail "storkfs asked for a hash-prefixed manifest: $(grep -E 'targets/synth/[0-9a-f]{64}' "$NGINX_DIR/access.log" | head -3)"
pass "manifests were asked for by their plain target path only"
done_ok
