#!/usr/bin/env bash
# Tampering: one flipped byte in ANY file of the served tree (every metadata file including old
# versions and root.json, every manifest, every object) makes `stork verify` fail and name that
# file. Expired metadata fails naming the role and its expiry time.
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3 zstd
fetch_debs
make_repo

# A small repository with several versions of everything: two publishers, old role, snapshot
# and targets versions, a .deb, a tarball and a directory in two versions.
keygen "$T/pub/bob.key"
expect_rc 0 "delegate tools-* to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" 'tools-*'
hello=${DEBS[6]}
[ "$(deb_field "$hello" Package)" = hello ] || fail "DEBS[6] is not hello"
publish hello 2.10-3 "$hello"
mkdir -p "$T/src/bin" "$T/src/etc"
printf '#!/bin/sh\necho one\n' >"$T/src/bin/one"
chmod 755 "$T/src/bin/one"
printf 'x=1\n' >"$T/src/etc/conf"
: >"$T/src/etc/empty"
ln -s one "$T/src/bin/uno"
publish tiny 1.0 "$T/src"
printf 'x=2\n' >"$T/src/etc/conf"
publish tiny 1.1 "$T/src"
tar -C "$T/src" -czf "$T/tools.tar.gz" .
expect_rc 0 "bob publishes tools-a" "$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" tools-a 3 "$T/tools.tar.gz"
expect_rc 0 "repo refresh" "$STORK" repo refresh "$REPO" --keys "$KEYS"
verify_ok "the untouched repository verifies"

mapfile -t files < <(cd "$REPO" && find metadata targets objects -type f ! -name '.*' | LC_ALL=C sort)
nmeta=$(printf '%s\n' "${files[@]}" | grep -c '^metadata/')
ntargets=$(printf '%s\n' "${files[@]}" | grep -c '^targets/')
nobjects=$(printf '%s\n' "${files[@]}" | grep -c '^objects/')
echo "# flipping one byte in each of ${#files[@]} files: $nmeta metadata, $ntargets manifests and version packs, $nobjects objects"
printf '%s\n' "${files[@]}" | matches -E '^metadata/1\.snapshot\.json$' || fail "no old snapshot version to tamper with"
printf '%s\n' "${files[@]}" | matches -E '^metadata/root\.json$' || fail "no metadata/root.json"
printf '%s\n' "${files[@]}" | matches -E '^metadata/1\.alice\.json$' || fail "no old alice role version"
[ "$ntargets" -ge 4 ] && [ "$nobjects" -ge 20 ] || fail "the repository is smaller than expected"

benign=0
for f in "${files[@]}"; do
	p=$REPO/$f
	size=$(stat -c %s "$p")
	[ "$size" -gt 0 ] || fail "$f is empty"
	cp -p "$p" "$T/orig"
	rand "$size"
	off=$R
	rand 255
	x=$((R + 1))
	python3 -c '
import sys
p, off, x = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(p, "r+b") as f:
    f.seek(off)
    b = f.read(1)[0]
    f.seek(off)
    f.write(bytes([b ^ x]))
