/**
 * The client's processing loop against an in-process server: ordering, reservation, confirmation only after save
 * and sync, failures with versions and retries by another version, timeouts, the size-limited first pass,
 * periodic runs, close(), and two replicas sharing the work exactly once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobManager } from '../../../src/client/blobs/blob-manager.js';
import { HttpClient } from '../../../src/client/http/client.js';
import { IncomingBox, type IncomingBoxConsumer, type IncomingItemInfo } from '../../../src/client/incoming/incoming-box.js';
import { ConsumerTimeoutError } from '../../../src/common/errors.js';
import { startIncomingServer, UUID, waitFor, type IncomingServer } from './fixture.js';

interface Seen {
  id: string;
  item: string;
  encrypted: boolean;
  info: IncomingItemInfo;
}

/** A consumer recording what it sees and saves. */
function recorder(options: { name?: string; version?: string; failOn?: (id: string) => boolean; processMs?: number } = {}): IncomingBoxConsumer<string> & {
  seen: Seen[];
  saved: string[];
} {
  const seen: Seen[] = [];
  const saved: string[] = [];
  return {
    name: options.name ?? 'recorder',
    ...(options.version === undefined ? {} : { version: options.version }),
    seen,
    saved,
    async process(item, id, encrypted, info) {
      seen.push({ id, item: item.toString(), encrypted, info });
      if (options.processMs !== undefined) await sleep(options.processMs);
      if (options.failOn?.(id) === true) throw new Error(`cannot parse ${id}`);
      return item.toString().toUpperCase();
    },
    async save(parts, id) {
      saved.push(`${id}:${parts}`);
    },
  };
}

