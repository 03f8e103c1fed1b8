#!/usr/bin/env bash
# stork prefetch: a package of 10,000 small files into an empty node store from nginx, with a
# progress bar under a pseudo-terminal and one summary line otherwise; every object verified
# (fsck clean, an extract afterwards sends no object request); a mirror that corrupts a few
# objects (with a good second mirror, and alone); a prefetch killed with -9 midway, then fsck
# and a rerun.
. "$STORK_TESTS/integration/lib.sh"
need nginx python3 script timeout

# STORK_PREFETCH_FILES: fewer under the sanitizers (contrib/test), where publishing 10,000
# files alone takes minutes; the plain run keeps the 10,000 the issue asks for.
NFILES=${STORK_PREFETCH_FILES:-10000}
PF_TIMEOUT=${PF_TIMEOUT:-300}
_t_start=$(date +%s%N)
# stamp WHAT: how long the test has run so far (the box may be loaded: no assertion on it)
stamp() {
	echo "# $(((($(date +%s%N) - _t_start) / 1000000))) ms: $*"
}

# gen_tree DIR N SEED: N files of 1..3000 random bytes in 100 directories, each starting with
# its number (short random files would repeat one another now and then); file 7 of each
# hundred repeats file 3's content (one object for two files).
gen_tree() {
	python3 - "$1" "$2" "$3" <<-'EOF'
		import os, random, sys
		top, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
		r = random.Random(seed)
		prev = b""
		for i in range(n):
		    d = os.path.join(top, "d%02d" % (i % 100))
		    os.makedirs(d, exist_ok=True)
		    data = prev if i % 100 == 7 else b"%d:" % i + r.randbytes(r.randint(1, 3000))
		    if i % 100 == 3:
		        prev = data
		    with open(os.path.join(d, "f%05d" % i), "wb") as f:
		        f.write(data)
	EOF
}

# Bulk files (sources, the repository, most stores: 10,000 files each) go to /dev/shm when
# there is one: publishing writes and fsyncs one repository object per file (seconds on a
# tmpfs, a minute on a loaded disk), and removing 10,000 files from a loaded disk takes half
# a minute. The stores with few objects stay on the disk with the test's other files
# (tests/bench/prefetch measures a store on the disk).
B=$T/bulk
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	B=$(mktemp -d /dev/shm/stork-prefetch.XXXXXX)
	on_exit 'rm_rf "$B"'
fi
mkdir -p "$B"
gen_tree "$B/src" "$NFILES" "$STORK_TEST_SEED"
gen_tree "$B/few" 200 $((STORK_TEST_SEED + 1))
t0=$(date +%s%N)
make_repo --in "$B/pub"
publish many 1.0 "$B/src" --quiet
publish few 1.0 "$B/few" --quiet
echo "# published $NFILES + 200 files in $((($(date +%s%N) - t0) / 1000000)) ms (in $B)"
mkdir -p "$B/www"
ln -s ../pub/repo "$B/www/repo" # nginx serves the repository, not the keys next to it
distinct=$(manifest_hashes many 1.0 | cut -d' ' -f1 | sort -u | wc -l)
[ "$distinct" -eq $((NFILES - NFILES / 100)) ] || fail "expected $((NFILES - NFILES / 100)) distinct objects, the manifest has $distinct"
pass "published many 1.0: $NFILES files, $distinct distinct objects"

start_nginx "$B/www"
mirror=$NGINX_URL/repo

# store_objects STORE: the file objects the store indexes (stork status: its objects, less
# the manifests, which a node keeps as objects too so that peers can serve them).
store_objects() {
	"$STORK" status "$1" | awk '$1 == "objects" { o = $2 } $1 == "manifests" { m = $2 } END { print o - m }'
}

# ---- under a pseudo-terminal: a progress bar, then the summary
store=$B/store
t0=$(date +%s%N)
set +e
timeout -k 10 "$PF_TIMEOUT" script -qfec \
	"'$STORK' prefetch --root '$ROOT' --store '$store' '$mirror' many" /dev/null >"$T/tty.out" 2>&1
rc=$?
set -e
pty_ms=$((($(date +%s%N) - t0) / 1000000))
echo "# prefetch of $NFILES files under a pty: $pty_ms ms"
[ "$rc" -eq 0 ] || {
	head -c 3000 "$T/tty.out" >&2
	fail "stork prefetch under a pty exited $rc"
}
pass "stork prefetch under a pseudo-terminal exits 0"
redraws=$(tr -cd '\r' <"$T/tty.out" | wc -c)
[ "$redraws" -ge 2 ] || fail "expected the bar redrawn at least twice (\\r), found $redraws: $(head -c 500 "$T/tty.out")"
last_bar=$(tr '\r' '\n' <"$T/tty.out" | grep -a 'objects, ' | tail -n 1)
for field in ' MB / ' "/$distinct objects" ' MB/s' 'done'; do
	grep -qF -- "$field" <<<"$last_bar" || fail "the progress bar lacks '$field': $last_bar"
