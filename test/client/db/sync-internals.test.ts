/**
 * Replica internals the syncer uses: putDocIfNewer in every outcome, conflicts, auto-resolution, resolveDoc,
 * whatsChanged, generation/transaction validation, the sync log and atomic transactions (U1DB `test_backends`).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  DocumentDoesNotExistError,
  InvalidContentError,
  InvalidDocIdError,
  InvalidGenerationError,
  InvalidTransactionIdError,
  RevisionConflictError,
} from '../../../src/common/errors.js';
import { LocalDatabase, type PutDocIfNewerOptions } from '../../../src/client/db/database.js';
import type { JsonObject } from '../../../src/common/u1db/json.js';
import { formatRev, incrementRev, isNewer, maximizeRevs } from '../../../src/common/u1db/vectorclock.js';
import { makeDocument, NESTED, openTestDb, revsAndContent, SIMPLE, type TestDb } from './helpers.js';

const FROM_R = (gen: number, trans: string): PutDocIfNewerOptions => ({ saveConflict: true, replicaUid: 'r', replicaGen: gen, replicaTransId: trans });

function lastTransId(db: LocalDatabase): string {
  return db.getGenerationInfo().transactionId;
}

/** U1DB's assertGetDocConflicts: the first entry is the current version; the rest may come in any order. */
function assertConflicts(db: LocalDatabase, docId: string, expected: Array<[string, JsonObject | null]>): void {
  const actual = revsAndContent(db.getDocConflicts(docId));
  const sortRest = (xs: Array<[string | null, JsonObject | null]>) => [...xs.slice(0, 1), ...xs.slice(1).sort((a, b) => String(a[0]).localeCompare(String(b[0])))];
  assert.deepEqual(sortRest(actual), sortRest(expected));
}

