#!/usr/bin/env bash
# A full disk is a state (store_full_fs covers a store made on a full file system; this is one
# that fills up while it serves). The store on a tmpfs of 30 MB (10 MB of it taken by a filler),
# no quota: a mount reads files of 2 MB until one no longer fits: that open fails with EIO and
# the daemon's log says once, in one line, ENOSPC, the store, its size, the quota and the pins;
# every file stored before still reads right, tmp/ is empty, stork fsck is clean; once the filler
# is removed the same open succeeds on the same mount. Then with the file system full again,
# stork extract and stork prefetch exit 3 saying ENOSPC and the store, and leave nothing: no
# DESTDIR, nothing in tmp/, fsck clean.
. "$(dirname "$0")/lib.sh"

need python3 nginx mount umount
need_fuse
need_root "mounts a tmpfs"

FS=$T/small
small_tmpfs "$FS" 30m

make_repo
mkdir -p "$T/src"
python3 - "$T/src" <<'EOF'
import random, sys
for i in range(20):
    with open(f"{sys.argv[1]}/f{i:02d}", "wb") as f:
        f.write(random.Random(500 + i).randbytes(2 * 1024 * 1024))
EOF
publish big 1.0 "$T/src" --quiet
start_nginx "$REPO"
S=$FS/store
M=$T/mnt

head -c $((10 * 1024 * 1024)) /dev/zero >"$FS/filler"
mount_storkfs "$M" "store=$S,timeout=30,refresh=3600" "$NGINX_URL"

read_ok=()
failed=''
for i in $(seq -w 0 19); do
	read_errno "$M/big/1.0/f$i"
	if [ "$GOT" = "ok $(sha256sum "$T/src/f$i" | cut -d' ' -f1)" ]; then
		read_ok+=("f$i")
		continue
	fi
	[ "$GOT" = "errno 5" ] || fail "f$i: the reader got '$GOT', want EIO (errno 5) or the right content"
	failed=f$i
	break
done
[ -n "$failed" ] || fail "20 files of 2 MB fitted into 20 MB: the test needs a full file system"
[ "${#read_ok[@]}" -ge 3 ] || fail "only ${#read_ok[@]} files were read before the store was full"
pass "${#read_ok[@]} files read, then the open of $failed failed with EIO"

line=$(grep -F "open big 1.0: $failed: " "$SFS_LOG" || true)
[ "$(printf '%s\n' "$line" | grep -c .)" -eq 1 ] || {
	cat "$SFS_LOG" >&2
	fail "the log has $(printf '%s\n' "$line" | grep -c .) lines about $failed, want one"
}
printf '%s\n' "$line" | matches -F "$S: No space left on device (ENOSPC) storing big 1.0: $failed (2097152 bytes): the store holds " ||
	fail "the log line does not say ENOSPC and the store: $line"
printf '%s\n' "$line" | matches -E "quota none, pinned 0 bytes in 0 objects" ||
	fail "the log line does not say the quota and the pins: $line"
if repeats "$SFS_LOG"; then
	fail "the daemon's log says an error twice: $(repeats "$SFS_LOG")"
fi
pass "one log line: ENOSPC, the store, its size, the quota, the pins"

for f in "${read_ok[@]}"; do
	cmp -s "$T/src/$f" "$M/big/1.0/$f" || fail "$f, stored before the disk was full, reads wrong bytes"
done
[ -z "$(ls -A "$S/tmp")" ] || fail "tmp/ holds $(ls -A "$S/tmp")"
store_hashes_ok "$S"
fsck_clean "files stored before still read; nothing half-written; stork fsck is clean" "$S"

rm -f "$FS/filler"
cmp -s "$T/src/$failed" "$M/big/1.0/$failed" || fail "$failed does not read right once space is back"
pass "once space is back, the same open of $failed succeeds on the same mount"
unmount_storkfs "$M"

# stork extract and stork prefetch on the full file system
head -c $((30 * 1024 * 1024)) /dev/zero >"$FS/filler" 2>/dev/null || true
extract --store "$S" "$NGINX_URL" big 1.0 "$FS/x"
[ "$RC" -eq 3 ] || {
	_show_run
	fail "stork extract on a full store exited $RC, want 3"
}
err_has "stork extract says ENOSPC and the store" "$S: No space left on device (ENOSPC) storing big 1.0: " "quota none"
[ ! -e "$FS/x" ] || fail "stork extract left $FS/x"
[ -z "$(ls -A "$FS" | grep -v -e '^store$' -e '^filler$' || true)" ] || fail "stork extract left $(ls -A "$FS")"
[ -z "$(ls -A "$S/tmp")" ] || fail "stork extract left tmp/$(ls -A "$S/tmp")"
pass "stork extract: exit 3, ENOSPC and the store said, nothing left"

run timeout 60 "$STORK" prefetch --root "$ROOT" --store "$S" "$NGINX_URL" big
[ "$RC" -eq 3 ] || {
	_show_run
	fail "stork prefetch on a full store exited $RC, want 3"
}
err_has "stork prefetch says ENOSPC and the store" "$S: No space left on device (ENOSPC) storing big 1.0: " "quota none"
[ "$(grep -c 'No space left' "$T/err")" -le 2 ] || {
	_show_run
	fail "stork prefetch says ENOSPC more than once (and in its final line)"
}
[ -z "$(ls -A "$S/tmp")" ] || fail "stork prefetch left tmp/$(ls -A "$S/tmp")"
pass "stork prefetch: exit 3, ENOSPC and the store said once, nothing left"

rm -f "$FS/filler"
fsck_clean "stork fsck is clean after the full disk" "$S"
done_ok
