#!/usr/bin/env bash
# Caching proxies in front of the mirror: two real squids (Debian's) and nginx.
#
#  1. `--proxy 'P1|P2;DIRECT'` with both squids up: every object comes through a squid (their
#     access logs), once each, from both (load balancing); a node after a node through one
#     squid is served from its cache, versioned metadata too, while metadata/timestamp.json
#     still goes to the origin (Cache-Control: no-cache);
#  2. the first squid killed: the second one serves everything, the log names the first one
#     and its back-off;
#  3. both killed: DIRECT (nginx's log grows, the squids' logs do not), the log names both;
#  4. the back-off expires within one run: P1 down when a mount starts reading file by file
#     (the origin delays each object by 0.4 s), restarted a moment later; with proxy_retry=2
#     the same mount goes back to P1 after 2 s (P1's access log shows objects of that run).
. "$(dirname "$0")/lib.sh"

need python3 nginx squid
need_fuse

make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
mkdir -p "$T/many/d"
for i in $(seq 1 16); do rnd "$((100 + i))" 3000 >"$T/many/d/f$i"; done
publish many 1.0 "$T/many"
nobj=$(manifest_hashes synth 1.0 | cut -d' ' -f1 | sort -u | wc -l)

# The repository's files look published a second ago, and the last node below comes 3 s after
# the first fetches: a squid that takes Last-Modified's age as freshness (refresh_pattern without
# override-lastmod, fetch/README.md "Caching") would revalidate at the origin then. This used to
# depend on whether publishing and the first fetch fell in the same second (1 run in 5 failed).
find "$REPO" -type f -exec touch -d "@$(($(date +%s) - 1))" {} +
start_nginx "$REPO"
free_port
P1=$FREE_PORT
free_port
P2=$FREE_PORT
start_squid 1 "$P1"
start_squid 2 "$P2"
PROXY1=http://127.0.0.1:$P1
PROXY2=http://127.0.0.1:$P2
CHAIN="$PROXY1|$PROXY2;DIRECT"

# --- 1. both up
extract_ok "synth extracts through two squids" --store "$T/s1" --proxy "$CHAIN" "$NGINX_URL" \
	synth 1.0 "$T/d1"