describe('IncomingBox', () => {
  let srv: IncomingServer;
  before(async () => {
    srv = await startIncomingServer({ processingThresholdMs: 60_000, maxFailures: 2 });
  });
  after(async () => srv.close());

  const pending = async (ns = 'MX') => srv.store.list(UUID, { namespace: ns, filterFlag: 'PENDING' });
  const all = async (ns = 'MX') => srv.store.list(UUID, { namespace: ns });

  it('processes every pending message oldest first, saves, syncs once per round, confirms (server deletes)', async () => {
    const r = srv.replica('a', { concurrency: 1 });
    const c = recorder();
    r.box.register(c);
    const events: string[] = [];
    r.box.on('delivered', (e) => events.push(`delivered ${e.itemId}`));
    r.box.on('processed', (e) => events.push(`processed ${e.itemId} ${e.confirmed}`));
    const ids = Array.from({ length: 12 }, (_, i) => `m${String(i).padStart(2, '0')}`);
    for (const [i, id] of ids.entries()) {
      assert.equal(await srv.deliver(id, `payload ${i}`), 200);
      await sleep(3);
    }
    assert.equal(await r.box.pendingCount(), 12);
    const summary = await r.box.processOnce();
    assert.deepEqual(summary.processed.sort(), ids);
    assert.deepEqual(summary.failed, []);
    assert.deepEqual(c.seen.map((s) => s.id), ids, 'chronological');
    assert.deepEqual(c.seen.map((s) => s.item), ids.map((_, i) => `payload ${i}`));
    assert.ok(c.seen.every((s) => s.encrypted && s.info.encryption === 'pgp' && s.info.namespace === 'MX'));
    assert.deepEqual(c.saved, ids.map((id, i) => `${id}:PAYLOAD ${i}`));
    assert.equal(r.syncs, 1);
    assert.deepEqual(await all(), [], 'confirmed messages are deleted');
    assert.equal(events.filter((e) => e.startsWith('processed')).length, 12);
    assert.ok(events.every((e) => !e.startsWith('processed') || e.endsWith('true')));
    assert.equal(await r.box.pendingCount(), 0);
  });

  it('lists the most recent N per round: newer batches first, each batch oldest first', async () => {
    const r = srv.replica('n', { batchSize: 4, concurrency: 1 });
    const c = recorder();
    r.box.register(c);
    const ids = Array.from({ length: 10 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    for (const id of ids) {
      await srv.deliver(id, id);
      await sleep(3);
    }
    const summary = await r.box.processOnce();
    assert.equal(summary.processed.length, 10);
    assert.deepEqual(c.seen.map((s) => s.id), [...ids.slice(6), ...ids.slice(2, 6), ...ids.slice(0, 2)]);
    assert.equal(r.syncs, 3, 'one sync per round');
  });

  it('confirms only after the documents synced: a failed sync leaves them reserved, the next run confirms', async () => {
    const r = srv.replica('s');
    const c = recorder();
    r.box.register(c);
    await srv.deliver('s1', 'one');
    await srv.deliver('s2', 'two');
    r.syncError = new Error('server unreachable');
    const errors: Error[] = [];
    r.box.on('loop-error', (e) => errors.push(e));
    const first = await r.box.processOnce();
    assert.deepEqual(first.processed, []);
    assert.deepEqual(first.skipped.sort(), ['s1', 's2']);
    assert.equal(c.saved.length, 2, 'saved locally');
    assert.ok(errors.some((e) => e.message === 'server unreachable'));
    assert.deepEqual((await all()).sort(), ['s1', 's2'], 'not confirmed: still on the server');
    assert.deepEqual(await srv.store.list(UUID, { namespace: 'MX', filterFlag: 'PROCESSING' }), ['s1', 's2'], 'still reserved');
    // Another replica cannot take them meanwhile.
    const other = srv.replica('o');
    const oc = recorder();
    other.box.register(oc);
    const stolen = await other.box.processOnce();
    assert.deepEqual([stolen.processed, oc.seen], [[], []]);
    r.syncError = undefined;
    const second = await r.box.processOnce();
    assert.deepEqual(second.processed.sort(), ['s1', 's2']);
    assert.equal(c.saved.length, 2, 'not processed twice');
    assert.deepEqual(await all(), []);
  });

  it('a consumer error marks FAILED with the version; another version retries it; enough versions → permanent', async () => {
    const failing = srv.replica('f1', { version: '1.0.0' });
    const c1 = recorder({ failOn: (id) => id === 'bad' });
    failing.box.register(c1);
    const failed: Array<{ id: string; permanent: boolean; error: string }> = [];
    failing.box.on('failed', (e) => failed.push({ id: e.itemId, permanent: e.permanent, error: e.error.message }));
    await srv.deliver('bad', 'garbage');
    await srv.deliver('good', 'fine');
    const s1 = await failing.box.processOnce();
    assert.deepEqual(s1.failed, ['bad']);
    assert.deepEqual(s1.processed, ['good']);
    assert.deepEqual(failed, [{ id: 'bad', permanent: false, error: 'cannot parse bad' }]);
    assert.deepEqual(c1.saved, ['good:FINE']);
    let state = await srv.incoming.state({ user: UUID, namespace: 'MX', blobId: 'bad' });
    assert.deepEqual(state.flags, ['FAILED']);
    assert.deepEqual(state.failures.map((f) => [f.version, f.replica]), [['1.0.0', failing.box.replicaId]]);
    // The same version does not retry it on every loop.
    const again = await failing.box.processOnce();
    assert.deepEqual(again, { processed: [], failed: [], skipped: [] });
    assert.equal(c1.seen.filter((s) => s.id === 'bad').length, 1);
    // A replica with another consumer version retries it and fails too: two distinct versions → permanent.
    const second = srv.replica('f2', { version: '1.0.0' });
    const c2 = recorder({ version: 'fix1', failOn: () => true });
    second.box.register(c2);
    second.box.on('failed', (e) => failed.push({ id: e.itemId, permanent: e.permanent, error: e.error.message }));
    const s2 = await second.box.processOnce();
    assert.deepEqual(s2.failed, ['bad']);
    assert.equal(failed[1]?.permanent, true);
    state = await srv.incoming.state({ user: UUID, namespace: 'MX', blobId: 'bad' });
    assert.deepEqual(state.failures.map((f) => f.version), ['1.0.0', '1.0.0+fix1']);
    // A fixed client would have been allowed before that; now nobody retries it.
    const third = srv.replica('f3', { version: '2.0.0' });
    const c3 = recorder();
    third.box.register(c3);
    assert.deepEqual((await third.box.processOnce()).processed, []);
    assert.equal(c3.seen.length, 0);
    await srv.incoming.store.delete({ user: UUID, namespace: 'MX', blobId: 'bad' });
  });

  it('a newer version succeeds on what an older one failed', async () => {
    const old = srv.replica('v1', { version: '1.0.0' });
    old.box.register(recorder({ failOn: () => true }));
    await srv.deliver('retry-me', 'x');
    assert.deepEqual((await old.box.processOnce()).failed, ['retry-me']);
    const fixed = srv.replica('v2', { version: '1.1.0' });
    const c = recorder();
    fixed.box.register(c);
    assert.deepEqual((await fixed.box.processOnce()).processed, ['retry-me']);
    assert.deepEqual(c.saved, ['retry-me:X']);
    assert.deepEqual(await all(), []);
  });

  it('a consumer that never settles times out and the message is marked FAILED', async () => {
    const r = srv.replica('t', { consumerTimeoutMs: 200 });
    let failure: Error | undefined;
    r.box.on('failed', (e) => {
      failure = e.error;
    });
    r.box.register({ name: 'stuck', process: () => new Promise<never>(() => undefined), save: () => undefined });
    await srv.deliver('stuck-1', 'x');
    const s = await r.box.processOnce();
    assert.deepEqual(s.failed, ['stuck-1']);
    assert.ok(failure instanceof ConsumerTimeoutError);
    await srv.incoming.store.delete({ user: UUID, namespace: 'MX', blobId: 'stuck-1' });
  });

  it('first pass under a size limit, then the rest', async () => {
    const r = srv.replica('z', { firstPassSizeLimit: 2000, concurrency: 1 });
    const c = recorder();
    r.box.register(c);
    await srv.deliver('big-1', Buffer.alloc(5000, 0x62));
    await sleep(3);
    await srv.deliver('small-1', 'tiny');
    await sleep(3);
    await srv.deliver('big-2', Buffer.alloc(5000, 0x62));
    await sleep(3);
    await srv.deliver('small-2', 'tiny');
    const s = await r.box.processOnce();
    assert.equal(s.processed.length, 4);
    assert.deepEqual(c.seen.map((x) => x.id), ['small-1', 'small-2', 'big-1', 'big-2']);
    assert.equal(c.seen[2]!.info.size, 5000);
  });

  it('runs periodically with start({ intervalMs }) until stop()', async () => {
    const r = srv.replica('p');
    const c = recorder();
    r.box.register(c);
    r.box.start({ intervalMs: 30 });
    await srv.deliver('tick-1', 'a');
    await waitFor(() => c.saved.length === 1, 5000, 'first message');
    await srv.deliver('tick-2', 'b');
    await waitFor(() => c.saved.length === 2, 5000, 'second message');
    await waitFor(async () => (await all()).length === 0, 5000, 'confirmation');
    await r.box.stop();
    await srv.deliver('tick-3', 'c');
    await sleep(150);
    assert.equal(c.saved.length, 2, 'stopped');
    await r.box.processOnce();
    assert.equal(c.saved.length, 3);
  });

  it('two replicas processing the same 200 messages at once: each exactly once, none lost', async () => {
    const a = srv.replica('ra', { batchSize: 25 });
    const b = srv.replica('rb', { batchSize: 25 });
    const ca = recorder();
    const cb = recorder();
    a.box.register(ca);
    b.box.register(cb);
    const ids = Array.from({ length: 200 }, (_, i) => `x${String(i).padStart(3, '0')}`);
    let delivered = false;
    const delivering = (async () => {
      for (const id of ids) assert.equal(await srv.deliver(id, id), 200);
      delivered = true;
    })();
    const runs = async (box: typeof a.box) => {
      const processed: string[] = [];
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        const done = delivered;
        processed.push(...(await box.processOnce()).processed);
        if (done && (await all()).length === 0) break;
      }
      return processed;
    };
    const [pa, pb] = await Promise.all([runs(a.box), runs(b.box), delivering]);
    const savedA = ca.saved.map((s) => s.split(':')[0]!);
    const savedB = cb.saved.map((s) => s.split(':')[0]!);
    assert.deepEqual([...savedA, ...savedB].sort(), ids, 'every message saved exactly once');
    assert.deepEqual([...pa, ...pb].sort(), ids, 'every message confirmed exactly once');
    assert.ok(savedA.length > 0 && savedB.length > 0, `both replicas worked (${savedA.length} / ${savedB.length})`);
  });

  it('close() returns promptly during a stuck consumer and gives the reservation back', async () => {
    const r = srv.replica('c', { concurrency: 1 });
    let entered!: () => void;
    const inside = new Promise<void>((res) => {
      entered = res;
    });
    r.box.register({ name: 'hang', process: () => { entered(); return new Promise<never>(() => undefined); }, save: () => undefined });
    await srv.deliver('held-1', 'x');
    const run = r.box.processOnce();
    await inside;
    assert.deepEqual(await srv.store.list(UUID, { namespace: 'MX', filterFlag: 'PROCESSING' }), ['held-1']);
    const t0 = Date.now();
    await r.box.close();
    assert.ok(Date.now() - t0 < 2000);
    assert.deepEqual(await run, { processed: [], failed: [], skipped: ['held-1'] });
    assert.deepEqual(await pending(), ['held-1'], 'released, not failed');
    await assert.rejects(r.box.processOnce(), /closed/);
    await srv.incoming.store.delete({ user: UUID, namespace: 'MX', blobId: 'held-1' });
  });

  it('reads a blob this user encrypted (scheme 1) in the namespace: decrypted, encrypted = false', async () => {
    const remoteSecret = randomBytes(512);
    const dir = await mkdtemp(join(tmpdir(), 'soledad-incoming-own-'));
    const blobs = BlobManager.open({ uuid: UUID, localPath: join(dir, `${UUID}_blobs.db`), localKey: randomBytes(32), remoteSecret, http: srv.http() });
    try {
      await blobs.put('own-1', 'my own note', { namespace: 'NOTES' });
      await srv.store.setFlags({ user: UUID, namespace: 'NOTES', blobId: 'own-1' }, ['PENDING']);
      const r = srv.replica('k', { remoteSecret });
      const c = recorder();
      r.box.register(c, { namespace: 'NOTES' });
      const s = await r.box.processOnce();
      assert.deepEqual(s.processed, ['own-1']);
      assert.deepEqual([c.seen[0]?.item, c.seen[0]?.encrypted, c.seen[0]?.info.encryption], ['my own note', false, undefined]);
    } finally {
      await blobs.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('IncomingBox without a server', () => {
  it('a run that cannot reach the server resolves empty and reports a loop-error; start() keeps going', async () => {
    const http = new HttpClient({ serverUrl: 'https://127.0.0.1:1/', uuid: UUID, token: 't', retryDelaysMs: [] });
    const box = new IncomingBox({ http, uuid: UUID, replicaId: 'r1', syncDocuments: async () => undefined });
    const errors: Error[] = [];
    box.on('loop-error', (e) => errors.push(e));
    box.register({ name: 'c', process: () => 1, save: () => undefined });
    try {
      assert.deepEqual(await box.processOnce(), { processed: [], failed: [], skipped: [] });
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.name, 'ConnectionError');
      box.start({ intervalMs: 20 });
      await waitFor(() => errors.length >= 3, 5000, 'more rounds');
    } finally {
      await box.close();
      await http.close();
    }
  });
});

describe('IncomingBox with a short PROCESSING_THRESHOLD', () => {
  it('a replica that lost its reservation (renewals cut off, another replica took it) does not save', async () => {
    const srv = await startIncomingServer({ processingThresholdMs: 600 });
    try {
      const r = srv.replica('l');
      let saved = 0;
      r.box.register({
        name: 'slowpoke',
        async process() {
          // Meanwhile the reservation lapses (as after a network cut) and another replica takes the message…
          srv.advance(600);
          await srv.incoming.transition({ user: UUID, namespace: 'MX', blobId: 'lost-1' }, { to: 'PROCESSING', replica: 'thief' });
          // …and this one goes on for longer than half the threshold before it would save.
          await sleep(400);
          return 1;
        },
        save() {
          saved += 1;
        },
      });
      await srv.deliver('lost-1', 'x');
      const s = await r.box.processOnce();
      assert.deepEqual(s, { processed: [], failed: [], skipped: ['lost-1'] });
      assert.equal(saved, 0);
      const state = await srv.incoming.state({ user: UUID, namespace: 'MX', blobId: 'lost-1' });
      assert.equal(state.replica, 'thief');
    } finally {
      await srv.close();
    }
  });

  it('a long consumer keeps its reservation by renewing it: no other replica gets the message', async () => {
    const srv = await startIncomingServer({ processingThresholdMs: 600 });
    try {
      const slow = srv.replica('slow');
      const other = srv.replica('other');
      const seen: string[] = [];
      slow.box.register({
        name: 'slow',
        async process(_item, id) {
          seen.push(`slow:${id}`);
          await sleep(1500);
          return 1;
        },
        save: () => undefined,
      });
      other.box.register({ name: 'other', process: (_item, id) => { seen.push(`other:${id}`); return 1; }, save: () => undefined });
      await srv.deliver('long-1', 'x');
      const running = slow.box.processOnce();
      await sleep(100);
      for (let i = 0; i < 8; i++) {
        await other.box.processOnce();
        await sleep(150);
      }
      assert.deepEqual((await running).processed, ['long-1']);
      assert.deepEqual(seen, ['slow:long-1']);
    } finally {
      await srv.close();
    }
  });
});
