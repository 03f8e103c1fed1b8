#!/usr/bin/env bash
# The fault matrix through real storkfs mounts (issue 6, acceptance 1): for each transport and
# each injected fault, a package reads correctly through the mount by falling back, and nothing
# unverified reaches the store.
#
# One package, p 1.0, holds one file per fault (distinct random contents, 64-256 KiB); each
# file's object has its own rule in the fault server, so one mount meets every fault. Four
# mounts, the faulty source first and a good one (nginx) after it:
#
#  1. mirror: the fault server serving a copy of the repository as mirror 1, nginx mirror 2;
#  2. proxy:  the fault server as a caching HTTP proxy holding the repository
#             (proxy=FAULTY;DIRECT, DIRECT = nginx);
#  3. peer:   the fault server serving a node store (objects/ab/<hex>, raw) as peer=;
#  4. exec:   exec=flaky=ADAPTER, a curl adapter streaming from the fault server, so that each
#             HTTP fault becomes what an adapter does (non-zero exit, silence, short, long or
#             corrupt output); mirror flaky://... first, nginx second.
#
# The four mounts run at once, each with its own fault server (and the proxy mount its own
# nginx). Within a mount the files are read one at a time, each once every source is usable
# again (mirror_retry=1, proxy_retry=1, peer_retry=1: a source that failed one file goes to the
# back of the order for a second, and would not be asked for the next file), so that every
# fault is met.
# For each file: the genuine bytes; the fault server's access log shows the fault applied to
# that object; the daemon's log names the faulty source with the object (a failure), or has
# no line for it (a harmless fault, a peer's 404); user.storkfs.source names the source that
# delivered. After each mount: `stork status` counts the failures on the faulty source,
# `stork fsck` is clean and every stored object hashes to its name.
#
# Expectations that are the fetcher's documented rules (fetch/README.md):
#  - extra with "length": "real" (the true Content-Length, extra bytes after it) is harmless
#    to an HTTP client, which reads Content-Length bytes: the file comes from the faulty
#    source and nothing is logged;
#  - a peer's 404 is an answer (no failure, no log line): the mirror serves the object;
#  - through a proxy, a 404 is the HOST's answer relayed ("Whose failure is it?"): the mirror
#    is blamed and the next MIRROR is tried (the proxy mount has two mirrors, nginx as
#    127.0.0.1 and as localhost; its 404 rule applies once, so the object comes through the
#    proxy from the second mirror); a 5xx through the proxy is ambiguous: the next way to the
#    same mirror (DIRECT) is tried, blaming neither, so even a proxy that answers 503 for an
#    object every time (s503_sticky) costs one request, never the read.
. "$(dirname "$0")/lib.sh"

need python3 nginx curl
need_fuse

# The fault of each file, as a rule body (the "match" is added per object). stall_body sends
# 1000 bytes then nothing: libcurl's speed is an average over up to 5 s, so a larger burst
# before the stall would delay the low-speed abort by seconds.
declare -A RULE=(
	[good]=''
	[refuse]='"fault": "refuse"'
	[reset]='"fault": "reset"'
	[stall_head]='"fault": "stall", "bytes": 0'
	[stall_body]='"fault": "stall", "bytes": 1000'
	[trickle]='"fault": "trickle", "rate": 200'
	[truncate]='"fault": "truncate"'
	[corrupt]='"fault": "corrupt"'
	[extra_none]='"fault": "extra", "length": "none", "fill": "random"'
	[extra_full]='"fault": "extra", "length": "full"'
	[extra_real]='"fault": "extra", "length": "real"'
	[endless]='"fault": "endless"'
	[endless_huge]='"fault": "endless", "length": "huge"'
	[s404]='"fault": "status", "status": 404'
	[s500]='"fault": "status", "status": 500'
	[s503]='"fault": "status", "status": 503'
	[s503_sticky]='"fault": "status", "status": 503'
)
FILES=(good refuse reset stall_head stall_body trickle truncate corrupt extra_none extra_full
	extra_real endless endless_huge s404 s500 s503 s503_sticky)
NFILES=${#FILES[@]}

# --- the package
make_repo
mkdir -p "$T/src"
seed=1
for f in "${FILES[@]}"; do
	rand $((192 * 1024))
	python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2])))' \
		"$((STORK_TEST_SEED + seed))" $((64 * 1024 + R)) >"$T/src/$f"
	seed=$((seed + 1))
