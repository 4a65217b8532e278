/**
 * The Services API's one resource (fact sheet §5c): `PUT /incoming/<uuid>/<id>[?namespace=<ns>][&encryption=<m>]`,
 * where a trusted app delivers an already-encrypted payload for a user.
 *
 * | answer | when |
 * |---|---|
 * | 200, empty body | stored, flagged `PENDING` (as the original) |
 * | 400 | bad uuid, id, namespace or encryption name; body shorter or longer than `Content-Length` |
 * | 403 | the service may not deliver to that namespace |
 * | 409 | the id exists in that namespace |
 * | 411 | no `Content-Length` (the preamble records the size before the payload) |
 * | 507 | over quota (plus `incoming_quota_tolerance`); the JSON body says by how much; nothing is stored |
 *
 * Errors are JSON `{"error": …, "message": …}` (the original answered 500 `{"success": false}`). The payload is
 * never parsed, decrypted or altered: it streams from the socket to the store behind the server's header.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { BadRequestError, BlobAlreadyExistsError, LengthRequiredError } from '../../common/errors.js';
import { INCOMING_DEFAULT_NAMESPACE, parseEncryptionParam } from '../../common/protocol/incoming.js';
import { authenticatedAs } from '../auth/hook.js';
import type { IncomingService } from '../incoming/service.js';
import { bodyChunks } from './blobs.js';

type Query = Record<string, string | string[] | undefined>;

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function declaredLength(req: FastifyRequest): number {
  const header = req.headers['content-length'];
  if (header === undefined || req.headers['transfer-encoding'] !== undefined) {
    throw new LengthRequiredError('Content-Length is required: the stored preamble records the payload size');
  }
  if (!/^\d{1,15}$/.test(header)) throw new BadRequestError('Invalid Content-Length');
  return Number(header);
}

/**
 * The delivery route as an encapsulated plugin: its content-type parser hands the body over unread, whatever its
 * `content-type`, so the payload streams straight to storage.
 */
export const incomingRoutesPlugin: FastifyPluginAsync<{ incoming: IncomingService }> = async (app, { incoming }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.put('/incoming/:uuid/:id', async (req, reply) => {
    const { uuid, id } = req.params as { uuid: string; id: string };
    const q = req.query as Query;
    const ns = first(q.namespace);
    const namespace = ns === undefined || ns === '' ? INCOMING_DEFAULT_NAMESPACE : ns;
    const encryption = parseEncryptionParam(first(q.encryption));
    const service = authenticatedAs(req);
    if (service === undefined) throw new BadRequestError('No service credentials');
    const ref = { user: uuid, namespace, blobId: id };
    incoming.assertMayDeliver(service, ref);
    const length = declaredLength(req);
    // Cheap early answer before any byte is read; the store's put is what really decides.
    if ((await incoming.store.stat(ref)) !== null) {
      throw new BlobAlreadyExistsError(`Blob already exists: ${id}`);
    }
    const result = await incoming.deliver(service, ref, bodyChunks(req.body as Readable | undefined), length, encryption);
    req.log.info({ service, namespace: result.namespace, size: result.size }, 'incoming message delivered');
    return reply.code(200).send();
  });
};

/**
 * Register the delivery route on the Services API.
 *
 * @example
 * registerIncomingRoutes(servicesApp, new IncomingService({ store }));
 */
export function registerIncomingRoutes(app: FastifyInstance, incoming: IncomingService): void {
  void app.register(incomingRoutesPlugin, { incoming });
}
