/**
 * The `shared` database over HTTP (fact sheet §4c): the recovery document lives there under
 * `sha256(utf8(passphrase) + uuid)` hex and is read and written with `GET/PUT /shared/doc/<id>`.
 */
import { DocumentDeletedError, DocumentDoesNotExistError, HttpError } from '../../common/errors.js';
import type { RemoteSecretsStore } from '../secrets/secrets-manager.js';
import type { HttpClient } from './client.js';

/** A document read from the shared database. */
export interface SharedDoc {
  /** The JSON body as stored. */
  content: unknown;
  /** Its revision, from the `x-u1db-rev` header. */
  rev: string;
}

function docPath(docId: string): string {
  return `/shared/doc/${encodeURIComponent(docId)}`;
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Reads and writes documents of the server's `shared` database. It is the remote store of the storage secrets
 * ({@link RemoteSecretsStore}).
 *
 * @example
 * const shared = new SharedDbClient(http);
 * const found = await shared.get(recoveryDocId);           // null when absent
 * const rev = await shared.put(recoveryDocId, content, found?.rev ?? null);
 */
export class SharedDbClient implements RemoteSecretsStore {
  constructor(private readonly http: HttpClient) {}

  /** The document with that id and its revision, or `null` when it does not exist or was deleted. */
  async get(docId: string): Promise<SharedDoc | null> {
    let res;
    try {
      res = await this.http.request({ method: 'GET', path: docPath(docId) });
    } catch (err) {
      if (err instanceof DocumentDoesNotExistError || err instanceof DocumentDeletedError) return null;
      throw err;
    }
    const rev = header(res.headers['x-u1db-rev']);
    const content = await res.json();
    if (rev === undefined) throw new HttpError('The shared database answered without an x-u1db-rev header');
    return { content, rev };
  }

  /**
   * Create (`oldRev === null`) or update (`oldRev` = the revision read) a document; resolves with the new
   * revision. A stale or missing `oldRev` rejects with `RevisionConflictError`.
   */
  async put(docId: string, content: unknown, oldRev: string | null): Promise<string> {
    const body = await this.http.sendJson<{ rev?: unknown }>(
      { method: 'PUT', path: docPath(docId), ...(oldRev !== null ? { query: { old_rev: oldRev } } : {}) },
      content,
    );
    if (typeof body?.rev !== 'string') throw new HttpError('The shared database answered a PUT without a revision');
    return body.rev;
  }
}
