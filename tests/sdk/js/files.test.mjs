// Files through the JS SDK on a real box: whole files, host trees up and down through
// the tar route (checked as it comes back), and list/stat/mkdir/remove/move.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SDK, hasRoute, tmpdir, vmMissing } from './helpers.mjs';

const { Box, NotFoundError, AlreadyExistsError, InvalidArgumentError } = await import(SDK);
const skip = vmMissing() || false;

describe('files', { skip }, () => {
  let box;
  let host;
  before(async () => {
    box = await Box.create({ ephemeral: true });
    host = tmpdir('cocoon-js-files-');
  });
  after(async () => {
    await box?.close();
    if (host) fs.rmSync(host, { recursive: true, force: true });
  });

  it('writes and reads text and bytes, with a mode, making parents', async () => {
    await box.fs.writeFile('/tmp/new/dir/a.txt', 'héllo\n');
    assert.equal(await box.fs.readFile('/tmp/new/dir/a.txt', 'utf8'), 'héllo\n');
    const bytes = crypto.randomBytes(300_000);
    await box.fs.writeFile('/tmp/b.bin', bytes, { mode: 0o700 });
    assert.deepEqual(await box.fs.readFile('/tmp/b.bin'), bytes);
    const r = await box.exec(['stat', '-c', '%a %s', '/tmp/b.bin']);
    assert.equal(r.stdout, '700 300000\n');
    await box.fs.writeFile('/tmp/b.bin', 'replaced');
    assert.equal(await box.fs.readFile('/tmp/b.bin', { encoding: 'utf8' }), 'replaced');
    await box.fs.writeFile(`/tmp/${'n'.repeat(150)}`, 'long name'); // a pax header in the archive
    assert.equal(await box.fs.readFile(`/tmp/${'n'.repeat(150)}`, 'utf8'), 'long name');
  });

  it('gives typed errors for missing files, directories and relative paths', async () => {
    await assert.rejects(box.fs.readFile('/nope/x'), NotFoundError);
    await assert.rejects(box.fs.readFile('/etc'), /not a regular file/);
    await assert.rejects(box.fs.readFile('etc/passwd'), InvalidArgumentError);
    await assert.rejects(box.fs.readFile('/tmp/b.bin', { maxBytes: 3 }), /maxBytes/);
  });

  it('uploads a host tree and downloads it back the same', async () => {
    const src = path.join(host, 'proj');
    fs.mkdirSync(path.join(src, 'sub', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(src, 'run.sh'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
    fs.writeFileSync(path.join(src, 'sub', 'data.bin'), crypto.randomBytes(200_000));
    fs.writeFileSync(path.join(src, 'sub', 'deep', 'empty'), '');
    fs.symlinkSync('sub/data.bin', path.join(src, 'link'));
    fs.symlinkSync('/etc/passwd', path.join(src, 'outside'));
    await box.fs.upload(src, '/work/proj');
    const r = await box.exec(['/work/proj/run.sh']);
    assert.equal(r.stdout, 'ran\n');
    assert.equal((await box.exec(['readlink', '/work/proj/link'])).stdout, 'sub/data.bin\n');

    const back = path.join(host, 'back');
    const warnings = [];
    const onWarn = (w) => warnings.push(String(w.message));
    process.on('warning', onWarn);
    try {
      await box.fs.download('/work/proj', back);
    } finally {
      await new Promise((r) => setImmediate(r));
      process.off('warning', onWarn);
    }
    assert.deepEqual(fs.readFileSync(path.join(back, 'sub', 'data.bin')), fs.readFileSync(path.join(src, 'sub', 'data.bin')));
    assert.equal(fs.statSync(path.join(back, 'run.sh')).mode & 0o777, 0o755);
    assert.equal(fs.readlinkSync(path.join(back, 'link')), 'sub/data.bin');
    assert.equal(fs.readFileSync(path.join(back, 'sub', 'deep', 'empty'), 'utf8'), '');
    // A symlink pointing out of the tree is skipped on the way out (by the server, and by the SDK).
    assert.equal(fs.existsSync(path.join(back, 'outside')), false);
    assert.deepEqual(
      fs.readdirSync(host).filter((n) => n.startsWith('.cocoon-dl-')),
      [],
    );

    await assert.rejects(box.fs.download('/work/proj', back), AlreadyExistsError);
    await box.fs.download('/work/proj/run.sh', path.join(host, 'one.sh'));
    assert.equal(fs.readFileSync(path.join(host, 'one.sh'), 'utf8'), '#!/bin/sh\necho ran\n');
    await assert.rejects(box.fs.download('/work/nope', path.join(host, 'nope')), NotFoundError);
    assert.equal(fs.existsSync(path.join(host, 'nope')), false);
  });

  it('uploads a single file as the path named, and refuses to overwrite when asked', async () => {
    const f = path.join(host, 'single.txt');
    fs.writeFileSync(f, 'single');
    await box.fs.upload(f, '/work/renamed.txt');
    assert.equal(await box.fs.readFile('/work/renamed.txt', 'utf8'), 'single');
    await assert.rejects(box.fs.upload(f, '/work/renamed.txt', { overwrite: false }), AlreadyExistsError);
    await box.fs.upload(f, '/work'); // an existing directory: into it, under the file's name
    assert.equal(await box.fs.readFile('/work/single.txt', 'utf8'), 'single');
    await box.fs.upload(f, '/work/new-dir/');
    assert.equal(await box.fs.readFile('/work/new-dir/single.txt', 'utf8'), 'single');
  });

  it('lists, stats, makes, moves and removes (file operations routes)', async (t) => {
    if (!(await hasRoute(box, '/fs/stat?path=/'))) {
      t.skip('skipped: the server has no /fs routes yet (branch fileops not merged)');
      return;
    }
    const made = await box.fs.mkdir('/work/ops/a/b', { parents: true, mode: 0o750 });
    assert.equal(made.type, 'directory');
    await box.fs.writeFile('/work/ops/a/f.txt', '12345');
    const st = await box.fs.stat('/work/ops/a/f.txt');
    assert.equal(st.type, 'file');
    assert.equal(st.size, 5);
    assert.ok(st.mtime instanceof Date);
    const names = (await box.fs.list('/work/ops/a')).map((e) => `${e.name}:${e.type}`);
    assert.deepEqual(names, ['b:directory', 'f.txt:file']);
    const moved = await box.fs.move('/work/ops/a/f.txt', '/work/ops/g.txt');
    assert.equal(moved.name, 'g.txt');
    await box.fs.writeFile('/work/ops/h.txt', 'h');
    await assert.rejects(box.fs.move('/work/ops/g.txt', '/work/ops/h.txt', { noReplace: true }), InvalidArgumentError);
    assert.equal(await box.fs.exists('/work/ops/a/f.txt'), false);
    assert.equal(await box.fs.exists('/work/ops/g.txt'), true);
    await assert.rejects(box.fs.remove('/work/ops/a'), InvalidArgumentError); // not empty
    await box.fs.remove('/work/ops', { recursive: true });
    await assert.rejects(box.fs.stat('/work/ops'), NotFoundError);
    await assert.rejects(box.fs.list('/nope'), NotFoundError);
  });
});
