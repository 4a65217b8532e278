/**
 * The client side of the blobs HTTP API (fact sheet §5b), on top of the shared {@link HttpClient}: one method per
 * request, bodies streamed both ways, and every failure turned into a catalogued error — including the plain-text
 * error bodies of an original Soledad server, which are recognised by their status code.
 */
import {
  BlobAlreadyExistsError,
  BlobNotFoundError,
  HttpStatusError,
  InvalidFlagsError,
  QuotaExceededError,
  RangeNotSatisfiableError,
  SoledadError,
} from '../../common/errors.js';
import {
  DEFAULT_NAMESPACE,
  STREAM_FRAME_HEADER_LENGTH,
  decodeStreamFrameHeader,
  encodeStreamManifest,
  formatOrderBy,
} from '../../common/protocol/blobs.js';
import type { BlobFlag, BlobOrder, QuotaReport, StreamUploadEntry } from '../../common/protocol/blobs.js';
import { mapTransportError } from '../http/client.js';
import type { HttpClient, HttpRequest } from '../http/client.js';

/** Query of a remote listing. */
export interface RemoteListQuery {
  /** Namespace (default `default`). */
  namespace?: string;
  /** Order by upload date. */
  orderBy?: BlobOrder;
  /** Only blobs with this flag. */
  filterFlag?: BlobFlag;
  /** List deleted blobs instead. */
  deleted?: boolean;
}

/** A download in progress: the response body and what its headers said. */
export interface RemoteDownload {
  /** B64U of the tag the server read from the blob's end (`Tag` header), if sent. */
  tag: string | undefined;
  /** `Content-Length`, if sent. */
  length: number | undefined;
  /** The raw blob bytes. Iteration errors are already catalogued ({@link ConnectionError}). */
  body: AsyncIterable<Buffer>;
  /** Stop reading and release the connection. */
  cancel(): void;
}

/**
 * Map a failed blob request to the seed's errors. A catalogued error from our server passes through; an original
 * server answers in plain text, which `HttpClient` revives as {@link HttpStatusError}: its status decides.
 */
export function mapBlobError(err: unknown, blobId?: string): Error {
  if (err instanceof HttpStatusError) {
    const what = blobId ?? '';
    switch (err.httpStatus) {
      case 404:
        return new BlobNotFoundError(`Blob doesn't exist: ${what}`, { cause: err });
      case 409:
        return new BlobAlreadyExistsError(`Blob already exists: ${what}`, { cause: err });
      case 406:
        return new InvalidFlagsError(err.message, { cause: err });
      case 507:
        return new QuotaExceededError('Quota Exceeded!', { cause: err });
      case 416:
        return new RangeNotSatisfiableError(err.message, { cause: err });
      default:
        return err;
    }
  }
  if (err instanceof SoledadError) return err;
  return mapTransportError(err, 'blob transfer');
}

async function* catalogued(body: AsyncIterable<Buffer>, blobId: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw mapBlobError(err, blobId);
  }
}

/**
 * The blobs endpoints of one user on one server.
 *
 * @example
 * const remote = new BlobsRemote(http, uuid);
 * const ids = await remote.list({ namespace: 'MX', orderBy: 'asc', filterFlag: 'PENDING' });
 */
export class BlobsRemote {
  constructor(
    private readonly http: HttpClient,
    /** The user's uuid. */
    readonly uuid: string,
  ) {}

  private base(): string {
    return `/blobs/${encodeURIComponent(this.uuid)}/`;
  }

  private blobPath(blobId: string): string {
    return `${this.base()}${encodeURIComponent(blobId)}`;
  }

  private nsQuery(namespace: string | undefined): Record<string, string> {
    // The original client sends no namespace for the default one; the server reads absence as `default`.
    return namespace === undefined || namespace === '' || namespace === DEFAULT_NAMESPACE ? {} : { namespace };
  }

  private async call(req: HttpRequest, blobId?: string): Promise<Awaited<ReturnType<HttpClient['request']>>> {
    try {
      return await this.http.request(req);
    } catch (err) {
      throw mapBlobError(err, blobId);
    }
  }

