// Files of a box (box.fs): whole files read and written, host trees uploaded and
// downloaded, all through the tar files route (PUT/GET .../files); and list, stat,
// mkdir, remove and move through the .../fs/* routes. What comes from the box is
// unpacked into a fresh hidden directory next to the destination and renamed into
// place only once the whole archive arrived and passed every check.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, AlreadyExistsError } from './errors.js';
import { readTar, singleFileTar, treeTar } from './tar.js';
import { camel } from './util.js';

export const READ_MAX = 1 << 30; // readFile's default bound (it holds the file in memory)
export const DOWNLOAD_MAX_BYTES = 16 * 1024 ** 3; // the CLI's default bounds of a copy out of a box
export const DOWNLOAD_MAX_ENTRIES = 1_000_000;

function checkPath(p) {
  if (typeof p !== 'string' || !p.startsWith('/'))
    throw new InvalidArgumentError(`a path in the box must be absolute, not ${JSON.stringify(p)}`, { code: 'invalid_argument' });
  return p;
}

function baseName(p) {
  const parts = p.split('/').filter(Boolean);
  return parts.length ? parts[parts.length - 1] : '';
}

function fileInfo(j) {
  const info = camel(j);
  if (typeof info.mtime === 'string') info.mtime = new Date(info.mtime);
  return info;
}

function refused(msg) {
  return new InvalidArgumentError(msg, { code: 'invalid_argument' });
}

/** "top" or "top/x/y" checked: relative, no "..", no empty or "." component; the components. */
function entryParts(name, top) {
  const clean = name.replace(/\/+$/, '');
  const parts = clean.split('/');
  if (name.startsWith('/') || parts.some((c) => c === '..' || c === '' || c === '.'))
    throw refused(`the archive from the box holds the name ${JSON.stringify(name)}: refused`);
  if (parts[0] !== top) throw refused(`the archive from the box holds ${JSON.stringify(name)}, outside ${JSON.stringify(top)}: refused`);
  return parts;
}

export class Files {
  constructor(box) {
    this.box = box;
  }

  get _client() {
    return this.box._client;
  }

  get _base() {
    return `/boxes/${encodeURIComponent(this.box.id)}`;
  }

  /** The bytes of a file (or text, given an encoding such as 'utf8'). */
  async readFile(p, opts = {}) {
    const o = typeof opts === 'string' ? { encoding: opts } : opts;
    const max = o.maxBytes ?? READ_MAX;
    const res = await this._client.open('GET', this._base + '/files', { query: { path: checkPath(p) } });
    const top = baseName(p);
    let data = null;
    await readTar(res, async (e, body) => {
      if (data) throw refused(`the archive of ${p} holds more than one entry`);
      if (e.type !== 'file') throw new InvalidArgumentError(`${p} is not a regular file (it is a ${e.type})`, { code: 'invalid_argument' });
      if (e.name !== top) throw refused(`the archive of ${p} holds ${JSON.stringify(e.name)}`);
      if (e.size > max) throw new InvalidArgumentError(`${p} has ${e.size} bytes, more than maxBytes (${max})`, { code: 'invalid_argument' });
      const parts = [];
      for await (const c of body) parts.push(c);
      data = Buffer.concat(parts);
    });
    if (!data) throw refused(`the archive of ${p} is empty`);
    return o.encoding ? data.toString(o.encoding) : data;
  }

  /** Writes a file (parents made), replacing one that exists. data: string, Buffer or Uint8Array. */
  async writeFile(p, data, opts = {}) {
    checkPath(p);
    if (p.endsWith('/')) throw refused(`writeFile needs a file path, not a directory (${p})`);
    const buf = typeof data === 'string' ? Buffer.from(data, opts.encoding || 'utf8') : Buffer.from(data);
    const tar = singleFileTar(baseName(p) || 'file', buf, opts.mode ?? 0o644);
    await this._client.call('PUT', this._base + '/files', {
      query: { path: p },
      body: tar,
      headers: { 'Content-Type': 'application/x-tar' },
    });
  }

  /**
   * Copies a host directory to `remote`, which becomes a copy of it (merged into a
   * directory that exists), or a host file to `remote` itself (into it, under the
   * file's own name, when `remote` is an existing directory or ends in '/').
   * overwrite: false refuses to replace existing files.
   */
  async upload(local, remote, { overwrite = true } = {}) {
    checkPath(remote);
    await this.uploadTar(treeTar(local, path.basename(path.resolve(local))), remote, { overwrite });
  }

  /** A tar archive (Buffer, Readable or async iterable of Buffers) extracted into the box at `remote`. */
  async uploadTar(tar, remote, { overwrite = true } = {}) {
    await this._client.call('PUT', this._base + '/files', {
      query: { path: checkPath(remote), overwrite: overwrite ? undefined : 'false' },
      body: tar,
      headers: { 'Content-Type': 'application/x-tar' },
    });
  }

  /** The tar archive of a path in the box, as a stream (an http.IncomingMessage). */
  async downloadTar(remote, { followSymlinks = false } = {}) {
    return this._client.open('GET', this._base + '/files', {
      query: { path: checkPath(remote), follow_symlinks: followSymlinks ? 'true' : undefined },
    });
  }

  /**
   * Copies a file or a tree of the box to the host path `local`, which must not exist
   * (overwrite: true replaces a file, or an empty directory). Setuid/setgid bits are
   * dropped; symlinks that would point outside the copy are skipped; nothing is written
   * through a symlink. Bounded by maxBytes and maxEntries.
   */
  async download(remote, local, opts = {}) {
    checkPath(remote);
    const top = baseName(remote);
    if (!top) throw refused('download needs a path below /');
    if (!opts.overwrite && fs.existsSync(path.resolve(local))) throw new AlreadyExistsError(`${local} exists`, { code: 'already_exists' });
    const res = await this.downloadTar(remote, opts);
    await extractTree(res, top, local, { ...opts, what: remote });
  }

