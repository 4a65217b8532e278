/**
 * What a download uses to apply documents: putDocsIfNewer (one transaction per batch) must give exactly the outcomes
 * of putDocIfNewer called once per document, reject a batch as a whole, and bulk-write mode must switch the journal
 * only when this is the file's only connection.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { LocalDatabase, type IncomingVersion, type PutDocState } from '../../../src/client/db/database.js';
import { InvalidGenerationError, InvalidTransactionIdError } from '../../../src/common/errors.js';
import type { JsonObject } from '../../../src/common/u1db/json.js';
import { makeDocument, openTestDb, revsAndContent, type TestDb } from './helpers.js';

/** Local history shared by both replicas of the comparison: live docs, a tombstone, a doc with a conflict. */
function seed(db: LocalDatabase, withConflict: boolean): void {
  db.createDoc({ v: 'local' }, 'newer-wins');
  db.createDoc({ v: 'local' }, 'same-rev');
  db.createDoc({ v: 'local' }, 'older');
  db.createDoc({ v: 'same' }, 'concurrent-same');
  db.createDoc({ v: 'mine' }, 'concurrent-diff');
  const gone = db.createDoc({ v: 'x' }, 'tombstoned');
  db.deleteDoc(gone);
  db.createDoc({ v: 'c' }, 'has-conflict');
  if (withConflict) db.putDocIfNewer(makeDocument('has-conflict', 'other:1', { v: 'theirs' }), { saveConflict: true });
  db.createIndex('by-v', 'v');
}

/** The incoming sequence: every outcome of `_put_doc_if_newer`, a tombstone, and two versions of one document. */
function incoming(): Array<{ id: string; rev: string; content: JsonObject | null }> {
  return [
    { id: 'fresh', rev: 'other:1', content: { v: 'fresh' } },
    { id: 'newer-wins', rev: 'test:1|other:1', content: { v: 'newer' } },
    { id: 'same-rev', rev: 'test:1', content: { v: 'local' } },
    { id: 'older', rev: 'test:0', content: { v: 'old' } },
    { id: 'concurrent-same', rev: 'other:5', content: { v: 'same' } },
    { id: 'concurrent-diff', rev: 'other:5', content: { v: 'theirs' } },
    { id: 'tombstoned', rev: 'test:2|other:1', content: null },
    { id: 'has-conflict', rev: 'other:2|test:1', content: { v: 'supersedes both' } },
    { id: 'fresh2', rev: 'other:1', content: { v: 'fresh2' } },
  ];
}

