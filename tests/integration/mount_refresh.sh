#!/usr/bin/env bash
# New versions appear while mounted; an open old version keeps working. Mount A (-o
# refresh=3600, so only SIGHUP refreshes it) and mount B (-o refresh=2) share one store and
# serve package "pkg" 1.0 from nginx. A reader process sits in A's pkg/1.0/share (its cwd),
# holds a directory descriptor there, opens pkg/1.0/bigfile and reads half of it. Then pkg
# 2.0 is published into the served repository: A does not show it before SIGHUP; after
# `kill -HUP`, within a bounded wait, `ls pkg` lists 2.0 and `latest` -> 2.0. The reader (its
# page cache dropped, so its reads reach the daemon) reads the rest of the old file: the
# SHA-256 of the whole read is 1.0's; listing its cwd and its directory descriptor and
# opening a file relative to its cwd still work. New opens give 1.0's, 2.0's and latest's
# right bytes. Then pkg 3.0 is published and, with no signal, mount B shows it and its
# `latest` follows within a bounded wait (its refresh= timer), while A (refresh=3600) does
# not. Waits are bounds that mean "did not hang", never speed. Both mounts also serve a slice
# (-o slices=, fs/README.md "Slices") whose policy accepts everything: a second reader does
# all the first one does through A's /.slices/s/, and every listing and read is checked
# through the slice as well as at the top level.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse


# pkg_tree DIR SEED: a version of pkg: bigfile (2 MB, random from SEED) and share/.
pkg_tree() {
	mkdir -p "$1/share/doc"
	rnd "$2" 2000000 >"$1/bigfile"
	echo "readme $2" >"$1/share/doc/readme"
	rnd "$(($2 + 1))" 5000 >"$1/share/data"
	ln -s doc/readme "$1/share/link"
}

make_repo
pkg_tree "$T/src/1.0" 100
pkg_tree "$T/src/2.0" 200
pkg_tree "$T/src/3.0" 300
publish pkg 1.0 "$T/src/1.0"
start_nginx "$REPO"
STORE=$T/store
A=$T/mnt-a
B=$T/mnt-b
mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"
mount_storkfs "$A" "store=$STORE,timeout=30,refresh=3600,slices=$T/slices" "$NGINX_URL"
A_PID=$SFS_PID
A_LOG=$SFS_LOG
mount_storkfs "$B" "store=$STORE,timeout=30,refresh=2,slices=$T/slices" "$NGINX_URL"
B_PID=$SFS_PID

# versions MNT: "VERSIONS... -> LATEST" of pkg in mount MNT (bounded).
versions() {
	echo "$(timeout 30 ls "$1/pkg" | tr '\n' ' ')-> $(timeout 30 readlink "$1/pkg/latest")"
}

