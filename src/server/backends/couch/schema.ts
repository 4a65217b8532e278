/**
 * The CouchDB schema of Soledad 0.9 onwards (fact sheet §5d), read and written exactly as the original does so
 * that this engine serves an existing LEAP provider's databases:
 *
 * - user document `{_id, u1db_rev, _attachments: {u1db_content, u1db_conflicts}}`: content is the attachment's
 *   bytes (no attachment for a tombstone), conflicts a JSON `[[rev, content], …]` attachment when there are any;
 * - generation document `{_id: "gen-%010d", gen, doc_id, trans_id}`;
 * - `_local/config` `{replica_uid, schema_version: 1}`; `_local/sync_<replica>` `{gen, trans_id, replica_uid}`;
 * - no design documents.
 *
 * This port adds two local documents the original ignores: `_local/soledad_usage` (bytes used, to answer quota
 * questions without reading every document) and `_local/soledad_write_lock` (see `lease.ts`).
 */
import { BackendNotReadyError, BadRequestError } from '../../../common/errors.js';
import { makeReplicaUid } from '../../../common/u1db/ids.js';
import { CouchError, mapMissingDb, seg, type CouchClient } from './client.js';

/** The schema version of `_local/config` this build reads and writes. */
export const COUCH_SCHEMA_VERSION = 1;

/** Name of the content attachment. */
export const CONTENT_ATTACHMENT = 'u1db_content';
/** Name of the conflicts attachment. */
export const CONFLICTS_ATTACHMENT = 'u1db_conflicts';

const GEN_ID_RE = /^gen-\d{10}$/;
const COUCH_DB_NAME_RE = /^[a-z][a-z0-9_$()+/-]*$/;

/** `gen-%010d`. */
export function genDocId(generation: number): string {
  return `gen-${String(generation).padStart(10, '0')}`;
}

/** Whether `id` names a generation document. */
export function isGenDocId(id: string): boolean {
  return GEN_ID_RE.test(id);
}

/**
 * Refuse document ids the CouchDB layout cannot hold: ids starting with `_` (reserved by CouchDB) and ids of the
 * generation documents' form.
 */
export function assertStorableDocId(id: string): void {
  if (id.startsWith('_') || isGenDocId(id)) throw new BadRequestError(`Document id reserved by the CouchDB schema: ${id}`);
}

/** Throw {@link BadRequestError} unless `name` is a legal CouchDB database name (lowercase, CouchDB's charset). */
export function assertCouchDbName(name: string): void {
  if (!COUCH_DB_NAME_RE.test(name)) throw new BadRequestError('Invalid database name for CouchDB (lowercase letters, digits, _$()+-/)');
}

/** An attachment as CouchDB describes it. */
export interface AttachmentInfo {
  /** Content type. */
  readonly content_type?: string;
  /** Byte length (stubs). */
  readonly length?: number;
  /** Base64 data (with `attachments=true` or when writing inline). */
  readonly data?: string;
  /** True for a stub. */
  readonly stub?: boolean;
}

/** A user document as stored. */
export interface UserDocBody {
  /** Document id. */
  _id: string;
  /** CouchDB revision. */
  _rev?: string;
  /** U1DB revision. */
  u1db_rev?: string;
  /** Attachments. */
  _attachments?: Record<string, AttachmentInfo>;
  /** Set by CouchDB on deleted documents. */
  _deleted?: boolean;
}

/** A generation document. */
export interface GenDocBody {
  /** `gen-%010d`. */
  _id: string;
  /** Generation. */
  gen: number;
  /** Document changed at that generation. */
  doc_id: string;
  /** Its transaction id. */
  trans_id: string;
}

/** The `_security` document of a database (from `[database-security]`). */
export interface CouchSecurity {
  /** Admin names and roles. */
  readonly admins: { readonly names: readonly string[]; readonly roles: readonly string[] };
  /** Member names and roles. */
  readonly members: { readonly names: readonly string[]; readonly roles: readonly string[] };
}

/** The original's default `_security`: member `soledad`, no admins. */
export const DEFAULT_COUCH_SECURITY: CouchSecurity = {
  admins: { names: [], roles: [] },
  members: { names: ['soledad'], roles: [] },
};

/** Inline attachment of a UTF-8 string. */
export function inlineAttachment(text: string): AttachmentInfo {
  return { content_type: 'application/octet-stream', data: Buffer.from(text, 'utf8').toString('base64') };
}

/** The text of an inline (base64) attachment. */
export function attachmentText(att: AttachmentInfo | undefined): string | null {
  if (att?.data === undefined) return null;
  return Buffer.from(att.data, 'base64').toString('utf8');
}

interface ConfigDoc { _rev?: string; replica_uid?: unknown; schema_version?: unknown }

/**
 * Read `_local/config` of a database and check its schema version; when the database has no config but also
 * no documents (created by an external `create_cmd`), write a fresh one. A database with documents and no
 * config is of the pre-0.9 schema: {@link BackendNotReadyError}, as the original refuses it.
 */
