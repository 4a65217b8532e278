/**
 * The client database schema: the original Soledad 0.10 / U1DB 13.09 tables, column for column (fact sheet §2c),
 * so that an original database imported through the SQLCipher 3 path keeps working unchanged, plus a few additions
 * of ours (service tokens, lookup indexes) that an original database receives on first open.
 */
import type Database from 'better-sqlite3-multiple-ciphers';
import { InvalidReplicaUidError, NotSupportedError } from '../../common/errors.js';
import { isValidReplicaUid, makeReplicaUid } from '../../common/u1db/ids.js';

/**
 * Version of our additions to the U1DB schema, stored in `u1db_config` under {@link SCHEMA_VERSION_KEY}.
 * U1DB's own `sql_schema` stays `'0'` so the tables remain what an original client expects.
 *
 * @example
 * db.prepare('SELECT value FROM u1db_config WHERE name = ?').pluck().get(SCHEMA_VERSION_KEY); // '2'
 */
export const SCHEMA_VERSION = 2;

/** `u1db_config` key holding {@link SCHEMA_VERSION}; absent in a database written by the original Soledad. */
export const SCHEMA_VERSION_KEY = 'soledad_ts_schema';

/**
 * The index storage flavour U1DB records in `u1db_config.index_storage`: index values are stored per expression
 * ("expand referenced") in `document_fields`, with the whole expression text as `field_name`.
 */
export const INDEX_STORAGE = 'expand referenced';

// U1DB 13.09 `dbschema.sql`, plus Soledad's `syncable` column (added by ALTER TABLE in the original, hence last).
const U1DB_TABLES = [
  `CREATE TABLE transaction_log (
    generation INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    transaction_id TEXT NOT NULL
  )`,
  `CREATE TABLE document (
    doc_id TEXT PRIMARY KEY,
    doc_rev TEXT NOT NULL,
    content TEXT,
    syncable BOOL NOT NULL DEFAULT 1
  )`,
  `CREATE TABLE document_fields (
    doc_id TEXT NOT NULL,
    field_name TEXT NOT NULL,
    value TEXT
  )`,
  `CREATE INDEX document_fields_field_value_doc_idx ON document_fields(field_name, value, doc_id)`,
  `CREATE TABLE sync_log (
    replica_uid TEXT PRIMARY KEY,
    known_generation INTEGER,
    known_transaction_id TEXT
  )`,
  `CREATE TABLE conflicts (
    doc_id TEXT,
    doc_rev TEXT,
    content TEXT,
    CONSTRAINT conflicts_pkey PRIMARY KEY (doc_id, doc_rev)
  )`,
  `CREATE TABLE index_definitions (
    name TEXT,
    offset INT,
    field TEXT,
    CONSTRAINT index_definitions_pkey PRIMARY KEY (name, offset)
  )`,
  `CREATE INDEX index_definitions_field ON index_definitions(field)`,
  `CREATE TABLE u1db_config (
    name TEXT PRIMARY KEY,
    value TEXT
  )`,
];

/**
 * The SQL condition under which a stored `syncable` value means false, as {@link LocalDatabase} reads it (0, '0'
 * or 'false' in any case; the original wrote Python booleans). The partial index below and the query that uses it
 * must spell it identically for SQLite to pick the index.
 */
export const UNSYNCABLE_SQL = "(syncable = 0 OR syncable = '0' OR lower(syncable) = 'false')";

// Our additions. Each statement is idempotent: the same list upgrades an original database or an older version.
const ADDITIONS = [
  // Rewriting a document deletes its index rows by doc_id; without this every put would scan document_fields.
  // (doc_id, field_name) also serves the per-column joins of multi-column index queries.
  `CREATE INDEX IF NOT EXISTS document_fields_doc_field_idx ON document_fields(doc_id, field_name)`,
  // The few documents kept off the server, so that "what changed" need not look up every changed document's row
  // to learn whether it may be sent (version 2).
  `CREATE INDEX IF NOT EXISTS document_unsyncable_idx ON document(doc_id) WHERE ${UNSYNCABLE_SQL}`,
  `CREATE TABLE IF NOT EXISTS service_tokens (
    service TEXT PRIMARY KEY,
    token TEXT NOT NULL
  )`,
];

