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
import { measure, type Measured, type ProcWatch } from './util.js';

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
 * A CouchDB-protocol server process and the local PouchDB databases of its rounds: each {@link PouchPeer.round}
 * replicates documents `{ body }` from a new local PouchDB into a new server database, then into a second, empty
 * local PouchDB, and optionally once more with nothing new (the no-op). Rounds can be interleaved with ours and
 * with the physical limit (`bench/sync.ts`), so each is compared with what the machine did at the same moment.
 *
 * @example
 * const pouch = await PouchPeer.start(tls);
 * try { const r = await pouch.round(bodies, false); console.log(r.upload.ms); } finally { await pouch.stop(); }
 */
export class PouchPeer {
  private readonly agent: Agent;
  private readonly open: PouchDb[] = [];
  private requests = 0;
  private rounds = 0;
  private readonly fetch: FetchLike;

  private constructor(private readonly work: string, private readonly server: Peer, ca: Buffer) {
    this.agent = new Agent({ ca, keepAlive: true });
    this.fetch = (url, o) => {
      this.requests += 1;
      return PouchDB.fetch(url, { ...o, agent: this.agent });
    };
  }

  /** The server process (CPU time, memory). */
  get watch(): ProcWatch {
    return this.server.watch;
  }

  /** Start the server with our certificate (same TLS work as ours). */
  static async start(tls: { certFile: string; keyFile: string }): Promise<PouchPeer> {
    const work = mkdtempSync(join(tmpdir(), 'soledad-bench-pouch-'));
    try {
      const server = await spawnPeer(join(import.meta.dirname, 'peers', 'pouch-server.ts'), [join(work, 'server'), tls.certFile, tls.keyFile]);
      return new PouchPeer(work, server, readFileSync(tls.certFile));
    } catch (err) {
      rmSync(work, { recursive: true, force: true });
      throw err;
    }
  }

  private local(name: string): PouchDb {
    const db = new PouchDB(join(this.work, name));
    this.open.push(db);
    return db;
  }

  /** One round on a new server database; `noop` adds the no-op replication. */
  async round(texts: readonly string[], noop: boolean): Promise<PouchResult> {
    this.rounds += 1;
    const n = this.rounds;
    const srv = this.server;
    const remote = new PouchDB(`https://127.0.0.1:${srv.port}/bench-${n}`, { fetch: this.fetch });
    this.open.push(remote);
    const a = this.local(`a-${n}`);
    await a.bulkDocs(texts.map((body, i) => ({ _id: `D-${String(i).padStart(6, '0')}`, body })));
    const up = await srv.watch.during(() => measure(async () => (await a.replicate.to(remote)).docs_written));
    const b = this.local(`b-${n}`);
    const down = await srv.watch.during(() => measure(async () => (await b.replicate.from(remote)).docs_written));
    if ((await b.info()).doc_count !== texts.length) throw new Error('PouchDB download incomplete');
    const result: PouchResult = {
      upload: up.value,
      download: down.value,
      uploadServer: { cpuMs: up.cpuMs, rssPeak: up.rssPeak },
      downloadServer: { cpuMs: down.cpuMs, rssPeak: down.rssPeak },
    };
    if (noop) {
      const before = this.requests;
      const again = await srv.watch.during(() => measure(async () => (await b.replicate.from(remote)).docs_written));
      result.noop = { ...again.value, requests: this.requests - before, serverCpuMs: again.cpuMs };
    }
    // Closed now, not at stop: their caches would otherwise stay in this process's heap, under the next parts.
    for (const db of [remote, a, b]) {
      this.open.splice(this.open.indexOf(db), 1);
      await db.close();
    }
    return result;
  }

  async stop(): Promise<void> {
    for (const db of this.open) await db.close().catch(() => undefined);
    this.agent.destroy();
    await this.server.stop();
    rmSync(this.work, { recursive: true, force: true });
  }
}
