/**
 * The same end-to-end scenarios on every engine listed in `SOLEDAD_TEST_BACKENDS` (default: all): real server
 * processes configured with `backend = …`, real devices syncing through them, blobs over HTTP. On PostgreSQL,
 * two server processes share one database and the devices alternate between them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { Soledad, type SoledadOptions } from '../../src/index.js';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { serverEngineConfig, testEngines, type ServerEngineConfig } from '../backends/engines.js';
import { startEngineServer, type EngineServer } from './engine-server.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

interface User { uuid: string; token: string }

function deviceOptions(work: string, server: ServerProcess, user: User, name: string): SoledadOptions {
  const dir = join(work, `${user.uuid}-${name}`);
  return {
    uuid: user.uuid,
    passphrase: 'pass phrase',
    secretsPath: join(dir, 'soledad.json'),
    localDbPath: join(dir, 'soledad.u1db'),
    serverUrl: server.url,
    certFile: server.certFile,
    authToken: user.token,
  };
}

async function contents(sol: Soledad): Promise<Record<string, unknown>> {
  const { docs } = await sol.getAllDocs();
  return Object.fromEntries(docs.map((d) => [d.docId, d.content]));
}

for (const engine of testEngines()) {
  describe(`end to end on ${engine}`, () => {
    let env: EngineServer;
    let server: ServerProcess;
    let work: string;

    before(async () => {
      env = await startEngineServer(engine);
      ({ server, work } = env);
    });
    after(() => env?.close());

    async function newUser(): Promise<User> {
      const uuid = randomUUID().replace(/-/g, '');
      return { uuid, token: await server.token(uuid) };
    }

    it('create, edit and delete on one device reach the other', async () => {
      const user = await newUser();
      const a = await Soledad.open(deviceOptions(work, server, user, 'a'));
      const b = await Soledad.open(deviceOptions(work, server, user, 'b'));
      try {
        const keep = await a.createDoc({ subject: 'keep' });
        const edit = await a.createDoc({ subject: 'edit me' });
        const gone = await a.createDoc({ subject: 'delete me' });
        await a.sync();
        await b.sync();
        assert.deepEqual(await contents(b), await contents(a));
        edit.content = { subject: 'edited' };
        await a.putDoc(edit);
        await a.deleteDoc(gone);
        const fromB = await b.createDoc({ from: 'b', big: 'x'.repeat(200_000) });
        await a.sync();
        await b.sync();
        await a.sync();
        assert.deepEqual((await b.getDoc(edit.docId))?.content, { subject: 'edited' });
        assert.equal(await b.getDoc(gone.docId), null);
        assert.equal((await b.getDoc(keep.docId))?.rev, keep.rev);
        assert.deepEqual((await a.getDoc(fromB.docId))?.content, fromB.content);
        assert.deepEqual(await contents(a), await contents(b));
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('stores, lists, flags, reads (with a range) and deletes a blob', async () => {
      const user = await newUser();
      const dispatcher = new Agent({ connect: { ca: readFileSync(server.certFile) } });
      const headers = { authorization: encodeTokenAuthorization(user.uuid, user.token) };
      const base = `${server.url}blobs/${user.uuid}`;
      try {
        const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
        const put = await request(`${base}/blob1`, { method: 'PUT', body: data, headers, dispatcher });
        assert.equal(put.statusCode, 200, await put.body.text());
        const again = await request(`${base}/blob1`, { method: 'PUT', body: data, headers, dispatcher });
        assert.equal(again.statusCode, 409);
        await again.body.dump();
        const get = await request(`${base}/blob1`, { headers, dispatcher });
        assert.equal(get.statusCode, 200);
        assert.deepEqual(Buffer.from(await get.body.arrayBuffer()), data);
        const part = await request(`${base}/blob1`, { headers: { ...headers, range: 'bytes=1000-1999' }, dispatcher });
        assert.equal(part.statusCode, 206);
        // The original's SingleRangeProducer: `bytes=s-e` sends e − s bytes from s.
        assert.deepEqual(Buffer.from(await part.body.arrayBuffer()), data.subarray(1000, 1999));
        const flags = await request(`${base}/blob1`, { method: 'POST', body: '["PENDING"]', headers, dispatcher });
        assert.equal(flags.statusCode, 200);
        await flags.body.dump();
        const listed = await request(`${base}/?filter_flag=PENDING`, { headers, dispatcher });
        assert.deepEqual(await listed.body.json(), ['blob1']);
        const del = await request(`${base}/blob1`, { method: 'DELETE', headers, dispatcher });
        assert.equal(del.statusCode, 200);
        await del.body.dump();
        const deleted = await request(`${base}/?deleted=true`, { headers, dispatcher });
        assert.deepEqual(await deleted.body.json(), ['blob1']);
      } finally {
        await dispatcher.close();
      }
    });
  });
}

if (testEngines().includes('postgres')) {
  describe('two server processes on one PostgreSQL', () => {
    let engineConfig: ServerEngineConfig;
    let servers: ServerProcess[] = [];
    let work: string;

    before(async () => {
      engineConfig = await serverEngineConfig('postgres');
      const first = await startServerProcess(engineConfig.config);
      // The second serves the first's certificate, so a device trusts both; nothing else is shared but PostgreSQL.
      const tls = `tls_cert = ${join(first.dataDir, 'tls', 'server.crt')}\ntls_key = ${join(first.dataDir, 'tls', 'server.key')}\n`;
      const second = await startServerProcess(engineConfig.config + tls);
      servers = [first, second];
      work = mkdtempSync(join(tmpdir(), 'soledad-e2e-multi-'));
    });
    after(async () => {
      for (const s of servers.reverse()) await s.stop();
      await engineConfig?.teardown();
      if (work !== undefined) rmSync(work, { recursive: true, force: true });
    });

    it('devices alternating between the two servers, syncing at the same time, converge with no error', async () => {
      const uuid = randomUUID().replace(/-/g, '');
      const user = { uuid, token: await servers[0]!.token(uuid) };
      const certFile = servers[0]!.certFile;
      const open = (name: string, server: ServerProcess): Promise<Soledad> =>
        Soledad.open({ ...deviceOptions(work, server, user, name), certFile });
      // Device a bootstraps the secrets first; b then finds them on the server.
      const first = await open('a', servers[0]!);
      await first.sync();
      await first.close();
      const mine = { a: [] as string[], b: [] as string[] };
      for (let round = 0; round < 6; round++) {
        const [sa, sb] = round % 2 === 0 ? [servers[0]!, servers[1]!] : [servers[1]!, servers[0]!];
        const a = await open('a', sa);
        const b = await open('b', sb);
        try {
          for (const [dev, name] of [[a, 'a'], [b, 'b']] as const) {
            for (let i = 0; i < 5; i++) mine[name].push((await dev.createDoc({ by: name, round, i })).docId);
            // Each device edits and deletes only its own documents: no conflicts, just interleaving.
            const own = mine[name];
            const edited = await dev.getDoc(own[round]!);
            if (edited !== null) {
              edited.content = { by: name, round, edited: true };
              await dev.putDoc(edited);
            }
            if (round > 2) {
              const victim = await dev.getDoc(own[round - 3]!);
              if (victim !== null) await dev.deleteDoc(victim);
            }
          }
          await Promise.all([a.sync(), b.sync()]);
        } finally {
          await a.close();
          await b.close();
        }
      }
      const a = await open('a', servers[1]!);
      const b = await open('b', servers[0]!);
      try {
        await a.sync();
        await b.sync();
        await a.sync();
        const ca = await contents(a);
        assert.deepEqual(ca, await contents(b));
        assert.equal(Object.keys(ca).length, 60 - 2 * 3);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}
