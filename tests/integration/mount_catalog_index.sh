#!/usr/bin/env bash
# The top-level listing loads from the node store's catalog index (fs/README.md "Catalog
# index") and a damaged index is never followed. A mount run as users run it (storkfs without
# -f, its log on this test's own /dev/log in a private mount namespace) lists what the
# repository signs and keeps it as STOREDIR/catalogs/<key>; a second mount over the same
# verified metadata reads it from there (the status counts catalogs_indexed 1) and leaves it
# as it was. Then the index is damaged before each of several mounts: a flipped byte in a
# package name, one in a manifest hash, the file cut in half, emptied, replaced by another
# state's index, and forged (a package count past the file, the checksum made right again).
# Each mount lists the same packages and versions, reads a file, says in the log which file
# was damaged and how, counts catalogs_reindexed 1, and leaves the index built again byte for
# byte. A new publish is a new state: the next mount lists it (built, not read from the old
# index).
. "$(dirname "$0")/private_ns.sh"
. "$(dirname "$0")/lib.sh"

need python3 mount
need_fuse
private_syslog

# mount_daemon MNT [OPTIONS]: storkfs without -f; returns once mounted. Sets SFS_PID.
mount_daemon() {
	mkdir -p "$1"
	_MOUNTS+=("$1")
	timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,timeout=20${2:+,$2}" "$NGINX_URL" "$1" 2>"$T/mount.err" || {
		cat "$T/mount.err" >&2
		fail "storkfs did not mount $1"
	}
	SFS_PID=$(status_of "$1" pid)
}

# status_of MNT KEY: a field of the mount's status (counters.KEY for a counter).
status_of() {
	xattr "$1" user.storkfs.status | python3 -c 'import json, sys
s = json.load(sys.stdin)
k = sys.argv[1]
print(s[k] if k in s else s["counters"][k])' "$2"
}

# listed_ok WHAT: the mount lists the packages and versions published, and reads a file.
listed_ok() {
	local got
	got=$(cd "$MNT" && for p in *; do echo "$p: $(ls "$p" | tr '\n' ' ')"; done)
	[ "$got" = "$WANT" ] || fail "$1: the mount lists
$got
want
$WANT"
	[ "$(cat "$MNT/beta/1.0/hello")" = "hello beta" ] || fail "$1: beta/1.0/hello does not read as published"
}

# the catalog index: the biggest file in catalogs/ (the other is the mark of the versions kept)
index_file() {
	local f
	f=$(ls -S "$STORE/catalogs" | head -1)
	[ -n "$f" ] || fail "no file in $STORE/catalogs"
	echo "$STORE/catalogs/$f"
}

