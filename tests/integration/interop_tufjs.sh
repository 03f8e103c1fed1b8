#!/usr/bin/env bash
# Interoperability: tuf-js, an independent TUF client, updates from a storkfs repository served
# by nginx, resolves targets through the delegations and downloads manifests that equal the
# repository's files; it rejects a tampered manifest and a tampered role. Then the repository
# rotates its root key, then its timestamp, snapshot and targets keys (roots 2 and 3), and
# alice's publisher key (`stork repo rotate`), and alice publishes with her new key: tuf-js,
# reusing the metadata directory in which it trusted root 1, chains roots 2 and 3 itself and
# downloads the new and the old targets; a fresh client does too; alice's role signed with her
# rotated-out key is refused.
. "$(dirname "$0")/lib.sh"

need node npm nginx dpkg-deb
fetch_debs

# tuf-js, installed once into the cache
npm_install tuf-js
echo "# tuf-js $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$NODE_DIR/node_modules/tuf-js/package.json")"
CLIENT=$STORK_TESTS/integration/tufjs_client.mjs

make_repo 'hello' 'tiny'
keygen "$T/pub/bob.key"
expect_rc 0 "delegate tools to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" tools
hello=${DEBS[6]}
[ "$(deb_field "$hello" Package)" = hello ] || fail "DEBS[6] is not hello"
publish hello 2.10-3 "$hello"
mkdir -p "$T/src/bin"
printf '#!/bin/sh\necho tiny\n' >"$T/src/bin/tiny"
publish tiny 1.0 "$T/src"
printf '#!/bin/sh\necho tiny 1.1\n' >"$T/src/bin/tiny"
publish tiny 1.1 "$T/src"
expect_rc 0 "bob publishes tools 3" "$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" tools 3 "$T/src"
verify_ok

start_nginx "$REPO"

# tufjs METADATA_DIR TARGET...: run the client; RC, OUT as with run.
tufjs() {
	local md=$1
	shift
	mkdir -p "$md" "$T/dl"
	[ -f "$md/root.json" ] || cp "$ROOT" "$md/root.json"
	run node "$CLIENT" "$NODE_DIR/node_modules" "$NGINX_URL/metadata" "$NGINX_URL/targets" "$md" "$T/dl" "$@"
}

tufjs "$T/md1" hello/2.10-3.json tiny/1.1.json tools/3.json
[ "$RC" -eq 0 ] || { _show_run; fail "tuf-js could not update from the repository and download the targets"; }
pass "tuf-js refreshes (root, timestamp, snapshot, targets, delegated roles) and downloads three targets"
cmp "$T/dl/hello__2.10-3.json" "$(manifest_file hello 2.10-3)" || fail "hello manifest from tuf-js differs"
cmp "$T/dl/tiny__1.1.json" "$(manifest_file tiny 1.1)" || fail "tiny manifest from tuf-js differs"
cmp "$T/dl/tools__3.json" "$(manifest_file tools 3)" || fail "tools manifest from tuf-js differs"
pass "the manifests tuf-js downloaded equal the repository's files"

# it really went through nginx, with consistent-snapshot names
for re in 'GET /metadata/2\.root\.json HTTP/[0-9.]+" 404' 'GET /metadata/timestamp\.json HTTP/[0-9.]+" 200' \
	'GET /metadata/[0-9]+\.snapshot\.json HTTP/[0-9.]+" 200' 'GET /metadata/[0-9]+\.targets\.json HTTP/[0-9.]+" 200' \
	'GET /metadata/[0-9]+\.alice\.json HTTP/[0-9.]+" 200' 'GET /metadata/[0-9]+\.bob\.json HTTP/[0-9.]+" 200' \
	'GET /targets/hello/[0-9a-f]{64}\.2\.10-3\.json HTTP/[0-9.]+" 200'; do
	[ "$(nginx_requests "$re")" -ge 1 ] || { tail -20 "$NGINX_DIR/access.log" >&2; fail "no request matching '$re' in nginx's log"; }
done
pass "nginx served root probe, timestamp, versioned snapshot/targets/roles and hash-prefixed targets"

# a target no role signs
tufjs "$T/md2" nope/1.0.json
[ "$RC" -eq 2 ] && grep -q '^missing nope/1.0.json' "$T/out" || { _show_run; fail "tuf-js: unknown target not reported missing"; }
pass "tuf-js reports an unknown target as missing"

# a new version appears to a client with cached metadata
printf '#!/bin/sh\necho tiny 1.2\n' >"$T/src/bin/tiny"
publish tiny 1.2 "$T/src"
tufjs "$T/md1" tiny/1.2.json
[ "$RC" -eq 0 ] || { _show_run; fail "tuf-js with cached metadata did not pick up tiny 1.2"; }
cmp "$T/dl/tiny__1.2.json" "$(manifest_file tiny 1.2)" || fail "tiny 1.2 manifest from tuf-js differs"
pass "tuf-js with cached metadata updates to the new snapshot and finds tiny 1.2"

# a tampered manifest is rejected by tuf-js
m=$(manifest_file tiny 1.1)
cp "$m" "$T/orig"
python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(b)' "$m"
tufjs "$T/md3" tiny/1.1.json
[ "$RC" -eq 1 ] || { _show_run; fail "tuf-js accepted a tampered manifest"; }
cp "$T/orig" "$m"
pass "tuf-js rejects a tampered manifest"

