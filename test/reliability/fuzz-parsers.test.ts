/**
 * Property-based fuzzing of every parser that reads bytes somebody else wrote: the sync stream (both directions,
 * byte-level mutations of valid streams fed in random chunks), sync info and small sync bodies, the preamble and
 * encrypted document content, blob ciphertext, the index expression language, the server configuration, the
 * services tokens file, the `Authorization` header, the blob protocol bodies, revisions and the secrets document.
 *
 * For every input: no crash, no hang (each case is timed), and a failure is always a named error of the
 * catalogue (`SoledadError`) of the kind the caller expects; a success satisfies the parser's own invariants.
 * Seed: `SOLEDAD_RELIABILITY_SEED`; runs: `SOLEDAD_RELIABILITY_SCALE`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  BadRequestError,
  BrokenSyncStreamError,
  ConfigError,
  IndexDefinitionParseError,
  InvalidPreambleError,
  SecretsFileCorruptedError,
  SoledadError,
  WrongPassphraseError,
} from '../../src/common/errors.js';
import {
  encodeSyncGetResponse,
  encodeSyncInfo,
  encodeSyncPut,
  encodeSyncPutResponse,
  encodeSyncGetRequest,
  encodeRecordSyncInfo,
  parseRecordSyncInfo,
  parseSyncGetRequest,
  parseSyncInfo,
  parseSyncPutResponse,
  SyncGetResponseParser,
  SyncPutParser,
  type SyncGetEntry,
  type SyncHeader,
  type SyncPutEntry,
} from '../../src/common/protocol/sync-stream.js';
import { decodePreamble, decodePreambleB64, encodePreamble, encodePreambleB64, EncMethod, EncScheme } from '../../src/common/crypto/preamble.js';
import { decryptDocContent, encryptDocContent } from '../../src/common/crypto/doc-crypto.js';
import { decryptBlobStream, encryptBlobStream } from '../../src/common/crypto/blob-crypto.js';
import { parseIndexExpression } from '../../src/common/u1db/index-expression.js';
import { parseRev } from '../../src/common/u1db/vectorclock.js';
import { loadConfig } from '../../src/server/config.js';
import { parseServicesTokens } from '../../src/server/auth/services-tokens.js';
import { encodeTokenAuthorization, parseTokenAuthorization } from '../../src/common/protocol/auth.js';
import {
  decodeStreamFrameHeader,
  encodeStreamManifest,
  parseBoolParam,
  parseOrderBy,
  parseStreamDownloadRequest,
  parseStreamManifest,
} from '../../src/common/protocol/blobs.js';
import { decryptSecrets, encryptSecretsV2, generateSecrets, serializeSecretsFile } from '../../src/client/secrets/format.js';
import { Counter, scaled, seed } from './common.js';

const SEED = seed();
/** A parser that takes longer than this on a few kilobytes is hanging (catastrophic backtracking, a loop). */
const HANG_MS = 2_000;
const counters: Counter[] = [];

after(() => {
  for (const c of counters) c.record([`seed ${SEED}`]);
});

type ErrorClass = abstract new (...args: never[]) => SoledadError;

/**
 * Run a property: `run` either returns (then `check` may assert invariants) or throws; a throw must be an
 * instance of one of `allowed`. Every case is counted and timed.
 */
