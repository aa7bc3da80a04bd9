// Drives cocoon's E2B-compatible front with E2B's published SDKs (e2b and
// @e2b/code-interpreter, unmodified, pinned in tests/js/package.json), pointed at a
// cocoon-serve by E2B_API_URL/E2B_SANDBOX_URL/E2B_API_KEY, and prints one JSON line per
// check: {"check", "ok", "detail", "ms"} ("skip": a reason, when the server says the
// feature is not there). Run by tests/integration/test_e2b.py; alone:
//   E2B_API_URL=http://127.0.0.1:8100 E2B_SANDBOX_URL=http://127.0.0.1:8100 E2B_API_KEY=TOKEN \
//   E2B_NODE_MODULES=$(scripts/npm-deps) node tests/js/e2b_acceptance.mjs
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
for (const v of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'E2B_NODE_MODULES']) {
  if (!env[v]) {
    console.error(`e2b_acceptance: set ${v}`);
    process.exit(2);
  }
}
const load = async (pkg) => import(pathToFileURL(path.join(env.E2B_NODE_MODULES, pkg, 'dist', 'index.mjs')).href);
const e2b = await load('e2b');
const ci = await load('@e2b/code-interpreter');
const { Sandbox, SandboxError, CommandExitError, NotFoundError, AuthenticationError } = e2b;

const BOOT_MS = 300_000; // a check that boots a box (QEMU without KVM is slow)
const STEP_MS = 120_000;
const show = (x) => JSON.stringify(x, (k, v) => (typeof v === 'string' && v.length > 300 ? v.slice(0, 300) + '…' : v));

class CheckFailed extends Error {}
class Skip extends Error {}
const expect = (cond, what) => {
  if (!cond) throw new CheckFailed(what);
};
const expectEq = (got, want, what) => {
  if (JSON.stringify(got) !== JSON.stringify(want))
    throw new CheckFailed(`${what}: expected ${show(want)}, got ${show(got)}`);
};

const results = new Map();
async function check(name, needs, fn, ms = STEP_MS) {
  const missing = needs.filter((n) => !results.get(n));
  if (missing.length) {
    results.set(name, false);
    console.log(JSON.stringify({ check: name, ok: false, detail: `not run: ${missing.join(', ')} failed` }));
    return;
  }
  const t0 = Date.now();
  let timer;
  let rec = { check: name, ok: false, detail: '' };
  try {
    const out = await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new CheckFailed(`no answer within ${ms / 1000} s`)), ms);
      }),
    ]);
    rec.ok = true;
    rec.detail = out === undefined ? '' : typeof out === 'string' ? out : show(out);
  } catch (e) {
    if (e instanceof Skip) rec.skip = e.message;
    rec.detail = e instanceof CheckFailed || e instanceof Skip ? e.message : `threw ${e?.constructor?.name}: ${e?.message ?? e}`;
  } finally {
    clearTimeout(timer);
  }
  results.set(name, rec.ok);
  rec.ms = Date.now() - t0;
  console.log(JSON.stringify(rec));
}

async function expectThrow(fn, cls, what) {
  let r;
  try {
    r = await fn();
  } catch (e) {
    expect(e instanceof cls, `${what}: expected ${cls.name}, got ${e?.constructor?.name}: ${e?.message}`);
    return e;
  }
  throw new CheckFailed(`${what}: expected ${cls.name}, got ${show(r)}`);
}

const tag = `acc${process.pid}`;
let sbx = null;

await check('unknown_template', [], async () => {
  const e = await expectThrow(() => Sandbox.create('no-such-template'), SandboxError, 'a template that is no local image');
  expect(/^404: template no-such-template: there is no image/.test(e.message), `the error: ${show(e.message)}`);
});

await check('wrong_key_refused', [], async () => {
  await expectThrow(() => Sandbox.create('base', { apiKey: 'not-the-token' }), AuthenticationError, 'create with a wrong key');
  await expectThrow(() => Sandbox.list({ apiKey: 'not-the-token' }).nextItems(), AuthenticationError, 'list with a wrong key');
});

