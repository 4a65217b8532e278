/**
 * Several writers on one file (Soledad's sqlcipher `test_async`: concurrent puts): separate processes writing at
 * the same time, and two connections of one process interleaving, must serialize into one gap-free generation log
 * with every document and every index row in place.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { LocalDatabase } from '../../../src/client/db/database.js';
import { RevisionConflictError } from '../../../src/common/errors.js';
import { makeKey, makeTempDir, removeDir } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');
const writer = path.join(here, 'fixtures', 'concurrent-writer.ts');

function runWriter(dbPath: string, key: Buffer, prefix: string, count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer], {
      cwd: repoRoot,
      env: { ...process.env, DB_PATH: dbPath, DB_KEY_HEX: key.toString('hex'), PREFIX: prefix, COUNT: String(count) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${prefix} failed (${code}): ${stderr}`))));
  });
}

describe('concurrent writers', () => {
  let dir: string;
  let dbPath: string;
  let key: Buffer;
  beforeEach(() => {
    dir = makeTempDir();
    dbPath = path.join(dir, 'soledad.u1db');
    key = makeKey();
  });
  afterEach(() => removeDir(dir));

  it('serializes writes of several processes into one consistent log', async () => {
    const db = LocalDatabase.open({ path: dbPath, encryption: { mode: 'encrypted', key } });
    db.createIndex('by-owner', 'owner');
    db.close();
    const writers = ['p1', 'p2', 'p3'];
    const count = 300;
    await Promise.all(writers.map((p) => runWriter(dbPath, key, p, count)));
    const check = LocalDatabase.open({ path: dbPath, encryption: { mode: 'encrypted', key } });
    try {
      const perWriter = count + count / 2;
      const gens = (check.rawQuery('SELECT generation FROM transaction_log ORDER BY generation') as Array<{ generation: number }>).map((r) => r.generation);
      assert.deepEqual(gens, Array.from({ length: writers.length * perWriter }, (_, i) => i + 1), 'generations are gap-free');
      assert.equal(check.getAllDocs().docs.length, writers.length * count);
      for (const p of writers) {
        assert.equal(check.getCountFromIndex('by-owner', p), count);
        assert.equal(check.getDoc(`${p}-0`)!.content!.edited, true);
        assert.equal(check.getDoc(`${p}-0`)!.rev, `${check.replicaUid}:2`);
      }
      assert.equal(check.whatsChanged(0).changes.length, writers.length * count);
      assert.deepEqual(check.rawQuery('PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
    } finally {
      check.close();
    }
  });

  it('keeps two connections of one process consistent, indexes included', () => {
    const a = LocalDatabase.open({ path: dbPath, encryption: { mode: 'encrypted', key } });
    const b = LocalDatabase.open({ path: dbPath, encryption: { mode: 'encrypted', key } });
    try {
      assert.equal(a.replicaUid, b.replicaUid);
      for (let i = 0; i < 50; i++) {
        (i % 2 === 0 ? a : b).createDoc({ k: `v${i % 5}` }, `d${i}`);
        if (i === 20) b.createIndex('by-k', 'k');
      }
      assert.equal(a.getGeneration(), 50);
      assert.equal(a.getCountFromIndex('by-k', 'v0'), 10);
      assert.equal(b.getCountFromIndex('by-k', '*'), 50);
      const doc = a.getDoc('d3')!;
      doc.content = { k: 'changed' };
      a.putDoc(doc);
      assert.deepEqual(b.getFromIndex('by-k', 'changed').map((d) => d.docId), ['d3']);
      const stale = b.getDoc('d4')!;
      const fresh = a.getDoc('d4')!;
      fresh.content = { k: 'first' };
      a.putDoc(fresh);
      stale.content = { k: 'second' };
      assert.throws(() => b.putDoc(stale), RevisionConflictError);
    } finally {
      a.close();
      b.close();
    }
  });
});
