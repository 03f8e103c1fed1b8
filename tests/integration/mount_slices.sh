#!/usr/bin/env bash
# Slices in one mount (fs/README.md "Slices"): storkfs run as users run it (without -f: it
# daemonizes and logs to syslog, received on this test's own /dev/log in a private mount
# namespace) with -o slices=DIR holding three slice files with different policies. Each
# /.slices/<slice>/ lists exactly the packages and versions `stork ls --policy` lists for its
# policy, and the top level what the node signs. A program of a slice (Debian's busybox-static)
# runs inside bwrap, inside systemd-nspawn and in a chroot in its own mount namespace (unshare,
# a plain read-only bind mount) with only that slice's subtree bound into the container, which
# sees nothing of the other slices. Each slice's status (user.storkfs.status on its root, and stork
# status) counts its own opens, bytes read, objects fetched on its behalf and refusals, and
# nothing of the others'; the slice root has no other attribute. Editing one slice file and
# sending SIGHUP changes that slice only; a slice file with a typo keeps the slice's previous
# view and the log names the file, the line and the problem; adding and removing a file adds
# and removes its slice; a slices= directory that is not there stops storkfs. The refresh
# test's core check (a version published after mounting shows after SIGHUP) runs through a
# slice too.
. "$(dirname "$0")/private_ns.sh"
. "$(dirname "$0")/lib.sh"

need python3 nginx mount dpkg-deb bwrap systemd-nspawn chroot
need_fuse

# the daemon's syslog lines: our own /dev/log in this mount namespace (sets SYSLOG)
private_syslog

