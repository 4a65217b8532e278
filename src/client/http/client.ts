/**
 * The client side of HTTP: one undici `Agent` per server (keep-alive, custom CA, timeouts), the
 * `Authorization: Token base64(uuid:token)` header, JSON helpers, streamed request and response bodies, and the
 * mapping of every failure to a catalogued error (fact sheet §1e).
 *
 * Secrets (the token) only ever live in the request headers; no error message is built from them.
 */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { setImmediate as nextTurn, setTimeout as sleepMs } from 'node:timers/promises';
import { Agent, type Dispatcher } from 'undici';
import {
  ConfigError,
  ConnectionError,
  InvalidAuthTokenError,
  SoledadError,
  UnavailableError,
  errorFromWire,
} from '../../common/errors.js';
import { encodeTokenAuthorization } from '../../common/protocol/auth.js';

/** The original u1db HTTP client retries a 503 after these delays (seconds): 1, 1, 2, 4, 0. */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [1000, 1000, 2000, 4000, 0];

/** Default timeouts (milliseconds). Generous: a sync POST is answered only after the server stored every doc. */
export const DEFAULT_TIMEOUTS = {
  connectMs: 15_000,
  headersMs: 120_000,
  bodyMs: 120_000,
  keepAliveMs: 30_000,
} as const;

/** Longest error body read from a failed response; anything longer is cut (it is only diagnostics). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Credentials of a user: the uuid and the session token the server handed out. */
export interface Credentials {
  /** The user's uuid (lowercase hex). */
  uuid: string;
  /** The session token. Never logged nor placed in an error message. */
  token: string;
}

/**
 * Options of {@link HttpClient}.
 *
 * @example
 * const http = new HttpClient({ serverUrl: 'https://soledad.example.org:2323/', certFile: '/etc/soledad/ca.pem',
 *   uuid, token });
 */
export interface HttpClientOptions {
  /** Server base URL, e.g. `https://host:2323/`. A path prefix is kept and prepended to every request path. */
  serverUrl: string;
  /** The user's uuid; with {@link token} it is sent as `Authorization: Token …` on every non-anonymous request. */
  uuid?: string;
  /** The user's session token. Never logged nor placed in an error message. */
  token?: string;
  /** PEM file of a certificate to trust (the server's self-signed certificate or its CA). */
  certFile?: string;
  /** PEM text or buffer of a certificate to trust, as an alternative to {@link certFile}. */
  ca?: string | Buffer;
  /** TLS server name to verify the certificate against when it differs from the URL's host. */
  servername?: string;
  /** Connection establishment timeout (ms). */
  connectTimeoutMs?: number;
  /** Time allowed between the end of the request body and the response headers (ms). */
  headersTimeoutMs?: number;
  /** Longest pause allowed between two chunks of the response body (ms). */
  bodyTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept (ms). */
  keepAliveTimeoutMs?: number;
  /** Delays before each retry of a 503 answer; the number of entries is the number of retries. */
  retryDelaysMs?: readonly number[];
  /** Replaceable sleep, so tests need not wait for real seconds. */
  sleep?: (ms: number) => Promise<void>;
  /** Use this dispatcher instead of creating an Agent (the caller then owns its lifecycle). */
  dispatcher?: Dispatcher;
}

/** A request body: text, bytes, or an async iterable of chunks (streamed with chunked encoding). */
export type RequestBody = string | Uint8Array | AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>;

/**
 * One request. A body given as a function is called once per attempt, which makes a streamed body replayable and
 * so eligible for the 503 retries; a plain iterable body is sent once and never retried.
 */
