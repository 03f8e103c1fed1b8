#!/usr/bin/env bash
# storkfs over a real FUSE mount and a real nginx: two synthetic packages with two versions
# each. Listing the whole mount (ls -lR, find, stat) fetches signed metadata only (no
# /objects/ request); the tree shows the sources' names, types, sizes and symlink targets,
# their modes without write and set-id bits, owned by root; every file reads back its source
# bytes, each distinct object fetched once; a shell script runs from the mount; `latest` is
# the highest version in dpkg order (1.10 > 1.2); numbers are stable; the mount is read-only;
# fusermount3 -u unmounts and the daemon exits.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

MNT=$T/mnt
_MOUNTS+=("$MNT") # unmounted at exit

# tools_tree DIR TAG: a package with a program (a shell script that runs a sibling through a
# relative symlink), nested directories and symlinks to files and directories.
tools_tree() {
	local s=$1 tag=$2
	mkdir -p "$s/bin" "$s/lib/tools/deep/er/still" "$s/share/doc/tools"
	printf '#!/bin/sh\nhere=$(dirname "$0")\necho "tools %s: $(cat "$here/../share/doc/tools/greeting")"\n' \
		"$tag" >"$s/bin/tools"
	chmod 755 "$s/bin/tools"
	echo "hello from the mount" >"$s/share/doc/tools/greeting"
	head -c 70000 /dev/zero | tr '\0' "$tag" >"$s/lib/tools/deep/er/still/data"
	chmod 644 "$s/lib/tools/deep/er/still/data"
	ln -s tools "$s/bin/run"
	ln -s ../lib/tools/deep "$s/share/deep-link"
	chmod 750 "$s/lib/tools/deep/er"
}

make_repo
synth_tree "$T/src/synth-1.2" 1
synth_tree "$T/src/synth-1.10" 2
tools_tree "$T/src/tools-0.9" a
tools_tree "$T/src/tools-0.10" b
for pv in synth:1.2 synth:1.10 tools:0.9 tools:0.10; do
	publish "${pv%%:*}" "${pv#*:}" "$T/src/${pv%%:*}-${pv#*:}" --quiet
done
start_nginx "$REPO"
STORE=$T/store
mkdir -p "$MNT"

expect_rc 0 "storkfs mounts and returns once the mount is ready" \
	timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,timeout=30" "$NGINX_URL" "$MNT"
grep -qF " $MNT fuse.storkfs " /proc/mounts || fail "no fuse.storkfs mount at $MNT: $(grep "$MNT" /proc/mounts)"
pass "the mount is listed as fuse.storkfs in /proc/mounts"

# --- listing: metadata only -------------------------------------------------------------------
timeout 60 ls -lR "$MNT" >"$T/ls-lR" || fail "ls -lR $MNT failed"
[ "$(ls "$MNT" | tr '\n' ' ')" = "synth tools " ] || fail "root lists '$(ls "$MNT")', want synth tools"
pass "the root lists the packages"
[ "$(ls "$MNT/synth" | tr '\n' ' ')" = "1.10 1.2 latest " ] ||
	fail "synth/ lists '$(ls "$MNT/synth" | tr '\n' ' ')', want 1.10 1.2 latest"