function snapshot(db: LocalDatabase): unknown {
  const { generation, docs } = db.getAllDocs(true);
  return {
    generation,
    docs: docs.map((d) => [d.docId, d.rev, d.content, d.hasConflicts]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    conflicts: docs.map((d) => [d.docId, revsAndContent(db.getDocConflicts(d.docId))]),
    index: db.getFromIndex('by-v', '*').map((d) => d.docId).sort(),
    sync: db.getReplicaGenAndTransId('r'),
  };
}

for (const withConflict of [true, false]) {
  describe(`putDocsIfNewer (local conflicts before the batch: ${withConflict})`, () => {
    let one: TestDb;
    let batch: TestDb;
    beforeEach(() => {
      one = openTestDb();
      batch = openTestDb();
      seed(one.db, withConflict);
      seed(batch.db, withConflict);
    });
    afterEach(() => {
      one.cleanup();
      batch.cleanup();
    });

    it('gives the outcomes, revisions, conflicts, index rows and sync log of putDocIfNewer per document', () => {
      const single: PutDocState[] = [];
      incoming().forEach(({ id, rev, content }, i) => {
        single.push(one.db.putDocIfNewer(makeDocument(id, rev, content), {
          saveConflict: true, replicaUid: 'r', replicaGen: i + 1, replicaTransId: `T-${i + 1}`,
        }).state);
      });
      const items: IncomingVersion[] = incoming().map(({ id, rev, content }, i) => ({
        doc: makeDocument(id, rev, content), replicaGen: i + 1, replicaTransId: `T-${i + 1}`,
        ...(content === null ? {} : { json: JSON.stringify(content) }),
      }));
      const { states, generation } = batch.db.putDocsIfNewer(items, { saveConflict: true, replicaUid: 'r' });
      assert.deepEqual(states, single);
      assert.deepEqual(new Set(states), new Set(['inserted', 'converged', 'superseded', 'conflicted']));
      assert.equal(generation, batch.db.getGeneration());
      assert.deepEqual(snapshot(batch.db), snapshot(one.db));
      assert.deepEqual(batch.db.getReplicaGenAndTransId('r'), { generation: items.length, transactionId: `T-${items.length}` });
    });

    it('rolls the whole batch back when a generation goes backwards or a transaction id differs', () => {
      batch.db.setReplicaGenAndTransId('r', 5, 'T-5');
      const before = snapshot(batch.db);
      const items = (gens: Array<[number, string]>): IncomingVersion[] =>
        gens.map(([gen, trans], i) => ({ doc: makeDocument(`n${i}`, 'other:1', { i }), replicaGen: gen, replicaTransId: trans }));
      assert.throws(() => batch.db.putDocsIfNewer(items([[6, 'T-6'], [7, 'T-7'], [6, 'T-6b']]), { saveConflict: true, replicaUid: 'r' }),
        InvalidGenerationError);
      assert.throws(() => batch.db.putDocsIfNewer(items([[6, 'T-6'], [6, 'T-other']]), { saveConflict: true, replicaUid: 'r' }),
        InvalidTransactionIdError);
      assert.throws(() => batch.db.putDocsIfNewer(items([[4, 'T-4']]), { saveConflict: true, replicaUid: 'r' }), InvalidGenerationError);
      assert.deepEqual(snapshot(batch.db), before);
    });
  });
}

describe('putDocsIfNewer over a lazy source', () => {
  let t: TestDb;
  beforeEach(() => { t = openTestDb(); });
  afterEach(() => t.cleanup());

  it('takes each document only after the one before it is stored', () => {
    const seen: Array<string | undefined> = [];
    const db = t.db;
    function* source(): Generator<IncomingVersion> {
      for (let i = 0; i < 5; i++) {
        // Inside the batch's transaction, on its connection: the previous document is already written.
        seen.push(i === 0 ? 'first' : db.getDoc(`lazy-${i - 1}`)?.rev ?? undefined);
        yield { doc: makeDocument(`lazy-${i}`, 'other:1', { i }), json: JSON.stringify({ i }), replicaGen: i + 1, replicaTransId: `T-${i + 1}` };
      }
    }
    const { states } = db.putDocsIfNewer(source(), { saveConflict: true, replicaUid: 'r' });
    assert.deepEqual(states, Array(5).fill('inserted'));
    assert.deepEqual(seen, ['first', 'other:1', 'other:1', 'other:1', 'other:1']);
    assert.deepEqual(db.getReplicaGenAndTransId('r'), { generation: 5, transactionId: 'T-5' });
  });

  it('skips reading a document the caller knows is absent, and fails the batch if it is not', () => {
    t.db.createDoc({ here: true }, 'present');
    const before = t.db.getAllDocs(true);
    const item = (id: string, gen: number): IncomingVersion => ({
      doc: makeDocument(id, 'other:1', { id }), replicaGen: gen, replicaTransId: `T-${gen}`, knownAbsent: true,
    });
    assert.throws(() => t.db.putDocsIfNewer([item('absent', 1), item('present', 2)], { saveConflict: true, replicaUid: 'r' }));
    assert.deepEqual(t.db.getAllDocs(true), before);
    const { states } = t.db.putDocsIfNewer([item('absent', 1)], { saveConflict: true, replicaUid: 'r' });
    assert.deepEqual(states, ['inserted']);
    assert.deepEqual(t.db.getDoc('absent')?.content, { id: 'absent' });
  });

  it('rolls back what it stored when the source throws', () => {
    const before = t.db.getAllDocs(true);
    function* source(): Generator<IncomingVersion> {
      yield { doc: makeDocument('kept', 'other:1', { a: 1 }), replicaGen: 1, replicaTransId: 'T-1' };
      throw new Error('source failed');
    }
    assert.throws(() => t.db.putDocsIfNewer(source(), { saveConflict: true, replicaUid: 'r' }), /source failed/);
    assert.deepEqual(t.db.getAllDocs(true), before);
    assert.equal(t.db.getDoc('kept'), null);
    assert.deepEqual(t.db.getReplicaGenAndTransId('r'), { generation: 0, transactionId: '' });
  });
});

describe('bulk-write mode', () => {
  let t: TestDb;
  beforeEach(() => { t = openTestDb(); });
  afterEach(() => t.cleanup());

  it('switches to a rollback journal with FULL syncs and back to WAL with NORMAL', () => {
    assert.equal(t.db.enterBulkWrite(), true);
    assert.deepEqual(t.db.rawQuery('PRAGMA journal_mode'), [{ journal_mode: 'delete' }]);
    assert.deepEqual(t.db.rawQuery('PRAGMA synchronous'), [{ synchronous: 2 }]);
    t.db.createDoc({ a: 1 }, 'during');
    t.db.leaveBulkWrite();
    assert.deepEqual(t.db.rawQuery('PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
    assert.deepEqual(t.db.rawQuery('PRAGMA synchronous'), [{ synchronous: 1 }]);
    assert.deepEqual(t.db.getDoc('during')?.content, { a: 1 });
  });

  it('is refused at once, changing nothing, while another connection has the file open', () => {
    const other = LocalDatabase.open({ path: t.path, encryption: { mode: 'encrypted', key: t.key } });
    try {
      const t0 = performance.now();
      assert.equal(t.db.enterBulkWrite(), false);
      assert.ok(performance.now() - t0 < 1000, 'no waiting for the busy timeout');
      assert.deepEqual(t.db.rawQuery('PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
      assert.deepEqual(t.db.rawQuery('PRAGMA synchronous'), [{ synchronous: 1 }]);
      other.createDoc({ still: 'works' }, 'other-writer');
      assert.deepEqual(t.db.getDoc('other-writer')?.content, { still: 'works' });
    } finally {
      other.close();
    }
  });

  it('keeps the rollback journal encrypted like the database', () => {
    for (let i = 0; i < 50; i++) t.db.createDoc({ secret: `OLD-PLAINTEXT-${i}-${'x'.repeat(200)}` }, `d${i}`);
    assert.equal(t.db.enterBulkWrite(), true);
    t.db.transaction(() => {
      for (let i = 0; i < 50; i++) {
        const doc = t.db.getDoc(`d${i}`)!;
        doc.content = { secret: `NEW-PLAINTEXT-${i}` };
        t.db.putDoc(doc);
      }
      const journal = `${t.path}-journal`;
      assert.ok(fs.statSync(journal).size > 0, 'the transaction is journaled');
      for (const file of [t.path, journal]) {
        const bytes = fs.readFileSync(file);
        assert.equal(bytes.includes('PLAINTEXT'), false, `${file} holds no plaintext`);
      }
    });
    t.db.leaveBulkWrite();
  });

  it('is refused inside a transaction', () => {
    t.db.transaction(() => {
      assert.equal(t.db.enterBulkWrite(), false);
    });
  });
});
