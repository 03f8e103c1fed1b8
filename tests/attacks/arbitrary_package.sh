#!/usr/bin/env bash
# Arbitrary package (TUF: "arbitrary software installation"). A hostile mirror serves the
# repository's genuine signed metadata with two files swapped for the attacker's:
#   - the object of p 1.0's file "a" holds other bytes: a valid zstd stream of the same
#     compressed and uncompressed length (so only the SHA-256 can tell);
#   - the manifest of q 1.0 (same name, same length, different bytes) points file "x" at an
#     object of the attacker's, which the mirror also serves (valid, named by its own hash).
# stork extract from that mirror fails naming the object or the manifest and "hash"; from
# [hostile, good] it succeeds with the genuine bytes and the log names the hostile mirror; a
# storkfs mount over the hostile mirror gives EIO for p's "a" only (p's other files and the
# untouched package r read their genuine bytes) and for q's files, never the attacker's
# bytes. The store never holds the attacker's object or manifest (stork fsck clean), and the
# trusted metadata is the same before and after.
. "$(dirname "$0")/lib_transport.sh"

need python3 nginx zstd
need_fuse
make_repo
mkdir -p "$T/p" "$T/q" "$T/r"
rnd 1 100000 >"$T/p/a"
rnd 2 50000 >"$T/p/b"
echo small >"$T/p/small"
rnd 3 100000 >"$T/q/x"
echo r >"$T/r/r"
publish p 1.0 "$T/p"
publish q 1.0 "$T/q"
publish r 1.0 "$T/r"
read -r o_a _ _ < <(manifest_hashes p 1.0 | grep ' a$')
read -r o_x _ _ < <(manifest_hashes q 1.0 | grep ' x$')
p_a=$(object_path "$o_a")
q_manifest=$(manifest_file q 1.0)
q_mpath=${q_manifest#"$REPO"/}

# the hostile repository: a copy with the two substitutions
rnd 9 100000 >"$T/evil-bytes"
o_evil=$(sha "$T/evil-bytes")
cp -a "$REPO" "$T/evil"
zstd -3 -q -c --no-check --no-content-size "$T/evil-bytes" >"$T/evil/$p_a"
mkdir -p "$T/evil/objects/${o_evil:0:2}"
cp "$T/evil/$p_a" "$T/evil/$(object_path "$o_evil")"
[ "$(stat -c %s "$T/evil/$p_a")" -eq "$(stat -c %s "$REPO/$p_a")" ] ||
	fail "test setup: the substitute object is not as long as the genuine one"
sed "s/$o_x/$o_evil/" "$q_manifest" >"$T/evil/$q_mpath"
[ "$(stat -c %s "$T/evil/$q_mpath")" -eq "$(stat -c %s "$q_manifest")" ] &&
	! cmp -s "$T/evil/$q_mpath" "$q_manifest" ||
	fail "test setup: the substitute manifest is not a same-length different file"
grep -qF "$o_evil" "$T/evil/$q_mpath" || fail "test setup: the substitute manifest does not name the attacker's object"

start_nginx "$REPO"
GOOD=$NGINX_URL
start_nginx "$T/evil"
EVIL=$NGINX_URL

# the node trusts the repository (r 1.0 from the good mirror)
extract_ok "the node extracts r 1.0 from the good mirror" --store "$T/store" "$GOOD" r 1.0 "$T/r0"
BEFORE=$(trusted_state "$T/store")
[ -n "$BEFORE" ] || fail "test setup: the store trusts nothing after an extract"
cp -a "$T/store" "$T/store-mount"

# no_evil DESC STORE: neither the attacker's object nor the substituted object is in STORE,
# and fsck finds it clean
no_evil() {
	[ ! -e "$2/$(object_path "$o_evil")" ] || fail "$1: the attacker's object is in the store"
	if [ -e "$2/$p_a" ]; then
		[ "$(sha "$2/$p_a")" = "$o_a" ] || fail "$1: the store holds other bytes under $p_a"
	fi
	if grep -rlF "$o_evil" "$2" >/dev/null 2>&1; then
		fail "$1: the store mentions the attacker's object (the substitute manifest was kept): $(grep -rlF "$o_evil" "$2")"
	fi
	pass "$1: no attacker's byte in the store"
	fsck_clean "$1: stork fsck finds the store clean" "$2"
	check "$1: every stored object holds what its name hashes" store_hashes_ok "$2"
}

# --- stork extract from the hostile mirror alone
expect_rc 1 "p 1.0 from the hostile mirror: refused" timeout 60 "$STORK" extract --root "$ROOT" \
	--store "$T/store" "$EVIL" p 1.0 "$T/p1"
tail -n 1 "$T/err" | grep -F "$p_a" | matches -i 'hash' || {
	_show_run
	fail "p 1.0: the error does not name the object $p_a and a hash mismatch"
}
pass "p 1.0: the error names the substituted object and the hash"
[ ! -e "$T/p1" ] || [ -z "$(find "$T/p1" -type f -print -quit)" ] || fail "p 1.0: files were extracted"
no_evil "p 1.0 from the hostile mirror" "$T/store"
assert_unchanged "p 1.0 from the hostile mirror: trusted state unchanged" "$T/store" "$BEFORE"

expect_rc 1 "q 1.0 from the hostile mirror: refused" timeout 60 "$STORK" extract --root "$ROOT" \
	--store "$T/store" "$EVIL" q 1.0 "$T/q1"
tail -n 1 "$T/err" | grep -F "$q_mpath" | matches -i 'hash' || {
	_show_run
	fail "q 1.0: the error does not name the manifest $q_mpath and a hash mismatch"
}
pass "q 1.0: the error names the substituted manifest and the hash"
[ ! -e "$T/q1" ] || [ -z "$(find "$T/q1" -type f -print -quit)" ] || fail "q 1.0: files were extracted"
[ "$(nginx_requests "GET /objects/${o_evil:0:2}/$o_evil ")" -eq 0 ] ||
	fail "q 1.0: the client fetched the object the substitute manifest names"
pass "q 1.0: the attacker's object was never even requested"
no_evil "q 1.0 from the hostile mirror" "$T/store"
assert_unchanged "q 1.0 from the hostile mirror: trusted state unchanged" "$T/store" "$BEFORE"

# --- [hostile, good]: the genuine bytes, the hostile mirror named in the log
extract_ok "p 1.0 from [hostile, good] succeeds" --store "$T/store" "$EVIL" "$GOOD" p 1.0 "$T/p-2"
check "p 1.0 from [hostile, good] is the genuine tree" compare_tree "$T/p" "$T/p-2"
grep -F "$EVIL" "$T/err" | grep -F "$p_a" | matches -i hash || {
	_show_run
	fail "p 1.0: no log line names the hostile mirror $EVIL, the object and the hash"
}
pass "p 1.0: the log names the hostile mirror, the object and the hash"
# A manifest whose hash does not match counts as the hostile mirror's failure: the good
# mirror's genuine manifest is taken.
extract --store "$T/store" "$EVIL" "$GOOD" q 1.0 "$T/q-2"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "q 1.0 from [hostile, good] did not fail over to the good mirror"
}
check "q 1.0 from [hostile, good] is the genuine tree" compare_tree "$T/q" "$T/q-2"
grep -F "$EVIL" "$T/err" | grep -F "$q_mpath" | matches -i hash || {
	_show_run
	fail "q 1.0: no log line names the hostile mirror, the manifest and the hash"
}
pass "q 1.0: the log names the hostile mirror, the manifest and the hash"
no_evil "after [hostile, good]" "$T/store"
assert_unchanged "after [hostile, good]: trusted state unchanged" "$T/store" "$BEFORE"

