// The aliases for people coming from other sandbox SDKs: Sandbox.create(image) is an
// ephemeral Box, sb.run(code) runs Python (runCode: a CodeExecution), sb.kill() removes it.
// Run: node examples/js/sandbox.mjs
import { Sandbox } from '../../sdk/js/src/index.js';

const sb = await Sandbox.create('default');
try {
  const r = await sb.run('print(6 * 7)');
  console.log(r.stdout.trim());
} finally {
  await sb.kill();
}
