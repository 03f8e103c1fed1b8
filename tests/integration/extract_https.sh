#!/usr/bin/env bash
# stork extract over HTTPS from nginx on loopback, with a self-signed CA made here and passed
# with --cacert: the version extracts byte-identical (over HTTP/2, which nginx offers); without
# the CA, or with another CA, the server is not trusted and nothing is extracted.
. "$(dirname "$0")/lib.sh"

need dpkg-deb python3 nginx openssl curl
fetch_debs
make_repo

# --- a test CA and a server certificate for 127.0.0.1 signed by it (and another CA)
pki=$T/pki
mkdir -p "$pki"
mkca() { # mkca NAME
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-keyout "$pki/$1.key" -out "$pki/$1.pem" -subj "/CN=storkfs test $1" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		2>"$pki/$1.log" || {
		cat "$pki/$1.log" >&2
		fail "openssl could not make the test CA $1"
	}
}
mkca ca
mkca other-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/server.key" \
	-out "$pki/server.csr" -subj "/CN=127.0.0.1" 2>"$pki/server.log" || fail "openssl req (server)"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
	>"$pki/server.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
	-days 2 -out "$pki/server.pem" -extfile "$pki/server.ext" 2>>"$pki/server.log" ||
	fail "openssl x509 (server)"

synth_tree "$T/src"
publish synth 1.0 "$T/src"
hello=
for d in "${DEBS[@]}"; do
	[ "$(deb_field "$d" Package)" != hello ] || hello=$d
done
[ -n "$hello" ] || fail "no hello .deb"
hv=$(deb_field "$hello" Version)
publish hello "$hv" "$hello" --quiet
deb_extract "$hello" "$T/ref-hello"

start_nginx_tls "$REPO" "$pki/server.pem" "$pki/server.key"
curl -sf --cacert "$pki/ca.pem" -o /dev/null "$NGINX_URL/metadata/1.root.json" ||
	fail "curl cannot fetch over TLS with the test CA: the test setup is broken"

# --- with the CA
extract_ok "synth 1.0 extracts over https with --cacert" --store "$T/store" --cacert "$pki/ca.pem" \
	"$NGINX_URL" synth 1.0 "$T/dest"
check "synth 1.0 over https is identical to its source" compare_tree "$T/src" "$T/dest"
[ "$X_FETCHED" -gt 0 ] && [ "$(nginx_requests '"GET /objects/')" -eq "$X_FETCHED" ] ||
	fail "nginx served $(nginx_requests '"GET /objects/') object requests, extract fetched $X_FETCHED"
pass "the objects came from the https server ($X_FETCHED requests)"
extract_ok "hello $hv extracts over https" --store "$T/store" --cacert "$pki/ca.pem" \
	"$NGINX_URL" hello "$hv" "$T/dest-hello"
check "hello over https is identical to dpkg-deb -x" compare_tree "$T/ref-hello" "$T/dest-hello"
if curl -V | matches '^Features:.*HTTP2'; then
	h2=$(nginx_requests '"GET /objects/[^ ]* HTTP/2')
	[ "$h2" -eq "$(nginx_requests '"GET /objects/')" ] ||
		fail "only $h2 of $(nginx_requests '"GET /objects/') object requests used HTTP/2, which nginx offers: $(grep objects "$NGINX_DIR/access.log" | head -2)"
	pass "objects are fetched over HTTP/2 when the server offers it"
fi
fsck_clean "the store is clean" "$T/store"

# --- without the CA, and with another CA: refused, nothing extracted, nothing stored
for ca in none other-ca; do
	opt=()
	[ "$ca" = none ] || opt=(--cacert "$pki/$ca.pem")
	before=$(wc -l <"$NGINX_DIR/access.log")
	extract --store "$T/store-$ca" "${opt[@]}" "$NGINX_URL" synth 1.0 "$T/dest-$ca"
	if [ "$RC" -eq 0 ] || [ "$RC" -eq 124 ]; then
		_show_run
		fail "extract over https trusting $ca: expected a failure, got exit $RC"
	fi
	pass "extract over https trusting $ca fails (exit $RC)"
	err_has "the failure names the mirror" "$NGINX_URL"
	[ ! -e "$T/dest-$ca" ] || fail "a failed extract left $T/dest-$ca"
	[ "$(wc -l <"$NGINX_DIR/access.log")" -eq "$before" ] ||
		fail "the untrusted server answered requests: $(tail -n +$((before + 1)) "$NGINX_DIR/access.log" | head -3)"
	pass "trusting $ca: no request got through, no destination left"
done
done_ok