function fuzz<T>(group: string, arb: fc.Arbitrary<T>, runs: number, allowed: readonly ErrorClass[], run: (input: T) => void): void {
  const counter = new Counter('fuzz', group);
  counters.push(counter);
  try {
    fc.assert(fc.property(arb, (input) => {
      const t0 = performance.now();
      let ok = true;
      let failure = '';
      try {
        run(input);
      } catch (err) {
        if (!allowed.some((cls) => err instanceof cls)) {
          ok = false;
          failure = `${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
        }
      }
      const ms = performance.now() - t0;
      if (ms > HANG_MS) {
        ok = false;
        failure = `took ${Math.round(ms)} ms`;
      }
      counter.add(ok, failure);
      if (!ok) throw new Error(failure);
    }), { numRuns: runs, seed: SEED, endOnFailure: true });
  } finally {
    // fast-check shrinks after a failure: count only the first failing case and what ran before it.
  }
}

async function fuzzAsync<T>(group: string, arb: fc.Arbitrary<T>, runs: number, allowed: readonly ErrorClass[],
  run: (input: T) => Promise<void>): Promise<void> {
  const counter = new Counter('fuzz', group);
  counters.push(counter);
  await fc.assert(fc.asyncProperty(arb, async (input) => {
    const t0 = performance.now();
    let ok = true;
    let failure = '';
    try {
      await run(input);
    } catch (err) {
      if (!allowed.some((cls) => err instanceof cls)) {
        ok = false;
        failure = `${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
      }
    }
    const ms = performance.now() - t0;
    if (ms > HANG_MS * 5) {
      ok = false;
      failure = `took ${Math.round(ms)} ms`;
    }
    counter.add(ok, failure);
    if (!ok) throw new Error(failure);
  }), { numRuns: runs, seed: SEED, endOnFailure: true });
}

// ---- byte-level mutations of a valid input ----

type Edit =
  | { op: 'flip'; pos: number; bit: number }
  | { op: 'delete'; pos: number; len: number }
  | { op: 'insert'; pos: number; bytes: Uint8Array }
  | { op: 'truncate'; pos: number }
  | { op: 'duplicate'; pos: number; len: number }
  | { op: 'crlf-to-lf'; pos: number }
  | { op: 'set'; pos: number; byte: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('delete' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ op: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 8 }),
    fc.constantFrom(...['\r\n', ',', ']', '[', '{', '}', '"', ':', '\\', ',\r\n', '{"error": "x"}', '\u0000', '\uffff', 'null']
      .map((s) => new Uint8Array(Buffer.from(s, 'utf8')))),
  ) }),
  fc.record({ op: fc.constant('truncate' as const), pos: fc.nat() }),
  fc.record({ op: fc.constant('duplicate' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ op: fc.constant('crlf-to-lf' as const), pos: fc.nat() }),
  fc.record({ op: fc.constant('set' as const), pos: fc.nat(), byte: fc.constantFrom(0x00, 0x0a, 0x0d, 0x22, 0x2c, 0x5c, 0x7b, 0x7d, 0x80, 0xc3, 0xff) }),
);

function applyEdits(input: Buffer, edits: readonly Edit[]): Buffer {
  let b = Buffer.from(input);
  for (const e of edits) {
    const pos = b.length === 0 ? 0 : e.pos % (b.length + 1);
    switch (e.op) {
      case 'flip':
        if (pos < b.length) b[pos]! ^= 1 << e.bit;
        break;
      case 'set':
        if (pos < b.length) b[pos] = e.byte;
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + e.len)]);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, pos), Buffer.from(e.bytes), b.subarray(pos)]);
        break;
      case 'truncate':
        b = b.subarray(0, pos);
        break;
      case 'duplicate':
        b = Buffer.concat([b.subarray(0, pos + e.len), b.subarray(pos, pos + e.len), b.subarray(pos + e.len)]);
        break;
      case 'crlf-to-lf': {
        const at = b.indexOf('\r\n', pos);
        if (at >= 0) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
        break;
      }
    }
  }
  return b;
}

/** Split a buffer at random points (the network decides chunk boundaries). */
function chunksOf(b: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % b.length)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

const text = fc.string({ maxLength: 30 });
const lineSafe = fc.string({ maxLength: 60 }).map((s) => s.replace(/[\r\n]/g, ''));
const docId = fc.oneof(fc.constant('D-0123abcd'), fc.stringMatching(/^[A-Za-z0-9_.-]{1,40}$/), lineSafe.filter((s) => s !== ''));
const rev = fc.oneof(fc.constant('a1b2:1'), fc.stringMatching(/^[a-f0-9]{4,32}:[1-9][0-9]{0,3}(\|[a-f0-9]{4,32}:[1-9][0-9]{0,3}){0,2}$/), lineSafe);
const content = fc.oneof(
  fc.constant(null),
  fc.constant('{"raw": "EzcBAAAAAAAA ZmFrZQ"}'),
  fc.json({ maxDepth: 2 }).map((j) => j.replace(/[\r\n]/g, '')),
  lineSafe,
);
const getEntries: fc.Arbitrary<SyncGetEntry[]> = fc.array(
  fc.record({ id: docId, rev, gen: fc.nat({ max: 1e6 }), trans_id: text.map((s) => s.replace(/[\r\n]/g, '')), content }),
  { maxLength: 6 },
);
const header: fc.Arbitrary<SyncHeader> = fc.record({
  last_known_generation: fc.nat({ max: 1e9 }), last_known_trans_id: text, sync_id: text, ensure: fc.boolean(),
});
const cuts = fc.array(fc.nat(), { maxLength: 8 });
const edits = fc.array(edit, { minLength: 1, maxLength: 4 });
const garbage = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.from(u)),
  fc.string({ maxLength: 400 }).map((s) => Buffer.from(s, 'utf8')),
  fc.array(fc.constantFrom('[', ']', ',', '\r\n', '{}', '{"new_generation": 1, "new_transaction_id": "", "number_of_changes": 1}',
    '{"id": "a", "rev": "b:1", "gen": 1, "trans_id": "t"}', '"', 'null', '{"error": 1}'), { maxLength: 20 })
    .map((parts) => Buffer.from(parts.join(''))),
);

