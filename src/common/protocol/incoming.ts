/**
 * The incoming box's wire vocabulary (fact sheet §5c and the seed's "Incoming Box" spec 0.2.0), shared by the
 * server and the client:
 *
 * - delivery: `PUT /incoming/<uuid>/<id>[?namespace=<ns>][&encryption=<method>]` on the Services API; the server
 *   stores `B64U(preamble) + " " + payload`, the preamble saying scheme 2 (external), method 3 (pgp unless the
 *   trusted app names another), rev `"0"`, a zero IV and the payload size;
 * - listing qualifiers added to `GET /blobs/<uuid>/`: `limit`, `page`, `size_limit`, `include_processing`,
 *   `retry_for_version`;
 * - reservation: `POST /blobs/<uuid>/<id>?namespace=<ns>&replica=<replica>[&version=<v>]` with a one-flag body
 *   (`["PROCESSING"]` reserve or renew, `["PROCESSED"]` confirm, `["FAILED"]` fail, `["PENDING"]` release) is an
 *   atomic transition answered with a {@link ReservationState}, or 409 `reservation conflict`. Without `replica`
 *   the POST keeps its original meaning (replace the flags), so original clients work unchanged.
 */
import { BadRequestError } from '../errors.js';
import { EncMethod, EncScheme, PREAMBLE_B64_LENGTH, encodePreamble, encodePreambleB64 } from '../crypto/preamble.js';
import type { BlobFlag, BlobOrder } from './blobs.js';
import { formatOrderBy } from './blobs.js';

/** The namespace a delivery goes to when the trusted app names none (the original's only one). */
export const INCOMING_DEFAULT_NAMESPACE = 'MX';

/** The revision the server writes into an incoming message's preamble. */
export const INCOMING_REV = '0';

/** Bytes the server puts before the payload: `B64U(preamble)` and one space. */
export const INCOMING_HEADER_LENGTH = PREAMBLE_B64_LENGTH + 1;

/** Names of the encryption methods a trusted app may declare with `?encryption=` (the preamble's method codes). */
export const INCOMING_ENCRYPTION_METHODS = {
  /** OpenPGP (the default, and the original's only method). */
  pgp: EncMethod.pgp,
  /** AES-256-GCM with a key the trusted app and the user's consumer share. */
  aes_256_gcm: EncMethod.aes_256_gcm,
  /** AES-256-CTR with a key the trusted app and the user's consumer share. */
  aes_256_ctr: EncMethod.aes_256_ctr,
} as const;

/** One of {@link INCOMING_ENCRYPTION_METHODS}' names. */
export type IncomingEncryption = keyof typeof INCOMING_ENCRYPTION_METHODS;

/**
 * Parse the `encryption` query parameter of a delivery: absent means `pgp` (the original's only method); an
 * unknown name is a {@link BadRequestError}.
 *
 * @example
 * parseEncryptionParam(undefined); // 'pgp'
 */
export function parseEncryptionParam(value: string | undefined): IncomingEncryption {
  if (value === undefined || value === '') return 'pgp';
  if (Object.hasOwn(INCOMING_ENCRYPTION_METHODS, value)) return value as IncomingEncryption;
  throw new BadRequestError(`Unknown encryption method: ${value.slice(0, 40)} (known: ${Object.keys(INCOMING_ENCRYPTION_METHODS).join(', ')})`);
}

/** The method name of a preamble method code, or `undefined` for a code no trusted app may declare. */
export function encryptionName(method: number): IncomingEncryption | undefined {
  for (const [name, code] of Object.entries(INCOMING_ENCRYPTION_METHODS)) if (code === method) return name as IncomingEncryption;
  return undefined;
}

/**
 * The header the server writes before a delivered payload: `B64U(preamble) + " "`, the preamble saying scheme 2
 * (external), the declared method, rev `"0"`, a zero IV and `content_size` = the payload length (§5c: the exact
 * length, not a power-of-two bucket).
 *
 * @example
 * const head = incomingHeader('msg-1', payload.length); // 737 bytes
 */
export function incomingHeader(id: string, payloadLength: number, encryption: IncomingEncryption = 'pgp', timestamp?: number): Buffer {
  const raw = encodePreamble({
    docId: id,
    rev: INCOMING_REV,
    scheme: EncScheme.external,
    method: INCOMING_ENCRYPTION_METHODS[encryption],
    contentSize: payloadLength,
    ...(timestamp === undefined ? {} : { timestamp }),
  });
  return Buffer.from(`${encodePreambleB64(raw)} `, 'latin1');
}

