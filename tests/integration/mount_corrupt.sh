#!/usr/bin/env bash
# A mirror that serves a corrupted object. Mirror 1 (a fault server) flips a byte of one
# object of package "bad" 1.0; mirror 2 refuses connections (a closed port). Reading that
# file through the mount fails with EIO (open, and cat says "Input/output error"); every
# other file of the package reads its source's bytes; the daemon's log has one line that
# names the package, the version, the path in the package, the object's hex hash and the
# mirror that lied (and the one that refused); nothing of the bad object entered the store
# (stork fsck clean, every stored object re-hashed, user.storkfs.cached 0). Then a good
# mirror appears on mirror 2's port (a fault server with no faults, bound to that port) and
# a later read of the file, within a bounded wait (-o mirror_retry=2: a failed mirror is
# tried again soon), gives the source's bytes, fetched from the good mirror. The mount also
# serves a slice (-o slices=): the corrupted file is EIO through the slice as well.
. "$(dirname "$0")/lib.sh"

need python3
need_fuse


make_repo
mkdir -p "$T/src/d/sub"
rnd 21 200000 >"$T/src/d/victim"
rnd 22 150000 >"$T/src/d/fine"
rnd 23 4000 >"$T/src/d/sub/other"
echo tiny >"$T/src/d/tiny"
publish bad 1.0 "$T/src"
read -r o_bad _ _ < <(manifest_hashes bad 1.0 | grep ' d/victim$')
p_bad=$(object_path "$o_bad")

start_faultserver "$REPO"
LIAR_URL=$FAULT_URL
LIAR_DIR=$FAULT_DIR
LIAR_PID=$FAULT_PID
LIAR_PORT=$FAULT_PORT
fault_set "[{\"match\": \"^/$p_bad\$\", \"fault\": \"corrupt\"}]"
free_port
GOOD_PORT=$FREE_PORT
GOOD_URL=http://127.0.0.1:$GOOD_PORT
echo "# mirrors: $LIAR_URL (corrupts $p_bad), $GOOD_URL (refuses at first)"

MNT=$T/mnt
STORE=$T/store
mkdir -p "$T/slices" && echo 'trust * delegated' >"$T/slices/s.policy"
mount_storkfs "$MNT" "store=$STORE,timeout=20,mirror_retry=2,slices=$T/slices" "$LIAR_URL" "$GOOD_URL"
V=$MNT/bad/1.0

# --- the corrupted object --------------------------------------------------------------
read_errno "$V/d/victim"
[ "$GOT" = "errno 5" ] || fail "reading d/victim (corrupted on mirror 1, mirror 2 down): '$GOT', want errno 5 (EIO)"
pass "reading the corrupted file fails with EIO"
expect_rc 1 "cat of the corrupted file fails" timeout 60 cat "$V/d/victim"
err_has "cat says Input/output error" "Input/output error"
[ ! -s "$T/out" ] || fail "cat printed $(wc -c <"$T/out") bytes of the corrupted file"
pass "cat printed none of the corrupted file's bytes"

for f in d/fine d/sub/other d/tiny; do
	want=$(sha256sum <"$T/src/$f" | cut -d' ' -f1)
	read_errno "$V/$f"
	[ "$GOT" = "ok $want" ] || fail "$f (not corrupted): '$GOT', want 'ok $want'"
done
pass "every other file of the package reads its source's bytes"

# the same through a slice (fs/README.md "Slices"): EIO for the corrupted file, the others intact
read_errno "$MNT/.slices/s/bad/1.0/d/victim"
[ "$GOT" = "errno 5" ] || fail "reading d/victim through slice s: '$GOT', want errno 5 (EIO)"
want=$(sha256sum <"$T/src/d/fine" | cut -d' ' -f1)
read_errno "$MNT/.slices/s/bad/1.0/d/fine"
[ "$GOT" = "ok $want" ] || fail "d/fine through slice s: '$GOT', want 'ok $want'"
pass "through a slice too, the corrupted file fails with EIO and the others read their bytes"

