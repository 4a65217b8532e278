/**
 * The client side of the incoming box (the seed's `IncomingBoxProcessingLoop` and `IIncomingBoxConsumer`):
 * applications register a consumer per namespace; the loop, periodically or on demand, lists the most recent
 * pending messages, reserves each one atomically (so that only one replica of the user processes it), downloads
 * it, hands it to the consumer's `process` and `save`, syncs the documents `save` produced, and only then confirms
 * the message (`PROCESSED`: the server deletes it). A consumer failure marks the message `FAILED` with this
 * client's version, releasing it for a replica of another version.
 *
 * Guarantees and limits:
 * - Two replicas never both confirm a message: the server's reservation is a compare-and-set. A replica renews
 *   its reservations while it holds them, so only a replica that stopped (killed, cut off) for longer than the
 *   server's `PROCESSING_THRESHOLD` loses them; the next replica then processes the message again. Consumers that
 *   derive document ids from the item id turn that rare replay into a conflict instead of a duplicate.
 * - Before `save`, the reservation is checked again: a replica that lost it does not save.
 * - Consumer callbacks run one event-loop turn apart (each call is scheduled with `setImmediate`), with a timeout;
 *   a callback that holds the loop longer than `blockWarnMs` is reported by a `slow-consumer` event, the cue to
 *   move its work to a worker thread.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Semaphore } from '../../common/concurrency.js';
import { decryptBlobStream } from '../../common/crypto/blob-crypto.js';
import { EncScheme } from '../../common/crypto/preamble.js';
import type { Preamble } from '../../common/crypto/preamble.js';
import {
  BadRequestError,
  BlobNotFoundError,
  ConsumerTimeoutError,
  DatabaseClosedError,
  EncryptionSchemeNotImplementedError,
  InvalidPreambleError,
  MacMismatchError,
  ReservationConflictError,
  SoledadError,
  TamperedDocumentError,
} from '../../common/errors.js';
import { isValidBlobName } from '../../common/protocol/blobs.js';
import {
  INCOMING_DEFAULT_NAMESPACE,
  VALID_CLIENT_VERSION,
  encryptionName,
} from '../../common/protocol/incoming.js';
import type { IncomingEncryption, IncomingListQuery } from '../../common/protocol/incoming.js';
import { SERVER_VERSION as PACKAGE_VERSION } from '../../server/version.js';
import type { HttpClient } from '../http/client.js';
import { IncomingRemote } from './remote.js';

/** What the loop knows about a message besides its bytes. */
export interface IncomingItemInfo {
  /** The namespace it came from. */
  namespace: string;
  /**
   * The encryption method the trusted app declared (`pgp` unless it said otherwise), or `undefined` for a blob
   * this user's own clients encrypted (already decrypted here).
   */
  encryption: IncomingEncryption | undefined;
  /** When the server stored it (the preamble's timestamp, whole seconds). */
  deliveredAt: Date;
  /** Bytes of the payload handed to `process`. */
  size: number;
}

/**
 * A trusted application's client-side counterpart (the seed's `IIncomingBoxConsumer`).
 *
 * @example
 * const consumer: IncomingBoxConsumer<{ subject: string }[]> = {
 *   name: 'mail',
 *   async process(item, itemId, encrypted) {
 *     const clear = encrypted ? myDecrypt(item) : item;
 *     return [{ subject: parseSubject(clear) }];
 *   },
 *   async save(parts, itemId) {
 *     for (const [i, part] of parts.entries()) await soledad.createDoc({ ...part }, `mail-${itemId}-${i}`);
 *   },
 * };
 * soledad.incoming.register(consumer, { namespace: 'MX' });
 */
export interface IncomingBoxConsumer<P = unknown> {
  /** A name for events and logs. */
  readonly name: string;
  /**
   * This consumer's own version, appended to the client's (`<client>+<consumer version>`) when a failure is
   * recorded, so that a fixed consumer retries what an older one failed on.
   */
  readonly version?: string;
  /**
   * Turn one message into the parts to store. `encrypted` is true when `item` is still as the trusted app
   * encrypted it (scheme external). Throwing (or rejecting) marks the message `FAILED`.
   */
  process(item: Buffer, itemId: string, encrypted: boolean, info: IncomingItemInfo): P | Promise<P>;
  /**
   * Store the parts (typically as Soledad documents). The message is confirmed only after this resolved and the
   * documents were synced. Throwing (or rejecting) marks the message `FAILED`.
   */
  save(parts: P, itemId: string): unknown;
}

