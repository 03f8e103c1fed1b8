#!/usr/bin/env bash
# The manual pages and the bash completion, as `meson install` installs them: `man stork`,
# `man storkfs` and `man 5 storkfs-policy` print their pages from the installed tree, groff (and
# mandoc, when installed) finds nothing to warn about, the completion completes commands,
# repo's subcommands, options and file names. And nothing drifts: every command of `stork
# --help` has its subsection in stork(1), every --option of `stork COMMAND --help` is named
# in its command's subsection and described in an entry, every option of storkfs (fs/README.md's
# option table and `storkfs --help`) has its entry in storkfs(8), every directive of the policy
# format (verify/README.md) has its entry in storkfs-policy(5), and the completion's lists are
# exactly what the tool's --help prints.
. "$(dirname "$0")/lib.sh"

need man meson awk
: "${STORK:?}" "${STORKFS:?}"
if [ -z "${STORK_BUILD_ROOT:-}" ] || [ ! -d "$STORK_BUILD_ROOT/meson-private" ]; then
	fail "STORK_BUILD_ROOT (tests/meson.build sets it) is not a meson build directory: '${STORK_BUILD_ROOT:-}'"
fi
top=$(cd "$STORK_TESTS/.." && pwd)
src_man=$top/contrib/man

# --- meson install into a scratch root
meson install --no-rebuild --destdir "$T/dest" -C "$STORK_BUILD_ROOT" >"$T/install.log" 2>&1 ||
	{
		tail -20 "$T/install.log" >&2
		fail "meson install --destdir failed"
	}
page=$(find "$T/dest" -path '*/man1/stork.1' -type f | head -1)
[ -n "$page" ] || fail "meson install installed no man1/stork.1 (install_man in meson.build)"
mandir=$(dirname "$(dirname "$page")")
for f in man8/storkfs.8 man5/storkfs-policy.5; do
	[ -f "$mandir/$f" ] || fail "meson install installed no $f next to man1/stork.1 in $mandir"
done
completion=$(find "$T/dest" -path '*/bash-completion/completions/stork' -type f | head -1)
[ -n "$completion" ] || fail "meson install installed no bash-completion/completions/stork"
pass "meson install puts stork.1, storkfs.8, storkfs-policy.5 in ${mandir#"$T/dest"} and the completion in $(dirname "${completion#"$T/dest"}")"

# --- man finds and prints each page from the installed tree
for sp in "1 stork STORK" "8 storkfs STORKFS" "5 storkfs-policy STORKFS-POLICY"; do
	read -r sec name title <<<"$sp"
	run env MANPATH="$mandir" MANWIDTH=80 man -P cat "$sec" "$name"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "MANPATH=$mandir man $sec $name: exit $RC"
	}
	head -1 "$T/out" | grep -q "^$title($sec) " || fail "man $sec $name: first line is not the $title($sec) header: $(head -1 "$T/out")"
	for h in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
		grep -qx "$h" "$T/out" || fail "man $sec $name prints no $h section"
	done
	grep -qE "^ +$name - " "$T/out" || fail "man $sec $name: NAME does not read \"$name - ...\""
	found=$(env MANPATH="$mandir" man -w "$sec" "$name")
	[ "$found" = "$mandir/man$sec/$name.$sec" ] || fail "man -w $sec $name found $found, not the installed page"
done
pass "man stork, man storkfs and man 5 storkfs-policy print the installed pages (NAME, SYNOPSIS, DESCRIPTION, SEE ALSO)"

# --- lint: groff's warnings (all of them), and mandoc's when it is installed
for f in "$src_man"/stork.1 "$src_man"/storkfs.8 "$src_man"/storkfs-policy.5; do
	MANWIDTH=80 man --warnings=w -l "$f" >/dev/null 2>"$T/warn" || fail "man -l $f failed: $(cat "$T/warn")"
	[ ! -s "$T/warn" ] || fail "groff warns about ${f#"$top"/}: $(head -5 "$T/warn")"
	if command -v mandoc >/dev/null 2>&1; then
		mandoc -T lint -W warning "$f" >"$T/warn" 2>&1 || fail "mandoc -T lint: ${f#"$top"/}: $(head -5 "$T/warn")"
	fi
done
pass "groff -ww finds nothing to warn about in the three pages$(command -v mandoc >/dev/null 2>&1 && echo ", nor mandoc -T lint")"

