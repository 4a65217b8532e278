/**
 * The incoming box's guarantees on one blob engine, run for every engine (`fs.test.ts`, `postgres.test.ts`):
 * racing reservations have exactly one winner, lapsed reservations are free again, failures are counted by
 * distinct versions, deliveries respect quota + tolerance. An engine's setup hands out two stores over the same
 * storage — two connection pools for PostgreSQL, i.e. what two server processes see; the filesystem engine is one
 * server process, so both are the same instance.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlobNotFoundError, QuotaExceededError, ReservationConflictError } from '../../../src/common/errors.js';
import type { BlobStore } from '../../../src/server/backends/blob-types.js';
import { IncomingService } from '../../../src/server/incoming/service.js';

/** Two stores over one storage, and how to dispose of them. */
export interface IncomingStoreSetup {
  stores: [BlobStore, BlobStore];
  teardown(): Promise<void>;
}

const USER = 'user-0123abcd';

async function* bytes(n: number): AsyncGenerator<Buffer> {
  yield Buffer.alloc(n, 0x61);
}

/** Register the suite for one engine. */
export function runIncomingStoreSuite(engine: string, setup: (quotaBytes?: number) => Promise<IncomingStoreSetup>): void {
  describe(`incoming box on ${engine}`, () => {
    const withBoxes = (
      options: { quotaBytes?: number; thresholdMs?: number; maxFailures?: number; tolerance?: number },
      fn: (boxes: [IncomingService, IncomingService], clock: { advance(ms: number): void }) => Promise<void>,
    ) => async () => {
      const s = await setup(options.quotaBytes);
      let now = Date.now();
      const make = (store: BlobStore) => new IncomingService({
        store,
        processingThresholdMs: options.thresholdMs ?? 60_000,
        maxFailures: options.maxFailures ?? 3,
        quotaToleranceBytes: options.tolerance ?? 0,
        now: () => now,
      });
      try {
        await fn([make(s.stores[0]), make(s.stores[1])], { advance: (ms) => { now += ms; } });
      } finally {
        await s.teardown();
      }
    };
    const ref = (blobId: string) => ({ user: USER, namespace: 'MX', blobId });

    it('racing replicas: every message reserved by exactly one, confirmed once, then gone', withBoxes({}, async (boxes) => {
      const ids = Array.from({ length: 40 }, (_, i) => `msg-${i}`);
      for (const id of ids) await boxes[0].deliver('incoming', ref(id), bytes(50), 50);
      const replicas = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'];
      const winners = new Map<string, string[]>();
      await Promise.all(replicas.flatMap((replica, i) => ids.map(async (id) => {
        try {
          await boxes[i % 2]!.transition(ref(id), { to: 'PROCESSING', replica });
          winners.set(id, [...(winners.get(id) ?? []), replica]);
        } catch (err) {
          assert.ok(err instanceof ReservationConflictError, String(err));
        }
      })));
      for (const id of ids) assert.equal(winners.get(id)?.length, 1, `${id}: ${JSON.stringify(winners.get(id))}`);
      // Everyone tries to confirm everything: only the holder is accepted, exactly once.
      const confirmed = new Map<string, number>();
      await Promise.all(replicas.flatMap((replica, i) => ids.map(async (id) => {
        try {
          const st = await boxes[i % 2]!.transition(ref(id), { to: 'PROCESSED', replica });
          assert.equal(st.deleted, true);
          assert.equal(replica, winners.get(id)![0]);
          confirmed.set(id, (confirmed.get(id) ?? 0) + 1);
        } catch (err) {
          assert.ok((err as Error).name === 'ReservationConflictError' || (err as Error).name === 'BlobNotFoundError', String(err));
        }
      })));
      for (const id of ids) assert.equal(confirmed.get(id), 1, id);
      assert.deepEqual(await boxes[1].store.list(USER, { namespace: 'MX' }), []);
    }));

    it('a lapsed reservation is free again: one of the racers wins it, the old holder is refused', withBoxes({ thresholdMs: 1000 }, async (boxes, clock) => {
      await boxes[0].deliver('incoming', ref('slow'), bytes(10), 10);
      await boxes[0].transition(ref('slow'), { to: 'PROCESSING', replica: 'old' });
      clock.advance(999);
      await assert.rejects(boxes[1].transition(ref('slow'), { to: 'PROCESSING', replica: 'new1' }), ReservationConflictError);
      clock.advance(1);
      const results = await Promise.allSettled(['new1', 'new2', 'new3', 'new4'].map((replica, i) =>
        boxes[i % 2]!.transition(ref('slow'), { to: 'PROCESSING', replica })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      await assert.rejects(boxes[0].transition(ref('slow'), { to: 'PROCESSED', replica: 'old' }), ReservationConflictError);
    }));

    it('expiry puts lapsed reservations back to PENDING, and only those', withBoxes({ thresholdMs: 1000 }, async (boxes, clock) => {
      for (const id of ['a', 'b', 'c']) await boxes[0].deliver('incoming', ref(id), bytes(10), 10);
      await boxes[0].transition(ref('a'), { to: 'PROCESSING', replica: 'r1' });
      clock.advance(600);
      await boxes[1].transition(ref('b'), { to: 'PROCESSING', replica: 'r2' });
      clock.advance(500);
      assert.equal(await boxes[1].expire(USER, 'MX'), 1);
      assert.deepEqual(await boxes[0].store.list(USER, { namespace: 'MX', filterFlag: 'PENDING' }), ['a', 'c']);
      assert.deepEqual(await boxes[0].store.list(USER, { namespace: 'MX', filterFlag: 'PROCESSING' }), ['b']);
      // The last holder of `a` can still confirm it: nobody took it since.
      assert.equal((await boxes[0].transition(ref('a'), { to: 'PROCESSED', replica: 'r1' })).deleted, true);
    }));

    it('a confirmation cut short before its deletion finishes when confirmed again', withBoxes({}, async (boxes) => {
      await boxes[0].deliver('incoming', ref('half'), bytes(10), 10);
      await boxes[0].transition(ref('half'), { to: 'PROCESSING', replica: 'r1' });
      // What a server killed between the flag write and the delete leaves behind.
      await boxes[0].store.updateState(ref('half'), (st) => ({ flags: ['PROCESSED'], meta: st.meta }));
      assert.deepEqual(await boxes[0].store.list(USER, { namespace: 'MX' }), ['half']);
      await assert.rejects(boxes[1].transition(ref('half'), { to: 'PROCESSED', replica: 'r2' }), ReservationConflictError);
      assert.equal((await boxes[1].transition(ref('half'), { to: 'PROCESSED', replica: 'r1' })).deleted, true);
      assert.deepEqual(await boxes[0].store.list(USER, { namespace: 'MX' }), []);
      await assert.rejects(boxes[0].transition(ref('half'), { to: 'PROCESSING', replica: 'r2' }), BlobNotFoundError);
    }));

    it('failures by distinct versions become permanent; a failed version never gets it again', withBoxes({ maxFailures: 2 }, async (boxes) => {
      await boxes[0].deliver('incoming', ref('bad'), bytes(10), 10);
      await boxes[0].transition(ref('bad'), { to: 'PROCESSING', replica: 'r1' });
      const f1 = await boxes[0].transition(ref('bad'), { to: 'FAILED', replica: 'r1', version: 'v1' });
      assert.equal(f1.permanent, false);
      assert.deepEqual(await boxes[1].listRetryable(USER, { namespace: 'MX' }, 'v1'), []);
      assert.deepEqual(await boxes[1].listRetryable(USER, { namespace: 'MX' }, 'v2'), ['bad']);
      await assert.rejects(boxes[1].transition(ref('bad'), { to: 'PROCESSING', replica: 'r2', version: 'v1' }), ReservationConflictError);
      // Two replicas of v2 race for the retry: one wins.
      const race = await Promise.allSettled(['r2', 'r3'].map((replica, i) =>
        boxes[i]!.transition(ref('bad'), { to: 'PROCESSING', replica, version: 'v2' })));
      const winner = race.findIndex((r) => r.status === 'fulfilled');
      assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1);
      const f2 = await boxes[0].transition(ref('bad'), { to: 'FAILED', replica: ['r2', 'r3'][winner]!, version: 'v2' });
      assert.equal(f2.permanent, true);
      assert.deepEqual(f2.failures.map((f) => f.version), ['v1', 'v2']);
      await assert.rejects(boxes[1].transition(ref('bad'), { to: 'PROCESSING', replica: 'r4', version: 'v3' }), ReservationConflictError);
      assert.deepEqual(await boxes[1].listRetryable(USER, { namespace: 'MX' }, 'v3'), []);
    }));

    it('deliveries: quota plus tolerance, racing deliveries never pass it, a refused one leaves nothing', withBoxes({ quotaBytes: 10_000, tolerance: 2000 }, async (boxes) => {
      // Each delivery stores 737 + 1000 bytes; at most 6 fit under 12 000.
      const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) =>
        boxes[i % 2]!.deliver('incoming', ref(`q-${i}`), bytes(1000), 1000)));
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      assert.equal(ok, 6);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof QuotaExceededError);
      const stored = await boxes[0].store.list(USER, { namespace: 'MX' });
      assert.equal(stored.length, 6);
      const usage = await boxes[0].store.usage(USER);
      assert.equal(usage.used, 6 * 1737);
    }));
  });
}
