#!/usr/bin/env bash
# stork resolve on real Debian packages: python3's closure as apt computes it for an empty system
# (--no-install-recommends, an empty dpkg status file), fetched with apt-get download and
# published with a few real packages that offer alternatives and virtual packages (mawk and
# original-awk provide awk, netcat-openbsd and netcat-traditional netcat, install-info is the
# other side of readline-common's "dpkg | install-info"). Installing python3 must resolve to
# apt's set, or the test prints both sets and why each one differs. Then: a virtual package, a
# Recommends that is not followed, and unsatisfiable requests (a missing dependency, a conflict,
# the only candidate refused by the policy) that exit 2 naming the package, the dependency or
# conflict and the rule.
. "$(dirname "$0")/lib.sh"

need apt-get dpkg-deb

: >"$T/empty-status"
apt_set() { # apt's choice for an empty system, "name version" lines sorted by name
	apt-get -s --no-install-recommends -o Dir::State::status="$T/empty-status" install "$@" \
		2>"$T/apt.err" | awk '/^Inst /{ v = $3; gsub(/[()]/, "", v); print $2, v }' | sort
}
apt_set python3 >"$T/apt-python3"
if [ ! -s "$T/apt-python3" ]; then
	apt-get update -q >"$T/apt.log" 2>&1 || true
	apt_set python3 >"$T/apt-python3"
fi
[ -s "$T/apt-python3" ] || {
	cat "$T/apt.err" >&2
	fail "apt-get -s install python3 chose nothing"
}
echo "# apt installs $(wc -l <"$T/apt-python3") packages for python3 on an empty system"

EXTRA=(mawk original-awk netcat-openbsd netcat-traditional install-info)
DIR=$STORK_TEST_CACHE/debs-resolve
mkdir -p "$DIR"
wanted=()
while read -r p v; do
	wanted+=("$p=$v")
done <"$T/apt-python3"
for p in "${EXTRA[@]}"; do
	wanted+=("$p=$(apt-cache policy "$p" | awk '/Candidate:/{ print $2 }')")
