#!/usr/bin/env bash
# Hostile and broken sources are refused (exit 2) with an error naming the archive and the
# entry, and a refused publish leaves the repository's metadata and targets byte-identical
# (objects/ may only gain complete, valid objects).
. "$(dirname "$0")/lib.sh"

need python3 zstd gzip tar
make_repo

H=$T/h
mkdir -p "$H"
python3 - "$H" <<'EOF'
import io, os, random, sys, tarfile

out = sys.argv[1]
rnd = random.Random(1)

def member(name, kind=tarfile.REGTYPE, data=b'', **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = kw.get('mode', 0o644 if kind == tarfile.REGTYPE else 0o755)
    ti.mtime = 1700000000
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    for k in ('linkname', 'devmajor', 'devminor'):
        if k in kw:
            setattr(ti, k, kw[k])
    if 'size' in kw:
        ti.size = kw['size']
    return ti, data

def write_tar(fname, members, mode='w', fmt=tarfile.GNU_FORMAT):
    with tarfile.open(os.path.join(out, fname), mode, format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)

d = tarfile.DIRTYPE
good = [member('usr', d), member('usr/bin', d), member('usr/bin/tool', data=b'#!/bin/sh\n', mode=0o755),
        member('usr/bin/t', tarfile.SYMTYPE, linkname='tool')]
write_tar('good.tar', good)

write_tar('dotdot.tar', good + [member('../evil', data=b'evil\n')])
write_tar('dotdot-inner.tar', good + [member('usr/../../evil2', data=b'evil\n')])
write_tar('absolute.tar', good + [member('/etc/evil3', data=b'evil\n')])
write_tar('through-symlink.tar', good + [member('escape', tarfile.SYMTYPE, linkname='/tmp'),
                                         member('escape/evil4', data=b'evil\n')])
write_tar('through-symlink-rel.tar', good + [member('up', tarfile.SYMTYPE, linkname='../..'),
                                             member('up/evil5', data=b'evil\n')])
write_tar('below-file.tar', good + [member('usr/bin/tool/evil6', data=b'evil\n')])
write_tar('chardev.tar', good + [member('usr/null7', tarfile.CHRTYPE, devmajor=1, devminor=3)])
write_tar('blockdev.tar', good + [member('usr/disk8', tarfile.BLKTYPE, devmajor=8, devminor=0)])
write_tar('fifo.tar', good + [member('usr/fifo9', tarfile.FIFOTYPE)])
write_tar('duplicate.tar', good + [member('usr/dup10', data=b'one\n'), member('usr/dup10', data=b'two\n')])
write_tar('duplicate-type.tar', good + [member('usr/dup11', d), member('usr/dup11', data=b'x\n')])
write_tar('hardlink-unknown.tar', good + [member('usr/hl12', tarfile.LNKTYPE, linkname='usr/nonexistent')])
write_tar('control-char.tar', good + [member('usr/bad\x01name13', data=b'x\n')])
write_tar('newline.tar', good + [member('usr/new\nline14', data=b'x\n')])

# truncated: a member's data cut in the middle, plain and gzip
big = rnd.randbytes(200000)
write_tar('full.tar', good + [member('usr/big15.bin', data=big)])
raw = open(os.path.join(out, 'full.tar'), 'rb').read()
open(os.path.join(out, 'truncated.tar'), 'wb').write(raw[:len(raw) // 2])
write_tar('full.tar.gz', good + [member('usr/big16.bin', data=big)], mode='w:gz')
raw = open(os.path.join(out, 'full.tar.gz'), 'rb').read()
open(os.path.join(out, 'truncated.tar.gz'), 'wb').write(raw[:len(raw) // 2])
os.unlink(os.path.join(out, 'full.tar'))
os.unlink(os.path.join(out, 'full.tar.gz'))

# a header that declares 1 GiB, followed by 1 KiB and the end of the file
def raw_member(ti, data):
    pad = (-len(data)) % 512
    return ti.tobuf(tarfile.GNU_FORMAT, 'utf-8', 'surrogateescape') + data + b'\0' * pad
ti, _ = member('usr/huge17', size=1 << 30)
body = b''.join(raw_member(m, data) for m, data in good)
open(os.path.join(out, 'declared-size.tar'), 'wb').write(body + raw_member(ti, b'') + b'\0' * 1024)

# a .deb whose data archive climbs out
def ar(members):
    b = b'!<arch>\n'
    for name, data in members:
        b += (f'{name:<16}{1700000000:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n').encode()
        b += data + (b'\n' if len(data) % 2 else b'')
    return b

def tgz(members):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w:gz', format=tarfile.GNU_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return bio.getvalue()

control = tgz([member('./', d), member('./control', data=b'Package: evil\nVersion: 1.0\n'
              b'Architecture: all\nMaintainer: x <x@example.org>\nDescription: evil\n')])
gooddata = tgz([member('./', d), member('./usr/', d), member('./usr/ok', data=b'ok\n')])
evildata = tgz([member('./', d), member('./usr/', d), member('./../evil18', data=b'evil\n')])
open(os.path.join(out, 'good.deb'), 'wb').write(
    ar([('debian-binary', b'2.0\n'), ('control.tar.gz', control), ('data.tar.gz', gooddata)]))
open(os.path.join(out, 'evil.deb'), 'wb').write(
    ar([('debian-binary', b'2.0\n'), ('control.tar.gz', control), ('data.tar.gz', evildata)]))
EOF

# compression bombs: 1 GiB of zeros in one member, refused with --max-size 100 MiB
mkdir -p "$T/bomb"
truncate -s 1G "$T/bomb/zeros19"
(cd "$T/bomb" && tar -cf - zeros19) | zstd -q -3 -o "$H/bomb.tar.zst"
(cd "$T/bomb" && tar -cf - zeros19) | gzip -1 >"$H/bomb.tar.gz"
rm_rf "$T/bomb"
echo "# bombs: $(stat -c %s "$H/bomb.tar.zst") bytes of zstd, $(stat -c %s "$H/bomb.tar.gz") bytes of gzip for 1 GiB"

# directory sources holding a fifo and a socket
mkdir -p "$H/dir-fifo/usr" "$H/dir-socket/usr"
printf 'ok\n' >"$H/dir-fifo/usr/ok"
mkfifo "$H/dir-fifo/usr/fifo20"
printf 'ok\n' >"$H/dir-socket/usr/ok"
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$H/dir-socket/usr/sock21"

# controls: the same generator's good archive and .deb are accepted
publish good 1.0 "$H/good.tar"
publish gooddeb 1.0 "$H/good.deb"
pass "the generator's well-formed tar and .deb are accepted"
verify_ok
ls_before=$("$STORK" ls --root "$ROOT" "$REPO")

# refuse SOURCE ENTRY... : publishing SOURCE exits 2 naming the source and each ENTRY word;
# metadata and targets are unchanged; no temporary file is left behind.
refuse() {
	local src=$1 base name
	shift
	base=$(basename "$src")
	name=hostile
	local before
	before=$(meta_sums)
	local objs
	objs=$(count_objects)
	# a hostile source must not hang the publisher (a fifo opened for reading would)
	expect_rc 2 "$base is refused" timeout -k 5 300 "$STORK" publish "$REPO" --keys "$KEYS" \
		--key "$PUBKEY" --max-size 104857600 "$name" 1.0 "$src"
	err_has "the error for $base names the source and the entry" "$base" "$@"
	[ "$before" = "$(meta_sums)" ] || fail "$base: the refused publish changed metadata/ or targets/"
	if find "$REPO" -name '.tmp-*' | matches .; then
		fail "$base: the refused publish left temporary files: $(find "$REPO" -name '.tmp-*')"
	fi
	[ "$(count_objects)" -ge "$objs" ] || fail "$base: objects disappeared"
	pass "$base: metadata and targets byte-identical, no temporary file left"
}

refuse "$H/dotdot.tar" "../evil"
refuse "$H/dotdot-inner.tar" "usr/../../evil2"
refuse "$H/absolute.tar" "/etc/evil3"
refuse "$H/through-symlink.tar" "escape/evil4"
refuse "$H/through-symlink-rel.tar" "up/evil5"
refuse "$H/below-file.tar" "usr/bin/tool/evil6"
refuse "$H/chardev.tar" "usr/null7"
refuse "$H/blockdev.tar" "usr/disk8"
refuse "$H/fifo.tar" "usr/fifo9"
refuse "$H/duplicate.tar" "usr/dup10"
refuse "$H/duplicate-type.tar" "usr/dup11"
refuse "$H/hardlink-unknown.tar" "usr/hl12"
refuse "$H/control-char.tar" "usr/bad" "name13"
refuse "$H/newline.tar" "usr/new" "line14"
refuse "$H/truncated.tar" "usr/big15.bin"
refuse "$H/truncated.tar.gz" "usr/big16.bin"
refuse "$H/declared-size.tar" "usr/huge17"
refuse "$H/evil.deb" "../evil18"
refuse "$H/bomb.tar.zst" "zeros19"
refuse "$H/bomb.tar.gz" "zeros19"
refuse "$H/dir-fifo" "usr/fifo20"
refuse "$H/dir-socket" "usr/sock21"

# an error message must not carry raw control characters to the terminal
refuse "$H/control-char.tar" "usr/bad"
if LC_ALL=C grep -q $'\x01' "$T/err"; then
	fail "the error message prints the raw control character"
fi
pass "control characters in names are escaped in the error message"

[ "$ls_before" = "$("$STORK" ls --root "$ROOT" "$REPO")" ] || fail "stork ls changed after the refusals"
pass "stork ls lists the same packages as before the refusals"
verify_ok "verify passes after all refusals"
check_objects || fail "objects/ holds an object that is not the zstd of the content its name hashes"
pass "every object left by a refused import is complete and valid"

done_ok
