/**
 * The one suite every {@link BlobStore} engine must pass. An engine's test file only supplies setup/teardown:
 *
 * @example
 * runBlobStoreConformance('fs', async (opts) => {
 *   const root = await mkdtemp(join(tmpdir(), 'blobs-'));
 *   return { store: new FsBlobStore({ root, ...opts }), teardown: () => rm(root, { recursive: true, force: true }) };
 * });
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobRef, BlobStore } from '../../../src/server/backends/blob-types.js';

/** Engine options the suite varies. */
export interface ConformanceStoreOptions {
  /** Per-user quota in bytes. */
  quotaBytes?: number;
  /** Most concurrent writes. */
  concurrentWrites?: number;
}

/** A fresh, empty store and the function that disposes of it. */
export interface ConformanceSetup {
  store: BlobStore;
  teardown(): Promise<void>;
}

async function* chunks(...parts: Array<Buffer | string>): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.isBuffer(p) ? p : Buffer.from(p);
}

async function* failingAfter(first: Buffer): AsyncGenerator<Buffer> {
  yield first;
  throw new Error('client went away');
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function ref(blobId: string, namespace = 'default', user = 'user1'): BlobRef {
  return { user, namespace, blobId };
}

function named(name: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof Error && err.name === name;
}

/** Register the conformance tests for one engine. */
export function runBlobStoreConformance(
  engine: string,
  setup: (options: ConformanceStoreOptions) => Promise<ConformanceSetup>,
): void {
  const withStore = (options: ConformanceStoreOptions, fn: (store: BlobStore) => Promise<void>) => async () => {
    const s = await setup(options);
    try {
      await fn(s.store);
    } finally {
      await s.store.close();
      await s.teardown();
    }
  };

  describe(`BlobStore conformance: ${engine}`, () => {
    it('stores, stats, opens and streams a blob; tag is the last 16 bytes', withStore({}, async (store) => {
      const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
      const r = await store.put(ref('b1'), chunks(data.subarray(0, 1000), data.subarray(1000)), { size: data.length });
      assert.equal(r.size, 5000);
      const st = await store.stat(ref('b1'));
      assert.equal(st?.size, 5000);
      assert.ok(st!.createdAt instanceof Date);
      const h = await store.open(ref('b1'));
      assert.equal(h.size, 5000);
      assert.deepEqual(await h.tag(), data.subarray(-16));
      assert.deepEqual(await readAll(h.read()), data);
      await h.close();
    }));

    it('reads a [start, end) range', withStore({}, async (store) => {
      const data = Buffer.from('0123456789abcdef');
      await store.put(ref('r'), chunks(data));
      const h = await store.open(ref('r'));
      assert.equal((await readAll(h.read({ start: 3, end: 7 }))).toString(), '3456');
    }));

    it('accepts a body of unknown size', withStore({}, async (store) => {
      await store.put(ref('u'), chunks('ab', 'cd', 'ef'));
      assert.equal((await store.stat(ref('u')))?.size, 6);
    }));

    it('refuses to overwrite: BlobAlreadyExistsError, content unchanged', withStore({}, async (store) => {
      await store.put(ref('b1'), chunks('first'));
      await assert.rejects(store.put(ref('b1'), chunks('second')), named('BlobAlreadyExistsError'));
      const h = await store.open(ref('b1'));
      assert.equal((await readAll(h.read())).toString(), 'first');
    }));

    it('lets exactly one of many racing writers of the same id win', withStore({}, async (store) => {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => store.put(ref('race'), chunks(`writer-${i}`))),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(named('BlobAlreadyExistsError')(r.reason));
    }));

    it('refuses a body longer or shorter than declared, leaving nothing', withStore({}, async (store) => {
      await assert.rejects(store.put(ref('long'), chunks('abcdef'), { size: 3 }), named('BadRequestError'));
      await assert.rejects(store.put(ref('short'), chunks('ab'), { size: 3 }), named('BadRequestError'));
      assert.equal(await store.stat(ref('long')), null);
      assert.equal(await store.stat(ref('short')), null);
      assert.deepEqual(await store.list('user1', { namespace: 'default' }), []);
      assert.equal((await store.usage('user1')).used, 0);
      assert.equal((await store.usage('user1')).reserved, 0);
    }));

    it('leaves nothing when the body fails midway', withStore({}, async (store) => {
      await assert.rejects(store.put(ref('cut'), failingAfter(Buffer.alloc(1000))), /client went away/);
      assert.equal(await store.stat(ref('cut')), null);
      assert.deepEqual(await store.list('user1', { namespace: 'default' }), []);
      assert.equal((await store.usage('user1')).reserved, 0);
      // and the id is still free
      await store.put(ref('cut'), chunks('ok'));
    }));

    it('honours an abort signal', withStore({}, async (store) => {
      const ac = new AbortController();
      async function* slow(): AsyncGenerator<Buffer> {
        yield Buffer.from('a');
        ac.abort();
        yield Buffer.from('b');
      }
      await assert.rejects(store.put(ref('ab'), slow(), { signal: ac.signal }));
      assert.equal(await store.stat(ref('ab')), null);
    }));

    it('answers BlobNotFoundError / null for missing blobs', withStore({}, async (store) => {
      await assert.rejects(store.open(ref('nope')), named('BlobNotFoundError'));
      assert.equal(await store.stat(ref('nope')), null);
      await assert.rejects(store.getFlags(ref('nope')), named('BlobNotFoundError'));
      await assert.rejects(store.setFlags(ref('nope'), ['PENDING']), named('BlobNotFoundError'));
      await assert.rejects(store.delete(ref('nope')), named('BlobNotFoundError'));
    }));

    it('keeps, replaces and validates flags', withStore({}, async (store) => {
      await store.put(ref('f'), chunks('x'));
      assert.deepEqual(await store.getFlags(ref('f')), []);
      await store.setFlags(ref('f'), ['PENDING', 'FAILED']);
      assert.deepEqual(await store.getFlags(ref('f')), ['PENDING', 'FAILED']);
      await store.setFlags(ref('f'), ['PROCESSED']);
      assert.deepEqual(await store.getFlags(ref('f')), ['PROCESSED']);
      await assert.rejects(store.setFlags(ref('f'), ['PROCESSED', 'BOGUS']), named('InvalidFlagsError'));
      assert.deepEqual(await store.getFlags(ref('f')), ['PROCESSED']);
      await store.setFlags(ref('f'), []);
      assert.deepEqual(await store.getFlags(ref('f')), []);
    }));

    it('stores flags given at creation', withStore({}, async (store) => {
      await store.put(ref('p', 'MX'), chunks('x'), { flags: ['PENDING'] });
      assert.deepEqual(await store.getFlags(ref('p', 'MX')), ['PENDING']);
      await assert.rejects(
        store.put(ref('q', 'MX'), chunks('x'), { flags: ['NOPE' as never] }),
        named('InvalidFlagsError'),
      );
      assert.equal(await store.stat(ref('q', 'MX')), null);
    }));

    it('updateFlags is an atomic compare-and-set', withStore({}, async (store) => {
      await store.put(ref('m'), chunks('x'), { flags: ['PENDING'] });
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () =>
        store.updateFlags(ref('m'), (cur) => {
          if (!cur.includes('PENDING')) throw new Error('lost');
          return ['PROCESSING'];
        })));
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
      assert.deepEqual(await store.getFlags(ref('m')), ['PROCESSING']);
      assert.deepEqual(await store.updateFlags(ref('m'), () => null), ['PROCESSING']);
    }));

    it('updateState keeps a metadata record beside the flags, atomically; delete drops it', withStore({}, async (store) => {
      await store.put(ref('s'), chunks('x'), { flags: ['PENDING'] });
      assert.deepEqual(await store.updateState(ref('s'), () => null), { flags: ['PENDING'], meta: null });
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) =>
        store.updateState(ref('s'), (cur) => {
          if (!cur.flags.includes('PENDING')) throw new Error('lost');
          return { flags: ['PROCESSING'], meta: { holder: `r${i}`, n: i, nested: { ok: true } } };
        })));
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
      const state = await store.updateState(ref('s'), () => null);
      assert.deepEqual(state.flags, ['PROCESSING']);
      assert.equal(typeof state.meta?.['holder'], 'string');
      assert.deepEqual(state.meta?.['nested'], { ok: true });
      // Plain flag writes leave the record alone; the record is invisible to listings and to the quota.
      await store.setFlags(ref('s'), ['FAILED']);
      assert.deepEqual((await store.updateState(ref('s'), () => null)).meta, state.meta);
      assert.deepEqual(await store.getFlags(ref('s')), ['FAILED']);
      assert.deepEqual(await store.list('user1', { namespace: 'default' }), ['s']);
      assert.equal((await store.usage('user1')).used, 1);
      await assert.rejects(store.updateState(ref('s'), () => ({ flags: ['NOPE' as 'PENDING'], meta: null })), named('InvalidFlagsError'));
      await assert.rejects(store.updateState(ref('missing'), () => null), named('BlobNotFoundError'));
      await store.delete(ref('s'));
      await store.put(ref('s'), chunks('y'));
      assert.deepEqual(await store.updateState(ref('s'), () => null), { flags: [], meta: null });
    }));

    it('lists by any of several flags, without some flags, and under a size limit', withStore({}, async (store) => {
      await store.put(ref('p'), chunks('1'), { flags: ['PENDING'] });
      await sleep(15);
      await store.put(ref('r'), chunks('22'), { flags: ['PROCESSING'] });
      await sleep(15);
      await store.put(ref('f'), chunks('333'), { flags: ['FAILED'] });
      await sleep(15);
      await store.put(ref('n'), chunks('4444'));
      const ns = { namespace: 'default' };
      assert.deepEqual(await store.list('user1', { ...ns, filterFlag: 'PENDING', anyFlag: ['PROCESSING'], order: 'asc' }), ['p', 'r']);
      assert.deepEqual(await store.list('user1', { ...ns, anyFlag: ['FAILED', 'PROCESSING'], order: 'desc' }), ['f', 'r']);
      assert.deepEqual(await store.list('user1', { ...ns, excludeFlags: ['PROCESSING'], order: 'asc' }), ['p', 'f', 'n']);
      assert.deepEqual(await store.list('user1', { ...ns, maxSize: 2 }), ['p', 'r']);
      assert.deepEqual(await store.list('user1', { ...ns, maxSize: 3, order: 'desc', limit: 2 }), ['f', 'r']);
      assert.deepEqual(await store.list('user1', { ...ns, maxSize: 0 }), []);
    }));

    it('a put may pass the quota by its tolerance, and no further', withStore({ quotaBytes: 100 }, async (store) => {
      await assert.rejects(store.put(ref('t1'), chunks(Buffer.alloc(120)), { size: 120 }), named('QuotaExceededError'));
      await store.put(ref('t1'), chunks(Buffer.alloc(120)), { size: 120, quotaTolerance: 20 });
      await assert.rejects(store.put(ref('t2'), chunks(Buffer.alloc(1)), { size: 1, quotaTolerance: 20 }), named('QuotaExceededError'));
      await assert.rejects(store.put(ref('t3'), chunks(Buffer.alloc(1))), named('QuotaExceededError'));
      assert.equal((await store.usage('user1')).used, 120);
    }));

    it('deletes with a marker: listed as deleted, gone for reads, id reusable', withStore({}, async (store) => {
      await store.put(ref('d'), chunks('x'), { flags: ['PENDING'] });
      await store.put(ref('keep'), chunks('y'));
      await store.delete(ref('d'));
      assert.equal(await store.stat(ref('d')), null);
      await assert.rejects(store.open(ref('d')), named('BlobNotFoundError'));
      await assert.rejects(store.getFlags(ref('d')), named('BlobNotFoundError'));
      await assert.rejects(store.delete(ref('d')), named('BlobNotFoundError'));
      assert.deepEqual(await store.list('user1', { namespace: 'default' }), ['keep']);
      assert.deepEqual(await store.list('user1', { namespace: 'default', deleted: true }), ['d']);
      // A deleted blob has no flags left to filter on.
      assert.deepEqual(await store.list('user1', { namespace: 'default', deleted: true, filterFlag: 'PENDING' }), []);
      await store.put(ref('d'), chunks('again'));
      assert.deepEqual(await store.list('user1', { namespace: 'default', deleted: true }), []);
      assert.deepEqual(await store.getFlags(ref('d')), []);
    }));

    it('orders by date both ways, filters by flag, pages', withStore({}, async (store) => {
      for (const id of ['c', 'a', 'b']) {
        await store.put(ref(id), chunks(id));
        await sleep(15);
      }
      assert.deepEqual(await store.list('user1', { namespace: 'default' }), ['a', 'b', 'c']);
      assert.deepEqual(await store.list('user1', { namespace: 'default', order: 'asc' }), ['c', 'a', 'b']);
      assert.deepEqual(await store.list('user1', { namespace: 'default', order: 'desc' }), ['b', 'a', 'c']);
      await store.setFlags(ref('a'), ['PENDING']);
      await store.setFlags(ref('b'), ['PENDING', 'FAILED']);
      assert.deepEqual(await store.list('user1', { namespace: 'default', filterFlag: 'PENDING', order: 'asc' }), ['a', 'b']);
      assert.deepEqual(await store.list('user1', { namespace: 'default', filterFlag: 'FAILED' }), ['b']);
      assert.deepEqual(await store.list('user1', { namespace: 'default', filterFlag: 'WHATEVER' }), []);
      assert.deepEqual(await store.list('user1', { namespace: 'default', order: 'asc', offset: 1, limit: 1 }), ['a']);
    }));

    it('keeps namespaces and users apart', withStore({}, async (store) => {
      await store.put(ref('x', 'default'), chunks('1'));
      await store.put(ref('x', 'other'), chunks('22'));
      await store.put(ref('y', 'default', 'user2'), chunks('333'));
      assert.deepEqual(await store.list('user1', { namespace: 'default' }), ['x']);
      assert.deepEqual(await store.list('user1', { namespace: 'other' }), ['x']);
      assert.deepEqual(await store.list('user1', { namespace: 'empty' }), []);
      assert.deepEqual(await store.list('user2', { namespace: 'default' }), ['y']);
      assert.equal((await store.stat(ref('x', 'other')))?.size, 2);
      await assert.rejects(store.open(ref('y')), named('BlobNotFoundError'));
      assert.equal((await store.usage('user1')).used, 3);
      assert.equal((await store.usage('user2')).used, 3);
    }));

    it('counts live blobs plus deletion markers, or by qualifier', withStore({}, async (store) => {
      await store.put(ref('a'), chunks('1'), { flags: ['PENDING'] });
      await store.put(ref('b'), chunks('1'));
      await store.put(ref('c'), chunks('1'));
      await store.delete(ref('c'));
      assert.equal(await store.count('user1', { namespace: 'default' }), 3);
      assert.equal(await store.count('user1', { namespace: 'default', deleted: true }), 1);
      assert.equal(await store.count('user1', { namespace: 'default', filterFlag: 'PENDING' }), 1);
      assert.equal(await store.count('user1', { namespace: 'nothing' }), 0);
    }));

    it('enforces the quota: over → QuotaExceededError, exactly at the limit is fine', withStore({ quotaBytes: 100 }, async (store) => {
      await store.put(ref('a'), chunks(Buffer.alloc(60)), { size: 60 });
      await assert.rejects(store.put(ref('b'), chunks(Buffer.alloc(41)), { size: 41 }), named('QuotaExceededError'));
      await assert.rejects(store.put(ref('c'), chunks(Buffer.alloc(20), Buffer.alloc(21))), named('QuotaExceededError'));
      assert.equal(await store.stat(ref('b')), null);
      assert.equal(await store.stat(ref('c')), null);
      await store.put(ref('d'), chunks(Buffer.alloc(40)), { size: 40 });
      assert.deepEqual(await store.usage('user1'), { used: 100, otherUsed: 0, reserved: 0, limit: 100 });
      await store.delete(ref('a'));
      assert.equal((await store.usage('user1')).used, 40);
      await store.put(ref('e'), chunks(Buffer.alloc(60)));
      assert.equal((await store.usage('user1')).used, 100);
      // Other users have their own quota.
      await store.put(ref('a', 'default', 'user2'), chunks(Buffer.alloc(100)));
    }));

    it('never lets racing writers overshoot the quota', withStore({ quotaBytes: 1000 }, async (store) => {
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) =>
        store.put(ref(`r${i}`), chunks(Buffer.alloc(150), Buffer.alloc(150)), { size: 300 })));
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      assert.equal(ok, 3);
      assert.equal((await store.usage('user1')).used, 900);
      const reservation = await store.reserve('user1', 100);
      await assert.rejects(store.reserve('user1', 1), named('QuotaExceededError'));
      assert.throws(() => reservation.grow(1), named('QuotaExceededError'));
      const tolerated = await store.reserve('user1', 50, 50);
      tolerated.release();
      reservation.release();
      assert.equal((await store.usage('user1')).reserved, 0);
    }));

    it('refuses names that could escape: BadRequestError', withStore({}, async (store) => {
      for (const bad of ['..', '../x', 'a/b', '', '.', 'a.b', 'a\u0000b', '%2e%2e', 'a b']) {
        await assert.rejects(store.put(ref(bad), chunks('x')), named('BadRequestError'), `id ${JSON.stringify(bad)}`);
        await assert.rejects(store.put(ref('ok', bad), chunks('x')), named('BadRequestError'), `ns ${JSON.stringify(bad)}`);
        await assert.rejects(store.put(ref('ok', 'default', bad), chunks('x')), named('BadRequestError'));
        await assert.rejects(store.open(ref(bad)), named('BadRequestError'));
        await assert.rejects(store.list(bad, { namespace: 'default' }), named('BadRequestError'));
        await assert.rejects(store.list('user1', { namespace: bad }), named('BadRequestError'));
      }
    }));

    it('limits concurrent writes', withStore({ concurrentWrites: 2 }, async (store) => {
      const gates: Array<() => void> = [];
      const body = (): AsyncGenerator<Buffer> => (async function* () {
        yield Buffer.from('start');
        await new Promise<void>((resolve) => gates.push(resolve));
        yield Buffer.from('end');
      })();
      const puts = Array.from({ length: 5 }, (_, i) => store.put(ref(`w${i}`), body()));
      await sleep(50);
      assert.deepEqual(store.stats(), { activeWrites: 2, queuedWrites: 3 });
      let maxActive = 2;
      while (gates.length > 0 || store.stats().activeWrites > 0) {
        maxActive = Math.max(maxActive, store.stats().activeWrites);
        gates.shift()?.();
        await sleep(10);
      }
      await Promise.all(puts);
      assert.equal(maxActive, 2);
      assert.deepEqual(store.stats(), { activeWrites: 0, queuedWrites: 0 });
      assert.equal((await store.list('user1', { namespace: 'default' })).length, 5);
    }));
  });
}
