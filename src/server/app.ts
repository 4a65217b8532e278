/**
 * The two HTTP applications of the server (seed 001 "Authentication"): the public Users API (sync, shared
 * database, blobs) and the local Services API (incoming box). Both are plain fastify instances, testable in
 * process with `inject()`; `main.ts` puts them on their listeners.
 */
import Fastify, { type FastifyHttpsOptions, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { servicesAuthHook, usersAuthHook } from './auth/hook.js';
import type { ServicesTokens } from './auth/services-tokens.js';
import type { Backend } from './backends/types.js';
import type { ServerConfig } from './config.js';
import { runCreateCmd, type CreateCmdResult } from './create-cmd.js';
import { answerClientError, answerFrameworkError, installErrorHandling } from './http.js';
import { DEFAULT_LIMITS, syncConcurrencyLimit, type UsersApiLimits } from './limits.js';
import { ForbiddenError } from '../common/errors.js';
import type { IncomingService } from './incoming/service.js';
import { registerIncomingRoutes } from './routes/incoming.js';
import { registerInfoRoutes } from './routes/info.js';
import { registerSharedRoutes } from './routes/shared.js';
import { registerSyncRoutes } from './routes/sync.js';
import { SeenIdsCache } from './seen-ids.js';
import { SERVER_VERSION } from './version.js';

/**
 * Where the blobs service plugs into the Users API (routes and quota), so that adding it touches neither the
 * auth nor the sync code.
 *
 * @example
 * const blobs: BlobsService = {
 *   register: (app) => registerBlobRoutes(app, { store }),
 *   usageBytes: async (uuid) => (await store.usage(uuid)).used,
 * };
 */
export interface BlobsService {
  /** Register the blob routes (`/blobs/…`, `/stream/…`, `/quota/…`) in their own plugin context. */
  register(app: FastifyInstance): void | Promise<void>;
  /** Bytes a user stores as blobs; they count in the same per-user quota as documents. */
  usageBytes(uuid: string): Promise<number>;
}

/** TLS material (PEM). */
export interface TlsMaterial {
  /** Certificate chain. */
  readonly cert: string | Buffer;
  /** Private key. */
  readonly key: string | Buffer;
}

/** What {@link buildUsersApp} needs. */
export interface UsersAppDeps {
  /** Configuration (uses `blobs`, `createCmd`, `quotaBytes`). */
  readonly config: Pick<ServerConfig, 'blobs' | 'createCmd' | 'quotaBytes'>;
  /** Storage engine. */
  readonly backend: Backend;
  /** The blobs service, when available; `GET /` reports `blobs: true` only with it and `config.blobs`. */
  readonly blobs?: BlobsService;
  /** Logger (pino); silent when absent. */
  readonly logger?: Logger;
  /** Serve TLS with this material. */
  readonly https?: TlsMaterial;
  /** Seen-ids cache (default: a fresh one). */
  readonly seenIds?: SeenIdsCache;
  /** Runs `create_cmd` (default: {@link runCreateCmd}). */
  readonly runCreateCmd?: (cmd: string, dbName: string) => Promise<CreateCmdResult>;
  /** Version reported by `GET /` (default: this package's). */
  readonly version?: string;
  /** Connection timeouts and the per-user sync limit (defaults: {@link DEFAULT_LIMITS}). */
  readonly limits?: UsersApiLimits;
}

function baseOptions(logger: Logger | undefined): FastifyServerOptions {
  return {
    ...(logger === undefined ? { logger: false } : { loggerInstance: logger }),
    // Shared doc ids and replica uids can be long; the default of 100 would turn them into 404s.
    routerOptions: { maxParamLength: 1024 },
    requestIdHeader: false,
    trustProxy: false,
    return503OnClosing: true,
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
  };
}

function create(logger: Logger | undefined, https: TlsMaterial | undefined, limits: UsersApiLimits = {}): FastifyInstance {
  // Slowloris, on every listener: headers must arrive within headersTimeout (Node checks every
  // connectionsCheckingInterval), and a connection silent for bodyTimeout is closed, so a stalled upload also
  // gives back its user database's lock.
  const headersTimeout = limits.headersTimeoutMs ?? DEFAULT_LIMITS.headersTimeoutMs;
  const timeouts = { headersTimeout, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(headersTimeout / 4))) };
  const options = { ...baseOptions(logger), connectionTimeout: limits.bodyTimeoutMs ?? DEFAULT_LIMITS.bodyTimeoutMs };
  if (https === undefined) return Fastify({ ...options, http: timeouts });
  // fastify's overloads type the https instance apart; routes only need the common surface.
  const tlsOptions = { ...options, https: { key: https.key, cert: https.cert, ...timeouts } } as unknown as FastifyHttpsOptions<HttpsServer>;
  return Fastify(tlsOptions) as unknown as FastifyInstance;
}

