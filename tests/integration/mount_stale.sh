#!/usr/bin/env bash
# Stale metadata and -o max_stale (fs/README.md "Stale metadata"). A repository whose timestamp
# and snapshot expire EXP seconds after signing is published once and then never refreshed
# by its publisher. Three mounts, each with its own store:
#   A  -o max_stale=GRACE,refresh=3600: nginx keeps serving the now expired timestamp (an
#      indefinite freeze); A refreshes only when its metadata expires, when its grace ends and
#      on SIGHUP;
#   B  -o max_stale=GRACE,refresh=1: its only mirror (a second nginx) is stopped (offline);
#   C  -o max_stale=0,refresh=1: the freezing mirror again, no grace.
# Before the expiry everything is fresh. After it, A and B keep serving (opens work) and say
# they are stale, when they expired and when they stop (status xattr, `stork status`, the log),
# while C refuses at once. After the grace, opening a file (python's errno, cat's message),
# listing the root and a version fail with EKEYEXPIRED ("Key has expired") on A and B; a file
# opened before keeps reading its correct bytes; the root's xattrs still answer and `stork
# status` says why and what to do. Then the publisher runs `stork repo refresh`, the offline
# mirror comes back and A gets a SIGHUP: all three serve again by themselves, and say so.
# Waits are bounded; times come from the mounts' own status (the expiry), never from sleeps
# guessed in advance.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

EXP=12  # seconds from signing until timestamp and snapshot expire
GRACE=12 # -o max_stale of A and B (the checks within it must fit, under ASan too)
EXPIRED="Key has expired" # strerror(EKEYEXPIRED)


# The checks between the expiry and the end of the grace must fit in GRACE seconds on a loaded
# machine: they use cat, ls and stork (a python start alone can take a second there).

# try_open FILE: "ok SHA256" or "error MESSAGE" (cat's; bounded by `timeout 30`).
try_open() {
	local sum
	if sum=$(timeout -k 5 30 cat -- "$1" 2>"$T/open.err" | sha256sum); then
		echo "ok ${sum%% *}"
	else
		echo "error $(cat "$T/open.err")"
	fi
}

# try_list DIR: "ok NAME,NAME..." or "error MESSAGE".
try_list() {
	local names
	if names=$(timeout -k 5 30 ls -1 -- "$1" 2>"$T/list.err" | paste -sd, -); then
		echo "ok $names"
	else
		echo "error $(cat "$T/list.err")"
	fi
}

# status MNT FIELD: a top-level field of the mount's status JSON (`stork status --json`,
# one field per line): strings unquoted, true/false/null/numbers as written.
status() {
	timeout 30 "$STORK" status --json "$1" |
		sed -n "s/^ \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p"
}

# refused MNT: the mount's "refused" counter.
refused() {
	timeout 30 "$STORK" status --json "$1" | sed -n 's/^  "refused": \([0-9]*\),\{0,1\}$/\1/p'
}

iso() {
	date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ
}

# sleep_until EPOCH: wait until the wall clock has passed the second EPOCH.
sleep_until() {
	while [ "$(date +%s)" -lt "$1" ]; do
		sleep 0.1
	done
	sleep 0.2
}

# wait_log LOG TEXT SECONDS: wait until the log holds TEXT.
wait_log() {
	for _ in $(seq $(($3 * 10))); do
		grep -qF -- "$2" "$1" && return 0
		sleep 0.1
	done
	echo "--- $1:" >&2
	tail -20 "$1" >&2
	fail "the log $1 does not say '$2' within $3 s"
}

# open_is MNT WANT WHAT: try_open of pkg/1.0/data in MNT gives WANT (for an error: its
# message ends with WANT).
open_is() {
	local got
	got=$(try_open "$1/pkg/1.0/data")
	case $2 in
	ok*) [ "$got" = "$2" ] ;;
	*) [[ $got == "error "*": $2" ]] ;;
	esac || {
		tail -20 "${LOGS[$1]}" >&2
		fail "$3: opening $1/pkg/1.0/data gave '$got', want '$2' (at $(iso "$(date +%s)"))"
	}
}

# list_is DIR WANT WHAT: the same for listing DIR.
list_is() {
	local got
	got=$(try_list "$1")
	case $2 in
	ok*) [ "$got" = "$2" ] ;;
	*) [[ $got == "error "*"$2" ]] ;;
	esac || fail "$3: listing $1 gave '$got', want '$2' (at $(iso "$(date +%s)"))"
}

declare -A LOGS=() PIDS=()

make_repo --expires timestamp=${EXP}s --expires snapshot=${EXP}s
mkdir -p "$T/src/sub"
rnd 1 300000 >"$T/src/data"
rnd 2 2000000 >"$T/src/held"
echo other >"$T/src/sub/other"
publish pkg 1.0 "$T/src"
DATA=$(sha256sum <"$T/src/data" | cut -d' ' -f1)
HELD=$(sha256sum <"$T/src/held" | cut -d' ' -f1)

