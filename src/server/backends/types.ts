/**
 * Storage contracts of the server. An engine is a folder under `backends/` implementing {@link Backend};
 * routes only ever see these interfaces, and `test/backends/conformance.ts` is what proves an engine.
 *
 * Everything stored for a user is ciphertext the server cannot read: content is an opaque string.
 * Every method is asynchronous so network engines (PostgreSQL, CouchDB) fit the same shape.
 */

import type { BlobStore } from './blob-types.js';

/** What differs between engines; routes consult these instead of checking engine names. */
export interface BackendCapabilities {
  /** The engine creates user databases in-process; otherwise `ensure` needs the configured `create_cmd`. */
  readonly createsDatabases: boolean;
  /** Several server processes may share the stored data (the embedded engine is one process only). */
  readonly multiProcess: boolean;
}

/** A generation of a database and its transaction id (`""` at generation 0). */
export interface GenerationInfo {
  /** Generation: number of changes ever applied. */
  readonly generation: number;
  /** Transaction id of that change. */
  readonly transactionId: string;
}

/** The target side of `GET …/sync-from/<src>` (§1a). */
export interface SyncInfoRecord extends GenerationInfo {
  /** Replica uid of the user database. */
  readonly replicaUid: string;
  /** Source generation last recorded for the asking replica (0 if never). */
  readonly sourceGeneration: number;
  /** Source transaction id last recorded (`""` if never). */
  readonly sourceTransactionId: string;
}

/** A document uploaded by a source replica (§1c). */
export interface IncomingDoc {
  /** Document id. */
  readonly id: string;
  /** Revision (vector clock) as sent. */
  readonly rev: string;
  /**
   * Opaque content string, or its UTF-8 bytes as an upload carried them (the embedded engine stores those as they
   * are; the others decode them); `null` for a tombstone.
   */
  readonly content: string | Buffer | null;
  /** Source generation of this change. */
  readonly gen: number;
  /** Source transaction id of this change. */
  readonly transId: string;
}

/** Outcome of one `_put_doc_if_newer(save_conflict=False)` (§2b). */
export type PutState = 'inserted' | 'converged' | 'superseded' | 'conflicted';

/** Per-document result of an upload batch. */
export interface PutOutcome {
  /** Document id. */
  readonly id: string;
  /** What happened to it; `conflicted` documents are not stored. */
  readonly state: PutState;
  /** Database generation right after this document was handled. */
  readonly atGeneration: number;
}

/** Result of a whole batch: outcomes in input order and the generation after it. */
export interface PutBatchResult extends GenerationInfo {
  /** One outcome per input document. */
  readonly outcomes: readonly PutOutcome[];
}

/** Latest change of one document (§2c). */
export interface Change {
  /** Document id. */
  readonly id: string;
  /** Generation of its latest change. */
  readonly generation: number;
  /** Transaction id of that change. */
  readonly transactionId: string;
}

/** `whats_changed(gen)`: current generation plus each changed document once, ascending by generation. */
export interface ChangesSince extends GenerationInfo {
  /** Changes after the asked generation. */
  readonly changes: readonly Change[];
}

/** A stored document as sent back to clients. */
export interface StoredDoc {
  /** Document id. */
  readonly id: string;
  /** Current revision. */
  readonly rev: string;
  /** Opaque content string; `null` for a tombstone. */
  readonly content: string | null;
}

/** A stored document as a download sends it. */
export interface SentDoc {
  /** Document id. */
  readonly id: string;
  /** Current revision. */
  readonly rev: string;
  /**
   * The content string, or (an engine that stores it so, for a large document) its UTF-8 bytes as stored;
   * `null` for a tombstone.
   */
  readonly content: string | Buffer | null;
}

/**
 * An open, all-or-nothing upload into one user database: batches applied with {@link UploadSession.putDocsIfNewer}
 * become visible to other readers only on {@link UploadSession.commit}; {@link UploadSession.abort} leaves the
 * database exactly as before. One session per database at a time; other writers wait.
 */
export interface UploadSession {
  /** Apply a batch with save_conflict=false semantics, inside the session. */
  putDocsIfNewer(docs: readonly IncomingDoc[]): Promise<PutBatchResult>;
  /** Bytes the user's documents would take if the session committed now. */
  usageBytes(): Promise<number>;
  /** Make every batch durable and visible; returns the final generation. */
  commit(): Promise<GenerationInfo>;
  /** Discard every batch (safe to call after a failure, and more than once). */
  abort(): Promise<void>;
}

/**
 * Per-user U1DB replicas holding opaque ciphertext, named `user-<uuid>`. Methods on a missing database reject
 * with `DatabaseDoesNotExistError`; a malformed name rejects with `BadRequestError`.
 */