# slice_status SLICE KEY: a field of the slice's own status (user.storkfs.status on its root).
slice_status() {
	xattr "$MNT/.slices/$1" user.storkfs.status | python3 -c 'import json, sys
print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# words CMD...: the command's output lines joined by spaces.
words() {
	"$@" | tr '\n' ' '
}

# stork_ls ARGS...: stork ls without its header line
stork_ls() {
	"$STORK" ls "$@" | sed 1d
}

# same_as_policy SLICE: the slice's subtree lists what stork ls --policy lists for its file:
# the packages, and for each its versions (and latest -> the highest).
same_as_policy() {
	local s=$1 p want got last
	want=$(words stork_ls --root "$ROOT" --policy "$T/slices/$s.policy" "$NGINX_URL")
	got=$(words ls "$MNT/.slices/$s")
	[ "$got" = "$want" ] || fail "slice $s lists '$got', stork ls --policy lists '$want'"
	for p in $want; do
		want=$(stork_ls --root "$ROOT" --policy "$T/slices/$s.policy" "$NGINX_URL" "$p" |
			awk -F'\t' '$2 != "-" { print $1 }' | tr '\n' ' ')
		got=$(ls "$MNT/.slices/$s/$p" | grep -vx latest | sort -V | tr '\n' ' ')
		[ "$got" = "$want" ] || fail "slice $s lists $p versions '$got', stork ls --policy lists '$want'"
		last=$(printf '%s\n' $want | tail -n 1)
		[ "$(readlink "$MNT/.slices/$s/$p/latest")" = "$last" ] ||
			fail "slice $s: $p/latest -> $(readlink "$MNT/.slices/$s/$p/latest"), want $last"
	done
}

# wait_for CMD...: retry CMD (up to 10 s) until it succeeds.
wait_for() {
	for _ in $(seq 100); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# --- a repository: busybox-static (Debian) and db 1.0, 2.0 signed by bob, web-shop by alice ------
fetch_debs
BUSYBOX=
for deb in "${DEBS[@]}"; do
	[ "$(deb_field "$deb" Package)" = busybox-static ] && BUSYBOX=$deb
done
[ -n "$BUSYBOX" ] || fail "no busybox-static .deb"
BBVER=$(deb_field "$BUSYBOX" Version)
make_repo 'web-*'
keygen "$T/bob.key"
"$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/bob.key.pub" '*' >/dev/null
mkdir -p "$T/src/w" "$T/src/d1" "$T/src/d2"
echo web >"$T/src/w/index.html"
echo db1 >"$T/src/d1/db.conf"
echo db2 >"$T/src/d2/db.conf"
"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" web-shop 1.0 "$T/src/w" --quiet
"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/bob.key" db 1.0 "$T/src/d1" --quiet
"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/bob.key" db 2.0 "$T/src/d2" --quiet
"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/bob.key" busybox-static "$BBVER" "$BUSYBOX" --quiet
start_nginx "$REPO"

mkdir -p "$T/slices"
cat >"$T/slices/a.policy" <<POL
# slice a: busybox and the web packages, as the repository delegates them
trust busybox-static delegated
trust web-* delegated
POL
cat >"$T/slices/b.policy" <<POL
# slice b: bob's packages, db below 2
key bob file $T/bob.key.pub
pin db < 2
trust * role bob keys bob
POL
cat >"$T/slices/c.policy" <<POL
trust * delegated
POL
echo "not a slice" >"$T/slices/README"

MNT=$T/mnt
STORE=$T/store
mkdir -p "$MNT"
expect_rc 1 "storkfs refuses a slices= directory that is not there" \
	timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,slices=$T/no-slices" "$NGINX_URL" "$MNT"
err_has "the error names the option and the problem" "slices=$T/no-slices" "No such file or directory"
! is_mounted "$MNT" || fail "storkfs mounted with a missing slices= directory"
_MOUNTS+=("$MNT")
timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,timeout=30,slices=$T/slices" "$NGINX_URL" "$MNT" \
	2>"$T/mount.err" || {
	cat "$T/mount.err" >&2
	fail "storkfs did not mount $MNT"
}
SFS_PID=$(status_field "$MNT" pid)
pass "storkfs -o slices= mounts (without -f)"

# --- each slice shows what its policy accepts ----------------------------------------------
[ "$(words ls "$MNT/.slices")" = "a b c " ] || fail "/.slices lists '$(words ls "$MNT/.slices")', want a b c"
[ "$(words ls "$MNT")" = "$(words stork_ls --root "$ROOT" "$NGINX_URL")" ] ||
	fail "the top level lists '$(words ls "$MNT")', not what the node signs"
for s in a b c; do
	same_as_policy "$s"
done
[ "$(words ls "$MNT/.slices/a")" = "busybox-static web-shop " ] || fail "slice a lists '$(words ls "$MNT/.slices/a")'"
[ "$(words ls "$MNT/.slices/b/db")" = "1.0 latest " ] || fail "slice b lists db '$(words ls "$MNT/.slices/b/db")'"
[ ! -e "$MNT/.slices/b/db/2.0" ] || fail "slice b can look up db 2.0 by name"
[ ! -e "$MNT/.slices/a/db" ] || fail "slice a can look up db by name"
pass "each of three slices lists exactly what stork ls --policy lists for its file; the top level is the node's"

# --- reading through a slice; per-slice counters --------------------------------------------
cmp "$T/src/d1/db.conf" "$MNT/.slices/b/db/1.0/db.conf" || fail "slice b reads wrong bytes"
cmp "$T/src/w/index.html" "$MNT/.slices/c/web-shop/1.0/index.html" || fail "slice c reads wrong bytes"
[ "$(slice_status b opens)" -eq 1 ] || fail "slice b counts $(slice_status b opens) opens, want 1"
[ "$(slice_status b bytes_read)" -eq 4 ] || fail "slice b counts $(slice_status b bytes_read) bytes read, want 4"
[ "$(slice_status b objects_fetched)" -eq 1 ] || fail "slice b counts $(slice_status b objects_fetched) objects fetched, want 1"
[ "$(slice_status a opens)" -eq 0 ] || fail "slice a counts $(slice_status a opens) opens, want 0"
[ "$(slice_status a refused)" -ge 1 ] || fail "slice a counts no refusal after a lookup of db"
[ "$(slice_status b refused)" -ge 1 ] || fail "slice b counts no refusal after a lookup of db 2.0"
[ "$(slice_status c refused)" -eq 0 ] || fail "slice c counts $(slice_status c refused) refusals, want 0"
pass "each slice counts its own opens, bytes read, objects fetched and refusals"

# --- into a container: bwrap with only slice a's subtree ------------------------------------
BB=/stork/busybox-static/latest/bin/busybox
in_a() {
	timeout 60 bwrap --tmpfs / --ro-bind "$MNT/.slices/a" /stork --dev /dev --proc /proc \
		--unshare-all --die-with-parent "$BB" "$@"
}
expect_rc 0 "busybox of slice a runs in a container that holds only slice a" in_a echo ok
[ "$OUT" = ok ] || fail "busybox echo ok printed '$OUT'"
expect_rc 0 "the container lists its slice" in_a ls /stork
[ "$(printf '%s\n' "$OUT" | tr '\n' ' ')" = "busybox-static web-shop " ] || fail "the container lists '$OUT'"
expect_rc 0 "the container lists its root" in_a ls -a / /stork/..
out_has "the container's root holds only what bwrap made" "stork"
for probe in /stork/.slices /stork/../.slices /stork/db /stork/../b /stork/../c "/stork/../.slices/b"; do
	expect_rc 1 "the container cannot reach $probe" in_a ls "$probe"
done
expect_rc 0 "the container reads a file of its slice" in_a cat /stork/web-shop/1.0/index.html
[ "$OUT" = web ] || fail "the container read '$OUT'"
expect_rc 0 "the container looks at its mount table" in_a cat /proc/self/mountinfo
! printf '%s' "$OUT" | grep -q '\.slices/[bc]' || fail "the container's mount table names another slice: $OUT"
pass "in bwrap, busybox from slice a runs and sees slice a only, nothing of slices b and c"
expect_rc 0 "bwrap with a package directory of the slice as the whole root" \
	timeout 60 bwrap --ro-bind "$MNT/.slices/a/busybox-static/latest" / --unshare-all /bin/busybox ls /
out_has "the root is the package's tree" "bin"
[ "$(slice_status a opens)" -ge 1 ] || fail "slice a counts no opens after running busybox"
[ "$(slice_status a bytes_read)" -gt 100000 ] || fail "slice a counts $(slice_status a bytes_read) bytes read after running busybox"
[ "$(slice_status a objects_fetched)" -ge 1 ] || fail "slice a counts no object fetched for busybox"
pass "slice a counts busybox's opens, bytes and its fetched object"

# the same in systemd-nspawn (an OS tree of its own, no machined or systemd on the host:
# --register=no --keep-unit; --console=pipe: the program's own stdout, not a pty's), and in a chroot with a plain read-only bind mount (README.md)
mkdir -p "$T/nsroot/usr" "$T/nsroot/etc" "$T/nsroot/stork"
: >"$T/nsroot/etc/os-release"
in_nspawn() {
	timeout 60 systemd-nspawn --quiet --register=no --keep-unit --console=pipe \
		--machine="storkfs-test-$$" -D "$T/nsroot" \
		--bind-ro="$MNT/.slices/a:/stork" "$BB" "$@"
}
in_chroot() {
	timeout 60 unshare --mount --propagation private sh -c \
		'mount --bind -o ro "$1" "$2/stork" && shift 2 && exec chroot "$@"' \
		sh "$MNT/.slices/a" "$T/nsroot" "$T/nsroot" "$BB" "$@"
}
for tool in in_nspawn in_chroot; do
	expect_rc 0 "$tool: busybox of slice a runs with slice a at /stork" "$tool" echo ok
	[ "$OUT" = ok ] || fail "$tool: busybox echo ok printed '$OUT'"
	expect_rc 0 "$tool: the container lists its slice" "$tool" ls /stork
	[ "$(printf '%s\n' "$OUT" | tr '\n' ' ')" = "busybox-static web-shop " ] || fail "$tool: the container lists '$OUT'"
	expect_rc 0 "$tool: the container reads a file of its slice" "$tool" cat /stork/web-shop/1.0/index.html
	[ "$OUT" = web ] || fail "$tool: the container read '$OUT'"
	for probe in /stork/.slices /stork/../.slices /stork/db /stork/../b "/stork/../.slices/b"; do
		expect_rc 1 "$tool: the container cannot reach $probe" "$tool" ls "$probe"
	done
	expect_rc 1 "$tool: the container cannot write into its slice" "$tool" touch /stork/web-shop/x
done
# (the chroot has no /proc: its mount namespace still holds the whole mount, README.md)
expect_rc 0 "in_nspawn: the container looks at its mount table" in_nspawn cat /proc/self/mountinfo
! printf '%s' "$OUT" | grep -q '\.slices/[bc]' || fail "in_nspawn: the container's mount table names another slice: $OUT"
# (where /run is no tmpfs, nspawn leaves its propagation directory behind)
rmdir "/run/systemd/nspawn/propagate/storkfs-test-$$" 2>/dev/null || true
! grep -qF " $T/nsroot/stork " /proc/mounts || fail "the chroot's bind mount leaked out of its mount namespace"
pass "in systemd-nspawn and in a chroot with a read-only bind mount, busybox from slice a runs and sees slice a only"

# slice c runs the same busybox: the object is in the node store already, fetched for a
before=$(nginx_requests '"GET /objects/')
c_fetched=$(slice_status c objects_fetched)
expect_rc 0 "busybox of slice c runs" timeout 60 "$MNT/.slices/c/busybox-static/latest/bin/busybox" echo ok
[ "$(nginx_requests '"GET /objects/')" -eq "$before" ] || fail "slice c fetched busybox again"
[ "$(slice_status c objects_fetched)" -eq "$c_fetched" ] ||
	fail "slice c counts $(slice_status c objects_fetched) objects fetched, want $c_fetched still (one node store)"
[ "$(slice_status c opens)" -ge 1 ] || fail "slice c counts no open"
pass "slices share the node store: slice c runs busybox without a transfer, and counts no fetch"

# --- isolation of the attributes -----------------------------------------------------------
names=$(python3 -c 'import os, sys; print(" ".join(sorted(os.listxattr(sys.argv[1]))))' "$MNT/.slices/a")
[ "$names" = user.storkfs.status ] || fail "slice a's root has the attributes '$names'"
keys=$(xattr "$MNT/.slices/a" user.storkfs.status | python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin))))')
[ "$keys" = "bytes_read objects_fetched opens packages refused slice versions" ] || fail "slice a's status has '$keys'"
! xattr "$MNT/.slices/a" user.storkfs.status | grep -qE '"(b|c)"|policy|mirror' || fail "slice a's status names something else"
for x in user.storkfs.mirrors user.storkfs.repository user.storkfs.metadata; do
	! xattr "$MNT/.slices/a" "$x" >/dev/null 2>&1 || fail "slice a's root answers $x"
