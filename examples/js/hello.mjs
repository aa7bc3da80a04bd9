// A box, a command, its result. Run from the repository: node examples/js/hello.mjs
// (installed: import { Box } from 'cocoon-sdk').
import { Box } from '../../sdk/js/src/index.js';

const box = await Box.create({ memory: '512M', env: { GREETING: 'hello' }, ephemeral: true });
try {
  const r = await box.exec(['sh', '-c', 'echo "$GREETING from $(uname -s)"; echo a warning >&2; exit 3']);
  console.log(`stdout: ${JSON.stringify(r.stdout)}`);
  console.log(`stderr: ${JSON.stringify(r.stderr)}`);
  console.log(`exit code: ${r.exitCode}`);
  const py = await box.runCode('import sys; print("python", sys.version.split()[0])');
  process.stdout.write(py.stdout);
} finally {
  await box.close(); // stops it; ephemeral, so it is removed
}
