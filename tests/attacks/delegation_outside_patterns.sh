#!/usr/bin/env bash
# A delegation that signs outside its patterns (TUF: a delegated role is trusted only for the
# paths delegated to it): alice is delegated web-*. With her real key she signs a new version
# of her role that adds the target evil/1.0.json (a real manifest, whose objects the mirror
# serves); the snapshot and timestamp are re-signed with the online keys. The client never
# finds or serves evil 1.0, and the error names the pattern; alice's other packages stay
# genuine. A live mount refreshed by SIGHUP onto the hostile state never shows evil either.
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
need_fuse
make_repo 'web-*'
synth_tree "$T/good" 1
synth_tree "$T/evil" 666
publish web-shop 1.0 "$T/good"
publish web-decoy 1.0 "$T/evil"
WWW=$T/www
STORE=$T/store
serve_copy "$REPO" "$WWW"
start_nginx "$WWW"
extract_same "genuine: web-shop 1.0" "$T/good" --store "$STORE" "$NGINX_URL" web-shop 1.0 "$T/x1"
MNT=$T/mnt
STORE2=$T/store2
mount_storkfs "$MNT" "store=$STORE2,timeout=30,refresh=3600" "$NGINX_URL"
[ "$(ls "$MNT" | tr '\n' ' ')" = "web-decoy web-shop " ] || fail "the mount shows '$(ls "$MNT" | tr '\n' ' ')'"
save_trusted "$STORE"

# the hostile state: alice signs evil/1.0.json
forge manifest "$WWW" "$(REPO=$WWW manifest_file web-decoy 1.0)" evil 1.0
forge role "$WWW" alice --add-target "evil/1.0.json=$(REPO=$WWW manifest_file evil 1.0)" --sign "$PUBKEY"
av=$(meta_version "$WWW/$OUT")
forge commit "$WWW" --keys "$KEYS" --meta "alice=$av"
# control: the forged role is well made (only the pattern is wrong): stork verify names
# exactly that problem
run "$STORK" verify --root "$ROOT" "$WWW"
[ "$RC" -eq 1 ] || { _show_run; fail "stork verify of the hostile copy: exit $RC, want 1"; }
err_has "stork verify reports the target outside alice's pattern" "metadata/$av.alice.json" \
	"evil/1.0.json" "web-*"
err_has "stork verify finds no other problem" ": 1 problems found"

refused "evil 1.0 signed by alice outside web-*: refused" --store "$STORE" "$NGINX_URL" evil 1.0 "$T/x2"
err_has "the error names the package" "evil"
extract_same "alice's web-shop 1.0 stays genuine" "$T/good" --store "$STORE" "$NGINX_URL" web-shop 1.0 "$T/x3"
# the snapshot, timestamp and alice's role are validly signed: the client may move to them,
# but never trusts a target outside the delegation
for r in root targets; do
	[ "$(trusted_version "$STORE" $r)" = "$(printf '%s\n' "$TRUSTED_BEFORE" | sed -nE "s/^  trusted $r +version ([0-9]+),.*/\1/p")" ] ||
		fail "the trusted $r changed"
done
pass "trusted root and targets unchanged"
run "$STORK" ls --root "$ROOT" "$NGINX_URL"
[ "$RC" -eq 0 ] || { _show_run; fail "stork ls of the hostile mirror failed"; }
! grep -q '^evil' "$T/out" || fail "stork ls lists evil"
err_has "stork ls skips evil with a warning naming alice's file, the target and her pattern" \
	"metadata/$av.alice.json" "evil/1.0.json" "web-*/*"

# the live mount, refreshed onto the hostile state
kill -HUP "$SFS_PID"
for _ in $(seq 100); do
	[ "$(trusted_version "$STORE2" timestamp)" = "$(meta_version "$WWW/metadata/timestamp.json")" ] && break
	sleep 0.2
done
[ "$(trusted_version "$STORE2" timestamp)" = "$(meta_version "$WWW/metadata/timestamp.json")" ] ||
	fail "the mount did not refresh onto the hostile state within 20 s"
sleep 0.5
[ ! -e "$MNT/evil" ] || fail "the mount shows evil"
[ "$(ls "$MNT" | tr '\n' ' ')" = "web-decoy web-shop " ] || fail "the mount shows '$(ls "$MNT" | tr '\n' ' ')'"
pass "after SIGHUP the mount shows web-decoy web-shop, never evil"
check "the mount's web-shop 1.0 is genuine" compare_content "$T/good" "$MNT/web-shop/1.0"
grep -F "metadata/$av.alice.json" "$SFS_LOG" | matches -F 'web-*/*' || {
	tail -20 "$SFS_LOG" >&2
	fail "the mount's log does not report alice's target outside web-*/*"
}
pass "the mount's log names alice's file and her pattern"
unmount_storkfs "$MNT"
done_ok
