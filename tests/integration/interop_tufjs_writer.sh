#!/usr/bin/env bash
# Interoperability, the other way round: storkfs reads a repository that storkfs did not write.
# tufjs_writer.mjs makes the keys with node:crypto (ed25519), builds every metadata file with
# @tufjs/models (root, targets delegating 'synth' and 'tiny*' to the publisher role carol,
# carol's role, snapshot, timestamp) and signs it with the models' signing API; it writes the
# manifest and the zstd objects itself from verify/README.md and store/README.md. The files are
# indented JSON in the models' key order (as python-tuf writes them), not canonical. Served by
# nginx: `stork verify` passes from the pinned root; `stork ls` lists the package with carol's
# key id as the writer computed it; `stork extract` and a storkfs mount show the source tree
# (files, modes, symlinks, directories, UTF-8 names) byte for byte; tuf-js agrees that the
# repository is valid TUF. Then the writer publishes a second version (a plain TUF target,
# without storkfs's "custom") and rotates the root and timestamp keys (root 2 signed by the old
# and the new root key): the mount follows after SIGHUP, trusts root 2, and verify/ls/extract
# chain from root 1. A copy whose root 2 lacks the old root's signature is refused.
. "$(dirname "$0")/lib.sh"

need node npm nginx zstd python3
need_fuse

# @tufjs/models (and tuf-js, the control), installed once into the cache as interop_tufjs.sh does
npm_install tuf-js @tufjs/models @tufjs/canonical-json
# (JSON is read with node: it is needed anyway and starts faster than python)
echo "# $(node -e 'const [d, ...ps] = process.argv.slice(1);
console.log(ps.map((p) => p + " " + require(d + "/node_modules/" + p + "/package.json").version).join(", "))' \
	"$NODE_DIR" @tufjs/models @tufjs/canonical-json tuf-js), node $(node --version)"

WRITER=$STORK_TESTS/integration/tufjs_writer.mjs
REPO=$T/repo
KEYS=$T/keys

# writer COMMAND ARGS...: run tufjs_writer.mjs on $REPO and $KEYS; must succeed. Output in $OUT.
writer() {
	run node "$WRITER" "$NODE_DIR" "$1" "$REPO" "$KEYS" "${@:2}"
	[ "$RC" -eq 0 ] || { _show_run; fail "tufjs_writer.mjs $*"; }
}

# keyid ROLE: the key id the writer printed for ROLE's newest key
keyid() {
	grep -h "^keyid $1 " "$T"/writer-*.out | tail -n 1 | cut -d' ' -f3
}

# --- a repository written by @tufjs/models ----------------------------------------------------
synth_tree "$T/src1" 1
writer init carol synth 'tiny*'
cp "$T/out" "$T/writer-init.out"
writer publish carol synth 1.0 "$T/src1"
cp "$REPO/metadata/1.root.json" "$T/pinned-root.json"
ROOT=$T/pinned-root.json
CAROL=$(keyid carol)
[[ $CAROL =~ ^[0-9a-f]{64}$ ]] || fail "the writer printed no key id for carol"
for f in 1.root.json 1.targets.json 1.carol.json 2.snapshot.json timestamp.json; do
	[ -f "$REPO/metadata/$f" ] || fail "the writer did not write metadata/$f"
done
head -c 2 "$REPO/metadata/1.root.json" | matches '^{$' || fail "metadata/1.root.json is not indented JSON"
pass "@tufjs/models wrote root, targets, carol, snapshot and timestamp (indented, not canonical JSON)"
check "the writer's objects are zstd streams of the bytes their names hash" check_objects "$REPO"

verify_ok "stork verify passes on the @tufjs/models repository (directory)"
start_nginx "$REPO"
expect_rc 0 "stork verify over http" "$STORK" verify --root "$ROOT" "$NGINX_URL/"
grep -q '^verified ' "$T/out" || fail "stork verify over http: $OUT"

