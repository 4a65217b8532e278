/** `POST /stream/<uuid>/` in both directions, in the original framing, with deviation 5's checks on upload. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import {
  STREAM_FRAME_HEADER_LENGTH,
  decodeStreamFrameHeader,
  encodeStreamManifest,
} from '../../../src/common/protocol/blobs.js';
import { b64u, makeBlobApp } from './helpers.js';
import type { BlobApp } from './helpers.js';

const U = 'user-feed';

function blob(n: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) % 256));
}

/** Split a download reply into its frames, checking each header against the content. */
function parseFrames(body: Buffer): Array<{ size: number; tag: string; data: Buffer }> {
  const out: Array<{ size: number; tag: string; data: Buffer }> = [];
  let off = 0;
  while (off < body.length) {
    const h = decodeStreamFrameHeader(body.subarray(off, off + STREAM_FRAME_HEADER_LENGTH));
    off += STREAM_FRAME_HEADER_LENGTH;
    const data = body.subarray(off, off + h.size);
    assert.equal(data.length, h.size, 'frame cut short');
    off += h.size;
    out.push({ ...h, data });
  }
  return out;
}

describe('/stream/ multi-blob transfer', () => {
  let t: BlobApp;
  const stream = (query: string, body: string | Buffer | Readable, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url: `/stream/${U}/${query}`, payload: body, headers });

  before(async () => {
    t = await makeBlobApp({ quotaBytes: 50_000 });
  });
  after(async () => t.close());

  it('upload stores every blob of the manifest (200), download frames them back', async () => {
    const blobs = [blob(1000, 1), blob(17, 2), blob(0, 3), blob(4096, 4)];
    const ids = ['s1', 's2', 's3', 's4'];
    const manifest = encodeStreamManifest(ids.map((blobId, i) => ({ blobId, size: blobs[i]!.length })));
    const up = await stream('?direction=upload', Buffer.concat([Buffer.from(manifest), ...blobs]));
    assert.equal(up.statusCode, 200, up.body);
    for (const [i, id] of ids.entries()) {
      const g = await t.app.inject({ method: 'GET', url: `/blobs/${U}/${id}` });
      assert.deepEqual(g.rawPayload, blobs[i], id);
    }
    const down = await stream('?direction=download', JSON.stringify(['s4', 's1', 's2']));
    assert.equal(down.statusCode, 200);
    const frames = parseFrames(down.rawPayload);
    assert.deepEqual(frames.map((f) => f.data), [blobs[3], blobs[0], blobs[1]]);
    assert.equal(frames[0]!.tag, b64u(blobs[3]!.subarray(-16)));
    assert.equal(frames[1]!.size, 1000);
    // The frame header is `%08x` + 24 tag characters + space.
    assert.equal(down.rawPayload.subarray(0, 8).toString(), '00001000');
    assert.equal(down.rawPayload[32], 0x20);
  });

  it('upload honours the namespace and streams a chunked body', async () => {
    const a = blob(3000, 9);
    const manifest = Buffer.from(encodeStreamManifest([{ blobId: 'n1', size: a.length }]));
    const pieces = [manifest.subarray(0, 5), Buffer.concat([manifest.subarray(5), a.subarray(0, 10)]), a.subarray(10)];
    const up = await stream('?direction=upload&namespace=other', Readable.from(pieces), { 'transfer-encoding': 'chunked' });
    assert.equal(up.statusCode, 200, up.body);
    const g = await t.app.inject({ method: 'GET', url: `/blobs/${U}/n1?namespace=other` });
    assert.deepEqual(g.rawPayload, a);
    assert.equal((await t.app.inject({ method: 'GET', url: `/blobs/${U}/n1` })).statusCode, 404);
  });

  it('upload of an existing id → 409 and nothing of that request stored (deviation 5)', async () => {
    const manifest = encodeStreamManifest([{ blobId: 'fresh', size: 3 }, { blobId: 's1', size: 3 }]);
    const r = await stream('?direction=upload', `${manifest}abcxyz`);
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().error, 'blob already exists');
    assert.equal((await t.app.inject({ method: 'GET', url: `/blobs/${U}/fresh` })).statusCode, 404);
    const g = await t.app.inject({ method: 'GET', url: `/blobs/${U}/s1` });
    assert.deepEqual(g.rawPayload, blob(1000, 1), 's1 not overwritten');
  });

  it('upload over quota → 507 and nothing stored (deviation 5)', async () => {
    const q = (await t.app.inject({ method: 'GET', url: `/quota/${U}` })).json() as { used: number; limit: number };
    const room = q.limit - q.used;
    const manifest = encodeStreamManifest([{ blobId: 'q1', size: 10 }, { blobId: 'q2', size: room }]);
    const r = await stream('?direction=upload', Buffer.concat([Buffer.from(manifest), Buffer.alloc(10 + room)]));
    assert.equal(r.statusCode, 507);
    assert.equal((await t.app.inject({ method: 'GET', url: `/blobs/${U}/q1` })).statusCode, 404);
    assert.deepEqual((await t.app.inject({ method: 'GET', url: `/quota/${U}` })).json(), q);
  });

  it('malformed uploads → 400', async () => {
    const cases: Array<[string, string | Buffer]> = [
      ['no newline', '[["x1", 3]]'],
      ['not json', 'hello\nabc'],
      ['not a list', '{"x1": 3}\nabc'],
      ['bad id', '[["../x", 3]]\nabc'],
      ['bad size', '[["x1", -1]]\nabc'],
      ['fraction', '[["x1", 1.5]]\nabc'],
      ['duplicate', '[["x1", 1], ["x1", 1]]\nab'],
      ['short body', '[["x1", 10]]\nabc'],
    ];
    for (const [what, body] of cases) {
      const r = await stream('?direction=upload', body);
      assert.equal(r.statusCode, 400, what);
      assert.equal(r.json().error, 'bad request', what);
    }
    assert.equal((await t.app.inject({ method: 'GET', url: `/blobs/${U}/x1` })).statusCode, 404);
  });

  it('download of a missing id → 404 before any byte; malformed requests → 400', async () => {
    const r = await stream('?direction=download', JSON.stringify(['s1', 'nope']));
    assert.equal(r.statusCode, 404);
    assert.deepEqual(r.json(), { error: 'blob not found', message: "Blob doesn't exist: nope" });
    for (const body of ['nope', '{"a": 1}', '["../etc"]', '[1]']) {
      assert.equal((await stream('?direction=download', body)).statusCode, 400, body);
    }
    for (const q of ['', '?direction=sideways', '?direction=download&namespace=..%2F']) {
      assert.equal((await stream(q, '[]')).statusCode, 400, q);
    }
    const empty = await stream('?direction=download', '[]');
    assert.equal(empty.statusCode, 200);
    assert.equal(empty.rawPayload.length, 0);
  });
});
