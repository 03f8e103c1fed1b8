#!/usr/bin/env bash
# The browse site in a real browser: Debian's headless Chromium, driven by playwright-core
# (site_browser.mjs), reads the pages `stork publish` writes into a repository of the Debian
# corpus (23 real .debs) and a synthetic package "hostile" whose versions are published out of
# order and whose files and description carry markup (<img src=x onerror=alert(1)>, quotes,
# ampersands, a control character). Served by nginx:
#   - the index lists every package with its latest version, signer (role, key id) and the
#     description the .deb declares;
#   - each package page lists its versions in dpkg order (1.0 < 1.9 < 1.10~rc1 < 1.10) with the
#     signer and the files added/removed/changed; dependencies link to the pages of the
#     packages they name, and only to those;
#   - every link resolves: nginx logs no 404 and every #anchor names an element;
#   - the hostile names show as text: no img or script element, no dialog, the DOM text is
#     the name itself;
#   - the pages read the same from file:// (no server);
#   - a version published later appears; a revoked publisher's package disappears, with its
#     page, after `stork repo revoke` and `stork repo refresh`;
#   - the metadata table flags an expired role and one close to expiry (against the default
#     durations, or those KEYDIR saved with `stork repo site --keys`).
# Screenshots of the index and of the hostile package's page are kept in
# $STORK_BUILD_ROOT/meson-logs/site_chromium/ (next to meson's test log).
. "$(dirname "$0")/lib.sh"

need node npm nginx dpkg-deb python3
CHROMIUM=/usr/lib/chromium/chromium
[ -x "$CHROMIUM" ] || need chromium # Debian's package; contrib/install-deps installs it
npm_install playwright-core
echo "# playwright-core $(node -e 'console.log(require(process.argv[1]).version)' \
	"$NODE_DIR/node_modules/playwright-core/package.json"), $("$CHROMIUM" --version 2>/dev/null)"

ART=${STORK_BUILD_ROOT:-$T}/meson-logs/$TEST_NAME
rm_rf "$ART"
mkdir -p "$ART"

fetch_debs
make_repo
ROLE=alice
KEY16=${PUBKEYID:0:16}

# hostile_deb VERSION DIR: a .deb of package "hostile" with DIR as its tree
HOSTILE_DESC=$'<script>alert(2)</script> & "quoted" <img src=x onerror=alert(1)> \x01 end'
hostile_deb() {
	local v=$1 d=$2 out=$T/hostile_$1.deb
	mkdir -p "$d/DEBIAN"
	printf '%s\n' "Package: hostile" "Version: $v" "Architecture: all" \
		"Maintainer: Test <test@example.org>" "Depends: libc6 (>= 2.34), no-such-package | hello" \
		"Description: $HOSTILE_DESC" " the long description" >"$d/DEBIAN/control"
	dpkg-deb --nocheck -Zgzip -b "$d" "$out" >/dev/null || fail "dpkg-deb -b hostile $v"
	DEB=$out
}
HNAME='<img src=x onerror=alert(1)>'
HNAME2=$'a&b"c\'d'
mkdir -p "$T/h0/usr/share/hostile"
echo one >"$T/h0/usr/share/hostile/a"
cp -a "$T/h0" "$T/h1"
echo two >"$T/h1/usr/share/hostile/a"
echo b >"$T/h1/usr/share/hostile/b"
cp -a "$T/h1" "$T/h2"
echo hostile >"$T/h2/usr/share/hostile/$HNAME"
echo hostile >"$T/h2/usr/share/hostile/$HNAME2"

# --- the repository: the corpus, and hostile's versions out of order -----------------------------
names=()
for deb in "${DEBS[@]}"; do
	p=$(deb_field "$deb" Package)
	publish "$p" "$(deb_field "$deb" Version)" "$deb" --quiet --no-pack
	names+=("$p")
done
for v in 1.10:h2 1.9:h1 1.10~rc1:h1 1.0:h0; do
	hostile_deb "${v%%:*}" "$T/${v#*:}"
	publish hostile "${v%%:*}" "$DEB" --quiet --no-pack
