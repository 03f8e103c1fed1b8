#!/usr/bin/env bash
# stork extract of a package of many small files fetches like stork prefetch (issue 11, item
# 12): the version pack in one request, not one request (and three syncs) per object. The tree
# comes out identical, the store is clean, and a second extract sends no request at all.
. "$(dirname "$0")/lib.sh"

need nginx python3
NFILES=${STORK_EXTRACT_PACK_FILES:-2000}
python3 - "$T/src" "$NFILES" "$STORK_TEST_SEED" <<-'PY'
	import os, random, sys
	top, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	r = random.Random(seed)
	for i in range(n):
	    d = os.path.join(top, "d%02d" % (i % 20))
	    os.makedirs(d, exist_ok=True)
	    with open(os.path.join(d, "f%05d" % i), "wb") as f:
	        f.write(b"%d:" % i + r.randbytes(r.randint(1, 2000)))
PY
make_repo
publish many 1.0 "$T/src" --quiet
start_nginx "$REPO"

t0=$(date +%s%N)
extract_ok "many 1.0 ($NFILES small files) extracts" --store "$T/store" "$NGINX_URL" many 1.0 "$T/dest"
ms=$((($(date +%s%N) - t0) / 1000000))
echo "# extract of $NFILES files: $ms ms"
check "many 1.0 is identical to its source" compare_tree "$T/src" "$T/dest"
[ "$X_FETCHED" -eq "$NFILES" ] || fail "extract says $X_FETCHED objects fetched, want $NFILES"
packs=$(nginx_requests '"GET /targets/many/[0-9a-f]{64}\.1\.0\.pack ')
objs=$(nginx_requests '"GET /objects/')
[ "$packs" -eq 1 ] && [ "$objs" -eq 0 ] ||
	fail "expected one request for the version pack and none per object; got $packs pack and $objs object requests"
pass "one request for the version pack, none per object"
fsck_clean "the store is clean" "$T/store"

before=$(wc -l <"$NGINX_DIR/access.log")
extract_ok "a second extract from the same store" --store "$T/store" "$NGINX_URL" many 1.0 "$T/dest2"
[ "$X_FETCHED" -eq 0 ] || fail "the second extract fetched $X_FETCHED objects"
[ "$(nginx_requests '"GET /(objects/|targets/many/.*\.pack)')" -eq 1 ] ||
	fail "the second extract asked for objects or the pack: $(tail -n +$((before + 1)) "$NGINX_DIR/access.log" | head -3)"
pass "a second extract asks for no object and no pack"
done_ok
