/** The blob routes mounted in the real Users API: token auth, the whitelist, deviation 1, the shared quota. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { blobsService } from '../../../src/server/routes/blobs.js';
import { ALICE, BOB, makeServer } from '../helpers.js';
import type { TestServer } from '../helpers.js';

describe('blobs in the Users API', () => {
  let s: TestServer;
  let root: string;
  let docsUsage = 0;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'soledad-usersblobs-'));
    const service = blobsService(new FsBlobStore({
      root, concurrentWrites: 4, quotaBytes: 10_000, otherUsageBytes: async () => docsUsage,
    }));
    s = await makeServer({ blobs: service, quotaBytes: 10_000 });
  });
  after(async () => {
    await s.close();
    await rm(root, { recursive: true, force: true });
  });

  it('GET / announces blobs', async () => {
    const r = await s.app.inject({ method: 'GET', url: '/' });
    assert.equal(JSON.parse(r.body).blobs, true);
  });

  it('the owner can put, list, read, flag and delete', async () => {
    const h = { authorization: s.auth.alice };
    assert.equal((await s.app.inject({ method: 'PUT', url: `/blobs/${ALICE}/b1`, headers: h, payload: 'hello' })).statusCode, 200);
    assert.deepEqual(JSON.parse((await s.app.inject({ method: 'GET', url: `/blobs/${ALICE}/`, headers: h })).body), ['b1']);
    assert.equal((await s.app.inject({ method: 'GET', url: `/blobs/${ALICE}/b1`, headers: h })).body, 'hello');
    assert.equal((await s.app.inject({ method: 'POST', url: `/blobs/${ALICE}/b1`, headers: h, payload: '["PENDING"]' })).statusCode, 200);
    const stream = await s.app.inject({ method: 'POST', url: `/stream/${ALICE}/?direction=download`, headers: h, payload: '["b1"]' });
    assert.equal(stream.statusCode, 200);
    assert.equal(stream.rawPayload.subarray(33).toString(), 'hello');
    assert.equal((await s.app.inject({ method: 'DELETE', url: `/blobs/${ALICE}/b1`, headers: h })).statusCode, 200);
  });

  it('no credentials → 404; bad token → 401; unlisted path → 401', async () => {
    assert.equal((await s.app.inject({ method: 'GET', url: `/blobs/${ALICE}/` })).statusCode, 404);
    const bad = { authorization: s.auth.aliceWrongToken };
    assert.equal((await s.app.inject({ method: 'PUT', url: `/blobs/${ALICE}/x`, headers: bad, payload: 'x' })).statusCode, 401);
    const h = { authorization: s.auth.alice };
    assert.equal((await s.app.inject({ method: 'GET', url: `/blobs/${ALICE}`, headers: h })).statusCode, 401);
    assert.equal((await s.app.inject({ method: 'PUT', url: `/blobs/${ALICE}/`, headers: h, payload: 'x' })).statusCode, 401);
    assert.equal((await s.app.inject({ method: 'GET', url: `/stream/${ALICE}/`, headers: h })).statusCode, 401);
  });

  it("another user's blobs → 403 (deviation 1), nothing written", async () => {
    const h = { authorization: s.auth.alice };
    const attempts = [
      s.app.inject({ method: 'PUT', url: `/blobs/${BOB}/x`, headers: h, payload: 'x' }),
      s.app.inject({ method: 'GET', url: `/blobs/${BOB}/x`, headers: h }),
      s.app.inject({ method: 'GET', url: `/blobs/${BOB}/`, headers: h }),
      s.app.inject({ method: 'POST', url: `/stream/${BOB}/?direction=download`, headers: h, payload: '[]' }),
      s.app.inject({ method: 'GET', url: `/quota/${BOB}`, headers: h }),
    ];
    for (const r of await Promise.all(attempts)) assert.equal(r.statusCode, 403);
    const bob = { authorization: s.auth.bob };
    assert.equal((await s.app.inject({ method: 'GET', url: `/blobs/${BOB}/x`, headers: bob })).statusCode, 404);
  });

  it('traversal attempts through the full app → 400, never 500', async () => {
    const h = { authorization: s.auth.alice };
    for (const url of [`/blobs/${ALICE}/..%2F..%2Fx`, `/blobs/${ALICE}/x?namespace=..%2F..`]) {
      assert.equal((await s.app.inject({ method: 'PUT', url, headers: h, payload: 'x' })).statusCode, 400, url);
    }
  });

  it('one quota over documents and blobs: /quota reports both, PUT → 507 past it', async () => {
    const h = { authorization: s.auth.alice };
    docsUsage = 9_000;
    assert.deepEqual(JSON.parse((await s.app.inject({ method: 'GET', url: `/quota/${ALICE}`, headers: h })).body), { used: 9_000, limit: 10_000 });
    const r = await s.app.inject({ method: 'PUT', url: `/blobs/${ALICE}/big`, headers: h, payload: Buffer.alloc(1_001) });
    assert.equal(r.statusCode, 507);
    assert.equal((await s.app.inject({ method: 'PUT', url: `/blobs/${ALICE}/fits`, headers: h, payload: Buffer.alloc(1_000) })).statusCode, 200);
    docsUsage = 0;
  });
});
