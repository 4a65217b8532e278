/**
 * The facade applications import: open an encrypted local replica, use the U1DB document API, sync it.
 */
import { EventEmitter } from 'node:events';
import { dirname, join } from 'node:path';
import { DatabaseClosedError, NotSupportedError } from '../common/errors.js';
import type { Document } from '../common/u1db/document.js';
import type { JsonObject } from '../common/u1db/json.js';
import { LocalDatabase } from './db/database.js';
import { SecretsManager } from './secrets/secrets-manager.js';
import type { RemoteSecretsStore } from './secrets/secrets-manager.js';
import { HttpClient } from './http/client.js';
import { SharedDbClient } from './http/shared-db.js';
import { Synchronizer } from './sync/synchronizer.js';
import type { SyncProgress, SyncStats } from './sync/synchronizer.js';
import { WriteQueue } from './write-queue.js';
import { BlobManager } from './blobs/blob-manager.js';
import { withAttachments, type AttachmentHost, type DocumentWithAttachments } from './blobs/attachments.js';
import { IncomingBox } from './incoming/incoming-box.js';

/** Options of {@link Soledad.open}; the names follow the original constructor. */
export interface SoledadOptions {
  /** The user's uuid (lowercase hex, as the provider assigns it). */
  uuid: string;
  /** Unlocks the storage secrets. Never logged or stored. */
  passphrase: string;
  /** Path of the local secrets file (`soledad.json` in the original). */
  secretsPath: string;
  /** Path of the local SQLCipher database (`soledad.u1db` in the original). */
  localDbPath: string;
  /** Base URL of the Soledad server (`https://host:2323/`); omit to work offline. */
  serverUrl?: string;
  /** PEM file of the server's certificate or CA to trust (self-signed servers). */
  certFile?: string;
  /** The user's auth token for the server. */
  authToken?: string;
  /**
   * Open the local blobs database (`<uuid>_blobs.db` beside `localDbPath`) and enable `soledad.blobs` and
   * document attachments. Default `true` (the original defaulted to false; its server had blobs off by default).
   */
  withBlobs?: boolean;
  /** Refuse documents whose JSON is larger than this many bytes. */
  documentSizeLimit?: number;
}

/** Options of {@link Soledad.recover}: a fresh device restores secrets with the recovery code. */
export interface RecoverOptions extends Omit<SoledadOptions, 'passphrase'> {
  /** The code printed by {@link Soledad.createRecoveryCode}. */
  recoveryCode: string;
  /** The passphrase that protects the secrets on this device from now on. */
  newPassphrase: string;
}

/** A document handed out by {@link Soledad}: a U1DB document plus the attachment methods. */
export type SoledadDocument = DocumentWithAttachments;

/** Events emitted by {@link Soledad}. */
export interface SoledadEvents {
  /**
   * A sync moved on: its phase, documents and bytes so far in both directions.
   *
   * @example
   * sol.on('sync-progress', (p) => console.log(p.phase, p.docsSent, p.docsReceived));
   */
  'sync-progress': [SyncProgress];
}

/**
 * An open Soledad replica.
 *
 * @example
 * import { Soledad } from 'soledad';
 * const sol = await Soledad.open({ uuid, passphrase, secretsPath: 'soledad.json', localDbPath: 'soledad.u1db' });
 * const doc = await sol.createDoc({ subject: 'hello' });
 * await sol.close();
 */
export class Soledad extends EventEmitter<SoledadEvents> {
  /** The user's uuid. */
  readonly uuid: string;
  private readonly db: LocalDatabase;
  private readonly secrets: SecretsManager;
  private readonly writes: WriteQueue;
  private readonly http: HttpClient | undefined;
  private readonly synchronizer: Synchronizer | undefined;
  private readonly blobManager: BlobManager | undefined;
  private readonly incomingBox: IncomingBox | undefined;
  private readonly attachmentHost: AttachmentHost;
  private closed = false;

  private constructor(uuid: string, db: LocalDatabase, secrets: SecretsManager, http: HttpClient | undefined,
    blobs: BlobManager | undefined) {
    super();
    this.uuid = uuid;
    this.db = db;
    this.blobManager = blobs;
    const store = this;
    this.attachmentHost = {
      get blobs() { return store.blobs; },
      getDoc: (docId: string) => store.getDoc(docId),
    };
    this.secrets = secrets;
    this.writes = new WriteQueue(db);
    this.http = http;
    if (http !== undefined) {
      this.synchronizer = new Synchronizer({ db, http, uuid, remoteSecret: secrets.secrets.remoteSecret });
      this.synchronizer.on('progress', (p: SyncProgress) => this.emit('sync-progress', p));
      this.incomingBox = new IncomingBox({
        http, uuid, replicaId: db.replicaUid, remoteSecret: secrets.secrets.remoteSecret,
        syncDocuments: () => this.sync(),
      });
    }
  }

