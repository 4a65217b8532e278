/**
 * The document scenarios over real TLS on loopback against a real `soledad-server` process (embedded backend):
 * upload (device A, fresh server) and download (a new device B) timed separately, each side by side with PouchDB
 * replicating the same data to a CouchDB-protocol server, and with the physical limit of the same bytes.
 * The 10,000 × 5 KB scenario's download is the initial sync of a fresh device; it is followed by a no-op sync of
 * the 10,000 unchanged documents, whose requests are counted.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpClient } from '../src/client/http/client.js';
import { Soledad, type SoledadOptions } from '../src/index.js';
import { startServerProcess } from '../test/e2e/server-process.js';
import type { Limit, PhysicalLimit } from './limit.js';
import { PouchPeer, type PouchResult } from './pouch.js';
import type { ScenarioResult } from './report.js';
import { mb, measure, medianBy, ms, payload, ProcWatch, quantile, roundsAfterWarmUp, settle, type Measured } from './util.js';

export interface SyncScenario {
  name: string;
  /** Sizes of the documents' payloads in bytes. */
  sizes: number[];
  /** Label of the download row (default `sync download <name>`). */
  downloadLabel?: string;
  /** Follow the download with a no-op sync of the same device. */
  noop?: boolean;
  /** Rounds to run, ours and PouchDB's alike; the median one is reported (default 1). */
  repeat?: number;
}

/** The seed's scenarios (10 MB each), optionally scaled down for a smoke run (the names give the real counts). */
export function seedScenarios(scale = 1): SyncScenario[] {
  const n = (count: number) => Math.max(1, Math.round(count * scale));
  return [
    { name: `${n(20)} × 500 KB`, sizes: Array(n(20)).fill(500 * 1024), repeat: 5 },
    { name: `${n(100)} × 100 KB`, sizes: Array(n(100)).fill(100 * 1024), repeat: 5 },
    { name: `${n(1000)} × 10 KB`, sizes: Array(n(1000)).fill(10 * 1024), repeat: 5 },
    { name: `${n(60)} × 15 KB + 1 × 1 MB`, sizes: [...Array(n(60)).fill(15 * 1024), 1024 * 1024], repeat: 5 },
  ];
}

/** A fresh device's first sync of a mailbox: `count` documents of 5 KB (the seed's median mail), then a no-op sync. */
export function initialSyncScenario(count: number): SyncScenario {
  return {
    name: `${count} × 5 KB`,
    sizes: Array(count).fill(5 * 1024),
    downloadLabel: `initial sync of a fresh device, ${count} × 5 KB`,
    noop: true,
    repeat: 3,
  };
}

// Every request the client library makes goes through HttpClient.request: count them (benchmark only).
let requestCount = 0;
const originalRequest = HttpClient.prototype.request;
HttpClient.prototype.request = function countedRequest(this: HttpClient, req) {
  requestCount += 1;
  return originalRequest.call(this, req);
};

/** Our side of a scenario: upload from device A, download to a new device B (and the no-op sync if asked). */
export interface OurSync {
  up: Measured<number>;
  down: Measured<number>;
  /** CPU time and peak RSS of the server process during the upload and the download. */
  upServer: { cpuMs: number; rssPeak: number };
  downServer: { cpuMs: number; rssPeak: number };
  noop?: { ms: number; cpuMs: number; serverCpuMs: number; requests: number; bytesSent: number; bytesReceived: number };
}

/** Documents of the warm-up sync (another user, before anything is timed): 200 × 10 KB. */
const WARM_UP_SIZES: readonly number[] = Array(200).fill(10 * 1024);

/**
 * A `soledad-server` process for a series of rounds, each with a new user and new devices: device A uploads, a new
 * device B downloads (and syncs once more if asked). `serverConfig` adds `[soledad-server]` lines (another storage
 * engine: `bench/backends.ts`).
 *
 * @example
 * const ours = await OurSyncServer.start(tls);
 * try { const r = await ours.round(bodies, false); console.log(r.up.ms); } finally { await ours.stop(); }
 */
export class OurSyncServer {
  private rounds = 0;

  private constructor(
    private readonly server: Awaited<ReturnType<typeof startServerProcess>>,
    /** The server process (CPU time, memory). */
    readonly watch: ProcWatch,
    private readonly work: string,
    private readonly certFile: string,
  ) {}

  static async start(tls: { certFile: string; keyFile: string }, serverConfig = ''): Promise<OurSyncServer> {
    // One certificate for our server, the peer's and the limit's TLS sink: same TLS work on every side.
    const server = await startServerProcess(`tls_cert = ${tls.certFile}\ntls_key = ${tls.keyFile}\n${serverConfig}`);
    return new OurSyncServer(server, new ProcWatch(server.pid()!), mkdtempSync(join(tmpdir(), 'soledad-bench-sync-')), tls.certFile);
  }

