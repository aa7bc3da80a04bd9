// Files in and out of a box: one file, then a whole directory tree. Run: node examples/js/files.mjs
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Box } from '../../sdk/js/src/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cocoon-example-'));
const box = await Box.create({ ephemeral: true });
try {
  await box.fs.writeFile('/work/app.py', 'import json\nprint(json.dumps({"sum": sum(range(10))}))\n');
  const r = await box.exec(['python3', 'app.py'], { cwd: '/work' });
  console.log('app.py says', r.stdout.trim());

  fs.mkdirSync(path.join(tmp, 'proj', 'src'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'proj', 'src', 'data.txt'), 'some data\n');
  await box.fs.upload(path.join(tmp, 'proj'), '/work/proj');
  await box.exec(['sh', '-c', 'wc -c < src/data.txt > out.txt'], { cwd: '/work/proj' });
  await box.fs.download('/work/proj', path.join(tmp, 'back'));
  console.log('downloaded:', fs.readdirSync(path.join(tmp, 'back')).sort().join(' '));
  console.log('out.txt:', fs.readFileSync(path.join(tmp, 'back', 'out.txt'), 'utf8').trim());
} finally {
  await box.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