describe('fuzz: sync stream parsers', () => {
  const runs = scaled(1500, 50);

  it('download response (client side): mutated valid streams in random chunks → BrokenSyncStreamError or a consistent result', () => {
    fuzz('sync download response (mutated)', fc.tuple(fc.nat({ max: 1e6 }), text, getEntries, edits, cuts), runs, [BrokenSyncStreamError],
      ([gen, tid, entries, es, cs]) => {
        const body = Buffer.from([...encodeSyncGetResponse({ new_generation: gen, new_transaction_id: tid.replace(/[\r\n]/g, ''),
          number_of_changes: entries.length }, entries)].join(''));
        const p = new SyncGetResponseParser({ maxLineBytes: 4096 });
        const items = [];
        for (const c of chunksOf(applyEdits(body, es), cs)) items.push(...p.push(c));
        items.push(...p.end());
        // Accepted: exactly one meta first, then exactly as many documents as it announced.
        const meta = items[0];
        assert.ok(meta !== undefined && meta.type === 'meta', 'the metadata comes first');
        assert.equal(items.length - 1, meta.meta.number_of_changes);
        for (const it of items.slice(1)) {
          assert.equal(it.type, 'doc');
          // Lines end at CRLF only (as in the original client); a lone LF is data, a CRLF never is.
          if (it.type === 'doc' && it.entry.content !== null) assert.ok(!it.entry.content.includes('\r\n'), 'no CRLF inside content');
        }
      });
  });

  it('download response: arbitrary bytes → BrokenSyncStreamError', () => {
    fuzz('sync download response (garbage)', fc.tuple(garbage, cuts), runs, [BrokenSyncStreamError], ([bytes, cs]) => {
      const p = new SyncGetResponseParser({ maxLineBytes: 300 });
      for (const c of chunksOf(bytes, cs)) p.push(c);
      p.end();
    });
  });

  it('upload body (server side): mutated valid streams in random chunks → BadRequestError or consistent entries', () => {
    const putEntries: fc.Arbitrary<SyncPutEntry[]> = getEntries.map((es) =>
      es.map((e, i) => ({ ...e, number_of_docs: es.length, doc_idx: i + 1 })));
    fuzz('sync upload body (mutated)', fc.tuple(header, putEntries, edits, cuts), runs, [BadRequestError], ([h, entries, es, cs]) => {
      const body = Buffer.from([...encodeSyncPut(h, entries)].join(''));
      const p = new SyncPutParser({ maxLineBytes: 4096 });
      const items = [];
      for (const c of chunksOf(applyEdits(body, es), cs)) items.push(...p.push(c));
      items.push(...p.end());
      assert.equal(items[0]?.type, 'header');
      for (const it of items.slice(1)) {
        assert.equal(it.type, 'doc');
        if (it.type === 'doc' && it.entry.content !== null) assert.ok(!/[\r\n]/.test(it.entry.content), 'no line break inside content');
      }
    });
  });

  it('upload body: arbitrary bytes → BadRequestError', () => {
    fuzz('sync upload body (garbage)', fc.tuple(garbage, cuts), runs, [BadRequestError], ([bytes, cs]) => {
      const p = new SyncPutParser({ maxLineBytes: 300 });
      for (const c of chunksOf(bytes, cs)) p.push(c);
      p.end();
    });
  });

  it('sync info, upload answer, record-sync-info and download request bodies', () => {
    const info = fc.record({
      target_replica_uid: text, target_replica_generation: fc.nat(), target_replica_transaction_id: text,
      source_replica_uid: text, source_replica_generation: fc.nat(), source_transaction_id: text,
    });
    fuzz('sync info (mutated)', fc.tuple(info, edits), runs, [BrokenSyncStreamError], ([i, es]) => {
      const parsed = parseSyncInfo(applyEdits(Buffer.from(encodeSyncInfo(i)), es).toString('utf8'));
      assert.ok(Number.isSafeInteger(parsed.target_replica_generation) && parsed.target_replica_generation >= 0, 'generation');
    });
    fuzz('upload answer (mutated)', fc.tuple(fc.nat(), text, edits), runs, [BrokenSyncStreamError], ([g, t, es]) => {
      const parsed = parseSyncPutResponse(applyEdits(Buffer.from(encodeSyncPutResponse({ new_generation: g, new_transaction_id: t })), es).toString('utf8'));
      assert.ok(Number.isSafeInteger(parsed.new_generation) && parsed.new_generation >= 0, 'generation');
    });
    fuzz('record sync info (mutated)', fc.tuple(fc.nat(), text, edits), runs, [BadRequestError], ([g, t, es]) => {
      parseRecordSyncInfo(applyEdits(Buffer.from(encodeRecordSyncInfo({ generation: g, transaction_id: t })), es).toString('utf8'));
    });
    fuzz('download request (mutated)', fc.tuple(header, edits), runs, [BadRequestError], ([h, es]) => {
      parseSyncGetRequest(applyEdits(Buffer.from(encodeSyncGetRequest(h)), es).toString('utf8'));
    });
  });
});

