# tests/integration/lib.sh: shared setup for the integration tests (sourced, never run).
#
# Environment (set by tests/meson.build):
#   STORK        the stork binary
#   REPO_EXPORT  tests/tools/repo-export
#   STORK_TESTS  the tests/ source directory
# Optional:
#   STORK_TEST_CACHE  where downloaded .debs and node modules are kept (/var/cache/storkfs-tests)
#   STORK_TEST_SEED   seed for the random choices (printed by every test; set it to replay a run)
#   STORK_TEST_KEEP=1 keep the temporary directory
#   CI=true           a missing tool fails the test instead of skipping it (exit 77)

set -euo pipefail
umask 022
export LC_ALL=C.UTF-8 TZ=UTC

: "${STORK_TESTS:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
STORK_TEST_CACHE=${STORK_TEST_CACHE:-/var/cache/storkfs-tests}
TEST_NAME=$(basename "$0" .sh)

STORK_TEST_SEED=${STORK_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
RANDOM=$((STORK_TEST_SEED % 32768))
echo "# $TEST_NAME: seed STORK_TEST_SEED=$STORK_TEST_SEED"

T=$(mktemp -d "${TMPDIR:-/tmp}/stork-$TEST_NAME.XXXXXX")
# The system's python3 first: a version manager's shim in PATH (pyenv) costs about a second per
# start on a loaded machine, and the tests and their servers start python hundreds of times.
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
	mkdir -p "$T/.bin"
	ln -s /usr/bin/python3 "$T/.bin/python3"
	PATH=$T/.bin:$PATH
fi
_NGINX_DIRS=()
_MOUNTS=()
_PASSED=0
_DONE=0

_cleanup() {
	local rc=$? d pid
	set +e
	if [ "$rc" -eq 0 ] && [ "$_DONE" != 1 ]; then
		echo "FAIL: $TEST_NAME: exited before its last check (done_ok)" >&2
		rc=1
	fi
	# background processes this shell started and has not reaped yet (never a pid that may
	# have been reused)
	for d in "${_MOUNTS[@]}"; do
		grep -qF " $d fuse" /proc/mounts && fusermount3 -u -z "$d"
	done
	for pid in $(jobs -p); do
		kill -9 "$pid" 2>/dev/null
	done
	for d in "${_NGINX_DIRS[@]}"; do
		if [ -s "$d/nginx.pid" ]; then
			pid=$(cat "$d/nginx.pid")
			kill -TERM "$pid" 2>/dev/null
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -9 "$pid" 2>/dev/null
		fi
	done
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		echo "# $TEST_NAME: FAILED (exit $rc) after $_PASSED checks; seed STORK_TEST_SEED=$STORK_TEST_SEED" >&2
		if [ "${STORK_TEST_KEEP:-0}" = 1 ]; then
			echo "# kept $T" >&2
		fi
	fi
	if [ "${STORK_TEST_KEEP:-0}" != 1 ]; then
		rm_rf "$T"
	fi
	exit "$rc"
}
trap _cleanup EXIT

# rm_rf PATH...: rm -rf, also of node stores and extracted trees, whose linked files are
# immutable (FS_IMMUTABLE_FL; the flag goes first).
rm_rf() {
	rm -rf "$@" 2>/dev/null && return 0
	chattr -R -i "$@" 2>/dev/null
	rm -rf "$@"
}

# ---------------------------------------------------------------------------------------------
# Reporting.

fail() {
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

pass() {
	_PASSED=$((_PASSED + 1))
	echo "ok $_PASSED - $*"
}

# check DESC CMD...: run CMD; pass DESC if it exits 0, fail otherwise.
check() {
	local desc=$1
	shift
	if "$@"; then
		pass "$desc"
	else
		fail "$desc (command: $*)"
	fi
}

# done_ok: the last line of every test.
done_ok() {
	_DONE=1
	echo "# $TEST_NAME: all $_PASSED checks passed"
}

# run CMD...: run CMD with stdout in $T/out and stderr in $T/err; sets RC, OUT, ERR.
run() {
	set +e
	"$@" >"$T/out" 2>"$T/err"
	RC=$?
	set -e
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

_show_run() {
	echo "--- exit $RC; stdout:" >&2
	head -c 4000 "$T/out" >&2
	echo "--- stderr:" >&2
	head -c 4000 "$T/err" >&2
	echo "---" >&2
}

# expect_rc N DESC CMD...: run CMD, it must exit with N.
expect_rc() {
	local want=$1 desc=$2
	shift 2
	run "$@"
	if [ "$RC" -ne "$want" ]; then
		_show_run
		fail "$desc: expected exit $want, got $RC (command: $*)"
	fi
	pass "$desc (exit $want)"
}

# err_has DESC WORD...: every WORD occurs (as a fixed string) in the last run's stderr.
err_has() {
	local desc=$1 w
	shift
	for w in "$@"; do
		if ! grep -qF -- "$w" "$T/err"; then
			_show_run
			fail "$desc: stderr does not mention '$w'"
		fi
	done
	pass "$desc"
}

# out_has DESC WORD...: the same for stdout.
out_has() {
	local desc=$1 w
	shift
	for w in "$@"; do
		if ! grep -qF -- "$w" "$T/out"; then
			_show_run
			fail "$desc: stdout does not mention '$w'"
		fi
	done
	pass "$desc"
}

# need CMD...: the tools a test needs. Missing: fail under CI=true, skip (77) otherwise.
need() {
	local c
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			if [ "${CI:-}" = true ]; then
				fail "required tool '$c' is missing (contrib/test installs it)"
			fi
			echo "# SKIP $TEST_NAME: '$c' is not installed" >&2
			exit 77
		fi
	done
}

# rand N: sets R to a random integer in 0..N-1 (N up to 2^30), reproducible from the seed
# (call it in the test's own shell, not in $(...)).
rand() {
	R=$(((RANDOM * 32768 + RANDOM) % $1))
}

# npm_install PKG...: the npm packages into $STORK_TEST_CACHE/node (NODE_DIR), installed once
# and shared by the tests (flock()ed: tests running at once install them one at a time).
NODE_DIR=$STORK_TEST_CACHE/node
npm_install() {
	local p missing=0
	for p in "$@"; do
		[ -f "$NODE_DIR/node_modules/$p/package.json" ] || missing=1
	done
	[ "$missing" = 1 ] || return 0
	mkdir -p "$NODE_DIR"
	(
		cd "$NODE_DIR"
		flock 9
		[ -f package.json ] || echo '{"private": true}' >package.json
		npm install --no-audit --no-fund --loglevel=error "$@" >"$T/npm.log" 2>&1 ||
			{ cat "$T/npm.log" >&2; exit 1; }
	) 9>"$NODE_DIR/.lock" || fail "npm install $*"
}

# rnd SEED N: N pseudo-random bytes from SEED on stdout (the same every run).
rnd() {
	python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2])))' "$@"
}

