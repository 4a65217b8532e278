/** The incoming box's guarantees on the filesystem blob engine (one server process: one store instance). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { runIncomingStoreSuite } from './store-suite.js';

runIncomingStoreSuite('fs', async (quotaBytes) => {
  const root = await mkdtemp(join(tmpdir(), 'soledad-incoming-fs-'));
  const store = new FsBlobStore({ root, ...(quotaBytes === undefined ? {} : { quotaBytes }) });
  return {
    stores: [store, store],
    teardown: async () => {
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});
