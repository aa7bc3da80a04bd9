// Drives cocoon's MCP server with the official client (@modelcontextprotocol/sdk, pinned in
// tests/js/package.json, unmodified) and prints one JSON line per check:
// {"check", "ok", "detail", "skipped"?}. Run by tests/integration/test_mcp.py; alone:
//   NODE_PATH=$(scripts/npm-deps) MCP_TRANSPORT=stdio MCP_COCOON=build/bin/cocoon node tests/js/mcp_acceptance.cjs
//   NODE_PATH=... MCP_TRANSPORT=http MCP_URL=http://127.0.0.1:8100/mcp MCP_TOKEN=... node tests/js/mcp_acceptance.cjs
// MCP_MODE=disappear: create a box, print {"box": ID}, and exit without closing the session.
// MCP_ALLOWED: a host directory inside COCOON_MCP_HOST_PATHS; MCP_OUTSIDE: one outside it.
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { LATEST_PROTOCOL_VERSION, McpError } = require('@modelcontextprotocol/sdk/types.js');
const fs = require('node:fs');
const path = require('node:path');

const env = process.env;
const STEP = { timeout: 300_000 }; // a boot under TCG takes seconds; be generous
const show = (x) => JSON.stringify(x, (k, v) => (typeof v === 'string' && v.length > 300 ? v.slice(0, 300) + '…' : v));
const report = (check, ok, detail, extra = {}) =>
  console.log(JSON.stringify({ check, ok, detail: typeof detail === 'string' ? detail : show(detail), ...extra }));
function assert(cond, what) {
  if (!cond) throw new Error(what);
}

function transport() {
  if (env.MCP_TRANSPORT === 'http') {
    const headers = env.MCP_TOKEN ? { Authorization: `Bearer ${env.MCP_TOKEN}` } : {};
    return new StreamableHTTPClientTransport(new URL(env.MCP_URL), { requestInit: { headers } });
  }
  return new StdioClientTransport({
    command: env.MCP_COCOON,
    args: ['mcp'],
    env: { ...process.env },
    stderr: 'inherit',
  });
}

async function call(client, name, args, options = STEP) {
  return client.callTool({ name, arguments: args }, undefined, options);
}
const text = (r) => (r.content || []).map((c) => c.text || '').join('');
async function ok(client, name, args) {
  const r = await call(client, name, args);
  assert(!r.isError, `${name} failed: ${text(r)}`);
  return r.structuredContent;
}
async function fails(client, name, args, pattern) {
  const r = await call(client, name, args);
  assert(r.isError === true, `${name} ${show(args)} should fail, got ${show(r)}`);
  assert(pattern.test(text(r)), `${name}: message ${show(text(r))} does not match ${pattern}`);
  return text(r);
}

