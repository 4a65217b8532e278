/**
 * The client sync (the seed's ten-step protocol with the pre-checks of Soledad 0.10's `client/sync.py`, fact sheet
 * §1): encrypt → send in bounded batches → receive as a stream → verify → apply → record.
 *
 * Crash safety comes from U1DB's bookkeeping, not from anything kept here:
 * - the server records our generation with every document it stores, so an interrupted upload resumes after the
 *   last stored document (`source_replica_generation` of the next sync info);
 * - every downloaded document is applied together with the server generation it came with
 *   (`putDocIfNewer(…, replicaGen)` writes the sync log in the same transaction), so an interrupted download
 *   resumes after the last applied document;
 * - re-sending or re-receiving a document is idempotent (same revision → `converged`).
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { EventEmitter } from 'node:events';
import {
  BrokenSyncStreamError,
  InvalidReplicaUidError,
  InvalidTransactionIdError,
  RollbackError,
} from '../../common/errors.js';
import { DocKeys, encryptDocContentBytes, encryptedContentLength } from '../../common/crypto/doc-crypto.js';
import {
  SyncGetResponseParser,
  type SyncGetEntry,
  type SyncGetItem,
  type SyncHeader,
  type SyncPutEntryOut,
  type SyncPutResponse,
} from '../../common/protocol/sync-stream.js';
import { Document } from '../../common/u1db/document.js';
import type { Change, IncomingVersion, LocalDatabase, PendingSyncRecord } from '../db/database.js';
import { mapTransportError, type HttpClient } from '../http/client.js';
import { DecodeWorker, decodedJson, type DecodedDoc, type DecodedItem, type DecodeSession } from './decode-worker.js';
import { assertNotRollback, decodeIncoming, type ExternalDocPolicy } from './incoming.js';
import { HttpSyncTarget } from './target.js';

/**
 * Default largest number of documents per upload POST. Memory is bounded by {@link DEFAULT_MAX_BATCH_BYTES};
 * every POST costs a round trip and a server transaction, so small documents go a couple of thousand at a time.
 */
export const DEFAULT_MAX_BATCH_DOCS = 2000;
/** Default largest upload POST body, in bytes (estimated before encryption; one bigger document goes alone). */
export const DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024;

/**
 * Default {@link SynchronizerOptions.decodeInWorkerFrom}: downloads of at least this many documents are parsed and
 * decrypted on the worker thread. In rounds alternating with and without it against one server, every download
 * of the benchmark was faster through the worker, from 61 documents (2 MB) to 10,000; a handful of documents is
 * not worth a message to another thread.
 */
export const DEFAULT_DECODE_IN_WORKER_FROM = 32;

/**
 * A download expected to bring at least this many documents waits for the worker if it is still loading (only a
 * process's first sync can find it so); a smaller one is decoded on this thread instead.
 */
const WAIT_FOR_WORKER_FROM = 1000;

/** Where a sync is. */
export type SyncPhase = 'info' | 'upload' | 'download' | 'record' | 'done' | 'failed';

/**
 * A progress report, emitted as `progress` events (and passed to `onProgress`).
 *
 * @example
 * synchronizer.on('progress', (p) => bar.update(p.docsSent + p.docsReceived, { phase: p.phase }));
 */
export interface SyncProgress {
  /** Id of this sync run (the wire `sync_id`). */
  syncId: string;
  /** Current phase. */
  phase: SyncPhase;
  /** Documents handed to the upload stream so far. */
  docsSent: number;
  /** Documents to upload in total (known after the info phase). */
  docsToSend: number;
  /** Documents received and applied so far. */
  docsReceived: number;
  /** Documents the server announced for download, `null` until its answer starts. */
  docsToReceive: number | null;
  /** Upload request body bytes written so far. */
  bytesSent: number;
  /** Response body bytes of the download read so far. */
  bytesReceived: number;
  /** Upload POSTs completed. */
  batchesSent: number;
}

/**
 * What happened during a sync: phases, counts and timings.
 *
 * @example
 * const s = synchronizer.lastStats(); console.log(s?.phases.upload, s?.docsSent);
 */
