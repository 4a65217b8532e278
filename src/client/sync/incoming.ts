/**
 * What the client does with one document the server sends, before it may touch the local database (fact sheet
 * §1d "client insert", §3b, §3c): decrypt and verify, or keep scheme-external content as-is, and refuse rollbacks.
 */
import { RollbackError, TamperedDocumentError } from '../../common/errors.js';
import {
  DocKeys,
  decryptDocContent,
  decryptDocContentBytes,
  decryptLegacyDoc,
  isLegacyEncrypted,
  isRawEncrypted,
} from '../../common/crypto/doc-crypto.js';
import { EncScheme } from '../../common/crypto/preamble.js';
import { Document, parseJsonObject } from '../../common/u1db/document.js';
import { isNewer } from '../../common/u1db/vectorclock.js';
import { utf8Text } from '../../common/utf8.js';
import type { SyncGetEntry } from '../../common/protocol/sync-stream.js';

/** B64U of the preamble's magic 0x13 0x37 and scheme byte 1 (symmetric) or 2 (external). */
const SYMKEY_PREFIX = 'EzcB';
const EXTERNAL_PREFIX = 'EzcC';

/** How the content of an incoming document was protected. */
export type IncomingKind = 'tombstone' | 'encrypted' | 'legacy' | 'external';

/**
 * Which documents that are neither our symmetric scheme nor legacy-encrypted a client stores as-is:
 * - `'encrypted'` (default): only content encrypted to the user by someone else — a scheme-2 (external) preamble
 *   or the original MX's `_enc_scheme: "pubkey"` incoming documents. Bare plaintext is refused, so a hostile server
 *   cannot plant readable documents the app would take for the user's own.
 * - `true`: any JSON object, encrypted or not (the original client's behaviour).
 * - `false`: none.
 */
export type ExternalDocPolicy = boolean | 'encrypted';

/** Options of {@link decodeIncoming}. */
export interface DecodeOptions {
  /**
   * Which content this client did not encrypt itself is stored as-is (see {@link ExternalDocPolicy}); anything
   * else is refused with {@link TamperedDocumentError}. Default `'encrypted'`.
   */
  allowExternal?: ExternalDocPolicy;
  /** Keys of `remoteSecret` prepared for many documents (a sync), used for current-scheme documents. */
  docKeys?: DocKeys;
}

/**
 * Turn a downloaded entry into the document to apply, verifying it on the way; `json` is its content as the JSON
 * text it was parsed from (what gets stored). Throws
 * `MacMismatchError` (tag), {@link TamperedDocumentError} (ciphertext bound to another id or rev),
 * `InvalidPreambleError`, `EncryptionSchemeNotImplementedError`, or `InvalidJSONError`; nothing is applied then.
 *
 * @example
 * const { doc, kind } = decodeIncoming(remoteSecret, entry);
 */
export function decodeIncoming(
  remoteSecret: Buffer,
  entry: SyncGetEntry,
  opts: DecodeOptions = {},
): { doc: Document; kind: IncomingKind; json: string | null } {
  if (entry.content === null) return { doc: new Document(entry.id, entry.rev, null), kind: 'tombstone', json: null };
  if (isRawEncrypted(entry.content)) return decryptRaw(remoteSecret, entry.id, entry.rev, entry.content, opts);
  const obj = parseJsonObject(entry.content);
  if (isLegacyEncrypted(obj)) {
    const json = decryptLegacyDoc(remoteSecret, entry.id, entry.rev, obj);
    return { doc: new Document(entry.id, entry.rev, parseJsonObject(json)), kind: 'legacy', json };
  }
  const scheme = declaredScheme(obj);
  // Our scheme in a different serialization (e.g. no space after the colon) is still ours: verify it rather than
  // let a prefix test wave tampered ciphertext through as "external" content.
  if (scheme === EncScheme.symkey) return decryptRaw(remoteSecret, entry.id, entry.rev, entry.content, opts);
  const policy = opts.allowExternal ?? 'encrypted';
  const encryptedToUs = scheme === EncScheme.external || (obj as { _enc_scheme?: unknown })._enc_scheme === 'pubkey';
  if (policy === false || (policy === 'encrypted' && !encryptedToUs)) {
    throw new TamperedDocumentError(encryptedToUs
      ? 'The server sent a document that is not encrypted with this account\'s key (external documents are refused)'
      : 'The server sent an unencrypted document');
  }
  return { doc: new Document(entry.id, entry.rev, obj), kind: 'external', json: entry.content };
}

