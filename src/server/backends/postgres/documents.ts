/**
 * User databases of the PostgreSQL engine: every user's U1DB replica in shared tables keyed by database name.
 *
 * A write (one batch, or an upload session of many) is one transaction that first locks the database's row in
 * `user_databases` FOR UPDATE: writers of one user database take turns across all server processes, readers
 * never wait and see only committed generations. Inside one process writers also queue on an in-memory lock
 * first, so a waiting writer holds no pooled connection.
 */
import type { PoolClient } from 'pg';
import { DatabaseClosedError, DatabaseDoesNotExistError } from '../../../common/errors.js';
import { makeReplicaUid, makeTransactionId } from '../../../common/u1db/ids.js';
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
import { isPgError, type PgDatabase, type Queryable } from './connection.js';

/** Documents fetched per query by {@link PgDocumentStore.getDocs}. */
const GET_DOCS_PAGE = 32;

/** What a writer holds while it owns a database: the locked row, updated in memory as documents are applied. */
interface WriterState {
  readonly dbName: string;
  readonly replicaUid: string;
  generation: number;
  transactionId: string;
  usage: number;
}

interface CurrentRow { rev: string; size: number; content?: string | null }

async function lockDatabase(c: Queryable, dbName: string): Promise<WriterState> {
  const r = await c.query<{ replica_uid: string; generation: number; transaction_id: string; usage_bytes: number }>(
    'SELECT replica_uid, generation, transaction_id, usage_bytes FROM user_databases WHERE db_name = $1 FOR UPDATE',
    [dbName],
  );
  const row = r.rows[0];
  if (row === undefined) throw new DatabaseDoesNotExistError();
  return { dbName, replicaUid: row.replica_uid, generation: row.generation, transactionId: row.transaction_id, usage: row.usage_bytes };
}

/**
 * Apply one batch inside the caller's transaction (the database row is locked). Decisions are made in memory
 * against the stored state plus the batch's own earlier documents; the rows are written with one statement per
 * table at the end, so a failing document leaves nothing of the batch behind.
 */
