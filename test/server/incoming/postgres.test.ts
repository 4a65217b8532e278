/**
 * The incoming box's guarantees on PostgreSQL, with two stores on two connection pools over one schema: what two
 * server processes sharing a cluster see. Selected by SOLEDAD_TEST_BACKENDS; selected but unreachable fails.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PgBlobStore } from '../../../src/server/backends/postgres/blobs.js';
import { PgDatabase } from '../../../src/server/backends/postgres/connection.js';
import { ensurePgSchema, PG_SCHEMA_VERSION, readPgSchemaVersion } from '../../../src/server/backends/postgres/schema.js';
import { dropPgSchema, engineSelected, freshPgSchema, postgresTestUrl } from '../../backends/engines.js';
import { runIncomingStoreSuite } from './store-suite.js';

if (engineSelected('postgres')) {
  runIncomingStoreSuite('postgres (two pools)', async (quotaBytes) => {
    const url = postgresTestUrl();
    const schema = freshPgSchema();
    const dbs = [new PgDatabase({ url, schema }), new PgDatabase({ url, schema })] as const;
    await ensurePgSchema(dbs[0]);
    const options = quotaBytes === undefined ? {} : { quotaBytes };
    const stores: [PgBlobStore, PgBlobStore] = [new PgBlobStore(dbs[0], options), new PgBlobStore(dbs[1], options)];
    return {
      stores,
      teardown: async () => {
        for (const store of stores) await store.close();
        for (const db of dbs) await db.close();
        await dropPgSchema(url, schema);
      },
    };
  });
}

if (engineSelected('postgres')) {
  describe('PostgreSQL schema 1 → 2', () => {
    it('adds the metadata column to an existing version-1 schema at start-up, keeping the blobs', async () => {
      const url = postgresTestUrl();
      const schema = freshPgSchema();
      const db = new PgDatabase({ url, schema });
      try {
        await ensurePgSchema(db);
        const store = new PgBlobStore(db);
        await store.put({ user: 'u1', namespace: 'MX', blobId: 'old' }, (async function* () { yield Buffer.from('x'); })(), { flags: ['PENDING'] });
        await store.close();
        // What a version-1 deployment looks like.
        await db.query('ALTER TABLE blobs DROP COLUMN meta');
        await db.query("UPDATE soledad_meta SET value = '1' WHERE key = 'schema_version'");
        assert.equal(await readPgSchemaVersion(db), '1');
        const state = await ensurePgSchema(db);
        assert.deepEqual(state, { created: false, version: PG_SCHEMA_VERSION });
        assert.equal(await readPgSchemaVersion(db), '2');
        const again = new PgBlobStore(db);
        const after = await again.updateState({ user: 'u1', namespace: 'MX', blobId: 'old' }, () => ({ flags: ['PROCESSING'], meta: { r: 1 } }));
        assert.deepEqual(after, { flags: ['PROCESSING'], meta: { r: 1 } });
        await again.close();
        // An unknown version still refuses to start.
        await db.query("UPDATE soledad_meta SET value = '99' WHERE key = 'schema_version'");
        await assert.rejects(ensurePgSchema(db), /schema version "99"/);
      } finally {
        await db.close();
        await dropPgSchema(url, schema);
      }
    });
  });
}
