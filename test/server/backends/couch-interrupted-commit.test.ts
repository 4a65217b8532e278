/**
 * The CouchDB engine has no transactions: a commit writes the documents, then their `gen-…` documents. When the
 * second step does not happen (the process dies, CouchDB refuses it), the documents are stored but not in the
 * transaction log, and a device re-sending them only "converges" — other devices would never receive them. The
 * next writer of the database must finish the log. Here the second step is refused for real: a stray writer
 * (without the lease) takes the next generation number between the session's start and its commit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openCouchBackend } from '../../../src/server/backends/couch/index.js';
import { UnavailableError } from '../../../src/common/errors.js';
import { couchFetch, couchTestUrl, dropCouchPrefix, engineSelected, freshCouchPrefix } from '../../backends/engines.js';

const UUID = '0123456789abcdef0123456789abcdee';
const DB = `user-${UUID}`;

const doc = (id: string, rev: string, gen: number) => ({
  id, rev, content: JSON.stringify({ raw: `${id}@${rev}` }), gen, transId: `T-${id}-${gen}`,
});

describe('CouchDB: a commit whose generation documents were not written', { skip: !engineSelected('couch') }, () => {
  it('is finished by the next writer: every stored document reaches the log exactly once', async () => {
    const url = couchTestUrl();
    const prefix = freshCouchPrefix();
    const backend = await openCouchBackend({ url, prefix });
    try {
      const docs = backend.documents;
      await docs.ensureDatabase(DB);
      await docs.putDocsIfNewer(DB, 'devA', [doc('d1', 'devA:1', 1)]);

      const session = await docs.openUpload(DB, 'devA');
      // A stray writer takes generation 2 after the session read generation 1.
      const stray = await couchFetch(url, `/${prefix}${DB}/gen-0000000002`, {
        method: 'PUT', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ gen: 2, doc_id: 'd1', trans_id: 'T-stray' }),
      });
      assert.equal(stray.status, 201);
      await session.putDocsIfNewer([doc('dA', 'devA:1', 2), doc('dB', 'devA:1', 3)]);
      await assert.rejects(session.commit(), UnavailableError);
      await session.abort();
      // dA is stored, but generation 2 is the stray writer's.
      const stored = [];
      for await (const d of docs.getDocs(DB, ['dA', 'dB'])) stored.push(d.id);
      assert.deepEqual(stored, ['dA', 'dB']);

      // The device retries (its sync log did not advance) and another device writes: the log gets dA once.
      const retry = await docs.putDocsIfNewer(DB, 'devA', [doc('dA', 'devA:1', 2), doc('dB', 'devA:1', 3)]);
      assert.deepEqual(retry.outcomes.map((o) => o.state), ['converged', 'converged']);
      await docs.putDocsIfNewer(DB, 'devB', [doc('dC', 'devB:1', 1)]);
      const { changes, generation } = await docs.whatsChanged(DB, 0);
      assert.deepEqual(changes.map((c) => c.id).sort(), ['d1', 'dA', 'dB', 'dC']);
      assert.deepEqual(changes.map((c) => c.generation), [...changes.map((c) => c.generation)].sort((x, y) => x - y));
      assert.equal(generation, changes.at(-1)!.generation);
      const fromTwo = await docs.whatsChanged(DB, 2);
      assert.ok(fromTwo.changes.some((c) => c.id === 'dA'), 'a device that had seen generation 2 still receives dA');
      // The usage counter counts what is stored: it equals a fresh measurement (without the counter).
      const usage = await docs.usageBytes(DB);
      const counter = `/${prefix}${DB}/_local/soledad_usage`;
      const { _rev } = (await (await couchFetch(url, counter)).json()) as { _rev: string };
      assert.equal((await couchFetch(url, `${counter}?rev=${_rev}`, { method: 'DELETE' })).status, 200);
      assert.equal(await docs.usageBytes(DB), usage);
    } finally {
      await backend.close();
      await dropCouchPrefix(url, prefix);
    }
  });
});
