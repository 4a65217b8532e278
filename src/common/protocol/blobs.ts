/**
 * The blobs wire vocabulary shared by server and client (fact sheet §5b): flags, name rules, query-string
 * booleans, listing order, and the framing of the multi-blob `/stream/` transfer in both directions.
 */
import { BadRequestError } from '../errors.js';

/** The remote flags a blob may carry. */
export const BLOB_FLAGS = ['PENDING', 'PROCESSING', 'PROCESSED', 'FAILED'] as const;

/** One remote flag. */
export type BlobFlag = (typeof BLOB_FLAGS)[number];

/** Named access to the flags, as the original's `Flags` class. */
export const Flags = {
  PENDING: 'PENDING',
  PROCESSING: 'PROCESSING',
  PROCESSED: 'PROCESSED',
  FAILED: 'FAILED',
} as const satisfies Record<BlobFlag, BlobFlag>;

/** The namespace used when none is given. */
export const DEFAULT_NAMESPACE = 'default';

/** Every user id, blob id and namespace must match this (the original's `VALID_STRINGS`). */
export const VALID_BLOB_NAME = /^[a-zA-Z0-9_-]+$/;

/**
 * True when `name` is a legal user id, blob id or namespace. Anything else could name a file outside the user's
 * directory (`..`, `/`, NUL), so both sides refuse it before it reaches a path.
 *
 * @example
 * isValidBlobName('abc-123'); // true
 * isValidBlobName('../etc');  // false
 */
export function isValidBlobName(name: unknown): name is string {
  return typeof name === 'string' && VALID_BLOB_NAME.test(name);
}

/** True when `value` is one of {@link BLOB_FLAGS}. */
export function isBlobFlag(value: unknown): value is BlobFlag {
  return typeof value === 'string' && (BLOB_FLAGS as readonly string[]).includes(value);
}

/**
 * Flags serialized as Python's `json.dumps` writes them (`["PENDING", "FAILED"]`, comma and space), which is
 * what the original server keeps in `<id>.flags` and answers to `?only_flags`.
 *
 * @example
 * formatFlags(['PENDING', 'FAILED']); // '["PENDING", "FAILED"]'
 */
export function formatFlags(flags: readonly string[]): string {
  return `[${flags.map((f) => JSON.stringify(f)).join(', ')}]`;
}

/**
 * Parse a query-string boolean. Deviation 2 of protocol.md: `true/1/yes` are true and `false/0/no/""` false,
 * case-insensitively (the original client sends Python's `True`); a missing value is `false`; anything else is
 * a {@link BadRequestError}.
 *
 * @example
 * parseBoolParam('True', 'deleted'); // true
 * parseBoolParam(undefined, 'deleted'); // false
 */
export function parseBoolParam(value: string | undefined, name: string): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no' || v === '') return false;
  throw new BadRequestError(`Invalid boolean for ${name}: ${value.slice(0, 40)}`);
}

/** Listing order by upload date: oldest first or newest first. */
export type BlobOrder = 'asc' | 'desc';

/**
 * Parse `order_by`: `date` and `+date` are ascending, `-date` descending, absent means unordered. A `+` that
 * arrived unescaped in a query string decodes to a space, so ` date` is read as `+date`. Anything else is a
 * {@link BadRequestError} (deviation 2: the original never answers).
 */
export function parseOrderBy(value: string | undefined): BlobOrder | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'date' || value === '+date' || value === ' date') return 'asc';
  if (value === '-date') return 'desc';
  throw new BadRequestError(`Unsupported order_by parameter: ${value.slice(0, 40)}`);
}

/** The `order_by` value a client sends for an order. */
export function formatOrderBy(order: BlobOrder): string {
  return order === 'asc' ? '+date' : '-date';
}

// ---- /stream/ framing ----

/** Length of the B64U-encoded 16-byte GCM tag in a download frame. */
export const STREAM_TAG_B64_LENGTH = 24;
/** Length of a download frame header: `%08x` size, B64U tag, one space. */
export const STREAM_FRAME_HEADER_LENGTH = 8 + STREAM_TAG_B64_LENGTH + 1;

