/**
 * End to end against a real `soledad-server` process (the CLI an operator runs, TLS, token minted with
 * `soledad-server token add`): a blob put on device A is listed and fetched on device B; the server is killed
 * with SIGKILL in the middle of an upload and a download, and after its restart the devices resume and finish.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobManager } from '../../../src/client/blobs/blob-manager.js';
import { HttpClient } from '../../../src/client/http/client.js';
import { startServerProcess } from '../../e2e/server-process.js';
import type { ServerProcess } from '../../e2e/server-process.js';
import { readAll } from './fixture.js';

describe('blobs e2e with a real server process', () => {
  let server: ServerProcess;
  let work: string;
  let uuid: string;
  let token: string;
  const localKey = randomBytes(32);
  const remoteSecret = randomBytes(512);
  const opened: Array<{ m: BlobManager; h: HttpClient }> = [];

  function device(name: string): BlobManager {
    const h = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid, token, retryDelaysMs: [] });
    const m = BlobManager.open({
      uuid, localPath: join(work, name, `${uuid}_blobs.db`), localKey, remoteSecret, http: h,
      retrySchedule: () => 100, maxTransferAttempts: 200,
    });
    opened.push({ m, h });
    return m;
  }

  before(async () => {
    server = await startServerProcess();
    work = await mkdtemp(join(tmpdir(), 'soledad-blobs-e2e-'));
    uuid = randomUUID().replace(/-/g, '');
    token = await server.token(uuid);
  });
  after(async () => {
    for (const { m, h } of opened) {
      await m.close();
      await h.destroy();
    }
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('a blob put on device A is listed and fetched on device B', async () => {
    const a = device('a');
    const b = device('b');
    const data = randomBytes(1_000_000);
    await a.put('e2e-1', data);
    assert.ok((await b.remoteList()).includes('e2e-1'));
    const summary = await b.sync();
    assert.deepEqual(summary.downloaded.succeeded, ['e2e-1']);
    assert.deepEqual(await readAll(await b.get('e2e-1')), data);
    const q = await b.quota();
    assert.ok(q.used >= data.length + 753);
    // The file on the server is ciphertext in the original layout.
    const dir = join(server.dataDir, 'blobs', uuid, 'default', 'e', 'e2e', 'e2e-1');
    assert.deepEqual(await readdir(dir), ['e2e-1']);
  });

  it('server SIGKILLed mid-upload and mid-download: no half blob anywhere, both resume after restart', async () => {
    const a = device('crash-a');
    const size = 40 * 1024 * 1024;
    const data = randomBytes(size);
    const digest = createHash('sha256').update(data).digest('hex');
    let sent = 0;
    a.on('progress', (p) => {
      if (p.blobId === 'crash-up' && p.direction === 'upload') sent = p.bytesDone;
    });
    const uploading = a.put('crash-up', data);
    while (sent < size / 4) await sleep(2);
    await server.kill();
    // Nothing visible on the server side while it is down and the client retries.
    await sleep(300);
    await server.start();
    await uploading;
    assert.equal((await a.localStatus('crash-up'))?.status, 'SYNCED');

    const b = device('crash-b');
    await b.refreshSyncStatusFromServer();
    let got = 0;
    b.on('progress', (p) => {
      if (p.blobId === 'crash-up' && p.direction === 'download') got = p.bytesDone;
    });
    const downloading = b.fetchMissing();
    while (got < size / 4) await sleep(2);
    await server.kill();
    assert.equal((await b.localStatus('crash-up'))?.hasContent, false, 'a cut download is never stored');
    await server.start();
    const summary = await downloading;
    assert.deepEqual(summary.failed, []);
    const back = createHash('sha256').update(await readAll(await b.get('crash-up'))).digest('hex');
    assert.equal(back, digest);
  });
});
