// Attaching to a box's main process (Box.attach, `cocoon attach`): GET .../attach as a
// WebSocket (docs/openapi.yaml, attachBox). Output comes as binary frames (0x01 stdout,
// 0x02 stderr) to callbacks or an async iterator (reading pauses while 1 MiB waits
// unread); stdin, resizes and signals go back as frames; closing the WebSocket only
// detaches (the main process runs on).
import { ConnectionError, InvalidArgumentError, InvalidStateError } from './errors.js';
import { signalNumber } from './exec.js';
import { OP, FrameReader, clientFrame, connect } from './websocket.js';

const QUEUE_MAX = 1 << 20; // bytes of output waiting for the iterator before reading pauses
const STDIN_CHUNK = 64 << 10; // bytes per binary message (the server takes up to 1 MiB)

function terminalSize(cols, rows, zeroOk) {
  for (const v of [cols, rows])
    if (!Number.isInteger(v) || v < (zeroOk ? 0 : 1) || v > 65535)
      throw new InvalidArgumentError(`terminal size ${cols}x${rows}: cols and rows from 1 to 65535`, { code: 'invalid_argument' });
}

export class Attachment {
  /** Made by Box.attach(); not constructed directly. */
  constructor(box, socket, head, { onStdout, onStderr } = {}) {
    this.box = box;
    this._socket = socket;
    this._cb = { stdout: onStdout, stderr: onStderr };
    this._queue = [];
    this._queued = 0;
    this._iterating = false;
    this._wake = null;
    this._exitCode = null;
    this._why = 'the server ended the attachment';
    this._detached = false;
    this._closeSent = false;
    this._finished = false;
    this._done = new Promise((resolve) => {
      this._resolveDone = resolve;
    });
    const frames = new FrameReader();
    frames.on('message', (op, data) => this._message(op, data));
    frames.on('ping', (data) => this._send(OP.pong, data));
    frames.on('close', () => this._end());
    frames.on('error', (e) => this._end(e));
    socket.on('data', (chunk) => frames.feed(chunk));
    socket.on('end', () => this._end());
    socket.on('close', () => this._end());
    socket.on('error', (e) => this._end(new ConnectionError(`attach to box ${box.id}: ${e.message}`, { cause: e })));
    if (head?.length) frames.feed(head);
  }

  _message(op, data) {
    if (op === OP.binary && data.length && (data[0] === 1 || data[0] === 2)) {
      const stream = data[0] === 1 ? 'stdout' : 'stderr';
      const bytes = data.subarray(1);
      if (!bytes.length) return;
      if (this._cb[stream]) this._cb[stream](bytes);
      else this._push({ stream, data: bytes });
    } else if (op === OP.text) {
      try {
        const m = JSON.parse(data.toString('utf8'));
        if (m.type === 'exit') this._exitCode = m.exit_code;
        else if (m.type === 'error') this._why = String(m.message);
      } catch {
        this._end(new ConnectionError(`attach to box ${this.box.id}: a malformed message from the server`));
      }
    }
  }

  _push(item) {
    this._queue.push(item);
    this._queued += item.data.length;
    if (this._queued > QUEUE_MAX && !this._socket.isPaused()) this._socket.pause();
    this._wakeUp();
  }

  _wakeUp() {
    const w = this._wake;
    this._wake = null;
    if (w) w();
  }

  _end(error) {
    if (this._finished) return;
    this._finished = true;
    this._send(OP.close, Buffer.from([0x03, 0xe8]));
    this._socket.end();
    this._wakeUp();
    if (!error && this._exitCode === null && !this._detached)
      error = new InvalidStateError(`box ${this.box.id}: ${this._why}`, { code: 'invalid_state' });
    this._resolveDone(error ? { error } : { exitCode: this._exitCode });
  }

  _send(opcode, payload) {
    if (this._closeSent || this._socket.destroyed) return false;
    if (opcode === OP.close) this._closeSent = true;
    this._socket.write(clientFrame(opcode, payload));
    return true;
  }

  _control(msg) {
    if (this._finished || !this._send(OP.text, Buffer.from(JSON.stringify(msg))))
      throw new InvalidStateError(`box ${this.box.id}: the attachment ended`, { code: 'invalid_state' });
  }

  /** Output events as they come: {stream: 'stdout' | 'stderr', data: Buffer} (a terminal has only stdout). */
  async *[Symbol.asyncIterator]() {
    this._iterating = true;
    try {
      yield* this._items();
    } finally {
      this._iterating = false;
    }
  }

  async *_items() {
    for (;;) {
      if (this._queue.length) {
        const item = this._queue.shift();
        this._queued -= item.data.length;
        if (this._queued <= QUEUE_MAX / 2 && this._socket.isPaused()) this._socket.resume();
        yield item;
        continue;
      }
      if (this._finished) return;
      await new Promise((r) => {
        this._wake = r;
      });
    }
  }

  /** Whether it is still attached (the main process runs and detach() was not called). */
  get attached() {
    return !this._finished;
  }

  /** Bytes (or text, as UTF-8) for the main process's stdin: dropped unless it was created with openStdin. */
  write(data) {
    const buf = Buffer.from(data);
    for (let off = 0; off < buf.length || off === 0; off += STDIN_CHUNK) {
      if (this._finished || !this._send(OP.binary, buf.subarray(off, off + STDIN_CHUNK)))
        throw new InvalidStateError(`box ${this.box.id}: the attachment ended`, { code: 'invalid_state' });
      if (!buf.length) break;
    }
  }

  /** Ends this attachment's input; the main process's stdin stays open for other attachers (docker's -i). */
  closeStdin() {
    this._control({ type: 'stdin_eof' });
  }

  /** Resizes the terminal of a main process created with tty: true. */
  resize(cols, rows) {
    terminalSize(cols, rows, false);
    this._control({ type: 'resize', cols, rows });
  }

  /** Sends a signal (a number or a name such as 'SIGTERM') to the main process. */
  signal(sig) {
    this._control({ type: 'signal', sig: signalNumber(sig) });
  }

  /** Leaves the main process running; wait() then resolves with null. */
  detach() {
    if (this._finished) return;
    this._detached = true;
    this._send(OP.close, Buffer.from([0x03, 0xe8]));
  }

  /**
   * Resolves when the main process ended (its exit code, 128+N for signal N) or detach()
   * was called (null); rejects with InvalidStateError when the box stopped under it.
   * Output nobody iterated is dropped.
   */
  async wait() {
    if (!this._iterating) {
      // Nobody reads: output is dropped, so that a paused socket does not hold back the end.
      this._cb.stdout ??= () => {};
      this._cb.stderr ??= () => {};
      this._queue = [];
      this._queued = 0;
      if (this._socket.isPaused()) this._socket.resume();
    }
    const end = await this._done;
    if (end.error) throw end.error;
    return end.exitCode;
  }
}

/** Box.attach: opens the WebSocket (refusals are typed errors) and returns the Attachment. */
export async function attach(box, { cols = 0, rows = 0, onStdout, onStderr } = {}) {
  terminalSize(cols, rows, true);
  const { socket, head } = await connect(box._client, `/boxes/${encodeURIComponent(box.id)}/attach`);
  const a = new Attachment(box, socket, head, { onStdout, onStderr });
  if (cols && rows) a.resize(cols, rows);
  return a;
}
