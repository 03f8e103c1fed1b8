#!/usr/bin/env bash
# Slow retrieval (TUF: "slow retrieval attack"). A hostile mirror (the fault server) answers at
# a few bytes per second ("trickle", 5 B/s) or sends its headers and then nothing ("stall"),
# for the metadata (timestamp.json) or for an object. stork extract with
# --low-speed-time 1 --low-speed-limit 1024 gives up on it within a bound (10 s: the low-speed
# window plus slack; the trickle would take 11 hours) naming the file and the stall, and from
# [slow, good] it succeeds with the genuine tree, the log naming the slow mirror (a stalled
# timestamp alone: the refresh fails and the node may go on offline with the metadata it
# verified before, saying so). A storkfs mount returns from open() within timeout=: EIO with
# the slow mirror alone, the genuine bytes with [slow, good]. Nothing enters the store that does not hash to
# its name, and the trusted metadata does not change.
. "$(dirname "$0")/lib_transport.sh"

need python3 nginx
need_fuse
make_repo
mkdir -p "$T/src" "$T/t"
rnd 1 200000 >"$T/src/big"
echo small >"$T/src/small"
echo t >"$T/t/t"
publish s 1.0 "$T/src"
publish t 1.0 "$T/t"
read -r o_big _ _ < <(manifest_hashes s 1.0 | grep ' big$')
p_big=$(object_path "$o_big")

start_nginx "$REPO"
GOOD=$NGINX_URL
start_faultserver "$REPO"
SLOW=$FAULT_URL
limits=(--low-speed-time 1 --low-speed-limit 1024 --connect-timeout 5)

# the node trusts the repository (t 1.0 from the good mirror; s's objects are not stored)
extract_ok "the node extracts t 1.0 from the good mirror" --store "$T/store" "$GOOD" t 1.0 "$T/t0"
BEFORE=$(trusted_state "$T/store")

