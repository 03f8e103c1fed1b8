#!/usr/bin/env bash
# Mix-and-match (TUF: "mix-and-match attack"). A hostile mirror serves the repository's new
# state S2 (a new delegation: targets v3; p 2.0: alice v2) with one file replaced by the old
# version's bytes under the new file name, so that it offers a combination of genuinely
# signed files that never existed together:
#   old-targets   N.targets.json holds the previous targets (signed, version N-1)
#   old-role      N.alice.json holds the previous alice role (without p 2.0)
#   old-snapshot  the new timestamp with the previous snapshot's bytes under the new name
# The node trusts S1. stork extract p 2.0 from that mirror is refused naming the file and the
# mismatch (version or hash); nothing of it is extracted; the trusted version of the mixed
# role and of every role after it does not move (roles verified before it may only move to
# the genuine S2). From [hostile, good] the result is the genuine p 2.0 or a refusal, never
# anything else; p 1.0 keeps its genuine bytes.
. "$(dirname "$0")/lib_transport.sh"

need python3 nginx
make_repo
mkdir -p "$T/src1" "$T/src2"
rnd 1 20000 >"$T/src1/a"
rnd 2 20000 >"$T/src2/a"
publish p 1.0 "$T/src1"
old_targets=$(latest_meta targets)
old_alice=$(latest_meta alice)
old_snap=$(latest_meta snapshot)
start_nginx "$REPO"
GOOD=$NGINX_URL
extract_ok "the node extracts p 1.0 from the good mirror (trusts S1)" --store "$T/store" "$GOOD" p 1.0 "$T/d1"
S1=$(trusted_state "$T/store")

keygen "$T/pub/bob.key"
run "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" 'b*'
[ "$RC" -eq 0 ] || fail "stork repo delegate bob: $ERR"
publish p 2.0 "$T/src2"
new_targets=$(latest_meta targets)
new_alice=$(latest_meta alice)
new_snap=$(latest_meta snapshot)
[ "$new_targets" != "$old_targets" ] && [ "$new_alice" != "$old_alice" ] && [ "$new_snap" != "$old_snap" ] ||
	fail "test setup: S2 did not change targets, alice and snapshot"
cp -a "$T/store" "$T/store-ref"
extract_ok "a copy of the node extracts p 2.0 from the good mirror (the genuine S2)" \
	--store "$T/store-ref" "$GOOD" p 2.0 "$T/d-ref"
S2=$(trusted_state "$T/store-ref")

# mixed CASE NEWFILE OLDFILE FIRST WORDS: a hostile copy of S2 serving OLDFILE's bytes as
# NEWFILE; p 2.0 from it is refused naming NEWFILE and matching the regex WORDS; the trusted
# state moves at most as trust_at_most allows for TRUST_ROLES index FIRST
mixed() {
	local c=$1 new=$2 old=$3 first=$4 words=$5 h s
	h=$T/hostile-$c
	cp -a "$REPO" "$h"
	cp "$REPO/metadata/$old" "$h/metadata/$new"
	start_nginx "$h"
	s=$T/store-$c
	cp -a "$T/store" "$s"
	extract --store "$s" "$NGINX_URL" p 2.0 "$T/$c"
	if [ "$RC" -eq 0 ] || [ "$RC" -ge 124 ]; then
		_show_run
		fail "$c: stork extract p 2.0 exited $RC, want a refusal"
	fi
	[ ! -e "$T/$c" ] || [ -z "$(find "$T/$c" -type f -print -quit)" ] || fail "$c: files were extracted"
	pass "$c: p 2.0 from the hostile mirror is refused (exit $RC)"
	tail -n 1 "$T/err" | grep -F "metadata/$new" | matches -iE "$words" || {
		_show_run
		fail "$c: the error does not name metadata/$new and the mismatch ($words)"
	}
	pass "$c: the error names metadata/$new and the mismatch: $(tail -n 1 "$T/err" | cut -c1-160)"
	trust_at_most "$c: the trusted state did not take the mixed file (nor anything after it)" \
		"$s" "$S1" "$S2" "$first"
	# [hostile, good]: the refused copy counts as the hostile mirror's failure (told, naming
	# it) and the good mirror's genuine file is taken: p 1.0 and p 2.0 are genuine and the
	# genuine new state is trusted.
	extract --store "$s" "$NGINX_URL" "$GOOD" p 1.0 "$T/$c-p1"
	[ "$RC" -eq 0 ] || {
		_show_run
		fail "$c: p 1.0 from [hostile, good] did not fail over to the good mirror"
	}
	check "$c: p 1.0 from [hostile, good] is the genuine tree" compare_tree "$T/src1" "$T/$c-p1"
	grep -F "$NGINX_URL" "$T/err" | matches -F "metadata/$new" || {
		_show_run
		fail "$c: no line names the hostile mirror $NGINX_URL and metadata/$new"
	}
	pass "$c: the hostile mirror and metadata/$new are named in the log"
	extract_ok "$c: p 2.0 from [hostile, good]" --store "$s" "$NGINX_URL" "$GOOD" p 2.0 "$T/$c-2"
	check "$c: p 2.0 from [hostile, good] is the genuine tree" compare_tree "$T/src2" "$T/$c-2"
	assert_unchanged "$c: after [hostile, good]: the genuine new state is trusted" "$s" "$S2"
	fsck_clean "$c: stork fsck finds the store clean" "$s"
	stop_nginx "$NGINX_DIR"
}

mixed old-snapshot "$new_snap" "$old_snap" 2 'hash|length|version'
mixed old-targets "$new_targets" "$old_targets" 3 'version'
mixed old-role "$new_alice" "$old_alice" 4 'version'
done_ok
