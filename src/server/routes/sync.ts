/**
 * Document sync (fact sheet §1a–1d) on `/user-<uuid>/sync-from/<source_replica_uid>`:
 *
 * | request | answers |
 * |---|---|
 * | `GET` | 200 sync info + CRLF; 404 `database does not exist` |
 * | `PUT` (`application/json` `{generation, transaction_id}`) | 200 `{"ok":true}`; 400; 404 |
 * | `POST` `application/x-soledad-sync-put` | 200 `[{new_generation, new_transaction_id[, replica_uid][, nothing_to_download]}]`; 400 bad stream; 401 ensure refused; 403 quota; 404; 409 |
 * | `POST` `application/x-soledad-sync-get` | 200 `application/x-u1db-sync-response` stream; 400; 401; 404; 409 |
 *
 * Uploads are streamed: the body is parsed line by line and applied in slices of about 1 MiB through one
 * {@link UploadSession}, committed only after the final `]`. A malformed stream, a failed check or an exceeded
 * quota rolls the whole upload back, so a refused upload never leaves part of itself stored.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import {
  BadRequestError,
  InvalidDocIdError,
  UnauthorizedError,
  UserQuotaExceededError,
} from '../../common/errors.js';
import { userDbName } from '../../common/protocol/paths.js';
import {
  CONTENT_TYPE_JSON,
  CONTENT_TYPE_SYNC_GET,
  CONTENT_TYPE_SYNC_GET_RESPONSE,
  CONTENT_TYPE_SYNC_PUT,
  CONTENT_TYPE_SYNC_PUT_RESPONSE,
  encodeSyncGetResponseAsync,
  encodeSyncInfo,
  encodeSyncPutResponse,
  parseRecordSyncInfo,
  parseSyncGetRequest,
  RECORD_SYNC_INFO_OK,
  SyncPutParser,
  type SyncGetEntryOut,
  type SyncGetMeta,
  type SyncHeader,
  type SyncPutEntryIn,
  type SyncPutItemIn,
  type SyncPutResponse,
} from '../../common/protocol/sync-stream.js';
import { isValidDocId } from '../../common/u1db/ids.js';
import { parseRev } from '../../common/u1db/vectorclock.js';
import { assertUserDbName } from '../backends/common.js';
import type { BackendCapabilities, Change, DocumentStore, IncomingDoc, UploadSession } from '../backends/types.js';
import type { CreateCmdResult } from '../create-cmd.js';
import { bodyChunksOf, bodyStream, mediaTypeOf, readTextBody, rejectQuery } from '../http.js';
import { seenIdsKey, type SeenIdsCache } from '../seen-ids.js';

/**
 * Uploaded documents are applied (inside the upload's one transaction) in slices of about this many content
 * bytes as they arrive, not the original's 8 MiB (`SYNC_STAGING_BYTES`): storing a slice then overlaps with the
 * client encrypting and sending the next one, instead of the client waiting for all of a batch to be stored.
 */
const APPLY_SLICE_BYTES = 1024 * 1024;

/** Longest JSON body of `PUT …/sync-from/<src>` and of a download request. */
const MAX_SMALL_BODY_BYTES = 64 * 1024;
/** Longest source replica uid accepted in the path. */
const MAX_REPLICA_UID_LENGTH = 255;

/** What the sync routes need. */
export interface SyncRoutesOptions {
  /** User databases. */
  readonly documents: DocumentStore;
  /** Whether the engine can create databases in-process. */
  readonly capabilities: BackendCapabilities;
  /** The configured `create_cmd`, or `null`. */
  readonly createCmd: string | null;
  /** Runs `create_cmd` (injectable for tests). */
  readonly runCreateCmd: (cmd: string, dbName: string) => Promise<CreateCmdResult>;
  /** Per-user quota over documents and everything in {@link SyncRoutesOptions.otherUsageBytes}. */
  readonly quotaBytes: number;
  /** Bytes the user stores outside documents (blobs). */
  readonly otherUsageBytes: (uuid: string) => Promise<number>;
  /** Seen ids of recent uploads. */
  readonly seenIds: SeenIdsCache;
}

interface Target {
  readonly uuid: string;
  readonly dbName: string;
  readonly source: string;
}

