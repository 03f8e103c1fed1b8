#!/usr/bin/env bash
# Atomic generations of a slice's installed set (fs/README.md "Installing"), over a real mount
# (storkfs without -f) and nginx. A reader streams a 16 MB file of generation 1 from the slice's
# root while `stork upgrade` moves the slice to generation 2: the reader finishes with
# generation 1's bytes, new opens see generation 2 (no signal sent to the daemon); `stork
# rollback` returns to generation 1. kill -9 of `stork upgrade` (the process that writes the
# generation) at random moments, and of the daemon during an upgrade, leave the slice at the
# old or the new generation, never a mix (stork list, the wanted list and the root agree), and
# stork fsck clean. Generations survive a restart of the daemon.
. "$(dirname "$0")/lib.sh"

need python3 nginx dpkg-deb sha256sum
need_fuse

# mkapp VERSION: app VERSION with usr/share/app/data (16 MB of its own) and usr/share/app/version.
mkapp() {
	local d=$T/deb/app-$1
	mkdir -p "$d/DEBIAN" "$d/usr/share/app"
	head -c $((16 << 20)) /dev/urandom >"$d/usr/share/app/data"
	echo "$1" >"$d/usr/share/app/version"
	sha256sum <"$d/usr/share/app/data" | cut -d' ' -f1 >"$T/sum-$1"
	printf 'Package: app\nVersion: %s\nArchitecture: all\nMaintainer: t <t@t>\nDepends: app-lib\nDescription: app\n' \
		"$1" >"$d/DEBIAN/control"
	dpkg-deb -Znone --root-owner-group -b "$d" "$T/app-$1.deb" >/dev/null
	publish app "$1" "$T/app-$1.deb" --quiet
}
make_repo
mkdir -p "$T/lib/DEBIAN" "$T/lib/usr/lib/app"
echo lib >"$T/lib/usr/lib/app/lib.txt"
printf 'Package: app-lib\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: l\n' \
	>"$T/lib/DEBIAN/control"
dpkg-deb --root-owner-group -b "$T/lib" "$T/app-lib.deb" >/dev/null
publish app-lib 1 "$T/app-lib.deb" --quiet
mkapp 1.0
start_nginx "$REPO"

mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"
MNT=$T/mnt
STORE=$T/store
mkdir -p "$MNT"
_MOUNTS+=("$MNT")
mount_bg "$MNT" "slices=$T/slices"
SR=$MNT/.slices/s/root
NODE=(--slices "$T/slices" --slice s --root "$ROOT" --store "$STORE")

# generation: the current generation number of slice s (stork list)
generation() {
	"$STORK" list --slice s --root "$ROOT" --store "$STORE" | sed -n 's/^# slice s generation \([0-9]*\):.*/\1/p'
}
# listed_app: the version of app that stork list shows
listed_app() {
	"$STORK" list --slice s --root "$ROOT" --store "$STORE" | awk '$1 == "app" { print $2 }'
}
# root_app: the version the root's files are of (version file and data agree, or "mixed")
root_app() {
	local v s
	v=$(cat "$SR/usr/share/app/version")
	s=$(sha256sum <"$SR/usr/share/app/data" | cut -d' ' -f1)
	if [ "$s" = "$(cat "$T/sum-$v")" ]; then echo "$v"; else echo mixed; fi
}

expect_rc 0 "stork install app" "$STORK" install "${NODE[@]}" "$NGINX_URL" app
[ "$(generation)" = 1 ] && [ "$(root_app)" = 1.0 ] || fail "after install: generation $(generation), root $(root_app)"
pass "generation 1: app 1.0 in the root"
# pinned: the slice's pin set (store/README.md "Pins": the ids of its installed versions'
# objects, which the quota and stork gc keep)
pinned() {
	sort "$STORE/pins/slice-s" 2>/dev/null | sha256sum | cut -c1-16
}
PIN1=$(pinned)

# 1. A reader streams generation 1's data while the upgrade makes generation 2.
mkapp 2.0
rm -f "$T/ready" "$T/go"
python3 - "$SR/usr/share/app/data" "$T" >"$T/reader.out" 2>&1 <<'PY' &
import hashlib, os, sys, time
path, t = sys.argv[1], sys.argv[2]
h = hashlib.sha256()
with open(path, "rb") as f:
    h.update(f.read(1 << 20))                  # 1 MB of 16, then wait for the upgrade
    open(t + "/ready", "w").close()
    while not os.path.exists(t + "/go"):
        time.sleep(0.05)
    while True:
        b = f.read(1 << 16)
        if not b:
            break
        h.update(b)
