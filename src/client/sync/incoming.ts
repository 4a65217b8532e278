/**
 * What the client does with one document the server sends, before it may touch the local database (fact sheet
 * §1d "client insert", §3b, §3c): decrypt and verify, or keep scheme-external content as-is, and refuse rollbacks.
 */
import { RollbackError, TamperedDocumentError } from '../../common/errors.js';
import {
  DocKeys,
  decryptDocContent,
  decryptLegacyDoc,
  isLegacyEncrypted,
  isRawEncrypted,
} from '../../common/crypto/doc-crypto.js';
import { Document, parseJsonObject } from '../../common/u1db/document.js';
import { isNewer } from '../../common/u1db/vectorclock.js';
import type { SyncGetEntry } from '../../common/protocol/sync-stream.js';

/** How the content of an incoming document was protected. */
export type IncomingKind = 'tombstone' | 'encrypted' | 'legacy' | 'external';

/** Policy for documents that are neither our symmetric scheme nor legacy-encrypted. */
export interface DecodeOptions {
  /**
   * Accept content that this client did not encrypt (e.g. incoming-box documents, scheme 2, which the incoming
   * loop handles), stored as-is like the original client does. Default true. With false such a document is
   * refused with {@link TamperedDocumentError}.
   */
  allowExternal?: boolean;
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
  if (isRawEncrypted(entry.content)) {
    const json = decryptDocContent(opts.docKeys ?? remoteSecret, entry.id, entry.rev, entry.content);
    return { doc: new Document(entry.id, entry.rev, parseJsonObject(json)), kind: 'encrypted', json };
  }
  const obj = parseJsonObject(entry.content);
  if (isLegacyEncrypted(obj)) {
    const json = decryptLegacyDoc(remoteSecret, entry.id, entry.rev, obj);
    return { doc: new Document(entry.id, entry.rev, parseJsonObject(json)), kind: 'legacy', json };
  }
  if (opts.allowExternal === false) {
    throw new TamperedDocumentError('The server sent a document that is not encrypted with this account\'s key');
  }
  return { doc: new Document(entry.id, entry.rev, obj), kind: 'external', json: entry.content };
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
