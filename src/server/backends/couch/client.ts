/**
 * A small CouchDB HTTP client over undici: one keep-alive connection pool per server, JSON in and out, basic
 * authentication from the URL or from a netrc file (`admin_netrc`), and CouchDB's error bodies turned into
 * {@link CouchError}. Only the calls the engine needs; no design documents, no views.
 */
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import { ConfigError, DatabaseDoesNotExistError } from '../../../common/errors.js';

/** Credentials for HTTP basic authentication. */
export interface CouchCredentials {
  /** User name. */
  readonly user: string;
  /** Password. */
  readonly password: string;
}

/** A CouchDB error answer: HTTP status plus the `error` / `reason` of its JSON body. */
export class CouchError extends Error {
  override readonly name = 'CouchError';

  constructor(
    readonly status: number,
    readonly error: string,
    readonly reason: string,
    what: string,
  ) {
    super(`CouchDB ${what}: ${status} ${error}${reason === '' ? '' : ` (${reason})`}`);
  }

  /** The database itself is missing (CouchDB: "Database does not exist."; PouchDB: `no_db_file`). */
  get isMissingDatabase(): boolean {
    return this.status === 404 && (this.reason === 'no_db_file' || /database does not exist/i.test(this.reason));
  }

  /** A missing (or deleted) document in an existing database. */
  get isMissingDocument(): boolean {
    return this.status === 404 && !this.isMissingDatabase;
  }

  /** An update conflict (stale or missing `_rev`). */
  get isConflict(): boolean {
    return this.status === 409;
  }
}

/**
 * Read `machine HOST login USER password PASS` entries of a netrc file and return the ones for `host`
 * (`default` entries match any host). `null` when the file does not exist or has no entry.
 *
 * @example
 * readNetrc('/etc/couchdb/couchdb.netrc', 'localhost'); // { user: 'admin', password: '…' }
 */
export function readNetrc(file: string, host: string): CouchCredentials | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError(`admin_netrc: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  const tokens = text.split(/\s+/).filter((t) => t !== '');
  let current: { host: string | null; user?: string; password?: string } | null = null;
  const entries: Array<{ host: string | null; user?: string; password?: string }> = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === 'machine') {
      current = { host: tokens[++i] ?? '' };
      entries.push(current);
    } else if (t === 'default') {
      current = { host: null };
      entries.push(current);
    } else if (t === 'login' && current !== null) {
      current.user = tokens[++i] ?? '';
    } else if (t === 'password' && current !== null) {
      current.password = tokens[++i] ?? '';
    }
  }
  const hit = entries.find((e) => e.host === host) ?? entries.find((e) => e.host === null);
  if (hit?.user === undefined || hit.password === undefined) return null;
  return { user: hit.user, password: hit.password };
}

/** Options of {@link CouchClient}. */
export interface CouchClientOptions {
  /** Server URL, e.g. `http://admin:secret@127.0.0.1:5984` (credentials in the URL win over `netrc`). */
  readonly url: string;
  /** netrc file to take credentials from when the URL has none (a missing file means none). */
  readonly netrc?: string;
  /** Most connections kept to the server (default 32). */
  readonly connections?: number;
}

/** Query-string values; strings that are JSON keys must be passed already JSON-encoded. */
export type CouchQuery = Record<string, string | number | boolean | undefined>;

/** A request's answer. */
export interface CouchResponse<T> {
  /** HTTP status (2xx, or one of `accept`). */
  readonly status: number;
  /** Parsed JSON body. */
  readonly body: T;
}

/**
 * JSON over HTTP to one CouchDB server.
 *
 * @example
 * const couch = new CouchClient({ url: 'http://127.0.0.1:5984' });
 * const { body } = await couch.request<{ version: string }>('GET', '/');
 */
export class CouchClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly authorization: string | undefined;
  /** The server's URL without credentials, for messages. */
  readonly displayUrl: string;

  constructor(options: CouchClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (cause) {
      throw new ConfigError(`couch_url: not a URL: "${options.url}"`, { cause });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`couch_url: expected http or https, got "${url.protocol}"`);
    let creds: CouchCredentials | null = null;
    if (url.username !== '') {
      creds = { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    } else if (options.netrc !== undefined) {
      creds = readNetrc(options.netrc, url.hostname);
    }
    this.authorization = creds === null ? undefined : `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString('base64')}`;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.displayUrl = `${url.protocol}//${url.host}${this.basePath}`;
    this.pool = new Pool(url.origin, { connections: options.connections ?? 32, keepAliveTimeout: 30_000 });
  }

  /**
   * Send one request. Statuses in `accept` (besides 2xx) are returned; any other status throws {@link CouchError}.
   * `path` starts with `/` and is already URL-encoded.
   */
  async request<T = unknown>(
    method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    options: { query?: CouchQuery; body?: unknown; accept?: readonly number[] } = {},
  ): Promise<CouchResponse<T>> {
    let qs = '';
    if (options.query !== undefined) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(options.query)) if (v !== undefined) params.set(k, String(v));
      const s = params.toString();
      if (s !== '') qs = `?${s}`;
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.authorization !== undefined) headers['authorization'] = this.authorization;
    let payload: string | undefined;
    if (options.body !== undefined) {
      payload = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const res = await this.pool.request({ method, path: `${this.basePath}${path}${qs}`, headers, body: payload ?? null });
    const text = method === 'HEAD' ? '' : await res.body.text();
    if (method === 'HEAD') await res.body.dump();
    let body: unknown = null;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const ok = (res.statusCode >= 200 && res.statusCode < 300) || (options.accept ?? []).includes(res.statusCode);
    if (!ok) {
      const b = (typeof body === 'object' && body !== null ? body : {}) as { error?: unknown; reason?: unknown };
      throw new CouchError(res.statusCode, String(b.error ?? 'error'), String(b.reason ?? ''), `${method} ${path}`);
    }
    return { status: res.statusCode, body: body as T };
  }

  /** Close every connection. */
  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** `encodeURIComponent` for one path segment (database name or document id). */
export function seg(s: string): string {
  return encodeURIComponent(s);
}

/** Rethrow a missing-database answer as {@link DatabaseDoesNotExistError}; anything else unchanged. */
export function mapMissingDb(err: unknown): never {
  if (err instanceof CouchError && err.isMissingDatabase) throw new DatabaseDoesNotExistError(undefined, { cause: err });
  throw err;
}
