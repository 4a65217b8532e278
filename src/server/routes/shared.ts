/**
 * The shared (recovery) database over HTTP (fact sheet §4c), as u1db's `DatabaseResource` and `DocResource`:
 *
 * | route | answers |
 * |---|---|
 * | `GET /shared` | 200 `{}` |
 * | `GET /shared/doc/<id>` | 200 raw JSON + `x-u1db-rev`, `x-u1db-has-conflicts`; 404 `document does not exist` / `document deleted` |
 * | `PUT /shared/doc/<id>[?old_rev=R]` | 201 `{"rev"}` without `old_rev`, 200 with it; 409 `revision conflict` |
 * | `DELETE /shared/doc/<id>?old_rev=R` | 200 `{"rev"}`; 404; 409 |
 *
 * Any valid token may read and write (the server cannot tell whose recovery document an id is).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  BadRequestError,
  DocumentDeletedError,
  DocumentDoesNotExistError,
  DocumentTooBigError,
  InvalidDocIdError,
} from '../../common/errors.js';
import { parseJsonObject } from '../../common/u1db/document.js';
import { isValidDocId } from '../../common/u1db/ids.js';
import { HEADER_U1DB_HAS_CONFLICTS, HEADER_U1DB_REV } from '../../common/protocol/paths.js';
import type { SharedStore } from '../backends/types.js';
import { mediaTypeOf, readTextBody, rejectQuery, sendJson } from '../http.js';

/** Largest shared document accepted; a recovery document is a few kilobytes. */
export const MAX_SHARED_DOC_BYTES = 1024 * 1024;

function docIdOf(request: FastifyRequest): string {
  const id = (request.params as Record<string, string | undefined>)['*'];
  if (!isValidDocId(id)) throw new InvalidDocIdError();
  return id;
}

function oldRevOf(request: FastifyRequest): string | null {
  const v = (request.query as Record<string, unknown>)['old_rev'];
  if (v === undefined) return null;
  if (typeof v !== 'string') throw new BadRequestError('"old_rev" must be given once');
  return v;
}

/**
 * Register the shared database routes.
 *
 * @example
 * registerSharedRoutes(app, backend.shared);
 */
export function registerSharedRoutes(app: FastifyInstance, shared: SharedStore): void {
  app.get('/shared', async (request, reply) => {
    rejectQuery(request);
    return sendJson(reply, 200, {});
  });

  app.get('/shared/doc/*', async (request, reply) => {
    rejectQuery(request, ['include_deleted']);
    const id = docIdOf(request);
    const doc = await shared.getDoc(id);
    if (doc === null) {
      reply.header(HEADER_U1DB_REV, '').header(HEADER_U1DB_HAS_CONFLICTS, 'false');
      throw new DocumentDoesNotExistError();
    }
    reply.header(HEADER_U1DB_REV, doc.rev).header(HEADER_U1DB_HAS_CONFLICTS, String(doc.hasConflicts));
    if (doc.content === null) throw new DocumentDeletedError();
    return reply.code(200).header('content-type', 'application/json').header('cache-control', 'no-cache').send(doc.content);
  });

  app.put('/shared/doc/*', async (request, reply) => {
    rejectQuery(request, ['old_rev']);
    const id = docIdOf(request);
    const oldRev = oldRevOf(request);
    if (mediaTypeOf(request) !== 'application/json') throw new BadRequestError('A document must be sent as application/json');
    const content = await readTextBody(request, MAX_SHARED_DOC_BYTES, () => new DocumentTooBigError());
    parseJsonObject(content);
    const rev = await shared.putDoc(id, content, oldRev);
    return sendJson(reply, oldRev === null ? 201 : 200, { rev });
  });

  app.delete('/shared/doc/*', async (request, reply) => {
    rejectQuery(request, ['old_rev']);
    const id = docIdOf(request);
    const rev = await shared.deleteDoc(id, oldRevOf(request));
    return sendJson(reply, 200, { rev });
  });
}