/**
 * {@link decodeIncoming} for a caller that stores the text as it is (the download worker): the content's JSON text
 * as UTF-8 bytes in a buffer of its own, which the caller zeroes when done; `null` for a tombstone. It makes the
 * same checks and throws the same errors. Content in this account's scheme is decrypted straight to bytes (checked
 * to be UTF-8 and parsed once to check that it is a JSON object) instead of going through a string and back.
 *
 * @example
 * const plain = decodeIncomingBytes(remoteSecret, entry, { docKeys });
 */
export function decodeIncomingBytes(remoteSecret: Buffer, entry: SyncGetEntry, opts: DecodeOptions = {}): Buffer | null {
  if (entry.content !== null && isRawEncrypted(entry.content)) {
    return acceptDecrypted(decryptDocContentBytes(opts.docKeys ?? remoteSecret, entry.id, entry.rev, entry.content));
  }
  const { json } = decodeIncoming(remoteSecret, entry, opts);
  return json === null ? null : Buffer.from(json);
}

/**
 * The last check of a current-scheme document's decrypted bytes (already known to be UTF-8): they must be a JSON
 * object. Answers them, or zeroes them and throws `InvalidJSONError`. For plaintext decrypted elsewhere, as
 * `DocContentStream` does while a large document arrives.
 *
 * @example
 * const plain = acceptDecrypted(stream.finish(content)!);
 */
export function acceptDecrypted(plain: Buffer): Buffer {
  try {
    parseJsonObject(utf8Text(plain));
  } catch (err) {
    plain.fill(0);
    throw err;
  }
  return plain;
}

function decryptRaw(
  remoteSecret: Buffer,
  id: string,
  rev: string,
  content: string,
  opts: DecodeOptions,
): { doc: Document; kind: IncomingKind; json: string } {
  const json = decryptDocContent(opts.docKeys ?? remoteSecret, id, rev, content);
  return { doc: new Document(id, rev, parseJsonObject(json)), kind: 'encrypted', json };
}

/**
 * The scheme a `{"raw": "<B64U preamble> …"}` object declares, or null for anything else. The first four base64
 * characters carry the magic and the scheme byte (`EzcB` symmetric, `EzcC` external), like the original's own
 * prefix test; the rest is checked when (and only when) the content is decrypted.
 */
function declaredScheme(obj: object): number | null {
  const raw = (obj as { raw?: unknown }).raw;
  if (typeof raw !== 'string') return null;
  if (raw.startsWith(SYMKEY_PREFIX)) return EncScheme.symkey;
  if (raw.startsWith(EXTERNAL_PREFIX)) return EncScheme.external;
  return null;
}

/**
 * Refuse an incoming revision strictly older than the one held locally: an honest server never sends one, so it
 * is a replay of an old version (a rollback). `ownUploads` holds `id → rev` uploaded in this very sync: such an
 * echo of our own write is not a rollback even if the local document moved on meanwhile.
 *
 * @example
 * assertNotRollback(db.getDoc(entry.id, true)?.rev ?? null, entry, sentThisSync);
 */
export function assertNotRollback(
  localRev: string | null,
  entry: Pick<SyncGetEntry, 'id' | 'rev'>,
  ownUploads?: ReadonlyMap<string, string>,
): void {
  if (localRev === null || localRev === '') return;
  if (!isNewer(localRev, entry.rev)) return;
  if (ownUploads?.get(entry.id) === entry.rev) return;
  throw new RollbackError('The server sent an older revision of a document than the one held locally');
}
