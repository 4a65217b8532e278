/** BlobManager against a real Users API over TLS: every status transition, errors, retries, tags, restarts. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TransferProgress } from '../../../src/client/blobs/blob-manager.js';
import { SEED_RETRY_SCHEDULE } from '../../../src/client/blobs/transfer-queue.js';
import { LocalBlobStore } from '../../../src/client/blobs/local-store.js';
import { EncMethod, EncScheme, encodePreamble } from '../../../src/common/crypto/preamble.js';
import { startBlobServer, readAll, UUID } from './fixture.js';
import type { BlobServer } from './fixture.js';

function named(name: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof Error && err.name === name;
}

function serverPath(srv: BlobServer, id: string, ns = 'default'): string {
  return join(srv.dir, 'server', 'blobs', UUID, ns, id.slice(0, 1), id.slice(0, 3), id.slice(0, 6), id);
}

describe('BlobManager', () => {
  let srv: BlobServer;
  before(async () => {
    srv = await startBlobServer();
  });
  after(async () => srv.close());
  afterEach(() => srv.setFaults(undefined));

  it('put: PENDING_UPLOAD → SYNCED; the server holds only ciphertext of the right size', async () => {
    const a = srv.manager('put-a');
    const statuses: string[] = [];
    a.on('status', (s) => statuses.push(`${s.blobId}:${s.status}`));
    const data = randomBytes(10_000);
    await a.put('put-1', data);
    assert.deepEqual(statuses, ['put-1:PENDING_UPLOAD', 'put-1:SYNCED']);
    assert.equal((await a.localStatus('put-1'))?.status, 'SYNCED');
    const stored = await readFile(serverPath(srv, 'put-1'));
    assert.equal(stored.length, data.length + 736 + 1 + 16);
    assert.equal(stored.subarray(0, 4).toString(), 'EzcB');
    assert.equal(stored[736], 0x20);
    assert.equal(stored.indexOf(data.subarray(0, 64)), -1, 'no cleartext on the server');
    assert.deepEqual(await readAll(await a.get('put-1')), data);
    assert.deepEqual(await a.localList(), ['put-1']);
    assert.deepEqual(await a.localListStatus('SYNCED'), ['put-1']);
  });

  it('put accepts strings, buffers and streams, in namespaces', async () => {
    const a = srv.manager('put-kinds');
    await a.put('k-str', 'héllo');
    await a.put('k-stream', Readable.from([Buffer.from('ab'), Buffer.from('cd')]), { namespace: 'photos' });
    await a.put('k-iter', [Buffer.from('x'), 'y']);
    assert.equal((await readAll(await a.get('k-str'))).toString(), 'héllo');
    assert.equal((await readAll(await a.get('k-stream', { namespace: 'photos' }))).toString(), 'abcd');
    assert.equal((await readAll(await a.get('k-iter'))).toString(), 'xy');
    assert.deepEqual(await a.remoteList({ namespace: 'photos' }), ['k-stream']);
    await assert.rejects(a.get('k-stream'), named('BlobNotFoundError'));
    await assert.rejects(a.put('bad/id', 'x'), named('BadRequestError'));
    await assert.rejects(a.put('ok', 'x', { namespace: '../x' }), named('BadRequestError'));
  });

  it('upload: "later" stays PENDING_UPLOAD until sendMissing; "queue" resolves before the upload', async () => {
    const a = srv.manager('later');
    await a.put('l-1', 'one', { upload: 'later' });
    await a.put('l-2', 'two', { upload: 'later' });
    assert.deepEqual((await a.localListStatus('PENDING_UPLOAD')).sort(), ['l-1', 'l-2']);
    assert.ok(!(await a.remoteList()).includes('l-1'));
    const summary = await a.sendMissing();
    assert.deepEqual(summary.succeeded.sort(), ['l-1', 'l-2']);
    assert.deepEqual(await a.localListStatus('PENDING_UPLOAD'), []);
    assert.ok((await a.remoteList()).includes('l-2'));
    await a.put('q-1', 'queued', { upload: 'queue' });
    for (let i = 0; i < 100 && (await a.localStatus('q-1'))?.status !== 'SYNCED'; i++) await sleep(10);
    assert.equal((await a.localStatus('q-1'))?.status, 'SYNCED');
  });

  it('local-only blobs are never sent, whatever syncs', async () => {
    const a = srv.manager('localonly');
    await a.put('lo-1', 'secret', { localOnly: true });
    assert.equal((await a.localStatus('lo-1'))?.status, 'LOCAL_ONLY');
    await a.sendMissing();
    await a.sync();
    await a.resume();
    await a.upload('lo-1');
    await a.refreshSyncStatusFromServer();
    assert.equal((await a.localStatus('lo-1'))?.status, 'LOCAL_ONLY');
    assert.ok(!srv.log.some((l) => l.includes('lo-1')), 'no request ever named the blob');
    assert.equal((await readAll(await a.get('lo-1'))).toString(), 'secret');
    await a.delete('lo-1');
    assert.equal(await a.localStatus('lo-1'), undefined);
    assert.ok(!srv.log.some((l) => l.includes('lo-1')));
  });

  it('device B: listed, PENDING_DOWNLOAD, fetched and verified → SYNCED, with progress', async () => {
    const a = srv.manager('ab-a');
    const b = srv.manager('ab-b');
    const data = randomBytes(300_000);
    await a.put('ab-1', data, { namespace: 'shared' });
    await a.put('ab-2', 'small', { namespace: 'shared' });
    assert.deepEqual((await b.remoteList({ namespace: 'shared' })).sort(), ['ab-1', 'ab-2']);
    await b.refreshSyncStatusFromServer({ namespace: 'shared' });
    assert.deepEqual((await b.localListStatus('PENDING_DOWNLOAD', { namespace: 'shared' })).sort(), ['ab-1', 'ab-2']);
    assert.deepEqual(await b.localList({ namespace: 'shared' }), []);
    const progress: TransferProgress[] = [];
    b.on('progress', (p) => progress.push(p));
    const summary = await b.fetchMissing({ namespace: 'shared' });
    assert.deepEqual(summary.succeeded.sort(), ['ab-1', 'ab-2']);
    assert.deepEqual(summary.failed, []);
    assert.deepEqual((await b.localListStatus('SYNCED', { namespace: 'shared' })).sort(), ['ab-1', 'ab-2']);
    assert.deepEqual(await readAll(await b.get('ab-1', { namespace: 'shared' })), data);
    const big = progress.filter((p) => p.blobId === 'ab-1');
    assert.equal(big[0]!.bytesDone, 0);
    assert.equal(big.at(-1)!.bytesDone, data.length + 753);
    assert.equal(big.at(-1)!.bytesTotal, data.length + 753);
    assert.ok(big.length > 2, 'progress reported while bytes arrive');
    // get() on a third device downloads on demand.
    const c = srv.manager('ab-c');
    assert.equal((await readAll(await c.get('ab-2', { namespace: 'shared' }))).toString(), 'small');
    assert.equal((await c.localStatus('ab-2', { namespace: 'shared' }))?.status, 'SYNCED');
  });

  it('upload progress reaches the ciphertext size', async () => {
    const a = srv.manager('upprog');
    const seen: TransferProgress[] = [];
    a.on('progress', (p) => seen.push(p));
    await a.put('up-p', randomBytes(200_000));
    assert.equal(seen[0]!.bytesDone, 0);
    assert.equal(seen.at(-1)!.bytesDone, 200_753);
    assert.equal(seen.at(-1)!.bytesTotal, 200_753);
  });

  it('BlobAlreadyExistsError locally and on the server; BlobNotFoundError for missing blobs', async () => {
    const a = srv.manager('dup-a');
    const b = srv.manager('dup-b');
    await a.put('dup-1', 'first');
    await assert.rejects(a.put('dup-1', 'again'), named('BlobAlreadyExistsError'));
    await assert.rejects(b.put('dup-1', 'other content'), named('BlobAlreadyExistsError'));
    assert.equal(await b.localStatus('dup-1'), undefined, 'the refused put leaves nothing behind');
    assert.equal((await readAll(await b.get('dup-1'))).toString(), 'first');
    await assert.rejects(a.get('never-was'), named('BlobNotFoundError'));
    assert.equal(await a.localStatus('never-was'), undefined);
    await assert.rejects(a.delete('never-was'), named('BlobNotFoundError'));
    await assert.rejects(a.getFlags('never-was'), named('BlobNotFoundError'));
  });

  it('flags, listing qualifiers and count', async () => {
    const a = srv.manager('flags');
    for (const id of ['f-1', 'f-2', 'f-3']) {
      await a.put(id, id, { namespace: 'fl' });
      await sleep(15);
    }
    assert.deepEqual(await a.getFlags('f-1', { namespace: 'fl' }), []);
    await a.setFlags('f-1', ['PENDING'], { namespace: 'fl' });
    await a.setFlags('f-3', ['PENDING', 'FAILED'], { namespace: 'fl' });
    assert.deepEqual(await a.getFlags('f-3', { namespace: 'fl' }), ['PENDING', 'FAILED']);
    await assert.rejects(a.setFlags('f-1', ['BOGUS' as 'PENDING'], { namespace: 'fl' }), named('InvalidFlagsError'));
    await assert.rejects(a.setFlags('nope', ['PENDING'], { namespace: 'fl' }), named('BlobNotFoundError'));
    assert.deepEqual(await a.remoteList({ namespace: 'fl', orderBy: 'asc' }), ['f-1', 'f-2', 'f-3']);
    assert.deepEqual(await a.remoteList({ namespace: 'fl', orderBy: 'desc' }), ['f-3', 'f-2', 'f-1']);
    assert.deepEqual(await a.remoteList({ namespace: 'fl', orderBy: 'asc', filterFlag: 'PENDING' }), ['f-1', 'f-3']);
    assert.deepEqual(await a.remoteList({ namespace: 'fl', onlyCount: true }), { count: 3 });
    await a.delete('f-2', { namespace: 'fl' });
    assert.deepEqual(await a.remoteList({ namespace: 'fl', deleted: true }), ['f-2']);
    assert.equal(await a.count({ namespace: 'fl' }), 3, 'live blobs plus the deletion marker');
    const q = await a.quota();
    assert.ok(q.used > 0 && q.limit === 200 * 1024 * 1024);
  });

  it('delete: gone here and there; another device applies it on sync', async () => {
    const a = srv.manager('del-a');
    const b = srv.manager('del-b');
    await a.put('d-1', 'bye', { namespace: 'del' });
    await b.sync({ namespace: 'del' });
    assert.deepEqual(await b.localList({ namespace: 'del' }), ['d-1']);
    await a.delete('d-1', { namespace: 'del' });
    assert.equal(await a.localStatus('d-1', { namespace: 'del' }), undefined);
    await assert.rejects(srv.store.open({ user: UUID, namespace: 'del', blobId: 'd-1' }), named('BlobNotFoundError'));
    const summary = await b.sync({ namespace: 'del' });
    assert.deepEqual(summary.deletedLocally, ['d-1']);
    assert.deepEqual(await b.localList({ namespace: 'del' }), []);
  });

  it('delete while the server is down: PENDING_DELETE, finished by the next sync', async () => {
    const a = srv.manager('del-offline', { maxTransferAttempts: 2 });
    await a.put('do-1', 'x');
    srv.setFaults((r) => (r.method === 'DELETE' ? 'status-503' : undefined));
    await assert.rejects(a.delete('do-1'), named('MaximumRetriesError'));
    assert.equal((await a.localStatus('do-1'))?.status, 'PENDING_DELETE');
    assert.equal((await a.localStatus('do-1'))?.hasContent, false);
    srv.setFaults(undefined);
    await a.sync();
    assert.equal(await a.localStatus('do-1'), undefined);
    assert.ok((await a.remoteList({ deleted: true })).includes('do-1'));
  });

  it('retries with the injected schedule against a server failing N times', async () => {
    const waits: number[] = [];
    const a = srv.manager('retry', {
      retrySchedule: SEED_RETRY_SCHEDULE,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    let failures = 0;
    srv.setFaults((r) => (r.method === 'PUT' && r.url.includes('r-1') && failures++ < 3 ? 'status-500' : undefined));
    await a.put('r-1', 'persistent');
    assert.equal(failures, 4, 'three failures, then the attempt that worked');
    assert.deepEqual(waits, [10_000, 20_000, 30_000], 'the seed schedule: 10 s, 20 s, 30 s …');
    assert.equal((await a.localStatus('r-1'))?.status, 'SYNCED');
    // Connection resets and 503s are retried too, downloads as well as uploads.
    const b = srv.manager('retry-b', { retrySchedule: () => 0 });
    let resets = 0;
    srv.setFaults((r) => (r.method === 'GET' && r.url.includes('r-1') && resets++ < 2 ? (resets === 1 ? 'reset' : 'status-503') : undefined));
    assert.equal((await readAll(await b.get('r-1'))).toString(), 'persistent');
    assert.equal(resets, 3);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(SEED_RETRY_SCHEDULE), [10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 60_000, 60_000]);
  });

  it('gives up after maxTransferAttempts with MaximumRetriesError; the blob stays pending for later', async () => {
    const a = srv.manager('giveup', { maxTransferAttempts: 3 });
    let attempts = 0;
    srv.setFaults((r) => (r.method === 'PUT' && r.url.includes('g-1') ? (attempts++, 'status-500') : undefined));
    await assert.rejects(a.put('g-1', 'data'), named('MaximumRetriesError'));
    assert.equal(attempts, 3);
    assert.equal((await a.localStatus('g-1'))?.status, 'PENDING_UPLOAD');
    srv.setFaults(undefined);
    assert.deepEqual((await a.sendMissing()).succeeded, ['g-1']);
    assert.equal((await a.localStatus('g-1'))?.status, 'SYNCED');
  });

  it('quota exceeded is not retried: QuotaExceededError, blob kept pending', async () => {
    const small = await startBlobServer({ quotaBytes: 2000 });
    try {
      const a = small.manager('quota');
      await a.put('q-ok', randomBytes(1000));
      let puts = 0;
      small.setFaults((r) => {
        if (r.method === 'PUT') puts++;
        return undefined;
      });
      await assert.rejects(a.put('q-big', randomBytes(1000)), named('QuotaExceededError'));
      assert.equal(puts, 1);
      assert.equal((await a.localStatus('q-big'))?.status, 'PENDING_UPLOAD');
    } finally {
      await small.close();
    }
  });

  it('a blob failing its tag 3 times → FAILED_DOWNLOAD, never stored', async () => {
    const a = srv.manager('tag-a');
    const data = randomBytes(5000);
    await a.put('t-1', data);
    const path = serverPath(srv, 't-1');
    const bytes = await readFile(path);
    bytes[800] ^= 0x01; // one ciphertext bit
    await writeFile(path, bytes);
    const b = srv.manager('tag-b');
    let gets = 0;
    srv.setFaults((r) => {
      if (r.method === 'GET' && r.url.includes('t-1')) gets++;
      return undefined;
    });
    await assert.rejects(b.get('t-1'), (err: unknown) => named('MaximumRetriesError')(err) && named('MacMismatchError')((err as Error).cause));
    assert.equal(gets, 3, 'maxDecryptRetries attempts');
    const entry = await b.localStatus('t-1');
    assert.equal(entry?.status, 'FAILED_DOWNLOAD');
    assert.equal(entry?.hasContent, false);
    assert.equal(entry?.retries, 3);
    assert.deepEqual(await b.localList(), []);
    assert.deepEqual(await b.localListStatus('FAILED_DOWNLOAD'), ['t-1']);
    // A later sync does not silently retry it.
    await b.refreshSyncStatusFromServer();
    assert.deepEqual(await b.localListStatus('FAILED_DOWNLOAD'), ['t-1']);
    // Restore the file: an explicit get tries again and succeeds.
    bytes[800] ^= 0x01;
    await writeFile(path, bytes);
    assert.deepEqual(await readAll(await b.get('t-1')), data);
    assert.equal((await b.localStatus('t-1'))?.status, 'SYNCED');
  });

  it('a blob swapped by the server (another id\'s ciphertext) is refused like a bad tag', async () => {
    const a = srv.manager('swap-a', { maxDecryptRetries: 1 });
    await a.put('s-real', 'mine');
    await a.put('s-other', 'other');
    await writeFile(serverPath(srv, 's-real'), await readFile(serverPath(srv, 's-other')));
    const b = srv.manager('swap-b', { maxDecryptRetries: 1 });
    await assert.rejects(b.get('s-real'), (err: unknown) => named('MaximumRetriesError')(err) && named('TamperedDocumentError')((err as Error).cause));
    assert.equal((await b.localStatus('s-real'))?.status, 'FAILED_DOWNLOAD');
  });

  it('an externally encrypted (incoming) blob: rejected by default, passed through on request', async () => {
    const payload = Buffer.from('-----BEGIN PGP MESSAGE-----\nxyz\n');
    const preamble = encodePreamble({ docId: 'mx-1', rev: '0', scheme: EncScheme.external, method: EncMethod.pgp, contentSize: payload.length });
    const body = Buffer.concat([Buffer.from(preamble.toString('base64').replace(/\+/g, '-').replace(/\//g, '_') + ' '), payload]);
    await srv.store.put({ user: UUID, namespace: 'MX', blobId: 'mx-1' }, Readable.from([body]), { flags: ['PENDING'] });
    const b = srv.manager('mx', { maxDecryptRetries: 1 });
    await assert.rejects(b.get('mx-1', { namespace: 'MX' }));
    const c = srv.manager('mx-pass');
    assert.deepEqual(await readAll(await c.get('mx-1', { namespace: 'MX', external: 'passthrough' })), payload);
  });

  it('at most 3 transfers at once; a restart mid-queue resumes from the persisted statuses', async () => {
    const ids = Array.from({ length: 7 }, (_, i) => `rs-${i}`);
    const a1 = srv.manager('restart');
    for (const id of ids) await a1.put(id, randomBytes(2000), { upload: 'later' });
    const held: Array<() => void> = [];
    srv.setFaults((r) => (r.method === 'PUT' && r.url.includes('/rs-')
      ? new Promise<void>((resolve) => held.push(resolve))
      : undefined));
    const sending = a1.sendMissing();
    while (held.length < 3) await sleep(2);
    await sleep(100);
    assert.equal(held.length, 3, 'a fourth transfer never started while three were running');
    // The device goes away with three uploads in flight and four queued.
    await a1.close();
    const first = await sending;
    assert.equal(first.succeeded.length, 0);
    assert.equal(first.failed.length, 7);
    srv.setFaults(undefined);
    for (const r of held) r();
    const a2 = srv.manager('restart');
    assert.deepEqual((await a2.localListStatus('PENDING_UPLOAD')).sort(), [...ids].sort(), 'statuses persisted');
    const resumed = await a2.resume();
    assert.deepEqual(resumed.uploaded.failed, []);
    assert.deepEqual(resumed.uploaded.succeeded.sort(), [...ids].sort());
    assert.deepEqual(await a2.localListStatus('PENDING_UPLOAD'), []);
    assert.deepEqual((await a2.localListStatus('SYNCED')).sort(), [...ids].sort());
    const remote = await a2.remoteList();
    for (const id of ids) assert.ok(remote.includes(id), id);
  });

  it('a restart mid-download resumes too, and half-received content never shows', async () => {
    const a = srv.manager('rdl-a');
    await a.put('rdl-1', randomBytes(600_000));
    const b1 = srv.manager('rdl-b', { chunkSize: 65_536 });
    await b1.refreshSyncStatusFromServer();
    assert.ok((await b1.localListStatus('PENDING_DOWNLOAD')).includes('rdl-1'));
    let got = 0;
    b1.on('progress', (p) => {
      if (p.blobId === 'rdl-1') got = p.bytesDone;
    });
    const fetching = b1.download('rdl-1');
    while (got < 100_000) await sleep(1);
    await b1.close();
    await assert.rejects(fetching);
    const b2 = srv.manager('rdl-b');
    assert.equal((await b2.localStatus('rdl-1'))?.status, 'PENDING_DOWNLOAD');
    assert.equal((await b2.localStatus('rdl-1'))?.hasContent, false);
    const resumed = await b2.resume();
    assert.ok(resumed.downloaded.succeeded.includes('rdl-1'));
    assert.equal((await b2.localStatus('rdl-1'))?.status, 'SYNCED');
  });
  it('/stream/ transport: batches up and down, per-blob verification, fallback to single requests', async () => {
    const a = srv.manager('st-a', { streamBatchBlobs: 8 });
    const blobs = new Map(Array.from({ length: 30 }, (_, i) => [`st-${i}`, randomBytes(1000 + i * 37)] as const));
    for (const [id, data] of blobs) await a.put(id, data, { namespace: 'st', upload: 'later' });
    // One of them already reached the server (as after a lost answer): its batch falls back to single requests.
    await a.upload('st-5', { namespace: 'st' });
    const side = LocalBlobStore.open(join(srv.dir, 'st-a', `${UUID}_blobs.db`), srv.secrets.localKey);
    side.setStatus('st', 'st-5', 'PENDING_UPLOAD');
    side.close();
    const before = srv.log.length;
    const up = await a.sendMissing({ namespace: 'st', transport: 'stream' });
    assert.deepEqual(up.failed, []);
    assert.equal(up.succeeded.length, 30);
    const requests = srv.log.slice(before);
    assert.equal(requests.filter((r) => r.startsWith('POST /stream/')).length, 4, requests.join('\n'));
    assert.equal(requests.filter((r) => r.startsWith('PUT ')).length, 8, 'only the batch of 8 holding st-5 went one by one');
    assert.deepEqual(await a.localListStatus('PENDING_UPLOAD', { namespace: 'st' }), []);
    // Corrupt one blob on the server; the others of its batch still arrive.
    const path = serverPath(srv, 'st-9', 'st');
    const bytes = await readFile(path);
    bytes[900] ^= 0xff;
    await writeFile(path, bytes);
    const b = srv.manager('st-b', { streamBatchBlobs: 8 });
    await b.refreshSyncStatusFromServer({ namespace: 'st' });
    const mark = srv.log.length;
    const down = await b.fetchMissing({ namespace: 'st', transport: 'stream' });
    assert.equal(srv.log.slice(mark).filter((r) => r.startsWith('POST /stream/')).length, 4);
    assert.equal(srv.log.slice(mark).filter((r) => r.startsWith('GET ')).length, 0);
    assert.equal(down.succeeded.length, 29);
    assert.deepEqual(down.failed.map((f) => f.blobId), ['st-9']);
    for (const [id, data] of blobs) {
      if (id !== 'st-9') assert.deepEqual(await readAll(await b.get(id, { namespace: 'st' })), data, id);
    }
    assert.equal((await b.localStatus('st-9', { namespace: 'st' }))?.status, 'PENDING_DOWNLOAD');
    await b.fetchMissing({ namespace: 'st', transport: 'stream' });
    const third = await b.fetchMissing({ namespace: 'st', transport: 'stream' });
    assert.ok(named('MaximumRetriesError')(third.failed[0]?.error));
    assert.equal((await b.localStatus('st-9', { namespace: 'st' }))?.status, 'FAILED_DOWNLOAD');
    assert.equal((await b.localStatus('st-9', { namespace: 'st' }))?.hasContent, false);
  });
});
