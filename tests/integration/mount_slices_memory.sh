#!/usr/bin/env bash
# Slices share memory (fs/README.md "Memory", "Slices"). p 1.0 and p 2.0 share four files of
# STORK_MEMORY_MB/4 megabytes each (default 64 MB in all; the issue's 256 MB takes longer to
# publish, the ratio is the point) and differ in one of 1 MB; busybox-static (Debian's) is the
# program. A first mount fetches everything into the store and is unmounted; the store
# objects' pages are dropped (dd iflag=nocache). Then, with the daemon run as users run it
# (without -f):
#   - one mount, no slice reading p 1.0: the page cache holds (store objects + the mount's
#     files, fincore) <= 1.1x the data;
#   - a fresh mount with 8 slices (-o slices=DIR): each slice reads p 1.0 and p 2.0 in full
#     and runs the same busybox. Each file is one inode in every slice and version; the pages
#     resident for the store objects and for every distinct inode reached (fincore, summed
#     once per inode) are <= 1.1x the distinct data, not 8x, and the shared files of the two
#     versions cost memory once. /proc/meminfo's Cached growth is printed (other processes
#     on the machine move it: fincore is what is checked).
. "$(dirname "$0")/lib.sh"

need python3 nginx fincore dd dpkg-deb
need_fuse

MB=${STORK_MEMORY_MB:-64}
PART=$((MB * 1000000 / 4))
fetch_debs
BUSYBOX=
for deb in "${DEBS[@]}"; do
	[ "$(deb_field "$deb" Package)" = busybox-static ] && BUSYBOX=$deb
done
[ -n "$BUSYBOX" ] || fail "no busybox-static .deb"
make_repo
mkdir -p "$T/src/1" "$T/src/2"
for i in 1 2 3 4; do
	rnd "$i" "$PART" >"$T/src/1/shared$i"
done
rnd 11 1000000 >"$T/src/1/changed"
cp -p "$T/src/1"/shared* "$T/src/2/"
rnd 12 1000000 >"$T/src/2/changed"
publish p 1.0 "$T/src/1" --quiet
publish p 2.0 "$T/src/2" --quiet
publish busybox-static 1.0 "$BUSYBOX" --quiet
start_nginx "$REPO"
STORE=$T/store
FILES="shared1 shared2 shared3 shared4 changed"
BB=busybox-static/1.0/bin/busybox

MOUNT_TIMEOUT=60
resident() {
	fincore --bytes --noheadings --output RES "$1" | tr -d ' '
}
cached() {
	awk '/^Cached:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo
}
ratio() {
	python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$1" "$2"
}
# store_resident: bytes of every store object in the page cache (after the daemon's release
# of the last reads reached it: up to 5 s).
store_resident() {
	local s
	for _ in $(seq 50); do
		s=$(find "$STORE/objects" -type f -print0 | xargs -0 fincore --bytes --noheadings --output RES |
			awk '{ s += $1 } END { print s + 0 }')
		[ -n "${PT:-}" ] || [ "$s" -le $((MB * 1000000 / 100)) ] && break
		sleep 0.1
	done
	echo "$s"
}
# mount_resident PATH...: "ALL OWN": bytes in the page cache of the distinct inodes among
# PATH..., each inode counted once (a path that is another name of an inode already counted
# adds nothing); OWN leaves out, with passthrough, the files the kernel reads from their store
# object (a file with an object of its whole content: one stored whole, 4 MiB or less
# (store/README.md "Chunks"), or one stored in chunks that the first mount read whole, whose
# whole object was made then: fs/README.md "Memory"), whose pages mincore through the mount
# shows are the object's (counted by store_resident).
mount_resident() {
	local p i r sum=0 own=0
	declare -A seen=()
	for p in "$@"; do
		i=$(stat -c %i "$p")
		[ -z "${seen[$i]:-}" ] || continue
		seen[$i]=1
		r=$(resident "$p")
		sum=$((sum + r))
		[ -n "${PT:-}" ] && [ -e "$STORE/$(object_path "$(xattr "$p" user.storkfs.hash)")" ] ||
			own=$((own + r))
	done
	echo "$sum $own"
}
drop_store() {
	sync
	find "$STORE/objects" -type f -exec dd if={} iflag=nocache count=0 status=none \;
}

mount_bg "$T/fetch"
for f in $FILES; do
	cat "$T/fetch/p/1.0/$f" "$T/fetch/p/2.0/$f" >/dev/null
done
"$T/fetch/$BB" true || fail "busybox does not run from the mount"
# with passthrough, the four shared files (16 MB, in chunks) read whole get their whole objects
# (fs/README.md "Memory"): made before the measured mounts (at most 30 s)
if [ "$(status_field "$T/fetch" passthrough)" = True ]; then
	for _ in $(seq 150); do
		[ "$(status_counter "$T/fetch" assembled)" -ge 4 ] && break
		sleep 0.2
	done
fi
fusermount3 -u "$T/fetch"
drop_store
pass "a first mount fetched p 1.0, p 2.0 and busybox into the store ($(store_resident) bytes of the store resident after dd iflag=nocache)"

# --- one mount, no slice ---------------------------------------------------------------------
DATA1=0
for f in $FILES; do
	DATA1=$((DATA1 + $(stat -c %s "$T/src/1/$f")))
