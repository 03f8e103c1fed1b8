#!/usr/bin/env bash
# Trust policies on real mounts: three slices over one node store, slice A trusting publisher
# alice (pinned role and key, TAP 13) for web-*, slice B trusting publisher bob for * but
# pinning db below 2, slice C trusting whatever the repository delegates. Each mount shows
# exactly the packages and versions its policy accepts, and objects they have in common are
# fetched once; `stork why` explains each case in one line naming the rule; a policy with a
# typo stops storkfs with file:line. Then the repository re-signs alice's role with a key
# slice A does not trust: after a refresh her package is gone from A (stork why names the rule
# and the key), still in C; A's policy edited to accept the new key shows it again after
# SIGHUP; B's policy edited to refuse bob's key hides db from B.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

make_repo 'web-*'
keygen "$T/bob.key"
"$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/bob.key.pub" '*' >/dev/null
mkdir -p "$T/src/w" "$T/src/d1" "$T/src/d2"
head -c 100000 /dev/urandom >"$T/src/w/shared.bin"
cp "$T/src/w/shared.bin" "$T/src/d1/shared.bin"
echo web >"$T/src/w/index.html"
echo db1 >"$T/src/d1/db.conf"
cp -a "$T/src/d1" "$T/src/d2" && echo db2 >"$T/src/d2/db.conf"
"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" web-shop 1.0 "$T/src/w" --quiet
"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/bob.key" db 1.0 "$T/src/d1" --quiet
"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/bob.key" db 2.0 "$T/src/d2" --quiet
start_nginx "$REPO"

cat >"$T/a.policy" <<POL
# slice A: web packages from alice only
key alice file $PUBKEY.pub
trust web-* role alice keys alice
POL
cat >"$T/b.policy" <<POL
# slice B: bob's packages, db below 2
key bob file $T/bob.key.pub
pin db < 2
trust * role bob keys bob
POL
cat >"$T/c.policy" <<POL
trust * delegated
POL
STORE=$T/store
mount_storkfs "$T/a" "store=$STORE,timeout=30,policy=$T/a.policy" "$NGINX_URL"
PID_A=$SFS_PID
mount_storkfs "$T/b" "store=$STORE,timeout=30,policy=$T/b.policy" "$NGINX_URL"
PID_B=$SFS_PID
mount_storkfs "$T/c" "store=$STORE,timeout=30,policy=$T/c.policy" "$NGINX_URL"
PID_C=$SFS_PID
[ "$(ls "$T/a" | tr '\n' ' ')" = "web-shop " ] || fail "slice A shows '$(ls "$T/a" | tr '\n' ' ')', want web-shop"
pass "slice A shows only the package its policy accepts"
[ "$(ls "$T/b" | tr '\n' ' ')" = "db " ] || fail "slice B shows '$(ls "$T/b" | tr '\n' ' ')', want db"
[ "$(ls "$T/c" | tr '\n' ' ')" = "db web-shop " ] || fail "slice C shows '$(ls "$T/c" | tr '\n' ' ')'"
[ "$(ls "$T/c/db" | tr '\n' ' ')" = "1.0 2.0 latest " ] || fail "slice C shows db versions '$(ls "$T/c/db" | tr '\n' ' ')'"
[ "$(ls "$T/b/db" | tr '\n' ' ')" = "1.0 latest " ] || fail "slice B shows db versions '$(ls "$T/b/db" | tr '\n' ' ')', want 1.0 only"
[ "$(readlink "$T/b/db/latest")" = 1.0 ] || fail "slice B: db/latest -> $(readlink "$T/b/db/latest")"
pass "slice B shows db 1.0 only (pinned below 2) and latest follows the pin"
[ ! -e "$T/b/db/2.0" ] || fail "slice B can open db/2.0 by name"
pass "a version outside the pin cannot be looked up by name either"

cmp "$T/src/w/shared.bin" "$T/a/web-shop/1.0/shared.bin" || fail "slice A reads wrong bytes"
cmp "$T/src/d1/shared.bin" "$T/b/db/1.0/shared.bin" || fail "slice B reads wrong bytes"
obj=$(sha256sum <"$T/src/w/shared.bin" | cut -d' ' -f1)
n=$(nginx_requests "GET /objects/${obj:0:2}/$obj")
[ "$n" -eq 1 ] || fail "the object both slices share was fetched $n times"
pass "both slices read their files; the object they share was fetched once"

expect_rc 0 "stork why explains an accepted version" \
	"$STORK" why --root "$ROOT" --policy "$T/a.policy" "$NGINX_URL" web-shop 1.0
