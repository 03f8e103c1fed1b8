#!/usr/bin/env bash
# A version's tree loads from the node store's tree index (store/README.md, "Tree indexes")
# and a damaged index is never followed. A mount run as users run it (storkfs without -f, its
# log on this test's own /dev/log in a private mount namespace) lists and reads a published
# tree; its index appears as STOREDIR/trees/<manifest sha256>, and a second mount loads the
# tree from it (the status counts trees_indexed, no manifest parsed). Then the index is
# damaged before each of several mounts: a flipped byte in an entry's size, one in an entry's
# content hash, the file cut in half, emptied, replaced by the index of another version, and
# forged (an entry's path offset pointing past the file, the checksum made right again). Each
# mount lists the same names, types, modes, sizes and symlink targets as the source and reads
# the same bytes, says in the log which file was damaged and how, counts trees_reindexed 1,
# and leaves the index built again byte for byte.
. "$(dirname "$0")/private_ns.sh"
. "$(dirname "$0")/lib.sh"

need python3 mount
need_fuse
private_syslog

# mount_daemon MNT OPTIONS URL...: storkfs without -f; returns once mounted. Sets SFS_PID.
mount_daemon() {
	local mnt=$1 opts=$2
	shift 2
	mkdir -p "$mnt"
	_MOUNTS+=("$mnt")
	timeout 60 "$STORKFS" -o "root=$ROOT,$opts" "$@" "$mnt" 2>"$T/mount.err" || {
		cat "$T/mount.err" >&2
		fail "storkfs did not mount $mnt"
	}
	SFS_PID=$(status_of "$mnt" pid)
}

# status_of MNT KEY: a field of the mount's status (counters.KEY for a counter).
status_of() {
	xattr "$1" user.storkfs.status | python3 -c 'import json, sys
s = json.load(sys.stdin)
k = sys.argv[1]
print(s[k] if k in s else s["counters"][k])' "$2"
}

# served_ok WHAT: the mount's tree/1.0 lists and reads as the source does.
served_ok() {
	mount_list "$SRC" >"$T/want.list"
	tree_list "$V" >"$T/got.list"
	diff -u "$T/want.list" "$T/got.list" >"$T/list.diff" ||
		fail "$1: the mount lists other entries than the source: $(head -20 "$T/list.diff")"
	diff -r --no-dereference "$SRC" "$V" >"$T/content.diff" 2>&1 ||
		fail "$1: the mount reads other bytes than the source: $(head -10 "$T/content.diff")"
}

