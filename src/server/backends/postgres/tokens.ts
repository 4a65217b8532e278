/**
 * User tokens of the PostgreSQL engine: table `tokens`, rows shaped like the LEAP platform's token documents
 * (`id` = sha512(token) hex, `type` = `Token`, `user_id`) plus an optional expiry.
 */
import { BadRequestError } from '../../../common/errors.js';
import { constantTimeEqual, generateToken, isTokenHash, isValidUuid, tokenHash } from '../common.js';
import type { TokenInfo, TokenStore } from '../types.js';
import type { PgDatabase } from './connection.js';

interface Row { id: string; type: string; user_id: string; created_at: Date | null; expires_at: Date | null }

/** A user id no token can have: unknown tokens still cost the same comparison. */
const DUMMY_USER = '\u0000no-such-user';

/**
 * {@link TokenStore} on PostgreSQL.
 *
 * @example
 * const tokens = new PgTokenStore(db);
 * const token = await tokens.addToken('0123abcd');
 */
export class PgTokenStore implements TokenStore {
  constructor(
    private readonly db: PgDatabase,
    private readonly now: () => number = Date.now,
  ) {}

  async addToken(uuid: string, options: { expiresAt?: Date } = {}): Promise<string> {
    if (!isValidUuid(uuid)) throw new BadRequestError('Invalid user uuid');
    const expires = options.expiresAt?.getTime();
    if (expires !== undefined && !Number.isFinite(expires)) throw new BadRequestError('Invalid expiry date');
    const token = generateToken();
    await this.db.query(
      'INSERT INTO tokens (id, type, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)',
      [tokenHash(token), 'Token', uuid, new Date(this.now()), expires === undefined ? null : new Date(expires)],
    );
    return token;
  }

  async revoke(tokenOrHash: string): Promise<boolean> {
    const ids = isTokenHash(tokenOrHash) ? [tokenOrHash, tokenHash(tokenOrHash)] : [tokenHash(tokenOrHash)];
    const r = await this.db.query('DELETE FROM tokens WHERE id = ANY($1::text[])', [ids]);
    return (r.rowCount ?? 0) > 0;
  }

  async list(): Promise<TokenInfo[]> {
    const r = await this.db.query<Row>('SELECT id, type, user_id, created_at, expires_at FROM tokens ORDER BY created_at, id');
    return r.rows.map((row) => ({ hash: row.id, userId: row.user_id, createdAt: row.created_at, expiresAt: row.expires_at }));
  }

  async check(uuid: string, token: string): Promise<boolean> {
    // The key is a hash of the secret, so the lookup's timing says nothing about the token; the user id is
    // compared through digests as the platform's checker does.
    const r = await this.db.query<Row>('SELECT id, type, user_id, created_at, expires_at FROM tokens WHERE id = $1', [tokenHash(token)]);
    const row = r.rows[0];
    const userMatches = constantTimeEqual(row?.user_id ?? DUMMY_USER, uuid);
    if (row === undefined || !userMatches || row.type !== 'Token') return false;
    return row.expires_at === null || row.expires_at.getTime() > this.now();
  }
}