export interface DocumentStore {
  /** Create the database if missing; returns its replica uid and whether it was created now. */
  ensureDatabase(dbName: string): Promise<{
    /** The database's replica uid. */
    replicaUid: string;
    /** True when this call created it. */
    created: boolean;
  }>;
  /** Whether the database exists. */
  databaseExists(dbName: string): Promise<boolean>;
  /** Delete the database and everything in it; `false` if it did not exist. */
  deleteDatabase(dbName: string): Promise<boolean>;
  /** Replica uid and generation of the database, and what it recorded for `sourceReplicaUid`. */
  getSyncInfo(dbName: string, sourceReplicaUid: string): Promise<SyncInfoRecord>;
  /** Remember the source's generation and transaction id (§1b). */
  recordSyncInfo(dbName: string, sourceReplicaUid: string, generation: number, transactionId: string): Promise<void>;
  /** Gen 0 always passes; an unknown gen rejects with InvalidGenerationError, another trans id with InvalidTransactionIdError. */
  validateGenAndTransId(dbName: string, generation: number, transactionId: string): Promise<void>;
  /** Apply one batch atomically (save_conflict=false: conflicted documents are not stored). */
  putDocsIfNewer(dbName: string, sourceReplicaUid: string, docs: readonly IncomingDoc[]): Promise<PutBatchResult>;
  /** Start an all-or-nothing upload spanning several batches. */
  openUpload(dbName: string, sourceReplicaUid: string): Promise<UploadSession>;
  /** Changes after `generation`: the latest change per document, ascending. */
  whatsChanged(dbName: string, generation: number): Promise<ChangesSince>;
  /** Current revision and content of each id, in the given order, read lazily; missing ids are skipped. */
  getDocs(dbName: string, ids: Iterable<string>): AsyncIterable<StoredDoc>;
  /**
   * {@link getDocs} for a download: an engine that stores content as UTF-8 may hand a large document's over as
   * those bytes, which the response sends without decoding them into a string and encoding it again. (Small ones
   * stay strings: many small buffers cost the garbage collector more than the decoding saves.)
   */
  getDocsToSend(dbName: string, ids: Iterable<string>): AsyncIterable<SentDoc>;
  /** Bytes taken by the user's documents (ids, revisions and content). */
  usageBytes(dbName: string): Promise<number>;
}

/** A document of the shared (recovery) database. */
export interface SharedDoc {
  /** Document id (`sha256(passphrase + uuid)` hex for recovery documents). */
  readonly id: string;
  /** Current revision. */
  readonly rev: string;
  /** JSON text as stored; `null` for a deleted document. */
  readonly content: string | null;
  /** Always false: the server never stores conflicts in `shared`. */
  readonly hasConflicts: boolean;
}

/**
 * The `shared` database (§4c), with U1DB `put_doc` / `delete_doc` revision rules. Readable by id and writable
 * with any valid token.
 */
export interface SharedStore {
  /** The document, including a deleted one (content `null`), or `null` if it never existed. */
  getDoc(id: string): Promise<SharedDoc | null>;
  /** Create (`oldRev` null) or update (`oldRev` = current rev) a document; returns the new revision. */
  putDoc(id: string, content: string, oldRev: string | null): Promise<string>;
  /** Delete a document at revision `oldRev`; returns the tombstone's revision. */
  deleteDoc(id: string, oldRev: string | null): Promise<string>;
}

/** A stored token, as listed: never the token itself. */
export interface TokenInfo {
  /** `sha512(token)` hex, the record's id (as in the LEAP platform's tokens database). */
  readonly hash: string;
  /** The user the token belongs to. */
  readonly userId: string;
  /** When it was added, if known. */
  readonly createdAt: Date | null;
  /** When it stops being valid, if ever. */
  readonly expiresAt: Date | null;
}

/**
 * User tokens, stored as the LEAP platform does: id `sha512(token)` hex, `type: "Token"`, `user_id`, plus an
 * optional expiry. The plain token is returned once by {@link TokenStore.addToken} and never stored.
 */
export interface TokenStore {
  /** Mint a random token for `uuid`; returns it (the only time it is visible). */
  addToken(uuid: string, options?: { expiresAt?: Date }): Promise<string>;
  /** Remove a token given itself or its sha512 hex; `false` if no such token. */
  revoke(tokenOrHash: string): Promise<boolean>;
  /** Every stored token's hash, user and dates. */
  list(): Promise<TokenInfo[]>;
  /** Whether `token` is a valid, unexpired token of `uuid`, in constant time over the secret parts. */
  check(uuid: string, token: string): Promise<boolean>;
}

/**
 * A storage engine: documents, the shared database and tokens. The blobs issue adds a `BlobStore` member here
 * (per user and namespace: content, size, flags, tombstones) without touching the routes of this one.
 */
export interface Backend {
  /** Engine name, as in the `backend` option. */
  readonly name: string;
  /** What this engine can and cannot do. */
  readonly capabilities: BackendCapabilities;
  /** User databases. */
  readonly documents: DocumentStore;
  /** The shared recovery database. */
  readonly shared: SharedStore;
  /** User tokens. */
  readonly tokens: TokenStore;
  /**
   * The engine's own blob store, when it keeps blobs itself (PostgreSQL). Absent: the server uses the filesystem
   * blob store under `blobs_path` (the embedded engine, and CouchDB as in the original). Closed by {@link close}.
   */
  readonly blobs?: BlobStore;
  /** Release every resource; the backend is unusable afterwards. */
  close(): Promise<void>;
}
