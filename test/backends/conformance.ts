/**
 * The one suite every storage engine must pass. An engine's test file only supplies setup and teardown:
 *
 * @example
 * runBackendConformance('sqlite', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'soledad-'));
 *   const backend = await openSqliteBackend({ dataDir: dir });
 *   return { backend, teardown: async () => { await backend.close(); await rm(dir, { recursive: true }); } };
 * });
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  BadRequestError,
  DatabaseDoesNotExistError,
  DocumentAlreadyDeletedError,
  DocumentDoesNotExistError,
  InvalidGenerationError,
  InvalidTransactionIdError,
  RevisionConflictError,
} from '../../src/common/errors.js';
import { isNewer, parseRev } from '../../src/common/u1db/vectorclock.js';
import type { Backend, IncomingDoc, SentDoc, StoredDoc } from '../../src/server/backends/types.js';

/** A fresh, empty backend and how to dispose of it. */
export interface BackendFixture {
  /** The backend under test. */
  backend: Backend;
  /** Close it and remove everything it stored. */
  teardown: () => Promise<void>;
}

const DB = 'user-0123456789abcdef0123456789abcdef';
const SRC = 'source0replica';

function doc(id: string, rev: string, content: string | null, gen: number, transId = `T-src${gen}`): IncomingDoc {
  return { id, rev, content, gen, transId };
}

async function collect<D extends StoredDoc | SentDoc>(it: AsyncIterable<D>): Promise<D[]> {
  const out: D[] = [];
  for await (const d of it) out.push(d);
  return out;
}

async function rejectsWith(p: Promise<unknown>, cls: abstract new (...args: never[]) => Error): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    return true;
  });
}

/**
 * Register the conformance tests for one engine. `setup` is called once per test and must return an empty
 * backend.
 */
