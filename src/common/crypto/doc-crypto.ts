/**
 * Document encryption exactly as Soledad 0.10 does it (fact sheet §3a–3c), plus reading (and, for tests and
 * migration tools, writing) the legacy ≤0.9.1 `_enc_json` form.
 */
import { isUtf8 } from 'node:buffer';
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import {
  EncryptionSchemeNotImplementedError,
  InvalidJSONError,
  InvalidPreambleError,
  MacMismatchError,
  SoledadError,
  TamperedDocumentError,
} from '../errors.js';
import { b64Decode, b64nEncode, b64uDecode, b64uDecodeInto, b64uEncode } from './base64.js';
import {
  EncMethod,
  EncScheme,
  MAGIC,
  contentSizeFor,
  PREAMBLE_B64_LENGTH,
  decodePreamble,
  encodePreamble,
  pascalValue,
} from './preamble.js';
import { utf8Text } from '../utf8.js';
import { TrailingTagDecipher } from './gcm-tail.js';
import type { Preamble } from './preamble.js';

/** Bytes of `remote_secret` reserved for the legacy MAC key; the rest keys documents. */
const MAC_KEY_LENGTH = 64;
const IV_LENGTH = 16;
const TAG_LENGTH = 16;
const RAW_PREFIX = '{"raw": "';
/** What the real client checks before it tries to decrypt: `{"raw": "` + B64U(`13 37 01`). */
const RAW_SIGNATURE = `${RAW_PREFIX}EzcB`;

function hmacSha256(key: Buffer, msg: Buffer | string): Buffer {
  return createHmac('sha256', key).update(msg).digest();
}

function requireSecret(remoteSecret: Buffer): void {
  // A short secret would silently give an empty or weak HMAC key.
  if (remoteSecret.length <= MAC_KEY_LENGTH) throw new RangeError('remote secret too short');
}

/**
 * The per-document key: `HMAC-SHA256(key = remoteSecret[64:], msg = utf8(docId))`. Blobs use their blob id.
 *
 * @example
 * const key = deriveDocKey(secrets.remoteSecret, 'D-123'); // 32 bytes
 */
export function deriveDocKey(remoteSecret: Buffer, docId: string): Buffer {
  requireSecret(remoteSecret);
  return hmacSha256(remoteSecret.subarray(MAC_KEY_LENGTH), docId);
}

/** SHA-256's block size: HMAC first hashes a longer key down to 32 bytes (RFC 2104). */
const HMAC_BLOCK = 64;

/**
 * The per-document keys of one remote secret, for code that derives many (a sync): the same keys as
 * {@link deriveDocKey}, about three times faster, because the 448-byte HMAC key is hashed down once (RFC 2104
 * does that on every call) instead of per document. {@link DocKeys.close} zeroes what it holds.
 *
 * @example
 * const keys = new DocKeys(secrets.remoteSecret);
 * try { for (const d of docs) send(encryptDocContent(keys, d.id, d.rev, d.json)); } finally { keys.close(); }
 */
export class DocKeys {
  private hmacKey: Buffer;

  constructor(remoteSecret: Buffer) {
    requireSecret(remoteSecret);
    const key = remoteSecret.subarray(MAC_KEY_LENGTH);
    this.hmacKey = key.length > HMAC_BLOCK ? createHash('sha256').update(key).digest() : Buffer.from(key);
  }

  /** The key of one document (or blob) id; the caller zeroes it after use. */
  derive(docId: string): Buffer {
    if (this.hmacKey.length === 0) throw new RangeError('These document keys were closed');
    return hmacSha256(this.hmacKey, docId);
  }

  /** Zero the key material; `derive` throws afterwards. */
  close(): void {
    this.hmacKey.fill(0);
    this.hmacKey = Buffer.alloc(0);
  }
}

function docKey(secret: Buffer | DocKeys, docId: string): Buffer {
  return secret instanceof DocKeys ? secret.derive(docId) : deriveDocKey(secret, docId);
}

