// Output as it comes (an async iterator), stdin written piece by piece, a signal, and
// many commands at once. Run: node examples/js/stream.mjs
import { Box } from '../../sdk/js/src/index.js';

const box = await Box.create({ ephemeral: true });
try {
  const ticker = await box.spawn(['sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 0.2; done; echo done >&2']);
  for await (const { stream, data } of ticker) process.stdout.write(`[${stream}] ${data}`);
  console.log('exit', (await ticker.wait()).exitCode);

  const cat = await box.spawn(['tr', 'a-z', 'A-Z'], { stdin: 'pipe' });
  await cat.write('piped ');
  await cat.write('through the box\n');
  await cat.closeStdin();
  process.stdout.write((await cat.wait()).stdout);

  const sleeper = await box.spawn(['sh', '-c', 'trap "echo caught TERM; exit 0" TERM; while :; do sleep 0.1; done']);
  setTimeout(() => sleeper.signal('SIGTERM'), 500);
  process.stdout.write((await sleeper.wait()).stdout);

  const results = await Promise.all([1, 2, 3, 4].map((n) => box.exec(['sh', '-c', `sleep 0.3; echo job ${n}`])));
  console.log(results.map((r) => r.stdout.trim()).join(', '));
} finally {
  await box.close();
}
