// tests/integration/site_browser.mjs: open a repository's browse site in headless Chromium
// (Debian's, driven by playwright-core) and write what the DOM holds as JSON (run by
// site_chromium.sh, which judges it).
//
// node site_browser.mjs NODE_DIR CHROMIUM INDEX_URL OUTDIR [SHOT_PACKAGE [ONLY]]
//      visits INDEX_URL, then every package page it links to (ONLY: just the packages of that
//      comma-separated list), then asks for every other link
//      of those pages (same origin) without rendering it; screenshots OUTDIR/index.png and,
//      with SHOT_PACKAGE, OUTDIR/package-SHOT_PACKAGE.png. Prints one JSON object:
//      { index: [{name, href, latest, role, keyid, summary}], counts,
//        pages: {NAME: {title, summary, versions: [{version, files, role, keyid, changes}],
//                       ids: [...], deps: [{text, href}], listed: [...]}},
//        metadata: [{role, version, expires, status, warn}],
//        links: {URL: status}, anchors: [{page, url}], dialogs, markup, pageErrors }
//      "markup" counts img, script, iframe, object and embed elements on all pages (the site
//      has none of its own); "dialogs" counts alert/confirm/prompt dialogs that opened.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [nodeDir, chromiumPath, indexUrl, outDir, shot, only] = process.argv.slice(2);
const onlySet = only ? new Set(only.split(',')) : null;
if (!nodeDir || !chromiumPath || !indexUrl || !outDir) {
	console.error('usage: site_browser.mjs NODE_DIR CHROMIUM INDEX_URL OUTDIR [SHOT_PACKAGE]');
	process.exit(64);
}
const require = createRequire(path.join(path.resolve(nodeDir), 'index.js'));
const { chromium } = require('playwright-core');

const facts = { index: [], counts: '', pages: {}, links: {}, anchors: [], dialogs: 0,
	markup: 0, pageErrors: [] };
const browser = await chromium.launch({ executablePath: chromiumPath,
	args: ['--no-sandbox', '--disable-gpu'] });
try {
	const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
	const page = await context.newPage();
	page.on('dialog', async (d) => {
		facts.dialogs++;
		await d.dismiss();
	});
	page.on('pageerror', (e) => facts.pageErrors.push(String(e)));
	const hrefs = new Set();

	// visit URL: load it, record its status, count foreign markup, note its links
	const visit = async (url) => {
		const resp = await page.goto(url, { waitUntil: 'load' });
		facts.links[url] = resp ? resp.status() : 0;
		facts.markup += await page.$$eval('img, script, iframe, object, embed', (e) => e.length);
		for (const h of await page.$$eval('a[href]', (as) => as.map((a) => a.href)))
			hrefs.add(h);
	};

	await visit(indexUrl);
	facts.counts = await page.$eval('#counts', (e) => e.textContent);
	facts.index = await page.$$eval('#packages tr.package', (rows) => rows.map((r) => ({
		name: r.querySelector('td.name').textContent,
		href: r.querySelector('td.name a').href,
		latest: r.querySelector('td.latest').textContent,
		role: r.querySelector('.role').textContent,
		keyid: r.querySelector('.keyid').textContent,
		summary: r.querySelector('td.summary').textContent,
	})));
	facts.metadata = await page.$$eval('#metadata tr.role', (rows) => rows.map((r) => ({
		role: r.cells[0].textContent, version: r.cells[1].textContent,
		expires: r.cells[2].textContent, status: r.cells[3].textContent,
		warn: r.cells[3].classList.contains('warn'),
	})));
	await page.screenshot({ path: path.join(outDir, 'index.png'), fullPage: true });

	for (const p of facts.index) {
		if (onlySet && !onlySet.has(p.name))
			continue;
		await visit(p.href);
		facts.pages[p.name] = {
			title: await page.$eval('h1', (e) => e.textContent),
			summary: await page.$$eval('p.summary', (e) => (e[0] ? e[0].textContent : '')),
			versions: await page.$$eval('#versions tr.version', (rows) => rows.map((r) => ({
				version: r.querySelector('td.version').textContent,
				files: r.querySelector('td.files') ? r.querySelector('td.files').textContent : '',
				role: r.querySelector('.role').textContent,
				keyid: r.querySelector('.keyid').textContent,
				changes: r.querySelector('td.changes').textContent,
			}))),
			ids: await page.$$eval('[id]', (es) => es.map((e) => e.id)),
			deps: await page.$$eval('dd.deps a', (as) => as.map((a) => ({ text: a.textContent,
				href: a.href }))),
			listed: await page.$$eval('ul.changes li', (lis) => lis.map((l) => l.textContent)),
		};
		if (p.name === shot)
			await page.screenshot({ path: path.join(outDir, `package-${shot}.png`),
				fullPage: true });
	}

	// every other link: pages' anchors are checked against the ids seen; the rest is asked
	// for (same origin only; the site links nowhere else)
	const origin = new URL(indexUrl).origin;
	for (const h of hrefs) {
		const u = new URL(h);
		if (u.hash) {
			facts.anchors.push({ page: u.origin + u.pathname, id: decodeURIComponent(u.hash.slice(1)) });
			u.hash = '';
		}
		const url = u.toString();
		if (url in facts.links)
			continue;
		if (u.protocol === 'file:') { // a page read from disk: the file must be there
			facts.links[url] = fs.existsSync(fileURLToPath(u)) ? 200 : 404;
			continue;
		}
		if (u.origin !== origin) {
			facts.links[url] = -1;
			continue;
		}
		const resp = await context.request.get(url);
		facts.links[url] = resp.status();
	}
} finally {
	await browser.close();
}
console.log(JSON.stringify(facts, null, 1));
