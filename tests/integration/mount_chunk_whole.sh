#!/usr/bin/env bash
# A file stored in chunks that the node reads whole gets its whole object too, and later opens
# pass it through (fs/README.md "Memory", fs/whole.c). c 1.0 holds big (24 MB of random bytes,
# stored in chunks: above 4 MiB), part (12 MB, in chunks) and small (stored whole). The daemon
# runs as users run it (without -f):
#   1. big read whole through a fresh mount: the status counts 1 assembled object (waited for,
#      at most 30 s); the store has objects/../<sha256 of big>, its bytes big's; the chunks'
#      pages were dropped (fincore: less than a tenth of big resident);
#   2. the mount's own pages of big were dropped too: the object rewritten in place (no open of
#      big), an open of big no longer finds it right (the rotten counter grows) and falls back
#      to the chunks, in the daemon's cached mode with the kernel's pages kept (keep_cache),
#      where fincore through the mount shows what the mount caches of big: less than a tenth
#      (a passthrough open would have dropped them in any case: its reply does not keep the
#      cache); that open's close assembles the object again, rewriting the rotten file;
#   3. a new open of big is passed through (the status's passthrough_opens grows, and after
#      its object's pages were dropped a read through the mount brings the object's pages back:
#      the kernel read the object); the bytes are right (cmp); small reads right;
#   4. the first 1 MB of part read: nothing assembled (not every chunk is stored);
#   5. the object rewritten in place once more, page cache dropped (drop_caches): a read returns
#      big's bytes (from the chunks: the open hashes the object first and refuses it), never the
#      rotten ones (EIO would come only from an object rewritten while open through
#      passthrough: fs/README.md "Memory"); its close assembles it again; then stork gc on the
#      store keeps the whole object and every object of c 1.0 stored (c 1.0 is listed);
#   6. (the daemon in the foreground, its log read) big's whole object removed as an eviction
#      removes it: big reads right from its chunks, and its close makes the object again; part
#      read whole, its last chunk rewritten
#      in the store before the close: the assembly finds the chunk rotten (it checks each chunk
#      as a read does; the whole object's hash would refuse it too): a log line says so,
#      nothing is stored, nothing counted; part read again (its pages dropped: drop_caches)
#      reads right (the chunk, dropped from the index, is fetched again) and its close
#      assembles it;
#   7. store_max=40M on a fresh store: big read whole stores its 24 MB of chunks, and its whole
#      object (24 MB more) would pass the quota: nothing assembled;
#   8. -o nopassthrough (a fresh store): big read whole assembles nothing;
#   9. huge (72 MB, above the 64 MiB a whole object may be hashed at an open) read whole and
#      assembled; a fresh daemon on that store: its first open of huge is not passed through
#      (the object is not hashed at the open: the chunks serve it, right bytes) and a job
#      hashes the object, after which an open is passed through (within 30 s), right bytes.
. "$(dirname "$0")/lib.sh"

need python3 nginx fincore dd
need_fuse
need_root "FUSE passthrough registers backing files with the kernel (CAP_SYS_ADMIN)"

make_repo
mkdir -p "$T/src"
rnd 1 24000000 >"$T/src/big"
rnd 2 12000000 >"$T/src/part"
echo small >"$T/src/small"
publish c 1.0 "$T/src" --quiet
mkdir -p "$T/srch"
rnd 3 72000000 >"$T/srch/huge"
publish h 1.0 "$T/srch" --quiet
[ "$(manifest_objects c 1.0 | grep -c ' big$')" -gt 4 ] || fail "big was not published in chunks"
start_nginx "$REPO"
STORE=$T/store
BIG=$(sha "$T/src/big")

resident() {
	fincore --bytes --noheadings --output RES "$1" | tr -d ' '
}
# rot FILE: rewrite 8000 bytes in place
rot() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"ROTTEN!!" * 1000, 4096)
os.close(fd)' "$1" || fail "cannot rewrite $1"
}

# --- 1 ---
M=$T/m
mount_bg "$M"
[ "$(status_field "$M" passthrough)" = True ] ||
	fail "passthrough is off (root on Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH should have it)"
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "c/1.0/big (in chunks) reads other bytes"
assembled_is "$M" 1 "big read whole"
OBJ=$STORE/$(object_path "$BIG")
[ -f "$OBJ" ] || fail "no object $OBJ in the store after the assembly"
cmp -s "$OBJ" "$T/src/big" || fail "the assembled object $OBJ is not big's bytes"
chunks_res=0
while read -r h _ _; do
	chunks_res=$((chunks_res + $(resident "$STORE/$(object_path "$h")")))