done
# A file is one inode in every view (its pages are cached once): it answers the same
# attributes through a slice as at the top level, none of which names a slice.
f=$MNT/.slices/a/web-shop/1.0/index.html
names=$(python3 -c 'import os, sys; print(" ".join(sorted(os.listxattr(sys.argv[1]))))' "$f")
top=$(python3 -c 'import os, sys; print(" ".join(sorted(os.listxattr(sys.argv[1]))))' "$MNT/web-shop/1.0/index.html")
[ "$names" = "$top" ] || fail "a file of slice a has the attributes '$names', at the top level '$top'"
[ "$(stat -c %i "$f")" = "$(stat -c %i "$MNT/web-shop/1.0/index.html")" ] ||
	fail "a file of slice a is another inode than the same file at the top level"
for x in $names; do
	! xattr "$f" "$x" | grep -qE 'slices|policy' || fail "a file of slice a tells about slices in $x"
done
pass "a slice's root tells its own status only; a file is the top level's inode with the same attributes; nothing of the node's other slices"

expect_rc 0 "stork status shows each slice" "$STORK" status "$MNT"
out_has "stork status has one line per slice" "slice a: 2 packages" "slice b: 2 packages" "slice c: 3 packages" \
	"refused by its policy"
expect_rc 0 "stork status on a slice's root" "$STORK" status "$MNT/.slices/b"
out_has "stork status on a slice's root shows that slice" "slice b: 2 packages (2 versions), 1 opens, 4 B read"
! printf '%s' "$OUT" | grep -qE 'slice (a|c)|repository|mirror' || fail "stork status on slice b's root shows more: $OUT"
pass "stork status shows each slice's counters; on a slice's root, that slice's alone"

