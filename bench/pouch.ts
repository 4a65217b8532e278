/**
 * The side-by-side peer for the document scenarios: PouchDB (LevelDB on disk) replicating to a CouchDB-protocol
 * server (express-pouchdb, the core of pouchdb-server, also on LevelDB) in its own process, over HTTPS on loopback
 * with the same certificate as ours and keep-alive connections. No encryption: this is what people would pick
 * instead, with nothing of what Soledad adds.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnPeer, type Peer } from './peers/spawn.js';
import { measure, medianBy, roundsAfterWarmUp, type Measured } from './util.js';

const require = createRequire(import.meta.url);

/** The slice of the PouchDB API used here (the package has no types of its own). */
interface PouchDb {
  bulkDocs(docs: ReadonlyArray<Record<string, unknown>>): Promise<unknown[]>;
  info(): Promise<{ doc_count: number }>;
  close(): Promise<void>;
  replicate: {
    to(target: PouchDb, opts?: Record<string, unknown>): Promise<{ docs_written: number }>;
    from(source: PouchDb, opts?: Record<string, unknown>): Promise<{ docs_written: number }>;
  };
}
type FetchLike = (url: string, opts?: Record<string, unknown>) => Promise<unknown>;
interface PouchStatic {
  new (name: string, opts?: Record<string, unknown>): PouchDb;
  fetch: FetchLike;
}
const PouchDB = require('pouchdb') as PouchStatic;

/** What one scenario measured on the PouchDB side. */
export interface PouchResult {
  upload: Measured<number>;
  download: Measured<number>;
  uploadServer: { cpuMs: number; rssPeak: number };
  downloadServer: { cpuMs: number; rssPeak: number };
  noop?: Measured<number> & { requests: number; serverCpuMs: number };
}

/**
 * Replicate `bodies` (one document `{ body }` each) from a local PouchDB to a fresh server, then into a second,
 * empty local PouchDB; optionally replicate once more with nothing new (the no-op). Like ours, the server first
 * serves a warm-up replication of another database, then `repeat` rounds each into a new database; the median
 * round of the upload and of the download is reported.
 */
export async function runPouchScenario(
  bodies: readonly string[],
  tls: { certFile: string; keyFile: string },
  opts: { noop?: boolean; repeat?: number; warmUp?: readonly string[] } = {},
): Promise<PouchResult> {
  const work = mkdtempSync(join(tmpdir(), 'soledad-bench-pouch-'));
  let server: Peer | undefined;
  const agent = new Agent({ ca: readFileSync(tls.certFile), keepAlive: true });
  let requests = 0;
  const fetch: FetchLike = (url, o) => {
    requests += 1;
    return PouchDB.fetch(url, { ...o, agent });
  };
  const open: PouchDb[] = [];
  const local = (name: string): PouchDb => {
    const db = new PouchDB(join(work, name));
    open.push(db);
    return db;
  };
  try {
    server = await spawnPeer(join(import.meta.dirname, 'peers', 'pouch-server.ts'), [join(work, 'server'), tls.certFile, tls.keyFile]);
    const srv = server;
    let round = 0;
    const oneRound = async (texts: readonly string[], noop: boolean): Promise<PouchResult> => {
      round += 1;
      const remote = new PouchDB(`https://127.0.0.1:${srv.port}/bench-${round}`, { fetch });
      open.push(remote);
      const a = local(`a-${round}`);
      await a.bulkDocs(texts.map((body, i) => ({ _id: `D-${String(i).padStart(6, '0')}`, body })));
      const up = await srv.watch.during(() => measure(async () => (await a.replicate.to(remote)).docs_written));
      const b = local(`b-${round}`);
      const down = await srv.watch.during(() => measure(async () => (await b.replicate.from(remote)).docs_written));
      if ((await b.info()).doc_count !== texts.length) throw new Error('PouchDB download incomplete');
      const result: PouchResult = {
        upload: up.value,
        download: down.value,
        uploadServer: { cpuMs: up.cpuMs, rssPeak: up.rssPeak },
        downloadServer: { cpuMs: down.cpuMs, rssPeak: down.rssPeak },
      };
      if (noop) {
        const before = requests;
        const n = await srv.watch.during(() => measure(async () => (await b.replicate.from(remote)).docs_written));
        result.noop = { ...n.value, requests: requests - before, serverCpuMs: n.cpuMs };
      }
      return result;
    };
    const rounds = await roundsAfterWarmUp(oneRound, { ...opts, bodies });
    const up = medianBy(rounds, (r) => r.upload.ms);
    const down = medianBy(rounds, (r) => r.download.ms);
    return {
      upload: up.upload, uploadServer: up.uploadServer, download: down.download, downloadServer: down.downloadServer,
      ...(rounds[0]!.noop === undefined ? {} : { noop: rounds[0]!.noop }),
    };
  } finally {
    for (const db of open) await db.close().catch(() => undefined);
    agent.destroy();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
