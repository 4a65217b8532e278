import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  EncMethod,
  EncScheme,
  LEGACY_PREAMBLE_SIZE,
  PREAMBLE_B64_LENGTH,
  PREAMBLE_SIZE,
  contentSizeFor,
  decodePreamble,
  decodePreambleB64,
  encodePreamble,
  encodePreambleB64,
} from '../../../src/common/crypto/preamble.js';
import { DocumentTooBigError, InvalidPreambleError } from '../../../src/common/errors.js';

const iv = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

test('preamble has the fixed 552-byte layout of struct 2sbbQ16s255p255pQ', () => {
  const raw = encodePreamble({
    docId: 'D-abc',
    rev: 'replica:3',
    scheme: EncScheme.symkey,
    method: EncMethod.aes_256_gcm,
    iv,
    timestamp: 0x0102030405,
    contentSize: 8192,
  });
  assert.equal(raw.length, PREAMBLE_SIZE);
  assert.deepEqual([...raw.subarray(0, 4)], [0x13, 0x37, 1, 2]);
  assert.deepEqual([...raw.subarray(4, 8)], [0, 0, 0, 0]);
  assert.deepEqual([...raw.subarray(8, 16)], [5, 4, 3, 2, 1, 0, 0, 0]);
  assert.deepEqual(raw.subarray(16, 32), iv);
  assert.equal(raw[32], 5);
  assert.equal(raw.subarray(33, 38).toString(), 'D-abc');
  assert.ok(raw.subarray(38, 287).every((b) => b === 0));
  assert.equal(raw[287], 9);
  assert.equal(raw.subarray(288, 297).toString(), 'replica:3');
  assert.ok(raw.subarray(297, 544).every((b) => b === 0));
  assert.equal(raw.readBigUInt64LE(544), 8192n);
  assert.equal(encodePreambleB64(raw).length, PREAMBLE_B64_LENGTH);
  assert.ok(encodePreambleB64(raw).startsWith('EzcB'));
});

test('preamble round trip', () => {
  const raw = encodePreamble({ docId: 'd', rev: 'r', scheme: 2, method: 3, contentSize: 5, timestamp: 1700000000 });
  const p = decodePreambleB64(encodePreambleB64(raw)).preamble;
  assert.deepEqual(p.magic, Buffer.from([0x13, 0x37]));
  assert.equal(p.scheme, 2);
  assert.equal(p.method, 3);
  assert.equal(p.timestamp, 1700000000);
  assert.deepEqual(p.iv, Buffer.alloc(16)); // no iv given: zeros, as for incoming
  assert.equal(p.docId, 'd');
  assert.equal(p.rev, 'r');
  assert.equal(p.contentSize, 5);
});

test('default timestamp is now, in seconds', () => {
  const before = Math.floor(Date.now() / 1000);
  const p = decodePreamble(encodePreamble({ docId: 'd', rev: 'r', scheme: 1, method: 2, contentSize: 4096 }));
  assert.ok(p.timestamp >= before && p.timestamp <= before + 2);
});

test('long doc ids are cut to 254 bytes like Python struct p', () => {
  const id = 'x'.repeat(300);
  const raw = encodePreamble({ docId: id, rev: 'r', scheme: 1, method: 2, contentSize: 4096 });
  assert.equal(raw[32], 254);
  assert.equal(decodePreamble(raw).docId, 'x'.repeat(254));
  // a length byte of 255 is read as 254 (CPython clamps)
  raw[32] = 255;
  assert.equal(decodePreamble(raw).docId.length, 254);
});

test('legacy 542-byte preamble decodes without a size', () => {
  const raw = encodePreamble({ docId: 'D-1', rev: 'a:1', scheme: 1, method: 2, iv, contentSize: 4096 });
  const legacy = raw.subarray(0, LEGACY_PREAMBLE_SIZE);
  const p = decodePreamble(legacy);
  assert.equal(p.contentSize, null);
  assert.equal(p.docId, 'D-1');
  assert.equal(p.rev, 'a:1');
  assert.deepEqual(p.iv, iv);
});

test('any other length is an InvalidPreambleError', () => {
  for (const n of [0, 1, 541, 543, 551, 553, 1000]) {
    assert.throws(() => decodePreamble(Buffer.alloc(n)), InvalidPreambleError, `length ${n}`);
  }
  assert.throws(() => decodePreambleB64('not base64!'), InvalidPreambleError);
});

test('contentSizeFor rounds up to the next power of two, strictly greater, from 4096', () => {
  assert.equal(contentSizeFor(0), 4096);
  assert.equal(contentSizeFor(1), 4096);
  assert.equal(contentSizeFor(4095), 4096);
  assert.equal(contentSizeFor(4096), 8192);
  assert.equal(contentSizeFor(8191), 8192);
  assert.equal(contentSizeFor(8192), 16384);
  assert.equal(contentSizeFor(2 ** 30 - 1), 2 ** 30);
  assert.throws(() => contentSizeFor(2 ** 30), DocumentTooBigError);
  assert.throws(() => contentSizeFor(-1), RangeError);
});
