// Shared by the JS SDK's tests: the SDK as the tests import it, the repository's paths,
// and why a box cannot boot here (then the tests that need one are skipped, saying so).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..', '..');
export const SDK = path.join(REPO, 'sdk', 'js', 'src', 'index.js');
export const BIN_DIR = process.env.COCOON_BIN_DIR || path.join(REPO, 'build', 'bin');
export const COCOON = path.join(BIN_DIR, 'cocoon');
const SHARE = process.env.COCOON_SHARE_DIR || path.join(REPO, 'build', 'share', 'cocoon');

/** Why no box can boot here, or '' (only missing guest files count: a missing binary fails). */
export function vmMissing() {
  const need = ['vmlinux', 'initramfs.cpio', 'images/default.ext4'].filter((f) => !fs.existsSync(path.join(SHARE, f)));
  return need.length ? `missing ${need.join(', ')} in ${SHARE} (make guest)` : '';
}

/** Runs the cocoon CLI; {status, stdout, stderr}. */
export function cocoon(...args) {
  const r = spawnSync(COCOON, args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Whether the REST server has a route (the file operations and cocoon config arrive from other branches). */
export async function hasRoute(box, p) {
  try {
    await box._client.call('GET', `/boxes/${box.id}${p}`);
    return true;
  } catch (e) {
    return !/no such endpoint/.test(e.message);
  }
}

export function tmpdir(prefix) {
  return fs.mkdtempSync(path.join(process.env.COCOON_JS_TMP || '/tmp', prefix));
}
