#!/usr/bin/env bash
# Indefinite freeze attack (TUF "freeze attack"): the mirror keeps serving the metadata the
# client already trusts, or replays it, long after it expired. `stork extract --at` moves the
# client's clock forward: a frozen timestamp, a frozen snapshot (behind a fresh timestamp
# signed with the online key), a frozen top-level targets and a frozen delegated role (behind
# a fresh snapshot) are each refused as expired, naming the role and the time; the trusted
# state is unchanged. Then a live mount: its timestamp expires while it is mounted; after
# SIGHUP it refuses the frozen metadata, says so, and keeps serving its last verified state.
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
need_fuse
make_repo
synth_tree "$T/v1" 1
publish pkg 1.0 "$T/v1"
WWW=$T/www
STORE=$T/store
serve_copy "$REPO" "$WWW"
start_nginx "$WWW"
now=$(date +%s)
day=86400

# expires_of FILE: signed.expires of a metadata file
expires_of() {
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["signed"]["expires"])' "$1"
}

extract_same "genuine: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x1"
save_trusted "$STORE"

# --- frozen timestamp (1 day), the client two days later
ts_exp=$(expires_of "$WWW/metadata/timestamp.json")
refused "frozen timestamp, 2 days later: refused" --at $((now + 2 * day)) --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the timestamp, that it expired and when" "timestamp" "expired" "$ts_exp"
assert_unchanged "frozen timestamp: trusted state unchanged" "$STORE"

# --- frozen snapshot (7 days) behind a fresh timestamp, the client 8 days later
serve_copy "$REPO" "$WWW"
snap=$(snapshot_version)
forge edit "$WWW/metadata/timestamp.json" --version +1 --expires +30d --sign "$KEYS/timestamp.key"
snap_exp=$(expires_of "$WWW/metadata/$snap.snapshot.json")
refused "frozen snapshot, 8 days later: refused" --at $((now + 8 * day)) --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x3"
err_has "the error names the snapshot, that it expired and when" "snapshot" "expired" "$snap_exp"
assert_unchanged "frozen snapshot: trusted state unchanged" "$STORE"

# --- frozen top-level targets and delegated role: the repository writes a state whose targets
# (then alice's role) expire in 2 days, behind a snapshot and timestamp good for 30; the
# client trusts it, then the mirror freezes it
serve_copy "$REPO" "$WWW"
forge role "$WWW" targets --expires +2d --sign "$KEYS/targets.key"
tv=$(meta_version "$WWW/$OUT")
forge commit "$WWW" --keys "$KEYS" --meta "targets=$tv" --snapshot-edit "--expires +30d" \
	--timestamp-edit "--expires +30d"
extract_same "a state whose targets expire in 2 days: pkg 1.0" "$T/v1" --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x4"
[ "$(trusted_version "$STORE" targets)" = "$tv" ] || fail "the client does not trust targets $tv"
save_trusted "$STORE"
t_exp=$(expires_of "$WWW/metadata/$tv.targets.json")
refused "frozen targets, 3 days later: refused" --at $((now + 3 * day)) --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x5"
err_has "the error names the targets, that it expired and when" "targets" "expired" "$t_exp"
assert_unchanged "frozen targets: trusted state unchanged" "$STORE"

forge role "$WWW" alice --expires +2d --sign "$PUBKEY"
av=$(meta_version "$WWW/$OUT")
forge commit "$WWW" --keys "$KEYS" --meta "alice=$av" --snapshot-edit "--expires +30d" \
	--timestamp-edit "--expires +30d"
forge role "$WWW" targets --expires +30d --sign "$KEYS/targets.key"
tv=$(meta_version "$WWW/$OUT")
forge commit "$WWW" --keys "$KEYS" --meta "targets=$tv" --snapshot-edit "--expires +30d" \
	--timestamp-edit "--expires +30d"
extract_same "a state whose alice expires in 2 days: pkg 1.0" "$T/v1" --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x6"
[ "$(trusted_version "$STORE" alice)" = "$av" ] || fail "the client does not trust alice $av"
save_trusted "$STORE"
a_exp=$(expires_of "$WWW/metadata/$av.alice.json")
refused "frozen role alice, 3 days later: refused" --at $((now + 3 * day)) --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x7"
err_has "the error names alice's role, that it expired and when" "alice" "expired" "$a_exp"
assert_unchanged "frozen role alice: trusted state unchanged" "$STORE"

# --- a live mount: the mirror's timestamp expires 8 s after the mount trusted it
STORE2=$T/store2
serve_copy "$REPO" "$WWW"
forge edit "$WWW/metadata/timestamp.json" --version +1 --expires +8s --sign "$KEYS/timestamp.key"
MNT=$T/mnt
mount_storkfs "$MNT" "store=$STORE2,timeout=30,refresh=3600" "$NGINX_URL"
[ "$(timeout 30 ls "$MNT/pkg" | tr '\n' ' ')" = "1.0 latest " ] || fail "the mount does not show pkg 1.0"
check "mount: pkg 1.0 reads its genuine tree" compare_content "$T/v1" "$MNT/pkg/1.0"
save_trusted "$STORE2"
sleep 9
kill -HUP "$SFS_PID"
# the refresh fails (the timestamp expired); wait until the daemon said so in its log
for _ in $(seq 100); do
	grep -q expired "$SFS_LOG" && break
	sleep 0.2
done
grep -q expired "$SFS_LOG" || {
	tail -20 "$SFS_LOG" >&2
	fail "mount: after SIGHUP, the daemon's log does not say the frozen metadata expired"
}
pass "mount: after SIGHUP the daemon logs that the metadata expired: $(grep expired "$SFS_LOG" | tail -n 1)"
check "mount: still serves its last verified pkg 1.0, genuine" compare_content "$T/v1" "$MNT/pkg/1.0"
run "$STORK" status "$MNT"
grep -qiE 'expired|stale|failed' "$T/out" || {
	_show_run
	fail "mount: stork status does not report the failed refresh"
}
pass "mount: stork status reports it: $(grep -iE 'expired|stale|failed' "$T/out" | head -n 1)"
assert_unchanged "mount: trusted state unchanged" "$STORE2"
unmount_storkfs "$MNT"
done_ok
