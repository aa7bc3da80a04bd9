// Drives `cocoon serve` with BoxLite's published REST client (@boxlite-ai/boxlite, unmodified)
// and prints one JSON line per check: {"check", "ok", "detail", "ms"}. Run by
// tests/integration/test_serve_boxlite.py; alone:
//   BOXLITE_URL=http://127.0.0.1:8100 BOXLITE_TOKEN=... BOXLITE_NODE_MODULES=$(scripts/npm-deps) \
//   node tests/js/boxlite_acceptance.mjs
// Optional: BOXLITE_IMAGE (default "default"), BOXLITE_TMP (host scratch directory).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
for (const v of ['BOXLITE_URL', 'BOXLITE_TOKEN', 'BOXLITE_NODE_MODULES']) {
  if (!env[v]) {
    console.error(`boxlite_acceptance: set ${v}`);
    process.exit(2);
  }
}
const entry = path.join(env.BOXLITE_NODE_MODULES, '@boxlite-ai', 'boxlite', 'dist', 'index.js');
const { JsBoxlite, BoxliteRestOptions, ApiKeyCredential, SimpleBox } = await import(pathToFileURL(entry).href);

const IMAGE = env.BOXLITE_IMAGE || 'default';
const TMP = env.BOXLITE_TMP || fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-acc-'));
const BOOT_MS = 300_000; // a check that boots a box (QEMU without KVM is slow)
const STEP_MS = 120_000;

const connect = (token) =>
  JsBoxlite.rest(new BoxliteRestOptions({ url: env.BOXLITE_URL, credential: new ApiKeyCredential(token) }));
const rt = connect(env.BOXLITE_TOKEN);
const show = (x) => JSON.stringify(x, (k, v) => (typeof v === 'string' && v.length > 300 ? v.slice(0, 300) + '…' : v));

class CheckFailed extends Error {}
function expect(cond, what) {
  if (!cond) throw new CheckFailed(what);
}
function expectEq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new CheckFailed(`${what}: expected ${show(want)}, got ${show(got)}`);
}

const results = new Map();
// Runs one check with a deadline; a check whose prerequisite failed is reported, not run.
async function check(name, needs, fn, ms = STEP_MS) {
  const missing = needs.filter((n) => !results.get(n));
  if (missing.length) {
    results.set(name, false);
    console.log(JSON.stringify({ check: name, ok: false, detail: `not run: ${missing.join(', ')} failed` }));
    return;
  }
  const t0 = Date.now();
  let timer;
  let ok = false;
  let detail = '';
  try {
    const out = await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new CheckFailed(`no answer within ${ms / 1000} s`)), ms);
      }),
    ]);
    ok = true;
    detail = out === undefined ? '' : typeof out === 'string' ? out : show(out);
  } catch (e) {
    detail = e instanceof CheckFailed ? e.message : `threw ${e?.constructor?.name}: ${e?.message ?? e}`;
  } finally {
    clearTimeout(timer);
  }
  results.set(name, ok);
  console.log(JSON.stringify({ check: name, ok, detail, ms: Date.now() - t0 }));
}

async function expectThrow(fn, pattern, what) {
  try {
    const r = await fn();
    throw new CheckFailed(`${what}: expected an error matching ${pattern}, got ${show(r)}`);
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    expect(pattern.test(e.message), `${what}: expected an error matching ${pattern}, got ${show(e.message)}`);
    return e.message;
  }
}

async function drain(stream) {
  let s = '';
  for (let chunk; (chunk = await stream.next()) !== null; ) s += chunk;
  return s;
}

// Runs a command through box.exec: both streams drained concurrently, stdin written and
// closed when given. Returns {out, err, code, errorMessage}.
async function run(box, cmd, args = [], { env: e = null, cwd = null, timeout = null, stdin = null } = {}) {
  const ex = await box.exec(cmd, args, e, false, null, timeout, cwd);
  const [so, se] = [await ex.stdout(), await ex.stderr()];
  const reading = Promise.all([drain(so), drain(se)]);
  if (stdin !== null) {
    const w = await ex.stdin();
    for (const part of stdin) await (typeof part === 'string' ? w.writeString(part) : w.write(part));
    await w.close();
  }
  const [out, err] = await reading;
  const r = await ex.wait();
  return { out, err, code: r.exitCode, errorMessage: r.errorMessage ?? null };
}

