// A box (a microVM sandbox) over the REST API: create, get, list, start, stop, remove,
// commands (exec collected, spawn streamed, runCode), files (box.fs), stats and logs.
import { attach } from './attach.js';
import { Cocoon } from './client.js';
import { InvalidArgumentError, NotFoundError, TimeoutError } from './errors.js';
import { Execution, execBody, normalizeCommand } from './exec.js';
import { contextOf, languageOf, runCode } from './code.js';
import { boxFromConfig } from './config.js';
import { Files } from './files.js';
import { boxSnapshots, exportTo, importFrom, snapshotRef } from './snapshots.js';
import { camel, parseMemoryMiB, parseSizeBytes, textLines } from './util.js';

function portSpec(p) {
  if (typeof p === 'string') return p;
  if (typeof p === 'number') return `${p}:${p}`;
  if (p && typeof p === 'object') {
    const o = { host_port: p.hostPort ?? p.host_port, guest_port: p.guestPort ?? p.guest_port };
    if (p.protocol) o.protocol = p.protocol;
    if (p.hostIp ?? p.host_ip) o.host_ip = p.hostIp ?? p.host_ip;
    return o;
  }
  throw new TypeError(`a port is "HOST:GUEST[/udp]", a number or {hostPort, guestPort}, not ${JSON.stringify(p)}`);
}

/** The NetworkSpec of network: 'public' | 'none' | 'open' | {mode, allow, deny, rules}. */
export function networkSpec(n) {
  if (n === undefined || n === null) return undefined;
  if (n === false) return { mode: 'none' };
  if (n === true) return { mode: 'public' };
  if (typeof n === 'string') return { mode: n };
  if (typeof n !== 'object') throw new TypeError('network is a mode ("public", "none", "open") or {mode, allow, deny, rules}');
  const spec = {};
  if (n.mode) spec.mode = n.mode;
  const rules = [...(n.rules || []), ...(n.deny || n.block || []).map((d) => `deny ${d}`)];
  if (rules.length) spec.outbound = { rules };
  if (n.allow) spec.allow_net = [...n.allow];
  return spec;
}

/** The CreateBoxRequest of Box.create's options. */
export function createBody(o) {
  const b = {};
  if (o.name !== undefined) b.name = o.name;
  if (o.image !== undefined) b.image = o.image;
  if (o.rootfs !== undefined) b.rootfs = o.rootfs;
  if (o.cpus !== undefined) b.cpus = o.cpus;
  if (o.memory !== undefined) b.memory_mib = parseMemoryMiB(o.memory);
  if (o.disk !== undefined) b.disk_size_bytes = parseSizeBytes(o.disk);
  if (o.env) b.env = Object.fromEntries(Object.entries(o.env).map(([k, v]) => [k, String(v)]));
  if ((o.workdir ?? o.cwd) !== undefined) b.working_dir = o.workdir ?? o.cwd;
  if (o.user !== undefined) b.user = String(o.user);
  if (o.ephemeral !== undefined) b.ephemeral = !!o.ephemeral;
  if (o.labels) b.labels = o.labels;
  const net = networkSpec(o.network);
  if (net) b.network = net;
  if (o.ports) b.ports = o.ports.map(portSpec);
  if (o.command !== undefined && o.command !== null) {
    if (!Array.isArray(o.command) || !o.command.every((a) => typeof a === 'string'))
      throw new TypeError('command (the main process) is an argv array of strings');
    b.command = [...o.command];
  }
  if (o.restart !== undefined && o.restart !== null) b.restart = String(o.restart);
  if ((o.tty || o.openStdin) && !b.command)
    throw new InvalidArgumentError('tty and openStdin are for a main process: give command: [...]', { code: 'invalid_argument' });
  if (o.tty) b.tty = true;
  if (o.openStdin) b.open_stdin = true;
  if (o.healthcheck !== undefined && o.healthcheck !== null) b.health = healthBody(o.healthcheck);
  // secrets: {NAME: host | [hosts]}, names and hosts only: the server's environment has the values
  // secretIn: {NAME: ['query', 'body']}, where else than headers a secret's value may go
  const where = o.secretIn || {};
  for (const n of Object.keys(where))
    if (!o.secrets || !(n in o.secrets))
      throw new InvalidArgumentError(`secretIn names ${n}, not among the secrets`, { code: 'invalid_argument' });
  if (o.secrets) b.secrets = Object.entries(o.secrets).map(([name, h]) => ({ name, hosts: Array.isArray(h) ? [...h] : [String(h)],
    ...(where[name] ? { in: Array.isArray(where[name]) ? [...where[name]] : [String(where[name])] } : {}) }));
  if (o.secretViolation) b.secret_violation = String(o.secretViolation);
  if (o.headerRules) b.header_rules = [...o.headerRules];
  if (o.tlsIntercept) b.tls_intercept = [...o.tlsIntercept];
  if (o.tlsBypass) b.tls_bypass = [...o.tlsBypass];
  b.auto_start = o.start !== false;
  return b;
}

