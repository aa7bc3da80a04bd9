// The code interpreter: state kept between runs, output as it comes, results, errors, a
// timeout that keeps the context, and a context of its own.
// Run: node examples/js/code.mjs
import { Box } from '../../sdk/js/src/index.js';

const box = await Box.create({ memory: '512M', ephemeral: true });
try {
  await box.runCode('x = 20');
  const ex = await box.runCode("import os\nos.chdir('/tmp')\nprint('in', os.getcwd())\nx + 22", {
    onStdout: (text) => process.stdout.write(`streamed: ${text}`),
  });
  console.log(`text: ${ex.text} | stdout: ${JSON.stringify(ex.logs.stdout)} | count: ${ex.executionCount}`);

  const { error } = await box.runCode('def f():\n    return 1 / 0\nf()');
  console.log(`error: ${error.name}: ${error.value}`);

  const slow = await box.runCode('while True: pass', { timeoutMs: 2000 });
  console.log(`timeout: ${slow.error.name} | x is still ${(await box.runCode('x')).text}`);

  const ctx = await box.createCodeContext({ language: 'bash', cwd: '/etc' });
  await box.runCode('N=$(ls | wc -l)', { context: ctx });
  process.stdout.write((await box.runCode('echo "$N entries in $PWD"', { context: ctx })).stdout);
  await box.removeCodeContext(ctx);
} finally {
  await box.close();
}