export interface SyncStats {
  /** The wire `sync_id` of this run. */
  syncId: string;
  /** True when the sync completed. */
  ok: boolean;
  /** Name, code and message of the error the sync failed with. */
  error?: {
    /** The error's class name, e.g. `ConnectionError`. */
    name: string;
    /** Its catalogue code, when it has one. */
    code?: string;
    /** Its message. */
    message: string;
  };
  /** Wall-clock start (ms since the epoch). */
  startedAt: number;
  /** Total duration (ms). */
  durationMs: number;
  /** Duration of each phase that ran (ms). */
  phases: Partial<Record<'info' | 'upload' | 'download' | 'record', number>>;
  /** True when nothing had changed on either side and the sync stopped after the checks. */
  upToDate: boolean;
  /** True when the server database did not exist and was asked to be created (`ensure`). */
  ensured: boolean;
  /** The server's replica uid, when known. */
  targetReplicaUid: string | null;
  /** Local generation when the sync started (what `sync()` resolves with). */
  localGenerationBefore: number;
  /** Local generation after the sync. */
  localGenerationAfter: number;
  /** Server generation recorded locally before the sync. */
  targetGenerationBefore: number;
  /** Server generation recorded locally after the sync. */
  targetGenerationAfter: number;
  /** Documents uploaded. */
  docsSent: number;
  /** Upload POSTs completed. */
  batches: number;
  /** Documents downloaded, verified and applied. */
  docsReceived: number;
  /** Downloaded documents stored as the new current version. */
  docsInserted: number;
  /** Downloaded documents that conflicted (stored as current, the local version kept as a conflict). */
  docsConflicted: number;
  /** Upload request body bytes written. */
  bytesSent: number;
  /** Download response bytes read. */
  bytesReceived: number;
  /**
   * True when the server is told our new generation (record_sync_info) after documents were downloaded. The request
   * completes after the sync resolves (`close()` and the next sync wait for it); the local database keeps the record
   * until a later sync sees the server has it, and tells the server then if it never got it.
   */
  recordedWithTarget: boolean;
  /**
   * True when the last upload's answer said a download would send nothing (every change on the server since the
   * last sync was one of ours, stored as sent), so none was made: an upload-only sync takes one request less.
   */
  downloadSkipped: boolean;
  /** True when the download was parsed and decrypted on the worker thread (see `decodeInWorkerFrom`). */
  decodedInWorker: boolean;
  /**
   * Documents the worker decrypted while their bytes were still arriving (large ones): only the checks of their
   * end were left when their last byte came.
   */
  docsDecodedWhileArriving: number;
}

/** Options of {@link Synchronizer}. */
export interface SynchronizerOptions {
  /** The local replica. */
  db: LocalDatabase;
  /** HTTP client configured for the user's server (base URL, CA, credentials). */
  http: HttpClient;
  /** The user's uuid: the server database is `user-<uuid>`. */
  uuid: string;
  /** The 512-byte remote storage secret the document keys derive from. */
  remoteSecret: Buffer;
  /** Largest number of documents per upload POST (default {@link DEFAULT_MAX_BATCH_DOCS}). */
  maxBatchDocs?: number;
  /** Largest estimated upload POST size in bytes (default {@link DEFAULT_MAX_BATCH_BYTES}). */
  maxBatchBytes?: number;
  /**
   * Which downloaded documents that this account did not encrypt are stored as-is: by default (`'encrypted'`) only
   * content encrypted to the user by someone else (scheme-2 preamble, or the original MX's `_enc_scheme: "pubkey"`
   * documents); `true` also accepts unencrypted documents (the original's behaviour); `false` refuses all. A
   * refused document fails the sync with `TamperedDocumentError` and nothing of the batch is applied.
   */
  allowExternalDocs?: ExternalDocPolicy;
  /** Also called with every progress report. Errors thrown by it (and by `progress` listeners) are ignored. */
  onProgress?: (p: SyncProgress) => void;
  /**
   * Downloads expected to bring at least this many content bytes are applied in bulk-write mode (see
   * `LocalDatabase.enterBulkWrite`); default {@link DEFAULT_BULK_WRITE_MIN_BYTES}.
   */
  bulkWriteMinBytes?: number;
  /**
   * Downloads that may bring at least this many documents (the server's generation minus the one last seen) are
   * parsed and decrypted on a worker thread while this thread writes to the database; default
   * {@link DEFAULT_DECODE_IN_WORKER_FROM}, `Infinity` never. The worker is shared by the process and started by
   * its first sync that may use it. If it cannot run, downloads are decoded on this thread.
   */
  decodeInWorkerFrom?: number;
}

/** Options of one {@link Synchronizer.sync} call. */
export interface SyncOptions {
  /** Abort the sync (requests in flight are cut; what was applied stays, as after any interruption). */
  signal?: AbortSignal;
}

/** Events of {@link Synchronizer}. */
export interface SynchronizerEvents {
  progress: [SyncProgress];
}

/** Syncs in flight, per local database: one at a time, callers arriving meanwhile share its result. */
const running = new WeakMap<LocalDatabase, Promise<number>>();

/**
 * Records in flight, per local database: the last sync's telling the server our generation after a download
 * (record_sync_info), which runs after the sync has resolved. It never rejects.
 */
const recording = new WeakMap<LocalDatabase, Promise<void>>();

