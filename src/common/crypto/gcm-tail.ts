/**
 * AES-256-GCM decryption of input that ends with its 16-byte tag and arrives in pieces of any size: every byte
 * but the last 16 seen so far is deciphered as it arrives, and the 16 held back are the tag at the end. Blob
 * streams use it, and so do large documents decoded while their line of a download is still arriving.
 */
import type { DecipherGCM } from 'node:crypto';
import { MacMismatchError } from '../errors.js';

/** Length of the GCM tag that ends every Soledad ciphertext. */
export const GCM_TAG_LENGTH = 16;

/**
 * Deciphers `ciphertext ‖ tag` fed in pieces. The plaintext it releases is authentic only once {@link final}
 * has returned.
 *
 * @example
 * const d = new TrailingTagDecipher(createDecipheriv('aes-256-gcm', key, iv, { authTagLength: 16 }));
 * for (const piece of pieces) out.push(...d.update(piece));
 * out.push(d.final('Blob')); // throws MacMismatchError if the tag does not verify
 */
export class TrailingTagDecipher {
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly decipher: DecipherGCM) {}

  /** Feed the next bytes; returns the plaintext they release (none, one or two pieces). */
  update(chunk: Buffer): Buffer[] {
    const d = this.decipher;
    if (chunk.length >= GCM_TAG_LENGTH) {
      const out: Buffer[] = [];
      if (this.tail.length > 0) out.push(d.update(this.tail));
      const cut = chunk.length - GCM_TAG_LENGTH;
      if (cut > 0) out.push(d.update(chunk.subarray(0, cut)));
      // A copy: the caller may reuse the chunk's memory.
      this.tail = Buffer.from(chunk.subarray(cut));
      return out;
    }
    const joined = Buffer.concat([this.tail, chunk]);
    const cut = Math.max(0, joined.length - GCM_TAG_LENGTH);
    this.tail = joined.subarray(cut);
    return cut > 0 ? [d.update(joined.subarray(0, cut))] : [];
  }

  /**
   * The bytes held back are the tag: verify it and return the last plaintext (with GCM, none). Throws
   * {@link MacMismatchError} if the input was shorter than a tag (`what` names it in the message) or the tag does
   * not verify.
   */
  final(what: string): Buffer {
    if (this.tail.length < GCM_TAG_LENGTH) throw new MacMismatchError(`${what} ended before its authentication tag`);
    this.decipher.setAuthTag(this.tail);
    try {
      return this.decipher.final();
    } catch (err) {
      throw new MacMismatchError(undefined, { cause: err });
    }
  }
}
