/**
 * The PostgreSQL connection pool of the engine: every table lives in one PostgreSQL schema (default `soledad`),
 * selected per connection through `search_path`, so several deployments (or test runs) can share one database.
 */
import pg from 'pg';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { ConfigError } from '../../../common/errors.js';

const SCHEMA_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** int8 (`bigint`) values come back as numbers: generations, sizes and byte counts stay far below 2^53. */
const INT8_OID = 20;
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (oid === INT8_OID && format !== 'binary') return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
  },
};

/** Options of {@link PgDatabase}. */
export interface PgDatabaseOptions {
  /** libpq connection URL, e.g. `postgres://soledad@127.0.0.1:5432/soledad` (option `postgres_url`). */
  readonly url: string;
  /** PostgreSQL schema holding the tables (default `soledad`). */
  readonly schema?: string;
  /** Most connections this process opens (default 20). */
  readonly maxConnections?: number;
}

/** Something queries can run on: the pool or one checked-out client inside a transaction. */
export interface Queryable {
  /** Run one parameterized statement. */
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: readonly unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/**
 * A pool of connections to one PostgreSQL schema, with a transaction helper.
 *
 * @example
 * const db = new PgDatabase({ url: 'postgres://soledad@127.0.0.1/soledad' });
 * await db.transaction(async (c) => { await c.query('SELECT 1'); });
 * await db.close();
 */
export class PgDatabase implements Queryable {
  /** The schema name (validated: it is spliced into DDL). */
  readonly schema: string;
  private readonly pool: Pool;
  private closed = false;

  constructor(options: PgDatabaseOptions) {
    const schema = options.schema ?? 'soledad';
    if (!SCHEMA_NAME_RE.test(schema)) throw new ConfigError(`postgres schema: invalid name "${schema}"`);
    this.schema = schema;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.maxConnections ?? 20,
      // `public` stays on the path so extensions installed there keep working.
      options: `-c search_path=${schema},public`,
      types: typeParsers,
      idleTimeoutMillis: 30_000,
    });
    // An idle client losing its connection (server restart) must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
    // Nor a checked-out one (an upload holding its transaction between two batches): its 'error' event would be
    // unhandled and kill the process. Its next query fails instead, and the request with it.
    this.pool.on('connect', (client) => {
      client.on('error', () => undefined);
    });
  }

  /** Run one statement on any free connection. */
  async query<R extends QueryResultRow = QueryResultRow>(text: string, values?: readonly unknown[]): Promise<{ rows: R[]; rowCount: number | null }> {
    return this.pool.query<R>(text, values as unknown[] | undefined);
  }

  /** Check a client out of the pool; the caller must `release()` it. */
  async connect(): Promise<PoolClient> {
    return this.pool.connect();
  }

  /**
   * Run `fn` inside `BEGIN … COMMIT` on one client; any error rolls back and is rethrown.
   *
   * @example
   * const n = await db.transaction(async (c) => (await c.query('SELECT 1 AS n')).rows[0].n);
   */
  async transaction<T>(fn: (client: PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query(begin);
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** Close every connection (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/** Whether `err` is a PostgreSQL error with this SQLSTATE (e.g. `23505` unique violation). */
export function isPgError(err: unknown, sqlState: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === sqlState;
}