await check('create', [], async () => {
  sbx = await Sandbox.create('base', { timeoutMs: 900_000, metadata: { suite: tag }, envs: { GREETING: 'hi' } });
  expect(/^[a-z0-9]+$/.test(sbx.sandboxId), `sandbox id ${show(sbx.sandboxId)}`);
  return sbx.sandboxId;
}, BOOT_MS);

await check('access_token_checked', ['create'], async () => {
  const url = `${env.E2B_SANDBOX_URL}/health`;
  const h = { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' };
  const bad = await fetch(url, { headers: { ...h, 'X-Access-Token': 'wrong' } });
  expectEq(bad.status, 401, 'a wrong X-Access-Token');
  const none = await fetch(url, { headers: h });
  expectEq(none.status, 401, 'no X-Access-Token');
  const good = await fetch(url, { headers: { ...h, 'X-Access-Token': sbx.envdAccessToken } });
  expectEq(good.status, 204, 'the envdAccessToken');
});

await check('envelope_bound', ['create'], async () => {
  // A Connect envelope announcing more than the 1 MiB bound is refused before anything runs.
  const head = new Uint8Array([0, 0, 0x20, 0, 0]); // 2 MiB announced
  const r = await fetch(`${env.E2B_SANDBOX_URL}/process.Process/Start`, {
    method: 'POST',
    body: new Blob([head, '{"process":{"cmd":"true"}}']),
    headers: { 'Content-Type': 'application/connect+json', 'E2b-Sandbox-Id': sbx.sandboxId,
      'E2b-Sandbox-Port': '49983', 'X-Access-Token': sbx.envdAccessToken },
  });
  const bytes = new Uint8Array(await r.arrayBuffer());
  expectEq([r.status, bytes[0]], [200, 2], 'an end-of-stream envelope');
  const end = JSON.parse(new TextDecoder().decode(bytes.subarray(5)));
  expect(end.error?.code === 'invalid_argument' && /larger than the 1048576-byte bound/.test(end.error.message),
    `the error: ${show(end)}`);
});

await check('run_stdout_stderr', ['create'], async () => {
  const r = await sbx.commands.run('echo out; echo err >&2');
  expectEq([r.stdout, r.stderr, r.exitCode], ['out\n', 'err\n', 0], 'stdout, stderr, exit code');
});

await check('run_env_cwd', ['create'], async () => {
  const r = await sbx.commands.run('echo $GREETING $EXTRA; pwd', { envs: { EXTRA: 'there' }, cwd: '/tmp' });
  expectEq(r.stdout, 'hi there\n/tmp\n', 'sandbox envVars, command envs and cwd');
});

await check('run_exit_code_error', ['create'], async () => {
  const e = await expectThrow(() => sbx.commands.run('echo partial; echo bad >&2; exit 3'), CommandExitError, 'exit 3');
  expectEq([e.exitCode, e.stdout, e.stderr], [3, 'partial\n', 'bad\n'], 'the CommandExitError');
});

await check('run_streaming_callbacks', ['create'], async () => {
  const seen = [];
  await sbx.commands.run('for i in 1 2 3; do echo $i; sleep 0.2; done', { onStdout: (d) => seen.push(d) });
  expectEq(seen.join(''), '1\n2\n3\n', 'onStdout');
});

await check('background_wait', ['create'], async () => {
  const h = await sbx.commands.run('sleep 1; echo done', { background: true });
  expect(h.pid > 0, `pid ${h.pid}`);
  const r = await h.wait();
  expectEq(r.stdout, 'done\n', 'the background command');
});

await check('background_list_kill', ['create'], async () => {
  const h = await sbx.commands.run('sleep 300', { background: true });
  const listed = await sbx.commands.list();
  const mine = listed.find((p) => p.pid === h.pid);
  expect(mine && mine.cmd === '/bin/bash' && mine.args.includes('sleep 300'), `list: ${show(listed)}`);
  expectEq(await h.kill(), true, 'kill');
  await expectThrow(() => h.wait(), CommandExitError, 'waiting for a killed command');
  const after = await sbx.commands.list();
  expect(!after.some((p) => p.pid === h.pid), `still listed after kill: ${show(after)}`);
  expectEq(await sbx.commands.kill(h.pid), false, 'killing it again');
});

await check('stdin', ['create'], async () => {
  const h = await sbx.commands.run('cat; echo end', { background: true, stdin: true });
  await sbx.commands.sendStdin(h.pid, 'hello ');
  await h.sendStdin('stdin\n');
  await sbx.commands.closeStdin(h.pid);
  const r = await h.wait();
  expectEq(r.stdout, 'hello stdin\nend\n', 'what cat read');
});

await check('stream_input', ['create'], async () => {
  // process.Process/StreamInput (client streaming; the SDK has no caller for it): the
  // envelopes a half-duplex Connect client sends, in one body.
  const h = await sbx.commands.run('cat', { background: true, stdin: true });
  const env1 = (obj) => {
    const json = new TextEncoder().encode(JSON.stringify(obj));
    const out = new Uint8Array(5 + json.length);
    new DataView(out.buffer).setUint32(1, json.length);
    out.set(json, 5);
    return out;
  };
  const b64 = (t) => Buffer.from(t).toString('base64');
  const r = await fetch(`${env.E2B_SANDBOX_URL}/process.Process/StreamInput`, {
    method: 'POST',
    body: new Blob([env1({ start: { process: { pid: h.pid } } }), env1({ data: { input: { stdin: b64('one ') } } }),
      env1({ keepalive: {} }), env1({ data: { input: { stdin: b64('two\n') } } })]),
    headers: { 'Content-Type': 'application/connect+json', 'E2b-Sandbox-Id': sbx.sandboxId,
      'E2b-Sandbox-Port': '49983', 'X-Access-Token': sbx.envdAccessToken },
  });
  const bytes = new Uint8Array(await r.arrayBuffer());
  expectEq([r.status, bytes[0], bytes[7]], [200, 0, 2], 'a message and the end of the stream');
  await sbx.commands.closeStdin(h.pid);
  expectEq((await h.wait()).stdout, 'one two\n', 'what cat read');
});

await check('connect_to_process', ['create'], async () => {
  const h = await sbx.commands.run('sleep 1; echo later', { background: true });
  await h.disconnect();
  const again = await sbx.commands.connect(h.pid);
  const r = await again.wait();
  expectEq(r.stdout, 'later\n', 'output after reconnecting');
});

await check('pty', ['create'], async () => {
  let out = '';
  const dec = new TextDecoder();
  const term = await sbx.pty.create({ cols: 100, rows: 30, onData: (d) => (out += dec.decode(d)) });
  await sbx.pty.resize(term.pid, { cols: 120, rows: 40 });
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; exit\n'));
  await term.wait().catch(() => {});
  expect(out.includes('40 120'), `the terminal's size after resize: ${show(out)}`);
});

await check('files_write_read', ['create'], async () => {
  const info = await sbx.files.write('/tmp/e2b/a.txt', 'hello file');
  expectEq([info.name, info.path], ['a.txt', '/tmp/e2b/a.txt'], 'write');
  expectEq(await sbx.files.read('/tmp/e2b/a.txt'), 'hello file', 'read');
  const r = await sbx.commands.run('cat /tmp/e2b/a.txt');
  expectEq(r.stdout, 'hello file', 'seen by a command');
});

await check('files_binary', ['create'], async () => {
  const data = new Uint8Array(70000).map((_, i) => (i * 7) & 255);
  await sbx.files.write('/tmp/e2b/bin.dat', data.buffer);
  const back = await sbx.files.read('/tmp/e2b/bin.dat', { format: 'bytes' });
  expect(back.length === data.length && back.every((b, i) => b === data[i]), `bytes back: ${back.length}`);
  await sbx.files.write('/tmp/e2b/stream.dat', new Blob([data]), { useOctetStream: true });
  const r = await sbx.commands.run('wc -c < /tmp/e2b/stream.dat');
  expectEq(r.stdout.trim(), '70000', 'an octet-stream upload');
});

await check('files_write_many_relative', ['create'], async () => {
  const infos = await sbx.files.write([
    { path: 'rel/one.txt', data: '1' },
    { path: '/tmp/e2b/two.txt', data: '2' },
  ]);
  expectEq(infos.map((i) => i.path).sort(), ['/root/rel/one.txt', '/tmp/e2b/two.txt'], 'paths');
  const r = await sbx.commands.run('cat rel/one.txt /tmp/e2b/two.txt');
  expectEq(r.stdout, '12', 'a relative path is under the home, where commands start');
});

await check('files_list_exists_info', ['files_write_read'], async () => {
  const entries = await sbx.files.list('/tmp/e2b');
  const a = entries.find((e) => e.name === 'a.txt');
  expect(a && a.type === 'file' && a.size === 10 && a.path === '/tmp/e2b/a.txt', `list: ${show(entries)}`);
  expectEq(await sbx.files.exists('/tmp/e2b/a.txt'), true, 'exists');
  expectEq(await sbx.files.exists('/tmp/e2b/none'), false, 'exists (missing)');
  const info = await sbx.files.getInfo('/tmp/e2b');
  expectEq([info.type, info.name], ['dir', 'e2b'], 'getInfo of a directory');
});

await check('files_makedir_rename_remove', ['files_write_read'], async () => {
  expectEq(await sbx.files.makeDir('/tmp/e2b/d/e'), true, 'makeDir');
  expectEq(await sbx.files.makeDir('/tmp/e2b/d/e'), false, 'makeDir of an existing directory');
  const deep = await sbx.files.list('/tmp/e2b/d', { depth: 2 });
  expect(deep.some((e) => e.path === '/tmp/e2b/d/e' && e.type === 'dir'), `list depth 2: ${show(deep)}`);
  const moved = await sbx.files.rename('/tmp/e2b/a.txt', '/tmp/e2b/d/b.txt');
  expectEq(moved.path, '/tmp/e2b/d/b.txt', 'rename');
  expectEq(await sbx.files.exists('/tmp/e2b/a.txt'), false, 'the old name after rename');
  await sbx.files.remove('/tmp/e2b/d');
  expectEq(await sbx.files.exists('/tmp/e2b/d'), false, 'removed directory');
});

await check('files_missing', ['create'], async () => {
  await expectThrow(() => sbx.files.read('/tmp/e2b/none'), NotFoundError, 'read of a missing file');
  await expectThrow(() => sbx.files.list('/tmp/e2b/none'), NotFoundError, 'list of a missing directory');
});

await check('watch_dir', ['create'], async () => {
  await sbx.files.makeDir('/tmp/w/sub');
  const events = [];
  const handle = await sbx.files.watchDir('/tmp/w', (ev) => events.push(`${ev.type} ${ev.name}`), { recursive: true });
  const waitFor = async (want) => {
    const t0 = Date.now();
    while (!events.includes(want)) {
      expect(Date.now() - t0 < 20_000, `no ${show(want)} within 20 s; events: ${show(events)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await sbx.files.write('/tmp/w/sub/f.txt', 'one');
  await waitFor('create sub/f.txt');
  await sbx.commands.run('echo more >> /tmp/w/sub/f.txt');
  await waitFor('write sub/f.txt');
  await sbx.files.remove('/tmp/w/sub/f.txt');
  await waitFor('remove sub/f.txt');
  await handle.stop();
  await expectThrow(() => sbx.files.watchDir('/tmp/nowhere', () => {}), NotFoundError, 'watching a missing directory');
  return events.join(', ');
});

await check('get_info', ['create'], async () => {
  const info = await sbx.getInfo();
  expectEq([info.sandboxId, info.templateId, info.state, info.metadata], [sbx.sandboxId, 'base', 'running', { suite: tag }],
    'getInfo');
  const lifetime = info.endAt - info.startedAt;
  expect(lifetime >= 899_000 && lifetime <= 901_000, `endAt - startedAt = ${lifetime} ms`);
});

await check('list', ['create'], async () => {
  const items = await Sandbox.list({ query: { metadata: { suite: tag } } }).nextItems();
  expectEq(items.map((s) => s.sandboxId), [sbx.sandboxId], 'list by metadata');
  const none = await Sandbox.list({ query: { metadata: { suite: 'other' } } }).nextItems();
  expectEq(none, [], 'list by other metadata');
  const paged = Sandbox.list({ limit: 1 });
  const first = await paged.nextItems();
  expectEq(first.length, 1, 'one page of one');
});

await check('connect', ['create'], async () => {
  const again = await Sandbox.connect(sbx.sandboxId);
  const r = await again.commands.run('echo again');
  expectEq(r.stdout, 'again\n', 'a command through the connected sandbox');
});

// The code interpreter (cocoon_code_run); skipped while the server says it is not there.
let code = null;
const unsupported = (ex) => ex?.error?.name === 'UnsupportedError' && ex.error.value;
await check('ci_create', [], async () => {
  code = await ci.Sandbox.create({ timeoutMs: 600_000 });
  return code.sandboxId;
}, BOOT_MS);

await check('list_paging', ['create', 'ci_create'], async () => {
  const pages = Sandbox.list({ limit: 1 });
  const seen = [];
  while (pages.hasNext) {
    const page = await pages.nextItems();
    expect(page.length <= 1, `a page of ${page.length} with limit 1`);
    seen.push(...page.map((s) => s.sandboxId));
    expect(seen.length <= 4, `pages do not end: ${show(seen)}`);
  }
  expectEq(seen.sort(), [sbx.sandboxId, code.sandboxId].sort(), 'every sandbox once over the pages');
});

await check('ci_state_across_calls', ['ci_create'], async () => {
  const a = await code.runCode('x = 40\nprint("set")');
  if (unsupported(a)) throw new Skip(`the code interpreter is not there: ${a.error.value}`);
  expect(!a.error, `error: ${show(a.error)}`);
  expectEq(a.logs.stdout, ['set\n'], 'stdout');
  const b = await code.runCode('x + 2');
  expectEq(b.text, '42', 'the last expression, with x kept');
});

await check('ci_exception', ['ci_create'], async () => {
  const r = await code.runCode('def f():\n    return 1/0\nf()');
  if (unsupported(r)) throw new Skip(`the code interpreter is not there: ${r.error.value}`);
  expect(r.error && r.error.name === 'ZeroDivisionError', `error: ${show(r.error)}`);
  expect(/line 2, in f[\s\S]*ZeroDivisionError: division by zero/.test(r.error.traceback),
    `traceback: ${show(r.error.traceback)}`);
});

await check('ci_matplotlib_png', ['ci_create'], async () => {
  const r = await code.runCode('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()');
  if (unsupported(r)) throw new Skip(`the code interpreter is not there: ${r.error.value}`);
  expect(!r.error, `error: ${show(r.error)}`);
  const png = r.results.find((x) => x.png)?.png;
  expect(png && Buffer.from(png, 'base64').subarray(1, 4).toString() === 'PNG', `results: ${show(r.results)}`);
});

await check('ci_contexts', ['ci_create'], async () => {
  let ctx;
  try {
    ctx = await code.createCodeContext({ language: 'python', cwd: '/tmp' });
  } catch (e) {
    if (/501/.test(e.message)) throw new Skip(`the code interpreter is not there: ${e.message}`);
    throw e;
  }
  const r = await code.runCode('import os\nos.getcwd()', { context: ctx });
  expectEq(r.text, "'/tmp'", 'a context with its cwd');
  const listed = await code.listCodeContexts();
  expect(listed.some((c) => c.id === ctx.id), `contexts: ${show(listed)}`);
  await code.restartCodeContext(ctx);
  await code.removeCodeContext(ctx);
});

await check('kill', ['ci_create'], async () => {
  const id = code.sandboxId;
  await code.kill();
  expectEq(await Sandbox.kill(id), false, 'killing it again');
  await expectThrow(() => Sandbox.getInfo(id), NotFoundError, 'getInfo after kill');
});

await check('timeout_expires', ['create'], async () => {
  await sbx.setTimeout(3_000);
  const info = await sbx.getInfo();
  expect(info.endAt - Date.now() < 4_000, `endAt after setTimeout: ${info.endAt}`);
  const t0 = Date.now();
  for (;;) {
    try {
      await Sandbox.getInfo(sbx.sandboxId);
    } catch (e) {
      expect(e instanceof NotFoundError, `getInfo: ${e?.constructor?.name}: ${e?.message}`);
      break;
    }
    expect(Date.now() - t0 < 60_000, 'still there 60 s after its timeout');
    await new Promise((r) => setTimeout(r, 500));
  }
  expectEq(await Sandbox.kill(sbx.sandboxId), false, 'kill after expiry');
  return `${sbx.sandboxId} removed after ${Date.now() - t0} ms`;
});
