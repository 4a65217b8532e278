/**
 * The server side of the incoming box (seed "Incoming Box" spec 0.2.0, fact sheet §5c), built only on the
 * {@link BlobStore} contract as the spec requires ("exclusively at the level of the BlobStorage"): a delivered
 * message is a blob flagged `PENDING` whose metadata record ({@link BlobState.meta}) remembers who reserved it,
 * when, and which client versions failed on it. Every transition is one atomic {@link BlobStore.updateState}, so
 * two replicas racing for a message (in one server process or, on PostgreSQL, in several) cannot both win.
 *
 * States, by flag:
 * - `PENDING`: free. Delivered messages start here; released and expired reservations come back here.
 * - `PROCESSING`: reserved by one replica until `reserved_at + PROCESSING_THRESHOLD`; the holder renews by
 *   reserving again. An expired reservation is free for anyone (and is put back to `PENDING` by the next listing).
 * - `PROCESSED`: confirmed by the replica that reserved it, then deleted at once.
 * - `FAILED`: released with the failing client's version recorded. A client of another version may reserve it
 *   again; once `maxFailures` distinct versions failed, it is permanently failed (and deleted, if so configured).
 */
import {
  BadRequestError,
  BlobAlreadyExistsError,
  BlobNotFoundError,
  ForbiddenError,
  QuotaExceededError,
  ReservationConflictError,
} from '../../common/errors.js';
import { isValidBlobName } from '../../common/protocol/blobs.js';
import type { BlobFlag } from '../../common/protocol/blobs.js';
import {
  INCOMING_DEFAULT_NAMESPACE,
  INCOMING_HEADER_LENGTH,
  VALID_CLIENT_VERSION,
  VALID_REPLICA_ID,
  incomingHeader,
} from '../../common/protocol/incoming.js';
import type { IncomingEncryption, IncomingFailure, IncomingTransition, ReservationState } from '../../common/protocol/incoming.js';
import type { JsonObject } from '../../common/u1db/json.js';
import type { BlobListOptions, BlobRef, BlobState, BlobStore } from '../backends/blob-types.js';

/** Default `PROCESSING_THRESHOLD`: 10 minutes. */
export const DEFAULT_PROCESSING_THRESHOLD_MS = 600_000;
/** Default number of distinct failing versions after which a message is permanently failed. */
export const DEFAULT_MAX_FAILURES = 3;

/**
 * Options of {@link IncomingService}.
 *
 * @example
 * new IncomingService({ store, processingThresholdMs: 600_000, namespaces: new Map([['mx', ['MX']]]) });
 */
export interface IncomingServiceOptions {
  /** Where messages live (the same store the Users API serves). */
  readonly store: BlobStore;
  /** `PROCESSING_THRESHOLD` in ms (default {@link DEFAULT_PROCESSING_THRESHOLD_MS}). */
  readonly processingThresholdMs?: number;
  /** Distinct failing versions that make a failure permanent (default {@link DEFAULT_MAX_FAILURES}). */
  readonly maxFailures?: number;
  /** Bytes a delivery may go over the user's quota (default 0). */
  readonly quotaToleranceBytes?: number;
  /** Delete a message once it is permanently failed (default false: keep it for inspection). */
  readonly deletePermanentlyFailed?: boolean;
  /** Namespaces each service may deliver to; a service not listed may deliver only to `MX`. */
  readonly namespaces?: ReadonlyMap<string, readonly string[]>;
  /** Clock (ms since the epoch), for tests. */
  readonly now?: () => number;
}

/** The metadata record of an incoming message, as kept in {@link BlobState.meta}. */
export interface IncomingRecord {
  /** The current or last reservation. */
  reservation: { replica: string; at: number } | null;
  /** Failures reported so far, oldest first. */
  failures: IncomingFailure[];
  /** Permanently failed. */
  permanent: boolean;
}