export function runBackendConformance(name: string, setup: () => Promise<BackendFixture>): void {
  async function withBackend(fn: (b: Backend) => Promise<void>): Promise<void> {
    const { backend, teardown } = await setup();
    try {
      await fn(backend);
    } finally {
      await teardown();
    }
  }

  describe(`backend conformance: ${name}`, () => {
    describe('user databases', () => {
      it('creates a database once, with a stable replica uid', () => withBackend(async (b) => {
        assert.equal(await b.documents.databaseExists(DB), false);
        const first = await b.documents.ensureDatabase(DB);
        assert.equal(first.created, true);
        assert.match(first.replicaUid, /^[0-9a-f]{32}$/);
        const again = await b.documents.ensureDatabase(DB);
        assert.deepEqual(again, { replicaUid: first.replicaUid, created: false });
        assert.equal(await b.documents.databaseExists(DB), true);
        const info = await b.documents.getSyncInfo(DB, SRC);
        assert.deepEqual(info, { replicaUid: first.replicaUid, generation: 0, transactionId: '', sourceGeneration: 0, sourceTransactionId: '' });
      }));

      it('refuses malformed database names', () => withBackend(async (b) => {
        for (const bad of ['shared', 'user-', 'user-../x', 'user-a/b', '../user-a', 'user-a b']) {
          await rejectsWith(b.documents.ensureDatabase(bad), BadRequestError);
        }
      }));

      it('answers DatabaseDoesNotExist for every operation on a missing database', () => withBackend(async (b) => {
        const d = b.documents;
        await rejectsWith(d.getSyncInfo(DB, SRC), DatabaseDoesNotExistError);
        await rejectsWith(d.whatsChanged(DB, 0), DatabaseDoesNotExistError);
        await rejectsWith(d.validateGenAndTransId(DB, 0, ''), DatabaseDoesNotExistError);
        await rejectsWith(d.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{}', 1)]), DatabaseDoesNotExistError);
        await rejectsWith(d.openUpload(DB, SRC), DatabaseDoesNotExistError);
        await rejectsWith(d.recordSyncInfo(DB, SRC, 1, 'T-1'), DatabaseDoesNotExistError);
        await rejectsWith(d.usageBytes(DB), DatabaseDoesNotExistError);
        await rejectsWith(collect(d.getDocs(DB, ['D-1'])), DatabaseDoesNotExistError);
      }));

      it('deletes a database', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{"x":1}', 1)]);
        assert.equal(await b.documents.deleteDatabase(DB), true);
        assert.equal(await b.documents.databaseExists(DB), false);
        assert.equal(await b.documents.deleteDatabase(DB), false);
        await rejectsWith(b.documents.whatsChanged(DB, 0), DatabaseDoesNotExistError);
        const fresh = await b.documents.ensureDatabase(DB);
        assert.equal(fresh.created, true);
        assert.equal((await b.documents.whatsChanged(DB, 0)).changes.length, 0);
      }));
    });

    describe('puts, generations and whats_changed', () => {
      it('inserts new documents, one generation each, with T- transaction ids', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        const r = await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{"n":1}', 1), doc('D-2', 'a:1', null, 2)]);
        assert.deepEqual(r.outcomes.map((o) => [o.id, o.state, o.atGeneration]), [['D-1', 'inserted', 1], ['D-2', 'inserted', 2]]);
        assert.equal(r.generation, 2);
        assert.match(r.transactionId, /^T-[0-9a-f]{32}$/);
        const changes = await b.documents.whatsChanged(DB, 0);
        assert.equal(changes.generation, 2);
        assert.equal(changes.transactionId, r.transactionId);
        assert.deepEqual(changes.changes.map((c) => [c.id, c.generation]), [['D-1', 1], ['D-2', 2]]);
        assert.notEqual(changes.changes[0]!.transactionId, changes.changes[1]!.transactionId);
        assert.deepEqual(await collect(b.documents.getDocs(DB, ['D-2', 'D-1', 'D-404'])), [
          { id: 'D-2', rev: 'a:1', content: null },
          { id: 'D-1', rev: 'a:1', content: '{"n":1}' },
        ]);
        // Small documents go to a download as strings on every engine.
        assert.deepEqual(await collect(b.documents.getDocsToSend(DB, ['D-2', 'D-1', 'D-404'])), [
          { id: 'D-2', rev: 'a:1', content: null },
          { id: 'D-1', rev: 'a:1', content: '{"n":1}' },
        ]);
      }));

      it('whats_changed lists only the latest change per document, ascending, after the given generation', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{}', 1), doc('D-2', 'a:1', '{}', 2), doc('D-1', 'a:2', '{"v":2}', 3)]);
        const all = await b.documents.whatsChanged(DB, 0);
        assert.deepEqual(all.changes.map((c) => [c.id, c.generation]), [['D-2', 2], ['D-1', 3]]);
        const after2 = await b.documents.whatsChanged(DB, 2);
        assert.deepEqual(after2.changes.map((c) => [c.id, c.generation]), [['D-1', 3]]);
        assert.equal(after2.changes[0]!.transactionId, all.transactionId);
        assert.deepEqual((await b.documents.whatsChanged(DB, 3)).changes, []);
      }));

      it('applies save_conflict=false semantics: newer wins, equal converges, older and conflicts are not stored', () => withBackend(async (b) => {
        const { replicaUid } = await b.documents.ensureDatabase(DB);
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:2', '{"v":"a2"}', 1)]);
        const r = await b.documents.putDocsIfNewer(DB, SRC, [
          doc('D-1', 'a:2', '{"v":"a2"}', 2), // same rev
          doc('D-1', 'a:1', '{"v":"a1"}', 3), // older
          doc('D-1', 'a:1|b:1', '{"v":"b"}', 4), // concurrent, other content
        ]);
        assert.deepEqual(r.outcomes.map((o) => o.state), ['converged', 'superseded', 'conflicted']);
        assert.equal(r.generation, 1, 'nothing was written');
        assert.deepEqual(await collect(b.documents.getDocs(DB, ['D-1'])), [{ id: 'D-1', rev: 'a:2', content: '{"v":"a2"}' }]);
        // Concurrent revision with the very same content: merged under a new server revision.
        const same = await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1|b:1', '{"v":"a2"}', 5)]);
        assert.equal(same.outcomes[0]!.state, 'superseded');
        const [stored] = await collect(b.documents.getDocs(DB, ['D-1']));
        assert.ok(isNewer(stored!.rev, 'a:2') && isNewer(stored!.rev, 'a:1|b:1'), stored!.rev);
        assert.equal(parseRev(stored!.rev).get(replicaUid), 1);
        // Newer revision replaces, a tombstone included.
        const del = await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', `${stored!.rev}|c:1`, null, 6)]);
        assert.equal(del.outcomes[0]!.state, 'inserted');
        assert.deepEqual(await collect(b.documents.getDocs(DB, ['D-1'])), [{ id: 'D-1', rev: `${stored!.rev}|c:1`, content: null }]);
      }));

      it('stores content given as UTF-8 bytes (as an upload carries it) as the same text', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        const text = '{"v":"h\u00e9llo \u{1F600}"}';
        const bytes = (t: string): IncomingDoc['content'] => Buffer.from(t, 'utf8');
        await b.documents.putDocsIfNewer(DB, SRC, [{ ...doc('D-1', 'a:1', null, 1), content: bytes(text) }]);
        assert.deepEqual(await collect(b.documents.getDocs(DB, ['D-1'])), [{ id: 'D-1', rev: 'a:1', content: text }]);
        const sized = await b.documents.usageBytes(DB);
        assert.equal(sized, Buffer.byteLength('D-1') + Buffer.byteLength('a:1') + Buffer.byteLength(text));
        // Concurrent revisions are compared by their text whichever form it came in.
        const other = await b.documents.putDocsIfNewer(DB, SRC, [{ ...doc('D-1', 'b:1', null, 2), content: bytes('{"v":"b"}') }]);
        assert.equal(other.outcomes[0]!.state, 'conflicted');
        const same = await b.documents.putDocsIfNewer(DB, SRC, [{ ...doc('D-1', 'b:1', null, 3), content: bytes(text) }]);
        assert.equal(same.outcomes[0]!.state, 'superseded', 'the same text: merged under a new revision');
        // An upload session takes bytes too.
        const session = await b.documents.openUpload(DB, SRC);
        await session.putDocsIfNewer([{ ...doc('D-2', 'a:1', null, 4), content: bytes('{"n":2}') }]);
        await session.commit();
        assert.deepEqual(await collect(b.documents.getDocs(DB, ['D-2'])), [{ id: 'D-2', rev: 'a:1', content: '{"n":2}' }]);
      }));

      it('records the source generation per document and validates it', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{}', 5, 'T-five')]);
        let info = await b.documents.getSyncInfo(DB, SRC);
        assert.equal(info.sourceGeneration, 5);
        assert.equal(info.sourceTransactionId, 'T-five');
        await rejectsWith(b.documents.putDocsIfNewer(DB, SRC, [doc('D-2', 'a:1', '{}', 4)]), InvalidGenerationError);
        await rejectsWith(b.documents.putDocsIfNewer(DB, SRC, [doc('D-2', 'a:1', '{}', 5, 'T-other')]), InvalidTransactionIdError);
        // Same generation and transaction id is accepted (a retried upload).
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-2', 'a:1', '{}', 5, 'T-five')]);
        // Another source has its own record.
        info = await b.documents.getSyncInfo(DB, 'other');
        assert.equal(info.sourceGeneration, 0);
        await b.documents.recordSyncInfo(DB, SRC, 9, 'T-nine');
        info = await b.documents.getSyncInfo(DB, SRC);
        assert.deepEqual([info.sourceGeneration, info.sourceTransactionId], [9, 'T-nine']);
      }));

      it('applies a batch atomically: a failing document leaves nothing of the batch', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-0', 'a:1', '{}', 3)]);
        await rejectsWith(b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{}', 4), doc('D-2', 'a:1', '{}', 2)]), InvalidGenerationError);
        assert.equal((await b.documents.whatsChanged(DB, 0)).generation, 1);
        assert.equal((await b.documents.getSyncInfo(DB, SRC)).sourceGeneration, 3);
        assert.deepEqual(await collect(b.documents.getDocs(DB, ['D-1'])), []);
      }));

      it('validates generation and transaction id', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        await b.documents.validateGenAndTransId(DB, 0, '');
        await b.documents.validateGenAndTransId(DB, 0, 'anything');
        await rejectsWith(b.documents.validateGenAndTransId(DB, 1, 'T-x'), InvalidGenerationError);
        const r = await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{}', 1), doc('D-2', 'a:1', '{}', 2)]);
        await b.documents.validateGenAndTransId(DB, 2, r.transactionId);
        const gen1 = (await b.documents.whatsChanged(DB, 0)).changes[0]!.transactionId;
        await b.documents.validateGenAndTransId(DB, 1, gen1);
        await rejectsWith(b.documents.validateGenAndTransId(DB, 2, gen1), InvalidTransactionIdError);
        await rejectsWith(b.documents.validateGenAndTransId(DB, 3, r.transactionId), InvalidGenerationError);
      }));

      it('counts usage bytes, growing with content and shrinking on delete', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        assert.equal(await b.documents.usageBytes(DB), 0);
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', 'x'.repeat(10_000), 1)]);
        const full = await b.documents.usageBytes(DB);
        assert.ok(full >= 10_000 && full < 10_100, String(full));
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:2', null, 2)]);
        assert.ok((await b.documents.usageBytes(DB)) < 100);
      }));

      it('stores and returns large documents intact', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        const big = JSON.stringify({ raw: 'A'.repeat(5 * 1024 * 1024) + '€' });
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-big', 'a:1', big, 1)]);
        const [got] = await collect(b.documents.getDocs(DB, ['D-big']));
        assert.equal(got!.content, big);
        // A large one may go as its UTF-8 bytes (the embedded engine's), the same text either way.
        const [sent] = await collect(b.documents.getDocsToSend(DB, ['D-big']));
        assert.equal(Buffer.from(sent!.content!).toString('utf8'), big);
        if (b.name === 'sqlite') assert.ok(Buffer.isBuffer(sent!.content), 'the embedded engine hands it over as stored');
      }));
    });

    describe('upload sessions', () => {
      it('keeps batches invisible until commit and applies them all', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        const s = await b.documents.openUpload(DB, SRC);
        await s.putDocsIfNewer([doc('D-1', 'a:1', '{"a":1}', 1)]);
        const second = await s.putDocsIfNewer([doc('D-2', 'a:1', '{"b":2}', 2)]);
        assert.equal(second.generation, 2);
        assert.ok((await s.usageBytes()) > 0);
        assert.equal((await b.documents.whatsChanged(DB, 0)).generation, 0, 'uncommitted data is invisible');
        assert.equal(await b.documents.usageBytes(DB), 0);
        const info = await s.commit();
        assert.equal(info.generation, 2);
        const changes = await b.documents.whatsChanged(DB, 0);
        assert.equal(changes.transactionId, info.transactionId);
        assert.equal(changes.changes.length, 2);
        assert.equal((await b.documents.getSyncInfo(DB, SRC)).sourceGeneration, 2);
      }));

      it('abort leaves the database as it was', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-0', 'a:1', '{}', 1)]);
        const s = await b.documents.openUpload(DB, SRC);
        await s.putDocsIfNewer([doc('D-1', 'a:1', '{}', 2), doc('D-0', 'a:2', '{"x":1}', 3)]);
        await s.abort();
        await s.abort();
        const changes = await b.documents.whatsChanged(DB, 0);
        assert.equal(changes.generation, 1);
        assert.deepEqual(await collect(b.documents.getDocs(DB, ['D-0', 'D-1'])), [{ id: 'D-0', rev: 'a:1', content: '{}' }]);
        assert.equal((await b.documents.getSyncInfo(DB, SRC)).sourceGeneration, 1);
        // The database is usable again afterwards.
        await b.documents.putDocsIfNewer(DB, SRC, [doc('D-1', 'a:1', '{}', 2)]);
      }));

      it('a failed batch poisons the session until abort', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        await b.documents.recordSyncInfo(DB, SRC, 10, 'T-10');
        const s = await b.documents.openUpload(DB, SRC);
        await rejectsWith(s.putDocsIfNewer([doc('D-1', 'a:1', '{}', 3)]), InvalidGenerationError);
        await assert.rejects(s.commit());
        await s.abort();
        assert.equal((await b.documents.whatsChanged(DB, 0)).generation, 0);
      }));

      it('serializes two writers on one database', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        const s1 = await b.documents.openUpload(DB, 'writer1');
        await s1.putDocsIfNewer([doc('D-1', 'w1:1', '{"by":1}', 1, 'T-w1')]);
        let secondOpened = false;
        const s2Promise = b.documents.openUpload(DB, 'writer2').then((s) => {
          secondOpened = true;
          return s;
        });
        const direct = b.documents.putDocsIfNewer(DB, 'writer3', [doc('D-3', 'w3:1', '{}', 1, 'T-w3')]);
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(secondOpened, false, 'the second writer waits for the first');
        await s1.commit();
        const s2 = await s2Promise;
        const r2 = await s2.putDocsIfNewer([doc('D-2', 'w2:1', '{"by":2}', 1, 'T-w2')]);
        await s2.commit();
        await direct;
        const changes = await b.documents.whatsChanged(DB, 0);
        assert.equal(changes.generation, 3);
        assert.deepEqual(changes.changes.map((c) => c.generation), [1, 2, 3]);
        assert.ok(r2.generation >= 2);
      }));

      it('many concurrent one-shot writers get distinct generations', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
          b.documents.putDocsIfNewer(DB, `src${i}`, [doc(`D-${i}`, `s${i}:1`, `{"i":${i}}`, 1, `T-${i}`)])));
        const gens = results.map((r) => r.generation).sort((x, y) => x - y);
        assert.deepEqual(gens, Array.from({ length: 20 }, (_, i) => i + 1));
        assert.equal((await b.documents.whatsChanged(DB, 0)).changes.length, 20);
      }));

      it('keeps different databases independent', () => withBackend(async (b) => {
        const other = 'user-fedcba9876543210';
        await b.documents.ensureDatabase(DB);
        await b.documents.ensureDatabase(other);
        const s = await b.documents.openUpload(DB, SRC);
        // Another database is not blocked by the open session.
        await b.documents.putDocsIfNewer(other, SRC, [doc('D-1', 'a:1', '{}', 1)]);
        await s.abort();
        assert.equal((await b.documents.whatsChanged(other, 0)).generation, 1);
        assert.equal((await b.documents.whatsChanged(DB, 0)).generation, 0);
      }));
    });

    describe('concurrency and volume', () => {
      it('readers see only whole, contiguous generations while interleaved writers commit', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        let writing = true;
        const observed: number[] = [];
        const reader = (async () => {
          while (writing) {
            const c = await b.documents.whatsChanged(DB, 0);
            // Every document is distinct, so the changes are exactly generations 1..G.
            assert.deepEqual(c.changes.map((x) => x.generation), Array.from({ length: c.generation }, (_, i) => i + 1));
            if (c.changes.length > 0) assert.equal(c.changes[c.changes.length - 1]!.transactionId, c.transactionId);
            observed.push(c.generation);
          }
        })();
        await Promise.all(Array.from({ length: 8 }, async (_, w) => {
          for (let round = 0; round < 3; round++) {
            const s = await b.documents.openUpload(DB, `writer${w}`);
            await s.putDocsIfNewer(Array.from({ length: 4 }, (_, i) =>
              doc(`D-${w}-${round}-${i}`, `w${w}:1`, `{"w":${w}}`, round * 4 + i + 1, `T-${w}-${round}-${i}`)));
            await s.commit();
          }
        }));
        writing = false;
        await reader;
        assert.equal((await b.documents.whatsChanged(DB, 0)).generation, 96);
        assert.ok(observed.every((g, i) => i === 0 || g >= observed[i - 1]!), 'generations never go back');
      }));

      it('takes a large upload (1000 documents of 10 KB) in one session', () => withBackend(async (b) => {
        await b.documents.ensureDatabase(DB);
        const s = await b.documents.openUpload(DB, SRC);
        const content = JSON.stringify({ raw: 'x'.repeat(10_000) });
        for (let batch = 0; batch < 10; batch++) {
          await s.putDocsIfNewer(Array.from({ length: 100 }, (_, i) => {
            const n = batch * 100 + i;
            return doc(`D-${n}`, 'a:1', content, n + 1, `T-${n}`);
          }));
        }
        assert.equal((await s.commit()).generation, 1000);
        const changes = await b.documents.whatsChanged(DB, 0);
        assert.equal(changes.changes.length, 1000);
        let count = 0;
        for await (const d of b.documents.getDocs(DB, changes.changes.map((c) => c.id))) {
          assert.equal(d.content, content);
          count += 1;
        }
        assert.equal(count, 1000);
        assert.ok((await b.documents.usageBytes(DB)) >= 10_000_000);
      }));
    });

    describe('shared database', () => {
      it('creates, updates and deletes with revision checks', () => withBackend(async (b) => {
        const s = b.shared;
        assert.equal(await s.getDoc('recovery'), null);
        const r1 = await s.putDoc('recovery', '{"v":1}', null);
        assert.deepEqual(await s.getDoc('recovery'), { id: 'recovery', rev: r1, content: '{"v":1}', hasConflicts: false });
        await rejectsWith(s.putDoc('recovery', '{"v":2}', null), RevisionConflictError);
        await rejectsWith(s.putDoc('recovery', '{"v":2}', 'zz:9'), RevisionConflictError);
        await rejectsWith(s.putDoc('new', '{}', r1), RevisionConflictError);
        const r2 = await s.putDoc('recovery', '{"v":2}', r1);
        assert.ok(isNewer(r2, r1));
        assert.equal((await s.getDoc('recovery'))!.content, '{"v":2}');
        await rejectsWith(s.deleteDoc('recovery', r1), RevisionConflictError);
        await rejectsWith(s.deleteDoc('missing', null), DocumentDoesNotExistError);
        const r3 = await s.deleteDoc('recovery', r2);
        assert.ok(isNewer(r3, r2));
        assert.deepEqual(await s.getDoc('recovery'), { id: 'recovery', rev: r3, content: null, hasConflicts: false });
        await rejectsWith(s.deleteDoc('recovery', r3), DocumentAlreadyDeletedError);
        const r4 = await s.putDoc('recovery', '{"v":4}', null);
        assert.ok(isNewer(r4, r3), 'a deleted document can be put again without old_rev');
      }));

      it('serializes concurrent writers: exactly one update from a revision wins', () => withBackend(async (b) => {
        const r1 = await b.shared.putDoc('doc', '{}', null);
        const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => b.shared.putDoc('doc', `{"i":${i}}`, r1)));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      }));
    });

    describe('tokens', () => {
      it('adds, checks and lists tokens stored as sha512 hashes', () => withBackend(async (b) => {
        const token = await b.tokens.addToken('0123abcd');
        assert.ok(token.length >= 32 && !token.includes(':'));
        assert.equal(await b.tokens.check('0123abcd', token), true);
        assert.equal(await b.tokens.check('0123abce', token), false);
        assert.equal(await b.tokens.check('0123abcd', token + 'x'), false);
        assert.equal(await b.tokens.check('0123abcd', ''), false);
        const list = await b.tokens.list();
        assert.equal(list.length, 1);
        assert.equal(list[0]!.hash, createHash('sha512').update(token).digest('hex'));
        assert.equal(list[0]!.userId, '0123abcd');
        assert.equal(list[0]!.expiresAt, null);
        assert.ok(!JSON.stringify(list).includes(token), 'the token itself is never listed');
      }));

      it('revokes by token or by hash', () => withBackend(async (b) => {
        const t1 = await b.tokens.addToken('user1');
        const t2 = await b.tokens.addToken('user1');
        assert.equal(await b.tokens.revoke(t1), true);
        assert.equal(await b.tokens.check('user1', t1), false);
        assert.equal(await b.tokens.check('user1', t2), true);
        assert.equal(await b.tokens.revoke(createHash('sha512').update(t2).digest('hex')), true);
        assert.equal(await b.tokens.check('user1', t2), false);
        assert.equal(await b.tokens.revoke(t2), false);
        assert.deepEqual(await b.tokens.list(), []);
      }));

      it('honours expiry', () => withBackend(async (b) => {
        const past = await b.tokens.addToken('u', { expiresAt: new Date(Date.now() - 1000) });
        const future = await b.tokens.addToken('u', { expiresAt: new Date(Date.now() + 3600_000) });
        const soon = await b.tokens.addToken('u', { expiresAt: new Date(Date.now() + 150) });
        assert.equal(await b.tokens.check('u', past), false);
        assert.equal(await b.tokens.check('u', future), true);
        assert.equal(await b.tokens.check('u', soon), true);
        await new Promise((r) => setTimeout(r, 250));
        assert.equal(await b.tokens.check('u', soon), false);
        const listed = (await b.tokens.list()).find((t) => t.hash === createHash('sha512').update(future).digest('hex'));
        assert.ok(listed?.expiresAt instanceof Date);
      }));

      it('refuses malformed user ids', () => withBackend(async (b) => {
        for (const bad of ['', 'a/b', 'a:b', '../x']) await rejectsWith(b.tokens.addToken(bad), BadRequestError);
      }));
    });
  });
}