const HEALTH_KEYS = ['cmd', 'interval', 'timeout', 'retries', 'startPeriod', 'onFailure'];
const WAIT_CONDITIONS = ['exited', 'healthy', 'running'];
const WAIT_STEP_S = 3600; // the server's longest wait

function badHealth(why) {
  return new InvalidArgumentError(`healthcheck: ${why}`, { code: 'invalid_argument' });
}

/** The create body's "health" of Box.create's healthcheck {cmd, interval, timeout, retries, startPeriod, onFailure}. */
export function healthBody(hc) {
  if (typeof hc !== 'object' || Array.isArray(hc)) throw badHealth('an object such as {cmd: "curl -f localhost", interval: 5}');
  const extra = Object.keys(hc).filter((k) => !HEALTH_KEYS.includes(k));
  if (extra.length) throw badHealth(`unknown key "${extra[0]}" (known: ${HEALTH_KEYS.join(', ')})`);
  const b = {};
  if (typeof hc.cmd === 'string' && hc.cmd.trim()) b.cmd = hc.cmd;
  else if (Array.isArray(hc.cmd) && hc.cmd.length && hc.cmd.every((a) => typeof a === 'string')) b.test = [...hc.cmd];
  else throw badHealth('cmd is shell text or an argv array');
  for (const [key, field] of [['interval', 'interval_seconds'], ['timeout', 'timeout_seconds'], ['startPeriod', 'start_period_seconds']]) {
    const v = hc[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !(v >= 0 && v <= 86400)) throw badHealth(`${key} is seconds from 0 to 86400, not ${JSON.stringify(v)}`);
    b[field] = v;
  }
  if (hc.retries !== undefined && hc.retries !== null) {
    if (!Number.isInteger(hc.retries) || hc.retries < 1 || hc.retries > 1000) throw badHealth(`retries is from 1 to 1000, not ${JSON.stringify(hc.retries)}`);
    b.retries = hc.retries;
  }
  if (hc.onFailure !== undefined && hc.onFailure !== null) b.on_failure = String(hc.onFailure);
  return b;
}

/** A box's "health" of the API in the SDK's terms (durations in seconds). */
function healthStatus(h) {
  if (!h) return null;
  const last = h.last || {};
  return {
    test: h.test,
    interval: h.interval_ms / 1000,
    timeout: h.timeout_ms / 1000,
    retries: h.retries,
    startPeriod: (h.start_period_ms || 0) / 1000,
    onFailure: h.on_failure || 'none',
    status: h.status ?? null,
    healthy: h.status === 'healthy',
    failingStreak: h.failing_streak || 0,
    lastExitCode: last.exit_code ?? null,
    lastOutput: last.output ?? null,
  };
}

/** A MainStatus / DetachedExec of the API in the SDK's terms. */
function mainStatus(m) {
  if (!m) return null;
  const s = camel(m);
  s.running = m.state === 'running';
  return s;
}

export class Box {
  /** Made by Box.create / Box.get / Box.list; not constructed directly. */
  constructor(client, info, { held = false, owned = false } = {}) {
    this._client = client;
    this._raw = info;
    this._held = held;
    this._owned = owned;
    this._closed = false;
    this.fs = new Files(this);
    if (held) client.retain();
  }

