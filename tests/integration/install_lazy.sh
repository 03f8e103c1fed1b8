#!/usr/bin/env bash
# Lazy installs (fs/README.md "Installing"): a repository of real Debian packages (python3's
# closure as apt computes it for an empty system, the fixture of resolve_debs), storkfs mounted
# without -f with one slice, nginx. `stork install --slice s python3` reads metadata only: the
# access log shows no object request. Then python3 -c 'import json, sqlite3; print(42)' runs in
# bwrap with the slice's root bound as / (with /proc, /dev, a /tmp mounted on its empty
# mount points), and only the objects it opens are
# fetched: the objects requested are counted against the closure's, the bytes against the
# closure's objects and .debs, and each object requested is one the slice's status counts as
# fetched. A second run fetches nothing more.
. "$(dirname "$0")/lib.sh"

need apt-get dpkg-deb python3 nginx bwrap
need_fuse

# --- python3's closure as apt installs it on an empty system (as resolve_debs) ----------------
: >"$T/empty-status"
apt_set() {
	apt-get -s --no-install-recommends -o Dir::State::status="$T/empty-status" install "$@" \
		2>"$T/apt.err" | awk '/^Inst /{ v = $3; gsub(/[()]/, "", v); print $2, v }' | sort
}
apt_set python3 >"$T/apt-python3"
if [ ! -s "$T/apt-python3" ]; then
	apt-get update -q >"$T/apt.log" 2>&1 || true
	apt_set python3 >"$T/apt-python3"
fi
[ -s "$T/apt-python3" ] || fail "apt-get -s install python3 chose nothing: $(cat "$T/apt.err")"
DIR=$STORK_TEST_CACHE/debs-resolve
mkdir -p "$DIR"
debfile() { # NAME VERSION: the downloaded .deb (apt-get download writes ':' as %3a)
	compgen -G "$DIR/${1}_$(sed 's/:/%3a/' <<<"$2")_*.deb" | head -n 1
}
missing=()
while read -r p v; do
	[ -n "$(debfile "$p" "$v")" ] || missing+=("$p=$v")
done <"$T/apt-python3"
if [ ${#missing[@]} -gt 0 ]; then
	(cd "$DIR" && apt-get download -q "${missing[@]}") >"$T/apt.log" 2>&1 || {
		tail -20 "$T/apt.log" >&2
		fail "apt-get download ${missing[*]} failed"
	}
fi
make_repo
debs_bytes=0
while read -r p v; do
	f=$(debfile "$p" "$v")
	publish "$p" "$v" "$f" --quiet --no-pack # python3 opens files one by one: no pack needed
	debs_bytes=$((debs_bytes + $(stat -c %s "$f")))
done <"$T/apt-python3"
NPKG=$(wc -l <"$T/apt-python3")
NOBJ=$(find "$REPO/objects" -type f | wc -l)
OBJ_BYTES=$(find "$REPO/objects" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
pass "published python3's closure: $NPKG packages, $NOBJ objects ($OBJ_BYTES bytes), .debs $debs_bytes bytes"
start_nginx "$REPO"

mkdir -p "$T/slices"
echo 'trust * delegated' >"$T/slices/s.policy"
MNT=$T/mnt
STORE=$T/store
mkdir -p "$MNT"
_MOUNTS+=("$MNT")
timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,timeout=60,slices=$T/slices" "$NGINX_URL" \
	"$MNT" 2>"$T/mount.err" || {
	cat "$T/mount.err" >&2
	fail "storkfs did not mount $MNT"
}
SFS_PID=$(status_field "$MNT" pid)
SR=$MNT/.slices/s/root

# objects_requested: GET /objects/ lines in nginx's log; object_bytes: their bytes sent.
objects_requested() { nginx_requests '"GET /objects/'; }
object_bytes() {
	awk '$7 ~ /^\/objects\// { s += $10 } END { print s + 0 }' "$NGINX_DIR/access.log"
}

t0=$(date +%s.%N)
expect_rc 0 "stork install --slice s python3" "$STORK" install --slices "$T/slices" --slice s \
	--root "$ROOT" --store "$STORE" "$NGINX_URL" python3
t1=$(date +%s.%N)
out_has "the whole closure" "generation 1: $NPKG packages"
[ "$(objects_requested)" -eq 0 ] ||
	fail "stork install requested objects: $(grep '/objects/' "$NGINX_DIR/access.log" | head -3)"
pass "stork install python3: $NPKG packages in $(echo "$t1 - $t0" | bc) s, no object requested ($(nginx_requests '"GET /targets/') manifests)"

# The container's /: the slice's root as it is (it has empty dev/, proc/, tmp/ to mount on),
# read-only, with /proc, /dev and /tmp of its own.
[ -d "$SR/proc" ] && [ -d "$SR/dev" ] && [ -d "$SR/tmp" ] ||
	fail "the slice's root has no proc/, dev/ or tmp/ to mount on: $(ls "$SR" | tr '\n' ' ')"
BWRAP=(bwrap --unshare-all --die-with-parent --ro-bind "$SR" / --proc /proc --dev /dev --tmpfs /tmp)
run "${BWRAP[@]}" /usr/bin/python3 -c 'import json, sqlite3; print(42)'
t2=$(date +%s.%N)
[ "$RC" -eq 0 ] && [ "$OUT" = 42 ] || {
	_show_run
	fail "python3 in bwrap on the slice's root did not print 42"
}
N1=$(objects_requested)
B1=$(object_bytes)
[ "$N1" -gt 0 ] && [ "$N1" -lt "$NOBJ" ] || fail "python3 fetched $N1 of $NOBJ objects"
fetched=$(xattr "$MNT/.slices/s" user.storkfs.status | python3 -c 'import json, sys; print(json.load(sys.stdin)["objects_fetched"])')
[ "$fetched" -eq "$N1" ] || fail "nginx served $N1 objects, the slice counts $fetched opens that fetched"
pass "python3 -c 'import json, sqlite3; print(42)' in bwrap on the slice's root printed 42, $(echo "$t2 - $t0" | bc) s after stork install began"
echo "# objects fetched: $N1 of $NOBJ ($(python3 -c "print(f'{$N1/$NOBJ:.3f}')")); bytes fetched: $B1 = $(python3 -c "print(f'{$B1/$OBJ_BYTES:.3f}')") of the closure's objects ($OBJ_BYTES), $(python3 -c "print(f'{$B1/$debs_bytes:.3f}')") of its .debs ($debs_bytes)"
pass "only what python3 opens is fetched: $N1 of $NOBJ objects, $B1 of $OBJ_BYTES bytes"

expect_rc 0 "python3 again" "${BWRAP[@]}" /usr/bin/python3 -c 'import json, sqlite3; print(42)'
[ "$(objects_requested)" -eq "$N1" ] || fail "the second run fetched $(($(objects_requested) - N1)) objects"
pass "a second run fetches nothing"

unmount_storkfs "$MNT" "$SFS_PID"
fsck_clean "the store is clean" "$STORE"
done_ok
