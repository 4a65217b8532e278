/**
 * The CouchDB engine: the original Soledad 0.9+ schema over CouchDB's HTTP API, so this server can take over an
 * existing LEAP provider's databases (and the original could take them back). Blobs are not kept in CouchDB, as
 * in the original: the server pairs this engine with the filesystem blob store under `blobs_path`.
 *
 * Tested against pouchdb-server (a CouchDB-protocol server from npm) and meant for CouchDB 2.x and 3.x (and
 * BigCouch/CouchDB 1.x clusters as LEAP ran them, which speak the same calls).
 */
import { BackendNotReadyError } from '../../../common/errors.js';
import type { Backend, BackendCapabilities } from '../types.js';
import { CouchClient, CouchError, seg } from './client.js';
import { CouchDocumentStore } from './documents.js';
import type { LeaseTiming } from './lease.js';
import { DEFAULT_COUCH_SECURITY, readOrInitConfig, type CouchSecurity } from './schema.js';
import { CouchSharedStore } from './shared.js';
import { CouchTokenStore } from './tokens.js';

/** Options of {@link openCouchBackend}. */
export interface CouchBackendOptions {
  /** Server URL (option `couch_url` / env `SOLEDAD_COUCH_URL`), credentials allowed in it. */
  readonly url: string;
  /** netrc file with credentials, used when the URL has none (option `admin_netrc`). */
  readonly netrc?: string;
  /** Prefix of every database name (default none; tests use one per run). */
  readonly prefix?: string;
  /** `_security` of databases this engine creates (section `[database-security]`); `null` writes none. */
  readonly security?: CouchSecurity | null;
  /** Write with `_bulk_docs` (option `batching`, default true). */
  readonly batching?: boolean;
  /** Check every user database's `_local/config` at start (default true, as the original does). */
  readonly checkSchemas?: boolean;
  /** Lease timing for writers. */
  readonly lease?: LeaseTiming;
  /** Clock used for token periods and expiry (tests). */
  readonly now?: () => number;
}

/** Capabilities of the CouchDB engine. */
export const COUCH_CAPABILITIES: BackendCapabilities = { createsDatabases: true, multiProcess: true };

/** A problem found by {@link checkCouchSchemas}. */
export interface CouchSchemaProblem {
  /** Database name. */
  readonly db: string;
  /** What is wrong. */
  readonly problem: string;
}

/**
 * Check every `user-*` database: a `_local/config` of schema version 1, or no documents at all. Returns the
 * problems (empty when all is well); never changes a database that has documents.
 *
 * @example
 * const problems = await checkCouchSchemas(client, '');
 */
export async function checkCouchSchemas(client: CouchClient, prefix = '', concurrency = 8): Promise<CouchSchemaProblem[]> {
  const all = (await client.request<string[]>('GET', '/_all_dbs')).body;
  const userDbs = all.filter((n) => n.startsWith(`${prefix}user-`));
  const problems: CouchSchemaProblem[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < userDbs.length) {
      const name = userDbs[next++]!;
      try {
        await readOrInitConfig(client, `/${seg(name)}`, name);
      } catch (err) {
        if (err instanceof CouchError && err.isMissingDatabase) continue; // deleted meanwhile
        problems.push({ db: name, problem: err instanceof Error ? err.message : String(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, userDbs.length) }, worker));
  return problems;
}

/**
 * Connect to CouchDB, check the user databases' schema (refusing to start on an unknown one, as the original
 * does), open or create the `shared` database, and return the engine.
 *
 * @example
 * const backend = await openCouchBackend({ url: 'http://admin:secret@127.0.0.1:5984' });
 */
export async function openCouchBackend(options: CouchBackendOptions): Promise<Backend> {
  const client = new CouchClient({ url: options.url, ...(options.netrc === undefined ? {} : { netrc: options.netrc }) });
  const prefix = options.prefix ?? '';
  const security = options.security === undefined ? DEFAULT_COUCH_SECURITY : options.security;
  try {
    try {
      await client.request('GET', '/');
    } catch (err) {
      throw new BackendNotReadyError(`couch_url: cannot reach CouchDB at ${client.displayUrl} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
    if (options.checkSchemas ?? true) {
      const problems = await checkCouchSchemas(client, prefix);
      if (problems.length > 0) {
        const first = problems[0]!;
        throw new BackendNotReadyError(`couch_url: ${problems.length} user database(s) of an unknown schema, e.g. ${first.db}: ${first.problem}`);
      }
    }
    const shared = await CouchSharedStore.open(client, prefix, security);
    const documents = new CouchDocumentStore({
      client, prefix, security, batching: options.batching ?? true,
      ...(options.lease === undefined ? {} : { lease: options.lease }),
    });
    const tokens = new CouchTokenStore(client, prefix, security, options.now);
    let closed = false;
    return {
      name: 'couch',
      capabilities: COUCH_CAPABILITIES,
      documents,
      shared,
      tokens,
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        await documents.close();
        await client.close();
      },
    };
  } catch (err) {
    await client.close();
    throw err;
  }
}
