#!/usr/bin/env bash
# Several storkfs mounts share one node store, and storkfs mounts the way an admin mounts it.
# Two mounts of one repository with the same store= at once: everything read through the
# first (its objects fetched once) then reads through the second with zero object requests and
# the same bytes; after both are unmounted, a new mount of that store reads everything with
# zero object requests; a mount with another, empty store fetches every object again (the
# counting sees fetches). `mount -t fuse.storkfs "DEAD,GOOD"` (a comma-separated mirror list
# whose first mirror refuses connections) and an fstab line (mount -T) with the fstab-only
# options defaults,_netdev,nofail mount through Debian's mount.fuse3; files read correctly;
# `umount` and `fusermount3 -u` unmount and the daemon exits; storkfs given those options
# directly ignores them. `stork status MOUNTPOINT` (and --json) shows each running mount's
# counters: objects fetched, opens, hits and misses, per mirror requests, bytes and failures
# (the dead mirror's failure included); user.storkfs.source says where a mount got a file from.
. "$(dirname "$0")/lib.sh"

need python3 nginx mount umount pgrep
need_fuse

# mount -t fuse.storkfs needs the mount helper /sbin/mount.fuse.storkfs -> mount.fuse3, and
# mount.fuse3 runs `storkfs` through /bin/sh. mount(8) clears PATH for its helpers, so that
# finds storkfs only in sh's default PATH (/usr/local/sbin:...:/bin), not through the caller's
# PATH: the test makes /usr/local/sbin/storkfs -> $STORKFS. Both links are made only if
# missing, and then removed at exit.
HELPER=/sbin/mount.fuse.storkfs
HELPER_MADE=0
BIN_LINK=/usr/local/sbin/storkfs
BIN_MADE=0
mount_shared_cleanup() {
	local rc=$?
	set +e
	[ "$HELPER_MADE" != 1 ] || rm -f "$HELPER"
	[ "$BIN_MADE" != 1 ] || rm -f "$BIN_LINK"
	(exit "$rc")
	_cleanup
}
trap mount_shared_cleanup EXIT

# mount_shared_big_tree DIR: a bigger package: 150 pseudo-random files (0..128 KiB, some of
# them repeated) in 15 directories and one 16 MiB file; the same bytes in every run.
mount_shared_big_tree() {
	python3 - "$1" <<-'EOF'
		import os, random, sys
		root = sys.argv[1]
		rnd = random.Random(7)
		os.makedirs(root)
		blobs = []
		for i in range(150):
		    d = os.path.join(root, "share/big/d%02d" % (i % 15))
		    os.makedirs(d, exist_ok=True)
		    if blobs and i % 10 == 9:
		        data = rnd.choice(blobs)
		    else:
		        data = rnd.randbytes(rnd.randrange(0, 131072))
		        blobs.append(data)
		    with open(os.path.join(d, "f%03d.bin" % i), "wb") as f:
		        f.write(data)
		os.makedirs(os.path.join(root, "lib"))
		with open(os.path.join(root, "lib/huge.bin"), "wb") as f:
		    for _ in range(16):
		        f.write(rnd.randbytes(1 << 20))
	EOF
}

PVS=(synth:1 synth:2 big:1.0)

# mount_shared_read_all MNT: every file of every version reads back its source's bytes.
mount_shared_read_all() {
	local pv p v
	for pv in "${PVS[@]}"; do
		p=${pv%%:*} v=${pv#*:}
		if ! timeout 300 diff -r --no-dereference "$T/src/$p-$v" "$1/$p/$v" >"$T/diff" 2>&1; then
			head -20 "$T/diff" >&2
			fail "$1: $p $v: file contents through the mount differ from the source"
		fi
	done
}

# mount_shared_objects: requests for objects, and range requests over version packs (a mount's
# fetch-ahead: fs/README.md "Cold reads"), in the newest nginx's access log so far.
mount_shared_objects() {
	nginx_requests '"GET /(objects/|targets/[^ ]*\.pack )'
}

# mount_shared_daemon_gone MNT: no process mentions MNT any more (waits up to 10 s).
mount_shared_daemon_gone() {
	for _ in $(seq 100); do
		pgrep -f -- "$1" >/dev/null || return 0
		sleep 0.1
	done
	echo "still running for $1: $(pgrep -a -f -- "$1")" >&2
	return 1
}

# mount_shared_status_ok DESC MNT EXPR...: `stork status --json MNT` succeeds and every python
# EXPR holds, with c the counters and m the mirrors by URL.
mount_shared_status_ok() {
	local desc=$1 mnt=$2
	shift 2
	run timeout 30 "$STORK" status --json "$mnt"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "$desc: stork status --json $mnt exited $RC"
	}
	if ! python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
c = s["counters"]
m = {x["url"]: x for x in s["mirrors"]}
bad = [e for e in sys.argv[2:] if not eval(e)]
if bad:
    sys.exit("not true: " + "; ".join(bad))' "$T/out" "$@" 2>"$T/status.bad"; then
		_show_run
		fail "$desc: stork status --json $mnt: $(cat "$T/status.bad")"
	fi
	pass "$desc"
}

