#!/usr/bin/env node
// JS SDK benchmark (issue 13): exec `true` through the SDK (box.exec) vs a raw REST
// client doing the same calls with plain node:http (POST .../exec with stdin closed,
// then GET .../output read to its exit line) on the same server, box and socket, each
// with its own kept-alive connection. Turns interleave (the order flips each round) so
// the shared machine's noise hits both alike. Also, for reference, the one-request
// POST .../run. Goal: SDK / raw <= 1.2.
//
// Usage: node bench/sdk_js.mjs [--rounds 10] [--per-round 20] [--write]
// (COCOON_BIN_DIR picks the build; --write replaces the section of bench/RESULTS.md.)
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { Box, Cocoon } from '../sdk/js/src/index.js';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const ROUNDS = opt('--rounds', 10);
const PER = opt('--per-round', 20);
const WRITE = args.includes('--write');
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const home = fs.mkdtempSync('/tmp/cocoon-bench-js-');
process.env.COCOON_HOME = home;
const client = new Cocoon({ env: { ...process.env, COCOON_HOME: home } });
const box = await Box.create({ client, ephemeral: true });
const socketPath = client.address.slice('unix:'.length);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

function raw(method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {};
    const req = http.request({ socketPath, method, path: p, agent, headers }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function rawExec() {
  const r = await raw('POST', `/v1/boxes/${box.id}/exec`, { command: 'true', stdin_base64: '' });
  const id = JSON.parse(r.body).execution_id;
  const out = await raw('GET', `/v1/boxes/${box.id}/executions/${id}/output`);
  const last = JSON.parse(out.body.trim().split('\n').pop());
  if (last.type !== 'exit' || last.exit_code !== 0) throw new Error(`raw exec: ${out.body}`);
}

async function rawRun() {
  const r = await raw('POST', `/v1/boxes/${box.id}/run`, { command: 'true' });
  if (JSON.parse(r.body).exit_code !== 0) throw new Error(`raw run: ${r.body}`);
}

async function sdkExec() {
  const r = await box.exec(['true']);
  if (r.exitCode !== 0) throw new Error('sdk exec failed');
}

const variants = { sdk: sdkExec, raw: rawExec, run: rawRun };
const times = { sdk: [], raw: [], run: [] };
const roundRatio = [];
for (let i = 0; i < 5; i++) for (const f of Object.values(variants)) await f(); // warm-up
const loadBefore = os.loadavg()[0];
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 ? ['raw', 'sdk', 'run'] : ['sdk', 'raw', 'run'];
  const mine = { sdk: [], raw: [], run: [] };
  for (let i = 0; i < PER; i++) {
    for (const v of order) {
      const t0 = process.hrtime.bigint();
      await variants[v]();
      mine[v].push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  for (const v of order) times[v].push(...mine[v]);
  roundRatio.push(median(mine.sdk) / median(mine.raw));
}
const loadAfter = os.loadavg()[0];
await box.close();
await client.close();
agent.destroy();
fs.rmSync(home, { recursive: true, force: true });

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}
function q(a, p) {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
}
const f1 = (x) => x.toFixed(1);
const base = median(times.raw);
const rows = [
  ['JS SDK `box.exec(["true"])`', 'sdk', 'POST /exec, GET /output (NDJSON) to the exit line, through the SDK'],
  ['raw REST client (baseline)', 'raw', 'the same two requests with plain node:http on a kept-alive unix-socket connection'],
  ['raw REST `POST /run` (reference)', 'run', 'one request, run to completion (collected output, capped)'],
];
const sortedRatios = [...roundRatio].sort((a, b) => a - b);
let md = `One running box (default image, 1 vCPU, 512 MiB), one \`cocoon serve\` on a unix socket (the SDK's private one); exec \`true\` in ${ROUNDS} interleaved rounds of ${PER} each (the order flips every round).\n\n`;
md += '| exec `true` | median (ms) | p25–p75 | min–max | / raw | what |\n|---|---|---|---|---|---|\n';
for (const [label, k, what] of rows) {
  const t = times[k];
  md += `| ${label} | ${f1(median(t))} | ${f1(q(t, 0.25))}–${f1(q(t, 0.75))} | ${f1(Math.min(...t))}–${f1(Math.max(...t))} | ${(median(t) / base).toFixed(2)} | ${what} |\n`;
}
md += `\nSDK / raw, median of each round: ${sortedRatios.map((r) => r.toFixed(2)).join(' ')} (median **${median(roundRatio).toFixed(2)}**, goal ≤ 1.2).\n\n`;
let qemu = '';
try {
  qemu = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0];
} catch {
  qemu = 'qemu not found';
}
const cmd = `node bench/sdk_js.mjs --rounds ${ROUNDS} --per-round ${PER}${WRITE ? ' --write' : ''}`;
md += `Command: \`${cmd}\`. Date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. Node ${process.versions.node}.\n`;
md += `Machine: ${os.cpus().length} cores, Linux ${os.release()}, ${qemu}, accel tcg; load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (shared machine: absolute numbers are noisy, ratios less so).\n`;
process.stdout.write(md);

if (WRITE) {
  const file = path.join(REPO, 'bench', 'RESULTS.md');
  const title = '## JS SDK: exec through the SDK vs a raw REST client';
  let text = fs.readFileSync(file, 'utf8');
  const section = `${title}\n\n${md.trim()}\n`;
  const at = text.indexOf(title);
  if (at >= 0) {
    const next = text.indexOf('\n## ', at + title.length);
    text = text.slice(0, at) + section + (next >= 0 ? text.slice(next) : '');
  } else text = text.replace(/\n*$/, '\n\n') + section;
  fs.writeFileSync(file, text);
}
