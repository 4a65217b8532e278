/**
 * User tokens in the LEAP platform's CouchDB layout: databases `tokens_<int(time()/2592000)>` (one per 30-day
 * period), documents `{_id: sha512(token) hex, type: "Token", user_id}`; this port adds `created_at` and an
 * optional `expires_at` (ISO 8601), which the platform's readers ignore.
 *
 * A token is looked up in the current period's database, then in the previous one; one found there is copied
 * forward, so a token in use survives the rotation (as the platform's rotation does) while an unused one lapses
 * after at most two periods.
 */
import { BadRequestError } from '../../../common/errors.js';
import { constantTimeEqual, generateToken, isTokenHash, isValidUuid, tokenHash } from '../common.js';
import type { TokenInfo, TokenStore } from '../types.js';
import { CouchError, seg, type CouchClient } from './client.js';
import type { AllDocsRow, CouchSecurity } from './schema.js';

/** Seconds in one rotation period of the tokens databases (30 days). */
export const TOKENS_PERIOD_SECONDS = 2_592_000;

interface TokenDoc {
  _id: string;
  _rev?: string;
  type?: unknown;
  user_id?: unknown;
  created_at?: unknown;
  expires_at?: unknown;
}

/** `tokens_<int(time()/2592000)>` for a time in milliseconds. */
export function tokensDbName(nowMs: number): string {
  return `tokens_${Math.floor(nowMs / 1000 / TOKENS_PERIOD_SECONDS)}`;
}

const DUMMY_USER = '\u0000no-such-user';

function parseDate(v: unknown): Date | null {
  if (typeof v !== 'string') return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * {@link TokenStore} on the platform's rotating CouchDB tokens databases.
 *
 * @example
 * const tokens = new CouchTokenStore(client, '', DEFAULT_COUCH_SECURITY);
 * const token = await tokens.addToken('0123abcd');
 */
export class CouchTokenStore implements TokenStore {
  constructor(
    private readonly client: CouchClient,
    private readonly prefix: string,
    private readonly security: CouchSecurity | null,
    private readonly now: () => number = Date.now,
  ) {}

  private dbPath(name: string): string {
    return `/${seg(this.prefix + name)}`;
  }

  private async ensureDb(name: string): Promise<void> {
    const r = await this.client.request('PUT', this.dbPath(name), { accept: [412] });
    if (r.status !== 412 && this.security !== null) {
      await this.client.request('PUT', `${this.dbPath(name)}/_security`, { body: this.security });
    }
  }

  private async get(dbName: string, id: string): Promise<TokenDoc | null> {
    try {
      return (await this.client.request<TokenDoc>('GET', `${this.dbPath(dbName)}/${seg(id)}`)).body;
    } catch (err) {
      if (err instanceof CouchError && err.status === 404) return null;
      throw err;
    }
  }

  async addToken(uuid: string, options: { expiresAt?: Date } = {}): Promise<string> {
    if (!isValidUuid(uuid)) throw new BadRequestError('Invalid user uuid');
    const expires = options.expiresAt?.getTime();
    if (expires !== undefined && !Number.isFinite(expires)) throw new BadRequestError('Invalid expiry date');
    const token = generateToken();
    const db = tokensDbName(this.now());
    await this.ensureDb(db);
    const doc: TokenDoc = { _id: tokenHash(token), type: 'Token', user_id: uuid, created_at: new Date(this.now()).toISOString() };
    if (expires !== undefined) doc.expires_at = new Date(expires).toISOString();
    await this.client.request('PUT', `${this.dbPath(db)}/${seg(doc._id)}`, { body: doc });
    return token;
  }

  /** Names (without prefix) of every tokens database, newest first. */
  private async tokenDbs(): Promise<string[]> {
    const all = (await this.client.request<string[]>('GET', '/_all_dbs')).body;
    const re = /^tokens_(\d+)$/;
    return all
      .filter((n) => n.startsWith(this.prefix) && re.test(n.slice(this.prefix.length)))
      .map((n) => n.slice(this.prefix.length))
      .sort((a, b) => Number(b.slice(7)) - Number(a.slice(7)));
  }

  async revoke(tokenOrHash: string): Promise<boolean> {
    const ids = isTokenHash(tokenOrHash) ? [tokenOrHash, tokenHash(tokenOrHash)] : [tokenHash(tokenOrHash)];
    let removed = false;
    for (const db of await this.tokenDbs()) {
      for (const id of ids) {
        const doc = await this.get(db, id);
        if (doc?._rev === undefined) continue;
        const r = await this.client.request('DELETE', `${this.dbPath(db)}/${seg(id)}`, { query: { rev: doc._rev }, accept: [404, 409] });
        if (r.status < 300) removed = true;
      }
    }
    return removed;
  }

  async list(): Promise<TokenInfo[]> {
    const seen = new Map<string, TokenInfo>();
    for (const db of await this.tokenDbs()) {
      const r = await this.client.request<{ rows: Array<AllDocsRow<TokenDoc>> }>('GET', `${this.dbPath(db)}/_all_docs`, { query: { include_docs: true } });
      for (const row of r.body.rows) {
        const d = row.doc;
        if (d === undefined || d === null || d.type !== 'Token' || typeof d.user_id !== 'string' || seen.has(d._id)) continue;
        seen.set(d._id, { hash: d._id, userId: d.user_id, createdAt: parseDate(d.created_at), expiresAt: parseDate(d.expires_at) });
      }
    }
    return [...seen.values()].sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0) || (a.hash < b.hash ? -1 : 1));
  }

  async check(uuid: string, token: string): Promise<boolean> {
    const id = tokenHash(token);
    const now = this.now();
    const current = tokensDbName(now);
    let doc = await this.get(current, id);
    if (doc === null) {
      const previous = tokensDbName(now - TOKENS_PERIOD_SECONDS * 1000);
      doc = await this.get(previous, id);
      if (doc !== null && doc.type === 'Token' && doc.user_id === uuid) await this.carryForward(current, doc);
    }
    // Compared through digests, as the platform's checker does; unknown tokens cost the same comparison.
    const userMatches = constantTimeEqual(typeof doc?.user_id === 'string' ? doc.user_id : DUMMY_USER, uuid);
    if (doc === null || !userMatches || doc.type !== 'Token') return false;
    const expires = parseDate(doc.expires_at);
    return expires === null || expires.getTime() > now;
  }

  private async carryForward(db: string, doc: TokenDoc): Promise<void> {
    const { _rev: _ignored, ...body } = doc;
    try {
      await this.ensureDb(db);
      await this.client.request('PUT', `${this.dbPath(db)}/${seg(doc._id)}`, { body, accept: [409] });
    } catch {
      // Best effort: the token stays valid through the previous period's database.
    }
  }
}
