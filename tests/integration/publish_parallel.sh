#!/usr/bin/env bash
# stork publish of a directory on worker threads, its objects synced and named in one batch
# (store/README.md, "Publishing in parallel"). A tree of 3,000 small files (distinct contents,
# plus 200 copies of one content, about 12 MB) is published: with at least 2 CPUs the
# publisher runs more than one thread at once (/proc/PID/status, sampled while it runs);
# stork verify checks every object against its name and the manifest, the copies make one
# object, no temporary file is left, and the version exports as the tree. On a terminal (a
# pseudo-terminal through script(1)) the publish prints progress ("... read"); with stderr
# not a terminal it prints none. A file above 4 MiB in a directory is still stored as chunks.
# A source that fails half-way (a fifo below many files)
# names no object and leaves no temporary file.
. "$(dirname "$0")/lib.sh"

need python3 zstd script

make_repo
SRC=$T/src
python3 - "$SRC" <<'EOF'
import os, random, sys
root = sys.argv[1]
r = random.Random(15)
for i in range(3000):
    d = os.path.join(root, f"d{i % 30}", f"e{i % 7}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        f.write(r.randbytes(r.randint(1, 8000)))
os.makedirs(os.path.join(root, "same"))
for i in range(200):
    with open(os.path.join(root, "same", f"c{i}"), "wb") as f:
        f.write(b"one content, 200 copies\n" * 40)
EOF
nfiles=$(find "$SRC" -type f | wc -l)

# --- in parallel, one batch --------------------------------------------------------------------
"$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" --quiet tree 1.0 "$SRC" \
	>"$T/out" 2>"$T/err" &
pid=$!
most=1
while kill -0 "$pid" 2>/dev/null; do
	n=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
	[ -z "$n" ] || [ "$n" -le "$most" ] || most=$n
	sleep 0.02
done
wait "$pid" || {
	cat "$T/err" >&2
	fail "stork publish tree 1.0 failed"
}
echo "# publish of $nfiles files: at most $most threads at once"
if [ "$(nproc)" -ge 2 ]; then
	[ "$most" -ge 3 ] || fail "stork publish ran at most $most threads at once on $(nproc) CPUs, want the walk and 2 workers"
	pass "the publish ran $most threads at once (the walk and a worker per CPU)"
fi
[ "$(count_objects)" -eq 3001 ] || fail "$(count_objects) objects, want 3001 (3000 distinct files and one for the 200 copies)"
pass "3,200 files made 3,001 objects"
left=$(find "$REPO/objects" -name '.tmp-*' | wc -l)
[ "$left" -eq 0 ] || fail "$left temporary files left in objects/"
pass "no temporary file left"
verify_ok "stork verify passes (every object hashed through the client's checking unpacker)"
export_version tree 1.0 "$T/export"
check "the version exports as the tree" compare_tree "$SRC" "$T/export"

# --- a big file in a directory is still cut into chunks (store/README.md "Chunks") ---------------
BIG=$T/big
mkdir -p "$BIG/lib"
rnd 15 $((9 << 20)) >"$BIG/lib/big.so"
echo small >"$BIG/lib/small"
publish big 1.0 "$BIG"
nbig=$(manifest_objects big 1.0 | awk '$3 == "lib/big.so"' | wc -l)
[ "$nbig" -ge 2 ] || fail "the 9 MiB file of a directory is $nbig object(s) in the manifest, want its chunks"
[ "$(find "$REPO/objects" -name '.tmp-*' | wc -l)" -eq 0 ] || fail "the big publish left temporary files"
verify_ok "stork verify passes over the chunks"
export_version big 1.0 "$T/export-big"
check "the version with the big file exports as its tree" compare_tree "$BIG" "$T/export-big"
pass "a directory's 9 MiB file is published as $nbig chunks beside the workers' files"

# --- progress on a terminal, none elsewhere -----------------------------------------------------
echo more >"$SRC/more"
script -qec "$(printf '%q ' "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" tree 2.0 "$SRC")" \
	/dev/null >"$T/tty.out" </dev/null || {
	cat "$T/tty.out" >&2
	fail "stork publish tree 2.0 on a terminal failed"
}
matches -F "publishing tree 2.0: " <"$T/tty.out" || {
	cat -A "$T/tty.out" | head -5 >&2
	fail "stork publish on a terminal printed no progress"
}
matches -E 'publishing tree 2\.0: [0-9.]+ [KMG]i?B read' <"$T/tty.out" ||
	fail "the progress line does not say how much was read: $(tr '\r' '\n' <"$T/tty.out" | head -3)"
pass "on a terminal, publish prints progress ($(tr '\r' '\n' <"$T/tty.out" | grep -c ' read') updates)"
echo more >"$SRC/more2"
publish tree 3.0 "$SRC"
! grep -q "read" "$T/err" || fail "stork publish with stderr not a terminal printed progress: $(head -c 200 "$T/err")"
pass "with stderr not a terminal, publish prints no progress"

# --- a source that fails half-way names nothing --------------------------------------------------
before=$(count_objects)
BAD=$T/bad
python3 - "$BAD" <<'EOF'
import os, random, sys
root = sys.argv[1]
r = random.Random(16)
for i in range(500):
    os.makedirs(os.path.join(root, f"a{i % 5}"), exist_ok=True)
    with open(os.path.join(root, f"a{i % 5}", f"g{i}"), "wb") as f:
        f.write(r.randbytes(2000))
os.makedirs(os.path.join(root, "z"))
os.mkfifo(os.path.join(root, "z", "fifo"))
EOF
run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" --quiet bad 1.0 "$BAD"
[ "$RC" -ne 0 ] || fail "publishing a source with a fifo succeeded"
err_has "the failure names the fifo" 'entry "z/fifo": fifos are not allowed in packages'
[ "$(count_objects)" -eq "$before" ] || fail "the failed publish named $(($(count_objects) - before)) objects"
left=$(find "$REPO/objects" -name '.tmp-*' | wc -l)
[ "$left" -eq 0 ] || fail "the failed publish left $left temporary files in objects/"
pass "a failed publish names no object and leaves no temporary file"
done_ok
