/**
 * Opening plain SQLite files for the embedded engine, and a bounded cache of open handles.
 *
 * The driver is better-sqlite3-multiple-ciphers used without a key: the server stores only client-side
 * ciphertext, so encrypting again at rest would protect nothing the server could not already read.
 */
import Database from 'better-sqlite3-multiple-ciphers';

/** An open better-sqlite3 database. */
export type Db = Database.Database;

/**
 * Open (or create) a SQLite file with the pragmas every engine file uses: WAL so readers never wait for the
 * writer, NORMAL sync (durable at checkpoints, safe against corruption), and a busy timeout for the rare
 * second process (e.g. `soledad-create-userdb` while the server runs). `autoCheckpoint: false` leaves the
 * checkpoints to the caller.
 */
export function openSqlite(file: string, options: { mustExist: boolean; autoCheckpoint?: boolean }): Db {
  const db = new Database(file, { fileMustExist: options.mustExist });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    // Without automatic checkpoints the owner checkpoints the file itself (see WalCheckpointer).
    if (options.autoCheckpoint === false) db.pragma('wal_autocheckpoint = 0');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Least-recently-used cache of open handles keyed by name. Closing on eviction is safe because every use of a
 * handle is synchronous: nothing holds one across an `await`.
 */
export class HandleCache<H extends { close(): void }> {
  private readonly entries = new Map<string, H>();
  private readonly max: number;

  constructor(max: number) {
    this.max = Math.max(1, max);
  }

  /** The cached handle for `key`, opened with `open` if needed. */
  get(key: string, open: () => H): H {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const handle = open();
    this.entries.set(key, handle);
    this.evict();
    return handle;
  }

  /** Remove the handle of `key` from the cache without closing it (the caller owns it now), if there is one. */
  take(key: string): H | undefined {
    const h = this.entries.get(key);
    if (h !== undefined) this.entries.delete(key);
    return h;
  }

  /** Hand a handle (back) to the cache as the most recently used one, closing the least recently used if full. */
  put(key: string, handle: H): void {
    const old = this.entries.get(key);
    this.entries.delete(key);
    if (old !== undefined && old !== handle) old.close();
    this.entries.set(key, handle);
    this.evict();
  }

  private evict(): void {
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as string;
      const victim = this.entries.get(oldest)!;
      this.entries.delete(oldest);
      victim.close();
    }
  }

  /** Close and forget the handle of `key`, if open. */
  drop(key: string): void {
    const h = this.entries.get(key);
    if (h === undefined) return;
    this.entries.delete(key);
    h.close();
  }

  /** Number of open handles. */
  get size(): number {
    return this.entries.size;
  }

  /** Close everything. */
  closeAll(): void {
    for (const h of this.entries.values()) h.close();
    this.entries.clear();
  }
}
