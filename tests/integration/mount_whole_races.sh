#!/usr/bin/env bash
# Races and faults around the whole object of a chunked file (fs/whole.c) and the backing
# files of FUSE passthrough (fs/passthrough.c): the whole object is a second copy of the file
# that eviction or `stork gc` may remove while the kernel reads it. c 1.0 holds big (24 MB,
# stored in chunks) and f (3 MB, stored whole); h 1.0 huge (96 MB, in chunks); p 1.0 m (6 MB,
# in chunks). The daemon runs in the foreground (its log read):
#   1. big read whole: its whole object assembled; big opened again (passthrough, backed by
#      that object) and held open; the object removed from the store as an eviction removes
#      it: a new open of big reads big's bytes (it joins the open inode's backing file, whose
#      bytes are unchanged: the unlink moved only its ctime), and is passed through; once the
#      open file closes, big read whole assembles its object again;
#   2. f held open (passthrough), its object removed, then a new open of f (fetched again)
#      reads f's bytes;
#   3. f held open once more, its object opened for writing, removed, then rewritten through
#      that descriptor: a new open of f reads no rotten byte (it fails with EIO, logged, as for
#      an object rewritten in place); after the close f reads right;
#   4. mallory's p 1.0 (m) read whole by a reader that holds it open (its first open); the
#      repository revokes mallory and alice publishes p 1.0 anew; after SIGHUP (the mount
#      serves alice's p 1.0) the reader closes: the close of a file of a replaced version makes
#      no whole object (nothing can open it again: fs/README.md "Replaced versions");
#   5. huge read whole, and the daemon killed (-9) while its
#      assembly writes (its unnamed insert file in the store's tmp/ is open): no whole object
#      is named, tmp/ holds nothing, stork fsck is clean; mounted again, huge reads right
#      from its chunks and its close assembles it, `stork gc` run meanwhile from another
#      process (while the assembly writes) keeping the whole object and every chunk;
#   6. 4 readers read big whole again and again for 8 s while its whole object is removed
#      every 0.4 s (as evictions do) and assembled again at last closes: opens go through the
#      chunks, the whole object and passthrough joins in turn, every read is right;
#   7. two slices on a fresh store: big read whole through slice a counts there (1 open, its
#      bytes, its chunks fetched); 1 byte of big read through slice b, now from its whole
#      object (passthrough), counts for b as documented for passthrough (1 open, its size at the
#      open, nothing fetched) and nothing for a;
#   8. a store on a 240 MB tmpfs: huge read whole (96 MB of chunks), and the file system filled
#      while its assembly writes: the assembly fails (ENOSPC), logged naming the file, nothing
#      named, tmp/ empty; huge reads right from its chunks, nothing assembled (no room); with
#      room again (a new mount: the first has a 60 s pause after "no room") huge reads right
#      and its close assembles it;
#   9. -o nopassthrough on the first store (big's and huge's whole objects stored): both read
#      right through the daemon, nothing assembled, nothing passed through.
. "$(dirname "$0")/lib.sh"

need python3 nginx mount
need_fuse
need_root "FUSE passthrough registers backing files with the kernel (CAP_SYS_ADMIN)"

make_repo c h p
keygen "$T/pub/mallory.key"
expect_rc 0 "delegate p to mallory too" \
	"$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/mallory.key.pub" p
mkdir -p "$T/src" "$T/evil" "$T/good"
rnd 1 24000000 >"$T/src/big"
rnd 2 3000000 >"$T/src/f"
publish c 1.0 "$T/src" --quiet
mkdir -p "$T/h"
rnd 5 96000000 >"$T/h/huge"
publish h 1.0 "$T/h" --quiet
rnd 3 6000000 >"$T/evil/m"
rnd 4 6000000 >"$T/good/m"
expect_rc 0 "mallory publishes p 1.0" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/mallory.key" p 1.0 "$T/evil" --quiet
[ "$(manifest_objects c 1.0 | grep -c ' big$')" -gt 4 ] || fail "big was not published in chunks"
start_nginx "$REPO"
STORE=$T/store


