/**
 * User databases of the embedded engine: one SQLite file per user under `<data_dir>/users/`, holding the
 * U1DB replica of opaque ciphertext (documents, transaction log, sync log).
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3-multiple-ciphers';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BackendNotReadyError, DatabaseClosedError, DatabaseDoesNotExistError } from '../../../common/errors.js';
import { makeReplicaUid, makeTransactionId } from '../../../common/u1db/ids.js';
import {
  assertUserDbName,
  decidePutIfNewer,
  docSizeBytes,
  KeyedMutex,
  validateGenAndTransId,
  validateSource,
} from '../common.js';
import type {
  Change,
  ChangesSince,
  DocumentStore,
  GenerationInfo,
  IncomingDoc,
  PutBatchResult,
  PutOutcome,
  StoredDoc,
  SentDoc,
  SyncInfoRecord,
  UploadSession,
} from '../types.js';
import { WalCheckpointer } from './checkpointer.js';
import { buildDatabaseFile, SpareDatabases } from './spares.js';
import { HandleCache, openSqlite, type Db } from './connection.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS u1db_config (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
  doc_id TEXT PRIMARY KEY, rev TEXT NOT NULL, content TEXT, generation INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS documents_changes ON documents (generation, doc_id);
CREATE TABLE IF NOT EXISTS transaction_log (generation INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, transaction_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sync_log (
  replica_uid TEXT PRIMARY KEY, known_generation INTEGER NOT NULL, known_transaction_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
`;
const SCHEMA_VERSION = '2';

/**
 * Page size of new user databases (existing files keep theirs). Documents are ciphertext of a few KB to a few MB: in
 * 4 KiB pages a 5 KB document takes an overflow page of its own and every page costs a WAL frame, with its header,
 * checksum and write. With 16 KiB pages, storing 10,000 documents of 5 KB (as encrypted on the wire) took 96 ms
 * instead of 159 ms, reading them back 47 instead of 58 ms, and committing a 2.7 MB upload 1.9 instead of 2.7 ms;
 * a small update writes its few pages into the WAL at 16 KiB each, which costs no measurable time.
 */
const USER_DB_PAGE_SIZE = 16 * 1024;

/**
 * Documents of at least this many bytes (the `size` column) are read for a download as their stored UTF-8 bytes:
 * a string would be decoded here and encoded again on its way out. Smaller ones stay strings: a buffer apiece for
 * 10,000 documents of 5 KB made the garbage collector's work and the reads cost more than the decoding saved
 * (about 0.3 s more server time for that initial sync).
 */
const SEND_AS_BYTES_FROM = 64 * 1024;

/**
 * Version 2 indexes the documents by (generation, doc_id) instead of generation alone: "what changed since" is then
 * answered from the index, without visiting each document's row (a page or more apiece next to its content). For
 * 10,000 documents of 5 KB that query went from about 50 ms to 15 ms.
 */
const MIGRATE_1_TO_2 = `
CREATE INDEX IF NOT EXISTS documents_changes ON documents (generation, doc_id);
DROP INDEX IF EXISTS documents_by_generation;
UPDATE u1db_config SET value = '2' WHERE name = 'schema_version';
`;

/**
 * Bring a database written by an older version of this server up to {@link SCHEMA_VERSION}, reading the version
 * through the connection's own `u1db_config` statement (SQLite re-prepares statements after the schema changes).
 */
function migrate(db: Db, config: Database.Statement<[string], { value: string }>): void {
  const version = (): string | undefined => config.get('schema_version')?.value;
  if (version() === SCHEMA_VERSION) return;
  db.transaction(() => {
    // Checked again inside the write transaction: another connection may have migrated meanwhile.
    const v = version();
    if (v === '1') db.exec(MIGRATE_1_TO_2);
    else if (v !== SCHEMA_VERSION) throw new BackendNotReadyError(`A user database has schema version ${String(v)}; this server knows only ${SCHEMA_VERSION}`);
  }).immediate();
}

interface DocRow { rev: string; content: string | null; size: number }
interface GenRow { generation: number; transaction_id: string }
interface SyncRow { known_generation: number; known_transaction_id: string }