done
publish p 1.0 "$T/src"
declare -A HEX=()
while read -r h _ path; do
	HEX[$path]=$h
done < <(manifest_hashes p 1.0)
[ "${#HEX[@]}" -eq "$NFILES" ] || fail "the manifest has ${#HEX[@]} files, want $NFILES"
[ "$(printf '%s\n' "${HEX[@]}" | sort -u | wc -l)" -eq "$NFILES" ] || fail "two files share an object"

# nginx serves $T (the repository at /repo): the good mirror; a second one is the proxy
# mount's (its DIRECT requests are told apart from the other mounts')
start_nginx "$T"
GOOD=$NGINX_URL/repo
start_nginx "$T"
GOODP=$NGINX_URL/repo
GOODP2=http://localhost:$NGINX_PORT/repo
GOODP_DIR=$NGINX_DIR

# the fault servers' tree: a copy of the repository (/repo) and node A's store (/peer)
mkdir -p "$T/www"
cp -a "$REPO" "$T/www/repo"
extract_ok "node A extracts p 1.0 into its store (the peer's objects)" --store "$T/www/peer" \
	"$GOOD" p 1.0 "$T/dA"
for f in "${FILES[@]}"; do
	[ -f "$T/www/peer/$(object_path "${HEX[$f]}")" ] || fail "node A's store lacks the object of $f"
done

# set_rules DIR ONCE...: one rule per file (matching its object's path under any prefix) for
# the fault server of DIR; the files named in ONCE get "times": 1.
set_rules() {
	local dir=$1 f rules="" once
	shift
	for f in "${FILES[@]}"; do
		[ -n "${RULE[$f]}" ] || continue
		once=""
		[[ " $* " != *" $f "* ]] || once=', "times": 1'
		rules+="${rules:+, }{\"match\": \"/$(object_path "${HEX[$f]}")\$\", ${RULE[$f]}$once}"
	done
	fault_set "[$rules]" "$dir"
}

# The per-mount settings, by mount name.
declare -A FDIR=() FPID=() LOG=() MNT=() LABEL=() SRC_BAD=() SRC_GOOD=()

# new_faultserver NAME ONCE...: a fault server for mount NAME over $T/www with its rules
new_faultserver() {
	local name=$1
	shift
	start_faultserver "$T/www"
	FDIR[$name]=$FAULT_DIR
	FPID[$name]=$FAULT_PID
	set_rules "$FAULT_DIR" "$@"
}

# read_each NAME: read every file of p 1.0 through mount NAME one at a time, each once no
# source of the mount is skipped (at most 10 s: a source that failed the last file would
# otherwise not be asked for this one), each open and read bounded by 40 s. One line per file
# in $T/reads.NAME: "FILE FROM GOT SOURCE MS WAIT": FROM the line of the fault server's access
# log where its requests start, GOT "ok:SHA256", "errno:N" or "hang", SOURCE its
# user.storkfs.source ("-" when unread), MS the open and read's milliseconds, WAIT the wait for
# the sources before it. Exits non-zero on a hang or a source skipped for too long.
read_each() {
	local name=$1
	timeout -k 5 $((60 * NFILES)) python3 - "${MNT[$name]}" "${FDIR[$name]}/access.log" \
		"${FILES[@]}" >"$T/reads.$name" 2>"$T/reads.$name.err" <<-'EOF'
		import hashlib, json, os, sys, threading, time
		mnt, log, files = sys.argv[1], sys.argv[2], sys.argv[3:]
		def usable():
		    end = time.monotonic() + 10
		    while True:
		        s = json.loads(os.getxattr(mnt, "user.storkfs.status"))
		        if not any(m["skipped"] for m in s["mirrors"]):
		            return
		        if time.monotonic() > end:
		            sys.exit("a source is still skipped after 10 s: " + json.dumps(s["mirrors"]))
		        time.sleep(0.02)
		def read(path, out):
		    try:
		        with open(path, "rb") as f:
		            out.append("ok:" + hashlib.sha256(f.read()).hexdigest())
		    except OSError as e:
		        out.append("errno:%d" % e.errno)
		for name in files:
		    w0 = time.monotonic()
		    usable()
		    wait = int((time.monotonic() - w0) * 1000)
		    with open(log, "rb") as f:
		        start = f.read().count(b"\n") + 1
		    path = os.path.join(mnt, "p/1.0", name)
		    out = []
		    t0 = time.monotonic()
		    th = threading.Thread(target=read, args=(path, out), daemon=True)
		    th.start()
		    th.join(40)
		    ms = int((time.monotonic() - t0) * 1000)
		    got = out[0] if out else "hang"
		    src = "-"
		    if got.startswith("ok:"):
		        src = os.getxattr(path, "user.storkfs.source").decode()
		    print(name, start, got, src, ms, wait, flush=True)
		    if got == "hang":
		        sys.exit("%s: the open or read hangs" % name)
	EOF
}