/** Read a metadata record defensively: anything malformed counts as "no reservation, no failures". */
export function readIncomingRecord(meta: JsonObject | null): IncomingRecord {
  const out: IncomingRecord = { reservation: null, failures: [], permanent: false };
  if (meta === null) return out;
  const r = meta['reservation'];
  if (typeof r === 'object' && r !== null && !Array.isArray(r) && typeof r['replica'] === 'string' && typeof r['at'] === 'number') {
    out.reservation = { replica: r['replica'], at: r['at'] };
  }
  const f = meta['failures'];
  if (Array.isArray(f)) {
    for (const item of f) {
      if (typeof item === 'object' && item !== null && !Array.isArray(item) && typeof item['version'] === 'string' &&
        typeof item['replica'] === 'string' && typeof item['at'] === 'number') {
        out.failures.push({ version: item['version'], replica: item['replica'], at: item['at'] });
      }
    }
  }
  out.permanent = meta['permanent'] === true;
  return out;
}

function writeRecord(record: IncomingRecord): JsonObject {
  return {
    reservation: record.reservation === null ? null : { replica: record.reservation.replica, at: record.reservation.at },
    failures: record.failures.map((f) => ({ version: f.version, replica: f.replica, at: f.at })),
    permanent: record.permanent,
  };
}

/** A transition a replica asks for (`POST /blobs/<uuid>/<id>?replica=…` with a one-flag body). */
export interface TransitionRequest {
  /** The flag of the body. */
  readonly to: IncomingTransition;
  /** The asking replica. */
  readonly replica: string;
  /** The asking client's version (required for `FAILED`; lets a `FAILED` message be reserved for a retry). */
  readonly version?: string;
}

/** Rules a transition is decided by. */
export interface TransitionRules {
  /** `PROCESSING_THRESHOLD` in ms. */
  readonly thresholdMs: number;
  /** Distinct failing versions that make a failure permanent. */
  readonly maxFailures: number;
  /** Now, in ms since the epoch. */
  readonly now: number;
}

/** Whether a reservation recorded at `record` lapsed by `now`. */
function expired(record: IncomingRecord, rules: TransitionRules): boolean {
  return record.reservation === null || record.reservation.at + rules.thresholdMs <= rules.now;
}

/**
 * Decide a transition (pure: the state before in, the state after out, or a {@link ReservationConflictError}).
 * This is the whole state machine; {@link IncomingService.transition} only runs it inside the store's atomic
 * read-modify-write.
 *
 * @example
 * decideTransition({ flags: ['PENDING'], meta: null }, { to: 'PROCESSING', replica: 'r1' }, rules);
 * // { flags: ['PROCESSING'], meta: { reservation: { replica: 'r1', at: rules.now }, failures: [], permanent: false } }
 */
