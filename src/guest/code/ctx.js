// cocoon's JavaScript code-interpreter context inside a box: one long-lived node process
// holding a persistent `vm` context, listening on DIR/sock; each run is one connection
// carrying a JSON request line in and NDJSON events (E2B's /execute shapes) out. Started
// by ctx.py's manager; libcocoon writes this file into the guest (src/lib/code_runners.c).
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');
const vm = require('vm');

const dir = process.argv[2];
const sockPath = path.join(dir, 'sock');
const CHUNK = 32 * 1024;
let count = 0;
let current = null; // the run's connection, where console output goes

function send(conn, ev) {
  if (!conn || conn.destroyed) return;
  conn.write(JSON.stringify(ev) + '\n');
}

function out(kind, args) {
  const text = util.format(...args) + '\n';
  for (let i = 0; i < text.length; i += CHUNK) send(current, { type: kind, text: text.slice(i, i + CHUNK) });
}

const sandbox = {
  console: {
    log: (...a) => out('stdout', a),
    info: (...a) => out('stdout', a),
    debug: (...a) => out('stdout', a),
    warn: (...a) => out('stderr', a),
    error: (...a) => out('stderr', a),
  },
  require,
  process,
  Buffer,
  setTimeout,
  clearTimeout,
  setInterval,
  clearInterval,
  setImmediate,
  URL,
  TextEncoder,
  TextDecoder,
};
sandbox.globalThis = sandbox;
const context = vm.createContext(sandbox);

// the stack without this file's and node's own frames: it starts in the user's cell
function cellStack(stack) {
  return String(stack || '')
    .split('\n')
    .filter((l) => !l.includes(__filename) && !/\(node:|at node:/.test(l))
    .join('\n');
}

function errorEvent(e) {
  if (e && typeof e === 'object' && 'message' in e)
    return { type: 'error', name: String(e.name || 'Error'), value: String(e.message), traceback: cellStack(e.stack) };
  return { type: 'error', name: 'Error', value: util.inspect(e), traceback: '' };
}

function withTimeout(promise, ms) {
  if (!ms) return promise;
  let timer;
  const expiry = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('Script execution timed out after ' + ms + 'ms'), { name: 'TimeoutError' })), ms);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

async function run(conn, req) {
  count++;
  current = conn;
  const code = String(req.code || '');
  const ms = req.timeout_ms || 0;
  const saved = {};
  for (const [k, v] of Object.entries(req.env || {})) {
    saved[k] = process.env[k];
    process.env[k] = String(v);
  }
  try {
    let value;
    try {
      value = vm.runInContext(code, context, { filename: 'cell.js', timeout: ms || undefined });
    } catch (e) {
      // top-level await: run the cell as the body of an async function
      if (!e || e.name !== 'SyntaxError' || !/await/.test(String(e.message))) throw e;
      // one expression keeps its value; statements run as the function's body
      let wrapped = '(async () => (\n' + code + '\n))()';
      try {
        new vm.Script(wrapped);
      } catch (_) {
        wrapped = '(async () => {\n' + code + '\n})()';
      }
      value = vm.runInContext(wrapped, context, { filename: 'cell.js', timeout: ms || undefined });
    }
    if (value && typeof value.then === 'function') value = await withTimeout(value, ms);
    if (value !== undefined) send(conn, { type: 'result', is_main_result: true, text: util.inspect(value) });
  } catch (e) {
    send(conn, errorEvent(e));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  send(conn, { type: 'number_of_executions', execution_count: count });
  current = null;
  conn.end();
}

// one run at a time, in the order the connections came
let queue = Promise.resolve();
const server = net.createServer((conn) => {
  let buf = '';
  let started = false;
  conn.setEncoding('utf8');
  conn.on('error', () => {});
  conn.on('data', (d) => {
    if (started) return;
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    started = true;
    let req;
    try {
      req = JSON.parse(buf.slice(0, nl));
    } catch (e) {
      send(conn, errorEvent(e));
      conn.end();
      return;
    }
    queue = queue.then(() => run(conn, req));
  });
});
try {
  fs.unlinkSync(sockPath);
} catch (e) {}
server.listen(sockPath + '.tmp', () => fs.renameSync(sockPath + '.tmp', sockPath));
process.on('uncaughtException', (e) => {
  if (current) send(current, { type: 'stderr', text: String((e && e.stack) || e) + '\n' });
});
