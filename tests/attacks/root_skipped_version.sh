#!/usr/bin/env bash
# A skipped root version (TUF 5.3.3/5.3.5: root versions are followed one by one, each exactly
# N+1). The attacker's root replaces the timestamp key with its own (signed by the old and the
# new root keys, so only the version is wrong) and serves a timestamp signed by that key:
#   1. 3.root.json with no 2.root.json: the client never looks at 3 (it asks for 2, absent),
#      stays on root 1 and refuses the attacker's timestamp;
#   2. 2.root.json holding version 3: refused, naming the file and both versions;
#   3. 2.root.json genuine, then 4.root.json (no 3): the client follows to 2, never to 4.
# Each time: root 1 (then 2) stays trusted, the attacker's timestamp is never trusted, nothing
# wrong is served.
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
make_repo
synth_tree "$T/v1" 1
publish pkg 1.0 "$T/v1"
WWW=$T/www
STORE=$T/store
serve_copy "$REPO" "$WWW"
start_nginx "$WWW"
extract_same "genuine: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x1"
save_trusted "$STORE"

# 1. 3.root.json without 2.root.json
hostile_root2 "$WWW" "$KEYS/root.key" "$T/root-new.key"
forge edit "$WWW/metadata/2.root.json" -o "$WWW/metadata/3.root.json" --version 3 \
	--sign "$KEYS/root.key" --sign "$T/root-new.key"
rm "$WWW/metadata/2.root.json"
cp "$WWW/metadata/3.root.json" "$WWW/metadata/root.json"
refused "3.root.json without 2.root.json: the attacker's timestamp is refused" --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the timestamp and its signatures" "metadata/timestamp.json" \
	"0 of 1 required signatures from role timestamp"
! grep -q '3\.root\.json' "$NGINX_DIR/access.log" || fail "the client asked for 3.root.json"
pass "the client never asked for 3.root.json"
assert_unchanged "3.root.json without 2.root.json: trusted state unchanged (root 1)" "$STORE"

# 2. 2.root.json that holds version 3
serve_copy "$REPO" "$WWW"
hostile_root2 "$WWW" "$KEYS/root.key" "$T/root-new.key"
forge edit "$WWW/metadata/2.root.json" --version 3 --sign "$KEYS/root.key" --sign "$T/root-new.key"
refused "2.root.json holding version 3: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x3"
echo "# $ERR"
err_has "the error names the root file and both versions" "metadata/2.root.json" "version 3" "2"
assert_unchanged "2.root.json holding version 3: trusted state unchanged (root 1)" "$STORE"

# 3. a genuine 2.root.json (the repository rotates the root key), then the attacker's
# 4.root.json with no 3
serve_copy "$REPO" "$WWW"
forge keygen "$T/root2.key"
forge role "$WWW" root --remove-key "root=$KEYS/root.key" --add-key "root=$T/root2.key" \
	--sign "$KEYS/root.key" --sign "$T/root2.key"
forge edit "$WWW/metadata/2.root.json" -o "$WWW/metadata/4.root.json" --version 4 \
	--remove-key "timestamp=$KEYS/timestamp.key" --add-key "timestamp=$T/mallory-ts.key" \
	--sign "$T/root2.key"
forge edit "$WWW/metadata/timestamp.json" --version +1 --sign "$T/mallory-ts.key"
refused "2.root.json genuine, 4.root.json without 3: the attacker's timestamp is refused" \
	--store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x4"
err_has "the error names the timestamp and its signatures" "metadata/timestamp.json" \
	"0 of 1 required signatures from role timestamp"
[ "$(trusted_version "$STORE" root)" = 2 ] || fail "the client does not trust the genuine root 2"
pass "the client trusts the genuine root 2, not 4"
! grep -q '4\.root\.json' "$NGINX_DIR/access.log" || fail "the client asked for 4.root.json"
pass "the client never asked for 4.root.json"
for r in timestamp snapshot targets; do
	[ "$(trusted_version "$STORE" $r)" = "$(printf '%s\n' "$TRUSTED_BEFORE" | sed -nE "s/^  trusted $r +version ([0-9]+),.*/\1/p")" ] ||
		fail "the trusted $r changed"
done
pass "trusted timestamp, snapshot and targets unchanged"
done_ok
