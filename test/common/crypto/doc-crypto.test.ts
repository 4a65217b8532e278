import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { b64uDecode, b64uEncode } from '../../../src/common/crypto/base64.js';
import {
  DocContentStream,
  DocKeys,
  encryptDocContentBytes,
  encryptedContentLength,
  decryptDocContent,
  decryptDocContentBytes,
  decryptLegacyDoc,
  deriveDocKey,
  encryptDocContent,
  encryptLegacyDoc,
  isLegacyEncrypted,
  isRawEncrypted,
} from '../../../src/common/crypto/doc-crypto.js';
import { LEGACY_PREAMBLE_SIZE, decodePreamble } from '../../../src/common/crypto/preamble.js';
import {
  EncryptionSchemeNotImplementedError,
  InvalidJSONError,
  InvalidPreambleError,
  MacMismatchError,
  TamperedDocumentError,
} from '../../../src/common/errors.js';
import { runPython } from './python.js';

const secret = Buffer.alloc(512);
for (let i = 0; i < 512; i++) secret[i] = (i * 7 + 3) & 0xff;
const DOC = 'D-0123456789abcdef';
const REV = 'replica-a:2|replica-b:1';
const JSON_TEXT = '{"subject": "h\u00e9llo", "n": [1, 2, 3]}';

/** Split `{"raw": "P C"}` into raw preamble bytes and ct‖tag bytes. */
function parts(content: string): { pre: Buffer; body: Buffer } {
  const raw = (JSON.parse(content) as { raw: string }).raw;
  const [p, c] = raw.split(' ') as [string, string];
  return { pre: b64uDecode(p, Error), body: b64uDecode(c, Error) };
}
function join(pre: Buffer, body: Buffer): string {
  return `{"raw": "${b64uEncode(pre)} ${b64uEncode(body)}"}`;
}

test('deriveDocKey = HMAC-SHA256(secret[64:], docId)', () => {
  const expected = createHmac('sha256', secret.subarray(64)).update(DOC).digest();
  assert.deepEqual(deriveDocKey(secret, DOC), expected);
  assert.notDeepEqual(deriveDocKey(secret, 'D-other'), expected);
  assert.throws(() => deriveDocKey(Buffer.alloc(64), DOC), RangeError);
});

test('DocKeys derives the same keys as deriveDocKey (long and short HMAC keys), and nothing once closed', () => {
  for (const s of [secret, randomBytes(100), randomBytes(129)]) {
    const keys = new DocKeys(s);
    for (const id of [DOC, 'D-other', 'é', '']) assert.deepEqual(keys.derive(id), deriveDocKey(s, id));
    keys.close();
    assert.throws(() => keys.derive(DOC), RangeError);
  }
  assert.throws(() => new DocKeys(Buffer.alloc(64)), RangeError);
});

test('the JSON may be given as UTF-8 bytes: same result, the bytes left unchanged', () => {
  const text = '{"subject": "héllo ✓", "n": 1}';
  const bytes = Buffer.from(`xx${text}yy`, 'utf8').subarray(2, 2 + Buffer.byteLength(text));
  const copy = Buffer.from(bytes);
  const content = encryptDocContent(secret, DOC, REV, bytes);
  assert.deepEqual(bytes, copy);
  assert.equal(decryptDocContent(secret, DOC, REV, content), text);
  assert.equal(decodePreamble(parts(content).pre).contentSize, decodePreamble(parts(encryptDocContent(secret, DOC, REV, text)).pre).contentSize);
});

test('content encrypted with DocKeys decrypts with the secret and the other way round; IVs never repeat', () => {
  const keys = new DocKeys(secret);
  const ivs = new Set<string>();
  for (let i = 0; i < 600; i++) {
    const content = encryptDocContent(keys, DOC, REV, JSON_TEXT);
    assert.equal(decryptDocContent(secret, DOC, REV, content), JSON_TEXT);
    ivs.add(decodePreamble(parts(content).pre).iv.toString('hex'));
  }
  assert.equal(ivs.size, 600);
  assert.equal(decryptDocContent(keys, DOC, REV, encryptDocContent(secret, DOC, REV, JSON_TEXT)), JSON_TEXT);
  assert.throws(() => decryptDocContent(new DocKeys(randomBytes(512)), DOC, REV, encryptDocContent(keys, DOC, REV, JSON_TEXT)),
    MacMismatchError);
  keys.close();
});