done
names+=(hostile)
# a second publisher, revoked at the end
keygen "$T/pub/bob.key"
BOBKEY16=${KEYID:0:16}
run "$STORK" repo delegate "$REPO" --keys "$KEYS" "$T/pub/bob.key.pub" 'bob-*'
[ "$RC" -eq 0 ] || { _show_run; fail "delegate bob-*"; }
mkdir -p "$T/bob"
echo bob >"$T/bob/tool"
run "$STORK" publish "$REPO" --keys "$KEYS" --key "$T/pub/bob.key" bob-tool 1.0 "$T/bob"
[ "$RC" -eq 0 ] || { _show_run; fail "bob publishes bob-tool"; }
names+=(bob-tool)
[ -f "$REPO/site/index.html" ] && [ -f "$REPO/site/p/hostile.html" ] ||
	fail "stork publish wrote no site (site/index.html, site/p/hostile.html)"
pass "stork publish wrote the site: ${#names[@]} packages (${SECONDS} s so far)"

# (as a distribution's nginx.conf does with mime.types: the test server sends every type)
NGINX_EXTRA="types { text/html html; application/json json; }" start_nginx "$REPO"

# browse URL [SHOT [ONLY]]: the browser's facts about the site at URL into $T/facts.json
# (ONLY: read only these packages' pages, comma-separated)
browse() {
	run node "$STORK_TESTS/integration/site_browser.mjs" "$NODE_DIR" "$CHROMIUM" "$1" "$ART" \
		"${2:-}" "${3:-}"
	[ "$RC" -eq 0 ] || { _show_run; fail "site_browser.mjs $1"; }
	cp "$T/out" "$T/facts.json"
}

