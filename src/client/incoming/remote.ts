/**
 * The incoming box's requests on the Users API (see `common/protocol/incoming.ts` for the wire): qualified
 * listings of a namespace, the atomic reservation transitions, and the download of one message.
 */
import { SoledadError } from '../../common/errors.js';
import { encodeIncomingListQuery } from '../../common/protocol/incoming.js';
import type { IncomingListQuery, IncomingTransition, ReservationState } from '../../common/protocol/incoming.js';
import { mapBlobError } from '../blobs/remote.js';
import type { RemoteDownload } from '../blobs/remote.js';
import type { HttpClient, HttpRequest, HttpResponse } from '../http/client.js';

/**
 * The incoming box endpoints of one user.
 *
 * @example
 * const remote = new IncomingRemote(http, uuid);
 * const ids = await remote.list({ namespace: 'MX', filterFlag: 'PENDING', order: 'desc', limit: 50 });
 * const state = await remote.transition('MX', ids[0], 'PROCESSING', replicaUid);
 */
export class IncomingRemote {
  constructor(
    private readonly http: HttpClient,
    /** The user's uuid. */
    readonly uuid: string,
  ) {}

  private base(): string {
    return `/blobs/${encodeURIComponent(this.uuid)}/`;
  }

  private async call(req: HttpRequest, blobId?: string): Promise<HttpResponse> {
    try {
      return await this.http.request(req);
    } catch (err) {
      throw mapBlobError(err, blobId);
    }
  }

  /** `GET /blobs/<uuid>/` with the incoming qualifiers: the ids. */
  async list(query: IncomingListQuery, signal?: AbortSignal): Promise<string[]> {
    const res = await this.call({ method: 'GET', path: this.base(), query: encodeIncomingListQuery(query), ...(signal ? { signal } : {}) });
    const value = await res.json();
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new SoledadError('The server sent a malformed listing');
    return value as string[];
  }

  /** The same with `only_count`: the size of the whole filtered list (paging does not apply). */
  async count(query: IncomingListQuery, signal?: AbortSignal): Promise<number> {
    const res = await this.call({
      method: 'GET', path: this.base(), query: { ...encodeIncomingListQuery(query), only_count: 'true' }, ...(signal ? { signal } : {}),
    });
    const value = (await res.json()) as { count?: unknown };
    if (typeof value?.count !== 'number') throw new SoledadError('The server sent a malformed count');
    return value.count;
  }

  /**
   * `POST /blobs/<uuid>/<id>?namespace=…&replica=…[&version=…]` with `[to]`: reserve (or renew), confirm, fail or
   * release. `ReservationConflictError` when the server refuses; `BlobNotFoundError` when the message is gone.
   */
  async transition(
    namespace: string,
    blobId: string,
    to: IncomingTransition,
    replica: string,
    version?: string,
    signal?: AbortSignal,
  ): Promise<ReservationState> {
    const query: Record<string, string> = { namespace, replica };
    if (version !== undefined) query.version = version;
    const res = await this.call({
      method: 'POST', path: `${this.base()}${encodeURIComponent(blobId)}`, query,
      headers: { 'content-type': 'application/json' }, body: JSON.stringify([to]), ...(signal ? { signal } : {}),
    }, blobId);
    const text = await res.text();
    let value: Partial<ReservationState> | null;
    try {
      value = JSON.parse(text) as Partial<ReservationState> | null;
    } catch {
      value = null;
    }
    // An original server answers an empty 200 (it replaced the flags without any reservation semantics).
    if (value === null || typeof value !== 'object' || !Array.isArray(value.flags) || typeof value.threshold_ms !== 'number') {
      throw new SoledadError('The server does not support incoming reservations');
    }
    return value as ReservationState;
  }

  /** `GET /blobs/<uuid>/<id>?namespace=…`: the stored bytes (the server's header, a space, the payload). */
  async download(namespace: string, blobId: string, signal?: AbortSignal): Promise<RemoteDownload> {
    const res = await this.call({
      method: 'GET', path: `${this.base()}${encodeURIComponent(blobId)}`, query: { namespace }, ...(signal ? { signal } : {}),
    }, blobId);
    const len = res.headers['content-length'];
    const tag = res.headers.tag;
    return {
      tag: typeof tag === 'string' ? tag : undefined,
      length: typeof len === 'string' && /^\d+$/.test(len) ? Number(len) : undefined,
      body: (async function* () {
        try {
          for await (const chunk of res.body) yield chunk;
        } catch (err) {
          throw mapBlobError(err, blobId);
        }
      })(),
      cancel: () => {
        res.body.destroy();
      },
    };
  }
}
