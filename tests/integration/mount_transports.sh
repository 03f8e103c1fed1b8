#!/usr/bin/env bash
# The transport chain through a storkfs mount (-o proxy=, peer=, exec=, low_speed_time=):
#
#  0. bad transport options are refused before mounting, naming the option and what it wants;
#  1. proxy=DEAD;SQUID (no DIRECT): the first proxy refuses, a real squid serves every object,
#     the files read their genuine bytes; `stork status` lists both proxies (kind, latency,
#     the dead one's last error);
#  2. peer=DEAD,peer=NODE_A (A's store behind nginx with contrib/nginx-peer.conf): the objects
#     come from A (its access log), none from the mirror; user.storkfs.source names the peer;
#  3. a peer that corrupts one object (the fault server in front of A's store): skipped, named
#     in the log, that object comes from the mirror; `stork status` shows each source's kind,
#     a latency and the last errors;
#  4. exec=SCHEME=COMMAND with a space in COMMAND: a mirror served by an external command;
#  5. timeout=5 over [a mirror trickling 5 B/s, a good mirror] and no low_speed_time=: the
#     FIRST open gets the genuine bytes within the 5 s (the default low-speed window,
#     min(10, max(1, timeout/3)) = 1 s, drops the trickle in time for the good mirror).
. "$(dirname "$0")/lib.sh"

need python3 nginx squid curl
need_fuse

# read_all MNT DESC [LAST]: every file of p 1.0 reads its genuine bytes through MNT, LAST (a
# file name) after all the others
read_all() {
	local mnt=$1 desc=$2 last=${3:-} f got names=()
	for f in "$T"/src/*; do
		[ "${f##*/}" = "$last" ] || names+=("${f##*/}")
	done
	[ -z "$last" ] || names+=("$last")
	for f in "${names[@]}"; do
		got=$(timeout -k 2 60 sha256sum "$mnt/p/1.0/$f" | cut -d' ' -f1) || got="read failed"
		[ "$got" = "$(sha "$T/src/$f")" ] || fail "$desc: p/1.0/$f gives '$got', want its genuine bytes"
	done
	pass "$desc: every file reads its genuine bytes"
}

# status_json_ok DESC MNT EXPR...: `stork status --json MNT`; every python EXPR holds, with
# m the sources by URL
status_json_ok() {
	local desc=$1 mnt=$2
	shift 2
	run timeout 30 "$STORK" status --json "$mnt"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "$desc: stork status --json $mnt exited $RC"
	}
	if ! python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
m = {x["url"]: x for x in s["mirrors"]}
bad = [e for e in sys.argv[2:] if not eval(e)]
if bad:
    sys.exit("not true: " + "; ".join(bad) + "\n" + json.dumps(s["mirrors"], indent=1))' "$T/out" "$@" 2>"$T/status.bad"; then
		fail "$desc: $(cat "$T/status.bad")"
	fi
	pass "$desc"
}

# status_has DESC MNT REGEX...: `stork status MNT` has a line matching each extended REGEX
status_has() {
	local desc=$1 mnt=$2 re
	shift 2
	run timeout 30 "$STORK" status "$mnt"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "$desc: stork status $mnt exited $RC"
	}
	sed 's/^/# /' "$T/out"
	for re in "$@"; do
		grep -qE -- "$re" "$T/out" || {
			_show_run
			fail "$desc: no line of stork status $mnt matches /$re/"
		}
	done
	pass "$desc"
}

make_repo
mkdir -p "$T/src"
for i in 1 2 3 4 5; do rnd "$i" 20000 >"$T/src/f$i"; done
rnd 9 200000 >"$T/src/big"
publish p 1.0 "$T/src"
nobj=$(manifest_hashes p 1.0 | cut -d' ' -f1 | sort -u | wc -l)
read -r o_big _ _ < <(manifest_hashes p 1.0 | grep ' big$')
p_big=$(object_path "$o_big")
read -r o_f3 _ _ < <(manifest_hashes p 1.0 | grep ' f3$')
p_f3=$(object_path "$o_f3")
start_nginx "$REPO"
GOOD=$NGINX_URL
GOOD_DIR=$NGINX_DIR
mirror_objects() { grep -c -E '"GET /objects/' "$GOOD_DIR/access.log" || true; }

# --- 0. bad options: refused before mounting, naming the option
mkdir -p "$T/mnt-bad"
bad_opt() {
	local opt=$1
	shift
	expect_rc 1 "storkfs -o $opt is refused" timeout 30 "$STORKFS" -f \
		-o "root=$ROOT,store=$T/store-bad,$opt" "$GOOD" "$T/mnt-bad"
	err_has "storkfs -o $opt: the error names the option and what it expects" "$@"
	! is_mounted "$T/mnt-bad" || fail "storkfs -o $opt mounted"
}
bad_opt "proxy_retry=soon" "proxy_retry=soon" "seconds"
bad_opt "low_speed_time=0" "low_speed_time=0" "1 to"
bad_opt "peer=node2" "peer=node2" "URL"
bad_opt "exec=nocommand" "exec=nocommand" "SCHEME=COMMAND"
bad_opt "proxy=http://127.0.0.1:1|squid;DIRECT" "-o proxy" '"squid" is not a URL'