  /**
   * Open (or create) a replica. Secrets come from the local file, else from the server's recovery document,
   * else they are generated (and stored in both places).
   *
   * @example
   * const sol = await Soledad.open({
   *   uuid, passphrase, secretsPath: './device-a/soledad.json', localDbPath: './device-a/soledad.u1db',
   *   serverUrl: 'https://localhost:2323/', certFile: './data/tls/server.crt', authToken,
   * });
   */
  static async open(opts: SoledadOptions): Promise<Soledad> {
    const http = makeHttp(opts);
    const remote: RemoteSecretsStore | undefined = http ? new SharedDbClient(http) : undefined;
    const secrets = await SecretsManager.bootstrap({
      uuid: opts.uuid,
      passphrase: opts.passphrase,
      secretsPath: opts.secretsPath,
      ...(remote ? { remote } : {}),
    });
    return Soledad.finishOpen(opts, secrets, http);
  }

  /**
   * Restore secrets on a new device from uuid + recovery code, protect them with a new passphrase, open.
   *
   * @example
   * const sol = await Soledad.recover({
   *   uuid, recoveryCode: 'abcdefghijklmnopqrstuvwx', newPassphrase: 'a new passphrase',
   *   secretsPath: './phone/soledad.json', localDbPath: './phone/soledad.u1db', serverUrl, certFile, authToken,
   * });
   * await sol.sync();
   */
  static async recover(opts: RecoverOptions): Promise<Soledad> {
    const http = makeHttp(opts);
    if (!http) throw new TypeError('recover needs serverUrl and authToken');
    const secrets = await SecretsManager.recover({
      uuid: opts.uuid,
      recoveryCode: opts.recoveryCode,
      newPassphrase: opts.newPassphrase,
      secretsPath: opts.secretsPath,
      remote: new SharedDbClient(http),
    });
    return Soledad.finishOpen(opts, secrets, http);
  }

  private static async finishOpen(opts: Omit<SoledadOptions, 'passphrase'>, secrets: SecretsManager,
    http: HttpClient | undefined): Promise<Soledad> {
    try {
      const key = await secrets.localDbKey();
      let db: LocalDatabase | undefined;
      let blobs: BlobManager | undefined;
      try {
        db = LocalDatabase.open({
          path: opts.localDbPath,
          encryption: { mode: 'encrypted', key },
          ...(opts.documentSizeLimit !== undefined ? { documentSizeLimit: opts.documentSizeLimit } : {}),
        });
        if (opts.withBlobs ?? true) {
          blobs = BlobManager.open({
            uuid: opts.uuid,
            localPath: join(dirname(opts.localDbPath), `${opts.uuid}_blobs.db`),
            localKey: key,
            remoteSecret: secrets.secrets.remoteSecret,
            ...(http ? { http } : {}),
          });
        }
      } catch (err) {
        db?.close();
        throw err;
      } finally {
        key.fill(0); // SQLCipher keeps its own copies; ours is not needed any more.
      }
      return new Soledad(opts.uuid, db, secrets, http, blobs);
    } catch (err) {
      secrets.close();
      await http?.close();
      throw err;
    }
  }

  /**
   * The incoming box: payloads a trusted app (a mail MX) delivered for this user, processed by registered
   * consumers exactly once across the user's devices. Needs `serverUrl` and `authToken`.
   *
   * @example
   * sol.incoming.register(consumer, { namespace: 'MX' });
   * const { processed, failed } = await sol.incoming.processOnce();
   */
  get incoming(): IncomingBox {
    if (!this.incomingBox) throw new NotSupportedError('The incoming box needs serverUrl and authToken');
    return this.incomingBox;
  }

  /**
   * The blob manager: encrypted binaries with namespaces, flags and streamed transfer.
   * Throws {@link NotSupportedError} when the store was opened with `withBlobs: false`.
   *
   * @example
   * await sol.blobs.put('photo-1', createReadStream('photo.jpg'));
   * const stream = await sol.blobs.get('photo-1');
   */
  get blobs(): BlobManager {
    if (!this.blobManager) throw new NotSupportedError('Blobs are disabled: open Soledad with withBlobs: true');
    return this.blobManager;
  }