# --- a storkfs mount over the hostile mirror alone
MNT=$T/mnt
mount_storkfs "$MNT" "store=$T/store-mount,timeout=10" "$EVIL"
read_errno "$MNT/p/1.0/a"
got=$GOT
[ "$got" = "errno 5" ] || fail "mount: p/1.0/a (substituted object) gives '$got', want errno 5 (EIO)"
pass "mount: reading p/1.0/a fails with EIO (in ${ELAPSED}s)"
for f in b small; do
	read_errno "$MNT/p/1.0/$f"
	got=$GOT
	[ "$got" = "ok $(sha "$T/p/$f")" ] || fail "mount: p/1.0/$f gives '$got', want its genuine bytes"
done
read_errno "$MNT/r/1.0/r"
got=$GOT
[ "$got" = "ok $(sha "$T/r/r")" ] || fail "mount: r/1.0/r gives '$got', want its genuine bytes"
pass "mount: p's other files and r read their genuine bytes"
read_errno "$MNT/q/1.0/x"
got=$GOT
case $got in
"errno "*) ;;
*) fail "mount: q/1.0/x (substituted manifest) gives '$got', want an error" ;;
esac
pass "mount: q/1.0/x (substituted manifest) fails ($got)"
[ "$(xattr "$MNT/p/1.0/a" user.storkfs.cached)" = 0 ] || fail "mount: p/1.0/a is cached"
grep -F "$p_a" "$SFS_LOG" | matches -i hash || {
	cat "$SFS_LOG" >&2
	fail "mount: the log does not name the object $p_a and the hash"
}
pass "mount: the log names the substituted object and the hash"
grep -F "$q_mpath" "$SFS_LOG" | matches -i hash || {
	cat "$SFS_LOG" >&2
	fail "mount: the log does not name the manifest $q_mpath and the hash"
}
pass "mount: the log names the substituted manifest and the hash"
unmount_storkfs "$MNT"
no_evil "after the mount" "$T/store-mount"
assert_unchanged "after the mount: trusted state unchanged" "$T/store-mount" "$BEFORE"
done_ok
