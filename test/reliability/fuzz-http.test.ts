/**
 * HTTP fuzzing of a live server process over raw TLS: random methods, paths built from the real routes and then
 * bent (traversal, encoded slashes, overlong ids, unicode, NUL), broken or huge headers, oversized, truncated and
 * mistyped bodies, and protocol-level garbage. Every answer must be a 4xx/5xx carrying an error body, or — for
 * garbage the HTTP parser itself refuses, or a client that stops half-way — a clean connection close; never a
 * hang. The process must stay up, its memory bounded, and nothing may be written outside its data directory.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { Counter, listFiles, removeDir, scaled, seed, tempDir } from './common.js';
import { rawExchange } from './http.js';
import { startServer, type Server } from './server.js';

const SEED = seed();
const MARK = `pwn${randomBytes(4).toString('hex')}`;
let server: Server;
let sandbox: string;
let ca: Buffer;
const USER = randomBytes(16).toString('hex');
let token = '';
const counter = new Counter('fuzz', 'HTTP requests to a live server');
const notes: string[] = [`seed ${SEED}`];

before(async () => {
  sandbox = tempDir('fuzz-http');
  for (const d of ['cwd', 'home', 'tmp']) mkdirSync(join(sandbox, d));
  server = await startServer({
    cwd: join(sandbox, 'cwd'),
    env: { HOME: join(sandbox, 'home'), TMPDIR: join(sandbox, 'tmp') },
    config: 'headers_timeout = 3s\nbody_timeout = 3s\nquota_bytes = 20MiB\n',
  });
  ca = readFileSync(server.certFile);
  token = await server.mint(USER);
});

after(async () => {
  counter.record(notes);
  await server.stop();
  removeDir(sandbox);
});

interface Case {
  raw: Buffer;
  body?: Buffer[];
  endAfterBody?: boolean;
  /** The request is well-formed HTTP: an answer is due (else a clean close is fine). */
  wellFormed: boolean;
  /** A request that may legitimately succeed (public resources, or a valid token on a valid request). */
  mayPass: boolean;
  label: string;
}

const traversal = ['..', '%2e%2e', '%2E%2E%2F', '..%2f..%2f', '%252e%252e', '.%00.', '..;', `..%2F..%2F..%2Ftmp%2F${MARK}`, `../../../../tmp/${MARK}`];
const ids = fc.oneof(
  fc.constantFrom('b1', 'msg1', MARK, 'a'.repeat(300), 'x'.repeat(5000), '%00', 'é', '%C3%A9', '%FF%FE', '\u00ff\u00fe', ' ', '%20', '%2F', '..', '.', ''),
  fc.constantFrom(...traversal),
  fc.stringMatching(/^[A-Za-z0-9_%.-]{1,40}$/),
);
const queries = fc.constantFrom('', '?namespace=../../x', '?namespace=MX', '?only_count=true', '?order_by=nope', '?direction=download', '?a=%ZZ', '?' + 'q'.repeat(3000));
const usersPaths = fc.oneof(
  fc.tuple(fc.constantFrom(`/blobs/${USER}/`, `/blobs/${USER}/`, '/shared/doc/', `/user-${USER}/sync-from/`, `/stream/${USER}/`, `/quota/`, '/incoming/x/', '/user-', '/', ''), ids)
    .map(([p, id]) => `${p}${id}`),
  fc.tuple(fc.constantFrom(...traversal), ids).map(([t, id]) => `/blobs/${USER}/${t}/${id}`),
  fc.constantFrom('/', '/robots.txt', '/shared', `/blobs/${USER}/`, `/quota/${USER}`, '//', '/./', '/%2e/', '*', 'http://evil/', `/user-${USER}//sync-from/x`),
  fc.string({ maxLength: 60 }).map((s) => `/${encodeURIComponent(s)}`),
).chain((p) => queries.map((q) => p + q));
/** The Services API's one route (delivery into a user's incoming box), bent the same ways. */
const servicesPaths = fc.oneof(
  fc.tuple(fc.constantFrom(`/incoming/${USER}/`, `/incoming/${USER}/`, '/incoming/', `/incoming/${USER}`, '/incoming/not-a-uuid/', `/blobs/${USER}/`, '/'), ids)
    .map(([p, id]) => `${p}${id}`),
  fc.tuple(fc.constantFrom(...traversal), ids).map(([t, id]) => `/incoming/${USER}/${t}/${id}`),
  fc.constantFrom('/', '/robots.txt', '//', '*', 'http://evil/', `/incoming/${USER}//x`, `/incoming/${'u'.repeat(5000)}/x`),
  fc.string({ maxLength: 60 }).map((s) => `/incoming/${encodeURIComponent(s)}`),
).chain((p) => queries.map((q) => p + q));
const methods = fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'get', 'G\u00c9T', 'X'.repeat(100));
const auth = fc.oneof(
  fc.constant<string | null>(null),
  fc.constant(`Token ${Buffer.from(`${USER}:wrong`).toString('base64')}`),
  fc.constant('VALID'),
  fc.constantFrom('Token', 'Token ', 'Token !!!', 'Basic YTpi', `Token ${'A'.repeat(20_000)}`, 'Token =', 'token Og==', `Token ${Buffer.from(':').toString('base64')}`),
  fc.uint8Array({ maxLength: 60 }).map((u) => `Token ${Buffer.from(u).toString('base64')}`),
);
const contentTypes = fc.constantFrom(undefined, 'application/json', 'application/x-soledad-sync-put', 'application/x-soledad-sync-get',
  'application/octet-stream', 'text/html', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '\u00ff/\u00fe', '');
