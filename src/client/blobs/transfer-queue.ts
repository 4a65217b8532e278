/**
 * The blob transfer queue: at most N transfers at once (3, as the original), one transfer per key (a second
 * request for the same blob joins the first), and retries after an increasing wait. A transfer waiting to retry
 * gives its slot to others. Closing aborts everything in flight; what was not done stays recorded in the local
 * database as pending, so a restart picks it up.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleepMs } from 'node:timers/promises';
import { Semaphore } from '../../common/concurrency.js';
import { DatabaseClosedError, MaximumRetriesError } from '../../common/errors.js';

/** Milliseconds to wait after the `failures`-th failed attempt (1-based) before trying again. */
export type RetrySchedule = (failures: number) => number;

/**
 * The seed's schedule: 10 s after the first failure, then 20, 30, 40, 50, and 60 s for every further retry.
 *
 * @example
 * [1, 2, 6, 9].map(SEED_RETRY_SCHEDULE); // [10000, 20000, 60000, 60000]
 */
export const SEED_RETRY_SCHEDULE: RetrySchedule = (failures) => Math.min(10_000 * Math.max(1, failures), 60_000);

/** What to do after a failed attempt: try again, or give up with this error. */
export type RetryVerdict = { retry: true } | { retry: false; error: unknown };

/** Options of {@link TransferQueue}. */
export interface TransferQueueOptions {
  /** Most transfers running at once (default 3). */
  concurrency?: number;
  /** Wait before each retry (default {@link SEED_RETRY_SCHEDULE}). */
  schedule?: RetrySchedule;
  /** Attempts before {@link MaximumRetriesError} (default 10; `Infinity` retries forever, as the original). */
  maxAttempts?: number;
  /** Replaceable sleep (tests); must reject when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Counters of a {@link TransferQueue}. */
export interface TransferQueueStats {
  /** Attempts running now. */
  running: number;
  /** Transfers waiting for a slot. */
  queued: number;
  /** Distinct transfers not yet settled (running, queued or waiting to retry). */
  pending: number;
}

/**
 * Runs keyed transfers with bounded concurrency and retries.
 *
 * @example
 * const q = new TransferQueue({ concurrency: 3, schedule: () => 0 });
 * await q.run('up:default:b1', (attempt, signal) => upload(signal), (err) => ({ retry: isTransient(err) }));
 */
export class TransferQueue {
  private readonly slots: Semaphore;
  private readonly schedule: RetrySchedule;
  private readonly maxAttempts: number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly abort = new AbortController();

  constructor(options: TransferQueueOptions = {}) {
    this.slots = new Semaphore(options.concurrency ?? 3);
    this.schedule = options.schedule ?? SEED_RETRY_SCHEDULE;
    this.maxAttempts = options.maxAttempts ?? 10;
    this.sleep = options.sleep ?? ((ms, signal) => sleepMs(ms, undefined, { signal }));
    // Every transfer waiting to retry listens on this one signal; dozens at once are normal, not a leak.
    setMaxListeners(0, this.abort.signal);
  }

  /** Current counters. */
  stats(): TransferQueueStats {
    return { running: this.slots.activeCount, queued: this.slots.queuedCount, pending: this.inflight.size };
  }

  /** The unsettled transfer with this key, if any. */
  pending(key: string): Promise<unknown> | undefined {
    return this.inflight.get(key);
  }

  /**
   * Run `attempt` until it succeeds, `classify` gives up, or the attempts run out ({@link MaximumRetriesError},
   * with the last failure as `cause`). While a transfer with the same key is unsettled, its promise is returned.
   */
  run<T>(
    key: string,
    attempt: (n: number, signal: AbortSignal) => Promise<T>,
    classify: (err: unknown, n: number) => RetryVerdict,
  ): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing !== undefined) return existing as Promise<T>;
    const p = this.loop(attempt, classify).finally(() => {
      if (this.inflight.get(key) === p) this.inflight.delete(key);
    });
    this.inflight.set(key, p);
    return p;
  }

  private async loop<T>(
    attempt: (n: number, signal: AbortSignal) => Promise<T>,
    classify: (err: unknown, n: number) => RetryVerdict,
  ): Promise<T> {
    const signal = this.abort.signal;
    for (let n = 1; ; n += 1) {
      if (signal.aborted) throw new DatabaseClosedError('The blob manager was closed');
      const release = await this.slots.acquire();
      let failure: unknown;
      try {
        if (signal.aborted) throw new DatabaseClosedError('The blob manager was closed');
        return await attempt(n, signal);
      } catch (err) {
        failure = err;
      } finally {
        release();
      }
      if (signal.aborted) throw new DatabaseClosedError('The blob manager was closed', { cause: failure });
      const verdict = classify(failure, n);
      if (!verdict.retry) throw verdict.error;
      if (n >= this.maxAttempts) {
        throw new MaximumRetriesError(`Transfer failed after ${n} attempts`, { cause: failure });
      }
      try {
        await this.sleep(this.schedule(n), signal);
      } catch (cause) {
        throw new DatabaseClosedError('The blob manager was closed', { cause });
      }
    }
  }

  /** Abort every transfer and wait until all have settled. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.inflight.values()]);
  }
}
