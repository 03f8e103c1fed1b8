#!/usr/bin/env bash
# The map for newcomers (contrib/HACKING.md, section "How the code is laid out") names only what
# exists: every function written there as `name()` is defined in a .c file under fs/, fetch/,
# verify/ or store/, and every path in backticks that starts with a top-level directory is in
# the source tree (a glob must match something). A rename that leaves the map behind fails here,
# naming each function and path that is missing.
. "$(dirname "$0")/lib.sh"

need awk find

top=$(cd "$STORK_TESTS/.." && pwd)
doc=$top/contrib/HACKING.md
[ -f "$doc" ] || fail "$doc is missing"

# --- the section: from its heading to the next heading of the same level
awk '/^## How the code is laid out[[:space:]]*$/ { on = 1; next }
     on && /^## / { exit }
     on' "$doc" >"$T/map"
[ -s "$T/map" ] || fail "contrib/HACKING.md has no section \"## How the code is laid out\""
for walk in "### Walk 1" "### Walk 2"; do
	grep -q "^$walk" "$T/map" || fail "contrib/HACKING.md, \"How the code is laid out\": no \"$walk\""
done
pass "contrib/HACKING.md has the section \"How the code is laid out\" with its two walks"

# Every `...` span of the section, one a line (joined first: a span may cross a line break).
# shellcheck disable=SC2016
tr '\n' ' ' <"$T/map" | grep -o '`[^`]*`' | tr -d '`' >"$T/spans" || true
grep -E '^[A-Za-z_][A-Za-z0-9_]*\(\)$' "$T/spans" | sed 's/()$//' | sort -u >"$T/names" || true
grep -E '^(fs|fetch|verify|store|tests|contrib)(/|$)' "$T/spans" | sort -u >"$T/paths" || true
nnames=$(wc -l <"$T/names")
npaths=$(wc -l <"$T/paths")
# A map that lost its functions or paths (a heading renamed, a paragraph cut) is no map.
[ "$nnames" -ge 30 ] || fail "the map names only $nnames functions as \`name()\` (expected at least 30)"
[ "$npaths" -ge 30 ] || fail "the map names only $npaths paths in backticks (expected at least 30)"
for dir in fs/ fs/cli/ fetch/ verify/ store/ tests/ contrib/; do
	grep -qxF "$dir" "$T/paths" || fail "the map has no paragraph about \`$dir\` (the path in backticks)"
done
pass "the map names $nnames functions and $npaths paths, and every module"

# --- functions defined in the modules' .c files
# A definition starts in column 0 with the return type and the name followed by '(' on one line
# (the house style), or with the name alone when clang-format put the return type on the line
# before; the signature's lines end at a '{' (a definition), not at a ';' (a declaration).
# shellcheck disable=SC2016
find "$top/fs" "$top/fetch" "$top/verify" "$top/store" -name '*.c' -type f -print0 |
	xargs -0 awk '
	FNR == 1 { cand = "" }
	cand != "" && /^\{/ { print cand; cand = ""; next }
	cand != "" && /;[[:space:]]*$/ { cand = "" }
	/^[A-Za-z_]/ && match($0, /^([A-Za-z_][^;=(]*[ *])?[A-Za-z_][A-Za-z0-9_]*\(/) {
		name = substr($0, 1, RLENGTH - 1)
		sub(/.*[ *]/, "", name)
		cand = name
		if ($0 ~ /;[[:space:]]*$/)
			cand = ""
		else if ($0 ~ /\)[[:space:]]*\{[[:space:]]*$/) {
			print cand
			cand = ""
		}
	}' | sort -u >"$T/defined"
[ "$(wc -l <"$T/defined")" -ge 500 ] ||
	fail "found only $(wc -l <"$T/defined") function definitions under fs/ fetch/ verify/ store/: the scan is broken"

missing=()
while read -r name; do
	grep -qxF "$name" "$T/defined" || missing+=("$name()")
done <"$T/names"
if [ ${#missing[@]} -gt 0 ]; then
	fail "contrib/HACKING.md, \"How the code is laid out\": no .c file under fs/ fetch/ verify/ store/ defines ${missing[*]}"
fi
pass "each of the $nnames functions the map names is defined in a module's .c file"

# --- paths
gone=()
while read -r path; do
	compgen -G "$top/$path" >/dev/null || gone+=("$path")
done <"$T/paths"
if [ ${#gone[@]} -gt 0 ]; then
	fail "contrib/HACKING.md, \"How the code is laid out\": no such path in the source tree: ${gone[*]}"
fi
pass "each of the $npaths paths the map names exists"

done_ok
