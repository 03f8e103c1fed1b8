#!/usr/bin/env bash
# A new user's mistakes, each run as the user runs it (storkfs without -f: the daemon detaches
# once mounted), and what they are told on stderr, with the exit code: a root from another
# repository, an unreachable mirror, a mirror answering 403, refresh=1h (an hour, not a second)
# and refresh=1x, a misspelt -o key (stor=), a version whose manifest no mirror has (EIO, not an
# empty directory), a mount on a storkfs mount, and a .pub file given to publish as --key.
. "$(dirname "$0")/lib.sh"

need nginx python3
need_fuse
make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
publish synth 2.0 "$T/src"
start_faultserver "$REPO"
MIRROR=$FAULT_URL

# A second repository: its root is the wrong one for the first.
OTHER_ROOT=$T/other/root.json
mkdir -p "$T/other"
run "$STORK" repo init "$T/other/repo" --keys "$T/other/keys"
[ "$RC" -eq 0 ] || fail "stork repo init (the other repository)"
cp "$(printf '%s\n' "$OUT" | tail -n 1)" "$OTHER_ROOT"

# storkfs_bg OPTIONS URL MNT: storkfs without -f (as users run it); sets RC, ERR. A mount
# it made anyway is unmounted at exit.
storkfs_bg() {
	local opts=$1 url=$2 mnt=$3
	mkdir -p "$mnt"
	_MOUNTS+=("$mnt")
	run "$STORKFS" -o "$opts" "$url" "$mnt"
}

# once DESC TEXT: TEXT is on one line of the last run's stderr, not on two (errors never print
# their text twice).
once() {
	local n
	n=$(grep -cF -- "$2" "$T/err" || true)
	[ "$n" -eq 1 ] || { _show_run; fail "$1: '$2' is on $n lines of stderr, not 1"; }
	pass "$1: said once"
}

# no_stays_in_use: a failed first start does not claim earlier metadata.
no_stays_in_use() {
	if grep -qF "stays in use" "$T/err"; then
		_show_run
		fail "$1: says the metadata verified earlier stays in use, but there is none"
	fi
	pass "$1: no 'metadata verified earlier stays in use' (there is none)"
}

# 1. The root of another repository.
storkfs_bg "root=$OTHER_ROOT,store=$T/s1" "$MIRROR" "$T/m1"
[ "$RC" -eq 1 ] || { _show_run; fail "wrong root: expected exit 1, got $RC"; }
err_has "wrong root: named as such" "the timestamp is not signed by this root's keys" \
	"is the root file from this repository?"
no_stays_in_use "wrong root"
once "wrong root" "required signatures from role timestamp"

# 2. An unreachable mirror (a port nobody listens on).
free_port
storkfs_bg "root=$ROOT,store=$T/s2" "http://127.0.0.1:$FREE_PORT" "$T/m2"
[ "$RC" -eq 1 ] || { _show_run; fail "unreachable mirror: expected exit 1, got $RC"; }
err_has "unreachable mirror: the reason is on the terminal" "127.0.0.1:$FREE_PORT" "connection refused"
no_stays_in_use "unreachable mirror"
once "unreachable mirror" "connection refused"

# 3. A mirror that answers 403.
fault_set '[{"match": ".", "fault": "status", "status": 403}]'
storkfs_bg "root=$ROOT,store=$T/s3" "$MIRROR" "$T/m3"
[ "$RC" -eq 1 ] || { _show_run; fail "403: expected exit 1, got $RC"; }
err_has "403: the reason is on the terminal" "$MIRROR" "403"
no_stays_in_use "403"
once "403" "403"
fault_set '[]'

# 4. Durations: refresh=1x is refused naming the option; refresh=1h is an hour (no refresh
# within seconds of the mount: it was one second).
storkfs_bg "root=$ROOT,store=$T/s4,refresh=1x" "$MIRROR" "$T/m4"
[ "$RC" -eq 1 ] || { _show_run; fail "refresh=1x: expected exit 1, got $RC"; }
err_has "refresh=1x is refused, naming the option and the units" "-o refresh=1x" "expected a duration" "1h"
! is_mounted "$T/m4" || fail "refresh=1x mounted"
storkfs_bg "root=$ROOT,store=$T/s4,refresh=1h" "$MIRROR" "$T/m4"
[ "$RC" -eq 0 ] || { _show_run; fail "refresh=1h: expected exit 0, got $RC"; }
before=$(fault_requests 'timestamp\.json')
sleep 3
after=$(fault_requests 'timestamp\.json')
[ "$after" -eq "$before" ] || fail "refresh=1h: $((after - before)) refreshes within 3 s of the mount (1h read as 1 s)"
pass "refresh=1h: no refresh within 3 s of the mount"
for o in timeout=1m mirror_retry=30m proxy_retry=5m peer_retry=1h connect_timeout=10s low_speed_time=5s; do
	storkfs_bg "root=$ROOT,store=$T/s4b,$o,stack" "$MIRROR" "$T/m4"
	[ "$RC" -eq 0 ] || { _show_run; fail "$o: refused"; }
	fusermount3 -u "$T/m4"
