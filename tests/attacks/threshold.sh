#!/usr/bin/env bash
# Key compromise below the threshold (TUF "key compromise"): root version 2 (signed by the real
# root key) raises the top-level targets threshold to 2 of {targets.key, k2}, and the
# repository signs its targets with both. The attacker steals k2 (and the online snapshot and
# timestamp keys) and serves targets that put a delegation of its own first, terminating, for
# a role "mallory" that signs an evil pkg 1.0, signed by k2 alone; then by k2 twice; then by k2
# and a bad signature claiming the other key's id. The client refuses each naming the
# signature count, serves no evil byte and keeps its trusted state. Control: the same forgery
# signed by both keys is accepted by a fresh client (so the refusals are about the threshold).
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
make_repo
synth_tree "$T/good" 1
synth_tree "$T/evil" 666
publish pkg 1.0 "$T/good"
publish decoy 1.0 "$T/evil"

# root 2: targets needs 2 of {targets.key, k2}; the repository signs with both
forge keygen "$T/k2.key"
forge role "$REPO" root --add-key "targets=$T/k2.key" --threshold targets=2 --sign "$KEYS/root.key"
forge role "$REPO" targets --sign "$KEYS/targets.key" --sign "$T/k2.key"
tv=$(meta_version "$REPO/$OUT")
forge commit "$REPO" --keys "$KEYS" --meta "targets=$tv"
verify_ok "the repository with a 2-of-2 targets threshold verifies"

WWW=$T/www
STORE=$T/store
serve_copy "$REPO" "$WWW"
start_nginx "$WWW"
extract_same "genuine: pkg 1.0" "$T/good" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x1"
[ "$(trusted_version "$STORE" root)" = 2 ] || fail "the client does not trust root 2"
[ "$(trusted_version "$STORE" targets)" = "$tv" ] || fail "the client does not trust targets $tv"
save_trusted "$STORE"

# hostile WWW: mallory's role signs pkg 1.0 with the evil tree's manifest; targets delegates
# */* to mallory first, terminating; signed by SIGNERS...
hostile() {
	serve_copy "$REPO" "$WWW"
	forge keygen "$T/mallory.key"
	forge manifest "$WWW" "$(REPO=$WWW manifest_file decoy 1.0)" pkg 1.0
	evil_manifest=$OUT
	forge edit "$WWW/metadata/$(REPO=$WWW latest_meta alice)" -o "$WWW/metadata/1.mallory.json" \
		--set version=1 --set 'targets={}' --add-target "pkg/1.0.json=$evil_manifest" \
		--sign "$T/mallory.key"
	forge role "$WWW" targets --add-delegation "mallory keys=$T/mallory.key paths=*/* terminating at=0" "$@"
	forge commit "$WWW" --keys "$KEYS" --meta "targets=$(meta_version "$WWW/$OUT")" --meta mallory=1
}

hostile --sign "$T/k2.key"
refused "targets signed by k2 alone: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the targets file and the signature count" "targets.json" \
	"1 of 2 required signatures"
assert_unchanged "targets signed by k2 alone: trusted state unchanged" "$STORE"

hostile --sign "$T/k2.key" --sign "$T/k2.key"
refused "targets signed twice by k2: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x3"
err_has "the error names the signature count" "targets.json" "1 of 2 required signatures"
assert_unchanged "targets signed twice by k2: trusted state unchanged" "$STORE"

hostile --sign "$T/k2.key" --sign-as "$T/mallory.key=$("$PY" "$FORGE_PY" keyid "$KEYS/targets.key")"
refused "targets signed by k2 and a forged signature under targets.key's id: refused" \
	--store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x4"
err_has "the error names the signature count" "targets.json" "1 of 2 required signatures"
assert_unchanged "forged second signature: trusted state unchanged" "$STORE"
genuine_or_refused "under attack: pkg 1.0 is never the evil tree" "$T/good" --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x5"

# control: signed by both keys, a fresh client would take mallory's pkg 1.0
hostile --sign "$T/k2.key" --sign "$KEYS/targets.key"
extract_same "control: the forgery signed by both keys is accepted" "$T/evil" --store "$T/store2" \
	"$NGINX_URL" pkg 1.0 "$T/x6"
done_ok
