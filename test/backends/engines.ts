/**
 * The engines the tests run against, kysely's DIALECTS style: `SOLEDAD_TEST_BACKENDS` (comma-separated, default
 * every engine CI starts: `sqlite,postgres,couch`) picks them, and each one opens a fresh, empty, isolated
 * backend (a temporary directory, a PostgreSQL schema, or a CouchDB database-name prefix) and removes it again.
 *
 * A listed engine whose server is not reachable FAILS its tests with a message saying how to start it: it is never
 * skipped. `scripts/test-services.sh run npm test` starts PostgreSQL and a CouchDB-protocol server and exports
 * `SOLEDAD_TEST_POSTGRES_URL` and `SOLEDAD_TEST_COUCH_URL`.
 *
 * @example
 * for (const engine of testEngines()) {
 *   it(`syncs on ${engine}`, async () => {
 *     const { backend, teardown } = await openTestBackend(engine);
 *     try { ... } finally { await teardown(); }
 *   });
 * }
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openCouchBackend } from '../../src/server/backends/couch/index.js';
import { openPostgresBackend } from '../../src/server/backends/postgres/index.js';
import { openSqliteBackend } from '../../src/server/backends/sqlite/index.js';
import type { Backend, StoredDoc } from '../../src/server/backends/types.js';

/** Engine names the tests know. */
export type TestEngine = 'sqlite' | 'postgres' | 'couch';

const ALL: readonly TestEngine[] = ['sqlite', 'postgres', 'couch'];

/** The engines selected by `SOLEDAD_TEST_BACKENDS` (default: all). An unknown name is an error. */
export function testEngines(env: Readonly<Record<string, string | undefined>> = process.env): TestEngine[] {
  const raw = env['SOLEDAD_TEST_BACKENDS']?.trim();
  if (raw === undefined || raw === '') return [...ALL];
  const names = raw.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  for (const n of names) {
    if (!(ALL as readonly string[]).includes(n)) throw new Error(`SOLEDAD_TEST_BACKENDS: unknown engine "${n}" (known: ${ALL.join(', ')})`);
  }
  return names as TestEngine[];
}

/** Whether `engine` is selected by `SOLEDAD_TEST_BACKENDS`. */
export function engineSelected(engine: TestEngine): boolean {
  return testEngines().includes(engine);
}

function required(name: string): string {
  const v = process.env[name]?.trim();
  if (v === undefined || v === '') {
    throw new Error(`${name} is not set: start the test services with "bash scripts/test-services.sh run npm test" ` +
      '(or remove the engine from SOLEDAD_TEST_BACKENDS)');
  }
  return v;
}

/** `SOLEDAD_TEST_POSTGRES_URL`, or an error saying how to start PostgreSQL. */
export function postgresTestUrl(): string {
  return required('SOLEDAD_TEST_POSTGRES_URL');
}

/** `SOLEDAD_TEST_COUCH_URL`, or an error saying how to start a CouchDB-protocol server. */
export function couchTestUrl(): string {
  return required('SOLEDAD_TEST_COUCH_URL');
}

/** A PostgreSQL schema name no other test uses. */
export function freshPgSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

/** Drop a test schema and everything in it. */
export async function dropPgSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** A CouchDB database-name prefix no other test uses (CouchDB names start with a lowercase letter). */
export function freshCouchPrefix(): string {
  return `t${randomBytes(5).toString('hex')}_`;
}

/** A fresh backend and how to dispose of it (and of everything it stored). */
export interface TestBackend {
  /** The backend. */
  backend: Backend;
  /** Close it and remove its data. */
  teardown: () => Promise<void>;
}

/** Options passed through to the engine. */
export interface TestBackendOptions {
  /** Clock for token expiry. */
  now?: () => number;
}

