/**
 * HTTP plumbing shared by every route: the one error handler (deviation 7: every failure becomes a status with an
 * error body, nothing reaches a bare 500), bounded body reading, and u1db-style JSON replies.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import {
  BadRequestError,
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
  return new SoledadError('Internal server error', { cause: err });
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
    releaseUnreadBody(request, reply);
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

/**
 * A refused request may still be sending its body (a 200 MB upload rejected at its first line). Keep draining it
 * so the answer is not stuck behind backpressure, and close the connection afterwards instead of reading the
 * rest.
 */
function releaseUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
  const body = request.body;
  if (body instanceof Readable && !body.readableEnded) {
    reply.header('connection', 'close');
    body.resume();
  } else if (!request.raw.complete) {
    reply.header('connection', 'close');
    request.raw.resume();
  }
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
