/**
 * The network between client and server, broken on purpose by a loopback relay: connections cut after N bytes
 * inside each phase of a sync (info, upload, download, record) and of `/stream/` (both directions), a route that
 * goes silent (stall), and a 1 KB/s link. Every outcome is a completed sync/transfer or a ConnectionError within
 * the configured timeouts (never a hang), only authentic data is applied, and the next sync converges.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ConnectionError, SoledadError } from '../../src/common/errors.js';
import { DEFAULT_TIMEOUTS } from '../../src/client/http/client.js';
import type { SyncPhase } from '../../src/client/sync/synchronizer.js';
import { snapshot } from '../client/sync/harness.js';
import { readAll } from '../client/blobs/fixture.js';
import { Counter, removeDir, Rng, scaled, seed, tempDir, within } from './common.js';
import { account, blobDevice, docDevice, type DocDevice } from './devices.js';
import { startNetProxy, type Direction, type NetProxy } from './net-proxy.js';
import { startServer, type Server } from './server.js';

const SEED = seed();
let server: Server;
let proxy: NetProxy;
let dir: string;
const counter = new Counter('faults', 'network cuts, stalls and a slow link');
const notes: string[] = [`seed ${SEED}`];

before(async () => {
  server = await startServer();
  proxy = await startNetProxy(server.httpsPort);
  dir = tempDir('net');
});

after(async () => {
  counter.record(notes);
  await proxy.close();
  await server.stop();
  removeDir(dir);
});

/** Cut each phase in the direction its bulk travels. */
const PHASES: Array<{ phase: Exclude<SyncPhase, 'done' | 'failed'>; dir: Direction }> = [
  { phase: 'info', dir: 'down' },
  { phase: 'upload', dir: 'up' },
  { phase: 'download', dir: 'down' },
  { phase: 'record', dir: 'up' },
];

describe('connection cut after N bytes in each phase of a sync', () => {
  const offsets = [0, 200, 3_000, 40_000];
  const rounds = scaled(1, 1);
  for (const { phase, dir: direction } of PHASES) {
    it(`${phase}: a ConnectionError or a completed sync, never a half-applied document; the next sync converges`, async () => {
      const rng = new Rng(SEED);
      for (let round = 0; round < rounds; round++) {
        for (const base of offsets) {
          const n = base + rng.int(0, 150);
          const acc = await account((u) => server.mint(u));
          const a = docDevice(`a-${phase}-${round}-${n}`, dir, server.url, server.certFile, acc, randomBytes(32));
          const b = docDevice(`b-${phase}-${n}`, dir, proxy.url, server.certFile, acc, randomBytes(32),
            { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 });
          try {
            for (let i = 0; i < 40; i++) a.db.createDoc({ from: 'a', i, pad: randomBytes(800).toString('base64') });
            await a.sync.sync();
            for (let i = 0; i < 40; i++) b.db.createDoc({ from: 'b', i, pad: randomBytes(800).toString('base64') });
            const cutsBefore = proxy.cuts;
            let armed = false;
            const onProgress = (p: { phase: SyncPhase }): void => {
              if (!armed && p.phase === phase) {
                armed = true;
                proxy.cutAfter(direction, n);
              }
            };
            b.sync.on('progress', onProgress);
            let outcome = 'completed';
            try {
              await within(30_000, `sync cut in ${phase}`, b.sync.sync());
            } catch (err) {
              outcome = err instanceof Error ? err.name : String(err);
              assert.ok(err instanceof ConnectionError, `a cut is a ConnectionError, got ${outcome}: ${(err as Error).message}`);
            } finally {
              b.sync.off('progress', onProgress);
              proxy.reset();
            }
            const cut = proxy.cuts > cutsBefore;
            assertAuthentic(b, a);
            // Honest network: everything converges, nothing duplicated.
            await within(30_000, 'sync after the cut', b.sync.sync());
            await a.sync.sync();
            assert.deepEqual(snapshot(a.db), snapshot(b.db));
            assert.equal(a.db.getAllDocs().docs.length, 80);
            for (const d of a.db.getAllDocs().docs) assert.equal(d.hasConflicts, false, `${d.docId} conflicted`);
            counter.add(true);
            notes.push(`${phase} cut after ${n} B ${direction}: ${cut ? 'cut' : 'not reached'} → ${outcome}`);
          } finally {
            await a.close();
            await b.close();
          }
        }
      }
    });
  }
});

/** Every document B holds is its own or one A wrote, byte for byte (nothing half-applied). */
function assertAuthentic(b: DocDevice, a: DocDevice): void {
  const theirs = snapshot(a.db);
  for (const [id, d] of snapshot(b.db)) {
    const from = (d.content as { from?: string } | null)?.from;
    if (from === 'a') assert.deepEqual(d, theirs.get(id), `${id} differs from A's`);
  }
}

