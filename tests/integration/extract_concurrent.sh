#!/usr/bin/env bash
# Two `stork extract` processes on the same store at once both succeed, byte-identical, and
# the store stays clean: the same version into two directories (both insert the same objects
# and make the same mode variants at the same moment), then two packages with the same files.
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3 nginx
fetch_debs
make_repo
deb=
for d in "${DEBS[@]}"; do
	[ "$(deb_field "$d" Package)" != perl-base ] || deb=$d
done
[ -n "$deb" ] || fail "no perl-base .deb"
version=$(deb_field "$deb" Version)
publish perl-base "$version" "$deb" --quiet
publish perl-copy 1.0 "$deb" --quiet
deb_extract "$deb" "$T/ref"
start_nginx "$REPO"

# together STORE NAME1 VERSION1 DEST1 NAME2 VERSION2 DEST2: both extracts at once
together() {
	local store=$1 pids=() k rc
	"$STORK" extract --root "$ROOT" --store "$store" "$NGINX_URL" "$2" "$3" "$4" \
		>"$T/c1.out" 2>"$T/c1.err" &
	pids+=($!)
	"$STORK" extract --root "$ROOT" --store "$store" "$NGINX_URL" "$5" "$6" "$7" \
		>"$T/c2.out" 2>"$T/c2.err" &
	pids+=($!)
	for k in 1 2; do
		if ! timeout 300 tail --pid="${pids[$((k - 1))]}" -f /dev/null; then
			kill -KILL "${pids[@]}" 2>/dev/null || true
			fail "the concurrent extract $k did not finish within 300 s"
		fi
		set +e
		wait "${pids[$((k - 1))]}"
		rc=$?
		set -e
		if [ "$rc" -ne 0 ]; then
			cat "$T/c$k.out" "$T/c$k.err" >&2
			fail "the concurrent extract $k exited $rc"
		fi
		grep -q '^extracted ' "$T/c$k.out" || fail "the concurrent extract $k printed no summary"
	done
}

for round in 1 2; do
	store=$T/store-$round
	together "$store" perl-base "$version" "$T/a$round" perl-base "$version" "$T/b$round"
	pass "round $round: two extracts of perl-base $version on one store at once both succeed"
	check "round $round: the first is identical to dpkg-deb -x" compare_tree "$T/ref" "$T/a$round"
	check "round $round: the second is identical to dpkg-deb -x" compare_tree "$T/ref" "$T/b$round"
	fsck_clean "round $round: the store is clean" "$store"
	check "round $round: every stored object holds what its name hashes" store_hashes_ok "$store"
	check "round $round: the first tree is hard links into the store" linked_to_store "$T/a$round" "$store"
	check "round $round: the second tree is hard links into the store" linked_to_store "$T/b$round" "$store"
done

store=$T/store-3
together "$store" perl-base "$version" "$T/a3" perl-copy 1.0 "$T/b3"
pass "two packages with the same files, extracted at once on one store, both succeed"
check "perl-base is identical to dpkg-deb -x" compare_tree "$T/ref" "$T/a3"
check "perl-copy is identical to dpkg-deb -x" compare_tree "$T/ref" "$T/b3"
fsck_clean "the store is clean" "$store"
check "every stored object holds what its name hashes" store_hashes_ok "$store"
done_ok
