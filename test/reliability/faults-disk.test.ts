/**
 * A full disk on the server, made real without root: the server process runs under a soft file-size limit
 * (`RLIMIT_FSIZE`), so the kernel refuses every write past it (EFBIG) exactly where a full disk would refuse one
 * (ENOSPC): in the blob writer, in the incoming box, and in the SQLite user database and its WAL. Each refusal
 * must be a clear error with a body (507 `insufficient storage`, or 503 for an SQLite I/O error, which clients
 * retry), leave no partial blob or document visible, and the service must recover as soon as space returns.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InsufficientStorageError, SoledadError, UnavailableError } from '../../src/common/errors.js';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { snapshot } from '../client/sync/harness.js';
import { readAll } from '../client/blobs/fixture.js';
import { Counter, listFiles, removeDir, serverIntegrity, tempDir } from './common.js';
import { account, blobDevice, docDevice } from './devices.js';
import { agentFor, hasErrorBody, send } from './http.js';
import { startServer, type Server } from './server.js';

const LIMIT_KB = 1024;
let server: Server;
let dir: string;
const counter = new Counter('faults', 'disk full on the server');
const notes: string[] = [];

before(async () => {
  server = await startServer({ fileSizeLimitKb: LIMIT_KB });
  dir = tempDir('disk');
});

after(async () => {
  counter.record(notes);
  await server.stop();
  removeDir(dir);
});

async function fill(): Promise<void> {
  if (!server.alive()) throw new Error('server down');
  await server.setFileSizeLimit(LIMIT_KB);
}

async function space(): Promise<string> {
  return server.setFileSizeLimit(null);
}

describe('disk full on the server', () => {
  it('blob upload: 507 with an error body, no partial blob, quota unchanged; the upload succeeds once space returns', async () => {
    await fill();
    const acc = await account((u) => server.mint(u));
    const a = blobDevice('disk-a', dir, server.url, server.certFile, acc);
    const b = blobDevice('disk-b', dir, server.url, server.certFile, acc);
    try {
      await a.blobs.put('small', randomBytes(50_000));
      const quotaBefore = await a.blobs.quota();
      const big = randomBytes(3 * 1024 * 1024);
      await assert.rejects(a.blobs.put('big', big), (err: unknown) => {
        assert.ok(err instanceof InsufficientStorageError, `507 insufficient storage, got ${String(err)}`);
        return true;
      });
      // The raw answer too: a 507 with a JSON error body.
      const raw = await send(agentFor(server.certFile), server.url, {
        method: 'PUT', path: `/blobs/${acc.uuid}/raw-big`, body: randomBytes(2 * 1024 * 1024),
        headers: { authorization: encodeTokenAuthorization(acc.uuid, acc.token), 'content-type': 'application/octet-stream' },
      });
      assert.equal(raw.status, 507, raw.body);
      assert.ok(hasErrorBody(raw), raw.body);
      // The same through /stream/ (several blobs in one request).
      await a.blobs.put('streamed-big', randomBytes(2 * 1024 * 1024), { upload: 'later' });
      const streamed = await a.blobs.sendMissing({ transport: 'stream' });
      assert.ok(streamed.failed.length > 0 && streamed.failed.every((f) => f.error instanceof InsufficientStorageError),
        `/stream/ upload: ${streamed.failed.map((f) => `${f.blobId} ${f.error.name}`).join(', ')}`);
      assert.deepEqual((await a.blobs.remoteList()).sort(), ['small'], 'nothing of the refused blobs is listed');
      assert.deepEqual(await a.blobs.quota(), quotaBefore, 'no quota was used by the refused blobs');
      const leftovers = listFiles(join(server.dataDir, 'blobs', acc.uuid)).filter((f) => !/\/(small|small\.flags)$/.test(f));
      assert.deepEqual(leftovers, [], 'no temporary or partial file is left');
      assert.equal((await a.blobs.localStatus('big'))?.status, 'PENDING_UPLOAD', 'the blob waits on the device');

      notes.push(`blob upload past the limit: 507 insufficient storage; space returned by ${await space()}`);
      await a.blobs.upload('big');
      assert.deepEqual((await a.blobs.sendMissing({ transport: 'stream' })).failed, []);
      await b.blobs.sync();
      assert.ok((await readAll(await b.blobs.get('big'))).equals(big));
      counter.add(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('incoming delivery: 507 with an error body, nothing stored; delivered once space returns', async () => {
    await fill();
    const acc = await account((u) => server.mint(u));
    const services = agentFor(undefined);
    const deliver = () => send(services, server.servicesUrl, {
      method: 'PUT', path: `/incoming/${acc.uuid}/mail1`, body: randomBytes(2 * 1024 * 1024),
      headers: { 'content-type': 'application/octet-stream', authorization: encodeTokenAuthorization('incoming', server.servicesToken) },
    });
    const listed = async (): Promise<string[]> => JSON.parse((await send(agentFor(server.certFile), server.url, {
      method: 'GET', path: `/blobs/${acc.uuid}/?namespace=MX`, headers: { authorization: encodeTokenAuthorization(acc.uuid, acc.token) },
    })).body) as string[];
    try {
      const refused = await deliver();
      assert.equal(refused.status, 507, refused.body);
      assert.ok(hasErrorBody(refused), refused.body);
      assert.deepEqual(await listed(), []);
      notes.push(`incoming delivery past the limit: 507; space returned by ${await space()}`);
      assert.equal((await deliver()).status, 200);
      assert.deepEqual(await listed(), ['mail1']);
      counter.add(true);
    } finally {
      await services.close();
    }
  });

  it('document sync (SQLite user database): a clear error, whole batches only, integrity kept; the sync completes once space returns', async () => {
    await fill();
    const acc = await account((u) => server.mint(u));
    const a = docDevice('disk-docs-a', dir, server.url, server.certFile, acc);
    const b = docDevice('disk-docs-b', dir, server.url, server.certFile, acc);
    try {
      for (let i = 0; i < 120; i++) a.db.createDoc({ i, pad: randomBytes(20_000).toString('base64') });
      let error: unknown;
      try {
        await a.sync.sync();
      } catch (err) {
        error = err;
      }
      assert.ok(error instanceof InsufficientStorageError || error instanceof UnavailableError,
        `507 or 503, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
      // The message comes from the server's error body (a 503 without one would read "Service unavailable").
      assert.match((error as SoledadError).message, /storage/i);
      const userDb = join(server.dataDir, 'users', `user-${acc.uuid}.db`);
      assert.equal(serverIntegrity(userDb), 'ok');
      // What the server holds is whole documents from whole batches, all authentic.
      await b.sync.sync();
      const theirs = snapshot(a.db);
      for (const [id, d] of snapshot(b.db)) assert.deepEqual(d, theirs.get(id), `${id} is not A's document`);
      const partial = b.db.getAllDocs().docs.length;
      assert.ok(partial < 120, `the disk filled before the end (${partial} stored)`);
      notes.push(`document upload past the limit: ${(error as Error).name} after ${partial} of 120 documents (whole batches); space returned by ${await space()}`);

      await a.sync.sync();
      await b.sync.sync();
      assert.deepEqual(snapshot(b.db), snapshot(a.db));
      assert.equal(serverIntegrity(userDb), 'ok');
      counter.add(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