# fault_applied FILE FROM ACCESSLOG: the fault server's access log, from line FROM on, shows
# FILE's fault applied to its object (the FAULT column; a status fault with its code).
fault_applied() {
	local f=$1 from=$2 log=$3 kind code=-
	kind=$(sed -n 's/^"fault": "\([a-z]*\)".*/\1/p' <<<"${RULE[$f]}")
	[[ $f != s[0-9]* ]] || code=${f:1:3}
	tail -n +"$from" "$log" |
		awk -v p="/$(object_path "${HEX[$f]}")" -v k="$kind" -v c="$code" '
			substr($2, length($2) - length(p) + 1) == p && $5 == k && (c == "-" || $3 == c) { ok = 1 }
			END { exit !ok }'
}

# log_names LABEL FILE LOG: a line of the daemon's log LOG holds "LABEL: objects/ab/HEX (p 1.0: FILE)"
log_names() {
	grep -qF -- "$1: $(object_path "${HEX[$2]}") (p 1.0: $2)" "$3"
}

# log_silent FILE LOG: no line of the daemon's log LOG mentions FILE's object
log_silent() {
	! grep -qF -- "$(object_path "${HEX[$1]}")" "$2"
}

# in_list WORD LIST...: WORD is one of LIST
in_list() {
	local w=$1
	shift
	[[ " $* " == *" $w "* ]]
}

# check_reads NAME: the reads of mount NAME, file by file, as described at the top. The caller
# sets HARMLESS (faults that leave the bytes intact: read from the faulty source, nothing
# logged), QUIET (failures that are answers: no log line), EIO (documented to fail with EIO)
# and SOURCE (file -> the expected user.storkfs.source when not the default).
check_reads() {
	local name=$1 f from got src ms wait want n=0 total=0 log=${LOG[$1]} alog=${FDIR[$1]}/access.log
	while read -r f from got src ms wait; do
		n=$((n + 1))
		total=$((total + ms + wait))
		echo "# [$name] $f: $got from $src in $ms ms (after $wait ms waiting for the sources)"
		want="ok:${HEX[$f]}"
		! in_list "$f" "${EIO[@]}" || want="errno:5"
		if [ "$got" != "$want" ]; then
			tail -n 30 "$log" >&2
			fail "[$name] p/1.0/$f: got '$got', want '$want'"
		fi
		if [ "$f" != good ] && ! fault_applied "$f" "$from" "$alog"; then
			tail -n +"$from" "$alog" >&2
			fail "[$name] $f: the fault server's log does not show the fault applied to $(object_path "${HEX[$f]}")"
		fi
		if [ "$f" = good ] || in_list "$f" "${HARMLESS[@]}"; then
			log_silent "$f" "$log" || {
				cat "$log" >&2
				fail "[$name] $f: the log has a line for an object that read well from the faulty source"
			}
			want=${SRC_BAD[$name]}
		elif in_list "$f" "${QUIET[@]}"; then
			log_silent "$f" "$log" || {
				cat "$log" >&2
				fail "[$name] $f: the log has a line for an answer that is no failure"
			}
			want=${SRC_GOOD[$name]}
		else
			log_names "${LABEL[$name]}" "$f" "$log" || {
				cat "$log" >&2
				fail "[$name] $f: the log does not name the faulty source '${LABEL[$name]}' with the object of $f"
			}
			want=${SRC_GOOD[$name]}
		fi
		[ -z "${SOURCE[$f]:-}" ] || want=${SOURCE[$f]}
		in_list "$f" "${EIO[@]}" && want=-
		[ "$src" = "$want" ] || fail "[$name] $f: user.storkfs.source is '$src', want '$want'"
	done <"$T/reads.$name"
	[ "$n" -eq "$NFILES" ] || fail "[$name] $n of $NFILES files read: $(cat "$T/reads.$name.err")"
	pass "[$name] $NFILES files, one fault each: every fault applied (fault server's log), each file read its genuine bytes ($((total / 1000)) s)"
	pass "[$name] each failing source is named in the log with the object; harmless faults and answers are not; user.storkfs.source names who delivered"
}

