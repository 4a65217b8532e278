import { PgBlobStore } from '../../../src/server/backends/postgres/blobs.js';
import { PgDatabase } from '../../../src/server/backends/postgres/connection.js';
import { ensurePgSchema } from '../../../src/server/backends/postgres/schema.js';
import { runBackendConformance } from '../../backends/conformance.js';
import { dropPgSchema, engineSelected, freshPgSchema, openTestBackend, postgresTestUrl } from '../../backends/engines.js';
import { runBlobStoreConformance } from '../blobs/blob-store-conformance.js';

// Selected by SOLEDAD_TEST_BACKENDS (default: every engine); selected but unreachable fails, never skips.
if (engineSelected('postgres')) {
  runBackendConformance('postgres', () => openTestBackend('postgres'));

  // Default chunks, and 7-byte chunks so that every range, tag and stream crosses chunk boundaries.
  for (const chunkBytes of [undefined, 7]) {
    runBlobStoreConformance(chunkBytes === undefined ? 'postgres' : `postgres (${chunkBytes}-byte chunks)`, async (opts) => {
      const url = postgresTestUrl();
      const schema = freshPgSchema();
      const db = new PgDatabase({ url, schema });
      await ensurePgSchema(db);
      return {
        store: new PgBlobStore(db, { ...opts, ...(chunkBytes === undefined ? {} : { chunkBytes }) }),
        teardown: async () => {
          await db.close();
          await dropPgSchema(url, schema);
        },
      };
    });
  }
}