# judge CHECK: run the python check CHECK over facts (f), the expected names (names) and the
# environment; it prints the problem and exits 1 when the site is wrong
judge() {
	python3 - "$T/facts.json" "$1" "${names[@]}" <<-'EOF'
		import json, os, sys
		f = json.load(open(sys.argv[1]))
		check, names = sys.argv[2], sys.argv[3:]
		env = os.environ
		def bad(msg):
		    print(f"{check}: {msg}", file=sys.stderr)
		    sys.exit(1)
		idx = {p["name"]: p for p in f["index"]}
		if check == "index":
		    if sorted(idx) != sorted(names):
		        bad(f"the index lists {sorted(idx)}, want {sorted(names)}")
		    for n in names:
		        if n not in f["pages"] and not env.get("ONLY"):
		            bad(f"no page read for {n}")
		elif check == "signers":
		    for n, p in idx.items():
		        if n not in f["pages"]:
		            continue
		        role, key = ("bob", env["BOBKEY16"]) if n == "bob-tool" else (env["ROLE"], env["KEY16"])
		        if (p["role"], p["keyid"]) != (role, key):
		            bad(f"{n}: index signer {p['role']} {p['keyid']}, want {role} {key}")
		        for v in f["pages"][n]["versions"]:
		            if (v["role"], v["keyid"]) != (role, key):
		                bad(f"{n} {v['version']}: signer {v['role']} {v['keyid']}, want {role} {key}")
		            if not v["changes"]:
		                bad(f"{n} {v['version']}: no changes column")
		elif check == "latest":
		    want = dict(a.split("=", 1) for a in env["LATEST"].split("\n") if a)
		    for n, v in want.items():
		        if idx[n]["latest"] != v:
		            bad(f"{n}: the index says latest {idx[n]['latest']}, want {v}")
		elif check == "summary":
		    if idx["hello"]["summary"] != env["HELLO_DESC"]:
		        bad(f"hello: summary {idx['hello']['summary']!r}, want {env['HELLO_DESC']!r}")
		elif check == "order":
		    got = [v["version"] for v in f["pages"]["hostile"]["versions"]]
		    want = env["ORDER"].split()
		    if got != want:
		        bad(f"hostile's page lists {got}, want {want} (dpkg order)")
		    ch = {v["version"]: v["changes"] for v in f["pages"]["hostile"]["versions"]}
		    if ch["1.0"] != "first version" or ch["1.9"] != "1 added, 0 removed, 1 changed" \
		            or ch["1.10~rc1"] != "0 added, 0 removed, 0 changed" \
		            or ch["1.10"] != "2 added, 0 removed, 0 changed":
		        bad(f"hostile's changes column: {ch}")
		elif check == "deps":
		    deps = {d["text"]: d["href"] for d in f["pages"]["hostile"]["deps"]}
		    for n in ("libc6", "hello"):
		        if not deps.get(n, "").endswith(f"/site/p/{n}.html"):
		            bad(f"hostile's dependency {n} links to {deps.get(n)}, want p/{n}.html")
		    if "no-such-package" in deps:
		        bad("a dependency on a package the repository lacks is a link")
		elif check == "links":
		    broken = {u: s for u, s in f["links"].items() if s != 200}
		    if broken:
		        bad(f"links that do not resolve: {broken}")
		    ids = {}
		    for n, p in f["pages"].items():
		        ids[idx[n]["href"]] = set(p["ids"])
		    for a in f["anchors"]:
		        if a["page"] in ids and a["id"] not in ids[a["page"]]:
		            bad(f"{a['page']}#{a['id']}: no element has that id")
		    if len(f["links"]) < len(names) + 2:
		        bad(f"only {len(f['links'])} links checked")
		elif check == "hostile":
		    if f["dialogs"] or f["markup"] or f["pageErrors"]:
		        bad(f"{f['dialogs']} dialogs, {f['markup']} img/script/iframe elements, page errors {f['pageErrors']}")
		    listed = f["pages"]["hostile"]["listed"]
		    for n in (env["HNAME"], env["HNAME2"]):
		        if "usr/share/hostile/" + n not in listed:
		            bad(f"the file name {n!r} is not shown as text; added files: {listed}")
		    want = env["HOSTILE_DESC"].replace("\x01", "?")
		    if idx["hostile"]["summary"] != want or f["pages"]["hostile"]["summary"] != want:
		        bad(f"hostile's description shows as {idx['hostile']['summary']!r}, want {want!r}")
		elif check == "expiry":
		    roles = {m["role"]: m for m in f["metadata"]}
		    want = set(env["EXPIRY_ROLES"].split())
		    if not want <= set(roles):
		        bad(f"the metadata table lists {sorted(roles)}, want {sorted(want)} at least")
		    ts, snap = roles["timestamp"], roles["snapshot"]
		    if not ts["warn"] or "expired" not in ts["status"]:
		        bad(f"timestamp, expired: {ts}")
		    if env["SNAP_CLOSE"] == "1" and (not snap["warn"] or "re-sign it soon" not in snap["status"]):
		        bad(f"snapshot, close to expiry: {snap}")
		    if env["SNAP_CLOSE"] == "0" and snap["warn"]:
		        bad(f"snapshot, a whole validity period left, is flagged: {snap}")
		    for r in ("root", "targets", "alice"):
		        if roles[r]["warn"]:
		            bad(f"{r} is flagged although far from expiry: {roles[r]}")
		    for r in want:
		        if not roles[r]["version"].isdigit() or "UTC" not in roles[r]["expires"]:
		            bad(f"{r}: version {roles[r]['version']!r}, expires {roles[r]['expires']!r}")
		else:
		    bad("unknown check")
	EOF
}

LATEST=""
for deb in "${DEBS[@]}"; do
	LATEST+="$(deb_field "$deb" Package)=$(deb_field "$deb" Version)"$'\n'
done
LATEST+="hostile=1.10"$'\n'"bob-tool=1.0"$'\n'
HELLO_DESC=$(deb_field "$(printf '%s\n' "${DEBS[@]}" | grep /hello_)" Description | sed -n 1p)
export ROLE KEY16 BOBKEY16 LATEST HELLO_DESC HOSTILE_DESC HNAME HNAME2
export ORDER="1.0 1.9 1.10~rc1 1.10"

