#!/usr/bin/env bash
# Cold reads through a fresh mount (fs/README.md, "Cold reads"). Package "many" 1.0 holds 600
# files of 1000..3000 random bytes in 12 directories, so it has a version pack.
# - Every file read once in path order through a fresh mount: the right bytes, and nginx
#   served them mostly as range requests over the pack (206), with at most 16 single object
#   requests (the lazy start and the window edges), not one request per file.
# - Package "nest" 1.0 (40 directories mNN of 10 files, each with the siblings mNN-x.pm and
#   mNN.pm, which the pack, in path order, has before mNN/ and `find` visits after it): every
#   file read once in `find` order through a fresh mount: the right bytes, and at most 48
#   single object requests, a tenth of the files (9 when the windows never stop; 21 seen
#   once on a loaded machine; 320 when the files `find` comes back to stopped fetch-ahead).
# - Package "big" 1.0 (200 files of 2000..3000 random bytes, and after the 100th a file of 80,000
#   random bytes, which the pack does not hold): its first 90 files read in path order through
#   a fresh mount; then nginx has sent the big file too (a window brings the files among its
#   own that the pack does not hold), which nobody opened.
# - A seeded random 10% of the files, read in path order through another fresh mount: the
#   right bytes, and the bytes nginx sent for objects and the pack / the bytes read <= 1.05.
# - The pack lies (bytes flipped in the middle of it): every file still reads right; the
#   objects it spoiled are logged and fetched on their own.
# - No sync per object: each unmount (clean) leaves every fetched object indexed: `stork fsck`
#   is clean and adopts nothing.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse

NFILES=600
make_repo
python3 - "$T/src" "$NFILES" <<-'EOF'
	import os, random, sys
	top, n = sys.argv[1], int(sys.argv[2])
	r = random.Random(15)
	for i in range(n):
	    d = os.path.join(top, "d%02d" % (i % 12))
	    os.makedirs(d, exist_ok=True)
	    with open(os.path.join(d, "f%04d" % i), "wb") as f:
	        f.write(r.randbytes(r.randint(1000, 3000)))
EOF
publish many 1.0 "$T/src" --quiet
python3 - "$T/nest" <<-'EOF'
	import os, random, sys
	top = sys.argv[1]
	r = random.Random(16)
	for i in range(40):
	    os.makedirs(os.path.join(top, "m%02d" % i))
	    for name in ["m%02d/f%02d" % (i, j) for j in range(10)] + ["m%02d-x.pm" % i, "m%02d.pm" % i]:
	        with open(os.path.join(top, name), "wb") as f:
	            f.write(r.randbytes(r.randint(1000, 3000)))
EOF
publish nest 1.0 "$T/nest" --quiet
python3 - "$T/big" <<-'EOF'
	import os, random, sys
	top = sys.argv[1]
	r = random.Random(17)
	os.makedirs(top)
	for i in range(200):
	    with open(os.path.join(top, "f%03d" % i), "wb") as f:
	        f.write(r.randbytes(r.randint(2000, 3000)))
	with open(os.path.join(top, "f099z"), "wb") as f:
	    f.write(r.randbytes(80000))
