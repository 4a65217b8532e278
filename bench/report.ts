/** Benchmark results: one row per scenario, printed as a table and written as JSON. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ScenarioResult {
  name: string;
  /** Our time for the scenario, milliseconds. */
  ours_ms: number;
  /** What we compare against in the same run, if anything. */
  baseline_name?: string;
  baseline_ms?: number;
  /** Other figures (docs/s, MB/s, peak RSS …). */
  extra?: Record<string, number | string>;
}

/** Print the table and write `bench/results/<date>.json`; returns the JSON path. */
export function report(results: ScenarioResult[], meta: Record<string, unknown>): string {
  const rows = results.map((r) => ({
    scenario: r.name,
    'ours ms': r.ours_ms.toFixed(1),
    baseline: r.baseline_name ?? '',
    'baseline ms': r.baseline_ms !== undefined ? r.baseline_ms.toFixed(1) : '',
    ratio: r.baseline_ms !== undefined ? (r.ours_ms / r.baseline_ms).toFixed(2) : '',
    extra: r.extra ? Object.entries(r.extra).map(([k, v]) => `${k}=${v}`).join(' ') : '',
  }));
  console.table(rows);
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ meta, results }, null, 2) + '\n');
  return file;
}
