/**
 * HTTP plumbing shared by every route: the one error handler (deviation 7: every failure becomes a status with an
 * error body, nothing reaches a bare 500), bounded body reading, and u1db-style JSON replies.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import {
  BadRequestError,
  InsufficientStorageError,
  NotFoundError,
  PayloadTooLargeError,
  SoledadError,
  toWireBody,
  UnauthorizedError,
  UnavailableError,
} from '../common/errors.js';

/**
 * A failed authentication. Rendered like Twisted's `UnauthorizedResource` (fact sheet §5a): 401 with the plain
 * text body `Unauthorized`, not a JSON error.
 */
export class AuthenticationFailedError extends UnauthorizedError {}

/**
 * Map anything thrown to a catalogued error: ours pass through; fastify's own client errors (bad URL, bad
 * content length, …) keep their 4xx; everything else is an internal error whose details stay in the log.
 */
export function toSoledadError(err: unknown): SoledadError {
  if (err instanceof SoledadError) return err;
  const status = typeof err === 'object' && err !== null ? (err as { statusCode?: unknown }).statusCode : undefined;
  const message = err instanceof Error ? err.message : undefined;
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  // The client went away mid-body: its fault, not a server failure (and nobody is left to read the answer).
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || message === 'aborted') {
    return new BadRequestError('Request aborted by the client', { cause: err });
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new PayloadTooLargeError(message, { cause: err });
    if (status === 404) return new NotFoundError(message, { cause: err });
    return new BadRequestError(message, { cause: err });
  }
  if (status === 503) return new UnavailableError(message, { cause: err });
  return storageFailure(code, message, err) ?? new SoledadError('Internal server error', { cause: err });
}

/** errno values and engine codes that mean the storage is full: 507, the request left nothing behind. */
const STORAGE_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'SQLITE_FULL', '53100' /* PostgreSQL disk_full */]);

/**
 * A storage engine that is full or out of reach is not an internal error: the client learns it with a status it
 * can act on (507, or 503 which clients retry) instead of a bare 500.
 */
function storageFailure(code: unknown, message: string | undefined, err: unknown): SoledadError | undefined {
  if (typeof code !== 'string') {
    // pg's errors for a connection the PostgreSQL server dropped (restart, crash) carry no code.
    if (message !== undefined && /^Connection terminated|is not queryable/.test(message)) {
      return new UnavailableError('The storage backend is unavailable; retry later', { cause: err });
    }
    return undefined;
  }
  if (STORAGE_FULL_CODES.has(code)) return new InsufficientStorageError(undefined, { cause: err });
  // SQLite: a failed write or a file locked by another process; PostgreSQL: connection exceptions (class 08),
  // shutdown or start-up in progress (57P01–57P03), too many connections (53300); an unreachable database.
  if (code.startsWith('SQLITE_IOERR') || code === 'SQLITE_BUSY' || /^08/.test(code) || /^57P0[123]$/.test(code) ||
    code === '53300' || code === 'ECONNREFUSED') {
    return new UnavailableError('The storage backend is unavailable; retry later', { cause: err });
  }
  return undefined;
}

/**
 * Send a JSON body the way u1db's `send_response_json` does: the object, then CRLF, with `cache-control:
 * no-cache`.
 */
export function sendJson(reply: FastifyReply, status: number, body: unknown, trailingCrlf = true): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'application/json')
    .header('cache-control', 'no-cache')
    .send(JSON.stringify(body) + (trailingCrlf ? '\r\n' : ''));
}

/**
 * Install the single error handler and the not-found handler on an app.
 *
 * @example
 * const app = Fastify();
 * installErrorHandling(app);
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const error = toSoledadError(err);
    releaseUnreadBody(request);
    if (error.status >= 500) {
      request.log.error({ error: describeForLog(err) }, 'request failed');
    } else {
      request.log.info({ code: error.code, status: error.status }, 'request refused');
    }
    if (error instanceof AuthenticationFailedError) {
      return reply.code(401).header('content-type', 'text/plain; charset=utf-8').header('www-authenticate', 'Token')
        .send('Unauthorized');
    }
    const { status, body } = toWireBody(error);
    return sendJson(reply, status, body);
  });
  app.setNotFoundHandler(async () => {
    throw new NotFoundError();
  });
  // Any answer given before the request body was read (a GET with a body, an early refusal) drains it the same way.
  app.addHook('onSend', async (request, _reply, payload) => {
    if (!request.raw.complete) releaseUnreadBody(request);
    return payload;
  });
}

/**
 * fastify's own refusals before routing (a URL that does not decode, an overlong parameter) skip the error handler:
 * answer them the same way, without echoing the URL, and with the same care for a body still arriving.
 *
 * @example
 * Fastify({ frameworkErrors: answerFrameworkError });
 */
export function answerFrameworkError(err: Error, request: FastifyRequest, reply: FastifyReply): void {
  releaseUnreadBody(request);
  const code = (err as { code?: unknown }).code;
  const error = code === 'FST_ERR_BAD_URL' ? new BadRequestError('Malformed URL', { cause: err }) : toSoledadError(err);
  request.log.info({ code: error.code, status: error.status }, 'request refused');
  const { status, body } = toWireBody(error);
  void sendJson(reply, status, body);
}

/**
 * What an unexpected error may put in a log line. Our own messages never carry secrets or content; a foreign
 * error's message might quote its input (`JSON.parse` does), so only its type, code and stack frames are kept.
 */
