#!/usr/bin/env bash
# Concurrent writers: publish processes started at once all end published (writers serialize),
# and the repository verifies.
. "$(dirname "$0")/lib.sh"

need dpkg-deb
fetch_debs
make_repo
keygen "$T/pub/bob.key"
expect_rc 0 "delegate to a second publisher" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" 'b*' 'z*'

# round ROUND DEB...: publish the debs at once, half with alice's key, half with bob's when
# the name is bob's; all must succeed.
round() {
	local r=$1 deb name version key i=0 pids=() names=() pid rc
	shift
	for deb in "$@"; do
		name=$(deb_field "$deb" Package)
		version=$(deb_field "$deb" Version)
		key=$PUBKEY
		case $name in b* | z*) [ $((i % 2)) -eq 0 ] && key=$T/pub/bob.key ;; esac
		"$STORK" publish "$REPO" --keys "$KEYS" --key "$key" --quiet "$name" "$version" "$deb" \
			>"$T/pub.$r.$i.out" 2>"$T/pub.$r.$i.err" &
		pids+=($!)
		names+=("$name $version")
		i=$((i + 1))
	done
	for i in "${!pids[@]}"; do
		set +e
		wait "${pids[$i]}"
		rc=$?
		set -e
		if [ "$rc" -ne 0 ]; then
			cat "$T/pub.$r.$i.err" >&2
			fail "round $r: concurrent publish of ${names[$i]} exited $rc"
		fi
	done
	for i in "${!names[@]}"; do
		set -- ${names[$i]}
		"$STORK" ls --root "$ROOT" "$REPO" "$1" | cut -f1 | matches -xF -- "$2" ||
			fail "round $r: ${names[$i]} is not listed after its publish exited 0"
	done
	pass "round $r: ${#pids[@]} concurrent publishes all ended published"
}

# the 16 smallest packages (keeps the test quick under ASan): four at once, twice, then eight
mapfile -t SMALL < <(ls -S -r "${DEBS[@]}" | head -n 16)
round 1 "${SMALL[@]:0:4}"
verify_ok
round 2 "${SMALL[@]:4:4}"
round 3 "${SMALL[@]:8:8}"
verify_ok "verify passes after all rounds"

# the same version of the same package from four processes: all exit 0, one version
for i in 1 2 3 4; do
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" --quiet same 1.0 "${DEBS[6]}" \
		>"$T/same.$i.out" 2>"$T/same.$i.err" &
done
failed=0
for pid in $(jobs -p); do
	wait "$pid" || failed=$((failed + 1))
done
[ "$failed" -eq 0 ] || fail "$failed of 4 identical concurrent publishes failed: $(cat "$T"/same.*.err)"
[ "$("$STORK" ls --root "$ROOT" "$REPO" same | sed 1d | wc -l)" -eq 1 ] || fail "the same version published four times is not listed once"
pass "four identical concurrent publishes: all succeed, one version"

# every package rebuilds
n=0
for deb in "${SMALL[@]}" "${DEBS[6]}"; do
	name=$(deb_field "$deb" Package)
	version=$(deb_field "$deb" Version)
	[ $n -lt 16 ] || name=same version=1.0
	rm_rf "$T/ref"
	deb_extract "$deb" "$T/ref"
	export_version "$name" "$version" "$T/exp"
	compare_tree "$T/ref" "$T/exp" || fail "$name $version does not rebuild"
	n=$((n + 1))
done
pass "all $n concurrently published versions rebuild exactly"
verify_ok "the repository verifies"

done_ok
