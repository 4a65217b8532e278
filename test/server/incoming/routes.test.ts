/**
 * The incoming box over HTTP, in process with `inject()`: delivery on the Services API (fact sheet §5c, the
 * seed's spec 0.2.0) and listing / reservation on the Users API.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { decodePreambleB64, EncMethod, EncScheme } from '../../../src/common/crypto/preamble.js';
import { INCOMING_HEADER_LENGTH, type ReservationState } from '../../../src/common/protocol/incoming.js';
import { ALICE } from '../helpers.js';
import { makeIncomingApps, type IncomingApps } from './helpers.js';
import { runPython } from '../../common/crypto/python.js';

function payload(n: number, seed = 7): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + seed) % 256));
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

describe('incoming delivery (Services API)', () => {
  let t: IncomingApps;
  const deliver = (id: string, body: Buffer | string, opts: { query?: string; auth?: string; user?: string } = {}) =>
    t.services.inject({
      method: 'PUT',
      url: `/incoming/${opts.user ?? ALICE}/${id}${opts.query ?? ''}`,
      payload: body,
      headers: { authorization: opts.auth ?? t.mx, 'content-type': 'application/octet-stream' },
    });
  const getBlob = (id: string, ns = 'MX') =>
    t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/${id}?namespace=${ns}`, headers: { authorization: t.users.auth.alice } });

  before(async () => {
    t = await makeIncomingApps({ quotaBytes: 20_000, quotaToleranceBytes: 0 });
  });
  after(async () => t.close());

  it('stores B64U(preamble) + " " + payload in MX, flagged PENDING, with the original layout on disk', async () => {
    const id = 'c56da69b25a9a11ec2f408a559ccffc6';
    const body = payload(1000);
    const before = Math.floor(Date.now() / 1000);
    const r = await deliver(id, body);
    assert.equal(r.statusCode, 200);
    assert.equal(r.body, '');
    const dir = join(t.root, ALICE, 'MX', 'c', 'c56', 'c56da6');
    const stored = await readFile(join(dir, id));
    assert.equal(stored.length, INCOMING_HEADER_LENGTH + body.length);
    assert.equal(stored[INCOMING_HEADER_LENGTH - 1], 0x20);
    // The payload is stored byte for byte: never decrypted, re-encoded or altered.
    assert.deepEqual(stored.subarray(INCOMING_HEADER_LENGTH), body);
    const { preamble } = decodePreambleB64(stored.subarray(0, INCOMING_HEADER_LENGTH - 1).toString('latin1'));
    assert.deepEqual([...preamble.magic], [0x13, 0x37]);
    assert.equal(preamble.scheme, EncScheme.external);
    assert.equal(preamble.method, EncMethod.pgp);
    assert.equal(preamble.docId, id);
    assert.equal(preamble.rev, '0');
    assert.deepEqual(preamble.iv, Buffer.alloc(16));
    assert.equal(preamble.contentSize, body.length);
    assert.ok(preamble.timestamp >= before && preamble.timestamp <= before + 5);
    assert.equal(await readFile(join(dir, `${id}.flags`), 'utf8'), '["PENDING"]');
    // The owner reads it through the Users API.
    const g = await getBlob(id);
    assert.equal(g.statusCode, 200);
    assert.deepEqual(g.rawPayload, stored);
  });

  it('writes the same preamble bytes as Python struct 2sbbQ16s255p255pQ (the original server)', async () => {
    const id = 'vector-1';
    await deliver(id, 'x'.repeat(300));
    const stored = await readFile(join(t.root, ALICE, 'MX', 'v', 'vec', 'vector', id));
    const ours = stored.subarray(0, INCOMING_HEADER_LENGTH - 1).toString('latin1');
    const { preamble } = decodePreambleB64(ours);
    const theirs = runPython(
      `import base64, json, struct, sys
a = json.load(sys.stdin)
raw = struct.pack('2sbbQ16s255p255pQ', b'\\x13\\x37', 2, 3, a['ts'], b'\\x00' * 16, a['id'].encode(), b'0', a['size'])
print(json.dumps(base64.urlsafe_b64encode(raw).decode()))`,
      { ts: preamble.timestamp, id, size: 300 },
    );
    assert.equal(ours, theirs);
  });

  it('a duplicate id → 409 with a JSON error body; the first payload stays', async () => {
    assert.equal((await deliver('dup-1', 'first')).statusCode, 200);
    const r = await deliver('dup-1', 'second');
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().error, 'blob already exists');
    const g = await getBlob('dup-1');
    assert.equal(g.rawPayload.subarray(INCOMING_HEADER_LENGTH).toString(), 'first');
  });

  it('namespaces: default MX, ?namespace= for configured services only, 403 otherwise', async () => {
    assert.equal((await deliver('ns-1', 'a', { query: '?namespace=CAL' })).statusCode, 403);
    const forbidden = await deliver('ns-2', 'a', { auth: t.cal });
    assert.equal(forbidden.statusCode, 403, 'calendar may write CAL only, not MX');
    assert.equal(forbidden.json().error, 'unauthorized');
    assert.equal((await deliver('ns-3', 'a', { auth: t.cal, query: '?namespace=CAL' })).statusCode, 200);
    assert.equal((await getBlob('ns-3', 'CAL')).statusCode, 200);
    assert.equal((await getBlob('ns-3', 'MX')).statusCode, 404);
    assert.equal((await deliver('ns-4', 'a', { query: '?namespace=a.b' })).statusCode, 400);
  });

  it('the trusted app declares its encryption: ?encryption=aes_256_gcm → method 2; unknown → 400', async () => {
    assert.equal((await deliver('enc-1', 'a', { query: '?encryption=aes_256_gcm' })).statusCode, 200);
    const g = await getBlob('enc-1');
    const { preamble } = decodePreambleB64(g.rawPayload.subarray(0, INCOMING_HEADER_LENGTH - 1).toString('latin1'));
    assert.equal(preamble.method, EncMethod.aes_256_gcm);
    assert.equal((await deliver('enc-2', 'a', { query: '?encryption=rot13' })).statusCode, 400);
  });

  it('bad names → 400; a chunked body without Content-Length → 411, nothing stored', async () => {
    assert.equal((await deliver('bad.id', 'a')).statusCode, 400);
    assert.equal((await deliver('ok-id', 'a', { user: 'bad.user' })).statusCode, 400);
    const r = await t.services.inject({
      method: 'PUT', url: `/incoming/${ALICE}/chunked-1`, payload: Readable.from([Buffer.from('ab'), Buffer.from('cd')]),
      headers: { authorization: t.mx, 'transfer-encoding': 'chunked' },
    });
    assert.equal(r.statusCode, 411);
    assert.equal(r.json().error, 'length required');
    assert.equal((await getBlob('chunked-1')).statusCode, 404);
  });

  it('over quota → 507 with a body the app can log, and no file (not even a temporary one)', async () => {
    const r = await deliver('huge-1', payload(30_000));
    assert.equal(r.statusCode, 507);
    const body = r.json() as { error: string; message: string };
    assert.equal(body.error, 'quota exceeded');
    assert.match(body.message, /Quota Exceeded! Delivering 30737 bytes to user [0-9a-f]+ would pass the limit: \d+ of 20000 bytes used/);
    const left = (await filesUnder(join(t.root, ALICE))).filter((f) => f.includes('huge-1'));
    assert.deepEqual(left, []);
    assert.equal((await getBlob('huge-1')).statusCode, 404);
  });

  it('authentication: a bad token, no token or another route → 401; a non-loopback peer → 403', async () => {
    const bad = await t.services.inject({ method: 'PUT', url: `/incoming/${ALICE}/auth-1`, payload: 'a', headers: { authorization: 'Token aW5jb21pbmc6bm9wZQ==' } });
    assert.equal(bad.statusCode, 401);
    assert.equal((await t.services.inject({ method: 'PUT', url: `/incoming/${ALICE}/auth-2`, payload: 'a' })).statusCode, 401);
    assert.equal((await t.services.inject({ method: 'GET', url: `/blobs/${ALICE}/`, headers: { authorization: t.mx } })).statusCode, 401);
    const remote = await t.services.inject({
      method: 'PUT', url: `/incoming/${ALICE}/auth-3`, payload: 'a', headers: { authorization: t.mx }, remoteAddress: '192.0.2.9',
    });
    assert.equal(remote.statusCode, 403);
    for (const peer of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
      const ok = await t.services.inject({
        method: 'PUT', url: `/incoming/${ALICE}/peer-${peer.replace(/[^0-9a-f]/g, '')}`, payload: 'a', headers: { authorization: t.mx }, remoteAddress: peer,
      });
      assert.equal(ok.statusCode, 200, peer);
    }
  });

  it('the Users API has no delivery route: PUT /incoming with a user token → 404, with a service token → 401', async () => {
    const asUser = await t.users.app.inject({ method: 'PUT', url: `/incoming/${ALICE}/pub-1`, payload: 'a', headers: { authorization: t.users.auth.alice } });
    assert.equal(asUser.statusCode, 404);
    const asService = await t.users.app.inject({ method: 'PUT', url: `/incoming/${ALICE}/pub-2`, payload: 'a', headers: { authorization: t.mx } });
    assert.equal(asService.statusCode, 401);
    assert.equal((await getBlob('pub-1')).statusCode, 404);
  });
});

describe('incoming quota tolerance', () => {
  it('lets a delivery go over the quota by at most the tolerance', async () => {
    const t = await makeIncomingApps({ quotaBytes: 2000, quotaToleranceBytes: 1000 });
    try {
      const put = (id: string, n: number) => t.services.inject({
        method: 'PUT', url: `/incoming/${ALICE}/${id}`, payload: payload(n), headers: { authorization: t.mx },
      });
      assert.equal((await put('t-1', 2000)).statusCode, 200, '2737 bytes: over 2000, within 2000 + 1000');
      assert.equal((await put('t-2', 1)).statusCode, 507, '2737 + 738 > 3000');
      // The tolerance is the incoming box's: the owner's own uploads stop at the quota.
      const own = await t.users.app.inject({ method: 'PUT', url: `/blobs/${ALICE}/own-1`, payload: 'x', headers: { authorization: t.users.auth.alice } });
      assert.equal(own.statusCode, 507);
    } finally {
      await t.close();
    }
  });
});

describe('incoming listing and reservation (Users API)', () => {
  let t: IncomingApps;
  const auth = () => ({ authorization: t.users.auth.alice });
  const deliver = async (id: string, n = 100) => {
    const r = await t.services.inject({ method: 'PUT', url: `/incoming/${ALICE}/${id}`, payload: payload(n), headers: { authorization: t.mx } });
    assert.equal(r.statusCode, 200);
    // Distinct upload dates (the filesystem keeps nanoseconds, but be safe on coarse clocks).
    await new Promise((r2) => setTimeout(r2, 15));
  };
  const list = async (query: string): Promise<unknown> => {
    const r = await t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/?namespace=MX${query}`, headers: auth() });
    assert.equal(r.statusCode, 200, r.body);
    return r.json();
  };
  const move = (id: string, flag: string, replica: string, extra = '') =>
    t.users.app.inject({
      method: 'POST', url: `/blobs/${ALICE}/${id}?namespace=MX&replica=${replica}${extra}`,
      payload: JSON.stringify([flag]), headers: { ...auth(), 'content-type': 'application/json' },
    });

  before(async () => {
    t = await makeIncomingApps({ processingThresholdMs: 60_000, maxFailures: 3 });
    for (const [id, n] of [['m1', 100], ['m2', 5000], ['m3', 100], ['m4', 100], ['m5', 100]] as const) await deliver(id, n);
  });
  after(async () => t.close());

  it('filters by flag, orders both ways, counts in one request, pages with limit + page, skips by size', async () => {
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=%2Bdate'), ['m1', 'm2', 'm3', 'm4', 'm5']);
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=-date'), ['m5', 'm4', 'm3', 'm2', 'm1']);
    assert.deepEqual(await list('&filter_flag=PENDING&only_count=true'), { count: 5 });
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=-date&limit=2'), ['m5', 'm4']);
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=-date&limit=2&page=1'), ['m5', 'm4']);
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=-date&limit=2&page=2'), ['m3', 'm2']);
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=-date&limit=2&page=3'), ['m1']);
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=-date&limit=2&page=4'), []);
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=%2Bdate&size_limit=1000'), ['m1', 'm3', 'm4', 'm5']);
    assert.deepEqual(await list('&filter_flag=PENDING&size_limit=1000&only_count=true&limit=1'), { count: 4 });
    assert.deepEqual(await list('&filter_flag=FAILED'), []);
    const other = await t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/?filter_flag=PENDING`, headers: auth() });
    assert.deepEqual(other.json(), [], 'other namespaces are apart');
  });

  it('refuses malformed qualifiers with 400', async () => {
    for (const q of ['&limit=-1', '&limit=x', '&page=0&limit=2', '&page=2', '&size_limit=1e3', '&include_processing=maybe']) {
      const r = await t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/?namespace=MX${q}`, headers: auth() });
      assert.equal(r.statusCode, 400, q);
    }
  });

  it('reservation: exactly one replica wins, PROCESSING in or out of listings, PROCESSED only by the holder', async () => {
    const r1 = await move('m1', 'PROCESSING', 'replicaA');
    assert.equal(r1.statusCode, 200);
    const state = r1.json() as ReservationState;
    assert.deepEqual(state.flags, ['PROCESSING']);
    assert.equal(state.replica, 'replicaA');
    assert.equal(state.threshold_ms, 60_000);
    assert.equal(state.expires_at, state.reserved_at! + 60_000);
    const r2 = await move('m1', 'PROCESSING', 'replicaB');
    assert.equal(r2.statusCode, 409);
    assert.equal(r2.json().error, 'reservation conflict');
    // The holder renews.
    assert.equal((await move('m1', 'PROCESSING', 'replicaA')).statusCode, 200);

    assert.deepEqual(await list('&filter_flag=PENDING&order_by=%2Bdate'), ['m2', 'm3', 'm4', 'm5']);
    assert.deepEqual(await list('&filter_flag=PENDING&order_by=%2Bdate&include_processing=true'), ['m1', 'm2', 'm3', 'm4', 'm5']);
    assert.deepEqual(await list('&order_by=%2Bdate&include_processing=false'), ['m2', 'm3', 'm4', 'm5']);
    assert.deepEqual(await list('&filter_flag=PROCESSING'), ['m1']);
    assert.deepEqual(await list('&filter_flag=PENDING&only_count=true'), { count: 4 });

    assert.equal((await move('m1', 'PROCESSED', 'replicaB')).statusCode, 409);
    const done = await move('m1', 'PROCESSED', 'replicaA');
    assert.equal(done.statusCode, 200);
    assert.equal((done.json() as ReservationState).deleted, true);
    const gone = await t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/m1?namespace=MX`, headers: auth() });
    assert.equal(gone.statusCode, 404);
    assert.equal((await move('m1', 'PROCESSED', 'replicaA')).statusCode, 404);
  });

  it('a reservation older than PROCESSING_THRESHOLD returns to PENDING; the last holder may still confirm', async () => {
    assert.equal((await move('m3', 'PROCESSING', 'replicaA')).statusCode, 200);
    t.advance(59_000);
    assert.equal((await move('m3', 'PROCESSING', 'replicaB')).statusCode, 409);
    assert.ok(!(await list('&filter_flag=PENDING') as string[]).includes('m3'));
    t.advance(1_000);
    // Listing pending messages puts lapsed reservations back first.
    assert.ok((await list('&filter_flag=PENDING') as string[]).includes('m3'));
    const flags = await t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/m3?namespace=MX&only_flags=true`, headers: auth() });
    assert.equal(flags.body, '["PENDING"]');
    // Nobody took it since: the late holder's confirmation is accepted (no second processing needed).
    const late = await move('m3', 'PROCESSED', 'replicaA');
    assert.equal(late.statusCode, 200);

    // Once another replica took it, the late holder is refused.
    assert.equal((await move('m4', 'PROCESSING', 'replicaA')).statusCode, 200);
    t.advance(60_000);
    assert.equal((await move('m4', 'PROCESSING', 'replicaB')).statusCode, 200, 'expired: free for anyone');
    assert.equal((await move('m4', 'PROCESSED', 'replicaA')).statusCode, 409);
    assert.equal((await move('m4', 'PENDING', 'replicaA')).statusCode, 409);
    assert.equal((await move('m4', 'PENDING', 'replicaB')).statusCode, 200, 'the holder releases');
    assert.ok((await list('&filter_flag=PENDING') as string[]).includes('m4'));
  });

  it('FAILED records the version and releases; distinct versions up to incoming_max_failures make it permanent', async () => {
    assert.equal((await move('m5', 'FAILED', 'replicaA', '&version=1.0')).statusCode, 409, 'not reserved by A');
    assert.equal((await move('m5', 'PROCESSING', 'replicaA')).statusCode, 200);
    assert.equal((await move('m5', 'FAILED', 'replicaA')).statusCode, 400, 'FAILED needs version');
    const f1 = await move('m5', 'FAILED', 'replicaA', '&version=1.0');
    assert.equal(f1.statusCode, 200);
    const s1 = f1.json() as ReservationState;
    assert.deepEqual(s1.flags, ['FAILED']);
    assert.equal(s1.replica, null);
    assert.deepEqual(s1.failures.map((f) => [f.version, f.replica]), [['1.0', 'replicaA']]);
    assert.equal(s1.permanent, false);
    assert.deepEqual(await list('&filter_flag=FAILED'), ['m5']);
    assert.deepEqual(await list('&filter_flag=FAILED&retry_for_version=1.0'), []);
    assert.deepEqual(await list('&filter_flag=FAILED&retry_for_version=1.1'), ['m5']);
    assert.deepEqual(await list('&filter_flag=FAILED&retry_for_version=1.1&only_count=true'), { count: 1 });

    // Released: any replica may pick it, but not with a version that already failed.
    assert.equal((await move('m5', 'PROCESSING', 'replicaB')).statusCode, 409, 'a retry names its version');
    assert.equal((await move('m5', 'PROCESSING', 'replicaB', '&version=1.0')).statusCode, 409);
    assert.equal((await move('m5', 'PROCESSING', 'replicaB', '&version=1.1')).statusCode, 200);
    assert.equal((await move('m5', 'FAILED', 'replicaB', '&version=1.1')).statusCode, 200);
    // The same version failing again (another replica) does not count twice.
    assert.equal((await move('m5', 'PROCESSING', 'replicaC', '&version=1.2')).statusCode, 200);
    const f3 = await move('m5', 'FAILED', 'replicaC', '&version=1.2');
    const s3 = f3.json() as ReservationState;
    assert.equal(s3.failures.length, 3);
    assert.equal(s3.permanent, true);
    assert.equal(s3.deleted, false, 'kept for inspection by default');
    assert.equal((await move('m5', 'PROCESSING', 'replicaD', '&version=2.0')).statusCode, 409);
    assert.deepEqual(await list('&filter_flag=FAILED&retry_for_version=2.0'), []);
    assert.deepEqual(await list('&filter_flag=FAILED'), ['m5']);
  });

  it('keeps the original flags POST: without replica it replaces the flags; bad transitions → 400', async () => {
    await deliver('plain-1');
    const r = await t.users.app.inject({
      method: 'POST', url: `/blobs/${ALICE}/plain-1?namespace=MX`, payload: '["PROCESSING"]', headers: auth(),
    });
    assert.equal(r.statusCode, 200);
    assert.equal(r.body, '');
    const flags = await t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/plain-1?namespace=MX&only_flags=true`, headers: auth() });
    assert.equal(flags.body, '["PROCESSING"]');
    assert.equal((await move('plain-1', 'PROCESSED', 'x"y')).statusCode, 400, 'bad replica id');
    const two = await t.users.app.inject({
      method: 'POST', url: `/blobs/${ALICE}/plain-1?namespace=MX&replica=r1`, payload: '["PENDING","FAILED"]', headers: auth(),
    });
    assert.equal(two.statusCode, 400);
    assert.equal((await move('nope', 'PROCESSING', 'r1')).statusCode, 404);
  });
});

describe('incoming_delete_permanently_failed', () => {
  it('deletes a message once it failed permanently', async () => {
    const t = await makeIncomingApps({ maxFailures: 1, deletePermanentlyFailed: true });
    try {
      await t.services.inject({ method: 'PUT', url: `/incoming/${ALICE}/pf-1`, payload: 'a', headers: { authorization: t.mx } });
      const post = (flag: string, extra = '') => t.users.app.inject({
        method: 'POST', url: `/blobs/${ALICE}/pf-1?namespace=MX&replica=r1${extra}`, payload: JSON.stringify([flag]),
        headers: { authorization: t.users.auth.alice },
      });
      assert.equal((await post('PROCESSING')).statusCode, 200);
      const f = await post('FAILED', '&version=1');
      assert.equal(f.statusCode, 200);
      assert.deepEqual([(f.json() as ReservationState).permanent, (f.json() as ReservationState).deleted], [true, true]);
      const g = await t.users.app.inject({ method: 'GET', url: `/blobs/${ALICE}/pf-1?namespace=MX`, headers: { authorization: t.users.auth.alice } });
      assert.equal(g.statusCode, 404);
    } finally {
      await t.close();
    }
  });
});
