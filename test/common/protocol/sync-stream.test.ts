import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BadRequestError, BrokenSyncStreamError, InvalidContentError } from '../../../src/common/errors.js';
import {
  CONTENT_TYPE_SYNC_GET_RESPONSE,
  CONTENT_TYPE_SYNC_PUT,
  CONTENT_TYPE_SYNC_PUT_RESPONSE,
  encodeRecordSyncInfo,
  encodeSyncGetRequest,
  encodeSyncGetResponse,
  encodeSyncGetResponseAsync,
  encodeSyncInfo,
  encodeSyncPut,
  encodeSyncPutResponse,
  parseRecordSyncInfo,
  parseSyncGetRequest,
  parseSyncInfo,
  parseSyncPutResponse,
  SyncGetResponseParser,
  SyncPutParser,
  type SyncGetEntry,
  type SyncGetEntryOut,
  type SyncGetItem,
  type SyncGetMeta,
  type SyncHeader,
  type SyncPutEntry,
  type SyncPutItem,
  type SyncPutItemIn,
} from '../../../src/common/protocol/sync-stream.js';
import { encodeTokenAuthorization, parseTokenAuthorization } from '../../../src/common/protocol/auth.js';

const HEADER: SyncHeader = { last_known_generation: 0, last_known_trans_id: '', sync_id: 'sid', ensure: false };
const PUT_ENTRIES: SyncPutEntry[] = [
  { id: 'D-1', rev: 'r:1', content: '{"raw": "EzcB"}', gen: 1, trans_id: 'T-1', number_of_docs: 2, doc_idx: 1 },
  { id: 'D-2', rev: 'r:2', content: null, gen: 2, trans_id: 'T-2', number_of_docs: 2, doc_idx: 2 },
];
// §1c: content twice, a tombstone's content line empty, no CRLF after the final "]".
const PUT_VECTOR =
  '[\r\n' +
  '{"last_known_generation":0,"last_known_trans_id":"","sync_id":"sid","ensure":false},\r\n' +
  '{"id":"D-1","rev":"r:1","content":"{\\"raw\\": \\"EzcB\\"}","gen":1,"trans_id":"T-1","number_of_docs":2,"doc_idx":1},\r\n' +
  '{"raw": "EzcB"},\r\n' +
  '{"id":"D-2","rev":"r:2","content":null,"gen":2,"trans_id":"T-2","number_of_docs":2,"doc_idx":2},\r\n' +
  '\r\n' +
  ']';
// What the Python client really sends: json.dumps separators with spaces.
const PUT_VECTOR_PY =
  '[\r\n' +
  '{"last_known_generation": 0, "last_known_trans_id": null, "sync_id": "sid", "ensure": false},\r\n' +
  '{"id": "D-1", "rev": "r:1", "content": "{\\"raw\\": \\"EzcB\\"}", "gen": 1, "trans_id": "T-1", "number_of_docs": 2, "doc_idx": 1},\r\n' +
  '{"raw": "EzcB"},\r\n' +
  '{"id": "D-2", "rev": "r:2", "content": null, "gen": 2, "trans_id": "T-2", "number_of_docs": 2, "doc_idx": 2},\r\n' +
  '\r\n' +
  ']';

const GET_META: SyncGetMeta = { new_generation: 5, new_transaction_id: 'T-5', number_of_changes: 2 };
const GET_ENTRIES: SyncGetEntry[] = [
  { id: 'D-1', rev: 'r:1', gen: 3, trans_id: 'T-3', content: '{"raw": "x"}' },
  { id: 'D-2', rev: 'r:2', gen: 5, trans_id: 'T-5', content: null },
];
// §1d: first entry after "\r\n", later ones after ",\r\n", "\r\n]\r\n" at the end.
const GET_VECTOR =
  '[\r\n' +
  '{"new_generation":5,"new_transaction_id":"T-5","number_of_changes":2},\r\n' +
  '{"id":"D-1","rev":"r:1","gen":3,"trans_id":"T-3"},\r\n' +
  '{"raw": "x"},\r\n' +
  '{"id":"D-2","rev":"r:2","gen":5,"trans_id":"T-5"},\r\n' +
  '\r\n' +
  ']\r\n';

function parsePut(body: string | Buffer, max?: number): SyncPutItem[] {
  const p = new SyncPutParser(max === undefined ? {} : { maxLineBytes: max });
  return [...p.push(typeof body === 'string' ? Buffer.from(body) : body), ...p.end()];
}

function parseGet(body: string | Buffer, max?: number): SyncGetItem[] {
  const p = new SyncGetResponseParser(max === undefined ? {} : { maxLineBytes: max });
  return [...p.push(typeof body === 'string' ? Buffer.from(body) : body), ...p.end()];
}