# status_ok NAME EXPR...: `stork status --json` of mount NAME; every python EXPR holds (m: the
# sources by URL); and `stork status MNT` runs.
status_ok() {
	local name=$1 mnt=${MNT[$1]}
	shift
	run timeout 30 "$STORK" status --json "$mnt"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "[$name] stork status --json $mnt exited $RC"
	}
	python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
m = {x["url"]: x for x in s["mirrors"]}
bad = [e for e in sys.argv[2:] if not eval(e)]
if bad:
    sys.exit("not true: " + "; ".join(bad) + "\n" + json.dumps(s["mirrors"], indent=1))' "$T/out" "$@" ||
		fail "[$name] stork status --json"
	run timeout 30 "$STORK" status "$mnt"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "[$name] stork status $mnt exited $RC"
	}
	grep -E '^  (mirror|proxy|peer) ' "$T/out" | sed 's/^/# /'
	pass "[$name] stork status counts the failures of the source blamed"
}

# finish NAME: unmount, fsck clean, stored objects hash to their names, and the store holds
# every object that read well
finish() {
	local name=$1 mnt=${MNT[$1]} store=$T/s-$1 f
	unmount_storkfs "$mnt" "${PID[$name]}"
	fsck_clean "[$name] stork fsck of the store is clean" "$store"
	check "[$name] every stored object hashes to its name, nothing in tmp/" store_hashes_ok "$store"
	for f in "${FILES[@]}"; do
		in_list "$f" "${EIO[@]}" && continue
		[ -f "$store/$(object_path "${HEX[$f]}")" ] || fail "[$name] the store lacks the object of $f"
	done
	pass "[$name] the store holds the object of every file read"
}

OPTS="timeout=20,low_speed_time=2,connect_timeout=2,mirror_retry=1,proxy_retry=1,peer_retry=1"
declare -A PID=()

# mount_one NAME OPTIONS URL...: mount NAME at $T/mnt-NAME with store $T/s-NAME
mount_one() {
	local name=$1 opts=$2
	shift 2
	MNT[$name]=$T/mnt-$name
	mount_storkfs "${MNT[$name]}" "store=$T/s-$name,$OPTS${opts:+,$opts}" "$@"
	LOG[$name]=$SFS_LOG
	PID[$name]=$SFS_PID
}

# 1. mirror: [fault server, nginx]
new_faultserver mirror
BAD=$FAULT_URL/repo
LABEL[mirror]=$BAD SRC_BAD[mirror]=$BAD SRC_GOOD[mirror]=$GOOD
mount_one mirror "" "$BAD" "$GOOD"

# 2. proxy: the fault server as a caching proxy, proxy=FAULTY;DIRECT; mirrors nginx as
# 127.0.0.1 and as localhost (a 404/5xx through the proxy moves to the next mirror), whose
# 404/500/503 rules apply once
new_faultserver proxy s404 s500 s503
PROXY=http://127.0.0.1:$FAULT_PORT
LABEL[proxy]="$GOODP via proxy $PROXY" SRC_BAD[proxy]=$GOODP SRC_GOOD[proxy]=$GOODP
mount_one proxy "proxy=$PROXY;DIRECT" "$GOODP" "$GOODP2"

# 3. peer: the fault server serving node A's store; nginx the mirror
new_faultserver peer
PEER=$FAULT_URL/peer/
LABEL[peer]="peer $PEER" SRC_BAD[peer]=$PEER SRC_GOOD[peer]=$GOOD
mount_one peer "peer=$PEER" "$GOOD"

# 4. exec: flaky://HOST/PATH -> http://HOST/PATH with curl, streamed (-o -): a truncated body
# is short output and a non-zero exit, a stall is silence (the transport kills it after
# low_speed_time), extra bytes are extra output, a 404 is exit 2. The adapter bounds a slow
# transfer itself (--speed-limit): the exec transport only kills a SILENT command, and a
# command that trickles on stdout would hold the read up to timeout= (fetch/README.md "The
# exec transport": Bounds).
cat >"$T/flaky" <<-EOF2
	#!/bin/sh
	err=\$(mktemp) || exit 1
	trap 'rm -f "\$err"' EXIT
	curl -sS --fail --speed-limit 1024 --speed-time 5 -o - "http\${1#flaky}" 2>"\$err" && exit 0
	grep -q 'error: 404' "\$err" && exit 2
	head -n 1 "\$err" >&2
	exit 1