/** Open a fresh, empty backend of `engine`. */
export async function openTestBackend(engine: TestEngine, options: TestBackendOptions = {}): Promise<TestBackend> {
  const extra = options.now === undefined ? {} : { now: options.now };
  switch (engine) {
    case 'sqlite': {
      const dataDir = await mkdtemp(join(tmpdir(), 'soledad-sqlite-'));
      const backend = await openSqliteBackend({ dataDir, ...extra });
      return { backend, teardown: async () => { await backend.close(); await rm(dataDir, { recursive: true, force: true }); } };
    }
    case 'postgres': {
      const url = postgresTestUrl();
      const schema = freshPgSchema();
      const backend = await openPostgresBackend({ url, schema, ...extra });
      return { backend, teardown: async () => { await backend.close(); await dropPgSchema(url, schema); } };
    }
    case 'couch': {
      const url = couchTestUrl();
      const prefix = freshCouchPrefix();
      const backend = await openCouchBackend({ url, prefix, ...extra });
      return {
        backend,
        teardown: async () => {
          await backend.close();
          await dropCouchPrefix(url, prefix);
        },
      };
    }
  }
}

/**
 * A request to the CouchDB server at `url` (credentials in the URL, as a real CouchDB needs them, are sent as Basic
 * authorization: `fetch` refuses URLs that carry them).
 *
 * @example
 * const res = await couchFetch(couchTestUrl(), '/_all_dbs');
 */
export function couchFetch(url: string, path: string, init: RequestInit = {}): Promise<Response> {
  const u = new URL(url);
  const headers = new Headers(init.headers);
  if (u.username !== '') {
    const creds = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
    headers.set('authorization', `Basic ${Buffer.from(creds).toString('base64')}`);
  }
  u.username = '';
  u.password = '';
  return fetch(`${u.toString().replace(/\/+$/, '')}${path}`, { ...init, headers });
}

/** Delete every CouchDB database whose name starts with `prefix`. */
export async function dropCouchPrefix(url: string, prefix: string): Promise<void> {
  const res = await couchFetch(url, '/_all_dbs');
  const names = (await res.json()) as string[];
  for (const name of names.filter((n) => n.startsWith(prefix))) {
    await (await couchFetch(url, `/${encodeURIComponent(name)}`, { method: 'DELETE' })).arrayBuffer();
  }
}

/** `[soledad-server]` lines selecting an engine for a server process, and how to remove what it stored. */
export interface ServerEngineConfig {
  /** Lines to append to the server's `[soledad-server]` section. */
  config: string;
  /** Remove the engine's data (the PostgreSQL schema; CouchDB user databases live in the test server's memory). */
  teardown: () => Promise<void>;
  /**
   * Open, in this process, the store a server process with this configuration and `data_dir` uses: how a test
   * looks at what the server stored. Close it when done.
   */
  open: (dataDir: string) => Promise<Backend>;
}

/**
 * Configuration for a `soledad-server` process on `engine`. Processes given the same result share one store
 * (how the multi-process test puts two servers on one PostgreSQL).
 *
 * @example
 * const engine = await serverEngineConfig('postgres');
 * const server = await startServerProcess(engine.config);
 */
export async function serverEngineConfig(engine: TestEngine): Promise<ServerEngineConfig> {
  switch (engine) {
    case 'sqlite':
      return { config: '', teardown: async () => undefined, open: (dataDir) => openSqliteBackend({ dataDir }) };
    case 'postgres': {
      const url = postgresTestUrl();
      const schema = freshPgSchema();
      return {
        config: `backend = postgres\npostgres_url = ${url}\npostgres_schema = ${schema}\n`,
        teardown: () => dropPgSchema(url, schema),
        open: () => openPostgresBackend({ url, schema }),
      };
    }
    case 'couch': {
      const url = couchTestUrl();
      return {
        config: `backend = couch\ncouch_url = ${url}\n`,
        teardown: async () => undefined,
        open: () => openCouchBackend({ url, checkSchemas: false }),
      };
    }
  }
}

/**
 * Every document of a user's database as the engine stores it (ciphertext, revisions, tombstones), in id order:
 * how a test looks at what a server stored.
 *
 * @example
 * const docs = await storedUserDocs(await engine.open(server.dataDir), uuid);
 */
export async function storedUserDocs(backend: Backend, uuid: string): Promise<StoredDoc[]> {
  const db = `user-${uuid}`;
  const { changes } = await backend.documents.whatsChanged(db, 0);
  const docs: StoredDoc[] = [];
  for await (const d of backend.documents.getDocs(db, changes.map((c) => c.id))) docs.push(d);
  return docs.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}
