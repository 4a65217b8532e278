/**
 * The four HTTP exchanges of a Soledad 0.10 sync with one server database (fact sheet §1a–1d), nothing more:
 * the algorithm that strings them together lives in `synchronizer.ts`.
 */
import { DatabaseDoesNotExistError } from '../../common/errors.js';
import { syncFromPath } from '../../common/protocol/paths.js';
import {
  CONTENT_TYPE_JSON,
  CONTENT_TYPE_SYNC_GET,
  CONTENT_TYPE_SYNC_PUT,
  encodeRecordSyncInfo,
  encodeSyncGetRequest,
  encodeSyncPut,
  parseSyncInfo,
  parseSyncPutResponse,
  type SyncHeader,
  type SyncInfo,
  type SyncPutEntryOut,
  type SyncPutResponse,
} from '../../common/protocol/sync-stream.js';
import type { HttpClient, HttpResponse } from '../http/client.js';

/**
 * The server side of a sync, seen from one local replica: `user-<uuid>/sync-from/<sourceReplicaUid>`.
 *
 * @example
 * const target = new HttpSyncTarget(http, uuid, db.replicaUid);
 * const info = await target.getSyncInfo(); // null: the user database does not exist yet
 */
export class HttpSyncTarget {
  private readonly path: string;

  constructor(private readonly http: HttpClient, uuid: string, sourceReplicaUid: string) {
    this.path = syncFromPath(uuid, sourceReplicaUid);
  }

  /** `GET …/sync-from/<src>`: the server's state and what it recorded for us; `null` when the database is missing. */
  async getSyncInfo(signal?: AbortSignal): Promise<SyncInfo | null> {
    try {
      const res = await this.http.request({ method: 'GET', path: this.path, ...(signal ? { signal } : {}) });
      return parseSyncInfo(await res.text());
    } catch (err) {
      if (err instanceof DatabaseDoesNotExistError) return null;
      throw err;
    }
  }

  /**
   * `POST …/sync-from/<src>` with `application/x-soledad-sync-put`: upload one batch. `entries` is called once per
   * attempt (a 503 is retried), and its documents are serialized and streamed as the socket takes them. Their
   * contents must be `encryptDocContent(Bytes)` ciphertext (or null): they are not scanned for line breaks.
   */
  async putBatch(
    header: SyncHeader,
    entries: () => Iterable<SyncPutEntryOut>,
    opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
  ): Promise<SyncPutResponse> {
    const res = await this.http.request({
      method: 'POST',
      path: this.path,
      headers: { 'content-type': CONTENT_TYPE_SYNC_PUT },
      // Content once per document: the meta line's copy is optional for every Soledad server (fact sheet §1c).
      // Every content is ciphertext from encryptDocContent: base64 in a fixed frame, never a line break.
      body: () => encodeSyncPut(header, entries(), { contentInMeta: false, contentFramed: true }),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onBytes ? { onBodyChunk: opts.onBytes } : {}),
    });
    return parseSyncPutResponse(await res.text());
  }

  /**
   * `POST …/sync-from/<src>` with `application/x-soledad-sync-get`: ask for the changes after
   * `header.last_known_generation`. The response body is returned unread, to be streamed through a
   * `SyncGetResponseParser`.
   */
  async openDownload(header: SyncHeader, signal?: AbortSignal): Promise<HttpResponse> {
    return this.http.request({
      method: 'POST',
      path: this.path,
      headers: { 'content-type': CONTENT_TYPE_SYNC_GET },
      body: encodeSyncGetRequest(header),
      ...(signal ? { signal } : {}),
    });
  }

  /** `PUT …/sync-from/<src>` (record_sync_info): tell the server the source generation it has now seen. */
  async recordSyncInfo(generation: number, transactionId: string, signal?: AbortSignal): Promise<void> {
    const res = await this.http.request({
      method: 'PUT',
      path: this.path,
      headers: { 'content-type': CONTENT_TYPE_JSON },
      body: encodeRecordSyncInfo({ generation, transaction_id: transactionId }),
      ...(signal ? { signal } : {}),
    });
    await res.dump();
  }
}
