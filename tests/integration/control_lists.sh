#!/usr/bin/env bash
# Central package control (verify/README.md "Control lists", fs/README.md "Control lists"):
# the operator delegates the control lists of groups web and db to the key ops, and ops
# publishes them (`stork control publish`). storkfs runs as users run it (without -f: it logs to
# syslog, received on this test's own /dev/log in a private mount namespace) with -o slices=DIR
# holding five slices: w1 follows web with ops's key pinned, w2 follows web as the repository
# delegates it, d follows db, x follows web but trusts only bob's key for it, n follows nothing.
#   1. Before web has a list, w1 and w2 have none (their status says so) while d has db's.
#   2. web's list is published; after SIGHUP, w1 and w2 show it (user.storkfs.status of the slice
#      root, stork status, the log), d does not change, n has no control status.
#   3. x refuses web's list: its status and the log name the policy line, the role's metadata
#      file, the role and the key that signed it.
#   4. The mirror (nginx) stops; web's list changes twice; a SIGHUP refresh fails and the slices
#      keep list version 1; nginx comes back on the same port; after SIGHUP w1 and w2 show the
#      latest list (version 3), never version 2.
#   5. The mirror serves forged bytes for version 4 of the list: w1 refuses it (status and log
#      name the file and the hash mismatch) and keeps version 3; with the real file back, 4.
. "$(dirname "$0")/private_ns.sh"
. "$(dirname "$0")/lib.sh"

need python3 nginx mount
need_fuse
private_syslog

# control SLICE FIELD: a field of the slice's control status ("-" when there is none).
control() {
	xattr "$MNT/.slices/$1" user.storkfs.status | python3 -c 'import json, sys
c = json.load(sys.stdin).get("control")
f = sys.argv[1]
if c is None:
    print("-")
elif f == "wanted":
    print(" ".join(p["name"] + ("=" + p["version"] if "version" in p else "") for p in c["wanted"]))
else:
    v = c.get(f)
    print("-" if v is None else v)' "$2"
}


# is SLICE FIELD VALUE / isnt SLICE FIELD VALUE: the field's value now is (is not) VALUE (for
# within: the status is read again at each try).
is() {
	[ "$(control "$1" "$2")" = "$3" ]
}

isnt() {
	[ "$(control "$1" "$2")" != "$3" ]
}

log_has() {
	grep -qF -- "$1" "$SYSLOG"
}

log_has_re() {
	grep -qE -- "$1" "$SYSLOG"
}

# --- a repository: packages by alice, control lists of web and db by ops --------------------
make_repo 'hello' 'libfoo' 'newpkg'
mkdir -p "$T/src"
echo hi >"$T/src/hello"
publish hello 1.0 "$T/src" --quiet
publish libfoo 1.2-1 "$T/src" --quiet
keygen "$T/ops.key"
OPSID=${KEYID:0:16}
keygen "$T/bob.key"
BOBID=${KEYID:0:16}
expect_rc 0 "stork control delegate gives ops the lists of web and db" \
	"$STORK" control delegate "$REPO" --keys "$KEYS" "$T/ops.key.pub" web db
out_has "it says what it delegated" "web db to ops"
expect_rc 2 "alice may not publish web's list" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$PUBKEY" --group web hello
err_has "the refusal names the group and the command to delegate" "group web" "stork control delegate"
expect_rc 2 "a bad group name is refused" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group 'we/b' hello
err_has "the refusal names the group and the character" 'control group: package name "we/b"' "'/'"
expect_rc 2 "a package listed twice is refused" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group web hello hello=1.0
err_has "the refusal names the package" "package hello is listed twice"
expect_rc 2 "a bad pin is refused" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group web hello=latest
err_has "the refusal names the argument and the rule" 'hello=latest: version "latest": reserved'
expect_rc 1 "stork control show of a group whose role has published nothing" \
	"$STORK" control show --root "$ROOT" "$REPO" web
err_has "it says the delegated role signs nothing yet" "control/web/list.json" "role ops" "nothing published by it yet"
expect_rc 1 "stork control show of a group nobody is delegated" \
	"$STORK" control show --root "$ROOT" "$REPO" nosuch
err_has "it says no role signs one" "group nosuch: no role of $REPO signs a control list for it"
expect_rc 0 "ops publishes db's list" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group db libfoo
out_has "db's list is version 1" "group db: published list version 1"
start_nginx "$REPO"

