// tests/integration/tufjs_client.mjs: fetch targets from a storkfs repository with tuf-js, an
// independent TUF client (run by interop_tufjs.sh).
//
// node tufjs_client.mjs NODE_MODULES_PARENT METADATA_URL TARGETS_URL METADATA_DIR TARGET_DIR
//      TARGET_PATH...
// METADATA_DIR must hold the pinned root as root.json. For each target path prints
// "ok <path> <file>" after refresh, getTargetInfo and downloadTarget (length and hashes checked
// by tuf-js) and exits 0; "missing <path>" and exit 2 when no role signs it; "error: ..." and
// exit 1 on any failure.
import { createRequire } from 'node:module';
import path from 'node:path';

const [modParent, metadataBaseUrl, targetBaseUrl, metadataDir, targetDir, ...targets] =
	process.argv.slice(2);
if (!targets.length) {
	console.error('usage: tufjs_client.mjs NODE_DIR METADATA_URL TARGETS_URL METADATA_DIR TARGET_DIR TARGET...');
	process.exit(64);
}
const require = createRequire(path.join(path.resolve(modParent), 'index.js'));
const { Updater } = require('tuf-js');

try {
	const updater = new Updater({
		metadataBaseUrl,
		targetBaseUrl,
		metadataDir,
		targetDir,
		config: { fetchTimeout: 10000, fetchRetries: 0, fetchRetry: 0 },
	});
	await updater.refresh();
	for (const t of targets) {
		const info = await updater.getTargetInfo(t);
		if (!info) {
			console.log(`missing ${t}`);
			process.exit(2);
		}
		const file = path.join(targetDir, t.replaceAll('/', '__'));
		await updater.downloadTarget(info, file);
		console.log(`ok ${t} ${file} ${info.length}`);
	}
} catch (e) {
	console.log(`error: ${e?.constructor?.name}: ${e?.message ?? e}`);
	process.exit(1);
}