/**
 * Build the Users API: whitelist and token auth first, then `/`, `/robots.txt`, `/shared…`,
 * `/user-<uuid>/sync-from/<src>` and, when given, the blobs service.
 *
 * @example
 * const app = buildUsersApp({ config, backend });
 * const res = await app.inject({ method: 'GET', url: '/' });
 */
export function buildUsersApp(deps: UsersAppDeps): FastifyInstance {
  const app = create(deps.logger, deps.https, deps.limits);
  installErrorHandling(app);
  app.addHook('onRequest', usersAuthHook({ tokens: deps.backend.tokens }));
  app.addHook('onRequest', syncConcurrencyLimit(deps.limits?.maxSyncsPerUser ?? DEFAULT_LIMITS.maxSyncsPerUser));
  const blobs = deps.blobs;
  const seenIds = deps.seenIds ?? new SeenIdsCache();

  void app.register(async (u1db) => {
    // Bodies reach the routes as raw streams: sync uploads are parsed incrementally, the rest are read with
    // explicit limits. No body is ever buffered by fastify.
    u1db.removeAllContentTypeParsers();
    u1db.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    registerInfoRoutes(u1db, { blobs: deps.config.blobs && blobs !== undefined, version: deps.version ?? SERVER_VERSION });
    registerSharedRoutes(u1db, deps.backend.shared);
    registerSyncRoutes(u1db, {
      documents: deps.backend.documents,
      capabilities: deps.backend.capabilities,
      createCmd: deps.config.createCmd,
      runCreateCmd: deps.runCreateCmd ?? ((cmd, db) => runCreateCmd(cmd, db)),
      quotaBytes: deps.config.quotaBytes,
      otherUsageBytes: blobs === undefined ? async () => 0 : (uuid) => blobs.usageBytes(uuid),
      seenIds,
    });
  });
  if (blobs !== undefined && deps.config.blobs) {
    void app.register(async (child) => {
      await blobs.register(child);
    });
  }
  return app;
}

/** What {@link buildServicesApp} needs. */
export interface ServicesAppDeps {
  /** Tokens of the services tokens file. */
  readonly servicesTokens: ServicesTokens;
  /** Logger (pino); silent when absent. */
  readonly logger?: Logger;
  /** The incoming box: serves `PUT /incoming/<uuid>/<id>` (without it that route answers 404). */
  readonly incoming?: IncomingService;
  /** Header and body timeouts (defaults: {@link DEFAULT_LIMITS}); the per-user sync limit does not apply here. */
  readonly limits?: Pick<UsersApiLimits, 'headersTimeoutMs' | 'bodyTimeoutMs'>;
}

/** Whether a peer address is the local host (IPv4 127/8, IPv6 ::1, or IPv4-mapped loopback). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/**
 * Build the Services API (plain HTTP, listening on 127.0.0.1 only). It refuses any peer that is not the local
 * host (403, in case it is ever bound wider), authenticates `service:token` credentials against the services
 * tokens file, and serves the incoming box's delivery route.
 *
 * @example
 * const services = buildServicesApp({ servicesTokens: new Map([['incoming', token]]), incoming });
 */
export function buildServicesApp(deps: ServicesAppDeps): FastifyInstance {
  const app = create(deps.logger, undefined, deps.limits);
  installErrorHandling(app);
  app.addHook('onRequest', async (request) => {
    // The seed: "The Incoming Box MUST NOT be accessible as a public service from the outside."
    if (!isLoopbackAddress(request.socket.remoteAddress)) throw new ForbiddenError('The Services API accepts only local connections');
  });
  app.addHook('onRequest', servicesAuthHook({ tokens: deps.servicesTokens }));
  if (deps.incoming !== undefined) registerIncomingRoutes(app, deps.incoming);
  return app;
}
