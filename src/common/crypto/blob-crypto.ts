/**
 * Streaming blob encryption in the raw (armor=False) format of Soledad 0.10 (fact sheet §3a–3b):
 * `B64U(preamble) + " " + ciphertext + tag`, AES-256-GCM, key = HMAC-SHA256(remoteSecret[64:], blobId),
 * rev "ImmutableRevision". Memory use is bounded by one chunk plus the 16-byte tag held back.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { CipherGCM } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import {
  EncryptionSchemeNotImplementedError,
  InvalidContentError,
  InvalidPreambleError,
  MacMismatchError,
  SoledadError,
} from '../errors.js';
import { b64uDecode, b64uEncode } from './base64.js';
import { checkPreamble, deriveDocKey } from './doc-crypto.js';
import { GCM_TAG_LENGTH as TAG_LENGTH, TrailingTagDecipher } from './gcm-tail.js';
import {
  EncMethod,
  EncScheme,
  MAGIC,
  PREAMBLE_B64_LENGTH,
  contentSizeFor,
  decodePreamble,
  encodePreamble,
} from './preamble.js';
import type { Preamble } from './preamble.js';

/** The fixed revision bound into every blob's preamble. */
export const BLOB_REV = 'ImmutableRevision';
const IV_LENGTH = 16;
const SPACE = 0x20;
/** Longest header we wait for before deciding the input is not a blob: B64U(552 bytes) plus the space. */
const MAX_HEADER = PREAMBLE_B64_LENGTH + 1;

/**
 * Size on the wire of a blob whose cleartext has `plaintextSize` bytes: cleartext + 736 + 1 + 16.
 *
 * @example
 * blobCiphertextSize(0); // 753
 */
export function blobCiphertextSize(plaintextSize: number): number {
  return plaintextSize + PREAMBLE_B64_LENGTH + 1 + TAG_LENGTH;
}

function toError(err: unknown): Error {
  if (err instanceof SoledadError) return err;
  return new InvalidPreambleError('Malformed blob', { cause: err });
}

/**
 * A Transform that encrypts a blob's cleartext stream. The cleartext size must be known in advance (it is
 * rounded into the preamble before any byte is written, as the original does); a stream that delivers another
 * number of bytes fails with {@link InvalidContentError}.
 *
 * @example
 * await pipeline(createReadStream(path), encryptBlobStream(secret, blobId, size), uploadBody);
 */
export function encryptBlobStream(remoteSecret: Buffer, blobId: string, plaintextSize: number): Transform {
  const iv = randomBytes(IV_LENGTH);
  const preamble = encodePreamble({
    docId: blobId,
    rev: BLOB_REV,
    scheme: EncScheme.symkey,
    method: EncMethod.aes_256_gcm,
    iv,
    contentSize: contentSizeFor(plaintextSize),
  });
  const key = deriveDocKey(remoteSecret, blobId);
  const cipher: CipherGCM = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LENGTH });
  key.fill(0);
  cipher.setAAD(preamble);
  let headerSent = false;
  let seen = 0;
  const header = (stream: Transform): void => {
    if (!headerSent) {
      stream.push(Buffer.from(`${b64uEncode(preamble)} `, 'latin1'));
      headerSent = true;
    }
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      seen += chunk.length;
      if (seen > plaintextSize) {
        cb(new InvalidContentError('Blob is longer than its declared size'));
        return;
      }
      header(this);
      cb(null, cipher.update(chunk));
    },
    flush(cb: TransformCallback): void {
      if (seen !== plaintextSize) {
        cb(new InvalidContentError('Blob is shorter than its declared size'));
        return;
      }
      header(this);
      const rest = cipher.final();
      if (rest.length > 0) this.push(rest);
      cb(null, cipher.getAuthTag());
    },
  });
}

/** Options of {@link decryptBlobStream}. */
export interface DecryptBlobOptions {
  /**
   * What to do with a scheme-2 (external, e.g. OpenPGP from the incoming box) blob: `'reject'` (default) throws
   * {@link EncryptionSchemeNotImplementedError}; `'passthrough'` emits the bytes after the header unchanged,
   * as the original client does for incoming messages.
   */
  external?: 'reject' | 'passthrough';
  /** Called once with the decoded preamble, before any output. */
  onPreamble?: (preamble: Preamble) => void;
}

/**
 * A Transform that decrypts a raw blob stream. Output is produced as it arrives, but it is authentic only if the
 * stream then ends without error: the GCM tag (the last 16 bytes) is checked at the end and a mismatch fails the
 * stream with {@link MacMismatchError}. Write to a temporary place and commit only after `finish`.
 *
 * @example
 * await pipeline(download, decryptBlobStream(secret, blobId), createWriteStream(tmp));
 * await rename(tmp, final); // only reached when the tag verified
 */
export function decryptBlobStream(remoteSecret: Buffer, blobId: string, opts: DecryptBlobOptions = {}): Transform {
  let header: Buffer | null = Buffer.alloc(0);
  let decipher: TrailingTagDecipher | null = null;
  let passthrough = false;

  const startBody = (headerText: Buffer): void => {
    const raw = b64uDecode(headerText.toString('latin1'), InvalidPreambleError);
    const preamble = decodePreamble(raw);
    if (preamble.magic.equals(MAGIC) && preamble.scheme === EncScheme.external && opts.external === 'passthrough') {
      opts.onPreamble?.(preamble);
      passthrough = true;
      return;
    }
    checkPreamble(preamble, blobId, BLOB_REV);
    opts.onPreamble?.(preamble);
    const key = deriveDocKey(remoteSecret, blobId);
    const gcm = createDecipheriv('aes-256-gcm', key, preamble.iv, { authTagLength: TAG_LENGTH });
    key.fill(0);
    gcm.setAAD(raw);
    decipher = new TrailingTagDecipher(gcm);
  };

  const body = (stream: Transform, chunk: Buffer): void => {
    if (passthrough) {
      if (chunk.length > 0) stream.push(chunk);
      return;
    }
    for (const plain of decipher!.update(chunk)) stream.push(plain);
  };

  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      try {
        if (header !== null) {
          const joined: Buffer = Buffer.concat([header, chunk]);
          const sep = joined.indexOf(SPACE);
          if (sep < 0) {
            if (joined.length >= MAX_HEADER) throw new InvalidPreambleError('Blob has no preamble separator');
            header = joined;
            cb();
            return;
          }
          header = null;
          startBody(joined.subarray(0, sep));
          body(this, joined.subarray(sep + 1));
        } else {
          body(this, chunk);
        }
        cb();
      } catch (err) {
        cb(toError(err));
      }
    },
    flush(cb: TransformCallback): void {
      if (header !== null) {
        cb(new InvalidPreambleError('Blob ended inside its preamble'));
        return;
      }
      if (passthrough) {
        cb();
        return;
      }
      try {
        const rest = decipher!.final('Blob');
        cb(null, rest.length > 0 ? rest : undefined);
      } catch (err) {
        cb(toError(err));
      }
    },
  });
}
