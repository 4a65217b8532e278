/**
 * Document attachments (seed "Document attachments", `IDocumentWithAttachment`): a document points at one blob
 * through the `blob_id` key of its content; the blob itself travels through the {@link BlobManager}, so a
 * document syncs without waiting for its (possibly large) attachment.
 *
 * The seed's example, in TypeScript (with the facade wrapping its documents by {@link withAttachments}):
 *
 * ```ts
 * const doc = await soledad.createDoc({});
 * assert.equal(await doc.getAttachmentState(), AttachmentStates.NONE);
 * assert.equal(await doc.isDirty(), false);
 * await doc.putAttachment(createReadStream('hackers.txt'));
 * assert.ok((await doc.getAttachmentState()) & AttachmentStates.LOCAL);
 * assert.equal(await doc.isDirty(), true);
 * await soledad.putDoc(doc);
 * assert.equal(await doc.isDirty(), false);
 * await doc.uploadAttachment();
 * assert.equal(await doc.getAttachmentState(), AttachmentStates.SYNCED);
 * const stream = await doc.getAttachment();
 * ```
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { BlobNotFoundError, InvalidContentError } from '../../common/errors.js';
import type { Document } from '../../common/u1db/document.js';
import type { JsonValue } from '../../common/u1db/json.js';
import type { BlobData, BlobManager } from './blob-manager.js';

/** The content key that holds the attachment's blob id (as the original). */
export const ATTACHMENT_KEY = 'blob_id';

/**
 * Where an attachment is, as bit flags: `LOCAL` (stored on this device), `REMOTE` (stored on the server), and
 * `SYNCED` = `LOCAL | REMOTE`, so that `state & LOCAL` and `state === SYNCED` both read naturally.
 */
export const AttachmentStates = {
  /** No attachment (or it is nowhere). */
  NONE: 0,
  /** Stored on this device. */
  LOCAL: 1,
  /** Stored on the server. */
  REMOTE: 2,
  /** Both: `LOCAL | REMOTE`. */
  SYNCED: 3,
} as const;

/** One of {@link AttachmentStates}. */
export type AttachmentState = (typeof AttachmentStates)[keyof typeof AttachmentStates];

/** What attachments need from the store that created a document. */
export interface AttachmentHost {
  /** The store's blob manager. */
  readonly blobs: BlobManager;
  /** The stored version of a document (for {@link DocumentAttachments.isDirty}); `null` when none. */
  getDoc(docId: string): Promise<Document | null>;
}

