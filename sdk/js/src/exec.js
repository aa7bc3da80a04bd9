// Commands in a box: an Execution is one command started with POST .../exec, its output
// read from the NDJSON route (.../output) as it comes, its stdin, signals and terminal
// size driven by the stdin, signal and resize routes. Output goes to callbacks, to an
// async iterator (with backpressure: reading pauses while 1 MiB waits unread, so the
// command blocks, as on a pipe), or is collected into the ExecResult.
import os from 'node:os';
import { Readable } from 'node:stream';
import { ConnectionError, InvalidArgumentError } from './errors.js';

const QUEUE_MAX = 1 << 20; // bytes of output waiting for the iterator before reading pauses
const LINE_MAX = 16 << 20; // one NDJSON line (a base64 chunk of output); the server sends far less
const STDIN_CHUNK = 512 << 10; // one POST .../stdin (the server takes up to 1 MiB)
const INLINE_STDIN_MAX = 512 << 10; // stdin sent inside the exec request (base64 in a 1 MiB JSON body)

/** A signal as a number: 15, 'SIGTERM' or 'TERM'. */
export function signalNumber(sig) {
  if (typeof sig === 'number' && Number.isInteger(sig) && sig >= 1 && sig <= 64) return sig;
  if (typeof sig === 'string') {
    const name = sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : 'SIG' + sig.toUpperCase();
    const n = os.constants.signals[name];
    if (n) return n;
  }
  throw new InvalidArgumentError(`not a signal: ${JSON.stringify(sig)} (a number 1-64 or a name such as "SIGTERM")`, {
    code: 'invalid_argument',
  });
}

/** The argv and shell flag of exec's first argument (an argv array, a string with shell, or {cmd}). */
export function normalizeCommand(cmd, opts = {}) {
  let o = opts;
  if (cmd && typeof cmd === 'object' && !Array.isArray(cmd)) {
    o = { ...cmd, ...opts };
    cmd = o.cmd ?? o.command;
  }
  if (typeof cmd === 'string') {
    if (!o.shell)
      throw new TypeError(
        `exec(${JSON.stringify(cmd)}): give an argv array (["ls", "-l"]), or shell: true to run a string with /bin/sh -c`,
      );
    return { command: cmd, args: o.args || [], shell: true, opts: o };
  }
  if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((a) => typeof a === 'string'))
    throw new TypeError('exec: the command is a non-empty array of strings (or a string with shell: true)');
  if (o.shell) return { command: cmd.join(' '), args: [], shell: true, opts: o };
  return { command: cmd[0], args: cmd.slice(1), shell: false, opts: o };
}

/** The JSON body of POST .../exec for a command and its options. */
export function execBody({ command, args, shell, opts }, { defaultStdin }) {
  const b = { command };
  if (args.length) b.args = args;
  if (shell) b.shell = true;
  if (opts.env) b.env = Object.fromEntries(Object.entries(opts.env).map(([k, v]) => [k, String(v)]));
  if (opts.cwd ?? opts.workdir) b.working_dir = opts.cwd ?? opts.workdir;
  if (opts.user !== undefined) b.user = String(opts.user);
  if (opts.timeout) b.timeout_seconds = opts.timeout;
  if (opts.tty) b.tty = true;
  if (opts.cols) b.cols = opts.cols;
  if (opts.rows) b.rows = opts.rows;
  if (opts.detach) b.detach = true;
  const stdin = opts.stdin === undefined ? defaultStdin : opts.stdin;
  let later = null;
  if (stdin === null || stdin === false || stdin === undefined) b.stdin_base64 = '';
  else if (stdin === 'pipe') later = null;
  else if (typeof stdin === 'string' || stdin instanceof Uint8Array) {
    const buf = Buffer.from(stdin);
    if (buf.length <= INLINE_STDIN_MAX) b.stdin_base64 = buf.toString('base64');
    else later = [buf];
  } else if (stdin instanceof Readable || (stdin && typeof stdin[Symbol.asyncIterator] === 'function')) later = stdin;
  else throw new TypeError("exec: stdin is a string, a Buffer, a Readable, an async iterable, 'pipe' or null");
  return { body: b, stdinSource: later };
}

