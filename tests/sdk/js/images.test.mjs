// Images through the JS SDK: load a `docker save` tarball, pull from a fake registry on
// 127.0.0.1 with progress, list, get, exists, remove, and the errors of each.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HERE, SDK, tmpdir, vmMissing } from './helpers.mjs';

const { Box, Images, images, Cocoon, NotFoundError, InvalidStateError, ImagePullError, InvalidArgumentError } = await import(SDK);
const FIXTURE = path.join(HERE, 'image_fixture.py');
const noBusybox = fs.existsSync('/bin/busybox') ? false : 'skipped: /bin/busybox is missing (the test images are made from it)';

describe('images', { skip: vmMissing() || noBusybox }, () => {
  let dir;
  before(() => {
    dir = tmpdir('cocoon-js-img-');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads a docker save tarball, lists, gets, runs it, and removes it once unused', async () => {
    const tar = path.join(dir, 'bb.tar');
    const r = spawnSync('python3', [FIXTURE, 'save', tar, 'jssdk/bb:1'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const loaded = await images.load(tar);
    assert.equal(loaded.length, 1);
    assert.equal(loaded[0].reference, 'docker.io/jssdk/bb:1');
    assert.ok((await images.list()).some((i) => i.id === loaded[0].id));
    const detail = await images.get('jssdk/bb:1');
    assert.deepEqual(detail.config.config.Cmd, ['cat', '/etc/image']);
    assert.equal(await images.exists('jssdk/bb:1'), true);
    assert.equal(await images.exists('jssdk/none:1'), false);
    const box = await Box.create({ image: 'jssdk/bb:1', ephemeral: true });
    assert.equal((await box.exec(['cat', '/etc/image'])).stdout, 'jssdk/bb:1\n');
    await assert.rejects(images.remove('jssdk/bb:1'), InvalidStateError); // a box uses it
    await box.close();
    await images.remove('jssdk/bb:1');
    await assert.rejects(images.get('jssdk/bb:1'), NotFoundError);
    // (the server answers this with 500 internal today, not 400: the message is what counts)
    await assert.rejects(images.load(Buffer.from('not a tarball')), /as a tar archive/);
  });

  it('pulls with progress from a registry on loopback, and reports a failed pull', async () => {
    const reg = spawn('python3', [FIXTURE, 'registry', 'jssdk/pulled', 'v1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const ref = (await new Promise((resolve) => reg.stdout.once('data', (d) => resolve(d.toString())))).trim();
      const seen = [];
      const im = await new Images(Cocoon.default()).pull(ref, { insecure: true, onProgress: (p) => seen.push(p) });
      assert.equal(im.reference, ref);
      assert.ok(seen.length >= 1 && seen.every((p) => p.layer.startsWith('sha256:') && p.done <= p.total));
      await images.remove(ref);
      await assert.rejects(images.pull(ref.replace('v1', 'nope'), { insecure: true }), ImagePullError);
      await assert.rejects(images.pull('Bad Reference!'), InvalidArgumentError);
    } finally {
      reg.stdin.end();
    }
  });
});
