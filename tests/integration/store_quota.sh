#!/usr/bin/env bash
# A mount with store_max=20M reads a package of 100 MB (50 files of 2 MB) file by file: every
# file reads right; after each file the store's objects hold at most the quota plus one object;
# the objects that went are always the least recently used ones (a file read again moves to
# the back of the order: checked after every read); the objects of the version prefetch= names
# (4 MB) and those of the version slice s has installed (`stork install`: its pin set) stay all
# along. stork status shows the quota, the pins and the evictions; the quota is
# kept in the store (a second mount without store_max= evicts too; stork prefetch --store-max
# sets it), and fsck is clean.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo
mkdir -p "$T/src/big" "$T/src/keep" "$T/src/inst"
python3 - "$T/src" <<'EOF'
import random, sys
for i in range(4):
    with open(f"{sys.argv[1]}/inst/i{i}", "wb") as f:
        f.write(random.Random(3000 + i).randbytes(256 * 1024))
for i in range(50):
    with open(f"{sys.argv[1]}/big/f{i:02d}", "wb") as f:
        f.write(random.Random(1000 + i).randbytes(2 * 1024 * 1024))
for i in range(4):
    with open(f"{sys.argv[1]}/keep/k{i}", "wb") as f:
        f.write(random.Random(2000 + i).randbytes(1024 * 1024))
EOF
publish big 1.0 "$T/src/big" --quiet
publish keep 1.0 "$T/src/keep" --quiet
publish inst 1.0 "$T/src/inst" --quiet
start_nginx "$REPO"
S=$T/store
M=$T/mnt
QUOTA=$((20 * 1024 * 1024))
OBJ=$((2 * 1024 * 1024))

declare -A HEX
for f in "$T"/src/big/* "$T"/src/keep/* "$T"/src/inst/*; do
	HEX[$(basename "$f")]=$(sha256sum "$f" | cut -d' ' -f1)
done
stored() { [ -e "$S/objects/${HEX[$1]:0:2}/${HEX[$1]}" ]; }
# the bytes of every object file in the store (there are no mode variants here)
store_bytes() { find "$S/objects" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

# slice s has inst 1.0 installed: its objects are the slice's pin set
mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"
expect_rc 0 "stork install --slice s inst" "$STORK" install --slices "$T/slices" --slice s --root "$ROOT" \
	--store "$S" "$NGINX_URL" inst
mount_storkfs "$M" "store=$S,store_max=20M,prefetch=keep,slices=$T/slices,timeout=30,refresh=3600" "$NGINX_URL"
wait_log '^storkfs: prefetch: 1 version' 30 "no prefetch summary in the log within 30 s"
for k in k0 k1 k2 k3; do stored "$k" || fail "prefetch=keep did not store $k"; done
pass "prefetch=keep stored the 4 MB of keep 1.0"
for i in i0 i1 i2 i3; do
	cmp -s "$T/src/inst/$i" "$M/.slices/s/root/$i" || fail "slice s's root: $i reads wrong bytes"
	stored "$i" || fail "reading $i through slice s's root did not store it"
done
pass "slice s's installed inst 1.0 read through its root (now stored)"

# ORDER: the big files by their last read, least recent first.
ORDER=()
touch_order() {
	local f=$1 o=()
	for x in "${ORDER[@]}"; do [ "$x" = "$f" ] || o+=("$x"); done
	ORDER=("${o[@]}" "$f")
}
# After each read: within the quota plus one object; what is stored of ORDER is a suffix of it
# (nothing read later was evicted before something read earlier); keep's objects all there.
MAX=0
check_store() {
	local b seen=0
	b=$(store_bytes)
	[ "$b" -gt "$MAX" ] && MAX=$b
	[ "$b" -le $((QUOTA + OBJ)) ] || fail "after $1 the store holds $b bytes: more than the quota $QUOTA plus one object"
	for x in "${ORDER[@]}"; do
		if stored "$x"; then
			seen=1
		elif [ "$seen" = 1 ]; then
			fail "after $1: $x is gone while a file read before it is stored: not the least recently used order (order: ${ORDER[*]})"
		fi
	done
	for k in k0 k1 k2 k3; do stored "$k" || fail "after $1: pinned $k (prefetch=keep) was evicted"; done
	for k in i0 i1 i2 i3; do stored "$k" || fail "after $1: $k, installed in slice s (pinned), was evicted"; done
}

read_file() {
	cmp -s "$T/src/big/$1" "$M/big/1.0/$1" || fail "big/1.0/$1 reads wrong bytes"
	touch_order "$1"
	check_store "$1"
}

# f00..f04, then f00 again: f01 is now the least recently used, f00 among the newest
for i in 00 01 02 03 04 00; do read_file "f$i"; done
# on to the end: evictions start around f07
for i in $(seq -w 5 49); do
	read_file "f$i"
	if [ "$i" = 09 ]; then
		! stored f01 || fail "f01, the least recently used, is still stored after f09"
		stored f00 || fail "f00, read again after f04, was evicted before f02..f04"
		pass "f01 went before f00, which was read again"
	fi
done
pass "50 files of 2 MB read right; the store held at most $MAX bytes (quota $QUOTA + one object of $OBJ); the least recently used went first every time; keep 1.0 (prefetch=) and inst 1.0 (installed in slice s) stayed"

# every file once more, in another order: still right
for i in 49 10 30 00; do read_file "f$i"; done
pass "files evicted earlier read right again (fetched again)"

run "$STORK" status "$S"
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork status $S"
}
out_has "stork status shows the quota" "quota      20.0 MiB ($QUOTA bytes"
grep -E '^  pinned     8 objects \(5\.0 MiB, 5242880 bytes; 2 pin sets\)' "$T/out" >/dev/null || {
	_show_run
	fail "stork status does not show keep's 4 and inst's 4 objects pinned in 2 pin sets"
}
ev=$(sed -n 's/^  evictions  \([0-9]*\) .*/\1/p' "$T/out")
[ -n "$ev" ] && [ "$ev" -ge 30 ] || {
	_show_run
	fail "stork status shows $ev evictions, want at least 30"
}
pass "stork status: quota, 8 pinned objects in 2 pin sets, $ev evictions"
unmount_storkfs "$M"

# The quota is the store's: a mount without store_max= keeps to it too.
mount_storkfs "$M" "store=$S,timeout=30,refresh=3600" "$NGINX_URL"
ORDER=()
for i in $(seq -w 11 29); do read_file "f$i"; done
unmount_storkfs "$M"
pass "a second mount without store_max= keeps the store's quota (at most $MAX bytes)"

# --store-max on a command sets it too
run "$STORK" prefetch --root "$ROOT" --store "$S" --store-max 30M "$NGINX_URL" keep
[ "$RC" -eq 0 ] || {
	_show_run
	fail "stork prefetch --store-max 30M"
}
run "$STORK" status "$S"
out_has "stork prefetch --store-max 30M set the store's quota" "quota      30.0 MiB (31457280 bytes"
expect_rc 2 "a bad --store-max is a usage error" "$STORK" prefetch --root "$ROOT" --store "$S" --store-max 20X "$NGINX_URL" keep
err_has "...naming the option" "--store-max 20X: expected a size in bytes"

fsck_clean "stork fsck is clean after the evictions" "$S"
done_ok