interface Planned {
  docId: string;
  rev: string;
  change: Change;
  /** The stored JSON's UTF-8 bytes (null for a tombstone), zeroed once the batch is sent or the sync fails. */
  plaintext: Buffer | null;
}

/**
 * Downloaded documents are verified one by one but applied in transactions of up to this many documents or
 * content bytes: a commit costs about as much as writing a few hundred KiB (SQLCipher encrypts and writes every
 * dirty page; in bulk-write mode it also syncs the journal and the file), so committing per network chunk made
 * commits most of a download's time. Each document is still applied together with its server generation, so an
 * interrupted download resumes after the last commit. Memory holds one batch of ciphertext.
 */
const APPLY_MAX_DOCS = 1000;
const APPLY_MAX_BYTES = 4 * 1024 * 1024;

/** Takes the place of an applied document in its batch, so that its ciphertext can be collected at once. */
const RELEASED_ENTRY: SyncGetEntry = { id: '', rev: '', gen: 0, trans_id: '', content: null };

/**
 * Decoding on this thread, pending documents of at least this many content bytes are applied as soon as the
 * connection has nothing more buffered, instead of waiting for a full batch: the time the client would spend
 * waiting for the server's next bytes goes into verifying and writing what has arrived. Not in bulk-write mode,
 * where every commit also syncs. (Decoding on the worker, whatever is verified is applied whenever this thread
 * would wait.)
 */
const IDLE_APPLY_MIN_BYTES = 512 * 1024;

/**
 * A download's chunks are handed to the decoding worker as soon as it has nothing to do, else once this many bytes
 * have gathered: each hand-over costs a copy and a message on this thread.
 */
const HAND_OVER_MIN_BYTES = 1024 * 1024;

/**
 * Default size from which a download is applied in bulk-write mode (`LocalDatabase.enterBulkWrite`): the local WAL
 * is checkpointed every 16 MiB, and from there on each page is encrypted three times; below it the WAL writes each
 * page once during the sync, and the syncs of a rollback journal would cost more. Estimated from the announced
 * number of documents and the content bytes of those received so far.
 */
export const DEFAULT_BULK_WRITE_MIN_BYTES = 24 * 1024 * 1024;

function errorInfo(err: unknown): NonNullable<SyncStats['error']> {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: 'Unknown error' };
}

/**
 * Synchronizes one local database with the user's database on a Soledad server.
 *
 * @example
 * const sync = new Synchronizer({ db, http, uuid, remoteSecret: secrets.remoteSecret });
 * sync.on('progress', (p) => console.log(p.phase, p.docsSent, p.docsReceived));
 * const genBefore = await sync.sync();
 */
export class Synchronizer extends EventEmitter<SynchronizerEvents> {
  private readonly db: LocalDatabase;
  private readonly target: HttpSyncTarget;
  private readonly remoteSecret: Buffer;
  private readonly maxBatchDocs: number;
  private readonly maxBatchBytes: number;
  private readonly allowExternal: ExternalDocPolicy;
  private readonly onProgress: ((p: SyncProgress) => void) | undefined;
  private readonly bulkWriteMinBytes: number;
  private readonly decodeInWorkerFrom: number;
  private stats: SyncStats | undefined;

