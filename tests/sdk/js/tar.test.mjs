// The SDK's tar reader and download extraction against hostile archives (what a guest
// could send through a lying server or agent): no box needed. Each refusal leaves the
// destination as it was and no staging directory behind.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { REPO, tmpdir } from './helpers.mjs';

const { entryHeader, pad, END, readTar, treeTar, PAX_MAX } = await import(path.join(REPO, 'sdk/js/src/tar.js'));
const { extractTree } = await import(path.join(REPO, 'sdk/js/src/files.js'));

/** A ustar header of any type flag, with a right checksum (or a broken one). */
function raw({ name, flag = '0', size = 0, mode = 0o644, linkname = '', badSum = false }) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write(mode.toString(8).padStart(7, '0') + '\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.fill(' ', 148, 156);
  h.write(flag, 156);
  h.write(linkname, 157, 100);
  h.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write((sum + (badSum ? 1 : 0)).toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}
const file = (name, data, mode = 0o644) => [entryHeader({ name, type: 'file', mode, size: data.length, mtime: 0 }), Buffer.from(data), Buffer.alloc(pad(data.length))];
const dir = (name) => [entryHeader({ name, type: 'dir', mode: 0o755, mtime: 0 })];
const link = (name, to) => [entryHeader({ name, type: 'symlink', mode: 0o777, mtime: 0, linkname: to })];
const tar = (...parts) => Readable.from([Buffer.concat([...parts.flat(), END])]);

const base = tmpdir('cocoon-js-tar-');
after(() => fs.rmSync(base, { recursive: true, force: true }));
let n = 0;
function dest() {
  const d = path.join(base, `case${n++}`);
  fs.mkdirSync(d);
  return path.join(d, 'out');
}
function clean(d) {
  assert.equal(fs.existsSync(d), false, 'the destination was not made');
  assert.deepEqual(fs.readdirSync(path.dirname(d)), [], 'no staging directory left');
}

describe('hostile archives', () => {
  it('unpack a good tree, dropping setuid bits, keeping an inner symlink', async () => {
    const d = dest();
    await extractTree(tar(dir('top/'), file('top/a', 'A', 0o4755), dir('top/s/'), file('top/s/b', 'B'), link('top/l', 's/b')), 'top', d);
    assert.equal(fs.readFileSync(path.join(d, 'a'), 'utf8'), 'A');
    assert.equal(fs.statSync(path.join(d, 'a')).mode & 0o7777, 0o755);
    assert.equal(fs.readFileSync(path.join(d, 'l'), 'utf8'), 'B');
  });

  for (const [what, archive, re] of [
    ['a name with ..', () => tar(dir('top/'), file('top/../evil', 'x')), /\.\./],
    ['an absolute name', () => tar(file('/etc/evil', 'x')), /refused/],
    ['a name outside the path asked for', () => tar(dir('top/'), file('other/x', 'x')), /outside/],
    ['a file under a symlink of the archive', () => tar(dir('top/'), link('top/l', 'sub'), dir('top/sub/'), file('top/l/x', 'x')), /not a directory/],
    ['a file under a symlink pointing out', () => tar(dir('top/'), link('top/l', '../..'), file('top/l/x', 'x')), /a symlink of the archive/],
    ['a hard link to a file outside the copy', () => tar(dir('top/'), raw({ name: 'top/h', flag: '1', linkname: 'etc/passwd' })), /outside/],
    ['a bad header checksum', () => tar(dir('top/'), raw({ name: 'top/x', badSum: true })), /checksum/],
    ['a pax header over the bound', () => tar(raw({ name: 'p', flag: 'x', size: PAX_MAX + 1 })), /extended header/],
    ['a size that is not octal', () => tar(dir('top/'), (() => { const h = raw({ name: 'top/x' }); h.write('99999999999\0', 124); let s = 0; h.fill(' ', 148, 156); for (const b of h) s += b; h.write(s.toString(8).padStart(6, '0') + '\0 ', 148); return h; })()), /number field/],
    ['a name appearing twice', () => tar(dir('top/'), file('top/x', '1'), file('top/x', '2')), /EEXIST|exist/],
  ]) {
    it(`refuse ${what}`, async () => {
      const d = dest();
      await assert.rejects(extractTree(archive(), 'top', d), re);
      clean(d);
    });
  }

  it('refuse an archive cut short, and one without its end blocks', async () => {
    let d = dest();
    const whole = Buffer.concat([...dir('top/'), ...file('top/x', 'x'.repeat(2000))]);
    await assert.rejects(extractTree(Readable.from([whole.subarray(0, 1200)]), 'top', d), /ends/);
    clean(d);
    d = dest();
    await assert.rejects(extractTree(Readable.from([whole]), 'top', d), /ends in the middle/);
    clean(d);
  });

  it('skip a symlink that points outside, with a warning', async () => {
    const d = dest();
    const warned = new Promise((resolve) => process.once('warning', (w) => resolve(w.message)));
    await extractTree(tar(dir('top/'), link('top/out', '/etc/passwd'), link('top/up', '../../x'), file('top/ok', 'ok')), 'top', d);
    assert.match(await warned, /points outside/);
    assert.deepEqual(fs.readdirSync(d), ['ok']);
  });

  it('bound the bytes and the entries of a copy', async () => {
    let d = dest();
    await assert.rejects(extractTree(tar(dir('top/'), file('top/a', 'x'.repeat(100))), 'top', d, { maxBytes: 99 }), /maxBytes/);
    clean(d);
    d = dest();
    await assert.rejects(extractTree(tar(dir('top/'), file('top/a', ''), file('top/b', '')), 'top', d, { maxEntries: 2 }), /maxEntries/);
    clean(d);
  });

  it('leave an existing destination alone', async () => {
    const d = dest();
    fs.writeFileSync(d, 'mine');
    await assert.rejects(extractTree(tar(file('top', 'new')), 'top', d), /exists/);
    assert.equal(fs.readFileSync(d, 'utf8'), 'mine');
  });

  it('read back what the writer wrote: long and non-ASCII names (pax), symlinks, empty files', async () => {
    const src = path.join(base, 'src');
    const long = 'd'.repeat(120);
    fs.mkdirSync(path.join(src, long), { recursive: true });
    fs.writeFileSync(path.join(src, long, 'é-ü.txt'), 'unicode');
    fs.writeFileSync(path.join(src, 'empty'), '');
    fs.symlinkSync('x'.repeat(150), path.join(src, 'dangling'));
    const seen = [];
    await readTar(Readable.from(treeTar(src, 'src')), async (e, body) => {
      let data = '';
      for await (const c of body) data += c;
      seen.push(`${e.type}:${e.name}:${e.linkname.length}:${data}`);
    });
    assert.deepEqual(seen, ['dir:./:0:', 'symlink:dangling:150:', `dir:${long}/:0:`, `file:${long}/é-ü.txt:0:unicode`, 'file:empty:0:']);
  });
});
