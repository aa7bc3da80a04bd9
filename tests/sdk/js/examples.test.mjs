// examples/js/*.mjs run as a person would run them: each exits 0 and prints what its
// comments promise.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { REPO, vmMissing } from './helpers.mjs';

const DIR = path.join(REPO, 'examples', 'js');
const expect = {
  'hello.mjs': /stdout: "hello from Linux\\n"\nstderr: "a warning\\n"\nexit code: 3\npython 3\./,
  'stream.mjs': /\[stdout\] tick 1\n\[stdout\] tick 2\n\[stdout\] tick 3\n\[stderr\] done\nexit 0\nPIPED THROUGH THE BOX\ncaught TERM\njob 1, job 2, job 3, job 4\n/,
  'files.mjs': /app.py says \{"sum": 45\}\ndownloaded: out.txt src\nout.txt: 10\n/,
  'sandbox.mjs': /^42\n$/,
  'code.mjs': /^streamed: in \/tmp\ntext: 42 \| stdout: \["in \/tmp\\n"\] \| count: 2\nerror: ZeroDivisionError: division by zero\ntimeout: KeyboardInterrupt \| x is still 20\n\d+ entries in \/etc\n$/,
};

describe('examples/js', { skip: vmMissing() || false }, () => {
  const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.mjs')).sort();
  it('has an expectation for every example', () => {
    assert.deepEqual(files, Object.keys(expect).sort());
  });
  for (const f of files) {
    it(f, () => {
      const r = spawnSync(process.execPath, [path.join(DIR, f)], { encoding: 'utf8', timeout: 180_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, expect[f]);
    });
  }
});
