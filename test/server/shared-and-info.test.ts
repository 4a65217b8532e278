import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BlobsService } from '../../src/server/app.js';
import { SERVER_VERSION } from '../../src/server/version.js';
import { errorOf, makeServer, type TestServer } from './helpers.js';

describe('GET / and /robots.txt', () => {
  it('reports blobs only when the blobs service is present and enabled', async () => {
    const without = await makeServer();
    const blobs: BlobsService = { register: () => undefined, usageBytes: async () => 0 };
    const withBlobs = await makeServer({ blobs });
    try {
      let res = await without.app.inject({ method: 'GET', url: '/' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.body, JSON.stringify({ blobs: false, version: SERVER_VERSION }));
      assert.match(String(res.headers['content-type']), /^application\/json/);
      res = await withBlobs.app.inject({ method: 'GET', url: '/' });
      assert.deepEqual(JSON.parse(res.body), { blobs: true, version: SERVER_VERSION });
      assert.ok(!res.body.endsWith('\n'), 'no trailing newline, as the original');
      res = await without.app.inject({ method: 'GET', url: '/robots.txt' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.body, 'User-agent: *\nDisallow: /\n');
      assert.match(SERVER_VERSION, /^\d+\.\d+\.\d+/);
    } finally {
      await without.close();
      await withBlobs.close();
    }
  });
});

describe('shared database /shared/doc/<id> (§4c)', () => {
  let s: TestServer;
  before(async () => {
    s = await makeServer();
  });
  after(() => s.close());
  const json = { 'content-type': 'application/json' };

  it('GET /shared answers {}', async () => {
    const res = await s.app.inject({ method: 'GET', url: '/shared', headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, '{}\r\n');
  });

  it('creates (201), reads, updates (200), conflicts (409), deletes and 404s', async () => {
    const id = 'a'.repeat(64);
    const url = `/shared/doc/${id}`;
    let res = await s.app.inject({ method: 'GET', url, headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, '{"error":"document does not exist","message":"Document does not exist"}\r\n');
    assert.equal(res.headers['x-u1db-rev'], '');

    const content = '{"version": 2, "secrets": "abc\\n"}';
    res = await s.app.inject({ method: 'PUT', url, payload: content, headers: { ...json, authorization: s.auth.alice } });
    assert.equal(res.statusCode, 201);
    const rev1 = (JSON.parse(res.body) as { rev: string }).rev;
    assert.ok(res.body.endsWith('\r\n'));

    // Any valid token reads by id: the content comes back byte for byte.
    res = await s.app.inject({ method: 'GET', url, headers: { authorization: s.auth.bob } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, content);
    assert.equal(res.headers['x-u1db-rev'], rev1);
    assert.equal(res.headers['x-u1db-has-conflicts'], 'false');

    // Creating again without old_rev is a conflict; so is a stale old_rev.
    res = await s.app.inject({ method: 'PUT', url, payload: '{}', headers: { ...json, authorization: s.auth.alice } });
    assert.equal(res.statusCode, 409);
    assert.equal(errorOf(res.body), 'revision conflict');
    res = await s.app.inject({ method: 'PUT', url: `${url}?old_rev=x:1`, payload: '{}', headers: { ...json, authorization: s.auth.alice } });
    assert.equal(res.statusCode, 409);

    res = await s.app.inject({ method: 'PUT', url: `${url}?old_rev=${encodeURIComponent(rev1)}`, payload: '{"v":2}', headers: { ...json, authorization: s.auth.bob } });
    assert.equal(res.statusCode, 200);
    const rev2 = (JSON.parse(res.body) as { rev: string }).rev;
    assert.notEqual(rev2, rev1);

    res = await s.app.inject({ method: 'DELETE', url: `${url}?old_rev=${encodeURIComponent(rev1)}`, headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 409);
    res = await s.app.inject({ method: 'DELETE', url: `${url}?old_rev=${encodeURIComponent(rev2)}`, headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 200);
    const rev3 = (JSON.parse(res.body) as { rev: string }).rev;

    res = await s.app.inject({ method: 'GET', url, headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 404);
    assert.equal(errorOf(res.body), 'document deleted');
    assert.equal(res.headers['x-u1db-rev'], rev3);
    res = await s.app.inject({ method: 'DELETE', url: `${url}?old_rev=${encodeURIComponent(rev3)}`, headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 404);
    assert.equal(errorOf(res.body), 'document already deleted');
    res = await s.app.inject({ method: 'DELETE', url: '/shared/doc/never', headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 404);
    assert.equal(errorOf(res.body), 'document does not exist');
  });

  it('rejects bad ids, bodies, content types and query arguments with 4xx', async () => {
    const auth = { authorization: s.auth.alice };
    const cases: Array<[string, string, Record<string, string>, string | undefined, number, string]> = [
      ['PUT', '/shared/doc/bad%20id', json, '{}', 400, 'invalid document id'],
      ['GET', '/shared/doc/a%2Fb', {}, undefined, 400, 'invalid document id'],
      ['PUT', '/shared/doc/x1', json, 'not json', 400, 'invalid json'],
      ['PUT', '/shared/doc/x1', json, '[1,2]', 400, 'invalid json'],
      ['PUT', '/shared/doc/x1', { 'content-type': 'text/plain' }, '{}', 400, 'bad request'],
      ['PUT', '/shared/doc/x1', {}, '{}', 400, 'bad request'],
      ['PUT', '/shared/doc/x1?foo=1', json, '{}', 400, 'bad request'],
      ['PUT', '/shared/doc/x1?old_rev=a&old_rev=b', json, '{}', 400, 'bad request'],
      ['PUT', '/shared/doc/x1', json, JSON.stringify({ a: 'x'.repeat(2 * 1024 * 1024) }), 403, 'document too big'],
      ['GET', '/shared?x=1', {}, undefined, 400, 'bad request'],
    ];
    for (const [method, url, headers, payload, status, error] of cases) {
      const res = await s.app.inject({ method: method as 'PUT', url, headers: { ...headers, ...auth }, ...(payload === undefined ? {} : { payload }) });
      assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
      assert.equal(errorOf(res.body), error, `${method} ${url}`);
    }
    assert.equal(await s.backend.shared.getDoc('x1'), null);
  });
});