' "$p" "$off" "$x"
	run "$STORK" verify --root "$ROOT" "$REPO"
	if [ "$RC" -ne 1 ]; then
		if [ "$RC" -eq 0 ] && [[ $f == objects/* ]] &&
			[ "$(zstd -q -dc <"$p" 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$(basename "$f")" ]; then
			# e.g. a larger zstd window size: the object still decodes to exactly the
			# bytes its name and the manifest hash, so nothing the client reads changed.
			echo "# note: byte $off ^ $x of $f leaves a valid frame of the same content"
			benign=$((benign + 1))
		else
			_show_run
			fail "flipping byte $off (xor $x) of $f: verify exited $RC, want 1"
		fi
	elif ! grep -qF -- "$f" "$T/err"; then
		_show_run
		fail "flipping byte $off (xor $x) of $f: verify failed without naming $f"
	fi
	cp -p "$T/orig" "$p"
	cmp -s "$T/orig" "$p" || fail "could not restore $f"
done
pass "a flipped byte in each of ${#files[@]} files is detected and the file named ($benign benign object flips)"
[ "$benign" -le 2 ] || fail "$benign object flips were not detected"
verify_ok "the restored repository verifies"

# --- missing files
for f in "$(printf '%s\n' "${files[@]}" | grep '^objects/' | head -n 1)" \
	"$(printf '%s\n' "${files[@]}" | grep '^targets/tiny/' | head -n 1)" \
	"metadata/$(latest_meta alice)" "metadata/1.root.json"; do
	mv "$REPO/$f" "$T/orig"
	expect_rc 1 "verify fails when $f is missing" "$STORK" verify --root "$ROOT" "$REPO"
	err_has "the error names the missing $f" "$f"
	mv "$T/orig" "$REPO/$f"
done

# temporary files are ignored
: >"$REPO/metadata/.tmp-abcdef"
: >"$REPO/objects/.tmp-abcdef"
verify_ok "temporary files (.tmp-*) are ignored"
rm -f "$REPO/metadata/.tmp-abcdef" "$REPO/objects/.tmp-abcdef"

# --- expiry
expires_of() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["expires"])' "$1"
}
# names_time EXPIRES: the last run's stderr shows the expiry time (ISO 8601 or "date time")
names_time() {
	grep -qF -- "$1" "$T/err" || grep -qF -- "${1:0:10} ${1:11:8}" "$T/err"
}
now=$(date +%s)
snap=$(latest_meta snapshot)
ts_exp=$(expires_of "$REPO/metadata/timestamp.json")
root_exp=$(expires_of "$REPO/metadata/root.json")

expect_rc 0 "verify --at now + 1 hour passes" "$STORK" verify --at $((now + 3600)) --root "$ROOT" "$REPO"
expect_rc 1 "verify --at now + 2 days fails: timestamp expired" \
	"$STORK" verify --at $((now + 2 * 86400)) --root "$ROOT" "$REPO"
err_has "the error names the timestamp" "timestamp"
names_time "$ts_exp" || { _show_run; fail "the error does not show the timestamp's expiry $ts_exp"; }
pass "the error shows the timestamp's expiry $ts_exp"
expect_rc 1 "verify --at far future fails: root expired" \
	"$STORK" verify --at 4102444800 --root "$ROOT" "$REPO"
err_has "the error names the root" "root"
names_time "$root_exp" || { _show_run; fail "the error does not show the root's expiry $root_exp"; }
pass "the error shows the root's expiry $root_exp"
expect_rc 1 "stork ls --at now + 2 days fails too" \
	"$STORK" ls --at $((now + 2 * 86400)) --root "$ROOT" "$REPO"

# A repository whose snapshot expires after an hour (just initialized: `repo delegate` and
# `publish` sign new snapshots with the default expiry).
mkdir -p "$T/short"
expect_rc 0 "repo init --expires snapshot=3600" \
	"$STORK" repo init "$T/short/repo" --keys "$T/short/keys" --expires snapshot=3600
REPO=$T/short/repo
ROOT=$T/short/repo/metadata/1.root.json
snap_exp=$(expires_of "$REPO/metadata/1.snapshot.json")
expect_rc 0 "short snapshot: verify now passes" "$STORK" verify --root "$ROOT" "$REPO"
expect_rc 1 "short snapshot: verify --at now + 2 hours fails" \
	"$STORK" verify --at $((now + 7200)) --root "$ROOT" "$REPO"
err_has "the error names the snapshot" "snapshot"
names_time "$snap_exp" || { _show_run; fail "the error does not show the snapshot's expiry $snap_exp"; }
pass "the error shows the snapshot's expiry $snap_exp"
make_repo --in "$T/short2"
# refresh with a short expiry after a publish
publish tiny 1.0 "$T/src"
expect_rc 0 "repo refresh --expires snapshot=3600" \
	"$STORK" repo refresh "$REPO" --keys "$KEYS" --expires snapshot=3600
snap=$(latest_meta snapshot)
snap_exp=$(expires_of "$REPO/metadata/$snap")
expect_rc 1 "refreshed short snapshot: verify --at now + 2 hours fails" \
	"$STORK" verify --at $((now + 7200)) --root "$ROOT" "$REPO"
err_has "the error names the snapshot" "snapshot"
names_time "$snap_exp" || { _show_run; fail "the error does not show the snapshot's expiry $snap_exp"; }
pass "the error shows the refreshed snapshot's expiry $snap_exp"

done_ok
