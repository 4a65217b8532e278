/**
 * Set-up of the incoming box's in-process tests: one filesystem blob store shared by the Users API (listing,
 * reservations) and the Services API (delivery), as `startServer` wires them, with a settable clock.
 */
import type { FastifyInstance } from 'fastify';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTokenAuthorization } from '../../../src/common/protocol/auth.js';
import { buildServicesApp } from '../../../src/server/app.js';
import { parseServicesTokens } from '../../../src/server/auth/services-tokens.js';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { IncomingService, type IncomingServiceOptions } from '../../../src/server/incoming/service.js';
import { blobsService } from '../../../src/server/routes/blobs.js';
import { makeServer, type TestServer } from '../helpers.js';

/** Services tokens of the tests: `incoming` (default namespaces) and `calendar` (configured for CAL only). */
export const SERVICES_TOKENS = 'incoming:s3cret\n# a comment\n\ncalendar:c4l-token\n';

/** A running pair of apps over one store. */
export interface IncomingApps {
  users: TestServer;
  services: FastifyInstance;
  store: FsBlobStore;
  incoming: IncomingService;
  root: string;
  /** `Authorization` of the `incoming` service. */
  mx: string;
  /** `Authorization` of the `calendar` service. */
  cal: string;
  /** Move the clock forward. */
  advance(ms: number): void;
  close(): Promise<void>;
}

/** Build both apps; `options` go to the {@link IncomingService}, `quotaBytes` to the store. */
export async function makeIncomingApps(
  options: Omit<IncomingServiceOptions, 'store' | 'now'> & { quotaBytes?: number } = {},
): Promise<IncomingApps> {
  const sandbox = await mkdtemp(join(tmpdir(), 'soledad-incoming-'));
  const root = join(sandbox, 'blobs');
  const { quotaBytes, ...serviceOptions } = options;
  const store = new FsBlobStore({ root, ...(quotaBytes === undefined ? {} : { quotaBytes }) });
  let now = Date.now();
  const incoming = new IncomingService({
    store,
    namespaces: new Map([['calendar', ['CAL']]]),
    ...serviceOptions,
    now: () => now,
  });
  const users = await makeServer({ blobs: blobsService(store, { incoming }) });
  const services = buildServicesApp({ servicesTokens: parseServicesTokens(SERVICES_TOKENS), incoming });
  await services.ready();
  return {
    users,
    services,
    store,
    incoming,
    root,
    mx: encodeTokenAuthorization('incoming', 's3cret'),
    cal: encodeTokenAuthorization('calendar', 'c4l-token'),
    advance(ms) {
      now += ms;
    },
    async close() {
      await services.close();
      await users.close();
      await store.close();
      await rm(sandbox, { recursive: true, force: true });
    },
  };
}