# --- SIGHUP: one slice edited, a typo, added and removed slices ------------------------------
before_a=$(words ls "$MNT/.slices/a")
before_c=$(words ls -R "$MNT/.slices/c")
sed -i 's/pin db < 2/pin db < 3/' "$T/slices/b.policy"
kill -HUP "$SFS_PID"
wait_for test -d "$MNT/.slices/b/db/2.0" || fail "slice b does not show db 2.0 after its policy accepts it and SIGHUP"
same_as_policy b
[ "$(words ls "$MNT/.slices/a")" = "$before_a" ] || fail "slice a changed when b's file did"
[ "$(words ls -R "$MNT/.slices/c")" = "$before_c" ] || fail "slice c changed when b's file did"
[ "$(slice_status b opens)" -eq 1 ] || fail "slice b's counters were reset by the edit"
pass "editing b's file and SIGHUP changes slice b only (db 2.0 appears), its counters stay"

printf 'key bob file %s.pub\ntrsut * role bob keys bob\n' "$T/bob.key" >"$T/slices/b.policy"
kill -HUP "$SFS_PID"
wait_for grep -q "b.policy:2" "$SYSLOG" || fail "no log line names b.policy:2: $(tail -5 "$SYSLOG")"
line=$(grep "b.policy:2" "$SYSLOG" | tail -n 1)
for want in "slice b:" "$T/slices/b.policy:2" "expected" "keeping the slice's previous view"; do
	grep -qF -- "$want" <<<"$line" || fail "the log line does not say '$want': $line"