// IVs are drawn from a pool filled by the CSPRNG a few KiB at a time: one randomBytes call per document cost
// more than encrypting a small document. Every IV is a fresh slice, never handed out twice.
const ivPool = Buffer.alloc(IV_LENGTH * 256);
let ivOffset = ivPool.length;

function freshIv(): Buffer {
  if (ivOffset + IV_LENGTH > ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = Buffer.from(ivPool.subarray(ivOffset, ivOffset + IV_LENGTH));
  ivOffset += IV_LENGTH;
  return iv;
}

/** The preamble and the ciphertext of a document, in two pieces whose base64 texts join into the whole's. */
interface Sealed {
  preamble: Buffer;
  /** The first bytes of ciphertext, a multiple of 3 of them. */
  head: Buffer;
  /** The rest of the ciphertext and the tag. */
  tail: Buffer;
}

function seal(remoteSecret: Buffer | DocKeys, docId: string, rev: string, plaintextJson: string | Uint8Array): Sealed {
  // Text is encoded into a buffer of our own, zeroed at the end; the caller's bytes are left as they are.
  const own = typeof plaintextJson === 'string';
  const plaintext = own ? Buffer.from(plaintextJson, 'utf8')
    : Buffer.from(plaintextJson.buffer, plaintextJson.byteOffset, plaintextJson.byteLength);
  const iv = freshIv();
  const preamble = encodePreamble({
    docId,
    rev,
    scheme: EncScheme.symkey,
    method: EncMethod.aes_256_gcm,
    iv,
    contentSize: contentSizeFor(plaintext.length),
  });
  const key = docKey(remoteSecret, docId);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LENGTH });
  key.fill(0);
  cipher.setAAD(preamble);
  // Base64 of a head whose length is a multiple of 3, followed by base64 of the rest, is the base64 of the whole:
  // the ciphertext is never copied into one buffer.
  const aligned = plaintext.length - (plaintext.length % 3);
  const head = cipher.update(plaintext.subarray(0, aligned));
  const tail = Buffer.concat([cipher.update(plaintext.subarray(aligned)), cipher.final(), cipher.getAuthTag()]);
  if (own) plaintext.fill(0);
  return { preamble, head, tail };
}

/**
 * Encrypt a document's JSON for the server: `{"raw": "<B64U(preamble)> <B64U(ct‖tag)>"}` with AES-256-GCM,
 * a random 16-byte IV and the raw preamble as AAD, byte-identical in shape to what Soledad 0.10 sends. The JSON
 * may be given as text or as its UTF-8 bytes (which are read, not changed).
 *
 * @example
 * const content = encryptDocContent(secret, 'D-1', 'replica:1', '{"a": 1}');
 * // content.startsWith('{"raw": "EzcB') === true
 */
export function encryptDocContent(
  remoteSecret: Buffer | DocKeys, docId: string, rev: string, plaintextJson: string | Uint8Array,
): string {
  const { preamble, head, tail } = seal(remoteSecret, docId, rev, plaintextJson);
  return `${RAW_PREFIX}${b64uEncode(preamble)} ${b64uEncode(head)}${b64uEncode(tail)}"}`;
}

/** Length of {@link encryptDocContent}'s text (all ASCII) for a plaintext of `n` bytes. */
export function encryptedContentLength(n: number): number {
  return RAW_PREFIX.length + PREAMBLE_B64_LENGTH + 1 + 4 * Math.ceil((n + TAG_LENGTH) / 3) + 2;
}

/** Ciphertext bytes encoded to base64 at a time: a multiple of 3, and texts small enough to die young. */
const B64_SLICE_BYTES = 48 * 1024;

