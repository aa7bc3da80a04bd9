// Type declarations of the cocoon SDK (hand-written; they follow src/*.js, and
// tests/sdk/js checks them with tsc when it can be installed).
/// <reference types="node" />
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';

// ---- errors ----

/** Error codes of the REST API's envelope (docs/openapi.yaml, ErrorModel.code). */
export type ErrorCode =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'method_not_allowed'
  | 'already_exists'
  | 'invalid_state'
  | 'unsupported'
  | 'image_pull_failed'
  | 'execution_failed'
  | 'boot_failed'
  | 'resource_exhausted'
  | 'storage_error'
  | 'internal'
  | 'timeout';

export class CocoonError extends Error {
  constructor(message: string, opts?: { code?: string; status?: number; type?: string; cause?: unknown });
  /** The envelope's code (clients dispatch on it, or on the class). */
  readonly code: ErrorCode | string;
  /** The HTTP status (0 when no answer was had). */
  readonly status: number;
  /** BoxLite's error type name, as the server sent it. */
  readonly type: string;
}
export class InvalidArgumentError extends CocoonError {}
export class AuthError extends CocoonError {}
export class PermissionDeniedError extends CocoonError {}
export class NotFoundError extends CocoonError {}
export class MethodNotAllowedError extends CocoonError {}
export class AlreadyExistsError extends CocoonError {}
export class InvalidStateError extends CocoonError {}
export class UnsupportedError extends CocoonError {}
export class ImagePullError extends CocoonError {}
export class ExecutionError extends CocoonError {}
export class BootFailedError extends CocoonError {}
export class ResourceExhaustedError extends CocoonError {}
export class StorageError extends CocoonError {}
export class InternalError extends CocoonError {}
export class TimeoutError extends CocoonError {}
/** The server could not be reached or started, or it broke the protocol. */
export class ConnectionError extends CocoonError {}
/** The box runs and the call needs it stopped (snapshot, restore, export). */
export class BoxRunningError extends InvalidStateError {}
/** A snapshot a box or another snapshot stands on cannot be removed. */
export class SnapshotInUseError extends InvalidStateError {}
/** No snapshot with that id, name or id prefix. */
export class SnapshotNotFoundError extends NotFoundError {}
export function errorClass(code: string): typeof CocoonError;
export function makeError(status: number, envelope: unknown, fallback?: string): CocoonError;

// ---- the connection ----

export interface CocoonOptions {
  /** 'http://HOST:PORT', 'https://HOST:PORT' or 'unix:/path/cocoon.sock'; default $COCOON_URL, else a private server. */
  url?: string;
  /** A unix socket path (the same as url 'unix:PATH'). */
  socketPath?: string;
  /** Bearer token for a TCP server (default $COCOON_TOKEN). */
  token?: string;
  /** The cocoon program for the private server (default: $COCOON_BIN_DIR/cocoon, the build tree, PATH). */
  bin?: string;
  /** Environment for the private server and for finding it (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  json?: unknown;
  body?: Buffer | Uint8Array | string | Readable | AsyncIterable<Uint8Array>;
  headers?: Record<string, string | number>;
  signal?: AbortSignal;
}

export class Cocoon {
  constructor(opts?: CocoonOptions);
  /** The client Box.create() and the others use when given none. */
  static default(): Cocoon;
  /** The private server's pid, or null (connected to a URL, or not started). */
  readonly serverPid: number | null;
  /** Where requests go ('unix:...' or an origin; '' before a private server started). */
  readonly address: string;
  readonly token: string | null;
  /** One request; the response once its headers arrived (an error status rejects with its typed error). */
  open(method: string, path: string, opts?: RequestOptions): Promise<IncomingMessage>;
  /** One request whose answer is JSON (null when empty). */
  call<T = any>(method: string, path: string, opts?: RequestOptions): Promise<T>;
  /** Counts a handle that keeps the private server up; release() undoes it. */
  retain(): void;
  release(): void;
  /** Stops the private server (if this client started one) and closes idle connections. */
  close(): Promise<void>;
}

