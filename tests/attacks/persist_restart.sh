#!/usr/bin/env bash
# Trusted versions persist (issue 5: "restart and remount cannot be rolled back"): a node store
# trusts the repository at its newest state (timestamp, snapshot, targets and alice's role all
# newer than in an earlier state). The mirror then serves that whole earlier state, every file
# validly signed. A fresh `stork extract` process refuses it as a rollback; a storkfs mount
# stopped and remounted on the same store refuses it too and shows the newer state it trusted
# (pkg 1.0 and 2.0, bob-tool, latest -> 2.0, genuine bytes), never the older one, also after
# SIGHUP. The trusted state is unchanged throughout.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse
make_repo
synth_tree "$T/v1" 1
synth_tree "$T/v2" 2
synth_tree "$T/b1" 3
publish pkg 1.0 "$T/v1"
save_state old
keygen "$T/pub/bob.key"
expect_rc 0 "delegate bob-* to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" 'bob-*'
expect_rc 0 "bob publishes bob-tool 1.0" "$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" bob-tool 1.0 "$T/b1"
publish pkg 2.0 "$T/v2"
save_state new
for r in timestamp snapshot targets alice; do
	case $r in
	timestamp) o=$(meta_version "$T/states/old/metadata/timestamp.json") n=$(meta_version "$T/states/new/metadata/timestamp.json") ;;
	*) o=$(REPO=$T/states/old latest_meta $r) n=$(REPO=$T/states/new latest_meta $r) o=${o%%.*} n=${n%%.*} ;;
	esac
	[ "$o" -lt "$n" ] || fail "test setup: $r is not newer in the new state ($o, $n)"
done
WWW=$T/www
STORE=$T/store
MNT=$T/mnt
serve_state new "$WWW"
start_nginx "$WWW"

# versions: "pkg VERSIONS -> LATEST; top-level NAMES" of the mount (bounded)
versions() {
	echo "pkg $(timeout 30 ls "$MNT/pkg" | tr '\n' ' ')-> $(timeout 30 readlink "$MNT/pkg/latest"); $(timeout 30 ls "$MNT" | tr '\n' ' ')"
}
want="pkg 1.0 2.0 latest -> 2.0; bob-tool pkg "

extract_same "genuine: pkg 2.0" "$T/v2" --store "$STORE" "$NGINX_URL" pkg 2.0 "$T/x1"
mount_storkfs "$MNT" "store=$STORE,timeout=30,refresh=3600" "$NGINX_URL"
[ "$(versions)" = "$want" ] || fail "the mount shows '$(versions)', want '$want'"
check "mount: pkg/2.0 is genuine" compare_content "$T/v2" "$MNT/pkg/2.0"
check "mount: bob-tool/1.0 is genuine" compare_content "$T/b1" "$MNT/bob-tool/1.0"
unmount_storkfs "$MNT"
save_trusted "$STORE"
[ "$(trusted_version "$STORE" alice)" = "$(n=$(REPO=$T/states/new latest_meta alice); echo "${n%%.*}")" ] ||
	fail "the store does not trust alice's newest role"

# --- the mirror rolls everything back
serve_state old "$WWW"
refused "restart: a new stork extract refuses the rolled-back repository" --store "$STORE" \
	"$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the timestamp and the rollback" "metadata/timestamp.json" "older than the trusted version"
assert_unchanged "restart: trusted state unchanged" "$STORE"

# --- remount on the same store
"$STORKFS" -f -o "root=$ROOT,store=$STORE,timeout=30,refresh=3600" "$NGINX_URL" "$MNT" 2>"$T/remount.log" &
SFS_PID=$!
_SFS_LOGS[$SFS_PID]=$T/remount.log
_MOUNTS+=("$MNT")
for _ in $(seq 300); do
	is_mounted "$MNT" && break
	kill -0 "$SFS_PID" 2>/dev/null || break
	sleep 0.1
done
if is_mounted "$MNT"; then
	got=$(versions)
	[ "$got" = "$want" ] || fail "remount: the mount shows '$got', want the trusted state '$want'"
	pass "remount: the mount shows the newer state it trusted: $got"
	check "remount: pkg/2.0 is genuine" compare_content "$T/v2" "$MNT/pkg/2.0"
	check "remount: pkg/1.0 is genuine" compare_content "$T/v1" "$MNT/pkg/1.0"
	grep -q 'older than the trusted version' "$T/remount.log" || {
		cat "$T/remount.log" >&2
		fail "remount: the log does not report the rollback"
	}
	pass "remount: the log reports the rollback: $(grep 'older than the trusted' "$T/remount.log" | head -n 1)"
	n=$(grep -c 'older than the trusted version' "$T/remount.log")
	kill -HUP "$SFS_PID"
	for _ in $(seq 100); do
		[ "$(grep -c 'older than the trusted version' "$T/remount.log")" -gt "$n" ] && break
		sleep 0.2
	done
	[ "$(grep -c 'older than the trusted version' "$T/remount.log")" -gt "$n" ] ||
		fail "remount: after SIGHUP no new refusal in the log within 20 s"
	[ "$(versions)" = "$want" ] || fail "remount, after SIGHUP: the mount shows '$(versions)'"
	pass "remount, after SIGHUP: refused again, the mount still shows '$want'"
	unmount_storkfs "$MNT"
else
	# refusing to mount is allowed, with an error that says why
	wait "$SFS_PID" || true
	grep -q 'older than the trusted version' "$T/remount.log" || {
		cat "$T/remount.log" >&2
		fail "remount: storkfs exited without mounting and without naming the rollback"
	}
	pass "remount: storkfs refuses to mount the rolled-back repository, naming the rollback"
fi
assert_unchanged "remount: trusted state unchanged" "$STORE"

# the genuine mirror is back: everything works from the trusted state
serve_state new "$WWW"
extract_same "genuine again: bob-tool 1.0" "$T/b1" --store "$STORE" "$NGINX_URL" bob-tool 1.0 "$T/x3"
assert_unchanged "genuine again: trusted state as before" "$STORE"
done_ok
