#!/usr/bin/env bash
# Delegation patterns: a publisher key can only sign the package names delegated to it. The
# publisher refuses to sign outside them, and the verifier rejects forged metadata that does
# (or that is signed by a key that is not the delegated one).
. "$(dirname "$0")/lib.sh"

need python3 openssl
make_repo 'hello' 'lib*'

src=$T/src
mkdir -p "$src/bin"
printf '#!/bin/sh\necho hi\n' >"$src/bin/hi"
chmod 755 "$src/bin/hi"

publish hello 1.0 "$src"
publish libfoo 0.1 "$src"
pass "alice publishes inside her patterns (hello, lib*)"

# a second publisher
keygen "$T/pub/bob.key"
BOBID=$KEYID
expect_rc 0 "delegate sed to bob" "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" sed
expect_rc 0 "bob publishes sed" "$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" sed 4.9 "$src"
verify_ok

# --- refused outside the patterns, tree untouched (new content: a publish that imported before
# checking the patterns would add objects)
fresh=$T/fresh
mkdir -p "$fresh/share"
head -c 100000 /dev/urandom >"$fresh/share/blob"
before=$(tree_sums "$REPO")
expect_rc 2 "alice may not publish sed" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" sed 5.0 "$fresh"
grep -qE "alice|${PUBKEYID:0:16}" "$T/err" || { _show_run; fail "the refusal names neither role alice nor the key id"; }
err_has "the refusal names the package and alice's patterns" "sed" "hello" "lib*"
[ "$before" = "$(tree_sums "$REPO")" ] || fail "a refused publish changed the served tree"
pass "a refused publish leaves every file of the served tree as it was"

expect_rc 2 "bob may not publish hello" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" hello 9.0 "$fresh"
grep -qE "bob|${BOBID:0:16}" "$T/err" || { _show_run; fail "the refusal names neither role bob nor the key id"; }
err_has "the refusal names the package and bob's pattern" "hello" "sed"
expect_rc 2 "a pattern matches whole names: alice may not publish xhello" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" xhello 1.0 "$fresh"
keygen "$T/pub/mallory.key"
expect_rc 2 "a key with no delegation may not publish" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/mallory.key" hello 9.0 "$fresh"
[ "$before" = "$(tree_sums "$REPO")" ] || fail "a refused publish changed the served tree"
pass "the served tree is unchanged after every refusal"
verify_ok "verify still passes after the refusals"

