/**
 * The client's BlobManager (seed "Blobs Client-side Python API" and "Blobs Synchronization"), Promise-based.
 *
 * Blobs are immutable. Each one lives in the local SQLCipher database `<uuid>_blobs.db` (cleartext, encrypted at
 * rest by SQLCipher) with a namespace and a sync status, and on the server encrypted with AES-256-GCM under its own
 * key (fact sheet §3a–3b, rev `ImmutableRevision`). Everything is streamed: local chunks → encryption → HTTP on the
 * way up, HTTP → decryption → local chunks on the way down, and a download is stored as `SYNCED` only after its tag
 * verified.
 */
import { EventEmitter } from 'node:events';
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { Semaphore } from '../../common/concurrency.js';
import { blobCiphertextSize, decryptBlobStream, encryptBlobStream } from '../../common/crypto/blob-crypto.js';
import type { DecryptBlobOptions } from '../../common/crypto/blob-crypto.js';
import {
  BadRequestError,
  BlobAlreadyExistsError,
  BlobNotFoundError,
  ConnectionError,
  DatabaseClosedError,
  EncryptionSchemeNotImplementedError,
  HttpError,
  InvalidPreambleError,
  MacMismatchError,
  MaximumRetriesError,
  RetriableTransferError,
  TamperedDocumentError,
  UnavailableError,
} from '../../common/errors.js';
import { DEFAULT_NAMESPACE, isValidBlobName } from '../../common/protocol/blobs.js';
import type { BlobFlag, BlobOrder, QuotaReport } from '../../common/protocol/blobs.js';
import type { HttpClient } from '../http/client.js';
import { LocalBlobStore } from './local-store.js';
import type { BlobSyncStatus, LocalBlobEntry } from './local-store.js';
import { BlobsRemote } from './remote.js';
import { TransferQueue } from './transfer-queue.js';
import type { RetrySchedule, RetryVerdict } from './transfer-queue.js';

/** Blob content accepted by {@link BlobManager.put}: bytes, text (UTF-8) or a stream of either. */
export type BlobData = Uint8Array | string | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/** Where a blob lives: its namespace (default `default`). */
export interface NamespaceOption {
  /** The namespace; absent or `''` means `default`. */
  namespace?: string;
}

/** Options of {@link BlobManager.put}. */
export interface PutOptions extends NamespaceOption {
  /** Keep the blob on this device only: it is never sent, by `put` or by any sync. */
  localOnly?: boolean;
  /**
   * When to upload: `'await'` (default, as the original: `put` resolves once the server has it), `'queue'`
   * (resolve once stored locally, upload in the background; failures are reported as `transfer-error` events),
   * or `'later'` (leave it `PENDING_UPLOAD` for the next {@link BlobManager.sendMissing} / sync).
   */
  upload?: 'await' | 'queue' | 'later';
}

/** Options of {@link BlobManager.get}. */
export interface GetOptions extends NamespaceOption {
  /**
   * A blob the server stored as already encrypted by someone else (scheme 2, the incoming box) cannot be
   * verified here: `'reject'` (default) fails with `EncryptionSchemeNotImplementedError`, `'passthrough'` stores
   * and returns its payload as is (what the original client does).
   */
  external?: 'reject' | 'passthrough';
}

/** Options of the batch transfers ({@link BlobManager.fetchMissing}, {@link BlobManager.sendMissing}, sync). */
export interface TransferOptions extends NamespaceOption {
  /**
   * `'single'` (default): one request per blob, as the original client. `'stream'`: many blobs per request
   * through `POST /stream/<uuid>/` (batches of up to `streamBatchBlobs` blobs / `streamBatchBytes` bytes), far
   * fewer round trips for many small blobs. A batch the server refuses as a whole (an id already there or gone)
   * falls back to single requests, which settle each blob on its own.
   */
  transport?: 'single' | 'stream';
}

/** Query of {@link BlobManager.remoteList}. */
export interface RemoteListOptions extends NamespaceOption {
  /** `'asc'` (oldest first, `+date`) or `'desc'` (newest first, `-date`). */
  orderBy?: BlobOrder;
  /** Only blobs carrying this flag. */
  filterFlag?: BlobFlag;
  /** Return `{ count }` instead of the ids. */
  onlyCount?: boolean;
  /** List deleted blobs instead of live ones. */
  deleted?: boolean;
}

/** One blob's transfer progress. */
export interface TransferProgress {
  /** Which way the bytes go. */
  direction: 'upload' | 'download';
  /** The blob's namespace. */
  namespace: string;
  /** The blob. */
  blobId: string;
  /** Bytes of the encrypted blob moved so far. */
  bytesDone: number;
  /** Size of the encrypted blob, when known. */
  bytesTotal: number | undefined;
}

