import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  CONTENT_TYPE_SYNC_GET,
  CONTENT_TYPE_SYNC_PUT,
  encodeRecordSyncInfo,
  encodeSyncGetRequest,
  encodeSyncPut,
  parseSyncInfo,
  parseSyncPutResponse,
  SyncGetResponseParser,
  type SyncGetEntry,
  type SyncGetItem,
  type SyncGetMeta,
  type SyncHeader,
  type SyncPutEntry,
} from '../../src/common/protocol/sync-stream.js';
import { buildUsersApp } from '../../src/server/app.js';
import type { StoredDoc } from '../../src/server/backends/types.js';
import { ALICE, errorOf, makeServer, type TestServer } from './helpers.js';

const DB = `user-${ALICE}`;
const URL_A = `/user-${ALICE}/sync-from/replicaA`;
const URL_B = `/user-${ALICE}/sync-from/replicaB`;

function header(over: Partial<SyncHeader> = {}): SyncHeader {
  return { last_known_generation: 0, last_known_trans_id: '', sync_id: 'sync-1', ensure: false, ...over };
}

function entries(docs: Array<Pick<SyncPutEntry, 'id' | 'rev' | 'content' | 'gen'> & { trans_id?: string }>): SyncPutEntry[] {
  return docs.map((d, i) => ({ trans_id: `T-src${d.gen}`, ...d, number_of_docs: docs.length, doc_idx: i + 1 }));
}

async function upload(s: TestServer, url: string, h: SyncHeader, es: SyncPutEntry[]) {
  return s.app.inject({
    method: 'POST', url, payload: [...encodeSyncPut(h, es)].join(''),
    headers: { authorization: s.auth.alice, 'content-type': CONTENT_TYPE_SYNC_PUT },
  });
}

async function download(s: TestServer, url: string, h: SyncHeader): Promise<{ status: number; body: string; meta?: SyncGetMeta; docs: SyncGetEntry[] }> {
  const res = await s.app.inject({
    method: 'POST', url, payload: encodeSyncGetRequest(h),
    headers: { authorization: s.auth.alice, 'content-type': CONTENT_TYPE_SYNC_GET },
  });
  if (res.statusCode !== 200) return { status: res.statusCode, body: res.body, docs: [] };
  assert.equal(res.headers['content-type'], 'application/x-u1db-sync-response');
  const p = new SyncGetResponseParser();
  const items: SyncGetItem[] = [...p.push(res.rawPayload), ...p.end()];
  const meta = items[0]?.type === 'meta' ? items[0].meta : undefined;
  const docs = items.flatMap((i) => (i.type === 'doc' ? [i.entry] : []));
  return { status: 200, body: res.body, ...(meta === undefined ? {} : { meta }), docs };
}

async function generation(s: TestServer): Promise<number> {
  return (await s.backend.documents.whatsChanged(DB, 0)).generation;
}

async function stored(s: TestServer, ids: string[]): Promise<StoredDoc[]> {
  const out: StoredDoc[] = [];
  for await (const d of s.backend.documents.getDocs(DB, ids)) out.push(d);
  return out;
}

