// BoxLite's published Node client (@boxlite-ai/boxlite), unmodified, driving cocoon serve.
//   COCOON_URL=http://127.0.0.1:8100 COCOON_TOKEN=$(cat ~/.local/share/cocoon/serve.token) \
//   node examples/api/boxlite_client.mjs
// (with the package installed: npm install @boxlite-ai/boxlite@0.10.0, or NODE_PATH set to
// the node_modules that scripts/npm-deps prints)
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { JsBoxlite, BoxliteRestOptions, ApiKeyCredential } = require('@boxlite-ai/boxlite');

const rt = JsBoxlite.rest(new BoxliteRestOptions({
  url: process.env.COCOON_URL ?? 'http://127.0.0.1:8100',
  credential: new ApiKeyCredential(process.env.COCOON_TOKEN),
}));
const box = await rt.create({ image: 'default', cpus: 1, memoryMib: 512 }, 'from-boxlite');
const ex = await box.exec('python3', ['-c', 'import platform; print("python", platform.python_version())']);
const stdout = await ex.stdout();
for (let chunk; (chunk = await stdout.next()) !== null; ) process.stdout.write(chunk);
console.log('exit code', (await ex.wait()).exitCode);
console.log('boxes:', (await rt.listInfo()).map((b) => `${b.name} ${b.state.status}`).join(', '));
await rt.remove(box.id, true);