const bodies = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.uint8Array({ maxLength: 2000 }).map((u) => Buffer.from(u)),
  fc.constantFrom('[', '{}', '[\r\n{"last_known_generation": 0, "sync_id": "x"}\r\n]', '["PROCESSED"]', '["b1","b2"]', 'null', '{"generation": -1}')
    .map((s) => Buffer.from(s)),
  fc.nat({ max: 4 }).map((mb) => randomBytes(mb * 1024 * 1024 + 17)),
);
const framing = fc.constantFrom('exact', 'exact', 'chunked', 'short', 'long', 'both', 'none');
const extraHeaders = fc.array(fc.constantFrom(
  'x-a: b', `x-big: ${'h'.repeat(20_000)}`, 'authorization: Token Zm9vOmJhcg==', 'content-length: 5', 'transfer-encoding: gzip',
  'host: other', 'expect: 100-continue', 'connection: keep-alive', 'range: bytes=0-10', 'range: bytes=99999999-', 'x-u: \u00e9\u00ff',
), { maxLength: 3 });

/** Requests for one listener: its paths, and the credential that is valid there. */
const caseArb = (paths: fc.Arbitrary<string>, validAuthorization: () => string): fc.Arbitrary<Case> => fc.oneof(
  { weight: 9, arbitrary: fc.record({ method: methods, path: paths, auth, ct: contentTypes, body: bodies, framing, extra: extraHeaders })
    .map((r): Case => {
      const lines = [`${r.method} ${r.path} HTTP/1.1`, 'host: localhost', 'connection: close'];
      const authorization = r.auth === 'VALID' ? validAuthorization() : r.auth;
      if (authorization !== null) lines.push(`authorization: ${authorization}`);
      if (r.ct !== undefined) lines.push(`content-type: ${r.ct}`);
      let body = [r.body];
      let endAfterBody = false;
      if (r.framing === 'exact') lines.push(`content-length: ${r.body.length}`);
      if (r.framing === 'long') {
        lines.push(`content-length: ${r.body.length + 1000}`);
        endAfterBody = true;
      }
      if (r.framing === 'short') lines.push(`content-length: ${Math.floor(r.body.length / 2)}`);
      if (r.framing === 'chunked' || r.framing === 'both') {
        lines.push('transfer-encoding: chunked');
        body = [Buffer.from(`${r.body.length.toString(16)}\r\n`), r.body, Buffer.from('\r\n0\r\n\r\n')];
      }
      if (r.framing === 'both') lines.push(`content-length: ${r.body.length}`);
      lines.push(...r.extra);
      const method = r.method.toUpperCase();
      const path = r.path.split('?')[0]!;
      const wellFormed = /^[A-Z]+$/.test(r.method) && r.method.length < 20 && r.path.startsWith('/') && !/[\u0080-\u00ff ]/.test(r.path) &&
        !r.extra.some((h) => h.startsWith('x-big') || h.startsWith('content-length') || h.startsWith('transfer-encoding') || h.startsWith('x-u')) &&
        !(authorization ?? '').includes('AAAAAAAAAAAAAAAAAAAA') && r.framing !== 'both' && r.framing !== 'long' && r.ct !== '\u00ff/\u00fe' &&
        r.path.length < 8000 && (r.framing !== 'none' || r.body.length === 0);
      const mayPass = ((method === 'GET' || method === 'HEAD' || method === 'OPTIONS') && (path === '/' || path === '/robots.txt')) ||
        r.auth === 'VALID' || r.extra.some((h) => h.startsWith('authorization'));
      return {
        raw: Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body, endAfterBody, wellFormed, mayPass,
        label: `${r.method.slice(0, 12)} ${r.path.slice(0, 80)} auth=${(r.auth ?? 'none').slice(0, 20)} ct=${r.ct ?? '-'} body=${r.body.length} ${r.framing} ${r.extra.map((h) => h.slice(0, 12)).join(',')}`,
      };
    }) },
  { weight: 1, arbitrary: fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((u) => Buffer.from(u)),
    fc.constantFrom('GET\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', 'GET /\r\n\r\n', '\r\n\r\n\r\n', 'GET / HTTP/1.1\r\nhost: a\r\nbad header\r\n\r\n',
      'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', 'GET / HTTP/1.1\r\n' + 'x: y\r\n'.repeat(5000) + '\r\n').map((s) => Buffer.from(s, 'latin1')),
  ).map((raw): Case => ({
    // An HTTP/0.9-style `GET /` is served the public index, like any GET /.
    raw, wellFormed: false, mayPass: /^GET \/( |\r)/.test(raw.toString('latin1')),
    label: `garbage ${JSON.stringify(raw.toString('latin1').slice(0, 40))}`,
  })) },
);

