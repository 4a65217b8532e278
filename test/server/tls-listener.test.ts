/** The real listeners: TLS Users API with a generated certificate, loopback Services API, graceful shutdown. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Agent, request } from 'undici';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import {
  CONTENT_TYPE_SYNC_GET,
  CONTENT_TYPE_SYNC_PUT,
  encodeSyncGetRequest,
  encodeSyncPut,
  parseSyncPutResponse,
} from '../../src/common/protocol/sync-stream.js';
import { loadConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/main.js';
import { SERVER_VERSION } from '../../src/server/version.js';

const UUID = '7e57000000000000000000000000a11c';
const silent = pino({ level: 'silent' });

async function start(dataDir: string, grace?: number): Promise<{ server: RunningServer; lines: string[] }> {
  const config = loadConfig({ SOLEDAD_DATA_DIR: dataDir, HTTPS_PORT: '0', LOCAL_SERVICES_PORT: '0' },
    `[soledad-server]\nservices_tokens_file = ${join(dataDir, 'services.tokens')}\n`);
  const lines: string[] = [];
  const server = await startServer({
    config, logger: silent, usersHost: '127.0.0.1', print: (l) => lines.push(l), env: { SOLEDAD_DATA_DIR: dataDir },
    ...(grace === undefined ? {} : { shutdownGraceMs: grace }),
  });
  return { server, lines };
}

describe('TLS listener', () => {
  let dataDir: string;
  let server: RunningServer;
  let lines: string[];
  let agent: Agent;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'soledad-tls-'));
    await writeFile(join(dataDir, 'services.tokens'), '# services\n\nincoming:svc-token\n');
    ({ server, lines } = await start(dataDir));
    agent = new Agent({ connect: { ca: server.tls.cert } });
  });
  after(async () => {
    await agent.close();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('generates a self-signed certificate in <data_dir>/tls and prints its fingerprint and a token command', async () => {
    assert.equal(server.tls.generated, true);
    assert.equal(server.tls.certPath, join(dataDir, 'tls', 'server.crt'));
    const pem = await readFile(server.tls.certPath, 'utf8');
    const fp = new X509Certificate(pem).fingerprint256;
    assert.equal(server.tls.fingerprint256, fp);
    const text = lines.join('\n');
    assert.ok(text.includes(fp));
    assert.ok(text.includes(server.usersUrl) && text.includes(server.servicesUrl));
    assert.match(text, new RegExp(`SOLEDAD_DATA_DIR=${dataDir} npx soledad-server token add --uuid [0-9a-f]{32}`));
    assert.match(server.usersUrl, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    assert.match(server.servicesUrl, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it('serves the Users API over TLS to a client trusting the certificate', async () => {
    const res = await request(server.usersUrl, { dispatcher: agent });
    assert.equal(res.statusCode, 200);
    const info = (await res.body.json()) as { blobs: boolean; version: string };
    assert.equal(info.version, SERVER_VERSION);
  });

  it('is refused by a client that does not trust the certificate', async () => {
    const untrusting = new Agent();
    try {
      await assert.rejects(request(server.usersUrl, { dispatcher: untrusting }), /self[- ]signed|certificate/i);
    } finally {
      await untrusting.close();
    }
  });

  it('syncs over TLS with a token', async () => {
    const token = await server.backend.tokens.addToken(UUID);
    const authorization = encodeTokenAuthorization(UUID, token);
    const url = `${server.usersUrl}user-${UUID}/sync-from/dev1`;
    const up = await request(url, {
      dispatcher: agent, method: 'POST', headers: { authorization, 'content-type': CONTENT_TYPE_SYNC_PUT },
      body: [...encodeSyncPut({ last_known_generation: 0, last_known_trans_id: '', sync_id: 's', ensure: true },
        [{ id: 'D-1', rev: 'dev1:1', content: '{"raw": "x"}', gen: 1, trans_id: 'T-1', number_of_docs: 1, doc_idx: 1 }])].join(''),
    });
    const text = await up.body.text();
    assert.equal(up.statusCode, 200, text);
    assert.equal(parseSyncPutResponse(text).new_generation, 1);
    const wrong = await request(`${server.usersUrl}shared`, { dispatcher: agent, headers: { authorization: encodeTokenAuthorization(UUID, 'nope') } });
    assert.equal(wrong.statusCode, 401);
    assert.equal(await wrong.body.text(), 'Unauthorized');
  });

  it('serves the Services API in plain HTTP on loopback, with services tokens', async () => {
    const anon = await request(`${server.servicesUrl}incoming/${UUID}/m1`, { method: 'PUT', body: 'x' });
    assert.equal(anon.statusCode, 401);
    await anon.body.dump();
    const svc = await request(`${server.servicesUrl}incoming/${UUID}/m1`, {
      method: 'PUT', body: 'x', headers: { authorization: encodeTokenAuthorization('incoming', 'svc-token') },
    });
    assert.notEqual(svc.statusCode, 401);
    await svc.body.dump();
  });
});

describe('restart and shutdown', () => {
  it('reuses the certificate on the next start', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'soledad-tls-'));
    try {
      const first = await start(dataDir);
      const fp = first.server.tls.fingerprint256;
      await first.server.close();
      const second = await start(dataDir);
      assert.equal(second.server.tls.generated, false);
      assert.equal(second.server.tls.fingerprint256, fp);
      await second.server.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('waits for a request in flight, then closes; refuses new connections meanwhile', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'soledad-tls-'));
    const { server } = await start(dataDir);
    const agent = new Agent({ connect: { ca: server.tls.cert } });
    try {
      const token = await server.backend.tokens.addToken(UUID);
      const body = new PassThrough();
      const pending = request(`${server.usersUrl}user-${UUID}/sync-from/dev1`, {
        dispatcher: agent, method: 'POST', body,
        headers: { authorization: encodeTokenAuthorization(UUID, token), 'content-type': CONTENT_TYPE_SYNC_GET },
      });
      const full = encodeSyncGetRequest({ last_known_generation: 0, last_known_trans_id: '', sync_id: 's', ensure: true });
      body.write(full.slice(0, 5));
      await new Promise((r) => setTimeout(r, 200));
      let closed = false;
      const closing = server.close().then(() => {
        closed = true;
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(closed, false, 'close waits for the request in flight');
      const other = new Agent({ connect: { ca: server.tls.cert } });
      await assert.rejects(request(server.usersUrl, { dispatcher: other }));
      await other.close();
      body.end(full.slice(5));
      const res = await pending;
      assert.equal(res.statusCode, 200);
      await res.body.text();
      const t0 = Date.now();
      await closing;
      assert.equal(closed, true);
      assert.ok(Date.now() - t0 < 2000, 'closes soon after the last request, not at the end of the grace period');
    } finally {
      await agent.close();
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('cuts requests that outlive the grace period', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'soledad-tls-'));
    const { server } = await start(dataDir, 300);
    const agent = new Agent({ connect: { ca: server.tls.cert } });
    try {
      const token = await server.backend.tokens.addToken(UUID);
      const body = new PassThrough();
      const pending = request(`${server.usersUrl}user-${UUID}/sync-from/dev1`, {
        dispatcher: agent, method: 'POST', body,
        headers: { authorization: encodeTokenAuthorization(UUID, token), 'content-type': CONTENT_TYPE_SYNC_PUT },
      });
      body.write('[\r\n');
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      await server.close();
      assert.ok(Date.now() - t0 < 5000, 'close is bounded');
      await assert.rejects(pending);
    } finally {
      await agent.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
