#!/usr/bin/env bash
# Errors are told once and classified alike. A permission error (EACCES on the store, the
# repository, a key or the root file) exits 2 from every command (README.md, "Exit codes"), and
# no message repeats its own text ("Permission denied: ...: Permission denied", "No space left
# on device (No space left on device)"): `stork verify` of a repository with an unreadable
# object, `stork status` of an unreadable store, and a mount whose store is full.
. "$(dirname "$0")/lib.sh"

need setpriv nginx
need_fuse
need_root "takes another user's view and mounts a tmpfs"
chmod 755 "$T"
make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
chmod -R a+rX "$T/repo" "$T/keys" "$T/pub"
chmod 644 "$ROOT"
extract_ok "a store to deny" --store "$T/store" "$REPO" synth 1.0 "$T/dest"
# directories only: the store's linked variants are immutable (and readable already)
find "$T/store" -type d -exec chmod a+rx {} +

# as_nobody CMD...: run CMD as uid/gid 65534 (who may read only what others may).
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# repeats FILE: whether a line of FILE says an error text twice.
repeats() {
	grep -E '(Permission denied|No space left on device|Read-only file system|Input/output error).*(\1)' "$1"
}

# --- one exit code for one permission error ------------------------------------------------------
chmod 700 "$T/store"
expect_rc 2 "stork status of a store this user may not read" as_nobody "$STORK" status "$T/store"
err_has "...says so" "Permission denied"
expect_rc 2 "stork fsck of a store this user may not read" as_nobody "$STORK" fsck "$T/store"
expect_rc 2 "stork extract into a store this user may not read" \
	as_nobody "$STORK" extract --root "$ROOT" --store "$T/store" "$REPO" synth 1.0 "$T/d1"
expect_rc 2 "stork prefetch into a store this user may not read" \
	as_nobody "$STORK" prefetch --root "$ROOT" --store "$T/store" "$REPO" synth
chmod 755 "$T/store"
chmod 700 "$T/repo"
expect_rc 2 "stork verify of a repository this user may not read" \
	as_nobody "$STORK" verify --root "$ROOT" "$REPO"
expect_rc 2 "stork ls of a repository this user may not read" \
	as_nobody "$STORK" ls --root "$ROOT" "$REPO"
chmod 755 "$T/repo"
chmod 600 "$PUBKEY"
expect_rc 2 "stork publish with a key this user may not read" \
	as_nobody "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" synth 2.0 "$T/src"
chmod 644 "$PUBKEY"
chmod 600 "$ROOT"
expect_rc 2 "stork verify with a root file this user may not read" \
	as_nobody "$STORK" verify --root "$ROOT" "$REPO"
chmod 644 "$ROOT"
expect_rc 2 "stork keygen into a directory this user may not write" as_nobody "$STORK" keygen "$T/repo/k.key"

# --- no message says its error twice ---------------------------------------------------------------
obj=$(find "$REPO/objects" -type f | head -n 1)
chmod 600 "$obj"
expect_rc 1 "stork verify with an unreadable object finds a problem" as_nobody "$STORK" verify --root "$ROOT" "$REPO"
err_has "...naming the object" "${obj#"$REPO"/}" "Permission denied"
if repeats "$T/err"; then
	fail "stork verify says an error twice: $(repeats "$T/err")"
fi
pass "stork verify says 'Permission denied' once"
chmod 644 "$obj"

# A mount whose store is on a full file system: the read fails, the log says ENOSPC once.
mkdir -p "$T/small"
mount -t tmpfs -o size=512k tmpfs "$T/small"
# not a fuse mount: lib.sh's cleanup would leave it; unmount it first whatever happens
on_exit 'umount -l "$T/small" 2>/dev/null'
start_nginx "$REPO"
mount_storkfs "$T/mnt" "store=$T/small/store,timeout=20" "$NGINX_URL"
head -c 600000 /dev/zero >"$T/small/filler" 2>/dev/null || true
if cat "$T/mnt/synth/1.0/usr/share/doc/pkg/random.bin" >/dev/null 2>"$T/cat.err"; then
	fail "a 300 kB file was read into a full store"
fi
grep -qF "No space left on device" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "the log does not say the store is full"
}
if repeats "$SFS_LOG"; then
	fail "the daemon's log says an error twice: $(repeats "$SFS_LOG")"
fi
pass "the daemon's log says 'No space left on device' once a line"
unmount_storkfs "$T/mnt"
done_ok
