#!/usr/bin/env bash
# The command line: --help everywhere, exit 2 for bad usage, key file modes, repo init, name
# and version checks, stork ls output.
. "$(dirname "$0")/lib.sh"

need python3

# --- --help: exit 0, usage on stdout
for cmd in "" keygen "repo init" "repo delegate" "repo refresh" publish verify ls; do
	# shellcheck disable=SC2086
	expect_rc 0 "stork $cmd --help" "$STORK" $cmd --help
	grep -qi 'usage' "$T/out" || { _show_run; fail "stork $cmd --help prints no usage on stdout"; }
	[ -z "$cmd" ] || grep -qF -- "${cmd##* }" "$T/out" || fail "stork $cmd --help does not mention $cmd"
done
pass "every command's --help exits 0 with usage on stdout"

# --- bad usage: exit 2 with a message on stderr
bad_usage() {
	expect_rc 2 "$1" "${@:2}"
	[ -n "$ERR" ] || fail "$1: nothing on stderr"
}
bad_usage "no command" "$STORK"
bad_usage "unknown command" "$STORK" frobnicate
bad_usage "unknown repo subcommand" "$STORK" repo frobnicate
bad_usage "unknown option" "$STORK" verify --no-such-option
bad_usage "keygen without a file" "$STORK" keygen
bad_usage "keygen with two files" "$STORK" keygen "$T/a.key" "$T/b.key"
bad_usage "repo init without --keys" "$STORK" repo init "$T/r0"
bad_usage "publish without arguments" "$STORK" publish
bad_usage "publish with a missing SOURCE" "$STORK" publish "$T/r0" --keys "$T/k0" --key "$T/a.key" name 1.0
bad_usage "verify without --root" "$STORK" verify "$T/r0"
bad_usage "ls without --root" "$STORK" ls "$T/r0"
bad_usage "--expires with a bad role" "$STORK" repo init "$T/r1" --keys "$T/k1" --expires nosuchrole=60
bad_usage "--expires with a bad number" "$STORK" repo init "$T/r1" --keys "$T/k1" --expires snapshot=soon
bad_usage "--max-size that is not a number" "$STORK" publish "$T/r0" --keys "$T/k0" --key "$T/a.key" --max-size lots n 1 "$T"
bad_usage "verify --at that is not a number" "$STORK" verify --at tomorrow --root "$T/x" "$T/r0"
[ ! -e "$T/r1" ] && [ ! -e "$T/k1" ] || fail "a refused repo init left $T/r1 or $T/k1 behind"
pass "refused commands leave nothing behind"

