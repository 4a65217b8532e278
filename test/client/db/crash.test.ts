/**
 * Crash safety: a writer process is killed with SIGKILL in the middle of its write loop; every write it
 * acknowledged must survive, the database must pass integrity_check, and the generation log and the index must
 * agree with the documents. Run twice on the same file so the second writer starts from a crashed database.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { LocalDatabase } from '../../../src/client/db/database.js';
import { isNewer } from '../../../src/common/u1db/vectorclock.js';
import { makeKey, makeTempDir, removeDir } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');
const writer = path.join(here, 'fixtures', 'crash-writer.ts');

/** Start the writer, SIGKILL it after `killAfter` acknowledged writes, and return the last acknowledged rev per doc. */
function runAndKill(
  dbPath: string, key: Buffer, start: number, killAfter: number, mode: 'local' | 'bulk' = 'local',
): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer], {
      cwd: repoRoot,
      env: { ...process.env, DB_PATH: dbPath, DB_KEY_HEX: key.toString('hex'), START: String(start), MODE: mode },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked = new Map<string, string>();
    let count = 0;
    let buffer = '';
    let stderr = '';
    let killed = false;
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const [kind, id, rev] = line.split(' ');
        if (kind !== 'ack' || killed) continue;
        acked.set(id!, rev!);
        if (++count >= killAfter) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL' && killed) resolve(acked);
      else reject(new Error(`writer exited early (code ${code}, signal ${signal}): ${stderr}`));
    });
  });
}

function verify(dbPath: string, key: Buffer, acked: Map<string, string>): number {
  const db = LocalDatabase.open({ path: dbPath, encryption: { mode: 'encrypted', key } });
  try {
    assert.deepEqual(db.rawQuery('PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
    for (const [id, rev] of acked) {
      const doc = db.getDoc(id);
      assert.ok(doc, `acknowledged document ${id} is missing`);
      assert.ok(doc.rev === rev || isNewer(doc.rev, rev), `${id}: stored ${doc.rev} is older than acknowledged ${rev}`);
    }
    const { generation, docs } = db.getAllDocs();
    const changes = db.whatsChanged(0).changes;
    assert.equal(changes.length, docs.length, 'one log entry per document');
    assert.equal(changes.at(-1)!.generation, generation);
    assert.equal(db.getCountFromIndex('by-n', '*'), docs.length, 'the index matches the documents');
    return docs.length;
  } finally {
    db.close();
  }
}

describe('crash safety', () => {
  let dir: string;
  before(() => { dir = makeTempDir(); });
  after(() => removeDir(dir));

  it('keeps every acknowledged write across SIGKILL, twice in a row', async () => {
    const dbPath = path.join(dir, 'soledad.u1db');
    const key = makeKey();
    const first = await runAndKill(dbPath, key, 0, 250 + Math.floor(Math.random() * 100));
    assert.ok(first.size > 100);
    const n1 = verify(dbPath, key, first);
    const second = await runAndKill(dbPath, key, 100_000, 150 + Math.floor(Math.random() * 100));
    const n2 = verify(dbPath, key, new Map([...first, ...second]));
    assert.ok(n2 > n1);
  });

  it('keeps every acknowledged batch across SIGKILL in bulk-write mode (rollback journal), and reopens in WAL', async () => {
    const dbPath = path.join(dir, 'bulk.u1db');
    const key = makeKey();
    const first = await runAndKill(dbPath, key, 0, 250 + Math.floor(Math.random() * 100), 'bulk');
    assert.ok(first.size > 100);
    const n1 = verify(dbPath, key, first);
    assert.equal(fs.existsSync(`${dbPath}-journal`), false, 'the hot journal was rolled back');
    const second = await runAndKill(dbPath, key, 100_000, 150 + Math.floor(Math.random() * 100), 'bulk');
    const n2 = verify(dbPath, key, new Map([...first, ...second]));
    assert.ok(n2 > n1);
    const db = LocalDatabase.open({ path: dbPath, encryption: { mode: 'encrypted', key } });
    try {
      assert.deepEqual(db.rawQuery('PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
      assert.equal(db.getReplicaGenAndTransId('other').generation, 100_000 + n2 - n1, 'the sync log matches the last batch');
    } finally {
      db.close();
    }
  });
});
