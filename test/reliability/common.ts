/**
 * Shared parts of the reliability campaign: the scale knob, the tally the report reads, a seeded random source,
 * integrity checks, and small waiting helpers.
 *
 * `SOLEDAD_RELIABILITY_SCALE` (default 1, the bounded form CI runs) multiplies every count; `report.ts` sets
 * `SOLEDAD_RELIABILITY_TALLY` to a file where each test appends one JSON line per measured group.
 */
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { SoledadError } from '../../src/common/errors.js';
import { openSqlCipher } from '../../src/client/db/sqlcipher.js';

/** Multiplier of every count of the campaign (`SOLEDAD_RELIABILITY_SCALE`, default 1). */
export function scale(): number {
  const raw = process.env['SOLEDAD_RELIABILITY_SCALE'];
  const n = raw === undefined || raw.trim() === '' ? 1 : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`SOLEDAD_RELIABILITY_SCALE: expected a positive number, got "${raw}"`);
  return n;
}

/** `base × scale`, at least `min`. */
export function scaled(base: number, min = 1): number {
  return Math.max(min, Math.round(base * scale()));
}

/** The seed of this run (`SOLEDAD_RELIABILITY_SEED`, default random), printed so that a failure can be replayed. */
export function seed(): number {
  const raw = process.env['SOLEDAD_RELIABILITY_SEED'];
  if (raw !== undefined && raw.trim() !== '') return Number(raw) >>> 0;
  return (Math.random() * 2 ** 32) >>> 0;
}

/** A small deterministic PRNG (mulberry32): the same seed replays the same fault schedule. */
export class Rng {
  private state: number;
  constructor(readonly seedValue: number) {
    this.state = seedValue >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** One element. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

/** The kinds of figures in the summary table. */
export type TallyKind = 'faults' | 'mutations' | 'fuzz' | 'auth' | 'limits';

/** One measured group: `tried` cases of which `ok` behaved (survived, refused, handled). */
export interface TallyLine {
  kind: TallyKind;
  group: string;
  tried: number;
  ok: number;
  notes?: string[];
}

/**
 * Record a group's figures for the report (a no-op outside `report.ts` except for the returned line, which tests
 * also print as a diagnostic).
 */
export function tally(line: TallyLine): TallyLine {
  const file = process.env['SOLEDAD_RELIABILITY_TALLY'];
  if (file !== undefined && file !== '') appendFileSync(file, `${JSON.stringify(line)}\n`);
  return line;
}

/** A counter of tried/ok cases that records itself once. */
export class Counter {
  tried = 0;
  ok = 0;
  readonly failures: string[] = [];
  constructor(readonly kind: TallyKind, readonly group: string) {}
  /** Count one case. */
  add(ok: boolean, failure?: string): void {
    this.tried += 1;
    if (ok) this.ok += 1;
    else if (failure !== undefined && this.failures.length < 20) this.failures.push(failure);
  }
  /** Write the figures to the tally. */
  record(notes: string[] = []): TallyLine {
    return tally({
      kind: this.kind, group: this.group, tried: this.tried, ok: this.ok,
      notes: [...notes, ...this.failures.map((f) => `FAIL: ${f}`)],
    });
  }
}

/** A named error of the catalogue (never a bare `Error`, a `TypeError` or a crash). */
export function isNamedError(err: unknown): err is SoledadError {
  return err instanceof SoledadError;
}

/** A fresh temporary directory. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `soledad-rel-${prefix}-`));
}

/** Remove a directory tree, ignoring errors. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** `PRAGMA integrity_check` of an encrypted local database (SQLCipher 4, raw key): `'ok'` or the problems. */
export function localIntegrity(path: string, key: Buffer): string {
  const { db } = openSqlCipher(path, { mode: 'encrypted', key });
  try {
    return (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join('; ');
  } finally {
    db.close();
  }
}

/** `PRAGMA integrity_check` of a plain SQLite file of the server. */
export function serverIntegrity(path: string): string {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join('; ');
  } finally {
    db.close();
  }
}

/** Every file under `dir` (relative paths), for "nothing written outside" and "no half file" checks. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** Wait until `cond()` holds, polling; throws after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reject with a clear message when `p` takes longer than `ms` (a hang is a failure, not a stuck CI job). */
export async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
