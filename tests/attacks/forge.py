#!/usr/bin/env python3
"""forge.py: edit and re-sign storkfs (TUF 1.0) metadata, for the attack suite.

The attacker's tool: it writes metadata exactly as the repository writer does (canonical JSON,
ed25519 signatures over the canonical JSON of "signed", key ids = SHA-256 of the key object's
canonical JSON; verify/README.md "Keys" and "Every metadata file"), so that what a test serves is
refused for the reason the test is about, never because the forgery is malformed.
Python standard library and the openssl command only.

    forge.py keygen KEYFILE
        a new ed25519 key: KEYFILE (PEM PKCS#8, mode 0600) and KEYFILE.pub; prints its key id
    forge.py keyid KEYFILE
        the key id of a private or public PEM key file
    forge.py edit IN [-o OUT] EDIT... [--sign KEYFILE]... [--sign-as KEYFILE=KEYID]...
                  [--keep-sigs]
        apply the edits to IN's "signed" (in order) and write OUT (IN by default) re-signed
        by the given keys (all earlier signatures dropped, unless --keep-sigs; no --sign and no
        --sign-as keeps the signatures as they were, now likely invalid)
    forge.py role REPO ROLE EDIT... --sign KEYFILE...
        the next version of ROLE (root, targets or a delegated role; the newest
        metadata/N.ROLE.json) with the edits, written as metadata/N+1.ROLE.json (root.json
        too for root); prints its path relative to REPO. --version in the edits overrides N+1
        (the file is named by the version it holds)
    forge.py commit REPO --keys KEYDIR [--meta NAME=VERSION]... [--snapshot-edit EDIT]...
                  [--timestamp-edit EDIT]... [--timestamp-key KEYFILE] [--snapshot-key KEYFILE]
        what a writer does after changing role files: a new snapshot (the current one, that
        metadata/timestamp.json names, version+1, with meta NAME.json set to each VERSION;
        NAME is targets or a role) signed by KEYDIR/snapshot.key, then a new timestamp
        (version+1, naming that snapshot's version, length and SHA-256) signed by
        KEYDIR/timestamp.key. Prints the new snapshot's path.
    forge.py manifest REPO MANIFEST NAME VERSION
        a copy of the manifest file MANIFEST renamed to package NAME VERSION, written where
        the target file goes (targets/NAME/<sha256>.VERSION.json); prints that path

EDITs (PATH is a '/'-separated path below "signed": meta/snapshot.json/version,
delegations/roles/0/terminating; list items by index):
    --version N | +N         set (or raise by N) signed.version
    --expires WHEN           ISO time (2026-01-31T12:00:00Z) or +/-SECONDS from now
                             (units s, m, h, d: +3s, -1d)
    --set PATH=JSON          set a value (JSON; a bare word is a string)
    --del PATH               delete a value
    --add-key ROLE=KEYFILE   root: list the key for top-level ROLE; targets: for delegated ROLE
    --remove-key ROLE=KEYFILE
    --threshold ROLE=N
    --add-target TPATH=MANIFESTFILE   a target (length, sha256, custom.storkfs) of the file
    --remove-target TPATH
    --add-delegation 'NAME keys=K1[,K2] paths=P1[,P2] [terminating] [threshold=N] [at=I]'
                             a delegation to role NAME (keys are key files; at=I inserts it at
                             index I of delegations.roles instead of appending it)
    --remove-delegation NAME
    --meta NAME=VERSION      snapshot: meta["NAME.json"] = {"version": VERSION}
    --snapshot FILE          timestamp: meta["snapshot.json"] = FILE's version, length, sha256
"""

import datetime
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile


def die(msg):
    sys.stderr.write('forge.py: %s\n' % msg)
    sys.exit(2)


def canon(obj):
    """Canonical JSON (securesystemslib / OLPC): sorted keys, no whitespace, integers."""
    def check(o):
        if isinstance(o, float):
            die('canonical JSON has no floats: %r' % o)
        if isinstance(o, dict):
            for v in o.values():
                check(v)
        if isinstance(o, list):
            for v in o:
                check(v)
    check(obj)
    return json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()


def load(path):
    with open(path, 'rb') as f:
        return json.loads(f.read())


def write(path, doc):
    tmp = path + '.forge-tmp'
    with open(tmp, 'wb') as f:
        f.write(canon(doc))
    os.replace(tmp, path)


