#!/usr/bin/env bash
# A version whose signed manifest changes, or that a policy stops accepting, is replaced in a
# running mount (issue 11, item 1). Mallory and alice are both delegated p; mallory publishes
# p 1.0 (f = EVIL, and a 2 MB file big); two mounts (the daemon without -f, as users run it,
# max_trees=1) read it. In each of three forms a reader sits in the old version's directory
# (its cwd), holds the old big open and has read half of it; then:
#   1. `refuse key mallory` (mount B): its policy is edited to refuse mallory's key; after
#      SIGHUP mallory's q 1.0 and p 1.0 are gone from B (A, not signalled, is unchanged);
#   2. a `pin` that stops matching (mount B): `pin r >= 1.0` becomes `pin r >= 2`; after
#      SIGHUP r 1.0 is gone, r 2.0 stays;
#   3. revoke + republish (mount A, no policy): the repository revokes mallory and alice
#      publishes p 1.0 (f = GOOD); after SIGHUP p/1.0/f reads GOOD, user.storkfs.signer names
#      alice, also after drop_caches.
# Each time the reader finishes the old file (the whole read is the old version's bytes: they
# were verified when it opened), and a new open (by path, and relative to the reader's cwd in
# the old directory) sees the newly signed content or nothing, never the old bytes: through
# the old directory, nothing (fs/README.md "Replaced versions").
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo p r
keygen "$T/pub/mallory.key"
MALLORY=$KEYID
expect_rc 0 "delegate p, q and r to mallory too (after alice)" \
	"$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/mallory.key.pub" p q r
# version SRC WORD SEED: a version's source: f = WORD, big = 2 MB from SEED.
version() {
	mkdir -p "$1"
	echo "$2" >"$1/f"
	rnd "$3" 2000000 >"$1/big"
}
version "$T/src/evil" EVIL 1
version "$T/src/good" GOOD 2
version "$T/src/r1" R1 3
version "$T/src/r2" R2 4
publish p 0.9 "$T/src/good" --quiet
publish r 1.0 "$T/src/r1" --quiet
publish r 2.0 "$T/src/r2" --quiet
for pkg in p q; do
	expect_rc 0 "mallory publishes $pkg 1.0" \
		"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/mallory.key" $pkg 1.0 "$T/src/evil" --quiet
done
start_nginx "$REPO"
STORE=$T/store

cat >"$T/b.policy" <<POL
key mallory file $T/pub/mallory.key.pub
pin r >= 1.0
trust * delegated
POL

mount_bg "$T/a" "max_trees=1"
PID_A=$MOUNT_PID
mount_bg "$T/b" "max_trees=1,policy=$T/b.policy"
PID_B=$MOUNT_PID

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# signer FILE: the role of user.storkfs.signer ("ROLE KEYID"), or "-" when it cannot be read.
signer() {
	xattr "$1" user.storkfs.signer 2>/dev/null | cut -d' ' -f1 || echo -
}

for m in a b; do
	[ "$(cat "$T/$m/p/1.0/f")" = EVIL ] || fail "mount $m: p/1.0/f reads '$(cat "$T/$m/p/1.0/f")', want mallory's EVIL"
	[ "$(xattr "$T/$m/p/1.0/f" user.storkfs.signer)" = "mallory $MALLORY" ] ||
		fail "mount $m: p/1.0/f is signed by '$(xattr "$T/$m/p/1.0/f" user.storkfs.signer)', want mallory"
done
[ "$(cat "$T/b/q/1.0/f")" = EVIL ] && [ "$(cat "$T/b/r/1.0/f")" = R1 ] || fail "mount B does not read q 1.0 and r 1.0"
pass "both mounts read mallory's p 1.0 (EVIL, signer mallory); mount B reads q 1.0 and r 1.0"

# reader.py CWD FILE HALF GO (at most 180 s in all): chdir to CWD, open FILE, read half of it, create HALF, wait (at
# most 120 s) for GO, read the rest (reads that may reach the daemon: the test drops the page
# cache first). Prints "sha SHA256" of all it read, "reopen SHA256" or
# "reopen ERRNO-NAME" for the file opened again through /proc/self/fd, "rel CONTENT" or
# "rel ERRNO-NAME" for f opened relative to its cwd, and "ls NAMES" or "ls ERRNO-NAME" for
# its cwd's listing (empty: glibc ends a listing that fails with ENOENT without an error).
cat >"$T/reader.py" <<'EOF'
import errno, hashlib, os, signal, sys, time

signal.alarm(180)  # a bound on the whole reader: a read that hangs kills it
cwd, path, half, go = sys.argv[1:5]
os.chdir(cwd)
f = open(path, "rb", buffering=0)
size = os.fstat(f.fileno()).st_size
h = hashlib.sha256()
left = size // 2
while left:
    b = f.read(min(left, 65536))
    if not b:
        sys.exit("short read before the change")
    h.update(b)
    left -= len(b)
