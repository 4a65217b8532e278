/**
 * The file format and opening rules: an independent SQLCipher 4 build reads our files with the raw key alone,
 * a wrong key never touches the file, plaintext cannot be opened by accident, and the schema is the original's
 * (Soledad's sqlcipher `test_backend`: schema, encryption, open).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import sqlcipher from '@journeyapps/sqlcipher';
import Database from 'better-sqlite3-multiple-ciphers';
import { LocalDatabase } from '../../../src/client/db/database.js';
import { SCHEMA_VERSION, SCHEMA_VERSION_KEY } from '../../../src/client/db/schema.js';
import { DatabaseKeyError, InvalidReplicaUidError, NotSupportedError } from '../../../src/common/errors.js';
import { makeKey, makeTempDir, removeDir, SIMPLE } from './helpers.js';

/** Run SQL through @journeyapps/sqlcipher (SQLCipher 4.x community, OpenSSL): an implementation that is not ours. */
function queryWithJourneyApps(file: string, pragmas: string[], sql: string): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const db = new sqlcipher.Database(file, sqlcipher.OPEN_READONLY, (err) => {
      if (err) reject(err);
    });
    db.serialize(() => {
      for (const p of pragmas) db.run(p);
      db.all(sql, (err: Error | null, rows: unknown[]) => {
        db.close(() => (err ? reject(err) : resolve(rows)));
      });
    });
  });
}

/**
 * Hashes of the database files in `dir`. The `-shm` file is left out: it is SQLite's shared-memory coordination
 * area (readers record their snapshot in it), holds no data, and is rebuilt from the WAL when missing.
 */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.endsWith('-shm')) continue;
    out[name] = createHash('sha256').update(fs.readFileSync(path.join(dir, name))).digest('hex');
  }
  return out;
}

describe('SQLCipher file format', () => {
  let dir: string;
  let file: string;
  let key: Buffer;
  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'soledad.u1db');
    key = makeKey();
  });
  afterEach(() => removeDir(dir));

  function createWithDocs(): string[] {
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    const ids = [db.createDoc(SIMPLE).docId, db.createDoc({ n: 2, text: 'zwei' }, 'doc-2').docId];
    db.close();
    return ids;
  }

  it('is readable by an independent SQLCipher 4 with PRAGMA key = "x\'<hex>\'" only', async () => {
    const ids = createWithDocs();
    const rows = await queryWithJourneyApps(file, [`PRAGMA key = "x'${key.toString('hex')}'"`], 'SELECT doc_id, content FROM document ORDER BY doc_id');
    assert.deepEqual(rows, [
      { doc_id: 'doc-2', content: JSON.stringify({ n: 2, text: 'zwei' }) },
      { doc_id: ids[0], content: JSON.stringify(SIMPLE) },
    ].sort((a, b) => (a.doc_id! < b.doc_id! ? -1 : 1)));
    const [version] = await queryWithJourneyApps(file, [`PRAGMA key = "x'${key.toString('hex')}'"`], 'PRAGMA cipher_version');
    assert.match(String((version as { cipher_version: string }).cipher_version), /^4\./);
  });

  it('cannot be read without the key or with another key', async () => {
    createWithDocs();
    await assert.rejects(queryWithJourneyApps(file, [], 'SELECT count(*) FROM document'), /not a database/);
    await assert.rejects(
      queryWithJourneyApps(file, [`PRAGMA key = "x'${makeKey().toString('hex')}'"`], 'SELECT count(*) FROM document'),
      /not a database/,
    );
    const header = fs.readFileSync(file).subarray(0, 16);
    assert.notDeepEqual(header, Buffer.from('SQLite format 3\0', 'latin1'), 'the SQLite header is encrypted (a random salt)');
    assert.equal(fs.readFileSync(file).includes(Buffer.from('zwei')), false, 'no plaintext content in the file');
  });

  it('refuses a wrong key with DatabaseKeyError and leaves every file byte untouched', () => {
    createWithDocs();
    const before = snapshot(dir);
    assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key: makeKey() } }), DatabaseKeyError);
    assert.deepEqual(snapshot(dir), before);
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    assert.equal(db.getDoc('doc-2')!.content!.text, 'zwei');
    db.close();
  });

  it('refuses a wrong key while another connection has the file open in WAL mode', () => {
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    try {
      db.rawQuery('PRAGMA wal_autocheckpoint = 0');
      db.createDoc(SIMPLE, 'in-wal');
      const before = snapshot(dir);
      assert.ok(Object.keys(before).some((n) => n.endsWith('-wal')));
      assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key: makeKey() } }), DatabaseKeyError);
      assert.deepEqual(snapshot(dir), before);
      assert.deepEqual(db.getDoc('in-wal')!.content, SIMPLE);
    } finally {
      db.close();
    }
  });

  it('refuses keys that are not 32 bytes', () => {
    for (const bad of [Buffer.alloc(0), Buffer.alloc(31), Buffer.alloc(64), 'x'.repeat(64) as unknown as Buffer]) {
      assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key: bad } }), DatabaseKeyError);
    }
  });

  it('never opens an encrypted file as plaintext, nor a plaintext file with a key', () => {
    createWithDocs();
    const before = snapshot(dir);
    assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'plaintext-benchmark-only' } }), DatabaseKeyError);
    assert.deepEqual(snapshot(dir), before);

    const plainFile = path.join(dir, 'plain.db');
    const plain = LocalDatabase.open({ path: plainFile, encryption: { mode: 'plaintext-benchmark-only' } });
    plain.createDoc(SIMPLE, 'p');
    plain.close();
    assert.deepEqual(fs.readFileSync(plainFile).subarray(0, 16), Buffer.from('SQLite format 3\0', 'latin1'));
    const plainBytes = fs.readFileSync(plainFile);
    assert.throws(() => LocalDatabase.open({ path: plainFile, encryption: { mode: 'encrypted', key } }), DatabaseKeyError);
    assert.deepEqual(fs.readFileSync(plainFile), plainBytes);
  });

  it('refuses a file that is not a database at all', () => {
    fs.writeFileSync(file, Buffer.alloc(8192, 7));
    assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } }), DatabaseKeyError);
    assert.deepEqual(fs.readFileSync(file), Buffer.alloc(8192, 7));
  });

  it('uses WAL, synchronous=NORMAL and in-memory temp storage', () => {
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    try {
      assert.deepEqual(db.rawQuery('PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
      assert.deepEqual(db.rawQuery('PRAGMA synchronous'), [{ synchronous: 1 }]);
      assert.deepEqual(db.rawQuery('PRAGMA temp_store'), [{ temp_store: 2 }]);
      assert.deepEqual(db.rawQuery('PRAGMA page_size'), [{ page_size: 4096 }]);
    } finally {
      db.close();
    }
  });
});