  /**
   * Where the storage secrets came from at open: the local file, the server's recovery document, freshly
   * generated, or a recovery code. `generated` on a device that expected existing data usually means a mistyped
   * passphrase (the server held no secrets under it).
   *
   * @example
   * if (sol.secretsSource === 'generated') console.warn('new secrets: was the passphrase typed right?');
   */
  get secretsSource(): 'local' | 'remote' | 'generated' | 'recovered' {
    return this.secrets.source;
  }

  /**
   * This replica's uid (a hex string chosen when the database was created).
   *
   * @example
   * console.log(`device ${sol.replicaUid}`);
   */
  get replicaUid(): string {
    return this.db.replicaUid;
  }

  // ---- documents ----

  /**
   * Create a document; `docId` defaults to a new `D-…` id.
   *
   * @example
   * const doc = await sol.createDoc({ subject: 'hello', tags: ['inbox'] });
   * const note = await sol.createDoc({ text: '…' }, 'note-1');
   */
  createDoc(content: JsonObject, docId?: string): Promise<SoledadDocument> {
    return this.write(() => this.attach(this.db.createDoc(content, docId)));
  }

  /**
   * Create a document from JSON text (it must be an object).
   *
   * @example
   * const doc = await sol.createDocFromJson('{"subject":"hello"}');
   */
  createDocFromJson(json: string, docId?: string): Promise<SoledadDocument> {
    return this.write(() => this.attach(this.db.createDocFromJson(json, docId)));
  }

  /**
   * Store a new revision of `doc`; updates `doc.rev` and resolves with it.
   *
   * @example
   * const doc = (await sol.getDoc('note-1'))!;
   * doc.content = { ...doc.content, read: true };
   * await sol.putDoc(doc);
   */
  putDoc(doc: Document): Promise<string> {
    return this.write(() => this.db.putDoc(doc));
  }

  /**
   * Mark a document deleted (a tombstone that syncs); resolves with the new rev.
   *
   * @example
   * await sol.deleteDoc((await sol.getDoc('note-1'))!);
   */
  deleteDoc(doc: Document): Promise<string> {
    return this.write(() => this.db.deleteDoc(doc));
  }

  /**
   * One document, or `null`; tombstones only with `includeDeleted`.
   *
   * @example
   * const doc = await sol.getDoc('note-1');
   * console.log(doc?.rev, doc?.content);
   */
  getDoc(docId: string, opts: { includeDeleted?: boolean } = {}): Promise<SoledadDocument | null> {
    return this.read(() => {
      const doc = this.db.getDoc(docId, opts.includeDeleted ?? false);
      return doc === null ? null : this.attach(doc);
    });
  }

  /**
   * Several documents in the order asked, skipping missing ones.
   *
   * @example
   * const [a, b] = await sol.getDocs(['note-1', 'note-2']);
   */
  getDocs(docIds: Iterable<string>, opts: { checkForConflicts?: boolean; includeDeleted?: boolean } = {}): Promise<SoledadDocument[]> {
    return this.read(() => this.db.getDocs([...docIds], opts).map((d) => this.attach(d)));
  }

  /**
   * Every document and the generation they were read at.
   *
   * @example
   * const { generation, docs } = await sol.getAllDocs();
   * for (const doc of docs) console.log(doc.docId, doc.content);
   */
  getAllDocs(opts: { includeDeleted?: boolean } = {}): Promise<{
    /** The generation the documents were read at. */
    generation: number;
    /** The documents. */
    docs: SoledadDocument[];
  }> {
    return this.read(() => {
      const { generation, docs } = this.db.getAllDocs(opts.includeDeleted ?? false);
      return { generation, docs: docs.map((d) => this.attach(d)) };
    });
  }

  /**
   * The current document followed by its conflicting versions (empty when there are none).
   *
   * @example
   * const [current, ...others] = await sol.getDocConflicts('note-1');
   */
  getDocConflicts(docId: string): Promise<SoledadDocument[]> {
    return this.read(() => this.db.getDocConflicts(docId).map((d) => this.attach(d)));
  }

  /**
   * Resolve the listed conflicting revisions with `doc`'s content.
   *
   * @example
   * const versions = await sol.getDocConflicts('note-1');
   * const merged = versions[0]!;
   * merged.content = { subject: 'merged' };
   * await sol.resolveDoc(merged, versions.map((v) => v.rev!));
   */
  resolveDoc(doc: Document, conflictedRevs: string[]): Promise<void> {
    return this.write(() => this.db.resolveDoc(doc, conflictedRevs));
  }