function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined || typeof a !== 'object' || typeof b !== 'object') {
    return false;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => jsonEqual(v, b[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEqual(a[k], b[k]));
}

/**
 * The attachment operations of one document. Changing the attachment changes the document's content (its
 * `blob_id`); the document must then be put in the database, as in the original.
 *
 * @example
 * const att = new DocumentAttachments(doc, { blobs, getDoc: (id) => soledad.getDoc(id) });
 * await att.putAttachment(Buffer.from('hello'));
 * await soledad.putDoc(doc);
 */
export class DocumentAttachments {
  constructor(
    /** The document. */
    readonly doc: Document,
    private readonly host: AttachmentHost,
  ) {}

  /** The attachment's blob id, if the content points at one. */
  get blobId(): string | undefined {
    const value = this.doc.content?.[ATTACHMENT_KEY];
    return typeof value === 'string' && value !== '' ? value : undefined;
  }

  /**
   * Attach data: store it as a blob on this device (upload queued in the background) and point the content at
   * it. The id is the existing `blob_id` if any (a second attachment needs {@link deleteAttachment} first:
   * blobs are immutable), else a new random UUID.
   */
  async putAttachment(data: BlobData): Promise<void> {
    if (this.doc.content === null) throw new InvalidContentError('A deleted document cannot have an attachment');
    const blobId = this.blobId ?? randomUUID();
    await this.host.blobs.put(blobId, data, { upload: 'queue' });
    this.doc.content[ATTACHMENT_KEY] = blobId;
  }

  /** The attachment's content (from this device, else downloaded), or `null` when there is none. */
  async getAttachment(): Promise<Readable | null> {
    const blobId = this.blobId;
    if (blobId === undefined) return null;
    return this.host.blobs.get(blobId);
  }

  /**
   * Where the attachment is: {@link AttachmentStates}. Asks the server whether it has the blob; a manager without
   * a server counts it as remote when it was synced.
   */
  async getAttachmentState(): Promise<AttachmentState> {
    const blobId = this.blobId;
    if (blobId === undefined) return AttachmentStates.NONE;
    const entry = await this.host.blobs.localStatus(blobId);
    let state: number = entry?.hasContent === true ? AttachmentStates.LOCAL : AttachmentStates.NONE;
    let remote: boolean;
    if (!this.host.blobs.hasRemote) {
      remote = entry?.status === 'SYNCED';
    } else {
      try {
        await this.host.blobs.getFlags(blobId);
        remote = true;
      } catch (err) {
        if (!(err instanceof BlobNotFoundError)) throw err;
        remote = false;
      }
    }
    if (remote) state |= AttachmentStates.REMOTE;
    return state as AttachmentState;
  }

  /** True when the content differs from the stored version (or nothing is stored yet). */
  async isDirty(): Promise<boolean> {
    const stored = await this.host.getDoc(this.doc.docId);
    if (stored === null) return true;
    return !jsonEqual(stored.content ?? undefined, this.doc.content ?? undefined);
  }

  /** Upload the attachment if it is not on the server yet; resolves with the state afterwards. */
  async uploadAttachment(): Promise<AttachmentState> {
    const blobId = this.blobId;
    if (blobId === undefined) return AttachmentStates.NONE;
    await this.host.blobs.upload(blobId);
    return this.getAttachmentState();
  }

  /** Download the attachment if it is not on this device yet; resolves with the state afterwards. */
  async downloadAttachment(): Promise<AttachmentState> {
    const blobId = this.blobId;
    if (blobId === undefined) return AttachmentStates.NONE;
    await this.host.blobs.download(blobId);
    return this.getAttachmentState();
  }

  /**
   * Delete the attachment (here and on the server) and remove the pointer from the content; the document must
   * then be put in the database. Resolves once the blob is gone from this device.
   */
  async deleteAttachment(): Promise<void> {
    const blobId = this.blobId;
    if (blobId === undefined) return;
    try {
      await this.host.blobs.delete(blobId);
    } catch (err) {
      // Already gone everywhere: the pointer is stale, removing it is all that is left.
      if (!(err instanceof BlobNotFoundError)) throw err;
    }
    if (this.doc.content !== null) delete this.doc.content[ATTACHMENT_KEY];
  }
}

/** A document that carries the attachment methods (what the facade hands out). */
export type DocumentWithAttachments = Document & {
  /**
   * Attach data (stored here, upload queued) and point `blob_id` at it; then put the document.
   *
   * @example
   * await doc.putAttachment(createReadStream('scan.pdf'));
   * await sol.putDoc(doc);
   */
  putAttachment(data: BlobData): Promise<void>;
  /**
   * The attachment's content (from this device, else downloaded and verified), or `null` when there is none.
   *
   * @example
   * const data = await doc.getAttachment();
   * if (data !== null) await pipeline(data, createWriteStream('scan.pdf'));
   */
  getAttachment(): Promise<Readable | null>;
  /**
   * Where the attachment is, as {@link AttachmentStates} bits.
   *
   * @example
   * if ((await doc.getAttachmentState()) & AttachmentStates.REMOTE) console.log('on the server');
   */
  getAttachmentState(): Promise<AttachmentState>;
  /**
   * True when the content differs from the stored version (or nothing is stored yet).
   *
   * @example
   * if (await doc.isDirty()) await sol.putDoc(doc);
   */
  isDirty(): Promise<boolean>;
  /**
   * Upload the attachment if the server does not have it yet; resolves with the state afterwards.
   *
   * @example
   * await doc.uploadAttachment(); // AttachmentStates.SYNCED
   */
  uploadAttachment(): Promise<AttachmentState>;
  /**
   * Download the attachment if this device does not have it yet; resolves with the state afterwards.
   *
   * @example
   * await doc.downloadAttachment(); // now readable offline
   */
  downloadAttachment(): Promise<AttachmentState>;
  /**
   * Delete the attachment here and on the server and drop `blob_id`; then put the document.
   *
   * @example
   * await doc.deleteAttachment();
   * await sol.putDoc(doc);
   */
  deleteAttachment(): Promise<void>;
};

/**
 * Give a document the attachment methods, bound to the store that created it (the original's `set_store`).
 * Returns the same object, now typed {@link DocumentWithAttachments}.
 *
 * @example
 * const doc = withAttachments(await db.createDoc({}), { blobs, getDoc: (id) => db.getDoc(id) });
 * await doc.putAttachment('hello');
 */
export function withAttachments(doc: Document, host: AttachmentHost): DocumentWithAttachments {
  const att = new DocumentAttachments(doc, host);
  const methods = {
    putAttachment: (data: BlobData) => att.putAttachment(data),
    getAttachment: () => att.getAttachment(),
    getAttachmentState: () => att.getAttachmentState(),
    isDirty: () => att.isDirty(),
    uploadAttachment: () => att.uploadAttachment(),
    downloadAttachment: () => att.downloadAttachment(),
    deleteAttachment: () => att.deleteAttachment(),
  };
  // Non-enumerable, so the methods never leak into JSON or equality checks of the document.
  for (const [name, fn] of Object.entries(methods)) {
    Object.defineProperty(doc, name, { value: fn, enumerable: false, configurable: true, writable: true });
  }
  return doc as DocumentWithAttachments;
}
