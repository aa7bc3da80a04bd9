// The connection to a cocoon server: node:http over a unix socket, or http/https to a
// URL with a bearer token, on one keep-alive agent. With no URL (and no COCOON_URL) it
// starts a private `cocoon serve` (server.js) on first use, stopped by close().
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { ConnectionError, makeError } from './errors.js';
import { PrivateServer } from './server.js';

// Bounds on what a server may send: JSON answers (box lists, image lists) and error
// bodies are read whole, so they are capped; streams are read as they come.
export const MAX_JSON_BYTES = 64 << 20;
const MAX_ERROR_BYTES = 1 << 20;

function parseUrl(url) {
  if (url.startsWith('unix:')) return { socketPath: url.slice(5).replace(/^\/\/(?=\/)/, '') };
  let u;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`url must be http://HOST:PORT, https://HOST:PORT or unix:/PATH, not ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new TypeError(`url must be http://, https:// or unix:, not ${JSON.stringify(url)}`);
  return { url: u };
}

function readAll(res, limit) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let n = 0;
    res.on('data', (c) => {
      n += c.length;
      if (n > limit) {
        res.destroy();
        reject(new ConnectionError(`the server's answer is larger than ${limit} bytes`));
        return;
      }
      parts.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(parts)));
    res.on('error', reject);
    res.on('aborted', () => reject(new ConnectionError('the server closed the connection mid-answer')));
  });
}

/** The error an unsuccessful answer stands for (its body is read and parsed). */
export async function answerError(res, what) {
  let envelope = null;
  try {
    const body = await readAll(res, MAX_ERROR_BYTES);
    envelope = JSON.parse(body.toString('utf8')).error;
  } catch {
    // not an envelope
  }
  return makeError(res.statusCode, envelope, `${what}: HTTP ${res.statusCode}`);
}

let defaultClient = null;

export class Cocoon {
  /**
   * url: 'http://HOST:PORT', 'https://HOST:PORT' or 'unix:/path/to/cocoon.sock'
   * (default $COCOON_URL, else a private server); token: bearer token for TCP
   * (default $COCOON_TOKEN); bin: the cocoon program for the private server.
   */
  constructor({ url, token, socketPath, bin, env } = {}) {
    const e = env || process.env;
    if (!url && !socketPath && e.COCOON_URL) url = e.COCOON_URL;
    this.token = token ?? (e.COCOON_TOKEN || null);
    this._target = socketPath ? { socketPath } : url ? parseUrl(url) : null;
    this._private = this._target ? null : new PrivateServer({ bin, env: e });
    this._starting = null;
    this._users = 0;
    this._closed = false;
    const mod = this._target?.url?.protocol === 'https:' ? https : http;
    this._mod = mod;
    this._agent = new mod.Agent({ keepAlive: true, maxSockets: 256 });
  }

  /** The client shared by Box.create() and friends when they are given none. */
  static default() {
    if (!defaultClient || defaultClient._closed) defaultClient = new Cocoon();
    return defaultClient;
  }

  /** The private server's pid (null when connected to a URL or not started). */
  get serverPid() {
    return this._private?.child ? this._private.pid : null;
  }

  /** The unix socket or URL requests go to ('' before a private server started). */
  get address() {
    if (this._target?.socketPath) return `unix:${this._target.socketPath}`;
    if (this._target?.url) return this._target.url.origin;
    return this._private?.socketPath && this._private.child ? `unix:${this._private.socketPath}` : '';
  }

  async _ready() {
    if (this._closed) throw new ConnectionError('this client was closed');
    if (this._target) return this._target;
    if (this._private.child) return { socketPath: this._private.socketPath };
    if (!this._starting) {
      this._starting = this._private
        .start((socketPath) => this._ping(socketPath))
        .finally(() => {
          this._starting = null;
        });
    }
    const socketPath = await this._starting;
    return { socketPath };
  }

  _ping(socketPath) {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath, path: '/v1/health', method: 'GET', timeout: 2000 }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
  }

  _noteEphemeral(id) {
    if (this._private?.child) this._private.noteEphemeral(id);
  }

  /** Counts a handle (a Box) that keeps the private server up; release() undoes it. */
  retain() {
    this._users++;
  }

  release() {
    if (this._users > 0 && --this._users === 0 && this._private) this._private.stop();
  }

  /**
   * Sends one request; resolves with the response (an http.IncomingMessage) once its
   * headers arrived, or rejects with the typed error of an unsuccessful answer.
   * body: a Buffer, a string, or a Readable / async iterable streamed chunked.
   */
  async open(method, path, { query, json, body, headers = {}, signal } = {}) {
    const target = await this._ready();
    let p = '/v1' + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) q.set(k, String(v));
      const s = q.toString();
      if (s) p += '?' + s;
    }
    const h = { ...headers };
    if (this.token && target.url) h.Authorization = `Bearer ${this.token}`;
    let payload = body;
    if (json !== undefined) {
      payload = Buffer.from(JSON.stringify(json));
      h['Content-Type'] = 'application/json';
    }
    if (typeof payload === 'string') payload = Buffer.from(payload);
    if (Buffer.isBuffer(payload) || payload instanceof Uint8Array) h['Content-Length'] = payload.length;
    else if (payload === undefined && method !== 'GET' && method !== 'HEAD' && method !== 'DELETE')
      h['Content-Length'] = 0;
    const opts = { method, path: p, headers: h, agent: this._agent, signal };
    if (target.socketPath) opts.socketPath = target.socketPath;
    else {
      opts.host = target.url.hostname;
      opts.port = target.url.port || (target.url.protocol === 'https:' ? 443 : 80);
    }
    const res = await new Promise((resolve, reject) => {
      const req = this._mod.request(opts, resolve);
      req.on('error', (e) =>
        reject(
          e.name === 'AbortError'
            ? e
            : new ConnectionError(`${method} ${path}: ${e.message} (server ${this.address || 'private'})`, {
                cause: e,
              }),
        ),
      );
      if (payload === undefined || Buffer.isBuffer(payload) || payload instanceof Uint8Array) req.end(payload);
      else {
        const src = payload instanceof Readable ? payload : Readable.from(payload);
        src.on('error', (e) => req.destroy(e));
        src.pipe(req);
      }
    });
    if (res.statusCode >= 400) throw await answerError(res, `${method} ${path}`);
    return res;
  }

  /** One request whose answer is JSON (or empty): resolves with the parsed body (null when empty). */
  async call(method, path, opts) {
    const res = await this.open(method, path, opts);
    const body = await readAll(res, MAX_JSON_BYTES);
    if (!body.length) return null;
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      if ((res.headers['content-type'] || '').startsWith('application/json'))
        throw new ConnectionError(`${method} ${path}: the server's answer is not JSON`);
      return body;
    }
  }

  /** Stops the private server (if this client started one) and closes idle connections. */
  async close() {
    this._closed = true;
    this._agent.destroy();
    if (this._private) await this._private.stopped();
    if (defaultClient === this) defaultClient = null;
  }
}

export { readAll };
