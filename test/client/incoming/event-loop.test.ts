/**
 * Consumer callbacks never hold the event loop back to back. Against a real server, network timing spreads the
 * callbacks out by chance; here an in-memory server answers every request at once (promises only, no I/O), so
 * several messages become ready for their consumer in the same turn: only the loop's own scheduling keeps a timer
 * running between two callbacks.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { HttpClient, HttpRequest, HttpResponse } from '../../../src/client/http/client.js';
import { IncomingBox } from '../../../src/client/incoming/incoming-box.js';
import { incomingHeader } from '../../../src/common/protocol/incoming.js';

const UUID = 'feedfacefeedfacefeedfacefeedface';

/** Just enough of the incoming wire, in memory, answering synchronously. */
function memoryServer(ids: string[]): HttpClient {
  const flags = new Map(ids.map((id) => [id, 'PENDING']));
  const respond = (status: number, body: string | Buffer): HttpResponse => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    return {
      status,
      headers: { 'content-length': String(bytes.length) },
      body: Readable.from([bytes]) as unknown as HttpResponse['body'],
      text: async () => bytes.toString(),
      json: async () => JSON.parse(bytes.toString()) as unknown,
      dump: async () => undefined,
    };
  };
  const fake = {
    async request(req: HttpRequest): Promise<HttpResponse> {
      const q = req.query ?? {};
      const id = decodeURIComponent(req.path.split('/')[3] ?? '');
      if (req.method === 'GET' && id === '') {
        const wanted = q['filter_flag'];
        const list = ids.filter((i) => flags.get(i) === wanted).reverse().slice(0, Number(q['limit'] ?? 1000));
        return respond(200, JSON.stringify(list));
      }
      if (req.method === 'GET') return respond(200, Buffer.concat([incomingHeader(id, 1), Buffer.from('x')]));
      const to = (JSON.parse(String(req.body)) as string[])[0]!;
      if (to === 'PROCESSED') flags.delete(id);
      else flags.set(id, to);
      return respond(200, JSON.stringify({
        flags: [to], replica: q['replica'], reserved_at: 0, expires_at: null, threshold_ms: 600_000, failures: [], permanent: false, deleted: false,
      }));
    },
  };
  return fake as unknown as HttpClient;
}

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* a synchronous parser */ }
}

describe('IncomingBox and the event loop', () => {
  it('runs one consumer callback per event-loop turn, whatever the concurrency, and reports blocking ones', async () => {
    const ids = Array.from({ length: 9 }, (_, i) => `m${i}`);
    const box = new IncomingBox({
      http: memoryServer(ids), uuid: UUID, replicaId: 'r1', syncDocuments: async () => undefined, concurrency: 3, blockWarnMs: 20,
    });
    // Every callback notes how many timer ticks ran so far; each one busies the loop longer than the tick interval,
    // so if a turn separates two callbacks, the tick timer runs in between.
    let ticks = 0;
    const marks: number[] = [];
    box.register({
      name: 'cpu-bound',
      process(item) {
        marks.push(ticks);
        busy(25);
        return item.length;
      },
      save() {
        marks.push(ticks);
        busy(25);
      },
    });
    const slow: string[] = [];
    box.on('slow-consumer', (e) => slow.push(`${e.callback}:${e.itemId}`));
    const ticker = setInterval(() => {
      ticks += 1;
    }, 1);
    try {
      const s = await box.processOnce();
      assert.equal(s.processed.length, 9);
    } finally {
      clearInterval(ticker);
      await box.close();
    }
    assert.equal(marks.length, 18);
    const backToBack = marks.filter((m, i) => i > 0 && m === marks[i - 1]).length;
    assert.equal(backToBack, 0, `callbacks ran back to back ${backToBack} times (ticks seen: ${marks.join(',')})`);
    assert.equal(slow.length, 18);
    assert.ok(slow.includes('process:m0') && slow.includes('save:m8'));
  });
});