async function applyBatch(c: Queryable, st: WriterState, source: string, incoming: readonly IncomingDoc[]): Promise<PutBatchResult> {
  const docs = incoming.map(textContent);
  const ids = [...new Set(docs.map((d) => d.id))];
  const current = new Map<string, CurrentRow>();
  if (ids.length > 0) {
    const r = await c.query<{ doc_id: string; rev: string; size: number }>(
      'SELECT doc_id, rev, size FROM documents WHERE db_name = $1 AND doc_id = ANY($2::text[])',
      [st.dbName, ids],
    );
    for (const row of r.rows) current.set(row.doc_id, { rev: row.rev, size: row.size });
  }
  const knownRow = await c.query<{ known_generation: number; known_transaction_id: string }>(
    'SELECT known_generation, known_transaction_id FROM sync_log WHERE db_name = $1 AND replica_uid = $2',
    [st.dbName, source],
  );
  let known: GenerationInfo = knownRow.rows[0] === undefined
    ? { generation: 0, transactionId: '' }
    : { generation: knownRow.rows[0].known_generation, transactionId: knownRow.rows[0].known_transaction_id };

  let { generation, transactionId, usage } = st;
  const logGens: number[] = [];
  const logIds: string[] = [];
  const logTrans: string[] = [];
  const stored = new Map<string, { rev: string; content: string | null; generation: number; size: number }>();
  const outcomes: PutOutcome[] = [];
  for (const doc of docs) {
    validateSource(known, doc.gen, doc.transId);
    const cur = current.get(doc.id);
    let curDoc: { rev: string; content: string | null } | null = null;
    if (cur !== undefined) {
      // Content only matters when the revisions are concurrent; fetch it then, never for the common case.
      if (cur.content === undefined && needsContent(cur.rev, doc.rev)) {
        const r = await c.query<{ content: string | null }>(
          'SELECT content FROM documents WHERE db_name = $1 AND doc_id = $2', [st.dbName, doc.id]);
        cur.content = r.rows[0]?.content ?? null;
      }
      curDoc = { rev: cur.rev, content: cur.content ?? null };
    }
    const decision = decidePutIfNewer(curDoc, { rev: doc.rev, content: doc.content }, st.replicaUid);
    if (decision.storeRev !== null) {
      generation += 1;
      transactionId = makeTransactionId();
      const size = docSizeBytes(doc.id, decision.storeRev, doc.content);
      usage += size - (cur?.size ?? 0);
      logGens.push(generation);
      logIds.push(doc.id);
      logTrans.push(transactionId);
      stored.set(doc.id, { rev: decision.storeRev, content: doc.content, generation, size });
      current.set(doc.id, { rev: decision.storeRev, size, content: doc.content });
    }
    known = { generation: doc.gen, transactionId: doc.transId };
    outcomes.push({ id: doc.id, state: decision.state, atGeneration: generation });
  }

  if (logGens.length > 0) {
    await c.query(
      `INSERT INTO transaction_log (db_name, generation, doc_id, transaction_id)
       SELECT $1, g, d, t FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(g, d, t)`,
      [st.dbName, logGens, logIds, logTrans],
    );
    const docIds = [...stored.keys()];
    const rows = [...stored.values()];
    await c.query(
      `INSERT INTO documents (db_name, doc_id, rev, content, generation, size)
       SELECT $1, i, r, c, g, s FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) AS u(i, r, c, g, s)
       ON CONFLICT (db_name, doc_id) DO UPDATE SET rev = excluded.rev, content = excluded.content,
         generation = excluded.generation, size = excluded.size`,
      [st.dbName, docIds, rows.map((x) => x.rev), rows.map((x) => x.content), rows.map((x) => x.generation), rows.map((x) => x.size)],
    );
    await c.query(
      'UPDATE user_databases SET generation = $2, transaction_id = $3, usage_bytes = $4 WHERE db_name = $1',
      [st.dbName, generation, transactionId, usage],
    );
  }
  if (docs.length > 0) await upsertSyncLog(c, st.dbName, source, known.generation, known.transactionId);
  st.generation = generation;
  st.transactionId = transactionId;
  st.usage = usage;
  return { outcomes, generation, transactionId };
}

/** Whether deciding between these revisions depends on content: only when they are concurrent (§2b step 5). */
function needsContent(stored: string, incoming: string): boolean {
  return stored !== incoming && !isNewer(incoming, stored) && !isNewer(stored, incoming);
}

async function upsertSyncLog(c: Queryable, dbName: string, source: string, generation: number, transactionId: string): Promise<void> {
  await c.query(
    `INSERT INTO sync_log (db_name, replica_uid, known_generation, known_transaction_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (db_name, replica_uid) DO UPDATE SET known_generation = excluded.known_generation,
       known_transaction_id = excluded.known_transaction_id`,
    [dbName, source, generation, transactionId],
  );
}

/**
 * {@link DocumentStore} on PostgreSQL.
 *
 * @example
 * const store = new PgDocumentStore(db);
 * await store.ensureDatabase('user-0123abcd');
 */
export class PgDocumentStore implements DocumentStore {
  private readonly writers = new KeyedMutex();
  private readonly sessions = new Set<PgUploadSession>();
  private closed = false;

  constructor(private readonly db: PgDatabase) {}

  private check(dbName: string): void {
    if (this.closed) throw new DatabaseClosedError();
    assertUserDbName(dbName);
  }

  async ensureDatabase(dbName: string): Promise<{ replicaUid: string; created: boolean }> {
    this.check(dbName);
    const ins = await this.db.query<{ replica_uid: string }>(
      'INSERT INTO user_databases (db_name, replica_uid) VALUES ($1, $2) ON CONFLICT (db_name) DO NOTHING RETURNING replica_uid',
      [dbName, makeReplicaUid()],
    );
    if (ins.rows[0] !== undefined) return { replicaUid: ins.rows[0].replica_uid, created: true };
    const r = await this.db.query<{ replica_uid: string }>('SELECT replica_uid FROM user_databases WHERE db_name = $1', [dbName]);
    // Deleted between the two statements: create it again.
    if (r.rows[0] === undefined) return this.ensureDatabase(dbName);
    return { replicaUid: r.rows[0].replica_uid, created: false };
  }

