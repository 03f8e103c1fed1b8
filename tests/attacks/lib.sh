# tests/attacks/lib.sh: shared setup for the attack suite (sourced, never run). Everything of
# tests/integration/lib.sh (make_repo, publish, start_nginx, extract, mount_storkfs, pass, fail,
# done_ok, ...), plus what every attack needs: a hostile copy of the repository to serve, the
# forging tool, and the client's trusted state to compare before and after an attack.
#
# Stable interface (other attack scripts source this file; add, never change):
#   trusted_state STOREDIR          print the client's trusted metadata lines; fails when empty
#   save_trusted STOREDIR           remember them in TRUSTED_BEFORE
#   assert_unchanged DESC STOREDIR [BEFORE]
#                                   the trusted lines equal BEFORE (default $TRUSTED_BEFORE)
#   trusted_version STOREDIR ROLE   print the trusted version of ROLE (root, timestamp,
#                                   snapshot, targets or a delegated role name)
#   forge ARGS...                   python3 forge.py ARGS... (see forge.py --help); fails the
#                                   test when it fails; stdout in $OUT
#   serve_copy SRC DIR              make DIR an exact copy of the repository SRC (replacing
#                                   what DIR held; a server started on DIR serves the copy)
#   save_state NAME [REPO]          keep a copy of the repository's current state as NAME
#   serve_state NAME DIR            serve_copy of a state kept by save_state
#   refused DESC ARGS...            stork extract ARGS... must fail cleanly (exit 1..3, not a
#                                   timeout or a crash) and leave no destination (the last arg)
#   extract_same DESC SRC ARGS...   stork extract ARGS... must succeed and its destination
#                                   (the last arg) must equal the tree SRC
#   root_one_side new|old           the root_only_{new,old}_sigs scenario (see there)

. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

ATTACKS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FORGE_PY=$ATTACKS_DIR/forge.py
# the python for the many small helper runs: Debian's when there is one (a python3 found first
# in PATH may be a slow wrapper, e.g. a pyenv shim; these scripts need the standard library only)
PY=python3
[ ! -x /usr/bin/python3 ] || PY=/usr/bin/python3

# trusted_state STOREDIR: the client's trusted metadata, one line per role ("  trusted root
# version 2, expires ..."), as `stork status STOREDIR` prints it from the store's LMDB cache.
# Nothing printed is a failure: an attack test must never pass by comparing two empty states.
trusted_state() {
	local s
	s=$("$STORK" status "$1" 2>"$T/status.err" | grep '^  trusted ' || true)
	if [ -z "$s" ]; then
		echo "FAIL: $TEST_NAME: 'stork status $1' prints no '  trusted ' line" >&2
		cat "$T/status.err" >&2
		return 1
	fi
	printf '%s\n' "$s"
}

# save_trusted STOREDIR: TRUSTED_BEFORE=$(trusted_state STOREDIR), failing the test if empty.
save_trusted() {
	TRUSTED_BEFORE=$(trusted_state "$1") || fail "no trusted state in $1"
}

# assert_unchanged DESC STOREDIR [BEFORE]: the client's trusted state equals BEFORE
# ($TRUSTED_BEFORE by default).
assert_unchanged() {
	local desc=$1 store=$2 before=${3-$TRUSTED_BEFORE} now
	[ -n "$before" ] || fail "$desc: no trusted state recorded before the attack"
	now=$(trusted_state "$store") || fail "$desc: no trusted state in $store"
	if [ "$now" != "$before" ]; then
		echo "--- trusted before:" >&2
		printf '%s\n' "$before" >&2
		echo "--- trusted now:" >&2
		printf '%s\n' "$now" >&2
		fail "$desc: the client's trusted state changed"
	fi
	pass "$desc"
}

# trusted_version STOREDIR ROLE: the version the client trusts for ROLE (empty if none).
trusted_version() {
	local store=$1 role=$2
	case $role in
	root | timestamp | snapshot | targets) ;;
	*) role="role $role" ;;
	esac
	"$STORK" status "$store" 2>/dev/null |
		sed -nE "s/^  trusted $role +version ([0-9]+),.*/\1/p" | head -n 1
}

# forge ARGS...: the forging tool (tests/attacks/forge.py); its output in $OUT.
forge() {
	run "$PY" "$FORGE_PY" "$@"
	if [ "$RC" -ne 0 ]; then
		_show_run
		fail "forge.py $*"
	fi
}

# serve_copy SRC DIR: DIR becomes an exact copy of SRC, swapped in by renames so that a
# server on DIR never serves half of each.
serve_copy() {
	local src=$1 dir=$2
	rm -rf "$dir.new" "$dir.old"
	cp -a "$src" "$dir.new"
	[ ! -e "$dir" ] || mv "$dir" "$dir.old"
	mv "$dir.new" "$dir"
	rm -rf "$dir.old"
}

# save_state NAME [REPO]: keep a copy of REPO ($REPO) as it is now, in $T/states/NAME.
save_state() {
	mkdir -p "$T/states"
	rm -rf "$T/states/$1"
	cp -a "${2:-$REPO}" "$T/states/$1"
}

# serve_state NAME DIR: serve the state NAME kept by save_state in DIR.
serve_state() {
	[ -d "$T/states/$1" ] || fail "no saved repository state $1"
	serve_copy "$T/states/$1" "$2"
}

