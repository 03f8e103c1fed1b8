#!/usr/bin/env bash
# A read-only store (a read-only bind mount of a filled one) can be inspected and served from:
# stork fsck checks it (clean, exit 0) and stork fsck --repair says it cannot repair it;
# stork status STORE shows it; storkfs mounts it, logs that the store is read-only, serves the
# files the store holds (the same bytes as the source, with no object request) and answers
# EROFS for a file it does not hold, and keeps running; prefetch= is ignored (and said so).
# Before, all of them failed: LMDB could not open its files for writing.
. "$(dirname "$0")/lib.sh"

need python3 nginx mount umount
need_fuse
need_root "makes a bind mount"

make_repo
synth_tree "$T/a" 1
synth_tree "$T/b" 2
publish held 1.0 "$T/a" --quiet
publish other 1.0 "$T/b" --quiet
start_nginx "$REPO"
S=$T/store
RO=$T/ro
MNT=$T/mnt

extract_ok "an extract of held 1.0 fills the store" --store "$S" "$NGINX_URL" held 1.0 "$T/x"
nobj=$(find "$S/objects" -type f -name '????????????????????????????????????????????????????????????????' | wc -l)

mkdir -p "$RO"
mount --bind "$S" "$RO" || fail "mount --bind $S $RO failed"
readonly_cleanup() {
	local rc=$?
	set +e
	for d in "${_MOUNTS[@]}"; do
		grep -qF " $d fuse" /proc/mounts && fusermount3 -u -z "$d"
	done
	umount "$RO" || umount -l "$RO"
	(exit "$rc")
	_cleanup
}
trap readonly_cleanup EXIT
mount -o remount,ro,bind "$RO" || fail "mount -o remount,ro,bind $RO failed"
if touch "$RO/objects/probe" 2>/dev/null; then
	fail "test setup: $RO is writable"
fi
pass "the store is mounted read-only at $RO"

fsck_clean "stork fsck checks a read-only store" "$RO"
out_has "stork fsck checked every object of the read-only store" "$nobj good"
expect_rc 3 "stork fsck --repair refuses a read-only store" "$STORK" fsck --repair "$RO"
err_has "stork fsck --repair says why" "$RO: read-only store: it can be checked, not repaired"
expect_rc 0 "stork status shows a read-only store" "$STORK" status "$RO"
out_has "stork status counts its objects" "objects    $nobj"

before=$(nginx_requests '"GET /objects/')
mount_storkfs "$MNT" "store=$RO,timeout=10,prefetch=other" "$NGINX_URL"
grep -qF "$RO: read-only store: serving the objects it holds" "$SFS_LOG" ||
	fail "the mount does not say the store is read-only: $(cat "$SFS_LOG")"
pass "the mount logs that the store is read-only"
grep -qF "prefetch=: ignored: the store is read-only" "$SFS_LOG" ||
	fail "the mount does not say it ignores prefetch=: $(cat "$SFS_LOG")"
pass "the mount says it ignores prefetch= on a read-only store"
# held_ok: the mount shows held 1.0 as its source and every file reads back its bytes.
held_ok() {
	mount_list "$T/a" >"$T/want.list"
	tree_list "$MNT/held/1.0" >"$T/got.list"
	diff -u "$T/want.list" "$T/got.list" >&2 || return 1
	diff -r --no-dereference "$T/a" "$MNT/held/1.0" >&2
}
check "the files the store holds read back through the mount" held_ok
[ "$(nginx_requests '"GET /objects/')" -eq "$before" ] ||
	fail "the mount requested objects the store holds"
pass "with no object request"
f=$(cd "$T/b" && find . -type f -size +0 | sort | head -n 1)
if cat "$MNT/other/1.0/$f" >/dev/null 2>"$T/cat.err"; then
	fail "other/1.0/$f, which the store does not hold, was read"
fi
grep -qF "Read-only file system" "$T/cat.err" || fail "reading other/1.0/$f: $(cat "$T/cat.err"), want EROFS"
pass "a file the store does not hold gives EROFS"
kill -0 "$SFS_PID" 2>/dev/null || fail "storkfs died"
check "the held files still read back" held_ok
unmount_storkfs "$MNT"
fsck_clean "the store is unchanged" "$S"

done_ok
