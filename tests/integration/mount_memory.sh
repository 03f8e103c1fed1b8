#!/usr/bin/env bash
# One copy in memory (issue 13, item 3). p 1.0 and p 2.0 share big (STORK_MEMORY_MB megabytes,
# default 32; the same bytes, mode and mtime) and differ in f; same is the same bytes in both
# versions with another mode in 2.0. A first mount (the daemon without -f, as users run it)
# fetches big into the store; its pages are then dropped (dd iflag=nocache). Then, once with
# FUSE passthrough (the default: fs/README.md "Passthrough"; the mount's status must say it is
# on) and once with -o nopassthrough, a mount reads p/1.0/big:
#   - passthrough: the store object is resident (the kernel reads it for the mount's file), the
#     mount's file shows the same pages (mincore through the mount is the object's), and
#     dropping the object's pages leaves no copy behind: /proc/meminfo Cached grows by less
#     than half the data over read + drop (other processes move it: the best of three rounds);
#   - nopassthrough: fincore of the store object shows (almost) nothing resident: the daemon
#     drops the store object's pages it hashed at open and spliced into the reply
#     (fs/README.md "Memory"); the mount's file is resident once; (store + mount) / data <= 1.1;
#   - either way p/2.0/big is the same inode as p/1.0/big (stat -c %i) and fincore shows it
#     resident without reading it: two versions cost memory once; it reads the same bytes;
#   - p/1.0/same and p/2.0/same (other mode) are two inodes; p/1.0/f and p/2.0/f too;
#   - find over the mount still lists every path once.
. "$(dirname "$0")/lib.sh"

need python3 nginx fincore dd
need_fuse

MB=${STORK_MEMORY_MB:-32}
make_repo p
mkdir -p "$T/src/1" "$T/src/2"
rnd 7 $((MB * 1000000)) >"$T/src/1/big"
echo one >"$T/src/1/f"
echo same >"$T/src/1/same"
chmod 644 "$T/src/1/same"
cp -p "$T/src/1/big" "$T/src/1/same" "$T/src/2/"
chmod 755 "$T/src/2/same"
echo two >"$T/src/2/f"
touch -d @1700000000 "$T/src/1/big" "$T/src/2/big"
# whole (--no-chunks): this measures the pages of one store object spliced into the mount's
# page cache; a file above 4 MiB would otherwise be stored by the piece (store/README.md
# "Chunks")
publish p 1.0 "$T/src/1" --quiet --no-chunks
publish p 2.0 "$T/src/2" --quiet --no-chunks
start_nginx "$REPO"
STORE=$T/store

# resident FILE: bytes of FILE in the page cache.
resident() {
	fincore --bytes --noheadings --output RES "$1" | tr -d ' '
}

mount_bg "$T/a"
cat "$T/a/p/1.0/big" >/dev/null
fusermount3 -u "$T/a"
HASH=$(sha256sum <"$T/src/1/big" | cut -d' ' -f1)
OBJ=$STORE/$(object_path "$HASH")
[ -f "$OBJ" ] || fail "big is not in the store after a read: $OBJ"
sync "$OBJ"
dd if="$OBJ" iflag=nocache count=0 status=none
pass "mount A fetched big into the store ($(resident "$OBJ") bytes of it resident after dd iflag=nocache)"

