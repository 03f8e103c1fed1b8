#!/usr/bin/env bash
# Rollback attack on the timestamp (TUF "rollback attack"): the client trusts timestamp version
# N; the mirror then serves an older timestamp.json, validly signed by the real timestamp key
# (kept from an earlier state of the repository, with its old snapshot, targets and roles).
# The client refuses it as a rollback naming the file and both versions, keeps its trusted
# state, and serves nothing of the older state; serving the genuine state again works.
. "$(dirname "$0")/lib.sh"

need python3 nginx
make_repo
synth_tree "$T/v1" 1
synth_tree "$T/v2" 2
publish pkg 1.0 "$T/v1"
save_state old
publish pkg 2.0 "$T/v2"
save_state new
WWW=$T/www
STORE=$T/store
serve_state new "$WWW"
start_nginx "$WWW"

extract_same "genuine: pkg 2.0" "$T/v2" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x1"
old_ts=$(meta_version "$T/states/old/metadata/timestamp.json")
new_ts=$(trusted_version "$STORE" timestamp)
[ "$old_ts" -lt "$new_ts" ] || fail "test setup: old timestamp $old_ts is not older than the trusted $new_ts"
save_trusted "$STORE"

# the hostile mirror: the whole older repository (its timestamp.json is validly signed)
serve_state old "$WWW"
refused "rolled-back timestamp: pkg 1.0 is refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the file, both versions and the rollback" "metadata/timestamp.json" \
	"version $old_ts" "trusted version $new_ts"
assert_unchanged "rolled-back timestamp: trusted state unchanged" "$STORE"
refused "rolled-back timestamp: pkg 2.0 is refused too" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x3"
assert_unchanged "rolled-back timestamp: trusted state still unchanged" "$STORE"

# the same old timestamp.json alone over the new repository
serve_state new "$WWW"
cp "$T/states/old/metadata/timestamp.json" "$WWW/metadata/timestamp.json"
refused "old timestamp.json over the new files: refused" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x4"
err_has "the error names the file and the rollback" "metadata/timestamp.json" "version $old_ts"
assert_unchanged "old timestamp.json over the new files: trusted state unchanged" "$STORE"

# a timestamp of the trusted version with other content (the attacker holds the timestamp key):
# equal versions keep the trusted timestamp (TUF 5.4.3), so it changes nothing
serve_state new "$WWW"
forge edit "$WWW/metadata/timestamp.json" --snapshot "$WWW/metadata/$(snapshot_version "$T/states/old").snapshot.json" \
	--expires +2d --sign "$KEYS/timestamp.key"
genuine_or_refused "same timestamp version, other content: pkg 2.0" "$T/v2" --store "$STORE" \
	"$NGINX_URL" pkg 2.0 "$T/x4b"
assert_unchanged "same timestamp version, other content: trusted state unchanged" "$STORE"

# the genuine mirror is back: the client goes on from where it was
serve_state new "$WWW"
extract_same "genuine again: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x5"
assert_unchanged "genuine again: trusted state as before the attack" "$STORE"
done_ok