function prepareStatements(db: Db) {
  return {
    config: db.prepare<[string], { value: string }>('SELECT value FROM u1db_config WHERE name = ?'),
    lastGen: db.prepare<[], GenRow>('SELECT generation, transaction_id FROM transaction_log ORDER BY generation DESC LIMIT 1'),
    transAt: db.prepare<[number], { transaction_id: string }>('SELECT transaction_id FROM transaction_log WHERE generation = ?'),
    getDoc: db.prepare<[string], DocRow>('SELECT rev, content, size FROM documents WHERE doc_id = ?'),
    putDoc: db.prepare<[string, string, string | Buffer | null, number, number]>(
      // Content given as UTF-8 bytes is stored as the same TEXT (the cast copies them unchanged), not decoded.
      `INSERT INTO documents (doc_id, rev, content, generation, size) VALUES (?, ?, CAST(? AS TEXT), ?, ?)
       ON CONFLICT (doc_id) DO UPDATE SET rev = excluded.rev, content = excluded.content,
       generation = excluded.generation, size = excluded.size`),
    log: db.prepare<[number, string, string]>('INSERT INTO transaction_log (generation, doc_id, transaction_id) VALUES (?, ?, ?)'),
    getSync: db.prepare<[string], SyncRow>('SELECT known_generation, known_transaction_id FROM sync_log WHERE replica_uid = ?'),
    setSync: db.prepare<[string, number, string]>(
      `INSERT INTO sync_log (replica_uid, known_generation, known_transaction_id) VALUES (?, ?, ?)
       ON CONFLICT (replica_uid) DO UPDATE SET known_generation = excluded.known_generation,
       known_transaction_id = excluded.known_transaction_id`),
    usage: db.prepare<[], { bytes: number }>('SELECT bytes FROM usage WHERE id = 1'),
    addUsage: db.prepare<[number]>('UPDATE usage SET bytes = bytes + ? WHERE id = 1'),
    // Rows as arrays: a download lists every document changed since the client's generation before its first byte.
    changes: db.prepare<[number], [string, number, string]>(
      `SELECT d.doc_id, d.generation, t.transaction_id FROM documents d
       JOIN transaction_log t ON t.generation = d.generation WHERE d.generation > ? ORDER BY d.generation`).raw(true),
    // What a download sends of each document (without the size the writers need).
    getSent: db.prepare<[string], [string, string | null]>('SELECT rev, content FROM documents WHERE doc_id = ?').raw(true),
    // The same, with a large document's content as its stored UTF-8 bytes (a cast from TEXT to BLOB copies them
    // unchanged): see getDocsToSend.
    getToSend: db.prepare<[number, string], [string, string | Buffer | null]>(
      'SELECT rev, CASE WHEN size >= ? THEN CAST(content AS BLOB) ELSE content END FROM documents WHERE doc_id = ?')
      .raw(true),
  };
}

/** One open user database with its prepared statements; every method is synchronous. */
class UserDb {
  readonly replicaUid: string;
  private readonly s: ReturnType<typeof prepareStatements>;

  constructor(readonly db: Db) {
    this.s = prepareStatements(db);
    migrate(db, this.s.config);
    const uid = this.s.config.get('replica_uid');
    if (uid === undefined) throw new DatabaseDoesNotExistError('The database file has no replica uid');
    this.replicaUid = uid.value;
  }

  static initialize(db: Db): void {
    db.transaction(() => {
      db.exec(SCHEMA);
      db.prepare('INSERT OR IGNORE INTO u1db_config (name, value) VALUES (?, ?)').run('replica_uid', makeReplicaUid());
      db.prepare('INSERT OR IGNORE INTO u1db_config (name, value) VALUES (?, ?)').run('schema_version', SCHEMA_VERSION);
      db.prepare('INSERT OR IGNORE INTO usage (id, bytes) VALUES (1, 0)').run();
    })();
  }

  close(): void {
    this.db.close();
  }

  generationInfo(): GenerationInfo {
    const row = this.s.lastGen.get();
    return row === undefined ? { generation: 0, transactionId: '' } : { generation: row.generation, transactionId: row.transaction_id };
  }

  transIdAt(generation: number): string | undefined {
    return this.s.transAt.get(generation)?.transaction_id;
  }

  sourceKnown(source: string): GenerationInfo {
    const row = this.s.getSync.get(source);
    return row === undefined ? { generation: 0, transactionId: '' } : { generation: row.known_generation, transactionId: row.known_transaction_id };
  }

