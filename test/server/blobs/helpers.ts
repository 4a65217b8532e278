/** Shared set-up of the blob route tests: a fastify app with the blob routes over a fresh filesystem store. */
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import type { FsBlobStoreOptions } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { registerBlobRoutes } from '../../../src/server/routes/blobs.js';

/** A running blob app for one test. */
export interface BlobApp {
  app: FastifyInstance;
  store: FsBlobStore;
  /** The store's root (inside {@link BlobApp.sandbox}). */
  root: string;
  /** A temp directory that holds the root and nothing else a test did not create. */
  sandbox: string;
  close(): Promise<void>;
}

/** Build the blob routes on a bare fastify instance (optionally with TLS), over a fresh store. */
export async function makeBlobApp(
  options: Omit<FsBlobStoreOptions, 'root'> = {},
  https?: { key: string; cert: string },
): Promise<BlobApp> {
  const sandbox = await mkdtemp(join(tmpdir(), 'soledad-blobroutes-'));
  const root = join(sandbox, 'blobs');
  const store = new FsBlobStore({ root, ...options });
  const app = https === undefined ? Fastify() : Fastify({ https });
  registerBlobRoutes(app, { store });
  await app.ready();
  return {
    app,
    store,
    root,
    sandbox,
    async close() {
      await app.close();
      await store.close();
      await rm(sandbox, { recursive: true, force: true });
    },
  };
}

/** URL-safe base64 with padding. */
export function b64u(data: Buffer): string {
  return data.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}