/** A replica id as the reservation wire accepts it (Soledad replica uids are hex). */
export const VALID_REPLICA_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** A client version as recorded on a failure (`0.1.0`, `soledad-js-0.1.0+mail@2`). */
export const VALID_CLIENT_VERSION = /^[A-Za-z0-9._+@-]{1,64}$/;

/** One failure recorded on an incoming message. */
export interface IncomingFailure {
  /** The version the failing client reported. */
  version: string;
  /** The replica that failed. */
  replica: string;
  /** When, in milliseconds since the epoch (server clock). */
  at: number;
}

/**
 * What the server answers to a reservation transition: the message's state after it.
 *
 * @example
 * { "flags": ["PROCESSING"], "replica": "ab12", "reserved_at": 1700000000000, "expires_at": 1700000600000,
 *   "threshold_ms": 600000, "failures": [], "permanent": false, "deleted": false }
 */
export interface ReservationState {
  /** The flags now. */
  flags: BlobFlag[];
  /** The replica holding (or last holding) the reservation, if any. */
  replica: string | null;
  /** When that reservation was taken or last renewed (ms since the epoch), if any. */
  reserved_at: number | null;
  /** When it lapses unless renewed (ms since the epoch); `null` when the message is not reserved. */
  expires_at: number | null;
  /** The server's `PROCESSING_THRESHOLD` in milliseconds: renew well within it. */
  threshold_ms: number;
  /** Failures recorded so far. */
  failures: IncomingFailure[];
  /** True once enough distinct versions failed: no client retries it any more. */
  permanent: boolean;
  /** True when the server deleted the message (after `PROCESSED`, or a permanent failure when so configured). */
  deleted: boolean;
}

/** The four transitions a replica asks for, by the one flag of the POST body. */
export type IncomingTransition = 'PROCESSING' | 'PROCESSED' | 'FAILED' | 'PENDING';

/** Qualifiers of an incoming listing (all optional; the names of the wire are in `encodeIncomingListQuery`). */
export interface IncomingListQuery {
  /** Namespace (default {@link INCOMING_DEFAULT_NAMESPACE}). */
  namespace?: string;
  /** Only messages carrying this flag. */
  filterFlag?: BlobFlag;
  /** Oldest first (`asc`) or newest first (`desc`). */
  order?: BlobOrder;
  /** `true`: also list `PROCESSING` messages; `false`: leave them out; absent: the flag filter alone decides. */
  includeProcessing?: boolean;
  /** Skip messages whose stored size (preamble included) is above this many bytes. */
  sizeLimit?: number;
  /** At most this many ids. */
  limit?: number;
  /** With {@link limit}: which page, from 1. */
  page?: number;
  /** Only `FAILED` messages a client of this version may retry (not permanent, not failed by this version). */
  retryForVersion?: string;
}

/**
 * The query string of an incoming listing.
 *
 * @example
 * encodeIncomingListQuery({ filterFlag: 'PENDING', order: 'desc', limit: 50 });
 * // { namespace: 'MX', filter_flag: 'PENDING', order_by: '-date', limit: '50' }
 */
export function encodeIncomingListQuery(q: IncomingListQuery): Record<string, string> {
  const out: Record<string, string> = { namespace: q.namespace ?? INCOMING_DEFAULT_NAMESPACE };
  if (q.filterFlag !== undefined) out.filter_flag = q.filterFlag;
  if (q.order !== undefined) out.order_by = formatOrderBy(q.order);
  if (q.includeProcessing !== undefined) out.include_processing = String(q.includeProcessing);
  if (q.sizeLimit !== undefined) out.size_limit = String(q.sizeLimit);
  if (q.limit !== undefined) out.limit = String(q.limit);
  if (q.page !== undefined) out.page = String(q.page);
  if (q.retryForVersion !== undefined) out.retry_for_version = q.retryForVersion;
  return out;
}

/**
 * Parse a non-negative integer query parameter (`limit`, `page`, `size_limit`); absent → `undefined`, anything
 * else than digits → {@link BadRequestError}.
 */
export function parseCountParam(value: string | undefined, name: string, min = 0): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!/^\d{1,15}$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new BadRequestError(`Invalid ${name}: expected an integer ≥ ${min}`);
  }
  return n;
}
