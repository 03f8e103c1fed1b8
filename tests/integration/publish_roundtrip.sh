#!/usr/bin/env bash
# Publish real Debian packages, tarballs, a directory and an .rpm; the repository verifies and
# every version is rebuilt exactly (paths, types, modes, symlink targets, bytes) from it.
. "$(dirname "$0")/lib.sh"

need dpkg-deb zstd gzip tar python3 rpmbuild rpm2cpio cpio
fetch_debs
make_repo

# A source tree with every kind of entry a package may hold.
make_test_tree() {
	local d=$1
	mkdir -p "$d/nested/deeper/deepest" "$d/private" "$d/empty-dir"
	printf 'hello\n' >"$d/file.txt"
	: >"$d/empty-file"
	printf '#!/bin/sh\necho suid\n' >"$d/nested/suid-tool"
	chmod 4755 "$d/nested/suid-tool"
	printf 'sgid\n' >"$d/nested/sgid-file"
	chmod 2750 "$d/nested/sgid-file"
	head -c 300000 /dev/urandom >"$d/nested/deeper/random.bin"
	seq 1 100000 >"$d/nested/deeper/deepest/numbers.txt"
	printf 'space\n' >"$d/file with space.txt"
	printf 'non-ascii\n' >"$d/naïve-日本語.txt"
	printf 'secret\n' >"$d/private/key"
	chmod 0400 "$d/private/key"
	chmod 0700 "$d/private"
	chmod 0555 "$d/empty-dir"
	ln -s file.txt "$d/link-rel"
	ln -s /etc/hostname "$d/link-abs"
	ln -s ../../file.txt "$d/nested/deeper/link-up"
	ln -s nested/deeper "$d/link-dir"
	ln -s does-not-exist "$d/link-dangling"
	printf 'same bytes\n' >"$d/dup-a"
	printf 'same bytes\n' >"$d/nested/dup-b"
}

# --- .debs
n=0
declare -A DEB_VERSION
for deb in "${DEBS[@]}"; do
	name=$(deb_field "$deb" Package)
	version=$(deb_field "$deb" Version)
	DEB_VERSION[$name]=$version
	publish "$name" "$version" "$deb" --quiet
	n=$((n + 1))
done
pass "published $n .debs"
[ "$n" -ge 20 ] || fail "only $n .debs"

# --- tar.zst, tar.gz, a directory
src=$T/src
make_test_tree "$src"
(cd "$src" && tar -cf - .) | zstd -q -3 -o "$T/tree.tar.zst"
publish treezst 1.0 "$T/tree.tar.zst" --quiet
pass "published a .tar.zst"

src2=$T/src2
mkdir -p "$src2/bin" "$src2/share/data"
cp -a "$src/nested" "$src2/share/"
printf 'tool\n' >"$src2/bin/tool"
chmod 0755 "$src2/bin/tool"
ln "$src2/bin/tool" "$src2/bin/tool-hardlink"
ln -s tool "$src2/bin/tool-link"
seq 1 5000 >"$src2/share/data/list"
(cd "$T" && tar -czf "$T/tree.tar.gz" --transform 's,^src2,pkg,' src2)
mkdir -p "$T/src2-ref"
tar -xzf "$T/tree.tar.gz" -C "$T/src2-ref"
publish treegz 2.0-1 "$T/tree.tar.gz" --quiet
pass "published a .tar.gz (with a hard link)"

publish treedir 0.1~rc1 "$src" --quiet
pass "published a directory"

# --- an .rpm built here
top=$T/rpmbuild
mkdir -p "$top"/{SPECS,BUILD,RPMS,SOURCES,SRPMS,BUILDROOT}
cat >"$top/SPECS/storktest.spec" <<'EOF'
Name: storktest
Version: 1.2
Release: 3
Summary: storkfs test package
License: MIT
BuildArch: noarch
AutoReqProv: no
Requires: foo >= 1.0
Requires: bar
Requires: baz = 2:3.4-5
Requires: qux < 3
Requires: /bin/sh
Provides: stork-virtual = 4.0
Conflicts: oldstork < 1.0

%description
A tiny package for the storkfs tests.

%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/storktest/sub %{buildroot}/etc
printf '#!/bin/sh\necho storktest\n' > %{buildroot}/usr/bin/storktest
chmod 0755 %{buildroot}/usr/bin/storktest
ln -s storktest %{buildroot}/usr/bin/st
printf 'data\n' > %{buildroot}/usr/share/storktest/sub/data.txt
: > %{buildroot}/usr/share/storktest/empty
printf 'conf=1\n' > %{buildroot}/etc/storktest.conf

