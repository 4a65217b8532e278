/**
 * WAL checkpoints off the request path (src/server/backends/sqlite/checkpointer.ts): the worker really copies the
 * WAL into the database file, requests for one file merge, a file can be deleted right after its last write, and
 * the embedded engine's writes leave no ever-growing WAL behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WalCheckpointer } from '../../../src/server/backends/sqlite/checkpointer.js';
import { openSqlite } from '../../../src/server/backends/sqlite/connection.js';
import { openSqliteBackend } from '../../../src/server/backends/sqlite/index.js';

const size = (file: string): number => (existsSync(file) ? statSync(file).size : 0);

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('WalCheckpointer', () => {
  it('copies a WAL into the database file on its worker, without the inline fallback', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soledad-ckpt-'));
    const checkpointer = new WalCheckpointer();
    try {
      const file = join(dir, 'user-x.db');
      const db = openSqlite(file, { mustExist: false, autoCheckpoint: false });
      db.exec('CREATE TABLE t (b BLOB)');
      const insert = db.prepare('INSERT INTO t VALUES (?)');
      db.transaction(() => {
        for (let i = 0; i < 400; i++) insert.run(randomBytes(10_000));
      })();
      // Nothing checkpoints on its own: the data sits in the WAL, the database file is still small.
      assert.ok(size(`${file}-wal`) > 4_000_000, `WAL ${size(`${file}-wal`)}`);
      assert.ok(size(file) < 100_000, `db ${size(file)}`);
      let inline = 0;
      for (let i = 0; i < 5; i++) checkpointer.request(file, () => { inline += 1; });
      await until('the checkpoint', () => size(file) > 4_000_000);
      await checkpointer.settled(file);
      assert.equal(inline, 0, 'the worker did the work');
      assert.equal(db.prepare('SELECT count(*) AS n FROM t').get()?.['n' as never], 400);
      db.close();
    } finally {
      checkpointer.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the embedded engine: a large upload gets checkpointed after the answer, and a database can be deleted at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soledad-ckpt-'));
    const backend = await openSqliteBackend({ dataDir: dir });
    try {
      const uuid = randomBytes(16).toString('hex');
      const dbName = `user-${uuid}`;
      await backend.documents.ensureDatabase(dbName);
      const docs = Array.from({ length: 300 }, (_, i) => ({
        id: `D-${i}`, rev: 'r:1', content: `{"raw": "${randomBytes(15_000).toString('base64url')}"}`, gen: i + 1, transId: `T-${i}`,
      }));
      await backend.documents.putDocsIfNewer(dbName, 'r', docs);
      const file = join(dir, 'users', `${dbName}.db`);
      await until('the background checkpoint', () => size(file) > 4_000_000);
      const other = `user-${randomBytes(16).toString('hex')}`;
      await backend.documents.ensureDatabase(other);
      await backend.documents.putDocsIfNewer(other, 'r', docs.slice(0, 50));
      assert.equal(await backend.documents.deleteDatabase(other), true);
      assert.equal(existsSync(join(dir, 'users', `${other}.db`)), false);
      const got: string[] = [];
      for await (const d of backend.documents.getDocs(dbName, ['D-299'])) got.push(d.rev);
      assert.deepEqual(got, ['r:1']);
    } finally {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a new user database leaves nothing of its construction (file, WAL, shared memory) beside it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soledad-ckpt-'));
    const backend = await openSqliteBackend({ dataDir: dir });
    try {
      const dbName = `user-${randomBytes(16).toString('hex')}`;
      const { created } = await backend.documents.ensureDatabase(dbName);
      assert.equal(created, true);
      assert.deepEqual(readdirSync(join(dir, 'users')).filter((f) => f.includes('.creating-')), []);
      await backend.documents.putDocsIfNewer(dbName, 'r', [{ id: 'D-1', rev: 'r:1', content: '{"raw": "x"}', gen: 1, transId: 'T-1' }]);
      const got: string[] = [];
      for await (const d of backend.documents.getDocs(dbName, ['D-1'])) got.push(d.rev);
      assert.deepEqual(got, ['r:1']);
    } finally {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
