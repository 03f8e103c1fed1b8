// tests/integration/tufjs_writer.mjs: write and sign a storkfs repository with @tufjs/models, an
// independent TUF implementation, and node:crypto's ed25519 (run by interop_tufjs_writer.sh).
// Nothing here comes from storkfs: the layout, the manifest and the key ids follow
// verify/README.md and store/README.md, the metadata objects are @tufjs/models' own.
//
// node tufjs_writer.mjs NODE_DIR init REPODIR KEYDIR ROLE PATTERN... [--no-consistent-snapshot]
//      four top-level keys and a publisher key KEYDIR/ROLE.pem, 1.root.json, 1.targets.json
//      delegating the package-name patterns PATTERN... to ROLE, 1.snapshot.json, timestamp.json
//      (--no-consistent-snapshot: the root says consistent_snapshot false, and every file but
//      the root is written under its plain name, TUF 5.7.3: targets.json, snapshot.json,
//      ROLE.json, targets/NAME/VERSION.json)
// node tufjs_writer.mjs NODE_DIR publish REPODIR KEYDIR ROLE NAME VERSION SRCDIR [--plain]
//      the objects and the manifest of SRCDIR, ROLE's next version listing NAME/VERSION.json
//      (--plain: no "custom" in the target, as a generic TUF writer leaves it), snapshot,
//      timestamp
// node tufjs_writer.mjs NODE_DIR rotate-root REPODIR KEYDIR
//      new root and timestamp keys; root N+1 signed by the old and the new root key, then a
//      timestamp signed by the new timestamp key
//
// NODE_DIR holds node_modules with @tufjs/models. Prints "keyid ROLE HEX" for each key made,
// "wrote FILE" for each file written (relative to REPODIR), in write order. Exit 0, or 1 with
// "error: ..." on stderr.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const [nodeDir, cmd, repo, keyDir, ...args] = process.argv.slice(2);
if (!cmd || !repo || !keyDir) {
	console.error('usage: tufjs_writer.mjs NODE_DIR init|publish|rotate-root REPODIR KEYDIR ...');
	process.exit(64);
}
const require = createRequire(path.join(path.resolve(nodeDir), 'index.js'));
const { Metadata, Root, Targets, Snapshot, Timestamp, Key, Signature, MetaFile, TargetFile,
	MetadataKind } = require('@tufjs/models');
// not re-exported by the package's index, but part of its model
const { Delegations } = require('@tufjs/models/dist/delegations');
const { Role, DelegatedRole } = require('@tufjs/models/dist/role');
const { canonicalize } = require('@tufjs/canonical-json');

const DAY = 86400;
const meta = path.join(repo, 'metadata');

