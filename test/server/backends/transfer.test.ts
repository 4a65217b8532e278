/**
 * export-user / import-user: one user's data moves from the embedded engine to every engine under test (and
 * back out again) with byte-identical ciphertext and blobs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { blobStoreOf } from '../../../src/server/backends/index.js';
import { exportUser, importUser } from '../../../src/server/backends/transfer.js';
import type { Backend } from '../../../src/server/backends/types.js';
import { openTestBackend, testEngines } from '../../backends/engines.js';

const UUID = '0123456789abcdef0123456789abcdef';

async function dump(backend: Backend, blobsPath: string): Promise<string[]> {
  const lines: string[] = [];
  const store = blobStoreOf(backend, { blobsPath, concurrentBlobWrites: 4, quotaBytes: 1 << 30 });
  for await (const l of exportUser(backend, UUID, { blobs: store })) lines.push(l);
  return lines;
}

describe('export-user / import-user', () => {
  for (const target of testEngines()) {
    it(`moves a user from sqlite to ${target} with identical ciphertext and blobs`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'soledad-transfer-'));
      const from = await openTestBackend('sqlite');
      const to = await openTestBackend(target);
      try {
        const db = `user-${UUID}`;
        await from.backend.documents.ensureDatabase(db);
        const docs = Array.from({ length: 250 }, (_, i) => ({
          id: `D-${i.toString(16).padStart(4, '0')}`,
          rev: `dev${i % 3}:${1 + (i % 5)}`,
          content: i % 17 === 0 ? null : JSON.stringify({ raw: randomBytes(64 + i).toString('base64url') }),
          gen: i + 1,
          transId: `T-${i}`,
        }));
        await from.backend.documents.putDocsIfNewer(db, 'device', docs);
        const srcBlobs = blobStoreOf(from.backend, { blobsPath: join(dir, 'src-blobs'), concurrentBlobWrites: 4, quotaBytes: 1 << 30 });
        const big = randomBytes(2 * 1024 * 1024 + 123);
        await srcBlobs.put({ user: UUID, namespace: 'default', blobId: 'big' }, Readable.from([big]));
        await srcBlobs.put({ user: UUID, namespace: 'MX', blobId: 'mail1' }, Readable.from([Buffer.from('incoming')]), { flags: ['PENDING'] });

        const exported = await dump(from.backend, join(dir, 'src-blobs'));
        const result = await importUser(to.backend, Readable.from(exported), {
          blobs: blobStoreOf(to.backend, { blobsPath: join(dir, 'dst-blobs'), concurrentBlobWrites: 4, quotaBytes: 1 << 30 }),
        });
        assert.deepEqual(result, { uuid: UUID, docs: 250, blobs: 2 });

        const again = await dump(to.backend, join(dir, 'dst-blobs'));
        // Everything but the header (engine name, replica uid, generation) is identical, byte for byte.
        assert.deepEqual(again.slice(1), exported.slice(1));
        const stored = [];
        for await (const d of to.backend.documents.getDocs(db, docs.map((d) => d.id))) stored.push(d);
        assert.deepEqual(stored, docs.map((d) => ({ id: d.id, rev: d.rev, content: d.content })));
        await assert.rejects(importUser(to.backend, Readable.from(exported)), /already holds documents/);
      } finally {
        await from.teardown();
        await to.teardown();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
