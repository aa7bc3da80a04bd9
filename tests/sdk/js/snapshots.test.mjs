// Disk snapshots, clones, export and import through the JS SDK: one box (of a small
// busybox image when /bin/busybox is here, so exports are small), created without
// booting; it boots once, for the refusals a running box gets. Snapshot, list, get,
// restore, remove, clone, export, import and their typed errors. (The data a restore, a
// clone or an import brings back is checked end to end by tests/integration/
// test_snapshot.py and test_clone.py.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HERE, SDK, tmpdir, vmMissing } from './helpers.mjs';

const { Box, Snapshots, snapshots, Cocoon, images, BoxRunningError, InvalidArgumentError, InvalidStateError, NotFoundError,
  SnapshotInUseError, SnapshotNotFoundError } = await import(SDK);

describe('snapshots', { skip: vmMissing() || false }, () => {
  let dir, box;
  before(async () => {
    dir = tmpdir('cocoon-js-snap-');
    let image;
    if (fs.existsSync('/bin/busybox')) {
      const tar = path.join(dir, 'snap.tar');
      const r = spawnSync('python3', [path.join(HERE, 'image_fixture.py'), 'save', tar, 'jssdk/snap:1'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      image = (await images.load(tar))[0].reference;
    }
    box = await Box.create({ image, memory: 256, start: false });
  });
  after(async () => {
    await box?.remove({ force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('takes, lists, gets, restores and removes snapshots, with typed refusals', async () => {
    const first = await box.snapshot({ name: 'js-first' });
    assert.equal(first.name, 'js-first');
    assert.equal(first.boxId, box.id);
    assert.equal(first.depth, 1);
    assert.ok(first.virtualSizeBytes > 0 && first.createdAt > 0);
    const second = await box.snapshot();
    assert.equal(second.parent, first.id);
    assert.ok(second.name.startsWith(box.id), second.name);
    assert.deepEqual((await box.snapshots()).map((s) => s.id), [first.id, second.id]);
    assert.deepEqual((await snapshots.list({ box: box.id })).map((s) => s.id), [first.id, second.id]);
    assert.ok((await new Snapshots(Cocoon.default()).list()).some((s) => s.id === second.id));
    assert.equal((await snapshots.get('js-first')).users, 2); // second, and the box through it
    await assert.rejects(box.snapshot('js-first'), (e) => e instanceof InvalidStateError && /already in use/.test(e.message));

    const inUse = await snapshots.remove(first).catch((e) => e);
    assert.ok(inUse instanceof SnapshotInUseError && inUse instanceof InvalidStateError, String(inUse));
    assert.equal((await box.restore('js-first')).id, first.id);
    await snapshots.remove(second.id); // nothing stands on it since the restore
    assert.deepEqual((await box.snapshots()).map((s) => s.id), [first.id]);
    const done = await box.compact(); // the box stood on first: one layer over the image now
    assert.deepEqual([done.layersBefore, done.layersAfter, done.released], [2, 1, [first.id]]);
    assert.equal((await snapshots.get('js-first')).users, 0);

    const gone = await box.restore(second).catch((e) => e);
    assert.ok(gone instanceof SnapshotNotFoundError && gone instanceof NotFoundError, String(gone));
    await assert.rejects(snapshots.get('no-such-snapshot'), SnapshotNotFoundError);
    await assert.rejects(snapshots.remove('no-such-snapshot'), SnapshotNotFoundError);
  });

  it('refuses a running box', async () => {
    // (a snapshot of a running box is taken live on the qemu backend: tests/integration/test_live_snapshot.py)
    await box.start();
    try {
      await assert.rejects(box.restore('js-first'), BoxRunningError);
      await assert.rejects(box.clone(), BoxRunningError);
      await assert.rejects(box.compact(), BoxRunningError);
      await assert.rejects(box.export(path.join(dir, 'running.cocoon')), BoxRunningError);
    } finally {
      await box.stop();
    }
    assert.ok(!(await box.snapshots()).some((s) => s.name === 'while-running'));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('running')), []);
  });

  it('clones the box or one of its snapshots', async () => {
    const twin = await box.clone({ name: 'js-twin' });
    try {
      assert.notEqual(twin.id, box.id);
      assert.equal(twin.name, 'js-twin');
      assert.notEqual(twin.status, 'running');
      const other = await box.clone({ snapshot: 'js-first' });
      assert.equal(other.name, 'js-first-clone-1');
      await other.remove();
      await assert.rejects(box.clone({ snapshot: 'no-such-snapshot' }), SnapshotNotFoundError);
    } finally {
      await twin.remove();
    }
  });

  it('forks a running box', async () => {
    await box.start();
    let kids = [];
    try {
      kids = await box.fork({ count: 2 });
      assert.equal(kids.length, 2);
      for (const k of kids) {
        assert.notEqual(k.id, box.id);
        assert.equal(k.status, 'running');
        const r = await k.exec(['cat', '/proc/sys/kernel/hostname']);
        assert.equal(r.stdout.trim(), `cocoon-${k.id.slice(0, 6)}`);
      }
      kids.push(...(await box.fork())); // again, in the same run
      assert.equal(kids.length, 3);
    } finally {
      for (const k of kids) await k.remove({ force: true });
      await box.stop();
    }
    await assert.rejects(box.fork(), InvalidStateError);
  });

  it('exports the box and a snapshot, imports them, and refuses a damaged archive', async () => {
    const file = path.join(dir, 'box.cocoon');
    await box.export(file);
    assert.ok(fs.statSync(file).size > 0);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.partial-')), []);
    const copy = await Box.import(file, { name: 'js-imported' });
    try {
      assert.equal(copy.name, 'js-imported');
      assert.notEqual(copy.id, box.id);
      await snapshots.export('js-first', path.join(dir, 'snap.cocoon'));
      const fromSnap = await Box.import(path.join(dir, 'snap.cocoon'));
      assert.equal(fromSnap.name, null);
      await fromSnap.remove();
    } finally {
      await copy.remove();
    }
    const before = (await Box.list()).map((b) => b.id).sort();
    const data = fs.readFileSync(file);
    fs.writeFileSync(path.join(dir, 'cut.cocoon'), data.subarray(0, data.length >> 1));
    await assert.rejects(Box.import(path.join(dir, 'cut.cocoon'), { name: 'js-cut' }), InvalidArgumentError);
    assert.deepEqual((await Box.list()).map((b) => b.id).sort(), before);
    await assert.rejects(box.export(path.join(dir, 'none.cocoon'), { snapshot: 'no-such-snapshot' }), SnapshotNotFoundError);
  });
});