done < <(manifest_objects c 1.0 | grep ' big$')
[ "$chunks_res" -lt 2400000 ] || fail "the chunks of big keep $chunks_res bytes in the page cache after the assembly"
pass "big read whole: its whole object assembled (status: 1), $OBJ holds its bytes, its chunks keep $chunks_res bytes cached"
run "$STORK" status "$M"
out_has "stork status counts the assembled object" "1 chunked files assembled whole"

# --- 2 ---
rot0=$(status_counter "$M" rotten)
rot "$OBJ"
fuse_res=$(resident "$M/c/1.0/big")
[ "$(status_counter "$M" rotten)" -gt "$rot0" ] || fail "an open of big did not find its rewritten object rotten"
[ "$fuse_res" -lt 2400000 ] || fail "the mount's own pages of big stayed cached after the assembly ($fuse_res bytes)"
assembled_is "$M" 2 "the close after the rotten object's fallback"
cmp -s "$OBJ" "$T/src/big" || fail "the second assembly did not replace the rotten $OBJ"
pass "the mount's own pages of big were dropped after the assembly ($fuse_res bytes cached); a rotten object's fallback close assembled it again"

# --- 3 ---
pt0=$(status_counter "$M" passthrough_opens)
sync "$OBJ"
dd if="$OBJ" iflag=nocache count=0 status=none
before=$(resident "$OBJ")
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "c/1.0/big reads other bytes once assembled"
pt1=$(status_counter "$M" passthrough_opens)
after=$(resident "$OBJ")
[ "$pt1" -gt "$pt0" ] || fail "a new open of big was not passed through (passthrough_opens $pt0 -> $pt1)"
[ "$after" -ge 20000000 ] || fail "a read of big did not read its object: $before -> $after bytes of it cached"
cmp -s "$M/c/1.0/small" "$T/src/small" || fail "c/1.0/small reads other bytes"
pass "a new open of big is passed through (passthrough_opens $pt0 -> $pt1; object cached $before -> $after bytes), right bytes"

# --- 4 ---
n0=$(status_counter "$M" assembled)
head -c 1000000 "$M/c/1.0/part" | cmp -s - <(head -c 1000000 "$T/src/part") || fail "the start of part reads other bytes"
sleep 2
[ "$(status_counter "$M" assembled)" -eq "$n0" ] || fail "reading 1 MB of part assembled something (assembled: $(status_counter "$M" assembled))"
[ ! -e "$STORE/$(object_path "$(sha "$T/src/part")")" ] || fail "reading 1 MB of part stored its whole object"
pass "1 MB of part read: nothing assembled"

# --- 5 ---
rot0=$(status_counter "$M" rotten)
rot "$OBJ"
sync
echo 3 >/proc/sys/vm/drop_caches
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "big read the rotten bytes of its whole object"
[ "$(status_counter "$M" rotten)" -gt "$rot0" ] || fail "the rewritten object was not found rotten"
assembled_is "$M" 3 "the close after the second fallback"
pass "a rewritten whole object is never served: the open falls back to the chunks, right bytes"
fusermount3 -u "$M"
find "$STORE/objects" -type f | sort >"$T/objects.before"
run "$STORK" gc "$STORE"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork gc exited $RC"
}
[ -f "$OBJ" ] || fail "stork gc removed big's whole object while c 1.0 is listed"
find "$STORE/objects" -type f | sort | cmp -s - "$T/objects.before" ||
	fail "stork gc removed objects of c 1.0, which is listed: $(find "$STORE/objects" -type f | sort | comm -13 - "$T/objects.before" | head -3)"
cmp -s "$OBJ" "$T/src/big" || fail "the whole object is not big's bytes after stork gc"
pass "stork gc keeps big's whole object and every chunk ($(wc -l <"$T/objects.before") objects) while c 1.0 is listed"

