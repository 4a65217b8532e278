/**
 * User databases on CouchDB, in the original's 0.9+ schema (`schema.ts`).
 *
 * CouchDB has no transactions, so a write works like this: the writer takes the database's lease (`lease.ts`;
 * in one process writers first queue in memory), reads what it needs, decides every document in memory and
 * writes nothing until commit. Commit writes the documents, then their generation documents, then the sync log
 * and the usage counter, with `_bulk_docs` when `batching` is on (one request per document otherwise). Until
 * then nothing is visible, and an abort simply forgets the buffered changes.
 *
 * Before the documents, the commit records its generations in `_local/soledad_commit` and clears it once the
 * generation documents are written. If that never happens (the process dies, CouchDB refuses a generation
 * document), the next writer of the database finishes the log from the record before it starts: otherwise the
 * stored documents would never be in the log, since a device re-sending them only converges.
 *
 * Readers that meet a commit half-way see documents before their generation documents (harmless: the next sync
 * picks them up) and never a generation whose predecessors are missing: `whats_changed` stops at the first gap.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseClosedError, DatabaseDoesNotExistError, UnavailableError } from '../../../common/errors.js';
import { makeTransactionId } from '../../../common/u1db/ids.js';
import { isNewer } from '../../../common/u1db/vectorclock.js';
import {
  assertUserDbName,
  decidePutIfNewer,
  textContent,
  docSizeBytes,
  KeyedMutex,
  validateGenAndTransId,
  validateSource,
} from '../common.js';
import type {
  Change,
  ChangesSince,
  DocumentStore,
  GenerationInfo,
  IncomingDoc,
  PutBatchResult,
  PutOutcome,
  StoredDoc,
  SentDoc,
  SyncInfoRecord,
  UploadSession,
} from '../types.js';
import { CouchError, mapMissingDb, seg, type CouchClient } from './client.js';
import { DEFAULT_LEASE_TIMING, WriteLease, type LeaseTiming } from './lease.js';
import {
  assertCouchDbName,
  assertStorableDocId,
  attachmentText,
  CONFLICTS_ATTACHMENT,
  CONTENT_ATTACHMENT,
  genDocId,
  generationsBetween,
  getLocalDoc,
  inlineAttachment,
  lastGeneration,
  putLocalDoc,
  readOrInitConfig,
  type AllDocsRow,
  type AttachmentInfo,
  type CouchSecurity,
  type GenDocBody,
  type UserDocBody,
} from './schema.js';

/** Local document keeping the bytes used by a database's documents (this port's addition). */
const USAGE_LOCAL_ID = 'soledad_usage';
/** Local document recording the generations of a commit in progress (this port's addition). */
const COMMIT_LOCAL_ID = 'soledad_commit';
/** Documents fetched per `_all_docs` request when reading. */
const READ_PAGE = 16;
/** Most bytes (roughly) of one `_bulk_docs` request. */
const BULK_BYTES = 4 * 1024 * 1024;
/** Most documents of one `_bulk_docs` request. */
const BULK_DOCS = 500;

interface SyncLogDoc { gen: number; trans_id: string; replica_uid?: string }

/** One generation of a commit in progress, with the revision its document is written at. */
interface CommitEntry { gen: number; doc_id: string; trans_id: string; rev: string }

/** What a database held for one document before the writer touched it. */
interface BaseDoc {
  readonly couchRev: string;
  readonly rev: string;
  readonly size: number;
  readonly hasConflicts: boolean;
  content?: string | null;
}

/** A document's state after the writer's changes. */
interface PendingDoc {
  readonly rev: string;
  readonly content: string | null;
  readonly size: number;
}

function sizeOf(doc: UserDocBody): number {
  const len = doc._attachments?.[CONTENT_ATTACHMENT]?.length ?? 0;
  return Buffer.byteLength(doc._id) + Buffer.byteLength(doc.u1db_rev ?? '') + len;
}

/** Options of {@link CouchDocumentStore}. */
export interface CouchDocumentStoreOptions {
  /** The server. */
  readonly client: CouchClient;
  /** Prefix of every database name (tests; empty in production). */
  readonly prefix: string;
  /** `_security` written into databases this store creates; `null` writes none. */
  readonly security: CouchSecurity | null;
  /** Write with `_bulk_docs` (option `batching`, default true); otherwise one request per document. */
  readonly batching: boolean;
  /** Lease timing. */
  readonly lease?: LeaseTiming;
}

