/**
 * The binary preamble that heads every encrypted document and blob (fact sheet §3b).
 *
 * Python `struct '2sbbQ16s255p255pQ'` with native alignment on a little-endian machine: 552 bytes. The legacy
 * form without the trailing size (`'2sbbQ16s255p255p'`, 542 bytes) is accepted on decode only.
 */
import { DocumentTooBigError, InvalidPreambleError } from '../errors.js';
import { b64uDecode, b64uEncode } from './base64.js';

/** Size in bytes of the current preamble. */
export const PREAMBLE_SIZE = 552;
/** Size in bytes of the legacy preamble (no content size). */
export const LEGACY_PREAMBLE_SIZE = 542;
/** Length of `B64U(preamble)` for the current preamble. */
export const PREAMBLE_B64_LENGTH = 736;
/** The two magic bytes `0x13 0x37` (B64U of magic + symkey scheme is `EzcB`). */
export const MAGIC: Readonly<Buffer> = Buffer.from([0x13, 0x37]);

/** Encryption schemes (`ENC_SCHEME`): 1 symmetric key, 2 external (e.g. OpenPGP from the incoming box). */
export const EncScheme = { symkey: 1, external: 2 } as const;
/** Encryption methods (`ENC_METHOD`): 1 AES-256-CTR, 2 AES-256-GCM, 3 OpenPGP. */
export const EncMethod = { aes_256_ctr: 1, aes_256_gcm: 2, pgp: 3 } as const;

const OFF_MAGIC = 0;
const OFF_SCHEME = 2;
const OFF_METHOD = 3;
const OFF_TIMESTAMP = 8;
const OFF_IV = 16;
const OFF_DOC_ID = 32;
const OFF_REV = 287;
const OFF_SIZE = 544;
const PASCAL_FIELD = 255;
const IV_FIELD = 16;

/** A decoded preamble. `docId`/`rev` are UTF-8 decoded; `rawDocId`/`rawRev` are the stored bytes. */
export interface Preamble {
  magic: Buffer;
  scheme: number;
  method: number;
  /** Seconds since the epoch when the writer encrypted (informational; never checked). */
  timestamp: number;
  iv: Buffer;
  docId: string;
  rev: string;
  rawDocId: Buffer;
  rawRev: Buffer;
  /** Rounded plaintext size; `null` for the legacy 542-byte form. */
  contentSize: number | null;
}

/** What {@link encodePreamble} needs. Missing `iv` means 16 zero bytes (as the server does for incoming). */
export interface PreambleInput {
  docId: string;
  rev: string;
  scheme: number;
  method: number;
  iv?: Buffer;
  /** Defaults to now. */
  timestamp?: number;
  /** Written as is; callers that encrypt pass {@link contentSizeFor}(plaintext length). */
  contentSize: number;
}

/**
 * The bytes a Python `struct` `255p` field stores for `value`: UTF-8, cut to 254 bytes (the length byte counts
 * toward the 255). Decryptors compare these bytes, so an id longer than 254 bytes still matches itself.
 */
export function pascalValue(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  return bytes.length > PASCAL_FIELD - 1 ? bytes.subarray(0, PASCAL_FIELD - 1) : bytes;
}

function writePascal(out: Buffer, offset: number, value: string): void {
  const bytes = pascalValue(value);
  out[offset] = bytes.length;
  bytes.copy(out, offset + 1);
}

function readPascal(raw: Buffer, offset: number): Buffer {
  // CPython clamps a length byte of 255 to 254 when unpacking.
  const n = Math.min(raw[offset]!, PASCAL_FIELD - 1);
  return Buffer.from(raw.subarray(offset + 1, offset + 1 + n));
}

/**
 * Smallest power of two `2^i` (i = 12..30) strictly greater than `length`, the size bucket written into the
 * preamble so that the server learns only a coarse size. Throws {@link DocumentTooBigError} from 2^30 on (the
 * original crashes there).
 *
 * @example
 * contentSizeFor(0);    // 4096
 * contentSizeFor(4096); // 8192
 */
export function contentSizeFor(length: number): number {
  if (!Number.isInteger(length) || length < 0) throw new RangeError('length must be a non-negative integer');
  for (let i = 12; i <= 30; i++) {
    const step = 2 ** i;
    if (length < step) return step;
  }
  throw new DocumentTooBigError('Content of 1 GiB or more cannot be encrypted in this format');
}

/**
 * Encode the 552-byte preamble.
 *
 * @example
 * const raw = encodePreamble({ docId: 'D-1', rev: 'r:1', scheme: EncScheme.symkey,
 *   method: EncMethod.aes_256_gcm, iv, contentSize: contentSizeFor(len) });
 */
export function encodePreamble(input: PreambleInput): Buffer {
  // From the shared pool, zeroed here (the padding of the fields must be zeros): a preamble holds nothing secret, and
  // Buffer.alloc would create an ArrayBuffer per document (three times the cost, and more for the GC to sweep).
  const out = Buffer.allocUnsafe(PREAMBLE_SIZE).fill(0);
  MAGIC.copy(out, OFF_MAGIC);
  out.writeInt8(input.scheme, OFF_SCHEME);
  out.writeInt8(input.method, OFF_METHOD);
  const ts = input.timestamp ?? Math.floor(Date.now() / 1000);
  out.writeBigUInt64LE(BigInt(ts), OFF_TIMESTAMP);
  if (input.iv !== undefined) {
    if (input.iv.length > IV_FIELD) throw new RangeError('iv longer than 16 bytes');
    input.iv.copy(out, OFF_IV);
  }
  writePascal(out, OFF_DOC_ID, input.docId);
  writePascal(out, OFF_REV, input.rev);
  out.writeBigUInt64LE(BigInt(input.contentSize), OFF_SIZE);
  return out;
}

/**
 * Decode a raw preamble of 552 bytes (or the legacy 542). Any other length throws {@link InvalidPreambleError}.
 * Does not judge the fields: the magic, scheme and method are the decryptor's business.
 */
export function decodePreamble(raw: Buffer): Preamble {
  if (raw.length !== PREAMBLE_SIZE && raw.length !== LEGACY_PREAMBLE_SIZE) {
    throw new InvalidPreambleError(`Unexpected preamble size ${raw.length}`);
  }
  const rawDocId = readPascal(raw, OFF_DOC_ID);
  const rawRev = readPascal(raw, OFF_REV);
  return {
    magic: Buffer.from(raw.subarray(OFF_MAGIC, OFF_MAGIC + 2)),
    scheme: raw.readInt8(OFF_SCHEME),
    method: raw.readInt8(OFF_METHOD),
    timestamp: Number(raw.readBigUInt64LE(OFF_TIMESTAMP)),
    iv: Buffer.from(raw.subarray(OFF_IV, OFF_IV + IV_FIELD)),
    docId: rawDocId.toString('utf8'),
    rev: rawRev.toString('utf8'),
    rawDocId,
    rawRev,
    contentSize: raw.length === PREAMBLE_SIZE ? Number(raw.readBigUInt64LE(OFF_SIZE)) : null,
  };
}

/** `B64U(preamble)`: the textual form that heads docs and blobs. */
export function encodePreambleB64(raw: Buffer): string {
  return b64uEncode(raw);
}

/** Decode `B64U(preamble)` to raw bytes; bad base64 or length throws {@link InvalidPreambleError}. */
export function decodePreambleB64(text: string): { raw: Buffer; preamble: Preamble } {
  const raw = b64uDecode(text, InvalidPreambleError);
  return { raw, preamble: decodePreamble(raw) };
}