  /**
   * Creates a box and boots it (start: false leaves it configured: it boots on the
   * first exec). Options: image, cpus, memory ("512M"), disk ("4G"), env, workdir,
   * user, name, ephemeral, labels, network, ports, rootfs, client, command, restart, tty
   * and openStdin (the main process on a terminal / with stdin open for attach(), as
   * `cocoon run -d -t -i`), healthcheck ({cmd, interval, timeout, retries, startPeriod, onFailure}; seconds).
   */
  static async create(opts = {}) {
    if (typeof opts === 'string') opts = { image: opts };
    const client = opts.client || Cocoon.default();
    const body = createBody(opts);
    const headers = opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : undefined;
    const info = await client.call('POST', '/boxes', { json: body, headers });
    if (info.ephemeral) client._noteEphemeral(info.box_id);
    return new this(client, info, { held: true, owned: true });
  }

  /** The box of an id, a name or a unique id prefix (NotFoundError otherwise). */
  static async get(idOrName, { client } = {}) {
    const c = client || Cocoon.default();
    const info = await c.call('GET', `/boxes/${encodeURIComponent(idOrName)}`);
    return new this(c, info, { held: true });
  }

  /** Every box (oldest first); status: only those in it ('running', 'stopped', 'configured'). */
  static async list({ client, status } = {}) {
    const c = client || Cocoon.default();
    const j = await c.call('GET', '/boxes', { query: { status } });
    return j.boxes.map((b) => new this(c, b));
  }

  /** The box named `name` in a cocoon.yaml (the only one when no name), created when it does not exist. */
  static fromConfig(path, name, opts = {}) {
    return boxFromConfig(this, path, name, opts);
  }

  /** The box's id (12 hex digits). */
  get id() {
    return this._raw.box_id;
  }

  get name() {
    return this._raw.name ?? null;
  }

  /** The status when last fetched ('configured', 'running', 'stopped'); refresh() fetches it. */
  get status() {
    return this._raw.status;
  }

  /** The box as last fetched, with camelCase fields. */
  get info() {
    return camel(this._raw);
  }

  get _path() {
    return `/boxes/${encodeURIComponent(this.id)}`;
  }

  /** Fetches the box again; returns its info. */
  async refresh() {
    this._raw = await this._client.call('GET', this._path);
    return this.info;
  }

  /** Boots the box (nothing happens when it runs). */
  async start() {
    this._raw = await this._client.call('POST', this._path + '/start');
    return this;
  }

  /** Shuts the box down (timeout: seconds before it is killed, default 10; force: kill at once). */
  async stop({ timeout, force } = {}) {
    const json = {};
    if (timeout !== undefined) json.timeout_seconds = timeout;
    if (force) json.force = true;
    this._raw = await this._client.call('POST', this._path + '/stop', { json });
    return this;
  }

  /** Removes the box and its disk (force: a running box is stopped first). */
  async remove({ force = false } = {}) {
    await this._client.call('DELETE', this._path, { query: { force: force ? 'true' : undefined } });
    this._release();
  }

  _release() {
    if (this._held && !this._closed) {
      this._closed = true;
      this._client.release();
    }
  }

  /**
   * Ends this handle: a box it created is stopped (an ephemeral one is then removed);
   * a box got with Box.get is left as it is. The last handle closed stops the private
   * server. Also Symbol.asyncDispose, for `await using`.
   */
  async close() {
    if (this._closed) return;
    try {
      if (this._owned) await this.stop().catch((e) => {
        if (!(e instanceof NotFoundError)) throw e;
      });
    } finally {
      this._release();
    }
  }

  /**
   * Freezes the stopped box's disk as a snapshot ({name} or a name: unique among
   * snapshots; default "<box>-<n>") and goes on in a new layer over it. BoxRunningError while it runs.
   */
  async snapshot(opts = {}) {
    const name = typeof opts === 'string' ? opts : opts.name;
    return camel(await this._client.call('POST', this._path + '/snapshots', { json: name ? { name } : {} }));
  }