export class ExecResult {
  constructor(info, out, err) {
    this.executionId = info.execution_id;
    this.exitCode = info.exit_code;
    this.signal = info.signal ?? null;
    this.status = info.status;
    this.timedOut = info.status === 'timed_out';
    this.durationMs = info.duration_ms;
    this.errorMessage = info.error_message ?? null;
    this.outputDroppedBytes = info.output_dropped_bytes ?? 0;
    this.stdoutBuffer = out;
    this.stderrBuffer = err;
    this.stdout = out.toString('utf8');
    this.stderr = err.toString('utf8');
  }

  /** True when the command exited with 0. */
  get ok() {
    return this.exitCode === 0;
  }
}

export class Execution {
  /** Made by Box.spawn(); not constructed directly. */
  constructor(box, id, { onStdout, onStderr, onExit, collect = false, abortSignal } = {}) {
    this.box = box;
    this.id = id;
    this._client = box._client;
    this._base = `/boxes/${encodeURIComponent(box.id)}/executions/${id}`;
    this._cb = { stdout: onStdout, stderr: onStderr };
    this._onExit = onExit;
    this._collect = collect; // exec(): everything also goes to the result
    this._chunks = { stdout: [], stderr: [] };
    this._queue = [];
    this._queued = 0;
    this._iterating = false;
    this._draining = collect;
    this._wake = null;
    this._res = null;
    this._exit = null;
    this._error = null;
    this._stdinChain = Promise.resolve();
    this._stdinError = null;
    this._done = new Promise((resolve) => {
      this._resolveDone = resolve;
    });
    this._done.catch(() => {});
    if (abortSignal) {
      const onAbort = () => this.kill().catch(() => {});
      if (abortSignal.aborted) onAbort();
      else abortSignal.addEventListener('abort', onAbort, { once: true });
      this._done.then(() => abortSignal.removeEventListener('abort', onAbort));
    }
    this._pump();
  }

  async _pump() {
    try {
      const res = await this._client.open('GET', this._base + '/output');
      this._res = res;
      let partial = Buffer.alloc(0);
      for await (const chunk of res) {
        partial = partial.length ? Buffer.concat([partial, chunk]) : chunk;
        let nl;
        while ((nl = partial.indexOf(10)) >= 0) {
          const line = partial.subarray(0, nl);
          partial = partial.subarray(nl + 1);
          if (line.length) this._event(JSON.parse(line.toString('utf8')));
        }
        if (partial.length > LINE_MAX) throw new ConnectionError(`an output line longer than ${LINE_MAX} bytes`);
      }
      if (!this._exit) {
        // The stream ended without its exit line: ask for the status instead.
        const info = await this._client.call('GET', this._base);
        if (info && info.status !== 'running') this._exit = info;
        else throw new ConnectionError(`the output stream of ${this.id} ended while it still runs`);
      }
    } catch (e) {
      this._error = e instanceof SyntaxError ? new ConnectionError(`bad output line from the server: ${e.message}`) : e;
    }
    this._finish();
  }

  _event(ev) {
    if (ev.type === 'stdout' || ev.type === 'stderr') {
      const data = Buffer.from(ev.data, 'base64');
      const cb = this._cb[ev.type];
      if (cb) cb(data);
      if (this._collect) this._chunks[ev.type].push(data);
      else if (!cb) this._push({ stream: ev.type, data });
    } else if (ev.type === 'exit') {
      this._exit = ev;
    }
  }

  _push(item) {
    if (this._draining && !this._iterating) {
      this._chunks[item.stream].push(item.data);
      return;
    }
    this._queue.push(item);
    this._queued += item.data.length;
    if (this._queued > QUEUE_MAX && this._res && !this._res.isPaused()) this._res.pause();
    this._wakeUp();
  }

  _wakeUp() {
    const w = this._wake;
    this._wake = null;
    if (w) w();
  }

  _finish() {
    this._finished = true;
    this._wakeUp();
    if (this._error) {
      this._resolveDone({ error: this._error });
      return;
    }
    if (this._onExit) {
      try {
        this._onExit(this._exit);
      } catch {
        // a throwing callback does not break wait()
      }
    }
    this._resolveDone({ info: this._exit });
  }

