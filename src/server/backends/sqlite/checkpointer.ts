/**
 * WAL checkpoints of the user databases, run on a worker thread instead of inside the commit that filled the WAL.
 *
 * With SQLite's automatic checkpoints, the commit that pushes the WAL past 1000 pages copies the whole WAL into the
 * database file and syncs it before it returns: after a 50 MB upload that was about 40% of the upload request's
 * time, spent while the client waited for the answer. The engine's connections therefore do not checkpoint on
 * their own (`wal_autocheckpoint = 0`); each write asks this checkpointer, which runs a PASSIVE checkpoint on its
 * own connection in a worker thread: it never blocks readers or writers, and a WAL it could not fully copy (a
 * reader still needed old pages) is copied by the next request. Durability is unchanged: a commit is in the WAL
 * either way, and synchronous=NORMAL syncs the WAL at checkpoints.
 *
 * If the worker cannot run, checkpoints happen on the event loop right after the write, as before.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The worker: one checkpoint per message (an absolute file path); answers with the same path when done. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
parentPort.on('message', (file) => {
  let db;
  try {
    db = new Database(file, { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // A deleted database, or one that is locked for longer than the timeout: the next request retries.
  } finally {
    try { db?.close(); } catch {}
  }
  parentPort.postMessage(file);
});
`;

/**
 * Runs PASSIVE checkpoints of WAL files off the event loop, at most one at a time, merging repeated requests.
 *
 * @example
 * const checkpointer = new WalCheckpointer();
 * checkpointer.request(file, () => db.pragma('wal_checkpoint(PASSIVE)'));
 * await checkpointer.settled(file); // before deleting the file
 */
export class WalCheckpointer {
  private worker: Worker | null = null;
  /** Files waiting for a checkpoint, in request order, with the inline fallback of each. */
  private readonly queue = new Map<string, () => void>();
  private running: string | null = null;
  private readonly waiters = new Map<string, Array<() => void>>();
  private closed = false;

  constructor() {
    try {
      const driver = createRequire(import.meta.url).resolve('better-sqlite3-multiple-ciphers');
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver } });
      worker.unref();
      worker.on('message', (file: string) => this.done(file));
      worker.on('error', () => this.fallBack());
      worker.on('exit', () => this.fallBack());
      this.worker = worker;
    } catch {
      this.worker = null;
    }
  }

  /**
   * Ask for a checkpoint of `file` soon. `inline` checkpoints it on the caller's connection, used when the worker
   * is not available.
   */
  request(file: string, inline: () => void): void {
    if (this.closed) return;
    if (this.worker === null) {
      setImmediate(() => {
        try {
          if (!this.closed) inline();
        } catch {
          // A closed connection or a busy file: the next write asks again.
        }
      });
      return;
    }
    this.queue.set(file, inline);
    this.next();
  }

  /** Resolves once no checkpoint of `file` is queued or running (e.g. before the file is deleted). */
  async settled(file: string): Promise<void> {
    this.queue.delete(file);
    if (this.running !== file) return;
    await new Promise<void>((resolve) => {
      const list = this.waiters.get(file) ?? [];
      list.push(resolve);
      this.waiters.set(file, list);
    });
  }

  /** Stop the worker; queued checkpoints are dropped (SQLite checkpoints when the last connection closes). */
  close(): void {
    this.closed = true;
    this.queue.clear();
    const worker = this.worker;
    this.worker = null;
    this.release();
    void worker?.terminate();
  }

  private next(): void {
    if (this.running !== null || this.worker === null) return;
    const first = this.queue.keys().next();
    if (first.done === true) return;
    const file = first.value;
    this.queue.delete(file);
    this.running = file;
    this.worker.postMessage(file);
  }

  private done(file: string): void {
    if (this.running === file) this.running = null;
    for (const resolve of this.waiters.get(file) ?? []) resolve();
    this.waiters.delete(file);
    this.next();
  }

  /** The worker failed or exited: checkpoint what is queued inline from now on. */
  private fallBack(): void {
    if (this.worker === null && this.running === null) return;
    this.worker = null;
    this.release();
    const queued = [...this.queue.entries()];
    this.queue.clear();
    for (const [file, inline] of queued) this.request(file, inline);
  }

  private release(): void {
    this.running = null;
    for (const list of this.waiters.values()) for (const resolve of list) resolve();
    this.waiters.clear();
  }
}
