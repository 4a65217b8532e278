/**
 * Empty user databases built ahead of need, so that a new user's first sync gets its database by a rename.
 *
 * Building one takes a millisecond of SQLite work and then a sync of the new file to disk, which waits for the disk
 * (1.5 to 10 ms here while other files' writes are being flushed): before, a new user's first upload waited for
 * both before the server read its first document. A spare is built the same way, in the background, and kept under
 * `<users dir>/.spare/`, where nothing looks for user databases; each has its own replica uid. A file being built
 * is named `building-…` until it is synced, so one left half-built by a crash is never taken: the next start
 * removes it and keeps the finished ones.
 */
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Spares are built only once the databases have not been used for this long: not during a sync (its requests come
 * a round trip apart), where the build would compete with it for the CPU and the disk.
 */
const IDLE_MS = 50;

/**
 * Build an empty, synced database at `file` with `initialize`, which writes it without journal or syncs (nobody
 * else sees it yet); it is synced once here, on the thread pool.
 */
export async function buildDatabaseFile(file: string, initialize: (file: string) => void): Promise<void> {
  initialize(file);
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A few spare user databases, refilled in the background.
 *
 * @example
 * const spares = new SpareDatabases(path.join(usersDir, '.spare'), 2, (file) => createEmptyUserDb(file));
 * const file = spares.take(); // a ready database file to rename into place, or null
 */
export class SpareDatabases {
  private readonly ready: string[] = [];
  private building = false;
  private closed = false;
  private lastUse = 0;
  private waiting = false;
  private inFlight: Promise<void> = Promise.resolve();
  private started = false;

  constructor(
    private readonly dir: string,
    private readonly count: number,
    private readonly initialize: (file: string) => void,
  ) {
    if (count <= 0) return;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(dir)) {
      const file = path.join(dir, name);
      if (/^spare-[0-9a-f]+\.db$/.test(name)) this.ready.push(file);
      else rmSync(file, { force: true });
    }
  }

  /** A ready database file, taken out of the pool (the caller renames it into place), or `null` if none is. */
  take(): string | null {
    const file = this.ready.pop() ?? null;
    this.used();
    this.refill();
    return file;
  }

  /**
   * The databases were just used: building waits until they have been idle for a while. The first use starts the
   * pool, so that a command that opens the store only briefly (`soledad-server token add`) builds nothing.
   */
  used(): void {
    this.lastUse = performance.now();
    if (!this.started) {
      this.started = true;
      this.refill();
    }
  }

  /** Build no more spares (those ready stay on disk for the next start); resolves once a build under way ended. */
  close(): Promise<void> {
    this.closed = true;
    return this.inFlight;
  }

  private refill(): void {
    if (this.building || this.waiting || this.closed || this.ready.length >= this.count) return;
    const idleFor = performance.now() - this.lastUse;
    if (idleFor < IDLE_MS) {
      this.waiting = true;
      setTimeout(() => {
        this.waiting = false;
        this.refill();
      }, IDLE_MS - idleFor).unref();
      return;
    }
    this.building = true;
    this.inFlight = this.buildOne().finally(() => {
      this.building = false;
      this.refill();
    });
  }

  private async buildOne(): Promise<void> {
    if (this.closed) return;
    const id = randomBytes(8).toString('hex');
    const building = path.join(this.dir, `building-${id}.db`);
    try {
      await buildDatabaseFile(building, this.initialize);
      const file = path.join(this.dir, `spare-${id}.db`);
      renameSync(building, file);
      this.ready.push(file);
    } catch {
      // A full disk, a removed directory: no more spares in this run; databases are then built when needed (and
      // that reports the error).
      for (const f of [building, `${building}-wal`, `${building}-shm`]) rmSync(f, { force: true });
      this.closed = true;
    }
  }
}
