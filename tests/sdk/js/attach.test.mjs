// Attaching to a box's main process through the JS SDK (Box.attach over the WebSocket
// GET /boxes/{id}/attach). One box, of the small busybox image when /bin/busybox is here,
// whose main process is `sh` on a terminal with open stdin (`cocoon run -d -t -i`): a
// line written is run and its answer read back, the terminal resized, a detach leaves the
// shell running, a second attachment finds it (and the 8-attacher bound), a signal it
// traps ends it with its code; then the refusals.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HERE, SDK, tmpdir, vmMissing } from './helpers.mjs';

const { Box, Cocoon, InvalidArgumentError, InvalidStateError, ResourceExhaustedError, images } = await import(SDK);
const skip = vmMissing() || false;
const WAIT_MS = 60_000; // bounds a hang only

async function until(what, cond, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await cond();
    if (got) return got;
    if (Date.now() > end) throw new Error(`still waiting after ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Iterates an attachment in the background, keeping what came. */
function reader(a) {
  const r = { text: '', streams: new Set() };
  r.done = (async () => {
    for await (const ev of a) {
      r.text += ev.data.toString('utf8');
      r.streams.add(ev.stream);
    }
  })();
  r.until = (s) => until(JSON.stringify(s), () => r.text.includes(s));
  return r;
}

describe('attach', { skip }, () => {
  let box;
  before(async () => {
    let image;
    if (fs.existsSync('/bin/busybox')) {
      const tar = path.join(tmpdir('attach-'), 'attach.tar');
      const r = spawnSync('python3', [path.join(HERE, 'image_fixture.py'), 'save', tar, 'jssdk/attach:1'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      image = (await images.load(tar))[0].reference;
    }
    box = await Box.create({ image, memory: 256, command: ['sh'], tty: true, openStdin: true });
    await until('the main process to run', async () => (await box.mainStatus())?.running);
  });
  after(async () => {
    await box?.remove({ force: true });
    await Cocoon.default().close();
  });

  it('refuses tty without a main process', async () => {
    await assert.rejects(Box.create({ tty: true }), InvalidArgumentError);
    await assert.rejects(Box.create({ openStdin: true }), /for a main process/);
  });

  it('writes, reads, resizes, detaches, re-attaches and gets the exit code', async () => {
    const a = await box.attach({ cols: 100, rows: 30 });
    const r = reader(a);
    a.write('echo hi $((6*7))\n');
    await r.until('hi 42'); // the shell's answer: the typed line (echoed) has $((6*7))
    a.write(Buffer.from('busybox stty size\n'));
    await r.until('30 100');
    a.resize(120, 40);
    a.write('busybox stty size\n');
    await r.until('40 120');
    assert.deepEqual([...r.streams], ['stdout']); // a terminal merges stderr
    assert.equal(a.attached, true);
    a.detach();
    assert.equal(await a.wait(), null);
    await r.done;
    assert.equal(a.attached, false);
    assert.throws(() => a.write('echo lost\n'), InvalidStateError);
    assert.equal((await box.mainStatus()).running, true); // a detach leaves it running

    assert.throws(() => a.resize(0, 10), InvalidArgumentError);
    await assert.rejects(box.attach({ cols: 70000, rows: 10 }), InvalidArgumentError);

    let got = '';
    const b = await box.attach({ onStdout: (d) => (got += d.toString('utf8')) });
    const others = [];
    try {
      for (let i = 0; i < 7; i++) others.push(await box.attach()); // 8 with b: the monitor's bound
      await assert.rejects(box.attach(), (e) => e instanceof ResourceExhaustedError && /already attached/.test(e.message));
    } finally {
      for (const o of others) {
        o.detach();
        assert.equal(await o.wait(), null);
      }
    }
    b.write('echo again $((1+1))\n');
    await until('the second attachment\'s output', () => got.includes('again 2'));
    b.write("trap 'exit 7' USR1; echo trapped\n");
    await until('the trap', () => got.includes('\ntrapped'));
    assert.throws(() => b.signal(65), InvalidArgumentError);
    b.signal('SIGUSR1'); // its trap ends it once its line editor returns
    b.write('\n');
    assert.equal(await b.wait(), 7);
    assert.equal(await box.wait({ timeoutMs: WAIT_MS }), 7); // its end stops the box (restart "no")
    await assert.rejects(box.attach(), (e) => e instanceof InvalidStateError && /not running/.test(e.message));
  });
});

describe('the WebSocket frames (no box)', () => {
  it('joins fragments, answers pings, ends at a close and refuses frames above the bound', async () => {
    const { FrameReader, MESSAGE_MAX, OP, clientFrame } = await import(path.join(path.dirname(SDK), 'websocket.js'));
    const frame = (op, data, fin = true) => Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | op, data.length]), data]);
    const r = new FrameReader();
    const seen = [];
    r.on('message', (op, d) => seen.push([op, d.toString()]));
    r.on('ping', (d) => seen.push(['ping', d.toString()]));
    r.on('close', () => seen.push(['close']));
    const bytes = Buffer.concat([frame(OP.binary, Buffer.from('\x01he'), false), frame(OP.ping, Buffer.from('p')),
      frame(OP.cont, Buffer.from('llo')), frame(OP.text, Buffer.from('{}')), frame(OP.close, Buffer.from([3, 232]))]);
    for (let i = 0; i < bytes.length; i++) r.feed(bytes.subarray(i, i + 1)); // byte by byte
    assert.deepEqual(seen, [['ping', 'p'], [OP.binary, '\x01hello'], [OP.text, '{}'], ['close']]);

    const big = new FrameReader();
    let err = null;
    big.on('error', (e) => (err = e));
    const head = Buffer.alloc(10);
    head[0] = 0x82;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(MESSAGE_MAX + 1), 2);
    big.feed(head);
    assert.match(err?.message ?? '', /at most/);

    const f = clientFrame(OP.text, Buffer.from('hi'));
    assert.equal(f[0], 0x80 | OP.text);
    assert.equal(f[1], 0x80 | 2); // masked, as a client must
    assert.equal(String.fromCharCode(f[6] ^ f[2], f[7] ^ f[3]), 'hi');
  });
});
