/**
 * Per-user quota accounting. A user's stored bytes are measured once (the first time the user is seen by this
 * process) and then kept current by every put and delete, so no request walks the tree (the original runs `du`
 * every 30 s and lets concurrent writes overshoot). Reservations make the check-and-charge atomic.
 */
import { QuotaExceededError } from '../../../common/errors.js';
import type { BlobUsage, QuotaReservation } from '../blob-types.js';

interface Account {
  used: number;
  reserved: number;
}

/** Measures a user's stored bytes from scratch (walks storage). */
export type UsageMeasure = (user: string) => Promise<number>;

/** Bytes a user stores outside this store under the same quota (e.g. documents); asked once per reservation. */
export type OtherUsage = (user: string) => Promise<number>;

/**
 * Quota bookkeeping for every user of one store.
 *
 * @example
 * const usage = new UsageTracker(measure, () => 200 * 1024 * 1024);
 * const r = await usage.reserve(user, size);
 * try { await write(); r.commit(size); } catch (e) { r.release(); throw e; }
 */
export class UsageTracker {
  private readonly accounts = new Map<string, Account>();
  private readonly loading = new Map<string, Promise<Account>>();

  constructor(
    private readonly measure: UsageMeasure,
    private readonly limitFor: (user: string) => number,
    private readonly otherUsage: OtherUsage = async () => 0,
  ) {}

  private async account(user: string): Promise<Account> {
    const known = this.accounts.get(user);
    if (known !== undefined) return known;
    let pending = this.loading.get(user);
    if (pending === undefined) {
      pending = this.measure(user).then((used) => {
        const acc = { used, reserved: 0 };
        this.accounts.set(user, acc);
        this.loading.delete(user);
        return acc;
      }, (err: unknown) => {
        this.loading.delete(user);
        throw err;
      });
      this.loading.set(user, pending);
    }
    return pending;
  }

  /** Current numbers for a user (measures once on first use). */
  async usage(user: string): Promise<BlobUsage> {
    const acc = await this.account(user);
    const otherUsed = await this.otherUsage(user);
    return { used: acc.used, otherUsed, reserved: acc.reserved, limit: this.limitFor(user) };
  }

  /** Hold `bytes` for a write; throws {@link QuotaExceededError} when it would pass the limit (plus tolerance). */
  async reserve(user: string, bytes: number, tolerance = 0): Promise<QuotaReservation> {
    const acc = await this.account(user);
    // Other usage (documents) is taken as of now; only this store's own bytes need the atomic check below.
    const limit = this.limitFor(user) + tolerance - (await this.otherUsage(user));
    let held = 0;
    let done = false;
    const grow = (n: number): void => {
      if (done) throw new Error('reservation already settled');
      if (n <= 0) return;
      // Synchronous check-and-add: nothing can interleave between them.
      if (acc.used + acc.reserved + n > limit) throw new QuotaExceededError('Quota Exceeded!');
      acc.reserved += n;
      held += n;
    };
    grow(bytes);
    return {
      get bytes() {
        return held;
      },
      grow,
      commit(actual: number): void {
        if (done) return;
        done = true;
        acc.reserved -= held;
        acc.used += actual;
        held = 0;
      },
      release(): void {
        if (done) return;
        done = true;
        acc.reserved -= held;
        held = 0;
      },
    };
  }

  /** Account for bytes that left storage (a delete). A user never measured needs nothing: the walk will see it. */
  subtract(user: string, bytes: number): void {
    const acc = this.accounts.get(user);
    if (acc !== undefined) acc.used = Math.max(0, acc.used - bytes);
  }
}
