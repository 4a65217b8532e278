/**
 * User tokens of the embedded engine: `<data_dir>/tokens.db`, one row per token shaped like the LEAP
 * platform's token documents (`_id` = sha512(token) hex, `type: "Token"`, `user_id`), plus an optional expiry.
 */
import { BadRequestError } from '../../../common/errors.js';
import { constantTimeEqual, generateToken, isTokenHash, isValidUuid, tokenHash } from '../common.js';
import type { TokenInfo, TokenStore } from '../types.js';
import { openSqlite, type Db } from './connection.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, type TEXT NOT NULL, user_id TEXT NOT NULL, created_at INTEGER, expires_at INTEGER);
`;

interface Row { id: string; type: string; user_id: string; created_at: number | null; expires_at: number | null }

/** A hash no token can have: lookups of unknown tokens still do the same comparison work. */
const DUMMY_USER = '\u0000no-such-user';

/** {@link TokenStore} on one SQLite file. */
export class SqliteTokenStore implements TokenStore {
  private readonly db: Db;
  private readonly now: () => number;
  private readonly getStmt;

  constructor(file: string, now: () => number = Date.now) {
    this.db = openSqlite(file, { mustExist: false });
    this.db.exec(SCHEMA);
    this.now = now;
    this.getStmt = this.db.prepare<[string], Row>('SELECT id, type, user_id, created_at, expires_at FROM tokens WHERE id = ?');
  }

  async addToken(uuid: string, options: { expiresAt?: Date } = {}): Promise<string> {
    if (!isValidUuid(uuid)) throw new BadRequestError('Invalid user uuid');
    const expires = options.expiresAt?.getTime();
    if (expires !== undefined && !Number.isFinite(expires)) throw new BadRequestError('Invalid expiry date');
    const token = generateToken();
    this.db.prepare('INSERT INTO tokens (id, type, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)')
      .run(tokenHash(token), 'Token', uuid, this.now(), expires ?? null);
    return token;
  }

  async revoke(tokenOrHash: string): Promise<boolean> {
    const del = this.db.prepare<[string]>('DELETE FROM tokens WHERE id = ?');
    if (isTokenHash(tokenOrHash) && del.run(tokenOrHash).changes > 0) return true;
    return del.run(tokenHash(tokenOrHash)).changes > 0;
  }

  async list(): Promise<TokenInfo[]> {
    return this.db.prepare<[], Row>('SELECT id, type, user_id, created_at, expires_at FROM tokens ORDER BY created_at, id')
      .all()
      .map((r) => ({
        hash: r.id,
        userId: r.user_id,
        createdAt: r.created_at === null ? null : new Date(r.created_at),
        expiresAt: r.expires_at === null ? null : new Date(r.expires_at),
      }));
  }

  async check(uuid: string, token: string): Promise<boolean> {
    // The lookup key is a hash of the secret, so its timing tells nothing about the token; the user id is
    // compared through digests as the platform's checker does.
    const row = this.getStmt.get(tokenHash(token));
    const userMatches = constantTimeEqual(row?.user_id ?? DUMMY_USER, uuid);
    if (row === undefined || !userMatches || row.type !== 'Token') return false;
    return row.expires_at === null || row.expires_at > this.now();
  }

  /** Close the file. */
  close(): void {
    this.db.close();
  }
}