describe('sync (§1a–1d)', () => {
  let s: TestServer;
  before(async () => {
    s = await makeServer();
  });
  after(() => s.close());

  it('404 database does not exist before ensure, for GET, PUT and both POSTs', async () => {
    let res = await s.app.inject({ method: 'GET', url: URL_A, headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, '{"error":"database does not exist","message":"Database does not exist"}\r\n');
    res = await s.app.inject({ method: 'PUT', url: URL_A, payload: encodeRecordSyncInfo({ generation: 1, transaction_id: 'T' }), headers: { authorization: s.auth.alice, 'content-type': 'application/json' } });
    assert.equal(res.statusCode, 404);
    res = await upload(s, URL_A, header(), entries([{ id: 'D-1', rev: 'a:1', content: '{}', gen: 1 }]));
    assert.equal(res.statusCode, 404);
    assert.equal((await download(s, URL_A, header())).status, 404);
    assert.equal(await s.backend.documents.databaseExists(DB), false);
  });

  it('ensure creates the database in-process and the answer carries the replica uid', async () => {
    const res = await upload(s, URL_A, header({ ensure: true }), entries([
      { id: 'D-1', rev: 'replicaA:1', content: '{"raw": "one"}', gen: 1 },
      { id: 'D-2', rev: 'replicaA:1', content: null, gen: 2 },
    ]));
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['content-type'], 'application/x-soledad-sync-response');
    const { replicaUid } = await s.backend.documents.getSyncInfo(DB, 'x');
    const changes = await s.backend.documents.whatsChanged(DB, 0);
    // Both documents were stored as sent into an empty database: the download of this sync would send nothing.
    assert.equal(res.body, `[\r\n{"new_generation":2,"new_transaction_id":"${changes.transactionId}","replica_uid":"${replicaUid}","nothing_to_download":true}\r\n]\r\n`);
  });

  it('GET returns sync info with the source generation recorded during the upload', async () => {
    const res = await s.app.inject({ method: 'GET', url: URL_A, headers: { authorization: s.auth.alice } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.ok(res.body.endsWith('}\r\n'));
    const info = parseSyncInfo(res.body);
    assert.equal(info.target_replica_generation, 2);
    assert.equal(info.source_replica_uid, 'replicaA');
    assert.equal(info.source_replica_generation, 2);
    assert.equal(info.source_transaction_id, 'T-src2');
    const other = parseSyncInfo((await s.app.inject({ method: 'GET', url: URL_B, headers: { authorization: s.auth.alice } })).body);
    assert.deepEqual([other.source_replica_generation, other.source_transaction_id], [0, '']);
  });

  it('the download of the same sync skips the uploaded docs; another sync gets them, tombstone included', async () => {
    const same = await download(s, URL_A, header());
    assert.equal(same.meta?.number_of_changes, 0);
    assert.equal(same.meta?.new_generation, 2);
    assert.equal(same.meta?.replica_uid, undefined);
    const other = await download(s, URL_B, header({ sync_id: 'sync-b' }));
    assert.equal(other.meta?.number_of_changes, 2);
    assert.deepEqual(other.docs.map((d) => [d.id, d.rev, d.gen, d.content]), [
      ['D-1', 'replicaA:1', 1, '{"raw": "one"}'],
      ['D-2', 'replicaA:1', 2, null],
    ]);
    // Exact §1d framing: the tombstone's content line is empty.
    assert.ok(other.body.endsWith(`"gen":2,"trans_id":"${other.meta?.new_transaction_id}"},\r\n\r\n]\r\n`), JSON.stringify(other.body.slice(-120)));
    const since1 = await download(s, URL_B, header({ sync_id: 'sync-c', last_known_generation: 1, last_known_trans_id: other.docs[0]!.trans_id }));
    assert.deepEqual(since1.docs.map((d) => d.id), ['D-2']);
  });

  it('PUT records sync info (§1b)', async () => {
    const put = (payload: string, extra: Record<string, string> = {}, url = URL_B) => s.app.inject({
      method: 'PUT', url, payload, headers: { authorization: s.auth.alice, 'content-type': 'application/json', ...extra },
    });
    let res = await put(encodeRecordSyncInfo({ generation: 7, transaction_id: 'T-seven' }));
    assert.equal(res.statusCode, 200);
    assert.deepEqual(JSON.parse(res.body), { ok: true });
    assert.ok(res.body.endsWith('\r\n'));
    const info = parseSyncInfo((await s.app.inject({ method: 'GET', url: URL_B, headers: { authorization: s.auth.alice } })).body);
    assert.deepEqual([info.source_replica_generation, info.source_transaction_id], [7, 'T-seven']);
    for (const [payload, extra, url] of [
      ['{"generation":1}', {}, URL_B],
      ['{"generation":1,"transaction_id":"T","x":1}', {}, URL_B],
      ['nope', {}, URL_B],
      ['{"generation":1,"transaction_id":"T"}', { 'content-type': 'text/plain' }, URL_B],
      ['{"generation":1,"transaction_id":"T"}', {}, `${URL_B}?generation=1`],
    ] as const) {
      res = await put(payload, extra, url);
      assert.equal(res.statusCode, 400, `${payload} ${url}`);
      assert.equal(errorOf(res.body), 'bad request');
    }
  });

  it('conflicted docs are not stored and come back on download; superseded ones too', async () => {
    // replicaB, which has never received anything, edits D-1 concurrently with the server's replicaA:1.
    const h = header({ sync_id: 'sync-conflict' });
    const res = await upload(s, URL_B, h, entries([
      { id: 'D-1', rev: 'replicaB:1', content: '{"raw": "b"}', gen: 8 },
      { id: 'D-3', rev: 'replicaB:1', content: '{"raw": "new"}', gen: 9 },
    ]));
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(parseSyncPutResponse(res.body).new_generation, 3);
    assert.deepEqual(await stored(s, ['D-1', 'D-3']), [
      { id: 'D-1', rev: 'replicaA:1', content: '{"raw": "one"}' },
      { id: 'D-3', rev: 'replicaB:1', content: '{"raw": "new"}' },
    ]);
    const down = await download(s, URL_B, h);
    // D-1 (conflicted) is returned with the server's version, D-2 is new to replicaB; D-3 was seen in this sync.
    assert.deepEqual(down.docs.map((d) => [d.id, d.rev, d.content]), [['D-1', 'replicaA:1', '{"raw": "one"}'], ['D-2', 'replicaA:1', null]]);
  });

  it('a doc changed by someone else after this sync uploaded it is returned', async () => {
    const g = await s.backend.documents.whatsChanged(DB, 0);
    const h = header({ sync_id: 'sync-race', last_known_generation: g.generation, last_known_trans_id: g.transactionId });
    assert.equal((await upload(s, URL_B, h, entries([{ id: 'D-4', rev: 'replicaB:1', content: '{}', gen: 10 }]))).statusCode, 200);
    await s.backend.documents.putDocsIfNewer(DB, 'replicaC', [{ id: 'D-4', rev: 'replicaB:1|replicaC:1', content: '{"c":1}', gen: 1, transId: 'T-c1' }]);
    const down = await download(s, URL_B, h);
    assert.deepEqual(down.docs.map((d) => [d.id, d.rev]), [['D-4', 'replicaB:1|replicaC:1']]);
  });

  it('invalid generation or transaction id → 409 and nothing written', async () => {
    const before = await generation(s);
    for (const [h, error] of [
      [header({ last_known_generation: 999, last_known_trans_id: 'T-x' }), 'invalid generation'],
      [header({ last_known_generation: 1, last_known_trans_id: 'T-wrong' }), 'invalid transaction id'],
    ] as const) {
      const up = await upload(s, URL_B, h, entries([{ id: 'D-9', rev: 'replicaB:1', content: '{}', gen: 50 }]));
      assert.equal(up.statusCode, 409);
      assert.equal(errorOf(up.body), error);
      const down = await download(s, URL_B, h);
      assert.equal(down.status, 409);
      assert.equal(errorOf(down.body), error);
    }
    // A source going back in its own generations.
    const up = await upload(s, URL_A, header(), entries([{ id: 'D-9', rev: 'replicaA:5', content: '{}', gen: 1, trans_id: 'T-other' }]));
    assert.equal(up.statusCode, 409);
    assert.equal(await generation(s), before);
    assert.deepEqual(await stored(s, ['D-9']), []);
  });

  describe('malformed requests → 400 and nothing written', () => {
    const hdr = '{"last_known_generation":0,"last_known_trans_id":"","sync_id":"bad","ensure":false}';
    const meta = (id: string, idx = 1, n = 1) =>
      `{"id":"${id}","rev":"replicaB:1","content":"{}","gen":60,"trans_id":"T-60","number_of_docs":${n},"doc_idx":${idx}}`;
    const cases: Array<[string, string, string]> = [
      ['missing comma', `[\r\n${hdr},\r\n${meta('D-10')}\r\n{}\r\n]`, CONTENT_TYPE_SYNC_PUT],
      ['no final ]', `[\r\n${hdr},\r\n${meta('D-10')},\r\n{}`, CONTENT_TYPE_SYNC_PUT],
      ['bad JSON', `[\r\n${hdr},\r\n{"id":"D-10",,\r\n{}\r\n]`, CONTENT_TYPE_SYNC_PUT],
      ['extra key', `[\r\n${hdr},\r\n${meta('D-10').replace('}', ',"extra":1}')},\r\n{}\r\n]`, CONTENT_TYPE_SYNC_PUT],
      ['missing key', `[\r\n${hdr},\r\n${meta('D-10').replace(',"doc_idx":1', '')},\r\n{}\r\n]`, CONTENT_TYPE_SYNC_PUT],
      ['not starting with [', `${hdr}\r\n]`, CONTENT_TYPE_SYNC_PUT],
      ['empty body', '', CONTENT_TYPE_SYNC_PUT],
      ['invalid doc id', `[\r\n${hdr},\r\n${meta('D 10')},\r\n{}\r\n]`, CONTENT_TYPE_SYNC_PUT],
      ['text/plain', `[\r\n${hdr}\r\n]`, 'text/plain'],
      ['application/json', `[\r\n${hdr}\r\n]`, 'application/json'],
      ['u1db sync stream', `[\r\n${hdr}\r\n]`, 'application/x-u1db-sync-stream'],
      ['unknown soledad sync', `[\r\n${hdr}\r\n]`, 'application/x-soledad-sync-foo'],
      ['bad get request', `[\r\n${hdr},\r\n]`, CONTENT_TYPE_SYNC_GET],
      // Valid documents flushed in earlier batches, then garbage: the whole upload is rolled back.
      ['garbage after flushed batches', `[\r\n${hdr},\r\n${meta('D-10')},\r\n{},\r\n${meta('D-11')},\r\n{},\r\n{oops`, CONTENT_TYPE_SYNC_PUT],
    ];
    for (const [name, payload, contentType] of cases) {
      it(name, async () => {
        const before = await generation(s);
        const res = await s.app.inject({ method: 'POST', url: URL_B, payload, headers: { authorization: s.auth.alice, 'content-type': contentType } });
        assert.equal(res.statusCode, 400, res.body);
        assert.ok(['bad request', 'invalid document id'].includes(errorOf(res.body)!));
        assert.ok(res.body.endsWith('\r\n'));
        assert.equal(await generation(s), before);
        assert.deepEqual(await stored(s, ['D-10', 'D-11']), []);
      });
    }
    it('a query string', async () => {
      const res = await s.app.inject({ method: 'POST', url: `${URL_B}?x=1`, payload: encodeSyncGetRequest(header()), headers: { authorization: s.auth.alice, 'content-type': CONTENT_TYPE_SYNC_GET } });
      assert.equal(res.statusCode, 400);
    });
  });

  it('documents larger than the 8 MiB staging size stream through several batches', async () => {
    const big = (c: string) => JSON.stringify({ raw: c.repeat(5 * 1024 * 1024) });
    const g = await s.backend.documents.whatsChanged(DB, 0);
    const h = header({ sync_id: 'big', last_known_generation: g.generation, last_known_trans_id: g.transactionId });
    const res = await upload(s, URL_B, h, entries([
      { id: 'D-big1', rev: 'replicaB:1', content: big('x'), gen: 100 },
      { id: 'D-big2', rev: 'replicaB:1', content: big('y'), gen: 101 },
      { id: 'D-big3', rev: 'replicaB:1', content: big('z'), gen: 102 },
    ]));
    assert.equal(res.statusCode, 200, res.body);
    const down = await download(s, URL_A, header({ sync_id: 'other', last_known_generation: g.generation, last_known_trans_id: g.transactionId }));
    assert.deepEqual(down.docs.map((d) => d.content), [big('x'), big('y'), big('z')]);
  });
});

describe('the upload answer says when the download of the same sync would send nothing', () => {
  let s: TestServer;
  before(async () => {
    s = await makeServer();
  });
  after(() => s.close());

  interface Known { gen: number; trans: string }
  /** Upload as `url` in sync `syncId` knowing the server up to `known`: the flag, the server's answer, and what that sync's download sends. */
  async function syncOf(url: string, syncId: string, known: Known, docs: Parameters<typeof entries>[0], ensure = false) {
    const h = header({ sync_id: syncId, last_known_generation: known.gen, last_known_trans_id: known.trans, ensure });
    const res = await upload(s, url, h, entries(docs));
    assert.equal(res.statusCode, 200, res.body);
    const answer = parseSyncPutResponse(res.body);
    const now: Known = { gen: answer.new_generation, trans: answer.new_transaction_id };
    return { flag: answer.nothing_to_download === true, now, sent: async () => (await download(s, url, h)).docs.map((d) => d.id) };
  }

  it('holds exactly when every change since the known generation is one of this sync\'s documents, stored as sent', async () => {
    // A first sync into an empty database: everything since 0 is its own.
    let r = await syncOf(URL_A, 'a1', { gen: 0, trans: '' }, [{ id: 'D-1', rev: 'replicaA:1', content: '{}', gen: 1 }, { id: 'D-2', rev: 'replicaA:1', content: '{}', gen: 2 }], true);
    assert.equal(r.flag, true);
    assert.deepEqual(await r.sent(), []);
    // Two upload requests in one sync: the second counts the first's documents too.
    const a2 = r.now;
    r = await syncOf(URL_A, 'a2', a2, [{ id: 'D-3', rev: 'replicaA:1', content: '{}', gen: 3 }]);
    assert.equal(r.flag, true);
    r = await syncOf(URL_A, 'a2', a2, [{ id: 'D-4', rev: 'replicaA:1', content: '{}', gen: 4 }]);
    assert.equal(r.flag, true);
    assert.deepEqual(await r.sent(), []);
    const a3 = r.now;
    // Another replica's sync that knew nothing: the server's four documents are news to it.
    r = await syncOf(URL_B, 'b1', { gen: 0, trans: '' }, [{ id: 'D-5', rev: 'replicaB:1', content: '{}', gen: 1 }]);
    assert.equal(r.flag, false);
    assert.deepEqual(await r.sent(), ['D-1', 'D-2', 'D-3', 'D-4']);
    // Replica A again: B's document came after what A knows.
    r = await syncOf(URL_A, 'a3', a3, [{ id: 'D-6', rev: 'replicaA:1', content: '{}', gen: 5 }]);
    assert.equal(r.flag, false);
    assert.deepEqual(await r.sent(), ['D-5']);
    // A conflicting upload stores nothing for that document: the server's version, newer than what A knows, must
    // come back.
    const a4 = r.now;
    const b = await syncOf(URL_B, 'b2', { gen: 0, trans: '' }, [{ id: 'D-7', rev: 'replicaB:1', content: '{"b":7}', gen: 2 }]);
    r = await syncOf(URL_A, 'a4', a4, [{ id: 'D-7', rev: 'replicaA:1', content: '{"a":7}', gen: 6 }]);
    assert.equal(r.flag, false);
    assert.deepEqual(await r.sent(), ['D-7']);
    // The same content under a concurrent revision is merged into a new server revision A has not seen.
    r = await syncOf(URL_A, 'a5', b.now, [{ id: 'D-7', rev: 'replicaA:2', content: '{"b":7}', gen: 7 }]);
    assert.equal(r.flag, false);
    assert.deepEqual(await r.sent(), ['D-7']);
    // An already known revision converges: nothing new, nothing to send.
    r = await syncOf(URL_A, 'a6', r.now, [{ id: 'D-1', rev: 'replicaA:1', content: '{}', gen: 8 }]);
    assert.equal(r.flag, true);
    assert.deepEqual(await r.sent(), []);
  });
});

describe('quota (403 user quota exceeded, nothing stored)', () => {
  it('refuses an upload that would pass the quota, and still lets the user delete', async () => {
    const s = await makeServer({ quotaBytes: 3000 });
    try {
      const ok = await upload(s, URL_A, header({ ensure: true }), entries([{ id: 'D-1', rev: 'replicaA:1', content: JSON.stringify({ raw: 'a'.repeat(1500) }), gen: 1 }]));
      assert.equal(ok.statusCode, 200, ok.body);
      const g = await s.backend.documents.whatsChanged(DB, 0);
      const h = header({ sync_id: 'q', last_known_generation: g.generation, last_known_trans_id: g.transactionId });
      const over = await upload(s, URL_A, h, entries([
        { id: 'D-2', rev: 'replicaA:1', content: JSON.stringify({ raw: 'b'.repeat(1000) }), gen: 2 },
        { id: 'D-3', rev: 'replicaA:1', content: JSON.stringify({ raw: 'c'.repeat(1000) }), gen: 3 },
      ]));
      assert.equal(over.statusCode, 403);
      assert.equal(errorOf(over.body), 'user quota exceeded');
      assert.equal(await generation(s), 1);
      assert.deepEqual(await stored(s, ['D-2', 'D-3']), []);
      assert.equal((await s.backend.documents.getSyncInfo(DB, 'replicaA')).sourceGeneration, 1);
      const del = await upload(s, URL_A, h, entries([{ id: 'D-1', rev: 'replicaA:2', content: null, gen: 2 }]));
      assert.equal(del.statusCode, 200, del.body);
    } finally {
      await s.close();
    }
  });

  it('counts blob usage from the blobs service in the same quota', async () => {
    const s = await makeServer({ quotaBytes: 3000, blobs: { register: () => undefined, usageBytes: async () => 2900 } });
    try {
      const res = await upload(s, URL_A, header({ ensure: true }), entries([{ id: 'D-1', rev: 'replicaA:1', content: JSON.stringify({ raw: 'a'.repeat(200) }), gen: 1 }]));
      assert.equal(res.statusCode, 403);
      assert.equal(await generation(s), 0);
    } finally {
      await s.close();
    }
  });
});

describe('ensure with create_cmd', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));

  it('a failing create_cmd → 401 unauthorized, nothing created', async () => {
    const s = await makeServer({ createCmd: '/bin/false' });
    try {
      const res = await upload(s, URL_A, header({ ensure: true }), entries([{ id: 'D-1', rev: 'replicaA:1', content: '{}', gen: 1 }]));
      assert.equal(res.statusCode, 401);
      assert.equal(errorOf(res.body), 'unauthorized');
      const down = await download(s, URL_A, header({ ensure: true }));
      assert.equal(down.status, 401);
      assert.equal(await s.backend.documents.databaseExists(DB), false);
    } finally {
      await s.close();
    }
  });

  it('runs create_cmd with the database name as its last argument', async () => {
    const s = await makeServer();
    const script = join(s.dataDir, 'create.sh');
    const log = join(s.dataDir, 'args.log');
    await writeFile(script, `#!/bin/sh\necho "$@" > ${log}\nSOLEDAD_DATA_DIR=${s.dataDir} exec ${join(root, 'node_modules/.bin/tsx')} ${join(root, 'src/cli/soledad-create-userdb.ts')} "$2"\n`);
    await chmod(script, 0o755);
    // Same backend and tokens, but an app configured with the command.
    const app = buildUsersApp({ config: { blobs: true, createCmd: `${script} --flag`, quotaBytes: 1e9 }, backend: s.backend });
    const withCmd: TestServer = { ...s, app };
    try {
      const down = await download(withCmd, URL_A, header({ ensure: true }));
      assert.equal(down.status, 200, down.body);
      assert.equal((await readFile(log, 'utf8')).trim(), `--flag ${DB}`);
      assert.equal(down.meta?.replica_uid, (await s.backend.documents.getSyncInfo(DB, 'x')).replicaUid);
    } finally {
      await withCmd.app.close();
      await s.close();
    }
  });
});

