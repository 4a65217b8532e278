/** Every status code of the blob routes (fact sheet §5b with deviations 2 and 7), in process with `inject()`. */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { b64u, makeBlobApp } from './helpers.js';
import type { BlobApp } from './helpers.js';

const U = 'user-0123abcd';

function payload(n: number, seed = 1): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) % 256));
}

describe('blob routes', () => {
  let t: BlobApp;
  const put = (id: string, body: Buffer | string, query = '') =>
    t.app.inject({ method: 'PUT', url: `/blobs/${U}/${id}${query}`, payload: body });
  const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

  before(async () => {
    t = await makeBlobApp({ quotaBytes: 100_000 });
  });
  after(async () => t.close());

  it('PUT 200 then GET 200 with Content-Length and Tag', async () => {
    const data = payload(5000);
    const r = await put('blob-a', data);
    assert.equal(r.statusCode, 200);
    assert.equal(r.body, '');
    const g = await get(`/blobs/${U}/blob-a`);
    assert.equal(g.statusCode, 200);
    assert.equal(g.headers['content-length'], '5000');
    assert.equal(g.headers.tag, b64u(data.subarray(-16)));
    assert.deepEqual(g.rawPayload, data);
  });

  it('PUT of an existing id → 409 with an error body; the content stays', async () => {
    await put('dup', 'one');
    const r = await put('dup', 'two');
    assert.equal(r.statusCode, 409);
    assert.deepEqual(r.json(), { error: 'blob already exists', message: 'Blob already exists: dup' });
    assert.equal((await get(`/blobs/${U}/dup`)).body, 'one');
  });

  it('PUT takes any content-type and chunked bodies', async () => {
    const a = await t.app.inject({
      method: 'PUT', url: `/blobs/${U}/typed`, payload: '{"not": "parsed"}', headers: { 'content-type': 'application/json' },
    });
    assert.equal(a.statusCode, 200);
    assert.equal((await get(`/blobs/${U}/typed`)).body, '{"not": "parsed"}');
    const b = await t.app.inject({ method: 'PUT', url: `/blobs/${U}/chunky`, payload: Readable.from([Buffer.from('ab'), Buffer.from('cd')]),
      headers: { 'transfer-encoding': 'chunked' } });
    assert.equal(b.statusCode, 200);
    assert.equal((await get(`/blobs/${U}/chunky`)).body, 'abcd');
  });

  it('GET of a missing blob → 404; ?only_flags of a missing blob → 404', async () => {
    const r = await get(`/blobs/${U}/missing`);
    assert.equal(r.statusCode, 404);
    assert.deepEqual(r.json(), { error: 'blob not found', message: "Blob doesn't exist: missing" });
    assert.equal((await get(`/blobs/${U}/missing?only_flags=true`)).statusCode, 404);
  });

  it('Range → 206 with content-range and the [s, e) bytes', async () => {
    const data = payload(1000, 7);
    await put('ranged', data);
    const r = await get(`/blobs/${U}/ranged`, { range: 'bytes=100-350' });
    assert.equal(r.statusCode, 206);
    assert.equal(r.headers['content-range'], 'bytes 100-350/1000');
    assert.equal(r.headers['content-length'], '250');
    assert.deepEqual(r.rawPayload, data.subarray(100, 350));
    assert.equal(r.headers.tag, b64u(data.subarray(-16)));
    const whole = await get(`/blobs/${U}/ranged`, { range: 'bytes=0-1000' });
    assert.equal(whole.statusCode, 206);
    assert.deepEqual(whole.rawPayload, data);
  });

  it('unsatisfiable Range → 416 with content-range bytes */size', async () => {
    await put('r416', payload(100));
    for (const range of ['items=0-10', 'bytes=10-', 'bytes=-10', 'bytes=50-20', 'bytes=0-101', 'bytes=a-b', 'bytes=5-5']) {
      const r = await get(`/blobs/${U}/r416`, { range });
      assert.equal(r.statusCode, 416, range);
      assert.equal(r.headers['content-range'], 'bytes */100', range);
      assert.equal(r.json().error, 'range not satisfiable');
    }
  });

  it('flags: POST replaces (200), ?only_flags reads, bad flag 406, missing blob 404, bad body 400', async () => {
    await put('flagged', 'x');
    assert.equal((await get(`/blobs/${U}/flagged?only_flags=1`)).body, '[]');
    const p = (id: string, body: string) => t.app.inject({ method: 'POST', url: `/blobs/${U}/${id}`, payload: body });
    assert.equal((await p('flagged', '["PENDING", "PROCESSING"]')).statusCode, 200);
    const f = await get(`/blobs/${U}/flagged?only_flags=yes`);
    assert.equal(f.statusCode, 200);
    assert.equal(f.body, '["PENDING", "PROCESSING"]');
    assert.equal((await p('flagged', '["PROCESSED"]')).statusCode, 200);
    assert.deepEqual(JSON.parse((await get(`/blobs/${U}/flagged?only_flags=True`)).body), ['PROCESSED']);
    const bad = await p('flagged', '["PENDING", "DONE"]');
    assert.equal(bad.statusCode, 406);
    assert.deepEqual(bad.json(), { error: 'invalid flag', message: 'Invalid flag: DONE' });
    assert.deepEqual(JSON.parse((await get(`/blobs/${U}/flagged?only_flags=1`)).body), ['PROCESSED']);
    assert.equal((await p('nobody', '["PENDING"]')).statusCode, 404);
    for (const body of ['not json', '{"a": 1}', '[1, 2]', '']) {
      const r = await p('flagged', body);
      assert.equal(r.statusCode, 400, body);
      assert.equal(r.json().error, 'bad request');
    }
    // only_flags=false reads the blob itself
    assert.equal((await get(`/blobs/${U}/flagged?only_flags=false`)).body, 'x');
  });

  it('DELETE → 200 and a deletion marker; again → 404', async () => {
    await put('doomed', 'bye');
    const d = await t.app.inject({ method: 'DELETE', url: `/blobs/${U}/doomed` });
    assert.equal(d.statusCode, 200);
    assert.equal((await get(`/blobs/${U}/doomed`)).statusCode, 404);
    assert.equal((await t.app.inject({ method: 'DELETE', url: `/blobs/${U}/doomed` })).statusCode, 404);
    assert.ok(JSON.parse((await get(`/blobs/${U}/?deleted=true`)).body).includes('doomed'));
    assert.ok(!JSON.parse((await get(`/blobs/${U}/`)).body).includes('doomed'));
  });

  it('400 for a bad boolean or a bad order_by (deviation 2)', async () => {
    for (const q of ['deleted=maybe', 'only_count=2', 'order_by=size', 'order_by=date%20desc', 'order_by=--date']) {
      const r = await get(`/blobs/${U}/?${q}`);
      assert.equal(r.statusCode, 400, q);
      assert.equal(r.json().error, 'bad request');
    }
    assert.equal((await get(`/blobs/${U}/flagged?only_flags=perhaps`)).statusCode, 400);
  });

  it('400 for ids, namespaces and users outside [a-zA-Z0-9_-], never a file outside the store', async () => {
    const before = await readdir(t.sandbox, { recursive: true });
    const attempts: Array<[string, string]> = [
      ['PUT', `/blobs/${U}/..%2F..%2Fescaped`],
      ['PUT', `/blobs/${U}/a%2Fb`],
      ['PUT', `/blobs/${U}/a.b`],
      ['PUT', `/blobs/${U}/ok?namespace=..%2F..%2Fx`],
      ['PUT', `/blobs/${U}/ok?namespace=..`],
      ['PUT', `/blobs/..%2F..%2Fescaped/x`],
      ['GET', `/blobs/${U}/..%2F..%2F..%2Fetc%2Fpasswd`],
      ['GET', `/blobs/${U}/?namespace=..%2F`],
      ['GET', `/blobs/..%2F/`],
      ['POST', `/blobs/${U}/..%2Fx`],
      ['DELETE', `/blobs/${U}/..%2Fx`],
      ['GET', `/quota/..%2F..`],
    ];
    for (const [method, url] of attempts) {
      const r = await t.app.inject(method === 'PUT' || method === 'POST'
        ? { method, url, payload: 'x' }
        : { method: method as 'GET' | 'DELETE', url });
      assert.equal(r.statusCode, 400, `${method} ${url}`);
    }
    // Unencoded dot segments never reach a handler with a `..` param.
    for (const url of [`/blobs/${U}/../../escaped`, `/blobs/${U}/./x/../../y`, `/blobs/${U}/%2e%2e`, `/blobs/${U}/%2E%2E/%2e%2e/x`, `/blobs/%2e%2e/x`]) {
      const r = await t.app.inject({ method: 'PUT', url, payload: 'x' });
      assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${url} → ${r.statusCode}`);
    }
    assert.deepEqual(await readdir(t.sandbox, { recursive: true }), before);
  });

  it('PUT over quota → 507, nothing stored; GET /quota reports usage and limit', async () => {
    const q0 = (await get(`/quota/${U}`)).json() as { used: number; limit: number };
    assert.equal(q0.limit, 100_000);
    const room = q0.limit - q0.used;
    const r = await put('too-big', Buffer.alloc(room + 1));
    assert.equal(r.statusCode, 507);
    assert.deepEqual(r.json(), { error: 'quota exceeded', message: 'Quota Exceeded!' });
    assert.equal((await get(`/blobs/${U}/too-big`)).statusCode, 404);
    // Chunked (no Content-Length): refused as soon as it passes the limit.
    const chunked = await t.app.inject({
      method: 'PUT', url: `/blobs/${U}/too-big`, payload: Readable.from([Buffer.alloc(room), Buffer.alloc(10)]),
      headers: { 'transfer-encoding': 'chunked' },
    });
    assert.equal(chunked.statusCode, 507);
    assert.equal((await get(`/blobs/${U}/too-big`)).statusCode, 404);
    assert.deepEqual((await get(`/quota/${U}`)).json(), q0);
    // Exactly filling the quota is allowed.
    assert.equal((await put('fits', Buffer.alloc(room))).statusCode, 200);
    assert.deepEqual((await get(`/quota/${U}`)).json(), { used: q0.limit, limit: q0.limit });
    await t.app.inject({ method: 'DELETE', url: `/blobs/${U}/fits` });
    assert.deepEqual((await get(`/quota/${U}`)).json(), q0);
  });
});

describe('blob listing', () => {
  let t: BlobApp;
  const list = async (query: string): Promise<unknown> => {
    const r = await t.app.inject({ method: 'GET', url: `/blobs/${U}/${query}` });
    assert.equal(r.statusCode, 200, `${query}: ${r.body}`);
    return JSON.parse(r.body);
  };

  before(async () => {
    t = await makeBlobApp();
    for (const id of ['m2', 'm1', 'm3']) {
      assert.equal((await t.app.inject({ method: 'PUT', url: `/blobs/${U}/${id}?namespace=MX`, payload: id })).statusCode, 200);
      await sleep(15);
    }
    await t.app.inject({ method: 'PUT', url: `/blobs/${U}/d1`, payload: 'default ns' });
    await t.app.inject({ method: 'POST', url: `/blobs/${U}/m1?namespace=MX`, payload: '["PENDING"]' });
    await t.app.inject({ method: 'POST', url: `/blobs/${U}/m3?namespace=MX`, payload: '["PENDING"]' });
    await t.app.inject({ method: 'PUT', url: `/blobs/${U}/gone?namespace=MX`, payload: 'x' });
    await t.app.inject({ method: 'DELETE', url: `/blobs/${U}/gone?namespace=MX` });
  });
  after(async () => t.close());

  it('lists per namespace (default when absent or empty)', async () => {
    assert.deepEqual(await list(''), ['d1']);
    assert.deepEqual(await list('?namespace='), ['d1']);
    assert.deepEqual(await list('?namespace=default'), ['d1']);
    assert.deepEqual((await list('?namespace=MX') as string[]).sort(), ['m1', 'm2', 'm3']);
    assert.deepEqual(await list('?namespace=nothing'), []);
  });

  it('orders by date: date, +date (escaped or not), -date', async () => {
    assert.deepEqual(await list('?namespace=MX&order_by=date'), ['m2', 'm1', 'm3']);
    assert.deepEqual(await list('?namespace=MX&order_by=%2Bdate'), ['m2', 'm1', 'm3']);
    assert.deepEqual(await list('?namespace=MX&order_by=+date'), ['m2', 'm1', 'm3']);
    assert.deepEqual(await list('?namespace=MX&order_by=-date'), ['m3', 'm1', 'm2']);
  });

  it('filters by flag', async () => {
    assert.deepEqual(await list('?namespace=MX&filter_flag=PENDING&order_by=-date'), ['m3', 'm1']);
    assert.deepEqual(await list('?namespace=MX&filter_flag=FAILED'), []);
    assert.deepEqual(await list('?namespace=MX&filter_flag='), ['m1', 'm2', 'm3']);
  });

  it('lists deleted ids with deleted=true|1|yes, live ones with false|0|no|""', async () => {
    for (const v of ['true', 'True', '1', 'yes']) assert.deepEqual(await list(`?namespace=MX&deleted=${v}`), ['gone']);
    for (const v of ['false', 'False', '0', 'no', '']) {
      assert.deepEqual((await list(`?namespace=MX&deleted=${v}`) as string[]).sort(), ['m1', 'm2', 'm3']);
    }
  });

  it('only_count → {"count": n}, deletion markers included (as the original)', async () => {
    const r = await t.app.inject({ method: 'GET', url: `/blobs/${U}/?namespace=MX&only_count=True` });
    assert.equal(r.body, '{"count": 4}');
    assert.deepEqual(await list('?namespace=MX&only_count=1&filter_flag=PENDING'), { count: 2 });
    assert.deepEqual(await list('?namespace=MX&only_count=yes&deleted=1'), { count: 1 });
    assert.deepEqual(await list('?only_count=1'), { count: 1 });
    assert.equal((await list('?namespace=MX&only_count=false') as string[]).length, 3);
  });
});
