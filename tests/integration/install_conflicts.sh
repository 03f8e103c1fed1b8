#!/usr/bin/env bash
# stork install and a slice's installed root (fs/README.md "Installing"), over a real mount
# (storkfs without -f, as users run it) and nginx: packages that put different content at one
# path are refused at install time with exit 2, naming both packages and the path, and the
# slice's previous generation stays current and served; identical files and shared directories
# merge; a package whose Replaces names the other wins the path. stork list says what is
# installed and why (requested, or needed by whom); install keeps installed versions where they
# fit and upgrade NAME takes the newest; remove takes a package and what only it
# needed; Recommends are not followed; installing fetches no object; prefetch --slice stores
# the installed set.
. "$(dirname "$0")/lib.sh"

need python3 nginx dpkg-deb
need_fuse

# mkdeb NAME VERSION CONTENT [FIELD: VALUE]...: a .deb with usr/share/conf/shared.conf holding
# CONTENT and usr/share/doc/NAME/README, published.
mkdeb() {
	local name=$1 version=$2 content=$3 d=$T/deb/$1-$2
	shift 3
	mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$name" "$d/usr/share/conf"
	echo "$name" >"$d/usr/share/doc/$name/README"
	[ "$content" = - ] || printf '%s\n' "$content" >"$d/usr/share/conf/shared.conf"
	{
		printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: t <t@t>\n' \
			"$name" "$version"
		[ $# -eq 0 ] || printf '%s\n' "$@"
		printf 'Description: %s\n' "$name"
	} >"$d/DEBIAN/control"
	dpkg-deb --root-owner-group -b "$d" "$T/$name-$version.deb" >/dev/null
	publish "$name" "$version" "$T/$name-$version.deb" --quiet
}

make_repo
mkdeb alpha 1.0 "alpha's"
mkdeb beta 1.0 "beta's"
mkdeb same-as-alpha 1.0 "alpha's"
mkdeb successor 1.0 "successor's" 'Replaces: alpha (<< 2)'
mkdeb lib-x 1.0 - 'Recommends: extra-docs'
mkdeb extra-docs 1.0 -
mkdeb tool 1.0 - 'Depends: lib-x'
start_nginx "$REPO"

mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"
MNT=$T/mnt
STORE=$T/store
mkdir -p "$MNT"
_MOUNTS+=("$MNT")
timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,timeout=30,slices=$T/slices" "$NGINX_URL" \
	"$MNT" 2>"$T/mount.err" || {
	cat "$T/mount.err" >&2
	fail "storkfs did not mount $MNT"
}
SFS_PID=$(status_field "$MNT" pid)
SR=$MNT/.slices/s/root
[ ! -e "$SR" ] || fail "$R exists before anything is installed"
pass "storkfs mounts; nothing installed: no root"

I=("$STORK" install --slices "$T/slices" --slice s --root "$ROOT" --store "$STORE" "$NGINX_URL")
L=("$STORK" list --slice s --root "$ROOT" --store "$STORE")
objects_before=$(nginx_requests 'GET /objects/')
expect_rc 0 "stork install alpha tool" "${I[@]}" alpha tool
out_has "generation 1" "slice s: generation 1"
[ "$(nginx_requests 'GET /objects/')" -eq "$objects_before" ] ||
	fail "stork install fetched objects: $(grep 'GET /objects/' "$NGINX_DIR/access.log" | head -3)"
pass "installing fetched no object (access log: $(nginx_requests 'GET /targets/') manifest requests, 0 objects)"
[ "$(cat "$SR/usr/share/conf/shared.conf")" = "alpha's" ] || fail "root: shared.conf is not alpha's"
[ -f "$SR/usr/share/doc/tool/README" ] && [ -f "$SR/usr/share/doc/lib-x/README" ] ||
	fail "root lacks tool's or lib-x's files: $(find "$SR" | head -20)"
[ ! -e "$SR/usr/share/doc/extra-docs" ] || fail "lib-x's Recommends (extra-docs) was installed"
pass "the root is the union of alpha, tool and lib-x (lib-x's Recommends is not followed)"
expect_rc 0 "stork list" "${L[@]}"
out_has "list: why" "alpha 1.0 requested" "tool 1.0 requested" "lib-x 1.0 needed by tool"
[ "$(grep -vc '^#' "$T/out")" -eq 3 ] || fail "stork list: $OUT"
pass "stork list: versions and why (requested, needed by tool)"
cp "$T/slices/s.install" "$T/install.1"

# 1. A conflict: refused, exit 2, both names and the path; generation 1 unchanged.
expect_rc 2 "installing beta (another shared.conf)" "${I[@]}" beta
err_has "the message names both packages and the path" "usr/share/conf/shared.conf" \
	"alpha 1.0" "beta 1.0" "Replaces"
