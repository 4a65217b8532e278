/**
 * Blob scenarios over real TLS on loopback against a real `soledad-server` process (issue 5):
 * one 25 MB blob up and down (MB/s, peak RSS growth of the client and the server's peak RSS), and 1000 × 10 KB blobs
 * via single requests and via `/stream/`, side by side in the same run.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobManager } from '../src/client/blobs/blob-manager.js';
import { HttpClient } from '../src/client/http/client.js';
import { startServerProcess } from '../test/e2e/server-process.js';
import type { ScenarioResult } from './report.js';
import { ProcWatch } from './util.js';

const MB = 1024 * 1024;

async function withRssPeak<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; rssGrowth: number }> {
  global.gc?.();
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const t0 = performance.now();
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, ms: performance.now() - t0, rssGrowth: peak - start };
  } finally {
    clearInterval(timer);
  }
}

async function* generated(size: number): AsyncGenerator<Buffer> {
  const block = randomBytes(64 * 1024);
  for (let done = 0; done < size; done += block.length) yield block.subarray(0, Math.min(block.length, size - done));
}

/**
 * Run the blob scenarios.
 *
 * @example
 * results.push(...(await runBlobScenarios(quick)));
 */
export async function runBlobScenarios(quick: boolean): Promise<ScenarioResult[]> {
  // 25 MB even in the smoke run: the memory target is about that size (fixed overheads dominate a small blob).
  const bigSize = 25 * MB;
  const smallCount = quick ? 100 : 1000;
  const smallSize = 10 * 1024;
  const results: ScenarioResult[] = [];
  const server = await startServerProcess();
  const work = mkdtempSync(join(tmpdir(), 'soledad-bench-blobs-'));
  const open: Array<{ m: BlobManager; h: HttpClient }> = [];
  try {
    const uuid = randomUUID().replace(/-/g, '');
    const token = await server.token(uuid);
    const localKey = randomBytes(32);
    const remoteSecret = randomBytes(512);
    const device = (name: string): BlobManager => {
      const h = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid, token });
      const m = BlobManager.open({ uuid, localPath: join(work, name, `${uuid}_blobs.db`), localKey, remoteSecret, http: h });
      open.push({ m, h });
      return m;
    };

    // One big blob; memory growth of both sides is held to less than twice its size.
    const watch = new ProcWatch(server.pid()!);
    const a = device('a');
    const b = device('b');
    const upSrv = await watch.during(() => withRssPeak(() => a.put('big', generated(bigSize))));
    const downSrv = await watch.during(() => withRssPeak(async () => {
      await b.download('big');
      for await (const chunk of await b.get('big')) void chunk;
    }));
    const mbs = (ms: number): string => (bigSize / MB / (ms / 1000)).toFixed(1);
    for (const [label, m] of [
      [`blob ${bigSize / MB} MB up (store + encrypt + upload)`, upSrv],
      [`blob ${bigSize / MB} MB down (download + verify + store + read)`, downSrv],
    ] as const) {
      const client = m.value.rssGrowth;
      const srv = m.rssPeak - m.rssStart;
      results.push({
        name: label,
        ours_ms: m.value.ms,
        extra: {
          'MB/s': mbs(m.value.ms),
          client_rss_growth_MB: (client / MB).toFixed(1),
          client_x_blob: (client / bigSize).toFixed(2),
          server_rss_growth_MB: (srv / MB).toFixed(1),
          server_x_blob: (srv / bigSize).toFixed(2),
          server_peak_rss_MB: (m.rssPeak / MB).toFixed(1),
          server_cpu_ms: m.cpuMs.toFixed(0),
        },
        checks: [
          { what: `${label}: client RSS growth < 2× blob size`, ok: client < 2 * bigSize },
          { what: `${label}: server RSS growth < 2× blob size`, ok: srv < 2 * bigSize },
        ],
      });
    }

    // Many small blobs, single requests vs /stream/, same data, same run.
    const timings: Record<string, { up: number; down: number }> = {};
    for (const transport of ['single', 'stream'] as const) {
      const namespace = `small_${transport}`;
      const src = device(`src-${transport}`);
      const dst = device(`dst-${transport}`);
      for (let i = 0; i < smallCount; i++) await src.put(`s${i}`, randomBytes(smallSize), { namespace, upload: 'later' });
      const t0 = performance.now();
      const sent = await src.sendMissing({ namespace, transport });
      const t1 = performance.now();
      await dst.refreshSyncStatusFromServer({ namespace });
      const got = await dst.fetchMissing({ namespace, transport });
      const t2 = performance.now();
      if (sent.failed.length > 0 || got.failed.length > 0) throw new Error(`${transport}: transfers failed`);
      timings[transport] = { up: t1 - t0, down: t2 - t1 };
    }
    const rate = (ms: number): string => (smallCount / (ms / 1000)).toFixed(0);
    for (const dir of ['up', 'down'] as const) {
      const single = timings.single![dir];
      const stream = timings.stream![dir];
      results.push({
        name: `${smallCount} × 10 KB blobs ${dir}, /stream/`,
        ours_ms: stream,
        baseline_name: 'single requests (3 at a time)',
        baseline_ms: single,
        extra: { 'blobs/s': rate(stream), 'baseline_blobs/s': rate(single) },
      });
    }
  } finally {
    for (const { m, h } of open) {
      await m.close();
      await h.destroy();
    }
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}
