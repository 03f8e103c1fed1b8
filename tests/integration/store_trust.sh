#!/usr/bin/env bash
# The node store is a trust boundary: whoever may write to it decides what root's mount
# serves and runs. A store (or its index/, index/data.mdb, objects/) owned by another uid
# (65534), a store group- or world-writable (0770, 0777) or listable by others (0755) is
# refused by storkfs (the daemon, without -f, says why on stderr and exits non-zero), stork
# extract, stork prefetch and stork fsck, each naming the path and the command that fixes it;
# after the fix each works again. A new store is made 0700; 0711 (search only, for a peer's
# web server) is accepted.
. "$(dirname "$0")/lib.sh"

need python3 nginx
need_fuse
need_root "gives files to uid 65534"

make_repo
synth_tree "$T/src" 1
publish pkg 1.0 "$T/src" --quiet
start_nginx "$REPO"
S=$T/store
MNT=$T/mnt
mkdir -p "$MNT"
_MOUNTS+=("$MNT")

extract_ok "a first extract makes the store" --store "$S" "$NGINX_URL" pkg 1.0 "$T/x0"
[ "$(stat -c %a "$S")" = 700 ] || fail "a new store is mode $(stat -c %a "$S"), want 700"
pass "a new store is made 0700"

n=0
# refused_by_all DESC WORD...: storkfs, extract, prefetch and fsck all refuse $S, exit
# non-zero without a signal, and say every WORD on stderr.
refused_by_all() {
	local desc=$1
	shift
	n=$((n + 1))
	run timeout 60 "$STORKFS" -o "root=$ROOT,store=$S,timeout=5" "$NGINX_URL" "$MNT"
	if is_mounted "$MNT"; then
		fusermount3 -u "$MNT"
		fail "$desc: storkfs mounted the store"
	fi
	[ "$RC" -ne 0 ] && [ "$RC" -lt 124 ] || {
		_show_run
		fail "$desc: storkfs exited $RC"
	}
	err_has "$desc: storkfs refuses it and says why on stderr" "$@"
	extract --store "$S" "$NGINX_URL" pkg 1.0 "$T/x$n"
	[ "$RC" -ne 0 ] && [ "$RC" -lt 124 ] || {
		_show_run
		fail "$desc: stork extract exited $RC"
	}
	[ ! -e "$T/x$n" ] || fail "$desc: stork extract made $T/x$n"
	err_has "$desc: stork extract refuses it" "$@"
	run timeout 60 "$STORK" prefetch --root "$ROOT" --store "$S" "$NGINX_URL" pkg
	[ "$RC" -ne 0 ] && [ "$RC" -lt 124 ] || {
		_show_run
		fail "$desc: stork prefetch exited $RC"
	}
	err_has "$desc: stork prefetch refuses it" "$@"
	run timeout 60 "$STORK" fsck "$S"
	[ "$RC" -ne 0 ] && [ "$RC" -lt 124 ] || {
		_show_run
		fail "$desc: stork fsck exited $RC"
	}
	err_has "$desc: stork fsck refuses it" "$@"
}

works_again() {
	fsck_clean "$1: stork fsck works again" "$S"
	extract_ok "$1: stork extract works again" --store "$S" "$NGINX_URL" pkg 1.0 "$T/ok$n"
	[ "$X_FETCHED" -eq 0 ] || fail "$1: the store lost its objects ($X_FETCHED fetched)"
}

chown 65534:65534 "$S"
refused_by_all "a store owned by uid 65534" "$S: owned by uid 65534" "chown -R 0 $S" "stork fsck --repair $S"
chown 0:0 "$S"
works_again "the store given back"

for mode in 0777 0770 0755; do
	chmod "$mode" "$S"
	refused_by_all "a store of mode $mode" "$S: mode $mode" "chmod 0700 $S"
done
chmod 0711 "$S"
works_again "a store of mode 0711 (search only)"
chmod 0700 "$S"

for f in index index/data.mdb objects; do
	chown 65534 "$S/$f"
	refused_by_all "$f owned by uid 65534" "$S/$f: owned by uid 65534" "chown -R 0 $S"
	chown 0 "$S/$f"
done
chmod o+w "$S/index/data.mdb"
refused_by_all "index/data.mdb writable by others" "$S/index/data.mdb: mode 0646" "chmod go-w $S/index/data.mdb"
chmod o-w "$S/index/data.mdb"
works_again "every file given back"

done_ok