/** What {@link ensureSchema} found or did. */
export interface SchemaState {
  /** This replica's uid, as stored in `u1db_config`. */
  replicaUid: string;
  /** True when the tables were created by this call. */
  created: boolean;
  /** True when an original Soledad database received our additions in this call. */
  upgraded: boolean;
}

function configValue(db: Database.Database, name: string): string | undefined {
  const row = db.prepare('SELECT value FROM u1db_config WHERE name = ?').pluck().get(name);
  return row === undefined || row === null ? undefined : String(row);
}

function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function userTableCount(db: Database.Database): number {
  return Number(db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .pluck().get());
}

function applyAdditions(db: Database.Database): void {
  const columns = db.prepare('PRAGMA table_info(document)').all() as Array<{ name: string }>;
  // A plain U1DB database (not written by Soledad) has no syncable column; every document was syncable.
  if (!columns.some((c) => c.name === 'syncable')) {
    db.exec('ALTER TABLE document ADD COLUMN syncable BOOL NOT NULL DEFAULT 1');
  }
  for (const sql of ADDITIONS) db.exec(sql);
  db.prepare('INSERT OR REPLACE INTO u1db_config (name, value) VALUES (?, ?)').run(SCHEMA_VERSION_KEY, String(SCHEMA_VERSION));
}

/**
 * Create the schema in an empty database, upgrade an original Soledad database, or check an existing one.
 * Runs in one immediate transaction so that two processes opening a new file at once cannot both initialize it.
 *
 * Throws {@link NotSupportedError} for a file that is not a U1DB database, uses another index storage, or was
 * written by a newer version of this package; {@link InvalidReplicaUidError} for an invalid `newReplicaUid`.
 *
 * @example
 * const { replicaUid, created } = ensureSchema(db, undefined);
 */
export function ensureSchema(db: Database.Database, newReplicaUid: string | undefined): SchemaState {
  if (newReplicaUid !== undefined && !isValidReplicaUid(newReplicaUid)) {
    throw new InvalidReplicaUidError('A replica uid must be non-empty and contain neither ":" nor "|"');
  }
  const run = db.transaction((): SchemaState => {
    let created = false;
    let upgraded = false;
    if (!hasTable(db, 'u1db_config')) {
      if (userTableCount(db) > 0) throw new NotSupportedError('This SQLite file is not a Soledad/U1DB database');
      for (const sql of U1DB_TABLES) db.exec(sql);
      const insert = db.prepare('INSERT INTO u1db_config (name, value) VALUES (?, ?)');
      insert.run('sql_schema', '0');
      insert.run('replica_uid', newReplicaUid ?? makeReplicaUid());
      insert.run('index_storage', INDEX_STORAGE);
      applyAdditions(db);
      created = true;
    }
    const storage = configValue(db, 'index_storage');
    // Older Soledad clients wrote 'expand referenced encrypted': the same storage under another name.
    if (storage === undefined || !storage.startsWith(INDEX_STORAGE)) {
      throw new NotSupportedError(`Unsupported U1DB index storage ${JSON.stringify(storage ?? null)}`);
    }
    const version = configValue(db, SCHEMA_VERSION_KEY);
    if (version === undefined) {
      applyAdditions(db);
      upgraded = true;
    } else if (!/^\d+$/.test(version) || Number(version) > SCHEMA_VERSION) {
      throw new NotSupportedError(`The database schema version ${version} is newer than this software (${SCHEMA_VERSION})`);
    } else if (Number(version) < SCHEMA_VERSION) {
      applyAdditions(db);
    }
    let replicaUid = configValue(db, 'replica_uid');
    if (replicaUid === undefined) {
      replicaUid = newReplicaUid ?? makeReplicaUid();
      db.prepare('INSERT OR REPLACE INTO u1db_config (name, value) VALUES (?, ?)').run('replica_uid', replicaUid);
    }
    return { replicaUid, created, upgraded };
  });
  return run.immediate();
}