function decodeChunked(body: string): string {
  if (!/^[0-9a-fA-F]+\r\n/.test(body)) return body;
  let out = '';
  let rest = body;
  for (;;) {
    const m = /^([0-9a-fA-F]+)\r\n/.exec(rest);
    if (m === null) return out;
    const n = parseInt(m[1]!, 16);
    if (n === 0) return out;
    out += rest.slice(m[0].length, m[0].length + n);
    rest = rest.slice(m[0].length + n + 2);
  }
}

/**
 * Send `cases` to one listener, a few at a time like several clients, and judge every answer: a 4xx/5xx with an
 * error body, or a clean close for what the HTTP parser itself refuses; a pass only where a pass is legitimate.
 */
async function fuzz(target: { port: number; ca?: Buffer; name: string }, cases: Case[]): Promise<{ failures: string[]; peakRss: number }> {
  const failures: string[] = [];
  let passed = 0;
  let closed = 0;
  let peakRss = 0;
  const run = async (c: Case): Promise<void> => {
    const res = await rawExchange({
      port: target.port, ...(target.ca === undefined ? {} : { ca: target.ca }), head: c.raw.toString('latin1'), timeoutMs: 15_000,
      ...(c.body === undefined ? {} : { body: (async function* () { yield* c.body!; })() }),
      ...(c.endAfterBody === true ? { endAfterBody: true } : {}),
    });
    const body = decodeChunked(res.body);
    const isHead = c.raw.toString('latin1').startsWith('HEAD ');
    let problem: string | null = null;
    if (res.timedOut) problem = 'HANG: no answer and no close within 15 s';
    else if (res.status === 0) {
      closed += 1;
      if (c.wellFormed && !c.endAfterBody) problem = 'a well-formed request got no answer';
    } else if (res.status < 400) {
      if (!c.mayPass) problem = `accepted (${res.status})`;
      else passed += 1;
    } else {
      const parserAnswer = !/content-type:/i.test(res.headers); // Node's HTTP parser refusing protocol garbage
      const hasBody = /"error"\s*:/.test(body) || (res.status === 401 && body.trim() === 'Unauthorized');
      if (!hasBody && !isHead && !(parserAnswer && !c.wellFormed)) problem = `${res.status} without an error body: ${res.headers.slice(0, 120)} ${body.slice(0, 80)}`;
    }
    if (problem !== null) failures.push(`${target.name}: ${c.label} → ${problem}`);
    counter.add(problem === null, problem === null ? undefined : `${target.name}: ${c.label} → ${problem}`);
    const rss = server.rss();
    if (rss !== undefined) peakRss = Math.max(peakRss, rss.current);
  };
  for (let i = 0; i < cases.length; i += 6) {
    await Promise.all(cases.slice(i, i + 6).map(run));
    assert.ok(server.alive(), `the server died after ${target.name} case ${i}: ${server.output().slice(-2000)}`);
  }
  notes.push(`${target.name}: ${cases.length} requests: ${passed} legitimately accepted, ${closed} closed without an answer (protocol garbage or a client that stopped), peak RSS ${Math.round(peakRss / 1048576)} MiB`);
  return { failures, peakRss };
}

