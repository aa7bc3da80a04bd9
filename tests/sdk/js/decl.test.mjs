// The SDK's hand-written declarations (sdk/js/index.d.ts) against its code: tsc --strict
// compiles types_usage.ts (the documented uses type-check, wrong ones are refused), and
// every export and every public method of the code is declared, and the reverse.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { HERE, REPO, SDK } from './helpers.mjs';

const sdk = await import(SDK);
const DTS = path.join(REPO, 'sdk', 'js', 'index.d.ts');

// typescript and @types/node, pinned in tests/js/package.json, from scripts/npm-deps
// (exit 3: the npm registry cannot be reached, so these checks are skipped).
let nodeModules = process.env.COCOON_NODE_MODULES || '';
let why = false;
if (!nodeModules) {
  const r = spawnSync(path.join(REPO, 'scripts', 'npm-deps'), { encoding: 'utf8' });
  if (r.status === 0) nodeModules = r.stdout.trim();
  else why = r.status === 3 ? `skipped: ${r.stderr.trim()}` : `scripts/npm-deps failed: ${r.stderr}`;
}
if (why && !why.startsWith('skipped')) throw new Error(why);

describe('declarations', { skip: why }, () => {
  it('type-check the documented uses with tsc --strict and refuse wrong ones', () => {
    const tsc = path.join(nodeModules, 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(HERE, 'tsconfig.json'), '--typeRoots', path.join(nodeModules, '@types')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('declare exactly what the code exports, and every public method', async () => {
    const ts = (await import(pathToFileURL(path.join(nodeModules, 'typescript', 'lib', 'typescript.js')).href)).default;
    const program = ts.createProgram([DTS], { strict: true, types: [], typeRoots: [path.join(nodeModules, '@types')] });
    const checker = program.getTypeChecker();
    const mod = checker.getSymbolAtLocation(program.getSourceFile(DTS));
    const declared = new Map(checker.getExportsOfModule(mod).map((s) => [s.name, s]));
    const values = [...declared].filter(([, s]) => s.flags & (ts.SymbolFlags.Value)).map(([n]) => n).sort();
    assert.deepEqual(values, Object.keys(sdk).sort(), 'exported values');
    for (const [name, value] of Object.entries(sdk)) {
      if (typeof value !== 'function' || !/^[A-Z]/.test(name) || !value.prototype) continue;
      const sym = declared.get(name);
      const instance = checker.getDeclaredTypeOfSymbol(sym);
      const members = new Set(checker.getPropertiesOfType(instance).map((p) => p.name));
      const statics = new Set(checker.getPropertiesOfType(checker.getTypeOfSymbolAtLocation(sym, sym.valueDeclaration)).map((p) => p.name));
      for (let proto = value.prototype; proto && proto !== Object.prototype && proto !== Error.prototype; proto = Object.getPrototypeOf(proto)) {
        for (const m of Object.getOwnPropertyNames(proto)) {
          if (m === 'constructor' || m.startsWith('_')) continue;
          assert.ok(members.has(m), `${name}.prototype.${m} is in the code but not declared`);
        }
      }
      for (const m of Object.getOwnPropertyNames(value)) {
        if (['length', 'name', 'prototype'].includes(m) || m.startsWith('_')) continue;
        assert.ok(statics.has(m), `static ${name}.${m} is in the code but not declared`);
      }
      for (const m of members) {
        if (m.startsWith('__@')) continue; // symbols (asyncIterator, asyncDispose)
        const inCode = m in value.prototype || instanceFields[name]?.includes(m);
        assert.ok(inCode, `${name}.${m} is declared but not in the code`);
      }
    }
  });
});

// Fields set in constructors (not on the prototype), as declared.
const instanceFields = {
  CocoonError: ['code', 'status', 'type', 'message', 'name', 'stack', 'cause'],
  Box: ['fs', 'scripts'],
  Execution: ['id', 'box'],
  Attachment: ['box'],
  ExecResult: ['executionId', 'exitCode', 'signal', 'status', 'timedOut', 'durationMs', 'errorMessage', 'outputDroppedBytes', 'stdout', 'stderr', 'stdoutBuffer', 'stderrBuffer'],
  Files: ['box'],
  Cocoon: ['token'],
  Images: [],
  Snapshots: [],
};
for (const n of Object.keys(sdk)) if (/Error$/.test(n) && n !== 'CocoonError') instanceFields[n] = instanceFields.CocoonError;
instanceFields.Sandbox = instanceFields.Box;
// the code interpreter's values (CodeError is data, not a CocoonError)
instanceFields.CodeError = ['name', 'value', 'traceback'];
instanceFields.Result = ['text', 'html', 'markdown', 'svg', 'png', 'jpeg', 'latex', 'json', 'javascript', 'isMainResult', 'extra'];
instanceFields.CodeExecution = ['results', 'logs', 'error', 'executionCount'];
