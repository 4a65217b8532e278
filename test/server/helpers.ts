/** Shared set-up of the server tests: a temp data dir, the embedded backend, the Users API and a few tokens. */
import type { FastifyInstance } from 'fastify';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { buildUsersApp, type UsersAppDeps } from '../../src/server/app.js';
import { openSqliteBackend } from '../../src/server/backends/sqlite/index.js';
import type { Backend } from '../../src/server/backends/types.js';

/** Two users. */
export const ALICE = '0a11ce0000000000000000000000a11c';
export const BOB = '0b0b000000000000000000000000b0b0';

/** A running Users API over a fresh backend. */
export interface TestServer {
  app: FastifyInstance;
  backend: Backend;
  dataDir: string;
  /** `Authorization` values. */
  auth: { alice: string; bob: string; aliceExpired: string; aliceWrongToken: string; bobTokenAsAlice: string };
  close(): Promise<void>;
}

/** Build a test server; `overrides` replace parts of the app's dependencies. */
export async function makeServer(overrides: Partial<UsersAppDeps> & { quotaBytes?: number; createCmd?: string | null } = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'soledad-server-'));
  const backend = await openSqliteBackend({ dataDir });
  const aliceToken = await backend.tokens.addToken(ALICE);
  const bobToken = await backend.tokens.addToken(BOB);
  const expired = await backend.tokens.addToken(ALICE, { expiresAt: new Date(Date.now() - 1000) });
  const { quotaBytes, createCmd, ...deps } = overrides;
  const app = buildUsersApp({
    config: { blobs: true, createCmd: createCmd ?? null, quotaBytes: quotaBytes ?? 200 * 1024 * 1024 },
    backend,
    ...deps,
  });
  await app.ready();
  return {
    app,
    backend,
    dataDir,
    auth: {
      alice: encodeTokenAuthorization(ALICE, aliceToken),
      bob: encodeTokenAuthorization(BOB, bobToken),
      aliceExpired: encodeTokenAuthorization(ALICE, expired),
      aliceWrongToken: encodeTokenAuthorization(ALICE, aliceToken.slice(0, -2) + 'xx'),
      bobTokenAsAlice: encodeTokenAuthorization(ALICE, bobToken),
    },
    async close() {
      await app.close();
      await backend.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Parse a JSON error body `{"error": …}\r\n`. */
export function errorOf(body: string): string | undefined {
  return (JSON.parse(body) as { error?: string }).error;
}
