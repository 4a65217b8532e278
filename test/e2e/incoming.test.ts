/**
 * The incoming box end to end, every party in its own process: a real `soledad-server`, a trusted application
 * delivering over the Services API, and replicas of the user running the processing loop. Every scenario runs on
 * each engine of `SOLEDAD_TEST_BACKENDS` (default: sqlite, postgres, couch):
 *
 * - 500 messages (200 on the shared engines) delivered while two replicas process concurrently: each processed
 *   exactly once, none lost;
 * - a replica SIGKILLed while it holds reservations: they lapse after PROCESSING_THRESHOLD and the other replica
 *   finishes the work;
 * - over quota: the trusted app gets 507 with a JSON error, nothing of it is stored or reserved, and with the
 *   filesystem blob store (sqlite, couch engines) no file (not even a partial one) is left;
 * - the Services API listens on loopback only and refuses bad tokens; the public listener has no delivery route;
 * - on PostgreSQL: two server processes sharing one database, one replica on each, still exactly once.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { deliver, encryptForRecipient } from '../../examples/mx-delivery.js';
import { HttpClient } from '../../src/client/http/client.js';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { Soledad } from '../../src/index.js';
import { blobStoreOf } from '../../src/server/backends/index.js';
import {
  dropPgSchema, engineSelected, freshPgSchema, postgresTestUrl, serverEngineConfig, testEngines, type ServerEngineConfig,
  type TestEngine,
} from '../backends/engines.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const PASSPHRASE = 'incoming e2e passphrase';
const THRESHOLD_S = 3;
/** Messages of the exactly-once scenario per engine: the full 500 on the embedded engine, fewer on the others. */
const EXACTLY_ONCE_COUNT: Record<TestEngine, number> = { sqlite: 500, postgres: 200, couch: 200 };

/** A child process speaking JSON lines. */
interface Child {
  readonly proc: ChildProcess;
  readonly events: Array<Record<string, unknown>>;
  /** Wait until `pred` holds over the events so far. */
  until(pred: (events: Array<Record<string, unknown>>) => boolean, ms: number, what: string): Promise<void>;
  /** Ask a replica to stop and wait for it to exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  output(): string;
}

const children: Child[] = [];

function spawnTs(file: string, arg: unknown): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(FIXTURES, file), JSON.stringify(arg)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const events: Array<Record<string, unknown>> = [];
  let log = '';
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    log += `${line}\n`;
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not ours
    }
  });
  proc.stderr!.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const child: Child = {
    proc,
    events,
    async until(pred, ms, what) {
      const end = Date.now() + ms;
      while (!pred(events)) {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${file} exited while waiting for ${what}:\n${log}`);
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${log.slice(-4000)}`);
        await sleep(20);
      }
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.stdin!.write('stop\n');
      await Promise.race([exited, sleep(30_000).then(() => proc.kill('SIGKILL'))]);
      await exited;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    output: () => log,
  };
  children.push(child);
  return child;
}

const ids = (events: Array<Record<string, unknown>>, event: string): string[] =>
  events.filter((e) => e['event'] === event).map((e) => e['id'] as string);

interface User {
  uuid: string;
  token: string;
}

/** Everything one server process needs around it. */
interface Setup {
  server: ServerProcess;
  serviceToken: string;
  dir: string;
}

async function startWithTokens(extra = ''): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'soledad-e2e-incoming-'));
  const serviceToken = randomBytes(18).toString('base64url');
  const tokensFile = join(dir, 'services.tokens');
  writeFileSync(tokensFile, `# trusted apps\n\nmx:${serviceToken}\n`);
  const server = await startServerProcess(`services_tokens_file = ${tokensFile}\nincoming_processing_threshold = ${THRESHOLD_S}s\n${extra}`);
  return { server, serviceToken, dir };
}

async function newUser(server: ServerProcess): Promise<User> {
  const uuid = randomUUID().replace(/-/g, '');
  return { uuid, token: await server.token(uuid) };
}

function replicaArgs(setup: Setup, server: ServerProcess, user: User, name: string, privateKeyPem: string, extra: Record<string, unknown> = {}): unknown {
  return {
    serverUrl: server.url, certFile: server.certFile, uuid: user.uuid, token: user.token, passphrase: PASSPHRASE,
    dir: join(setup.dir, `${user.uuid}-${name}`), privateKeyPem, intervalMs: 50, ...extra,
  };
}

/** Start a replica and wait until it is ready; the first replica of a user creates (and uploads) its secrets. */
async function startReplica(args: unknown): Promise<Child> {
  const r = spawnTs('incoming-replica.ts', args);
  await r.until((ev) => ev.some((e) => e['event'] === 'ready'), 60_000, 'replica ready');
  return r;
}

function keys(): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