# while_assembling ACTION [FILE]: wait (at most 30 s) until the daemon $SFS_PID has its
# assembly's insert open in $STORE/tmp/ (an unnamed file "#N (deleted)" of 8 to 96 MB: larger
# than any chunk, whose insert waiting for its group sync is 4 MiB at most), then: kill (kill
# -9 the daemon), fill (write FILE until its file system is full) or none; prints the insert's
# size then. Returns 1 when no such file was seen.
while_assembling() {
	python3 -c 'import os, sys, time
pid, tmp, action = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
end = time.monotonic() + 30
while time.monotonic() < end:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        break
    for fd in fds:
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith(tmp + "/"):
                continue
            size = os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            continue
        if 8000000 < size < 96000000:
            if action == "kill":
                os.kill(int(pid), 9)
            elif action == "fill":
                out = os.open(sys.argv[4], os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    while True:
                        os.write(out, b"x" * 65536)
                except OSError:
                    pass
                os.close(out)
            print(size)
            sys.exit(0)
sys.exit(1)' "$SFS_PID" "$STORE/tmp" "$@"
}

M=$T/m
mount_storkfs "$M" "store=$STORE,timeout=30,refresh=3600" "$NGINX_URL"
[ "$(status_field "$M" passthrough)" = True ] ||
	fail "passthrough is off (root on Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH should have it)"

# --- 1 ---
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "c/1.0/big (in chunks) reads other bytes"
assembled_is "$M" 1 "big read whole"
OBJ=$STORE/$(object_path "$(sha "$T/src/big")")
[ -f "$OBJ" ] || fail "no whole object $OBJ after the assembly"
pt0=$(status_counter "$M" passthrough_opens)
exec 7<"$M/c/1.0/big"
[ "$(status_counter "$M" passthrough_opens)" -gt "$pt0" ] || fail "the open of big held open was not passed through"
rm "$OBJ" # as an eviction or stork gc does
pt0=$(status_counter "$M" passthrough_opens)
cmp "$M/c/1.0/big" "$T/src/big" 2>"$T/err" ||
	fail "big's whole object removed while an open file of big uses it: a new open of big fails ($(cat "$T/err"))"
[ "$(status_counter "$M" passthrough_opens)" -gt "$pt0" ] || fail "the new open of big did not join the open inode's passthrough"
exec 7<&-
sleep 0.5 # the release reaches the daemon after the close
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "big reads other bytes from its chunks"
assembled_is "$M" 2 "big read whole after its whole object was removed"
cmp -s "$OBJ" "$T/src/big" || fail "big's whole object, made again, is not its bytes"
pass "big's whole object removed while big is open: a new open reads right (joins the backing file); after the close its next whole read makes the object again"

# --- 2 ---
FOBJ=$STORE/$(object_path "$(sha "$T/src/f")")
cmp -s "$M/c/1.0/f" "$T/src/f" || fail "c/1.0/f reads other bytes"
exec 7<"$M/c/1.0/f"
rm "$FOBJ"
cmp "$M/c/1.0/f" "$T/src/f" 2>"$T/err" ||
	fail "f's object removed while an open file of f uses it: a new open of f fails ($(cat "$T/err"))"
exec 7<&-
pass "f's object removed while f is open: a new open (fetched again) reads right"

# --- 3 ---
sleep 0.5
cmp -s "$M/c/1.0/f" "$T/src/f" || fail "c/1.0/f reads other bytes"
exec 7<"$M/c/1.0/f"
exec 8<>"$FOBJ"
rm "$FOBJ"
python3 -c 'import os
os.pwrite(8, b"ROTTEN!!" * 1000, 0)' || fail "cannot rewrite f's removed object"
exec 8>&-
if cat "$M/c/1.0/f" >"$T/got" 2>"$T/err"; then
	fail "a new open of f read its removed object rewritten (or other bytes): $(cmp "$T/got" "$T/src/f" 2>&1 || true)"
fi
grep -q "Input/output error" "$T/err" || fail "a new open of f, its removed object rewritten, failed otherwise: $(cat "$T/err")"
grep -q "changed on disk while open" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "no log line names the changed object"
}
exec 7<&-
sleep 0.5
cmp -s "$M/c/1.0/f" "$T/src/f" || fail "after the open file closed, f still reads other bytes"
pass "f's object removed, then rewritten through an open descriptor, while f is open: a new open fails (EIO, logged), no rotten byte read; after the close f reads right"

