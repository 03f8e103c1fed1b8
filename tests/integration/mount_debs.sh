#!/usr/bin/env bash
# storkfs over a real FUSE mount and a real nginx, holding the real Debian packages of
# fetch_debs (at least 20). Listing the whole mount (ls -lR, find -printf, stat of every
# entry) sends no object request; every package's tree shows the names, types, sizes, symlink
# targets and mtimes of `dpkg-deb -x`, with modes as the mount shows them (no write bits, no
# setuid/setgid); every file of every package reads back the bytes of `dpkg-deb -x`, each
# distinct object fetched once; Debian's hello and busybox-static run from the mount. Lazy: on
# a fresh store and a fresh mount, reading one file of a large package sends exactly one object
# request, for that file's object.
#
# mtimes: the manifest records each member's mtime from the .deb's data.tar. dpkg-deb -x keeps
# them for files and symlinks, but GNU tar creates symlinks last (after it has set directory
# times), so a directory holding a symlink shows the extraction time there: directory mtimes
# are compared with the data.tar headers instead.
. "$(dirname "$0")/lib.sh"

need python3 nginx dpkg-deb sha256sum
need_fuse

MNT=$T/mnt
_MOUNTS+=("$MNT") # unmounted at exit

# mount_debs_expected_mtimes DEB REF: "path<TAB>mtime" (whole seconds) of every entry of the
# extraction REF of DEB: from REF for files and symlinks, from DEB's data.tar headers for
# directories (see the header comment). Sorted.
mount_debs_expected_mtimes() {
	dpkg-deb --fsys-tarfile "$1" | python3 -c 'import os, sys, tarfile
ref = sys.argv[1]
dirs = {}
for m in tarfile.open(fileobj=sys.stdin.buffer, mode="r|"):
    name = m.name[2:] if m.name.startswith("./") else m.name
    name = name.rstrip("/")
    if m.isdir() and name not in ("", "."):
        dirs[name] = int(m.mtime)
out = []
for top, dnames, fnames in os.walk(ref):
    for n in dnames + fnames:
        full = os.path.join(top, n)
        rel = os.path.relpath(full, ref)
        st = os.lstat(full)
        if os.path.isdir(full) and not os.path.islink(full):
            if rel not in dirs:
                sys.exit("%s: directory %s has no data.tar header" % (sys.argv[2], rel))
            out.append((rel, dirs[rel]))
        else:
            out.append((rel, int(st.st_mtime)))
for rel, t in sorted(out, key=lambda x: x[0].encode()):
    print("%s\t%d" % (rel, t))' "$2" "$1"
}

# mount_debs_mtimes DIR: "path<TAB>mtime" (whole seconds) of every entry below DIR, sorted.
mount_debs_mtimes() {
	(cd "$1" && find . -mindepth 1 -printf '%P\t%T@\n') | sed 's/\.[0-9]*$//' | LC_ALL=C sort
}

# mount_debs_object_gets: the paths of the newest nginx's object requests, one a line.
mount_debs_object_gets() {
	grep -oE '"GET /objects/[^ ]*' "$NGINX_DIR/access.log" | sed 's/^"GET \///' || true
}

fetch_debs
make_repo
declare -A DEB_OF VER_OF
PKGS=()
for deb in "${DEBS[@]}"; do
	p=$(deb_field "$deb" Package)
	v=$(deb_field "$deb" Version)
	publish "$p" "$v" "$deb" --quiet
	PKGS+=("$p")
	DEB_OF[$p]=$deb
	VER_OF[$p]=$v
	deb_extract "$deb" "$T/ref/$p"
