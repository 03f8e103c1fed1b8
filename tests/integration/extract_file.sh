#!/usr/bin/env bash
# stork extract from a repository on the local file system, given as a file:// URL and as a
# plain directory path (in a directory whose name has a space): byte-identical to the source,
# the .deb to dpkg-deb -x.
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3
fetch_debs
make_repo --in "$T/local repo"

synth_tree "$T/src"
publish synth 1.0 "$T/src"
hello=
for d in "${DEBS[@]}"; do
	[ "$(deb_field "$d" Package)" != hello ] || hello=$d
done
[ -n "$hello" ] || fail "no hello .deb"
hv=$(deb_field "$hello" Version)
publish hello "$hv" "$hello" --quiet
deb_extract "$hello" "$T/ref-hello"

url="file://${REPO// /%20}"
extract_ok "synth 1.0 extracts from $url" --store "$T/store" "$url" synth 1.0 "$T/dest"
check "synth 1.0 from file:// is identical to its source" compare_tree "$T/src" "$T/dest"
[ "$X_FETCHED" -eq "$(manifest_hashes synth 1.0 | cut -d' ' -f1 | sort -u | wc -l)" ] ||
	fail "extract fetched $X_FETCHED objects, not one per distinct object"
pass "one fetch per distinct object from file://"
extract_ok "hello $hv extracts from $url" --store "$T/store" "$url" hello "$hv" "$T/dest-hello"
check "hello from file:// is identical to dpkg-deb -x" compare_tree "$T/ref-hello" "$T/dest-hello"

extract_ok "synth 1.0 extracts from the directory path" --store "$T/store2" "$REPO" synth 1.0 \
	"$T/dest2"
check "synth 1.0 from a directory path is identical to its source" compare_tree "$T/src" "$T/dest2"
[ "$X_FETCHED" -gt 0 ] || fail "extract into a new store fetched nothing"
fsck_clean "the first store is clean" "$T/store"
fsck_clean "the second store is clean" "$T/store2"
done_ok