describe('fuzz: preamble and ciphertext', () => {
  const runs = scaled(1500, 50);
  const secret = randomBytes(512);

  it('preamble decoder: mutated and random preambles → InvalidPreambleError or a decoded preamble', () => {
    const valid = fc.tuple(docId, rev).map(([id, r]) => encodePreamble({ docId: id.slice(0, 200), rev: r.slice(0, 200),
      scheme: EncScheme.symkey, method: EncMethod.aes_256_gcm, iv: randomBytes(16), contentSize: 4096 }));
    fuzz('preamble (raw bytes)', fc.oneof(
      fc.tuple(valid, edits).map(([b, es]) => applyEdits(b, es)),
      fc.uint8Array({ maxLength: 700 }).map((u) => Buffer.from(u)),
      fc.constantFrom(542, 552).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }).map((u) => Buffer.from(u))),
    ), runs, [InvalidPreambleError], (raw) => {
      const p = decodePreamble(raw);
      assert.ok(p.rawDocId.length <= 254 && p.rawRev.length <= 254, 'pascal strings');
    });
    fuzz('preamble (base64url text)', fc.oneof(
      fc.tuple(valid, edits).map(([b, es]) => applyEdits(Buffer.from(encodePreambleB64(b)), es).toString('latin1')),
      fc.string({ maxLength: 800 }),
    ), runs, [InvalidPreambleError], (t) => {
      decodePreambleB64(t);
    });
  });

  it('encrypted document content: any mutation → a named crypto error, never other plaintext', () => {
    fuzz('encrypted document content', fc.tuple(docId, rev, fc.json({ maxDepth: 2 }), edits), runs, [SoledadError], ([id, r, json, es]) => {
      const c = encryptDocContent(secret, id, r, json);
      const mutated = applyEdits(Buffer.from(c, 'utf8'), es).toString('utf8');
      let plain: string;
      try {
        plain = decryptDocContent(secret, id, r, mutated);
      } catch (err) {
        assert.ok(err instanceof SoledadError && ['MAC_MISMATCH', 'TAMPERED_DOCUMENT', 'INVALID_PREAMBLE', 'ENCRYPTION_SCHEME_NOT_IMPLEMENTED'].includes(err.code),
          `${(err as Error).name}`);
        return;
      }
      // Base64 decoders skip characters they do not know: such a mutation changes nothing that is authenticated.
      assert.equal(plain, json);
    });
  });

  it('blob ciphertext stream: any mutation → a named error, never other plaintext', async () => {
    const blobRuns = scaled(200, 20);
    await fuzzAsync('blob ciphertext stream', fc.tuple(fc.uint8Array({ maxLength: 3000 }), edits, cuts), blobRuns, [SoledadError],
      async ([plainBytes, es, cs]) => {
        const plain = Buffer.from(plainBytes);
        const chunks: Buffer[] = [];
        await pipeline(Readable.from([plain]), encryptBlobStream(secret, 'blob-1', plain.length), async (src: AsyncIterable<Buffer>) => {
          for await (const c of src) chunks.push(c);
        });
        const mutated = applyEdits(Buffer.concat(chunks), es);
        const out: Buffer[] = [];
        await pipeline(Readable.from(chunksOf(mutated, cs)), decryptBlobStream(secret, 'blob-1'), async (src: AsyncIterable<Buffer>) => {
          for await (const c of src) out.push(c);
        });
        assert.ok(Buffer.concat(out).equals(plain), 'decryption succeeded with other plaintext');
      });
  });
});