# CMD | matches GREP-ARGS...: true when a line of the input matches. Use it instead of
# `| grep -q` in a pipeline: grep -q stops reading at the first match, the writer then dies of
# SIGPIPE and, under pipefail, the whole pipeline reports failure although the line was there.
matches() {
	local in rc=0
	in=$(mktemp "$T/matches.XXXXXX")
	cat >"$in"
	grep -q "$@" "$in" || rc=$?
	rm -f "$in"
	return "$rc"
}

[ -n "${STORK:-}" ] && [ -x "$STORK" ] || fail "STORK is not set to the stork binary (run through meson test)"

# ---------------------------------------------------------------------------------------------
# nginx on loopback.

# start_nginx ROOT: serve ROOT read-only on 127.0.0.1 at a random free port. Sets NGINX_PORT,
# NGINX_URL (http://127.0.0.1:PORT) and NGINX_DIR (config, pid file, access.log, error.log).
start_nginx() {
	_start_nginx "$1" http
}

# _start_nginx ROOT SCHEME [CERT KEY]: the one nginx starter; https adds TLS with HTTP/2 offered.
# NGINX_EXTRA, when set, is added to the server block (e.g. "auth_basic x; auth_basic_user_file F;"
# or "location = /metadata/timestamp.json { return 302 ftp://h/; }").
_start_nginx() {
	local root dir port try scheme=$2 listen tls=
	root=$(cd "$1" && pwd)
	listen=""
	if [ "$scheme" = https ]; then
		listen=" ssl http2"
		tls="ssl_certificate $3; ssl_certificate_key $4;"
	fi
	need nginx
	dir="$T/nginx.${#_NGINX_DIRS[@]}"
	mkdir -p "$dir/tmp"
	for try in $(seq 20); do
		rand 40000
		port=$((20000 + R))
		cat >"$dir/nginx.conf" <<-EOF
			daemon on;
			user root;
			worker_processes 1;
			pid $dir/nginx.pid;
			error_log $dir/error.log;
			events {
				worker_connections 256;
			}
			http {
				types {
					application/json json;
				}
				default_type application/octet-stream;
				access_log $dir/access.log;
				client_body_temp_path $dir/tmp/body;
				proxy_temp_path $dir/tmp/proxy;
				fastcgi_temp_path $dir/tmp/fastcgi;
				uwsgi_temp_path $dir/tmp/uwsgi;
				scgi_temp_path $dir/tmp/scgi;
				sendfile on;
				server {
					listen 127.0.0.1:$port$listen;
					server_name localhost;
					$tls
					root $root;
					autoindex off;
					${NGINX_EXTRA:-}
					location / {
					}
				}
			}
		EOF
		if nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/start.err"; then
			_NGINX_DIRS+=("$dir")
			NGINX_PORT=$port
			NGINX_URL="$scheme://127.0.0.1:$port"
			NGINX_DIR=$dir
			for _ in $(seq 50); do
				[ -s "$dir/nginx.pid" ] && break
				sleep 0.1
			done
			[ -s "$dir/nginx.pid" ] || fail "nginx wrote no pid file ($dir)"
			: >>"$dir/access.log"
			echo "# nginx serves $root at $NGINX_URL"
			return 0
		fi
		if ! grep -q 'Address already in use' "$dir/start.err" "$dir/error.log" 2>/dev/null; then
			cat "$dir/start.err" >&2
			fail "nginx ($scheme) did not start"
		fi
	done
	fail "nginx found no free port in 20 tries"
}

# nginx_requests PATTERN: how many lines of the newest nginx's access log match the regex.
nginx_requests() {
	grep -c -E -- "$1" "$NGINX_DIR/access.log" || true
}

# ---------------------------------------------------------------------------------------------
# The Debian package corpus.

DEB_PACKAGES=(coreutils bash tzdata libc6 perl-base python3.11-minimal hello sed grep gzip tar
	findutils dash diffutils libzstd1 zstd busybox-static less nano base-files libssl3
	ncurses-base perl-modules-5.36)

# fetch_debs: download the packages once into $DEB_DIR (a cache kept between runs) and set DEBS
# to their paths, one per package.
fetch_debs() {
	local p missing=() f
	DEB_DIR=$STORK_TEST_CACHE/debs
	mkdir -p "$DEB_DIR"
	for p in "${DEB_PACKAGES[@]}"; do
		compgen -G "$DEB_DIR/${p}_*.deb" >/dev/null || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "# downloading ${missing[*]} into $DEB_DIR"
		if ! (cd "$DEB_DIR" && apt-get download -q "${missing[@]}") >"$T/apt.log" 2>&1; then
			apt-get update -q >>"$T/apt.log" 2>&1 || true
			if ! (cd "$DEB_DIR" && apt-get download -q "${missing[@]}") >>"$T/apt.log" 2>&1; then
				tail -20 "$T/apt.log" >&2
				fail "apt-get download ${missing[*]} failed"
			fi
		fi
	fi
	DEBS=()
	for p in "${DEB_PACKAGES[@]}"; do
		f=$(compgen -G "$DEB_DIR/${p}_*.deb" | sort | tail -n 1)
		[ -n "$f" ] || fail "no .deb for $p in $DEB_DIR"
		DEBS+=("$f")
	done
}

