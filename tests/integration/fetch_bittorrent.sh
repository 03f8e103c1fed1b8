#!/usr/bin/env bash
# A real BitTorrent transfer through the exec transport: Debian's opentracker on loopback, a
# torrent of one repository object made with mktorrent (served by nginx next to the object,
# objects/ab/HEX.torrent), a seeding aria2c, and `stork extract --exec
# bt+http=contrib/stork-fetch-aria2c` with the mirrors bt+http://nginx/ then http://nginx/:
# - the object comes by BitTorrent (the seeder uploaded it; nginx served the .torrent, never
#   the object), metadata over plain HTTP (no .torrent is asked for metadata), the bytes equal
#   the source, fsck clean; the bt+http:// mirror alone is a whole mirror too; a mount reads
#   the file through BitTorrent (when storkfs has -o exec=);
# - the tracker killed (the seeder still up): a fresh store extracts by falling back to the
#   http mirror within the adapter's bound (STORK_ARIA2C_TIMEOUT), the log naming the bt+http
#   mirror and the tracker's failure;
# - an adapter slower than the stall bound is killed with its aria2c (one process group), and
#   the read falls back too.
. "$(dirname "$0")/lib.sh"

need python3 nginx curl zstd opentracker mktorrent aria2c timeout
ADAPTER=$(cd "$STORK_TESTS/../contrib" && pwd)/stork-fetch-aria2c
[ -x "$ADAPTER" ] || fail "$ADAPTER is missing or not executable"
# The adapter's temporary directories (the downloads) go here: leftovers can be seen.
export TMPDIR=$T/tmp
mkdir -p "$TMPDIR"

# A package with one object: 3 MB of random bytes (incompressible: its zstd object is about as
# big), from the seed.
mkdir -p "$T/src/usr/share/bt"
python3 -c 'import random, sys
sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(3 * 1024 * 1024))' \
	"$STORK_TEST_SEED" >"$T/src/usr/share/bt/blob.bin"
make_repo
publish btpkg 1.0 "$T/src"
hex=$(manifest_hashes btpkg 1.0 | cut -d' ' -f1)
opath=$(object_path "$hex")
obj=$REPO/$opath
[ -f "$obj" ] || fail "the object $opath is not in the repository"
zsize=$(stat -c %s "$obj")
start_nginx "$REPO"
BTURL=bt+$NGINX_URL/

