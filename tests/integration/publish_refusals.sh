#!/usr/bin/env bash
# stork publish refuses what would mislead later: versions dpkg refuses (an epoch that is not a
# number, empty or too big, nothing after the epoch's colon, an empty upstream version or
# revision; dpkg --compare-versions is the reference), and names, versions and file paths with
# bidirectional controls (U+202A-U+202E, U+2066-U+2069: "Trojan Source"), each with a message
# naming the rule or the code point. What dpkg accepts (even with a warning) is published.
. "$(dirname "$0")/lib.sh"

need dpkg python3
make_repo
mkdir -p "$T/src/usr/share/doc"
echo hello >"$T/src/usr/share/doc/readme"

# dpkg_refuses VERSION: whether dpkg reports a syntax error (not only a warning) for VERSION.
dpkg_refuses() {
	local said
	said=$(dpkg --compare-versions "$1" eq "$1" 2>&1 || true)
	[[ $said == *"dpkg: error:"* ]]
}

i=0
for v in 'a:b:c' '1:' ':1' '99999999999:1' '2147483648:1' '1:-2' '1.0-'; do
	dpkg_refuses "$v" || fail "dpkg accepts '$v': the reference disagrees with this test"
	i=$((i + 1))
	expect_rc 2 "stork publish refuses version '$v', as dpkg does" \
		"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" "pkg$i" "$v" "$T/src"
	err_has "the refusal of '$v' names the version and the rule" "version \"$v\""
	[ ! -e "$REPO/targets/pkg$i" ] || fail "a refused version left targets/pkg$i behind"
	case $v in
	*[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]:*)
		err_has "an epoch past INT_MAX is named as such" "above 2147483647"
		;;
	esac
done

for v in '2147483647:1' '1:b:c' '0:1.0-1' '1.0~rc1+b2'; do
	! dpkg_refuses "$v" || fail "dpkg refuses '$v': the reference disagrees with this test"
	i=$((i + 1))
	publish "pkg$i" "$v" "$T/src"
	pass "stork publish takes version '$v', which dpkg takes"
done

# Bidirectional controls: in a package name, a version, a file name.
RLO=$(printf '\u202e') LRI=$(printf '\u2066')
expect_rc 2 "stork publish refuses a package name with U+202E" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" "evil${RLO}gpj" 1.0 "$T/src"
err_has "the refusal names the code point" "U+202E RIGHT-TO-LEFT OVERRIDE" "package name"
expect_rc 2 "stork publish refuses a version with U+2066" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" bidi "1.0${LRI}" "$T/src"
err_has "the refusal names the code point" "U+2066 LEFT-TO-RIGHT ISOLATE" "version"
mkdir -p "$T/bidi/usr/bin"
echo x >"$T/bidi/usr/bin/invoice${RLO}fdp.exe"
expect_rc 2 "stork publish refuses a file name with U+202E" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" bidi 1.0 "$T/bidi"
err_has "the refusal names the file and the code point" "usr/bin/invoice" "U+202E RIGHT-TO-LEFT OVERRIDE"
if grep -qF "$RLO" "$T/err"; then
	fail "the message carries the raw U+202E (it would reorder the terminal line)"
fi
pass "the message shows the control escaped"
[ ! -e "$REPO/targets/bidi" ] || fail "a refused package left targets/bidi behind"
verify_ok "the repository verifies after the refusals"
done_ok