# --- stork(1) covers every command and option the tool prints
roff() { printf '%s' "${1//-/\\-}"; } # --no-pack -> \-\-no\-pack, as the page writes it
stork1=$src_man/stork.1
# the .SS headings of the COMMANDS section
awk '/^\.SH / { on = ($2 == "COMMANDS") } on && /^\.SS / { sub(/^\.SS +/, ""); gsub(/"/, ""); print }' \
	"$stork1" >"$T/headings"
"$STORK" --help >"$T/help" || fail "stork --help failed"
"$STORK" repo --help >"$T/repo_help" || fail "stork repo --help failed"
awk '/^  [a-z]/ { print $1 }' "$T/help" | sort -u >"$T/cmds"
{
	awk '$1 == "repo" { print $2 }' <(sed -n 's/^  //p' "$T/help")
	grep -oE 'stork repo [a-z]+' "$T/repo_help" | awk '{ print $3 }'
} | sort -u >"$T/repo_cmds"
[ "$(wc -l <"$T/cmds")" -ge 10 ] || fail "found only $(wc -l <"$T/cmds") commands in stork --help: the parse is broken"
[ "$(wc -l <"$T/repo_cmds")" -ge 6 ] || fail "found only $(wc -l <"$T/repo_cmds") repo subcommands in stork --help and stork repo --help"
{
	grep -vx repo "$T/cmds"
	sed 's/^/repo /' "$T/repo_cmds"
} | sort >"$T/want_headings"
sort "$T/headings" >"$T/have_headings"
absent=$(comm -23 "$T/want_headings" "$T/have_headings" | paste -sd, -)
[ -z "$absent" ] || fail "contrib/man/stork.1 has no subsection (.SS) under COMMANDS for: $absent"
extra=$(comm -13 "$T/want_headings" "$T/have_headings" | paste -sd, -)
[ -z "$extra" ] || fail "contrib/man/stork.1 documents commands stork --help does not list: $extra"
pass "stork(1) has a subsection for each of the $(wc -l <"$T/want_headings") commands of stork --help and stork repo --help, and no other"

# section CMD: the text of every .SS subsection whose heading is CMD or starts with "CMD "
section() {
	C=$1 awk '/^\.S[HS] / { h = $0; sub(/^\.S[HS] +/, "", h); gsub(/"/, "", h); c = ENVIRON["C"]
	                  on = /^\.SS / && (h == c || index(h, c " ") == 1) }
	          on' "$stork1"
}
# tag OPT FILE: OPT (roff-escaped) starts the line after a .TP, in .B/.BI/.BR
# (awk reads OPT from the environment: -v would take its backslashes for escapes)
tagged() {
	O=$1 awk 'prev == ".TP" { w = $2; gsub(/"/, "", w); if ($1 ~ /^\.(B|BI|BR)$/ && w == ENVIRON["O"]) f = 1 }
	          { prev = $0 } END { exit !f }' "$2"
}
nopts=0
: >"$T/all_opts"
while read -r cmd; do
	"$STORK" "$cmd" --help >"$T/cmd_help" || fail "stork $cmd --help failed"
	# its options: those of the usage lines (up to the first blank line) and those that start
	# a line (the option list), not those the prose mentions; and --help
	{
		awk 'NR == 1 { u = 1 } !NF { u = 0 } u { print; next } /^ *--[a-z]/ { print $1 }' \
			"$T/cmd_help" | grep -oE -- '--[a-z][a-z0-9-]*' || true
		echo --help
	} | sort -u >"$T/opts.$cmd"
	section "$cmd" >"$T/section"
	[ -s "$T/section" ] || fail "stork.1: no text under the subsection of $cmd"
	while read -r opt; do
		nopts=$((nopts + 1))
		echo "$opt" >>"$T/all_opts"
		tagged "$(roff "$opt")" "$stork1" ||
			fail "stork.1 has no entry (.TP then .B/.BI/.BR $(roff "$opt")) for $opt of stork $cmd"
		[ "$opt" = --help ] || grep -qF -- "$(roff "$opt")" "$T/section" ||
			fail "stork.1: the subsection of $cmd does not name $opt (stork $cmd --help prints it)"
	done <"$T/opts.$cmd"
done <"$T/cmds"
grep -oE -- '--[a-z][a-z0-9-]*' "$T/help" >>"$T/all_opts"
for opt in $(sort -u "$T/all_opts") --version; do
	tagged "$(roff "$opt")" "$stork1" || fail "stork.1 has no entry for $opt (stork --help or a command's --help prints it)"
