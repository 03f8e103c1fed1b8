#!/usr/bin/env bash
# The layering of contrib/HACKING.md ("Modules"), checked on the built libraries and on the
# sources:
# 1. The node links no publisher code. No global symbol that the repository writer
#    (verify/writer/, libstork_writer.a) or the importers (store/import/, libstork_import.a)
#    define is defined in or referenced by storkfs, the node's libraries (fs, fetch, store,
#    verify) or the node's commands of stork (libstork_cli.a: verify, ls, why, extract,
#    prefetch, fsck, status): only libstork_cli_publish.a (keygen, repo, publish) uses them.
# 2. A module includes another module's public header only: <module>/<module>.h, a header listed
#    in PUBLIC (verify/ has one public header per concern, verify/verify.h includes them all), or
#    a library's <dir>/<lib>/<lib>.h (a library is a directory below a module with a header named after it:
#    verify/writer/writer.h, store/import/import.h, fs/cli/cli.h). A library's other headers
#    stay inside it; of its own module's private headers a library uses only what is stated as
#    its contract (the writer: verify/trusted.h, verify/meta.h and verify/cjson.h, never
#    verify/internal.h or verify/client.h). And a module includes only the modules to its right: fs -> fetch ->
#    store -> verify.
# 3. JSON is verify/'s business: no file of fs/, fetch/ or store/ includes <jansson.h> (they use
#    verify/json.h), and neither does a public header of verify/, nor includes a private one.
#
# Environment (tests/meson.build): STORKFS, STORK, and
#   PUBLISHER_LIBS  the writer's and the importers' static libraries
#   NODE_LIBS       the node's static libraries (fs, fetch, store, verify, the node's commands)
. "$(dirname "$0")/lib.sh"

need nm awk grep sort comm

# verify/'s public headers besides verify/verify.h; its private ones (verify/cjson.h,
# verify/meta.h, verify/client.h, verify/trusted.h, verify/internal.h) are not listed.
PUBLIC=(verify/error.h verify/array.h verify/atomic.h verify/hash.h verify/key.h verify/text.h verify/name.h
	verify/manifest.h verify/tuf.h verify/policy.h verify/json.h verify/control.h)
WRITER_MAY_USE=(verify/trusted.h verify/meta.h verify/cjson.h)

top=$(cd "$STORK_TESTS/.." && pwd)
: "${PUBLISHER_LIBS:?set by tests/meson.build}" "${NODE_LIBS:?set by tests/meson.build}"
read -r -a publisher_libs <<<"$PUBLISHER_LIBS"
read -r -a node_libs <<<"$NODE_LIBS"
for f in "$STORKFS" "$STORK" "${publisher_libs[@]}" "${node_libs[@]}"; do
	[ -f "$f" ] || fail "$f: no such file (build first)"
done

# --- 1. symbols
# nm -g: global symbols only (a static helper of the node that shares a name is not a link).
globals() { nm -g "$@" 2>/dev/null | awk 'NF >= 2 { print $NF }' | sort -u; }
defined() { nm -g --defined-only "$@" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u; }

defined "${publisher_libs[@]}" >"$T/publisher"
for s in verify_repo_publish verify_repo_init store_import store_objwriter_new store_pack_write; do
	grep -qxF "$s" "$T/publisher" ||
		fail "the publisher libraries ($PUBLISHER_LIBS) do not define $s: the scan is broken or the code moved"
done
globals "$STORK" | matches -xF verify_repo_publish || fail "$STORK does not link the writer: the scan is broken"
globals "$STORKFS" | matches -xF fs_repo_open || fail "$STORKFS has no symbol fs_repo_open: the scan is broken"
pass "the writer and the importers define $(wc -l <"$T/publisher") global symbols; stork links them"

bad=()
for f in "$STORKFS" "${node_libs[@]}"; do
	globals "$f" | comm -12 - "$T/publisher" >"$T/hits"
	if [ -s "$T/hits" ]; then
		bad+=("$(basename "$f"): $(tr '\n' ' ' <"$T/hits")")
	fi