/**
 * The header that precedes each blob in a `/stream/?direction=download` reply: the size as `%08x`, the B64U of
 * the blob's last 16 bytes (its GCM tag), a space. Sizes of 4 GiB or more would widen the hex field; the preamble
 * limits blobs to 1 GiB, so that cannot happen.
 *
 * @example
 * encodeStreamFrameHeader(753, tag).length; // 33
 */
export function encodeStreamFrameHeader(size: number, tag: Buffer): Buffer {
  // A (non-Soledad) blob shorter than a tag is padded so the frame keeps its fixed width.
  const fixed = tag.length === 16 ? tag : Buffer.concat([Buffer.alloc(16 - Math.min(16, tag.length)), tag.subarray(-16)]);
  const b64 = fixed.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
  return Buffer.from(`${size.toString(16).padStart(8, '0')}${b64} `, 'latin1');
}

/** A decoded download frame header. */
export interface StreamFrameHeader {
  /** Size in bytes of the blob that follows. */
  size: number;
  /** The tag the server read from the blob's last 16 bytes, B64U. */
  tag: string;
}

/** Decode a 33-byte download frame header; a malformed one is a {@link BadRequestError}. */
export function decodeStreamFrameHeader(header: Buffer): StreamFrameHeader {
  const text = header.toString('latin1');
  if (header.length !== STREAM_FRAME_HEADER_LENGTH || !/^[0-9a-fA-F]{8}[A-Za-z0-9_=-]{24} $/.test(text)) {
    throw new BadRequestError('Malformed stream frame header');
  }
  return { size: Number.parseInt(text.slice(0, 8), 16), tag: text.slice(8, 8 + STREAM_TAG_B64_LENGTH) };
}

/** One entry of a `/stream/?direction=upload` manifest. */
export interface StreamUploadEntry {
  /** Blob id. */
  blobId: string;
  /** Exact number of bytes of this blob in the body. */
  size: number;
}

/**
 * The first line of a `/stream/?direction=upload` body: `[[id, size], …]` and a newline; the blobs follow,
 * concatenated in the same order.
 *
 * @example
 * encodeStreamManifest([{ blobId: 'a', size: 10 }]); // '[["a", 10]]\n'
 */
export function encodeStreamManifest(entries: readonly StreamUploadEntry[]): string {
  return `[${entries.map((e) => `[${JSON.stringify(e.blobId)}, ${e.size}]`).join(', ')}]\n`;
}

/**
 * Parse and validate an upload manifest line (without its newline): a JSON list of `[id, size]` pairs with legal,
 * distinct ids and non-negative integer sizes. Anything else is a {@link BadRequestError}.
 */
export function parseStreamManifest(line: string): StreamUploadEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (cause) {
    throw new BadRequestError('Stream manifest is not valid JSON', { cause });
  }
  if (!Array.isArray(value)) throw new BadRequestError('Stream manifest must be a list');
  const seen = new Set<string>();
  return value.map((item: unknown) => {
    if (!Array.isArray(item) || item.length !== 2) throw new BadRequestError('Stream manifest entries are [id, size]');
    const [blobId, size] = item as [unknown, unknown];
    if (!isValidBlobName(blobId)) throw new BadRequestError('Invalid blob id in stream manifest');
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new BadRequestError('Invalid blob size in stream manifest');
    }
    if (seen.has(blobId)) throw new BadRequestError('Duplicate blob id in stream manifest');
    seen.add(blobId);
    return { blobId, size };
  });
}

/**
 * Parse a `/stream/?direction=download` request body: a JSON list of legal blob ids.
 */
export function parseStreamDownloadRequest(text: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new BadRequestError('Stream request is not valid JSON', { cause });
  }
  if (!Array.isArray(value)) throw new BadRequestError('Stream request must be a list of blob ids');
  for (const id of value) if (!isValidBlobName(id)) throw new BadRequestError('Invalid blob id in stream request');
  return value as string[];
}

/** Usage report of `GET /quota/<uuid>` (an addition to the original API). */
export interface QuotaReport {
  /** Bytes stored by the user. */
  used: number;
  /** The user's limit in bytes. */
  limit: number;
}