test('encrypted content has the exact {"raw": "..."} shape and round-trips', () => {
  const content = encryptDocContent(secret, DOC, REV, JSON_TEXT);
  assert.ok(content.startsWith('{"raw": "EzcB'));
  assert.ok(content.endsWith('"}'));
  assert.ok(isRawEncrypted(content));
  const { pre, body } = parts(content);
  assert.equal(pre.length, 552);
  const p = decodePreamble(pre);
  assert.equal(p.scheme, 1);
  assert.equal(p.method, 2);
  assert.equal(p.docId, DOC);
  assert.equal(p.rev, REV);
  assert.equal(p.contentSize, 4096);
  assert.equal(body.length, Buffer.byteLength(JSON_TEXT) + 16);
  assert.equal(decryptDocContent(secret, DOC, REV, content), JSON_TEXT);
  // a fresh IV every time
  assert.notEqual(encryptDocContent(secret, DOC, REV, JSON_TEXT), content);
});

test('encryptDocContentBytes answers the text encryptDocContent would, as bytes, for any length', () => {
  for (const n of [0, 1, 2, 3, 4, 49_151, 49_152, 49_153, 98_305, 300_000]) {
    const plaintext = Buffer.alloc(n, 'a');
    const bytes = encryptDocContentBytes(secret, DOC, REV, plaintext);
    assert.equal(bytes.length, encryptedContentLength(n));
    const text = bytes.toString('latin1');
    assert.ok(isRawEncrypted(text));
    assert.deepEqual(decryptDocContentBytes(secret, DOC, REV, text), plaintext);
    // Same shape as the text form (same length, same prefix up to the random IV's place).
    assert.equal(encryptDocContent(secret, DOC, REV, plaintext).length, bytes.length);
    assert.equal(plaintext.every((b) => b === 0x61), true, 'the caller\'s bytes are left as they were');
  }
});

test('decryptDocContentBytes answers the text\'s UTF-8 bytes; plaintext that is not UTF-8 is refused by both', () => {
  const content = encryptDocContent(secret, DOC, REV, JSON_TEXT);
  const bytes = decryptDocContentBytes(secret, DOC, REV, content);
  assert.deepEqual(bytes, Buffer.from(JSON_TEXT));
  // A lone continuation byte, an overlong encoding, a surrogate: each would decode to U+FFFD instead of failing.
  for (const bad of [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
    const plaintext = Buffer.concat([Buffer.from('{"a": "'), Buffer.from(bad), Buffer.from('"}')]);
    const enc = encryptDocContent(secret, DOC, REV, plaintext);
    assert.throws(() => decryptDocContentBytes(secret, DOC, REV, enc), InvalidJSONError);
    assert.throws(() => decryptDocContent(secret, DOC, REV, enc), InvalidJSONError);
  }
});

test('isRawEncrypted requires the exact prefix', () => {
  assert.equal(isRawEncrypted('{"raw":"EzcB'), false);
  assert.equal(isRawEncrypted('{"raw": "EzcC'), false);
  assert.equal(isRawEncrypted('{"a": 1}'), false);
});

test('every tamper case maps to its named error', () => {
  const content = encryptDocContent(secret, DOC, REV, JSON_TEXT);
  const { pre, body } = parts(content);

  const flipCt = Buffer.from(body);
  flipCt[0]! ^= 0x01;
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(pre, flipCt)), MacMismatchError);

  const flipTag = Buffer.from(body);
  flipTag[flipTag.length - 1]! ^= 0x80;
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(pre, flipTag)), MacMismatchError);

  // an unused preamble byte is still authenticated as AAD
  const flipPad = Buffer.from(pre);
  flipPad[5]! ^= 0x01; // alignment padding
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(flipPad, body)), MacMismatchError);

  assert.throws(() => decryptDocContent(secret, 'D-other', REV, content), TamperedDocumentError);
  assert.throws(() => decryptDocContent(secret, DOC, 'replica-a:3', content), TamperedDocumentError);

  const scheme2 = Buffer.from(pre);
  scheme2[2] = 2;
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(scheme2, body)), EncryptionSchemeNotImplementedError);
  const method1 = Buffer.from(pre);
  method1[3] = 1;
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(method1, body)), EncryptionSchemeNotImplementedError);
  const badMagic = Buffer.from(pre);
  badMagic[0] = 0x14;
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(badMagic, body)), InvalidPreambleError);

  const otherSecret = Buffer.from(secret);
  otherSecret[100]! ^= 1;
  assert.throws(() => decryptDocContent(otherSecret, DOC, REV, content), MacMismatchError);

  // truncated: at a base64 boundary the tag fails; elsewhere the encoding is invalid
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(pre, body.subarray(0, body.length - 3))), MacMismatchError);
  assert.throws(() => decryptDocContent(secret, DOC, REV, content.slice(0, content.length - 5) + '"}'), InvalidPreambleError);
  assert.throws(() => decryptDocContent(secret, DOC, REV, content.slice(0, 200)), InvalidPreambleError);
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(pre, body.subarray(0, 10))), InvalidPreambleError);
  assert.throws(() => decryptDocContent(secret, DOC, REV, join(pre.subarray(0, 551), body)), InvalidPreambleError);
});