describe('fuzz: index expressions, revisions', () => {
  const runs = scaled(2000, 50);
  const token = fc.constantFrom('lower(', 'upper(', 'number(', 'bool(', 'split_words(', 'combine(', 'is_null(', 'offset(',
    ')', ',', '.', 'a', 'b.c', ' ', '8', '-1', '"x"', '*', '(', 'é', '\u0000', 'name');
  it('index expression parser → IndexDefinitionParseError or an expression', () => {
    fuzz('index expression', fc.oneof(
      fc.array(token, { maxLength: 30 }).map((t) => t.join('')),
      fc.string({ maxLength: 60 }),
      fc.nat({ max: 5000 }).map((n) => `${'lower('.repeat(n)}a${')'.repeat(n)}`),
      fc.nat({ max: 20000 }).map((n) => `${'a.'.repeat(n)}b`),
    ), runs, [IndexDefinitionParseError], (t) => {
      parseIndexExpression(t);
    });
  });
  it('revision parser → a named error or a vector clock', () => {
    fuzz('revision', fc.oneof(rev, fc.string({ maxLength: 80 }), fc.array(fc.constantFrom('a', ':', '|', '1', '0', '-1', 'x:', '99999999999999999999'), { maxLength: 20 }).map((p) => p.join(''))),
      runs, [SoledadError], (r) => {
        parseRev(r);
      });
  });
});

