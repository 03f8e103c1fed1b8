#!/usr/bin/env bash
# stork extract over HTTP from a real nginx on loopback: a synthetic tree with every kind of
# entry, and real Debian packages, come out byte-identical to their sources (paths, types,
# modes, symlink targets, contents; the .debs compared to dpkg-deb -x), each distinct object
# fetched exactly once
# (the small objects of a version with many of them in its pack).
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3 nginx
fetch_debs
make_repo

# unique_hashes NAME VERSION: distinct objects of the version
unique_hashes() {
	manifest_hashes "$1" "$2" | cut -d' ' -f1 | sort -u | wc -l
}

synth_tree "$T/src"
publish synth 1.0 "$T/src"
start_nginx "$REPO"
STORE=$T/store

extract_ok "synth 1.0 extracts over http" --store "$STORE" "$NGINX_URL" synth 1.0 "$T/dest"
check "synth 1.0 over http is identical to its source" compare_tree "$T/src" "$T/dest"
want=$(unique_hashes synth 1.0)
[ "$X_FETCHED" -eq "$want" ] || fail "extract says $X_FETCHED objects fetched, the manifest has $want distinct ones"
got=$(nginx_requests '"GET /objects/')
[ "$got" -eq "$want" ] || fail "nginx served $got object requests, want one per distinct object ($want)"
pass "each distinct object is requested from nginx once ($want)"
[ "$(nginx_requests '" (200|404) ' )" -eq "$(wc -l <"$NGINX_DIR/access.log")" ] ||
	fail "nginx answered requests with statuses other than 200/404: $(grep -vE '" (200|404) ' "$NGINX_DIR/access.log" | head -3)"
pass "every request was answered 200 (or 404 for the next root version)"

# real packages: hello (small, executables), tzdata (many small files and symlinks)
for want_pkg in hello tzdata; do
	deb=
	for d in "${DEBS[@]}"; do
		[ "$(deb_field "$d" Package)" != "$want_pkg" ] || deb=$d
	done
	[ -n "$deb" ] || fail "no .deb for $want_pkg"
	version=$(deb_field "$deb" Version)
	publish "$want_pkg" "$version" "$deb" --quiet
	rm_rf "$T/ref"
	deb_extract "$deb" "$T/ref"
	before=$(nginx_requests '"GET /objects/')
	extract_ok "$want_pkg $version extracts over http" --store "$STORE" "$NGINX_URL" \
		"$want_pkg" "$version" "$T/dest-$want_pkg"
	check "$want_pkg over http is identical to dpkg-deb -x" compare_tree "$T/ref" "$T/dest-$want_pkg"
	n=$(($(nginx_requests '"GET /objects/') - before))
	# Small objects come in the version's pack when it has one (at least 16 of them).
	[ "$n" -le "$X_FETCHED" ] || fail "$want_pkg: nginx served $n object requests, extract fetched $X_FETCHED"
	[ "$X_FILES" -eq "$(find "$T/ref" -type f | wc -l)" ] ||
		fail "$want_pkg: extract reports $X_FILES files, dpkg-deb -x made $(find "$T/ref" -type f | wc -l)"
	pass "$want_pkg: $X_FILES files, $X_FETCHED objects fetched, $n object requests besides the pack"
done

fsck_clean "the store is clean afterwards" "$STORE"
check "every stored object holds the content its name hashes" store_hashes_ok "$STORE"
done_ok