export interface HttpRequest {
  /** HTTP method. */
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'HEAD';
  /** Path below the base URL, already percent-encoded where needed (e.g. `/shared/doc/abc`). */
  path: string;
  /** Query parameters, appended URL-encoded. */
  query?: Record<string, string | number | boolean | undefined>;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** The body, or a factory called for every attempt. */
  body?: RequestBody | (() => RequestBody);
  /** Send without the Authorization header (e.g. `GET /`). */
  anonymous?: boolean;
  /** Statuses that are returned to the caller instead of thrown (besides 2xx). */
  acceptStatus?: readonly number[];
  /** Abort the request. */
  signal?: AbortSignal;
  /** Override the client's headers timeout for this request. */
  headersTimeoutMs?: number;
  /** Override the client's body timeout for this request. */
  bodyTimeoutMs?: number;
  /** Called with the size of each request body chunk as it is handed to the socket. */
  onBodyChunk?: (bytes: number) => void;
}

/** A response whose body has not been read yet. Read it with one of the helpers or iterate `body`; or `dump()`. */
export interface HttpResponse {
  /** HTTP status code. */
  status: number;
  /** Response headers (lowercase names). */
  headers: Record<string, string | string[] | undefined>;
  /**
   * The body as a byte stream (iterate it, or read it through events). Its errors are raw transport errors: wrap
   * them with {@link mapTransportError}. `readableLength`: bytes received and not read yet (0: the next read waits
   * for the network).
   */
  body: Readable;
  /** Read the whole body as UTF-8 text. */
  text(): Promise<string>;
  /** Read and parse the whole body as JSON. */
  json(): Promise<unknown>;
  /** Discard the body so the connection can be reused. */
  dump(): Promise<void>;
}

/** The header value for `Authorization` (fact sheet §1): `Token <std-base64("uuid:token")>`. */
export function authorizationHeader(credentials: Credentials): string {
  return encodeTokenAuthorization(credentials.uuid, credentials.token);
}

/**
 * Turn a transport failure into a catalogued error: catalogued errors and aborts pass through; everything else
 * (refused connection, TLS failure, timeout, socket closed mid-body) becomes a {@link ConnectionError} keeping the
 * original as `cause`.
 */
