/** Small concurrency primitives shared by the blob store (server) and the blob transfer queue (client). */

/**
 * A counting semaphore with a FIFO wait queue.
 *
 * @example
 * const slots = new Semaphore(50);
 * const release = await slots.acquire();
 * try { await write(); } finally { release(); }
 */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly idleWaiters: Array<() => void> = [];

  /** @param limit Most holders at once (at least 1). */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('semaphore limit must be a positive integer');
  }

  /** Holders right now. */
  get activeCount(): number {
    return this.active;
  }

  /** Callers waiting for a slot. */
  get queuedCount(): number {
    return this.waiters.length;
  }

  /** Wait for a slot; resolves with the function that gives it back (idempotent). */
  async acquire(): Promise<() => void> {
    if (this.active < this.limit) {
      this.active += 1;
    } else {
      // The releasing holder hands its slot straight to us, so `active` stays counted.
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next !== undefined) {
        next();
        return;
      }
      this.active -= 1;
      if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
  }

  /** Resolves when nobody holds or waits for a slot. */
  async idle(): Promise<void> {
    if (this.active === 0 && this.waiters.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }
}

/**
 * Runs callbacks one at a time per key, so that a put, a flag write and a delete of the same blob never
 * interleave. Keys with no pending work take no memory.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Run `fn` after every earlier `run` with the same key has settled. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