# a tampered delegated role is rejected by tuf-js
role=$(latest_meta alice)
cp "$REPO/metadata/$role" "$T/orig"
sed -i 's/"hello\/2.10-3.json"/"hello\/2.10-4.json"/' "$REPO/metadata/$role"
cmp -s "$T/orig" "$REPO/metadata/$role" && fail "could not tamper with $role"
tufjs "$T/md4" hello/2.10-4.json
[ "$RC" -eq 1 ] || { _show_run; fail "tuf-js accepted a tampered $role"; }
cp "$T/orig" "$REPO/metadata/$role"
pass "tuf-js rejects a tampered delegated role"

# and stork verify over HTTP agrees with tuf-js
expect_rc 0 "stork verify over http" "$STORK" verify --root "$ROOT" "$NGINX_URL/"
grep -q '^verified ' "$T/out" || fail "stork verify over http: $OUT"

# --- rotations: the client in $T/md1 still trusts root 1 and must chain to the new roots itself
expect_rc 0 "rotate the root key" "$STORK" repo rotate "$REPO" --keys "$KEYS" root
expect_rc 0 "rotate the timestamp, snapshot and targets keys" \
	"$STORK" repo rotate "$REPO" --keys "$KEYS" timestamp snapshot targets
keygen "$T/pub/alice2.key"
expect_rc 0 "rotate alice's key" "$STORK" repo rotate "$REPO" --keys "$KEYS" --key "$T/pub/alice2.key" alice
expect_rc 2 "alice's old key can no longer publish" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" tiny 1.3 "$T/src"
printf '#!/bin/sh\necho tiny 1.3\n' >"$T/src/bin/tiny"
expect_rc 0 "alice's new key publishes tiny 1.3" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/alice2.key" tiny 1.3 "$T/src"
verify_ok "stork verify from root 1 after the rotations"
[ -f "$REPO/metadata/3.root.json" ] && [ ! -e "$REPO/metadata/4.root.json" ] ||
	fail "the two rotations did not make exactly roots 2 and 3: $(ls "$REPO/metadata")"
before=$(wc -l <"$NGINX_DIR/access.log")

# root_version FILE: the version of a root file tuf-js keeps
root_version() {
	node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).signed.version)' "$1"
}
[ "$(root_version "$T/md1/root.json")" = 1 ] || fail "tuf-js's cached root is not version 1 before the rotations"
tufjs "$T/md1" tiny/1.3.json tiny/1.1.json hello/2.10-3.json tools/3.json
[ "$RC" -eq 0 ] || { _show_run; fail "tuf-js with cached metadata could not follow the root and publisher rotations"; }
for pv in tiny:1.3 tiny:1.1 hello:2.10-3 tools:3; do
	cmp "$T/dl/${pv%%:*}__${pv#*:}.json" "$(manifest_file "${pv%%:*}" "${pv#*:}")" ||
		fail "${pv%%:*} ${pv#*:}: tuf-js downloaded another manifest after the rotations"
done
[ "$(root_version "$T/md1/root.json")" = 3 ] ||
	fail "tuf-js trusts root $(root_version "$T/md1/root.json") after the refresh, want 3"
tail -n +"$((before + 1))" "$NGINX_DIR/access.log" >"$T/access.new"
for re in 'GET /metadata/2\.root\.json HTTP/[0-9.]+" 200' 'GET /metadata/3\.root\.json HTTP/[0-9.]+" 200' \
	'GET /metadata/4\.root\.json HTTP/[0-9.]+" 404' "GET /metadata/$(latest_meta alice | sed 's/\./\\./g') HTTP/[0-9.]+\" 200"; do
	grep -qE -- "$re" "$T/access.new" || { cat "$T/access.new" >&2; fail "no request matching '$re' after the rotations"; }
done
pass "tuf-js (cached root 1) chains roots 2 and 3, reads alice's role signed by her new key, downloads new and old targets"

# a client that starts from the pinned root 1 afresh gets there too
tufjs "$T/md5" tiny/1.3.json tools/3.json
[ "$RC" -eq 0 ] || { _show_run; fail "a fresh tuf-js client could not follow the rotations"; }
cmp "$T/dl/tiny__1.3.json" "$(manifest_file tiny 1.3)" || fail "tiny 1.3 from a fresh tuf-js differs"
pass "a fresh tuf-js client from root 1 downloads tiny 1.3 and tools 3"

# alice's role signed again with her old key is refused by tuf-js (the delegation lists only the
# new key); the role file is restored afterwards
role=$(latest_meta alice)
cp "$REPO/metadata/$role" "$T/orig"
node -e 'const fs = require("fs"), crypto = require("crypto");
const [f, keyfile] = process.argv.slice(1);
const { canonicalize } = require(process.argv[3] + "/node_modules/@tufjs/canonical-json");
const m = JSON.parse(fs.readFileSync(f));
const priv = crypto.createPrivateKey(fs.readFileSync(keyfile));
const spki = crypto.createPublicKey(priv).export({ format: "der", type: "spki" });
const key = { keytype: "ed25519", keyval: { public: spki.subarray(spki.length - 32).toString("hex") }, scheme: "ed25519" };
const keyid = crypto.createHash("sha256").update(canonicalize(key)).digest("hex");
m.signatures = [{ keyid, sig: crypto.sign(null, Buffer.from(canonicalize(m.signed)), priv).toString("hex") }];
fs.writeFileSync(f, JSON.stringify(m));' "$REPO/metadata/$role" "$PUBKEY" "$NODE_DIR"
cmp -s "$T/orig" "$REPO/metadata/$role" && fail "could not re-sign $role with the old key"
tufjs "$T/md6" tiny/1.3.json
[ "$RC" -eq 1 ] || { _show_run; fail "tuf-js accepted alice's role signed by her old key"; }
cp "$T/orig" "$REPO/metadata/$role"
pass "tuf-js refuses alice's role signed by her rotated-out key"

done_ok