browse "$NGINX_URL/site/index.html" hostile
check "the index lists all ${#names[@]} packages and each has a page" judge index
check "every version names its signer (role and key id) and its changes" judge signers
check "the index shows each package's latest version" judge latest
check "the index shows the description the .deb declares (hello)" judge summary
check "hostile's page lists 1.0 1.9 1.10~rc1 1.10 (dpkg order) with the files each changed" judge order
check "dependencies link to the packages of the repository they name, and only to those" judge deps
check "every link and #anchor of the pages resolves" judge links
[ "$(nginx_requests '" 404 ')" -eq 0 ] ||
	fail "nginx logged 404s: $(grep '" 404 ' "$NGINX_DIR/access.log" | head -3)"
pass "nginx logged no 404 while the browser read the site"
check "hostile names and descriptions show as text: no element, no dialog, no script" judge hostile
[ -s "$ART/index.png" ] && [ -s "$ART/package-hostile.png" ] || fail "no screenshots in $ART"
pass "screenshots: $ART/index.png, $ART/package-hostile.png"

# --- the same pages from file://, no server --------------------------------------------------
browse "file://$REPO/site/index.html"
check "from file://: the index lists all packages, every link resolves" judge index
check "from file://: hostile's versions in dpkg order" judge order
check "from file://: every link resolves" judge links
# (screenshots of this run overwrite the others: they show the same pages)

# --- a new version, then a revocation (the index and hostile's page only, from here on) ------
export ONLY=hostile
hostile_deb 2.0 "$T/h2"
publish hostile 2.0 "$DEB" --quiet --no-pack
browse "$NGINX_URL/site/index.html" "" "$ONLY"
LATEST=${LATEST/hostile=1.10/hostile=2.0}
ORDER="1.0 1.9 1.10~rc1 1.10 2.0"
export LATEST ORDER
check "after stork publish, the index shows hostile 2.0 as latest" judge latest
python3 -c 'import json, sys; v = [x["version"] for x in json.load(open(sys.argv[1]))["pages"]["hostile"]["versions"]]; sys.exit(v[-1] != "2.0")' \
	"$T/facts.json" || fail "hostile's page does not list 2.0 last"
pass "after stork publish, hostile's page lists 2.0 last"

run "$STORK" repo revoke "$REPO" --keys "$KEYS" bob
[ "$RC" -eq 0 ] || { _show_run; fail "stork repo revoke bob"; }
run "$STORK" repo refresh "$REPO" --keys "$KEYS"
[ "$RC" -eq 0 ] || { _show_run; fail "stork repo refresh"; }
names=("${names[@]/bob-tool/}")
names=($(printf '%s\n' "${names[@]}" | grep -v '^$'))
browse "$NGINX_URL/site/index.html" "" "$ONLY"
check "after revoke and refresh, the index no longer lists bob's bob-tool" judge index
[ ! -e "$REPO/site/p/bob-tool.html" ] || fail "site/p/bob-tool.html is still there"
pass "bob-tool's page is gone"
check "every link still resolves" judge links
[ "$(nginx_requests '" 404 ')" -eq 0 ] ||
	fail "nginx logged 404s: $(grep '" 404 ' "$NGINX_DIR/access.log" | head -3)"

# the site is not signed metadata: verify and a client ignore it
verify_ok "stork verify passes with the site in the repository"

# --- expiry: a timestamp that has expired; a snapshot signed for 1 day, which is less than a
# quarter of the default 7 days, and all of the 1 day KEYDIR saved ------------------------------
run "$STORK" repo refresh "$REPO" --keys "$KEYS" --expires timestamp=2s --expires snapshot=1d
[ "$RC" -eq 0 ] || { _show_run; fail "stork repo refresh --expires"; }
sleep 2.5
export EXPIRY_ROLES="root targets snapshot timestamp alice"
run "$STORK" repo site "$REPO"
[ "$RC" -eq 0 ] || { _show_run; fail "stork repo site"; }
out_has "stork repo site says what it wrote" "site: " "packages" "$REPO/site/index.html"
browse "$NGINX_URL/site/index.html" "" "$ONLY"
export SNAP_CLOSE=1
check "the index shows each role's version and expiry, flags the expired timestamp and the snapshot with 1 of 7 days left" judge expiry
run "$STORK" repo site "$REPO" --keys "$KEYS"
[ "$RC" -eq 0 ] || { _show_run; fail "stork repo site --keys"; }
browse "$NGINX_URL/site/index.html" "" "$ONLY"
export SNAP_CLOSE=0
check "with --keys, the snapshot is judged against the 1 day KEYDIR saved: not flagged" judge expiry
done_ok