# refused DESC ARGS...: `stork extract --root $ROOT ARGS...` fails cleanly: exit 1, 2 or 3 (not
# 0, not a timeout, not a signal), and its destination (the last argument) does not exist.
refused() {
	local desc=$1 dest
	shift
	dest=${!#}
	extract "$@"
	if [ "$RC" -eq 0 ] || [ "$RC" -gt 3 ]; then
		_show_run
		fail "$desc: stork extract should fail cleanly, exit $RC"
	fi
	if grep -qE 'Sanitizer|runtime error:' "$T/err"; then
		_show_run
		fail "$desc: sanitizer report"
	fi
	[ ! -e "$dest" ] || fail "$desc: the refused extract left its destination $dest"
	pass "$desc (exit $RC)"
}

# extract_same DESC SRC ARGS...: stork extract ARGS... succeeds and its destination (the last
# argument) is the same tree as SRC.
extract_same() {
	local desc=$1 src=$2 dest
	shift 2
	dest=${!#}
	rm -rf "$dest"
	extract_ok "$desc: extracts" "$@"
	compare_tree "$src" "$dest" || fail "$desc: $dest differs from $src"
	pass "$desc: identical to its source"
}

# meta_version FILE: the signed version of a metadata file.
meta_version() {
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["signed"]["version"])' "$1"
}

# snapshot_version [REPO]: the snapshot version REPO's ($REPO) timestamp.json names.
snapshot_version() {
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["signed"]["meta"]["snapshot.json"]["version"])' \
		"${1:-$REPO}/metadata/timestamp.json"
}

# genuine_or_refused DESC SRC ARGS...: stork extract ARGS... either fails cleanly (exit 1..3,
# no destination) or succeeds with a destination (the last argument) identical to SRC: never
# anything else.
genuine_or_refused() {
	local desc=$1 src=$2 dest
	shift 2
	dest=${!#}
	rm -rf "$dest"
	extract "$@"
	if grep -qE 'Sanitizer|runtime error:' "$T/err"; then
		_show_run
		fail "$desc: sanitizer report"
	fi
	if [ "$RC" -eq 0 ]; then
		compare_tree "$src" "$dest" || fail "$desc: exit 0 with a tree that differs from $src"
		pass "$desc: served the genuine tree"
	elif [ "$RC" -le 3 ]; then
		[ ! -e "$dest" ] || fail "$desc: the failed extract left its destination $dest"
		pass "$desc: refused (exit $RC)"
	else
		_show_run
		fail "$desc: stork extract exited $RC"
	fi
}

# compare_content A B: the same paths, file bytes and symlink targets (modes not compared: a
# mount shows files read-only). Prints the first differences and returns 1 when they differ.
compare_content() {
	if ! diff -r --no-dereference "$1" "$2" >"$T/content.diff" 2>&1; then
		echo "contents differ: $1 $2" >&2
		head -20 "$T/content.diff" >&2
		return 1
	fi
}

# hostile_root2 DIR SIGNER...: in the served repository copy DIR, a root version 2 that
# replaces the root key by $T/root-new.key and the timestamp key by $T/mallory-ts.key (both
# made here), signed by the SIGNER key files, and a timestamp (version + 1) signed by the
# mallory key: if the client took that root, it would take the attacker's timestamp.
hostile_root2() {
	local dir=$1 s signers=()
	shift
	[ -e "$T/root-new.key" ] || forge keygen "$T/root-new.key"
	[ -e "$T/mallory-ts.key" ] || forge keygen "$T/mallory-ts.key"
	for s in "$@"; do
		signers+=(--sign "$s")
	done
	forge role "$dir" root --remove-key "root=$KEYS/root.key" --add-key "root=$T/root-new.key" \
		--remove-key "timestamp=$KEYS/timestamp.key" --add-key "timestamp=$T/mallory-ts.key" \
		"${signers[@]}"
	forge edit "$dir/metadata/timestamp.json" --version +1 --sign "$T/mallory-ts.key"
}

# root_one_side new|old: the root_only_*_sigs scenario: pkg 1.0 extracted from a copy of the
# repository, then hostile_root2 signed only by the new root key or only by the old one must
# be refused naming the file and the signature count, twice (a new process too), with the
# trusted state unchanged on root 1; control: the same root signed by both keys is followed
# by a fresh client.
root_one_side() {
	local which=$1 key www=$T/www store=$T/store
	need python3 nginx openssl
	make_repo
	key=$KEYS/root.key
	[ "$which" = old ] || key=$T/root-new.key
	synth_tree "$T/v1" 1
	publish pkg 1.0 "$T/v1"
	serve_copy "$REPO" "$www"
	start_nginx "$www"
	extract_same "genuine: pkg 1.0" "$T/v1" --store "$store" "$NGINX_URL" pkg 1.0 "$T/x1"
	save_trusted "$store"

	hostile_root2 "$www" "$key"
	refused "root 2 signed only by the $which root key: refused" --store "$store" "$NGINX_URL" \
		pkg 1.0 "$T/x2"
	echo "# $ERR"
	err_has "the error names the root file and the signature count" \
		"metadata/2.root.json: 0 of 1 required signatures from role root"
	assert_unchanged "root 2 signed only by the $which key: trusted state unchanged (root 1)" \
		"$store"
	[ "$(trusted_version "$store" root)" = 1 ] || fail "the client left root 1"
	# a client that restarts refuses it again (nothing of it was kept)
	refused "again, a new process: refused" --store "$store" "$NGINX_URL" pkg 1.0 "$T/x3"
	assert_unchanged "again: trusted state unchanged" "$store"

	# control: signed by the old and the new root key, a fresh client follows it
	serve_copy "$REPO" "$www"
	hostile_root2 "$www" "$KEYS/root.key" "$T/root-new.key"
	extract_same "control: root 2 signed by both keys is followed" "$T/v1" --store "$T/store2" \
		"$NGINX_URL" pkg 1.0 "$T/x4"
	[ "$(trusted_version "$T/store2" root)" = 2 ] ||
		fail "control: the fresh client does not trust root 2"
	pass "control: the fresh client trusts root 2"
}