done
if [ ${#bad[@]} -gt 0 ]; then
	printf '# publisher symbols on the node side: %s\n' "${bad[@]}" >&2
	fail "the node side holds or references publisher code: ${bad[*]}"
fi
pass "storkfs and $(for f in "${node_libs[@]}"; do basename "$f"; done | tr '\n' ' ')hold and reference no symbol of the writer or the importers"

# --- 2. includes
cd "$top" || fail "$top: cannot enter the source tree"
modules=(fs fetch store verify) # the layering order: each uses only those after it
rank() {
	local i
	for i in "${!modules[@]}"; do
		[ "${modules[$i]}" = "$1" ] && echo "$i" && return
	done
	echo -1
}
libs=()
for h in fs/*/*.h fetch/*/*.h store/*/*.h verify/*/*.h; do
	[ -f "$h" ] || continue
	d=$(dirname "$h")
	[ "$(basename "$h" .h)" = "$(basename "$d")" ] && libs+=("$d")
done
# unit FILE: the library FILE is in, else its module
unit() {
	local l
	for l in "${libs[@]}"; do
		case $1 in "$l"/*)
			echo "$l"
			return
			;;
		esac
	done
	echo "${1%%/*}"
}
public() {
	local u
	printf '%s\n' "${PUBLIC[@]}" | matches -xF "$1" && return 0
	u=$(unit "$1")
	[ "$1" = "$u/$(basename "$u").h" ]
}

problems=()
nincludes=0
while IFS=: read -r file _ inc; do
	h=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$inc")
	[ -n "$h" ] || continue
	nincludes=$((nincludes + 1))
	mf=${file%%/*}
	mh=${h%%/*}
	[ "$(rank "$mh")" -ge 0 ] || continue # not a module's header
	uf=$(unit "$file")
	uh=$(unit "$h")
	if [ "$mf" != "$mh" ]; then
		if [ "$(rank "$mh")" -lt "$(rank "$mf")" ]; then
			problems+=("$file includes $h: $mf/ may only use modules to its right (fs -> fetch -> store -> verify)")
		elif ! public "$h"; then
			problems+=("$file includes $h, a private header of $mh/")
		fi
		continue
	fi
	[ "$uf" = "$uh" ] && continue
	public "$h" && continue
	if [ "$uh" != "$mh" ]; then
		problems+=("$file includes $h, a private header of the library $uh/")
	elif [ "$uf" = verify/writer ] && printf '%s\n' "${WRITER_MAY_USE[@]}" | matches -xF "$h"; then
		continue
	else
		problems+=("$file includes $h, a private header of $mh/ that the library $uf/ has no contract for")
	fi
done < <(grep -rn --include='*.c' --include='*.h' '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' fs fetch store verify)
[ "$nincludes" -ge 80 ] || fail "found only $nincludes #include \"...\" lines under fs/ fetch/ store/ verify/: the scan is broken"
if [ ${#problems[@]} -gt 0 ]; then
	printf '# %s\n' "${problems[@]}" >&2
	fail "${#problems[@]} include(s) cross a module's or a library's boundary (listed above)"
fi
grep -rlE '#[[:space:]]*include[[:space:]]*"verify/(internal|client)\.h"' verify/writer >"$T/w" || true
[ ! -s "$T/w" ] || fail "the writer includes verify/internal.h or verify/client.h: $(tr '\n' ' ' <"$T/w")"
pass "$nincludes includes checked: public headers only across modules (${libs[*]} as libraries), layering fs -> fetch -> store -> verify"

# --- 3. <jansson.h> outside verify/, and in verify/'s public headers
for h in "${PUBLIC[@]}" verify/verify.h; do
	[ -f "$h" ] || fail "$h: listed in PUBLIC but absent: update $0"
done
{
	grep -rlE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<jansson\.h>' --include='*.c' --include='*.h' fs fetch store
	grep -lE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<jansson\.h>' "${PUBLIC[@]}" verify/verify.h
} | sort >"$T/jansson" || true
[ ! -s "$T/jansson" ] || fail "these include <jansson.h>: $(tr '\n' ' ' <"$T/jansson")(JSON belongs to verify/: use verify/json.h)"
# A public header that includes a private one hands jansson (or the client's structs) over.
grep -lE '#[[:space:]]*include[[:space:]]*"verify/(cjson|meta|client|trusted|internal)\.h"' "${PUBLIC[@]}" verify/verify.h >"$T/pp" || true
[ ! -s "$T/pp" ] || fail "public headers of verify/ include its private ones: $(tr '\n' ' ' <"$T/pp")"
pass "no file of fs/ fetch/ store/ and no public header of verify/ includes <jansson.h>"

done_ok