# --- forged metadata
# forge REPO ROLE KEY TARGET_NAME TARGET_VERSION [SIGNING_KEY_ID]: write a new version of ROLE's
# metadata that adds a manifest for TARGET_NAME/TARGET_VERSION (a copy of hello 1.0's manifest
# renamed), signed with KEY, then re-sign snapshot and timestamp with the repository's keys.
# Prints the new role file's name.
forge() {
	python3 - "$@" <<'EOF'
import glob, hashlib, json, os, re, subprocess, sys, tempfile

repo, role, key, tname, tversion = sys.argv[1:6]
keyid = sys.argv[6] if len(sys.argv) > 6 else None
keys = os.environ['KEYS']
md = os.path.join(repo, 'metadata')

def canon(o):
    return json.dumps(o, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()

def sign(keyfile, signed):
    with tempfile.TemporaryDirectory() as d:
        m, s = os.path.join(d, 'msg'), os.path.join(d, 'sig')
        with open(m, 'wb') as f:
            f.write(canon(signed))
        subprocess.run(['openssl', 'pkeyutl', '-sign', '-rawin', '-inkey', keyfile, '-in', m,
                        '-out', s], check=True)
        with open(s, 'rb') as f:
            return f.read().hex()

def load(name):
    with open(os.path.join(md, name), 'rb') as f:
        return json.loads(f.read())

def write(name, doc):
    with open(os.path.join(md, name), 'wb') as f:
        f.write(canon(doc))

def latest(role):
    vs = [int(m.group(1)) for m in (re.fullmatch(r'(\d+)\.' + re.escape(role) + r'\.json', n)
                                    for n in os.listdir(md)) if m]
    return max(vs)

def keyid_of(keyfile):
    pub = subprocess.run(['openssl', 'pkey', '-in', keyfile, '-pubout', '-outform', 'DER'],
                         check=True, capture_output=True).stdout[-32:]
    obj = {'keytype': 'ed25519', 'keyval': {'public': pub.hex()}, 'scheme': 'ed25519'}
    return hashlib.sha256(canon(obj)).hexdigest()

# the manifest of the new target
src = [p for p in glob.glob(os.path.join(repo, 'targets', 'hello', '*.1.0.json'))][0]
with open(src, 'rb') as f:
    man = json.loads(f.read())
man['name'], man['version'] = tname, tversion
mb = canon(man)
mh = hashlib.sha256(mb).hexdigest()
os.makedirs(os.path.join(repo, 'targets', tname), exist_ok=True)
with open(os.path.join(repo, 'targets', tname, f'{mh}.{tversion}.json'), 'wb') as f:
    f.write(mb)

# the role
n = latest(role)
doc = load(f'{n}.{role}.json')
signed = doc['signed']
signed['version'] = n + 1
signed['targets'][f'{tname}/{tversion}.json'] = {
    'length': len(mb), 'hashes': {'sha256': mh},
    'custom': {'storkfs': {'size': sum(e.get('size', 0) for e in man['files']),
                           'files': len(man['files'])}}}
kid = keyid or keyid_of(key)
write(f'{n + 1}.{role}.json', {'signatures': [{'keyid': kid, 'sig': sign(key, signed)}],
                               'signed': signed})

# snapshot and timestamp, properly signed by the repository's keys
s = latest('snapshot')
snap = load(f'{s}.snapshot.json')['signed']
snap['version'] = s + 1
snap['meta'][f'{role}.json'] = {'version': n + 1}
sdoc = {'signatures': [{'keyid': keyid_of(os.path.join(keys, 'snapshot.key')),
                        'sig': sign(os.path.join(keys, 'snapshot.key'), snap)}], 'signed': snap}
write(f'{s + 1}.snapshot.json', sdoc)
sb = canon(sdoc)
ts = load('timestamp.json')['signed']
ts['version'] += 1
ts['meta']['snapshot.json'] = {'version': s + 1, 'length': len(sb),
                               'hashes': {'sha256': hashlib.sha256(sb).hexdigest()}}
write('timestamp.json', {'signatures': [{'keyid': keyid_of(os.path.join(keys, 'timestamp.key')),
                                         'sig': sign(os.path.join(keys, 'timestamp.key'), ts)}],
                         'signed': ts})
print(f'metadata/{n + 1}.{role}.json')
EOF
}
export KEYS

# export_refused REPO NAME VERSION: repo-export does not rebuild the forged version (a
# verification failure, or "no role signs it"), and writes none of its files.
export_refused() {
	rm_rf "$T/forged-exp"
	run "$REPO_EXPORT" --root "$ROOT" "$1" "$2" "$3" "$T/forged-exp"
	if [ "$RC" -eq 0 ] || [ "$RC" -ge 126 ]; then
		_show_run
		fail "repo-export of the forged $2 $3: exit $RC, want a refusal"
	fi
	[ ! -e "$T/forged-exp/bin/hi" ] || fail "repo-export wrote files of the forged $2 $3"
	pass "repo-export refuses the forged $2 $3 (exit $RC)"
}

# control: the forging tool makes metadata that verifies when it stays inside the patterns
rm_rf "$T/control"
cp -a "$REPO" "$T/control"
forge "$T/control" alice "$PUBKEY" hello 9.9 >/dev/null
run "$STORK" verify --root "$ROOT" "$T/control"
[ "$RC" -eq 0 ] || { _show_run; fail "control: a correctly forged in-pattern target does not verify (the forging tool is wrong?)"; }
run "$STORK" ls --root "$ROOT" "$T/control" hello
grep -qP '^9\.9\talice\t' "$T/out" || { _show_run; fail "control: stork ls does not list hello 9.9 signed by alice"; }
pass "control: metadata written by the test's forging tool verifies (in-pattern target)"

# a target outside the role's patterns, signed with the right key
rm_rf "$T/forged"
cp -a "$REPO" "$T/forged"
rolefile=$(forge "$T/forged" alice "$PUBKEY" sed 6.6)
expect_rc 1 "verify rejects alice's role listing sed outside her patterns" \
	"$STORK" verify --root "$ROOT" "$T/forged"
err_has "the error names the role file and the target" "$rolefile" "sed/6.6"
run "$STORK" ls --root "$ROOT" "$T/forged" sed
if grep -q '^6\.6' "$T/out"; then
	fail "stork ls lists the forged sed 6.6"
fi
pass "stork ls does not list the out-of-pattern target"
export_refused "$T/forged" sed 6.6

# bob's role claiming hello (bob's patterns: sed)
rm_rf "$T/forged2"
cp -a "$REPO" "$T/forged2"
rolefile=$(forge "$T/forged2" bob "$T/pub/bob.key" hello 7.7)
expect_rc 1 "verify rejects bob's role listing hello" "$STORK" verify --root "$ROOT" "$T/forged2"
err_has "the error names bob's role file and the target" "$rolefile" "hello/7.7"
export_refused "$T/forged2" hello 7.7

# alice's role re-signed by mallory's key (not the delegated one), with mallory's key id
rm_rf "$T/forged3"
cp -a "$REPO" "$T/forged3"
rolefile=$(forge "$T/forged3" alice "$T/pub/mallory.key" hello 8.8)
expect_rc 1 "verify rejects alice's role signed by another key" "$STORK" verify --root "$ROOT" "$T/forged3"
err_has "the error names the role file" "$rolefile"
export_refused "$T/forged3" hello 8.8

# ... and signed by mallory while claiming alice's key id
rm_rf "$T/forged4"
cp -a "$REPO" "$T/forged4"
rolefile=$(forge "$T/forged4" alice "$T/pub/mallory.key" hello 8.8 "$PUBKEYID")
expect_rc 1 "verify rejects a signature by another key under alice's key id" \
	"$STORK" verify --root "$ROOT" "$T/forged4"
err_has "the error names the role file" "$rolefile"

# A name two roles may sign: clients take the first role in search order that signs it, so a
# later role publishing the same version would never be seen: refused, naming the role.
keygen "$T/pub/carol.key"
expect_rc 0 "delegate everything to carol (after alice's hello)" \
	"$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/carol.key.pub" '*'
expect_rc 2 "carol cannot publish hello 1.0, which alice signs first" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/carol.key" hello 1.0 "$src"
err_has "the error names the role that signs it" "already signed in role alice" "publish another version"
expect_rc 0 "carol publishes a hello version alice does not sign" \
	"$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/carol.key" hello 9.0 "$src" --quiet

# the untouched repository still verifies and exports
verify_ok "the original repository still verifies"
export_version hello 1.0 "$T/exp"
compare_tree "$src" "$T/exp" || fail "hello 1.0 does not rebuild"
pass "hello 1.0 rebuilds"

done_ok
