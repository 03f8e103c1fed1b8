#!/usr/bin/env bash
# Rollback attack on a delegated role: the client trusts alice's role at version N (it lists
# pkg 1.0 and 2.0). The attacker (holding the online snapshot and timestamp keys) serves a new
# snapshot listing alice.json at N-1 (validly signed by alice, without pkg 2.0), then one
# listing a new version N+1 whose file holds the old role's bytes. The client refuses both,
# naming the file and the versions; its trusted state is unchanged; pkg 2.0 does not vanish
# and nothing of the older state is served. Also a snapshot dropping alice.json, and a snapshot
# listing the older alice after a snapshot key rotation (the trusted snapshot forgotten, the
# cached role still refuses it).
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
make_repo
synth_tree "$T/v1" 1
synth_tree "$T/v2" 2
publish pkg 1.0 "$T/v1"
publish pkg 2.0 "$T/v2"
r_new=$(latest_meta alice)
r_new=${r_new%%.*}
r_old=$((r_new - 1))
save_state new
WWW=$T/www
STORE=$T/store
serve_state new "$WWW"
start_nginx "$WWW"

extract_same "genuine: pkg 2.0" "$T/v2" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x1"
[ "$(trusted_version "$STORE" alice)" = "$r_new" ] || fail "the client does not trust alice $r_new"
save_trusted "$STORE"

# 1. a new snapshot that lists alice's older version
forge commit "$WWW" --keys "$KEYS" --meta "alice=$r_old"
refused "snapshot listing alice $r_old: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the snapshot, alice.json and the versions" "snapshot.json" "alice.json" \
	"$r_old" "$r_new"
assert_unchanged "snapshot listing alice $r_old: trusted state unchanged" "$STORE"

# 2. a new snapshot that drops alice.json (TUF 5.5.5: no listed role may disappear)
serve_state new "$WWW"
forge commit "$WWW" --keys "$KEYS" --snapshot-edit "--del meta/alice.json"
refused "snapshot without alice.json: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2b"
err_has "the error names the snapshot and alice.json" "snapshot.json" "alice.json"
assert_unchanged "snapshot without alice.json: trusted state unchanged" "$STORE"

# 3. alice's old bytes served as version N+1
serve_state new "$WWW"
r_next=$((r_new + 1))
cp "$WWW/metadata/$r_old.alice.json" "$WWW/metadata/$r_next.alice.json"
forge commit "$WWW" --keys "$KEYS" --meta "alice=$r_next"
refused "old alice served as version $r_next: pkg 1.0 refused" --store "$STORE" "$NGINX_URL" \
	pkg 1.0 "$T/x3"
err_has "the error names alice's file and both versions" "metadata/$r_next.alice.json" \
	"version $r_old" "$r_next"
refused "old alice served as version $r_next: pkg 2.0 refused" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x4"
# the new timestamp and snapshot are validly signed (the attacker holds those online keys) and
# list alice at a higher version, so the client may move to them; what it must keep is alice's
# role: never the older one
alice_now=$(trusted_state "$STORE" | grep ' trusted role alice ')
[ "$alice_now" = "$(printf '%s\n' "$TRUSTED_BEFORE" | grep ' trusted role alice ')" ] ||
	fail "old alice served as version $r_next: the trusted alice changed: $alice_now"
pass "old alice served as version $r_next: the trusted role alice is unchanged ($alice_now)"
for r in root targets; do
	[ "$(trusted_version "$STORE" $r)" = "$(printf '%s\n' "$TRUSTED_BEFORE" | sed -nE "s/^  trusted $r +version ([0-9]+),.*/\\1/p")" ] ||
		fail "old alice served as version $r_next: the trusted $r changed"
done
pass "old alice served as version $r_next: trusted root and targets unchanged"

# the attacker goes away; the repository moves on past the versions the attacker signed
publish pkg 3.0 "$T/v1"
publish pkg 4.0 "$T/v2"
serve_copy "$REPO" "$WWW"
extract_same "genuine again: pkg 2.0" "$T/v2" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x5"
[ "$(trusted_version "$STORE" alice)" -gt "$r_new" ] || fail "genuine again: the client does not trust alice's new version"
pass "genuine again: the client trusts alice $(trusted_version "$STORE" alice)"

# 4. after a snapshot key rotation the client forgets its trusted snapshot (TUF 5.3.11), so the
# snapshot's own rollback check has nothing to compare with: the role versions the store keeps
# (alice's cached role) still refuse a snapshot listing an older alice
r_now=$(trusted_version "$STORE" alice)
expect_rc 0 "the repository rotates its snapshot key" "$STORK" repo rotate "$REPO" --keys "$KEYS" snapshot
serve_copy "$REPO" "$WWW"
forge commit "$WWW" --keys "$KEYS" --meta "alice=$r_old"
refused "after the rotation, a snapshot listing alice $r_old: pkg 2.0 refused" --store "$STORE" \
	"$NGINX_URL" pkg 2.0 "$T/x6"
err_has "the error names the snapshot, alice.json and both versions" "snapshot.json" "alice.json" \
	"version $r_old" "$r_now"
[ "$(trusted_version "$STORE" alice)" = "$r_now" ] || fail "the trusted alice changed: $(trusted_version "$STORE" alice)"
pass "after the rotation: the trusted alice stays at $r_now"
done_ok
