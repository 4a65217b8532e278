/**
 * The Users API blob routes (fact sheet §5b, with deviations 2, 5 and 7 of protocol.md fixed):
 *
 * | route | answers |
 * |---|---|
 * | `GET /blobs/<uuid>/` | list (`namespace`, `filter_flag`, `order_by`, `deleted`) or `{"count": n}` (`only_count`); 400 |
 * |  | incoming box qualifiers (additions): `limit`, `page`, `size_limit`, `include_processing`, `retry_for_version` |
 * | `GET /blobs/<uuid>/<id>` | 200 bytes + `Tag`, 206 + `content-range` for `Range`, 416, `?only_flags` JSON, 404 |
 * | `PUT /blobs/<uuid>/<id>` | 200, 409, 507, 400 |
 * | `POST /blobs/<uuid>/<id>` | flags (replace): 200, 404, 406, 400 |
 * |  | with `replica=…` (addition): an atomic incoming transition, 200 + JSON state, 409 `reservation conflict` |
 * | `DELETE /blobs/<uuid>/<id>` | 200, 404 |
 * | `POST /stream/<uuid>/?direction=download\|upload` | multi-blob transfer: 200, 400, 404, 409, 507 |
 * | `GET /quota/<uuid>` | `{"used": n, "limit": n}` (an addition) |
 *
 * Authentication and the route whitelist are the app's hooks; these routes only see authorized requests.
 * Bodies are streams end to end: nothing here buffers a blob.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import {
  BadRequestError,
  BlobAlreadyExistsError,
  BlobNotFoundError,
  QuotaExceededError,
  RangeNotSatisfiableError,
  SoledadError,
  toWireBody,
} from '../../common/errors.js';
import {
  DEFAULT_NAMESPACE,
  encodeStreamFrameHeader,
  formatFlags,
  isValidBlobName,
  parseBoolParam,
  parseOrderBy,
  parseStreamDownloadRequest,
  parseStreamManifest,
} from '../../common/protocol/blobs.js';
import type { QuotaReport } from '../../common/protocol/blobs.js';
import type { BlobsService } from '../app.js';
import { parseCountParam } from '../../common/protocol/incoming.js';
import type { IncomingTransition } from '../../common/protocol/incoming.js';
import type { BlobListOptions, BlobRef, BlobStore, ByteRange } from '../backends/blob-types.js';
import { releaseUnreadBody, toSoledadError } from '../http.js';
import type { IncomingService } from '../incoming/service.js';

/** What the blob routes need. */
export interface BlobRoutesDeps {
  /** The storage engine. */
  store: BlobStore;
  /** Longest JSON body accepted by flag updates and `/stream/` requests (default 8 MiB). */
  maxJsonBodyBytes?: number;
  /**
   * The incoming box over the same store: enables reservation transitions (`POST …?replica=`), expiry of lapsed
   * reservations before pending listings, and `retry_for_version` listings.
   */
  incoming?: IncomingService;
}

const TRANSITIONS: readonly IncomingTransition[] = ['PROCESSING', 'PROCESSED', 'FAILED', 'PENDING'];

const DEFAULT_MAX_JSON_BODY = 8 * 1024 * 1024;

type Query = Record<string, string | string[] | undefined>;

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function userOf(req: FastifyRequest): string {
  const uuid = (req.params as { uuid?: string }).uuid;
  if (!isValidBlobName(uuid)) throw new BadRequestError('Invalid user id');
  return uuid;
}

function namespaceOf(req: FastifyRequest): string {
  const ns = first((req.query as Query).namespace);
  // The original treats an empty namespace as the default one.
  if (ns === undefined || ns === '') return DEFAULT_NAMESPACE;
  if (!isValidBlobName(ns)) throw new BadRequestError('Invalid blob namespace');
  return ns;
}

function refOf(req: FastifyRequest): BlobRef {
  const user = userOf(req);
  const blobId = (req.params as { blobId?: string }).blobId;
  if (!isValidBlobName(blobId)) throw new BadRequestError('Invalid blob id');
  return { user, namespace: namespaceOf(req), blobId };
}