async function remaining(server: ServerProcess, user: User, query: Record<string, string> = {}): Promise<string[]> {
  const http = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid: user.uuid, token: user.token });
  try {
    return await http.json<string[]>({ method: 'GET', path: `/blobs/${user.uuid}/`, query: { namespace: 'MX', ...query } });
  } finally {
    await http.close();
  }
}

/** A fresh device of the user syncs and returns the mail documents. */
async function mailDocs(setup: Setup, server: ServerProcess, user: User): Promise<Array<{ docId: string; rev: string; subject: string; conflicts: boolean }>> {
  const dir = join(setup.dir, `${user.uuid}-checker-${randomBytes(3).toString('hex')}`);
  const sol = await Soledad.open({
    uuid: user.uuid, passphrase: PASSPHRASE, secretsPath: join(dir, 'soledad.json'), localDbPath: join(dir, 'soledad.u1db'),
    serverUrl: server.url, certFile: server.certFile, authToken: user.token,
  });
  try {
    await sol.sync();
    const { docs } = await sol.getAllDocs();
    return docs.filter((d) => d.content?.['type'] === 'mail')
      .map((d) => ({ docId: d.docId, rev: d.rev ?? '', subject: String(d.content?.['subject']), conflicts: d.hasConflicts }));
  } finally {
    await sol.close();
  }
}

/** The exactly-once check shared by the filesystem and PostgreSQL runs. */
async function exactlyOnce(
  setup: Setup,
  servers: [ServerProcess, ServerProcess],
  count: number,
): Promise<void> {
  const user = await newUser(servers[0]);
  const { publicKeyPem, privateKeyPem } = keys();
  const a = await startReplica(replicaArgs(setup, servers[0], user, 'a', privateKeyPem));
  const b = await startReplica(replicaArgs(setup, servers[1], user, 'b', privateKeyPem));
  // The trusted app delivers while both replicas already run their loops (to both servers when there are two).
  const apps = servers[0] === servers[1]
    ? [spawnTs('trusted-app.ts', {
      servicesUrl: servers[0].servicesUrl, service: 'mx', token: setup.serviceToken, uuid: user.uuid, count, publicKeyPem, prefix: 'm', concurrency: 8,
    })]
    : servers.map((s, i) => spawnTs('trusted-app.ts', {
      servicesUrl: s.servicesUrl, service: 'mx', token: setup.serviceToken, uuid: user.uuid, count: count / 2, publicKeyPem, prefix: `s${i}m`, concurrency: 4,
    }));
  for (const app of apps) await app.until((ev) => ev.length > 0, 120_000, 'deliveries');
  const delivered = apps.flatMap((app) => app.events[0]!['delivered'] as string[]);
  const refused = apps.flatMap((app) => app.events[0]!['refused'] as unknown[]);
  assert.deepEqual(refused, []);
  assert.equal(delivered.length, count);
  const all = () => [...ids(a.events, 'processed'), ...ids(b.events, 'processed')];
  await a.until(() => all().length >= count, 180_000, `${count} messages processed`);
  // Give a duplicate, if any, the time to show up.
  await sleep(1500);
  await Promise.all([a.stop(), b.stop()]);
  const byA = ids(a.events, 'processed');
  const byB = ids(b.events, 'processed');
  assert.deepEqual([...byA, ...byB].sort(), [...delivered].sort(), 'every message processed exactly once');
  assert.deepEqual(byA.filter((id) => byB.includes(id)), [], 'no message processed by both replicas');
  assert.ok(byA.length > 0 && byB.length > 0, `both replicas worked (${byA.length} / ${byB.length})`);
  assert.deepEqual(ids([...a.events, ...b.events], 'failed'), []);
  assert.ok([...a.events, ...b.events].every((e) => e['event'] !== 'processed' || e['confirmed'] === true));
  assert.deepEqual(await remaining(servers[0], user), [], 'processed messages are deleted on the server');
  // The documents the consumers saved reached the server once each: one document per message, each written by
  // one replica only (a second processing would have added a revision from the other replica or a conflict).
  const docs = await mailDocs(setup, servers[0], user);
  assert.equal(docs.length, count);
  assert.deepEqual(docs.map((d) => d.docId.slice('mail-'.length)).sort(), [...delivered].sort());
  for (const d of docs) {
    assert.equal(d.conflicts, false, d.docId);
    assert.equal(d.rev.split('|').length, 1, `${d.docId} was written by more than one replica: ${d.rev}`);
    assert.match(d.subject, /^message \d+$/);
  }
}