/** A transfer that did not succeed. */
export interface TransferFailure {
  /** What was attempted. */
  direction: 'upload' | 'download' | 'delete';
  /** The blob's namespace. */
  namespace: string;
  /** The blob. */
  blobId: string;
  /** Why it failed (a named error where one applies). */
  error: Error;
}

/** Outcome of a batch of transfers. */
export interface TransferSummary {
  /** Ids transferred. */
  succeeded: string[];
  /** Transfers that failed (they stay pending unless the error says otherwise). */
  failed: TransferFailure[];
}

/** Outcome of {@link BlobManager.sync}. */
export interface BlobSyncSummary {
  /** Blobs fetched from the server. */
  downloaded: TransferSummary;
  /** Blobs sent to the server. */
  uploaded: TransferSummary;
  /** Blobs removed here because they were deleted on the server. */
  deletedLocally: string[];
}

/** Events of a {@link BlobManager}. */
export interface BlobManagerEvents {
  /** Bytes moved for one blob (emitted at start, per chunk, and at the end). */
  progress: [TransferProgress];
  /** A status change of one blob. */
  status: [{
    /** The blob's namespace. */
    namespace: string;
    /** The blob. */
    blobId: string;
    /** Its new sync status. */
    status: BlobSyncStatus;
  }];
  /** A background transfer (`upload: 'queue'`) failed. */
  'transfer-error': [TransferFailure];
}

/**
 * Options of {@link BlobManager.open}.
 *
 * @example
 * const blobs = BlobManager.open({ uuid, localPath: join(dir, `${uuid}_blobs.db`), localKey, remoteSecret, http });
 */
export interface BlobManagerOptions {
  /** The user's uuid. */
  uuid: string;
  /** Path of the local database, by convention `<dir of the docs db>/<uuid>_blobs.db`. */
  localPath: string;
  /** The 32-byte raw SQLCipher key (the same as the documents database's). */
  localKey: Buffer;
  /** The 512-byte remote secret: blob keys are HMAC-SHA256(remoteSecret[64:], blobId). */
  remoteSecret: Buffer;
  /** The server connection; without it the manager works offline (everything stays pending). */
  http?: HttpClient;
  /** Most transfers at once (default 3). */
  concurrentTransfers?: number;
  /** Most local writes at once (default 100). */
  concurrentWrites?: number;
  /** Tag failures of one blob before it is marked `FAILED_DOWNLOAD` (default 3). */
  maxDecryptRetries?: number;
  /** Waits between retries (default the seed's 10 s, 20 s, … 60 s). */
  retrySchedule?: RetrySchedule;
  /** Attempts of one transfer before {@link MaximumRetriesError} (default 10). */
  maxTransferAttempts?: number;
  /** Replaceable sleep for the retry waits (tests). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Size of the chunks blobs are stored in locally (default 64 KiB). */
  chunkSize?: number;
  /** Most blobs in one `/stream/` request (default 100). */
  streamBatchBlobs?: number;
  /** Most bytes in one `/stream/` request (default 8 MiB; a larger blob travels alone). */
  streamBatchBytes?: number;
}

const CORRUPTION_CODES = new Set([
  new MacMismatchError().code,
  new InvalidPreambleError().code,
  new TamperedDocumentError().code,
  new EncryptionSchemeNotImplementedError().code,
]);

function isCorruption(err: unknown): boolean {
  return err instanceof Error && CORRUPTION_CODES.has((err as { code?: string }).code ?? '');
}

/** Failures that may go away by themselves: the network, an overloaded or failing server. */
function isTransient(err: unknown): boolean {
  if (err instanceof ConnectionError || err instanceof UnavailableError || err instanceof RetriableTransferError) {
    return true;
  }
  // HttpError covers 5xx answers without a catalogued meaning (and HttpStatusError for any status).
  if (err instanceof HttpError) {
    const status = (err as { httpStatus?: number }).httpStatus ?? err.status;
    return status >= 500 && status !== 507;
  }
  return false;
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

async function* asChunks(data: BlobData): AsyncGenerator<Uint8Array> {
  if (typeof data === 'string') {
    yield Buffer.from(data, 'utf8');
    return;
  }
  if (data instanceof Uint8Array) {
    yield data;
    return;
  }
  for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
    yield typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
  }
}