export function decideTransition(current: BlobState, req: TransitionRequest, rules: TransitionRules): BlobState {
  const flags = current.flags;
  const record = readIncomingRecord(current.meta);
  const holds = record.reservation?.replica === req.replica;
  const conflict = (why: string): never => {
    throw new ReservationConflictError(why);
  };
  const pending = flags.includes('PENDING');
  const processing = flags.includes('PROCESSING');
  // The last holder may still finish a message whose reservation lapsed, as long as nobody took it since: the
  // expiry put it back to PENDING but kept the record, and another reservation would have replaced it.
  const heldOrLapsedByMe = holds && (processing || pending);
  switch (req.to) {
    case 'PROCESSING': {
      if (pending) {
        // free
      } else if (processing) {
        if (!holds && !expired(record, rules)) conflict('The message is reserved by another replica');
      } else if (flags.includes('FAILED')) {
        if (record.permanent) conflict('The message failed permanently');
        if (req.version === undefined) conflict('The message failed; retrying it needs the client version');
        if (record.failures.some((f) => f.version === req.version)) conflict('This client version already failed on the message');
      } else {
        conflict('The message is not pending');
      }
      record.reservation = { replica: req.replica, at: rules.now };
      return { flags: ['PROCESSING'], meta: writeRecord(record) };
    }
    case 'PROCESSED': {
      // The confirming replica stays on record until the deletion: confirming again is how a confirmation whose
      // deletion was cut short (the server died in between) finishes — for that replica only.
      if (flags.includes('PROCESSED')) {
        if (!holds) conflict('The message was confirmed by another replica');
        return { flags: ['PROCESSED'], meta: writeRecord(record) };
      }
      if (!heldOrLapsedByMe) conflict('Only the replica holding the reservation may confirm the message');
      return { flags: ['PROCESSED'], meta: writeRecord(record) };
    }
    case 'FAILED': {
      if (req.version === undefined) throw new BadRequestError('Marking a message FAILED needs the client version (version=…)');
      if (!heldOrLapsedByMe) conflict('Only the replica holding the reservation may fail the message');
      record.failures.push({ version: req.version, replica: req.replica, at: rules.now });
      record.reservation = null;
      record.permanent = new Set(record.failures.map((f) => f.version)).size >= rules.maxFailures;
      return { flags: ['FAILED'], meta: writeRecord(record) };
    }
    case 'PENDING': {
      if (!heldOrLapsedByMe) conflict('Only the replica holding the reservation may release it');
      record.reservation = null;
      return { flags: ['PENDING'], meta: writeRecord(record) };
    }
  }
}

/** What a delivery stored. */
export interface DeliveryResult {
  /** Bytes stored (the server's header plus the payload). */
  readonly size: number;
  /** The namespace it went to. */
  readonly namespace: string;
}

/**
 * The incoming box on one blob store.
 *
 * @example
 * const incoming = new IncomingService({ store, processingThresholdMs: 600_000 });
 * await incoming.deliver('mx', { user, namespace: 'MX', blobId }, body, length);
 * await incoming.transition({ user, namespace: 'MX', blobId }, { to: 'PROCESSING', replica });
 */
export class IncomingService {
  /** The store messages live in. */
  readonly store: BlobStore;
  /** `PROCESSING_THRESHOLD` in ms. */
  readonly processingThresholdMs: number;
  /** Distinct failing versions that make a failure permanent. */
  readonly maxFailures: number;
  /** Bytes a delivery may go over quota. */
  readonly quotaToleranceBytes: number;
  private readonly deletePermanentlyFailed: boolean;
  private readonly namespaces: ReadonlyMap<string, readonly string[]>;
  private readonly now: () => number;
  /** When {@link expireIfDue} last ran, per user and namespace. */
  private readonly lastExpiry = new Map<string, number>();

  constructor(options: IncomingServiceOptions) {
    this.store = options.store;
    this.processingThresholdMs = options.processingThresholdMs ?? DEFAULT_PROCESSING_THRESHOLD_MS;
    this.maxFailures = options.maxFailures ?? DEFAULT_MAX_FAILURES;
    this.quotaToleranceBytes = options.quotaToleranceBytes ?? 0;
    this.deletePermanentlyFailed = options.deletePermanentlyFailed ?? false;
    this.namespaces = options.namespaces ?? new Map();
    this.now = options.now ?? Date.now;
    if (!Number.isSafeInteger(this.processingThresholdMs) || this.processingThresholdMs <= 0) {
      throw new RangeError('processingThresholdMs must be a positive integer');
    }
    if (!Number.isSafeInteger(this.maxFailures) || this.maxFailures < 1) throw new RangeError('maxFailures must be ≥ 1');
  }

  /** Namespaces `service` may deliver to. */
  allowedNamespaces(service: string): readonly string[] {
    return this.namespaces.get(service) ?? [INCOMING_DEFAULT_NAMESPACE];
  }

