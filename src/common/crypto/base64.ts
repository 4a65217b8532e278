/**
 * The exact base64 flavours Soledad 0.10 writes, and lenient decoders for what it (and older versions) wrote.
 *
 * - B64N: standard alphabet, `=` padding, followed by exactly one `"\n"` (Python `binascii.b2a_base64`).
 * - B64: standard alphabet, `=` padding, no newline (Python `base64.b64encode`).
 * - B64U: URL-safe alphabet WITH `=` padding (Python `base64.urlsafe_b64encode`).
 */

/** An error class the decoders throw on invalid input (any class from `errors.ts` fits). */
export type DecodeErrorClass = new (message?: string) => Error;

const STD_RE = /^[A-Za-z0-9+/]*={0,2}$/;
// Older writers put a "\n" after each base64 part (and Python's decoder tolerates CR/LF), so line breaks are
// dropped before validation; nothing else is tolerated.
const NEWLINES_RE = /[\r\n]/g;

/** Standard base64 plus one trailing newline, byte-identical to Python's `binascii.b2a_base64`. */
export function b64nEncode(data: Uint8Array): string {
  return `${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')}\n`;
}

/** Standard base64 without a newline (Python `base64.b64encode`). */
export function b64Encode(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

/** URL-safe base64 with `=` padding (Python `base64.urlsafe_b64encode`). */
export function b64uEncode(data: Uint8Array): string {
  // Node's base64url drops the padding Python keeps.
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64url');
  const pad = (4 - (text.length % 4)) % 4;
  return pad === 0 ? text : text + '='.repeat(pad);
}

function checkShape(clean: string, re: RegExp, errorClass: DecodeErrorClass, what: string): void {
  // Node's own decoder silently skips garbage; the original raises, so validate the shape first.
  if (clean.length % 4 !== 0 || !re.test(clean)) {
    throw new errorClass(`Invalid ${what} encoding`);
  }
}

/**
 * Decode standard base64 (B64N or B64), ignoring line breaks. Throws `errorClass` on anything else.
 *
 * @example
 * const salt = b64Decode(doc.kdf_salt, SecretsFileCorruptedError);
 */
export function b64Decode(text: unknown, errorClass: DecodeErrorClass): Buffer {
  if (typeof text !== 'string') throw new errorClass('Invalid base64 value');
  const clean = text.replace(NEWLINES_RE, '');
  checkShape(clean, STD_RE, errorClass, 'base64');
  return Buffer.from(clean, 'base64');
}

/** Decode URL-safe base64 with padding (B64U), ignoring line breaks. Throws `errorClass` on anything else. */
export function b64uDecode(text: unknown, errorClass: DecodeErrorClass): Buffer {
  const clean = b64uClean(text, errorClass);
  const out = Buffer.from(clean, 'base64url');
  if (out.length !== b64uLength(clean)) throw new errorClass('Invalid url-safe base64 encoding');
  return out;
}

/**
 * {@link b64uDecode} into the start of a reusable buffer instead of a new one, for callers that decode many values
 * and keep none (a download's ciphertexts): returns the view of `scratch` holding the bytes, or of a larger
 * buffer when `scratch` is too small (keep that one for the next call). Same checks, same errors.
 *
 * @example
 * let scratch = Buffer.allocUnsafeSlow(64 * 1024);
 * const bytes = b64uDecodeInto(text, scratch, InvalidPreambleError);
 * if (bytes.length > scratch.length) scratch = bytes; // the larger buffer, to reuse next time
 */
export function b64uDecodeInto(text: unknown, scratch: Buffer, errorClass: DecodeErrorClass): Buffer {
  const clean = b64uClean(text, errorClass);
  const length = b64uLength(clean);
  const target = scratch.length >= length ? scratch : Buffer.allocUnsafeSlow(length);
  if (target.write(clean, 0, length, 'base64url') !== length) throw new errorClass('Invalid url-safe base64 encoding');
  return target.subarray(0, length);
}

function b64uClean(text: unknown, errorClass: DecodeErrorClass): string {
  if (typeof text !== 'string') throw new errorClass('Invalid base64 value');
  // The common case has no line break: skip the copy (a document's ciphertext is decoded on every sync).
  const clean = text.indexOf('\n') === -1 && text.indexOf('\r') === -1 ? text : text.replace(NEWLINES_RE, '');
  // The same verdict as matching /^[A-Za-z0-9_-]*={0,2}$/, at a fraction of its cost over a document's
  // ciphertext: Node's decoder skips every character outside both base64 alphabets and stops at a misplaced "=",
  // so any such character leaves the output shorter than the length the text implies (checked by the callers);
  // two scans refuse the standard alphabet's + and /.
  if (clean.length % 4 !== 0 || clean.indexOf('+') !== -1 || clean.indexOf('/') !== -1) {
    throw new errorClass('Invalid url-safe base64 encoding');
  }
  return clean;
}

/** The byte length a well-formed B64U text decodes to. */
function b64uLength(clean: string): number {
  const pad = clean.endsWith('==') ? 2 : clean.endsWith('=') ? 1 : 0;
  return (clean.length / 4) * 3 - pad;
}
