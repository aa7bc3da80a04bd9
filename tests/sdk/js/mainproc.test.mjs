// A box's main process and detached execs through the JS SDK: Box.create({command,
// restart}), mainStatus(), mainLogs() (tail, since, stream, follow left early),
// execDetached with its status, output and kill, and the refusals (a malformed restart
// policy or since, the output of a box without a main process, an unknown detached exec).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SDK, vmMissing } from './helpers.mjs';

const { Box, Cocoon, InvalidArgumentError, InvalidStateError, NotFoundError } = await import(SDK);
const skip = vmMissing() || false;

async function until(what, cond, ms = 180_000) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await cond();
    if (got) return got;
    if (Date.now() > end) throw new Error(`still waiting after ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function collect(it) {
  const out = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('main process and detached execs', { skip }, () => {
  let box;
  before(async () => {
    box = await Box.create({
      memory: '256M', env: { WHO: 'js' }, workdir: '/tmp', restart: 'on-failure:2',
      command: ['sh', '-c', 'echo hello $WHO $(pwd); echo warn >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done'],
    });
    await until('tick 3', async () => (await collect(box.mainLogs({ stream: 'stdout' }))).some((l) => l.text === 'tick 3'));
  });
  after(async () => {
    await box?.remove({ force: true });
    await Cocoon.default().close();
  });

  it('shows its status and output', async () => {
    const st = await box.mainStatus();
    assert.equal(st.state, 'running');
    assert.equal(st.running, true);
    assert.equal(st.restart, 'on-failure:2');
    assert.ok(st.pid > 0 && st.exitCode === null, JSON.stringify(st));
    const out = (await collect(box.mainLogs({ stream: 'stdout' }))).map((l) => l.text);
    assert.deepEqual(out.slice(0, 2), ['hello js /tmp', 'tick 1']);
    assert.deepEqual((await collect(box.mainLogs({ stream: 'stderr' }))).map((l) => l.text), ['warn']);
    const last = await collect(box.mainLogs({ tail: 1, stream: 'stdout' }));
    assert.equal(last.length, 1);
    assert.match(last[0].time, /Z$/);
    assert.deepEqual(await collect(box.mainLogs({ since: '2999-01-01' })), []);
    assert.equal(typeof (await box.logs()), 'string'); // the console
  });

  it('follows, and stops when the loop is left', async () => {
    const seen = [];
    for await (const l of box.mainLogs({ follow: true, tail: 0, stream: 'stdout' })) {
      seen.push(l.text);
      if (seen.length === 2) break;
    }
    assert.ok(seen.every((t) => t.startsWith('tick')), seen.join());
    assert.equal((await box.mainStatus()).state, 'running');
  });

  it('runs detached execs', async () => {
    const id = await box.execDetached(['sh', '-c', 'echo a; echo b >&2; exit 4']);
    assert.equal(typeof id, 'number');
    const st = await until('the exec to end', async () => {
      const s = await box.detachedStatus(id);
      return s.state === 'exited' && s;
    });
    assert.equal(st.exitCode, 4);
    assert.deepEqual((await collect(box.detachedLogs(id))).map((l) => l.text).sort(), ['a', 'b']);
    await assert.rejects(box.killDetached(id), InvalidStateError);
    const long = await box.execDetached('sleep 600', { shell: true });
    await box.killDetached(long, 15);
    const killed = await until('the kill', async () => {
      const s = await box.detachedStatus(long);
      return s.state === 'exited' && s;
    });
    assert.equal(killed.signal, 15);
    await assert.rejects(box.detachedStatus(12345678), NotFoundError);
    await assert.rejects(box.execDetached(['cat'], { stdin: 'x' }), InvalidArgumentError);
  });

  it('refuses bad input', async () => {
    await assert.rejects(Box.create({ start: false, command: ['true'], restart: 'sometimes' }), InvalidArgumentError);
    await assert.rejects(Box.create({ start: false, restart: 'always' }), InvalidArgumentError);
    await assert.rejects(collect(box.mainLogs({ since: 'yesterday' })), InvalidArgumentError);
    const plain = await Box.create({ start: false, ephemeral: true });
    try {
      assert.equal(await plain.mainStatus(), null);
      await assert.rejects(collect(plain.mainLogs()), InvalidStateError);
    } finally {
      await plain.remove({ force: true });
    }
  });
});
