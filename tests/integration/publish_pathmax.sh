#!/usr/bin/env bash
# Issue 11, item 9: a path or symlink target of exactly 4096 bytes cannot be used (PATH_MAX
# counts the terminating NUL: a system call takes at most 4095 bytes). Publish refuses it with
# a message that names the entry and the problem, whole (the entry shortened, never the
# message cut); 4095 bytes publish, extract (path and target intact) and readlink through the
# mount.
. "$(dirname "$0")/lib.sh"

need python3 nginx
# mktar OUT PATHLEN TARGETLEN: a tarball with a file at a path of PATHLEN bytes (components of
# at most 200) and a symlink "link" whose target is TARGETLEN bytes.
mktar() {
	python3 - "$@" <<-'PY'
		import io, sys, tarfile
		out, plen, tlen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
		def longpath(n, last):
		    parts, left = [], n - len(last)
		    while left > 0:
		        k = min(200, left - 1) if left > 201 else left - 1
		        parts.append("d" * k)
		        left -= k + 1
		    return "/".join(parts + [last])
		with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
		    p = longpath(plen, "f")
		    assert len(p) == plen, (len(p), plen)
		    data = b"at the end of a long path\n"
		    ti = tarfile.TarInfo(p); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000
		    t.addfile(ti, io.BytesIO(data))
		    tgt = longpath(tlen, "target")
		    assert len(tgt) == tlen
		    ti = tarfile.TarInfo("link"); ti.type = tarfile.SYMTYPE; ti.linkname = tgt
		    ti.mode = 0o777; ti.mtime = 1700000000
		    t.addfile(ti)
	PY
}
make_repo
mktar "$T/path4096.tar" 4096 100
mktar "$T/target4096.tar" 100 4096
mktar "$T/ok4095.tar" 4095 4095

for c in path4096 target4096; do
	run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" "$c" 1.0 "$T/$c.tar"
	if [ "$RC" -eq 0 ]; then
		fail "$c: publish accepted a ${c%4096} of 4096 bytes"
	fi
	grep -qE 'longer than 4095 bytes' "$T/err" || {
		_show_run
		fail "$c: the refusal does not say what is wrong"
	}
	len=$(wc -c <"$T/err")
	[ "$len" -lt 2000 ] && tail -c 200 "$T/err" | grep -q 'longer than 4095 bytes' || fail "$c: the message is $len bytes or does not end with the problem"
	pass "$c: publish refuses it, saying the path or target is longer than 4095 bytes"
done

publish ok 1.0 "$T/ok4095.tar"
start_nginx "$REPO"
extract_ok "paths and targets of 4095 bytes extract" --store "$T/store" "$NGINX_URL" ok 1.0 "$T/dest"
python3 - "$T/dest" <<-'PY' || fail "the extracted tree does not hold the 4095-byte path and target"
	import os, sys
	d = os.open(sys.argv[1], os.O_RDONLY)
	t = os.readlink("link", dir_fd=d)
	assert len(t) == 4095, len(t)
	f = []
	for root, dirs, fs, rfd in os.fwalk(".", dir_fd=d):
	    f += [os.path.join(root, n)[2:] for n in fs if n == "f"]
	assert len(f) == 1 and len(f[0]) == 4095, [len(x) for x in f]
PY
pass "the tree holds the 4095-byte path and the 4095-byte symlink target"
MNT=$T/mnt
mount_storkfs "$MNT" "store=$T/store2,timeout=30" "$NGINX_URL"
got=$(readlink "$MNT/ok/1.0/link" | wc -c)
[ "$got" -eq 4096 ] || fail "readlink through the mount gives $((got - 1)) bytes, want 4095"
pass "readlink through the mount gives the 4095-byte target"
done_ok