describe('LocalDatabase sync internals', () => {
  let t: TestDb;
  let db: LocalDatabase;
  beforeEach(() => {
    t = openTestDb();
    db = t.db;
  });
  afterEach(() => t.cleanup());

  describe('putDocIfNewer', () => {
    it('inserts a new document', () => {
      const doc = makeDocument('my-doc-id', 'test:1', SIMPLE);
      assert.deepEqual(db.putDocIfNewer(doc, { saveConflict: false, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' }), { state: 'inserted', generation: 1 });
      const got = db.getDoc('my-doc-id')!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], ['test:1', SIMPLE, false]);
    });

    it('inserts a newer tombstone', () => {
      db.createDocFromJson('{}', 'my-doc-id');
      const doc = makeDocument('my-doc-id', 'test:2', null);
      assert.deepEqual(db.putDocIfNewer(doc, { saveConflict: false, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' }), { state: 'inserted', generation: 2 });
      const got = db.getDoc('my-doc-id', true)!;
      assert.deepEqual([got.rev, got.content], ['test:2', null]);
      assert.equal(db.getDoc('my-doc-id'), null);
    });

    it('reports an older revision as superseded and stores nothing', () => {
      const doc1 = db.createDocFromJson('{"new": "doc"}');
      const rev1 = doc1.rev;
      doc1.content = SIMPLE;
      db.putDoc(doc1);
      const { state } = db.putDocIfNewer(makeDocument(doc1.docId, rev1, { new: 'doc' }), { saveConflict: false, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' });
      assert.equal(state, 'superseded');
      const got = db.getDoc(doc1.docId)!;
      assert.deepEqual([got.rev, got.content], [doc1.rev, SIMPLE]);
      assert.equal(db.getGeneration(), 2);
    });

    it('auto-resolves concurrent edits to the same content into a strictly newer local revision', () => {
      const doc1 = db.createDoc(SIMPLE);
      const rev = doc1.rev!;
      const incoming = makeDocument(doc1.docId, 'whatever:1', SIMPLE);
      assert.equal(db.putDocIfNewer(incoming, { saveConflict: false, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' }).state, 'superseded');
      const got = db.getDoc(doc1.docId)!;
      assert.ok(isNewer(got.rev, 'whatever:1'));
      assert.ok(isNewer(got.rev, rev));
      assert.equal(got.rev, 'test:2|whatever:1');
      assert.equal(incoming.rev, got.rev, 'the incoming document carries the merged revision');
      assert.equal(db.getGeneration(), 2);
    });

    it('reports the same revision as converged', () => {
      const doc1 = db.createDocFromJson('{"new": "doc"}');
      assert.deepEqual(db.putDocIfNewer(doc1, { saveConflict: false, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' }), { state: 'converged', generation: 1 });
    });

    it('reports a concurrent revision as conflicted and leaves the database alone without saveConflict', () => {
      const doc1 = db.createDoc(SIMPLE);
      const { state } = db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:1', NESTED), { saveConflict: false, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' });
      assert.equal(state, 'conflicted');
      const got = db.getDoc(doc1.docId)!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], [doc1.rev, SIMPLE, false]);
      assert.deepEqual(db.getDocConflicts(doc1.docId), []);
      assert.deepEqual(db.getReplicaGenAndTransId('r'), { generation: 1, transactionId: 'foo' });
    });

    it('with saveConflict makes the incoming version current and keeps the local one as a conflict', () => {
      const doc1 = db.createDoc(SIMPLE);
      const doc2 = makeDocument(doc1.docId, 'alternate:1', NESTED);
      assert.equal(db.putDocIfNewer(doc2, FROM_R(1, 'foo')).state, 'conflicted');
      assert.equal(doc2.hasConflicts, true);
      const got = db.getDoc(doc1.docId)!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], ['alternate:1', NESTED, true]);
      assertConflicts(db, doc1.docId, [['alternate:1', NESTED], [doc1.rev!, SIMPLE]]);
      assert.equal(db.getAllDocs().docs[0]!.hasConflicts, true);
    });

    it('keeps a deleted local version as a conflict', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.deleteDoc(doc1);
      const doc2 = makeDocument(doc1.docId, 'alternate:1', NESTED);
      db.putDocIfNewer(doc2, FROM_R(1, 'foo'));
      assert.equal(doc2.hasConflicts, true);
      const got = db.getDoc(doc1.docId)!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], ['alternate:1', NESTED, true]);
      assertConflicts(db, doc1.docId, [['alternate:1', NESTED], [doc1.rev!, null]]);
    });

    it('prunes conflicts the new revision supersedes when forcing a conflict', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:1', { b: 1 }), FROM_R(1, 'foo'));
      db.putDocIfNewer(makeDocument(doc1.docId, 'altalt:1', { c: 1 }), FROM_R(2, 'bar'));
      db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:2', { b: 2 }), FROM_R(3, 'zed'));
      assertConflicts(db, doc1.docId, [['alternate:2', { b: 2 }], ['altalt:1', { c: 1 }], [doc1.rev!, SIMPLE]]);
    });

    it('propagates a full resolution made elsewhere', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:1', NESTED), FROM_R(1, 'foo'));
      const resolvedRev = incrementRev(formatRev(maximizeRevs(doc1.rev, 'alternate:1')), 'alternate');
      const resolved = makeDocument(doc1.docId, resolvedRev, { good: 1 });
      assert.equal(db.putDocIfNewer(resolved, FROM_R(2, 'foo2')).state, 'inserted');
      assert.equal(resolved.hasConflicts, false);
      assert.deepEqual(db.getDocConflicts(doc1.docId), []);
      assert.equal(db.getDoc(doc1.docId)!.hasConflicts, false);
    });

    it('propagates a partial resolution made elsewhere', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc1.docId, 'altalt:1', {}), FROM_R(1, 'foo'));
      db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:1', NESTED), FROM_R(2, 'foo2'));
      assertConflicts(db, doc1.docId, [['alternate:1', NESTED], ['test:1', SIMPLE], ['altalt:1', {}]]);
      const resolvedRev = incrementRev(formatRev(maximizeRevs(doc1.rev, 'alternate:1')), 'alternate');
      const resolved = makeDocument(doc1.docId, resolvedRev, { good: 1 });
      assert.equal(db.putDocIfNewer(resolved, FROM_R(3, 'foo3')).state, 'inserted');
      assert.equal(resolved.hasConflicts, true);
      assert.equal(db.getDoc(doc1.docId)!.hasConflicts, true);
      assertConflicts(db, doc1.docId, [['alternate:2|test:1', { good: 1 }], ['altalt:1', {}]]);
    });

    it('auto-resolves a conflict whose content the newer revision repeats (ordering variant)', () => {
      const a1 = db.createDoc(SIMPLE);
      assert.equal(db.putDocIfNewer(makeDocument(a1.docId, 'test:2', {}), FROM_R(1, 'foo')).state, 'inserted');
      assert.equal(db.putDocIfNewer(makeDocument(a1.docId, 'test:1|other:1', { a: '42' }), FROM_R(2, 'foo2')).state, 'conflicted');
      assert.equal(db.putDocIfNewer(makeDocument(a1.docId, 'test:2|other:1', {}), FROM_R(3, 'foo3')).state, 'inserted');
      assert.equal(db.getDoc(a1.docId)!.hasConflicts, false);
    });

    for (const [label, content] of [['content', {}], ['tombstone', null]] as const) {
      it(`auto-resolves while inserting and reports superseded (${label})`, () => {
        const a1 = db.createDoc(SIMPLE);
        assert.equal(db.putDocIfNewer(makeDocument(a1.docId, 'test:1|other:1', content), FROM_R(1, 'foo')).state, 'inserted');
        assert.equal(db.putDocIfNewer(makeDocument(a1.docId, 'test:2', { a: '42' }), FROM_R(2, 'foo2')).state, 'conflicted');
        const a3 = makeDocument(a1.docId, 'test:3', content);
        assert.equal(db.putDocIfNewer(a3, FROM_R(3, 'foo3')).state, 'superseded');
        const got = db.getDoc(a1.docId, true)!;
        assert.equal(got.hasConflicts, false);
        assert.ok(isNewer(got.rev, 'test:3'));
        assert.ok(isNewer(got.rev, 'test:1|other:1'));
        assert.ok(got.rev!.includes('test:4'), 'locally increased');
        assert.equal(a3.rev, got.rev);
      });
    }

    it('keeps a pending sync record across reopening, with the sync log, until it is dropped', () => {
      assert.equal(db.getPendingSyncRecord(), null);
      db.createDoc(SIMPLE, 'a');
      db.transaction(() => {
        db.setReplicaGenAndTransId('server', 3, 'T-s3');
        db.setPendingSyncRecord({ replicaUid: 'server', ...db.getGenerationInfo() });
      });
      db.close();
      db = LocalDatabase.open({ path: t.path, encryption: { mode: 'encrypted', key: t.key } });
      assert.deepEqual(db.getPendingSyncRecord(), { replicaUid: 'server', generation: 1, transactionId: lastTransId(db) });
      assert.throws(() => db.setPendingSyncRecord({ replicaUid: 'server', generation: -1, transactionId: 'T' }), InvalidGenerationError);
      db.setPendingSyncRecord(null);
      assert.equal(db.getPendingSyncRecord(), null);
      // Something else under the key (not written by this library) is no record.
      db.rawQuery("INSERT OR REPLACE INTO u1db_config (name, value) VALUES ('pending_sync_record', '{\"generation\": \"1\"}')");
      assert.equal(db.getPendingSyncRecord(), null);
      db.close();
    });

    it('validates the source generation and transaction id before anything else', () => {
      db.setReplicaGenAndTransId('other', 1, 'T-sid');
      assert.equal(db.putDocIfNewer(makeDocument('doc_id', 'other:2', SIMPLE), { saveConflict: false, replicaUid: 'other', replicaGen: 2, replicaTransId: 'T-irrelevant' }).state, 'inserted');
      db.setReplicaGenAndTransId('other', 1, 'T-sid');
      assert.throws(() => db.putDocIfNewer(makeDocument('doc2', 'other:1', SIMPLE), { saveConflict: false, replicaUid: 'other', replicaGen: 1, replicaTransId: 'T-sad' }), InvalidTransactionIdError);
      db.setReplicaGenAndTransId('other', 5, 'T-sid');
      assert.throws(() => db.putDocIfNewer(makeDocument('doc3', 'other:1', SIMPLE), { saveConflict: false, replicaUid: 'other', replicaGen: 1, replicaTransId: 'T-sad' }), InvalidGenerationError);
      assert.equal(db.getDoc('doc2'), null);
      assert.equal(db.getDoc('doc3'), null);
      assert.deepEqual(db.getReplicaGenAndTransId('other'), { generation: 5, transactionId: 'T-sid' });
    });

    it('accepts the same generation with the same transaction id (a resent batch)', () => {
      db.setReplicaGenAndTransId('other', 1, 'T-sid');
      const doc = db.createDoc(SIMPLE);
      assert.equal(db.putDocIfNewer(doc, { saveConflict: false, replicaUid: 'other', replicaGen: 1, replicaTransId: 'T-sid' }).state, 'converged');
    });

    it('accepts an old generation for an older document only if the generation is newer', () => {
      const doc = db.createDocFromJson('{"new": "doc"}');
      const rev1 = doc.rev;
      doc.content = SIMPLE;
      db.putDoc(doc);
      db.setReplicaGenAndTransId('other', 3, 'T-sid');
      assert.equal(db.putDocIfNewer(makeDocument(doc.docId, rev1, SIMPLE), { saveConflict: false, replicaUid: 'other', replicaGen: 8, replicaTransId: 'T-irrelevant' }).state, 'superseded');
    });

    it('records the source in the sync log for every outcome', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.setReplicaGenAndTransId('other', 1, 'T-sid');
      const newer = makeDocument(doc1.docId, `${doc1.rev}|other:1`, NESTED);
      assert.equal(db.putDocIfNewer(newer, { saveConflict: false, replicaUid: 'other', replicaGen: 2, replicaTransId: 'T-id2' }).state, 'inserted');
      assert.deepEqual(db.getReplicaGenAndTransId('other'), { generation: 2, transactionId: 'T-id2' });
      const older = makeDocument(doc1.docId, doc1.rev, NESTED);
      assert.equal(db.putDocIfNewer(older, { saveConflict: false, replicaUid: 'other', replicaGen: 3, replicaTransId: 'T-id3' }).state, 'superseded');
      assert.deepEqual(db.getReplicaGenAndTransId('other'), { generation: 3, transactionId: 'T-id3' });
      const conflicting = makeDocument(doc1.docId, `${doc1.rev}|fourth:1`, {});
      assert.equal(db.putDocIfNewer(conflicting, { saveConflict: false, replicaUid: 'other', replicaGen: 4, replicaTransId: 'T-id4' }).state, 'conflicted');
      assert.deepEqual(db.getReplicaGenAndTransId('other'), { generation: 4, transactionId: 'T-id4' });
      const saved = makeDocument(doc1.docId, `${doc1.rev}|third:3`, {});
      assert.equal(db.putDocIfNewer(saved, { saveConflict: true, replicaUid: 'other', replicaGen: 5, replicaTransId: 'T-id5' }).state, 'conflicted');
      assert.deepEqual(db.getReplicaGenAndTransId('other'), { generation: 5, transactionId: 'T-id5' });
    });

    it('without a source neither validates nor records anything', () => {
      db.setReplicaGenAndTransId('other', 5, 'T-sid');
      assert.equal(db.putDocIfNewer(makeDocument('d', 'other:1', SIMPLE), { saveConflict: false }).state, 'inserted');
      assert.deepEqual(db.getReplicaGenAndTransId('other'), { generation: 5, transactionId: 'T-sid' });
    });

    it('returns the generation after the call', () => {
      db.createDoc(SIMPLE);
      assert.deepEqual(db.putDocIfNewer(makeDocument('x', 'other:1', SIMPLE), { saveConflict: false }), { state: 'inserted', generation: 2 });
      assert.deepEqual(db.putDocIfNewer(makeDocument('x', 'other:1', SIMPLE), { saveConflict: false }), { state: 'converged', generation: 2 });
    });

    it('refuses documents without a valid revision or id', () => {
      assert.throws(() => db.putDocIfNewer(makeDocument('d', null, SIMPLE), { saveConflict: false }), InvalidContentError);
      assert.throws(() => db.putDocIfNewer(makeDocument('d', 'garbage', SIMPLE), { saveConflict: false }), InvalidContentError);
      assert.throws(() => db.putDocIfNewer(makeDocument('a b', 'other:1', SIMPLE), { saveConflict: false }), InvalidDocIdError);
      assert.equal(db.getGeneration(), 0);
    });
  });

  describe('getDocConflicts and resolveDoc', () => {
    it('lists nothing for an unconflicted or unknown document', () => {
      const doc = db.createDoc(SIMPLE);
      assert.deepEqual(db.getDocConflicts(doc.docId), []);
      assert.deepEqual(db.getDocConflicts('doc-id'), []);
    });

    it('lists the current version first, flagged as conflicted', () => {
      const doc = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc.docId, 'alternate:1', NESTED), FROM_R(1, 'foo'));
      const [current, other] = db.getDocConflicts(doc.docId);
      assert.deepEqual([current!.rev, current!.content, current!.hasConflicts], ['alternate:1', NESTED, true]);
      assert.deepEqual([other!.rev, other!.content], [doc.rev, SIMPLE]);
    });

    it('orders the other versions by revision text', () => {
      const doc = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc.docId, 'zz:1', { z: 1 }), FROM_R(1, 'a'));
      db.putDocIfNewer(makeDocument(doc.docId, 'mm:1', { m: 1 }), FROM_R(2, 'b'));
      db.putDocIfNewer(makeDocument(doc.docId, 'aa:1', { a: 1 }), FROM_R(3, 'c'));
      assert.deepEqual(db.getDocConflicts(doc.docId).map((d) => d.rev), ['aa:1', 'mm:1', 'test:1', 'zz:1']);
    });

    it('resolves every conflict with a revision newer than all of them', () => {
      const doc = db.createDoc(SIMPLE);
      const alt = makeDocument(doc.docId, 'alternate:1', NESTED);
      db.putDocIfNewer(alt, FROM_R(1, 'foo'));
      const orig = doc.rev!;
      const genBefore = db.getGeneration();
      db.resolveDoc(doc, [alt.rev!, doc.rev!]);
      assert.notEqual(doc.rev, orig);
      assert.equal(doc.rev, 'alternate:1|test:2');
      assert.equal(doc.hasConflicts, false);
      assert.ok(isNewer(doc.rev, orig) && isNewer(doc.rev, 'alternate:1'));
      const got = db.getDoc(doc.docId)!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], [doc.rev, SIMPLE, false]);
      assert.deepEqual(db.getDocConflicts(doc.docId), []);
      assert.equal(db.getGeneration(), genBefore + 1);
    });

    it('partial resolution that does not include the current version adds a conflict', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:1', NESTED), FROM_R(1, 'foo'));
      const content3 = { key: 'valin3' };
      db.putDocIfNewer(makeDocument(doc1.docId, 'third:1', content3), FROM_R(2, 'bar'));
      assertConflicts(db, doc1.docId, [['third:1', content3], [doc1.rev!, SIMPLE], ['alternate:1', NESTED]]);
      const genBefore = db.getGeneration();
      db.resolveDoc(doc1, ['alternate:1', doc1.rev!]);
      assert.equal(doc1.hasConflicts, true);
      const got = db.getDoc(doc1.docId)!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], ['third:1', content3, true]);
      assertConflicts(db, doc1.docId, [['third:1', content3], [doc1.rev!, SIMPLE]]);
      assert.equal(db.getGeneration(), genBefore, 'a resolution stored as a conflict is not a new generation');
    });

    it('partial resolution that includes the current version becomes current', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc1.docId, 'alternate:1', NESTED), FROM_R(1, 'foo'));
      const content3 = { key: 'valin3' };
      db.putDocIfNewer(makeDocument(doc1.docId, 'third:1', content3), FROM_R(2, 'bar'));
      db.resolveDoc(doc1, ['third:1', doc1.rev!]);
      assert.equal(doc1.hasConflicts, true);
      assertConflicts(db, doc1.docId, [[doc1.rev!, SIMPLE], ['alternate:1', NESTED]]);
    });

    it('resolves a delete conflict to content or to a deletion', () => {
      const doc1 = db.createDoc(SIMPLE);
      db.deleteDoc(doc1);
      const doc2 = makeDocument(doc1.docId, 'alternate:1', NESTED);
      db.putDocIfNewer(doc2, FROM_R(1, 'foo'));
      db.resolveDoc(doc2, [doc1.rev!, doc2.rev!]);
      assert.deepEqual(db.getDocConflicts(doc1.docId), []);
      let got = db.getDoc(doc2.docId)!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], [doc2.rev, NESTED, false]);

      const doc3 = db.createDoc(SIMPLE);
      db.deleteDoc(doc3);
      db.putDocIfNewer(makeDocument(doc3.docId, 'alternate:1', NESTED), FROM_R(2, 'bar'));
      db.resolveDoc(doc3, [doc3.rev!, 'alternate:1']);
      assert.deepEqual(db.getDocConflicts(doc3.docId), []);
      got = db.getDoc(doc3.docId, true)!;
      assert.deepEqual([got.rev, got.content, got.hasConflicts], [doc3.rev, null, false]);
    });

    it('refuses to resolve an unknown document', () => {
      assert.throws(() => db.resolveDoc(makeDocument('nope', null, SIMPLE), ['x:1']), DocumentDoesNotExistError);
    });

    it('after resolving, the document can be edited again', () => {
      const doc = db.createDoc(SIMPLE);
      db.putDocIfNewer(makeDocument(doc.docId, 'alternate:1', NESTED), FROM_R(1, 'foo'));
      const [current, ...others] = db.getDocConflicts(doc.docId);
      assert.throws(() => db.putDoc(current!), Error);
      db.resolveDoc(current!, [current!.rev!, ...others.map((d) => d.rev!)]);
      current!.content = { merged: true };
      db.putDoc(current!);
      assert.deepEqual(db.getDoc(doc.docId)!.content, { merged: true });
    });
  });

  describe('whatsChanged', () => {
    it('is empty on a new database', () => {
      assert.deepEqual(db.whatsChanged(), { generation: 0, transactionId: '', changes: [] });
    });

    it('returns one entry per document: its latest change', () => {
      const doc = db.createDoc(SIMPLE);
      doc.content = { new: 'contents' };
      db.putDoc(doc);
      const last = lastTransId(db);
      assert.deepEqual(db.whatsChanged(), { generation: 2, transactionId: last, changes: [{ docId: doc.docId, generation: 2, transactionId: last }] });
      assert.deepEqual(db.whatsChanged(2), { generation: 2, transactionId: last, changes: [] });
    });

    it('lists the latest edits in ascending generation order', () => {
      const doc = db.createDoc(SIMPLE);
      const doc1 = db.createDoc(SIMPLE);
      doc.content = { new: 'contents' };
      db.deleteDoc(doc1);
      const deleteTrans = lastTransId(db);
      db.putDoc(doc);
      const putTrans = lastTransId(db);
      assert.deepEqual(db.whatsChanged(), {
        generation: 4,
        transactionId: putTrans,
        changes: [
          { docId: doc1.docId, generation: 3, transactionId: deleteTrans },
          { docId: doc.docId, generation: 4, transactionId: putTrans },
        ],
      });
    });

    it('leaves out generations up to the one given', () => {
      db.createDoc(SIMPLE);
      db.createDoc(SIMPLE);
      const doc2 = db.createDoc(SIMPLE);
      const last = lastTransId(db);
      assert.deepEqual(db.whatsChanged(2), { generation: 3, transactionId: last, changes: [{ docId: doc2.docId, generation: 3, transactionId: last }] });
    });

    it('reports deletes', () => {
      const doc = db.createDoc(SIMPLE);
      const { generation } = db.whatsChanged();
      db.deleteDoc(doc);
      const last = lastTransId(db);
      assert.deepEqual(db.whatsChanged(generation), { generation: 2, transactionId: last, changes: [{ docId: doc.docId, generation: 2, transactionId: last }] });
    });

    it('refuses a negative or fractional generation', () => {
      assert.throws(() => db.whatsChanged(-1), InvalidGenerationError);
      assert.throws(() => db.whatsChanged(1.5), InvalidGenerationError);
    });
  });

  describe('generation and sync log', () => {
    it('validates a known generation and its transaction id', () => {
      db.createDoc(SIMPLE);
      const { generation, transactionId } = db.getGenerationInfo();
      db.validateGenAndTransId(generation, transactionId);
      db.validateGenAndTransId(0, 'anything');
      assert.throws(() => db.validateGenAndTransId(generation, 'wrong'), InvalidTransactionIdError);
      assert.throws(() => db.validateGenAndTransId(generation + 1, transactionId), InvalidGenerationError);
    });

    it('starts at generation 0 with an empty transaction id', () => {
      assert.equal(db.getGeneration(), 0);
      assert.deepEqual(db.getGenerationInfo(), { generation: 0, transactionId: '' });
    });

    it('stores and replaces what it knows about other replicas', () => {
      assert.deepEqual(db.getReplicaGenAndTransId('other-db'), { generation: 0, transactionId: '' });
      db.setReplicaGenAndTransId('other-db', 2, 'T-transaction');
      assert.deepEqual(db.getReplicaGenAndTransId('other-db'), { generation: 2, transactionId: 'T-transaction' });
      db.setReplicaGenAndTransId('other-db', 3, 'T-next');
      assert.deepEqual(db.getReplicaGenAndTransId('other-db'), { generation: 3, transactionId: 'T-next' });
      assert.deepEqual(db.getReplicaGenAndTransId('third'), { generation: 0, transactionId: '' });
      assert.equal(db.getGeneration(), 0, 'the sync log is not a document change');
    });
  });

  describe('transaction', () => {
    it('commits everything together', () => {
      const ids = db.transaction(() => [db.createDoc(SIMPLE).docId, db.createDoc(NESTED).docId]);
      assert.equal(db.getDocs(ids).length, 2);
      assert.equal(db.getGeneration(), 2);
    });

    it('rolls everything back when the function throws', () => {
      db.createDoc(SIMPLE, 'keep');
      assert.throws(() => db.transaction(() => {
        db.createDoc(NESTED, 'gone');
        db.setReplicaGenAndTransId('server', 9, 'T-x');
        db.createIndex('idx', 'key');
        throw new Error('boom');
      }), /boom/);
      assert.equal(db.getDoc('gone'), null);
      assert.equal(db.getGeneration(), 1);
      assert.deepEqual(db.getReplicaGenAndTransId('server'), { generation: 0, transactionId: '' });
      assert.deepEqual(db.listIndexes(), [], 'a rolled-back index must not linger in the cache');
      db.createDoc({ key: 'v' });
      assert.equal(db.rawQuery('SELECT count(*) AS n FROM document_fields').length, 1);
      assert.deepEqual(db.rawQuery('SELECT count(*) AS n FROM document_fields'), [{ n: 0 }]);
    });

    it('undoes only a failed call that the function catches', () => {
      db.transaction(() => {
        db.createDoc(SIMPLE, 'a');
        assert.throws(() => db.createDoc(NESTED, 'a'), RevisionConflictError);
        db.createDoc(NESTED, 'b');
      });
      assert.deepEqual(db.getAllDocs().docs.map((d) => d.docId).sort(), ['a', 'b']);
      assert.equal(db.getGeneration(), 2);
    });
  });
});