// Reads a stream until its text so far contains `marker`; returns that text.
async function readUntil(stream, marker) {
  let s = '';
  while (!s.includes(marker)) {
    const chunk = await stream.next();
    if (chunk === null) throw new CheckFailed(`stream ended before ${show(marker)}; got ${show(s)}`);
    s += chunk;
  }
  return s;
}

const tag = `acc${process.pid}`;
const NAME = `${tag}-box`;
const SIMPLE = `${tag}-simple`;
let box = null;
let boxId = null;
let simpleId = null;

await check('wrong_token_refused', [], async () => {
  const msg = await expectThrow(() => connect('not-the-token-0123456789').listInfo(), /auth/, 'listInfo with a wrong token');
  return msg;
});

await check('create', [], async () => {
  box = await rt.create({ image: IMAGE, cpus: 1, memoryMib: 512, env: [{ key: 'ACC_GREETING', value: 'hello-env' }] }, NAME);
  boxId = box.id;
  expect(typeof boxId === 'string' && boxId.length > 0, `box.id is ${show(boxId)}`);
  expectEq(box.name, NAME, 'box.name');
  const info = await box.info();
  expect(['configured', 'running', 'stopped'].includes(info.state.status), `status after create: ${info.state.status}`);
  return { id: boxId, status: info.state.status, image: info.image };
}, BOOT_MS);

await check('duplicate_name_refused', ['create'], async () =>
  expectThrow(() => rt.create({ image: IMAGE }, NAME), /already exists/, 'create with a taken name'));

await check('get_info', ['create'], async () => {
  const byName = await rt.getInfo(NAME);
  expect(byName !== null, 'getInfo(name) returned null');
  expectEq(byName.id, boxId, 'getInfo(name).id');
  expectEq(byName.name, NAME, 'getInfo(name).name');
  expectEq(byName.cpus, 1, 'getInfo(name).cpus');
  expectEq(byName.memoryMib, 512, 'getInfo(name).memoryMib');
  const byId = await rt.getInfo(boxId);
  expect(byId !== null && byId.id === boxId, `getInfo(id) gave ${show(byId)}`);
  const handle = await rt.get(NAME);
  expect(handle !== null && handle.id === boxId, `get(name) gave ${show(handle && handle.id)}`);
  return { image: byName.image, status: byName.state.status, createdAt: byName.createdAt };
});

await check('list', ['create'], async () => {
  const all = await rt.listInfo();
  expect(Array.isArray(all), `listInfo gave ${show(all)}`);
  const mine = all.filter((b) => b.id === boxId);
  expectEq(mine.length, 1, `boxes with id ${boxId} in listInfo`);
  expectEq(mine[0].name, NAME, 'listed name');
  return `${all.length} box(es)`;
});

await check('start', ['create'], async () => {
  await box.start();
  const info = await rt.getInfo(boxId);
  expectEq(info.state.status, 'running', 'status after start');
  expectEq(info.state.running, true, 'state.running after start');
  await box.start(); // starting a running box is not an error (upstream: idempotent)
  return info.state;
}, BOOT_MS);

await check('exec_streams_and_exit_code', ['start'], async () => {
  const r = await run(box, 'sh', ['-c', 'echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; exit 7']);
  expectEq(r.out, 'out-1\nout-2\n', 'stdout');
  expectEq(r.err, 'err-1\nerr-2\n', 'stderr');
  expectEq(r.code, 7, 'exit code');
  expectEq(r.errorMessage, null, 'errorMessage');
  return r;
});

await check('exec_env_and_working_dir', ['start'], async () => {
  const r = await run(box, 'sh', ['-c', 'echo "$ACC_ONE|$ACC_GREETING"; pwd'], { env: [['ACC_ONE', 'one']], cwd: '/tmp' });
  expectEq(r.out, 'one|hello-env\n/tmp\n', 'stdout (exec env, box env, working dir)');
  expectEq(r.code, 0, 'exit code');
  return r.out;
});

