#!/usr/bin/env bash
# Big files by the piece (store/README.md "Chunks"). A 512 MiB file of seeded random bytes
# (STORK_CHUNKS_MB=256 halves it: contrib/test does under ASan) is published: its manifest
# entry lists chunks (spec_version 3), every chunk between the documented minimum and maximum.
# Through a real mount served by nginx:
# - 1 MiB read at a random offset (O_DIRECT: no kernel readahead) returns the source's bytes
#   and nginx served only the chunks that range touches: at most 3, each once, and not a byte
#   more than their signed sizes; no other object;
# - a second version with 4 KiB inserted in the middle adds at most 3 new objects to the
#   repository, and reads right across the insertion;
# - a chunk corrupted on the server: a read that touches it fails with EIO, and a read of
#   another range of the same file (also never fetched before) still returns the right bytes;
#   the log names the chunk.
# Then `stork extract` of a 24 MiB chunked file reassembles it (its SHA-256 checked), and
# refuses it, leaving nothing, when one of its chunks is corrupted on the server.
. "$(dirname "$0")/lib.sh"

need python3
need nginx
need dd
need_fuse

MB=${STORK_CHUNKS_MB:-512}
MIB=1048576
CHUNK_MIN=$((512 * 1024))
CHUNK_MAX=$((4 * MIB))
make_repo
mkdir -p "$T/v1" "$T/v2"
# the source: seeded random bytes, written 1 MiB at a time (not all in memory)
python3 -c 'import random, sys
r = random.Random(int(sys.argv[1]))
with open(sys.argv[2], "wb") as f:
    for _ in range(int(sys.argv[3])):
        f.write(r.randbytes(1 << 20))' "$STORK_TEST_SEED" "$T/v1/big" "$MB"
echo small >"$T/v1/small"
publish big 1 "$T/v1"
M1=$(manifest_file big 1)

# the manifest lists the chunks
python3 - "$M1" "$((MB * MIB))" "$CHUNK_MIN" "$CHUNK_MAX" >"$T/chunks1" <<'EOF' || fail "manifest of big 1: $(cat "$T/chunks1")"
import json, sys
m = json.load(open(sys.argv[1]))
size, lo, hi = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
assert m["spec_version"] == 3, "spec_version %r, want 3" % m["spec_version"]
f = [e for e in m["files"] if e["path"] == "big"][0]
s = [e for e in m["files"] if e["path"] == "small"][0]
assert "chunks" not in s, "a small file has chunks"
assert f["size"] == size
off = 0
for i, c in enumerate(f["chunks"]):
    assert c["offset"] == off, "chunk %d at %d, want %d" % (i, c["offset"], off)
    last = i == len(f["chunks"]) - 1
    assert c["size"] <= hi and (last or c["size"] >= lo), "chunk %d: %d bytes" % (i, c["size"])
    off += c["size"]
    print(c["sha256"], c["offset"], c["size"], c["zsize"])
assert off == size
EOF
NCHUNKS=$(wc -l <"$T/chunks1")
pass "big 1: $NCHUNKS chunks in a spec_version 3 manifest, sizes within $CHUNK_MIN..$CHUNK_MAX"

start_nginx "$REPO"
MNT=$T/mnt
STORE=$T/store
mount_storkfs "$MNT" "store=$STORE,timeout=30" "$NGINX_URL"
V=$MNT/big/1
[ "$(stat -c %s "$V/big")" = "$((MB * MIB))" ] || fail "big 1: size through the mount $(stat -c %s "$V/big")"
MARK=$(wc -l <"$NGINX_DIR/access.log")

# chunks_in A B: "HASH ZSIZE" of the chunks of $T/chunks1 that [A, B) touches
chunks_in() {
	awk -v a="$1" -v b="$2" '$2 < b && $2 + $3 > a { print $1, $4 }' "${3:-$T/chunks1}"
}
# objects_served: "HASH BYTES" of each object request nginx answered since the mark (nginx
# logs a request after its last byte is sent, maybe after the client has it: a second's grace)
objects_served() {
	sleep 1
	tail -n +$((MARK + 1)) "$NGINX_DIR/access.log" |
		awk '$7 ~ /^\/objects\// { n = split($7, p, "/"); print p[n], $10 }'
}