%files
%attr(0755,root,root) /usr/bin/storktest
/usr/bin/st
%dir /usr/share/storktest
%dir /usr/share/storktest/sub
/usr/share/storktest/sub/data.txt
%attr(0600,root,root) /usr/share/storktest/empty
%config /etc/storktest.conf
EOF
if ! rpmbuild --quiet --define "_topdir $top" -bb "$top/SPECS/storktest.spec" >"$T/rpmbuild.log" 2>&1; then
	cat "$T/rpmbuild.log" >&2
	fail "rpmbuild"
fi
rpm=$(find "$top/RPMS" -name 'storktest-*.rpm' | head -n 1)
[ -f "$rpm" ] || fail "rpmbuild made no package"
publish storktest 1.2-3 "$rpm" --quiet
pass "published an .rpm"
grep -q '<p class="summary">storkfs test package</p>' "$REPO/site/p/storktest.html" ||
	fail "the browse site does not show the .rpm's Summary: $(grep -i summary "$REPO/site/p/storktest.html" | head -3)"
pass "the .rpm's Summary is signed with it and shown on its page of the browse site"

verify_ok "stork verify passes for the whole repository"
grep -qE "^verified .*: $((n + 4)) packages, $((n + 4)) versions" "$T/out" ||
	fail "verify counts: $OUT (expected $((n + 4)) packages and versions)"
pass "verify counts $((n + 4)) packages"

# --- every version rebuilds exactly
for deb in "${DEBS[@]}"; do
	name=$(deb_field "$deb" Package)
	version=${DEB_VERSION[$name]}
	rm_rf "$T/ref" "$T/exp"
	deb_extract "$deb" "$T/ref"
	export_version "$name" "$version" "$T/exp"
	compare_tree "$T/ref" "$T/exp" || fail "$name $version: exported tree differs from dpkg-deb -x"
	[ "$(file_mtimes "$T/ref")" = "$(file_mtimes "$T/exp")" ] ||
		fail "$name $version: file mtimes differ from dpkg-deb -x"
done
pass "all $n .debs rebuild equal to dpkg-deb -x (with file mtimes)"

export_version treezst 1.0 "$T/exp-zst"
compare_tree "$src" "$T/exp-zst" || fail "tar.zst: exported tree differs from the source"
pass "tar.zst rebuilds equal to its source tree"

export_version treegz 2.0-1 "$T/exp-gz"
compare_tree "$T/src2-ref" "$T/exp-gz" || fail "tar.gz: exported tree differs from tar -x"
pass "tar.gz rebuilds equal to tar -x"

export_version treedir 0.1~rc1 "$T/exp-dir"
compare_tree "$src" "$T/exp-dir" || fail "directory: exported tree differs from the source"
[ "$(file_mtimes "$src")" = "$(file_mtimes "$T/exp-dir")" ] || fail "directory: file mtimes differ"
pass "directory rebuilds equal to its source (with file mtimes)"

mkdir -p "$T/rpm-ref"
(cd "$T/rpm-ref" && rpm2cpio "$rpm" | cpio -idm --quiet)
export_version storktest 1.2-3 "$T/exp-rpm"
compare_tree "$T/rpm-ref" "$T/exp-rpm" || fail "rpm: exported tree differs from rpm2cpio | cpio"
pass "rpm rebuilds equal to rpm2cpio | cpio -idm"

# --- manifests: format and dependencies
python3 - "$REPO" "$DEB_DIR" <<'EOF' || fail "manifest checks"
import glob, json, os, re, subprocess, sys

repo, debdir = sys.argv[1], sys.argv[2]