describe('fuzz: configuration and credentials', () => {
  const runs = scaled(1500, 50);
  const keys = ['backend', 'data_dir', 'quota_bytes', 'blobs', 'batching', 'concurrent_blob_writes', 'postgres_url', 'postgres_schema',
    'couch_url', 'create_cmd', 'services_tokens_file', 'incoming_processing_threshold', 'incoming_max_failures',
    'incoming_quota_tolerance', 'incoming_delete_permanently_failed', 'tls_cert', 'tls_key', '__proto__', 'constructor', 'x[]'];
  const values = fc.oneof(fc.constantFrom('', '0', '1', '-1', 'true', 'no', '200MiB', '1e3', '99999999999999999999', 'sqlite', 'postgres',
    'couch', 'nope', '10m', '1.5h', 'MX, , x y', '"quoted"', '[a]', '=', ';comment', '\u00e9'), fc.string({ maxLength: 20 }));
  const line = fc.oneof(
    fc.tuple(fc.constantFrom(...keys), values).map(([k, v]) => `${k} = ${v}`),
    fc.constantFrom('[soledad-server]', '[incoming-namespaces]', '[database-security]', '[', ']', '= x', 'members = a,b', 'incoming = MX, BAD NS'),
    fc.string({ maxLength: 30 }),
  );
  const env = fc.dictionary(fc.constantFrom('HTTPS_PORT', 'LOCAL_SERVICES_PORT', 'SOLEDAD_DATA_DIR', 'CERT_PATH', 'PRIVKEY_PATH',
    'SOLEDAD_POSTGRES_URL', 'SOLEDAD_COUCH_URL', 'SOLEDAD_LOG_TO_STDOUT'), values, { maxKeys: 4 });

  it('config file and environment → ConfigError naming a key, or a configuration', () => {
    fuzz('config (INI + env)', fc.tuple(fc.array(line, { maxLength: 12 }), env), runs, [ConfigError], ([lines, e]) => {
      const c = loadConfig(e, lines.join('\n'));
      assert.ok(Number.isSafeInteger(c.quotaBytes) && c.quotaBytes >= 0, 'quota');
      assert.ok(c.httpsPort >= 0 && c.httpsPort <= 65535, 'port');
    });
  });

  it('services tokens file → ConfigError or a map of service → token', () => {
    fuzz('services tokens file', fc.array(fc.oneof(
      fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 })).map(([s, t]) => `${s}:${t}`),
      fc.constantFrom('', '# c', ':', 'a:', ':b', 'a:b:c', '  x : y  ', '\r'),
      fc.string({ maxLength: 20 }),
    ), { maxLength: 10 }).map((l) => l.join('\n')), runs, [ConfigError], (t) => {
      for (const [k, v] of parseServicesTokens(t)) assert.ok(k !== '' && v !== '', 'non-empty service and token');
    });
  });

  it('Authorization header → null or credentials that round-trip; it never throws', () => {
    fuzz('Authorization header', fc.oneof(
      fc.string({ maxLength: 100 }),
      fc.uint8Array({ maxLength: 60 }).map((u) => `Token ${Buffer.from(u).toString('base64')}`),
      fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 })).map(([u, t]) => encodeTokenAuthorization(u, t)),
      fc.tuple(fc.constantFrom('Token ', 'token ', 'Basic ', 'Token  ', ' Token\t', 'Bearer '), fc.string({ maxLength: 60 })).map(([a, b]) => a + b),
    ), runs, [], (h) => {
      const creds = parseTokenAuthorization(h);
      if (creds !== null) {
        assert.ok(creds.uuid !== '' && creds.token !== '' && !creds.uuid.includes(':'), 'credentials shape');
        assert.deepEqual(parseTokenAuthorization(encodeTokenAuthorization(creds.uuid, creds.token)), creds);
      }
    });
  });

  it('blob protocol bodies and query values → BadRequestError or valid values', () => {
    const ids = fc.array(fc.oneof(fc.stringMatching(/^[a-zA-Z0-9_-]{1,20}$/), fc.string({ maxLength: 10 })), { maxLength: 5 });
    fuzz('stream manifest', fc.oneof(
      fc.tuple(ids, edits).map(([is, es]) => applyEdits(Buffer.from(encodeStreamManifest(is.map((b, i) => ({ blobId: b, size: i })))), es).toString('utf8')),
      fc.json(),
    ), runs, [BadRequestError], (t) => {
      for (const e of parseStreamManifest(t)) assert.ok(Number.isSafeInteger(e.size) && e.size >= 0, 'size');
    });
    fuzz('stream download request', fc.oneof(ids.map((is) => JSON.stringify(is)), fc.json(), fc.string({ maxLength: 40 })), runs,
      [BadRequestError], (t) => {
        parseStreamDownloadRequest(t);
      });
    fuzz('stream frame header', fc.oneof(fc.uint8Array({ minLength: 33, maxLength: 33 }).map((u) => Buffer.from(u)),
      fc.string({ minLength: 33, maxLength: 33 }).map((s) => Buffer.from(s, 'latin1')), fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u))),
    runs, [BadRequestError], (b) => {
      const h = decodeStreamFrameHeader(b);
      assert.ok(h.size >= 0 && h.size <= 0xffffffff, 'size');
    });
    fuzz('blob query values', fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })), runs, [BadRequestError], ([a, b]) => {
      try {
        parseBoolParam(a, 'x');
      } finally {
        parseOrderBy(b);
      }
    });
  });

  it('secrets document (from disk or the server\'s recovery document) → a named error or the secrets', async () => {
    const doc = await encryptSecretsV2(generateSecrets(), 'pass');
    const textDoc = serializeSecretsFile(doc);
    await fuzzAsync('secrets document', fc.oneof(
      edits.map((es) => applyEdits(Buffer.from(textDoc), es).toString('utf8')),
      fc.json({ maxDepth: 3 }),
      fc.record({ version: fc.constantFrom(1, 2, 3, '2', null), kdf: fc.constantFrom('scrypt', 'pbkdf2'), kdf_length: fc.constantFrom(32, 64),
        cipher: fc.constantFrom('aes_256_gcm', 'aes256', 1), length: fc.nat({ max: 2000 }), kdf_salt: fc.base64String({ maxLength: 40 }),
        iv: fc.base64String({ maxLength: 40 }), secrets: fc.base64String({ maxLength: 80 }) }).map((o) => JSON.stringify(o)),
    ), scaled(40, 10), [SecretsFileCorruptedError, WrongPassphraseError], async (t) => {
      const out = await decryptSecrets(t, 'pass');
      assert.equal(out.secrets.remoteSecret.length, 512);
    });
  });
});