done
missing=()
for pv in "${wanted[@]}"; do
	# apt-get download names files NAME_VERSION_ARCH.deb with the epoch's ':' as %3a
	compgen -G "$DIR/${pv%%=*}_$(sed 's/:/%3a/' <<<"${pv#*=}")_*.deb" >/dev/null || missing+=("$pv")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "# downloading ${#missing[@]} packages into $DIR"
	(cd "$DIR" && apt-get download -q "${missing[@]}") >"$T/apt.log" 2>&1 || {
		tail -20 "$T/apt.log" >&2
		fail "apt-get download ${missing[*]} failed"
	}
fi

make_repo
for pv in "${wanted[@]}"; do
	p=${pv%%=*}
	v=${pv#*=}
	[ "$p" != libbsd0 ] || continue # netcat-openbsd's dependency stays out: unsatisfiable
	publish "$p" "$v" "$(compgen -G "$DIR/${p}_$(sed 's/:/%3a/' <<<"$v")_*.deb" | head -n 1)" \
		--quiet
done
pass "published ${#wanted[@]} real packages"

# Synthetic packages: a virtual package with two providers that exclude each other (Debian's
# idiom: Provides and Conflicts the same name), a Recommends, a dependency nothing provides.
mkdeb() { # NAME VERSION [FIELD: VALUE]...
	local name=$1 version=$2 d=$T/deb/$1
	shift 2
	mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$name"
	echo "$name" >"$d/usr/share/doc/$name/README"
	{
		printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: t <t@t>\n' \
			"$name" "$version"
		[ $# -eq 0 ] || printf '%s\n' "$@"
		printf 'Description: %s\n' "$name"
	} >"$d/DEBIAN/control"
	dpkg-deb --root-owner-group -b "$d" "$T/$name.deb" >/dev/null
	publish "$name" "$version" "$T/$name.deb" --quiet
}
mkdeb greeter-a 1.0 'Provides: greeter' 'Conflicts: greeter' 'Recommends: greeter-docs'
mkdeb greeter-b 2.0 'Provides: greeter' 'Conflicts: greeter'
mkdeb greeter-docs 1.0
mkdeb wants-greeter 1.0 'Depends: greeter, mawk | original-awk'
mkdeb wants-awk 1.0 'Depends: awk'
mkdeb needs-nowhere 1.0 'Depends: libc6, libnowhere1 (>= 2)'
mkdeb needs-old-dpkg 1.0 'Depends: dpkg (<< 1.0)'
# apt takes the first alternative that can be installed, whatever the names' order
mkdeb zz-lib 1.0
mkdeb aa-lib 1.0
mkdeb alt-zz-first 1.0 'Depends: zz-lib | aa-lib'
mkdeb alt-aa-first 1.0 'Depends: aa-lib | zz-lib'

# 1. python3: apt's set.
expect_rc 0 "stork resolve python3" "$STORK" resolve --root "$ROOT" "$REPO" python3
sort <"$T/out" >"$T/stork-python3"
if ! cmp -s "$T/apt-python3" "$T/stork-python3"; then
	echo "# apt-get -s --no-install-recommends install python3 (empty status):" >&2
	sed 's/^/#   /' "$T/apt-python3" >&2
	echo "# stork resolve python3:" >&2
	sed 's/^/#   /' "$T/stork-python3" >&2
	echo "# differences (< apt only, > stork only):" >&2
	diff "$T/apt-python3" "$T/stork-python3" | grep '^[<>]' | while read -r side p v; do
		why="no dependency in the repository explains it"
		for x in "${EXTRA[@]}"; do
			[ "$x" != "$p" ] || why="a provider or alternative apt did not take"
		done
		echo "#   $side $p $v: $why" >&2
	done
	fail "stork resolve python3 differs from apt's choice"
fi
pass "python3 resolves to apt's $(wc -l <"$T/stork-python3") packages, versions included"

# 2. Alternatives and virtual packages.
expect_rc 0 "a virtual package with two providers" "$STORK" resolve --root "$ROOT" "$REPO" \
	wants-greeter
n=$(grep -cE '^greeter-(a|b) ' "$T/out" || true)
[ "$n" -eq 1 ] || fail "wants-greeter: $n providers of greeter chosen, not 1: $OUT"
grep -qx 'mawk 1.3.4.20200120-3.1' "$T/out" || grep -q '^mawk ' "$T/out" ||
	fail "wants-greeter: the first alternative, mawk, was not chosen: $OUT"
! grep -q '^original-awk ' "$T/out" || fail "wants-greeter: both alternatives chosen: $OUT"
pass "one provider of greeter ($(grep -E '^greeter-' "$T/out" | tr '\n' ' ')), the first alternative mawk"
expect_rc 0 "awk, a virtual package of two real ones" "$STORK" resolve --root "$ROOT" "$REPO" \
	wants-awk
[ "$(grep -cE '^(mawk|original-awk) ' "$T/out")" -eq 1 ] || fail "wants-awk: $OUT"
pass "awk: one provider ($(grep -E '^(mawk|original-awk) ' "$T/out"))"
expect_rc 0 "netcat-traditional" "$STORK" resolve --root "$ROOT" "$REPO" netcat-traditional
expect_rc 0 "zz-lib | aa-lib" "$STORK" resolve --root "$ROOT" "$REPO" alt-zz-first
[ "$(cut -d' ' -f1 "$T/out" | tr '\n' ' ')" = "alt-zz-first zz-lib " ] ||
	fail "alt-zz-first: not the first alternative alone: $OUT"
expect_rc 0 "aa-lib | zz-lib" "$STORK" resolve --root "$ROOT" "$REPO" alt-aa-first
[ "$(cut -d' ' -f1 "$T/out" | tr '\n' ' ')" = "aa-lib alt-aa-first " ] ||
	fail "alt-aa-first: not the first alternative alone: $OUT"
pass "the first alternative is taken, as apt does, in either order of names"

# 3. Recommends are not followed (as apt --no-install-recommends; stork install's choice).
expect_rc 0 "greeter-a" "$STORK" resolve --root "$ROOT" "$REPO" greeter-a
! grep -q '^greeter-docs ' "$T/out" || fail "greeter-a's Recommends was followed: $OUT"
pass "greeter-a's Recommends (greeter-docs) is not installed"

# 4. Unsatisfiable requests: exit 2, the package, the dependency or conflict, the rule.
expect_rc 2 "a dependency nothing provides" "$STORK" resolve --root "$ROOT" "$REPO" needs-nowhere
err_has "the message names the package and the dependency" "needs-nowhere 1.0" "libnowhere1"
expect_rc 2 "a real package whose dependency is not in the repository" \
	"$STORK" resolve --root "$ROOT" "$REPO" netcat-openbsd
err_has "the message names netcat-openbsd and libbsd0" "netcat-openbsd" "libbsd0"
expect_rc 2 "a version no package has" "$STORK" resolve --root "$ROOT" "$REPO" needs-old-dpkg
err_has "the message names the versioned dependency" "needs-old-dpkg 1.0" "dpkg" "1.0"
expect_rc 2 "two packages that conflict" "$STORK" resolve --root "$ROOT" "$REPO" greeter-a \
	greeter-b
err_has "the message names both and the conflict" "greeter-a 1.0" "greeter-b 2.0" "conflicts"
expect_rc 2 "a package nobody signs" "$STORK" resolve --root "$ROOT" "$REPO" no-such-package
err_has "the message names the request" "no-such-package"

printf 'refuse libffi8\ntrust * delegated\n' >"$T/slice.policy"
expect_rc 2 "python3 when the policy refuses libffi8" "$STORK" resolve --root "$ROOT" \
	--policy "$T/slice.policy" "$REPO" python3
err_has "the message names the dependency, the refused package and the rule" \
	"libpython3.11-stdlib" "libffi8" "slice.policy:1" "refuse libffi8"
printf 'pin mawk < 1\ntrust * delegated\n' >"$T/pin.policy"
expect_rc 2 "the only candidate outside a pin" "$STORK" resolve --root "$ROOT" \
	--policy "$T/pin.policy" "$REPO" mawk
err_has "the message names the request and the pin" "mawk" "pin.policy:1"
expect_rc 0 "wants-awk under the pin takes the other provider" "$STORK" resolve \
	--root "$ROOT" --policy "$T/pin.policy" "$REPO" wants-awk
grep -q '^original-awk ' "$T/out" || fail "wants-awk under the pin: $OUT"
pass "the pin leaves original-awk to provide awk"

printf 'key alice file %s\nrefuse key alice\ntrust * delegated\n' "$PUBKEY.pub" >"$T/key.policy"
expect_rc 2 "the only candidate signed by a refused key" "$STORK" resolve --root "$ROOT" \
	--policy "$T/key.policy" "$REPO" python3
err_has "the message names the package, the signer and the rule" "python3" "role alice" \
	"key.policy:2" "refuse key alice"

expect_rc 2 "NAME= without a version" "$STORK" resolve --root "$ROOT" "$REPO" python3=
done_ok