start_nginx "$REPO"
FREEZE_URL=$NGINX_URL
start_nginx "$REPO"
OFF_URL=$NGINX_URL
OFF_DIR=$NGINX_DIR

A=$T/mnt-a B=$T/mnt-b C=$T/mnt-c
mount_storkfs "$A" "store=$T/store-a,timeout=5,refresh=3600,max_stale=${GRACE}s" "$FREEZE_URL"
LOGS[$A]=$SFS_LOG PIDS[$A]=$SFS_PID
mount_storkfs "$B" "store=$T/store-b,timeout=5,refresh=1,max_stale=${GRACE}s" "$OFF_URL"
LOGS[$B]=$SFS_LOG PIDS[$B]=$SFS_PID
mount_storkfs "$C" "store=$T/store-c,timeout=5,refresh=1,max_stale=0" "$FREEZE_URL"
LOGS[$C]=$SFS_LOG PIDS[$C]=$SFS_PID

# The expiry: the earliest of the trusted roles' (the timestamp's and snapshot's, EXP s after
# publishing).
EXPIRES=$(status "$A" expires)
E=$(date -u -d "$EXPIRES" +%s)
STOP=$((E + GRACE))
[ $((E - $(date +%s))) -ge 4 ] || fail "setup took too long: the metadata expires at $EXPIRES already (raise EXP)"
for m in "$A" "$B" "$C"; do
	open_is "$m" "ok $DATA" "fresh"
	[ "$(status "$m" stale)" = false ] && [ "$(status "$m" serving)" = true ] ||
		fail "fresh: $m's status is not stale=false serving=true: $(xattr "$m" user.storkfs.status)"
done
[ "$(status "$A" serving_until)" = "$(iso "$STOP")" ] ||
	fail "fresh: A's serving_until is $(status "$A" serving_until), want $(iso "$STOP") (expires + max_stale)"
[ "$(status "$C" serving_until)" = "$EXPIRES" ] || fail "fresh: C (max_stale=0) serves until $(status "$C" serving_until), want $EXPIRES"
[ "$(status "$A" max_stale)" = "$GRACE" ] || fail "A's status says max_stale $(status "$A" max_stale), want $GRACE"
pass "fresh: all three mounts serve and say when they would stop (expires $EXPIRES)"

# A reader holds pkg/1.0/held open on A across the end of the grace: it reads half now, the
# rest when told (its page cache dropped first, so the reads reach the daemon).
python3 -c 'import hashlib, os, sys, time
f = open(sys.argv[1], "rb")
h = hashlib.sha256(f.read(1000000))
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
h.update(f.read())
print(h.hexdigest())' "$A/pkg/1.0/held" "$T/held.half" "$T/held.go" >"$T/held.out" 2>"$T/held.err" &
HELD_PID=$!
for _ in $(seq 300); do
	[ -e "$T/held.half" ] && break
	sleep 0.1
done
[ -e "$T/held.half" ] || fail "the reader did not open and read half of A's pkg/1.0/held"
stop_nginx "$OFF_DIR"

# --- Expired, within the grace ------------------------------------------------------------
sleep_until "$E"
[ "$(date +%s)" -lt "$STOP" ] || fail "setup took too long: the grace has ended already"
for m in "$A" "$B"; do
	open_is "$m" "ok $DATA" "stale within the grace"
	list_is "$m/pkg/1.0" "ok data,held,sub" "stale within the grace"
	run "$STORK" status --json "$m"
	out_has "$m: status within the grace" '"stale": true' '"serving": true' \
		"\"stale_since\": \"$EXPIRES\"" "\"serving_until\": \"$(iso "$STOP")\""
done
[ "$(date +%s)" -lt "$STOP" ] || fail "too slow: the checks within the grace ended after it (raise GRACE)"
pass "within the grace: A (frozen mirror) and B (offline) keep serving and their status says stale since $EXPIRES, serving until $(iso "$STOP")"
run "$STORK" status "$A"
[ "$RC" -eq 0 ] || fail "stork status $A exited $RC"
out_has "stork status: a STALE line with the expiry and the deadline" "STALE" "expired at $EXPIRES" "still served until $(iso "$STOP")" "max_stale=${GRACE}s"
for m in "$A" "$B"; do
	wait_log "${LOGS[$m]}" "stops serving at $(iso "$STOP")" 5
	grep -F "metadata expired at $EXPIRES" "${LOGS[$m]}" | grep -F "stops serving at $(iso "$STOP")" |
		grep -qF "last refresh failed:" || fail "$m's log has no line with the expiry, the deadline and the failed refresh: $(tail -5 "${LOGS[$m]}")"
done
grep -F "metadata expired at $EXPIRES" "${LOGS[$A]}" | matches -E "last refresh failed: .*metadata/timestamp.json: role timestamp expired" ||
	fail "A (frozen mirror): the log does not name the expired timestamp as the refresh's failure: $(tail -3 "${LOGS[$A]}")"
