#!/usr/bin/env bash
# A mirror that needs a password (nginx with HTTP basic authentication): given in the URL
# (http://alice:PASSWORD@host/) or in a netrc file (--netrc, -o netrc=), reads work, and the
# password shows nowhere another local user can look: the mount's attributes
# (user.storkfs.mirrors, .status, .source), `stork status` and `stork status --json`, the
# daemon's log, error messages, and the daemon's command line in ps. A netrc file that others
# can read is refused.
. "$(dirname "$0")/lib.sh"

need nginx openssl python3 ps
need_fuse
make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"

rand 1000000
PW="secret-pw-$R"
printf 'alice:%s\n' "$(openssl passwd -apr1 "$PW")" >"$T/htpasswd"
NGINX_EXTRA="auth_basic \"stork test\"; auth_basic_user_file $T/htpasswd;" start_nginx "$REPO"
HOSTPORT=127.0.0.1:$NGINX_PORT
AUTH_URL="http://alice:$PW@$HOSTPORT"
FILE=usr/share/doc/pkg/random.bin

# all_attrs PATH: every extended attribute, NAME="VALUE" a line (getfattr -d -m -, without
# the attr package).
all_attrs() {
	python3 -c 'import os, sys
p = sys.argv[1]
for n in os.listxattr(p):
	print("%s=\"%s\"" % (n, os.getxattr(p, n).decode()))' "$1"
}

# no_password DESC FILE...: the password occurs in none of the files.
no_password() {
	local desc=$1 f
	shift
	for f in "$@"; do
		if grep -qF -- "$PW" "$f"; then
			grep -nF -- "$PW" "$f" | head -5 >&2
			fail "$desc: the password shows in $f"
		fi
	done
	pass "$desc"
}

# --- the server really wants the password -----------------------------------------------------
extract --store "$T/store0" "$NGINX_URL" synth 1.0 "$T/dest0"
[ "$RC" -ne 0 ] && grep -qF "HTTP 401" "$T/err" || {
	_show_run
	fail "stork extract without credentials: expected an HTTP 401 failure"
}
pass "without credentials nginx answers 401 and stork extract fails"

# --- stork extract with the password in the URL ------------------------------------------------
extract_ok "stork extract with user:password in the mirror URL" --store "$T/store1" "$AUTH_URL" \
	synth 1.0 "$T/dest1"
check "the extracted tree is its source" compare_tree "$T/src" "$T/dest1"
no_password "stork extract prints no password" "$T/out" "$T/err"

# A failure that names the mirror: the name comes without its password.
extract --store "$T/store-x" "$AUTH_URL/nowhere" synth 1.0 "$T/dest-x"
[ "$RC" -ne 0 ] || fail "stork extract from a mirror path that does not exist succeeded"
err_has "the error names the mirror without its userinfo" "http://***@$HOSTPORT/nowhere"
no_password "the error message has no password" "$T/out" "$T/err"
run "$STORK" ls --root "$ROOT" "$AUTH_URL/nowhere"
[ "$RC" -ne 0 ] || fail "stork ls of a missing repository succeeded"
no_password "stork ls's error has no password" "$T/out" "$T/err"
expect_rc 0 "stork ls over the password-protected mirror" "$STORK" ls --root "$ROOT" "$AUTH_URL"
out_has "stork ls lists the package" synth
expect_rc 0 "stork verify over the password-protected mirror" "$STORK" verify --root "$ROOT" "$AUTH_URL"
out_has "stork verify names the repository without its password" "verified http://***@$HOSTPORT"
no_password "stork ls and stork verify print no password" "$T/out" "$T/err"

# --- a mount, as users run it (the daemon detaches; its log goes to syslog) ---------------------
MNT=$T/mnt
mkdir -p "$MNT"
_MOUNTS+=("$MNT")
expect_rc 0 "storkfs mounts with user:password in the mirror URL" \
	"$STORKFS" -o "root=$ROOT,store=$T/store2,timeout=30" "$AUTH_URL" "$MNT"
