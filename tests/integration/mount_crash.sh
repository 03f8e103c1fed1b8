#!/usr/bin/env bash
# kill -9 of the storkfs daemon while 8 readers stream. Package "big" 1.0 holds 3 MB files
# of random bytes; each round mounts the store fresh and starts 8 readers at once, each on
# its own file: 4 files already in the store (read slowly, 64 kB every 100 ms) and 4 that are
# not (their objects trickle from a fault server at 1 MB/s, so their opens are still
# fetching). At a random moment from the seed (0.3 to 2.3 s after all 8 are about to open),
# the daemon gets SIGKILL.
# Then: every reader ends (bounded by `timeout 30`: a hang fails the test) with either the
# file's right bytes or an error (ENOTCONN, ECONNABORTED or EIO), never wrong bytes, and at
# least one with an error (the kill landed mid-stream); the dead mount answers ENOTCONN;
# `fusermount3 -u -z` clears it; `stork fsck` finds the store clean and every stored object
# holds what its name hashes; a remount with the same store reads every file of the round
# with the right bytes. At the end a last mount reads every file of the package. Every mount
# also serves a slice (-o slices=, fs/README.md "Slices") whose policy accepts everything: in
# the even rounds the 8 readers read through /.slices/s/ (and so does the remount after).
. "$(dirname "$0")/lib.sh"

need python3
need_fuse

ROUNDS=${STORK_CRASH_ROUNDS:-4}
SIZE=3000000
NFILES=$((4 + 4 * ROUNDS))

make_repo
mkdir -p "$T/src/data"
python3 -c 'import random, sys
for i in range(int(sys.argv[2])):
    with open("%s/data/f%02d" % (sys.argv[1], i), "wb") as f:
        f.write(random.Random(1000 + i).randbytes(int(sys.argv[3])))' "$T/src" "$NFILES" "$SIZE"