mkdir -p "$T/slices"
cat >"$T/slices/w1.policy" <<POL
key ops file $T/ops.key.pub
trust * delegated
control web role ops keys ops
POL
cat >"$T/slices/w2.policy" <<POL
trust * delegated
control web delegated
POL
cat >"$T/slices/d.policy" <<POL
key ops file $T/ops.key.pub
trust * delegated
control db role ops keys ops
POL
cat >"$T/slices/x.policy" <<POL
key bob file $T/bob.key.pub
trust * delegated
control web role ops keys bob
POL
cat >"$T/slices/n.policy" <<POL
trust * delegated
POL

MNT=$T/mnt
mkdir -p "$MNT"
_MOUNTS+=("$MNT")
timeout 60 "$STORKFS" -o "root=$ROOT,store=$T/store,timeout=10,slices=$T/slices" "$NGINX_URL" "$MNT" \
	2>"$T/mount.err" || {
	cat "$T/mount.err" >&2
	fail "storkfs did not mount $MNT"
}
SFS_PID=$(status_field "$MNT" pid)
pass "storkfs -o slices= mounts (without -f)"

# --- 1. no list for web yet -------------------------------------------------------------------
for s in w1 w2; do
	[ "$(control $s group)" = web ] || fail "slice $s follows '$(control $s group)', want web"
	[ "$(control $s list_version)" = - ] || fail "slice $s has list version $(control $s list_version) before any was published"
	[ -z "$(control $s wanted)" ] || fail "slice $s wants '$(control $s wanted)' before a list was published"
done
[ "$(control d list_version)" = 1 ] || fail "slice d has db list version $(control d list_version), want 1"
[ "$(control d wanted)" = libfoo ] || fail "slice d wants '$(control d wanted)', want libfoo"
[ "$(control n group)" = - ] || fail "slice n, which follows no group, has a control status"
[ "$(ls "$MNT/.slices/w1" | tr '\n' ' ')" = "hello libfoo " ] || fail "slice w1 lists '$(ls "$MNT/.slices/w1")'"
pass "before web has a list, w1 and w2 want nothing; d has db's list version 1; n follows nothing"

# --- 2. web's list is published: w1 and w2 see it at the next refresh --------------------------
expect_rc 0 "ops publishes web's list" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group web hello libfoo=1.2-1
out_has "web's list is version 1" "group web: published list version 1 (2 packages)"
expect_rc 0 "stork control show verifies web's list from the pinned root" \
	"$STORK" control show --root "$ROOT" "$NGINX_URL" web
out_has "show prints the version, the signer and the packages" \
	"group web: list version 1, signed in role ops by key $OPSID" "  hello" "  libfoo=1.2-1"
expect_rc 0 "stork ls lists the packages" "$STORK" ls --root "$ROOT" "$NGINX_URL"
[ "$(printf '%s\n' "$OUT" | sed 1d | tr '\n' ' ')" = "hello libfoo " ] || fail "stork ls lists '$OUT' (control lists are not packages)"
[ -z "$ERR" ] || fail "stork ls warns about the control lists: $ERR"
expect_rc 0 "stork verify checks the repository" "$STORK" verify --root "$ROOT" "$REPO"
[ -z "$ERR" ] || fail "stork verify reports the control lists: $ERR"
pass "control lists are neither packages for stork ls nor stray files for stork verify"
d_checked=$(control d checked_at)
sleep 1 # checked_at counts seconds
kill -HUP "$SFS_PID"
within 30 is w1 list_version 1 || fail "slice w1 shows no web list 30 s after SIGHUP: $(control w1 error)"
within 30 is w2 list_version 1 || fail "slice w2 shows no web list 30 s after SIGHUP: $(control w2 error)"
for s in w1 w2; do
	[ "$(control $s wanted)" = "hello libfoo=1.2-1" ] || fail "slice $s wants '$(control $s wanted)'"
	[ "$(control $s role)" = ops ] || fail "slice $s's list is signed in role '$(control $s role)'"
	[ "$(control $s key)" = "${OPSID}$(control $s key | cut -c17-)" ] || fail "slice $s's list is signed by key $(control $s key)"
	within 30 log_has "slice $s: wants 2 packages of group web (list version 1): hello, libfoo=1.2-1" ||
		fail "the log does not tell slice $s's wanted list: $(grep -F "slice $s" "$SYSLOG")"
done
pass "after SIGHUP, w1 (ops's key pinned) and w2 (delegated) want hello and libfoo=1.2-1 (list version 1 by ops)"
within 30 isnt d checked_at "$d_checked" || fail "slice d was not checked again at the refresh"
[ "$(control d list_version)" = 1 ] && [ "$(control d wanted)" = libfoo ] ||
	fail "slice d (group db) changed: version $(control d list_version), wants '$(control d wanted)'"
