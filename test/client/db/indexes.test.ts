/**
 * Indexes through the database: create/delete/list, expression functions, getFromIndex wildcard rules and
 * ordering, ranges, keys, counts, and index maintenance through put, delete, conflicts and resolve
 * (U1DB `test_backends` DatabaseIndexTests, Soledad's `get_count_from_index`).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  IndexDefinitionParseError,
  IndexDoesNotExistError,
  IndexNameTakenError,
  InvalidGlobbingError,
  InvalidValueForIndexError,
} from '../../../src/common/errors.js';
import { LocalDatabase } from '../../../src/client/db/database.js';
import type { Document } from '../../../src/common/u1db/document.js';
import { makeDocument, NESTED, openTestDb, SIMPLE, type TestDb } from './helpers.js';

const ids = (docs: readonly Document[]): string[] => docs.map((d) => d.docId);
const sortedIds = (docs: readonly Document[]): string[] => ids(docs).sort();

describe('LocalDatabase indexes', () => {
  let t: TestDb;
  let db: LocalDatabase;
  beforeEach(() => {
    t = openTestDb();
    db = t.db;
  });
  afterEach(() => t.cleanup());

  describe('definitions', () => {
    it('creates, lists and deletes indexes', () => {
      db.createIndex('test-idx', 'name');
      db.createIndex('a-idx', 'x', 'lower(y)');
      assert.deepEqual(db.listIndexes(), [['a-idx', ['x', 'lower(y)']], ['test-idx', ['name']]]);
      db.deleteIndex('test-idx');
      assert.deepEqual(db.listIndexes(), [['a-idx', ['x', 'lower(y)']]]);
      db.deleteIndex('never-existed');
    });

    it('is a no-op for the same definition and refuses another one under the same name', () => {
      db.createIndex('test-idx', 'key');
      db.createIndex('test-idx', 'key');
      assert.deepEqual(db.listIndexes(), [['test-idx', ['key']]]);
      assert.throws(() => db.createIndex('test-idx', 'stuff'), IndexNameTakenError);
      assert.throws(() => db.createIndex('test-idx', 'key', 'stuff'), IndexNameTakenError);
    });

    it('keeps non-ASCII expressions', () => {
      const doc = db.createDoc({ 'å': 'value' });
      db.createIndex('test-idx', 'å');
      assert.deepEqual(db.listIndexes(), [['test-idx', ['å']]]);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'value')), [doc.docId]);
    });

    it('refuses bad expressions without changing anything', () => {
      db.createDoc(NESTED);
      for (const bad of ['', 'unknown_operation(field1)', 'lower(a', 'lower(ab))', 'lower(ab)adsf', '(ab)', 'a, b', 'a.', 'lower(a.)', '(@#@cc   @#!*DFJSXV(()jccd', '    (a) ', 'combine(lower(x)x,foo)']) {
        assert.throws(() => db.createIndex('idx', bad), IndexDefinitionParseError, JSON.stringify(bad));
      }
      assert.throws(() => db.createIndex('idx'), IndexDefinitionParseError);
      assert.throws(() => db.createIndex('idx', 'good', 'bad('), IndexDefinitionParseError);
      assert.deepEqual(db.listIndexes(), []);
    });

    it('accepts spaces around names, parentheses and commas', () => {
      db.createDoc(NESTED);
      for (const ok of ['  lower(a)', 'lower(a)  ', 'lower  (a)', 'lower(  a)', 'lower(a  )', 'combine(a  , b  , c)', 'combine(a,  b,  c)']) {
        db.createIndex('idx', ok);
        assert.deepEqual(db.listIndexes(), [['idx', [ok]]]);
        db.deleteIndex('idx');
      }
    });

    it('stores index rows per expression text ("expand referenced")', () => {
      db.createDoc({ key: 'value', other: 'x' });
      db.createIndex('one', 'key');
      db.createIndex('two', 'key', 'other');
      const rows = db.rawQuery('SELECT field_name, value FROM document_fields ORDER BY field_name') as Array<{ field_name: string; value: string }>;
      assert.deepEqual(rows, [{ field_name: 'key', value: 'value' }, { field_name: 'other', value: 'x' }]);
      db.deleteIndex('one');
      assert.equal(db.getFromIndex('two', 'value', 'x').length, 1, 'rows shared with another index stay');
      db.deleteIndex('two');
      assert.deepEqual(db.rawQuery('SELECT * FROM document_fields'), []);
    });

    it('does not duplicate rows when an index is recreated', () => {
      db.createDoc(SIMPLE);
      db.createIndex('test-idx', 'key');
      db.deleteIndex('test-idx');
      db.createIndex('test-idx', 'key');
      assert.equal(db.getFromIndex('test-idx', 'value').length, 1);
      assert.deepEqual(db.rawQuery('SELECT count(*) AS n FROM document_fields'), [{ n: 1 }]);
    });

    it('is visible to another connection on the same file', () => {
      const other = LocalDatabase.open({ path: t.path, encryption: { mode: 'encrypted', key: t.key } });
      try {
        assert.deepEqual(other.listIndexes(), []);
        db.createIndex('test-idx', 'key');
        const doc = other.createDoc(SIMPLE);
        assert.deepEqual(other.listIndexes(), [['test-idx', ['key']]]);
        assert.deepEqual(ids(db.getFromIndex('test-idx', 'value')), [doc.docId]);
        other.deleteIndex('test-idx');
        assert.throws(() => db.getFromIndex('test-idx', 'value'), IndexDoesNotExistError);
      } finally {
        other.close();
      }
    });

    it('still opens and writes when a stored expression cannot be parsed (written by other software)', () => {
      db.createIndex('good', 'key');
      db.rawOperation("INSERT INTO index_definitions VALUES ('odd', 0, 'bogus(')");
      db.close();
      const again = LocalDatabase.open({ path: t.path, encryption: { mode: 'encrypted', key: t.key } });
      try {
        assert.deepEqual(again.listIndexes(), [['good', ['key']], ['odd', ['bogus(']]]);
        const doc = again.createDoc(SIMPLE);
        assert.deepEqual(ids(again.getFromIndex('good', 'value')), [doc.docId]);
        assert.deepEqual(again.getFromIndex('odd', '*'), []);
      } finally {
        again.close();
      }
    });

    it('reports unknown indexes', () => {
      assert.throws(() => db.getFromIndex('foo'), IndexDoesNotExistError);
      assert.throws(() => db.getIndexKeys('foo'), IndexDoesNotExistError);
      assert.throws(() => db.getRangeFromIndex('foo', 'a'), IndexDoesNotExistError);
      assert.throws(() => db.getCountFromIndex('foo', 'a'), IndexDoesNotExistError);
    });
  });

  describe('maintenance', () => {
    it('evaluates existing documents when created, skipping tombstones', () => {
      const doc = db.createDoc(SIMPLE);
      const doc2 = db.createDoc(SIMPLE);
      db.deleteDoc(doc2);
      db.createIndex('test-idx', 'key');
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'value')), [doc.docId]);
    });

    it('fills a new index over more documents than one batch', () => {
      const created = db.transaction(() => Array.from({ length: 1234 }, (_, i) => db.createDoc({ n: i % 7 }).docId));
      db.createIndex('by-n', 'number(n, 2)');
      assert.equal(db.getCountFromIndex('by-n', '*'), created.length);
      assert.equal(db.getCountFromIndex('by-n', '03'), created.filter((_, i) => i % 7 === 3).length);
    });

    it('follows creates, updates and deletes', () => {
      db.createIndex('test-idx', 'key');
      const doc = db.createDoc(SIMPLE);
      const doc2 = db.createDoc(SIMPLE);
      assert.deepEqual(sortedIds(db.getFromIndex('test-idx', 'value')), [doc.docId, doc2.docId].sort());
      doc.content = { key: 'altval' };
      db.putDoc(doc);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'value')), [doc2.docId]);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'altval')), [doc.docId]);
      db.deleteDoc(doc2);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'value')), []);
      assert.deepEqual(ids(db.getFromIndex('test-idx', '*')), [doc.docId]);
      assert.deepEqual(db.rawQuery('SELECT doc_id FROM document_fields'), [{ doc_id: doc.docId }], 'tombstones leave the index');
    });

    it('picks up a field added later', () => {
      const doc = db.createDocFromJson('{}');
      db.createIndex('test-idx', 'key');
      assert.deepEqual(db.getFromIndex('test-idx', '*'), []);
      doc.content = SIMPLE;
      db.putDoc(doc);
      assert.deepEqual(ids(db.getFromIndex('test-idx', '*')), [doc.docId]);
    });

    it('reflects the current version of a conflicted document and flags the conflict', () => {
      const doc = db.createDoc(SIMPLE);
      db.createIndex('test-idx', 'key', 'key2');
      db.createIndex('single', 'key');
      const alt = makeDocument(doc.docId, 'alternate:1', { key: 'value', key2: ['value2-1', 'value2-2', 'value2-3'] });
      db.putDocIfNewer(alt, { saveConflict: true, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' });
      const docs = db.getFromIndex('test-idx', 'value', 'value2-1');
      assert.equal(docs.length, 1);
      assert.equal(docs[0]!.hasConflicts, true);
      assert.equal(docs[0]!.rev, 'alternate:1');
      const alt2 = makeDocument(doc.docId, 'alternate:2', { key: 'valuedepalue' });
      db.putDocIfNewer(alt2, { saveConflict: true, replicaUid: 'r', replicaGen: 2, replicaTransId: 'bar' });
      assert.deepEqual(db.getFromIndex('single', 'value'), [], 'the conflict (old local version) is not indexed');
      const ranged = db.getRangeFromIndex('single', 'a');
      assert.deepEqual(ranged.map((d) => [d.docId, d.hasConflicts]), [[doc.docId, true]]);
    });

    it('follows resolution to the resolved content', () => {
      const doc = db.createDoc({ key: 'mine' });
      db.createIndex('test-idx', 'key');
      db.putDocIfNewer(makeDocument(doc.docId, 'alternate:1', { key: 'theirs' }), { saveConflict: true, replicaUid: 'r', replicaGen: 1, replicaTransId: 'foo' });
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'theirs')), [doc.docId]);
      assert.deepEqual(db.getFromIndex('test-idx', 'mine'), []);
      doc.content = { key: 'merged' };
      db.resolveDoc(doc, ['alternate:1', 'test:1']);
      assert.deepEqual(db.getFromIndex('test-idx', 'theirs'), []);
      const [merged] = db.getFromIndex('test-idx', 'merged');
      assert.deepEqual([merged!.docId, merged!.hasConflicts, merged!.rev], [doc.docId, false, doc.rev]);
    });

    it('follows documents applied by putDocIfNewer', () => {
      const doc = db.createDoc(SIMPLE);
      db.createIndex('test-idx', 'key');
      const other = makeDocument(doc.docId, 'test:1|z:2', { key: 'altval' });
      assert.equal(db.putDocIfNewer(other, { saveConflict: false, replicaUid: 'other-replica', replicaGen: 10, replicaTransId: 'T-sid' }).state, 'inserted');
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'altval')), [doc.docId]);
      assert.deepEqual(db.getFromIndex('test-idx', 'value'), []);
    });
  });

  describe('getFromIndex', () => {
    it('matches exact values, unicode included, and nothing else', () => {
      db.createIndex('test-idx', 'key');
      const doc = db.createDoc({ key: 'valuå' });
      db.createDoc({ key: 'other' });
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'valuå')), [doc.docId]);
      assert.deepEqual(db.getFromIndex('test-idx', 'novalue'), []);
    });

    it('returns every matching document', () => {
      const doc = db.createDoc(SIMPLE);
      const doc2 = db.createDoc(SIMPLE);
      db.createIndex('test-idx', 'key');
      assert.deepEqual(sortedIds(db.getFromIndex('test-idx', 'value')), [doc.docId, doc2.docId].sort());
    });

    it('matches several columns, lists fanning out per value', () => {
      const doc = db.createDocFromJson('{"key": "value", "key2": ["value2-1", "value2-2", "value2-3"]}');
      db.createIndex('test-idx', 'key', 'key2');
      for (const v of ['value2-1', 'value2-2', 'value2-3']) assert.deepEqual(ids(db.getFromIndex('test-idx', 'value', v)), [doc.docId]);
      assert.deepEqual(db.getIndexKeys('test-idx'), [['value', 'value2-1'], ['value', 'value2-2'], ['value', 'value2-3']]);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'value', 'value2*')), [doc.docId], 'one document once, even if several values match');
    });

    it('"*" matches any value, the empty string included, but not null or a missing field', () => {
      db.createIndex('test-idx', 'key');
      const doc1 = db.createDoc(SIMPLE);
      const doc2 = db.createDoc(NESTED);
      db.createDoc({ no: 'key' });
      db.createDoc({ key: null });
      const doc4 = db.createDoc({ key: '' });
      assert.deepEqual(sortedIds(db.getFromIndex('test-idx', '*')), [doc1.docId, doc2.docId, doc4.docId].sort());
      assert.deepEqual(ids(db.getFromIndex('test-idx', '')), [doc4.docId]);
    });

    it('orders by the index values', () => {
      db.createIndex('test-idx', 'key');
      const d1 = db.createDoc({ key: 'value x' });
      const d2 = db.createDoc({ key: 'value b' });
      const d3 = db.createDoc({ key: 'value a' });
      const d4 = db.createDoc({ key: 'value m' });
      assert.deepEqual(ids(db.getFromIndex('test-idx', '*')), [d3.docId, d2.docId, d4.docId, d1.docId]);
    });

    it('orders by every column in turn, then by doc id', () => {
      const d1 = db.createDoc({ key: 'value3', key2: 'value4' });
      const d2 = db.createDoc({ key: 'value2', key2: 'value3' });
      const d3 = db.createDoc({ key: 'value2', key2: 'value2' });
      const d4 = db.createDoc({ key: 'value1', key2: 'value1' });
      db.createIndex('test-idx', 'key', 'key2');
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'v*', '*')), [d4.docId, d3.docId, d2.docId, d1.docId]);
      db.createDoc({ key: 'same' }, 'b-doc');
      db.createDoc({ key: 'same' }, 'a-doc');
      db.createIndex('single', 'key');
      assert.deepEqual(ids(db.getFromIndex('single', 'same')), ['a-doc', 'b-doc']);
    });

    it('orders by code point (SQLite BINARY), not by UTF-16 unit', () => {
      db.createIndex('test-idx', 'key');
      const astral = db.createDoc({ key: '😀' });
      const bmpHigh = db.createDoc({ key: '\uffee' });
      const ascii = db.createDoc({ key: 'z' });
      assert.deepEqual(ids(db.getFromIndex('test-idx', '*')), [ascii.docId, bmpHigh.docId, astral.docId]);
    });

    it('prefix globs are case-sensitive', () => {
      db.createIndex('test-idx', 'key');
      const doc1 = db.createDoc(SIMPLE);
      assert.deepEqual(db.getFromIndex('test-idx', 'V*'), []);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'v*')), [doc1.docId]);
    });

    it('treats SQL and GLOB metacharacters in a prefix literally', () => {
      db.createIndex('test-idx', 'key');
      const pct = db.createDoc({ key: 'va%lue' });
      db.createDoc({ key: 'value' });
      const und = db.createDoc({ key: 'va_lue' });
      const q = db.createDoc({ key: 'va?lue' });
      const br = db.createDoc({ key: 'va[l]ue' });
      const star = db.createDoc({ key: 'va*lue' });
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'va%*')), [pct.docId]);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'va_*')), [und.docId]);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'va?*')), [q.docId]);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'va[*')), [br.docId]);
      assert.deepEqual(ids(db.getFromIndex('test-idx', 'va*l*')), [star.docId]);
    });

    it('matches a prefix in a later column after exact ones', () => {
      db.createIndex('test-idx', 'k1', 'k2');
      const doc1 = db.createDoc({ k1: 'v1', k2: 'v1' });
      const doc2 = db.createDoc({ k1: 'v1', k2: 'v2' });
      const doc3 = db.createDoc({ k1: 'v1', k2: 'v3' });
      db.createDoc({ k1: 'v1', k2: 'ZZ' });
      db.createDoc({ k1: 'NN', k2: 'v2' });
      assert.deepEqual(sortedIds(db.getFromIndex('test-idx', 'v1', 'v*')), [doc1.docId, doc2.docId, doc3.docId].sort());
      assert.deepEqual(db.getFromIndex('test-idx', 'v1', '*').length, 4);
    });

    it('refuses a wrong number of values and misplaced wildcards', () => {
      db.createIndex('test-idx', 'k1', 'k2');
      assert.throws(() => db.getFromIndex('test-idx'), InvalidValueForIndexError);
      assert.throws(() => db.getFromIndex('test-idx', 'v1'), InvalidValueForIndexError);
      assert.throws(() => db.getFromIndex('test-idx', 'v1', 'v2', 'v3'), InvalidValueForIndexError);
      assert.throws(() => db.getFromIndex('test-idx', '*', 'v2'), InvalidGlobbingError);
      assert.throws(() => db.getFromIndex('test-idx', '*', 'v*'), InvalidGlobbingError);
      assert.throws(() => db.getFromIndex('test-idx', 'v*', 'v2'), InvalidGlobbingError);
      assert.throws(() => db.getFromIndex('test-idx', 'v*', 'v*'), InvalidGlobbingError);
      db.getFromIndex('test-idx', 'v*', '*');
    });
  });

  describe('expression functions', () => {
    const cases: Array<{ expr: string; content: Record<string, unknown>; query: string; match: boolean }> = [
      { expr: 'sub.doc', content: NESTED, query: 'underneath', match: true },
      { expr: 'sub.foo', content: NESTED, query: '*', match: false },
      { expr: 'sub.foo.bar.baz.qux.fnord', content: NESTED, query: '*', match: false },
      { expr: 'foo.zap', content: { foo: [{ zap: 'bar' }, { zap: 'baz' }] }, query: 'baz', match: true },
      { expr: 'foo.zap', content: { foo: ['zap', 'baz'] }, query: '*', match: false },
      { expr: 'foo.zap.qux', content: { foo: [{ zap: [{ qux: 'fnord' }, { qux: 'zombo' }] }, { zap: 'baz' }] }, query: 'zombo', match: true },
      { expr: 'name', content: { name: ['foo', 'bar'] }, query: 'bar', match: true },
      { expr: 'lower(name)', content: { name: 'Foo' }, query: 'foo', match: true },
      { expr: 'lower(name)', content: { name: 'Foo' }, query: 'Foo', match: false },
      { expr: 'split_words(name)', content: { name: ' foo  bar ' }, query: 'bar', match: true },
      { expr: 'split_words(name)', content: { name: 'foo foo' }, query: 'foo', match: true },
      { expr: 'number(foo, 5)', content: { foo: 12 }, query: '00012', match: true },
      { expr: 'number(foo, 5)', content: { foo: 123456 }, query: '123456', match: true },
      { expr: 'number(foo, 5)', content: { foo: 'this is not a maigret painting' }, query: '*', match: false },
      { expr: 'bool(foo)', content: { foo: true }, query: '1', match: true },
      { expr: 'bool(foo)', content: { foo: false }, query: '0', match: true },
      { expr: 'bool(foo)', content: { foo: 42 }, query: '*', match: false },
      { expr: 'is_null(foo)', content: { bar: 1 }, query: '1', match: true },
      { expr: 'is_null(foo)', content: { foo: 'x' }, query: '0', match: true },
      { expr: 'combine(foo, bar)', content: { foo: 'value1', bar: 'value2' }, query: 'value2', match: true },
    ];
    for (const c of cases) {
      it(`${c.expr} on ${JSON.stringify(c.content)} ${c.match ? 'matches' : 'does not match'} ${JSON.stringify(c.query)}`, () => {
        db.createIndex('idx', c.expr);
        const doc = db.createDoc(c.content as never);
        assert.deepEqual(ids(db.getFromIndex('idx', c.query)), c.match ? [doc.docId] : []);
      });
    }

    it('combine() of several functions indexes each document under all its values', () => {
      db.createIndex('index', 'combine(number(foo, 5), lower(bar), split_words(baz))');
      const doc = db.createDoc({ foo: 12, bar: 'ALLCAPS', baz: 'qux nox' });
      const doc2 = db.createDoc({ foo: 'not a number', bar: 'something' });
      for (const v of ['00012', 'allcaps', 'nox', 'qux']) assert.deepEqual(ids(db.getFromIndex('index', v)), [doc.docId], v);
      assert.deepEqual(ids(db.getFromIndex('index', 'something')), [doc2.docId]);
    });

    it('an expression used by two indexes matches only through its own index', () => {
      db.createIndex('index', 'lower(name)');
      db.createIndex('other_index', 'name');
      db.createDoc({ name: 'Foo' });
      assert.equal(db.getFromIndex('index', 'Foo').length, 0);
      assert.equal(db.getFromIndex('other_index', 'Foo').length, 1);
    });
  });

  describe('getRangeFromIndex', () => {
    let d: Record<string, Document>;
    beforeEach(() => {
      db.createIndex('test-idx', 'key');
      d = {};
      for (const v of ['value3', 'value2', 'value4', 'value1', 'value23', 'value22']) d[v] = db.createDoc({ key: v });
    });

    it('bounds inclusively on both sides', () => {
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', 'value2', 'value3')), ['value2', 'value22', 'value23', 'value3'].map((v) => d[v]!.docId));
    });

    it('bounds on one side only', () => {
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', 'value23')), ['value23', 'value3', 'value4'].map((v) => d[v]!.docId));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', null, 'value2')), ['value1', 'value2'].map((v) => d[v]!.docId));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', undefined, 'value2')), ['value1', 'value2'].map((v) => d[v]!.docId));
      assert.equal(db.getRangeFromIndex('test-idx').length, 6, 'unbounded on both sides: everything indexed');
    });

    it('drops a trailing * from the start and includes the whole prefix at the end', () => {
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', 'value2*')), ['value2', 'value22', 'value23', 'value3', 'value4'].map((v) => d[v]!.docId));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', null, 'value2*')), ['value1', 'value2', 'value22', 'value23'].map((v) => d[v]!.docId));
    });

    it('combines prefix bounds on both sides', () => {
      const t2 = openTestDb();
      try {
        t2.db.createIndex('test-idx', 'key');
        const docs = ['a', 'boo3', 'catalyst', 'whaever', 'zerg'].map((v) => t2.db.createDoc({ key: v }));
        assert.deepEqual(ids(t2.db.getRangeFromIndex('test-idx', 'cat*', 'zap*')), [docs[2]!.docId, docs[3]!.docId]);
      } finally {
        t2.cleanup();
      }
    });

    it('refuses misplaced wildcards and wrong widths on either side', () => {
      db.createIndex('two', 'k1', 'k2');
      assert.throws(() => db.getRangeFromIndex('two', ['*', 'v2']), InvalidGlobbingError);
      assert.throws(() => db.getRangeFromIndex('two', ['*', 'v*']), InvalidGlobbingError);
      assert.throws(() => db.getRangeFromIndex('two', null, ['*', 'v2']), InvalidGlobbingError);
      assert.throws(() => db.getRangeFromIndex('two', null, ['*', 'v*']), InvalidGlobbingError);
      assert.throws(() => db.getRangeFromIndex('two', ['a']), InvalidValueForIndexError);
      assert.throws(() => db.getRangeFromIndex('two', 'a'), InvalidValueForIndexError);
    });
  });

  describe('multi-column ranges', () => {
    let docs: Document[];
    beforeEach(() => {
      docs = [
        db.createDoc({ key: 'value3', key2: 'value4' }),
        db.createDoc({ key: 'value2', key2: 'value3' }),
        db.createDoc({ key: 'value2', key2: 'value2' }),
        db.createDoc({ key: 'value1', key2: 'value1' }),
        db.createDoc({ key: 'value2', key2: 'value23' }),
        db.createDoc({ key: 'value1', key2: 'value2' }),
      ];
      db.createIndex('test-idx', 'key', 'key2');
    });
    const at = (...i: number[]) => i.map((n) => docs[n]!.docId);

    it('bounds each column independently', () => {
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', ['value2', 'value2'], ['value2', 'value3'])), at(2, 4, 1));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', ['value2', 'value3'])), at(1, 0));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', null, ['value2', 'value3'])), at(3, 5, 2, 4, 1));
    });

    it('supports prefixes and wildcards per column', () => {
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', ['value2', 'value2*'])), at(2, 4, 1, 0));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', null, ['value2', 'value2*'])), at(3, 5, 2, 4));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', ['value2', '*'])), at(2, 4, 1, 0));
      assert.deepEqual(ids(db.getRangeFromIndex('test-idx', null, ['value2', '*'])), at(3, 5, 2, 4, 1));
    });
  });

  describe('getIndexKeys and getCountFromIndex', () => {
    it('lists distinct keys, sorted, and nothing for an empty index', () => {
      db.createIndex('test-idx', 'key');
      assert.deepEqual(db.getIndexKeys('test-idx'), []);
      db.createDoc({ key: 'value2' });
      db.createDoc({ key: 'value1' });
      db.createDoc({ key: 'value2' });
      assert.deepEqual(db.getIndexKeys('test-idx'), [['value1'], ['value2']]);
    });

    it('lists combinations over several columns', () => {
      db.createIndex('test-idx', 'key1', 'key2');
      db.createDoc({ key1: 'value1', key2: 'val2-1' });
      db.createDoc({ key1: 'value2', key2: 'val2-2' });
      db.createDoc({ key1: 'value2', key2: 'val2-2' });
      db.createDoc({ key1: 'value2', key2: 'val3' });
      assert.deepEqual(db.getIndexKeys('test-idx'), [['value1', 'val2-1'], ['value2', 'val2-2'], ['value2', 'val3']]);
    });

    it('crosses list values of several columns', () => {
      db.createDoc({ key: 'value1-1 value1-2 value1-3', key2: ['value2-1', 'value2-2', 'value2-3'] });
      db.createIndex('test-idx', 'split_words(key)', 'key2');
      const expected: string[][] = [];
      for (const a of ['value1-1', 'value1-2', 'value1-3']) for (const b of ['value2-1', 'value2-2', 'value2-3']) expected.push([a, b]);
      assert.deepEqual(db.getIndexKeys('test-idx'), expected);
    });

    it('counts the documents getFromIndex returns', () => {
      db.createIndex('test-idx', 'key', 'tags');
      db.createDoc({ key: 'a', tags: ['x', 'y'] });
      db.createDoc({ key: 'a', tags: ['x'] });
      db.createDoc({ key: 'ab', tags: ['z'] });
      const gone = db.createDoc({ key: 'a', tags: ['x'] });
      db.deleteDoc(gone);
      for (const q of [['a', 'x'], ['a', '*'], ['a*', '*'], ['*', '*'], ['b', '*'], ['a', 'y']]) {
        assert.equal(db.getCountFromIndex('test-idx', ...q), db.getFromIndex('test-idx', ...q).length, JSON.stringify(q));
      }
      assert.equal(db.getCountFromIndex('test-idx', 'a', '*'), 2);
      assert.equal(db.getCountFromIndex('test-idx', 'a*', '*'), 3);
      assert.throws(() => db.getCountFromIndex('test-idx', 'a'), InvalidValueForIndexError);
      assert.throws(() => db.getCountFromIndex('test-idx', '*', 'x'), InvalidGlobbingError);
    });
  });
});
