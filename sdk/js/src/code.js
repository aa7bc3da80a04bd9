// The code interpreter over REST: box.runCode posts to .../code and reads the run's
// NDJSON events (stdout, stderr, result, error, number_of_executions) as they come,
// calling the callbacks and building a CodeExecution (results, logs, error,
// executionCount: the shape of E2B's code-interpreter SDK). Contexts are the
// .../code/contexts routes.
import { CocoonError, ConnectionError, InvalidArgumentError } from './errors.js';

const LINE_MAX = 64 << 20; // one event line (a PNG result in base64); the library's own bound is below
const FORMATS = ['text', 'html', 'markdown', 'svg', 'png', 'jpeg', 'latex', 'json', 'javascript'];

// What runCode accepts; the old API ran 'shell'/'sh' with /bin/sh and 'python3'/'py' as python.
const LANGUAGES = {
  python: 'python', python3: 'python', py: 'python',
  javascript: 'javascript', js: 'javascript', node: 'javascript',
  bash: 'bash', shell: 'bash', sh: 'bash',
};

/** cocoon's name of a language ('python', 'javascript' or 'bash'). */
export function languageOf(language = 'python') {
  const lang = LANGUAGES[String(language).toLowerCase()];
  if (!lang)
    throw new InvalidArgumentError(`runCode: language "${language}" is not supported (python, javascript or bash; also py, js, shell, sh)`, {
      code: 'invalid_argument',
    });
  return lang;
}

/** A value the code produced, in every form it has (png/jpeg are base64 text). */
export class Result {
  constructor(ev) {
    for (const k of FORMATS) if (ev[k] !== undefined) this[k] = ev[k];
    this.isMainResult = !!ev.is_main_result;
    const extra = {};
    for (const [k, v] of Object.entries(ev)) if (!FORMATS.includes(k) && k !== 'type' && k !== 'is_main_result') extra[k] = v;
    this.extra = extra;
  }

  /** The forms this result has ('text', 'png', ...). */
  formats() {
    return [...FORMATS.filter((k) => this[k] !== undefined), ...Object.keys(this.extra)];
  }

  toString() {
    return this.text ?? '';
  }
}

/** The exception the code raised (the context is kept). */
export class CodeError {
  constructor(name, value, traceback) {
    this.name = name;
    this.value = value;
    this.traceback = traceback;
  }

  toString() {
    return `${this.name}: ${this.value}`;
  }
}

/** One runCode: results, logs {stdout, stderr} (arrays of text), error, executionCount. */
export class CodeExecution {
  constructor() {
    this.results = [];
    this.logs = { stdout: [], stderr: [] };
    this.error = null;
    this.executionCount = null;
  }

  /** The text of the main result (the last expression's value), or undefined. */
  get text() {
    return this.results.find((r) => r.isMainResult)?.text;
  }

  /** The logs joined, as the ExecResult of the old runCode had them. */
  get stdout() {
    return this.logs.stdout.join('');
  }

  get stderr() {
    return this.logs.stderr.join('');
  }

  toJSON() {
    return { results: this.results, logs: this.logs, error: this.error, executionCount: this.executionCount };
  }
}

/** POST .../code and its stream: resolves with the CodeExecution. */
export async function runCode(client, boxPath, code, opts = {}) {
  if (typeof code !== 'string') throw new TypeError('runCode: the code is a string');
  const { language, context, env, timeoutMs, onStdout, onStderr, onResult, onError, signal } = opts;
  const body = { code, language: languageOf(language) };
  const ctx = typeof context === 'object' && context !== null ? context.id : context;
  if (ctx) body.context = String(ctx);
  if (env) body.env = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  if (timeoutMs !== undefined && timeoutMs !== null) {
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0))
      throw new InvalidArgumentError('runCode: timeoutMs is a number of milliseconds (0: none)', { code: 'invalid_argument' });
    if (timeoutMs > 0) body.timeout_seconds = timeoutMs / 1000;
  }
  const res = await client.open('POST', boxPath + '/code', { json: body, headers: { Accept: 'application/x-ndjson' }, signal });
  const ex = new CodeExecution();
  let ended = false;
  let failure = null; // the run failed on the server after it began (an error event named CocoonError)
  const take = (ev) => {
    switch (ev.type) {
      case 'stdout':
        ex.logs.stdout.push(ev.text);
        onStdout?.(ev.text);
        break;
      case 'stderr':
        ex.logs.stderr.push(ev.text);
        onStderr?.(ev.text);
        break;
      case 'result': {
        const r = new Result(ev);
        ex.results.push(r);
        onResult?.(r);
        break;
      }
      case 'error':
        if (ev.name === 'CocoonError' && !ev.traceback) {
          failure = new CocoonError(`runCode: ${ev.value}`);
          break;
        }
        ex.error = new CodeError(ev.name, ev.value, ev.traceback);
        onError?.(ex.error);
        break;
      case 'number_of_executions':
        ex.executionCount = ev.execution_count;
        ended = true;
        break;
      default:
        break;
    }
  };
  let partial = Buffer.alloc(0);
  try {
    for await (const chunk of res) {
      partial = partial.length ? Buffer.concat([partial, chunk]) : chunk;
      let nl;
      while ((nl = partial.indexOf(10)) >= 0) {
        const line = partial.subarray(0, nl).toString('utf8').trim();
        partial = partial.subarray(nl + 1);
        if (!line) continue;
        let ev;
        try {
          ev = JSON.parse(line);
        } catch {
          throw new ConnectionError('runCode: the server sent an event that is not JSON');
        }
        take(ev); // a callback that throws ends the stream: the server interrupts the run
      }
      if (partial.length > LINE_MAX) throw new ConnectionError(`runCode: an event line longer than ${LINE_MAX} bytes`);
    }
  } catch (e) {
    res.destroy(); // a callback threw, the caller aborted, or the stream broke
    if (signal?.aborted) throw signal.reason ?? e; // as fetch does: an AbortError unless given another reason
    throw e;
  }
  if (failure) throw failure;
  if (signal?.aborted) throw signal.reason;
  if (!ended) throw new ConnectionError('runCode: the event stream ended before the run did');
  return ex;
}

/** A context's description ({id, language, cwd}). */
export function contextOf(c) {
  return { id: String(c.id), language: String(c.language ?? ''), cwd: String(c.cwd ?? '') };
}