# wait_versions MNT WANT SECONDS: wait until versions MNT says WANT.
wait_versions() {
	local got
	for _ in $(seq $(($3 * 2))); do
		got=$(versions "$1")
		[ "$got" != "$2" ] || return 0
		sleep 0.5
	done
	echo "$1: after $3 s: '$got', want '$2'" >&2
	return 1
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

[ "$(versions "$A")" = "1.0 latest -> 1.0" ] || fail "mount A shows '$(versions "$A")', want '1.0 latest -> 1.0'"
[ "$(versions "$B")" = "1.0 latest -> 1.0" ] || fail "mount B shows '$(versions "$B")', want '1.0 latest -> 1.0'"
[ "$(versions "$A/.slices/s")" = "1.0 latest -> 1.0" ] || fail "slice s of mount A shows '$(versions "$A/.slices/s")'"
[ "$(versions "$B/.slices/s")" = "1.0 latest -> 1.0" ] || fail "slice s of mount B shows '$(versions "$B/.slices/s")'"
pass "both mounts show pkg 1.0, latest -> 1.0, at the top level and through slice s"

# refresh_reader.py DIR FILE HALF GO: chdir to DIR, hold a descriptor of it, read half of
# FILE, create HALF, wait (up to 120 s) for GO to exist, read the rest. Prints "sha SHA256"
# of everything read, "cwd NAMES" (listing "."), "dirfd NAMES" (listing the descriptor),
# "rel SHA256" (doc/readme opened relative to the cwd).
cat >"$T/refresh_reader.py" <<'EOF'
import hashlib, os, sys, time

cwd, path, half, go = sys.argv[1:5]
os.chdir(cwd)
dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
f = open(path, "rb", buffering=0)
size = os.fstat(f.fileno()).st_size
h = hashlib.sha256()
left = size // 2
while left:
    b = f.read(min(left, 65536))
    if not b:
        sys.exit("short read before the refresh")
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
print("cwd", ",".join(sorted(os.listdir("."))))
print("dirfd", ",".join(sorted(os.listdir(dfd))))
with open("doc/readme", "rb") as g:
    print("rel", hashlib.sha256(g.read()).hexdigest())
EOF

# --- a reader holds 1.0 open; 2.0 is published; SIGHUP ------------------------------------
# reader 0 at the top level of A, reader 1 through A's slice s (VIEWS[i])
VIEWS=("$A" "$A/.slices/s")
readers=()
for i in 0 1; do
	v=${VIEWS[$i]}
	timeout -k 5 180 python3 "$T/refresh_reader.py" "$v/pkg/1.0/share" "$v/pkg/1.0/bigfile" \
		"$T/half.$i" "$T/go" >"$T/reader.$i.out" 2>"$T/reader.$i.err" &
	readers+=($!)
	for _ in $(seq 600); do
		[ -e "$T/half.$i" ] && break
		kill -0 "${readers[$i]}" 2>/dev/null || break
		sleep 0.1
	done
	[ -e "$T/half.$i" ] || {
		cat "$T/reader.$i.err" >&2
		fail "the reader did not read half of $v/pkg/1.0/bigfile within 60 s"
	}
done
pass "a reader sits in pkg/1.0/share and has read half of pkg/1.0/bigfile, another one through slice s"

publish pkg 2.0 "$T/src/2.0"
sleep 1
[ ! -e "$A/pkg/2.0" ] || fail "mount A (refresh=3600) shows pkg 2.0 before SIGHUP"
[ "$(versions "$A")" = "1.0 latest -> 1.0" ] || fail "mount A (refresh=3600) shows '$(versions "$A")' before SIGHUP"
[ "$(versions "$A/.slices/s")" = "1.0 latest -> 1.0" ] || fail "slice s of mount A shows '$(versions "$A/.slices/s")' before SIGHUP"
pass "before SIGHUP, mount A (refresh=3600) does not show the new version"
kill -HUP "$A_PID"
wait_versions "$A" "1.0 2.0 latest -> 2.0" 30 || {
	tail -20 "$A_LOG" >&2
	fail "after SIGHUP, pkg 2.0 did not appear in mount A (or latest did not follow) within 30 s"
}
wait_versions "$A/.slices/s" "1.0 2.0 latest -> 2.0" 30 ||
	fail "after SIGHUP, pkg 2.0 did not appear in slice s of mount A (or latest did not follow) within 30 s"
pass "after SIGHUP, pkg 2.0 appears and latest -> 2.0, at the top level and through slice s"
kill -0 "$A_PID" 2>/dev/null || fail "the daemon of mount A exited on SIGHUP"

drop_caches
touch "$T/go"
for i in 0 1; do
	v=${VIEWS[$i]}
	out=$T/reader.$i.out
	set +e
	wait "${readers[$i]}"
	rc=$?
	set -e
	[ "$rc" -eq 0 ] || {
		cat "$out" "$T/reader.$i.err" >&2
		[ "$rc" -ne 124 ] || fail "the reader of $v/pkg/1.0/bigfile hung after the refresh (killed after 180 s)"
		fail "the reader of $v/pkg/1.0/bigfile failed after the refresh (exit $rc)"
	}
	[ "$(sed -n 's/^sha //p' "$out")" = "$(sha "$T/src/1.0/bigfile")" ] ||
		fail "the reader's whole read of $v/pkg/1.0/bigfile (half before, half after the refresh) is not 1.0's bytes"
	want_dir=data,doc,link
	[ "$(sed -n 's/^cwd //p' "$out")" = "$want_dir" ] ||
		fail "listing the reader's cwd ($v/pkg/1.0/share) after the refresh: '$(sed -n 's/^cwd //p' "$out")', want $want_dir"
	[ "$(sed -n 's/^dirfd //p' "$out")" = "$want_dir" ] ||
		fail "listing the reader's directory descriptor ($v) after the refresh: '$(sed -n 's/^dirfd //p' "$out")', want $want_dir"
	[ "$(sed -n 's/^rel //p' "$out")" = "$(sha "$T/src/1.0/share/doc/readme")" ] ||
		fail "doc/readme opened relative to the reader's cwd ($v) after the refresh is not 1.0's"
done
pass "the readers read the rest of the old file (the whole read is 1.0's bytes); their cwd and directory descriptor in pkg/1.0 keep working after the refresh, at the top level and through slice s"

for v in "${VIEWS[@]}"; do
	for f in 1.0/bigfile 2.0/bigfile 2.0/share/doc/readme 1.0/share/link; do
		timeout 60 cat "$v/pkg/$f" >"$T/cat" || fail "cat $v/pkg/$f failed"
		cmp -s "$T/cat" "$T/src/$f" || fail "$v/pkg/$f does not read its source's bytes"
	done
	timeout 60 cat "$v/pkg/latest/bigfile" >"$T/cat" || fail "cat $v/pkg/latest/bigfile failed"
	cmp -s "$T/cat" "$T/src/2.0/bigfile" || fail "$v/pkg/latest/bigfile is not 2.0's"
done
pass "new opens read 1.0's, 2.0's and latest's (2.0) right bytes, at the top level and through slice s"

# --- no signal: the refresh= timer ----------------------------------------------------------
wait_versions "$B" "1.0 2.0 latest -> 2.0" 30 || fail "mount B (refresh=2) did not show pkg 2.0 within 30 s"
publish pkg 3.0 "$T/src/3.0"
wait_versions "$B" "1.0 2.0 3.0 latest -> 3.0" 30 ||
	fail "with no SIGHUP, mount B (refresh=2) did not show pkg 3.0 (latest -> 3.0) within 30 s"
wait_versions "$B/.slices/s" "1.0 2.0 3.0 latest -> 3.0" 30 ||
	fail "with no SIGHUP, slice s of mount B (refresh=2) did not show pkg 3.0 (latest -> 3.0) within 30 s"
timeout 60 cat "$B/.slices/s/pkg/latest/bigfile" >"$T/cat" || fail "cat pkg/latest/bigfile through slice s of mount B failed"
cmp -s "$T/cat" "$T/src/3.0/bigfile" || fail "pkg/latest/bigfile through slice s of mount B is not 3.0's"
pass "with no SIGHUP, mount B (refresh=2) shows pkg 3.0 and latest -> 3.0, through slice s too"
timeout 60 cat "$B/pkg/latest/bigfile" >"$T/cat" || fail "cat pkg/latest/bigfile in mount B failed"
cmp -s "$T/cat" "$T/src/3.0/bigfile" || fail "pkg/latest/bigfile in mount B is not 3.0's"
pass "mount B reads pkg/latest/bigfile as 3.0's bytes"
[ "$(versions "$A")" = "1.0 2.0 latest -> 2.0" ] ||
	fail "mount A (refresh=3600, no new SIGHUP) shows '$(versions "$A")', want '1.0 2.0 latest -> 2.0'"
[ "$(versions "$A/.slices/s")" = "1.0 2.0 latest -> 2.0" ] ||
	fail "slice s of mount A (refresh=3600, no new SIGHUP) shows '$(versions "$A/.slices/s")', want '1.0 2.0 latest -> 2.0'"
pass "mount A (refresh=3600) without a new SIGHUP still shows 1.0 2.0"

unmount_storkfs "$A" "$A_PID"
unmount_storkfs "$B" "$B_PID"
fsck_clean "the shared store is clean" "$STORE"
done_ok