done
[ "$nopts" -ge 40 ] || fail "found only $nopts options in the commands' --help: the parse is broken"
# and no entry for an option that no longer exists
awk 'prev == ".TP" && $1 ~ /^\.(B|BI|BR)$/ { w = $2; gsub(/"/, "", w); if (w ~ /^\\-\\-/) print w }
     { prev = $0 }' "$stork1" | sed 's/\\-/-/g' | sort -u >"$T/doc_opts"
stale=$(comm -23 "$T/doc_opts" <( (sort -u "$T/all_opts"; echo --version) | sort -u) | paste -sd, -)
[ -z "$stale" ] || fail "stork.1 describes options no --help of stork prints: $stale"
pass "stork(1) names each of the $nopts options of the commands' --help in its command's subsection and describes each in an entry, and no other"

# --- storkfs(8) covers every option of fs/README.md's table and of storkfs --help
storkfs8=$src_man/storkfs.8
# shellcheck disable=SC2016
awk '/^\| option \| default \| meaning \|/ { on = 1; next } on && !/^\|/ { exit } on && !/^\|---/' \
	"$top/fs/README.md" | sed 's/\\|/<bar>/g' | awk -F'|' '{ print $2 }' | grep -o '`[^`]*`' |
	tr -d '`' | sed 's/=.*//' | sort -u >"$T/fs_readme"
[ "$(wc -l <"$T/fs_readme")" -ge 15 ] || fail "found only $(wc -l <"$T/fs_readme") options in fs/README.md's option table: the parse is broken"
"$STORKFS" --help >"$T/fs_help" || fail "storkfs --help failed"
awk '/^FUSE options:/ { exit } 1' "$T/fs_help" | grep -oE '^ +(-o [a-z_]+|-[a-zA-Z])\b' |
	sed 's/^ *//; s/^-o //' | sort -u >"$T/fs_opts"
[ "$(wc -l <"$T/fs_opts")" -ge 15 ] || fail "found only $(wc -l <"$T/fs_opts") options in storkfs --help: the parse is broken"
for opt in $(sort -u "$T/fs_readme" "$T/fs_opts"); do
	# root -> ".BI root= FILE"; allow_setuid -> ".B allow_setuid"; -f -> ".B \-f"
	O=$(roff "$opt") awk 'prev == ".TP" && $1 ~ /^\.(B|BI|BR)$/ {
			w = $2; gsub(/"/, "", w); o = ENVIRON["O"]
			if (w == o || index(w, o "=") == 1) f = 1 }
		{ prev = $0 } END { exit !f }' "$storkfs8" ||
		fail "storkfs.8 has no entry (.TP then .B/.BI $(roff "$opt")...) for $opt (fs/README.md's table or storkfs --help)"
done
pass "storkfs(8) has an entry for each of the $(sort -u "$T/fs_readme" "$T/fs_opts" | wc -l) options of fs/README.md's table and storkfs --help"

# --- storkfs-policy(5) has an entry for each directive of verify/README.md's format
awk '/^### Format/ { on = 1; next } on && /^```/ { if (++n == 2) exit; next } on && n == 1' \
	"$top/verify/README.md" | grep -v '^#' >"$T/directives" || true
[ "$(wc -l <"$T/directives")" -ge 7 ] || fail "found only $(wc -l <"$T/directives") directives in verify/README.md's \"### Format\" block: the parse is broken"
MANWIDTH=200 man -l "$src_man/storkfs-policy.5" |
	awk '/^[A-Z]/ { on = ($0 == "DIRECTIVES"); next } on && /^       [^ ]/ { sub(/^ +/, ""); print }' >"$T/entries"
[ -s "$T/entries" ] || fail "storkfs-policy.5 has no entries under DIRECTIVES"
while read -r line; do
	# an entry is the directive's syntax: the README's line up to its description
	found=0
	while read -r entry; do
		case "$line" in "$entry" | "$entry "*) found=1 ;; esac
	done <"$T/entries"
	[ "$found" = 1 ] || fail "storkfs-policy.5 has no entry under DIRECTIVES for \"$line\" (verify/README.md, \"### Format\")"
done <"$T/directives"
pass "storkfs-policy(5) has an entry for each of the $(wc -l <"$T/directives") directives of verify/README.md's format"