/** Feed `content` to a DocContentStream in pieces cut at `cuts`, then finish it; the plaintext or null. */
function streamed(content: string | Buffer, cuts: number[], docId = DOC, rev = REV, keys: Buffer | DocKeys = secret): Buffer | null {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content, 'latin1');
  const s = new DocContentStream(keys, docId, rev);
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut <= at) continue;
    if (!s.push(bytes.subarray(at, cut))) return s.finish(bytes);
    at = cut;
  }
  return s.finish(bytes);
}

test('DocContentStream answers what decryptDocContentBytes answers, however the content is cut', () => {
  const keys = new DocKeys(secret);
  for (const size of [0, 1, 2, 3, 17, 1000, 65_537, 300_001]) {
    const text = JSON.stringify({ body: 'é'.repeat(size >> 1) + 'x'.repeat(size & 1) });
    const content = encryptDocContent(secret, DOC, REV, text);
    const expected = decryptDocContentBytes(secret, DOC, REV, content);
    // Every split point near the head/body boundary and the end, one-byte pieces at the start, and random cuts.
    const cutSets: number[][] = [[], [1, 2, 3, 9, 744, 745, 746, 747, 748, 749, 750]];
    for (let back = 1; back <= 24; back++) cutSets.push([content.length - back]);
    for (let k = 0; k < 20; k++) {
      cutSets.push(Array.from({ length: 1 + (k % 7) }, () => Math.floor(Math.random() * content.length)).sort((a, b) => a - b));
    }
    for (const cuts of cutSets) {
      assert.deepEqual(streamed(content, cuts), expected, `size ${size}, cuts ${cuts.join(',')}`);
      assert.deepEqual(streamed(content, cuts, DOC, REV, keys), expected);
    }
  }
  keys.close();
});

