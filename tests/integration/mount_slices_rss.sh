#!/usr/bin/env bash
# The daemon's memory does not grow with refreshes (fs/README.md "Memory"). p holds 4 versions
# of a 5,000-file package (tiny files, 100 a directory, 5% of them changed in each version;
# STORK_RSS_FILES changes the count), published into a repository on /dev/shm (publishing
# fsyncs each object). storkfs, run as users run it (without -f), with a slice accepting
# everything (-o slices=), lists every version once (their manifests enter the node store) and
# is unmounted; a second mount of the same store, reading the manifests from the store's
# index, is walked by find (an lstat per entry) at the top level and through the slice:
#   - the store index's pages of the manifests it read are not in the daemon's RSS (its map of
#     STORE/index/data.mdb holds under 1 MB resident, /proc/PID/smaps; each manifest is about
#     800 kB);
#   - refreshes with nothing changed (SIGHUP, each waited for: last_refresh_try moves) keep
#     every path's inode number; after 5 of them and the same finds (the allocator's arenas of
#     the threads a refresh wakes are warm then: about 1 MB each, once), 10 more and the same
#     finds leave VmRSS where it was (at most 2 MB or 5% of slack; 10 refreshes that each kept
#     a copy of the 4 trees would add 30 MB). Under AddressSanitizer (CI's second run) the
#     freed memory waits in its quarantine: the RSS is printed, not checked.
#   - after the finds the daemon's own memory (RssAnon: the tree indexes are mapped, their
#     pages are RssFile, the page cache's) has grown by at most 48 bytes a listed entry and 1 MB
#     (about 40 bytes per number the kernel holds, fs/inode.c; before: 147 bytes a listed entry).
# The figures for 1,000,000 entries, against squashfuse_ll: tests/bench/slices.
export TMPDIR=/dev/shm
. "$(dirname "$0")/lib.sh"

need python3 nginx find
need_fuse

FILES=${STORK_RSS_FILES:-5000}
VERSIONS=4
python3 - "$T/src" "$VERSIONS" "$FILES" <<'EOF'
import os, sys
out, nv, nf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for v in range(1, nv + 1):
    for i in range(nf):
        d = os.path.join(out, str(v), "d%04d" % (i // 100))
        if i % 100 == 0:
            os.makedirs(d)
        p = os.path.join(d, "f%02d" % (i % 100))
        with open(p, "w") as f:
            f.write("file %d version %d\n" % (i, v) if i % 20 == v else "file %d\n" % i)
        os.utime(p, (1700000000, 1700000000))
EOF
make_repo
for v in $(seq "$VERSIONS"); do
	publish p "$v" "$T/src/$v" --quiet
done
start_nginx "$REPO"
mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"
STORE=$T/store
MNT=$T/mnt
mount_bg "$MNT" "slices=$T/slices"
ls "$MNT"/p/*/ >/dev/null
fusermount3 -u "$MNT"
mount_bg "$MNT" "slices=$T/slices"
PID=$MOUNT_PID
kb() {
	awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"
}
# index_rss: kB of STORE/index/data.mdb resident in the daemon's map
index_rss() {
	awk -v f="$STORE/index/data.mdb" '/^[0-9a-f]+-[0-9a-f]+ / { m = ($6 == f) } m && $1 == "Rss:" { s += $2 } END { print s + 0 }' \
		"/proc/$PID/smaps"
}
# walk OUT: find over p at the top level and through the slice: "inode path" lines into OUT
walk() {
	(cd "$MNT" && find p .slices/s/p -printf '%i %p\n') | sort -k2 >"$1"
}

r0=$(kb VmRSS) a0=$(kb RssAnon)
walk "$T/walk1"
n=$(wc -l <"$T/walk1")
[ "$n" -ge $((2 * VERSIONS * FILES)) ] || fail "find lists $n entries, want at least $((2 * VERSIONS * FILES))"
r1=$(kb VmRSS) a1=$(kb RssAnon)
i1=$(index_rss)
echo "# $n entries: VmRSS $r0 kB after mounting, $r1 kB after find (VmHWM $(kb VmHWM) kB); the index's map: $i1 kB resident"
echo "# RssAnon (the daemon's own memory; the mapped tree indexes are RssFile) $a0 kB after mounting, $a1 kB after find: $(((a1 - a0) * 1024 / n)) bytes a listed entry"
if ! ldd "$STORKFS" | matches -F libasan; then
	# Mapped trees and about 40 bytes per number the kernel holds: the growth stays under
	# 48 bytes a listed entry and 1 MB (the threads' arenas). Copied trees (about 150 bytes
	# an entry) and a node with strings per number (about 500 bytes) were 5 MB here.
	[ $(((a1 - a0) * 1024)) -le $((48 * n + 1048576)) ] ||
		fail "RssAnon grew from $a0 kB to $a1 kB over find of $n entries (more than 48 bytes an entry and 1 MB)"
	pass "find over $n entries: the daemon's own memory (RssAnon) grew by $((a1 - a0)) kB"
fi
[ "$i1" -lt 1024 ] ||
	fail "the daemon's map of the store index holds $i1 kB resident after reading $VERSIONS manifests (their pages stay in its RSS)"
pass "after find over $n entries the manifests' pages of the store index are not in the daemon's RSS ($i1 kB)"

# refreshes N: N refreshes, one after another
refreshes() {
	local i last
	for i in $(seq "$1"); do
		last=$(status_field "$MNT" last_refresh_try)
		sleep 1.1 # last_refresh_try has whole seconds
		kill -HUP "$PID"
		for _ in $(seq 300); do
			[ "$(status_field "$MNT" last_refresh_try)" = "$last" ] || break
			sleep 0.1
		done
		[ "$(status_field "$MNT" last_refresh_try)" != "$last" ] || fail "a refresh did not happen within 30 s of SIGHUP"
	done
	[ "$(status_field "$MNT" state)" = fresh ] || fail "after the refreshes the state is $(status_field "$MNT" state)"
}
# same_walk OUT: the finds again; the same paths and inode numbers as the first
same_walk() {
	walk "$1"
	diff -q "$T/walk1" "$1" >/dev/null || {
		diff "$T/walk1" "$1" | head -5 >&2
		fail "after refreshes with nothing changed, find lists other paths or inode numbers"
	}
}
refreshes 5
same_walk "$T/walk2"
r2=$(kb VmRSS)
refreshes 10
same_walk "$T/walk3"
r3=$(kb VmRSS)
echo "# VmRSS after 5 refreshes and the finds: $r2 kB; after 10 more and the finds: $r3 kB"
if ldd "$STORKFS" | matches -F libasan; then
	pass "10 refreshes with nothing changed keep every path and inode number (VmRSS $r2 -> $r3 kB not checked under AddressSanitizer)"
else
	slack=$((r2 / 20 > 2048 ? r2 / 20 : 2048))
	[ "$r3" -le $((r2 + slack)) ] || fail "VmRSS grew from $r2 kB to $r3 kB over 10 refreshes with nothing changed"
	pass "10 refreshes with nothing changed: VmRSS $r2 -> $r3 kB (not grown beyond $slack kB of slack), same paths and inode numbers"
fi

fusermount3 -u "$MNT"
done_ok
