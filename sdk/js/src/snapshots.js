// Disk snapshots over the REST API (GET/POST /boxes/{id}/snapshots, GET/DELETE
// .../snapshots/{snapshot}, POST .../restore): a box takes and restores its own
// (box.snapshot, box.restore); Snapshots finds, exports and removes them across
// boxes. The API names a snapshot under its box, so one whose box was removed is out
// of reach here. Also the archive transfers: POST /boxes/{id}/export (streamed into a
// file) and POST /boxes/import (a file uploaded).
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Cocoon } from './client.js';
import { NotFoundError, SnapshotNotFoundError } from './errors.js';
import { camel } from './util.js';

/** The snapshot id of a snapshot object, an id, a name or an id prefix. */
export const snapshotRef = (s) => (s && typeof s === 'object' ? s.id : s);

/**
 * POST /boxes/{id}/export ({snapshot} for one of its snapshots): the archive written
 * beside path and renamed into place once whole, as `cocoon export` does.
 */
export async function exportTo(client, boxId, path, snapshot) {
  const json = snapshot ? { snapshot } : {};
  const res = await client.open('POST', `/boxes/${encodeURIComponent(boxId)}/export`, { json });
  const partial = `${path}.partial-${process.pid}`;
  try {
    await pipeline(res, fs.createWriteStream(partial, { mode: 0o600 }));
    await fs.promises.rename(partial, path);
  } catch (e) {
    await fs.promises.rm(partial, { force: true });
    throw e;
  }
}

/** POST /boxes/import: a file of export uploaded; the new (stopped) box's info. */
export async function importFrom(client, path, name) {
  const { size } = await fs.promises.stat(path);
  const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': size };
  return client.call('POST', '/boxes/import', { query: { name }, body: fs.createReadStream(path), headers });
}

const boxPath = (id) => `/boxes/${encodeURIComponent(id)}/snapshots`;

/** A box's snapshots, oldest first. */
export async function boxSnapshots(client, boxId) {
  return (await client.call('GET', boxPath(boxId))).snapshots.map(camel);
}

export class Snapshots {
  constructor(client) {
    this._fixed = client || null;
  }

  get _client() {
    return this._fixed || Cocoon.default();
  }

  /** Every snapshot (box: only those of one box, by id, name or id prefix), oldest first. */
  async list({ box } = {}) {
    const c = this._client;
    if (box !== undefined && box !== null) {
      const info = await c.call('GET', `/boxes/${encodeURIComponent(box)}`);
      return boxSnapshots(c, info.box_id);
    }
    const out = [];
    for (const b of (await c.call('GET', '/boxes')).boxes) {
      try {
        out.push(...(await boxSnapshots(c, b.box_id)));
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e; // removed meanwhile
      }
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** One snapshot by id, name or unique id prefix (SnapshotNotFoundError otherwise). */
  async get(snapshot) {
    const c = this._client;
    const ref = encodeURIComponent(snapshotRef(snapshot));
    for (const b of (await c.call('GET', '/boxes')).boxes) {
      try {
        return camel(await c.call('GET', `${boxPath(b.box_id)}/${ref}`));
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
      }
    }
    throw new SnapshotNotFoundError(
      `no snapshot with id or name "${snapshotRef(snapshot)}" among the server's boxes (a snapshot whose box ` +
        'was removed is reachable only on the server\'s host: `cocoon snapshot ls`)',
      { code: 'not_found', status: 404 },
    );
  }

  /** Deletes a snapshot (SnapshotInUseError while a box or another snapshot stands on it). */
  async remove(snapshot) {
    const s = await this.get(snapshot);
    await this._client.call('DELETE', `${boxPath(s.boxId)}/${s.id}`);
  }

  /** Writes a snapshot to one file, as box.export does a box (Box.import makes a new box of it). */
  async export(snapshot, path) {
    const s = await this.get(snapshot);
    await exportTo(this._client, s.boxId, path, s.id);
  }
}

/** The snapshots of the default client. */
export const snapshots = new Snapshots();
