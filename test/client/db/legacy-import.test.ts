/**
 * Import of an original Soledad 0.10 client database (protocol deviation 6): SQLCipher 3 defaults with
 * kdf_iter 4000 and 1024-byte pages, keyed with the text passphrase `x'<hex>` (no closing quote), written here by
 * Debian's `sqlcipher` 3.x command-line tool with exactly the original's pragmas and schema. Opening it with our
 * raw key must convert it to SQLCipher 4 in place without losing a document, a revision, a conflict, an index
 * row or the sync log, and then carry on.
 *
 * Needs the `sqlcipher` CLI (`apt-get install sqlcipher`); without it these tests fail.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import sqlcipher from '@journeyapps/sqlcipher';
import { LocalDatabase } from '../../../src/client/db/database.js';
import { IMPORT_BACKUP_SUFFIX, IMPORT_TEMP_SUFFIX } from '../../../src/client/db/sqlcipher.js';
import { DatabaseKeyError } from '../../../src/common/errors.js';
import { makeKey, makeTempDir, removeDir } from './helpers.js';

const cli = spawnSync('sqlcipher', ['-version'], { encoding: 'utf8' });
const cliMissing = cli.error !== undefined || cli.status !== 0;

const REPLICA = '0123456789abcdef0123456789abcdef';

/** Run SQL through the sqlcipher CLI with the original Soledad key pragma and cipher settings (pragmas.py). */
function runLegacySql(file: string, key: Buffer, sql: string): string {
  if (cliMissing) throw new Error('the sqlcipher CLI is required (apt-get install sqlcipher)');
  const script = [
    // The quote slip of the original: the identifier's text is the 66-character passphrase x'<hex>.
    `PRAGMA key = "x'${key.toString('hex')}";`,
    // A SQLCipher 4 CLI would need this to write the 3.x format; SQLCipher 3 ignores the unknown pragma.
    'PRAGMA cipher_compatibility = 3;',
    "PRAGMA cipher = 'aes-256-cbc';",
    'PRAGMA kdf_iter = 4000;',
    'PRAGMA cipher_page_size = 1024;',
    'PRAGMA journal_mode = WAL;',
    'PRAGMA synchronous = NORMAL;',
    sql,
  ].join('\n');
  const res = spawnSync('sqlcipher', ['-batch', '-bail', file], { input: script, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`sqlcipher failed (${res.status}): ${res.stderr}`);
  return res.stdout;
}

/** The original client schema: u1db 13.09 dbschema.sql, Soledad's ALTER TABLE, and the config rows. */
function originalSchema(indexStorage: string): string {
  return `
CREATE TABLE transaction_log (generation INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL, transaction_id TEXT NOT NULL);
CREATE TABLE document (doc_id TEXT PRIMARY KEY, doc_rev TEXT NOT NULL, content TEXT);
CREATE TABLE document_fields (doc_id TEXT NOT NULL, field_name TEXT NOT NULL, value TEXT);
CREATE INDEX document_fields_field_value_doc_idx ON document_fields(field_name, value, doc_id);
CREATE TABLE sync_log (replica_uid TEXT PRIMARY KEY, known_generation INTEGER, known_transaction_id TEXT);
CREATE TABLE conflicts (doc_id TEXT, doc_rev TEXT, content TEXT, CONSTRAINT conflicts_pkey PRIMARY KEY (doc_id, doc_rev));
CREATE TABLE index_definitions (name TEXT, offset INT, field TEXT, CONSTRAINT index_definitions_pkey PRIMARY KEY (name, offset));
create index index_definitions_field on index_definitions(field);
CREATE TABLE u1db_config (name TEXT PRIMARY KEY, value TEXT);
INSERT INTO u1db_config VALUES ('sql_schema', '0');
ALTER TABLE document ADD COLUMN syncable BOOL NOT NULL DEFAULT TRUE;
INSERT OR REPLACE INTO u1db_config VALUES ('replica_uid', '${REPLICA}');
INSERT INTO u1db_config VALUES ('index_storage', '${indexStorage}');
`;
}

/** Documents as the original would have written them (Python json.dumps spacing, bools as 1/0). */
const ORIGINAL_DATA = `
INSERT INTO document VALUES ('doc-a', '${REPLICA}:2', '{"subject": "hello", "tags": ["x", "y"]}', 1);
INSERT INTO document VALUES ('doc-b', '${REPLICA}:1', '{"subject": "Zebra", "n": 7}', 1);
INSERT INTO document VALUES ('doc-gone', '${REPLICA}:2', NULL, 1);
INSERT INTO document VALUES ('doc-local', '${REPLICA}:1', '{"subject": "never synced"}', 0);
INSERT INTO document VALUES ('doc-c', 'other:1', '{"subject": "theirs"}', 1);
INSERT INTO conflicts VALUES ('doc-c', '${REPLICA}:1', '{"subject": "mine"}');
INSERT INTO transaction_log (doc_id, transaction_id) VALUES ('doc-a', 'T-a1'), ('doc-b', 'T-b1'), ('doc-gone', 'T-g1'),
  ('doc-a', 'T-a2'), ('doc-gone', 'T-g2'), ('doc-local', 'T-l1'), ('doc-c', 'T-c1'), ('doc-c', 'T-c2');
INSERT INTO sync_log VALUES ('server-replica', 12, 'T-server12');
INSERT INTO index_definitions VALUES ('by-subject', 0, 'lower(subject)');
INSERT INTO document_fields VALUES ('doc-a', 'lower(subject)', 'hello'), ('doc-b', 'lower(subject)', 'zebra'),
  ('doc-local', 'lower(subject)', 'never synced'), ('doc-c', 'lower(subject)', 'theirs');
`;

function journeyAppsCount(file: string, key: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const db = new sqlcipher.Database(file, sqlcipher.OPEN_READONLY, (err) => { if (err) reject(err); });
    db.serialize(() => {
      db.run(`PRAGMA key = "x'${key.toString('hex')}'"`);
      db.get('SELECT count(*) AS n FROM document', (err: Error | null, row: { n: number }) => {
        db.close(() => (err ? reject(err) : resolve(row.n)));
      });
    });
  });
}