# --- 4 ---
n0=$(status_counter "$M" assembled)
exec 7<"$M/p/1.0/m"
python3 -c 'import hashlib, os, sys
h = hashlib.sha256()
while True:
    b = os.read(7, 1 << 20)
    if not b:
        break
    h.update(b)
sys.exit(h.hexdigest() != sys.argv[1])' "$(sha "$T/evil/m")" || fail "the reader of p/1.0/m read other bytes"
expect_rc 0 "the repository revokes mallory" "$STORK" repo revoke "$REPO" --keys "$KEYS" mallory
publish p 1.0 "$T/good" --quiet
kill -HUP "$SFS_PID"
is_good() { cmp -s "$M/p/1.0/m" "$T/good/m"; }
within 20 is_good || fail "20 s after SIGHUP the mount does not serve alice's p/1.0/m"
assembled_is "$M" $((n0 + 1)) "alice's p/1.0/m read whole"
n1=$(status_counter "$M" assembled)
exec 7<&-
sleep 2
[ "$(status_counter "$M" assembled)" -eq "$n1" ] ||
	fail "the close of mallory's p/1.0/m, replaced by a refresh, assembled its whole object (assembled $n1 -> $(status_counter "$M" assembled))"
[ ! -e "$STORE/$(object_path "$(sha "$T/evil/m")")" ] || fail "the store has the whole object of mallory's replaced p/1.0/m"
pass "the close of a file of a replaced version makes no whole object (assembled $n0 -> $n1, alice's m read whole)"

# --- 5 ---
HUGE=$(sha "$T/h/huge")
HOBJ=$STORE/$(object_path "$HUGE")
cmp -s "$M/h/1.0/huge" "$T/h/huge" || fail "h/1.0/huge reads other bytes"
# the assembly's insert: an open file of the store's tmp/ (unnamed: "#N (deleted)") larger
# than any chunk (4 MiB at most: a chunk's insert waiting for its group sync is no larger)
while_assembling kill >"$T/killed_at" ||
	fail "huge's assembly was not caught writing (assembled: $(status_counter "$M" assembled 2>&1))"
wait "$SFS_PID" 2>/dev/null || true
fusermount3 -u -z "$M" 2>/dev/null || true
[ ! -e "$HOBJ" ] || fail "the daemon killed while it assembled huge: its whole object $HOBJ is named"
[ -z "$(find "$STORE/tmp" -mindepth 1 2>/dev/null)" ] || fail "the daemon killed while it assembled huge: the store's tmp/ holds $(ls -A "$STORE/tmp")"
fsck_clean "the daemon killed (-9) while it assembled huge ($(cat "$T/killed_at") bytes written): no whole object named, tmp/ empty, stork fsck clean" "$STORE"
mount_storkfs "$M" "store=$STORE,timeout=30,refresh=3600" "$NGINX_URL"
cmp -s "$M/h/1.0/huge" "$T/h/huge" || fail "mounted again, h/1.0/huge reads other bytes"
# stork gc from another process while the assembly writes (or just after)
while_assembling none >/dev/null || echo "# the assembly was not seen writing: stork gc runs after it"
run "$STORK" gc "$STORE"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork gc while huge's assembly writes exited $RC"
}
assembled_is "$M" 1 "huge read whole after the kill"
cmp -s "$HOBJ" "$T/h/huge" || fail "huge's whole object, made after the kill, is not its bytes"
for o in $(manifest_objects h 1.0 | cut -d' ' -f1); do
	[ -f "$STORE/$(object_path "$o")" ] || fail "stork gc during huge's assembly removed $o of h 1.0 (listed)"