# --- 6 ---
mount_storkfs "$M" "store=$STORE,timeout=30,refresh=3600" "$NGINX_URL"
rm "$OBJ" # as an eviction does (the index entry is left: the open drops it)
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "big reads other bytes once its whole object is gone"
assembled_is "$M" 1 "big read whole again, its whole object gone"
cmp -s "$OBJ" "$T/src/big" || fail "big's whole object, made again, is not its bytes"
pass "big's whole object gone (as evicted): the chunks serve big, and its next whole read makes it again"
PART=$(sha "$T/src/part")
CHUNK=$STORE/$(object_path "$(manifest_objects c 1.0 | grep ' part$' | tail -n 1 | cut -d' ' -f1)")
python3 -c 'import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
h = hashlib.sha256()
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    h.update(b)
if h.hexdigest() != sys.argv[3]:
    sys.exit("part read other bytes")
w = os.open(sys.argv[2], os.O_WRONLY)
os.pwrite(w, b"ROTTEN!!" * 100, 0)
os.close(w)
os.close(fd)' "$M/c/1.0/part" "$CHUNK" "$PART" || fail "reading part whole, then rewriting its last chunk before the close"
wait_log "part: its whole object was not assembled" 30 \
	"a chunk rewritten before the close: no log line says part's whole object was not assembled"
[ "$(status_counter "$M" assembled)" -eq 1 ] || fail "part's whole object was assembled from a rewritten chunk"
[ ! -e "$STORE/$(object_path "$PART")" ] || fail "part's whole object was stored from a rewritten chunk"
# the mount's pages of part would answer the next read: gone, its reads reach the daemon
echo 3 >/proc/sys/vm/drop_caches
cmp -s "$M/c/1.0/part" "$T/src/part" || fail "part reads other bytes after its chunk was rewritten"
assembled_is "$M" 2 "part read whole again (its rewritten chunk fetched again)"
cmp -s "$STORE/$(object_path "$PART")" "$T/src/part" || fail "part's whole object is not its bytes"
pass "a chunk rewritten before the close: nothing assembled, logged ($(grep -o "part: its whole object was not assembled.*" "$SFS_LOG" | head -c 160)); read again: assembled right"
unmount_storkfs "$M"

# none_assembled DIR STORE OPTION WHY: a fresh mount of STORE on DIR with OPTION reads big
# whole; 2 s later nothing was assembled and the store has no whole object of big.
none_assembled() {
	STORE=$2
	mount_bg "$1" "$3"
	cmp -s "$1/c/1.0/big" "$T/src/big" || fail "$3: big reads other bytes"
	sleep 2
	[ "$(status_counter "$1" assembled)" -eq 0 ] || fail "$3: $4"
	[ ! -e "$STORE/$(object_path "$BIG")" ] || fail "$3: the store has big's whole object"
	fusermount3 -u "$1"
}

# --- 7 ---
none_assembled "$T/q" "$T/store3" store_max=40M "big's 24 MB chunks and 24 MB whole object were kept"
pass "store_max=40M (24 MB of chunks stored): no room for big's whole object, nothing assembled"

# --- 8 ---
none_assembled "$T/n" "$T/store2" nopassthrough "big read whole was assembled"
pass "-o nopassthrough: big read whole, nothing assembled"

# --- 9 ---
STORE=$T/store4
mount_bg "$T/h"
cmp -s "$T/h/h/1.0/huge" "$T/srch/huge" || fail "huge reads other bytes"
assembled_is "$T/h" 1 "huge read whole"
unmount_storkfs "$T/h" "$MOUNT_PID"
mount_bg "$T/h"
[ "$(status_counter "$T/h" passthrough_opens)" -eq 0 ] || fail "test setup: passthrough opens before any read"
cmp -s "$T/h/h/1.0/huge" "$T/srch/huge" || fail "huge reads other bytes after a restart"
[ "$(status_counter "$T/h" passthrough_opens)" -eq 0 ] ||
	fail "the first open of huge after a restart was passed through: its 72 MB object was hashed at the open"
for _ in $(seq 150); do
	head -c 1 "$T/h/h/1.0/huge" >/dev/null
	[ "$(status_counter "$T/h" passthrough_opens)" -gt 0 ] && break
	sleep 0.2
done
[ "$(status_counter "$T/h" passthrough_opens)" -gt 0 ] || fail "huge's whole object was never passed through after the restart"
cmp -s "$T/h/h/1.0/huge" "$T/srch/huge" || fail "huge reads other bytes through its whole object"
pass "huge (72 MB): after a restart its first open is served from the chunks, a job hashes the whole object, then opens pass it through"
unmount_storkfs "$T/h" "$MOUNT_PID"

done_ok
