// OCI images over the REST API: list, get, exists, pull (with progress from the NDJSON
// pull stream), load (`docker save` or OCI layout tarballs), remove.
import fs from 'node:fs';
import { Cocoon } from './client.js';
import { ConnectionError, NotFoundError, makeError } from './errors.js';
import { camel, textLines } from './util.js';

const enc = (ref) => ref.split('/').map(encodeURIComponent).join('/');

export class Images {
  constructor(client) {
    this._fixed = client || null;
  }

  get _client() {
    return this._fixed || Cocoon.default();
  }

  /** Images here (pulled, loaded, built-in ones used so far), oldest first. */
  async list() {
    const j = await this._client.call('GET', '/images');
    return j.images.map(camel);
  }

  /** One image with its OCI config (NotFoundError when it is not here). */
  async get(ref) {
    return camel(await this._client.call('GET', `/images/${enc(ref)}`));
  }

  /** Whether an image is here. */
  async exists(ref) {
    try {
      await this._client.call('HEAD', `/images/${enc(ref)}`);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /**
   * Pulls an image; onProgress({layer, done, total}) as layers arrive (at most one call
   * per MiB per layer). Resolves with the image; rejects with ImagePullError.
   */
  async pull(ref, { onProgress, insecure = false } = {}) {
    const json = { reference: ref };
    if (insecure) json.insecure = true;
    const res = await this._client.open('POST', '/images/pull', { json, headers: { Accept: 'application/x-ndjson' } });
    for await (const line of textLines(res)) {
      if (!line) continue;
      const ev = JSON.parse(line);
      if (ev.type === 'progress') onProgress?.({ layer: ev.layer, done: ev.done, total: ev.total });
      else if (ev.type === 'done') return camel(ev.image);
      else if (ev.type === 'error') throw makeError(422, ev.error);
    }
    throw new ConnectionError(`the pull of ${ref} ended without a result`);
  }

  /** Loads a `docker save` or OCI layout tarball (a host path, a Buffer or a stream); the images loaded. */
  async load(source) {
    const body = typeof source === 'string' ? fs.createReadStream(source) : source;
    const headers = { 'Content-Type': 'application/x-tar' };
    if (typeof source === 'string') headers['Content-Length'] = (await fs.promises.stat(source)).size;
    const j = await this._client.call('POST', '/images/load', { body, headers });
    return j.images.map(camel);
  }

  /** Removes an image (refused with InvalidStateError while a box uses it). */
  async remove(ref) {
    await this._client.call('DELETE', `/images/${enc(ref)}`);
  }
}

/** The images of the default client. */
export const images = new Images();
