/**
 * Choosing a storage engine from the configuration: `backend = sqlite | postgres | couch`. Nothing else in the
 * server names an engine; routes see only the interfaces of `types.ts` and `blob-types.ts`.
 */
import path from 'node:path';
import { BadRequestError, ConfigError, DatabaseDoesNotExistError } from '../../common/errors.js';
import type { ServerConfig } from '../config.js';
import type { BlobStore } from './blob-types.js';
import { openCouchBackend } from './couch/index.js';
import { FsBlobStore } from './fs-blobs/fs-blob-store.js';
import { openPostgresBackend } from './postgres/index.js';
import { openSqliteBackend } from './sqlite/index.js';
import type { Backend } from './types.js';

/** The configuration keys engine selection reads. */
export type BackendConfig = Pick<
  ServerConfig,
  | 'backend' | 'dataDir' | 'postgresUrl' | 'postgresSchema' | 'couchUrl' | 'adminNetrc' | 'batching'
  | 'databaseSecurity' | 'quotaBytes' | 'concurrentBlobWrites'
>;

/**
 * Open the engine named by `config.backend`: the schema is created or checked now, so a wrong URL, an
 * unreachable server or an unknown schema version fails here, before the server listens.
 *
 * @example
 * const backend = await openConfiguredBackend(await readConfig());
 */
export async function openConfiguredBackend(config: BackendConfig): Promise<Backend> {
  switch (config.backend) {
    case 'sqlite':
      return openSqliteBackend({ dataDir: path.resolve(config.dataDir) });
    case 'postgres':
      // loadConfig refuses backend = postgres without a URL; the check here keeps direct callers honest.
      if (config.postgresUrl === null) throw new ConfigError('postgres_url: required with backend = postgres');
      return openPostgresBackend({
        url: config.postgresUrl,
        schema: config.postgresSchema,
        blobs: { quotaBytes: config.quotaBytes, concurrentWrites: config.concurrentBlobWrites },
      });
    case 'couch':
      return openCouchBackend({
        url: config.couchUrl,
        netrc: config.adminNetrc,
        batching: config.batching,
        security: {
          admins: { names: config.databaseSecurity.admins, roles: config.databaseSecurity.adminsRoles },
          members: { names: config.databaseSecurity.members, roles: config.databaseSecurity.membersRoles },
        },
      });
  }
}

/** The configuration keys {@link blobStoreOf} reads. */
export type BlobStoreConfig = Pick<ServerConfig, 'blobsPath' | 'concurrentBlobWrites' | 'quotaBytes'>;

/**
 * The blob store to serve with `backend`: the engine's own (PostgreSQL), or the filesystem store under
 * `blobs_path` (embedded engine; CouchDB, as in the original), whose quota also counts the user's documents.
 *
 * @example
 * const store = blobStoreOf(backend, config);
 * const app = buildUsersApp({ config, backend, blobs: blobsService(store) });
 */
export function blobStoreOf(backend: Backend, config: BlobStoreConfig): BlobStore {
  if (backend.blobs !== undefined) return backend.blobs;
  return new FsBlobStore({
    root: config.blobsPath,
    concurrentWrites: config.concurrentBlobWrites,
    quotaBytes: config.quotaBytes,
    otherUsageBytes: (uuid) => backend.documents.usageBytes(`user-${uuid}`).catch((err: unknown) => {
      // A user who never synced has no documents.
      if (err instanceof DatabaseDoesNotExistError || err instanceof BadRequestError) return 0;
      throw err;
    }),
  });
}