pass "within the grace: the logs say when the metadata expired, when the mount stops serving and why the refresh failed"
# C (max_stale=0) stopped at the expiry itself.
open_is "$C" "$EXPIRED" "max_stale=0 after the expiry"
[ "$(status "$C" serving)" = false ] || fail "C (max_stale=0): status still says serving"
wait_log "${LOGS[$C]}" "NOT SERVING since $EXPIRES" 5
pass "max_stale=0: the mount stops serving as soon as its metadata expires (EKEYEXPIRED)"

# --- Past the grace -----------------------------------------------------------------------
sleep_until "$STOP"
for m in "$A" "$B"; do
	open_is "$m" "$EXPIRED" "past the grace"
	list_is "$m" "$EXPIRED" "past the grace"
	list_is "$m/pkg/1.0" "$EXPIRED" "past the grace"
	[[ $(try_open "$m/pkg/1.0/sub/other") == "error "*"$EXPIRED" ]] ||
		fail "past the grace: a path never looked up: $(try_open "$m/pkg/1.0/sub/other")"
	stat "$m" >/dev/null || fail "past the grace: stat of the root $m fails"
	[ "$(status "$m" serving)" = false ] || fail "past the grace: $m's status still says serving"
	[ "$(status "$m" stale)" = true ] || fail "past the grace: $m's status does not say stale"
	[ -n "$(xattr "$m" user.storkfs.repository)" ] || fail "past the grace: $m's repository xattr is empty"
done
# The errno itself, as a program sees it.
[ "$(python3 -c 'import errno, sys
try:
    open(sys.argv[1], "rb")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))' "$A/pkg/1.0/data")" = EKEYEXPIRED ] ||
	fail "past the grace: open() does not fail with EKEYEXPIRED"
pass "past the grace: opens, listings and lookups fail with EKEYEXPIRED on A and B; stat and xattrs of the root still answer"
touch "$T/held.go"
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
wait "$HELD_PID" || fail "the reader holding pkg/1.0/held failed: $(cat "$T/held.err")"
[ "$(cat "$T/held.out")" = "$HELD" ] || fail "the file held open across the grace read $(cat "$T/held.out"), want $HELD"
pass "past the grace: a file opened before keeps reading its correct bytes"
run "$STORK" status "$A"
[ "$RC" -eq 0 ] || fail "stork status $A exited $RC"
out_has "stork status past the grace says why and what to do" "NOT SERVING" "expired at $EXPIRES" \
	"max_stale=${GRACE}s" "$EXPIRED" "stork repo refresh" "max_stale" "kill -HUP ${PIDS[$A]}"
[ "$(refused "$A")" -gt 0 ] || fail "A's counters do not count the refused calls"
for m in "$A" "$B"; do
	wait_log "${LOGS[$m]}" "NOT SERVING since $(iso "$STOP")" 5
	grep -F "NOT SERVING since" "${LOGS[$m]}" | grep -F "stork repo refresh" | matches -F "max_stale" ||
		fail "$m's log does not say what to do"
done
grep -F "NOT SERVING since" "${LOGS[$B]}" | matches -iE "offline|connect|refused" ||
	fail "B's log does not say its mirror cannot be reached: $(grep -F 'NOT SERVING' "${LOGS[$B]}" | tail -1)"
pass "past the grace: the logs say the mount stopped serving, why, and what to do"

# --- Recovery -----------------------------------------------------------------------------
run "$STORK" repo refresh "$REPO" --keys "$KEYS"
[ "$RC" -eq 0 ] || fail "stork repo refresh: $ERR"
nginx -p "$OFF_DIR" -c "$OFF_DIR/nginx.conf" -e "$OFF_DIR/error.log" || fail "restarting B's nginx"
kill -HUP "${PIDS[$A]}"
for m in "$A" "$B" "$C"; do
	ok=
	for _ in $(seq 100); do
		[ "$(try_open "$m/pkg/1.0/data")" = "ok $DATA" ] && ok=1 && break
		sleep 0.1
	done
	[ -n "$ok" ] || {
		tail -5 "${LOGS[$m]}" >&2
		fail "recovery: $m does not serve again within 10 s of the repository's refresh"
	}
	list_is "$m" "ok pkg" "recovery"
	[ "$(status "$m" stale)" = false ] && [ "$(status "$m" serving)" = true ] ||
		fail "recovery: $m's status is not stale=false serving=true"
	wait_log "${LOGS[$m]}" "serving again" 5
done
pass "recovery: after stork repo refresh (and B's mirror back, A's SIGHUP) every mount serves again by itself"
run "$STORK" status "$A"
! grep -qE "STALE|NOT SERVING" "$T/out" || fail "recovery: stork status still says stale: $OUT"
pass "recovery: stork status no longer says stale"

for m in "$A" "$B" "$C"; do
	unmount_storkfs "$m" "${PIDS[$m]}"
done
pass "the three daemons exit cleanly"
done_ok
