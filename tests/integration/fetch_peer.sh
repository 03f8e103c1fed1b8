#!/usr/bin/env bash
# Peers: another node's store served by nginx with contrib/nginx-peer.conf (objects/ only).
#
#  1. node A extracts from the mirror; its store is exposed as a peer (the index, tmp/ and mode
#     variants are not served);
#  2. node B extracts with --peer A: every object and the package manifest (an object of A's
#     store under its signed hash) come from the peer (its access log), none from the mirror;
#     B's store is clean;
#  3. objects the peer lacks (404) come from the mirror with no back-off and no complaint, and
#     so does a manifest the peer lacks;
#  4. a peer that corrupts one object (the fault server in front of A's store) is skipped and
#     named in the log, that object comes from the mirror, and the store is clean;
#  5. a peer that is down costs no more than a refused connection: the mirror serves at once.
. "$(dirname "$0")/lib.sh"

need python3 nginx curl

# start_peer STOREDIR and peer_requests REGEX: tests/integration/lib.sh.

make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
synth_tree "$T/src2" 2
publish synth 2.0 "$T/src2"
nobj=$(manifest_hashes synth 1.0 | cut -d' ' -f1 | sort -u | wc -l)
# the manifests' objects: a node keeps each manifest under its signed hash too
mh1=$(basename "$(manifest_file synth 1.0)")
mh1=${mh1:0:64}
mh2=$(basename "$(manifest_file synth 2.0)")
mh2=${mh2:0:64}
start_nginx "$REPO"

# --- 1. node A
extract_ok "node A extracts from the mirror" --store "$T/A" "$NGINX_URL" synth 1.0 "$T/dA"
start_peer "$T/A"
read -r h1 _ _ < <(manifest_hashes synth 1.0 | head -n 1)
[ "$(curl -s -o /dev/null -w '%{http_code}' "$PEER_URL$(object_path "$h1")")" = 200 ] ||
	fail "the peer does not serve $(object_path "$h1")"
for p in index/data.mdb tmp/ "$(object_path "$h1").755" objects/ ""; do
	code=$(curl -s -o /dev/null -w '%{http_code}' "$PEER_URL$p")
	[ "$code" = 404 ] || fail "the peer serves /$p (HTTP $code): only objects/ab/<hex> may be"
done
pass "the peer serves objects/ab/<hex> and nothing else of the store"
: >"$PEER_DIR/access.log"

# --- 2. node B: all from the peer
before=$(nginx_requests '"GET /objects/')
extract_ok "node B extracts with A as its peer" --store "$T/B" --peer "$PEER_URL" "$NGINX_URL" \
	synth 1.0 "$T/dB"
check "B's tree is identical to its source" compare_tree "$T/src" "$T/dB"
[ "$(peer_requests '"GET /objects/[^ ]* HTTP/1.1" 200 ')" -eq $((nobj + 1)) ] ||
	fail "the peer served $(peer_requests ' 200 ') objects, want $nobj and the manifest"
[ "$(peer_requests "\"GET /$(object_path "$mh1") HTTP/1.1\" 200 ")" -eq 1 ] ||
	fail "the peer did not serve the manifest $(object_path "$mh1")"
[ "$(nginx_requests '"GET /objects/')" -eq "$before" ] || fail "the mirror was asked for objects"
[ "$(nginx_requests "\"GET /targets/synth/$mh1.1.0.json ")" -eq 1 ] ||
	fail "the mirror was asked for the manifest B got from the peer (or A never asked)"
pass "every object ($nobj) and the manifest came from the peer, none from the mirror"
[ "$(peer_requests 'metadata')" -eq 0 ] || fail "metadata was asked of the peer"
pass "metadata came from the mirror only"
fsck_clean "B's store is clean" "$T/B"
check "B's stored objects hold the content their names hash" store_hashes_ok "$T/B"

# --- 3. what the peer lacks comes from the mirror, without back-off or complaint
before=$(nginx_requests '"GET /objects/')
extract_ok "node B extracts synth 2.0, partly new to the peer" --store "$T/B" --peer "$PEER_URL" \
	"$NGINX_URL" synth 2.0 "$T/dB2"
check "the tree is identical to its source" compare_tree "$T/src2" "$T/dB2"
[ "$(peer_requests "\"GET /$(object_path "$mh2") HTTP/1.1\" 404 ")" -eq 1 ] ||
	fail "the peer was not asked for the synth 2.0 manifest it lacks"
[ "$(nginx_requests "\"GET /targets/synth/$mh2.2.0.json ")" -eq 1 ] ||
	fail "the synth 2.0 manifest the peer lacks did not come from the mirror"
n404=$(($(peer_requests '"GET /objects/[^ ]* HTTP/1.1" 404 ') - 1))
[ "$n404" -ge 1 ] || fail "the peer was not asked for the objects it lacks"
[ "$(($(nginx_requests '"GET /objects/') - before))" -eq "$n404" ] ||
	fail "the mirror did not serve exactly the $n404 objects the peer lacks"
! grep -q 'skipping' "$T/err" || fail "a peer lacking an object was treated as a failure: $ERR"
pass "the $n404 objects the peer lacks came from the mirror, no back-off, no complaint"

# --- 4. a peer that corrupts one object
start_faultserver "$T/A"
read -r hbad _ _ < <(manifest_hashes synth 1.0 | grep ' usr/share/doc/pkg/random.bin$')
pbad=$(object_path "$hbad")
fault_set "[{\"match\": \"^/$pbad\$\", \"fault\": \"corrupt\"}]"
before=$(nginx_requests "\"GET /$pbad ")
extract_ok "node C extracts with a lying peer" --store "$T/C" --peer "$FAULT_URL/" "$NGINX_URL" \
	synth 1.0 "$T/dC"
check "C's tree is identical to its source" compare_tree "$T/src" "$T/dC"
grep -F "peer $FAULT_URL/: $pbad" "$T/err" | matches 'hash mismatch; skipping this peer for 300 s' || {
	_show_run
	fail "the log does not name the lying peer, the object and the hash mismatch"
}
pass "the log names the lying peer, the object and what it did"
[ "$(nginx_requests "\"GET /$pbad ")" -eq $((before + 1)) ] || fail "the mirror did not serve $pbad"
pass "the object the peer corrupted came from the mirror"
fsck_clean "C's store is clean" "$T/C"
check "C's stored objects hold the content their names hash" store_hashes_ok "$T/C"
stop_faultserver

# --- 5. a peer that is down
free_port
t0=$(date +%s)
extract_ok "node D extracts with its peer down" --store "$T/D" --peer "http://127.0.0.1:$FREE_PORT/" \
	"$NGINX_URL" synth 1.0 "$T/dD"
t1=$(date +%s)
check "D's tree is identical to its source" compare_tree "$T/src" "$T/dD"
[ $((t1 - t0)) -le 5 ] || fail "a down peer cost $((t1 - t0)) s"
grep -F "peer http://127.0.0.1:$FREE_PORT/" "$T/err" | matches 'connection refused' || {
	_show_run
	fail "the log does not say that the peer refused"
}
[ "$(grep -cF "peer http://127.0.0.1:$FREE_PORT/" "$T/err")" -eq 1 ] ||
	fail "the down peer was asked more than once (its back-off)"
pass "a down peer is named once, skipped, and costs no wait ($((t1 - t0)) s)"
done_ok