pass "a package lists its versions and latest"
[ "$(readlink "$MNT/synth/latest")" = 1.10 ] || fail "synth/latest -> $(readlink "$MNT/synth/latest"), want 1.10"
[ "$(readlink "$MNT/tools/latest")" = 0.10 ] || fail "tools/latest -> $(readlink "$MNT/tools/latest"), want 0.10"
pass "latest points to the highest version in dpkg order (1.10 > 1.2, 0.10 > 0.9)"
for pv in synth:1.2 synth:1.10 tools:0.9 tools:0.10; do
	p=${pv%%:*} v=${pv#*:}
	mount_list "$T/src/$p-$v" >"$T/want.list"
	tree_list "$MNT/$p/$v" >"$T/got.list"
	if ! diff -u "$T/want.list" "$T/got.list" >"$T/list.diff"; then
		head -40 "$T/list.diff" >&2
		fail "$p $v: the mount's names, types, modes, sizes or symlink targets differ from the source"
	fi
done
pass "every version shows its source's names, types, sizes, symlink targets and read-only modes"
[ -z "$(find "$MNT" ! -type l \( -perm /0222 -o -perm /6000 \) -print -quit)" ] ||
	fail "writable or set-id entries in the mount: $(find "$MNT" ! -type l \( -perm /0222 -o -perm /6000 \) | head -3)"
[ -z "$(find "$MNT" \( ! -uid 0 -o ! -gid 0 \) -print -quit)" ] || fail "entries not owned by root:root"
pass "nothing is writable or set-id, everything is owned by root"
n=$(nginx_requests '"GET /objects/')
[ "$n" -eq 0 ] || fail "listing and stat fetched $n objects: $(grep '/objects/' "$NGINX_DIR/access.log" | head -3)"
pass "ls -lR, find and stat sent no object request"

# --- stable numbers -------------------------------------------------------------------------
f=$MNT/synth/1.10/usr/share/doc/pkg/small.txt
ino1=$(stat -c %i "$f")
if echo 2 >/proc/sys/vm/drop_caches 2>/dev/null; then
	ino2=$(stat -c %i "$f")
	[ "$ino1" = "$ino2" ] || fail "$f: inode $ino1, then $ino2 after the kernel forgot it"
	pass "a path keeps its inode number after the kernel forgets it"
else
	echo "# cannot drop the kernel's caches here: stable numbers checked without it"
	[ "$ino1" = "$(stat -c %i "$f")" ] || fail "$f: inode number changed"
fi

# --- reading --------------------------------------------------------------------------------
for pv in synth:1.2 synth:1.10 tools:0.9 tools:0.10; do
	p=${pv%%:*} v=${pv#*:}
	if ! timeout 120 diff -r --no-dereference "$T/src/$p-$v" "$MNT/$p/$v" >"$T/diff" 2>&1; then
		head -20 "$T/diff" >&2
		fail "$p $v: file contents through the mount differ from the source"
	fi
done
pass "every file of every version reads back its source's bytes"
want=$(for pv in synth:1.2 synth:1.10 tools:0.9 tools:0.10; do
	manifest_hashes "${pv%%:*}" "${pv#*:}"
done | cut -d' ' -f1 | sort -u | wc -l)
n=$(nginx_requests '"GET /objects/')
[ "$n" -eq "$want" ] || fail "reading everything sent $n object requests, want one per distinct object ($want)"
pass "each distinct object was fetched once ($want)"
f=$MNT/synth/1.10/usr/share/doc/pkg/random.bin
[ "$(python3 -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.storkfs.hash").decode())' "$f")" = \
	"$(sha256sum <"$f" | cut -d' ' -f1)" ] || fail "$f: user.storkfs.hash is not the SHA-256 of its content"
[ "$(python3 -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.storkfs.cached").decode())' "$f")" = 1 ] ||
	fail "$f: user.storkfs.cached is not 1 after reading it"
pass "xattrs: user.storkfs.hash is the content's SHA-256, user.storkfs.cached is 1 once read"

# --- running --------------------------------------------------------------------------------
expect_rc 0 "the latest tools program runs from the mount" timeout 30 "$MNT/tools/latest/bin/run"
[ "$OUT" = "tools b: hello from the mount" ] || fail "tools printed '$OUT'"
expect_rc 0 "an older version's program runs from the mount" timeout 30 "$MNT/tools/0.9/bin/tools"
[ "$OUT" = "tools a: hello from the mount" ] || fail "tools 0.9 printed '$OUT'"

# --- read-only ------------------------------------------------------------------------------
if touch "$MNT/synth/1.10/new" 2>/dev/null || echo x 2>/dev/null >>"$MNT/synth/1.10/usr/bin/tool"; then
	fail "writing into the mount succeeded"
fi
pass "the mount refuses writes"

# --- unmount --------------------------------------------------------------------------------
expect_rc 0 "fusermount3 -u unmounts" fusermount3 -u "$MNT"
for _ in $(seq 50); do
	pgrep -f -- "$MNT" >/dev/null || break
	sleep 0.1
done
! pgrep -f -- "$MNT" >/dev/null || fail "the storkfs daemon is still running after unmount"
! grep -qF " $MNT fuse" /proc/mounts || fail "$MNT is still mounted"
pass "the daemon exits after fusermount3 -u"

# --- SIGTERM --------------------------------------------------------------------------------
mount_storkfs "$MNT" "store=$STORE,timeout=30" "$NGINX_URL"
cat "$MNT/synth/latest/usr/bin/tool" >/dev/null
kill -TERM "$SFS_PID"
for _ in $(seq 100); do
	running "$SFS_PID" || break
	sleep 0.1
done
! running "$SFS_PID" || fail "storkfs still runs 10 s after SIGTERM"
wait "$SFS_PID" && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "storkfs exited $rc after SIGTERM, want 0"
! is_mounted "$MNT" || fail "$MNT is still mounted after SIGTERM"
pass "SIGTERM unmounts and the daemon exits 0"
fsck_clean "the store is clean afterwards" "$STORE"
done_ok
