// Compiled (not run) by decl.test.mjs with tsc --strict: the SDK's declarations type
// the documented uses, and refuse wrong ones (each @ts-expect-error must be an error).
import {
  Attachment,
  Box,
  Cocoon,
  ExecResult,
  type CodeContext,
  CodeError,
  CodeExecution,
  Result,
  Execution,
  NotFoundError,
  CocoonError,
  Sandbox,
  images,
  loadConfig,
  snapshots,
  Snapshots,
  type CompactResult,
  type Snapshot,
  type FileInfo,
  type ImageInfo,
  type LogLine,
  type MainStatus,
  type HealthStatus,
} from 'cocoon-sdk';

async function main(): Promise<void> {
  const box = await Box.create({ image: 'default', cpus: 1, memory: '512M', env: { A: '1' }, network: 'none', name: 'x', ephemeral: true });
  const r: ExecResult = await box.exec(['echo', 'hi']);
  const svc = await Box.create({ command: ['python3', '-m', 'http.server'], restart: 'on-failure:3' });
  const ms: MainStatus | null = await svc.mainStatus();
  const web = await Box.create({ command: ['sh', '-c', 'sleep 9'], healthcheck: { cmd: 'true', interval: 1, retries: 2, startPeriod: 0, onFailure: 'restart' } });
  const hs: HealthStatus | null = await web.health();
  const healthy: boolean = hs !== null && hs.healthy && hs.status === 'healthy' && hs.lastExitCode === 0;
  await web.wait({ condition: 'healthy', timeoutMs: 60_000 });
  const waited: number | null = await web.wait();
  const exited: boolean = ms !== null && ms.state === 'exited' && ms.exitCode === 0;
  for await (const l of svc.mainLogs({ follow: true, tail: 10, since: '10m', stream: 'stderr' })) {
    const line: LogLine = l;
    const t: string = line.text;
  }
  const xid: number = await svc.execDetached(['sleep', '5'], { env: { A: '1' }, timeout: 10 });
  const ds: MainStatus = await svc.detachedStatus(xid);
  for await (const l of svc.detachedLogs(xid, { stream: 'stdout' })) l.time;
  await svc.killDetached(xid, 15);
  const sh = await Box.create({ command: ['sh'], tty: true, openStdin: true });
  const att: Attachment = await sh.attach({ cols: 80, rows: 24, onStderr: (b: Buffer) => b.length });
  att.write('echo hi\n');
  att.resize(100, 30);
  att.signal('SIGINT');
  att.closeStdin();
  for await (const ev of att) ev.data.length;
  att.detach();
  const attached: boolean = att.attached;
  const attachedExit: number | null = await att.wait();
  // @ts-expect-error: tty is a boolean
  await Box.create({ command: ['sh'], tty: 'yes' });
  // @ts-expect-error: a detached exec has no stdin
  await svc.execDetached(['cat'], { stdin: 'x' });
  // @ts-expect-error: command is an argv array
  await Box.create({ command: 'python3 app.py' });
  const code: number = r.exitCode;
  const out: string = r.stdout;
  const buf: Buffer = r.stdoutBuffer;
  await box.exec({ cmd: 'echo $A', shell: true, cwd: '/tmp', user: 'root', timeout: 5 });
  await box.exec('ls', { shell: true, stdin: 'x', onStdout: (b: Buffer) => b.length });
  const p: Execution = await box.spawn(['cat'], { stdin: 'pipe', tty: true, cols: 80, rows: 24 });
  await p.write('x');
  await p.closeStdin();
  await p.resize(100, 30);
  await p.signal('SIGTERM');
  for await (const ev of p) {
    const s: 'stdout' | 'stderr' = ev.stream;
    const d: Buffer = ev.data;
    void s;
    void d;
  }
  for await (const line of p.lines('stdout')) line.toUpperCase();
  const res = await p.wait();
  void res.timedOut;
  const text: string = await box.fs.readFile('/etc/hostname', 'utf8');
  const bytes: Buffer = await box.fs.readFile('/etc/hostname');
  await box.fs.writeFile('/tmp/a', 'b', { mode: 0o600 });
  const list: FileInfo[] = await box.fs.list('/');
  const when: Date = list[0].mtime;
  await box.fs.upload('.', '/work');
  await box.fs.download('/work', './out', { overwrite: true });
  const st = await box.stats();
  const mem: number | undefined = st.memoryBytes;
  const log: string = await box.logs();
  for await (const l of await box.logs({ follow: true })) l.trim();
  const imgs: ImageInfo[] = await images.list();
  await images.pull('alpine', { onProgress: ({ done, total }) => done / total });
  const cfg = await loadConfig('cocoon.yaml');
  const b2: Box = await Box.fromConfig('cocoon.yaml', cfg.boxes[0].name);
  const sb: Sandbox = await Sandbox.create('python:3.12-slim');
  const r2: CodeExecution = await sb.run('print(1)');
  const codeOut: string = r2.stdout + (r2.text ?? '');
  const ctx: CodeContext = await sb.createCodeContext({ language: 'bash', cwd: '/tmp' });
  const ce = await sb.runCode('x', {
    language: 'python',
    context: ctx,
    timeoutMs: 1000,
    env: { A: 1 },
    onStdout: (t) => t.length,
    onResult: (r: Result) => r.png,
    onError: (e: CodeError) => e.traceback,
    signal: new AbortController().signal,
  });
  const n: number | null = ce.executionCount;
  const first: string[] = ce.logs.stdout.concat(ce.results[0].formats());
  for (const c of await sb.listCodeContexts()) await sb.restartCodeContext(c.id);
  await sb.removeCodeContext(ctx);
  void codeOut, n, first;
  // @ts-expect-error: a language cocoon does not have
  await sb.runCode('x', { language: 'cobol' });
  await sb.kill();
  const boxes: Box[] = await Box.list({ status: 'running' });
  const client = new Cocoon({ url: 'http://127.0.0.1:8100', token: 't' });
  await Box.get('x', { client });
  try {
    await Box.get('nope');
  } catch (e) {
    if (e instanceof NotFoundError) {
      const c: string = e.code;
      void c;
    }
    if (e instanceof CocoonError) void e.status;
  }
  {
    await using disposable = await Box.create({ ephemeral: true });
    void disposable;
  }
  const snap: Snapshot = await box.snapshot({ name: 'before' });
  const restored: Snapshot = await box.restore(snap);
  const merged: CompactResult = await box.compact();
  void merged.released;
  const all: Snapshot[] = await snapshots.list({ box: box.id });
  await new Snapshots(client).remove(snap.id);
  const twin: Box = await box.clone({ name: 'twin', snapshot: snap });
  await box.export('/tmp/box.cocoon', { snapshot: 'before' });
  const imported: Box = await Box.import('/tmp/box.cocoon', { name: 'copy' });
  void [restored.depth, all, (await box.snapshots())[0].createdAt, twin, imported];
  // @ts-expect-error: a snapshot's name is a string
  await box.snapshot({ name: 3 });
  // @ts-expect-error: memory is a size string or a number
  await Box.create({ memory: true });
  // @ts-expect-error: exec takes an argv array, not a number
  await box.exec(42);
  // @ts-expect-error: no such option
  await box.exec(['true'], { timeoutMs: 5 });
  // @ts-expect-error: readFile with an encoding gives a string
  const wrong: Buffer = await box.fs.readFile('/x', 'utf8');
  void [code, out, buf, text, bytes, when, mem, log, imgs, b2, r2, boxes, wrong];
  await client.close();
}
void main;