  /** The snapshots taken of this box, oldest first. */
  async snapshots() {
    return boxSnapshots(this._client, this.id);
  }

  /**
   * Puts the stopped box's disk back to one of its snapshots (an id, name, id prefix or
   * snapshot object): what it wrote since is gone. Resolves with the snapshot.
   */
  async restore(snapshot) {
    const ref = encodeURIComponent(snapshotRef(snapshot));
    return camel(await this._client.call('POST', `${this._path}/snapshots/${ref}/restore`));
  }

  /**
   * Merges the stopped box's disk layers (its top and the snapshots under it) into one
   * layer over its image, with the same contents: its snapshots stay, no longer used by
   * it. Resolves with {layersBefore, layersAfter, bytesBefore, bytesAfter, dataClusters,
   * zeroClusters, released}. BoxRunningError while it runs.
   */
  async compact() {
    return camel(await this._client.call('POST', this._path + '/compact'));
  }

  /**
   * Writes the stopped box (or, with {snapshot}, one of its snapshots) to one file (zstd
   * tar: config, flattened sparse disk, manifest of digests) that Box.import makes a new
   * box of, here or on another host. BoxRunningError while it runs.
   */
  async export(path, { snapshot } = {}) {
    await exportTo(this._client, this.id, path, snapshotRef(snapshot));
  }

  /**
   * A new, stopped box over a copy-on-write layer of this stopped box's disk (frozen
   * into a snapshot first, or the one it stands on when nothing was written since), or
   * of one of its snapshots ({snapshot}). name defaults to "<source>-clone-<k>".
   */
  async clone({ name, snapshot } = {}) {
    const json = {};
    if (name) json.name = name;
    if (snapshot) json.snapshot = snapshotRef(snapshot);
    const info = await this._client.call('POST', this._path + '/clone', { json });
    return new this.constructor(this._client, info, { held: true });
  }

  /**
   * New running boxes that go on from this running box's state (qemu backend): one
   * capture (file system frozen, VM paused, disk snapshotted live, memory saved), then
   * `count` children started from it, named "<name>-1..N" (default "<snapshot>-fork-<k>").
   * Each has its own id, name, hostname and disk layer; its clock is set and its RNG
   * reseeded. InvalidStateError for a stopped box.
   */
  async fork({ count = 1, name } = {}) {
    const json = { count };
    if (name) json.name = name;
    const answer = await this._client.call('POST', this._path + '/fork', { json });
    return answer.boxes.map((info) => new this.constructor(this._client, info, { held: true }));
  }

  /** A new, stopped box from a file of export (name: its name; default none). The archive is verified whole first. */
  static async import(path, { name, client } = {}) {
    const c = client || Cocoon.default();
    return new this(c, await importFrom(c, path, name), { held: true });
  }

  /** Starts a command and returns its Execution (output streamed; see exec.js). */
  async spawn(cmd, opts = {}) {
    const c = normalizeCommand(cmd, opts);
    const o = c.opts;
    const { body, stdinSource } = execBody(c, { defaultStdin: o.tty ? 'pipe' : null });
    const j = await this._client.call('POST', this._path + '/exec', { json: body });
    const ex = new Execution(this, j.execution_id, {
      onStdout: o.onStdout,
      onStderr: o.onStderr,
      onExit: o.onExit,
      collect: !!o._collect,
      abortSignal: o.signal,
    });
    if (stdinSource) ex.pipeFrom(stdinSource);
    return ex;
  }

  /**
   * Runs a command to its end: {stdout, stderr, exitCode, ...} (ExecResult).
   * cmd: an argv array, a string with {shell: true}, or {cmd, shell, ...options}.
   * Options: env, cwd, user, timeout (seconds), tty, cols, rows, stdin (string,
   * Buffer, Readable, async iterable), onStdout/onStderr (Buffers as they come),
   * signal (an AbortSignal that kills the command).
   */
  async exec(cmd, opts = {}) {
    const ex = await this.spawn(cmd, { ...opts, _collect: true });
    return ex.wait();
  }

