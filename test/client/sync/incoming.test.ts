/** What the client does with one downloaded document before applying it (§1d client insert rules, §3). */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { encryptDocContent, encryptLegacyDoc } from '../../../src/common/crypto/doc-crypto.js';
import {
  InvalidJSONError,
  MacMismatchError,
  RollbackError,
  TamperedDocumentError,
} from '../../../src/common/errors.js';
import { assertNotRollback, decodeIncoming, decodeIncomingBytes } from '../../../src/client/sync/incoming.js';

const secret = randomBytes(512);
const entry = (id: string, rev: string, content: string | null) => ({ id, rev, gen: 1, trans_id: 'T-1', content });

describe('decodeIncoming', () => {
  it('decrypts and verifies current-scheme documents', () => {
    const content = encryptDocContent(secret, 'D-1', 'a:1', '{"x": 1}');
    const { doc, kind } = decodeIncoming(secret, entry('D-1', 'a:1', content));
    assert.equal(kind, 'encrypted');
    assert.deepEqual(doc.content, { x: 1 });
    assert.equal(doc.rev, 'a:1');
  });

  it('refuses a flipped byte, a forged rev and a swapped id', () => {
    const content = encryptDocContent(secret, 'D-1', 'a:1', '{"x": 1}');
    const raw = (JSON.parse(content) as { raw: string }).raw;
    const [pre, ct] = raw.split(' ') as [string, string];
    const bytes = Buffer.from(ct, 'base64url');
    bytes[0]! ^= 1;
    const flipped = `{"raw": "${pre} ${bytes.toString('base64url')}${'='.repeat((4 - (bytes.toString('base64url').length % 4)) % 4)}"}`;
    assert.throws(() => decodeIncoming(secret, entry('D-1', 'a:1', flipped)), MacMismatchError);
    assert.throws(() => decodeIncoming(secret, entry('D-1', 'a:2', content)), TamperedDocumentError);
    assert.throws(() => decodeIncoming(secret, entry('D-2', 'a:1', content)), TamperedDocumentError);
    assert.throws(() => decodeIncoming(randomBytes(512), entry('D-1', 'a:1', content)), MacMismatchError);
  });

  it('decrypts legacy _enc_json documents and checks their MAC', () => {
    const legacy = encryptLegacyDoc(secret, 'D-1', 'a:1', '{"old": true}');
    const { doc, kind } = decodeIncoming(secret, entry('D-1', 'a:1', JSON.stringify(legacy)));
    assert.equal(kind, 'legacy');
    assert.deepEqual(doc.content, { old: true });
    assert.throws(() => decodeIncoming(secret, entry('D-1', 'a:2', JSON.stringify(legacy))), MacMismatchError);
  });

  it('keeps content encrypted to the user by someone else as-is; refuses bare plaintext unless allowed', () => {
    const external = '{"raw": "EzcC-not-ours", "incoming": true}';
    const { doc, kind } = decodeIncoming(secret, entry('D-9', 'a:1', external));
    assert.equal(kind, 'external');
    assert.deepEqual(doc.content, { raw: 'EzcC-not-ours', incoming: true });
    const pubkey = '{"incoming": true, "errdecr": false, "_enc_scheme": "pubkey", "_enc_json": "-----BEGIN PGP MESSAGE-----"}';
    assert.equal(decodeIncoming(secret, entry('D-8', 'a:1', pubkey)).kind, 'external');
    assert.throws(() => decodeIncoming(secret, entry('D-9', 'a:1', external), { allowExternal: false }), TamperedDocumentError);
    assert.throws(() => decodeIncoming(secret, entry('D-8', 'a:1', pubkey), { allowExternal: false }), TamperedDocumentError);

    const plain = '{"subject": "pay here", "iban": "XX00"}';
    assert.throws(() => decodeIncoming(secret, entry('D-7', 'a:1', plain)), /unencrypted document/);
    assert.throws(() => decodeIncoming(secret, entry('D-7', 'a:1', plain)), TamperedDocumentError);
    assert.deepEqual(decodeIncoming(secret, entry('D-7', 'a:1', plain), { allowExternal: true }).doc.content, JSON.parse(plain));

    assert.throws(() => decodeIncoming(secret, entry('D-9', 'a:1', '[1]')), InvalidJSONError);
    const tomb = decodeIncoming(secret, entry('D-9', 'a:2', null));
    assert.equal(tomb.kind, 'tombstone');
    assert.equal(tomb.doc.content, null);
  });

  it('verifies our scheme however the server re-serializes it: a tampered {"raw":…} is not "external"', () => {
    const content = encryptDocContent(secret, 'D-1', 'a:1', '{"x": 1}');
    const compact = JSON.stringify(JSON.parse(content)); // no space after the colon: the prefix test misses it
    assert.equal(compact.startsWith('{"raw": "'), false);
    assert.deepEqual(decodeIncoming(secret, entry('D-1', 'a:1', compact)).doc.content, { x: 1 });
    const raw = (JSON.parse(content) as { raw: string }).raw;
    const [pre, ct] = raw.split(' ') as [string, string];
    const bytes = Buffer.from(ct, 'base64url');
    bytes[3]! ^= 0x40;
    const tampered = JSON.stringify({ raw: `${pre} ${bytes.toString('base64url')}` });
    for (const allowExternal of [true, 'encrypted', false] as const) {
      assert.throws(() => decodeIncoming(secret, entry('D-1', 'a:1', tampered), { allowExternal }), MacMismatchError);
    }
  });
});