export function mapTransportError(err: unknown, what = 'request'): Error {
  if (err instanceof SoledadError) return err;
  if (err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR')) return err;
  const code = typeof (err as { code?: unknown })?.code === 'string' ? ` (${(err as { code: string }).code})` : '';
  return new ConnectionError(`Connection to the server failed during ${what}${code}`, { cause: err });
}

/** Streamed request bodies are written in chunks of about this many bytes. */
const COALESCE_BYTES = 128 * 1024;

/** Where a streamed body's own failure is kept, so that it is not mistaken for a network failure. */
interface BodyFailure {
  error?: unknown;
}

function toReadable(body: RequestBody, failure: BodyFailure, onChunk?: (bytes: number) => void): string | Uint8Array | Readable {
  if (typeof body === 'string' || body instanceof Uint8Array) {
    return body;
  }
  const source = body;
  async function* counted(): AsyncGenerator<Buffer> {
    // Small pieces (a sync upload yields one per document) are gathered into chunks of COALESCE_BYTES: each chunk
    // handed to the stream costs a socket write and TLS records of its own. Text pieces are joined first and
    // encoded once per chunk, instead of each into a buffer of its own that is then copied again.
    let parts: Buffer[] = [];
    let size = 0;
    let texts: string[] = [];
    let textChars = 0;
    const encodeTexts = (): void => {
      if (texts.length === 0) return;
      const buf = Buffer.from(texts.length === 1 ? texts[0]! : texts.join(''), 'utf8');
      texts = [];
      textChars = 0;
      parts.push(buf);
      size += buf.length;
    };
    const take = (): Buffer => {
      encodeTexts();
      const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
      parts = [];
      size = 0;
      onChunk?.(out.length);
      return out;
    };
    try {
      for await (const chunk of source as AsyncIterable<string | Uint8Array>) {
        if (typeof chunk === 'string') {
          if (chunk.length === 0) continue;
          texts.push(chunk);
          textChars += chunk.length;
        } else {
          if (chunk.byteLength === 0) continue;
          encodeTexts();
          parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          size += chunk.byteLength;
        }
        // Characters count as bytes here: a chunk of text that is not ASCII is only somewhat larger.
        if (size + textChars >= COALESCE_BYTES) yield take();
      }
      if (size + textChars > 0) yield take();
    } catch (err) {
      failure.error = err;
      throw err;
    }
  }
  return Readable.from(counted(), { objectMode: false });
}

/**
 * A small HTTP client for one Soledad server.
 *
 * @example
 * const http = new HttpClient({ serverUrl, certFile, uuid, token });
 * const info = await http.json({ method: 'GET', path: '/', anonymous: true });
 * await http.close();
 */
export class HttpClient {
  /** The origin requests go to, e.g. `https://127.0.0.1:2323`. */
  readonly origin: string;
  private readonly prefix: string;
  private credentials: Credentials | undefined;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly retryDelaysMs: readonly number[];
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly headersTimeoutMs: number;
  private readonly bodyTimeoutMs: number;
  private closed = false;

  constructor(options: HttpClientOptions) {
    let url: URL;
    try {
      url = new URL(options.serverUrl);
    } catch (cause) {
      throw new ConfigError('Invalid server URL', { cause });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError('Server URL must be http(s)');
    this.origin = url.origin;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.credentials = options.uuid !== undefined && options.token !== undefined
      ? { uuid: options.uuid, token: options.token }
      : undefined;
    this.retryDelaysMs = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.sleep = options.sleep ?? ((ms) => sleepMs(ms));
    this.headersTimeoutMs = options.headersTimeoutMs ?? DEFAULT_TIMEOUTS.headersMs;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? DEFAULT_TIMEOUTS.bodyMs;
    if (options.dispatcher !== undefined) {
      this.dispatcher = options.dispatcher;
      this.ownsDispatcher = false;
    } else {
      let ca: string | Buffer | undefined = options.ca;
      if (options.certFile !== undefined) {
        try {
          ca = readFileSync(options.certFile);
        } catch (cause) {
          throw new ConfigError('Could not read the server certificate file', { cause });
        }
      }
      const connect: Record<string, unknown> = { timeout: options.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectMs };
      if (ca !== undefined) connect.ca = [ca];
      if (options.servername !== undefined) connect.servername = options.servername;
      this.dispatcher = new Agent({
        connect,
        keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_TIMEOUTS.keepAliveMs,
        headersTimeout: this.headersTimeoutMs,
        bodyTimeout: this.bodyTimeoutMs,
      });
      this.ownsDispatcher = true;
    }
  }

  /** Replace the credentials used from the next request on (e.g. after a new login). */
  setCredentials(credentials: Credentials | undefined): void {
    this.credentials = credentials;
  }

  /** The uuid of the current credentials, if any. */
  get uuid(): string | undefined {
    return this.credentials?.uuid;
  }

  /**
   * Send a request and return the response with its body unread. Non-2xx statuses not listed in `acceptStatus`
   * throw: a `{"error": wire}` body revives the server's class ({@link errorFromWire}), 401 is always
   * {@link InvalidAuthTokenError}, and a 503 is retried (replayable bodies only) after the configured delays.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    if (this.closed) throw new ConnectionError('HTTP client is closed');
    const replayable = req.body === undefined || typeof req.body === 'function' || typeof req.body === 'string' ||
      req.body instanceof Uint8Array;
    const path = this.buildPath(req);
    const headers: Record<string, string> = { ...req.headers };
    if (!req.anonymous && this.credentials !== undefined) headers.authorization = authorizationHeader(this.credentials);
    // One turn of the event loop first: undici marks a connection reusable only after the response that just
    // ended on it has been fully processed, which happens after the caller has read the body. A request
    // dispatched at once (a sync's next step) would find the connection still busy and open another one: a new
    // TLS handshake, about 4 ms here, in every sync.
    await nextTurn();
    for (let attempt = 0; ; attempt += 1) {
      const raw = typeof req.body === 'function' ? req.body() : req.body;
      const failure: BodyFailure = {};
      const body = raw === undefined ? undefined : toReadable(raw, failure, req.onBodyChunk);
      let res: Dispatcher.ResponseData;
      try {
        res = await this.dispatcher.request({
          origin: this.origin,
          path,
          method: req.method,
          headers,
          body: body ?? null,
          headersTimeout: req.headersTimeoutMs ?? this.headersTimeoutMs,
          bodyTimeout: req.bodyTimeoutMs ?? this.bodyTimeoutMs,
          ...(req.signal !== undefined ? { signal: req.signal } : {}),
        });
      } catch (err) {
        if (body instanceof Readable) body.destroy();
        // The body producer failed (e.g. encryption): that error, not a connection error, is the story.
        if (failure.error !== undefined) throw failure.error;
        throw mapTransportError(err, `${req.method} request`);
      }
      const status = res.statusCode;
      if ((status >= 200 && status < 300) || req.acceptStatus?.includes(status)) return wrapResponse(res);
      if (status === 503 && replayable && attempt < this.retryDelaysMs.length) {
        await res.body.dump().catch(() => undefined);
        await this.sleep(this.retryDelaysMs[attempt]!);
        continue;
      }
      throw await errorFromResponse(res);
    }
  }

  /** Send a request and parse a JSON response body. */
  async json<T = unknown>(req: HttpRequest): Promise<T> {
    const res = await this.request(req);
    return (await res.json()) as T;
  }

  /** Send a JSON value as the body (`content-type: application/json`) and parse the JSON answer. */
  async sendJson<T = unknown>(req: Omit<HttpRequest, 'body'>, value: unknown): Promise<T> {
    const res = await this.request({
      ...req,
      headers: { 'content-type': 'application/json', ...req.headers },
      body: JSON.stringify(value),
    });
    return (await res.json()) as T;
  }

  /** Close idle connections and refuse further requests. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** Close at once, cutting requests in flight. */
  async destroy(): Promise<void> {
    this.closed = true;
    if (this.ownsDispatcher) await this.dispatcher.destroy();
  }

  private buildPath(req: HttpRequest): string {
    let path = this.prefix + (req.path.startsWith('/') ? req.path : `/${req.path}`);
    if (req.query !== undefined) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(req.query)) if (v !== undefined) params.append(k, String(v));
      const qs = params.toString();
      if (qs !== '') path += `?${qs}`;
    }
    return path;
  }
}

