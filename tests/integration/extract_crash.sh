#!/usr/bin/env bash
# Crash safety of the node side: `stork extract` of a real package (perl-base: 620 files,
# 11 MB) killed with SIGKILL at random moments. After each kill `stork fsck` finds the store
# clean, the destination is either absent or complete, and a rerun into the same destination
# completes byte-identical to dpkg-deb -x and leaves no temporary directory behind. Each run
# starts with a fresh store (fetching, inserting, making mode variants, linking) and is killed
# at a random moment within the time a whole extract took; runs that finished before their
# kill moment do not count, so 20 kills land in running extracts.
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3 nginx
KILLS=${STORK_CRASH_KILLS:-20}
fetch_debs
make_repo
deb=
for d in "${DEBS[@]}"; do
	[ "$(deb_field "$d" Package)" != perl-base ] || deb=$d
done
[ -n "$deb" ] || fail "no perl-base .deb"
version=$(deb_field "$deb" Version)
publish perl-base "$version" "$deb" --quiet
deb_extract "$deb" "$T/ref"
start_nginx "$REPO"

ms() { date +%s%3N; }

# how long a whole extract takes here
t0=$(ms)
extract_ok "a whole extract for timing" --store "$T/measure" "$NGINX_URL" perl-base "$version" "$T/m1"
cold=$(($(ms) - t0))
rm_rf "$T/measure" "$T/m1"
echo "# a whole extract takes ${cold} ms"

killed=0
finished=0
i=0
while [ "$killed" -lt "$KILLS" ]; do
	i=$((i + 1))
	[ "$i" -le $((KILLS * 3)) ] || fail "only $killed of $i extracts were still running at their kill moment"
	store=$T/store
	dest=$T/dest
	rm_rf "$store"
	rand "$cold"
	delay=$R
	# started directly (through a function bash would fork a subshell, and the kill would not
	# reach stork)
	"$STORK" extract --root "$ROOT" --store "$store" "$NGINX_URL" perl-base "$version" "$dest" \
		>"$T/x.out" 2>"$T/x.err" &
	pid=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -KILL "$pid" 2>/dev/null || true
	set +e
	{ wait "$pid"; } 2>/dev/null
	rc=$?
	set -e
	case $rc in
	137) killed=$((killed + 1)) ;;
	0) finished=$((finished + 1)) ;;
	*)
		cat "$T/x.err" >&2
		fail "run $i: extract exited $rc before the kill"
		;;
	esac
	what="run $i, killed after ${delay} ms (exit $rc)"
	echo "# $what"

	run "$STORK" fsck "$store"
	if [ "$RC" -ne 0 ] || ! grep -qxF "$store: clean" "$T/out" || [ -s "$T/err" ]; then
		_show_run
		fail "$what: stork fsck does not find the store clean"
	fi
	if [ -e "$dest" ]; then
		compare_tree "$T/ref" "$dest" || fail "$what: the destination exists but is not complete"
		rm_rf "$dest"
	fi
	extract_ok "$what: fsck clean, the destination absent or whole, and a rerun completes" \
		--store "$store" "$NGINX_URL" perl-base "$version" "$dest"
	compare_tree "$T/ref" "$dest" || fail "$what: the rerun is not identical to dpkg-deb -x"
	left=$(find "$T" -maxdepth 1 -name '.stork-extract-*' | head -3)
	[ -z "$left" ] || fail "$what: the rerun left temporary directories: $left"
	run "$STORK" fsck "$store"
	if [ "$RC" -ne 0 ] || [ -s "$T/err" ]; then
		_show_run
		fail "$what: stork fsck does not find the store clean after the rerun"
	fi
	store_hashes_ok "$store" || fail "$what: a stored object does not hold what its name hashes"
	rm_rf "$dest"
done
pass "after each of $KILLS kills the rerun is identical, leaves no temporary directory and a clean store ($finished more runs finished before their kill moment)"
pass "after every kill stork fsck found the store clean"
done_ok