# the line about the failed open: it names every mirror (one line, all the facts)
line=$(awk -v h="$o_bad" -v liar="127.0.0.1:$LIAR_PORT" -v good="127.0.0.1:$GOOD_PORT" '
	function names(s, u,   i) {
		i = index(s, u)
		return i && substr(s, i + length(u), 1) !~ /[0-9]/
	}
	index($0, h) && index($0, "bad 1.0") && index($0, "d/victim") && names($0, liar) &&
		names($0, good) { print; exit }' "$SFS_LOG")
[ -n "$line" ] || {
	cat "$SFS_LOG" >&2
	fail "no log line names the package and version (bad 1.0), the path (d/victim), the object ($o_bad), the lying mirror ($LIAR_URL) and the refusing one ($GOOD_URL)"
}
pass "one log line names the package, version, path, object hash and both mirrors"
echo "# log: $line"

[ "$(xattr "$V/d/victim" user.storkfs.cached)" = 0 ] || fail "d/victim: user.storkfs.cached is not 0 after the failed read"
[ ! -e "$STORE/$(object_path "$o_bad")" ] || fail "the corrupted object is in the store: $STORE/$(object_path "$o_bad")"
pass "the object is not in the store (user.storkfs.cached 0, no objects/ file)"
fsck_clean "stork fsck finds the store clean after the corrupted download" "$STORE"
check "every stored object holds the content its name hashes" store_hashes_ok "$STORE"
[ "$(fault_requests "^GET /$p_bad " "$LIAR_DIR")" -ge 1 ] || fail "mirror 1 never saw a request for $p_bad"

# --- a good mirror appears on mirror 2's port -------------------------------------------
start_faultserver "$REPO" --port "$GOOD_PORT"
[ "$FAULT_URL" = "$GOOD_URL" ] || fail "the good mirror listens at $FAULT_URL, not $GOOD_URL"
GOOD_DIR=$FAULT_DIR
want=$(sha256sum <"$T/src/d/victim" | cut -d' ' -f1)
ok=
for i in $(seq 30); do
	read_errno "$V/d/victim"
	if [ "$GOT" = "ok $want" ]; then
		ok=$i
		break
	fi
	[ "$GOT" = "errno 5" ] || fail "reading d/victim with a good mirror up: '$GOT', want the source's bytes or EIO while waiting"
	sleep 1
done
[ -n "$ok" ] || {
	tail -20 "$SFS_LOG" >&2
	fail "d/victim still fails 30 tries (about 30 s) after a good mirror came up at $GOOD_URL (mirror_retry=2)"
}
pass "once a good mirror is up, a later read of d/victim gives the source's bytes (try $ok)"
[ "$(fault_requests "^GET /$p_bad " "$GOOD_DIR")" -eq 1 ] ||
	fail "the good mirror served $p_bad $(fault_requests "^GET /$p_bad " "$GOOD_DIR") times, want 1"
pass "the good mirror delivered the object, once"
timeout 60 cat "$V/d/victim" >"$T/victim.cat" || fail "cat of d/victim fails after the good read"
cmp -s "$T/victim.cat" "$T/src/d/victim" || fail "cat of d/victim does not print the source's bytes"
pass "cat of d/victim now prints the source's bytes"
[ "$(xattr "$V/d/victim" user.storkfs.cached)" = 1 ] || fail "d/victim: user.storkfs.cached is not 1 after the good read"
pass "d/victim is cached now (user.storkfs.cached 1)"
fsck_clean "stork fsck finds the store clean at the end" "$STORE"
check "every stored object holds the content its name hashes at the end" store_hashes_ok "$STORE"

# NEW (user.storkfs.source): the mirror that delivered it
src=$(xattr "$V/d/victim" user.storkfs.source 2>/dev/null || true)
[ "$src" = "$GOOD_URL" ] || fail "d/victim: user.storkfs.source is '$src', want the good mirror $GOOD_URL"
pass "user.storkfs.source names the good mirror"

unmount_storkfs "$MNT"
stop_faultserver "$LIAR_PID"
stop_faultserver "$FAULT_PID"
done_ok
