/** The incoming box's shared wire helpers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePreambleB64 } from '../../../src/common/crypto/preamble.js';
import { BadRequestError } from '../../../src/common/errors.js';
import {
  INCOMING_HEADER_LENGTH,
  encodeIncomingListQuery,
  encryptionName,
  incomingHeader,
  parseCountParam,
  parseEncryptionParam,
} from '../../../src/common/protocol/incoming.js';

describe('incoming wire helpers', () => {
  it('the server header: 736 B64U characters and a space, scheme 2, the declared method, rev "0", exact size', () => {
    const head = incomingHeader('abc', 12345, 'aes_256_gcm', 1_700_000_000);
    assert.equal(head.length, INCOMING_HEADER_LENGTH);
    assert.equal(head.subarray(-1).toString(), ' ');
    const { preamble } = decodePreambleB64(head.subarray(0, -1).toString('latin1'));
    assert.deepEqual(
      [preamble.scheme, preamble.method, preamble.docId, preamble.rev, preamble.contentSize, preamble.timestamp, preamble.iv.equals(Buffer.alloc(16))],
      [2, 2, 'abc', '0', 12345, 1_700_000_000, true],
    );
  });

  it('encryption names ↔ preamble method codes', () => {
    assert.equal(parseEncryptionParam(undefined), 'pgp');
    assert.equal(parseEncryptionParam(''), 'pgp');
    assert.equal(parseEncryptionParam('aes_256_ctr'), 'aes_256_ctr');
    assert.throws(() => parseEncryptionParam('toString'), BadRequestError);
    assert.deepEqual([1, 2, 3, 4].map(encryptionName), ['aes_256_ctr', 'aes_256_gcm', 'pgp', undefined]);
  });

  it('list queries: names of the wire, MX by default', () => {
    assert.deepEqual(encodeIncomingListQuery({}), { namespace: 'MX' });
    assert.deepEqual(encodeIncomingListQuery({
      namespace: 'CAL', filterFlag: 'PENDING', order: 'desc', includeProcessing: false, sizeLimit: 10, limit: 20, page: 2, retryForVersion: '1.0',
    }), {
      namespace: 'CAL', filter_flag: 'PENDING', order_by: '-date', include_processing: 'false', size_limit: '10', limit: '20', page: '2',
      retry_for_version: '1.0',
    });
  });

  it('count parameters are plain non-negative integers', () => {
    assert.equal(parseCountParam(undefined, 'limit'), undefined);
    assert.equal(parseCountParam('0', 'limit'), 0);
    assert.equal(parseCountParam('25', 'page', 1), 25);
    for (const bad of ['-1', '1.5', '1e3', 'x', '0x10', '9999999999999999']) assert.throws(() => parseCountParam(bad, 'limit'), BadRequestError, bad);
    assert.throws(() => parseCountParam('0', 'page', 1), BadRequestError);
  });
});
