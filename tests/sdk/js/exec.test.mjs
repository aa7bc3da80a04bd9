// Commands through the JS SDK on a real box: collected and streamed output, stdin, env,
// cwd, user, timeouts, tty and resize, signals, many at once, runCode.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { SDK, vmMissing } from './helpers.mjs';

const { Box, ExecResult, InvalidArgumentError } = await import(SDK);
const skip = vmMissing() || false;

describe('exec', { skip }, () => {
  let box;
  before(async () => {
    box = await Box.create({ ephemeral: true, memory: '512M', env: { BOXVAR: 'from-create' } });
  });
  after(async () => {
    await box?.close();
  });

  it('collects stdout, stderr and the exit code of an argv', async () => {
    const r = await box.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.ok(r instanceof ExecResult);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(r.exitCode, 3);
    assert.equal(r.ok, false);
    assert.equal(r.status, 'completed');
    assert.ok(Buffer.isBuffer(r.stdoutBuffer));
  });

  it('runs a string through /bin/sh -c only when asked', async () => {
    const r = await box.exec('echo $((6*7)) | tr 4 X', { shell: true });
    assert.equal(r.stdout, 'X2\n');
    const r2 = await box.exec({ cmd: 'echo "$0-$1"', shell: true, args: ['a', 'b'] });
    assert.equal(r2.stdout, 'a-b\n');
    await assert.rejects(box.exec('echo hi'), TypeError);
    await assert.rejects(box.exec([]), TypeError);
  });

  it('gives binary output as bytes', async () => {
    const r = await box.exec(['python3', '-c', 'import sys; sys.stdout.buffer.write(bytes(range(256)))']);
    assert.deepEqual(r.stdoutBuffer, Buffer.from([...Array(256).keys()]));
  });

  it('takes env, cwd and user per command over the box defaults', async () => {
    let r = await box.exec(['sh', '-c', 'echo $BOXVAR $X; pwd; id -u']);
    assert.equal(r.stdout, 'from-create\n/\n0\n');
    r = await box.exec(['sh', '-c', 'echo $BOXVAR $X; pwd; id -u'], { env: { X: 42 }, cwd: '/tmp', user: '65534' });
    assert.equal(r.stdout, 'from-create 42\n/tmp\n65534\n');
  });

  it('reports a program that cannot start as 127', async () => {
    const r = await box.exec(['no-such-program']);
    assert.equal(r.exitCode, 127);
    assert.match(r.stderr, /no-such-program/);
  });

  it('feeds stdin from a string, a Buffer, a large Buffer and a stream; closes it by default', async () => {
    assert.equal((await box.exec(['cat'], { stdin: 'hello' })).stdout, 'hello');
    assert.equal((await box.exec(['cat'])).stdout, ''); // EOF at once: cat does not hang
    const big = crypto.randomBytes(3 << 20); // above what one request carries: streamed in parts
    const r = await box.exec(['sha256sum'], { stdin: big });
    assert.equal(r.stdout.split(' ')[0], crypto.createHash('sha256').update(big).digest('hex'));
    const r2 = await box.exec(['wc', '-l'], { stdin: Readable.from(['a\n', 'b\n', Buffer.from('c\n')]) });
    assert.equal(r2.stdout.trim(), '3');
  });

  it('writes stdin piece by piece to a spawned command', async () => {
    const p = await box.spawn(['cat'], { stdin: 'pipe' });
    await p.write('one ');
    await p.write(Buffer.from('two'));
    await p.closeStdin();
    const r = await p.wait();
    assert.equal(r.stdout, 'one two');
  });

  it('collects large output whole', async () => {
    const r = await box.exec(['sh', '-c', 'head -c 6000000 /dev/zero | tr "\\0" x']);
    assert.equal(r.stdoutBuffer.length, 6_000_000);
    assert.ok(r.stdoutBuffer.every((b) => b === 0x78));
  });

  it('streams output in order through the async iterator, with backpressure', async () => {
    const p = await box.spawn(['sh', '-c', 'for i in 1 2 3; do echo o$i; echo e$i >&2; sleep 0.05; done; head -c 3000000 /dev/zero']);
    const seen = [];
    let zeros = 0;
    for await (const ev of p) {
      if (ev.data[0] === 0) {
        zeros += ev.data.length;
        await new Promise((r) => setTimeout(r, 2)); // a slow reader
      } else seen.push(`${ev.stream}:${ev.data.toString()}`);
    }
    assert.deepEqual(seen.join('').replace(/\n/g, ' ').trim().split(' ').filter(Boolean).length, 6);
    assert.ok(seen.indexOf('stdout:o1\n') < seen.indexOf('stdout:o2\n'));
    assert.equal(zeros, 3_000_000);
    const r = await p.wait();
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, ''); // the iterator took it
  });

  it('gives lines and calls callbacks as output comes', async () => {
    const p = await box.spawn(['sh', '-c', 'printf "a\\nb\\nc"']);
    const lines = [];
    for await (const l of p.lines()) lines.push(l);
    assert.deepEqual(lines, ['a', 'b', 'c']);
    const got = { out: '', err: '' };
    const r = await box.exec(['sh', '-c', 'echo x; echo y >&2'], {
      onStdout: (b) => (got.out += b),
      onStderr: (b) => (got.err += b),
    });
    assert.deepEqual(got, { out: 'x\n', err: 'y\n' });
    assert.equal(r.stdout, 'x\n'); // exec collects as well
  });

  it('kills a command at its timeout', async () => {
    const r = await box.exec(['sleep', '30'], { timeout: 1 });
    assert.equal(r.timedOut, true);
    assert.equal(r.status, 'timed_out');
    assert.equal(r.exitCode, 137);
  });

  it('sends signals, kills, and honours an AbortSignal', async () => {
    let p = await box.spawn(['sh', '-c', 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.1; done']);
    for await (const l of p.lines()) if (l === 'ready') break;
    await p.signal('SIGTERM');
    let r = await p.wait();
    assert.equal(r.exitCode, 7);
    assert.match(r.stdout, /got-term/);
    p = await box.spawn(['sleep', '30']);
    await p.kill();
    r = await p.wait();
    assert.equal(r.status, 'killed');
    assert.equal(r.exitCode, 137);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    r = await box.exec(['sleep', '30'], { signal: ac.signal });
    assert.equal(r.status, 'killed');
    await assert.rejects(p.signal('SIGNOPE'), InvalidArgumentError);
  });

  it('runs on a terminal and follows resizes', async () => {
    const p = await box.spawn(['sh', '-c', 'stty size; read x; stty size; echo "[$x]"'], { tty: true, cols: 100, rows: 30 });
    let out = '';
    const it = p[Symbol.asyncIterator]();
    while (!out.includes('30 100')) out += (await it.next()).value.data.toString();
    await p.resize(120, 40);
    await p.write('typed\n');
    for (;;) {
      const n = await it.next();
      if (n.done) break;
      out += n.data?.toString() ?? n.value.data.toString();
    }
    assert.match(out, /30 100/);
    assert.match(out, /40 120/);
    assert.match(out, /\[typed\]/);
    const r = await p.wait();
    assert.equal(r.exitCode, 0);
  });

  it('runs many commands at once', async () => {
    const rs = await Promise.all([...Array(12).keys()].map((i) => box.exec(['sh', '-c', `sleep 0.2; echo ${i}`])));
    assert.deepEqual(
      rs.map((r) => r.stdout.trim()),
      [...Array(12).keys()].map(String),
    );
  });

  it('runs python and shell code', async () => {
    const r = await box.runCode('import sys\nprint(sum(range(10)), sys.version_info[0])');
    assert.equal(r.stdout, '45 3\n');
    const r2 = await box.runCode('echo $((1+2))', { language: 'shell' });
    assert.equal(r2.stdout, '3\n');
    const big = `s = "${'x'.repeat(200_000)}"\nprint(len(s))`; // above one argument's limit (the old API used a file)
    assert.equal((await box.runCode(big)).stdout, '200000\n');
    await assert.rejects(box.runCode('1', { language: 'cobol' }), InvalidArgumentError);
  });
});
