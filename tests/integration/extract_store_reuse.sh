#!/usr/bin/env bash
# The node store is shared: a second extract of a version, into another directory, sends no
# object request (counted in nginx's access log); two packages that share files fetch the
# shared objects once; extracted files on the store's file system are hard links to store
# objects (with each entry's own mode), and copies on another file system.
. "$(dirname "$0")/lib.sh"

need python3 nginx
make_repo
synth_tree "$T/a" 1
synth_tree "$T/b" 2
publish pa 1.0 "$T/a"
publish pb 1.0 "$T/b"
start_nginx "$REPO"
STORE=$T/store
objreq() { nginx_requests '"GET /objects/'; }

# distinct objects of a version, and of two together
distinct() { # distinct NAME VERSION...
	local n v
	while [ $# -gt 0 ]; do
		n=$1 v=$2
		shift 2
		manifest_hashes "$n" "$v"
	done | cut -d' ' -f1 | sort -u | wc -l
}
na=$(distinct pa 1.0)
nb=$(distinct pb 1.0)
nab=$(distinct pa 1.0 pb 1.0)
[ "$nab" -lt $((na + nb)) ] && [ "$nab" -gt "$na" ] || fail "test setup: pa and pb should share some objects ($na, $nb, $nab together)"

extract_ok "pa 1.0 extracts" --store "$STORE" "$NGINX_URL" pa 1.0 "$T/x1"
check "pa 1.0 is identical to its source" compare_tree "$T/a" "$T/x1"
[ "$(objreq)" -eq "$na" ] || fail "the first extract made $(objreq) object requests, want $na"
pass "the first extract requests each of its $na objects once"

# --- the same version again, into another directory
before=$(objreq)
extract_ok "pa 1.0 extracts again into another directory" --store "$STORE" "$NGINX_URL" pa 1.0 "$T/x2"
check "the second extract is identical to the source" compare_tree "$T/a" "$T/x2"
[ "$(objreq)" -eq "$before" ] || fail "the second extract sent $(($(objreq) - before)) object requests: $(grep objects "$NGINX_DIR/access.log" | tail -n +$((before + 1)) | head -3)"
[ "$X_FETCHED" -eq 0 ] || fail "the second extract says it fetched $X_FETCHED objects"
pass "a second extract of the same version sends no object request"

# --- a package sharing most files with pa
before=$(objreq)
extract_ok "pb 1.0 extracts" --store "$STORE" "$NGINX_URL" pb 1.0 "$T/y1"
check "pb 1.0 is identical to its source" compare_tree "$T/b" "$T/y1"
[ $(($(objreq) - before)) -eq $((nab - na)) ] ||
	fail "pb made $(($(objreq) - before)) object requests; only its $((nab - na)) objects that pa lacks are new"
dups=$(grep -oE '"GET /objects/[^ ]+' "$NGINX_DIR/access.log" | sort | uniq -d)
[ -z "$dups" ] || fail "objects requested more than once: $dups"
pass "two packages sharing files fetch each shared object once ($((nab - na)) new for pb)"

# --- hard links into the store, each with its entry's mode
for d in x1 x2 y1; do
	check "$d: every file is a hard link to a store object" linked_to_store "$T/$d" "$STORE"
done
[ "$X_LINKED" -eq "$X_FILES" ] && [ "$X_COPIED" -eq 0 ] ||
	fail "extract reports $X_LINKED linked and $X_COPIED copied of $X_FILES files"
pass "extract reports every file linked"
# small.txt (644) and dup.txt (640) share content but keep their own modes
[ "$(stat -c %a "$T/x1/usr/share/doc/pkg/small.txt")" = 644 ] &&
	[ "$(stat -c %a "$T/x1/var/lib/dup.txt")" = 640 ] || fail "files sharing an object lost their own modes"
[ "$(stat -c %i "$T/x1/usr/share/doc/pkg/small.txt")" = "$(stat -c %i "$T/x2/usr/share/doc/pkg/small.txt")" ] ||
	fail "the same file of two extracts is not the same inode"
pass "the same content under two modes keeps each mode; the same file in two trees is one inode"
"$STORK" extract --remove --store "$STORE" "$T/x2" || fail "stork extract --remove $T/x2 failed"
fsck_clean "removing an extracted tree leaves the store clean" "$STORE"
check "store objects hold what their names hash" store_hashes_ok "$STORE"

# --- another file system: copies
other=
for cand in /dev/shm /run /tmp; do
	if [ -d "$cand" ] && [ -w "$cand" ] && [ "$(stat -c %d "$cand")" != "$(stat -c %d "$T")" ]; then
		other=$cand
		break
	fi
done
if [ -n "$other" ]; then
	od=$(mktemp -d "$other/stork-extract-copy.XXXXXX")
	extract_ok "pa 1.0 extracts onto another file system ($other)" --store "$STORE" "$NGINX_URL" \
		pa 1.0 "$od/pa"
	ok=1
	compare_tree "$T/a" "$od/pa" || ok=0
	[ "$X_COPIED" -eq "$X_FILES" ] && [ "$X_LINKED" -eq 0 ] || ok=0
	[ -z "$(find "$od/pa" -type f -links +1)" ] || ok=0
	rm_rf "$od"
	[ "$ok" = 1 ] || fail "on another file system the files are not identical copies ($X_COPIED copied, $X_LINKED linked of $X_FILES)"
	pass "on another file system the files are identical copies"
else
	echo "# no writable directory on another file system: copies not checked"
fi
done_ok
