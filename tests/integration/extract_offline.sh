#!/usr/bin/env bash
# Offline: with every mirror down, a version whose objects are all in the store extracts fully
# from the metadata verified earlier (the command warns that it is offline); a version with an
# object missing from the store fails with an error naming the file and the object; a version
# whose manifest was never fetched fails naming the version. Nothing is left behind.
. "$(dirname "$0")/lib.sh"

need python3 nginx
make_repo
synth_tree "$T/a" 1
synth_tree "$T/b" 2
mkdir -p "$T/b/opt"
echo "only in b" >"$T/b/opt/only-b"
synth_tree "$T/c" 3
publish pa 1.0 "$T/a"
publish pb 1.0 "$T/b"
publish pc 1.0 "$T/c"
start_nginx "$REPO"
free_port
mirrors=("$NGINX_URL" "http://127.0.0.1:$FREE_PORT")
STORE=$T/store

extract_ok "online: pa 1.0 extracts" --store "$STORE" "${mirrors[@]}" pa 1.0 "$T/a1"
# pb's manifest and all but one of its objects reach the store: its only-b object is missing
# from the mirror during that extract
read -r h_only _ < <(manifest_hashes pb 1.0 | awk '$3 == "opt/only-b"')
p_only=$(object_path "$h_only")
mv "$REPO/$p_only" "$T/held"
extract --store "$STORE" "${mirrors[@]}" pb 1.0 "$T/b1"
[ "$RC" -ne 0 ] || fail "test setup: pb extracted although its object $p_only was missing"
mv "$T/held" "$REPO/$p_only"
[ ! -e "$T/b1" ] || fail "a failed extract left its destination $T/b1"
pass "online: pb 1.0 fails while its object $p_only is missing, leaving no destination"

stop_nginx
curl -s -o /dev/null "$NGINX_URL/metadata/timestamp.json" && fail "test setup: nginx still answers"
echo "# every mirror is down: ${mirrors[*]}"

extract_ok "offline: pa 1.0, whose objects are all stored, extracts" --store "$STORE" \
	"${mirrors[@]}" pa 1.0 "$T/a2"
err_has "offline: the extract warns that it is offline" "offline"
check "offline: pa 1.0 is identical to its source" compare_tree "$T/a" "$T/a2"
[ "$X_FETCHED" -eq 0 ] || fail "offline: the extract says it fetched $X_FETCHED objects"

extract --store "$STORE" "${mirrors[@]}" pb 1.0 "$T/b2"
if [ "$RC" -eq 0 ] || [ "$RC" -eq 124 ]; then
	_show_run
	fail "offline: pb 1.0 with an object missing from the store should fail (exit $RC)"
fi
pass "offline: pb 1.0, one object missing from the store, fails (exit $RC)"
err_has "offline: the error names the missing file and its object" "opt/only-b" "$h_only"
[ ! -e "$T/b2" ] || fail "offline: the failed extract left its destination $T/b2"
left=$(find "$T" -maxdepth 1 -name '.stork-extract-*' | head -3)
[ -z "$left" ] || fail "offline: the failed extract left temporary directories: $left"
pass "offline: the failed extract leaves nothing behind"

extract --store "$STORE" "${mirrors[@]}" pc 1.0 "$T/c2"
if [ "$RC" -eq 0 ] || [ "$RC" -eq 124 ]; then
	_show_run
	fail "offline: pc 1.0, never fetched, should fail (exit $RC)"
fi
pass "offline: pc 1.0, whose manifest was never fetched, fails (exit $RC)"
err_has "offline: the error names the version" "pc" "1.0"
[ ! -e "$T/c2" ] || fail "offline: the failed extract left its destination $T/c2"

fsck_clean "the store is clean" "$STORE"
done_ok
