/**
 * Moving one user's data between engines (`soledad-server export-user` / `import-user`), e.g. from the embedded
 * engine to PostgreSQL as a provider grows. The dump is JSON lines, streamed both ways (blobs in base64 pieces),
 * holding only what the server has: ciphertext documents with their revisions, and blobs with their flags.
 *
 * Line kinds, in order: `{"kind":"soledad-user-export","version":1,"uuid",…}`, then `{"kind":"doc","id","rev",
 * "content"}` per document (tombstones have `content: null`), then per blob `{"kind":"blob","namespace","id",
 * "size","flags"}`, its `{"kind":"blob-data","data":"<base64>"}` pieces and `{"kind":"blob-end"}`, and finally
 * `{"kind":"end","docs":n,"blobs":m}`.
 *
 * The imported database gets a new replica uid: devices see a new server replica and sync from generation 0,
 * which converges on the same revisions without conflicts (the content is byte-identical).
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { BadRequestError } from '../../common/errors.js';
import { isBlobFlag } from '../../common/protocol/blobs.js';
import type { BlobFlag } from '../../common/protocol/blobs.js';
import type { BlobStore } from './blob-types.js';
import type { Backend, IncomingDoc } from './types.js';

/** Namespaces exported when none are named: the default one and the incoming box's. */
export const DEFAULT_EXPORT_NAMESPACES: readonly string[] = ['default', 'MX'];

const FORMAT = 'soledad-user-export';
const VERSION = 1;
const DOC_PAGE = 200;
const BLOB_PIECE = 768 * 1024;

/** Options of {@link exportUser}. */
export interface ExportOptions {
  /** Blob store to read blobs from (omit to export documents only). */
  readonly blobs?: BlobStore;
  /** Blob namespaces to export (default {@link DEFAULT_EXPORT_NAMESPACES}). */
  readonly namespaces?: readonly string[];
}

/**
 * Stream one user's data as JSON lines (each string ends with `\n`).
 *
 * @example
 * for await (const line of exportUser(backend, uuid, { blobs })) out.write(line);
 */
export async function* exportUser(backend: Backend, uuid: string, options: ExportOptions = {}): AsyncGenerator<string> {
  const dbName = `user-${uuid}`;
  const info = await backend.documents.getSyncInfo(dbName, '');
  yield `${JSON.stringify({ kind: FORMAT, version: VERSION, uuid, engine: backend.name, replica_uid: info.replicaUid, generation: info.generation })}\n`;
  const { changes } = await backend.documents.whatsChanged(dbName, 0);
  let docs = 0;
  for (let i = 0; i < changes.length; i += DOC_PAGE) {
    const ids = changes.slice(i, i + DOC_PAGE).map((c) => c.id);
    for await (const d of backend.documents.getDocs(dbName, ids)) {
      docs += 1;
      yield `${JSON.stringify({ kind: 'doc', id: d.id, rev: d.rev, content: d.content })}\n`;
    }
  }
  let blobs = 0;
  if (options.blobs !== undefined) {
    const store = options.blobs;
    for (const namespace of options.namespaces ?? DEFAULT_EXPORT_NAMESPACES) {
      for (const id of await store.list(uuid, { namespace })) {
        const ref = { user: uuid, namespace, blobId: id };
        let handle;
        try {
          handle = await store.open(ref);
        } catch {
          continue; // deleted meanwhile
        }
        const flags = await store.getFlags(ref).catch(() => []);
        yield `${JSON.stringify({ kind: 'blob', namespace, id, size: handle.size, flags })}\n`;
        let pending: Buffer = Buffer.alloc(0);
        for await (const chunk of handle.read()) {
          pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
          while (pending.length >= BLOB_PIECE) {
            yield `${JSON.stringify({ kind: 'blob-data', data: pending.subarray(0, BLOB_PIECE).toString('base64') })}\n`;
            pending = Buffer.from(pending.subarray(BLOB_PIECE));
          }
        }
        if (pending.length > 0) yield `${JSON.stringify({ kind: 'blob-data', data: pending.toString('base64') })}\n`;
        yield `${JSON.stringify({ kind: 'blob-end' })}\n`;
        blobs += 1;
      }
    }
  }
  yield `${JSON.stringify({ kind: 'end', docs, blobs })}\n`;
}