/**
 * {@link DocumentStore} on CouchDB.
 *
 * @example
 * const store = new CouchDocumentStore({ client, prefix: '', security: DEFAULT_COUCH_SECURITY, batching: true });
 * await store.ensureDatabase('user-0123abcd');
 */
export class CouchDocumentStore implements DocumentStore {
  private readonly client: CouchClient;
  private readonly prefix: string;
  private readonly security: CouchSecurity | null;
  private readonly batching: boolean;
  private readonly leaseTiming: LeaseTiming;
  private readonly writers = new KeyedMutex();
  private readonly replicaUids = new Map<string, string>();
  private readonly sessions = new Set<CouchUploadSession>();
  private closed = false;

  constructor(options: CouchDocumentStoreOptions) {
    this.client = options.client;
    this.prefix = options.prefix;
    this.security = options.security;
    this.batching = options.batching;
    this.leaseTiming = options.lease ?? DEFAULT_LEASE_TIMING;
  }

  /** URL path of a user database (validated). */
  private path(dbName: string): string {
    if (this.closed) throw new DatabaseClosedError();
    assertUserDbName(dbName);
    assertCouchDbName(this.prefix + dbName);
    return `/${seg(this.prefix + dbName)}`;
  }

  private async replicaUidOf(dbName: string, dbPath: string): Promise<string> {
    const cached = this.replicaUids.get(dbName);
    if (cached !== undefined) return cached;
    const uid = await readOrInitConfig(this.client, dbPath, dbName);
    if (this.replicaUids.size > 10_000) this.replicaUids.clear();
    this.replicaUids.set(dbName, uid);
    return uid;
  }

  async ensureDatabase(dbName: string): Promise<{ replicaUid: string; created: boolean }> {
    const dbPath = this.path(dbName);
    return this.writers.run(dbName, async () => {
      const r = await this.client.request('PUT', dbPath, { accept: [412] });
      const created = r.status !== 412;
      if (created) {
        this.replicaUids.delete(dbName);
        if (this.security !== null) await this.client.request('PUT', `${dbPath}/_security`, { body: this.security });
      }
      const replicaUid = await this.replicaUidOf(dbName, dbPath);
      if (created) await putLocalDoc(this.client, dbPath, USAGE_LOCAL_ID, { bytes: 0 });
      return { replicaUid, created };
    });
  }

  async databaseExists(dbName: string): Promise<boolean> {
    const dbPath = this.path(dbName);
    const r = await this.client.request('HEAD', dbPath, { accept: [404] });
    return r.status !== 404;
  }

  async deleteDatabase(dbName: string): Promise<boolean> {
    const dbPath = this.path(dbName);
    return this.writers.run(dbName, async () => {
      this.replicaUids.delete(dbName);
      if (!(await this.databaseExists(dbName))) return false;
      const r = await this.client.request('DELETE', dbPath, { accept: [404] });
      return r.status !== 404;
    });
  }

  async getSyncInfo(dbName: string, sourceReplicaUid: string): Promise<SyncInfoRecord> {
    const dbPath = this.path(dbName);
    const replicaUid = await this.replicaUidOf(dbName, dbPath);
    const [last, known] = await Promise.all([
      lastGeneration(this.client, dbPath),
      getLocalDoc<SyncLogDoc>(this.client, dbPath, `sync_${sourceReplicaUid}`),
    ]);
    return {
      replicaUid,
      generation: last?.gen ?? 0,
      transactionId: last?.trans_id ?? '',
      sourceGeneration: known?.gen ?? 0,
      sourceTransactionId: known?.trans_id ?? '',
    };
  }

  async recordSyncInfo(dbName: string, sourceReplicaUid: string, generation: number, transactionId: string): Promise<void> {
    const dbPath = this.path(dbName);
    await this.replicaUidOf(dbName, dbPath);
    await putLocalDoc(this.client, dbPath, `sync_${sourceReplicaUid}`, { gen: generation, trans_id: transactionId, replica_uid: sourceReplicaUid });
  }