function wrapResponse(res: Dispatcher.ResponseData): HttpResponse {
  const body = res.body;
  return {
    status: res.statusCode,
    headers: res.headers as Record<string, string | string[] | undefined>,
    body: body as unknown as HttpResponse['body'],
    async text() {
      try {
        return await body.text();
      } catch (err) {
        throw mapTransportError(err, 'response');
      }
    },
    async json() {
      let text: string;
      try {
        text = await body.text();
      } catch (err) {
        throw mapTransportError(err, 'response');
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (cause) {
        throw new ConnectionError('The server sent a response that is not valid JSON', { cause });
      }
    },
    async dump() {
      await body.dump().catch(() => undefined);
    },
  };
}

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_ERROR_BODY_BYTES) {
        body.destroy();
        break;
      }
    }
  } catch {
    // A truncated error body still tells us the status; the error below carries that.
  }
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8');
}

async function errorFromResponse(res: Dispatcher.ResponseData): Promise<SoledadError> {
  const text = await readLimited(res.body);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (res.statusCode === 401) {
    const message = typeof (parsed as { message?: unknown } | undefined)?.message === 'string'
      ? (parsed as { message: string }).message
      : undefined;
    return new InvalidAuthTokenError(message);
  }
  if (res.statusCode === 503 && (parsed === undefined || typeof (parsed as { error?: unknown }).error !== 'string')) {
    return new UnavailableError();
  }
  return errorFromWire(res.statusCode, parsed);
}
