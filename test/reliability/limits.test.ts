/**
 * Limits of the server against greedy or slow clients, on a real process: per-request body limits (an oversized
 * body is answered with a 4xx and an error body while it is still being sent), the per-user concurrent sync limit
 * (`max_syncs_per_user`: 503 with an error body, other users unaffected, clients retrying get through), and
 * slowloris (`headers_timeout`, `body_timeout`): slow connections are closed and do not starve anyone, and a
 * stalled upload gives its user database back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent } from 'undici';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { encodeSyncPut } from '../../src/common/protocol/sync-stream.js';
import { snapshot } from '../client/sync/harness.js';
import { Counter, removeDir, tempDir, waitFor, within } from './common.js';
import { account, docDevice, type Account } from './devices.js';
import { agentFor, hasErrorBody, rawExchange, send } from './http.js';
import { startServer, type Server } from './server.js';

const HEADERS_TIMEOUT_MS = 2_000;
const BODY_TIMEOUT_MS = 3_000;
const MAX_SYNCS = 2;
let server: Server;
let agent: Agent;
let dir: string;
const counter = new Counter('limits', 'body limits, per-user syncs, slowloris');
const notes: string[] = [];

before(async () => {
  server = await startServer({
    config: `headers_timeout = ${HEADERS_TIMEOUT_MS}ms\nbody_timeout = ${BODY_TIMEOUT_MS}ms\nmax_syncs_per_user = ${MAX_SYNCS}\n`,
  });
  agent = agentFor(server.certFile, 32);
  dir = tempDir('limits');
});

after(async () => {
  counter.record(notes);
  await agent.close();
  await server.stop();
  removeDir(dir);
});

const auth = (acc: Account): Record<string, string> => ({ authorization: encodeTokenAuthorization(acc.uuid, acc.token) });

/** A body that keeps coming: `total` bytes in 64 KiB chunks. */
async function* endless(total: number, first = ''): AsyncGenerator<Buffer> {
  if (first !== '') yield Buffer.from(first);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  for (let sent = 0; sent < total; sent += chunk.length) yield chunk;
}

describe('per-request body limits', () => {
  it('oversized bodies get a 4xx with an error body while still being sent; the server stays up', async () => {
    const acc = await account((u) => server.mint(u));
    const a = docDevice('lim-a', dir, server.url, server.certFile, acc);
    a.db.createDoc({ x: 1 });
    await a.sync.sync(); // the user database exists: limits, not a missing database, answer below
    await a.close();
    const cases: Array<{ name: string; method: string; path: string; ct: string; size: number; expect: number[] }> = [
      { name: 'record sync info (64 KiB)', method: 'PUT', path: `/user-${acc.uuid}/sync-from/r1`, ct: 'application/json', size: 2 << 20, expect: [400, 413] },
      { name: 'download request (64 KiB)', method: 'POST', path: `/user-${acc.uuid}/sync-from/r1`, ct: 'application/x-soledad-sync-get', size: 2 << 20, expect: [400, 413] },
      { name: 'shared document (1 MiB)', method: 'PUT', path: '/shared/doc/limit-test', ct: 'application/json', size: 20 << 20, expect: [403, 413] },
      { name: 'blob flags (8 MiB)', method: 'POST', path: `/blobs/${acc.uuid}/nope`, ct: 'application/json', size: 20 << 20, expect: [400, 404, 413] },
      { name: '/stream/ download request (8 MiB)', method: 'POST', path: `/stream/${acc.uuid}/?direction=download`, ct: 'application/json', size: 20 << 20, expect: [400, 413] },
      { name: 'blob over the quota (200 MiB)', method: 'PUT', path: `/blobs/${acc.uuid}/huge`, ct: 'application/octet-stream', size: 300 << 20, expect: [413, 507] },
    ];
    for (const c of cases) {
      const t0 = Date.now();
      const headers: Record<string, string> = { ...auth(acc), 'content-type': c.ct };
      if (c.name.startsWith('blob over')) headers['content-length'] = String(c.size);
      // A streamed oversized body: the answer must come while the client is still sending (the connection may
      // then be closed: reading 20 MiB nobody wants is what the limit is there to avoid).
      const lengthHeader = headers['content-length'] !== undefined ? `content-length: ${headers['content-length']}\r\n` : 'transfer-encoding: chunked\r\n';
      const chunked = headers['content-length'] === undefined;
      const res = await rawExchange({
        port: server.httpsPort, ca: readFileSync(server.certFile),
        head: `${c.method} ${c.path} HTTP/1.1\r\nhost: localhost\r\nauthorization: ${headers['authorization']}\r\ncontent-type: ${c.ct}\r\n${lengthHeader}\r\n`,
        body: (async function* () {
          for await (const piece of endless(c.size)) yield chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
        })(),
      });
      const body = res.body.replace(/^[0-9a-f]+\r\n/, '');
      const ms = Date.now() - t0;
      const ok = c.expect.includes(res.status) && /"error"\s*:/.test(body);
      counter.add(ok, `${c.name}: ${res.status} ${body.slice(0, 100)}`);
      notes.push(`${c.name}: ${res.status} in ${ms} ms`);
      assert.ok(ok, `${c.name}: ${res.status} ${res.headers.slice(0, 300)} ${body.slice(0, 200)}`);
    }
    assert.ok(server.alive());
    assert.equal((await send(agent, server.url, { method: 'GET', path: '/' })).status, 200);
  });
});