  async validateGenAndTransId(dbName: string, generation: number, transactionId: string): Promise<void> {
    const dbPath = this.path(dbName);
    await this.replicaUidOf(dbName, dbPath);
    if (generation === 0) return;
    let stored: string | undefined;
    try {
      stored = (await this.client.request<GenDocBody>('GET', `${dbPath}/${genDocId(generation)}`)).body.trans_id;
    } catch (err) {
      if (!(err instanceof CouchError && err.isMissingDocument)) mapMissingDb(err);
    }
    validateGenAndTransId(generation, transactionId, stored);
  }

  async putDocsIfNewer(dbName: string, sourceReplicaUid: string, docs: readonly IncomingDoc[]): Promise<PutBatchResult> {
    const session = await this.openUpload(dbName, sourceReplicaUid);
    try {
      const result = await session.putDocsIfNewer(docs);
      await session.commit();
      return result;
    } finally {
      await session.abort();
    }
  }

  async openUpload(dbName: string, sourceReplicaUid: string): Promise<UploadSession> {
    const dbPath = this.path(dbName);
    await this.replicaUidOf(dbName, dbPath);
    const release = await this.writers.lock(dbName);
    let lease: WriteLease | undefined;
    try {
      if (this.closed) throw new DatabaseClosedError();
      lease = await WriteLease.acquire(this.client, dbPath, this.leaseTiming);
      const replicaUid = await readOrInitConfig(this.client, dbPath, dbName);
      await this.finishInterruptedCommit(dbPath);
      const [last, known, usage] = await Promise.all([
        lastGeneration(this.client, dbPath),
        getLocalDoc<SyncLogDoc>(this.client, dbPath, `sync_${sourceReplicaUid}`),
        this.readUsage(dbPath),
      ]);
      const heldLease = lease;
      const session = new CouchUploadSession({
        client: this.client,
        dbPath,
        batching: this.batching,
        replicaUid,
        source: sourceReplicaUid,
        generation: last?.gen ?? 0,
        transactionId: last?.trans_id ?? '',
        known: known === null ? { generation: 0, transactionId: '' } : { generation: known.gen, transactionId: known.trans_id },
        usage: usage ?? await this.measureUsage(dbPath),
        lease: heldLease,
        onFinish: async () => {
          this.sessions.delete(session);
          try {
            await heldLease.release();
          } finally {
            release();
          }
        },
      });
      this.sessions.add(session);
      return session;
    } catch (err) {
      await lease?.release();
      release();
      throw err;
    }
  }

  /**
   * Finish the log of a commit that wrote (some of) its documents but not all of its generation documents (see
   * the file comment). Called with the lease held. An entry is logged when its generation document holds its
   * transaction id; an unlogged one fills its slot if the slot is still empty (a gap), and otherwise, if its
   * document was written at its revision, gets the next generation. The usage counter is measured again.
   */
  private async finishInterruptedCommit(dbPath: string): Promise<void> {
    const entries = ((await getLocalDoc<{ entries?: CommitEntry[] }>(this.client, dbPath, COMMIT_LOCAL_ID))?.entries ?? [])
      .slice().sort((x, y) => x.gen - y.gen);
    if (entries.length === 0) return;
    let top = (await lastGeneration(this.client, dbPath))?.gen ?? 0;
    const first = entries[0]!.gen;
    const slots = new Map((first <= top ? await generationsBetween(this.client, dbPath, first, top) : []).map((g) => [g.gen, g]));
    const latest = new Map(entries.map((e) => [e.doc_id, e]));
    const stored = new Map<string, string>();
    const ids = [...latest.keys()];
    for (let i = 0; i < ids.length; i += 200) {
      const r = await this.client.request<{ rows: Array<AllDocsRow<UserDocBody>> }>('POST', `${dbPath}/_all_docs`, {
        query: { include_docs: true },
        body: { keys: ids.slice(i, i + 200) },
      }).catch(mapMissingDb);
      for (const row of r.body.rows) if (row.doc?.u1db_rev !== undefined) stored.set(row.doc._id, row.doc.u1db_rev);
    }
    const genDocs: GenDocBody[] = [];
    for (const e of entries) {
      const slot = slots.get(e.gen);
      if (slot?.trans_id === e.trans_id) continue;
      if (slot === undefined && e.gen <= top) {
        genDocs.push({ _id: genDocId(e.gen), gen: e.gen, doc_id: e.doc_id, trans_id: e.trans_id });
      } else if (latest.get(e.doc_id) === e && stored.get(e.doc_id) === e.rev) {
        top += 1;
        genDocs.push({ _id: genDocId(top), gen: top, doc_id: e.doc_id, trans_id: e.trans_id });
      }
    }
    for (let i = 0; i < genDocs.length; i += BULK_DOCS) {
      const r = await this.client.request<Array<{ id: string; error?: string }>>(
        'POST', `${dbPath}/_bulk_docs`, { body: { docs: genDocs.slice(i, i + BULK_DOCS) } }).catch(mapMissingDb);
      const bad = r.body.find((x) => x.error !== undefined);
      if (bad !== undefined) throw new UnavailableError(`CouchDB refused generation document ${bad.id} (${bad.error ?? 'error'}) while finishing an interrupted commit`);
    }
    await putLocalDoc(this.client, dbPath, USAGE_LOCAL_ID, { bytes: await this.measureUsage(dbPath) });
    await putLocalDoc(this.client, dbPath, COMMIT_LOCAL_ID, { entries: [] });
  }