no_password "storkfs prints no password while mounting" "$T/out" "$T/err"
cmp -s "$T/src/$FILE" "$MNT/synth/1.0/$FILE" || fail "$FILE does not read back through the mount"
pass "files read through the mount from the password-protected mirror"
DPID=$(status_field "$MNT" pid)
ps -o args= -p "$DPID" >"$T/ps"
grep -qF "$HOSTPORT" "$T/ps" || fail "ps -p $DPID does not show the daemon's mirror: $(cat "$T/ps")"
no_password "ps shows the daemon's command line without the password" "$T/ps"
all_attrs "$MNT" >"$T/attrs-root"
all_attrs "$MNT/synth/1.0/$FILE" >"$T/attrs-file"
grep -qF "http://***@$HOSTPORT" "$T/attrs-root" ||
	fail "user.storkfs.mirrors/status do not name the mirror: $(cat "$T/attrs-root")"
grep -qF "user.storkfs.source=\"http://***@$HOSTPORT\"" "$T/attrs-file" ||
	fail "user.storkfs.source does not name the mirror: $(cat "$T/attrs-file")"
no_password "every attribute of the mount root and of a file (getfattr -d) shows no password" "$T/attrs-root" "$T/attrs-file"
expect_rc 0 "stork status MOUNTPOINT" "$STORK" status "$MNT"
no_password "stork status shows no password" "$T/out" "$T/err"
expect_rc 0 "stork status --json MOUNTPOINT" "$STORK" status --json "$MNT"
out_has "stork status --json names the mirror without its password" "http://***@$HOSTPORT"
no_password "stork status --json shows no password" "$T/out" "$T/err"
expect_rc 0 "stork status STOREDIR" "$STORK" status "$T/store2"
no_password "stork status of the node store shows no password" "$T/out" "$T/err"
fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT"

# --- the daemon's log (-f: stderr), with a first mirror that fails ------------------------------
free_port
DEAD=$FREE_PORT
mount_storkfs "$T/mnt-f" "store=$T/store3,timeout=30" "http://alice:$PW@127.0.0.1:$DEAD/" "$AUTH_URL"
cmp -s "$T/src/$FILE" "$T/mnt-f/synth/1.0/$FILE" || fail "$FILE does not read through the -f mount"
grep -qF "http://***@127.0.0.1:$DEAD" "$SFS_LOG" || {
	cat "$SFS_LOG" >&2
	fail "the log does not tell that the first mirror failed"
}
no_password "the daemon's log names failing mirrors without their password" "$SFS_LOG"
unmount_storkfs "$T/mnt-f"

# --- a netrc file instead of a password in the URL ----------------------------------------------
printf 'machine 127.0.0.1 login alice password %s\n' "$PW" >"$T/netrc"
chmod 600 "$T/netrc"
extract_ok "stork extract --netrc with a plain mirror URL" --store "$T/store4" --netrc "$T/netrc" \
	"$NGINX_URL" synth 1.0 "$T/dest4"
check "the tree extracted with --netrc is its source" compare_tree "$T/src" "$T/dest4"
expect_rc 0 "stork ls --netrc" "$STORK" ls --root "$ROOT" --netrc "$T/netrc" "$NGINX_URL"
mount_storkfs "$T/mnt-n" "store=$T/store5,timeout=30,netrc=$T/netrc" "$NGINX_URL"
cmp -s "$T/src/$FILE" "$T/mnt-n/synth/1.0/$FILE" || fail "$FILE does not read through -o netrc="
pass "a mount with -o netrc=FILE reads from the password-protected mirror"
ps -o args= -p "$SFS_PID" >"$T/ps"
no_password "ps of a netrc mount shows no password" "$T/ps" "$SFS_LOG"
unmount_storkfs "$T/mnt-n"

chmod 644 "$T/netrc"
extract --store "$T/store6" --netrc "$T/netrc" "$NGINX_URL" synth 1.0 "$T/dest6"
[ "$RC" -eq 2 ] || {
	_show_run
	fail "stork extract --netrc with a world-readable file: expected exit 2, got $RC"
}
err_has "a netrc file readable by others is refused, naming it and the fix" "$T/netrc" \
	"readable or writable by other users" "chmod 600"
mkdir -p "$T/mnt-r"
expect_rc 1 "storkfs -o netrc= with a world-readable file refuses to mount" \
	"$STORKFS" -f -o "root=$ROOT,store=$T/store6,netrc=$T/netrc" "$NGINX_URL" "$T/mnt-r"
err_has "the mount's refusal names the option and the file" "netrc" "$T/netrc" "chmod 600"
! is_mounted "$T/mnt-r" || fail "$T/mnt-r was mounted with a world-readable netrc"
done_ok