done
# A redraw while it runs shows the rate and the time left; a prefetch done within a few
# redraws (1,000 files from the version pack under ASan) may show only the final bar.
if [ "$pty_ms" -ge 1000 ]; then
	tr '\r' '\n' <"$T/tty.out" | grep -a -qE '[0-9]+/'"$distinct"' objects, [0-9.]+ MB/s, ETA ' ||
		fail "no redraw shows a rate and an ETA: $(head -c 600 "$T/tty.out")"
fi
pass "the progress bar is redrawn ($redraws times) with bytes, objects, rate and ETA"
grep -aqE "^prefetched many 1.0: $distinct objects \\($distinct fetched, 0 already stored\\), [0-9.]+ MB in [0-9.]+ s \\([0-9.]+ MB/s\\)" "$T/tty.out" ||
	fail "no summary line after the bar: $(tail -c 400 "$T/tty.out")"
pass "the summary counts $distinct objects fetched"
grep -aqF "; $distinct of them from 1 version pack" "$T/tty.out" ||
	fail "the objects did not come in the version pack: $(tail -c 400 "$T/tty.out")"
[ "$(nginx_requests '"GET /repo/objects/')" -eq 0 ] && [ "$(nginx_requests '"GET /repo/targets/many/[0-9a-f]{64}\.1\.0\.pack ')" -eq 1 ] ||
	fail "expected one pack request and no object request: $(grep -c objects/ "$NGINX_DIR/access.log") object requests"
pass "one request for the version pack, none per object"
fsck_clean "stork fsck is clean after the prefetch" "$store"
[ "$(store_objects "$store")" -eq "$distinct" ] || fail "the store indexes $(store_objects "$store") objects, not $distinct"
check "every object file in the store hashes to its name; tmp/ is empty" store_hashes_ok "$store"
stamp "prefetch checked"
before=$(nginx_requests '/objects/')
# Into the bulk directory: copies on /dev/shm (another file system) cost less than the mode
# variants hard links need, which are fsynced one by one.
xdir=$B
extract_ok "an extract after the prefetch" --store "$store" "$mirror" many 1.0 "$xdir/x1"
[ "$X_FETCHED" = 0 ] || fail "the extract fetched $X_FETCHED objects"
[ "$(nginx_requests '/objects/')" -eq "$before" ] || fail "the extract sent $(($(nginx_requests '/objects/') - before)) object requests"
compare_tree "$B/src" "$xdir/x1" || fail "the extracted tree differs from the source"
pass "the extract sends no object request and matches the source"

stamp "without a terminal"
# ---- without a terminal: exactly one summary line, nothing on stderr; at most 400 open
# files (soft and hard): a batch holds at most 256 objects open
run timeout -k 10 "$PF_TIMEOUT" bash -c 'ulimit -n 400 && exec "$@"' sh \
	"$STORK" prefetch --jobs 16 --root "$ROOT" --store "$B/store2" "$mirror" many=1.0
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork prefetch without a tty exited $RC"
}
[ "$(wc -l <"$T/out")" -eq 1 ] && [ ! -s "$T/err" ] || {
	_show_run
	fail "expected exactly one line on stdout and nothing on stderr"
}
out_has "one summary line without a terminal, under ulimit -n 400" "prefetched many 1.0: $distinct objects ($distinct fetched, 0 already stored), " "$distinct of them from 1 version pack"
run "$STORK" prefetch --root "$ROOT" --store "$B/store2" "$mirror" many=all
[ "$RC" -eq 0 ] || {
	_show_run
	fail "a second prefetch exited $RC"
}
out_has "a second prefetch finds everything stored" "($((0)) fetched, $distinct already stored)"
fsck_clean "stork fsck is clean after the prefetch without a tty" "$B/store2"

