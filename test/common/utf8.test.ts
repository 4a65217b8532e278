import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeUtf8 } from '../../src/common/utf8.js';

/** What strict UTF-8 decoding answers, the reference the fast path must match. */
function strict(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

describe('decodeUtf8', () => {
  it('reads ASCII, UTF-8 and a leading BOM as text, and refuses bytes that are not UTF-8', () => {
    assert.equal(decodeUtf8(Buffer.from('{"raw": "EzcB AAAA"}')), '{"raw": "EzcB AAAA"}');
    assert.equal(decodeUtf8(Buffer.from('{"a": "h\u00e9llo \u{1F600}"}')), '{"a": "h\u00e9llo \u{1F600}"}');
    assert.equal(decodeUtf8(Buffer.from('\ufeff[')), '\ufeff[');
    assert.equal(decodeUtf8(new Uint8Array([0x7b, 0x7d])), '{}', 'a plain Uint8Array too');
    for (const bad of [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x61, 0xff]]) assert.equal(decodeUtf8(Buffer.from(bad)), null);
  });
  it('answers exactly what strict UTF-8 decoding answers, for any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      assert.equal(decodeUtf8(bytes), strict(bytes));
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (text) => {
      const bytes = Buffer.from(text, 'utf8');
      assert.equal(decodeUtf8(bytes), strict(bytes));
    }), { numRuns: 1000 });
  });
});