def openssl(*args, data=None):
    r = subprocess.run(['openssl'] + list(args), input=data, capture_output=True)
    if r.returncode != 0:
        die('openssl %s: %s' % (' '.join(args), r.stderr.decode(errors='replace').strip()))
    return r.stdout


def is_public(keyfile):
    with open(keyfile, 'rb') as f:
        return b'PUBLIC KEY' in f.read(100)


@functools.lru_cache(maxsize=None)
def raw_public(keyfile):
    if is_public(keyfile):
        der = openssl('pkey', '-pubin', '-in', keyfile, '-outform', 'DER')
    else:
        der = openssl('pkey', '-in', keyfile, '-pubout', '-outform', 'DER')
    if len(der) != 44:
        die('%s: not an ed25519 key' % keyfile)
    return der[-32:]


def key_object(keyfile):
    return {'keytype': 'ed25519', 'keyval': {'public': raw_public(keyfile).hex()},
            'scheme': 'ed25519'}


def key_id(keyfile):
    return hashlib.sha256(canon(key_object(keyfile))).hexdigest()


def sign_bytes(keyfile, msg):
    with tempfile.TemporaryDirectory() as d:
        m, s = os.path.join(d, 'msg'), os.path.join(d, 'sig')
        with open(m, 'wb') as f:
            f.write(msg)
        openssl('pkeyutl', '-sign', '-rawin', '-inkey', keyfile, '-in', m, '-out', s)
        with open(s, 'rb') as f:
            return f.read().hex()


def keygen(path):
    openssl('genpkey', '-algorithm', 'ed25519', '-out', path)
    os.chmod(path, 0o600)
    openssl('pkey', '-in', path, '-pubout', '-out', path + '.pub')
    print(key_id(path))


# ------------------------------------------------------------------------------------------
# Edits of "signed".

def parse_time(when):
    m = re.fullmatch(r'([+-])(\d+)([smhd]?)', when)
    if m:
        n = int(m.group(2)) * {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400}[m.group(3)]
        t = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        t += datetime.timedelta(seconds=n if m.group(1) == '+' else -n)
        return t.strftime('%Y-%m-%dT%H:%M:%SZ')
    if not re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', when):
        die('--expires %s: expected an ISO time like 2026-01-31T12:00:00Z or +SECONDS' % when)
    return when


def walk(signed, path, create=False):
    """The container and the last key of PATH below signed."""
    parts = path.split('/')
    cur = signed
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        else:
            if p not in cur:
                if not create:
                    die('path %s: no %s' % (path, p))
                cur[p] = {}
            cur = cur[p]
    last = parts[-1]
    if isinstance(cur, list):
        last = int(last)
    return cur, last


def json_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def role_entry(signed, role):
    """The keyids/threshold holder of ROLE and the dict of keys it refers to."""
    if signed['_type'] == 'root':
        return signed['roles'].setdefault(role, {'keyids': [], 'threshold': 1}), signed['keys']
    d = signed.setdefault('delegations', {'keys': {}, 'roles': []})
    for r in d['roles']:
        if r['name'] == role:
            return r, d['keys']
    die('no delegation to %s' % role)


def prune_keys(signed):
    """Drop keys no role lists any more (the writer never lists unused keys)."""
    if signed['_type'] == 'root':
        keys, roles = signed['keys'], signed['roles'].values()
    elif 'delegations' in signed:
        keys, roles = signed['delegations']['keys'], signed['delegations']['roles']
    else:
        return
    used = {k for r in roles for k in r['keyids']}
    for k in list(keys):
        if k not in used:
            del keys[k]


def target_info(manifest):
    with open(manifest, 'rb') as f:
        b = f.read()
    info = {'length': len(b), 'hashes': {'sha256': hashlib.sha256(b).hexdigest()}}
    try:
        man = json.loads(b)
        info['custom'] = {'storkfs': {'files': len(man['files']),
                                      'size': sum(e.get('size', 0) for e in man['files'])}}
    except (ValueError, KeyError, TypeError):
        pass
    return info


def meta_info(path):
    with open(path, 'rb') as f:
        b = f.read()
    return {'version': json.loads(b)['signed']['version'], 'length': len(b),
            'hashes': {'sha256': hashlib.sha256(b).hexdigest()}}