/** Options of {@link IncomingBox.register}. */
export interface RegisterOptions {
  /** The namespace to consume (default `MX`). One consumer per namespace. */
  namespace?: string;
}

/** Outcome of {@link IncomingBox.processOnce}: message ids by what happened to them. */
export interface IncomingSummary {
  /** Processed, saved, synced and confirmed (deleted on the server). */
  processed: string[];
  /** Marked `FAILED` (the consumer threw or timed out, or the message is corrupt). */
  failed: string[];
  /**
   * Listed but not handled this time: reserved by another replica, gone, a transient error (released for a later
   * round), or saved but not yet confirmed because the document sync failed (confirmed by a later round).
   */
  skipped: string[];
}

/** Identifies a message in events. */
export interface IncomingEvent {
  /** Namespace. */
  namespace: string;
  /** Message id. */
  itemId: string;
  /** The consumer's name. */
  consumer: string;
}

/** Events of an {@link IncomingBox}. */
export interface IncomingBoxEvents {
  /** A message was downloaded and handed to its consumer. */
  delivered: [IncomingEvent & {
    /** True when the payload is still as the trusted app encrypted it. */
    encrypted: boolean;
    /** Payload bytes. */
    size: number;
  }];
  /** A message was saved, synced and confirmed. `confirmed` is false if another replica took it meanwhile. */
  processed: [IncomingEvent & {
    /** False if another replica took the message meanwhile. */
    confirmed: boolean;
  }];
  /** A message was marked `FAILED`. */
  failed: [IncomingEvent & {
    /** What the consumer threw (or the timeout, or the corruption found). */
    error: Error;
    /** True once enough client versions failed on it: no client retries it any more. */
    permanent: boolean;
  }];
  /** A consumer callback held the event loop for `blockedMs` before returning its promise. */
  'slow-consumer': [IncomingEvent & {
    /** Which callback. */
    callback: 'process' | 'save';
    /** How long its synchronous part held the event loop. */
    blockedMs: number;
  }];
  /** A round could not list, sync or confirm (it is retried by the next round); never thrown from `start()`. */
  'loop-error': [Error];
}

/**
 * Options of {@link IncomingBox}.
 *
 * @example
 * new IncomingBox({ http, uuid, replicaId: soledad.replicaUid, syncDocuments: () => soledad.sync(), remoteSecret });
 */
export interface IncomingBoxOptions {
  /** The user's authenticated HTTP client (Users API). */
  http: HttpClient;
  /** The user's uuid. */
  uuid: string;
  /** This replica's id (its reservations are in this name): the local database's replica uid. */
  replicaId: string;
  /** Upload the documents `save` wrote; a message is confirmed only after this resolved (e.g. `() => soledad.sync()`). */
  syncDocuments: () => Promise<unknown>;
  /** The 512-byte remote secret, to read blobs this user's clients encrypted (scheme 1) if a namespace has any. */
  remoteSecret?: Buffer;
  /** This client's version, recorded on failures (default the package version). */
  version?: string;
  /** Most recent pending messages listed per round, the seed's N (default 50). */
  batchSize?: number;
  /** First pass: only messages of at most this many stored bytes (the seed's "smaller than X Kb"); then the rest. */
  firstPassSizeLimit?: number;
  /** Messages downloaded and processed at once (default 3). */
  concurrency?: number;
  /** Longest a consumer callback may take before the message is marked `FAILED` (default 5 minutes). */
  consumerTimeoutMs?: number;
  /** Report a callback that holds the event loop longer than this (default 50 ms). */
  blockWarnMs?: number;
}

interface Registered {
  consumer: IncomingBoxConsumer;
  /** Version recorded on failures: the client's, plus the consumer's. */
  version: string;
}

interface Held {
  namespace: string;
  id: string;
  /** Local clock (ms) when the request that last took or renewed the reservation was sent. */
  since: number;
}

const CORRUPTION = [MacMismatchError, InvalidPreambleError, TamperedDocumentError, EncryptionSchemeNotImplementedError];

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function isCorrupt(err: unknown): boolean {
  return CORRUPTION.some((cls) => err instanceof cls);
}

