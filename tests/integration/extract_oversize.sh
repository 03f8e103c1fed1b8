#!/usr/bin/env bash
# A mirror that sends more than the signed length is cut off without more than the signed
# length being written: more bytes than the object's signed zsize without a Content-Length
# (the body ends when the connection closes), a Content-Length above it, an object file larger
# than signed, and a compression bomb: a zstd stream no longer than the signed zsize that
# unpacks to 50 MiB while the manifest says 200000 bytes. Each extract runs with a file size
# limit of 4 MiB (ulimit -f), so writing any file past that kills it (SIGXFSZ); the extract
# succeeds from the next mirror, the log names the mirror and the object, and the store holds
# only objects whose content hashes to their names, at their signed sizes.
. "$(dirname "$0")/lib.sh"

need python3 nginx zstd
make_repo
mkdir -p "$T/src"
rnd 1 200000 >"$T/src/big"
rnd 2 3000 >"$T/src/small"
publish over 1.0 "$T/src"
read -r o_big size_big _ < <(manifest_hashes over 1.0 | grep ' big$')
p_big=$(object_path "$o_big")
zsize_big=$(python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["files"]:
    if e["path"] == "big":
        print(e["zsize"])' "$(manifest_file over 1.0)")

start_nginx "$REPO"
good=$NGINX_URL
start_faultserver "$REPO"

# bad mirrors on copies of the repository: one with a bomb in place of big's object, one with
# a 5 MiB object file
cp -a "$REPO" "$T/bomb"
head -c 50M /dev/zero | zstd -19 -q -c >"$T/bomb/$p_big"
bsize=$(stat -c %s "$T/bomb/$p_big")
[ "$bsize" -le "$zsize_big" ] || fail "test setup: the bomb is $bsize bytes, more than the signed zsize $zsize_big"
[ "$(zstd -dc "$T/bomb/$p_big" | wc -c)" -eq $((50 * 1024 * 1024)) ] || fail "test setup: the bomb does not unpack to 50 MiB"
echo "# bomb: $bsize compressed bytes (signed zsize $zsize_big) unpack to 50 MiB (signed size $size_big)"
start_nginx "$T/bomb"
bomb=$NGINX_URL
cp -a "$REPO" "$T/fat"
rnd 3 $((5 * 1024 * 1024)) >"$T/fat/$p_big"
start_nginx "$T/fat"
fat=$NGINX_URL

# the limit works: a process writing past it dies
set +e
bash -c 'ulimit -f 4096 && exec head -c 5M /dev/zero' >"$T/capped-probe"
rc=$?
set -e
[ "$rc" -eq 153 ] || fail "test setup: ulimit -f 4096 did not stop a 5 MiB write (exit $rc)"

# capped_extract ARGS...: stork extract with files limited to 4 MiB
capped_extract() {
	run timeout -k 10 "$EXTRACT_TIMEOUT" bash -c 'ulimit -f 4096 && exec "$@"' sh \
		"$STORK" extract --root "$ROOT" "$@"
}

# over NAME MIRROR WORDS: [MIRROR, good] extracts; the log names MIRROR, big's object
over() {
	local name=$1 mirror=$2
	capped_extract --store "$T/store-$name" "$mirror" "$good" over 1.0 "$T/dest-$name"
	if [ "$RC" -ne 0 ]; then
		_show_run
		[ "$RC" -ne 153 ] || fail "$name: stork extract wrote a file past 4 MiB (killed by SIGXFSZ)"
		fail "$name: stork extract exited $RC"
	fi
	pass "$name: the extract from [$name mirror, good mirror] succeeds within a 4 MiB file size limit"
	cp "$T/err" "$T/err-$name"
	check "$name: identical to the source" compare_tree "$T/src" "$T/dest-$name"
	grep -F "$mirror" "$T/err" | matches -F "$p_big" || {
		_show_run
		fail "$name: no log line names $mirror and $p_big"
	}
	pass "$name: the log names the mirror and the object"
	fsck_clean "$name: stork fsck finds the store clean" "$T/store-$name"
	check "$name: stored objects hold what their names hash" store_hashes_ok "$T/store-$name"
	[ "$(stat -c %s "$T/store-$name/$p_big")" -eq "$size_big" ] || fail "$name: big's object is not $size_big bytes"
	pass "$name: big's object has its signed size"
}

fault_set "[{\"match\": \"^/$p_big\$\", \"fault\": \"extra\", \"bytes\": $((5 * 1024 * 1024)), \"fill\": \"random\"}]"
over extra-no-length "$FAULT_URL"
fault_set "[{\"match\": \"^/$p_big\$\", \"fault\": \"extra\", \"bytes\": $((5 * 1024 * 1024)), \"fill\": \"random\", \"length\": \"full\"}]"
over extra-announced "$FAULT_URL"
grep -q " 200 .* extra" "$FAULT_DIR/access.log" || fail "the fault server never sent the extra bytes"
over fat-object "$fat"
over bomb "$bomb"
grep -F "$bomb" "$T/err-bomb" | grep -F "$p_big" | matches -E "more than|unpacks|exceed|too" || {
	cat "$T/err-bomb" >&2
	fail "bomb: the log line does not say the object unpacks to more than its size"
}
pass "bomb: the log says the object unpacks to more than its signed size"
stop_faultserver
done_ok