  setSourceKnown(source: string, generation: number, transactionId: string): void {
    this.s.setSync.run(source, generation, transactionId);
  }

  usageBytes(): number {
    return this.s.usage.get()?.bytes ?? 0;
  }

  getDoc(id: string): DocRow | undefined {
    return this.s.getDoc.get(id);
  }

  /** Revision and content of a document, as a download sends them. */
  getSent(id: string): StoredDoc | undefined {
    const row = this.s.getSent.get(id);
    return row === undefined ? undefined : { id, rev: row[0], content: row[1] };
  }

  getToSend(id: string): SentDoc | undefined {
    const row = this.s.getToSend.get(SEND_AS_BYTES_FROM, id);
    return row === undefined ? undefined : { id, rev: row[0], content: row[1] };
  }

  /**
   * The batch logic; the caller provides the transaction. The source's position and the usage change are kept in
   * memory and written once at the end: inside the transaction that is the same as writing them per document.
   */
  applyBatch(source: string, docs: readonly IncomingDoc[]): PutBatchResult {
    const outcomes: PutOutcome[] = [];
    let { generation, transactionId } = this.generationInfo();
    const known: { generation: number; transactionId: string } = { ...this.sourceKnown(source) };
    let usageDelta = 0;
    for (const doc of docs) {
      const cur = this.getDoc(doc.id) ?? null;
      validateSource(known, doc.gen, doc.transId);
      const decision = decidePutIfNewer(cur, { rev: doc.rev, content: doc.content }, this.replicaUid);
      if (decision.storeRev !== null) {
        generation += 1;
        transactionId = makeTransactionId();
        const size = docSizeBytes(doc.id, decision.storeRev, doc.content);
        this.s.log.run(generation, doc.id, transactionId);
        this.s.putDoc.run(doc.id, decision.storeRev, doc.content, generation, size);
        usageDelta += size - (cur === null ? 0 : cur.size);
      }
      known.generation = doc.gen;
      known.transactionId = doc.transId;
      outcomes.push({ id: doc.id, state: decision.state, atGeneration: generation });
    }
    if (docs.length > 0) this.setSourceKnown(source, known.generation, known.transactionId);
    if (usageDelta !== 0) this.s.addUsage.run(usageDelta);
    return { outcomes, generation, transactionId };
  }

  changesSince(generation: number): ChangesSince {
    return this.db.transaction((): ChangesSince => {
      const info = this.generationInfo();
      const changes: Change[] = this.s.changes.all(generation).map(([id, gen, transactionId]) => ({
        id, generation: gen, transactionId,
      }));
      return { ...info, changes };
    })();
  }
}

/**
 * Write an empty user database at `file` (no one else sees it yet): no journal and no syncs while building, so a
 * crash leaves only a stray file; switched to WAL here, where it costs no sync, so that the first real opens do not
 * each pay for a journaled header change. The caller syncs it before it is used (`buildDatabaseFile`).
 */
function createEmptyUserDb(file: string): void {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma(`page_size = ${USER_DB_PAGE_SIZE}`);
    UserDb.initialize(db);
    db.pragma('journal_mode = WAL');
  } finally {
    db.close();
  }
}

