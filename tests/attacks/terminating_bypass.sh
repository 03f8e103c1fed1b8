#!/usr/bin/env bash
# A terminating delegation bypassed (TUF: a matching terminating delegation ends the search):
# the top-level targets delegates web-* to alice, terminating, then * to bob. Bob's key is
# valid, and bob signs web-shop 9.9 (evil) and an evil web-shop 1.0. The client must never find
# them: first while alice has published nothing (her role is not in the snapshot), then while
# her role signs web-shop 1.0 but not 9.9. Bob's own packages outside web-* stay found (so his
# role is read), and alice's web-shop 1.0 is always hers. A live mount refreshed by SIGHUP shows
# the same.
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
need_fuse
make_repo 'web-*'
synth_tree "$T/good" 1
synth_tree "$T/evil" 666
synth_tree "$T/bob" 2
keygen "$T/pub/bob.key"
BOB=$T/pub/bob.key
expect_rc 0 "delegate * to bob, after alice" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$BOB.pub" '*'
forge role "$REPO" targets --set delegations/roles/0/terminating=true --sign "$KEYS/targets.key"
forge commit "$REPO" --keys "$KEYS" --meta "targets=$(meta_version "$REPO/$OUT")"
"$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))["signed"]["delegations"]["roles"]
assert [(x["name"], x["paths"], x["terminating"]) for x in r] == [("alice", ["web-*/*"], True), ("bob", ["*/*"], False)], r' \
	"$REPO/metadata/$(latest_meta targets)" || fail "test setup: the delegations are not alice web-* terminating, then bob *"

# bob_signs NAME VERSION TREE: bob's role signs NAME VERSION with TREE's content (through the
# writer when it lets him, else forged with his real key)
bob_signs() {
	run "$STORK" publish "$REPO" --keys "$KEYS" --key "$BOB" "$1" "$2" "$3"
	if [ "$RC" -ne 0 ]; then
		echo "# the writer refuses bob $1 $2 ($ERR); forging it with bob's key"
		run "$STORK" publish "$REPO" --keys "$KEYS" --key "$BOB" "bob-carrier-$2" "$2" "$3"
		[ "$RC" -eq 0 ] || { _show_run; fail "bob publishes bob-carrier-$2"; }
		forge manifest "$REPO" "$(manifest_file "bob-carrier-$2" "$2")" "$1" "$2"
		forge role "$REPO" bob --add-target "$1/$2.json=$OUT" --sign "$BOB"
		forge commit "$REPO" --keys "$KEYS" --meta "bob=$(meta_version "$REPO/$OUT")"
	fi
}

expect_rc 0 "bob publishes bob-tool 1.0" "$STORK" publish "$REPO" --keys "$KEYS" --key "$BOB" bob-tool 1.0 "$T/bob"
bob_signs web-shop 9.9 "$T/evil"
WWW=$T/www
STORE=$T/store
serve_copy "$REPO" "$WWW"
start_nginx "$WWW"

# --- alice has published nothing yet
extract_same "bob's bob-tool 1.0 is found (his role is read)" "$T/bob" --store "$STORE" "$NGINX_URL" bob-tool 1.0 "$T/x1"
refused "alice unpublished: bob's web-shop 9.9 is not found" --store "$STORE" "$NGINX_URL" web-shop 9.9 "$T/x2"
err_has "the refusal names the package" "web-shop" "9.9"

# --- alice signs web-shop 1.0; bob signs web-shop 1.0 too (evil)
MNT=$T/mnt
mount_storkfs "$MNT" "store=$T/store2,timeout=30,refresh=3600" "$NGINX_URL"
publish web-shop 1.0 "$T/good"
bob_signs web-shop 1.0 "$T/evil"
serve_copy "$REPO" "$WWW"
refused "alice signs web-shop 1.0 only: bob's web-shop 9.9 is not found" --store "$STORE" "$NGINX_URL" web-shop 9.9 "$T/x3"
extract_same "web-shop 1.0 is alice's, not bob's" "$T/good" --store "$STORE" "$NGINX_URL" web-shop 1.0 "$T/x4"
extract_same "bob-tool 1.0 is still bob's" "$T/bob" --store "$STORE" "$NGINX_URL" bob-tool 1.0 "$T/x5"
run "$STORK" ls --root "$ROOT" "$NGINX_URL" web-shop
[ "$RC" -eq 0 ] || { _show_run; fail "stork ls web-shop"; }
[ "$(sed 1d "$T/out" | cut -f1,2)" = "1.0	alice" ] || { _show_run; fail "stork ls web-shop: want only 1.0 signed by alice"; }
pass "stork ls web-shop: only 1.0, signed by alice"

kill -HUP "$SFS_PID"
want=$(meta_version "$WWW/metadata/timestamp.json")
for _ in $(seq 100); do
	[ "$(trusted_version "$T/store2" timestamp)" = "$want" ] && break
	sleep 0.2
done
[ "$(trusted_version "$T/store2" timestamp)" = "$want" ] || fail "the mount did not refresh within 20 s"
sleep 0.5
[ "$(ls "$MNT/web-shop" | tr '\n' ' ')" = "1.0 latest " ] || fail "the mount's web-shop shows '$(ls "$MNT/web-shop" | tr '\n' ' ')'"
pass "after SIGHUP the mount's web-shop shows 1.0 only"
check "the mount's web-shop 1.0 is alice's" compare_content "$T/good" "$MNT/web-shop/1.0"
unmount_storkfs "$MNT"

# bob's role really signs both (the writer let him; the client never reads them for web-*)
"$PY" -c 'import json, sys
t = json.load(open(sys.argv[1]))["signed"]["targets"]
assert "web-shop/9.9.json" in t and "web-shop/1.0.json" in t, sorted(t)' \
	"$WWW/metadata/$(REPO=$WWW latest_meta bob)" || fail "bob's role does not sign web-shop 9.9 and 1.0"
pass "bob's served role signs web-shop 9.9 and 1.0 (validly)"
# control: without "terminating", a fresh client does find bob's web-shop 9.9
forge role "$WWW" targets --set delegations/roles/0/terminating=false --sign "$KEYS/targets.key"
forge commit "$WWW" --keys "$KEYS" --meta "targets=$(meta_version "$WWW/$OUT")"
extract_same "control: not terminating, bob's web-shop 9.9 is found" "$T/evil" --store "$T/store3" \
	"$NGINX_URL" web-shop 9.9 "$T/x6"
done_ok
