#!/usr/bin/env bash
# Content addressing: a new version that changes one file adds exactly one object; the same
# package under another name adds none; the numbers stork publish prints are right.
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3
fetch_debs
make_repo

# parse_publish: "published NAME VERSION: F files, B bytes; N new bytes in K new objects, R reused bytes"
parse_publish() {
	local re='^published ([^ ]+) ([^ ]+): ([0-9]+) files, ([0-9]+) bytes; ([0-9]+) new bytes in ([0-9]+) new objects, ([0-9]+) reused bytes( \(.*\))?$'
	local line
	line=$(printf '%s\n' "$OUT" | grep '^published ' | tail -n 1)
	[[ $line =~ $re ]] || fail "unexpected publish output: $OUT"
	P_NAME=${BASH_REMATCH[1]} P_VERSION=${BASH_REMATCH[2]} P_FILES=${BASH_REMATCH[3]}
	P_BYTES=${BASH_REMATCH[4]} P_NEW=${BASH_REMATCH[5]} P_NEWOBJ=${BASH_REMATCH[6]}
	P_REUSED=${BASH_REMATCH[7]}
}

# expect_stats NAME VERSION FILES BYTES NEW NEWOBJ REUSED
expect_stats() {
	local want="$1 $2 $3 $4 $5 $6 $7"
	local got="$P_NAME $P_VERSION $P_FILES $P_BYTES $P_NEW $P_NEWOBJ $P_REUSED"
	[ "$got" = "$want" ] || fail "publish numbers: got '$got', want '$want' (name version files bytes new newobjects reused)"
	pass "publish prints the right numbers for $1 $2: $P_FILES files, $P_BYTES bytes, $P_NEW new bytes in $P_NEWOBJ objects, $P_REUSED reused"
}

# files_and_bytes DIR: regular files and their total size.
files_and_bytes() {
	find "$1" -type f -printf '%s\n' | awk '{ n++; b += $1 } END { printf "%d %d\n", n, b }'
}

# unique_objects DIR: distinct file contents (objects) and their total size.
unique_objects() {
	python3 - "$1" <<'PY'
import hashlib, os, sys
seen = {}
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        p = os.path.join(d, f)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, 'rb') as fh:
                b = fh.read()
            seen[hashlib.sha256(b).hexdigest()] = len(b)
print(len(seen), sum(seen.values()))
PY
}

listing() {
	(cd "$REPO" && find . -type f ! -name '.*' | LC_ALL=C sort)
}

# --- v1: a directory with distinct file contents
src=$T/v1
mkdir -p "$src/bin" "$src/share/doc"
for i in $(seq 1 40); do
	printf 'file %d\n' "$i" >"$src/share/doc/f$i"
	head -c $((i * 997)) /dev/urandom >>"$src/share/doc/f$i"
done
printf '#!/bin/sh\necho v1\n' >"$src/bin/tool"
chmod 755 "$src/bin/tool"
ln -s tool "$src/bin/t"
read -r files bytes < <(files_and_bytes "$src")

objs0=$(count_objects)
listing >"$T/list0"
publish pkg 1.0 "$src"
parse_publish
expect_stats pkg 1.0 "$files" "$bytes" "$bytes" "$files" 0
objs1=$(count_objects)
[ $((objs1 - objs0)) -eq "$files" ] || fail "v1 added $((objs1 - objs0)) objects, want $files"
pass "v1 adds one object per distinct file ($files)"

# --- v2: one file changed
cp -a "$src" "$T/v2"
printf '#!/bin/sh\necho v2 is different\n' >"$T/v2/bin/tool"
size_changed=$(stat -c %s "$T/v2/bin/tool")
read -r files2 bytes2 < <(files_and_bytes "$T/v2")
listing >"$T/list1"
publish pkg 2.0 "$T/v2"
parse_publish
expect_stats pkg 2.0 "$files2" "$bytes2" "$size_changed" 1 $((bytes2 - size_changed))
objs2=$(count_objects)
[ $((objs2 - objs1)) -eq 1 ] || fail "v2 added $((objs2 - objs1)) objects, want exactly 1"
pass "v2 differing in one file adds exactly one object"