function expectedPutItems(header: SyncHeader, entries: SyncPutEntry[]): SyncPutItem[] {
  return [{ type: 'header', header }, ...entries.map((entry) => ({ type: 'doc' as const, entry }))];
}

function expectedGetItems(meta: SyncGetMeta, entries: SyncGetEntry[]): SyncGetItem[] {
  return [{ type: 'meta', meta }, ...entries.map((entry) => ({ type: 'doc' as const, entry }))];
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

describe('content types', () => {
  it('are the names of the original', () => {
    assert.equal(CONTENT_TYPE_SYNC_PUT, 'application/x-soledad-sync-put');
    assert.equal(CONTENT_TYPE_SYNC_PUT_RESPONSE, 'application/x-soledad-sync-response');
    assert.equal(CONTENT_TYPE_SYNC_GET_RESPONSE, 'application/x-u1db-sync-response');
  });
});

describe('sync info (§1a) and record (§1b)', () => {
  it('encodes with a trailing CRLF and round-trips', () => {
    const info = {
      target_replica_uid: 'abc', target_replica_generation: 3, target_replica_transaction_id: 'T-3',
      source_replica_uid: 'src', source_replica_generation: 0, source_transaction_id: '',
    };
    const text = encodeSyncInfo(info);
    assert.equal(text, '{"target_replica_uid":"abc","target_replica_generation":3,"target_replica_transaction_id":"T-3",' +
      '"source_replica_uid":"src","source_replica_generation":0,"source_transaction_id":""}\r\n');
    assert.deepEqual(parseSyncInfo(text), info);
  });
  it('rejects malformed sync info as a broken stream', () => {
    assert.throws(() => parseSyncInfo('{"target_replica_uid":1}'), BrokenSyncStreamError);
    assert.throws(() => parseSyncInfo('nope'), BrokenSyncStreamError);
  });
  it('record sync info round-trips and rejects missing or extra keys', () => {
    const rec = { generation: 4, transaction_id: 'T-4' };
    assert.deepEqual(parseRecordSyncInfo(encodeRecordSyncInfo(rec)), rec);
    assert.throws(() => parseRecordSyncInfo('{"generation":4}'), BadRequestError);
    assert.throws(() => parseRecordSyncInfo('{"generation":4,"transaction_id":"T","x":1}'), BadRequestError);
    assert.throws(() => parseRecordSyncInfo('{"generation":"4","transaction_id":"T"}'), BadRequestError);
  });
});

describe('upload stream (§1c)', () => {
  it('encodes the fixed vector byte for byte', () => {
    assert.equal([...encodeSyncPut(HEADER, PUT_ENTRIES)].join(''), PUT_VECTOR);
  });
  it('content given as bytes encodes to the same body, in or out of the meta line; a line break in it is refused', () => {
    const asBytes = PUT_ENTRIES.map((e) => ({ ...e, content: e.content === null ? null : Buffer.from(e.content) }));
    const wire = (pieces: Iterable<string | Uint8Array>): Buffer =>
      Buffer.concat([...pieces].map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
    for (const contentInMeta of [true, false]) {
      assert.deepEqual(wire(encodeSyncPut(HEADER, asBytes, { contentInMeta })), wire(encodeSyncPut(HEADER, PUT_ENTRIES, { contentInMeta })));
    }
    assert.deepEqual(wire(encodeSyncPut(HEADER, asBytes)).toString(), PUT_VECTOR);
    const broken = [{ ...asBytes[0]!, content: Buffer.from('{"a": "x\ny"}') }];
    assert.throws(() => [...encodeSyncPut(HEADER, broken)], InvalidContentError);
  });
  it('encodes an empty upload as "[", header, "]"', () => {
    assert.equal([...encodeSyncPut(HEADER, [])].join(''),
      '[\r\n{"last_known_generation":0,"last_known_trans_id":"","sync_id":"sid","ensure":false}\r\n]');
  });
  it('parses the fixed vector and the Python client\'s spacing', () => {
    assert.deepEqual(parsePut(PUT_VECTOR), expectedPutItems(HEADER, PUT_ENTRIES));
    assert.deepEqual(parsePut(PUT_VECTOR_PY), expectedPutItems(HEADER, PUT_ENTRIES));
  });
  it('accepts LF-only lines, surrounding whitespace and a trailing CRLF after "]"', () => {
    assert.deepEqual(parsePut(PUT_VECTOR.replaceAll('\r\n', '\n') + '\n'), expectedPutItems(HEADER, PUT_ENTRIES));
    assert.deepEqual(parsePut(PUT_VECTOR + '\r\n'), expectedPutItems(HEADER, PUT_ENTRIES));
  });
  it('takes content from the meta line when both are present, from the raw line when meta omits it', () => {
    const body = '[\r\n{"last_known_generation":0,"sync_id":"s"},\r\n' +
      '{"id":"D-1","rev":"r:1","content":"{\\"m\\":1}","gen":1,"trans_id":"T","number_of_docs":2,"doc_idx":1},\r\n' +
      '{"raw":1},\r\n' +
      '{"id":"D-2","rev":"r:1","gen":2,"trans_id":"T","number_of_docs":2,"doc_idx":2},\r\n' +
      '{"raw":2}\r\n]';
    const items = parsePut(body);
    assert.deepEqual(items[0], { type: 'header', header: { last_known_generation: 0, last_known_trans_id: '', sync_id: 's', ensure: false } });
    assert.equal(items[1]?.type === 'doc' && items[1].entry.content, '{"m":1}');
    assert.equal(items[2]?.type === 'doc' && items[2].entry.content, '{"raw":2}');
  });
  it('refuses to frame content holding a line break', () => {
    assert.throws(() => [...encodeSyncPut(HEADER, [{ ...PUT_ENTRIES[0]!, content: '{"a":\n1}' }])], InvalidContentError);
    // A caller that vouches for its contents (ciphertext) skips the scan: what it vouched for is sent as is.
    assert.match([...encodeSyncPut(HEADER, [{ ...PUT_ENTRIES[0]!, content: '{"a":\n1}' }], { contentFramed: true })].join(''),
      /\{"a":\n1\}/);
    assert.throws(() => [...encodeSyncPut(HEADER, [{ ...PUT_ENTRIES[0]!, content: '{"a":\r1}' }], { contentInMeta: false })],
      InvalidContentError);
  });
  it('with contentInMeta false, sends each content once (raw line only) and parses back to the same entries', () => {
    const body = [...encodeSyncPut(HEADER, PUT_ENTRIES, { contentInMeta: false })].join('');
    assert.deepEqual(parsePut(body), expectedPutItems(HEADER, PUT_ENTRIES));
    for (const e of PUT_ENTRIES) {
      if (e.content === null) continue;
      assert.equal(body.split(e.content).length - 1, 1, 'each content appears exactly once');
    }
    const metaLines = body.split('\r\n').filter((l) => l.startsWith('{"id"'));
    assert.equal(metaLines.length, PUT_ENTRIES.length);
    for (const l of metaLines) assert.ok(!l.includes('"content"'), l);
  });

  const meta1 = '{"id":"D-1","rev":"r:1","content":null,"gen":1,"trans_id":"T","number_of_docs":1,"doc_idx":1}';
  const hdr = '{"last_known_generation":0,"last_known_trans_id":"","sync_id":"s","ensure":false}';
  const bad: Array<[string, string]> = [
    ['empty body', ''],
    ['first line not "["', `{${hdr}`],
    ['missing header', '[\r\n]'],
    ['header not JSON', '[\r\n{nope},\r\n]'],
    ['header not an object', '[\r\n[1]\r\n]'],
    ['header extra key', '[\r\n{"last_known_generation":0,"sync_id":"s","x":1}\r\n]'],
    ['header missing generation', '[\r\n{"sync_id":"s"}\r\n]'],
    ['header missing sync_id', '[\r\n{"last_known_generation":0}\r\n]'],
    ['header negative generation', '[\r\n{"last_known_generation":-1,"sync_id":"s"}\r\n]'],
    ['header ensure not bool', '[\r\n{"last_known_generation":0,"sync_id":"s","ensure":"yes"}\r\n]'],
    ['missing comma after header', `[\r\n${hdr}\r\n${meta1},\r\n\r\n]`],
    ['extra comma before "]"', `[\r\n${hdr},\r\n]`],
    ['extra comma after last content', `[\r\n${hdr},\r\n${meta1},\r\n,\r\n]`],
    ['missing comma after meta', `[\r\n${hdr},\r\n${meta1}\r\n\r\n]`],
    ['meta not JSON', `[\r\n${hdr},\r\n{"id":,\r\n\r\n]`],
    ['meta extra key', `[\r\n${hdr},\r\n${meta1.replace('}', ',"x":1}')},\r\n\r\n]`],
    ['meta missing key', `[\r\n${hdr},\r\n${meta1.replace(',"doc_idx":1', '')},\r\n\r\n]`],
    ['meta content wrong type', `[\r\n${hdr},\r\n${meta1.replace('"content":null', '"content":5')},\r\n\r\n]`],
    ['meta gen wrong type', `[\r\n${hdr},\r\n${meta1.replace('"gen":1', '"gen":"1"')},\r\n\r\n]`],
    ['missing content line', `[\r\n${hdr},\r\n${meta1},\r\n]`],
    ['no final "]"', `[\r\n${hdr},\r\n${meta1},\r\n`],
    ['truncated in header', `[\r\n{"last_known_gen`],
    ['data after "]"', `[\r\n${hdr}\r\n]\r\nmore`],
    ['content with a line break via meta', `[\r\n${hdr},\r\n${meta1.replace('"content":null', '"content":"a\\nb"')},\r\n\r\n]`],
  ];
  for (const [name, body] of bad) {
    it(`rejects: ${name}`, () => {
      assert.throws(() => parsePut(body), BadRequestError);
    });
  }
  it('rejects invalid UTF-8', () => {
    const body = Buffer.concat([Buffer.from(`[\r\n${hdr},\r\n${meta1},\r\n`), Buffer.from([0xff, 0xfe]), Buffer.from('\r\n]')]);
    assert.throws(() => parsePut(body), BadRequestError);
  });
  it('enforces the per-line limit without buffering beyond it', () => {
    const p = new SyncPutParser({ maxLineBytes: 64 });
    p.push(Buffer.from('[\r\n'));
    assert.throws(() => {
      for (let i = 0; i < 10; i++) p.push(Buffer.alloc(16, 0x61));
    }, BadRequestError);
    // A failed parser stays failed.
    assert.throws(() => p.push(Buffer.from('x')), BadRequestError);
    assert.throws(() => p.end(), BadRequestError);
    // Exactly at the limit is fine.
    const ok = `[\r\n${'{"last_known_generation":0,"sync_id":"' + 'x'.repeat(10) + '"}'}\r\n]`;
    const len = Buffer.byteLength(ok.split('\r\n')[1]!);
    assert.equal(parsePut(ok, len).length, 1);
    assert.throws(() => parsePut(ok, len - 1), BadRequestError);
  });
});

describe('upload response (§1c)', () => {
  it('encodes "[", object, "]" each followed by CRLF, and round-trips', () => {
    assert.equal(encodeSyncPutResponse({ new_generation: 3, new_transaction_id: 'T-3' }),
      '[\r\n{"new_generation":3,"new_transaction_id":"T-3"}\r\n]\r\n');
    const withUid = { new_generation: 1, new_transaction_id: 'T-1', replica_uid: 'r' };
    assert.equal(encodeSyncPutResponse(withUid), '[\r\n{"new_generation":1,"new_transaction_id":"T-1","replica_uid":"r"}\r\n]\r\n');
    assert.deepEqual(parseSyncPutResponse(encodeSyncPutResponse(withUid)), withUid);
    assert.deepEqual(parseSyncPutResponse('[\r\n{"new_generation": 2, "new_transaction_id": "T-2"}\r\n]\r\n'),
      { new_generation: 2, new_transaction_id: 'T-2' });
  });
  it('rejects malformed responses as a broken stream', () => {
    for (const t of ['', '[', '[]', '{"new_generation":1}', '[{"error":"x"}]', '[{"new_generation":"1","new_transaction_id":""}]']) {
      assert.throws(() => parseSyncPutResponse(t), BrokenSyncStreamError, t);
    }
  });
});

describe('download (§1d)', () => {
  it('request encodes as "[", header, "]" and parses back', () => {
    const text = encodeSyncGetRequest({ ...HEADER, ensure: true });
    assert.equal(text, '[\r\n{"last_known_generation":0,"last_known_trans_id":"","sync_id":"sid","ensure":true}\r\n]');
    assert.deepEqual(parseSyncGetRequest(text), { ...HEADER, ensure: true });
  });
  it('request parser rejects extra entries, commas and junk', () => {
    const h = '{"last_known_generation":0,"sync_id":"s"}';
    for (const t of [`[\r\n${h},\r\n]`, `[\r\n${h}`, `${h}`, `[\r\n${h}\r\n]x`, `[\r\n${h},\r\n{"id":"D"},\r\n\r\n]`]) {
      assert.throws(() => parseSyncGetRequest(t), BadRequestError, t);
    }
  });
  it('response encodes the fixed vector byte for byte', async () => {
    assert.equal([...encodeSyncGetResponse(GET_META, GET_ENTRIES)].join(''), GET_VECTOR);
    async function* src(): AsyncGenerator<SyncGetEntry> { yield* GET_ENTRIES; }
    const text = async (entries: AsyncIterable<SyncGetEntryOut> | Iterable<SyncGetEntryOut>): Promise<string> => {
      let out = '';
      for await (const piece of encodeSyncGetResponseAsync(GET_META, entries)) out += piece.toString();
      return out;
    };
    assert.equal(await text(src()), GET_VECTOR);
    // Content given as its UTF-8 bytes (as the embedded engine reads a large one) is sent the same.
    assert.equal(await text(GET_ENTRIES.map((e) => ({ ...e, content: e.content === null ? null : new Uint8Array(Buffer.from(e.content)) }))), GET_VECTOR);
    assert.equal([...encodeSyncGetResponse({ ...GET_META, number_of_changes: 0, replica_uid: 'u' }, [])].join(''),
      '[\r\n{"new_generation":5,"new_transaction_id":"T-5","number_of_changes":0,"replica_uid":"u"}\r\n]\r\n');
  });
  it('response pieces are whole entries joined up to the piece size; content given as bytes goes alone, uncopied', async () => {
    async function* src(): AsyncGenerator<SyncGetEntry> { yield* GET_ENTRIES; }
    const piecesOf = async (size?: number, entries: AsyncIterable<SyncGetEntryOut> | Iterable<SyncGetEntryOut> = src()): Promise<Array<string | Buffer>> => {
      const out: Array<string | Buffer> = [];
      for await (const piece of encodeSyncGetResponseAsync(GET_META, entries, size)) out.push(piece);
      return out;
    };
    assert.deepEqual(await piecesOf(), [GET_VECTOR]);
    const single = await piecesOf(1);
    assert.equal(single.length, GET_ENTRIES.length + 1, 'each entry alone once it reaches the size, then the end');
    assert.equal(single.join(''), GET_VECTOR);
    const mid = (await piecesOf(60)) as string[];
    assert.equal(mid.join(''), GET_VECTOR);
    assert.ok(mid.length > 1 && mid.length < single.length, String(mid.length));
    for (const piece of mid.slice(0, -1)) assert.ok(piece.length >= 60, piece);
    for (const piece of mid.slice(1, -1)) assert.ok(piece.startsWith(',\r\n{"id":'), piece);
    const content = Buffer.from(GET_ENTRIES[0]!.content!);
    const withBytes = await piecesOf(undefined, [{ ...GET_ENTRIES[0]!, content }, GET_ENTRIES[1]!]);
    assert.equal(withBytes.length, 3, 'what precedes it with its info line, the content, the rest');
    assert.equal(withBytes[1], content, 'the very buffer given');
    assert.equal(withBytes.map((p) => p.toString()).join(''), GET_VECTOR);
  });
  it('response parser reads the fixed vector, meta first', () => {
    assert.deepEqual(parseGet(GET_VECTOR), expectedGetItems(GET_META, GET_ENTRIES));
  });
  it('response parser yields items as soon as their lines complete', () => {
    const p = new SyncGetResponseParser();
    assert.deepEqual(p.push(Buffer.from('[\r\n{"new_generation":5,"new_transaction_id":"T-5","number_of_changes":2},')), []);
    assert.equal(p.push(Buffer.from('\r\n'))[0]?.type, 'meta');
    assert.deepEqual(p.push(Buffer.from('{"id":"D-1","rev":"r:1","gen":3,"trans_id":"T-3"},\r\n{"raw": "x"},')), []);
    const items = p.push(Buffer.from('\r\n'));
    assert.equal(items[0]?.type === 'doc' && items[0].entry.content, '{"raw": "x"}');
  });
  it('response parser keeps a lone LF inside content (the original splits on CRLF only)', () => {
    const body = '[\r\n{"new_generation":1,"new_transaction_id":"T","number_of_changes":1},\r\n' +
      '{"id":"D","rev":"r:1","gen":1,"trans_id":"T"},\r\n{"a":"x\ny"}\r\n]\r\n';
    const items = parseGet(body);
    assert.equal(items[1]?.type === 'doc' && items[1].entry.content, '{"a":"x\ny"}');
  });
  const m = '{"new_generation":1,"new_transaction_id":"T","number_of_changes":1}';
  const d = '{"id":"D","rev":"r:1","gen":1,"trans_id":"T"}';
  const bad: Array<[string, string]> = [
    ['empty', ''],
    ['not "["', `${m}\r\n]\r\n`],
    ['error body', '{"error": "unauthorized"}\r\n'],
    ['"error" entry as metadata', '[\r\n{"error":"revision conflict"}\r\n]\r\n'],
    ['"error" entry among documents', `[\r\n${m},\r\n{"error":"x"},\r\n\r\n]\r\n`],
    ['no final "]"', `[\r\n${m},\r\n${d},\r\n{"a":1}\r\n`],
    ['truncated mid-content', `[\r\n${m},\r\n${d},\r\n{"a":`],
    ['fewer documents than announced', `[\r\n${m}\r\n]\r\n`],
    ['more documents than announced', `[\r\n${m},\r\n${d},\r\n{},\r\n${d},\r\n{}\r\n]\r\n`],
    ['bad metadata JSON', '[\r\n{"new_generation":\r\n]\r\n'],
    ['metadata missing key', '[\r\n{"new_generation":1,"number_of_changes":0}\r\n]\r\n'],
    ['doc info missing key', `[\r\n${m},\r\n{"id":"D","rev":"r:1","gen":1},\r\n{}\r\n]\r\n`],
    ['missing comma after meta', `[\r\n${m}\r\n${d},\r\n{}\r\n]\r\n`],
    ['missing comma after doc info', `[\r\n${m},\r\n${d}\r\n{}\r\n]\r\n`],
    ['extra comma before "]"', `[\r\n${m},\r\n${d},\r\n{},\r\n]\r\n`],
    ['data after "]"', `[\r\n${m.replace('"number_of_changes":1', '"number_of_changes":0')}\r\n]\r\nx`],
  ];
  for (const [name, body] of bad) {
    it(`response parser rejects: ${name}`, () => {
      assert.throws(() => parseGet(body), BrokenSyncStreamError);
    });
  }
  describe('content streams', () => {
    /** A stream that records what it is given and answers the pieces joined (or gives up / refuses as told). */
    class Recorder {
      pieces: Buffer[] = [];
      discarded = false;
      constructor(readonly info: unknown, private readonly mode: 'ok' | 'give-up' | 'refuse') {}
      push(bytes: Buffer): boolean {
        this.pieces.push(Buffer.from(bytes));
        return this.mode !== 'give-up' || this.pieces.length < 2;
      }
      finish(content: Buffer): string | null {
        assert.deepEqual(Buffer.concat(this.pieces).subarray(0, Math.min(content.length, Buffer.concat(this.pieces).length)),
          content.subarray(0, Math.min(content.length, Buffer.concat(this.pieces).length)), 'pieces are the content\'s start');
        return this.mode === 'ok' ? `decoded:${content.toString()}` : null;
      }
      discard(): void {
        this.discarded = true;
      }
    }
    const big = (c: string): string => `{"raw": "${c.repeat(400)}"}`;
    const body = [
      '[\r\n{"new_generation":3,"new_transaction_id":"T-3","number_of_changes":3},',
      '\r\n{"id":"D-1","rev":"r:1","gen":1,"trans_id":"T-1"},\r\n', big('a'), ',',
      '\r\n{"id":"D-2","rev":"r:1","gen":2,"trans_id":"T-2"},\r\n{"small": 1},',
      '\r\n{"id":"D-3","rev":"r:1","gen":3,"trans_id":"T-3"},\r\n', big('b'), '\r\n]\r\n',
    ].join('');
    const run = (mode: 'ok' | 'give-up' | 'refuse', chunk: number) => {
      const opened: Recorder[] = [];
      const p = new SyncGetResponseParser<string>({
        streamContent: { minBytes: 20, open: (info) => { const r = new Recorder(info, mode); opened.push(r); return r; } },
      });
      const items = [];
      const bytes = Buffer.from(body);
      for (let i = 0; i < bytes.length; i += chunk) items.push(...p.push(bytes.subarray(i, i + chunk)));
      items.push(...p.end());
      return { items, opened };
    };
    it('a long content line arriving in pieces is handed over as it comes and answered as a streamed item', () => {
      for (const chunk of [7, 13, 64]) {
        const { items, opened } = run('ok', chunk);
        assert.deepEqual(items.map((i) => i.type), ['meta', 'streamed', 'doc', 'streamed'], `chunk ${chunk}`);
        const first = items[1]!;
        assert.ok(first.type === 'streamed');
        assert.deepEqual(first.info, { id: 'D-1', rev: 'r:1', gen: 1, trans_id: 'T-1' });
        // The structural comma is not content.
        assert.equal(first.result, `decoded:${big('a')}`);
        assert.equal(first.contentBytes, big('a').length);
        assert.equal(items[3]?.type === 'streamed' && items[3].result, `decoded:${big('b')}`);
        assert.equal(items[2]?.type === 'doc' && items[2].entry.content, '{"small": 1}', 'short lines are parsed as usual');
        assert.deepEqual(opened.map((r) => (r.info as { id: string }).id), ['D-1', 'D-3']);
      }
    });
    it('a stream that gives up or answers null leaves the line to the usual parse, with the same items', () => {
      const plain = parseGet(body);
      for (const mode of ['give-up', 'refuse'] as const) {
        const { items, opened } = run(mode, 9);
        assert.deepEqual(items, plain, mode);
        assert.ok(opened.length === 2);
        if (mode === 'give-up') assert.ok(opened.every((r) => r.discarded));
      }
    });
    it('a line that arrives whole is never streamed; a failing or closed parser discards its stream', () => {
      assert.deepEqual(run('ok', body.length).items.map((i) => i.type), ['meta', 'doc', 'doc', 'doc']);
      const opened: Recorder[] = [];
      const open = (info: unknown) => { const r = new Recorder(info, 'ok'); opened.push(r); return r; };
      // A line growing past the limit fails the parser while its stream is open.
      const broken = new SyncGetResponseParser<string>({ maxLineBytes: 200, streamContent: { minBytes: 20, open } });
      const head = Buffer.from(body.slice(0, body.indexOf('aaaa') + 30));
      broken.push(head);
      assert.equal(opened.length, 1);
      assert.throws(() => broken.push(Buffer.from('a'.repeat(300))), BrokenSyncStreamError);
      const closed = new SyncGetResponseParser<string>({ streamContent: { minBytes: 20, open } });
      closed.push(head);
      closed.close();
      assert.deepEqual(opened.map((r) => r.discarded), [true, true]);
      // More documents than announced is still refused when the extra one is streamed.
      const extra = body.replace('"number_of_changes":3', '"number_of_changes":2');
      const p = new SyncGetResponseParser<string>({ streamContent: { minBytes: 20, open } });
      const bytes = Buffer.from(extra);
      assert.throws(() => { for (let i = 0; i < bytes.length; i += 11) p.push(bytes.subarray(i, i + 11)); p.end(); }, BrokenSyncStreamError);
    });
  });
  it('response parser enforces the per-line limit', () => {
    assert.throws(() => parseGet(`[\r\n${m},\r\n${d},\r\n{"a":"${'x'.repeat(100)}"}\r\n]\r\n`, 64), BrokenSyncStreamError);
  });
});

describe('Authorization header (§5a)', () => {
  it('encodes like the original client and parses back', () => {
    const h = encodeTokenAuthorization('0123abcd', 's3cret:with:colons');
    assert.equal(h, `Token ${Buffer.from('0123abcd:s3cret:with:colons').toString('base64')}`);
    assert.deepEqual(parseTokenAuthorization(h), { uuid: '0123abcd', token: 's3cret:with:colons' });
  });
  it('accepts any scheme case and missing padding', () => {
    const b64 = Buffer.from('u:t1').toString('base64'); // "dTp0MQ=="
    assert.deepEqual(parseTokenAuthorization(`TOKEN ${b64.replace(/=+$/, '')}`), { uuid: 'u', token: 't1' });
    assert.deepEqual(parseTokenAuthorization(`token ${b64}`), { uuid: 'u', token: 't1' });
  });
  it('rejects other schemes, bad base64, no colon, empty parts', () => {
    const enc = (s: string): string => Buffer.from(s).toString('base64');
    for (const h of [undefined, '', 'Basic ' + enc('u:t'), 'Token', 'Token !!!!', 'Token ' + enc('nocolon'),
      'Token ' + enc(':t'), 'Token ' + enc('u:'), 'Token a', 'Token ' + enc('u:t') + ' extra']) {
      assert.equal(parseTokenAuthorization(h), null, String(h));
    }
  });
});

// ---- properties ----

const jsonContent = fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean()), { maxKeys: 4 })
  .map((o) => JSON.stringify(o));
