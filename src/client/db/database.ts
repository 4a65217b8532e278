/**
 * The local U1DB replica on SQLCipher: documents, revisions, the generation log, conflicts, the sync log and
 * "expand referenced" indexes, with the semantics of U1DB 13.09 as bundled in Soledad 0.10 (fact sheet §2).
 *
 * Every method is synchronous (better-sqlite3 is); each write is one transaction, and {@link LocalDatabase.transaction}
 * groups several into one atomic unit (nested writes become savepoints). The asynchronous facade lives elsewhere.
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3-multiple-ciphers';
import {
  ConflictedDocError,
  DatabaseClosedError,
  DocumentAlreadyDeletedError,
  DocumentDoesNotExistError,
  DocumentTooBigError,
  IndexDefinitionParseError,
  IndexDoesNotExistError,
  IndexNameTakenError,
  InvalidContentError,
  InvalidDocIdError,
  InvalidGenerationError,
  InvalidJSONError,
  InvalidReplicaUidError,
  InvalidTransactionIdError,
  RevisionConflictError,
} from '../../common/errors.js';
import { Document, parseJsonObject } from '../../common/u1db/document.js';
import { isValidDocId, makeDocId, makeTransactionId } from '../../common/u1db/ids.js';
import {
  checkIndexQueryValues,
  checkIndexRangeValues,
  parseIndexExpression,
  type IndexExpression,
  type IndexRangeBound,
  type IndexRangeInput,
  type IndexValueMatch,
} from '../../common/u1db/index-expression.js';
import type { JsonObject } from '../../common/u1db/json.js';
import { formatRev, incrementRev, isNewer, maximizeAndIncrement, maximizeRevs, parseRev } from '../../common/u1db/vectorclock.js';
import { validateGenAndTransId, validateSource } from '../../common/u1db/sync-source.js';
import { ensureSchema, UNSYNCABLE_SQL } from './schema.js';
import { openSqlCipher, type DatabaseEncryption } from './sqlcipher.js';

/** Options of {@link LocalDatabase.open}. */
export interface LocalDatabaseOptions {
  /** The database file (Soledad calls it `soledad.u1db`); created when missing. */
  path: string;
  /** The raw 32-byte key, or the plaintext mode that only the benchmark uses. */
  encryption: DatabaseEncryption;
  /** Replica uid for a new database (default: a fresh `uuid4().hex`); must match the stored one otherwise. */
  replicaUid?: string;
  /** Largest serialized document, in UTF-8 bytes, that `putDoc` accepts; 0 or absent means no limit. */
  documentSizeLimit?: number;
}

/** Outcome of {@link LocalDatabase.putDocIfNewer} (U1DB `_put_doc_if_newer`). */
export type PutDocState = 'inserted' | 'superseded' | 'converged' | 'conflicted';

/** Options of {@link LocalDatabase.putDocIfNewer}. */
export interface PutDocIfNewerOptions {
  /** Store a conflicting document as the current one, keeping the local one as a conflict. */
  saveConflict: boolean;
  /** The replica the document comes from; with `replicaGen`, validated and recorded in the sync log. */
  replicaUid?: string;
  /** That replica's generation for this document. */
  replicaGen?: number;
  /** That replica's transaction id for `replicaGen` (default `""`). */
  replicaTransId?: string;
  /**
   * `doc.content` as JSON text when the caller already has it (sync: the decrypted text it was parsed from), so
   * it is stored as received instead of being validated and serialized again. It must parse to `doc.content`.
   */
  json?: string;
}

/** One document of {@link LocalDatabase.putDocsIfNewer}, with the source replica's generation it came with. */
export interface IncomingVersion {
  /** The document as received (its `rev` and `hasConflicts` are updated as by `putDocIfNewer`). */
  doc: Document;
  /**
   * `doc.content` as JSON text, as in {@link PutDocIfNewerOptions.json}; or, with `contentUnparsed`, that
   * text's UTF-8 bytes.
   */
  json?: string | Uint8Array;
  /** The source replica's generation for this document. */
  replicaGen: number;
  /** The source replica's transaction id for `replicaGen`. */
  replicaTransId: string;
  /**
   * `true` when the caller has just read, in the same transaction, that no document (not even a tombstone) has this
   * id: the batch then skips reading it again. Wrong, the insert fails and the batch is rolled back.
   */
  knownAbsent?: boolean;
  /**
   * `true` when `doc.content` was left `null` and `json` is the text (or the valid UTF-8 bytes) of a JSON object
   * the caller has already checked (a sync decoded on its worker thread): the batch parses it only where it needs
   * the object (indexes, a conflict's equal-content check) and stores the text as given otherwise.
   */
  contentUnparsed?: boolean;
}

/** Options of {@link LocalDatabase.putDocsIfNewer}. */
export interface PutDocsIfNewerOptions {
  /** As in {@link PutDocIfNewerOptions.saveConflict}. */
  saveConflict: boolean;
  /** The replica the documents come from. */
  replicaUid: string;
}

/** Result of {@link LocalDatabase.putDocsIfNewer}. */
export interface PutDocsIfNewerResult {
  /** The outcome of each document, in order. */
  states: PutDocState[];
  /** This database's generation after the call. */
  generation: number;
}

/** Result of {@link LocalDatabase.putDocIfNewer}. */
export interface PutDocIfNewerResult {
  state: PutDocState;
  /** This database's generation after the call. */
  generation: number;
}

/** A generation and the transaction id that produced it (`""` at generation 0). */
export interface GenerationInfo {
  generation: number;
  transactionId: string;
}

/**
 * A generation of this replica that a server still has to be told it has seen (see
 * {@link LocalDatabase.setPendingSyncRecord}).
 */
export interface PendingSyncRecord {
  /** The server database's replica uid. */
  replicaUid: string;
  /** This replica's generation the server has seen. */
  generation: number;
  /** This replica's transaction id at that generation. */
  transactionId: string;
}

/** `u1db_config` key of the {@link PendingSyncRecord} (a JSON object); the original never reads it. */
const PENDING_SYNC_RECORD_KEY = 'pending_sync_record';

/** One entry of {@link WhatsChanged.changes}: the latest change of a document. */
export interface Change {
  docId: string;
  generation: number;
  transactionId: string;
}

/** Result of {@link LocalDatabase.whatsChanged}. */
export interface WhatsChanged extends GenerationInfo {
  /** Latest change per document after the given generation, in ascending generation order. */
  changes: Change[];
}

/** Options of {@link LocalDatabase.getDocs}. */
export interface GetDocsOptions {
  /** Fill `hasConflicts` (default true); false skips the lookup and reports false. */
  checkForConflicts?: boolean;
  /** Return tombstones too (default false). */
  includeDeleted?: boolean;
}

/** Bind parameters of {@link LocalDatabase.rawQuery} / {@link LocalDatabase.rawOperation}: positional or named. */
export type SqlParams = readonly unknown[] | Readonly<Record<string, unknown>>;

interface DocRow {
  doc_rev: string;
  content: string | null;
  syncable: unknown;
  has_conflicts: number;
}

interface StoredDoc {
  rev: string;
  content: string | null;
  syncable: boolean;
  hasConflicts: boolean;
}

interface FullDocRow extends DocRow {
  doc_id: string;
}

interface ConflictRow {
  doc_rev: string;
  content: string | null;
}

/** Deeper content is refused rather than risking the stack (and it catches cycles). */
const MAX_JSON_DEPTH = 1000;
/** Documents scanned per batch when a new index is filled. */
const INDEX_BATCH = 500;

