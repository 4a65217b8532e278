import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scryptKey } from '../../../src/common/crypto/scrypt.js';

test('scryptKey matches the RFC 7914 vector (N=16384, r=8, p=1), first 32 bytes', async () => {
  const key = await scryptKey('pleaseletmein', Buffer.from('SodiumChloride'));
  assert.equal(key.toString('hex'), '7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2');
});

test('scryptKey treats a string as UTF-8 and equals the Buffer form', async () => {
  const salt = Buffer.alloc(64, 7);
  const a = await scryptKey('pässwörd', salt);
  const b = await scryptKey(Buffer.from('pässwörd', 'utf8'), salt);
  const c = await scryptKey(Buffer.from('pässwörd', 'latin1'), salt);
  assert.equal(a.length, 32);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});