out_has "why names the rule and the signer" "a.policy:3" "trust web-* role alice keys alice" "signed in role alice"
expect_rc 1 "stork why explains a refused package" \
	"$STORK" why --root "$ROOT" --policy "$T/a.policy" "$NGINX_URL" db
out_has "why says nothing matched" "no rule of the policy matches db"
expect_rc 0 "stork why over every version of db for slice B" \
	"$STORK" why --root "$ROOT" --policy "$T/b.policy" "$NGINX_URL" db
out_has "one line per version, each naming its rule" "db 1.0: accepted by" "b.policy:4" \
	"db 2.0: refused: outside the versions" "b.policy:3 (pin db < 2)"

mkdir -p "$T/typo"
printf 'key alice file %s.pub\ntrsut web-* role alice keys alice\n' "$PUBKEY" >"$T/typo.policy"
expect_rc 1 "storkfs refuses a policy with a typo" \
	timeout 60 "$STORKFS" -f -o "root=$ROOT,store=$STORE,policy=$T/typo.policy" "$NGINX_URL" "$T/typo"
err_has "the error names the file, the line and what was expected" "typo.policy:2" "expected a rule"
! is_mounted "$T/typo" || fail "storkfs mounted with a broken policy"

# The repository re-signs alice's role with a key slice A does not trust (a compromised or
# careless repository): after a refresh web-shop is gone from A, still in C.
keygen "$T/mallory.key"
expect_rc 0 "the repository re-signs alice's role with another key" \
	"$STORK" repo rotate "$REPO" --keys "$KEYS" --key "$T/mallory.key" alice
verify_ok
kill -HUP "$PID_A" "$PID_C"
for _ in $(seq 100); do
	[ -z "$(ls "$T/a")" ] && break
	sleep 0.1
done
[ -z "$(ls "$T/a")" ] || fail "slice A still shows '$(ls "$T/a")' after alice's role was re-signed by another key"
[ "$(ls "$T/c" | tr '\n' ' ')" = "db web-shop " ] || fail "slice C shows '$(ls "$T/c" | tr '\n' ' ')' after the re-sign"
cmp "$T/src/w/index.html" "$T/c/web-shop/1.0/index.html" || fail "slice C reads wrong bytes after the re-sign"
pass "re-signed by a key slice A does not trust: web-shop leaves A after refresh, stays in C"
expect_rc 1 "stork why explains the re-signed package for slice A" \
	"$STORK" why --root "$ROOT" --policy "$T/a.policy" "$NGINX_URL" web-shop 1.0
[ "$(printf '%s\n' "$OUT" | grep -c .)" -le 2 ] || fail "stork why took more than two lines: $OUT"
out_has "why names the rule and the untrusted signature" "a.policy:3" "pinned role alice" "0 of 1 required signatures"

# A's operator accepts the new key: after SIGHUP web-shop is back in A.
printf 'key alice file %s.pub\nkey alice2 file %s.pub\ntrust web-* role alice keys alice,alice2\n' \
	"$PUBKEY" "$T/mallory.key" >"$T/a.policy"
kill -HUP "$PID_A"
for _ in $(seq 100); do
	[ -d "$T/a/web-shop/1.0" ] && break
	sleep 0.1
done
cmp "$T/src/w/index.html" "$T/a/web-shop/1.0/index.html" || fail "slice A does not read web-shop back after accepting the new key"
pass "slice A's policy edited to accept the new key: web-shop is back after SIGHUP"

# Slice B now refuses bob's key: after SIGHUP db is gone from B only.
printf 'key bob file %s.pub\nrefuse key bob\ntrust * delegated\n' "$T/bob.key" >"$T/b.policy"
kill -HUP "$PID_B"
for _ in $(seq 100); do
	[ -z "$(ls "$T/b")" ] && break
	sleep 0.1
done
[ "$(ls "$T/b" | tr '\n' ' ')" = "web-shop " ] || fail "slice B shows '$(ls "$T/b" | tr '\n' ' ')' after refusing bob's key, want web-shop"
[ -d "$T/c/db/1.0" ] || fail "slice C lost db"
pass "after SIGHUP, slice B refuses bob's key and hides his package; slice C still shows it"
unmount_storkfs "$T/c" "$PID_C"
unmount_storkfs "$T/b" "$PID_B"
unmount_storkfs "$T/a" "$PID_A"
fsck_clean "the shared store is clean" "$STORE"
done_ok