describe('decodeIncomingBytes', () => {
  it('answers the same text as decodeIncoming, as UTF-8, for every kind of content, and refuses the same', () => {
    const ours = encryptDocContent(secret, 'D-1', 'a:1', '{"x": "h\u00e9"}');
    const legacy = JSON.stringify(encryptLegacyDoc(secret, 'D-1', 'a:1', '{"old": true}'));
    const external = '{"raw": "EzcC-not-ours", "incoming": true}';
    for (const content of [ours, legacy, external]) {
      const e = entry('D-1', 'a:1', content);
      assert.deepEqual(decodeIncomingBytes(secret, e), Buffer.from(decodeIncoming(secret, e).json!));
    }
    assert.equal(decodeIncomingBytes(secret, entry('D-1', 'a:2', null)), null);

    const other = encryptDocContent(secret, 'D-2', 'a:1', '{"x": 1}');
    assert.throws(() => decodeIncomingBytes(secret, entry('D-1', 'a:1', other)), TamperedDocumentError);
    const notObject = encryptDocContent(secret, 'D-1', 'a:1', '[1, 2]');
    assert.throws(() => decodeIncomingBytes(secret, entry('D-1', 'a:1', notObject)), InvalidJSONError);
    assert.throws(() => decodeIncomingBytes(secret, entry('D-1', 'a:1', '{"subject": "pay here"}')), TamperedDocumentError);
    assert.throws(() => decodeIncomingBytes(secret, entry('D-1', 'a:1', external), { allowExternal: false }), TamperedDocumentError);
  });
});

describe('assertNotRollback', () => {
  it('refuses strictly older revisions only, and not echoes of our own upload', () => {
    assertNotRollback(null, { id: 'D', rev: 'a:1' });
    assertNotRollback('a:1', { id: 'D', rev: 'a:1' });
    assertNotRollback('a:1', { id: 'D', rev: 'a:2' });
    assertNotRollback('a:1', { id: 'D', rev: 'b:1' }); // concurrent: a conflict, not a rollback
    assert.throws(() => assertNotRollback('a:2', { id: 'D', rev: 'a:1' }), RollbackError);
    assert.throws(() => assertNotRollback('a:1|b:1', { id: 'D', rev: 'a:1' }), RollbackError);
    assertNotRollback('a:2', { id: 'D', rev: 'a:1' }, new Map([['D', 'a:1']]));
  });
});
