#!/usr/bin/env bash
# Rollback after the index is lost (issue 11, item 6): a node trusts the repository at its
# newest state (timestamp, snapshot and targets newer than in an earlier state), then its
# index/ is deleted (or data.mdb truncated to nothing) and the mirror serves the whole earlier
# state, every file validly signed. Without a floor the client would restart from the pinned
# root and take the old state. The store keeps a copy of the trusted metadata in
# STOREDIR/trusted/, so the next `stork extract` restores the floor from it (verified from the
# pinned root), says so loudly, and refuses the rollback naming the timestamp; `stork status`
# shows that the index lost it and the copy restored it, and the trusted state is what it was.
# Also: the index lost with no attack (a loud line, status says so, the genuine state works;
# `stork fsck` reports the loss and `stork fsck --repair` restores the floor), and the index
# lost together with the copy (a loud line saying the floor restarted from the pinned root).
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse
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

# status_has DESC STORE TEXT: `stork status STORE` prints TEXT
status_has() {
	run "$STORK" status "$2"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "$1: stork status $2 exited $RC"
	}
	out_has "$1" "$3"
}

# --- index deleted, the mirror rolls everything back ---------------------------------------
rm_rf "$STORE/index"
serve_state old "$WWW"
refused "index deleted, rolled-back mirror: pkg 1.0 is refused" --store "$STORE" "$NGINX_URL" \
	pkg 1.0 "$T/x2"
err_has "the error names the timestamp and the rollback" "metadata/timestamp.json" \
	"version $old_ts" "trusted version $new_ts"
err_has "a loud line says the floor was restored from the copy" "WARNING: $STORE/index had lost" \
	"restored from its copy in $STORE/trusted/" "timestamp $new_ts"
status_has "status: the index lost it, the copy restored it" "$STORE" \
	"INDEX LOST    trusted metadata: restored from the copy in $STORE/trusted/"
assert_unchanged "index deleted: trusted state as before the loss" "$STORE"
refused "again, a new process: pkg 2.0 is refused too" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x3"
assert_unchanged "again: trusted state unchanged" "$STORE"

# --- data.mdb truncated to nothing, the same attack ----------------------------------------
: >"$STORE/index/data.mdb"
rm -f "$STORE/index/lock.mdb"
refused "data.mdb truncated, rolled-back mirror: pkg 1.0 is refused" --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x4"
err_has "the error names the timestamp and the rollback" "metadata/timestamp.json" \
	"older than the trusted version"
err_has "a loud line says the floor was restored" "WARNING: $STORE/index had lost"
assert_unchanged "data.mdb truncated: trusted state as before the loss" "$STORE"

# --- a mount after the index is lost: the daemon's log says so, it refuses the rollback ----
rm_rf "$STORE/index"
MNT=$T/mnt
mount_storkfs "$MNT" "store=$STORE,timeout=30,refresh=3600" "$NGINX_URL"
grep -q "WARNING: $STORE/index had lost" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "mount: the daemon's log does not say that the floor was restored"
}
grep -q 'older than the trusted version' "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "mount: the daemon's log does not report the rollback"
}
got=$(timeout 30 readlink "$MNT/pkg/latest") || true
[ "$got" = 2.0 ] || fail "mount: pkg/latest -> '$got', want the trusted 2.0"
pass "mount: the log says the floor was restored, the rollback is refused, pkg/latest -> 2.0"
unmount_storkfs "$MNT"
assert_unchanged "mount: trusted state as before the loss" "$STORE"

# --- no attack: the index lost, the next extract restores the floor and says so ---------
serve_state new "$WWW"
rm_rf "$STORE/index"
extract_same "index deleted, genuine mirror: pkg 2.0" "$T/v2" --store "$STORE" "$NGINX_URL" \
	pkg 2.0 "$T/x4b"
err_has "a loud line says the floor was restored from the copy" "WARNING: $STORE/index had lost" \
	"timestamp $new_ts"
status_has "status: restored from the copy" "$STORE" "INDEX LOST    trusted metadata: restored from the copy"
assert_unchanged "index deleted, genuine mirror: trusted state as before the loss" "$STORE"

# --- no attack: the index lost, fsck reports it, --repair restores the floor --------------
rm_rf "$STORE/index"
status_has "status: the index holds none, the copy restores it" "$STORE" \
	"INDEX LOST    trusted metadata: the index holds none; the copy in $STORE/trusted/"
run "$STORK" fsck "$STORE"
[ "$RC" -eq 1 ] || {
	_show_run
	fail "stork fsck with the index lost exited $RC, want 1 (a problem found)"
}
err_has "fsck names the copy" "$STORE/trusted/" "the index holds none of this repository's trusted metadata"
run "$STORK" fsck --repair "$STORE"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork fsck --repair with the index lost exited $RC, want 0"
}
out_has "fsck --repair restored it" "trusted/: restored"
assert_unchanged "fsck --repair: trusted state as before the loss" "$STORE"
fsck_clean "a second fsck is clean" "$STORE"
status_has "status after fsck --repair: restored from the copy" "$STORE" \
	"INDEX LOST    trusted metadata: restored from the copy"
extract_same "genuine, after fsck --repair: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x5"
assert_unchanged "genuine: trusted state as before" "$STORE"

# --- no attack: the index and the copy both lost --------------------------------------------
rm_rf "$STORE/index" "$STORE/trusted"
extract_same "index and copy lost, genuine mirror: pkg 2.0" "$T/v2" --store "$STORE" \
	"$NGINX_URL" pkg 2.0 "$T/x6"
err_has "a loud line says the floor restarted from the pinned root" \
	"WARNING: $STORE/index holds none of the trusted metadata" "restarts from the pinned root"
status_has "status: index lost, no copy" "$STORE" \
	"INDEX LOST    trusted metadata: the index lost it and no copy was left: restarted from the pinned root"
[ -n "$(ls -A "$STORE/trusted")" ] || fail "the refresh wrote no new copy into $STORE/trusted"
assert_unchanged "index and copy lost: the refresh trusts the same newest state again" "$STORE"
done_ok