// expiry: TUF's "YYYY-MM-DDTHH:MM:SSZ" (toISOString adds milliseconds)
function expires(seconds) {
	return new Date(Date.now() + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const sha512 = (b) => crypto.createHash('sha512').update(b).digest('hex');

// writeAtomic FILE BYTES: a temporary file in FILE's directory (".tmp-" names are ignored by
// readers), then rename
function writeAtomic(file, bytes) {
	fs.mkdirSync(path.dirname(file), { recursive: true });
	const tmp = path.join(path.dirname(file), `.tmp-${crypto.randomBytes(6).toString('hex')}`);
	fs.writeFileSync(tmp, bytes, { mode: 0o644 });
	fs.renameSync(tmp, file);
	console.log(`wrote ${path.relative(repo, file)}`);
}

// --- keys ----------------------------------------------------------------------------------

// A TUF ed25519 key object of a node:crypto key pair; its key id is the SHA-256 of the key
// object's canonical JSON (TUF 1.0 "KEYID"), computed here with @tufjs/canonical-json.
function tufKey(privateKey) {
	const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
	const pub = spki.subarray(spki.length - 32).toString('hex');
	const keyVal = { public: pub };
	const obj = { keytype: 'ed25519', scheme: 'ed25519', keyval: keyVal };
	return new Key({ keyID: sha256(Buffer.from(canonicalize(obj))), keyType: 'ed25519',
		scheme: 'ed25519', keyVal });
}

function loadKey(name) {
	const priv = crypto.createPrivateKey(fs.readFileSync(path.join(keyDir, `${name}.pem`)));
	return { priv, key: tufKey(priv) };
}

// makeKey NAME [FILE]: a new key pair, its private half saved as KEYDIR/FILE (NAME.pem)
function makeKey(name, file = `${name}.pem`) {
	const { privateKey } = crypto.generateKeyPairSync('ed25519');
	fs.mkdirSync(keyDir, { recursive: true, mode: 0o700 });
	fs.writeFileSync(path.join(keyDir, file),
		privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
	const k = { priv: privateKey, key: tufKey(privateKey) };
	console.log(`keyid ${name} ${k.key.keyID}`);
	return k;
}

// the models' signing API: Metadata.sign with a signer over the canonical bytes of "signed"
function signer(k) {
	return (data) => new Signature({ keyID: k.key.keyID,
		sig: crypto.sign(null, data, k.priv).toString('hex') });
}

// --- metadata files ------------------------------------------------------------------------

// Files are written the way python-tuf writes them by default: indented, keys in the models'
// order, not canonical (storkfs must hash the bytes and canonicalize "signed" itself).
function serialize(md) {
	return Buffer.from(JSON.stringify(md.toJSON(), null, 1));
}

// whether the newest root asks for consistent snapshots (written by init)
function consistent() {
	const f = path.join(meta, 'root.json');
	return !fs.existsSync(f) || JSON.parse(fs.readFileSync(f, 'utf8')).signed.consistent_snapshot;
}

// the metadata file of ROLE's version V: N.ROLE.json, or ROLE.json without consistent snapshots
function roleFile(role, v) {
	return role === 'root' || consistent() ? `${v}.${role}.json` : `${role}.json`;
}

function latestVersion(role) {
	let best = 0;
	if (role !== 'root' && !consistent()) {
		const f = path.join(meta, `${role}.json`);
		return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')).signed.version : 0;
	}
	for (const f of fs.readdirSync(meta)) {
		const m = f.match(/^(\d+)\.(.+)\.json$/);
		if (m && m[2] === role)
			best = Math.max(best, Number(m[1]));
	}
	return best;
}

function load(kind, file) {
	return Metadata.fromJSON(kind, JSON.parse(fs.readFileSync(path.join(meta, file), 'utf8')));
}

// write ROLE's metadata md (signed by keys) as N.ROLE.json (timestamp.json for timestamp);
// returns the MetaFile a referring file lists for it
function writeRole(role, md, keys, { withHashes }) {
	md.signatures = {};
	for (const k of keys)
		md.sign(signer(k));
	const bytes = serialize(md);
	const name = role === 'timestamp' ? 'timestamp.json' : roleFile(role, md.signed.version);
	writeAtomic(path.join(meta, name), bytes);
	if (role === 'root')
		writeAtomic(path.join(meta, 'root.json'), bytes);
	return new MetaFile({ version: md.signed.version,
		...(withHashes ? { length: bytes.length, hashes: { sha256: sha256(bytes),
			sha512: sha512(bytes) } } : {}) });
}

// snapshot and timestamp after ROLE (a delegated role or "targets") changed to rolemeta
function commit(changed) {
	const ks = loadKey('snapshot');
	const kt = loadKey('timestamp');
	let snap;
	const sv = latestVersion('snapshot');
	if (sv) {
		snap = load(MetadataKind.Snapshot, roleFile('snapshot', sv));
		snap.signed.version += 1;
		snap.signed.expires = expires(7 * DAY);
	} else {
		snap = new Metadata(new Snapshot({ version: 1, specVersion: '1.0.31',
			expires: expires(7 * DAY), meta: {} }));
	}
	for (const [role, mf] of Object.entries(changed))
		snap.signed.meta[`${role}.json`] = mf;
	const smf = writeRole('snapshot', snap, [ks], { withHashes: true });
	timestamp(smf, kt);
}

function timestamp(smf, kt) {
	let ts;
	if (fs.existsSync(path.join(meta, 'timestamp.json'))) {
		ts = load(MetadataKind.Timestamp, 'timestamp.json');
		ts = new Metadata(new Timestamp({ version: ts.signed.version + 1,
			specVersion: ts.signed.specVersion, expires: expires(DAY), snapshotMeta: smf }));
	} else {
		ts = new Metadata(new Timestamp({ version: 1, specVersion: '1.0.31',
			expires: expires(DAY), snapshotMeta: smf }));
	}
	writeRole('timestamp', ts, [kt], { withHashes: false });
}

// --- the storkfs manifest and objects (verify/README.md "manifest", store/README.md) --------

// walk SRC: every entry, sorted by path bytewise (UTF-8), as manifest entries
function walk(src) {
	const out = [];
	const rec = (rel) => {
		for (const name of fs.readdirSync(path.join(src, rel))) {
			const p = rel ? `${rel}/${name}` : name;
			const st = fs.lstatSync(path.join(src, p));
			const e = { path: p, mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) };
			if (st.isDirectory()) {
				out.push({ ...e, type: 'dir' });
				rec(p);
			} else if (st.isSymbolicLink()) {
				out.push({ ...e, type: 'symlink', target: fs.readlinkSync(path.join(src, p)) });
			} else if (st.isFile()) {
				out.push({ ...e, type: 'file' });
			} else {
				throw new Error(`${p}: not a file, directory or symlink`);
			}
		}
	};
	rec('');
	return out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

// an object: objects/<2 hex>/<sha256 of the bytes>, a zstd frame of them (the zstd CLI: node
// has no zstd; the compressed bytes are not part of the format, only the name and content)
function putObject(bytes) {
	const h = sha256(bytes);
	const file = path.join(repo, 'objects', h.slice(0, 2), h);
	if (!fs.existsSync(file))
		writeAtomic(file, execFileSync('zstd', ['-q', '-9', '-c'], { input: bytes,
			maxBuffer: 1 << 30 }));
	return { sha256: h, size: bytes.length, zsize: fs.statSync(file).size };
}

function manifest(name, version, src) {
	let size = 0;
	const files = walk(src).map((e) => {
		if (e.type !== 'file')
			return e;
		const o = putObject(fs.readFileSync(path.join(src, e.path)));
		size += o.size;
		return { ...e, ...o };
	});
	const m = { _type: 'storkfs-manifest', spec_version: 1, name, version, format: 'dir',
		depends: [], files };
	return { bytes: Buffer.from(JSON.stringify(m, null, 2) + '\n'), size, count: files.length };
}

// --- commands --------------------------------------------------------------------------------

function init([role, ...rest]) {
	const patterns = rest.filter((p) => p !== '--no-consistent-snapshot');
	const cs = patterns.length === rest.length;
	if (!role || !patterns.length)
		throw new Error('init: ROLE and at least one PATTERN');
	fs.mkdirSync(meta, { recursive: true });
	const k = {};
	for (const r of ['root', 'targets', 'snapshot', 'timestamp', role])
		k[r] = makeKey(r);
	const root = new Metadata(new Root({ version: 1, specVersion: '1.0.31',
		expires: expires(365 * DAY), consistentSnapshot: cs }));
	for (const r of ['root', 'targets', 'snapshot', 'timestamp'])
		root.signed.addKey(k[r].key, r);
	writeRole('root', root, [k.root], { withHashes: false });
	// the top-level targets only delegates; a package-name pattern P is the path pattern P/*
	const targets = new Metadata(new Targets({ version: 1, specVersion: '1.0.31',
		expires: expires(365 * DAY), targets: {},
		delegations: new Delegations({ keys: { [k[role].key.keyID]: k[role].key },
			roles: { [role]: new DelegatedRole({ name: role, keyIDs: [k[role].key.keyID],
				threshold: 1, terminating: false,
				paths: patterns.map((p) => `${p}/*`) }) } }) }));
	const tmf = writeRole('targets', targets, [k.targets], { withHashes: true });
	commit({ targets: tmf });
}

function publish([role, name, version, src, ...opts]) {
	if (!src)
		throw new Error('publish: ROLE NAME VERSION SRCDIR');
	const plain = opts.includes('--plain');
	const m = manifest(name, version, src);
	const mhash = sha256(m.bytes);
	writeAtomic(path.join(repo, 'targets', name,
		consistent() ? `${mhash}.${version}.json` : `${version}.json`), m.bytes);
	const v = latestVersion(role);
	let md;
	if (v) {
		md = load(MetadataKind.Targets, roleFile(role, v));
		md.signed.version += 1;
		md.signed.expires = expires(365 * DAY);
	} else {
		md = new Metadata(new Targets({ version: 1, specVersion: '1.0.31',
			expires: expires(365 * DAY), targets: {} }));
	}
	md.signed.addTarget(new TargetFile({ path: `${name}/${version}.json`, length: m.bytes.length,
		hashes: { sha256: mhash, sha512: sha512(m.bytes) },
		unrecognizedFields: plain ? {} : { custom: { storkfs: { size: m.size,
			files: m.count } } } }));
	const rmf = writeRole(role, md, [loadKey(role)], { withHashes: true });
	commit({ [role]: rmf });
}

function rotateRoot() {
	const oldRoot = loadKey('root');
	const v = latestVersion('root');
	const prev = load(MetadataKind.Root, `${v}.root.json`);
	const newRoot = makeKey('root', 'root.pem.new');
	const newTs = makeKey('timestamp', 'timestamp.pem.new');
	const keys = {};
	const roles = {};
	for (const [r, role] of Object.entries(prev.signed.roles)) {
		let ids = role.keyIDs;
		if (r === 'root')
			ids = [newRoot.key.keyID];
		if (r === 'timestamp')
			ids = [newTs.key.keyID];
		roles[r] = new Role({ keyIDs: ids, threshold: 1 });
		for (const id of ids)
			keys[id] = id === newRoot.key.keyID ? newRoot.key
				: id === newTs.key.keyID ? newTs.key : prev.signed.keys[id];
	}
	const root = new Metadata(new Root({ version: v + 1, specVersion: '1.0.31',
		expires: expires(365 * DAY), consistentSnapshot: prev.signed.consistentSnapshot, keys,
		roles }));
	// TUF 5.3.4/5.3.5: a threshold of the old root's keys and of the new root's keys
	writeRole('root', root, [oldRoot, newRoot], { withHashes: false });
	for (const r of ['root', 'timestamp']) {
		fs.renameSync(path.join(keyDir, `${r}.pem`), path.join(keyDir, `${r}.pem.${v}-old`));
		fs.renameSync(path.join(keyDir, `${r}.pem.new`), path.join(keyDir, `${r}.pem`));
	}
	const sv = latestVersion('snapshot');
	const bytes = fs.readFileSync(path.join(meta, roleFile('snapshot', sv)));
	timestamp(new MetaFile({ version: sv, length: bytes.length,
		hashes: { sha256: sha256(bytes), sha512: sha512(bytes) } }), newTs);
}

try {
	if (cmd === 'init')
		init(args);
	else if (cmd === 'publish')
		publish(args);
	else if (cmd === 'rotate-root')
		rotateRoot(args);
	else
		throw new Error(`unknown command ${cmd}`);
} catch (e) {
	console.error(`error: ${e?.stack ?? e}`);
	process.exit(1);
}