  /** One user: device A uploads `texts`, a new device B downloads them (and syncs once more if `noop`). */
  async round(texts: readonly string[], noop: boolean): Promise<OurSync> {
    this.rounds += 1;
    const round = this.rounds;
    const { server, watch, work } = this;
    const uuid = randomUUID().replace(/-/g, '');
    const token = await server.token(uuid);
    const opts = (name: string): SoledadOptions => ({
      uuid, passphrase: 'bench', secretsPath: join(work, `${round}-${name}`, 'soledad.json'),
      localDbPath: join(work, `${round}-${name}`, 'soledad.u1db'), serverUrl: server.url, certFile: this.certFile, authToken: token,
    });
    const a = await Soledad.open(opts('a'));
    await Promise.all(texts.map((body) => a.createDoc({ body })));
    const up = await watch.during(() => measure(() => a.sync()));
    await a.close();

    const b = await Soledad.open(opts('b'));
    const down = await watch.during(() => measure(() => b.sync()));
    if ((await b.getAllDocs()).docs.length !== texts.length) throw new Error('download incomplete');
    const result: OurSync = {
      up: up.value, down: down.value,
      upServer: { cpuMs: up.cpuMs, rssPeak: up.rssPeak }, downServer: { cpuMs: down.cpuMs, rssPeak: down.rssPeak },
    };
    if (noop) {
      const before = requestCount;
      const n = await watch.during(() => measure(() => b.sync()));
      const stats = b.syncStats()!;
      if (!stats.upToDate) throw new Error('the no-op sync was not up to date');
      result.noop = {
        ms: n.value.ms, cpuMs: n.value.cpuMs, serverCpuMs: n.cpuMs, requests: requestCount - before,
        bytesSent: stats.bytesSent, bytesReceived: stats.bytesReceived,
      };
    }
    await b.close();
    return result;
  }

  async stop(): Promise<void> {
    await this.server.stop().catch(() => undefined);
    rmSync(this.work, { recursive: true, force: true });
  }
}

/**
 * Time our sync of `bodies` through a fresh `soledad-server` process. The server first serves a warm-up sync of
 * another user (a provider's server is long-running: its code is compiled and its caches are set up before any
 * user's first sync), then `repeat` rounds of the scenario; the median round of the upload and of the download is
 * reported.
 *
 * @example
 * const ours = await runOurSync(scenario, scenario.sizes.map(payload), tls, 'backend = postgres\n…');
 */
export async function runOurSync(
  scenario: SyncScenario,
  bodies: readonly string[],
  tls: { certFile: string; keyFile: string },
  serverConfig = '',
  repeat = 1,
): Promise<OurSync> {
  const server = await OurSyncServer.start(tls, serverConfig);
  try {
    const rounds = await roundsAfterWarmUp((texts, noop) => server.round(texts, noop), {
      warmUp: WARM_UP_SIZES.map(payload), bodies, repeat, noop: scenario.noop === true,
    });
    const up = medianBy(rounds, (r) => r.up.ms);
    const down = medianBy(rounds, (r) => r.down.ms);
    return {
      up: up.up, upServer: up.upServer, down: down.down, downServer: down.downServer,
      ...(rounds[0]!.noop === undefined ? {} : { noop: rounds[0]!.noop }),
    };
  } finally {
    await server.stop();
  }
}

/** One round of a scenario: the limit measured just before it, then ours, then PouchDB's. */
interface Round {
  lim: Limit | null;
  ours: OurSync;
  pouch: PouchResult;
}

/**
 * Run the scenarios: ours, PouchDB's and the physical limit of each, interleaved round by round. The machine's
 * speed drifts by tens of percent within minutes on a shared VM; measuring the limit right before our round and
 * PouchDB's right after it, and taking the median of the per-round ratios, compares each round with what the
 * machine could do at that moment. Before each part the machine's dirty pages are written back and both servers are
 * left to go quiet ({@link settle}), so no side is timed while another's leftovers (a WAL checkpoint, a LevelDB
 * compaction) still run.
 *
 * @example
 * results.push(...(await runSyncScenarios(seedScenarios(1), limit, { certFile, keyFile })));
 */