const rev = fc.stringMatching(/^[a-f0-9]{1,8}:[1-9][0-9]{0,3}$/);
const putEntries = fc.array(fc.record({
  id: fc.stringMatching(/^D-[a-f0-9]{1,12}$/), rev, content: fc.option(jsonContent, { nil: null }),
  gen: fc.nat(), trans_id: fc.string({ maxLength: 12 }),
}), { maxLength: 6 }).map((xs) => xs.map((x, i): SyncPutEntry => ({ ...x, number_of_docs: xs.length, doc_idx: i + 1 })));
const header = fc.record({ last_known_generation: fc.nat(), last_known_trans_id: fc.string({ maxLength: 10 }),
  sync_id: fc.string({ maxLength: 36 }), ensure: fc.boolean() }).map((h): SyncHeader => ({ ...h }));
const getEntries = fc.array(fc.record({
  id: fc.stringMatching(/^D-[a-f0-9]{1,12}$/), rev, gen: fc.nat(), trans_id: fc.string({ maxLength: 12 }),
  content: fc.option(jsonContent, { nil: null }),
}).map((e): SyncGetEntry => ({ ...e })), { maxLength: 6 });
const cuts = fc.array(fc.nat(), { maxLength: 12 });

describe('properties', () => {
  it('upload: any chunking parses to the same items as the encoder\'s input', () => {
    fc.assert(fc.property(header, putEntries, cuts, (h, entries, cs) => {
      const body = Buffer.from([...encodeSyncPut(h, entries)].join(''));
      const p = new SyncPutParser();
      const items: SyncPutItem[] = [];
      for (const chunk of splitAt(body, cs)) items.push(...p.push(chunk));
      items.push(...p.end());
      assert.deepEqual(items, expectedPutItems(h, entries));
    }), { numRuns: 300 });
  });
  it('download: any chunking parses to the same items as the encoder\'s input', () => {
    fc.assert(fc.property(fc.nat(), fc.string({ maxLength: 10 }), getEntries, cuts, (gen, tid, entries, cs) => {
      const meta: SyncGetMeta = { new_generation: gen, new_transaction_id: tid, number_of_changes: entries.length };
      const body = Buffer.from([...encodeSyncGetResponse(meta, entries)].join(''));
      const p = new SyncGetResponseParser();
      const items: SyncGetItem[] = [];
      for (const chunk of splitAt(body, cs)) items.push(...p.push(chunk));
      items.push(...p.end());
      assert.deepEqual(items, expectedGetItems(meta, entries));
    }), { numRuns: 300 });
  });
  const garbage = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    // Mutations of valid bodies find the interesting edges faster than random bytes.
    fc.tuple(fc.constantFrom(PUT_VECTOR, GET_VECTOR), fc.nat(), fc.nat({ max: 5 }), fc.uint8Array({ maxLength: 4 }))
      .map(([base, at, del, ins]) => {
        const b = Buffer.from(base);
        const i = at % (b.length + 1);
        return new Uint8Array(Buffer.concat([b.subarray(0, i), Buffer.from(ins), b.subarray(Math.min(b.length, i + del))]));
      }),
  );
  it('garbage only ever raises BadRequestError (upload parser)', () => {
    fc.assert(fc.property(garbage, cuts, (bytes, cs) => {
      try {
        const p = new SyncPutParser({ maxLineBytes: 150 });
        for (const chunk of splitAt(Buffer.from(bytes), cs)) p.push(chunk);
        p.end();
      } catch (err) {
        assert.ok(err instanceof BadRequestError, String(err));
      }
    }), { numRuns: 1000 });
  });
  it('an upload parser keeping content as bytes answers the same as the one decoding it, for any body', () => {
    /** Items with content bytes decoded, or the error's message. */
    const outcome = (parser: SyncPutParser<SyncPutItem> | SyncPutParser<SyncPutItemIn>, body: Buffer, cs: number[]): unknown => {
      try {
        const items: Array<SyncPutItem | SyncPutItemIn> = [];
        for (const chunk of splitAt(body, cs)) items.push(...parser.push(chunk));
        items.push(...parser.end());
        return items.map((it) => it.type === 'doc' && Buffer.isBuffer(it.entry.content)
          ? { ...it, entry: { ...it.entry, content: it.entry.content.toString('utf8') } } : it);
      } catch (err) {
        assert.ok(err instanceof BadRequestError, String(err));
        return err.message;
      }
    };
    const valid = fc.tuple(header, putEntries, fc.boolean()).map(([h, entries, inMeta]) =>
      new Uint8Array(Buffer.from([...encodeSyncPut(h, entries, { contentInMeta: inMeta })].join(''))));
    fc.assert(fc.property(fc.oneof(valid, garbage), cuts, (bytes, cs) => {
      const body = Buffer.from(bytes);
      const bytesParser = SyncPutParser.keepingContentBytes({ maxLineBytes: 4096 });
      assert.deepEqual(outcome(bytesParser, body, cs), outcome(new SyncPutParser({ maxLineBytes: 4096 }), body, cs));
    }), { numRuns: 1000 });
    const rawOnly = PUT_VECTOR.replace(',"content":"{\\"raw\\": \\"EzcB\\"}"', '');
    const [, doc] = [...SyncPutParser.keepingContentBytes().push(Buffer.from(rawOnly))];
    assert.ok(doc?.type === 'doc' && Buffer.isBuffer(doc.entry.content), 'content read from its raw line is bytes');
    assert.equal(doc.entry.content.toString(), '{"raw": "EzcB"}');
  });
  it('garbage only ever raises BrokenSyncStreamError (download parser)', () => {
    fc.assert(fc.property(garbage, cuts, (bytes, cs) => {
      try {
        const p = new SyncGetResponseParser({ maxLineBytes: 150 });
        for (const chunk of splitAt(Buffer.from(bytes), cs)) p.push(chunk);
        p.end();
      } catch (err) {
        assert.ok(err instanceof BrokenSyncStreamError, String(err));
      }
    }), { numRuns: 1000 });
  });
});