[ "$(control n group)" = - ] || fail "slice n has a control status after the refresh"
pass "slice d, following db, still has db's list version 1; n still follows nothing"
# Convergence: each following slice installs its list by itself (no command on the node).
for s in w1 w2; do
	within 30 log_has "slice $s: now at generation 1 (2 packages) following group web list version 1" ||
		fail "slice $s did not install web's list: $(grep -F "slice $s" "$SYSLOG" | tail -n 3)"
	[ "$(cat "$MNT/.slices/$s/root/hello" 2>&1)" = hi ] || fail "slice $s's root has no hello: $(ls "$MNT/.slices/$s/root" 2>&1)"
done
within 30 log_has "slice d: now at generation 1 (1 package) following group db list version 1" ||
	fail "slice d did not install db's list: $(grep -F "slice d" "$SYSLOG" | tail -n 3)"
[ ! -e "$MNT/.slices/x/root/hello" ] || fail "slice x, which refused web's list, has hello in its root"
[ ! -e "$MNT/.slices/n/root/hello" ] || fail "slice n, which follows nothing, has hello in its root"
pass "w1, w2 and d installed their group's list at the refresh (generation 1, hello in the roots); x and n did not"
expect_rc 0 "stork status of the mount" "$STORK" status "$MNT"
out_has "stork status shows each slice's group, list version, signer and wanted packages" \
	"follows group web: list version 1 (role ops, key $OPSID), wants hello, libfoo=1.2-1" \
	"follows group db: list version 1 (role ops, key $OPSID), wants libfoo"

# --- 3. x trusts bob, not ops, for web: refused -------------------------------------------------
[ "$(control x list_version)" = - ] || fail "slice x took web's list signed by a key it does not trust"
[ -z "$(control x wanted)" ] || fail "slice x wants '$(control x wanted)'"
err=$(control x error)
for w in "control list of group web: refused" "x.policy:3" "role ops" "metadata/" ".ops.json" \
	"valid keys: $BOBID" "signed by key $OPSID"; do
	case $err in *"$w"*) ;; *) fail "slice x's status error does not mention '$w': $err" ;; esac
done
within 30 log_has "slice x: control list of group web: refused: " || fail "the log does not tell x's refusal"
line=$(grep -F "slice x: control list of group web: refused" "$SYSLOG" | tail -n 1)
for w in "x.policy:3" "pinned role ops" ".ops.json" "signed by key $OPSID" "no wanted list yet"; do
	case $line in *"$w"*) ;; *) fail "the log's refusal does not name '$w': $line" ;; esac
done
pass "slice x refuses web's list: the log names the policy line, metadata/N.ops.json, role ops and the signing key"

# --- 4. the mirror goes down while the list changes twice ---------------------------------------
stop_nginx
expect_rc 0 "web's list version 2" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group web hello newpkg
out_has "it is version 2" "published list version 2"
expect_rc 0 "web's list version 3" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group web newpkg libfoo=1.2-1
out_has "it is version 3" "published list version 3"
declare -A checked=([w1]=$(control w1 checked_at) [w2]=$(control w2 checked_at))
sleep 1 # checked_at counts seconds
kill -HUP "$SFS_PID"
within 30 log_has_re "refresh failed|offline: using the metadata verified earlier" ||
	fail "the log does not tell the failed refresh with the mirror down"
for s in w1 w2; do
	within 30 isnt $s checked_at "${checked[$s]}" || fail "slice $s was not checked at the refresh with its mirror down"
	[ "$(control $s list_version)" = 1 ] && [ "$(control $s wanted)" = "hello libfoo=1.2-1" ] ||
		fail "slice $s lost its list with the mirror down: version $(control $s list_version), wants '$(control $s wanted)'"
done
pass "mirror down: the refresh fails; w1 and w2 keep list version 1, which the state in use still signs"

nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" ||
	fail "nginx did not start again on port $NGINX_PORT"
kill -HUP "$SFS_PID"
within 30 is w1 list_version 3 || fail "slice w1 has list version $(control w1 list_version) 30 s after the mirror came back: $(control w1 error)"
within 30 is w2 list_version 3 || fail "slice w2 has list version $(control w2 list_version) 30 s after the mirror came back: $(control w2 error)"
for s in w1 w2; do
	[ "$(control $s wanted)" = "libfoo=1.2-1 newpkg" ] || fail "slice $s wants '$(control $s wanted)', want libfoo=1.2-1 newpkg"
	[ "$(control $s error)" = - ] || fail "slice $s still shows an error: $(control $s error)"
	! log_has "slice $s: control list of group web: version 2 verified" || fail "slice $s went through list version 2"
	log_has "slice $s: control list of group web: version 3 verified (role ops, key $OPSID)" ||
		fail "the log does not tell slice $s's list version 3"
