/**
 * PostgreSQL restarted (and stopped for a while) under a server process that two devices keep syncing with:
 * during the outage every request fails cleanly (503 `unavailable` with an error body, which clients retry; never
 * a bare 500, never a crashed server), and afterwards syncs and blob transfers succeed and converge.
 *
 * The cluster is this test's own (same binaries and settings as scripts/test-services.sh), so restarting it
 * cannot disturb the other suites sharing the services' cluster.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SoledadError } from '../../src/common/errors.js';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { snapshot } from '../client/sync/harness.js';
import { readAll } from '../client/blobs/fixture.js';
import { freePort } from '../e2e/server-process.js';
import { testEngines } from '../backends/engines.js';
import { Counter, removeDir, tempDir, within } from './common.js';
import { account, blobDevice, docDevice } from './devices.js';
import { agentFor, hasErrorBody, send } from './http.js';
import { startServer, type Server } from './server.js';

function pgBin(): string | undefined {
  if (process.env['PG_BIN'] !== undefined) return process.env['PG_BIN'];
  for (const v of [17, 16, 15, 14, 13]) if (existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) return `/usr/lib/postgresql/${v}/bin`;
  return undefined;
}

const isRoot = process.getuid?.() === 0;
const execFileAsync = promisify(execFile);
/**
 * initdb refuses root: as root the cluster runs as the `postgres` user, as in scripts/test-services.sh. Never
 * synchronous (the traffic this test watches must keep flowing), and every start logs to a file: a postmaster that
 * inherited our stdout pipe would keep the call waiting forever.
 */
async function asPg(cmd: string, args: string[]): Promise<void> {
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  await execFileAsync(file, argv, { timeout: 90_000 });
}

const enabled = testEngines().includes('postgres');

describe('PostgreSQL restarted while clients sync', { skip: !enabled && 'postgres is not in SOLEDAD_TEST_BACKENDS' }, () => {
  let bin: string;
  let dir: string;
  let port: number;
  let server: Server;
  const counter = new Counter('faults', 'PostgreSQL restart and outage');
  const notes: string[] = [];

  const pgCtl = (...args: string[]): Promise<void> => asPg(join(bin, 'pg_ctl'), ['-D', join(dir, 'data'), ...args]);
  const pgStart = (): Promise<void> => pgCtl('-l', join(dir, 'server.log'), '-w', '-t', '60', '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=100`, 'start');
  const pgStop = (mode: 'fast' | 'immediate'): Promise<void> => pgCtl('-m', mode, '-w', '-t', '60', 'stop');

  before(async () => {
    const found = pgBin();
    assert.ok(found !== undefined, 'PostgreSQL server binaries not found: apt-get install postgresql (or drop postgres from SOLEDAD_TEST_BACKENDS)');
    bin = found;
    dir = tempDir('pg');
    mkdirSync(join(dir, 'data'));
    if (isRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      chownSync(dir, uid, gid);
      chownSync(join(dir, 'data'), uid, gid);
    }
    await asPg(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', 'soledad', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8']);
    port = await freePort();
    await pgStart();
    server = await startServer({ config: `backend = postgres\npostgres_url = postgres://soledad@127.0.0.1:${port}/postgres\n` });
  });

  after(async () => {
    counter.record(notes);
    await server?.stop();
    await pgStop('immediate').catch(() => undefined);
    removeDir(dir);
  });

  it('requests fail cleanly (503 with an error body) during the outage and succeed after it', async () => {
    const acc = await account((u) => server.token(u));
    const a = docDevice('pg-a', dir, server.url, server.certFile, acc);
    const b = docDevice('pg-b', dir, server.url, server.certFile, acc);
    const blobs = blobDevice('pg-blobs', dir, server.url, server.certFile, acc);
    const agent = agentFor(server.certFile);
    const asUser = { authorization: encodeTokenAuthorization(acc.uuid, acc.token) };
    const errors = new Map<string, number>();
    const unclean: string[] = [];
    let running = true;
    let ok = 0;
    const worker = async (d: typeof a, tag: string): Promise<void> => {
      let i = 0;
      while (running) {
        d.db.createDoc({ tag, i: i++, pad: randomBytes(200).toString('hex') });
        try {
          await within(30_000, 'a sync during a PostgreSQL outage', d.sync.sync());
          ok += 1;
        } catch (err) {
          const name = err instanceof Error ? err.name : String(err);
          errors.set(name, (errors.get(name) ?? 0) + 1);
          if (!(err instanceof SoledadError)) unclean.push(`${name}: ${(err as Error).message}`);
        }
        await sleep(20);
      }
    };
    const workers = [worker(a, 'a'), worker(b, 'b')];
    let during;
    let blobDuring;
    try {
      await sleep(500);
      // 1. A fast restart in the middle of the traffic.
      await pgStop('fast');
      await pgStart();
      counter.add(server.alive(), 'the server died in a PostgreSQL restart');
      await sleep(500);
      // 2. An outage of a couple of seconds: raw requests see 503 with a body, the server process stays up.
      await pgStop('fast');
      during = await send(agent, server.url, { method: 'GET', path: `/user-${acc.uuid}/sync-from/probe`, headers: asUser });
      blobDuring = await send(agent, server.url, { method: 'GET', path: `/blobs/${acc.uuid}/`, headers: asUser });
      await sleep(1500);
      counter.add(server.alive(), 'the server died in a PostgreSQL outage');
      assert.ok(server.alive(), 'the server survived the outage');
      await pgStart();
      await sleep(1000);
    } catch (err) {
      await Promise.all([a.close(), b.close(), blobs.close(), agent.close()]).catch(() => undefined);
      throw new Error(`${String(err)}; server output:\n${server.output().slice(-3000)}`);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    notes.push(`during the outage: sync info ${during.status} ${during.body.slice(0, 80).trim()}, blob list ${blobDuring.status}`);
    notes.push(`${ok} syncs succeeded around one restart and one 2 s outage; failures: ${JSON.stringify(Object.fromEntries(errors))}`);
    assert.equal(during.status, 503, during.body);
    assert.ok(hasErrorBody(during), during.body);
    assert.equal(blobDuring.status, 503, blobDuring.body);
    assert.ok(hasErrorBody(blobDuring), blobDuring.body);
    assert.deepEqual(unclean, []);

    // After the outage everything works: syncs converge, blobs go up and come down.
    const reader = blobDevice('pg-reader', dir, server.url, server.certFile, acc);
    try {
      await a.sync.sync();
      await b.sync.sync();
      await a.sync.sync();
      assert.deepEqual(snapshot(a.db), snapshot(b.db));
      const data = randomBytes(300_000);
      await blobs.blobs.put('after-outage', data);
      await reader.blobs.sync();
      assert.ok((await readAll(await reader.blobs.get('after-outage'))).equals(data), 'the blob came down intact');
    } finally {
      await Promise.all([a.close(), b.close(), blobs.close(), reader.close(), agent.close()]);
    }
  });
});
