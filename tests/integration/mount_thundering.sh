#!/usr/bin/env bash
# A thundering herd on one uncached file: 32 readers released together by a barrier open and
# read the same file through a storkfs mount; every reader gets the source's bytes (SHA-256)
# and the origin sees exactly one request for the file's object (its access log). Three
# herds: 32 threads, then 32 processes, each on its own file served by a fault server that
# trickles that object (200 kB at 100 kB/s, so that all 32 opens are under way before the
# first returns: checked, or the herd proved nothing), and 32 threads against nginx with no
# delay. The store is clean afterwards. Timings are not asserted; outer timeouts make a hang
# fail the test.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse


make_repo
mkdir -p "$T/src/d"
rnd 11 200000 >"$T/src/d/one"
rnd 12 200000 >"$T/src/d/two"
rnd 13 3000000 >"$T/src/d/three"
echo small >"$T/src/d/small"
publish herd 1.0 "$T/src"
read -r o_one _ _ < <(manifest_hashes herd 1.0 | grep ' d/one$')
read -r o_two _ _ < <(manifest_hashes herd 1.0 | grep ' d/two$')
read -r o_three _ _ < <(manifest_hashes herd 1.0 | grep ' d/three$')
p_one=$(object_path "$o_one")
p_two=$(object_path "$o_two")
p_three=$(object_path "$o_three")

# herd.py MODE PATH SHA256 N: N threads or processes (MODE) wait on one barrier, then each
# opens PATH and reads it to the end. Prints one line per reader ("ok" or "error ERRNO
# MESSAGE"), then "overlap yes|no": whether every reader had called open before the first
# open returned. Exits 0 when every reader read bytes whose SHA-256 is SHA256.
cat >"$T/herd.py" <<'EOF'
import hashlib, multiprocessing, os, sys, threading, time

mode, path, want, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def reader(barrier, results):
    barrier.wait()
    start = time.monotonic()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        results.put(("error %d %s" % (e.errno, e.strerror), start, None))
        return
    opened = time.monotonic()
    h = hashlib.sha256()
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            h.update(b)
    except OSError as e:
        results.put(("error %d %s (reading)" % (e.errno, e.strerror), start, opened))
        return
    finally:
        os.close(fd)
    got = h.hexdigest()
    results.put(("ok" if got == want else "wrong bytes: sha256 %s" % got, start, opened))

if mode == "threads":
    import queue
    results = queue.Queue()
    barrier = threading.Barrier(n)
    workers = [threading.Thread(target=reader, args=(barrier, results)) for _ in range(n)]
else:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    barrier = ctx.Barrier(n)
    workers = [ctx.Process(target=reader, args=(barrier, results)) for _ in range(n)]
for w in workers:
    w.start()
got = [results.get() for _ in range(n)]
for w in workers:
    w.join()
for what, _, _ in got:
    print(what)
opened = [o for _, _, o in got if o is not None]
last_start = max(s for _, s, _ in got)
print("overlap", "yes" if opened and last_start < min(opened) else "no")
sys.exit(0 if all(what == "ok" for what, _, _ in got) else 1)
EOF

# herd DESC MODE FILE HASH: 32 readers of $MNT/herd/1.0/d/FILE; all must read the right bytes.
# Leaves the output in $T/herd.out.
herd() {
	local desc=$1 mode=$2 file=$3 want n rc
	want=$(sha256sum <"$T/src/d/$file" | cut -d' ' -f1)
	set +e
	timeout -k 5 120 python3 "$T/herd.py" "$mode" "$MNT/herd/1.0/d/$file" "$want" 32 \
		>"$T/herd.out" 2>"$T/herd.err"
	rc=$?
	set -e
	if [ "$rc" -ne 0 ]; then
		sort "$T/herd.out" | uniq -c >&2
		cat "$T/herd.err" >&2
		tail -20 "$SFS_LOG" >&2
		[ "$rc" -ne 124 ] || fail "$desc: the 32 readers did not finish within 120 s"
		fail "$desc: not every reader read the source's bytes (exit $rc)"
	fi
	n=$(grep -cx ok "$T/herd.out" || true)
	[ "$n" -eq 32 ] || fail "$desc: $n of 32 readers reported the right bytes"
	pass "$desc: all 32 readers read the source's bytes"
}

# --- two herds against a trickling fault server ------------------------------------------
start_faultserver "$REPO"
fault_set "[{\"match\": \"^/$p_one\$\", \"fault\": \"trickle\", \"rate\": 100000},
	{\"match\": \"^/$p_two\$\", \"fault\": \"trickle\", \"rate\": 100000}]"
MNT=$T/mnt
STORE=$T/store
mount_storkfs "$MNT" "store=$STORE,timeout=60" "$FAULT_URL"
timeout 30 stat "$MNT/herd/1.0/d/one" >/dev/null || fail "stat of herd 1.0 d/one failed"
[ "$(xattr "$MNT/herd/1.0/d/one" user.storkfs.cached)" = 0 ] || fail "d/one is cached before the herd"
[ "$(fault_requests "^GET /objects/")" -eq 0 ] || fail "objects were requested before the herd"

herd "32 threads on d/one (trickled)" threads one
grep -qx 'overlap yes' "$T/herd.out" ||
	fail "the 32 opens of d/one did not overlap (a reader's open returned before the last began): the herd proved nothing"
pass "the 32 threads' opens overlapped (all began before the first returned)"
n=$(fault_requests "^GET /$p_one ")
[ "$n" -eq 1 ] || fail "32 threads on d/one: the origin saw $n requests for $p_one, want 1: $(grep -F "$p_one" "$FAULT_DIR/access.log")"
pass "32 threads on d/one: the origin saw one request for its object"

herd "32 processes on d/two (trickled)" processes two
grep -qx 'overlap yes' "$T/herd.out" ||
	fail "the 32 opens of d/two did not overlap (a reader's open returned before the last began): the herd proved nothing"
pass "the 32 processes' opens overlapped (all began before the first returned)"
n=$(fault_requests "^GET /$p_two ")
[ "$n" -eq 1 ] || fail "32 processes on d/two: the origin saw $n requests for $p_two, want 1: $(grep -F "$p_two" "$FAULT_DIR/access.log")"
pass "32 processes on d/two: the origin saw one request for its object"
n=$(fault_requests "^GET /objects/")
[ "$n" -eq 2 ] || fail "the origin saw $n object requests in all, want 2: $(grep objects "$FAULT_DIR/access.log")"
pass "no other object was requested"
unmount_storkfs "$MNT"
stop_faultserver

# --- a herd against nginx, no delay --------------------------------------------------------
start_nginx "$REPO"
MNT=$T/mnt-nginx
mount_storkfs "$MNT" "store=$T/store-nginx,timeout=60" "$NGINX_URL"
timeout 30 stat "$MNT/herd/1.0/d/three" >/dev/null || fail "stat of herd 1.0 d/three failed"
herd "32 threads on d/three (nginx, 3 MB, no delay)" threads three
n=$(nginx_requests "\"GET /$p_three ")
[ "$n" -eq 1 ] || fail "nginx: the origin saw $n requests for $p_three, want 1: $(grep -F "$p_three" "$NGINX_DIR/access.log")"
pass "nginx: the origin saw one request for d/three's object"
unmount_storkfs "$MNT"

fsck_clean "the trickled herds' store is clean" "$STORE"
check "every object in the trickled herds' store holds what its name hashes" store_hashes_ok "$STORE"
fsck_clean "the nginx herd's store is clean" "$T/store-nginx"
check "every object in the nginx herd's store holds what its name hashes" store_hashes_ok "$T/store-nginx"
done_ok
