/**
 * The PostgreSQL engine: user databases, the shared database, tokens and blobs in one PostgreSQL schema, with
 * no state in the server process beyond caches, so any number of server processes can share one cluster.
 *
 * Tables: see `schema.ts`. Created on first start, checked on every start (an unknown schema version refuses).
 */
import { BackendNotReadyError, BadRequestError, DatabaseDoesNotExistError, SoledadError } from '../../../common/errors.js';
import type { Backend, BackendCapabilities } from '../types.js';
import { PgBlobStore, type PgBlobStoreOptions } from './blobs.js';
import { PgDatabase } from './connection.js';
import { PgDocumentStore } from './documents.js';
import { ensurePgSchema } from './schema.js';
import { PgSharedStore } from './shared.js';
import { PgTokenStore } from './tokens.js';

/** Options of {@link openPostgresBackend}. */
export interface PostgresBackendOptions {
  /** Connection URL (option `postgres_url`), e.g. `postgres://soledad:secret@db.example.org/soledad`. */
  readonly url: string;
  /** PostgreSQL schema holding the tables (default `soledad`). */
  readonly schema?: string;
  /** Most connections this process opens (default 20). */
  readonly maxConnections?: number;
  /** Clock used for token expiry (tests). */
  readonly now?: () => number;
  /**
   * Options of the blob store kept in PostgreSQL (quota, concurrent writes…). By default the quota also counts
   * the user's documents (`user-<uuid>`).
   */
  readonly blobs?: PgBlobStoreOptions;
}

/** Capabilities of the PostgreSQL engine. */
export const POSTGRES_CAPABILITIES: BackendCapabilities = { createsDatabases: true, multiProcess: true };

/**
 * Connect, create or check the schema, and return the engine.
 *
 * @example
 * const backend = await openPostgresBackend({ url: 'postgres://soledad@127.0.0.1/soledad' });
 * await backend.documents.ensureDatabase('user-0123abcd');
 * await backend.close();
 */
export async function openPostgresBackend(options: PostgresBackendOptions): Promise<Backend> {
  const db = new PgDatabase({
    url: options.url,
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
  });
  try {
    await ensurePgSchema(db);
  } catch (err) {
    await db.close();
    if (err instanceof SoledadError) throw err;
    throw new BackendNotReadyError(`postgres_url: cannot use ${redactUrl(options.url)} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  const documents = new PgDocumentStore(db);
  const blobs = new PgBlobStore(db, {
    otherUsageBytes: async (uuid) => documents.usageBytes(`user-${uuid}`).catch((err: unknown) => {
      // A user who never synced has no documents.
      if (err instanceof DatabaseDoesNotExistError || err instanceof BadRequestError) return 0;
      throw err;
    }),
    ...options.blobs,
  });
  let closed = false;
  return {
    name: 'postgres',
    capabilities: POSTGRES_CAPABILITIES,
    documents,
    shared: new PgSharedStore(db),
    tokens: new PgTokenStore(db, options.now),
    blobs,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await blobs.close();
      await documents.close();
      await db.close();
    },
  };
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
