/**
 * The contract of a blob storage engine (fact sheet §5b). Routes talk only to this interface; an engine is a
 * folder (`fs-blobs/`, later others) that implements it, proven by `test/server/blobs/blob-store-conformance.ts`.
 *
 * Every name reaching a store has already been checked against `VALID_BLOB_NAME`, and stores check again:
 * a store must never touch anything outside the user's own space.
 */
import type { Readable } from 'node:stream';
import type { BlobFlag, BlobOrder } from '../../common/protocol/blobs.js';
import type { JsonObject } from '../../common/u1db/json.js';

/** Addresses one blob: owner, namespace and id. */
export interface BlobRef {
  /** The owner's uuid (the path segment of `/blobs/<uuid>/…`). */
  user: string;
  /** Namespace; routes substitute `default` when none is given. */
  namespace: string;
  /** The blob id. */
  blobId: string;
}

/** Options of {@link BlobStore.put}. */
export interface BlobPutOptions {
  /**
   * Exact size of the body when known (e.g. `Content-Length`). Quota is then reserved before a byte is read,
   * and a body of any other length is refused with `BadRequestError`. Without it, quota is charged as bytes
   * arrive and the write fails with `QuotaExceededError` as soon as it would pass the limit.
   */
  size?: number;
  /** Flags to store together with the blob (the incoming box creates blobs flagged `PENDING`). */
  flags?: readonly BlobFlag[];
  /** Aborts the write; nothing stays visible. */
  signal?: AbortSignal;
  /**
   * Bytes this write may go over the quota (default 0): the incoming box's `incoming_quota_tolerance`, so that a
   * delivery for a user just under the limit is not bounced.
   */
  quotaTolerance?: number;
}

/** What {@link BlobStore.put} stored. */
export interface BlobPutResult {
  /** Bytes stored. */
  size: number;
}

/** Metadata of a stored blob. */
export interface BlobStat {
  /** Size in bytes. */
  size: number;
  /** When the blob was stored (drives `order_by=date`). */
  createdAt: Date;
}

/** A byte range `[start, end)` (the original's `SingleRangeProducer(offset=start, size=end-start)`). */
export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive. */
  end: number;
}

/**
 * An opened blob. Opening pins the content (a later delete does not cut a read in progress). Call exactly one of
 * {@link BlobHandle.read} (which takes ownership and releases the handle when the stream ends or is destroyed) or
 * {@link BlobHandle.close}.
 */
export interface BlobHandle {
  /** Size in bytes. */
  readonly size: number;
  /** When the blob was stored. */
  readonly createdAt: Date;
  /** The blob's last 16 bytes (its GCM tag), or all of it when shorter. */
  tag(): Promise<Buffer>;
  /** Stream the content, or the `[start, end)` part of it. */
  read(range?: ByteRange): Readable;
  /** Release the handle without reading. Safe to call after {@link read} or twice. */
  close(): Promise<void>;
}

/** Qualifiers of {@link BlobStore.list}. */
export interface BlobListOptions {
  /** Namespace to list. */
  namespace: string;
  /** Order by upload date; unordered (by id) when absent. */
  order?: BlobOrder;
  /** Only blobs carrying this flag (a string that is no flag matches nothing, as in the original). */
  filterFlag?: string;
  /** List deleted blobs (those with a `.deleted` marker) instead of live ones. */
  deleted?: boolean;
  /** Skip this many results (after ordering). For the incoming box's paging. */
  offset?: number;
  /** Return at most this many results. */
  limit?: number;
  /** Only blobs of at most this many bytes (the incoming box's `size_limit`). */
  maxSize?: number;
  /**
   * Only blobs carrying at least one of these flags; together with {@link filterFlag}, blobs carrying either
   * (the incoming box's `include_processing=true`: `PENDING` or `PROCESSING`).
   */
  anyFlag?: readonly string[];
  /** Leave out blobs carrying any of these flags (the incoming box's `include_processing=false`). */
  excludeFlags?: readonly string[];
}

/**
 * A blob's flags together with its metadata record: a small JSON object kept beside the flags, invisible to the
 * original API, where the incoming box keeps who reserved a message, when, and which versions failed on it.
 */
export interface BlobState {
  /** The flags. */
  flags: BlobFlag[];
  /** The metadata record, `null` when none was written. Deleting the blob deletes it. */
  meta: JsonObject | null;
}

/** Qualifiers of {@link BlobStore.count}. */
export interface BlobCountOptions {
  /** Namespace to count. */
  namespace: string;
  /**
   * Only blobs carrying this flag. Without it and without {@link deleted}, the count is live blobs plus deletion
   * markers, which is what the original's `only_count` answers.
   */
  filterFlag?: string;
  /** Count only deletion markers. */
  deleted?: boolean;
}

