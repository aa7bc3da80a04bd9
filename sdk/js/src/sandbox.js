// Thin aliases for people who come from other sandbox SDKs: Sandbox.create(image)
// makes an ephemeral box, sb.run(code) is runCode, sb.kill() removes the box. Nothing
// here that Box does not do; documented as aliases in docs/sdk-js.md.
import { Box } from './box.js';

export class Sandbox extends Box {
  /** Sandbox.create('python:3.12-slim') or Sandbox.create({image, ...}): an ephemeral Box. */
  static create(image, opts = {}) {
    const o = typeof image === 'string' || image === undefined ? { ...opts, image } : { ...image };
    if (o.image === undefined) delete o.image;
    if (o.ephemeral === undefined) o.ephemeral = true;
    return super.create(o);
  }

  /** runCode(code, opts) under the peers' name: a CodeExecution. */
  run(code, opts) {
    return this.runCode(code, opts);
  }

  /** Removes the box at once (stopping it). */
  kill() {
    return this.remove({ force: true });
  }
}
