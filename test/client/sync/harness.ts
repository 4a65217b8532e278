/**
 * Real parts for the sync tests: the real Users API over TLS on 127.0.0.1 with the embedded SQLite backend in a
 * temp directory, real encrypted local databases, real crypto. Nothing is mocked.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3-multiple-ciphers';
import type { FastifyInstance } from 'fastify';
import { buildUsersApp } from '../../../src/server/app.js';
import { openSqliteBackend } from '../../../src/server/backends/sqlite/index.js';
import type { Backend } from '../../../src/server/backends/types.js';
import { LocalDatabase } from '../../../src/client/db/database.js';
import { HttpClient, type HttpClientOptions } from '../../../src/client/http/client.js';
import { Synchronizer, type SynchronizerOptions } from '../../../src/client/sync/synchronizer.js';
import { testCert } from '../http/tls-fixture.js';

/** A running server over a data directory that survives restarts. */
export interface TestServer {
  /** `https://127.0.0.1:<port>/`. */
  readonly url: string;
  readonly port: number;
  readonly certFile: string;
  readonly dataDir: string;
  backend: Backend;
  app: FastifyInstance;
  /** Mint a token for `uuid`. */
  token(uuid: string): Promise<string>;
  /** The user's database file of the embedded backend. */
  userDbFile(uuid: string): string;
  /** Kill: cut every connection at once and stop listening (in-flight requests die mid-stream). */
  kill(): Promise<void>;
  /** Start again on the same port over the same data. */
  start(): Promise<void>;
  /** Stop for good and remove the data. */
  close(): Promise<void>;
}

/** Start the real Users API over TLS on 127.0.0.1 (port 0 unless given). */
export async function startTestServer(): Promise<TestServer> {
  const cert = await testCert();
  const dataDir = mkdtempSync(join(tmpdir(), 'soledad-sync-server-'));
  let port = 0;
  let running = false;
  const server = {
    url: '',
    port: 0,
    certFile: cert.certFile,
    dataDir,
    backend: undefined as unknown as Backend,
    app: undefined as unknown as FastifyInstance,
    async token(uuid: string) {
      return server.backend.tokens.addToken(uuid);
    },
    userDbFile(uuid: string) {
      return join(dataDir, 'users', `user-${uuid}.db`);
    },
    async start() {
      server.backend = await openSqliteBackend({ dataDir });
      server.app = buildUsersApp({
        config: { blobs: false, createCmd: null, quotaBytes: 1024 * 1024 * 1024 },
        backend: server.backend,
        https: { key: cert.key, cert: cert.cert },
      });
      await server.app.listen({ port, host: '127.0.0.1' });
      port = (server.app.server.address() as AddressInfo).port;
      server.port = port;
      server.url = `https://127.0.0.1:${port}/`;
      running = true;
    },
    async kill() {
      if (!running) return;
      running = false;
      server.app.server.closeAllConnections();
      const closing = server.app.close();
      server.app.server.closeAllConnections();
      await closing;
      await server.backend.close();
    },
    async close() {
      await server.kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

/** Open the server's file of a user database beside the server (WAL): what a malicious operator can do. */
export function openServerStore(server: TestServer, uuid: string): Database.Database {
  const db = new Database(server.userDbFile(uuid));
  db.pragma('busy_timeout = 5000');
  return db;
}

/** One stored server row. */
export interface ServerRow {
  doc_id: string;
  rev: string;
  content: string | null;
  generation: number;
}

/** Every document the server stores for a user. */
export function serverDocs(server: TestServer, uuid: string): ServerRow[] {
  const db = openServerStore(server, uuid);
  try {
    return db.prepare('SELECT doc_id, rev, content, generation FROM documents ORDER BY doc_id').all() as ServerRow[];
  } finally {
    db.close();
  }
}

/**
 * Rewrite a stored document as a misbehaving server would and make it a new change (new generation in the
 * transaction log), so that replicas download it again.
 */
export function rewriteServerDoc(server: TestServer, uuid: string, docId: string, rev: string, content: string | null): void {
  const db = openServerStore(server, uuid);
  try {
    db.transaction(() => {
      const last = db.prepare('SELECT MAX(generation) AS g FROM transaction_log').get() as { g: number | null };
      const gen = (last.g ?? 0) + 1;
      db.prepare('INSERT INTO transaction_log (generation, doc_id, transaction_id) VALUES (?, ?, ?)')
        .run(gen, docId, `T-${randomBytes(16).toString('hex')}`);
      db.prepare('UPDATE documents SET rev = ?, content = ?, generation = ? WHERE doc_id = ?').run(rev, content, gen, docId);
    })();
  } finally {
    db.close();
  }
}

/** A local replica syncing with the test server. */
export interface Replica {
  db: LocalDatabase;
  http: HttpClient;
  sync: Synchronizer;
  path: string;
  close(): Promise<void>;
}

/** Shared per-user settings: the uuid, a token and the remote secret every device of the user has. */
export interface TestUser {
  uuid: string;
  token: string;
  remoteSecret: Buffer;
}

/** A new user with a token on `server`. */
export async function makeUser(server: TestServer): Promise<TestUser> {
  const uuid = randomBytes(16).toString('hex');
  return { uuid, token: await server.token(uuid), remoteSecret: randomBytes(512) };
}

const tempDirs: string[] = [];

/** A fresh encrypted local database and a synchronizer for `user` (a new "device"). */
export function makeReplica(
  server: TestServer,
  user: TestUser,
  opts: {
    url?: string;
    http?: Partial<HttpClientOptions>;
    sync?: Partial<Omit<SynchronizerOptions, 'db' | 'http' | 'uuid' | 'remoteSecret'>>;
    path?: string;
    key?: Buffer;
  } = {},
): Replica {
  let path = opts.path;
  if (path === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'soledad-sync-client-'));
    tempDirs.push(dir);
    path = join(dir, 'soledad.u1db');
  }
  const db = LocalDatabase.open({ path, encryption: { mode: 'encrypted', key: opts.key ?? randomBytes(32) } });
  const http = new HttpClient({
    serverUrl: opts.url ?? server.url,
    certFile: server.certFile,
    uuid: user.uuid,
    token: user.token,
    retryDelaysMs: [],
    ...opts.http,
  });
  // sync-worker.test.ts runs the sync suite again with every download decoded on the worker thread.
  const worker = process.env.SOLEDAD_TEST_DECODE_IN_WORKER === '1' ? { decodeInWorkerFrom: 0 } : {};
  const sync = new Synchronizer({ db, http, uuid: user.uuid, remoteSecret: user.remoteSecret, ...worker, ...opts.sync });
  return {
    db,
    http,
    sync,
    path,
    async close() {
      await http.destroy();
      db.close();
    },
  };
}

/** Remove the temp directories of every replica made so far. */
export function cleanupReplicas(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** id → { rev, content } of every document (tombstones included), for comparing replicas. */
export function snapshot(db: LocalDatabase): Map<string, { rev: string | null; content: unknown; conflicts: boolean }> {
  const out = new Map<string, { rev: string | null; content: unknown; conflicts: boolean }>();
  for (const d of db.getAllDocs(true).docs) out.set(d.docId, { rev: d.rev, content: d.content, conflicts: d.hasConflicts });
  return out;
}
