// A small RFC 6455 WebSocket client (version 13, no extensions) for `cocoon serve`'s
// attach routes, over the client's unix socket or URL: binary and text messages,
// ping/pong and close. Node 18 has no WebSocket of its own, and the SDK has no dependencies.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { answerError } from './client.js';
import { ConnectionError } from './errors.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const MESSAGE_MAX = 16 << 20; // a message from the server (its frames carry at most 16 KiB of output)
export const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };

/**
 * Frames from the server, fed as bytes arrive: emits 'message' (opcode, Buffer) for
 * whole data messages, 'ping' (payload), 'close'; 'error' for a frame it refuses.
 */
export class FrameReader extends EventEmitter {
  constructor() {
    super();
    this._buf = Buffer.alloc(0);
    this._parts = [];
    this._size = 0;
    this._opcode = null;
  }

  feed(chunk) {
    this._buf = this._buf.length ? Buffer.concat([this._buf, chunk]) : chunk;
    for (;;) {
      const b = this._buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const op = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let n = b[1] & 0x7f;
      let at = 2;
      if (n === 126) {
        if (b.length < 4) return;
        n = b.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(MESSAGE_MAX)) return this._fail(`a WebSocket frame of ${big} bytes from the server (at most ${MESSAGE_MAX})`);
        n = Number(big);
        at = 10;
      }
      if (n > MESSAGE_MAX || (op >= 0x8 && n > 125)) return this._fail(`a WebSocket frame of ${n} bytes from the server (at most ${MESSAGE_MAX})`);
      const maskAt = at;
      if (masked) at += 4;
      if (b.length < at + n) return;
      let data = Buffer.from(b.subarray(at, at + n));
      if (masked) for (let i = 0; i < n; i++) data[i] ^= b[maskAt + (i % 4)];
      this._buf = b.subarray(at + n);
      if (op === OP.ping) this.emit('ping', data);
      else if (op === OP.pong) continue;
      else if (op === OP.close) return this.emit('close');
      else if (op > OP.binary || (op === OP.cont) !== (this._opcode !== null))
        return this._fail(`an unexpected WebSocket frame (opcode ${op}) from the server`);
      else {
        if (this._opcode === null) this._opcode = op;
        this._parts.push(data);
        this._size += n;
        if (this._size > MESSAGE_MAX) return this._fail(`a WebSocket message above ${MESSAGE_MAX} bytes from the server`);
        if (fin) {
          const whole = Buffer.concat(this._parts);
          const opcode = this._opcode;
          this._parts = [];
          this._size = 0;
          this._opcode = null;
          this.emit('message', opcode, whole);
        }
      }
    }
  }

  _fail(why) {
    this._buf = Buffer.alloc(0);
    this.emit('error', new ConnectionError(why));
  }
}

/** One client frame (masked, as RFC 6455 wants of a client). */
export function clientFrame(opcode, payload) {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, 0x80 | n]) : Buffer.alloc(n < 65536 ? 4 : 10);
  if (n >= 126) {
    head[0] = 0x80 | opcode;
    if (n < 65536) {
      head[1] = 0x80 | 126;
      head.writeUInt16BE(n, 2);
    } else {
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(n), 2);
    }
  }
  const mask = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < n; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, body]);
}

/**
 * Opens a WebSocket on client's server at path (under /v1): resolves with {socket, head}
 * after the 101, rejects with the typed error of a refusal (a JSON error answer).
 */
export async function connect(client, path) {
  const target = await client._ready();
  const key = crypto.randomBytes(16).toString('base64');
  const headers = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key };
  if (client.token && target.url) headers.Authorization = `Bearer ${client.token}`;
  const opts = { method: 'GET', path: '/v1' + path, headers, agent: false };
  if (target.socketPath) opts.socketPath = target.socketPath;
  else {
    opts.host = target.url.hostname;
    opts.port = target.url.port || (target.url.protocol === 'https:' ? 443 : 80);
  }
  const { socket, head } = await new Promise((resolve, reject) => {
    const req = client._mod.request(opts);
    req.on('upgrade', (res, socket, head) => {
      const want = crypto.createHash('sha1').update(key + GUID).digest('base64');
      if (res.headers['sec-websocket-accept'] !== want) {
        socket.destroy();
        reject(new ConnectionError(`GET ${path}: the server's Sec-WebSocket-Accept does not match our key`));
      } else resolve({ socket, head });
    });
    req.on('response', (res) => answerError(res, `GET ${path}`).then(reject, reject));
    req.on('error', (e) => reject(new ConnectionError(`GET ${path}: ${e.message} (server ${client.address || 'private'})`, { cause: e })));
    req.end();
  });
  socket.setNoDelay?.(true);
  return { socket, head };
}
