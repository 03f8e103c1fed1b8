#!/usr/bin/env bash
# What a mirror does wrong is told as what it is: a metadata file served with a
# Content-Encoding storkfs did not ask for (nginx's gzip_static always) is reported as such,
# not as a JSON parse error; a redirect to file:// or ftp:// is reported as a refused redirect,
# not as a missing protocol; a redirect loop as more than 4 redirects.
. "$(dirname "$0")/lib.sh"

need nginx gzip python3
make_repo
synth_tree "$T/src"
publish synth 1.0 "$T/src"

# --- Content-Encoding: gzip on a request that asked for none ----------------------------------
cp -a "$REPO" "$T/gz"
gzip -k "$T/gz/metadata/timestamp.json"
NGINX_EXTRA="location /metadata/ { gzip_static always; }" start_nginx "$T/gz"
run "$STORK" ls --root "$ROOT" "$NGINX_URL"
[ "$RC" -ne 0 ] || fail "stork ls accepted a gzip-encoded timestamp.json"
err_has "a gzip-encoded metadata file is reported as an unrequested Content-Encoding" \
	"metadata/timestamp.json" "Content-Encoding: gzip" "not asked for"
if sed 's/[a-z0-9.]*\.json//g' "$T/err" | grep -qiE "json|parse"; then
	_show_run
	fail "the Content-Encoding failure is reported as a JSON error"
fi
pass "...and not as a JSON parse error"
extract --store "$T/store-gz" "$NGINX_URL" synth 1.0 "$T/dest-gz"
[ "$RC" -ne 0 ] || fail "stork extract accepted a gzip-encoded timestamp.json"
err_has "stork extract tells the same" "Content-Encoding: gzip"

# --- redirects to other protocols ----------------------------------------------------------------
for target in "ftp://127.0.0.1/metadata/timestamp.json" "file:///etc/passwd"; do
	NGINX_EXTRA="location = /metadata/timestamp.json { return 302 $target; }" start_nginx "$REPO"
	run "$STORK" ls --root "$ROOT" "$NGINX_URL"
	[ "$RC" -ne 0 ] || fail "stork ls followed a redirect to $target"
	err_has "a redirect to ${target%%:*}:// is reported as a refused redirect" \
		"metadata/timestamp.json" "refused a redirect to $target"
done
# A redirect loop ends after 4 and says so.
NGINX_EXTRA="location = /metadata/timestamp.json { return 302 /metadata/timestamp.json; }" start_nginx "$REPO"
run "$STORK" ls --root "$ROOT" "$NGINX_URL"
[ "$RC" -ne 0 ] || fail "stork ls followed a redirect loop to success"
err_has "a redirect loop is reported as too many redirects" "metadata/timestamp.json" "more than 4 redirects"
done_ok