test('DocContentStream gives up (null) on everything the whole-content path refuses or reads another way', () => {
  const content = encryptDocContent(secret, DOC, REV, JSON_TEXT + ' '.repeat(3000));
  const { pre, body } = parts(content);
  const cuts = [100, 746, 1000, 2000];
  const flip = (b: Buffer, i: number, x: number): Buffer => { const c = Buffer.from(b); c[i]! ^= x; return c; };
  const refused = [
    join(pre, flip(body, 0, 1)), // ciphertext
    join(pre, flip(body, body.length - 1, 0x80)), // tag
    join(flip(pre, 5, 1), body), // preamble padding (AAD)
    join(flip(pre, 2, 3), body), // scheme
    join(flip(pre, 0, 1), body), // magic
    join(pre, body.subarray(0, body.length - 3)), // truncated at a group boundary
    content.slice(0, content.length - 5) + '"}', // truncated inside a group
    join(pre, body.subarray(0, 10)), // shorter than a tag
    content.slice(0, 900), // no end
  ];
  for (const c of refused) {
    assert.equal(streamed(c, cuts), null);
    assert.throws(() => decryptDocContentBytes(secret, DOC, REV, c));
  }
  assert.equal(streamed(content, cuts, 'D-other'), null);
  assert.equal(streamed(content, cuts, DOC, 'replica-a:3'), null);
  // Not UTF-8 inside: refused by both.
  const notUtf8 = encryptDocContent(secret, DOC, REV, Buffer.concat([Buffer.from('{"a": "'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]));
  assert.equal(streamed(notUtf8, cuts), null);
  // Other spellings that the whole-content path reads (a JSON escape, a line break, spacing, the standard
  // alphabet's padding position) are left to it.
  const b64 = content.slice(9, content.length - 2);
  const readOtherwise = [
    `{"raw": "${b64.slice(0, 1200)}\\u00${b64.charCodeAt(1200).toString(16)}${b64.slice(1201)}"}`,
    `{"raw": "${b64.slice(0, 1200)}\n${b64.slice(1200)}"}`,
    `{"raw":  "${b64}"}`,
    `{ "raw": "${b64}"}`,
    `{"raw": "${b64}" }`,
  ];
  for (const c of readOtherwise) assert.equal(streamed(c, cuts), null, c.slice(0, 12));
  assert.deepEqual(decryptDocContentBytes(secret, DOC, REV, readOtherwise[0]!), Buffer.from(JSON_TEXT + ' '.repeat(3000)));
  // Given up once, it stays given up; a discarded stream answers nothing.
  const s = new DocContentStream(secret, DOC, REV);
  assert.equal(s.push(Buffer.from('{"raw": "!')), true);
  s.discard();
  assert.equal(s.push(Buffer.from(content, 'latin1')), false);
  assert.equal(s.finish(Buffer.from(content, 'latin1')), null);
});

test('garbage never escapes as a raw TypeError', () => {
  const cases = ['', 'null', '[]', '42', '{"raw": 5}', '{"raw": ""}', '{"raw": "EzcB"}', '{"raw": "EzcB x"}',
    '{"raw": " "}', '{"other": "x"}', '{"raw": "!!!! ????"}', 'not json at all'];
  for (const c of cases) {
    assert.throws(() => decryptDocContent(secret, DOC, REV, c), InvalidPreambleError, c);
  }
});

test('legacy 542-byte preamble is accepted when authentic', () => {
  // Build a legacy doc by hand: AAD is the 542 raw bytes.
  const py = runPython(PY_ENCRYPT_LEGACY_PREAMBLE, { secret: secret.toString('hex'), doc_id: DOC, rev: REV, text: JSON_TEXT }) as { content: string };
  assert.equal(parts(py.content).pre.length, LEGACY_PREAMBLE_SIZE);
  assert.equal(decryptDocContent(secret, DOC, REV, py.content), JSON_TEXT);
});

test('independent Python implementation decrypts ours and we decrypt its output', () => {
  const ours = encryptDocContent(secret, DOC, REV, JSON_TEXT);
  const out = runPython(PY_DOC, { secret: secret.toString('hex'), doc_id: DOC, rev: REV, content: ours, text: JSON_TEXT }) as {
    plaintext: string;
    content: string;
  };
  assert.equal(out.plaintext, JSON_TEXT);
  assert.ok(isRawEncrypted(out.content));
  assert.equal(decryptDocContent(secret, DOC, REV, out.content), JSON_TEXT);
});

test('legacy documents round-trip and reject a bad MAC', () => {
  const enc = encryptLegacyDoc(secret, DOC, REV, JSON_TEXT);
  assert.ok(isLegacyEncrypted(enc));
  assert.equal(isLegacyEncrypted({ _enc_scheme: 'pubkey' }), false);
  assert.equal(isLegacyEncrypted(null), false);
  assert.ok(enc._enc_iv.endsWith('\n'));
  assert.match(enc._enc_json, /^[0-9a-f]+$/);
  assert.equal(decryptLegacyDoc(secret, DOC, REV, enc), JSON_TEXT);

  const badMac = { ...enc, _mac: `${enc._mac.slice(0, -1)}${enc._mac.endsWith('0') ? '1' : '0'}` };
  assert.throws(() => decryptLegacyDoc(secret, DOC, REV, badMac), MacMismatchError);
  const flipped = { ...enc, _enc_json: `${enc._enc_json.startsWith('0') ? '1' : '0'}${enc._enc_json.slice(1)}` };
  assert.throws(() => decryptLegacyDoc(secret, DOC, REV, flipped), MacMismatchError);
  assert.throws(() => decryptLegacyDoc(secret, DOC, 'other:1', enc), MacMismatchError);
  assert.throws(() => decryptLegacyDoc(secret, 'D-x', REV, enc), MacMismatchError);
  assert.throws(() => decryptLegacyDoc(secret, DOC, REV, { ...enc, _enc_json: 'zz' }), InvalidPreambleError);
  assert.throws(() => decryptLegacyDoc(secret, DOC, REV, { _enc_scheme: 'symkey' }), InvalidPreambleError);
  assert.throws(() => decryptLegacyDoc(secret, DOC, REV, { ...enc, _mac_method: 'md5' }), EncryptionSchemeNotImplementedError);
});

test('legacy decrypt matches an independent Python writer of the ≤0.9.1 format', () => {
  const out = runPython(PY_LEGACY, { secret: secret.toString('hex'), doc_id: DOC, rev: REV, text: JSON_TEXT, iv: randomBytes(16).toString('hex') }) as {
    doc: object;
  };
  assert.equal(decryptLegacyDoc(secret, DOC, REV, out.doc), JSON_TEXT);
});

// Python cross-checks, written from the format description (fact sheet §3), not from the original code.
const PY_COMMON = `
import sys, json, struct, hmac, hashlib, base64, binascii, os
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
args = json.loads(sys.stdin.read())
secret = bytes.fromhex(args['secret'])
doc_id = args['doc_id'].encode('utf8'); rev = args['rev'].encode('utf8')
key = hmac.new(secret[64:], doc_id, hashlib.sha256).digest()
def size_for(n):
    for i in range(12, 31):
        if n < 2 ** i: return 2 ** i
`;
const PY_DOC = `${PY_COMMON}
raw = json.loads(args['content'])['raw']
pre_b64, ct_b64 = raw.split(' ', 1)
pre = base64.urlsafe_b64decode(pre_b64)
magic, scheme, method, ts, iv, pid, prev, size = struct.unpack('2sbbQ16s255p255pQ', pre)
assert len(pre) == 552 and magic == b'\\x13\\x37' and scheme == 1 and method == 2
assert pid == doc_id and prev == rev and size == size_for(len(args['text'].encode('utf8')))
plain = AESGCM(key).decrypt(iv, base64.urlsafe_b64decode(ct_b64), pre)
text = args['text'].encode('utf8')
iv2 = os.urandom(16)
pre2 = struct.pack('2sbbQ16s255p255pQ', b'\\x13\\x37', 1, 2, 1700000000, iv2, doc_id, rev, size_for(len(text)))
ct2 = AESGCM(key).encrypt(iv2, text, pre2)
content = '{"raw": "' + base64.urlsafe_b64encode(pre2).decode() + ' ' + base64.urlsafe_b64encode(ct2).decode() + '"}'
print(json.dumps({'plaintext': plain.decode('utf8'), 'content': content}))
`;
const PY_ENCRYPT_LEGACY_PREAMBLE = `${PY_COMMON}
text = args['text'].encode('utf8')
iv = os.urandom(16)
pre = struct.pack('2sbbQ16s255p255p', b'\\x13\\x37', 1, 2, 1500000000, iv, doc_id, rev)
ct = AESGCM(key).encrypt(iv, text, pre)
print(json.dumps({'content': '{"raw": "' + base64.urlsafe_b64encode(pre).decode() + ' ' + base64.urlsafe_b64encode(ct).decode() + '"}'}))
`;
const PY_LEGACY = `${PY_COMMON}
iv = bytes.fromhex(args['iv'])
enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
ct = enc.update(args['text'].encode('utf8')) + enc.finalize()
enc_iv = binascii.b2a_base64(iv).decode()
mac_key = hmac.new(secret[:64], doc_id, hashlib.sha256).digest()
mac = hmac.new(mac_key, doc_id + rev + ct + b'symkey' + b'aes-256-ctr' + enc_iv.encode(), hashlib.sha256).hexdigest()
print(json.dumps({'doc': {'_enc_json': ct.hex(), '_enc_scheme': 'symkey', '_enc_method': 'aes-256-ctr',
  '_enc_iv': enc_iv, '_mac': mac, '_mac_method': 'hmac'}}))
`;

test('property: any id, rev and text round-trip; the wrong id never decrypts', async () => {
  const fc = await import('fast-check');
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 200 }), fc.string({ maxLength: 80 }), fc.string({ maxLength: 2000 }), (id, rev, text) => {
      const c = encryptDocContent(secret, id, rev, text);
      assert.equal(decryptDocContent(secret, id, rev, c), text);
      assert.throws(() => decryptDocContent(secret, `${id}x`, rev, c), TamperedDocumentError);
    }),
    { numRuns: 200 },
  );
});