await check('exec_stdin', ['start'], async () => {
  const r = await run(box, 'cat', [], { stdin: ['abc\n', Buffer.from('def\n')] });
  expectEq(r.out, 'abc\ndef\n', 'cat echoes stdin');
  expectEq(r.code, 0, 'exit code');
  const big = Buffer.alloc(300_000, 0x78);
  const chunks = [];
  for (let i = 0; i < big.length; i += 65536) chunks.push(big.subarray(i, i + 65536));
  const w = await run(box, 'wc', ['-c'], { stdin: chunks });
  expectEq(w.out.trim(), '300000', 'wc -c of 300000 stdin bytes');
  return 'cat and wc -c';
});

await check('exec_large_output', ['start'], async () => {
  const r = await run(box, 'sh', ['-c', "head -c 1000000 /dev/zero | tr '\\0' a; echo done >&2"]);
  expectEq(r.out.length, 1_000_000, 'stdout length');
  expect(/^a+$/.test(r.out), 'stdout is all "a"');
  expectEq(r.err, 'done\n', 'stderr');
  expectEq(r.code, 0, 'exit code');
  return '1000000 bytes';
});

// A command that cannot be started must say why to the caller: an error from exec, or a
// non-zero exit with the reason on stderr or in errorMessage (the client drops in-band
// {"type":"error"} frames).
await check('exec_missing_command', ['start'], async () => {
  let r;
  try {
    r = await run(box, 'no-such-command-acc', ['x']);
  } catch (e) {
    expect(/no-such-command-acc|not found|No such file/.test(e.message), `exec threw ${show(e.message)}`);
    return `exec threw: ${e.message}`;
  }
  expect(r.code !== 0, `exit code ${r.code}`);
  const why = `${r.err} ${r.errorMessage ?? ''}`;
  expect(/no-such-command-acc|not found|No such file/.test(why), `exit ${r.code} without a reason: stderr ${show(r.err)}, errorMessage ${show(r.errorMessage)}`);
  return r;
});

// The client gives up on an attach that sends nothing for 10 s (then reattaches after 15 s):
// output of a command quiet for longer must still arrive, with its exit code.
await check('exec_quiet_command', ['start'], async () => {
  const r = await run(box, 'sh', ['-c', 'sleep 12; echo late; exit 3']);
  expectEq(r.out, 'late\n', 'stdout');
  expectEq(r.code, 3, 'exit code');
  expectEq(r.errorMessage, null, 'errorMessage');
  return r;
});