check "the tree is identical to its source" compare_tree "$T/src" "$T/d1"
through=$(($(squid_objects 1) + $(squid_objects 2)))
[ "$through" -eq "$nobj" ] || fail "the squids saw $through object requests, want $nobj"
pass "every object came through a squid, once ($nobj)"
[ "$(nginx_requests '"GET /objects/')" -eq "$nobj" ] || fail "nginx did not get each object once from the squids"
pass "nginx served each object once (to the squids)"
[ ! -s "$T/err" ] || ! grep -q 'skipping' "$T/err" || fail "a proxy was skipped with both up: $ERR"

# Two more nodes through squid1 alone (balancing spreads one node's objects over both caches):
# the first fills squid1's cache, the second is served from it, and timestamp.json is still
# revalidated at the origin.
extract_ok "a node extracts through squid1" --store "$T/s1b" --proxy "$PROXY1" "$NGINX_URL" \
	synth 1.0 "$T/d1b"
before=$(nginx_requests '"GET /objects/')
mark=$(wc -l <"$T/squid1/access.log")
sleep 3
extract_ok "another node extracts through the warm squid1" --store "$T/s1c" --proxy "$PROXY1" \
	"$NGINX_URL" synth 1.0 "$T/d1c"
[ "$(nginx_requests '"GET /objects/')" -eq "$before" ] ||
	fail "the last node's objects reached nginx: squid1 did not cache them"
pass "the last node's objects were all served from squid1's cache"
# exactly the last node's requests (a fixed window of lines could cut its first ones off)
tail -n +"$((mark + 1))" "$T/squid1/access.log" >"$T/last.log"
grep -E '/metadata/[0-9]+\.snapshot\.json' "$T/last.log" | matches 'HIT' ||
	fail "versioned metadata was not a cache hit (the test's squid does not cache metadata): $(cat "$T/last.log")"
grep -F '/metadata/timestamp.json' "$T/last.log" | matches 'MISS' &&
	! grep -F '/metadata/timestamp.json' "$T/last.log" | matches 'HIT' ||
	fail "timestamp.json was served from squid1's cache: $(grep timestamp "$T/last.log")"
pass "metadata/timestamp.json goes to the origin (Cache-Control: no-cache) while N.snapshot.json is a hit"

# --- 2. the first squid down
stop_squid 1
n1=$(squid_objects 1)
n2=$(squid_objects 2)
extract_ok "with squid1 down, synth extracts" --store "$T/s2" --proxy "$CHAIN" "$NGINX_URL" \
	synth 1.0 "$T/d2"
check "the tree is identical to its source" compare_tree "$T/src" "$T/d2"
[ "$(squid_objects 2)" -eq $((n2 + nobj)) ] || fail "squid2 did not serve all $nobj objects"
[ "$(squid_objects 1)" -eq "$n1" ] || fail "squid1's log grew while it was down"
pass "the second squid of the group served every object"
grep -F "via proxy $PROXY1" "$T/err" | matches 'skipping this proxy for 300 s' || {
	_show_run
	fail "the log does not name the dead proxy and its back-off"
}
pass "the log names $PROXY1 and its 300 s back-off"

# --- 3. both down: DIRECT
stop_squid 2
n2=$(squid_objects 2)
before=$(nginx_requests '"GET /objects/')
extract_ok "with both squids down, synth extracts DIRECT" --store "$T/s3" --proxy "$CHAIN" \
	"$NGINX_URL" synth 1.0 "$T/d3"
check "the tree is identical to its source" compare_tree "$T/src" "$T/d3"
[ "$(nginx_requests '"GET /objects/')" -eq $((before + nobj)) ] || fail "nginx did not serve the objects directly"
[ "$(squid_objects 2)" -eq "$n2" ] && [ "$(squid_objects 1)" -eq "$n1" ] || fail "a dead squid's log grew"
pass "DIRECT: nginx served every object, the squids' logs did not grow"
grep -qF "via proxy $PROXY1" "$T/err" && grep -qF "via proxy $PROXY2" "$T/err" || {
	_show_run
	fail "the log does not name both dead proxies"
}
pass "the log names both dead proxies"
fsck_clean "the DIRECT store is clean" "$T/s3"

# --- 4. the back-off expires within one run: a mount that reads the files one by one (stork
# extract fetches a version's objects at once, 32 transfers and the version pack, so the run
# would be over before the back-off is)
start_faultserver "$REPO"
fault_set '[{"match": "^/objects/", "fault": "delay", "seconds": 0.4}]'
nmany=$(manifest_hashes many 1.0 | cut -d' ' -f1 | sort -u | wc -l)
: >"$T/squid1/access.log"
mount_storkfs "$T/mnt4" "store=$T/s4,timeout=60,proxy=$PROXY1;DIRECT,proxy_retry=2" "$FAULT_URL"
(
	rc=0
	for i in $(seq 1 16); do
		cmp -s "$T/mnt4/many/1.0/d/f$i" "$T/many/d/f$i" || rc=1
	done
	echo "$rc" >"$T/rc4"
) &
bg=$!
sleep 1.5
start_squid 1 "$P1"
wait "$bg"
[ "$(cat "$T/rc4")" -eq 0 ] || {
	cat "$SFS_LOG" >&2
	fail "reading many 1.0 through a restarted proxy gave wrong bytes or errors"
}
pass "many 1.0 reads right, file by file, while its proxy comes back"
grep -qF "via proxy $PROXY1" "$SFS_LOG" && grep -q 'skipping this proxy for 2 s' "$SFS_LOG" ||
	fail "the mount did not find $PROXY1 down at first: $(cat "$SFS_LOG")"
back=$(squid_objects 1)
[ "$back" -ge 1 ] && [ "$back" -lt "$nmany" ] ||
	fail "after its 2 s back-off the proxy served $back of $nmany objects (want some, not all)"
pass "after the 2 s back-off the same mount went back to the proxy ($back of $nmany objects)"
unmount_storkfs "$T/mnt4"
fsck_clean "the store is clean" "$T/s4"
stop_squid 1
stop_faultserver
done_ok
