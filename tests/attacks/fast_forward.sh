#!/usr/bin/env bash
# Fast-forward attack, then recovery (TUF "fast-forward attack", 5.3.11): an attacker who holds
# the timestamp key serves a timestamp at version 2^31, validly signed. The client trusts it
# (nothing distinguishes it from a genuine one) and from then on refuses the repository's real
# timestamps as rollbacks: nothing of them is served, and nothing wrong either. The repository
# then rotates the timestamp key (`stork repo rotate REPO --keys KEYDIR timestamp`: a new root
# version signed by the root key lists the new key); the client follows the root rotation,
# forgets the fast-forwarded timestamp and trusts the repository's normal versions again.
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
make_repo
synth_tree "$T/v1" 1
synth_tree "$T/v2" 2
publish pkg 1.0 "$T/v1"
WWW=$T/www
STORE=$T/store
serve_copy "$REPO" "$WWW"
start_nginx "$WWW"
extract_same "genuine: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x1"
ts_genuine=$(trusted_version "$STORE" timestamp)

# --- the attack: timestamp version 2^31 signed with the (stolen) real timestamp key
FF=2147483648
forge edit "$WWW/metadata/timestamp.json" --set "version=$FF" --sign "$KEYS/timestamp.key"
extract_same "fast-forwarded timestamp (validly signed): pkg 1.0 still genuine" "$T/v1" \
	--store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
[ "$(trusted_version "$STORE" timestamp)" = "$FF" ] ||
	fail "the client does not trust the validly signed timestamp $FF: $(trusted_version "$STORE" timestamp)"
pass "the client trusts the fast-forwarded timestamp $FF (validly signed)"
save_trusted "$STORE"

# --- the repository goes on; the client refuses its timestamps as rollbacks
publish pkg 2.0 "$T/v2"
serve_copy "$REPO" "$WWW"
ts_real=$(meta_version "$REPO/metadata/timestamp.json")
refused "the repository's timestamp $ts_real after the fast-forward: pkg 2.0 refused" \
	--store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x3"
err_has "the error names the timestamp and both versions" "metadata/timestamp.json" \
	"version $ts_real" "$FF"
assert_unchanged "before the rotation: trusted state unchanged" "$STORE"
genuine_or_refused "before the rotation: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x4"

# --- recovery: the repository rotates the timestamp key
if "$STORK" repo --help 2>&1 | matches "repo rotate"; then
	expect_rc 0 "stork repo rotate timestamp" "$STORK" repo rotate "$REPO" --keys "$KEYS" timestamp
else
	[ "${STORK_ATTACKS_FORGE_ROTATE:-0}" = 1 ] ||
		fail "stork repo rotate is missing (STORK_ATTACKS_FORGE_ROTATE=1 rotates with forge.py)"
	# the same rotation written by forge.py: root 2 lists a new timestamp key, signed by the
	# root key (old and new root keys are the same), then a new timestamp with the new key
	forge keygen "$T/ts-new.key"
	forge role "$REPO" root --remove-key "timestamp=$KEYS/timestamp.key" \
		--add-key "timestamp=$T/ts-new.key" --sign "$KEYS/root.key"
	cp "$T/ts-new.key" "$KEYS/timestamp.key"
	cp "$T/ts-new.key.pub" "$KEYS/timestamp.key.pub"
	forge edit "$REPO/metadata/timestamp.json" --version +1 --sign "$KEYS/timestamp.key"
	pass "the timestamp key rotated (forge.py)"
fi
serve_copy "$REPO" "$WWW"
root_v=$(latest_meta root)
root_v=${root_v%%.*}
[ "$root_v" -ge 2 ] || fail "the rotation wrote no new root version"
extract_same "after the rotation: pkg 2.0" "$T/v2" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x5"
ts_now=$(trusted_version "$STORE" timestamp)
[ "$ts_now" = "$(meta_version "$REPO/metadata/timestamp.json")" ] && [ "$ts_now" -lt "$FF" ] ||
	fail "after the rotation the client trusts timestamp $ts_now, want the repository's $(meta_version "$REPO/metadata/timestamp.json")"
pass "after the rotation the client trusts the repository's timestamp $ts_now again (was $FF)"
[ "$(trusted_version "$STORE" root)" = "$root_v" ] || fail "the client does not trust root $root_v"
pass "the client trusts root $root_v"

# and it keeps following the repository
synth_tree "$T/v3" 3
publish pkg 3.0 "$T/v3"
serve_copy "$REPO" "$WWW"
extract_same "after the rotation, a new version: pkg 3.0" "$T/v3" --store "$STORE" "$NGINX_URL" pkg 3.0 "$T/x6"
[ "$(trusted_version "$STORE" timestamp)" -gt "$ts_now" ] || fail "the trusted timestamp did not move on"
pass "the trusted timestamp moves on ($ts_genuine, $FF, $ts_now, $(trusted_version "$STORE" timestamp))"
done_ok
