/**
 * Blobs in PostgreSQL, streamed both ways: content is cut into fixed-size `bytea` chunks as it arrives and read
 * back a few chunks per query, so no blob is ever whole in memory on either side.
 *
 * A put writes its chunks under a new `blob_contents` row that no name points at yet, then makes the name point
 * at it in one transaction (which also refuses an existing name and charges the quota). Until that commit nothing
 * is visible; a crash leaves only unreferenced content, swept after a grace period. Deleting a blob turns its
 * name into a deletion marker and leaves the content to the same sweep, so reads already in progress finish.
 *
 * Quota: `blob_usage.used` is kept by the same transactions that add and delete blobs; writes in progress hold
 * rows of `blob_reservations`, leases that lapse if their process dies. Reserving locks the user's usage row, so
 * racing writers in any number of processes never pass the limit together.
 *
 * Flags live in a `text[]` column and the metadata record in a `jsonb` one; {@link PgBlobStore.updateFlags} and
 * {@link PgBlobStore.updateState} read and write them under the row lock, which is what a compare-and-set (the
 * incoming box's reservations) needs, across any number of server processes.
 */
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { BadRequestError, BlobAlreadyExistsError, BlobNotFoundError, InvalidFlagsError, QuotaExceededError } from '../../../common/errors.js';
import { Semaphore } from '../../../common/concurrency.js';
import { isBlobFlag, isValidBlobName } from '../../../common/protocol/blobs.js';
import type { BlobFlag } from '../../../common/protocol/blobs.js';
import type {
  BlobCountOptions,
  BlobHandle,
  BlobListOptions,
  BlobPutOptions,
  BlobPutResult,
  BlobRef,
  BlobStat,
  BlobState,
  BlobStore,
  BlobStoreStats,
  BlobUsage,
  ByteRange,
  QuotaReservation,
} from '../blob-types.js';
import type { PgDatabase, Queryable } from './connection.js';
import type { JsonObject } from '../../../common/u1db/json.js';

/** The original's default quota: 200 MiB per user. */
export const PG_DEFAULT_BLOB_QUOTA_BYTES = 200 * 1024 * 1024;
/** Bytes per stored chunk. */
export const PG_BLOB_CHUNK_BYTES = 256 * 1024;
/** Chunks fetched per query when reading. */
const READ_PAGE_CHUNKS = 4;
/** Bytes reserved ahead of a body of unknown size, so that not every incoming piece costs a transaction. */
const GROW_STEP_BYTES = 4 * 1024 * 1024;
const TAG_LENGTH = 16;

/** Options of {@link PgBlobStore}. */
export interface PgBlobStoreOptions {
  /** Per-user quota in bytes, or a function of the user (default {@link PG_DEFAULT_BLOB_QUOTA_BYTES}). */
  quotaBytes?: number | ((user: string) => number);
  /** Most blob writes in progress in this process (default 50, as the original). */
  concurrentWrites?: number;
  /** Bytes a user stores outside blobs under the same quota (documents); asked at each reservation. */
  otherUsageBytes?: (user: string) => Promise<number>;
  /** Bytes per chunk (default {@link PG_BLOB_CHUNK_BYTES}). */
  chunkBytes?: number;
  /** How long unreferenced content is kept before it is swept (default 1 hour): the longest read of a deleted blob. */
  orphanGraceMs?: number;
  /** Lifetime of a quota reservation without renewal (default 10 minutes; writes renew theirs). */
  reservationTtlMs?: number;
}

function checkRef(ref: BlobRef): void {
  if (!isValidBlobName(ref.user)) throw new BadRequestError('Invalid user id');
  if (!isValidBlobName(ref.namespace)) throw new BadRequestError('Invalid namespace');
  if (!isValidBlobName(ref.blobId)) throw new BadRequestError('Invalid blob id');
}

function checkFlags(flags: readonly unknown[]): void {
  for (const f of flags) if (!isBlobFlag(f)) throw new InvalidFlagsError(`Invalid flag: ${String(f)}`);
}