publish big 1.0 "$T/src" --quiet
(cd "$T/src" && sha256sum data/*) | sed 's/  / /' >"$T/want.sums"
start_faultserver "$REPO"
TRICKLE='[{"match": "^/objects/", "fault": "trickle", "rate": 1000000}]'
MNT=$T/mnt
STORE=$T/store
mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"
VIEW=

want_sum() {
	awk -v f="data/$1" '$2 == f { print $1 }' "$T/want.sums"
}

# read_all DESC FILE...: every FILE of big 1.0 (names in data/) reads its right bytes through
# $MNT now (no fault, 8 at a time).
read_all() {
	local desc=$1 f
	shift
	printf '%s\n' "$@" | timeout -k 5 120 xargs -P 8 -I{} sha256sum "$MNT$VIEW/big/1.0/data/{}" \
		>"$T/got.raw" || fail "$desc: reading the files failed or took over 120 s"
	sed "s|  $MNT$VIEW/big/1.0/| |" "$T/got.raw" | sort -k2 >"$T/got.sums"
	for f in "$@"; do
		echo "$(want_sum "$f") data/$f"
	done | sort -k2 >"$T/exp.sums"
	if ! diff -u "$T/exp.sums" "$T/got.sums" >"$T/sums.diff"; then
		cat "$T/sums.diff" >&2
		fail "$desc: files read with the wrong bytes"
	fi
}

# warm-up: the first 4 files are in the store before round 1
mount_storkfs "$MNT" "store=$STORE,timeout=60,slices=$T/slices" "$FAULT_URL"
stored=(f00 f01 f02 f03)
read_all "warm-up" "${stored[@]}"
unmount_storkfs "$MNT"
next=4
errors_seen=0

for round in $(seq "$ROUNDS"); do
	# 4 stored files chosen from the seed, 4 never read
	files=()
	pool=("${stored[@]}")
	for _ in 1 2 3 4; do
		rand ${#pool[@]}
		files+=("${pool[$R]}")
		pool=("${pool[@]:0:$R}" "${pool[@]:$((R + 1))}")
	done
	new=()
	for _ in 1 2 3 4; do
		new+=("$(printf 'f%02d' "$next")")
		next=$((next + 1))
	done
	files+=("${new[@]}")
	rand 2000
	delay=$((300 + R))
	VIEW=
	[ $((round % 2)) -eq 1 ] || VIEW=/.slices/s
	what="round $round${VIEW:+ through slice s} (cached ${files[*]:0:4}; uncached ${new[*]}; kill after $delay ms)"
	echo "# $what"

	fault_set "$TRICKLE"
	mount_storkfs "$MNT" "store=$STORE,timeout=60,slices=$T/slices" "$FAULT_URL"
	pids=()
	rm -f "$T"/ready.*
	for i in "${!files[@]}"; do
		# a slow reader (64 kB every 100 ms), READY made just before its open
		read_hash 30 "$MNT$VIEW/big/1.0/data/${files[$i]}" 100 "$T/ready.$i" >"$T/reader.$i" 2>&1 &
		pids+=($!)
	done
	# the kill moment counts from when all 8 readers are about to open their files
	for _ in $(seq 300); do
		[ "$(find "$T" -maxdepth 1 -name 'ready.*' | wc -l)" -lt 8 ] || break
		sleep 0.1
	done
	[ "$(find "$T" -maxdepth 1 -name 'ready.*' | wc -l)" -eq 8 ] || fail "$what: the 8 readers did not start within 30 s"
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -KILL "$SFS_PID"
	set +e
	{ wait "$SFS_PID"; } 2>/dev/null
	rc=$?
	set -e
	[ "$rc" -eq 137 ] || fail "$what: the daemon exited $rc before the kill"

	errs=0
	for i in "${!pids[@]}"; do
		set +e
		wait "${pids[$i]}"
		rc=$?
		set -e
		out=$(cat "$T/reader.$i")
		[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] ||
			fail "$what: the reader of ${files[$i]} hung after the kill (killed by its 30 s bound)"
		[ "$rc" -eq 0 ] || fail "$what: the reader of ${files[$i]} exited $rc: $out"
		case $out in
		"ok $(want_sum "${files[$i]}")") ;;
		"errno 107" | "errno 103" | "errno 5") errs=$((errs + 1)) ;;
		*) fail "$what: the reader of ${files[$i]} got '$out', want the right bytes or ENOTCONN/ECONNABORTED/EIO" ;;
		esac
		echo "#   ${files[$i]}: $out"
	done
	[ "$errs" -ge 1 ] || fail "$what: every reader finished before the kill: the kill was not mid-stream"
	errors_seen=$((errors_seen + errs))

	got=$(timeout 10 stat "$MNT" 2>&1 >/dev/null || true)
	case $got in
	*"Transport endpoint is not connected"*) ;;
	*) fail "$what: stat of the dead mount says '$got', want ENOTCONN (Transport endpoint is not connected)" ;;
	esac
	timeout 30 fusermount3 -u -z "$MNT" || fail "$what: fusermount3 -u -z $MNT failed"
	! is_mounted "$MNT" || fail "$what: $MNT is still mounted after fusermount3 -u -z"

	run "$STORK" fsck "$STORE"
	if [ "$RC" -ne 0 ] || ! grep -qxF "$STORE: clean" "$T/out" || [ -s "$T/err" ]; then
		_show_run
		fail "$what: stork fsck does not find the store clean"
	fi
	store_hashes_ok "$STORE" || fail "$what: a stored object does not hold what its name hashes"

	fault_set '[]'
	mount_storkfs "$MNT" "store=$STORE,timeout=60,slices=$T/slices" "$FAULT_URL"
	read_all "$what: after a remount" "${files[@]}"
	unmount_storkfs "$MNT"
	stored+=("${new[@]}")
	pass "$what: no reader hung or got wrong bytes ($errs errors), the dead mount cleared, fsck clean, every file reads after a remount"
done
VIEW=
pass "$ROUNDS kills mid-stream: $errors_seen reads ended in an error, none hung, none read wrong bytes"

mount_storkfs "$MNT" "store=$STORE,timeout=60,slices=$T/slices" "$FAULT_URL"
all=()
for i in $(seq 0 $((NFILES - 1))); do
	all+=("$(printf 'f%02d' "$i")")
done
read_all "the last mount" "${all[@]}"
pass "after all the kills, every file of the package reads its right bytes"
unmount_storkfs "$MNT"
fsck_clean "stork fsck finds the store clean at the end" "$STORE"
check "every stored object holds the content its name hashes at the end" store_hashes_ok "$STORE"
stop_faultserver
done_ok