done
[ ${#PKGS[@]} -ge 20 ] || fail "only ${#PKGS[@]} packages published, want at least 20"
pass "published ${#PKGS[@]} real Debian packages"

start_nginx "$REPO"
STORE=$T/store
mount_storkfs "$MNT" "store=$STORE,timeout=60" "$NGINX_URL"
pass "storkfs mounts the repository"

# --- listing: metadata only -------------------------------------------------------------------
timeout 300 ls -lR "$MNT" >"$T/ls-lR" || fail "ls -lR $MNT failed"
timeout 300 find "$MNT" -printf '%p %y %m %s %T@ %l\n' >"$T/find.out" || fail "find -printf $MNT failed"
(cd "$MNT" && timeout 300 find . -print0 | xargs -0 stat -c '%n %F %a %s %Y' >"$T/stat.out") ||
	fail "stat of every entry of $MNT failed"
n=$(wc -l <"$T/stat.out")
[ "$n" -gt 5000 ] || fail "stat saw only $n entries in the mount"
got_pkgs=$(ls "$MNT" | tr '\n' ' ')
want_pkgs=$(printf '%s\n' "${PKGS[@]}" | LC_ALL=C sort | tr '\n' ' ')
[ "$got_pkgs" = "$want_pkgs" ] || fail "the root lists '$got_pkgs', want '$want_pkgs'"
pass "the root lists the ${#PKGS[@]} packages"
n=$(nginx_requests '"GET /objects/')
[ "$n" -eq 0 ] || fail "listing and stat fetched $n objects: $(grep '/objects/' "$NGINX_DIR/access.log" | head -3)"
pass "ls -lR, find -printf and stat of all $(wc -l <"$T/stat.out") entries sent no object request"

for p in "${PKGS[@]}"; do
	v=${VER_OF[$p]}
	[ "$(readlink "$MNT/$p/latest")" = "$v" ] || fail "$p/latest -> $(readlink "$MNT/$p/latest"), want $v"
	mount_list "$T/ref/$p" >"$T/want.list"
	tree_list "$MNT/$p/$v" >"$T/got.list"
	if ! diff -u "$T/want.list" "$T/got.list" >"$T/list.diff"; then
		head -40 "$T/list.diff" >&2
		fail "$p $v: the mount's names, types, modes, sizes or symlink targets differ from dpkg-deb -x"
	fi
done
pass "every package shows dpkg-deb -x's names, types, sizes, symlink targets and read-only modes"

for p in "${PKGS[@]}"; do
	v=${VER_OF[$p]}
	mount_debs_expected_mtimes "${DEB_OF[$p]}" "$T/ref/$p" >"$T/want.mtimes" ||
		fail "$p: cannot list the expected mtimes"
	mount_debs_mtimes "$MNT/$p/$v" >"$T/got.mtimes"
	if ! diff -u "$T/want.mtimes" "$T/got.mtimes" >"$T/mtimes.diff"; then
		head -40 "$T/mtimes.diff" >&2
		fail "$p $v: the mount's mtimes differ from the package's (dpkg-deb -x, data.tar for directories)"
	fi
done
pass "every entry shows the package's mtime (files and symlinks as dpkg-deb -x, directories as data.tar)"

[ -z "$(find "$MNT" ! -type l \( -perm /0222 -o -perm /6000 \) -print -quit)" ] ||
	fail "writable or set-id entries in the mount: $(find "$MNT" ! -type l \( -perm /0222 -o -perm /6000 \) | head -3)"
[ -z "$(find "$MNT" \( ! -uid 0 -o ! -gid 0 \) -print -quit)" ] || fail "entries not owned by root:root"
pass "nothing is writable or set-id, everything is owned by root"
n=$(nginx_requests '"GET /objects/')
[ "$n" -eq 0 ] || fail "comparing the trees fetched $n objects"

# --- reading --------------------------------------------------------------------------------
for p in "${PKGS[@]}"; do
	v=${VER_OF[$p]}
	if ! timeout 300 diff -r --no-dereference "$T/ref/$p" "$MNT/$p/$v" >"$T/diff" 2>&1; then
		head -20 "$T/diff" >&2
		fail "$p $v: file contents through the mount differ from dpkg-deb -x"
	fi
done
pass "every file of every package reads back dpkg-deb -x's bytes"
for p in "${PKGS[@]}"; do
	manifest_objects "$p" "${VER_OF[$p]}"
done | cut -d' ' -f1 | LC_ALL=C sort -u | while read -r h; do object_path "$h"; done >"$T/want.objects"
mount_debs_object_gets | LC_ALL=C sort >"$T/got.objects"
dups=$(uniq -d "$T/got.objects" | head -3)
[ -z "$dups" ] || fail "objects requested more than once: $dups"
if ! diff -u "$T/want.objects" "$T/got.objects" >"$T/objects.diff"; then
	head -20 "$T/objects.diff" >&2
	fail "the object requests are not exactly the distinct objects of the packages"
fi
pass "each of the $(wc -l <"$T/want.objects") distinct objects was requested once, and nothing else"

# --- running --------------------------------------------------------------------------------
expect_rc 0 "Debian's hello runs from the mount" timeout 30 "$MNT/hello/latest/usr/bin/hello"
[ "$OUT" = "Hello, world!" ] || fail "hello printed '$OUT'"
expect_rc 0 "busybox-static runs from the mount" timeout 30 "$MNT/busybox-static/latest/bin/busybox" echo ok
[ "$OUT" = ok ] || fail "busybox echo ok printed '$OUT'"
pass "hello prints 'Hello, world!' and busybox echo prints ok"

unmount_storkfs "$MNT"
fsck_clean "the store is clean after reading everything" "$STORE"

# --- lazy: a fresh store, a fresh mount, one file -------------------------------------------
start_nginx "$REPO" # a fresh access log
STORE2=$T/store2
mount_storkfs "$MNT" "store=$STORE2,timeout=60" "$NGINX_URL"

# lazy_one PKG PATH: read PATH of PKG's version through the fresh mount; the new object
# requests are exactly that file's objects, each once (one, or its chunks when it is stored by
# the piece: store/README.md "Chunks"). LAZY_N counts them.
LAZY_N=0
lazy_one() {
	local p=$1 path=$2 v=${VER_OF[$1]} before
	manifest_objects "$p" "$v" | awk -v p="$path" '{ x = $0; sub(/^[^ ]* [^ ]* /, "", x) } x == p { print $1 }' |
		while read -r h; do object_path "$h"; done | LC_ALL=C sort >"$T/lazy.want"
	[ -s "$T/lazy.want" ] || fail "$p: no manifest entry for $path"
	before=$(mount_debs_object_gets | wc -l)
	timeout 60 cat "$MNT/$p/$v/$path" >"$T/lazy.out" || fail "$p: reading $path through the mount failed"
	cmp -s "$T/lazy.out" "$T/ref/$p/$path" || fail "$p: $path read through the mount differs from dpkg-deb -x"
	mount_debs_object_gets | tail -n +$((before + 1)) | LC_ALL=C sort >"$T/lazy.gets"
	cmp -s "$T/lazy.gets" "$T/lazy.want" ||
		fail "$p: reading $path requested $(head -5 "$T/lazy.gets" | tr '\n' ' '), not its $(wc -l <"$T/lazy.want") object(s) $(head -5 "$T/lazy.want" | tr '\n' ' ')"
	LAZY_N=$((LAZY_N + $(wc -l <"$T/lazy.want")))
}

# a random module of perl-modules-5.36 (a large package), then python3.11-minimal's interpreter
manifest_hashes perl-modules-5.36 "${VER_OF[perl-modules-5.36]}" |
	awk '$2 > 0 { x = $0; sub(/^[^ ]* [^ ]* /, "", x); if (x ~ /\.pm$/) print $1, x }' >"$T/pms"
[ -s "$T/pms" ] || fail "perl-modules-5.36 has no .pm file"
rand "$(wc -l <"$T/pms")"
pm_hash=$(sed -n "$((R + 1))p" "$T/pms" | cut -d' ' -f1)
pm=$(sed -n "$((R + 1))p" "$T/pms" | cut -d' ' -f2-)
lazy_one perl-modules-5.36 "$pm"
pass "fresh store: reading $pm of perl-modules-5.36 requested its object and no other"
py=usr/bin/python3.11
[ -f "$T/ref/python3.11-minimal/$py" ] || fail "python3.11-minimal has no $py"
lazy_one python3.11-minimal "$py"
pass "fresh store: reading $py ($(stat -c %s "$T/ref/python3.11-minimal/$py") bytes) requested its $(wc -l <"$T/lazy.want") object(s) and no other"
n=$(mount_debs_object_gets | wc -l)
[ "$n" -eq "$LAZY_N" ] || fail "the fresh mount sent $n object requests in all, want $LAZY_N"
other=$(awk -v h="$pm_hash" '$1 != h { x = $0; sub(/^[^ ]* /, "", x); print x; exit }' "$T/pms")
[ "$(xattr "$MNT/perl-modules-5.36/latest/$other" user.storkfs.cached)" = 0 ] ||
	fail "perl-modules-5.36: $other is cached although only $pm was read"
pass "the fresh mount sent 2 object requests in all; an unread module ($other) is not cached"

unmount_storkfs "$MNT"
fsck_clean "the fresh store is clean" "$STORE2"
done_ok
