/** Test helpers for the secrets tests (data builders and an in-memory shared db). */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { RevisionConflictError } from '../../../src/common/errors.js';
import { scryptKey } from '../../../src/common/crypto/scrypt.js';
import type { StorageSecrets } from '../../../src/client/secrets/format.js';
import type { RemoteSecretsStore } from '../../../src/client/secrets/secrets-manager.js';

/** ENCRYPTED_V2 / ENCRYPTED_V1 from Soledad's tests/client/test_secrets.py (passphrase "123"). */
export const VECTORS = JSON.parse(
  readFileSync(new URL('./fixtures/original-secrets-vectors.json', import.meta.url), 'utf8'),
) as { v2: Record<string, unknown>; v1: Record<string, unknown> };

/** What the vectors decrypt to: 'a'×512, 'b'×64, 'c'×448. */
export const VECTOR_SECRETS: StorageSecrets = {
  remoteSecret: Buffer.alloc(512, 'a'),
  localSalt: Buffer.alloc(64, 'b'),
  localSecret: Buffer.alloc(448, 'c'),
};

/** A v1 document as 0.8–0.9 wrote it: id = sha256(secret), AES-256-CTR, "\n" after each base64 part. */
export async function makeV1Doc(secrets: StorageSecrets, passphrase: string): Promise<Record<string, unknown>> {
  const secret = Buffer.concat([secrets.remoteSecret, secrets.localSalt, secrets.localSecret]);
  const salt = randomBytes(64);
  const iv = randomBytes(16);
  const key = await scryptKey(passphrase, salt);
  const c = createCipheriv('aes-256-ctr', key, iv);
  const ct = Buffer.concat([c.update(secret), c.final()]);
  const id = createHash('sha256').update(secret).digest('hex');
  return {
    storage_secrets: {
      [id]: {
        kdf: 'scrypt',
        kdf_salt: `${salt.toString('base64')}\n`,
        kdf_length: 32,
        cipher: 'aes256',
        length: 1024,
        secret: `${iv.toString('base64')}\n:${ct.toString('base64')}\n`,
      },
    },
    kdf: 'scrypt',
    kdf_salt: `${randomBytes(64).toString('base64')}\n`,
    kdf_length: 32,
    _mac_method: 'hmac',
    _mac: 'not checked',
  };
}

/** In-memory stand-in for the server's `shared` database, with u1db-like revisions. */
export class MemorySharedDb implements RemoteSecretsStore {
  readonly docs = new Map<string, { content: unknown; rev: string }>();
  gets = 0;
  puts = 0;
  failPuts = false;
  #n = 0;

  async get(docId: string): Promise<{ content: unknown; rev: string } | null> {
    this.gets++;
    const d = this.docs.get(docId);
    return d === undefined ? null : { content: structuredClone(d.content), rev: d.rev };
  }

  async put(docId: string, content: unknown, oldRev: string | null): Promise<string> {
    this.puts++;
    if (this.failPuts) throw new Error('server unreachable');
    const cur = this.docs.get(docId);
    if ((cur?.rev ?? null) !== oldRev) throw new RevisionConflictError();
    const rev = `mem:${++this.#n}`;
    // Stored as the wire would carry it: JSON text parsed back.
    this.docs.set(docId, { content: JSON.parse(JSON.stringify(content)) as unknown, rev });
    return rev;
  }
}

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'soledad-secrets-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
