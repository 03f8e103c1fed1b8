#!/usr/bin/env bash
# -o prefetch=: a mount fetches whole versions into the store ahead of use. Two versions of
# synth and one of tools are published; a mount with prefetch=synth=all,prefetch=tools logs one
# summary line, by then nginx has served each of their distinct objects exactly once, and
# reading every file of them afterwards sends no object request at all. After a new version
# of tools is published and SIGHUP, the new latest is prefetched too. A bad prefetch= value
# stops storkfs with a message naming the option.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo
synth_tree "$T/src/synth-1" 1
synth_tree "$T/src/synth-2" 2
synth_tree "$T/src/tools-1" 3
synth_tree "$T/src/tools-2" 4
publish synth 1.0 "$T/src/synth-1" --quiet
publish synth 2.0 "$T/src/synth-2" --quiet
publish tools 1.0 "$T/src/tools-1" --quiet
start_nginx "$REPO"

# objects NAME:VERSION...: how many distinct objects the versions' manifests name.
objects() {
	local nv
	for nv in "$@"; do
		manifest_hashes "${nv%%:*}" "${nv#*:}"
	done | cut -d' ' -f1 | sort -u | wc -l
}

# wait_log N: until the daemon's log holds N "prefetch: " summary lines (bounded).
wait_log() {
	for _ in $(seq 300); do
		[ "$(grep -c '^storkfs: prefetch: [0-9]* version' "$SFS_LOG" || true)" -ge "$1" ] && return 0
		sleep 0.1
	done
	cat "$SFS_LOG" >&2
	fail "no prefetch summary line number $1 in the log within 30 s"
}

expect_rc 1 "a bad prefetch= value stops storkfs" \
	timeout 60 "$STORKFS" -f -o "root=$ROOT,store=$T/store,prefetch=Bad/Name" "$NGINX_URL" "$T/bad"
err_has "the error names the option and the expected form" "prefetch=Bad/Name" "expected prefetch=NAME"

M=$T/mnt
mount_storkfs "$M" "store=$T/store,timeout=30,refresh=3600,prefetch=synth=all,prefetch=tools" "$NGINX_URL"
wait_log 1
want=$(objects synth:1.0 synth:2.0 tools:1.0)
got=$(nginx_requests 'GET /objects/')
[ "$got" -eq "$want" ] || fail "the prefetch requested $got objects, want $want (each distinct object once)"
grep '^storkfs: prefetch: ' "$SFS_LOG" | tail -n 1 | matches -E "3 versions: $want objects \($want fetched, 0 already stored, 0 failed\)" ||
	fail "the summary line says '$(grep '^storkfs: prefetch: ' "$SFS_LOG" | tail -n 1)'"
pass "prefetch=synth=all,prefetch=tools fetched each of the $want distinct objects once and said so"

before=$got
for v in synth/1.0:synth-1 synth/2.0:synth-2 tools/1.0:tools-1; do
	(cd "$T/src/${v#*:}" && find . -type f -print0) | while IFS= read -r -d '' f; do
		cmp -s "$T/src/${v#*:}/$f" "$M/${v%%:*}/$f" || fail "${v%%:*}/$f reads wrong bytes"
	done
done
[ "$(nginx_requests 'GET /objects/')" -eq "$before" ] || fail "reading the prefetched versions sent object requests"
pass "reading every prefetched file sends no object request"

# A new latest tools: prefetched after the refresh.
publish tools 2.0 "$T/src/tools-2" --quiet
kill -HUP "$SFS_PID"
wait_log 2
want2=$(objects synth:1.0 synth:2.0 tools:1.0 tools:2.0)
[ "$(nginx_requests 'GET /objects/')" -eq "$want2" ] || fail "after the refresh: $(nginx_requests 'GET /objects/') object requests, want $want2"
(cd "$M" && find tools/2.0 -type f -exec cat {} + >/dev/null)
[ "$(nginx_requests 'GET /objects/')" -eq "$want2" ] || fail "reading tools 2.0 sent object requests"
pass "after SIGHUP the new latest tools 2.0 was prefetched: reading it sent no request"
unmount_storkfs "$M"
fsck_clean "the store is clean" "$T/store"
done_ok
