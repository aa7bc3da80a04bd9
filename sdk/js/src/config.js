// cocoon.yaml for the SDK: loadConfig runs `cocoon config -f FILE --json` (libcocoon's
// strict reader, so the SDKs and the CLI read the file alike) and Box.fromConfig makes
// or finds the box a file describes.
import { execFile } from 'node:child_process';
import { Cocoon } from './client.js';
import { InvalidArgumentError, NotFoundError } from './errors.js';
import { findCocoon } from './server.js';

const CONFIG_OUTPUT_MAX = 16 << 20;

/** The normalized form of a cocoon.yaml ({file, boxes: [...]}, as the CLI prints it). */
export function loadConfig(path, { bin, env } = {}) {
  const cocoon = bin || findCocoon(env || process.env);
  // Without a path the CLI's own default applies (./cocoon.yaml, then ./cocoon.yml).
  const args = path === undefined ? ['config', '--json'] : ['config', '-f', path, '--json'];
  return new Promise((resolve, reject) => {
    execFile(cocoon, args, { maxBuffer: CONFIG_OUTPUT_MAX, env: env || process.env }, (err, stdout, stderr) => {
      if (err) {
        const msg = (stderr || '').trim().replace(/^cocoon: /, '') || err.message;
        reject(new InvalidArgumentError(msg, { code: 'invalid_argument' }));
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new InvalidArgumentError(`cocoon config printed no JSON for ${path ?? 'cocoon.yaml'}`, { code: 'invalid_argument' }));
      }
    });
  });
}

/** Box.create options of one box of a loaded config. */
export function boxOptions(spec) {
  const o = { name: spec.name };
  if (spec.image) o.image = spec.image;
  if (spec.rootfs) o.rootfs = spec.rootfs;
  if (spec.cpus) o.cpus = spec.cpus;
  if (spec.memory_mib) o.memory = spec.memory_mib;
  if (spec.disk_bytes) o.disk = `${Math.ceil(spec.disk_bytes / 1024 / 1024)}M`;
  if (spec.env) o.env = spec.env;
  if (spec.workdir) o.workdir = spec.workdir;
  if (spec.user) o.user = spec.user;
  if (spec.ephemeral) o.ephemeral = true;
  const n = spec.network;
  if (n) {
    o.network = {};
    if (n.mode) o.network.mode = n.mode;
    if (n.rules?.length) o.network.rules = n.rules;
    if (n.ports?.length) o.ports = n.ports;
  }
  return o;
}

/** Box.fromConfig(path, name): the named box of a cocoon.yaml, created when it does not exist. */
export async function boxFromConfig(BoxClass, path, name, { client } = {}) {
  const cfg = await loadConfig(path);
  const boxes = cfg.boxes || [];
  let spec;
  if (name === undefined) {
    if (boxes.length !== 1) throw new InvalidArgumentError(`${cfg.file} describes ${boxes.length} boxes: name the one you want`, { code: 'invalid_argument' });
    spec = boxes[0];
  } else {
    spec = boxes.find((b) => b.name === name);
    if (!spec) throw new NotFoundError(`${cfg.file} has no box "${name}" (it has ${boxes.map((b) => b.name).join(', ') || 'none'})`, { code: 'not_found' });
  }
  const c = client || Cocoon.default();
  let box;
  try {
    box = await BoxClass.get(spec.name, { client: c });
    await box.start();
  } catch (e) {
    if (!(e instanceof NotFoundError)) throw e;
    box = await BoxClass.create({ ...boxOptions(spec), client: c });
  }
  box.scripts = spec.scripts || {};
  return box;
}