open(half, "w").close()
end = time.monotonic() + 120
while not os.path.exists(go):
    if time.monotonic() > end:
        sys.exit("no go within 120 s")
    time.sleep(0.1)
while True:
    b = f.read(65536)
    if not b:
        break
    h.update(b)
print("sha", h.hexdigest())
try:
    with open("/proc/self/fd/%d" % f.fileno(), "rb") as g:
        print("reopen", hashlib.sha256(g.read()).hexdigest())
except OSError as e:
    print("reopen", errno.errorcode.get(e.errno, e.errno))
try:
    with open("f", "rb") as g:
        print("rel", g.read().decode().strip())
except OSError as e:
    print("rel", errno.errorcode.get(e.errno, e.errno))
try:
    print("ls", ",".join(sorted(os.listdir("."))))
except OSError as e:
    print("ls", errno.errorcode.get(e.errno, e.errno))
EOF

# start_reader N DIR: a reader in DIR holding DIR/big open, half read.
start_reader() {
	rm -f "$T/half$1" "$T/go$1"
	python3 "$T/reader.py" "$2" big "$T/half$1" "$T/go$1" >"$T/reader$1.out" 2>"$T/reader$1.err" &
	READER=$!
	for _ in $(seq 600); do
		[ -e "$T/half$1" ] && break
		kill -0 "$READER" 2>/dev/null || break
		sleep 0.1
	done
	[ -e "$T/half$1" ] || {
		cat "$T/reader$1.err" >&2
		fail "reader $1 did not read half of $2/big within 60 s"
	}
}

# finish_reader N OLDSRC: let reader N finish; its whole read must be OLDSRC/big's bytes.
# Opening it again through /proc/self/fd must not give the old bytes (the kernel's inode of
# the old file is stale). Sets REL (f opened relative to its cwd) and LS (its cwd's listing).
finish_reader() {
	local rc=0
	drop_caches
	touch "$T/go$1"
	wait "$READER" || rc=$?
	[ "$rc" -eq 0 ] || {
		cat "$T/reader$1.out" "$T/reader$1.err" >&2
		fail "reader $1 failed (exit $rc) after the change"
	}
	[ "$(sed -n 's/^sha //p' "$T/reader$1.out")" = "$(sha "$2/big")" ] ||
		fail "reader $1: the whole read of the file it held open (half before, half after the change) is not the old version's bytes"
	[ "$(sed -n 's/^reopen //p' "$T/reader$1.out")" != "$(sha "$2/big")" ] ||
		fail "reader $1: opening the old file again through /proc/self/fd gave the old bytes"
	REL=$(sed -n 's/^rel //p' "$T/reader$1.out")
	LS=$(sed -n 's/^ls //p' "$T/reader$1.out")
}


# --- 1. the policy edited to refuse mallory's key (mount B) ---------------------------------
start_reader 1 "$T/b/q/1.0"
pass "reader 1 sits in mount B's q/1.0 and has read half of mallory's big"
sed -i 's/^trust \* delegated$/refuse key mallory\n&/' "$T/b.policy"
grep -qx 'refuse key mallory' "$T/b.policy" || fail "the policy edit did not take"
kill -HUP "$PID_B"
q_gone() { [ ! -e "$T/b/q/1.0" ] && [ ! -e "$T/b/q/1.0/f" ]; }
within 20 q_gone || fail "20 s after SIGHUP mount B still shows q/1.0 (f = '$(cat "$T/b/q/1.0/f" 2>&1)', signed by '$(signer "$T/b/q/1.0/f")') although its policy refuses mallory's key"
[ ! -e "$T/b/p/1.0/f" ] || fail "mount B still shows mallory's p/1.0/f ('$(cat "$T/b/p/1.0/f" 2>&1)') after refusing her key"
[ "$(cat "$T/b/p/0.9/f")" = GOOD ] || fail "mount B lost alice's p 0.9"
[ "$(cat "$T/a/p/1.0/f")" = EVIL ] || fail "mount A (its policy unchanged, not refreshed) changed"
pass "after SIGHUP mount B shows neither q 1.0 nor p 1.0 (mallory's), alice's p 0.9 stays; mount A is unchanged"
drop_caches
[ ! -e "$T/b/q/1.0/f" ] || fail "after drop_caches q/1.0/f is back"
finish_reader 1 "$T/src/evil"
pass "reader 1 finished the file it held open: the whole read is the old bytes; opened again (/proc/self/fd) it gives $(sed -n 's/^reopen //p' "$T/reader1.out")"
[ "$REL" = ENOENT ] || fail "f opened relative to reader 1's cwd (the refused q/1.0) gave '$REL', want ENOENT"
[ -z "$LS" ] || fail "reader 1's cwd (the refused q/1.0) lists '$LS', want nothing"
pass "no new open or listing through the refused version's directory"