listing >"$T/list2"
comm -13 "$T/list1" "$T/list2" >"$T/added"
grep -v '^\./objects/' "$T/added" >"$T/added-meta" || true
grep -qE '^\./targets/pkg/[0-9a-f]{64}\.2\.0\.json$' "$T/added-meta" || fail "no manifest for pkg 2.0 added: $(cat "$T/added")"
if grep -vE '^\./targets/pkg/[0-9a-f]{64}\.2\.0\.(json|pack)$|^\./metadata/[0-9]+\.(snapshot|alice)\.json$' "$T/added-meta"; then
	fail "publishing v2 added files other than one object, the manifest, its version pack and metadata"
fi
[ "$(comm -23 "$T/list1" "$T/list2" | wc -l)" -eq 0 ] || fail "publishing v2 removed files: $(comm -23 "$T/list1" "$T/list2")"
pass "v2 adds only its object, its manifest, a role version and a snapshot version"

# --- the same content again: identical -> no-op; different content under an existing version -> refused
before=$(tree_sums "$REPO")
before_meta=$(meta_sums)
run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg 2.0 "$T/v2"
[ "$RC" -eq 0 ] || fail "republishing identical pkg 2.0 exited $RC: $ERR"
grep -qF 'pkg 2.0 is already published (identical)' "$T/out" || fail "republish output: $OUT"
[ "$before" = "$(tree_sums "$REPO")" ] || fail "republishing an identical version changed the served tree"
pass "republishing an identical version is a no-op that says so"

expect_rc 2 "republishing pkg 1.0 with different content is refused" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg 1.0 "$T/v2"
err_has "the refusal names the version" "pkg" "1.0"
[ "$before_meta" = "$(meta_sums)" ] || fail "a refused republish changed metadata or targets"
pass "a refused republish leaves metadata and targets as they were"

# --- a .deb under two names
hello=${DEBS[6]}
[ "$(deb_field "$hello" Package)" = hello ] || fail "DEBS[6] is not hello"
rm_rf "$T/hello"
deb_extract "$hello" "$T/hello"
read -r hfiles hbytes < <(files_and_bytes "$T/hello")
read -r hobjs hobjbytes < <(unique_objects "$T/hello")
o0=$(count_objects)
publish hello 2.10-3 "$hello"
parse_publish
# identical files inside one package are one object: its bytes count as new once
expect_stats hello 2.10-3 "$hfiles" "$hbytes" "$hobjbytes" "$hobjs" $((hbytes - hobjbytes))
o1=$(count_objects)
[ $((o1 - o0)) -eq "$hobjs" ] || fail "hello added $((o1 - o0)) objects, want $hobjs"
listing >"$T/list3"
publish hello-again 2.10-3 "$hello"
parse_publish
expect_stats hello-again 2.10-3 "$hfiles" "$hbytes" 0 0 "$hbytes"
[ "$(count_objects)" -eq "$o1" ] || fail "the same .deb under a second name added $(($(count_objects) - o1)) objects"
pass "the same .deb under a second name adds no object"

# objects are stored once, compressed, and named by the hash of their content
check_objects || fail "an object is not the zstd of the bytes its name hashes"
pass "every object is zstd of the content its name hashes"

verify_ok
export_version pkg 2.0 "$T/exp2"
compare_tree "$T/v2" "$T/exp2" || fail "pkg 2.0 does not rebuild"
export_version hello-again 2.10-3 "$T/exp-h"
compare_tree "$T/hello" "$T/exp-h" || fail "hello-again does not rebuild"
pass "deduplicated versions rebuild exactly"

done_ok
