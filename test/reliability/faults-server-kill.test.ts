/**
 * The server process SIGKILLed at random points while two devices write and sync concurrently (documents), and
 * while one device uploads blobs and the other downloads them. Afterwards every acknowledged write is on every
 * device, nothing is duplicated, nothing half-written is visible, and every database passes `integrity_check`.
 * The schedule comes from `SOLEDAD_RELIABILITY_SEED` (printed in the report) so that a failure can be replayed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SoledadError } from '../../src/common/errors.js';
import { blobCiphertextSize } from '../../src/common/crypto/blob-crypto.js';
import { snapshot } from '../client/sync/harness.js';
import { readAll } from '../client/blobs/fixture.js';
import {
  Counter,
  listFiles,
  localIntegrity,
  removeDir,
  Rng,
  scaled,
  seed,
  serverIntegrity,
  tempDir,
  within,
} from './common.js';
import { account, blobDevice, docDevice, type Account, type DocDevice } from './devices.js';
import { IncomingBox } from '../../src/client/incoming/incoming-box.js';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { agentFor, send } from './http.js';
import { startServer, type Server } from './server.js';

const SEED = seed();
let server: Server;
let dir: string;

before(async () => {
  server = await startServer();
  dir = tempDir('kill');
});

after(async () => {
  await server.stop();
  removeDir(dir);
});

/** Kills the server at random moments chosen by `when`, restarts it after a random pause; counts the kills. */
class Killer {
  kills = 0;
  phases: Record<string, number> = {};
  private running = true;
  private loop: Promise<void> | undefined;
  constructor(private readonly rng: Rng, private readonly when: () => string | null, private readonly pMs: [number, number]) {}
  start(): void {
    this.loop = (async () => {
      while (this.running) {
        await sleep(this.rng.int(this.pMs[0], this.pMs[1]));
        if (!this.running) break;
        // Wait (a little) for something to be in flight, then strike after a random delay.
        for (let i = 0; i < 100 && this.when() === null && this.running; i++) await sleep(2);
        await sleep(this.rng.int(0, 25));
        const phase = this.when() ?? 'idle';
        await server.kill();
        this.kills += 1;
        this.phases[phase] = (this.phases[phase] ?? 0) + 1;
        await sleep(this.rng.int(20, 200));
        await server.start();
      }
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    if (!server.alive()) await server.start();
  }
}

describe('server SIGKILLed during syncs of two devices writing concurrently', () => {
  it('every acknowledged write reaches both devices, nothing is duplicated or conflicted, every database is intact', async () => {
    const rng = new Rng(SEED);
    const counter = new Counter('faults', 'server SIGKILL during document syncs');
    const acc: Account = await account((u) => server.mint(u));
    const devices = [docDevice('A', dir, server.url, server.certFile, acc), docDevice('B', dir, server.url, server.certFile, acc)];
    /** What each device last wrote and had acknowledged, per document: its content or `null` (deleted). */
    const expected = new Map<string, { owner: string; content: Record<string, unknown> | null; writeKey: string }>();
    let serial = 0;
    let writing = true;
    const targetSyncs = scaled(100, 20);
    let syncs = 0;
    let failedSyncs = 0;
    const unnamed: string[] = [];

    const writer = async (d: DocDevice): Promise<void> => {
      const own: string[] = [];
      while (writing) {
        serial += 1;
        const writeKey = `${d.name}-${serial}`;
        const r = rng.next();
        if (own.length === 0 || r < 0.5) {
          const content = { owner: d.name, writeKey, pad: randomBytes(rng.int(10, 600)).toString('base64') };
          const doc = d.db.createDoc(content);
          own.push(doc.docId);
          expected.set(doc.docId, { owner: d.name, content, writeKey });
        } else if (r < 0.9) {
          const id = rng.pick(own);
          const doc = d.db.getDoc(id)!;
          const content = { owner: d.name, writeKey, pad: randomBytes(rng.int(10, 600)).toString('base64') };
          doc.content = content;
          d.db.putDoc(doc);
          expected.set(id, { owner: d.name, content, writeKey });
        } else {
          const id = own.splice(rng.int(0, own.length - 1), 1)[0]!;
          d.db.deleteDoc(d.db.getDoc(id)!);
          expected.set(id, { owner: d.name, content: null, writeKey });
        }
        await sleep(rng.int(5, 25));
      }
    };
    let refusedWhileDown = 0;
    let kills = 0;
    const phases: Record<string, number> = {};
    let strike: Promise<void> | null = null;
    /** Kill the server a few milliseconds into a sync (so in any of its phases), restart it after a pause. */
    const maybeStrike = (d: DocDevice): void => {
      if (strike !== null || !rng.chance(0.12)) return;
      // Aim at each phase in turn (a sync spends most of its time uploading; random delays alone rarely hit the rest).
      const target = rng.pick(['info', 'upload', 'download', 'record', 'any'] as const);
      const delay = rng.int(0, 40);
      strike = (async () => {
        const t0 = Date.now();
        if (target === 'any') await sleep(delay);
        else while (d.phase() !== target && Date.now() - t0 < 300) await new Promise((r) => setImmediate(r));
        const phase = d.phase() ?? 'between phases';
        await server.kill();
        kills += 1;
        phases[phase] = (phases[phase] ?? 0) + 1;
        await sleep(rng.int(20, 200));
        await server.start();
        strike = null;
      })();
    };
    const syncer = async (d: DocDevice): Promise<void> => {
      while (syncs < targetSyncs) {
        // Only syncs that start against a running server count; while it restarts, devices keep retrying.
        const up = server.alive();
        if (up) {
          syncs += 1;
          maybeStrike(d);
        }
        try {
          await within(60_000, `sync ${syncs} of ${d.name}`, d.sync.sync());
        } catch (err) {
          if (up) failedSyncs += 1;
          else refusedWhileDown += 1;
          if (!(err instanceof SoledadError)) unnamed.push(`${(err as Error).name}: ${(err as Error).message}`);
        }
        await sleep(up ? rng.int(0, 30) : 50);
      }
    };

    const writers = devices.map(writer);
    await Promise.all(devices.map(syncer));
    writing = false;
    await Promise.all(writers);
    await strike;
    if (!server.alive()) await server.start();

    // Final syncs on a healthy server until both devices are quiet.
    for (let round = 0; round < 4; round++) for (const d of devices) await within(60_000, 'final sync', d.sync.sync());

    const problems: string[] = [...unnamed.map((u) => `unnamed error: ${u}`)];
    for (const d of devices) {
      for (const [id, want] of expected) {
        const got = d.db.getDoc(id, true);
        if (got === null) problems.push(`${d.name} lacks ${id} (${want.writeKey})`);
        else if (want.content === null ? !got.isTombstone() : JSON.stringify(got.content) !== JSON.stringify(want.content)) {
          problems.push(`${d.name} has ${id} at ${JSON.stringify(got.content)?.slice(0, 60)}, expected ${want.writeKey}`);
        }
        if (got?.hasConflicts === true) problems.push(`${d.name}: ${id} is conflicted`);
      }
      // No duplicate: each write key lives in exactly one document, and no document comes from nowhere.
      const keys = new Map<string, number>();
      for (const doc of d.db.getAllDocs(false).docs) {
        const k = (doc.content as { writeKey?: string }).writeKey ?? 'none';
        keys.set(k, (keys.get(k) ?? 0) + 1);
        if (!expected.has(doc.docId)) problems.push(`${d.name} has a document nobody wrote: ${doc.docId}`);
      }
      for (const [k, n] of keys) if (n > 1) problems.push(`${d.name}: write ${k} appears ${n} times`);
    }
    assert.deepEqual(snapshot(devices[0]!.db), snapshot(devices[1]!.db), 'both devices hold the same documents');
    for (const d of devices) await d.close();
    for (const d of devices) {
      const check = localIntegrity(d.path, d.key);
      if (check !== 'ok') problems.push(`${d.name} integrity: ${check}`);
    }
    await server.kill(); // a clean look at the server's files, as after a crash
    for (const f of listFiles(server.dataDir).filter((p) => p.endsWith('.db'))) {
      const check = serverIntegrity(join(server.dataDir, f));
      if (check !== 'ok') problems.push(`server ${f} integrity: ${check}`);
    }
    await server.start();

    for (let i = 0; i < kills; i++) counter.add(problems.length === 0);
    counter.record([
      `seed ${SEED}`, `${syncs} syncs (${failedSyncs} cut by a kill, ${refusedWhileDown} more refused while down), ${serial} writes, ${kills} kills`,
      `kills by phase: ${JSON.stringify(phases)}`, ...problems.slice(0, 10),
    ]);
    assert.ok(kills >= 3, `faults were injected (${kills} kills)`);
    assert.ok(failedSyncs > 0, 'some syncs were cut');
    assert.deepEqual(problems, []);
  });
});

describe('server SIGKILLed during blob uploads and downloads', () => {
  it('every blob put on A is on B intact; nothing half-transferred is stored or SYNCED; databases intact', async () => {
    const rng = new Rng(SEED ^ 0x5bd1e995);
    const counter = new Counter('faults', 'server SIGKILL during blob transfers');
    const acc = await account((u) => server.mint(u));
    const a = blobDevice('A', dir, server.url, server.certFile, acc);
    const b = blobDevice('B', dir, server.url, server.certFile, acc);
    const n = scaled(24, 6);
    const plain = new Map<string, Buffer>();
    for (let i = 0; i < n; i++) plain.set(`blob-${i}`, randomBytes(rng.chance(0.3) ? rng.int(1, 3) * 1024 * 1024 : rng.int(0, 64 * 1024)));
    const halfSeen: string[] = [];
    let inflight = 0;
    const killer = new Killer(rng, () => (inflight > 0 ? 'transfer' : null), [150, 500]);
    // Half-written content must never show as stored: watch B's statuses at every kill-prone moment.
    const watch = setInterval(() => {
      void (async () => {
        for (const id of plain.keys()) {
          const e = await b.blobs.localStatus(id).catch(() => undefined);
          if (e?.hasContent === true && e.status !== 'SYNCED') halfSeen.push(`${id}: content with status ${e.status}`);
        }
      })();
    }, 50);
    killer.start();
    let putFailures = 0;
    const puts = [...plain].map(async ([id, data], i) => {
      await sleep(i * 40);
      inflight += 1;
      try {
        await a.blobs.put(id, data);
      } catch (err) {
        putFailures += 1;
        assert.ok(err instanceof SoledadError, `named error, got ${String(err)}`);
      } finally {
        inflight -= 1;
      }
    });
    const downloads = (async () => {
      // At least 8 rounds, and on until the killer struck twice (a loaded machine restarts the server slowly).
      for (let round = 0; round < 40 && (round < 8 || killer.kills < 2); round++) {
        inflight += 1;
        try {
          await b.blobs.sync();
        } catch (err) {
          assert.ok(err instanceof SoledadError, `named error, got ${String(err)}`);
        } finally {
          inflight -= 1;
        }
        await sleep(rng.int(50, 300));
      }
    })();
    await Promise.all([...puts, downloads]);
    await killer.stop();
    clearInterval(watch);

    // A healthy server: what is pending finishes.
    for (let round = 0; round < 3; round++) {
      await a.blobs.sync().catch(() => undefined);
      await b.blobs.sync().catch(() => undefined);
    }
    const problems: string[] = [...halfSeen];
    for (const [id, data] of plain) {
      const ea = await a.blobs.localStatus(id);
      const eb = await b.blobs.localStatus(id);
      if (ea?.status !== 'SYNCED') problems.push(`A: ${id} is ${ea?.status}`);
      if (eb?.status !== 'SYNCED' || eb.hasContent !== true) {
        problems.push(`B: ${id} is ${eb?.status}`);
        continue;
      }
      const got = await readAll(await b.blobs.get(id));
      if (!got.equals(data)) problems.push(`B: ${id} content differs (sha256 ${createHash('sha256').update(got).digest('hex').slice(0, 8)})`);
    }
    // The server: exactly the blobs put, each complete (its ciphertext size), no temporary file left visible.
    const listed = (await a.blobs.remoteList()).sort();
    assert.deepEqual(listed, [...plain.keys()].sort());
    const files = listFiles(join(server.dataDir, 'blobs', acc.uuid));
    const named = files.filter((f) => !f.split('/').pop()!.startsWith('.'));
    for (const [id, data] of plain) {
      const f = named.find((p) => p.endsWith(`/${id}`));
      if (f === undefined) problems.push(`server: ${id} missing`);
      else {
        const { statSync } = await import('node:fs');
        const size = statSync(join(server.dataDir, 'blobs', acc.uuid, f)).size;
        if (size !== blobCiphertextSize(data.length)) problems.push(`server: ${id} is ${size} bytes, expected ${blobCiphertextSize(data.length)}`);
      }
    }
    await a.close();
    await b.close();
    for (const d of [a, b]) {
      if (!existsSync(d.path)) continue;
      const check = localIntegrity(d.path, d.key);
      if (check !== 'ok') problems.push(`${d.name} integrity: ${check}`);
    }
    for (let i = 0; i < killer.kills; i++) counter.add(problems.length === 0);
    counter.record([`seed ${SEED}`, `${n} blobs, ${killer.kills} kills, ${putFailures} puts gave up (finished by sync)`, ...problems.slice(0, 10)]);
    assert.ok(killer.kills >= 2, `faults were injected (${killer.kills})`);
    assert.deepEqual(problems, []);
  });
});

describe('server SIGKILLed during incoming deliveries and processing', () => {
  it('every delivered message is processed once into one document that reaches other devices; none is left pending', async () => {
    const rng = new Rng(SEED ^ 0x1b873593);
    const counter = new Counter('faults', 'server SIGKILL during incoming processing');
    const acc = await account((u) => server.mint(u));
    const dev = docDevice('in-A', dir, server.url, server.certFile, acc);
    const other = docDevice('in-B', dir, server.url, server.certFile, acc);
    const box = new IncomingBox({
      http: dev.http, uuid: acc.uuid, replicaId: dev.db.replicaUid, syncDocuments: () => dev.sync.sync(), concurrency: 3,
    });
    let saves = 0;
    box.register<string>({
      name: 'reliability-mail',
      process: (item) => item.toString('utf8'),
      save: (text, itemId) => {
        saves += 1;
        // Idempotent, as the incoming box asks of consumers: a replayed message finds its document.
        if (dev.db.getDoc(`mail-${itemId}`, true) === null) dev.db.createDoc({ text }, `mail-${itemId}`);
      },
    });
    const services = agentFor(undefined);
    const n = scaled(30, 8);
    const payloads = new Map<string, string>();
    for (let i = 0; i < n; i++) payloads.set(`msg${i}`, `payload ${i} ${randomBytes(rng.int(10, 3000)).toString('base64')}`);
    let inflight = 0;
    const killer = new Killer(rng, () => (inflight > 0 ? 'incoming' : null), [100, 500]);
    killer.start();
    let redelivered = 0;
    // The trusted app: delivers each message, retrying until the server acknowledges it (409: an earlier try landed).
    const deliveries = (async () => {
      for (const [id, body] of payloads) {
        for (let attempt = 0; ; attempt++) {
          inflight += 1;
          try {
            const a = await send(services, server.servicesUrl, {
              method: 'PUT', path: `/incoming/${acc.uuid}/${id}`, body,
              headers: { 'content-type': 'application/octet-stream', authorization: encodeTokenAuthorization('incoming', server.servicesToken) },
            });
            if (a.status === 200 || a.status === 409) {
              if (a.status === 409) redelivered += 1;
              break;
            }
          } catch {
            // the server died under the request: deliver again
          } finally {
            inflight -= 1;
          }
          await sleep(50);
          assert.ok(attempt < 400, `delivery of ${id} never acknowledged`);
        }
        await sleep(rng.int(0, 40));
      }
    })();
    const processing = (async () => {
      for (let round = 0; round < 60 && (round < 12 || killer.kills < 2); round++) {
        inflight += 1;
        try {
          await box.processOnce();
        } catch (err) {
          assert.ok(err instanceof SoledadError, `named error, got ${String(err)}`);
        } finally {
          inflight -= 1;
        }
        await sleep(rng.int(50, 250));
      }
    })();
    await Promise.all([deliveries, processing]);
    await killer.stop();
    for (let round = 0; round < 6; round++) {
      const r = await box.processOnce().catch(() => ({ processed: [], failed: [], skipped: ['error'] }));
      if (r.skipped.length === 0 && r.processed.length === 0 && r.failed.length === 0) break;
    }
    await dev.sync.sync();
    await other.sync.sync();

    const problems: string[] = [];
    for (const d of [dev, other]) {
      for (const [id, body] of payloads) {
        const doc = d.db.getDoc(`mail-${id}`);
        if (doc === null) problems.push(`${d.name}: message ${id} has no document`);
        else if ((doc.content as { text?: string }).text !== body) problems.push(`${d.name}: message ${id} has other content`);
        if (doc?.hasConflicts === true) problems.push(`${d.name}: mail-${id} is conflicted`);
      }
      const mails = d.db.getAllDocs().docs.filter((x) => x.docId.startsWith('mail-'));
      if (mails.length !== payloads.size) problems.push(`${d.name}: ${mails.length} mail documents for ${payloads.size} messages`);
    }
    const pending = await send(agentFor(server.certFile), server.url, {
      method: 'GET', path: `/blobs/${acc.uuid}/?namespace=MX`, headers: { authorization: encodeTokenAuthorization(acc.uuid, acc.token) },
    });
    const left = JSON.parse(pending.body) as string[];
    if (left.length > 0) problems.push(`still in the incoming box: ${left.join(', ')}`);
    await box.close();
    await services.close();
    await dev.close();
    await other.close();
    for (const d of [dev, other]) {
      const check = localIntegrity(d.path, d.key);
      if (check !== 'ok') problems.push(`${d.name} integrity: ${check}`);
    }
    for (let i = 0; i < killer.kills; i++) counter.add(problems.length === 0);
    counter.record([`seed ${SEED}`, `${n} messages, ${killer.kills} kills, ${redelivered} re-deliveries answered 409, ${saves} saves`,
      ...problems.slice(0, 10)]);
    assert.ok(killer.kills >= 2, `faults were injected (${killer.kills})`);
    assert.deepEqual(problems, []);
  });
});