  async whatsChanged(dbName: string, generation: number): Promise<ChangesSince> {
    const dbPath = this.path(dbName);
    await this.replicaUidOf(dbName, dbPath);
    for (let attempt = 0; ; attempt++) {
      const last = await lastGeneration(this.client, dbPath);
      const top = last?.gen ?? 0;
      if (top <= generation) return { generation: top, transactionId: last?.trans_id ?? '', changes: [] };
      const gens = await generationsBetween(this.client, dbPath, generation + 1, top);
      // A commit in progress may have written later generation documents before earlier ones: answer only up to
      // the first gap (after a short wait for the writer), so no change is ever skipped.
      let contiguous = 0;
      while (contiguous < gens.length && gens[contiguous]!.gen === generation + 1 + contiguous) contiguous++;
      if (contiguous < top - generation && attempt < 20) {
        await sleep(25);
        continue;
      }
      const upTo = gens.slice(0, contiguous);
      const latest = new Map<string, GenDocBody>();
      for (const g of upTo) {
        latest.delete(g.doc_id);
        latest.set(g.doc_id, g);
      }
      const changes: Change[] = [...latest.values()].map((g) => ({ id: g.doc_id, generation: g.gen, transactionId: g.trans_id }));
      const end = upTo[upTo.length - 1];
      if (end === undefined) return { generation, transactionId: '', changes: [] };
      return { generation: end.gen, transactionId: end.trans_id, changes };
    }
  }

  getDocsToSend(dbName: string, ids: Iterable<string>): AsyncIterable<SentDoc> {
    return this.getDocs(dbName, ids);
  }

  async *getDocs(dbName: string, ids: Iterable<string>): AsyncIterable<StoredDoc> {
    const dbPath = this.path(dbName);
    await this.replicaUidOf(dbName, dbPath);
    let page: string[] = [];
    const self = this;
    async function* flush(wanted: string[]): AsyncGenerator<StoredDoc> {
      const r = await self.client.request<{ rows: Array<AllDocsRow<UserDocBody>> }>('POST', `${dbPath}/_all_docs`, {
        query: { include_docs: true, attachments: true },
        body: { keys: wanted },
      }).catch(mapMissingDb);
      for (const row of r.body.rows) {
        const doc = row.doc;
        if (doc === undefined || doc === null || doc.u1db_rev === undefined) continue;
        yield { id: doc._id, rev: doc.u1db_rev, content: attachmentText(doc._attachments?.[CONTENT_ATTACHMENT]) };
      }
    }
    for (const id of ids) {
      page.push(id);
      if (page.length >= READ_PAGE) {
        yield* flush(page);
        page = [];
      }
    }
    if (page.length > 0) yield* flush(page);
  }

  async usageBytes(dbName: string): Promise<number> {
    const dbPath = this.path(dbName);
    await this.replicaUidOf(dbName, dbPath);
    return (await this.readUsage(dbPath)) ?? await this.measureUsage(dbPath);
  }