print(h.hexdigest())
PY
READER=$!
for _ in $(seq 200); do
	[ -e "$T/ready" ] && break
	sleep 0.05
done
[ -e "$T/ready" ] || fail "the reader did not start"
expect_rc 0 "stork upgrade while the reader holds generation 1's file" \
	"$STORK" upgrade "${NODE[@]}" "$NGINX_URL"
out_has "upgrade says what changes" "upgrade app 1.0 -> 2.0" "generation 2"
[ "$(root_app)" = 2.0 ] || fail "a new open after the upgrade reads $(root_app), not 2.0"
pass "new opens see generation 2 at once (no signal to the daemon)"
PIN2=$(pinned)
[ "$PIN2" != "$PIN1" ] || fail "the upgrade left the slice's pin set as it was"
touch "$T/go"
wait "$READER" || fail "the reader failed: $(cat "$T/reader.out")"
[ "$(cat "$T/reader.out")" = "$(cat "$T/sum-1.0")" ] ||
	fail "the reader that opened generation 1 got other bytes ($(cat "$T/reader.out"))"
pass "the reader that opened generation 1 finished with generation 1's bytes"

# 2. rollback.
expect_rc 0 "stork rollback" "$STORK" rollback "${NODE[@]}"
[ "$(generation)" = 1 ] && [ "$(listed_app)" = 1.0 ] && [ "$(root_app)" = 1.0 ] ||
	fail "after rollback: generation $(generation), list $(listed_app), root $(root_app)"
grep -qx app "$T/slices/s.install" || fail "rollback: s.install is $(cat "$T/slices/s.install")"
[ "$(pinned)" = "$PIN1" ] || fail "after rollback the slice's pin set is not generation 1's"
pass "rollback returns to generation 1 (list, wanted list, root and the slice's pins)"
expect_rc 2 "a second rollback (generation 1 is the first)" "$STORK" rollback "${NODE[@]}"
err_has "the message says there is nothing before" "nothing to return to"

# 3. kill -9 of stork upgrade at random moments: the old or the new generation, whole.
mkapp 3.0
old=0
new=0
for i in $(seq 8); do
	before=$(generation)
	"$STORK" upgrade "${NODE[@]}" "$NGINX_URL" >/dev/null 2>&1 &
	pid=$!
	rand 400
	sleep "$(printf '0.%03d' "$R")"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	g=$(generation)
	v=$(listed_app)
	rv=$(root_app)
	[ "$rv" = "$v" ] || fail "kill -9 at ${R} ms: stork list says app $v, the root holds $rv"
	if [ "$g" = "$before" ]; then
		old=$((old + 1))
	else
		[ "$v" = 3.0 ] || fail "kill -9 at ${R} ms: a new generation $g with app $v"
		new=$((new + 1))
		expect_rc 0 "rollback for the next round" "$STORK" rollback "${NODE[@]}"
		[ "$(generation)" = "$before" ] || fail "rollback went to $(generation), not $before"
	fi
	fsck_clean "kill -9 of stork upgrade at ${R} ms: generation $g (app $v), store clean" "$STORE"
done
pass "8 kills of stork upgrade: $old left the old generation, $new the new one, none a mix"

# 4. kill -9 of the daemon during an upgrade; generations survive the restart.
"$STORK" upgrade "${NODE[@]}" "$NGINX_URL" >"$T/up.out" 2>&1 &
pid=$!
sleep 0.05
kill -9 "$MOUNT_PID"
wait "$pid" || true
fusermount3 -u -z "$MNT" 2>/dev/null || true
fsck_clean "after kill -9 of the daemon" "$STORE"
mount_bg "$MNT" "slices=$T/slices"
g=$(generation)
v=$(listed_app)
[ "$(root_app)" = "$v" ] || fail "after the daemon's restart: list says $v, root $(root_app)"
pass "kill -9 of the daemon during an upgrade: generation $g (app $v), the root agrees after a restart"
expect_rc 0 "stork upgrade after the restart" "$STORK" upgrade "${NODE[@]}" "$NGINX_URL"
[ "$(listed_app)" = 3.0 ] && [ "$(root_app)" = 3.0 ] || fail "after the upgrade: $(listed_app), root $(root_app)"
pass "the restarted daemon serves the newest generation (app 3.0)"

unmount_storkfs "$MNT" "$MOUNT_PID"
fsck_clean "the store is clean" "$STORE"
done_ok