# patch_index FILE CASE: damage the tree index FILE (its layout: store/README.md).
patch_index() {
	python3 - "$1" "$2" "$T/other.idx" <<'EOF'
import hashlib, struct, sys
path, case, other = sys.argv[1], sys.argv[2], sys.argv[3]
b = bytearray(open(path, "rb").read())
n = struct.unpack_from("<I", b, 12)[0]
stroff = struct.unpack_from("<Q", b, 56)[0]
def rec_of(name):
    for i in range(n):
        off, ln = struct.unpack_from("<II", b, 96 + 88 * i)
        if bytes(b[stroff + off:stroff + off + ln]) == name:
            return 96 + 88 * i
    sys.exit("no entry " + name.decode())
if case == "size":      # the size of usr/share/doc/pkg/small.txt, 6 -> 7
    b[rec_of(b"usr/share/doc/pkg/small.txt") + 32] ^= 1
elif case == "hash":    # the content hash of usr/bin/tool
    b[rec_of(b"usr/bin/tool") + 48] ^= 0x80
elif case == "cut":
    b = b[:len(b) // 2]
elif case == "empty":
    b = bytearray()
elif case == "other":   # the index of tree 2.0 under 1.0's name
    b = bytearray(open(other, "rb").read())
elif case == "forged":  # a path offset past the file, the checksum right again
    struct.pack_into("<I", b, rec_of(b"usr/bin/tool"), 0x7ffffff0)
    b[-32:] = hashlib.sha256(b[:-32]).digest()
elif case == "chunk":   # big.bin's second chunk starts 4 KiB later, the checksum right again
    chunkoff, nchunks = struct.unpack_from("<QQ", b, 72)
    first, count = struct.unpack_from("<II", b, rec_of(b"big.bin") + 80)
    if count < 2:
        sys.exit("big.bin has %d chunks in the index" % count)
    at = chunkoff + 56 * (first + 1)
    struct.pack_into("<Q", b, at, struct.unpack_from("<Q", b, at)[0] + 4096)
    b[-32:] = hashlib.sha256(b[:-32]).digest()
open(path, "wb").write(b)
EOF
}

make_repo
SRC=$T/src/tree
synth_tree "$SRC"
for i in $(seq 1 40); do
	mkdir -p "$SRC/many/d$((i % 7))"
	echo "file $i" >"$SRC/many/d$((i % 7))/f$i"
done
rnd 15 $((9 << 20)) >"$SRC/big.bin" # above 4 MiB: stored as chunks, listed in the index
publish tree 1.0 "$SRC"
mkdir -p "$T/src/two"
echo two >"$T/src/two/only"
publish tree 2.0 "$T/src/two"
H1=$(basename "$(manifest_file tree 1.0)")
H1=${H1%%.*}
H2=$(basename "$(manifest_file tree 2.0)")
H2=${H2%%.*}

start_nginx "$REPO"
STORE=$T/store
MNT=$T/mnt
V=$MNT/tree/1.0
OPTS="store=$STORE,timeout=20"
IDX=$STORE/trees/$H1

# --- the first mount builds the index, the second loads it --------------------------------------
mount_daemon "$MNT" "$OPTS" "$NGINX_URL"
served_ok "first mount"
ls "$MNT/tree/2.0" >/dev/null
[ "$(status_of "$MNT" trees_indexed)" = 0 ] || fail "the first mount counts $(status_of "$MNT" trees_indexed) trees loaded from an index, want 0"
unmount_storkfs "$MNT" "$SFS_PID"
[ -f "$IDX" ] || fail "no tree index $IDX after the first mount"
[ -f "$STORE/trees/$H2" ] || fail "no tree index for tree 2.0 after the first mount"
cp "$IDX" "$T/good.idx"
cp "$STORE/trees/$H2" "$T/other.idx"
pass "the first mount lists and reads the tree, and keeps its index as trees/$H1"

# big.bin's chunk list is in the index: the tree loaded from it opens the file by its chunks
# (cached: every chunk the first mount stored; the file's own hash names no object).
python3 -c 'import struct, sys
b = open(sys.argv[1], "rb").read()
sys.exit(0 if struct.unpack_from("<Q", b, 80)[0] >= 2 else 1)' "$IDX" ||
	fail "the index lists no chunks for big.bin"
mount_daemon "$MNT" "$OPTS" "$NGINX_URL"
[ "$(xattr "$V/big.bin" user.storkfs.cached)" = 1 ] || fail "the second mount says big.bin is not cached (its chunk list was lost)"
served_ok "second mount"
[ "$(status_of "$MNT" trees_indexed)" = 1 ] || fail "the second mount counts $(status_of "$MNT" trees_indexed) trees loaded from their index, want 1"
[ "$(status_of "$MNT" trees_reindexed)" = 0 ] || fail "the second mount rebuilt an index that was sound"
unmount_storkfs "$MNT" "$SFS_PID"
cmp -s "$IDX" "$T/good.idx" || fail "the second mount changed a sound index"
pass "the second mount loads the tree from its index (trees_indexed 1) and serves the same"

# --- evicted (max_trees=1) and loaded again: from the index ------------------------------------
mount_daemon "$MNT" "$OPTS,max_trees=1" "$NGINX_URL"
ls "$V" >/dev/null
echo 2 >/proc/sys/vm/drop_caches # the kernel forgets the entries: the cache alone holds 1.0
ls "$MNT/tree/2.0" >/dev/null      # loads 2.0, evicts 1.0
echo 2 >/proc/sys/vm/drop_caches
served_ok "loaded again after eviction"
ev=$(status_of "$MNT" trees_evicted) lo=$(status_of "$MNT" trees_loaded) ix=$(status_of "$MNT" trees_indexed)
[ "$ev" -ge 1 ] && [ "$lo" -ge 3 ] || fail "with max_trees=1: $ev trees evicted, $lo loaded, want 1.0 evicted and loaded again"
[ "$ix" = "$lo" ] || fail "with max_trees=1: $ix of $lo tree loads came from the index, want all"
unmount_storkfs "$MNT" "$SFS_PID"
pass "a tree evicted (max_trees=1) and loaded again comes from its index ($lo loads, $ix from the index, $ev evicted)"

# --- damaged indexes ------------------------------------------------------------------------------
declare -A WHY=([size]="do not hash to its checksum" [hash]="do not hash to its checksum"
	[cut]="cut" [empty]="cut" [other]="made from another manifest"
	[forged]="an entry points outside the file" [chunk]="chunk list does not cover its size")
for c in size hash cut empty other forged chunk; do
	cp "$T/good.idx" "$IDX"
	patch_index "$IDX" "$c"
	cmp -s "$IDX" "$T/good.idx" && fail "$c: patching left the index as it was"
	before=$(wc -l <"$SYSLOG")
	mount_daemon "$MNT" "$OPTS" "$NGINX_URL"
	served_ok "index damaged ($c)"
	for f in usr/bin/tool usr/share/doc/pkg/small.txt big.bin; do
		want=$(sha256sum <"$SRC/$f" | cut -d' ' -f1)
		read_errno "$V/$f" 30
		[ "$GOT" = "ok $want" ] || fail "$c: $f reads '$GOT', want 'ok $want'"
	done
	[ "$(status_of "$MNT" trees_reindexed)" = 1 ] || fail "$c: the mount counts $(status_of "$MNT" trees_reindexed) indexes built again, want 1"
	[ "$(status_of "$MNT" trees_indexed)" = 0 ] || fail "$c: the mount counts a tree loaded from the damaged index"
	line=$(tail -n +"$((before + 1))" "$SYSLOG" | grep -F "tree 1.0: tree index: $IDX: " || true)
	[ -n "$line" ] || {
		tail -n +"$((before + 1))" "$SYSLOG" >&2
		fail "$c: no log line names the damaged index $IDX"
	}
	matches -F "${WHY[$c]}" <<<"$line" || fail "$c: the log line does not say '${WHY[$c]}': $line"
	echo "# $c: $line"
	unmount_storkfs "$MNT" "$SFS_PID"
	cmp -s "$IDX" "$T/good.idx" || fail "$c: the index was not built again as it was"
	pass "index damaged ($c): refused, said in the log, built again; the mount serves the source"
done

fsck_clean "stork fsck finds the store clean" "$STORE"
done_ok