# --- 2. a pin that stops matching (mount B) -------------------------------------------------
start_reader 2 "$T/b/r/1.0"
pass "reader 2 sits in mount B's r/1.0 and has read half of its big"
sed -i 's/^pin r >= 1.0$/pin r >= 2/' "$T/b.policy"
grep -qx 'pin r >= 2' "$T/b.policy" || fail "the policy edit did not take"
kill -HUP "$PID_B"
r_gone() { [ ! -e "$T/b/r/1.0" ] && [ ! -e "$T/b/r/1.0/f" ]; }
within 20 r_gone || fail "20 s after SIGHUP mount B still shows r/1.0 (f = '$(cat "$T/b/r/1.0/f" 2>&1)') outside its pin"
[ "$(cat "$T/b/r/2.0/f")" = R2 ] || fail "mount B lost r 2.0"
[ "$(readlink "$T/b/r/latest")" = 2.0 ] || fail "mount B: r/latest -> $(readlink "$T/b/r/latest")"
pass "after SIGHUP r 1.0 is gone from mount B, r 2.0 stays"
finish_reader 2 "$T/src/r1"
pass "reader 2 finished the file it held open"
[ "$REL" = ENOENT ] || fail "f opened relative to reader 2's cwd (r/1.0, outside the pin) gave '$REL', want ENOENT"
[ -z "$LS" ] || fail "reader 2's cwd (r/1.0, outside the pin) lists '$LS', want nothing"
pass "no new open through the directory of a version outside the pin"

# --- 3. revoke + republish (mount A, no policy) ---------------------------------------------
start_reader 3 "$T/a/p/1.0"
pass "reader 3 sits in mount A's p/1.0 and has read half of mallory's big"
expect_rc 0 "the repository revokes mallory" "$STORK" repo revoke "$REPO" --keys "$KEYS" mallory
publish p 1.0 "$T/src/good" --quiet
expect_rc 0 "stork ls after the republish" "$STORK" ls --root "$ROOT" "$NGINX_URL" p
printf '%s\n' "$OUT" | matches -E '^1\.0[[:space:]]+alice[[:space:]]' || { _show_run; fail "stork ls does not list alice's p 1.0"; }
pass "stork ls lists alice's p 1.0"
kill -HUP "$PID_A"
is_alice() { [ "$(signer "$T/a/p/1.0/f")" = alice ]; }
within 20 is_alice ||
	fail "20 s after SIGHUP mount A still serves p/1.0/f = '$(cat "$T/a/p/1.0/f" 2>&1)' signed by '$(signer "$T/a/p/1.0/f")' (want alice's GOOD)"
[ "$(cat "$T/a/p/1.0/f")" = GOOD ] || fail "after SIGHUP mount A's p/1.0/f reads '$(cat "$T/a/p/1.0/f")', want GOOD"
cmp -s "$T/a/p/1.0/big" "$T/src/good/big" || fail "after SIGHUP mount A's p/1.0/big is not alice's"
[ "$(xattr "$T/a/p/1.0/f" user.storkfs.signer)" = "alice $PUBKEYID" ] ||
	fail "after SIGHUP p/1.0/f is signed by '$(xattr "$T/a/p/1.0/f" user.storkfs.signer)', want alice $PUBKEYID"
pass "after SIGHUP mount A reads alice's p 1.0 (GOOD) and user.storkfs.signer names alice"
drop_caches
[ "$(cat "$T/a/p/1.0/f")" = GOOD ] || fail "after drop_caches mount A's p/1.0/f reads '$(cat "$T/a/p/1.0/f")'"
[ "$(signer "$T/a/p/1.0/f")" = alice ] || fail "after drop_caches p/1.0/f is signed by '$(signer "$T/a/p/1.0/f")'"
pass "after drop_caches too"
finish_reader 3 "$T/src/evil"
pass "reader 3 finished the file it held open: the whole read is the old (mallory's) bytes"
[ "$REL" = ENOENT ] || fail "f opened relative to reader 3's cwd (the replaced p/1.0) gave '$REL', want ENOENT"
[ -z "$LS" ] || fail "reader 3's cwd (the replaced p/1.0) lists '$LS', want nothing"
pass "nothing is opened or listed through the replaced version's directory (fs/README.md: go through the path again)"

for m in a b; do
	pid=$PID_A
	[ $m = a ] || pid=$PID_B
	fusermount3 -u "$T/$m" || fail "fusermount3 -u $T/$m"
	for _ in $(seq 300); do
		running "$pid" || break
		sleep 0.1
	done
	! running "$pid" || fail "storkfs ($pid) still runs 30 s after unmounting $T/$m"
done
pass "both daemons exit at unmount"
fsck_clean "the store is clean" "$STORE"
done_ok
