#!/usr/bin/env bash
# Rollback attack on the top-level targets: the client trusts targets version N, which
# delegates to alice and bob. The attacker (holding the online snapshot and timestamp keys)
# serves a new snapshot that lists the older targets N-1 (validly signed by the targets key,
# delegating to alice only, so bob's packages would vanish), then one that lists a new version
# N+1 whose file holds the old targets' bytes. The client refuses both, naming the file and the
# versions; its trusted state is unchanged; nothing of the older state is served.
. "$(dirname "$0")/lib.sh"

need python3 nginx openssl
make_repo
synth_tree "$T/v1" 1
synth_tree "$T/v2" 2
publish pkg 1.0 "$T/v1"
t_old=$(latest_meta targets)
t_old=${t_old%%.*}
keygen "$T/pub/bob.key"
expect_rc 0 "delegate bob-* to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" 'bob-*'
expect_rc 0 "bob publishes bob-tool 1.0" "$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" bob-tool 1.0 "$T/v2"
t_new=$(latest_meta targets)
t_new=${t_new%%.*}
[ "$t_old" -lt "$t_new" ] || fail "test setup: targets did not change ($t_old, $t_new)"
save_state new
WWW=$T/www
STORE=$T/store
serve_state new "$WWW"
start_nginx "$WWW"

extract_same "genuine: bob-tool 1.0" "$T/v2" --store "$STORE" "$NGINX_URL" bob-tool 1.0 "$T/x1"
[ "$(trusted_version "$STORE" targets)" = "$t_new" ] || fail "the client does not trust targets $t_new"
save_trusted "$STORE"

# 1. a new snapshot that lists the older targets (N-1)
forge commit "$WWW" --keys "$KEYS" --meta "targets=$t_old"
refused "snapshot listing targets $t_old: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x2"
err_has "the error names the snapshot, targets.json and the versions" "snapshot.json" "targets.json" \
	"$t_old" "$t_new"
assert_unchanged "snapshot listing targets $t_old: trusted state unchanged" "$STORE"
refused "snapshot listing targets $t_old: bob-tool is refused too" --store "$STORE" "$NGINX_URL" \
	bob-tool 1.0 "$T/x3"
assert_unchanged "snapshot listing targets $t_old: trusted state still unchanged" "$STORE"

# 2. the old targets' bytes served as version N+1
serve_state new "$WWW"
t_next=$((t_new + 1))
cp "$WWW/metadata/$t_old.targets.json" "$WWW/metadata/$t_next.targets.json"
forge commit "$WWW" --keys "$KEYS" --meta "targets=$t_next"
refused "old targets served as version $t_next: refused" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x4"
err_has "the error names the targets file and both versions" "metadata/$t_next.targets.json" \
	"version $t_old" "$t_next"
assert_unchanged "old targets served as version $t_next: trusted state unchanged" "$STORE"

serve_state new "$WWW"
extract_same "genuine again: pkg 1.0" "$T/v1" --store "$STORE" "$NGINX_URL" pkg 1.0 "$T/x5"
assert_unchanged "genuine again: trusted state as before the attack" "$STORE"
done_ok
