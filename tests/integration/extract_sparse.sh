#!/usr/bin/env bash
# Issue 11, item 13: a sparse file (64 MiB, a few KiB of data at its start, middle and end)
# stays sparse: its node store object, the extracted file (a link to a variant, and a copy on
# another file system) each take a few blocks on disk, not 64 MiB; the content is intact. The
# same file published in chunks (store/README.md "Chunks") extracts sparse as well.
. "$(dirname "$0")/lib.sh"

need nginx python3 truncate du
mkdir -p "$T/src"
python3 - "$T/src/holes" <<-'PY'
	import os, sys
	with open(sys.argv[1], "wb") as f:
	    for off in (0, 32 << 20, (64 << 20) - 5000):
	        f.seek(off)
	        f.write(os.urandom(5000))
PY
echo small >"$T/src/small"
make_repo
# whole (--no-chunks): this is about one store object and its links and copies; a file
# above 4 MiB would otherwise be stored by the piece (store/README.md "Chunks")
publish sparse 1.0 "$T/src" --no-chunks
start_nginx "$REPO"

# kib FILE: the KiB it takes on disk
kib() { du -k "$1" | cut -f1; }
extract_ok "sparse 1.0 extracts" --store "$T/store" "$NGINX_URL" sparse 1.0 "$T/dest"
cmp "$T/src/holes" "$T/dest/holes" || fail "the extracted file differs from its source"
read -r hash _ < <(manifest_hashes sparse 1.0 | awk '$3 == "holes"')
obj=$T/store/objects/${hash:0:2}/$hash
[ -f "$obj" ] || fail "no object $obj"
[ "$(kib "$obj")" -lt 1024 ] || fail "the store object takes $(kib "$obj") KiB for 15 KB of data"
pass "the node store object stays sparse ($(kib "$obj") KiB on disk)"
[ "$(kib "$T/dest/holes")" -lt 1024 ] || fail "the extracted file takes $(kib "$T/dest/holes") KiB"
pass "the extracted (linked) file stays sparse ($(kib "$T/dest/holes") KiB)"

# A copy: the destination on another file system (a tmpfs) than the store.
mkdir -p "$T/shm"
mount -t tmpfs -o size=256m none "$T/shm" || fail "cannot mount a tmpfs"
on_exit 'umount -l "$T/shm"'
extract_ok "sparse 1.0 extracts as copies" --store "$T/store" "$NGINX_URL" sparse 1.0 "$T/shm/dest"
[ "$X_COPIED" -eq 2 ] || fail "want 2 files copied, got $X_COPIED"
cmp "$T/src/holes" "$T/shm/dest/holes" || fail "the copied file differs from its source"
[ "$(kib "$T/shm/dest/holes")" -lt 1024 ] || fail "the copied file takes $(kib "$T/shm/dest/holes") KiB"
pass "the copied file stays sparse ($(kib "$T/shm/dest/holes") KiB)"

# Published by the piece (the default for a file above 4 MiB): the chunks of zeros are holes in
# the extracted copy too.
publish sparse 2.0 "$T/src"
extract_ok "sparse 2.0 (chunked) extracts" --store "$T/store" "$NGINX_URL" sparse 2.0 "$T/dest2"
cmp "$T/src/holes" "$T/dest2/holes" || fail "the extracted chunked file differs from its source"
[ "$(kib "$T/dest2/holes")" -lt 1024 ] || fail "the extracted chunked file takes $(kib "$T/dest2/holes") KiB"
pass "a file extracted from its chunks stays sparse ($(kib "$T/dest2/holes") KiB)"
fsck_clean "the store is clean" "$T/store"
done_ok
