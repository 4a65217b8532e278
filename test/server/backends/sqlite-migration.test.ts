/**
 * User databases written by an earlier version of the embedded engine (schema version 1: documents indexed by
 * generation alone) are brought to the current schema when first opened, keeping every document and answer.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3-multiple-ciphers';
import { BackendNotReadyError } from '../../../src/common/errors.js';
import { openSqliteBackend } from '../../../src/server/backends/sqlite/index.js';

/** The version-1 schema exactly as that version created it. */
const SCHEMA_V1 = `
CREATE TABLE u1db_config (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
  doc_id TEXT PRIMARY KEY, rev TEXT NOT NULL, content TEXT, generation INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE INDEX documents_by_generation ON documents (generation);
CREATE TABLE transaction_log (generation INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, transaction_id TEXT NOT NULL);
CREATE TABLE sync_log (
  replica_uid TEXT PRIMARY KEY, known_generation INTEGER NOT NULL, known_transaction_id TEXT NOT NULL);
CREATE TABLE usage (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
INSERT INTO u1db_config VALUES ('replica_uid', 'server-replica'), ('schema_version', '1');
INSERT INTO usage VALUES (1, 30);
INSERT INTO documents VALUES ('D-a', 'c:1', '{"raw": "a"}', 3, 10), ('D-b', 'c:2', '{"raw": "b"}', 4, 10),
  ('D-c', 'c:1', NULL, 2, 10);
INSERT INTO transaction_log VALUES (1, 'D-a', 'T-1'), (2, 'D-c', 'T-2'), (3, 'D-a', 'T-3'), (4, 'D-b', 'T-4');
`;

function writeDb(file: string, sql: string): void {
  const db = new Database(file);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

function indexes(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents' AND sql IS NOT NULL")
      .pluck().all() as string[]).sort();
  } finally {
    db.close();
  }
}

describe('sqlite user database schema migration', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'soledad-sqlite-migrate-'));
    mkdirSync(join(dataDir, 'users'), { recursive: true });
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('upgrades a version-1 database on open and keeps its documents, log and answers', async () => {
    const name = 'user-0123456789abcdef0123456789abcdef';
    const file = join(dataDir, 'users', `${name}.db`);
    writeDb(file, SCHEMA_V1);
    assert.deepEqual(indexes(file), ['documents_by_generation']);

    const backend = await openSqliteBackend({ dataDir });
    try {
      const changes = await backend.documents.whatsChanged(name, 0);
      assert.deepEqual(changes.changes.map((c) => [c.id, c.generation, c.transactionId]),
        [['D-c', 2, 'T-2'], ['D-a', 3, 'T-3'], ['D-b', 4, 'T-4']]);
      assert.equal(changes.generation, 4);
      assert.deepEqual((await backend.documents.whatsChanged(name, 3)).changes.map((c) => c.id), ['D-b']);
      assert.equal((await backend.documents.getSyncInfo(name, 'src')).replicaUid, 'server-replica');
      assert.equal(await backend.documents.usageBytes(name), 30);
    } finally {
      await backend.close();
    }
    assert.deepEqual(indexes(file), ['documents_changes']);
    const db = new Database(file, { readonly: true });
    try {
      assert.equal(db.prepare("SELECT value FROM u1db_config WHERE name = 'schema_version'").pluck().get(), '2');
      assert.equal(db.prepare('SELECT count(*) FROM documents').pluck().get(), 3);
      assert.equal(db.pragma('page_size', { simple: true }), 4096, 'an existing file keeps its page size');
    } finally {
      db.close();
    }
  });

  it('creates new user databases with 16 KiB pages, which store and answer like any other', async () => {
    const name = 'user-00000000000000000000000000000016';
    const backend = await openSqliteBackend({ dataDir });
    try {
      assert.equal((await backend.documents.ensureDatabase(name)).created, true);
      const up = await backend.documents.openUpload(name, 'src');
      const content = `{"raw": "${'A'.repeat(40_000)}"}`;
      await up.putDocsIfNewer([{ id: 'D-big', rev: 'src:1', content, gen: 1, transId: 'T-1' }]);
      await up.commit();
      const sent = [];
      for await (const d of backend.documents.getDocsToSend(name, ['D-big'])) sent.push(d);
      assert.equal(sent.length, 1);
      assert.equal(Buffer.from(sent[0]!.content!).toString(), content);
    } finally {
      await backend.close();
    }
    const db = new Database(join(dataDir, 'users', `${name}.db`), { readonly: true });
    try {
      assert.equal(db.pragma('page_size', { simple: true }), 16384);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
  });

  it('refuses a database from a newer version without changing it', async () => {
    const name = 'user-fedcba9876543210fedcba9876543210';
    const file = join(dataDir, 'users', `${name}.db`);
    writeDb(file, SCHEMA_V1.replace("('schema_version', '1')", "('schema_version', '99')"));
    const backend = await openSqliteBackend({ dataDir });
    try {
      await assert.rejects(backend.documents.whatsChanged(name, 0), BackendNotReadyError);
    } finally {
      await backend.close();
    }
    assert.deepEqual(indexes(file), ['documents_by_generation']);
  });
});