# --- keygen
mkdir -p "$T/k"
(umask 000 && "$STORK" keygen "$T/k/alice.key" >"$T/out" 2>"$T/err") || fail "stork keygen: $(cat "$T/err")"
grep -qxE '[0-9a-f]{64}' "$T/out" || fail "keygen did not print a key id alone on a line: $(cat "$T/out")"
id=$(grep -oE '[0-9a-f]{64}' "$T/out")
[ "$(stat -c %a "$T/k/alice.key")" = 600 ] || fail "private key mode $(stat -c %a "$T/k/alice.key"), want 600 (even with umask 000)"
[ -f "$T/k/alice.key.pub" ] || fail "no alice.key.pub"
mode=$(stat -c %a "$T/k/alice.key.pub")
[ $((8#$mode & 8#022)) -eq 0 ] || fail "public key file is group/world-writable: $mode"
grep -q 'BEGIN PRIVATE KEY' "$T/k/alice.key" || fail "private key file is not PEM PKCS#8"
grep -q 'BEGIN PUBLIC KEY' "$T/k/alice.key.pub" || fail "public key file is not PEM"
! grep -q PRIVATE "$T/k/alice.key.pub" || fail "the .pub file holds a private key"
pass "keygen: key id printed, KEYFILE 0600, KEYFILE.pub public PEM"
# the key id is SHA-256 of the TUF key object's canonical JSON
want=$(openssl pkey -pubin -in "$T/k/alice.key.pub" -outform DER | tail -c 32 | python3 -c '
import hashlib, json, sys
pub = sys.stdin.buffer.read().hex()
o = {"keytype": "ed25519", "keyval": {"public": pub}, "scheme": "ed25519"}
print(hashlib.sha256(json.dumps(o, sort_keys=True, separators=(",", ":")).encode()).hexdigest())')
[ "$id" = "$want" ] || fail "key id $id is not the SHA-256 of the canonical key object ($want)"
pass "keygen prints the TUF key id"
cp "$T/k/alice.key" "$T/alice.copy"
run "$STORK" keygen "$T/k/alice.key"
[ "$RC" -eq 2 ] || [ "$RC" -eq 3 ] || { _show_run; fail "keygen over an existing key exited $RC"; }
cmp -s "$T/k/alice.key" "$T/alice.copy" || fail "keygen overwrote an existing key"
err_has "the refusal names the file" "alice.key"
chmod 644 "$T/k/alice.key"
mkdir -p "$T/src"
printf 'x\n' >"$T/src/x"

# --- repo init
expect_rc 2 "repo init refuses KEYDIR inside REPODIR" "$STORK" repo init "$T/r2" --keys "$T/r2/keys"
err_has "the refusal names the key directory" "keys"
[ ! -e "$T/r2/keys/root.key" ] || fail "repo init wrote a key inside the repository"
run "$STORK" repo init "$T/repo" --keys "$T/keys"
[ "$RC" -eq 0 ] || { _show_run; fail "repo init"; }
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ] || fail "repo init printed more than the root path: $OUT"
[ "$OUT" -ef "$T/repo/metadata/1.root.json" ] || fail "repo init printed '$OUT', not the path of metadata/1.root.json"
pass "repo init prints the path of metadata/1.root.json"
for k in root targets snapshot timestamp; do
	[ "$(stat -c %a "$T/keys/$k.key")" = 600 ] || fail "$k.key is not 0600"
done
[ "$(stat -c %a "$T/keys")" = 700 ] || fail "KEYDIR is not 0700"
if find "$T/repo" -name '*.key' -o -name '*PRIVATE*' | matches . || grep -rl 'PRIVATE KEY' "$T/repo"; then
	fail "the served tree holds a private key"
fi
pass "repo init: four 0600 keys in a 0700 KEYDIR, none in the served tree"
expect_rc 2 "repo init refuses an existing repository" "$STORK" repo init "$T/repo" --keys "$T/keys2"
ROOT=$T/repo/metadata/1.root.json
REPO=$T/repo
KEYS=$T/keys
PUBKEY=$T/k/alice.key

# a group-readable key is refused (the publisher must chmod 600)
expect_rc 0 "repo delegate" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$PUBKEY.pub" '*'
run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" p 1 "$T/src"
[ "$RC" -ne 0 ] || fail "publish accepted a 0644 private key"
err_has "the refusal says to chmod 600" "alice.key" "600"
chmod 600 "$PUBKEY"

# --- names and versions
# names_char C: the last stderr names the character C quoted ('C', "C") or by its code.
names_char() {
	local c=$1 hex
	hex=$(printf '%02x' "'$c")
	grep -qiE -- "['\"\`][$c]['\"]|0x$hex|\\\\x$hex|U\\+00$hex" "$T/err"
}
# bad_name DESC NAME VERSION [char C | word W]...: refused with exit 2 naming each C or W
bad_name() {
	expect_rc 2 "$1 is refused" "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" "$2" "$3" "$T/src"
	local desc=$1
	shift 3
	while [ $# -gt 0 ]; do
		case $1 in
		char) names_char "$2" || { _show_run; fail "$desc: the error does not name the character '$2'"; } ;;
		word) grep -qE -- "$2" "$T/err" || { _show_run; fail "$desc: the error does not say '$2'"; } ;;
		esac
		shift 2
	done
	pass "$desc: exit 2, the error names what is wrong"
}
before=$(tree_sums "$REPO")
bad_name "name a/b" "a/b" 1.0 char /
bad_name "name .hidden" ".hidden" 1.0 char .
bad_name "name +plus" "+plus" 1.0 char +
bad_name "version latest" "pkg" latest word latest
bad_name "version 1/2" "pkg" "1/2" char /
bad_name "empty name" "" 1.0 word 'empty|name'
bad_name "name with a space" "a b" 1.0 char ' '
bad_name "version ../x" "pkg" "../x" char .
bad_name "name of 129 bytes" "$(printf 'a%.0s' $(seq 129))" 1.0 word '128|129|long'
expect_rc 2 "a control character in a name is refused" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" "$(printf 'a\001b')" 1.0 "$T/src"
grep -qE '\\x01|0x01|\\001|\^A|U\+0001|\\u0001' "$T/err" || { _show_run; fail "the error does not name the control character"; }
! LC_ALL=C grep -q $'\x01' "$T/err" || fail "the error prints the raw control character"
pass "a control character in a name: exit 2, the error names it escaped"
expect_rc 2 "a control character in a version is refused" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg "$(printf '1\0332')" "$T/src"
grep -qE '\\x1b|0x1b|\\033|\^\[|U\+001[bB]|\\u001b' "$T/err" || { _show_run; fail "the error does not name the escape character"; }
expect_rc 2 "a role name that is a top-level role is refused" \
	"$STORK" repo delegate "$REPO" --keys "$KEYS" --name snapshot "$PUBKEY.pub" 'x'
expect_rc 2 "a role name with '/' is refused" \
	"$STORK" repo delegate "$REPO" --keys "$KEYS" --name 'a/b' "$PUBKEY.pub" 'x'
expect_rc 2 "a pattern with '/' is refused" \
	"$STORK" repo delegate "$REPO" --keys "$KEYS" "$PUBKEY.pub" 'a/*'
[ "$before" = "$(tree_sums "$REPO")" ] || fail "refused commands changed the repository"
pass "refused names leave the repository unchanged"

# --- publish output and stork ls
run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg 1.9 "$T/src"
[ "$RC" -eq 0 ] || { _show_run; fail "publish pkg 1.9"; }
grep -qE '^published pkg 1\.9: 1 files, 2 bytes; [0-9]+ new bytes in [0-9]+ new objects, [0-9]+ reused bytes( \(.*\))?$' "$T/out" ||
	fail "publish output: $OUT"
[ -z "$ERR" ] || fail "publish printed on stderr though it is not a tty: $ERR"
pass "publish prints its summary line and no progress when stderr is not a tty"
run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" --quiet pkg 1.9~rc1 "$T/src"
[ "$RC" -eq 0 ] || fail "publish --quiet"
[ -z "$OUT$ERR" ] || fail "publish --quiet printed: $OUT $ERR"
pass "publish --quiet prints nothing"
printf 'yy\n' >>"$T/src/x"
ln -s x "$T/src/y"
publish pkg 1.10 "$T/src" --quiet
publish other 0.1 "$T/src" --quiet
publish aardvark 2:1.0-1 "$T/src" --quiet

expect_rc 0 "stork ls" "$STORK" ls --root "$ROOT" "$REPO"
[ "$OUT" = "$(printf 'PACKAGE\naardvark\nother\npkg')" ] ||
	fail "stork ls lists '$OUT', want a header and aardvark other pkg"
pass "stork ls prints a header and the package names sorted"
expect_rc 0 "stork ls pkg" "$STORK" ls --root "$ROOT" "$REPO" pkg
# files as publish counts them: pkg 1.10 holds x, y -> x and a directory: 2 entries, 1 file
want=$(printf 'VERSION\tROLE\tKEY ID\tBYTES\tFILES\n1.9~rc1\talice\t%s\t2\t1\n1.9\talice\t%s\t2\t1\n1.10\talice\t%s\t5\t1' \
	"${id:0:16}" "${id:0:16}" "${id:0:16}")
[ "$OUT" = "$want" ] || fail "stork ls pkg printed
$OUT
want (version, role, key id, size, files)
$want"
pass "stork ls NAME: a header, then versions in dpkg order with role, key id, size and files"
publish_files=$("$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" pkg 1.11 "$T/src" |
	sed -n 's/^published pkg 1.11: \([0-9]*\) files,.*/\1/p')
ls_files=$("$STORK" ls --root "$ROOT" "$REPO" pkg | awk -F'\t' '$1 == "1.11" { print $5 }')
[ -n "$publish_files" ] && [ "$publish_files" = "$ls_files" ] ||
	fail "stork publish counted '$publish_files' files, stork ls '$ls_files'"
pass "stork ls counts the files stork publish counted ($ls_files)"
expect_rc 0 "stork ls with a file:// URL" "$STORK" ls --root "$ROOT" "file://$REPO" aardvark
[ "$(sed 1d "$T/out" | cut -f1)" = "2:1.0-1" ] || fail "stork ls aardvark: $OUT"
expect_rc 0 "verify prints one line" "$STORK" verify --root "$ROOT" "$REPO"
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ] || fail "verify printed more than one line"
grep -qE '^verified .+: 3 packages, 6 versions, [0-9]+ objects, [0-9]+ bytes$' "$T/out" || fail "verify output: $OUT"
pass "verify prints 'verified REPO: 3 packages, 6 versions, O objects, B bytes'"

# --- errors name things
expect_rc 2 "publish of a missing source" "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" q 1 "$T/nope.tar"
err_has "the error names the missing source" "nope.tar"
grep -qE '^stork publish: ' "$T/err" || fail "error lines do not start with 'stork publish: ': $ERR"
expect_rc 2 "an unsupported source format" "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" q 1 "$ROOT"
err_has "the error names the source" "1.root.json"
run "$STORK" verify --root "$T/nope.json" "$REPO"
[ "$RC" -eq 2 ] || [ "$RC" -eq 3 ] || fail "verify with a missing root file exited $RC"
err_has "the error names the missing root file" "nope.json"

done_ok
