#!/usr/bin/env bash
# Endless data (TUF: "endless data attack"). A hostile mirror (the fault server's "endless"
# fault) answers one file with a body that never ends: timestamp.json, the next root
# 2.root.json (absent from the repository: the server invents it), the new N.snapshot.json,
# N.targets.json, N.alice.json, a package manifest and an object. The node trusts the
# repository's state S1; the repository has since published S2 (a new delegation: a new
# targets; package p 2.0: a new alice role), so a refresh fetches every one of those files.
#
# For each file, `stork extract p 2.0` from that mirror alone must stop at the cap (16 KiB
# timestamp, 512 KiB root, the timestamp's signed length for the snapshot, 5 MiB targets and
# delegated roles, the signed length for the manifest and the object), fail naming the file
# and the limit, finish within 15 s, and never write a file past 4 MiB (ulimit -f, smaller
# than the 5 MiB cap: a client that spooled the body to disk would die of SIGXFSZ). The
# trusted state must not move for the attacked role nor any role after it in the workflow
# (roles before it may only move to S2, the genuine state); nothing enters the store that
# does not hash to its name (stork fsck). Both an endless body without a Content-Length and
# one announcing 2^40 bytes are tried.
. "$(dirname "$0")/lib_transport.sh"

need python3 nginx
make_repo
mkdir -p "$T/src1" "$T/src2"
rnd 1 100000 >"$T/src1/a"
rnd 2 100000 >"$T/src2/a"
echo small >"$T/src2/small"
publish p 1.0 "$T/src1"
start_nginx "$REPO"
start_faultserver "$REPO"

# the node trusts S1
extract_ok "the node extracts p 1.0 from the good mirror (trusts S1)" --store "$T/store" \
	"$NGINX_URL" p 1.0 "$T/d1"
S1=$(trusted_state "$T/store")
[ -n "$(trusted_line "$S1" "role alice")" ] || fail "test setup: the node trusts no alice role: $S1"

# S2: a new delegation (new targets) and p 2.0 (new alice role, snapshot, timestamp)
keygen "$T/pub/bob.key"
run "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" 'b*'
[ "$RC" -eq 0 ] || fail "stork repo delegate bob: $ERR"
publish p 2.0 "$T/src2"
snap=$(latest_meta snapshot)
targets=$(latest_meta targets)
alice=$(latest_meta alice)
[ "$targets" != 2.targets.json ] && [ "$alice" != 1.alice.json ] ||
	fail "test setup: S2 did not change targets and alice ($targets, $alice)"
snap_len=$(stat -c %s "$REPO/metadata/$snap")
manifest=$(manifest_file p 2.0)
m_path=${manifest#"$REPO"/}
m_len=$(stat -c %s "$manifest")
read -r o_a _ _ < <(manifest_hashes p 2.0 | grep ' a$')
o_path=$(object_path "$o_a")
o_len=$(python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["files"]:
    if e["path"] == "a":
        print(e["zsize"])' "$manifest")

# the genuine S2 as a good refresh leaves it
cp -a "$T/store" "$T/store-ref"
extract_ok "a copy of the node extracts p 2.0 from the good mirror (the genuine S2)" \
	--store "$T/store-ref" "$NGINX_URL" p 2.0 "$T/d-ref"
S2=$(trusted_state "$T/store-ref")

# the caps
[ "$(bash -c 'ulimit -f 4096 && exec head -c 5M /dev/zero' 2>/dev/null >"$T/probe"; echo $?)" -eq 153 ] ||
	fail "test setup: ulimit -f 4096 does not stop a 5 MiB write"

# endless CASE URLPATH CAP FIRST LENGTH: the mirror answers URLPATH endlessly (LENGTH none or
# huge); the extract fails within 15 s naming the file and the limit CAP; the trusted state
# moved as trust_at_most allows for a file at TRUST_ROLES index FIRST.
endless() {
	local c=$1 p=$2 cap=$3 first=$4 len=$5 s
	s=$T/store-$c
	rm_rf "$s"
	cp -a "$T/store" "$s"
	fault_set "[{\"match\": \"^/$p\$\", \"fault\": \"endless\", \"fill\": \"space\", \"length\": \"$len\"}]"
	: >"$FAULT_DIR/access.log"
	timed_extract 4096 20 --store "$s" "$FAULT_URL" p 2.0 "$T/d-$c"
	if [ "$RC" -eq 0 ] || [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ] || [ "$RC" -eq 153 ]; then
		_show_run
		[ "$RC" -ne 153 ] || fail "$c: stork extract wrote a file past 4 MiB (SIGXFSZ)"
		[ "$RC" -ne 0 ] || fail "$c: stork extract succeeded against an endless $p"
		fail "$c: stork extract did not finish within 20 s"
	fi
	pass "$c: stork extract fails (exit $RC) in ${ELAPSED}s, no file past 4 MiB written"
	[ "$ELAPSED" -le 15 ] || fail "$c: took ${ELAPSED}s (more than 15 s)"
	[ "$(fault_requests "^GET /$p 200 [0-9]+ endless")" -ge 1 ] || fail "$c: the mirror never sent the endless $p"
	# the final error names the file and the limit, with the cap as the number
	tail -n 1 "$T/err" | grep -F "$p" | grep -E "(more than|longer than)[^0-9]*$cap bytes" >/dev/null || {
		_show_run
		fail "$c: the error does not name $p and the limit of $cap bytes"
	}
	pass "$c: the error names $p and the limit of $cap bytes"
	[ ! -e "$T/d-$c" ] || [ -z "$(find "$T/d-$c" -type f -print -quit)" ] ||
		fail "$c: the failed extract left files in $T/d-$c"
	trust_at_most "$c: trusted state: unchanged from the attacked role on, at most the genuine S2 before" \
		"$s" "$S1" "$S2" "$first"
	fsck_clean "$c: stork fsck finds the store clean" "$s"
	check "$c: every stored object holds what its name hashes" store_hashes_ok "$s"
}

endless timestamp metadata/timestamp.json 16384 1 none
endless timestamp-huge metadata/timestamp.json 16384 1 huge
endless root metadata/2.root.json 524288 0 none
endless snapshot "metadata/$snap" "$snap_len" 2 none
endless targets "metadata/$targets" 5242880 3 none
endless role "metadata/$alice" 5242880 4 none
endless role-huge "metadata/$alice" 5242880 4 huge
endless manifest "$m_path" "$m_len" 5 none
endless object "$o_path" "$o_len" 5 none
# the manifest never entered the store: the store holds p 1.0's manifest only
[ "$("$STORK" status "$T/store-manifest" | grep '^  manifests')" = "$("$STORK" status "$T/store" | grep '^  manifests')" ] ||
	fail "manifest: the store's manifest count changed"
pass "manifest: no manifest was stored"
[ ! -e "$T/store-object/$o_path" ] || fail "object: $o_path is in the store"
pass "object: the object is not in the store"
stop_faultserver
done_ok
