/**
 * End to end: a trusted application delivers messages through a real server process's Services API (as
 * examples/mx-delivery.ts does), and the `soledad` command line inspects and drains the incoming box with its
 * built-in consumer: each payload becomes a blob plus an `incoming` document, byte-identical, visible on a
 * second device, and gone from the box.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from '../e2e/server-process.js';
import { deliver, encryptForRecipient, type DeliveryTarget } from '../../examples/mx-delivery.js';
import { HttpClient } from '../../src/client/http/client.js';
import { IncomingRemote } from '../../src/client/incoming/remote.js';
import { lines, runSoledad, startSoledad, type CliResult } from './run-cli.js';

const PASSPHRASE = 'correct horse battery staple';

let server: ServerProcess;
let dir: string;
let uuid: string;
let target: DeliveryTarget;
let token: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'soledad-cli-incoming-'));
  const serviceToken = randomBytes(24).toString('base64url');
  const tokensFile = join(dir, 'services.tokens');
  writeFileSync(tokensFile, `mx:${serviceToken}\n`, { mode: 0o600 });
  server = await startServerProcess(`services_tokens_file = ${tokensFile}\n[incoming-namespaces]\nmx = MX, CAL\n`);
  target = { servicesUrl: server.servicesUrl, service: 'mx', token: serviceToken };
  uuid = randomUUID().replace(/-/g, '');
  token = await server.token(uuid);
  for (const profile of ['laptop', 'phone']) {
    ok(await sol(profile, ['init', '--server', server.url, '--uuid', uuid, '--token', token, '--ca', server.certFile]), `init ${profile}`);
  }
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function env(): Record<string, string> {
  return { SOLEDAD_CONFIG_DIR: join(dir, 'config'), SOLEDAD_PASSPHRASE: PASSPHRASE };
}

function sol(profile: string, args: string[]): Promise<CliResult> {
  return runSoledad(['--profile', profile, ...args], { env: env() });
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}`);
  return r;
}

function json<T>(r: CliResult): T {
  return JSON.parse(r.stdout) as T;
}

async function put(payload: Buffer, namespace?: string): Promise<string> {
  const id = randomBytes(16).toString('hex');
  const { status, error } = await deliver(target, uuid, id, payload, namespace);
  assert.equal(status, 200, `delivery refused: ${JSON.stringify(error)}`);
  return id;
}

type Listing = { namespace: string; pending: number; messages: Array<{ id: string; state: string; size: number | null; receivedAt: string | null; encryption: string | null }> };
type Report = { processed: Array<{ itemId: string; docId: string; blobId: string; size: number; uploaded: boolean }>; failed: unknown[]; skipped: string[] };
type DocJson = { id: string; content: Record<string, unknown> | null };

describe('soledad incoming list|process against a real server', () => {
  const payloads = new Map<string, Buffer>();

  it('list shows an empty box, then the delivered messages with state, size, arrival and encryption', async () => {
    const empty = json<Listing>(ok(await sol('laptop', ['incoming', 'list', '--json']), 'list empty'));
    assert.deepEqual(empty, { namespace: 'MX', pending: 0, messages: [] });

    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const mail = encryptForRecipient(publicKey, Buffer.from('From: a@example.org\nSubject: hi\n\nhello\n'));
    const binary = randomBytes(300_000);
    const text = Buffer.from('Subject: plain\n\nnot encrypted at all, ünïcode too\n');
    const before = Date.now();
    for (const p of [mail, binary, text]) payloads.set(await put(p), p);

    const listing = json<Listing>(ok(await sol('laptop', ['incoming', 'list', '--json']), 'list'));
    assert.equal(listing.pending, 3);
    assert.deepEqual(listing.messages.map((m) => m.id).sort(), [...payloads.keys()].sort());
    for (const m of listing.messages) {
      assert.equal(m.state, 'PENDING');
      assert.equal(m.size, payloads.get(m.id)!.length, 'the payload size, without the server header');
      assert.equal(m.encryption, 'pgp', 'the default declared encryption');
      const at = Date.parse(m.receivedAt!);
      assert.ok(at >= Math.floor(before / 1000) * 1000 && at <= Date.now(), `receivedAt ${m.receivedAt}`);
    }

    const asText = ok(await sol('laptop', ['incoming', 'list']), 'list text');
    const rows = lines(asText.stdout);
    assert.equal(rows.at(-1), '3 messages in MX, 3 pending');
    for (const id of payloads.keys()) assert.match(asText.stdout, new RegExp(`^${id}  PENDING  \\S+ \\S+  \\S+  pgp$`, 'm'));
    assert.equal(asText.stderr, '');
  });

  it('process stores each payload as a blob plus an incoming document, and empties the box', async () => {
    const report = json<Report>(ok(await sol('laptop', ['incoming', 'process', '--json']), 'process'));
    assert.deepEqual(report.failed, []);
    assert.deepEqual(report.processed.map((p) => p.itemId).sort(), [...payloads.keys()].sort());
    for (const p of report.processed) {
      assert.equal(p.docId, `incoming-${p.itemId}`);
      assert.equal(p.size, payloads.get(p.itemId)!.length);
      assert.equal(p.uploaded, true);
    }

    const after = json<Listing>(ok(await sol('laptop', ['incoming', 'list', '--json']), 'list after'));
    assert.deepEqual([after.pending, after.messages], [0, []], 'processed messages are gone from the box');

    const docs = json<{ docs: DocJson[] }>(ok(await sol('laptop', ['doc', 'list', '--json']), 'doc list')).docs;
    assert.equal(docs.length, 3);
    for (const doc of docs) {
      const c = doc.content!;
      const payload = payloads.get(String(c['itemId']))!;
      assert.equal(doc.id, `incoming-${String(c['itemId'])}`);
      assert.equal(c['type'], 'incoming');
      assert.equal(c['namespace'], 'MX');
      assert.equal(c['size'], payload.length);
      assert.equal(c['encrypted'], true);
      assert.equal(c['encryption'], 'pgp');
      assert.equal(c['blob_id'], doc.id);
      assert.ok(!Number.isNaN(Date.parse(String(c['receivedAt']))));
      const file = join(dir, `${doc.id}.bin`);
      ok(await sol('laptop', ['blob', 'get', String(c['blob_id']), '-o', file]), 'blob get');
      assert.ok(readFileSync(file).equals(payload), `blob of ${doc.id} is byte-identical to the delivered payload`);
      const textPayload = payload.toString('utf8').startsWith('Subject: plain');
      assert.equal(c['contentType'], textPayload ? 'text/plain; charset=utf-8' : undefined);
    }
  });

  it('another device sees the documents after a sync and reads the payloads', async () => {
    ok(await sol('phone', ['sync']), 'sync phone');
    for (const [id, payload] of payloads) {
      const out = join(dir, `phone-${id}.bin`);
      ok(await sol('phone', ['attach', 'get', `incoming-${id}`, out]), 'attach get');
      assert.ok(readFileSync(out).equals(payload), 'downloaded from the server, byte-identical');
    }
    const again = ok(await sol('phone', ['incoming', 'process']), 'process empty box');
    assert.equal(again.stdout, 'incoming MX: processed 0, failed 0, skipped 0\n');
  });

  it('process --watch takes messages as they arrive and stops cleanly on Ctrl-C', async () => {
    const watch = startSoledad(['--profile', 'phone', 'incoming', 'process', '--watch', '--interval', '1', '--namespace', 'CAL'], { env: env() });
    try {
      const payload = randomBytes(5000);
      const id = await put(payload, 'CAL');
      const line = await watch.waitForLine(/^processed /);
      assert.match(line, new RegExp(`^processed ${id} → doc incoming-${id}, blob incoming-${id} \\(4\\.9 KiB\\)$`));
      const r = await watch.stop('SIGINT');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^stopped: processed 1, failed 0$/m);
      const out = join(dir, 'cal.bin');
      ok(await sol('laptop', ['sync']), 'sync laptop');
      ok(await sol('laptop', ['blob', 'get', `incoming-${id}`, '-o', out]), 'blob get on the other device');
      assert.ok(readFileSync(out).equals(payload));
      const cal = json<Listing>(ok(await sol('laptop', ['incoming', 'list', '--namespace', 'CAL', '--json']), 'list CAL'));
      assert.deepEqual(cal.messages, []);
    } finally {
      await watch.stop('SIGKILL');
    }
  });

  it('a message another device holds is listed as PROCESSING and left alone', async () => {
    const payload = Buffer.from('held elsewhere');
    const id = await put(payload);
    const http = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid, token });
    const otherDevice = new IncomingRemote(http, uuid);
    try {
      await otherDevice.transition('MX', id, 'PROCESSING', 'other-device');
      const listing = json<Listing>(ok(await sol('laptop', ['incoming', 'list', '--json']), 'list'));
      assert.deepEqual(listing.messages.map((m) => [m.id, m.state, m.size]), [[id, 'PROCESSING', payload.length]]);
      assert.equal(listing.pending, 0);
      const report = json<Report>(ok(await sol('laptop', ['incoming', 'process', '--json']), 'process held'));
      assert.deepEqual([report.processed, report.failed], [[], []]);

      await otherDevice.transition('MX', id, 'PENDING', 'other-device'); // the other device gives it back
      const taken = json<Report>(ok(await sol('laptop', ['incoming', 'process', '--json']), 'process released'));
      assert.deepEqual(taken.processed.map((p) => p.itemId), [id]);
    } finally {
      await http.close();
    }
  });

  it('an unreachable server is one ConnectionError line and exit code 1', async () => {
    ok(await sol('dead', ['init', '--server', server.url, '--uuid', uuid, '--token', token, '--ca', server.certFile]), 'init dead');
    ok(await sol('dead', ['init', '--force', '--server', 'https://127.0.0.1:9/', '--uuid', uuid, '--token', token]), 'init --force');
    for (const command of ['list', 'process']) {
      const r = await sol('dead', ['incoming', command]);
      assert.equal(r.code, 1, `incoming ${command}: ${r.stderr}`);
      const errLines = lines(r.stderr);
      assert.equal(errLines.length, 1, r.stderr);
      assert.match(errLines[0]!, /^ConnectionError: .+ — .+/);
    }
  });

  it('a bad option is one UsageError line and exit code 2', async () => {
    const r = await sol('laptop', ['incoming', 'list', '--limit', '0']);
    assert.equal(r.code, 2);
    assert.equal(lines(r.stderr).length, 1);
    assert.match(r.stderr, /^UsageError: .*--limit.* — /);
  });
});
