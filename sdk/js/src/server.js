// The private `cocoon serve` the SDK starts when it is given no URL: found through
// COCOON_BIN_DIR, next to a build tree, or on PATH; listening on a unix socket in a
// private temporary directory; stopped on the last close() and whenever this process
// ends, however it ends (a shell between the two kills the server when our end of its
// stdin pipe closes, which the kernel does even after SIGKILL).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConnectionError } from './errors.js';

const START_TIMEOUT_MS = 60_000;
const here = path.dirname(fileURLToPath(import.meta.url));

function executable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The cocoon binary: $COCOON_BIN_DIR/cocoon, the build tree this SDK sits in, then PATH. */
export function findCocoon(env = process.env) {
  const tried = [];
  if (env.COCOON_BIN_DIR) {
    const p = path.join(env.COCOON_BIN_DIR, 'cocoon');
    if (executable(p)) return p;
    tried.push(p);
  }
  const built = path.resolve(here, '..', '..', '..', 'build', 'bin', 'cocoon');
  if (executable(built)) return built;
  tried.push(built);
  for (const dir of (env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, 'cocoon');
    if (executable(p)) return p;
  }
  tried.push('cocoon on PATH');
  throw new ConnectionError(
    `cannot find the cocoon program (tried ${tried.join(', ')}): install cocoon, set COCOON_BIN_DIR, or give a url`,
    { code: 'unsupported' },
  );
}

// $1 cocoon, $2 socket, $3 log, $4 the private directory. When our end of its stdin
// closes (close(), or this process ended in any way) it stops the server, removes the
// ephemeral boxes this process made (listed in $4/ephemeral: libcocoon removes an
// ephemeral box when the process that made it exits, and here that is the server, which
// leaves its boxes running), then the directory.
const WRAPPER = `
bin=$1 dir=$4
"$bin" serve --socket "$2" --log-file none </dev/null >/dev/null 2>"$3" & pid=$!
finish() {
  kill $pid 2>/dev/null; wait $pid
  if [ -f "$dir/ephemeral" ]; then
    while read -r id; do "$bin" rm -f "$id" >/dev/null 2>&1; done <"$dir/ephemeral"
  fi
  rm -rf "$dir"; exit 0
}
trap finish TERM INT HUP
read -r _
finish`;

export class PrivateServer {
  constructor({ bin, env } = {}) {
    this.bin = bin;
    this.env = env || process.env;
    this.child = null;
    this.dir = null;
    this.socketPath = null;
    this.pid = null;
  }

  /** Starts the server; ping(socketPath) resolves once it answers. */
  async start(ping) {
    const bin = this.bin || findCocoon(this.env);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cocoon-js-'));
    this.socketPath = path.join(this.dir, 'cocoon.sock');
    const log = path.join(this.dir, 'serve.log');
    const child = spawn('/bin/sh', ['-c', WRAPPER, 'cocoon-js-serve', bin, this.socketPath, log, this.dir], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: this.env,
    });
    this.child = child;
    this.pid = child.pid;
    let exited = null;
    child.on('exit', (code, sig) => {
      exited = { code, sig };
      if (this.child === child) this.child = null;
    });
    child.on('error', (e) => {
      exited = { error: e };
    });
    // The server must not keep this process alive: its pipe and handle are unref'd.
    child.unref();
    child.stdin.unref?.();
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (exited) break;
      if (fs.existsSync(this.socketPath)) {
        try {
          await ping(this.socketPath);
          return this.socketPath;
        } catch {
          // not answering yet
        }
      }
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    let why = '';
    try {
      why = fs.readFileSync(log, 'utf8').trim().slice(0, 2000);
    } catch {
      // no log
    }
    this.stop();
    throw new ConnectionError(
      `cocoon serve (${bin}) did not start${exited ? '' : ` within ${START_TIMEOUT_MS / 1000} s`}` +
        (why ? `: ${why}` : exited?.error ? `: ${exited.error.message}` : ''),
    );
  }

  /** Notes an ephemeral box made through this server: it is removed when the server stops. */
  noteEphemeral(id) {
    if (this.dir && /^[0-9a-f]{12}$/.test(id)) fs.appendFileSync(path.join(this.dir, 'ephemeral'), id + '\n');
  }

  /** Stops the server (its shell kills it and removes the directory). */
  stop() {
    const child = this.child;
    this.child = null;
    if (child) {
      try {
        child.stdin.end();
      } catch {
        // already closed
      }
    }
  }

  /** Resolves once the server and its shell have ended. */
  async stopped(timeoutMs = 15_000) {
    const pid = this.pid;
    this.stop();
    if (!pid) return;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
