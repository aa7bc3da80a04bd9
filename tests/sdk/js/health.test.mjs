// Health checks and waiting through the JS SDK: Box.create({healthcheck}), health()
// before and after the check passed, wait({condition, timeoutMs}) resolving with the main
// process's exit code, TimeoutError, and the refusals (a malformed healthcheck, an
// unknown condition, healthy without a check).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SDK, vmMissing } from './helpers.mjs';

const { Box, Cocoon, InvalidArgumentError, TimeoutError, CocoonError } = await import(SDK);
const skip = vmMissing() || false;
const WAIT_MS = 180_000; // bounds a hang only

describe('health checks and wait', { skip }, () => {
  after(async () => {
    await Cocoon.default().close();
  });

  it('waits for healthy, then for the exit code', async () => {
    const box = await Box.create({
      memory: '128M',
      command: ['sh', '-c', 'sleep 1; touch /tmp/ok; while [ ! -e /tmp/stop ]; do sleep 0.2; done; exit 3'],
      healthcheck: { cmd: 'test -f /tmp/ok', interval: 1, timeout: 5, retries: 2 },
    });
    try {
      const h = await box.health();
      assert.deepEqual([h.test, h.interval, h.timeout, h.retries, h.onFailure], ['/bin/sh -c test -f /tmp/ok', 1, 5, 2, 'none']);
      assert.equal(await box.wait({ condition: 'running', timeoutMs: WAIT_MS }), null);
      assert.equal(await box.wait({ condition: 'healthy', timeoutMs: WAIT_MS }), null);
      const now = await box.health();
      assert.ok(now.healthy && now.lastExitCode === 0 && now.failingStreak === 0, JSON.stringify(now));
      await assert.rejects(box.wait({ timeoutMs: 1000 }), TimeoutError);
      await box.exec(['touch', '/tmp/stop']);
      assert.equal(await box.wait({ timeoutMs: WAIT_MS }), 3);
      assert.equal((await box.health()).status, null);
    } finally {
      await box.remove({ force: true });
    }
  });

  it('refuses bad input; healthy needs a check', async () => {
    await assert.rejects(Box.create({ healthcheck: { interval: 3 } }), InvalidArgumentError);
    await assert.rejects(Box.create({ healthcheck: { cmd: 'true', every: 3 } }), /every/);
    await assert.rejects(Box.create({ healthcheck: { cmd: 'true', retries: 0 } }), /retries/);
    const box = await Box.create({ memory: '128M', command: ['sh', '-c', 'exit 4'] });
    try {
      assert.equal(await box.health(), null);
      await assert.rejects(box.wait({ condition: 'sideways' }), /condition/);
      assert.equal(await box.wait({ timeoutMs: WAIT_MS }), 4);
      await assert.rejects(box.wait({ condition: 'healthy', timeoutMs: WAIT_MS }), CocoonError);
    } finally {
      await box.remove({ force: true });
    }
  });
});