# what storkfs lists: the package, and its version signed by carol with the key id the writer
# computed (SHA-256 of the key object's canonical JSON, by @tufjs/canonical-json)
expect_rc 0 "stork ls" "$STORK" ls --root "$ROOT" "$NGINX_URL/"
[ "$OUT" = "$(printf 'PACKAGE\nsynth')" ] || fail "stork ls lists '$OUT', want synth"
bytes=$(find "$T/src1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
entries=$(find "$T/src1" -mindepth 1 | wc -l)
expect_rc 0 "stork ls synth" "$STORK" ls --root "$ROOT" "$NGINX_URL/" synth
# (the writer signs its entry count, $entries, as files: storkfs cannot tell it for a file count)
want=$(printf 'VERSION\tROLE\tKEY ID\tBYTES\tFILES\n1.0\tcarol\t%s\t%s\t-' "${CAROL:0:16}" "$bytes")
[ "$OUT" = "$want" ] || fail "stork ls synth says '$OUT', want '$want'"
pass "stork ls: synth 1.0 signed by role carol with the writer's key id, $bytes bytes"

extract_ok "stork extract synth 1.0 from the @tufjs/models repository" \
	--store "$T/store" "$NGINX_URL" synth 1.0 "$T/dest1"
check "the extracted synth 1.0 equals its source (bytes, modes, symlinks, directories)" \
	compare_tree "$T/src1" "$T/dest1"

# the control: an independent TUF client accepts the same repository
mkdir -p "$T/md" "$T/dl"
cp "$ROOT" "$T/md/root.json"
run node "$STORK_TESTS/integration/tufjs_client.mjs" "$NODE_DIR/node_modules" "$NGINX_URL/metadata" \
	"$NGINX_URL/targets" "$T/md" "$T/dl" synth/1.0.json
[ "$RC" -eq 0 ] || { _show_run; fail "tuf-js does not accept the repository the writer made"; }
cmp "$T/dl/synth__1.0.json" "$(manifest_file synth 1.0)" || fail "tuf-js downloaded another synth 1.0 manifest"
pass "tuf-js accepts the same repository and downloads the same manifest"

# --- a real mount ------------------------------------------------------------------------------
M=$T/mnt
mount_storkfs "$M" "store=$T/mstore,timeout=30,refresh=3600" "$NGINX_URL"
PID=$SFS_PID

# mount_same SRC VERSION: the mount's synth/VERSION shows SRC (names, types, sizes, symlink
# targets, read-only modes; every file's bytes)
mount_same() {
	mount_list "$1" >"$T/want.list"
	tree_list "$M/synth/$2" >"$T/got.list"
	diff -u "$T/want.list" "$T/got.list" >&2 || return 1
	diff -r --no-dereference "$1" "$M/synth/$2" >&2
}
root_version() {
	xattr "$M" user.storkfs.status |
		node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).metadata.root.version)'
}
[ "$(ls "$M" | tr '\n' ' ')" = "synth " ] || fail "the mount shows '$(ls "$M" | tr '\n' ' ')', want synth"
check "the mount's synth/1.0 equals the source" mount_same "$T/src1" 1.0
[ "$(root_version)" = 1 ] || fail "the mount trusts root $(root_version), want 1"
pass "the mount trusts root 1"

# --- a second version, then a root rotation, both by @tufjs/models --------------------------
synth_tree "$T/src2" 2
writer publish carol synth 2.0 "$T/src2" --plain
writer rotate-root
cp "$T/out" "$T/writer-rotate.out"
node -e 'const [f, ...want] = process.argv.slice(1);
const m = JSON.parse(require("fs").readFileSync(f));
const ids = m.signatures.map((s) => s.keyid).sort();
process.exit(m.signed.version === 2 && ids.join() === want.sort().join() ? 0 : 1)' \
	"$REPO/metadata/2.root.json" "$(grep -h '^keyid root ' "$T/writer-init.out" | cut -d' ' -f3)" \
	"$(keyid root)" || fail "metadata/2.root.json is not version 2 signed by the old and the new root key"
pass "the writer published synth 2.0 and wrote root 2 (new root and timestamp keys) signed by both root keys"
sleep 1
[ ! -e "$M/synth/2.0" ] || fail "the mount (refresh=3600) shows synth 2.0 before SIGHUP"
kill -HUP "$PID"
for _ in $(seq 100); do
	[ -e "$M/synth/2.0" ] && break
	sleep 0.1
done
[ -e "$M/synth/2.0" ] || fail "synth 2.0 did not appear within 10 s of SIGHUP; log: $(tail -n 5 "$SFS_LOG")"
[ "$(root_version)" = 2 ] || fail "after SIGHUP the mount trusts root $(root_version), want 2"
[ "$(readlink "$M/synth/latest")" = 2.0 ] || fail "synth/latest -> $(readlink "$M/synth/latest"), want 2.0"
pass "after SIGHUP the mount trusts root 2 and shows synth 2.0 (latest -> 2.0)"
check "the mount's synth/2.0 equals its source" mount_same "$T/src2" 2.0
check "the mount's synth/1.0 still equals its source" mount_same "$T/src1" 1.0

# the commands chain from the pinned root 1 (the timestamp is signed by a key only root 2 lists)
expect_rc 0 "stork verify from root 1 after the rotation" "$STORK" verify --root "$ROOT" "$NGINX_URL/"
grep -q '^verified .*2 versions' "$T/out" || fail "stork verify after the rotation: $OUT"
expect_rc 0 "stork ls synth after the rotation" "$STORK" ls --root "$ROOT" "$NGINX_URL/" synth
[ "$(sed 1d "$T/out" | cut -f1,2,3 | tr '\t\n' ' |')" = "1.0 carol ${CAROL:0:16}|2.0 carol ${CAROL:0:16}|" ] ||
	fail "stork ls synth after the rotation: '$OUT'"
pass "stork ls lists 1.0 and 2.0, both signed by carol"
extract_ok "stork extract synth 2.0 after the rotation" --store "$T/store" "$NGINX_URL" synth 2.0 "$T/dest2"
check "the extracted synth 2.0 equals its source" compare_tree "$T/src2" "$T/dest2"

# storkfs does check the signatures the models made: root 2 without the old root key's
# signature does not chain from root 1
cp -a "$REPO" "$T/bad"
node -e 'const fs = require("fs"), [f, old] = process.argv.slice(1);
const m = JSON.parse(fs.readFileSync(f));
m.signatures = m.signatures.filter((s) => s.keyid !== old);
fs.writeFileSync(f, JSON.stringify(m, null, 1))' "$T/bad/metadata/2.root.json" \
	"$(grep -h '^keyid root ' "$T/writer-init.out" | cut -d' ' -f3)"
expect_rc 1 "root 2 without the old root's signature is refused" \
	"$STORK" verify --root "$ROOT" "$T/bad"
err_has "the refusal names root 2" 2.root.json

unmount_storkfs "$M" "$PID"
pass "the daemon served both versions across the rotation and exited cleanly"
done_ok
