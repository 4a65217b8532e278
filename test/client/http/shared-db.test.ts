/** SharedDbClient against the real server's `shared` database (§4c). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InvalidAuthTokenError, InvalidDocIdError, RevisionConflictError } from '../../../src/common/errors.js';
import { HttpClient } from '../../../src/client/http/client.js';
import { SharedDbClient } from '../../../src/client/http/shared-db.js';
import { makeUser, startTestServer, type TestServer, type TestUser } from '../sync/harness.js';

let server: TestServer;
let user: TestUser;
let http: HttpClient;
let shared: SharedDbClient;

before(async () => {
  server = await startTestServer();
  user = await makeUser(server);
  http = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid: user.uuid, token: user.token });
  shared = new SharedDbClient(http);
});

after(async () => {
  await http.close();
  await server.close();
});

describe('SharedDbClient', () => {
  it('get of a missing document is null', async () => {
    assert.equal(await shared.get('0'.repeat(64)), null);
  });

  it('creates, reads and updates with revisions', async () => {
    const id = 'a'.repeat(64);
    const content = { version: 2, kdf: 'scrypt', secrets: 'abc\n' };
    const rev1 = await shared.put(id, content, null);
    assert.ok(rev1.length > 0);
    assert.deepEqual(await shared.get(id), { content, rev: rev1 });

    const rev2 = await shared.put(id, { ...content, secrets: 'def\n' }, rev1);
    assert.notEqual(rev2, rev1);
    assert.deepEqual(await shared.get(id), { content: { ...content, secrets: 'def\n' }, rev: rev2 });
  });

  it('refuses stale or missing old revisions with RevisionConflictError', async () => {
    const id = 'b'.repeat(64);
    const rev1 = await shared.put(id, { n: 1 }, null);
    await shared.put(id, { n: 2 }, rev1);
    await assert.rejects(shared.put(id, { n: 3 }, rev1), RevisionConflictError);
    await assert.rejects(shared.put(id, { n: 3 }, null), RevisionConflictError);
    assert.deepEqual((await shared.get(id))?.content, { n: 2 });
  });

  it('a deleted document reads as null', async () => {
    const id = 'c'.repeat(64);
    const rev = await shared.put(id, { n: 1 }, null);
    await server.backend.shared.deleteDoc(id, rev);
    assert.equal(await shared.get(id), null);
  });

  it('percent-encodes ids; invalid ids are refused by the server', async () => {
    await assert.rejects(shared.get('bad/id'), InvalidDocIdError);
  });

  it('a bad token is InvalidAuthTokenError', async () => {
    const bad = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid: user.uuid, token: 'wrong-token-xyz' });
    try {
      await assert.rejects(new SharedDbClient(bad).get('d'.repeat(64)), (err: unknown) => {
        assert.ok(err instanceof InvalidAuthTokenError);
        assert.ok(!err.message.includes('wrong-token-xyz'));
        return true;
      });
    } finally {
      await bad.close();
    }
  });
});