  /**
   * Runs code in a stateful context of the box (cocoon's code interpreter): variables,
   * imports and the working directory stay for the next run. Options: language
   * ('python' default, 'javascript', 'bash'; 'shell', 'sh', 'py', 'js' are aliases),
   * context (an id or a context from createCodeContext), env (this run only),
   * timeoutMs (interrupts the run, keeping the context), onStdout/onStderr (text),
   * onResult (a Result), onError (a CodeError) as they come, signal (an AbortSignal).
   * A callback that throws interrupts the run and the promise rejects with its error.
   * Resolves with a CodeExecution; code that raised is its .error, not a rejection.
   */
  async runCode(code, opts = {}) {
    return runCode(this._client, this._path, code, opts);
  }

  /** A new code context ({id, language, cwd}) of language, in cwd (default the box's working directory). */
  async createCodeContext({ language = 'python', cwd } = {}) {
    const body = { language: languageOf(language) };
    if (cwd !== undefined) body.cwd = cwd;
    return contextOf(await this._client.call('POST', this._path + '/code/contexts', { json: body }));
  }

  /** The box's code contexts (the default ones once used). */
  async listCodeContexts() {
    return ((await this._client.call('GET', this._path + '/code/contexts')) || []).map(contextOf);
  }

  /** Starts a context's interpreter afresh (its state is lost; same id). */
  async restartCodeContext(context) {
    const id = typeof context === 'object' && context !== null ? context.id : context;
    await this._client.call('POST', `${this._path}/code/contexts/${encodeURIComponent(id)}/restart`);
  }

  /** Ends a context's interpreter; its state is gone. */
  async removeCodeContext(context) {
    const id = typeof context === 'object' && context !== null ? context.id : context;
    await this._client.call('DELETE', `${this._path}/code/contexts/${encodeURIComponent(id)}`);
  }

  /** Runs a named script of the box's cocoon.yaml (a box made by fromConfig). An ExecResult. */
  async script(name, opts = {}) {
    const argv = this.scripts?.[name];
    if (!argv) throw new InvalidArgumentError(`box ${this.name || this.id} has no script "${name}"`, { code: 'invalid_argument' });
    return this.exec(argv, opts);
  }

  /** The executions the server remembers for this box (running, and ended in the last 600 s). */
  async executions() {
    const j = await this._client.call('GET', this._path + '/executions');
    return camel(j.executions);
  }

  /** Resource use and counters (BoxMetrics, camelCase). */
  async stats() {
    return camel(await this._client.call('GET', this._path + '/metrics'));
  }

  /** Network counters (NetworkStats, camelCase). */
  async networkStats() {
    return camel(await this._client.call('GET', this._path + '/network/stats'));
  }

  async _log(route, follow, extra = {}) {
    const res = await this._client.open('GET', this._path + route, { query: { ...extra, follow: follow ? 'true' : undefined } });
    if (follow) return textLines(res);
    const parts = [];
    for await (const c of res) parts.push(c);
    return Buffer.concat(parts).toString('utf8');
  }

  /** The console log (text); follow: true gives an async iterable of lines until the box stops. */
  logs({ follow = false } = {}) {
    return this._log('/logs', follow, { console: 'true' });
  }

  /** The box's main process (state, pid, exitCode, signal, restarts, ...), or null without one. */
  async mainStatus() {
    await this.refresh();
    return mainStatus(this._raw.main);
  }

  /**
   * The box's health check (created with healthcheck) and, while it runs, its status
   * ('starting' | 'healthy' | 'unhealthy'; null when stopped), or null without one.
   */
  async health() {
    await this.refresh();
    return healthStatus(this._raw.health);
  }