/** What {@link importUser} stored. */
export interface ImportResult {
  /** The user. */
  readonly uuid: string;
  /** Documents stored. */
  readonly docs: number;
  /** Blobs stored. */
  readonly blobs: number;
}

interface Line { kind?: unknown; [k: string]: unknown }

/**
 * Read an export (a stream of JSON lines) into `backend` (and `blobs`). The user's database is created; it must
 * not hold documents yet, and existing blobs are refused (`BlobAlreadyExistsError`), so nothing is overwritten.
 *
 * @example
 * const result = await importUser(backend, createReadStream('alice.jsonl'), { blobs });
 */
export async function importUser(backend: Backend, input: Readable, options: { blobs?: BlobStore } = {}): Promise<ImportResult> {
  const lines = createInterface({ input, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const next = async (): Promise<Line | null> => {
    for (;;) {
      const r = await lines.next();
      if (r.done === true) return null;
      if (r.value.trim() === '') continue;
      try {
        return JSON.parse(r.value) as Line;
      } catch (cause) {
        throw new BadRequestError('import: a line is not JSON', { cause });
      }
    }
  };
  const header = await next();
  if (header?.kind !== FORMAT || header['version'] !== VERSION || typeof header['uuid'] !== 'string') {
    throw new BadRequestError(`import: not a ${FORMAT} version ${VERSION} file`);
  }
  const uuid = header['uuid'];
  const dbName = `user-${uuid}`;
  await backend.documents.ensureDatabase(dbName);
  if ((await backend.documents.whatsChanged(dbName, 0)).generation !== 0) {
    throw new BadRequestError(`import: ${dbName} already holds documents`);
  }
  const source = `import-${Date.now().toString(16)}`;
  const session = await backend.documents.openUpload(dbName, source);
  let docs = 0;
  let blobs = 0;
  let batch: IncomingDoc[] = [];
  let line: Line | null;
  try {
    for (line = await next(); line !== null && line.kind === 'doc'; line = await next()) {
      const { id, rev, content } = line;
      if (typeof id !== 'string' || typeof rev !== 'string' || (content !== null && typeof content !== 'string')) {
        throw new BadRequestError('import: malformed document line');
      }
      docs += 1;
      batch.push({ id, rev, content, gen: docs, transId: `T-import-${docs}` });
      if (batch.length >= DOC_PAGE) {
        await session.putDocsIfNewer(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await session.putDocsIfNewer(batch);
    await session.commit();
  } finally {
    await session.abort();
  }
  while (line !== null && line.kind === 'blob') {
    const { namespace, id, size, flags } = line;
    if (typeof namespace !== 'string' || typeof id !== 'string' || typeof size !== 'number' || !Array.isArray(flags)) {
      throw new BadRequestError('import: malformed blob line');
    }
    if (options.blobs === undefined) throw new BadRequestError('import: the file has blobs but no blob store was given');
    const pieces = async function* (): AsyncGenerator<Buffer> {
      for (;;) {
        const l = await next();
        if (l?.kind === 'blob-end') return;
        if (l?.kind !== 'blob-data' || typeof l['data'] !== 'string') throw new BadRequestError('import: truncated blob');
        yield Buffer.from(l['data'], 'base64');
      }
    };
    const blobFlags = flags.filter((f): f is BlobFlag => isBlobFlag(f));
    await options.blobs.put({ user: uuid, namespace, blobId: id }, pieces(), { size, flags: blobFlags });
    blobs += 1;
    line = await next();
  }
  if (line?.kind !== 'end') throw new BadRequestError('import: the file is truncated (no end line)');
  return { uuid, docs, blobs };
}