done
mount_bg "$T/one"
# With FUSE passthrough (the default where the kernel has it: fs/README.md "Passthrough") the
# kernel reads each whole file's store object: its pages are the only copy, and mincore
# through the mount shows those same pages. Without it (and for files stored by the piece),
# the mount's files have pages of their own and the daemon drops the store objects' (fs/README.md
# "Memory").
PT=
[ "$(status_field "$T/one" passthrough)" = False ] || PT=1
# another test on the machine may drop the page caches while this one measures: up to three
# rounds, the last one counts
for round in 1 2 3; do
	for f in $FILES; do
		cat "$T/one/p/1.0/$f" >/dev/null
	done
	s=$(store_resident)
	read -r m own < <(mount_resident $(printf "$T/one/p/1.0/%s " $FILES))
	[ "$m" -lt $((DATA1 * 9 / 10)) ] || break
done
t=$((s + own))
echo "# one mount${PT:+ (passthrough)}: data $DATA1, store resident $s, mount resident $m (own $own): $(ratio "$t" "$DATA1")x"
[ "$m" -ge $((DATA1 * 9 / 10)) ] || fail "one mount: only $m of the $DATA1 bytes read are resident in the mount's files"
[ $((t * 10)) -le $((DATA1 * 11)) ] ||
	fail "one mount: page cache $t bytes (store $s, mount's own $own) for $DATA1 read: $(ratio "$t" "$DATA1")x > 1.1x"
pass "one mount${PT:+ (passthrough)} reading $DATA1 bytes caches them once: $t bytes (store $s, mount's own $own) / data = $(ratio "$t" "$DATA1")"
fusermount3 -u "$T/one"
drop_store

# --- 8 slices, both versions, the same program -----------------------------------------------
mkdir -p "$T/slices"
for i in $(seq 8); do
	echo 'trust * delegated' >"$T/slices/s$i.policy"
done
M=$T/m
mount_bg "$M" "slices=$T/slices"
paths=()
for i in $(seq 8); do
	for v in 1.0 2.0; do
		for f in $FILES; do
			paths+=("$M/.slices/s$i/p/$v/$f")
		done
	done
	paths+=("$M/.slices/s$i/$BB")
done
BBSIZE=$(stat -c %s "$M/$BB")
DATA=$((DATA1 + $(stat -c %s "$T/src/2/changed") + BBSIZE))
for round in 1 2 3; do
	c0=$(cached)
	for i in $(seq 8); do
		for v in 1.0 2.0; do
			for f in $FILES; do
				cat "$M/.slices/s$i/p/$v/$f" >/dev/null
			done
		done
		out=$("$M/.slices/s$i/$BB" echo "slice s$i") || fail "busybox does not run through slice s$i"
		[ "$out" = "slice s$i" ] || fail "busybox in slice s$i printed '$out'"
		# the whole program as a loader maps it (a run pages in only what it touches)
		cat "$M/.slices/s$i/$BB" >/dev/null
	done
	c1=$(cached)
	s=$(store_resident)
	read -r m own < <(mount_resident "${paths[@]}")
	[ "$m" -lt $((DATA * 9 / 10)) ] || break
done
t=$((s + own))
echo "# 8 slices${PT:+ (passthrough)}: distinct data $DATA (read 8x, both versions), store resident $s, mount resident $m (own $own):" \
	"$(ratio "$t" "$DATA")x; /proc/meminfo Cached growth $(ratio $((c1 - c0)) "$DATA")x"
[ "$m" -ge $((DATA * 9 / 10)) ] || fail "8 slices: only $m of the $DATA distinct bytes read are resident"
[ $((t * 10)) -le $((DATA * 11)) ] ||
	fail "8 slices: page cache $t bytes (store $s, mount's own $own) for $DATA distinct bytes: $(ratio "$t" "$DATA")x > 1.1x"
inodes=$(for p in "${paths[@]}"; do stat -c %i "$p"; done | sort -u | wc -l)
[ "$inodes" -eq 7 ] || fail "8 slices x (2 versions x 5 files + busybox) are $inodes inodes, want 7 (4 shared, 2 changed, busybox)"
pass "8 slices reading both versions and running busybox cache the $DATA distinct bytes once: $(ratio "$t" "$DATA")x (7 inodes)"

# both versions at once: p/2.0's shared files are p/1.0's inodes, p/2.0/changed is not
for f in shared1 shared2 shared3 shared4; do
	[ "$(stat -c %i "$M/.slices/s1/p/1.0/$f")" = "$(stat -c %i "$M/.slices/s8/p/2.0/$f")" ] ||
		fail "$f of p 1.0 (slice s1) and p 2.0 (slice s8) are two inodes"
	[ "$(stat -c %i "$M/.slices/s1/p/1.0/$f")" = "$(stat -c %i "$M/p/1.0/$f")" ] ||
		fail "$f of slice s1 is another inode than at the top level"
done
[ "$(stat -c %i "$M/.slices/s1/p/1.0/changed")" != "$(stat -c %i "$M/.slices/s1/p/2.0/changed")" ] ||
	fail "changed of p 1.0 and p 2.0 (other bytes) are one inode"
cmp "$M/.slices/s5/p/2.0/changed" "$T/src/2/changed" || fail "p/2.0/changed reads other bytes through slice s5"
cmp "$M/.slices/s3/p/2.0/shared2" "$T/src/2/shared2" || fail "p/2.0/shared2 reads other bytes through slice s3"
pass "two versions sharing most files cost memory once for the shared files (one inode each), their own for the changed one"
fusermount3 -u "$M"
done_ok