  async databaseExists(dbName: string): Promise<boolean> {
    this.check(dbName);
    const r = await this.db.query('SELECT 1 FROM user_databases WHERE db_name = $1', [dbName]);
    return r.rows.length > 0;
  }

  async deleteDatabase(dbName: string): Promise<boolean> {
    this.check(dbName);
    return this.writers.run(dbName, async () => {
      const r = await this.db.query('DELETE FROM user_databases WHERE db_name = $1', [dbName]);
      return (r.rowCount ?? 0) > 0;
    });
  }

  async getSyncInfo(dbName: string, sourceReplicaUid: string): Promise<SyncInfoRecord> {
    this.check(dbName);
    const r = await this.db.query<{
      replica_uid: string; generation: number; transaction_id: string;
      known_generation: number | null; known_transaction_id: string | null;
    }>(
      `SELECT d.replica_uid, d.generation, d.transaction_id, s.known_generation, s.known_transaction_id
       FROM user_databases d LEFT JOIN sync_log s ON s.db_name = d.db_name AND s.replica_uid = $2
       WHERE d.db_name = $1`,
      [dbName, sourceReplicaUid],
    );
    const row = r.rows[0];
    if (row === undefined) throw new DatabaseDoesNotExistError();
    return {
      replicaUid: row.replica_uid,
      generation: row.generation,
      transactionId: row.transaction_id,
      sourceGeneration: row.known_generation ?? 0,
      sourceTransactionId: row.known_transaction_id ?? '',
    };
  }

  async recordSyncInfo(dbName: string, sourceReplicaUid: string, generation: number, transactionId: string): Promise<void> {
    this.check(dbName);
    try {
      await upsertSyncLog(this.db, dbName, sourceReplicaUid, generation, transactionId);
    } catch (err) {
      if (isPgError(err, '23503')) throw new DatabaseDoesNotExistError(undefined, { cause: err });
      throw err;
    }
  }

  async validateGenAndTransId(dbName: string, generation: number, transactionId: string): Promise<void> {
    this.check(dbName);
    const r = await this.db.query<{ t: string | null }>(
      `SELECT (SELECT transaction_id FROM transaction_log WHERE db_name = $1 AND generation = $2) AS t
       FROM user_databases WHERE db_name = $1`,
      [dbName, generation],
    );
    const row = r.rows[0];
    if (row === undefined) throw new DatabaseDoesNotExistError();
    validateGenAndTransId(generation, transactionId, row.t ?? undefined);
  }

  async putDocsIfNewer(dbName: string, sourceReplicaUid: string, docs: readonly IncomingDoc[]): Promise<PutBatchResult> {
    this.check(dbName);
    return this.writers.run(dbName, () => this.db.transaction(async (c) => {
      const st = await lockDatabase(c, dbName);
      return applyBatch(c, st, sourceReplicaUid, docs);
    }));
  }

  async openUpload(dbName: string, sourceReplicaUid: string): Promise<UploadSession> {
    this.check(dbName);
    const release = await this.writers.lock(dbName);
    let client: PoolClient | undefined;
    try {
      if (this.closed) throw new DatabaseClosedError();
      client = await this.db.connect();
      await client.query('BEGIN');
      const st = await lockDatabase(client, dbName);
      const session = new PgUploadSession(client, st, sourceReplicaUid, () => {
        this.sessions.delete(session);
        release();
      });
      this.sessions.add(session);
      return session;
    } catch (err) {
      if (client !== undefined) {
        let broken = false;
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        client.release(broken);
      }
      release();
      throw err;
    }
  }

