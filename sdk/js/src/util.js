// Small helpers shared by the SDK's modules: sizes ("512M"), snake_case answers made
// camelCase, and text streams of lines.
import { InvalidArgumentError } from './errors.js';

const UNITS = { '': 1, K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };

/** "512M", "1G", "2048K" or a number of MiB, as MiB. */
export function parseMemoryMiB(v, what = 'memory') {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  const m = typeof v === 'string' && /^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(v);
  if (m) {
    const mib = Number(m[1]) * UNITS[m[2].toUpperCase()];
    if (Number.isInteger(mib) && mib > 0) return mib;
  }
  throw new InvalidArgumentError(`${what} must be a size such as "512M" or "2G" (or a number of MiB), not ${JSON.stringify(v)}`, {
    code: 'invalid_argument',
  });
}

/** "10G", "500M" or a number of MiB, as bytes. */
export function parseSizeBytes(v, what = 'disk') {
  if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) v = Number(v);
  if (typeof v === 'number') return parseMemoryMiB(v, what) * 1024 * 1024;
  const m = typeof v === 'string' && /^\s*(\d+)\s*([KMGT])(?:i?B)?\s*$/i.exec(v);
  if (m) return Number(m[1]) * { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase()];
  throw new InvalidArgumentError(`${what} must be a size such as "10G" (or a number of MiB), not ${JSON.stringify(v)}`, {
    code: 'invalid_argument',
  });
}

// Maps whose keys are data (env names, labels, an image's OCI config), not field names.
const KEEP_KEYS = new Set(['env', 'labels', 'config']);

/** An answer with camelCase field names (maps of data keep their keys). */
export function camel(v) {
  if (Array.isArray(v)) return v.map(camel);
  if (!v || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    const ck = k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
    out[ck] = KEEP_KEYS.has(k) ? x : camel(x);
  }
  return out;
}

/** Lines of a byte stream (the last one without its newline, if any). */
export async function* textLines(stream) {
  let rest = '';
  const dec = new TextDecoder();
  for await (const c of stream) {
    rest += dec.decode(c, { stream: true });
    let nl;
    while ((nl = rest.indexOf('\n')) >= 0) {
      yield rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
  }
  rest += dec.decode();
  if (rest) yield rest;
}
