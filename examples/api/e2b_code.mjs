// E2B code-interpreter code, unmodified, running in cocoon: the published
// `@e2b/code-interpreter` SDK pointed at `cocoon serve` as in e2b_client.mjs.
//   E2B_API_URL=http://127.0.0.1:8100 E2B_SANDBOX_URL=http://127.0.0.1:8100 \
//   E2B_API_KEY=$(cat ~/.local/share/cocoon/serve.token) node examples/api/e2b_code.mjs
// (with `npm install @e2b/code-interpreter`, or NODE_PATH=$(scripts/npm-deps) from a checkout).
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), 'x.js'));
const pkg = '@e2b/code-interpreter';
const { Sandbox } = require(process.env.NODE_PATH ? path.join(process.env.NODE_PATH, pkg) : pkg);

const sbx = await Sandbox.create('code-interpreter-v1', { timeoutMs: 300_000 });
await sbx.runCode('import pandas as pd\nx = 21');
console.log('x * 2 =', (await sbx.runCode('x * 2')).text); // the context kept x
const df = await sbx.runCode("pd.DataFrame({'n': [1, 2], 'sq': [1, 4]})");
console.log('DataFrame:', df.results[0].formats().join('+'), df.results[0].html.includes('<table') ? '(an HTML table)' : '');
const failed = await sbx.runCode('1 / 0');
console.log(`${failed.error.name}: ${failed.error.value}`);
const chart = await sbx.runCode('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()');
console.log('chart:', chart.results.map((r) => r.formats().join('+')).join(', '),
  `(${Buffer.from(chart.results[0].png, 'base64').length} bytes of PNG)`);
await sbx.kill();
