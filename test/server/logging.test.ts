/** Logs never carry tokens, Authorization values, or document content, whatever happens. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { CONTENT_TYPE_SYNC_PUT, encodeSyncPut } from '../../src/common/protocol/sync-stream.js';
import { buildUsersApp } from '../../src/server/app.js';
import { openSqliteBackend } from '../../src/server/backends/sqlite/index.js';
import type { Backend } from '../../src/server/backends/types.js';

const UUID = '10601000000000000000000000000001';

describe('logging', () => {
  it('redacts credentials and content at every level, including on errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soledad-log-'));
    let text = '';
    const sink = new Writable({ write(chunk, _enc, cb) { text += String(chunk); cb(); } });
    const logger = pino({ level: 'trace' }, sink);
    const real = await openSqliteBackend({ dataDir: dir });
    // A backend whose shared store fails unexpectedly with a foreign error quoting its input.
    const backend: Backend = {
      ...real,
      shared: { ...real.shared, putDoc: async (_id, content) => { throw new TypeError(`cannot store ${content}`); } },
    };
    const app = buildUsersApp({ config: { blobs: false, createCmd: null, quotaBytes: 1e9 }, backend, logger });
    try {
      const token = await real.tokens.addToken(UUID);
      const authorization = encodeTokenAuthorization(UUID, token);
      const secretContent = '{"raw": "SECRET-CIPHERTEXT-MARKER"}';
      const upload = [...encodeSyncPut({ last_known_generation: 0, last_known_trans_id: '', sync_id: 's', ensure: true },
        [{ id: 'D-1', rev: 'r:1', content: secretContent, gen: 1, trans_id: 'T-1', number_of_docs: 1, doc_idx: 1 }])].join('');
      const requests = [
        app.inject({ method: 'POST', url: `/user-${UUID}/sync-from/r`, payload: upload, headers: { authorization, 'content-type': CONTENT_TYPE_SYNC_PUT } }),
        app.inject({ method: 'POST', url: `/user-${UUID}/sync-from/r`, payload: upload.slice(0, -3), headers: { authorization, 'content-type': CONTENT_TYPE_SYNC_PUT } }),
        app.inject({ method: 'PUT', url: '/shared/doc/abc', payload: secretContent, headers: { authorization, 'content-type': 'application/json' } }),
        app.inject({ method: 'GET', url: '/shared', headers: { authorization: encodeTokenAuthorization(UUID, 'WRONG-TOKEN-MARKER') } }),
      ];
      const statuses = (await Promise.all(requests)).map((r) => r.statusCode);
      assert.deepEqual(statuses, [200, 400, 500, 401]);
      assert.ok(text.length > 0, 'something was logged');
      assert.match(text, /request failed/);
      for (const secret of [token, authorization, authorization.slice('Token '.length), 'SECRET-CIPHERTEXT-MARKER', 'WRONG-TOKEN-MARKER']) {
        assert.ok(!text.includes(secret), `log contains ${secret.slice(0, 20)}…`);
      }
    } finally {
      await app.close();
      await real.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
