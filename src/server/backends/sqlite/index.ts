/**
 * The embedded engine: SQLite files under one data directory, zero set-up.
 *
 * Layout: `<data_dir>/users/user-<uuid>.db` (one per user), `<data_dir>/shared.db`, `<data_dir>/tokens.db`.
 * One server process owns the directory (writers are serialized in-process).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Backend, BackendCapabilities } from '../types.js';
import { SqliteDocumentStore } from './documents.js';
import { SqliteSharedStore } from './shared.js';
import { SqliteTokenStore } from './tokens.js';

/** Options of {@link openSqliteBackend}. */
export interface SqliteBackendOptions {
  /** Directory holding every file of the engine (created if missing, mode 0700). */
  readonly dataDir: string;
  /**
   * Most user databases kept open at once, default 128 (each holds a reader and, between uploads, a writer
   * connection: at most 6 file descriptors). Fewer than the users syncing at the same time makes every sync
   * reopen its database.
   */
  readonly maxOpenDatabases?: number;
  /** Clock used for token expiry (tests). */
  readonly now?: () => number;
}

/** Capabilities of the embedded engine. */
export const SQLITE_CAPABILITIES: BackendCapabilities = { createsDatabases: true, multiProcess: false };

/**
 * Open the embedded engine.
 *
 * @example
 * const backend = await openSqliteBackend({ dataDir: './data' });
 * await backend.documents.ensureDatabase('user-0123abcd');
 * await backend.close();
 */
export async function openSqliteBackend(options: SqliteBackendOptions): Promise<Backend> {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const documents = new SqliteDocumentStore({ dir: path.join(options.dataDir, 'users'), maxOpen: options.maxOpenDatabases ?? 128 });
  const shared = new SqliteSharedStore(path.join(options.dataDir, 'shared.db'));
  const tokens = new SqliteTokenStore(path.join(options.dataDir, 'tokens.db'), options.now);
  let closed = false;
  return {
    name: 'sqlite',
    capabilities: SQLITE_CAPABILITIES,
    documents,
    shared,
    tokens,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      documents.close();
      shared.close();
      tokens.close();
      await documents.settled();
    },
  };
}