done
[ "$(control d list_version)" = 1 ] || fail "slice d changed to version $(control d list_version)"
pass "the mirror is back: after SIGHUP w1 and w2 want the latest list (version 3: libfoo=1.2-1 newpkg), never version 2"
# newpkg is not published: the list cannot be installed, the slice stays where it was.
within 30 log_has "slice w1: cannot install group web's list version 3: " ||
	fail "the log does not tell that w1 cannot install list version 3: $(grep -F "slice w1" "$SYSLOG" | tail -n 3)"
grep -F "slice w1: cannot install group web's list version 3: " "$SYSLOG" | tail -n 1 | grep -qF "newpkg" ||
	fail "the log line does not name the missing package newpkg: $(grep -F "cannot install" "$SYSLOG" | tail -n 1)"
grep -F "slice w1: cannot install group web's list version 3: " "$SYSLOG" | tail -n 1 | grep -qF "stays at generation 1" ||
	fail "the log line does not say w1 stays at generation 1"
[ "$(cat "$MNT/.slices/w1/root/hello" 2>&1)" = hi ] || fail "w1's root changed after a list it cannot install"
pass "list version 3 names a package that is not published: w1 stays at generation 1, the log names newpkg"

# --- 5. the mirror serves other bytes for version 4 of the list: refused, version 3 kept -------
ls "$REPO/targets/control/web" | sort >"$T/lists.before"
expect_rc 0 "web's list version 4" \
	"$STORK" control publish "$REPO" --keys "$KEYS" --key "$T/ops.key" --group web hello
v4=$(ls "$REPO/targets/control/web" | sort | comm -13 "$T/lists.before" -)
[ -n "$v4" ] && [ "$(printf '%s\n' "$v4" | wc -l)" -eq 1 ] || fail "publishing version 4 wrote '$v4'"
mv "$REPO/targets/control/web/$v4" "$T/v4.json"
printf '{"_type":"storkfs-control","group":"web","packages":[{"name":"evil"}],"spec_version":1,"version":4}' \
	>"$REPO/targets/control/web/$v4"
kill -HUP "$SFS_PID"
within 30 isnt w1 error - || fail "slice w1 shows no error 30 s after its mirror served a forged list: $(xattr "$MNT/.slices/w1" user.storkfs.status)"
for w in "targets/control/web/$v4" "every mirror failed" "signed"; do
	case $(control w1 error) in *"$w"*) ;; *) fail "w1's error does not name '$w': $(control w1 error)" ;; esac
done
[ "$(control w1 list_version)" = 3 ] && [ "$(control w1 wanted)" = "libfoo=1.2-1 newpkg" ] ||
	fail "slice w1 took a forged list: version $(control w1 list_version), wants '$(control w1 wanted)'"
within 30 log_has "slice w1: control list of group web not updated: targets/control/web/$v4" ||
	fail "the log does not tell w1's refused list"
grep -F "slice w1: control list of group web not updated" "$SYSLOG" | tail -n 1 | grep -qF "keeping list version 3" ||
	fail "the log does not say w1 keeps list version 3"
pass "a forged list (bytes that do not match the signed hash) is refused, named in the log, and w1 keeps version 3"
mv "$T/v4.json" "$REPO/targets/control/web/$v4"
kill -HUP "$SFS_PID"
within 30 is w1 list_version 4 || fail "slice w1 has list version $(control w1 list_version) after the real list is back: $(control w1 error)"
[ "$(control w1 wanted)" = hello ] && [ "$(control w1 error)" = - ] ||
	fail "slice w1 wants '$(control w1 wanted)', error '$(control w1 error)'"
pass "the real list back: w1 wants version 4 (hello)"
within 30 log_has "slice w1: now at generation 2 (1 package) following group web list version 4" ||
	fail "slice w1 did not install list version 4: $(grep -F "slice w1" "$SYSLOG" | tail -n 3)"
[ "$(cat "$MNT/.slices/w1/root/hello" 2>&1)" = hi ] || fail "w1's root lost hello at generation 2"
pass "w1 installed list version 4 (generation 2: hello only)"

fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
for _ in $(seq 300); do
	running "$SFS_PID" || break
	sleep 0.1
done
! running "$SFS_PID" || fail "storkfs still runs after the unmount"
pass "unmounted; the daemon exited"
done_ok