done
[ "$(grep -c "b.policy:2" <<<"$line")" -eq 1 ] || fail "the log line repeats itself: $line"
[ "$(words ls "$MNT/.slices/b/db")" = "1.0 2.0 latest " ] || fail "slice b shows db '$(words ls "$MNT/.slices/b/db")' after a broken edit"
pass "a typo in b's file keeps slice b's previous view; the log names the file, line and problem"

cp "$T/slices/a.policy" "$T/slices/new-1.policy"
rm "$T/slices/c.policy"
kill -HUP "$SFS_PID"
wait_for test ! -e "$MNT/.slices/c" || fail "slice c is still there after its file was removed"
wait_for test -d "$MNT/.slices/new-1/web-shop" || fail "slice new-1 did not appear"
[ "$(words ls "$MNT/.slices")" = "a b new-1 " ] || fail "/.slices lists '$(words ls "$MNT/.slices")' want a b new-1"
same_as_policy new-1
[ "$(slice_status new-1 opens)" -eq 0 ] || fail "the new slice starts with opens"
grep -q "slice c: removed" "$SYSLOG" || fail "the log does not say slice c was removed"
pass "adding a slice file adds its subtree, removing one removes it (after SIGHUP)"

# --- the refresh test's core check through a slice -------------------------------------------
echo web2 >"$T/src/w/index.html"
"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" web-shop 2.0 "$T/src/w" --quiet
kill -HUP "$SFS_PID"
wait_for test -d "$MNT/.slices/a/web-shop/2.0" || fail "slice a does not show web-shop 2.0 after a refresh"
[ "$(readlink "$MNT/.slices/a/web-shop/latest")" = 2.0 ] || fail "slice a: web-shop/latest -> $(readlink "$MNT/.slices/a/web-shop/latest")"
[ "$(cat "$MNT/.slices/a/web-shop/latest/index.html")" = web2 ] || fail "slice a reads the old web-shop through latest"
[ "$(cat "$MNT/web-shop/latest/index.html")" = web2 ] || fail "the top level reads the old web-shop through latest"
[ ! -e "$MNT/.slices/b/web-shop" ] || fail "slice b shows web-shop (alice's) that its policy refuses"
pass "a version published after mounting shows in slice a after SIGHUP (mount_refresh's check, through a slice)"

unmount_storkfs "$MNT" "$SFS_PID"
fsck_clean "the store is clean" "$STORE"
done_ok