export async function readOrInitConfig(client: CouchClient, dbPath: string, dbName: string): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const cfg = (await client.request<ConfigDoc>('GET', `${dbPath}/_local/config`)).body;
      if (cfg.schema_version !== COUCH_SCHEMA_VERSION || typeof cfg.replica_uid !== 'string') {
        throw new BackendNotReadyError(
          `CouchDB database ${dbName} has schema version ${JSON.stringify(cfg.schema_version ?? null)}; this server knows only ${COUCH_SCHEMA_VERSION}`);
      }
      return cfg.replica_uid;
    } catch (err) {
      if (!(err instanceof CouchError && err.isMissingDocument)) mapMissingDb(err);
    }
    const info = await client.request<{ doc_count: number }>('GET', dbPath).catch(mapMissingDb);
    if (info.body.doc_count > 0) {
      throw new BackendNotReadyError(
        `CouchDB database ${dbName} has documents but no _local/config (pre-0.9 schema): migrate it first`);
    }
    try {
      const replicaUid = makeReplicaUid();
      await client.request('PUT', `${dbPath}/_local/config`, { body: { replica_uid: replicaUid, schema_version: COUCH_SCHEMA_VERSION } });
      return replicaUid;
    } catch (err) {
      // Another writer created it first: read theirs.
      if (!(err instanceof CouchError && err.isConflict)) mapMissingDb(err);
    }
  }
  throw new BackendNotReadyError(`CouchDB database ${dbName}: _local/config keeps changing`);
}

/**
 * Write a local document, whatever its current revision (read, then compare-and-set, retried on conflict).
 */
export async function putLocalDoc(client: CouchClient, dbPath: string, localId: string, body: Record<string, unknown>): Promise<void> {
  const path = `${dbPath}/_local/${seg(localId)}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    let rev: string | undefined;
    try {
      rev = (await client.request<{ _rev: string }>('GET', path)).body._rev;
    } catch (err) {
      if (!(err instanceof CouchError && err.isMissingDocument)) mapMissingDb(err);
    }
    try {
      await client.request('PUT', path, { body: rev === undefined ? body : { ...body, _rev: rev } });
      return;
    } catch (err) {
      if (!(err instanceof CouchError && err.isConflict)) mapMissingDb(err);
    }
  }
  throw new BackendNotReadyError(`CouchDB: could not update _local/${localId}`);
}

/** A local document, or `null` if missing. */
export async function getLocalDoc<T>(client: CouchClient, dbPath: string, localId: string): Promise<T | null> {
  try {
    return (await client.request<T>('GET', `${dbPath}/_local/${seg(localId)}`)).body;
  } catch (err) {
    if (err instanceof CouchError && err.isMissingDocument) return null;
    return mapMissingDb(err);
  }
}

/** Rows of `_all_docs`. */
export interface AllDocsRow<D> {
  /** Id (absent on error rows). */
  readonly id?: string;
  /** Key asked for. */
  readonly key: string;
  /** `{rev, deleted?}`. */
  readonly value?: { rev: string; deleted?: boolean };
  /** The document with `include_docs`. */
  readonly doc?: D | null;
  /** `not_found` for a missing key. */
  readonly error?: string;
}

/** The latest generation document, or `null` at generation 0. */
export async function lastGeneration(client: CouchClient, dbPath: string): Promise<GenDocBody | null> {
  // Descending from the highest possible gen id: the first row is the latest (the original's query).
  const r = await client.request<{ rows: Array<AllDocsRow<GenDocBody>> }>('GET', `${dbPath}/_all_docs`, {
    query: {
      descending: true, limit: 1, include_docs: true,
      startkey: JSON.stringify(genDocId(9_999_999_999)), endkey: JSON.stringify(genDocId(0)),
    },
  }).catch(mapMissingDb);
  const doc = r.body.rows[0]?.doc;
  return doc === undefined || doc === null ? null : doc;
}

/** Generation documents from `from` to `to` inclusive, ascending, paged. */
export async function generationsBetween(client: CouchClient, dbPath: string, from: number, to: number): Promise<GenDocBody[]> {
  const out: GenDocBody[] = [];
  let next = from;
  const PAGE = 1000;
  while (next <= to) {
    const r = await client.request<{ rows: Array<AllDocsRow<GenDocBody>> }>('GET', `${dbPath}/_all_docs`, {
      query: { include_docs: true, limit: PAGE, startkey: JSON.stringify(genDocId(next)), endkey: JSON.stringify(genDocId(to)) },
    }).catch(mapMissingDb);
    for (const row of r.body.rows) {
      if (row.doc !== undefined && row.doc !== null && row.id !== undefined && isGenDocId(row.id)) out.push(row.doc);
    }
    if (r.body.rows.length < PAGE) break;
    const last = r.body.rows[r.body.rows.length - 1]!;
    next = Number(last.key.slice(4)) + 1;
  }
  return out;
}