  /**
   * Check names and the service's right to the namespace: {@link BadRequestError} or {@link ForbiddenError}.
   * Done before anything else, so that a service learns nothing about namespaces it may not write.
   */
  assertMayDeliver(service: string, ref: BlobRef): void {
    if (!isValidBlobName(ref.user)) throw new BadRequestError('Invalid user id');
    if (!isValidBlobName(ref.blobId)) throw new BadRequestError('Invalid incoming message id');
    if (!isValidBlobName(ref.namespace)) throw new BadRequestError('Invalid namespace');
    if (!this.allowedNamespaces(service).includes(ref.namespace)) {
      throw new ForbiddenError(`Service "${service}" may not deliver to namespace ${ref.namespace}`);
    }
  }

  /**
   * Store a delivered payload of exactly `length` bytes, streamed: the server's header, then the payload as it
   * arrives, flagged `PENDING`. Nothing is visible unless the whole payload arrived. {@link ForbiddenError} for a
   * namespace the service may not write, {@link BlobAlreadyExistsError}, {@link QuotaExceededError} (checked
   * before a byte is read: the size is known), {@link BadRequestError} for a bad name or a short body.
   */
  async deliver(
    service: string,
    ref: BlobRef,
    payload: AsyncIterable<Uint8Array>,
    length: number,
    encryption: IncomingEncryption = 'pgp',
  ): Promise<DeliveryResult> {
    this.assertMayDeliver(service, ref);
    if (!Number.isSafeInteger(length) || length < 0) throw new BadRequestError('Invalid Content-Length');
    const header = incomingHeader(ref.blobId, length, encryption);
    const size = INCOMING_HEADER_LENGTH + length;
    async function* withHeader(): AsyncGenerator<Uint8Array> {
      yield header;
      yield* payload;
    }
    try {
      await this.store.put(ref, withHeader(), { size, flags: ['PENDING'], quotaTolerance: this.quotaToleranceBytes });
    } catch (err) {
      if (err instanceof QuotaExceededError) throw await this.quotaError(ref.user, size, err);
      throw err;
    }
    return { size, namespace: ref.namespace };
  }

  /** A quota error the trusted app can log: how much was asked, used and allowed. */
  private async quotaError(user: string, size: number, cause: unknown): Promise<Error> {
    try {
      const u = await this.store.usage(user);
      const used = u.used + u.otherUsed + u.reserved;
      return new QuotaExceededError(
        `Quota Exceeded! Delivering ${size} bytes to user ${user} would pass the limit: ${used} of ${u.limit} bytes used` +
        (this.quotaToleranceBytes > 0 ? ` (tolerance ${this.quotaToleranceBytes} bytes)` : ''),
        { cause },
      );
    } catch {
      return cause instanceof Error ? cause : new QuotaExceededError();
    }
  }

  /**
   * Apply a replica's transition atomically and answer the state after it. `PROCESSED` (and a permanent failure,
   * when so configured) deletes the message. {@link ReservationConflictError} when the state does not allow it;
   * {@link BlobNotFoundError} when the message is gone.
   */
  async transition(ref: BlobRef, req: TransitionRequest): Promise<ReservationState> {
    if (!VALID_REPLICA_ID.test(req.replica)) throw new BadRequestError('Invalid replica id');
    if (req.version !== undefined && !VALID_CLIENT_VERSION.test(req.version)) throw new BadRequestError('Invalid client version');
    const rules = this.rules();
    const after = await this.store.updateState(ref, (current) => decideTransition(current, req, rules));
    const record = readIncomingRecord(after.meta);
    let deleted = false;
    if (req.to === 'PROCESSED' || (req.to === 'FAILED' && record.permanent && this.deletePermanentlyFailed)) {
      try {
        await this.store.delete(ref);
      } catch (err) {
        // Someone (an original client following up with DELETE) was faster: the goal is reached.
        if (!(err instanceof BlobNotFoundError)) throw err;
      }
      deleted = true;
    }
    return this.describe(after, rules, deleted);
  }

