/**
 * A 25 MB blob put on device A (streamed from a generator: encrypted, stored, uploaded) and fetched on device B
 * (downloaded, verified, stored, read back), with this process's resident memory sampled throughout. The server
 * runs in its own process so that only the client is measured. Target (issue 5): growth < 2 × blob size.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BlobManager } from '../../../src/client/blobs/blob-manager.js';
import { HttpClient } from '../../../src/client/http/client.js';

const here = dirname(fileURLToPath(import.meta.url));
const MB = 1024 * 1024;
const SIZE = 25 * MB;
const UUID = 'memtest';

async function* generated(size: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  let seed = 99;
  for (let done = 0; done < size; done += 65536) {
    const chunk = Buffer.allocUnsafe(Math.min(65536, size - done));
    for (let i = 0; i + 4 <= chunk.length; i += 4) {
      seed = (seed * 1664525 + 1013904223) >>> 0;
      chunk.writeUInt32LE(seed, i);
    }
    hash.update(chunk);
    yield chunk;
  }
}

describe('client memory for a 25 MB blob', () => {
  it('put on A, get on B: RSS growth below 2 × blob size, content intact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soledad-clientmem-'));
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, '../../server/blobs/fixtures/blob-server.ts'), join(dir, 'server')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const clients: HttpClient[] = [];
    const managers: BlobManager[] = [];
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          const m = /PORT (\d+)/.exec(d.toString());
          if (m) resolve(Number(m[1]));
        });
        child.on('exit', (code) => reject(new Error(`server exited (${code})`)));
      });
      const localKey = randomBytes(32);
      const remoteSecret = randomBytes(512);
      const open = (name: string): BlobManager => {
        const http = new HttpClient({ serverUrl: `http://127.0.0.1:${port}/`, uuid: UUID, token: 't', retryDelaysMs: [] });
        clients.push(http);
        const m = BlobManager.open({ uuid: UUID, localPath: join(dir, name, `${UUID}_blobs.db`), localKey, remoteSecret, http });
        managers.push(m);
        return m;
      };
      const a = open('a');
      const b = open('b');
      // Warm up every code path on a small blob first. The baseline is the highest RSS seen while doing so: the
      // RSS right after it varied by 30 MB between runs (as the allocator happened to hand pages back or not),
      // which is noise, not memory the big blob needs.
      let warmPeak = process.memoryUsage.rss();
      const warmSampler = setInterval(() => { warmPeak = Math.max(warmPeak, process.memoryUsage.rss()); }, 5);
      try {
        await a.put('warm', randomBytes(300_000));
        for await (const c of await b.get('warm')) void c;
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        clearInterval(warmSampler);
      }

      const baseline = Math.max(warmPeak, process.memoryUsage.rss());
      let peak = baseline;
      let atPeak = process.memoryUsage();
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        if (m.rss > peak) {
          peak = m.rss;
          atPeak = m;
        }
      }, 5);
      const upHash = createHash('sha256');
      const downHash = createHash('sha256');
      const started = Date.now();
      try {
        await a.put('big', generated(SIZE, upHash));
        const stream = await b.get('big');
        for await (const c of stream) downHash.update(c as Buffer);
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, process.memoryUsage.rss());
      const seconds = (Date.now() - started) / 1000;
      const growth = peak - baseline;
      if (process.env.BLOBMEM_DEBUG) console.log(atPeak);
      process.stdout.write(`# client RSS growth for 25 MB put+get: ${(growth / MB).toFixed(1)} MiB, ${(2 * 25 / seconds).toFixed(1)} MB/s\n`);
      assert.equal(downHash.digest('hex'), upHash.digest('hex'));
      assert.equal((await b.localStatus('big'))?.status, 'SYNCED');
      assert.ok(growth < 2 * SIZE, `RSS grew by ${growth} bytes`);
    } finally {
      for (const m of managers) await m.close();
      for (const c of clients) await c.destroy();
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