# deb_field DEB FIELD
deb_field() {
	dpkg-deb -f "$1" "$2"
}

# ---------------------------------------------------------------------------------------------
# Trees.

# tree_list DIR: one sorted line per entry below DIR: "path type mode symlink-target size"
# (size for regular files only; no owners, no times).
tree_list() {
	(cd "$1" && find . -mindepth 1 -printf '%P\t%y\t%m\t%l\t%s\n') |
		awk -F'\t' 'BEGIN { OFS = " " } { if ($2 != "f") $5 = "-"; print $1, $2, $3, $4, $5 }' |
		LC_ALL=C sort
}

# mount_list SRC: tree_list of a source as a storkfs mount must show it: no write bits and no
# setuid/setgid bits on files and directories (the sticky bit stays).
mount_list() {
	tree_list "$1" | python3 -c 'import sys
for line in sys.stdin:
    f = line.rstrip("\n").split(" ")
    # path may contain spaces: the last four fields are type, mode, target, size
    path, typ, mode, target, size = " ".join(f[:-4]), f[-4], f[-3], f[-2], f[-1]
    if typ != "l":
        mode = "%o" % (int(mode, 8) & ~0o6222)
    print(path, typ, mode, target, size)'
}

# compare_tree A B: the same entries, types, modes, symlink targets and bytes. Prints the first
# differences and returns 1 when they differ.
compare_tree() {
	local a=$1 b=$2
	tree_list "$a" >"$T/tree.a"
	tree_list "$b" >"$T/tree.b"
	if ! diff -u "$T/tree.a" "$T/tree.b" >"$T/tree.diff"; then
		echo "trees differ: $a $b" >&2
		head -40 "$T/tree.diff" >&2
		return 1
	fi
	if ! diff -r --no-dereference "$a" "$b" >"$T/tree.diff" 2>&1; then
		echo "contents differ: $a $b" >&2
		head -40 "$T/tree.diff" >&2
		return 1
	fi
	return 0
}

# file_mtimes DIR: "path mtime" of regular files, sorted.
file_mtimes() {
	(cd "$1" && find . -type f -printf '%P %T@\n') | sed 's/\.[0-9]*$//' | LC_ALL=C sort
}

# deb_extract DEB DEST: the reference extraction.
deb_extract() {
	mkdir -p "$2"
	dpkg-deb -x "$1" "$2"
}

# sha FILE: the SHA-256 of FILE, hex.
sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

# tree_sums DIR: a listing of everything below DIR (dot files too) with sha256 of every file.
tree_sums() {
	(cd "$1" && find . -mindepth 1 -printf '%P %y %m %l\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# meta_sums [REPO]: tree_sums of the repository's metadata/ and targets/.
meta_sums() {
	local r=${1:-$REPO}
	echo metadata
	tree_sums "$r/metadata"
	echo targets
	[ ! -d "$r/targets" ] || tree_sums "$r/targets"
}

# ---------------------------------------------------------------------------------------------
# Repositories.

# keygen FILE: make a publisher key; sets KEYID.
keygen() {
	run "$STORK" keygen "$1"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "stork keygen $1"
	}
	KEYID=$(printf '%s\n' "$OUT" | grep -oE '[0-9a-f]{64}' | head -n 1)
	[ -n "$KEYID" ] || fail "stork keygen printed no key id: $OUT"
}

# make_repo [--in DIR] [--expires ROLE=SECONDS]... [PATTERN...]: a fresh repository $REPO
# (DIR/repo, DIR is $T by default) with top-level keys in $KEYS, the pinned root $ROOT, and a
# publisher key $PUBKEY (role "alice", key id $PUBKEYID) delegated PATTERN... ('*' by default).
make_repo() {
	local init_opts=() patterns=() base=$T
	while [ $# -gt 0 ]; do
		case $1 in
		--in)
			base=$2
			mkdir -p "$base"
			shift 2
			;;
		--expires)
			init_opts+=(--expires "$2")
			shift 2
			;;
		*)
			patterns+=("$1")
			shift
			;;
		esac
	done
	[ ${#patterns[@]} -gt 0 ] || patterns=('*')
	REPO=$base/repo
	KEYS=$base/keys
	run "$STORK" repo init "$REPO" --keys "$KEYS" "${init_opts[@]}"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "stork repo init"
	}
	ROOT=$(printf '%s\n' "$OUT" | tail -n 1)
	[ -f "$ROOT" ] || fail "stork repo init printed '$OUT', not the root file"
	cp "$ROOT" "$base/pinned-root.json"
	ROOT=$base/pinned-root.json
	mkdir -p "$base/pub"
	PUBKEY=$base/pub/alice.key
	keygen "$PUBKEY"
	PUBKEYID=$KEYID
	run "$STORK" repo delegate "$REPO" --keys "$KEYS" "$PUBKEY.pub" "${patterns[@]}"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "stork repo delegate"
	}
}

# publish NAME VERSION SOURCE [OPTS...]: publish with $PUBKEY; must succeed. Output in $OUT.
publish() {
	local name=$1 version=$2 src=$3
	shift 3
	run "$STORK" publish "$REPO" --keys "$KEYS" --key "$PUBKEY" "$@" "$name" "$version" "$src"
	if [ "$RC" -ne 0 ]; then
		_show_run
		fail "stork publish $name $version $src"
	fi
}