# Three distinct free loopback ports (bound at once, then closed): tracker, seeder, its RPC.
# (One python3 for all: it can take a second to start on a loaded machine.)
read -r -a ports < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
[ ${#ports[@]} -eq 3 ] || fail "no free ports"
TRACKER_PORT=${ports[0]} SEED_PORT=${ports[1]} RPC_PORT=${ports[2]}
ANNOUNCE=http://127.0.0.1:$TRACKER_PORT/announce

# The torrent of the object file as the repository keeps it (zstd), named by its hash.
mktorrent -a "$ANNOUNCE" -o "$obj.torrent" "$obj" >"$T/mktorrent.log" 2>&1 ||
	fail "mktorrent failed: $(tail -n 3 "$T/mktorrent.log")"
infohash=$(aria2c -S "$obj.torrent" | sed -n 's/^Info Hash: //p')
[[ $infohash =~ ^[0-9a-f]{40}$ ]] || fail "no info hash in $obj.torrent"
pass "mktorrent made $opath.torrent (info hash $infohash, $zsize bytes)"

# Debian's opentracker is built with a whitelist (README.Debian): only listed info hashes may be
# announced. It binds TCP and UDP to 127.0.0.1:TRACKER_PORT; as root it chroots to its
# directory (and reads the whitelist there) and runs as nobody.
mkdir -p "$T/tracker"
echo "$infohash" >"$T/tracker/whitelist"
chmod 755 "$T/tracker"
wl=$T/tracker/whitelist
[ "$(id -u)" -ne 0 ] || wl=/whitelist
opentracker -i 127.0.0.1 -p "$TRACKER_PORT" -P "$TRACKER_PORT" -d "$T/tracker" -u nobody \
	-w "$wl" >"$T/tracker/log" 2>&1 &
TRACKER_PID=$!
qhash=$(printf '%s' "$infohash" | sed 's/../%&/g')
scrape() {
	curl -s --max-time 5 "http://127.0.0.1:$TRACKER_PORT/scrape?info_hash=$qhash" || true
}
for _ in $(seq 100); do
	scrape | matches -a 'files' && break
	kill -0 "$TRACKER_PID" 2>/dev/null || fail "opentracker exited: $(cat "$T/tracker/log")"
	sleep 0.1
done
scrape | matches -a 'files' || fail "opentracker does not answer on $ANNOUNCE"
pass "opentracker runs on 127.0.0.1:$TRACKER_PORT with the torrent whitelisted"

# The seeder: aria2c holding a copy of the object file, tracker only (no DHT, local discovery
# or peer exchange), seeding for ever (ratio 0.0), its counters over JSON-RPC.
mkdir -p "$T/seed"
cp "$obj" "$T/seed/$hex"
aria2c --dir="$T/seed" --check-integrity=true --seed-ratio=0.0 --enable-dht=false \
	--enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false \
	--listen-port="$SEED_PORT" --bt-external-ip=127.0.0.1 --file-allocation=none \
	--enable-rpc --rpc-listen-port="$RPC_PORT" --rpc-listen-all=false --rpc-secret=stork \
	--stop-with-process=$$ --summary-interval=0 --console-log-level=warn \
	--log="$T/seed/aria2c.log" --log-level=info "$obj.torrent" >"$T/seed/out" 2>&1 &
SEED_PID=$!
# seed_uploaded: the bytes the seeder has uploaded (its only download is the torrent; -1 until
# it holds the whole object).
seed_uploaded() {
	local r c u
	r=$(curl -s --max-time 5 -d '{"jsonrpc":"2.0","id":"q","method":"aria2.tellActive","params":["token:stork",["uploadLength","completedLength"]]}' \
		"http://127.0.0.1:$RPC_PORT/jsonrpc" || true)
	c=$(printf '%s\n' "$r" | sed -n 's/.*"completedLength":"\([0-9]*\)".*/\1/p')
	u=$(printf '%s\n' "$r" | sed -n 's/.*"uploadLength":"\([0-9]*\)".*/\1/p')
	if [ "$c" = "$zsize" ] && [ -n "$u" ]; then
		echo "$u"
	else
		echo -1
	fi
}
for _ in $(seq 300); do
	scrape | matches -a 'completei[1-9]' && [ "$(seed_uploaded)" = 0 ] && break
	kill -0 "$SEED_PID" 2>/dev/null || fail "the seeding aria2c exited: $(tail -n 5 "$T/seed/out")"
	sleep 0.1
done
scrape | matches -a 'completei[1-9]' || fail "the seeder did not announce itself: $(tail -n 5 "$T/seed/out")"
[ "$(seed_uploaded)" = 0 ] || fail "the seeder does not hold the whole object: $(seed_uploaded)"
pass "aria2c seeds the object (port $SEED_PORT) and the tracker lists it"

# object_gets: nginx's GETs of the object itself (not its .torrent).
object_gets() {
	nginx_requests "\"GET /$opath HTTP"
}

# ---------------------------------------------------------------------------------------------
# 1. BitTorrent works: the bt+http mirror first, http second.
EXEC=(--exec "bt+http=$ADAPTER")
# generous bounds for a loaded machine: the adapter's, under the stall bound
export STORK_ARIA2C_TIMEOUT=25
up0=$(seed_uploaded)
extract_ok "[bt] btpkg extracts through bt+http then http" --store "$T/s1" --low-speed-time 30 \
	"${EXEC[@]}" "$BTURL" "$NGINX_URL/" btpkg 1.0 "$T/d1"
! grep -q 'skipping this mirror' "$T/err" || {
	_show_run
	fail "[bt] a mirror failed"
}
check "[bt] the tree is identical to its source" compare_tree "$T/src" "$T/d1"
[ "$X_FETCHED" = 1 ] || fail "[bt] expected 1 object fetched, the summary says '$X_FETCHED'"
fsck_clean "[bt] the store is clean" "$T/s1"
[ "$(object_gets)" -eq 0 ] || fail "[bt] nginx served the object itself: $(grep -F "/$opath " "$NGINX_DIR/access.log")"
[ "$(nginx_requests "\"GET /$opath\\.torrent HTTP[^\"]*\" 200")" -ge 1 ] ||
	fail "[bt] nginx never served $opath.torrent"
up1=$(seed_uploaded)
[ "$up1" -ge $((up0 + zsize)) ] || fail "[bt] the seeder uploaded $((up1 - up0)) bytes, not the object's $zsize"
pass "[bt] the object came by BitTorrent: the seeder uploaded $((up1 - up0)) bytes, nginx served only its .torrent"
[ "$(nginx_requests '"GET /metadata/[^ ]*\.torrent')" -eq 0 ] ||
	fail "[bt] the adapter asked for a torrent of metadata"
[ "$(nginx_requests '"GET /metadata/[^ ]*\.json HTTP[^"]*" 200')" -ge 1 ] ||
	fail "[bt] nginx served no metadata"
pass "[bt] metadata came over plain HTTP (no .torrent asked for it)"

extract_ok "[bt alone] btpkg extracts from the bt+http mirror alone" --store "$T/s2" \
	--low-speed-time 30 "${EXEC[@]}" "$BTURL" btpkg 1.0 "$T/d2"
check "[bt alone] identical" compare_tree "$T/src" "$T/d2"
up2=$(seed_uploaded)
[ "$(object_gets)" -eq 0 ] && [ "$up2" -ge $((up1 + zsize)) ] ||
	fail "[bt alone] the object did not come by BitTorrent (uploaded $((up2 - up1)), object GETs $(object_gets))"
fsck_clean "[bt alone] store clean" "$T/s2"
pass "[bt alone] a bt+http:// mirror is a whole mirror: metadata by the adapter over HTTP, the object by BitTorrent"

# Through a mount (need_fuse: under CI=true a missing FUSE fails the test).
need_fuse
mount_storkfs "$T/mnt" "store=$T/sm,low_speed_time=30,exec=bt+http=$ADAPTER" \
	"$BTURL" "$NGINX_URL/"
mpath=$T/mnt/btpkg/1.0/usr/share/bt/blob.bin
cmp "$T/src/usr/share/bt/blob.bin" "$mpath" ||
	fail "[mount] $mpath differs from its source"
up3=$(seed_uploaded)
[ "$(object_gets)" -eq 0 ] && [ "$up3" -ge $((up2 + zsize)) ] ||
	fail "[mount] the object did not come by BitTorrent (uploaded $((up3 - up2)), object GETs $(object_gets))"
unmount_storkfs "$T/mnt"
fsck_clean "[mount] store clean" "$T/sm"
pass "[mount] storkfs -o exec=bt+http=... read the file through BitTorrent"
# ---------------------------------------------------------------------------------------------
# 2. The tracker killed, the seeder still up: the same extract falls back to http.
kill "$TRACKER_PID"
{ wait "$TRACKER_PID"; } 2>/dev/null || true
! scrape | matches -a files || fail "the tracker still answers"
export STORK_ARIA2C_TIMEOUT=4
before=$(object_gets)
upb=$(seed_uploaded)
t0=$(date +%s)
extract_ok "[no tracker] btpkg extracts (fresh store)" --store "$T/s3" "${EXEC[@]}" "$BTURL" \
	"$NGINX_URL/" btpkg 1.0 "$T/d3"
t1=$(date +%s)
cp "$T/err" "$T/err.x"
check "[no tracker] identical" compare_tree "$T/src" "$T/d3"
fsck_clean "[no tracker] store clean" "$T/s3"
[ "$(object_gets)" -eq $((before + 1)) ] || fail "[no tracker] nginx served the object $(($(object_gets) - before)) times, not once"
[ "$(seed_uploaded)" = "$upb" ] || fail "[no tracker] the seeder uploaded something"
grep -F "$BTURL" "$T/err.x" | grep -F "$opath" | grep -F "tracker $ANNOUNCE" |
	grep -F 'skipping this mirror' | matches 'Connection refused' || {
	cat "$T/err.x" >&2
	fail "[no tracker] the log does not name the bt+http mirror and the tracker's failure"
}
[ $((t1 - t0)) -le 20 ] || fail "[no tracker] took $((t1 - t0)) s (the adapter's bound is 4 s)"
pass "[no tracker] fell back to http in $((t1 - t0)) s: $(grep -F "$BTURL" "$T/err.x" | grep -F "$opath" | head -n 1)"

# ---------------------------------------------------------------------------------------------
# 3. An adapter slower than the stall bound: killed after 4 s with its aria2c, http serves.
export STORK_ARIA2C_TIMEOUT=60
before=$(object_gets)
t0=$(date +%s)
extract_ok "[stalled adapter] btpkg extracts (fresh store)" --store "$T/s4" --low-speed-time 4 \
	"${EXEC[@]}" "$BTURL" "$NGINX_URL/" btpkg 1.0 "$T/d4"
t1=$(date +%s)
check "[stalled adapter] identical" compare_tree "$T/src" "$T/d4"
[ "$(object_gets)" -eq $((before + 1)) ] || fail "[stalled adapter] nginx did not serve the object"
grep -F "$BTURL" "$T/err" | grep -F "$opath" | matches 'stalled: nothing for 4 s' || {
	_show_run
	fail "[stalled adapter] the log does not say the adapter stalled"
}
[ $((t1 - t0)) -le 20 ] || fail "[stalled adapter] took $((t1 - t0)) s"
sleep 0.5
! pgrep -f "aria2c --dir=$TMPDIR/" >/dev/null ||
	fail "an aria2c outlived its adapter: $(pgrep -af "aria2c --dir=$TMPDIR/")"
pass "[stalled adapter] killed with its aria2c after 4 s; http served ($((t1 - t0)) s)"
kill "$SEED_PID" 2>/dev/null || true
{ wait "$SEED_PID"; } 2>/dev/null || true
done_ok
