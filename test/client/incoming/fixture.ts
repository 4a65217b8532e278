/**
 * An in-process server for the incoming box's client tests: the Users API over TLS and the Services API on
 * 127.0.0.1, one filesystem blob store and one {@link IncomingService} between them (as `startServer` wires them),
 * a settable server clock, and helpers to deliver messages and to open replicas.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { HttpClient } from '../../../src/client/http/client.js';
import { IncomingBox, type IncomingBoxOptions } from '../../../src/client/incoming/incoming-box.js';
import { encodeTokenAuthorization } from '../../../src/common/protocol/auth.js';
import { buildServicesApp, buildUsersApp } from '../../../src/server/app.js';
import { parseServicesTokens } from '../../../src/server/auth/services-tokens.js';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { openSqliteBackend } from '../../../src/server/backends/sqlite/index.js';
import type { Backend } from '../../../src/server/backends/types.js';
import { IncomingService } from '../../../src/server/incoming/service.js';
import { blobsService } from '../../../src/server/routes/blobs.js';
import { testCert } from '../http/tls-fixture.js';

/** The test user. */
export const UUID = '0123456789abcdef0123456789abcdef';

/** A running server pair. */
export interface IncomingServer {
  baseUrl: string;
  servicesUrl: string;
  ca: string;
  token: string;
  store: FsBlobStore;
  incoming: IncomingService;
  backend: Backend;
  /** Move the server's clock forward. */
  advance(ms: number): void;
  /** Deliver a payload as the trusted app `incoming`; resolves with the HTTP status. */
  deliver(id: string, payload: Buffer | string, namespace?: string): Promise<number>;
  /** An HTTP client of the test user. */
  http(): HttpClient;
  /** A replica: an {@link IncomingBox} with its own replica id and a counting `syncDocuments`. */
  replica(name: string, options?: Partial<IncomingBoxOptions>): Replica;
  close(): Promise<void>;
}

/** A replica under test. */
export interface Replica {
  box: IncomingBox;
  /** Times `syncDocuments` was called. */
  syncs: number;
  /** Make the next `syncDocuments` calls fail (until set back to `undefined`). */
  syncError: Error | undefined;
}

/**
 * Start the pair.
 *
 * @example
 * const srv = await startIncomingServer({ processingThresholdMs: 60_000 });
 * await srv.deliver('m1', 'payload');
 */
export async function startIncomingServer(options: { processingThresholdMs?: number; maxFailures?: number } = {}): Promise<IncomingServer> {
  const dir = await mkdtemp(join(tmpdir(), 'soledad-client-incoming-'));
  const backend = await openSqliteBackend({ dataDir: join(dir, 'server') });
  const token = await backend.tokens.addToken(UUID);
  const store = new FsBlobStore({ root: join(dir, 'server', 'blobs'), quotaBytes: 1 << 30 });
  let offset = 0;
  const incoming = new IncomingService({
    store,
    processingThresholdMs: options.processingThresholdMs ?? 60_000,
    maxFailures: options.maxFailures ?? 3,
    now: () => Date.now() + offset,
  });
  const cert = await testCert();
  const users = buildUsersApp({
    config: { blobs: true, createCmd: null, quotaBytes: 1 << 30 }, backend, blobs: blobsService(store, { incoming }), https: cert,
  });
  const services: FastifyInstance = buildServicesApp({ servicesTokens: parseServicesTokens('incoming:s3cret\n'), incoming });
  await users.listen({ host: '127.0.0.1', port: 0 });
  await services.listen({ host: '127.0.0.1', port: 0 });
  const baseUrl = `https://127.0.0.1:${(users.server.address() as { port: number }).port}/`;
  const servicesUrl = `http://127.0.0.1:${(services.server.address() as { port: number }).port}/`;
  const clients: HttpClient[] = [];
  const boxes: IncomingBox[] = [];
  const http = (): HttpClient => {
    const c = new HttpClient({ serverUrl: baseUrl, ca: cert.cert, uuid: UUID, token, retryDelaysMs: [] });
    clients.push(c);
    return c;
  };
  const mx = encodeTokenAuthorization('incoming', 's3cret');
  return {
    baseUrl,
    servicesUrl,
    ca: cert.cert,
    token,
    store,
    incoming,
    backend,
    advance(ms) {
      offset += ms;
    },
    async deliver(id, payload, namespace) {
      const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
      const res = await request(`${servicesUrl}incoming/${UUID}/${id}${namespace === undefined ? '' : `?namespace=${namespace}`}`, {
        method: 'PUT', body, headers: { authorization: mx, 'content-length': String(body.length) },
      });
      await res.body.dump();
      return res.statusCode;
    },
    http,
    replica(name, extra = {}) {
      const r: Replica = { box: undefined as unknown as IncomingBox, syncs: 0, syncError: undefined };
      r.box = new IncomingBox({
        http: http(),
        uuid: UUID,
        replicaId: `${name}${randomBytes(4).toString('hex')}`,
        syncDocuments: async () => {
          r.syncs += 1;
          if (r.syncError !== undefined) throw r.syncError;
        },
        ...extra,
      });
      boxes.push(r.box);
      return r;
    },
    async close() {
      for (const b of boxes) await b.close().catch(() => undefined);
      for (const c of clients) await c.destroy();
      await services.close();
      await users.close();
      await store.close();
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Wait until `check()` is true (polling), or fail after `ms`. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
