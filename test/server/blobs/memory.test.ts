/**
 * Blobs go up and come back down through a server in its own process, whose resident memory is sampled
 * throughout. Streaming keeps the growth bounded by garbage-collector slack, independent of the blob's size:
 * 25 MB stays under the target (2 × blob) and 100 MB under half its size, which no implementation that
 * holds a body in memory could do.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';

const here = dirname(fileURLToPath(import.meta.url));
const MB = 1024 * 1024;
const CHUNK = 64 * 1024;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

async function* generated(size: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  let seed = 12345;
  for (let done = 0; done < size; done += CHUNK) {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK, size - done));
    for (let i = 0; i + 4 <= chunk.length; i += 4) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      chunk.writeUInt32LE(seed, i);
    }
    hash.update(chunk);
    yield chunk;
  }
}

describe('server memory while streaming big blobs', () => {
  let root: string;
  let child: ChildProcess;
  let base: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'soledad-blobmem-'));
    child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'blob-server.ts'), root], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        const m = /PORT (\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`server exited (${code})`)));
    });
    base = `http://127.0.0.1:${port}`;
    // Warm up the routes so that code loading is not counted.
    await (await request(`${base}/blobs/u/warm`, { method: 'PUT', body: 'warm' })).body.dump();
    await (await request(`${base}/blobs/u/warm`)).body.dump();
    await new Promise((r) => setTimeout(r, 200));
  });

  after(async () => {
    child.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });

  async function roundTrip(id: string, size: number): Promise<number> {
    const baseline = rssOf(child.pid!);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(child.pid!));
    }, 5);
    try {
      const upHash = createHash('sha256');
      const put = await request(`${base}/blobs/u/${id}`, {
        method: 'PUT',
        body: Readable.from(generated(size, upHash)),
        headers: { 'content-length': String(size) },
      });
      assert.equal(put.statusCode, 200);
      await put.body.dump();
      const get = await request(`${base}/blobs/u/${id}`);
      assert.equal(get.statusCode, 200);
      assert.equal(get.headers['content-length'], String(size));
      const downHash = createHash('sha256');
      for await (const c of get.body) downHash.update(c as Buffer);
      assert.equal(downHash.digest('hex'), upHash.digest('hex'));
    } finally {
      clearInterval(sampler);
    }
    const growth = Math.max(peak, rssOf(child.pid!)) - baseline;
    process.stdout.write(`# server RSS growth for ${size / MB} MB up+down: ${(growth / MB).toFixed(1)} MiB\n`);
    return growth;
  }

  it('25 MB: server RSS growth below 2 × blob size', async () => {
    const growth = await roundTrip('b25', 25 * MB);
    assert.ok(growth < 2 * 25 * MB, `grew by ${growth}`);
  });

  it('100 MB: server RSS growth below half the blob size (the body is never held)', async () => {
    const growth = await roundTrip('b100', 100 * MB);
    assert.ok(growth < 50 * MB, `grew by ${growth}`);
  });
});