cached() { awk '/^Cached:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo; }

# --- with passthrough (the default) ----------------------------------------------------------
mount_bg "$T/b"
[ "$(status_field "$T/b" passthrough)" = True ] ||
	fail "passthrough is off on this mount (root, Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH): $(status_field "$T/b" passthrough)"
DATA=$(stat -c %s "$T/b/p/1.0/big")
# Another test on the machine may drop the page caches or fill them while this one measures:
# up to three rounds, the first that passes counts.
for round in 1 2 3; do
	c0=$(cached)
	cat "$T/b/p/1.0/big" >/dev/null
	store_res=$(resident "$OBJ")
	mnt_res=$(resident "$T/b/p/1.0/big")
	dd if="$OBJ" iflag=nocache count=0 status=none
	left=$(($(cached) - c0))
	[ "$store_res" -lt $((DATA * 9 / 10)) ] || [ "$left" -ge $((DATA / 2)) ] || break
done
echo "# passthrough: data $DATA, store object resident $store_res, mount file $mnt_res; Cached grew $left over read + drop"
[ "$store_res" -ge $((DATA * 9 / 10)) ] || fail "passthrough: only $store_res of $DATA bytes of the store object are resident after a read through the mount"
[ "$mnt_res" -ge $((DATA * 9 / 10)) ] && [ "$mnt_res" -le $((store_res + DATA / 20)) ] ||
	fail "passthrough: the mount's big shows $mnt_res bytes resident, the store object $store_res: not its pages"
[ "$left" -lt $((DATA / 2)) ] ||
	fail "passthrough: page cache grew by $left bytes over reading $DATA bytes and dropping the store object's pages (a second copy)"
pass "passthrough: reading big caches the store object's pages only (store $store_res, the mount's file the same pages, $left bytes left after dropping them)"
fusermount3 -u "$T/b"

# --- with -o nopassthrough: the daemon serves reads --------------------------------------------
mount_bg "$T/b" nopassthrough
[ "$(status_field "$T/b" passthrough)" = False ] || fail "-o nopassthrough: the status says passthrough is on"
for round in 1 2 3; do
	cat "$T/b/p/1.0/big" >/dev/null
	# the release that drops the readahead beyond the last read reaches the daemon after close
	store_res=$(resident "$OBJ")
	for _ in $(seq 50); do
		[ "$store_res" -le $((DATA / 100)) ] && break
		sleep 0.1
		store_res=$(resident "$OBJ")
	done
	mnt_res=$(resident "$T/b/p/1.0/big")
	[ "$mnt_res" -lt $((DATA * 9 / 10)) ] || break
done
echo "# nopassthrough: data $DATA, store object resident $store_res, mount file resident $mnt_res"
[ "$store_res" -le $((DATA / 100)) ] ||
	fail "after reading big through the mount, $store_res of its $DATA bytes are cached for the store object $OBJ too (double caching)"
[ "$mnt_res" -ge $((DATA * 9 / 10)) ] || fail "only $mnt_res of $DATA bytes of the mount's big are resident"
[ $(((store_res + mnt_res) * 10)) -le $((DATA * 11)) ] || fail "page cache $((store_res + mnt_res)) bytes for $DATA read (> 1.1x)"
pass "nopassthrough: reading big through the mount caches it once (store object $store_res bytes, mount $mnt_res, data $DATA)"

i1=$(stat -c %i "$T/b/p/1.0/big")
i2=$(stat -c %i "$T/b/p/2.0/big")
[ "$i1" = "$i2" ] || fail "p/1.0/big is inode $i1, p/2.0/big (same bytes, mode, mtime) inode $i2"
for round in 1 2 3; do
	res2=$(resident "$T/b/p/2.0/big")
	[ "$res2" -lt $((DATA * 9 / 10)) ] || break
	cat "$T/b/p/1.0/big" >/dev/null # dropped by someone else: read through the other name
done
[ "$res2" -ge $((DATA * 9 / 10)) ] || fail "p/2.0/big is inode $i2 but only $res2 of its bytes are resident"
cmp "$T/b/p/2.0/big" "$T/src/2/big" || fail "p/2.0/big reads other bytes"
pass "p/2.0/big is p/1.0/big's inode ($i1), resident without a read of its own, same bytes"

[ "$(stat -c %i "$T/b/p/1.0/same")" != "$(stat -c %i "$T/b/p/2.0/same")" ] ||
	fail "p/1.0/same (444) and p/2.0/same (555) are one inode"
[ "$(stat -c %a "$T/b/p/2.0/same")" = 555 ] && [ "$(stat -c %a "$T/b/p/1.0/same")" = 444 ] ||
	fail "same has modes $(stat -c %a "$T/b/p/1.0/same") and $(stat -c %a "$T/b/p/2.0/same")"
[ "$(stat -c %i "$T/b/p/1.0/f")" != "$(stat -c %i "$T/b/p/2.0/f")" ] || fail "p/1.0/f and p/2.0/f are one inode"
[ "$(cat "$T/b/p/1.0/f")$(cat "$T/b/p/2.0/f")" = onetwo ] || fail "f reads $(cat "$T/b/p/1.0/f") and $(cat "$T/b/p/2.0/f")"
pass "entries that differ in content or mode are different inodes"

find "$T/b/p" -type f | sed "s|$T/b/||" | sort >"$T/found"
printf '%s\n' p/1.0/big p/1.0/f p/1.0/same p/2.0/big p/2.0/f p/2.0/same >"$T/want"
diff "$T/want" "$T/found" >&2 || fail "find over the mount lists other files"
pass "find lists every path once"

fusermount3 -u "$T/b"
done_ok
