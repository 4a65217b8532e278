/** Measuring helpers shared by the bench scenarios: payloads, wall and CPU time, memory of this and other processes. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

export const MB = 1024 * 1024;

/** A JSON-safe, incompressible string of exactly `size` characters (base64 of random bytes). */
export function payload(size: number): string {
  return randomBytes(Math.ceil((size * 3) / 4) + 3).toString('base64').slice(0, size);
}

/** Megabytes with one decimal. */
export function mb(bytes: number): number {
  return Number((bytes / MB).toFixed(1));
}

/** Milliseconds with one decimal. */
export function ms(value: number): number {
  return Number(value.toFixed(1));
}

/** What {@link measure} observed while its function ran. */
export interface Measured<T> {
  value: T;
  /** Wall-clock time. */
  ms: number;
  /** CPU time of this process (user + system). */
  cpuMs: number;
  /** Highest RSS of this process seen, sampled every 5 ms. */
  rssPeak: number;
  /** That peak minus the RSS at the start. */
  rssGrowth: number;
}

/** Run `fn` and report its wall time, this process's CPU time and its RSS peak (sampled every 5 ms). */
export async function measure<T>(fn: () => Promise<T>): Promise<Measured<T>> {
  global.gc?.();
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    const value = await fn();
    const elapsed = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, ms: elapsed, cpuMs: (cpu.user + cpu.system) / 1000, rssPeak: peak, rssGrowth: peak - start };
  } finally {
    clearInterval(timer);
  }
}

/** Another process seen through /proc (Linux): CPU time, current and peak RSS; the peak can be reset. */
export class ProcWatch {
  constructor(readonly pid: number) {}

  /**
   * CPU time so far, in ms: the scheduler's nanosecond count summed over the process's threads (a small sync takes
   * a few ms, below the 10 ms resolution of /proc/<pid>/stat, which is the fallback).
   */
  cpuMs(): number {
    try {
      let ns = 0;
      for (const task of readdirSync(`/proc/${this.pid}/task`)) {
        try {
          ns += Number(readFileSync(`/proc/${this.pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
        } catch {
          // The thread ended meanwhile: its time is lost to this count (threads of the server live as long as it).
        }
      }
      if (ns > 0) return ns / 1e6;
    } catch {
      // No schedstat here: clock ticks below.
    }
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      return Number.NaN;
    }
  }

  private status(key: 'VmRSS' | 'VmHWM'): number {
    try {
      const kb = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))?.[1];
      return kb === undefined ? Number.NaN : Number(kb) * 1024;
    } catch {
      return Number.NaN;
    }
  }

  /** Current resident set size in bytes. */
  rss(): number {
    return this.status('VmRSS');
  }

  /** Peak resident set size in bytes since start or the last {@link resetPeak}. */
  peakRss(): number {
    return this.status('VmHWM');
  }

  /** Make the peak start again from the current RSS (writes 5 to clear_refs; needs owning the process). */
  resetPeak(): void {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
    } catch {
      // Not permitted here: the peak then covers the process's whole life, which only overstates it.
    }
  }

  /** Reset the peak, then report CPU time, RSS at start and the peak while `fn` ran. */
  async during<T>(fn: () => Promise<T>): Promise<{ value: T; cpuMs: number; rssStart: number; rssPeak: number }> {
    this.resetPeak();
    const rssStart = this.rss();
    const cpu0 = this.cpuMs();
    const value = await fn();
    return { value, cpuMs: this.cpuMs() - cpu0, rssStart, rssPeak: this.peakRss() };
  }
}

/**
 * Flush the machine's dirty pages to disk, then wait until none of the `processes` has used CPU for `quietMs` (their
 * background work of a previous round, such as a checkpoint or a compaction, done), or `maxMs` passed; returns the
 * ms waited. Used between interleaved rounds so no side is timed while another side's leftovers still run.
 *
 * @example
 * await settle([ours.watch, pouch.watch]);
 */
export async function settle(processes: readonly ProcWatch[], quietMs = 100, maxMs = 3000): Promise<number> {
  const t0 = performance.now();
  // The previous part's dirty pages, written back now rather than under the next part's fsyncs.
  try {
    execFileSync('sync');
  } catch {
    // No sync(1): the kernel writes them back on its own schedule.
  }
  let last = processes.map((p) => p.cpuMs());
  while (performance.now() - t0 < maxMs) {
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    const now = processes.map((p) => p.cpuMs());
    if (now.every((cpu, i) => cpu === last[i])) break;
    last = now;
  }
  return performance.now() - t0;
}

/** The `q`-quantile (0..1) of `values`, nearest-rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The item whose `pick` is the median (the upper one for an even count): the median round of repeated runs. */
export function medianBy<T>(items: readonly T[], pick: (item: T) => number): T {
  if (items.length === 0) throw new RangeError('No items');
  return [...items].sort((x, y) => pick(x) - pick(y))[Math.floor(items.length / 2)]!;
}

/**
 * Run `round` once on `warmUp` (discarded: the server's code compiled, its caches set), then `repeat` times (at
 * least once) on `bodies`; the first measured round also runs the no-op sync when `noop` is set.
 *
 * @example
 * const rounds = await roundsAfterWarmUp(oneRound, { warmUp, bodies, repeat: 3, noop: false });
 * const up = medianBy(rounds, (r) => r.up.ms);
 */
export async function roundsAfterWarmUp<R>(
  round: (texts: readonly string[], noop: boolean) => Promise<R>,
  opts: { warmUp?: readonly string[]; bodies: readonly string[]; repeat?: number; noop?: boolean },
): Promise<R[]> {
  if (opts.warmUp !== undefined) await round(opts.warmUp, false);
  const rounds: R[] = [];
  for (let i = 0; i < Math.max(1, opts.repeat ?? 1); i++) rounds.push(await round(opts.bodies, opts.noop === true && i === 0));
  return rounds;
}