make_repo
synth_tree "$T/src/synth-1" 1
synth_tree "$T/src/synth-2" 2
mount_shared_big_tree "$T/src/big-1.0"
for pv in "${PVS[@]}"; do
	publish "${pv%%:*}" "${pv#*:}" "$T/src/${pv%%:*}-${pv#*:}" --quiet
done
WANT=$(for pv in "${PVS[@]}"; do
	manifest_objects "${pv%%:*}" "${pv#*:}"
done | cut -d' ' -f1 | sort -u | wc -l)
# the distinct objects of the files stored whole: an open of one fetches it (a miss); a file
# stored by the piece opens without a fetch (a hit) and its reads fetch its chunks
WHOLE=$(for pv in "${PVS[@]}"; do
	python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["files"]:
    if e["type"] == "file" and "chunks" not in e:
        print(e["sha256"])' "$(manifest_file "${pv%%:*}" "${pv#*:}")"
done | sort -u | wc -l)
NFILES=$(for pv in "${PVS[@]}"; do
	manifest_hashes "${pv%%:*}" "${pv#*:}"
done | wc -l)
start_nginx "$REPO"
STORE=$T/store

# --- two mounts, one store, at once ----------------------------------------------------------
mount_storkfs "$T/mnt-a" "store=$STORE,timeout=60" "$NGINX_URL"
PID_A=$SFS_PID
mount_storkfs "$T/mnt-b" "store=$STORE,timeout=60" "$NGINX_URL"
PID_B=$SFS_PID
[ "$PID_A" != "$PID_B" ] && is_mounted "$T/mnt-a" && is_mounted "$T/mnt-b" ||
	fail "two mounts of the same store are not both up"
pass "two storkfs mounts of one repository with the same store run at once"

mount_shared_read_all "$T/mnt-a"
n=$(mount_shared_objects)
[ "$n" -ge 1 ] && [ "$n" -le "$WANT" ] ||
	fail "reading everything through mount A sent $n object requests, want at most $WANT (one per object, fewer with range requests)"
N_A=$n
pass "mount A reads every file correctly, fetching each of the $WANT distinct objects once ($n requests)"
mount_shared_read_all "$T/mnt-b"
n=$(mount_shared_objects)
[ "$n" -eq "$N_A" ] ||
	fail "mount B sent $((n - N_A)) object requests for files mount A had already fetched into the shared store"
pass "mount B reads the same bytes with zero object requests (the shared store)"
mount_shared_status_ok "stork status --json: mount A fetched the $WANT objects" \
	"$T/mnt-a" "c['objects_fetched'] == $WANT" "c['errors'] == 0"
mount_shared_status_ok "stork status --json: mount B fetched none, all $NFILES opens were hits" \
	"$T/mnt-b" "c['objects_fetched'] == 0" "c['opens'] == $NFILES" "c['hits'] == $NFILES" "c['misses'] == 0"

# --- remount the same store ------------------------------------------------------------------
unmount_storkfs "$T/mnt-a" "$PID_A"
unmount_storkfs "$T/mnt-b" "$PID_B"
pass "both mounts unmount and their daemons exit"
mount_storkfs "$T/mnt-r" "store=$STORE,timeout=60" "$NGINX_URL"
PID_R=$SFS_PID
mount_shared_read_all "$T/mnt-r"
n=$(mount_shared_objects)
[ "$n" -eq "$N_A" ] || fail "a new mount of the same store sent $((n - N_A)) object requests"
pass "a new mount of the same store reads everything with zero object requests"

