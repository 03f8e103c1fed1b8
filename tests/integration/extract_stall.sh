#!/usr/bin/env bash
# A mirror that stalls mid-body, sends only headers, never answers, or trickles below the speed
# limit is abandoned for the next mirror within the bound the test sets (--low-speed-time 2
# --low-speed-limit 1024): the extract from [slow mirror, good mirror] succeeds, byte-identical,
# and the log names the slow mirror and the file. Timings are not asserted; an outer timeout
# makes a hang fail the test.
. "$(dirname "$0")/lib.sh"

need python3 nginx
EXTRACT_TIMEOUT=120
make_repo
mkdir -p "$T/src/d"
rnd 1 200000 >"$T/src/d/big"
rnd 2 3000 >"$T/src/d/small"
echo tiny >"$T/src/d/tiny"
publish slow 1.0 "$T/src"
read -r o_big _ _ < <(manifest_hashes slow 1.0 | grep ' d/big$')
p_big=$(object_path "$o_big")

start_nginx "$REPO"
start_faultserver "$REPO"
limits=(--low-speed-time 2 --low-speed-limit 1024 --connect-timeout 5)

# slow NAME RULE PATH: with RULE on the fault server, [fault server, nginx] extracts; the log
# names the fault server and PATH
slow() {
	local name=$1 rule=$2 path=$3
	fault_set "[$rule]"
	: >"$FAULT_DIR/access.log"
	extract_ok "$name: the extract from [$name mirror, good mirror] succeeds" \
		--store "$T/store-$name" "${limits[@]}" "$FAULT_URL" "$NGINX_URL" slow 1.0 "$T/dest-$name"
	check "$name: the result is identical to the source" compare_tree "$T/src" "$T/dest-$name"
	grep -F "$FAULT_URL" "$T/err" | grep -F "$path" | matches -iE 'stall|slow|timed out|timeout' || {
		_show_run
		fail "$name: no log line names $FAULT_URL, $path and a stall or timeout"
	}
	pass "$name: the log names the mirror, $path and the stall"
	[ "$(fault_requests "^GET /$path ")" -ge 1 ] || fail "$name: the fault server never saw $path"
	run "$STORK" fsck "$T/store-$name"
	[ "$RC" -eq 0 ] || fail "$name: fsck is not clean: $ERR"
	pass "$name: the store is clean"
}

slow stall-mid-body "{\"match\": \"^/$p_big\$\", \"fault\": \"stall\", \"bytes\": 20000}" "$p_big"
slow stall-after-headers "{\"match\": \"^/$p_big\$\", \"fault\": \"stall\", \"bytes\": 0}" "$p_big"
slow silent "{\"match\": \"^/$p_big\$\", \"fault\": \"delay\", \"seconds\": 600}" "$p_big"
slow trickle "{\"match\": \"^/$p_big\$\", \"fault\": \"trickle\", \"rate\": 200}" "$p_big"
# metadata too: the timestamp stalls mid-body
ts=$(python3 -c 'import os, sys; print(os.path.getsize(sys.argv[1]) // 2)' "$REPO/metadata/timestamp.json")
slow stall-metadata "{\"match\": \"^/metadata/timestamp.json\$\", \"fault\": \"stall\", \"bytes\": $ts}" \
	metadata/timestamp.json
stop_faultserver
done_ok