function notFound(ref: BlobRef): BlobNotFoundError {
  return new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
}

interface ReservationRow {
  id: number;
  /** Stored bytes and other writers' reservations when it was taken. */
  others: number;
  /** The effective limit for this reservation (limit + tolerance − other usage). */
  limit: number;
}

/**
 * A {@link BlobStore} on PostgreSQL (tables in `schema.ts`).
 *
 * @example
 * const store = new PgBlobStore(db, { quotaBytes: 1 << 30 });
 * await store.put({ user: 'u1', namespace: 'default', blobId: 'b1' }, Readable.from([Buffer.from('hello')]), { size: 5 });
 */
export class PgBlobStore implements BlobStore {
  private readonly writes: Semaphore;
  private readonly limitFor: (user: string) => number;
  private readonly otherUsage: (user: string) => Promise<number>;
  private readonly chunkBytes: number;
  private readonly graceMs: number;
  private readonly ttlMs: number;
  private readonly sweeper: NodeJS.Timeout;
  /** Reservation updates made by the synchronous QuotaReservation API, per user, awaited by `usage`. */
  private readonly pendingOps = new Map<string, Promise<void>>();

  constructor(
    private readonly db: PgDatabase,
    options: PgBlobStoreOptions = {},
  ) {
    this.writes = new Semaphore(options.concurrentWrites ?? 50);
    const quota = options.quotaBytes ?? PG_DEFAULT_BLOB_QUOTA_BYTES;
    this.limitFor = typeof quota === 'function' ? quota : () => quota;
    this.otherUsage = options.otherUsageBytes ?? (async () => 0);
    this.chunkBytes = options.chunkBytes ?? PG_BLOB_CHUNK_BYTES;
    this.graceMs = options.orphanGraceMs ?? 3600_000;
    this.ttlMs = options.reservationTtlMs ?? 600_000;
    this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), Math.max(1000, Math.floor(this.graceMs / 2)));
    this.sweeper.unref();
  }

  /**
   * Delete content no blob points at whose last touch is older than the grace period, and lapsed reservations.
   * Runs periodically; callable by operators (`soledad-server check`). Returns the number of contents removed.
   */
  async sweep(): Promise<number> {
    const r = await this.db.query(
      `DELETE FROM blob_contents c WHERE c.touched_at < now() - $1 * interval '1 millisecond'
       AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.content_id = c.id)`,
      [this.graceMs],
    );
    await this.db.query('DELETE FROM blob_reservations WHERE expires_at < now()');
    return r.rowCount ?? 0;
  }

  // ---- quota ----

  /** Lock the user's usage row, drop lapsed reservations, and return stored + reserved bytes (minus `exceptId`). */
  private async lockUsage(c: Queryable, user: string, exceptId: number | null): Promise<number> {
    await c.query('INSERT INTO blob_usage (user_id, used) VALUES ($1, 0) ON CONFLICT (user_id) DO NOTHING', [user]);
    const used = (await c.query<{ used: number }>('SELECT used FROM blob_usage WHERE user_id = $1 FOR UPDATE', [user])).rows[0]!.used;
    await c.query('DELETE FROM blob_reservations WHERE user_id = $1 AND expires_at < now()', [user]);
    const reserved = (await c.query<{ n: number }>(
      'SELECT coalesce(sum(bytes), 0)::bigint AS n FROM blob_reservations WHERE user_id = $1 AND id IS DISTINCT FROM $2',
      [user, exceptId],
    )).rows[0]!.n;
    return used + reserved;
  }

  private async effectiveLimit(user: string, tolerance: number): Promise<number> {
    return this.limitFor(user) + tolerance - (await this.otherUsage(user));
  }

  /** Insert a reservation of `bytes`, atomically checked against the limit. */
  private async reserveRow(user: string, bytes: number, tolerance: number): Promise<ReservationRow> {
    const limit = await this.effectiveLimit(user, tolerance);
    return this.db.transaction(async (c) => {
      const others = await this.lockUsage(c, user, null);
      if (others + bytes > limit) throw new QuotaExceededError('Quota Exceeded!');
      const r = await c.query<{ id: number }>(
        `INSERT INTO blob_reservations (user_id, bytes, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond') RETURNING id`,
        [user, bytes, this.ttlMs],
      );
      return { id: r.rows[0]!.id, others, limit };
    });
  }

  /** Set a reservation to `total` bytes if that fits (checked under the usage lock); renews its lease. */
  private async resizeRow(user: string, res: ReservationRow, total: number): Promise<void> {
    await this.db.transaction(async (c) => {
      const others = await this.lockUsage(c, user, res.id);
      if (others + total > res.limit) throw new QuotaExceededError('Quota Exceeded!');
      const r = await c.query(
        `UPDATE blob_reservations SET bytes = $2, expires_at = now() + $3 * interval '1 millisecond' WHERE id = $1`,
        [res.id, total, this.ttlMs],
      );
      // Lapsed (the writer stalled past its lease): take it again.
      if ((r.rowCount ?? 0) === 0) {
        await c.query(
          `INSERT INTO blob_reservations (id, user_id, bytes, expires_at) VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')`,
          [res.id, user, total, this.ttlMs],
        );
      }
      res.others = others;
    });
  }

  private enqueue(user: string, op: () => Promise<unknown>): void {
    const prev = this.pendingOps.get(user) ?? Promise.resolve();
    const next = prev.then(op).then(() => undefined, () => undefined);
    this.pendingOps.set(user, next);
    void next.then(() => {
      if (this.pendingOps.get(user) === next) this.pendingOps.delete(user);
    });
  }

  async reserve(user: string, bytes: number, tolerance = 0): Promise<QuotaReservation> {
    if (!isValidBlobName(user)) throw new BadRequestError('Invalid user id');
    await this.pendingOps.get(user);
    const row = await this.reserveRow(user, bytes, tolerance);
    let held = bytes;
    let done = false;
    const store = this;
    // The interface's grow/commit/release are synchronous: decide against what was locked at reservation time and
    // write the change behind; `usage()` waits for those writes. Other processes' concurrent growth is not seen by
    // grow() — the bytes reserved up front are what is guaranteed.
    return {
      get bytes() {
        return held;
      },
      grow(n: number): void {
        if (done) throw new Error('reservation already settled');
        if (n <= 0) return;
        if (row.others + held + n > row.limit) throw new QuotaExceededError('Quota Exceeded!');
        held += n;
        const total = held;
        store.enqueue(user, () => store.db.query('UPDATE blob_reservations SET bytes = $2 WHERE id = $1', [row.id, total]));
      },
      commit(actual: number): void {
        if (done) return;
        done = true;
        store.enqueue(user, () => store.db.transaction(async (c) => {
          await c.query('INSERT INTO blob_usage (user_id, used) VALUES ($1, 0) ON CONFLICT (user_id) DO NOTHING', [user]);
          await c.query('UPDATE blob_usage SET used = used + $2 WHERE user_id = $1', [user, actual]);
          await c.query('DELETE FROM blob_reservations WHERE id = $1', [row.id]);
        }));
      },
      release(): void {
        if (done) return;
        done = true;
        store.enqueue(user, () => store.db.query('DELETE FROM blob_reservations WHERE id = $1', [row.id]));
      },
    };
  }

  async usage(user: string): Promise<BlobUsage> {
    if (!isValidBlobName(user)) throw new BadRequestError('Invalid user id');
    await this.pendingOps.get(user);
    const r = await this.db.query<{ used: number | null; reserved: number }>(
      `SELECT (SELECT used FROM blob_usage WHERE user_id = $1) AS used,
              (SELECT coalesce(sum(bytes), 0)::bigint FROM blob_reservations WHERE user_id = $1 AND expires_at >= now()) AS reserved`,
      [user],
    );
    const row = r.rows[0]!;
    return { used: row.used ?? 0, otherUsed: await this.otherUsage(user), reserved: row.reserved, limit: this.limitFor(user) };
  }

  // ---- writes ----

  async put(ref: BlobRef, body: AsyncIterable<Uint8Array>, options: BlobPutOptions = {}): Promise<BlobPutResult> {
    checkRef(ref);
    const declared = options.size;
    if (declared !== undefined && (!Number.isSafeInteger(declared) || declared < 0)) throw new BadRequestError('Invalid blob size');
    checkFlags(options.flags ?? []);
    const release = await this.writes.acquire();
    let res: ReservationRow | undefined;
    let contentId: number | undefined;
    try {
      if ((await this.stat(ref)) !== null) throw new BlobAlreadyExistsError(`Blob already exists: ${ref.blobId}`);
      const tolerance = options.quotaTolerance ?? 0;
      res = await this.reserveRow(ref.user, declared ?? 0, tolerance);
      contentId = (await this.db.query<{ id: number }>(
        'INSERT INTO blob_contents (chunk_size) VALUES ($1) RETURNING id', [this.chunkBytes])).rows[0]!.id;
      let held = declared ?? 0;
      let written = 0;
      let seq = 0;
      let parts: Buffer[] = [];
      let partBytes = 0;
      let lastTouch = Date.now();
      const writeChunk = async (data: Buffer): Promise<void> => {
        await this.db.query('INSERT INTO blob_chunks (content_id, seq, data) VALUES ($1, $2, $3)', [contentId, seq++, data]);
      };
      for await (const piece of body) {
        options.signal?.throwIfAborted();
        if (piece.length === 0) continue;
        written += piece.length;
        if (declared !== undefined) {
          if (written > declared) throw new BadRequestError('Blob body is longer than its declared size');
        } else if (written > held) {
          // Reserve ahead in large steps; near the limit, exactly what is needed.
          try {
            await this.resizeRow(ref.user, res, Math.max(written, held + GROW_STEP_BYTES));
            held = Math.max(written, held + GROW_STEP_BYTES);
          } catch (err) {
            if (!(err instanceof QuotaExceededError)) throw err;
            await this.resizeRow(ref.user, res, written);
            held = written;
          }
        }
        parts.push(Buffer.from(piece.buffer, piece.byteOffset, piece.length));
        partBytes += piece.length;
        while (partBytes >= this.chunkBytes) {
          const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, partBytes);
          await writeChunk(all.subarray(0, this.chunkBytes));
          const rest = all.subarray(this.chunkBytes);
          // Copy the remainder so the big concatenated buffer can be collected.
          parts = rest.length === 0 ? [] : [Buffer.from(rest)];
          partBytes = rest.length;
        }
        if (Date.now() - lastTouch > 60_000) {
          lastTouch = Date.now();
          await this.db.query('UPDATE blob_contents SET touched_at = now() WHERE id = $1', [contentId]);
          await this.db.query(`UPDATE blob_reservations SET expires_at = now() + $2 * interval '1 millisecond' WHERE id = $1`, [res.id, this.ttlMs]);
        }
      }
      options.signal?.throwIfAborted();
      if (declared !== undefined && written !== declared) throw new BadRequestError('Blob body is shorter than its declared size');
      if (partBytes > 0) await writeChunk(parts.length === 1 ? parts[0]! : Buffer.concat(parts, partBytes));
      const reservation = res;
      const content = contentId;
      await this.db.transaction(async (c) => {
        await c.query('INSERT INTO blob_usage (user_id, used) VALUES ($1, 0) ON CONFLICT (user_id) DO NOTHING', [ref.user]);
        await c.query('SELECT used FROM blob_usage WHERE user_id = $1 FOR UPDATE', [ref.user]);
        const ins = await c.query(
          `INSERT INTO blobs (user_id, namespace, blob_id, content_id, size, created_at, flags, deleted, meta)
           VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6::text[], false, NULL)
           ON CONFLICT (user_id, namespace, blob_id) DO UPDATE SET content_id = excluded.content_id, size = excluded.size,
             created_at = excluded.created_at, flags = excluded.flags, deleted = false, meta = NULL
           WHERE blobs.deleted`,
          [ref.user, ref.namespace, ref.blobId, content, written, [...(options.flags ?? [])]],
        );
        if ((ins.rowCount ?? 0) === 0) throw new BlobAlreadyExistsError(`Blob already exists: ${ref.blobId}`);
        await c.query('UPDATE blob_usage SET used = used + $2 WHERE user_id = $1', [ref.user, written]);
        await c.query('DELETE FROM blob_reservations WHERE id = $1', [reservation.id]);
      });
      contentId = undefined;
      res = undefined;
      return { size: written };
    } finally {
      if (contentId !== undefined) await this.db.query('DELETE FROM blob_contents WHERE id = $1', [contentId]).catch(() => undefined);
      if (res !== undefined) await this.db.query('DELETE FROM blob_reservations WHERE id = $1', [res.id]).catch(() => undefined);
      release();
    }
  }

  async setFlags(ref: BlobRef, flags: readonly string[]): Promise<void> {
    await this.updateFlags(ref, () => {
      checkFlags(flags);
      return flags as readonly BlobFlag[];
    });
  }

  async updateFlags(ref: BlobRef, update: (current: BlobFlag[]) => readonly BlobFlag[] | null): Promise<BlobFlag[]> {
    checkRef(ref);
    return this.db.transaction(async (c) => {
      const r = await c.query<{ flags: string[] }>(
        'SELECT flags FROM blobs WHERE user_id = $1 AND namespace = $2 AND blob_id = $3 AND NOT deleted FOR UPDATE',
        [ref.user, ref.namespace, ref.blobId],
      );
      const row = r.rows[0];
      if (row === undefined) throw notFound(ref);
      const current = row.flags.filter(isBlobFlag);
      const next = update([...current]);
      if (next === null) return current;
      checkFlags(next);
      await c.query('UPDATE blobs SET flags = $4::text[] WHERE user_id = $1 AND namespace = $2 AND blob_id = $3',
        [ref.user, ref.namespace, ref.blobId, [...next]]);
      return [...next];
    });
  }

  async updateState(ref: BlobRef, update: (current: BlobState) => BlobState | null): Promise<BlobState> {
    checkRef(ref);
    return this.db.transaction(async (c) => {
      const r = await c.query<{ flags: string[]; meta: JsonObject | null }>(
        'SELECT flags, meta FROM blobs WHERE user_id = $1 AND namespace = $2 AND blob_id = $3 AND NOT deleted FOR UPDATE',
        [ref.user, ref.namespace, ref.blobId],
      );
      const row = r.rows[0];
      if (row === undefined) throw notFound(ref);
      const current: BlobState = { flags: row.flags.filter(isBlobFlag), meta: isObject(row.meta) ? row.meta : null };
      const next = update({ flags: [...current.flags], meta: current.meta === null ? null : structuredClone(current.meta) });
      if (next === null) return current;
      checkFlags(next.flags);
      await c.query('UPDATE blobs SET flags = $4::text[], meta = $5::jsonb WHERE user_id = $1 AND namespace = $2 AND blob_id = $3',
        [ref.user, ref.namespace, ref.blobId, [...next.flags], next.meta === null ? null : JSON.stringify(next.meta)]);
      return { flags: [...next.flags], meta: next.meta === null ? null : structuredClone(next.meta) };
    });
  }

  async delete(ref: BlobRef): Promise<void> {
    checkRef(ref);
    await this.db.transaction(async (c) => {
      await c.query('INSERT INTO blob_usage (user_id, used) VALUES ($1, 0) ON CONFLICT (user_id) DO NOTHING', [ref.user]);
      await c.query('SELECT used FROM blob_usage WHERE user_id = $1 FOR UPDATE', [ref.user]);
      const r = await c.query<{ content_id: number | null; size: number }>(
        'SELECT content_id, size FROM blobs WHERE user_id = $1 AND namespace = $2 AND blob_id = $3 AND NOT deleted FOR UPDATE',
        [ref.user, ref.namespace, ref.blobId],
      );
      const row = r.rows[0];
      if (row === undefined) throw notFound(ref);
      await c.query(
        `UPDATE blobs SET deleted = true, content_id = NULL, flags = '{}', meta = NULL, size = 0, created_at = clock_timestamp()
         WHERE user_id = $1 AND namespace = $2 AND blob_id = $3`,
        [ref.user, ref.namespace, ref.blobId],
      );
      await c.query('UPDATE blob_usage SET used = greatest(0, used - $2) WHERE user_id = $1', [ref.user, row.size]);
      // Readers holding the content keep it for the grace period, counted from now.
      if (row.content_id !== null) await c.query('UPDATE blob_contents SET touched_at = now() WHERE id = $1', [row.content_id]);
    });
  }

  // ---- reads ----

  async open(ref: BlobRef): Promise<BlobHandle> {
    checkRef(ref);
    const r = await this.db.query<{ content_id: number | null; size: number; created_at: Date; chunk_size: number | null }>(
      `SELECT b.content_id, b.size, b.created_at, c.chunk_size FROM blobs b LEFT JOIN blob_contents c ON c.id = b.content_id
       WHERE b.user_id = $1 AND b.namespace = $2 AND b.blob_id = $3 AND NOT b.deleted`,
      [ref.user, ref.namespace, ref.blobId],
    );
    const row = r.rows[0];
    if (row === undefined || row.content_id === null || row.chunk_size === null) throw notFound(ref);
    return new PgBlobHandle(this.db, row.content_id, row.chunk_size, row.size, row.created_at);
  }

  async stat(ref: BlobRef): Promise<BlobStat | null> {
    checkRef(ref);
    const r = await this.db.query<{ size: number; created_at: Date }>(
      'SELECT size, created_at FROM blobs WHERE user_id = $1 AND namespace = $2 AND blob_id = $3 AND NOT deleted',
      [ref.user, ref.namespace, ref.blobId],
    );
    const row = r.rows[0];
    return row === undefined ? null : { size: row.size, createdAt: row.created_at };
  }

  async getFlags(ref: BlobRef): Promise<BlobFlag[]> {
    checkRef(ref);
    const r = await this.db.query<{ flags: string[] }>(
      'SELECT flags FROM blobs WHERE user_id = $1 AND namespace = $2 AND blob_id = $3 AND NOT deleted',
      [ref.user, ref.namespace, ref.blobId],
    );
    const row = r.rows[0];
    if (row === undefined) throw notFound(ref);
    return row.flags.filter(isBlobFlag);
  }

  async list(user: string, options: BlobListOptions): Promise<string[]> {
    if (!isValidBlobName(user)) throw new BadRequestError('Invalid user id');
    if (!isValidBlobName(options.namespace)) throw new BadRequestError('Invalid namespace');
    const values: unknown[] = [user, options.namespace, options.deleted === true];
    let sql = 'SELECT blob_id FROM blobs WHERE user_id = $1 AND namespace = $2 AND deleted = $3';
    if (options.filterFlag !== undefined || options.anyFlag !== undefined) {
      values.push([...(options.filterFlag === undefined ? [] : [options.filterFlag]), ...(options.anyFlag ?? [])]);
      sql += ` AND flags && $${values.length}::text[]`;
    }
    if (options.excludeFlags !== undefined && options.excludeFlags.length > 0) {
      values.push([...options.excludeFlags]);
      sql += ` AND NOT (flags && $${values.length}::text[])`;
    }
    if (options.maxSize !== undefined) {
      values.push(options.maxSize);
      sql += ` AND size <= $${values.length}`;
    }
    // Ids compare as bytes (COLLATE "C") whatever the database's locale, as the filesystem engine sorts them.
    if (options.order === 'asc') sql += ' ORDER BY created_at ASC, blob_id COLLATE "C"';
    else if (options.order === 'desc') sql += ' ORDER BY created_at DESC, blob_id COLLATE "C"';
    else sql += ' ORDER BY blob_id COLLATE "C"';
    if (options.offset !== undefined && options.offset > 0) {
      values.push(options.offset);
      sql += ` OFFSET $${values.length}`;
    }
    if (options.limit !== undefined) {
      values.push(options.limit);
      sql += ` LIMIT $${values.length}`;
    }
    const r = await this.db.query<{ blob_id: string }>(sql, values);
    return r.rows.map((row) => row.blob_id);
  }

  async count(user: string, options: BlobCountOptions): Promise<number> {
    if (!isValidBlobName(user)) throw new BadRequestError('Invalid user id');
    if (!isValidBlobName(options.namespace)) throw new BadRequestError('Invalid namespace');
    const values: unknown[] = [user, options.namespace];
    let sql = 'SELECT count(*)::bigint AS n FROM blobs WHERE user_id = $1 AND namespace = $2';
    // Unqualified: live blobs plus deletion markers, as the original's `only_count`.
    if (options.deleted === true) sql += ' AND deleted';
    else if (options.filterFlag !== undefined) sql += ' AND NOT deleted';
    if (options.filterFlag !== undefined) {
      values.push(options.filterFlag);
      sql += ` AND $${values.length} = ANY(flags)`;
    }
    const r = await this.db.query<{ n: number }>(sql, values);
    return r.rows[0]!.n;
  }

  stats(): BlobStoreStats {
    return { activeWrites: this.writes.activeCount, queuedWrites: this.writes.queuedCount };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.writes.idle();
    // Let queued reservation writes land before the pool goes away.
    while (this.pendingOps.size > 0) await Promise.race([...this.pendingOps.values(), delay(50)]);
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class PgBlobHandle implements BlobHandle {
  private owned = true;

  constructor(
    private readonly db: PgDatabase,
    private readonly contentId: number,
    private readonly chunkSize: number,
    readonly size: number,
    readonly createdAt: Date,
  ) {}

  async tag(): Promise<Buffer> {
    const n = Math.min(TAG_LENGTH, this.size);
    if (n === 0) return Buffer.alloc(0);
    const from = Math.floor((this.size - n) / this.chunkSize);
    const r = await this.db.query<{ data: Buffer }>(
      'SELECT data FROM blob_chunks WHERE content_id = $1 AND seq >= $2 ORDER BY seq', [this.contentId, from]);
    const tail = Buffer.concat(r.rows.map((row) => row.data));
    return Buffer.from(tail.subarray(tail.length - n));
  }

  read(range?: ByteRange): Readable {
    if (!this.owned) throw new Error('blob handle already consumed');
    this.owned = false;
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? this.size, this.size);
    const { db, contentId, chunkSize } = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      if (end <= start) return;
      const first = Math.floor(start / chunkSize);
      const last = Math.floor((end - 1) / chunkSize);
      for (let s = first; s <= last; s += READ_PAGE_CHUNKS) {
        const upTo = Math.min(last, s + READ_PAGE_CHUNKS - 1);
        const r = await db.query<{ seq: number; data: Buffer }>(
          'SELECT seq, data FROM blob_chunks WHERE content_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq',
          [contentId, s, upTo],
        );
        if (r.rows.length !== upTo - s + 1) throw new BlobNotFoundError('Blob content is gone (deleted and swept)');
        for (const row of r.rows) {
          const offset = row.seq * chunkSize;
          const from = Math.max(0, start - offset);
          const to = Math.min(row.data.length, end - offset);
          yield from === 0 && to === row.data.length ? row.data : row.data.subarray(from, to);
        }
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  async close(): Promise<void> {
    this.owned = false;
  }
}