EOF
publish big 1.0 "$T/big" --quiet
PACK=$(find "$REPO/targets/many" -name '*.pack')
[ -f "$PACK" ] || fail "publish wrote no version pack"
(cd "$T/src" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$T/all"
start_nginx "$REPO"

# read_in_order LIST: every file of LIST read once through $MNT, in the list's order, by one
# process; their sums in $T/got, compared with the source's.
read_in_order() {
	python3 - "$MNT/many/1.0" "$1" >"$T/got" <<-'EOF' || fail "reading through the mount failed"
		import hashlib, sys
		top = sys.argv[1]
		for p in open(sys.argv[2]).read().split():
		    with open(top + "/" + p, "rb") as f:
		        print(hashlib.sha256(f.read()).hexdigest(), p)
	EOF
	(cd "$T/src" && xargs sha256sum <"$1") | sed 's/  / /' >"$T/want"
	diff -u "$T/want" "$T/got" >"$T/diff" || {
		head -20 "$T/diff" >&2
		fail "files read through the mount differ from the source"
	}
}

# fetched_bytes: body bytes nginx sent for objects and packs since the log was emptied.
fetched_bytes() {
	awk '$7 ~ /^\/(objects\/|targets\/.*\.pack)/ { b += $10 } END { print b + 0 }' "$NGINX_DIR/access.log"
}

# --- every file, in path order
MNT=$T/mnt
: >"$NGINX_DIR/access.log"
mount_storkfs "$MNT" "store=$T/store1,timeout=30" "$NGINX_URL"
read_in_order "$T/all"
pass "all $NFILES files read through a fresh mount with the right bytes"
objreq=$(nginx_requests '"GET /objects/')
ranges=$(nginx_requests '\.pack HTTP/[0-9.]*" 206 ')
echo "# object requests: $objreq, range requests over the pack: $ranges"
[ "$ranges" -ge 1 ] || fail "no range request over the version pack"
[ "$objreq" -le 16 ] || fail "$objreq single object requests for $NFILES files read in order (at most 16)"
pass "reading in order: $ranges range requests over the pack, $objreq single object requests"
unmount_storkfs "$MNT"
# every file in objects/ (the files and the manifest) is listed by the index
files=$(count_objects "$T/store1")
[ "$files" -eq $((NFILES + 1)) ] || fail "$files files in the store's objects/, $((NFILES + 1)) expected"
run "$STORK" status "$T/store1"
[ "$RC" -eq 0 ] || fail "stork status: $ERR"
indexed=$(awk '$1 == "objects" { print $2; exit }' "$T/out")
[ "$indexed" = "$files" ] || fail "after a clean unmount the index lists $indexed objects of the $files stored"
run "$STORK" fsck "$T/store1"
[ "$RC" -eq 0 ] && grep -qF "0 interrupted inserts finished" "$T/out" && grep -qxF "$T/store1: clean" "$T/out" ||
	fail "stork fsck after a clean unmount: $OUT $ERR"
pass "a clean unmount leaves every object synced and indexed ($indexed; fsck clean, nothing to adopt)"

# --- another tree, every file in `find` order (a directory before its siblings mNN-x.pm and
# mNN.pm, which the pack has before it)
(cd "$T/nest" && find . -type f | sed 's|^\./||') >"$T/nest.find"
: >"$NGINX_DIR/access.log"
mount_storkfs "$MNT" "store=$T/store4,timeout=30" "$NGINX_URL"
(cd "$MNT/nest/1.0" && find . -type f | sed 's|^\./||') >"$T/nest.order"
python3 - "$MNT/nest/1.0" "$T/nest.order" >"$T/got" <<-'EOF' || fail "reading nest through the mount failed"
	import hashlib, sys
	top = sys.argv[1]
	for p in open(sys.argv[2]).read().split():
	    with open(top + "/" + p, "rb") as f:
	        print(hashlib.sha256(f.read()).hexdigest(), p)
EOF
(cd "$T/nest" && xargs sha256sum <"$T/nest.order") | sed 's/  / /' | diff -u - "$T/got" >"$T/diff" ||
	fail "files of nest read through the mount differ from the source: $(head -5 "$T/diff")"
[ "$(sort "$T/nest.order")" = "$(sort "$T/nest.find")" ] || fail "find lists other files through the mount"
[ "$(sed -n '11p;12p' "$T/nest.order" | tr '\n' ' ')" = "m00-x.pm m00.pm " ] ||
	fail "find did not visit m00/ before m00-x.pm and m00.pm: $(head -14 "$T/nest.order" | tr '\n' ' ')"
objreq=$(nginx_requests '"GET /objects/')
ranges=$(nginx_requests '\.pack HTTP/[0-9.]*" 206 ')
echo "# nest in find order: object requests: $objreq, range requests over the pack: $ranges"
[ "$ranges" -ge 1 ] && [ "$objreq" -le 48 ] ||
	fail "nest read in find order: $objreq single object requests (at most 48), $ranges range requests over the pack"
pass "480 files read in find order: $ranges range requests over the pack, $objreq single object requests"
unmount_storkfs "$MNT"

# --- the files of "big" up to the 90th in path order: the big file after the 100th is fetched
# alongside a window, unopened
: >"$NGINX_DIR/access.log"
mount_storkfs "$MNT" "store=$T/store5,timeout=30" "$NGINX_URL"
python3 - "$MNT/big/1.0" <<-'EOF' || fail "reading big through the mount failed"
	import sys
	for i in range(90):
	    open(sys.argv[1] + "/f%03d" % i, "rb").read()
EOF
bigobj=$(object_path "$(sha "$T/big/f099z")")
for _ in $(seq 100); do
	[ "$(nginx_requests "\"GET /$bigobj HTTP")" -ge 1 ] && break
	sleep 0.1
done
ranges=$(nginx_requests '\.pack HTTP/[0-9.]*" 206 ')
[ "$(nginx_requests "\"GET /$bigobj HTTP")" -ge 1 ] ||
	fail "90 of big's files read in order ($ranges range requests over the pack): nginx sent no $bigobj, the file of 80,000 bytes after the 100th"
pass "90 of big's files read in order: the file the pack does not hold among the next ones came along ($ranges range requests)"
unmount_storkfs "$MNT"

# --- a seeded random 10%
python3 -c 'import random, sys
r = random.Random(int(sys.argv[2]))
ps = open(sys.argv[1]).read().split()
print("\n".join(sorted(r.sample(ps, len(ps) // 10))))' "$T/all" "$STORK_TEST_SEED" >"$T/some"
: >"$NGINX_DIR/access.log"
mount_storkfs "$MNT" "store=$T/store2,timeout=30" "$NGINX_URL"
read_in_order "$T/some"
read_bytes=$(cd "$T/src" && xargs stat -c %s <"$T/some" | awk '{ b += $1 } END { print b }')
got_bytes=$(fetched_bytes)
ratio=$(python3 -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):.3f}")' "$got_bytes" "$read_bytes")
echo "# random 10%: $read_bytes bytes read, $got_bytes fetched: ratio $ratio"
python3 -c 'import sys; sys.exit(float(sys.argv[1]) > 1.05)' "$ratio" ||
	fail "reading a random 10% fetched $got_bytes bytes for $read_bytes read (ratio $ratio > 1.05)"
pass "reading a random 10%: fetched / read = $ratio (<= 1.05)"
unmount_storkfs "$MNT"

# --- a pack that lies
python3 - "$PACK" <<-'EOF'
	import sys
	p = sys.argv[1]
	b = bytearray(open(p, "rb").read())
	for i in range(len(b) // 3, len(b) // 3 + 20000, 97):
	    b[i] ^= 0xff
	open(p, "wb").write(b)
EOF
: >"$NGINX_DIR/access.log"
mount_storkfs "$MNT" "store=$T/store3,timeout=30" "$NGINX_URL"
read_in_order "$T/all"
grep -q 'did not verify; they are fetched on their own' "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "the spoiled objects of the lying pack were not logged"
}
pass "a lying pack: every file reads right, the spoiled objects fetched on their own"
unmount_storkfs "$MNT"
fsck_clean "the store after the lying pack" "$T/store3"
done_ok