done
cmp -s "$M/h/1.0/huge" "$T/h/huge" || fail "h/1.0/huge reads other bytes after stork gc"
pass "mounted again, huge reads right and its close assembles it, stork gc (another process) running meanwhile keeps it and its chunks"

# --- 6 ---
OBJ=$STORE/$(object_path "$(sha "$T/src/big")")
a0=$(status_counter "$M" assembled)
p0=$(status_counter "$M" passthrough_opens)
python3 - "$M/c/1.0/big" "$(sha "$T/src/big")" "$OBJ" >"$T/stress.out" 2>&1 <<'PY' || fail "readers of big while its whole object comes and goes: $(tail -n 3 "$T/stress.out")"
import hashlib, os, random, sys, threading, time
path, want, obj = sys.argv[1:4]
end = time.monotonic() + 8
bad, reads = [], [0]
def reader(seed):
    rng = random.Random(seed)
    while time.monotonic() < end and not bad:
        try:
            with open(path, "rb") as f:
                h = hashlib.sha256()
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
            if h.hexdigest() != want:
                bad.append("other bytes")
            reads[0] += 1
        except OSError as e:
            bad.append(str(e))
        time.sleep(rng.random() * 0.3)
ts = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
for t in ts:
    t.start()
removed = 0
while time.monotonic() < end and not bad:
    time.sleep(0.4)
    try:
        os.unlink(obj)  # as an eviction does
        removed += 1
    except FileNotFoundError:
        pass
for t in ts:
    t.join()
print(f"{reads[0]} whole reads, whole object removed {removed} times")
sys.exit(f"a read failed: {bad[0]}" if bad else 0)
PY
a1=$(status_counter "$M" assembled)
p1=$(status_counter "$M" passthrough_opens)
[ "$a1" -gt "$((a0 + 1))" ] || fail "readers of big while its whole object comes and goes: assembled only $a0 -> $a1"
[ "$p1" -gt "$p0" ] || fail "readers of big while its whole object comes and goes: no open passed through"
pass "4 readers of big for 8 s while its whole object is removed and made again: every read right ($(cat "$T/stress.out"); assembled $a0 -> $a1, passthrough_opens $p0 -> $p1)"
# big's whole object made once more (for part 9): the open drops a removed one's entry
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "big reads other bytes after the readers"
within 30 test -f "$OBJ" || true

unmount_storkfs "$M"