export async function runSyncScenarios(
  scenarios: SyncScenario[],
  limit: PhysicalLimit | null,
  tls: { certFile: string; keyFile: string },
): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const bodies = scenario.sizes.map(payload);
    const bytes = scenario.sizes.reduce((x, y) => x + y, 0);
    const docs = scenario.sizes.length;
    const repeat = Math.max(1, scenario.repeat ?? 1);
    const noop = scenario.noop === true;
    const rounds: Round[] = [];
    const ours = await OurSyncServer.start(tls);
    try {
      const pouch = await PouchPeer.start(tls);
      try {
        const warmUp = WARM_UP_SIZES.map(payload);
        await ours.round(warmUp, false);
        await pouch.round(warmUp, false);
        const servers = [ours.watch, pouch.watch];
        for (let i = 0; i < repeat; i++) {
          await settle(servers);
          const lim = limit === null ? null : await limit.measure(scenario.sizes);
          await settle(servers);
          const o = await ours.round(bodies, noop && i === 0);
          await settle(servers);
          const p = await pouch.round(bodies, noop && i === 0);
          rounds.push({ lim, ours: o, pouch: p });
        }
      } finally {
        await pouch.stop();
      }
    } finally {
      await ours.stop();
    }

    const limits = rounds.flatMap((r) => (r.lim === null ? [] : [r.lim]));
    const lim = limits.length === 0 ? null : medianBy(limits, (l) => l.sum_ms);
    const encrypted = (l: Limit): number => l.aes_ms + l.sqlcipher_ms + l.tls_ms;
    const row = (name: string, up: boolean): ScenarioResult => {
      const oursOf = (r: Round) => (up ? r.ours.up : r.ours.down);
      const pouchOf = (r: Round) => (up ? r.pouch.upload : r.pouch.download);
      const oRound = medianBy(rounds, (r) => oursOf(r).ms);
      const pRound = medianBy(rounds, (r) => pouchOf(r).ms);
      const o = oursOf(oRound);
      const p = pouchOf(pRound);
      const srv = up ? oRound.ours.upServer : oRound.ours.downServer;
      const pSrv = up ? pRound.pouch.uploadServer : pRound.pouch.downloadServer;
      const ratio = quantile(rounds.map((r) => oursOf(r).ms / pouchOf(r).ms), 0.5);
      const limitRatio = lim === null ? null : quantile(rounds.map((r) => oursOf(r).ms / r.lim!.sum_ms), 0.5);
      const list = (values: number[]): string => values.map((v) => v.toFixed(1)).join('/');
      return {
        name,
        ours_ms: o.ms,
        baseline_name: 'PouchDB → pouchdb-server (no encryption)',
        baseline_ms: p.ms,
        ratio,
        ...(lim === null || limitRatio === null ? {} : {
          limit_ms: lim.sum_ms, limit_ratio: limitRatio,
          encrypted_limit_ms: encrypted(lim),
          encrypted_limit_ratio: quantile(rounds.map((r) => oursOf(r).ms / encrypted(r.lim!)), 0.5),
        }),
        extra: {
          docs_per_s: Math.round((docs / o.ms) * 1000),
          MB_per_s: Number(((bytes / (1024 * 1024)) / (o.ms / 1000)).toFixed(1)),
          client_cpu_ms: ms(o.cpuMs),
          server_cpu_ms: ms(srv.cpuMs),
          client_rss_growth_MB: mb(o.rssGrowth),
          server_peak_rss_MB: mb(srv.rssPeak),
          pouch_client_cpu_ms: ms(p.cpuMs),
          pouch_server_cpu_ms: ms(pSrv.cpuMs),
          pouch_client_rss_growth_MB: mb(p.rssGrowth),
          pouch_server_peak_rss_MB: mb(pSrv.rssPeak),
          rounds_ms: list(rounds.map((r) => oursOf(r).ms)),
          pouch_rounds_ms: list(rounds.map((r) => pouchOf(r).ms)),
          ...(lim === null ? {} : { limit_rounds_ms: list(rounds.map((r) => r.lim!.sum_ms)) }),
        },
        checks: [
          { what: `${name}: encrypted sync at least as fast as PouchDB (ratio ≤ 1.0)`, ok: ratio <= 1 },
          ...(limitRatio === null ? [] : [{ what: `${name}: within 3× of the physical limit`, ok: limitRatio <= 3 }]),
        ],
      };
    };
    results.push(row(`sync upload ${scenario.name}`, true));
    results.push(row(scenario.downloadLabel ?? `sync download ${scenario.name}`, false));
    if (lim !== null) {
      results.push({
        name: `physical limit ${scenario.name} (${mb(bytes)} MB)`,
        ours_ms: lim.sum_ms,
        extra: {
          aes_gcm_ms: ms(lim.aes_ms), sqlite_write_ms: ms(lim.sqlite_ms), tls_loopback_ms: ms(lim.tls_ms),
          not_in_sum_sqlcipher_write_ms: ms(lim.sqlcipher_ms),
        },
      });
    }
    const n = rounds[0]?.ours.noop;
    const pn = rounds[0]?.pouch.noop;
    if (n !== undefined && pn !== undefined) {
      results.push({
        name: `no-op sync of ${docs} unchanged docs`,
        ours_ms: n.ms,
        baseline_name: 'PouchDB → pouchdb-server (no encryption)',
        baseline_ms: pn.ms,
        extra: {
          requests: n.requests,
          responses: n.requests,
          client_cpu_ms: ms(n.cpuMs),
          server_cpu_ms: ms(n.serverCpuMs),
          body_bytes_sent: n.bytesSent,
          body_bytes_received: n.bytesReceived,
          pouch_requests: pn.requests,
        },
        checks: [
          { what: 'no-op sync: 1 request each way', ok: n.requests === 1 },
          { what: 'no-op sync: under 100 ms of work (wall, client CPU + server CPU)', ok: n.ms < 100 && n.cpuMs + n.serverCpuMs < 100 },
        ],
      });
    }
  }
  return results;
}
