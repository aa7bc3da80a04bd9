// E2B code, unmodified, running in cocoon: the published `e2b` SDK pointed at
// `cocoon serve` by E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY (the server's token).
//   E2B_API_URL=http://127.0.0.1:8100 E2B_SANDBOX_URL=http://127.0.0.1:8100 \
//   E2B_API_KEY=$(cat ~/.local/share/cocoon/serve.token) node examples/api/e2b_client.mjs
// (with `npm install e2b`, or NODE_PATH=$(scripts/npm-deps) from a checkout).
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), 'x.js'));
const { Sandbox } = require(process.env.NODE_PATH ? path.join(process.env.NODE_PATH, 'e2b') : 'e2b');

const sbx = await Sandbox.create('base', { timeoutMs: 120_000, metadata: { from: 'example' } });
const r = await sbx.commands.run('uname -sm; python3 -c "print(6 * 7)"');
console.log(r.stdout.trim());
await sbx.files.write('/tmp/hello.txt', 'hello from E2B code');
console.log(await sbx.files.read('/tmp/hello.txt'));
try {
  await sbx.commands.run('ls /nowhere');
} catch (e) {
  console.log(`${e.constructor.name}: exit ${e.exitCode}: ${e.stderr.trim()}`);
}
const info = await sbx.getInfo();
console.log(`sandbox ${info.sandboxId} (${info.templateId}) ends at ${info.endAt.toISOString()}`);
await sbx.kill();