describe('connection cut inside /stream/ transfers', () => {
  for (const direction of ['up', 'down'] as const) {
    it(`${direction === 'up' ? 'upload' : 'download'} cut after N bytes: retried cleanly, every blob intact, none half-stored`, async () => {
      const rng = new Rng(SEED ^ (direction === 'up' ? 1 : 2));
      const acc = await account((u) => server.mint(u));
      const writer = blobDevice(`sw-${direction}`, dir, direction === 'up' ? proxy.url : server.url, server.certFile, acc);
      const reader = blobDevice(`sr-${direction}`, dir, direction === 'down' ? proxy.url : server.url, server.certFile, acc);
      try {
        const data = new Map<string, Buffer>();
        for (let i = 0; i < 12; i++) {
          const d = randomBytes(rng.int(1000, 300_000));
          data.set(`s${i}`, d);
          await writer.blobs.put(`s${i}`, d, { upload: 'later' });
        }
        const total = [...data.values()].reduce((s, d) => s + d.length, 0);
        const cutsBefore = proxy.cuts;
        const at = rng.int(1000, Math.floor(total / 2));
        if (direction === 'up') {
          proxy.cutAfter('up', at);
          const sent = await within(60_000, 'stream upload', writer.blobs.sendMissing({ transport: 'stream' }));
          assert.deepEqual(sent.failed.map((f) => f.error.name), []);
        } else {
          await writer.blobs.sendMissing({ transport: 'stream' });
          await reader.blobs.refreshSyncStatusFromServer();
          proxy.cutAfter('down', at);
          const got = await within(60_000, 'stream download', reader.blobs.fetchMissing({ transport: 'stream' }));
          assert.deepEqual(got.failed.map((f) => f.error.name), []);
        }
        proxy.reset();
        assert.ok(proxy.cuts > cutsBefore, 'the transfer was cut');
        if (direction === 'up') {
          await reader.blobs.refreshSyncStatusFromServer();
          await reader.blobs.fetchMissing();
        }
        for (const [id, d] of data) {
          assert.equal((await writer.blobs.localStatus(id))?.status, 'SYNCED', `${id} on the writer`);
          assert.equal((await reader.blobs.localStatus(id))?.status, 'SYNCED', `${id} on the reader`);
          assert.ok((await readAll(await reader.blobs.get(id))).equals(d), `${id} intact`);
        }
        counter.add(true);
        notes.push(`/stream/ ${direction === 'up' ? 'upload' : 'download'} cut after ${at} of ~${total} B: retried, all intact`);
      } finally {
        proxy.reset();
        await writer.close();
        await reader.close();
      }
    });
  }
});

describe('a silent route and a slow link', () => {
  it('a route that goes silent: ConnectionError within the configured timeouts (headers and body), never a hang', async () => {
    assert.ok(DEFAULT_TIMEOUTS.headersMs > 0 && DEFAULT_TIMEOUTS.bodyMs > 0 && DEFAULT_TIMEOUTS.connectMs > 0, 'sane defaults exist');
    const acc = await account((u) => server.mint(u));
    const a = docDevice('stall-a', dir, server.url, server.certFile, acc);
    for (let i = 0; i < 200; i++) a.db.createDoc({ i, pad: randomBytes(1500).toString('base64') });
    await a.sync.sync();
    for (const [what, n] of [['before the response headers', 0], ['in the middle of the body', 60_000]] as const) {
      const b = docDevice(`stall-b-${n}`, dir, proxy.url, server.certFile, acc, randomBytes(32), { headersTimeoutMs: 1_000, bodyTimeoutMs: 1_000 });
      try {
        let armed = false;
        b.sync.on('progress', (p) => {
          if (!armed && p.phase === 'download') {
            armed = true;
            proxy.stallAfter('down', n);
          }
        });
        const t0 = Date.now();
        await assert.rejects(within(15_000, `stalled sync (${what})`, b.sync.sync()), (err: unknown) => {
          assert.ok(err instanceof ConnectionError, `${String(err)}`);
          return true;
        });
        const ms = Date.now() - t0;
        assert.ok(ms < 8_000, `gave up after ${ms} ms with 1 s timeouts`);
        proxy.reset();
        assertAuthentic(b, a);
        await b.sync.sync();
        assert.deepEqual(snapshot(b.db), snapshot(a.db));
        counter.add(true);
        notes.push(`stall ${what}: ConnectionError after ${ms} ms (timeouts 1 s)`);
      } finally {
        proxy.reset();
        await b.close();
      }
    }
    await a.close();
  });

  it('a 1 KB/s link: a sync completes (slow is not dead) within the default timeouts', async () => {
    const acc = await account((u) => server.mint(u));
    const a = docDevice('slow-a', dir, server.url, server.certFile, acc);
    for (let i = 0; i < 3; i++) a.db.createDoc({ i });
    await a.sync.sync();
    // TLS delivers nothing of a record before all of it arrived: at 1 KB/s a 16 KiB record takes 16 s, so only
    // timeouts far above that (the defaults are 120 s) suit such a link.
    const b = docDevice('slow-b', dir, proxy.url, server.certFile, acc, randomBytes(32), {
      headersTimeoutMs: DEFAULT_TIMEOUTS.headersMs, bodyTimeoutMs: DEFAULT_TIMEOUTS.bodyMs,
    });
    try {
      proxy.throttle(1024);
      const t0 = Date.now();
      await within(60_000, 'sync over 1 KB/s', b.sync.sync());
      const ms = Date.now() - t0;
      proxy.reset();
      assert.deepEqual(snapshot(b.db), snapshot(a.db));
      assert.ok(ms > 2_000, `the link was slow (${ms} ms)`);
      counter.add(true);
      notes.push(`1 KB/s link: sync of 3 documents completed in ${ms} ms with the default timeouts`);
    } catch (err) {
      counter.add(false, `slow link: ${String(err)}`);
      assert.ok(err instanceof SoledadError, `a named error at least, got ${String(err)}`);
      throw err;
    } finally {
      proxy.reset();
      await a.close();
      await b.close();
    }
  });
});