stamp "a mirror that corrupts"
# ---- a mirror that corrupts a few objects
mapfile -t bad < <(manifest_hashes few 1.0 | cut -d' ' -f1 | sort -u | head -n 4)
re=$(printf '%s|' "${bad[@]}")
re="^/objects/../(${re%|})\$"
start_faultserver "$REPO"
# The version pack corrupted in its middle, and every object: the pack's object there does
# not verify, is asked of the first mirror alone (corrupt again) and comes from the second.
fault_set '[{"match": "^/objects/", "fault": "corrupt"}, {"match": "\\.pack$", "fault": "corrupt"}]'
few_distinct=$(manifest_hashes few 1.0 | cut -d' ' -f1 | sort -u | wc -l)
run timeout -k 10 "$PF_TIMEOUT" "$STORK" prefetch --root "$ROOT" --store "$T/store3" "$FAULT_URL" "$mirror" few
[ "$RC" -eq 0 ] || {
	_show_run
	fail "prefetch with a corrupting first mirror and a good second one exited $RC"
}
out_has "a corrupting first mirror, a good second one: everything arrives" "($few_distinct fetched, 0 already stored)"
out_has "most objects came in the corrupted pack" "of them from 1 version pack"
err_has "the pack's object that does not verify is told" "version pack" "1 of" "did not verify"
err_has "the corrupting mirror is named" "$FAULT_URL" "hash mismatch"
[ "$(fault_requests '\.pack 200 [0-9]+ corrupt$')" -eq 1 ] || fail "the fault server did not corrupt the pack"
[ "$(fault_requests ' /objects/.* corrupt$')" -eq 1 ] || fail "expected one object asked of the corrupting mirror"
pass "the pack's corrupted object came from the good mirror"
fsck_clean "stork fsck is clean after the corrupting mirror" "$T/store3"
[ "$(store_objects "$T/store3")" -eq "$few_distinct" ] || fail "store3 indexes $(store_objects "$T/store3") objects, not $few_distinct"
extract_ok "extract after the corrupting mirror" --store "$T/store3" "$mirror" few 1.0 "$T/x3"
compare_tree "$B/few" "$T/x3" || fail "the tree differs"
pass "the objects are the published ones"

# Without a pack (404: a repository need not have one) from the corrupting mirror alone.
fault_set "[{\"match\": \"$re\", \"fault\": \"corrupt\"}, {\"match\": \"\\\\.pack\$\", \"fault\": \"status\", \"status\": 404}]"
run timeout -k 10 "$PF_TIMEOUT" "$STORK" prefetch --root "$ROOT" --store "$T/store4" "$FAULT_URL" few=1.0
[ "$RC" -eq 1 ] || {
	_show_run
	fail "prefetch from the corrupting mirror alone: expected exit 1, got $RC"
}
for h in "${bad[@]}"; do
	grep -F "object $h" "$T/err" | matches -E 'few 1\.0: d[0-9]+/f[0-9]+' ||
		fail "the failure of object $h does not name it and its file: $(head -c 2000 "$T/err")"