describe('client schema', () => {
  let dir: string;
  let file: string;
  let key: Buffer;
  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'soledad.u1db');
    key = makeKey();
  });
  afterEach(() => removeDir(dir));

  it('has the original tables and configuration', () => {
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key }, replicaUid: 'test' });
    try {
      const config = Object.fromEntries((db.rawQuery('SELECT name, value FROM u1db_config') as Array<{ name: string; value: string }>).map((r) => [r.name, r.value]));
      assert.deepEqual(config, { sql_schema: '0', replica_uid: 'test', index_storage: 'expand referenced', [SCHEMA_VERSION_KEY]: String(SCHEMA_VERSION) });
      const tables = (db.rawQuery("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") as Array<{ name: string }>).map((r) => r.name);
      assert.deepEqual(tables, ['conflicts', 'document', 'document_fields', 'index_definitions', 'service_tokens', 'sqlite_sequence', 'sync_log', 'transaction_log', 'u1db_config']);
      const columns = (table: string) => (db.rawQuery(`PRAGMA table_info(${table})`) as Array<{ name: string }>).map((c) => c.name);
      assert.deepEqual(columns('document'), ['doc_id', 'doc_rev', 'content', 'syncable']);
      assert.deepEqual(columns('transaction_log'), ['generation', 'doc_id', 'transaction_id']);
      assert.deepEqual(columns('document_fields'), ['doc_id', 'field_name', 'value']);
      assert.deepEqual(columns('sync_log'), ['replica_uid', 'known_generation', 'known_transaction_id']);
      assert.deepEqual(columns('conflicts'), ['doc_id', 'doc_rev', 'content']);
      assert.deepEqual(columns('index_definitions'), ['name', 'offset', 'field']);
    } finally {
      db.close();
    }
  });

  it('refuses to reopen with another replica uid', () => {
    LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key }, replicaUid: 'one' }).close();
    assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key }, replicaUid: 'two' }), InvalidReplicaUidError);
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key }, replicaUid: 'one' });
    assert.equal(db.replicaUid, 'one');
    db.close();
    assert.throws(() => LocalDatabase.open({ path: path.join(dir, 'x.db'), encryption: { mode: 'encrypted', key }, replicaUid: 'a:b' }), InvalidReplicaUidError);
  });

  it('upgrades a version-1 file: unsyncable documents, however the original stored the flag, stay out of sync', () => {
    let db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    const ids = ['int', 'text', 'python', 'kept'].map((name) => db.createDoc(SIMPLE, `doc-${name}`).docId);
    db.createDoc(SIMPLE, 'doc-kept'.replace('kept', 'late'));
    db.putDoc(db.getDoc('doc-kept')!); // a second log entry: listed once, at its latest generation
    // Version 1 had no partial index; the original Soledad wrote Python booleans.
    db.rawOperation('DROP INDEX document_unsyncable_idx');
    db.rawOperation('UPDATE u1db_config SET value = ? WHERE name = ?', ['1', SCHEMA_VERSION_KEY]);
    db.rawOperation("UPDATE document SET syncable = 0 WHERE doc_id = 'doc-int'");
    db.rawOperation("UPDATE document SET syncable = '0' WHERE doc_id = 'doc-text'");
    db.rawOperation("UPDATE document SET syncable = 'False' WHERE doc_id = 'doc-python'");
    db.close();

    db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    try {
      assert.equal(db.rawQuery('SELECT value FROM u1db_config WHERE name = ?', [SCHEMA_VERSION_KEY]).map((r) => (r as { value: string }).value)[0], String(SCHEMA_VERSION));
      assert.equal(db.rawQuery("SELECT 1 FROM sqlite_master WHERE name = 'document_unsyncable_idx'").length, 1);
      const all = db.whatsChanged(0);
      assert.deepEqual(all.changes.map((c) => [c.docId, c.generation]), [[ids[0], 1], [ids[1], 2], [ids[2], 3], ['doc-late', 5], ['doc-kept', 6]]);
      assert.deepEqual(db.whatsChanged(0, { syncableOnly: true }).changes.map((c) => c.docId), ['doc-late', 'doc-kept']);
      assert.deepEqual(db.whatsChanged(5, { syncableOnly: true }).changes.map((c) => c.docId), ['doc-kept']);
      assert.equal(all.changes[4]!.transactionId, db.getGenerationInfo().transactionId);
    } finally {
      db.close();
    }
  });

  it('refuses a schema newer than this software', () => {
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    db.rawOperation('UPDATE u1db_config SET value = ? WHERE name = ?', [String(SCHEMA_VERSION + 1), SCHEMA_VERSION_KEY]);
    db.close();
    assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } }), NotSupportedError);
  });

  it('refuses an SQLite file of another application', () => {
    const plainFile = path.join(dir, 'other.db');
    const other = new Database(plainFile);
    other.exec('CREATE TABLE contacts (name TEXT)');
    other.close();
    assert.throws(() => LocalDatabase.open({ path: plainFile, encryption: { mode: 'plaintext-benchmark-only' } }), NotSupportedError);
  });

  it('keeps one service token per service', () => {
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    const a = db.getOrCreateServiceToken('a');
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(db.getOrCreateServiceToken('a'), a);
    assert.notEqual(db.getOrCreateServiceToken('b'), a);
    db.close();
    const again = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    assert.equal(again.getOrCreateServiceToken('a'), a);
    again.close();
  });

  it('offers raw SQL as an escape hatch', () => {
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    try {
      db.createDoc(SIMPLE, 'a');
      assert.deepEqual(db.rawQuery('SELECT doc_id FROM document WHERE doc_id = ?', ['a']), [{ doc_id: 'a' }]);
      assert.deepEqual(db.rawQuery('SELECT doc_id FROM document WHERE doc_id = @id', { id: 'a' }), [{ doc_id: 'a' }]);
      assert.deepEqual(db.rawOperation('INSERT INTO sync_log VALUES (?, ?, ?)', ['x', 3, 'T-3']), { changes: 1 });
      assert.deepEqual(db.getReplicaGenAndTransId('x'), { generation: 3, transactionId: 'T-3' });
      assert.deepEqual(db.rawQuery('PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
    } finally {
      db.close();
    }
  });
});