for (const engine of testEngines()) {
  describe(`incoming box, end to end on ${engine}`, () => {
    let setup: Setup;
    let engineConfig: ServerEngineConfig;
    before(async () => {
      engineConfig = await serverEngineConfig(engine);
      setup = await startWithTokens(engineConfig.config);
    });
    after(async () => {
      for (const c of children) await c.kill();
      await setup?.server.stop();
      await engineConfig?.teardown();
      if (setup !== undefined) rmSync(setup.dir, { recursive: true, force: true });
    });

    const count = EXACTLY_ONCE_COUNT[engine];
    it(`${count} messages delivered by a trusted-app process while two replicas process: each exactly once`, async () => {
      await exactlyOnce(setup, [setup.server, setup.server], count);
    });

    it('a replica killed while holding reservations: they lapse after the threshold and the other replica finishes', async () => {
      const user = await newUser(setup.server);
      const { publicKeyPem, privateKeyPem } = keys();
      const target = { servicesUrl: setup.server.servicesUrl, service: 'mx', token: setup.serviceToken };
      const all: string[] = [];
      for (let i = 0; i < 10; i++) {
        const id = `k${i}`;
        const mail = Buffer.from(`Subject: message ${i}\n\nbody ${i}\n`);
        assert.equal((await deliver(target, user.uuid, id, encryptForRecipient(publicKeyPem, mail))).status, 200);
        all.push(id);
      }
      const doomed = await startReplica(replicaArgs(setup, setup.server, user, 'doomed', privateKeyPem, { hang: true, concurrency: 2 }));
      await doomed.until((ev) => ids(ev, 'holding').length >= 2, 30_000, 'reservations held');
      const held = ids(doomed.events, 'holding');
      assert.deepEqual((await remaining(setup.server, user, { filter_flag: 'PROCESSING' })).sort(), [...held].sort());
      const killedAt = Date.now();
      await doomed.kill();

      const survivor = await startReplica(replicaArgs(setup, setup.server, user, 'survivor', privateKeyPem, { intervalMs: 200 }));
      await survivor.until((ev) => ids(ev, 'processed').length >= all.length - held.length, 60_000, 'the free messages');
      // The held ones are still reserved by the dead replica until the threshold passes (counted from its last
      // renewal, at most a third of the threshold before it died)…
      const early = ids(survivor.events, 'processed');
      if (Date.now() - killedAt < (THRESHOLD_S * 2 / 3) * 1000 - 200) {
        assert.deepEqual(early.filter((id) => held.includes(id)), [], 'taken before the reservation lapsed');
      }
      // …then the survivor takes them over.
      await survivor.until((ev) => ids(ev, 'processed').length >= all.length, 60_000, 'the held messages after the threshold');
      const tookOver = Date.now() - killedAt;
      assert.ok(tookOver >= (THRESHOLD_S * 2 / 3) * 1000 - 200, `took over after ${tookOver} ms, threshold ${THRESHOLD_S} s`);
      await sleep(500);
      await survivor.stop();
      assert.deepEqual(ids(survivor.events, 'processed').sort(), [...all].sort(), 'each exactly once, by the survivor');
      assert.deepEqual(ids(doomed.events, 'processed'), []);
      assert.deepEqual(await remaining(setup.server, user), []);
      const docs = await mailDocs(setup, setup.server, user);
      assert.deepEqual(docs.map((d) => d.docId).sort(), all.map((id) => `mail-${id}`).sort());
    });

    it('the Services API: loopback only, bad tokens refused; the public listener has no delivery route', async () => {
      const { server } = setup;
      const servicesPort = Number(new URL(server.servicesUrl).port);
      const usersPort = Number(new URL(server.url).port);
      const user = await newUser(server);

      // Bound to 127.0.0.1 only: the kernel's table of listening sockets says so…
      const listening = (file: string, port: number): string[] => {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch {
          return [];
        }
        const hex = port.toString(16).toUpperCase().padStart(4, '0');
        return text.split('\n').slice(1).map((l) => l.trim().split(/\s+/))
          .filter((f) => f.length > 3 && f[1]!.endsWith(`:${hex}`) && f[3] === '0A').map((f) => f[1]!.split(':')[0]!);
      };
      assert.deepEqual(listening('/proc/net/tcp', servicesPort), ['0100007F']);
      assert.deepEqual(listening('/proc/net/tcp6', servicesPort), []);
      // …and a connection to this host's external address is refused, while the public listener accepts it.
      const external = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
      if (external !== undefined) {
        const tryConnect = (port: number) => new Promise<string>((resolve) => {
          const s = connect({ host: external, port, timeout: 3000 });
          s.once('connect', () => { s.destroy(); resolve('connected'); });
          s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
          s.once('timeout', () => { s.destroy(); resolve('timeout'); });
        });
        assert.equal(await tryConnect(usersPort), 'connected', `the public listener is reachable on ${external}`);
        assert.equal(await tryConnect(servicesPort), 'ECONNREFUSED');
      }

      const put = (auth: string | undefined, id: string) => request(`${server.servicesUrl}incoming/${user.uuid}/${id}`, {
        method: 'PUT', body: 'payload', headers: { 'content-length': '7', ...(auth === undefined ? {} : { authorization: auth }) },
      });
      for (const auth of [encodeTokenAuthorization('mx', 'wrong-token'), encodeTokenAuthorization('other', setup.serviceToken), undefined, 'Token %%%']) {
        const r = await put(auth, 'refused');
        assert.equal(r.statusCode, 401);
        await r.body.dump();
      }
      const ok = await put(encodeTokenAuthorization('mx', setup.serviceToken), 'accepted');
      assert.equal(ok.statusCode, 200);
      await ok.body.dump();
      assert.deepEqual(await remaining(server, user), ['accepted']);

      // The public listener: no /incoming resource, whoever asks.
      const http = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid: user.uuid, token: user.token });
      try {
        const asUser = await http.request({ method: 'PUT', path: `/incoming/${user.uuid}/public-1`, body: 'x', acceptStatus: [404] });
        assert.equal(asUser.status, 404);
        await asUser.dump();
        const asService = await http.request({
          method: 'PUT', path: `/incoming/${user.uuid}/public-2`, body: 'x', anonymous: true,
          headers: { authorization: encodeTokenAuthorization('mx', setup.serviceToken) }, acceptStatus: [401],
        });
        assert.equal(asService.status, 401);
        await asService.dump();
      } finally {
        await http.close();
      }
      assert.deepEqual(await remaining(server, user), ['accepted']);
    });
  });

  describe(`incoming box, end to end on ${engine}: quota`, () => {
    let setup: Setup;
    let engineConfig: ServerEngineConfig;
    before(async () => {
      engineConfig = await serverEngineConfig(engine);
      setup = await startWithTokens(`${engineConfig.config}quota_bytes = 100KiB\n`);
    });
    after(async () => {
      await setup?.server.stop();
      await engineConfig?.teardown();
      if (setup !== undefined) rmSync(setup.dir, { recursive: true, force: true });
    });

    it('over quota: the trusted app gets 507 with a JSON error it can log, and no file is left', async () => {
      const user = await newUser(setup.server);
      const target = { servicesUrl: setup.server.servicesUrl, service: 'mx', token: setup.serviceToken };
      assert.equal((await deliver(target, user.uuid, 'fits', randomBytes(40 * 1024))).status, 200);
      const refused = await deliver(target, user.uuid, 'toobig', randomBytes(80 * 1024));
      assert.equal(refused.status, 507);
      assert.equal(refused.error?.error, 'quota exceeded');
      assert.match(refused.error?.message ?? '', /would pass the limit: \d+ of 102400 bytes used/);
      // What the engine itself stored: the one delivery that fitted, nothing reserved by the refused one.
      const blobsPath = join(setup.server.dataDir, 'blobs');
      const backend = await engineConfig.open(setup.server.dataDir);
      try {
        const store = blobStoreOf(backend, { blobsPath, concurrentBlobWrites: 4, quotaBytes: 100 * 1024 });
        const [usage, fits] = await Promise.all([
          store.usage(user.uuid), store.stat({ user: user.uuid, namespace: 'MX', blobId: 'fits' }),
        ]).finally(async () => {
          if (backend.blobs === undefined) await store.close();
        });
        // Exactly the delivery that fitted counts as used; nothing of the refused one is stored or held.
        assert.ok(fits !== null && fits.size >= 40 * 1024);
        assert.equal(usage.used, fits.size);
        assert.equal(usage.reserved, 0);
        if (backend.blobs === undefined) {
          const userDir = join(blobsPath, user.uuid);
          const files = readdirSync(userDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
          assert.deepEqual(files.sort(), ['fits', 'fits.flags'], 'no partial or temporary file');
        }
      } finally {
        await backend.close();
      }
      assert.deepEqual(await remaining(setup.server, user), ['fits']);
    });
  });
}

if (engineSelected('postgres')) {
  describe('incoming box, end to end: two server processes on one PostgreSQL', () => {
    let setup: Setup;
    let second: ServerProcess;
    const schema = freshPgSchema();
    before(async () => {
      const pg = `backend = postgres\npostgres_url = ${postgresTestUrl()}\npostgres_schema = ${schema}\n`;
      setup = await startWithTokens(pg);
      second = await startServerProcess(`services_tokens_file = ${join(setup.dir, 'services.tokens')}\nincoming_processing_threshold = ${THRESHOLD_S}s\n${pg}`);
    });
    after(async () => {
      for (const c of children) await c.kill();
      await second?.stop();
      await setup?.server.stop();
      if (setup !== undefined) rmSync(setup.dir, { recursive: true, force: true });
      await dropPgSchema(postgresTestUrl(), schema);
    });

    it('200 messages delivered to both servers, one replica on each: each exactly once', async () => {
      await exactlyOnce(setup, [setup.server, second], 200);
    });
  });
}
