/**
 * Local database scenarios (the seed's "async create 1000 × 10 KB" and "get 1000 × 10 KB"): the same code path
 * as the Promise API (LocalDatabase + group-commit WriteQueue) on an encrypted SQLCipher file and on plain SQLite.
 * Also the local half of a fresh device's initial sync: applying downloaded documents as the synchronizer does.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDatabase } from '../src/client/db/database.js';
import { WriteQueue } from '../src/client/write-queue.js';
import { scryptKey } from '../src/common/crypto/scrypt.js';
import type { IncomingVersion } from '../src/client/db/database.js';
import { Document } from '../src/common/u1db/document.js';
import type { JsonObject } from '../src/common/u1db/json.js';
import type { ScenarioResult } from './report.js';

type Mode = 'encrypted' | 'plaintext';

function payload(bytes: number): { body: string } {
  // Base64 of random bytes: incompressible, JSON-safe.
  return { body: randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes) };
}

function open(dir: string, mode: Mode): LocalDatabase {
  const path = join(dir, `${mode}.u1db`);
  return LocalDatabase.open({
    path,
    encryption: mode === 'encrypted' ? { mode: 'encrypted', key: randomBytes(32) } : { mode: 'plaintext-benchmark-only' },
  });
}

async function createMany(db: LocalDatabase, n: number, size: number): Promise<{ ms: number; ids: string[] }> {
  const queue = new WriteQueue(db);
  const contents = Array.from({ length: n }, () => payload(size));
  const t0 = performance.now();
  const docs: Document[] = await Promise.all(contents.map((c) => queue.enqueue(() => db.createDoc(c))));
  return { ms: performance.now() - t0, ids: docs.map((d) => d.docId) };
}

function getMany(db: LocalDatabase, ids: string[]): number {
  const t0 = performance.now();
  for (const id of ids) {
    if (db.getDoc(id) === null) throw new Error('missing doc in benchmark');
  }
  return performance.now() - t0;
}

/**
 * Documents per apply transaction: the synchronizer's APPLY_MAX_DOCS. (It also ends a transaction at 4 MiB of
 * ciphertext, about 550 documents of 5 KB; 2,200 per transaction measured only ~7% faster here, so the
 * difference is small.)
 */
const APPLY_BATCH = 1000;

/**
 * Apply downloaded documents (JSON texts, random ids) as a large download does: bulk-write mode, `putDocsIfNewer`
 * in transactions of {@link APPLY_BATCH}. Decryption and the network are not in it: this is the local database's
 * share of an initial sync.
 */
function applyDownload(db: LocalDatabase, jsons: readonly string[]): number {
  const items: IncomingVersion[] = jsons.map((json, i) => ({
    doc: new Document(`D-${randomBytes(16).toString('hex')}`, 'benchserver:1', JSON.parse(json) as JsonObject),
    json, replicaGen: i + 1, replicaTransId: `T-${i + 1}`,
  }));
  const bulk = db.enterBulkWrite();
  const t0 = performance.now();
  for (let i = 0; i < items.length; i += APPLY_BATCH) {
    const batch = items.slice(i, i + APPLY_BATCH);
    db.transaction(() => db.putDocsIfNewer(batch, { saveConflict: true, replicaUid: 'benchserver' }));
  }
  const ms = performance.now() - t0;
  if (bulk) db.leaveBulkWrite();
  return ms;
}

/**
 * The local half of an initial sync, `n` documents of `size` bytes, on SQLCipher and on plain SQLite.
 *
 * @example
 * results.push(await runLocalApplyScenario(10_000, 5 * 1024));
 */
export async function runLocalApplyScenario(n: number, size: number): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'soledad-bench-'));
  try {
    const jsons = Array.from({ length: n }, () => JSON.stringify(payload(size)));
    const times: Record<Mode, number> = { encrypted: 0, plaintext: 0 };
    for (const mode of ['plaintext', 'encrypted'] as const) {
      const db = open(dir, mode);
      try {
        times[mode] = applyDownload(db, jsons);
      } finally {
        db.close();
      }
    }
    return {
      name: `local apply of a download ${n} × ${Math.round(size / 1024)} KB (putDocsIfNewer, bulk write)`,
      ours_ms: times.encrypted,
      baseline_name: 'same code, plain SQLite',
      baseline_ms: times.plaintext,
      extra: { docs_per_s: Math.round((n / times.encrypted) * 1000) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run the local database scenarios; `n` documents of `size` bytes each. */
export async function runLocalDbScenarios(n: number, size: number): Promise<ScenarioResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'soledad-bench-'));
  try {
    const results: Record<Mode, { create: number; get: number }> = {
      encrypted: { create: 0, get: 0 },
      plaintext: { create: 0, get: 0 },
    };
    for (const mode of ['plaintext', 'encrypted'] as const) {
      const db = open(dir, mode);
      const { ms, ids } = await createMany(db, n, size);
      results[mode].create = ms;
      results[mode].get = getMany(db, ids);
      db.close();
    }
    const label = `${n} × ${Math.round(size / 1024)} KB`;
    const t0 = performance.now();
    await scryptKey(randomBytes(448), randomBytes(64));
    const scryptMs = performance.now() - t0;
    return [
      {
        name: `local async create ${label}`,
        ours_ms: results.encrypted.create,
        baseline_name: 'same code, plain SQLite',
        baseline_ms: results.plaintext.create,
        extra: { docs_per_s: Math.round((n / results.encrypted.create) * 1000) },
      },
      {
        name: `local get ${label}`,
        ours_ms: results.encrypted.get,
        baseline_name: 'same code, plain SQLite',
        baseline_ms: results.plaintext.get,
        extra: { docs_per_s: Math.round((n / results.encrypted.get) * 1000) },
      },
      { name: 'scrypt unlock (N=16384, r=8, p=1)', ours_ms: scryptMs },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