done
out_has "only the bad mirror: exit 1, the summary counts the failures" "$((few_distinct - ${#bad[@]})) fetched, 0 already stored, ${#bad[@]} failed)"
pass "each corrupted object is named with its file"
fsck_clean "stork fsck is clean after the failed prefetch" "$T/store4"
[ "$(store_objects "$T/store4")" -eq $((few_distinct - ${#bad[@]})) ] ||
	fail "store4 indexes $(store_objects "$T/store4") objects, not $((few_distinct - ${#bad[@]}))"
pass "the good objects are stored, the corrupted ones not"

# A pack cut off midway by the first mirror: the second one sends it whole; no object request.
fault_set '[{"match": "\\.pack$", "fault": "truncate"}]'
before=$(fault_requests ' /objects/')
run timeout -k 10 "$PF_TIMEOUT" "$STORK" prefetch --root "$ROOT" --store "$T/store4b" "$FAULT_URL" "$mirror" few
[ "$RC" -eq 0 ] || {
	_show_run
	fail "prefetch with a pack truncated by the first mirror exited $RC"
}
out_has "a pack truncated by the first mirror: the second sends it" "($few_distinct fetched, 0 already stored)" "$few_distinct of them from 1 version pack"
err_has "the truncating mirror is named" "$FAULT_URL" "truncated"
[ "$(fault_requests ' /objects/')" -eq "$before" ] || fail "objects were fetched one by one"
fsck_clean "stork fsck is clean after the truncated pack" "$T/store4b"

# A pack the first mirror refuses (403, as a bucket without list permission answers for a
# missing key): told, but the mirror is not marked failed: it still serves every object.
fault_set '[{"match": "\\.pack$", "fault": "status", "status": 403}]'
before=$(fault_requests ' /objects/')
run timeout -k 10 "$PF_TIMEOUT" "$STORK" prefetch --root "$ROOT" --store "$T/store4c" "$FAULT_URL" "$mirror" few
[ "$RC" -eq 0 ] || {
	_show_run
	fail "prefetch with a pack refused by the first mirror exited $RC"
}
out_has "a pack refused with 403 by the first mirror: the second sends it" "($few_distinct fetched, 0 already stored)" "$few_distinct of them from 1 version pack"
err_has "the refusal is told" "$FAULT_URL" "HTTP 403"
if grep -F "$FAULT_URL" "$T/err" | matches 'skipping this'; then
	fail "a refused pack marked the mirror failed: $(cat "$T/err")"
fi
pass "the mirror that refused the pack is not marked failed for it"
stop_faultserver

stamp "kill -9 midway"
# ---- kill -9 midway, fsck, rerun
store5=$B/store5
# The pack trickles (a few seconds for all of it), so that the kill lands midway.
start_faultserver "$REPO"
fault_set '[{"match": "\\.pack$", "fault": "trickle", "rate": 1000000}]'
"$STORK" prefetch --jobs 64 --root "$ROOT" --store "$store5" "$FAULT_URL" many >"$T/k.out" 2>&1 &
pid=$!
for _ in $(seq 600); do
	n=$( (find "$store5/objects" -type f 2>/dev/null || true) | wc -l)
	[ "$n" -lt 300 ] || break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$pid" 2>/dev/null || fail "the prefetch finished before it could be killed: $(cat "$T/k.out")"
kill -9 "$pid"
{ wait "$pid"; } 2>/dev/null || true
echo "# killed with $(find "$store5/objects" -type f | wc -l) object files and $(find "$store5/tmp" -type f | wc -l) temporary files"
fsck_clean "stork fsck is clean after kill -9 midway" "$store5"
check "every object file after the kill hashes to its name" store_hashes_ok "$store5"
kept=$(store_objects "$store5")
stop_faultserver
run timeout -k 10 "$PF_TIMEOUT" "$STORK" prefetch --root "$ROOT" --store "$store5" "$mirror" many
[ "$RC" -eq 0 ] || {
	_show_run
	fail "the rerun after kill -9 exited $RC"
}
out_has "the rerun completes, counting what the killed run stored" "($((distinct - kept)) fetched, $kept already stored)"
fsck_clean "stork fsck is clean after the rerun" "$store5"
[ "$(store_objects "$store5")" -eq "$distinct" ] || fail "store5 indexes $(store_objects "$store5") objects, not $distinct"
pass "after the rerun the store holds every object"

stamp "no pack, then stork repo pack"
# ---- a version published without a pack goes object by object; `stork repo pack` adds it
gen_tree "$T/lone" 40 $((STORK_TEST_SEED + 2))
publish lone 1.0 "$T/lone" --quiet --no-pack
ls "$REPO/targets/lone/"*.pack >/dev/null 2>&1 && fail "--no-pack wrote a pack"
lone=$(manifest_hashes lone 1.0 | cut -d' ' -f1 | sort -u | wc -l)
before=$(nginx_requests '"GET /repo/objects/')
run "$STORK" prefetch --root "$ROOT" --store "$T/s7" "$mirror" lone
out_has "without a pack: every object on its own" "($lone fetched, 0 already stored)"
[ "$(($(nginx_requests '"GET /repo/objects/') - before))" -eq "$lone" ] || fail "expected $lone object requests"
run "$STORK" repo pack "$REPO"
out_has "stork repo pack writes the missing pack" "packs: 1 written, 2 already there, 0 versions"
ls "$REPO/targets/lone/"*.1.0.pack >/dev/null || fail "no pack for lone 1.0"
before=$(nginx_requests '"GET /repo/objects/')
run "$STORK" prefetch --root "$ROOT" --store "$T/s8" "$mirror" lone
out_has "then its pack serves it" "($lone fetched, 0 already stored)" "$lone of them from 1 version pack"
[ "$(nginx_requests '"GET /repo/objects/')" -eq "$before" ] || fail "objects were fetched one by one"
expect_rc 1 "stork repo pack of a package that is not there" "$STORK" repo pack "$REPO" nosuch
err_has "it says so" "no package nosuch is published here"

stamp "usage"
# ---- usage
expect_rc 2 "a package before a mirror is a usage error" "$STORK" prefetch --root "$ROOT" --store "$T/s6" many "$mirror"
expect_rc 2 "an invalid version is a usage error" "$STORK" prefetch --root "$ROOT" --store "$T/s6" "$mirror" 'many=1 0'
expect_rc 1 "an unsigned version fails verification" "$STORK" prefetch --root "$ROOT" --store "$T/s6" "$mirror" many=9.9
stamp "end"
done_ok