  async whatsChanged(dbName: string, generation: number): Promise<ChangesSince> {
    this.check(dbName);
    // One statement, so the current generation and the changes come from the same snapshot.
    const r = await this.db.query<{
      cur_gen: number; cur_trans: string; doc_id: string | null; generation: number | null; transaction_id: string | null;
    }>(
      `SELECT d.generation AS cur_gen, d.transaction_id AS cur_trans, c.doc_id, c.generation, t.transaction_id
       FROM user_databases d
       LEFT JOIN documents c ON c.db_name = d.db_name AND c.generation > $2
       LEFT JOIN transaction_log t ON t.db_name = d.db_name AND t.generation = c.generation
       WHERE d.db_name = $1
       ORDER BY c.generation`,
      [dbName, generation],
    );
    const first = r.rows[0];
    if (first === undefined) throw new DatabaseDoesNotExistError();
    const changes: Change[] = [];
    for (const row of r.rows) {
      if (row.doc_id === null) continue;
      changes.push({ id: row.doc_id, generation: row.generation!, transactionId: row.transaction_id ?? '' });
    }
    return { generation: first.cur_gen, transactionId: first.cur_trans, changes };
  }

  getDocsToSend(dbName: string, ids: Iterable<string>): AsyncIterable<SentDoc> {
    return this.getDocs(dbName, ids);
  }

  async *getDocs(dbName: string, ids: Iterable<string>): AsyncIterable<StoredDoc> {
    if (!(await this.databaseExists(dbName))) throw new DatabaseDoesNotExistError();
    let page: string[] = [];
    const flush = async function* (this: PgDocumentStore, wanted: string[]): AsyncGenerator<StoredDoc> {
      const r = await this.db.query<{ doc_id: string; rev: string; content: string | null }>(
        'SELECT doc_id, rev, content FROM documents WHERE db_name = $1 AND doc_id = ANY($2::text[])',
        [dbName, wanted],
      );
      const byId = new Map(r.rows.map((row) => [row.doc_id, row]));
      for (const id of wanted) {
        const row = byId.get(id);
        if (row !== undefined) yield { id, rev: row.rev, content: row.content };
      }
    };
    for (const id of ids) {
      page.push(id);
      if (page.length >= GET_DOCS_PAGE) {
        yield* flush.call(this, page);
        page = [];
      }
    }
    if (page.length > 0) yield* flush.call(this, page);
  }

  async usageBytes(dbName: string): Promise<number> {
    this.check(dbName);
    const r = await this.db.query<{ usage_bytes: number }>('SELECT usage_bytes FROM user_databases WHERE db_name = $1', [dbName]);
    if (r.rows[0] === undefined) throw new DatabaseDoesNotExistError();
    return r.rows[0].usage_bytes;
  }

  /** Abort open upload sessions; the pool itself is closed by the backend. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.sessions].map((s) => s.abort()));
  }
}

class PgUploadSession implements UploadSession {
  private state: 'open' | 'failed' | 'done' = 'open';
  private finished = false;

  constructor(
    private readonly client: PoolClient,
    private readonly st: WriterState,
    private readonly source: string,
    private readonly onFinish: () => void,
  ) {}

  async putDocsIfNewer(docs: readonly IncomingDoc[]): Promise<PutBatchResult> {
    this.assertOpen();
    try {
      return await applyBatch(this.client, this.st, this.source, docs);
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  async usageBytes(): Promise<number> {
    this.assertOpen();
    return this.st.usage;
  }

  async commit(): Promise<GenerationInfo> {
    this.assertOpen();
    try {
      await this.client.query('COMMIT');
      this.state = 'done';
      this.finish(false);
      return { generation: this.st.generation, transactionId: this.st.transactionId };
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.finished) return;
    this.state = 'done';
    let broken = false;
    try {
      await this.client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    this.finish(broken);
  }

  private finish(broken: boolean): void {
    if (this.finished) return;
    this.finished = true;
    try {
      this.client.release(broken);
    } finally {
      this.onFinish();
    }
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new DatabaseClosedError('This upload session is finished; abort it');
  }
}
