// box.runCode over cocoon's code interpreter on a real box: state kept across runs, an
// error with its traceback, streaming callbacks (and one that throws), a timeout that
// keeps the context, env, contexts (create, list, restart, remove), abort, the Sandbox
// alias; pandas/matplotlib/javascript when the code-interpreter image is built.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO, SDK, vmMissing } from './helpers.mjs';

const { Box, CodeError, CodeExecution, InvalidArgumentError, NotFoundError, Result, Sandbox, UnsupportedError } =
  await import(SDK);
const skip = vmMissing() || false;
const SHARE = process.env.COCOON_SHARE_DIR || path.join(REPO, 'build', 'share', 'cocoon');

describe('runCode', { skip }, () => {
  let box;
  before(async () => {
    box = await Box.create({ ephemeral: true, memory: '512M' });
  });
  after(async () => {
    await box?.close();
  });

  it('keeps state across runs and returns the last value', async () => {
    assert.deepEqual((await box.runCode('x = 20')).results, []);
    const ex = await box.runCode("import os\nos.chdir('/tmp')\nprint('in', os.getcwd())\nx + 22");
    assert.ok(ex instanceof CodeExecution);
    assert.equal(ex.text, '42');
    assert.deepEqual(ex.logs.stdout, ['in /tmp\n']);
    assert.equal(ex.stdout, 'in /tmp\n');
    assert.equal(ex.error, null);
    assert.ok(ex.results[0] instanceof Result);
    assert.equal(ex.results[0].isMainResult, true);
    assert.deepEqual(ex.results[0].formats(), ['text']);
    const later = await box.runCode('os.getcwd()');
    assert.equal(later.text, "'/tmp'");
    assert.ok(later.executionCount > ex.executionCount);
  });

  it('returns an error with its traceback, keeping the context', async () => {
    const ex = await box.runCode('def f():\n    return 1 / 0\nf()');
    assert.ok(ex.error instanceof CodeError);
    assert.equal(ex.error.name, 'ZeroDivisionError');
    assert.equal(ex.error.value, 'division by zero');
    assert.match(ex.error.traceback, /line 2, in f/);
    assert.equal(ex.text, undefined);
    assert.equal((await box.runCode('1 + 1')).text, '2');
  });

  it('streams output, results and errors to callbacks', async () => {
    const seen = [];
    const code = "import sys, time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.2)\nsys.stderr.write('warn\\n')\n'done'";
    const ex = await box.runCode(code, {
      onStdout: (t) => seen.push(['out', t]),
      onStderr: (t) => seen.push(['err', t]),
      onResult: (r) => seen.push(['result', r.text]),
    });
    assert.equal(seen.filter(([k]) => k === 'out').map(([, t]) => t).join(''), 'tick 0\ntick 1\ntick 2\n');
    assert.deepEqual(seen.at(-1), ['result', "'done'"]);
    assert.ok(seen.some(([k, t]) => k === 'err' && t === 'warn\n'));
    assert.equal(ex.text, "'done'");
    const errors = [];
    await box.runCode("raise ValueError('bad')", { onError: (e) => errors.push(`${e.name}: ${e.value}`) });
    assert.deepEqual(errors, ['ValueError: bad']);
  });

  it('a callback that throws interrupts the run and rejects with its error', async () => {
    const boom = new Error('stop here');
    await assert.rejects(
      box.runCode("import time\nprint('first', flush=True)\ntime.sleep(30)", { onStdout: () => { throw boom; }, timeoutMs: 60_000 }),
      (e) => e === boom,
    );
    assert.equal((await box.runCode("'alive'")).text, "'alive'");
  });

  it('an abort signal interrupts the run', async () => {
    const ac = new AbortController();
    const p = box.runCode("import time\nprint('go', flush=True)\ntime.sleep(30)", { signal: ac.signal, onStdout: () => ac.abort() });
    await assert.rejects(p, (e) => e.name === 'AbortError');
    assert.equal((await box.runCode("'still here'")).text, "'still here'");
  });

  it('a timeout interrupts the run and keeps the context', async () => {
    await box.runCode("kept = 'yes'");
    const ex = await box.runCode('while True: pass', { timeoutMs: 2000 });
    assert.equal(ex.error?.name, 'KeyboardInterrupt');
    assert.equal((await box.runCode('kept')).text, "'yes'");
  });

  it('sets env for one run', async () => {
    assert.equal((await box.runCode("import os\nos.environ.get('GREETING')", { env: { GREETING: 'hi' } })).text, "'hi'");
  });

  it('creates, lists, restarts and removes contexts', async () => {
    const ctx = await box.createCodeContext({ language: 'python', cwd: '/etc' });
    assert.equal(ctx.language, 'python');
    assert.equal(ctx.cwd, '/etc');
    assert.ok((await box.listCodeContexts()).some((c) => c.id === ctx.id));
    await box.runCode('y = 5', { context: ctx });
    assert.equal((await box.runCode('y * 2', { context: ctx.id })).text, '10');
    assert.equal((await box.runCode("'y' in dir()")).text, 'False');
    await box.restartCodeContext(ctx);
    assert.equal((await box.runCode('y', { context: ctx })).error.name, 'NameError');
    await box.removeCodeContext(ctx.id);
    assert.ok(!(await box.listCodeContexts()).some((c) => c.id === ctx.id));
    await assert.rejects(box.runCode('1', { context: ctx }), NotFoundError);
    await assert.rejects(box.removeCodeContext('no-such-context'), NotFoundError);
  });

  it('keeps the old simple uses working: print, shell, bad language', async () => {
    assert.equal((await box.runCode('print(1)')).stdout, '1\n');
    assert.equal((await box.runCode('echo $((2 + 3))', { language: 'shell' })).stdout, '5\n');
    await box.runCode('cd /etc && N=7', { language: 'bash' });
    assert.equal((await box.runCode('echo "$N in $PWD"', { language: 'sh' })).stdout, '7 in /etc\n');
    await assert.rejects(box.runCode('x', { language: 'cobol' }), InvalidArgumentError);
    await assert.rejects(box.runCode('1', { language: 'javascript' }), (e) => e instanceof UnsupportedError && /code-interpreter/.test(e.message));
  });

  it('Sandbox.run is runCode', async () => {
    const sb = await Sandbox.create({ memory: '512M' });
    try {
      const r = await sb.run('print(sum(range(10)))');
      assert.ok(r instanceof CodeExecution);
      assert.equal(r.stdout, '45\n');
    } finally {
      await sb.kill();
    }
  });

  it('returns HTML, PNG and javascript results in the code-interpreter image', async (t) => {
    if (!fs.existsSync(path.join(SHARE, 'images', 'code-interpreter.ext4')))
      return t.skip('the code-interpreter image is not built (make code-image)');
    const ci = await Box.create({ image: 'code-interpreter', ephemeral: true, memory: '1G' });
    try {
      const df = await ci.runCode("import pandas as pd\npd.DataFrame({'a': [1, 2]})");
      assert.match(df.results[0].html, /<table/);
      const fig = await ci.runCode('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()');
      assert.ok(fig.results.some((r) => r.png));
      assert.equal((await ci.runCode('[1, 2].length', { language: 'javascript' })).text, '2');
    } finally {
      await ci.close();
    }
  });
});
