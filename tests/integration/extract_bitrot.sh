#!/usr/bin/env bash
# Bit rot in the node store: a flipped byte in a stored object (and, separately, a truncated
# object and a flipped byte in a mode variant) is found by `stork fsck` (exit 1, naming the
# file), `stork fsck --repair` removes it, and the next extract fetches that object again (one
# object request in nginx's log; none when only a variant was damaged) and is byte-identical.
. "$(dirname "$0")/lib.sh"

need python3 nginx
make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"
start_nginx "$REPO"
STORE=$T/store
objreq() { nginx_requests '"GET /objects/'; }

extract_ok "synth 1.0 extracts" --store "$STORE" "$NGINX_URL" synth 1.0 "$T/d0"
fsck_clean "the store starts clean" "$STORE"

# flip FILE: invert one byte at a random offset, keeping the file's mode
flip() {
	local f=$1 mode size
	mode=$(stat -c %a "$f")
	size=$(stat -c %s "$f")
	rand "$size"
	chattr -i "$f" # a linked variant is immutable: root with CAP_LINUX_IMMUTABLE rots it
	chmod u+w "$f"
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0xff]))' "$f" "$R"
	chmod "$mode" "$f"
	echo "# flipped byte $R of $f"
}

# rot NAME PATH_IN_PACKAGE DAMAGE FILE_SUFFIX REFETCH: damage the stored object of the package
# file PATH (its base file, or the mode variant with FILE_SUFFIX), then fsck, repair, extract
n=0
rot() {
	local name=$1 path=$2 damage=$3 suffix=$4 refetch=$5 hash file before
	n=$((n + 1))
	read -r hash _ < <(manifest_hashes synth 1.0 | awk -v p="$path" '$3 == p')
	[ -n "$hash" ] || fail "test setup: no $path in the manifest"
	file=$STORE/$(object_path "$hash")$suffix
	[ -f "$file" ] || fail "test setup: $file is not in the store: $(ls "$(dirname "$file")")"
	case $damage in
	flip) flip "$file" ;;
	truncate)
		chattr -i "$file"
		chmod u+w "$file"
		truncate -s $(($(stat -c %s "$file") / 2)) "$file"
		chmod 444 "$file"
		;;
	esac

	run "$STORK" fsck "$STORE"
	if [ "$RC" -ne 1 ] || ! grep -qF "$file" "$T/err"; then
		_show_run
		fail "$name: stork fsck should exit 1 naming $file"
	fi
	pass "$name: stork fsck finds it (exit 1, names the file)"
	grep -q '^stork fsck: ' "$T/err" || fail "$name: fsck's problem lines do not start with 'stork fsck: '"

	run "$STORK" fsck --repair "$STORE"
	if [ "$RC" -ne 0 ] || [ -e "$file" ]; then
		_show_run
		fail "$name: stork fsck --repair should exit 0 and remove $file"
	fi
	pass "$name: stork fsck --repair removes it"
	if [ -n "$suffix" ]; then
		# The trees extracted so far link to that variant: their file changed with it.
		grep -qF "extracted tree $T/d" "$T/err" || {
			_show_run
			fail "$name: fsck does not list the extracted trees linked to the changed variant"
		}
		pass "$name: fsck lists the extracted trees linked to the changed variant"
		for d in "$T"/d*; do
			"$STORK" extract --remove --store "$STORE" "$d" || fail "stork extract --remove $d"
		done
	fi
	fsck_clean "$name: the store is clean after the repair" "$STORE"

	before=$(objreq)
	extract_ok "$name: the next extract succeeds" --store "$STORE" "$NGINX_URL" synth 1.0 "$T/d$n"
	check "$name: the next extract is identical to the source" compare_tree "$T/src" "$T/d$n"
	if [ "$refetch" = yes ]; then
		[ $(($(objreq) - before)) -eq 1 ] && [ "$(nginx_requests "GET /$(object_path "$hash") ")" -eq 2 ] || {
			grep objects "$NGINX_DIR/access.log" | tail -n +$((before + 1)) >&2
			fail "$name: the next extract made $(($(objreq) - before)) object requests; want exactly one, for $hash"
		}
		pass "$name: the next extract fetches that object again, and only it"
	else
		[ "$(objreq)" -eq "$before" ] || fail "$name: the next extract fetched $(($(objreq) - before)) objects; the base object was good"
		pass "$name: the next extract fetches nothing (the good base object makes the variant again)"
	fi
	[ -f "$file" ] || fail "$name: $file was not made again"
	fsck_clean "$name: the store is clean afterwards" "$STORE"
	check "$name: every stored object holds what its name hashes" store_hashes_ok "$STORE"
}

rot "flipped byte" usr/share/doc/pkg/random.bin flip "" yes
rot "truncated object" usr/share/doc/pkg/compressible.txt truncate "" yes
# the executable's link target is its 0755 variant; damaging it damages the extracted tree's
# file too (one inode), which is why the trees are read-only
rot "flipped byte in a mode variant" usr/bin/tool flip .755 no
done_ok
