/**
 * The local blobs database `<uuid>_blobs.db` (fact sheet §4d): a SQLCipher file keyed like the documents database,
 * holding each blob's cleartext in bounded chunks (so a blob never has to sit whole in memory, which the
 * original's single `payload` column required) and its namespace and sync status.
 *
 * A blob's content becomes visible only when its entry says so (`has_content = 1`), set in the same transaction
 * as the last chunk: a crash or a failed tag check never leaves a half blob readable. Chunks without such an entry
 * are swept on open.
 */
import type Database from 'better-sqlite3-multiple-ciphers';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { DatabaseClosedError } from '../../common/errors.js';
import { openSqlCipher } from '../db/sqlcipher.js';

/**
 * A blob's local synchronization status (the original's `SyncStatus`). Stored as the original's integers.
 *
 * - `SYNCED`: the blob is both here and on the server.
 * - `PENDING_UPLOAD`: stored here, not yet uploaded.
 * - `PENDING_DOWNLOAD`: known on the server, not yet downloaded.
 * - `FAILED_UPLOAD`: reserved by the original; unused.
 * - `FAILED_DOWNLOAD`: downloads kept failing tag verification; never stored.
 * - `PENDING_DELETE`: deleted here, the server deletion still to do.
 * - `LOCAL_ONLY`: stored here and never sent.
 */
export type BlobSyncStatus =
  | 'SYNCED'
  | 'PENDING_UPLOAD'
  | 'PENDING_DOWNLOAD'
  | 'FAILED_UPLOAD'
  | 'FAILED_DOWNLOAD'
  | 'PENDING_DELETE'
  | 'LOCAL_ONLY';

/** Named statuses, e.g. `SyncStatus.SYNCED`. */
export const SyncStatus = {
  SYNCED: 'SYNCED',
  PENDING_UPLOAD: 'PENDING_UPLOAD',
  PENDING_DOWNLOAD: 'PENDING_DOWNLOAD',
  FAILED_UPLOAD: 'FAILED_UPLOAD',
  FAILED_DOWNLOAD: 'FAILED_DOWNLOAD',
  PENDING_DELETE: 'PENDING_DELETE',
  LOCAL_ONLY: 'LOCAL_ONLY',
} as const satisfies Record<BlobSyncStatus, BlobSyncStatus>;

/** The original's integer codes (`client/_db/blobs/sql.py`). */
export const SYNC_STATUS_CODES: Readonly<Record<BlobSyncStatus, number>> = {
  SYNCED: 1,
  PENDING_UPLOAD: 2,
  PENDING_DOWNLOAD: 3,
  FAILED_UPLOAD: 4,
  FAILED_DOWNLOAD: 5,
  PENDING_DELETE: 6,
  LOCAL_ONLY: 7,
};

const STATUS_BY_CODE = new Map<number, BlobSyncStatus>(
  Object.entries(SYNC_STATUS_CODES).map(([k, v]) => [v, k as BlobSyncStatus]),
);

/** Default size of one stored chunk. */
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
/** Page cache of the blobs connection (KiB): blobs stream through, so a small cache keeps memory flat. */
const BLOBS_CACHE_KIB = 4096;

/** One blob's row. */
export interface LocalBlobEntry {
  /** The blob's namespace. */
  namespace: string;
  /** The blob. */
  blobId: string;
  /** Where it stands with the server. */
  status: BlobSyncStatus;
  /** Cleartext size, when the content is here. */
  size: number | null;
  /** True when the content is stored locally. */
  hasContent: boolean;
  /** Failed tag verifications so far. */
  retries: number;
  /** Milliseconds since the epoch when the entry was created. */
  createdAt: number;
}

interface EntryRow {
  namespace: string;
  blob_id: string;
  sync_status: number;
  size: number | null;
  has_content: number;
  retries: number;
  created_at: number;
}