# verify_ok DESC: stork verify of $REPO against $ROOT passes.
verify_ok() {
	run "$STORK" verify --root "$ROOT" "$REPO"
	if [ "$RC" -ne 0 ] || ! grep -q '^verified ' "$T/out"; then
		_show_run
		fail "${1:-stork verify}: expected to pass"
	fi
	pass "${1:-stork verify passes}"
}

# export_version NAME VERSION DEST: rebuild a version through the verified read path.
export_version() {
	rm -rf "$3"
	run "$REPO_EXPORT" --root "$ROOT" "$REPO" "$1" "$2" "$3"
	if [ "$RC" -ne 0 ]; then
		_show_run
		fail "repo-export $1 $2"
	fi
}

# manifest_file NAME VERSION: the path of the manifest in targets/.
manifest_file() {
	local f
	f=$(find "$REPO/targets/$1" -maxdepth 1 -name "*.$2.json" ! -name '.*' 2>/dev/null |
		awk -v v=".$2.json" '{ n = split($0, p, "/"); b = p[n]; if (length(b) == 64 + length(v) && substr(b, 65) == v) print }')
	[ -n "$f" ] || fail "no manifest for $1 $2 in targets/$1"
	printf '%s\n' "$f"
}

# latest_meta ROLE: the file name of ROLE's newest version in $REPO/metadata ("3.alice.json").
latest_meta() {
	find "$REPO/metadata" -maxdepth 1 -regextype posix-extended -regex ".*/[0-9]+\.$1\.json" -printf '%f\n' |
		sort -n | tail -n 1
}

# count_objects [REPO]: objects in the store (temporary files not counted).
count_objects() {
	local r=${1:-$REPO}
	[ -d "$r/objects" ] || {
		echo 0
		return
	}
	find "$r/objects" -type f ! -name '.*' | wc -l
}

# check_objects [REPO]: every object is a complete zstd stream of the bytes its name hashes.
check_objects() {
	local r=${1:-$REPO} f h
	while IFS= read -r f; do
		h=$(zstd -q -dc <"$f" | sha256sum | cut -d' ' -f1) || return 1
		[ "$h" = "$(basename "$f")" ] || {
			echo "bad object $f (content hash $h)" >&2
			return 1
		}
	done < <(find "$r/objects" -type f ! -name '.*')
}

# ---------------------------------------------------------------------------------------------
# The node side: stork extract, node stores, broken and hostile mirrors.