  constructor(opts: SynchronizerOptions) {
    super();
    this.db = opts.db;
    this.target = new HttpSyncTarget(opts.http, opts.uuid, opts.db.replicaUid);
    this.remoteSecret = opts.remoteSecret;
    this.maxBatchDocs = Math.max(1, opts.maxBatchDocs ?? DEFAULT_MAX_BATCH_DOCS);
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES);
    this.allowExternal = opts.allowExternalDocs ?? 'encrypted';
    this.onProgress = opts.onProgress;
    this.bulkWriteMinBytes = opts.bulkWriteMinBytes ?? DEFAULT_BULK_WRITE_MIN_BYTES;
    this.decodeInWorkerFrom = opts.decodeInWorkerFrom ?? DEFAULT_DECODE_IN_WORKER_FROM;
  }

  /** True while a sync of this local database runs (started by any synchronizer). */
  get syncing(): boolean {
    return running.has(this.db);
  }

  /**
   * Resolves when the server has answered the record of this database's last sync (or the request failed: the next
   * sync then tells it). `close()` waits for it so that a closed database leaves nothing in flight; the next sync
   * waits for it too. Never rejects.
   *
   * @example
   * await sync.sync();
   * await sync.recorded(); // the server now knows this device's generation
   */
  recorded(): Promise<void> {
    return recording.get(this.db) ?? Promise.resolve();
  }

  /** Phases, counts and timings of the last sync this synchronizer ran, or `undefined` before the first. */
  lastStats(): SyncStats | undefined {
    return this.stats === undefined ? undefined : { ...this.stats, phases: { ...this.stats.phases } };
  }

  /**
   * Synchronize now. Resolves with the local generation before the sync (as the original does). While a sync of
   * the same local database runs, a call waits for it and shares its outcome.
   */
  sync(opts: SyncOptions = {}): Promise<number> {
    const current = running.get(this.db);
    if (current !== undefined) return current;
    const run = this.run(opts).finally(() => {
      if (running.get(this.db) === run) running.delete(this.db);
    });
    running.set(this.db, run);
    return run;
  }

  private async run(opts: SyncOptions): Promise<number> {
    // The last sync's record first, so that the server's answer below includes it.
    await this.recorded();
    // The decoding worker loads while the info and upload steps run (once per process; not when a database is
    // only opened, e.g. by a command that never syncs).
    if (Number.isFinite(this.decodeInWorkerFrom)) DecodeWorker.shared();
    const signal = opts.signal;
    const syncId = randomUUID();
    const t0 = performance.now();
    const stats: SyncStats = {
      syncId, ok: false, startedAt: Date.now(), durationMs: 0, phases: {}, upToDate: false, ensured: false,
      targetReplicaUid: null, localGenerationBefore: this.db.getGenerationInfo().generation, localGenerationAfter: 0,
      targetGenerationBefore: 0, targetGenerationAfter: 0, docsSent: 0, batches: 0, docsReceived: 0,
      docsInserted: 0, docsConflicted: 0, bytesSent: 0, bytesReceived: 0, recordedWithTarget: false, downloadSkipped: false,
      decodedInWorker: false, docsDecodedWhileArriving: 0,
    };
    this.stats = stats;
    const progress: SyncProgress = {
      syncId, phase: 'info', docsSent: 0, docsToSend: 0, docsReceived: 0, docsToReceive: null, bytesSent: 0,
      bytesReceived: 0, batchesSent: 0,
    };
    const emit = (): void => {
      const snapshot = { ...progress };
      // A failing progress display must not fail, or half-fail, the sync it reports on.
      try {
        this.onProgress?.(snapshot);
      } catch {
        // ignored on purpose
      }
      try {
        this.emit('progress', snapshot);
      } catch {
        // ignored on purpose
      }
    };
    let phaseStart = performance.now();
    const enter = (phase: SyncPhase): void => {
      const now = performance.now();
      if (progress.phase !== 'done' && progress.phase !== 'failed') {
        stats.phases[progress.phase] = (stats.phases[progress.phase] ?? 0) + (now - phaseStart);
      }
      phaseStart = now;
      progress.phase = phase;
      emit();
    };
    const finish = (): void => {
      stats.durationMs = performance.now() - t0;
      stats.docsSent = progress.docsSent;
      stats.docsReceived = progress.docsReceived;
      stats.bytesSent = progress.bytesSent;
      stats.bytesReceived = progress.bytesReceived;
      stats.batches = progress.batchesSent;
      try {
        stats.localGenerationAfter = this.db.getGenerationInfo().generation;
      } catch {
        // The database may have been closed under a failed sync; the stats stay usable.
      }
    };

    // Document keys for this run only: zeroed when it ends, whatever the outcome.
    const keys = new DocKeys(this.remoteSecret);
    try {
      emit();
      const myGen = await this.exchange(syncId, stats, progress, emit, enter, signal, keys);
      enter('done');
      stats.ok = true;
      finish();
      return myGen;
    } catch (err) {
      stats.error = errorInfo(err);
      enter('failed');
      finish();
      throw err;
    } finally {
      keys.close();
    }
  }

  private async exchange(
    syncId: string,
    stats: SyncStats,
    progress: SyncProgress,
    emit: () => void,
    enter: (phase: SyncPhase) => void,
    signal: AbortSignal | undefined,
    keys: DocKeys,
  ): Promise<number> {
    const db = this.db;
    const localUid = db.replicaUid;

    // Steps 1–2: what the server knows; refuse a server that is us, or that knows a history we do not have.
    const info = await this.target.getSyncInfo(signal);
    let targetUid: string | null = info?.target_replica_uid ?? null;
    const ensure = info === null;
    stats.ensured = ensure;
    const targetGen = info?.target_replica_generation ?? 0;
    const targetTransId = info?.target_replica_transaction_id ?? '';
    let targetMyGen = info?.source_replica_generation ?? 0;
    let targetMyTransId = info?.source_transaction_id ?? '';
    stats.targetReplicaUid = targetUid;
    if (targetUid === localUid) throw new InvalidReplicaUidError('The server database has this replica\'s own uid');
    // A local database restored from a backup, or copied from another device, fails here instead of merging.
    db.validateGenAndTransId(targetMyGen, targetMyTransId);

    // The record of an earlier sync that never reached this server (the process ended first, or the request
    // failed): tell it now, before anything is sent, or the documents that sync downloaded would go back up.
    const pending = db.getPendingSyncRecord();
    if (pending !== null) {
      if (pending.replicaUid === targetUid && pending.generation > targetMyGen) {
        db.validateGenAndTransId(pending.generation, pending.transactionId);
        await this.target.recordSyncInfo(pending.generation, pending.transactionId, signal);
        targetMyGen = pending.generation;
        targetMyTransId = pending.transactionId;
      }
      db.setPendingSyncRecord(null);
    }

    // Step 3: our changes the server has not seen; only syncable documents ever leave the device.
    const { generation: myGen, changes } = db.whatsChanged(targetMyGen, { syncableOnly: true });
    stats.localGenerationBefore = myGen;
    progress.docsToSend = changes.length;

    // Step 4: what we last saw of the server.
    const known = targetUid === null ? { generation: 0, transactionId: '' } : db.getReplicaGenAndTransId(targetUid);
    stats.targetGenerationBefore = known.generation;
    stats.targetGenerationAfter = known.generation;
    if (targetGen < known.generation) {
      throw new RollbackError(`The server is at generation ${targetGen}, older than the ${known.generation} already seen`);
    }
    // Step 5: nothing new on either side.
    // (A missing server database with nothing to send stops here too, as in the original: nothing is created.)
    if (changes.length === 0 && targetGen === known.generation) {
      if (targetTransId !== known.transactionId) {
        throw new InvalidTransactionIdError('The server\'s history differs from the one seen at the last sync');
      }
      stats.upToDate = true;
      return myGen;
    }

    // Steps 6–7: upload in bounded batches, all under one sync_id.
    enter('upload');
    const sent = new Map<string, string>();
    let afterSend: { generation: number; transactionId: string } | null = null;
    let nothingToDownload = false;
    let ensureNext = ensure;
    for (const batch of this.planBatches(changes)) {
      signal?.throwIfAborted();
      const header: SyncHeader = {
        last_known_generation: known.generation,
        last_known_trans_id: known.transactionId,
        sync_id: syncId,
        ensure: ensureNext,
      };
      const docsBefore = progress.docsSent;
      const bytesBefore = progress.bytesSent;
      const entries = (): Iterable<SyncPutEntryOut> => {
        // A retried attempt starts over: count its documents and bytes once.
        progress.docsSent = docsBefore;
        progress.bytesSent = bytesBefore;
        return this.encryptBatch(batch, keys, () => {
          progress.docsSent += 1;
          emit();
        });
      };
      let res: SyncPutResponse;
      try {
        res = await this.target.putBatch(header, entries, {
          ...(signal ? { signal } : {}),
          onBytes: (n) => { progress.bytesSent += n; },
        });
      } finally {
        for (const p of batch) p.plaintext?.fill(0);
      }
      for (const p of batch) sent.set(p.docId, p.rev);
      if (res.replica_uid !== undefined && targetUid === null) targetUid = res.replica_uid;
      ensureNext = false;
      afterSend = { generation: res.new_generation, transactionId: res.new_transaction_id };
      nothingToDownload = res.nothing_to_download === true;
      progress.batchesSent += 1;
      emit();
    }
    if (targetUid === localUid) throw new InvalidReplicaUidError('The server database has this replica\'s own uid');

    // Steps 8–9: download what we have not seen, verify each document, then apply it; unless the server said, in
    // answer to the last upload, that there is nothing to download: then its generation after that upload is the
    // one the download would have answered.
    const counts = { inserted: 0, conflicted: 0 };
    let download: { targetUid: string; generation: number; transactionId: string };
    if (nothingToDownload && afterSend !== null && targetUid !== null) {
      download = { targetUid, ...afterSend };
      stats.downloadSkipped = true;
    } else {
      enter('download');
      download = await this.download(
        { last_known_generation: known.generation, last_known_trans_id: known.transactionId, sync_id: syncId,
          ensure: targetUid === null },
        targetUid, sent, progress, counts, emit, signal, keys, stats, targetGen - known.generation,
      );
    }
    targetUid = download.targetUid;
    stats.targetReplicaUid = targetUid;
    stats.docsInserted = counts.inserted;
    stats.docsConflicted = counts.conflicted;

    let newGen = download.generation;
    let newTransId = download.transactionId;
    if (afterSend !== null && afterSend.generation > newGen) {
      newGen = afterSend.generation;
      newTransId = afterSend.transactionId;
    }
    if (newGen < known.generation) {
      throw new RollbackError(`The server answered generation ${newGen}, older than the ${known.generation} already seen`);
    }

    // Step 10: remember the server's generation; tell it ours only if nothing else happened locally meanwhile.
    enter('record');
    const numInserted = counts.inserted + counts.conflicted;
    const cur = db.getGenerationInfo();
    const record: PendingSyncRecord | null = numInserted > 0 && cur.generation === myGen + numInserted
      ? { replicaUid: targetUid, generation: cur.generation, transactionId: cur.transactionId }
      : null;
    db.transaction(() => {
      db.setReplicaGenAndTransId(targetUid, newGen, newTransId);
      if (record !== null) db.setPendingSyncRecord(record);
    });
    stats.targetGenerationAfter = newGen;
    if (record !== null) {
      this.recordInBackground(record);
      stats.recordedWithTarget = true;
    }
    return myGen;
  }

  /**
   * Tell the server our generation after a download without holding up the sync: the documents are already applied,
   * and the record only spares the next sync from sending them back. Over a real network that is a round trip less
   * per sync. The local database keeps the record until the server has answered (or a later sync sees the server
   * has it), so a record lost with the process or the connection is told then. The request is not tied to the sync's abort signal (the sync is
   * over); `close()` waits for it.
   */
  private recordInBackground(record: PendingSyncRecord): void {
    const db = this.db;
    const inFlight: Promise<void> = this.target.recordSyncInfo(record.generation, record.transactionId).then(
      () => {
        // The server has it: the next sync need not look (nor write to drop it then). No sync can have left
        // another record meanwhile: each waits for this one first.
        try {
          if (db.isOpen) db.setPendingSyncRecord(null);
        } catch {
          // Busy or closed: the next sync drops it once it sees the server has it.
        }
      },
      () => undefined,
    ).finally(() => {
      if (recording.get(db) === inFlight) recording.delete(db);
    });
    recording.set(db, inFlight);
  }

  /**
   * Split the changes into batches of at most `maxBatchDocs` documents and about `maxBatchBytes` bytes, loading
   * documents only as batches are needed (lazily, so memory holds one batch of plaintext).
   */
  private *planBatches(changes: readonly Change[]): Generator<Planned[]> {
    let batch: Planned[] = [];
    let bytes = 0;
    for (let i = 0; i < changes.length; i += this.maxBatchDocs) {
      const slice = changes.slice(i, i + this.maxBatchDocs);
      // The stored JSON text is what gets encrypted: no parse and re-serialization of every document.
      const docs = this.db.getStoredForSync(slice.map((c) => c.docId));
      const byId = new Map(docs.map((d) => [d.docId, d]));
      for (const change of slice) {
        const doc = byId.get(change.docId);
        // Re-checked here: a document made private after `whatsChanged` still never leaves the device.
        if (doc === undefined || !doc.syncable) continue;
        const plaintext = doc.json;
        const content = plaintext === null ? 0 : encryptedContentLength(plaintext.length);
        // Raw content line + meta line (without the content, see encodeSyncPut) + framing.
        const size = content + doc.docId.length + doc.rev.length + 160;
        if (batch.length > 0 && (batch.length >= this.maxBatchDocs || bytes + size > this.maxBatchBytes)) {
          yield batch;
          batch = [];
          bytes = 0;
        }
        batch.push({ docId: doc.docId, rev: doc.rev, change, plaintext });
        bytes += size;
      }
    }
    if (batch.length > 0) yield batch;
  }

  /** The wire entries of one batch; each document is encrypted only when the stream asks for it. */
  private *encryptBatch(batch: readonly Planned[], keys: DocKeys, onDoc: () => void): Generator<SyncPutEntryOut> {
    let idx = 0;
    for (const { docId, rev, change, plaintext } of batch) {
      idx += 1;
      const content = plaintext === null ? null : encryptDocContentBytes(keys, docId, rev, plaintext);
      onDoc();
      yield {
        id: docId, rev, content, gen: change.generation, trans_id: change.transactionId,
        number_of_docs: batch.length, doc_idx: idx,
      };
    }
  }

  private async download(
    header: SyncHeader,
    knownTargetUid: string | null,
    sent: ReadonlyMap<string, string>,
    progress: SyncProgress,
    counts: { inserted: number; conflicted: number },
    emit: () => void,
    signal: AbortSignal | undefined,
    keys: DocKeys,
    stats: SyncStats,
    expectedChanges: number,
  ): Promise<{ targetUid: string; generation: number; transactionId: string }> {
    let targetUid = knownTargetUid;
    let meta: { generation: number; transactionId: string } | null = null;
    const res = await this.target.openDownload(header, signal);
    const parser = new SyncGetResponseParser();
    let done = false;

    // Received documents waiting to be verified and applied in one transaction (see APPLY_MAX_DOCS). They are
    // verified inside that transaction, just before they are applied: the local revision the rollback check needs
    // is then read where it is written, in one lock of the file instead of one per document.
    let pending: Array<SyncGetEntry | DecodedDoc> = [];
    let pendingBytes = 0;
    const pendingIds = new Set<string>();
    /** Whether bulk-write mode was asked for (`null`: not yet), and obtained. */
    let bulk: boolean | null = null;
    /** Documents and content bytes handed to apply so far (to estimate the size of the whole download). */
    let docsSeen = 0;
    let bytesSeen = 0;
    /**
     * Verify and apply the pending documents in one transaction; `final` when no more will follow. A document that
     * fails verification throws after the ones before it are applied (and committed); it and the rest are not.
     */
    const apply = (final = false): void => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      docsSeen += batch.length;
      bytesSeen += pendingBytes;
      pendingBytes = 0;
      pendingIds.clear();
      const uid = targetUid!;
      // A large download writes without the WAL (see DEFAULT_BULK_WRITE_MIN_BYTES).
      if (!final && bulk === null && progress.docsToReceive !== null
        && (bytesSeen / docsSeen) * progress.docsToReceive >= this.bulkWriteMinBytes) {
        bulk = this.db.enterBulkWrite();
      }
      const refusal: { error?: unknown } = {};
      const { remoteSecret, allowExternal } = this;
      const states = this.db.transaction(() => {
        const locals = this.db.getRevsAndSyncable(batch.map((e) => e.id));
        // Verified one at a time as they are applied, and let go of: a batch's ciphertexts and plaintexts alive
        // together until the end of it were what the garbage collector copied most during a large download.
        function* verified(): Generator<IncomingVersion> {
          for (let i = 0; i < batch.length; i++) {
            const entry = batch[i]!;
            let version: IncomingVersion;
            try {
              const local = locals.get(entry.id);
              assertNotRollback(local?.rev ?? null, entry, sent);
              const decoded = 'texts' in entry
                ? fromWorker(entry)
                : decodeIncoming(remoteSecret, entry, { allowExternal, docKeys: keys });
              const { doc, json } = decoded;
              // A document this device keeps private stays private when another device updates it.
              if (local !== undefined) doc.syncable = local.syncable;
              version = {
                doc, replicaGen: entry.gen, replicaTransId: entry.trans_id, knownAbsent: local === undefined,
                ...(json === null ? {} : { json, contentUnparsed: 'unparsed' in decoded }),
              };
            } catch (error) {
              // The ones before it are applied; it and the rest are not.
              refusal.error = error;
              return;
            }
            batch[i] = RELEASED_ENTRY;
            yield version;
          }
        }
        return this.db.putDocsIfNewer(verified(), { saveConflict: true, replicaUid: uid }).states;
      });
      for (const state of states) {
        if (state === 'inserted') counts.inserted += 1;
        else if (state === 'conflicted') counts.conflicted += 1;
      }
      progress.docsReceived += states.length;
      emit();
      if ('error' in refusal) throw refusal.error;
    };

    const handle = (items: ReadonlyArray<SyncGetItem | DecodedItem>): void => {
      for (const item of items) {
        if (item.type === 'meta') {
          meta = { generation: item.meta.new_generation, transactionId: item.meta.new_transaction_id };
          if (targetUid === null && item.meta.replica_uid !== undefined) targetUid = item.meta.replica_uid;
          if (targetUid === null) throw new BrokenSyncStreamError('The server did not tell its replica uid');
          if (targetUid === this.db.replicaUid) {
            throw new InvalidReplicaUidError('The server database has this replica\'s own uid');
          }
          if (item.meta.new_generation < header.last_known_generation) {
            throw new RollbackError('The server answered a generation older than the one already seen');
          }
          progress.docsToReceive = item.meta.number_of_changes;
          continue;
        }
        const entry = 'entry' in item ? item.entry : item.doc;
        if ('whileArriving' in entry) stats.docsDecodedWhileArriving += 1;
        // A document listed twice is checked against its first version applied.
        if (pendingIds.has(entry.id)) apply();
        pending.push(entry);
        pendingIds.add(entry.id);
        pendingBytes += 'texts' in entry ? entry.bytes : entry.content === null ? 0 : entry.content.length;
        if (pending.length >= APPLY_MAX_DOCS || pendingBytes >= APPLY_MAX_BYTES) apply();
      }
    };

    // Parsing and decryption run on the worker thread when the download is large, overlapping with the writes here.
    let session: DecodeSession | null = null;
    if (expectedChanges >= this.decodeInWorkerFrom) {
      const worker = DecodeWorker.shared();
      if (worker.ready || (expectedChanges >= WAIT_FOR_WORKER_FROM && await worker.whenReady())) {
        session = worker.open(this.remoteSecret, this.allowExternal);
      }
    }
    stats.decodedInWorker = session !== null;
    try {
      if (session !== null) {
        // Whatever the worker has verified is written while waiting for more, however little: outside bulk-write
        // mode a commit costs no sync, and in the 2 MB scenario the small documents were otherwise written only
        // after the last (large) one had arrived.
        await this.readThroughWorker(session, res.body, progress, handle, () => {
          if (bulk !== true) apply();
        });
      } else {
        const chunks = res.body[Symbol.asyncIterator]();
        for (;;) {
          let next: IteratorResult<Buffer>;
          try {
            next = await chunks.next();
          } catch (err) {
            // A cut connection or a stalled body, not a verdict on the data: the next sync resumes after what was
            // applied.
            throw mapTransportError(err, 'download');
          }
          if (next.done === true) break;
          progress.bytesReceived += next.value.length;
          handle(parser.push(next.value));
          if (bulk !== true && pendingBytes >= IDLE_APPLY_MIN_BYTES && res.body.readableLength === 0) apply();
        }
        handle(parser.end());
      }
      apply(true);
      done = true;
    } catch (err) {
      // Whatever stopped the download (a refused document, a broken stream, a cut connection, an abort), the
      // documents verified before it are applied, so the next sync resumes after them.
      try {
        apply(true);
      } catch {
        // The error that stopped the download is the one to report.
      }
      throw err;
    } finally {
      session?.close();
      if (!done) res.body.destroy();
      if (bulk === true) {
        try {
          this.db.leaveBulkWrite();
        } catch {
          // Another connection holds the file: it stays in rollback mode (as safe) until the next open.
        }
      }
    }
    if (meta === null || targetUid === null) throw new BrokenSyncStreamError('The sync response had no metadata');
    const m: { generation: number; transactionId: string } = meta;
    return { targetUid, generation: m.generation, transactionId: m.transactionId };
  }

  /**
   * Read a download's body into the decoding worker and hand what it answers to `handle`, in stream order, until
   * the stream has ended and every item is handled. The body is read through events while the worker decodes and
   * `handle` writes, so the network, the worker and this thread's writes overlap; it is paused while the worker
   * has enough to do. `idle` is called whenever this thread would otherwise wait. A cut connection throws after
   * every item decoded before the cut is handled.
   */
  private async readThroughWorker(
    session: DecodeSession,
    body: Readable,
    progress: SyncProgress,
    handle: (items: readonly DecodedItem[]) => void,
    idle: () => void,
  ): Promise<void> {
    const drain = (): void => {
      for (let items = session.take(); items.length > 0; items = session.take()) handle(items);
    };
    let held: Buffer[] = [];
    let heldBytes = 0;
    const flush = (): void => {
      if (held.length === 0) return;
      session.push(held);
      held = [];
      heldBytes = 0;
    };
    let ended = false;
    let failed: { error: unknown } | undefined;
    const onData = (chunk: Buffer): void => {
      progress.bytesReceived += chunk.length;
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes >= HAND_OVER_MIN_BYTES || session.answered) flush();
      if (session.saturated) body.pause();
    };
    const onEnd = (): void => {
      ended = true;
      session.poke();
    };
    const onError = (error: unknown): void => {
      failed = { error };
      session.poke();
    };
    // A body that failed before these listeners (while the worker was loading) has already said so.
    if (body.errored !== null) failed = { error: body.errored };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    try {
      for (;;) {
        if (failed !== undefined) {
          // A cut connection or a stalled body, not a verdict on the data: what arrived before it is applied (a
          // refusal among it, being earlier in the stream, is then the error reported), and the next sync resumes
          // after it.
          const cut = mapTransportError(failed.error, 'download');
          flush();
          while (!session.answered && !session.done) {
            drain();
            await session.progress();
          }
          drain();
          throw cut;
        }
        drain();
        if (ended) break;
        // Chunks held back while the worker was busy go to it as soon as it has answered everything before them.
        if (session.answered) flush();
        if (body.isPaused() && !session.saturated) body.resume();
        if (!session.hasNews && failed === undefined) {
          idle();
          await session.progress();
        }
      }
    } finally {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
    }
    flush();
    session.end();
    while (!session.done) {
      drain();
      // The last (often the largest) document is still being decoded: write what came before it meanwhile.
      if (!session.hasNews) idle();
      await session.progress();
    }
    drain();
  }
}

/**
 * The document the worker verified, or the error verifying it raised there. The worker has checked that its text
 * is valid UTF-8 and a JSON object: the bytes are stored as they are and parsed only if the database needs the
 * object.
 */
function fromWorker(decoded: DecodedDoc): { doc: Document; json: Buffer | null; unparsed: true } {
  return { doc: new Document(decoded.id, decoded.rev, null), json: decodedJson(decoded), unparsed: true };
}