EOF2
chmod +x "$T/flaky"
new_faultserver exec
FLAKY=flaky://127.0.0.1:$FAULT_PORT/repo/
LABEL[exec]=$FLAKY SRC_BAD[exec]=$FLAKY SRC_GOOD[exec]=$GOOD
mount_one exec "exec=flaky=$T/flaky" "$FLAKY" "$GOOD"

# --- the four mounts read at once
direct_from=$(($(wc -l <"$GOODP_DIR/access.log") + 1))
t0=$(date +%s)
declare -A READER=()
for name in mirror proxy peer exec; do
	read_each "$name" &
	READER[$name]=$!
done
for name in mirror proxy peer exec; do
	wait "${READER[$name]}" || fail "[$name] reading through ${MNT[$name]}: $(cat "$T/reads.$name.err")"
done
pass "the four mounts read all their files ($(($(date +%s) - t0)) s)"

# --- 1. mirror
HARMLESS=(extra_real) QUIET=() EIO=()
declare -A SOURCE=()
check_reads mirror
status_ok mirror "list(m) == ['$BAD', '$GOOD']" \
	"m['$BAD']['failures'] == $((NFILES - 2))" "m['$BAD']['requests'] >= $NFILES" \
	"m['$GOOD']['failures'] == 0" "m['$GOOD']['bytes'] > 0"
finish mirror

# --- 2. proxy: every failure but the 404/5xx ones is the proxy's (it is skipped and DIRECT
# serves the file); the 404 (once) is the first mirror's, and the second mirror is asked
# through the proxy; a 5xx (once or sticky) moves on to DIRECT for the same mirror, blaming
# neither
HARMLESS=(extra_real) QUIET=() EIO=()
SOURCE=([s404]=$GOODP2)
check_reads proxy
grep -F "$GOODP via proxy $PROXY: $(object_path "${HEX[s503_sticky]}")" "${LOG[proxy]}" |
	grep -F 'HTTP 503' | matches -F 'trying the next way to this mirror' ||
	fail "[proxy] the log does not say the sticky 503 moved on to the next way to the mirror"
tail -n +"$direct_from" "$GOODP_DIR/access.log" | grep -F "$(object_path "${HEX[s503_sticky]}")" |
	grep -q '"GET /repo/objects/' ||
	fail "[proxy] s503_sticky was not fetched DIRECT"
pass "[proxy] a proxy that answers 503 for an object every time: DIRECT serves it"
status_ok proxy "list(m) == ['$GOODP', '$GOODP2', '$PROXY']" \
	"m['$PROXY']['kind'] == 'proxy'" "m['$PROXY']['failures'] == $((NFILES - 2 - 4))" \
	"m['$GOODP']['failures'] == 1" "m['$GOODP2']['failures'] == 0"
finish proxy

# --- 3. peer: a peer's 404 is no failure
HARMLESS=(extra_real) QUIET=(s404) EIO=()
SOURCE=()
check_reads peer
status_ok peer "list(m) == ['$PEER', '$GOOD']" "m['$PEER']['kind'] == 'peer'" \
	"m['$PEER']['failures'] == $((NFILES - 3))" "m['$GOOD']['failures'] == 0"
finish peer

# --- 4. exec
HARMLESS=(extra_real) QUIET=() EIO=()
SOURCE=()
check_reads exec
for f in stall_head stall_body; do
	grep -F "$FLAKY: $(object_path "${HEX[$f]}")" "${LOG[exec]}" | matches -F 'stalled' ||
		fail "[exec] $f: the log does not say the silent command stalled"
done
pass "[exec] a silent adapter is killed as stalled (low_speed_time=2)"
status_ok exec "list(m) == ['$FLAKY', '$GOOD']" \
	"m['$FLAKY']['failures'] == $((NFILES - 2))" "m['$GOOD']['failures'] == 0"
finish exec
[ -z "$(pgrep -f "$T/flaky" || true)" ] || fail "[exec] an adapter process is left behind"
pass "[exec] no adapter process is left behind"
for name in mirror proxy peer exec; do
	stop_faultserver "${FPID[$name]}"
done
done_ok
