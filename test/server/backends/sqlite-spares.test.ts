/**
 * Spare user databases of the embedded engine: new users get a database built ahead (a rename), each with its own
 * replica uid; spares left by an earlier run are used, half-built ones removed; without spares, databases are
 * built when needed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3-multiple-ciphers';
import { SqliteDocumentStore } from '../../../src/server/backends/sqlite/documents.js';

const USER_A = 'user-0123456789abcdef0123456789abcdef';
const USER_B = 'user-fedcba9876543210fedcba9876543210';

/** Wait until the spare directory holds `n` finished spares (they are built in the background, when idle). */
async function sparesReady(dir: string, n: number): Promise<string[]> {
  for (let i = 0; i < 400; i++) {
    const spares = existsSync(dir) ? readdirSync(dir).filter((f) => /^spare-[0-9a-f]+\.db$/.test(f)) : [];
    if (spares.length >= n) return spares;
    await sleep(10);
  }
  throw new Error(`fewer than ${n} spares were built`);
}

/** Use the store once (a read of a missing database): the pool of spares starts with the first use. */
async function touch(store: SqliteDocumentStore): Promise<void> {
  await store.whatsChanged('user-00000000000000000000000000000000', 0).catch(() => undefined);
}

describe('sqlite spare user databases', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'soledad-spares-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives new users ready databases, each with its own replica uid, and builds more when idle', async () => {
    const users = join(dir, 'users');
    const store = new SqliteDocumentStore({ dir: users, maxOpen: 8, spareDatabases: 2 });
    try {
      await sleep(150);
      assert.deepEqual(readdirSync(join(users, '.spare')), [], 'nothing is built before the store is used');
      await touch(store);
      const before = await sparesReady(join(users, '.spare'), 2);
      const a = await store.ensureDatabase(USER_A);
      const b = await store.ensureDatabase(USER_B);
      assert.equal(a.created, true);
      assert.equal(b.created, true);
      assert.notEqual(a.replicaUid, b.replicaUid);
      const after = readdirSync(join(users, '.spare'));
      for (const used of before) assert.ok(!after.includes(used), 'a spare is used once');
      assert.deepEqual(await store.ensureDatabase(USER_A), { replicaUid: a.replicaUid, created: false });
      // A spare is a full database: usable at once, in WAL mode with the engine's page size.
      assert.deepEqual(await store.whatsChanged(USER_B, 0), { generation: 0, transactionId: '', changes: [] });
      const db = new Database(join(users, `${USER_B}.db`), { readonly: true });
      try {
        assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
        assert.equal(db.pragma('page_size', { simple: true }), 16384);
      } finally {
        db.close();
      }
      await sparesReady(join(users, '.spare'), 2);
    } finally {
      store.close();
      await store.settled();
    }
  });

  it('keeps finished spares across restarts and removes half-built ones', async () => {
    const users = join(dir, 'users');
    let store = new SqliteDocumentStore({ dir: users, maxOpen: 8, spareDatabases: 1 });
    await touch(store);
    const [kept] = await sparesReady(join(users, '.spare'), 1);
    store.close();
    await store.settled();
    writeFileSync(join(users, '.spare', 'building-00aa.db'), 'half a database');
    store = new SqliteDocumentStore({ dir: users, maxOpen: 8, spareDatabases: 1 });
    try {
      assert.ok(!existsSync(join(users, '.spare', 'building-00aa.db')));
      assert.ok(existsSync(join(users, '.spare', kept!)));
      await store.ensureDatabase(USER_A);
      assert.ok(!existsSync(join(users, '.spare', kept!)), 'the spare of the earlier run became the new database');
    } finally {
      store.close();
      await store.settled();
    }
  });

  it('builds the database when the spares it knew are gone (another process on the directory took them)', async () => {
    const users = join(dir, 'users');
    const store = new SqliteDocumentStore({ dir: users, maxOpen: 8, spareDatabases: 2 });
    try {
      await touch(store);
      for (const f of await sparesReady(join(users, '.spare'), 2)) rmSync(join(users, '.spare', f));
      const a = await store.ensureDatabase(USER_A);
      assert.equal(a.created, true);
      assert.deepEqual(await store.whatsChanged(USER_A, 0), { generation: 0, transactionId: '', changes: [] });
    } finally {
      store.close();
      await store.settled();
    }
  });

  it('builds the database when no spare is kept', async () => {
    const users = join(dir, 'users');
    mkdirSync(users, { recursive: true });
    const store = new SqliteDocumentStore({ dir: users, maxOpen: 8, spareDatabases: 0 });
    try {
      assert.equal((await store.ensureDatabase(USER_A)).created, true);
      assert.equal(existsSync(join(users, '.spare')), false);
      assert.deepEqual(readdirSync(users).filter((f) => f.endsWith('.db')), [`${USER_A}.db`], 'no stray files');
    } finally {
      store.close();
      await store.settled();
    }
  });
});