  /** The state of a message as a transition would answer it, without changing anything. */
  async state(ref: BlobRef): Promise<ReservationState> {
    const rules = this.rules();
    return this.describe(await this.store.updateState(ref, () => null), rules, false);
  }

  private rules(): TransitionRules {
    return { thresholdMs: this.processingThresholdMs, maxFailures: this.maxFailures, now: this.now() };
  }

  private describe(state: BlobState, rules: TransitionRules, deleted: boolean): ReservationState {
    const record = readIncomingRecord(state.meta);
    const reserved = state.flags.includes('PROCESSING') && record.reservation !== null;
    return {
      flags: [...state.flags],
      replica: record.reservation?.replica ?? null,
      reserved_at: record.reservation?.at ?? null,
      expires_at: reserved ? record.reservation!.at + rules.thresholdMs : null,
      threshold_ms: rules.thresholdMs,
      failures: record.failures,
      permanent: record.permanent,
      deleted,
    };
  }

  /**
   * {@link expire}, at most once per user and namespace every `min(1 s, threshold / 10)`: listings call this, and a
   * filesystem store pays a scan of the namespace for it. A lapsed reservation is listed again that much later at
   * most (a reservation itself never waits: {@link transition} judges expiry exactly).
   */
  async expireIfDue(user: string, namespace: string): Promise<number> {
    const now = this.now();
    const every = Math.min(1000, Math.floor(this.processingThresholdMs / 10));
    const key = `${user}/${namespace}`;
    const last = this.lastExpiry.get(key);
    if (last !== undefined && now - last < every && now >= last) return 0;
    if (this.lastExpiry.size >= 10_000) {
      for (const [k, t] of this.lastExpiry) if (now - t >= every) this.lastExpiry.delete(k);
    }
    this.lastExpiry.set(key, now);
    return this.expire(user, namespace);
  }

  /**
   * Put every lapsed reservation of a user's namespace back to `PENDING` (keeping the record, so the last holder
   * can still confirm). Listings of pending messages call this first, so an expired message is listed again
   * without any background job. Returns how many were released.
   */
  async expire(user: string, namespace: string): Promise<number> {
    const rules = this.rules();
    const ids = await this.store.list(user, { namespace, filterFlag: 'PROCESSING' });
    let released = 0;
    await Promise.all(ids.map(async (blobId) => {
      try {
        await this.store.updateState({ user, namespace, blobId }, (current) => {
          if (!current.flags.includes('PROCESSING')) return null;
          if (!expired(readIncomingRecord(current.meta), rules)) return null;
          released += 1;
          return { flags: ['PENDING'] as BlobFlag[], meta: current.meta };
        });
      } catch (err) {
        if (!(err instanceof BlobNotFoundError)) throw err; // confirmed and deleted meanwhile
      }
    }));
    return released;
  }

  /**
   * `FAILED` messages a client of `version` may retry: not permanent, and no client of that version failed on
   * them. `options` are the listing's qualifiers (order, size); paging applies after the version filter.
   */
  async listRetryable(user: string, options: BlobListOptions, version: string): Promise<string[]> {
    const { offset, limit, ...rest } = options;
    const ids = await this.store.list(user, { ...rest, filterFlag: 'FAILED' });
    const keep = await Promise.all(ids.map(async (blobId) => {
      try {
        const state = await this.store.updateState({ user, namespace: options.namespace, blobId }, () => null);
        const record = readIncomingRecord(state.meta);
        return state.flags.includes('FAILED') && !record.permanent && !record.failures.some((f) => f.version === version);
      } catch (err) {
        if (err instanceof BlobNotFoundError) return false;
        throw err;
      }
    }));
    const out = ids.filter((_, i) => keep[i]);
    const from = offset ?? 0;
    return limit === undefined ? out.slice(from) : out.slice(from, from + limit);
  }
}