# stop_nginx [DIR]: stop the nginx of DIR ($NGINX_DIR by default) and wait until it is gone,
# so that its port refuses connections.
stop_nginx() {
	local dir=${1:-$NGINX_DIR} pid
	[ -s "$dir/nginx.pid" ] || return 0
	pid=$(cat "$dir/nginx.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

# start_nginx_tls ROOT CERT KEY: like start_nginx, over TLS (HTTP/2 offered) with CERT and KEY.
# Sets NGINX_PORT, NGINX_URL (https://127.0.0.1:PORT) and NGINX_DIR.
start_nginx_tls() {
	_start_nginx "$1" https "$2" "$3"
}

# free_port: sets FREE_PORT to a loopback TCP port that nothing listens on (bound and closed
# at once): a mirror there refuses connections.
free_port() {
	FREE_PORT=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
}

# start_faultserver ROOT [OPTIONS...]: tests/integration/faultserver.py serving ROOT on a free
# loopback port, its rules re-read from $FAULT_DIR/faults.json (none at first; fault_set
# replaces them). Sets FAULT_URL, FAULT_PORT, FAULT_PID and FAULT_DIR (faults.json,
# access.log with lines "METHOD PATH STATUS BYTES FAULT", stderr).
start_faultserver() {
	local root=$1 dir
	shift
	need python3
	dir=$(mktemp -d "$T/fault.XXXXXX")
	echo '[]' >"$dir/faults.json"
	: >"$dir/access.log"
	python3 "$STORK_TESTS/integration/faultserver.py" --port-file "$dir/port" \
		--access-log "$dir/access.log" --faults "$dir/faults.json" \
		--lifetime "${FAULT_LIFETIME:-2400}" "$@" "$root" 2>"$dir/stderr" &
	FAULT_PID=$!
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && break
		kill -0 "$FAULT_PID" 2>/dev/null || {
			cat "$dir/stderr" >&2
			fail "faultserver did not start"
		}
		sleep 0.1
	done
	[ -s "$dir/port" ] || fail "faultserver wrote no port file"
	FAULT_PORT=$(cat "$dir/port")
	FAULT_URL=http://127.0.0.1:$FAULT_PORT
	FAULT_DIR=$dir
	echo "# faultserver serves $root at $FAULT_URL"
}

# fault_set JSON [DIR]: replace the fault server's rules (see faultserver.py --help), e.g.
#   fault_set '[{"match": "^/objects/", "fault": "truncate"}]'
fault_set() {
	local dir=${2:-$FAULT_DIR}
	printf '%s\n' "$1" >"$dir/faults.json.new"
	mv "$dir/faults.json.new" "$dir/faults.json"
}

# stop_faultserver [PID]: stop the fault server ($FAULT_PID by default) and reap it quietly.
stop_faultserver() {
	local pid=${1:-$FAULT_PID}
	kill -TERM "$pid" 2>/dev/null || true
	{ wait "$pid"; } 2>/dev/null || true
}

# fault_requests PATTERN [DIR]: how many lines of the fault server's access log match the regex.
fault_requests() {
	grep -c -E -- "$1" "${2:-$FAULT_DIR}/access.log" || true
}

# object_path HEX: a repository's path of the object HEX ("objects/ab/HEX").
object_path() {
	printf 'objects/%s/%s\n' "${1:0:2}" "$1"
}

# manifest_hashes NAME VERSION: "HASH SIZE PATH" for every regular file of the manifest, in
# manifest order.
manifest_hashes() {
	python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["files"]:
    if e["type"] == "file":
        print(e["sha256"], e["size"], e["path"])' "$(manifest_file "$1" "$2")"
}

# manifest_objects NAME VERSION: "HASH SIZE PATH" for every object of the manifest's regular
# files: a file's own, or each chunk of a file stored by the piece (store/README.md "Chunks").
manifest_objects() {
	python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["files"]:
    if e["type"] == "file":
        for o in e.get("chunks", [e]):
            print(o["sha256"], o["size"], e["path"])' "$(manifest_file "$1" "$2")"
}

# EXTRACT_TIMEOUT: the outer bound on one stork extract, so that a hang fails the test.
EXTRACT_TIMEOUT=${EXTRACT_TIMEOUT:-300}

# extract ARGS...: run stork extract --root $ROOT ARGS... (with the outer timeout); sets RC,
# OUT, ERR as run does, and X_FILES X_FETCHED X_LINKED X_COPIED from its summary line.
extract() {
	run timeout -k 10 "$EXTRACT_TIMEOUT" "$STORK" extract --root "$ROOT" "$@"
	X_FILES='' X_FETCHED='' X_LINKED='' X_COPIED=''
	local re='^extracted .*: ([0-9]+) files \(([0-9]+) fetched, ([0-9]+) linked, ([0-9]+) copied\)'
	local line
	line=$(grep '^extracted ' "$T/out" | tail -n 1 || true)
	if [[ $line =~ $re ]]; then
		X_FILES=${BASH_REMATCH[1]} X_FETCHED=${BASH_REMATCH[2]}
		X_LINKED=${BASH_REMATCH[3]} X_COPIED=${BASH_REMATCH[4]}
	fi
}

# extract_ok DESC ARGS...: stork extract must succeed and print its summary.
extract_ok() {
	local desc=$1
	shift
	extract "$@"
	if [ "$RC" -ne 0 ] || [ -z "$X_FILES" ]; then
		_show_run
		[ "$RC" -ne 124 ] || fail "$desc: stork extract did not finish within $EXTRACT_TIMEOUT s"
		fail "$desc: stork extract exited $RC (command: stork extract $*)"
	fi
	pass "$desc"
}

# fsck_clean DESC STORE: stork fsck STORE exits 0, says "STORE: clean" and reports nothing.
fsck_clean() {
	run "$STORK" fsck "$2"
	if [ "$RC" -ne 0 ] || ! grep -qxF -- "$2: clean" "$T/out" || [ -s "$T/err" ]; then
		_show_run
		fail "$1: stork fsck $2 is not clean"
	fi
	pass "$1"
}

# store_hashes_ok STORE: independently of fsck, every file in STORE/objects is named by the
# SHA-256 of its content (objects/ab/HEX, or a mode variant HEX.MODE) and tmp/ holds no file.
store_hashes_ok() {
	local s=$1
	(cd "$s" && find objects -type f -print0 | xargs -0 -r sha256sum) >"$T/store.sums"
	if awk '{ n = split($2, p, "/"); sub(/\..*$/, "", p[n]); if (p[n] != $1) { print; bad = 1 } }
		END { exit bad }' "$T/store.sums" >"$T/store.bad"; then
		:
	else
		echo "store objects whose content does not hash to their name: $(head -5 "$T/store.bad")" >&2
		return 1
	fi
	if [ -d "$s/tmp" ] && [ -n "$(find "$s/tmp" -mindepth 1 -print -quit)" ]; then
		echo "leftovers in $s/tmp: $(ls -A "$s/tmp")" >&2
		return 1
	fi
}

# linked_to_store DEST STORE: every regular file below DEST is a hard link (same inode) of a
# file in STORE/objects.
linked_to_store() {
	local dest=$1 s=$2
	find "$s/objects" -type f -printf '%i\n' | sort -u >"$T/store.inodes"
	find "$dest" -type f -printf '%i %n %P\n' | sort >"$T/dest.inodes"
	[ -s "$T/dest.inodes" ] || {
		echo "$dest holds no regular file" >&2
		return 1
	}
	if awk '$2 < 2' "$T/dest.inodes" | matches .; then
		echo "not hard links (link count 1): $(awk '$2 < 2 { print $3 }' "$T/dest.inodes" | head -5)" >&2
		return 1
	fi
	if cut -d' ' -f1 "$T/dest.inodes" | sort -u | comm -23 - "$T/store.inodes" | matches .; then
		echo "files of $dest that are not store objects: $(cut -d' ' -f1 "$T/dest.inodes" | sort -u | comm -23 - "$T/store.inodes" | head -5)" >&2
		return 1
	fi
}

# synth_tree DIR [TAG]: a small package source with every kind of entry: empty, small,
# pseudo-random (300 kB, incompressible, the same in every tree) and compressible files, an executable, a setuid file, modes 600/640,
# directories 700 and 1777, an empty directory, UTF-8 names with spaces, relative, absolute
# and dangling symlinks, and two files with the same content. TAG (default "1") goes into
# the content of two files, so trees with different tags share every other object.
synth_tree() {
	local s=$1 tag=${2:-1}
	mkdir -p "$s/usr/bin" "$s/usr/share/doc/pkg" "$s/etc/private" "$s/empty dir" \
		"$s/var/lib/ünï cödé"
	: >"$s/usr/share/doc/pkg/empty"
	echo small >"$s/usr/share/doc/pkg/small.txt"
	python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(3).randbytes(300000))' \
		>"$s/usr/share/doc/pkg/random.bin"
	head -c 500000 < <(yes storkfs) >"$s/usr/share/doc/pkg/compressible.txt"
	printf '#!/bin/sh\necho tool %s\n' "$tag" >"$s/usr/bin/tool"
	chmod 755 "$s/usr/bin/tool"
	printf '#!/bin/sh\necho setuid\n' >"$s/usr/bin/tool-setuid"
	chmod 4755 "$s/usr/bin/tool-setuid"
	printf 'secret %s\n' "$tag" >"$s/etc/private/key"
	chmod 600 "$s/etc/private/key"
	chmod 700 "$s/etc/private"
	echo same >"$s/var/lib/ünï cödé/file with spaces"
	echo small >"$s/var/lib/dup.txt"
	chmod 640 "$s/var/lib/dup.txt"
	ln -s tool "$s/usr/bin/rel-link"
	ln -s /etc/passwd "$s/usr/bin/abs-link"
	ln -s nowhere "$s/usr/bin/dangling"
	chmod 1777 "$s/var/lib"
}

# ---------------------------------------------------------------------------------------------
# storkfs mounts.

# need_fuse: FUSE, fusermount3 and the storkfs binary (STORKFS). Missing: fail under CI=true,
# skip otherwise.
need_fuse() {
	need fusermount3
	if [ ! -c /dev/fuse ]; then
		[ "${CI:-}" != true ] || fail "/dev/fuse is missing: FUSE is required under CI"
		echo "# SKIP $TEST_NAME: /dev/fuse is missing" >&2
		exit 77
	fi
	[ -n "${STORKFS:-}" ] && [ -x "$STORKFS" ] || fail "STORKFS is not set to the storkfs binary"
}

# is_mounted MNT: whether a fuse mount is at MNT.
is_mounted() {
	grep -qF " $1 fuse" /proc/mounts
}

# mount_storkfs MNT OPTIONS URL...: run `storkfs -f -o root=$ROOT,OPTIONS URL... MNT` in the
# background (MNT is created), wait until the mount is there, and unmount it at exit. OPTIONS
# is an -o list, e.g. "store=$T/store,timeout=5". Sets SFS_PID (the daemon) and SFS_LOG (its
# stderr: the daemon's log in the foreground; one file per mount, $T/storkfs.N.log).
_SFS_N=0
declare -A _SFS_LOGS=()
mount_storkfs() {
	local mnt=$1 opts=$2
	shift 2
	mkdir -p "$mnt"
	_SFS_N=$((_SFS_N + 1))
	SFS_LOG=$T/storkfs.$_SFS_N.log
	"$STORKFS" -f -o "root=$ROOT,$opts" "$@" "$mnt" 2>"$SFS_LOG" &
	SFS_PID=$!
	_SFS_LOGS[$SFS_PID]=$SFS_LOG
	_MOUNTS+=("$mnt")
	for _ in $(seq 600); do
		is_mounted "$mnt" && break
		if ! kill -0 "$SFS_PID" 2>/dev/null; then
			cat "$SFS_LOG" >&2
			fail "storkfs exited before mounting $mnt"
		fi
		sleep 0.1
	done
	is_mounted "$mnt" || {
		cat "$SFS_LOG" >&2
		fail "storkfs did not mount $mnt within 60 s"
	}
}

# within SECS CMD...: retry CMD (every 0.1 s, at most SECS seconds) until it succeeds.
within() {
	local secs=$1
	shift
	for _ in $(seq $((secs * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# status_counter MNT KEY: one of the counters of MNT's user.storkfs.status (0 when absent).
status_counter() {
	xattr "$1" user.storkfs.status | python3 -c 'import json, sys; print(json.load(sys.stdin)["counters"].get(sys.argv[1], 0))' "$2"
}

# assembled_is MNT N WHAT: wait (at most 30 s) until MNT's status counts N whole objects
# assembled from chunks (fs/whole.c); fail saying WHAT otherwise.
assembled_is() {
	local n
	for _ in $(seq 150); do
		n=$(status_counter "$1" assembled)
		[ "$n" -ge "$2" ] && break
		sleep 0.2
	done
	[ "$n" -eq "$2" ] || fail "$3: the status counts $n assembled objects after 30 s, not $2"
}

# wait_log PATTERN SECS WHAT: wait at most SECS seconds for a line of the daemon's log
# ($SFS_LOG, mount_storkfs) matching the grep PATTERN; else show the log and fail saying WHAT.
wait_log() {
	for _ in $(seq $(($2 * 5))); do
		grep -q -- "$1" "$SFS_LOG" && return 0
		sleep 0.2
	done
	grep -q -- "$1" "$SFS_LOG" || {
		cat "$SFS_LOG" >&2
		fail "$3"
	}
}

# mount_bg MNT [OPTIONS [URL]]: storkfs as users run it, without -f (it returns once the mount
# is ready), on $STORE with timeout=$MOUNT_TIMEOUT (default 30) and refresh=3600, plus OPTIONS
# (a later refresh= or timeout= there wins), serving URL (default $NGINX_URL); sets MOUNT_PID
# to the daemon's pid (from its status) and fails unless it runs.
mount_bg() {
	mkdir -p "$1"
	_MOUNTS+=("$1")
	run timeout 60 "$STORKFS" -o "root=$ROOT,store=$STORE,timeout=${MOUNT_TIMEOUT:-30},refresh=3600${2:+,$2}" \
		"${3:-$NGINX_URL}" "$1"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "storkfs did not mount $1"
	}
	MOUNT_PID=$(status_field "$1" pid)
	running "$MOUNT_PID" || fail "the daemon of $1 ($MOUNT_PID) is not running"
}

# on_exit 'COMMANDS': when the test exits, run COMMANDS (their failures ignored) before the
# usual cleanup, keeping the test's exit status (a plain `(exit $rc)` in a trap would end the
# trap under set -e before the cleanup ran, leaving mounts and daemons behind).
on_exit() {
	_ON_EXIT=$1
	trap '_rc=$?; set +e; eval "$_ON_EXIT"; (exit $_rc); _cleanup' EXIT
}

# running PID: the process exists and has not exited. A daemon started without -f is the
# child of PID 1 once it detaches, and an exited one stays a zombie (kill -0 still succeeds)
# until PID 1 reaps it, which a container's or sandbox's init may do late.
running() {
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# small_tmpfs DIR SIZE: a tmpfs of SIZE (mount's units: 128k, 30m) on DIR, for a disk that is
# full on demand; at exit, the FUSE mounts go first (their stores may live on it), then it.
small_tmpfs() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2,mode=0700" storkfs-test "$1" || fail "cannot mount a tmpfs on $1"
	_SMALL_FS=$1
	on_exit 'for d in "${_MOUNTS[@]}"; do
		grep -qF " $d fuse" /proc/mounts && fusermount3 -u -z "$d"
	done
	umount "$_SMALL_FS" || umount -l "$_SMALL_FS"'
}

# _held_elsewhere MNT: some process's mount namespace still has MNT mounted.
_held_elsewhere() {
	grep -qsF " $1 " /proc/[0-9]*/mountinfo 2>/dev/null
}

# unmount_storkfs MNT [PID]: fusermount3 -u MNT; the daemon (PID, default SFS_PID) must exit
# within 30 s.
unmount_storkfs() {
	local mnt=$1 pid=${2:-$SFS_PID}
	fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt failed"
	# 30 s: a bound that means "did not hang" (its last group sync and the index's sync wait
	# for the disk, which tests running in parallel keep busy), never a speed
	for _ in $(seq 300); do
		running "$pid" || break
		sleep 0.1
	done
	# A mount namespace made while the mount was there (a container another test runs in
	# parallel: bwrap, nspawn, unshare) holds a copy of it, and the kernel ends the FUSE
	# session (so the daemon exits) only when that copy goes too: wait for it (bounded), then
	# the daemon has 30 s again.
	if running "$pid" && _held_elsewhere "$mnt"; then
		for _ in $(seq 600); do
			_held_elsewhere "$mnt" || break
			sleep 0.2
		done
		for _ in $(seq 300); do
			running "$pid" || break
			sleep 0.1
		done
	fi
	! running "$pid" || fail "storkfs ($pid) still runs 30 s after unmounting $mnt (no other mount namespace holds it)"
	local rc=0
	{ wait "$pid"; } 2>/dev/null || rc=$?
	! is_mounted "$mnt" || fail "$mnt is still mounted"
	# a clean unmount is a clean exit, with nothing for the sanitizers to say (ASan builds)
	local log=${_SFS_LOGS[$pid]:-}
	if [ -n "$log" ] && grep -qE 'Sanitizer|runtime error:' "$log"; then
		grep -E -A20 'Sanitizer|runtime error:' "$log" | head -40 >&2
		fail "storkfs ($pid) reported a sanitizer error (log: $log)"
	fi
	[ "$rc" -eq 0 ] || [ "$rc" -eq 127 ] || fail "storkfs ($pid) exited $rc after unmounting $mnt"
}

# xattr FILE NAME: print an extended attribute's value.
xattr() {
	python3 -c 'import os, sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$1" "$2"
}

# status_field MNT KEY: one member of the mount's status (user.storkfs.status), as Python prints it.
status_field() {
	xattr "$1" user.storkfs.status | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# read_hash SECS FILE [DELAY_MS [READY]]: open FILE and read it to its end, 64 kB at a time,
# within SECS seconds; prints "ok SHA256" (of the bytes read) or "errno N" (the open or a read
# failed with errno N) and returns 0, or returns timeout's 124 or 137 when it did not finish.
# With DELAY_MS, a slow reader: it sleeps that long after each read; with READY, it creates
# the file READY just before the open.
read_hash() {
	local secs=$1
	shift
	timeout -k 5 "$secs" python3 -c 'import hashlib, os, sys, time
path = sys.argv[1]
delay = int(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0
if len(sys.argv) > 3:
    open(sys.argv[3], "w").close()
h = hashlib.sha256()
try:
    fd = os.open(path, os.O_RDONLY)
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        h.update(b)
        if delay:
            time.sleep(delay)
    os.close(fd)
except OSError as e:
    print("errno", e.errno)
    sys.exit(0)
print("ok", h.hexdigest())' "$@"
}

# read_errno FILE [SECS]: read_hash bounded by SECS seconds (default 60); sets GOT to what it
# printed ("ok SHA256" or "errno N"), or "hang" when it did not finish, and ELAPSED (whole
# seconds). Call it in the test's own shell, not in $(...).
read_errno() {
	local t0 rc=0
	t0=$(date +%s%N)
	GOT=$(read_hash "${2:-60}" "$1") || rc=$?
	case $rc in
	0) ;;
	124 | 137) GOT=hang ;;
	*) GOT="reader exit $rc: $GOT" ;;
	esac
	ELAPSED=$((($(date +%s%N) - t0) / 1000000000))
}

# ---------------------------------------------------------------------------------------------
# The transport chain: caching proxies (Debian's squid) and peers (another node's store behind
# nginx with contrib/nginx-peer.conf).

# start_squid N PORT: squid number N on 127.0.0.1:PORT, its own config, cache, pid and logs in
# $T/squidN (Squid drops root for the "proxy" user: the directory is theirs, and $T searchable).
# Objects and versioned metadata are cached for a day (fetch/README.md "Caching"); only the
# client's Cache-Control keeps metadata/timestamp.json fresh. Restart with the same N and PORT.
_SQUID_PIDS=()
start_squid() {
	local n=$1 port=$2 dir=$T/squid$1
	need squid python3
	mkdir -p "$dir/cache"
	cat >"$dir/squid.conf" <<-EOF2
		http_port 127.0.0.1:$port
		visible_hostname squid$n.test
		pid_filename $dir/squid.pid
		cache_dir ufs $dir/cache 64 4 16
		cache_mem 8 MB
		maximum_object_size 64 MB
		access_log stdio:$dir/access.log
		cache_log $dir/cache.log
		cache_store_log none
		coredump_dir $dir
		netdb_filename none
		icp_port 0
		htcp_port 0
		shutdown_lifetime 0 seconds
		acl to_loopback dst 127.0.0.0/8
		http_access allow localhost to_loopback
		http_access deny all
		# objects never change: cache them for a day whatever nginx says (fetch/README.md).
		# override-lastmod: without it squid applies the min only to replies without
		# Last-Modified and takes a file written N seconds before it was fetched as fresh
		# for N seconds (100% of its age): a repository published a second ago is then
		# revalidated at the origin on the next request (fetch_proxy failed 1 run in 5).
		refresh_pattern /objects/ 1440 100% 10080 override-lastmod
		# and so would metadata: only the client's Cache-Control keeps timestamp.json fresh
		refresh_pattern /metadata/ 1440 100% 10080 override-lastmod
		refresh_pattern . 0 20% 4320
	EOF2
	chmod o+x "$T"
	chown -R proxy: "$dir" 2>/dev/null || chmod -R a+rwX "$dir"
	if [ ! -d "$dir/cache/00" ]; then
		squid -N -z -f "$dir/squid.conf" >"$dir/z.log" 2>&1 || {
			cat "$dir/z.log" "$dir/cache.log" >&2
			fail "squid -z for squid$n failed"
		}
	fi
	rm -f "$dir/squid.pid"
	squid -N -f "$dir/squid.conf" >"$dir/stdout.log" 2>&1 &
	_SQUID_PIDS[$n]=$!
	for _ in $(seq 300); do
		python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
			"$port" 2>/dev/null && break
		kill -0 "${_SQUID_PIDS[$n]}" 2>/dev/null || {
			cat "$dir/cache.log" >&2
			fail "squid$n exited at start"
		}
		sleep 0.1
	done
	touch "$dir/access.log"
	echo "# squid$n listens on 127.0.0.1:$port"
}

# stop_squid N: kill squid N at once and wait until its port refuses connections.
stop_squid() {
	local pid=${_SQUID_PIDS[$1]}
	kill -9 "$pid" 2>/dev/null || true
	{ wait "$pid"; } 2>/dev/null || true
	# the kids (squid -N forks none, but be sure nothing holds the port)
	sleep 0.2
}

# squid_objects N: object GETs in squid N's access log
squid_objects() {
	grep -c ' GET http://[^ ]*/objects/' "$T/squid$1/access.log" || true
}

# private_syslog: receive what daemons send to syslog in $SYSLOG ($T/syslog): an overlay on
# /dev holding our own /dev/log. Only in a private mount namespace (the test re-executes itself
# under `unshare --mount --propagation private` before sourcing lib.sh): it hides /dev/log.
private_syslog() {
	mkdir -p "$T/dev.up" "$T/dev.work"
	mount -t overlay overlay -o "lowerdir=/dev,upperdir=$T/dev.up,workdir=$T/dev.work" /dev ||
		fail "cannot put an overlay on /dev in this mount namespace (for a private /dev/log)"
	rm -f /dev/log
	SYSLOG=$T/syslog
	python3 -c 'import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\n") + b"\n")' "$SYSLOG" &
	for _ in $(seq 50); do
		[ -e "$SYSLOG.ready" ] && break
		sleep 0.1
	done
	[ -e "$SYSLOG.ready" ] || fail "the syslog receiver did not start"
}

# need_root WHY: the test needs root (WHY says for what); under CI it fails without it.
need_root() {
	[ "$(id -u)" -eq 0 ] && return 0
	[ "${CI:-}" != true ] || fail "this test $1: it must run as root"
	echo "# SKIP $TEST_NAME: not root" >&2
	exit 77
}

# start_peer STOREDIR: nginx with contrib/nginx-peer.conf rooted at STOREDIR on a free port
# (another node exposing its store). Sets PEER_URL (http://127.0.0.1:PORT/) and PEER_DIR
# (access.log).
start_peer() {
	local store=$1 dir=$T/peer.$RANDOM port
	need nginx
	mkdir -p "$dir/tmp"
	free_port
	port=$FREE_PORT
	sed -e "s|^\tlisten 8080;|\tlisten 127.0.0.1:$port;|" \
		-e "s|^\troot /var/lib/storkfs/store;|\troot $store;|" \
		-e "s|/var/log/nginx/storkfs-peer.access.log|$dir/access.log|" \
		"$STORK_TESTS/../contrib/nginx-peer.conf" >"$dir/peer.conf"
	grep -qF "listen 127.0.0.1:$port;" "$dir/peer.conf" && grep -qF "root $store;" "$dir/peer.conf" ||
		fail "contrib/nginx-peer.conf no longer has the listen/root lines this test rewrites"
	cat >"$dir/nginx.conf" <<-EOF2
		daemon on;
		user root;
		worker_processes 1;
		pid $dir/nginx.pid;
		error_log $dir/error.log;
		events {
			worker_connections 256;
		}
		http {
			client_body_temp_path $dir/tmp/body;
			proxy_temp_path $dir/tmp/proxy;
			fastcgi_temp_path $dir/tmp/fastcgi;
			uwsgi_temp_path $dir/tmp/uwsgi;
			scgi_temp_path $dir/tmp/scgi;
			include $dir/peer.conf;
		}
	EOF2
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/start.err" || {
		cat "$dir/start.err" >&2
		fail "the peer's nginx did not start"
	}
	_NGINX_DIRS+=("$dir")
	for _ in $(seq 50); do
		[ -s "$dir/nginx.pid" ] && break
		sleep 0.1
	done
	: >>"$dir/access.log"
	PEER_URL=http://127.0.0.1:$port/
	PEER_DIR=$dir
	echo "# peer nginx serves $store at $PEER_URL"
}

# peer_requests PATTERN: how many lines of the newest peer's access log match the regex.
peer_requests() {
	grep -c -E -- "$1" "$PEER_DIR/access.log" || true
}