describe('a body longer than its Content-Length', () => {
  it('the answer reaches the client every time: the extra bytes are drained, not answered with a reset', async () => {
    // What follows the declared body parses as a broken next request; closing on it at once reset the connection
    // and, now and then, destroyed the answer the client had not read yet (seen by the HTTP fuzzer).
    const ca = readFileSync(server.certFile);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const body = randomBytes(4 * 1024 * 1024 + 17);
      const res = await rawExchange({
        port: server.httpsPort, ca, timeoutMs: 15_000,
        head: `DELETE /blobs/${randomBytes(16).toString('hex')}/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n` +
          `content-type: application/octet-stream\r\ncontent-length: ${body.length >> 1}\r\n${i % 2 === 0 ? 'expect: 100-continue\r\n' : ''}\r\n`,
        body: (async function* () { yield body; })(),
      });
      statuses.push(res.status);
      counter.add(res.status === 404 && /"error"\s*:/.test(res.body), `body longer than declared #${i}: ${res.status}`);
    }
    notes.push(`body longer than its Content-Length: ${statuses.filter((x) => x === 404).length}/20 answered`);
    assert.deepEqual(statuses, Array.from({ length: 20 }, () => 404));
    assert.ok(server.alive());
  });
});

describe('per-user concurrent sync limit', () => {
  it(`beyond ${MAX_SYNCS} syncs at once a user gets 503 with an error body; other users are unaffected; retrying clients get through`, async () => {
    const hog = await account((u) => server.mint(u));
    const other = await account((u) => server.mint(u));
    const released: Array<() => void> = [];
    const header = [...encodeSyncPut({ last_known_generation: 0, last_known_trans_id: '', sync_id: 'hog', ensure: true }, [])].join('').slice(0, -3);
    /** An upload that sends its header, then waits to be released before finishing. */
    const slowUpload = (n: number) => agent.request({
      origin: new URL(server.url).origin, path: `/user-${hog.uuid}/sync-from/hog${n}`, method: 'POST',
      headers: { ...auth(hog), 'content-type': 'application/x-soledad-sync-put' },
      body: Readable.from((async function* () {
        yield Buffer.from(header);
        await new Promise<void>((r) => released.push(r));
        yield Buffer.from('\r\n]');
      })()),
    }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    const hogs = [slowUpload(1), slowUpload(2)];
    await waitFor(() => released.length === MAX_SYNCS, 10_000, 'the slow uploads to be in flight');
    await sleep(200);
    const refused = await send(agent, server.url, { method: 'GET', path: `/user-${hog.uuid}/sync-from/third`, headers: auth(hog) });
    assert.equal(refused.status, 503, refused.body);
    assert.ok(hasErrorBody(refused) && /unavailable/.test(refused.body), refused.body);
    counter.add(true);

    // Another user syncs meanwhile.
    const o = docDevice('lim-other', dir, server.url, server.certFile, other);
    o.db.createDoc({ other: true });
    await within(10_000, 'another user\'s sync', o.sync.sync());
    await o.close();
    counter.add(true);

    // A client of the hogging user retries its 503s and gets through once the slots free up.
    const d = docDevice('lim-hog', dir, server.url, server.certFile, hog, randomBytes(32), { retryDelaysMs: [300, 300, 600, 1200, 2400] });
    d.db.createDoc({ mine: true });
    const syncing = d.sync.sync();
    await sleep(500);
    for (const r of released) r();
    const results = await Promise.all(hogs);
    for (const r of results) assert.equal(r.status, 200, r.body);
    await within(20_000, 'the retried sync', syncing);
    await d.close();
    counter.add(true);
    notes.push(`max_syncs_per_user = ${MAX_SYNCS}: third concurrent sync 503 unavailable; other user unaffected; retried client got through`);
  });
});

describe('slowloris', () => {
  function slowConnection(): { socket: TLSSocket; closed: Promise<number> } {
    const t0 = Date.now();
    const socket = tlsConnect({ host: '127.0.0.1', port: server.httpsPort, ca: readFileSync(server.certFile), servername: 'localhost' });
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - t0)));
    socket.once('secureConnect', () => {
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n');
      const drip = setInterval(() => {
        if (socket.destroyed) clearInterval(drip);
        else socket.write('X-Drip: a\r\n');
      }, 300);
      socket.once('close', () => clearInterval(drip));
    });
    return { socket, closed };
  }

  it(`connections dribbling headers are closed after headers_timeout (${HEADERS_TIMEOUT_MS} ms) and starve nobody`, async () => {
    const slow = Array.from({ length: 60 }, () => slowConnection());
    await sleep(300);
    const acc = await account((u) => server.mint(u));
    const a = docDevice('loris-a', dir, server.url, server.certFile, acc);
    for (let i = 0; i < 20; i++) a.db.createDoc({ i });
    const t0 = Date.now();
    await within(10_000, 'a normal sync during the attack', a.sync.sync());
    const syncMs = Date.now() - t0;
    await a.close();
    const lifetimes = await within(HEADERS_TIMEOUT_MS * 4 + 5_000, 'the slow connections to be closed', Promise.all(slow.map((s) => s.closed)));
    const longest = Math.max(...lifetimes);
    counter.add(syncMs < 10_000 && longest < HEADERS_TIMEOUT_MS * 4);
    notes.push(`60 slowloris connections: a normal sync took ${syncMs} ms meanwhile; all closed by the server within ${longest} ms`);
    assert.ok(longest < HEADERS_TIMEOUT_MS * 4, `a slow connection lived ${longest} ms`);
  });

  it(`the Services API closes dribbling and silent connections after headers_timeout too`, async () => {
    const { connect: netConnect } = await import('node:net');
    const conns = Array.from({ length: 10 }, (_, i) => {
      const t0 = Date.now();
      const socket = netConnect(server.servicesPort, '127.0.0.1');
      socket.on('error', () => undefined);
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - t0)));
      socket.once('connect', () => {
        // Half of them say nothing but blank lines (which the HTTP parser skips), half drip headers.
        if (i % 2 === 0) socket.write('\r\n\r\n\r\n');
        else socket.write('PUT /incoming/x/y HTTP/1.1\r\nHost: localhost\r\n');
        const drip = setInterval(() => (socket.destroyed ? clearInterval(drip) : socket.write(i % 2 === 0 ? '\r\n' : 'X-Drip: a\r\n')), 300);
        socket.once('close', () => clearInterval(drip));
      });
      return closed;
    });
    const lifetimes = await within(HEADERS_TIMEOUT_MS * 4 + 5_000, 'the slow services connections to be closed', Promise.all(conns));
    const longest = Math.max(...lifetimes);
    counter.add(longest < HEADERS_TIMEOUT_MS * 4, `services slowloris: longest ${longest} ms`);
    notes.push(`10 slowloris connections on the Services API: all closed within ${longest} ms`);
    assert.ok(longest < HEADERS_TIMEOUT_MS * 4, `a slow services connection lived ${longest} ms`);
  });

  it(`a stalled upload is cut after body_timeout (${BODY_TIMEOUT_MS} ms) and gives the user database back`, async () => {
    const acc = await account((u) => server.mint(u));
    const b = docDevice('stall-b', dir, server.url, server.certFile, acc);
    b.db.createDoc({ first: true });
    await b.sync.sync();
    const header = [...encodeSyncPut({ last_known_generation: 0, last_known_trans_id: '', sync_id: 'stall', ensure: false }, [])].join('').slice(0, -3);
    const t0 = Date.now();
    let stalledEnd = 0;
    const stalled = agent.request({
      origin: new URL(server.url).origin, path: `/user-${acc.uuid}/sync-from/staller`, method: 'POST',
      headers: { ...auth(acc), 'content-type': 'application/x-soledad-sync-put' },
      body: Readable.from((async function* () {
        yield Buffer.from(`${header},\r\n${JSON.stringify({ id: 'stall-doc', rev: 'staller:1', content: null, gen: 1, trans_id: 'T-1', number_of_docs: 2, doc_idx: 1 })},\r\n`);
        await sleep(60_000, undefined, { ref: false }); // never finishes on its own
      })()),
    }).then((r) => r.statusCode, () => 0).finally(() => {
      stalledEnd = Date.now() - t0;
    });
    await sleep(300);
    // Another device of the same user writes meanwhile: it must not wait for the stalled upload forever.
    b.db.createDoc({ second: true });
    const t1 = Date.now();
    await within(BODY_TIMEOUT_MS * 3 + 10_000, 'a sync behind a stalled upload', b.sync.sync());
    const waited = Date.now() - t1;
    await within(BODY_TIMEOUT_MS * 3 + 10_000, 'the stalled upload to be cut', stalled);
    const c = docDevice('stall-c', dir, server.url, server.certFile, acc);
    await c.sync.sync();
    assert.deepEqual(snapshot(c.db), snapshot(b.db), 'nothing of the stalled upload was stored');
    await b.close();
    await c.close();
    counter.add(stalledEnd < BODY_TIMEOUT_MS * 3 + 5_000);
    notes.push(`stalled upload closed by the server after ${stalledEnd} ms; a sync of the same user waited ${waited} ms`);
    assert.ok(stalledEnd < BODY_TIMEOUT_MS * 3 + 5_000, `the stalled upload lived ${stalledEnd} ms`);
  });
});