function targetOf(request: FastifyRequest): Target {
  const { uuid, source } = request.params as { uuid: string; source: string };
  const dbName = userDbName(uuid);
  assertUserDbName(dbName);
  if (source.length === 0 || source.length > MAX_REPLICA_UID_LENGTH) throw new BadRequestError('Invalid source replica uid');
  return { uuid, dbName, source };
}

/**
 * Register the sync routes.
 *
 * @example
 * registerSyncRoutes(app, { documents, capabilities, createCmd: null, runCreateCmd, quotaBytes, otherUsageBytes,
 *   seenIds: new SeenIdsCache() });
 */
export function registerSyncRoutes(app: FastifyInstance, options: SyncRoutesOptions): void {
  const { documents } = options;

  /** `ensure: true`: create the database through create_cmd or the engine; the answer carries its replica uid. */
  async function ensureDatabase(dbName: string): Promise<string> {
    if (options.createCmd !== null) {
      const result = await options.runCreateCmd(options.createCmd, dbName);
      if (!result.ok) throw new UnauthorizedError('The user database could not be created');
      return (await documents.getSyncInfo(dbName, '')).replicaUid;
    }
    if (!options.capabilities.createsDatabases) {
      throw new UnauthorizedError('This server creates user databases only through create_cmd, which is not set');
    }
    return (await documents.ensureDatabase(dbName)).replicaUid;
  }

  app.get('/user-:uuid/sync-from/:source', async (request, reply) => {
    rejectQuery(request);
    const t = targetOf(request);
    const info = await documents.getSyncInfo(t.dbName, t.source);
    return reply.code(200).header('content-type', CONTENT_TYPE_JSON).header('cache-control', 'no-cache').send(encodeSyncInfo({
      target_replica_uid: info.replicaUid,
      target_replica_generation: info.generation,
      target_replica_transaction_id: info.transactionId,
      source_replica_uid: t.source,
      source_replica_generation: info.sourceGeneration,
      source_transaction_id: info.sourceTransactionId,
    }));
  });

  app.put('/user-:uuid/sync-from/:source', async (request, reply) => {
    rejectQuery(request);
    const t = targetOf(request);
    if (mediaTypeOf(request) !== CONTENT_TYPE_JSON) throw new BadRequestError('Sync info must be sent as application/json');
    const text = await readTextBody(request, MAX_SMALL_BODY_BYTES, () => new BadRequestError('Request body too large'));
    const rec = parseRecordSyncInfo(text);
    await documents.recordSyncInfo(t.dbName, t.source, rec.generation, rec.transaction_id);
    return reply.code(200).header('content-type', CONTENT_TYPE_JSON).header('cache-control', 'no-cache').send(RECORD_SYNC_INFO_OK);
  });

  app.post('/user-:uuid/sync-from/:source', async (request, reply) => {
    rejectQuery(request);
    const t = targetOf(request);
    const mediaType = mediaTypeOf(request);
    if (mediaType === CONTENT_TYPE_SYNC_PUT) {
      const body = await upload(request, t);
      return reply.code(200).header('content-type', CONTENT_TYPE_SYNC_PUT_RESPONSE).header('cache-control', 'no-cache')
        .send(encodeSyncPutResponse(body));
    }
    if (mediaType === CONTENT_TYPE_SYNC_GET) {
      const stream = await download(request, t);
      return reply.code(200).header('content-type', CONTENT_TYPE_SYNC_GET_RESPONSE).header('cache-control', 'no-cache')
        .send(stream);
    }
    throw new BadRequestError(`A sync POST must be ${CONTENT_TYPE_SYNC_PUT} or ${CONTENT_TYPE_SYNC_GET}`);
  });

  async function upload(request: FastifyRequest, t: Target): Promise<SyncPutResponse> {
    // Content stays the bytes it arrived as: the embedded engine stores them without decoding.
    const parser = SyncPutParser.keepingContentBytes();
    let header: SyncHeader | undefined;
    let replicaUid: string | undefined;
    let session: UploadSession | undefined;
    let usageAtStart = 0;
    let otherUsage = 0;
    let staged: IncomingDoc[] = [];
    let stagedBytes = 0;
    const seen = new Map<string, number>();
    let writes = 0;

    const flush = async (s: UploadSession): Promise<void> => {
      if (staged.length === 0) return;
      const batch = staged;
      staged = [];
      stagedBytes = 0;
      const result = await s.putDocsIfNewer(batch);
      for (const o of result.outcomes) {
        // Conflicted and superseded documents are not "seen": the download must send the server's version back.
        if (o.state === 'inserted' || o.state === 'converged') seen.set(o.id, o.atGeneration);
        if (o.state === 'inserted') writes += 1;
      }
      const usage = await s.usageBytes();
      // A user over quota may still shrink (delete) but never grow.
      if (usage + otherUsage > options.quotaBytes && usage > usageAtStart) throw new UserQuotaExceededError();
    };

    const onHeader = async (h: SyncHeader): Promise<void> => {
      header = h;
      if (h.ensure) replicaUid = await ensureDatabase(t.dbName);
      await documents.validateGenAndTransId(t.dbName, h.last_known_generation, h.last_known_trans_id);
      otherUsage = await options.otherUsageBytes(t.uuid);
      session = await documents.openUpload(t.dbName, t.source);
      usageAtStart = await session.usageBytes();
    };

    const onDoc = async (e: SyncPutEntryIn): Promise<void> => {
      const s = session!;
      if (!isValidDocId(e.id)) throw new InvalidDocIdError();
      if (e.rev === '') throw new BadRequestError('A synced document needs a revision');
      try {
        parseRev(e.rev);
      } catch (cause) {
        throw new BadRequestError('Malformed revision', { cause });
      }
      if (e.doc_idx < 1 || e.doc_idx > e.number_of_docs) throw new BadRequestError('doc_idx out of range');
      staged.push({ id: e.id, rev: e.rev, content: e.content, gen: e.gen, transId: e.trans_id });
      stagedBytes += e.content === null ? 0 : e.content.length;
      if (stagedBytes > APPLY_SLICE_BYTES || e.doc_idx === e.number_of_docs) await flush(s);
    };

    try {
      const onItems = async (items: SyncPutItemIn[]): Promise<void> => {
        for (const item of items) {
          if (item.type === 'header') await onHeader(item.header);
          else await onDoc(item.entry);
        }
      };
      for await (const chunk of bodyChunksOf(bodyStream(request))) await onItems(parser.push(chunk));
      await onItems(parser.end());
      // end() only succeeds after "[" and a header, so both are set here.
      const s = session!;
      await flush(s);
      const info = await s.commit();
      session = undefined;
      const syncWrites = options.seenIds.record(seenIdsKey(t.dbName, t.source, header!.sync_id), seen, writes);
      const out: SyncPutResponse = { new_generation: info.generation, new_transaction_id: info.transactionId };
      if (replicaUid !== undefined) out.replica_uid = replicaUid;
      // Every generation since the client's last known one is a document this sync stored as sent: its download
      // would send nothing (each is seen), so the client may skip it.
      if (info.generation - header!.last_known_generation === syncWrites) out.nothing_to_download = true;
      return out;
    } finally {
      if (session !== undefined) await session.abort();
    }
  }

  async function download(request: FastifyRequest, t: Target): Promise<Readable> {
    const text = await readTextBody(request, MAX_SMALL_BODY_BYTES, () => new BadRequestError('Request body too large'));
    const header = parseSyncGetRequest(text);
    const replicaUid = header.ensure ? await ensureDatabase(t.dbName) : undefined;
    await documents.validateGenAndTransId(t.dbName, header.last_known_generation, header.last_known_trans_id);
    const changes = await documents.whatsChanged(t.dbName, header.last_known_generation);
    const seen = options.seenIds.get(seenIdsKey(t.dbName, t.source, header.sync_id));
    const toReturn = changes.changes.filter((c) => {
      const seenGen = seen?.get(c.id);
      return seenGen === undefined || seenGen < c.generation;
    });
    const meta: SyncGetMeta = {
      new_generation: changes.generation,
      new_transaction_id: changes.transactionId,
      number_of_changes: toReturn.length,
    };
    if (replicaUid !== undefined) meta.replica_uid = replicaUid;
    return Readable.from(encodeSyncGetResponseAsync(meta, entries(t.dbName, toReturn)));
  }

  async function* entries(dbName: string, changes: readonly Change[]): AsyncGenerator<SyncGetEntryOut> {
    let i = 0;
    for await (const doc of documents.getDocsToSend(dbName, changes.map((c) => c.id))) {
      while (changes[i]!.id !== doc.id) i += 1;
      const change = changes[i]!;
      i += 1;
      yield { id: doc.id, rev: doc.rev, gen: change.generation, trans_id: change.transactionId, content: doc.content };
    }
  }
}