function b64u(data: Buffer): string {
  return data.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/**
 * Manages a user's blobs locally and on the server.
 *
 * @example
 * const blobs = BlobManager.open({ uuid, localPath, localKey, remoteSecret, http });
 * await blobs.put('7e57-1d', createReadStream('photo.jpg'));
 * const stream = await blobs.get('7e57-1d');
 * await blobs.sync();
 * await blobs.close();
 */
export class BlobManager extends EventEmitter<BlobManagerEvents> {
  /** The seed's `max_decrypt_retries`. */
  readonly maxDecryptRetries: number;
  /** The user's uuid. */
  readonly uuid: string;
  private readonly local: LocalBlobStore;
  private readonly remote: BlobsRemote | undefined;
  private readonly remoteSecret: Buffer;
  private readonly queue: TransferQueue;
  private readonly writes: Semaphore;
  private readonly streamBatchBlobs: number;
  private readonly streamBatchBytes: number;
  private closed = false;

  private constructor(options: BlobManagerOptions, local: LocalBlobStore) {
    super();
    this.uuid = options.uuid;
    this.local = local;
    this.remoteSecret = options.remoteSecret;
    this.remote = options.http === undefined ? undefined : new BlobsRemote(options.http, options.uuid);
    this.maxDecryptRetries = options.maxDecryptRetries ?? 3;
    this.writes = new Semaphore(options.concurrentWrites ?? 100);
    this.streamBatchBlobs = options.streamBatchBlobs ?? 100;
    this.streamBatchBytes = options.streamBatchBytes ?? 8 * 1024 * 1024;
    const queueOptions: ConstructorParameters<typeof TransferQueue>[0] = { concurrency: options.concurrentTransfers ?? 3 };
    if (options.retrySchedule !== undefined) queueOptions.schedule = options.retrySchedule;
    if (options.maxTransferAttempts !== undefined) queueOptions.maxAttempts = options.maxTransferAttempts;
    if (options.sleep !== undefined) queueOptions.sleep = options.sleep;
    this.queue = new TransferQueue(queueOptions);
  }

  /** Open (or create) the local database and return a manager. Nothing is transferred until asked. */
  static open(options: BlobManagerOptions): BlobManager {
    if (!isValidBlobName(options.uuid)) throw new BadRequestError('Invalid user id');
    const local = LocalBlobStore.open(options.localPath, options.localKey, options.chunkSize);
    return new BlobManager(options, local);
  }

  /** True when a server is configured. */
  get hasRemote(): boolean {
    return this.remote !== undefined;
  }

  // ---- helpers ----

  private check(): void {
    if (this.closed) throw new DatabaseClosedError('The blob manager is closed');
  }

  private ns(options: NamespaceOption | undefined): string {
    const ns = options?.namespace;
    if (ns === undefined || ns === '') return DEFAULT_NAMESPACE;
    if (!isValidBlobName(ns)) throw new BadRequestError('Invalid namespace');
    return ns;
  }

  private id(blobId: string): string {
    if (!isValidBlobName(blobId)) throw new BadRequestError('Invalid blob id: only letters, digits, "-" and "_"');
    return blobId;
  }

  private requireRemote(): BlobsRemote {
    if (this.remote === undefined) throw new ConnectionError('No server configured for blobs');
    return this.remote;
  }

  private setStatus(namespace: string, blobId: string, status: BlobSyncStatus): void {
    this.local.setStatus(namespace, blobId, status);
    this.emit('status', { namespace, blobId, status });
  }

  private progress(p: TransferProgress): void {
    this.emit('progress', p);
  }

  // ---- local ----

  /**
   * Store a blob locally and (unless `localOnly`) upload it. Blobs are immutable: an id that exists here, or on
   * the server when it is first uploaded, is a {@link BlobAlreadyExistsError}.
   *
   * @example
   * await blobs.put('b-1', Buffer.from('hello'), { namespace: 'photos' });
   * await blobs.put('b-2', createReadStream(file), { upload: 'queue' });
   */
  async put(blobId: string, data: BlobData, options: PutOptions = {}): Promise<void> {
    this.check();
    const id = this.id(blobId);
    const namespace = this.ns(options);
    if (this.local.entry(namespace, id)?.hasContent === true || this.local.isBusy(namespace, id)) {
      throw new BlobAlreadyExistsError(`Blob already exists: ${id}`);
    }
    const status: BlobSyncStatus = options.localOnly === true ? 'LOCAL_ONLY' : 'PENDING_UPLOAD';
    const release = await this.writes.acquire();
    try {
      this.check();
      const writer = this.local.writer(namespace, id);
      try {
        for await (const chunk of asChunks(data)) writer.write(chunk);
        writer.commit(status);
      } catch (err) {
        writer.abort();
        throw err;
      }
    } finally {
      release();
    }
    this.emit('status', { namespace, blobId: id, status });
    if (status === 'LOCAL_ONLY' || this.remote === undefined) return;
    const mode = options.upload ?? 'await';
    if (mode === 'later') return;
    const upload = this.uploadBlob(namespace, id, true);
    if (mode === 'await') {
      await upload;
      return;
    }
    upload.catch((err: unknown) => {
      this.emit('transfer-error', { direction: 'upload', namespace, blobId: id, error: toError(err) });
    });
  }

  /**
   * The blob's content as a stream: from local storage, or downloaded (and verified, and stored) first.
   * {@link BlobNotFoundError} when neither has it.
   */
  async get(blobId: string, options: GetOptions = {}): Promise<Readable> {
    this.check();
    const id = this.id(blobId);
    const namespace = this.ns(options);
    await this.ensureLocal(namespace, id, options.external ?? 'reject');
    return this.local.read(namespace, id);
  }

  /** Make sure the blob's content is stored here, downloading it if needed; resolves when it is. */
  async download(blobId: string, options: GetOptions = {}): Promise<void> {
    this.check();
    await this.ensureLocal(this.ns(options), this.id(blobId), options.external ?? 'reject');
  }

  /** Make sure a pending blob reaches the server (a no-op for synced and local-only blobs). */
  async upload(blobId: string, options: NamespaceOption = {}): Promise<void> {
    this.check();
    const id = this.id(blobId);
    const namespace = this.ns(options);
    const entry = this.local.entry(namespace, id);
    if (entry === undefined || !entry.hasContent) throw new BlobNotFoundError(`Blob doesn't exist: ${id}`);
    if (entry.status === 'SYNCED' || entry.status === 'LOCAL_ONLY') return;
    this.requireRemote();
    if (entry.status !== 'PENDING_UPLOAD') this.setStatus(namespace, id, 'PENDING_UPLOAD');
    await this.uploadBlob(namespace, id, false);
  }

  /**
   * Delete a blob here and on the server. Local content goes at once; if the server cannot be reached the blob
   * stays `PENDING_DELETE` and the next sync finishes the job (the error is still thrown).
   * {@link BlobNotFoundError} when neither side had it.
   */
  async delete(blobId: string, options: NamespaceOption = {}): Promise<void> {
    this.check();
    const id = this.id(blobId);
    const namespace = this.ns(options);
    const entry = this.local.entry(namespace, id);
    if (entry?.status === 'LOCAL_ONLY' || (entry !== undefined && this.remote === undefined && entry.status !== 'SYNCED')) {
      this.local.remove(namespace, id);
      return;
    }
    if (entry === undefined && this.remote === undefined) throw new BlobNotFoundError(`Blob doesn't exist: ${id}`);
    // An upload in flight must land before the delete, or the delete could overtake it.
    await this.queue.pending(`up:${namespace}:${id}`)?.catch(() => undefined);
    if (entry !== undefined) {
      this.local.dropContent(namespace, id);
      this.setStatus(namespace, id, 'PENDING_DELETE');
    }
    await this.deleteRemote(namespace, id, entry !== undefined);
  }

  private async deleteRemote(namespace: string, id: string, knownLocally: boolean): Promise<void> {
    const remote = this.requireRemote();
    await this.queue.run(`del:${namespace}:${id}`, async (_n, signal) => {
      try {
        await remote.delete(namespace, id, signal);
      } catch (err) {
        // Never uploaded, or already deleted by another device: the goal is reached.
        if (!(err instanceof BlobNotFoundError && knownLocally)) throw err;
      }
    }, (err) => (isTransient(err) ? { retry: true } : { retry: false, error: err }));
    this.local.remove(namespace, id);
  }

  /** Remote flags of a blob (`GET …?only_flags`). */
  async getFlags(blobId: string, options: NamespaceOption = {}): Promise<BlobFlag[]> {
    this.check();
    return this.requireRemote().getFlags(this.ns(options), this.id(blobId));
  }

  /** Replace a blob's remote flags; {@link InvalidFlagsError} for anything but the four flags. */
  async setFlags(blobId: string, flags: readonly BlobFlag[], options: NamespaceOption = {}): Promise<void> {
    this.check();
    await this.requireRemote().setFlags(this.ns(options), this.id(blobId), flags);
  }

  /**
   * List blobs on the server, with ordering and filters; with `onlyCount`, `{ count }`.
   *
   * @example
   * await blobs.remoteList({ namespace: 'MX', orderBy: 'asc', filterFlag: 'PENDING' }); // ['id1', 'id2']
   * await blobs.remoteList({ onlyCount: true }); // { count: 2 }
   */
  remoteList(options: RemoteListOptions & { onlyCount: true }): Promise<{
    /** How many blobs match. */
    count: number;
  }>;
  remoteList(options?: RemoteListOptions): Promise<string[]>;
  async remoteList(options: RemoteListOptions = {}): Promise<string[] | { count: number }> {
    this.check();
    const remote = this.requireRemote();
    const query: Parameters<BlobsRemote['list']>[0] = { namespace: this.ns(options) };
    if (options.orderBy !== undefined) query.orderBy = options.orderBy;
    if (options.filterFlag !== undefined) query.filterFlag = options.filterFlag;
    if (options.deleted !== undefined) query.deleted = options.deleted;
    if (options.onlyCount === true) return { count: await remote.count(query) };
    return remote.list(query);
  }

  /** Number of blobs on the server in a namespace (live ones plus deletion markers, as the original counts). */
  async count(options: NamespaceOption = {}): Promise<number> {
    this.check();
    return this.requireRemote().count({ namespace: this.ns(options) });
  }

  /** Bytes stored on the server and the user's limit (`GET /quota/<uuid>`). */
  async quota(): Promise<QuotaReport> {
    this.check();
    return this.requireRemote().quota();
  }

  /** Ids whose content is stored on this device. */
  async localList(options: NamespaceOption = {}): Promise<string[]> {
    this.check();
    return this.local.list(this.ns(options));
  }

  /** Ids with a given sync status. */
  async localListStatus(status: BlobSyncStatus, options: NamespaceOption = {}): Promise<string[]> {
    this.check();
    return this.local.listStatus(status, this.ns(options));
  }

  /** The local record of one blob (status, size, whether its content is here), if any. */
  async localStatus(blobId: string, options: NamespaceOption = {}): Promise<LocalBlobEntry | undefined> {
    this.check();
    return this.local.entry(this.ns(options), this.id(blobId));
  }

  /** How many blobs are in each status (the original's `sync_progress`). */
  async syncProgress(): Promise<Partial<Record<BlobSyncStatus, number>>> {
    this.check();
    return this.local.progress();
  }

  // ---- transfers ----

  private ensureLocal(namespace: string, id: string, external: 'reject' | 'passthrough'): Promise<void> {
    const entry = this.local.entry(namespace, id);
    if (entry?.hasContent === true) return Promise.resolve();
    if (this.remote === undefined) return Promise.reject(new BlobNotFoundError(`Blob doesn't exist: ${id}`));
    if (entry?.status !== 'PENDING_DOWNLOAD') this.setStatus(namespace, id, 'PENDING_DOWNLOAD');
    return this.downloadBlob(namespace, id, external);
  }

  private uploadBlob(namespace: string, id: string, fresh: boolean): Promise<void> {
    const remote = this.requireRemote();
    return this.queue.run(`up:${namespace}:${id}`, async (attempt, signal) => {
      const entry = this.local.entry(namespace, id);
      if (entry === undefined || !entry.hasContent) throw new BlobNotFoundError(`Blob doesn't exist: ${id}`);
      if (entry.status !== 'PENDING_UPLOAD') return; // synced meanwhile, local-only, or being deleted
      const size = entry.size ?? 0;
      const total = blobCiphertextSize(size);
      let done = 0;
      this.progress({ direction: 'upload', namespace, blobId: id, bytesDone: 0, bytesTotal: total });
      const source = this.local.read(namespace, id);
      const body = pipeline(source, encryptBlobStream(this.remoteSecret, id, size), () => undefined);
      try {
        await remote.upload(namespace, id, body, total, {
          signal,
          onChunk: (n) => {
            done += n;
            this.progress({ direction: 'upload', namespace, blobId: id, bytesDone: done, bytesTotal: total });
          },
        });
      } catch (err) {
        body.destroy();
        // 409 on a retry, or when resuming, means an earlier attempt landed before its answer was lost.
        if (!(err instanceof BlobAlreadyExistsError) || (fresh && attempt === 1)) throw err;
      }
      if (this.local.entry(namespace, id)?.status === 'PENDING_UPLOAD') this.setStatus(namespace, id, 'SYNCED');
    }, (err) => (isTransient(err) ? { retry: true } : { retry: false, error: err })).catch((err: unknown) => {
      if (fresh && err instanceof BlobAlreadyExistsError) {
        // The id is taken on the server by another blob: this put failed as a whole.
        this.local.remove(namespace, id);
      }
      throw err;
    });
  }

  private downloadBlob(namespace: string, id: string, external: 'reject' | 'passthrough'): Promise<void> {
    const remote = this.requireRemote();
    return this.queue.run(`down:${namespace}:${id}`, async (_attempt, signal) => {
      if (this.local.entry(namespace, id)?.hasContent === true) return;
      const release = await this.writes.acquire();
      try {
        const dl = await remote.download(namespace, id, signal);
        const writer = this.local.writer(namespace, id);
        let done = 0;
        let tail: Buffer = Buffer.alloc(0);
        const report = (): void => {
          this.progress({ direction: 'download', namespace, blobId: id, bytesDone: done, bytesTotal: dl.length });
        };
        const counted = async function* (body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
          for await (const chunk of body) {
            done += chunk.length;
            tail = chunk.length >= 16 ? chunk.subarray(-16) : Buffer.concat([tail, chunk]).subarray(-16);
            report();
            yield chunk;
          }
        };
        let externalScheme = false;
        const decryptOptions: DecryptBlobOptions = {
          external,
          onPreamble: (p) => {
            externalScheme = p.scheme === 2;
          },
        };
        try {
          report();
          await pipelineAsync(
            counted(dl.body),
            decryptBlobStream(this.remoteSecret, id, decryptOptions),
            async (source: AsyncIterable<Buffer>) => {
              for await (const chunk of source) writer.write(chunk);
            },
          );
          // The server's Tag header must name the tag the content ended with (the original decrypts against it).
          if (!externalScheme && dl.tag !== undefined && dl.tag !== b64u(Buffer.from(tail))) {
            throw new MacMismatchError('The Tag header does not match the blob');
          }
          writer.commit('SYNCED');
        } catch (err) {
          writer.abort();
          dl.cancel();
          throw err;
        }
        this.local.resetRetries(namespace, id);
        this.emit('status', { namespace, blobId: id, status: 'SYNCED' });
      } finally {
        release();
      }
    }, (err) => this.classifyDownload(namespace, id, err)).catch((err: unknown) => {
      // Gone from the server: forget the pending download instead of retrying it forever.
      if (err instanceof BlobNotFoundError && this.local.entry(namespace, id)?.hasContent === false) {
        this.local.remove(namespace, id);
      }
      throw err;
    });
  }

  private classifyDownload(namespace: string, id: string, err: unknown): RetryVerdict {
    if (isCorruption(err)) {
      // A failed verification is counted persistently; past the limit the blob is given up on, never stored.
      const retries = this.local.incrementRetries(namespace, id);
      if (retries >= this.maxDecryptRetries) {
        this.setStatus(namespace, id, 'FAILED_DOWNLOAD');
        return {
          retry: false,
          error: new MaximumRetriesError(`Blob ${id} failed verification ${retries} times`, { cause: err }),
        };
      }
      return { retry: true };
    }
    return isTransient(err) ? { retry: true } : { retry: false, error: err };
  }

  private async runAll(
    direction: 'upload' | 'download',
    items: Array<[string, string]>,
    run: (namespace: string, id: string) => Promise<void>,
  ): Promise<TransferSummary> {
    const summary: TransferSummary = { succeeded: [], failed: [] };
    await Promise.all(items.map(async ([namespace, id]) => {
      try {
        await run(namespace, id);
        summary.succeeded.push(id);
      } catch (err) {
        summary.failed.push({ direction, namespace, blobId: id, error: toError(err) });
      }
    }));
    return summary;
  }

  /**
   * Compare the server's listing with the local one and record what each side misses: ids only on the server
   * become `PENDING_DOWNLOAD`, content only here becomes `PENDING_UPLOAD` (never a local-only blob), and content
   * on both sides becomes `SYNCED`.
   */
  async refreshSyncStatusFromServer(options: NamespaceOption = {}): Promise<void> {
    this.check();
    const namespace = this.ns(options);
    const remoteIds = new Set(await this.requireRemote().list({ namespace }));
    const toDownload: string[] = [];
    const toUpload: string[] = [];
    const synced: string[] = [];
    const gone: string[] = [];
    const known = new Set<string>();
    for (const status of ['SYNCED', 'PENDING_UPLOAD', 'PENDING_DOWNLOAD', 'FAILED_UPLOAD'] as const) {
      for (const id of this.local.listStatus(status, namespace)) {
        known.add(id);
        const entry = this.local.entry(namespace, id)!;
        if (remoteIds.has(id)) {
          if (entry.hasContent && entry.status !== 'SYNCED') synced.push(id);
          if (!entry.hasContent && entry.status !== 'PENDING_DOWNLOAD') toDownload.push(id);
        } else if (entry.hasContent) {
          if (entry.status !== 'PENDING_UPLOAD') toUpload.push(id);
        } else {
          gone.push(id);
        }
      }
    }
    for (const status of ['LOCAL_ONLY', 'FAILED_DOWNLOAD', 'PENDING_DELETE'] as const) {
      for (const id of this.local.listStatus(status, namespace)) known.add(id);
    }
    for (const id of remoteIds) if (!known.has(id)) toDownload.push(id);
    this.local.setStatuses(namespace, toDownload, 'PENDING_DOWNLOAD');
    this.local.setStatuses(namespace, toUpload, 'PENDING_UPLOAD');
    this.local.setStatuses(namespace, synced, 'SYNCED');
    for (const id of gone) this.local.remove(namespace, id);
  }

  /** Download every `PENDING_DOWNLOAD` blob of a namespace (at most `concurrentTransfers` requests at once). */
  async fetchMissing(options: TransferOptions = {}): Promise<TransferSummary> {
    this.check();
    const namespace = this.ns(options);
    this.requireRemote();
    const ids = this.local.listStatus('PENDING_DOWNLOAD', namespace);
    if (options.transport === 'stream') return this.fetchViaStream(namespace, ids);
    return this.runAll('download', ids.map((id) => [namespace, id]), (ns, id) => this.downloadBlob(ns, id, 'reject'));
  }

  /** Upload every `PENDING_UPLOAD` blob of a namespace (never a local-only one). */
  async sendMissing(options: TransferOptions = {}): Promise<TransferSummary> {
    this.check();
    const namespace = this.ns(options);
    this.requireRemote();
    const ids = this.local.listStatus('PENDING_UPLOAD', namespace);
    if (options.transport === 'stream') return this.sendViaStream(namespace, ids);
    return this.runAll('upload', ids.map((id) => [namespace, id]), (ns, id) => this.uploadBlob(ns, id, false));
  }

  /** Split ids into `/stream/` batches by count and (encrypted) size. */
  private batches(namespace: string, ids: readonly string[], sizeOf: (e: LocalBlobEntry | undefined) => number): string[][] {
    const out: string[][] = [];
    let current: string[] = [];
    let bytes = 0;
    for (const id of ids) {
      const size = sizeOf(this.local.entry(namespace, id));
      if (current.length > 0 && (current.length >= this.streamBatchBlobs || bytes + size > this.streamBatchBytes)) {
        out.push(current);
        current = [];
        bytes = 0;
      }
      current.push(id);
      bytes += size;
    }
    if (current.length > 0) out.push(current);
    return out;
  }

  private async sendViaStream(namespace: string, ids: readonly string[]): Promise<TransferSummary> {
    const remote = this.requireRemote();
    const summary: TransferSummary = { succeeded: [], failed: [] };
    const groups = this.batches(namespace, ids, (e) => blobCiphertextSize(e?.size ?? 0));
    await Promise.all(groups.map(async (group) => {
      try {
        await this.queue.run(`upstream:${namespace}:${group[0]}:${group.length}`, async (_n, signal) => {
          const entries = group.flatMap((id) => {
            const e = this.local.entry(namespace, id);
            return e !== undefined && e.hasContent && e.status === 'PENDING_UPLOAD'
              ? [{ blobId: id, size: blobCiphertextSize(e.size ?? 0), plain: e.size ?? 0 }]
              : [];
          });
          if (entries.length === 0) return;
          const self = this;
          async function* bodies(): AsyncGenerator<Uint8Array> {
            for (const e of entries) {
              yield* pipeline(self.local.read(namespace, e.blobId), encryptBlobStream(self.remoteSecret, e.blobId, e.plain), () => undefined);
              self.progress({ direction: 'upload', namespace, blobId: e.blobId, bytesDone: e.size, bytesTotal: e.size });
            }
          }
          await remote.streamUpload(namespace, entries.map(({ blobId, size }) => ({ blobId, size })), bodies(), signal);
          for (const e of entries) {
            if (this.local.entry(namespace, e.blobId)?.status === 'PENDING_UPLOAD') this.setStatus(namespace, e.blobId, 'SYNCED');
          }
        }, (err) => (isTransient(err) ? { retry: true } : { retry: false, error: err }));
        summary.succeeded.push(...group);
      } catch (err) {
        if (!(err instanceof BlobAlreadyExistsError)) {
          for (const id of group) summary.failed.push({ direction: 'upload', namespace, blobId: id, error: toError(err) });
          return;
        }
        const single = await this.runAll('upload', group.map((id) => [namespace, id]), (ns, id) => this.uploadBlob(ns, id, false));
        summary.succeeded.push(...single.succeeded);
        summary.failed.push(...single.failed);
      }
    }));
    return summary;
  }

  private async fetchViaStream(namespace: string, ids: readonly string[]): Promise<TransferSummary> {
    const remote = this.requireRemote();
    const summary: TransferSummary = { succeeded: [], failed: [] };
    // Sizes are unknown before the download; batch by count only.
    const groups = this.batches(namespace, ids, () => 0);
    await Promise.all(groups.map(async (group) => {
      const settled = new Set<string>();
      try {
        await this.queue.run(`downstream:${namespace}:${group[0]}:${group.length}`, async (_n, signal) => {
          const wanted = group.filter((id) => !settled.has(id) && this.local.entry(namespace, id)?.hasContent !== true);
          if (wanted.length === 0) return;
          const release = await this.writes.acquire();
          try {
            for await (const frame of remote.streamDownload(namespace, wanted, signal)) {
              const writer = this.local.writer(namespace, frame.blobId);
              let tail: Buffer = Buffer.alloc(0);
              const tracked = async function* (body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
                for await (const chunk of body) {
                  tail = chunk.length >= 16 ? chunk.subarray(-16) : Buffer.concat([tail, chunk]).subarray(-16);
                  yield chunk;
                }
              };
              try {
                await pipelineAsync(tracked(frame.body), decryptBlobStream(this.remoteSecret, frame.blobId), async (source: AsyncIterable<Buffer>) => {
                  for await (const chunk of source) writer.write(chunk);
                });
                if (frame.tag !== b64u(Buffer.from(tail))) throw new MacMismatchError('The frame tag does not match the blob');
                writer.commit('SYNCED');
              } catch (err) {
                writer.abort();
                if (!isCorruption(err)) throw err;
                // One bad blob does not spoil the batch: count it, maybe give up on it, go on with the next.
                settled.add(frame.blobId);
                const verdict = this.classifyDownload(namespace, frame.blobId, err);
                summary.failed.push({
                  direction: 'download', namespace, blobId: frame.blobId,
                  error: toError(verdict.retry ? err : verdict.error),
                });
                continue;
              }
              settled.add(frame.blobId);
              this.local.resetRetries(namespace, frame.blobId);
              this.emit('status', { namespace, blobId: frame.blobId, status: 'SYNCED' });
              this.progress({ direction: 'download', namespace, blobId: frame.blobId, bytesDone: frame.size, bytesTotal: frame.size });
              summary.succeeded.push(frame.blobId);
            }
          } finally {
            release();
          }
        }, (err) => (isTransient(err) ? { retry: true } : { retry: false, error: err }));
      } catch (err) {
        const rest = group.filter((id) => !settled.has(id));
        if (!(err instanceof BlobNotFoundError)) {
          for (const id of rest) summary.failed.push({ direction: 'download', namespace, blobId: id, error: toError(err) });
          return;
        }
        // Some id is gone from the server: settle each of the rest on its own.
        const single = await this.runAll('download', rest.map((id) => [namespace, id]), (ns, id) => this.downloadBlob(ns, id, 'reject'));
        summary.succeeded.push(...single.succeeded);
        summary.failed.push(...single.failed);
      }
    }));
    return summary;
  }

  /** Remove local copies of blobs deleted on the server (kept: blobs not yet uploaded and local-only ones). */
  private async applyDeletionsFromServer(namespace: string): Promise<string[]> {
    const deleted = await this.requireRemote().list({ namespace, deleted: true });
    const removed: string[] = [];
    for (const id of deleted) {
      const entry = this.local.entry(namespace, id);
      if (entry === undefined || entry.status === 'PENDING_UPLOAD' || entry.status === 'LOCAL_ONLY') continue;
      this.local.remove(namespace, id);
      removed.push(id);
    }
    return removed;
  }

  private async finishPendingDeletes(namespace: string | undefined): Promise<TransferFailure[]> {
    const items = namespace === undefined
      ? this.local.listStatusAll('PENDING_DELETE')
      : this.local.listStatus('PENDING_DELETE', namespace).map((id): [string, string] => [namespace, id]);
    const failed: TransferFailure[] = [];
    await Promise.all(items.map(async ([ns, id]) => {
      try {
        await this.deleteRemote(ns, id, true);
      } catch (err) {
        failed.push({ direction: 'delete', namespace: ns, blobId: id, error: toError(err) });
      }
    }));
    return failed;
  }

  /**
   * The seed's sync: finish pending deletions, apply deletions made on the server, refresh statuses from the
   * server's listing, fetch what is missing here, send what is missing there.
   */
  async sync(options: TransferOptions = {}): Promise<BlobSyncSummary> {
    this.check();
    const namespace = this.ns(options);
    const deleteFailures = await this.finishPendingDeletes(namespace);
    const deletedLocally = await this.applyDeletionsFromServer(namespace);
    await this.refreshSyncStatusFromServer({ namespace });
    const transfer: TransferOptions = { namespace };
    if (options.transport !== undefined) transfer.transport = options.transport;
    const downloaded = await this.fetchMissing(transfer);
    const uploaded = await this.sendMissing(transfer);
    uploaded.failed.push(...deleteFailures);
    return { downloaded, uploaded, deletedLocally };
  }

  /**
   * Resume what a previous session left pending, in every namespace, from the statuses recorded locally (no
   * listing is asked of the server): deletions, uploads and downloads.
   */
  async resume(): Promise<BlobSyncSummary> {
    this.check();
    this.requireRemote();
    const deleteFailures = await this.finishPendingDeletes(undefined);
    const [downloaded, uploaded] = await Promise.all([
      this.runAll('download', this.local.listStatusAll('PENDING_DOWNLOAD'), (ns, id) => this.downloadBlob(ns, id, 'reject')),
      this.runAll('upload', this.local.listStatusAll('PENDING_UPLOAD'), (ns, id) => this.uploadBlob(ns, id, false)),
    ]);
    uploaded.failed.push(...deleteFailures);
    return { downloaded, uploaded, deletedLocally: [] };
  }

  /**
   * Stop: transfers in flight are aborted (their blobs stay pending and resume in a later session), then the local
   * database is closed. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.close();
    await this.writes.idle();
    this.local.close();
  }
}