  private async readUsage(dbPath: string): Promise<number | null> {
    const doc = await getLocalDoc<{ bytes?: unknown }>(this.client, dbPath, USAGE_LOCAL_ID);
    return typeof doc?.bytes === 'number' ? doc.bytes : null;
  }

  /** Sum the sizes of every document (a database written by the original has no usage counter yet). */
  private async measureUsage(dbPath: string): Promise<number> {
    let total = 0;
    let startkey: string | undefined;
    const PAGE = 1000;
    for (;;) {
      const r = await this.client.request<{ rows: Array<AllDocsRow<UserDocBody>> }>('GET', `${dbPath}/_all_docs`, {
        query: { include_docs: true, limit: PAGE + 1, ...(startkey === undefined ? {} : { startkey: JSON.stringify(startkey) }) },
      }).catch(mapMissingDb);
      const rows = r.body.rows;
      const pageRows = rows.length > PAGE ? rows.slice(0, PAGE) : rows;
      for (const row of pageRows) {
        if (row.doc?.u1db_rev !== undefined) total += sizeOf(row.doc);
      }
      if (rows.length <= PAGE) return total;
      startkey = rows[PAGE]!.key;
    }
  }

  /** Abort open sessions (their leases are released). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.sessions].map((s) => s.abort()));
  }
}

interface SessionInit {
  client: CouchClient;
  dbPath: string;
  batching: boolean;
  replicaUid: string;
  source: string;
  generation: number;
  transactionId: string;
  known: GenerationInfo;
  usage: number;
  lease: WriteLease;
  onFinish: () => Promise<void>;
}

interface WriteResult { id: string; ok: boolean; error?: string; reason?: string }

class CouchUploadSession implements UploadSession {
  private state: 'open' | 'failed' | 'done' = 'open';
  private finished = false;
  private readonly base = new Map<string, BaseDoc | null>();
  private readonly pending = new Map<string, PendingDoc>();
  private readonly gens: Array<{ gen: number; docId: string; transId: string }> = [];
  private generation: number;
  private transactionId: string;
  private known: GenerationInfo;
  private usage: number;
  private readonly startGeneration: number;

  constructor(private readonly s: SessionInit) {
    this.generation = s.generation;
    this.startGeneration = s.generation;
    this.transactionId = s.transactionId;
    this.known = s.known;
    this.usage = s.usage;
  }

  async putDocsIfNewer(docs: readonly IncomingDoc[]): Promise<PutBatchResult> {
    this.assertOpen();
    try {
      return await this.apply(docs);
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  private async apply(incoming: readonly IncomingDoc[]): Promise<PutBatchResult> {
    const docs = incoming.map(textContent);
    for (const d of docs) assertStorableDocId(d.id);
    await this.loadBase(docs.map((d) => d.id));
    const outcomes: PutOutcome[] = [];
    for (const doc of docs) {
      validateSource(this.known, doc.gen, doc.transId);
      const pend = this.pending.get(doc.id);
      const base = this.base.get(doc.id) ?? null;
      let cur: { rev: string; content: string | null; size: number } | null = null;
      if (pend !== undefined) {
        cur = pend;
      } else if (base !== null) {
        if (base.content === undefined && concurrent(base.rev, doc.rev)) base.content = await this.fetchContent(doc.id);
        cur = { rev: base.rev, content: base.content ?? null, size: base.size };
      }
      const decision = decidePutIfNewer(cur, { rev: doc.rev, content: doc.content }, this.s.replicaUid);
      if (decision.storeRev !== null) {
        this.generation += 1;
        this.transactionId = makeTransactionId();
        const size = docSizeBytes(doc.id, decision.storeRev, doc.content);
        this.usage += size - (cur?.size ?? 0);
        this.pending.set(doc.id, { rev: decision.storeRev, content: doc.content, size });
        this.gens.push({ gen: this.generation, docId: doc.id, transId: this.transactionId });
      }
      this.known = { generation: doc.gen, transactionId: doc.transId };
      outcomes.push({ id: doc.id, state: decision.state, atGeneration: this.generation });
    }
    return { outcomes, generation: this.generation, transactionId: this.transactionId };
  }

  /** Read the stored revision, size and attachment stubs of ids not seen yet (content only when needed). */
  private async loadBase(ids: readonly string[]): Promise<void> {
    const missing = [...new Set(ids)].filter((id) => !this.base.has(id) && !this.pending.has(id));
    for (let i = 0; i < missing.length; i += 200) {
      const keys = missing.slice(i, i + 200);
      const r = await this.s.client.request<{ rows: Array<AllDocsRow<UserDocBody>> }>('POST', `${this.s.dbPath}/_all_docs`, {
        query: { include_docs: true },
        body: { keys },
      }).catch(mapMissingDb);
      for (const key of keys) this.base.set(key, null);
      for (const row of r.body.rows) {
        const doc = row.doc;
        if (doc === undefined || doc === null || doc._rev === undefined || doc.u1db_rev === undefined) continue;
        this.base.set(doc._id, {
          couchRev: doc._rev,
          rev: doc.u1db_rev,
          size: sizeOf(doc),
          hasConflicts: doc._attachments?.[CONFLICTS_ATTACHMENT] !== undefined,
          ...(doc._attachments?.[CONTENT_ATTACHMENT] === undefined ? { content: null } : {}),
        });
      }
    }
  }