// ---- boxes ----

export type NetworkMode = 'public' | 'enabled' | 'none' | 'disabled' | 'open';
export interface NetworkOptions {
  mode?: NetworkMode;
  /** Only these hosts are reachable (names, *.wildcards, addresses, CIDRs, with :PORT[/tcp|udp]). */
  allow?: string[];
  /** Refused destinations (checked before allow). `block` is the same. */
  deny?: string[];
  block?: string[];
  /** Raw first-match rules ('allow api.example.com', 'deny 10.0.0.0/8:22/tcp'), before deny and allow. */
  rules?: string[];
}
export type PortOption = string | number | { hostPort: number; guestPort: number; protocol?: 'tcp' | 'udp'; hostIp?: string };

export interface BoxCreateOptions {
  /** An image reference (pulled when not here) or a built-in image; default 'default'. */
  image?: string;
  /** A host directory as the root (unix socket only). */
  rootfs?: string;
  name?: string;
  cpus?: number;
  /** '512M', '2G', or a number of MiB. */
  memory?: string | number;
  /** '10G', '500M', or a number of MiB. */
  disk?: string | number;
  env?: Record<string, string | number | boolean>;
  /** Default working directory of commands (cwd is the same). */
  workdir?: string;
  cwd?: string;
  /** Default user of commands: name, uid or uid:gid. */
  user?: string | number;
  /** Removed when it stops (and, through the private server, when this process ends). */
  ephemeral?: boolean;
  labels?: Record<string, string>;
  /** A mode, true (public), false (none), or a policy. */
  network?: NetworkMode | boolean | NetworkOptions;
  /** Published ports: 'HOST:GUEST[/udp]', 'HOSTIP:HOST:GUEST', a number (same port), or an object. */
  ports?: PortOption[];
  /** false: do not boot now (the first command boots it). Default true. */
  start?: boolean;
  idempotencyKey?: string;
  /** The box's main process: run by the box at each boot (after the image's entrypoint), with env, workdir and user. */
  command?: string[];
  /** Its restart policy: 'no' (default), 'on-failure', 'on-failure:N', 'always', 'unless-stopped'. */
  restart?: string;
  /** The main process runs on a terminal (its output is stdout only; attachers may resize it), as `cocoon run -d -t`. */
  tty?: boolean;
  /** The main process keeps its stdin open for attachers (Box.attach), as `cocoon run -d -i`. */
  openStdin?: boolean;
  /** A health check run in the box from its start (see Box.health, Box.wait). */
  healthcheck?: HealthCheckOptions;
  /** Secrets the box never sees: {NAME: host or [hosts]}. Inside the box $NAME holds a placeholder; cocoon puts
   * the value (from the server's environment, at each start) in HTTPS request headers to those hosts only. */
  secrets?: Record<string, string | string[]>;
  /** 'HOST:Name=Value': a header set on HTTPS requests to HOST ({{NAME}}: secret NAME's value). */
  headerRules?: string[];
  /** Hosts whose TLS cocoon intercepts with the box's own CA. */
  tlsIntercept?: string[];
  /** Hosts a box with secrets does not intercept. */
  tlsBypass?: string[];
  /** {NAME: ['query', 'body']}: where else than headers secret NAME's value may go. */
  secretIn?: Record<string, string | string[]>;
  /** What a placeholder sent where it may not does: 'block', 'block-and-log' (the default) or 'block-and-stop-box'. */
  secretViolation?: 'block' | 'block-and-log' | 'block-and-stop-box';
  client?: Cocoon;
}

export interface HealthCheckOptions {
  /** Shell text (run with /bin/sh -c) or an argv array (run as is). */
  cmd: string | string[];
  /** Seconds between the end of a run and the next (default 30, at least 1). */
  interval?: number;
  /** Seconds a run may take before it is killed and fails (default 30, at least 1). */
  timeout?: number;
  /** Failures in a row that make the box unhealthy (default 3). */
  retries?: number;
  /** Seconds after the start in which failures do not count (default 0). */
  startPeriod?: number;
  /** What being unhealthy does: 'none' (default), 'restart' (the main process) or 'stop' (the box). */
  onFailure?: 'none' | 'restart' | 'stop';
}