done
pass "timeout, mirror_retry, proxy_retry, peer_retry, connect_timeout, low_speed_time take units"
storkfs_bg "root=$ROOT,store=$T/s4b,connect_timeout=5x" "$MIRROR" "$T/m4b"
[ "$RC" -eq 1 ] || { _show_run; fail "connect_timeout=5x: expected exit 1, got $RC"; }
err_has "connect_timeout=5x is refused naming it" "-o connect_timeout=5x" "expected a duration"

# 5. A stacked mount: $T/m4 is a storkfs mount.
storkfs_bg "root=$ROOT,store=$T/s5" "$MIRROR" "$T/m4"
[ "$RC" -eq 1 ] || { _show_run; fail "stacked mount: expected exit 1, got $RC"; }
err_has "a mount on a storkfs mount is refused" "$T/m4: already a storkfs mount" "-o stack"
[ "$(grep -cF " $T/m4 fuse" /proc/mounts)" -eq 1 ] || fail "stacked mount: two mounts at $T/m4"
fusermount3 -u "$T/m4"

# 6. A misspelt key.
storkfs_bg "root=$ROOT,stor=$T/s6" "$MIRROR" "$T/m6"
[ "$RC" -eq 1 ] || { _show_run; fail "stor=: expected exit 1, got $RC"; }
err_has "stor= is named with the nearest option" "-o stor=$T/s6: unknown option; did you mean store=?"
[ "$(grep -c . "$T/err")" -eq 1 ] || { _show_run; fail "stor=: more than the one line"; }
pass "stor=: one line, before any network work"
storkfs_bg "roots=$ROOT,store=$T/s6" "$MIRROR" "$T/m6"
[ "$RC" -eq 1 ] || { _show_run; fail "roots=: expected exit 1, got $RC"; }
err_has "roots= is named with the nearest option" "did you mean root=?"

# 7. A version whose manifest no mirror has: EIO on listing and lookup, logged with the mirror.
M=$(manifest_file synth 2.0)
mv "$M" "$T/manifest.saved"
mount_storkfs "$T/m7" "store=$T/s7" "$MIRROR"
expect_rc 2 "a missing manifest: ls of the version fails" ls "$T/m7/synth/2.0"
err_has "... with EIO, not an empty directory" "Input/output error"
expect_rc 2 "a missing manifest: a lookup in the version fails" ls -d "$T/m7/synth/2.0/usr"
err_has "... with EIO" "Input/output error"
grep -qF "synth 2.0" "$SFS_LOG" && grep -qF "$MIRROR" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "the missing manifest is not logged with the version and the mirror"
}
pass "the missing manifest is logged with the version and the mirror"
unmount_storkfs "$T/m7"
mv "$T/manifest.saved" "$M"

# 8. A .pub file as --key.
run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY.pub" synth 3.0 "$T/src"
[ "$RC" -eq 2 ] || { _show_run; fail ".pub as --key: expected exit 2, got $RC"; }
err_has ".pub as --key: says it is a public key" "$PUBKEY.pub: this is a public key"
! grep -qF "readable by group" "$T/err" || { _show_run; fail ".pub as --key: blames the mode"; }
pass ".pub as --key: does not blame the file's mode"

# 9. After a publisher key rotation, the old key's refusal does not advise re-delegating it.
keygen "$T/pub/alice2.key"
expect_rc 0 "rotate alice to a new key" "$STORK" repo rotate "$REPO" --keys "$KEYS" --key "$T/pub/alice2.key" alice
expect_rc 2 "the old key can no longer publish" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" synth 3.0 "$T/src"
err_has "the refusal says the old key was rotated out or revoked" "${PUBKEYID:0:16}" "rotated out or revoked"
! grep -qF "repo delegate" "$T/err" || { _show_run; fail "the old key's refusal advises re-delegating it"; }
pass "the old key's refusal does not advise re-delegating it"

# 10. stork verify: a mirror that answers 404 and one that refuses the connection fail alike.
expect_rc 1 "stork verify of a mirror that answers 404" "$STORK" verify --root "$ROOT" "$MIRROR/nonexistent"
err_has "... says so" "not found"
free_port
expect_rc 1 "stork verify of a mirror that refuses the connection: the same exit code" \
	"$STORK" verify --root "$ROOT" "http://127.0.0.1:$FREE_PORT"
err_has "... says so" "connection refused"

done_ok