# slow CASE RULE PATH: with RULE on the slow mirror, extract s 1.0 from it alone (fails within
# 10 s naming PATH and a stall) and from [slow, good] (succeeds, genuine, the log names the
# slow mirror and PATH), each in a copy of the node's store
slow() {
	local c=$1 rule=$2 path=$3 s
	fault_set "[$rule]"
	s=$T/store-$c-alone
	cp -a "$T/store" "$s"
	: >"$FAULT_DIR/access.log"
	timed_extract 4096 30 --store "$s" "${limits[@]}" "$SLOW" s 1.0 "$T/d-$c-alone"
	if [ "$RC" -ge 124 ]; then
		_show_run
		fail "$c alone: stork extract exited $RC after ${ELAPSED}s (timeout or signal)"
	fi
	[ "$ELAPSED" -le 10 ] || fail "$c alone: stork extract gave up only after ${ELAPSED}s (bound 10 s)"
	if [ "$RC" -eq 0 ]; then
		# a stalled timestamp is a failed refresh: the node may go on offline with the
		# metadata it verified earlier (and say so), fetching the objects from the same
		# mirror, which then answers them promptly; an object has no such fallback
		[[ $path == metadata/* ]] || fail "$c alone: stork extract succeeded although $path never came"
		compare_tree "$T/src" "$T/d-$c-alone" || fail "$c alone: exit 0 with a tree that is not the genuine one"
		grep -qi 'offline' "$T/err" || {
			_show_run
			fail "$c alone: succeeded without saying it used the metadata verified earlier"
		}
		pass "$c alone: gives up on $path in ${ELAPSED}s, goes on offline (it says so) with the genuine tree"
	else
		[ ! -e "$T/d-$c-alone" ] || [ -z "$(find "$T/d-$c-alone" -type f -print -quit)" ] ||
			fail "$c alone: the failed extract left files"
		pass "$c alone: stork extract gives up in ${ELAPSED}s (exit $RC)"
	fi
	grep -F "$path" "$T/err" | matches -iE 'stall|slow|timed out|timeout' || {
		_show_run
		fail "$c alone: stderr does not name $path and a stall or timeout"
	}
	pass "$c alone: stderr names $path and the stall"
	[ "$(fault_requests "^GET /$path ")" -ge 1 ] || fail "$c alone: the slow mirror never saw $path"
	assert_unchanged "$c alone: trusted state unchanged" "$s" "$BEFORE"
	fsck_clean "$c alone: stork fsck finds the store clean" "$s"

	s=$T/store-$c-good
	cp -a "$T/store" "$s"
	timed_extract 4096 30 --store "$s" "${limits[@]}" "$SLOW" "$GOOD" s 1.0 "$T/d-$c-good"
	if [ "$RC" -ne 0 ]; then
		_show_run
		fail "$c, good: stork extract exited $RC after ${ELAPSED}s"
	fi
	[ "$ELAPSED" -le 12 ] || fail "$c, good: stork extract took ${ELAPSED}s (bound 12 s)"
	pass "$c, good: stork extract succeeds in ${ELAPSED}s"
	check "$c, good: the genuine tree" compare_tree "$T/src" "$T/d-$c-good"
	grep -F "$SLOW" "$T/err" | grep -F "$path" | matches -iE 'stall|slow|timed out|timeout' || {
		_show_run
		fail "$c, good: no log line names the slow mirror, $path and the stall"
	}
	pass "$c, good: the log names the slow mirror, $path and the stall"
	assert_unchanged "$c, good: trusted state unchanged" "$s" "$BEFORE"
	fsck_clean "$c, good: stork fsck finds the store clean" "$s"
	check "$c, good: every stored object holds what its name hashes" store_hashes_ok "$s"
}

slow trickle-timestamp '{"match": "^/metadata/timestamp.json$", "fault": "trickle", "rate": 5}' \
	metadata/timestamp.json
slow stall-timestamp '{"match": "^/metadata/timestamp.json$", "fault": "stall", "bytes": 0}' \
	metadata/timestamp.json
slow trickle-object "{\"match\": \"^/$p_big\$\", \"fault\": \"trickle\", \"rate\": 5}" "$p_big"
slow stall-object "{\"match\": \"^/$p_big\$\", \"fault\": \"stall\", \"bytes\": 0}" "$p_big"

# --- a mount: open() returns within timeout=. The mount's low-speed window defaults to
# min(10 s, timeout/3), so with timeout=3 an open over the slow mirror alone fails with EIO at
# about 3 s, and with [slow, good] the slow mirror is dropped early enough for the same open to
# get the genuine bytes from the good mirror (mount_transports checks it at timeout=5).
# mount_read CASE TIMEOUT RULE MIRRORS...: mount over MIRRORS with RULE on the slow mirror,
# read s/1.0/big (sets GOT, ELAPSED); it must return within TIMEOUT + 5 s
mount_read() {
	local c=$1 to=$2 rule=$3 mnt=$T/mnt-$1
	shift 3
	fault_set "[$rule]"
	cp -a "$T/store" "$T/store-m-$c"
	mount_storkfs "$mnt" "store=$T/store-m-$c,timeout=$to" "$@"
	read_errno "$mnt/s/1.0/big" 40
	[ "$GOT" != hang ] || fail "mount $c: reading s/1.0/big did not return within 40 s (timeout=$to)"
	[ "$ELAPSED" -le $((to + 5)) ] || fail "mount $c: reading s/1.0/big took ${ELAPSED}s (timeout=$to)"
}
# mount_done CASE: unmount; the store is clean and trusts what it trusted
mount_done() {
	unmount_storkfs "$T/mnt-$1"
	fsck_clean "mount $1: stork fsck finds the store clean" "$T/store-m-$1"
	check "mount $1: every stored object holds what its name hashes" store_hashes_ok "$T/store-m-$1"
	assert_unchanged "mount $1: trusted state unchanged" "$T/store-m-$1" "$BEFORE"
}
trickle="{\"match\": \"^/$p_big\$\", \"fault\": \"trickle\", \"rate\": 5}"
# (a stall after the headers behaves as the trickle does: the extract cases above show both)
mount_read trickle-alone 3 "$trickle" "$SLOW"
[ "$GOT" = "errno 5" ] || fail "mount trickle-alone: reading s/1.0/big gives '$GOT', want errno 5 (EIO)"
pass "mount trickle-alone: reading s/1.0/big fails with EIO in ${ELAPSED}s (timeout=3)"
grep -F "$p_big" "$SFS_LOG" | matches -iE 'timeout|timed out|stall' || {
	cat "$SFS_LOG" >&2
	fail "mount trickle-alone: the log does not name $p_big and the timeout"
}
pass "mount trickle-alone: the log names the object and the timeout"
mount_done trickle-alone
mount_read trickle-good 20 "$trickle" "$SLOW" "$GOOD"
[ "$GOT" = "ok $o_big" ] || fail "mount trickle-good: reading s/1.0/big gives '$GOT', want its genuine bytes"
pass "mount trickle-good: s/1.0/big reads its genuine bytes in ${ELAPSED}s (timeout=20)"
grep -F "$SLOW" "$SFS_LOG" | grep -F "$p_big" | matches -iE 'stall|slow' || {
	cat "$SFS_LOG" >&2
	fail "mount trickle-good: the log does not name the slow mirror, $p_big and the stall"
}
pass "mount trickle-good: the log names the slow mirror and the object"
mount_done trickle-good
stop_faultserver
done_ok
