// Boxes through the JS SDK: lifecycle, typed errors, stats and logs, network policy and
// published ports (loopback only), and the private server: started on first use,
// stopped on the last close() and when the process dies, however it dies.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN_DIR, SDK, tmpdir, vmMissing } from './helpers.mjs';

const sdk = await import(SDK);
const { Box, Cocoon, Sandbox, NotFoundError, AlreadyExistsError, InvalidArgumentError, AuthError, InvalidStateError } = sdk;
const skip = vmMissing() || false;
// a secret's value, in the environment the private server inherits (it starts on first use)
process.env.COCOON_JS_T_KEY ??= 'sk-js-REAL-2718';

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(cond, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

describe('boxes', { skip }, () => {
  it('creates, lists, gets, stops, starts and removes, by id and by name', async () => {
    const box = await Box.create({ name: 'js-life', cpus: 1, memory: 256, disk: '2G', labels: { owner: 'js' }, workdir: '/tmp' });
    try {
      assert.match(box.id, /^[0-9a-f]{12}$/);
      assert.equal(box.name, 'js-life');
      assert.equal(box.status, 'running');
      assert.equal(box.info.memoryMib, 256);
      assert.equal(box.info.labels.owner, 'js');
      assert.equal(box.info.diskSizeBytes, 2 * 1024 ** 3);
      assert.equal((await box.exec(['pwd'])).stdout, '/tmp\n');
      const ids = (await Box.list()).map((b) => b.id);
      assert.ok(ids.includes(box.id));
      assert.deepEqual((await Box.list({ status: 'stopped' })).map((b) => b.id).filter((i) => i === box.id), []);
      const same = await Box.get('js-life');
      assert.equal(same.id, box.id);
      await same.close(); // a handle from get() leaves the box as it is
      assert.equal((await box.refresh()).status, 'running');
      await assert.rejects(Box.create({ name: 'js-life' }), AlreadyExistsError);
      const serverPid = Cocoon.default().serverPid;
      await assert.rejects(box.remove(), InvalidStateError); // running, no force
      assert.equal(Cocoon.default().serverPid, serverPid, 'a refused remove keeps the handle, and so the server');
      await box.stop();
      assert.equal(box.status, 'stopped');
      await box.start();
      assert.equal(box.status, 'running');
      // a stopped box boots again on the next command
      await box.stop();
      assert.equal((await box.exec(['echo', 'lazy'])).stdout, 'lazy\n');
    } finally {
      await box.remove({ force: true });
    }
    await assert.rejects(Box.get('js-life'), NotFoundError);
  });

  it('refuses bad options with typed errors, on the client and on the server', async () => {
    await assert.rejects(Box.create({ memory: 'lots' }), InvalidArgumentError);
    await assert.rejects(Box.create({ cpus: 0 }), (e) => e instanceof InvalidArgumentError && e.status === 400 && /cpus/.test(e.message));
    await assert.rejects(Box.create({ name: 'bad name!' }), InvalidArgumentError);
    await assert.rejects(Box.get('no-such-box'), (e) => e instanceof NotFoundError && e.code === 'not_found');
  });

  it('reports stats, the console log and network counters; a box without network has none', async () => {
    const box = await Box.create({ ephemeral: true, network: 'none', start: false });
    // `await using` calls this (Node's syntax lacks it before 24; the symbol is there since 18.18/20.4)
    const dispose = Symbol.asyncDispose ? () => box[Symbol.asyncDispose]() : () => box.close();
    try {
      assert.equal(box.status, 'configured');
      await box.exec(['true']);
      const st = await box.stats();
      assert.ok(st.memoryBytes > 0 && st.memoryTotalBytes > st.memoryBytes);
      assert.ok(st.commandsExecutedTotal >= 1);
      assert.ok(st.bootTiming.guestBootMs > 0);
      assert.match(await box.logs(), /\S/);
      assert.equal((await box.networkStats()).present, false);
      // follow: lines as they come, until the box stops
      const follow = await box.logs({ follow: true });
      const lines = follow[Symbol.asyncIterator]();
      assert.equal(typeof (await lines.next()).value, 'string');
      const stopping = box.stop();
      let ended = false;
      for (let i = 0; i < 100000 && !ended; i++) ended = (await lines.next()).done;
      assert.ok(ended, 'the followed log ends when the box stops');
      await stopping;
    } finally {
      await dispose();
    }
    await assert.rejects(Box.get(box.id), NotFoundError); // ephemeral: removed when it stopped
  });

  it('applies a network policy: a denied destination is refused in the box and logged', async () => {
    // 192.0.2.1 (TEST-NET-1) is refused by cocoon's filter inside the monitor: nothing leaves the host.
    const box = await Sandbox.create({ network: { deny: ['192.0.2.1'] } });
    try {
      const r = await box.runCode(
        'import socket\ns = socket.socket()\ns.settimeout(5)\ntry:\n  s.connect(("192.0.2.1", 80)); print("connected")\nexcept OSError as e:\n  print("refused", e.errno)',
      );
      assert.match(r.stdout, /^refused/);
      assert.equal((await box.networkStats()).present, true);
      // the counters reach the API a moment after the log line
      assert.ok(await until(async () => (await box.networkStats()).deniedTcp >= 1));
      assert.match(await box.networkLog(), /192\.0\.2\.1/);
    } finally {
      await box.kill();
    }
  });

  it('keeps a secret out of the box: the box holds a placeholder', async () => {
    const box = await Box.create({ ephemeral: true, network: 'open', secrets: { COCOON_JS_T_KEY: 'api.example.com' },
      headerRules: ['api.example.com:X-Org=acme'], tlsBypass: ['pypi.org'] });
    try {
      const out = (await box.exec(['sh', '-c', 'echo $COCOON_JS_T_KEY; cat /proc/*/environ 2>/dev/null | grep -c REAL'])).stdout;
      assert.match(out, /^cocoon-secret-COCOON_JS_T_KEY-[0-9a-f]{32}\n0\n$/);
    } finally {
      await box.remove({ force: true });
    }
  });

  it('passes secretIn and secretViolation into the box config', async () => {
    const base = { start: false, ephemeral: true, secrets: { COCOON_JS_T_KEY: 'api.example.com' } };
    await assert.rejects(Box.create({ ...base, secretIn: { COCOON_JS_T_KEY: ['cookies'] } }), InvalidArgumentError);
    await assert.rejects(Box.create({ ...base, secretViolation: 'explode' }), InvalidArgumentError);
    await assert.rejects(Box.create({ ...base, secretIn: { OTHER: ['query'] } }), /not among the secrets/);
    const box = await Box.create({ ...base, secretIn: { COCOON_JS_T_KEY: ['query', 'body'] }, secretViolation: 'block-and-stop-box' });
    try {
      const cfg = JSON.parse(fs.readFileSync(path.join(process.env.COCOON_HOME, 'boxes', box.id, 'config.json'), 'utf8'));
      assert.equal(cfg.net.secret_violation, 'block-and-stop-box');
      const entry = cfg.net.secrets.find((x) => x.name === 'COCOON_JS_T_KEY');
      assert.deepEqual([...entry.in].sort(), ['body', 'headers', 'query']);
    } finally {
      await box.remove({ force: true });
    }
  });

  it('publishes a port on the host loopback', async () => {
    const port = await freePort();
    const box = await Box.create({ ephemeral: true, ports: [`127.0.0.1:${port}:8000`] });
    try {
      const srv = await box.spawn(['python3', '-m', 'http.server', '8000', '--directory', '/etc'], { detach: true });
      const body = await new Promise((resolve) => {
        const tryGet = (left) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/hostname', timeout: 5000 }, (res) => {
            const parts = [];
            res.on('data', (c) => parts.push(c));
            res.on('end', () => resolve(Buffer.concat(parts).toString()));
          });
          req.on('error', () => (left > 0 ? setTimeout(() => tryGet(left - 1), 200) : resolve('')));
        };
        tryGet(100);
      });
      assert.equal(body.trim(), (await box.fs.readFile('/etc/hostname', 'utf8')).trim());
      await srv.kill();
    } finally {
      await box.close();
    }
  });

  it('talks to a server at a URL with its token, and refuses a wrong token', async () => {
    const port = await freePort();
    const dir = tmpdir('cocoon-js-tcp-');
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, 'js-sdk-test-token-0123456789\n', { mode: 0o600 });
    const server = spawn(path.join(BIN_DIR, 'cocoon'), ['serve', '--socket', 'none', '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile, '--log-file', 'none'], {
      stdio: 'ignore',
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      const client = new Cocoon({ url, token: 'js-sdk-test-token-0123456789' });
      assert.ok(await until(async () => client.call('GET', '/health').then(() => true, () => false)));
      const box = await Box.create({ client, ephemeral: true, start: false });
      assert.equal(box.status, 'configured');
      await box.remove({ force: true });
      const bad = new Cocoon({ url, token: 'wrong-token-wrong-token' });
      await assert.rejects(Box.list({ client: bad }), (e) => e instanceof AuthError && e.status === 401);
      await client.close();
      await bad.close();
    } finally {
      server.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops its private server on the last close(), and starts another when needed', async () => {
    const client = new Cocoon();
    const box = await Box.create({ client, ephemeral: true, start: false });
    const pid = client.serverPid;
    assert.ok(pid && alive(pid));
    const sock = client.address.slice('unix:'.length);
    assert.ok(fs.existsSync(sock));
    await box.close();
    assert.ok(await until(() => !alive(pid)), 'the server ended');
    assert.equal(fs.existsSync(path.dirname(sock)), false, 'its directory is gone');
    const boxes = await Box.list({ client }); // a new server
    assert.ok(!boxes.some((b) => b.id === box.id), 'the ephemeral box was removed');
    assert.notEqual(client.serverPid, pid);
    await client.close();
  });

  it('stops its private server when the process is killed, removing the ephemeral boxes it made', async () => {
    const script = `
      import { Box, Cocoon } from ${JSON.stringify(SDK)};
      const eph = await Box.create({ ephemeral: true });
      const kept = await Box.create({ start: false });
      console.log(JSON.stringify({ server: Cocoon.default().serverPid, eph: eph.id, kept: kept.id }));
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(d.toString())));
    const { server, eph, kept } = JSON.parse(line);
    assert.ok(alive(server));
    assert.equal((await Box.get(eph)).status, 'running');
    child.kill('SIGKILL');
    assert.ok(await until(() => !alive(server)), 'the server outlived a SIGKILLed process');
    assert.ok(
      await until(() => Box.get(eph).then(() => false, (e) => e instanceof NotFoundError)),
      'the running ephemeral box outlived the process that made it',
    );
    // A box that is not ephemeral stays (boxes are libcocoon's, not the server's).
    await (await Box.get(kept)).remove({ force: true });
  });

  it('lets a process end without close() (nothing keeps it alive), stopping the server and its ephemeral boxes', async () => {
    const script = `
      import { Box, Cocoon } from ${JSON.stringify(SDK)};
      const box = await Box.create({ ephemeral: true, start: false });
      console.log(JSON.stringify({ server: Cocoon.default().serverPid, box: box.id }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const { server, box } = JSON.parse(r.stdout);
    assert.ok(await until(() => !alive(server)));
    await assert.rejects(Box.get(box), NotFoundError); // ephemeral: removed with the process
  });

  after(async () => {
    await Cocoon.default().close();
  });
});
