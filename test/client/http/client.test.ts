/**
 * The HTTP client against a small TLS server whose behaviour each test scripts (503s, hangs, error bodies, cut
 * connections): the conditions the real Soledad server cannot be asked to produce on demand. The real server is
 * exercised by test/client/sync/*.test.ts and test/client/http/shared-db.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ConnectionError,
  DatabaseDoesNotExistError,
  HttpError,
  InvalidAuthTokenError,
  RevisionConflictError,
  UnavailableError,
  UserQuotaExceededError,
} from '../../../src/common/errors.js';
import { authorizationHeader, HttpClient } from '../../../src/client/http/client.js';
import { testCert, type TestCert } from './tls-fixture.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

const UUID = '0123456789abcdef0123456789abcdef';
const TOKEN = 'sup3r-s3cret-t0ken-value';

let cert: TestCert;
let server: Server;
let url: string;
let handler: Handler = (_req, res) => res.end();
const requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }> = [];

before(async () => {
  cert = await testCert();
  server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function client(extra: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): HttpClient {
  return new HttpClient({ serverUrl: url, certFile: cert.certFile, uuid: UUID, token: TOKEN, ...extra });
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value) + '\r\n');
}

function assertNoSecret(err: unknown): void {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    assert.ok(!e.message.includes(TOKEN), 'token leaked into an error message');
    assert.ok(!e.message.includes(Buffer.from(`${UUID}:${TOKEN}`).toString('base64')), 'auth header leaked');
    assert.ok(!String(e.stack).includes(TOKEN));
    e = e.cause;
  }
}

describe('HttpClient', () => {
  it('sends Token auth and parses JSON; anonymous requests carry no Authorization', async () => {
    handler = (_req, res) => json(res, 200, { ok: true });
    const http = client();
    requests.length = 0;
    assert.deepEqual(await http.json({ method: 'GET', path: '/x', query: { a: 'b c', skip: undefined } }), { ok: true });
    assert.equal(requests[0]!.headers.authorization, authorizationHeader({ uuid: UUID, token: TOKEN }));
    assert.equal(requests[0]!.headers.authorization, `Token ${Buffer.from(`${UUID}:${TOKEN}`).toString('base64')}`);
    assert.equal(requests[0]!.url, '/x?a=b+c');
    await http.json({ method: 'GET', path: '/', anonymous: true });
    assert.equal(requests[1]!.headers.authorization, undefined);
    await http.close();
  });

  it('keeps a path prefix of the server URL', async () => {
    handler = (_req, res) => json(res, 200, {});
    const http = new HttpClient({ serverUrl: `${url}prefix/`, certFile: cert.certFile });
    requests.length = 0;
    await http.json({ method: 'GET', path: '/shared/doc/a' });
    assert.equal(requests[0]!.url, '/prefix/shared/doc/a');
    await http.close();
  });

  it('streams an async-iterable request body and a response body', async () => {
    handler = (req, res, body) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(`te=${req.headers['transfer-encoding'] ?? ''};`);
      res.write(body);
      res.end();
    };
    const http = client();
    let sent = 0;
    async function* gen() {
      yield 'hello ';
      yield Buffer.from('streamed ');
      yield '';
      yield 'world';
    }
    const res = await http.request({ method: 'POST', path: '/s', body: gen(), onBodyChunk: (n) => { sent += n; } });
    const parts: Buffer[] = [];
    for await (const c of res.body) parts.push(c);
    assert.equal(Buffer.concat(parts).toString(), 'te=chunked;hello streamed world');
    assert.equal(sent, 'hello streamed world'.length);
    await http.close();
  });

  it('a long streamed body of text and byte pieces (not all ASCII) arrives byte for byte, counted once', async () => {
    let received: Buffer | null = null;
    handler = (_req, res, body) => {
      received = body;
      res.writeHead(200);
      res.end();
    };
    const http = client();
    const pieces: Array<string | Uint8Array> = [];
    for (let i = 0; i < 400; i++) {
      pieces.push(i % 7 === 0 ? new Uint8Array(Buffer.from(`<bytes ${i} ✓>`)) : `${'x'.repeat(i * 13 % 900)}é${i}ü`);
      if (i % 50 === 0) pieces.push('');
    }
    const expected = Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
    async function* gen() { yield* pieces; }
    let sent = 0;
    await (await http.request({ method: 'POST', path: '/s', body: gen(), onBodyChunk: (n) => { sent += n; } })).dump();
    assert.ok(received !== null && expected.equals(received), 'same bytes');
    assert.equal(sent, expected.length);
    await http.close();
  });

  it('sends back-to-back requests over one connection (one TLS handshake per client, as a sync does)', async () => {
    handler = (_req, res) => json(res, 200, { ok: true });
    let handshakes = 0;
    const count = (): void => { handshakes += 1; };
    server.on('secureConnection', count);
    const http = client();
    try {
      // Each request is sent the moment the previous answer has been read, as the synchronizer's steps are.
      await http.json({ method: 'GET', path: '/info' });
      await (await http.request({ method: 'POST', path: '/up', body: () => ['a', 'b'] })).text();
      const res = await http.request({ method: 'POST', path: '/down', body: 'x' });
      for await (const chunk of res.body) assert.ok(chunk.length > 0);
      await http.json({ method: 'PUT', path: '/record' });
      assert.equal(handshakes, 1);
    } finally {
      server.off('secureConnection', count);
      await http.close();
    }
  });

  it('revives catalogued errors from {"error": wire} bodies', async () => {
    const http = client();
    const cases: Array<[number, string, new (...a: never[]) => Error]> = [
      [409, 'revision conflict', RevisionConflictError],
      [404, 'database does not exist', DatabaseDoesNotExistError],
      [403, 'user quota exceeded', UserQuotaExceededError],
    ];
    for (const [status, wire, cls] of cases) {
      handler = (_req, res) => json(res, status, { error: wire });
      await assert.rejects(http.request({ method: 'GET', path: '/e' }), cls);
    }
    handler = (_req, res) => { res.writeHead(418); res.end('teapot'); };
    await assert.rejects(http.request({ method: 'GET', path: '/e' }), (err: unknown) => {
      assert.ok(err instanceof HttpError);
      assert.equal((err as unknown as { httpStatus: number }).httpStatus, 418);
      return true;
    });
    // acceptStatus hands the response back instead.
    handler = (_req, res) => json(res, 404, { error: 'document does not exist' });
    const res = await http.request({ method: 'GET', path: '/e', acceptStatus: [404] });
    assert.equal(res.status, 404);
    await res.dump();
    await http.close();
  });

  it('maps every 401 to InvalidAuthTokenError without leaking the token', async () => {
    const http = client();
    for (const body of [{ error: 'unauthorized' }, { error: 'something else' }, 'not json']) {
      handler = (_req, res) => { res.writeHead(401); res.end(typeof body === 'string' ? body : JSON.stringify(body)); };
      await assert.rejects(http.request({ method: 'GET', path: '/a' }), (err: unknown) => {
        assert.ok(err instanceof InvalidAuthTokenError);
        assertNoSecret(err);
        return true;
      });
    }
    await http.close();
  });

  it('retries a 503 with the configured delays, then succeeds', async () => {
    let n = 0;
    handler = (_req, res) => (++n <= 2 ? json(res, 503, { error: 'unavailable' }) : json(res, 200, { n }));
    const delays: number[] = [];
    const http = client({ sleep: async (ms) => { delays.push(ms); } });
    assert.deepEqual(await http.json({ method: 'PUT', path: '/r', body: '{}' }), { n: 3 });
    assert.deepEqual(delays, [1000, 1000]);
    await http.close();
  });

  it('gives up after 1, 1, 2, 4, 0 s with UnavailableError', async () => {
    let n = 0;
    handler = (_req, res) => { n += 1; json(res, 503, { error: 'unavailable' }); };
    const delays: number[] = [];
    const http = client({ sleep: async (ms) => { delays.push(ms); } });
    await assert.rejects(http.request({ method: 'GET', path: '/r' }), UnavailableError);
    assert.deepEqual(delays, [1000, 1000, 2000, 4000, 0]);
    assert.equal(n, 6);
    await http.close();
  });

  it('retries a body factory but never a one-shot stream', async () => {
    let n = 0;
    handler = (_req, res, body) => (++n === 1 ? json(res, 503, { error: 'unavailable' }) : json(res, 200, { got: body.toString() }));
    const http = client({ sleep: async () => undefined });
    async function* once() { yield 'abc'; }
    assert.deepEqual(await http.json({ method: 'POST', path: '/f', body: () => once() }), { got: 'abc' });
    n = 0;
    await assert.rejects(http.request({ method: 'POST', path: '/f', body: once() }), UnavailableError);
    assert.equal(n, 1);
    await http.close();
  });

  it('a failing body producer rejects with its own error, not a ConnectionError', async () => {
    handler = (_req, res) => json(res, 200, {});
    const http = client();
    class Boom extends Error {}
    async function* failing() {
      yield 'start';
      throw new Boom('producer failed');
    }
    await assert.rejects(http.request({ method: 'POST', path: '/b', body: failing() }), Boom);
    await http.close();
  });

  it('turns refused connections into ConnectionError with a cause', async () => {
    const probe = createServer({ key: cert.key, cert: cert.cert });
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const http = new HttpClient({ serverUrl: `https://127.0.0.1:${port}/`, certFile: cert.certFile, uuid: UUID, token: TOKEN });
    await assert.rejects(http.request({ method: 'GET', path: '/' }), (err: unknown) => {
      assert.ok(err instanceof ConnectionError);
      assert.ok(err.cause !== undefined);
      assertNoSecret(err);
      return true;
    });
    await http.close();
  });

  it('refuses a server whose certificate is not trusted', async () => {
    handler = (_req, res) => json(res, 200, {});
    const http = new HttpClient({ serverUrl: url, uuid: UUID, token: TOKEN });
    await assert.rejects(http.request({ method: 'GET', path: '/' }), ConnectionError);
    await http.close();
  });

  it('times out waiting for headers and for a stalled body', async () => {
    handler = () => undefined; // never answers
    const http = client({ headersTimeoutMs: 200 });
    await assert.rejects(http.request({ method: 'GET', path: '/slow' }), ConnectionError);
    await http.close();

    handler = (_req, res) => { res.writeHead(200); res.write('partial'); }; // stalls mid-body
    const http2 = client({ bodyTimeoutMs: 200 });
    const res = await http2.request({ method: 'GET', path: '/stall' });
    await assert.rejects(res.text(), ConnectionError);
    await http2.close();
  });

  it('reports a connection cut mid-response as ConnectionError from text()', async () => {
    handler = (req, res) => { res.writeHead(200); res.write('some'); setTimeout(() => req.socket.destroy(), 20); };
    const http = client();
    const res = await http.request({ method: 'GET', path: '/cut' });
    await assert.rejects(res.text(), ConnectionError);
    await http.close();
  });

  it('refuses requests after close()', async () => {
    const http = client();
    await http.close();
    await http.close();
    await assert.rejects(http.request({ method: 'GET', path: '/' }), ConnectionError);
  });
});
