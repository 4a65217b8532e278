/**
 * A write lease on one CouchDB database, so that writers in different server processes take turns: CouchDB has
 * no transactions, and generations (`gen-%010d` documents) must be allocated by one writer at a time.
 *
 * The lease is the local document `_local/soledad_write_lock` `{owner, expires_at}`, taken and renewed with
 * CouchDB's compare-and-set on `_rev`. A crashed holder's lease lapses after its time to live.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError } from '../../../common/errors.js';
import { CouchError, mapMissingDb, type CouchClient } from './client.js';

/** Path of the lease document inside a database. */
const LEASE_PATH = '/_local/soledad_write_lock';

interface LeaseDoc { _rev?: string; owner: string | null; expires_at: number }

/** Timing of leases. */
export interface LeaseTiming {
  /** How long a lease lasts without renewal (renewed every third of it while held). */
  readonly ttlMs: number;
  /** How long to wait for a busy lease before giving up with `UnavailableError`. */
  readonly waitMs: number;
}

/** Default timing: 30 s leases, give up after 2 minutes. */
export const DEFAULT_LEASE_TIMING: LeaseTiming = { ttlMs: 30_000, waitMs: 120_000 };

/**
 * A held lease. Check {@link WriteLease.lost} before making writes durable; call {@link WriteLease.release} once.
 *
 * @example
 * const lease = await WriteLease.acquire(client, '/user-abc', DEFAULT_LEASE_TIMING);
 * try { ... } finally { await lease.release(); }
 */
export class WriteLease {
  private rev: string;
  private lostFlag = false;
  private released = false;
  private chain: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly client: CouchClient,
    private readonly dbPath: string,
    private readonly owner: string,
    private readonly timing: LeaseTiming,
    rev: string,
  ) {
    this.rev = rev;
    this.timer = setInterval(() => {
      this.chain = this.chain.then(() => this.renew());
    }, Math.max(50, Math.floor(timing.ttlMs / 3)));
    this.timer.unref();
  }

  /** Whether the lease was lost (a renewal failed): the holder must not make its writes durable. */
  get lost(): boolean {
    return this.lostFlag;
  }

  /** Wait for the lease of `dbPath` (e.g. `/user-abc`, already encoded). */
  static async acquire(client: CouchClient, dbPath: string, timing: LeaseTiming): Promise<WriteLease> {
    const owner = randomBytes(12).toString('hex');
    const deadline = Date.now() + timing.waitMs;
    let delay = 5;
    for (;;) {
      let cur: LeaseDoc | null = null;
      try {
        cur = (await client.request<LeaseDoc>('GET', dbPath + LEASE_PATH)).body;
      } catch (err) {
        if (!(err instanceof CouchError && err.isMissingDocument)) mapMissingDb(err);
      }
      if (cur === null || cur.owner === null || cur.expires_at < Date.now()) {
        const body: LeaseDoc = { owner, expires_at: Date.now() + timing.ttlMs };
        if (cur?._rev !== undefined) body._rev = cur._rev;
        try {
          const r = await client.request<{ rev: string }>('PUT', dbPath + LEASE_PATH, { body });
          return new WriteLease(client, dbPath, owner, timing, r.body.rev);
        } catch (err) {
          if (!(err instanceof CouchError && err.isConflict)) mapMissingDb(err);
          continue; // someone else took it first: look again
        }
      }
      if (Date.now() > deadline) {
        throw new UnavailableError('The user database is busy: another server process holds its write lease');
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 200);
    }
  }

  private async renew(): Promise<void> {
    if (this.released || this.lostFlag) return;
    try {
      const r = await this.client.request<{ rev: string }>('PUT', this.dbPath + LEASE_PATH, {
        body: { _rev: this.rev, owner: this.owner, expires_at: Date.now() + this.timing.ttlMs },
      });
      this.rev = r.body.rev;
    } catch {
      this.lostFlag = true;
    }
  }

  /** Give the lease back (errors are ignored: an unreleased lease lapses by itself). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.chain;
    if (this.lostFlag) return;
    try {
      await this.client.request('PUT', this.dbPath + LEASE_PATH, { body: { _rev: this.rev, owner: null, expires_at: 0 } });
    } catch {
      // lapses after ttl
    }
  }
}
