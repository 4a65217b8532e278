import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { b64Decode, b64Encode, b64nEncode, b64uDecode, b64uDecodeInto, b64uEncode } from '../../../src/common/crypto/base64.js';
import { InvalidPreambleError, SecretsFileCorruptedError } from '../../../src/common/errors.js';

const bytes = Buffer.from([0xfb, 0xff, 0xfe, 0x00, 0x3e, 0x3f, 0x41]);

test('B64N is standard base64 plus exactly one newline (b2a_base64)', () => {
  assert.equal(b64nEncode(bytes), '+//+AD4/QQ==\n');
  assert.equal(b64nEncode(Buffer.alloc(0)), '\n');
  // b2a_base64 never wraps lines, even for long input
  assert.equal(b64nEncode(Buffer.alloc(512, 0x61)).split('\n').length, 2);
});

test('B64 has no newline; B64U is URL-safe and keeps padding', () => {
  assert.equal(b64Encode(bytes), '+//+AD4/QQ==');
  assert.equal(b64uEncode(bytes), '-__-AD4_QQ==');
  assert.equal(b64uEncode(Buffer.from([0x13, 0x37, 0x01])), 'EzcB');
});

test('encoders respect subarray views', () => {
  const big = Buffer.from([1, 2, 3, 4, 5, 6]);
  assert.equal(b64Encode(big.subarray(3)), Buffer.from([4, 5, 6]).toString('base64'));
});

test('decoders round-trip and ignore newlines', () => {
  assert.deepEqual(b64Decode('+//+AD4/QQ==\n', SecretsFileCorruptedError), bytes);
  assert.deepEqual(b64Decode('+//+\nAD4/\nQQ==\n', SecretsFileCorruptedError), bytes);
  assert.deepEqual(b64uDecode('-__-AD4_QQ==', InvalidPreambleError), bytes);
  assert.deepEqual(b64uDecode(b64uEncode(Buffer.alloc(0)), InvalidPreambleError), Buffer.alloc(0));
});

test('b64uDecodeInto decodes into the buffer it is given, or a larger one when that is too small', () => {
  const scratch = Buffer.alloc(16);
  const into = b64uDecodeInto('-__-AD4_QQ==\n', scratch, InvalidPreambleError);
  assert.deepEqual(into, bytes);
  assert.equal(into.buffer, scratch.buffer);
  const big = randomBytes(100);
  const grown = b64uDecodeInto(b64uEncode(big), scratch, InvalidPreambleError);
  assert.deepEqual(grown, big);
  assert.notEqual(grown.buffer, scratch.buffer);
  assert.equal(b64uDecodeInto('', scratch, InvalidPreambleError).length, 0);
  assert.throws(() => b64uDecodeInto(42, scratch, InvalidPreambleError), InvalidPreambleError);
});

test('decoders throw the given class on bad input', () => {
  assert.throws(() => b64Decode('abc', SecretsFileCorruptedError), SecretsFileCorruptedError);
  assert.throws(() => b64Decode('ab!d', SecretsFileCorruptedError), SecretsFileCorruptedError);
  assert.throws(() => b64Decode('-__-', SecretsFileCorruptedError), SecretsFileCorruptedError);
  assert.throws(() => b64Decode(42, SecretsFileCorruptedError), SecretsFileCorruptedError);
  assert.throws(() => b64uDecode('+//+', InvalidPreambleError), InvalidPreambleError);
  assert.throws(() => b64uDecode('ab c', InvalidPreambleError), InvalidPreambleError);
  assert.throws(() => b64uDecode('a=bc', InvalidPreambleError), InvalidPreambleError);
});

test('b64uDecode accepts exactly the strings Python urlsafe_b64decode(validate) would: /^[A-Za-z0-9_-]*={0,2}$/, length % 4 = 0', () => {
  const shape = /^[A-Za-z0-9_-]*={0,2}$/;
  const scratch = Buffer.alloc(64);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const odd = ['=', '+', '/', ' ', '\t', '.', '%', '*', '\u0000', 'é', '\u00ff', '\u0100', '\u2028', '\uffff'];
  let seed = 12345;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < 20_000; i++) {
    const length = 4 * (1 + random(5));
    let text = '';
    for (let j = 0; j < length; j++) text += random(7) === 0 ? odd[random(odd.length)]! : alphabet[random(64)]!;
    const valid = shape.test(text);
    // The decoder into a reusable buffer gives the same verdicts and bytes, whatever the buffer held before.
    for (const decode of [
      (t: string) => b64uDecode(t, InvalidPreambleError),
      (t: string) => b64uDecodeInto(t, scratch.fill(0xa5), InvalidPreambleError),
    ]) {
      let accepted = true;
      try {
        assert.deepEqual(decode(text), Buffer.from(text, 'base64url'));
      } catch (err) {
        assert.ok(err instanceof InvalidPreambleError);
        accepted = false;
      }
      assert.equal(accepted, valid, JSON.stringify(text));
    }
  }
  for (const c of odd) {
    assert.throws(() => b64uDecode(`${'A'.repeat(4000)}${c}AAA`, InvalidPreambleError), InvalidPreambleError, JSON.stringify(c));
    assert.throws(() => b64uDecodeInto(`${'A'.repeat(4000)}${c}AAA`, scratch, InvalidPreambleError), InvalidPreambleError, JSON.stringify(c));
  }
});
