/**
 * Clients that vanish mid-upload: nothing becomes visible, no temp file stays, and the write slot and quota
 * reservation come back, whether the connection dies while the body streams or before the route started reading.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { registerBlobRoutes } from '../../../src/server/routes/blobs.js';

describe('aborted uploads', () => {
  let dir: string;
  let store: FsBlobStore;
  let app: FastifyInstance;
  let port: number;
  let holdMs = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'soledad-blobabort-'));
    store = new FsBlobStore({ root: dir, concurrentWrites: 1, quotaBytes: 1_000_000 });
    app = Fastify();
    // Stands for the auth hook: some work happens before the route reads the body.
    app.addHook('onRequest', async () => {
      if (holdMs > 0) await sleep(holdMs);
    });
    registerBlobRoutes(app, { store });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });
  after(async () => {
    await app.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function abortedPut(id: string, sendBytes: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'PUT', path: `/blobs/u1/${id}`, headers: { 'content-length': '100000' } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(sendBytes));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 30);
    });
    for (let i = 0; i < 100 && store.stats().activeWrites > 0; i++) await sleep(10);
  }

  async function files(): Promise<string[]> {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  }

  it('connection dies while the body streams', async () => {
    holdMs = 0;
    await abortedPut('mid', 5000);
    assert.deepEqual(store.stats(), { activeWrites: 0, queuedWrites: 0 });
    assert.equal(await store.stat({ user: 'u1', namespace: 'default', blobId: 'mid' }), null);
    assert.deepEqual(await files(), []);
    assert.equal((await store.usage('u1')).reserved, 0);
  });

  it('connection dies before the route starts reading', async () => {
    holdMs = 100;
    await abortedPut('early', 10);
    await sleep(200);
    for (let i = 0; i < 100 && store.stats().activeWrites > 0; i++) await sleep(10);
    assert.deepEqual(store.stats(), { activeWrites: 0, queuedWrites: 0 }, 'the single write slot came back');
    assert.deepEqual(await files(), []);
    holdMs = 0;
    // The slot is usable: a normal upload goes through.
    const ok = await app.inject({ method: 'PUT', url: '/blobs/u1/after', payload: 'fine' });
    assert.equal(ok.statusCode, 200);
  });
});