/** A user's storage accounting. */
export interface BlobUsage {
  /** Bytes stored as blobs. */
  used: number;
  /** Bytes the user stores elsewhere under the same quota (documents), as last measured. */
  otherUsed: number;
  /** Bytes reserved by writes in progress. */
  reserved: number;
  /** The limit in bytes, over blobs and {@link BlobUsage.otherUsed} together. */
  limit: number;
}

/**
 * Quota held for a write in progress. Reserving is atomic: the sum of stored and reserved bytes never passes the
 * limit, however many writes race. A reservation ends with exactly one of {@link commit} or {@link release}.
 */
export interface QuotaReservation {
  /** Bytes currently held. */
  readonly bytes: number;
  /** Hold `n` more bytes, or throw `QuotaExceededError` (holding nothing more). */
  grow(n: number): void;
  /** The write landed with `actual` bytes: they count as used from now on. */
  commit(actual: number): void;
  /** The write failed: give the bytes back. */
  release(): void;
}

/** Live counters of a store, for tests and monitoring. */
export interface BlobStoreStats {
  /** Writes holding a write slot. */
  activeWrites: number;
  /** Writes waiting for a slot. */
  queuedWrites: number;
}

/**
 * A blob storage engine.
 *
 * @example
 * const store = new FsBlobStore({ root: '/var/lib/soledad/blobs' });
 * await store.put({ user, namespace: 'default', blobId }, createReadStream(file), { size });
 * const h = await store.open({ user, namespace: 'default', blobId });
 * h.read().pipe(process.stdout);
 */
export interface BlobStore {
  /** Store a new blob from a byte stream; `BlobAlreadyExistsError` if it exists, `QuotaExceededError` if over quota. */
  put(ref: BlobRef, body: AsyncIterable<Uint8Array>, options?: BlobPutOptions): Promise<BlobPutResult>;
  /** Open a blob for reading; `BlobNotFoundError` if missing. */
  open(ref: BlobRef): Promise<BlobHandle>;
  /** Size and date of a blob, or `null` if missing. */
  stat(ref: BlobRef): Promise<BlobStat | null>;
  /** The blob's flags (`[]` when none were set); `BlobNotFoundError` if missing. */
  getFlags(ref: BlobRef): Promise<BlobFlag[]>;
  /** Replace the flags; `BlobNotFoundError` if missing, `InvalidFlagsError` for a value outside the four flags. */
  setFlags(ref: BlobRef, flags: readonly string[]): Promise<void>;
  /**
   * Atomically read-modify-write the flags (no other flag write, put or delete of this blob interleaves).
   * `update` returns the new flags, or `null` to leave them unchanged; its result is returned. Throws what
   * `update` throws, so a caller can build compare-and-set transitions (the incoming box's reservations).
   */
  updateFlags(ref: BlobRef, update: (current: BlobFlag[]) => readonly BlobFlag[] | null): Promise<BlobFlag[]>;
  /**
   * {@link updateFlags} over flags and metadata together: one atomic read-modify-write (across processes for a
   * shared engine). `update` returns the new state, or `null` to leave it (the call then only reads); its result
   * is returned. Throws what `update` throws; `BlobNotFoundError` if missing.
   */
  updateState(ref: BlobRef, update: (current: BlobState) => BlobState | null): Promise<BlobState>;
  /** Delete a blob, leaving a deletion marker; `BlobNotFoundError` if missing. */
  delete(ref: BlobRef): Promise<void>;
  /** Ids of a user's blobs in a namespace, with every qualifier of the listing API. */
  list(user: string, options: BlobListOptions): Promise<string[]>;
  /** Count a user's blobs in a namespace. */
  count(user: string, options: BlobCountOptions): Promise<number>;
  /** Bytes used, reserved and allowed; kept up to date without walking storage on every request. */
  usage(user: string): Promise<BlobUsage>;
  /**
   * Reserve quota for a write of `bytes` (more may be added with `grow`); `QuotaExceededError` when
   * `used + otherUsed + reserved + bytes` would pass `limit + tolerance`. `tolerance` (default 0) lets a trusted writer
   * (the incoming box) go slightly over.
   */
  reserve(user: string, bytes: number, tolerance?: number): Promise<QuotaReservation>;
  /** Live counters. */
  stats(): BlobStoreStats;
  /** Wait for writes in flight and release resources. */
  close(): Promise<void>;
}