/**
 * The processing loop of one user's replica.
 *
 * @example
 * const box = new IncomingBox({ http, uuid, replicaId: sol.replicaUid, syncDocuments: () => sol.sync() });
 * box.register(mailConsumer, { namespace: 'MX' });
 * box.on('processed', (e) => console.log('stored', e.itemId));
 * const { processed, failed, skipped } = await box.processOnce();
 * box.start({ intervalMs: 60_000 });
 * await box.close();
 */
export class IncomingBox extends EventEmitter<IncomingBoxEvents> {
  /** This replica's id. */
  readonly replicaId: string;
  /** The version recorded on failures. */
  readonly version: string;
  private readonly remote: IncomingRemote;
  private readonly syncDocuments: () => Promise<unknown>;
  private readonly remoteSecret: Buffer;
  private readonly batchSize: number;
  private readonly firstPassSizeLimit: number | undefined;
  private readonly concurrency: number;
  private readonly consumerTimeoutMs: number;
  private readonly blockWarnMs: number;
  private readonly consumers = new Map<string, Registered>();
  /** Reservations this replica holds, renewed until confirmed, failed or released. */
  private readonly held = new Map<string, Held>();
  /** Reservations another replica took over (renewal refused): not to be saved. */
  private readonly lost = new Set<string>();
  /** Saved locally, waiting for a document sync and the confirmation. */
  private readonly awaiting = new Map<string, { namespace: string; id: string; consumer: string }>();
  /**
   * Messages whose reservation state is unknown: a reserve, release or fail request got no answer (the server may
   * have applied it and died). Such a message may sit `PROCESSING` under this replica's name, invisible to the
   * `PENDING` listing until the threshold lapses; the next run asks for it directly instead (a replica may always
   * re-take its own reservation).
   */
  private readonly inDoubt = new Map<string, { namespace: string; id: string }>();
  private thresholdMs: number | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private loopTimer: NodeJS.Timeout | undefined;
  private intervalMs = 60_000;
  private started = false;
  private closed = false;
  /** Aborted by {@link close}: waiting on consumers ends, and what they held is given back. */
  private readonly closing = new AbortController();
  private running: Promise<IncomingSummary> | undefined;
  private queued: Promise<IncomingSummary> | undefined;
  private renewing = false;
  /** Settles when the latest consumer callback has returned (its synchronous part is over). */
  private turn: Promise<void> = Promise.resolve();