function openUserDb(file: string): UserDb {
  // Checkpoints run off the request path (WalCheckpointer): each write asks for one.
  const db = openSqlite(file, { mustExist: true, autoCheckpoint: false });
  try {
    return new UserDb(db);
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Options of {@link SqliteDocumentStore}. */
export interface SqliteDocumentStoreOptions {
  /** Directory of the per-user files. */
  readonly dir: string;
  /** Most user databases kept open at once (least recently used ones are closed). */
  readonly maxOpen: number;
  /** Empty databases kept ready for new users (default {@link DEFAULT_SPARE_DATABASES}; 0: built when needed). */
  readonly spareDatabases?: number;
}

/** Spare databases kept ready, so that a new user's first sync does not wait for a disk sync (see spares.ts). */
export const DEFAULT_SPARE_DATABASES = 2;

/**
 * {@link DocumentStore} on one SQLite file per user. Writers to one database are serialized by an in-process
 * mutex; an upload session writes through its own connection so readers keep seeing only committed data.
 */
export class SqliteDocumentStore implements DocumentStore {
  private readonly dir: string;
  private readonly cache: HandleCache<UserDb>;
  /**
   * Writer connections between uploads, at most one per database (uploads of a database take turns). Opening one
   * per upload cost more than a small upload itself (WAL set-up, statements, and a checkpoint with an fsync when
   * the last connection closed). A connection in use is taken out of this cache, so eviction never closes it.
   */
  private readonly idleWriters: HandleCache<UserDb>;
  private readonly writers = new KeyedMutex();
  private readonly checkpointer = new WalCheckpointer();
  private readonly sessions = new Set<SqliteUploadSession>();
  private readonly spares: SpareDatabases;
  private sparesClosed: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: SqliteDocumentStoreOptions) {
    this.dir = options.dir;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.cache = new HandleCache(options.maxOpen);
    this.idleWriters = new HandleCache(options.maxOpen);
    this.spares = new SpareDatabases(path.join(this.dir, '.spare'), options.spareDatabases ?? DEFAULT_SPARE_DATABASES,
      createEmptyUserDb);
  }

  private file(dbName: string): string {
    return path.join(this.dir, `${dbName}.db`);
  }

  /** Ask for a checkpoint of a database just written to (see {@link WalCheckpointer}). */
  private checkpointSoon(dbName: string): void {
    this.checkpointer.request(this.file(dbName), () => {
      this.handle(dbName).db.pragma('wal_checkpoint(PASSIVE)');
    });
  }

  private handle(dbName: string): UserDb {
    if (this.closed) throw new DatabaseClosedError();
    this.spares.used();
    assertUserDbName(dbName);
    return this.cache.get(dbName, () => {
      const file = this.file(dbName);
      if (!existsSync(file)) throw new DatabaseDoesNotExistError();
      return openUserDb(file);
    });
  }

  async ensureDatabase(dbName: string): Promise<{ replicaUid: string; created: boolean }> {
    assertUserDbName(dbName);
    return this.writers.run(dbName, async () => {
      if (existsSync(this.file(dbName))) return { replicaUid: this.handle(dbName).replicaUid, created: false };
      // A spare built ahead, or one built now: aside, then renamed into place, so that no reader ever sees a
      // half-initialized database.
      if (!this.renameSpare(this.file(dbName))) {
        const tmp = `${this.file(dbName)}.creating-${randomBytes(6).toString('hex')}`;
        await buildDatabaseFile(tmp, createEmptyUserDb);
        renameSync(tmp, this.file(dbName));
      }
      return { replicaUid: this.handle(dbName).replicaUid, created: true };
    });
  }

  /** Move a spare database to `file`; false when there is none (or another process on this directory took it). */
  private renameSpare(file: string): boolean {
    for (let spare = this.spares.take(); spare !== null; spare = this.spares.take()) {
      try {
        renameSync(spare, file);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return false;
  }

  async databaseExists(dbName: string): Promise<boolean> {
    assertUserDbName(dbName);
    return existsSync(this.file(dbName));
  }

  async deleteDatabase(dbName: string): Promise<boolean> {
    assertUserDbName(dbName);
    await this.checkpointer.settled(this.file(dbName));
    return this.writers.run(dbName, () => {
      this.cache.drop(dbName);
      this.idleWriters.drop(dbName);
      const file = this.file(dbName);
      const existed = existsSync(file);
      for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
      return existed;
    });
  }

  async getSyncInfo(dbName: string, sourceReplicaUid: string): Promise<SyncInfoRecord> {
    const h = this.handle(dbName);
    const { generation, transactionId } = h.generationInfo();
    const known = h.sourceKnown(sourceReplicaUid);
    return {
      replicaUid: h.replicaUid, generation, transactionId,
      sourceGeneration: known.generation, sourceTransactionId: known.transactionId,
    };
  }

  async recordSyncInfo(dbName: string, sourceReplicaUid: string, generation: number, transactionId: string): Promise<void> {
    this.handle(dbName);
    await this.writers.run(dbName, () => this.handle(dbName).setSourceKnown(sourceReplicaUid, generation, transactionId));
    this.checkpointSoon(dbName);
  }

  async validateGenAndTransId(dbName: string, generation: number, transactionId: string): Promise<void> {
    const h = this.handle(dbName);
    validateGenAndTransId(generation, transactionId, generation === 0 ? '' : h.transIdAt(generation));
  }

  async putDocsIfNewer(dbName: string, sourceReplicaUid: string, docs: readonly IncomingDoc[]): Promise<PutBatchResult> {
    this.handle(dbName);
    const result = await this.writers.run(dbName, () => {
      const h = this.handle(dbName);
      return h.db.transaction(() => h.applyBatch(sourceReplicaUid, docs)).immediate();
    });
    this.checkpointSoon(dbName);
    return result;
  }

  async openUpload(dbName: string, sourceReplicaUid: string): Promise<UploadSession> {
    this.handle(dbName);
    const release = await this.writers.lock(dbName);
    let conn: UserDb | undefined;
    try {
      const file = this.file(dbName);
      if (!existsSync(file)) throw new DatabaseDoesNotExistError();
      conn = this.idleWriters.take(dbName) ?? openUserDb(file);
      conn.db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      conn?.close();
      release();
      throw err;
    }
    const writer = conn;
    const session = new SqliteUploadSession(writer, sourceReplicaUid, (committed) => {
      this.sessions.delete(session);
      if (committed) this.checkpointSoon(dbName);
      try {
        // Kept for the next upload only when it is cleanly out of its transaction, without its page cache (idle
        // writers of many users would otherwise hold megabytes each).
        if (!this.closed && writer.db.open && !writer.db.inTransaction) {
          writer.db.pragma('shrink_memory');
          this.idleWriters.put(dbName, writer);
        } else {
          writer.close();
        }
      } finally {
        release();
      }
    });
    this.sessions.add(session);
    return session;
  }

  async whatsChanged(dbName: string, generation: number): Promise<ChangesSince> {
    return this.handle(dbName).changesSince(generation);
  }

  async *getDocs(dbName: string, ids: Iterable<string>): AsyncIterable<StoredDoc> {
    for (const id of ids) {
      // Looked up per document: the handle may have been evicted while the consumer was waiting.
      const doc = this.handle(dbName).getSent(id);
      if (doc !== undefined) yield doc;
    }
  }

  async *getDocsToSend(dbName: string, ids: Iterable<string>): AsyncIterable<SentDoc> {
    for (const id of ids) {
      const doc = this.handle(dbName).getToSend(id);
      if (doc !== undefined) yield doc;
    }
  }

  async usageBytes(dbName: string): Promise<number> {
    return this.handle(dbName).usageBytes();
  }

  /** Abort open uploads and close every file. */
  close(): void {
    this.closed = true;
    this.sparesClosed = this.spares.close();
    this.checkpointer.close();
    for (const s of [...this.sessions]) s.abortSync();
    this.cache.closeAll();
    this.idleWriters.closeAll();
  }

  /** Resolves once the background work of a closed store (a spare database being built) has ended. */
  settled(): Promise<void> {
    return this.sparesClosed;
  }
}

class SqliteUploadSession implements UploadSession {
  private state: 'open' | 'failed' | 'done' = 'open';

  constructor(
    private readonly conn: UserDb,
    private readonly source: string,
    private readonly onFinish: (committed: boolean) => void,
  ) {}

  async putDocsIfNewer(docs: readonly IncomingDoc[]): Promise<PutBatchResult> {
    this.assertOpen();
    try {
      return this.conn.applyBatch(this.source, docs);
    } catch (err) {
      // Part of the batch may be applied: only abort is meaningful now.
      this.state = 'failed';
      throw err;
    }
  }

  async usageBytes(): Promise<number> {
    this.assertOpen();
    return this.conn.usageBytes();
  }

  async commit(): Promise<GenerationInfo> {
    this.assertOpen();
    try {
      this.conn.db.exec('COMMIT');
      this.committed = true;
      const info = this.conn.generationInfo();
      this.state = 'done';
      return info;
    } catch (err) {
      this.state = 'failed';
      throw err;
    } finally {
      if (this.state !== 'open') this.finish();
    }
  }

  async abort(): Promise<void> {
    this.abortSync();
  }

  abortSync(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    try {
      if (this.conn.db.open && this.conn.db.inTransaction) this.conn.db.exec('ROLLBACK');
    } finally {
      this.finish();
    }
  }

  private finished = false;
  private committed = false;

  /** Hand the connection back (the store keeps or closes it) and release the database's write lock. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onFinish(this.committed);
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new DatabaseClosedError('This upload session is finished; abort it');
  }
}