# --- 1 MiB at a random offset -------------------------------------------------------------
rand $(((MB - 1) * 256))
OFF=$((R * 4096))
read_range() { # FILE OFF LEN: the bytes, O_DIRECT
	dd if="$1" bs="$3" count=1 skip="$2" iflag=direct,skip_bytes,fullblock status=none
}
read_range "$V/big" "$OFF" "$MIB" >"$T/got" || fail "reading 1 MiB at $OFF through the mount"
cmp -s "$T/got" <(dd if="$T/v1/big" bs="$MIB" count=1 skip="$OFF" iflag=skip_bytes,fullblock status=none) ||
	fail "1 MiB at $OFF: not the source's bytes"
chunks_in "$OFF" $((OFF + MIB)) | sort >"$T/want"
objects_served | sort >"$T/served"
echo "# 1 MiB at $OFF touches $(wc -l <"$T/want") chunk(s); nginx served: $(awk '{ n++; b += $2 } END { print n + 0, "objects,", b + 0, "bytes" }' "$T/served")"
[ "$(wc -l <"$T/want")" -le 3 ] || fail "1 MiB touches $(wc -l <"$T/want") chunks (minimum chunk size $CHUNK_MIN)"
diff "$T/want" "$T/served" >/dev/null || {
	echo "wanted (hash zsize):" >&2
	cat "$T/want" >&2
	echo "served:" >&2
	cat "$T/served" >&2
	fail "nginx served other objects or bytes than the chunks of [$OFF, +1 MiB)"
}
fetched=$(awk '{ b += $2 } END { print b + 0 }' "$T/served")
[ "$fetched" -le $((3 * CHUNK_MAX)) ] || fail "fetched $fetched bytes for a 1 MiB read"
pass "1 MiB at a random offset read right, fetching only the $(wc -l <"$T/want") chunk(s) it touches ($fetched bytes of a $MB MiB file)"

# --- a second version: 4 KiB inserted in the middle ----------------------------------------
MID=$((MB * MIB / 2 + 12345))
python3 -c 'import random, sys
src, dst, mid = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, "rb") as f, open(dst, "wb") as o:
    left = mid
    while left:
        b = f.read(min(left, 1 << 20)); o.write(b); left -= len(b)
    o.write(random.Random(int(sys.argv[4]) + 1).randbytes(4096))
    while True:
        b = f.read(1 << 20)
        if not b: break
        o.write(b)' "$T/v1/big" "$T/v2/big" "$MID" "$STORK_TEST_SEED"
echo small >"$T/v2/small"
before=$(count_objects)
publish big 2 "$T/v2"
added=$(($(count_objects) - before))
echo "# big 2 added $added objects to the repository ($before before)"
[ "$added" -le 3 ] || fail "4 KiB inserted in the middle of a $MB MiB file added $added objects (want at most 3)"
[ "$added" -ge 1 ] || fail "the edited version added no object"
pass "4 KiB inserted in the middle: $added new chunk object(s), the rest shared with version 1"
python3 - "$(manifest_file big 2)" >"$T/chunks2" <<'EOF'
import json, sys
f = [e for e in json.load(open(sys.argv[1]))["files"] if e["path"] == "big"][0]
for c in f["chunks"]:
    print(c["sha256"], c["offset"], c["size"], c["zsize"])
EOF
kill -HUP "$SFS_PID" # refresh: the mount shows big 2
for _ in $(seq 300); do
	[ -e "$MNT/big/2" ] && break
	sleep 0.1
done
[ -e "$MNT/big/2" ] || fail "the mount does not show big 2 30 s after SIGHUP"
START=$((MID - 300000))
read_range "$MNT/big/2/big" "$START" "$MIB" >"$T/got" || fail "reading big 2 across the insertion"
cmp -s "$T/got" <(dd if="$T/v2/big" bs="$MIB" count=1 skip="$START" iflag=skip_bytes,fullblock status=none) ||
	fail "big 2 across the insertion: not the source's bytes"
pass "big 2 reads right across the insertion"
# through the page cache (kernel readahead, reads of any size), 3 MiB across chunk boundaries
dd if="$MNT/big/2/big" bs="$MIB" count=3 skip="$((MID + 5 * MIB))" iflag=skip_bytes,fullblock status=none >"$T/got" ||
	fail "a buffered read of big 2"
cmp -s "$T/got" <(dd if="$T/v2/big" bs="$MIB" count=3 skip="$((MID + 5 * MIB))" iflag=skip_bytes,fullblock status=none) ||
	fail "big 2, a buffered read of 3 MiB: not the source's bytes"
pass "a buffered read of 3 MiB across chunks reads right"

