/** Benchmark results: one row per scenario, printed as a table and written as JSON, then the targets. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ScenarioResult {
  name: string;
  /** Our time for the scenario, milliseconds. */
  ours_ms: number;
  /** What we compare against in the same run, if anything. */
  baseline_name?: string;
  baseline_ms?: number;
  /** The physical limit of the same work measured in the same run (AES-GCM + SQLite writes + loopback TLS), ms. */
  limit_ms?: number;
  /**
   * The same limit with the SQLite writes done by SQLCipher (what an encrypted local database must pay), ms. Shown
   * beside `limit_ms` for reading the numbers; the targets stay on `limit_ms`.
   */
  encrypted_limit_ms?: number;
  /**
   * Ratios taken round by round when the scenario interleaves its rounds with the baseline's and the limit's
   * (`bench/sync.ts`): the median of ours ÷ theirs per round. Printed and checked instead of the ratio of medians.
   */
  ratio?: number;
  limit_ratio?: number;
  encrypted_limit_ratio?: number;
  /** Other figures (docs/s, MB/s, peak RSS …). */
  extra?: Record<string, number | string>;
  /** Why the scenario could not be measured (a service that did not start…); `ours_ms` is then NaN. */
  error?: string;
  /** Targets this scenario is held to, and whether this run met them. */
  checks?: Array<{ what: string; ok: boolean }>;
}

/** The per-round ratio if there is one, else ours ÷ theirs; empty when there is nothing to compare with. */
function ratioText(perRound: number | undefined, ours: number, theirs: number | undefined): string {
  if (perRound !== undefined) return perRound.toFixed(2);
  return theirs !== undefined ? (ours / theirs).toFixed(2) : '';
}

/** Print the table and the targets, write `bench/results/<date>.json`; returns the JSON path. */
export function report(results: ScenarioResult[], meta: Record<string, unknown>): string {
  const rows = results.map((r) => ({
    scenario: r.name,
    'ours ms': r.error !== undefined ? 'not measured' : r.ours_ms.toFixed(1),
    baseline: r.baseline_name ?? '',
    'baseline ms': r.baseline_ms !== undefined ? r.baseline_ms.toFixed(1) : '',
    ratio: ratioText(r.ratio, r.ours_ms, r.baseline_ms),
    '× limit': ratioText(r.limit_ratio, r.ours_ms, r.limit_ms),
    '× enc. limit': ratioText(r.encrypted_limit_ratio, r.ours_ms, r.encrypted_limit_ms),
  }));
  console.table(rows);
  for (const r of results) {
    if (r.error !== undefined) console.log(`${r.name}: not measured: ${r.error}`);
    if (r.extra === undefined) continue;
    console.log(`${r.name}: ${Object.entries(r.extra).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  const checks = results.flatMap((r) => r.checks ?? []);
  if (checks.length > 0) {
    console.log(`\nTargets: ${checks.filter((c) => c.ok).length} of ${checks.length} met`);
    for (const c of checks) console.log(`  ${c.ok ? 'met    ' : 'NOT MET'}  ${c.what}`);
  }
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ meta, results }, null, 2) + '\n');
  return file;
}