describe('a client that disconnects mid-upload', () => {
  it('leaves nothing stored and the database unlocked', async () => {
    const s = await makeServer();
    const { request } = await import('undici');
    const { PassThrough } = await import('node:stream');
    try {
      const address = await s.app.listen({ host: '127.0.0.1', port: 0 });
      const h = header({ ensure: true });
      const es = entries([
        { id: 'D-1', rev: 'replicaA:1', content: '{"raw": "1"}', gen: 1 },
        { id: 'D-2', rev: 'replicaA:1', content: '{"raw": "2"}', gen: 2 },
      // Each entry claims to end its batch, so the first one is flushed into the upload's transaction at once.
      ]).map((e) => ({ ...e, number_of_docs: 1, doc_idx: 1 }));
      const full = [...encodeSyncPut(h, es)].join('');
      const body = new PassThrough();
      const pending = request(`${address}${URL_A}`, {
        method: 'POST', body, headers: { authorization: s.auth.alice, 'content-type': CONTENT_TYPE_SYNC_PUT },
      });
      // Everything but the final "]": both documents are already applied inside the upload's transaction.
      body.write(full.slice(0, -3));
      await new Promise((r) => setTimeout(r, 300));
      body.destroy(new Error('client gone'));
      await assert.rejects(pending);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await generation(s), 0);
      const res = await upload(s, URL_A, h, es);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(await generation(s), 2);
    } finally {
      await s.close();
    }
  });
});