function describeForLog(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err };
  const frames = (err.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).join('\n');
  const code = (err as { code?: unknown }).code;
  return {
    type: err.name,
    ...(typeof code === 'string' ? { code } : {}),
    ...(err instanceof SoledadError ? { message: err.message } : {}),
    stack: frames,
  };
}

/** Requests whose unread body is already being drained. */
const lingering = new WeakSet<object>();

/** How long and how much of a refused body is still read, so that the client gets to read the answer. */
const LINGER_MS = 2_000;
const LINGER_BYTES = 16 * 1024 * 1024;

/**
 * Read and discard what `source` still sends, for at most LINGER_MS and LINGER_BYTES, then `close()`; stops
 * counting when `source` ends or `socket` closes.
 */
function drainThenClose(source: Readable | Socket, socket: Partial<Socket> | null, close: () => void): void {
  let read = 0;
  const timer = setTimeout(close, LINGER_MS);
  timer.unref();
  const done = (): void => clearTimeout(timer);
  source.on('data', (chunk: Buffer) => {
    read += chunk.length;
    if (read > LINGER_BYTES) close();
  });
  source.once('end', done);
  source.once('close', done);
  if (typeof socket?.once === 'function' && socket !== source) socket.once('close', done);
  source.resume();
}

/**
 * A refused request may still be sending its body (a 200 MB upload rejected at its first line). Closing the
 * connection at once would make the kernel reset it while the client is still writing, and a reset can destroy
 * the answer before the client reads it (it would see a connection error instead of the 4xx/5xx, and retry a
 * request that cannot succeed). So the rest of the body is read and discarded, for at most LINGER_MS and
 * LINGER_BYTES; then the connection is closed whatever the client is doing.
 */
export function releaseUnreadBody(request: FastifyRequest): void {
  const body = request.body instanceof Readable && !request.body.readableEnded
    ? request.body
    : !request.raw.complete ? request.raw : undefined;
  if (body === undefined || lingering.has(request.raw)) return;
  lingering.add(request.raw);
  const socket = request.raw.socket as Partial<Socket> | null;
  // (In-process `inject()` requests have no real socket: nothing to close there.)
  const close = (): void => {
    if (typeof socket?.destroy === 'function') socket.destroy();
  };
  // Node ends a connection the client asked to close (`Connection: close`, HTTP/1.0) right after the answer, and
  // the unread bytes make that a reset: only end our side then, and let the timer (or the client) close it.
  const sock = socket as (Partial<Socket> & { destroySoon?: () => void }) | null;
  if (typeof sock?.destroySoon === 'function' && typeof sock.end === 'function') {
    sock.destroySoon = () => {
      sock.end!();
    };
  }
  drainThenClose(body, socket, close);
}

/**
 * Node's answer to bytes its HTTP parser refuses (fastify's `clientErrorHandler`). After an answer that closes the
 * connection, what follows a refused request's body (more bytes than its Content-Length said) is parsed as a next
 * request and fails: closing at once would reset the connection and could destroy the answer already sent, so
 * those bytes are drained like a refused body ({@link releaseUnreadBody}). Otherwise: a 400 (408 for a timeout, 431
 * for oversized headers) with an error body, then the connection closes.
 *
 * @example
 * Fastify({ clientErrorHandler: answerClientError });
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (!socket.writable || socket.writableEnded) {
    drainThenClose(socket, socket, () => socket.destroy());
    return;
  }
  const [status, reason, wire] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? [408, 'Request Timeout', 'request timeout']
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'request header fields too large']
      : [400, 'Bad Request', toWireBody(new BadRequestError()).body.error];
  const text = `${JSON.stringify({ error: wire })}\r\n`;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n` +
    `connection: close\r\n\r\n${text}`);
  socket.destroySoon?.();
}

/**
 * The request's media type, lowercased, without parameters (`application/json; charset=utf-8` →
 * `application/json`); `''` when absent.
 */
export function mediaTypeOf(request: FastifyRequest): string {
  const ct = request.headers['content-type'];
  return (ct ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

/**
 * The raw body stream a route received (the catch-all content-type parser hands it over untouched), or an empty
 * stream when the request had no body.
 */
export function bodyStream(request: FastifyRequest): Readable {
  const body = request.body;
  if (body instanceof Readable) return body;
  return Readable.from([]);
}

/**
 * Iterate a body without destroying it when the consumer stops early: the socket must stay writable for the
 * error answer.
 */
export function bodyChunksOf(stream: Readable): AsyncIterable<Buffer> {
  return { [Symbol.asyncIterator]: () => stream.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer> };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Read a whole body of at most `limit` bytes as UTF-8 text; a longer body throws `tooBig()`, invalid UTF-8 is a
 * {@link BadRequestError}.
 */
export async function readTextBody(request: FastifyRequest, limit: number, tooBig: () => SoledadError): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of bodyChunksOf(bodyStream(request))) {
    size += chunk.length;
    if (size > limit) throw tooBig();
    chunks.push(chunk);
  }
  try {
    return utf8.decode(Buffer.concat(chunks, size));
  } catch (cause) {
    throw new BadRequestError('Request body is not valid UTF-8', { cause });
  }
}

/** Reject any query string: the original's `no_query` and argument checks turn unexpected arguments into 400. */
export function rejectQuery(request: FastifyRequest, allowed: readonly string[] = []): void {
  for (const key of Object.keys(request.query as Record<string, unknown>)) {
    if (!allowed.includes(key)) throw new BadRequestError(`Unexpected query argument "${key.slice(0, 50)}"`);
  }
}
