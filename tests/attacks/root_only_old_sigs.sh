#!/usr/bin/env bash
# Root rotation signed only by the old root key (TUF 5.3.4: a new root must be signed by a
# threshold of the trusted root's keys AND of its own): the mirror serves 2.root.json that
# replaces the root key and the timestamp key with new ones, signed only by the old root key
# (say an attacker who stole it, or a botched rotation), and a timestamp signed by the new
# timestamp key. The client refuses the root,
# naming the file and the signature count, stays on root 1, never takes the attacker's
# timestamp and serves nothing wrong. Control: the same root also signed by the new root key is
# followed by a fresh client (so the refusal is about the missing signature).
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

hostile_root2 "$WWW" "$KEYS/root.key"
refused "root 2 signed only by the old root key: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
echo "# $ERR"
err_has "the error names the root file and the signature count" \
	"metadata/2.root.json: 0 of 1 required signatures from role root"
assert_unchanged "root 2 signed only by the old key: trusted state unchanged (root 1)" "$STORE"
[ "$(trusted_version "$STORE" root)" = 1 ] || fail "the client left root 1"
# a client that restarts refuses it again (nothing of it was kept)
refused "again, a new process: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x3"
assert_unchanged "again: trusted state unchanged" "$STORE"

# control: signed by the old and the new root key, a fresh client follows it
serve_copy "$REPO" "$WWW"
hostile_root2 "$WWW" "$KEYS/root.key" "$T/root-new.key"
extract_same "control: root 2 signed by both keys is followed" "$T/v1" --store "$T/store2" \
	"$NGINX_URL" pkg 1.0 "$T/x4"
[ "$(trusted_version "$T/store2" root)" = 2 ] || fail "control: the fresh client does not trust root 2"
pass "control: the fresh client trusts root 2"
done_ok
