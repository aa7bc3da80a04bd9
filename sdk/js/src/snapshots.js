// Disk snapshots over the REST API (GET/POST /boxes/{id}/snapshots, GET/DELETE
// .../snapshots/{snapshot}, POST .../restore): a box takes and restores its own
// (box.snapshot, box.restore); Snapshots finds and removes them across boxes. The
// API names a snapshot under its box, so one whose box was removed is out of reach
// here. Export and import have no route in this server yet: they reject with
// UnsupportedError.
import { Cocoon } from './client.js';
import { NotFoundError, SnapshotNotFoundError, UnsupportedError } from './errors.js';
import { camel } from './util.js';

/** The snapshot id of a snapshot object, an id, a name or an id prefix. */
export const snapshotRef = (s) => (s && typeof s === 'object' ? s.id : s);

/** The error of a call the server has no route for. */
export function notServed(what, client) {
  return new UnsupportedError(
    `${what} is not supported by this server (${client.address || 'private cocoon serve'}): its REST API has no ` +
      'route for it yet; use the Python SDK embedded or the CLI on the server\'s host',
    { code: 'unsupported', status: 0 },
  );
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

  /** Writes a snapshot to one file (not served over REST yet: UnsupportedError). */
  async export(snapshot, path) {
    throw notServed('export', this._client);
  }
}

/** The snapshots of the default client. */
export const snapshots = new Snapshots();
