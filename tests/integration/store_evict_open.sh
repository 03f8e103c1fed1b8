#!/usr/bin/env bash
# A reader holds a file of the mount open while the store's quota evicts its object: the object
# is gone from the store (checked), the kernel's page cache is dropped, and the reader goes on
# reading to the end: every byte right (the daemon reads through the descriptor it opened, never
# the object's name again). A new open of the file fetches it again.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse
need_root "drops the kernel's page cache"

make_repo
mkdir -p "$T/src"
python3 - "$T/src" <<'EOF'
import random, sys
for i in range(4):
    with open(f"{sys.argv[1]}/f{i}", "wb") as f:
        f.write(random.Random(300 + i).randbytes(4 * 1024 * 1024))
EOF
publish pkg 1.0 "$T/src" --quiet
start_nginx "$REPO"
S=$T/store
M=$T/mnt
hex0=$(sha256sum "$T/src/f0" | cut -d' ' -f1)
obj0=$S/objects/${hex0:0:2}/$hex0

mount_storkfs "$M" "store=$S,store_max=6M,timeout=30,refresh=3600" "$NGINX_URL"

# The reader: opens f0, reads 1 MiB, says so, waits for "go", reads the rest; prints the SHA-256
# of all it read.
mkfifo "$T/go"
python3 - "$M/pkg/1.0/f0" "$T/go" >"$T/reader.out" 2>"$T/reader.err" <<'EOF' &
import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
h = hashlib.sha256()
h.update(os.read(fd, 1 << 20))
print("opened", flush=True)
open(sys.argv[2]).read()
# nothing of the file left in the page cache: the rest comes from the daemon
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
while True:
    b = os.read(fd, 1 << 16)
    if not b:
        break
    h.update(b)
print(h.hexdigest(), flush=True)
EOF
READER=$!
for _ in $(seq 300); do
	grep -q opened "$T/reader.out" && break
	sleep 0.1
done
grep -q opened "$T/reader.out" || fail "the reader did not open f0: $(cat "$T/reader.err")"
[ -e "$obj0" ] || fail "f0's object is not in the store while it is read"

# f1, f2 and f3 (12 MB) through a quota of 6 MB: f0's object, the oldest, goes
for i in 1 2 3; do
	cmp -s "$T/src/f$i" "$M/pkg/1.0/f$i" || fail "f$i reads wrong bytes"
done
[ ! -e "$obj0" ] || fail "f0's object was not evicted (the test needs it gone)"
pass "f0's object was evicted while a reader holds f0 open"

sync
echo 3 >/proc/sys/vm/drop_caches
echo go >"$T/go"
wait "$READER" || fail "the reader failed: $(cat "$T/reader.err")"
got=$(tail -n 1 "$T/reader.out")
[ "$got" = "$hex0" ] || fail "the reader of the evicted f0 read content hashing to $got, want $hex0"
pass "the reader of the evicted object read all 4 MiB of it right, after the page cache was dropped"

cmp -s "$T/src/f0" "$M/pkg/1.0/f0" || fail "f0 opened again reads wrong bytes"
[ -e "$obj0" ] || fail "f0 opened again is not stored again"
pass "a new open of f0 fetches it again"
unmount_storkfs "$M"
fsck_clean "stork fsck is clean" "$S"
done_ok
