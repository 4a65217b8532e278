/**
 * `soledad/server`: the Soledad 0.10-compatible sync server as a library.
 *
 * Most operators run the `soledad-server` command; this entry is for embedding the server in another process,
 * for tests, and for writing storage engines.
 *
 * @example
 * import { readConfig, startServer } from 'soledad/server';
 *
 * const server = await startServer({ config: await readConfig(process.env) });
 * console.log(server.usersUrl, server.tls.fingerprint256);
 * process.on('SIGTERM', () => void server.close());
 *
 * @example
 * // In-process, for tests: no listener, requests through fastify's inject().
 * import { buildUsersApp, loadConfig, openBackend } from 'soledad/server';
 *
 * const config = loadConfig({ SOLEDAD_DATA_DIR: dir });
 * const app = buildUsersApp({ config, backend: await openBackend(config) });
 * const res = await app.inject({ method: 'GET', url: '/' });
 */

// ---- running a server ----
export { startServer, openBackend, createLogger, loadOrCreateTls, installSignalHandlers } from './main.js';
export { buildUsersApp, buildServicesApp } from './app.js';
export { loadConfig, readConfig, DEFAULT_CONFIG_FILE, CONFIG_SECTION, AVAILABLE_BACKENDS } from './config.js';
export { SERVER_VERSION } from './version.js';
export { IncomingService, decideTransition, DEFAULT_PROCESSING_THRESHOLD_MS, DEFAULT_MAX_FAILURES } from './incoming/service.js';
export { DEFAULT_LIMITS } from './limits.js';
export { registerIncomingRoutes } from './routes/incoming.js';

// ---- authentication helpers ----
export { parseServicesTokens, readServicesTokens } from './auth/services-tokens.js';
export { USERS_API_ROUTES, SERVICES_API_ROUTES, ANONYMOUS_PATHS, matchRoute } from './auth/whitelist.js';
export { tokenHash, isValidUuid, isValidUserDbName } from './backends/common.js';

// ---- writing a storage engine ----
export { openSqliteBackend } from './backends/sqlite/index.js';
export { decidePutIfNewer, decidePutDoc, decideDeleteDoc, validateSource, validateGenAndTransId, KeyedMutex } from './backends/common.js';
export type { KnownGeneration } from '../common/u1db/sync-source.js';

export type { StartServerOptions, RunningServer, TlsSetup } from './main.js';
export type { IncomingServiceOptions, TransitionRequest } from './incoming/service.js';
export type { UsersAppDeps, ServicesAppDeps, BlobsService, TlsMaterial } from './app.js';
export type { ServerConfig, BackendName, DatabaseSecurity } from './config.js';
export type { UsersApiLimits } from './limits.js';
export type { SeenIdsCache } from './seen-ids.js';
export type { CreateCmdResult } from './create-cmd.js';
export type { DeliveryResult, TransitionRules } from './incoming/service.js';
export type { IncomingTransition } from '../common/protocol/incoming.js';
export type {
  BlobStore, BlobRef, BlobListOptions, BlobState, BlobHandle, BlobPutOptions, BlobPutResult, BlobStat, ByteRange,
  BlobCountOptions, BlobUsage, QuotaReservation, BlobStoreStats,
} from './backends/blob-types.js';
export type { PutDecision, CurrentDoc } from './backends/common.js';
export type { ServicesTokens } from './auth/services-tokens.js';
export type { RouteRule, RouteMatch } from './auth/whitelist.js';
export type { SqliteBackendOptions } from './backends/sqlite/index.js';
export type {
  Backend,
  BackendCapabilities,
  DocumentStore,
  SharedStore,
  TokenStore,
  UploadSession,
  IncomingDoc,
  PutState,
  PutOutcome,
  PutBatchResult,
  GenerationInfo,
  SyncInfoRecord,
  Change,
  ChangesSince,
  StoredDoc,
  SentDoc,
  SharedDoc,
  TokenInfo,
} from './backends/types.js';