/** A box's health check (Box.health): as set at create, and its state while the box runs. */
export interface HealthStatus {
  test: string;
  interval: number;
  timeout: number;
  retries: number;
  startPeriod: number;
  onFailure: string;
  /** null while the box is stopped. */
  status: 'starting' | 'healthy' | 'unhealthy' | null;
  healthy: boolean;
  failingStreak: number;
  lastExitCode: number | null;
  lastOutput: string | null;
}

export type WaitCondition = 'exited' | 'healthy' | 'running';

export type RunState = 'created' | 'starting' | 'running' | 'restarting' | 'exited' | 'stopped';

/** A box's main process (Box.mainStatus) or a detached exec (Box.detachedStatus: with id and boxId). */
export interface MainStatus {
  state: RunState;
  running: boolean;
  pid: number | null;
  exitCode: number | null;
  signal: number | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** Main process only. */
  command?: string;
  restart?: string;
  restarts?: number;
  nextRestartAt?: string | null;
  /** Detached exec only. */
  id?: number;
  boxId?: string;
}

/** One line of output (without its newline), with the time the host received it. */
export interface LogLine {
  time: string | null;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface LogOptions {
  /** Until the box stops (leave the loop to stop earlier). */
  follow?: boolean;
  /** Only the last N lines. */
  tail?: number;
  /** From this time on: "2026-12-03T14:00:00Z", "2026-12-03", a unix time, or a duration back from now ("10m"). */
  since?: string;
  stream?: 'stdout' | 'stderr';
}

export interface BoxInfo {
  boxId: string;
  name: string | null;
  status: 'configured' | 'running' | 'stopping' | 'stopped' | 'paused' | 'failed' | 'unknown';
  createdAt: string;
  updatedAt: string;
  pid: number | null;
  image: string;
  imageId: string;
  cpus: number;
  memoryMib: number;
  diskSizeBytes: number;
  ephemeral: boolean;
  accel: string;
  labels: Record<string, string>;
  env?: Record<string, string>;
  workingDir?: string;
  user?: string;
  [key: string]: unknown;
}

export type StdinSource = string | Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array | string> | 'pipe' | null;
export type Command = string[] | string | ({ cmd: string[] | string; shell?: boolean } & ExecOptions);

export interface ExecOptions {
  /** Run the command string (or the argv joined with spaces) with /bin/sh -c. */
  shell?: boolean;
  /** With shell: the string's $0, $1... */
  args?: string[];
  env?: Record<string, string | number | boolean>;
  cwd?: string;
  workdir?: string;
  user?: string | number;
  /** Seconds; the command is killed after it (status 'timed_out', exit code 137). */
  timeout?: number;
  /** Run on a pseudo-terminal (stdout and stderr merged). */
  tty?: boolean;
  cols?: number;
  rows?: number;
  /** The command survives its reader going away. */
  detach?: boolean;
  /** stdin data or a stream (closed at its end); 'pipe' keeps stdin open for write(); default closed (tty: 'pipe'). */
  stdin?: StdinSource;
  onStdout?: (data: Buffer) => void;
  onStderr?: (data: Buffer) => void;
  onExit?: (info: ExecutionInfoRaw) => void;
  /** Aborting kills the command. */
  signal?: AbortSignal;
}

/** ExecutionInfo as the server sends it (snake_case). */
export interface ExecutionInfoRaw {
  execution_id: string;
  box_id: string;
  status: ExecStatus;
  exit_code: number | null;
  signal: number | null;
  started_at: string;
  duration_ms: number;
  error_message: string | null;
  command: string;
  tty: boolean;
  detach: boolean;
  output_dropped_bytes: number;
}
export type ExecStatus = 'running' | 'completed' | 'killed' | 'timed_out';

export class ExecResult {
  readonly executionId: string;
  /** 128+N after signal N, 137 after a timeout, 127/126 when the program could not be started. */
  readonly exitCode: number;
  readonly signal: number | null;
  readonly status: ExecStatus;
  readonly timedOut: boolean;
  readonly durationMs: number;
  readonly errorMessage: string | null;
  readonly outputDroppedBytes: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly stdoutBuffer: Buffer;
  readonly stderrBuffer: Buffer;
  /** exitCode === 0 */
  readonly ok: boolean;
}

export interface OutputEvent {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

export class Execution implements AsyncIterable<OutputEvent> {
  readonly id: string;
  readonly box: Box;
  /** Whether the command ended. */
  readonly done: boolean;
  [Symbol.asyncIterator](): AsyncIterator<OutputEvent>;
  /** Text lines of output (of one stream when given). */
  lines(stream?: 'stdout' | 'stderr'): AsyncIterable<string>;
  /** The end: an ExecResult with the output no iterator or callback took. */
  wait(): Promise<ExecResult>;
  write(data: string | Buffer | Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  pipeFrom(source: Readable | AsyncIterable<Uint8Array | string>): Promise<void>;
  /** A number 1-64 or a name ('SIGTERM', 'TERM'). */
  signal(sig: number | string): Promise<void>;
  kill(): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
  info(): Promise<ExecutionInfoRaw>;
}

export interface AttachOptions {
  /** The terminal size given to a main process on a terminal (both, 1-65535; default: unchanged). */
  cols?: number;
  rows?: number;
  /** Output to these callbacks instead of the async iterator. */
  onStdout?: (data: Buffer) => void;
  onStderr?: (data: Buffer) => void;
}

/** An attachment to a box's main process (Box.attach); its output from the moment it attached. */
export class Attachment implements AsyncIterable<OutputEvent> {
  readonly box: Box;
  /** Still attached: the main process runs and detach() was not called. */
  readonly attached: boolean;
  [Symbol.asyncIterator](): AsyncIterator<OutputEvent>;
  /** To the main process's stdin (dropped unless created with openStdin); InvalidStateError once it ended. */
  write(data: string | Buffer | Uint8Array): void;
  /** Ends this attachment's input; the main process's stdin stays open for others. */
  closeStdin(): void;
  resize(cols: number, rows: number): void;
  /** A number 1-64 or a name ('SIGTERM', 'TERM'). */
  signal(sig: number | string): void;
  /** Leaves the main process running; wait() then resolves with null. */
  detach(): void;
  /** The main process's exit code (128+N for signal N), or null after detach(); InvalidStateError when the box stopped. */
  wait(): Promise<number | null>;
}

export type FileType = 'file' | 'directory' | 'symlink' | 'other';
export interface FileInfo {
  name: string;
  path: string;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkTarget: string | null;
}

export class Files {
  readonly box: Box;
  readFile(path: string): Promise<Buffer>;
  readFile(path: string, encoding: BufferEncoding): Promise<string>;
  readFile(path: string, opts: { encoding: BufferEncoding; maxBytes?: number }): Promise<string>;
  readFile(path: string, opts: { maxBytes?: number }): Promise<Buffer>;
  writeFile(path: string, data: string | Buffer | Uint8Array, opts?: { mode?: number; encoding?: BufferEncoding }): Promise<void>;
  upload(local: string, remote: string, opts?: { overwrite?: boolean }): Promise<void>;
  uploadTar(tar: Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>, remote: string, opts?: { overwrite?: boolean }): Promise<void>;
  downloadTar(remote: string, opts?: { followSymlinks?: boolean }): Promise<IncomingMessage>;
  download(
    remote: string,
    local: string,
    opts?: { overwrite?: boolean; followSymlinks?: boolean; maxBytes?: number; maxEntries?: number },
  ): Promise<void>;
  list(path: string): Promise<FileInfo[]>;
  stat(path: string): Promise<FileInfo>;
  exists(path: string): Promise<boolean>;
  mkdir(path: string, opts?: { parents?: boolean; mode?: number }): Promise<FileInfo>;
  remove(path: string, opts?: { recursive?: boolean }): Promise<void>;
  move(from: string, to: string, opts?: { noReplace?: boolean }): Promise<FileInfo>;
}

export interface BoxStats {
  boxId: string;
  commandsExecutedTotal: number;
  execErrorsTotal: number;
  bytesSentTotal: number;
  bytesReceivedTotal: number;
  bootTiming?: { guestBootMs: number; kernelBootMs: number; agentInitMs: number };
  cpuPercent?: number;
  memoryBytes?: number;
  memoryTotalBytes?: number;
  diskUsedBytes?: number;
  diskTotalBytes?: number;
  processes?: number;
  uptimeSeconds?: number;
  load1?: number;
  networkBytesSent?: number;
  networkBytesReceived?: number;
  networkTcpConnections?: number;
  networkDeniedTotal?: number;
  [key: string]: unknown;
}

export interface NetworkStats {
  present: boolean;
  deniedTotal: number;
  deniedTcp: number;
  deniedUdp: number;
  deniedIcmp: number;
  deniedDns: number;
  deniedTls: number;
  tcpConnections: number;
  udpFlows: number;
  dnsQueries: number;
  dnsStripped: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  droppedMalformed: number;
}

// ---- the code interpreter ----

/** 'python', 'javascript' (Node; the code-interpreter image) or 'bash', and their aliases. */
export type CodeLanguage = 'python' | 'python3' | 'py' | 'javascript' | 'js' | 'node' | 'bash' | 'shell' | 'sh';
/** A value the code produced, in every form it has (png/jpeg: base64). */
export class Result {
  text?: string;
  html?: string;
  markdown?: string;
  svg?: string;
  png?: string;
  jpeg?: string;
  latex?: string;
  json?: unknown;
  javascript?: string;
  /** The last expression's value (else a figure or other display). */
  isMainResult: boolean;
  /** Forms this SDK does not name. */
  extra: Record<string, unknown>;
  formats(): string[];
  toString(): string;
}
/** The exception the code raised (the context is kept). */
export class CodeError {
  name: string;
  value: string;
  traceback: string;
  toString(): string;
}
export class CodeExecution {
  results: Result[];
  logs: { stdout: string[]; stderr: string[] };
  error: CodeError | null;
  executionCount: number | null;
  /** The main result's text. */
  readonly text: string | undefined;
  /** logs.stdout joined. */
  readonly stdout: string;
  readonly stderr: string;
  toJSON(): { results: Result[]; logs: { stdout: string[]; stderr: string[] }; error: CodeError | null; executionCount: number | null };
}
export interface CodeContext {
  id: string;
  language: 'python' | 'javascript' | 'bash';
  cwd: string;
}
export interface RunCodeOptions {
  language?: CodeLanguage;
  /** A context id or one from createCodeContext (default: the language's default context). */
  context?: string | CodeContext;
  /** Set for this run only. */
  env?: Record<string, string | number>;
  /** Interrupts the run (Python: KeyboardInterrupt in .error); the context stays. */
  timeoutMs?: number;
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
  onResult?: (result: Result) => void;
  onError?: (error: CodeError) => void;
  signal?: AbortSignal;
}

export class Box {
  /** Made by Box.create, Box.get and Box.list (not meant to be called directly). */
  constructor(client: Cocoon, info: unknown, opts?: { held?: boolean; owned?: boolean });
  static create<T extends typeof Box>(this: T, opts?: BoxCreateOptions | string): Promise<InstanceType<T>>;
  static get<T extends typeof Box>(this: T, idOrName: string, opts?: { client?: Cocoon }): Promise<InstanceType<T>>;
  static list<T extends typeof Box>(this: T, opts?: { client?: Cocoon; status?: BoxInfo['status'] }): Promise<InstanceType<T>[]>;
  /** The box `name` of a cocoon.yaml (the only one when no name), created when it does not exist. */
  static fromConfig<T extends typeof Box>(this: T, path: string, name?: string, opts?: { client?: Cocoon }): Promise<InstanceType<T>>;
  readonly id: string;
  readonly name: string | null;
  readonly status: BoxInfo['status'];
  readonly info: BoxInfo;
  readonly fs: Files;
  /** Named scripts of the cocoon.yaml a box came from (fromConfig), as argv arrays. */
  scripts?: Record<string, string[]>;
  refresh(): Promise<BoxInfo>;
  start(): Promise<this>;
  stop(opts?: { timeout?: number; force?: boolean }): Promise<this>;
  remove(opts?: { force?: boolean }): Promise<void>;
  /** A box this handle created is stopped (an ephemeral one is then removed); the last handle stops the private server. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
  exec(cmd: Command, opts?: ExecOptions): Promise<ExecResult>;
  spawn(cmd: Command, opts?: ExecOptions): Promise<Execution>;
  /** Code in a stateful context (cocoon's code interpreter); code that raised is .error, not a rejection. */
  runCode(code: string, opts?: RunCodeOptions): Promise<CodeExecution>;
  createCodeContext(opts?: { language?: CodeLanguage; cwd?: string }): Promise<CodeContext>;
  listCodeContexts(): Promise<CodeContext[]>;
  /** Its interpreter starts afresh (state lost), same id. */
  restartCodeContext(context: string | CodeContext): Promise<void>;
  removeCodeContext(context: string | CodeContext): Promise<void>;
  script(name: string, opts?: ExecOptions): Promise<ExecResult>;
  executions(): Promise<Array<Record<string, unknown>>>;
  stats(): Promise<BoxStats>;
  networkStats(): Promise<NetworkStats>;
  logs(opts?: { follow?: false }): Promise<string>;
  logs(opts: { follow: true }): Promise<AsyncIterable<string>>;
  /** The box's main process, or null without one. */
  mainStatus(): Promise<MainStatus | null>;
  /** The health check and its status, or null for a box created without one. */
  health(): Promise<HealthStatus | null>;
  /** Until condition holds (default 'exited': resolves with the main process's exit code; else null). */
  wait(opts?: { condition?: WaitCondition; timeoutMs?: number }): Promise<number | null>;
  /** The main process's output (InvalidStateError without one). */
  mainLogs(opts?: LogOptions): AsyncIterable<LogLine>;
  /** A command the box itself runs (no stdin, no terminal); resolves with its id. */
  execDetached(cmd: Command, opts?: Pick<ExecOptions, 'shell' | 'args' | 'env' | 'cwd' | 'workdir' | 'user' | 'timeout'>): Promise<number>;
  /** Attaches to the running main process (InvalidStateError when not running, ResourceExhaustedError at 8 attachers). */
  attach(opts?: AttachOptions): Promise<Attachment>;
  detachedStatus(id: number): Promise<MainStatus>;
  detachedLogs(id: number, opts?: LogOptions): AsyncIterable<LogLine>;
  killDetached(id: number, signal?: number): Promise<void>;
  networkLog(opts?: { follow?: false }): Promise<string>;
  networkLog(opts: { follow: true }): Promise<AsyncIterable<string>>;
  /** Freezes the stopped box's disk as a snapshot (BoxRunningError while it runs). */
  snapshot(opts?: { name?: string } | string): Promise<Snapshot>;
  /** The snapshots taken of this box, oldest first. */
  snapshots(): Promise<Snapshot[]>;
  /** Puts the stopped box's disk back to one of its snapshots; resolves with it. */
  restore(snapshot: string | Snapshot): Promise<Snapshot>;
  /** Merges the stopped box's disk layers into one over its image (BoxRunningError while it runs). */
  compact(): Promise<CompactResult>;
  /** Writes the stopped box (or one of its snapshots) to one file that Box.import makes a new box of. */
  export(path: string, opts?: { snapshot?: string | Snapshot }): Promise<void>;
  /** A new, stopped box over a copy-on-write layer of this stopped box's disk (or one of its snapshots). */
  clone(opts?: { name?: string; snapshot?: string | Snapshot }): Promise<this>;
  /** New running boxes that go on from this running box's state (qemu backend): one capture, count children. */
  fork(opts?: { count?: number; name?: string }): Promise<this[]>;
  /** A new, stopped box from a file of export (verified whole first). */
  static import<T extends typeof Box>(this: T, path: string, opts?: { name?: string; client?: Cocoon }): Promise<InstanceType<T>>;
}

/** Aliases for people coming from other sandbox SDKs (an ephemeral Box; run = runCode; kill = remove). */
export class Sandbox extends Box {
  static create<T extends typeof Box>(this: T, image?: string | BoxCreateOptions, opts?: BoxCreateOptions): Promise<InstanceType<T>>;
  run(code: string, opts?: RunCodeOptions): Promise<CodeExecution>;
  kill(): Promise<void>;
}

// ---- images ----

export interface ImageInfo {
  id: string;
  reference: string;
  repository: string;
  tag: string;
  sizeBytes: number;
  createdAt: string;
  cachedAt: string;
  boxes: number;
  builtin: boolean;
  configDigest: string;
  references: string[];
  config?: Record<string, unknown> | null;
}
export interface PullProgress {
  layer: string;
  done: number;
  total: number;
}
export class Images {
  constructor(client?: Cocoon);
  list(): Promise<ImageInfo[]>;
  get(ref: string): Promise<ImageInfo>;
  exists(ref: string): Promise<boolean>;
  pull(ref: string, opts?: { onProgress?: (p: PullProgress) => void; insecure?: boolean }): Promise<ImageInfo>;
  load(source: string | Buffer | Readable | AsyncIterable<Uint8Array>): Promise<ImageInfo[]>;
  remove(ref: string): Promise<void>;
}
/** The images of the default client. */
export const images: Images;

// ---- disk snapshots ----

/** What Box.compact merged. */
export interface CompactResult {
  /** qcow2 layers over the image before: the top and its snapshots' layers (1: nothing to do). */
  layersBefore: number;
  layersAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  dataClusters: number;
  /** Clusters written as zeros (hiding data of the image). */
  zeroClusters: number;
  /** Ids of the snapshots the box no longer stands on. */
  released: string[];
}

export interface Snapshot {
  id: string;
  name: string;
  /** The box it was taken of (it may have been removed since). */
  boxId: string;
  boxName?: string;
  /** The snapshot it stands on; null when it stands on the image. */
  parent?: string | null;
  image: string;
  /** Unix seconds. */
  createdAt: number;
  /** Bytes its layer takes on the host (containerDiskBytes, for BoxLite's client, says the same). */
  sizeBytes: number;
  containerDiskBytes?: number;
  virtualSizeBytes: number;
  /** Snapshots under the box's disk at this one, itself included (at most 14). */
  depth: number;
  /** Boxes and snapshots standing on it (it cannot be removed while above 0). */
  users: number;
}
export class Snapshots {
  constructor(client?: Cocoon);
  list(opts?: { box?: string }): Promise<Snapshot[]>;
  get(snapshot: string | Snapshot): Promise<Snapshot>;
  remove(snapshot: string | Snapshot): Promise<void>;
  /** Writes a snapshot to one file, as Box.export does a box. */
  export(snapshot: string | Snapshot, path: string): Promise<void>;
}
/** The snapshots of the default client. */
export const snapshots: Snapshots;

// ---- cocoon.yaml ----

export interface ConfigBox {
  name: string;
  image: string | null;
  rootfs: string | null;
  cpus: number;
  memory_mib: number;
  disk_bytes: number;
  env: Record<string, string> | null;
  workdir: string | null;
  user: string | null;
  ephemeral: boolean;
  network: { mode: string | null; rules: string[]; ports: string[] } | null;
  scripts: Record<string, string[]> | null;
  digest: string;
}
export interface Config {
  file: string;
  boxes: ConfigBox[];
}
/** Reads and checks a cocoon.yaml with `cocoon config -f FILE --json`. */
export function loadConfig(path?: string, opts?: { bin?: string; env?: NodeJS.ProcessEnv }): Promise<Config>;