  constructor(options: IncomingBoxOptions) {
    super();
    if (!isValidBlobName(options.uuid)) throw new BadRequestError('Invalid user id');
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(options.replicaId)) throw new BadRequestError('Invalid replica id');
    this.replicaId = options.replicaId;
    this.version = options.version ?? PACKAGE_VERSION;
    if (!VALID_CLIENT_VERSION.test(this.version)) throw new BadRequestError('Invalid client version');
    this.remote = new IncomingRemote(options.http, options.uuid);
    this.syncDocuments = options.syncDocuments;
    // Without the secret, a scheme-1 blob simply fails its tag check and is marked FAILED.
    this.remoteSecret = options.remoteSecret ?? Buffer.alloc(512);
    this.batchSize = positive(options.batchSize ?? 50, 'batchSize');
    this.firstPassSizeLimit = options.firstPassSizeLimit;
    this.concurrency = positive(options.concurrency ?? 3, 'concurrency');
    this.consumerTimeoutMs = positive(options.consumerTimeoutMs ?? 300_000, 'consumerTimeoutMs');
    this.blockWarnMs = options.blockWarnMs ?? 50;
  }

  /**
   * Register the consumer of a namespace (default `MX`).
   *
   * @example
   * box.register(consumer, { namespace: 'MX' });
   */
  register<P>(consumer: IncomingBoxConsumer<P>, options: RegisterOptions = {}): void {
    this.check();
    const namespace = options.namespace ?? INCOMING_DEFAULT_NAMESPACE;
    if (!isValidBlobName(namespace)) throw new BadRequestError('Invalid namespace');
    if (this.consumers.has(namespace)) throw new BadRequestError(`Namespace ${namespace} already has a consumer`);
    if (typeof consumer.process !== 'function' || typeof consumer.save !== 'function') {
      throw new TypeError('A consumer needs process() and save()');
    }
    const version = consumer.version === undefined ? this.version : `${this.version}+${consumer.version}`;
    if (!VALID_CLIENT_VERSION.test(version)) throw new BadRequestError('Invalid consumer version');
    this.consumers.set(namespace, { consumer: consumer as IncomingBoxConsumer, version });
  }

  /** Remove a namespace's consumer; messages already in a round finish. */
  unregister(namespace: string = INCOMING_DEFAULT_NAMESPACE): boolean {
    return this.consumers.delete(namespace);
  }

  /** Namespaces with a consumer. */
  get namespaces(): string[] {
    return [...this.consumers.keys()];
  }

  /**
   * Pending messages of a namespace on the server, in one request.
   *
   * @example
   * await box.pendingCount('MX'); // 12
   */
  async pendingCount(namespace: string = INCOMING_DEFAULT_NAMESPACE): Promise<number> {
    this.check();
    return this.remote.count({ namespace, filterFlag: 'PENDING' });
  }

  /**
   * List a namespace with any of the server's qualifiers (flag, order, size limit, paging, `PROCESSING` in or out).
   *
   * @example
   * await box.list({ namespace: 'MX', filterFlag: 'PENDING', order: 'asc', limit: 20, page: 1 });
   */
  async list(query: IncomingListQuery = {}): Promise<string[]> {
    this.check();
    return this.remote.list(query);
  }

  /**
   * Run the loop periodically: a round now, then one `intervalMs` (default 60 s) after each round ends. Errors of
   * a round are emitted as `loop-error`; the loop goes on.
   */
  start(options: { intervalMs?: number } = {}): void {
    this.check();
    if (options.intervalMs !== undefined) this.intervalMs = positive(options.intervalMs, 'intervalMs');
    if (this.started) return;
    this.started = true;
    this.schedule(0);
  }

  /** Stop the periodic loop; resolves once a round in progress has finished. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.loopTimer !== undefined) clearTimeout(this.loopTimer);
    this.loopTimer = undefined;
    await this.queued?.catch(() => undefined);
    await this.running?.catch(() => undefined);
  }

  /**
   * One processing run over every registered namespace: rounds of list → reserve → download → process → save,
   * a document sync, then the confirmations, until nothing new is pending. A call during a run waits for it and
   * runs once more (calls that wait together share that run).
   */
  processOnce(): Promise<IncomingSummary> {
    if (this.closed) return Promise.reject(new DatabaseClosedError('The incoming box is closed'));
    if (this.running === undefined) {
      this.running = this.run().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.queued ??= this.running.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.processOnce();
    });
    return this.queued;
  }

  /**
   * Stop, give back the reservations of messages not yet saved, and refuse further work. A consumer callback in
   * progress is not waited for (its result is ignored). Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing.abort();
    await this.stop();
    this.closed = true;
    this.stopRenewing();
    await Promise.all([...this.held.entries()].filter(([key]) => !this.awaiting.has(key)).map(async ([, h]) => {
      await this.remote.transition(h.namespace, h.id, 'PENDING', this.replicaId).catch(() => undefined);
    }));
    this.held.clear();
  }

  // ---- the loop ----

  private schedule(delay: number): void {
    this.loopTimer = setTimeout(() => {
      this.loopTimer = undefined;
      this.processOnce().catch((err: unknown) => this.emit('loop-error', toError(err))).finally(() => {
        if (this.started && !this.closed) this.schedule(this.intervalMs);
      });
    }, delay);
  }

  private check(): void {
    if (this.closed) throw new DatabaseClosedError('The incoming box is closed');
  }

  private async run(): Promise<IncomingSummary> {
    const summary: IncomingSummary = { processed: [], failed: [], skipped: [] };
    // Documents that cannot be synced now: processing more would only pile up unconfirmed work.
    if (await this.confirmAwaiting(summary)) await this.runNamespaces(summary);
    const done = new Set([...summary.processed, ...summary.failed]);
    summary.skipped = [...new Set(summary.skipped)].filter((id) => !done.has(id));
    return summary;
  }

  private async runNamespaces(summary: IncomingSummary): Promise<void> {
    namespaces: for (const [namespace, reg] of [...this.consumers.entries()]) {
      const seen = new Set<string>();
      const doubtful = [...this.inDoubt.entries()].filter(([, d]) => d.namespace === namespace);
      if (doubtful.length > 0) {
        for (const [key, d] of doubtful) {
          this.inDoubt.delete(key);
          seen.add(d.id);
        }
        await this.round(namespace, reg, doubtful.map(([, d]) => d.id), false, summary);
        if (!(await this.confirmAwaiting(summary))) return;
      }
      const passes: IncomingListQuery[] = [];
      if (this.firstPassSizeLimit !== undefined) passes.push({ filterFlag: 'PENDING', sizeLimit: this.firstPassSizeLimit });
      passes.push({ filterFlag: 'PENDING' });
      // Messages an older (or another) version failed on, which this version has not tried.
      passes.push({ filterFlag: 'FAILED', retryForVersion: reg.version });
      for (const pass of passes) {
        for (;;) {
          if (this.closing.signal.aborted || this.consumers.get(namespace) !== reg) break;
          let ids: string[];
          try {
            ids = await this.remote.list({ ...pass, namespace, order: 'desc', limit: this.batchSize });
          } catch (err) {
            // The server is out of reach (or refuses): the next run tries this namespace again.
            this.emit('loop-error', toError(err));
            continue namespaces;
          }
          // The most recent N, handled oldest first; anything this run already tried waits for the next run.
          const fresh = ids.reverse().filter((id) => !seen.has(id));
          if (fresh.length === 0) break;
          for (const id of fresh) seen.add(id);
          const reserved = await this.round(namespace, reg, fresh, pass.retryForVersion !== undefined, summary);
          // Confirm each round: a replica that dies later loses at most one round of work.
          if (!(await this.confirmAwaiting(summary))) return;
          if (reserved === 0) break;
        }
      }
    }
  }

  /** One round: each message through its pipeline (a few at a time, started oldest first), then sync + confirm. */
  private async round(namespace: string, reg: Registered, ids: string[], retry: boolean, summary: IncomingSummary): Promise<number> {
    const slots = new Semaphore(this.concurrency);
    let reserved = 0;
    await Promise.all(ids.map(async (id) => {
      const release = await slots.acquire();
      try {
        const outcome = await this.handle(namespace, reg, id, retry);
        if (outcome !== 'not-reserved') reserved += 1;
        if (outcome === 'failed') summary.failed.push(id);
        else if (outcome !== 'saved') summary.skipped.push(id);
      } finally {
        release();
      }
    }));
    return reserved;
  }

  private async handle(namespace: string, reg: Registered, id: string, retry: boolean): Promise<'not-reserved' | 'saved' | 'failed' | 'skipped'> {
    const key = `${namespace}/${id}`;
    const consumer = reg.consumer;
    const event: IncomingEvent = { namespace, itemId: id, consumer: consumer.name };
    if (this.closing.signal.aborted) return 'not-reserved';
    if (!(await this.tryReserve(namespace, id, retry ? reg.version : undefined))) return 'not-reserved';

    let item: Buffer;
    let info: IncomingItemInfo;
    let encrypted: boolean;
    try {
      ({ item, info, encrypted } = await this.fetch(namespace, id));
    } catch (err) {
      if (err instanceof BlobNotFoundError) {
        this.forget(key);
        return 'skipped';
      }
      if (isCorrupt(err)) return (await this.fail(event, reg, err)) ? 'failed' : 'skipped';
      await this.release(namespace, id);
      return 'skipped';
    }

    this.emit('delivered', { ...event, encrypted, size: item.length });
    let parts: unknown;
    try {
      parts = await this.callConsumer(event, 'process', () => consumer.process(item, id, encrypted, info));
    } catch (err) {
      return this.failOrRelease(event, reg, err);
    }
    // Still ours? A replica that lost its reservation must not store the message a second time. A reservation
    // taken or renewed less than half a threshold ago cannot have lapsed; an older one is asked about again.
    const held = this.held.get(key);
    const fresh = held !== undefined && this.thresholdMs !== undefined && performance.now() - held.since < this.thresholdMs / 2;
    if (this.lost.has(key) || (!fresh && !(await this.tryReserve(namespace, id, retry ? reg.version : undefined)))) {
      this.forget(key);
      return 'skipped';
    }
    try {
      await this.callConsumer(event, 'save', () => consumer.save(parts, id));
    } catch (err) {
      return this.failOrRelease(event, reg, err);
    }
    this.awaiting.set(key, { namespace, id, consumer: consumer.name });
    return 'saved';
  }

  /** A consumer failed: mark the message FAILED, unless the box is closing (then the failure is ours: release). */
  private async failOrRelease(event: IncomingEvent, reg: Registered, err: unknown): Promise<'failed' | 'skipped'> {
    if (this.closing.signal.aborted) {
      await this.release(event.namespace, event.itemId);
      return 'skipped';
    }
    return (await this.fail(event, reg, err)) ? 'failed' : 'skipped';
  }

  /** {@link reserve}, reporting a transport failure as `loop-error` and answering false (nothing is taken then). */
  private async tryReserve(namespace: string, id: string, version: string | undefined): Promise<boolean> {
    try {
      return await this.reserve(namespace, id, version);
    } catch (err) {
      this.emit('loop-error', toError(err));
      this.forget(`${namespace}/${id}`);
      this.inDoubt.set(`${namespace}/${id}`, { namespace, id });
      return false;
    }
  }

  /** Take (or renew) the reservation; false when another replica has it or the message is gone. */
  private async reserve(namespace: string, id: string, version: string | undefined): Promise<boolean> {
    const key = `${namespace}/${id}`;
    const since = performance.now();
    try {
      const state = await this.remote.transition(namespace, id, 'PROCESSING', this.replicaId, version);
      this.thresholdMs = Math.min(this.thresholdMs ?? Infinity, state.threshold_ms);
      this.lost.delete(key);
      this.held.set(key, { namespace, id, since });
      this.startRenewing();
      return true;
    } catch (err) {
      if (err instanceof ReservationConflictError || err instanceof BlobNotFoundError) {
        this.forget(key);
        return false;
      }
      throw err;
    }
  }

  private forget(key: string): void {
    this.held.delete(key);
    this.lost.delete(key);
    if (this.held.size === 0) this.stopRenewing();
  }

  private async release(namespace: string, id: string): Promise<void> {
    const key = `${namespace}/${id}`;
    await this.remote.transition(namespace, id, 'PENDING', this.replicaId).catch((err: unknown) => {
      if (!(err instanceof ReservationConflictError || err instanceof BlobNotFoundError)) this.inDoubt.set(key, { namespace, id });
    });
    this.forget(key);
  }

  /** Mark FAILED with this version; false when the reservation was lost meanwhile (someone else has it). */
  private async fail(event: IncomingEvent, reg: Registered, err: unknown): Promise<boolean> {
    const error = toError(err);
    const key = `${event.namespace}/${event.itemId}`;
    try {
      const state = await this.remote.transition(event.namespace, event.itemId, 'FAILED', this.replicaId, reg.version);
      this.forget(key);
      this.emit('failed', { ...event, error, permanent: state.permanent });
      return true;
    } catch (markErr) {
      if (markErr instanceof ReservationConflictError || markErr instanceof BlobNotFoundError) {
        this.forget(key);
        return false;
      }
      // Could not reach the server: the next run here (or, once the reservation lapses, another replica) retries.
      this.forget(key);
      this.inDoubt.set(key, { namespace: event.namespace, id: event.itemId });
      this.emit('loop-error', toError(markErr));
      return false;
    }
  }

  /** Download one message: the payload after the server's header, or the decrypted content of a scheme-1 blob. */
  private async fetch(namespace: string, id: string): Promise<{ item: Buffer; info: IncomingItemInfo; encrypted: boolean }> {
    const download = await this.remote.download(namespace, id);
    let preamble: Preamble | undefined;
    const parts: Buffer[] = [];
    let size = 0;
    try {
      await pipeline(
        Readable.from(download.body),
        decryptBlobStream(this.remoteSecret, id, { external: 'passthrough', onPreamble: (p) => { preamble = p; } }),
        async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) {
            parts.push(chunk);
            size += chunk.length;
          }
        },
      );
    } catch (err) {
      download.cancel();
      throw err;
    }
    if (preamble === undefined) throw new InvalidPreambleError('Message without a preamble');
    const encrypted = preamble.scheme === EncScheme.external;
    // The server wrote the exact payload size: fewer bytes means a cut connection, not a bad message.
    if (encrypted && preamble.contentSize !== null && preamble.contentSize !== size) {
      throw new SoledadError('The message download was cut short');
    }
    const info: IncomingItemInfo = {
      namespace,
      encryption: encrypted ? encryptionName(preamble.method) : undefined,
      deliveredAt: new Date(preamble.timestamp * 1000),
      size,
    };
    return { item: Buffer.concat(parts, size), info, encrypted };
  }

  /**
   * Call a consumer callback one event-loop turn after the previous work (so timers and I/O run between
   * messages), measure how long its synchronous part held the loop, and bound how long it may take.
   */
  private async callConsumer<T>(event: IncomingEvent, callback: 'process' | 'save', fn: () => T | Promise<T>): Promise<T> {
    // One callback's synchronous part per event-loop turn, whatever the concurrency: immediates queued while the
    // check phase runs wait for the next iteration, so timers and I/O always get the loop between two callbacks.
    const previous = this.turn;
    let endTurn!: () => void;
    this.turn = new Promise<void>((resolve) => {
      endTurn = resolve;
    });
    await previous;
    await nextTurn();
    const t0 = performance.now();
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(fn());
    } catch (err) {
      pending = Promise.reject(err);
    } finally {
      endTurn();
    }
    const blockedMs = performance.now() - t0;
    if (blockedMs > this.blockWarnMs) this.emit('slow-consumer', { ...event, callback, blockedMs });
    let timer: NodeJS.Timeout | undefined;
    let onClose: (() => void) | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ConsumerTimeoutError(`${event.consumer}.${callback} did not finish within ${this.consumerTimeoutMs} ms`)),
        this.consumerTimeoutMs);
      onClose = () => reject(new DatabaseClosedError('The incoming box is closing'));
      this.closing.signal.addEventListener('abort', onClose, { once: true });
    });
    if (this.closing.signal.aborted) onClose?.();
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      clearTimeout(timer);
      if (onClose !== undefined) this.closing.signal.removeEventListener('abort', onClose);
    }
  }

  /** Sync the documents of saved messages, then confirm them (the server deletes them); false if the sync failed. */
  private async confirmAwaiting(summary: IncomingSummary): Promise<boolean> {
    if (this.awaiting.size === 0) return true;
    const batch = [...this.awaiting.entries()];
    try {
      await this.syncDocuments();
    } catch (err) {
      this.emit('loop-error', toError(err));
      for (const [, a] of batch) summary.skipped.push(a.id);
      return false;
    }
    await Promise.all(batch.map(async ([key, a]) => {
      const event: IncomingEvent = { namespace: a.namespace, itemId: a.id, consumer: a.consumer };
      let confirmed: boolean;
      try {
        await this.remote.transition(a.namespace, a.id, 'PROCESSED', this.replicaId);
        confirmed = true;
      } catch (err) {
        if (!(err instanceof ReservationConflictError || err instanceof BlobNotFoundError)) {
          // Transient: keep it (and its reservation) for the next round.
          this.emit('loop-error', toError(err));
          summary.skipped.push(a.id);
          return;
        }
        confirmed = false;
      }
      this.awaiting.delete(key);
      this.forget(key);
      summary.processed.push(a.id);
      this.emit('processed', { ...event, confirmed });
    }));
    return true;
  }

  // ---- renewal ----

  private startRenewing(): void {
    if (this.renewTimer !== undefined || this.thresholdMs === undefined) return;
    const every = Math.max(100, Math.floor(this.thresholdMs / 3));
    this.renewTimer = setInterval(() => void this.renewAll(), every);
    this.renewTimer.unref();
  }

  private stopRenewing(): void {
    if (this.renewTimer !== undefined) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }

  private async renewAll(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      await Promise.all([...this.held.entries()].map(async ([key, h]) => {
        const since = performance.now();
        try {
          await this.remote.transition(h.namespace, h.id, 'PROCESSING', this.replicaId);
          h.since = since;
        } catch (err) {
          if (err instanceof ReservationConflictError || err instanceof BlobNotFoundError) {
            if (this.held.has(key)) this.lost.add(key);
          }
          // Anything else (network): the next tick tries again.
        }
      }));
    } finally {
      this.renewing = false;
    }
  }
}

function positive(n: number, name: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name} must be positive`);
  return n;
}

