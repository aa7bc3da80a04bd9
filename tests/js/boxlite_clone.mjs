// Drives `cocoon serve`'s clone, export, import and snapshot routes with BoxLite's published
// REST client (@boxlite-ai/boxlite, unmodified), on boxes that never boot, and prints one JSON
// line per check: {"check", "ok", "detail"}. Run by tests/integration/test_clone.py; alone:
//   BOXLITE_URL=http://127.0.0.1:8100 BOXLITE_TOKEN=... BOXLITE_NODE_MODULES=$(scripts/npm-deps) \
//   BOXLITE_TMP=/tmp/x node tests/js/boxlite_clone.mjs
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
for (const v of ['BOXLITE_URL', 'BOXLITE_TOKEN', 'BOXLITE_NODE_MODULES', 'BOXLITE_TMP']) {
  if (!env[v]) {
    console.error(`boxlite_clone: set ${v}`);
    process.exit(2);
  }
}
const entry = path.join(env.BOXLITE_NODE_MODULES, '@boxlite-ai', 'boxlite', 'dist', 'index.js');
const { JsBoxlite, BoxliteRestOptions, ApiKeyCredential } = await import(pathToFileURL(entry).href);
const rt = JsBoxlite.rest(
  new BoxliteRestOptions({ url: env.BOXLITE_URL, credential: new ApiKeyCredential(env.BOXLITE_TOKEN) }));

const results = new Map();
async function check(name, needs, fn) {
  const missing = needs.filter((n) => !results.get(n));
  let ok = false;
  let detail = '';
  if (missing.length) {
    detail = `not run: ${missing.join(', ')} failed`;
  } else {
    try {
      const out = await fn();
      ok = true;
      detail = out === undefined ? '' : JSON.stringify(out);
    } catch (e) {
      detail = `${e?.constructor?.name}: ${e?.message ?? e}`;
    }
  }
  results.set(name, ok);
  console.log(JSON.stringify({ check: name, ok, detail }));
}
function expect(cond, what) {
  if (!cond) throw new Error(what);
}
async function expectThrow(fn, pattern, what) {
  let r;
  try {
    r = await fn();
  } catch (e) {
    expect(pattern.test(e.message), `${what}: expected an error matching ${pattern}, got ${e.message}`);
    return e.message;
  }
  throw new Error(`${what}: expected an error matching ${pattern}, got ${JSON.stringify(r)}`);
}

const tag = `cl${process.pid}`;
let box = null;
const made = [];
const archive = path.join(env.BOXLITE_TMP, 'src.boxlite');

await check('create', [], async () => {
  box = await rt.create({ image: 'default' }, `${tag}-src`);
  made.push(box.id);
  return box.id;
});

await check('clone_named', ['create'], async () => {
  const c = await box.cloneBox(null, `${tag}-c1`);
  made.push(c.id);
  expect(c.id !== box.id && c.name === `${tag}-c1`, `clone is ${c.id} ${c.name}`);
  const info = await c.info();
  expect(info.state.status === 'configured' || info.state.status === 'stopped', `status ${info.state.status}`);
  return { id: c.id, name: c.name, status: info.state.status };
});

await check('clone_unnamed', ['create'], async () => {
  const c = await box.cloneBox();
  made.push(c.id);
  expect(c.name === `${tag}-src-clone-1`, `generated name ${c.name}`);
  return c.name;
});

await check('clone_taken_name_refused', ['clone_named'], async () =>
  expectThrow(() => box.cloneBox(null, `${tag}-c1`), /already exists/, 'clone with a taken name'));

await check('export', ['create'], async () => {
  const out = await box.export(archive);
  const size = fs.statSync(archive).size;
  expect(size > 1000, `archive of ${size} bytes`);
  return { out, size };
});

await check('import', ['export'], async () => {
  const b = await rt.importBox(archive, `${tag}-imp`);
  made.push(b.id);
  expect(b.name === `${tag}-imp` && b.id !== box.id, `imported ${b.id} ${b.name}`);
  return b.id;
});

await check('import_corrupt_refused', ['export'], async () => {
  const bad = path.join(env.BOXLITE_TMP, 'bad.boxlite');
  const data = fs.readFileSync(archive);
  fs.writeFileSync(bad, data.subarray(0, data.length >> 1));
  const msg = await expectThrow(() => rt.importBox(bad, `${tag}-bad`), /invalid argument: .*not a cocoon export/,
    'import of a truncated archive');
  expect((await rt.getInfo(`${tag}-bad`)) === null, 'a box was left by the refused import');
  return msg;
});

await check('snapshot_create_list', ['create'], async () => {
  const s = await box.snapshot.create(`${tag}-s1`);
  expect(s.name === `${tag}-s1`, `snapshot ${JSON.stringify(s)}`);
  const list = await box.snapshot.list();
  expect(list.some((x) => x.name === `${tag}-s1`), `list ${JSON.stringify(list)}`);
  return { name: s.name, listed: list.length };
});

await check('snapshot_get_restore_remove', ['snapshot_create_list'], async () => {
  const s = await box.snapshot.get(`${tag}-s1`);
  expect(s && s.name === `${tag}-s1`, `get ${JSON.stringify(s)}`);
  expect((await box.snapshot.get(`${tag}-nosuch`)) === null, 'get of a missing snapshot');
  await box.snapshot.restore(`${tag}-s1`);
  const c = await box.cloneBox(null, `${tag}-on-s1`); // the box stands on s1 again: the clone reuses it
  made.push(c.id);
  await expectThrow(() => box.snapshot.remove(`${tag}-s1`), /invalid state: .*in use/, 'remove of a snapshot in use');
  return s.id;
});

await check('cleanup', [], async () => {
  for (const id of made.reverse()) await rt.remove(id, true);
  return made.length;
});