function assertJsonValue(v: unknown, depth: number): void {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new InvalidJSONError('Document content contains a non-finite number');
      return;
    case 'object': {
      if (v === null) return;
      if (depth > MAX_JSON_DEPTH) throw new InvalidJSONError('Document content is nested too deeply (or cyclic)');
      if (Array.isArray(v)) {
        for (const item of v) assertJsonValue(item, depth + 1);
        return;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        throw new InvalidJSONError('Document content may only contain plain objects, arrays and JSON scalars');
      }
      for (const key of Object.keys(v)) assertJsonValue((v as Record<string, unknown>)[key], depth + 1);
      return;
    }
    default:
      throw new InvalidJSONError(`Document content contains a ${typeof v}, which JSON cannot represent`);
  }
}

/** Serialize content for storage: a JSON object, or null for a tombstone; anything else is InvalidJSONError. */
function serializeContent(content: unknown): string | null {
  if (content === null) return null;
  if (typeof content !== 'object' || Array.isArray(content)) throw new InvalidJSONError('Document content must be a JSON object');
  assertJsonValue(content, 0);
  return JSON.stringify(content);
}

function parseStored(json: string | null): JsonObject | null {
  return json === null ? null : parseJsonObject(json);
}

/** Structural JSON equality, key order ignored (U1DB compares parsed content). */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(x, b[i]));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function sameContent(storedJson: string | null, content: JsonObject | null): boolean {
  if (storedJson === null || content === null) return storedJson === null && content === null;
  return jsonEqual(JSON.parse(storedJson) as unknown, content);
}

/** The original stored Python booleans (1/0); a default may also have been kept as the text 'TRUE'. */
function storedBool(v: unknown): boolean {
  if (v === 0 || v === 0n || v === '0') return false;
  if (typeof v === 'string' && v.toLowerCase() === 'false') return false;
  return true;
}

/**
 * A document's content as stored: JSON text, or (a download decoded on the sync's worker thread) that text's UTF-8
 * bytes, which the statements store as text (`CAST(? AS TEXT)`) without decoding them here; `null` for a tombstone.
 */
type StoredJson = string | Uint8Array | null;

/** Escape GLOB metacharacters so a prefix matches literally (U1DB's `ab*` means "starts with ab"). */
function globPrefix(prefix: string): string {
  return `${prefix.replace(/[*?[]/g, (c) => `[${c}]`)}*`;
}

function checkDocId(docId: unknown): asserts docId is string {
  if (!isValidDocId(docId)) throw new InvalidDocIdError('Document ids must match [a-zA-Z0-9.%_-]+');
}

/** The checks `putDocIfNewer` makes before its transaction; returns the JSON text to store. */
function checkIncoming(
  doc: Document, json: string | Uint8Array | undefined, unparsed = false,
): { incoming: Document & { rev: string }; incomingRev: string; json: StoredJson } {
  if (typeof json !== 'string' && json !== undefined && !unparsed) {
    throw new InvalidContentError('Content as bytes is only taken unparsed');
  }
  checkDocId(doc.docId);
  const incomingRev = doc.rev;
  if (incomingRev === null || incomingRev === '') throw new InvalidContentError('A document from another replica must carry a revision');
  parseRev(incomingRev);
  return {
    incoming: doc as Document & { rev: string },
    incomingRev,
    json: json !== undefined && (doc.content !== null || unparsed) ? json : serializeContent(doc.content),
  };
}

/**
 * The content object of an incoming document, parsed from `json` on first use when it was handed over unparsed
 * (`IncomingVersion.contentUnparsed`); a tombstone's is `null`.
 */
function contentOf(incoming: Document, json: StoredJson): JsonObject | null {
  if (incoming.content === null && json !== null) {
    incoming.content = parseJsonObject(typeof json === 'string' ? json : Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'));
  }
  return incoming.content;
}

function checkGeneration(generation: unknown): asserts generation is number {
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) {
    throw new InvalidGenerationError('A generation is a non-negative integer');
  }
}

/**
 * One U1DB replica in one SQLCipher file.
 *
 * @example
 * const db = LocalDatabase.open({ path: 'soledad.u1db', encryption: { mode: 'encrypted', key } });
 * const doc = db.createDoc({ subject: 'hi' });
 * doc.content!.subject = 'hello';
 * db.putDoc(doc);
 * db.createIndex('by-subject', 'lower(subject)');
 * db.getFromIndex('by-subject', 'hel*'); // [doc]
 * db.close();
 */
export class LocalDatabase {
  /** This replica's uid (`uuid4().hex`), the key of its counter in every revision it writes. */
  readonly replicaUid: string;
  /** The database file. */
  readonly path: string;
  /** True when an original Soledad SQLCipher 3 file was converted to our format by this open. */
  readonly importedFromSqlcipher3: boolean;

  private db: Database.Database | null;
  private sizeLimit: number;
  private readonly s: ReturnType<typeof prepareStatements>;
  private readonly runInTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly dynamic = new Map<string, Database.Statement>();
  /** Index name → expression texts, and the distinct expressions any index uses; reloaded when another connection commits. */
  private indexes = new Map<string, string[]>();
  private expressions: IndexExpression[] = [];
  private seenDataVersion = -1;
  /** Set when a transaction failed: a rolled-back index change may have been cached. */
  private indexCacheStale = false;

  private constructor(db: Database.Database, path: string, replicaUid: string, imported: boolean, sizeLimit: number) {
    this.db = db;
    this.path = path;
    this.replicaUid = replicaUid;
    this.importedFromSqlcipher3 = imported;
    this.sizeLimit = sizeLimit;
    this.s = prepareStatements(db);
    this.runInTransaction = db.transaction((fn: () => unknown) => fn());
    this.refreshIndexCache(true);
  }