# --- 1. proxies: the first down, the second a real squid, no DIRECT
free_port
PROXY1=http://127.0.0.1:$FREE_PORT
free_port
start_squid 2 "$FREE_PORT"
PROXY2=http://127.0.0.1:$FREE_PORT
before=$(mirror_objects)
mount_storkfs "$T/mnt-proxy" "store=$T/store-proxy,timeout=30,proxy=$PROXY1;$PROXY2" "$GOOD"
read_all "$T/mnt-proxy" "proxy=DEAD;SQUID"
[ "$(squid_objects 2)" -eq "$nobj" ] || fail "squid saw $(squid_objects 2) object requests, want $nobj"
[ "$(($(mirror_objects) - before))" -eq "$nobj" ] || fail "the mirror did not get each object once (from squid)"
pass "with the first proxy down every object ($nobj) came through the second (squid), once"
grep -F "via proxy $PROXY1" "$SFS_LOG" | matches -i 'refused' || {
	cat "$SFS_LOG" >&2
	fail "the mount's log does not name the dead proxy $PROXY1 and the refusal"
}
pass "the mount's log names the dead proxy and what it did"
status_json_ok "user.storkfs.status: both proxies, with kind, latency and the dead one's last error" \
	"$T/mnt-proxy" \
	"m['$GOOD']['kind'] == 'mirror'" "m['$PROXY1']['kind'] == 'proxy'" \
	"m['$PROXY2']['kind'] == 'proxy'" "m['$PROXY1']['failures'] >= 1" \
	"m['$PROXY1']['last_error'] != ''" "m['$PROXY2']['requests'] >= $nobj" \
	"m['$PROXY2']['failures'] == 0" "m['$PROXY2']['last_error'] == ''" \
	"m['$PROXY2']['latency_ms'] >= 0" "all('latency_ms' in x for x in m.values())"
status_has "stork status MOUNT: a line per proxy, the dead one's last error" "$T/mnt-proxy" \
	"^  mirror +${GOOD//./\\.}: [0-9]+ requests" \
	"^  proxy +${PROXY1//./\\.}: .*[1-9][0-9]* failures.*; last error: .*refused" \
	"^  proxy +${PROXY2//./\\.}: [1-9][0-9]* requests, .*, 0 failures, [0-9]+ ms$"
unmount_storkfs "$T/mnt-proxy"
fsck_clean "the proxied mount's store is clean" "$T/store-proxy"
stop_squid 2

# --- 2. peers: node A's store behind nginx
extract_ok "node A extracts p 1.0 from the mirror" --store "$T/A" "$GOOD" p 1.0 "$T/dA"
start_peer "$T/A"
free_port
DEADPEER=http://127.0.0.1:$FREE_PORT/
before=$(mirror_objects)
mount_storkfs "$T/mnt-peer" "store=$T/store-peer,timeout=30,peer=$DEADPEER,peer=$PEER_URL" "$GOOD"
read_all "$T/mnt-peer" "peer=DEAD,peer=A"
# The version's manifest too: a node keeps it as an object, and peers are asked first.
[ "$(peer_requests '"GET /objects/[^ ]* HTTP/1.1" 200 ')" -eq $((nobj + 1)) ] ||
	fail "the peer served $(peer_requests ' 200 ') objects, want $((nobj + 1)) ($nobj and the manifest)"
[ "$(mirror_objects)" -eq "$before" ] || fail "the mirror was asked for objects although the peer has them"
pass "every object ($nobj) and the manifest came from the peer A (its nginx log), none from the mirror"
src=$(xattr "$T/mnt-peer/p/1.0/f1" user.storkfs.source)
[ "$src" = "$PEER_URL" ] || fail "user.storkfs.source of p/1.0/f1 is '$src', want the peer $PEER_URL"
pass "user.storkfs.source names the peer that delivered the file"
grep -F "peer $DEADPEER" "$SFS_LOG" | matches -i 'refused' || {
	cat "$SFS_LOG" >&2
	fail "the log does not name the dead peer"
}
pass "the log names the dead peer (the second peer= was used)"
unmount_storkfs "$T/mnt-peer"
fsck_clean "the peer mount's store is clean" "$T/store-peer"
check "the peer mount's stored objects hold what their names hash" store_hashes_ok "$T/store-peer"