  /**
   * Resolves when condition holds: 'exited' (the default: the main process ended for
   * good and the box stopped; resolves with its exit code, 0 without a main process),
   * 'healthy' (the health check passed: null) or 'running' (null). Rejects with
   * TimeoutError after timeoutMs (default: no limit), InvalidArgumentError for healthy
   * without a check, InvalidStateError when the box stops before it is healthy.
   */
  async wait({ condition = 'exited', timeoutMs } = {}) {
    if (!WAIT_CONDITIONS.includes(condition))
      throw new InvalidArgumentError(`condition "${condition}": exited, healthy or running`, { code: 'invalid_argument' });
    let left = timeoutMs === undefined || timeoutMs === null ? null : Math.max(0, timeoutMs) / 1000;
    for (;;) {
      const step = left === null ? WAIT_STEP_S : Math.min(left, WAIT_STEP_S);
      try {
        const j = await this._client.call('POST', this._path + '/wait', { json: { condition, timeout_seconds: step } });
        return j.exit_code ?? null;
      } catch (e) {
        if (!(e instanceof TimeoutError)) throw e;
        if (left !== null && (left -= step) <= 0) throw e;
      }
    }
  }

  async *_lines(route, { follow = false, tail, since, stream } = {}) {
    const query = { format: 'ndjson', follow: follow ? 'true' : undefined, tail: tail === undefined ? undefined : String(tail), since, stream };
    const res = await this._client.open('GET', this._path + route, { query });
    try {
      for await (const line of textLines(res)) {
        if (!line.trim()) continue;
        const r = JSON.parse(line);
        yield { time: r.time ?? null, stream: r.stream, text: r.text };
      }
    } finally {
      res.destroy();
    }
  }

  /**
   * The main process's output as an async iterable of {time, stream, text} lines, across
   * its restarts: tail (last N), since ("2026-12-03T14:00:00Z", "10m"...), stream
   * ('stdout' | 'stderr'), follow (until the box stops; leave the loop to stop earlier).
   * InvalidStateError for a box without a main process.
   */
  mainLogs(opts = {}) {
    return this._lines('/logs', opts);
  }

  /**
   * Starts a command the box itself runs (no stdin, no terminal): it outlives this
   * process. Resolves with its id (its pid in the box). cmd and options as exec's
   * (env, cwd, user, timeout, shell).
   */
  async execDetached(cmd, opts = {}) {
    const c = normalizeCommand(cmd, opts);
    for (const k of ['tty', 'stdin', 'detach', 'cols', 'rows'])
      if (c.opts[k]) throw new InvalidArgumentError(`execDetached: ${k} does not apply to a detached exec`, { code: 'invalid_argument' });
    const { body } = execBody(c, { defaultStdin: null });
    delete body.stdin_base64;
    const j = await this._client.call('POST', this._path + '/detached', { json: body });
    return j.id;
  }

  /**
   * Attaches to the running main process (`cocoon attach`): resolves with an Attachment
   * giving its output from now on (async iterator or onStdout/onStderr callbacks), its
   * stdin (created with openStdin), its terminal (tty: true) sized cols x rows when given,
   * signals, detach() and wait() for its exit code. Rejects with InvalidStateError when
   * the box or its main process is not running (or it has none), ResourceExhaustedError
   * when 8 clients are attached.
   */
  attach(opts = {}) {
    return attach(this, opts);
  }

  /** A detached exec's status (state, exitCode, signal, ...); NotFoundError for an unknown id. */
  async detachedStatus(id) {
    return mainStatus(await this._client.call('GET', `${this._path}/detached/${encodeURIComponent(id)}`));
  }

  /** A detached exec's output, as mainLogs. */
  detachedLogs(id, opts = {}) {
    return this._lines(`/detached/${encodeURIComponent(id)}/logs`, opts);
  }

  /** Signals a running detached exec's process group (default 9); InvalidStateError once it ended. */
  async killDetached(id, signal = 9) {
    await this._client.call('DELETE', `${this._path}/detached/${encodeURIComponent(id)}`, { query: { signal: String(signal) } });
  }

  /** The network log (one line per denied connection); follow as logs(). */
  networkLog({ follow = false } = {}) {
    return this._log('/network/logs', follow);
  }
}

if (Symbol.asyncDispose) {
  Box.prototype[Symbol.asyncDispose] = function () {
    return this.close();
  };
}
