/**
 * Document API of the local replica: create/get/put/delete, revisions, tombstones, content and id validation,
 * size limit, syncable flag, getDocs/getAllDocs and the transaction log they write (U1DB `test_backends`,
 * `test_document`, Soledad's sqlcipher `test_backend`).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ConflictedDocError,
  DatabaseClosedError,
  DocumentAlreadyDeletedError,
  DocumentDoesNotExistError,
  DocumentTooBigError,
  InvalidDocIdError,
  InvalidJSONError,
  RevisionConflictError,
} from '../../../src/common/errors.js';
import type { LocalDatabase } from '../../../src/client/db/database.js';
import { Document } from '../../../src/common/u1db/document.js';
import type { JsonObject } from '../../../src/common/u1db/json.js';
import { isNewer, parseRev } from '../../../src/common/u1db/vectorclock.js';
import { makeDocument, NESTED, openTestDb, SIMPLE, type TestDb } from './helpers.js';

function assertDoc(db: LocalDatabase, docId: string, rev: string | null, content: JsonObject | null, hasConflicts: boolean): void {
  const doc = db.getDoc(docId, true);
  assert.ok(doc, `document ${docId} should exist`);
  assert.equal(doc.docId, docId);
  assert.equal(doc.rev, rev);
  assert.deepEqual(doc.content, content);
  assert.equal(doc.hasConflicts, hasConflicts);
}

function transactionLog(db: LocalDatabase): string[] {
  return (db.rawQuery('SELECT doc_id FROM transaction_log ORDER BY generation') as Array<{ doc_id: string }>).map((r) => r.doc_id);
}

describe('LocalDatabase documents', () => {
  let t: TestDb;
  let db: LocalDatabase;
  beforeEach(() => {
    t = openTestDb();
    db = t.db;
  });
  afterEach(() => t.cleanup());

  describe('create', () => {
    it('allocates a D-<hex> id and a first revision on this replica', () => {
      const doc = db.createDoc(SIMPLE);
      assert.match(doc.docId, /^D-[0-9a-f]{32}$/);
      assert.equal(doc.rev, 'test:1');
      assertDoc(db, doc.docId, 'test:1', SIMPLE, false);
    });

    it('gives different ids to different documents', () => {
      assert.notEqual(db.createDoc(SIMPLE).docId, db.createDoc(NESTED).docId);
    });

    it('accepts a given id', () => {
      const doc = db.createDoc(SIMPLE, 'my-id');
      assert.equal(doc.docId, 'my-id');
      assertDoc(db, 'my-id', doc.rev, SIMPLE, false);
    });

    it('refuses an id that a live document has', () => {
      const doc = db.createDoc(SIMPLE);
      assert.throws(() => db.createDocFromJson('{"something": "else"}', doc.docId), RevisionConflictError);
      assertDoc(db, doc.docId, doc.rev, SIMPLE, false);
    });

    it('creates from JSON text, which must be an object', () => {
      const doc = db.createDocFromJson('{"key": "value"}');
      assertDoc(db, doc.docId, doc.rev, SIMPLE, false);
      assert.throws(() => db.createDocFromJson('[1, 2]'), InvalidJSONError);
      assert.throws(() => db.createDocFromJson('"text"'), InvalidJSONError);
      assert.throws(() => db.createDocFromJson('{not json'), InvalidJSONError);
    });

    it('succeeds after a delete, with a revision that supersedes the tombstone', () => {
      const doc = db.createDoc(SIMPLE, 'my_doc_id');
      db.deleteDoc(doc);
      const tombstone = db.getDoc('my_doc_id', true)!;
      const again = db.createDoc(SIMPLE, 'my_doc_id');
      assertDoc(db, 'my_doc_id', again.rev, SIMPLE, false);
      assert.ok(isNewer(again.rev, tombstone.rev), `${again.rev} should supersede ${tombstone.rev}`);
      assert.equal(again.rev, 'test:3');
    });

    it('keeps non-ASCII keys, values and nested content, and null values', () => {
      const content = { 'keyå': 'valå', emoji: '😀', nested: { list: [1, 2.5, true, null, { deep: 'x' }] }, none: null };
      const doc = db.createDoc(content);
      assertDoc(db, doc.docId, doc.rev, content, false);
    });
  });

  describe('put', () => {
    it('creates the initial version when rev is null', () => {
      const doc = makeDocument('my_doc_id', null, SIMPLE);
      const rev = db.putDoc(doc);
      assert.equal(rev, 'test:1');
      assert.equal(doc.rev, rev);
      assertDoc(db, 'my_doc_id', rev, SIMPLE, false);
    });

    it('updates with the current rev, setting the new rev on the document', () => {
      const doc = db.createDoc(SIMPLE, 'my_doc_id');
      const orig = doc.rev;
      doc.content = { updated: 'stuff' };
      const rev = db.putDoc(doc);
      assert.notEqual(rev, orig);
      assert.equal(doc.rev, rev);
      assert.equal(rev, 'test:2');
      assertDoc(db, 'my_doc_id', rev, { updated: 'stuff' }, false);
    });

    it('refuses a stale, foreign or invented rev', () => {
      const doc = db.createDoc(SIMPLE, 'my_doc_id');
      assert.throws(() => db.putDoc(makeDocument('my_doc_id', 'other:1', { something: 'else' })), RevisionConflictError);
      assert.throws(() => db.putDoc(makeDocument('my_doc_id', null, { something: 'else' })), RevisionConflictError);
      assert.throws(() => db.putDoc(makeDocument('doc-id', 'test:4', SIMPLE)), RevisionConflictError);
      assertDoc(db, 'my_doc_id', doc.rev, SIMPLE, false);
      assert.equal(db.getDoc('doc-id', true), null);
    });

    it('re-creates over a tombstone with rev null, incrementing the tombstone rev', () => {
      const doc = db.createDoc(SIMPLE, 'my_doc_id');
      db.deleteDoc(doc);
      const tombstoneRev = db.getDoc('my_doc_id', true)!.rev;
      const doc2 = makeDocument('my_doc_id', null, SIMPLE);
      db.putDoc(doc2);
      assertDoc(db, 'my_doc_id', doc2.rev, SIMPLE, false);
      assert.ok(isNewer(doc2.rev, tombstoneRev));
    });

    it('puts again after a delete using the tombstone rev', () => {
      const doc = db.createDoc(SIMPLE);
      db.deleteDoc(doc);
      doc.content = NESTED;
      db.putDoc(doc);
      assertDoc(db, doc.docId, doc.rev, NESTED, false);
    });

    it('validates document ids', () => {
      for (const bad of ['my doc id', '', 'a/b', '\\b', '/a', 'dåc-id']) {
        assert.throws(() => db.putDoc(makeDocument(bad, null, SIMPLE)), InvalidDocIdError, JSON.stringify(bad));
      }
      assert.throws(() => db.putDoc(new Document(null as unknown as string, null, SIMPLE)), InvalidDocIdError);
      const rev = db.putDoc(makeDocument('%2F%2Ffoo%2Fbar', null, SIMPLE));
      assertDoc(db, '%2F%2Ffoo%2Fbar', rev, SIMPLE, false);
    });

    it('refuses content that is not a JSON object', () => {
      const bad: unknown[] = [[1], 'text', 3, { d: new Date() }, { f: () => 1 }, { n: Number.NaN }, { u: undefined }, { i: Infinity }, { b: 1n }];
      for (const content of bad) {
        assert.throws(() => db.putDoc(new Document('d', null, content as JsonObject)), InvalidJSONError);
      }
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      assert.throws(() => db.createDoc(cyclic as JsonObject), InvalidJSONError);
      assert.equal(db.getGeneration(), 0);
    });

    it('refuses to update a conflicted document', () => {
      const doc1 = db.createDoc(SIMPLE);
      const doc2 = makeDocument(doc1.docId, 'altrev:1', { key: 'altval' });
      db.putDocIfNewer(doc2, { saveConflict: true, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' });
      assertDoc(db, doc1.docId, 'altrev:1', { key: 'altval' }, true);
      doc2.content = { key: 'local' };
      assert.throws(() => db.putDoc(doc2), ConflictedDocError);
    });
  });

  describe('get', () => {
    it('returns null for unknown and deleted documents unless deleted ones are asked for', () => {
      assert.equal(db.getDoc('non-existing'), null);
      const doc = db.createDoc(SIMPLE, 'my_doc_id');
      db.deleteDoc(doc);
      assert.equal(db.getDoc('my_doc_id'), null);
      assertDoc(db, 'my_doc_id', doc.rev, null, false);
      assert.equal(db.getDoc('my_doc_id', true)!.isTombstone(), true);
    });

    it('returns independent copies', () => {
      const doc = db.createDoc({ a: { b: 1 } });
      const copy = db.getDoc(doc.docId)!;
      (copy.content!.a as JsonObject).b = 2;
      assert.deepEqual(db.getDoc(doc.docId)!.content, { a: { b: 1 } });
    });

    it('getDocs returns documents in the requested order, skipping tombstones and unknown ids', () => {
      const doc1 = db.createDoc(SIMPLE);
      const doc2 = db.createDoc(NESTED);
      assert.deepEqual(db.getDocs([doc1.docId, doc2.docId]).map((d) => d.docId), [doc1.docId, doc2.docId]);
      assert.deepEqual(db.getDocs([doc2.docId, doc1.docId]).map((d) => d.docId), [doc2.docId, doc1.docId]);
      assert.deepEqual(db.getDocs([]), []);
      db.deleteDoc(doc1);
      assert.deepEqual(db.getDocs([doc1.docId, 'nope', doc2.docId]).map((d) => d.docId), [doc2.docId]);
      const withDeleted = db.getDocs([doc1.docId, doc2.docId], { includeDeleted: true });
      assert.deepEqual(withDeleted.map((d) => [d.docId, d.rev, d.content]), [[doc1.docId, doc1.rev, null], [doc2.docId, doc2.rev, NESTED]]);
    });

    it('getDocs reports conflicts unless asked not to', () => {
      const doc1 = db.createDoc(SIMPLE);
      const doc2 = db.createDoc(NESTED);
      db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:1', NESTED), { saveConflict: true, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' });
      const [c1] = db.getDocs([doc1.docId]);
      assert.equal(c1!.hasConflicts, true);
      assert.equal(c1!.rev, 'alternate:1');
      const plain = db.getDocs([doc1.docId, doc2.docId], { checkForConflicts: false });
      assert.deepEqual(plain.map((d) => [d.rev, d.hasConflicts]), [['alternate:1', false], [doc2.rev, false]]);
    });

    it('getAllDocs returns the generation and live documents (tombstones on request)', () => {
      assert.deepEqual(db.getAllDocs(), { generation: 0, docs: [] });
      const doc1 = db.createDoc(SIMPLE);
      const doc2 = db.createDoc(NESTED);
      const all = db.getAllDocs();
      assert.equal(all.generation, 2);
      assert.deepEqual(all.docs.map((d) => d.docId).sort(), [doc1.docId, doc2.docId].sort());
      db.deleteDoc(doc2);
      assert.deepEqual(db.getAllDocs().docs.map((d) => d.docId), [doc1.docId]);
      const withDeleted = db.getAllDocs(true);
      assert.equal(withDeleted.generation, 3);
      assert.deepEqual(withDeleted.docs.map((d) => [d.docId, d.content]).sort(), [[doc1.docId, SIMPLE], [doc2.docId, null]].sort());
    });
  });

  describe('delete', () => {
    it('makes a tombstone whose rev supersedes the last one', () => {
      const doc = db.createDoc(SIMPLE);
      doc.content = NESTED;
      db.putDoc(doc);
      doc.content = { fishy: 'content' };
      db.putDoc(doc);
      const old = doc.rev;
      const rev = db.deleteDoc(doc);
      assert.equal(rev, doc.rev);
      assert.equal(doc.content, null);
      assert.equal(doc.getJson(), null);
      assert.ok(isNewer(doc.rev, old));
      assertDoc(db, doc.docId, doc.rev, null, false);
    });

    it('refuses unknown, stale, already deleted and conflicted documents', () => {
      assert.throws(() => db.deleteDoc(makeDocument('non-existing', 'other:1', SIMPLE)), DocumentDoesNotExistError);
      const doc1 = db.createDoc(SIMPLE);
      assert.throws(() => db.deleteDoc(makeDocument(doc1.docId, 'other:1', SIMPLE)), RevisionConflictError);
      assertDoc(db, doc1.docId, doc1.rev, SIMPLE, false);
      db.deleteDoc(doc1);
      assert.throws(() => db.deleteDoc(doc1), DocumentAlreadyDeletedError);
      assertDoc(db, doc1.docId, doc1.rev, null, false);
      const doc2 = db.createDoc(SIMPLE);
      const alt = makeDocument(doc2.docId, 'altrev:1', NESTED);
      db.putDocIfNewer(alt, { saveConflict: true, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' });
      assert.throws(() => db.deleteDoc(alt), ConflictedDocError);
    });
  });

  describe('transaction log', () => {
    it('records every put and delete, one generation each', () => {
      const doc = db.createDoc(SIMPLE);
      assert.deepEqual(transactionLog(db), [doc.docId]);
      doc.content = { something: 'else' };
      db.putDoc(doc);
      assert.deepEqual(transactionLog(db), [doc.docId, doc.docId]);
      db.deleteDoc(doc);
      assert.deepEqual(transactionLog(db), [doc.docId, doc.docId, doc.docId]);
      assert.equal(db.getGeneration(), 3);
      const { generation, transactionId } = db.getGenerationInfo();
      assert.equal(generation, 3);
      assert.match(transactionId, /^T-[0-9a-f]{32}$/);
    });

    it('writes nothing when a put fails', () => {
      const doc = db.createDoc(SIMPLE);
      assert.throws(() => db.putDoc(makeDocument(doc.docId, 'bogus:9', NESTED)), RevisionConflictError);
      assert.equal(db.getGeneration(), 1);
    });
  });

  describe('size limit', () => {
    it('refuses oversized documents on put and create, counting UTF-8 bytes of the JSON', () => {
      db.setDocumentSizeLimit(1);
      assert.throws(() => db.putDoc(makeDocument('doc-id', null, SIMPLE)), DocumentTooBigError);
      assert.throws(() => db.createDoc(SIMPLE, 'my_doc_id'), DocumentTooBigError);
      const json = JSON.stringify({ k: 'å' }); // 'å' is 2 bytes in UTF-8
      db.setDocumentSizeLimit(Buffer.byteLength(json));
      db.createDoc({ k: 'å' });
      assert.throws(() => db.createDoc({ k: 'åå' }), DocumentTooBigError);
      db.setDocumentSizeLimit(0);
      db.createDoc({ big: 'x'.repeat(100_000) });
      assert.equal(db.documentSizeLimit, 0);
    });

    it('is an open option and does not apply to documents from another replica', () => {
      const limited = openTestDb({ documentSizeLimit: 10 });
      try {
        assert.equal(limited.db.documentSizeLimit, 10);
        assert.throws(() => limited.db.createDoc({ key: 'too long for ten' }), DocumentTooBigError);
        const { state } = limited.db.putDocIfNewer(makeDocument('d', 'other:1', { key: 'too long for ten' }), { saveConflict: false });
        assert.equal(state, 'inserted');
      } finally {
        limited.cleanup();
      }
      assert.throws(() => openTestDb({ documentSizeLimit: -1 }), RangeError);
    });
  });

  describe('syncable flag', () => {
    it('defaults to true and is stored with every put', () => {
      const doc = db.createDoc(SIMPLE);
      assert.equal(doc.syncable, true);
      assert.equal(db.getDoc(doc.docId)!.syncable, true);
      doc.syncable = false;
      db.putDoc(doc);
      assert.equal(db.getDoc(doc.docId)!.syncable, false);
      doc.syncable = true;
      db.putDoc(doc);
      assert.equal(db.getDoc(doc.docId)!.syncable, true);
    });

    it('can be set without a new revision, and unknown ids are refused', () => {
      const doc = db.createDoc(SIMPLE);
      const gen = db.getGeneration();
      db.setDocumentSyncable(doc.docId, false);
      const got = db.getDoc(doc.docId)!;
      assert.equal(got.syncable, false);
      assert.equal(got.rev, doc.rev);
      assert.equal(db.getGeneration(), gen);
      assert.throws(() => db.setDocumentSyncable('nope', false), DocumentDoesNotExistError);
    });

    it('leaves non-syncable documents out of whatsChanged(…, { syncableOnly })', () => {
      const a = db.createDoc(SIMPLE);
      const b = db.createDoc(NESTED);
      b.syncable = false;
      db.putDoc(b);
      const all = db.whatsChanged(0);
      assert.deepEqual(all.changes.map((c) => c.docId), [a.docId, b.docId]);
      const syncable = db.whatsChanged(0, { syncableOnly: true });
      assert.deepEqual(syncable.changes.map((c) => c.docId), [a.docId]);
      assert.equal(syncable.generation, 3);
      assert.equal(syncable.transactionId, all.transactionId);
    });
  });

  describe('lifecycle', () => {
    it('keeps documents across close and reopen with the same replica uid', async () => {
      const doc = db.createDoc(SIMPLE, 'keep');
      db.close();
      const { LocalDatabase } = await import('../../../src/client/db/database.js');
      const again = LocalDatabase.open({ path: t.path, encryption: { mode: 'encrypted', key: t.key } });
      try {
        assert.equal(again.replicaUid, 'test');
        assertDoc(again, 'keep', doc.rev, SIMPLE, false);
      } finally {
        again.close();
      }
    });

    it('throws DatabaseClosedError after close, and closing twice is harmless', () => {
      db.close();
      db.close();
      assert.equal(db.isOpen, false);
      assert.throws(() => db.getDoc('x'), DatabaseClosedError);
      assert.throws(() => db.createDoc(SIMPLE), DatabaseClosedError);
      assert.throws(() => db.getGeneration(), DatabaseClosedError);
      assert.throws(() => db.listIndexes(), DatabaseClosedError);
    });

    it('generates a replica uid when none is given', () => {
      const other = openTestDb({ replicaUid: undefined as unknown as string });
      try {
        assert.match(other.db.replicaUid, /^[0-9a-f]{32}$/);
        assert.equal(parseRev(other.db.createDoc(SIMPLE).rev).get(other.db.replicaUid), 1);
      } finally {
        other.cleanup();
      }
    });
  });
});
