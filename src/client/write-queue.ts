/**
 * Group commit for the Promise API.
 *
 * Writes issued in the same turn of the event loop run together inside ONE SQLite transaction, each in its own
 * savepoint, and their Promises settle only after that transaction committed. Each operation is still atomic on
 * its own (a failing one rolls back to its savepoint and rejects alone), and an acknowledged write is durable
 * in the WAL; but SQLCipher encrypts and authenticates each dirty page once per commit instead of once per
 * document, which is what keeps encrypted writes close to plaintext speed.
 */

/** What the queue needs from the database: run `fn` in one transaction (nested calls become savepoints). */
export interface TransactionRunner {
  transaction<T>(fn: () => T): T;
}

interface Pending {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

export class WriteQueue {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly maxBatch: number;

  constructor(private readonly db: TransactionRunner, opts: { maxBatch?: number } = {}) {
    this.maxBatch = opts.maxBatch ?? 1000;
  }

  /** Queue a synchronous write; resolves with its result once it is committed. */
  enqueue<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Run every queued write now (also used before close). */
  flush(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
      try {
        this.db.transaction(() => {
          for (const op of batch) {
            try {
              // Each op wraps its own work in db.transaction(), which nests as a savepoint here.
              outcomes.push({ ok: true, value: op.run() });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
          }
        });
      } catch (error) {
        // The commit itself failed: nothing of this batch is durable.
        for (const op of batch) op.reject(error);
        continue;
      }
      batch.forEach((op, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) op.resolve(outcome.value);
        else op.reject(outcome.error);
      });
    }
  }
}