  /**
   * Keep a document on this device only (or allow it to sync again).
   *
   * @example
   * await sol.setDocumentSyncable('draft-1', false); // never uploaded until set back to true
   */
  setDocumentSyncable(docId: string, syncable: boolean): Promise<void> {
    return this.write(() => this.db.setDocumentSyncable(docId, syncable));
  }

  // ---- indexes ----

  /**
   * Create an index over one or more expressions (`'lower(subject)'`, `'number(size, 8)'`…).
   *
   * @example
   * await sol.createIndex('by-tag', 'tags');
   * await sol.createIndex('by-subject-and-size', 'lower(subject)', 'number(size, 8)');
   */
  createIndex(name: string, ...expressions: string[]): Promise<void> {
    return this.write(() => this.db.createIndex(name, ...expressions));
  }

  /**
   * Remove an index.
   *
   * @example
   * await sol.deleteIndex('by-tag');
   */
  deleteIndex(name: string): Promise<void> {
    return this.write(() => this.db.deleteIndex(name));
  }

  /**
   * Every index as `[name, expressions]`.
   *
   * @example
   * for (const [name, expressions] of await sol.listIndexes()) console.log(name, expressions);
   */
  listIndexes(): Promise<Array<[string, string[]]>> {
    return this.read(() => this.db.listIndexes());
  }

  /**
   * Documents whose index values match (`'*'` and trailing `'ab*'` wildcards), ordered by index values.
   *
   * @example
   * const inbox = await sol.getFromIndex('by-tag', 'inbox');
   * const startingWithH = await sol.getFromIndex('by-subject', 'h*');
   */
  getFromIndex(name: string, ...values: string[]): Promise<SoledadDocument[]> {
    return this.read(() => this.db.getFromIndex(name, ...values).map((d) => this.attach(d)));
  }

  /**
   * Documents whose index values lie between `start` and `end` inclusive (`null` = unbounded).
   *
   * @example
   * const aToM = await sol.getRangeFromIndex('by-subject', 'a', 'm');
   */
  getRangeFromIndex(name: string, start: string | string[] | null, end: string | string[] | null = null): Promise<SoledadDocument[]> {
    return this.read(() => this.db.getRangeFromIndex(name, start, end).map((d) => this.attach(d)));
  }

  /**
   * Every distinct key tuple in an index.
   *
   * @example
   * await sol.getIndexKeys('by-tag'); // [['inbox'], ['work']]
   */
  getIndexKeys(name: string): Promise<string[][]> {
    return this.read(() => this.db.getIndexKeys(name));
  }

  /**
   * How many documents match, with the rules of {@link getFromIndex}.
   *
   * @example
   * const unread = await sol.getCountFromIndex('by-tag', 'inbox');
   */
  getCountFromIndex(name: string, ...values: string[]): Promise<number> {
    return this.read(() => this.db.getCountFromIndex(name, ...values));
  }

  // ---- escape hatches and helpers ----

  /**
   * Run a read-only SQL query on the local database (the original's raw SQLCipher access).
   *
   * @example
   * const rows = await sol.rawQuery('SELECT count(*) AS n FROM document');
   */
  rawQuery(sql: string, params: unknown[] = []): Promise<unknown[]> {
    return this.read(() => this.db.rawQuery(sql, params));
  }

  /**
   * Run a SQL statement on the local database; use with care, U1DB invariants are yours to keep.
   *
   * @example
   * const { changes } = await sol.rawOperation('DELETE FROM my_app_cache WHERE stale = ?', [1]);
   */
  rawOperation(sql: string, params: unknown[] = []): Promise<{
    /** Rows changed. */
    changes: number;
  }> {
    return this.write(() => this.db.rawOperation(sql, params));
  }

  /**
   * A random token for a local service, created once and then returned again.
   *
   * @example
   * const token = await sol.getOrCreateServiceToken('imap');
   */
  getOrCreateServiceToken(service: string): Promise<string> {
    return this.write(() => this.db.getOrCreateServiceToken(service));
  }

  /**
   * The local generation and its transaction id.
   *
   * @example
   * const { generation, transactionId } = await sol.getGenerationInfo();
   */
  getGenerationInfo(): Promise<{
    /** The local generation (one per change). */
    generation: number;
    /** The transaction id of that generation. */
    transactionId: string;
  }> {
    return this.read(() => this.db.getGenerationInfo());
  }