def apply_edit(signed, opt, arg):
    if opt == '--version':
        signed['version'] = signed['version'] + int(arg[1:]) if arg.startswith('+') else int(arg)
    elif opt == '--expires':
        signed['expires'] = parse_time(arg)
    elif opt == '--set':
        path, _, val = arg.partition('=')
        c, k = walk(signed, path, create=True)
        c[k] = json_value(val)
    elif opt == '--del':
        c, k = walk(signed, arg)
        del c[k]
    elif opt in ('--add-key', '--remove-key'):
        role, _, kf = arg.partition('=')
        entry, keys = role_entry(signed, role)
        kid = key_id(kf)
        if opt == '--add-key':
            keys[kid] = key_object(kf)
            if kid not in entry['keyids']:
                entry['keyids'].append(kid)
        else:
            if kid not in entry['keyids']:
                die('%s does not list the key %s' % (role, kid))
            entry['keyids'].remove(kid)
            prune_keys(signed)
    elif opt == '--threshold':
        role, _, n = arg.partition('=')
        role_entry(signed, role)[0]['threshold'] = int(n)
    elif opt == '--add-target':
        tpath, _, man = arg.partition('=')
        signed.setdefault('targets', {})[tpath] = target_info(man)
    elif opt == '--remove-target':
        del signed['targets'][arg]
    elif opt == '--add-delegation':
        words = arg.split()
        d = signed.setdefault('delegations', {'keys': {}, 'roles': []})
        role = {'name': words[0], 'keyids': [], 'paths': [], 'terminating': False,
                'threshold': 1}
        at = None
        for w in words[1:]:
            k, _, v = w.partition('=')
            if k == 'keys':
                for kf in v.split(','):
                    kid = key_id(kf)
                    d['keys'][kid] = key_object(kf)
                    role['keyids'].append(kid)
            elif k == 'paths':
                role['paths'] = v.split(',')
            elif k == 'terminating':
                role['terminating'] = True
            elif k == 'threshold':
                role['threshold'] = int(v)
            elif k == 'at':
                at = int(v)
            else:
                die('--add-delegation: unknown word %s' % w)
        if at is None:
            d['roles'].append(role)
        else:
            d['roles'].insert(at, role)
    elif opt == '--remove-delegation':
        d = signed['delegations']
        d['roles'] = [r for r in d['roles'] if r['name'] != arg]
        prune_keys(signed)
    elif opt == '--meta':
        name, _, v = arg.partition('=')
        signed['meta'][name + '.json'] = {'version': int(v)}
    elif opt == '--snapshot':
        signed['meta']['snapshot.json'] = meta_info(arg)
    else:
        die('unknown edit %s' % opt)


EDITS = {'--version', '--expires', '--set', '--del', '--add-key', '--remove-key', '--threshold',
         '--add-target', '--remove-target', '--add-delegation', '--remove-delegation', '--meta',
         '--snapshot'}


