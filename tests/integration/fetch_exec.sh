#!/usr/bin/env bash
# The exec transport through `stork extract --exec`: a tiny adapter (curl underneath) serves
# a whole package; an adapter that fails, lies or stalls is left for the next mirror (nginx),
# each named in the log, nothing unverified stored, no adapter process left behind; and
# contrib/stork-fetch-aria2c (when aria2c is installed) finds no .torrent (exit 2) and the
# read falls back to http. The real BitTorrent transfer is another test.
. "$(dirname "$0")/lib.sh"

need python3 nginx curl
make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
start_nginx "$REPO"
nobj=$(manifest_hashes synth 1.0 | cut -d' ' -f1 | sort -u | wc -l)

# adapter MODE: tst+http://HOST/PATH -> http://HOST/PATH; MODE ok | fail | corrupt (objects:
# metadata that does not verify is verify/'s business, not a transport's) | stall
cat >"$T/adapter" <<EOF2
#!/bin/sh
echo "\$1 \$STORK_MAXLEN" >>"$T/adapter.log"
mode=\$(cat "$T/adapter.mode")
case \$mode in
fail) echo "no seeders for \$1" >&2; echo "second line" >&2; exit 1 ;;
stall) sleep 120; exit 0 ;;
esac
out=\$(mktemp)
code=\$(curl -sS -o "\$out" -w '%{http_code}' "http\${1#tst+http}") || { rm -f "\$out"; exit 1; }
case \$code in
200) if [ "\$mode" = corrupt ] && [ "\${1#*/objects/}" != "\$1" ]; then
	python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 1 if b else 0; sys.stdout.buffer.write(b)' "\$out"
     else cat "\$out"; fi ;;
404) rm -f "\$out"; exit 2 ;;
*) echo "HTTP \$code" >&2; rm -f "\$out"; exit 1 ;;
esac
rm -f "\$out"
EOF2
chmod +x "$T/adapter"
EXEC=(--exec "tst+http=$T/adapter")
XURL=tst+$NGINX_URL/

echo ok >"$T/adapter.mode"
extract_ok "synth extracts through the exec transport alone" --store "$T/s1" "${EXEC[@]}" \
	"$XURL" synth 1.0 "$T/d1"
check "the tree is identical to its source" compare_tree "$T/src" "$T/d1"
[ "$(grep -c "^tst+http://[^ ]*/objects/" "$T/adapter.log")" -eq "$nobj" ] ||
	fail "the adapter was not run once per object ($nobj): $(cat "$T/adapter.log")"
grep -q "^tst+http://[^ ]*/objects/[^ ]* [0-9][0-9]*$" "$T/adapter.log" || fail "STORK_MAXLEN was not set"
pass "the adapter ran once per object, with the URL and STORK_MAXLEN"
fsck_clean "the store is clean" "$T/s1"

n=1
for mode in fail corrupt stall; do
	n=$((n + 1))
	echo "$mode" >"$T/adapter.mode"
	before=$(nginx_requests '"GET /objects/')
	t0=$(date +%s)
	# a short stall bound for the stalling adapter only (python3 and curl may be slow to
	# start on a loaded machine)
	lst=10
	[ "$mode" != stall ] || lst=2
	extract_ok "[$mode adapter, http]: synth extracts" --store "$T/s$n" --low-speed-time "$lst" \
		"${EXEC[@]}" "$XURL" "$NGINX_URL" synth 1.0 "$T/d$n"
	t1=$(date +%s)
	check "[$mode adapter, http]: identical" compare_tree "$T/src" "$T/d$n"
	# (the corrupting adapter fetched one object from nginx too)
	[ "$(($(nginx_requests '"GET /objects/') - before))" -ge "$nobj" ] ||
		fail "[$mode adapter, http]: nginx did not serve every object"
	# The corrupting adapter's bytes fail either check (the hash, or the zstd frame that
	# carries them); objects are fetched many at a time, so whichever failed first is the
	# line that says the mirror is skipped.
	case $mode in
	fail) what="no seeders for" ;;
	corrupt) what="hash mismatch|zstd stream ends in the middle|corrupt zstd data" ;;
	stall) what="stalled: nothing for 2 s" ;;
	esac
	grep -F "$XURL" "$T/err" | grep -E "$what" | matches 'skipping this mirror' || {
		_show_run
		fail "[$mode adapter, http]: the log does not name the exec mirror and '$what'"
	}
	[ $((t1 - t0)) -le 20 ] || fail "[$mode adapter, http]: took $((t1 - t0)) s"
	fsck_clean "[$mode adapter, http]: store clean" "$T/s$n"
	pass "[$mode adapter, http]: fell back to http, named '$what' ($((t1 - t0)) s)"
done
sleep 0.5
! pgrep -f "$T/adapter" >/dev/null && ! pgrep -x -f "sleep 120" >/dev/null ||
	fail "a stalled adapter outlived its fetch: $(pgrep -af "$T/adapter|sleep 120")"
pass "no adapter process outlived its fetch"

if command -v aria2c >/dev/null 2>&1; then
	before=$(nginx_requests '"GET /objects/')
	extract_ok "[aria2c adapter without torrents, http]: synth extracts" --store "$T/s9" \
		--exec "bt+http=$STORK_TESTS/../contrib/stork-fetch-aria2c" "bt+$NGINX_URL/" \
		"$NGINX_URL" synth 1.0 "$T/d9"
	check "[aria2c adapter, http]: identical" compare_tree "$T/src" "$T/d9"
	[ "$(nginx_requests '"GET /objects/[^ ]*\.torrent HTTP[^"]*" 404')" -ge 1 ] ||
		fail "the aria2c adapter did not ask for a .torrent"
	grep -F "bt+$NGINX_URL/" "$T/err" | matches 'not found' || {
		_show_run
		fail "the log does not say the bt+http mirror has no torrent"
	}
	pass "contrib/stork-fetch-aria2c: no .torrent = not found (exit 2), http serves"
else
	echo "# aria2c is not installed: contrib/stork-fetch-aria2c not exercised"
fi
done_ok
