#!/usr/bin/env bash
# storkfs's allow_setuid and allow_other: -o allow_setuid without -o suid says that the kernel
# ignores the kept bits on a nosuid mount (and with suid it says nothing and the mount is not
# nosuid); a mount by root is readable by every user unless -o noallow_other keeps it to root.
. "$(dirname "$0")/lib.sh"

need nginx setpriv
need_fuse
need_root "mounts as root (allow_other, suid)"
chmod 755 "$T" # other users reach the mount points
make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
start_nginx "$REPO"
TOOL=synth/1.0/usr/bin/tool-setuid

# as_nobody CMD...: run CMD as uid/gid 65534.
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

mount_storkfs "$T/m1" "store=$T/store,allow_setuid" "$NGINX_URL"
grep -qF "allow_setuid" "$SFS_LOG" && grep -qF "add -o suid" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "-o allow_setuid without suid: storkfs does not say that suid is needed too"
}
pass "-o allow_setuid without -o suid says that suid is needed too"
[ "$(stat -c %a "$T/m1/$TOOL")" = 4555 ] || fail "allow_setuid dropped the setuid bit: $(stat -c %a "$T/m1/$TOOL")"
grep -F " $T/m1 " /proc/mounts | grep -qF nosuid || fail "the mount without suid is not nosuid"
pass "the setuid bit is shown, on a nosuid mount"
unmount_storkfs "$T/m1"

mount_storkfs "$T/m2" "store=$T/store,allow_setuid,suid" "$NGINX_URL"
! grep -qF "suid" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "-o allow_setuid,suid still warns"
}
! grep -F " $T/m2 " /proc/mounts | grep -qF nosuid || fail "-o suid: the mount is still nosuid"
pass "-o allow_setuid,suid: no warning, and the mount honours setuid bits"
unmount_storkfs "$T/m2"

# Root's mount: every user reads it by default; noallow_other keeps it to root.
mount_storkfs "$T/m3" "store=$T/store" "$NGINX_URL"
check "another user lists root's mount (allow_other by default)" as_nobody ls "$T/m3/synth/1.0"
unmount_storkfs "$T/m3"
mount_storkfs "$T/m4" "store=$T/store,noallow_other" "$NGINX_URL"
check "root reads a noallow_other mount" cmp -s "$T/src/usr/bin/tool" "$T/m4/synth/1.0/usr/bin/tool"
if as_nobody ls "$T/m4/synth/1.0" >"$T/out" 2>"$T/err"; then
	fail "another user lists a noallow_other mount"
fi
grep -qF "Permission denied" "$T/err" || fail "another user's ls of a noallow_other mount: $(cat "$T/err")"
pass "another user cannot read a noallow_other mount (Permission denied)"
unmount_storkfs "$T/m4"
# libfuse's connection options (-o max_readahead=...) reach the kernel: the mount's readahead
mount_storkfs "$T/m6" "store=$T/store,max_readahead=65536" "$NGINX_URL"
ra=$(cat "/sys/class/bdi/$(mountpoint -d "$T/m6")/read_ahead_kb")
[ "$ra" = 64 ] || fail "-o max_readahead=65536: the mount's read_ahead_kb is $ra, not 64"
check "a file reads right with max_readahead=65536" cmp -s "$T/src/usr/bin/tool" "$T/m6/synth/1.0/usr/bin/tool"
pass "-o max_readahead=65536 sets the mount's readahead to 64 KiB"
unmount_storkfs "$T/m6"
mkdir -p "$T/m5"
expect_rc 1 "allow_other and noallow_other together are refused" \
	"$STORKFS" -f -o "root=$ROOT,store=$T/store,allow_other,noallow_other" "$NGINX_URL" "$T/m5"
err_has "the refusal names both options" "allow_other" "noallow_other"
done_ok
