/**
 * The seed's sync scenarios over real TLS on loopback against a real `soledad-server` process (embedded backend):
 * upload (device A, fresh server) and download (a new device B) timed separately, with docs/s, MB/s and peak RSS.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Soledad, type SoledadOptions } from '../src/index.js';
import { startServerProcess } from '../test/e2e/server-process.js';
import type { ScenarioResult } from './report.js';

export interface SyncScenario {
  name: string;
  /** Sizes of the documents' payloads in bytes. */
  sizes: number[];
}

/** The seed's scenarios (10 MB each), optionally scaled down for a smoke run. */
export function seedScenarios(scale = 1): SyncScenario[] {
  const n = (count: number) => Math.max(1, Math.round(count * scale));
  return [
    { name: '20 × 500 KB', sizes: Array(n(20)).fill(500 * 1024) },
    { name: '100 × 100 KB', sizes: Array(n(100)).fill(100 * 1024) },
    { name: '1000 × 10 KB', sizes: Array(n(1000)).fill(10 * 1024) },
    { name: '60 × 15 KB + 1 × 1 MB', sizes: [...Array(n(60)).fill(15 * 1024), 1024 * 1024] },
  ];
}

/** Samples this process's RSS while `fn` runs and returns the peak growth over the starting value. */
async function withRssPeak<T>(fn: () => Promise<T>): Promise<{ value: T; rssGrowth: number }> {
  global.gc?.();
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 5);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, rssGrowth: peak - start };
  } finally {
    clearInterval(timer);
  }
}

const MB = 1024 * 1024;

export async function runSyncScenarios(scenarios: SyncScenario[]): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const server = await startServerProcess();
    const work = mkdtempSync(join(tmpdir(), 'soledad-bench-sync-'));
    try {
      const uuid = randomUUID().replace(/-/g, '');
      const token = await server.token(uuid);
      const opts = (name: string): SoledadOptions => ({
        uuid, passphrase: 'bench', secretsPath: join(work, name, 'soledad.json'), localDbPath: join(work, name, 'soledad.u1db'),
        serverUrl: server.url, certFile: server.certFile, authToken: token,
      });
      const a = await Soledad.open(opts('a'));
      await Promise.all(scenario.sizes.map((size) => a.createDoc({ body: randomBytes(Math.ceil(size * 0.75)).toString('base64').slice(0, size) })));
      const bytes = scenario.sizes.reduce((x, y) => x + y, 0);
      const docs = scenario.sizes.length;

      const t0 = performance.now();
      const up = await withRssPeak(() => a.sync());
      const uploadMs = performance.now() - t0;
      const serverRssUp = server.peakRss();
      await a.close();

      const b = await Soledad.open(opts('b'));
      const t1 = performance.now();
      const down = await withRssPeak(() => b.sync());
      const downloadMs = performance.now() - t1;
      if ((await b.getAllDocs()).docs.length !== docs) throw new Error('download incomplete');
      await b.close();

      results.push({
        name: `sync upload ${scenario.name}`,
        ours_ms: uploadMs,
        extra: {
          docs_per_s: Math.round((docs / uploadMs) * 1000),
          MB_per_s: Number(((bytes / MB) / (uploadMs / 1000)).toFixed(1)),
          client_rss_growth_MB: Number((up.rssGrowth / MB).toFixed(1)),
          server_peak_rss_MB: serverRssUp === undefined ? 'n/a' : Number((serverRssUp / MB).toFixed(1)),
        },
      });
      results.push({
        name: `sync download ${scenario.name}`,
        ours_ms: downloadMs,
        extra: {
          docs_per_s: Math.round((docs / downloadMs) * 1000),
          MB_per_s: Number(((bytes / MB) / (downloadMs / 1000)).toFixed(1)),
          client_rss_growth_MB: Number((down.rssGrowth / MB).toFixed(1)),
          server_peak_rss_MB: (() => { const r = server.peakRss(); return r === undefined ? 'n/a' : Number((r / MB).toFixed(1)); })(),
        },
      });
    } finally {
      await server.stop();
      rmSync(work, { recursive: true, force: true });
    }
  }
  return results;
}