# --- a chunk corrupted on the server -------------------------------------------------------
# a chunk of version 1 that no read fetched yet, and a range far from it, also not fetched
awk '{ print $1 }' "$T/served" >"$T/fetched"
pick=$(awk -v n="$NCHUNKS" 'NR > 2 && NR < n - 2' "$T/chunks1" | grep -v -F -f "$T/fetched" |
	grep -v -F -f <(cut -d' ' -f1 "$T/chunks2" | sort | uniq -u) | head -n 1)
[ -n "$pick" ] || fail "no chunk left to corrupt"
read -r BAD BAD_OFF BAD_SIZE _ <<<"$pick"
python3 -c 'import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xff
open(p, "wb").write(b)' "$REPO/$(object_path "$BAD")"
echo "# corrupted chunk $BAD ([$BAD_OFF, +$BAD_SIZE)) on the server"
if read_range "$V/big" $((BAD_OFF + BAD_SIZE / 2 / 4096 * 4096)) 65536 >/dev/null 2>"$T/dd.err"; then
	fail "a read inside the corrupted chunk succeeded"
fi
grep -q "Input/output error" "$T/dd.err" || fail "a read inside the corrupted chunk: $(cat "$T/dd.err"), want EIO"
pass "a read inside the corrupted chunk fails with EIO"
# a read that straddles its start: EIO too
if read_range "$V/big" $(((BAD_OFF - 8192) / 4096 * 4096)) 65536 >/dev/null 2>"$T/dd.err"; then
	fail "a read across the corrupted chunk's start succeeded"
fi
grep -q "Input/output error" "$T/dd.err" || fail "a read across the corrupted chunk: $(cat "$T/dd.err"), want EIO"
# another range of the same file, never fetched: its bytes
if [ "$BAD_OFF" -gt $((MB * MIB / 2)) ]; then O2=$((4 * MIB)); else O2=$(((MB - 8) * MIB)); fi
read_range "$V/big" "$O2" "$MIB" >"$T/got" || fail "reading [$O2, +1 MiB) after the corrupted chunk"
cmp -s "$T/got" <(dd if="$T/v1/big" bs="$MIB" count=1 skip="$O2" iflag=skip_bytes,fullblock status=none) ||
	fail "[$O2, +1 MiB): not the source's bytes"
pass "another range of the file still reads right"
grep -q "$BAD" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "the log does not name the corrupted chunk $BAD"
}
pass "the log names the corrupted chunk"
unmount_storkfs "$MNT"
fsck_clean "the node store (chunks fetched by reads) is clean" "$STORE"

# --- stork extract reassembles (and checks) a chunked file -------------------------------
# (a 24 MiB file of its own: extracting the big one would only copy more bytes)
mkdir -p "$T/v3"
rnd $((STORK_TEST_SEED + 2)) $((24 * MIB)) >"$T/v3/mid"
publish mid 1 "$T/v3"
extract --store "$T/store2" "$NGINX_URL" mid 1 "$T/x"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork extract mid 1"
}
cmp -s "$T/x/mid" "$T/v3/mid" || fail "extracted mid 1: not the source's bytes"
pass "stork extract of a chunked file reassembles it"
BAD2=$(python3 -c 'import json, sys
f = [e for e in json.load(open(sys.argv[1]))["files"] if e["path"] == "mid"][0]
print(f["chunks"][len(f["chunks"]) // 2]["sha256"])' "$(manifest_file mid 1)")
python3 -c 'import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xff
open(p, "wb").write(b)' "$REPO/$(object_path "$BAD2")"
extract --store "$T/store3" "$NGINX_URL" mid 1 "$T/x1"
[ "$RC" -ne 0 ] || fail "stork extract of mid 1 succeeded with a corrupted chunk on the only mirror"
printf '%s\n' "$ERR" | matches "$BAD2" || fail "stork extract mid 1 failed without naming the chunk: $ERR"
[ ! -e "$T/x1" ] || fail "a failed extract left $T/x1"
pass "stork extract refuses a corrupted chunk and leaves nothing"

# --- stork publish --no-chunks: the file whole, a manifest older clients read ---------------
before=$(count_objects)
publish mid 2 "$T/v3" --no-chunks
python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
f = [e for e in m["files"] if e["path"] == "mid"][0]
assert m["spec_version"] == 1 and "chunks" not in f, m["spec_version"]' "$(manifest_file mid 2)" ||
	fail "publish --no-chunks: the manifest has chunks or spec_version 3"
[ "$(count_objects)" -eq $((before + 1)) ] || fail "publish --no-chunks added $(($(count_objects) - before)) objects, want the 1 whole file"
pass "publish --no-chunks stores the big file whole in a spec_version 1 manifest"
done_ok