# --- the installed completion
# comp WORD...: the completions of `WORD...` (the last word is the one completed), one a line
comp() {
	bash -c '. "$1" || exit 1; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _stork || exit 1
		[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$@" |
		sort
}
# comp_is WANTFILE WORD...: the completions are exactly the lines of WANTFILE
comp_is() {
	local want=$1
	shift
	comp "$@" >"$T/got" || fail "completing '$*' failed"
	sort -u "$want" >"$T/want"
	cmp -s "$T/want" "$T/got" ||
		fail "completing '$*': missing: $(comm -23 "$T/want" "$T/got" | paste -sd' ' -);" \
			"extra: $(comm -13 "$T/want" "$T/got" | paste -sd' ' -)"
}
comp_is "$T/cmds" stork ""
pass "stork <TAB> completes every command of stork --help and nothing else"
printf 'extract\n' >"$T/w"
comp_is "$T/w" stork ext
printf -- '--store\n--store-max\n' >"$T/w"
comp_is "$T/w" stork extract --st
printf -- '--help\n--version\n' >"$T/w"
comp_is "$T/w" stork --
pass "stork ext<TAB> -> extract, stork extract --st<TAB> -> --store --store-max, stork --<TAB> -> --help --version"
comp_is "$T/repo_cmds" stork repo ""
comp_is "$T/repo_cmds" stork repo --keys "$T/keys" ""
comp_is "$T/repo_cmds" stork repo --keys = "$T/keys" ""
pass "stork repo <TAB> completes its $(wc -l <"$T/repo_cmds") subcommands (also after --keys KEYDIR and --keys=KEYDIR)"
while read -r cmd; do
	comp_is "$T/opts.$cmd" stork "$cmd" --
done <"$T/cmds"
# the options that take an argument (printed as "--opt WORD" in --help) are those whose next
# word the completion takes for their argument (_stork_argument), and no others
while read -r cmd; do
	"$STORK" "$cmd" --help | grep -oE -- '--[a-z][a-z0-9-]* [A-Z]' | awk '{ print $1 }' |
		sort -u >"$T/args.$cmd" || true
	mapfile -t opts <"$T/opts.$cmd"
	bash -c '. "$1" || exit 1; shift; for o; do echo "$o $(_stork_argument "$o")"; done' _ \
		"$completion" "${opts[@]}" >"$T/kinds" || fail "sourcing $completion failed"
	while read -r opt kind; do
		if grep -qxF -- "$opt" "$T/args.$cmd"; then
			[ -n "$kind" ] || fail "completion: stork $cmd --help prints $opt with an argument, but _stork_argument $opt says it takes none"
		else
			[ -z "$kind" ] || fail "completion: _stork_argument $opt says it takes an argument ($kind), but stork $cmd --help prints none"
		fi
	done <"$T/kinds"
done <"$T/cmds"
# each repo subcommand's options are options of repo
while read -r sub; do
	comp stork repo "$sub" -- >"$T/got"
	extra=$(comm -13 "$T/opts.repo" "$T/got" | paste -sd, -)
	[ -z "$extra" ] || fail "completing 'stork repo $sub --': $extra are not options of stork repo --help"
done <"$T/repo_cmds"
pass "stork COMMAND --<TAB> completes exactly the options of stork COMMAND --help, for each command, and knows which take an argument"

# file names for file arguments, directories for directory arguments
mkdir -p "$T/files/keys.d"
: >"$T/files/root.json"
: >"$T/files/key.pem"
printf '%s\n' "$T/files/root.json" >"$T/w"
comp_is "$T/w" stork ls --root "$T/files/ro"
comp_is "$T/w" stork ls --root = "$T/files/ro" # --root=... as readline splits it
printf '%s\n' "$T/files/keys.d" >"$T/w"
comp_is "$T/w" stork publish --keys "$T/files/k"
printf '%s\n' "$T/files/key.pem" "$T/files/keys.d" >"$T/w"
comp_is "$T/w" stork keygen "$T/files/k"
printf '%s\n' "$T/files/root.json" >"$T/w"
comp_is "$T/w" stork extract --root "$T/files/root.json" --store "$T/files/keys.d" "$T/files/r"
printf 'snapshot=\n' >"$T/w"
comp_is "$T/w" stork repo init "$T/r" --expires s
pass "file arguments complete file names (--root FILE, KEYFILE, URL...), --keys directories, --expires roles"

done_ok