echo "# $(cat "$T/err")"
expect_rc 0 "stork list after the refusal" "${L[@]}"
out_has "still generation 1" "generation 1: 3 packages"
! grep -q '^beta ' "$T/out" || fail "beta is listed after its refusal"
cmp -s "$T/slices/s.install" "$T/install.1" || fail "the refused install changed s.install"
[ "$(cat "$SR/usr/share/conf/shared.conf")" = "alpha's" ] || fail "after the refusal the root changed"
[ ! -e "$SR/usr/share/doc/beta" ] || fail "beta's files are in the root after its refusal"
pass "a conflict is refused with exit 2 naming alpha 1.0, beta 1.0 and the path; generation 1 stays"

# 2. Identical content merges.
expect_rc 0 "installing same-as-alpha (an identical shared.conf)" "${I[@]}" same-as-alpha
out_has "generation 2" "generation 2"
[ "$(cat "$SR/usr/share/conf/shared.conf")" = "alpha's" ] && [ -f "$SR/usr/share/doc/same-as-alpha/README" ] ||
	fail "same-as-alpha did not merge into the root"
pass "identical files merge (generation 2)"

# 3. Replaces: the replacing package's file wins.
expect_rc 0 "installing successor (Replaces: alpha (<< 2))" "${I[@]}" successor
[ "$(cat "$SR/usr/share/conf/shared.conf")" = "successor's" ] ||
	fail "successor replaces alpha, but shared.conf is '$(cat "$SR/usr/share/conf/shared.conf")'"
pass "Replaces: successor's file wins over alpha's"

# 4. A newer lib-x: install keeps the installed version; upgrade of lib-x alone takes it.
mkdeb lib-x 2.0 - 'Recommends: extra-docs'
expect_rc 0 "installing extra-docs after lib-x 2.0 is published" "${I[@]}" extra-docs
expect_rc 0 "stork list" "${L[@]}"
out_has "lib-x stays at 1.0" "lib-x 1.0 needed by tool" "extra-docs 1.0 requested"
expect_rc 0 "stork upgrade lib-x" "$STORK" upgrade --slices "$T/slices" --slice s --root "$ROOT" \
	--store "$STORE" "$NGINX_URL" lib-x
out_has "lib-x goes to 2.0" "upgrade lib-x 1.0 -> 2.0"
pass "install keeps installed versions (lib-x 1.0 with 2.0 published); upgrade lib-x takes 2.0"

# 5. Two installs at once: both requests end up in the wanted list and the generation.
mkdeb one 1.0 -
mkdeb two 1.0 -
"${I[@]}" one >"$T/one.out" 2>&1 &
p1=$!
"${I[@]}" two >"$T/two.out" 2>&1 &
p2=$!
wait "$p1" || fail "the first of two concurrent installs failed: $(cat "$T/one.out")"
wait "$p2" || fail "the second of two concurrent installs failed: $(cat "$T/two.out")"
expect_rc 0 "stork list" "${L[@]}"
out_has "both installed" "one 1.0 requested" "two 1.0 requested"
grep -qx one "$T/slices/s.install" && grep -qx two "$T/slices/s.install" ||
	fail "s.install lost a request: $(cat "$T/slices/s.install")"
pass "two stork installs at once take turns (flock of s.policy): both packages installed and asked for"

# 6. remove: the package and what only it needed; a dependency cannot be removed alone.
expect_rc 2 "removing lib-x, which tool needs" "$STORK" remove --slices "$T/slices" --slice s \
	--root "$ROOT" --store "$STORE" "$NGINX_URL" lib-x
err_has "the message says who needs it" "lib-x" "needed by tool"
expect_rc 0 "removing tool" "$STORK" remove --slices "$T/slices" --slice s --root "$ROOT" \
	--store "$STORE" "$NGINX_URL" tool
out_has "tool and lib-x go" "remove tool 1.0" "remove lib-x 2.0"
[ ! -e "$SR/usr/share/doc/tool" ] && [ ! -e "$SR/usr/share/doc/lib-x" ] ||
	fail "tool's or lib-x's files are still in the root"
pass "remove takes tool and lib-x (which only tool needed); lib-x alone is refused"

# 7. prefetch --slice: every object of the installed versions, then reading the root fetches
# nothing.
expect_rc 0 "stork prefetch --slice s" "$STORK" prefetch --root "$ROOT" --store "$STORE" \
	--slice s "$NGINX_URL"
out_has "prefetch names the installed versions" "prefetched"
before=$(nginx_requests 'GET /objects/')
find "$SR" -type f -exec cat {} + >/dev/null
[ "$(nginx_requests 'GET /objects/')" -eq "$before" ] ||
	fail "reading the root after prefetch --slice fetched $(($(nginx_requests 'GET /objects/') - before)) objects"
pass "prefetch --slice s stores the installed set: reading the whole root fetches nothing"

unmount_storkfs "$MNT" "$SFS_PID"
fsck_clean "the store is clean" "$STORE"
done_ok
