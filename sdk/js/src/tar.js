// Tar archives for the files route (PUT/GET /v1/boxes/{id}/files): a writer of ustar
// entries (with pax records for long names and big sizes) and a streaming reader that
// trusts nothing it is given: checksums, sizes and header records are checked and
// bounded before use, since the archive comes from the guest.
import fs from 'node:fs';
import { InvalidArgumentError } from './errors.js';

const BLOCK = 512;
export const PAX_MAX = 8 << 20; // bytes of one entry's pax or GNU long-name records
export const NAME_MAX = 4096; // bytes of an entry name or link target

// ---- writing ----

function octal(buf, off, len, value) {
  const s = value.toString(8).padStart(len - 1, '0');
  buf.write(s + '\0', off, len, 'ascii');
}

function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  let n = Buffer.byteLength(body);
  let len = n + String(n).length;
  if (String(len).length !== String(n).length) len = n + String(len).length;
  return Buffer.from(`${len}${body}`);
}

function header({ name, type, mode, size, mtime, linkname = '' }) {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, mode & 0o7777);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.max(0, Math.floor(mtime)));
  h.fill(' ', 148, 156);
  h.write(type, 156, 1, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

/**
 * The blocks of one entry before its data: a pax header when the name, the link target
 * or the size do not fit ustar, then the ustar header.
 * e: {name, type: 'file' | 'dir' | 'symlink', mode, size, mtime, linkname}
 */
export function entryHeader(e) {
  const type = e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0';
  const size = e.type === 'file' ? e.size : 0;
  const records = [];
  let name = e.name;
  if (Buffer.byteLength(name) > 99 || /[^\x20-\x7e]/.test(name)) {
    records.push(paxRecord('path', name));
    name = 'pax-long-name';
  }
  let linkname = e.linkname || '';
  if (Buffer.byteLength(linkname) > 99 || /[^\x20-\x7e]/.test(linkname)) {
    records.push(paxRecord('linkpath', linkname));
    linkname = 'pax-long-link';
  }
  let hsize = size;
  if (size > 0o77777777777) {
    records.push(paxRecord('size', String(size)));
    hsize = 0;
  }
  const out = [];
  if (records.length) {
    const data = Buffer.concat(records);
    out.push(header({ name: 'PaxHeader', type: 'x', mode: 0o644, size: data.length, mtime: e.mtime }));
    out.push(data, Buffer.alloc(pad(data.length)));
  }
  out.push(header({ name, type, mode: e.mode, size: hsize, mtime: e.mtime, linkname }));
  return Buffer.concat(out);
}

export function pad(n) {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

export const END = Buffer.alloc(2 * BLOCK);

/** A whole archive of one file, in memory. */
export function singleFileTar(name, data, mode = 0o644, mtime = Date.now() / 1000) {
  return Buffer.concat([entryHeader({ name, type: 'file', mode, size: data.length, mtime }), data, Buffer.alloc(pad(data.length)), END]);
}

/**
 * An archive of a host path, streamed: a directory's contents under names relative to
 * it (the directory itself as "."), or one file named `asName`. Symlinks travel as
 * symlinks; other special files are skipped.
 */
export async function* treeTar(root, asName) {
  const st = await fs.promises.lstat(root);
  if (st.isFile()) {
    yield* fileEntry(root, asName, st);
  } else if (st.isDirectory()) {
    yield entryHeader({ name: './', type: 'dir', mode: st.mode, mtime: st.mtimeMs / 1000 });
    yield* dirEntries(root, '');
  } else {
    throw new InvalidArgumentError(`${root}: not a file or a directory`, { code: 'invalid_argument' });
  }
  yield END;
}

async function* fileEntry(full, name, st) {
  yield entryHeader({ name, type: 'file', mode: st.mode, size: st.size, mtime: st.mtimeMs / 1000 });
  let sent = 0;
  const fh = await fs.promises.open(full, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    while (sent < st.size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, st.size - sent), null);
      if (bytesRead === 0) break;
      sent += bytesRead;
      yield Buffer.from(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  // A file that shrank while it was read is padded to the size its header promised.
  if (sent < st.size) yield Buffer.alloc(st.size - sent);
  yield Buffer.alloc(pad(st.size));
}

async function* dirEntries(dir, prefix) {
  const names = (await fs.promises.readdir(dir)).sort();
  for (const n of names) {
    const full = `${dir}/${n}`;
    const rel = prefix + n;
    const st = await fs.promises.lstat(full);
    if (st.isDirectory()) {
      yield entryHeader({ name: rel + '/', type: 'dir', mode: st.mode, mtime: st.mtimeMs / 1000 });
      yield* dirEntries(full, rel + '/');
    } else if (st.isFile()) {
      yield* fileEntry(full, rel, st);
    } else if (st.isSymbolicLink()) {
      yield entryHeader({ name: rel, type: 'symlink', mode: 0o777, mtime: st.mtimeMs / 1000, linkname: await fs.promises.readlink(full) });
    }
  }
}

// ---- reading ----

class ByteReader {
  constructor(source) {
    this.it = source[Symbol.asyncIterator]();
    this.buf = Buffer.alloc(0);
    this.eof = false;
  }

  async fill(n) {
    while (this.buf.length < n && !this.eof) {
      const { value, done } = await this.it.next();
      if (done) this.eof = true;
      else this.buf = this.buf.length ? Buffer.concat([this.buf, value]) : Buffer.from(value);
    }
  }

  async read(n) {
    await this.fill(n);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  /** n bytes as chunks (fewer when the source ends). */
  async *chunks(n) {
    while (n > 0) {
      if (!this.buf.length) {
        if (this.eof) return;
        await this.fill(1);
        if (!this.buf.length) return;
      }
      const take = this.buf.subarray(0, Math.min(n, this.buf.length));
      this.buf = this.buf.subarray(take.length);
      n -= take.length;
      yield take;
    }
  }

  async skip(n) {
    for await (const _ of this.chunks(n)); // eslint-disable-line no-unused-vars
  }
}

function bad(msg) {
  return new InvalidArgumentError(`the archive from the box is not valid: ${msg}`, { code: 'invalid_argument' });
}

function cstr(h, off, len) {
  const end = h.indexOf(0, off);
  return h.toString('utf8', off, end >= 0 && end < off + len ? end : off + len);
}

function number(h, off, len) {
  if (h[off] & 0x80) {
    // base-256: big-endian, the top bit of the first byte only marks the form
    let v = h[off] & 0x7f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + h[off + i];
      if (v > Number.MAX_SAFE_INTEGER) throw bad('a number field is too large');
    }
    return v;
  }
  const s = h.toString('ascii', off, off + len).replace(/\0.*$/s, '').trim();
  if (!s) return 0;
  if (!/^[0-7]+$/.test(s)) throw bad(`a number field holds ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function parsePax(buf, into) {
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) throw bad('a pax record has no length');
    const len = parseInt(buf.toString('ascii', off, sp), 10);
    if (!Number.isSafeInteger(len) || len <= sp - off || off + len > buf.length) throw bad('a pax record has a bad length');
    const rec = buf.toString('utf8', sp + 1, off + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) {
      const k = rec.slice(0, eq);
      const v = rec.slice(eq + 1);
      if (k === 'path') into.name = v;
      else if (k === 'linkpath') into.linkname = v;
      else if (k === 'size') {
        if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw bad('a pax size is not a number');
        into.size = Number(v);
      } else if (k === 'mtime') {
        const t = Number(v);
        if (Number.isFinite(t)) into.mtime = t;
      }
    }
    off += len;
  }
}

const TYPES = { 0: 'file', '\0': 'file', 7: 'file', 5: 'dir', 2: 'symlink', 1: 'link' };

/**
 * Reads an archive; for each entry awaits onEntry(entry, body) where body is an async
 * iterable of its data (consumed or not: the rest is skipped). entry: {name, type:
 * 'file'|'dir'|'symlink'|'link'|'other', mode, size, mtime, linkname}. Stops at the
 * end-of-archive blocks; a source that ends before them is an error.
 */
export async function readTar(source, onEntry) {
  const r = new ByteReader(source);
  let ext = {};
  for (;;) {
    const h = await r.read(BLOCK);
    if (h.length < BLOCK) throw bad('it ends in the middle (no end-of-archive block)');
    if (h.every((b) => b === 0)) return;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
    if (number(h, 148, 8) !== sum) throw bad('a header checksum does not match');
    const flag = String.fromCharCode(h[156]);
    let size = number(h, 124, 12);
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > PAX_MAX) throw bad(`an extended header of ${size} bytes (more than ${PAX_MAX})`);
      const data = await r.read(size);
      if (data.length < size) throw bad('it ends in an extended header');
      await r.skip(pad(size));
      if (flag === 'x') parsePax(data, ext);
      else if (flag === 'L') ext.name = cstr(data, 0, data.length);
      else if (flag === 'K') ext.linkname = cstr(data, 0, data.length);
      continue;
    }
    let name = cstr(h, 0, 100);
    const magic = h.toString('ascii', 257, 263);
    if (magic.startsWith('ustar')) {
      const prefix = cstr(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const entry = {
      name: ext.name ?? name,
      type: TYPES[flag] || 'other',
      mode: number(h, 100, 8) & 0o7777,
      size: ext.size ?? size,
      mtime: ext.mtime ?? number(h, 136, 12),
      linkname: ext.linkname ?? cstr(h, 157, 100),
    };
    ext = {};
    if (Buffer.byteLength(entry.name) > NAME_MAX || Buffer.byteLength(entry.linkname) > NAME_MAX)
      throw bad(`a name longer than ${NAME_MAX} bytes`);
    if (entry.name.includes('\0') || entry.linkname.includes('\0')) throw bad('a name holds a NUL byte');
    size = entry.type === 'file' || entry.type === 'other' ? entry.size : 0;
    let left = size;
    const body = (async function* () {
      for await (const c of r.chunks(left)) {
        left -= c.length;
        yield c;
      }
    })();
    await onEntry(entry, body);
    for await (const c of r.chunks(left)) left -= c.length;
    if (left > 0) throw bad(`it ends inside ${JSON.stringify(entry.name)}`);
    await r.skip(pad(size));
  }
}