# --- another, empty store fetches ------------------------------------------------------------
mount_storkfs "$T/mnt-c" "store=$T/store-c,timeout=60" "$NGINX_URL"
PID_C=$SFS_PID
mount_shared_read_all "$T/mnt-c"
n=$(mount_shared_objects)
[ $((n - N_A)) -ge 1 ] && [ $((n - N_A)) -le "$WANT" ] ||
	fail "a mount with an empty store sent $((n - N_A)) object requests, want 1 to $WANT (one per object, fewer with range requests)"
mount_shared_status_ok "a mount with another, empty store fetches every object again ($((n - N_A)) requests)" \
	"$T/mnt-c" "c['objects_fetched'] == $WANT"
fsck_clean "the shared store is clean" "$STORE"

# --- mount -t fuse.storkfs with two mirrors, the first one dead ---------------------------------
if [ ! -e "$HELPER" ]; then
	ln -s /sbin/mount.fuse3 "$HELPER" || fail "cannot make $HELPER"
	HELPER_MADE=1
fi
[ -x /sbin/mount.fuse3 ] || fail "/sbin/mount.fuse3 is missing (package fuse3)"
found=$(env -i /bin/sh -c 'command -v storkfs' || true)
if [ -z "$found" ]; then
	ln -s "$(readlink -f "$STORKFS")" "$BIN_LINK" || fail "cannot make $BIN_LINK"
	BIN_MADE=1
elif [ "$(readlink -f "$found")" != "$(readlink -f "$STORKFS")" ]; then
	fail "mount -t fuse.storkfs would run $found (sh's default PATH: mount(8) clears PATH), not $STORKFS"
fi
free_port
DEAD=http://127.0.0.1:$FREE_PORT
MIRRORS="$DEAD,$NGINX_URL"
MNT_T=$T/mnt-t
mkdir -p "$MNT_T"
_MOUNTS+=("$MNT_T")
before=$(mount_shared_objects)
expect_rc 0 "mount -t fuse.storkfs \"DEAD,GOOD\" MNT -o root=,store= mounts" \
	timeout 60 mount -t fuse.storkfs "$MIRRORS" "$MNT_T" \
	-o "root=$ROOT,store=$T/store-t,timeout=30"
grep -qF " $MNT_T fuse.storkfs ro," /proc/mounts ||
	fail "no read-only fuse.storkfs mount at $MNT_T: $(grep -F " $MNT_T " /proc/mounts)"
pass "mount -t makes a read-only fuse.storkfs mount (mount.fuse3's added rw,dev,suid do not make it writable)"
mount_shared_read_all "$MNT_T"
n=$(mount_shared_objects)
[ $((n - before)) -ge 1 ] && [ $((n - before)) -le "$WANT" ] ||
	fail "the mount -t mount (empty store) sent $((n - before)) object requests to the live mirror, want 1 to $WANT"
pass "files read correctly through mount -t, from the second mirror when the first refuses connections"
mount_shared_status_ok "stork status --json: per mirror, the dead one failed and the live one delivered" \
	"$MNT_T" "list(m) == ['$DEAD', '$NGINX_URL']" "m['$DEAD']['failures'] >= 1" \
	"m['$DEAD']['bytes'] == 0" "m['$NGINX_URL']['failures'] == 0" \
	"m['$NGINX_URL']['requests'] >= 1" "c['objects_fetched'] == $WANT" "c['errors'] == 0"
expect_rc 0 "umount unmounts the mount -t mount" timeout 30 umount "$MNT_T"
! is_mounted "$MNT_T" || fail "$MNT_T is still mounted after umount"
check "the daemon exits after umount" mount_shared_daemon_gone "$MNT_T"

MNT_F=$T/mnt-f
mkdir -p "$MNT_F"
_MOUNTS+=("$MNT_F")
printf '%s %s fuse.storkfs defaults,_netdev,nofail,root=%s,store=%s,timeout=30 0 0\n' \
	"$MIRRORS" "$MNT_F" "$ROOT" "$T/store-f" >"$T/fstab"
before=$(mount_shared_objects)
expect_rc 0 "mount -T FSTAB MNT mounts an fstab line with defaults,_netdev,nofail" \
	timeout 60 mount -T "$T/fstab" "$MNT_F"
grep -qF " $MNT_F fuse.storkfs ro," /proc/mounts ||
	fail "no read-only fuse.storkfs mount at $MNT_F: $(grep -F " $MNT_F " /proc/mounts)"