# --- 7 ---
mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/a.policy"
echo 'trust * delegated' >"$T/slices/b.policy"
STORE=$T/store8
M=$T/m8
mount_storkfs "$M" "store=$STORE,timeout=30,refresh=3600,slices=$T/slices" "$NGINX_URL"
# slice_is S KEY VALUE: slice S's status member KEY is VALUE
slice_is() {
	local got
	got=$(xattr "$M/.slices/$1" user.storkfs.status | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2")
	[ "$got" = "$3" ] || fail "$4: slice $1 counts $2 $got, want $3"
}
cmp -s "$M/.slices/a/c/1.0/big" "$T/src/big" || fail "slice a: c/1.0/big reads other bytes"
assembled_is "$M" 1 "big read whole through slice a"
nchunks=$(manifest_objects c 1.0 | grep -c ' big$')
slice_is a opens 1 "big read whole through slice a"
slice_is a bytes_read 24000000 "big read whole through slice a"
slice_is a objects_fetched "$nchunks" "big read whole through slice a"
head -c 1 "$M/.slices/b/c/1.0/big" | cmp -s - <(head -c 1 "$T/src/big") || fail "slice b: the first byte of c/1.0/big is other"
slice_is b opens 1 "one byte of big read through slice b (its whole object passed through)"
slice_is b bytes_read 24000000 "one byte of big read through slice b (its whole object passed through: its size counted at the open)"
slice_is b objects_fetched 0 "one byte of big read through slice b (its whole object passed through)"
slice_is a opens 1 "slice b's read"
slice_is a bytes_read 24000000 "slice b's read"
pass "slices: big read whole through slice a (opens 1, bytes_read 24000000, objects_fetched $nchunks), then 1 byte through slice b from its whole object (opens 1, bytes_read 24000000: its size at the open, as documented for passthrough; objects_fetched 0); slice a's counters unchanged"
unmount_storkfs "$M"

# --- 8 ---
small_tmpfs "$T/small" 240m
STORE=$T/small/store
M=$T/m6
mount_storkfs "$M" "store=$STORE,timeout=30,refresh=3600" "$NGINX_URL"
cmp -s "$M/h/1.0/huge" "$T/h/huge" || fail "store on a tmpfs: h/1.0/huge reads other bytes"
while_assembling fill "$T/small/filler" >"$T/filled_at" ||
	fail "store on a tmpfs: huge's assembly was not caught writing (assembled: $(status_counter "$M" assembled))"
within 30 grep -q "huge: its whole object was not assembled" "$SFS_LOG" || true
grep "huge: its whole object was not assembled" "$SFS_LOG" | grep -q "No space left on device" || {
	cat "$SFS_LOG" >&2
	fail "the file system filled while huge was assembled: no log line says its whole object was not assembled (ENOSPC)"
}
[ "$(status_counter "$M" assembled)" -eq 0 ] || fail "the file system filled while huge was assembled: assembled counts $(status_counter "$M" assembled)"
[ ! -e "$STORE/$(object_path "$HUGE")" ] || fail "the file system filled while huge was assembled: its whole object is named"
[ -z "$(find "$STORE/tmp" -mindepth 1 2>/dev/null)" ] || fail "the file system filled while huge was assembled: the store's tmp/ holds $(ls -A "$STORE/tmp")"
pass "the file system filled while huge was assembled ($(cat "$T/filled_at") bytes written): nothing named, tmp/ empty, logged ($(grep -o "huge: its whole object was not assembled.*" "$SFS_LOG" | head -c 200))"
echo 3 >/proc/sys/vm/drop_caches
cmp -s "$M/h/1.0/huge" "$T/h/huge" || fail "the file system full, h/1.0/huge (its chunks stored) reads other bytes"
sleep 1
[ "$(status_counter "$M" assembled)" -eq 0 ] || fail "the file system full, huge's whole object was assembled"
pass "the file system full: huge reads right from its chunks, nothing assembled"
# after a "no room" the mount queues no assembly for 60 s (fs/whole.c QUIET_SECS): a new mount
rm "$T/small/filler"
unmount_storkfs "$M"
mount_storkfs "$M" "store=$STORE,timeout=30,refresh=3600" "$NGINX_URL"
cmp -s "$M/h/1.0/huge" "$T/h/huge" || fail "with room again, h/1.0/huge reads other bytes"
assembled_is "$M" 1 "huge read whole with room again"
cmp -s "$STORE/$(object_path "$HUGE")" "$T/h/huge" || fail "huge's whole object, made with room again, is not its bytes"
pass "with room again (a new mount) huge reads right and its close assembles it"
unmount_storkfs "$M"

# --- 9 ---
STORE=$T/store
M=$T/m9
[ -f "$STORE/$(object_path "$(sha "$T/src/big")")" ] || fail "the first store lost big's whole object"
mount_storkfs "$M" "store=$STORE,timeout=30,refresh=3600,nopassthrough" "$NGINX_URL"
[ "$(status_field "$M" passthrough)" = False ] || fail "-o nopassthrough: the status says passthrough is on"
cmp -s "$M/c/1.0/big" "$T/src/big" || fail "-o nopassthrough: big (its whole object stored) reads other bytes"
cmp -s "$M/h/1.0/huge" "$T/h/huge" || fail "-o nopassthrough: huge reads other bytes"
sleep 1
[ "$(status_counter "$M" assembled)" -eq 0 ] || fail "-o nopassthrough: something was assembled"
[ "$(status_counter "$M" passthrough_opens)" -eq 0 ] || fail "-o nopassthrough: an open was passed through"
pass "-o nopassthrough on a store with whole objects: big and huge read right through the daemon, nothing assembled or passed through"
unmount_storkfs "$M"
done_ok
