/**
 * A 200 MB upload and its download go through a real listener without the server's memory growing by the body
 * size: bodies are parsed and applied as they stream. The server runs in a child process so that its peak
 * resident memory (Linux VmHWM) can be measured alone.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import {
  CONTENT_TYPE_SYNC_GET,
  CONTENT_TYPE_SYNC_PUT,
  encodeSyncGetRequest,
  encodeSyncPut,
  parseSyncPutResponse,
  SyncGetResponseParser,
  type SyncPutEntry,
} from '../../src/common/protocol/sync-stream.js';

const UUID = 'b16b0d1e5000000000000000000000aa';
const DOCS = 100;
const CONTENT_CHARS = 1024 * 1024; // each doc is sent twice: ~2 MiB per doc, ~200 MiB in all
const MiB = 1024 * 1024;

async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

function* lazyEntries(): Generator<SyncPutEntry> {
  for (let i = 1; i <= DOCS; i++) {
    const fill = String.fromCharCode(65 + (i % 26));
    yield {
      id: `D-${i}`, rev: 'dev:1', content: `{"raw": "${fill.repeat(CONTENT_CHARS)}"}`, gen: i, trans_id: `T-${i}`,
      number_of_docs: DOCS, doc_idx: i,
    };
  }
}

describe('large sync bodies are streamed', { skip: process.platform !== 'linux' && 'needs /proc', timeout: 240_000 }, () => {
  let child: ChildProcess;
  let dataDir: string;
  let base: string;
  let authorization: string;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'soledad-large-'));
    const fixture = fileURLToPath(new URL('./fixtures/sync-server.ts', import.meta.url));
    // node itself (not the tsx wrapper) so that the pid measured is the server's. A small old space makes V8
    // collect garbage promptly, and would crash a server that kept the body in JS memory.
    child = spawn(process.execPath, ['--max-old-space-size=48', '--import', import.meta.resolve('tsx'), fixture, dataDir, UUID], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /READY .*\n/.exec(buf);
        if (m) resolve(m[0].trim());
      });
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
      setTimeout(() => reject(new Error('server did not start within 60 s')), 60_000).unref();
    });
    const [, port, token] = line.split(' ');
    base = `http://127.0.0.1:${port}`;
    authorization = encodeTokenAuthorization(UUID, token!);
  });

  after(async () => {
    child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('uploads ~200 MB and downloads it back with bounded server memory', async (t) => {
    const url = `${base}/user-${UUID}/sync-from/device1`;
    // Warm up: first request loads the code paths and the database.
    const warm = await request(url, { method: 'POST', headers: { authorization, 'content-type': CONTENT_TYPE_SYNC_GET },
      body: encodeSyncGetRequest({ last_known_generation: 0, last_known_trans_id: '', sync_id: 'warm', ensure: true }) });
    assert.equal(warm.statusCode, 200);
    await warm.body.text();
    const start = await memoryOf(child.pid!);

    let sent = 0;
    const body = Readable.from((function* () {
      for (const piece of encodeSyncPut({ last_known_generation: 0, last_known_trans_id: '', sync_id: 'big', ensure: false }, lazyEntries())) {
        sent += Buffer.byteLength(piece);
        yield piece;
      }
    })());
    const res = await request(url, { method: 'POST', headers: { authorization, 'content-type': CONTENT_TYPE_SYNC_PUT }, body });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    assert.ok(sent >= 200 * MiB, `sent ${sent} bytes`);
    assert.equal(parseSyncPutResponse(text).new_generation, DOCS);
    const afterUpload = await memoryOf(child.pid!);
    const growth = afterUpload.peak - start.rss;
    t.diagnostic(`body ${Math.round(sent / MiB)} MiB; server RSS ${Math.round(start.rss / MiB)} MiB before, peak ${Math.round(afterUpload.peak / MiB)} MiB after the upload`);
    assert.ok(growth < 150 * MiB, `server peak memory grew by ${Math.round(growth / MiB)} MiB for a ${Math.round(sent / MiB)} MiB body`);

    // Download everything back (another sync id, so nothing is filtered) and check it streams too.
    const down = await request(url, { method: 'POST', headers: { authorization, 'content-type': CONTENT_TYPE_SYNC_GET },
      body: encodeSyncGetRequest({ last_known_generation: 0, last_known_trans_id: '', sync_id: 'down', ensure: false }) });
    assert.equal(down.statusCode, 200);
    const parser = new SyncGetResponseParser();
    let docs = 0;
    let received = 0;
    const count = (items: ReturnType<SyncGetResponseParser['push']>) => {
      for (const item of items) {
        if (item.type !== 'doc') continue;
        docs += 1;
        assert.equal(item.entry.content?.length, CONTENT_CHARS + 11);
      }
    };
    for await (const chunk of down.body) {
      received += chunk.length;
      count(parser.push(chunk));
    }
    count(parser.end());
    assert.equal(docs, DOCS);
    assert.ok(received >= 100 * MiB);
    const afterDownload = await memoryOf(child.pid!);
    const downGrowth = afterDownload.peak - start.rss;
    t.diagnostic(`peak ${Math.round(afterDownload.peak / MiB)} MiB after downloading ${Math.round(received / MiB)} MiB`);
    assert.ok(downGrowth < 150 * MiB, `server peak memory grew by ${Math.round(downGrowth / MiB)} MiB after the download`);
  });
});
