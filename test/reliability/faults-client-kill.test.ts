/**
 * The client process SIGKILLed mid-sync (upload and download) and mid-blob-transfer (download and upload), at
 * points drawn from the seed, then reopened: the local databases open and pass `integrity_check`, nothing
 * half-received is visible (no blob marked SYNCED without its whole, verified content), and the next sync
 * completes and converges.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { blobCiphertextSize } from '../../src/common/crypto/blob-crypto.js';
import { snapshot } from '../client/sync/harness.js';
import { readAll } from '../client/blobs/fixture.js';
import { Counter, localIntegrity, removeDir, Rng, scaled, seed, tempDir, within } from './common.js';
import { account, blobDevice, docDevice, type Account } from './devices.js';
import { startServer, type Server } from './server.js';

const SEED = seed();
const WORKER = join(import.meta.dirname, 'client-worker.ts');
let server: Server;
let dir: string;
const counter = new Counter('faults', 'client process SIGKILL');
const notes: string[] = [`seed ${SEED}`];

before(async () => {
  server = await startServer();
  dir = tempDir('client-kill');
});

after(async () => {
  counter.record(notes);
  await server.stop();
  removeDir(dir);
});

interface Progress { phase?: string; sent?: number; received?: number; direction?: string; done?: number | boolean; total?: number }

/**
 * Run the worker; SIGKILL it as soon as `killWhen` says so (`true`: now; a number: that many ms later, unless it
 * finished first). Resolves with what it printed last and whether it was killed.
 */
async function runAndKill(job: Record<string, unknown>, killWhen: (p: Progress) => boolean | number): Promise<{ killed: boolean; last: Progress | undefined }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  let last: Progress | undefined;
  let killed = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  for await (const line of createInterface({ input: child.stdout! })) {
    const p = JSON.parse(line) as Progress;
    last = p;
    if (p.done === true) {
      finished = true;
      break;
    }
    const verdict = killed ? false : killWhen(p);
    if (verdict === true) {
      clearTimeout(timer);
      killed = true;
      child.kill('SIGKILL');
      break;
    }
    if (typeof verdict === 'number' && timer === undefined) {
      timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, verdict);
    }
  }
  clearTimeout(timer);
  if (finished) killed = false;
  if (!killed) child.kill('SIGKILL');
  await within(20_000, 'the client process to exit', exited);
  assert.ok(killed, `the worker finished before the kill point (last: ${JSON.stringify(last)}; ${stderr.slice(-500)})`);
  return { killed, last };
}

function jobFor(acc: Account, mode: string, path: string, key: Buffer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    mode, path, keyHex: key.toString('hex'), url: server.url, certFile: server.certFile, uuid: acc.uuid, token: acc.token,
    remoteSecretHex: acc.remoteSecret.toString('hex'), ...extra,
  };
}

describe('client process killed mid-sync', () => {
  const rounds = scaled(2, 1);
  for (let round = 0; round < rounds; round++) {
    it(`round ${round + 1}: killed in the download, then in the upload: reopens intact, next sync completes`, async () => {
      const rng = new Rng(SEED + round);
      const acc = await account((u) => server.mint(u));
      const a = docDevice(`writer${round}`, dir, server.url, server.certFile, acc);
      for (let i = 0; i < 300; i++) a.db.createDoc({ i, pad: randomBytes(rng.chance(0.2) ? 60_000 : 1000).toString('base64') });
      await a.sync.sync();

      // Mid-download: the victim has nothing, the server has 300 documents. The kill lands at a random moment of
      // the download (documents are applied in transactions of several MiB, so progress reports are coarse).
      const key = randomBytes(32);
      const path = join(dir, `victim${round}.u1db`);
      const delay = rng.int(0, 300);
      // A download faster than the delay is killed as it ends (record phase) instead: still mid-sync.
      const r1 = await runAndKill(jobFor(acc, 'sync', path, key), (p) => (p.phase === 'download' ? delay : p.phase === 'record'));
      notes.push(`killed ${r1.last?.phase === 'record' ? 'entering the record phase' : `${delay} ms into the download`} (${r1.last?.received ?? 0} of 300 documents reported applied)`);
      assert.equal(localIntegrity(path, key), 'ok');
      let b = docDevice(`victim${round}`, dir, server.url, server.certFile, acc, key);
      const partial = snapshot(b.db);
      const authentic = snapshot(a.db);
      for (const [id, d] of partial) assert.deepEqual(d, authentic.get(id), `a half-applied document ${id}`);
      await b.sync.sync();
      assert.deepEqual(snapshot(b.db), snapshot(a.db));
      assert.equal(b.db.getGeneration(), 300, 'each document applied exactly once');
      await b.close();
      counter.add(true);

      // Mid-upload: the victim wrote 200 documents of its own and dies while sending them.
      const upAt = rng.int(1, 150);
      const r2 = await runAndKill(jobFor(acc, 'sync', path, key, { createDocs: 200 }), (p) => p.phase === 'upload' && (p.sent ?? 0) >= upAt);
      notes.push(`killed mid-upload after ${r2.last?.sent ?? 0} of 200 documents`);
      assert.equal(localIntegrity(path, key), 'ok');
      b = docDevice(`victim${round}`, dir, server.url, server.certFile, acc, key);
      assert.equal(b.db.getAllDocs().docs.filter((d) => d.docId.startsWith('child-')).length, 200, 'every local write survived');
      await b.sync.sync();
      await a.sync.sync();
      assert.deepEqual(snapshot(a.db), snapshot(b.db));
      for (const d of a.db.getAllDocs().docs) assert.equal(d.hasConflicts, false, `${d.docId} conflicted`);
      await b.close();
      await a.close();
      counter.add(true);
    });
  }
});

