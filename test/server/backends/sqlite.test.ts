import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteBackend } from '../../../src/server/backends/sqlite/index.js';
import { runBackendConformance } from '../../backends/conformance.js';

runBackendConformance('sqlite', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'soledad-sqlite-'));
  // A tiny handle cache so eviction and reopening are exercised too.
  const backend = await openSqliteBackend({ dataDir, maxOpenDatabases: 1 });
  return {
    backend,
    teardown: async () => {
      await backend.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
