// The client side of bench/e2b_bench.py: on one sandbox, E2B's `commands.run('true')`
// (the published e2b SDK) vs the native REST exec of `true` (POST /v1/boxes/{id}/run
// with fetch, the same Node HTTP stack, kept-alive), and the REST exec of what the SDK
// really runs (`/bin/bash -l -c true`), interleaved in rounds. Prints one JSON object:
// {"e2b": [ms...], "rest": [ms...], "rest_login": [ms...]}.
// Env: E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY, E2B_NODE_MODULES, ROUNDS, PER_ROUND.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
const { Sandbox } = await import(pathToFileURL(path.join(env.E2B_NODE_MODULES, 'e2b', 'dist', 'index.mjs')).href);
const rounds = Number(env.ROUNDS || 10);
const perRound = Number(env.PER_ROUND || 20);

const sbx = await Sandbox.create('base', { timeoutMs: 3_600_000 });
const rest = (body) => async () => {
  const r = await fetch(`${env.E2B_API_URL}/v1/boxes/${sbx.sandboxId}/run`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.E2B_API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  if (r.status !== 200 || answer.exit_code !== 0) throw new Error(`REST run: ${r.status} ${JSON.stringify(answer)}`);
};
const restRun = rest({ command: 'true' });
// The same guest work as commands.run('true'): the SDK runs `/bin/bash -l -c CMD`.
const restLogin = rest({ command: '/bin/bash', args: ['-l', '-c', 'true'] });
const e2bRun = async () => {
  const r = await sbx.commands.run('true');
  if (r.exitCode !== 0) throw new Error(`commands.run: ${r.exitCode}`);
};
const out = { e2b: [], rest: [], rest_login: [] };
const variants = [['e2b', e2bRun], ['rest', restRun], ['rest_login', restLogin]];
for (let i = 0; i < 5; i++) for (const [, fn] of variants) await fn();
for (let round = 0; round < rounds; round++) {
  const order = variants.slice(round % 3).concat(variants.slice(0, round % 3));
  for (const [name, fn] of order) {
    for (let i = 0; i < perRound; i++) {
      const t0 = performance.now();
      await fn();
      out[name].push(performance.now() - t0);
    }
  }
}
await sbx.kill();
console.log(JSON.stringify(out));