function b64u(data: Buffer): string {
  return data.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/**
 * Iterate a request body without destroying it when the consumer stops early: an unread remainder is drained,
 * so the error response still reaches the client instead of a reset connection. A body whose connection died
 * (even before the handler started reading) fails with {@link BadRequestError} rather than waiting forever.
 */
export function bodyChunks(stream: Readable | undefined): AsyncIterable<Buffer> {
  if (stream === undefined) return (async function* () {})();
  return {
    async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
      let completed = false;
      try {
        try {
          for await (const chunk of stream.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
        } catch (err) {
          if (err instanceof SoledadError) throw err;
          throw new BadRequestError('Request body was cut short', { cause: err });
        }
        completed = true;
      } finally {
        if (!completed && !stream.destroyed) stream.resume();
      }
    },
  };
}

async function readSmallBody(stream: Readable | undefined, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of bodyChunks(stream)) {
    size += chunk.length;
    if (size > limit) throw new BadRequestError('Request body too large');
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

/**
 * Parse `Range: bytes=s-e` against a blob of `size` bytes. Both bounds are required and, as in the original, the
 * end is exclusive (`206` carries `e - s` bytes). Anything unsatisfiable is a {@link RangeNotSatisfiableError}.
 */
export function parseRange(header: string, size: number): ByteRange {
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim() !== 'bytes') throw new RangeNotSatisfiableError('Unknown range unit');
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(header.slice(eq + 1));
  if (m === null) throw new RangeNotSatisfiableError('Range needs both bounds');
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start >= end || end > size) {
    throw new RangeNotSatisfiableError('Range outside the blob');
  }
  return { start, end };
}

function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  let status: number;
  let body: { error: string; message?: string };
  if (err instanceof SoledadError) {
    ({ status, body } = toWireBody(err));
  } else {
    const code = (err as { statusCode?: unknown } | null)?.statusCode;
    if (typeof code === 'number' && code >= 400 && code < 500) {
      // Fastify's own client errors (bad media type, malformed URL…) keep their status.
      status = code;
      body = { error: 'bad request', message: (err as Error).message };
    } else {
      // Storage failures (disk full: 507, unreachable: 503) are named like everywhere else; the rest is a 500.
      const mapped = toSoledadError(err);
      if (mapped.status >= 500) reply.log.error({ err }, 'blob route failed');
      ({ status, body } = toWireBody(mapped));
    }
  }
  // A refused upload may still be arriving: drain it (bounded) so that the client reads the answer.
  releaseUnreadBody(reply.request);
  return reply.code(status).type('application/json').send(JSON.stringify(body));
}

function sendJsonText(reply: FastifyReply, text: string): FastifyReply {
  return reply.code(200).type('application/json').send(text);
}

/**
 * The blob routes as an encapsulated fastify plugin. Its content-type parser hands every body over unread, so
 * uploads stream straight to storage, whatever their `content-type`, and routes outside this plugin are unaffected.
 */
