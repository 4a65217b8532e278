import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decryptSecrets,
  encryptSecretsV2,
  generateSecrets,
  serializeSecretsFile,
} from '../../../src/client/secrets/format.js';
import type { StorageSecrets } from '../../../src/client/secrets/format.js';
import { SecretsFileCorruptedError, WrongPassphraseError } from '../../../src/common/errors.js';
import { runPython } from '../../common/crypto/python.js';
import { VECTORS, VECTOR_SECRETS, makeV1Doc } from './helpers.js';

function assertSame(actual: StorageSecrets, expected: StorageSecrets): void {
  assert.deepEqual(actual.remoteSecret, expected.remoteSecret);
  assert.deepEqual(actual.localSalt, expected.localSalt);
  assert.deepEqual(actual.localSecret, expected.localSecret);
}

test('original ENCRYPTED_V2 vector decrypts with "123" to a/b/c', async () => {
  const { secrets, version } = await decryptSecrets(structuredClone(VECTORS.v2), '123');
  assert.equal(version, 2);
  assertSame(secrets, VECTOR_SECRETS);
});

test('original ENCRYPTED_V1 vector decrypts with "123" to a/b/c', async () => {
  const { secrets, version } = await decryptSecrets(structuredClone(VECTORS.v1), '123');
  assert.equal(version, 1);
  assertSame(secrets, VECTOR_SECRETS);
  // a missing "version" means 1
  const noVersion = structuredClone(VECTORS.v1);
  delete noVersion.version;
  assert.equal((await decryptSecrets(noVersion, '123')).version, 1);
});

test('wrong passphrase: v2 tag failure and v1 sha256-id check', async () => {
  await assert.rejects(decryptSecrets(structuredClone(VECTORS.v2), '124'), WrongPassphraseError);
  const v1 = await makeV1Doc(VECTOR_SECRETS, 'right');
  assertSame((await decryptSecrets(v1, 'right')).secrets, VECTOR_SECRETS);
  await assert.rejects(decryptSecrets(v1, 'wrong'), WrongPassphraseError);
});

test('our v2 output has exactly the layout the original writes', async () => {
  const secrets = generateSecrets();
  const doc = await encryptSecretsV2(secrets, 'pass phrase ü');
  const text = serializeSecretsFile(doc);
  // Python 2.7 json.dumps: ", " and ": ", key order of the original's dict, "\n" kept (escaped) in B64N values
  assert.match(
    text,
    /^\{"length": 1437, "version": 2, "kdf_salt": "[A-Za-z0-9+/]{86}==\\n", "secrets": "[A-Za-z0-9+/=]+\\n", "kdf": "scrypt", "kdf_length": 32, "cipher": 2, "iv": "[A-Za-z0-9+/]{22}=="\}$/,
  );
  assert.deepEqual(JSON.parse(text), doc);
  const back = await decryptSecrets(text, 'pass phrase ü');
  assert.equal(back.version, 2);
  assertSame(back.secrets, secrets);
});

test('an independent Python 3 implementation of the original decrypt opens our file', async () => {
  const secrets = generateSecrets();
  const text = serializeSecretsFile(await encryptSecretsV2(secrets, 'pässwörd'));
  const out = runPython(PY_DECRYPT_V2, { file: text, passphrase: 'pässwörd' }) as Record<string, string>;
  assert.equal(out.remote_secret, secrets.remoteSecret.toString('hex'));
  assert.equal(out.local_salt, secrets.localSalt.toString('hex'));
  assert.equal(out.local_secret, secrets.localSecret.toString('hex'));
  // plaintext exactly as Python 2 json.dumps wrote it in a normal (non-randomized) run
  assert.equal(out.plaintext_keys, 'local_secret,remote_secret,local_salt');
  assert.equal(out.plaintext_shape_ok, 'yes');
});

test('structural damage is SecretsFileCorruptedError', async () => {
  const text = serializeSecretsFile(await encryptSecretsV2(generateSecrets(), 'pw'));
  const cases: unknown[] = [
    text.slice(0, text.length - 10),
    '',
    '[]',
    'null',
    { ...JSON.parse(text), version: 3 },
    { ...JSON.parse(text), kdf: 'pbkdf2' },
    { ...JSON.parse(text), kdf_length: 16 },
    { ...JSON.parse(text), cipher: 1 },
    { ...JSON.parse(text), secrets: 'AAAA\n' },
    { ...JSON.parse(text), iv: 'short' },
    { ...JSON.parse(text), kdf_salt: 5 },
    { version: 1 },
    { version: 1, storage_secrets: {} },
    { version: 1, storage_secrets: { x: { kdf: 'scrypt', kdf_length: 32, cipher: 'aes256', length: 1024, secret: 'nocolon' } } },
  ];
  for (const c of cases) {
    await assert.rejects(decryptSecrets(c, 'pw'), SecretsFileCorruptedError, JSON.stringify(c).slice(0, 80));
  }
  // an authentic payload whose stated length is wrong is rejected after decryption
  await assert.rejects(decryptSecrets({ ...JSON.parse(text), length: 1436 }, 'pw'), SecretsFileCorruptedError);
});

test('wrong secret sizes inside an authentic file are rejected', async () => {
  const bad: StorageSecrets = { remoteSecret: Buffer.alloc(511), localSalt: Buffer.alloc(64), localSecret: Buffer.alloc(448) };
  await assert.rejects(encryptSecretsV2(bad, 'pw'), RangeError);
});

// Follows the original's documented decrypt steps with hashlib.scrypt + cryptography's AESGCM.
const PY_DECRYPT_V2 = `
import sys, json, base64, binascii, hashlib
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
a = json.loads(sys.stdin.read())
d = json.loads(a['file'])
assert d['version'] == 2 and d['kdf'] == 'scrypt' and d['kdf_length'] == 32 and d['cipher'] == 2
salt = binascii.a2b_base64(d['kdf_salt'])
key = hashlib.scrypt(a['passphrase'].encode('utf8'), salt=salt, n=16384, r=8, p=1, dklen=32)
pt = AESGCM(key).decrypt(base64.b64decode(d['iv']), binascii.a2b_base64(d['secrets']), None)
assert len(pt) == d['length']
enc = json.loads(pt)
keys = ','.join(enc.keys())
shape = '{' + ', '.join('"%s": "%s\\\\n"' % (k, v.rstrip('\\n')) for k, v in enc.items()) + '}'
out = {k: binascii.a2b_base64(v).hex() for k, v in enc.items()}
out['plaintext_keys'] = keys
out['plaintext_shape_ok'] = 'yes' if shape.encode() == pt else 'no'
print(json.dumps(out))
`;