await check('exec_signal', ['start'], async () => {
  const ex = await box.exec('sh', ['-c', 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.2; done']);
  const [so, se] = [await ex.stdout(), await ex.stderr()];
  const errText = drain(se);
  let out = await readUntil(so, 'ready');
  await ex.signal(15);
  out += await drain(so);
  const r = await ex.wait();
  expectEq(out, 'ready\ngot-term\n', 'stdout');
  expectEq(r.exitCode, 42, 'exit code after SIGTERM');
  await errText;
  return { out, exitCode: r.exitCode };
});

const countSleeps = "n=0; for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null | grep -q '^sleep 313' && n=$((n+1)); done; echo $n";

await check('exec_kill', ['start'], async () => {
  // sleep is a child of the shell: the kill must take the command's children too.
  const ex = await box.exec('sh', ['-c', 'echo ready; sleep 313; echo not-reached']);
  const so = await ex.stdout();
  await readUntil(so, 'ready');
  const before = await run(box, 'sh', ['-c', countSleeps]);
  expectEq(before.out, '1\n', 'sleep 313 processes before the kill');
  await ex.kill();
  const r = await ex.wait();
  expect(r.exitCode !== 0, `exit code after kill is ${r.exitCode}`);
  const after = await run(box, 'sh', ['-c', countSleeps]);
  expectEq(after.out, '0\n', 'sleep 313 processes after the kill');
  return { exitCode: r.exitCode, errorMessage: r.errorMessage ?? null };
});

const hostDir = path.join(TMP, 'host');
fs.rmSync(hostDir, { recursive: true, force: true });
fs.mkdirSync(path.join(hostDir, 'indir', 'sub'), { recursive: true });
fs.writeFileSync(path.join(hostDir, 'in.txt'), 'file-content\n');
fs.writeFileSync(path.join(hostDir, 'indir', 'a.txt'), 'A\n');
fs.writeFileSync(path.join(hostDir, 'indir', 'sub', 'b.txt'), 'B\n');
const binary = Buffer.alloc(200_000);
for (let i = 0; i < binary.length; i++) binary[i] = (i * 7919) & 0xff;
fs.writeFileSync(path.join(hostDir, 'indir', 'sub', 'blob.bin'), binary);

await check('copy_in_file', ['start'], async () => {
  await box.copyIn(path.join(hostDir, 'in.txt'), '/root/');
  const r = await run(box, 'cat', ['/root/in.txt']);
  expectEq(r.out, 'file-content\n', 'cat /root/in.txt');
  expectEq(r.code, 0, 'exit code of cat');
  return 'copyIn(in.txt, /root/)';
});

await check('copy_in_dir', ['start'], async () => {
  await box.copyIn(path.join(hostDir, 'indir'), '/root/indir');
  const r = await run(box, 'sh', ['-c', 'cat /root/indir/a.txt /root/indir/sub/b.txt; wc -c < /root/indir/sub/blob.bin']);
  expectEq(r.out, 'A\nB\n200000\n', 'contents under /root/indir');
  return 'copyIn(indir, /root/indir)';
});

await check('copy_in_overwrites', ['copy_in_file'], async () => {
  const other = path.join(TMP, 'host2');
  fs.mkdirSync(other, { recursive: true });
  fs.writeFileSync(path.join(other, 'in.txt'), 'second\n');
  await box.copyIn(path.join(other, 'in.txt'), '/root/');
  const r = await run(box, 'cat', ['/root/in.txt']);
  expectEq(r.out, 'second\n', 'cat /root/in.txt after a second copyIn');
  return 'overwritten';
});

await check('copy_out_file', ['copy_in_dir'], async () => {
  const dest = path.join(TMP, 'out', 'blob.bin');
  await box.copyOut('/root/indir/sub/blob.bin', dest);
  expect(fs.statSync(dest).isFile(), `${dest} is not a file`);
  expect(fs.readFileSync(dest).equals(binary), `${dest} differs from what was copied in`);
  return dest;
});

await check('copy_out_dir', ['copy_in_dir'], async () => {
  const dest = path.join(TMP, 'out', 'dir');
  await box.copyOut('/root/indir', dest);
  // Both layouts are BoxLite's: entries relative to the directory, or under its name
  // (docker-cp semantics, what upstream's reference server sends).
  const base = fs.existsSync(path.join(dest, 'a.txt')) ? dest : path.join(dest, 'indir');
  const found = fs.readdirSync(dest, { recursive: true }).sort();
  expect(fs.existsSync(path.join(base, 'a.txt')), `no a.txt under ${dest}: found ${show(found)}`);
  expectEq(fs.readFileSync(path.join(base, 'a.txt'), 'utf8'), 'A\n', 'a.txt');
  expectEq(fs.readFileSync(path.join(base, 'sub', 'b.txt'), 'utf8'), 'B\n', 'sub/b.txt');
  expect(fs.readFileSync(path.join(base, 'sub', 'blob.bin')).equals(binary), 'sub/blob.bin differs');
  return base === dest ? 'layout: contents at hostDest' : 'layout: hostDest/indir/...';
});

await check('copy_out_missing_path', ['start'], async () =>
  expectThrow(() => box.copyOut('/root/no-such-file', path.join(TMP, 'out', 'none')), /not found/, 'copyOut of a missing path'));

await check('box_metrics', ['exec_streams_and_exit_code'], async () => {
  const m = await box.metrics();
  for (const k of ['commandsExecutedTotal', 'execErrorsTotal', 'bytesSentTotal', 'bytesReceivedTotal'])
    expect(Number.isInteger(m[k]) && m[k] >= 0, `${k} is ${show(m[k])}`);
  expect(m.commandsExecutedTotal >= 5, `commandsExecutedTotal is ${m.commandsExecutedTotal} after at least 5 execs`);
  return m;
});

await check('runtime_metrics', ['start'], async () => {
  const m = await rt.metrics();
  for (const k of ['boxesCreatedTotal', 'boxesFailedTotal', 'numRunningBoxes', 'totalCommandsExecuted', 'totalExecErrors'])
    expect(Number.isInteger(m[k]) && m[k] >= 0, `${k} is ${show(m[k])}`);
  expect(m.boxesCreatedTotal >= 1, `boxesCreatedTotal is ${m.boxesCreatedTotal}`);
  const info = await rt.getInfo(boxId);
  expect(m.numRunningBoxes >= 1, `numRunningBoxes is ${m.numRunningBoxes} while box ${boxId} is ${show(info && info.state)}: ${show(m)}`);
  if (results.get('exec_streams_and_exit_code'))
    expect(m.totalCommandsExecuted >= 1, `totalCommandsExecuted is ${m.totalCommandsExecuted}`);
  return m;
});

await check('stop', ['start'], async () => {
  await box.stop();
  const info = await rt.getInfo(boxId);
  expectEq(info.state.status, 'stopped', 'status after stop');
  expectEq(info.state.running, false, 'state.running after stop');
  return info.state;
}, BOOT_MS);

await check('remove', ['create'], async () => {
  await rt.remove(boxId);
  expectEq(await rt.getInfo(boxId), null, 'getInfo after remove');
  expectEq(await rt.get(NAME), null, 'get(name) after remove');
  const all = await rt.listInfo();
  expect(!all.some((b) => b.id === boxId), 'the removed box is still listed');
  return 'gone';
});

await check('missing_box', [], async () => {
  expectEq(await rt.getInfo('no-such-box-acc'), null, 'getInfo of a missing box');
  expectEq(await rt.get('no-such-box-acc'), null, 'get of a missing box');
  const msg = await expectThrow(() => rt.remove('no-such-box-acc'), /^box not found: /, 'remove of a missing box');
  if (results.get('remove')) await expectThrow(() => box.start(), /^box not found: /, 'start of a removed box');
  return msg;
});

await check('simplebox', [], async () => {
  const sb = new SimpleBox({ runtime: rt, image: IMAGE, name: SIMPLE, memoryMib: 512 });
  try {
    const a = await sb.exec('echo', 'hello', 'simple');
    expectEq(a, { exitCode: 0, stdout: 'hello simple\n', stderr: '' }, 'exec(echo, hello, simple)');
    simpleId = sb.id;
    const b = await sb.exec('sh', ['-c', 'echo "$S_VAR"; pwd; echo oops >&2; exit 5'], { S_VAR: 'from-env' }, { cwd: '/tmp' });
    expectEq(b, { exitCode: 5, stdout: 'from-env\n/tmp\n', stderr: 'oops\n' }, 'exec with env and cwd');
    const info = await sb.info();
    expectEq(info.state.status, 'running', 'SimpleBox status after exec');
  } finally {
    await sb.stop();
  }
  const after = await rt.getInfo(SIMPLE);
  expect(after !== null && after.state.status === 'stopped', `SimpleBox after stop: ${show(after && after.state)}`);
  await rt.remove(SIMPLE);
  return simpleId;
}, BOOT_MS);

// Leaves nothing behind, whatever failed above.
for (const id of [boxId, SIMPLE]) {
  if (!id) continue;
  try {
    if (await rt.getInfo(id)) await rt.remove(id, true);
  } catch (e) {
    console.error(`cleanup of ${id}: ${e.message}`);
  }
}
console.log(JSON.stringify({ done: true, passed: [...results.values()].filter(Boolean).length, total: results.size }));
process.exit(0);
