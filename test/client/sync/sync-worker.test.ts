/**
 * The sync suite again, with every download parsed and decrypted on the worker thread (which the synchronizer
 * otherwise uses from DEFAULT_DECODE_IN_WORKER_FROM documents on): convergence, each refusal with its own error class and the verified
 * prefix kept, interruptions and progress must all be the same as on the main thread.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { RetriableTransferError } from '../../../src/common/errors.js';
import { DecodeWorker } from '../../../src/client/sync/decode-worker.js';
import { DEFAULT_DECODE_IN_WORKER_FROM } from '../../../src/client/sync/synchronizer.js';
import { startNetProxy } from '../../reliability/net-proxy.js';
import { cleanupReplicas, makeReplica, makeUser, startTestServer, type TestServer } from './harness.js';

process.env.SOLEDAD_TEST_DECODE_IN_WORKER = '1';
// A small download that starts before the worker has loaded is decoded on the main thread: wait, so none is.
assert.equal(await DecodeWorker.shared().whenReady(), true, 'the decoding worker should start');
await import('./sync.test.js');

describe('sync: decoding on the worker thread', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
    cleanupReplicas();
  });

  it('by default decodes downloads from DEFAULT_DECODE_IN_WORKER_FROM documents on, smaller ones on this thread', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const byDefault = { sync: { decodeInWorkerFrom: DEFAULT_DECODE_IN_WORKER_FROM } };
    const small = makeReplica(server, user, byDefault);
    const large = makeReplica(server, user, byDefault);
    try {
      for (let i = 1; i < DEFAULT_DECODE_IN_WORKER_FROM; i++) a.db.createDoc({ i });
      await a.sync.sync();
      await small.sync.sync();
      assert.equal(small.sync.lastStats()!.decodedInWorker, false);
      a.db.createDoc({ last: true });
      await a.sync.sync();
      await large.sync.sync();
      assert.equal(large.sync.lastStats()!.decodedInWorker, true);
      assert.equal(large.sync.lastStats()!.docsReceived, DEFAULT_DECODE_IN_WORKER_FROM);
      assert.deepEqual(large.db.getAllDocs().docs.map((d) => d.content), a.db.getAllDocs().docs.map((d) => d.content));
    } finally {
      await a.close();
      await small.close();
      await large.close();
    }
  });

  it('is used, and a large download through it arrives intact and in order', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const ids: string[] = [];
      a.db.transaction(() => {
        for (let i = 0; i < 1500; i++) ids.push(a.db.createDoc({ i, body: 'y'.repeat(i % 97) }).docId);
      });
      a.db.deleteDoc(a.db.getDoc(ids[7]!)!);
      await a.sync.sync();
      await b.sync.sync();
      const stats = b.sync.lastStats()!;
      assert.equal(stats.decodedInWorker, true);
      assert.equal(stats.docsReceived, 1500);
      for (const [n, id] of ids.entries()) {
        const doc = b.db.getDoc(id, true)!;
        assert.deepEqual(doc.content, n === 7 ? null : { i: n, body: 'y'.repeat(n % 97) });
        assert.equal(doc.rev, a.db.getDoc(id, true)!.rev);
      }
      assert.deepEqual(b.db.whatsChanged(0).changes.map((c) => c.docId), a.db.whatsChanged(0).changes.map((c) => c.docId));
    } finally {
      await a.close();
      await b.close();
    }
  });

  // Last: it stops the shared worker (a new one is started for whatever runs after it).
  it('a worker that dies mid-download fails the sync as retriable; the prefix stays, the next sync completes here', async () => {
    const user = await makeUser(server);
    const proxy = await startNetProxy(server.port);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user, { url: proxy.url });
    try {
      for (let i = 0; i < 40; i++) a.db.createDoc({ i, pad: 'p'.repeat(20_000) });
      await a.sync.sync();
      proxy.stallAfter('down', 400_000);
      const rejected = assert.rejects(b.sync.sync(), RetriableTransferError);
      const deadline = Date.now() + 10_000;
      while (b.db.getGeneration() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(b.db.getGeneration() > 0, 'documents decoded before the worker died are applied');
      await (DecodeWorker.shared() as unknown as { worker: Worker }).worker.terminate();
      await rejected;
      const kept = b.db.getGeneration();
      assert.ok(kept > 0 && kept < 40, `documents kept: ${kept}`);
      proxy.reset();
      await b.sync.sync();
      assert.equal(b.sync.lastStats()!.decodedInWorker, false);
      assert.equal(b.db.getGeneration(), 40, 'each document arrived exactly once');
      assert.deepEqual(b.db.getAllDocs().docs.map((d) => d.content), a.db.getAllDocs().docs.map((d) => d.content));
    } finally {
      await a.close();
      await b.close();
      await proxy.close().catch(() => undefined);
      (DecodeWorker as unknown as { instance: DecodeWorker | undefined }).instance = undefined;
    }
  });
});