  /** `GET /blobs/<uuid>/`: ids, with the listing qualifiers. */
  async list(query: RemoteListQuery = {}, signal?: AbortSignal): Promise<string[]> {
    const res = await this.call({ method: 'GET', path: this.base(), query: this.listQuery(query), ...(signal ? { signal } : {}) });
    const value = await res.json();
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new SoledadError('The server sent a malformed blob listing');
    }
    return value as string[];
  }

  /** `GET /blobs/<uuid>/?only_count=true`. */
  async count(query: Omit<RemoteListQuery, 'orderBy'> = {}, signal?: AbortSignal): Promise<number> {
    const res = await this.call({
      method: 'GET', path: this.base(), query: { ...this.listQuery(query), only_count: 'true' }, ...(signal ? { signal } : {}),
    });
    const value = (await res.json()) as { count?: unknown };
    if (typeof value?.count !== 'number') throw new SoledadError('The server sent a malformed blob count');
    return value.count;
  }

  private listQuery(query: RemoteListQuery): Record<string, string> {
    const q: Record<string, string> = this.nsQuery(query.namespace);
    if (query.orderBy !== undefined) q.order_by = formatOrderBy(query.orderBy);
    if (query.deleted === true) q.deleted = 'true';
    if (query.filterFlag !== undefined) q.filter_flag = query.filterFlag;
    return q;
  }

  /** `GET …/<id>?only_flags=true`. */
  async getFlags(namespace: string, blobId: string, signal?: AbortSignal): Promise<BlobFlag[]> {
    const res = await this.call({
      method: 'GET', path: this.blobPath(blobId), query: { ...this.nsQuery(namespace), only_flags: 'true' },
      ...(signal ? { signal } : {}),
    }, blobId);
    const value = await res.json();
    if (!Array.isArray(value)) throw new SoledadError('The server sent malformed flags');
    return value as BlobFlag[];
  }

  /** `POST …/<id>` with the JSON list of flags (replaces them). */
  async setFlags(namespace: string, blobId: string, flags: readonly string[], signal?: AbortSignal): Promise<void> {
    const res = await this.call({
      method: 'POST', path: this.blobPath(blobId), query: this.nsQuery(namespace),
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(flags), ...(signal ? { signal } : {}),
    }, blobId);
    await res.dump();
  }

  /** `DELETE …/<id>`. */
  async delete(namespace: string, blobId: string, signal?: AbortSignal): Promise<void> {
    const res = await this.call({
      method: 'DELETE', path: this.blobPath(blobId), query: this.nsQuery(namespace), ...(signal ? { signal } : {}),
    }, blobId);
    await res.dump();
  }

  /** `PUT …/<id>` streaming `body` (exactly `length` bytes). */
  async upload(
    namespace: string,
    blobId: string,
    body: AsyncIterable<Uint8Array>,
    length: number,
    options: { signal?: AbortSignal; onChunk?: (bytes: number) => void } = {},
  ): Promise<void> {
    const res = await this.call({
      method: 'PUT',
      path: this.blobPath(blobId),
      query: this.nsQuery(namespace),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      body,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onChunk ? { onBodyChunk: options.onChunk } : {}),
    }, blobId);
    await res.dump();
  }

  /** `GET …/<id>`: the raw bytes, streamed. */
  async download(namespace: string, blobId: string, signal?: AbortSignal): Promise<RemoteDownload> {
    const res = await this.call({
      method: 'GET', path: this.blobPath(blobId), query: this.nsQuery(namespace), ...(signal ? { signal } : {}),
    }, blobId);
    const tag = res.headers.tag;
    const len = res.headers['content-length'];
    const length = typeof len === 'string' && /^\d+$/.test(len) ? Number(len) : undefined;
    return {
      tag: typeof tag === 'string' ? tag : undefined,
      length,
      body: catalogued(res.body, blobId),
      cancel: () => {
        res.body.destroy();
      },
    };
  }

  /** `GET /quota/<uuid>` (an addition of this server). */
  async quota(signal?: AbortSignal): Promise<QuotaReport> {
    const res = await this.call({ method: 'GET', path: `/quota/${encodeURIComponent(this.uuid)}`, ...(signal ? { signal } : {}) });
    return (await res.json()) as QuotaReport;
  }

  /**
   * `POST /stream/<uuid>/?direction=upload`: many blobs in one request (manifest line, then the bodies in order).
   * `bodies` must yield, for each entry in order, exactly `entry.size` bytes.
   */
  async streamUpload(
    namespace: string,
    entries: readonly StreamUploadEntry[],
    bodies: AsyncIterable<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<void> {
    const manifest = Buffer.from(encodeStreamManifest(entries));
    const total = manifest.length + entries.reduce((s, e) => s + e.size, 0);
    async function* all(): AsyncGenerator<Uint8Array> {
      yield manifest;
      yield* bodies;
    }
    const res = await this.call({
      method: 'POST', path: `/stream/${encodeURIComponent(this.uuid)}/`,
      query: { direction: 'upload', ...this.nsQuery(namespace) },
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(total) },
      body: all(),
      ...(signal ? { signal } : {}),
    });
    await res.dump();
  }

  /**
   * `POST /stream/<uuid>/?direction=download`: many blobs in one response. Yields each blob as its id, the tag the
   * server announced and an iterable of its bytes, which must be consumed before the next blob is read.
   */
  async *streamDownload(
    namespace: string,
    blobIds: readonly string[],
    signal?: AbortSignal,
  ): AsyncGenerator<{ blobId: string; size: number; tag: string; body: AsyncIterable<Buffer> }> {
    const res = await this.call({
      method: 'POST', path: `/stream/${encodeURIComponent(this.uuid)}/`,
      query: { direction: 'download', ...this.nsQuery(namespace) },
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(blobIds),
      ...(signal ? { signal } : {}),
    });
    const it = catalogued(res.body, '')[Symbol.asyncIterator]();
    let buffered: Buffer = Buffer.alloc(0);
    const fill = async (): Promise<boolean> => {
      const r = await it.next();
      if (r.done === true) return false;
      buffered = buffered.length === 0 ? r.value : Buffer.concat([buffered, r.value]);
      return true;
    };
    try {
      for (const blobId of blobIds) {
        while (buffered.length < STREAM_FRAME_HEADER_LENGTH) {
          if (!(await fill())) throw new SoledadError('The blob stream ended early');
        }
        const header = decodeStreamFrameHeader(buffered.subarray(0, STREAM_FRAME_HEADER_LENGTH));
        buffered = buffered.subarray(STREAM_FRAME_HEADER_LENGTH);
        let left = header.size;
        const body = async function* (): AsyncGenerator<Buffer> {
          while (left > 0) {
            if (buffered.length === 0 && !(await fill())) throw new SoledadError('The blob stream ended early');
            const piece = buffered.subarray(0, Math.min(left, buffered.length));
            buffered = buffered.subarray(piece.length);
            left -= piece.length;
            yield piece;
          }
        };
        yield { blobId, size: header.size, tag: header.tag, body: body() };
        // Skip whatever the consumer left unread.
        for await (const _ of body()) void _;
      }
    } finally {
      res.body.destroy();
    }
  }
}
