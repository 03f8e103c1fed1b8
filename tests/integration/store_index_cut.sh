#!/usr/bin/env bash
# An index/data.mdb cut short (0 bytes, one page, the meta pages alone, half of it, all but
# its last page) is never mapped past its end: stork fsck, stork fsck --repair, stork extract
# and storkfs (the daemon, without -f) end without a signal (LMDB used to die of SIGBUS, exit
# 135) and, when they refuse it, say which file and how to rebuild it, as they do for a zeroed
# index. A file cut to 0 bytes is an empty index: it works (fsck indexes the objects again).
# A file cut of free pages only (LMDB's free list lists every page cut: what a kill between a
# commit and its cover leaves, store/README.md) is given its pages back by the first writable
# open, and then everything works; the meta pages alone are always refused.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo
synth_tree "$T/src" 1
publish pkg 1.0 "$T/src" --quiet
start_nginx "$REPO"
S=$T/store
MNT=$T/mnt
mkdir -p "$MNT"
_MOUNTS+=("$MNT")

# An index of several pages: metadata, a manifest and the objects of a version.
extract_ok "a first extract fills the store" --store "$S" "$NGINX_URL" pkg 1.0 "$T/x0"
cp -a "$S" "$T/whole"
size=$(stat -c %s "$S/index/data.mdb")
[ "$size" -ge $((4 * 4096)) ] || fail "test setup: index/data.mdb is only $size bytes"

# no_signal DESC: the last run ended by itself, not by a signal or the outer timeout.
no_signal() {
	[ "$RC" -lt 124 ] || {
		_show_run
		fail "$1: exit $RC (a signal, or it hung)"
	}
}

# told DESC: a refusal of a file cut short names index/data.mdb and says how to rebuild it
# (an empty one is an empty index: fsck then reports the objects it lists no more).
told() {
	[ "$RC" -ne 0 ] && [ "$cut" -gt 0 ] || return 0
	err_has "$1: says which file and how to rebuild it" "$S/index/data.mdb: not a usable storkfs index" \
		"stork fsck --repair"
}

n=0
for cut in $((size / 2 / 4096 * 4096)) $((size - 4096)) 8192 4096 0; do
	n=$((n + 1))
	rm_rf "$S"
	cp -a "$T/whole" "$S"
	truncate -s "$cut" "$S/index/data.mdb"
	what="data.mdb cut to $cut of $size bytes"

	run timeout 60 "$STORK" fsck "$S"
	no_signal "$what: stork fsck"
	told "$what: stork fsck"
	covered=0
	if [ "$cut" -gt 0 ] && [ "$RC" -eq 0 ]; then
		# only free pages were cut: given back, and the index whole
		[ "$cut" -gt 8192 ] || fail "$what: stork fsck found nothing wrong"
		[ "$(stat -c %s "$S/index/data.mdb")" -ge "$size" ] ||
			fail "$what: stork fsck accepted the index without giving it its pages back"
		covered=1
		pass "$what: only free pages were cut: stork fsck gave them back and found the store clean"
	elif [ "$cut" -gt 0 ]; then
		pass "$what: stork fsck refuses the index without a signal"
	else
		pass "$what: stork fsck ends without a signal (exit $RC)"
	fi

	run timeout 60 "$STORK" fsck --repair "$S"
	no_signal "$what: stork fsck --repair"
	told "$what: stork fsck --repair"
	pass "$what: stork fsck --repair ends without a signal (exit $RC)"

	extract --store "$S" "$NGINX_URL" pkg 1.0 "$T/x$n"
	no_signal "$what: stork extract"
	told "$what: stork extract"
	if [ "$covered" -eq 1 ]; then
		[ "$RC" -eq 0 ] || fail "$what: stork extract failed on the index given its pages back"
		compare_tree "$T/src" "$T/x$n" || fail "$what: stork extract wrote other files"
	fi
	pass "$what: stork extract ends without a signal (exit $RC)"

	run timeout 60 "$STORKFS" -o "root=$ROOT,store=$S,timeout=5" "$NGINX_URL" "$MNT"
	no_signal "$what: storkfs"
	if is_mounted "$MNT"; then
		[ "$cut" -eq 0 ] || [ "$covered" -eq 1 ] || fail "$what: storkfs mounted"
		[ "$covered" -eq 0 ] || diff -r --no-dereference "$T/src" "$MNT/pkg/1.0" >&2 ||
			fail "$what: the mount serves other bytes"
		fusermount3 -u "$MNT"
	fi
	told "$what: storkfs"
	[ "$cut" -eq 0 ] || [ "$covered" -eq 1 ] || [ "$RC" -ne 0 ] || fail "$what: storkfs exited 0"
	pass "$what: storkfs ends without a signal (exit $RC)"
done

done_ok