  /** Output events as they come: {stream: 'stdout' | 'stderr', data: Buffer}. */
  async *[Symbol.asyncIterator]() {
    this._iterating = true;
    try {
      for (;;) {
        if (this._queue.length) {
          const item = this._queue.shift();
          this._queued -= item.data.length;
          if (this._queued <= QUEUE_MAX / 2 && this._res?.isPaused()) this._res.resume();
          yield item;
          continue;
        }
        if (this._finished) break;
        await new Promise((r) => {
          this._wake = r;
        });
      }
    } finally {
      // A loop left early hands the rest of the output to wait() again.
      this._iterating = false;
    }
    const end = await this._done;
    if (end.error) throw end.error;
  }

  /** Lines of output as text, from either stream (or one: lines('stdout')). */
  async *lines(stream) {
    const rest = { stdout: '', stderr: '' };
    for await (const ev of this) {
      if (stream && ev.stream !== stream) continue;
      rest[ev.stream] += ev.data.toString('utf8');
      let nl;
      while ((nl = rest[ev.stream].indexOf('\n')) >= 0) {
        yield rest[ev.stream].slice(0, nl);
        rest[ev.stream] = rest[ev.stream].slice(nl + 1);
      }
    }
    for (const s of ['stdout', 'stderr']) if (rest[s]) yield rest[s];
  }

  /** Waits for the end: the ExecResult, with the output nobody took from the iterator or callbacks. */
  async wait() {
    if (!this._iterating) {
      this._draining = true;
      for (const item of this._queue) this._chunks[item.stream].push(item.data);
      this._queue = [];
      this._queued = 0;
      if (this._res?.isPaused()) this._res.resume();
    }
    const end = await this._done;
    await this._piping?.catch(() => {});
    await this._stdinChain.catch(() => {});
    if (end.error) throw end.error;
    if (this._stdinError) throw this._stdinError;
    return new ExecResult(end.info, Buffer.concat(this._chunks.stdout), Buffer.concat(this._chunks.stderr));
  }

  /** Whether the command ended (the exit line arrived). */
  get done() {
    return !!this._finished;
  }

  /** Bytes for the command's stdin (sent in order; large data in several requests). */
  write(data) {
    const buf = Buffer.from(data);
    this._stdinChain = this._stdinChain.then(async () => {
      for (let off = 0; off < buf.length; off += STDIN_CHUNK)
        await this._client.call('POST', this._base + '/stdin', {
          body: buf.subarray(off, off + STDIN_CHUNK),
          headers: { 'Content-Type': 'application/octet-stream' },
        });
    });
    return this._stdinChain;
  }

  /** Closes the command's stdin (after what was written). */
  closeStdin() {
    this._stdinChain = this._stdinChain.then(() => this._client.call('POST', this._base + '/stdin', { query: { eof: true } }));
    return this._stdinChain;
  }

  /** Sends stdin from a Readable or async iterable, then closes it (errors after the command ended are ignored). */
  pipeFrom(source) {
    const src = source instanceof Readable ? source : Readable.from(source);
    const run = (async () => {
      try {
        for await (const c of src) {
          if (this._finished) return;
          await this.write(typeof c === 'string' ? Buffer.from(c) : c);
        }
        if (!this._finished) await this.closeStdin();
      } catch (e) {
        if (!this._finished && e?.code !== 'invalid_state') this._stdinError = e;
      }
    })();
    this._piping = run;
    return run;
  }

  /** Sends a signal (a number or a name such as 'SIGTERM'). */
  async signal(sig) {
    await this._client.call('POST', this._base + '/signal', { json: { signal: signalNumber(sig) } });
  }

  /** Kills the command (SIGKILL); nothing happens when it already ended. */
  async kill() {
    await this._client.call('DELETE', this._base);
  }

  /** Resizes the terminal of a tty execution. */
  async resize(cols, rows) {
    await this._client.call('POST', this._base + '/resize', { json: { cols, rows } });
  }

  /** The execution's status as the server reports it (ExecutionInfo, snake_case fields). */
  async info() {
    return this._client.call('GET', this._base);
  }
}