/**
 * {@link encryptDocContent}, answering the same text as ASCII bytes in a buffer of its own. A large document's
 * base64 is written a slice at a time: no text as long as the document is ever made (such texts live in the
 * garbage collector's old space, and an upload made several of each).
 *
 * @example
 * const bytes = encryptDocContentBytes(keys, 'D-1', 'replica:1', plaintext); // bytes.toString() === the text
 */
export function encryptDocContentBytes(
  remoteSecret: Buffer | DocKeys, docId: string, rev: string, plaintextJson: string | Uint8Array,
): Buffer {
  const { preamble, head, tail } = seal(remoteSecret, docId, rev, plaintextJson);
  const out = Buffer.allocUnsafe(encryptedContentLength(head.length + tail.length - TAG_LENGTH));
  let at = out.write(RAW_PREFIX, 0, 'latin1');
  at += out.write(b64uEncode(preamble), at, 'latin1');
  out[at++] = 0x20;
  for (let i = 0; i < head.length; i += B64_SLICE_BYTES) {
    at += out.write(head.toString('base64url', i, Math.min(head.length, i + B64_SLICE_BYTES)), at, 'latin1');
  }
  at += out.write(b64uEncode(tail), at, 'latin1');
  at += out.write('"}', at, 'latin1');
  if (at !== out.length) throw new Error(`encrypted content length ${at} is not the expected ${out.length}`);
  return out;
}

/** Whether `content` is a current-scheme symmetric document (the real client's own test). */
export function isRawEncrypted(content: string): boolean {
  return content.startsWith(RAW_SIGNATURE);
}

/**
 * Check a decoded preamble against what the caller expects, in the original's order: magic, scheme, method,
 * rev, doc id. Shared by documents and blobs.
 */
export function checkPreamble(preamble: Preamble, docId: string, rev: string): void {
  if (!preamble.magic.equals(MAGIC)) throw new InvalidPreambleError('Bad magic in preamble');
  if (preamble.scheme !== EncScheme.symkey) {
    throw new EncryptionSchemeNotImplementedError(`Encryption scheme ${preamble.scheme} is not implemented`);
  }
  if (preamble.method !== EncMethod.aes_256_gcm) {
    throw new EncryptionSchemeNotImplementedError(`Encryption method ${preamble.method} is not supported here`);
  }
  if (!preamble.rawRev.equals(pascalValue(rev))) {
    throw new TamperedDocumentError('Ciphertext is bound to another revision');
  }
  if (!preamble.rawDocId.equals(pascalValue(docId))) {
    throw new TamperedDocumentError('Ciphertext is bound to another document id');
  }
}

