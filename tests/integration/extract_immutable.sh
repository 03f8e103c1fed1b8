#!/usr/bin/env bash
# Issue 11, item 4: trees extracted from one store share immutable variants. Appending as root
# to a linked file fails (EPERM) and the other tree is unchanged; a 0666 file is copied, not
# linked; on a file system without the immutable attribute (ramfs) every file is copied;
# stork fsck lists the trees still linked to a variant whose content changed.
. "$(dirname "$0")/lib.sh"

need nginx chattr
UMOUNTS=()
on_exit 'for m in "${UMOUNTS[@]}"; do umount -l "$m"; done'
mkdir -p "$T/src/etc"
echo "shared config" >"$T/src/etc/conf"
echo "everyone writes" >"$T/src/etc/ww"
chmod 0666 "$T/src/etc/ww"
make_repo
publish imm 1.0 "$T/src"
start_nginx "$REPO"

# Where linking happens: the test's directory when chattr +i works there, else an ext4 image.
D=$T/fs
mkdir -p "$D"
touch "$D/probe"
if ! chattr +i "$D/probe" 2>/dev/null; then
	need mkfs.ext4
	truncate -s 64M "$T/ext4.img"
	mkfs.ext4 -q "$T/ext4.img" && mount -o loop "$T/ext4.img" "$D" || fail "cannot mount an ext4 image"
	UMOUNTS+=("$D")
else
	chattr -i "$D/probe"
fi
rm -f "$D/probe"

extract_ok "slice 1 extracts" --store "$D/store" "$NGINX_URL" imm 1.0 "$D/s1"
extract_ok "slice 2 extracts" --store "$D/store" "$NGINX_URL" imm 1.0 "$D/s2"
[ "$X_LINKED" -eq 1 ] && [ "$X_COPIED" -eq 1 ] || fail "want 1 linked, 1 copied; got $X_LINKED linked, $X_COPIED copied"
[ "$(stat -c %i "$D/s1/etc/conf")" = "$(stat -c %i "$D/s2/etc/conf")" ] || fail "etc/conf is not shared"
[ "$(stat -c %i "$D/s1/etc/ww")" != "$(stat -c %i "$D/s2/etc/ww")" ] || fail "the 0666 file is shared"
pass "etc/conf is one inode in both slices; the 0666 file is a copy in each"
if (echo evil >>"$D/s1/etc/conf") 2>"$T/append.err"; then
	fail "root appended to a linked file"
fi
grep -q "Operation not permitted" "$T/append.err" || fail "append failed otherwise: $(cat "$T/append.err")"
[ "$(cat "$D/s2/etc/conf")" = "shared config" ] || fail "slice 2 changed"
pass "appending as root to slice 1's linked file fails (EPERM); slice 2 is unchanged"
echo mine >>"$D/s1/etc/ww" && [ "$(cat "$D/s2/etc/ww")" = "everyone writes" ] || fail "the 0666 copy is not private"
pass "the 0666 file is writable and private to its slice"

# Someone with CAP_LINUX_IMMUTABLE changes the shared variant: fsck lists both trees.
chattr -i "$D/s1/etc/conf"
echo changed >"$D/s1/etc/conf"
run "$STORK" fsck "$D/store"
[ "$RC" -eq 1 ] && grep -qF "extracted tree $D/s1 " "$T/err" && grep -qF "extracted tree $D/s2 " "$T/err" || {
	_show_run
	fail "fsck does not list both trees linked to the changed variant"
}
pass "fsck lists both trees linked to the changed variant"
"$STORK" extract --remove --store "$D/store" "$D/s1" && "$STORK" extract --remove --store "$D/store" "$D/s2" ||
	fail "stork extract --remove"
[ ! -e "$D/s1" ] && [ ! -e "$D/s2" ] || fail "the trees are still there"
pass "stork extract --remove removes both trees"

# ramfs has no immutable attribute: everything is copied.
mkdir -p "$T/ram"
mount -t ramfs none "$T/ram" || fail "cannot mount ramfs"
UMOUNTS+=("$T/ram")
extract_ok "an extract on ramfs" --store "$T/ram/store" "$NGINX_URL" imm 1.0 "$T/ram/s1"
[ "$X_LINKED" -eq 0 ] && [ "$X_COPIED" -eq 2 ] || fail "on ramfs: $X_LINKED linked, $X_COPIED copied"
echo local >>"$T/ram/s1/etc/conf" || fail "the copy on ramfs is not writable"
pass "on ramfs (no immutable attribute) every file is copied"
done_ok