export const blobRoutesPlugin: FastifyPluginAsync<BlobRoutesDeps> = async (app, deps) => {
  const store = deps.store;
  const maxJson = deps.maxJsonBodyBytes ?? DEFAULT_MAX_JSON_BODY;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  app.setErrorHandler((err, _req, reply) => sendError(reply, err));

  const bodyOf = (req: FastifyRequest): Readable | undefined => req.body as Readable | undefined;

  // ---- listing ----
  app.get('/blobs/:uuid/', async (req, reply) => {
    const user = userOf(req);
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    const filterRaw = first(q.filter_flag);
    const filterFlag = filterRaw === undefined || filterRaw === '' ? undefined : filterRaw;
    const deleted = parseBoolParam(first(q.deleted), 'deleted');
    // Incoming box qualifiers (additions). Absent, the listing is exactly the original's.
    const includeRaw = first(q.include_processing);
    const includeProcessing = includeRaw === undefined ? undefined : parseBoolParam(includeRaw, 'include_processing');
    const sizeLimit = parseCountParam(first(q.size_limit), 'size_limit');
    const limit = parseCountParam(first(q.limit), 'limit');
    const page = parseCountParam(first(q.page), 'page', 1);
    if (page !== undefined && limit === undefined) throw new BadRequestError('page needs limit');
    const retryRaw = first(q.retry_for_version);
    const retryFor = retryRaw === undefined || retryRaw === '' ? undefined : retryRaw;
    if (retryFor !== undefined && deps.incoming === undefined) throw new BadRequestError('retry_for_version needs the incoming box');
    const qualified = includeProcessing !== undefined || sizeLimit !== undefined || retryFor !== undefined;
    // A lapsed reservation is pending again: release those before anyone looks at what is pending.
    if (deps.incoming !== undefined && !deleted &&
      (filterFlag === 'PENDING' || filterFlag === 'PROCESSING' || includeProcessing !== undefined)) {
      await deps.incoming.expireIfDue(user, namespace);
    }
    const options: BlobListOptions = { namespace, deleted };
    if (filterFlag !== undefined) options.filterFlag = filterFlag;
    if (includeProcessing === true && filterFlag !== undefined) options.anyFlag = ['PROCESSING'];
    if (includeProcessing === false) options.excludeFlags = ['PROCESSING'];
    if (sizeLimit !== undefined) options.maxSize = sizeLimit;
    if (parseBoolParam(first(q.only_count), 'only_count')) {
      // The count is the size of the whole filtered list: paging does not apply.
      let count: number;
      if (retryFor !== undefined) {
        count = (await deps.incoming!.listRetryable(user, options, retryFor)).length;
      } else if (qualified) {
        count = (await store.list(user, options)).length;
      } else {
        const countOptions: { namespace: string; filterFlag?: string; deleted?: boolean } = { namespace };
        if (filterFlag !== undefined) countOptions.filterFlag = filterFlag;
        if (deleted) countOptions.deleted = true;
        count = await store.count(user, countOptions);
      }
      return sendJsonText(reply, `{"count": ${count}}`);
    }
    const order = parseOrderBy(first(q.order_by));
    if (order !== undefined) options.order = order;
    if (limit !== undefined) {
      options.limit = limit;
      if (page !== undefined) options.offset = (page - 1) * limit;
    }
    const ids = retryFor !== undefined ? await deps.incoming!.listRetryable(user, options, retryFor) : await store.list(user, options);
    return sendJsonText(reply, formatFlags(ids));
  });

  // ---- one blob ----
  app.get('/blobs/:uuid/:blobId', async (req, reply) => {
    const ref = refOf(req);
    if (parseBoolParam(first((req.query as Query).only_flags), 'only_flags')) {
      return sendJsonText(reply, formatFlags(await store.getFlags(ref)));
    }
    const handle = await store.open(ref);
    let range: ByteRange | undefined;
    try {
      const header = req.headers.range;
      if (header !== undefined) {
        try {
          range = parseRange(header, handle.size);
        } catch (err) {
          reply.header('content-range', `bytes */${handle.size}`);
          throw err;
        }
      }
      reply.header('Tag', b64u(await handle.tag()));
    } catch (err) {
      await handle.close();
      throw err;
    }
    reply.type('application/octet-stream');
    if (range === undefined) {
      reply.code(200).header('content-length', String(handle.size));
    } else {
      reply.code(206)
        .header('content-range', `bytes ${range.start}-${range.end}/${handle.size}`)
        .header('content-length', String(range.end - range.start));
    }
    return reply.send(handle.read(range));
  });

  app.put('/blobs/:uuid/:blobId', async (req, reply) => {
    const ref = refOf(req);
    const lengthHeader = req.headers['content-length'];
    const options: { size?: number } = {};
    if (lengthHeader !== undefined && req.headers['transfer-encoding'] === undefined) {
      options.size = Number(lengthHeader);
    }
    await store.put(ref, bodyChunks(bodyOf(req)), options);
    return reply.code(200).send();
  });

  app.post('/blobs/:uuid/:blobId', async (req, reply) => {
    const ref = refOf(req);
    const text = await readSmallBody(bodyOf(req), maxJson);
    let flags: unknown;
    try {
      flags = JSON.parse(text);
    } catch (cause) {
      throw new BadRequestError('Flags must be a JSON list', { cause });
    }
    if (!Array.isArray(flags) || !flags.every((f) => typeof f === 'string')) {
      throw new BadRequestError('Flags must be a JSON list of strings');
    }
    const q = req.query as Query;
    const replica = first(q.replica);
    if (replica !== undefined && replica !== '') {
      // An incoming transition (addition): one flag, decided atomically against the reservation.
      if (deps.incoming === undefined) throw new BadRequestError('replica needs the incoming box');
      if (flags.length !== 1 || !(TRANSITIONS as readonly string[]).includes(flags[0] as string)) {
        throw new BadRequestError('An incoming transition takes exactly one of PROCESSING, PROCESSED, FAILED, PENDING');
      }
      const versionRaw = first(q.version);
      const state = await deps.incoming.transition(ref, {
        to: flags[0] as IncomingTransition,
        replica,
        ...(versionRaw === undefined || versionRaw === '' ? {} : { version: versionRaw }),
      });
      return sendJsonText(reply, JSON.stringify(state));
    }
    await store.setFlags(ref, flags as string[]);
    return reply.code(200).send();
  });

  app.delete('/blobs/:uuid/:blobId', async (req, reply) => {
    await store.delete(refOf(req));
    return reply.code(200).send();
  });

  // ---- quota (addition) ----
  app.get('/quota/:uuid', async (req, reply) => {
    const usage = await store.usage(userOf(req));
    const report: QuotaReport = { used: usage.used + usage.otherUsed, limit: usage.limit };
    return sendJsonText(reply, JSON.stringify(report));
  });

  // ---- multi-blob stream ----
  app.post('/stream/:uuid/', async (req, reply) => {
    const user = userOf(req);
    const namespace = namespaceOf(req);
    const direction = first((req.query as Query).direction);
    if (direction === 'download') {
      const ids = parseStreamDownloadRequest(await readSmallBody(bodyOf(req), maxJson));
      for (const blobId of ids) {
        if ((await store.stat({ user, namespace, blobId })) === null) {
          throw new BlobNotFoundError(`Blob doesn't exist: ${blobId}`);
        }
      }
      reply.code(200).type('application/octet-stream');
      return reply.send(Readable.from(downloadFrames(store, user, namespace, ids)));
    }
    if (direction === 'upload') {
      await upload(store, user, namespace, bodyOf(req));
      return reply.code(200).send();
    }
    throw new BadRequestError('direction must be download or upload');
  });
};

