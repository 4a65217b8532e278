/**
 * Strict UTF-8 decoding, fast for ASCII: the bulk of what sync moves (every line of ciphertext, and most documents'
 * JSON text) is ASCII.
 */
import { isAscii } from 'node:buffer';

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decode bytes as strict UTF-8 (a leading BOM is kept as text); `null` when they are not valid UTF-8.
 *
 * @example
 * decodeUtf8(Buffer.from('{"a": 1}')); // '{"a": 1}'
 */
export function decodeUtf8(bytes: Uint8Array): string | null {
  // ASCII reads the same as Latin-1, which is a copy into a one-byte string: about four times faster than the
  // strict UTF-8 decoder over a large document.
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isAscii(buf)) return buf.toString('latin1');
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * The text of bytes already known to be valid UTF-8 (`isUtf8`), with {@link decodeUtf8}'s fast path for ASCII.
 *
 * @example
 * if (isUtf8(bytes)) text = utf8Text(bytes);
 */
export function utf8Text(bytes: Buffer): string {
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}
