#!/usr/bin/env bash
# Mirror failover. Three mirrors: the first refuses connections, the second (the fault server)
# serves a corrupted object and a truncated object, the third (nginx) is good. The extract
# succeeds from the third; the log names the refusing mirror, the second mirror and the bad
# object it met; nothing corrupt reaches the store (fsck, and every stored object re-hashed).
#
# A mirror that fails is skipped for the rest of the run; transfers already under way when it
# failed may still meet its other bad object. Two packages hold the same two files in opposite
# order, so that each bad object is met first in one of the runs. Then every
# other kind of broken answer (reset, empty reply, HTTP 404/500/503, extra bytes) fails over
# too.
. "$(dirname "$0")/lib.sh"

need python3 nginx
make_repo
mkdir -p "$T/fwd/d" "$T/rev/d"
rnd 1 200000 >"$T/fwd/d/a"
rnd 2 200000 >"$T/fwd/d/b"
rnd 3 5000 >"$T/fwd/d/c"
cp "$T/fwd/d/a" "$T/rev/d/b"
cp "$T/fwd/d/b" "$T/rev/d/a"
cp "$T/fwd/d/c" "$T/rev/d/c"
publish fwd 1.0 "$T/fwd"
publish rev 1.0 "$T/rev"
read -r o_corrupt _ _ < <(manifest_hashes fwd 1.0 | grep ' d/a$')
read -r o_trunc _ _ < <(manifest_hashes fwd 1.0 | grep ' d/b$')
p_corrupt=$(object_path "$o_corrupt")
p_trunc=$(object_path "$o_trunc")

start_nginx "$REPO"
start_faultserver "$REPO"
free_port
refusing=http://127.0.0.1:$FREE_PORT
fault_set "[{\"match\": \"$o_corrupt\", \"fault\": \"corrupt\"},
	{\"match\": \"$o_trunc\", \"fault\": \"truncate\"}]"
echo "# mirrors: $refusing (refuses), $FAULT_URL (corrupts $p_corrupt, truncates $p_trunc), $NGINX_URL (good)"

# three_mirrors PKG BAD_PATH WHAT OTHER_PATH OTHER_WHAT: extract PKG from the three mirrors into a
# fresh store; the second mirror spoils BAD_PATH (the log saying WHAT) or, when that transfer
# started later, OTHER_PATH (OTHER_WHAT), and is asked for no object twice.
three_mirrors() {
	local pkg=$1 bad=$2 what=$3 other=$4 other_what=$5 nobj
	: >"$FAULT_DIR/access.log"
	extract_ok "$pkg 1.0 extracts from [refusing, lying, good] mirrors" --store "$T/store-$pkg" \
		"$refusing" "$FAULT_URL" "$NGINX_URL" "$pkg" 1.0 "$T/dest-$pkg"
	check "$pkg 1.0 is identical to its source" compare_tree "$T/$pkg" "$T/dest-$pkg"
	grep -F "$refusing" "$T/err" | matches 'refused' || {
		_show_run
		fail "$pkg: the log does not say that $refusing refused the connection"
	}
	pass "$pkg: the log names the first mirror and that it refused"
	# Extract fetches like prefetch, many objects at once: whichever spoiled object the
	# second mirror delivered first is the lie the log names (and the mirror is skipped from
	# then on); the objects before it in the manifest come first, so usually BAD_PATH.
	{ grep -F "$FAULT_URL" "$T/err" | grep -F "$bad" | matches "$what"; } ||
		{ grep -F "$FAULT_URL" "$T/err" | grep -F "$other" | matches "$other_what"; } || {
		_show_run
		fail "$pkg: no log line names the second mirror and one of its lies ($bad: '$what', $other: '$other_what')"
	}
	pass "$pkg: the log names the second mirror and a spoiled object"
	# The transfers that reached the second mirror before its first lie was known may each
	# have asked it once, no more.
	nobj=$(fault_requests '^GET /objects/')
	[ "$nobj" -ge 1 ] && [ "$nobj" -le 3 ] && [ "$(fault_requests "^GET /$bad ")" -le 1 ] &&
		[ "$(fault_requests "^GET /$other ")" -le 1 ] ||
		fail "$pkg: the lying mirror got $nobj object requests: $(grep objects "$FAULT_DIR/access.log")"
	pass "$pkg: the second mirror was asked for each object at most once"
	fsck_clean "$pkg: stork fsck finds the store clean" "$T/store-$pkg"
	check "$pkg: every stored object holds the content its name hashes" store_hashes_ok "$T/store-$pkg"
}
three_mirrors fwd "$p_corrupt" "hash mismatch" "$p_trunc" "truncated"
three_mirrors rev "$p_trunc" "truncated" "$p_corrupt" "hash mismatch"
[ "$(nginx_requests "GET /$p_corrupt ")" -eq 2 ] && [ "$(nginx_requests "GET /$p_trunc ")" -eq 2 ] ||
	fail "the good mirror did not serve both bad objects in both runs"
pass "the good mirror served both objects the second mirror spoiled"

# --- every other kind of broken answer, one at a time: [broken, good]
i=0
for rule in '"fault": "reset"' '"fault": "refuse"' '"fault": "status", "status": 404' \
	'"fault": "status", "status": 500' '"fault": "status", "status": 503' \
	'"fault": "extra", "bytes": 100000' '"fault": "corrupt", "offset": 0' \
	'"fault": "truncate", "bytes": 0'; do
	i=$((i + 1))
	fault_set "[{\"match\": \"^/$p_corrupt\$\", $rule}]"
	extract_ok "[$rule, good]: fwd extracts" --store "$T/store-k$i" "$FAULT_URL" "$NGINX_URL" \
		fwd 1.0 "$T/dest-k$i"
	compare_tree "$T/fwd" "$T/dest-k$i" || fail "[$rule, good]: not identical"
	grep -F "$FAULT_URL" "$T/err" | matches -F "$p_corrupt" || {
		_show_run
		fail "[$rule, good]: the log does not name the mirror and the object"
	}
	run "$STORK" fsck "$T/store-k$i"
	[ "$RC" -eq 0 ] || fail "[$rule, good]: fsck is not clean: $ERR"
	pass "[$rule, good]: identical, the mirror and object named, store clean"
done
stop_faultserver
done_ok