# --- 3. a peer that corrupts f3 (and answers the others after 50 ms: a latency to show)
start_faultserver "$T/A"
fault_set "[{\"match\": \"^/$p_f3\$\", \"fault\": \"corrupt\"}, {\"match\": \"^/objects/\", \"fault\": \"delay\", \"seconds\": 0.05}]"
LIAR=$FAULT_URL/
before=$(grep -c "\"GET /$p_f3 " "$GOOD_DIR/access.log" || true)
mount_storkfs "$T/mnt-liar" "store=$T/store-liar,timeout=30,peer=$LIAR" "$GOOD"
read_all "$T/mnt-liar" "a lying peer" f3
grep -F "peer $LIAR: $p_f3" "$SFS_LOG" | matches 'hash mismatch' || {
	cat "$SFS_LOG" >&2
	fail "the log does not name the lying peer, the object and the hash mismatch"
}
pass "the log names the lying peer, the object and the hash mismatch"
[ "$(grep -c "\"GET /$p_f3 " "$GOOD_DIR/access.log")" -eq $((before + 1)) ] ||
	fail "the mirror did not serve $p_f3 after the peer corrupted it"
src=$(xattr "$T/mnt-liar/p/1.0/f3" user.storkfs.source)
[ "$src" = "$GOOD" ] || fail "user.storkfs.source of p/1.0/f3 is '$src', want the mirror $GOOD"
pass "the object the peer corrupted came from the mirror (nginx log, user.storkfs.source)"
status_json_ok "user.storkfs.status: the peer's kind, latency (>= 50 ms) and last error" \
	"$T/mnt-liar" "list(m) == ['$LIAR', '$GOOD']" \
	"m['$LIAR']['kind'] == 'peer'" "m['$LIAR']['latency_ms'] >= 50" \
	"m['$LIAR']['failures'] == 1" "'hash mismatch' in m['$LIAR']['last_error']" \
	"m['$LIAR']['skipped']" "m['$GOOD']['kind'] == 'mirror'" "m['$GOOD']['failures'] == 0"
status_has "stork status MOUNT: the peer's kind, latency and last error" "$T/mnt-liar" \
	"^  peer +${LIAR//./\\.}: [1-9][0-9]* requests, .*, 1 failures, [1-9][0-9]+ ms \(skipped for now\); last error: .*hash mismatch" \
	"^  mirror +${GOOD//./\\.}: [1-9][0-9]* requests, .*, 0 failures"
unmount_storkfs "$T/mnt-liar"
fsck_clean "the lying peer's mount store is clean" "$T/store-liar"
check "its stored objects hold what their names hash" store_hashes_ok "$T/store-liar"
stop_faultserver

# --- 4. exec=SCHEME=COMMAND, COMMAND with a space (split into argv)
cat >"$T/adapter.sh" <<EOF2
#!/bin/sh
# x+http://HOST/PATH -> http://HOST/PATH (fetch/README.md's adapter)
echo "\$*" >>"$T/adapter.log"
out=\$(mktemp)
code=\$(curl -sS -o "\$out" -w '%{http_code}' "http\${2#x+http}") || { rm -f "\$out"; exit 1; }
case \$code in
200) cat "\$out"; rm -f "\$out" ;;
404) rm -f "\$out"; exit 2 ;;
*) echo "HTTP \$code" >&2; rm -f "\$out"; exit 1 ;;
esac
EOF2
mount_storkfs "$T/mnt-exec" "store=$T/store-exec,timeout=30,exec=x+http=/bin/sh $T/adapter.sh --tag" \
	"x+$GOOD/"
read_all "$T/mnt-exec" "exec=x+http=/bin/sh ADAPTER --tag"
[ "$(grep -c "^--tag x+http://[^ ]*/objects/" "$T/adapter.log")" -eq "$nobj" ] ||
	fail "the adapter was not run once per object with its argument and the URL: $(cat "$T/adapter.log")"
pass "the exec command ran once per object ($nobj), its argument split off and the URL last"
unmount_storkfs "$T/mnt-exec"

# --- 5. timeout=5 over [trickling mirror, good mirror]: the first open succeeds in time
start_faultserver "$REPO"
fault_set "[{\"match\": \"^/$p_big\$\", \"fault\": \"trickle\", \"rate\": 5}]"
SLOW=$FAULT_URL
mount_storkfs "$T/mnt-slow" "store=$T/store-slow,timeout=5" "$SLOW" "$GOOD"
read_errno "$T/mnt-slow/p/1.0/big" 40
[ "$GOT" = "ok $o_big" ] || {
	cat "$SFS_LOG" >&2
	fail "timeout=5, [trickle, good]: the first open of p/1.0/big gives '$GOT' after ${ELAPSED}s, want its genuine bytes"
}
pass "timeout=5, [trickle, good]: the FIRST open of p/1.0/big reads the genuine bytes (${ELAPSED}s)"
[ "$(fault_requests "^GET /$p_big ")" -ge 1 ] || fail "the trickling mirror was never asked for $p_big"
grep -F "$SLOW" "$SFS_LOG" | grep -F "$p_big" | matches -iE 'stall|slow' || {
	cat "$SFS_LOG" >&2
	fail "the log does not name the trickling mirror, $p_big and the stall"
}
pass "the log names the trickling mirror, the object and the stall"
unmount_storkfs "$T/mnt-slow"
check "the trickle mount's stored objects hold what their names hash" store_hashes_ok "$T/store-slow"
stop_faultserver
done_ok
