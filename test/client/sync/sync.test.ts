/**
 * The client sync against the real server (TLS, embedded SQLite backend), real encrypted local databases and
 * real crypto: convergence, conflicts, privacy of non-syncable documents, the refusals (tampering, rollback,
 * swapping, restored backups), interruptions, concurrency, progress and auth.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  ConnectionError,
  InvalidAuthTokenError,
  InvalidGenerationError,
  InvalidJSONError,
  MacMismatchError,
  RollbackError,
  TamperedDocumentError,
} from '../../../src/common/errors.js';
import { encryptDocContent, encryptLegacyDoc } from '../../../src/common/crypto/doc-crypto.js';
import { Synchronizer, type SyncProgress } from '../../../src/client/sync/synchronizer.js';
import { startNetProxy } from '../../reliability/net-proxy.js';
import {
  cleanupReplicas,
  makeReplica,
  makeUser,
  openServerStore,
  rewriteServerDoc,
  serverDocs,
  snapshot,
  startTestServer,
  type TestServer,
} from './harness.js';

let server: TestServer;

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
  cleanupReplicas();
});

function filler(n: number): string {
  return 'x'.repeat(n);
}

describe('sync: convergence', () => {
  it('two replicas converge through creates, edits and deletes; the server sees only ciphertext', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const d1 = a.db.createDoc({ n: 1, secret: 'alpha' });
      const d2 = a.db.createDoc({ n: 2 });
      a.db.createDoc({ n: 3 }, 'fixed-id');
      assert.equal(await a.sync.sync(), 3, 'resolves with the local generation before the sync');
      assert.equal(a.sync.lastStats()?.ensured, true, 'the first sync asked the server to create the database');

      for (const row of serverDocs(server, user.uuid)) {
        assert.ok(row.content!.startsWith('{"raw": "EzcB'), 'content is current-scheme ciphertext');
        assert.ok(!row.content!.includes('alpha'));
      }

      await b.sync.sync();
      assert.deepEqual(snapshot(b.db), snapshot(a.db));

      const e2 = b.db.getDoc(d2.docId)!;
      e2.content = { n: 22 };
      b.db.putDoc(e2);
      b.db.deleteDoc(b.db.getDoc(d1.docId)!);
      await b.sync.sync();
      await a.sync.sync();
      assert.deepEqual(snapshot(a.db), snapshot(b.db));
      assert.equal(a.db.getDoc(d1.docId), null);
      assert.equal(a.db.getDoc(d1.docId, true)?.content, null, 'the tombstone synced');
      assert.deepEqual(a.db.getDoc(d2.docId)?.content, { n: 22 });
      const tomb = serverDocs(server, user.uuid).find((r) => r.doc_id === d1.docId)!;
      assert.equal(tomb.content, null);

      // Nothing new on either side: the sync stops after the checks.
      const genA = a.db.getGeneration();
      assert.equal(await a.sync.sync(), genA);
      assert.equal(a.sync.lastStats()?.upToDate, true);
      assert.equal(a.db.getGeneration(), genA);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a sync that only uploads skips the download, unless another device\'s change is waiting', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      a.db.createDoc({ from: 'a', n: 1 });
      await a.sync.sync();
      let stats = a.sync.lastStats()!;
      assert.equal(stats.downloadSkipped, true, 'the server had only what A sent');
      assert.equal(stats.phases.download, undefined, 'no download request');
      b.db.createDoc({ from: 'b' });
      await b.sync.sync();
      assert.equal(b.sync.lastStats()?.downloadSkipped, false, 'A\'s document was waiting for B');
      assert.equal(b.db.getAllDocs().docs.length, 2);
      a.db.createDoc({ from: 'a', n: 2 });
      await a.sync.sync();
      stats = a.sync.lastStats()!;
      assert.equal(stats.downloadSkipped, false, 'B\'s document was waiting for A');
      assert.equal(stats.docsReceived, 1);
      assert.deepEqual(a.db.getAllDocs().docs.map((d) => d.content).filter((c) => c?.['from'] === 'b'), [{ from: 'b' }]);
      a.db.createDoc({ from: 'a', n: 3 });
      await a.sync.sync();
      assert.equal(a.sync.lastStats()?.downloadSkipped, true);
      await b.sync.sync();
      assert.deepEqual(snapshot(b.db), snapshot(a.db), 'both converge');
      // The server generation A recorded is the one after its own upload.
      const genA = a.db.getReplicaGenAndTransId(a.sync.lastStats()!.targetReplicaUid!).generation;
      assert.equal(genA, 4);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a download\'s record reaches the server after the sync resolves; the next sync and close wait for it', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      for (let i = 0; i < 5; i++) a.db.createDoc({ from: 'a', i });
      await a.sync.sync();
      await b.sync.sync();
      assert.equal(b.sync.lastStats()?.recordedWithTarget, true);
      assert.deepEqual(b.db.getPendingSyncRecord(), {
        replicaUid: b.sync.lastStats()!.targetReplicaUid, ...b.db.getGenerationInfo(),
      }, 'kept locally until the server has answered');
      await b.sync.recorded();
      const info = await server.backend.documents.getSyncInfo(`user-${user.uuid}`, b.db.replicaUid);
      assert.equal(info.sourceGeneration, 5, 'the server knows B has seen its five documents');
      assert.equal(b.db.getPendingSyncRecord(), null, 'and the device knows the server has it');
      b.db.createDoc({ from: 'b' });
      await b.sync.sync();
      assert.equal(b.sync.lastStats()?.docsSent, 1, 'only B\'s own document goes up');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a record that never reached the server is told by the next sync, and the downloaded documents stay down', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      for (let i = 0; i < 5; i++) a.db.createDoc({ from: 'a', i });
      await a.sync.sync();
      await b.sync.sync();
      const pending = b.db.getPendingSyncRecord()!;
      await b.sync.recorded();
      // As if the process had ended (or the connection broken) before the record arrived: the server never got it,
      // and the device still holds it.
      await server.backend.documents.recordSyncInfo(`user-${user.uuid}`, b.db.replicaUid, 0, '');
      b.db.setPendingSyncRecord(pending);
      b.db.createDoc({ from: 'b' });
      await b.sync.sync();
      const stats = b.sync.lastStats()!;
      assert.equal(stats.docsSent, 1, 'A\'s five documents are not sent back');
      assert.equal(b.db.getPendingSyncRecord(), null);
      const info = await server.backend.documents.getSyncInfo(`user-${user.uuid}`, b.db.replicaUid);
      assert.equal(info.sourceGeneration, 6, 'the pending record, then B\'s upload');
      await a.sync.sync();
      assert.deepEqual(snapshot(a.db), snapshot(b.db));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a pending record for another server database is dropped, not told', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    try {
      a.db.createDoc({ from: 'a' });
      a.db.setPendingSyncRecord({ replicaUid: 'some-other-server-db', ...a.db.getGenerationInfo() });
      await a.sync.sync();
      assert.equal(a.sync.lastStats()?.docsSent, 1, 'its document still goes up');
      assert.equal(a.db.getPendingSyncRecord(), null);
    } finally {
      await a.close();
    }
  });

  it('concurrent edits conflict on the second syncer; resolving converges both', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const doc = a.db.createDoc({ v: 'base' });
      await a.sync.sync();
      await b.sync.sync();

      const da = a.db.getDoc(doc.docId)!;
      da.content = { v: 'from a' };
      a.db.putDoc(da);
      const db = b.db.getDoc(doc.docId)!;
      db.content = { v: 'from b' };
      b.db.putDoc(db);

      await a.sync.sync();
      await b.sync.sync();
      const [current, ...others] = b.db.getDocConflicts(doc.docId);
      assert.ok(current !== undefined && others.length === 1, 'b holds the conflict');
      assert.deepEqual(current.content, { v: 'from a' }, 'take-other: the server version became current');
      assert.deepEqual(others[0]!.content, { v: 'from b' });
      assert.equal(b.sync.lastStats()?.docsConflicted, 1);

      current.content = { v: 'merged' };
      b.db.resolveDoc(current, [current.rev!, ...others.map((d) => d.rev!)]);
      assert.equal(current.hasConflicts, false);
      await b.sync.sync();
      await a.sync.sync();
      await b.sync.sync();
      assert.deepEqual(snapshot(a.db), snapshot(b.db));
      assert.deepEqual(a.db.getDoc(doc.docId)?.content, { v: 'merged' });
      assert.equal(a.db.getDoc(doc.docId)?.hasConflicts, false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('legacy _enc_json documents are decrypted; scheme-external ones are kept as-is; plaintext is refused', async () => {
    const user = await makeUser(server);
    const dbName = `user-${user.uuid}`;
    await server.backend.documents.ensureDatabase(dbName);
    const legacy = encryptLegacyDoc(user.remoteSecret, 'legacy-doc', 'oldclient:1', '{"from": "0.9.1"}');
    const external = '{"raw": "EzcCAwAAAAAAAAAAAAAA", "_incoming": true}';
    await server.backend.documents.putDocsIfNewer(dbName, 'oldclient', [
      { id: 'legacy-doc', rev: 'oldclient:1', content: JSON.stringify(legacy), gen: 1, transId: 'T-1' },
      { id: 'incoming-doc', rev: 'oldclient:2', content: external, gen: 2, transId: 'T-2' },
    ]);
    const b = makeReplica(server, user);
    try {
      await b.sync.sync();
      assert.deepEqual(b.db.getDoc('legacy-doc')?.content, { from: '0.9.1' });
      assert.deepEqual(b.db.getDoc('incoming-doc')?.content, JSON.parse(external));
    } finally {
      await b.close();
    }
    const strict = makeReplica(server, user, { sync: { allowExternalDocs: false } });
    try {
      await assert.rejects(strict.sync.sync(), TamperedDocumentError);
    } finally {
      await strict.close();
    }
    // A plaintext document planted on the server: refused by default, and nothing of its batch is applied.
    await server.backend.documents.putDocsIfNewer(dbName, 'intruder', [
      { id: 'planted', rev: 'intruder:1', content: '{"subject": "reset your passphrase here"}', gen: 3, transId: 'T-3' },
    ]);
    const fresh = makeReplica(server, user);
    try {
      await assert.rejects(fresh.sync.sync(), /unencrypted document/);
      assert.equal(fresh.db.getDoc('planted'), null);
      assert.equal(fresh.sync.lastStats()?.ok, false);
    } finally {
      await fresh.close();
    }
    const lax = makeReplica(server, user, { sync: { allowExternalDocs: true } });
    try {
      await lax.sync.sync();
      assert.deepEqual(lax.db.getDoc('planted')?.content, { subject: 'reset your passphrase here' });
    } finally {
      await lax.close();
    }
  });

  it('documents marked not syncable never reach the server', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    try {
      const priv = a.db.createDoc({ private: true });
      a.db.setDocumentSyncable(priv.docId, false);
      const pub = a.db.createDoc({ public: true });
      await a.sync.sync();
      const edited = a.db.getDoc(priv.docId)!;
      edited.content = { private: 'still' };
      a.db.putDoc(edited);
      a.db.createDoc({ public: 2 });
      await a.sync.sync();
      const ids = serverDocs(server, user.uuid).map((r) => r.doc_id);
      assert.equal(ids.length, 2);
      assert.ok(ids.includes(pub.docId));
      assert.ok(!ids.includes(priv.docId));
    } finally {
      await a.close();
    }
  });

  it('a document made private on one device stays private when another device updates it', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const doc = a.db.createDoc({ v: 1 });
      await a.sync.sync();
      await b.sync.sync();
      a.db.setDocumentSyncable(doc.docId, false);
      const onB = b.db.getDoc(doc.docId)!;
      onB.content = { v: 'from b' };
      b.db.putDoc(onB);
      await b.sync.sync();
      await a.sync.sync();
      const onA = a.db.getDoc(doc.docId)!;
      assert.deepEqual(onA.content, { v: 'from b' });
      assert.equal(onA.syncable, false);
      onA.content = { v: 'a private edit' };
      a.db.putDoc(onA);
      await a.sync.sync();
      const stored = serverDocs(server, user.uuid).find((r) => r.doc_id === doc.docId)!;
      assert.equal(stored.rev, onB.rev, 'the private edit never left device a');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('uploads in bounded batches under one sync id', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user, { sync: { maxBatchDocs: 3 } });
    const b = makeReplica(server, user, { sync: { maxBatchBytes: 1 } });
    try {
      for (let i = 0; i < 10; i++) a.db.createDoc({ i });
      await a.sync.sync();
      assert.equal(a.sync.lastStats()?.batches, 4);
      assert.equal(a.sync.lastStats()?.docsSent, 10);
      // The download of the same sync does not echo our own uploads back (the server's seen ids span batches).
      assert.equal(a.sync.lastStats()?.docsReceived, 0);
      assert.equal(serverDocs(server, user.uuid).length, 10);

      await b.sync.sync();
      for (let i = 0; i < 4; i++) b.db.createDoc({ b: i });
      await b.sync.sync();
      assert.equal(b.sync.lastStats()?.batches, 4, 'one document per POST when each exceeds the byte bound');
      await a.sync.sync();
      assert.deepEqual(snapshot(a.db), snapshot(b.db));
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('sync: refusals', () => {
  it('a flipped byte in stored ciphertext → MacMismatchError, local data intact', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const doc = a.db.createDoc({ v: 1 });
      await a.sync.sync();
      await b.sync.sync();
      const edited = a.db.getDoc(doc.docId)!;
      edited.content = { v: 2 };
      a.db.putDoc(edited);
      await a.sync.sync();

      const store = openServerStore(server, user.uuid);
      const row = store.prepare('SELECT content FROM documents WHERE doc_id = ?').get(doc.docId) as { content: string };
      // Flip one bit inside the ciphertext part (after the preamble and the separator).
      const at = row.content.indexOf(' ', 10) + 5;
      const c = row.content[at]!;
      const flipped = row.content.slice(0, at) + (c === 'A' ? 'B' : 'A') + row.content.slice(at + 1);
      store.prepare('UPDATE documents SET content = ? WHERE doc_id = ?').run(flipped, doc.docId);
      store.close();

      const before = snapshot(b.db);
      const genBefore = b.db.getGeneration();
      await assert.rejects(b.sync.sync(), MacMismatchError);
      assert.deepEqual(snapshot(b.db), before);
      assert.equal(b.db.getGeneration(), genBefore);
      assert.equal(b.sync.lastStats()?.ok, false);
      assert.equal(b.sync.lastStats()?.error?.name, 'MacMismatchError');
      await assert.rejects(b.sync.sync(), MacMismatchError, 'refused again next time, never applied');
      assert.deepEqual(snapshot(b.db), before);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('documents verified before a bad one in the same stream stay applied; the bad one is never applied', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const good1 = a.db.createDoc({ g: 1 });
      const good2 = a.db.createDoc({ g: 2 });
      const bad = a.db.createDoc({ g: 'bad' });
      const after = a.db.createDoc({ g: 3 });
      await a.sync.sync();
      const rows = serverDocs(server, user.uuid);
      const other = rows.find((r) => r.doc_id === good1.docId)!;
      const victim = rows.find((r) => r.doc_id === bad.docId)!;
      const store = openServerStore(server, user.uuid);
      store.prepare('UPDATE documents SET content = ? WHERE doc_id = ?').run(other.content, bad.docId);
      store.close();
      assert.ok(victim.generation > other.generation);

      await assert.rejects(b.sync.sync(), TamperedDocumentError);
      assert.deepEqual(b.db.getDoc(good1.docId)?.content, { g: 1 });
      assert.deepEqual(b.db.getDoc(good2.docId)?.content, { g: 2 });
      assert.equal(b.db.getDoc(bad.docId, true), null);
      assert.equal(b.db.getDoc(after.docId, true), null, 'nothing after the bad document either');
      // The next attempt resumes after the verified prefix: only the bad document and what follows come again.
      await assert.rejects(b.sync.sync(), TamperedDocumentError);
      assert.equal(b.sync.lastStats()?.docsReceived, 0);
      assert.equal(b.db.getGeneration(), 2);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('authentic ciphertext of bytes that are not UTF-8, or not a JSON object → InvalidJSONError; the prefix stays', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const good = a.db.createDoc({ g: 1 });
      const bad = a.db.createDoc({ g: 'bad' });
      await a.sync.sync();
      const row = serverDocs(server, user.uuid).find((r) => r.doc_id === bad.docId)!;
      // Encrypted with the account's own key, so only the content's own checks can refuse it. A decoder that
      // replaced the bad bytes would see the valid object {"g": "<U+FFFD>"}.
      const notUtf8 = Buffer.concat([Buffer.from('{"g": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
      for (const plaintext of [notUtf8, Buffer.from('[1, 2]')]) {
        rewriteServerDoc(server, user.uuid, bad.docId, row.rev, encryptDocContent(user.remoteSecret, bad.docId, row.rev, plaintext));
        await assert.rejects(b.sync.sync(), InvalidJSONError);
        assert.deepEqual(b.db.getDoc(good.docId)?.content, { g: 1 });
        assert.equal(b.db.getDoc(bad.docId, true), null);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('large documents arrive intact; a large one tampered near its end is refused with its own error, the prefix stays', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const replicas = [makeReplica(server, user)];
    try {
      // Large enough that a worker gets each in pieces and decrypts it while the rest arrives.
      const small = a.db.createDoc({ s: 1 });
      const big1 = a.db.createDoc({ big: filler(3 * 1024 * 1024), n: 1 });
      const big2 = a.db.createDoc({ big: filler(3 * 1024 * 1024 + 7), n: 2 });
      await a.sync.sync();
      const b = replicas[0]!;
      await b.sync.sync();
      assert.deepEqual(b.db.getAllDocs().docs.map((d) => d.content), a.db.getAllDocs().docs.map((d) => d.content));
      const stats = b.sync.lastStats()!;
      assert.equal(stats.docsDecodedWhileArriving > 0, stats.decodedInWorker, JSON.stringify(stats));

      const row = serverDocs(server, user.uuid).find((r) => r.doc_id === big2.docId)!;
      const other = serverDocs(server, user.uuid).find((r) => r.doc_id === big1.docId)!;
      const at = row.content!.length - 40;
      const flipped = row.content!.slice(0, at) + (row.content![at] === 'A' ? 'B' : 'A') + row.content!.slice(at + 1);
      const notJson = encryptDocContent(user.remoteSecret, big2.docId, row.rev, `[${'1,'.repeat(1024 * 1024)}1]`);
      const cases: Array<[string, new (...args: never[]) => Error]> = [
        [flipped, MacMismatchError], [notJson, InvalidJSONError], [other.content!, TamperedDocumentError],
      ];
      for (const [content, errorClass] of cases) {
        rewriteServerDoc(server, user.uuid, big2.docId, row.rev, content);
        const c = makeReplica(server, user);
        replicas.push(c);
        await assert.rejects(c.sync.sync(), errorClass);
        assert.deepEqual(c.db.getDoc(small.docId)?.content, { s: 1 });
        assert.equal((c.db.getDoc(big1.docId)?.content as { n: number } | undefined)?.n, 1);
        assert.equal(c.db.getDoc(big2.docId, true), null);
      }
    } finally {
      await a.close();
      for (const r of replicas) await r.close();
    }
  });

  it('a replayed older revision → RollbackError; a forged rev on old ciphertext → TamperedDocumentError', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const doc = a.db.createDoc({ v: 'old' });
      await a.sync.sync();
      const old = serverDocs(server, user.uuid).find((r) => r.doc_id === doc.docId)!;
      const edited = a.db.getDoc(doc.docId)!;
      edited.content = { v: 'new' };
      a.db.putDoc(edited);
      await a.sync.sync();
      await b.sync.sync();
      const before = snapshot(b.db);
      assert.deepEqual(b.db.getDoc(doc.docId)?.content, { v: 'new' });

      // The server serves the old, authentic version again as a new change.
      rewriteServerDoc(server, user.uuid, doc.docId, old.rev, old.content);
      await assert.rejects(b.sync.sync(), RollbackError);
      assert.deepEqual(snapshot(b.db), before);

      // The server bumps the revision so it looks newer but keeps the old ciphertext.
      const forged = `${edited.rev!}|zzzzforged:1`;
      rewriteServerDoc(server, user.uuid, doc.docId, forged, old.content);
      await assert.rejects(b.sync.sync(), TamperedDocumentError);
      assert.deepEqual(snapshot(b.db), before);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('contents swapped between two documents → TamperedDocumentError', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    try {
      const x = a.db.createDoc({ name: 'x' });
      const y = a.db.createDoc({ name: 'y' });
      await a.sync.sync();
      await b.sync.sync();
      const before = snapshot(b.db);
      const rows = serverDocs(server, user.uuid);
      const rx = rows.find((r) => r.doc_id === x.docId)!;
      const ry = rows.find((r) => r.doc_id === y.docId)!;
      rewriteServerDoc(server, user.uuid, x.docId, rx.rev, ry.content);
      rewriteServerDoc(server, user.uuid, y.docId, ry.rev, rx.content);
      await assert.rejects(b.sync.sync(), TamperedDocumentError);
      assert.deepEqual(snapshot(b.db), before);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a server that went back in generations → RollbackError', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    try {
      a.db.createDoc({ i: 1 });
      a.db.createDoc({ i: 2 });
      await a.sync.sync();
      const store = openServerStore(server, user.uuid);
      store.prepare('DELETE FROM transaction_log WHERE generation > 1').run();
      store.close();
      await assert.rejects(a.sync.sync(), RollbackError);
    } finally {
      await a.close();
    }
  });

  it('a local database restored from an old backup is refused, not merged', async () => {
    const user = await makeUser(server);
    const key = randomBytes(32);
    const dir = mkdtempSync(join(tmpdir(), 'soledad-sync-backup-'));
    const path = join(dir, 'live.u1db');
    let a = makeReplica(server, user, { path, key });
    a.db.createDoc({ i: 1 });
    await a.close();
    copyFileSync(path, join(dir, 'backup.u1db'));
    a = makeReplica(server, user, { path, key });
    try {
      a.db.createDoc({ i: 2 });
      await a.sync.sync();
    } finally {
      await a.close();
    }
    const restored = makeReplica(server, user, { path: join(dir, 'backup.u1db'), key });
    try {
      const before = snapshot(restored.db);
      await assert.rejects(restored.sync.sync(), InvalidGenerationError);
      assert.deepEqual(snapshot(restored.db), before);
    } finally {
      await restored.close();
    }
  });

  it('a bad token → InvalidAuthTokenError without the token in the message', async () => {
    const user = await makeUser(server);
    const bad = { ...user, token: 'not-the-token-0123456789' };
    const a = makeReplica(server, bad);
    try {
      a.db.createDoc({ i: 1 });
      await assert.rejects(a.sync.sync(), (err: unknown) => {
        assert.ok(err instanceof InvalidAuthTokenError);
        assert.ok(!err.message.includes(bad.token));
        assert.ok(!String(err.stack).includes(bad.token));
        return true;
      });
    } finally {
      await a.close();
    }
  });
});

describe('sync: interruptions', () => {
  it('an upload cut mid-stream loses and duplicates nothing; the next sync completes', async () => {
    const user = await makeUser(server);
    const proxy = await startNetProxy(server.port);
    const a = makeReplica(server, user, { url: proxy.url, sync: { maxBatchDocs: 10 } });
    const b = makeReplica(server, user);
    try {
      for (let i = 0; i < 40; i++) a.db.createDoc({ i, pad: filler(2000) }, `doc-${String(i).padStart(2, '0')}`);
      const genA = a.db.getGeneration();
      // Each batch is ~37 KB on the wire (the content goes once per document): cut inside the second one.
      proxy.cutAfter('up', 55_000);
      await assert.rejects(a.sync.sync(), ConnectionError);
      const partial = serverDocs(server, user.uuid).length;
      assert.ok(partial >= 10 && partial < 40, `a partial upload (${partial}) was kept whole-batch`);
      proxy.reset();
      await a.sync.sync();
      assert.equal(serverDocs(server, user.uuid).length, 40);
      assert.equal(a.db.getGeneration(), genA, 'no local writes came out of the resumed sync');
      await b.sync.sync();
      assert.deepEqual(snapshot(b.db), snapshot(a.db));
      assert.equal(b.db.getGeneration(), 40, 'each document arrived exactly once');
      for (const d of b.db.getAllDocs().docs) assert.equal(d.hasConflicts, false);
    } finally {
      await a.close();
      await b.close();
      await proxy.close();
    }
  });

  it('a download cut mid-stream keeps the verified prefix; the next sync completes without duplicates', async () => {
    const user = await makeUser(server);
    const proxy = await startNetProxy(server.port);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user, { url: proxy.url });
    try {
      for (let i = 0; i < 40; i++) a.db.createDoc({ i, pad: filler(2000) });
      await a.sync.sync();
      proxy.cutAfter('down', 60_000);
      await assert.rejects(b.sync.sync(), ConnectionError);
      const got = b.db.getGeneration();
      assert.ok(got > 0 && got < 40, `a partial download (${got}) was applied`);
      proxy.reset();
      await b.sync.sync();
      assert.deepEqual(snapshot(b.db), snapshot(a.db));
      assert.equal(b.db.getGeneration(), 40, 'each document applied exactly once');
      await a.sync.sync();
      assert.deepEqual(snapshot(a.db), snapshot(b.db));
    } finally {
      await a.close();
      await b.close();
      await proxy.close();
    }
  });

  it('a download that stalls applies what has arrived while it waits, before a full batch is in', async () => {
    const user = await makeUser(server);
    const proxy = await startNetProxy(server.port);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user, { url: proxy.url });
    try {
      // About 1.1 MB on the wire, far below a full apply batch (4 MiB or 1000 documents).
      for (let i = 0; i < 40; i++) a.db.createDoc({ i, pad: filler(20_000) });
      await a.sync.sync();
      proxy.stallAfter('down', 800_000);
      const syncing = b.sync.sync();
      const rejected = assert.rejects(syncing, ConnectionError);
      // Documents may be applied in several steps as they arrive: wait until the count holds still (the stall).
      const deadline = Date.now() + 10_000;
      let applied = 0;
      for (let still = 0; still < 10 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
        const now = b.db.getGeneration();
        still = now > 0 && now === applied ? still + 1 : 0;
        applied = now;
      }
      assert.ok(applied >= 15 && applied < 40, `documents applied during the stall: ${applied}`);
      await proxy.close();
      await rejected;
      // The documents completed before the stall stay applied (with any that were still pending), none half-applied.
      const kept = b.db.getGeneration();
      assert.ok(kept >= applied && kept < 40, `documents kept after the connection died: ${kept}`);
      for (const d of b.db.getAllDocs().docs) assert.equal(d.content?.['pad'], filler(20_000));
    } finally {
      await a.close();
      await b.close();
      await proxy.close().catch(() => undefined);
    }
  });

  it('the server killed mid-upload, and again before the download, then restarted: nothing lost or duplicated', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user, { sync: { maxBatchDocs: 10 } });
    const b = makeReplica(server, user);
    try {
      for (let i = 0; i < 30; i++) a.db.createDoc({ i, pad: filler(1000) });
      const genA = a.db.getGeneration();
      let killed: Promise<void> | undefined;
      const onProgress = (p: SyncProgress): void => {
        if (killed === undefined && p.phase === 'upload' && p.docsSent === 15) killed = server.kill();
      };
      a.sync.on('progress', onProgress);
      await assert.rejects(a.sync.sync(), ConnectionError);
      a.sync.off('progress', onProgress);
      await killed;
      await server.start();
      const partial = serverDocs(server, user.uuid).length;
      assert.ok(partial < 30, `killed before the whole upload (${partial})`);

      killed = undefined;
      const killAtDownload = (p: SyncProgress): void => {
        if (killed === undefined && p.phase === 'download') killed = server.kill();
      };
      a.sync.on('progress', killAtDownload);
      await assert.rejects(a.sync.sync(), ConnectionError);
      a.sync.off('progress', killAtDownload);
      await killed;
      await server.start();
      assert.equal(serverDocs(server, user.uuid).length, 30, 'the upload completed before the kill');

      // The server lost its seen ids: our own uploads come back and converge without new local writes.
      await a.sync.sync();
      assert.equal(a.db.getGeneration(), genA);
      await b.sync.sync();
      assert.deepEqual(snapshot(b.db), snapshot(a.db));
      assert.equal(b.db.getGeneration(), 30);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('sync: API', () => {
  it('concurrent sync() calls share one run, also across synchronizers of one database', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    try {
      for (let i = 0; i < 5; i++) a.db.createDoc({ i });
      assert.equal(a.sync.syncing, false);
      const p1 = a.sync.sync();
      const p2 = a.sync.sync();
      const other = new Synchronizer({ db: a.db, http: a.http, uuid: user.uuid, remoteSecret: user.remoteSecret });
      const p3 = other.sync();
      assert.equal(p1, p2);
      assert.equal(p1, p3);
      assert.equal(a.sync.syncing, true);
      assert.equal(other.syncing, true);
      const [r1, r2] = await Promise.all([p1, p2, p3]);
      assert.equal(r1, 5);
      assert.equal(r2, 5);
      assert.equal(a.sync.syncing, false);
      assert.equal(a.sync.lastStats()?.docsSent, 5);
      assert.equal(serverDocs(server, user.uuid).length, 5);
    } finally {
      await a.close();
    }
  });

  it('an aborted sync rejects and changes nothing; the next one completes', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    try {
      a.db.createDoc({ i: 1 });
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(a.sync.sync({ signal: ac.signal }), (err: unknown) => (err as Error).name === 'AbortError');
      assert.equal(a.sync.lastStats()?.ok, false);
      assert.equal(a.sync.syncing, false);
      await a.sync.sync();
      assert.equal(serverDocs(server, user.uuid).length, 1);
    } finally {
      await a.close();
    }
  });

  it('progress events and stats report phases, counts, bytes and timings', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const events: SyncProgress[] = [];
    const b = makeReplica(server, user, { sync: { onProgress: (p) => events.push(p) } });
    try {
      for (let i = 0; i < 6; i++) a.db.createDoc({ i, pad: filler(500) });
      await a.sync.sync();
      for (let i = 0; i < 3; i++) b.db.createDoc({ b: i });
      const emitted: SyncProgress[] = [];
      b.sync.on('progress', (p) => emitted.push(p));
      await b.sync.sync();
      assert.deepEqual(emitted, events, 'the callback and the event see the same reports');
      const phases = [...new Set(events.map((e) => e.phase))];
      assert.deepEqual(phases, ['info', 'upload', 'download', 'record', 'done']);
      const last = events.at(-1)!;
      assert.equal(last.docsSent, 3);
      assert.equal(last.docsToSend, 3);
      assert.equal(last.docsReceived, 6);
      assert.equal(last.docsToReceive, 6);
      assert.ok(last.bytesSent > 3 * 700);
      assert.ok(last.bytesReceived > 6 * 700);
      for (let i = 1; i < events.length; i++) {
        assert.ok(events[i]!.docsSent >= events[i - 1]!.docsSent);
        assert.ok(events[i]!.docsReceived >= events[i - 1]!.docsReceived);
      }
      const stats = b.sync.lastStats()!;
      assert.equal(stats.ok, true);
      assert.equal(stats.docsSent, 3);
      assert.equal(stats.docsReceived, 6);
      assert.equal(stats.docsInserted, 6);
      assert.equal(stats.localGenerationBefore, 3);
      assert.equal(stats.localGenerationAfter, 9);
      assert.equal(stats.recordedWithTarget, true);
      assert.equal(stats.targetGenerationAfter, 9);
      for (const phase of ['info', 'upload', 'download', 'record'] as const) {
        assert.ok((stats.phases[phase] ?? -1) >= 0, `timing of ${phase}`);
      }
      assert.ok(stats.durationMs > 0);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
