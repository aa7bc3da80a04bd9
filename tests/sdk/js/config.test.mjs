// cocoon.yaml through the JS SDK: loadConfig (the CLI's strict reader, `cocoon config
// --json`), its errors, Box.fromConfig and the file's named scripts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SDK, cocoon, tmpdir, vmMissing } from './helpers.mjs';

const { Box, loadConfig, InvalidArgumentError, NotFoundError } = await import(SDK);
const probe = cocoon('config', '--help');
const noConfig = /unknown command|usage: cocoon \[/.test(probe.stderr + probe.stdout) || probe.status === null
  ? 'skipped: this build has no `cocoon config` (branch config not merged)'
  : false;

describe('cocoon.yaml', { skip: vmMissing() || noConfig }, () => {
  let dir;
  before(() => {
    dir = tmpdir('cocoon-js-cfg-');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads a file into its normalized form, with ${ENV} substitution', async () => {
    const f = path.join(dir, 'cocoon.yaml');
    process.env.JS_CFG_MEM = '256M';
    fs.writeFileSync(
      f,
      'boxes:\n  js-cfg:\n    memory: ${JS_CFG_MEM}\n    env: {A: "1"}\n    workdir: /tmp\n    ephemeral: true\n    network:\n      mode: none\n    scripts:\n      hello: echo hello $A from $(pwd)\n      argv: [echo, one, two]\n',
    );
    const cfg = await loadConfig(f);
    assert.equal(cfg.file, f);
    assert.equal(cfg.boxes.length, 1);
    const b = cfg.boxes[0];
    assert.equal(b.name, 'js-cfg');
    assert.equal(b.memory_mib, 256);
    assert.deepEqual(b.scripts.argv, ['echo', 'one', 'two']);
    const cwd = process.cwd();
    process.chdir(dir); // no path: ./cocoon.yaml, as the CLI reads it
    try {
      assert.equal((await loadConfig()).file, fs.realpathSync(f));
    } finally {
      process.chdir(cwd);
    }
  });

  it('refuses a bad file with FILE:LINE', async () => {
    const f = path.join(dir, 'bad.yaml');
    fs.writeFileSync(f, 'boxes:\n  x:\n    memroy: 1G\n');
    await assert.rejects(loadConfig(f), (e) => e instanceof InvalidArgumentError && e.message.includes(`${f}:3`));
  });

  it('makes the box a file describes and runs its scripts', async () => {
    const f = path.join(dir, 'cocoon.yaml');
    const box = await Box.fromConfig(f, 'js-cfg');
    try {
      assert.equal(box.name, 'js-cfg');
      assert.equal(box.info.memoryMib, 256);
      assert.equal((await box.script('hello')).stdout, 'hello 1 from /tmp\n');
      assert.equal((await box.script('argv')).stdout, 'one two\n');
      await assert.rejects(box.script('nope'), InvalidArgumentError);
      const again = await Box.fromConfig(f); // the only box: found, not made again
      assert.equal(again.id, box.id);
      await again.close();
      await assert.rejects(Box.fromConfig(f, 'other'), NotFoundError);
    } finally {
      await box.remove({ force: true });
    }
  });
});