  private async fetchAttachment(docId: string, name: string): Promise<string | null> {
    try {
      const r = await this.s.client.request<{ _attachments?: Record<string, AttachmentInfo> }>(
        'GET', `${this.s.dbPath}/${seg(docId)}`, { query: { attachments: true } });
      return attachmentText(r.body._attachments?.[name]);
    } catch (err) {
      if (err instanceof CouchError && err.isMissingDocument) return null;
      return mapMissingDb(err);
    }
  }

  private async fetchContent(docId: string): Promise<string | null> {
    return this.fetchAttachment(docId, CONTENT_ATTACHMENT);
  }

  async usageBytes(): Promise<number> {
    this.assertOpen();
    return this.usage;
  }

  async commit(): Promise<GenerationInfo> {
    this.assertOpen();
    try {
      await this.writeAll();
      this.state = 'done';
      const info = { generation: this.generation, transactionId: this.transactionId };
      await this.finish();
      return info;
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  private async writeAll(): Promise<void> {
    const { client, dbPath } = this.s;
    if (this.s.lease.lost) throw new UnavailableError('Lost the write lease of the user database; nothing was written');
    // 0. The record the next writer finishes the log from, should this commit stop between steps 1 and 2.
    if (this.gens.length > 0) {
      const entries: CommitEntry[] = this.gens.map((e) => ({ gen: e.gen, doc_id: e.docId, trans_id: e.transId, rev: this.pending.get(e.docId)!.rev }));
      await putLocalDoc(client, dbPath, COMMIT_LOCAL_ID, { entries });
    }
    const written = new Set<string>();
    const failures: WriteResult[] = [];
    // 1. Documents, in bounded requests.
    let chunk: UserDocBody[] = [];
    let chunkBytes = 0;
    const flush = async (): Promise<void> => {
      if (chunk.length === 0) return;
      for (const res of await this.write(chunk)) {
        if (res.ok) written.add(res.id);
        else failures.push(res);
      }
      chunk = [];
      chunkBytes = 0;
    };
    for (const [id, p] of this.pending) {
      const body = await this.docBody(id, p);
      chunk.push(body);
      chunkBytes += p.size * 1.4 + 200;
      if (chunkBytes >= BULK_BYTES || chunk.length >= BULK_DOCS) await flush();
    }
    await flush();
    // 2. Generation documents for what was written (renumbered without the failures, so the log has no gap).
    let gens = this.gens;
    if (failures.length > 0) {
      let g = this.startGeneration;
      gens = this.gens.filter((e) => written.has(e.docId)).map((e) => ({ ...e, gen: ++g }));
    }
    const genDocs: GenDocBody[] = gens.map((e) => ({ _id: genDocId(e.gen), gen: e.gen, doc_id: e.docId, trans_id: e.transId }));
    for (let i = 0; i < genDocs.length; i += BULK_DOCS) {
      const results = await this.write(genDocs.slice(i, i + BULK_DOCS));
      const bad = results.find((r) => !r.ok);
      if (bad !== undefined) {
        throw new UnavailableError(`CouchDB refused generation document ${bad.id} (${bad.error ?? 'error'}): another writer without the lease?`);
      }
    }
    if (this.gens.length > 0) await putLocalDoc(client, dbPath, COMMIT_LOCAL_ID, { entries: [] });
    let usage = this.usage;
    if (failures.length > 0) {
      usage = this.usage - [...this.pending].filter(([id]) => !written.has(id)).reduce((n, [, p]) => n + p.size, 0);
    }
    await putLocalDoc(client, dbPath, USAGE_LOCAL_ID, { bytes: Math.max(0, usage) });
    if (failures.length > 0) {
      // The sync log is not advanced: the client sends the refused documents again.
      const f = failures[0]!;
      throw new UnavailableError(`CouchDB refused ${failures.length} document(s), e.g. ${f.id}: ${f.error ?? ''} ${f.reason ?? ''}`.trim());
    }
    // 3. The source's sync log entry.
    if (this.known !== this.s.known) {
      await putLocalDoc(client, dbPath, `sync_${this.s.source}`, {
        gen: this.known.generation, trans_id: this.known.transactionId, replica_uid: this.s.source,
      });
    }
  }

  private async docBody(id: string, p: PendingDoc): Promise<UserDocBody> {
    const base = this.base.get(id) ?? null;
    const body: UserDocBody = { _id: id, u1db_rev: p.rev };
    if (base !== null) body._rev = base.couchRev;
    const attachments: Record<string, AttachmentInfo> = {};
    if (p.content !== null) attachments[CONTENT_ATTACHMENT] = inlineAttachment(p.content);
    if (base?.hasConflicts === true) {
      // Conflicts stored by the original survive unless the new revision supersedes them (U1DB's pruning).
      const text = await this.fetchAttachment(id, CONFLICTS_ATTACHMENT);
      const kept = parseConflicts(text).filter(([rev]) => !isNewer(p.rev, rev));
      if (kept.length > 0) attachments[CONFLICTS_ATTACHMENT] = inlineAttachment(JSON.stringify(kept));
    }
    if (Object.keys(attachments).length > 0) body._attachments = attachments;
    return body;
  }

  /** Write documents with `_bulk_docs`, or one by one when batching is off. */
  private async write(docs: ReadonlyArray<UserDocBody | GenDocBody>): Promise<WriteResult[]> {
    const { client, dbPath } = this.s;
    if (this.s.batching) {
      const r = await client.request<Array<{ id: string; ok?: boolean; error?: string; reason?: string }>>(
        'POST', `${dbPath}/_bulk_docs`, { body: { docs } }).catch(mapMissingDb);
      return r.body.map((x) => ({ id: x.id, ok: x.ok === true && x.error === undefined, ...(x.error === undefined ? {} : { error: x.error }), ...(x.reason === undefined ? {} : { reason: x.reason }) }));
    }
    const out: WriteResult[] = [];
    for (const doc of docs) {
      try {
        await client.request('PUT', `${dbPath}/${seg(doc._id)}`, { body: doc });
        out.push({ id: doc._id, ok: true });
      } catch (err) {
        if (!(err instanceof CouchError)) throw err;
        if (err.isMissingDatabase) throw new DatabaseDoesNotExistError(undefined, { cause: err });
        out.push({ id: doc._id, ok: false, error: err.error, reason: err.reason });
      }
    }
    return out;
  }

  async abort(): Promise<void> {
    if (this.state === 'open') this.state = 'done';
    await this.finish();
  }

  private async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.s.onFinish();
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new DatabaseClosedError('This upload session is finished; abort it');
  }
}

/** Whether two revisions are concurrent (the only case where U1DB compares content). */
function concurrent(a: string, b: string): boolean {
  return a !== b && !isNewer(a, b) && !isNewer(b, a);
}

function parseConflicts(text: string | null): Array<[string, string | null]> {
  if (text === null) return [];
  try {
    const v: unknown = JSON.parse(text);
    if (!Array.isArray(v)) return [];
    return v.filter((e): e is [string, string | null] => Array.isArray(e) && typeof e[0] === 'string');
  } catch {
    return [];
  }
}