function toEntry(row: EntryRow): LocalBlobEntry {
  return {
    namespace: row.namespace,
    blobId: row.blob_id,
    status: STATUS_BY_CODE.get(row.sync_status) ?? 'PENDING_UPLOAD',
    size: row.size,
    hasContent: row.has_content === 1,
    retries: row.retries,
    createdAt: row.created_at,
  };
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS blob_entries (
    namespace TEXT NOT NULL,
    blob_id TEXT NOT NULL,
    sync_status INTEGER NOT NULL,
    size INTEGER,
    has_content INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, blob_id)
  )`,
  'CREATE INDEX IF NOT EXISTS blob_entries_status ON blob_entries (sync_status, namespace)',
  `CREATE TABLE IF NOT EXISTS blob_chunks (
    namespace TEXT NOT NULL,
    blob_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (namespace, blob_id, seq)
  )`,
];

/** Receives a blob's cleartext chunk by chunk; nothing is visible until {@link ChunkWriter.commit}. */
export interface ChunkWriter {
  /** Append bytes (buffered up to one chunk). */
  write(data: Uint8Array): void;
  /** Bytes written so far. */
  readonly size: number;
  /** Make the content visible with this status, atomically with the last chunk. Fails if it is already there. */
  commit(status: BlobSyncStatus): void;
  /** Drop everything written. Safe after commit (then a no-op). */
  abort(): void;
}

/**
 * The local blobs database.
 *
 * @example
 * const local = LocalBlobStore.open('/home/me/.soledad/0123abcd_blobs.db', key);
 * const w = local.writer('default', 'blob-1');
 * w.write(Buffer.from('hi')); w.commit('PENDING_UPLOAD');
 * local.read('default', 'blob-1').pipe(process.stdout);
 */
export class LocalBlobStore {
  private closed = false;
  private readonly busy = new Set<string>();
  private readonly stmts;

  /** Wrap an open, keyed connection (creates the tables). */
  constructor(private readonly db: Database.Database, private readonly chunkSize = DEFAULT_CHUNK_SIZE) {
    for (const sql of SCHEMA) db.exec(sql);
    db.pragma(`cache_size = -${BLOBS_CACHE_KIB}`);
    this.stmts = {
      entry: db.prepare<[string, string], EntryRow>('SELECT * FROM blob_entries WHERE namespace = ? AND blob_id = ?'),
      insertChunk: db.prepare('INSERT OR REPLACE INTO blob_chunks (namespace, blob_id, seq, data) VALUES (?, ?, ?, ?)'),
      chunk: db.prepare<[string, string, number], { data: Buffer }>(
        'SELECT data FROM blob_chunks WHERE namespace = ? AND blob_id = ? AND seq = ?',
      ),
      deleteChunks: db.prepare('DELETE FROM blob_chunks WHERE namespace = ? AND blob_id = ?'),
      upsertContent: db.prepare(`INSERT INTO blob_entries (namespace, blob_id, sync_status, size, has_content, retries, created_at)
        VALUES (@namespace, @blobId, @status, @size, 1, 0, @now)
        ON CONFLICT (namespace, blob_id) DO UPDATE SET sync_status = @status, size = @size, has_content = 1`),
      upsertStatus: db.prepare(`INSERT INTO blob_entries (namespace, blob_id, sync_status, size, has_content, retries, created_at)
        VALUES (@namespace, @blobId, @status, NULL, 0, 0, @now)
        ON CONFLICT (namespace, blob_id) DO UPDATE SET sync_status = @status`),
      deleteEntry: db.prepare('DELETE FROM blob_entries WHERE namespace = ? AND blob_id = ?'),
      dropContent: db.prepare('UPDATE blob_entries SET has_content = 0, size = NULL WHERE namespace = ? AND blob_id = ?'),
      incRetries: db.prepare('UPDATE blob_entries SET retries = retries + 1 WHERE namespace = ? AND blob_id = ? RETURNING retries'),
      resetRetries: db.prepare('UPDATE blob_entries SET retries = 0 WHERE namespace = ? AND blob_id = ?'),
      listContent: db.prepare<[string], { blob_id: string }>(
        'SELECT blob_id FROM blob_entries WHERE namespace = ? AND has_content = 1 ORDER BY created_at, blob_id',
      ),
      listStatus: db.prepare<[number, string], { blob_id: string }>(
        'SELECT blob_id FROM blob_entries WHERE sync_status = ? AND namespace = ? ORDER BY created_at, blob_id',
      ),
      listStatusAll: db.prepare<[number], { namespace: string; blob_id: string }>(
        'SELECT namespace, blob_id FROM blob_entries WHERE sync_status = ? ORDER BY created_at, blob_id',
      ),
      progress: db.prepare<[], { sync_status: number; n: number }>(
        'SELECT sync_status, count(*) AS n FROM blob_entries GROUP BY sync_status',
      ),
    };
    this.importOriginalTables();
    // Chunks not owned by a committed entry were left by a crash mid-write.
    db.exec(`DELETE FROM blob_chunks WHERE NOT EXISTS (SELECT 1 FROM blob_entries e
      WHERE e.namespace = blob_chunks.namespace AND e.blob_id = blob_chunks.blob_id AND e.has_content = 1)`);
  }

  /**
   * A `<uuid>_blobs.db` written by the original client keeps each blob whole in `blobs(blob_id, payload,
   * namespace, …)` and its status in `sync_state` (same integer codes). Move those rows into our tables once, in
   * one transaction, and rename the old tables so the import never runs twice.
   */
  private importOriginalTables(): void {
    const db = this.db;
    const table = (name: string): boolean =>
      db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
    if (!table('blobs')) return;
    const columns = (db.prepare('PRAGMA table_info(blobs)').all() as Array<{ name: string }>).map((c) => c.name);
    if (!columns.includes('payload')) return;
    const hasNs = columns.includes('namespace');
    const hasSyncState = table('sync_state');
    const statusOf = new Map<string, number>();
    if (hasSyncState) {
      for (const r of db.prepare('SELECT blob_id, namespace, sync_status FROM sync_state').all() as Array<{
        blob_id: string; namespace: string | null; sync_status: number | null;
      }>) {
        statusOf.set(`${r.namespace || 'default'}\u0000${r.blob_id}`, r.sync_status ?? SYNC_STATUS_CODES.PENDING_UPLOAD);
      }
    }
    const insertEntry = db.prepare(`INSERT OR IGNORE INTO blob_entries
      (namespace, blob_id, sync_status, size, has_content, retries, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)`);
    db.transaction(() => {
      const now = Date.now();
      // Row ids first, then one payload at a time: the driver cannot write while a read cursor is open.
      const rows = db.prepare(`SELECT rowid AS rid, blob_id, ${hasNs ? 'namespace' : "'' AS namespace"} FROM blobs`)
        .all() as Array<{ rid: number; blob_id: string; namespace: string | null }>;
      const payloadOf = db.prepare('SELECT payload FROM blobs WHERE rowid = ?').pluck();
      const seen = new Set<string>();
      for (const r of rows) {
        const ns = r.namespace || 'default';
        const key = `${ns}\u0000${r.blob_id}`;
        seen.add(key);
        const payload = (payloadOf.get(r.rid) as Buffer | null | undefined) ?? Buffer.alloc(0);
        const status = statusOf.get(key) ?? SYNC_STATUS_CODES.PENDING_UPLOAD;
        if (insertEntry.run(ns, r.blob_id, status, payload.length, 1, now).changes === 0) continue;
        for (let seq = 0, off = 0; off < payload.length; seq += 1, off += this.chunkSize) {
          this.stmts.insertChunk.run(ns, r.blob_id, seq, payload.subarray(off, off + this.chunkSize));
        }
      }
      // Statuses without content (pending downloads, failed ones) come over as content-less entries.
      for (const [key, status] of statusOf) {
        if (seen.has(key)) continue;
        const [ns, id] = key.split('\u0000') as [string, string];
        insertEntry.run(ns, id, status, null, 0, now);
      }
      db.exec('ALTER TABLE blobs RENAME TO original_blobs_imported');
      if (hasSyncState) db.exec('ALTER TABLE sync_state RENAME TO original_sync_state_imported');
    })();
  }

  /**
   * Open (or create) the SQLCipher file with the same raw key as the documents database.
   *
   * @example
   * const local = LocalBlobStore.open(join(dir, `${uuid}_blobs.db`), key);
   */
  static open(path: string, key: Buffer, chunkSize = DEFAULT_CHUNK_SIZE): LocalBlobStore {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const { db } = openSqlCipher(path, { mode: 'encrypted', key });
    try {
      return new LocalBlobStore(db, chunkSize);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private check(): void {
    if (this.closed) throw new DatabaseClosedError('The local blobs database is closed');
  }

  /** The entry of a blob, if any. */
  entry(namespace: string, blobId: string): LocalBlobEntry | undefined {
    this.check();
    const row = this.stmts.entry.get(namespace, blobId);
    return row === undefined ? undefined : toEntry(row);
  }

  /** True when a write of this blob is in progress in this process. */
  isBusy(namespace: string, blobId: string): boolean {
    return this.busy.has(`${namespace}\u0000${blobId}`);
  }

  /**
   * Start writing a blob's content. Only one writer per blob at a time, and never over content already stored
   * (blobs are immutable): both throw. Nothing is visible before {@link ChunkWriter.commit}.
   */
  writer(namespace: string, blobId: string): ChunkWriter {
    this.check();
    const key = `${namespace}\u0000${blobId}`;
    if (this.busy.has(key)) throw new Error(`blob ${blobId} is already being written`);
    if (this.entry(namespace, blobId)?.hasContent === true) throw new Error(`blob ${blobId} already has content`);
    this.busy.add(key);
    const { stmts, db } = this;
    const chunkSize = this.chunkSize;
    // Chunks go straight to their final rows: they stay invisible (has_content = 0) until the commit.
    stmts.deleteChunks.run(namespace, blobId);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let seq = 0;
    let size = 0;
    let done = false;
    const flushFull = (): void => {
      while (pendingBytes >= chunkSize) {
        const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        stmts.insertChunk.run(namespace, blobId, seq, all.subarray(0, chunkSize));
        seq += 1;
        const rest = all.subarray(chunkSize);
        pending = rest.length > 0 ? [Buffer.from(rest)] : [];
        pendingBytes = rest.length;
      }
    };
    const finish = (): void => {
      done = true;
      this.busy.delete(key);
    };
    return {
      get size() {
        return size;
      },
      write: (data: Uint8Array): void => {
        if (done) throw new Error('writer already finished');
        this.check();
        if (data.length === 0) return;
        pending.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
        pendingBytes += data.length;
        size += data.length;
        flushFull();
      },
      commit: (status: BlobSyncStatus): void => {
        if (done) throw new Error('writer already finished');
        this.check();
        try {
          db.transaction(() => {
            if (pendingBytes > 0) {
              stmts.insertChunk.run(namespace, blobId, seq, pending.length === 1 ? pending[0]! : Buffer.concat(pending));
            }
            stmts.upsertContent.run({ namespace, blobId, status: SYNC_STATUS_CODES[status], size, now: Date.now() });
          })();
        } finally {
          pending = [];
          finish();
        }
      },
      abort: (): void => {
        if (done) return;
        pending = [];
        finish();
        if (!this.closed) stmts.deleteChunks.run(namespace, blobId);
      },
    };
  }

  /**
   * Stream a blob's content (chunks are read one at a time, on demand). Throws if the content is not here.
   */
  read(namespace: string, blobId: string): Readable {
    this.check();
    const entry = this.entry(namespace, blobId);
    if (entry === undefined || !entry.hasContent) throw new Error(`blob ${blobId} has no local content`);
    let seq = 0;
    let remaining = entry.size ?? 0;
    const nextChunk = (n: number): { data: Buffer } | undefined =>
      this.closed ? undefined : this.stmts.chunk.get(namespace, blobId, n);
    return new Readable({
      // One chunk at a time: the stream's own buffer never holds more than a chunk or two.
      highWaterMark: 1,
      read(): void {
        if (remaining <= 0) {
          this.push(null);
          return;
        }
        let row: { data: Buffer } | undefined;
        try {
          row = nextChunk(seq);
        } catch (err) {
          this.destroy(err as Error);
          return;
        }
        if (row === undefined) {
          this.destroy(new Error(`blob ${blobId} vanished while being read`));
          return;
        }
        seq += 1;
        remaining -= row.data.length;
        this.push(row.data);
      },
    });
  }

  /** Set a blob's status, creating a content-less entry when there is none. */
  setStatus(namespace: string, blobId: string, status: BlobSyncStatus): void {
    this.check();
    this.stmts.upsertStatus.run({ namespace, blobId, status: SYNC_STATUS_CODES[status], now: Date.now() });
  }

  /** Set many statuses in one transaction. */
  setStatuses(namespace: string, blobIds: readonly string[], status: BlobSyncStatus): void {
    this.check();
    const code = SYNC_STATUS_CODES[status];
    const now = Date.now();
    this.db.transaction(() => {
      for (const blobId of blobIds) this.stmts.upsertStatus.run({ namespace, blobId, status: code, now });
    })();
  }

  /** Count one more failed verification; returns the new count. */
  incrementRetries(namespace: string, blobId: string): number {
    this.check();
    const row = this.stmts.incRetries.get(namespace, blobId) as { retries: number } | undefined;
    return row?.retries ?? 0;
  }

  /** Forget failed verifications. */
  resetRetries(namespace: string, blobId: string): void {
    this.check();
    this.stmts.resetRetries.run(namespace, blobId);
  }

  /** Remove the content, keeping the entry (and its status). */
  dropContent(namespace: string, blobId: string): void {
    this.check();
    this.db.transaction(() => {
      this.stmts.dropContent.run(namespace, blobId);
      this.stmts.deleteChunks.run(namespace, blobId);
    })();
  }

  /** Remove a blob entirely (entry and content). */
  remove(namespace: string, blobId: string): void {
    this.check();
    this.db.transaction(() => {
      this.stmts.deleteEntry.run(namespace, blobId);
      this.stmts.deleteChunks.run(namespace, blobId);
    })();
  }

  /** Ids whose content is stored here, oldest first. */
  list(namespace: string): string[] {
    this.check();
    return this.stmts.listContent.all(namespace).map((r) => r.blob_id);
  }

  /** Ids with a given status in a namespace, oldest first. */
  listStatus(status: BlobSyncStatus, namespace: string): string[] {
    this.check();
    return this.stmts.listStatus.all(SYNC_STATUS_CODES[status], namespace).map((r) => r.blob_id);
  }

  /** `[namespace, id]` of every blob with a given status, oldest first (for resuming after a restart). */
  listStatusAll(status: BlobSyncStatus): Array<[string, string]> {
    this.check();
    return this.stmts.listStatusAll.all(SYNC_STATUS_CODES[status]).map((r) => [r.namespace, r.blob_id]);
  }

  /** How many blobs are in each status (the original's `sync_progress`). */
  progress(): Partial<Record<BlobSyncStatus, number>> {
    this.check();
    const out: Partial<Record<BlobSyncStatus, number>> = {};
    for (const r of this.stmts.progress.all()) {
      const s = STATUS_BY_CODE.get(r.sync_status);
      if (s !== undefined) out[s] = r.n;
    }
    return out;
  }

  /** Close the connection. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
