/**
 * The seed's 1000 × 10 KB sync scenario on every storage engine side by side (`--only=backends`): the same devices
 * and the same server program (`runOurSync` of `sync.ts`), with `backend = sqlite | postgres | couch`, each row's
 * ratio taken against the embedded engine measured in the same run. Rounds are interleaved (sqlite, postgres,
 * couch, sqlite, …) so that load on a shared machine falls on every engine alike; the median round is reported.
 *
 * PostgreSQL and the CouchDB-protocol server are `SOLEDAD_TEST_POSTGRES_URL` / `SOLEDAD_TEST_COUCH_URL` when set
 * (a real CouchDB then), otherwise started for the run by `scripts/test-services.sh` (a throwaway PostgreSQL
 * cluster and an in-memory pouchdb-server) and stopped after it. An engine that cannot be reached gets a row
 * saying why instead of a time. Server CPU is the `soledad-server` process only, not the database server's.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serverEngineConfig, type TestEngine } from '../test/backends/engines.js';
import type { ScenarioResult } from './report.js';
import { runOurSync, seedScenarios, type OurSync } from './sync.js';
import { mb, medianBy, ms, payload } from './util.js';

const execFileAsync = promisify(execFile);
const SERVICES = join(import.meta.dirname, '..', 'scripts', 'test-services.sh');
const ENGINES: readonly TestEngine[] = ['sqlite', 'postgres', 'couch'];

/** Database services for the run: those named by the environment, or ones started here (and stopped by `stop`). */
interface Services {
  /** Why an engine cannot run, if it cannot. */
  unavailable: Partial<Record<TestEngine, string>>;
  stop(): Promise<void>;
}

async function services(): Promise<Services> {
  const have = (name: string) => (process.env[name]?.trim() ?? '') !== '';
  if (have('SOLEDAD_TEST_POSTGRES_URL') && have('SOLEDAD_TEST_COUCH_URL')) return { unavailable: {}, stop: async () => undefined };
  let exported: string;
  try {
    exported = (await execFileAsync('bash', [SERVICES, 'start'], { timeout: 120_000 })).stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim().split('\n').at(-1) ?? (err instanceof Error ? err.message : String(err));
    const why = `scripts/test-services.sh start failed: ${stderr}`;
    return {
      unavailable: {
        ...(have('SOLEDAD_TEST_POSTGRES_URL') ? {} : { postgres: why }),
        ...(have('SOLEDAD_TEST_COUCH_URL') ? {} : { couch: why }),
      },
      stop: async () => undefined,
    };
  }
  const vars = Object.fromEntries([...exported.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
  // Keep what the environment already named (a real CouchDB, say); take the rest from the started services.
  for (const name of ['SOLEDAD_TEST_POSTGRES_URL', 'SOLEDAD_TEST_COUCH_URL']) {
    if (!have(name) && vars[name] !== undefined) process.env[name] = vars[name];
  }
  const dir = vars['SOLEDAD_TEST_SERVICES_DIR'];
  return {
    unavailable: {},
    async stop() {
      if (dir === undefined) return;
      await execFileAsync('bash', [SERVICES, 'stop'], { env: { ...process.env, SOLEDAD_TEST_SERVICES_DIR: dir }, timeout: 60_000 });
    },
  };
}

/**
 * Run the 1000 × 10 KB scenario (100 × 10 KB with `quick`) on each engine; rows for upload and download.
 *
 * @example
 * results.push(...(await runBackendScenarios(false, { certFile, keyFile })));
 */
export async function runBackendScenarios(quick: boolean, tls: { certFile: string; keyFile: string }): Promise<ScenarioResult[]> {
  const scenario = seedScenarios(quick ? 0.1 : 1).find((s) => s.sizes.length > 1 && s.sizes.every((n) => n === 10 * 1024));
  if (scenario === undefined) throw new Error('bench/backends: the seed scenarios have no N × 10 KB scenario');
  const rounds = quick ? 1 : 3;
  const svc = await services();
  const runs: Partial<Record<TestEngine, OurSync[]>> = {};
  const failed: Partial<Record<TestEngine, string>> = { ...svc.unavailable };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const engine of ENGINES) {
        if (failed[engine] !== undefined) continue;
        const bodies = scenario.sizes.map(payload);
        let engineConfig;
        try {
          engineConfig = await serverEngineConfig(engine);
          (runs[engine] ??= []).push(await runOurSync(scenario, bodies, tls, engineConfig.config));
        } catch (err) {
          failed[engine] = err instanceof Error ? err.message.split('\n')[0]! : String(err);
        } finally {
          await engineConfig?.teardown().catch(() => undefined);
        }
      }
    }
  } finally {
    await svc.stop().catch((err: unknown) => console.error(`bench/backends: stopping the test services: ${String(err)}`));
  }

  const bytes = scenario.sizes.reduce((x, y) => x + y, 0);
  const results: ScenarioResult[] = [];
  for (const phase of ['upload', 'download'] as const) {
    const pick = (r: OurSync) => (phase === 'upload' ? r.up.ms : r.down.ms);
    const sqliteRuns = runs.sqlite;
    const base = sqliteRuns === undefined ? undefined : pick(medianBy(sqliteRuns, pick));
    for (const engine of ENGINES) {
      const name = `backend ${engine}: sync ${phase} ${scenario.name}`;
      const engineRuns = runs[engine];
      if (failed[engine] !== undefined || engineRuns === undefined) {
        results.push({ name, ours_ms: Number.NaN, error: failed[engine] ?? 'not run' });
        continue;
      }
      const m = medianBy(engineRuns, pick);
      const o = phase === 'upload' ? m.up : m.down;
      const srv = phase === 'upload' ? m.upServer : m.downServer;
      results.push({
        name,
        ours_ms: o.ms,
        ...(engine === 'sqlite' || base === undefined ? {} : { baseline_name: `sqlite (embedded), same run`, baseline_ms: base }),
        extra: {
          rounds: engineRuns.length,
          all_rounds_ms: engineRuns.map((r) => ms(pick(r))).join('/'),
          docs_per_s: Math.round((scenario.sizes.length / o.ms) * 1000),
          MB_per_s: Number(((bytes / (1024 * 1024)) / (o.ms / 1000)).toFixed(1)),
          client_cpu_ms: ms(o.cpuMs),
          server_cpu_ms: ms(srv.cpuMs),
          server_peak_rss_MB: mb(srv.rssPeak),
        },
      });
    }
  }
  return results;
}
