/**
 * A download large enough for bulk-write mode: applied through a rollback journal, converging exactly as in WAL
 * mode, with the file back in WAL afterwards; refused (and the download still complete) while another connection
 * has the file open.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { LocalDatabase } from '../../../src/client/db/database.js';
import { cleanupReplicas, makeReplica, makeUser, snapshot, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
  cleanupReplicas();
});

/** Count the calls of enterBulkWrite and their answers. */
function spyBulk(db: LocalDatabase): boolean[] {
  const answers: boolean[] = [];
  const original = db.enterBulkWrite.bind(db);
  db.enterBulkWrite = () => {
    const ok = original();
    answers.push(ok);
    return ok;
  };
  return answers;
}

describe('sync: bulk-write downloads', () => {
  it('applies a download spanning several transactions in bulk-write mode and returns to WAL', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user, { sync: { bulkWriteMinBytes: 1 } });
    try {
      for (let i = 0; i < 30; i++) a.db.createDoc({ i, pad: `${i}`.repeat(200_000) });
      a.db.createDoc({ small: true });
      await a.sync.sync();
      const answers = spyBulk(b.db);
      await b.sync.sync();
      assert.deepEqual(answers, [true]);
      assert.deepEqual(snapshot(b.db), snapshot(a.db));
      assert.equal(b.db.getGeneration(), 31);
      assert.deepEqual(b.db.rawQuery('PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
      assert.deepEqual(b.db.rawQuery('PRAGMA synchronous'), [{ synchronous: 1 }]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('stays in WAL mode for a download expected below the threshold, and when another connection is open', async () => {
    const user = await makeUser(server);
    const a = makeReplica(server, user);
    const b = makeReplica(server, user);
    const key = randomBytes(32);
    const c = makeReplica(server, user, { sync: { bulkWriteMinBytes: 1 }, key });
    let other: LocalDatabase | undefined;
    try {
      for (let i = 0; i < 30; i++) a.db.createDoc({ i, pad: `${i}`.repeat(200_000) });
      await a.sync.sync();
      const small = spyBulk(b.db);
      await b.sync.sync();
      assert.deepEqual(small, [], 'the default threshold is not reached by 6 MB');
      assert.deepEqual(snapshot(b.db), snapshot(a.db));

      other = LocalDatabase.open({ path: c.path, encryption: { mode: 'encrypted', key } });
      const busy = spyBulk(c.db);
      await c.sync.sync();
      assert.deepEqual(busy, [false]);
      assert.deepEqual(snapshot(c.db), snapshot(a.db));
      assert.deepEqual(c.db.rawQuery('PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
    } finally {
      other?.close();
      await a.close();
      await b.close();
      await c.close();
    }
  });
});
