/**
 * A real Users API (embedded backend, filesystem blobs) listening on 127.0.0.1 over TLS, with a fault plan, and
 * blob managers that talk to it. Everything lives in one temp directory removed by `close()`.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobManager } from '../../../src/client/blobs/blob-manager.js';
import type { BlobManagerOptions } from '../../../src/client/blobs/blob-manager.js';
import { HttpClient } from '../../../src/client/http/client.js';
import { buildUsersApp } from '../../../src/server/app.js';
import { openSqliteBackend } from '../../../src/server/backends/sqlite/index.js';
import type { Backend } from '../../../src/server/backends/types.js';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { blobsService } from '../../../src/server/routes/blobs.js';
import { testCert } from '../http/tls-fixture.js';

/** The test user. */
export const UUID = '0123456789abcdef0123456789abcdef';

/** What a fault does to a request that matches it. */
export type FaultAction = 'status-500' | 'status-503' | 'reset';

/** Decide, per request, whether to inject a fault, or return a promise to hold the request until it settles. */
export type FaultPlan = (request: FastifyRequest) => FaultAction | Promise<void> | undefined;

/** A running server and what tests need around it. */
export interface BlobServer {
  baseUrl: string;
  ca: string;
  token: string;
  store: FsBlobStore;
  backend: Backend;
  dir: string;
  /** The user's secrets (shared by every manager of this server). */
  secrets: Secrets;
  /** Replace the fault plan (default: none). */
  setFaults(plan: FaultPlan | undefined): void;
  /** Requests seen, as `METHOD path`. */
  log: string[];
  /** A new HTTP client for the test user (no 503 retries of its own, so tests control every retry). */
  http(): HttpClient;
  /** A blob manager over `<dir>/<name>/<uuid>_blobs.db`, sharing the user's secrets. */
  manager(name: string, options?: Partial<BlobManagerOptions>): BlobManager;
  close(): Promise<void>;
}

/** The user's secrets, shared by every device of a test. */
export interface Secrets {
  localKey: Buffer;
  remoteSecret: Buffer;
}

/** Fresh secrets. */
export function makeSecrets(): Secrets {
  return { localKey: randomBytes(32), remoteSecret: randomBytes(512) };
}

/**
 * Start a server.
 *
 * @example
 * const srv = await startBlobServer();
 * const blobs = srv.manager('deviceA');
 */
export async function startBlobServer(options: { quotaBytes?: number; secrets?: Secrets } = {}): Promise<BlobServer> {
  const dir = await mkdtemp(join(tmpdir(), 'soledad-clientblobs-'));
  const backend = await openSqliteBackend({ dataDir: join(dir, 'server') });
  const token = await backend.tokens.addToken(UUID);
  const quotaBytes = options.quotaBytes ?? 200 * 1024 * 1024;
  const store = new FsBlobStore({ root: join(dir, 'server', 'blobs'), concurrentWrites: 50, quotaBytes });
  const service = blobsService(store);
  const cert = await testCert();
  const app = buildUsersApp({ config: { blobs: true, createCmd: null, quotaBytes }, backend, blobs: service, https: cert });
  let plan: FaultPlan | undefined;
  const log: string[] = [];
  app.addHook('onRequest', async (request, reply) => {
    log.push(`${request.method} ${request.url.split('?')[0]}`);
    const action = plan?.(request);
    if (action instanceof Promise) {
      await action;
    } else if (action === 'status-500') {
      await reply.code(500).type('application/json').send('{"error": "error", "message": "injected"}');
    } else if (action === 'status-503') {
      await reply.code(503).type('application/json').send('{"error": "unavailable", "message": "injected"}');
    } else if (action === 'reset') {
      request.raw.socket.destroy();
    }
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const baseUrl = `https://127.0.0.1:${port}/`;
  const secrets = options.secrets ?? makeSecrets();
  const clients: HttpClient[] = [];
  const managers: BlobManager[] = [];
  const http = (): HttpClient => {
    const c = new HttpClient({ serverUrl: baseUrl, ca: cert.cert, uuid: UUID, token, retryDelaysMs: [] });
    clients.push(c);
    return c;
  };
  return {
    baseUrl,
    ca: cert.cert,
    token,
    store,
    backend,
    dir,
    secrets,
    log,
    setFaults(p) {
      plan = p;
    },
    http,
    manager(name, extra = {}) {
      const m = BlobManager.open({
        uuid: UUID,
        localPath: join(dir, name, `${UUID}_blobs.db`),
        localKey: secrets.localKey,
        remoteSecret: secrets.remoteSecret,
        http: http(),
        retrySchedule: () => 0,
        ...extra,
      });
      managers.push(m);
      return m;
    },
    async close() {
      for (const m of managers) await m.close();
      for (const c of clients) await c.destroy();
      await app.close();
      await store.close();
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Read a stream whole (tests only). */
export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}