describe('client process killed mid-blob-transfer', () => {
  it('killed mid-download: no half blob stored or SYNCED; the next sync fetches everything intact', async () => {
    const rng = new Rng(SEED ^ 0x9e3779b9);
    const acc = await account((u) => server.mint(u));
    const a = blobDevice('blob-writer', dir, server.url, server.certFile, acc);
    const data = new Map<string, Buffer>();
    for (let i = 0; i < 3; i++) {
      const d = randomBytes(6 * 1024 * 1024 + rng.int(0, 4096));
      data.set(`big-${i}`, d);
      await a.blobs.put(`big-${i}`, d);
    }
    const key = randomBytes(32);
    const path = join(dir, 'blob-victim_blobs.db');
    const frac = rng.int(10, 90) / 100;
    const r = await runAndKill(jobFor(acc, 'blob-download', path, key), (p) =>
      p.direction === 'download' && typeof p.done === 'number' && p.total !== undefined && p.done >= p.total * frac);
    notes.push(`blob download killed at ${Math.round(frac * 100)}% of a blob (${JSON.stringify(r.last)})`);
    assert.equal(localIntegrity(path, key), 'ok');
    const b = blobDevice('blob-victim', dir, server.url, server.certFile, acc, key);
    for (const [id, d] of data) {
      const e = await b.blobs.localStatus(id);
      if (e?.status === 'SYNCED' || e?.hasContent === true) {
        assert.equal(e.status, 'SYNCED', `${id}: content stored with status ${e.status}`);
        assert.ok((await readAll(await b.blobs.get(id))).equals(d), `${id}: SYNCED with other content`);
      }
    }
    const summary = await b.blobs.sync();
    assert.deepEqual(summary.downloaded.failed, []);
    for (const [id, d] of data) assert.ok((await readAll(await b.blobs.get(id))).equals(d), `${id} intact`);
    await b.close();
    await a.close();
    counter.add(true);
  });

  it('killed mid-upload: the blob stays pending with its whole content; nothing partial on the server; the upload resumes', async () => {
    const rng = new Rng(SEED ^ 0x85ebca6b);
    const acc = await account((u) => server.mint(u));
    const key = randomBytes(32);
    const path = join(dir, 'up-victim_blobs.db');
    const size = 8 * 1024 * 1024;
    const frac = rng.int(10, 90) / 100;
    await runAndKill(jobFor(acc, 'blob-upload', path, key, { blobId: 'up-1', size }), (p) =>
      p.direction === 'upload' && typeof p.done === 'number' && p.total !== undefined && p.done >= p.total * frac);
    notes.push(`blob upload killed at ${Math.round(frac * 100)}%`);
    assert.equal(localIntegrity(path, key), 'ok');
    const a = blobDevice('up-victim', dir, server.url, server.certFile, acc, key);
    const e = await a.blobs.localStatus('up-1');
    assert.equal(e?.status, 'PENDING_UPLOAD');
    assert.equal(e?.hasContent, true);
    assert.deepEqual(await a.blobs.remoteList(), [], 'nothing partial is listed on the server');
    const local = await readAll(await a.blobs.get('up-1'));
    assert.equal(local.length, size);
    const summary = await a.blobs.resume();
    assert.deepEqual(summary.uploaded.failed, []);
    assert.equal((await a.blobs.localStatus('up-1'))?.status, 'SYNCED');
    const b = blobDevice('up-reader', dir, server.url, server.certFile, acc);
    await b.blobs.sync();
    assert.ok((await readAll(await b.blobs.get('up-1'))).equals(local), 'the other device gets the whole blob');
    assert.ok(blobCiphertextSize(size) > size);
    await a.close();
    await b.close();
    counter.add(true);
  });
});
