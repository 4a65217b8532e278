import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { decryptSecrets, serializeSecretsFile, encryptSecretsV2 } from '../../../src/client/secrets/format.js';
import { SUPERSEDED_CONTENT, SecretsManager, recoveryDocId, recoveryPath } from '../../../src/client/secrets/secrets-manager.js';
import { scryptKey } from '../../../src/common/crypto/scrypt.js';
import {
  DatabaseClosedError,
  SecretsFileCorruptedError,
  SecretsNotFoundError,
  WrongPassphraseError,
} from '../../../src/common/errors.js';
import { MemorySharedDb, VECTORS, VECTOR_SECRETS, makeV1Doc, tempDir } from './helpers.js';

const UUID = '0123456789abcdef0123456789abcdef';

test('bootstrap order: generate → local → remote', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const remote = new MemorySharedDb();
    const path = join(dir, 'soledad.json');

    // nothing anywhere: generate, store remote and local
    const a = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'pw', secretsPath: path, remote });
    assert.equal(a.source, 'generated');
    assert.equal(a.secrets.remoteSecret.length, 512);
    const docId = recoveryDocId('pw', UUID);
    assert.ok(remote.docs.has(docId));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual((await decryptSecrets(remote.docs.get(docId)!.content, 'pw')).secrets.remoteSecret, a.secrets.remoteSecret);

    // local file wins and does not touch the server
    const getsBefore = remote.gets;
    const putsBefore = remote.puts;
    const b = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'pw', secretsPath: path, remote });
    assert.equal(b.source, 'local');
    assert.deepEqual(b.secrets.remoteSecret, a.secrets.remoteSecret);
    assert.equal(remote.gets, getsBefore);
    assert.equal(remote.puts, putsBefore);

    // a second device with no local file gets the same secrets from the server and stores them locally
    const path2 = join(dir, 'device2', 'soledad.json');
    const c = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'pw', secretsPath: path2, remote });
    assert.equal(c.source, 'remote');
    assert.deepEqual(c.secrets.localSecret, a.secrets.localSecret);
    assert.deepEqual((await decryptSecrets(await readFile(path2, 'utf8'), 'pw')).secrets.localSalt, a.secrets.localSalt);
    for (const m of [a, b, c]) m.close();
  } finally {
    await cleanup();
  }
});

test('wrong passphrase on the local file: WrongPassphraseError, file bytes unchanged, server untouched', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, 'soledad.json');
    const remote = new MemorySharedDb();
    (await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'right', secretsPath: path, remote })).close();
    const before = await readFile(path);
    const puts = remote.puts;
    await assert.rejects(SecretsManager.bootstrap({ uuid: UUID, passphrase: 'wrong', secretsPath: path, remote }), WrongPassphraseError);
    assert.deepEqual(await readFile(path), before);
    assert.equal(remote.puts, puts);
  } finally {
    await cleanup();
  }
});

test('truncated local file: SecretsFileCorruptedError, file unchanged', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, 'soledad.json');
    const text = serializeSecretsFile(await encryptSecretsV2(VECTOR_SECRETS, 'pw'));
    await writeFile(path, text.slice(0, 300));
    await assert.rejects(SecretsManager.bootstrap({ uuid: UUID, passphrase: 'pw', secretsPath: path }), SecretsFileCorruptedError);
    assert.equal(await readFile(path, 'utf8'), text.slice(0, 300));
  } finally {
    await cleanup();
  }
});

test('v1 local file is rewritten as v2 (locally and remotely)', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, 'soledad.json');
    await writeFile(path, JSON.stringify(VECTORS.v1));
    const remote = new MemorySharedDb();
    const m = await SecretsManager.bootstrap({ uuid: UUID, passphrase: '123', secretsPath: path, remote });
    assert.equal(m.source, 'local');
    assert.deepEqual(m.secrets.remoteSecret, VECTOR_SECRETS.remoteSecret);
    const onDisk = JSON.parse(await readFile(path, 'utf8')) as { version: number };
    assert.equal(onDisk.version, 2);
    assert.equal((await decryptSecrets(onDisk, '123')).version, 2);
    assert.ok(remote.docs.has(recoveryDocId('123', UUID)));
    m.close();
  } finally {
    await cleanup();
  }
});

test('v1 recovery document on the server (0.9 style) is read and re-stored as v2', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const remote = new MemorySharedDb();
    await remote.put(recoveryDocId('old pw', UUID), await makeV1Doc(VECTOR_SECRETS, 'old pw'), null);
    const m = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'old pw', secretsPath: join(dir, 's.json'), remote });
    assert.equal(m.source, 'remote');
    assert.deepEqual(m.secrets.localSecret, VECTOR_SECRETS.localSecret);
    assert.equal((remote.docs.get(recoveryDocId('old pw', UUID))!.content as { version: number }).version, 2);
    m.close();
  } finally {
    await cleanup();
  }
});

test('when the server rejects the upload, nothing is written locally', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const remote = new MemorySharedDb();
    remote.failPuts = true;
    const path = join(dir, 'soledad.json');
    await assert.rejects(SecretsManager.bootstrap({ uuid: UUID, passphrase: 'pw', secretsPath: path, remote }), /unreachable/);
    await assert.rejects(stat(path), { code: 'ENOENT' });
  } finally {
    await cleanup();
  }
});

