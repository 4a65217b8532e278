import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatRev, incrementRev, isNewer, maximizeAndIncrement, maximizeRevs, parseRev } from '../../../src/common/u1db/vectorclock.js';
import { InvalidContentError } from '../../../src/common/errors.js';

test('revisions serialize sorted by replica uid', () => {
  assert.equal(formatRev(new Map([['b', 2], ['a', 1], ['C', 3]])), 'C:3|a:1|b:2');
  assert.equal(incrementRev('b:1', 'a'), 'a:1|b:1');
  assert.equal(incrementRev(null, 'x'), 'x:1');
  assert.equal(incrementRev('x:9', 'x'), 'x:10');
});

test('parseRev rejects malformed revisions and accepts the empty one', () => {
  assert.equal(parseRev('').size, 0);
  assert.equal(parseRev(null).size, 0);
  for (const bad of ['a', 'a:', ':1', 'a:x', 'a:1|', 'a:-1']) {
    assert.throws(() => parseRev(bad), InvalidContentError, bad);
  }
});

test('isNewer follows U1DB: dominance, extra keys, empty clocks', () => {
  assert.equal(isNewer('a:2', 'a:1'), true);
  assert.equal(isNewer('a:1', 'a:1'), false);
  assert.equal(isNewer('a:1|b:1', 'a:1'), true);
  assert.equal(isNewer('a:1', 'a:1|b:1'), false);
  assert.equal(isNewer('a:2', 'a:1|b:1'), false, 'concurrent is not newer');
  assert.equal(isNewer('a:1|b:1', 'a:2'), false, 'concurrent is not newer');
  assert.equal(isNewer('', 'a:1'), false);
  assert.equal(isNewer(null, null), false);
  assert.equal(isNewer('a:1', null), true);
});

test('maximize takes the per-replica maximum; maximizeAndIncrement bumps the local counter', () => {
  assert.equal(formatRev(maximizeRevs('a:1|b:5', 'a:3', 'c:1')), 'a:3|b:5|c:1');
  assert.equal(maximizeAndIncrement('b', 'a:1|b:5', 'a:3'), 'a:3|b:6');
});

test('property: a maximized-and-incremented rev is newer than every input', () => {
  const uid = fc.stringMatching(/^[a-f0-9]{1,4}$/);
  const rev = fc.dictionary(uid, fc.integer({ min: 1, max: 1000 }), { minKeys: 1, maxKeys: 4 })
    .map((d) => formatRev(new Map(Object.entries(d))));
  fc.assert(fc.property(fc.array(rev, { minLength: 1, maxLength: 4 }), uid, (revs, me) => {
    const out = maximizeAndIncrement(me, ...revs);
    for (const r of revs) assert.equal(isNewer(out, r), true);
    assert.equal(formatRev(parseRev(out)), out);
  }));
});
