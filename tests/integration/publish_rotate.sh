#!/usr/bin/env bash
# Key rotation and revocation on the publisher's side, with the real CLI and nginx: root,
# targets, snapshot and timestamp get new keys (`stork repo rotate`), a publisher gets a new
# key (`--key`), a publisher is revoked and its name delegated again. After each step the
# repository verifies from the root pinned at the start, and a client store that trusted the
# state before the step follows it with that same pinned root (no re-pinning).
. "$(dirname "$0")/lib.sh"

need nginx python3
make_repo 'hello'

src=$T/src
mkdir -p "$src/bin"
printf '#!/bin/sh\necho hi\n' >"$src/bin/hi"
chmod 755 "$src/bin/hi"

publish hello 1.0 "$src"
keygen "$T/pub/bob.key"
expect_rc 0 "delegate world to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" world
expect_rc 0 "bob publishes world 1.0" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" world 1.0 "$src"
verify_ok "the repository verifies before any rotation"

start_nginx "$REPO"
URL=$NGINX_URL
STORE=$T/store
n=0
# follows DESC NAME VERSION: the client store that trusted the earlier state extracts NAME
# VERSION with the root pinned at the start.
follows() {
	n=$((n + 1))
	extract_ok "$1" --store "$STORE" "$URL" "$2" "$3" "$T/x$n"
	[ -x "$T/x$n/bin/hi" ] || fail "$1: $T/x$n/bin/hi is missing"
}
follows "a client store trusts the first state" hello 1.0
follows "... and bob's package" world 1.0

# --- root: a new key, root 2 signed by the old and the new root key
oldroot=$(sha256sum "$KEYS/root.key" | cut -d' ' -f1)
expect_rc 0 "rotate root" "$STORK" repo rotate "$REPO" --keys "$KEYS" root
[ -f "$REPO/metadata/2.root.json" ] || fail "rotate root wrote no metadata/2.root.json"
[ "$(sha256sum "$KEYS/root.key" | cut -d' ' -f1)" != "$oldroot" ] || fail "root.key is unchanged"
found=
for f in "$KEYS"/root.key.old-*; do
	case $f in *.pub) continue ;; esac
	[ "$(sha256sum "$f" | cut -d' ' -f1)" = "$oldroot" ] && found=$f
done
[ -n "$found" ] || fail "the old root key is not kept as root.key.old-<key id>"
[ "$(stat -c %a "$found")" = 600 ] || fail "$found is not mode 0600"
pass "the old root key is kept as $(basename "$found"), mode 0600"
verify_ok "verify from the pinned root 1 after the root rotation"
follows "the client store follows the root rotation" hello 1.0

# --- the online roles and targets, all at once: root 3
expect_rc 0 "rotate targets, snapshot, timestamp" \
	"$STORK" repo rotate "$REPO" --keys "$KEYS" targets snapshot timestamp
[ -f "$REPO/metadata/3.root.json" ] || fail "no metadata/3.root.json"
verify_ok "verify from the pinned root 1 after rotating targets, snapshot, timestamp"
follows "the client store follows (fast-forward recovery: new timestamp and snapshot keys)" hello 1.0
publish hello 1.1 "$src"
follows "a publish after the rotation reaches the client store" hello 1.1

expect_rc 2 "rotating an unknown top-level role is refused" \
	"$STORK" repo rotate "$REPO" --keys "$KEYS" Root
err_has "the refusal names the roles" "root, targets, snapshot or timestamp"
expect_rc 2 "rotating a publisher's role without --key is refused" \
	"$STORK" repo rotate "$REPO" --keys "$KEYS" alice
err_has "the refusal says how to rotate a publisher" "--key NEWKEYFILE alice"

# --- alice gets a new key
keygen "$T/pub/alice2.key"
A2ID=$KEYID
expect_rc 0 "rotate alice to a new key" \
	"$STORK" repo rotate "$REPO" --keys "$KEYS" --key "$T/pub/alice2.key" alice
out_has "the rotation names the role and the new key" alice "$A2ID"
verify_ok "verify after alice's rotation"
follows "alice's old packages, re-signed with her new key, reach the client store" hello 1.0
expect_rc 0 "alice publishes with her new key" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/alice2.key" hello 2.0 "$src"
follows "the package signed by the new key reaches the client store" hello 2.0
before=$(tree_sums "$REPO")
expect_rc 2 "the old key can no longer publish" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" hello 3.0 "$src"
err_has "the refusal names the old key and says it is not delegated" "${PUBKEYID:0:16}" "not delegated"
[ "$before" = "$(tree_sums "$REPO")" ] || fail "a refused publish changed the served tree"
pass "the refused publish left the served tree as it was"

# --- bob is revoked
expect_rc 2 "revoking an unknown role is refused" "$STORK" repo revoke "$REPO" --keys "$KEYS" carol
err_has "the refusal lists the delegated roles" "carol" "alice, bob"
expect_rc 0 "revoke bob" "$STORK" repo revoke "$REPO" --keys "$KEYS" bob
grep -q '"bob.json"' "$REPO/metadata/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["meta"]["snapshot.json"]["version"])' "$REPO/metadata/timestamp.json").snapshot.json" ||
	fail "the snapshot no longer lists bob.json (TUF forbids dropping a listed role)"
pass "the snapshot still lists bob.json"
verify_ok "verify after revoking bob"
expect_rc 0 "stork ls after the revocation" "$STORK" ls --root "$ROOT" "$URL"
grep -qx hello "$T/out" || { _show_run; fail "hello is no longer listed"; }
! grep -qx world "$T/out" || { _show_run; fail "bob's world is still listed after the revocation"; }
pass "stork ls lists hello and no longer bob's world"
n=$((n + 1))
extract --store "$STORE" "$URL" world 1.0 "$T/x$n"
[ "$RC" -ne 0 ] || fail "the client store still extracts world 1.0 after bob was revoked"
err_has "the refusal names the package" "world"
[ ! -e "$T/x$n" ] || fail "a refused extract left $T/x$n"
follows "the client store still extracts alice's packages" hello 2.0
expect_rc 2 "bob can no longer publish" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" world 2.0 "$src"

# --- the name bob again, to a new key: the role starts empty, above its listed version
keygen "$T/pub/bob2.key"
expect_rc 0 "delegate world to role bob again, with a new key" \
	"$STORK" repo delegate "$REPO" --keys "$KEYS" --name bob "$T/pub/bob2.key.pub" world
expect_rc 0 "the new bob publishes world 2.0" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob2.key" world 2.0 "$src"
verify_ok "verify after delegating bob again"
follows "the client store accepts the re-delegated role's package" world 2.0
n=$((n + 1))
extract --store "$STORE" "$URL" world 1.0 "$T/x$n"
[ "$RC" -ne 0 ] || fail "world 1.0 of the revoked bob came back"
pass "the revoked role's old package stays gone"

# --- root once more, after all that: the pinned root 1 still chains through
expect_rc 0 "rotate root again" "$STORK" repo rotate "$REPO" --keys "$KEYS" root
verify_ok "verify from the pinned root 1 through roots 2, 3, 4"
follows "the client store follows root 4" world 2.0
done_ok