def parse_edits(args):
    """(edits, signers, keep_sigs, other options) from an argument list."""
    edits, signers, keep, other = [], [], False, {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == '--keep-sigs':
            keep = True
            i += 1
            continue
        if i + 1 >= len(args):
            die('%s: expected a value' % a)
        v = args[i + 1]
        if a in EDITS:
            edits.append((a, v))
        elif a == '--sign':
            signers.append((v, None))
        elif a == '--sign-as':
            kf, _, kid = v.partition('=')
            signers.append((kf, kid))
        elif a.startswith('--'):
            other.setdefault(a, []).append(v)
        else:
            die('unexpected argument %s' % a)
        i += 2
    return edits, signers, keep, other


def resign(doc, signers, keep):
    if not signers:
        return
    msg = canon(doc['signed'])
    sigs = doc['signatures'] if keep else []
    for kf, kid in signers:
        sigs.append({'keyid': kid or key_id(kf), 'sig': sign_bytes(kf, msg)})
    doc['signatures'] = sigs


def cmd_edit(args):
    if not args:
        die('edit: expected IN')
    src = args[0]
    rest = args[1:]
    out = src
    if len(rest) >= 2 and rest[0] == '-o':
        out = rest[1]
        rest = rest[2:]
    edits, signers, keep, other = parse_edits(rest)
    if other:
        die('edit: unknown options %s' % ', '.join(other))
    doc = load(src)
    for opt, arg in edits:
        apply_edit(doc['signed'], opt, arg)
    resign(doc, signers, keep)
    write(out, doc)


def newest(md, role):
    vs = [int(m.group(1)) for m in (re.fullmatch(r'(\d+)\.' + re.escape(role) + r'\.json', n)
                                    for n in os.listdir(md)) if m]
    if not vs:
        die('no %s metadata in %s' % (role, md))
    return max(vs)


def cmd_role(args):
    if len(args) < 2:
        die('role: expected REPO ROLE')
    repo, role = args[0], args[1]
    edits, signers, keep, other = parse_edits(args[2:])
    if other:
        die('role: unknown options %s' % ', '.join(other))
    md = os.path.join(repo, 'metadata')
    n = newest(md, role)
    doc = load(os.path.join(md, '%d.%s.json' % (n, role)))
    doc['signed']['version'] = n + 1
    for opt, arg in edits:
        apply_edit(doc['signed'], opt, arg)
    resign(doc, signers, keep)
    v = doc['signed']['version']
    write(os.path.join(md, '%d.%s.json' % (v, role)), doc)
    if role == 'root':
        write(os.path.join(md, 'root.json'), doc)
    print('metadata/%d.%s.json' % (v, role))


def cmd_commit(args):
    if not args:
        die('commit: expected REPO')
    repo = args[0]
    rest = args[1:]
    opts = {}
    i = 0
    while i < len(rest):
        if i + 1 >= len(rest):
            die('%s: expected a value' % rest[i])
        opts.setdefault(rest[i], []).append(rest[i + 1])
        i += 2
    known = {'--keys', '--meta', '--snapshot-edit', '--timestamp-edit', '--snapshot-key',
             '--timestamp-key'}
    for k in opts:
        if k not in known:
            die('commit: unknown option %s' % k)
    keys = opts.get('--keys', [None])[0]
    snap_key = opts.get('--snapshot-key', [None])[0] or (keys and os.path.join(keys, 'snapshot.key'))
    ts_key = opts.get('--timestamp-key', [None])[0] or (keys and os.path.join(keys, 'timestamp.key'))
    if not snap_key or not ts_key:
        die('commit: expected --keys KEYDIR (or --snapshot-key and --timestamp-key)')
    md = os.path.join(repo, 'metadata')
    ts = load(os.path.join(md, 'timestamp.json'))
    sv = ts['signed']['meta']['snapshot.json']['version']
    snap = load(os.path.join(md, '%d.snapshot.json' % sv))
    snap['signed']['version'] = sv + 1
    for m in opts.get('--meta', []):
        apply_edit(snap['signed'], '--meta', m)
    for e in opts.get('--snapshot-edit', []):
        opt, _, arg = e.partition(' ')
        apply_edit(snap['signed'], opt, arg)
    resign(snap, [(snap_key, None)], False)
    spath = os.path.join(md, '%d.snapshot.json' % snap['signed']['version'])
    write(spath, snap)
    ts['signed']['version'] += 1
    apply_edit(ts['signed'], '--snapshot', spath)
    for e in opts.get('--timestamp-edit', []):
        opt, _, arg = e.partition(' ')
        apply_edit(ts['signed'], opt, arg)
    resign(ts, [(ts_key, None)], False)
    write(os.path.join(md, 'timestamp.json'), ts)
    print('metadata/%d.snapshot.json' % snap['signed']['version'])


def cmd_manifest(repo, src, name, version):
    man = load(src)
    man['name'], man['version'] = name, version
    b = canon(man)
    d = os.path.join(repo, 'targets', name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, '%s.%s.json' % (hashlib.sha256(b).hexdigest(), version))
    with open(path, 'wb') as f:
        f.write(b)
    print(path)


def main(argv):
    if len(argv) < 2 or argv[1] in ('-h', '--help'):
        sys.stdout.write(__doc__)
        return 0 if len(argv) >= 2 else 2
    cmd, args = argv[1], argv[2:]
    if cmd == 'keygen' and len(args) == 1:
        keygen(args[0])
    elif cmd == 'keyid' and len(args) == 1:
        print(key_id(args[0]))
    elif cmd == 'edit':
        cmd_edit(args)
    elif cmd == 'role':
        cmd_role(args)
    elif cmd == 'manifest' and len(args) == 4:
        cmd_manifest(*args)
    elif cmd == 'commit':
        cmd_commit(args)
    else:
        die('unknown command %s (see --help)' % ' '.join(argv[1:2]))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