/** Still serving, memory bounded, and nothing written outside the data directory. */
async function assertContained(baseline: number, peakRss: number): Promise<void> {
  const check = await rawExchange({ port: server.httpsPort, ca, head: 'GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n' });
  assert.equal(check.status, 200);
  assert.ok(peakRss < baseline + 300 * 1048576, `RSS grew from ${baseline} to ${peakRss}`);
  // (tsx, which runs the TypeScript sources in tests, keeps its compile cache in TMPDIR: not the server's doing.)
  for (const d of ['cwd', 'home', 'tmp']) {
    assert.deepEqual(readdirSync(join(sandbox, d)).filter((f) => !f.startsWith('tsx-')), [], `the server wrote into its ${d}`);
  }
  for (const f of ['/tmp', join(sandbox, '..')].flatMap((d) => readdirSync(d))) assert.ok(!f.includes(MARK), `a traversal wrote ${f}`);
  // (users/.spare/ holds empty databases the engine builds ahead for new users.)
  const unexpected = listFiles(server.dataDir).filter((f) =>
    !/^(soledad-server\.conf|services\.tokens|(tokens|shared)\.db(-wal|-shm)?|tls\/server\.(crt|key)|users\/user-[0-9a-f]{32}\.db(-wal|-shm)?|users\/\.spare\/(spare|building)-[0-9a-f]{16}\.db(-wal|-shm)?|blobs\/[0-9a-f]{32}\/[A-Za-z0-9_-]+\/.+)$/.test(f));
  assert.deepEqual(unexpected, [], 'only the expected files in the data directory');
  assert.ok(!listFiles(server.dataDir).some((f) => f.includes('..')), 'no traversal inside the data directory');
}

describe('HTTP fuzzing of a live server', () => {
  it('every answer is an error with a body or a clean close; the server stays up, bounded, inside its data directory', async () => {
    const baseline = server.rss()?.current ?? 0;
    const cases = fc.sample(caseArb(usersPaths, () => encodeTokenAuthorization(USER, token)), { numRuns: scaled(600, 60), seed: SEED });
    const { failures, peakRss } = await fuzz({ port: server.httpsPort, ca, name: 'Users API' }, cases);
    await assertContained(baseline, peakRss);
    assert.deepEqual(failures.slice(0, 20), []);
  });

  it('the Services API (loopback, delivery only) holds up the same way', async () => {
    const baseline = server.rss()?.current ?? 0;
    const cases = fc.sample(caseArb(servicesPaths, () => encodeTokenAuthorization('incoming', server.servicesToken)),
      { numRuns: scaled(200, 30), seed: SEED ^ 0x2545f491 });
    const { failures, peakRss } = await fuzz({ port: server.servicesPort, name: 'Services API' }, cases);
    await assertContained(baseline, peakRss);
    assert.deepEqual(failures.slice(0, 20), []);
  });
});