mount_shared_read_all "$MNT_F"
n=$(mount_shared_objects)
[ $((n - before)) -ge 1 ] && [ $((n - before)) -le "$WANT" ] ||
	fail "the fstab mount (empty store) sent $((n - before)) object requests, want 1 to $WANT"
pass "files read correctly through the fstab mount"
expect_rc 0 "fusermount3 -u unmounts the fstab mount" timeout 30 fusermount3 -u "$MNT_F"
! is_mounted "$MNT_F" || fail "$MNT_F is still mounted after fusermount3 -u"
check "the daemon exits after fusermount3 -u" mount_shared_daemon_gone "$MNT_F"

# mount(8) drops defaults, noauto and x-*, mount.fuse3 drops _netdev and nofail: storkfs itself
# sees only rw (and dev,suid) that way. Other mounters (a systemd mount unit, a script reading
# fstab) pass them all: storkfs ignores them and stays read-only.
mount_storkfs "$T/mnt-o" "store=$STORE,timeout=30,defaults,_netdev,noauto,nofail,x-systemd.automount,rw" \
	"$NGINX_URL"
grep -qF " $T/mnt-o fuse.storkfs ro," /proc/mounts ||
	fail "storkfs -o ...,rw made a writable mount: $(grep -F " $T/mnt-o " /proc/mounts)"
cmp -s "$T/src/synth-1/usr/share/doc/pkg/random.bin" "$T/mnt-o/synth/1/usr/share/doc/pkg/random.bin" ||
	fail "storkfs -o ...,fstab options: a file does not read back its source's bytes"
pass "storkfs ignores defaults,_netdev,noauto,nofail,x-systemd.automount,rw given directly and mounts read-only"
unmount_storkfs "$T/mnt-o"

# --- stork status MOUNTPOINT and user.storkfs.source ----------------------------------------------
expect_rc 0 "stork status MOUNTPOINT works on a running mount" timeout 30 "$STORK" status "$T/mnt-c"
grep -qE "fetched +$WANT objects" "$T/out" || {
	_show_run
	fail "stork status $T/mnt-c does not say it fetched $WANT objects"
}
grep -qE "mirror +$NGINX_URL: [0-9]+ requests" "$T/out" || {
	_show_run
	fail "stork status $T/mnt-c shows no requests for the mirror $NGINX_URL"
}
pass "stork status MOUNTPOINT shows the objects fetched and the requests per mirror"
# (fewer misses than whole-file objects when fetch-ahead brought files before they were opened;
# a chunked file's open is a hit: its chunks are fetched by its reads)
mount_shared_status_ok "stork status --json: the empty-store mount opened $NFILES files, fetched each of the $WANT objects once (at most $WHOLE misses at an open), the rest were hits" \
	"$T/mnt-c" "c['opens'] == $NFILES" "c['objects_fetched'] == $WANT" "c['misses'] <= $WHOLE" \
	"c['hits'] + c['misses'] == $NFILES" "c['errors'] == 0" "c['bytes_fetched'] > 16 << 20" \
	"m['$NGINX_URL']['failures'] == 0" "m['$NGINX_URL']['requests'] >= 1" \
	"m['$NGINX_URL']['bytes'] >= c['bytes_fetched']"
mount_shared_status_ok "stork status --json: the remount of the shared store served all $NFILES opens from the store" \
	"$T/mnt-r" "c['opens'] == $NFILES" "c['hits'] == $NFILES" "c['misses'] == 0" \
	"c['objects_fetched'] == 0" "c['bytes_fetched'] == 0" "c['errors'] == 0"

f=share/big/d03/f003.bin
[ "$(xattr "$T/mnt-c/big/1.0/$f" user.storkfs.source)" = "$NGINX_URL" ] ||
	fail "$T/mnt-c: user.storkfs.source of $f is '$(xattr "$T/mnt-c/big/1.0/$f" user.storkfs.source)', want $NGINX_URL"
[ "$(xattr "$T/mnt-r/big/1.0/$f" user.storkfs.source)" = store ] ||
	fail "$T/mnt-r: user.storkfs.source of $f is '$(xattr "$T/mnt-r/big/1.0/$f" user.storkfs.source)', want store"
pass "user.storkfs.source: the mirror URL for a fetched file, 'store' for one found in the shared store"

unmount_storkfs "$T/mnt-r" "$PID_R"
unmount_storkfs "$T/mnt-c" "$PID_C"
fsck_clean "the other store is clean" "$T/store-c"
done_ok