async function* downloadFrames(store: BlobStore, user: string, namespace: string, ids: string[]): AsyncGenerator<Buffer> {
  for (const blobId of ids) {
    // A blob deleted after the existence check fails the stream; the client sees a truncated reply.
    const handle = await store.open({ user, namespace, blobId });
    let header: Buffer;
    try {
      header = encodeStreamFrameHeader(handle.size, await handle.tag());
    } catch (err) {
      await handle.close();
      throw err;
    }
    yield header;
    for await (const chunk of handle.read()) yield chunk as Buffer;
  }
}

/** Reads a byte stream as a line followed by exact-length pieces. */
class PieceReader {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;
  private done = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done === true) {
      this.done = true;
      return false;
    }
    this.buffered = this.buffered.length === 0 ? r.value : Buffer.concat([this.buffered, r.value]);
    return true;
  }

  async line(max: number): Promise<string> {
    for (;;) {
      const nl = this.buffered.indexOf(0x0a);
      if (nl >= 0) {
        const text = this.buffered.subarray(0, nl).toString('utf8');
        this.buffered = this.buffered.subarray(nl + 1);
        return text;
      }
      if (this.buffered.length > max) throw new BadRequestError('Stream manifest too large');
      if (!(await this.fill())) throw new BadRequestError('Stream body ended before its manifest line');
    }
  }

  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered.length === 0 && !(await this.fill())) return; // short: the store reports it
      const piece = this.buffered.subarray(0, Math.min(left, this.buffered.length));
      this.buffered = this.buffered.subarray(piece.length);
      left -= piece.length;
      yield piece;
    }
  }

  async finish(): Promise<void> {
    await this.it.return?.();
  }
}

/**
 * `/stream/?direction=upload`: the manifest line, then each blob in order. Deviation 5: existence and quota are
 * checked up front (409 / 507 before any byte is stored), and each blob is still an ordinary atomic, quota-reserved
 * put, so a race with another writer cannot overwrite anything or overshoot the quota.
 */
async function upload(store: BlobStore, user: string, namespace: string, body: Readable | undefined): Promise<void> {
  const reader = new PieceReader(bodyChunks(body));
  try {
    const entries = parseStreamManifest(await reader.line(DEFAULT_MAX_JSON_BODY));
    for (const e of entries) {
      if ((await store.stat({ user, namespace, blobId: e.blobId })) !== null) {
        throw new BlobAlreadyExistsError(`Blob already exists: ${e.blobId}`);
      }
    }
    const total = entries.reduce((sum, e) => sum + e.size, 0);
    const usage = await store.usage(user);
    if (usage.used + usage.otherUsed + usage.reserved + total > usage.limit) {
      throw new QuotaExceededError('Quota Exceeded!');
    }
    for (const e of entries) {
      await store.put({ user, namespace, blobId: e.blobId }, reader.take(e.size), { size: e.size });
    }
  } finally {
    await reader.finish();
  }
}

/**
 * Register the blob routes on an app (inside their own encapsulated scope).
 *
 * @example
 * registerBlobRoutes(app, { store: new FsBlobStore({ root: config.blobsPath }) });
 */
export function registerBlobRoutes(app: FastifyInstance, deps: BlobRoutesDeps): void {
  void app.register(blobRoutesPlugin, deps);
}

/**
 * The blobs service of the Users API over any {@link BlobStore}: what `buildUsersApp({ blobs })` takes.
 *
 * @example
 * const app = buildUsersApp({ config, backend, blobs: blobsService(store) });
 */
export function blobsService(store: BlobStore, options: Omit<BlobRoutesDeps, 'store'> = {}): BlobsService {
  if (options.incoming !== undefined && options.incoming.store !== store) {
    throw new TypeError('the incoming box must use the same blob store as the blob routes');
  }
  return {
    register: (app) => registerBlobRoutes(app, { ...options, store }),
    usageBytes: async (uuid) => (await store.usage(uuid)).used,
  };
}