async function checks(client, t) {
  const run = async (name, fn) => {
    try {
      const detail = await fn();
      if (detail && detail.skipped) report(name, true, detail.skipped, { skipped: detail.skipped });
      else report(name, true, detail || '');
    } catch (e) {
      report(name, false, String(e && e.stack ? e.stack : e));
    }
  };
  let box;
  await run('initialize', async () => {
    const v = client.getServerVersion();
    assert(v && v.name === 'cocoon', `serverInfo ${show(v)}`);
    assert(client.getServerCapabilities().tools, 'no tools capability');
    if (t.sessionId !== undefined) assert(/^[0-9a-f]{32}$/.test(t.sessionId), `session id ${t.sessionId}`);
    return `protocol ${LATEST_PROTOCOL_VERSION}, server ${v.version}`;
  });
  let tools = [];
  await run('list_tools', async () => {
    tools = (await client.listTools()).tools;
    const want = ['box_create', 'box_list', 'box_inspect', 'box_start', 'box_stop', 'box_remove', 'exec', 'exec_start',
      'exec_output', 'exec_write_stdin', 'exec_signal', 'run_code', 'file_read', 'file_write', 'file_list',
      'file_stat', 'file_mkdir', 'file_remove', 'copy_to_box', 'copy_from_box', 'image_pull', 'image_list',
      'box_stats', 'box_logs', 'net_log', 'snapshot_create', 'snapshot_list', 'snapshot_restore', 'snapshot_remove',
      'box_clone', 'box_export', 'box_import'];
    for (const w of want) assert(tools.find((x) => x.name === w), `missing tool ${w}`);
    for (const x of tools) {
      assert(x.inputSchema && x.inputSchema.type === 'object' && x.inputSchema.properties, `${x.name}: no schema`);
      assert(x.description && x.description.length > 10, `${x.name}: no description`);
    }
    const exec = tools.find((x) => x.name === 'exec');
    assert(exec.outputSchema && exec.outputSchema.properties.exit_code, 'exec has no outputSchema');
    return `${tools.length} tools`;
  });
  await run('bad_arguments', async () => {
    await fails(client, 'box_inspect', {}, /missing required argument "box"/);
    await fails(client, 'box_create', { cpus: 'two' }, /"cpus" must be an integer/);
    await fails(client, 'box_create', { cpus: 1000 }, /"cpus" must be between 1 and 64/);
    await fails(client, 'box_list', { bogus: 1 }, /unknown argument "bogus"/);
    await fails(client, 'exec', { box: 'no-such-box-xyz', argv: ['true'] }, /cannot open the box.*box_list/);
    let code = null;
    try {
      await call(client, 'no_such_tool', {});
    } catch (e) {
      code = e instanceof McpError ? e.code : String(e);
    }
    assert(code === -32602, `unknown tool: ${code}`);
    return 'schema violations are tool errors; an unknown tool is JSON-RPC -32602';
  });
  await run('box_create', async () => {
    const b = await ok(client, 'box_create', { env: { GREETING: 'hi' }, memory_mib: 256 });
    assert(b.running === true && /^[0-9a-f]{12}$/.test(b.id), show(b));
    box = b.id;
    return b;
  });
  if (!box) return;
  await run('box_list_inspect', async () => {
    const l = await ok(client, 'box_list', {});
    assert(l.boxes.find((b) => b.id === box), 'box not listed');
    const i = await ok(client, 'box_inspect', { box });
    assert(i.status === 'running', show(i));
  });
  await run('exec', async () => {
    const a = await ok(client, 'exec', { box, argv: ['sh', '-c', 'echo out; echo err >&2; echo $GREETING $X; exit 3'],
      env: { X: 'there' } });
    assert(a.exit_code === 3 && a.stdout === 'out\nhi there\n' && a.stderr === 'err\n', show(a));
    const b = await ok(client, 'exec', { box, command: 'pwd; id -un', cwd: '/tmp' });
    assert(b.stdout === '/tmp\nroot\n', show(b));
    const c = await ok(client, 'exec', { box, command: 'head -c 100000 /dev/zero | tr "\\0" x', max_output_bytes: 10 });
    assert(c.stdout === 'xxxxxxxxxx' && c.stdout_truncated && c.stdout_bytes === 100000, show(c));
    const d = await ok(client, 'exec', { box, argv: ['sleep', '30'], timeout_s: 1 });
    assert(d.timed_out === true, show(d));
    const u = await ok(client, 'exec', { box, command: 'id -un', user: 'nobody' });
    assert(u.stdout === 'nobody\n', show(u));
    const e = await ok(client, 'exec', { box, argv: ['cat'], stdin: 'fed' });
    assert(e.stdout === 'fed', show(e));
    await fails(client, 'exec', { box }, /give either argv/);
    await fails(client, 'exec', { box, argv: ['no-such-command'] }, /did not start|No such file/);
  });
  await run('exec_long', async () => {
    const s = await ok(client, 'exec_start', { box, argv: ['cat'] });
    await ok(client, 'exec_write_stdin', { id: s.id, data: 'hello\n' });
    await ok(client, 'exec_write_stdin', { id: s.id, data: 'd29ybGQK', base64: true, eof: true });
    let out = '', cursor = 0, last;
    for (let i = 0; i < 60; i++) {
      last = await ok(client, 'exec_output', { id: s.id, cursor, wait_s: 5 });
      out += last.stdout;
      cursor = last.cursor;
      if (!last.running && last.exit_code !== undefined) break;
    }
    assert(out === 'hello\nworld\n' && last.exit_code === 0, show({ out, last }));
    const k = await ok(client, 'exec_start', { box, command: 'echo started; sleep 100' });
    let first = await ok(client, 'exec_output', { id: k.id, wait_s: 10 });
    assert(first.stdout === 'started\n' && first.running, show(first));
    await ok(client, 'exec_signal', { id: k.id, signal: 'KILL' });
    for (let i = 0; i < 30 && first.running !== false; i++)
      first = await ok(client, 'exec_output', { id: k.id, cursor: first.cursor, wait_s: 2 });
    assert(first.signal === 9 && first.exit_code === 137, show(first));
    await fails(client, 'exec_output', { id: 9999 }, /no command with id 9999/);
  });
  await run('run_code', async () => {
    const r = await call(client, 'run_code', { box, code: 'x = 20\nx * 2 + 2' });
    if (r.isError && /not supported|unsupported|not available/i.test(text(r)))
      return { skipped: `the code interpreter is not in this build: ${text(r).slice(0, 200)}` };
    assert(!r.isError, text(r));
    const again = await ok(client, 'run_code', { box, code: 'x + 1' });
    assert(JSON.stringify(again.results).includes('21'), show(again));
    return r.structuredContent;
  });
  await run('files', async () => {
    await ok(client, 'file_mkdir', { box, path: '/work/a/b', parents: true });
    await ok(client, 'file_write', { box, path: '/work/a/b/t.txt', content: 'héllo\n' });
    const r = await ok(client, 'file_read', { box, path: '/work/a/b/t.txt' });
    assert(r.content === 'héllo\n' && r.encoding === 'utf-8', show(r));
    const bin = Buffer.from([0, 255, 1, 254, 10]).toString('base64');
    await ok(client, 'file_write', { box, path: '/work/bin', content: bin, base64: true, mode: 0o600 });
    const rb = await ok(client, 'file_read', { box, path: '/work/bin' });
    assert(rb.encoding === 'base64' && rb.content === bin, show(rb));
    const st = await ok(client, 'file_stat', { box, path: '/work/bin' });
    assert(st.type === 'file' && st.size === 5 && st.mode === 0o600, show(st));
    const ls = await ok(client, 'file_list', { box, path: '/work' });
    assert(ls.entries.map((e) => e.name).join(',') === 'a,bin', show(ls));
    await fails(client, 'file_remove', { box, path: '/work/a' }, /not empty|Directory not empty|recursive/i);
    await ok(client, 'file_remove', { box, path: '/work/a', recursive: true });
    await fails(client, 'file_stat', { box, path: '/work/a' }, /No such file/);
    await fails(client, 'file_read', { box, path: 'relative' }, /absolute|relative/i);
    await fails(client, 'file_write', { box, path: '/x', content: '***', base64: true }, /not valid base64/);
  });
  await run('copies', async () => {
    if (!env.MCP_ALLOWED) return { skipped: 'no MCP_ALLOWED directory given' };
    const src = path.join(env.MCP_ALLOWED, 'in.txt');
    fs.writeFileSync(src, 'from the host\n');
    await ok(client, 'copy_to_box', { box, host_path: src, box_path: '/tmp/in.txt' });
    const r = await ok(client, 'exec', { box, argv: ['cat', '/tmp/in.txt'] });
    assert(r.stdout === 'from the host\n', show(r));
    await ok(client, 'copy_from_box', { box, box_path: '/etc/hostname', host_path: path.join(env.MCP_ALLOWED, 'hn') });
    assert(fs.existsSync(path.join(env.MCP_ALLOWED, 'hn')), 'copied file missing');
    // escapes: outside the list, through "..", through a symlink, a destination outside
    await fails(client, 'copy_to_box', { box, host_path: '/etc/passwd', box_path: '/tmp' }, /outside the directories/);
    await fails(client, 'copy_to_box', { box, host_path: path.join(env.MCP_ALLOWED, '..', path.basename(env.MCP_OUTSIDE), 'secret'),
      box_path: '/tmp' }, /outside the directories/);
    fs.symlinkSync(env.MCP_OUTSIDE, path.join(env.MCP_ALLOWED, 'link'));
    await fails(client, 'copy_to_box', { box, host_path: path.join(env.MCP_ALLOWED, 'link', 'secret'), box_path: '/tmp' },
      /outside the directories/);
    await fails(client, 'copy_from_box', { box, box_path: '/etc/hostname', host_path: path.join(env.MCP_ALLOWED, 'link', 'x') },
      /outside the directories/);
    await fails(client, 'copy_from_box', { box, box_path: '/etc/hostname', host_path: 'relative/x' }, /absolute/);
    assert(!fs.existsSync(path.join(env.MCP_OUTSIDE, 'x')), 'a copy escaped the allowlist');
  });
  // Snapshots of a stopped box: one made without booting (cheap); the running one is snapshotted live.
  let stopped;
  await run('snapshots', async () => {
    const live = await ok(client, 'snapshot_create', { box, name: 'mcp-live' });
    assert(live.name === 'mcp-live' && live.box_id === box && live.users === 1, show(live));
    stopped = (await ok(client, 'box_create', { start: false, memory_mib: 256 })).id;
    const s1 = await ok(client, 'snapshot_create', { box: stopped, name: 'mcp-s1' });
    assert(s1.name === 'mcp-s1' && s1.box_id === stopped && s1.depth === 1 && !s1.parent, show(s1));
    const s2 = await ok(client, 'snapshot_create', { box: stopped });
    assert(s2.parent === s1.id && s2.depth === 2, show(s2));
    const mine = await ok(client, 'snapshot_list', { box: stopped });
    assert(mine.snapshots.map((x) => x.id).join() === [s1.id, s2.id].join(), show(mine));
    assert((await ok(client, 'snapshot_list', {})).snapshots.length >= 2, 'snapshot_list {} lists them');
    await fails(client, 'snapshot_create', { box: stopped, name: 'mcp-s1' }, /already in use/);
    await fails(client, 'snapshot_remove', { snapshot: 'mcp-s1' }, /in use by/);
    const r = await ok(client, 'snapshot_restore', { box: stopped, snapshot: 'mcp-s1' });
    assert(r.id === s1.id, show(r));
    const gone = await ok(client, 'snapshot_remove', { snapshot: s2.id });
    assert(gone.removed === true && gone.id === s2.id, show(gone));
    await fails(client, 'snapshot_restore', { box: stopped, snapshot: s2.id }, /no snapshot.*snapshot_list/);
    await fails(client, 'snapshot_restore', { box, snapshot: 'mcp-s1' }, /is running/);
    await fails(client, 'snapshot_remove', {}, /missing required argument "snapshot"/);
    // clones: of the box (it stands on mcp-s1 with nothing written since: reused), of a snapshot
    const twin = await ok(client, 'box_clone', { box: stopped, name: 'mcp-twin' });
    assert(twin.name === 'mcp-twin' && twin.running === false && twin.id !== stopped, show(twin));
    const c2 = await ok(client, 'box_clone', { box: stopped, snapshot: 'mcp-s1' });
    assert(c2.name === 'mcp-s1-clone-1', show(c2));
    await fails(client, 'box_clone', { box, name: 'mcp-never' }, /is running/);
    await fails(client, 'box_clone', { box: twin.id, snapshot: 'mcp-s1' }, /has no snapshot/);
    await fails(client, 'snapshot_remove', { snapshot: 'mcp-s1' }, /in use by/);
    await ok(client, 'box_remove', { box: c2.id });
  });
  await run('export_import', async () => {
    if (!env.MCP_ALLOWED || !stopped) return { skipped: 'no MCP_ALLOWED directory given, or no stopped box' };
    const archive = path.join(env.MCP_ALLOWED, 'box.cocoon');
    await fails(client, 'box_export', { source: stopped, host_path: path.join(env.MCP_OUTSIDE, 'x.cocoon') },
      /outside the directories/);
    await fails(client, 'box_import', { host_path: path.join(env.MCP_OUTSIDE, 'secret') }, /outside the directories/);
    fs.writeFileSync(path.join(env.MCP_ALLOWED, 'junk.cocoon'), 'not an archive\n');
    await fails(client, 'box_import', { host_path: path.join(env.MCP_ALLOWED, 'junk.cocoon') }, /not a cocoon export/);
    await fails(client, 'box_export', { source: box, host_path: archive }, /is running/);
    assert(!fs.existsSync(path.join(env.MCP_OUTSIDE, 'x.cocoon')) && !fs.existsSync(archive), 'a refused export wrote');
    // The round trip is the same code over either transport: once (over stdio) is enough.
    if (env.MCP_TRANSPORT === 'http') return 'refusals (the round trip is checked over stdio)';
    const e = await ok(client, 'box_export', { source: 'mcp-s1', host_path: archive });
    assert(e.size_bytes > 0 && e.size_bytes === fs.statSync(archive).size, show(e));
    const b = await ok(client, 'box_import', { host_path: archive, name: 'mcp-imported' });
    assert(b.name === 'mcp-imported' && b.running === false && b.id !== stopped, show(b));
    await ok(client, 'box_remove', { box: b.id });
    return e;
  });
  await run('images', async () => {
    const l = await ok(client, 'image_list', {});
    assert(Array.isArray(l.images), show(l));
    await fails(client, 'image_pull', { image: 'UPPER/case:bad ref' }, /cannot pull the image/);
  });
  await run('stats_and_logs', async () => {
    const s = await ok(client, 'box_stats', { box });
    assert(s.cpus >= 1 && s.mem_total > 0 && s.processes > 0, show(s));
    const l = await ok(client, 'box_logs', { box, max_bytes: 4096 });
    assert(l.log.length > 0 && l.log.length <= 4096, show(l));
    const n = await ok(client, 'net_log', { box });
    assert(typeof n.log === 'string', show(n));
  });
  await run('resources', async () => {
    const list = (await client.listResources()).resources;
    assert(list.find((r) => r.uri === 'cocoon://boxes') && list.find((r) => r.uri === `cocoon://boxes/${box}`), show(list));
    const tpl = (await client.listResourceTemplates()).resourceTemplates;
    assert(tpl.length === 2, show(tpl));
    const one = await client.readResource({ uri: `cocoon://boxes/${box}` });
    assert(JSON.parse(one.contents[0].text).id === box, show(one));
    let code = null;
    try {
      await client.readResource({ uri: 'cocoon://boxes/nope-nope' });
    } catch (e) {
      code = e.code;
    }
    assert(code === -32002, `missing resource: ${code}`);
  });
  await run('cancel', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const pending = call(client, 'exec', { box, argv: ['sh', '-c', 'echo $$ > /tmp/sleeper; exec sleep 120'] },
      { signal: ac.signal, timeout: 300_000 });
    // wait until the command runs in the box, then cancel
    for (let i = 0; i < 100; i++) {
      const r = await ok(client, 'exec', { box, command: 'test -s /tmp/sleeper && kill -0 $(cat /tmp/sleeper) && echo up' });
      if (r.stdout === 'up\n') break;
      await new Promise((res) => setTimeout(res, 200));
    }
    ac.abort('test cancels');
    let rejected = false;
    try {
      await pending;
    } catch (e) {
      rejected = true;
    }
    assert(rejected, 'the cancelled call did not reject');
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      const r = await ok(client, 'exec', { box, command: 'kill -0 $(cat /tmp/sleeper) 2>/dev/null && echo alive || echo gone' });
      gone = r.stdout === 'gone\n';
      if (!gone) await new Promise((res) => setTimeout(res, 200));
    }
    assert(gone, 'the cancelled command still runs in the box');
    return `killed within ${Date.now() - t0} ms`;
  });
  await run('stop_start_remove', async () => {
    await ok(client, 'box_stop', { box });
    await fails(client, 'exec', { box, argv: ['true'] }, /not running|box_start/i);
    const s = await ok(client, 'box_start', { box });
    assert(s.running === true, show(s));
    const r = await ok(client, 'exec', { box, argv: ['true'] });
    assert(r.exit_code === 0, show(r));
    await ok(client, 'box_remove', { box });
    await fails(client, 'box_inspect', { box }, /cannot open the box/);
  });
  await run('keep', async () => {
    const k = await ok(client, 'box_create', { name: env.MCP_KEEP_NAME || 'mcp-kept', keep: true, start: false });
    return { kept: k.id };
  });
}

async function main() {
  const client = new Client({ name: 'cocoon-mcp-acceptance', version: '1.0.0' });
  const t = transport();
  await client.connect(t, STEP);
  if (env.MCP_MODE === 'disappear') {
    const b = await ok(client, 'box_create', { start: true, memory_mib: 256 });
    console.log(JSON.stringify({ box: b.id }));
    process.exit(0); // no close, no DELETE: the client just goes away
  }
  await checks(client, t);
  if (t.terminateSession) await t.terminateSession();
  await client.close();
}

main().catch((e) => {
  report('fatal', false, String(e && e.stack ? e.stack : e));
  process.exit(1);
});
