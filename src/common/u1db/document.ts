/** The U1DB document: id, revision, JSON object content (`null` for a tombstone) and a conflicts flag. */
import { InvalidJSONError } from '../errors.js';
import { isJsonObject, type JsonObject } from './json.js';

/**
 * A document as the U1DB API hands it out. `putDoc` updates `rev` in place.
 *
 * @example
 * const doc = await sol.createDoc({ subject: 'hi' });
 * doc.content!.subject = 'hello';
 * await sol.putDoc(doc); // doc.rev is now the new revision
 */
export class Document {
  /** The document id (`D-…` when generated). */
  docId: string;
  /** The vector-clock revision, `null` before the first write. */
  rev: string | null;
  /** The JSON object, or `null` for a deleted document (tombstone). */
  content: JsonObject | null;
  /** True when other revisions of this document are stored as conflicts. */
  hasConflicts: boolean;
  /** False for documents that must never leave this device. */
  syncable: boolean;

  constructor(docId: string, rev: string | null, content: JsonObject | null, hasConflicts = false, syncable = true) {
    this.docId = docId;
    this.rev = rev;
    this.content = content;
    this.hasConflicts = hasConflicts;
    this.syncable = syncable;
  }

  /** Build a document from stored JSON text (`null` text is a tombstone). */
  static fromJson(docId: string, rev: string | null, json: string | null, hasConflicts = false): Document {
    return new Document(docId, rev, json === null ? null : parseJsonObject(json), hasConflicts);
  }

  /** True when the document is deleted. */
  isTombstone(): boolean {
    return this.content === null;
  }

  /** The content serialized as JSON text, `null` for a tombstone. */
  getJson(): string | null {
    return this.content === null ? null : JSON.stringify(this.content);
  }

  /** Replace the content from JSON text; it must be an object. */
  setJson(json: string): void {
    this.content = parseJsonObject(json);
  }

  /** Turn this document into a tombstone. */
  makeTombstone(): void {
    this.content = null;
  }

  /** Same id, rev, content and conflict flag. */
  equals(other: Document): boolean {
    return this.docId === other.docId && this.rev === other.rev && this.hasConflicts === other.hasConflicts &&
      this.getJson() === other.getJson();
  }
}

/** Parse JSON text that must hold an object; anything else is an {@link InvalidJSONError}. */
export function parseJsonObject(json: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (cause) {
    throw new InvalidJSONError('Document content is not valid JSON', { cause });
  }
  if (!isJsonObject(value)) throw new InvalidJSONError('Document content must be a JSON object');
  return value;
}