function parseRaw(content: string): string {
  // What encryptDocContent writes: `{"raw": "` + a string without quote or backslash + `"}`. JSON.parse would
  // return exactly the middle (control characters, which it refuses, fail the base64 check that follows), so
  // slice it out instead of copying the whole ciphertext through the parser.
  const end = content.length - 2;
  if (content.startsWith(RAW_PREFIX) && content.endsWith('"}') && content.indexOf('"', RAW_PREFIX.length) === end
    && content.indexOf('\\') === -1) {
    return content.slice(RAW_PREFIX.length, end);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch (err) {
    throw new InvalidPreambleError('Encrypted content is not JSON', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidPreambleError('Encrypted content is not a JSON object');
  }
  const raw = (parsed as { raw?: unknown }).raw;
  if (typeof raw !== 'string') throw new InvalidPreambleError('Encrypted content has no "raw" string');
  return raw;
}

/**
 * Where ciphertexts are decoded before decryption, reused: a new buffer per document was one of the costs of a
 * download that grew with its number of documents. It grows to the largest ciphertext seen up to 1 MiB (a larger
 * one gets a buffer of its own, not kept). It only ever holds ciphertext.
 */
let ciphertextScratch: Buffer = Buffer.allocUnsafeSlow(64 * 1024);
const CIPHERTEXT_SCRATCH_MAX = 1024 * 1024;

/**
 * Decrypt content produced by {@link encryptDocContent} (or by real Soledad 0.9.2+), checking in order: magic,
 * scheme (else {@link EncryptionSchemeNotImplementedError}), method, rev and doc id (else
 * {@link TamperedDocumentError}), GCM tag (else {@link MacMismatchError}), UTF-8 text (else
 * {@link InvalidJSONError}). Malformed input throws {@link InvalidPreambleError}. Returns the document's JSON text.
 *
 * @example
 * const json = decryptDocContent(secret, 'D-1', 'replica:1', content); // '{"a": 1}'
 */
export function decryptDocContent(remoteSecret: Buffer | DocKeys, docId: string, rev: string, content: string): string {
  const plain = decryptDocContentBytes(remoteSecret, docId, rev, content);
  const text = utf8Text(plain);
  plain.fill(0);
  return text;
}

/**
 * {@link decryptDocContent}, answering the plaintext's bytes in a buffer of their own, which the caller zeroes when
 * done. They are checked to be UTF-8 text (else {@link InvalidJSONError}), not to be JSON.
 *
 * @example
 * const plain = decryptDocContentBytes(keys, 'D-1', 'replica:1', content);
 * try { out.set(plain, at); } finally { plain.fill(0); }
 */
export function decryptDocContentBytes(remoteSecret: Buffer | DocKeys, docId: string, rev: string, content: string): Buffer {
  try {
    const raw = parseRaw(content);
    const sep = raw.indexOf(' ');
    if (sep < 0) throw new InvalidPreambleError('Encrypted content has no separator');
    const preambleRaw = b64uDecode(raw.slice(0, sep), InvalidPreambleError);
    const preamble = decodePreamble(preambleRaw);
    checkPreamble(preamble, docId, rev);
    const body = b64uDecodeInto(raw.slice(sep + 1), ciphertextScratch, InvalidPreambleError);
    if (body.length > ciphertextScratch.length && body.length <= CIPHERTEXT_SCRATCH_MAX) ciphertextScratch = body;
    if (body.length < TAG_LENGTH) throw new InvalidPreambleError('Ciphertext shorter than its tag');
    const key = docKey(remoteSecret, docId);
    const decipher = createDecipheriv('aes-256-gcm', key, preamble.iv, { authTagLength: TAG_LENGTH });
    key.fill(0);
    decipher.setAAD(preambleRaw);
    decipher.setAuthTag(body.subarray(body.length - TAG_LENGTH));
    const head = decipher.update(body.subarray(0, body.length - TAG_LENGTH));
    let tail: Buffer;
    try {
      tail = decipher.final();
    } catch (err) {
      head.fill(0);
      throw new MacMismatchError(undefined, { cause: err });
    }
    // GCM's final() yields nothing: the plaintext is `head`, without another copy.
    const plain = tail.length === 0 ? head : Buffer.concat([head, tail]);
    if (plain !== head) head.fill(0);
    // Decoding would replace what is not UTF-8 instead of refusing it; the original's JSON parser refuses it.
    if (!isUtf8(plain)) {
      plain.fill(0);
      throw new InvalidJSONError('Decrypted content is not UTF-8 text');
    }
    return plain;
  } catch (err) {
    if (err instanceof SoledadError) throw err;
    throw new InvalidPreambleError('Malformed encrypted content', { cause: err });
  }
}

const RAW_PREFIX_BYTES = Buffer.from(RAW_PREFIX, 'latin1');
/** `{"raw": "` + B64U(current preamble) + the space: what must arrive before the first byte can be deciphered. */
const STREAM_HEAD_BYTES = RAW_PREFIX_BYTES.length + PREAMBLE_B64_LENGTH + 1;
const QUOTE = 0x22;
const EQUALS = 0x3d;
/** What ends {@link encryptDocContent}'s text after the base64: `"}`. */
const RAW_SUFFIX = Buffer.from('"}', 'latin1');

/**
 * Decrypts one document's content while its bytes arrive (the line of a large document in a download), so that
 * little is left to do when the last byte comes. It takes only exactly what {@link encryptDocContent} writes, and
 * answers what {@link decryptDocContentBytes} would answer for it. On anything else, and on any failure (a
 * tampered preamble, a wrong tag, text that is not UTF-8), it gives up and answers `null`: the caller then decodes
 * the whole content the usual way, which reports the precise error.
 *
 * @example
 * const s = new DocContentStream(keys, 'D-1', 'replica:1');
 * for (const piece of arriving) if (!s.push(piece)) break; // false: gave up, decode the whole line instead
 * const plain = s.finish(wholeContent) ?? decryptDocContentBytes(keys, 'D-1', 'replica:1', wholeContent.toString());
 */
export class DocContentStream {
  /** The first bytes, until the preamble can be read. */
  private head: Buffer[] = [];
  private headBytes = 0;
  private decipher: TrailingTagDecipher | null = null;
  /** Base64 characters of the ciphertext that did not fill a group of four yet. */
  private carry: Buffer = Buffer.alloc(0);
  /** Bytes of the content fully used so far (head, then whole groups of four base64 characters). */
  private used = 0;
  /** The base64 ended (a `=` or `"` was seen): the rest is looked at in {@link finish}. */
  private bodyEnded = false;
  private plain: Buffer[] = [];
  private failed = false;

  constructor(private readonly keys: Buffer | DocKeys, private readonly docId: string, private readonly rev: string) {}

  /** The next bytes of the content, in order from its first; `false` once it has given up. */
  push(bytes: Buffer): boolean {
    if (this.failed) return false;
    try {
      if (this.decipher === null) {
        this.head.push(bytes);
        this.headBytes += bytes.length;
        if (this.headBytes < STREAM_HEAD_BYTES) return true;
        const head = Buffer.concat(this.head, this.headBytes);
        this.head = [];
        if (!this.start(head)) return this.giveUp();
        bytes = head.subarray(STREAM_HEAD_BYTES);
        this.used = STREAM_HEAD_BYTES;
      }
      if (!this.bodyEnded && !this.body(bytes, false)) return this.giveUp();
      return true;
    } catch {
      return this.giveUp();
    }
  }

  /**
   * The whole content (the same bytes pushed so far, and the rest): its plaintext, checked to be UTF-8, in a
   * buffer of its own that the caller zeroes when done; or `null`, and the caller decodes it the usual way.
   */
  finish(content: Buffer): Buffer | null {
    if (this.failed || this.decipher === null || content.length < this.used + RAW_SUFFIX.length) {
      this.giveUp();
      return null;
    }
    try {
      if (!content.subarray(content.length - RAW_SUFFIX.length).equals(RAW_SUFFIX)) return this.giveUpNull();
      // From the first byte not used yet: the characters carried over are read again from here.
      const rest = content.subarray(this.used, content.length - RAW_SUFFIX.length);
      this.carry = Buffer.alloc(0);
      if (!this.body(rest, true)) return this.giveUpNull();
      const last = this.decipher.final('Document');
      const plain = Buffer.concat(last.length > 0 ? [...this.plain, last] : this.plain);
      for (const p of this.plain) p.fill(0);
      this.plain = [];
      // decryptDocContentBytes refuses the same; giving up lets it say so.
      if (!isUtf8(plain)) {
        plain.fill(0);
        return this.giveUpNull();
      }
      return plain;
    } catch {
      return this.giveUpNull();
    }
  }

  /** Forget it: zero the plaintext deciphered so far. */
  discard(): void {
    this.giveUp();
  }

  private start(head: Buffer): boolean {
    if (!head.subarray(0, RAW_PREFIX_BYTES.length).equals(RAW_PREFIX_BYTES)) return false;
    if (head[STREAM_HEAD_BYTES - 1] !== 0x20) return false;
    const preambleRaw = b64uDecode(head.toString('latin1', RAW_PREFIX_BYTES.length, STREAM_HEAD_BYTES - 1), InvalidPreambleError);
    const preamble = decodePreamble(preambleRaw);
    checkPreamble(preamble, this.docId, this.rev);
    const key = docKey(this.keys, this.docId);
    const gcm = createDecipheriv('aes-256-gcm', key, preamble.iv, { authTagLength: TAG_LENGTH });
    key.fill(0);
    gcm.setAAD(preambleRaw);
    this.decipher = new TrailingTagDecipher(gcm);
    return true;
  }

  /**
   * Decode and decipher the base64 in `bytes` (after {@link carry}); `last`: they are all that is left of it,
   * padding included. Only whole groups of four characters are decoded before the end, with the checks of
   * `b64uDecode` (the url-safe alphabet, padding only at the end).
   */
  private body(bytes: Buffer, last: boolean): boolean {
    let run = bytes;
    if (!last) {
      // The base64 ends at its padding or at the closing quote; what follows is looked at in finish().
      const quote = bytes.indexOf(QUOTE);
      const pad = bytes.indexOf(EQUALS);
      const end = quote < 0 ? pad : pad < 0 ? quote : Math.min(quote, pad);
      if (end >= 0) {
        run = bytes.subarray(0, end);
        this.bodyEnded = true;
      }
    }
    const text = this.carry.length === 0 ? run : Buffer.concat([this.carry, run]);
    const whole = last ? text.length : text.length - (text.length % 4);
    if (last && whole % 4 !== 0) return false;
    if (whole > 0) {
      const chars = text.subarray(0, whole);
      // Node's decoder skips characters outside both alphabets and stops at a misplaced "=": either leaves the
      // output shorter than four characters in three imply. It takes the standard alphabet's + and / too.
      if (chars.indexOf(0x2b) !== -1 || chars.indexOf(0x2f) !== -1) return false;
      const padding = last ? (chars[whole - 1] === EQUALS ? (chars[whole - 2] === EQUALS ? 2 : 1) : 0) : 0;
      const decoded = Buffer.from(chars.toString('latin1'), 'base64url');
      if (decoded.length !== (whole / 4) * 3 - padding) return false;
      for (const p of this.decipher!.update(decoded)) this.plain.push(p);
      this.used += whole;
    }
    // A copy: at most three characters (not counted in `used`), kept beyond the piece they came in.
    this.carry = last ? Buffer.alloc(0) : Buffer.from(text.subarray(whole));
    return true;
  }

  private giveUp(): false {
    this.failed = true;
    for (const p of this.plain) p.fill(0);
    this.plain = [];
    this.head = [];
    this.decipher = null;
    return false;
  }

  private giveUpNull(): null {
    this.giveUp();
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Legacy (≤0.9.1) documents: AES-256-CTR + HMAC-SHA256, content stored as a JSON object (§3c).

/** The legacy encrypted content object. */
export interface LegacyEncryptedDoc {
  _enc_json: string;
  _enc_scheme: 'symkey';
  _enc_method: 'aes-256-ctr';
  _enc_iv: string;
  _mac: string;
  _mac_method: 'hmac';
}

const LEGACY_SCHEME = 'symkey';
const LEGACY_METHOD = 'aes-256-ctr';
const LEGACY_MAC_METHOD = 'hmac';
const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/** Whether a document's content object is a legacy symmetric document (`_enc_scheme === 'symkey'`). */
export function isLegacyEncrypted(obj: unknown): boolean {
  return typeof obj === 'object' && obj !== null && (obj as { _enc_scheme?: unknown })._enc_scheme === LEGACY_SCHEME;
}

function legacyMac(remoteSecret: Buffer, docId: string, rev: string, ct: Buffer, encIv: string, encMethod: string): Buffer {
  const macKey = hmacSha256(remoteSecret.subarray(0, MAC_KEY_LENGTH), docId);
  // msg = doc_id + rev + raw ciphertext + scheme + method + _enc_iv (the stored text, trailing "\n" included).
  const msg = Buffer.concat([
    Buffer.from(docId + rev, 'utf8'),
    ct,
    Buffer.from(LEGACY_SCHEME + encMethod + encIv, 'utf8'),
  ]);
  const mac = hmacSha256(macKey, msg);
  macKey.fill(0);
  return mac;
}

function legacyField(obj: Record<string, unknown>, name: string): string {
  const v = obj[name];
  if (typeof v !== 'string') throw new InvalidPreambleError(`Legacy encrypted document lacks ${name}`);
  return v;
}

/**
 * Decrypt a legacy `_enc_json` document (written by Soledad ≤0.9.1): verify the HMAC (else
 * {@link MacMismatchError}), then AES-256-CTR. Returns the document's JSON text.
 *
 * @example
 * if (isLegacyEncrypted(content)) json = decryptLegacyDoc(secret, docId, rev, content);
 */
export function decryptLegacyDoc(remoteSecret: Buffer, docId: string, rev: string, content: object): string {
  requireSecret(remoteSecret);
  const obj = content as Record<string, unknown>;
  const encJson = legacyField(obj, '_enc_json');
  const scheme = legacyField(obj, '_enc_scheme');
  const method = legacyField(obj, '_enc_method');
  const encIv = legacyField(obj, '_enc_iv');
  const macHex = legacyField(obj, '_mac');
  const macMethod = legacyField(obj, '_mac_method');
  if (scheme !== LEGACY_SCHEME || method !== LEGACY_METHOD || macMethod !== LEGACY_MAC_METHOD) {
    throw new EncryptionSchemeNotImplementedError('Unsupported legacy encryption scheme, method or MAC');
  }
  if (!HEX_RE.test(encJson) || !HEX_RE.test(macHex)) {
    throw new InvalidPreambleError('Legacy encrypted document is not hex encoded');
  }
  const ct = Buffer.from(encJson, 'hex');
  const iv = b64Decode(encIv, InvalidPreambleError);
  if (iv.length !== IV_LENGTH) throw new InvalidPreambleError('Legacy IV must be 16 bytes');
  const expected = legacyMac(remoteSecret, docId, rev, ct, encIv, method);
  const given = Buffer.from(macHex, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new MacMismatchError('Could not authenticate the legacy document');
  }
  const key = deriveDocKey(remoteSecret, docId);
  const decipher = createDecipheriv('aes-256-ctr', key, iv);
  key.fill(0);
  const plain = Buffer.concat([decipher.update(ct), decipher.final()]);
  const text = plain.toString('utf8');
  plain.fill(0);
  return text;
}

/**
 * Encrypt in the legacy form (for tests and migration tooling only; new documents use
 * {@link encryptDocContent}). Keys come out in the order Python 2.7's `json.dumps` wrote them.
 */
export function encryptLegacyDoc(
  remoteSecret: Buffer,
  docId: string,
  rev: string,
  plaintextJson: string,
  iv: Buffer = randomBytes(IV_LENGTH),
): LegacyEncryptedDoc {
  if (iv.length !== IV_LENGTH) throw new RangeError('iv must be 16 bytes');
  const key = deriveDocKey(remoteSecret, docId);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  key.fill(0);
  const ct = Buffer.concat([cipher.update(Buffer.from(plaintextJson, 'utf8')), cipher.final()]);
  const encIv = b64nEncode(iv);
  const mac = legacyMac(remoteSecret, docId, rev, ct, encIv, LEGACY_METHOD);
  return {
    _mac_method: LEGACY_MAC_METHOD,
    _enc_scheme: LEGACY_SCHEME,
    _enc_json: ct.toString('hex'),
    _mac: mac.toString('hex'),
    _enc_iv: encIv,
    _enc_method: LEGACY_METHOD,
  };
}