  /** The entries of a directory (without . and ..), sorted by name. */
  async list(p) {
    const j = await this._client.call('GET', this._base + '/fs/list', { query: { path: checkPath(p) } });
    return (j.entries || []).map(fileInfo);
  }

  /** What a path is (a final symlink is not followed). */
  async stat(p) {
    return fileInfo(await this._client.call('GET', this._base + '/fs/stat', { query: { path: checkPath(p) } }));
  }

  /** Whether a path exists (a dangling symlink does). */
  async exists(p) {
    try {
      await this.stat(p);
      return true;
    } catch (e) {
      if (e.code === 'not_found') return false;
      throw e;
    }
  }

  /** Makes a directory (parents: true, like mkdir -p). */
  async mkdir(p, { parents = false, mode } = {}) {
    const json = { path: checkPath(p), parents };
    if (mode !== undefined) json.mode = mode;
    return fileInfo(await this._client.call('POST', this._base + '/fs/mkdir', { json }));
  }

  /** Removes a file or an empty directory (recursive: true, a whole tree). */
  async remove(p, { recursive = false } = {}) {
    await this._client.call('POST', this._base + '/fs/remove', { json: { path: checkPath(p), recursive } });
  }

  /** Renames inside the box (noReplace: true refuses an existing destination). */
  async move(from, to, { noReplace = false } = {}) {
    return fileInfo(
      await this._client.call('POST', this._base + '/fs/move', { json: { from: checkPath(from), to: checkPath(to), no_replace: noReplace } }),
    );
  }
}

/**
 * Unpacks an archive from a box whose entries must all be `top` or lie under it into
 * the host path `local` (see Files.download): in a fresh hidden directory next to it,
 * renamed into place only once the whole archive passed.
 */
export async function extractTree(source, top, local, opts = {}) {
  const { overwrite = false, maxBytes = DOWNLOAD_MAX_BYTES, maxEntries = DOWNLOAD_MAX_ENTRIES, what = top } = opts;
  const dest = path.resolve(local);
  if (!overwrite && fs.existsSync(dest)) throw new AlreadyExistsError(`${local} exists`, { code: 'already_exists' });
  const stage = await fs.promises.mkdtemp(path.join(path.dirname(dest), '.cocoon-dl-'));
  try {
    let bytes = 0;
    let entries = 0;
    const dirs = [];
    const skipped = new Set(); // symlinks left out: nothing may come under them
    await readTar(source, async (e, body) => {
      if (++entries > maxEntries) throw refused(`the copy of ${what} has more than ${maxEntries} entries (maxEntries)`);
      const parts = entryParts(e.name, top);
      for (let i = 1; i < parts.length; i++)
        if (skipped.has(parts.slice(0, i).join('/'))) throw refused(`${e.name} lies under ${parts.slice(0, i).join('/')}, a symlink of the archive`);
      const target = path.join(stage, ...parts);
      // Every parent must be a directory this copy made (never a symlink).
      let at = stage;
      for (const c of parts.slice(0, -1)) {
        at = path.join(at, c);
        const st = await fs.promises.lstat(at).catch(() => null);
        if (!st) await fs.promises.mkdir(at, { mode: 0o755 });
        else if (!st.isDirectory()) throw refused(`${e.name} lies under ${c}, which is not a directory in the archive`);
      }
      const mode = (e.mode & 0o777) | (e.type === 'dir' ? 0o700 : 0);
      if (e.type === 'dir') {
        const st = await fs.promises.lstat(target).catch(() => null);
        if (!st) await fs.promises.mkdir(target, { mode: 0o700 });
        else if (!st.isDirectory()) throw refused(`${e.name} appears twice`);
        dirs.push([target, mode, e.mtime]);
      } else if (e.type === 'file') {
        bytes += e.size;
        if (bytes > maxBytes) throw refused(`the copy of ${what} is larger than ${maxBytes} bytes (maxBytes)`);
        const fh = await fs.promises.open(target, 'wx', 0o600);
        try {
          for await (const c of body) await fh.write(c);
          await fh.chmod(mode);
          await fh.utimes(e.mtime, e.mtime);
        } finally {
          await fh.close();
        }
      } else if (e.type === 'symlink') {
        const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(parts.join('/')), e.linkname));
        if (e.linkname.startsWith('/') || !(resolved === top || resolved.startsWith(top + '/'))) {
          process.emitWarning(`cocoon: ${e.name}: symlink to ${JSON.stringify(e.linkname)} skipped: it points outside the copied tree`);
          skipped.add(parts.join('/'));
          return;
        }
        await fs.promises.symlink(e.linkname, target);
      } else if (e.type === 'link') {
        const src = path.join(stage, ...entryParts(e.linkname, top));
        const st = await fs.promises.lstat(src).catch(() => null);
        if (!st || !st.isFile()) throw refused(`${e.name}: a hard link to ${JSON.stringify(e.linkname)}, not a file of this copy`);
        await fs.promises.link(src, target);
      }
      // devices, FIFOs and other types are skipped
    });
    for (const [d, mode, mtime] of dirs.reverse()) {
      await fs.promises.chmod(d, mode);
      await fs.promises.utimes(d, mtime, mtime);
    }
    const got = path.join(stage, top);
    if (!(await fs.promises.lstat(got).catch(() => null))) throw refused(`the archive of ${what} is empty`);
    await fs.promises.rename(got, dest);
  } finally {
    await fs.promises.rm(stage, { recursive: true, force: true });
  }
}