def manifest(name, version):
    hits = [p for p in glob.glob(os.path.join(repo, 'targets', name, '*'))
            if re.fullmatch(r'[0-9a-f]{64}\.' + re.escape(version) + r'\.json', os.path.basename(p))]
    assert len(hits) == 1, (name, version, hits)
    with open(hits[0], 'rb') as f:
        raw = f.read()
    m = json.loads(raw)
    canon = json.dumps(m, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()
    assert raw == canon, f'{hits[0]}: not canonical JSON'
    # spec_version 2 exactly when the manifest records provides, conflicts, breaks or replaces,
    # 3 when a file is stored by the piece (above 4 MiB: store/README.md "Chunks")
    spec = 2 if any(k in m for k in ('provides', 'conflicts', 'breaks', 'replaces')) else 1
    if any('chunks' in e for e in m['files']):
        spec = 3
    for e in m['files']:
        assert ('chunks' in e) == (e['type'] == 'file' and e['size'] > 4 << 20), (hits[0], e['path'])
    assert m['_type'] == 'storkfs-manifest' and m['spec_version'] == spec, hits[0]
    assert m['name'] == name and m['version'] == version, hits[0]
    paths = [e['path'] for e in m['files']]
    assert paths == sorted(paths, key=lambda p: p.encode()), f'{hits[0]}: files not sorted'
    return m

def norm(groups):
    return sorted(sorted(tuple(sorted(d.items())) for d in g) for g in groups)

def deb_deps(deb, fields=('Depends', 'Pre-Depends')):
    groups = []
    for field in fields:
        val = subprocess.run(['dpkg-deb', '-f', deb, field], capture_output=True, text=True,
                             check=True).stdout.strip()
        if not val:
            continue
        for grp in val.split(','):
            alts = []
            for alt in grp.split('|'):
                alt = alt.strip()
                mo = re.fullmatch(r'([^\s(]+)\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^\s)]+)\s*\))?', alt)
                assert mo, alt
                d = {'name': mo.group(1)}
                if mo.group(2):
                    d['op'], d['version'] = mo.group(2), mo.group(3)
                alts.append(d)
            groups.append(alts)
    return groups

checked = 0
for deb in sorted(glob.glob(os.path.join(debdir, '*.deb'))):
    name = subprocess.run(['dpkg-deb', '-f', deb, 'Package'], capture_output=True, text=True).stdout.strip()
    version = subprocess.run(['dpkg-deb', '-f', deb, 'Version'], capture_output=True, text=True).stdout.strip()
    m = manifest(name, version)
    assert m['format'] == 'deb', (name, m['format'])
    want, got = norm(deb_deps(deb)), norm(m['depends'])
    assert want == got, f'{name}: depends {m["depends"]} != control {deb_deps(deb)}'
    for key, field in (('provides', 'Provides'), ('conflicts', 'Conflicts'), ('breaks', 'Breaks'),
                       ('replaces', 'Replaces')):
        want, got = norm(deb_deps(deb, (field,))), norm(m.get(key, []))
        assert want == got, f'{name}: {key} {m.get(key)} != control {deb_deps(deb, (field,))}'
    checked += 1
print(f'ok: depends, provides, conflicts, breaks and replaces of {checked} .debs match their control files')
g = manifest('grep', [v for v in os.listdir(os.path.join(repo, 'targets', 'grep'))][0].split('.', 1)[1][:-5])
assert any(len(grp) == 2 for grp in g['depends']), 'grep: the "dpkg | install-info" alternative is missing'

r = manifest('storktest', '1.2-3')
assert r['format'] == 'rpm', r['format']
want = norm([[{'name': 'foo', 'op': '>=', 'version': '1.0'}], [{'name': 'bar'}],
             [{'name': 'baz', 'op': '=', 'version': '2:3.4-5'}],
             [{'name': 'qux', 'op': '<<', 'version': '3'}]])
assert norm(r['depends']) == want, f'rpm depends: {r["depends"]}'
provides = norm(r['provides'])
assert norm([[{'name': 'stork-virtual', 'op': '=', 'version': '4.0'}]])[0] in provides, provides
assert norm([[{'name': 'storktest', 'op': '=', 'version': '1.2-3'}]])[0] in provides, provides
assert norm(r['conflicts']) == norm([[{'name': 'oldstork', 'op': '<<', 'version': '1.0'}]]), r['conflicts']
assert r['spec_version'] == 2 and 'breaks' not in r, r
print('ok: rpm Requires recorded (rpmlib() and file paths dropped), Provides and Conflicts too')

for name, fmt in (('treezst', 'tar'), ('treegz', 'tar'), ('treedir', 'dir')):
    d = os.listdir(os.path.join(repo, 'targets', name))
    assert len(d) == 1
    m = manifest(name, d[0].split('.', 1)[1][:-5])
    assert m['format'] == fmt and m['depends'] == [], (name, m['format'], m['depends'])
    kinds = {e['type'] for e in m['files']}
    assert kinds == {'dir', 'file', 'symlink'}, kinds
print('ok: tar and dir manifests')
EOF
pass "manifests are canonical, sorted, and record .deb and .rpm dependencies"

# --- stork ls agrees
run "$STORK" ls --root "$ROOT" "$REPO"
[ "$RC" -eq 0 ] || fail "stork ls"
[ "$(printf '%s\n' "$OUT" | sed 1d | wc -l)" -eq $((n + 4)) ] || fail "stork ls lists $(printf '%s\n' "$OUT" | sed 1d | wc -l) packages, want $((n + 4))"
pass "stork ls lists every package"

done_ok
