#!/usr/bin/env bash
# Crash safety: `stork publish` killed with SIGKILL at random moments never leaves a repository
# that fails to verify; a killed version is either fully published or absent; publishing works
# again afterwards.
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3
fetch_debs
KILLS=${STORK_CRASH_KILLS:-20}

# a big package: coreutils, 18 MB in 454 entries (many object commits and real compression
# work between them)
big=
for deb in "${DEBS[@]}"; do
	[ "$(deb_field "$deb" Package)" != coreutils ] || big=$deb
done
[ -n "$big" ] || fail "no coreutils .deb"
bigname=$(deb_field "$big" Package)
deb_extract "$big" "$T/ref"
echo "# crashing publishes of $bigname ($(stat -c %s "$big") bytes, $(find "$T/ref" -type f | wc -l) files)"

ms() { date +%s%3N; }

# how long one publish takes, on a throwaway repository (all objects new)
make_repo --in "$T/measure"
t0=$(ms)
publish "$bigname" 0 "$big" --quiet
dur=$(($(ms) - t0))
echo "# one publish takes ${dur} ms"
rm_rf "$T/measure"

make_repo
publish seed 1.0 "${DEBS[6]}" --quiet
listed() { # listed NAME VERSION
	"$STORK" ls --root "$ROOT" "$REPO" "$1" 2>/dev/null | cut -f1 | matches -xF -- "$2"
}

complete=0
absent=0
published=()
for i in $(seq 1 "$KILLS"); do
	version=1.$i
	# alternate: a fresh package name (all objects new) and a new version of the same name
	# (objects reused, only metadata written)
	if [ $((i % 2)) -eq 1 ]; then
		name=$bigname-$i
	else
		name=$bigname
	fi
	# one kill in each of KILLS even slices of the measured publish (and a tenth more), at a
	# random point of its slice: the first lands early whatever the draw (all of them drawn
	# from the whole span could land after the commit point)
	rand $((dur * 11 / 10 / KILLS + 1))
	delay=$(((i - 1) * dur * 11 / 10 / KILLS + R))
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" --quiet "$name" "$version" "$big" \
		>"$T/pub.out" 2>"$T/pub.err" &
	pid=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -KILL "$pid" 2>/dev/null || true
	set +e
	{ wait "$pid"; } 2>/dev/null # no "Killed" job message
	rc=$?
	set -e
	[ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || { cat "$T/pub.err" >&2; fail "publish $name $version exited $rc before the kill"; }

	run "$STORK" verify --root "$ROOT" "$REPO"
	if [ "$RC" -ne 0 ]; then
		_show_run
		fail "kill $i after ${delay} ms (publish exit $rc): the repository does not verify"
	fi
	if listed "$name" "$version"; then
		export_version "$name" "$version" "$T/exp"
		compare_tree "$T/ref" "$T/exp" || fail "kill $i: $name $version is listed but does not rebuild exactly"
		complete=$((complete + 1))
		published+=("$name $version")
	else
		[ "$rc" -ne 0 ] || fail "kill $i: publish of $name $version exited 0 but the version is not listed"
		absent=$((absent + 1))
	fi
	for nv in "${published[@]}"; do
		listed ${nv} || fail "kill $i: $nv, published before, is no longer listed"
	done
	echo "# kill $i after ${delay} ms: exit $rc, $name $version $(listed "$name" "$version" && echo published || echo absent)"
done
pass "after each of $KILLS kills the repository verifies, and each version is complete or absent ($complete complete, $absent absent)"
[ "$absent" -ge 1 ] || fail "no kill landed before the commit point: the test did not test anything"

# leftovers of killed writers are temporary files only
if find "$REPO" -type f ! -name '.*' | grep -vE "^$REPO/(metadata/([0-9]+\.[a-z0-9_-]+\.json|root\.json|timestamp\.json)|targets/[^/]+/[0-9a-f]{64}\.[^/]+\.(json|pack)|objects/[0-9a-f]{2}/[0-9a-f]{64}|site/(index|p/[^/]+)\.html)$"; then
	fail "killed publishes left files that are not repository files or .tmp-*"
fi
check_objects || fail "a killed publish left a broken object under its final name"
pass "killed publishes leave only valid objects and dot-named temporary files"

# a normal publish succeeds afterwards, also of a version that was killed
publish "$bigname" 2.0 "$big"
publish "$bigname-1" 1.1 "$big"
verify_ok "verify passes after the final publishes"
export_version "$bigname" 2.0 "$T/exp"
compare_tree "$T/ref" "$T/exp" || fail "$bigname 2.0 does not rebuild"
pass "publishing works after the crashes and the result rebuilds"

# the operator's refresh cleans up old temporary files
expect_rc 0 "repo refresh after the crashes" "$STORK" repo refresh "$REPO" --keys "$KEYS"
verify_ok "verify passes after refresh"

done_ok