# patch_index FILE CASE: damage the catalog index FILE (its layout: store/README.md).
patch_index() {
	python3 - "$1" "$2" "$T/other.cat" <<'EOF'
import hashlib, struct, sys
path, case, other = sys.argv[1], sys.argv[2], sys.argv[3]
b = bytearray(open(path, "rb").read())
at = b.find(b"beta")
if case == "name":      # a package name, beta -> bgta
    b[at + 1] ^= 0x02
elif case == "hash":    # the last manifest hash (gamma 1.0's; then its length, plain, the trailer)
    b[len(b) - 32 - 1 - 8 - 1] ^= 0x80
elif case == "cut":
    b = b[:len(b) // 2]
elif case == "empty":
    b = bytearray()
elif case == "other":   # the index of another state under this one's name
    b = bytearray(open(other, "rb").read())
elif case == "forged":  # a package count past the file, the checksum right again
    struct.pack_into("<I", b, 64, 0x7ffffff0)
    b[-32:] = hashlib.sha256(b[:-32]).digest()
open(path, "wb").write(b)
EOF
}

make_repo
for p in alpha beta gamma; do
	mkdir -p "$T/src/$p"
	echo "hello $p" >"$T/src/$p/hello"
	publish "$p" 1.0 "$T/src/$p"
done
echo "alpha two" >"$T/src/alpha/two"
publish alpha 2.0 "$T/src/alpha"
WANT="alpha: 1.0 2.0 latest 
beta: 1.0 latest 
gamma: 1.0 latest "
start_nginx "$REPO"
STORE=$T/store
MNT=$T/mnt

# --- the first mount builds the index, the second reads it -------------------------------------
mount_daemon "$MNT"
listed_ok "first mount"
[ "$(status_of "$MNT" catalogs_indexed)" = 0 ] || fail "the first mount read its catalog from an index"
unmount_storkfs "$MNT" "$SFS_PID"
IDX=$(index_file)
cp "$IDX" "$T/good.cat"
matches -F alpha <"$IDX" || fail "the catalog index $IDX does not name alpha"
pass "the first mount lists the repository and keeps its catalog as ${IDX#"$STORE"/}"

mount_daemon "$MNT"
listed_ok "second mount"
[ "$(status_of "$MNT" catalogs_indexed)" = 1 ] || fail "the second mount counts $(status_of "$MNT" catalogs_indexed) catalogs read from the index, want 1"
[ "$(status_of "$MNT" catalogs_reindexed)" = 0 ] || fail "the second mount rebuilt a sound catalog index"
unmount_storkfs "$MNT" "$SFS_PID"
cmp -s "$IDX" "$T/good.cat" || fail "the second mount changed a sound catalog index"
pass "the second mount reads its catalog from the index (catalogs_indexed 1) and lists the same"

# another state's index, for the "other" case: a repository with one more package
mkdir -p "$T/src/delta"
echo "hello delta" >"$T/src/delta/hello"
cp -a "$REPO" "$T/repo.saved"
publish delta 1.0 "$T/src/delta"
mount_daemon "$MNT"
[ -d "$MNT/delta/1.0" ] || fail "the mount after a new publish does not list delta"
[ "$(status_of "$MNT" catalogs_indexed)" = 0 ] || fail "the mount after a new publish read the old state's catalog"
unmount_storkfs "$MNT" "$SFS_PID"
pass "a new publish is a new state: the next mount lists it (built, not read from the old index)"
OTHER=$(ls -t "$STORE"/catalogs/* | while read -r f; do [ "$f" != "$IDX" ] && [ "$(stat -c %s "$f")" -gt 200 ] && echo "$f" && break; done)
[ -n "$OTHER" ] || fail "no catalog index for the state with delta"
cp "$OTHER" "$T/other.cat"
# back to the first state: the node's trusted state is newer, so a new store follows it
rm -rf "$REPO"
cp -a "$T/repo.saved" "$REPO"
rm -rf "$STORE"
mount_daemon "$MNT"
listed_ok "a new store over the first state"
unmount_storkfs "$MNT" "$SFS_PID"
cmp -s "$IDX" "$T/good.cat" || fail "a new store over the same state wrote another catalog index"

# --- damaged indexes --------------------------------------------------------------------------
declare -A WHY=([name]="do not hash to its checksum" [hash]="do not hash to its checksum"
	[cut]="cut" [empty]="cut" [other]="made for another state"
	[forged]="not a catalog this daemon can read")
for c in name hash cut empty other forged; do
	cp "$T/good.cat" "$IDX"
	patch_index "$IDX" "$c"
	cmp -s "$IDX" "$T/good.cat" && fail "$c: patching left the index as it was"
	before=$(wc -l <"$SYSLOG")
	mount_daemon "$MNT"
	listed_ok "index damaged ($c)"
	[ "$(status_of "$MNT" catalogs_reindexed)" = 1 ] || fail "$c: the mount counts $(status_of "$MNT" catalogs_reindexed) catalog indexes built again, want 1"
	[ "$(status_of "$MNT" catalogs_indexed)" = 0 ] || fail "$c: the mount counts a catalog read from the damaged index"
	line=$(tail -n +"$((before + 1))" "$SYSLOG" | grep -F "catalog index: $IDX: " || true)
	[ -n "$line" ] || {
		tail -n +"$((before + 1))" "$SYSLOG" >&2
		fail "$c: no log line names the damaged catalog index $IDX"
	}
	matches -F "${WHY[$c]}" <<<"$line" || fail "$c: the log line does not say '${WHY[$c]}': $line"
	echo "# $c: $line"
	unmount_storkfs "$MNT" "$SFS_PID"
	cmp -s "$IDX" "$T/good.cat" || fail "$c: the catalog index was not built again as it was"
	pass "catalog index damaged ($c): refused, said in the log, built again; the mount lists the repository"
done

# --- policies: each slice's catalog is indexed under its policy's digest ----------------------
# slices_ok WHAT ALL NOBETA: what the two slices list (packages, one line each)
slices_ok() {
	local a b
	a=$(ls "$MNT/.slices/all" | tr '\n' ' ')
	b=$(ls "$MNT/.slices/nobeta" | tr '\n' ' ')
	[ "$a" = "$2" ] || fail "$1: slice all lists '$a', want '$2'"
	[ "$b" = "$3" ] || fail "$1: slice nobeta lists '$b', want '$3'"
}
mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/all.policy"
printf 'refuse beta\ntrust * delegated\n' >"$T/slices/nobeta.policy"
mount_daemon "$MNT" "slices=$T/slices"
slices_ok "first mount with slices" "alpha beta gamma " "alpha gamma "
[ "$(status_of "$MNT" catalogs_indexed)" = 1 ] || fail "the first mount with slices counts $(status_of "$MNT" catalogs_indexed) catalogs from the index, want 1 (the top level)"
unmount_storkfs "$MNT" "$SFS_PID"
mount_daemon "$MNT" "slices=$T/slices"
slices_ok "second mount with slices" "alpha beta gamma " "alpha gamma "
[ "$(status_of "$MNT" catalogs_indexed)" = 3 ] || fail "the second mount with slices counts $(status_of "$MNT" catalogs_indexed) catalogs from the index, want 3 (the top level and two slices)"
pass "each slice's catalog is indexed: the second mount reads all three"
printf 'refuse gamma\ntrust * delegated\n' >"$T/slices/nobeta.policy"
last=$(status_of "$MNT" last_refresh_try)
sleep 1.1
kill -HUP "$SFS_PID"
for _ in $(seq 300); do
	[ "$(status_of "$MNT" last_refresh_try)" != "$last" ] && [ "$(ls "$MNT/.slices/nobeta" | tr '\n' ' ')" = "alpha beta " ] && break
	sleep 0.1
done
slices_ok "after an edit of the policy and SIGHUP" "alpha beta gamma " "alpha beta "
unmount_storkfs "$MNT" "$SFS_PID"
mount_daemon "$MNT" "slices=$T/slices"
slices_ok "a mount after the edit" "alpha beta gamma " "alpha beta "
unmount_storkfs "$MNT" "$SFS_PID"
pass "an edited policy is another key: the slice lists what the new policy accepts, at once and after a remount"

# the mount's own policy (-o policy=) the same way
printf 'refuse alpha\ntrust * delegated\n' >"$T/own.policy"
mount_daemon "$MNT" "policy=$T/own.policy"
[ "$(ls "$MNT" | tr '\n' ' ')" = "beta gamma " ] || fail "with -o policy= refusing alpha the mount lists '$(ls "$MNT" | tr '\n' ' ')'"
unmount_storkfs "$MNT" "$SFS_PID"
mount_daemon "$MNT" "policy=$T/own.policy"
[ "$(ls "$MNT" | tr '\n' ' ')" = "beta gamma " ] || fail "the second mount with -o policy= lists '$(ls "$MNT" | tr '\n' ' ')'"
[ "$(status_of "$MNT" catalogs_indexed)" = 1 ] || fail "the second mount with -o policy= read no catalog from the index"
unmount_storkfs "$MNT" "$SFS_PID"
printf 'refuse gamma\ntrust * delegated\n' >"$T/own.policy"
mount_daemon "$MNT" "policy=$T/own.policy"
[ "$(ls "$MNT" | tr '\n' ' ')" = "alpha beta " ] || fail "after an edit of -o policy= the mount lists '$(ls "$MNT" | tr '\n' ' ')'"
unmount_storkfs "$MNT" "$SFS_PID"
pass "-o policy=: indexed under the policy's digest; an edited policy lists what it accepts"
done_ok
