/**
 * `GET /` (server info) and `GET /robots.txt`, the only resources open to anonymous requests (fact sheet §5a).
 */
import type { FastifyInstance } from 'fastify';

/** What `GET /` answers. Extra keys beside `blobs` and `version` are allowed by protocol.md. */
export interface ServerInfo {
  /** Whether the blobs service is available. */
  readonly blobs: boolean;
  /** Server version. */
  readonly version: string;
}

/** The robots.txt body: keep crawlers out of everything. */
export const ROBOTS_TXT = 'User-agent: *\nDisallow: /\n';

/**
 * Register the two routes.
 *
 * @example
 * registerInfoRoutes(app, { blobs: false, version: '0.1.0' });
 */
export function registerInfoRoutes(app: FastifyInstance, info: ServerInfo): void {
  // The original sends the JSON object with no trailing newline.
  const body = JSON.stringify({ blobs: info.blobs, version: info.version });
  app.get('/', async (_request, reply) => reply.header('content-type', 'application/json').send(body));
  app.get('/robots.txt', async (_request, reply) => reply.header('content-type', 'text/plain; charset=utf-8').send(ROBOTS_TXT));
}