describe('import of an original Soledad (SQLCipher 3) database', () => {
  let dir: string;
  let file: string;
  let key: Buffer;
  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'soledad.u1db');
    key = makeKey();
  });
  afterEach(() => removeDir(dir));

  it('the fixture really is the original format: readable by SQLCipher 3 with the passphrase only', () => {
    runLegacySql(file, key, originalSchema('expand referenced') + ORIGINAL_DATA);
    assert.match(runLegacySql(file, key, 'PRAGMA cipher_version;'), /^3\./m);
    assert.match(runLegacySql(file, key, 'SELECT count(*) FROM document;'), /^5$/m);
    // The same key as a raw key (with the closing quote) is not what the file was encrypted with.
    const raw = spawnSync('sqlcipher', ['-batch', file], {
      input: `PRAGMA key = "x'${key.toString('hex')}'";\nSELECT count(*) FROM document;`,
      encoding: 'utf8',
    });
    assert.match(`${raw.stdout}${raw.stderr}`, /not a database/);
    assert.notDeepEqual(fs.readFileSync(file).subarray(0, 16), Buffer.from('SQLite format 3\0', 'latin1'));
  });

  for (const indexStorage of ['expand referenced', 'expand referenced encrypted']) {
    it(`converts in place and keeps everything (index_storage '${indexStorage}')`, async () => {
      runLegacySql(file, key, originalSchema(indexStorage) + ORIGINAL_DATA);
      const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
      try {
        assert.equal(db.importedFromSqlcipher3, true);
        assert.equal(db.replicaUid, REPLICA);
        assert.deepEqual(db.getDoc('doc-a')!.content, { subject: 'hello', tags: ['x', 'y'] });
        assert.equal(db.getDoc('doc-a')!.rev, `${REPLICA}:2`);
        assert.equal(db.getDoc('doc-gone'), null);
        assert.equal(db.getDoc('doc-gone', true)!.rev, `${REPLICA}:2`);
        assert.equal(db.getDoc('doc-local')!.syncable, false);
        assert.equal(db.getDoc('doc-b')!.syncable, true);
        assert.equal(db.getDoc('doc-c')!.hasConflicts, true);
        assert.deepEqual(db.getDocConflicts('doc-c').map((d) => [d.rev, d.content]), [['other:1', { subject: 'theirs' }], [`${REPLICA}:1`, { subject: 'mine' }]]);
        assert.deepEqual(db.getGenerationInfo(), { generation: 8, transactionId: 'T-c2' });
        db.validateGenAndTransId(4, 'T-a2');
        assert.deepEqual(db.whatsChanged(0, { syncableOnly: true }).changes.map((c) => c.docId), ['doc-b', 'doc-a', 'doc-gone', 'doc-c']);
        assert.deepEqual(db.getReplicaGenAndTransId('server-replica'), { generation: 12, transactionId: 'T-server12' });
        assert.deepEqual(db.listIndexes(), [['by-subject', ['lower(subject)']]]);
        assert.deepEqual(db.getFromIndex('by-subject', '*').map((d) => d.docId), ['doc-a', 'doc-local', 'doc-c', 'doc-b']);

        // And it carries on: new writes continue the generation log and the indexes.
        const doc = db.getDoc('doc-b')!;
        doc.content = { subject: 'Aardvark' };
        db.putDoc(doc);
        assert.equal(doc.rev, `${REPLICA}:2`);
        assert.equal(db.getGeneration(), 9);
        assert.deepEqual(db.getFromIndex('by-subject', 'a*').map((d) => d.docId), ['doc-b']);
        db.resolveDoc(db.getDoc('doc-c')!, ['other:1', `${REPLICA}:1`]);
        assert.equal(db.getDoc('doc-c')!.hasConflicts, false);
        assert.deepEqual(db.rawQuery('PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
        assert.deepEqual(db.rawQuery('PRAGMA page_size'), [{ page_size: 4096 }]);
      } finally {
        db.close();
      }
      assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes(IMPORT_TEMP_SUFFIX) || n.includes(IMPORT_BACKUP_SUFFIX)), []);
      // The file is now our format: an independent SQLCipher 4 reads it with the raw key...
      assert.equal(await journeyAppsCount(file, key), 5);
      // ...and a second open is a plain open.
      const again = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
      assert.equal(again.importedFromSqlcipher3, false);
      assert.equal(again.getDoc('doc-b')!.content!.subject, 'Aardvark');
      again.close();
    });
  }

  it('refuses a wrong key and leaves the original untouched', () => {
    runLegacySql(file, key, originalSchema('expand referenced') + ORIGINAL_DATA);
    const before = fs.readFileSync(file);
    assert.throws(() => LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key: makeKey() } }), DatabaseKeyError);
    assert.deepEqual(fs.readFileSync(file), before);
    assert.deepEqual(fs.readdirSync(dir), ['soledad.u1db']);
  });

  it('recovers from an interrupted import (left-over temp file or backup)', () => {
    runLegacySql(file, key, originalSchema('expand referenced') + ORIGINAL_DATA);
    // Crash before the rename: a partial temp file and a backup link beside the untouched original.
    fs.writeFileSync(file + IMPORT_TEMP_SUFFIX, 'partial garbage');
    fs.linkSync(file, file + IMPORT_BACKUP_SUFFIX);
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    assert.equal(db.importedFromSqlcipher3, true);
    assert.equal(db.getAllDocs().docs.length, 4);
    db.close();
    assert.deepEqual(fs.readdirSync(dir).filter((n) => !n.endsWith('-wal') && !n.endsWith('-shm')), ['soledad.u1db']);

    // Crash after the rename but before the backup was removed: the next open finishes the job.
    fs.writeFileSync(file + IMPORT_BACKUP_SUFFIX, 'old original');
    const again = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    assert.equal(again.importedFromSqlcipher3, false);
    again.close();
    assert.equal(fs.existsSync(file + IMPORT_BACKUP_SUFFIX), false);
  });

  it('imports a large original database without losing a row', () => {
    const rows: string[] = [];
    for (let i = 0; i < 2000; i++) {
      rows.push(`INSERT INTO document VALUES ('d${i}', '${REPLICA}:1', '{"i": ${i}, "pad": "${'p'.repeat(300)}"}', ${i % 2});`);
      rows.push(`INSERT INTO transaction_log (doc_id, transaction_id) VALUES ('d${i}', 'T-${i}');`);
    }
    runLegacySql(file, key, `${originalSchema('expand referenced')}BEGIN;\n${rows.join('\n')}\nCOMMIT;`);
    const db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key } });
    try {
      const { generation, docs } = db.getAllDocs();
      assert.equal(generation, 2000);
      assert.equal(docs.length, 2000);
      assert.equal(docs.filter((d) => d.syncable).length, 1000);
      assert.deepEqual(db.getDoc('d1999')!.content, { i: 1999, pad: 'p'.repeat(300) });
      assert.equal(db.createDoc({ after: true }).rev, `${REPLICA}:1`);
      assert.equal(db.getGeneration(), 2001);
    } finally {
      db.close();
    }
  });
});
