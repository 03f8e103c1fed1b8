#!/usr/bin/env bash
# Rollback attack on the snapshot: the client trusts snapshot version S. The mirror serves a
# new timestamp, validly signed with the real timestamp key (an online key: the attacker is
# assumed to hold it), that names the older, validly signed snapshot S-1, and, second attack,
# one that names a new version S+1 whose file holds the old snapshot's bytes. The client
# refuses both (a rollback, a version other than the timestamp names), names the file and the
# versions, keeps its trusted state and serves nothing of the older state.
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
make_repo
synth_tree "$T/v1" 1
synth_tree "$T/v2" 2
publish pkg 1.0 "$T/v1"
s_old=$(snapshot_version)
publish pkg 2.0 "$T/v2"
s_new=$(snapshot_version)
save_state new
WWW=$T/www
STORE=$T/store
serve_state new "$WWW"
start_nginx "$WWW"

extract_same "genuine: pkg 2.0" "$T/v2" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x1"
[ "$(trusted_version "$STORE" snapshot)" = "$s_new" ] || fail "the client does not trust snapshot $s_new"
save_trusted "$STORE"

# 1. a newer timestamp that names the older snapshot
serve_state new "$WWW"
forge edit "$WWW/metadata/timestamp.json" --version +1 --snapshot "$WWW/metadata/$s_old.snapshot.json" \
	--sign "$KEYS/timestamp.key"
[ "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["meta"]["snapshot.json"]["version"])' "$WWW/metadata/timestamp.json")" = "$s_old" ] ||
	fail "test setup: the forged timestamp does not name snapshot $s_old"
refused "timestamp naming the older snapshot: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the timestamp, the snapshot versions" "metadata/timestamp.json" "snapshot" \
	"$s_old" "$s_new"
assert_unchanged "timestamp naming the older snapshot: trusted state unchanged" "$STORE"

# 2. the old snapshot's bytes as the next snapshot version
serve_state new "$WWW"
s_next=$((s_new + 1))
cp "$WWW/metadata/$s_old.snapshot.json" "$WWW/metadata/$s_next.snapshot.json"
forge edit "$WWW/metadata/timestamp.json" --version +1 --snapshot "$WWW/metadata/$s_next.snapshot.json" \
	--set "meta/snapshot.json/version=$s_next" --sign "$KEYS/timestamp.key"
refused "old snapshot served as version $s_next: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x3"
err_has "the error names the snapshot file and both versions" "metadata/$s_next.snapshot.json" \
	"version $s_old" "$s_next"
assert_unchanged "old snapshot served as version $s_next: trusted state unchanged" "$STORE"

# the genuine mirror is back
serve_state new "$WWW"
extract_same "genuine again: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x4"
assert_unchanged "genuine again: trusted state as before the attack" "$STORE"
done_ok