  /**
   * Changes since `generation`: the latest per document, oldest first.
   *
   * @example
   * const { generation, changes } = await sol.whatsChanged(lastSeen);
   * for (const c of changes) console.log(c.docId);
   * lastSeen = generation;
   */
  whatsChanged(generation = 0): Promise<{
    /** The current local generation. */
    generation: number;
    /** Its transaction id. */
    transactionId: string;
    /** One entry per changed document. */
    changes: Array<{
      /** The document. */
      docId: string;
      /** The generation of its latest change. */
      generation: number;
      /** The transaction id of that change. */
      transactionId: string;
    }>;
  }> {
    return this.read(() => this.db.whatsChanged(generation));
  }

  // ---- secrets ----

  /**
   * Re-wrap the storage secrets under a new passphrase (locally and on the server). No document is re-encrypted.
   *
   * @example
   * await sol.changePassphrase('a longer and better passphrase');
   */
  async changePassphrase(newPassphrase: string): Promise<void> {
    this.assertOpen();
    await this.secrets.changePassphrase(newPassphrase);
  }

  /**
   * Create a recovery code: the secrets are additionally stored wrapped under it, so uuid + code restore them on
   * a new device even if the passphrase is forgotten. Show the code to the user once; it is not kept anywhere.
   *
   * @example
   * const code = await sol.createRecoveryCode();
   * console.log(`write this down with your uuid ${sol.uuid}: ${code}`);
   */
  async createRecoveryCode(): Promise<string> {
    this.assertOpen();
    return this.secrets.createRecoveryCode();
  }

  // ---- sync ----

  /**
   * Synchronize with the server. Resolves with the local generation before the sync, once what it downloaded is
   * stored (telling the server this device's new generation completes afterwards; {@link close} waits for it). A
   * call while a sync runs waits for that sync and shares its result.
   *
   * @example
   * await sol.createDoc({ subject: 'hello' });
   * await sol.sync(); // encrypt → upload → download → verify → apply
   */
  async sync(): Promise<number> {
    this.assertOpen();
    if (!this.synchronizer) throw new TypeError('sync needs serverUrl and authToken');
    this.writes.flush();
    return this.synchronizer.sync();
  }

  /**
   * True while a sync runs.
   *
   * @example
   * if (!sol.syncing) await sol.sync();
   */
  get syncing(): boolean {
    return this.synchronizer?.syncing ?? false;
  }

  /**
   * Phases, counts and timings of the last sync, or `undefined` before the first.
   *
   * @example
   * await sol.sync();
   * const s = sol.syncStats();
   * console.log(`sent ${s?.docsSent}, received ${s?.docsReceived}`);
   */
  syncStats(): SyncStats | undefined {
    return this.synchronizer?.lastStats();
  }

  /**
   * Commit pending writes, close the database, drop keys from memory. Safe to call twice.
   *
   * @example
   * try {
   *   await sol.createDoc({ subject: 'hi' });
   * } finally {
   *   await sol.close();
   * }
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.incomingBox?.close();
    this.writes.flush();
    if (this.synchronizer?.syncing) await this.synchronizer.sync().catch(() => undefined);
    // The last sync's record of our generation, still on its way to the server.
    await this.synchronizer?.recorded();
    this.closed = true;
    await this.blobManager?.close();
    this.db.close();
    this.secrets.close();
    await this.http?.close();
  }

  /** Bind the attachment methods (seed `IDocumentWithAttachment`) to a document this store hands out. */
  private attach(doc: Document): SoledadDocument {
    return withAttachments(doc, this.attachmentHost);
  }

  private write<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new DatabaseClosedError());
    return this.writes.enqueue(run);
  }

  private async read<T>(run: () => T): Promise<T> {
    this.assertOpen();
    // Reads see every write issued before them, even ones not yet committed by the queue.
    this.writes.flush();
    return run();
  }

  private assertOpen(): void {
    if (this.closed) throw new DatabaseClosedError();
  }
}

function makeHttp(opts: Omit<SoledadOptions, 'passphrase'>): HttpClient | undefined {
  if (opts.serverUrl === undefined) return undefined;
  if (opts.authToken === undefined) throw new TypeError('serverUrl needs authToken');
  return new HttpClient({
    serverUrl: opts.serverUrl,
    uuid: opts.uuid,
    token: opts.authToken,
    ...(opts.certFile !== undefined ? { certFile: opts.certFile } : {}),
  });
}