  /**
   * Open (or create) the database. Throws {@link DatabaseKeyError} for a wrong key (the file is left untouched),
   * {@link InvalidReplicaUidError} when `replicaUid` differs from the stored one, and `NotSupportedError` for a
   * file that is not a Soledad database or is newer than this software.
   *
   * @example
   * const db = LocalDatabase.open({ path, encryption: { mode: 'encrypted', key }, documentSizeLimit: 1 << 20 });
   */
  static open(opts: LocalDatabaseOptions): LocalDatabase {
    const limit = opts.documentSizeLimit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError('documentSizeLimit must be a non-negative integer');
    const { db, imported } = openSqlCipher(opts.path, opts.encryption, {
      // Our schema additions go into an imported original before it replaces the old file.
      prepareImport: (copy) => ensureSchema(copy, undefined),
    });
    try {
      const state = ensureSchema(db, opts.replicaUid);
      if (opts.replicaUid !== undefined && opts.replicaUid !== state.replicaUid) {
        throw new InvalidReplicaUidError('This database belongs to another replica uid');
      }
      return new LocalDatabase(db, opts.path, state.replicaUid, imported, limit);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Close the connection; later calls throw {@link DatabaseClosedError}. Closing twice is harmless. */
  close(): void {
    if (this.db === null) return;
    this.dynamic.clear();
    this.db.close();
    this.db = null;
  }

  /** True until {@link close}. */
  get isOpen(): boolean {
    return this.db !== null;
  }

  /** Current size limit in bytes (0 = none). */
  get documentSizeLimit(): number {
    return this.sizeLimit;
  }

  /** Change the size limit `putDoc`/`createDoc`/`resolveDoc` enforce (0 = none), like U1DB's `set_document_size_limit`. */
  setDocumentSizeLimit(limit: number): void {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError('The size limit must be a non-negative integer');
    this.sizeLimit = limit;
  }

  // ---------------------------------------------------------------------------------------------- plumbing

  private handle(): Database.Database {
    if (this.db === null) throw new DatabaseClosedError();
    return this.db;
  }

  private write<T>(fn: () => T): T {
    this.handle();
    try {
      return this.runInTransaction.immediate(fn) as T;
    } catch (err) {
      this.indexCacheStale = true;
      throw err;
    }
  }

  private read<T>(fn: () => T): T {
    this.handle();
    return this.runInTransaction.deferred(fn) as T;
  }

  /**
   * Run `fn` as one atomic unit: everything it writes through this database commits together or not at all.
   * `fn` must be synchronous. Nested calls (and every write method called inside) become savepoints, so an error
   * caught inside `fn` undoes only the failed call.
   *
   * @example
   * db.transaction(() => {
   *   for (const doc of batch) db.putDocIfNewer(doc, { saveConflict: true, replicaUid, replicaGen, replicaTransId });
   *   db.setReplicaGenAndTransId(replicaUid, lastGen, lastTransId);
   * });
   */
  transaction<T>(fn: () => T): T {
    return this.write(fn);
  }

  /**
   * Switch this connection to a rollback journal for a bulk write (a large download), until
   * {@link leaveBulkWrite}. In WAL mode SQLCipher encrypts every page into the WAL and, at the checkpoint, decrypts
   * it and encrypts it again into the database; a rollback journal writes new pages once, which halves the cost of
   * filling a fresh replica. Commits then are fully synchronous (`synchronous = FULL`): every acknowledged write is
   * as durable as in WAL mode or more, and a crash leaves a hot journal that the next open rolls back before it
   * switches the file back to WAL.
   *
   * Only possible while no other connection has the file open (leaving WAL needs an exclusive lock): returns false,
   * without waiting and without changing anything, when one has, or inside a transaction.
   *
   * @example
   * const bulk = db.enterBulkWrite();
   * try { applyBatches(); } finally { if (bulk) db.leaveBulkWrite(); }
   */
  enterBulkWrite(): boolean {
    const db = this.handle();
    if (db.inTransaction) return false;
    const timeout = Number(db.pragma('busy_timeout', { simple: true }));
    db.pragma('busy_timeout = 0');
    let mode: unknown;
    try {
      mode = db.pragma('journal_mode = DELETE', { simple: true });
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY') throw err;
      return false;
    } finally {
      db.pragma(`busy_timeout = ${timeout}`);
    }
    if (mode !== 'delete') return false;
    db.pragma('synchronous = FULL');
    return true;
  }

  /**
   * Back to WAL after {@link enterBulkWrite} (harmless when the file already is in WAL mode). Waits for other
   * connections like any write; if one still holds a lock it throws `SQLITE_BUSY` and the file stays in rollback
   * mode with FULL syncs, which is as safe, until the next call or the next open switches it back.
   */
  leaveBulkWrite(): void {
    const db = this.handle();
    // Rollback mode keeps FULL: NORMAL is only safe against power loss with a WAL.
    if (db.pragma('journal_mode = WAL', { simple: true }) === 'wal') db.pragma('synchronous = NORMAL');
  }

  private checkSize(json: string | null): void {
    if (this.sizeLimit > 0 && json !== null && Buffer.byteLength(json, 'utf8') > this.sizeLimit) {
      throw new DocumentTooBigError(`Document is larger than the limit of ${this.sizeLimit} bytes`);
    }
  }

  private readDoc(docId: string, withConflicts: boolean): StoredDoc | undefined {
    const row = (withConflicts ? this.s.getDocWithConflicts : this.s.getDoc).get(docId) as DocRow | undefined;
    if (row === undefined) return undefined;
    return { rev: row.doc_rev, content: row.content, syncable: storedBool(row.syncable), hasConflicts: row.has_conflicts !== 0 };
  }

  /** Revision and syncable flag only (tombstones included), without reading the content. */
  private readRevAndSyncable(docId: string): { rev: string; syncable: boolean } | undefined {
    const row = this.s.getRevAndSyncable.get(docId) as { doc_rev: string; syncable: unknown } | undefined;
    return row === undefined ? undefined : { rev: row.doc_rev, syncable: storedBool(row.syncable) };
  }

  private toDocument(docId: string, stored: StoredDoc): Document {
    return new Document(docId, stored.rev, parseStored(stored.content), stored.hasConflicts, stored.syncable);
  }

  private hasConflicts(docId: string): boolean {
    return this.s.hasConflicts.get(docId) !== undefined;
  }

  /** Reload index definitions if another connection committed since we last looked (or when forced). */
  private refreshIndexCache(force = false): void {
    const version = Number(this.s.dataVersion.get());
    if (!force && !this.indexCacheStale && version === this.seenDataVersion) return;
    this.seenDataVersion = version;
    this.indexCacheStale = false;
    const indexes = new Map<string, string[]>();
    for (const { name, field } of this.s.listIndexDefinitions.all() as Array<{ name: string; field: string }>) {
      const fields = indexes.get(name);
      if (fields === undefined) indexes.set(name, [field]);
      else fields.push(field);
    }
    const texts = new Set<string>();
    for (const fields of indexes.values()) for (const f of fields) texts.add(f);
    const known = new Map(this.expressions.map((e) => [e.text, e]));
    const expressions: IndexExpression[] = [];
    for (const text of texts) {
      const cached = known.get(text);
      if (cached !== undefined) {
        expressions.push(cached);
        continue;
      }
      try {
        expressions.push(parseIndexExpression(text));
      } catch {
        // Only a file written by other software can hold an expression createIndex would refuse. Refusing to open
        // would lock the user out of their documents; instead that index keeps its rows but is not maintained.
      }
    }
    this.expressions = expressions;
    this.indexes = indexes;
  }

  private insertIndexRows(docId: string, content: JsonObject, expressions: readonly IndexExpression[]): void {
    for (const expr of expressions) {
      for (const value of expr.evaluate(content)) this.s.insertField.run(docId, expr.text, value);
    }
  }

  /** Write the current version of a document, its index rows and a transaction-log entry. */
  private store(docId: string, exists: boolean, rev: string, json: StoredJson, content: JsonObject | null, syncable: boolean): void {
    this.refreshIndexCache();
    this.storeWithCachedIndexes(docId, exists, rev, json, content, syncable);
  }

  /**
   * {@link store} without re-reading `PRAGMA data_version`: for a caller that refreshed the index cache inside the
   * write transaction it is in (no other connection can commit before that transaction ends).
   */
  private storeWithCachedIndexes(
    docId: string, exists: boolean, rev: string, json: StoredJson, content: JsonObject | null, syncable: boolean,
  ): void {
    if (exists) {
      this.s.updateDoc.run(rev, json, syncable ? 1 : 0, docId);
      if (this.expressions.length > 0) this.s.deleteFields.run(docId);
    } else {
      this.s.insertDoc.run(docId, rev, json, syncable ? 1 : 0);
    }
    // Tombstones leave every index.
    if (content !== null && this.expressions.length > 0) this.insertIndexRows(docId, content, this.expressions);
    this.s.insertTransaction.run(docId, makeTransactionId());
  }

  private currentGeneration(): number {
    const gen = this.s.maxGeneration.get() as number | null;
    return gen ?? 0;
  }

  private statement(key: string, build: () => string): Database.Statement {
    let stmt = this.dynamic.get(key);
    if (stmt === undefined) {
      stmt = this.handle().prepare(build());
      this.dynamic.set(key, stmt);
    }
    return stmt;
  }

  // ---------------------------------------------------------------------------------------------- documents

  /**
   * Create a document with a new id (`D-<hex>`) or the given one. Throws {@link RevisionConflictError} when a live
   * document already has that id (a tombstone is overwritten, its revision superseded).
   *
   * @example
   * const doc = db.createDoc({ subject: 'hi' }, 'my-id');
   */
  createDoc(content: JsonObject, docId?: string): Document {
    const doc = new Document(docId ?? makeDocId(), null, content);
    this.putDoc(doc);
    return doc;
  }

  /**
   * {@link createDoc} from JSON text, which must be an object ({@link InvalidJSONError} otherwise).
   *
   * @example
   * db.createDocFromJson('{"key": "value"}');
   */
  createDocFromJson(json: string, docId?: string): Document {
    return this.createDoc(parseJsonObject(json), docId);
  }

  /**
   * Store a new version of `doc` and set `doc.rev` to the new revision, which is returned.
   * `doc.rev` must be the stored revision (`null` for a new document, or to re-create over a tombstone, in which
   * case the tombstone's revision is incremented); otherwise {@link RevisionConflictError}. A document with
   * conflicts cannot be put ({@link ConflictedDocError}); resolve them first. `doc.syncable` is stored too.
   *
   * @example
   * doc.content = { subject: 'edited' };
   * const rev = db.putDoc(doc); // === doc.rev
   */
  putDoc(doc: Document): string {
    checkDocId(doc.docId);
    const json = serializeContent(doc.content);
    this.checkSize(json);
    const newRev = this.write(() => {
      const cur = this.readDoc(doc.docId, true);
      if (cur?.hasConflicts) throw new ConflictedDocError();
      let rev: string;
      if (cur !== undefined && doc.rev === null && cur.content === null) {
        rev = incrementRev(cur.rev, this.replicaUid);
      } else {
        if (cur !== undefined ? cur.rev !== doc.rev : doc.rev !== null) throw new RevisionConflictError();
        rev = incrementRev(doc.rev, this.replicaUid);
      }
      this.store(doc.docId, cur !== undefined, rev, json, doc.content, doc.syncable);
      return rev;
    });
    doc.rev = newRev;
    return newRev;
  }

  /**
   * The current version of a document, or `null` when there is none (or it is deleted and `includeDeleted` is false).
   *
   * @example
   * db.getDoc('my-id')?.content;
   */
  getDoc(docId: string, includeDeleted = false): Document | null {
    this.handle();
    const stored = this.readDoc(docId, true);
    if (stored === undefined || (stored.content === null && !includeDeleted)) return null;
    return this.toDocument(docId, stored);
  }

  /**
   * Several documents in the order asked; unknown ids are skipped, tombstones too unless `includeDeleted`.
   *
   * @example
   * db.getDocs(['a', 'b'], { includeDeleted: true });
   */
  getDocs(docIds: readonly string[], opts: GetDocsOptions = {}): Document[] {
    const checkForConflicts = opts.checkForConflicts ?? true;
    const includeDeleted = opts.includeDeleted ?? false;
    return this.read(() => {
      const docs: Document[] = [];
      for (const docId of docIds) {
        const stored = this.readDoc(docId, checkForConflicts);
        if (stored === undefined || (stored.content === null && !includeDeleted)) continue;
        docs.push(this.toDocument(docId, stored));
      }
      return docs;
    });
  }

  /**
   * Revision, stored JSON as UTF-8 bytes and syncable flag of several documents, tombstones included, in the order
   * asked (unknown ids skipped): what sync encrypts, without parsing the content only to serialize it again. Bytes,
   * not text: a batch waiting to be sent then lies outside the JavaScript heap (the garbage collector does not copy
   * it around), and the caller can zero it once it is sent.
   *
   * @example
   * for (const { docId, rev, json } of db.getStoredForSync(ids)) send(docId, rev, json);
   */
  getStoredForSync(docIds: readonly string[]): Array<{ docId: string; rev: string; json: Buffer | null; syncable: boolean }> {
    return this.read(() => {
      const out: Array<{ docId: string; rev: string; json: Buffer | null; syncable: boolean }> = [];
      for (const docId of docIds) {
        const row = this.s.getDocBytes.get(docId) as { doc_rev: string; content: Buffer | null; syncable: unknown } | undefined;
        if (row !== undefined) out.push({ docId, rev: row.doc_rev, json: row.content, syncable: storedBool(row.syncable) });
      }
      return out;
    });
  }

  /**
   * Revision and syncable flag of a document (tombstones included), or `null`: what sync checks before applying
   * a downloaded version, without reading the content.
   *
   * @example
   * const local = db.getRevAndSyncable(id); // { rev: 'r:3', syncable: true } | null
   */
  getRevAndSyncable(docId: string): { rev: string; syncable: boolean } | null {
    this.handle();
    return this.readRevAndSyncable(docId) ?? null;
  }

  /**
   * {@link getRevAndSyncable} of several documents at once, read in one transaction (per-read locking is most of
   * what a single lookup costs outside WAL mode); unknown ids are absent from the map.
   *
   * @example
   * const local = db.getRevsAndSyncable(['a', 'b']).get('a'); // { rev, syncable } | undefined
   */
  getRevsAndSyncable(docIds: readonly string[]): Map<string, { rev: string; syncable: boolean }> {
    return this.read(() => {
      const out = new Map<string, { rev: string; syncable: boolean }>();
      for (const docId of docIds) {
        const local = this.readRevAndSyncable(docId);
        if (local !== undefined) out.set(docId, local);
      }
      return out;
    });
  }

  /**
   * Every document (tombstones only with `includeDeleted`) and the generation they reflect.
   *
   * @example
   * const { generation, docs } = db.getAllDocs();
   */
  getAllDocs(includeDeleted = false): { generation: number; docs: Document[] } {
    return this.read(() => {
      const generation = this.currentGeneration();
      const docs: Document[] = [];
      for (const row of this.s.allDocs.all() as FullDocRow[]) {
        if (row.content === null && !includeDeleted) continue;
        docs.push(new Document(row.doc_id, row.doc_rev, parseStored(row.content), row.has_conflicts !== 0, storedBool(row.syncable)));
      }
      return { generation, docs };
    });
  }

  /**
   * Delete a document: it becomes a tombstone (content `null`) with a new revision, set on `doc` and returned.
   * Throws {@link DocumentDoesNotExistError}, {@link RevisionConflictError} (stale `doc.rev`),
   * {@link DocumentAlreadyDeletedError} or {@link ConflictedDocError}, checked in that order as U1DB does.
   *
   * @example
   * db.deleteDoc(doc); // doc.content === null
   */
  deleteDoc(doc: Document): string {
    const newRev = this.write(() => {
      const cur = this.readDoc(doc.docId, true);
      if (cur === undefined) throw new DocumentDoesNotExistError();
      if (cur.rev !== doc.rev) throw new RevisionConflictError();
      if (cur.content === null) throw new DocumentAlreadyDeletedError();
      if (cur.hasConflicts) throw new ConflictedDocError();
      const rev = incrementRev(doc.rev, this.replicaUid);
      this.store(doc.docId, true, rev, null, null, doc.syncable);
      return rev;
    });
    doc.rev = newRev;
    doc.makeTombstone();
    return newRev;
  }

  /**
   * Mark a document as one that must never leave this device (or allow it again), without a new revision.
   * Sync reads the flag through `whatsChanged(…, { syncableOnly: true })`; a document made syncable again is sent
   * with its next change.
   *
   * @example
   * db.setDocumentSyncable(doc.docId, false);
   */
  setDocumentSyncable(docId: string, syncable: boolean): void {
    this.write(() => {
      if (this.s.setSyncable.run(syncable ? 1 : 0, docId).changes === 0) throw new DocumentDoesNotExistError();
    });
  }

  // ---------------------------------------------------------------------------------------------- conflicts

  /**
   * The current version (with `hasConflicts` true) followed by the stored conflicting versions ordered by revision
   * text, as the original's SQLite query returns them; `[]` when the document has no conflicts.
   *
   * @example
   * const [current, ...others] = db.getDocConflicts(docId);
   */
  getDocConflicts(docId: string): Document[] {
    return this.read(() => {
      const rows = this.s.conflictsOf.all(docId) as ConflictRow[];
      if (rows.length === 0) return [];
      const conflicts = rows.map((r) => new Document(docId, r.doc_rev, parseStored(r.content), false));
      const cur = this.readDoc(docId, false);
      if (cur === undefined) return conflicts;
      const current = this.toDocument(docId, cur);
      current.hasConflicts = true;
      return [current, ...conflicts];
    });
  }

  /**
   * Resolve conflicts (U1DB `resolve_doc`): `doc` gets revision maximize(current, ...conflictedRevs) + 1 on this
   * replica. If the current revision is among `conflictedRevs`, `doc` becomes the current version; otherwise it is
   * stored as one more conflict. The listed conflicts are removed and `doc.hasConflicts` tells whether any remain.
   *
   * @example
   * const [current, ...others] = db.getDocConflicts(id);
   * current.content = merge(current, others);
   * db.resolveDoc(current, [current.rev!, ...others.map((d) => d.rev!)]);
   */
  resolveDoc(doc: Document, conflictedRevs: readonly string[]): void {
    checkDocId(doc.docId);
    const json = serializeContent(doc.content);
    this.checkSize(json);
    for (const rev of conflictedRevs) parseRev(rev);
    const result = this.write(() => {
      const cur = this.readDoc(doc.docId, false);
      if (cur === undefined) throw new DocumentDoesNotExistError();
      const newRev = maximizeAndIncrement(this.replicaUid, cur.rev, ...conflictedRevs);
      if (conflictedRevs.includes(cur.rev)) {
        this.store(doc.docId, true, newRev, json, doc.content, doc.syncable);
      } else {
        this.s.insertConflict.run(doc.docId, newRev, json);
      }
      for (const rev of conflictedRevs) this.s.deleteConflict.run(doc.docId, rev);
      return { newRev, hasConflicts: this.hasConflicts(doc.docId) };
    });
    doc.rev = result.newRev;
    doc.hasConflicts = result.hasConflicts;
  }

  // ---------------------------------------------------------------------------------------------- sync internals

  /**
   * The current generation (number of writes ever made; 0 for a new database).
   *
   * @example
   * db.getGeneration(); // 0
   */
  getGeneration(): number {
    this.handle();
    return this.currentGeneration();
  }

  /**
   * The current generation and its transaction id (`""` at generation 0).
   *
   * @example
   * const { generation, transactionId } = db.getGenerationInfo();
   */
  getGenerationInfo(): GenerationInfo {
    this.handle();
    const row = this.s.lastTransaction.get() as { generation: number; transaction_id: string } | undefined;
    return row === undefined ? { generation: 0, transactionId: '' } : { generation: row.generation, transactionId: row.transaction_id };
  }

  /**
   * Documents changed after `oldGeneration`: the latest change of each, in ascending generation order, plus the
   * current generation and transaction id. With `syncableOnly`, documents marked not syncable are left out (the
   * returned generation is still the database's).
   *
   * @example
   * const { generation, changes } = db.whatsChanged(lastSyncedGen, { syncableOnly: true });
   */
  whatsChanged(oldGeneration = 0, opts: { syncableOnly?: boolean } = {}): WhatsChanged {
    checkGeneration(oldGeneration);
    return this.read(() => {
      const { generation, transactionId } = this.getGenerationInfo();
      // The log newest first, keeping each document's first (latest) entry: cheaper than GROUP BY plus a join to
      // every changed document's row (about 2.5x for 10,000 changes). Unsyncable documents come from their own
      // small partial index.
      const rows = this.s.changesSince.all(oldGeneration) as Array<[string, number, string]>;
      const skip = opts.syncableOnly === true ? new Set(this.s.unsyncableIds.all() as string[]) : undefined;
      const seen = new Set<string>();
      const changes: Change[] = [];
      for (const [docId, generation, transactionId] of rows) {
        if (seen.has(docId)) continue;
        seen.add(docId);
        if (skip?.has(docId) !== true) changes.push({ docId, generation, transactionId });
      }
      changes.reverse();
      return { generation, transactionId, changes };
    });
  }

  /**
   * Check a generation / transaction id pair another replica claims we had. Generation 0 is always valid; an unknown
   * generation throws {@link InvalidGenerationError}, a different transaction id {@link InvalidTransactionIdError}.
   *
   * @example
   * db.validateGenAndTransId(target.sourceGeneration, target.sourceTransactionId);
   */
  validateGenAndTransId(generation: number, transactionId: string): void {
    checkGeneration(generation);
    this.handle();
    if (generation === 0) return;
    validateGenAndTransId(generation, transactionId, this.s.transactionIdOf.get(generation) as string | undefined);
  }

  /**
   * What the sync log records for another replica: the last generation and transaction id of it we have seen
   * (`0` / `""` when never synced).
   *
   * @example
   * const { generation, transactionId } = db.getReplicaGenAndTransId(serverReplicaUid);
   */
  getReplicaGenAndTransId(otherReplicaUid: string): GenerationInfo {
    this.handle();
    const row = this.s.getSyncLog.get(otherReplicaUid) as { known_generation: number | null; known_transaction_id: string | null } | undefined;
    if (row === undefined) return { generation: 0, transactionId: '' };
    return { generation: row.known_generation ?? 0, transactionId: row.known_transaction_id ?? '' };
  }

  /**
   * Record in the sync log the generation and transaction id of another replica we are now in sync with.
   *
   * @example
   * db.setReplicaGenAndTransId(serverReplicaUid, 42, 'T-…');
   */
  setReplicaGenAndTransId(otherReplicaUid: string, generation: number, transactionId: string): void {
    checkGeneration(generation);
    this.write(() => {
      this.s.setSyncLog.run(otherReplicaUid, generation, transactionId);
    });
  }

  /**
   * Remember, with the sync log, a generation of this replica that a server has seen but has not been told of yet
   * (the documents of a download, which the sync tells it in the background), or forget it (`null`). The next sync
   * reads it ({@link getPendingSyncRecord}) and tells the server if the answer never reached it, so that it does not
   * send those documents back.
   *
   * @example
   * db.transaction(() => {
   *   db.setReplicaGenAndTransId(serverReplicaUid, 42, 'T-…');
   *   db.setPendingSyncRecord({ replicaUid: serverReplicaUid, ...db.getGenerationInfo() });
   * });
   */
  setPendingSyncRecord(record: PendingSyncRecord | null): void {
    if (record !== null) checkGeneration(record.generation);
    this.write(() => {
      if (record === null) this.s.deleteConfig.run(PENDING_SYNC_RECORD_KEY);
      else this.s.setConfig.run(PENDING_SYNC_RECORD_KEY, JSON.stringify(record));
    });
  }

  /** The record {@link setPendingSyncRecord} left, or `null` (none, or not one this library wrote). */
  getPendingSyncRecord(): PendingSyncRecord | null {
    this.handle();
    const text = this.s.getConfig.get(PENDING_SYNC_RECORD_KEY) as string | null | undefined;
    if (typeof text !== 'string') return null;
    try {
      const value = JSON.parse(text) as Partial<PendingSyncRecord>;
      const { replicaUid, generation, transactionId } = value;
      if (typeof replicaUid !== 'string' || typeof transactionId !== 'string' || !Number.isSafeInteger(generation)
        || generation! < 0) return null;
      return { replicaUid, generation: generation!, transactionId };
    } catch {
      return null;
    }
  }

  private validateSource(replicaUid: string, generation: number, transactionId: string): void {
    validateSource(this.getReplicaGenAndTransId(replicaUid), generation, transactionId);
  }

  /**
   * U1DB `_prune_conflicts`: drop conflicts `doc` supersedes or equals in content; equal ones fold into its rev.
   * `noConflicts` says the caller knows the conflicts table is empty (the lookup is skipped).
   */
  private pruneConflicts(doc: Document & { rev: string }, noConflicts = false): void {
    const rows = noConflicts ? [] : this.s.conflictsOf.all(doc.docId) as ConflictRow[];
    if (rows.length === 0) {
      doc.hasConflicts = false;
      return;
    }
    const clock = parseRev(doc.rev);
    let autoResolved = false;
    for (const c of rows) {
      if (isNewer(formatRev(clock), c.doc_rev)) {
        this.s.deleteConflict.run(doc.docId, c.doc_rev);
      } else if (sameContent(c.content, doc.content)) {
        this.s.deleteConflict.run(doc.docId, c.doc_rev);
        for (const [uid, n] of maximizeRevs(formatRev(clock), c.doc_rev)) clock.set(uid, n);
        autoResolved = true;
      }
    }
    if (autoResolved) {
      clock.set(this.replicaUid, (clock.get(this.replicaUid) ?? 0) + 1);
      doc.rev = formatRev(clock);
    }
    doc.hasConflicts = this.hasConflicts(doc.docId);
  }

  /**
   * Apply a document received from another replica (U1DB `_put_doc_if_newer`, fact sheet §2b):
   * - the source's generation is validated against the sync log first (older → {@link InvalidGenerationError},
   *   same generation with another transaction id → {@link InvalidTransactionIdError});
   * - a newer revision is stored (`inserted`), after pruning the conflicts it supersedes or equals in content
   *   (`superseded` if that auto-resolution changed its revision);
   * - the same revision is `converged`; an older one `superseded` (nothing stored);
   * - concurrent revisions with equal content merge into maximize + 1 on this replica (`superseded`, stored);
   * - otherwise `conflicted`: with `saveConflict` the incoming version becomes current and the local one a conflict.
   * Finally the source's generation and transaction id are recorded. `doc.rev` and `doc.hasConflicts` are updated
   * as U1DB does. No size limit applies: what another replica holds must be accepted.
   *
   * @example
   * const { state } = db.putDocIfNewer(doc, { saveConflict: true, replicaUid: 'server', replicaGen: 7, replicaTransId: 'T-…' });
   */
  putDocIfNewer(doc: Document, opts: PutDocIfNewerOptions): PutDocIfNewerResult {
    const { incoming, incomingRev, json } = checkIncoming(doc, opts.json);
    const { replicaUid, replicaGen } = opts;
    const replicaTransId = opts.replicaTransId ?? '';
    if (replicaGen !== undefined) checkGeneration(replicaGen);
    return this.write(() => {
      if (replicaUid !== undefined && replicaGen !== undefined) this.validateSource(replicaUid, replicaGen, replicaTransId);
      this.refreshIndexCache();
      const state = this.applyIfNewer(incoming, incomingRev, json, opts.saveConflict, false);
      if (replicaUid !== undefined && replicaGen !== undefined) this.s.setSyncLog.run(replicaUid, replicaGen, replicaTransId);
      return { state, generation: this.currentGeneration() };
    });
  }

  /**
   * {@link putDocIfNewer} for a batch of documents from one replica, in one transaction: each is validated against
   * the source generation of the one before it (the first against the sync log) and applied exactly as
   * `putDocIfNewer` would, and the sync log is written once, with the last one's generation. Any error rolls the
   * whole batch back. What sync uses to apply a download: per-document savepoints, sync-log writes and index-cache
   * checks were most of the statements a downloaded document cost.
   *
   * `items` may be lazy (a generator): each is taken, applied and let go before the next is asked for, so a caller
   * that produces them one by one (a download verifying what it received) never holds the whole batch in plaintext.
   *
   * @example
   * const { states } = db.putDocsIfNewer(received.map(({ doc, json, gen, transId }) =>
   *   ({ doc, json, replicaGen: gen, replicaTransId: transId })), { saveConflict: true, replicaUid });
   */
  putDocsIfNewer(items: Iterable<IncomingVersion>, opts: PutDocsIfNewerOptions): PutDocsIfNewerResult {
    const { replicaUid, saveConflict } = opts;
    return this.write(() => {
      this.refreshIndexCache();
      let known = this.getReplicaGenAndTransId(replicaUid);
      // Conflicts only arise in this batch once one is stored: until then the per-document lookup is skipped.
      let noConflicts = this.s.anyConflict.get() === undefined;
      const states: PutDocState[] = [];
      for (const item of items) {
        checkGeneration(item.replicaGen);
        const { incoming, incomingRev, json } = checkIncoming(item.doc, item.json, item.contentUnparsed === true);
        validateSource(known, item.replicaGen, item.replicaTransId);
        const state = this.applyIfNewer(incoming, incomingRev, json, saveConflict, noConflicts, item.knownAbsent === true);
        if (state === 'conflicted' && saveConflict) noConflicts = false;
        states.push(state);
        known = { generation: item.replicaGen, transactionId: item.replicaTransId };
      }
      if (states.length > 0) this.s.setSyncLog.run(replicaUid, known.generation, known.transactionId);
      return { states, generation: this.currentGeneration() };
    });
  }

  /** What the index rows of an incoming document need: its object, parsed from unparsed JSON only if there are indexes. */
  private indexedContent(incoming: Document, json: StoredJson): JsonObject | null {
    return this.expressions.length > 0 ? contentOf(incoming, json) : null;
  }

  /** The decision and writes of `_put_doc_if_newer` for one checked document, inside a write transaction. */
  private applyIfNewer(
    incoming: Document & { rev: string },
    incomingRev: string,
    json: StoredJson,
    saveConflict: boolean,
    noConflicts: boolean,
    knownAbsent = false,
  ): PutDocState {
    const cur = knownAbsent ? undefined : this.readDoc(incoming.docId, false);
    if (cur === undefined || isNewer(incomingRev, cur.rev)) {
      this.pruneConflicts(incoming, noConflicts);
      const state = incoming.rev !== incomingRev ? 'superseded' : 'inserted';
      this.storeWithCachedIndexes(incoming.docId, cur !== undefined, incoming.rev, json, this.indexedContent(incoming, json), incoming.syncable);
      return state;
    }
    if (incomingRev === cur.rev) return 'converged';
    if (isNewer(cur.rev, incomingRev)) return 'superseded';
    if (sameContent(cur.content, contentOf(incoming, json))) {
      incoming.rev = maximizeAndIncrement(this.replicaUid, incomingRev, cur.rev);
      this.storeWithCachedIndexes(incoming.docId, true, incoming.rev, json, this.indexedContent(incoming, json), incoming.syncable);
      return 'superseded';
    }
    if (saveConflict) {
      this.pruneConflicts(incoming, noConflicts);
      this.s.insertConflict.run(incoming.docId, cur.rev, cur.content);
      incoming.hasConflicts = true;
      this.storeWithCachedIndexes(incoming.docId, true, incoming.rev, json, this.indexedContent(incoming, json), incoming.syncable);
    }
    return 'conflicted';
  }

  // ---------------------------------------------------------------------------------------------- indexes

  /**
   * Create an index over one or more expressions (fact sheet §2d) and fill it from the existing documents.
   * The same definition again is a no-op; another definition under the same name throws
   * {@link IndexNameTakenError}; a bad expression {@link IndexDefinitionParseError} (nothing is changed).
   *
   * @example
   * db.createIndex('by-tag-year', 'tags', 'number(year, 4)');
   */
  createIndex(name: string, ...expressions: string[]): void {
    if (expressions.length === 0) throw new IndexDefinitionParseError('An index needs at least one expression');
    const parsed = expressions.map((e) => parseIndexExpression(e));
    this.write(() => {
      this.refreshIndexCache();
      const existing = this.indexes.get(name);
      if (existing !== undefined) {
        if (existing.length === expressions.length && existing.every((f, i) => f === expressions[i])) return;
        throw new IndexNameTakenError();
      }
      const known = new Set(this.expressions.map((e) => e.text));
      expressions.forEach((field, offset) => this.s.insertIndexDefinition.run(name, offset, field));
      const fresh: IndexExpression[] = [];
      for (const e of parsed) {
        if (!known.has(e.text)) {
          known.add(e.text);
          fresh.push(e);
        }
      }
      if (fresh.length > 0) {
        let after = 0;
        for (;;) {
          const batch = this.s.liveDocsAfter.all(after, INDEX_BATCH) as Array<{ rowid: number; doc_id: string; content: string }>;
          if (batch.length === 0) break;
          for (const row of batch) {
            const content = parseStored(row.content);
            if (content !== null) this.insertIndexRows(row.doc_id, content, fresh);
          }
          after = batch[batch.length - 1]!.rowid;
        }
      }
      this.refreshIndexCache(true);
    });
  }

  /**
   * Delete an index (no error if it does not exist). Index rows still used by another index are kept.
   *
   * @example
   * db.deleteIndex('by-tag-year');
   */
  deleteIndex(name: string): void {
    this.write(() => {
      this.s.deleteIndexDefinition.run(name);
      this.s.deleteOrphanFields.run();
      this.refreshIndexCache(true);
    });
  }

  /**
   * Every index as `[name, expressions]`, ordered by name.
   *
   * @example
   * db.listIndexes(); // [['by-subject', ['lower(subject)']]]
   */
  listIndexes(): Array<[string, string[]]> {
    this.handle();
    this.refreshIndexCache();
    // The cache is filled in SQLite's order (name, offset), i.e. by name as SQLite compares text.
    return [...this.indexes.entries()].map(([n, f]) => [n, [...f]]);
  }

  private definition(name: string): string[] {
    this.handle();
    this.refreshIndexCache();
    const fields = this.indexes.get(name);
    if (fields === undefined) throw new IndexDoesNotExistError();
    return fields;
  }

  /** WHERE clause and parameters that select index rows column by column (aliases f0, f1, … joined on doc_id). */
  private columnsClause(fields: readonly string[], conditions: ReadonlyArray<{ sql: (col: string) => string; params: unknown[] }>): { where: string; params: unknown[] } {
    const parts: string[] = [];
    const params: unknown[] = [];
    fields.forEach((field, i) => {
      const col = `f${i}`;
      parts.push(`${i > 0 ? `${col}.doc_id = f0.doc_id AND ` : ''}${col}.field_name = ?`);
      params.push(field);
      const cond = conditions[i]!;
      const sql = cond.sql(`${col}.value`);
      if (sql !== '') parts.push(sql);
      params.push(...cond.params);
    });
    return { where: parts.join(' AND '), params };
  }

  private runDocQuery(key: string, fields: readonly string[], conditions: ReadonlyArray<{ sql: (col: string) => string; params: unknown[] }>): Document[] {
    const { where, params } = this.columnsClause(fields, conditions);
    const tables = fields.map((_, i) => `document_fields f${i}`).join(', ');
    const order = fields.map((_, i) => `min(f${i}.value)`).join(', ');
    const stmt = this.statement(`docs:${key}`, () =>
      `SELECT d.doc_id, d.doc_rev, d.content, d.syncable, ` +
      `EXISTS (SELECT 1 FROM conflicts c WHERE c.doc_id = d.doc_id) AS has_conflicts ` +
      `FROM ${tables}, document d WHERE ${where} AND d.doc_id = f0.doc_id ` +
      `GROUP BY d.doc_id ORDER BY ${order}, d.doc_id`);
    return (stmt.all(...params) as FullDocRow[]).map((r) =>
      new Document(r.doc_id, r.doc_rev, parseStored(r.content), r.has_conflicts !== 0, storedBool(r.syncable)));
  }

  private queryConditions(matches: readonly IndexValueMatch[]): Array<{ sql: (col: string) => string; params: unknown[] }> {
    return matches.map((m) => {
      switch (m.kind) {
        case 'exact':
          return { sql: (c) => `${c} = ?`, params: [m.value] };
        case 'prefix':
          // The range lets SQLite seek in the (field_name, value) index; GLOB (case-sensitive) does the exact test.
          return { sql: (c) => `${c} >= ? AND ${c} GLOB ?`, params: [m.prefix, globPrefix(m.prefix)] };
        case 'any':
          return { sql: (c) => `${c} IS NOT NULL`, params: [] };
      }
    });
  }

  /**
   * Documents whose index values match, one value per index column: an exact string, `"ab*"` for "starts with
   * ab" (case-sensitive), or `"*"` for any value. After a wildcard only `"*"` may follow
   * ({@link InvalidGlobbingError}); the count must equal the index width ({@link InvalidValueForIndexError}).
   * Ordered by the index values, then by doc id; tombstones are never returned.
   *
   * @example
   * db.getFromIndex('by-tag-year', 'work', '20*');
   */
  getFromIndex(name: string, ...values: string[]): Document[] {
    const fields = this.definition(name);
    const matches = checkIndexQueryValues(fields.length, values);
    return this.runDocQuery(`q:${matches.map((m) => m.kind).join(',')}`, fields, this.queryConditions(matches));
  }

  /**
   * Documents whose index values fall in an inclusive range. Each bound is one string (single-column index) or
   * one string per column, or `null`/omitted for unbounded. A trailing `*` in a start value is dropped; in an end
   * value `"ab*"` includes everything starting with `ab`; `"*"` accepts any value. Columns are bounded
   * independently, as in U1DB. Ordered like {@link getFromIndex}.
   *
   * @example
   * db.getRangeFromIndex('by-date', '2024-01', '2024-03*');
   */
  getRangeFromIndex(name: string, start?: IndexRangeInput, end?: IndexRangeInput): Document[] {
    const fields = this.definition(name);
    const range = checkIndexRangeValues(fields.length, start, end);
    const bound = (b: IndexRangeBound | undefined): { sql: (col: string) => string; params: unknown[] } => {
      if (b === undefined) return { sql: () => '', params: [] };
      switch (b.kind) {
        case 'any':
          return { sql: (c) => `${c} IS NOT NULL`, params: [] };
        case 'gte':
          return { sql: (c) => `${c} >= ?`, params: [b.value] };
        case 'lte':
          return { sql: (c) => `${c} <= ?`, params: [b.value] };
        case 'lte-prefix':
          return { sql: (c) => `(${c} < ? OR ${c} GLOB ?)`, params: [b.prefix, globPrefix(b.prefix)] };
      }
    };
    const conditions = fields.map((_, i) => {
      const s = bound(range.start?.[i]);
      const e = bound(range.end?.[i]);
      return {
        sql: (c: string) => [s.sql(c), e.sql(c)].filter((x) => x !== '').join(' AND '),
        params: [...s.params, ...e.params],
      };
    });
    const key = fields.map((_, i) => `${range.start?.[i]?.kind ?? '-'}/${range.end?.[i]?.kind ?? '-'}`).join(',');
    return this.runDocQuery(`r:${key}`, fields, conditions);
  }

  /**
   * Every distinct combination of index values (one string per column), sorted.
   *
   * @example
   * db.getIndexKeys('by-tag-year'); // [['home', '2023'], ['work', '2024']]
   */
  getIndexKeys(name: string): string[][] {
    const fields = this.definition(name);
    const { where, params } = this.columnsClause(fields, fields.map(() => ({ sql: (c: string) => `${c} IS NOT NULL`, params: [] })));
    const cols = fields.map((_, i) => `f${i}.value`).join(', ');
    const tables = fields.map((_, i) => `document_fields f${i}`).join(', ');
    const stmt = this.statement(`keys:${fields.length}`, () => `SELECT ${cols} FROM ${tables} WHERE ${where} GROUP BY ${cols} ORDER BY ${cols}`);
    return (stmt.raw(true).all(...params) as unknown[][]).map((row) => row.map((v) => String(v)));
  }

  /**
   * How many documents {@link getFromIndex} would return for these values (same rules).
   *
   * @example
   * db.getCountFromIndex('by-tag-year', 'work', '*');
   */
  getCountFromIndex(name: string, ...values: string[]): number {
    const fields = this.definition(name);
    const matches = checkIndexQueryValues(fields.length, values);
    const { where, params } = this.columnsClause(fields, this.queryConditions(matches));
    const tables = fields.map((_, i) => `document_fields f${i}`).join(', ');
    const stmt = this.statement(`count:${matches.map((m) => m.kind).join(',')}`, () =>
      `SELECT count(DISTINCT f0.doc_id) FROM ${tables} WHERE ${where}`);
    return Number(stmt.pluck(true).get(...params));
  }

  // ---------------------------------------------------------------------------------------------- extras

  /**
   * A random token (64 hex characters) for a named local service, created on first request and the same ever after.
   *
   * @example
   * const token = db.getOrCreateServiceToken('local-api');
   */
  getOrCreateServiceToken(service: string): string {
    return this.write(() => {
      const existing = this.s.getServiceToken.get(service) as string | undefined;
      if (existing !== undefined) return existing;
      const token = randomBytes(32).toString('hex');
      this.s.insertServiceToken.run(service, token);
      return token;
    });
  }

  /**
   * Escape hatch: run one SQL statement and return its rows as objects (`[]` for a statement without rows).
   * Bypasses every U1DB rule; cached index definitions are reloaded afterwards. Prefer the API above.
   *
   * @example
   * db.rawQuery('PRAGMA integrity_check'); // [{ integrity_check: 'ok' }]
   */
  rawQuery(sql: string, params: SqlParams = []): unknown[] {
    const stmt = this.handle().prepare(sql);
    const args: unknown[] = Array.isArray(params) ? [...(params as unknown[])] : [params];
    try {
      if (stmt.reader) return stmt.all(...args);
      stmt.run(...args);
      return [];
    } finally {
      this.indexCacheStale = true;
    }
  }

  /**
   * Escape hatch: run one SQL statement that changes data. Bypasses every U1DB rule (revisions, the generation
   * log, index rows); cached index definitions are reloaded afterwards.
   *
   * @example
   * db.rawOperation('DELETE FROM sync_log WHERE replica_uid = ?', [uid]);
   */
  rawOperation(sql: string, params: SqlParams = []): { changes: number } {
    const stmt = this.handle().prepare(sql);
    const args: unknown[] = Array.isArray(params) ? [...(params as unknown[])] : [params];
    try {
      return { changes: stmt.run(...args).changes };
    } finally {
      this.indexCacheStale = true;
    }
  }
}

function prepareStatements(db: Database.Database) {
  const docColumns = 'doc_rev, content, syncable';
  return {
    dataVersion: db.prepare('PRAGMA data_version').pluck(),
    getDoc: db.prepare(`SELECT ${docColumns}, 0 AS has_conflicts FROM document WHERE doc_id = ?`),
    getRevAndSyncable: db.prepare('SELECT doc_rev, syncable FROM document WHERE doc_id = ?'),
    getDocBytes: db.prepare('SELECT doc_rev, CAST(content AS BLOB) AS content, syncable FROM document WHERE doc_id = ?'),
    getDocWithConflicts: db.prepare(
      `SELECT ${docColumns}, EXISTS (SELECT 1 FROM conflicts c WHERE c.doc_id = d.doc_id) AS has_conflicts FROM document d WHERE d.doc_id = ?`,
    ),
    allDocs: db.prepare(
      'SELECT d.doc_id, d.doc_rev, d.content, d.syncable, EXISTS (SELECT 1 FROM conflicts c WHERE c.doc_id = d.doc_id) AS has_conflicts FROM document d',
    ),
    liveDocsAfter: db.prepare('SELECT rowid, doc_id, content FROM document WHERE rowid > ? AND content IS NOT NULL ORDER BY rowid LIMIT ?'),
    // Content is text; given as UTF-8 bytes (StoredJson), it is stored as text without being decoded first.
    insertDoc: db.prepare('INSERT INTO document (doc_id, doc_rev, content, syncable) VALUES (?, ?, CAST(? AS TEXT), ?)'),
    updateDoc: db.prepare('UPDATE document SET doc_rev = ?, content = CAST(? AS TEXT), syncable = ? WHERE doc_id = ?'),
    setSyncable: db.prepare('UPDATE document SET syncable = ? WHERE doc_id = ?'),
    deleteFields: db.prepare('DELETE FROM document_fields WHERE doc_id = ?'),
    insertField: db.prepare('INSERT INTO document_fields (doc_id, field_name, value) VALUES (?, ?, ?)'),
    insertTransaction: db.prepare('INSERT INTO transaction_log (doc_id, transaction_id) VALUES (?, ?)'),
    maxGeneration: db.prepare('SELECT max(generation) FROM transaction_log').pluck(),
    lastTransaction: db.prepare('SELECT generation, transaction_id FROM transaction_log ORDER BY generation DESC LIMIT 1'),
    transactionIdOf: db.prepare('SELECT transaction_id FROM transaction_log WHERE generation = ?').pluck(),
    changesSince: db.prepare('SELECT doc_id, generation, transaction_id FROM transaction_log WHERE generation > ? ORDER BY generation DESC')
      .raw(),
    unsyncableIds: db.prepare(`SELECT doc_id FROM document WHERE ${UNSYNCABLE_SQL}`).pluck(),
    getSyncLog: db.prepare('SELECT known_generation, known_transaction_id FROM sync_log WHERE replica_uid = ?'),
    setSyncLog: db.prepare('INSERT OR REPLACE INTO sync_log (replica_uid, known_generation, known_transaction_id) VALUES (?, ?, ?)'),
    getConfig: db.prepare('SELECT value FROM u1db_config WHERE name = ?').pluck(),
    setConfig: db.prepare('INSERT OR REPLACE INTO u1db_config (name, value) VALUES (?, ?)'),
    deleteConfig: db.prepare('DELETE FROM u1db_config WHERE name = ?'),
    hasConflicts: db.prepare('SELECT 1 FROM conflicts WHERE doc_id = ? LIMIT 1'),
    anyConflict: db.prepare('SELECT 1 FROM conflicts LIMIT 1'),
    conflictsOf: db.prepare('SELECT doc_rev, content FROM conflicts WHERE doc_id = ? ORDER BY doc_rev'),
    insertConflict: db.prepare('INSERT OR REPLACE INTO conflicts (doc_id, doc_rev, content) VALUES (?, ?, ?)'),
    deleteConflict: db.prepare('DELETE FROM conflicts WHERE doc_id = ? AND doc_rev = ?'),
    listIndexDefinitions: db.prepare('SELECT name, field FROM index_definitions ORDER BY name, offset'),
    insertIndexDefinition: db.prepare('INSERT INTO index_definitions (name, offset, field) VALUES (?, ?, ?)'),
    deleteIndexDefinition: db.prepare('DELETE FROM index_definitions WHERE name = ?'),
    deleteOrphanFields: db.prepare('DELETE FROM document_fields WHERE field_name NOT IN (SELECT field FROM index_definitions)'),
    getServiceToken: db.prepare('SELECT token FROM service_tokens WHERE service = ?').pluck(),
    insertServiceToken: db.prepare('INSERT INTO service_tokens (service, token) VALUES (?, ?)'),
  };
}