test('a racing device that created the recovery doc first wins', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const remote = new MemorySharedDb();
    const id = recoveryDocId('pw', UUID);
    const theirs = await encryptSecretsV2(VECTOR_SECRETS, 'pw');
    // the doc appears between our get (null) and our put
    const realGet = remote.get.bind(remote);
    let first = true;
    remote.get = async (docId: string) => {
      const r = await realGet(docId);
      if (first && docId === id) {
        first = false;
        await remote.put(id, theirs, null);
      }
      return r;
    };
    const m = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'pw', secretsPath: join(dir, 's.json'), remote });
    assert.equal(m.source, 'remote');
    assert.deepEqual(m.secrets.remoteSecret, VECTOR_SECRETS.remoteSecret);
    m.close();
  } finally {
    await cleanup();
  }
});

test('changePassphrase re-wraps the same secrets; the old passphrase stops working', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const remote = new MemorySharedDb();
    const path = join(dir, 'soledad.json');
    const m = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'old', secretsPath: path, remote });
    const original = m.exportSecrets();
    await m.changePassphrase('new');
    assert.deepEqual(m.secrets.remoteSecret, original.remoteSecret);
    assert.equal((await stat(path)).mode & 0o777, 0o600);

    await assert.rejects(SecretsManager.bootstrap({ uuid: UUID, passphrase: 'old', secretsPath: path, remote }), WrongPassphraseError);
    const local = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'new', secretsPath: path, remote });
    assert.deepEqual(local.secrets.remoteSecret, original.remoteSecret);

    // the server copy moved to the new id; the old id no longer unlocks anything
    assert.deepEqual(remote.docs.get(recoveryDocId('old', UUID))!.content, SUPERSEDED_CONTENT);
    const otherDevice = join(dir, 'd2', 's.json');
    await assert.rejects(SecretsManager.bootstrap({ uuid: UUID, passphrase: 'old', secretsPath: otherDevice, remote }), WrongPassphraseError);
    const fresh = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'new', secretsPath: otherDevice, remote });
    assert.equal(fresh.source, 'remote');
    assert.deepEqual(fresh.secrets.localSecret, original.localSecret);
    for (const x of [m, local, fresh]) x.close();
  } finally {
    await cleanup();
  }
});

test('recovery code: stored remotely and beside the file; recover sets a new passphrase', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const remote = new MemorySharedDb();
    const path = join(dir, 'soledad.json');
    const m = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'forgotten', secretsPath: path, remote });
    const original = m.exportSecrets();
    const code = await m.createRecoveryCode();
    assert.match(code, /^[a-z]{20,}$/);
    assert.ok(remote.docs.has(recoveryDocId(code, UUID)));
    const localCopy = await readFile(recoveryPath(path), 'utf8');
    assert.ok(!localCopy.includes(code));
    assert.equal((await stat(recoveryPath(path))).mode & 0o777, 0o600);
    m.close();

    // a new device, via the server
    const p2 = join(dir, 'd2', 'soledad.json');
    const r = await SecretsManager.recover({ uuid: UUID, recoveryCode: code.toUpperCase(), newPassphrase: 'fresh', secretsPath: p2, remote });
    assert.equal(r.source, 'recovered');
    assert.deepEqual(r.secrets.remoteSecret, original.remoteSecret);
    r.close();
    const again = await SecretsManager.bootstrap({ uuid: UUID, passphrase: 'fresh', secretsPath: p2 });
    assert.equal(again.source, 'local');
    assert.deepEqual(again.secrets.localSalt, original.localSalt);
    again.close();
    assert.ok(remote.docs.has(recoveryDocId('fresh', UUID)));

    // the same device, offline, via the local .recovery file
    const r2 = await SecretsManager.recover({ uuid: UUID, recoveryCode: code, newPassphrase: 'offline', secretsPath: path });
    assert.deepEqual(r2.secrets.localSecret, original.localSecret);
    r2.close();
    await assert.rejects(
      SecretsManager.recover({ uuid: UUID, recoveryCode: 'abcdefghijklmnopqrstuvwx', newPassphrase: 'x', secretsPath: path }),
      WrongPassphraseError,
    );
    await assert.rejects(
      SecretsManager.recover({ uuid: UUID, recoveryCode: code, newPassphrase: 'x', secretsPath: join(dir, 'none', 's.json'), remote: new MemorySharedDb() }),
      SecretsNotFoundError,
    );
  } finally {
    await cleanup();
  }
});

test('localDbKey = scrypt(localSecret, localSalt); close zeroes everything', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, 'soledad.json');
    await writeFile(path, JSON.stringify(VECTORS.v2));
    const m = await SecretsManager.bootstrap({ uuid: UUID, passphrase: '123', secretsPath: path });
    const expected = await scryptKey(VECTOR_SECRETS.localSecret, VECTOR_SECRETS.localSalt);
    const key = await m.localDbKey();
    assert.deepEqual(key, expected);
    key.fill(0); // the caller's copy; the cached key is unaffected
    assert.deepEqual(await m.localDbKey(), expected);
    const held = m.secrets;
    m.close();
    assert.ok(held.remoteSecret.every((b) => b === 0));
    assert.ok(held.localSalt.every((b) => b === 0));
    assert.ok(held.localSecret.every((b) => b === 0));
    assert.throws(() => m.secrets, DatabaseClosedError);
    await assert.rejects(m.localDbKey(), DatabaseClosedError);
  } finally {
    await cleanup();
  }
});
