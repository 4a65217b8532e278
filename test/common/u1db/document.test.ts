import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Document, parseJsonObject } from '../../../src/common/u1db/document.js';
import { isValidDocId, makeDocId, makeReplicaUid, makeTransactionId } from '../../../src/common/u1db/ids.js';
import { InvalidJSONError } from '../../../src/common/errors.js';

test('documents: tombstones, JSON round trip, equality', () => {
  const doc = new Document('D-1', 'r:1', { a: 1 });
  assert.equal(doc.isTombstone(), false);
  assert.equal(doc.getJson(), '{"a":1}');
  const same = Document.fromJson('D-1', 'r:1', '{"a":1}');
  assert.equal(doc.equals(same), true);
  doc.makeTombstone();
  assert.equal(doc.isTombstone(), true);
  assert.equal(doc.getJson(), null);
  assert.equal(doc.equals(same), false);
  assert.equal(Document.fromJson('D-2', 'r:2', null).isTombstone(), true);
});

test('content must be a JSON object', () => {
  for (const bad of ['[]', '"x"', '1', 'null', '{', 'true']) {
    assert.throws(() => parseJsonObject(bad), InvalidJSONError, bad);
  }
  assert.deepEqual(parseJsonObject('{"k":[1,{"x":null}]}'), { k: [1, { x: null }] });
});

test('generated ids have the U1DB shapes', () => {
  assert.match(makeDocId(), /^D-[0-9a-f]{32}$/);
  assert.match(makeTransactionId(), /^T-[0-9a-f]{32}$/);
  assert.match(makeReplicaUid(), /^[0-9a-f]{32}$/);
  assert.notEqual(makeDocId(), makeDocId());
  assert.equal(isValidDocId('D-abc.%_-'), true);
  for (const bad of ['', 'a/b', '../x', 'a b', 'é', 7]) assert.equal(isValidDocId(bad), false, String(bad));
});
