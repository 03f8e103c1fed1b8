#!/usr/bin/env bash
# Trust policies on real mounts: two slices over one node store, slice A trusting publisher
# alice (pinned role and key, TAP 13) for web-*, slice B trusting the repository's delegations
# for everything but pinning db below 2. Each mount shows exactly the packages and versions its
# policy accepts, and objects they have in common are fetched once; `stork why` explains each
# case in one line naming the rule; a policy with a typo stops storkfs with file:line; a policy
# edited to refuse alice's key hides her packages after SIGHUP.
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
# slice B: whatever the repository delegates, db below 2
pin db < 2
trust * delegated
POL
STORE=$T/store
mount_storkfs "$T/a" "store=$STORE,timeout=30,policy=$T/a.policy" "$NGINX_URL"
PID_A=$SFS_PID
mount_storkfs "$T/b" "store=$STORE,timeout=30,policy=$T/b.policy" "$NGINX_URL"
[ "$(ls "$T/a" | tr '\n' ' ')" = "web-shop " ] || fail "slice A shows '$(ls "$T/a" | tr '\n' ' ')', want web-shop"
pass "slice A shows only the package its policy accepts"
[ "$(ls "$T/b" | tr '\n' ' ')" = "db web-shop " ] || fail "slice B shows '$(ls "$T/b" | tr '\n' ' ')'"
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
out_has "one line per version, each naming its rule" "db 1.0: accepted by" "b.policy:3" \
	"db 2.0: refused: outside the versions" "b.policy:2 (pin db < 2)"

mkdir -p "$T/c"
printf 'key alice file %s.pub\ntrsut web-* role alice keys alice\n' "$PUBKEY" >"$T/typo.policy"
expect_rc 1 "storkfs refuses a policy with a typo" \
	timeout 60 "$STORKFS" -f -o "root=$ROOT,store=$STORE,policy=$T/typo.policy" "$NGINX_URL" "$T/c"
err_has "the error names the file, the line and what was expected" "typo.policy:2" "expected a rule"
! is_mounted "$T/c" || fail "storkfs mounted with a broken policy"

# Slice A now refuses alice's key: after SIGHUP her package is gone from A only.
printf 'key alice file %s.pub\nrefuse key alice\ntrust web-* delegated\n' "$PUBKEY" >"$T/a.policy"
kill -HUP "$PID_A"
for _ in $(seq 100); do
	[ -z "$(ls "$T/a")" ] && break
	sleep 0.1
done
[ -z "$(ls "$T/a")" ] || fail "slice A still shows '$(ls "$T/a")' after refusing alice's key"
[ -d "$T/b/web-shop/1.0" ] || fail "slice B lost web-shop"
pass "after SIGHUP, slice A refuses alice's key and hides her package; slice B still shows it"
unmount_storkfs "$T/b"
unmount_storkfs "$T/a" "$PID_A"
fsck_clean "the shared store is clean" "$STORE"
done_ok
